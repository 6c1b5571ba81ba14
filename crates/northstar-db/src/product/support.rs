//! Support tickets as the support dashboard shows them: tickets opened and
//! resolved and the backlog, read from `ticket_counts` in rows proportional
//! to days, and the median response and resolution times, read from the
//! `tickets` created in the period (through its `created_day` index: a
//! median cannot be summed from daily rows).

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{
    DbError, TenantTx,
    billing::revenue::{Granularity, RevenueDay, buckets, period_totals},
};

/// One day of the `ticket_counts` rollup.
#[derive(Debug, Clone, Default, FromRow)]
pub struct TicketDay {
    /// The local day.
    pub day: NaiveDate,
    /// Tickets created that day.
    pub opened: i64,
    /// Tickets first resolved that day.
    pub resolved: i64,
}

/// Every `ticket_counts` day up to `to`, in order.
pub async fn days_until(tx: &mut TenantTx, to: NaiveDate) -> Result<Vec<TicketDay>, DbError> {
    Ok(sqlx::query_as(
        "SELECT day, opened, resolved FROM ticket_counts WHERE day <= $1 ORDER BY day",
    )
    .bind(to)
    .fetch_all(tx.conn())
    .await?)
}

/// Tickets of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TicketTotals {
    /// Tickets created in the period.
    pub opened: i64,
    /// Tickets first resolved in the period.
    pub resolved: i64,
    /// Tickets created and not resolved by the end of the period.
    pub backlog: i64,
}

/// Totals over `from..=to`, from days sorted by day (only days up to `to`
/// are read).
pub fn totals(days: &[TicketDay], from: NaiveDate, to: NaiveDate) -> TicketTotals {
    let mut totals = TicketTotals::default();
    for day in days.iter().take_while(|d| d.day <= to) {
        totals.backlog += day.opened - day.resolved;
        if day.day >= from {
            totals.opened += day.opened;
            totals.resolved += day.resolved;
        }
    }
    totals
}

/// One point of the support series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SupportPoint {
    /// The bucket's first day within the period.
    pub date: NaiveDate,
    /// Tickets created in the bucket.
    pub opened: i64,
    /// Tickets first resolved in the bucket.
    pub resolved: i64,
    /// Open tickets at the end of the bucket.
    pub backlog: i64,
}

/// One point per bucket of `from..=to` at `granularity`, in one pass over
/// days sorted by day.
pub fn series(
    days: &[TicketDay],
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
) -> Vec<SupportPoint> {
    let mut days = days.iter().peekable();
    let mut backlog = 0;
    buckets(from, to, granularity)
        .into_iter()
        .map(|(start, end)| {
            let (mut opened, mut resolved) = (0, 0);
            while let Some(day) = days.next_if(|d| d.day <= end) {
                backlog += day.opened - day.resolved;
                if day.day >= start {
                    opened += day.opened;
                    resolved += day.resolved;
                }
            }
            SupportPoint {
                date: start,
                opened,
                resolved,
                backlog,
            }
        })
        .collect()
}

/// Median times of the tickets created in a period, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, FromRow)]
pub struct ResponseTimes {
    /// From creation to the first agent reply, over replied tickets.
    pub first_response: Option<f64>,
    /// From creation to the first resolution, over resolved tickets.
    pub resolution: Option<f64>,
}

/// The median response and resolution times of the tickets created in
/// `from..=to`.
pub async fn response_times(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ResponseTimes, DbError> {
    Ok(sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM first_reply_at - created_at)::float8) AS first_response,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM resolved_at - created_at)::float8) AS resolution
         FROM tickets WHERE created_day BETWEEN $1 AND $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(tx.conn())
    .await?)
}

/// The support KPIs of one period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SupportKpis {
    /// Tickets created in the period.
    pub opened: i64,
    /// Tickets first resolved in the period.
    pub resolved: i64,
    /// Open tickets at the end of the period.
    pub backlog: i64,
    /// Median seconds from creation to the first agent reply, over the
    /// period's tickets that have one.
    pub median_first_response_seconds: Option<f64>,
    /// Median seconds from creation to the first resolution, over the
    /// period's tickets that have one.
    pub median_resolution_seconds: Option<f64>,
    /// `opened` per 100 paying customers at the period's end, to two
    /// decimals; null without paying customers.
    pub tickets_per_100_customers: Option<f64>,
}

/// The KPIs of a period with these totals, times and paying customers at
/// its end.
pub fn kpis(totals: TicketTotals, times: ResponseTimes, paying_customers: i64) -> SupportKpis {
    SupportKpis {
        opened: totals.opened,
        resolved: totals.resolved,
        backlog: totals.backlog,
        median_first_response_seconds: times.first_response,
        median_resolution_seconds: times.resolution,
        tickets_per_100_customers: (paying_customers > 0).then(|| {
            (totals.opened as f64 * 100.0 / paying_customers as f64 * 100.0).round() / 100.0
        }),
    }
}

/// The support KPIs of `from..=to`, from the ticket and revenue rollup days
/// read up to `to` or later.
pub async fn period_kpis(
    tx: &mut TenantTx,
    tickets: &[TicketDay],
    revenue: &[RevenueDay],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<SupportKpis, DbError> {
    let times = response_times(tx, from, to).await?;
    let customers = period_totals(revenue, from, to).customers_end;
    Ok(kpis(totals(tickets, from, to), times, customers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    fn days() -> Vec<TicketDay> {
        [
            ("2026-01-01", 3, 0),
            ("2026-01-03", 1, 2),
            ("2026-01-09", 2, 1),
            ("2026-01-20", 0, 1),
        ]
        .into_iter()
        .map(|(d, opened, resolved)| TicketDay {
            day: day(d),
            opened,
            resolved,
        })
        .collect()
    }

    #[test]
    fn the_backlog_runs_from_the_first_ticket() {
        let series = series(
            &days(),
            day("2026-01-02"),
            day("2026-01-11"),
            Granularity::Week,
        );
        let points: Vec<_> = series
            .iter()
            .map(|p| (p.date, p.opened, p.resolved, p.backlog))
            .collect();
        assert_eq!(
            points,
            [(day("2026-01-02"), 1, 2, 2), (day("2026-01-05"), 2, 1, 3),]
        );
    }

    #[test]
    fn tickets_per_100_customers_needs_customers() {
        let t = totals(&days(), day("2026-01-01"), day("2026-01-31"));
        assert_eq!(
            t,
            TicketTotals {
                opened: 6,
                resolved: 4,
                backlog: 2
            }
        );
        let times = ResponseTimes {
            first_response: Some(90.0),
            resolution: None,
        };
        assert_eq!(kpis(t, times, 3).tickets_per_100_customers, Some(200.0));
        assert_eq!(kpis(t, times, 7).tickets_per_100_customers, Some(85.71));
        assert_eq!(kpis(t, times, 0).tickets_per_100_customers, None);
    }
}
