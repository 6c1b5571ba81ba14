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
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};
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

/// Parses `text` as one message object and validates it. `path_type` is
/// the type the endpoint implies (`/v1/track`); without one (`/v1/batch`),
/// `type` is required. Only the fields Northstar reads are decoded;
/// `properties`, `traits` and `context` are kept as the sender's JSON text.
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
    from_json(text, path_type, batch_sent_at, receipt, missing_id)
}

/// Validates a message built as an object (single-message endpoints,
/// PostHog, CSV); see [`from_text`].
pub fn from_object(
    message: Map<String, Value>,
    path_type: Option<MessageType>,
    batch_sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
    missing_id: MissingMessageId<'_>,
) -> Result<EventRow, Rejection> {
    let text = serde_json::to_vec(&message).map_err(|err| Rejection::malformed(err.to_string()))?;
    from_json(&text, path_type, batch_sent_at, receipt, missing_id)
}

fn from_json(
    text: &[u8],
    path_type: Option<MessageType>,
    batch_sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
    missing_id: MissingMessageId<'_>,
) -> Result<EventRow, Rejection> {
    if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(text) {
            Ok(_) => Rejection::malformed("must be a JSON object"),
            Err(err) => Rejection::malformed(err.to_string()),
        });
    }
    let message: Fields<'_> =
        serde_json::from_slice(text).map_err(|err| Rejection::malformed(err.to_string()))?;
    let kind = match path_type {
        Some(kind) => kind,
        None => message_type(message.r#type)?,
    };
    let user_id = id_field(message.user_id, "userId")?;
    let anonymous_id = id_field(message.anonymous_id, "anonymousId")?;
    let message_id = id_field(message.message_id, "messageId")?;
    let mut previous_id = None;
    let mut group_id = None;
    match kind {
        MessageType::Alias => {
            previous_id = Some(required_id(message.previous_id, "previousId")?);
            if user_id.is_none() {
                return Err(Rejection::new(
                    "userId",
                    "missing_field",
                    "is required for alias",
                ));
            }
        }
        MessageType::Group => group_id = Some(required_id(message.group_id, "groupId")?),
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
        MessageType::Track => Some(required_text(message.event, "event")?),
        MessageType::Page | MessageType::Screen => optional_text(message.name, "name")?,
        _ => None,
    };
    let original = original_time(&message)?;
    let sent_at = timestamp_field(message.sent_at, "sentAt")?.or(batch_sent_at);
    let time = event_time(original, sent_at, receipt)?;
    let properties = match kind {
        MessageType::Identify | MessageType::Group => object_field(message.traits, "traits")?,
        MessageType::Track | MessageType::Page | MessageType::Screen => {
            object_field(message.properties, "properties")?
        }
        MessageType::Alias => None,
    };
    let properties = match (kind, optional_text(message.category, "category")?) {
        (MessageType::Page | MessageType::Screen, Some(category)) => {
            let category = Value::String(category).to_string();
            Some(with_key(properties.unwrap_or("{}"), "category", &category))
        }
        _ => properties.map(str::to_owned),
    };
    let context = object_field(message.context, "context")?;
    // Validated for its shape only: routing to destinations is not Northstar's job.
    object_field(message.integrations, "integrations")?;
    let context = match (context, receipt.client_ip) {
        (context, Some(ip)) => {
            let ip = Value::String(ip.to_string()).to_string();
            Some(with_key(context.unwrap_or("{}"), "ip", &ip))
        }
        (Some(context), None) if !is_empty_object(context) => Some(context.to_owned()),
        (_, None) => None,
    };
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
        properties,
        context,
        received_at: receipt.received_at,
        sent_at,
    })
}

/// The fields of a message that Northstar reads, as the sender's JSON text
/// (`null` included); other fields are checked to be JSON and skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    r#type: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    anonymous_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    previous_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    group_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    event: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    name: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    category: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    original_timestamp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    context: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    integrations: Option<&'a RawValue>,
}

/// A field that is there, even as `null` (`Option` alone reads `null` as
/// absent).
fn present<'de, D: Deserializer<'de>>(field: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(field).map(Some)
}

/// A field's value; absent and `null` are none.
fn value_of(field: Option<&RawValue>) -> Option<Value> {
    let raw = field?.get();
    if raw == "null" {
        return None;
    }
    // The text was parsed as JSON already.
    serde_json::from_str(raw).ok()
}

fn message_type(field: Option<&RawValue>) -> Result<MessageType, Rejection> {
    let wrong = || {
        Rejection::new(
            "type",
            "invalid_type",
            "must be one of track, page, screen, identify, group, alias",
        )
    };
    match value_of(field) {
        None => Err(Rejection::new("type", "missing_field", "is required")),
        Some(Value::String(kind)) => parse_type(&kind).ok_or_else(wrong),
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
fn id_field(value: Option<&RawValue>, field: &str) -> Result<Option<String>, Rejection> {
    let id = match value_of(value) {
        None => return Ok(None),
        Some(Value::String(id)) if id.is_empty() => return Ok(None),
        Some(Value::String(id)) => id,
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

fn required_id(value: Option<&RawValue>, field: &str) -> Result<String, Rejection> {
    id_field(value, field)?.ok_or_else(|| Rejection::new(field, "missing_field", "is required"))
}

fn optional_text(value: Option<&RawValue>, field: &str) -> Result<Option<String>, Rejection> {
    match value_of(value) {
        None => Ok(None),
        Some(Value::String(text)) => {
            check_text(field, &text)?;
            Ok(Some(text))
        }
        Some(_) => Err(Rejection::new(field, "wrong_type", "must be a string")),
    }
}

fn required_text(value: Option<&RawValue>, field: &str) -> Result<String, Rejection> {
    match optional_text(value, field)? {
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

/// An object field as its JSON text; absent and `null` are none.
fn object_field<'a>(
    value: Option<&'a RawValue>,
    field: &str,
) -> Result<Option<&'a str>, Rejection> {
    let Some(text) = value.map(RawValue::get).filter(|text| *text != "null") else {
        return Ok(None);
    };
    if !text.starts_with('{') {
        return Err(Rejection::new(field, "wrong_type", "must be an object"));
    }
    if has_nul_escape(text) {
        return Err(nul(field));
    }
    Ok(Some(text))
}

/// Whether JSON text holds the escape `\u0000` in a string or key (valid
/// JSON has no raw control characters in strings, and a backslash outside
/// a string).
fn has_nul_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|b| *b == b'\\'))
    {
        let escape = at + found;
        if bytes[escape + 1..].starts_with(b"u0000") {
            return true;
        }
        at = escape + 2;
    }
    false
}

/// A JSON object's text with `key` set to `value` (JSON text) when the
/// object does not have it yet.
fn with_key(object: &str, key: &str, value: &str) -> String {
    if has_key(object, key) {
        return object.to_owned();
    }
    if is_empty_object(object) {
        format!("{{\"{key}\":{value}}}")
    } else {
        format!("{{\"{key}\":{value},{}", object[1..].trim_start())
    }
}

/// Whether a JSON object's text has the top-level `key`.
fn has_key(object: &str, key: &str) -> bool {
    let mut deserializer = serde_json::Deserializer::from_str(object);
    // The text was parsed as a JSON object already.
    deserializer.deserialize_map(KeySearch(key)).unwrap_or(true)
}

fn is_empty_object(object: &str) -> bool {
    object[1..].trim_start().starts_with('}')
}

/// Looks for one key among an object's top-level keys, allocating nothing
/// for the others.
struct KeySearch<'k>(&'k str);

impl<'de> Visitor<'de> for KeySearch<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(matches) = map.next_key_seed(KeyIs(self.0))? {
            found |= matches;
            map.next_value::<IgnoredAny>()?;
        }
        Ok(found)
    }
}

/// Compares a key with the one searched for.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, key: D) -> Result<bool, D::Error> {
        key.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

fn timestamp_field(
    value: Option<&RawValue>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Rejection> {
    match value_of(value) {
        None => Ok(None),
        Some(Value::String(text)) => parse_timestamp(&text)
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

/// The time the client gave the message, and the field it came from:
/// `originalTimestamp`, else `timestamp`.
fn original_time(message: &Fields<'_>) -> Result<Option<(&'static str, DateTime<Utc>)>, Rejection> {
    Ok(
        match timestamp_field(message.original_timestamp, "originalTimestamp")? {
            Some(original) => Some(("originalTimestamp", original)),
            None => timestamp_field(message.timestamp, "timestamp")?.map(|t| ("timestamp", t)),
        },
    )
}

/// The event's time: the client's `original` time corrected by its clock
/// skew when the client said when it sent the message (`sent_at`);
/// otherwise as given; otherwise the arrival time. Refused when more than a
/// day ahead of the arrival time or older than the tenant keeps events.
fn event_time(
    original: Option<(&'static str, DateTime<Utc>)>,
    sent_at: Option<DateTime<Utc>>,
    receipt: &Receipt,
) -> Result<DateTime<Utc>, Rejection> {
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

/// `ns-` and the first 128 bits of the text's SHA-256, in hex.
fn content_id(text: &[u8]) -> String {
    let digest = Sha256::digest(text);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ns-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(client_ip: Option<&str>) -> Receipt {
        Receipt {
            tenant_id: Uuid::nil(),
            received_at: Utc::now(),
            retention_days: 30,
            client_ip: client_ip.map(|ip| ip.parse().expect("ip")),
        }
    }

    fn parse(text: &str, client_ip: Option<&str>) -> Result<EventRow, Rejection> {
        from_text(
            text.as_bytes(),
            None,
            None,
            &receipt(client_ip),
            MissingMessageId::Random,
        )
    }

    #[test]
    fn keeps_the_senders_json_and_adds_the_client_address() {
        let row = parse(
            r#"{"type": "page", "anonymousId": "a", "name": "Home", "category": "Docs",
                "properties": { "path": "/", "tags": ["x\\u0000y"] },
                "context": {"library": {"name": "analytics.js"}}, "extra": [1, {"a": null}]}"#,
            Some("203.0.113.9"),
        )
        .expect("valid");
        let properties: Value = serde_json::from_str(row.properties.as_deref().expect("props"))
            .expect("properties are JSON");
        assert_eq!(
            properties,
            serde_json::json!({"category": "Docs", "path": "/", "tags": ["x\\u0000y"]})
        );
        let context: Value =
            serde_json::from_str(row.context.as_deref().expect("context")).expect("JSON");
        assert_eq!(
            context,
            serde_json::json!({"ip": "203.0.113.9", "library": {"name": "analytics.js"}})
        );
    }

    #[test]
    fn a_field_set_to_null_counts_as_there_for_the_added_keys() {
        let row = parse(
            r#"{"type": "track", "userId": 7, "event": "E", "context": {"ip": null}}"#,
            Some("203.0.113.9"),
        )
        .expect("valid");
        assert_eq!(row.user_id.as_deref(), Some("7"));
        assert_eq!(row.context.as_deref(), Some(r#"{"ip": null}"#));
        let row = parse(
            r#"{"type": "track", "userId": "u", "event": "E", "context": { }}"#,
            None,
        )
        .expect("valid");
        assert_eq!(row.context, None);
        let row = parse(
            r#"{"type": "track", "userId": "u", "event": "E", "context": { }}"#,
            Some("::1"),
        )
        .expect("valid");
        assert_eq!(row.context.as_deref(), Some(r#"{"ip":"::1"}"#));
    }

    #[test]
    fn refuses_nul_characters_and_wrong_shapes_by_field() {
        let rejection = |text: &str| parse(text, None).expect_err("refused");
        let nul = rejection(
            r#"{"type": "track", "userId": "u", "event": "E", "properties": {"a\u0000": 1}}"#,
        );
        assert_eq!(
            (nul.field.as_str(), nul.code),
            ("properties", "nul_character")
        );
        let shape = rejection(r#"{"type": "identify", "userId": "u", "traits": [1]}"#);
        assert_eq!((shape.field.as_str(), shape.code), ("traits", "wrong_type"));
        let id = rejection(r#"{"type": "track", "userId": true, "event": "E"}"#);
        assert_eq!((id.field.as_str(), id.code), ("userId", "wrong_type"));
        let kind = rejection(r#"{"type": null, "userId": "u"}"#);
        assert_eq!((kind.field.as_str(), kind.code), ("type", "missing_field"));
        let array = rejection(r#"["track"]"#);
        assert_eq!(array.reason, "must be a JSON object");
        let broken = rejection(r#"{"type": "track""#);
        assert_eq!(broken.code, "malformed_json");
    }

    #[test]
    fn finds_escaped_nuls_only() {
        assert!(has_nul_escape(r#"{"a": "\u0000"}"#));
        assert!(!has_nul_escape(r#"{"a": "\\u0000"}"#));
        assert!(has_nul_escape(r#"{"a": "\\\u0000"}"#));
        assert!(has_nul_escape(r#"{"a": "\u00001"}"#));
        assert!(!has_nul_escape(r#"{"a\"": "\u0001"}"#));
    }
}
