//! One accepted message as a line of `COPY … FROM STDIN` text format.

use std::io::Write;

use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use uuid::Uuid;

/// The Segment message types Northstar stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A user action.
    Track,
    /// A web page view.
    Page,
    /// A mobile screen view.
    Screen,
    /// Who the user is, with traits.
    Identify,
    /// The account (company) a user belongs to.
    Group,
    /// Two identities of one person.
    Alias,
}

impl MessageType {
    /// The name used on the wire and in `events.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Track => "track",
            MessageType::Page => "page",
            MessageType::Screen => "screen",
            MessageType::Identify => "identify",
            MessageType::Group => "group",
            MessageType::Alias => "alias",
        }
    }
}

/// A validated message, ready to store. Strings must not contain NUL
/// (PostgreSQL text cannot hold it); JSON fields are serialized JSON.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// When it happened (skew-corrected).
    pub time: DateTime<Utc>,
    /// The sender's id for the message: the dedupe key.
    pub message_id: String,
    /// Its type.
    pub kind: MessageType,
    /// Event name (track) or page/screen name.
    pub event: Option<String>,
    /// The identified user.
    pub user_id: Option<String>,
    /// The device or browser identity.
    pub anonymous_id: Option<String>,
    /// The account, for group calls.
    pub group_id: Option<String>,
    /// The merged identity, for alias calls.
    pub previous_id: Option<String>,
    /// Properties or traits, as a JSON object.
    pub properties: Option<String>,
    /// The message's context, as a JSON object.
    pub context: Option<String>,
    /// When Northstar received it.
    pub received_at: DateTime<Utc>,
    /// When the client sent it, by the client's clock.
    pub sent_at: Option<DateTime<Utc>>,
}

/// The staging columns, in the order [`EventRow::encode`] writes them.
pub(crate) const COLUMNS: &str = "tenant_id, time, message_id, message_hash, type, event, user_id, \
                                  anonymous_id, group_id, previous_id, properties, context, \
                                  received_at, sent_at";

impl EventRow {
    /// Appends the row as one line of `COPY` text format.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_with_hash(message_hash(&self.message_id), out);
    }

    /// [`EventRow::encode`] with the message hash already computed.
    pub(crate) fn encode_with_hash(&self, hash: Uuid, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{}\t", self.tenant_id);
        timestamp(out, &self.time);
        out.push(b'\t');
        text(out, Some(&self.message_id));
        let _ = write!(out, "\t{hash}\t");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        for field in [
            &self.event,
            &self.user_id,
            &self.anonymous_id,
            &self.group_id,
            &self.previous_id,
            &self.properties,
            &self.context,
        ] {
            out.push(b'\t');
            text(out, field.as_deref());
        }
        out.push(b'\t');
        timestamp(out, &self.received_at);
        out.push(b'\t');
        match &self.sent_at {
            Some(sent_at) => timestamp(out, sent_at),
            None => out.extend_from_slice(b"\\N"),
        }
        out.push(b'\n');
    }
}

/// The dedupe key of a message id: its MD5 as a UUID, the same value as
/// PostgreSQL's `md5(message_id)::uuid`.
pub(crate) fn message_hash(message_id: &str) -> Uuid {
    Uuid::from_bytes(Md5::digest(message_id.as_bytes()).into())
}

fn timestamp(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    let _ = write!(out, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
}

/// Text with `COPY`'s escapes: backslash, tab, newline and carriage return.
/// Copies the runs between them whole.
fn text(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    let mut rest = value.as_bytes();
    while let Some(at) = rest
        .iter()
        .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\r",
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_hash_is_postgresqls_md5_uuid() {
        // SELECT md5('retry-me')::uuid
        assert_eq!(
            message_hash("retry-me").to_string(),
            "56e1995f-1adc-b726-02ac-41a3dcb5f326"
        );
    }

    #[test]
    fn encodes_nulls_escapes_and_times() {
        let at = DateTime::parse_from_rfc3339("2026-11-20T10:00:00.5Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let row = EventRow {
            tenant_id: Uuid::nil(),
            time: at,
            message_id: "m\t1".into(),
            kind: MessageType::Track,
            event: Some("a\\b\nc\r".into()),
            user_id: None,
            anonymous_id: Some("anon".into()),
            group_id: None,
            previous_id: None,
            properties: Some("{}".into()),
            context: None,
            received_at: at,
            sent_at: None,
        };
        let mut out = Vec::new();
        row.encode(&mut out);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "00000000-0000-0000-0000-000000000000\t2026-11-20 10:00:00.500000+00\tm\\t1\t\
             15f2393b-f84e-790e-6ef0-b83d10a3e453\ttrack\t\
             a\\\\b\\nc\\r\t\\N\tanon\t\\N\t\\N\t{}\t\\N\t2026-11-20 10:00:00.500000+00\t\\N\n"
        );
    }
}
