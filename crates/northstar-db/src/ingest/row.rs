//! One accepted message as a row of `COPY … FROM STDIN` binary format.

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

/// The staging columns, in the order [`EventRow::encode_with_hash`]
/// writes them.
pub(crate) const COLUMNS: &str = "tenant_id, time, message_id, message_hash, type, event, user_id, \
                                  anonymous_id, group_id, previous_id, properties, context, \
                                  received_at, sent_at";

/// The columns of `events` that [`EventRow::encode`] writes, in its order.
pub const EVENTS_COLUMNS: &str = "tenant_id, time, message_id, type, event, user_id, \
                                  anonymous_id, group_id, previous_id, properties, context, \
                                  received_at, sent_at";

/// Rows in `COPY`'s binary format: no text to escape on our side, no
/// dates or UUIDs to parse on the server's. Start with [`CopyRows::new`]
/// (the header), append rows ([`EventRow::encode`], or
/// [`CopyRows::start_row`] and its fields), send [`CopyRows::finished`].
#[derive(Debug, Clone)]
pub struct CopyRows {
    data: Vec<u8>,
}

impl Default for CopyRows {
    fn default() -> Self {
        Self::new()
    }
}

impl CopyRows {
    /// The format's signature, flags and header extension length.
    const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
    /// A field count of -1.
    const TRAILER: &[u8] = &[0xff, 0xff];

    /// No rows yet.
    pub fn new() -> Self {
        CopyRows {
            data: Self::HEADER.to_vec(),
        }
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.data.len() == Self::HEADER.len()
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The rows and the trailer, as the pieces of one `COPY` to send.
    pub fn finished(&self) -> impl Iterator<Item = &[u8]> {
        [self.data.as_slice(), Self::TRAILER].into_iter()
    }

    /// Starts a row of `count` fields; exactly that many must follow.
    pub fn start_row(&mut self, count: i16) {
        self.data.extend_from_slice(&count.to_be_bytes());
    }

    fn bytes(&mut self, value: &[u8]) {
        // Rows are far below 2 GiB: messages are at most 32 KB.
        let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        self.data.extend_from_slice(&len.to_be_bytes());
        self.data.extend_from_slice(value);
    }

    fn text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.bytes(value.as_bytes()),
            None => self.null(),
        }
    }

    fn null(&mut self) {
        self.data.extend_from_slice(&(-1_i32).to_be_bytes());
    }

    /// Appends a `uuid` field.
    pub fn uuid(&mut self, value: Uuid) {
        self.bytes(value.as_bytes());
    }

    /// Microseconds since 2000-01-01 00:00 UTC, PostgreSQL's epoch.
    fn timestamp(&mut self, at: DateTime<Utc>) {
        const POSTGRES_EPOCH: i64 = 946_684_800_000_000;
        self.bytes(&(at.timestamp_micros() - POSTGRES_EPOCH).to_be_bytes());
    }
}

impl EventRow {
    /// Appends the row as `events` stores it: the columns of
    /// [`EVENTS_COLUMNS`].
    pub fn encode(&self, out: &mut CopyRows) {
        self.encode_columns(None, out);
    }

    /// Appends the row as the writer stages it (the columns of [`COLUMNS`]),
    /// with its message hash already computed.
    pub(crate) fn encode_with_hash(&self, hash: Uuid, out: &mut CopyRows) {
        self.encode_columns(Some(hash), out);
    }

    fn encode_columns(&self, hash: Option<Uuid>, out: &mut CopyRows) {
        out.start_row(if hash.is_some() { 14 } else { 13 });
        out.uuid(self.tenant_id);
        out.timestamp(self.time);
        out.text(Some(&self.message_id));
        if let Some(hash) = hash {
            out.uuid(hash);
        }
        out.text(Some(self.kind.as_str()));
        for field in [
            &self.event,
            &self.user_id,
            &self.anonymous_id,
            &self.group_id,
            &self.previous_id,
            &self.properties,
            &self.context,
        ] {
            out.text(field.as_deref());
        }
        out.timestamp(self.received_at);
        match self.sent_at {
            Some(sent_at) => out.timestamp(sent_at),
            None => out.null(),
        }
    }
}

/// The dedupe key of a message id: its MD5 as a UUID, the same value as
/// PostgreSQL's `md5(message_id)::uuid`.
pub(crate) fn message_hash(message_id: &str) -> Uuid {
    Uuid::from_bytes(Md5::digest(message_id.as_bytes()).into())
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
    fn encodes_binary_rows_with_nulls_and_times() {
        let at = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.5Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time");
        let row = EventRow {
            tenant_id: Uuid::nil(),
            time: at,
            message_id: "m\t1".into(),
            kind: MessageType::Track,
            event: None,
            user_id: None,
            anonymous_id: None,
            group_id: None,
            previous_id: None,
            properties: None,
            context: None,
            received_at: at,
            sent_at: None,
        };
        let mut rows = CopyRows::new();
        assert!(rows.is_empty());
        row.encode(&mut rows);
        let data = rows.finished().collect::<Vec<_>>().concat();
        let (header, rest) = data.split_at(19);
        assert_eq!(header, b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0");
        let mut expected = vec![0, 13];
        expected.extend([0, 0, 0, 16]);
        expected.extend([0; 16]);
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x16, 0xe3, 0x60]);
        expected.extend([0, 0, 0, 3, b'm', b'\t', b'1']);
        expected.extend([0, 0, 0, 5]);
        expected.extend(b"track");
        for _ in 0..7 {
            expected.extend([0xff; 4]);
        }
        expected.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x16, 0xe3, 0x60]);
        expected.extend([0xff; 4]);
        expected.extend([0xff, 0xff]);
        assert_eq!(rest, expected.as_slice());
    }
}
