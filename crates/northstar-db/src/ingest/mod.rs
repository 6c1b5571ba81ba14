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
/// worker). Their backends evict dirty pages from shared buffers into the
/// kernel's page cache; left there, gigabytes pile up and are written back
/// in bursts, and every commit's WAL flush queues behind such a burst (the
/// half-load p99 went from 120–230 ms to 18–42 ms with it, `docs/benchmarks.md`).
/// With it, the kernel starts writing every 256 kB a backend writes at once.
pub(crate) const EARLY_WRITEBACK: &str = "SET backend_flush_after = '256kB'";
