//! A tenant's API keys: list, create (the secret is shown once), revoke.
//! Owners and admins only.

use axum::{Json, http::StatusCode};
use northstar_db::{
    api_keys::{self, ApiKey, KeyKind},
    audit,
    memberships::Role,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    error::{ApiError, FieldError, Problem},
    extract_json::{ApiJson, ApiPath},
    tenant_scope::TenantScope,
};

/// The tenant's keys, newest first, revoked ones included.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, without secrets.
    pub api_keys: Vec<ApiKey>,
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// `write` (ingestion) or `secret` (REST API).
    pub kind: KeyKind,
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// For secret keys: `admin`, `editor` or `viewer`.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A new key with its secret: shown this once, never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    pub api_key: ApiKey,
    /// The secret to configure in SDKs (`write`) or send as `Authorization: Bearer` (`secret`).
    pub secret: String,
}

/// Lists the tenant's keys.
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/api-keys", tag = "api-keys",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = ApiKeyList), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn list(mut scope: TenantScope) -> Result<Json<ApiKeyList>, ApiError> {
    scope.require(Role::Admin)?;
    let api_keys = api_keys::list(&mut scope.tx).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// Creates a key.
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/api-keys", tag = "api-keys",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = CreateApiKeyRequest,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    )
)]
pub async fn create(
    mut scope: TenantScope,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    scope.require(Role::Admin)?;
    let name = request.name.trim();
    let mut errors = Vec::new();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters long"));
    }
    match (request.kind, request.role) {
        (KeyKind::Secret, None) => errors.push(FieldError::new(
            "role",
            "is required for secret keys (admin, editor or viewer)",
        )),
        (KeyKind::Secret, Some(Role::Owner)) => {
            errors.push(FieldError::new("role", "a key cannot be an owner"))
        }
        (KeyKind::Write, Some(_)) => errors.push(FieldError::new(
            "role",
            "write keys have no role: they only ingest",
        )),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let created = api_keys::create(
        &mut scope.tx,
        request.kind,
        name,
        request.role,
        scope.user_id,
    )
    .await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "api_key.created",
        Some(&created.key.prefix),
        json!({ "kind": created.key.kind, "name": created.key.name, "role": created.key.role }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            api_key: created.key,
            secret: created.secret,
        }),
    ))
}

/// Revokes a key; it stops working at once. Revoking twice is harmless.
#[utoipa::path(
    delete, path = "/api/v1/tenants/{slug}/api-keys/{key_id}", tag = "api-keys",
    params(("slug" = String, Path, description = "Tenant slug"), ("key_id" = Uuid, Path)),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = ApiKey), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn revoke(
    mut scope: TenantScope,
    ApiPath((_slug, key_id)): ApiPath<(String, Uuid)>,
) -> Result<Json<ApiKey>, ApiError> {
    scope.require(Role::Admin)?;
    let key = api_keys::revoke(&mut scope.tx, key_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "api_key.revoked",
        Some(&key.prefix),
        json!({ "kind": key.kind, "name": key.name }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(key))
}
