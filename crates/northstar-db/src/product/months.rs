//! Monthly rollups of event counts and adopters (`event_counts_months`,
//! `event_adopters_months`), so that a long period's top events can read a
//! row per month instead of a row per day.
//!
//! The month rows move by exactly the deltas of the daily ones, in the same
//! statements of [`super::maintain`] (the CTEs below), so that a month row
//! always equals its days summed; a rebuild empties both and refills them.

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
