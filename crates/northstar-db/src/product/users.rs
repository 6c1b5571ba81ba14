//! Active users, sign-ups, onboarding and top events as the users dashboard
//! shows them, read from the product rollups.
//!
//! Everything is read in rows proportional to days, onboarding included:
//! `onboarding_days` holds each sign-up day's counts and its sorted
//! durations, so that a cohort's median is taken from its days' merged
//! durations, exactly as over its `onboarding` rows. A report reads the
//! days of its period and of its comparison period once ([`UsersRollups`]).
//! The top events of a long period read its whole months from the month
//! rollups ([`super::months`]).

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::months::MonthCover;
use crate::{
    DbError, TenantTx,
    billing::revenue::{Granularity, buckets},
};

/// How many events the top events list holds.
pub const TOP_EVENTS: i64 = 10;

/// The product rollups of one local day; a missing row counts as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityDay {
    /// Persons active on the day.
    pub dau: i64,
    /// Persons active in the 7 days ending on the day.
    pub wau: i64,
    /// Persons active in the 30 days ending on the day.
    pub mau: i64,
    /// Persons whose first active day it is.
    pub new_users: i64,
    /// Persons who sent the tenant's sign-up event for the first time.
    pub signups: i64,
}

/// The product rollups of a run of local days, from which every users
/// number of a period within them is computed without another read.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// Per local day; absent days are all zero.
    pub days: BTreeMap<NaiveDate, ActivityDay>,
    /// Distinct active persons per calendar week, keyed by its Monday.
    pub weeks: BTreeMap<NaiveDate, i64>,
    /// Distinct active persons per calendar month, keyed by its first day.
    pub months: BTreeMap<NaiveDate, i64>,
    /// Persons first active before the first day read.
    pub users_before: i64,
}

/// One point of the users series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsersPoint {
    /// The bucket's first day within the period.
    pub date: NaiveDate,
    /// Distinct persons active in the bucket: the day's, or the whole
    /// calendar week's or month's, even when the period clips the bucket.
    pub active_users: i64,
    /// Mean daily active users over the bucket's days (in the period).
    pub average_dau: f64,
    /// Persons active in the 30 days ending on the bucket's last day.
    pub mau: i64,
    /// Mean of DAU ÷ MAU over the bucket's days whose MAU is positive.
    pub stickiness: Option<f64>,
    /// Persons who signed up in the bucket.
    pub signups: i64,
    /// Persons first active in the bucket.
    pub new_users: i64,
}

/// The users KPIs of one period. Fractions are rounded to six decimals and
/// null where their denominator is 0.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsersKpis {
    /// Mean daily active users over the period's days.
    pub average_dau: f64,
    /// Persons active in the 7 days ending on the period's last day.
    pub wau: i64,
    /// Persons active in the 30 days ending on the period's last day.
    pub mau: i64,
    /// Mean of DAU ÷ MAU over the period's days whose MAU is positive.
    pub stickiness: Option<f64>,
    /// Persons who signed up in the period.
    pub signups: i64,
    /// Persons first active in the period.
    pub new_users: i64,
    /// Persons ever active up to the period's last day.
    pub total_users: i64,
    /// Of the period's sign-ups, the fraction who have done every
    /// onboarding step; null without sign-ups or without steps.
    pub onboarding_completion_rate: Option<f64>,
    /// Median seconds from sign-up to the last onboarding step, over the
    /// period's sign-ups who completed.
    pub median_seconds_to_onboard: Option<f64>,
}

/// How many of a cohort's sign-ups have done one onboarding step.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepCompletion {
    /// The step's event name.
    pub step: String,
    /// Sign-ups who have sent it.
    pub completed: i64,
}

/// The persons who signed up in one bucket, and how far they onboarded.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OnboardingCohort {
    /// The bucket's first day within the period.
    pub date: NaiveDate,
    /// Persons who signed up in the bucket.
    pub signups: i64,
    /// Of them, those who have done every step (in any order).
    pub completed: i64,
    /// `completed` ÷ `signups`; null without sign-ups or without steps.
    pub completion_rate: Option<f64>,
    /// Median seconds from sign-up to the last step done, over `completed`.
    pub median_seconds_to_complete: Option<f64>,
    /// Per step, in the tenant's order.
    pub steps: Vec<StepCompletion>,
}

/// A track event among the most sent of a period.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, FromRow)]
pub struct TopEvent {
    /// The event name.
    pub event: String,
    /// Calls in the period.
    pub calls: i64,
    /// Persons who have sent it up to the period's last day.
    pub adopters: i64,
    /// `adopters` ÷ total users up to the period's last day.
    #[sqlx(skip)]
    pub adoption_rate: Option<f64>,
    /// Persons who sent it for the first time in the period.
    pub new_adopters: i64,
}

/// `numerator ÷ denominator` rounded to six decimals; `None` when the
/// denominator is 0.
fn fraction(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator != 0.0).then(|| ((numerator / denominator) * 1e6).round() / 1e6)
}

impl Activity {
    /// The rollups of `day` (zero when it has no rows).
    pub fn day(&self, day: NaiveDate) -> ActivityDay {
        self.days.get(&day).copied().unwrap_or_default()
    }

    /// Persons ever active up to the end of `to`.
    pub fn total_users(&self, to: NaiveDate) -> i64 {
        self.users_before
            + self
                .days
                .range(..=to)
                .map(|(_, d)| d.new_users)
                .sum::<i64>()
    }

    /// Sums over `from..=to`: (DAU, sign-ups, new users), the days counted,
    /// and the stickiness of those days.
    fn sums(&self, from: NaiveDate, to: NaiveDate) -> Sums {
        let mut sums = Sums::default();
        let mut day = from;
        while day <= to {
            let a = self.day(day);
            sums.days += 1;
            sums.dau += a.dau;
            sums.signups += a.signups;
            sums.new_users += a.new_users;
            if a.mau > 0 {
                sums.sticky_days += 1;
                sums.stickiness += a.dau as f64 / a.mau as f64;
            }
            day += Duration::days(1);
        }
        sums
    }

    /// One point per bucket of `from..=to` at `granularity`.
    pub fn series(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        granularity: Granularity,
    ) -> Vec<UsersPoint> {
        buckets(from, to, granularity)
            .into_iter()
            .map(|(start, end)| {
                let sums = self.sums(start, end);
                let calendar = granularity.bucket_start(start);
                let active_users = match granularity {
                    Granularity::Day => self.day(start).dau,
                    Granularity::Week => self.weeks.get(&calendar).copied().unwrap_or(0),
                    Granularity::Month => self.months.get(&calendar).copied().unwrap_or(0),
                };
                UsersPoint {
                    date: start,
                    active_users,
                    average_dau: sums.average_dau(),
                    mau: self.day(end).mau,
                    stickiness: sums.stickiness(),
                    signups: sums.signups,
                    new_users: sums.new_users,
                }
            })
            .collect()
    }

    /// The KPIs of `from..=to`, with the onboarding of its sign-ups as one
    /// cohort.
    pub fn kpis(&self, from: NaiveDate, to: NaiveDate, onboarding: &OnboardingCohort) -> UsersKpis {
        let sums = self.sums(from, to);
        let last = self.day(to);
        UsersKpis {
            average_dau: sums.average_dau(),
            wau: last.wau,
            mau: last.mau,
            stickiness: sums.stickiness(),
            signups: sums.signups,
            new_users: sums.new_users,
            total_users: self.total_users(to),
            onboarding_completion_rate: onboarding.completion_rate,
            median_seconds_to_onboard: onboarding.median_seconds_to_complete,
        }
    }
}

/// What a run of days adds up to.
#[derive(Debug, Default)]
struct Sums {
    days: i64,
    dau: i64,
    signups: i64,
    new_users: i64,
    sticky_days: i64,
    stickiness: f64,
}

impl Sums {
    fn average_dau(&self) -> f64 {
        fraction(self.dau as f64, self.days as f64).map_or(0.0, |v| (v * 100.0).round() / 100.0)
    }

    fn stickiness(&self) -> Option<f64> {
        fraction(self.stickiness, self.sticky_days as f64)
    }
}

/// Reads the rollups of `from..=to`, and of the calendar week and month
/// that hold `from`, in one round trip: the active users of every window,
/// the sign-ups, and the persons first active before.
pub async fn activity(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Activity, DbError> {
    let start = Granularity::Week
        .bucket_start(from)
        .min(Granularity::Month.bucket_start(from));
    let rows: Vec<(String, NaiveDate, i64)> = sqlx::query_as(
        "SELECT window_kind, day, users FROM active_users
         WHERE window_kind IN ('day', '7d', '30d', 'week', 'month', 'new') AND day BETWEEN $1 AND $2
         UNION ALL
         SELECT 'signups', day, adopters FROM event_adopters
         WHERE day BETWEEN $1 AND $2 AND event = (SELECT signup_event FROM tenants)
         UNION ALL
         SELECT 'before', $1::date, coalesce(sum(users), 0)::int8 FROM active_users
         WHERE window_kind = 'new' AND day < $1",
    )
    .bind(start)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    let mut activity = Activity::default();
    for (kind, day, users) in rows {
        match kind.as_str() {
            "week" => {
                activity.weeks.insert(day, users);
            }
            "month" => {
                activity.months.insert(day, users);
            }
            "before" => activity.users_before = users,
            kind => {
                let entry = activity.days.entry(day).or_default();
                match kind {
                    "day" => entry.dau = users,
                    "7d" => entry.wau = users,
                    "30d" => entry.mau = users,
                    "new" => entry.new_users = users,
                    _ => entry.signups = users,
                }
            }
        }
    }
    Ok(activity)
}

/// One sign-up day of the `onboarding_days` rollup.
#[derive(Debug, Clone, Default, FromRow)]
pub struct OnboardingDay {
    /// The local sign-up day.
    pub signup_day: NaiveDate,
    /// Persons who signed up that day.
    pub signups: i64,
    /// Of them, those who have done every step.
    pub completed: i64,
    /// Per step, in the tenant's order: those who have done it.
    pub step_counts: Vec<i64>,
    /// Seconds from sign-up to the last step, per completed sign-up,
    /// ascending.
    pub completion_seconds: Vec<f64>,
}

/// The onboarding rollup of a run of sign-up days, from which the cohorts
/// of every period within them are computed without another read.
#[derive(Debug, Clone, Default)]
pub struct Onboarding {
    /// Sign-up days with sign-ups, in order.
    days: Vec<OnboardingDay>,
}

/// The onboarding of a period's sign-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardingReport {
    /// Everyone who signed up in the period, as one cohort dated `from`.
    pub period: OnboardingCohort,
    /// One cohort per bucket, empty ones included.
    pub cohorts: Vec<OnboardingCohort>,
}

/// Reads the onboarding rollup of the sign-up days `from..=to`.
pub async fn onboarding(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Onboarding, DbError> {
    let days = sqlx::query_as(
        "SELECT signup_day, signups, completed, step_counts, completion_seconds
         FROM onboarding_days WHERE signup_day BETWEEN $1 AND $2 ORDER BY signup_day",
    )
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    Ok(Onboarding { days })
}

impl Onboarding {
    /// The rollup days within `from..=to`.
    fn range(&self, from: NaiveDate, to: NaiveDate) -> &[OnboardingDay] {
        let start = self.days.partition_point(|d| d.signup_day < from);
        let end = self.days.partition_point(|d| d.signup_day <= to);
        &self.days[start..end.max(start)]
    }

    /// The persons who signed up in `from..=to` as one cohort dated `date`;
    /// `steps` are the tenant's onboarding steps.
    pub fn cohort(
        &self,
        date: NaiveDate,
        from: NaiveDate,
        to: NaiveDate,
        steps: &[String],
    ) -> OnboardingCohort {
        let days = self.range(from, to);
        let (mut signups, mut completed) = (0, 0);
        let mut done = vec![0; steps.len()];
        for day in days {
            signups += day.signups;
            completed += day.completed;
            for (total, count) in done.iter_mut().zip(&day.step_counts) {
                *total += count;
            }
        }
        let runs: Vec<&[f64]> = days
            .iter()
            .map(|d| d.completion_seconds.as_slice())
            .collect();
        OnboardingCohort {
            date,
            signups,
            completed,
            completion_rate: cohort_completion_rate(signups, completed, steps.len()),
            median_seconds_to_complete: median_of_sorted(&runs),
            steps: steps
                .iter()
                .zip(done)
                .map(|(step, completed)| StepCompletion {
                    step: step.clone(),
                    completed,
                })
                .collect(),
        }
    }

    /// The onboarding of the persons who signed up in `from..=to`, as a
    /// whole and per bucket at `granularity`.
    pub fn report(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        granularity: Granularity,
        steps: &[String],
    ) -> OnboardingReport {
        OnboardingReport {
            period: self.cohort(from, from, to, steps),
            cohorts: buckets(from, to, granularity)
                .into_iter()
                .map(|(start, end)| self.cohort(start, start, end, steps))
                .collect(),
        }
    }
}

/// The median of the values of `runs`, each sorted ascending, exactly as
/// `percentile_cont(0.5)` computes it over all of them: the middle value,
/// or `lo + 0.5 × (hi − lo)` of the two middle ones; `None` without values.
pub(crate) fn median_of_sorted(runs: &[&[f64]]) -> Option<f64> {
    let middle = |lo: f64, hi: f64| lo + 0.5 * (hi - lo);
    match runs.iter().filter(|r| !r.is_empty()).count() {
        0 => None,
        1 => {
            let values = runs.iter().find(|r| !r.is_empty())?;
            let n = values.len();
            Some(middle(values[(n - 1) / 2], values[n / 2]))
        }
        _ => {
            let mut values: Vec<f64> = runs.concat();
            let n = values.len();
            let (_, lo, above) = values.select_nth_unstable_by((n - 1) / 2, f64::total_cmp);
            let lo = *lo;
            if n % 2 == 1 {
                return Some(lo);
            }
            let hi = above.iter().copied().min_by(f64::total_cmp)?;
            Some(middle(lo, hi))
        }
    }
}

/// `completed` ÷ `signups`, unless there are no sign-ups or no steps to do.
fn cohort_completion_rate(signups: i64, completed: i64, steps: usize) -> Option<f64> {
    if steps == 0 {
        return None;
    }
    fraction(completed as f64, signups as f64)
}

/// The [`TOP_EVENTS`] track events with the most calls in `from..=to`
/// (ties by name), with their adopters; `total_users` is the number of
/// persons ever active up to `to`. Whole months are read from the month
/// rollups, the days at the edges from the daily ones (see `MonthCover`);
/// the adopters per top event, to date and new in the period, likewise.
pub async fn top_events(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    total_users: i64,
) -> Result<Vec<TopEvent>, DbError> {
    let cover = MonthCover::new(from, to);
    let mut events: Vec<TopEvent> = sqlx::query_as(
        "WITH top AS (
             SELECT name, sum(count)::int8 AS calls
             FROM (SELECT name, count FROM event_counts_months
                   WHERE type = 'track' AND month >= $3 AND month < $4
                   UNION ALL
                   SELECT name, count FROM event_counts
                   WHERE type = 'track' AND day >= $1 AND day < $3
                   UNION ALL
                   SELECT name, count FROM event_counts
                   WHERE type = 'track' AND day >= $4 AND day <= $2) c
             GROUP BY name ORDER BY calls DESC, name LIMIT $6
         )
         SELECT top.name AS event, top.calls, a.adopters, a.new_adopters
         FROM top CROSS JOIN LATERAL (
             SELECT coalesce(sum(total), 0)::int8 AS adopters,
                    coalesce(sum(fresh), 0)::int8 AS new_adopters
             FROM (SELECT adopters AS total,
                          CASE WHEN month >= $3 AND month < $4 THEN adopters END AS fresh
                   FROM event_adopters_months WHERE event = top.name AND month < $5
                   UNION ALL
                   SELECT NULL, adopters FROM event_adopters
                   WHERE event = top.name AND day >= $1 AND day < $3
                   UNION ALL
                   SELECT adopters, CASE WHEN day >= $1 THEN adopters END FROM event_adopters
                   WHERE event = top.name AND day >= $5 AND day <= $2) x
         ) a
         ORDER BY top.calls DESC, top.name",
    )
    .bind(cover.from)
    .bind(cover.to)
    .bind(cover.months_from)
    .bind(cover.months_to)
    .bind(cover.until)
    .bind(TOP_EVENTS)
    .fetch_all(tx.conn())
    .await?;
    for event in &mut events {
        event.adoption_rate = fraction(event.adopters as f64, total_users as f64);
    }
    Ok(events)
}

/// The product rollups of a run of local days, read once, from which the
/// users KPIs of every period within them are computed (a report and its
/// comparison period).
#[derive(Debug, Clone, Default)]
pub struct UsersRollups {
    /// Active users, sign-ups and new users.
    pub activity: Activity,
    /// Onboarding by sign-up day.
    pub onboarding: Onboarding,
}

impl UsersRollups {
    /// Reads the rollups of `from..=to`.
    pub async fn read(tx: &mut TenantTx, from: NaiveDate, to: NaiveDate) -> Result<Self, DbError> {
        Ok(UsersRollups {
            activity: activity(tx, from, to).await?,
            onboarding: onboarding(tx, from, to).await?,
        })
    }

    /// The users KPIs of `from..=to`, which the days read must cover.
    pub fn kpis(&self, from: NaiveDate, to: NaiveDate, steps: &[String]) -> UsersKpis {
        let onboarding = self.onboarding.cohort(from, from, to, steps);
        self.activity.kpis(from, to, &onboarding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("a test date")
    }

    fn activity() -> Activity {
        let mut activity = Activity {
            users_before: 7,
            ..Default::default()
        };
        // Thursday Jan 1 to Sunday Jan 4, then Monday Jan 5.
        for (date, dau, mau, new_users, signups) in [
            ("2026-01-01", 2, 4, 1, 1),
            ("2026-01-02", 0, 4, 0, 0),
            ("2026-01-04", 3, 6, 2, 1),
            ("2026-01-05", 1, 6, 0, 0),
        ] {
            activity.days.insert(
                day(date),
                ActivityDay {
                    dau,
                    wau: mau - 1,
                    mau,
                    new_users,
                    signups,
                },
            );
        }
        activity.weeks.insert(day("2025-12-29"), 5);
        activity.weeks.insert(day("2026-01-05"), 1);
        activity
    }

    #[test]
    fn a_clipped_week_reports_the_whole_calendar_week() {
        let series = activity().series(day("2026-01-01"), day("2026-01-06"), Granularity::Week);
        assert_eq!(series.len(), 2);
        let first = &series[0];
        assert_eq!(first.date, day("2026-01-01"));
        assert_eq!(first.active_users, 5);
        // 5 DAU over 4 days; Jan 3 has no rows and no MAU.
        assert_eq!(first.average_dau, 1.25);
        assert_eq!(first.mau, 6);
        // (2/4 + 0/4 + 3/6) / 3.
        assert_eq!(first.stickiness, Some(0.333333));
        assert_eq!((first.signups, first.new_users), (2, 3));
        assert_eq!(series[1].active_users, 1);
        // Jan 6 has no MAU: only Jan 5 counts.
        assert_eq!(series[1].stickiness, Some(0.166667));
        assert_eq!(series[1].mau, 0);
    }

    #[test]
    fn kpis_take_windows_at_the_last_day_and_totals_to_date() {
        let activity = activity();
        let cohort = OnboardingCohort {
            date: day("2026-01-01"),
            signups: 2,
            completed: 1,
            completion_rate: cohort_completion_rate(2, 1, 3),
            median_seconds_to_complete: Some(60.0),
            steps: Vec::new(),
        };
        let kpis = activity.kpis(day("2026-01-02"), day("2026-01-05"), &cohort);
        assert_eq!(kpis.average_dau, 1.0);
        assert_eq!((kpis.wau, kpis.mau), (5, 6));
        assert_eq!(kpis.stickiness, Some(0.222222));
        assert_eq!((kpis.signups, kpis.new_users), (1, 2));
        assert_eq!(kpis.total_users, 10);
        assert_eq!(kpis.onboarding_completion_rate, Some(0.5));
        assert_eq!(kpis.median_seconds_to_onboard, Some(60.0));
        let empty = Activity::default().kpis(day("2026-01-02"), day("2026-01-05"), &cohort);
        assert_eq!((empty.average_dau, empty.stickiness), (0.0, None));
    }

    #[test]
    fn medians_interpolate_the_two_middle_values_as_percentile_cont() {
        assert_eq!(median_of_sorted(&[]), None);
        assert_eq!(median_of_sorted(&[&[], &[]]), None);
        assert_eq!(median_of_sorted(&[&[5.0]]), Some(5.0));
        assert_eq!(median_of_sorted(&[&[], &[1.0, 2.0, 10.0]]), Some(2.0));
        assert_eq!(median_of_sorted(&[&[1.0, 2.0, 10.0, 11.0]]), Some(6.0));
        // Runs are merged whatever their order: 1 3 4 7 8 9 20.
        assert_eq!(
            median_of_sorted(&[&[4.0, 8.0, 20.0], &[1.0, 9.0], &[3.0, 7.0]]),
            Some(7.0)
        );
        // 1 3 4 7 8 9: between 4 and 7; negative durations sort first.
        assert_eq!(
            median_of_sorted(&[&[4.0, 8.0], &[1.0, 9.0], &[3.0, 7.0]]),
            Some(5.5)
        );
        assert_eq!(median_of_sorted(&[&[-3.0, 2.0], &[-1.0]]), Some(-1.0));
        assert_eq!(
            median_of_sorted(&[&[0.1], &[0.2]]),
            Some(0.1 + 0.5 * (0.2 - 0.1))
        );
    }

    #[test]
    fn cohorts_add_their_days_and_take_the_median_of_all_of_them() {
        let steps = ["A".to_owned(), "B".to_owned()];
        let onboarding = Onboarding {
            days: vec![
                OnboardingDay {
                    signup_day: day("2026-01-01"),
                    signups: 3,
                    completed: 2,
                    step_counts: vec![3, 2],
                    completion_seconds: vec![60.0, 600.0],
                },
                OnboardingDay {
                    signup_day: day("2026-01-03"),
                    signups: 2,
                    completed: 1,
                    step_counts: vec![1, 2],
                    completion_seconds: vec![120.0],
                },
                OnboardingDay {
                    signup_day: day("2026-01-05"),
                    signups: 1,
                    completed: 1,
                    step_counts: vec![1, 1],
                    completion_seconds: vec![30.0],
                },
            ],
        };
        let report = onboarding.report(
            day("2026-01-01"),
            day("2026-01-05"),
            Granularity::Week,
            &steps,
        );
        assert_eq!(report.period.signups, 6);
        assert_eq!(report.period.completed, 4);
        // 30 60 120 600.
        assert_eq!(report.period.median_seconds_to_complete, Some(90.0));
        let counts: Vec<i64> = report.period.steps.iter().map(|s| s.completed).collect();
        assert_eq!(counts, [5, 5]);
        assert_eq!(report.cohorts.len(), 2);
        let first = &report.cohorts[0];
        assert_eq!(
            (first.date, first.signups, first.completed),
            (day("2026-01-01"), 5, 3)
        );
        assert_eq!(first.median_seconds_to_complete, Some(120.0));
        assert_eq!(first.completion_rate, Some(0.6));
        let second = &report.cohorts[1];
        assert_eq!((second.date, second.signups), (day("2026-01-05"), 1));
        assert_eq!(second.median_seconds_to_complete, Some(30.0));
        let empty = onboarding.cohort(
            day("2026-01-02"),
            day("2026-01-02"),
            day("2026-01-02"),
            &steps,
        );
        assert_eq!((empty.signups, empty.completion_rate), (0, None));
        assert_eq!(empty.median_seconds_to_complete, None);
        let counts: Vec<i64> = empty.steps.iter().map(|s| s.completed).collect();
        assert_eq!(counts, [0, 0]);
    }

    #[test]
    fn completion_needs_sign_ups_and_steps() {
        assert_eq!(cohort_completion_rate(0, 0, 2), None);
        assert_eq!(cohort_completion_rate(3, 0, 0), None);
        assert_eq!(cohort_completion_rate(3, 1, 2), Some(0.333333));
    }
}
