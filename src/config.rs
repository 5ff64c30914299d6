//! Warden's configuration: one TOML schema whose sections are all optional, so the same
//! file type serves `warden serve` (`[issuer]`, `[service]`, `[tls]`) and the client
//! commands (`[client]`, `[[servers]]`, written by `serve` as `STATE/client.toml`).
//!
//! Lookup order: `--config PATH`, then `$XDG_CONFIG_HOME/warden/warden.toml` (default
//! `~/.config/warden/warden.toml`), then the defaults compiled into the binary (the
//! repository's `config/warden.toml`), so `warden serve` works from any directory. A file
//! in the working directory is never read without `--config`.
//!
//! May import: `types`, `paths`, `security`, `observe`, `auth` (no server, client or
//! frontend module: those read the config, not the other way round). Enforced by
//! `tests/layering.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::types::scope::ScopeSet;

/// The repository's default config, compiled in.
pub const DEFAULT_CONFIG: &str = include_str!("../config/warden.toml");
/// Demo client secrets (plaintext) for writing `client.toml`; the issuer never reads them.
pub const DEMO_SECRETS: &str = include_str!("../config/demo-secrets.toml");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("could not read config {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub issuer: IssuerConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<crate::observe::monitor::MonitorConfig>,
    /// OpenTelemetry export (`[telemetry]`: endpoint, headers, service name, content, metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<crate::observe::telemetry::TelemetrySettings>,
    /// Connection limits of both servers (timeouts, connection cap).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The text log `STATE/logs/warden.log` (size-based rotation).
    #[serde(default)]
    pub log: LogConfig,
    /// How to log in to a server that needs OAuth without client credentials: set from the
    /// command line (`--auth`, `--step-up`, the state dir) and `[client] login`, never read
    /// from the file as such.
    #[serde(skip)]
    pub login: LoginOptions,
}

/// The authorization-code login's settings for one run (see `auth::authcode`).
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// None: no login; a server that needs OAuth ends in a report of what was discovered.
    pub mode: Option<crate::auth::authcode::LoginMode>,
    pub step_up: crate::auth::authcode::StepUp,
    /// Where registrations and the sealed refresh tokens live.
    pub state_dir: Option<PathBuf>,
    /// How long a browser login may take (default `auth::authcode::BROWSER_WAIT`).
    pub wait: Option<std::time::Duration>,
    /// `--client-id-metadata-url`: overrides `[client] client_id_metadata_url`.
    pub client_id_metadata_url: Option<String>,
}

/// The audit trail (`STATE/audit/`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// When the client's records reach the disk; the default fsyncs every record.
    pub client_fsync: crate::observe::audit::FsyncPolicy,
    /// The servers' decision log: group commit by default (see README).
    pub server_fsync: crate::observe::audit::FsyncPolicy,
    pub max_segment_bytes: u64,
    /// The key that signs the head and checkpoints; keep it outside `STATE/audit/`
    /// (default `STATE/keys/audit-checkpoint.key`, created 0600 on first use).
    pub checkpoint_key: Option<PathBuf>,
    /// A signed checkpoint every this many records…
    pub checkpoint_every_records: u64,
    /// …or after this many seconds, whichever comes first.
    pub checkpoint_every_secs: u64,
    /// `refuse` (default): an action whose record cannot be written is refused (the service
    /// answers 503, the client does not send the call); `continue`: log a warning, go ahead.
    pub on_failure: crate::observe::audit::OnFailure,
    /// Retention: keep at most this many segments per log (unset: keep all).
    pub retain_segments: Option<usize>,
    /// Retention: keep the newest segments up to this many bytes per log.
    pub retain_bytes: Option<u64>,
    /// Retention: delete segments last written more than this many days ago.
    pub retain_days: Option<u64>,
    /// Requests with an unusable token are counted per peer address over this many seconds
    /// and recorded once per interval (the first one at once), not one record each.
    pub denial_interval_secs: u64,
    /// Peers tracked at once for that count; more are counted together as `other`.
    pub denial_max_peers: usize,
}

impl AuditConfig {
    /// Where the checkpoint key lives for state directory `state_dir`.
    pub fn checkpoint_key_path(&self, state_dir: &Path) -> PathBuf {
        self.checkpoint_key.clone().unwrap_or_else(|| state_dir.join("keys").join("audit-checkpoint.key"))
    }

    /// The log options for one of the two trails, with the key loaded (created on first use).
    pub fn log_options(
        &self,
        state_dir: &Path,
        fsync: crate::observe::audit::FsyncPolicy,
        clock: crate::types::time::SharedClock,
    ) -> Result<crate::observe::audit::AuditOptions, crate::observe::checkpoint::KeyError> {
        let key = crate::observe::checkpoint::CheckpointKey::load_or_create(
            &self.checkpoint_key_path(state_dir),
            &state_dir.join("audit"),
        )?;
        Ok(crate::observe::audit::AuditOptions {
            fsync,
            max_segment_bytes: self.max_segment_bytes,
            key: Some(std::sync::Arc::new(key)),
            checkpoint_every_records: self.checkpoint_every_records.max(1),
            checkpoint_every: std::time::Duration::from_secs(self.checkpoint_every_secs.max(1)),
            retention: crate::observe::audit::Retention {
                segments: self.retain_segments,
                bytes: self.retain_bytes,
                days: self.retain_days,
            },
            on_failure: self.on_failure,
            clock,
        })
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            client_fsync: crate::observe::audit::FsyncPolicy::Always,
            server_fsync: crate::observe::audit::FsyncPolicy::Batch { interval_ms: 50 },
            max_segment_bytes: 16 * 1024 * 1024,
            checkpoint_key: None,
            checkpoint_every_records: 1000,
            checkpoint_every_secs: 60,
            on_failure: crate::observe::audit::OnFailure::Refuse,
            retain_segments: None,
            retain_bytes: None,
            retain_days: None,
            denial_interval_secs: 10,
            denial_max_peers: 4096,
        }
    }
}

/// Console look and keys.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// `dark` (default), `light`, `mono`, or a path to a theme TOML file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// Action → key overrides, e.g. `grant = "ctrl-g"`. Action names are checked by the
    /// console's keymap when it starts (the config layer knows no frontend).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
}

/// The agent's language model and loop bounds (`--model` etc. override).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `offline` (default), `openai/MODEL`, `anthropic/MODEL`, `ollama/MODEL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iters: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    pub addr: SocketAddr,
    /// Public issuer URL; defaults to `https://<bound addr>`.
    pub url: Option<String>,
    pub token_ttl_secs: u64,
    /// Resource URIs (RFC 8707) tokens may be issued for, besides the local service.
    pub resources: Vec<String>,
    /// How many previous signing keys stay in the JWKS after a rotation.
    pub keep_previous_keys: usize,
    /// Where the signing keys live; defaults to `STATE/issuer`. Issuer instances given the
    /// same directory share their keys (any one's JWKS verifies any one's tokens) and pick
    /// up a rotation made by another without a restart.
    pub keys_dir: Option<PathBuf>,
    pub clients: Vec<ClientRegistration>,
    /// Throttling of failed client authentication at `/token`.
    pub auth_throttle: AuthThrottleConfig,
    /// Users who may approve an authorization request at `/authorize`: user name →
    /// PBKDF2 hash of the password (`warden hash-secret`). No users: no `/authorize`.
    pub users: BTreeMap<String, String>,
    /// Approve every valid `/authorize` request at once as the first user (by name), with
    /// no consent page: for CI and headless demos only.
    pub auto_approve: bool,
    /// Dynamic client registration (RFC 7591) at `/register`.
    pub registration: bool,
    /// Scopes a dynamically registered client may request when it names none.
    pub registration_default_scopes: ScopeSet,
    /// The most a dynamically registered client may ever be allowed.
    pub registration_max_scopes: ScopeSet,
    /// Most dynamically registered clients kept (`STATE/issuer/registered-clients.json`).
    pub max_registered_clients: usize,
    /// Registrations one peer address may make at once...
    pub registration_burst: u32,
    /// ...and per minute after that.
    pub registration_per_minute: f64,
    /// A refresh token family (one login) lasts this long; rotation does not extend it.
    pub refresh_ttl_secs: u64,
    /// Most live logins (refresh token families) per client; the oldest goes first.
    pub max_refresh_per_client: usize,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            url: None,
            token_ttl_secs: 900,
            resources: Vec::new(),
            keep_previous_keys: 1,
            keys_dir: None,
            clients: Vec::new(),
            auth_throttle: AuthThrottleConfig::default(),
            users: BTreeMap::new(),
            auto_approve: false,
            registration: true,
            registration_default_scopes: ScopeSet::new(),
            registration_max_scopes: ScopeSet::new(),
            max_registered_clients: 1000,
            registration_burst: 10,
            registration_per_minute: 10.0,
            refresh_ttl_secs: 8 * 3600,
            max_refresh_per_client: 20,
        }
    }
}

/// A registered OAuth client. Only the hash of its secret is ever stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: String,
    pub secret_hash: String,
    pub allowed_scopes: ScopeSet,
    /// Scopes granted when a request names none; defaults to all allowed scopes.
    #[serde(default)]
    pub default_scopes: Option<ScopeSet>,
    #[serde(default)]
    pub description: String,
    /// Redirect URIs for the authorization code flow (exact match; an `http` loopback URI
    /// matches any port, RFC 8252 §7.3). None: client credentials only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic` or `client_secret_post`: the one way this client must send its
    /// secret at `/token` and `/revoke`. None: either is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub addr: SocketAddr,
    /// Public resource URI of `/mcp`; defaults to `https://<bound addr>/mcp`.
    pub resource: Option<String>,
    /// Trust this authorization server instead of the embedded one.
    pub issuer: Option<String>,
    /// Explicit JWKS URL (skips RFC 8414 discovery of the trusted issuer).
    pub jwks_uri: Option<String>,
    /// CA bundle for reaching an external issuer over TLS.
    pub issuer_ca_file: Option<PathBuf>,
    pub leeway_secs: u64,
    pub rate_limit: RateLimitConfig,
    pub max_body_bytes: usize,
    /// SQLite database; defaults to `STATE/service.db`.
    pub database: Option<PathBuf>,
    /// `[service.store]`: a PostgreSQL server instead of the SQLite file.
    pub store: StoreConfig,
    /// Extra `Host` header values accepted (DNS-rebinding protection allows loopback only).
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`https://app.example`) allowed to call `/mcp`, besides loopback ones;
    /// a request with any other `Origin` is refused (MCP transport: servers MUST validate it).
    pub allowed_origins: Vec<String>,
    /// Answer plain stateless `tools/call` requests directly through the tool handlers
    /// instead of building an rmcp service per request (same responses, a third less CPU).
    pub direct_calls: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8001)),
            resource: None,
            issuer: None,
            jwks_uri: None,
            issuer_ca_file: None,
            leeway_secs: crate::auth::verify::DEFAULT_LEEWAY_SECS,
            rate_limit: RateLimitConfig::default(),
            max_body_bytes: 64 * 1024,
            database: None,
            store: StoreConfig::default(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            direct_calls: true,
        }
    }
}

/// `[service.store]`: where customers, tickets, idempotency keys (and, with PostgreSQL, the
/// shared rate limit) live. Without `url`, the embedded SQLite file (`[service] database`).
/// `Debug` shows the URL redacted: a password in it must not reach a log through `{:?}`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/db[?sslmode=…]`. A password may be in the URL, but is
    /// better read from `password_env`; it is never logged (messages show the URL redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Environment variable holding the password when the URL has none (default
    /// `PGPASSWORD`, as libpq reads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// CA bundle (PEM) that signs the server's certificate; default: the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Connections per instance.
    pub pool_size: usize,
    /// Longest wait for a connection (pool slot, connect) or an answer, in milliseconds; past
    /// it the call fails as "store unavailable" instead of hanging.
    pub timeout_ms: u64,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("password_env", &self.password_env)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// A database URL fit for messages and logs: the password (in the user part or a
/// `password=` parameter) replaced by `***`. Something that is not a URL at all is not
/// shown, since where its secret is cannot be known.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "<the configured URL, not shown: it does not parse as a URL>".into();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") { "***".to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: None, password_env: None, ca_file: None, pool_size: 16, timeout_ms: 5_000 }
    }
}

/// Token bucket per client: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_second: 50.0, burst: 100 }
    }
}

/// `/token` client-authentication throttling (see `issuer::throttle` for the design and the
/// lockout trade-off). Buckets count *failed* authentications only; a success costs nothing.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthThrottleConfig {
    /// Failed authentications one peer address (IPv6: its /64) may make at once...
    pub peer_failures_burst: u32,
    /// ...and per second after that.
    pub peer_failures_per_second: f64,
    /// Failed authentications against one registered client id at once, from anywhere...
    pub client_failures_burst: u32,
    /// ...and per second after that.
    pub client_failures_per_second: f64,
    /// A peer that authenticated as a client within this many seconds is still let through
    /// (to the secret check) while that client's failure budget is spent by others.
    pub trusted_peer_secs: u64,
    /// Secret hashes (PBKDF2) computed at once on the blocking pool; 0: one per CPU core.
    pub max_concurrent_hashes: usize,
    /// Token requests that may wait for a hashing slot; beyond that, 503 at once.
    pub max_queued_hashes: usize,
}

impl Default for AuthThrottleConfig {
    fn default() -> Self {
        Self {
            peer_failures_burst: 10,
            peer_failures_per_second: 0.5,
            client_failures_burst: 20,
            client_failures_per_second: 1.0,
            trusted_peer_secs: 3600,
            max_concurrent_hashes: 0,
            max_queued_hashes: 64,
        }
    }
}

/// Connection limits, applied to each server (issuer and MCP service) separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// TLS handshake must finish within this many seconds.
    pub handshake_timeout_secs: u64,
    /// HTTP/1.1: a request's header must arrive within this many seconds, counted from the
    /// connection's start or the end of the previous response (so it also bounds how long a
    /// kept-alive HTTP/1.1 connection may sit idle).
    pub header_read_timeout_secs: u64,
    /// A connection on which no byte moves either way for this many seconds is closed
    /// (HTTP/2 and connections that never send a request included).
    pub idle_timeout_secs: u64,
    /// Open connections per server; a connection beyond the cap is closed at once, before
    /// the TLS handshake.
    pub max_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { handshake_timeout_secs: 10, header_read_timeout_secs: 10, idle_timeout_secs: 60, max_connections: 1024 }
    }
}

/// The text log: `warden.log` is rotated to `warden.log.1` (… `.N`) when it would pass
/// `max_file_bytes`; the oldest beyond `keep_files` is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one.
    pub keep_files: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { max_file_bytes: 10 * 1024 * 1024, keep_files: 5 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM) to serve instead of the generated dev certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Client credentials and trust settings (consumed by the client commands).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// The authorization server we trust with our credentials (pinned): a server whose
    /// metadata names a different one is refused. Unset: the one the server's RFC 9728
    /// metadata names (after the check that the metadata is the server's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// A `Secret` from the moment it is parsed: never in Debug output, errors or logs.
    #[serde(serialize_with = "crate::types::secret::serialize_exposed")]
    pub client_secret: Option<crate::types::secret::Secret<String>>,
    /// Read the secret from this environment variable instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// A PEM private key (EC P-256/P-384 or RSA) for `private_key_jwt` (RFC 7523).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// The key's algorithm: ES256, ES384 or RS256 (default: ES256 for an EC key, RS256 for RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_alg: Option<String>,
    /// `client_secret_basic` (`basic`), `client_secret_post` (`post`), `private_key_jwt` or
    /// `none`; default: chosen from the credential and what the authorization server lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file` (and `SSL_CERT_FILE`), not the system roots.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ca_only: bool,
    /// Allow plain `http://` URLs, for loopback addresses only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_loopback: bool,
    /// Per-request timeout in seconds (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// `browser` or `headless`: log in with the authorization code flow when a server needs
    /// OAuth and this section has no client secret (`--auth` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<crate::auth::authcode::LoginMode>,
    /// A client ID metadata document URL, used as the client_id with authorization servers
    /// that say they support them (`client_id_metadata_document_supported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_url: Option<String>,
    /// Enterprise-managed authorization (`[client.identity_assertion]`): tokens by the JWT
    /// bearer grant with an identity assertion from the enterprise's identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_assertion: Option<IdentityAssertionSection>,
}

/// `[client.identity_assertion]`: where the user's single sign-on ID token is exchanged for
/// an identity assertion grant (MCP SEP-990).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityAssertionSection {
    /// The identity provider's token endpoint (RFC 8693 token exchange).
    pub idp_token_endpoint: String,
    /// This client's id at the identity provider.
    pub idp_client_id: String,
    /// The environment variable holding the user's ID token (never the token itself).
    pub id_token_env: String,
}

/// How Warden authenticates to one MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No Authorization header, nothing added: a public or local server.
    None,
    /// The static `headers` of the entry (an API key), sent with every request.
    Headers,
    /// Client-credentials tokens from the `[client]` section's authorization server.
    Oauth,
}

impl AuthMode {
    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Headers => "headers",
            Self::Oauth => "oauth",
        }
    }
}

/// One MCP server: reached over streamable HTTP (`url`) or started as a child process
/// speaking MCP on its stdin/stdout (`command`). Exactly one of the two is set (checked
/// when the config is parsed; `transport()` is the typed view).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub name: String,
    /// The streamable-HTTP endpoint; empty for a stdio server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// A stdio server: the program to start (looked up on `PATH`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// …its arguments…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// …the environment it gets besides `PATH` and `HOME` (values may use `${VAR}`; they
    /// are secrets: API keys live here)…
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", serialize_with = "serialize_exposed_map")]
    pub env: BTreeMap<String, crate::types::secret::Secret<String>>,
    /// …and its working directory (default: Warden's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// `none`, `headers` or `oauth`; see `auth_mode` for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthMode>,
    /// Resource URI (RFC 8707) to request tokens for; default: from the server's RFC 9728
    /// metadata, else the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Headers sent with every request (`X-API-Key = "${MY_KEY}"`): `${VAR}` is expanded
    /// when the config is loaded and the values are secrets from then on (shown only as
    /// fingerprints). Under `auth = "oauth"` an Authorization header here is ignored: the
    /// token manager owns it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", serialize_with = "serialize_exposed_map")]
    pub headers: BTreeMap<String, crate::types::secret::Secret<String>>,
    /// Tool → required scopes, overriding or filling in what the server advertises.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scopes: BTreeMap<String, ScopeSet>,
    /// Which of this server's tool calls wait for the operator: `destructive` (default:
    /// tools not annotated read-only or non-destructive), `always`, or `never`. The
    /// console asks; `warden run` and `warden call` need `--yes`.
    #[serde(default)]
    pub confirm: crate::types::tool::Confirm,
}

/// The typed view of how a server is reached.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    Http { url: &'a str },
    Stdio { command: &'a str, args: &'a [String] },
}

impl ServerEntry {
    /// A streamable-HTTP server with nothing else set.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::blank(name.into(), url.into(), None)
    }

    /// A stdio server with nothing else set.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>, args: Vec<String>) -> Self {
        Self { args, ..Self::blank(name.into(), String::new(), Some(command.into())) }
    }

    fn blank(name: String, url: String, command: Option<String>) -> Self {
        Self {
            name,
            url,
            command,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            auth: None,
            resource: None,
            headers: BTreeMap::new(),
            scopes: BTreeMap::new(),
            confirm: Default::default(),
        }
    }

    pub fn transport(&self) -> Transport<'_> {
        match &self.command {
            Some(command) => Transport::Stdio { command, args: &self.args },
            None => Transport::Http { url: &self.url },
        }
    }

    /// Where the server is, for people and for manifest pins: the URL, or the command line.
    pub fn endpoint(&self) -> String {
        match self.transport() {
            Transport::Http { url } => url.to_string(),
            Transport::Stdio { command, args } => {
                std::iter::once(command).chain(args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
            }
        }
    }

    /// The auth mode in force. Unset: `oauth` for an HTTP server when the config has a
    /// `[client]` section; otherwise `headers` when headers are configured, else `none`
    /// (`auth_discovered`: a server that then answers 401 with a Bearer challenge is
    /// discovered as an OAuth server and reported). A stdio server
    /// is never OAuth: it is a local process, authenticated by what it is started with.
    pub fn auth_mode(&self, has_client: bool) -> AuthMode {
        self.auth.unwrap_or(if self.command.is_none() && has_client {
            AuthMode::Oauth
        } else if !self.headers.is_empty() && self.command.is_none() {
            AuthMode::Headers
        } else {
            AuthMode::None
        })
    }

    /// Whether the auth mode is left to the server: an HTTP server with neither `auth` nor
    /// `headers` set, in a config without `[client]` (so also every `--url` without
    /// `--header` or `--config`). Warden connects without credentials; a 401 with a Bearer
    /// challenge starts OAuth discovery, and a server that never asks stays `none`.
    pub fn auth_discovered(&self, has_client: bool) -> bool {
        self.auth.is_none() && self.command.is_none() && self.headers.is_empty() && !has_client
    }

    /// `resolve` against the process environment, for entries built from the command line.
    pub fn resolved(mut self) -> Result<Self, String> {
        self.resolve(&|var| std::env::var(var).ok())?;
        Ok(self)
    }

    /// Checks the combination of keys and expands `${VAR}` in header and env values
    /// (`lookup` is the environment; a parameter so tests need not touch the process's).
    fn resolve(&mut self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        let name = &self.name;
        match (&self.command, self.url.is_empty()) {
            (Some(_), false) => {
                return Err(format!(
                    "server {name} has both url and command: give one (url for HTTP, command for stdio)"
                ));
            }
            (None, true) => {
                return Err(format!(
                    "server {name} has neither url nor command: give url = \"https://…\" or command = \"…\""
                ));
            }
            _ => {}
        }
        if self.command.is_some() {
            if self.auth == Some(AuthMode::Oauth) || self.auth == Some(AuthMode::Headers) {
                return Err(format!(
                    "server {name} is a stdio server: auth = \"{}\" applies to HTTP servers only (pass credentials in env)",
                    self.auth.map(AuthMode::label).unwrap_or_default()
                ));
            }
            if !self.headers.is_empty() || self.resource.is_some() {
                return Err(format!(
                    "server {name} is a stdio server: headers and resource apply to HTTP servers only"
                ));
            }
        } else if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
            return Err(format!("server {name} has a url: args, env and cwd apply to stdio servers (command) only"));
        }
        match (self.auth, self.headers.is_empty()) {
            (Some(AuthMode::Headers), true) => {
                return Err(format!(
                    "server {name} has auth = \"headers\" but no headers: add headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }}"
                ));
            }
            (Some(AuthMode::None), false) => {
                return Err(format!(
                    "server {name} has auth = \"none\" and headers: remove the headers, or set auth = \"headers\" to send them"
                ));
            }
            _ => {}
        }
        for (what, map) in [("header", &mut self.headers), ("env", &mut self.env)] {
            for (key, value) in map.iter_mut() {
                let expanded =
                    expand_env(value.expose(), lookup).map_err(|why| format!("server {name}, {what} {key}: {why}"))?;
                *value = crate::types::secret::Secret::new(expanded);
            }
        }
        Ok(())
    }
}

/// Replaces each `${VAR}` with the variable's value. An unset variable is an error (a
/// header that silently became empty would fail far from its cause); `$` not followed by
/// `{` is kept as is.
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err("an unterminated ${ (write ${NAME})".to_string());
        };
        let var = &after[..end];
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("${{{var}}} is not a variable name (letters, digits and _)"));
        }
        match lookup(var) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("uses ${{{var}}}, which is not set in the environment: export {var}=…")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Writes secret values into a file the user asked for (`client.toml`): the serialized
/// config is only ever written there, never logged.
fn serialize_exposed_map<S: serde::Serializer>(
    map: &BTreeMap<String, crate::types::secret::Secret<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        m.serialize_entry(k, v.expose())?;
    }
    m.end()
}

/// The common `mcpServers` JSON shape (Claude Desktop, Cursor, …), optionally with a
/// Warden `client` section alongside.
#[derive(Debug, Deserialize)]
struct McpServersJson {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, McpServerJson>,
    #[serde(default)]
    client: Option<ClientSection>,
}

/// One entry of `mcpServers`. Unknown keys are tolerated: desktop clients add their own
/// (`disabled`, `alwaysAllow`, …) and a file shared with them must still load.
#[derive(Debug, Deserialize)]
struct McpServerJson {
    url: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, crate::types::secret::Secret<String>>,
    #[serde(default)]
    resource: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, crate::types::secret::Secret<String>>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    auth: Option<AuthMode>,
    /// Warden's own key, as in `[[servers]]` (other clients ignore it).
    #[serde(default)]
    confirm: crate::types::tool::Confirm,
}

impl McpServerJson {
    fn into_entry(self, name: String) -> Result<ServerEntry, String> {
        match self.kind.as_deref() {
            None | Some("http") | Some("streamable-http") | Some("streamableHttp") | Some("stdio") => {}
            Some("sse") => {
                return Err(format!(
                    "mcpServers.{name} uses the legacy SSE transport (type \"sse\"), which Warden does not support: use the server's streamable HTTP endpoint (often /mcp) with type \"http\""
                ));
            }
            Some(other) => {
                return Err(format!(
                    "mcpServers.{name} has type {other:?}: Warden supports \"stdio\", \"http\" and \"streamable-http\""
                ));
            }
        }
        Ok(ServerEntry {
            name,
            url: self.url.unwrap_or_default(),
            command: self.command,
            args: self.args,
            env: self.env,
            cwd: self.cwd,
            auth: self.auth,
            resource: self.resource,
            headers: self.headers,
            scopes: BTreeMap::new(),
            confirm: self.confirm,
        })
    }
}

impl ClientSection {
    /// A client that trusts `issuer` only.
    pub fn new(issuer: &str, client_id: &str) -> Self {
        Self { issuer: Some(issuer.to_string()), ..Self::adhoc(client_id) }
    }

    /// A client whose authorization server is whichever the server's metadata names.
    pub fn adhoc(client_id: &str) -> Self {
        Self {
            issuer: None,
            token_endpoint: None,
            jwks_uri: None,
            client_id: client_id.to_string(),
            client_secret: None,
            client_secret_env: None,
            client_key: None,
            client_key_alg: None,
            auth_method: None,
            scopes: None,
            ca_file: None,
            ca_only: false,
            allow_http_loopback: false,
            timeout_secs: None,
            login: None,
            client_id_metadata_url: None,
            identity_assertion: None,
        }
    }
}

impl Config {
    /// Parses TOML, or `mcpServers` JSON when the text is a JSON object; `${VAR}` in server
    /// headers and env values is expanded from the process environment.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        Self::parse_with_env(text, origin, &|var| std::env::var(var).ok())
    }

    /// `parse` with the environment given as a lookup function.
    pub fn parse_with_env(
        text: &str,
        origin: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let err = |message: String| ConfigError::Parse { path: origin.to_path_buf(), message };
        let mut config = if text.trim_start().starts_with('{') {
            let json: McpServersJson = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
            let mut servers = Vec::new();
            for (name, s) in json.mcp_servers {
                servers.push(s.into_entry(name).map_err(err)?);
            }
            Config { client: json.client, servers, ..Config::default() }
        } else {
            toml::from_str::<Config>(text).map_err(|e| err(e.to_string()))?
        };
        for server in &mut config.servers {
            server.resolve(lookup).map_err(err)?;
        }
        Ok(config)
    }

    /// Loads the config by the lookup order in the module docs.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, PathBuf), ConfigError> {
        let candidates = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => {
                // Only the user's own config directory: never a file that happens to be in
                // the working directory (a checkout, a download folder) without `--config`.
                let dir = std::env::var_os("XDG_CONFIG_HOME")
                    .filter(|x| !x.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
                dir.map(|d| d.join("warden/warden.toml")).into_iter().collect::<Vec<_>>()
            }
        };
        for path in &candidates {
            if explicit.is_none() && !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.clone(), cause: source })?;
            return Ok((Self::parse(&text, path)?, path.clone()));
        }
        let builtin = PathBuf::from("<built-in config/warden.toml>");
        Ok((Self::parse(DEFAULT_CONFIG, &builtin)?, builtin))
    }
}

/// The plaintext demo secret for `client_id`, if the demo file has one.
pub fn demo_secret(client_id: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Demo {
        clients: std::collections::BTreeMap<String, String>,
    }
    let demo: Demo = toml::from_str(DEMO_SECRETS).ok()?;
    demo.clients.get(client_id).cloned()
}

/// The plaintext demo password of `user` (the consent page's demo user), if the demo file
/// has one.
pub fn demo_password(user: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Demo {
        #[serde(default)]
        users: std::collections::BTreeMap<String, String>,
    }
    let demo: Demo = toml::from_str(DEMO_SECRETS).ok()?;
    demo.users.get(user).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_is_read_per_server_in_toml_and_mcp_servers_json() {
        use crate::types::tool::Confirm;
        let toml = r#"
[[servers]]
name = "files"
command = "files-mcp"
confirm = "always"

[[servers]]
name = "crm"
url = "https://crm.example/mcp"
"#;
        let c = Config::parse(toml, Path::new("c.toml")).unwrap();
        assert_eq!((c.servers[0].confirm, c.servers[1].confirm), (Confirm::Always, Confirm::Destructive));
        let json = r#"{"mcpServers": {"files": {"command": "files-mcp", "confirm": "never"}}}"#;
        assert_eq!(Config::parse(json, Path::new("m.json")).unwrap().servers[0].confirm, Confirm::Never);
        let bad = toml.replace("\"always\"", "\"sometimes\"");
        let msg = Config::parse(&bad, Path::new("c.toml")).unwrap_err().to_string();
        assert!(msg.contains("sometimes") && msg.contains("destructive"), "{msg}");
    }

    #[test]
    fn mcp_servers_json_is_accepted() {
        let text = r#"{"mcpServers": {"support": {"url": "https://127.0.0.1:8001/mcp", "headers": {"X-Team": "ops"}}},
                       "client": {"issuer": "https://127.0.0.1:8443", "client_id": "support-agent"}}"#;
        let c = Config::parse(text, Path::new("mcp.json")).unwrap();
        assert_eq!(c.servers.len(), 1);
        assert_eq!((c.servers[0].name.as_str(), c.servers[0].url.as_str()), ("support", "https://127.0.0.1:8001/mcp"));
        assert_eq!(c.servers[0].headers["X-Team"].expose(), "ops");
        assert_eq!(c.client.unwrap().client_id, "support-agent");
    }

    #[test]
    fn mcp_servers_json_brings_stdio_servers_expands_headers_and_refuses_sse() {
        let env = |v: &str| (v == "MY_KEY").then(|| "k-123".to_string());
        let text = r#"{"mcpServers": {
            "local": {"command": "node", "args": ["dist/index.js", "stdio"], "env": {"TOKEN": "${MY_KEY}"}},
            "remote": {"url": "https://api.example/mcp", "type": "streamable-http", "headers": {"X-API-Key": "key=${MY_KEY}"}}}}"#;
        let c = Config::parse_with_env(text, Path::new("m.json"), &env).unwrap();
        let local = &c.servers[0];
        assert_eq!(local.endpoint(), "node dist/index.js stdio");
        assert_eq!(local.env["TOKEN"].expose(), "k-123");
        assert_eq!(local.auth_mode(false), AuthMode::None);
        let remote = &c.servers[1];
        assert_eq!(remote.headers["X-API-Key"].expose(), "key=k-123");
        assert_eq!(remote.auth_mode(false), AuthMode::Headers);
        let sse = r#"{"mcpServers": {"old": {"url": "https://x.example/sse", "type": "sse"}}}"#;
        let msg = Config::parse(sse, Path::new("m.json")).unwrap_err().to_string();
        assert!(msg.contains("mcpServers.old uses the legacy SSE transport"), "{msg}");
        let unset =
            r#"{"mcpServers": {"r": {"url": "https://x.example/mcp", "headers": {"X-API-Key": "${NOPE_UNSET}"}}}}"#;
        let msg = Config::parse_with_env(unset, Path::new("m.json"), &env).unwrap_err().to_string();
        assert!(msg.contains("server r, header X-API-Key: uses ${NOPE_UNSET}, which is not set"), "{msg}");
    }

    #[test]
    fn auth_modes_default_by_client_section_and_bad_combinations_are_refused() {
        let none = |_: &str| None;
        let c = Config::parse_with_env(
            "[[servers]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\n",
            Path::new("c.toml"),
            &none,
        )
        .unwrap();
        assert_eq!(c.servers[0].auth_mode(false), AuthMode::None);
        assert_eq!(c.servers[0].auth_mode(true), AuthMode::Oauth);
        assert!(c.servers[0].auth_discovered(false), "auth unset, no headers, no [client]: the server decides");
        assert!(!c.servers[0].auth_discovered(true), "a [client] section means OAuth with it");
        let set = Config::parse_with_env(
            "[[servers]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\nauth = \"none\"\n",
            Path::new("c.toml"),
            &none,
        )
        .unwrap();
        assert!(!set.servers[0].auth_discovered(false), "auth set: the config decides");
        for (bad, says) in [
            ("name = \"a\"\nurl = \"https://a/mcp\"\ncommand = \"x\"", "both url and command"),
            ("name = \"a\"", "neither url nor command"),
            ("name = \"a\"\ncommand = \"x\"\nauth = \"oauth\"", "applies to HTTP servers only"),
            ("name = \"a\"\nurl = \"https://a/mcp\"\nauth = \"headers\"", "but no headers"),
            (
                "name = \"a\"\nurl = \"https://a/mcp\"\nauth = \"none\"\nheaders = { X = \"y\" }",
                "auth = \"none\" and headers",
            ),
        ] {
            let msg = Config::parse_with_env(&format!("[[servers]]\n{bad}\n"), Path::new("c.toml"), &none)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(says), "{bad}: {msg}");
        }
        assert_eq!(expand_env("a${X}b$c", &|_| Some("1".into())).unwrap(), "a1b$c");
        assert!(expand_env("${X", &|_| Some("1".into())).is_err());
    }

    #[test]
    fn built_in_config_parses_and_registers_the_three_clients() {
        let c = Config::parse(DEFAULT_CONFIG, Path::new("builtin")).unwrap();
        let ids: Vec<_> = c.issuer.clients.iter().map(|c| c.client_id.as_str()).collect();
        assert_eq!(ids, ["support-agent", "readonly-agent", "auditor"]);
        let support = &c.issuer.clients[0];
        assert_eq!(support.allowed_scopes.to_string(), "account:calculate customer:read ticket:create");
    }

    #[test]
    fn demo_secrets_match_the_registered_hashes() {
        let c = Config::parse(DEFAULT_CONFIG, Path::new("builtin")).unwrap();
        for reg in &c.issuer.clients {
            let secret = demo_secret(&reg.client_id).expect("demo secret");
            let hash = crate::security::hash::SecretHash::parse(&reg.secret_hash).unwrap();
            assert!(hash.verify(&secret), "{}", reg.client_id);
        }
    }

    #[test]
    fn audit_keys_parse_and_an_old_audit_section_still_loads() {
        let text = "[audit]\non_failure = \"continue\"\nretain_segments = 5\nretain_days = 30\ncheckpoint_key = \"/keys/a.key\"\ncheckpoint_every_records = 10\ndenial_interval_secs = 2\n";
        let a = Config::parse(text, Path::new("a.toml")).unwrap().audit.unwrap();
        assert_eq!(a.on_failure, crate::observe::audit::OnFailure::Continue);
        assert_eq!((a.retain_segments, a.retain_bytes, a.retain_days), (Some(5), None, Some(30)));
        assert_eq!(a.checkpoint_key_path(Path::new("/state")), PathBuf::from("/keys/a.key"));
        assert_eq!((a.checkpoint_every_records, a.checkpoint_every_secs, a.denial_interval_secs), (10, 60, 2));
        let old = Config::parse("[audit]\nmax_segment_bytes = 1000\n", Path::new("old.toml")).unwrap().audit.unwrap();
        assert_eq!(old.on_failure, crate::observe::audit::OnFailure::Refuse);
        assert_eq!(old.checkpoint_key_path(Path::new("/state")), PathBuf::from("/state/keys/audit-checkpoint.key"));
        assert_eq!((old.denial_max_peers, old.retain_segments), (4096, None));
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let err = Config::parse("[issuer]\ntoken_tll_secs = 5\n", Path::new("my.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("my.toml") && msg.contains("token_tll_secs"), "{msg}");
    }

    #[test]
    fn store_urls_are_shown_without_their_password() {
        assert_eq!(redact_url("postgres://warden:s3cret@db:5432/w"), "postgres://warden:***@db:5432/w");
        assert_eq!(redact_url("postgres://warden@db/w?sslmode=require"), "postgres://warden@db/w?sslmode=require");
        let shown = redact_url("postgres://warden@db/w?password=s3cret&sslmode=disable");
        assert!(!shown.contains("s3cret") && shown.contains("password=***") && shown.contains("sslmode=disable"));
        assert!(!redact_url("host=db password=s3cret").contains("s3cret"));
        let c = StoreConfig { url: Some("postgres://u:s3cret@h/d".into()), ..StoreConfig::default() };
        assert!(!format!("{c:?}").contains("s3cret"));
        let parsed =
            Config::parse("[service.store]\nurl = \"postgres://u@h/d\"\npool_size = 4\n", Path::new("t")).unwrap();
        assert_eq!(
            (parsed.service.store.url.as_deref(), parsed.service.store.pool_size),
            (Some("postgres://u@h/d"), 4)
        );
    }
}
