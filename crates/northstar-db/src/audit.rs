//! The tenant's append-only audit log: who changed what, and when.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// Who performed an audited action.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user:<email>`, `api_key:<key id>`, `cli` or `demo`.
    pub label: String,
    /// The user, when a person acted.
    pub user_id: Option<Uuid>,
    /// The request that did it, if any.
    pub request_id: Option<String>,
}

impl Actor {
    /// The operator CLI.
    pub fn cli() -> Self {
        Actor {
            label: "cli".into(),
            user_id: None,
            request_id: None,
        }
    }
}

/// One audit entry.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Position in the tenant's log.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// The acting user, if a person acted.
    pub actor_user_id: Option<Uuid>,
    /// What, as `resource.verb` (for example `member.added`).
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Further facts.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// The request, to find it in the logs.
    pub request_id: Option<String>,
}

/// Appends an entry to the transaction's tenant's log; it commits or rolls
/// back with the change it records.
pub async fn record(
    tx: &mut TenantTx,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) -> Result<(), DbError> {
    let tenant_id = tx.tenant_id();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor, actor_user_id, action, target, details, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant_id)
    .bind(&actor.label)
    .bind(actor.user_id)
    .bind(action)
    .bind(target)
    .bind(details)
    .bind(&actor.request_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The newest entries, at most `limit`, older than `before` when given.
pub async fn list(
    tx: &mut TenantTx,
    limit: i64,
    before: Option<i64>,
) -> Result<Vec<AuditEntry>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, actor_user_id, action, target, details, request_id FROM audit_log
         WHERE id < coalesce($2, 9223372036854775807) ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .bind(before)
    .fetch_all(tx.conn())
    .await?)
}
