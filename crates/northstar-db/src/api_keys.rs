//! Tenant API keys: write keys for ingestion, secret keys for the REST API.
//! Only a key's SHA-256 and a short display prefix are stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    DbError, TenantTx,
    memberships::Role,
    secret_token::{self, SecretToken},
    tenants::TenantStatus,
};

/// What a key authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Ingestion only (the Segment "write key"); safe to embed in clients.
    Write,
    /// The REST API, with a role; keep it on servers.
    Secret,
}

impl KeyKind {
    fn secret_prefix(self) -> &'static str {
        match self {
            KeyKind::Write => "ns_wk_",
            KeyKind::Secret => "ns_sk_",
        }
    }
}

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct ApiKey {
    /// Identifier, used to revoke it.
    pub id: Uuid,
    /// Write or secret.
    pub kind: KeyKind,
    /// What it is for, as its creator named it.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// For secret keys: the role the key acts with.
    pub role: Option<Role>,
    /// Who created it (absent for keys made by provisioning).
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last use, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created, with its secret (shown once, never stored).
pub struct CreatedKey {
    /// The stored key.
    pub key: ApiKey,
    /// The full secret.
    pub secret: String,
}

/// Who a presented key speaks for.
#[derive(Debug, Clone, FromRow)]
pub struct KeyPrincipal {
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The tenant's status.
    pub tenant_status: TenantStatus,
    /// The key.
    pub key_id: Uuid,
    /// Write or secret.
    pub kind: KeyKind,
    /// For secret keys, its role.
    pub role: Option<Role>,
}

const KEY_COLUMNS: &str =
    "id, kind, name, prefix, role, created_by, created_at, last_used_at, revoked_at";

/// Creates a key in the transaction's tenant. `role` is required for secret
/// keys and ignored for write keys.
pub async fn create(
    tx: &mut TenantTx,
    kind: KeyKind,
    name: &str,
    role: Option<Role>,
    created_by: Option<Uuid>,
) -> Result<CreatedKey, DbError> {
    let token = SecretToken::generate(kind.secret_prefix());
    let role = match kind {
        KeyKind::Write => None,
        KeyKind::Secret => role,
    };
    let tenant_id = tx.tenant_id();
    let key = sqlx::query_as(&format!(
        "INSERT INTO api_keys (tenant_id, id, kind, name, prefix, key_hash, role, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {KEY_COLUMNS}"
    ))
    .bind(tenant_id)
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(name)
    .bind(token.display_prefix())
    .bind(&token.hash)
    .bind(role)
    .bind(created_by)
    .fetch_one(tx.conn())
    .await?;
    Ok(CreatedKey {
        key,
        secret: token.secret,
    })
}

/// Every key of the tenant, newest first, revoked ones included.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<ApiKey>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id DESC"
    ))
    .fetch_all(tx.conn())
    .await?)
}

/// Revokes a key (idempotent); `None` if the tenant has no such key.
pub async fn revoke(tx: &mut TenantTx, id: Uuid) -> Result<Option<ApiKey>, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING {KEY_COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?)
}

/// The tenant and rights behind a presented secret, if it is a live key.
pub async fn authenticate(
    db: impl PgExecutor<'_>,
    secret: &str,
) -> Result<Option<KeyPrincipal>, DbError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, tenant_slug, tenant_status, key_id, kind, role FROM authenticate_api_key($1)",
    )
    .bind(secret_token::digest(secret))
    .fetch_optional(db)
    .await?)
}

/// What a write key may ingest into.
#[derive(Debug, Clone, FromRow)]
pub struct IngestScope {
    /// Its tenant.
    pub tenant_id: Uuid,
    /// The tenant's status: suspended tenants ingest nothing.
    pub tenant_status: TenantStatus,
    /// The tenant's plan, which sets the key's rate limit.
    pub plan: String,
    /// How many days of events the tenant keeps.
    pub event_retention_days: i32,
    /// The key.
    pub key_id: Uuid,
}

/// The ingest scope of a live write key (secret keys do not ingest).
pub async fn authenticate_write_key(
    db: impl PgExecutor<'_>,
    key: &str,
) -> Result<Option<IngestScope>, DbError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, tenant_status, plan, event_retention_days, key_id
         FROM authenticate_write_key($1)",
    )
    .bind(secret_token::digest(key))
    .fetch_optional(db)
    .await?)
}
