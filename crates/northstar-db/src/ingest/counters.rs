//! Per-tenant ingestion counters: stored, duplicate and rejected (by
//! reason) messages per UTC day.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use crate::{DbError, TenantTx};

/// One counter of one day.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize, ToSchema)]
pub struct DailyCount {
    /// UTC day the messages were processed.
    pub day: NaiveDate,
    /// `stored`, `duplicate` or `rejected`.
    pub outcome: String,
    /// Why, for rejections (for example `missing_id`); empty otherwise.
    pub reason: String,
    /// How many messages.
    pub count: i64,
}

/// The tenant's counters for days in `[from, to]`, oldest first.
pub async fn daily(
    tx: &mut TenantTx,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyCount>, DbError> {
    Ok(sqlx::query_as(
        "SELECT day, outcome, reason, count FROM ingest_counters
         WHERE day BETWEEN $1 AND $2 ORDER BY day, outcome, reason",
    )
    .bind(from)
    .bind(to)
    .fetch_all(tx.conn())
    .await?)
}
