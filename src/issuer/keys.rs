//! The issuer's RS256 signing keys.
//!
//! Keys live in `STATE/issuer/signing-keys.json` (mode 0600), newest first. The newest
//! signs; previous ones (up to `keep_previous`) stay published in the JWKS after a rotation
//! so that tokens signed a moment ago still verify until they expire. A key's `kid` is its
//! RFC 7638 JWK thumbprint.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use base64::{Engine, engine::general_purpose::STANDARD};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::paths::write_private;

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
    keep_previous: usize,
    keys: RwLock<Vec<std::sync::Arc<SigningKey>>>,
}

impl KeyStore {
    /// Loads the keys in `dir`, generating the first one if there is none.
    pub fn open(dir: &Path, keep_previous: usize) -> Result<Self, KeyError> {
        let path = dir.join("signing-keys.json");
        let mut keys = Vec::new();
        if path.exists() {
            let read_err = |message: String| KeyError::Read { path: path.clone(), message };
            let text = std::fs::read_to_string(&path).map_err(|e| read_err(e.to_string()))?;
            let stored: StoredKeys = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
            for k in stored.keys {
                keys.push(std::sync::Arc::new(SigningKey::from_pem(k.private_key_pem, k.created_at, Some(&k.kid))?));
            }
        }
        let store = Self { path, keep_previous, keys: RwLock::new(keys) };
        if store.keys.read().is_empty() {
            store.rotate()?;
        }
        Ok(store)
    }

    /// Generates a new signing key; the previous ones stay published up to `keep_previous`.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let new = std::sync::Arc::new(SigningKey::generate()?);
        let kid = new.kid.clone();
        let mut keys = self.keys.write();
        let mut next = vec![new];
        next.extend(keys.iter().take(self.keep_previous).cloned());
        self.save(&next)?;
        *keys = next;
        Ok(kid)
    }

    fn save(&self, keys: &[std::sync::Arc<SigningKey>]) -> Result<(), KeyError> {
        let stored = StoredKeys {
            keys: keys
                .iter()
                .map(|k| StoredKey { kid: k.kid.clone(), created_at: k.created_at, private_key_pem: k.pem.clone() })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&stored).unwrap_or_default();
        write_private(&self.path, &json).map_err(|source| KeyError::Write { path: self.path.clone(), cause: source })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> std::sync::Arc<SigningKey> {
        // `open` guarantees at least one key and nothing removes the last one.
        self.keys.read()[0].clone()
    }

    /// The client and expiry of `token` if it is a live access token signed by one of these
    /// keys (what `/revoke` needs to tell an access token it cannot revoke from garbage);
    /// `None` for anything else, an expired token included. `now`: epoch seconds.
    pub fn own_access_token(&self, token: &str, now: u64) -> Option<OwnAccessToken> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let kid = header.kid?;
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
}
