//! One Segment message, validated and turned into an [`EventRow`].
//!
//! Follows the Segment spec's common fields: `type`, `userId` and/or
//! `anonymousId`, `messageId`, `timestamp`, `originalTimestamp`, `sentAt`,
//! `context`, `integrations`, and the per-type fields (`event` and
//! `properties`; `name`, `category` and `properties`; `traits`; `groupId`;
//! `previousId`). Ids may be strings or numbers (numbers are stored as their
//! decimal text). Time is corrected for the client's clock skew as Segment
//! does: `timestamp = receivedAt - (sentAt - originalTimestamp)`.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use northstar_db::ingest::{EventRow, MessageType};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Largest message, as Segment documents it: 32 KB.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Longest id or event name, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// How far in the future a message's time may be.
pub const MAX_FUTURE: Duration = Duration::hours(24);

/// Where a request's messages came from and when.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The write key's tenant.
    pub tenant_id: Uuid,
    /// Arrival time: Segment's `receivedAt`.
    pub received_at: DateTime<Utc>,
    /// Messages older than this many days are refused (they would be deleted).
    pub retention_days: i32,
    /// The client's address, added as `context.ip` when the message has none.
    pub client_ip: Option<IpAddr>,
}

/// How a message without `messageId` gets one.
#[derive(Debug, Clone, Copy)]
pub enum MissingMessageId<'a> {
    /// A random id (live traffic: two identical calls are two events).
    Random,
    /// An id derived from the message text, so that importing the same file
    /// twice stores each line once.
    FromContent(&'a [u8]),
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The offending field (`userId`, `properties`), or `message`.
    pub field: String,
    /// What is wrong, for people.
    pub reason: String,
    /// Stable reason code, also the key of the rejection counters.
    pub code: &'static str,
}

impl Rejection {
    /// A rejection of `field`.
    pub fn new(field: impl Into<String>, code: &'static str, reason: impl Into<String>) -> Self {
        Rejection {
            field: field.into(),
            reason: reason.into(),
            code,
        }
    }

    /// The message is not valid JSON.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Rejection::new("message", "malformed_json", reason)
    }

    /// The message is larger than [`MAX_MESSAGE_BYTES`].
    pub fn too_large(bytes: usize) -> Self {
        Rejection::new(
            "message",
            "message_too_large",
            format!("is {bytes} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (32 KB)"),
        )
    }
}

/// Adds one rejection with `code` to counts kept by reason code, as the
/// ingestion counters store them.
pub fn tally(counts: &mut Vec<(&'static str, u64)>, code: &'static str) {
    match counts.iter_mut().find(|(counted, _)| *counted == code) {
        Some((_, count)) => *count += 1,
        None => counts.push((code, 1)),
    }
}

/// Parses `text` as one message object; see [`from_object`].
pub fn from_text(
    text: &[u8],
    path_type: Option<MessageType>,
    batch_sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
    missing_id: MissingMessageId<'_>,
) -> Result<EventRow, Rejection> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(Rejection::too_large(text.len()));
    }
    let object: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(Rejection::malformed("must be a JSON object")),
        Err(err) => return Err(Rejection::malformed(err.to_string())),
    };
    from_object(object, path_type, batch_sent_at, receipt, missing_id)
}

/// Validates a message object. `path_type` is the type the endpoint implies
/// (`/v1/track`); without one (`/v1/batch`), `type` is required.
pub fn from_object(
    mut message: Map<String, Value>,
    path_type: Option<MessageType>,
    batch_sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
    missing_id: MissingMessageId<'_>,
) -> Result<EventRow, Rejection> {
    let kind = match path_type {
        Some(kind) => kind,
        None => message_type(&message)?,
    };
    let user_id = id_field(&message, "userId")?;
    let anonymous_id = id_field(&message, "anonymousId")?;
    let message_id = id_field(&message, "messageId")?;
    let mut previous_id = None;
    let mut group_id = None;
    match kind {
        MessageType::Alias => {
            previous_id = Some(required_id(&message, "previousId")?);
            if user_id.is_none() {
                return Err(Rejection::new(
                    "userId",
                    "missing_field",
                    "is required for alias",
                ));
            }
        }
        MessageType::Group => group_id = Some(required_id(&message, "groupId")?),
        _ => {}
    }
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            "userId",
            "missing_identity",
            "userId or anonymousId is required",
        ));
    }
    let event = match kind {
        MessageType::Track => Some(required_text(&message, "event")?),
        MessageType::Page | MessageType::Screen => optional_text(&message, "name")?,
        _ => None,
    };
    let time = event_time(&message, batch_sent_at, receipt)?;
    let sent_at = timestamp_field(&message, "sentAt")?.or(batch_sent_at);
    let properties = match kind {
        MessageType::Identify | MessageType::Group => object_field(&mut message, "traits")?,
        MessageType::Track | MessageType::Page | MessageType::Screen => {
            object_field(&mut message, "properties")?
        }
        MessageType::Alias => None,
    };
    let properties = match (kind, optional_text(&message, "category")?) {
        (MessageType::Page | MessageType::Screen, Some(category)) => {
            let mut properties = properties.unwrap_or_default();
            properties
                .entry("category")
                .or_insert(Value::String(category));
            Some(properties)
        }
        _ => properties,
    };
    let mut context = object_field(&mut message, "context")?.unwrap_or_default();
    // Validated for its shape only: routing to destinations is not Northstar's job.
    object_field(&mut message, "integrations")?;
    if let Some(ip) = receipt.client_ip {
        context
            .entry("ip")
            .or_insert_with(|| Value::String(ip.to_string()));
    }
    let message_id = match (message_id, missing_id) {
        (Some(id), _) => id,
        (None, MissingMessageId::Random) => format!("ns-{}", Uuid::new_v4()),
        (None, MissingMessageId::FromContent(text)) => content_id(text),
    };
    Ok(EventRow {
        tenant_id: receipt.tenant_id,
        time,
        message_id,
        kind,
        event,
        user_id,
        anonymous_id,
        group_id,
        previous_id,
        properties: properties.map(|p| json_text(&p)),
        context: (!context.is_empty()).then(|| json_text(&context)),
        received_at: receipt.received_at,
        sent_at,
    })
}

fn message_type(message: &Map<String, Value>) -> Result<MessageType, Rejection> {
    let wrong = || {
        Rejection::new(
            "type",
            "invalid_type",
            "must be one of track, page, screen, identify, group, alias",
        )
    };
    match message.get("type") {
        None | Some(Value::Null) => Err(Rejection::new("type", "missing_field", "is required")),
        Some(Value::String(kind)) => parse_type(kind).ok_or_else(wrong),
        Some(_) => Err(wrong()),
    }
}

/// A message type by its wire name.
pub fn parse_type(name: &str) -> Option<MessageType> {
    Some(match name {
        "track" => MessageType::Track,
        "page" => MessageType::Page,
        "screen" => MessageType::Screen,
        "identify" => MessageType::Identify,
        "group" => MessageType::Group,
        "alias" => MessageType::Alias,
        _ => return None,
    })
}

/// An id: a non-empty string or a number; absent, null and "" are none.
fn id_field(message: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    let id = match message.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(id)) if id.is_empty() => return Ok(None),
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => {
            return Err(Rejection::new(
                field,
                "wrong_type",
                "must be a string or a number",
            ));
        }
    };
    check_text(field, &id)?;
    Ok(Some(id))
}

fn required_id(message: &Map<String, Value>, field: &str) -> Result<String, Rejection> {
    id_field(message, field)?.ok_or_else(|| Rejection::new(field, "missing_field", "is required"))
}

fn optional_text(message: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            check_text(field, text)?;
            Ok(Some(text.clone()))
        }
        Some(_) => Err(Rejection::new(field, "wrong_type", "must be a string")),
    }
}

fn required_text(message: &Map<String, Value>, field: &str) -> Result<String, Rejection> {
    match optional_text(message, field)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(Rejection::new(field, "missing_field", "is required")),
    }
}

fn check_text(field: &str, text: &str) -> Result<(), Rejection> {
    if text.len() > MAX_ID_BYTES {
        return Err(Rejection::new(
            field,
            "too_long",
            format!("is longer than {MAX_ID_BYTES} bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(nul(field));
    }
    Ok(())
}

fn nul(field: &str) -> Rejection {
    Rejection::new(
        field,
        "nul_character",
        "contains a NUL character (\\u0000), which cannot be stored",
    )
}

fn object_field(
    message: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, Rejection> {
    match message.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => {
            if object.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
                return Err(nul(field));
            }
            Ok(Some(object))
        }
        Some(_) => Err(Rejection::new(field, "wrong_type", "must be an object")),
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(object) => object.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn timestamp_field(
    message: &Map<String, Value>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| bad_timestamp(field)),
        Some(_) => Err(bad_timestamp(field)),
    }
}

fn bad_timestamp(field: &str) -> Rejection {
    Rejection::new(
        field,
        "invalid_timestamp",
        "must be an ISO 8601 date-time with a UTC offset, like 2026-05-01T12:00:00.000Z",
    )
}

/// An ISO 8601 / RFC 3339 date-time with an offset.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The event's time: `originalTimestamp` (or `timestamp`) corrected by the
/// client's clock skew when the client said when it sent the message;
/// otherwise as given; otherwise the arrival time. Refused when more than a
/// day ahead of the arrival time or older than the tenant keeps events.
fn event_time(
    message: &Map<String, Value>,
    batch_sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
) -> Result<DateTime<Utc>, Rejection> {
    let original = match timestamp_field(message, "originalTimestamp")? {
        Some(original) => Some(("originalTimestamp", original)),
        None => timestamp_field(message, "timestamp")?.map(|t| ("timestamp", t)),
    };
    let sent_at = timestamp_field(message, "sentAt")?.or(batch_sent_at);
    let (field, time) = match (original, sent_at) {
        (Some((field, original)), Some(sent_at)) => {
            (field, receipt.received_at - (sent_at - original))
        }
        (Some((field, original)), None) => (field, original),
        (None, _) => return Ok(receipt.received_at),
    };
    if time > receipt.received_at + MAX_FUTURE {
        return Err(Rejection::new(
            field,
            "timestamp_out_of_range",
            "is more than 24 hours in the future (after clock-skew correction)",
        ));
    }
    let oldest = receipt.received_at - Duration::days(receipt.retention_days.into());
    if time < oldest {
        return Err(Rejection::new(
            field,
            "timestamp_out_of_range",
            format!(
                "is older than this tenant keeps events ({} days)",
                receipt.retention_days
            ),
        ));
    }
    Ok(time)
}

fn json_text(object: &Map<String, Value>) -> String {
    // Serialising a map of JSON values cannot fail.
    serde_json::to_string(object).unwrap_or_else(|_| "{}".to_owned())
}

/// `ns-` and the first 128 bits of the text's SHA-256, in hex.
fn content_id(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ns-{hex}")
}
