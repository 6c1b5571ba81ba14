//! Log-in, log-out, the signed-in user, and setting a password with a
//! one-time token.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Duration;
use northstar_db::{
    sessions,
    tenants::{self, MemberTenant},
    users::{self, User},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    caller::{ClientAddress, SignedIn, check_origin},
    error::{ApiError, Problem},
    extract_json::ApiJson,
    session_cookie,
};
use crate::{auth::passwords::check_new_password, state::AppState};

/// Credentials to sign in with.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address (case-insensitive).
    pub email: String,
    /// Password.
    pub password: String,
}

/// The signed-in user, their tenants and the token for changes.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// The user.
    pub user: User,
    /// Every tenant they belong to, with their role.
    pub tenants: Vec<MemberTenant>,
    /// Send as `X-CSRF-Token` with every cookie-authenticated POST, PUT, PATCH
    /// or DELETE.
    pub csrf_token: String,
}

/// Signs in: creates a server-side session and sets its cookie.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = MeResponse),
        (status = 401, description = "Wrong email or password", body = Problem),
        (status = 429, description = "Too many attempts", body = Problem),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    check_origin(&headers, &state.settings)?;
    let email = request.email.trim();
    state
        .login_throttle
        .attempt(email, address)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let (user, hash) = match users::credentials(&state.pool, email).await? {
        Some(found) => (Some(found.user), found.password_hash),
        None => (None, None),
    };
    let valid = state
        .passwords
        .verify(&request.password, hash)
        .await
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(ApiError::InvalidCredentials);
    };
    // Rotate: whatever session the browser had is gone; a new id is issued.
    if let Some(old) = session_cookie::read(&headers, &state.settings) {
        sessions::delete(&state.pool, &old).await?;
    }
    let max = Duration::from_std(state.settings.session_max).unwrap_or(Duration::days(7));
    let session = sessions::create(&state.pool, user.id, max).await?;
    tracing::info!(user.id = %user.id, "signed in");
    let tenants = tenants::user_tenants(&state.pool, user.id).await?;
    let cookie = session_cookie::set(&state.settings, session.token);
    let body = MeResponse {
        user,
        tenants,
        csrf_token: session.csrf_token,
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Signs out: destroys the session server-side and clears the cookie.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "Missing CSRF token", body = Problem),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, ApiError> {
    sessions::delete(&state.pool, &signed_in.session_token).await?;
    let cookie: HeaderValue = session_cookie::clear(&state.settings);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// The signed-in user and their tenants.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, description = "Not signed in", body = Problem),
    )
)]
pub async fn me(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Json<MeResponse>, ApiError> {
    let tenants = tenants::user_tenants(&state.pool, signed_in.user.id).await?;
    Ok(Json(MeResponse {
        user: signed_in.user,
        tenants,
        csrf_token: signed_in.csrf_token,
    }))
}

/// A one-time token and the password to set with it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The token from the invitation or provisioning response.
    pub token: String,
    /// The new password, at least 10 characters.
    pub password: String,
}

/// Sets a password with a one-time token (new owners and invited members).
/// Ends every session the user had.
#[utoipa::path(
    post, path = "/api/v1/auth/set-password", tag = "auth",
    request_body = SetPasswordRequest,
    responses(
        (status = 204, description = "Password set; sign in with it"),
        (status = 422, description = "Weak password, or unknown, used or expired token", body = Problem),
    )
)]
pub async fn set_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    check_origin(&headers, &state.settings)?;
    check_new_password(&request.password).map_err(|reason| ApiError::field("password", reason))?;
    let hash = state
        .passwords
        .hash(&request.password)
        .await
        .map_err(|err| ApiError::Internal(Box::new(err)))?;
    let mut tx = state
        .pool
        .begin()
        .await
        .map_err(northstar_db::DbError::from)?;
    let user_id = users::redeem_set_password_token(&mut *tx, &request.token)
        .await?
        .ok_or_else(|| ApiError::field("token", "is unknown, already used or expired"))?;
    users::set_password(&mut *tx, user_id, &hash).await?;
    sessions::delete_for_user(&mut *tx, user_id).await?;
    tx.commit().await.map_err(northstar_db::DbError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
