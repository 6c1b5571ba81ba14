//! Event retention: whole partitions past every tenant's window are
//! dropped; a tenant with a shorter window has its older rows deleted under
//! its own RLS context, a bounded number per statement.

use sqlx::PgPool;

use crate::{DbError, TenantTx};

/// Drops the partitions that end before every tenant's retention window;
/// returns their names.
pub async fn drop_expired_partitions(pool: &PgPool) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar("SELECT drop_expired_event_partitions()")
        .fetch_all(pool)
        .await?)
}

/// Deletes up to `limit` of the tenant's events older than its retention
/// setting, with their message ids; returns how many it deleted.
pub async fn delete_expired_events(tx: &mut TenantTx, limit: i64) -> Result<u64, DbError> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH cutoff AS (
             SELECT now() - make_interval(days => event_retention_days) AS at FROM tenants
         ), gone AS (
             DELETE FROM events
             WHERE (tenant_id, time, message_id) IN (
                 SELECT tenant_id, time, message_id FROM events
                 WHERE time < (SELECT at FROM cutoff) ORDER BY time LIMIT $1)
             RETURNING tenant_id, message_id
         ), ids AS (
             DELETE FROM event_message_ids m USING gone
             WHERE m.tenant_id = gone.tenant_id AND m.message_hash = md5(gone.message_id)::uuid
         )
         SELECT count(*) FROM gone",
    )
    .bind(limit)
    .fetch_one(tx.conn())
    .await?;
    Ok(deleted.unsigned_abs())
}
