//! A tenant as its members see it, and its audit log.

use axum::Json;
use northstar_db::{
    audit::{self, AuditEntry},
    memberships::Role,
    tenants::{self, Tenant},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, Problem},
    extract_json::ApiQuery,
    tenant_scope::TenantScope,
};

/// The tenant and the caller's role in it.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    /// The tenant.
    pub tenant: Tenant,
    /// The caller's role.
    pub role: Role,
}

/// The tenant.
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = TenantView), (status = 404, body = Problem))
)]
pub async fn get(mut scope: TenantScope) -> Result<Json<TenantView>, ApiError> {
    let tenant = tenants::current(&mut scope.tx).await?;
    Ok(Json(TenantView {
        tenant,
        role: scope.role,
    }))
}

/// Paging through the audit log, newest first.
#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Only entries older than this id (the last id of the previous page).
    pub before: Option<i64>,
}

/// A page of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// The tenant's audit log (owners and admins).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/audit-log", tag = "tenants",
    params(("slug" = String, Path, description = "Tenant slug"), AuditQuery),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn audit_log(
    mut scope: TenantScope,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    scope.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let entries = audit::list(&mut scope.tx, limit, query.before).await?;
    Ok(Json(AuditPage { entries }))
}
