//! What every SDK-facing ingestion endpoint does around its own format:
//! read the (possibly gzipped) body within its limit, authenticate the write
//! key, apply the key's rate limit, and store the valid rows and the counts
//! of the rejected ones.
//!
//! Status codes follow what SDKs do with them: 400/401/403/413 make them drop
//! the batch, so they are used only when no message of it could be stored;
//! 429 and 503 (with `Retry-After`) make them retry.

use std::{io::Read, sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, header},
};
use base64::Engine;
use chrono::Utc;
use northstar_db::{
    api_keys::{self, IngestScope},
    ingest::EventRow,
    tenants::TenantStatus,
};

use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;
use utoipa::ToSchema;

use super::{
    caller::ClientAddress,
    error::{ApiError, FieldError},
};
use crate::{
    ingest::{
        message::{self, Receipt, Rejection},
        pipeline::{Room, WhenFull},
    },
    state::AppState,
};

/// Largest batch request, as Segment documents it: 500 KB (after gzip decoding).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;

/// A place among the requests being read and validated: 503 `overloaded`
/// at once when all are taken. Drop it before waiting for the commit.
pub fn admit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.ingest.intake)
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded {
            retry_after: Duration::from_secs(2),
        })
}

/// Whether the body is gzip-compressed: `Content-Encoding: gzip`, or
/// PostHog's `?compression=gzip-js`.
pub fn gzipped(headers: &HeaderMap, query_says_gzip: bool) -> Result<bool, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or_default().trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => Ok(query_says_gzip),
        Some("gzip" | "x-gzip") => Ok(true),
        Some(other) => Err(ApiError::Validation(vec![FieldError::new(
            "Content-Encoding",
            format!("{other:?} is not supported; send gzip or no encoding"),
        )])),
    }
}

/// The body, decompressed when `gzip`, refused with 413 beyond `limit` bytes
/// (compressed or not).
pub async fn read_body(body: Body, gzip: bool, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    // Failing to buffer an in-memory body means it exceeded the limit (or the
    // client went away, when the answer does not matter).
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large)?;
    if !gzip {
        return Ok(raw);
    }
    let mut decoded = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(raw.as_ref())
        .take(limit as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|err| {
            ApiError::MalformedJson(format!("the gzip body cannot be decoded: {err}"))
        })?;
    if decoded.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(Bytes::from(decoded))
}

/// The user name of `Authorization: Basic …`: Segment's way to send the
/// write key (with an empty password).
pub fn basic_auth_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    (!user.is_empty()).then(|| user.to_owned())
}

/// The write key's ingest scope: 401 for a missing, unknown, revoked or
/// secret key; 403 for a suspended tenant.
pub async fn authenticate(state: &AppState, key: Option<&str>) -> Result<IngestScope, ApiError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::InvalidWriteKey)?;
    let scope = api_keys::authenticate_write_key(&state.pool, key)
        .await?
        .ok_or(ApiError::InvalidWriteKey)?;
    if scope.tenant_status == TenantStatus::Suspended {
        return Err(ApiError::TenantSuspended);
    }
    Ok(scope)
}

/// Spends `messages` from the key's rate limit: 429 with `Retry-After` when over.
pub fn check_rate(state: &AppState, scope: &IngestScope, messages: usize) -> Result<(), ApiError> {
    state
        .ingest
        .limits
        .check(&scope.plan, scope.key_id, messages)
        .map_err(|over| ApiError::RateLimited {
            retry_after: over.retry_after,
        })
}

/// The request's receipt: tenant, arrival time, retention, client address.
pub fn receipt(scope: &IngestScope, client: &ClientAddress) -> Receipt {
    Receipt {
        tenant_id: scope.tenant_id,
        received_at: Utc::now(),
        retention_days: scope.event_retention_days,
        client_ip: client.0,
    }
}

/// Room in the ingestion queue for a request of `body_bytes` holding
/// `messages` messages, taken before they are validated: a full queue is a
/// 503 with `Retry-After` that costs the server almost nothing.
pub async fn reserve(
    state: &AppState,
    body_bytes: usize,
    messages: usize,
) -> Result<Room, ApiError> {
    // Queued rows hold about the body's text, plus a row's fixed size and
    // the added id and address per message.
    let bytes = body_bytes + messages * (std::mem::size_of::<EventRow>() + 64);
    Ok(state
        .ingest
        .pipeline
        .reserve(bytes, WhenFull::Refuse)
        .await?)
}

/// Stores `rows` and counts `rejections` in `room`; returns once committed.
pub async fn store(
    state: &AppState,
    scope: &IngestScope,
    room: Room,
    rows: Vec<EventRow>,
    rejections: &[Rejection],
) -> Result<(), ApiError> {
    state
        .ingest
        .pipeline
        .submit_in(room, scope.tenant_id, rows, count_by_code(rejections))
        .await?;
    Ok(())
}

/// A message of a batch that was refused.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectedMessage {
    /// Its position in `batch`, from 0.
    pub index: usize,
    /// Its `messageId`, when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The offending field.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
    /// Stable reason code (also the key of the rejection counters).
    pub code: &'static str,
}

/// A batch's messages, validated: the rows to store and the refused ones.
pub struct ValidatedBatch {
    rows: Vec<EventRow>,
    rejected: Vec<RejectedMessage>,
    rejections: Vec<Rejection>,
}

impl ValidatedBatch {
    /// Sorts each message, given as its outcome and a way to read its id
    /// for the report, into rows and refusals.
    pub fn collect<F: FnOnce() -> Option<String>>(
        messages: impl Iterator<Item = (Result<EventRow, Rejection>, F)>,
    ) -> Self {
        let mut batch = ValidatedBatch {
            rows: Vec::new(),
            rejected: Vec::new(),
            rejections: Vec::new(),
        };
        for (index, (outcome, message_id)) in messages.enumerate() {
            match outcome {
                Ok(row) => batch.rows.push(row),
                Err(rejection) => {
                    batch.rejected.push(RejectedMessage {
                        index,
                        message_id: message_id(),
                        field: rejection.field.clone(),
                        reason: rejection.reason.clone(),
                        code: rejection.code,
                    });
                    batch.rejections.push(rejection);
                }
            }
        }
        batch
    }
}

/// Stores the valid rows of a batch in `room` and counts its rejections.
/// Returns how many were accepted and the refused ones; with no valid
/// message at all, a 400 listing each (`batch[i].field`).
pub async fn store_batch(
    state: &AppState,
    scope: &IngestScope,
    room: Room,
    batch: ValidatedBatch,
) -> Result<(usize, Vec<RejectedMessage>), ApiError> {
    let accepted = batch.rows.len();
    store(state, scope, room, batch.rows, &batch.rejections).await?;
    if accepted == 0 {
        return Err(ApiError::InvalidMessages(
            batch
                .rejected
                .iter()
                .map(|r| FieldError::new(format!("batch[{}].{}", r.index, r.field), &r.reason))
                .collect(),
        ));
    }
    Ok((accepted, batch.rejected))
}

/// Rejections counted by reason code.
pub fn count_by_code(rejections: &[Rejection]) -> Vec<(&'static str, u64)> {
    let mut counts = Vec::new();
    for rejection in rejections {
        message::tally(&mut counts, rejection.code);
    }
    counts
}
