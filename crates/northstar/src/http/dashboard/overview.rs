//! `GET …/dashboard/overview`: the headline numbers of the revenue, users
//! and support dashboards, each with its change against the comparison
//! period.

use axum::Json;
use chrono::NaiveDate;
use northstar_db::{
    billing::revenue::{self, RevenueDay, RevenueKpis, Trials},
    product::{
        support::{self as support_db, SupportKpis, TicketDay, TicketTimes},
        users::{UsersKpis, UsersRollups},
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

/// A headline number and how it moved since the comparison period.
#[derive(Debug, PartialEq, Serialize, ToSchema)]
pub struct Headline {
    /// The period's value; null where it is undefined (a rate without base).
    pub value: Option<f64>,
    /// The comparison period's value; null without comparison.
    pub previous: Option<f64>,
    /// Relative change, (value − previous) ÷ |previous|, to six decimals;
    /// null when either is null or `previous` is 0.
    pub change: Option<f64>,
}

impl Headline {
    fn new(value: Option<f64>, previous: Option<f64>) -> Self {
        let change = match (value, previous) {
            (Some(value), Some(previous)) if previous != 0.0 => {
                Some(((value - previous) / previous.abs() * 1e6).round() / 1e6)
            }
            _ => None,
        };
        Headline {
            value,
            previous,
            change,
        }
    }
}

/// The headline numbers of a period. Amounts are in `currency` units;
/// rates are fractions; times are seconds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// The reporting currency of the amounts.
    pub currency: String,
    /// What was reported.
    pub period: Period,
    /// MRR at the period's end.
    pub mrr: Headline,
    /// ARR: MRR × 12.
    pub arr: Headline,
    /// Paying customers at the period's end.
    pub paying_customers: Headline,
    /// Churned customers ÷ paying customers at the start.
    pub customer_churn_rate: Headline,
    /// (Contraction + churn − expansion − reactivation) ÷ MRR at the start.
    pub net_mrr_churn_rate: Headline,
    /// Net revenue retention.
    pub net_revenue_retention: Headline,
    /// Persons who signed up.
    pub signups: Headline,
    /// Mean daily active users.
    pub average_dau: Headline,
    /// Persons active in the 30 days ending on the period's last day.
    pub mau: Headline,
    /// Mean DAU ÷ MAU.
    pub stickiness: Headline,
    /// Fraction of the period's sign-ups who completed onboarding.
    pub onboarding_completion_rate: Headline,
    /// Support tickets created.
    pub tickets_opened: Headline,
    /// Median seconds to the first agent reply of the period's tickets.
    pub median_first_response_seconds: Headline,
}

/// The KPIs of one period on every dashboard.
struct Kpis {
    revenue: RevenueKpis,
    users: UsersKpis,
    support: SupportKpis,
}

/// The headline numbers of revenue, users and support, each with its
/// previous value and change (any member).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/dashboard/overview", tag = "dashboards",
    params(("slug" = String, Path, description = "Tenant slug"), DashboardQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = Overview), (status = 404, body = Problem), (status = 422, body = Problem))
)]
pub async fn overview(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<Json<Overview>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    let period = period(&mut scope, &tenant, &query).await?;
    let (first, last) = period.span();
    let days = Days {
        revenue: revenue::days_between(&mut scope.tx, first, last).await?,
        tickets: support_db::days_between(&mut scope.tx, first, last).await?,
        times: support_db::ticket_times(&mut scope.tx, first, last).await?,
        trials: revenue::trials(&mut scope.tx, first, last).await?,
        users: UsersRollups::read(&mut scope.tx, first, last).await?,
        steps: &tenant.onboarding_steps,
    };
    let now = days.kpis(period.from, period.to);
    let before = period.comparison().map(|(from, to)| days.kpis(from, to));
    let headline = |metric: fn(&Kpis) -> Option<f64>| {
        Headline::new(metric(&now), before.as_ref().and_then(metric))
    };
    Ok(Json(Overview {
        mrr: headline(|k| Some(k.revenue.mrr)),
        arr: headline(|k| Some(k.revenue.arr)),
        paying_customers: headline(|k| Some(k.revenue.paying_customers as f64)),
        customer_churn_rate: headline(|k| k.revenue.customer_churn_rate),
        net_mrr_churn_rate: headline(|k| k.revenue.net_mrr_churn_rate),
        net_revenue_retention: headline(|k| k.revenue.net_revenue_retention),
        signups: headline(|k| Some(k.users.signups as f64)),
        average_dau: headline(|k| Some(k.users.average_dau)),
        mau: headline(|k| Some(k.users.mau as f64)),
        stickiness: headline(|k| k.users.stickiness),
        onboarding_completion_rate: headline(|k| k.users.onboarding_completion_rate),
        tickets_opened: headline(|k| Some(k.support.opened as f64)),
        median_first_response_seconds: headline(|k| k.support.median_first_response_seconds),
        currency: tenant.reporting_currency.clone(),
        period,
    }))
}

/// The rollup days every period of the report is computed from.
struct Days<'a> {
    revenue: Vec<RevenueDay>,
    tickets: Vec<TicketDay>,
    times: TicketTimes,
    trials: Trials,
    users: UsersRollups,
    steps: &'a [String],
}

impl Days<'_> {
    /// The KPIs of `from..=to`, which the days read must cover.
    fn kpis(&self, from: NaiveDate, to: NaiveDate) -> Kpis {
        let length = (to - from).num_days() + 1;
        Kpis {
            revenue: revenue::kpis(
                &revenue::period_totals(&self.revenue, from, to),
                length,
                self.trials.conversions(from, to),
            ),
            users: self.users.kpis(from, to, self.steps),
            support: support_db::period_kpis(&self.tickets, &self.times, &self.revenue, from, to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Headline;

    #[test]
    fn change_is_relative_to_the_size_of_the_previous_value() {
        assert_eq!(Headline::new(Some(150.0), Some(100.0)).change, Some(0.5));
        assert_eq!(Headline::new(Some(-0.02), Some(-0.04)).change, Some(0.5));
        assert_eq!(Headline::new(Some(3.0), Some(0.0)).change, None);
        assert_eq!(Headline::new(Some(3.0), None).change, None);
        assert_eq!(Headline::new(None, Some(1.0)).change, None);
    }
}
