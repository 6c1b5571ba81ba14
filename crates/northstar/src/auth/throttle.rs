//! Log-in throttling, per account and per client address.
//!
//! Every attempt, successful or not, spends a token from the address bucket
//! and then from the account bucket (GCRA, via `governor`); an attempt
//! refused by the first does not spend from the second. Limits are per
//! process; several nodes each enforce them on their own. The address is the
//! TCP peer: behind a reverse proxy every client shares the proxy's bucket.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

/// Attempts per account: a burst of this many, then one more per 6 seconds.
pub const ATTEMPTS_PER_ACCOUNT_PER_MINUTE: u32 = 10;
/// Attempts per client address: a burst of this many, then one more per 2 seconds.
pub const ATTEMPTS_PER_ADDRESS_PER_MINUTE: u32 = 30;

/// The two buckets.
pub struct LoginThrottle {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LoginThrottle {
    /// Buckets with the documented limits.
    fn default() -> Self {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self::new(
            per_minute(ATTEMPTS_PER_ACCOUNT_PER_MINUTE),
            per_minute(ATTEMPTS_PER_ADDRESS_PER_MINUTE),
        )
    }
}

impl LoginThrottle {
    /// Buckets with the given quotas.
    pub fn new(per_account: Quota, per_address: Quota) -> Self {
        LoginThrottle {
            per_account: RateLimiter::keyed(per_account),
            per_address: RateLimiter::keyed(per_address),
        }
    }

    /// Spends an attempt for `email` from `address`; `Err` carries how long
    /// to wait when either bucket is empty.
    pub fn attempt(&self, email: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let clock = governor::clock::DefaultClock::default();
        if let Some(address) = address {
            self.per_address
                .check_key(&address)
                .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        }
        self.per_account
            .check_key(&email.to_lowercase())
            .map_err(|not_until| not_until.wait_time_from(clock.now()))
    }

    /// Forgets buckets that are full again, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
    }
}
