//! The write end of ingestion: rows encoded for binary `COPY`, the batch writer
//! that stores them (deduplicated, one commit per batch), the partitions
//! they land in, retention, and the per-tenant counters.
//!
//! The path of a batch: the app turns each accepted message into an
//! [`EventRow`]; a [`Batch`] gathers them, encoded, for many tenants; a
//! [`BatchWriter`] `COPY`s the batch into its connection's temporary staging
//! table, then, tenant by tenant under that tenant's RLS context, records the
//! new message ids, inserts the events whose ids were new, applies
//! identify/group/alias side effects and adds to the counters, and commits.

pub(crate) mod batch;
pub mod counters;
mod partitions;
pub mod retention;
mod row;

pub use batch::{APPLICATION_NAME, Batch, BatchWriter, TenantOutcome};
pub use partitions::ensure_partitions;
pub use row::{CopyRows, EVENTS_COLUMNS, EventRow, MessageType};

/// Set on the connections that write in bulk (batch writers, the rollup
/// worker): the kernel starts writing back every 256 kB of pages the backend
/// evicts, instead of letting gigabytes pile up in its page cache and go out
/// in bursts that stall every commit's WAL flush (ADR 0013).
pub(crate) const EARLY_WRITEBACK: &str = "SET backend_flush_after = '256kB'";
