//! Ingestion: how a tenant's messages get in.
//!
//! The path of a message: an SDK posts it to a Segment-spec endpoint
//! (`/v1/batch`, `/v1/track`, …) or PostHog's capture API, or a member
//! imports a file; [`crate::http::ingest_request`] authenticates the write
//! key and applies the key's rate limit; [`message`] validates each message
//! into a row (a bad message is reported and counted, never fatal to the
//! rest); [`pipeline`] queues the request's rows, bounded in bytes, for the
//! batch writers of `northstar_db::ingest`, and the request is answered only
//! once the batch holding its rows is committed; the [`rollup_worker`] then
//! applies the stored calls to the product rollups.

pub mod csv_import;
pub mod import;
pub mod message;
pub mod pipeline;
pub mod posthog;
pub mod rate_limit;
pub mod rollup_worker;

use std::sync::Arc;

use pipeline::{Pipeline, PipelineSettings};
use rate_limit::{PlanRates, WriteKeyLimits};
use tokio::sync::Semaphore;

/// SDK requests read and validated at once; more are answered 503 at once.
/// With requests of at most 1 MB, this bounds the memory of bodies being
/// read and parsed, as the queue bounds the rows waiting to be written.
pub const MAX_REQUESTS_IN_INTAKE: usize = 64;

/// Ingestion's configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct IngestSettings {
    /// Queue and writers.
    pub pipeline: PipelineSettings,
    /// Messages per second per write key, by plan.
    pub rates: PlanRates,
}

/// What ingestion handlers share; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    /// The queue to the batch writers.
    pub pipeline: Pipeline,
    /// Per-write-key rate limits.
    pub limits: Arc<WriteKeyLimits>,
    /// Room for [`MAX_REQUESTS_IN_INTAKE`] requests being read and validated.
    pub intake: Arc<Semaphore>,
}
