//! PostHog's capture format, translated into Segment messages so that one
//! validator and one write path serve both.
//!
//! `distinct_id` becomes `userId`, `uuid` the `messageId` (the dedupe key)
//! and `timestamp`/`offset` the time. Special events: `$identify` (traits
//! from `$set` and `$set_once`; `$anon_distinct_id` is linked to the user),
//! `$create_alias` (alias of `properties.alias`), `$groupidentify` (group
//! `$group_key` with `$group_set` traits and `group_type`), `$pageview`
//! (page, named by `$pathname`) and `$screen` (screen, `$screen_name`);
//! every other event is a track call with the event's properties.

use chrono::{DateTime, Duration, Utc};
use northstar_db::ingest::MessageType;
use serde_json::{Map, Value};

use super::message::Rejection;

/// A Segment message and its type, from one PostHog event.
pub fn to_segment(
    mut event: Map<String, Value>,
    received_at: DateTime<Utc>,
) -> Result<(MessageType, Map<String, Value>), Rejection> {
    let name = match event.remove("event") {
        Some(Value::String(name)) if !name.is_empty() => name,
        Some(Value::Null) | None => {
            return Err(Rejection::new("event", "missing_field", "is required"));
        }
        Some(_) => return Err(Rejection::new("event", "wrong_type", "must be a string")),
    };
    let mut properties = match event.remove("properties") {
        Some(Value::Object(properties)) => properties,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(Rejection::new(
                "properties",
                "wrong_type",
                "must be an object",
            ));
        }
    };
    let distinct_id = event
        .remove("distinct_id")
        .or_else(|| properties.remove("distinct_id"))
        .or_else(|| properties.remove("$distinct_id"))
        .unwrap_or(Value::Null);
    let mut message = Map::new();
    message.insert("userId".into(), distinct_id);
    if let Some(uuid) = event.remove("uuid") {
        message.insert("messageId".into(), uuid);
    }
    match event.remove("timestamp") {
        Some(timestamp @ Value::String(_)) => {
            message.insert("timestamp".into(), timestamp);
        }
        _ => {
            if let Some(offset) = event.get("offset").and_then(Value::as_i64) {
                let at = received_at - Duration::milliseconds(offset);
                message.insert("timestamp".into(), Value::String(at.to_rfc3339()));
            }
        }
    }
    if let Some(Value::String(library)) = properties.get("$lib") {
        let mut lib = Map::new();
        lib.insert("name".into(), Value::String(library.clone()));
        if let Some(version) = properties.get("$lib_version") {
            lib.insert("version".into(), version.clone());
        }
        let mut context = Map::new();
        context.insert("library".into(), Value::Object(lib));
        message.insert("context".into(), Value::Object(context));
    }
    let kind = match name.as_str() {
        "$identify" => {
            let mut traits = Map::new();
            for source in [
                properties.remove("$set_once"),
                event.remove("$set_once"),
                properties.remove("$set"),
                event.remove("$set"),
            ]
            .into_iter()
            .flatten()
            {
                if let Value::Object(values) = source {
                    traits.extend(values);
                }
            }
            if let Some(anonymous) = properties.remove("$anon_distinct_id") {
                message.insert("anonymousId".into(), anonymous);
            }
            message.insert("traits".into(), Value::Object(traits));
            MessageType::Identify
        }
        "$create_alias" => {
            let alias = properties.remove("alias").unwrap_or(Value::Null);
            message.insert("previousId".into(), alias);
            MessageType::Alias
        }
        "$groupidentify" => {
            let mut traits = match properties.remove("$group_set") {
                Some(Value::Object(traits)) => traits,
                _ => Map::new(),
            };
            if let Some(group_type) = properties.remove("$group_type") {
                traits.insert("group_type".into(), group_type);
            }
            let key = properties.remove("$group_key").unwrap_or(Value::Null);
            message.insert("groupId".into(), key);
            message.insert("traits".into(), Value::Object(traits));
            MessageType::Group
        }
        "$pageview" => {
            if let Some(path) = properties.get("$pathname").cloned() {
                message.insert("name".into(), path);
            }
            message.insert("properties".into(), Value::Object(properties));
            MessageType::Page
        }
        "$screen" => {
            if let Some(screen) = properties.get("$screen_name").cloned() {
                message.insert("name".into(), screen);
            }
            message.insert("properties".into(), Value::Object(properties));
            MessageType::Screen
        }
        _ => {
            message.insert("event".into(), Value::String(name));
            message.insert("properties".into(), Value::Object(properties));
            MessageType::Track
        }
    };
    Ok((kind, message))
}

/// The project API key of a PostHog request: `api_key` or `token` at the
/// top, or `properties.token` of the first event.
pub fn api_key(body: &Map<String, Value>, first_event: Option<&Value>) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    text(body.get("api_key"))
        .or_else(|| text(body.get("token")))
        .or_else(|| text(first_event.and_then(|e| e.get("properties")?.get("token"))))
}
