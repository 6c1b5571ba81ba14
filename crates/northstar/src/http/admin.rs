//! The super-admin API: every tenant, provisioning, suspension.

use axum::{Json, extract::State, http::HeaderMap, http::StatusCode};
use northstar_db::{
    TenantTx, audit,
    jobs::{self, JobStatus},
    provisioning::ProvisionOutcome,
    tenants::{self, Tenant, TenantStatus, TenantSummary},
    users::User,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{
    caller::{SuperAdmin, request_id},
    error::{ApiError, Problem},
    extract_json::{ApiJson, ApiPath},
};
use crate::{provision::NewTenant, state::AppState};

/// Every tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantList {
    /// Oldest first.
    pub tenants: Vec<TenantSummary>,
}

/// The owner of a newly provisioned tenant.
#[derive(Serialize, ToSchema)]
pub struct ProvisionedOwner {
    /// The user.
    pub user: User,
    /// Whether the account was created now.
    pub created: bool,
    /// For a new account without a password: the one-time token to set one
    /// (`POST /api/v1/auth/set-password`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_password_token: Option<String>,
}

/// The first write key of a new tenant.
#[derive(Serialize, ToSchema)]
pub struct ProvisionedWriteKey {
    /// The key.
    pub api_key: northstar_db::api_keys::ApiKey,
    /// The secret, shown once: configure it in the tenant's SDKs.
    pub secret: String,
}

/// What provisioning did.
#[derive(Serialize, ToSchema)]
pub struct ProvisionResponse {
    /// The tenant.
    pub tenant: Tenant,
    /// `false` when the slug already existed with the same owner: nothing
    /// was created, and `owner` and `write_key` are absent.
    pub created: bool,
    /// The owner, for a new tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProvisionedOwner>,
    /// The write key, for a new tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_key: Option<ProvisionedWriteKey>,
}

impl ProvisionResponse {
    /// The response for an outcome; `None` when the slug is taken.
    pub fn from_outcome(outcome: ProvisionOutcome) -> Option<Self> {
        match outcome {
            ProvisionOutcome::Created(done) => Some(ProvisionResponse {
                tenant: done.tenant,
                created: true,
                owner: Some(ProvisionedOwner {
                    user: done.owner,
                    created: done.owner_created,
                    set_password_token: done.owner_set_password_token,
                }),
                write_key: Some(ProvisionedWriteKey {
                    api_key: done.write_key.key,
                    secret: done.write_key.secret,
                }),
            }),
            ProvisionOutcome::AlreadyExists(tenant) => Some(ProvisionResponse {
                tenant: *tenant,
                created: false,
                owner: None,
                write_key: None,
            }),
            ProvisionOutcome::SlugTaken => None,
        }
    }
}

/// Lists every tenant.
#[utoipa::path(
    get, path = "/api/v1/admin/tenants", tag = "admin",
    security(("session" = [])),
    responses((status = 200, body = TenantList), (status = 403, body = Problem))
)]
pub async fn list_tenants(
    State(state): State<AppState>,
    _admin: SuperAdmin,
) -> Result<Json<TenantList>, ApiError> {
    let tenants = tenants::platform_list(&state.pool).await?;
    Ok(Json(TenantList { tenants }))
}

/// Provisions a tenant with its owner, a write key and an audit entry, in
/// one transaction. Repeating the request (same slug and owner) creates
/// nothing and answers 200 with the existing tenant.
#[utoipa::path(
    post, path = "/api/v1/admin/tenants", tag = "admin",
    request_body = NewTenant,
    security(("session" = [])),
    responses(
        (status = 201, description = "Provisioned", body = ProvisionResponse),
        (status = 200, description = "Already provisioned by an identical request", body = ProvisionResponse),
        (status = 403, body = Problem),
        (status = 409, description = "The slug belongs to another tenant", body = Problem),
        (status = 422, body = Problem),
    )
)]
pub async fn provision_tenant(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    headers: HeaderMap,
    ApiJson(request): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<ProvisionResponse>), ApiError> {
    let actor = admin.actor(request_id(&headers));
    let outcome =
        crate::provision::provision(&state.pool, &state.passwords, &request, &actor).await?;
    let response = ProvisionResponse::from_outcome(outcome).ok_or_else(|| ApiError::Conflict {
        code: "slug_taken",
        detail: format!("the slug {:?} belongs to another tenant", request.slug),
    })?;
    let status = if response.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(response)))
}

/// Suspends a tenant: its members and keys are refused until reactivated.
#[utoipa::path(
    post, path = "/api/v1/admin/tenants/{slug}/suspend", tag = "admin",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = [])),
    responses((status = 200, body = Tenant), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn suspend_tenant(
    state: State<AppState>,
    admin: SuperAdmin,
    headers: HeaderMap,
    slug: ApiPath<String>,
) -> Result<Json<Tenant>, ApiError> {
    set_status(state, admin, headers, slug, TenantStatus::Suspended).await
}

/// Reactivates a suspended tenant.
#[utoipa::path(
    post, path = "/api/v1/admin/tenants/{slug}/reactivate", tag = "admin",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = [])),
    responses((status = 200, body = Tenant), (status = 403, body = Problem), (status = 404, body = Problem))
)]
pub async fn reactivate_tenant(
    state: State<AppState>,
    admin: SuperAdmin,
    headers: HeaderMap,
    slug: ApiPath<String>,
) -> Result<Json<Tenant>, ApiError> {
    set_status(state, admin, headers, slug, TenantStatus::Active).await
}

async fn set_status(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    headers: HeaderMap,
    ApiPath(slug): ApiPath<String>,
    status: TenantStatus,
) -> Result<Json<Tenant>, ApiError> {
    let actor = admin.actor(request_id(&headers));
    let tenant = set_tenant_status(&state.pool, &slug, status, &actor)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(tenant))
}

/// Sets a tenant's status and audits it; `None` if there is no such tenant.
pub async fn set_tenant_status(
    pool: &sqlx::PgPool,
    slug: &str,
    status: TenantStatus,
    actor: &audit::Actor,
) -> Result<Option<Tenant>, ApiError> {
    let Some(tenant_id) = tenants::platform_id_by_slug(pool, slug).await? else {
        return Ok(None);
    };
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let tenant = tenants::set_status(&mut tx, status).await?;
    let action = match status {
        TenantStatus::Suspended => "tenant.suspended",
        TenantStatus::Active => "tenant.reactivated",
    };
    audit::record(&mut tx, actor, action, Some(slug), json!({})).await?;
    tx.commit().await?;
    Ok(Some(tenant))
}

/// The background jobs' schedule.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    /// By name.
    pub jobs: Vec<JobStatus>,
}

/// Background jobs: when each runs next, and how its last run went.
#[utoipa::path(
    get, path = "/api/v1/admin/jobs", tag = "admin",
    security(("session" = [])),
    responses((status = 200, body = JobList), (status = 401, body = Problem), (status = 403, body = Problem))
)]
pub async fn list_jobs(
    _admin: SuperAdmin,
    State(state): State<AppState>,
) -> Result<Json<JobList>, ApiError> {
    Ok(Json(JobList {
        jobs: jobs::list(&state.pool).await?,
    }))
}
