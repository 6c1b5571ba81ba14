//! The dashboard endpoints: headline numbers and series over a period of
//! the tenant's local days, compared with an earlier period, served from
//! rollups.

use axum::Json;
use chrono::{Duration, Months, NaiveDate};
use northstar_db::{
    billing::{
        exchange_rates,
        revenue::{
            self, Granularity, PeriodTotals, RevenueDay, RevenueKpis, buckets, kpis, money,
            period_totals,
        },
    },
    tenants::{self, Tenant},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

/// Longest period a dashboard reports, in days.
const MAX_PERIOD_DAYS: i64 = 3660;

/// What period to report and how.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DashboardQuery {
    /// First local day (default: 29 days before `to`).
    pub from: Option<NaiveDate>,
    /// Last local day (default: today in the tenant's time zone).
    pub to: Option<NaiveDate>,
    /// `day` (default), `week` (Monday to Sunday) or `month`.
    pub granularity: Option<String>,
    /// `previous_period` (default: as many days just before), `previous_year`
    /// or `none`.
    pub compare: Option<String>,
}

/// A reporting period: its days, the granularity of its series, and the
/// period it is compared with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Period {
    /// First local day.
    pub from: NaiveDate,
    /// Last local day.
    pub to: NaiveDate,
    /// `day`, `week` or `month`.
    pub granularity: String,
    /// The comparison period's first day, if any.
    pub compare_from: Option<NaiveDate>,
    /// The comparison period's last day, if any.
    pub compare_to: Option<NaiveDate>,
    /// The IANA time zone whose days these are.
    pub time_zone: String,
}

impl Period {
    fn granularity(&self) -> Granularity {
        match self.granularity.as_str() {
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            _ => Granularity::Day,
        }
    }

    fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    fn comparison(&self) -> Option<(NaiveDate, NaiveDate)> {
        self.compare_from.zip(self.compare_to)
    }
}

/// Checks the query against the calendar of `tenant`.
async fn period(
    scope: &mut TenantScope,
    tenant: &Tenant,
    query: &DashboardQuery,
) -> Result<Period, ApiError> {
    let to = match query.to {
        Some(to) => to,
        None => revenue::local_today(&mut scope.tx).await?,
    };
    let from = query.from.unwrap_or(to - Duration::days(29));
    let mut errors = Vec::new();
    if from > to {
        errors.push(FieldError::new("from", "must not be after `to`"));
    } else if (to - from).num_days() >= MAX_PERIOD_DAYS {
        errors.push(FieldError::new(
            "from",
            format!("the period is at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    let granularity = query.granularity.as_deref().unwrap_or("day");
    if !["day", "week", "month"].contains(&granularity) {
        errors.push(FieldError::new(
            "granularity",
            "must be `day`, `week` or `month`",
        ));
    }
    let length = (to - from).num_days() + 1;
    let comparison = match query.compare.as_deref().unwrap_or("previous_period") {
        "previous_period" => Some((from - Duration::days(length), from - Duration::days(1))),
        "previous_year" => from
            .checked_sub_months(Months::new(12))
            .zip(to.checked_sub_months(Months::new(12))),
        "none" => None,
        _ => {
            errors.push(FieldError::new(
                "compare",
                "must be `previous_period`, `previous_year` or `none`",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Period {
        from,
        to,
        granularity: granularity.to_owned(),
        compare_from: comparison.map(|(from, _)| from),
        compare_to: comparison.map(|(_, to)| to),
        time_zone: tenant.time_zone.clone(),
    })
}

/// MRR movements of a period in reporting-currency units. Contraction and
/// churn are positive: `mrr_start + new_business + expansion + reactivation
/// − contraction − churn + fx_drift = mrr_end`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Movements {
    /// MRR at the end of the day before the period.
    pub mrr_start: f64,
    /// MRR at the end of the period.
    pub mrr_end: f64,
    /// MRR of customers who paid for the first time.
    pub new_business: f64,
    /// MRR added by paying customers.
    pub expansion: f64,
    /// MRR lost by customers who still pay.
    pub contraction: f64,
    /// MRR of customers who stopped paying.
    pub churn: f64,
    /// MRR of churned customers who pay again.
    pub reactivation: f64,
    /// Change due to exchange rates, outside the movements.
    pub fx_drift: f64,
    /// Customers per movement.
    pub customers: MovementCustomers,
}

/// How many customers made each movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementCustomers {
    /// New customers.
    pub new_business: i64,
    /// Customers who expanded.
    pub expansion: i64,
    /// Customers who contracted.
    pub contraction: i64,
    /// Customers who churned.
    pub churn: i64,
    /// Customers who came back.
    pub reactivation: i64,
}

impl From<&PeriodTotals> for Movements {
    fn from(t: &PeriodTotals) -> Self {
        Movements {
            mrr_start: money(t.mrr_start),
            mrr_end: money(t.mrr_end),
            new_business: money(t.new_business),
            expansion: money(t.expansion),
            contraction: money(t.contraction),
            churn: money(t.churn),
            reactivation: money(t.reactivation),
            fx_drift: money(t.fx_drift),
            customers: MovementCustomers {
                new_business: t.new_customers,
                expansion: t.expansion_customers,
                contraction: t.contraction_customers,
                churn: t.churned_customers,
                reactivation: t.reactivated_customers,
            },
        }
    }
}

/// One point of the revenue series.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenuePoint {
    /// The bucket's first day within the period.
    pub date: NaiveDate,
    /// MRR at the end of the bucket.
    pub mrr: f64,
    /// Paying customers at the end of the bucket.
    pub customers: i64,
    /// The bucket's movements.
    pub movements: Movements,
}

/// The revenue dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueDashboard {
    /// The reporting currency of every amount.
    pub currency: String,
    /// What was reported.
    pub period: Period,
    /// KPIs of the period.
    pub kpis: RevenueKpis,
    /// KPIs of the comparison period.
    pub previous: Option<RevenueKpis>,
    /// The period's movements.
    pub movements: Movements,
    /// MRR and movements per bucket.
    pub series: Vec<RevenuePoint>,
    /// Invoice currencies without any exchange rate: their revenue counts
    /// for nothing until rates are loaded.
    pub missing_exchange_rates: Vec<String>,
}

/// MRR, its movements and the revenue KPIs (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/dashboard/revenue", tag = "dashboards",
    params(("slug" = String, Path, description = "Tenant slug"), DashboardQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = RevenueDashboard), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn revenue(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<Json<RevenueDashboard>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    let period = period(&mut scope, &tenant, &query).await?;
    let days = revenue::days_until(&mut scope.tx, period.to).await?;
    let totals = period_totals(&days, period.from, period.to);
    let trials = revenue::trial_conversions(&mut scope.tx, period.from, period.to).await?;
    let previous = match period.comparison() {
        Some((from, to)) => {
            let trials = revenue::trial_conversions(&mut scope.tx, from, to).await?;
            let length = (to - from).num_days() + 1;
            Some(kpis(&period_totals(&days, from, to), length, trials))
        }
        None => None,
    };
    let missing_exchange_rates = exchange_rates::missing_currencies(&mut scope.tx).await?;
    Ok(Json(RevenueDashboard {
        currency: tenant.reporting_currency,
        kpis: kpis(&totals, period.days(), trials),
        previous,
        movements: Movements::from(&totals),
        series: series(&days, &period),
        missing_exchange_rates,
        period,
    }))
}

fn series(days: &[RevenueDay], period: &Period) -> Vec<RevenuePoint> {
    buckets(period.from, period.to, period.granularity())
        .into_iter()
        .map(|(from, to)| {
            let totals = period_totals(days, from, to);
            RevenuePoint {
                date: from,
                mrr: money(totals.mrr_end),
                customers: totals.customers_end,
                movements: Movements::from(&totals),
            }
        })
        .collect()
}
