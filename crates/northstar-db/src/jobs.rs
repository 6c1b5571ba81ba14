//! The durable schedule of periodic jobs (`jobs` table). A runner leases a
//! due job, so that with several app nodes each run happens once; the lease
//! expires on its own if the node dies mid-run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;

use crate::DbError;

/// A job's schedule and last outcome, as operators see it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct JobStatus {
    /// The job's name.
    pub name: String,
    /// Seconds between successful runs.
    pub every_seconds: f64,
    /// When it runs next.
    pub next_run_at: DateTime<Utc>,
    /// Set while a runner holds it.
    pub locked_until: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub attempts: i32,
    /// When the last run started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last successful run finished.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// The last failure, cleared by a success.
    pub last_error: Option<String>,
}

/// Leases the most overdue job for `lease`; `None` when nothing is due.
pub async fn claim_due(pool: &PgPool, lease: Duration) -> Result<Option<String>, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE jobs SET locked_until = now() + make_interval(secs => $1), last_started_at = now()
         WHERE name = (SELECT name FROM jobs
                       WHERE next_run_at <= now() AND (locked_until IS NULL OR locked_until < now())
                       ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING name",
    )
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?)
}

/// Records a successful run and schedules the next one.
pub async fn finish(pool: &PgPool, name: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET locked_until = NULL, attempts = 0, last_error = NULL,
                         last_finished_at = now(), next_run_at = now() + every
         WHERE name = $1",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed run; it is retried after `retry_in`.
pub async fn fail(
    pool: &PgPool,
    name: &str,
    error: &str,
    retry_in: Duration,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE jobs SET locked_until = NULL, attempts = attempts + 1, last_error = $2,
                         next_run_at = now() + make_interval(secs => $3)
         WHERE name = $1",
    )
    .bind(name)
    .bind(error)
    .bind(retry_in.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Failures so far of `name` since its last success.
pub async fn attempts(pool: &PgPool, name: &str) -> Result<i32, DbError> {
    Ok(
        sqlx::query_scalar("SELECT attempts FROM jobs WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
            .unwrap_or_default(),
    )
}

/// Every job, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<JobStatus>, DbError> {
    Ok(sqlx::query_as(
        "SELECT name, extract(epoch FROM every)::float8 AS every_seconds, next_run_at, locked_until,
                attempts, last_started_at, last_finished_at, last_error
         FROM jobs ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// Makes `name` due now (operators and tests); false if there is no such job.
pub async fn run_soon(pool: &PgPool, name: &str) -> Result<bool, DbError> {
    let updated = sqlx::query("UPDATE jobs SET next_run_at = now() WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() > 0)
}
