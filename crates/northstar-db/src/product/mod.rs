//! Product and support numbers from events: active users, sign-ups,
//! onboarding, event counts, feature adoption and tickets.
//!
//! The batch writer keeps the rollups current as events commit
//! ([`maintain`]); [`users`] and [`support`] read them for the dashboards.
//! [`rebuild`] recomputes them from the stored events.

pub(crate) mod maintain;
pub mod support;
pub mod users;

use chrono::{DateTime, Utc};

use crate::{DbError, TenantTx, ingest::batch::STAGING};

/// The product rollup tables, emptied by a rebuild.
const ROLLUPS: &[&str] = &[
    "activity_days",
    "active_users",
    "event_counts",
    "event_firsts",
    "event_adopters",
    "onboarding",
    "tickets",
    "ticket_counts",
    "onboarding_days",
    "ticket_days",
];

/// Stages one month of the tenant's stored calls, as the writer stages a batch.
const STAGE_MONTH: &str = "
INSERT INTO ingest_staging (tenant_id, time, message_id, message_hash, type, event, user_id,
                            anonymous_id, properties, received_at)
SELECT tenant_id, time, message_id, md5(message_id)::uuid, type, event, user_id, anonymous_id,
       properties::text, received_at
FROM events
WHERE time >= $1 AND time < $1 + interval '1 month' AND type IN ('track', 'page', 'screen')";

/// Recomputes the transaction's tenant's product and support rollups from
/// its stored events (after a time zone change, or on an operator's
/// request); answers how many calls it read.
pub async fn rebuild(tx: &mut TenantTx) -> Result<u64, DbError> {
    let tenant_id = tx.tenant_id();
    let conn = tx.conn();
    maintain::lock(conn, tenant_id).await?;
    for table in ROLLUPS {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(STAGING).execute(&mut *conn).await?;
    maintain::prepare(conn).await?;
    let months: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT generate_series(date_trunc('month', min(time), 'UTC'), max(time), interval '1 month')
         FROM events",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut read = 0;
    for month in months {
        sqlx::query("TRUNCATE ingest_staging")
            .execute(&mut *conn)
            .await?;
        let staged = sqlx::query(STAGE_MONTH)
            .bind(month)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        read += staged;
        if staged > 0 {
            let activity = maintain::Staged {
                activity: true,
                merges: false,
                tickets: true,
            };
            maintain::apply_staged(conn, tenant_id, activity).await?;
        }
    }
    sqlx::query("TRUNCATE ingest_staging")
        .execute(&mut *conn)
        .await?;
    Ok(read)
}

/// Recomputes the onboarding rollup from the stored first uses, after the
/// tenant changed its sign-up event or onboarding steps.
pub async fn rebuild_onboarding(tx: &mut TenantTx) -> Result<(), DbError> {
    let tenant_id = tx.tenant_id();
    maintain::rebuild_onboarding(tx.conn(), tenant_id).await
}
