//! Bulk import for backfills: a stream of NDJSON lines (one Segment
//! message each, with its `type`), read chunk by chunk so that a file of any
//! size never sits in memory. Valid lines are stored in batches of
//! [`CHUNK_ROWS`] through the same pipeline as live traffic, waiting for room
//! rather than failing when it is busy; every rejected line is reported with
//! its number, field and reason.
//!
//! A line without `messageId` gets one derived from its text, so importing
//! the same file twice stores each line once.
//!
//! [`Importer`] is shared with the CSV import ([`super::csv_import`]), which
//! turns records into the same messages.

use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use northstar_db::ingest::EventRow;
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    message::{self, MAX_MESSAGE_BYTES, MissingMessageId, Receipt, Rejection},
    pipeline::{Pipeline, PipelineError, WhenFull, approximate_size},
};

/// Rows sent to the pipeline at a time (fewer when they reach [`CHUNK_BYTES`]).
pub const CHUNK_ROWS: usize = 2000;
/// Queued bytes sent to the pipeline at a time; well under its smallest size.
pub const CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// Rejected lines listed in a report; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// One rejected line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LineError {
    /// Line number, from 1 (for CSV, the header is line 1).
    pub line: u64,
    /// The offending field.
    pub field: String,
    /// Why it was refused.
    pub reason: String,
    /// Stable reason code.
    pub code: &'static str,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImportReport {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Lines stored (or already stored: a line imported twice counts here).
    pub accepted: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The first refused lines, with the reason.
    pub errors: Vec<LineError>,
    /// Whether more lines were refused than `errors` lists.
    pub errors_truncated: bool,
}

/// Why an import stopped early. Lines before `committed_lines` are stored.
#[derive(Debug, thiserror::Error)]
#[error("import stopped after {committed_lines} lines: {source}")]
pub struct ImportError {
    /// Lines read and stored (or rejected) before the failure.
    pub committed_lines: u64,
    /// What failed.
    #[source]
    pub source: ImportFailure,
}

/// The cause of an [`ImportError`].
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// Reading the input failed.
    #[error("reading the input: {0}")]
    Read(String),
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] PipelineError),
}

/// Validates rows one by one and stores them in chunks.
pub struct Importer<'a> {
    pipeline: &'a Pipeline,
    receipt: Receipt,
    rows: Vec<EventRow>,
    row_bytes: usize,
    rejected: Vec<(&'static str, u64)>,
    report: ImportReport,
    committed_lines: u64,
    on_rejection: Option<RejectionReporter<'a>>,
}

/// Where an [`Importer`] hands each rejected line, if anywhere.
type RejectionReporter<'a> = Box<dyn FnMut(&LineError) + Send + 'a>;

impl<'a> Importer<'a> {
    /// An importer for `receipt`'s tenant.
    pub fn new(pipeline: &'a Pipeline, receipt: Receipt) -> Self {
        Importer {
            pipeline,
            receipt,
            rows: Vec::with_capacity(CHUNK_ROWS),
            row_bytes: 0,
            rejected: Vec::new(),
            report: ImportReport::default(),
            committed_lines: 0,
            on_rejection: None,
        }
    }

    /// Hands every rejected line to `report` as it is found, beyond the
    /// first [`MAX_REPORTED_ERRORS`] that the report lists (the CLI prints
    /// them all).
    pub fn on_rejection(mut self, report: impl FnMut(&LineError) + Send + 'a) -> Self {
        self.on_rejection = Some(Box::new(report));
        self
    }

    /// The time-of-arrival and tenant every row is validated against.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// Counts a line and takes its row or its rejection; stores a chunk when full.
    pub async fn take(
        &mut self,
        line: u64,
        outcome: Result<EventRow, Rejection>,
    ) -> Result<(), ImportError> {
        self.report.lines += 1;
        match outcome {
            Ok(row) => {
                self.report.accepted += 1;
                self.row_bytes += approximate_size(&row);
                self.rows.push(row);
            }
            Err(rejection) => {
                self.report.rejected += 1;
                message::tally(&mut self.rejected, rejection.code);
                let error = LineError {
                    line,
                    field: rejection.field,
                    reason: rejection.reason,
                    code: rejection.code,
                };
                if let Some(report) = &mut self.on_rejection {
                    report(&error);
                }
                if self.report.errors.len() < MAX_REPORTED_ERRORS {
                    self.report.errors.push(error);
                } else {
                    self.report.errors_truncated = true;
                }
            }
        }
        if self.rows.len() >= CHUNK_ROWS || self.row_bytes >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// A read error: the import stops, keeping what was stored.
    pub fn read_failed(&self, reason: impl Into<String>) -> ImportError {
        ImportError {
            committed_lines: self.committed_lines,
            source: ImportFailure::Read(reason.into()),
        }
    }

    async fn flush(&mut self) -> Result<(), ImportError> {
        let rows = std::mem::take(&mut self.rows);
        self.row_bytes = 0;
        let rejected = std::mem::take(&mut self.rejected);
        if rows.is_empty() && rejected.is_empty() {
            return Ok(());
        }
        self.pipeline
            .submit(self.receipt.tenant_id, rows, rejected, WhenFull::Wait)
            .await
            .map_err(|err| ImportError {
                committed_lines: self.committed_lines,
                source: err.into(),
            })?;
        self.committed_lines = self.report.lines;
        // Later rows are validated against a fresh arrival time.
        self.receipt.received_at = Utc::now();
        Ok(())
    }

    /// Stores what is left and returns the report.
    pub async fn finish(mut self) -> Result<ImportReport, ImportError> {
        self.flush().await?;
        Ok(self.report)
    }
}

/// Imports an NDJSON byte stream into `importer`: one message per line,
/// `\n` or `\r\n` terminated, blank lines skipped, a line over 32 KB
/// rejected without being buffered. `progress` gets the size of every chunk
/// read.
pub async fn ndjson<S, E>(
    mut importer: Importer<'_>,
    mut input: S,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport, ImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut oversized = false;
    while let Some(chunk) = input.next().await {
        let chunk = chunk.map_err(|err| importer.read_failed(err.to_string()))?;
        progress(chunk.len() as u64);
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if !oversized {
                        line.extend_from_slice(&rest[..end]);
                    }
                    number += 1;
                    ndjson_line(&mut importer, number, &line, oversized).await?;
                    line.clear();
                    oversized = false;
                    rest = &rest[end + 1..];
                }
                None => {
                    if !oversized {
                        line.extend_from_slice(rest);
                        if line.len() > MAX_MESSAGE_BYTES + 1 {
                            oversized = true;
                            line.clear();
                        }
                    }
                    rest = &[];
                }
            }
        }
    }
    if oversized || !line.is_empty() {
        number += 1;
        ndjson_line(&mut importer, number, &line, oversized).await?;
    }
    importer.finish().await
}

async fn ndjson_line(
    importer: &mut Importer<'_>,
    number: u64,
    line: &[u8],
    oversized: bool,
) -> Result<(), ImportError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if oversized {
        return importer
            .take(number, Err(Rejection::too_large(MAX_MESSAGE_BYTES + 1)))
            .await;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let outcome = message::from_text(
        line,
        None,
        None,
        importer.receipt(),
        MissingMessageId::FromContent(line),
    );
    importer.take(number, outcome).await
}
