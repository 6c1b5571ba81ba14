//! The one error type of the HTTP layer, written once as RFC 9457 problem
//! details.
//!
//! Variants say what the client should do next. Every response carries a
//! stable `code` from [`ApiError::code`] and a `type` of
//! `urn:northstar:problem:<code>`; validation problems list each offending
//! field with the reason. Server errors log their whole source chain and tell
//! the client nothing but the request id (in the `x-request-id` header).

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use northstar_db::{DbError, billing::BillingError};

use crate::ingest::pipeline::PipelineError;
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the request body, query or path (`owner.email`).
    pub field: String,
    /// Why it was refused, in words a person can act on.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:northstar:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What happened in this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For validation problems: each invalid field and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Some fields are invalid: fix them and retry.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Ingestion: every message of the request is invalid; nothing was stored.
    #[error("invalid messages")]
    InvalidMessages(Vec<FieldError>),
    /// The body is not well-formed JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body is not JSON at all.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is larger than the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No valid session or API key.
    #[error("authentication required")]
    Unauthenticated,
    /// Ingestion: no write key, or not a live one.
    #[error("missing, unknown or revoked write key")]
    InvalidWriteKey,
    /// Wrong email or password (deliberately not saying which).
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// A cookie-authenticated change without the session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    CsrfRejected,
    /// A webhook whose signature does not verify (or that names no tenant,
    /// which is deliberately indistinguishable): the sender must fix it.
    #[error("{0}")]
    WebhookSignature(String),
    /// Authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant is suspended.
    #[error("this tenant is suspended")]
    TenantSuspended,
    /// No such resource, or not visible to the caller.
    #[error("not found")]
    NotFound,
    /// The path exists, but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the current state.
    #[error("{detail}")]
    Conflict {
        /// Stable code of the conflict.
        code: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// Too many requests: retry after the given time.
    #[error("too many requests")]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// Ingestion is at capacity: retry after the given time.
    #[error("ingestion is at capacity; retry later")]
    Overloaded {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// A dependency (the database) is unavailable: retry later.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A validation error about one field.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, reason)])
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::InvalidMessages(_)
            | ApiError::MalformedJson(_)
            | ApiError::WebhookSignature(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::InvalidWriteKey => StatusCode::UNAUTHORIZED,
            ApiError::CsrfRejected | ApiError::Forbidden(_) | ApiError::TenantSuspended => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation_failed",
            ApiError::InvalidMessages(_) => "invalid_messages",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::InvalidWriteKey => "invalid_write_key",
            ApiError::CsrfRejected => "csrf_rejected",
            ApiError::WebhookSignature(_) => "invalid_signature",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TenantSuspended => "tenant_suspended",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "The request has invalid fields",
            ApiError::InvalidMessages(_) => "No message of the request is valid",
            ApiError::MalformedJson(_) => "The request body is not valid JSON",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::PayloadTooLarge { .. } => "Request body too large",
            ApiError::Unauthenticated => "Authentication required",
            ApiError::InvalidCredentials => "Invalid credentials",
            ApiError::InvalidWriteKey => "Invalid write key",
            ApiError::CsrfRejected => "CSRF check failed",
            ApiError::WebhookSignature(_) => "Invalid webhook signature",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::TenantSuspended => "Tenant suspended",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::Overloaded { .. } => "Ingestion at capacity",
            ApiError::Unavailable(_) => "Service unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            ApiError::Validation(_)
            | ApiError::InvalidMessages(_)
            | ApiError::Unavailable(_)
            | ApiError::Internal(_) => None,
            ApiError::NotFound | ApiError::MethodNotAllowed => None,
            other => Some(other.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::UniqueViolation { constraint } => ApiError::Conflict {
                code: "conflict",
                detail: format!("conflicts with an existing record ({constraint})"),
            },
            DbError::Unavailable(_) => ApiError::Unavailable(Box::new(err)),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<BillingError> for ApiError {
    fn from(err: BillingError) -> Self {
        match err {
            BillingError::UnknownCustomer(id) => ApiError::field(
                "customer_external_id",
                format!("no customer with external id {id:?}; create it first"),
            ),
            BillingError::UnknownPlan { line, plan } => ApiError::field(
                format!("line_items[{line}].plan_external_id"),
                format!("no plan with external id {plan:?}; create it first"),
            ),
            BillingError::Db(err) => err.into(),
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(err: PipelineError) -> Self {
        match err {
            PipelineError::Full | PipelineError::Closed => ApiError::Overloaded {
                retry_after: Duration::from_secs(2),
            },
            PipelineError::Write(_) => ApiError::Unavailable(Box::new(err)),
            // The queue is configured to hold the largest request: a bug.
            PipelineError::TooLarge { .. } => ApiError::Internal(Box::new(err)),
        }
    }
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %source_chain(&self), "request failed");
        } else {
            tracing::warn!(code = self.code(), error = %self, "request refused");
        }
        let problem = Problem {
            problem_type: format!("urn:northstar:problem:{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            code: self.code(),
            detail: self.detail(),
            errors: match &self {
                ApiError::Validation(errors) | ApiError::InvalidMessages(errors) => errors.clone(),
                _ => Vec::new(),
            },
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::RateLimited { retry_after } | ApiError::Overloaded { retry_after } => {
                let seconds = retry_after.as_secs().max(1);
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthenticated => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"northstar\""),
                );
            }
            ApiError::InvalidWriteKey => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"northstar-ingest\""),
                );
            }
            _ => {}
        }
        response
    }
}
