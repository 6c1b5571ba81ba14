//! Tenants: the companies that send Northstar their data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx, memberships::Role};

/// Whether a tenant may use Northstar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// In service.
    Active,
    /// Stopped by an operator: members and keys are refused.
    Suspended,
}

impl TenantStatus {
    /// The status's name, as in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

/// A tenant as its members see it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Tenant {
    /// Stable identifier; the value of `tenant_id` in every tenant-scoped row.
    pub id: Uuid,
    /// URL name: lowercase letters, digits and hyphens.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Service status.
    pub status: TenantStatus,
    /// Billing plan, which sets limits.
    pub plan: String,
    /// Logo, colours and favicon applied to the tenant's UI.
    #[schema(value_type = Object)]
    pub branding: serde_json::Value,
    /// Time zone, reporting currency and other preferences.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// Days of events kept; older ones are deleted.
    pub event_retention_days: i32,
    /// ISO 4217 code revenue is reported in.
    pub reporting_currency: String,
    /// IANA time zone whose midnights bound the tenant's days.
    pub time_zone: String,
    /// The track event that counts as a sign-up.
    pub signup_event: String,
    /// The onboarding steps: track event names, in the product's order.
    pub onboarding_steps: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A tenant together with the caller's role in it.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct MemberTenant {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: TenantStatus,
    /// The user's role in it.
    pub role: Role,
}

/// A row of the super-admin tenant list.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct TenantSummary {
    /// The tenant.
    pub id: Uuid,
    /// Its slug.
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: TenantStatus,
    /// Its plan.
    pub plan: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Number of members.
    pub member_count: i64,
}

/// Words a slug may not be: they name, or may one day name, routes.
pub const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "billing",
    "dashboard",
    "docs",
    "healthz",
    "help",
    "login",
    "logout",
    "me",
    "metrics",
    "new",
    "northstar",
    "readyz",
    "root",
    "settings",
    "signup",
    "static",
    "status",
    "support",
    "system",
    "tenants",
    "www",
];

/// Checks a slug: 3 to 40 characters of `a-z`, `0-9` and `-`, starting with a
/// letter, not ending with `-`, and not a reserved word. `Err` says why.
pub fn validate_slug(slug: &str) -> Result<(), &'static str> {
    let valid_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=40).contains(&slug.len()) {
        Err("must be 3 to 40 characters long")
    } else if !valid_chars {
        Err("may contain only lowercase letters, digits and hyphens")
    } else if !slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        Err("must start with a letter")
    } else if slug.ends_with('-') || slug.contains("--") {
        Err("may not end with a hyphen or contain two in a row")
    } else if RESERVED_SLUGS.contains(&slug) {
        Err("is reserved")
    } else {
        Ok(())
    }
}

/// The columns of [`Tenant`], for queries that return one.
pub(crate) const TENANT_COLUMNS: &str = "id, slug, name, status, plan, branding, settings, \
                              event_retention_days, reporting_currency, time_zone, signup_event, \
                              onboarding_steps, created_at, updated_at";

/// The transaction's own tenant.
pub async fn current(tx: &mut TenantTx) -> Result<Tenant, DbError> {
    Ok(
        sqlx::query_as(&format!("SELECT {TENANT_COLUMNS} FROM tenants"))
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Changes to a tenant's editable fields; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct TenantChanges {
    /// New display name.
    pub name: Option<String>,
    /// New event retention, in days.
    pub event_retention_days: Option<i32>,
    /// New reporting currency.
    pub reporting_currency: Option<String>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// New sign-up event.
    pub signup_event: Option<String>,
    /// New onboarding steps.
    pub onboarding_steps: Option<Vec<String>>,
}

/// Applies `changes` to the transaction's tenant.
pub async fn update(tx: &mut TenantTx, changes: TenantChanges) -> Result<Tenant, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE tenants SET name = coalesce($1, name),
                event_retention_days = coalesce($2, event_retention_days),
                reporting_currency = coalesce($3, reporting_currency),
                time_zone = coalesce($4, time_zone), signup_event = coalesce($5, signup_event),
                onboarding_steps = coalesce($6, onboarding_steps), updated_at = now()
         RETURNING {TENANT_COLUMNS}"
    ))
    .bind(changes.name)
    .bind(changes.event_retention_days)
    .bind(changes.reporting_currency)
    .bind(changes.time_zone)
    .bind(changes.signup_event)
    .bind(changes.onboarding_steps)
    .fetch_one(tx.conn())
    .await?)
}

/// Whether PostgreSQL knows `name` as a time zone (`Europe/Paris`, `UTC`).
pub async fn is_time_zone(tx: &mut TenantTx, name: &str) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)")
            .bind(name)
            .fetch_one(tx.conn())
            .await?,
    )
}

/// Suspends or reactivates the transaction's tenant.
pub async fn set_status(tx: &mut TenantTx, status: TenantStatus) -> Result<Tenant, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE tenants SET status = $1, updated_at = now() RETURNING {TENANT_COLUMNS}"
    ))
    .bind(status)
    .fetch_one(tx.conn())
    .await?)
}

/// The tenant behind `slug` and `user_id`'s role there, if they are a member.
pub async fn member_tenant(
    db: impl PgExecutor<'_>,
    slug: &str,
    user_id: Uuid,
) -> Result<Option<MemberTenant>, DbError> {
    Ok(
        sqlx::query_as("SELECT tenant_id, slug, name, status, role FROM member_tenant($1, $2)")
            .bind(slug)
            .bind(user_id)
            .fetch_optional(db)
            .await?,
    )
}

/// Every tenant `user_id` belongs to, with their role.
pub async fn user_tenants(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Vec<MemberTenant>, DbError> {
    Ok(
        sqlx::query_as("SELECT tenant_id, slug, name, status, role FROM user_tenants($1)")
            .bind(user_id)
            .fetch_all(db)
            .await?,
    )
}

/// All tenants, for the super-admin panel. The caller checks the super-admin.
pub async fn platform_list(db: impl PgExecutor<'_>) -> Result<Vec<TenantSummary>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, slug, name, status, plan, created_at, member_count FROM platform_tenants()",
    )
    .fetch_all(db)
    .await?)
}

/// The id of the tenant with this slug, for platform operations.
pub async fn platform_id_by_slug(
    db: impl PgExecutor<'_>,
    slug: &str,
) -> Result<Option<Uuid>, DbError> {
    Ok(sqlx::query_scalar("SELECT platform_tenant_id($1)")
        .bind(slug)
        .fetch_one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::validate_slug;

    #[test]
    fn slugs_are_checked() {
        for good in ["acme", "globex-corp", "a1b2", "abc"] {
            assert_eq!(validate_slug(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("ab", "must be 3 to 40 characters long"),
            (
                "Acme",
                "may contain only lowercase letters, digits and hyphens",
            ),
            (
                "ac_me",
                "may contain only lowercase letters, digits and hyphens",
            ),
            ("1acme", "must start with a letter"),
            ("acme-", "may not end with a hyphen or contain two in a row"),
            (
                "ac--me",
                "may not end with a hyphen or contain two in a row",
            ),
            ("admin", "is reserved"),
        ] {
            assert_eq!(validate_slug(bad), Err(why), "{bad}");
        }
    }
}
