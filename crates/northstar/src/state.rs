//! What every request handler shares.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::{
    auth::{passwords::Passwords, throttle::LoginThrottle},
    config::HttpSettings,
    ingest::{
        Ingest, MAX_REQUESTS_IN_INTAKE,
        pipeline::{Pipeline, Writers},
        rate_limit::WriteKeyLimits,
    },
};

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Pool connected as `northstar_app`: Row Level Security always applies.
    pub pool: PgPool,
    /// Validated HTTP settings.
    pub settings: Arc<HttpSettings>,
    /// Password hashing off the async runtime.
    pub passwords: Passwords,
    /// Log-in attempt limits.
    pub login_throttle: Arc<LoginThrottle>,
    /// The ingestion queue and rate limits.
    pub ingest: Ingest,
}

impl AppState {
    /// State over `pool` with `settings` and `passwords`, and the ingestion
    /// writers it started (connecting like `pool`); drain them after serving.
    pub fn new(pool: PgPool, settings: HttpSettings, passwords: Passwords) -> (Self, Writers) {
        let options = pool.connect_options().as_ref().clone();
        let (pipeline, writers) = Pipeline::start(options, &settings.ingest.pipeline);
        let ingest = Ingest {
            pipeline,
            limits: Arc::new(WriteKeyLimits::new(&settings.ingest.rates)),
            intake: Arc::new(Semaphore::new(MAX_REQUESTS_IN_INTAKE)),
        };
        let state = AppState {
            pool,
            settings: Arc::new(settings),
            passwords,
            login_throttle: Arc::new(LoginThrottle::default()),
            ingest,
        };
        (state, writers)
    }
}
