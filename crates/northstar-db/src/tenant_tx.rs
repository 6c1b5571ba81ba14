use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::DbError;

/// A transaction bound to one tenant: its first statement set
/// `app.tenant_id`, so Row Level Security shows and accepts only that
/// tenant's rows until it ends. Repository functions for tenant data take one
/// of these; there is no other way to reach tenant rows.
///
/// The setting is transaction-local (`set_config(…, true)`), so a pooled
/// connection never carries it into another request.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: Uuid,
}

impl TenantTx {
    /// Begins a transaction on `pool` scoped to `tenant_id`.
    pub async fn begin(pool: &PgPool, tenant_id: Uuid) -> Result<Self, DbError> {
        let mut tx = pool.begin().await?;
        sqlx::query("select set_config('app.tenant_id', $1, true)")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(TenantTx { tx, tenant_id })
    }

    /// The tenant this transaction is scoped to.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// Plans every further statement of this transaction afresh, for the
    /// tables' current size. For bulk loads in one transaction: a plan cached
    /// while the tables were empty scans them whole once they have grown.
    pub async fn plan_each_statement(&mut self) -> Result<(), DbError> {
        sqlx::query("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The connection, for this crate's repository functions only.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
