//! Support tickets as the support dashboard shows them: tickets opened and
//! resolved and the backlog, read from `ticket_counts`, and the median
//! response and resolution times, read from `ticket_days` (each creation
//! day's sorted durations, merged for a period): rows proportional to days.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::users::median_of_sorted;
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

/// The `ticket_counts` days of `from..=to` in order, preceded by an
/// opening day, dated the day before `from`, that sums every earlier day
/// (the backlog they leave).
pub async fn days_between(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<TicketDay>, DbError> {
    Ok(sqlx::query_as(
        "SELECT $1::date - 1 AS day, coalesce(sum(opened), 0)::int8 AS opened,
                coalesce(sum(resolved), 0)::int8 AS resolved
         FROM ticket_counts WHERE day < $1
         UNION ALL
         SELECT day, opened, resolved FROM ticket_counts WHERE day BETWEEN $1 AND $2
         ORDER BY day",
    )
    .bind(from)
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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResponseTimes {
    /// From creation to the first agent reply, over replied tickets.
    pub first_response: Option<f64>,
    /// From creation to the first resolution, over resolved tickets.
    pub resolution: Option<f64>,
}

/// One creation day of the `ticket_days` rollup.
#[derive(Debug, Clone, Default, FromRow)]
pub struct TicketTimesDay {
    /// The local day the tickets were created.
    pub created_day: NaiveDate,
    /// Seconds to the first agent reply, per replied ticket, ascending.
    pub first_response_seconds: Vec<f64>,
    /// Seconds to the first resolution, per resolved ticket, ascending.
    pub resolution_seconds: Vec<f64>,
}

/// The `ticket_days` rollup of a run of creation days, from which the
/// median times of every period within them are computed.
#[derive(Debug, Clone, Default)]
pub struct TicketTimes {
    /// Days with tickets, in order.
    days: Vec<TicketTimesDay>,
}

impl TicketTimes {
    /// The median response and resolution times of the tickets created in
    /// `from..=to`, exactly as `percentile_cont(0.5)` over the tickets.
    pub fn medians(&self, from: NaiveDate, to: NaiveDate) -> ResponseTimes {
        let start = self.days.partition_point(|d| d.created_day < from);
        let end = self.days.partition_point(|d| d.created_day <= to);
        let days = &self.days[start..end.max(start)];
        let runs = |times: fn(&TicketTimesDay) -> &[f64]| -> Vec<&[f64]> {
            days.iter().map(times).collect()
        };
        ResponseTimes {
            first_response: median_of_sorted(&runs(|d| &d.first_response_seconds)),
            resolution: median_of_sorted(&runs(|d| &d.resolution_seconds)),
        }
    }
}

/// Reads the ticket times of the tickets created in `from..=to`.
pub async fn ticket_times(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<TicketTimes, DbError> {
    let days = sqlx::query_as(
        "SELECT created_day, first_response_seconds, resolution_seconds FROM ticket_days
         WHERE created_day BETWEEN $1 AND $2 ORDER BY created_day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    Ok(TicketTimes { days })
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
/// read up to `to` or later and the ticket times read for the period.
pub fn period_kpis(
    tickets: &[TicketDay],
    times: &TicketTimes,
    revenue: &[RevenueDay],
    from: NaiveDate,
    to: NaiveDate,
) -> SupportKpis {
    let customers = period_totals(revenue, from, to).customers_end;
    kpis(
        totals(tickets, from, to),
        times.medians(from, to),
        customers,
    )
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
