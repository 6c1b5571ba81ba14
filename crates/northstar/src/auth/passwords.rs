//! Password hashing with argon2id.
//!
//! Hashing is deliberately slow and CPU-bound, so it runs on the blocking
//! pool behind a semaphore sized to the CPUs: a burst of log-ins queues
//! instead of starving the async workers.

use std::sync::Arc;

use argon2::{
    Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted (hashing cost grows with length).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a new password's length; `Err` says why it is refused.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        Err(format!(
            "must be at least {MIN_PASSWORD_LEN} characters long"
        ))
    } else if password.len() > MAX_PASSWORD_LEN {
        Err(format!("must be at most {MAX_PASSWORD_LEN} bytes long"))
    } else {
        Ok(())
    }
}

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified when the email is unknown, so that an unknown email costs as
    /// much time as a wrong password.
    dummy_hash: Arc<str>,
}

/// Hashing failed (a bug, or the blocking pool is gone).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Passwords {
    /// A hasher allowing as many concurrent hashes as there are CPUs.
    pub fn new() -> Result<Self, HashError> {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = hash_now("northstar-dummy-password")?;
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(cpus)),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The argon2id PHC string of `password`, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.blocking(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash`; with no hash, checks against a
    /// dummy so the answer takes as long and is `false`.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, HashError> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(hash) => (hash, true),
            None => (self.dummy_hash.to_string(), false),
        };
        let matches = self
            .blocking(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .map_err(|err| HashError(err.to_string()))
            })
            .await??;
        Ok(real && matches)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| HashError(err.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| HashError(err.to_string()))
    }
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError(err.to_string()))
}
