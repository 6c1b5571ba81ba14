//! The rollup inbox: the batch writer records, in the statement that
//! stores the events, what the product rollups read of them; a
//! [`RollupWorker`] later applies it in large chunks, deleting each chunk
//! in the transaction that applies it. So a stored call
//! is applied exactly once, ingestion does not wait for the rollups, and
//! their per-batch cost is paid once per chunk rather than once per
//! request batch.

use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use uuid::Uuid;

use super::maintain::{self, Calls};
use crate::{
    DbError,
    ingest::{EARLY_WRITEBACK, batch::STAGING},
};

/// Work waiting for the rollup worker, for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct PendingWork {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Whether its rollups must be rebuilt (its time zone changed).
    pub rebuild: bool,
}

/// The rollup worker's `application_name`.
pub const APPLICATION_NAME: &str = "northstar rollup worker";

/// A dedicated connection that applies the rollup inbox.
pub struct RollupWorker {
    conn: PgConnection,
}

impl RollupWorker {
    /// Connects with `options` (the app role's); `pg_stat_activity` shows it
    /// as `northstar rollup worker`.
    pub async fn connect(options: &PgConnectOptions) -> Result<Self, DbError> {
        let options = options.clone().application_name(APPLICATION_NAME);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(DbError::Unavailable)?;
        sqlx::query(STAGING).execute(&mut conn).await?;
        maintain::prepare(&mut conn).await?;
        for setting in [
            "SET plan_cache_mode = force_custom_plan",
            "SET jit = off",
            EARLY_WRITEBACK,
        ] {
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

    /// Applies the tenant's oldest inbox rows holding about `chunk_calls`
    /// calls (whole rows, at least one) in one transaction; answers how many
    /// calls it applied (0: the inbox is empty).
    pub async fn apply_chunk(&mut self, tenant_id: Uuid, chunk_calls: i64) -> Result<u64, DbError> {
        let mut tx = self.conn.begin().await?;
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        let applied = maintain::apply_calls(&mut tx, tenant_id, Calls::Inbox(chunk_calls)).await?;
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
