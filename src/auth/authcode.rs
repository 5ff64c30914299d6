//! The client's authorization code grant with PKCE (OAuth 2.1 §4.1, RFC 7636 S256), as the
//! MCP authorization spec (2025-11-25) asks of a client with a user: a random `state`, the
//! server's RFC 8707 `resource`, a loopback redirect URI (RFC 8252 §7.3: 127.0.0.1, a port
//! picked at login, path `/callback`), the system browser — or, headless, one GET of the
//! authorization URL whose redirect is read instead of followed (an authorization server
//! that approves without a user, as in CI).
//!
//! `CodeLogin` is a token source for `TokenManager` (`with_login`): its `token()` uses the
//! refresh token it holds when that covers the scopes asked for, and logs in otherwise. A
//! new refresh token (rotation) replaces the old one, in memory and in the sealed store
//! (`refresh_store`), so a restart does not ask for a new login. Registration (stored DCR,
//! a client ID metadata document, or a pre-registered client) is `register`'s.
//!
//! Every step is an `AuthStep` event naming its URL without secrets: no code, no verifier,
//! no token ever appears in one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::refresh_store::{RefreshStore, StoredAccess, StoredLogin};
use super::register::{Registered, Registrar};
use super::token::{TokenError, TokenResponse, token_request};
use crate::types::event::{AuthStepKind, EventBus, EventKind, Scope as EventScope};
use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;

/// How long a browser login may take before Warden gives up waiting for the redirect.
pub const BROWSER_WAIT: Duration = Duration::from_secs(300);
/// The largest request the loopback listener reads (a redirect is one short GET).
const MAX_CALLBACK_REQUEST: usize = 16 * 1024;

/// How the user takes part in a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    /// Open the system browser (or print the URL when none can be opened) and wait for the
    /// redirect on the loopback listener.
    Browser,
    /// No user: GET the authorization URL and take the code from its redirect (an
    /// authorization server that approves on its own, e.g. in CI).
    Headless,
}

impl std::str::FromStr for LoginMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "browser" => Ok(Self::Browser),
            "headless" => Ok(Self::Headless),
            other => Err(format!("unknown login mode {other:?}: use \"browser\" or \"headless\"")),
        }
    }
}

/// What to do when a server answers 403 `insufficient_scope` to a token from a login.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepUp {
    /// Report the denial, naming the scopes (the default: more access is the user's call).
    #[default]
    Never,
    /// Re-authorize with the union of the grant and the scopes the server asked for.
    Auto,
    /// Ask the operator first (the console's default): yes re-authorizes as `Auto` does,
    /// no — or no one to answer — reports the denial as `Never` does.
    Ask,
}

impl std::str::FromStr for StepUp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "auto" => Ok(Self::Auto),
            "ask" => Ok(Self::Ask),
            other => Err(format!("unknown step-up policy {other:?}: use \"auto\", \"never\" or \"ask\" (console)")),
        }
    }
}

/// Why a login did not produce a code. Each message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    #[error(
        "the authorization server refused the authorization request: {error}{}; {}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        denied_next_step(error)
    )]
    Denied { error: String, description: Option<String> },
    #[error(
        "the redirect's state does not match the one Warden sent; the answer was ignored (it may be forged: log in again)"
    )]
    StateMismatch,
    #[error("the redirect carried neither a code nor an error; the authorization server is not following OAuth 2.1")]
    NoCode,
    #[error(
        "headless login: {url} answered {what} instead of redirecting back with a code; this authorization server wants a user, so log in with --auth browser"
    )]
    NeedsUser { url: String, what: String },
    #[error("no redirect arrived within {0} s; log in again (and finish it in the browser)")]
    TimedOut(u64),
    #[error("could not reach the authorization endpoint {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("could not open a loopback port for the redirect: {0}")]
    Listener(String),
    #[error("client registration at {url} failed: {reason}")]
    Registration { url: String, reason: String },
    /// The stored login no longer works and no login mode was chosen (a pipeline): no
    /// browser is opened behind the user's back.
    #[error("the stored login for {server} no longer works; log in again with --auth browser (or --auth headless)")]
    NoLoginMode { server: String },
}

/// What to do after the authorization endpoint said no, by its RFC 6749 §4.1.2.1 error.
fn denied_next_step(error: &str) -> &'static str {
    match error {
        "access_denied" => {
            "the sign-in was declined (by the user or the server's policy); run the command again to log in again"
        }
        "invalid_scope" => "the scopes asked for are not ones this client may have: ask for fewer with --scopes",
        "invalid_target" => {
            "the authorization server does not serve this MCP server (the resource); check which server it is for"
        }
        "temporarily_unavailable" | "server_error" => "the authorization server had a problem; try again later",
        _ => "check the client registration and scopes",
    }
}

impl LoginError {
    /// Refusals and forgeries are auth failures; an unreachable endpoint is transport.
    pub fn is_auth(&self) -> bool {
        !matches!(self, Self::Unreachable { .. } | Self::Listener(_))
    }
}

/// An RFC 7636 code verifier (43 characters of base64url from 32 random bytes) and its
/// S256 challenge.
pub struct Pkce {
    pub verifier: Secret<String>,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let verifier = random_b64(32);
        let challenge = s256(&verifier);
        Self { verifier: Secret::new(verifier), challenge }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `BASE64URL(SHA256(verifier))`, RFC 7636 §4.2.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

/// `n` random bytes, base64url without padding (for `state` and the verifier).
pub fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The system RNG failing leaves no safe way on; aws-lc-rs only fails when the OS has no
    // entropy source at all, which no supported platform lacks.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Everything a login needs to know about the server, its authorization server and where
/// to keep what it learns.
pub struct LoginSetup {
    pub http: reqwest::Client,
    /// The MCP server's name (events, the store's key).
    pub server: String,
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub resource: String,
    /// None: only the stored login may be used; a new login is refused (`NoLoginMode`).
    pub mode: Option<LoginMode>,
    pub registrar: Registrar,
    /// The sealed refresh-token store; None keeps refresh tokens in memory only.
    pub store: Option<RefreshStore>,
    /// The authorization server's RFC 7009 revocation endpoint, if it offers one.
    pub revocation_endpoint: Option<String>,
    pub events: EventBus,
    /// How long a browser login may take.
    pub wait: Duration,
    /// What a 403 insufficient_scope does to this login's grant.
    pub step_up: StepUp,
}

/// An authorization-code login for one server, and the refresh token it holds.
pub struct CodeLogin {
    setup: LoginSetup,
    refresh: Mutex<Option<Held>>,
    /// The access token stored by the previous command, offered once (the first token of
    /// this process) while it lasts; taken, never offered twice, so a 401 to it leads to
    /// the refresh token or a login rather than the same token again.
    stored_access: Mutex<Option<StoredAccess>>,
    /// The scopes the last login asked for (step-up widens them).
    granted: Mutex<ScopeSet>,
}

struct Held {
    token: Secret<String>,
    scope: ScopeSet,
    client_id: String,
}

impl CodeLogin {
    /// A login that starts from the refresh token stored for this server, if any (a store
    /// that cannot be opened is reported once in the log and treated as empty: fresh login).
    pub fn new(setup: LoginSetup) -> Arc<Self> {
        let stored = setup.store.as_ref().and_then(|s| match s.load(&setup.server, &setup.resource) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(server = %setup.server, error = %e, "stored refresh token not usable; logging in again");
                None
            }
        });
        let stored = stored.filter(|s| s.issuer == setup.issuer);
        let granted = stored.as_ref().map(|s| s.scope.clone()).unwrap_or_default();
        let stored_access = stored.as_ref().and_then(|s| s.access.clone());
        let refresh =
            stored.and_then(|s| Some(Held { token: s.refresh_token?, scope: s.scope, client_id: s.client_id }));
        Arc::new(Self {
            setup,
            refresh: Mutex::new(refresh),
            stored_access: Mutex::new(stored_access),
            granted: Mutex::new(granted),
        })
    }

    pub fn server(&self) -> &str {
        &self.setup.server
    }

    pub fn step_up(&self) -> StepUp {
        self.setup.step_up
    }

    /// The scopes of the current grant as far as the login knows them.
    pub fn granted(&self) -> ScopeSet {
        self.granted.lock().clone()
    }

    /// A token response for `scopes` (None: what was granted before, else the server's
    /// defaults): the stored access token when `first` (this process has none yet) and it
    /// covers them with more than the refresh skew left; else by refresh token when the one
    /// held covers them; else by a new login.
    pub async fn token(&self, scopes: Option<&ScopeSet>, first: bool) -> Result<TokenResponse, TokenError> {
        let stored = self.stored_access.lock().take();
        if let Some(access) = stored.filter(|_| first)
            && scopes.is_none_or(|s| s.is_subset(&access.scope))
        {
            let now = self.setup.events.clock().now_epoch();
            let left = access.expires_at.map(|e| e as i64 - now as i64);
            if left.is_none_or(|l| l > super::token::REFRESH_SKEW_SECS) {
                let lasts = match left {
                    Some(l) => format!("expires in {l} s"),
                    None => "no stated lifetime".into(),
                };
                self.step(AuthStepKind::StoredToken, None, format!("used the stored access token ({lasts})"));
                return Ok(TokenResponse {
                    access_token: access.token.expose().clone(),
                    token_type: "Bearer".into(),
                    expires_in: left.map(|l| l as u64),
                    scope: Some(access.scope.to_string()),
                    refresh_token: None,
                });
            }
        }
        let held = self.refresh.lock().as_ref().map(|h| (h.token.clone(), h.scope.clone(), h.client_id.clone()));
        if let Some((token, scope, client_id)) = held
            && scopes.is_none_or(|s| s.is_subset(&scope))
        {
            match self.refresh_with(&token, &client_id, scopes).await {
                Ok(r) => return Ok(r),
                // Refused (expired, revoked, rotated elsewhere): forget it and log in.
                Err(TokenError::Refused { .. }) => self.forget(),
                Err(e) => return Err(e),
            }
        }
        self.login(scopes).await
    }

    /// Forgets the refresh token (memory and store).
    fn forget(&self) {
        *self.refresh.lock() = None;
        if let Some(store) = &self.setup.store
            && let Err(e) = store.remove(&self.setup.server, &self.setup.resource)
        {
            tracing::warn!(server = %self.setup.server, error = %e, "could not remove a refused refresh token");
        }
    }

    fn step(&self, step: AuthStepKind, url: Option<&str>, outcome: String) {
        self.emit_step(step, url, outcome, false);
    }

    /// A step that did not go through; `outcome` says why.
    fn step_failed(&self, step: AuthStepKind, url: Option<&str>, outcome: String) {
        self.emit_step(step, url, outcome, true);
    }

    fn emit_step(&self, step: AuthStepKind, url: Option<&str>, outcome: String, failed: bool) {
        self.setup.events.emit(
            &EventScope::default(),
            EventKind::AuthStep {
                server: self.setup.server.clone(),
                step,
                url: url.map(str::to_string),
                outcome,
                failed,
            },
        );
    }

    async fn refresh_with(
        &self,
        token: &Secret<String>,
        client_id: &str,
        scopes: Option<&ScopeSet>,
    ) -> Result<TokenResponse, TokenError> {
        let client = self.setup.registrar.known(client_id);
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.expose().clone()),
            ("resource", self.setup.resource.clone()),
        ];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.to_string()));
        }
        let endpoint = &self.setup.token_endpoint;
        let result = client_token_request(self.setup.http.post(endpoint), form, &client, endpoint).await;
        match &result {
            Ok(r) => {
                let rotated = if r.refresh_token.is_some() { "rotated" } else { "kept" };
                self.step(AuthStepKind::Refresh, Some(endpoint), format!("new access token; refresh token {rotated}"));
            }
            Err(e) => self.step_failed(AuthStepKind::Refresh, Some(endpoint), format!("failed: {e}")),
        }
        let r = result?;
        let scope = r.scope.as_deref().and_then(|s| ScopeSet::parse(s).ok()).or_else(|| scopes.cloned());
        self.keep(&r, &client.client_id, scope);
        Ok(r)
    }

    /// Keeps the refresh token of `r` (a rotation replaces the old one; a response without
    /// one keeps the one held) with the scopes it covers, and the access token, in memory
    /// and sealed at rest.
    fn keep(&self, r: &TokenResponse, client_id: &str, scope: Option<ScopeSet>) {
        let mut held = self.refresh.lock();
        let scope = scope.or_else(|| held.as_ref().map(|h| h.scope.clone())).unwrap_or_default();
        *self.granted.lock() = scope.clone();
        if let Some(token) = r.refresh_token.as_ref() {
            *held = Some(Held { token: token.clone(), scope: scope.clone(), client_id: client_id.to_string() });
        }
        if let Some(store) = &self.setup.store {
            let now = self.setup.events.clock().now_epoch();
            let entry = StoredLogin {
                server: self.setup.server.clone(),
                resource: self.setup.resource.clone(),
                issuer: self.setup.issuer.clone(),
                client_id: client_id.to_string(),
                refresh_token: held.as_ref().map(|h| h.token.clone()),
                scope: scope.clone(),
                access: Some(StoredAccess {
                    token: Secret::new(r.access_token.clone()),
                    expires_at: r.expires_in.map(|s| now + s),
                    scope,
                }),
                revocation_endpoint: self.setup.revocation_endpoint.clone(),
            };
            if let Err(e) = store.save(entry) {
                tracing::warn!(server = %self.setup.server, error = %e, "the refresh token could not be stored; the next run logs in again");
            }
        }
    }

    /// A whole login: listener, registration, authorization request, redirect, exchange.
    async fn login(&self, scopes: Option<&ScopeSet>) -> Result<TokenResponse, TokenError> {
        let s = &self.setup;
        let Some(mode) = s.mode else {
            return Err(LoginError::NoLoginMode { server: s.server.clone() }.into());
        };
        let listener = Callback::bind(s.registrar.preferred_port()).await?;
        let redirect_uri = listener.redirect_uri();
        let client = match s.registrar.client(&redirect_uri, scopes).await {
            Ok((client, how)) => {
                self.step(AuthStepKind::Registration, s.registrar.endpoint(), how);
                client
            }
            Err(e) => {
                self.step_failed(AuthStepKind::Registration, s.registrar.endpoint(), format!("failed: {e}"));
                return Err(e.into());
            }
        };
        let pkce = Pkce::new();
        let state = random_b64(24);
        let mut url = reqwest::Url::parse(&s.authorization_endpoint).map_err(|_| LoginError::Unreachable {
            url: s.authorization_endpoint.clone(),
            reason: "not a URL".into(),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("code_challenge", &pkce.challenge)
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state)
                .append_pair("resource", &s.resource);
            if let Some(sc) = scopes.filter(|s| !s.is_empty()) {
                q.append_pair("scope", &sc.to_string());
            }
        }
        // The URL has no secret in it (the challenge is a hash, the state single-use), but the
        // event shows only the endpoint and the parameters that say what was asked.
        let asked = match scopes.filter(|s| !s.is_empty()) {
            Some(sc) => format!("asked for {sc} ({})", s.mode_label()),
            None => format!("asked for the default scopes ({})", s.mode_label()),
        };
        self.step(AuthStepKind::AuthorizationRequest, Some(&s.authorization_endpoint), asked);
        let answer = match mode {
            LoginMode::Headless => headless(&s.http, url.as_str(), &redirect_uri).await,
            LoginMode::Browser => {
                open_browser(url.as_str());
                listener.wait(s.wait).await
            }
        };
        let query = match answer {
            Ok(q) => q,
            Err(e) => {
                self.step_failed(AuthStepKind::Redirect, None, format!("failed: {e}"));
                return Err(e.into());
            }
        };
        let code = match code_from(&query, &state) {
            Ok(c) => {
                self.step(AuthStepKind::Redirect, Some(&redirect_uri), "code received, state matches".into());
                c
            }
            Err(e) => {
                self.step_failed(AuthStepKind::Redirect, Some(&redirect_uri), format!("refused: {e}"));
                return Err(e.into());
            }
        };
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.expose().clone()),
            ("redirect_uri", redirect_uri.clone()),
            ("code_verifier", pkce.verifier.expose().clone()),
            ("resource", s.resource.clone()),
        ];
        let result = client_token_request(s.http.post(&s.token_endpoint), form, &client, &s.token_endpoint).await;
        match &result {
            Ok(r) => {
                let refresh = if r.refresh_token.is_some() { "with a refresh token" } else { "no refresh token" };
                self.step(
                    AuthStepKind::CodeExchange,
                    Some(&s.token_endpoint),
                    format!("access token issued, {refresh}"),
                );
            }
            Err(e) => self.step_failed(AuthStepKind::CodeExchange, Some(&s.token_endpoint), format!("failed: {e}")),
        }
        let r = result?;
        let scope = r.scope.as_deref().and_then(|sc| ScopeSet::parse(sc).ok()).or_else(|| scopes.cloned());
        self.keep(&r, &client.client_id, scope);
        Ok(r)
    }

    /// Records a step-up (the union being asked for) before `TokenManager::regrant` runs it.
    pub fn note_step_up(&self, asked: &ScopeSet, union: &ScopeSet) {
        self.step(
            AuthStepKind::StepUp,
            Some(&self.setup.authorization_endpoint),
            format!("the server asked for {asked}; re-authorizing with {union}"),
        );
    }

    /// Records a step-up that did not happen (`outcome`: the operator declined, or no one
    /// answered), so the auth timeline shows why the denial stands.
    pub fn note_step_up_refused(&self, asked: &ScopeSet, outcome: &str) {
        self.step_failed(
            AuthStepKind::StepUp,
            Some(&self.setup.authorization_endpoint),
            format!("{outcome}: the server asked for {asked}"),
        );
    }
}

impl LoginSetup {
    fn mode_label(&self) -> &'static str {
        match self.mode {
            Some(LoginMode::Browser) => "browser",
            Some(LoginMode::Headless) => "headless",
            None => "no login mode",
        }
    }
}

/// One token request from a registered client, authenticated the way it registered: the
/// sending is `client_auth`'s (form-encoded Basic, the post form, or a public client's id).
async fn client_token_request(
    req: reqwest::RequestBuilder,
    form: Vec<(&'static str, String)>,
    client: &Registered,
    endpoint: &str,
) -> Result<TokenResponse, TokenError> {
    let req = client
        .authenticator()
        .apply(req, form, crate::types::time::now_epoch())
        .map_err(|cause| TokenError::ClientAuth { endpoint: endpoint.to_string(), cause })?;
    token_request(req, endpoint).await
}

/// The redirect's query parameters, checked: the state must be the one sent (constant-time
/// compare), then an `error` is a refusal and a `code` is the answer.
fn code_from(query: &[(String, String)], state: &str) -> Result<Secret<String>, LoginError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let sent = Secret::new(state.to_string());
    if !get("state").is_some_and(|s| sent.ct_eq(s.as_bytes())) {
        return Err(LoginError::StateMismatch);
    }
    if let Some(error) = get("error") {
        return Err(LoginError::Denied { error, description: get("error_description") });
    }
    get("code").map(Secret::new).ok_or(LoginError::NoCode)
}

/// Headless: one GET of the authorization URL, its redirect read, not followed. The answer
/// counts only if it points at our redirect URI.
async fn headless(http: &reqwest::Client, url: &str, redirect_uri: &str) -> Result<Vec<(String, String)>, LoginError> {
    let endpoint = url.split('?').next().unwrap_or(url).to_string();
    let resp = http.get(url).send().await.map_err(|e| LoginError::Unreachable {
        url: endpoint.clone(),
        reason: crate::security::tls::NetFailure::of(&e).to_string(),
    })?;
    let status = resp.status();
    let location = resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_string);
    let Some(location) = location.filter(|_| status.is_redirection()) else {
        return Err(LoginError::NeedsUser { url: endpoint, what: format!("HTTP {}", status.as_u16()) });
    };
    let target = reqwest::Url::parse(&location)
        .map_err(|_| LoginError::NeedsUser { url: endpoint.clone(), what: "a redirect that is not a URL".into() })?;
    let ours = reqwest::Url::parse(redirect_uri).map_err(|_| LoginError::NoCode)?;
    if target.origin() != ours.origin() || target.path() != ours.path() {
        return Err(LoginError::NeedsUser {
            url: endpoint,
            what: format!("a redirect to {}", without_query(&location)),
        });
    }
    Ok(target.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// Opens `url` in the system browser; when that is not possible (no display, over ssh)
/// prints it for the user to open. Either way the URL is on stderr, so a browser that opens
/// on another screen can be found.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let graphical = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    let opened = graphical
        && std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok();
    if opened {
        eprintln!("warden: opened the browser to log in; if it did not appear, open:\n  {url}");
    } else {
        eprintln!("warden: open this URL in a browser to log in (Warden waits for the redirect):\n  {url}");
    }
}

/// The RFC 8252 loopback listener: 127.0.0.1, one redirect to `/callback`.
struct Callback {
    listener: tokio::net::TcpListener,
    port: u16,
}

impl Callback {
    /// Binds `preferred` (the port a stored registration names) when it is free, else any.
    async fn bind(preferred: Option<u16>) -> Result<Self, LoginError> {
        // A port another program holds now: any free one (and a new registration if the
        // authorization server insists on exact redirect URIs).
        let reused = match preferred {
            Some(p) => tokio::net::TcpListener::bind(("127.0.0.1", p)).await.ok(),
            None => None,
        };
        let listener = match reused {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| LoginError::Listener(e.to_string()))?,
        };
        let port = listener.local_addr().map_err(|e| LoginError::Listener(e.to_string()))?.port();
        Ok(Self { listener, port })
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits (at most `wait`) for the browser's GET /callback and answers it with a page the
    /// user can close; other requests (a favicon) get 404 and the wait goes on.
    async fn wait(self, wait: Duration) -> Result<Vec<(String, String)>, LoginError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let accepted = tokio::time::timeout_at(deadline, self.listener.accept()).await;
            let Ok(Ok((mut stream, _))) = accepted else { return Err(LoginError::TimedOut(wait.as_secs())) };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 2048];
            // One request line is all we need; stop at the end of the headers or the cap.
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_CALLBACK_REQUEST {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            let text = String::from_utf8_lossy(&buf);
            let target = text.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
            let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{target}")) else { continue };
            if url.path() != "/callback" {
                let _ =
                    stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                continue;
            }
            let body = "<!doctype html><title>Warden</title><p>Warden received the authorization server's answer. You can close this tab.</p>";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            return Ok(url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect());
        }
    }
}

/// Where a login keeps what it learns, under the state directory.
pub fn state_paths(state_dir: &std::path::Path) -> (PathBuf, RefreshStore) {
    (state_dir.join("auth/clients.json"), RefreshStore::in_state_dir(state_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B's example.
    #[test]
    fn s256_matches_the_rfc_example() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn the_verifier_is_43_to_128_unreserved_characters_and_fresh_each_time() {
        let (a, b) = (Pkce::new(), Pkce::new());
        let v = a.verifier.expose();
        assert!((43..=128).contains(&v.len()), "{}", v.len());
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)));
        assert_ne!(v, b.verifier.expose());
        assert_eq!(a.challenge, s256(v));
    }

    #[test]
    fn a_redirect_counts_only_with_our_state() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        assert_eq!(code_from(&q(&[("code", "c1"), ("state", "s")]), "s").unwrap().expose(), "c1");
        assert_eq!(code_from(&q(&[("code", "c1"), ("state", "x")]), "s").unwrap_err(), LoginError::StateMismatch);
        assert_eq!(code_from(&q(&[("code", "c1")]), "s").unwrap_err(), LoginError::StateMismatch);
        assert_eq!(
            code_from(&q(&[("error", "access_denied"), ("state", "s")]), "s").unwrap_err(),
            LoginError::Denied { error: "access_denied".into(), description: None }
        );
    }
}
