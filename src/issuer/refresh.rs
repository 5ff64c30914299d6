//! Refresh tokens (OAuth 2.1 §4.3): opaque, stored hashed, rotated on every use.
//!
//! Kept in `STATE/issuer/refresh-tokens.json` (0600) so a restart of the issuer does not
//! force every user to sign in again; the file holds SHA-256 hashes only (the tokens are
//! 256 random bits, so a fast hash is enough: there is nothing to brute-force).
//!
//! One login is a *family*: the first refresh token and every one rotated from it. Each use
//! rotates (the presented token stops working, a new one is returned). A rotated token
//! presented again means two parties hold the family's tokens, so the whole family is
//! revoked (§4.3.1 reuse detection). A family lives `ttl_secs` from the login; rotation
//! does not extend it. Bounds: `per_client` live families per client (the oldest goes
//! first), `MAX_FAMILIES` in all, and `MAX_ROTATED` remembered rotations per family.
//!
//! Access tokens already issued from a revoked family stay valid until they expire (they
//! are self-contained JWTs, verified without asking the issuer); keep `token_ttl_secs` short.

use std::collections::HashMap;
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::grants::random_token;
use crate::paths::write_private;
use crate::types::scope::ScopeSet;
use crate::types::secret::sha256;

/// Most live families in the store.
const MAX_FAMILIES: usize = 10_000;
/// Most rotated (used) tokens remembered per family for reuse detection; an older one
/// presented again is simply unknown (still refused, without revoking the family).
const MAX_ROTATED: usize = 64;

/// What a refresh token stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGrant {
    pub client_id: String,
    pub user: String,
    pub resource: String,
    /// The scope of the login; a refresh may narrow the access token's, never widen it.
    pub scope: ScopeSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Family {
    grant: RefreshGrant,
    created_at: u64,
    expires_at: u64,
    /// Hex SHA-256 of the live token.
    current: String,
    /// Hex SHA-256 of the tokens rotated away, oldest first.
    rotated: Vec<String>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct Stored {
    families: HashMap<String, Family>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    #[error("the refresh token is unknown, expired or revoked; sign in again")]
    Invalid,
    #[error("the refresh token was already used, so every token of this sign-in is revoked; sign in again")]
    Reused { family: String },
    #[error("the refresh token was issued to another client")]
    WrongClient,
    #[error("could not save the refresh tokens {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("could not read the refresh tokens {path}: {message} (remove the file; users then sign in again)")]
    Read { path: PathBuf, message: String },
    #[error("the system random number generator failed")]
    Random,
}

/// What revoking a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The token's family (its sign-in) is gone; the grant it stood for.
    Revoked(RefreshGrant),
    /// The token belongs to another client: nothing was done (RFC 7009 §2.1).
    OtherClient,
    /// Unknown, expired or already revoked: nothing to do (RFC 7009 §2.2 still says 200).
    Unknown,
}

pub struct RefreshStore {
    path: Option<PathBuf>,
    ttl_secs: u64,
    per_client: usize,
    state: Mutex<Stored>,
}

fn hash_hex(token: &str) -> String {
    sha256(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl RefreshStore {
    /// Opens the store at `path` (`None`: memory only).
    pub fn open(path: Option<PathBuf>, ttl_secs: u64, per_client: usize) -> Result<Self, RefreshError> {
        let mut stored = Stored::default();
        if let Some(p) = path.as_ref().filter(|p| p.exists()) {
            let read_err = |message: String| RefreshError::Read { path: p.clone(), message };
            let text = std::fs::read_to_string(p).map_err(|e| read_err(e.to_string()))?;
            stored = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        }
        Ok(Self { path, ttl_secs, per_client: per_client.max(1), state: Mutex::new(stored) })
    }

    /// Starts a family for a new login; returns (token, family id).
    pub fn issue(&self, grant: RefreshGrant, now: u64) -> Result<(String, String), RefreshError> {
        let token = random_token().ok_or(RefreshError::Random)?;
        let family = random_token().ok_or(RefreshError::Random)?;
        self.update(|s| {
            s.families.retain(|_, f| f.expires_at > now);
            let client_id = grant.client_id.clone();
            while s.families.values().filter(|f| f.grant.client_id == client_id).count() >= self.per_client {
                drop_oldest(s, |f| f.grant.client_id == client_id);
            }
            while s.families.len() >= MAX_FAMILIES {
                drop_oldest(s, |_| true);
            }
            s.families.insert(
                family.clone(),
                Family {
                    grant,
                    created_at: now,
                    expires_at: now.saturating_add(self.ttl_secs),
                    current: hash_hex(&token),
                    rotated: Vec::new(),
                },
            );
            Ok(())
        })?;
        Ok((token, family))
    }

    /// Rotates `token` presented by `client_id`: `check` sees the grant first (a refused
    /// request must not burn the token); on success the old token is dead and the new one
    /// is returned with the grant.
    pub fn rotate<E>(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        check: impl FnOnce(&RefreshGrant) -> Result<(), E>,
    ) -> Result<Result<(RefreshGrant, String), E>, RefreshError> {
        let presented = hash_hex(token);
        let new_token = random_token().ok_or(RefreshError::Random)?;
        self.update(|s| {
            let found = s.families.iter().find_map(|(id, f)| {
                if f.current == presented {
                    Some((id.clone(), false))
                } else if f.rotated.contains(&presented) {
                    Some((id.clone(), true))
                } else {
                    None
                }
            });
            let Some((id, reused)) = found else { return Err(RefreshError::Invalid) };
            let Some(f) = s.families.get_mut(&id) else { return Err(RefreshError::Invalid) };
            if f.expires_at <= now {
                s.families.remove(&id);
                return Err(RefreshError::Invalid);
            }
            if f.grant.client_id != client_id {
                return Err(RefreshError::WrongClient);
            }
            if reused {
                s.families.remove(&id);
                return Err(RefreshError::Reused { family: id });
            }
            if let Err(e) = check(&f.grant) {
                return Ok(Err(e));
            }
            let old = std::mem::replace(&mut f.current, hash_hex(&new_token));
            f.rotated.push(old);
            if f.rotated.len() > MAX_ROTATED {
                f.rotated.remove(0);
            }
            Ok(Ok((f.grant.clone(), new_token.clone())))
        })
    }

    /// Revokes one family (a replayed authorization code's).
    pub fn revoke_family(&self, family: &str) -> Result<bool, RefreshError> {
        self.update(|s| Ok(s.families.remove(family).is_some()))
    }

    /// RFC 7009 revocation of `token` by `client_id`: a token of a live family of that
    /// client — the current one or one rotated away — revokes the whole family (the
    /// sign-in), saved before the answer like a reuse detection. An unknown, expired or
    /// already revoked token, or another client's, changes nothing (and writes nothing, so
    /// a flood of garbage costs a hash and a scan).
    pub fn revoke(&self, token: &str, client_id: &str, now: u64) -> Result<Revocation, RefreshError> {
        let presented = hash_hex(token);
        let mut state = self.state.lock();
        let found = state.families.iter().find(|(_, f)| f.current == presented || f.rotated.contains(&presented));
        let Some((id, family)) = found else { return Ok(Revocation::Unknown) };
        if family.expires_at <= now {
            return Ok(Revocation::Unknown);
        }
        if family.grant.client_id != client_id {
            return Ok(Revocation::OtherClient);
        }
        let (id, grant) = (id.clone(), family.grant.clone());
        let mut next = state.clone();
        next.families.remove(&id);
        self.save(&next)?;
        *state = next;
        Ok(Revocation::Revoked(grant))
    }

    /// Live families of `client_id`.
    pub fn families_of(&self, client_id: &str) -> usize {
        self.state.lock().families.values().filter(|f| f.grant.client_id == client_id).count()
    }

    /// Applies `f` to a copy and saves it; the change takes effect only once it is on disk
    /// (fail closed: a token the issuer would forget on restart, or a revocation it would
    /// undo, is not handed out). Errors that are answers (`Invalid`, `Reused`) still save:
    /// an expired or revoked family must stay gone.
    fn update<T>(&self, f: impl FnOnce(&mut Stored) -> Result<T, RefreshError>) -> Result<T, RefreshError> {
        let mut state = self.state.lock();
        let mut next = state.clone();
        let out = f(&mut next);
        let changed = match &out {
            Ok(_) | Err(RefreshError::Invalid | RefreshError::Reused { .. }) => true,
            Err(_) => false,
        };
        if changed {
            self.save(&next)?;
            *state = next;
        }
        out
    }

    fn save(&self, next: &Stored) -> Result<(), RefreshError> {
        if let Some(path) = &self.path {
            let json = serde_json::to_vec(next).unwrap_or_default();
            write_private(path, &json).map_err(|cause| RefreshError::Write { path: path.clone(), cause })?;
        }
        Ok(())
    }
}

fn drop_oldest(s: &mut Stored, pick: impl Fn(&Family) -> bool) {
    let oldest = s.families.iter().filter(|(_, f)| pick(f)).min_by_key(|(_, f)| f.created_at).map(|(id, _)| id.clone());
    if let Some(id) = oldest {
        s.families.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(client: &str) -> RefreshGrant {
        RefreshGrant {
            client_id: client.into(),
            user: "demo".into(),
            resource: "https://rs/mcp".into(),
            scope: ScopeSet::parse("customer:read").unwrap(),
        }
    }

    fn ok(_: &RefreshGrant) -> Result<(), ()> {
        Ok(())
    }

    #[test]
    fn rotation_kills_the_old_token_and_reuse_revokes_the_family() {
        let s = RefreshStore::open(None, 100, 5).unwrap();
        let (t1, _) = s.issue(grant("c"), 0).unwrap();
        let (_, t2) = s.rotate(&t1, "c", 1, ok).unwrap().unwrap();
        assert!(matches!(s.rotate(&t1, "c", 2, ok), Err(RefreshError::Reused { .. })));
        assert!(matches!(s.rotate(&t2, "c", 3, ok), Err(RefreshError::Invalid)), "family gone");
    }

    #[test]
    fn a_refused_check_or_another_client_does_not_burn_the_token() {
        let s = RefreshStore::open(None, 100, 5).unwrap();
        let (t1, _) = s.issue(grant("c"), 0).unwrap();
        assert!(matches!(s.rotate(&t1, "other", 1, ok), Err(RefreshError::WrongClient)));
        assert_eq!(s.rotate(&t1, "c", 1, |_| Err("no")).unwrap(), Err("no"));
        assert!(s.rotate(&t1, "c", 1, ok).unwrap().is_ok());
    }

    #[test]
    fn families_expire_from_the_login_and_are_capped_per_client() {
        let s = RefreshStore::open(None, 100, 2).unwrap();
        let (t1, _) = s.issue(grant("c"), 0).unwrap();
        let (_, t1b) = s.rotate(&t1, "c", 50, ok).unwrap().unwrap();
        assert!(matches!(s.rotate(&t1b, "c", 100, ok), Err(RefreshError::Invalid)), "rotation does not extend");
        let (a, _) = s.issue(grant("c"), 200).unwrap();
        let (b, _) = s.issue(grant("c"), 201).unwrap();
        let (c, _) = s.issue(grant("c"), 202).unwrap();
        assert_eq!(s.families_of("c"), 2);
        assert!(matches!(s.rotate(&a, "c", 203, ok), Err(RefreshError::Invalid)), "oldest dropped");
        assert!(s.rotate(&b, "c", 203, ok).unwrap().is_ok());
        assert!(s.rotate(&c, "c", 203, ok).unwrap().is_ok());
    }

    #[test]
    fn revoking_any_token_of_a_family_ends_the_sign_in_for_its_own_client_only_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refresh-tokens.json");
        let s = RefreshStore::open(Some(path.clone()), 100, 5).unwrap();
        let (t1, _) = s.issue(grant("c"), 0).unwrap();
        let (_, t2) = s.rotate(&t1, "c", 1, ok).unwrap().unwrap();
        assert_eq!(s.revoke(&t2, "other", 2).unwrap(), Revocation::OtherClient);
        assert_eq!(s.revoke("never-issued", "c", 2).unwrap(), Revocation::Unknown);
        assert!(s.rotate(&t2, "c", 2, ok).unwrap().is_ok(), "another client's revocation did nothing");
        let (t3, _) = s.issue(grant("c"), 3).unwrap();
        let (_, t4) = s.rotate(&t3, "c", 4, ok).unwrap().unwrap();
        // The rotated-away token names the family too: the current one dies with it.
        assert_eq!(s.revoke(&t3, "c", 5).unwrap(), Revocation::Revoked(grant("c")));
        assert_eq!(s.revoke(&t4, "c", 5).unwrap(), Revocation::Unknown, "already revoked");
        let reopened = RefreshStore::open(Some(path), 100, 5).unwrap();
        assert!(matches!(reopened.rotate(&t4, "c", 6, ok), Err(RefreshError::Invalid)), "the revocation was saved");
        let (t5, _) = reopened.issue(grant("c"), 6).unwrap();
        assert_eq!(reopened.revoke(&t5, "c", 106).unwrap(), Revocation::Unknown, "an expired sign-in");
    }

    #[test]
    fn the_store_survives_a_reopen_and_holds_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refresh-tokens.json");
        let s = RefreshStore::open(Some(path.clone()), 100, 5).unwrap();
        let (t1, _) = s.issue(grant("c"), 0).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&t1), "only hashes on disk");
        let reopened = RefreshStore::open(Some(path), 100, 5).unwrap();
        assert!(reopened.rotate(&t1, "c", 1, ok).unwrap().is_ok());
    }
}
