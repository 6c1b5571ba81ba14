//! Revenue as the dashboards show it, read from the `mrr_daily` rollup: the
//! MRR series, its movements, and the KPIs derived from them.
//!
//! The rollup holds one row per local day with movements, so a report reads
//! rows in proportion to days, never to customers or invoices. The MRR on a
//! day is the sum of every movement and drift up to that day.

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{DbError, TenantTx};

/// One day of the `mrr_daily` rollup. Amounts are micro-units of the
/// reporting currency; contraction and churn are negative.
#[derive(Debug, Clone, Default, FromRow)]
pub struct RevenueDay {
    /// The local day.
    pub day: NaiveDate,
    /// New business MRR.
    pub new_business: i64,
    /// Expansion MRR.
    pub expansion: i64,
    /// Contraction MRR (negative).
    pub contraction: i64,
    /// Churned MRR (negative).
    pub churn: i64,
    /// Reactivation MRR.
    pub reactivation: i64,
    /// Change due to exchange rates.
    pub fx_drift: i64,
    /// Customers who paid for the first time.
    pub new_customers: i32,
    /// Customers whose MRR grew.
    pub expansion_customers: i32,
    /// Customers whose MRR shrank but stayed positive.
    pub contraction_customers: i32,
    /// Customers whose MRR fell to zero.
    pub churned_customers: i32,
    /// Churned customers who pay again.
    pub reactivated_customers: i32,
}

impl RevenueDay {
    fn mrr_change(&self) -> i64 {
        self.new_business
            + self.expansion
            + self.contraction
            + self.churn
            + self.reactivation
            + self.fx_drift
    }

    fn customer_change(&self) -> i64 {
        i64::from(self.new_customers) + i64::from(self.reactivated_customers)
            - i64::from(self.churned_customers)
    }
}

/// The rollup days of `from..=to` in order, preceded by an opening day,
/// dated the day before `from`, that sums every earlier day: what
/// [`period_totals`] needs of any period within `from..=to`, summed by
/// PostgreSQL rather than sent row by row.
pub async fn days_between(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<RevenueDay>, DbError> {
    Ok(sqlx::query_as(
        "SELECT $1::date - 1 AS day, coalesce(sum(new_business), 0)::int8 AS new_business,
                coalesce(sum(expansion), 0)::int8 AS expansion,
                coalesce(sum(contraction), 0)::int8 AS contraction,
                coalesce(sum(churn), 0)::int8 AS churn,
                coalesce(sum(reactivation), 0)::int8 AS reactivation,
                coalesce(sum(fx_drift), 0)::int8 AS fx_drift,
                coalesce(sum(new_customers), 0)::int4 AS new_customers,
                coalesce(sum(expansion_customers), 0)::int4 AS expansion_customers,
                coalesce(sum(contraction_customers), 0)::int4 AS contraction_customers,
                coalesce(sum(churned_customers), 0)::int4 AS churned_customers,
                coalesce(sum(reactivated_customers), 0)::int4 AS reactivated_customers
         FROM mrr_daily WHERE day < $1
         UNION ALL
         SELECT day, new_business, expansion, contraction, churn, reactivation, fx_drift,
                new_customers, expansion_customers, contraction_customers, churned_customers,
                reactivated_customers
         FROM mrr_daily WHERE day BETWEEN $1 AND $2
         ORDER BY day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?)
}

/// Today in the tenant's time zone.
pub async fn local_today(tx: &mut TenantTx) -> Result<NaiveDate, DbError> {
    Ok(
        sqlx::query_scalar("SELECT (now() AT TIME ZONE time_zone)::date FROM tenants")
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Free trials per local day of their start, read from `trial_days` for a
/// run of days, from which the trial conversions of every period within
/// them are summed.
#[derive(Debug, Clone, Default)]
pub struct Trials {
    /// (day, trials started, of which converted), in order.
    days: Vec<(NaiveDate, i64, i64)>,
}

impl Trials {
    /// Free trials started in `from..=to` and how many of those customers
    /// have paid since.
    pub fn conversions(&self, from: NaiveDate, to: NaiveDate) -> (i64, i64) {
        self.days
            .iter()
            .filter(|(day, _, _)| (from..=to).contains(day))
            .fold((0, 0), |(trials, converted), (_, t, c)| {
                (trials + t, converted + c)
            })
    }
}

/// Reads the free trials started in `from..=to` (local days).
pub async fn trials(tx: &mut TenantTx, from: NaiveDate, to: NaiveDate) -> Result<Trials, DbError> {
    let days = sqlx::query_as(
        "SELECT day, trials, converted FROM trial_days WHERE day BETWEEN $1 AND $2 ORDER BY day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    Ok(Trials { days })
}

/// How a series is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One point per local day.
    Day,
    /// One point per week, Monday to Sunday.
    Week,
    /// One point per calendar month.
    Month,
}

impl Granularity {
    /// The first day of the bucket containing `day`.
    pub fn bucket_start(self, day: NaiveDate) -> NaiveDate {
        match self {
            Granularity::Day => day,
            Granularity::Week => {
                day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
            }
            Granularity::Month => day.with_day(1).unwrap_or(day),
        }
    }
}

/// Money and counts of one period. Amounts are micro-units of the
/// reporting currency; contraction and churn are positive magnitudes, so
/// `mrr_start + new_business + expansion + reactivation - contraction -
/// churn + fx_drift = mrr_end`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct PeriodTotals {
    /// MRR at the end of the day before the period.
    pub mrr_start: i64,
    /// MRR at the end of the period's last day.
    pub mrr_end: i64,
    /// Paying customers at the start.
    pub customers_start: i64,
    /// Paying customers at the end.
    pub customers_end: i64,
    /// New business MRR.
    pub new_business: i64,
    /// Expansion MRR.
    pub expansion: i64,
    /// Contraction MRR.
    pub contraction: i64,
    /// Churned MRR.
    pub churn: i64,
    /// Reactivation MRR.
    pub reactivation: i64,
    /// Change due to exchange rates, outside the movements.
    pub fx_drift: i64,
    /// Customers who paid for the first time.
    pub new_customers: i64,
    /// Customers whose MRR grew.
    pub expansion_customers: i64,
    /// Customers whose MRR shrank.
    pub contraction_customers: i64,
    /// Customers who churned.
    pub churned_customers: i64,
    /// Customers who came back.
    pub reactivated_customers: i64,
}

/// Totals over `from..=to`, from rollup days sorted by day (only days up to
/// `to` are read).
pub fn period_totals(days: &[RevenueDay], from: NaiveDate, to: NaiveDate) -> PeriodTotals {
    let mut totals = PeriodTotals::default();
    for day in days.iter().take_while(|d| d.day <= to) {
        if day.day < from {
            totals.mrr_start += day.mrr_change();
            totals.customers_start += day.customer_change();
            continue;
        }
        totals.new_business += day.new_business;
        totals.expansion += day.expansion;
        totals.contraction -= day.contraction;
        totals.churn -= day.churn;
        totals.reactivation += day.reactivation;
        totals.fx_drift += day.fx_drift;
        totals.new_customers += i64::from(day.new_customers);
        totals.expansion_customers += i64::from(day.expansion_customers);
        totals.contraction_customers += i64::from(day.contraction_customers);
        totals.churned_customers += i64::from(day.churned_customers);
        totals.reactivated_customers += i64::from(day.reactivated_customers);
    }
    totals.mrr_end = totals.mrr_start + totals.new_business + totals.expansion
        - totals.contraction
        - totals.churn
        + totals.reactivation
        + totals.fx_drift;
    totals.customers_end =
        totals.customers_start + totals.new_customers + totals.reactivated_customers
            - totals.churned_customers;
    totals
}

/// The buckets of `from..=to` at `granularity`: each bucket's first day in
/// the range and its last.
pub fn buckets(
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
) -> Vec<(NaiveDate, NaiveDate)> {
    let mut buckets = Vec::new();
    let mut start = from;
    while start <= to {
        let next = match granularity {
            Granularity::Day => start + Duration::days(1),
            Granularity::Week => granularity.bucket_start(start) + Duration::days(7),
            Granularity::Month => granularity
                .bucket_start(start)
                .checked_add_months(chrono::Months::new(1))
                .unwrap_or(to + Duration::days(1)),
        };
        let end = (next - Duration::days(1)).min(to);
        buckets.push((start, end));
        start = next;
    }
    buckets
}

/// The KPIs of one period, derived from its totals. Rates are fractions
/// (0.05 is 5 %) and `None` where their denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RevenueKpis {
    /// MRR at the period's end, in reporting-currency units.
    pub mrr: f64,
    /// ARR: MRR × 12.
    pub arr: f64,
    /// Paying customers at the period's end.
    pub paying_customers: i64,
    /// Average revenue per account: MRR ÷ paying customers.
    pub arpa: Option<f64>,
    /// Average sale price: new business MRR ÷ new customers.
    pub asp: Option<f64>,
    /// Churned customers ÷ paying customers at the start.
    pub customer_churn_rate: Option<f64>,
    /// (Contraction + churn) ÷ MRR at the start.
    pub gross_mrr_churn_rate: Option<f64>,
    /// (Contraction + churn − expansion − reactivation) ÷ MRR at the start.
    pub net_mrr_churn_rate: Option<f64>,
    /// (MRR at the start + expansion − contraction − churn) ÷ MRR at the start.
    pub net_revenue_retention: Option<f64>,
    /// Lifetime value: ARPA ÷ the monthly customer churn rate.
    pub ltv: Option<f64>,
    /// (New business + expansion + reactivation) ÷ (contraction + churn).
    pub quick_ratio: Option<f64>,
    /// Free trials started in the period that have converted to paid ÷
    /// trials started in the period.
    pub trial_to_paid: Option<f64>,
}

/// Average days in a month (365.25 / 12).
const DAYS_PER_MONTH: f64 = 30.4375;

/// Micro-units to currency units, rounded to the cent.
pub fn money(micros: i64) -> f64 {
    (micros as f64 / 10_000.0).round() / 100.0
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator != 0.0).then(|| ((numerator / denominator) * 1e6).round() / 1e6)
}

/// The KPIs of a period of `days` days with these totals and trials
/// `(started, converted)`.
pub fn kpis(totals: &PeriodTotals, days: i64, trials: (i64, i64)) -> RevenueKpis {
    let start = totals.mrr_start as f64;
    let losses = (totals.contraction + totals.churn) as f64;
    let gains = (totals.new_business + totals.expansion + totals.reactivation) as f64;
    let arpa = ratio(totals.mrr_end as f64, totals.customers_end as f64).map(|v| v / 1e6);
    let customer_churn_rate = ratio(
        totals.churned_customers as f64,
        totals.customers_start as f64,
    );
    let monthly_churn = customer_churn_rate.map(|rate| rate * DAYS_PER_MONTH / days.max(1) as f64);
    RevenueKpis {
        mrr: money(totals.mrr_end),
        arr: money(totals.mrr_end * 12),
        paying_customers: totals.customers_end,
        arpa: arpa.map(|v| (v * 100.0).round() / 100.0),
        asp: ratio(totals.new_business as f64, totals.new_customers as f64)
            .map(|v| (v / 1e4).round() / 100.0),
        customer_churn_rate,
        gross_mrr_churn_rate: ratio(losses, start),
        net_mrr_churn_rate: ratio(
            losses - (totals.expansion + totals.reactivation) as f64,
            start,
        ),
        net_revenue_retention: ratio(start + totals.expansion as f64 - losses, start),
        ltv: match (arpa, monthly_churn) {
            (Some(arpa), Some(churn)) if churn > 0.0 => {
                Some((arpa / churn * 100.0).round() / 100.0)
            }
            _ => None,
        },
        quick_ratio: ratio(gains, losses),
        trial_to_paid: ratio(trials.1 as f64, trials.0 as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    #[test]
    fn totals_satisfy_the_movement_identity() {
        let days = [
            RevenueDay {
                day: day("2026-01-01"),
                new_business: 100_000_000,
                new_customers: 2,
                ..Default::default()
            },
            RevenueDay {
                day: day("2026-02-03"),
                expansion: 30_000_000,
                churn: -40_000_000,
                fx_drift: 1_000_000,
                expansion_customers: 1,
                churned_customers: 1,
                ..Default::default()
            },
            RevenueDay {
                day: day("2026-03-01"),
                new_business: 5_000_000,
                new_customers: 1,
                ..Default::default()
            },
        ];
        let totals = period_totals(&days, day("2026-02-01"), day("2026-02-28"));
        assert_eq!(totals.mrr_start, 100_000_000);
        assert_eq!(totals.customers_start, 2);
        assert_eq!(totals.mrr_end, 91_000_000);
        assert_eq!(totals.customers_end, 1);
        assert_eq!(totals.churn, 40_000_000);
        let kpis = kpis(&totals, 28, (4, 1));
        assert_eq!(kpis.mrr, 91.0);
        assert_eq!(kpis.customer_churn_rate, Some(0.5));
        assert_eq!(kpis.gross_mrr_churn_rate, Some(0.4));
        assert_eq!(kpis.net_mrr_churn_rate, Some(0.1));
        assert_eq!(kpis.net_revenue_retention, Some(0.9));
        assert_eq!(kpis.quick_ratio, Some(0.75));
        assert_eq!(kpis.trial_to_paid, Some(0.25));
    }

    #[test]
    fn buckets_cover_the_range_exactly() {
        let weeks = buckets(day("2026-01-01"), day("2026-01-20"), Granularity::Week);
        assert_eq!(
            weeks,
            [
                (day("2026-01-01"), day("2026-01-04")),
                (day("2026-01-05"), day("2026-01-11")),
                (day("2026-01-12"), day("2026-01-18")),
                (day("2026-01-19"), day("2026-01-20")),
            ]
        );
        let months = buckets(day("2026-01-15"), day("2026-03-02"), Granularity::Month);
        assert_eq!(
            months,
            [
                (day("2026-01-15"), day("2026-01-31")),
                (day("2026-02-01"), day("2026-02-28")),
                (day("2026-03-01"), day("2026-03-02")),
            ]
        );
    }
}
