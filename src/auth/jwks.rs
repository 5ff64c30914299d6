//! JWKS cache: signing keys by `kid`, fetched from the issuer's `jwks_uri`.
//!
//! Never fetched per request. Lookups for unknown `kid`s trigger at most
//! `UNKNOWN_KID_BURST` refetches per cooldown, a second apart (so a flood of forged kids
//! cannot turn us into a DoS amplifier against the issuer, yet a key rotated in just after
//! a fetch is picked up at once rather than refused for a whole cooldown), refetches are
//! single-flight, and keys older than `max_age` are refreshed. If a
//! refresh fails, the old keys stay usable for one more `max_age` and then the cache fails
//! closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use parking_lot::RwLock;

use crate::types::time::{self, SharedClock};

/// Largest JWKS document we accept; a real one is a few KB.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Refetches an unknown kid may cause per cooldown window…
const UNKNOWN_KID_BURST: usize = 3;
/// …and at least this far apart (clock ms).
const UNKNOWN_KID_GAP_MS: u64 = 1_000;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwksError {
    #[error("could not fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// The request never got an answer (refused, TLS, timeout): the caller can say what to do.
    #[error("could not fetch {url}: {failure}")]
    Unreachable { url: String, failure: crate::security::tls::NetFailure },
    #[error("the JWKS at {url} is not a valid key set: {reason}")]
    Invalid { url: String, reason: String },
    #[error("no signing key with kid {0:?} in the issuer's JWKS")]
    UnknownKid(String),
    #[error("the JWKS could not be refreshed for too long; refusing to trust stale keys")]
    Stale,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    /// Clock milliseconds of the last successful fetch, and of the last attempt.
    fetched_at: Option<u64>,
    last_attempt: Option<u64>,
    /// Clock milliseconds of the most recent attempts (at most `UNKNOWN_KID_BURST`).
    recent_attempts: std::collections::VecDeque<u64>,
    /// Why the last attempt failed (returned while no keys were ever fetched).
    last_error: Option<JwksError>,
}

/// Where keys come from: an HTTPS `jwks_uri`, or a fixed set (tests, pinned keys).
enum Source {
    Url { client: reqwest::Client, url: String },
    Fixed,
}

pub struct JwksCache {
    source: Source,
    keys: RwLock<Keys>,
    refetch: tokio::sync::Mutex<()>,
    cooldown: Duration,
    max_age: Duration,
    clock: SharedClock,
}

impl JwksCache {
    pub fn from_url(client: reqwest::Client, url: impl Into<String>) -> Self {
        Self {
            source: Source::Url { client, url: url.into() },
            keys: RwLock::new(Keys::default()),
            refetch: tokio::sync::Mutex::new(()),
            cooldown: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
            clock: time::system(),
        }
    }

    /// This cache, reading time from `clock` (tests move a manual one).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How long since `t` (clock ms), saturating if the clock stepped back.
    fn since(&self, t: u64) -> Duration {
        Duration::from_millis(self.clock.now_ms().saturating_sub(t))
    }

    /// A cache over a fixed key set that is never refetched.
    pub fn fixed(set: &JwkSet) -> Self {
        let cache = Self {
            source: Source::Fixed,
            keys: RwLock::new(Keys::default()),
            refetch: tokio::sync::Mutex::new(()),
            cooldown: Duration::MAX,
            max_age: Duration::MAX,
            clock: time::system(),
        };
        cache.install(usable_keys(set));
        cache
    }

    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    pub fn url(&self) -> Option<&str> {
        match &self.source {
            Source::Url { url, .. } => Some(url),
            Source::Fixed => None,
        }
    }

    /// Fetches the key set now. Used at start-up so a service never runs without keys.
    pub async fn refresh(&self) -> Result<usize, JwksError> {
        let _guard = self.refetch.lock().await;
        self.fetch_and_install().await
    }

    /// The key for `kid`, refetching the set if the kid is unknown (cooldown permitting)
    /// or the cached set is older than `max_age`.
    pub async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, JwksError> {
        if let Some(found) = self.lookup_fresh(kid) {
            return found;
        }
        let _guard = self.refetch.lock().await;
        // Another task may have refetched while we waited for the lock.
        if let Some(found) = self.lookup_fresh(kid) {
            return found;
        }
        // The cooldown holds for stale keys too: with the issuer down, every uncached
        // verification would otherwise wait on this lock and refetch. An unknown kid in a
        // fresh set gets the small burst instead.
        let may_fetch = {
            let k = self.keys.read();
            if self.is_stale(&k) {
                k.last_attempt.is_none_or(|t| self.since(t) >= self.cooldown)
            } else {
                self.may_refetch_for_unknown_kid(&k)
            }
        };
        if may_fetch && let Err(e) = self.fetch_and_install().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
            self.keys.write().last_error = Some(e);
        }
        let k = self.keys.read();
        // Stale keys keep working up to a hard age (twice the max age), then fail closed.
        if k.fetched_at.is_none_or(|t| self.since(t) > self.max_age.saturating_mul(2)) {
            return Err(if k.by_kid.is_empty() {
                k.last_error.clone().unwrap_or(JwksError::Stale)
            } else {
                JwksError::Stale
            });
        }
        k.by_kid.get(kid).cloned().ok_or_else(|| JwksError::UnknownKid(truncate(kid)))
    }

    /// Whether an unknown kid may cause a refetch now: fewer than `UNKNOWN_KID_BURST`
    /// attempts inside the cooldown window, the last one at least a second ago.
    fn may_refetch_for_unknown_kid(&self, k: &Keys) -> bool {
        let within = k.recent_attempts.iter().filter(|t| self.since(**t) < self.cooldown).count();
        let gap_ok = k.last_attempt.is_none_or(|t| self.since(t) >= Duration::from_millis(UNKNOWN_KID_GAP_MS));
        within < UNKNOWN_KID_BURST && gap_ok
    }

    fn is_stale(&self, k: &Keys) -> bool {
        matches!(self.source, Source::Url { .. }) && k.fetched_at.is_none_or(|t| self.since(t) > self.max_age)
    }

    /// `Some` when the cache can answer without a fetch: a fresh hit, or a known-unknown
    /// kid still inside the cooldown.
    fn lookup_fresh(&self, kid: &str) -> Option<Result<Arc<DecodingKey>, JwksError>> {
        let k = self.keys.read();
        if self.is_stale(&k) {
            return None;
        }
        match k.by_kid.get(kid) {
            Some(key) => Some(Ok(key.clone())),
            None if !self.may_refetch_for_unknown_kid(&k) => Some(Err(JwksError::UnknownKid(truncate(kid)))),
            None if matches!(self.source, Source::Fixed) => Some(Err(JwksError::UnknownKid(truncate(kid)))),
            None => None,
        }
    }

    async fn fetch_and_install(&self) -> Result<usize, JwksError> {
        let Source::Url { client, url } = &self.source else {
            return Ok(self.keys.read().by_kid.len());
        };
        {
            let now = self.clock.now_ms();
            let mut k = self.keys.write();
            k.last_attempt = Some(now);
            k.recent_attempts.push_back(now);
            while k.recent_attempts.len() > UNKNOWN_KID_BURST {
                k.recent_attempts.pop_front();
            }
        }
        let fetch_err = |reason: String| JwksError::Fetch { url: url.clone(), reason };
        let resp = client.get(url).send().await.map_err(|e| JwksError::Unreachable {
            url: url.clone(),
            failure: crate::security::tls::NetFailure::of(&e),
        })?;
        if !resp.status().is_success() {
            return Err(fetch_err(format!("HTTP {}", resp.status())));
        }
        let body = read_bounded(resp, MAX_JWKS_BYTES).await.map_err(fetch_err)?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| JwksError::Invalid { url: url.clone(), reason: e.to_string() })?;
        let keys = usable_keys(&set);
        if keys.is_empty() {
            return Err(JwksError::Invalid { url: url.clone(), reason: "no RS256 signing keys with a kid".into() });
        }
        let n = keys.len();
        self.install(keys);
        Ok(n)
    }

    fn install(&self, keys: HashMap<String, Arc<DecodingKey>>) {
        let mut k = self.keys.write();
        k.by_kid = keys;
        k.fetched_at = Some(self.clock.now_ms());
        k.last_error = None;
    }
}

/// RSA signature keys with a `kid` whose declared algorithm (if any) is RS256.
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
    set.keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter(|jwk| jwk.common.key_algorithm.is_none_or(|a| a == KeyAlgorithm::RS256))
        .filter(|jwk| jwk.common.public_key_use.as_ref().is_none_or(|u| *u == PublicKeyUse::Signature))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}

/// Reads a response body, refusing anything larger than `limit` bytes.
pub async fn read_bounded(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(format!("response larger than {limit} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("response larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Kids come from attackers; what we echo into errors and logs is escaped and short.
fn truncate(s: &str) -> String {
    crate::security::untrusted::for_log(s)
}
