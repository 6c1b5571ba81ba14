//! Revenue cohorts as the dashboard shows them: customers grouped by the
//! local month of their first payment, and how many of them pay, and how
//! much, at the end of every month since.
//!
//! Read from rollups only, so a report reads rows in proportion to cohorts ×
//! months, never to customers: `revenue_cohorts` (the change per cohort and
//! month) for the months before the report's last day, `revenue_cohort_days`
//! for the month that contains it (movements are recorded ahead of time, so
//! that month's row may hold changes after the last day), and `mrr_daily`
//! for each cohort's size (its customers' `new_business` movements).

use std::collections::HashMap;

use chrono::{Datelike, Months, NaiveDate};

use super::revenue::Granularity;
use crate::{DbError, TenantTx};

/// One cohort. Amounts are micro-units of the reporting currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    /// The cohort's month (its first day).
    pub month: NaiveDate,
    /// Customers whose first payment fell in the month (up to the report's
    /// last day).
    pub customers: i64,
    /// Their MRR when they first paid: the month's new business.
    pub new_business_mrr: i64,
    /// Their MRR at the end of the month: the base of revenue retention.
    pub starting_mrr: i64,
    /// The end of each month from the cohort's own (offset 0) to the one
    /// containing the report's last day.
    pub months: Vec<CohortMonth>,
}

/// Where a cohort stands at the end of one month.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortMonth {
    /// Months since the cohort's month.
    pub offset: u32,
    /// The month (its first day).
    pub month: NaiveDate,
    /// The day whose end this is: the month's last day, or the report's
    /// last day in the month that contains it.
    pub as_of: NaiveDate,
    /// The cohort's customers paying at the end of `as_of`, including those
    /// who churned and came back.
    pub customers: i64,
    /// Their MRR, including expansion, contraction and exchange-rate drift.
    pub mrr: i64,
    /// `customers` ÷ the cohort's size; `None` for an empty cohort.
    pub customer_retention: Option<f64>,
    /// `mrr` ÷ the cohort's starting MRR (above 1 when expansion outweighs
    /// losses); `None` when the starting MRR is zero.
    pub revenue_retention: Option<f64>,
}

/// The cohorts of the months containing `from..=to`, as of the end of `to`.
pub async fn cohorts(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Cohort>, DbError> {
    let first = Granularity::Month.bucket_start(from);
    let last = Granularity::Month.bucket_start(to);
    let monthly: Vec<(NaiveDate, NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT cohort_month, month, customers, mrr FROM revenue_cohorts
         WHERE cohort_month BETWEEN $1 AND $2 AND month < $2
         ORDER BY cohort_month, month",
    )
    .bind(first)
    .bind(last)
    .fetch_all(tx.conn())
    .await?;
    let last_month: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT cohort_month, sum(customers)::bigint, sum(mrr)::bigint FROM revenue_cohort_days
         WHERE cohort_month BETWEEN $1 AND $2 AND day BETWEEN $2 AND $3
         GROUP BY cohort_month ORDER BY cohort_month",
    )
    .bind(first)
    .bind(last)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    let sizes: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT date_trunc('month', day::timestamp)::date,
                sum(new_customers)::bigint, sum(new_business)::bigint
         FROM mrr_daily WHERE day BETWEEN $1 AND $2
         GROUP BY 1 ORDER BY 1",
    )
    .bind(first)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    Ok(assemble(
        from,
        to,
        &CohortRows {
            monthly,
            last_month,
            sizes,
        },
    ))
}

/// What the rollups hold for a report.
#[derive(Debug, Default)]
struct CohortRows {
    /// (cohort, month, customers, MRR) changes, for months before the last.
    monthly: Vec<(NaiveDate, NaiveDate, i64, i64)>,
    /// (cohort, customers, MRR) changes in the last month, up to its last day.
    last_month: Vec<(NaiveDate, i64, i64)>,
    /// (cohort, customers, new business MRR) from `mrr_daily`.
    sizes: Vec<(NaiveDate, i64, i64)>,
}

/// The cohort table from the rollups' changes: each cell is the running sum
/// of its cohort's changes up to its month.
fn assemble(from: NaiveDate, to: NaiveDate, rows: &CohortRows) -> Vec<Cohort> {
    let first = Granularity::Month.bucket_start(from);
    let last = Granularity::Month.bucket_start(to);
    let monthly: HashMap<(NaiveDate, NaiveDate), (i64, i64)> = rows
        .monthly
        .iter()
        .map(|(cohort, month, customers, mrr)| ((*cohort, *month), (*customers, *mrr)))
        .collect();
    let last_month: HashMap<NaiveDate, (i64, i64)> = rows
        .last_month
        .iter()
        .map(|(cohort, customers, mrr)| (*cohort, (*customers, *mrr)))
        .collect();
    let sizes: HashMap<NaiveDate, (i64, i64)> = rows
        .sizes
        .iter()
        .map(|(cohort, customers, mrr)| (*cohort, (*customers, *mrr)))
        .collect();
    let mut cohorts = Vec::new();
    for cohort in months(first, last) {
        let (customers, new_business_mrr) = sizes.get(&cohort).copied().unwrap_or_default();
        let (mut paying, mut mrr) = (0, 0);
        let mut cells = Vec::new();
        for (offset, month) in (0..).zip(months(cohort, last)) {
            let (change, as_of) = if month < last {
                let change = monthly.get(&(cohort, month));
                (change, next_month(month).pred_opt().unwrap_or(month))
            } else {
                (last_month.get(&cohort), to)
            };
            let change = change.copied().unwrap_or_default();
            paying += change.0;
            mrr += change.1;
            cells.push(CohortMonth {
                offset,
                month,
                as_of,
                customers: paying,
                mrr,
                customer_retention: None,
                revenue_retention: None,
            });
        }
        let starting_mrr = cells.first().map_or(0, |cell| cell.mrr);
        for cell in &mut cells {
            cell.customer_retention = ratio(cell.customers, customers);
            cell.revenue_retention = ratio(cell.mrr, starting_mrr);
        }
        cohorts.push(Cohort {
            month: cohort,
            customers,
            new_business_mrr,
            starting_mrr,
            months: cells,
        });
    }
    cohorts
}

/// The first days of the months from `first` to `last`, both included.
fn months(first: NaiveDate, last: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    std::iter::successors(Some(first), |month| Some(next_month(*month)))
        .take_while(move |month| *month <= last)
}

fn next_month(month: NaiveDate) -> NaiveDate {
    month
        .checked_add_months(Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

/// Whole months from `from`'s month to `to`'s month.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> i64 {
    i64::from(to.year() - from.year()) * 12 + i64::from(to.month()) - i64::from(from.month())
}

/// `numerator ÷ denominator` rounded to six decimals, `None` over zero.
fn ratio(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator != 0).then(|| ((numerator as f64 / denominator as f64) * 1e6).round() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    const M: i64 = 1_000_000;

    #[test]
    fn cells_are_running_sums_and_the_last_month_stops_at_the_last_day() {
        // January: two customers for 150, one churns in March and comes
        // back in May; the other expands by 50 in April. February: one
        // customer for 200. Reported to May 20.
        let rows = CohortRows {
            monthly: vec![
                (day("2026-01-01"), day("2026-01-01"), 2, 150 * M),
                (day("2026-01-01"), day("2026-03-01"), -1, -50 * M),
                (day("2026-01-01"), day("2026-04-01"), 0, 50 * M),
                (day("2026-02-01"), day("2026-02-01"), 1, 200 * M),
            ],
            last_month: vec![(day("2026-01-01"), 1, 50 * M)],
            sizes: vec![
                (day("2026-01-01"), 2, 150 * M),
                (day("2026-02-01"), 1, 200 * M),
            ],
        };
        let cohorts = assemble(day("2026-01-15"), day("2026-05-20"), &rows);
        assert_eq!(cohorts.len(), 5);
        let january = &cohorts[0];
        assert_eq!((january.customers, january.starting_mrr), (2, 150 * M));
        let cells: Vec<_> = january
            .months
            .iter()
            .map(|c| {
                (
                    c.offset,
                    c.as_of.to_string(),
                    c.customers,
                    c.mrr / M,
                    c.customer_retention,
                    c.revenue_retention,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                (0, "2026-01-31".into(), 2, 150, Some(1.0), Some(1.0)),
                (1, "2026-02-28".into(), 2, 150, Some(1.0), Some(1.0)),
                (2, "2026-03-31".into(), 1, 100, Some(0.5), Some(0.666667)),
                (3, "2026-04-30".into(), 1, 150, Some(0.5), Some(1.0)),
                (4, "2026-05-20".into(), 2, 200, Some(1.0), Some(1.333333)),
            ]
        );
        assert_eq!(cohorts[1].months.len(), 4);
        assert_eq!(cohorts[1].months[3].mrr, 200 * M);
        let may = &cohorts[4];
        assert_eq!((may.customers, may.months.len()), (0, 1));
        assert_eq!(may.months[0].customer_retention, None);
        assert_eq!(may.months[0].revenue_retention, None);
    }

    #[test]
    fn months_between_counts_calendar_months() {
        assert_eq!(months_between(day("2025-11-30"), day("2026-02-01")), 3);
        assert_eq!(months_between(day("2026-02-01"), day("2026-02-28")), 0);
    }
}
