//! CSV import: a spreadsheet export becomes Segment messages.
//!
//! Teams backfill from tools that export CSV, not Segment JSON, so a
//! [`CsvMapping`] says which column holds what: the header row names the
//! columns, the mapping names the ones holding ids, the event and its time,
//! and every other column becomes a property (or a trait, for identify and
//! group). Each record then goes through [`message::from_object`] like any
//! other message, so the same rules, retention and clock checks apply, and
//! is stored through the same [`Importer`] as NDJSON imports.
//!
//! The body is parsed incrementally with `csv_core` as it arrives: memory is
//! bounded by the largest accepted record (32 KB), whatever the file's size
//! and even when a quote is never closed. A record without a message id gets
//! one derived from its text, so importing the same file twice stores each
//! record once.

use bytes::Bytes;
use csv_core::{ReadRecordResult, Reader};
use futures_util::{Stream, StreamExt};
use northstar_db::ingest::{EventRow, MessageType};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use utoipa::{IntoParams, ToSchema};

use super::{
    import::{ImportError, ImportReport, Importer},
    message::{self, MAX_MESSAGE_BYTES, MissingMessageId, Receipt, Rejection},
};

/// The message type of every record of a CSV import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CsvType {
    /// An action a user took (`event` names it).
    #[default]
    Track,
    /// A web page view (`event` is the page's name).
    Page,
    /// A mobile screen view (`event` is the screen's name).
    Screen,
    /// Who a user is: the other columns are traits.
    Identify,
    /// A user joining a group: the other columns are the group's traits.
    Group,
}

impl CsvType {
    fn message_type(self) -> MessageType {
        match self {
            CsvType::Track => MessageType::Track,
            CsvType::Page => MessageType::Page,
            CsvType::Screen => MessageType::Screen,
            CsvType::Identify => MessageType::Identify,
            CsvType::Group => MessageType::Group,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CsvType::Track => "track",
            CsvType::Page => "page",
            CsvType::Screen => "screen",
            CsvType::Identify => "identify",
            CsvType::Group => "group",
        }
    }

    /// The message field that `event` fills: `event`, `name`, or none.
    fn event_field(self) -> Option<&'static str> {
        match self {
            CsvType::Track => Some("event"),
            CsvType::Page | CsvType::Screen => Some("name"),
            CsvType::Identify | CsvType::Group => None,
        }
    }
}

/// Which CSV column holds what. The same mapping is the query string of
/// `POST …/events/import/csv` and the flags of `northstar import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, IntoParams, clap::Args)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
#[command(next_help_heading = "CSV mapping")]
pub struct CsvMapping {
    /// Message type of every row: track (default), page, screen, identify
    /// or group.
    #[serde(rename = "type", default)]
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t)]
    #[param(inline)]
    pub kind: CsvType,
    /// Column holding the event name (track) or the page or screen name
    /// (page, screen).
    #[arg(long)]
    pub event_column: Option<String>,
    /// One event name (track) or page or screen name (page, screen) for
    /// every row, instead of `event_column`.
    #[arg(long)]
    pub event: Option<String>,
    /// Column holding the user id. A row needs a user id or an anonymous id.
    #[arg(long)]
    pub user_id_column: Option<String>,
    /// Column holding the anonymous id.
    #[arg(long)]
    pub anonymous_id_column: Option<String>,
    /// Column holding when the event happened: ISO 8601 with an offset,
    /// like 2026-05-01T12:00:00Z. Without it, the time of the import.
    #[arg(long)]
    pub timestamp_column: Option<String>,
    /// Column holding the message id. Without it, an id derived from the
    /// row's text, so that importing a file again stores nothing twice.
    #[arg(long)]
    pub message_id_column: Option<String>,
    /// Column holding the group id (group only, required there).
    #[arg(long)]
    pub group_id_column: Option<String>,
    /// Comma-separated columns that become properties (traits for identify
    /// and group). Default: every column not mapped above. Numbers and
    /// `true`/`false` are stored as such, empty cells are left out.
    #[arg(long)]
    pub properties_columns: Option<String>,
}

/// A mapping that cannot work, named by its parameter (`event_column`), or
/// a header row that cannot be used (`header`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// The query parameter (`event_column`) or `header`.
    pub parameter: &'static str,
    /// Why, for people.
    pub reason: String,
}

impl MappingError {
    fn new(parameter: &'static str, reason: impl Into<String>) -> Self {
        MappingError {
            parameter,
            reason: reason.into(),
        }
    }
}

/// Why a CSV import did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CsvImportError {
    /// The mapping does not fit the header row: nothing was read past it.
    #[error("the column mapping does not fit the file")]
    Mapping(Vec<MappingError>),
    /// Reading or storing failed part-way.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// A mapped column's parameter, its column name, and whether it is set.
type NamedColumn<'a> = (&'static str, Option<&'a String>);

impl CsvMapping {
    /// Checks what can be checked without the header row.
    pub fn check(&self) -> Result<(), Vec<MappingError>> {
        let mut errors = Vec::new();
        let kind = self.kind.name();
        match (self.kind.event_field(), &self.event, &self.event_column) {
            (Some(_), Some(_), Some(_)) => errors.push(MappingError::new(
                "event",
                "give `event` or `event_column`, not both",
            )),
            (Some(_), Some(event), None) if event.is_empty() => {
                errors.push(MappingError::new("event", "must not be empty"));
            }
            (Some("event"), None, None) => errors.push(MappingError::new(
                "event_column",
                "a track import needs `event_column` (the column of event names) or `event` \
                 (one name for every row)",
            )),
            (None, event, column) => {
                if event.is_some() {
                    errors.push(MappingError::new(
                        "event",
                        format!("does not apply to {kind} imports"),
                    ));
                }
                if column.is_some() {
                    errors.push(MappingError::new(
                        "event_column",
                        format!("does not apply to {kind} imports"),
                    ));
                }
            }
            _ => {}
        }
        match (self.kind, &self.group_id_column) {
            (CsvType::Group, None) => errors.push(MappingError::new(
                "group_id_column",
                "is required for group imports",
            )),
            (CsvType::Group, Some(_)) | (_, None) => {}
            (_, Some(_)) => errors.push(MappingError::new(
                "group_id_column",
                format!("applies to group imports only, not {kind}"),
            )),
        }
        if self.user_id_column.is_none() && self.anonymous_id_column.is_none() {
            errors.push(MappingError::new(
                "user_id_column",
                "name the column of user ids, or `anonymous_id_column`, or both: every row \
                 needs one of them",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn mapped_columns(&self) -> [NamedColumn<'_>; 6] {
        [
            ("event_column", self.event_column.as_ref()),
            ("user_id_column", self.user_id_column.as_ref()),
            ("anonymous_id_column", self.anonymous_id_column.as_ref()),
            ("timestamp_column", self.timestamp_column.as_ref()),
            ("message_id_column", self.message_id_column.as_ref()),
            ("group_id_column", self.group_id_column.as_ref()),
        ]
    }

    /// The mapping applied to the header row's column names.
    fn resolve(&self, names: Vec<String>) -> Result<Columns, Vec<MappingError>> {
        self.check()?;
        let mut errors = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if !name.is_empty() && names[..i].contains(name) {
                errors.push(MappingError::new(
                    "header",
                    format!("the column {name:?} appears more than once"),
                ));
            }
        }
        let known = names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut find = |parameter: &'static str, name: &str| {
            let index = names.iter().position(|n| !n.is_empty() && n == name);
            if index.is_none() {
                errors.push(MappingError::new(
                    parameter,
                    format!("the header row has no column {name:?} (it has {known})"),
                ));
            }
            index
        };
        let mut column =
            |(parameter, name): NamedColumn<'_>| name.and_then(|name| find(parameter, name));
        let [
            event,
            user_id,
            anonymous_id,
            timestamp,
            message_id,
            group_id,
        ] = self.mapped_columns().map(&mut column);
        let properties = match &self.properties_columns {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .filter_map(|name| find("properties_columns", name))
                .collect(),
            None => {
                let mapped = [
                    event,
                    user_id,
                    anonymous_id,
                    timestamp,
                    message_id,
                    group_id,
                ];
                (0..names.len())
                    .filter(|i| !names[*i].is_empty() && !mapped.contains(&Some(*i)))
                    .collect()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let event = match (&self.event, event) {
            (Some(name), _) => Some(EventSource::Constant(name.clone())),
            (None, Some(index)) => Some(EventSource::Column(index)),
            (None, None) => None,
        };
        Ok(Columns {
            kind: self.kind,
            event,
            user_id,
            anonymous_id,
            timestamp,
            message_id,
            group_id,
            properties,
            names,
        })
    }
}

/// Where a record's event (or page name) comes from.
#[derive(Debug)]
enum EventSource {
    Constant(String),
    Column(usize),
}

/// A mapping resolved against a header row: column indexes.
#[derive(Debug)]
struct Columns {
    kind: CsvType,
    event: Option<EventSource>,
    user_id: Option<usize>,
    anonymous_id: Option<usize>,
    timestamp: Option<usize>,
    message_id: Option<usize>,
    group_id: Option<usize>,
    properties: Vec<usize>,
    names: Vec<String>,
}

impl Columns {
    /// One record, validated into a row.
    fn row(&self, record: &Record<'_>, receipt: &Receipt) -> Result<EventRow, Rejection> {
        let fields = match &record.content {
            Content::Fields(fields) => fields,
            Content::TooLarge(bytes) => return Err(Rejection::too_large(*bytes)),
        };
        if fields.len() != self.names.len() {
            return Err(Rejection::new(
                "record",
                "wrong_field_count",
                format!(
                    "has {} fields; the header row has {}",
                    fields.len(),
                    self.names.len()
                ),
            ));
        }
        let message = self.message(fields)?;
        message::from_object(
            message,
            Some(self.kind.message_type()),
            None,
            receipt,
            MissingMessageId::FromContent(record.text),
        )
        .map_err(|mut rejection| {
            if let Some(column) = self.column_of(&rejection.field) {
                rejection.field = self.names[column].clone();
            }
            rejection
        })
    }

    /// The Segment message a record stands for.
    fn message(&self, fields: &Fields<'_>) -> Result<Map<String, Value>, Rejection> {
        let mut message = Map::new();
        let mut text = |key: &str, column: Option<usize>| -> Result<(), Rejection> {
            if let Some(value) = column.map(|c| self.cell(fields, c)).transpose()?.flatten() {
                message.insert(key.to_owned(), Value::String(value.to_owned()));
            }
            Ok(())
        };
        text("userId", self.user_id)?;
        text("anonymousId", self.anonymous_id)?;
        text("timestamp", self.timestamp)?;
        text("messageId", self.message_id)?;
        text("groupId", self.group_id)?;
        if let (Some(key), Some(source)) = (self.kind.event_field(), &self.event) {
            match source {
                EventSource::Constant(name) => {
                    message.insert(key.to_owned(), Value::String(name.clone()));
                }
                EventSource::Column(column) => text(key, Some(*column))?,
            }
        }
        let mut properties = Map::new();
        for &column in &self.properties {
            if let Some(value) = self.cell(fields, column)? {
                properties.insert(self.names[column].clone(), typed(value));
            }
        }
        if !properties.is_empty() {
            let key = match self.kind {
                CsvType::Identify | CsvType::Group => "traits",
                CsvType::Track | CsvType::Page | CsvType::Screen => "properties",
            };
            message.insert(key.to_owned(), Value::Object(properties));
        }
        Ok(message)
    }

    /// A cell's text; `None` when empty.
    fn cell<'f>(&self, fields: &Fields<'f>, column: usize) -> Result<Option<&'f str>, Rejection> {
        let name = &self.names[column];
        let text = std::str::from_utf8(fields.get(column))
            .map_err(|_| Rejection::new(name, "invalid_utf8", "is not valid UTF-8 text"))?;
        if text.contains('\0') {
            return Err(Rejection::new(
                name,
                "nul_character",
                "contains a NUL character, which cannot be stored",
            ));
        }
        Ok((!text.is_empty()).then_some(text))
    }

    /// The column a rejected message field came from.
    fn column_of(&self, field: &str) -> Option<usize> {
        match field {
            "userId" => self.user_id.or(self.anonymous_id),
            "anonymousId" => self.anonymous_id,
            "timestamp" => self.timestamp,
            "messageId" => self.message_id,
            "groupId" => self.group_id,
            "event" | "name" => match self.event {
                Some(EventSource::Column(column)) => Some(column),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A property value: numbers and `true`/`false` as such, the rest as text.
/// Integers too large for 64 bits stay text, rather than lose digits.
fn typed(cell: &str) -> Value {
    match cell {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => number(cell).map_or_else(|| Value::String(cell.to_owned()), Value::Number),
    }
}

fn number(cell: &str) -> Option<Number> {
    // serde_json skips surrounding whitespace; a cell with some is text.
    if cell.trim() != cell {
        return None;
    }
    let number: Number = serde_json::from_str(cell).ok()?;
    let integral = !cell.contains(['.', 'e', 'E']);
    (!integral || number.is_i64() || number.is_u64()).then_some(number)
}

/// Imports a CSV byte stream into `importer`, read as it arrives: the
/// header row is checked against `mapping` (a mismatch is an error before
/// any other row is read), then each record is validated and stored;
/// rejected records are reported with their first line number (the header
/// is line 1). `progress` gets the size of every chunk read.
pub async fn csv<S, E>(
    mut importer: Importer<'_>,
    mapping: &CsvMapping,
    input: S,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, CsvImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    mapping.check().map_err(CsvImportError::Mapping)?;
    let mut records = Records::new(input);
    let names = match records
        .next(&mut progress)
        .await
        .map_err(|reason| importer.read_failed(reason))?
    {
        Some(header) => header_names(&header).map_err(|err| CsvImportError::Mapping(vec![err]))?,
        None => {
            return Err(CsvImportError::Mapping(vec![MappingError::new(
                "header",
                "is missing: the file is empty; its first line must name the columns",
            )]));
        }
    };
    let columns = mapping.resolve(names).map_err(CsvImportError::Mapping)?;
    loop {
        let (line, outcome) = match records
            .next(&mut progress)
            .await
            .map_err(|reason| importer.read_failed(reason))?
        {
            Some(record) => (record.line, columns.row(&record, importer.receipt())),
            None => break,
        };
        importer.take(line, outcome).await?;
    }
    Ok(importer.finish().await?)
}

fn header_names(header: &Record<'_>) -> Result<Vec<String>, MappingError> {
    let fields = match &header.content {
        Content::Fields(fields) => fields,
        Content::TooLarge(bytes) => {
            return Err(MappingError::new(
                "header",
                format!("is {bytes} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (32 KB)"),
            ));
        }
    };
    (0..fields.len())
        .map(|i| {
            std::str::from_utf8(fields.get(i))
                .map(|name| name.trim().to_owned())
                .map_err(|_| MappingError::new("header", "is not valid UTF-8 text"))
        })
        .collect()
}

/// One CSV record as read.
struct Record<'a> {
    /// Its first line, from 1.
    line: u64,
    /// Its text without line terminators (empty when too large).
    text: &'a [u8],
    content: Content<'a>,
}

enum Content<'a> {
    Fields(Fields<'a>),
    /// Over [`MAX_MESSAGE_BYTES`]: the size in bytes; fields not kept.
    TooLarge(usize),
}

/// A record's unquoted fields, as `csv_core` lays them out: the bytes of
/// all fields end to end, and where each ends.
struct Fields<'a> {
    bytes: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Fields<'a> {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Field bytes kept for one record: past these, the record is necessarily
/// over the size limit, and the parser's output is dropped.
const MAX_FIELD_BYTES: usize = MAX_MESSAGE_BYTES + 1;
/// Fields kept for one record, likewise.
const MAX_FIELDS: usize = MAX_MESSAGE_BYTES + 2;

/// Records parsed from a byte stream, chunk by chunk.
struct Records<S> {
    input: S,
    chunk: Bytes,
    finished_input: bool,
    parser: Reader,
    output: Vec<u8>,
    output_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// The current record's bytes, from its first non-blank byte, up to
    /// [`MAX_MESSAGE_BYTES`] and its terminator.
    text: Vec<u8>,
    /// Its size, whether kept in `text` or not.
    text_bytes: usize,
    /// Line terminator bytes at the end of what was read of it.
    trailing_terminator: usize,
    /// Whether its first non-blank byte was read.
    started: bool,
    /// Line feeds between the previous record and its first byte: blank
    /// lines, and the `\n` of the previous record's `\r\n`.
    leading_line_feeds: u64,
    /// Line feeds inside it.
    line_feeds: u64,
    /// Line feeds before the previous record's end.
    lines_before: u64,
}

impl<S, E> Records<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    fn new(input: S) -> Self {
        Records {
            input,
            chunk: Bytes::new(),
            finished_input: false,
            parser: Reader::new(),
            output: vec![0; 4096],
            output_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            text: Vec::new(),
            text_bytes: 0,
            trailing_terminator: 0,
            started: false,
            leading_line_feeds: 0,
            line_feeds: 0,
            lines_before: 0,
        }
    }

    /// The next record; `None` at the end. `Err` says why the input broke.
    async fn next(&mut self, progress: &mut impl FnMut(u64)) -> Result<Option<Record<'_>>, String> {
        self.lines_before += self.leading_line_feeds + self.line_feeds;
        self.leading_line_feeds = 0;
        self.line_feeds = 0;
        self.text.clear();
        self.text_bytes = 0;
        self.trailing_terminator = 0;
        self.started = false;
        self.output_len = 0;
        self.ends_len = 0;
        loop {
            if self.chunk.is_empty() && !self.finished_input {
                match self.input.next().await {
                    Some(Ok(chunk)) => {
                        progress(chunk.len() as u64);
                        self.chunk = chunk;
                        continue;
                    }
                    Some(Err(err)) => return Err(err.to_string()),
                    None => self.finished_input = true,
                }
            }
            let (result, read, written, ended) = self.parser.read_record(
                &self.chunk,
                &mut self.output[self.output_len..],
                &mut self.ends[self.ends_len..],
            );
            let consumed = self.chunk.split_to(read);
            self.keep_text(&consumed);
            self.output_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty if self.finished_input => return Ok(None),
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    self.output_len = grow(&mut self.output, self.output_len, MAX_FIELD_BYTES);
                }
                ReadRecordResult::OutputEndsFull => {
                    self.ends_len = grow(&mut self.ends, self.ends_len, MAX_FIELDS);
                }
                ReadRecordResult::Record => return Ok(Some(self.record())),
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Counts lines and keeps the record's text, skipping the blank lines
    /// before it (the parser skips them too).
    fn keep_text(&mut self, mut bytes: &[u8]) {
        let is_terminator = |b: &u8| matches!(b, b'\r' | b'\n');
        if !self.started {
            let blank = bytes.iter().take_while(|b| is_terminator(b)).count();
            self.leading_line_feeds += line_feeds(&bytes[..blank]);
            bytes = &bytes[blank..];
            self.started = !bytes.is_empty();
        }
        if bytes.is_empty() {
            return;
        }
        self.line_feeds += line_feeds(bytes);
        self.text_bytes += bytes.len();
        let trailing = bytes.iter().rev().take_while(|b| is_terminator(b)).count();
        self.trailing_terminator = if trailing == bytes.len() {
            self.trailing_terminator + trailing
        } else {
            trailing
        };
        let room = (MAX_MESSAGE_BYTES + 2).saturating_sub(self.text.len());
        self.text.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn record(&self) -> Record<'_> {
        let line = self.lines_before + self.leading_line_feeds + 1;
        let size = self.text_bytes - self.trailing_terminator;
        if size > MAX_MESSAGE_BYTES {
            return Record {
                line,
                text: &[],
                content: Content::TooLarge(size),
            };
        }
        Record {
            line,
            text: &self.text[..size],
            content: Content::Fields(Fields {
                bytes: &self.output[..self.output_len],
                ends: &self.ends[..self.ends_len],
            }),
        }
    }
}

fn line_feeds(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Doubles a full parser buffer up to `limit`; at the limit the record is
/// too large to store, so what it holds is dropped to make room. Returns
/// the length in use.
fn grow<T: Copy + Default>(buffer: &mut Vec<T>, used: usize, limit: usize) -> usize {
    if buffer.len() < limit {
        buffer.resize((buffer.len() * 2).clamp(64, limit), T::default());
        used
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;
    use serde_json::json;

    use super::*;

    /// Every record of `chunks` as (line, text, fields or size).
    async fn parse(chunks: &[&[u8]]) -> Vec<(u64, String, Result<Vec<String>, usize>)> {
        let input = stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, Infallible>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let mut records = Records::new(input);
        let mut read = 0;
        let mut out = Vec::new();
        while let Some(record) = records.next(&mut |n| read += n).await.expect("read") {
            let content = match &record.content {
                Content::Fields(fields) => Ok((0..fields.len())
                    .map(|i| String::from_utf8_lossy(fields.get(i)).into_owned())
                    .collect()),
                Content::TooLarge(size) => Err(*size),
            };
            let text = String::from_utf8_lossy(record.text).into_owned();
            out.push((record.line, text, content));
        }
        assert_eq!(read, chunks.iter().map(|c| c.len() as u64).sum::<u64>());
        out
    }

    fn fields(values: &[&str]) -> Result<Vec<String>, usize> {
        Ok(values.iter().map(|v| (*v).to_owned()).collect())
    }

    #[tokio::test]
    async fn records_carry_their_first_line_across_chunks_and_quoted_newlines() {
        let csv = b"a,b\r\n1,\"x\r\ny\"\r\n\r\n\n2,\"q\"\"z\"\n3,last";
        let whole = parse(&[csv]).await;
        assert_eq!(
            whole,
            vec![
                (1, "a,b".into(), fields(&["a", "b"])),
                (2, "1,\"x\r\ny\"".into(), fields(&["1", "x\r\ny"])),
                (6, "2,\"q\"\"z\"".into(), fields(&["2", "q\"z"])),
                (7, "3,last".into(), fields(&["3", "last"])),
            ]
        );
        let bytewise: Vec<&[u8]> = csv.chunks(1).collect();
        assert_eq!(parse(&bytewise).await, whole);
    }

    #[tokio::test]
    async fn an_oversized_record_is_measured_not_kept() {
        let big = "x".repeat(MAX_MESSAGE_BYTES + 10);
        let csv = format!("a\nsmall\n{big}\n\"{big}\nafter");
        let chunks: Vec<&[u8]> = csv.as_bytes().chunks(1000).collect();
        let records = parse(&chunks).await;
        assert_eq!(records[1], (2, "small".into(), fields(&["small"])));
        assert_eq!(records[2], (3, String::new(), Err(MAX_MESSAGE_BYTES + 10)));
        // An unclosed quote swallows the rest of the file, within bounds.
        assert_eq!(records[3].0, 4);
        assert_eq!(records[3].2, Err(MAX_MESSAGE_BYTES + 17));
        assert_eq!(records.len(), 4);
    }

    #[test]
    fn cells_that_are_json_numbers_or_booleans_are_typed() {
        for (cell, value) in [
            ("3", json!(3)),
            ("-2.5", json!(-2.5)),
            ("1e3", json!(1000.0)),
            ("true", json!(true)),
            ("false", json!(false)),
            ("007", json!("007")),
            ("+1", json!("+1")),
            (" 1", json!(" 1")),
            ("TRUE", json!("TRUE")),
            ("12345678901234567890123", json!("12345678901234567890123")),
            ("1e999", json!("1e999")),
            ("NaN", json!("NaN")),
        ] {
            assert_eq!(typed(cell), value, "{cell}");
        }
    }

    #[test]
    fn mappings_are_checked_against_the_header() {
        let header = || vec!["when".to_owned(), "who".to_owned(), "plan".to_owned()];
        let params = |mapping: &CsvMapping| match mapping.resolve(header()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.parameter).collect(),
        };
        let track = CsvMapping {
            event: Some("Signed Up".into()),
            user_id_column: Some("who".into()),
            ..CsvMapping::default()
        };
        assert_eq!(params(&track), Vec::<&str>::new());
        let columns = track.resolve(header()).expect("resolves");
        assert_eq!(columns.properties, vec![0, 2]);
        let typo = CsvMapping {
            timestamp_column: Some("time".into()),
            properties_columns: Some("plan, seats".into()),
            ..track.clone()
        };
        assert_eq!(params(&typo), ["timestamp_column", "properties_columns"]);
        let no_event = CsvMapping {
            event: None,
            ..track.clone()
        };
        assert_eq!(params(&no_event), ["event_column"]);
        let identify = CsvMapping {
            kind: CsvType::Identify,
            group_id_column: Some("plan".into()),
            anonymous_id_column: None,
            user_id_column: None,
            ..track
        };
        assert_eq!(
            params(&identify),
            ["event", "group_id_column", "user_id_column"]
        );
    }
}
