//! Credentials: password hashing and log-in throttling.

pub mod passwords;
pub mod throttle;
