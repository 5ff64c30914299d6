//! The client's token manager: OAuth 2.1 client credentials, cached, refreshed 60 s before
//! expiry (single-flight), and re-granted on demand with another scope set.
//!
//! What the client knows about a token it holds is a `TokenState`: a JWT is verified
//! against the issuer's JWKS before use (and refused, naming the failed check, if that
//! fails); a token that is not a JWT, or one from an issuer that publishes no keys, is used
//! as it is ("opaque: the server decides"), and, when the authorization server offers RFC
//! 7662 introspection, described by it once per token. Expiry comes from `exp`, the
//! introspected `exp`, or the token response's `expires_in`.
//!
//! The token string lives only in `Held::token` and leaves this module only through
//! `bearer()`, which feeds the Authorization header. Everything else sees `Grant`/`TokenInfo`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use parking_lot::RwLock;
use serde::Deserialize;

use super::client_auth::{ClientAuthError, ClientAuthenticator};
use super::jwks::read_bounded;
use super::verify::{VerifiedClaims, Verifier, VerifyError};
use crate::types::event::{
    EventBus, EventKind, Introspection, OpaqueReason, RefreshReason, Scope as EventScope, ScopeOrigin, TokenInfo,
    TokenState, VerifiedToken,
};
use crate::types::scope::ScopeSet;
use crate::types::secret::{Fingerprint, Secret};

/// Refresh this long before expiry, so a token never expires mid-run.
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
    /// The request could not be authenticated (the key failed to sign): nothing was sent.
    #[error("no token requested from {endpoint}: {cause}")]
    ClientAuth { endpoint: String, cause: ClientAuthError },
    #[error(
        "the authorization server's introspection endpoint {endpoint} says the token it just issued is not active; it was not used (see the authorization server's logs)"
    )]
    Inactive { endpoint: String },
    /// The authorization-code login could not finish (refused, state mismatch, no redirect).
    #[error("{0}")]
    Login(#[from] super::authcode::LoginError),
}

impl TokenError {
    /// True for credential problems (exit code "auth failure"), as opposed to transport.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Refused { .. } | Self::Rejected(_) | Self::Inactive { .. })
            || matches!(self, Self::Login(e) if e.is_auth())
    }
}

/// Where and as whom to get tokens.
#[derive(Debug, Clone)]
pub struct TokenSource {
    pub token_endpoint: String,
    /// RFC 8707 resource (the MCP server's resource URI); becomes the token's `aud`.
    pub resource: String,
    /// The client and how it authenticates at the token endpoint (`auth::client_auth`).
    pub auth: ClientAuthenticator,
    /// Enterprise-managed authorization: the JWT bearer grant with an identity assertion
    /// from the identity provider instead of the client credentials grant.
    pub assertion: Option<super::assertion::IdentityAssertion>,
}

/// What the client knows about the token it holds: the scopes it acts on, its lifetime, and
/// how it knows (`state`). `claims` is there only for a locally verified JWT.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// The scopes the client's pre-check assumes (see `missing`).
    pub scope: ScopeSet,
    pub fingerprint: Fingerprint,
    /// `iat`, or when the token response arrived.
    pub issued_at: u64,
    /// `None`: the server gave no lifetime; the token is used until the server refuses it.
    pub expires_at: Option<u64>,
    pub state: TokenState,
    pub claims: Option<Arc<VerifiedClaims>>,
}

impl Grant {
    /// Seconds left; `None` when no lifetime is known.
    pub fn seconds_to_expiry(&self, now: u64) -> Option<i64> {
        self.expires_at.map(|at| at as i64 - now as i64)
    }

    /// Scopes of `required` the client knows it lacks. Empty when the scopes are unknown
    /// (an opaque token without `scope`, client defaults asked): the server decides.
    pub fn missing(&self, required: &ScopeSet) -> ScopeSet {
        match self.state {
            TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. } => ScopeSet::new(),
            _ => self.scope.missing(required),
        }
    }
}

struct Held {
    token: Secret<String>,
    grant: Arc<Grant>,
    requested: Option<ScopeSet>,
}

/// How the client checks the tokens it gets.
pub enum Verification {
    /// Verify JWTs against the issuer's JWKS; a token that is not a JWT is opaque.
    Jwks(Box<Verifier>),
    /// The issuer publishes no keys: every token is opaque.
    NoJwks,
}

pub struct TokenManager {
    http: reqwest::Client,
    source: TokenSource,
    verification: Verification,
    /// RFC 7662 endpoint from the AS metadata; cleared (with `introspection_refused`) after
    /// a 401/403, so the refusal is reported once, not on every refresh.
    introspection: Option<String>,
    introspection_refused: AtomicBool,
    requested: RwLock<Option<ScopeSet>>,
    held: RwLock<Option<Arc<Held>>>,
    refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    refreshes: AtomicU32,
    /// When (clock ms) the last refresh failed without a refusal; 0: never.
    last_failure_ms: AtomicU64,
    events: EventBus,
    /// The MCP server the tokens are for, named on every token event (a console shows a
    /// token per server).
    server: Option<String>,
    /// Tokens come from an authorization-code login (with its refresh token) instead of
    /// the client credentials grant.
    login: Option<Arc<super::authcode::CodeLogin>>,
}

/// RFC 6749 §5.1, the fields the client reads. `refresh_token` is only ever handed to the
/// authorization-code login (`super::authcode`), which keeps it (sealed at rest).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<Secret<String>>,
}

/// RFC 7662 §2.2 response (the fields shown; the rest is ignored).
#[derive(Deserialize)]
struct IntrospectionResponse {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

/// How introspection went for one token.
enum Introspected {
    Described(Introspection),
    /// 401/403: this client may not introspect.
    NotAllowed(String),
    Failed(String),
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
        verification: Verification,
        scopes: Option<ScopeSet>,
        events: EventBus,
    ) -> Self {
        Self {
            http,
            source,
            verification,
            introspection: None,
            introspection_refused: AtomicBool::new(false),
            requested: RwLock::new(scopes),
            held: RwLock::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            refreshes: AtomicU32::new(0),
            last_failure_ms: AtomicU64::new(0),
            events,
            server: None,
            login: None,
        }
    }

    /// Gets tokens from `login` (authorization code + PKCE, then its refresh token) instead
    /// of the client credentials grant.
    pub fn with_login(mut self, login: Arc<super::authcode::CodeLogin>) -> Self {
        self.login = Some(login);
        self
    }

    /// The authorization-code login behind these tokens, if any (step-up needs it).
    pub fn login(&self) -> Option<&Arc<super::authcode::CodeLogin>> {
        self.login.as_ref()
    }

    /// Names the MCP server these tokens are for on the events they raise.
    pub fn for_server(mut self, name: &str) -> Self {
        self.server = Some(name.to_string());
        self
    }

    /// The MCP server these tokens are for, if named.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// Describes opaque tokens with the AS's RFC 7662 introspection endpoint, once per
    /// token, authenticating as this client.
    pub fn with_introspection(mut self, endpoint: Option<String>) -> Self {
        self.introspection = endpoint;
        self
    }

    /// The grant of a valid token with more than the refresh skew left, fetching or
    /// refreshing one if needed. Concurrent callers share a single refresh.
    pub async fn claims(&self) -> Result<Arc<Grant>, TokenError> {
        let seen = self.generation.load(Ordering::Acquire);
        if let Some(h) = self.fresh() {
            return Ok(h.grant.clone());
        }
        // The authorization server failed us a moment ago: a token that has not expired
        // yet keeps working without another attempt per call (no storm, no added latency).
        let now_ms = self.events.clock().now_ms();
        let failed_at = self.last_failure_ms.load(Ordering::Acquire);
        if failed_at != 0
            && now_ms.saturating_sub(failed_at) < REFRESH_RETRY_MS
            && let Some(h) = self.unexpired()
        {
            return Ok(h.grant.clone());
        }
        let reason = if self.held.read().is_some() { RefreshReason::Expiring } else { RefreshReason::Initial };
        match self.refresh_after(seen, reason).await {
            Ok(c) => Ok(c),
            // Unreachable or garbled, not refused: an early refresh that failed is no reason
            // to stop using a token that is still valid. (A refusal is: the credentials or
            // grant changed.)
            Err(e) if !e.is_auth() => {
                self.last_failure_ms.store(now_ms.max(1), Ordering::Release);
                self.unexpired().map(|h| h.grant.clone()).ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The held token if it has not expired yet (inside the refresh skew or not). A token
    /// without a known lifetime counts as unexpired: the server says when it is not.
    fn unexpired(&self) -> Option<Arc<Held>> {
        let now = self.events.clock().now_epoch();
        self.held.read().as_ref().filter(|h| h.grant.seconds_to_expiry(now).is_none_or(|s| s > 0)).cloned()
    }

    /// The current token, for the Authorization header and nothing else. No network, no refresh:
    /// callers that need a fresh token call `claims()` first.
    pub fn bearer(&self) -> Option<String> {
        self.held.read().as_ref().map(|h| h.token.expose().clone())
    }

    /// Replaces the token after the server rejected it (401). Single-flight: if another
    /// caller already replaced the token we saw, its result is used.
    pub async fn refresh_rejected(&self, rejected: &Grant) -> Result<Arc<Grant>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        if let Some(h) = self.held.read().as_ref()
            && h.grant.fingerprint != rejected.fingerprint
        {
            return Ok(h.grant.clone());
        }
        self.fetch(RefreshReason::Unauthorized).await
    }

    /// Asks for a different scope set (`None`: the client's defaults) and fetches a new
    /// token now, so the caller sees the grant or the refusal immediately.
    pub async fn regrant(&self, scopes: Option<ScopeSet>) -> Result<Arc<Grant>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        *self.requested.write() = scopes;
        self.fetch(RefreshReason::Regrant).await
    }

    /// Like [`Self::regrant`], for a step-up after 403 insufficient_scope (the token event
    /// says so, so the console's history tells it from an operator's re-grant).
    pub async fn step_up(&self, scopes: ScopeSet) -> Result<Arc<Grant>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        *self.requested.write() = Some(scopes);
        self.fetch(RefreshReason::StepUp).await
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
        self.held
            .read()
            .as_ref()
            .filter(|h| h.grant.seconds_to_expiry(now).is_none_or(|s| s > REFRESH_SKEW_SECS))
            .cloned()
    }

    async fn refresh_after(&self, seen: u64, reason: RefreshReason) -> Result<Arc<Grant>, TokenError> {
        let _guard = self.refresh_lock.lock().await;
        if self.generation.load(Ordering::Acquire) != seen
            && let Some(h) = self.fresh()
        {
            return Ok(h.grant.clone());
        }
        self.fetch(reason).await
    }

    /// One token request, checked (verified, or introspected, or taken as opaque) before it
    /// replaces the held token. Call with `refresh_lock` held.
    async fn fetch(&self, reason: RefreshReason) -> Result<Arc<Grant>, TokenError> {
        let requested = self.requested.read().clone();
        let result = self.request(requested.as_ref(), reason).await;
        let response = match result {
            Ok(t) => t,
            Err(e) => {
                self.events.emit(
                    &EventScope::default(),
                    EventKind::TokenError { detail: e.to_string(), server: self.server.clone() },
                );
                return Err(e);
            }
        };
        let grant = match self.check(&response, requested.as_ref()).await {
            Ok(g) => Arc::new(g),
            Err(e) => {
                let kind = match &e {
                    TokenError::Rejected(v) => {
                        EventKind::TokenRejected { check: v.code(), detail: v.to_string(), server: self.server.clone() }
                    }
                    e => EventKind::TokenError { detail: e.to_string(), server: self.server.clone() },
                };
                self.events.emit(&EventScope::default(), kind);
                return Err(e);
            }
        };
        let held = Arc::new(Held { token: Secret::new(response.access_token), grant: grant.clone(), requested });
        if reason != RefreshReason::Initial {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
        }
        let info = self.info_of(&held);
        *self.held.write() = Some(held);
        self.generation.fetch_add(1, Ordering::Release);
        tracing::info!(fingerprint = %grant.fingerprint, scope = %grant.scope, ?reason, "access token obtained");
        self.events
            .emit(&EventScope::default(), EventKind::TokenIssued { token: info, reason, server: self.server.clone() });
        Ok(grant)
    }

    /// What the client can know about a new token: verified claims for a JWT it has keys
    /// for, else what the token response (and introspection, if offered) says.
    async fn check(&self, response: &TokenResponse, requested: Option<&ScopeSet>) -> Result<Grant, TokenError> {
        let token = &response.access_token;
        let fingerprint = Fingerprint::of(token.as_bytes());
        let why = match &self.verification {
            Verification::Jwks(verifier) if looks_like_jws(token) => {
                let c = verifier.verify(token).await.map_err(TokenError::Rejected)?;
                return Ok(Grant {
                    scope: c.scope.clone(),
                    fingerprint: c.fingerprint.clone(),
                    issued_at: c.iat,
                    expires_at: Some(c.exp),
                    state: TokenState::Verified(VerifiedToken {
                        issuer: c.iss.clone(),
                        subject: c.sub.clone(),
                        client_id: c.client_id.clone(),
                        audience: c.aud.to_vec(),
                        kid: c.kid.clone(),
                        alg: c.alg.clone(),
                        jti: c.jti.clone(),
                    }),
                    claims: Some(c),
                });
            }
            Verification::Jwks(_) => OpaqueReason::NotJwt,
            Verification::NoJwks => OpaqueReason::NoJwks,
        };
        let now = self.events.clock().now_epoch();
        let expires_at = response.expires_in.map(|s| now.saturating_add(s));
        // RFC 6749 §5.1: `scope` is omitted when the grant is what was asked for, so the
        // requested set is the best guess, and said to be one.
        let (scope, origin) = match (response.scope.as_deref().map(ScopeSet::parse), requested) {
            (Some(Ok(s)), _) => (s, ScopeOrigin::TokenResponse),
            (Some(Err(e)), _) => {
                return Err(TokenError::BadResponse {
                    endpoint: self.source.token_endpoint.clone(),
                    reason: format!("its scope is not a list of scopes: {e}"),
                });
            }
            (None, Some(r)) if !r.is_empty() => (r.clone(), ScopeOrigin::RequestedNotConfirmed),
            (None, _) => (ScopeSet::new(), ScopeOrigin::Unknown),
        };
        let opaque = |note: Option<String>| Grant {
            scope: scope.clone(),
            fingerprint: fingerprint.clone(),
            issued_at: now,
            expires_at,
            state: TokenState::Opaque { why, scopes: origin, introspection: note },
            claims: None,
        };
        let Some(endpoint) =
            self.introspection.as_deref().filter(|_| !self.introspection_refused.load(Ordering::Acquire))
        else {
            return Ok(opaque(None));
        };
        match self.introspect(endpoint, token).await {
            Introspected::Described(i) if !i.active => Err(TokenError::Inactive { endpoint: endpoint.to_string() }),
            Introspected::Described(i) => Ok(Grant {
                scope: i.scope.clone().unwrap_or(scope.clone()),
                fingerprint,
                issued_at: now,
                expires_at: i.exp.or(expires_at),
                state: TokenState::Introspected(i),
                claims: None,
            }),
            Introspected::NotAllowed(note) => {
                // Said once: later tokens are not introspected, and show no note.
                self.introspection_refused.store(true, Ordering::Release);
                tracing::warn!(endpoint, "{note}");
                Ok(opaque(Some(note)))
            }
            Introspected::Failed(note) => {
                tracing::warn!(endpoint, "{note}");
                Ok(opaque(Some(note)))
            }
        }
    }

    /// RFC 7662 §2.1: POST the token, authenticated as this client.
    async fn introspect(&self, endpoint: &str, token: &str) -> Introspected {
        let form = vec![("token", token.to_string()), ("token_type_hint", "access_token".into())];
        let req = match self.authenticated(endpoint, form) {
            Ok(r) => r,
            Err(e) => return Introspected::Failed(format!("introspection at {endpoint} not attempted: {e}")),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Introspected::Failed(format!(
                    "introspection at {endpoint} failed ({}); the token is used as it is",
                    crate::security::tls::NetFailure::of(&e)
                ));
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Introspected::NotAllowed(format!(
                "introspection not allowed for this client (HTTP {}); the server decides",
                status.as_u16()
            ));
        }
        let body = match read_bounded(resp, MAX_TOKEN_RESPONSE).await {
            Ok(b) if status.is_success() => b,
            Ok(_) => return Introspected::Failed(format!("introspection at {endpoint} answered HTTP {status}")),
            Err(reason) => return Introspected::Failed(format!("introspection at {endpoint} failed: {reason}")),
        };
        let parsed: IntrospectionResponse = match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return Introspected::Failed(format!("introspection at {endpoint} sent an unusable answer: {e}")),
        };
        let scope = match parsed.scope.as_deref().map(ScopeSet::parse).transpose() {
            Ok(s) => s,
            Err(e) => return Introspected::Failed(format!("introspection at {endpoint} named no valid scopes: {e}")),
        };
        Introspected::Described(Introspection {
            active: parsed.active,
            scope,
            exp: parsed.exp,
            client_id: parsed.client_id,
            sub: parsed.sub,
        })
    }

    /// A POST to `url` with this client's credentials (`auth::client_auth`) and `form`.
    fn authenticated(
        &self,
        url: &str,
        form: Vec<(&'static str, String)>,
    ) -> Result<reqwest::RequestBuilder, ClientAuthError> {
        self.source.auth.apply(self.http.post(url), form, self.events.clock().now_epoch())
    }

    async fn request(&self, scopes: Option<&ScopeSet>, reason: RefreshReason) -> Result<TokenResponse, TokenError> {
        if let Some(login) = &self.login {
            return login.token(scopes, reason == RefreshReason::Initial).await;
        }
        let endpoint = &self.source.token_endpoint;
        if let Some(assertion) = &self.source.assertion {
            let now = self.events.clock().now_epoch();
            return assertion.token(&self.http, endpoint, &self.source.auth, &self.source.resource, scopes, now).await;
        }
        let mut form: Vec<(&str, String)> =
            vec![("grant_type", "client_credentials".into()), ("resource", self.source.resource.clone())];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.to_string()));
        }
        let req = self
            .authenticated(endpoint, form)
            .map_err(|e| TokenError::ClientAuth { endpoint: endpoint.clone(), cause: e })?;
        token_request(req, endpoint).await
    }
}

/// Sends one token request (any grant) and reads the answer: an RFC 6749 §5.2 error is
/// `Refused` with a hint, anything but a Bearer token response is `BadResponse`.
pub(crate) async fn token_request(req: reqwest::RequestBuilder, endpoint: &str) -> Result<TokenResponse, TokenError> {
    let body = token_endpoint_answer(req, endpoint, hint_for).await?;
    let endpoint = &endpoint.to_string();
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| TokenError::BadResponse { endpoint: endpoint.clone(), reason: e.to_string() })?;
    if !parsed.token_type.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::BadResponse {
            endpoint: endpoint.clone(),
            reason: format!("token_type {:?} is not Bearer", parsed.token_type),
        });
    }
    Ok(parsed)
}

impl TokenManager {
    fn info_of(&self, h: &Held) -> TokenInfo {
        let g = &h.grant;
        TokenInfo {
            fingerprint: g.fingerprint.clone(),
            requested: h.requested.clone(),
            granted: g.scope.clone(),
            issued_at: g.issued_at,
            expires_at: g.expires_at,
            refresh_count: self.refreshes.load(Ordering::Relaxed),
            state: g.state.clone(),
        }
    }
}

/// Whether `token` has the shape of a JWS compact serialization: three dot-separated
/// base64url parts whose first is a JSON object naming an `alg`. Such a token is verified
/// (and refused if that fails); anything else is opaque to the client.
fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.get("alg").is_some())
}

/// What to do about each RFC 6749 error.
/// Sends one request to a token endpoint (this client's authorization server's, or an
/// identity provider's) and returns the body of a 2xx answer, read bounded. An RFC 6749
/// §5.2 error is `Refused` with `hint(error)`; anything else unusable is `BadResponse`.
pub(crate) async fn token_endpoint_answer(
    req: reqwest::RequestBuilder,
    endpoint: &str,
    hint: fn(&str) -> &'static str,
) -> Result<Vec<u8>, TokenError> {
    let endpoint = &endpoint.to_string();
    let resp = req.send().await.map_err(|e| TokenError::Unreachable {
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
                hint: hint(&e.error),
                error: e.error,
                description: e.error_description,
            },
            Err(_) => TokenError::BadResponse { endpoint: endpoint.clone(), reason: format!("HTTP {status}") },
        });
    }
    Ok(body.to_vec())
}

fn hint_for(error: &str) -> &'static str {
    match error {
        "invalid_client" => {
            "check client_id and client_secret (or client_key) in the [client] section of your config, or --client-id and --client-secret-env/--client-key"
        }
        "invalid_scope" => "request only scopes this client is registered for (--scopes)",
        "invalid_target" => "the authorization server does not know this resource; check the server URL/resource",
        "unauthorized_client" | "unsupported_grant_type" => "the client is not allowed the client_credentials grant",
        "invalid_grant" => "the authorization code or refresh token was refused; log in again",
        _ => "see the authorization server's logs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_jws_shaped_token_is_verified() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"at+jwt"}"#);
        assert!(looks_like_jws(&format!("{header}.e30.sig")));
        // A header naming no alg is no JOSE header; these are all opaque: random strings,
        // dotted strings that are not JOSE, a JWE (5 parts).
        assert!(!looks_like_jws(&format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(b"{}"))));
        for opaque in ["op_3f9a2c", "a.b.c", "2YotnFZFEjr1zCsicMWpAA", &format!("{header}.a.b.c.d")] {
            assert!(!looks_like_jws(opaque), "{opaque}");
        }
    }
}
