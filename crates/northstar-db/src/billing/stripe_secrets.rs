//! Stripe webhook signing secrets and the receipts of accepted events.
//!
//! Stripe signs each webhook with the endpoint's `whsec_…` secret using
//! HMAC-SHA256, so the secret must be kept in clear (unlike API keys, of
//! which only a hash is stored). Several secrets may be live at once while
//! the tenant rolls its endpoint's secret in Stripe; listing never returns
//! one, only a short hint to recognise it.
//!
//! Every accepted event id is recorded in the transaction that applies the
//! event ([`record_event`]), so a retried or replayed delivery changes
//! nothing.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A signing secret as listed: everything but the secret.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct StripeSecret {
    /// Identifier, used to revoke it.
    pub id: Uuid,
    /// The secret's first 10 characters and an ellipsis (`whsec_AbCd…`).
    pub hint: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked secret verifies nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A live secret, for verifying a signature. `Debug` does not show it.
#[derive(Clone, FromRow)]
pub struct SigningSecret {
    /// Its identifier.
    pub id: Uuid,
    /// The whole `whsec_…` string, the HMAC key.
    pub secret: String,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningSecret")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

const COLUMNS: &str = "id, left(secret, 10) || '…' AS hint, created_at, revoked_at";

/// Adds a signing secret to the transaction's tenant.
pub async fn add(tx: &mut TenantTx, secret: &str) -> Result<StripeSecret, DbError> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO stripe_webhook_secrets (tenant_id, id, secret)
         VALUES (current_tenant_id(), $1, $2) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(secret)
    .fetch_one(tx.conn())
    .await?)
}

/// Every secret of the tenant, newest first, revoked ones included.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<StripeSecret>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM stripe_webhook_secrets ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// Revokes a secret (idempotent); `None` if the tenant has no such secret.
pub async fn revoke(tx: &mut TenantTx, id: Uuid) -> Result<Option<StripeSecret>, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE stripe_webhook_secrets SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The secrets a webhook signature may be made with: every unrevoked one.
pub async fn live(tx: &mut TenantTx) -> Result<Vec<SigningSecret>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, secret FROM stripe_webhook_secrets WHERE revoked_at IS NULL
         ORDER BY created_at DESC, id DESC",
    )
    .fetch_all(tx.conn())
    .await?)
}

/// Records that the event `event_id` is being applied; `false` when it was
/// already recorded, and so must not be applied again. A concurrent delivery
/// of the same id waits here until the first one commits or rolls back.
pub async fn record_event(
    tx: &mut TenantTx,
    event_id: &str,
    event_type: &str,
) -> Result<bool, DbError> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_webhook_events (tenant_id, event_id, event_type)
         VALUES (current_tenant_id(), $1, $2)
         ON CONFLICT (tenant_id, event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(event_type)
    .execute(tx.conn())
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
