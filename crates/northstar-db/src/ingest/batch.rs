//! A batch of encoded rows from many tenants, and the writer that stores it
//! in one transaction.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use chrono::{DateTime, Datelike, Utc};
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use uuid::Uuid;

use super::{
    EARLY_WRITEBACK,
    partitions::ensure_partitions_on,
    row::{COLUMNS, CopyRows, EventRow, MessageType, message_hash},
};
use crate::DbError;

/// Rows (and rejection counts) of many tenants, to be written together.
#[derive(Default)]
pub struct Batch {
    data: CopyRows,
    parts: BTreeMap<Uuid, Part>,
    /// Tenant and message hash of every row: the dedupe key, as stored.
    seen: HashSet<(Uuid, Uuid)>,
    earliest: Option<DateTime<Utc>>,
    latest: Option<DateTime<Utc>>,
}

/// One tenant's share of a batch.
#[derive(Default)]
struct Part {
    rows: u64,
    duplicates_in_batch: u64,
    identify: bool,
    alias: bool,
    rejected: BTreeMap<String, u64>,
}

/// What a batch did for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantOutcome {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Messages stored for the first time.
    pub stored: u64,
    /// Messages whose id was already stored (retries), now dropped.
    pub duplicates: u64,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a row. A row whose tenant and message id the batch already holds
    /// is counted as a duplicate and not written twice.
    pub fn push(&mut self, row: &EventRow) {
        let part = self.parts.entry(row.tenant_id).or_default();
        let hash = message_hash(&row.message_id);
        if !self.seen.insert((row.tenant_id, hash)) {
            part.duplicates_in_batch += 1;
            return;
        }
        part.rows += 1;
        match row.kind {
            MessageType::Identify => part.identify = true,
            MessageType::Alias => part.alias = true,
            MessageType::Group | MessageType::Track | MessageType::Page | MessageType::Screen => {}
        }
        self.earliest = Some(self.earliest.map_or(row.time, |t| t.min(row.time)));
        self.latest = Some(self.latest.map_or(row.time, |t| t.max(row.time)));
        row.encode_with_hash(hash, &mut self.data);
    }

    /// Counts `count` messages of `tenant_id` rejected for `reason`.
    pub fn reject(&mut self, tenant_id: Uuid, reason: &str, count: u64) {
        if count == 0 {
            return;
        }
        *self
            .parts
            .entry(tenant_id)
            .or_default()
            .rejected
            .entry(reason.to_owned())
            .or_default() += count;
    }

    /// Rows to write.
    pub fn rows(&self) -> u64 {
        self.parts.values().map(|p| p.rows).sum()
    }

    /// Size of the encoded rows in bytes.
    pub fn encoded_bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether the batch holds neither rows nor counts.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The earliest and latest row times.
    fn time_span(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        Some((self.earliest?, self.latest?))
    }
}

/// A dedicated connection that writes batches. It owns a temporary staging
/// table (rows are COPYed there: PostgreSQL refuses COPY FROM into a table
/// with row level security) and `ingest_identities`, and remembers which
/// monthly partitions exist and which tenants recently repeated a stored
/// message id.
pub struct BatchWriter {
    conn: PgConnection,
    months: HashSet<i32>,
    /// Tenants whose rows repeated a stored message id, and when they last did.
    repeating: HashMap<Uuid, Instant>,
}

/// The writers' `application_name`.
pub const APPLICATION_NAME: &str = "northstar ingest writer";

/// The staging table; the rollup worker stages inbox rows in it too, and
/// the product rollup rebuild stored events.
pub(crate) const STAGING: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS ingest_staging (
    tenant_id uuid NOT NULL,
    time timestamptz NOT NULL,
    message_id text COLLATE \"C\" NOT NULL,
    message_hash uuid NOT NULL,
    type text NOT NULL,
    event text,
    user_id text COLLATE \"C\",
    anonymous_id text COLLATE \"C\",
    group_id text COLLATE \"C\",
    previous_id text COLLATE \"C\",
    properties text,
    context text,
    received_at timestamptz NOT NULL,
    sent_at timestamptz
) ON COMMIT DELETE ROWS";

/// The writer's stored identify, group and alias calls, read by the
/// statements that follow [`STORE_EVENTS`]: a few rows where the staging
/// table holds the whole batch, duplicates included.
const IDENTITIES: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS ingest_identities (
    tenant_id uuid NOT NULL,
    time timestamptz NOT NULL,
    message_id text COLLATE \"C\" NOT NULL,
    type text NOT NULL,
    user_id text COLLATE \"C\",
    anonymous_id text COLLATE \"C\",
    group_id text COLLATE \"C\",
    previous_id text COLLATE \"C\",
    properties text
) ON COMMIT DELETE ROWS";

/// Records the tenant's new message ids and inserts the events they belong
/// to (the other rows are retries of stored ones); records in one rollup
/// [`inbox`](crate::product::inbox) row what the product rollups read of
/// them (track, page and screen calls, with `properties` for ticket events
/// only; identify calls with both ids; alias calls), and in `ingest_identities`
/// the identify, group and alias calls; answers how many were new. The
/// argument ends the insert into `event_message_ids`: [`STORE_EVENTS`]
/// skips stored ids, [`STORE_NEW_EVENTS`] fails on one.
macro_rules! store_events {
    ($on_conflict:literal) => {
        concat!(
            "
WITH fresh AS (
    INSERT INTO event_message_ids (tenant_id, message_hash)
    SELECT tenant_id, message_hash FROM ingest_staging WHERE tenant_id = $1",
            $on_conflict,
            "
    RETURNING message_hash
), stored AS (
    INSERT INTO events (tenant_id, time, message_id, type, event, user_id, anonymous_id,
                        group_id, previous_id, properties, context, received_at, sent_at)
    SELECT tenant_id, time, message_id, type, event, user_id, anonymous_id,
           group_id, previous_id, properties::json, context::json, received_at, sent_at
    FROM ingest_staging
    WHERE tenant_id = $1 AND message_hash IN (SELECT message_hash FROM fresh)
    RETURNING time, message_id, type, event, user_id, anonymous_id, group_id, previous_id,
              CASE WHEN type IN ('identify', 'group')
                     OR event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved')
                   THEN properties::text END AS properties
), inboxed AS (
    INSERT INTO rollup_inbox (tenant_id, calls, times, types, events, user_ids, anonymous_ids,
                              previous_ids, properties)
    SELECT $1, count(*), array_agg(time), array_agg(type), array_agg(event), array_agg(user_id),
           array_agg(anonymous_id), array_agg(previous_id),
           array_agg(CASE WHEN type = 'track' THEN properties END)
    FROM stored
    WHERE type IN ('track', 'page', 'screen', 'alias')
       OR (type = 'identify' AND user_id IS NOT NULL AND anonymous_id IS NOT NULL)
    HAVING count(*) > 0
), identities AS (
    INSERT INTO ingest_identities (tenant_id, time, message_id, type, user_id, anonymous_id,
                                   group_id, previous_id, properties)
    SELECT $1, time, message_id, type, user_id, anonymous_id, group_id, previous_id, properties
    FROM stored
    WHERE type IN ('identify', 'group', 'alias')
)
SELECT count(*) FROM stored"
        )
    };
}

/// [`store_events!`] for a tenant that recently repeated a stored message
/// id: the `ON CONFLICT` clause checks each id before inserting it.
const STORE_EVENTS: &str = store_events!("\n    ON CONFLICT DO NOTHING");

/// [`store_events!`] for the usual batch, whose ids are all new: a plain
/// insert searches the index once per id where `ON CONFLICT` searches it
/// twice (about 5 % of the writers' CPU, ADR 0014), and an id already stored fails the
/// statement with [`DEDUPE_KEY`], so the writer redoes the batch with
/// [`STORE_EVENTS`] for that tenant.
const STORE_NEW_EVENTS: &str = store_events!("");

/// The unique index a repeated message id violates.
const DEDUPE_KEY: &str = "event_message_ids_pkey";

/// How long a tenant whose rows repeated a stored message id keeps the
/// `ON CONFLICT` path: retries come in bursts (an SDK's queue replayed after
/// a timeout), and each failed plain insert costs a redone batch.
const REPEAT_MEMORY: Duration = Duration::from_secs(300);

/// Identify with both ids: the anonymous id counts as the user from now on
/// (the first user it is identified as wins).
const LINK_ANONYMOUS_IDS: &str = "
INSERT INTO identity_links (tenant_id, alias_id, person_id, linked_at)
SELECT DISTINCT ON (s.anonymous_id) s.tenant_id, s.anonymous_id,
       coalesce((SELECT l.person_id FROM identity_links l
                 WHERE l.tenant_id = s.tenant_id AND l.alias_id = s.user_id), s.user_id),
       s.time
FROM ingest_identities s
WHERE s.tenant_id = $1 AND s.type = 'identify' AND s.user_id IS NOT NULL
  AND s.anonymous_id IS NOT NULL AND s.anonymous_id <> s.user_id
ORDER BY s.anonymous_id, s.time
ON CONFLICT (tenant_id, alias_id) DO NOTHING";

/// Identify with both ids, continued: ids merged into the anonymous id
/// follow it to its person, so links stay one hop deep. Index probes only
/// (an array of the batch's ids, subqueries per row): the writer's
/// connection has nested loops off, and a join would read every link of
/// the tenant.
const FLATTEN_LINKS: &str = "
UPDATE identity_links l
SET person_id = (SELECT n.person_id FROM identity_links n
                 WHERE n.tenant_id = $1 AND n.alias_id = l.person_id)
WHERE l.tenant_id = $1
  AND l.person_id = ANY (ARRAY(SELECT anonymous_id FROM ingest_identities
                               WHERE tenant_id = $1 AND type = 'identify'
                                 AND user_id IS NOT NULL AND anonymous_id IS NOT NULL))
  AND (SELECT n.person_id FROM identity_links n
       WHERE n.tenant_id = $1 AND n.alias_id = l.person_id) IS NOT NULL";

const APPLY_ALIASES: &str = "
SELECT count(apply_alias(tenant_id, previous_id, user_id, time))
FROM (SELECT tenant_id, previous_id, user_id, time FROM ingest_identities
      WHERE tenant_id = $1 AND type = 'alias' ORDER BY time, message_id) a";

/// The rows both writers may change for one tenant, last and in one
/// statement, so a writer that waits for the other's row locks waits for
/// little more than its commit. Identify calls merge traits into `profiles`
/// (a newer call's keys win) with first and last seen; group calls do the
/// same for `accounts` and record the member (the user id, or the
/// anonymous id); then the tenant's counters of the day go up. Keys are
/// sorted within each table, so two writers cannot deadlock.
const UPSERT_AND_COUNT: &str = "
WITH profiles AS (
    INSERT INTO profiles AS p (tenant_id, user_id, traits, first_seen, last_seen)
    SELECT tenant_id, user_id, jsonb_merge_agg(coalesce(properties::jsonb, '{}') ORDER BY time),
           min(time), max(time)
    FROM ingest_identities
    WHERE tenant_id = $1 AND type = 'identify' AND user_id IS NOT NULL
    GROUP BY tenant_id, user_id ORDER BY user_id
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET
        traits = CASE WHEN excluded.last_seen >= p.last_seen THEN p.traits || excluded.traits
                      ELSE excluded.traits || p.traits END,
        first_seen = least(p.first_seen, excluded.first_seen),
        last_seen = greatest(p.last_seen, excluded.last_seen)
), accounts AS (
    INSERT INTO accounts AS a (tenant_id, group_id, traits, first_seen, last_seen)
    SELECT tenant_id, group_id, jsonb_merge_agg(coalesce(properties::jsonb, '{}') ORDER BY time),
           min(time), max(time)
    FROM ingest_identities
    WHERE tenant_id = $1 AND type = 'group'
    GROUP BY tenant_id, group_id ORDER BY group_id
    ON CONFLICT (tenant_id, group_id) DO UPDATE SET
        traits = CASE WHEN excluded.last_seen >= a.last_seen THEN a.traits || excluded.traits
                      ELSE excluded.traits || a.traits END,
        first_seen = least(a.first_seen, excluded.first_seen),
        last_seen = greatest(a.last_seen, excluded.last_seen)
), members AS (
    INSERT INTO account_members AS m (tenant_id, group_id, member_id, first_seen)
    SELECT tenant_id, group_id, coalesce(user_id, anonymous_id), min(time)
    FROM ingest_identities
    WHERE tenant_id = $1 AND type = 'group'
    GROUP BY 1, 2, 3 ORDER BY 2, 3
    ON CONFLICT (tenant_id, group_id, member_id) DO UPDATE SET
        first_seen = least(m.first_seen, excluded.first_seen)
)
INSERT INTO ingest_counters AS c (tenant_id, day, outcome, reason, count)
SELECT $1, (now() AT TIME ZONE 'UTC')::date, u.outcome, u.reason, u.count
FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(outcome, reason, count)
WHERE u.count > 0
ORDER BY u.outcome, u.reason
ON CONFLICT (tenant_id, day, outcome, reason) DO UPDATE SET count = c.count + excluded.count";

impl BatchWriter {
    /// Opens a connection with `options` (the app role's) and its staging
    /// table; `pg_stat_activity` shows it as `northstar ingest writer`.
    pub async fn connect(options: &PgConnectOptions) -> Result<Self, DbError> {
        let options = options.clone().application_name(APPLICATION_NAME);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(DbError::Unavailable)?;
        sqlx::query(STAGING).execute(&mut conn).await?;
        sqlx::query(IDENTITIES).execute(&mut conn).await?;
        // The staging table has no statistics, so PostgreSQL guesses a batch
        // is a row or two, and a prepared statement keeps the plan it made
        // for the first small batches: a nested loop over staging rows, which
        // is quadratic for a batch of thousands. Hash joins cost the same at
        // any size, so one generic plan per statement serves every batch
        // (planning each statement afresh took 5 % of the writer's time).
        for setting in [
            "SET enable_nestloop = off",
            "SET plan_cache_mode = force_generic_plan",
            // Compiling a statement costs tens of milliseconds, more than any
            // of these statements runs.
            "SET jit = off",
            EARLY_WRITEBACK,
        ] {
            sqlx::query(setting).execute(&mut conn).await?;
        }
        Ok(BatchWriter {
            conn,
            months: HashSet::new(),
            repeating: HashMap::new(),
        })
    }

    /// Writes `batch` in one transaction and commits it: when this returns
    /// `Ok`, every row is durable (or was a duplicate of a durable row).
    pub async fn write(&mut self, batch: &Batch) -> Result<Vec<TenantOutcome>, DbError> {
        if let Some((earliest, latest)) = batch.time_span() {
            let months = month_number(earliest)..=month_number(latest);
            if months.clone().any(|m| !self.months.contains(&m)) {
                ensure_partitions_on(&mut self.conn, earliest, latest).await?;
                self.months.extend(months);
            }
        }
        let now = Instant::now();
        self.repeating
            .retain(|_, last| now.duration_since(*last) < REPEAT_MEMORY);
        loop {
            match self.write_transaction(batch).await {
                // Each redo moves one more tenant to the `ON CONFLICT` path,
                // which never answers `Repeated`, so this ends.
                Ok(Attempt::Repeated(tenant_id)) => {
                    self.repeating.insert(tenant_id, Instant::now());
                }
                Ok(Attempt::Written(outcomes)) => {
                    for outcome in &outcomes {
                        if outcome.stored_before > 0 {
                            self.repeating
                                .insert(outcome.outcome.tenant_id, Instant::now());
                        }
                    }
                    return Ok(outcomes.into_iter().map(|o| o.outcome).collect());
                }
                Err(err) => {
                    if err.sqlstate().as_deref() == Some("23514") {
                        // No partition for a row: one was dropped since we looked.
                        self.months.clear();
                    }
                    return Err(err);
                }
            }
        }
    }

    async fn write_transaction(&mut self, batch: &Batch) -> Result<Attempt, DbError> {
        // Owned copies, so nothing borrowed from `batch` is held across an await.
        let plans: Vec<(Uuid, PartPlan)> = batch
            .parts
            .iter()
            .map(|(&tenant_id, part)| {
                let repeating = self.repeating.contains_key(&tenant_id);
                (tenant_id, PartPlan::of(part, repeating))
            })
            .collect();
        let copy = format!("COPY ingest_staging ({COLUMNS}) FROM STDIN WITH (FORMAT binary)");
        let mut tx = self.conn.begin().await?;
        if !batch.data.is_empty() {
            let mut copy = tx.copy_in_raw(&copy).await?;
            for part in batch.data.finished() {
                copy.send(part).await?;
            }
            copy.finish().await?;
        }
        let mut outcomes = Vec::with_capacity(plans.len());
        for (tenant_id, plan) in plans {
            match store_part(&mut tx, tenant_id, plan).await? {
                Some(outcome) => outcomes.push(outcome),
                None => {
                    tx.rollback().await?;
                    return Ok(Attempt::Repeated(tenant_id));
                }
            }
        }
        tx.commit().await?;
        Ok(Attempt::Written(outcomes))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close().await.ok();
    }
}

/// How one attempt at writing a batch ended.
enum Attempt {
    /// Committed.
    Written(Vec<PartOutcome>),
    /// Rolled back: a row of this tenant, stored with the plain insert,
    /// repeated a stored message id.
    Repeated(Uuid),
}

/// What a committed batch did for one tenant, and how many of its rows
/// repeated a message id stored by an earlier batch.
struct PartOutcome {
    outcome: TenantOutcome,
    stored_before: u64,
}

/// What to do for one tenant of a batch.
struct PartPlan {
    /// Whether the tenant recently repeated a stored message id: its rows
    /// are deduplicated with `ON CONFLICT` rather than assumed new.
    repeating: bool,
    rows: u64,
    duplicates_in_batch: u64,
    statements: Vec<&'static str>,
    outcomes: Vec<&'static str>,
    reasons: Vec<String>,
    counts: Vec<i64>,
}

impl PartPlan {
    fn of(part: &Part, repeating: bool) -> Self {
        let mut statements = Vec::new();
        if part.identify {
            statements.extend([LINK_ANONYMOUS_IDS, FLATTEN_LINKS]);
        }
        if part.alias {
            statements.push(APPLY_ALIASES);
        }
        let mut plan = PartPlan {
            repeating,
            rows: part.rows,
            duplicates_in_batch: part.duplicates_in_batch,
            statements,
            outcomes: Vec::new(),
            reasons: Vec::new(),
            counts: Vec::new(),
        };
        for (reason, count) in &part.rejected {
            plan.outcomes.push("rejected");
            plan.reasons.push(reason.clone());
            plan.counts.push(to_i64(*count));
        }
        plan
    }
}

/// Stores one tenant's rows from the staging table under its RLS context;
/// answers `None`, with the transaction failed, if a row assumed new
/// repeated a stored message id.
async fn store_part(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    mut plan: PartPlan,
) -> Result<Option<PartOutcome>, DbError> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *conn)
        .await?;
    let statement = if plan.repeating {
        STORE_EVENTS
    } else {
        STORE_NEW_EVENTS
    };
    let stored: i64 = if plan.rows > 0 {
        match sqlx::query_scalar(statement)
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(DbError::from)
        {
            Err(DbError::UniqueViolation { constraint })
                if !plan.repeating && constraint == DEDUPE_KEY =>
            {
                return Ok(None);
            }
            stored => stored?,
        }
    } else {
        0
    };
    let stored = stored.unsigned_abs();
    let stored_before = plan.rows - stored;
    for statement in std::mem::take(&mut plan.statements) {
        sqlx::query(statement)
            .bind(tenant_id)
            .execute(&mut *conn)
            .await?;
    }
    let duplicates = stored_before + plan.duplicates_in_batch;
    plan.outcomes.extend(["stored", "duplicate"]);
    plan.reasons.extend([String::new(), String::new()]);
    plan.counts.extend([to_i64(stored), to_i64(duplicates)]);
    sqlx::query(UPSERT_AND_COUNT)
        .bind(tenant_id)
        .bind(plan.outcomes)
        .bind(plan.reasons)
        .bind(plan.counts)
        .execute(&mut *conn)
        .await?;
    Ok(Some(PartOutcome {
        outcome: TenantOutcome {
            tenant_id,
            stored,
            duplicates,
        },
        stored_before,
    }))
}

/// `year * 12 + month0`: consecutive months are consecutive numbers.
fn month_number(at: DateTime<Utc>) -> i32 {
    at.year() * 12 + at.month0() as i32
}

fn to_i64(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
