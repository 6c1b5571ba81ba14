//! Per-write-key rate limits, set by the tenant's plan.
//!
//! Each key has a bucket (GCRA, via `governor`) holding ten seconds of its
//! plan's rate, refilled continuously; a request spends one token per
//! message. Limits are per process.

use std::{collections::BTreeMap, num::NonZeroU32, str::FromStr, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

/// Seconds of traffic a bucket holds.
pub const BURST_SECONDS: u32 = 10;

/// The default rates, messages per second per write key.
pub const DEFAULT_PLAN_RATES: &str = "free=1000,starter=5000,growth=20000,enterprise=100000";

/// Messages per second per write key, by plan name; plans not listed get
/// the lowest rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRates(BTreeMap<String, NonZeroU32>);

impl FromStr for PlanRates {
    type Err = String;

    /// Parses `plan=rate,plan=rate`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut rates = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (plan, rate) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not plan=messages_per_second"))?;
            let rate: NonZeroU32 = rate
                .trim()
                .parse()
                .map_err(|_| format!("{rate:?} is not a positive whole number"))?;
            rates.insert(plan.trim().to_owned(), rate);
        }
        if rates.is_empty() {
            return Err("no plan=rate pairs".to_owned());
        }
        Ok(PlanRates(rates))
    }
}

impl Default for PlanRates {
    /// [`DEFAULT_PLAN_RATES`].
    fn default() -> Self {
        DEFAULT_PLAN_RATES
            .parse()
            .unwrap_or_else(|_| PlanRates(BTreeMap::new()))
    }
}

/// One bucket per write key, per plan.
pub struct WriteKeyLimits {
    by_plan: BTreeMap<String, DefaultKeyedRateLimiter<Uuid>>,
    lowest: DefaultKeyedRateLimiter<Uuid>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit {
    /// When the bucket will hold enough for the request.
    pub retry_after: Duration,
}

impl WriteKeyLimits {
    /// Buckets for `rates`.
    pub fn new(rates: &PlanRates) -> Self {
        let limiter = |rate: NonZeroU32| {
            let burst = NonZeroU32::new(rate.get().saturating_mul(BURST_SECONDS)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        };
        let lowest = rates.0.values().min().copied().unwrap_or(NonZeroU32::MIN);
        WriteKeyLimits {
            by_plan: rates
                .0
                .iter()
                .map(|(plan, &rate)| (plan.clone(), limiter(rate)))
                .collect(),
            lowest: limiter(lowest),
        }
    }

    /// Spends `messages` tokens of `key` on `plan`.
    pub fn check(&self, plan: &str, key: Uuid, messages: usize) -> Result<(), OverLimit> {
        let limiter = self.by_plan.get(plan).unwrap_or(&self.lowest);
        let Some(n) = u32::try_from(messages).ok().and_then(NonZeroU32::new) else {
            return Ok(());
        };
        match limiter.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            // A clock costs a CPU calibration to create: only when refusing.
            Ok(Err(not_until)) => Err(OverLimit {
                retry_after: not_until
                    .wait_time_from(governor::clock::DefaultClock::default().now()),
            }),
            // More messages in one request than the bucket ever holds.
            Err(_) => Err(OverLimit {
                retry_after: Duration::from_secs(u64::from(BURST_SECONDS)),
            }),
        }
    }

    /// Forgets full buckets, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.lowest.retain_recent();
        for limiter in self.by_plan.values() {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plan_rates_and_refuses_nonsense() {
        let rates: PlanRates = "free=10, growth=1000".parse().expect("rates");
        assert_eq!(rates.0.len(), 2);
        assert!("free".parse::<PlanRates>().is_err());
        assert!("free=0".parse::<PlanRates>().is_err());
        assert!("".parse::<PlanRates>().is_err());
        assert_eq!(PlanRates::default().0.len(), 4, "the default rates parse");
    }

    #[test]
    fn a_key_gets_ten_seconds_of_its_plan_then_waits() {
        let limits = WriteKeyLimits::new(&"free=10,growth=1000".parse().expect("rates"));
        let key = Uuid::new_v4();
        assert_eq!(limits.check("free", key, 100), Ok(()));
        let refused = limits.check("free", key, 1).expect_err("bucket empty");
        assert!(refused.retry_after > Duration::ZERO);
        // Another key, and an unknown plan (the lowest rate), have their own buckets.
        assert_eq!(limits.check("growth", Uuid::new_v4(), 5000), Ok(()));
        assert_eq!(limits.check("mystery", Uuid::new_v4(), 100), Ok(()));
        assert!(limits.check("mystery", Uuid::new_v4(), 101).is_err());
    }
}
