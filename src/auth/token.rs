//! The client's token manager: OAuth 2.1 client credentials, verified before use, cached,
//! refreshed 60 s before `exp` (single-flight), and re-granted on demand with another
//! scope set.
//!
//! The token string lives only in `Held::token` and leaves this module only through
//! `bearer()`, which feeds the Authorization header. Everything else sees `TokenInfo`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::Deserialize;

use super::jwks::read_bounded;
use super::verify::{VerifiedClaims, Verifier, VerifyError};
use crate::types::event::{EventBus, EventKind, RefreshReason, Scope as EventScope, TokenInfo};
use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;

/// Refresh this long before `exp`, so a token never expires mid-run.
pub const REFRESH_SKEW_SECS: i64 = 60;
/// After a failed early refresh, the next attempt waits this long (clock ms) while the held
/// token is still valid.
const REFRESH_RETRY_MS: u64 = 5_000;
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token endpoint {endpoint} returned {error}{}: {hint}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { endpoint: String, error: String, description: Option<String>, hint: &'static str },
    #[error(
        "could not reach the token endpoint {endpoint}: {failure}; check that the authorization server is running and reachable from here"
    )]
    Unreachable { endpoint: String, failure: crate::security::tls::NetFailure },
    #[error("token endpoint {endpoint} sent an unusable response: {reason}")]
    BadResponse { endpoint: String, reason: String },
    #[error("the authorization server issued a token that failed verification ({0}); it was not used")]
    Rejected(VerifyError),
}

impl TokenError {
    /// True for credential problems (exit code "auth failure"), as opposed to transport.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::Rejected(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

/// Where and as whom to get tokens.
#[derive(Debug, Clone)]
pub struct TokenSource {
    pub token_endpoint: String,
    pub client_id: String,
    pub client_secret: Secret<String>,
    /// RFC 8707 resource (the MCP server's resource URI); becomes the token's `aud`.
    pub resource: String,
    pub auth: ClientAuth,
}

struct Held {
    token: Secret<String>,
    claims: Arc<VerifiedClaims>,
    requested: Option<ScopeSet>,
}

pub struct TokenManager {
    http: reqwest::Client,
    source: TokenSource,
    verifier: Verifier,
    requested: RwLock<Option<ScopeSet>>,
    held: RwLock<Option<Arc<Held>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    refreshes: AtomicU32,
    /// When (clock ms) the last refresh failed without a refusal; 0: never.
    last_failure_ms: AtomicU64,
    events: EventBus,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

impl TokenManager {
    pub fn new(
        http: reqwest::Client,
        source: TokenSource,
        verifier: Verifier,
        scopes: Option<ScopeSet>,
        events: EventBus,
    ) -> Self {
        Self {
            http,
            source,
            verifier,
            requested: RwLock::new(scopes),
            held: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            refreshes: AtomicU32::new(0),
            last_failure_ms: AtomicU64::new(0),
            events,
        }
    }

    /// Claims of a valid token with more than the refresh skew left, fetching or
    /// refreshing one if needed. Concurrent callers share a single refresh.
    pub async fn claims(&self) -> Result<Arc<VerifiedClaims>, TokenError> {
        let seen = self.generation.load(Ordering::Acquire);
        if let Some(h) = self.fresh() {
            return Ok(h.claims.clone());
        }
        // The authorization server failed us a moment ago: a token that has not expired
        // yet keeps working without another attempt per call (no storm, no added latency).
        let now_ms = self.events.clock().now_ms();
        let failed_at = self.last_failure_ms.load(Ordering::Acquire);
        if failed_at != 0
            && now_ms.saturating_sub(failed_at) < REFRESH_RETRY_MS
            && let Some(h) = self.unexpired()
        {
            return Ok(h.claims.clone());
        }
        let reason = if self.held.read().is_some() { RefreshReason::Expiring } else { RefreshReason::Initial };
        match self.refresh_after(seen, reason).await {
            Ok(c) => Ok(c),
            // Unreachable or garbled, not refused: an early refresh that failed is no reason
            // to stop using a token that is still valid. (A refusal is: the credentials or
            // grant changed.)
            Err(e) if !e.is_auth() => {
                self.last_failure_ms.store(now_ms.max(1), Ordering::Release);
                self.unexpired().map(|h| h.claims.clone()).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The held token if it has not expired yet (inside the refresh skew or not).
    fn unexpired(&self) -> Option<Arc<Held>> {
        let now = self.events.clock().now_epoch();
        self.held.read().as_ref().filter(|h| h.claims.seconds_to_expiry(now) > 0).cloned()
    }

    /// The current token, for the Authorization header and nothing else. No network, no refresh:
    /// callers that need a fresh token call `claims()` first.
    pub fn bearer(&self) -> Option<String> {
        self.held.read().as_ref().map(|h| h.token.expose().clone())
    }

    /// Replaces the token after the server rejected it (401). Single-flight: if another
    /// caller already replaced the token we saw, its result is used.
    pub async fn refresh_rejected(&self, rejected: &VerifiedClaims) -> Result<Arc<VerifiedClaims>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        if let Some(h) = self.held.read().as_ref()
            && h.claims.jti != rejected.jti
        {
            return Ok(h.claims.clone());
        }
        self.fetch(RefreshReason::Unauthorized).await
    }

    /// Asks for a different scope set (`None`: the client's defaults) and fetches a new
    /// token now, so the caller sees the grant or the refusal immediately.
    pub async fn regrant(&self, scopes: Option<ScopeSet>) -> Result<Arc<VerifiedClaims>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        *self.requested.write() = scopes;
        self.fetch(RefreshReason::Regrant).await
    }

    /// The token's state as data (`None` before the first token).
    pub fn info(&self) -> Option<TokenInfo> {
        self.held.read().as_ref().map(|h| self.info_of(h))
    }

    pub fn requested(&self) -> Option<ScopeSet> {
        self.requested.read().clone()
    }

    pub fn resource(&self) -> &str {
        &self.source.resource
    }

    fn fresh(&self) -> Option<Arc<Held>> {
        let now = self.events.clock().now_epoch();
        self.held.read().as_ref().filter(|h| h.claims.seconds_to_expiry(now) > REFRESH_SKEW_SECS).cloned()
    }

    async fn refresh_after(&self, seen: u64, reason: RefreshReason) -> Result<Arc<VerifiedClaims>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(h) = self.fresh()
        {
            return Ok(h.claims.clone());
        }
        self.fetch(reason).await
    }

    /// One token request, verified before it replaces the held token. Call with
    /// `refresh_lock` held.
    async fn fetch(&self, reason: RefreshReason) -> Result<Arc<VerifiedClaims>, TokenError> {
        let requested = self.requested.read().clone();
        let result = self.request(requested.as_ref()).await;
        let token = match result {
            Ok(t) => t,
            Err(e) => {
                self.events.emit(&EventScope::default(), EventKind::TokenError { detail: e.to_string() });
                return Err(e);
            }
        };
        let claims = match self.verifier.verify(&token).await {
            Ok(c) => c,
            Err(e) => {
                self.events
                    .emit(&EventScope::default(), EventKind::TokenRejected { check: e.code(), detail: e.to_string() });
                return Err(TokenError::Rejected(e));
            }
        };
        let held = Arc::new(Held { token: Secret::new(token), claims: claims.clone(), requested });
        if reason != RefreshReason::Initial {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
        }
        let info = self.info_of(&held);
        *self.held.write() = Some(held);
        self.generation.fetch_add(1, Ordering::Release);
        tracing::info!(fingerprint = %claims.fingerprint, scope = %claims.scope, ?reason, "access token obtained");
        self.events.emit(&EventScope::default(), EventKind::TokenIssued { token: info, reason });
        Ok(claims)
    }

    async fn request(&self, scopes: Option<&ScopeSet>) -> Result<String, TokenError> {
        let endpoint = &self.source.token_endpoint;
        let mut form: Vec<(&str, String)> =
            vec![("grant_type", "client_credentials".into()), ("resource", self.source.resource.clone())];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.to_string()));
        }
        let mut req = self.http.post(endpoint);
        match self.source.auth {
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
                let enc = |s: &str| {
                    serde_urlencoded::to_string([("", s)]).unwrap_or_default().trim_start_matches('=').to_string()
                };
                req = req.basic_auth(enc(&self.source.client_id), Some(enc(self.source.client_secret.expose())));
            }
            ClientAuth::Post => {
                form.push(("client_id", self.source.client_id.clone()));
                form.push(("client_secret", self.source.client_secret.expose().clone()));
            }
        }
        let resp = req.form(&form).send().await.map_err(|e| TokenError::Unreachable {
            endpoint: endpoint.clone(),
            failure: crate::security::tls::NetFailure::of(&e),
        })?;
        let status = resp.status();
        let body = read_bounded(resp, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|reason| TokenError::BadResponse { endpoint: endpoint.clone(), reason })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
                Ok(e) => TokenError::Refused {
                    endpoint: endpoint.clone(),
                    hint: hint_for(&e.error),
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => TokenError::BadResponse { endpoint: endpoint.clone(), reason: format!("HTTP {status}") },
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| TokenError::BadResponse { endpoint: endpoint.clone(), reason: e.to_string() })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::BadResponse {
                endpoint: endpoint.clone(),
                reason: format!("token_type {:?} is not Bearer", parsed.token_type),
            });
        }
        Ok(parsed.access_token)
    }

    fn info_of(&self, h: &Held) -> TokenInfo {
        let c = &h.claims;
        TokenInfo {
            issuer: c.iss.clone(),
            subject: c.sub.clone(),
            client_id: c.client_id.clone(),
            audience: c.aud.to_vec(),
            kid: c.kid.clone(),
            alg: c.alg.clone(),
            fingerprint: c.fingerprint.clone(),
            requested: h.requested.clone(),
            granted: c.scope.clone(),
            issued_at: c.iat,
            expires_at: c.exp,
            jti: c.jti.clone(),
            verified: true,
            refresh_count: self.refreshes.load(Ordering::Relaxed),
        }
    }
}

/// What to do about each RFC 6749 error.
fn hint_for(error: &str) -> &'static str {
    match error {
        "invalid_client" => "check client_id and client_secret in the [client] section of your config",
        "invalid_scope" => "request only scopes this client is registered for (--scopes)",
        "invalid_target" => "the authorization server does not know this resource; check the server URL/resource",
        "unauthorized_client" | "unsupported_grant_type" => "the client is not allowed the client_credentials grant",
        _ => "see the authorization server's logs",
    }
}
