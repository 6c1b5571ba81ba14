//! Request extractors whose rejections are problem details: a JSON body
//! whose errors name the field, and path and query parameters.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body. Malformed JSON is a 400, a wrong or missing field a
/// 422 naming the field, a non-JSON content type a 415 and a body over the
/// configured limit a 413.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_) => too_large(rejection),
                other => ApiError::MalformedJson(other.body_text()),
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn too_large(rejection: BytesRejection) -> ApiError {
    // The only way to fail buffering an in-memory request is the body limit.
    let limit = rejection
        .body_text()
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or(0);
    ApiError::PayloadTooLarge { limit }
}

/// Deserialises JSON, turning serde's errors into problem details that name
/// the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner),
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::MalformedJson(err.to_string()))?;
    Ok(value)
}

fn data_error(path: &str, err: &serde_json::Error) -> ApiError {
    let message = err.to_string();
    // serde's message ends with " at line L column C"; keep the reason only.
    let reason = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(reason, _)| reason);
    let named = |prefix: &str| {
        reason
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let base = if path == "." { "" } else { path };
    let join = |field: &str| {
        if base.is_empty() {
            field.to_owned()
        } else {
            format!("{base}.{field}")
        }
    };
    if let Some(field) = named("missing field `") {
        ApiError::field(join(&field), "is required")
    } else if let Some(field) = named("unknown field `") {
        // Here the path already ends with the unknown key.
        let field = if base.is_empty() {
            field
        } else {
            base.to_owned()
        };
        ApiError::field(field, "is not a known field")
    } else {
        let field = if base.is_empty() { "body" } else { base };
        ApiError::field(field, reason)
    }
}

/// Path parameters; one that does not parse names no resource, so it is a 404.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| ApiPath(path.0))
            .map_err(|_| ApiError::NotFound)
    }
}

/// Query parameters; a bad one is a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|err| {
                let field = err.path().to_string();
                ApiError::field(
                    if field == "." { "query".into() } else { field },
                    err.into_inner().to_string(),
                )
            })
    }
}
