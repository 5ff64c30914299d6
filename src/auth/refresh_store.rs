//! Logins at rest: one file, `STATE/auth/refresh-tokens.sealed` (0600), sealed with
//! AES-256-GCM (aws-lc-rs) under a key of its own, `STATE/keys/refresh-tokens.key` (0600,
//! created on first use). Each entry holds a server's refresh token (when the authorization
//! server issued one) and its last access token with its expiry, so the next command uses
//! the access token while it lasts, then the refresh token, instead of asking for a new
//! login (a browser tab per command otherwise); `warden logout` removes entries. A file that does not open (flipped byte, another
//! key) fails closed: nothing in it is used, and the next login writes a new one.
//!
//! File layout: `WRT1` ‖ 12-byte random nonce ‖ ciphertext+tag of the JSON list of entries;
//! the magic is the associated data, so a file of another kind cannot pass for this one.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};

use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;

const MAGIC: &[u8; 4] = b"WRT1";
const KEY_LEN: usize = 32;

/// One server's login: what a refresh needs, and the access token while it lasts.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    pub server: String,
    pub resource: String,
    pub issuer: String,
    pub client_id: String,
    /// None when the authorization server issues no refresh tokens.
    #[serde(default, serialize_with = "expose_opt")]
    pub refresh_token: Option<Secret<String>>,
    pub scope: ScopeSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<StoredAccess>,
    /// The authorization server's RFC 7009 revocation endpoint, when it offers one
    /// (`warden logout` revokes the refresh token there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
}

impl StoredLogin {
    /// Whether `warden logout SERVER` means this login: SERVER is its name or its resource
    /// URL; no SERVER means every login.
    pub fn is_for(&self, server: Option<&str>) -> bool {
        server.is_none_or(|s| self.server == s || self.resource == s)
    }
}

/// An access token kept for the next command, with what it was granted.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredAccess {
    #[serde(serialize_with = "expose")]
    pub token: Secret<String>,
    /// Unix seconds; None when the token response gave no lifetime (the server says when
    /// it is no longer good: a 401 replaces it).
    pub expires_at: Option<u64>,
    pub scope: ScopeSet,
}

fn expose<S: serde::Serializer>(s: &Secret<String>, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.expose())
}

fn expose_opt<S: serde::Serializer>(s: &Option<Secret<String>>, ser: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_some(s.expose()),
        None => ser.serialize_none(),
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: String },
    #[error(
        "{path} could not be opened with {key} (changed, or sealed with another key); it is ignored — run `warden logout` to remove it"
    )]
    Tampered { path: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone)]
pub struct RefreshStore {
    path: PathBuf,
    key_path: PathBuf,
}

impl RefreshStore {
    pub fn in_state_dir(dir: &Path) -> Self {
        Self { path: dir.join("auth/refresh-tokens.sealed"), key_path: dir.join("keys/refresh-tokens.key") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io { path: path.to_path_buf(), cause: e.to_string() }
    }

    /// The key, created (0600) if there is none yet and `create`.
    fn key(&self, create: bool) -> Result<Option<LessSafeKey>, StoreError> {
        let bytes = match std::fs::read(&self.key_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut fresh = [0u8; KEY_LEN];
                aws_lc_rs::rand::fill(&mut fresh).map_err(|_| Self::io(&self.key_path, "no randomness"))?;
                crate::paths::write_private(&self.key_path, &fresh).map_err(|e| Self::io(&self.key_path, e))?;
                fresh.to_vec()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Self::io(&self.key_path, e)),
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| Self::io(&self.key_path, format!("not a {KEY_LEN}-byte key")))?;
        Ok(Some(LessSafeKey::new(unbound)))
    }

    /// Every stored login (none when there is no file yet).
    pub fn entries(&self) -> Result<Vec<StoredLogin>, StoreError> {
        let sealed = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.path, e)),
        };
        let tampered = || StoreError::Tampered { path: self.path.clone(), key: self.key_path.clone() };
        let key = self.key(false)?.ok_or_else(tampered)?;
        if sealed.len() < MAGIC.len() + NONCE_LEN || &sealed[..MAGIC.len()] != MAGIC {
            return Err(tampered());
        }
        let (nonce, body) = sealed[MAGIC.len()..].split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| tampered())?;
        let mut body = body.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(MAGIC), &mut body).map_err(|_| tampered())?;
        serde_json::from_slice(plain).map_err(|_| tampered())
    }

    fn write(&self, entries: &[StoredLogin]) -> Result<(), StoreError> {
        let key = self.key(true)?.ok_or_else(|| Self::io(&self.key_path, "no key"))?;
        let mut body = serde_json::to_vec(entries).map_err(|e| Self::io(&self.path, e))?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Self::io(&self.path, "no randomness"))?;
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(MAGIC), &mut body)
            .map_err(|_| Self::io(&self.path, "sealing failed"))?;
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        crate::paths::write_private(&self.path, &out).map_err(|e| Self::io(&self.path, e))
    }

    /// The login stored for `server` at `resource`.
    pub fn load(&self, server: &str, resource: &str) -> Result<Option<StoredLogin>, StoreError> {
        Ok(self.entries()?.into_iter().find(|e| e.server == server && e.resource == resource))
    }

    /// Stores `entry`, replacing the one for the same server and resource (a rotation). An
    /// unreadable old file is replaced rather than kept: its logins cannot be used anyway.
    pub fn save(&self, entry: StoredLogin) -> Result<(), StoreError> {
        let mut all = self.entries().unwrap_or_default();
        all.retain(|e| !(e.server == entry.server && e.resource == entry.resource));
        all.push(entry);
        self.write(&all)
    }

    pub fn remove(&self, server: &str, resource: &str) -> Result<(), StoreError> {
        let mut all = self.entries()?;
        all.retain(|e| !(e.server == server && e.resource == resource));
        self.write(&all)
    }

    /// `warden logout`: forgets the logins of `server` (its name or URL), or all of them.
    /// Returns the server names forgotten. A store that does not open is removed whole.
    pub fn forget(&self, server: Option<&str>) -> Result<Vec<String>, StoreError> {
        let all = match self.entries() {
            Ok(all) => all,
            Err(StoreError::Tampered { .. }) => {
                std::fs::remove_file(&self.path).map_err(|e| Self::io(&self.path, e))?;
                return Ok(vec!["(an unreadable store)".into()]);
            }
            Err(e) => return Err(e),
        };
        let (gone, kept): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| e.is_for(server));
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        if kept.is_empty() {
            std::fs::remove_file(&self.path).map_err(|e| Self::io(&self.path, e))?;
        } else {
            self.write(&kept)?;
        }
        Ok(gone.into_iter().map(|e| e.server).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(server: &str, token: &str) -> StoredLogin {
        StoredLogin {
            server: server.into(),
            resource: format!("http://{server}/mcp"),
            issuer: "http://as".into(),
            client_id: "c".into(),
            refresh_token: Some(Secret::new(token.into())),
            scope: ScopeSet::parse("a b").unwrap(),
            access: Some(StoredAccess {
                token: Secret::new(format!("at-of-{token}")),
                expires_at: Some(1_700_000_000),
                scope: ScopeSet::parse("a").unwrap(),
            }),
            revocation_endpoint: None,
        }
    }

    #[test]
    fn sealed_at_rest_rotated_in_place_and_a_flipped_byte_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = RefreshStore::in_state_dir(dir.path());
        store.save(login("one", "rt-first-secret")).unwrap();
        store.save(login("one", "rt-rotated-secret")).unwrap();
        store.save(login("two", "rt-other")).unwrap();
        let raw = std::fs::read(store.path()).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"rt-rot"), "the token is not in the file in clear");
        let one = store.load("one", "http://one/mcp").unwrap().unwrap();
        assert_eq!(one.refresh_token.as_ref().map(|t| t.expose().as_str()), Some("rt-rotated-secret"));
        assert!(!raw.windows(6).any(|w| w == b"at-of-"), "nor the access token");
        let access = one.access.expect("the access token is kept");
        assert_eq!(
            (access.token.expose().as_str(), access.expires_at),
            ("at-of-rt-rotated-secret", Some(1_700_000_000))
        );
        assert_eq!(store.entries().unwrap().len(), 2);
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(store.path(), &bad).unwrap();
        assert!(matches!(store.load("one", "http://one/mcp"), Err(StoreError::Tampered { .. })));
        std::fs::write(store.path(), &raw).unwrap();
        assert_eq!(store.forget(Some("one")).unwrap(), vec!["one".to_string()]);
        assert!(store.load("one", "http://one/mcp").unwrap().is_none());
        assert_eq!(store.forget(None).unwrap(), vec!["two".to_string()]);
        assert!(!store.path().exists());
    }
}
