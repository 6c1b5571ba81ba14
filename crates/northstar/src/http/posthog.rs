//! PostHog's capture API (`/capture/`, `/batch/`, and posthog-js's `/e/`),
//! so that PostHog SDKs work by pointing their host at Northstar. Bodies are
//! a single event, `{"api_key", "batch": [events]}`, or an array of events;
//! gzip by `Content-Encoding` or `?compression=gzip-js`. Events are
//! validated and stored as Segment messages (see `ingest::posthog`).

use axum::{
    Json,
    body::Body,
    extract::{Query, State},
    http::HeaderMap,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{
    caller::ClientAddress,
    error::{ApiError, FieldError},
    ingest_request::{self, MAX_BATCH_BYTES, RejectedMessage, ValidatedBatch},
};
use crate::{
    ingest::{
        message::{self, MAX_MESSAGE_BYTES, MissingMessageId, Rejection, parse_timestamp},
        posthog,
    },
    state::AppState,
};

/// Largest PostHog request (after gzip decoding): twice a Segment batch.
pub const MAX_CAPTURE_BYTES: usize = 2 * MAX_BATCH_BYTES;

/// Query parameters PostHog SDKs send.
#[derive(Debug, Deserialize, IntoParams)]
pub struct CaptureQuery {
    /// `gzip-js` (or `gzip`) when the body is gzip-compressed.
    pub compression: Option<String>,
}

/// PostHog's answer, with the refused events when there are some.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureAccepted {
    /// 1: the valid events are durably stored.
    pub status: u8,
    /// Refused events.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedMessage>,
}

/// Capture PostHog events.
#[utoipa::path(
    post, path = "/batch/", tag = "ingestion",
    description = "PostHog's capture API (also at `/capture/`, `/e/`, `/i/v0/e/`, with or without \
                   the trailing slash). The project API key (`api_key`, `token`, or \
                   `properties.token`) is a Northstar write key; `uuid` is the dedupe key. At most \
                   1 MB after gzip decoding, 32 KB per event.",
    params(CaptureQuery),
    request_body(content = Object, description = "One event, an array of events, or {api_key, batch}"),
    responses(
        (status = 200, description = "Every valid event is stored", body = CaptureAccepted),
        (status = 400, description = "No event is valid, or the body is not JSON", body = super::error::Problem),
        (status = 401, description = "Missing, unknown or revoked key", body = super::error::Problem),
        (status = 403, description = "The tenant is suspended", body = super::error::Problem),
        (status = 413, description = "Body over 1 MB", body = super::error::Problem),
        (status = 429, description = "Over the key's rate; see Retry-After", body = super::error::Problem),
        (status = 503, description = "Ingestion at capacity; see Retry-After", body = super::error::Problem),
    )
)]
pub async fn capture(
    State(state): State<AppState>,
    client: ClientAddress,
    Query(query): Query<CaptureQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CaptureAccepted>, ApiError> {
    let admitted = ingest_request::admit(&state)?;
    let gzip_query = matches!(query.compression.as_deref(), Some("gzip-js" | "gzip"));
    let gzip = ingest_request::gzipped(&headers, gzip_query)?;
    let body = ingest_request::read_body(body, gzip, MAX_CAPTURE_BYTES).await?;
    let parsed: Value =
        serde_json::from_slice(&body).map_err(|err| ApiError::MalformedJson(err.to_string()))?;
    let (envelope, events) = match parsed {
        Value::Array(events) => (Map::new(), events),
        Value::Object(mut object) => match object.remove("batch") {
            Some(Value::Array(events)) => (object, events),
            Some(_) => {
                return Err(ApiError::InvalidMessages(vec![FieldError::new(
                    "batch",
                    "must be an array of events",
                )]));
            }
            None => (Map::new(), vec![Value::Object(object)]),
        },
        _ => {
            return Err(ApiError::MalformedJson(
                "expected an object or an array".into(),
            ));
        }
    };
    let key = posthog::api_key(&envelope, events.first()).or_else(|| {
        events
            .first()
            .and_then(|e| posthog::api_key(e.as_object()?, None))
    });
    let scope = ingest_request::authenticate(&state, key.as_deref()).await?;
    if events.is_empty() {
        return Err(ApiError::InvalidMessages(vec![FieldError::new(
            "batch",
            "must hold at least one event",
        )]));
    }
    ingest_request::check_rate(&state, &scope, events.len())?;
    let room = ingest_request::reserve(&state, body.len(), events.len()).await?;
    drop(body);
    let receipt = ingest_request::receipt(&scope, &client);
    let sent_at = envelope
        .get("sent_at")
        .and_then(Value::as_str)
        .and_then(parse_timestamp);
    let validated = ValidatedBatch::collect(events.into_iter().map(|event| {
        let uuid = event.get("uuid").and_then(Value::as_str).map(str::to_owned);
        (validate(event, sent_at, &receipt), move || uuid)
    }));
    drop(admitted);
    let (_, rejected) = ingest_request::store_batch(&state, &scope, room, validated).await?;
    Ok(Json(CaptureAccepted {
        status: 1,
        rejected,
    }))
}

fn validate(
    event: Value,
    sent_at: Option<chrono::DateTime<chrono::Utc>>,
    receipt: &message::Receipt,
) -> Result<northstar_db::ingest::EventRow, Rejection> {
    let Value::Object(event) = event else {
        return Err(Rejection::malformed("must be a JSON object"));
    };
    let size = serde_json::to_vec(&event).map_or(0, |bytes| bytes.len());
    if size > MAX_MESSAGE_BYTES {
        return Err(Rejection::too_large(size));
    }
    let (kind, message) = posthog::to_segment(event, receipt.received_at)?;
    message::from_object(
        message,
        Some(kind),
        sent_at,
        receipt,
        MissingMessageId::Random,
    )
}
