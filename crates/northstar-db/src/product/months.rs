//! Monthly rollups of event counts and adopters (`event_counts_months`,
//! `event_adopters_months`), so that a long period's top events read a row
//! per month instead of a row per day: [`MonthCover`] splits a run of days
//! into whole calendar months and the days at its edges.
//!
//! The month rows move by exactly the deltas of the daily ones, in the same
//! statements of [`super::maintain`] (the CTEs below), so that a month row
//! always equals its days summed; a rebuild empties both and refills them.

use chrono::{Datelike, Months, NaiveDate};

/// A CTE for `stage_calls!` that counts the staged calls (CTE `calls`; `$1`
/// the tenant, `$2` its time zone) into `event_counts_months`, as `counted`
/// counts them into `event_counts`.
macro_rules! count_months {
    () => {
        ", counted_months AS (
    INSERT INTO event_counts_months AS c (tenant_id, month, type, name, count)
    SELECT $1, date_trunc('month', time AT TIME ZONE $2)::date, type, coalesce(event, ''), count(*)
    FROM calls WHERE type IN ('track', 'page', 'screen')
    GROUP BY 2, 3, 4 ORDER BY 3, 2, 4
    ON CONFLICT (tenant_id, type, month, name) DO UPDATE SET count = c.count + excluded.count
)"
    };
}
pub(crate) use count_months;

/// A CTE for `APPLY_FIRSTS` that moves adopters between months (CTE
/// `moves`: local `day`, `event`, `n` ±1; `$1` the tenant) in
/// `event_adopters_months`, as the statement moves them between days.
macro_rules! adopt_months {
    () => {
        ", adopted_months AS (
    INSERT INTO event_adopters_months AS a (tenant_id, month, event, adopters)
    SELECT $1, date_trunc('month', day::timestamp)::date, event, sum(n) FROM moves
    GROUP BY 2, 3 HAVING sum(n) <> 0 ORDER BY 3, 2
    ON CONFLICT (tenant_id, event, month) DO UPDATE SET adopters = a.adopters + excluded.adopters
)"
    };
}
pub(crate) use adopt_months;

/// A run of local days `from..=to` as the rollups read it: the whole
/// calendar months within it from the month tables, the days before and
/// after them from the daily tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MonthCover {
    /// The first day.
    pub from: NaiveDate,
    /// The first day of the first whole month: days `from..months_from`
    /// are read from the daily tables.
    pub months_from: NaiveDate,
    /// The first day after the last whole month: days `months_to..=to` are
    /// read from the daily tables. Equal to `months_from` without whole
    /// months.
    pub months_to: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
    /// The first day after every whole month that ends by `to`: a total up
    /// to `to` reads the months before it and the days `until..=to`. Never
    /// after `months_to`, and after every day of `from..months_from`.
    pub until: NaiveDate,
}

impl MonthCover {
    /// Splits `from..=to` (`from <= to`).
    pub(crate) fn new(from: NaiveDate, to: NaiveDate) -> Self {
        let until = to.succ_opt().map_or(to, month_start);
        let first = if from.day() == 1 {
            from
        } else {
            next_month(month_start(from))
        };
        let (months_from, months_to) = if first < until {
            (first, until)
        } else {
            let at = until.max(from);
            (at, at)
        };
        MonthCover {
            from,
            months_from,
            months_to,
            to,
            until,
        }
    }
}

/// The first day of `day`'s month.
fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The first day of the month after the one starting on `start`.
fn next_month(start: NaiveDate) -> NaiveDate {
    start.checked_add_months(Months::new(1)).unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Duration;

    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    fn days(from: NaiveDate, until: NaiveDate) -> BTreeSet<NaiveDate> {
        from.iter_days().take_while(|d| *d < until).collect()
    }

    #[test]
    fn a_two_year_period_reads_its_whole_months_and_its_edge_days() {
        let cover = MonthCover::new(day("2024-06-17"), day("2026-06-16"));
        assert_eq!(cover.months_from, day("2024-07-01"));
        assert_eq!(cover.months_to, day("2026-06-01"));
        assert_eq!(cover.until, day("2026-06-01"));
        let cover = MonthCover::new(day("2026-01-01"), day("2026-01-31"));
        assert_eq!(
            (cover.months_from, cover.months_to, cover.until),
            (day("2026-01-01"), day("2026-02-01"), day("2026-02-01"))
        );
        let cover = MonthCover::new(day("2026-01-10"), day("2026-01-20"));
        assert_eq!(
            (cover.months_from, cover.months_to, cover.until),
            (day("2026-01-10"), day("2026-01-10"), day("2026-01-01"))
        );
    }

    /// For every run of days over a few months: the whole months and the
    /// edge days partition it, and a total to date reads each day once.
    #[test]
    fn months_and_edge_days_cover_every_day_once() {
        let start = day("2025-11-25");
        for f in 0..100 {
            for t in f..100 {
                let (from, to) = (start + Duration::days(f), start + Duration::days(t));
                let cover = MonthCover::new(from, to);
                let after = to + Duration::days(1);
                assert!(cover.from <= cover.months_from && cover.months_from <= cover.months_to);
                assert!(cover.months_to <= after && cover.until <= cover.months_to);
                if cover.months_from < cover.months_to {
                    assert_eq!(cover.months_from.day(), 1);
                }
                for month in days(cover.months_from, cover.months_to) {
                    assert!(month.day() != 1 || next_month(month) <= cover.months_to);
                }
                assert!(
                    [cover.months_from, cover.months_to, cover.until]
                        .iter()
                        .all(|m| m.day() == 1 || *m == from)
                );
                let mut read = days(from, cover.months_from);
                read.extend(days(cover.months_from, cover.months_to));
                read.extend(days(cover.months_to, after));
                assert_eq!(read, days(from, after), "{from} {to}");
                // A total to date: months before `until`, then its days;
                // the leading days (new adopters) end before `until`.
                assert!(cover.months_from <= cover.until || cover.months_from == from);
                assert!(
                    days(from, cover.months_from)
                        .iter()
                        .all(|d| *d < cover.until)
                );
            }
        }
    }
}
