//! The rollup inbox: the batch writer records, in the transaction that
//! stores the events, what the product rollups read of them
//! ([`enqueue`]); a [`RollupWorker`] later applies it in large chunks,
//! deleting each chunk in the transaction that applies it. So a stored call
//! is applied exactly once, ingestion does not wait for the rollups, and
//! their per-batch cost is paid once per chunk rather than once per
//! request batch.

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use uuid::Uuid;

use super::maintain::{self, Staged};
use crate::{DbError, ingest::batch::STAGING};

/// Records the tenant's staged rows that the rollups read. The staging
/// table must hold only rows stored for the first time.
const ENQUEUE: &str = "
INSERT INTO rollup_inbox (tenant_id, time, type, event, user_id, anonymous_id, previous_id, properties)
SELECT tenant_id, time, type, event, user_id, anonymous_id, previous_id,
       CASE WHEN event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved') THEN properties END
FROM ingest_staging
WHERE tenant_id = $1
  AND (type IN ('track', 'page', 'screen', 'alias')
       OR (type = 'identify' AND user_id IS NOT NULL AND anonymous_id IS NOT NULL))";

/// Moves up to `$2` of the tenant's inbox rows into the staging table;
/// answers how many, and what kinds of calls they hold.
const TAKE: &str = "
WITH taken AS (
    DELETE FROM rollup_inbox
    WHERE tenant_id = $1
      AND id IN (SELECT id FROM rollup_inbox WHERE tenant_id = $1 ORDER BY id LIMIT $2)
    RETURNING *
), staged AS (
    INSERT INTO ingest_staging (tenant_id, time, message_id, message_hash, type, event, user_id,
                                anonymous_id, previous_id, properties, received_at)
    SELECT tenant_id, time, id::text, '00000000-0000-0000-0000-000000000000', type, event, user_id,
           anonymous_id, previous_id, properties, time
    FROM taken
    RETURNING type, event
)
SELECT count(*),
       coalesce(bool_or(type IN ('track', 'page', 'screen')), false),
       coalesce(bool_or(type IN ('identify', 'alias')), false),
       coalesce(bool_or(event IN ('Ticket Created', 'Ticket Replied', 'Ticket Resolved')), false)
FROM staged";

/// Records what the rollups need of the tenant's staged rows (called by
/// the batch writer after storing them).
pub(crate) async fn enqueue(conn: &mut PgConnection, tenant_id: Uuid) -> Result<(), DbError> {
    sqlx::query(ENQUEUE)
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Work waiting for the rollup worker, for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingWork {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Whether its rollups must be rebuilt (its time zone changed).
    pub rebuild: bool,
}

/// A dedicated connection that applies the rollup inbox.
pub struct RollupWorker {
    conn: PgConnection,
}

impl RollupWorker {
    /// Connects with `options` (the app role's).
    pub async fn connect(options: &PgConnectOptions) -> Result<Self, DbError> {
        let mut conn = PgConnection::connect_with(options)
            .await
            .map_err(DbError::Unavailable)?;
        sqlx::query(STAGING).execute(&mut conn).await?;
        maintain::prepare(&mut conn).await?;
        for setting in ["SET plan_cache_mode = force_custom_plan", "SET jit = off"] {
            sqlx::query(setting).execute(&mut conn).await?;
        }
        Ok(RollupWorker { conn })
    }

    /// The tenants with inbox rows or a rebuild requested.
    pub async fn pending(&mut self) -> Result<Vec<PendingWork>, DbError> {
        Ok(
            sqlx::query_as("SELECT tenant_id, rebuild FROM rollup_work()")
                .fetch_all(&mut self.conn)
                .await?,
        )
    }

    /// Applies up to `chunk_rows` of the tenant's inbox rows in one
    /// transaction; answers how many it applied (0: the inbox is empty).
    pub async fn apply_chunk(&mut self, tenant_id: Uuid, chunk_rows: i64) -> Result<u64, DbError> {
        let mut tx = self.conn.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        maintain::lock(&mut tx, tenant_id).await?;
        let (taken, activity, merges, tickets): (i64, bool, bool, bool) = sqlx::query_as(TAKE)
            .bind(tenant_id)
            .bind(chunk_rows)
            .fetch_one(&mut *tx)
            .await?;
        if taken > 0 {
            let staged = Staged {
                activity,
                merges,
                tickets,
            };
            maintain::apply_staged(&mut tx, tenant_id, staged).await?;
        }
        tx.commit().await?;
        Ok(taken.unsigned_abs())
    }

    /// Rebuilds the tenant's product rollups if a rebuild is still
    /// requested; answers how many stored calls it read.
    pub async fn rebuild_requested(&mut self, tenant_id: Uuid) -> Result<Option<u64>, DbError> {
        super::rebuild_on(&mut self.conn, tenant_id, super::RebuildWhen::Requested).await
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.conn.close().await.ok();
    }
}
