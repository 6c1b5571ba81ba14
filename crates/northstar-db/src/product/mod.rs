//! Product and support numbers from events: active users, sign-ups,
//! onboarding, event counts, feature adoption and tickets.
//!
//! The batch writer records what the rollups need of the events it stores
//! in the rollup [`inbox`], and a rollup worker applies it with the delta
//! statements of [`maintain`]; [`users`] and [`support`] read the rollups
//! for the dashboards. [`rebuild`] recomputes them from the stored events.

pub mod inbox;
pub(crate) mod maintain;
pub(crate) mod months;
pub mod support;
pub mod users;

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::{DbError, TenantTx, ingest::batch::STAGING};

/// The product rollup tables, emptied by a rebuild.
const ROLLUPS: &[&str] = &[
    "activity_days",
    "active_users",
    "event_counts",
    "event_counts_months",
    "event_firsts",
    "event_adopters",
    "event_adopters_months",
    "onboarding",
    "tickets",
    "ticket_counts",
    "onboarding_days",
    "ticket_days",
];

/// Whether a rebuild runs unconditionally or only while one is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RebuildWhen {
    Always,
    Requested,
}

/// Recomputes the tenant's product and support rollups from its stored
/// events (on an operator's request); answers how many calls it read.
pub async fn rebuild(pool: &PgPool, tenant_id: Uuid) -> Result<u64, DbError> {
    let mut conn = dedicated(pool).await?;
    let read = rebuild_on(&mut conn, tenant_id, RebuildWhen::Always).await?;
    Ok(read.unwrap_or(0))
}

/// Rebuilds the tenant's rollups if [`request_rebuild`] asked for it and
/// nobody has done it since; answers how many calls it read, if it ran.
pub async fn rebuild_if_requested(pool: &PgPool, tenant_id: Uuid) -> Result<Option<u64>, DbError> {
    let mut conn = dedicated(pool).await?;
    rebuild_on(&mut conn, tenant_id, RebuildWhen::Requested).await
}

/// Records, in the transaction that changes the tenant's time zone, that
/// its rollups must be rebuilt: the rollup worker does it if nobody else
/// does first (see [`rebuild_if_requested`]).
pub async fn request_rebuild(tx: &mut TenantTx) -> Result<(), DbError> {
    sqlx::query("UPDATE tenants SET rollups_rebuild_requested = true")
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// A connection of the pool's kind that closes when dropped, so that the
/// session lock of a rebuild cut short is never left on a pooled connection.
async fn dedicated(pool: &PgPool) -> Result<PgConnection, DbError> {
    Ok(pool.acquire().await?.detach())
}

/// Rebuilds under the tenant's rollup lock, taken for the session before
/// the rebuild's snapshot: the rebuild reads events and inbox rows as of
/// one snapshot (repeatable read), deletes the inbox rows it saw, and
/// leaves the ones committed since (with events it did not read) to the
/// rollup worker, so every call counts exactly once.
pub(crate) async fn rebuild_on(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    when: RebuildWhen,
) -> Result<Option<u64>, DbError> {
    maintain::lock_session(conn, tenant_id).await?;
    let rebuilt = rebuild_locked(conn, tenant_id, when).await;
    let unlocked = maintain::unlock_session(conn, tenant_id).await;
    let rebuilt = rebuilt?;
    unlocked?;
    Ok(rebuilt)
}

async fn rebuild_locked(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    when: RebuildWhen,
) -> Result<Option<u64>, DbError> {
    sqlx::query(STAGING).execute(&mut *conn).await?;
    maintain::prepare(conn).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    let requested: bool = sqlx::query_scalar("SELECT rollups_rebuild_requested FROM tenants")
        .fetch_one(&mut *tx)
        .await?;
    if when == RebuildWhen::Requested && !requested {
        tx.commit().await?;
        return Ok(None);
    }
    for table in ROLLUPS.iter().chain(&["rollup_inbox"]) {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    let months: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT generate_series(date_trunc('month', min(time), 'UTC'), max(time), interval '1 month')
         FROM events",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut read = 0;
    for month in months {
        read += maintain::apply_calls(&mut tx, tenant_id, maintain::Calls::Month(month)).await?;
    }
    sqlx::query("UPDATE tenants SET rollups_rebuild_requested = false")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(read))
}

/// Recomputes the onboarding rollup from the stored first uses, after the
/// tenant changed its sign-up event or onboarding steps.
pub async fn rebuild_onboarding(tx: &mut TenantTx) -> Result<(), DbError> {
    let tenant_id = tx.tenant_id();
    maintain::rebuild_onboarding(tx.conn(), tenant_id).await
}
