//! Global user identities and their one-time tokens.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgExecutor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DbError, secret_token::SecretToken};

/// A person who can sign in, independent of any tenant.
#[derive(Debug, Clone, FromRow, Serialize, ToSchema)]
pub struct User {
    /// Stable identifier.
    pub id: Uuid,
    /// Sign-in address; unique regardless of case.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Platform operator with access to the super-admin API.
    pub is_superadmin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// What log-in needs to check a password.
#[derive(Debug, FromRow)]
pub struct Credentials {
    /// The user.
    #[sqlx(flatten)]
    pub user: User,
    /// argon2id PHC string; `None` until the user sets a password.
    pub password_hash: Option<String>,
}

const USER_COLUMNS: &str = "id, email, name, is_superadmin, created_at";

/// The user with this id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<User>, DbError> {
    Ok(
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// The user with this email, compared case-insensitively.
pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> Result<Option<User>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(db)
    .await?)
}

/// The password hash of the user with this email, for log-in.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    email: &str,
) -> Result<Option<Credentials>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(db)
    .await?)
}

/// Creates a user, or returns the existing one with that email (`false`).
pub async fn find_or_create(
    db: &mut sqlx::PgConnection,
    email: &str,
    name: &str,
    password_hash: Option<&str>,
) -> Result<(User, bool), DbError> {
    let created: Option<User> = sqlx::query_as(&format!(
        "INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT ((lower(email))) DO NOTHING RETURNING {USER_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .fetch_optional(&mut *db)
    .await?;
    match created {
        Some(user) => Ok((user, true)),
        None => {
            let existing = find_by_email(&mut *db, email).await?;
            existing
                .map(|user| (user, false))
                .ok_or_else(|| DbError::Other(sqlx::Error::RowNotFound))
        }
    }
}

/// Replaces the user's password hash.
pub async fn set_password(
    db: impl PgExecutor<'_>,
    id: Uuid,
    password_hash: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Grants or withdraws platform super-admin rights.
pub async fn set_superadmin(db: impl PgExecutor<'_>, id: Uuid, on: bool) -> Result<(), DbError> {
    sqlx::query("UPDATE users SET is_superadmin = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(on)
        .execute(db)
        .await?;
    Ok(())
}

/// How long a set-password token stays valid.
pub const SET_PASSWORD_TOKEN_TTL: Duration = Duration::days(7);

/// Issues a one-time token with which the user sets their password.
pub async fn issue_set_password_token(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<String, DbError> {
    let token = SecretToken::generate("ns_pw_");
    sqlx::query(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at)
         VALUES ($1, $2, 'set_password', now() + $3)",
    )
    .bind(&token.hash)
    .bind(user_id)
    .bind(SET_PASSWORD_TOKEN_TTL)
    .execute(db)
    .await?;
    Ok(token.secret)
}

/// Marks a live set-password token used and returns its user, once.
pub async fn redeem_set_password_token(
    db: impl PgExecutor<'_>,
    token: &str,
) -> Result<Option<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE user_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = 'set_password' AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
    )
    .bind(crate::secret_token::digest(token))
    .fetch_optional(db)
    .await?)
}
