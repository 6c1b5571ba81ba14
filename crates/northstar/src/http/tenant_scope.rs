//! The tenant a request is about, for a caller allowed to see it.
//!
//! [`TenantScope`] resolves `{slug}` for the [`Caller`], refuses non-members
//! with 404 (exactly as for a tenant that does not exist), refuses suspended
//! tenants with 403, and opens the [`TenantTx`] through which the handler
//! reaches tenant data.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use northstar_db::{
    TenantTx,
    audit::Actor,
    memberships::Role,
    tenants::{self, TenantStatus},
};
use uuid::Uuid;

use super::{
    caller::{Caller, request_id},
    error::ApiError,
};
use crate::state::AppState;

/// A tenant-scoped transaction with the caller's role in that tenant.
pub struct TenantScope {
    /// The transaction; commit it to keep changes.
    pub tx: TenantTx,
    /// The caller's role (a key's role for API keys).
    pub role: Role,
    /// Who acts, for the audit log.
    pub actor: Actor,
    /// The signed-in user, when a person calls.
    pub user_id: Option<Uuid>,
}

impl TenantScope {
    /// Refuses with 403 unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.at_least(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role or higher",
                needed.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let slug = params
            .iter()
            .find(|(name, _)| *name == "slug")
            .map(|(_, value)| value.to_owned())
            .ok_or(ApiError::NotFound)?;
        let caller = Caller::from_request_parts(parts, state).await?;
        let request_id = request_id(&parts.headers);
        let (tenant_id, status, role, actor, user_id) = match caller {
            Caller::User(signed_in) => {
                let membership = tenants::member_tenant(&state.pool, &slug, signed_in.user.id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                (
                    membership.tenant_id,
                    membership.status,
                    membership.role,
                    signed_in.actor(request_id),
                    Some(signed_in.user.id),
                )
            }
            Caller::ApiKey(key) => {
                if key.tenant_slug != slug {
                    return Err(ApiError::NotFound);
                }
                let actor = Actor {
                    label: format!("api_key:{}", key.key_id),
                    user_id: None,
                    request_id,
                };
                let role = key.role.unwrap_or(Role::Viewer);
                (key.tenant_id, key.tenant_status, role, actor, None)
            }
        };
        if status == TenantStatus::Suspended {
            return Err(ApiError::TenantSuspended);
        }
        let tx = TenantTx::begin(&state.pool, tenant_id).await?;
        Ok(TenantScope {
            tx,
            role,
            actor,
            user_id,
        })
    }
}
