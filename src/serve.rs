//! `warden serve`: the issuer and the service, each on its own TLS listener, in one process.
//!
//! `start` binds (port 0 works: URLs are built from the bound addresses), starts whichever
//! servers were asked for, writes `STATE/client.toml` and returns a `Running` handle that
//! tests, the demo and `warden serve` share (the CLI adds the banner and waits for Ctrl-C).
//!
//! A library module of the servers layer: it takes `ServeOptions`, not CLI arguments.
//! May import: `types`, `paths`, `observe`, `security`, `auth`, `config`, `issuer`,
//! `service`. Enforced by `tests/layering.rs`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::auth::jwks::JwksCache;
use crate::auth::verify::{Verifier, VerifierConfig};
use crate::config::{ClientSection, Config, ServerEntry};
use crate::issuer::{self, IssuerInner, IssuerState, clients::ClientRegistry, keys::KeyStore};
use crate::security::tls::{ClientTls, DevPki, ServerIdentity, http_client};
use crate::service;

mod limits;

/// Run only one of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    Issuer,
    Service,
}

/// What to start, beyond the config.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Overrides `[issuer] addr`.
    pub issuer_addr: Option<SocketAddr>,
    /// Overrides `[service] addr`.
    pub mcp_addr: Option<SocketAddr>,
    pub only: Option<Only>,
    /// Generate a new signing key first; the previous one stays in the JWKS.
    pub rotate_keys: bool,
    /// Where the servers read time (token lifetimes, verification, rate limits); the host's
    /// clock unless a test moves one by hand.
    pub clock: Option<crate::types::time::SharedClock>,
    /// `--otlp-endpoint`: export the service's spans (over the environment and `[telemetry]`).
    pub otlp_endpoint: Option<String>,
    /// Export through this pipeline instead of resolving an endpoint (an embedding program's
    /// own exporter; tests use the SDK's in-memory one).
    pub telemetry: Option<Arc<crate::observe::telemetry::server::ServerSpans>>,
    /// The service trusts this authorization server when `[service] issuer` names none: the
    /// embedded issuer of the `serve --instances` parent, for its service instances.
    pub trust_issuer: Option<String>,
    /// This process is service instance `n` of several sharing the state directory: its
    /// decision trail is `STATE/audit/service-n-*.jsonl`, its own hash chain (instances
    /// appending to one chain would fork it).
    pub instance: Option<u16>,
    /// More resource URIs the embedded issuer issues tokens for (the service instances run
    /// by the `serve --instances` parent); the first is the server `client.toml` names when
    /// no service runs in this process.
    pub resources: Vec<String>,
}

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why the servers could not start. Each names what failed and what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("cannot create state directory {path}: {cause}")]
    StateDir { path: PathBuf, cause: std::io::Error },
    #[error("cannot set up TLS: {0}")]
    Tls(Cause),
    #[error("OpenTelemetry export: {0}")]
    Telemetry(String),
    #[error("[tls] needs both `cert` and `key`, or neither (to use the generated dev CA)")]
    TlsPair,
    #[error("cannot listen on {addr} for the {what} (in use? pass another address or port 0): {cause}")]
    Bind { addr: SocketAddr, what: &'static str, cause: std::io::Error },
    #[error("cannot load the issuer's signing keys: {0}")]
    Keys(Cause),
    #[error("invalid [[issuer.clients]] entry: {0}")]
    Clients(Cause),
    #[error("invalid [issuer.users] entry for {user}: {cause}")]
    User { user: String, cause: Cause },
    #[error("[issuer] auto_approve = true needs a user to approve as: add one under [issuer.users]")]
    AutoApproveWithoutUser,
    #[error("cannot open the issuer's refresh tokens: {0}")]
    Refresh(Cause),
    #[error("cannot open the issuer's revoked access tokens: {0}")]
    RevokedAccess(Cause),
    #[error(
        "the service has no way to verify tokens: set [service] issuer (and optionally jwks_uri), or run the embedded issuer too"
    )]
    NoIssuer,
    #[error("cannot discover the authorization server {issuer}: {cause}")]
    Discovery { issuer: String, cause: Cause },
    #[error(
        "the authorization server {issuer} names its keys at {jwks_uri}, which is not https; refusing to trust keys fetched in the clear (set [service] jwks_uri to an https URL)"
    )]
    InsecureJwks { issuer: String, jwks_uri: String },
    #[error(
        "the authorization server {issuer} publishes no jwks_uri, so the service cannot verify its tokens; set [service] jwks_uri if its keys are published elsewhere"
    )]
    NoJwks { issuer: String },
    #[error("cannot load signing keys from {jwks_uri}; refusing to start without a way to verify tokens: {cause}")]
    Jwks { jwks_uri: String, cause: Cause },
    #[error("cannot open the database {path}: {cause}")]
    Database { path: PathBuf, cause: Cause },
    #[error(
        "cannot use the PostgreSQL store {url}: {cause} (check that the server is running and reachable, and the URL, user and password; or remove [service.store] url to use the embedded SQLite file)"
    )]
    Store { url: String, cause: Cause },
    #[error("cannot open the server audit log: {0}")]
    Audit(crate::observe::audit::AuditError),
    #[error("cannot write {path}: {cause}")]
    ClientConfig { path: PathBuf, cause: Cause },
}

/// A running `serve`: where it listens and how to stop it.
pub struct Running {
    pub issuer_url: Option<String>,
    pub mcp_url: Option<String>,
    /// The bound addresses (the URLs may name a public host instead).
    pub issuer_addr: Option<SocketAddr>,
    pub mcp_addr: Option<SocketAddr>,
    pub ca_path: Option<PathBuf>,
    pub client_config: Option<PathBuf>,
    /// Why the client config lacks a usable client, for the banner (no demo client).
    pub client_note: Option<String>,
    pub keys: Option<Arc<KeyStore>>,
    /// The service's store, for the banner: `SQLite <path>` or `PostgreSQL <url, redacted>`.
    pub store: Option<String>,
    handles: Vec<Handle<SocketAddr>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Counted unauthenticated denials, recorded on shutdown so none is lost.
    denials: Option<Arc<service::denials::DenialCounter>>,
    /// The service's OpenTelemetry export, flushed on shutdown.
    pub telemetry: Option<Arc<crate::observe::telemetry::server::ServerSpans>>,
}

impl Running {
    /// Graceful shutdown: stop accepting, give in-flight requests a moment, then return.
    pub async fn shutdown(self) {
        for h in &self.handles {
            h.graceful_shutdown(Some(Duration::from_secs(5)));
        }
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(d) = self.denials {
            d.flush_all();
        }
        if let Some(t) = self.telemetry {
            t.shutdown(crate::observe::telemetry::FLUSH_TIMEOUT).await;
        }
    }
}

/// Starts the servers `args` asks for.
pub async fn start(config: &Config, state_dir: &Path, args: &ServeOptions) -> Result<Running, ServeError> {
    std::fs::create_dir_all(state_dir)
        .map_err(|source| ServeError::StateDir { path: state_dir.to_path_buf(), cause: source })?;
    let (identity, ca_path) = server_identity(config, state_dir)?;
    let tls = RustlsConfig::from_config(identity.server_config().map_err(|e| ServeError::Tls(e.into()))?);
    let run_issuer = args.only != Some(Only::Service);
    let run_service = args.only != Some(Only::Issuer);

    let issuer_listener =
        run_issuer.then(|| bind(args.issuer_addr.unwrap_or(config.issuer.addr), "issuer")).transpose()?;
    let service_listener =
        run_service.then(|| bind(args.mcp_addr.unwrap_or(config.service.addr), "MCP service")).transpose()?;
    let issuer_url = issuer_listener
        .as_ref()
        .map(|(_, addr)| config.issuer.url.clone().unwrap_or_else(|| format!("https://{}", url_host(*addr))));
    let mcp_url = service_listener
        .as_ref()
        .map(|(_, addr)| config.service.resource.clone().unwrap_or_else(|| format!("https://{}/mcp", url_host(*addr))));

    let mut running = Running {
        issuer_url: issuer_url.clone(),
        mcp_url: mcp_url.clone(),
        issuer_addr: issuer_listener.as_ref().map(|(_, a)| *a),
        mcp_addr: service_listener.as_ref().map(|(_, a)| *a),
        ca_path: ca_path.clone(),
        client_config: None,
        client_note: None,
        keys: None,
        store: None,
        handles: Vec::new(),
        tasks: Vec::new(),
        denials: None,
        telemetry: None,
    };

    // One decision trail shared by both servers (two writers would fork the hash chain).
    let audit_prefix = args.instance.map_or_else(|| "server".to_string(), |n| format!("service-{n}"));
    let decisions = server_audit(config, state_dir, &audit_prefix, args.clock.clone())?;
    // Revoked access tokens reach the service when it trusts this process's issuer, or
    // across the processes of `serve --instances`, through their shared state directory:
    // the parent runs the issuer for the instances (`resources`), each instance trusts it.
    let trusts_embedded = config.service.issuer.is_none() && config.service.jwks_uri.is_none();
    let together = issuer_listener.is_some() && service_listener.is_some() && trusts_embedded;
    let instances_parent = issuer_listener.is_some() && service_listener.is_none() && !args.resources.is_empty();
    let instance = service_listener.is_some()
        && issuer_listener.is_none()
        && args.instance.is_some()
        && args.trust_issuer.is_some()
        && trusts_embedded;
    let shares_revocations = together || instances_parent || instance;
    let revoked_access = if shares_revocations {
        let path = state_dir.join("issuer/revoked-access-tokens.json");
        let list = crate::auth::revoked::RevokedAccess::open(Some(path), crate::auth::revoked::DEFAULT_CAPACITY)
            .map_err(|e| ServeError::RevokedAccess(e.into()))?;
        Some(Arc::new(list))
    } else {
        None
    };
    if let (Some((listener, _)), Some(url)) = (issuer_listener, &issuer_url) {
        let keys = Arc::new(
            KeyStore::open(
                &config.issuer.keys_dir.clone().unwrap_or_else(|| state_dir.join("issuer")),
                config.issuer.keep_previous_keys,
            )
            .map_err(|e| ServeError::Keys(e.into()))?,
        );
        if args.rotate_keys {
            let kid = keys.rotate().map_err(|e| ServeError::Keys(e.into()))?;
            tracing::info!(kid = %kid, "rotated issuer signing key");
        }
        let ic = &config.issuer;
        let issuer_dir = state_dir.join("issuer");
        let clients = ClientRegistry::open(&ic.clients, Some(&issuer_dir), ic.max_registered_clients)
            .map_err(|e| ServeError::Clients(e.into()))?;
        let mut users = std::collections::BTreeMap::new();
        for (name, hash) in &ic.users {
            let parsed = crate::security::hash::SecretHash::parse(hash)
                .map_err(|e| ServeError::User { user: name.clone(), cause: e.into() })?;
            users.insert(name.clone(), parsed);
        }
        if ic.auto_approve && users.is_empty() {
            return Err(ServeError::AutoApproveWithoutUser);
        }
        let refresh = issuer::refresh::RefreshStore::open(
            Some(issuer_dir.join("refresh-tokens.json")),
            ic.refresh_ttl_secs,
            ic.max_refresh_per_client,
        )
        .map_err(|e| ServeError::Refresh(e.into()))?;
        let mut resources: Vec<String> = mcp_url.iter().cloned().collect();
        resources.extend(args.resources.iter().filter(|r| !resources.contains(r)).cloned().collect::<Vec<_>>());
        resources.extend(config.issuer.resources.iter().cloned());
        let mut scopes = clients.all_scopes();
        for s in service::policy::all_scopes().iter() {
            scopes.insert(s.clone());
        }
        let throttle =
            issuer::throttle::AuthThrottle::new(&ic.auth_throttle, clients.capacity(), decisions.clock().clone());
        let state = IssuerState::new(IssuerInner {
            throttle,
            decisions: decisions.clone(),
            issuer: url.clone(),
            keys: keys.clone(),
            clients,
            resources,
            token_ttl_secs: ic.token_ttl_secs,
            scopes_supported: scopes,
            users,
            users_dummy: crate::security::hash::SecretHash::create(
                "warden-dummy-password",
                crate::security::hash::DEFAULT_ITERATIONS,
            ),
            auto_approve: ic.auto_approve,
            registration: issuer::Registration::new(
                ic.registration,
                ic.registration_default_scopes.clone(),
                ic.registration_max_scopes.clone(),
                ic.registration_burst,
                ic.registration_per_minute,
            ),
            grants: issuer::grants::Grants::new(issuer::MAX_PENDING_GRANTS),
            refresh,
            revoked_access: revoked_access.clone(),
        });
        running.keys = Some(keys);
        spawn_tls(&mut running, listener, tls.clone(), &config.limits, issuer::router(state))?;
    }

    if let (Some((listener, _)), Some(resource)) = (service_listener, &mcp_url) {
        let denials = denial_counter(config, &decisions);
        running.denials = Some(denials.clone());
        running.telemetry = service_telemetry(config, args)?;
        let (router, store) = build_service(
            config,
            state_dir,
            issuer_url.as_deref().or(args.trust_issuer.as_deref()),
            ca_path.as_deref(),
            resource,
            Shared { decisions: decisions.clone(), denials, revoked_access, telemetry: running.telemetry.clone() },
        )
        .await
        .inspect_err(|_| {
            for h in &running.handles {
                h.shutdown();
            }
        })?;
        running.store = Some(store);
        spawn_tls(&mut running, listener, tls, &config.limits, router)?;
    }

    if let Some(url) = &issuer_url {
        (running.client_config, running.client_note) = write_client_config(
            config,
            state_dir,
            url,
            mcp_url.as_deref().or(args.resources.first().map(String::as_str)),
            ca_path.as_deref(),
        )?;
    }
    Ok(running)
}

/// What the service shares with the rest of the process: the decision trail, the denial
/// counter, and the issuer's access-token deny-list when it trusts the embedded issuer.
struct Shared {
    decisions: crate::types::event::EventBus,
    denials: Arc<service::denials::DenialCounter>,
    revoked_access: Option<Arc<crate::auth::revoked::RevokedAccess>>,
    telemetry: Option<Arc<crate::observe::telemetry::server::ServerSpans>>,
}

/// The service's span export, when `--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `[telemetry] endpoint` asks for it (system roots plus `SSL_CERT_FILE` for the collector).
fn service_telemetry(
    config: &Config,
    args: &ServeOptions,
) -> Result<Option<Arc<crate::observe::telemetry::server::ServerSpans>>, ServeError> {
    if let Some(given) = &args.telemetry {
        return Ok(Some(given.clone()));
    }
    let settings = config.telemetry.clone().unwrap_or_default();
    let resolved = settings
        .resolve(args.otlp_endpoint.as_deref(), |k| std::env::var(k).ok())
        .map_err(|e| ServeError::Telemetry(e.to_string()))?;
    let Some(resolved) = resolved else { return Ok(None) };
    let client = http_client(&ClientTls::default(), Duration::from_secs(10)).map_err(|e| ServeError::Tls(e.into()))?;
    let spans = crate::observe::telemetry::server::ServerSpans::start(&resolved, client)
        .map_err(|e| ServeError::Telemetry(e.to_string()))?;
    tracing::info!(endpoint = %resolved.endpoint, "exporting the service's OpenTelemetry spans");
    Ok(Some(spans))
}

async fn build_service(
    config: &Config,
    state_dir: &Path,
    embedded_issuer: Option<&str>,
    dev_ca: Option<&Path>,
    resource: &str,
    shared: Shared,
) -> Result<(axum::Router, String), ServeError> {
    let Shared { decisions, denials, revoked_access, telemetry } = shared;
    let svc = &config.service;
    let issuer = svc.issuer.clone().or_else(|| embedded_issuer.map(str::to_string)).ok_or(ServeError::NoIssuer)?;
    let ca_file = svc.issuer_ca_file.clone().or_else(|| dev_ca.map(Path::to_path_buf));
    let client = http_client(&ClientTls { ca_file, ca_only: false }, Duration::from_secs(10))
        .map_err(|e| ServeError::Tls(e.into()))?;
    let jwks_uri = match &svc.jwks_uri {
        Some(u) => u.clone(),
        None => {
            let discovered = crate::auth::discovery::fetch_as_metadata(&client, &issuer)
                .await
                .map_err(|e| ServeError::Discovery { issuer: issuer.clone(), cause: e.into() })?
                .jwks_uri
                .ok_or_else(|| ServeError::NoJwks { issuer: issuer.clone() })?;
            if !discovered_url_ok(&discovered, &issuer) {
                return Err(ServeError::InsecureJwks { issuer, jwks_uri: discovered });
            }
            discovered
        }
    };
    // On the servers' clock, like the verifier, so key ages move with it.
    let jwks = Arc::new(JwksCache::from_url(client, jwks_uri.clone()).with_clock(decisions.clock().clone()));
    let n = jwks.refresh().await.map_err(|e| ServeError::Jwks { jwks_uri: jwks_uri.clone(), cause: e.into() })?;
    tracing::info!(issuer = %issuer, jwks_uri = %jwks_uri, keys = n, "service trusts issuer");
    let verifier = Arc::new(
        Verifier::new(
            VerifierConfig { issuer: issuer.clone(), audience: resource.to_string(), leeway_secs: svc.leeway_secs },
            jwks,
        )
        .with_clock(decisions.clock().clone()),
    );
    let store = match &svc.store.url {
        Some(url) => service::store::Store::connect(&svc.store)
            .await
            .map_err(|e| ServeError::Store { url: crate::config::redact_url(url), cause: e.into() })?,
        None => {
            let db = svc.database.clone().unwrap_or_else(|| state_dir.join("service.db"));
            service::store::Store::open(&db, 4)
                .map_err(|e| ServeError::Database { path: db.clone(), cause: e.into() })?
        }
    };
    let described = store.describe();
    tracing::info!(store = %described, "service store");
    if let Some(pg) = store.postgres() {
        match pg.commit_modes().await {
            Ok((tickets, limit)) => tracing::info!(
                target: "warden::service::store",
                tickets_synchronous_commit = %tickets,
                rate_limit_synchronous_commit = %limit,
                "shared rate limit in PostgreSQL; its bucket updates do not wait for the WAL flush (a database crash can forget the last ~0.6 s of spending)"
            ),
            Err(e) => tracing::warn!(target: "warden::service::store", error = %e, "cannot read synchronous_commit"),
        }
    }
    let router = service::router_traced(
        service::ServiceParams {
            verifier,
            store: Arc::new(store),
            resource: resource.to_string(),
            authorization_servers: vec![issuer],
            rate_limit: svc.rate_limit,
            max_body_bytes: svc.max_body_bytes,
            allowed_hosts: svc.allowed_hosts.clone(),
            allowed_origins: svc.allowed_origins.clone(),
            decisions,
            direct_calls: svc.direct_calls,
            denials,
        },
        revoked_access,
        telemetry,
    );
    Ok((router, described))
}

/// Counts unauthenticated denials per peer (`[audit] denial_interval_secs`,
/// `denial_max_peers`) and records each interval's counts when it ends.
fn denial_counter(config: &Config, decisions: &crate::types::event::EventBus) -> Arc<service::denials::DenialCounter> {
    let cfg = config.audit.clone().unwrap_or_default();
    let interval = Duration::from_secs(cfg.denial_interval_secs.max(1));
    let counter = Arc::new(service::denials::DenialCounter::new(decisions.clone(), interval, cfg.denial_max_peers));
    let weak = Arc::downgrade(&counter);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            let Some(counter) = weak.upgrade() else { break };
            counter.flush_expired();
        }
    });
    counter
}

/// The servers' decision trail: `STATE/audit/server-*.jsonl`, group-committed by default
/// (each record is written and flushed at once; fsync every 50 ms on the blocking pool).
fn server_audit(
    config: &Config,
    state_dir: &Path,
    prefix: &str,
    clock: Option<crate::types::time::SharedClock>,
) -> Result<crate::types::event::EventBus, ServeError> {
    let cfg = config.audit.clone().unwrap_or_default();
    let mut bus = crate::types::event::EventBus::new();
    if let Some(clock) = clock {
        bus = bus.with_clock(clock);
    }
    let opts =
        cfg.log_options(state_dir, cfg.server_fsync, bus.clock().clone()).map_err(|e| ServeError::Audit(e.into()))?;
    let log = Arc::new(
        crate::observe::audit::AuditLog::open_with(&state_dir.join("audit"), prefix, opts)
            .map_err(ServeError::Audit)?,
    );
    bus.add_journal(log.clone());
    if let crate::observe::audit::FsyncPolicy::Batch { interval_ms } = cfg.server_fsync {
        let weak = Arc::downgrade(&log);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
            loop {
                tick.tick().await;
                let Some(log) = weak.upgrade() else { break };
                // On the blocking pool: the disk must not stall a worker serving requests.
                match tokio::task::spawn_blocking(move || log.flush()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "server audit fsync failed"),
                    Err(e) => tracing::error!(error = %e, "server audit fsync task failed"),
                }
            }
        });
    }
    Ok(bus)
}

fn server_identity(config: &Config, state_dir: &Path) -> Result<(ServerIdentity, Option<PathBuf>), ServeError> {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => {
            Ok((ServerIdentity::from_files(cert, key).map_err(|e| ServeError::Tls(e.into()))?, None))
        }
        (None, None) => {
            let pki = DevPki::new(state_dir);
            Ok((pki.ensure().map_err(|e| ServeError::Tls(e.into()))?, Some(pki.ca_path())))
        }
        _ => Err(ServeError::TlsPair),
    }
}

fn bind(addr: SocketAddr, what: &'static str) -> Result<(TcpListener, SocketAddr), ServeError> {
    let err = |source| ServeError::Bind { addr, what, cause: source };
    let listener = TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// `addr` as the host part of a URL (an unspecified address as loopback).
pub fn url_host(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { addr.ip() };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// Serves `router` over TLS on `listener` with the connection limits of `[limits]`: a cap
/// on open connections (beyond it a new connection is closed before the handshake), a TLS
/// handshake timeout, hyper's HTTP/1.1 header-read timeout and an idle timeout on every
/// connection (see `limits`). The peer address reaches handlers as `ConnectInfo`.
/// The request header budget of either server: 431 beyond it (HTTP/2 exactly; HTTP/1.1
/// checks between reads, so a header section may pass it by up to one read before refusal).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

fn spawn_tls(
    running: &mut Running,
    listener: TcpListener,
    tls: RustlsConfig,
    cfg: &crate::config::LimitsConfig,
    router: axum::Router,
) -> Result<(), ServeError> {
    let handle = Handle::new();
    let secs = |s: u64| Duration::from_secs(s.max(1));
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .handshake_timeout(secs(cfg.handshake_timeout_secs))
        .acceptor(limits::LimitAcceptor::new(cfg.max_connections, secs(cfg.idle_timeout_secs)));
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: ([0, 0, 0, 0], 0).into(),
        what: "server",
        cause: source,
    })?;
    let mut server = axum_server::from_tcp(listener)
        .map_err(|source| ServeError::Bind { addr, what: "server", cause: source })?
        .acceptor(acceptor)
        .handle(handle.clone());
    // One header budget for both protocols: HTTP/1.1's read buffer would otherwise take
    // ~400 KiB of headers per connection while h2 refuses past 16 KiB, so the same request
    // would get a 401 on one and a 431 on the other.
    let builder = server.http_builder();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(secs(cfg.header_read_timeout_secs))
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().max_header_list_size(MAX_HEADER_BYTES as u32);
    running.handles.push(handle);
    running.tasks.push(tokio::spawn(async move {
        // The peer address reaches the guard (unauthenticated denials are counted per peer).
        if let Err(e) = server.serve(router.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "server stopped with an error");
        }
    }));
    Ok(())
}

/// Header of every `client.toml` this writes (and the mark of one it may replace).
const CLIENT_TOML_HEADER: &str = "# Written by `warden serve`: a ready client config (use with --config).\n";

/// Writes `STATE/client.toml` (0600: it holds the demo client secret) for the client
/// commands, and says when it holds no usable client:
/// - the demo client (`support-agent` with the demo secret) is registered: the file names
///   it with its secret;
/// - other clients are registered: the file names the first of them *without* a secret
///   (only its hash is known), with a comment saying so; the banner says so too;
/// - no client is registered: no token can be issued, so no file is written (one left by
///   an earlier run is removed, or it would point at a client that is gone).
fn write_client_config(
    config: &Config,
    state_dir: &Path,
    issuer: &str,
    mcp_url: Option<&str>,
    ca: Option<&Path>,
) -> Result<(Option<PathBuf>, Option<String>), ServeError> {
    let path = state_dir.join("client.toml");
    let failed = |source: Cause| ServeError::ClientConfig { path: path.clone(), cause: source };
    let demo_id = "support-agent";
    let secret = crate::config::demo_secret(demo_id).filter(|secret| {
        config.issuer.clients.iter().any(|c| {
            c.client_id == demo_id
                && crate::security::hash::SecretHash::parse(&c.secret_hash).is_ok_and(|h| h.verify(secret))
        })
    });
    let mut text = String::from(CLIENT_TOML_HEADER);
    let (client_id, note) = match (&secret, config.issuer.clients.first()) {
        (Some(_), _) => (demo_id.to_string(), None),
        (None, Some(first)) => {
            text.push_str(&format!(
                "# No demo client: this issuer does not register `{demo_id}` with the demo secret, so this file\n\
                 # names its first registered client, `{id}`, without a secret. Set client_secret_env (or\n\
                 # client_secret) in [client] before using it.\n",
                id = first.client_id
            ));
            (first.client_id.clone(), Some(format!("no demo client: add the secret of {} to it", first.client_id)))
        }
        (None, None) => {
            // Only a file this code wrote is removed; anything else there is the user's.
            if std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(CLIENT_TOML_HEADER)) {
                std::fs::remove_file(&path).map_err(|e| failed(e.into()))?;
            }
            return Ok((
                None,
                Some("no client config: no demo client, and [[issuer.clients]] registers no client".into()),
            ));
        }
    };
    let client = Config {
        client: Some(ClientSection {
            token_endpoint: Some(format!("{issuer}/token")),
            client_secret: secret.map(crate::types::secret::Secret::new),
            ca_file: ca.map(Path::to_path_buf),
            ..ClientSection::new(issuer, &client_id)
        }),
        servers: mcp_url
            .map(|u| ServerEntry { resource: Some(u.to_string()), ..ServerEntry::http("customer-service", u) })
            .into_iter()
            .collect(),
        ..Config::default()
    };
    text.push_str(
        &toml::to_string(&ClientOnly { client: client.client, servers: client.servers })
            .map_err(|e| failed(e.into()))?,
    );
    crate::paths::write_private(&path, text.as_bytes()).map_err(|e| failed(e.into()))?;
    Ok((Some(path), note))
}

/// Only the client sections, so `client.toml` does not spell out server defaults.
#[derive(serde::Serialize)]
struct ClientOnly {
    client: Option<ClientSection>,
    servers: Vec<ServerEntry>,
}

/// A URL learned from an authorization server's metadata: https, or plain http on a
/// loopback host only when the configured issuer is itself plain http on loopback (the
/// operator chose that explicitly).
fn discovered_url_ok(url: &str, configured_issuer: &str) -> bool {
    let loopback = crate::security::urls::is_loopback;
    let (Ok(u), Ok(issuer)) = (url::Url::parse(url), url::Url::parse(configured_issuer)) else { return false };
    match u.scheme() {
        "https" => true,
        "http" => loopback(&u) && issuer.scheme() == "http" && loopback(&issuer),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::discovered_url_ok;

    /// Regression (issue 11, defect 7): the service fetched keys from whatever URL the
    /// issuer's metadata named, plain http included.
    #[test]
    fn discovered_key_urls_must_be_https_unless_everything_is_loopback() {
        assert!(discovered_url_ok("https://as.example/jwks.json", "https://as.example"));
        assert!(!discovered_url_ok("http://as.example/jwks.json", "https://as.example"));
        assert!(!discovered_url_ok("http://127.0.0.1:9/jwks.json", "https://as.example"));
        assert!(discovered_url_ok("http://127.0.0.1:9/jwks.json", "http://127.0.0.1:9"));
        assert!(!discovered_url_ok("http://localhost:80@evil.example/jwks.json", "http://127.0.0.1:9"));
        assert!(!discovered_url_ok("file:///etc/passwd", "https://as.example"));
    }
}
