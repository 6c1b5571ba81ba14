//! `GET …/dashboard/revenue`: MRR, its movements and the revenue KPIs,
//! read from the `mrr_daily` rollup.

use axum::Json;
use chrono::NaiveDate;
use northstar_db::{
    billing::{
        exchange_rates,
        revenue::{
            self, PeriodTotals, RevenueDay, RevenueKpis, buckets, kpis, money, period_totals,
        },
    },
    tenants,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{DashboardQuery, Period, period};
use crate::http::{
    error::{ApiError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

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
    let (first, last) = period.span();
    let days = revenue::days_between(&mut scope.tx, first, last).await?;
    let trials = revenue::trials(&mut scope.tx, first, last).await?;
    let totals = period_totals(&days, period.from, period.to);
    let previous = period.comparison().map(|(from, to)| {
        let length = (to - from).num_days() + 1;
        kpis(
            &period_totals(&days, from, to),
            length,
            trials.conversions(from, to),
        )
    });
    let missing_exchange_rates = exchange_rates::missing_currencies(&mut scope.tx).await?;
    Ok(Json(RevenueDashboard {
        currency: tenant.reporting_currency,
        kpis: kpis(
            &totals,
            period.days(),
            trials.conversions(period.from, period.to),
        ),
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
