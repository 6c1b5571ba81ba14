//! The rollup inbox: the batch writer records, in the transaction that
//! stores the events, what the product rollups read of them
//! ([`enqueue`]); a [`RollupWorker`] later applies it in large chunks,
//! deleting each chunk in the transaction that applies it. So a stored call
//! is applied exactly once, ingestion does not wait for the rollups, and
//! their per-batch cost is paid once per chunk rather than once per
//! request batch.

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use uuid::Uuid;

use super::maintain::{self, Calls};
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
        let applied = maintain::apply_calls(&mut tx, tenant_id, Calls::Inbox(chunk_rows)).await?;
        tx.commit().await?;
        Ok(applied)
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
