//! What every request handler shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::{passwords::Passwords, throttle::LoginThrottle},
    config::HttpSettings,
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
}

impl AppState {
    /// State over `pool` with `settings`.
    pub fn new(
        pool: PgPool,
        settings: HttpSettings,
    ) -> Result<Self, crate::auth::passwords::HashError> {
        Ok(AppState {
            pool,
            settings: Arc::new(settings),
            passwords: Passwords::new()?,
            login_throttle: Arc::new(LoginThrottle::default()),
        })
    }
}
