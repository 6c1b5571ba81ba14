//! Automated tenant provisioning: a tenant, its owner, a write key and an
//! audit entry, created in one transaction or not at all.
//!
//! The new tenant's rows are written under its own tenant context (the
//! transaction sets `app.tenant_id` to the id it is about to create), so
//! provisioning needs no RLS bypass. Repeating a request for an existing slug
//! with the same owner answers with the existing tenant instead of failing.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    DbError, TenantTx,
    api_keys::{self, CreatedKey, KeyKind},
    audit::{self, Actor},
    memberships::{self, Role},
    tenants::{self, Tenant},
    users::{self, User},
};

/// What to provision. Validate `slug` with [`tenants::validate_slug`] first.
pub struct ProvisionRequest<'a> {
    /// URL name of the new tenant.
    pub slug: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Plan; `free` when absent.
    pub plan: Option<&'a str>,
    /// The owner: an existing user with this email, or a new one.
    pub owner_email: &'a str,
    /// A new owner's display name.
    pub owner_name: &'a str,
    /// A new owner's password hash; without one, a set-password token is issued.
    pub owner_password_hash: Option<&'a str>,
    /// Who asks, for the audit log.
    pub actor: &'a Actor,
}

/// A tenant that provisioning created.
pub struct Provisioned {
    /// The tenant.
    pub tenant: Tenant,
    /// Its owner.
    pub owner: User,
    /// Whether the owner's account was created now.
    pub owner_created: bool,
    /// For a new owner without a password: the token to set one with.
    pub owner_set_password_token: Option<String>,
    /// The tenant's first write key, with its secret.
    pub write_key: CreatedKey,
}

/// How a provisioning request ended.
pub enum ProvisionOutcome {
    /// A new tenant.
    Created(Box<Provisioned>),
    /// The slug already belongs to a tenant owned by the same email: the
    /// request was a repeat, and nothing was created.
    AlreadyExists(Box<Tenant>),
    /// The slug belongs to another tenant.
    SlugTaken,
}

/// Provisions a tenant; see the module documentation.
pub async fn provision_tenant(
    pool: &PgPool,
    request: &ProvisionRequest<'_>,
) -> Result<ProvisionOutcome, DbError> {
    if let Some(existing) = tenants::platform_id_by_slug(pool, request.slug).await? {
        return repeated_request(pool, existing, request.owner_email).await;
    }
    let mut tx = TenantTx::begin(pool, Uuid::now_v7()).await?;
    let tenant_id = tx.tenant_id();
    let created: Option<Tenant> = sqlx::query_as(&format!(
        "INSERT INTO tenants (id, slug, name, plan, branding, settings)
         VALUES ($1, $2, $3, coalesce($4, 'free'), $5, $6)
         ON CONFLICT (slug) DO NOTHING
         RETURNING {}",
        tenants::TENANT_COLUMNS
    ))
    .bind(tenant_id)
    .bind(request.slug)
    .bind(request.name)
    .bind(request.plan)
    .bind(default_branding())
    .bind(default_settings())
    .fetch_optional(tx.conn())
    .await?;
    let Some(tenant) = created else {
        // Another request created the slug between the check and the insert.
        drop(tx);
        return match tenants::platform_id_by_slug(pool, request.slug).await? {
            Some(existing) => repeated_request(pool, existing, request.owner_email).await,
            None => Ok(ProvisionOutcome::SlugTaken),
        };
    };

    let (owner, owner_created) = users::find_or_create(
        tx.conn(),
        request.owner_email,
        request.owner_name,
        request.owner_password_hash,
    )
    .await?;
    let owner_set_password_token = match (owner_created, request.owner_password_hash) {
        (true, None) => Some(users::issue_set_password_token(tx.conn(), owner.id).await?),
        _ => None,
    };
    memberships::add(&mut tx, owner.id, Role::Owner).await?;
    let write_key = api_keys::create(
        &mut tx,
        KeyKind::Write,
        "Default write key",
        None,
        request.actor.user_id,
    )
    .await?;
    audit::record(
        &mut tx,
        request.actor,
        "tenant.provisioned",
        Some(request.slug),
        json!({ "owner_email": owner.email, "owner_created": owner_created, "plan": tenant.plan }),
    )
    .await?;
    tx.commit().await?;
    Ok(ProvisionOutcome::Created(Box::new(Provisioned {
        tenant,
        owner,
        owner_created,
        owner_set_password_token,
        write_key,
    })))
}

async fn repeated_request(
    pool: &PgPool,
    tenant_id: Uuid,
    owner_email: &str,
) -> Result<ProvisionOutcome, DbError> {
    let mut tx = TenantTx::begin(pool, tenant_id).await?;
    let tenant = tenants::current(&mut tx).await?;
    let same_owner = memberships::list(&mut tx)
        .await?
        .iter()
        .any(|m| m.role == Role::Owner && m.email.eq_ignore_ascii_case(owner_email));
    Ok(if same_owner {
        ProvisionOutcome::AlreadyExists(Box::new(tenant))
    } else {
        ProvisionOutcome::SlugTaken
    })
}

/// Branding every tenant starts with: Northstar's own colours, no logo.
fn default_branding() -> serde_json::Value {
    json!({ "primary_color": "#4f46e5", "accent_color": "#0ea5e9", "logo_url": null, "favicon_url": null })
}

/// Settings every tenant starts with.
fn default_settings() -> serde_json::Value {
    json!({ "timezone": "UTC", "reporting_currency": "USD" })
}
