//! Keeps the product and support rollups up to date with runs of one
//! tenant's calls ([`apply_calls`]): the rollup worker ([`super::inbox`])
//! applies chunks of the rollup inbox, and [`super::rebuild`] feeds the
//! tenant's stored events through the same statements, a month at a time.
//! A run is first staged in scratch tables, aggregated: the distinct (id,
//! day) of activity and the earliest call per (id, event), so that the
//! statements after it read each fact once, however many calls repeat it.
//!
//! Every statement is a delta: it reads what the staged rows change and
//! adjusts the rollups by exactly that, so a batch costs in proportion to its
//! rows and never rescans a tenant's history. Counts of distinct persons per
//! window use one rule (see `APPLY_ACTIVITY`): when a set D of active days
//! is added to (or removed from) a person's set B, a window gains (or loses)
//! the person iff it holds no day of B and the window's earliest day of D is
//! `d`; so each day `d` of D counts for the windows that hold no day of B∪D
//! before it and no day of B after it.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::DbError;

/// Scratch tables of the delta statements; emptied at every commit.
pub(crate) const SCRATCH: &[&str] = &[
    "CREATE TEMPORARY TABLE IF NOT EXISTS activity_delta (
        person_id text COLLATE \"C\" NOT NULL,
        day date NOT NULL,
        PRIMARY KEY (person_id, day)
    ) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_days (
        id text COLLATE \"C\" NOT NULL,
        day date NOT NULL
    ) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS staged_firsts (
        id text COLLATE \"C\" NOT NULL,
        event text COLLATE \"C\" NOT NULL,
        first_at timestamptz NOT NULL
    ) ON COMMIT DELETE ROWS",
    "CREATE TEMPORARY TABLE IF NOT EXISTS firsts_delta (
        person_id text COLLATE \"C\" NOT NULL,
        event text COLLATE \"C\" NOT NULL,
        old_first timestamptz,
        new_first timestamptz
    ) ON COMMIT DELETE ROWS",
];

/// A run of a tenant's calls for [`apply_calls`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Calls {
    /// The tenant's oldest rollup inbox rows holding about this many calls
    /// (at least one row, and whole rows), deleted as they are read.
    Inbox(i64),
    /// The tenant's stored calls of the calendar month (UTC) that starts at
    /// this instant.
    Month(DateTime<Utc>),
}

/// Stages what the rollups read of a run of calls: the source given defines
/// `calls` (`time, type, event, user_id, anonymous_id, previous_id,
/// properties`; `$1` tenant, `$3` its argument), `$2` is the
/// tenant's time zone. Counts the calls into `event_counts` and
/// `event_counts_months` right away, stages the distinct (id, local day) of
/// activity and the earliest call per (id, track event), and keeps in
/// `ingest_staging` only the calls read one by one: identify and alias
/// (merges) and ticket events. Answers how many calls it read, and whether
/// they hold activity, merges and tickets.
macro_rules! stage_calls {
    ($calls:literal) => {
        concat!(
            "WITH ",
            $calls,
            ", days AS (
    INSERT INTO staged_days (id, day)
    SELECT DISTINCT coalesce(user_id, anonymous_id), (time AT TIME ZONE $2)::date
    FROM calls WHERE type IN ('track', 'page', 'screen')
    RETURNING 1
), counted AS (
    INSERT INTO event_counts AS c (tenant_id, day, type, name, count)
    SELECT $1, (time AT TIME ZONE $2)::date, type, coalesce(event, ''), count(*)
    FROM calls WHERE type IN ('track', 'page', 'screen')
    GROUP BY 2, 3, 4 ORDER BY 3, 2, 4
    ON CONFLICT (tenant_id, type, day, name) DO UPDATE SET count = c.count + excluded.count
)",
            super::months::count_months!(),
            ", firsts AS (
    INSERT INTO staged_firsts (id, event, first_at)
    SELECT coalesce(user_id, anonymous_id), event, min(time)
    FROM calls WHERE type = 'track' AND event IS NOT NULL
    GROUP BY 1, 2
), kept AS (
    INSERT INTO ingest_staging (tenant_id, time, message_id, message_hash, type, event, user_id,
                                anonymous_id, previous_id, properties, received_at)
    SELECT $1, time, '', '00000000-0000-0000-0000-000000000000', type, event, user_id,
           anonymous_id, previous_id, properties, time
    FROM calls
    WHERE type IN ('identify', 'alias')
       OR (type = 'track' AND event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved'))
    RETURNING type
)
SELECT (SELECT count(*) FROM calls),
       EXISTS (SELECT FROM days),
       EXISTS (SELECT FROM kept WHERE type <> 'track'),
       EXISTS (SELECT FROM kept WHERE type = 'track')"
        )
    };
}

/// Stages the tenant's oldest inbox rows, deleting them: as many as hold
/// fewer than `$3` calls before them (so at least one).
const STAGE_INBOX: &str = stage_calls!(
    "taken AS (
    DELETE FROM rollup_inbox
    WHERE tenant_id = $1
      AND id IN (SELECT id
                 FROM (SELECT id, sum(calls) OVER (ORDER BY id) - calls AS before
                       FROM rollup_inbox WHERE tenant_id = $1) r
                 WHERE before < $3)
    RETURNING times, types, events, user_ids, anonymous_ids, previous_ids, properties
), calls AS (
    SELECT c.*
    FROM taken,
         unnest(times, types, events, user_ids, anonymous_ids, previous_ids, properties)
             AS c(time, type, event, user_id, anonymous_id, previous_id, properties)
)"
);

/// Stages the tenant's stored track, page and screen calls of the month
/// starting at `$3`.
const STAGE_MONTH: &str = stage_calls!(
    "calls AS (
    SELECT time, type, event, user_id, anonymous_id, NULL::text AS previous_id,
           CASE WHEN event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved')
                THEN properties::text END AS properties
    FROM events
    WHERE tenant_id = $1 AND time >= $3 AND time < $3 + interval '1 month'
      AND type IN ('track', 'page', 'screen')
)"
);

/// The tenant settings the rollups depend on.
#[derive(sqlx::FromRow)]
struct Settings {
    time_zone: String,
    signup_event: String,
    onboarding_steps: Vec<String>,
}

/// The advisory lock that serialises rollup maintenance per tenant (every
/// delta reads the rollups it adjusts), of the tenant bound as `$1`.
const LOCK_KEY: &str = "hashtextextended('northstar.product.' || $1::text, 0)";

/// Ids that identity links merged into another person in this batch, and
/// that still key rows: (merged id, person).
const MERGED_IDS: &str = "
SELECT c.id, l.person_id
FROM (SELECT anonymous_id AS id FROM ingest_staging
      WHERE tenant_id = $1 AND type = 'identify' AND user_id IS NOT NULL AND anonymous_id IS NOT NULL
      UNION SELECT previous_id FROM ingest_staging WHERE tenant_id = $1 AND type = 'alias') c
JOIN identity_links l ON l.tenant_id = $1 AND l.alias_id = c.id AND l.person_id <> c.id
WHERE EXISTS (SELECT 1 FROM activity_days a WHERE a.tenant_id = $1 AND a.person_id = c.id)
   OR EXISTS (SELECT 1 FROM event_firsts f WHERE f.tenant_id = $1 AND f.person_id = c.id)";

/// Stages the active days of merged ids for removal.
const STAGE_MERGED_DAYS: &str = "
INSERT INTO activity_delta (person_id, day)
SELECT person_id, day FROM activity_days WHERE tenant_id = $1 AND person_id = ANY($2)";

/// Moves the active days of merged ids to their person; stages the days the
/// person gains.
const MOVE_MERGED_DAYS: &str = "
WITH gone AS (
    DELETE FROM activity_days WHERE tenant_id = $1 AND person_id = ANY($2)
    RETURNING person_id, day
), moved AS (
    INSERT INTO activity_days (tenant_id, person_id, day)
    SELECT DISTINCT $1::uuid, m.person_id, g.day
    FROM gone g JOIN unnest($2::text[], $3::text[]) AS m(merged_id, person_id) ON m.merged_id = g.person_id
    ORDER BY 2, 3
    ON CONFLICT DO NOTHING
    RETURNING person_id, day
)
INSERT INTO activity_delta (person_id, day) SELECT person_id, day FROM moved";

/// Moves the first uses of merged ids: each is staged as a change to
/// nothing for the merged id, and as an earlier first use for the person
/// where it is one.
const MOVE_MERGED_FIRSTS: &str = "
WITH gone AS (
    DELETE FROM event_firsts WHERE tenant_id = $1 AND person_id = ANY($2)
    RETURNING person_id, event, first_at
), removed AS (
    INSERT INTO firsts_delta (person_id, event, old_first, new_first)
    SELECT person_id, event, first_at, NULL FROM gone
), offered AS (
    SELECT m.person_id, g.event, min(g.first_at) AS first_at
    FROM gone g JOIN unnest($2::text[], $3::text[]) AS m(merged_id, person_id) ON m.merged_id = g.person_id
    GROUP BY 1, 2
)
INSERT INTO firsts_delta (person_id, event, old_first, new_first)
SELECT o.person_id, o.event, f.first_at, o.first_at
FROM offered o
LEFT JOIN event_firsts f ON f.tenant_id = $1 AND f.person_id = o.person_id AND f.event = o.event
WHERE f.first_at IS NULL OR o.first_at < f.first_at";

/// The person of every staged (id, local day) of activity, added to
/// `activity_days`; the new ones are staged as a delta.
const ADD_STAGED_DAYS: &str = "
WITH added AS (
    INSERT INTO activity_days (tenant_id, person_id, day)
    SELECT DISTINCT $1::uuid, coalesce(l.person_id, s.id), s.day
    FROM staged_days s LEFT JOIN identity_links l ON l.tenant_id = $1 AND l.alias_id = s.id
    ORDER BY 2, 3
    ON CONFLICT DO NOTHING
    RETURNING person_id, day
)
INSERT INTO activity_delta (person_id, day) SELECT person_id, day FROM added";

/// Adjusts `active_users` by the staged delta of active days: +1 per window
/// gained when `$2` is 1 (days added, already in `activity_days`), −1 per
/// window lost when `$2` is −1 (days about to be removed). A delta day
/// changes the rolling windows (`7d`, `30d`) that end on a run of days, so
/// those runs are added up as steps (+1 where a run starts, −1 after it
/// ends) and expanded once per distinct level, not once per person.
const APPLY_ACTIVITY: &str = "
WITH d AS (
    SELECT d.day,
           (SELECT max(a.day) FROM activity_days a
            WHERE a.tenant_id = $1 AND a.person_id = d.person_id AND a.day < d.day) AS prev,
           (SELECT min(a.day) FROM activity_days a
            WHERE a.tenant_id = $1 AND a.person_id = d.person_id AND a.day > d.day
              AND NOT EXISTS (SELECT 1 FROM activity_delta x
                              WHERE x.person_id = a.person_id AND x.day = a.day)) AS next
    FROM activity_delta d
), runs AS (
    SELECT w.kind,
           CASE WHEN d.prev IS NULL THEN d.day ELSE greatest(d.day, d.prev + w.days) END AS first,
           CASE WHEN d.next IS NULL THEN d.day + w.days - 1
                ELSE least(d.day + w.days - 1, d.next - 1) END AS last
    FROM d CROSS JOIN (VALUES ('7d', 7), ('30d', 30)) AS w(kind, days)
), steps AS (
    SELECT kind, day, sum(step) AS step
    FROM (SELECT kind, first AS day, 1 AS step FROM runs WHERE first <= last
          UNION ALL
          SELECT kind, last + 1, -1 FROM runs WHERE first <= last) s
    GROUP BY kind, day
), levels AS (
    SELECT kind, day, (sum(step) OVER (PARTITION BY kind ORDER BY day))::int AS level,
           lead(day) OVER (PARTITION BY kind ORDER BY day) AS until
    FROM steps
), windows AS (
    SELECT 'day' AS kind, day, 1 AS weight FROM d
    UNION ALL
    SELECT l.kind, l.day + k, l.level FROM levels l, generate_series(0, l.until - l.day - 1) AS k
    WHERE l.level <> 0
    UNION ALL
    SELECT 'week', w.start, 1 FROM d, LATERAL (SELECT date_trunc('week', d.day)::date AS start) w
    WHERE (d.prev IS NULL OR d.prev < w.start) AND (d.next IS NULL OR d.next >= w.start + 7)
    UNION ALL
    SELECT 'month', m.start, 1 FROM d, LATERAL (SELECT date_trunc('month', d.day)::date AS start) m
    WHERE (d.prev IS NULL OR d.prev < m.start)
      AND (d.next IS NULL OR d.next >= (m.start + interval '1 month')::date)
    UNION ALL
    SELECT 'new', d.day, 1 FROM d WHERE d.prev IS NULL
    UNION ALL
    SELECT 'new', d.next, -1 FROM d WHERE d.prev IS NULL AND d.next IS NOT NULL
)
INSERT INTO active_users AS u (tenant_id, window_kind, day, users)
SELECT $1, kind, day, $2 * sum(weight) FROM windows GROUP BY kind, day ORDER BY kind, day
ON CONFLICT (tenant_id, window_kind, day) DO UPDATE SET users = u.users + excluded.users";

/// Stages the first uses that the staged track calls make earlier.
const STAGE_STAGED_FIRSTS: &str = "
WITH offered AS (
    SELECT coalesce(l.person_id, s.id) AS person_id, s.event, min(s.first_at) AS first_at
    FROM staged_firsts s LEFT JOIN identity_links l ON l.tenant_id = $1 AND l.alias_id = s.id
    GROUP BY 1, 2
)
INSERT INTO firsts_delta (person_id, event, old_first, new_first)
SELECT o.person_id, o.event, f.first_at, o.first_at
FROM offered o
LEFT JOIN event_firsts f ON f.tenant_id = $1 AND f.person_id = o.person_id AND f.event = o.event
WHERE f.first_at IS NULL OR o.first_at < f.first_at";

/// Writes the staged first uses, and moves each adopter to its new day
/// (and month).
const APPLY_FIRSTS: &str = concat!(
    "
WITH written AS (
    INSERT INTO event_firsts AS f (tenant_id, person_id, event, first_at)
    SELECT $1, person_id, event, new_first FROM firsts_delta WHERE new_first IS NOT NULL ORDER BY 2, 3
    ON CONFLICT (tenant_id, person_id, event) DO UPDATE SET first_at = least(f.first_at, excluded.first_at)
), moves AS (
    SELECT (new_first AT TIME ZONE $2)::date AS day, event, 1 AS n FROM firsts_delta
    WHERE new_first IS NOT NULL
    UNION ALL
    SELECT (old_first AT TIME ZONE $2)::date, event, -1 FROM firsts_delta WHERE old_first IS NOT NULL
)",
    super::months::adopt_months!(),
    "
INSERT INTO event_adopters AS a (tenant_id, day, event, adopters)
SELECT $1, day, event, sum(n) FROM moves GROUP BY 2, 3 HAVING sum(n) <> 0 ORDER BY 3, 2
ON CONFLICT (tenant_id, event, day) DO UPDATE SET adopters = a.adopters + excluded.adopters"
);

/// Deletes the onboarding rows of persons whose sign-up or step times
/// changed ($2 sign-up event, $3 steps); answers their sign-up days.
const CLEAR_ONBOARDING: &str = "
WITH gone AS (
    DELETE FROM onboarding o USING firsts_delta d
    WHERE o.tenant_id = $1 AND o.person_id = d.person_id AND (d.event = $2 OR d.event = ANY($3))
    RETURNING o.signup_day
)
SELECT DISTINCT signup_day FROM gone";

/// Recomputes the onboarding rows of persons whose sign-up or step times
/// changed ($3 sign-up event, $4 steps); answers their sign-up days.
const REFRESH_ONBOARDING: &str = "
WITH touched AS (
    SELECT DISTINCT person_id FROM firsts_delta WHERE event = $3 OR event = ANY($4)
), added AS (
    INSERT INTO onboarding (tenant_id, person_id, signed_up_at, signup_day, step_times, completed_at)
    SELECT $1, s.person_id, s.first_at, (s.first_at AT TIME ZONE $2)::date, steps.times,
           CASE WHEN steps.done = cardinality($4::text[]) AND steps.done > 0
                THEN greatest(s.first_at, steps.last) END
    FROM touched t
    JOIN event_firsts s ON s.tenant_id = $1 AND s.person_id = t.person_id AND s.event = $3
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(f.first_at ORDER BY k.ord), '{}') AS times,
               count(f.first_at) AS done, max(f.first_at) AS last
        FROM unnest($4::text[]) WITH ORDINALITY AS k(event, ord)
        LEFT JOIN event_firsts f ON f.tenant_id = $1 AND f.person_id = s.person_id AND f.event = k.event
    ) steps
    RETURNING signup_day
)
SELECT DISTINCT signup_day FROM added";

/// Recomputes the `onboarding_days` rows of the sign-up days `$2` from
/// their `onboarding` rows: counts, completions per step, and the sorted
/// seconds to complete (exact medians of any run of days come from them).
const REFRESH_ONBOARDING_DAYS: &str = "
WITH signups AS (
    SELECT signup_day, step_times, extract(epoch FROM completed_at - signed_up_at)::float8 AS seconds
    FROM onboarding WHERE tenant_id = $1 AND signup_day = ANY($2)
), totals AS (
    SELECT signup_day, count(*) AS signups, count(seconds) AS completed,
           coalesce(array_agg(seconds ORDER BY seconds) FILTER (WHERE seconds IS NOT NULL), '{}')
               AS completion_seconds
    FROM signups GROUP BY signup_day
), steps AS (
    SELECT signup_day, array_agg(done ORDER BY k) AS step_counts
    FROM (SELECT o.signup_day, s.k, count(s.t) AS done
          FROM signups o CROSS JOIN LATERAL unnest(o.step_times) WITH ORDINALITY AS s(t, k)
          GROUP BY 1, 2) per_step
    GROUP BY signup_day
), emptied AS (
    DELETE FROM onboarding_days d
    WHERE d.tenant_id = $1 AND d.signup_day = ANY($2)
      AND NOT EXISTS (SELECT 1 FROM totals t WHERE t.signup_day = d.signup_day)
)
INSERT INTO onboarding_days AS d (tenant_id, signup_day, signups, completed, step_counts,
                                  completion_seconds)
SELECT $1, t.signup_day, t.signups, t.completed, coalesce(s.step_counts, '{}'), t.completion_seconds
FROM totals t LEFT JOIN steps s ON s.signup_day = t.signup_day
ORDER BY t.signup_day
ON CONFLICT (tenant_id, signup_day) DO UPDATE SET
    signups = excluded.signups, completed = excluded.completed,
    step_counts = excluded.step_counts, completion_seconds = excluded.completion_seconds";

/// Merges the staged ticket events into `tickets`, and moves each ticket's
/// opened and resolved counts to its new days; answers the creation days
/// (old and new) of the tickets it changed. A ticket counts once its
/// `Ticket Created` has arrived; the first reply is the first `Ticket
/// Replied` whose `author_type` is `agent` or absent.
const APPLY_TICKETS: &str = "
WITH staged AS (
    SELECT properties::jsonb ->> 'ticket_id' AS ticket_id,
           min(time) FILTER (WHERE event = 'Ticket Created') AS created,
           min(time) FILTER (WHERE event = 'Ticket Replied'
                               AND coalesce(properties::jsonb ->> 'author_type', 'agent') = 'agent') AS replied,
           min(time) FILTER (WHERE event = 'Ticket Resolved') AS resolved
    FROM ingest_staging
    WHERE tenant_id = $1 AND type = 'track'
      AND event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved')
      AND properties::jsonb ->> 'ticket_id' IS NOT NULL
    GROUP BY 1
), merged AS (
    SELECT s.ticket_id, t.created_at AS old_created, t.created_day AS old_created_day,
           t.resolved_at AS old_resolved,
           least(s.created, t.created_at) AS created, least(s.replied, t.first_reply_at) AS replied,
           least(s.resolved, t.resolved_at) AS resolved
    FROM staged s LEFT JOIN tickets t ON t.tenant_id = $1 AND t.ticket_id = s.ticket_id
), written AS (
    INSERT INTO tickets AS t (tenant_id, ticket_id, created_at, created_day, first_reply_at, resolved_at)
    SELECT $1, ticket_id, created, (created AT TIME ZONE $2)::date, replied, resolved
    FROM merged ORDER BY ticket_id
    ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET
        created_at = excluded.created_at, created_day = excluded.created_day,
        first_reply_at = excluded.first_reply_at, resolved_at = excluded.resolved_at
), moves AS (
    SELECT (created AT TIME ZONE $2)::date AS day, 1 AS opened, 0 AS resolved
    FROM merged WHERE created IS NOT NULL
    UNION ALL
    SELECT (old_created AT TIME ZONE $2)::date, -1, 0 FROM merged WHERE old_created IS NOT NULL
    UNION ALL
    SELECT (resolved AT TIME ZONE $2)::date, 0, 1 FROM merged
    WHERE created IS NOT NULL AND resolved IS NOT NULL
    UNION ALL
    SELECT (old_resolved AT TIME ZONE $2)::date, 0, -1 FROM merged
    WHERE old_created IS NOT NULL AND old_resolved IS NOT NULL
), counted AS (
    INSERT INTO ticket_counts AS c (tenant_id, day, opened, resolved)
    SELECT $1, day, sum(opened), sum(resolved) FROM moves GROUP BY 2 ORDER BY 2
    ON CONFLICT (tenant_id, day) DO UPDATE SET opened = c.opened + excluded.opened,
                                               resolved = c.resolved + excluded.resolved
)
SELECT (created AT TIME ZONE $2)::date FROM merged WHERE created IS NOT NULL
UNION
SELECT old_created_day FROM merged WHERE old_created_day IS NOT NULL";

/// Recomputes the `ticket_days` rows of the creation days `$2` from their
/// `tickets`: the sorted seconds to the first reply and to the resolution.
const REFRESH_TICKET_DAYS: &str = "
WITH times AS (
    SELECT created_day,
           extract(epoch FROM first_reply_at - created_at)::float8 AS first_response,
           extract(epoch FROM resolved_at - created_at)::float8 AS resolution
    FROM tickets WHERE tenant_id = $1 AND created_day = ANY($2)
), totals AS (
    SELECT created_day,
           coalesce(array_agg(first_response ORDER BY first_response)
                        FILTER (WHERE first_response IS NOT NULL), '{}') AS first_response_seconds,
           coalesce(array_agg(resolution ORDER BY resolution)
                        FILTER (WHERE resolution IS NOT NULL), '{}') AS resolution_seconds
    FROM times GROUP BY created_day
), emptied AS (
    DELETE FROM ticket_days d
    WHERE d.tenant_id = $1 AND d.created_day = ANY($2)
      AND NOT EXISTS (SELECT 1 FROM totals t WHERE t.created_day = d.created_day)
)
INSERT INTO ticket_days AS d (tenant_id, created_day, first_response_seconds, resolution_seconds)
SELECT $1, created_day, first_response_seconds, resolution_seconds FROM totals ORDER BY created_day
ON CONFLICT (tenant_id, created_day) DO UPDATE SET
    first_response_seconds = excluded.first_response_seconds,
    resolution_seconds = excluded.resolution_seconds";

/// Takes the tenant's rollup lock until the transaction ends (re-entrant).
pub(crate) async fn lock(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), DbError> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"))
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the tenant's rollup lock for the session, until
/// [`unlock_session`]: before a transaction whose snapshot must follow
/// every rollup change made so far.
pub(crate) async fn lock_session(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), DbError> {
    sqlx::query(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Releases the lock [`lock_session`] took.
pub(crate) async fn unlock_session(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<(), DbError> {
    sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates the scratch tables on `conn` if this session has none yet.
pub(crate) async fn prepare(conn: &mut PgConnection) -> Result<(), DbError> {
    for statement in SCRATCH {
        sqlx::query(statement).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Applies a run of calls of `tenant_id` (whose RLS context the
/// transaction on `conn` has set) to the product and support rollups;
/// answers how many calls it read. Its statements are index probes per
/// staged row, which need nested loops (on by default; the batch writer's
/// connection turns them off). The calls must be applied for the first
/// time: a repeat would be counted twice in `event_counts`.
pub(crate) async fn apply_calls(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    calls: Calls,
) -> Result<u64, DbError> {
    lock(conn, tenant_id).await?;
    let settings: Settings =
        sqlx::query_as("SELECT time_zone, signup_event, onboarding_steps FROM tenants")
            .fetch_one(&mut *conn)
            .await?;
    let zone = settings.time_zone.as_str();
    // Empty before use: a rebuild applies many runs in one transaction,
    // while the worker's stage was emptied by its last commit.
    for table in ["staged_days", "staged_firsts", "ingest_staging"] {
        empty(conn, table).await?;
    }
    let stage = match calls {
        Calls::Inbox(limit) => sqlx::query_as(STAGE_INBOX)
            .bind(tenant_id)
            .bind(zone)
            .bind(limit),
        Calls::Month(start) => sqlx::query_as(STAGE_MONTH)
            .bind(tenant_id)
            .bind(zone)
            .bind(start),
    };
    let (read, activity, merges, tickets): (i64, bool, bool, bool) =
        stage.fetch_one(&mut *conn).await?;
    if merges {
        move_merged_ids(conn, tenant_id).await?;
        settle_firsts(conn, tenant_id, &settings).await?;
    }
    if activity {
        empty(conn, "activity_delta").await?;
        run(conn, ADD_STAGED_DAYS, tenant_id).await?;
        apply_activity(conn, tenant_id, 1).await?;
        if tickets {
            apply_tickets(conn, tenant_id, zone).await?;
        }
        run(conn, STAGE_STAGED_FIRSTS, tenant_id).await?;
        settle_firsts(conn, tenant_id, &settings).await?;
    }
    Ok(read.unsigned_abs())
}

/// Re-keys the rollup rows of ids that this batch merged into a person;
/// stages the changes of first uses.
async fn move_merged_ids(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), DbError> {
    let merged: Vec<(String, String)> = sqlx::query_as(MERGED_IDS)
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
    if merged.is_empty() {
        return Ok(());
    }
    let (ids, persons): (Vec<String>, Vec<String>) = merged.into_iter().unzip();
    empty(conn, "activity_delta").await?;
    sqlx::query(STAGE_MERGED_DAYS)
        .bind(tenant_id)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    apply_activity(conn, tenant_id, -1).await?;
    empty(conn, "activity_delta").await?;
    sqlx::query(MOVE_MERGED_DAYS)
        .bind(tenant_id)
        .bind(&ids)
        .bind(&persons)
        .execute(&mut *conn)
        .await?;
    apply_activity(conn, tenant_id, 1).await?;
    sqlx::query(MOVE_MERGED_FIRSTS)
        .bind(tenant_id)
        .bind(&ids)
        .bind(&persons)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Merges the staged ticket events, then recomputes the ticket times of
/// the creation days they touched.
async fn apply_tickets(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    zone: &str,
) -> Result<(), DbError> {
    let days: Vec<NaiveDate> = sqlx::query_scalar(APPLY_TICKETS)
        .bind(tenant_id)
        .bind(zone)
        .fetch_all(&mut *conn)
        .await?;
    refresh_days(conn, REFRESH_TICKET_DAYS, tenant_id, &days).await
}

/// Writes the staged first uses, moves their adopters, refreshes the
/// onboarding of the persons they touch and of their sign-up days (before
/// and after), and empties the stage.
async fn settle_firsts(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    settings: &Settings,
) -> Result<(), DbError> {
    sqlx::query(APPLY_FIRSTS)
        .bind(tenant_id)
        .bind(&settings.time_zone)
        .execute(&mut *conn)
        .await?;
    let mut days: Vec<NaiveDate> = sqlx::query_scalar(CLEAR_ONBOARDING)
        .bind(tenant_id)
        .bind(&settings.signup_event)
        .bind(&settings.onboarding_steps)
        .fetch_all(&mut *conn)
        .await?;
    days.extend(refresh_onboarding(conn, tenant_id, settings).await?);
    refresh_days(conn, REFRESH_ONBOARDING_DAYS, tenant_id, &days).await?;
    empty(conn, "firsts_delta").await
}

/// Inserts the onboarding rows of the persons staged in `firsts_delta`;
/// answers their sign-up days.
async fn refresh_onboarding(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    settings: &Settings,
) -> Result<Vec<NaiveDate>, DbError> {
    Ok(sqlx::query_scalar(REFRESH_ONBOARDING)
        .bind(tenant_id)
        .bind(&settings.time_zone)
        .bind(&settings.signup_event)
        .bind(&settings.onboarding_steps)
        .fetch_all(&mut *conn)
        .await?)
}

/// Runs a daily refresh (`REFRESH_ONBOARDING_DAYS`, `REFRESH_TICKET_DAYS`)
/// for `days` (repeats allowed), unless there are none.
async fn refresh_days(
    conn: &mut PgConnection,
    statement: &str,
    tenant_id: Uuid,
    days: &[NaiveDate],
) -> Result<(), DbError> {
    if days.is_empty() {
        return Ok(());
    }
    let mut days = days.to_vec();
    days.sort_unstable();
    days.dedup();
    sqlx::query(statement)
        .bind(tenant_id)
        .bind(&days)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn apply_activity(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    sign: i64,
) -> Result<(), DbError> {
    sqlx::query(APPLY_ACTIVITY)
        .bind(tenant_id)
        .bind(sign)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Empties a scratch table (a constant name, never input). `DELETE`, as
/// the tables are small: `TRUNCATE` costs a new file and catalog updates.
async fn empty(conn: &mut PgConnection, table: &'static str) -> Result<(), DbError> {
    sqlx::query(&format!("DELETE FROM {table}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Runs a statement whose only parameter is the tenant.
async fn run(conn: &mut PgConnection, statement: &str, tenant_id: Uuid) -> Result<(), DbError> {
    sqlx::query(statement)
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Recomputes every onboarding row of `tenant_id` from `event_firsts`,
/// after its sign-up event or steps changed.
pub(crate) async fn rebuild_onboarding(
    conn: &mut PgConnection,
    tenant_id: Uuid,
) -> Result<(), DbError> {
    lock(conn, tenant_id).await?;
    prepare(conn).await?;
    let settings: Settings =
        sqlx::query_as("SELECT time_zone, signup_event, onboarding_steps FROM tenants")
            .fetch_one(&mut *conn)
            .await?;
    for table in ["onboarding", "onboarding_days"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    empty(conn, "firsts_delta").await?;
    sqlx::query(
        "INSERT INTO firsts_delta (person_id, event, old_first, new_first)
         SELECT person_id, event, first_at, first_at FROM event_firsts WHERE event = $1",
    )
    .bind(&settings.signup_event)
    .execute(&mut *conn)
    .await?;
    let days = refresh_onboarding(conn, tenant_id, &settings).await?;
    refresh_days(conn, REFRESH_ONBOARDING_DAYS, tenant_id, &days).await?;
    empty(conn, "firsts_delta").await
}
