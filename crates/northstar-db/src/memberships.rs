//! Who belongs to a tenant, and as what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, TenantTx};

/// A member's role in a tenant, from most to least powerful.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, ToSchema,
)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including granting, changing and removing owners.
    Owner,
    /// Members (except owners), API keys and the audit log.
    Admin,
    /// Will edit dashboards and data; today reads like a viewer.
    Editor,
    /// Read-only.
    Viewer,
}

impl Role {
    /// The role's name, as in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes everything `other` may do.
    pub fn at_least(self, other: Role) -> bool {
        self <= other
    }
}

/// A member of the transaction's tenant.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role here.
    pub role: Role,
    /// Since when.
    pub created_at: DateTime<Utc>,
}

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.name, m.role, m.created_at
     FROM memberships m JOIN users u ON u.id = m.user_id";

/// Every member, by email.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Member>, DbError> {
    Ok(sqlx::query_as(&format!("{MEMBER_SELECT} ORDER BY u.email"))
        .fetch_all(tx.conn())
        .await?)
}

/// The member `user_id`, if they are one.
pub async fn get(tx: &mut TenantTx, user_id: Uuid) -> Result<Option<Member>, DbError> {
    Ok(
        sqlx::query_as(&format!("{MEMBER_SELECT} WHERE m.user_id = $1"))
            .bind(user_id)
            .fetch_optional(tx.conn())
            .await?,
    )
}

/// Adds `user_id` with `role`; `None` if they already are a member.
pub async fn add(tx: &mut TenantTx, user_id: Uuid, role: Role) -> Result<Option<Member>, DbError> {
    let tenant_id = tx.tenant_id();
    let inserted = sqlx::query(
        "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, user_id) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(role)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    get(tx, user_id).await
}

/// Locks the owners' rows and returns their ids, so that concurrent
/// demotions and removals cannot leave the tenant without an owner.
pub async fn lock_owners(tx: &mut TenantTx) -> Result<Vec<Uuid>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE role = 'owner' FOR UPDATE")
            .fetch_all(tx.conn())
            .await?,
    )
}

/// Changes a member's role; `None` if they are not a member.
pub async fn set_role(
    tx: &mut TenantTx,
    user_id: Uuid,
    role: Role,
) -> Result<Option<Member>, DbError> {
    let updated = sqlx::query("UPDATE memberships SET role = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(role)
        .execute(tx.conn())
        .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    get(tx, user_id).await
}

/// Removes a member; `false` if they were not one.
pub async fn remove(tx: &mut TenantTx, user_id: Uuid) -> Result<bool, DbError> {
    let deleted = sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// The outcome of [`invite`].
pub struct Invited {
    /// The new membership; `None` if the user already was a member.
    pub member: Option<Member>,
    /// Whether an account was created for the email.
    pub user_created: bool,
    /// For a new account: the one-time token to set a password with.
    pub set_password_token: Option<String>,
}

/// Adds the user with `email` as `role`, creating the account (without a
/// password, with a set-password token) when there is none.
pub async fn invite(
    tx: &mut TenantTx,
    email: &str,
    name: &str,
    role: Role,
) -> Result<Invited, DbError> {
    let (user, user_created) = crate::users::find_or_create(tx.conn(), email, name, None).await?;
    let set_password_token = if user_created {
        Some(crate::users::issue_set_password_token(tx.conn(), user.id).await?)
    } else {
        None
    };
    let member = add(tx, user.id, role).await?;
    Ok(Invited {
        member,
        user_created,
        set_password_token,
    })
}
