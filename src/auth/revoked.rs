//! Revoked access tokens: a deny-list of `jti`s, each kept until its token's `exp` (after
//! that the token fails verification anyway), persisted in `STATE/issuer/revoked-access-tokens.json`
//! (0600) so a restart does not bring a revoked token back.
//!
//! Access tokens are self-contained JWTs, so revoking one means the resource server must be
//! told. In `warden serve` the issuer's `/revoke` adds to this list and the service's bearer
//! guard checks it after verifying a token. The file is how the news travels between
//! processes: `warden serve --instances N` runs the issuer in the parent and the services in
//! children on the same state directory, and each child re-reads the file when its stamp
//! (inode, size, modification time) changed, checked at most every [`RECHECK`] — so a
//! revocation reaches every instance within that time. A revocation is written under an
//! exclusive lock, merged with what the file holds then, and replaces the file whole.
//! A service that trusts another issuer has no list, and then the issuer does not claim to
//! revoke access tokens (see `issuer::revoke`).
//!
//! Bounded: at most `capacity` live entries; when full (after expired ones are swept) a
//! revocation is refused rather than an older one dropped — forgetting a revocation would
//! bring a token back. A file that cannot be read on a re-check keeps the list as it was
//! (never forgets either).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::paths::{FileStamp, stamp};

/// How many revoked, unexpired access tokens are remembered at most.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How often a lookup may look at the file for other processes' revocations (one `stat`).
pub const RECHECK: Duration = Duration::from_millis(250);

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

struct State {
    /// jti → exp (epoch seconds).
    entries: HashMap<String, u64>,
    /// The file as last read or written here.
    seen: Option<FileStamp>,
    checked: Instant,
}

pub struct RevokedAccess {
    path: Option<PathBuf>,
    capacity: usize,
    recheck: Duration,
    state: Mutex<State>,
}

fn read(path: &Path) -> Result<HashMap<String, u64>, RevokedError> {
    let read_err = |message: String| RevokedError::Read { path: path.to_path_buf(), message };
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| read_err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(read_err(e.to_string())),
    }
}

impl RevokedAccess {
    /// Opens the list at `path` (`None`: memory only).
    pub fn open(path: Option<PathBuf>, capacity: usize) -> Result<Self, RevokedError> {
        let (entries, seen) = match &path {
            Some(p) => (read(p)?, stamp(p)),
            None => (HashMap::new(), None),
        };
        Ok(Self {
            path,
            capacity: capacity.max(1),
            recheck: RECHECK,
            state: Mutex::new(State { entries, seen, checked: Instant::now() }),
        })
    }

    /// This list, looking at its file for other processes' revocations at most every
    /// `every` (tests: zero, on every lookup).
    pub fn with_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// Revokes the token `jti` that expires at `exp`; saved before it counts (fail closed:
    /// a revocation the service would forget on restart is not confirmed). Other processes'
    /// revocations in the file are kept.
    pub fn revoke(&self, jti: &str, exp: u64, now: u64) -> Result<(), RevokedError> {
        let mut state = self.state.lock();
        let Some(path) = &self.path else {
            return Self::add(&mut state.entries, self.capacity, jti, exp, now);
        };
        let lock_path = path.with_extension("lock");
        let write_err = |cause| RevokedError::Write { path: path.clone(), cause };
        let lock = File::create(&lock_path).map_err(write_err)?;
        lock.lock().map_err(write_err)?;
        let mut next = read(path)?;
        next.extend(state.entries.iter().map(|(k, v)| (k.clone(), *v)));
        Self::add(&mut next, self.capacity, jti, exp, now)?;
        let json = serde_json::to_vec(&next).unwrap_or_default();
        crate::paths::write_private(path, &json).map_err(write_err)?;
        state.seen = stamp(path);
        state.entries = next;
        Ok(())
    }

    fn add(
        entries: &mut HashMap<String, u64>,
        capacity: usize,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<(), RevokedError> {
        entries.retain(|_, e| *e > now);
        if !entries.contains_key(jti) && entries.len() >= capacity {
            return Err(RevokedError::Full { capacity });
        }
        entries.insert(jti.to_string(), exp);
        Ok(())
    }

    /// Whether the token `jti` was revoked (here, or by another process on the same file).
    pub fn is_revoked(&self, jti: &str) -> bool {
        let mut state = self.state.lock();
        if let Some(path) = &self.path
            && state.checked.elapsed() >= self.recheck
        {
            state.checked = Instant::now();
            let now = stamp(path);
            if now.is_some() && now != state.seen {
                match read(path) {
                    // Merged, never replaced: a revocation seen once is not forgotten.
                    Ok(theirs) => {
                        state.entries.extend(theirs);
                        state.seen = now;
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the revoked access tokens known so far"),
                }
            }
        }
        state.entries.contains_key(jti)
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

    /// Two processes on one file (the issuer and a service instance): a revocation by one
    /// reaches the other at its next re-check, and revocations from both are kept.
    #[test]
    fn revocations_travel_between_lists_sharing_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked-access-tokens.json");
        let issuer = RevokedAccess::open(Some(path.clone()), 10).unwrap();
        let service = RevokedAccess::open(Some(path.clone()), 10).unwrap().with_recheck(Duration::ZERO);
        let slow = RevokedAccess::open(Some(path.clone()), 10).unwrap().with_recheck(Duration::from_secs(3600));
        assert!(!service.is_revoked("a") && !slow.is_revoked("a"));
        issuer.revoke("a", 100, 0).unwrap();
        assert!(service.is_revoked("a"), "seen at the next lookup");
        assert!(!slow.is_revoked("a"), "not before its re-check is due");
        service.revoke("b", 100, 0).unwrap();
        let reopened = RevokedAccess::open(Some(path.clone()), 10).unwrap();
        assert!(reopened.is_revoked("a") && reopened.is_revoked("b"), "merged, not overwritten");
        // A file spoiled on disk does not make a list forget.
        std::fs::write(&path, b"not json").unwrap();
        assert!(service.is_revoked("a") && service.is_revoked("b"));
    }
}
