//! Client-secret hashing for the issuer's client registry.
//!
//! Stored form: `pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64` (unpadded standard base64).
//! Verification uses aws-lc-rs' `pbkdf2::verify`, which compares in constant time, so a
//! wrong secret takes as long to reject as a nearly-right one.

use std::num::NonZeroU32;

use aws_lc_rs::{pbkdf2, rand::SecureRandom};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD as B64};

const ALG: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
const PREFIX: &str = "pbkdf2-sha256";
/// Client secrets are machine-generated and high-entropy, so the iteration count guards
/// against a leaked store without making every `/token` call slow.
pub const DEFAULT_ITERATIONS: u32 = 20_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashError {
    #[error("secret hash must look like `pbkdf2-sha256$ITERATIONS$SALT$HASH` (make one with `warden hash-secret`)")]
    Malformed,
}

/// A parsed secret hash from the client registry.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({PREFIX}, {} iterations)", self.iterations)
    }
}

impl SecretHash {
    /// Hashes `secret` with a fresh random salt.
    pub fn create(secret: &str, iterations: u32) -> Self {
        let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        let mut salt = vec![0u8; 16];
        // The system RNG failing is not recoverable; an all-zero salt would still verify
        // correctly, only with less protection, so we do not abort for it.
        let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut salt);
        let mut hash = vec![0u8; 32];
        pbkdf2::derive(ALG, iterations, &salt, secret.as_bytes(), &mut hash);
        Self { iterations, salt, hash }
    }

    pub fn parse(s: &str) -> Result<Self, HashError> {
        let mut parts = s.split('$');
        let (Some(PREFIX), Some(iter), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HashError::Malformed);
        };
        let iterations = iter.parse::<NonZeroU32>().map_err(|_| HashError::Malformed)?;
        let salt = B64.decode(salt).map_err(|_| HashError::Malformed)?;
        let hash = B64.decode(hash).map_err(|_| HashError::Malformed)?;
        if hash.len() < 16 {
            return Err(HashError::Malformed);
        }
        Ok(Self { iterations, salt, hash })
    }

    /// Constant-time check of a presented secret.
    pub fn verify(&self, secret: &str) -> bool {
        pbkdf2::verify(ALG, self.iterations, &self.salt, secret.as_bytes(), &self.hash).is_ok()
    }

    pub fn encode(&self) -> String {
        format!("{PREFIX}${}${}${}", self.iterations, B64.encode(&self.salt), B64.encode(&self.hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_verifies_only_the_right_secret() {
        let h = SecretHash::create("s3cret", 1000);
        let parsed = SecretHash::parse(&h.encode()).unwrap();
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(!parsed.verify(""));
    }

    #[test]
    fn malformed_hashes_are_rejected() {
        for bad in
            ["", "plain", "pbkdf2-sha256$0$aa$bb", "sha1$1$aa$bbbbbbbbbbbbbbbbbbbbbbbb", "pbkdf2-sha256$10$!!$bb"]
        {
            assert_eq!(SecretHash::parse(bad), Err(HashError::Malformed), "{bad}");
        }
    }

    #[test]
    fn debug_hides_salt_and_hash() {
        let h = SecretHash::create("x", 10);
        assert_eq!(format!("{h:?}"), "SecretHash(pbkdf2-sha256, 10 iterations)");
    }
}
