//! `GET …/dashboard/revenue/cohorts`: customers grouped by the month of their
//! first payment, with the customers and MRR each cohort keeps month after
//! month, read from the `revenue_cohorts` rollup.

use axum::Json;
use chrono::{Months, NaiveDate};
use northstar_db::{
    billing::{
        cohorts::{self as cohorts_db, Cohort, CohortMonth, months_between},
        exchange_rates,
        revenue::{self as revenue_db, Granularity, money},
    },
    tenants,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::{
    error::{ApiError, FieldError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

/// Most cohorts (months) a report covers.
const MAX_COHORTS: i64 = 120;

/// Which cohorts to report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevenueCohortQuery {
    /// A local day in the first cohort's month (default: the first day of
    /// the month 11 months before `to`'s, so that 12 cohorts are reported).
    pub from: Option<NaiveDate>,
    /// The local day the report runs to: the last cohort is its month, and
    /// the last month of every cohort ends with it (default: today in the
    /// tenant's time zone).
    pub to: Option<NaiveDate>,
}

/// Where a cohort stands at the end of one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueCohortMonth {
    /// Months since the cohort's month (0 is the cohort's own month).
    pub offset: u32,
    /// The month's first day.
    pub month: NaiveDate,
    /// The day whose end this is: the month's last day, or `to`.
    pub as_of: NaiveDate,
    /// The cohort's paying customers (those who churned and came back count
    /// again).
    pub customers: i64,
    /// Their MRR, in reporting-currency units.
    pub mrr: f64,
    /// `customers` ÷ the cohort's customers; null for an empty cohort.
    pub customer_retention: Option<f64>,
    /// `mrr` ÷ the cohort's starting MRR (above 1 when expansion outweighs
    /// contraction and churn); null when the starting MRR is 0.
    pub revenue_retention: Option<f64>,
}

/// The customers who first paid in one month.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueCohort {
    /// The cohort's month (its first day).
    pub month: NaiveDate,
    /// Customers whose first payment (new business) fell in the month.
    pub customers: i64,
    /// Their new business MRR: what they paid when they started
    /// (ChartMogul's cohort value), in reporting-currency units.
    pub new_business_mrr: f64,
    /// Their MRR at the end of the cohort's month: the base of
    /// `revenue_retention`.
    pub starting_mrr: f64,
    /// Every month from the cohort's own to `to`'s.
    pub months: Vec<RevenueCohortMonth>,
}

/// The revenue cohort table.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueCohorts {
    /// The reporting currency of every amount.
    pub currency: String,
    /// A day in the first cohort's month, as asked or defaulted.
    pub from: NaiveDate,
    /// The last day reported.
    pub to: NaiveDate,
    /// The IANA time zone whose days and months these are.
    pub time_zone: String,
    /// One cohort per month from `from`'s to `to`'s, oldest first.
    pub cohorts: Vec<RevenueCohort>,
    /// Invoice currencies without any exchange rate: their revenue counts
    /// for nothing until rates are loaded.
    pub missing_exchange_rates: Vec<String>,
}

impl From<CohortMonth> for RevenueCohortMonth {
    fn from(month: CohortMonth) -> Self {
        RevenueCohortMonth {
            offset: month.offset,
            month: month.month,
            as_of: month.as_of,
            customers: month.customers,
            mrr: money(month.mrr),
            customer_retention: month.customer_retention,
            revenue_retention: month.revenue_retention,
        }
    }
}

impl From<Cohort> for RevenueCohort {
    fn from(cohort: Cohort) -> Self {
        RevenueCohort {
            month: cohort.month,
            customers: cohort.customers,
            new_business_mrr: money(cohort.new_business_mrr),
            starting_mrr: money(cohort.starting_mrr),
            months: cohort.months.into_iter().map(Into::into).collect(),
        }
    }
}

/// Revenue retention by cohort: per month of first payment, the customers
/// and MRR kept at the end of every month since (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/dashboard/revenue/cohorts", tag = "dashboards",
    params(("slug" = String, Path, description = "Tenant slug"), RevenueCohortQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = RevenueCohorts), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn revenue_cohorts(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<RevenueCohortQuery>,
) -> Result<Json<RevenueCohorts>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    let to = match query.to {
        Some(to) => to,
        None => revenue_db::local_today(&mut scope.tx).await?,
    };
    let from = query.from.unwrap_or_else(|| {
        Granularity::Month
            .bucket_start(to)
            .checked_sub_months(Months::new(11))
            .unwrap_or(to)
    });
    if from > to {
        return Err(ApiError::Validation(vec![FieldError::new(
            "from",
            "must not be after `to`",
        )]));
    }
    if months_between(from, to) >= MAX_COHORTS {
        return Err(ApiError::Validation(vec![FieldError::new(
            "from",
            format!("a report covers at most {MAX_COHORTS} months"),
        )]));
    }
    let cohorts = cohorts_db::cohorts(&mut scope.tx, from, to).await?;
    let missing_exchange_rates = exchange_rates::missing_currencies(&mut scope.tx).await?;
    Ok(Json(RevenueCohorts {
        currency: tenant.reporting_currency,
        from,
        to,
        time_zone: tenant.time_zone,
        cohorts: cohorts.into_iter().map(Into::into).collect(),
        missing_exchange_rates,
    }))
}
