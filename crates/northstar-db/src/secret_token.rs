//! Random bearer secrets (session cookies, API keys, one-time tokens) and
//! the digests stored in their place.
//!
//! Only the SHA-256 of a secret is ever stored. The secrets carry 192 random
//! bits, so a fast hash is enough: nothing can be brute-forced from a leaked
//! digest.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A freshly generated secret: show `secret` once, store `hash`.
pub struct SecretToken {
    /// The secret, `<prefix><32 base64url characters>`.
    pub secret: String,
    /// SHA-256 of `secret`.
    pub hash: Vec<u8>,
}

impl SecretToken {
    /// Generates a secret that starts with `prefix` (for example `ns_sk_`).
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = digest(&secret);
        SecretToken { secret, hash }
    }

    /// The first characters of the secret, safe to display.
    pub fn display_prefix(&self) -> String {
        self.secret.chars().take(12).collect()
    }
}

/// SHA-256 of a presented secret, to look it up by.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}
