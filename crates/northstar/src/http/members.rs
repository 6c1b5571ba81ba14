//! A tenant's members: list, add (inviting new users), change role, remove.
//!
//! Owners and admins manage members; only owners grant, change or remove the
//! owner role; the last owner can be neither demoted nor removed. Anyone may
//! remove themselves (leave), except the last owner.

use axum::{Json, http::StatusCode};
use northstar_db::{
    audit,
    memberships::{self, Member, Role},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    error::{ApiError, Problem},
    extract_json::{ApiJson, ApiPath},
    tenant_scope::TenantScope,
};

/// Members of the tenant.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    /// By email.
    pub members: Vec<Member>,
}

/// Someone to add to the tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// Their email. Without an account, one is created and a set-password
    /// link returned.
    pub email: String,
    /// Their role.
    pub role: Role,
    /// Display name for a new account.
    #[serde(default)]
    pub name: Option<String>,
}

/// The member added.
#[derive(Serialize, ToSchema)]
pub struct AddMemberResponse {
    /// The membership.
    pub member: Member,
    /// Whether a new account was created.
    pub user_created: bool,
    /// For a new account: the one-time token to set a password with
    /// (`POST /api/v1/auth/set-password`); hand it to the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_password_token: Option<String>,
}

/// A new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The role.
    pub role: Role,
}

/// Lists members (any member may).
#[utoipa::path(
    get, path = "/api/v1/tenants/{slug}/members", tag = "members",
    params(("slug" = String, Path, description = "Tenant slug")),
    security(("session" = []), ("secret_key" = [])),
    responses((status = 200, body = MemberList), (status = 404, body = Problem))
)]
pub async fn list(mut scope: TenantScope) -> Result<Json<MemberList>, ApiError> {
    let members = memberships::list(&mut scope.tx).await?;
    Ok(Json(MemberList { members }))
}

/// Adds a member (owner or admin; only owners add owners).
#[utoipa::path(
    post, path = "/api/v1/tenants/{slug}/members", tag = "members",
    params(("slug" = String, Path, description = "Tenant slug")),
    request_body = AddMemberRequest,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 201, body = AddMemberResponse),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already a member", body = Problem),
        (status = 422, body = Problem),
    )
)]
pub async fn add(
    mut scope: TenantScope,
    ApiJson(request): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, Json<AddMemberResponse>), ApiError> {
    scope.require(Role::Admin)?;
    if request.role == Role::Owner {
        scope.require(Role::Owner)?;
    }
    let email = request.email.trim();
    if !looks_like_email(email) {
        return Err(ApiError::field("email", "is not an email address"));
    }
    let name = request.name.as_deref().unwrap_or_default().trim();
    let invited = memberships::invite(&mut scope.tx, email, name, request.role).await?;
    let (user_created, set_password_token) = (invited.user_created, invited.set_password_token);
    let member = invited.member.ok_or_else(|| ApiError::Conflict {
        code: "already_member",
        detail: format!("{email} is already a member"),
    })?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "member.added",
        Some(&member.email),
        json!({ "role": member.role, "user_created": user_created }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(AddMemberResponse {
            member,
            user_created,
            set_password_token,
        }),
    ))
}

/// Changes a member's role (owner or admin; only owners touch owners).
#[utoipa::path(
    patch, path = "/api/v1/tenants/{slug}/members/{user_id}", tag = "members",
    params(("slug" = String, Path, description = "Tenant slug"), ("user_id" = Uuid, Path)),
    request_body = ChangeRoleRequest,
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 200, body = Member),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Would leave the tenant without an owner", body = Problem),
    )
)]
pub async fn change_role(
    mut scope: TenantScope,
    ApiPath((_slug, user_id)): ApiPath<(String, Uuid)>,
    ApiJson(request): ApiJson<ChangeRoleRequest>,
) -> Result<Json<Member>, ApiError> {
    scope.require(Role::Admin)?;
    let owners = memberships::lock_owners(&mut scope.tx).await?;
    let current = memberships::get(&mut scope.tx, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if current.role == Role::Owner || request.role == Role::Owner {
        scope.require(Role::Owner)?;
    }
    if current.role == Role::Owner && request.role != Role::Owner && owners.len() <= 1 {
        return Err(last_owner());
    }
    let member = memberships::set_role(&mut scope.tx, user_id, request.role)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "member.role_changed",
        Some(&member.email),
        json!({ "from": current.role, "to": member.role }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(Json(member))
}

/// Removes a member (owner or admin, or the member themselves).
#[utoipa::path(
    delete, path = "/api/v1/tenants/{slug}/members/{user_id}", tag = "members",
    params(("slug" = String, Path, description = "Tenant slug"), ("user_id" = Uuid, Path)),
    security(("session" = []), ("secret_key" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The last owner", body = Problem),
    )
)]
pub async fn remove(
    mut scope: TenantScope,
    ApiPath((_slug, user_id)): ApiPath<(String, Uuid)>,
) -> Result<StatusCode, ApiError> {
    if scope.user_id != Some(user_id) {
        scope.require(Role::Admin)?;
    }
    let owners = memberships::lock_owners(&mut scope.tx).await?;
    let current = memberships::get(&mut scope.tx, user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if current.role == Role::Owner {
        if scope.user_id != Some(user_id) {
            scope.require(Role::Owner)?;
        }
        if owners.len() <= 1 {
            return Err(last_owner());
        }
    }
    memberships::remove(&mut scope.tx, user_id).await?;
    audit::record(
        &mut scope.tx,
        &scope.actor,
        "member.removed",
        Some(&current.email),
        json!({ "role": current.role }),
    )
    .await?;
    scope.tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn last_owner() -> ApiError {
    ApiError::Conflict {
        code: "last_owner",
        detail: "a tenant must keep at least one owner: make someone else owner first".into(),
    }
}

/// A light check: something before and after a single `@`, a dot in the
/// domain, no spaces. Real validation is the email that arrives.
pub fn looks_like_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    }
}
