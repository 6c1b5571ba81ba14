//! Server-side browser sessions.
//!
//! The cookie holds a random token; the table holds its SHA-256, the user, a
//! CSRF token and two expiries: absolute (`expires_at`, fixed at log-in) and
//! idle (`last_seen_at` plus the configured idle timeout).

use chrono::{DateTime, Duration, Utc};
use sqlx::{FromRow, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    DbError,
    secret_token::{self, SecretToken},
    users::User,
};

/// A session just created: `token` goes into the cookie and nowhere else.
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// Must accompany every state-changing request made with the cookie.
    pub csrf_token: String,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
}

/// A live session and who it belongs to.
#[derive(Debug, FromRow)]
pub struct Session {
    /// The signed-in user.
    #[sqlx(flatten)]
    pub user: User,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// Last request seen (updated at most once a minute).
    pub last_seen_at: DateTime<Utc>,
}

/// Creates a session for `user_id` that ends after `absolute` at the latest.
pub async fn create(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    absolute: Duration,
) -> Result<NewSession, DbError> {
    let token = SecretToken::generate("");
    let csrf_token = SecretToken::generate("").secret;
    let expires_at = Utc::now() + absolute;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&token.hash)
    .bind(user_id)
    .bind(&csrf_token)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(NewSession {
        token: token.secret,
        csrf_token,
        expires_at,
    })
}

/// The live session for a cookie token: neither past its absolute expiry nor
/// idle for longer than `idle`. Refreshes `last_seen_at` at most once a minute.
pub async fn find_live(
    pool: &PgPool,
    token: &str,
    idle: Duration,
) -> Result<Option<Session>, DbError> {
    let hash = secret_token::digest(token);
    let session: Option<Session> = sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.is_superadmin, u.created_at, s.csrf_token, s.last_seen_at
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND s.last_seen_at > now() - $2",
    )
    .bind(&hash)
    .bind(idle)
    .fetch_optional(pool)
    .await?;
    if let Some(session) = &session
        && session.last_seen_at < Utc::now() - Duration::minutes(1)
    {
        sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1")
            .bind(&hash)
            .execute(pool)
            .await?;
    }
    Ok(session)
}

/// Destroys the session behind a cookie token (log-out, rotation).
pub async fn delete(db: impl PgExecutor<'_>, token: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(secret_token::digest(token))
        .execute(db)
        .await?;
    Ok(())
}

/// Destroys every session of a user (password change).
pub async fn delete_for_user(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Removes sessions past their absolute expiry or idle longer than `idle`.
pub async fn delete_expired(db: impl PgExecutor<'_>, idle: Duration) -> Result<u64, DbError> {
    let done =
        sqlx::query("DELETE FROM sessions WHERE expires_at <= now() OR last_seen_at <= now() - $1")
            .bind(idle)
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
