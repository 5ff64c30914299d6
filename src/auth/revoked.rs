//! Revoked access tokens: a deny-list of `jti`s, each kept until its token's `exp` (after
//! that the token fails verification anyway), persisted in `STATE/issuer/revoked-access-tokens.json`
//! (0600) so a restart does not bring a revoked token back.
//!
//! Access tokens are self-contained JWTs, so revoking one means the resource server must be
//! told. In `warden serve` the issuer and the MCP service share one process: the issuer's
//! `/revoke` adds to this list and the service's bearer guard checks it after verifying a
//! token. A service that runs alone (`--only service`, or trusting another issuer) has no
//! list, and then the issuer does not claim to revoke access tokens (see `issuer::revoke`).
//!
//! Bounded: at most `capacity` live entries; when full (after expired ones are swept) a
//! revocation is refused rather than an older one dropped — forgetting a revocation would
//! bring a token back.

use std::collections::HashMap;
use std::path::PathBuf;

use parking_lot::Mutex;

/// How many revoked, unexpired access tokens are remembered at most.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokedError {
    #[error("could not read the revoked access tokens {path}: {message} (fix or remove the file)")]
    Read { path: PathBuf, message: String },
    #[error("could not save the revoked access tokens {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("{capacity} unexpired access tokens are revoked already; wait for some to expire")]
    Full { capacity: usize },
}

pub struct RevokedAccess {
    path: Option<PathBuf>,
    capacity: usize,
    /// jti → exp (epoch seconds).
    entries: Mutex<HashMap<String, u64>>,
}

impl RevokedAccess {
    /// Opens the list at `path` (`None`: memory only).
    pub fn open(path: Option<PathBuf>, capacity: usize) -> Result<Self, RevokedError> {
        let mut entries = HashMap::new();
        if let Some(p) = path.as_ref().filter(|p| p.exists()) {
            let read_err = |message: String| RevokedError::Read { path: p.clone(), message };
            let text = std::fs::read_to_string(p).map_err(|e| read_err(e.to_string()))?;
            entries = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        }
        Ok(Self { path, capacity: capacity.max(1), entries: Mutex::new(entries) })
    }

    /// Revokes the token `jti` that expires at `exp`; saved before it counts (fail closed:
    /// a revocation the service would forget on restart is not confirmed).
    pub fn revoke(&self, jti: &str, exp: u64, now: u64) -> Result<(), RevokedError> {
        let mut entries = self.entries.lock();
        let mut next = entries.clone();
        next.retain(|_, e| *e > now);
        if !next.contains_key(jti) && next.len() >= self.capacity {
            return Err(RevokedError::Full { capacity: self.capacity });
        }
        next.insert(jti.to_string(), exp);
        if let Some(path) = &self.path {
            let json = serde_json::to_vec(&next).unwrap_or_default();
            crate::paths::write_private(path, &json)
                .map_err(|cause| RevokedError::Write { path: path.clone(), cause })?;
        }
        *entries = next;
        Ok(())
    }

    /// Whether the token `jti` was revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.entries.lock().contains_key(jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_persist_until_expiry_and_the_list_is_bounded_without_forgetting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked-access-tokens.json");
        let list = RevokedAccess::open(Some(path.clone()), 2).unwrap();
        list.revoke("a", 100, 0).unwrap();
        list.revoke("b", 200, 0).unwrap();
        assert!(list.is_revoked("a") && list.is_revoked("b") && !list.is_revoked("c"));
        assert!(matches!(list.revoke("c", 300, 50), Err(RevokedError::Full { capacity: 2 })), "none forgotten");
        assert!(list.is_revoked("a"));
        let reopened = RevokedAccess::open(Some(path), 2).unwrap();
        assert!(reopened.is_revoked("a"), "a restart keeps it");
        reopened.revoke("c", 300, 100).unwrap();
        assert!(!reopened.is_revoked("a"), "expired entries make room");
        assert!(reopened.is_revoked("b") && reopened.is_revoked("c"));
    }
}
