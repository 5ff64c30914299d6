//! The client side: connect to MCP servers through the token manager and wrap every tool
//! in a `SecureTool`. `ClientStack::connect` is what `warden token|tools|call` (and later
//! the agent and console) build on.
//!
//! Discovery per OAuth server (`auth::discovery::discover_for`): the RFC 9728 metadata the
//! 401 challenge names (else the path-aware, then the root well-known URL) gives the
//! resource, checked to be this server, and its authorization server; RFC 8414 (or OpenID)
//! metadata gives the token endpoint, JWKS and the client authentication methods. The
//! issuer is the one discovered, or the one `[client]` pins (another is refused); the
//! client's secret or key only ever goes to that issuer's token endpoint, authenticated as
//! `auth::client_auth` chooses. A server whose auth is left to it (no
//! `auth`, no headers, no `[client]`) is connected without credentials; a 401 with a Bearer
//! challenge runs `auth::discovery::discover` and ends in `ClientError::NeedsOauth`, which
//! says what was found and what to configure.
//!
//! May import: `types`, `paths`, `security`, `auth`, `config` (never a server module: what
//! client and server share lives in `types` and `auth`). Enforced by `tests/layering.rs`.

pub mod classify;
pub mod exchange;
pub mod http;
pub mod login;
pub mod pins;
pub mod secure_tool;
pub mod session;
pub mod stdio;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::assertion::IdentityAssertion;
use crate::auth::client_auth::{ClientAuthError, ClientAuthenticator, Method, SigningKey, choose};
use crate::auth::discovery::{self, BearerChallenge, Discovered, DiscoveryError, fetch_as_metadata};
use crate::auth::jwks::JwksCache;
use crate::auth::token::{TokenError, TokenManager, TokenSource, Verification};
use crate::auth::verify::{DEFAULT_LEEWAY_SECS, Verifier, VerifierConfig};
use crate::config::{AuthMode, ClientSection, Config, ServerEntry, Transport};
use crate::security::tls::{ClientTls, NetFailure, http_client, mcp_http_client};
use crate::types::event::EventBus;
use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;
use crate::types::tool::ToolNames;
use secure_tool::{CallPolicy, SecureTool};
use session::McpSession;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(
        "no [client] section in the config: point --config at STATE/client.toml written by `warden serve`, or add one"
    )]
    NoClient,
    /// `warden token` for a server that answered without asking for a token.
    #[error(
        "{server} asks for no token (a stdio server, or no 401 with a Bearer challenge), so there is none to show; `warden tools` lists what it offers"
    )]
    NoTokenAsked { server: String },
    /// A server set to `auth = "oauth"` in a config without `[client]`.
    #[error(
        "{server} uses auth = \"oauth\" but the config has no [client] section: add one (issuer, client_id, client_secret_env), or set auth = \"headers\" or \"none\" for it"
    )]
    NoClientFor { server: String },
    /// The server answered 401/403 to the handshake; `explain` says what it refused.
    #[error("{explain} (HTTP {status}{})", challenge.as_deref().map(|c| format!(", WWW-Authenticate: {c}")).unwrap_or_default())]
    Refused { server: String, status: u16, challenge: Option<String>, explain: String },
    #[error(
        "no MCP servers in the config: add a [[servers]] entry (name and url, or name and command), use an mcpServers JSON file, or name one with --url or --stdio"
    )]
    NoServers,
    #[error(
        "environment variable {0} (client_secret_env, or --client-secret-env) is not set: export it with the client secret"
    )]
    SecretEnvMissing(String),
    #[error("{url}: plain http is refused; use https, or set allow_http_loopback = true for a loopback address")]
    InsecureUrl { url: String },
    #[error("{url} is not a valid URL")]
    BadUrl { url: String },
    #[error(
        "{server} says it is the resource {advertised}, which is not {url} (RFC 9728 §3.3); refusing to get a token for another resource. If this is intended, set `resource` for the server in the config"
    )]
    ResourceMismatch { server: String, advertised: String, url: String },
    #[error(
        "{server} names authorization server {named}, but the config trusts {configured}; refusing to send credentials there"
    )]
    UntrustedIssuer { server: String, named: String, configured: String },
    /// A server whose auth is left to it (`ServerEntry::auth_discovered`) answered 401 with a
    /// Bearer challenge, and discovery found its authorization server: what was found and
    /// what to configure.
    #[error("{}", needs_oauth(server, discovered))]
    NeedsOauth { server: String, discovered: Box<Discovered> },
    /// Such a server asked for OAuth, but discovery could not finish.
    #[error(
        "{server} requires OAuth (it answered 401 with a Bearer challenge), but Warden could not discover how: {cause}. If it takes an API key instead, pass it with --header 'X-API-Key: ${{MY_KEY}}' (in a config: auth = \"headers\" with headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }})"
    )]
    OauthUndiscovered { server: String, cause: DiscoveryError },
    #[error("discovery failed for {server}: {reason}")]
    Discovery { server: String, reason: String },
    /// A server never answered: refused, certificate not trusted, timed out.
    #[error("cannot reach {what} {url} (for {server}): {failure}; {next_step}")]
    Unreachable { server: String, what: &'static str, url: String, failure: NetFailure, next_step: String },
    /// The client's credentials or method do not fit (`auth::client_auth`).
    #[error("{server}: {cause}")]
    ClientAuth { server: String, cause: ClientAuthError },
    #[error(transparent)]
    Tls(#[from] crate::security::tls::TlsError),
    #[error("{server}: {cause}")]
    Token { server: String, cause: TokenError },
    #[error(transparent)]
    Session(#[from] session::SessionError),
}

impl ClientError {
    /// Credential or token problems (as opposed to configuration or transport).
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Token { cause, .. } if cause.is_auth())
            || matches!(self, Self::Refused { .. } | Self::NeedsOauth { .. } | Self::OauthUndiscovered { .. })
    }

    /// A token error for `server`; one that never got an answer says what to do next.
    pub fn token(server: &str, cause: TokenError, tls: &ClientTls) -> Self {
        match cause {
            TokenError::Unreachable { endpoint, failure } => {
                Self::unreachable(server, "the token endpoint", endpoint, failure, tls)
            }
            source => Self::Token { server: server.to_string(), cause: source },
        }
    }

    fn unreachable(server: &str, what: &'static str, url: String, failure: NetFailure, tls: &ClientTls) -> Self {
        let next_step = failure.next_step(tls);
        Self::Unreachable { server: server.to_string(), what, url, failure, next_step }
    }

    /// Discovery for `server` stopped: an authorization server that could not be reached is
    /// named with what to do about it; anything else is `OauthUndiscovered`.
    fn undiscovered(server: &str, e: DiscoveryError, tls: &ClientTls) -> Self {
        match e {
            DiscoveryError::Unreachable { url, failure } => {
                Self::unreachable(server, "the authorization server", url, failure, tls)
            }
            cause => Self::OauthUndiscovered { server: server.to_string(), cause },
        }
    }
}

/// The error text for `ClientError::NeedsOauth`: everything discovery found, then the
/// `[client]` section to add (issue 14 brings interactive login and registration).
fn needs_oauth(server: &str, d: &Discovered) -> String {
    let scopes = match d.scopes_from {
        _ if d.scopes.is_empty() => "not stated (the authorization server's defaults apply)".to_string(),
        discovery::ScopesFrom::Challenge => format!("{} (from the challenge)", d.scopes),
        _ => format!("{} (the server's scopes_supported)", d.scopes),
    };
    let registration = match d.registration_endpoint() {
        Some(url) => format!("offered at {url} (Warden registers there when it logs in)"),
        None => "not offered: register a client with the authorization server's administrator".to_string(),
    };
    let keys = match &d.metadata.jwks_uri {
        Some(url) => format!("{url} (tokens can be verified)"),
        None => "none published (its tokens will be shown as opaque: the server decides)".to_string(),
    };
    let mut section = format!(
        "  [client]\n  issuer = \"{}\"\n  client_id = \"YOUR_CLIENT_ID\"\n  client_secret_env = \"YOUR_CLIENT_SECRET_VAR\"\n",
        d.authorization_server
    );
    if !d.scopes.is_empty() {
        section.push_str(&format!("  scopes = \"{}\"\n", d.scopes));
    }
    if d.authorization_server.starts_with("http://") {
        section.push_str("  allow_http_loopback = true\n");
    }
    let login_line = match (&d.metadata.authorization_endpoint, login::advertises_s256(d)) {
        (None, _) => "(it offers no authorization endpoint, so Warden cannot log in with a browser)".to_string(),
        (Some(_), false) => "(its metadata lists no PKCE S256 method, which MCP requires before logging in with a browser)".to_string(),
        (Some(_), true) => "Or log in: run again with --auth browser (or --auth headless, for an authorization server that approves without a user)".to_string(),
    };
    format!(
        "{server} requires OAuth (it answered 401 with a Bearer challenge). Discovered:\n  \
         authorization server  {} (named by {})\n  \
         token endpoint        {}\n  \
         scopes                {scopes}\n  \
         client registration   {registration}\n  \
         token keys            {keys}\n\
         Next: get a client_id and secret for the client credentials grant from that authorization server, put them in a config file and pass it with --config:\n\
         {section}\
         {login_line}",
        d.authorization_server,
        match (&d.resource_metadata_url, &d.metadata_url) {
            (Some(url), _) => url.as_str(),
            (None, Some(_)) => "the server's origin: it publishes no resource metadata (2025-03-26)",
            (None, None) =>
                "the server's origin, assumed: it publishes no OAuth metadata, so these are the 2025-03-26 default endpoints; if it takes an API key instead, pass it with --header 'Authorization: Bearer ${MY_KEY}'",
        },
        d.metadata.token_endpoint,
    )
}

/// One connected server: its session, token manager and secure tools.
pub struct Connected {
    pub entry: ServerEntry,
    /// How Warden authenticates to it (`ServerEntry::auth_mode`).
    pub auth: AuthMode,
    pub session: Arc<McpSession>,
    /// The OAuth token manager; None for `auth = "none"` / `"headers"` and stdio servers.
    pub tokens: Option<Arc<TokenManager>>,
    pub tools: Vec<Arc<SecureTool>>,
}

pub struct ClientStack {
    pub servers: Vec<Connected>,
    pub events: EventBus,
}

impl ClientStack {
    /// Connects to every configured server. `scopes` overrides the config's requested scopes.
    pub async fn connect(
        config: &Config,
        scopes: Option<ScopeSet>,
        policy: CallPolicy,
        events: EventBus,
    ) -> Result<Self, ClientError> {
        Self::connect_pinned(config, scopes, policy, events, None).await
    }

    /// Like `connect`, and checks each server's tool-manifest hash against the pins in
    /// `pins` (a JSON file): unknown servers are pinned on first sight; a changed manifest
    /// raises a `manifest_changed` anomaly and blocks that server's tools until approved
    /// (`warden tools --approve`).
    pub async fn connect_pinned(
        config: &Config,
        scopes: Option<ScopeSet>,
        policy: CallPolicy,
        events: EventBus,
        pins: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        if config.servers.is_empty() {
            return Err(ClientError::NoServers);
        }
        let http = mcp_http(config)?;
        let scopes = scopes.or_else(|| config.client.as_ref().and_then(|c| c.scopes.clone()));
        let mut pinned = pins.map(pins::load).unwrap_or_default();
        let mut servers = Vec::new();
        for entry in &config.servers {
            servers.push(
                connect_one(config, entry, &http, scopes.clone(), &policy, &events, pins.map(|_| &mut pinned)).await?,
            );
        }
        if let Some(path) = pins {
            pins::save(path, &pinned);
        }
        Ok(Self { servers, events })
    }

    pub fn tools(&self) -> impl Iterator<Item = &Arc<SecureTool>> {
        self.servers.iter().flat_map(|s| s.tools.iter())
    }

    /// The display names of every tool: bare where unique, `server.tool` where shared.
    pub fn tool_names(&self) -> ToolNames {
        ToolNames::new(self.tools().map(|t| t.id()))
    }

    /// The tool `name` stands for: its display name, or `server.tool` always. A bare name
    /// two servers share matches nothing (never "the first server that has it").
    pub fn tool(&self, name: &str) -> Option<&Arc<SecureTool>> {
        let names = self.tool_names();
        let id = names.resolve(name).cloned();
        self.tools().find(|t| Some(t.id()) == id.as_ref() || t.id().qualified() == name)
    }

    pub async fn close(self) {
        for s in self.servers {
            drop(s.tools);
            if let Ok(session) = Arc::try_unwrap(s.session) {
                session.close().await;
            }
        }
    }
}

/// The HTTP client for MCP sessions: `[client]`'s trust and timeout when there is one,
/// else the system roots and 15 s.
pub fn mcp_http(config: &Config) -> Result<reqwest::Client, ClientError> {
    let client = config.client.as_ref();
    let timeout = Duration::from_secs(client.and_then(|c| c.timeout_secs).unwrap_or(15));
    Ok(mcp_http_client(&client.map(client_tls).unwrap_or_default(), timeout)?)
}

/// Connects to one server on its own (for `warden servers`, which reports each server's
/// status instead of stopping at the first failure). Same path as `ClientStack::connect`.
pub async fn connect_server(
    config: &Config,
    entry: &ServerEntry,
    http: &reqwest::Client,
    events: &EventBus,
) -> Result<Connected, ClientError> {
    let scopes = config.client.as_ref().and_then(|c| c.scopes.clone());
    connect_one(config, entry, http, scopes, &CallPolicy::default(), events, None).await
}

/// Whom the client's HTTPS connections trust, from `[client]`.
pub fn client_tls(client: &ClientSection) -> ClientTls {
    ClientTls { ca_file: client.ca_file.clone(), ca_only: client.ca_only }
}

/// Token manager only (for `warden token`): discovery and a verified token, no session.
pub async fn token_manager(
    config: &Config,
    scopes: Option<ScopeSet>,
    events: EventBus,
) -> Result<(ServerEntry, Arc<TokenManager>), ClientError> {
    let entry = config.servers.first().ok_or(ClientError::NoServers)?;
    let Some(client) = config.client.as_ref() else {
        return discovered_token_manager(config, entry, scopes, &events).await.map(|t| (entry.clone(), t));
    };
    let timeout = Duration::from_secs(client.timeout_secs.unwrap_or(15));
    let http = http_client(&client_tls(client), timeout)?;
    let scopes = scopes.or_else(|| client.scopes.clone());
    let tokens = match login::public_client(config) {
        true => login::public_login_tokens(config, client, entry, &http, scopes, &events).await?,
        false => build_tokens(client, entry, &http, scopes, &events).await?,
    };
    Ok((entry.clone(), tokens))
}

/// `warden token` for a server whose auth is left to discovery (`--url` without client
/// flags): its 401 challenge, discovery, then a login as `tools` would make. A server that
/// asks for no token, or one that cannot be logged in to, says so.
async fn discovered_token_manager(
    config: &Config,
    entry: &ServerEntry,
    scopes: Option<ScopeSet>,
    events: &EventBus,
) -> Result<Arc<TokenManager>, ClientError> {
    let url = match entry.transport() {
        Transport::Http { url } if entry.auth_discovered(false) => url,
        Transport::Stdio { .. } => return Err(ClientError::NoTokenAsked { server: entry.name.clone() }),
        _ => return Err(ClientError::NoClient),
    };
    let http = mcp_http(config)?;
    let challenge = probe_challenge(&http, url).await;
    if challenge == BearerChallenge::default() {
        return Err(ClientError::NoTokenAsked { server: entry.name.clone() });
    }
    let d = discovery::discover(&http, url, &challenge, true)
        .await
        .map_err(|e| ClientError::undiscovered(&entry.name, e, &ClientTls::default()))?;
    if !login::can_log_in(config, &d) && !login::has_stored_login(config, &entry.name, &d) {
        return Err(ClientError::NeedsOauth { server: entry.name.clone(), discovered: Box::new(d) });
    }
    Ok(login::login_tokens(config, entry, &http, scopes, events, &d))
}

/// The one place a connection is built from a server entry, whatever its transport and
/// auth mode: the CLI commands, `warden servers` and the console's session core all come
/// through here.
async fn connect_one(
    config: &Config,
    entry: &ServerEntry,
    http: &reqwest::Client,
    scopes: Option<ScopeSet>,
    policy: &CallPolicy,
    events: &EventBus,
    pinned: Option<&mut std::collections::BTreeMap<String, String>>,
) -> Result<Connected, ClientError> {
    let mut auth = entry.auth_mode(config.client.is_some());
    let tls = config.client.as_ref().map(client_tls).unwrap_or_default();
    let hint = refusal_hint(entry, auth);
    let refused = |e: session::SessionError| match e {
        session::SessionError::Unreachable { server, url, failure } => {
            ClientError::unreachable(&server, "the MCP server", url, failure, &tls)
        }
        session::SessionError::Refused { server, status, challenge, .. } => {
            ClientError::Refused { server, status, challenge, explain: hint.clone() }
        }
        e => e.into(),
    };
    let (session, tokens) = match (entry.transport(), auth) {
        (Transport::Stdio { command, args }, _) => (
            McpSession::connect_stdio(entry, command, args, &entry.scopes, Some(events.clone()))
                .await
                .map_err(refused)?,
            None,
        ),
        (Transport::Http { url }, AuthMode::Oauth) => {
            let client =
                config.client.as_ref().ok_or_else(|| ClientError::NoClientFor { server: entry.name.clone() })?;
            // A `[client]` without a secret and a login mode: a public client that logs in.
            let tokens = match login::public_client(config) {
                true => login::public_login_tokens(config, client, entry, http, scopes, events).await?,
                false => build_tokens(client, entry, http, scopes, events).await?,
            };
            tokens.claims().await.map_err(|source| ClientError::token(&entry.name, source, &tls))?;
            let session = oauth_session(entry, url, http, &tokens).await.map_err(|e| match e {
                OauthFailure::Session(e) => refused(e),
                OauthFailure::Token(e) => ClientError::token(&entry.name, e, &tls),
            })?;
            (session, Some(tokens))
        }
        (Transport::Http { url }, AuthMode::None | AuthMode::Headers) => {
            // No OAuth credentials go to this server; plain http is still refused off
            // loopback (static headers are secrets too), and allowed on it.
            check_url(url, true)?;
            match McpSession::connect(&entry.name, url, http.clone(), None, &entry.headers, &entry.scopes).await {
                Ok(session) => (session, None),
                // Auth left to the server, and it asked for a bearer token: find out from
                // whom (nothing is sent anywhere; discovery only reads public metadata).
                Err(session::SessionError::Refused { server, status: 401, challenge: Some(c), .. })
                    if entry.auth_discovered(config.client.is_some()) =>
                {
                    let Some(challenge) = BearerChallenge::parse(&c) else {
                        // Not a Bearer challenge (Basic, a gateway's own scheme): no OAuth
                        // to discover; the hint says what the server may want instead.
                        return Err(ClientError::Refused { server, status: 401, challenge: Some(c), explain: hint });
                    };
                    let discovered = discovery::discover(http, url, &challenge, true).await;
                    // No client credentials, and the authorization server lets a user log
                    // in (authorization code + PKCE): do that instead of stopping.
                    if let Ok(d) = &discovered
                        && (login::can_log_in(config, d) || login::has_stored_login(config, &entry.name, d))
                    {
                        let tokens = login::login_tokens(config, entry, http, scopes, events, d);
                        tokens.claims().await.map_err(|source| ClientError::token(&entry.name, source, &tls))?;
                        auth = AuthMode::Oauth;
                        let session = oauth_session(entry, url, http, &tokens).await.map_err(|e| match e {
                            OauthFailure::Session(session::SessionError::Refused {
                                server, status, challenge, ..
                            }) => {
                                let explain = refusal_hint(entry, AuthMode::Oauth);
                                ClientError::Refused { server, status, challenge, explain }
                            }
                            OauthFailure::Session(e) => refused(e),
                            OauthFailure::Token(e) => ClientError::token(&entry.name, e, &tls),
                        })?;
                        (session, Some(tokens))
                    } else {
                        return Err(match discovered {
                            Ok(d) => ClientError::NeedsOauth { server, discovered: Box::new(d) },
                            // Not `warden serve`'s issuer, most likely: the next step for a
                            // refused connection is the server's, TLS advice stays as it is.
                            Err(DiscoveryError::Unreachable { url, failure: NetFailure::Refused }) => {
                                ClientError::Unreachable {
                                    next_step: format!(
                                        "{server} names it as its authorization server: check that it is up, or ask the server's operator"
                                    ),
                                    server,
                                    what: "the authorization server",
                                    url,
                                    failure: NetFailure::Refused,
                                }
                            }
                            Err(DiscoveryError::Unreachable { url, failure }) => {
                                ClientError::unreachable(&server, "the authorization server", url, failure, &tls)
                            }
                            Err(cause) => ClientError::OauthUndiscovered { server, cause },
                        });
                    }
                }
                Err(e) => return Err(refused(e)),
            }
        }
    };
    let session = Arc::new(session);
    events.emit(
        &crate::types::event::Scope::default(),
        crate::types::event::EventKind::ManifestRecorded {
            server: entry.name.clone(),
            hash: session.manifest_hash().to_string(),
            tools: session.tools().iter().map(|t| t.id.name.clone()).collect(),
        },
    );
    let hash = session.manifest_hash().to_string();
    let block = match pinned {
        Some(pins) => match pins.get(&entry.endpoint()) {
            None => {
                pins.insert(entry.endpoint(), hash.clone());
                None
            }
            Some(known) if *known == hash => None,
            Some(known) => {
                let reason = format!(
                    "the tool manifest of {} changed since it was approved ({} → {}); its tools are blocked until an operator reviews them and runs `warden tools --approve`",
                    entry.name,
                    &known[..12.min(known.len())],
                    &hash[..12]
                );
                events.emit(
                    &crate::types::event::Scope::default(),
                    crate::types::event::EventKind::Anomaly {
                        rule: crate::types::event::AnomalyRule::ManifestChanged,
                        severity: crate::types::event::AnomalySeverity::High,
                        message: reason.clone(),
                        evidence: Vec::new(),
                    },
                );
                Some(reason)
            }
        },
        None => None,
    };
    let tools = session
        .tools()
        .iter()
        .map(|spec| {
            Arc::new(
                SecureTool::new(spec.clone(), session.clone(), tokens.clone(), events.clone(), policy.clone())
                    .blocked(block.clone())
                    .refusal_hint(hint.clone())
                    .confirm(entry.confirm),
            )
        })
        .collect();
    Ok(Connected { entry: entry.clone(), auth, session, tokens, tools })
}

/// A session with `entry` at `url` whose requests carry the token manager's bearer token
/// (the caller has obtained one: `initialize` is authenticated too). A 401 to it (a stored
/// token the server no longer takes) gets one new token, by refresh token or login; a 403
/// insufficient_scope gets step-up when the login's policy allows it, at most
/// `MAX_STEP_UPS` times, as a tool call would.
async fn oauth_session(
    entry: &ServerEntry,
    url: &str,
    http: &reqwest::Client,
    tokens: &Arc<TokenManager>,
) -> Result<McpSession, OauthFailure> {
    let (mut renewed, mut stepped_up) = (false, 0);
    loop {
        let result =
            McpSession::connect(&entry.name, url, http.clone(), Some(tokens.clone()), &entry.headers, &entry.scopes)
                .await;
        let (status, challenge) = match &result {
            Err(session::SessionError::Refused { status, challenge, .. }) => (*status, challenge.clone()),
            _ => return result.map_err(OauthFailure::Session),
        };
        let result = result.map_err(OauthFailure::Session);
        let Ok(held) = tokens.claims().await else { return result };
        let next = match status {
            401 if !renewed => {
                renewed = true;
                tokens.refresh_rejected(&held).await
            }
            403 if stepped_up < secure_tool::MAX_STEP_UPS => {
                let asked = challenge
                    .as_deref()
                    .and_then(BearerChallenge::parse)
                    .and_then(|c| c.scope)
                    .and_then(|s| ScopeSet::parse(&s).ok())
                    .unwrap_or_default();
                let Some(union) = secure_tool::step_up_scopes(tokens, &held.scope, &asked) else { return result };
                stepped_up += 1;
                tokens.step_up(union).await
            }
            _ => return result,
        };
        // The new token could not be had (the stored login no longer works, the step-up
        // was refused): that is the story, not the server's refusal of the old one.
        if let Err(e) = next {
            return Err(OauthFailure::Token(e));
        }
    }
}

/// Why an OAuth session could not be opened: the server refused it, or a new token (after
/// a 401, or for step-up) could not be had.
enum OauthFailure {
    Session(session::SessionError),
    Token(TokenError),
}

/// What a 401/403 from this server means, by auth mode: the headers it refused (by name,
/// never by value), or that it needs OAuth and how to configure it.
fn refusal_hint(entry: &ServerEntry, auth: AuthMode) -> String {
    let name = &entry.name;
    match auth {
        AuthMode::Headers => {
            let names: Vec<&str> = entry.headers.keys().map(String::as_str).collect();
            let (noun, list) =
                if names.len() == 1 { ("header", names[0].to_string()) } else { ("headers", names.join(", ")) };
            format!(
                "{name}: the server refused the {list} {noun}; check its value (and the environment variable it comes from)"
            )
        }
        AuthMode::None => format!(
            "{name} requires authorization and Warden sent none: it needs OAuth (add a [client] section with issuer, client_id and client_secret_env, and auth = \"oauth\" for this server), or, if it takes an API key, set auth = \"headers\" with headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }}"
        ),
        AuthMode::Oauth => format!("{name} rejected Warden's access token"),
    }
}

/// The token manager for one OAuth server. Discovery (`auth::discovery::discover_for`:
/// the 401 challenge's `resource_metadata`, the path-aware then the root RFC 9728 URL, the
/// check that the document names this server, then RFC 8414 / OpenID metadata) finds the
/// authorization server; a configured `issuer` pins it (another one is refused before any
/// credential is sent), an absent one trusts the one discovered. The client's credentials
/// go only to that authorization server's token endpoint, authenticated as
/// `auth::client_auth::choose` decides from its `token_endpoint_auth_methods_supported`.
async fn build_tokens(
    client: &ClientSection,
    entry: &ServerEntry,
    http: &reqwest::Client,
    scopes: Option<ScopeSet>,
    events: &EventBus,
) -> Result<Arc<TokenManager>, ClientError> {
    let allow = client.allow_http_loopback;
    check_url(&entry.url, allow)?;
    if let Some(issuer) = &client.issuer {
        check_url(issuer, allow)?;
    }
    let client_auth = |cause| ClientError::ClientAuth { server: entry.name.clone(), cause };
    // A missing secret variable, an unreadable key or an unknown method is a config error:
    // say so before contacting anything.
    let secret = match (&client.client_secret, &client.client_secret_env) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(var)) => {
            Some(Secret::new(std::env::var(var).map_err(|_| ClientError::SecretEnvMissing(var.clone()))?))
        }
        (None, None) => None,
    };
    let key = match &client.client_key {
        Some(path) => Some(Arc::new(SigningKey::load(path, client.client_key_alg.as_deref()).map_err(client_auth)?)),
        None => None,
    };
    let configured_method = client.auth_method.as_deref().map(Method::parse).transpose().map_err(client_auth)?;
    // The client credentials grant is for confidential clients (OAuth 2.1 §4.2): without a
    // secret or a key only an explicit auth_method = "none" goes on to ask the server.
    if secret.is_none() && key.is_none() && configured_method != Some(Method::None) {
        return Err(client_auth(ClientAuthError::NoCredentials { offered: None }));
    }
    let tls = client_tls(client);
    let as_unreachable =
        |url, failure| ClientError::unreachable(&entry.name, "the authorization server", url, failure, &tls);
    let challenge = probe_challenge(http, &entry.url).await;
    let discovered = match discovery::discover_for(http, &entry.url, entry.resource.as_deref(), &challenge, allow).await
    {
        // No resource metadata, and an issuer pinned: that issuer, not the 2025-03-26 guess
        // that the server's origin is its authorization server.
        Ok(d) if d.resource_metadata_url.is_none() && client.issuer.is_some() => {
            Err(DiscoveryError::NoResourceMetadata { server_url: entry.url.clone(), tried: Vec::new() })
        }
        other => other,
    };
    if let Ok(d) = &discovered {
        d.narrate(events, &entry.name);
    }
    let (issuer, resource, meta) = match (discovered, &client.issuer) {
        (Ok(d), Some(pinned)) if d.authorization_server.trim_end_matches('/') != pinned.trim_end_matches('/') => {
            return Err(ClientError::UntrustedIssuer {
                server: entry.name.clone(),
                named: d.authorization_server,
                configured: pinned.clone(),
            });
        }
        (Ok(d), _) => (d.authorization_server, entry.resource.clone().unwrap_or(d.resource), Some(d.metadata)),
        // A server that publishes no RFC 9728 metadata (written before it existed) works
        // with a pinned issuer: the server's URL (or its configured resource) is the resource.
        (Err(DiscoveryError::NoResourceMetadata { .. }), Some(pinned)) => {
            let meta = match (&client.token_endpoint, &client.jwks_uri) {
                // Both configured: nothing left to discover.
                (Some(_), Some(_)) => None,
                _ => Some(fetch_as_metadata(http, pinned).await.map_err(|e| match e {
                    DiscoveryError::Unreachable { url, failure } => as_unreachable(url, failure),
                    e => ClientError::Discovery { server: entry.name.clone(), reason: e.to_string() },
                })?),
            };
            (pinned.clone(), entry.resource.clone().unwrap_or_else(|| entry.url.clone()), meta)
        }
        (Err(DiscoveryError::ResourceMismatch { advertised, .. }), _) => {
            return Err(ClientError::ResourceMismatch {
                server: entry.name.clone(),
                advertised,
                url: entry.url.clone(),
            });
        }
        (Err(DiscoveryError::Unreachable { url, failure }), _) => return Err(as_unreachable(url, failure)),
        (Err(e), None) => {
            return Err(ClientError::Discovery {
                server: entry.name.clone(),
                reason: format!("{e} (or pin the authorization server with issuer in [client])"),
            });
        }
        (Err(e), Some(_)) => return Err(ClientError::Discovery { server: entry.name.clone(), reason: e.to_string() }),
    };
    // No jwks_uri anywhere (RFC 8414 makes it optional): the issuer's tokens are opaque to
    // this client. Introspection (RFC 7662) only comes from the metadata.
    let token_endpoint = match (&client.token_endpoint, &meta) {
        (Some(t), _) => t.clone(),
        (None, Some(m)) => m.token_endpoint.clone(),
        // `meta` is only skipped when token_endpoint is configured (above).
        (None, None) => {
            return Err(ClientError::Discovery { server: entry.name.clone(), reason: "no token endpoint".into() });
        }
    };
    let jwks_uri = client.jwks_uri.clone().or_else(|| meta.as_ref().and_then(|m| m.jwks_uri.clone()));
    let introspection = meta.as_ref().and_then(|m| m.introspection_endpoint.clone());
    check_url(&token_endpoint, allow)?;
    for url in jwks_uri.iter().chain(&introspection) {
        check_url(url, allow)?;
    }
    let supported = meta.as_ref().map(|m| m.token_endpoint_auth_methods_supported.as_slice()).unwrap_or_default();
    let method = choose(configured_method, secret.is_some(), key.is_some(), supported).map_err(client_auth)?;
    // The assertion's audience is the issuer identifier as the authorization server states it.
    let audience = meta.as_ref().map(|m| m.issuer.clone()).unwrap_or_else(|| issuer.clone());
    let auth = ClientAuthenticator::new(&client.client_id, method, secret, key, &audience).map_err(client_auth)?;
    tracing::info!(server = %entry.name, %issuer, method = method.name(), "client authentication chosen");
    let verification = match jwks_uri {
        Some(jwks_uri) => Verification::Jwks(Box::new(
            Verifier::new(
                VerifierConfig { issuer, audience: resource.clone(), leeway_secs: DEFAULT_LEEWAY_SECS },
                Arc::new(JwksCache::from_url(http.clone(), jwks_uri).with_clock(events.clock().clone())),
            )
            .with_clock(events.clock().clone()),
        )),
        None => Verification::NoJwks,
    };
    let assertion = match &client.identity_assertion {
        Some(ia) => {
            check_url(&ia.idp_token_endpoint, allow)?;
            let id_token =
                std::env::var(&ia.id_token_env).map_err(|_| ClientError::SecretEnvMissing(ia.id_token_env.clone()))?;
            Some(IdentityAssertion {
                idp_token_endpoint: ia.idp_token_endpoint.clone(),
                idp_client_id: ia.idp_client_id.clone(),
                id_token: Secret::new(id_token),
                audience: audience.clone(),
            })
        }
        None => None,
    };
    let source = TokenSource { token_endpoint, resource, auth, assertion };
    Ok(Arc::new(
        TokenManager::new(http.clone(), source, verification, scopes, events.clone())
            .with_introspection(introspection)
            .for_server(&entry.name),
    ))
}

/// The Bearer challenge the server answers an unauthenticated request with (its
/// `resource_metadata` and `scope`), or an empty one: discovery then tries the well-known
/// URLs. Nothing is sent but a ping without credentials.
pub(crate) async fn probe_challenge(http: &reqwest::Client, url: &str) -> BearerChallenge {
    let probe = http
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
        .send()
        .await;
    probe
        .ok()
        .and_then(|r| r.headers().get(reqwest::header::WWW_AUTHENTICATE)?.to_str().ok().map(str::to_string))
        .and_then(|h| BearerChallenge::parse(&h))
        .unwrap_or_default()
}

/// https everywhere; http only for loopback hosts and only when explicitly allowed (the rule
/// discovery applies to every URL it follows).
fn check_url(url: &str, allow_http_loopback: bool) -> Result<(), ClientError> {
    discovery::check_url(url, allow_http_loopback, "URL").map_err(|e| match e {
        DiscoveryError::Insecure { url, .. } => ClientError::InsecureUrl { url },
        _ => ClientError::BadUrl { url: url.to_string() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::discovery::resource_matches;

    #[test]
    fn plain_http_only_for_allowed_loopback() {
        assert!(check_url("https://example.com/mcp", false).is_ok());
        assert!(check_url("http://127.0.0.1:8001/mcp", false).is_err());
        assert!(check_url("http://127.0.0.1:8001/mcp", true).is_ok());
        assert!(check_url("http://[::1]:8001/mcp", true).is_ok());
        assert!(check_url("http://localhost/mcp", true).is_ok());
        assert!(check_url("http://example.com/mcp", true).is_err());
        assert!(check_url("http://127.0.0.1.evil.com/mcp", true).is_err());
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
        // Regression (issue 11, defect 7): userinfo is not the host.
        assert!(check_url("http://localhost:80@evil.example/", true).is_err());
        assert!(check_url("http://127.0.0.1@evil.example/mcp", true).is_err());
        assert!(matches!(check_url("not a url", true), Err(ClientError::BadUrl { .. })));
    }

    #[test]
    fn a_server_may_only_name_itself_as_the_resource() {
        let url = "https://mcp.example.com:8443/api/mcp";
        assert!(resource_matches("https://mcp.example.com:8443/api/mcp", url));
        assert!(resource_matches("https://mcp.example.com:8443/api/mcp/", url));
        assert!(resource_matches("https://mcp.example.com:8443/api", url), "a path prefix at a segment boundary");
        assert!(resource_matches("https://mcp.example.com:8443/", url));
        assert!(!resource_matches("https://mcp.example.com:8443/ap", url), "not mid-segment");
        assert!(!resource_matches("https://other.example.com:8443/api/mcp", url), "another host");
        assert!(!resource_matches("https://mcp.example.com/api/mcp", url), "another port");
        assert!(!resource_matches("http://mcp.example.com:8443/api/mcp", url), "another scheme");
        assert!(!resource_matches("https://mcp.example.com:8443/api/mcp/admin", url), "a longer path");
    }
}
