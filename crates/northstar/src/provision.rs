//! Tenant provisioning as the API and the CLI offer it: validate the
//! request, hash an initial owner password if one is given, then provision
//! in one transaction (see [`northstar_db::provisioning`]).

use northstar_db::{
    audit::Actor,
    provisioning::{self, ProvisionOutcome, ProvisionRequest},
    tenants::validate_slug,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    auth::passwords::{Passwords, check_new_password},
    http::{
        error::{ApiError, FieldError},
        members::looks_like_email,
    },
};

/// Plans a tenant can be on; they set limits.
pub const PLANS: &[&str] = &["free", "starter", "growth", "enterprise"];

/// A tenant to provision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// URL name: 3 to 40 of `a-z`, `0-9`, `-`, starting with a letter; not reserved.
    pub slug: String,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Email of the owner: an existing user, or a new account.
    pub owner_email: String,
    /// Display name for a new owner account.
    #[serde(default)]
    pub owner_name: Option<String>,
    /// Initial password for a new owner. Without one the response carries a
    /// one-time set-password token.
    #[serde(default)]
    pub owner_password: Option<String>,
    /// One of `free` (default), `starter`, `growth`, `enterprise`.
    #[serde(default)]
    pub plan: Option<String>,
}

impl NewTenant {
    /// Every field problem at once.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = Vec::new();
        if let Err(reason) = validate_slug(&self.slug) {
            errors.push(FieldError::new("slug", reason));
        }
        let name_len = self.name.trim().chars().count();
        if !(1..=100).contains(&name_len) {
            errors.push(FieldError::new("name", "must be 1 to 100 characters long"));
        }
        if !looks_like_email(self.owner_email.trim()) {
            errors.push(FieldError::new("owner_email", "is not an email address"));
        }
        if let Some(password) = &self.owner_password
            && let Err(reason) = check_new_password(password)
        {
            errors.push(FieldError::new("owner_password", reason));
        }
        if let Some(plan) = &self.plan
            && !PLANS.contains(&plan.as_str())
        {
            errors.push(FieldError::new(
                "plan",
                format!("must be one of {}", PLANS.join(", ")),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

/// Validates and provisions `request` on behalf of `actor`.
pub async fn provision(
    pool: &sqlx::PgPool,
    passwords: &Passwords,
    request: &NewTenant,
    actor: &Actor,
) -> Result<ProvisionOutcome, ApiError> {
    request.validate()?;
    let password_hash = match &request.owner_password {
        Some(password) => Some(
            passwords
                .hash(password)
                .await
                .map_err(|err| ApiError::Internal(Box::new(err)))?,
        ),
        None => None,
    };
    let outcome = provisioning::provision_tenant(
        pool,
        &ProvisionRequest {
            slug: &request.slug,
            name: request.name.trim(),
            plan: request.plan.as_deref(),
            owner_email: request.owner_email.trim(),
            owner_name: request.owner_name.as_deref().unwrap_or_default().trim(),
            owner_password_hash: password_hash.as_deref(),
            actor,
        },
    )
    .await?;
    Ok(outcome)
}
