//! The issuer's RS256 signing keys.
//!
//! Keys live in `signing-keys.json` (mode 0600) in the key directory (`[issuer] keys_dir`,
//! default `STATE/issuer`), newest first. The newest signs; previous ones (up to
//! `keep_previous`) stay published in the JWKS after a rotation so that tokens signed a
//! moment ago still verify until they expire. A key's `kid` is its RFC 7638 JWK thumbprint.
//!
//! Several issuer instances may share one key directory (running at scale): creating the
//! first key and rotating happen under an exclusive lock on `signing-keys.lock`, and each
//! starts from the file as it is on disk then, so two instances starting together on an
//! empty directory end up with one key, and a rotation never drops another's. Every
//! instance notices a rotation made elsewhere: before it signs, publishes its JWKS or reads
//! back one of its tokens it compares the file's identity (inode, size, modification time)
//! with what it last read, and reloads when it changed. The file is always replaced whole
//! (written aside, then renamed), so a reader sees the old set or the new one, never half.

use std::fs::File;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::paths::{FileStamp, stamp, write_private};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("could not read signing keys {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("could not write signing keys {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("RSA key generation failed")]
    Generate,
    #[error("stored signing key {kid} is unusable: {message}")]
    Invalid { kid: String, message: String },
    #[error("could not lock {path} (another issuer instance sharing this key directory holds it?): {cause}")]
    Lock { path: PathBuf, cause: std::io::Error },
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    created_at: u64,
    /// PKCS#8 private key, PEM.
    private_key_pem: String,
}

#[derive(Serialize, Deserialize, Default)]
struct StoredKeys {
    keys: Vec<StoredKey>,
}

/// One signing key, ready to sign and to publish.
pub struct SigningKey {
    pub kid: String,
    pub created_at: u64,
    encoding: EncodingKey,
    public: Jwk,
    pem: String,
}

impl SigningKey {
    fn generate() -> Result<Self, KeyError> {
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        let der = pair.as_der().map_err(|_| KeyError::Generate)?;
        let pem = pem_encode("PRIVATE KEY", der.as_ref());
        Self::from_pem(pem, crate::types::time::now_epoch(), None)
    }

    fn from_pem(pem: String, created_at: u64, expected_kid: Option<&str>) -> Result<Self, KeyError> {
        let invalid = |message: String| KeyError::Invalid { kid: expected_kid.unwrap_or("new").to_string(), message };
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| invalid(e.to_string()))?;
        let kid = public.thumbprint(ThumbprintHash::SHA256).map_err(|e| invalid(e.to_string()))?;
        if expected_kid.is_some_and(|k| k != kid) {
            return Err(invalid("kid does not match the key's thumbprint".into()));
        }
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self { kid, created_at, encoding, public, pem })
    }

    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What the issuer reads back from one of its own access tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnAccessToken {
    pub client_id: String,
    pub exp: u64,
    pub jti: String,
}

pub struct KeyStore {
    path: PathBuf,
    lock_path: PathBuf,
    keep_previous: usize,
    keys: RwLock<Vec<std::sync::Arc<SigningKey>>>,
    /// The identity of the key file as last read or written here; a different one on disk
    /// means another instance rotated.
    seen: parking_lot::Mutex<Option<FileStamp>>,
}

/// An exclusive lock on the key directory, held while the key file is created or rotated;
/// released when dropped (the file closes).
struct DirLock(#[allow(dead_code)] File);

impl KeyStore {
    /// Loads the keys in `dir`, generating the first one if there is none. Safe to call
    /// from several processes at once on the same directory: one of them generates.
    pub fn open(dir: &Path, keep_previous: usize) -> Result<Self, KeyError> {
        let store = Self {
            path: dir.join("signing-keys.json"),
            lock_path: dir.join("signing-keys.lock"),
            keep_previous,
            keys: RwLock::new(Vec::new()),
            seen: parking_lot::Mutex::new(None),
        };
        // Fast path: a key file is there (the usual start); no lock needed to read it.
        if store.path.exists() {
            let (keys, at) = store.read()?;
            if !keys.is_empty() {
                store.install(keys, at);
                return Ok(store);
            }
        }
        let _lock = store.lock()?;
        let (keys, at) = store.read()?;
        if keys.is_empty() {
            let new = std::sync::Arc::new(SigningKey::generate()?);
            store.save_and_install(vec![new])?;
        } else {
            store.install(keys, at);
        }
        Ok(store)
    }

    fn lock(&self) -> Result<DirLock, KeyError> {
        let err = |cause| KeyError::Lock { path: self.lock_path.clone(), cause };
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&self.lock_path).map_err(err)?;
        file.lock().map_err(err)?;
        Ok(DirLock(file))
    }

    /// The keys on disk now (none if there is no file yet) and the file's identity.
    fn read(&self) -> Result<(Vec<std::sync::Arc<SigningKey>>, Option<FileStamp>), KeyError> {
        let read_err = |message: String| KeyError::Read { path: self.path.clone(), message };
        // Stamp first: if the file is replaced between the two, the next check reloads.
        let at = stamp(&self.path);
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(e) => return Err(read_err(e.to_string())),
        };
        let stored: StoredKeys = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        let mut keys = Vec::new();
        for k in stored.keys {
            keys.push(std::sync::Arc::new(SigningKey::from_pem(k.private_key_pem, k.created_at, Some(&k.kid))?));
        }
        Ok((keys, at))
    }

    fn install(&self, keys: Vec<std::sync::Arc<SigningKey>>, at: Option<FileStamp>) {
        *self.keys.write() = keys;
        *self.seen.lock() = at;
    }

    /// Reloads the keys if another instance replaced the file since it was last read here.
    /// A stat per call: microseconds, against the milliseconds of the RSA signature or the
    /// network round trip of the JWKS request it precedes, so it is not rate-limited (a
    /// verifier refetching just after a rotation must see the new key at once). A file
    /// that cannot be read keeps the keys already loaded (and is logged).
    fn refresh(&self) {
        let now = stamp(&self.path);
        if now.is_none() || now == *self.seen.lock() {
            return;
        }
        match self.read() {
            Ok((keys, at)) if !keys.is_empty() => {
                let kid = keys[0].kid.clone();
                self.install(keys, at);
                tracing::info!(kid = %kid, "reloaded signing keys changed by another issuer instance");
            }
            Ok(_) => tracing::warn!(path = %self.path.display(), "signing key file is empty; keeping the loaded keys"),
            Err(e) => tracing::warn!(error = %e, "cannot reload the signing keys; keeping the loaded ones"),
        }
    }

    /// Generates a new signing key; the previous ones stay published up to `keep_previous`.
    /// Under the directory lock and from the file as it is now, so a rotation made by
    /// another instance in the meantime is kept as a previous key, not overwritten.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let new = std::sync::Arc::new(SigningKey::generate()?);
        let kid = new.kid.clone();
        let _lock = self.lock()?;
        let (on_disk, _) = self.read()?;
        let current = if on_disk.is_empty() { self.keys.read().clone() } else { on_disk };
        let mut next = vec![new];
        next.extend(current.into_iter().take(self.keep_previous));
        self.save_and_install(next)?;
        Ok(kid)
    }

    fn save_and_install(&self, keys: Vec<std::sync::Arc<SigningKey>>) -> Result<(), KeyError> {
        let stored = StoredKeys {
            keys: keys
                .iter()
                .map(|k| StoredKey { kid: k.kid.clone(), created_at: k.created_at, private_key_pem: k.pem.clone() })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&stored).unwrap_or_default();
        write_private(&self.path, &json)
            .map_err(|source| KeyError::Write { path: self.path.clone(), cause: source })?;
        self.install(keys, stamp(&self.path));
        Ok(())
    }

    /// The key that signs new tokens (the newest, after picking up another instance's
    /// rotation).
    pub fn active(&self) -> std::sync::Arc<SigningKey> {
        self.refresh();
        // `open` guarantees at least one key and nothing installs an empty set.
        self.keys.read()[0].clone()
    }

    /// The client and expiry of `token` if it is a live access token signed by one of these
    /// keys (what `/revoke` needs to tell an access token it cannot revoke from garbage);
    /// `None` for anything else, an expired token included. `now`: epoch seconds.
    pub fn own_access_token(&self, token: &str, now: u64) -> Option<OwnAccessToken> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
        self.refresh();
        let key = self.keys.read().iter().find(|k| k.kid == kid).cloned()?;
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.public).ok()?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        // Only "is it ours, and whose": expiry is checked against the injected clock below,
        // and the audience is whichever resource the token was for.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<OwnAccessToken>(token, &decoding, &validation).ok()?;
        (data.claims.exp > now).then_some(data.claims)
    }

    /// The public JWKS: every published key, public parts only.
    pub fn jwks(&self) -> JwkSet {
        self.refresh();
        JwkSet { keys: self.keys.read().iter().map(|k| k.public.clone()).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_rotation_keeps_the_previous_public_key() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path(), 1).unwrap();
        let first = store.active().kid.clone();
        let reopened = KeyStore::open(dir.path(), 1).unwrap();
        assert_eq!(reopened.active().kid, first);

        let second = reopened.rotate().unwrap();
        assert_ne!(second, first);
        let kids: Vec<_> = reopened.jwks().keys.iter().filter_map(|k| k.common.key_id.clone()).collect();
        assert_eq!(kids, vec![second.clone(), first.clone()]);

        // A second rotation drops the oldest key (keep_previous = 1).
        let third = reopened.rotate().unwrap();
        let kids: Vec<_> = reopened.jwks().keys.iter().filter_map(|k| k.common.key_id.clone()).collect();
        assert_eq!(kids, vec![third, second]);

        let json = serde_json::to_string(&reopened.jwks()).unwrap();
        assert!(!json.contains("\"d\""), "JWKS must hold public keys only: {json}");
    }

    fn kids(store: &KeyStore) -> Vec<String> {
        store.jwks().keys.iter().filter_map(|k| k.common.key_id.clone()).collect()
    }

    /// Two instances sharing a key directory: a rotation by one is what the other signs
    /// with and publishes next, without a restart, and a rotation by the other keeps the
    /// first one's key as the previous key rather than overwriting it.
    #[test]
    fn a_rotation_by_one_instance_reaches_the_others_sharing_the_directory() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let one = KeyStore::open(dir.path(), 1).unwrap();
        let two = KeyStore::open(dir.path(), 1).unwrap();
        let first = one.active().kid.clone();
        assert_eq!(two.active().kid, first);

        let second = one.rotate().unwrap();
        assert_eq!(two.active().kid, second, "instance two signs with the key instance one rotated in");
        assert_eq!(kids(&two), vec![second.clone(), first.clone()]);

        let third = two.rotate().unwrap();
        assert_eq!(kids(&one), vec![third.clone(), second.clone()], "instance one publishes two's rotation");
        assert_eq!(one.active().kid, third);
    }

    /// Instances starting together on an empty directory generate one key between them
    /// (the lock), not one each with the last writer's silently replacing the others'.
    #[test]
    fn instances_starting_together_on_an_empty_directory_agree_on_one_key() {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..4).map(|_| s.spawn(|| KeyStore::open(&path, 1).unwrap().active().kid.clone())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(kids.iter().all(|k| *k == kids[0]), "each instance made its own key: {kids:?}");
        let reopened = KeyStore::open(dir.path(), 1).unwrap();
        assert_eq!(self::kids(&reopened), vec![kids[0].clone()], "exactly one key on disk");
    }
}
