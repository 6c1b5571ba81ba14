//! Applies each tenant's event retention: drops the monthly partitions that
//! are past every tenant's window, then, tenant by tenant under its own RLS
//! context, deletes what is older than its (shorter) window, in chunks of
//! [`CHUNK`] rows, each its own transaction.

use anyhow::Context;
use northstar_db::{TenantTx, ingest::retention, tenants};
use sqlx::PgPool;

/// The job's name in the schedule.
pub const NAME: &str = "apply_event_retention";
/// Rows deleted per transaction.
pub const CHUNK: i64 = 10_000;

/// Runs the job.
pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    let dropped = retention::drop_expired_partitions(pool)
        .await
        .context("dropping expired partitions")?;
    if !dropped.is_empty() {
        tracing::info!(partitions = ?dropped, "dropped expired event partitions");
    }
    for tenant in tenants::platform_list(pool).await? {
        let mut deleted = 0;
        loop {
            let mut tx = TenantTx::begin(pool, tenant.id).await?;
            let chunk = retention::delete_expired_events(&mut tx, CHUNK)
                .await
                .with_context(|| format!("deleting expired events of {}", tenant.slug))?;
            tx.commit().await?;
            deleted += chunk;
            if chunk < CHUNK.unsigned_abs() {
                break;
            }
        }
        if deleted > 0 {
            tracing::info!(tenant = %tenant.slug, deleted, "deleted events past retention");
        }
    }
    Ok(())
}
