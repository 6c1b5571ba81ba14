//! The Segment HTTP tracking API: `/v1/batch` (and `/v1/import`), one
//! endpoint per message type, and analytics.js's short paths (`/v1/t`, …)
//! which post `text/plain` with the write key in the body.
//!
//! Answers: `200 {"success": true, "accepted": n}` once every valid message
//! is committed; in a batch with invalid messages the valid ones are stored
//! and the others listed under `rejected` (index, messageId, field, reason,
//! code). A request with no valid message at all is a 400 problem listing
//! each. Bodies may be gzip-encoded; any `Content-Type` is read as JSON.

use axum::{Json, body::Body, extract::State, http::HeaderMap};
use northstar_db::ingest::MessageType;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, value::RawValue};
use utoipa::ToSchema;

use super::{
    caller::ClientAddress,
    error::{ApiError, FieldError},
    ingest_request::{self, MAX_BATCH_BYTES, RejectedMessage, ValidatedBatch},
};
use crate::{
    ingest::message::{self, MAX_MESSAGE_BYTES, MissingMessageId, Rejection, parse_timestamp},
    state::AppState,
};

/// The answer to an accepted request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Always true: the valid messages are durably stored.
    pub success: bool,
    /// How many messages were stored (or were retries of stored ones).
    pub accepted: usize,
    /// The messages that were refused, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedMessage>,
}

#[derive(Deserialize)]
struct BatchEnvelope<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<Value>,
    #[serde(rename = "writeKey")]
    write_key: Option<String>,
}

/// Send many messages of any type.
#[utoipa::path(
    post, path = "/v1/batch", tag = "ingestion",
    description = "Segment's batch call: `{\"batch\": [messages], \"sentAt\": …}`, at most 500 KB \
                   (after gzip decoding), each message at most 32 KB with its `type`. The write key \
                   is the basic-auth user name (empty password) or `writeKey` in the body. \
                   `/v1/import` is the same endpoint.",
    request_body(content = Object, description = "A Segment batch"),
    responses(
        (status = 200, description = "Every valid message is stored; invalid ones are listed", body = Accepted),
        (status = 400, description = "No message is valid, or the body is not JSON", body = super::error::Problem),
        (status = 401, description = "Missing, unknown or revoked write key", body = super::error::Problem),
        (status = 403, description = "The tenant is suspended", body = super::error::Problem),
        (status = 413, description = "Body over 500 KB", body = super::error::Problem),
        (status = 429, description = "The write key is over its plan's rate; see Retry-After", body = super::error::Problem),
        (status = 503, description = "Ingestion at capacity; see Retry-After", body = super::error::Problem),
    ),
    security(("write_key" = []))
)]
pub async fn batch(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Accepted>, ApiError> {
    let admitted = ingest_request::admit(&state)?;
    let gzip = ingest_request::gzipped(&headers, false)?;
    let body = ingest_request::read_body(body, gzip, MAX_BATCH_BYTES).await?;
    let envelope: BatchEnvelope<'_> = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(err) => {
            count_malformed(&state, &headers).await;
            return Err(ApiError::MalformedJson(err.to_string()));
        }
    };
    let key = ingest_request::basic_auth_user(&headers).or(envelope.write_key);
    let scope = ingest_request::authenticate(&state, key.as_deref()).await?;
    let items = envelope
        .batch
        .ok_or_else(|| ApiError::InvalidMessages(vec![FieldError::new("batch", "is required")]))?;
    if items.is_empty() {
        return Err(ApiError::InvalidMessages(vec![FieldError::new(
            "batch",
            "must hold at least one message",
        )]));
    }
    ingest_request::check_rate(&state, &scope, items.len())?;
    let room = ingest_request::reserve(&state, body.len(), items.len()).await?;
    let receipt = ingest_request::receipt(&scope, &client);
    let sent_at = match envelope.sent_at {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => parse_timestamp(&text),
        Some(_) => None,
    };
    let validated = ValidatedBatch::collect(items.iter().map(|item| {
        let text = item.get().as_bytes();
        let outcome = message::from_text(text, None, sent_at, &receipt, MissingMessageId::Random);
        (outcome, || readable_message_id(item))
    }));
    // The rows own their data: free the body while the batch is written.
    drop(items);
    drop(body);
    drop(admitted);
    let (accepted, rejected) = ingest_request::store_batch(&state, &scope, room, validated).await?;
    Ok(Json(Accepted {
        success: true,
        accepted,
        rejected,
    }))
}

/// Counts a malformed body against the tenant named by basic auth, if any.
async fn count_malformed(state: &AppState, headers: &HeaderMap) {
    let key = ingest_request::basic_auth_user(headers);
    if let Ok(scope) = ingest_request::authenticate(state, key.as_deref()).await {
        let rejection = Rejection::malformed("the body is not valid JSON");
        // Best effort: the client gets its 400 whether or not this is counted.
        if let Ok(room) = ingest_request::reserve(state, 0, 0).await {
            let _ = ingest_request::store(state, &scope, room, Vec::new(), &[rejection]).await;
        }
    }
}

fn readable_message_id(item: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "messageId")]
        message_id: Option<Value>,
    }
    match serde_json::from_str::<Id>(item.get()).ok()?.message_id? {
        Value::String(id) => Some(id),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One message whose type the path names.
async fn single(
    state: AppState,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
    kind: MessageType,
) -> Result<Json<Accepted>, ApiError> {
    let admitted = ingest_request::admit(&state)?;
    let gzip = ingest_request::gzipped(&headers, false)?;
    let body = ingest_request::read_body(body, gzip, MAX_MESSAGE_BYTES).await?;
    let object: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(ApiError::MalformedJson(
                "the body must be a JSON object".into(),
            ));
        }
        Err(err) => {
            count_malformed(&state, &headers).await;
            return Err(ApiError::MalformedJson(err.to_string()));
        }
    };
    let key = ingest_request::basic_auth_user(&headers).or_else(|| {
        object
            .get("writeKey")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let scope = ingest_request::authenticate(&state, key.as_deref()).await?;
    ingest_request::check_rate(&state, &scope, 1)?;
    let room = ingest_request::reserve(&state, body.len(), 1).await?;
    drop(body);
    drop(admitted);
    let receipt = ingest_request::receipt(&scope, &client);
    match message::from_object(object, Some(kind), None, &receipt, MissingMessageId::Random) {
        Ok(row) => {
            ingest_request::store(&state, &scope, room, vec![row], &[]).await?;
            Ok(Json(Accepted {
                success: true,
                accepted: 1,
                rejected: Vec::new(),
            }))
        }
        Err(rejection) => {
            let rejections = std::slice::from_ref(&rejection);
            ingest_request::store(&state, &scope, room, Vec::new(), rejections).await?;
            Err(ApiError::InvalidMessages(vec![FieldError::new(
                rejection.field,
                rejection.reason,
            )]))
        }
    }
}

/// The endpoint of one message type, documented, with its short path.
macro_rules! single_message_endpoint {
    ($name:ident, $kind:expr, $path:literal, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(
            post, path = $path, tag = "ingestion", summary = $summary,
            description = "One Segment message of this type (at most 32 KB). The write key is the \
                           basic-auth user name or `writeKey` in the body.",
            request_body(content = Object, description = "A Segment message"),
            responses(
                (status = 200, description = "Stored", body = Accepted),
                (status = 400, description = "The message is invalid", body = super::error::Problem),
                (status = 401, description = "Missing, unknown or revoked write key", body = super::error::Problem),
                (status = 403, description = "The tenant is suspended", body = super::error::Problem),
                (status = 413, description = "Body over 32 KB", body = super::error::Problem),
                (status = 429, description = "Over the key's rate; see Retry-After", body = super::error::Problem),
                (status = 503, description = "Ingestion at capacity; see Retry-After", body = super::error::Problem),
            ),
            security(("write_key" = []))
        )]
        pub async fn $name(
            State(state): State<AppState>,
            client: ClientAddress,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Json<Accepted>, ApiError> {
            single(state, client, headers, body, $kind).await
        }
    };
}

single_message_endpoint!(
    track,
    MessageType::Track,
    "/v1/track",
    "Record a user action"
);
single_message_endpoint!(page, MessageType::Page, "/v1/page", "Record a page view");
single_message_endpoint!(
    screen,
    MessageType::Screen,
    "/v1/screen",
    "Record a screen view"
);
single_message_endpoint!(
    identify,
    MessageType::Identify,
    "/v1/identify",
    "Identify a user and set traits"
);
single_message_endpoint!(
    group,
    MessageType::Group,
    "/v1/group",
    "Associate a user with an account"
);
single_message_endpoint!(
    alias,
    MessageType::Alias,
    "/v1/alias",
    "Merge two identities"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_message_ids() {
        let raw = RawValue::from_string(r#"{"messageId": 42}"#.into()).expect("raw");
        assert_eq!(readable_message_id(&raw), Some("42".into()));
        let raw = RawValue::from_string(r#"{"messageId": {}}"#.into()).expect("raw");
        assert_eq!(readable_message_id(&raw), None);
    }
}
