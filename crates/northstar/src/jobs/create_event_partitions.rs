//! Creates the monthly partitions of `events` from last month to two months
//! ahead, so that live traffic never waits for DDL. (The batch writer also
//! creates a missing month on demand, for backfills.)

use anyhow::Context;
use chrono::{Duration, Utc};
use northstar_db::ingest;
use sqlx::PgPool;

/// The job's name in the schedule.
pub const NAME: &str = "create_event_partitions";

/// Runs the job.
pub async fn run(pool: &PgPool) -> anyhow::Result<()> {
    let now = Utc::now();
    let created =
        ingest::ensure_partitions(pool, now - Duration::days(31), now + Duration::days(62))
            .await
            .context("creating event partitions")?;
    tracing::info!(created, "event partitions in place");
    Ok(())
}
