//! Monthly partitions of `events`, created ahead of time by a job and on
//! demand by the writer when a batch reaches into a month without one.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::DbError;

/// Creates the partitions covering `[from, to]` that are missing (through
/// the owner's `ensure_event_partitions`); returns how many it created.
pub async fn ensure_partitions(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i32, DbError> {
    let mut conn = pool.acquire().await?;
    ensure_partitions_on(&mut conn, from, to).await
}

pub(super) async fn ensure_partitions_on(
    conn: &mut PgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i32, DbError> {
    Ok(sqlx::query_scalar("SELECT ensure_event_partitions($1, $2)")
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await?)
}
