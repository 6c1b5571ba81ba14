//! Who is calling: a signed-in user (session cookie) or a secret API key
//! (`Authorization: Bearer ns_sk_…`).
//!
//! Cookie-authenticated requests that change state must carry the session's
//! CSRF token in `X-CSRF-Token`, and an `Origin`, when sent, must be
//! Northstar's own. Bearer requests need neither: browsers never attach them
//! on their own.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, Method, header, request::Parts},
};
use chrono::Duration;
use northstar_db::{
    api_keys::{self, KeyKind, KeyPrincipal},
    audit::Actor,
    sessions,
    users::User,
};

use super::error::ApiError;
use crate::{config::HttpSettings, http::session_cookie, state::AppState};

/// A user signed in with a session cookie.
pub struct SignedIn {
    /// The user.
    pub user: User,
    /// The cookie's session token.
    pub session_token: String,
    /// The session's CSRF token.
    pub csrf_token: String,
}

/// The authenticated caller of a REST endpoint.
pub enum Caller {
    /// A person, by session cookie.
    User(SignedIn),
    /// A secret API key, by bearer token.
    ApiKey(KeyPrincipal),
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(secret) = bearer_token(&parts.headers) {
            let key = api_keys::authenticate(&state.pool, secret)
                .await?
                .ok_or(ApiError::Unauthenticated)?;
            if key.kind != KeyKind::Secret {
                return Err(ApiError::Forbidden(
                    "write keys authenticate ingestion only; use a secret key for the REST API"
                        .into(),
                ));
            }
            return Ok(Caller::ApiKey(key));
        }
        let token = session_cookie::read(&parts.headers, &state.settings)
            .ok_or(ApiError::Unauthenticated)?;
        let idle = Duration::from_std(state.settings.session_idle).unwrap_or(Duration::MAX);
        let session = sessions::find_live(&state.pool, &token, idle)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !is_safe(&parts.method) {
            check_origin(&parts.headers, &state.settings)?;
            let presented = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !constant_time_eq(presented.as_bytes(), session.csrf_token.as_bytes()) {
                return Err(ApiError::CsrfRejected);
            }
        }
        Ok(Caller::User(SignedIn {
            user: session.user,
            session_token: token,
            csrf_token: session.csrf_token,
        }))
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::User(signed_in) => Ok(signed_in),
            Caller::ApiKey(_) => Err(ApiError::Forbidden(
                "this endpoint needs a signed-in user, not an API key".into(),
            )),
        }
    }
}

/// A signed-in platform super-admin.
pub struct SuperAdmin(pub SignedIn);

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let signed_in = SignedIn::from_request_parts(parts, state).await?;
        if !signed_in.user.is_superadmin {
            return Err(ApiError::Forbidden(
                "this needs a platform super-admin".into(),
            ));
        }
        Ok(SuperAdmin(signed_in))
    }
}

impl SignedIn {
    /// The audit-log actor for this user in this request.
    pub fn actor(&self, parts_request_id: Option<String>) -> Actor {
        Actor {
            label: format!("user:{}", self.user.email),
            user_id: Some(self.user.id),
            request_id: parts_request_id,
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Refuses a request whose `Origin` is not Northstar's own public origin.
pub fn check_origin(headers: &HeaderMap, settings: &HttpSettings) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(origin)) if origin == settings.public_origin => Ok(()),
        Some(_) => Err(ApiError::CsrfRejected),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request's id, as set by the request-id middleware.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The client's address: the TCP peer (no proxy headers are trusted);
/// `None` for requests that did not come over a socket (in-process tests).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}
