//! Active users, sign-ups, onboarding and top events as the users dashboard
//! shows them, read from the product rollups.
//!
//! Active users, sign-ups and event counts are read in rows proportional to
//! days. Onboarding is the one exception: a median cannot be summed from
//! daily rows, so cohorts are read from the `onboarding` rows of the
//! period's sign-ups (through its `signup_day` index).

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

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
/// that hold `from`.
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
         WHERE window_kind IN ('day', '7d', '30d', 'week', 'month', 'new') AND day BETWEEN $1 AND $2",
    )
    .bind(start)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    let mut activity = Activity::default();
    for (kind, day, users) in rows {
        let entry = activity.days.entry(day).or_default();
        match kind.as_str() {
            "day" => entry.dau = users,
            "7d" => entry.wau = users,
            "30d" => entry.mau = users,
            "new" => entry.new_users = users,
            "week" => {
                activity.weeks.insert(day, users);
            }
            _ => {
                activity.months.insert(day, users);
            }
        }
    }
    let signups: Vec<(NaiveDate, i64)> = sqlx::query_as(
        "SELECT day, adopters FROM event_adopters
         WHERE day BETWEEN $1 AND $2 AND event = (SELECT signup_event FROM tenants)",
    )
    .bind(start)
    .bind(to)
    .fetch_all(tx.conn())
    .await?;
    for (day, adopters) in signups {
        activity.days.entry(day).or_default().signups = adopters;
    }
    activity.users_before = sqlx::query_scalar(
        "SELECT coalesce(sum(users), 0)::int8 FROM active_users WHERE window_kind = 'new' AND day < $1",
    )
    .bind(start)
    .fetch_one(tx.conn())
    .await?;
    Ok(activity)
}

/// The SQL `date_trunc` unit of a cohort bucket.
fn cohort_unit(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Day => "day",
        Granularity::Week => "week",
        Granularity::Month => "month",
    }
}

/// The cohort (the first day in `$1..=$2` of its bucket at unit `$3`) of
/// each onboarding row signed up in the period.
const COHORT: &str = "greatest(date_trunc($3, signup_day::timestamp)::date, $1)";

/// `ARRAY[count(step_times[1]), …]`: how many rows have done each of
/// `steps` steps. Only indices are formatted into the SQL, never input.
fn step_counts_sql(steps: usize) -> String {
    if steps == 0 {
        return "'{}'::int8[]".to_owned();
    }
    let counts: Vec<String> = (1..=steps)
        .map(|k| format!("count(step_times[{k}])"))
        .collect();
    format!("ARRAY[{}]", counts.join(", "))
}

/// The onboarding of a period's sign-ups.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardingReport {
    /// Everyone who signed up in the period, as one cohort dated `from`.
    pub period: OnboardingCohort,
    /// One cohort per bucket, empty ones included.
    pub cohorts: Vec<OnboardingCohort>,
}

/// The onboarding of the persons who signed up in `from..=to`, as a whole
/// (the empty grouping set) and per bucket at `granularity`. `steps` are
/// the tenant's onboarding steps, whose order `step_times` follows. The
/// counts are a hashed aggregate; the medians sort only the completed
/// rows' durations.
pub async fn onboarding(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    granularity: Granularity,
    steps: &[String],
) -> Result<OnboardingReport, DbError> {
    let unit = cohort_unit(granularity);
    let counts: Vec<(Option<NaiveDate>, i64, i64, Vec<i64>)> = sqlx::query_as(&format!(
        "SELECT {COHORT}, count(*), count(completed_at), {}
         FROM onboarding WHERE signup_day BETWEEN $1 AND $2
         GROUP BY GROUPING SETS ((1), ())",
        step_counts_sql(steps.len())
    ))
    .bind(from)
    .bind(to)
    .bind(unit)
    .fetch_all(tx.conn())
    .await?;
    let medians: Vec<(Option<NaiveDate>, Option<f64>)> = sqlx::query_as(&format!(
        "SELECT cohort, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
         FROM (SELECT {COHORT} AS cohort,
                      extract(epoch FROM completed_at - signed_up_at)::float8 AS seconds
               FROM onboarding
               WHERE signup_day BETWEEN $1 AND $2 AND completed_at IS NOT NULL) o
         GROUP BY GROUPING SETS ((cohort), ())"
    ))
    .bind(from)
    .bind(to)
    .bind(unit)
    .fetch_all(tx.conn())
    .await?;
    let medians: HashMap<Option<NaiveDate>, Option<f64>> = medians.into_iter().collect();
    let counts: HashMap<Option<NaiveDate>, (i64, i64, Vec<i64>)> = counts
        .into_iter()
        .map(|(cohort, signups, completed, done)| (cohort, (signups, completed, done)))
        .collect();
    let cohort = |key: Option<NaiveDate>, date: NaiveDate| {
        let (signups, completed, done) = counts.get(&key).cloned().unwrap_or_default();
        OnboardingCohort {
            date,
            signups,
            completed,
            completion_rate: cohort_completion_rate(signups, completed, steps.len()),
            median_seconds_to_complete: medians.get(&key).copied().flatten(),
            steps: steps
                .iter()
                .enumerate()
                .map(|(k, step)| StepCompletion {
                    step: step.clone(),
                    completed: done.get(k).copied().unwrap_or(0),
                })
                .collect(),
        }
    };
    Ok(OnboardingReport {
        period: cohort(None, from),
        cohorts: buckets(from, to, granularity)
            .into_iter()
            .map(|(start, _)| cohort(Some(start), start))
            .collect(),
    })
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
/// persons ever active up to `to`.
pub async fn top_events(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    total_users: i64,
) -> Result<Vec<TopEvent>, DbError> {
    let mut events: Vec<TopEvent> = sqlx::query_as(
        "WITH top AS (
             SELECT name, sum(count)::int8 AS calls FROM event_counts
             WHERE type = 'track' AND day BETWEEN $1 AND $2
             GROUP BY name ORDER BY calls DESC, name LIMIT $3
         )
         SELECT top.name AS event, top.calls,
                coalesce(sum(a.adopters), 0)::int8 AS adopters,
                coalesce(sum(a.adopters) FILTER (WHERE a.day >= $1), 0)::int8 AS new_adopters
         FROM top LEFT JOIN event_adopters a ON a.event = top.name AND a.day <= $2
         GROUP BY top.name, top.calls ORDER BY top.calls DESC, top.name",
    )
    .bind(from)
    .bind(to)
    .bind(TOP_EVENTS)
    .fetch_all(tx.conn())
    .await?;
    for event in &mut events {
        event.adoption_rate = fraction(event.adopters as f64, total_users as f64);
    }
    Ok(events)
}

/// The users KPIs of `from..=to` (for a comparison period).
pub async fn period_kpis(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
    steps: &[String],
) -> Result<UsersKpis, DbError> {
    let activity = activity(tx, from, to).await?;
    let onboarding = onboarding(tx, from, to, Granularity::Month, steps).await?;
    Ok(activity.kpis(from, to, &onboarding.period))
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
    fn step_counts_are_one_column_per_step() {
        assert_eq!(step_counts_sql(0), "'{}'::int8[]");
        assert_eq!(
            step_counts_sql(2),
            "ARRAY[count(step_times[1]), count(step_times[2])]"
        );
    }

    #[test]
    fn completion_needs_sign_ups_and_steps() {
        assert_eq!(cohort_completion_rate(0, 0, 2), None);
        assert_eq!(cohort_completion_rate(3, 0, 0), None);
        assert_eq!(cohort_completion_rate(3, 1, 2), Some(0.333333));
    }
}
