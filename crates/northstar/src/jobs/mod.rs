//! Background jobs, run on the durable schedule of `northstar_db::jobs`:
//! every app node polls, leases a due job, runs it, and records the outcome
//! (a failure is retried with backoff and shown in `GET /api/v1/admin/jobs`).
//! Jobs are idempotent: a run cut short by a crash is simply run again.

pub mod apply_event_retention;
pub mod create_event_partitions;

use std::time::Duration;

use anyhow::bail;
use northstar_db::jobs;
use sqlx::PgPool;
use tracing::Instrument;

/// How often a node looks for due jobs.
const POLL_EVERY: Duration = Duration::from_secs(30);
/// How long a run may hold its job before another node may take it over.
const LEASE: Duration = Duration::from_secs(15 * 60);

/// Runs due jobs until the task is dropped.
pub fn spawn_runner(pool: PgPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(POLL_EVERY);
        loop {
            every.tick().await;
            if let Err(err) = run_due(&pool).await {
                tracing::warn!(error = %err, "could not poll the job schedule");
            }
        }
    })
}

/// Runs every job that is due now, one after the other.
pub async fn run_due(pool: &PgPool) -> Result<(), northstar_db::DbError> {
    while let Some(name) = jobs::claim_due(pool, LEASE).await? {
        let span = tracing::info_span!("job", job = %name);
        run_and_record(pool, &name).instrument(span).await?;
    }
    Ok(())
}

async fn run_and_record(pool: &PgPool, name: &str) -> Result<(), northstar_db::DbError> {
    match run(pool, name).await {
        Ok(()) => {
            tracing::info!("job finished");
            jobs::finish(pool, name).await
        }
        Err(err) => {
            let attempts = jobs::attempts(pool, name).await?;
            let backoff = Duration::from_secs(60 << attempts.clamp(0, 6));
            tracing::error!(error = format!("{err:#}"), retry_in = ?backoff, "job failed");
            jobs::fail(pool, name, &format!("{err:#}"), backoff).await
        }
    }
}

async fn run(pool: &PgPool, name: &str) -> anyhow::Result<()> {
    match name {
        create_event_partitions::NAME => create_event_partitions::run(pool).await,
        apply_event_retention::NAME => apply_event_retention::run(pool).await,
        other => bail!("no job is called {other:?}"),
    }
}
