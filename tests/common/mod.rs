//! Shared test harness: real issuer + service on loopback (port 0, real TLS with the
//! generated dev CA), a reqwest client that trusts that CA, and token helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use warden::config::{Config, RateLimitConfig};
use warden::security::tls::{ClientTls, http_client};
use warden::serve::ServeOptions;
use warden::serve::{Running, start};

pub const SUPPORT: (&str, &str) = ("support-agent", "demo-support-agent-secret-4f9c2e");
pub const READONLY: (&str, &str) = ("readonly-agent", "demo-readonly-agent-secret-8b1d7a");
pub const AUDITOR: (&str, &str) = ("auditor", "demo-auditor-secret-3e6f0c");

pub struct Stack {
    pub running: Running,
    pub state: PathBuf,
    pub http: reqwest::Client,
    pub issuer: String,
    pub mcp: String,
    _tmp: Option<tempfile::TempDir>,
}

pub fn config(rate: Option<RateLimitConfig>) -> Config {
    let mut c = Config::parse(warden::config::DEFAULT_CONFIG, Path::new("builtin")).expect("default config");
    c.issuer.addr = "127.0.0.1:0".parse().unwrap();
    c.service.addr = "127.0.0.1:0".parse().unwrap();
    c.service.rate_limit = rate.unwrap_or(RateLimitConfig { per_second: 100_000.0, burst: 100_000 });
    c
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(config(None)).await
    }

    pub async fn start_with(config: Config) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().to_path_buf();
        let mut s = Self::start_in(&state, config, false).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts with the servers reading time from `clock` (tests that move time by hand).
    pub async fn start_with_clock(clock: warden::types::time::SharedClock) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().to_path_buf();
        let mut s =
            Self::start_opts(&state, config(None), ServeOptions { clock: Some(clock), ..Default::default() }).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts with the service exporting its SERVER spans to `spans` (OpenTelemetry on).
    #[allow(dead_code)]
    pub async fn start_traced(
        config: Config,
        spans: std::sync::Arc<warden::observe::telemetry::server::ServerSpans>,
    ) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        let state = tmp.path().to_path_buf();
        let mut s =
            Self::start_opts(&state, config, ServeOptions { telemetry: Some(spans), ..Default::default() }).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on an existing state dir (for restart tests).
    pub async fn start_in(state: &Path, config: Config, rotate_keys: bool) -> Stack {
        Self::start_opts(state, config, ServeOptions { rotate_keys, ..ServeOptions::default() }).await
    }

    async fn start_opts(state: &Path, config: Config, args: ServeOptions) -> Stack {
        warden::install_crypto_provider();
        let running = start(&config, state, &args).await.expect("serve starts");
        let http =
            http_client(&ClientTls { ca_file: Some(state.join("tls/ca.pem")), ca_only: true }, Duration::from_secs(10))
                .expect("client");
        let issuer = running.issuer_url.clone().unwrap();
        let mcp = running.mcp_url.clone().unwrap();
        Stack { running, state: state.to_path_buf(), http, issuer, mcp, _tmp: None }
    }

    /// Stops the servers and hands back the temp dir so the state survives a restart.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.running.shutdown().await;
        self._tmp
    }

    pub async fn token_response(&self, client: (&str, &str), form: &[(&str, &str)]) -> reqwest::Response {
        let mut f: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        f.extend_from_slice(form);
        self.http
            .post(format!("{}/token", self.issuer))
            .basic_auth(client.0, Some(client.1))
            .form(&f)
            .send()
            .await
            .expect("token request")
    }

    /// An access token for `client` with `scope` (None: the client's defaults).
    pub async fn token(&self, client: (&str, &str), scope: Option<&str>) -> String {
        let mut form = vec![("resource", self.mcp.as_str())];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let resp = self.token_response(client, &form).await;
        assert_eq!(resp.status(), 200, "token request failed");
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A raw JSON-RPC POST to /mcp with an optional bearer token.
    pub async fn mcp_post(&self, token: Option<&str>, body: &Value) -> reqwest::Response {
        mcp_post(&self.http, &self.mcp, token, body).await
    }

    pub fn resource_metadata_url(&self) -> String {
        warden::auth::discovery::resource_metadata_url(&self.mcp)
    }

    pub fn ticket_rows(&self) -> i64 {
        let c = rusqlite::Connection::open(self.state.join("service.db")).unwrap();
        c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).unwrap()
    }
}

/// A raw JSON-RPC POST to the MCP endpoint `url` with an optional bearer token.
pub async fn mcp_post(http: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("mcp request")
}

/// An access token for `client` from `issuer`'s client-credentials grant, for `resource`
/// (asserted issued).
pub async fn client_token(http: &reqwest::Client, issuer: &str, client: (&str, &str), resource: &str) -> String {
    let resp = http
        .post(format!("{issuer}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials"), ("resource", resource)])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200, "token for {resource}");
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().expect("an access token").to_string()
}

pub fn tools_call(name: &str, args: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}})
}

pub fn www_authenticate(resp: &reqwest::Response) -> String {
    resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// What the fault-injecting front of a test MCP server does to `tools/call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Always 429 with `Retry-After: 1`.
    RateLimit,
    /// Always 429 with `Retry-After: N`.
    RateLimitFor(u64),
    /// 401 with an `invalid_token` challenge to the first N calls, then pass through.
    Unauthorized(usize),
}

/// A real customer-service router (trusting the stack's issuer) on plain HTTP loopback,
/// with a fault-injecting layer in front of `tools/call`. Returns its `/mcp` URL.
pub async fn faulty_service(listener: tokio::net::TcpListener, stack: &Stack, fault: Fault) -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/mcp");
    let jwks = warden::auth::jwks::JwksCache::from_url(stack.http.clone(), format!("{}/jwks.json", stack.issuer));
    jwks.refresh().await.unwrap();
    let verifier = warden::auth::verify::Verifier::new(
        warden::auth::verify::VerifierConfig { issuer: stack.issuer.clone(), audience: url.clone(), leeway_secs: 30 },
        Arc::new(jwks),
    );
    let db = stack.state.join(format!("faulty-{}.db", addr.port()));
    let router = warden::service::router(warden::service::ServiceParams {
        verifier: Arc::new(verifier),
        store: Arc::new(warden::service::store::Store::open(&db, 1).unwrap()),
        resource: url.clone(),
        authorization_servers: vec![stack.issuer.clone()],
        rate_limit: RateLimitConfig { per_second: 1000.0, burst: 1000 },
        max_body_bytes: 65536,
        allowed_hosts: vec![],
        allowed_origins: vec![],
        decisions: warden::types::event::EventBus::new(),
        direct_calls: true,
        denials: Arc::new(warden::service::denials::DenialCounter::new(
            warden::types::event::EventBus::new(),
            std::time::Duration::from_secs(10),
            64,
        )),
    });
    let seen = Arc::new(AtomicUsize::new(0));
    let router =
        router.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let is_call = String::from_utf8_lossy(&bytes).contains("\"tools/call\"");
                if is_call {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let fail = match fault {
                        Fault::RateLimit => Some((429, None)),
                        Fault::RateLimitFor(_) => Some((429, None)),
                        Fault::Unauthorized(k) if n < k => {
                            Some((401, Some("Bearer error=\"invalid_token\", error_description=\"token has expired\"")))
                        }
                        Fault::Unauthorized(_) => None,
                    };
                    if let Some((status, challenge)) = fail {
                        let mut resp = axum::response::Response::builder().status(status);
                        if status == 429 {
                            let secs = if let Fault::RateLimitFor(n) = fault { n } else { 1 };
                            resp = resp.header("retry-after", secs.to_string());
                        }
                        if let Some(c) = challenge {
                            resp = resp.header("www-authenticate", c);
                        }
                        return resp.body(axum::body::Body::empty()).unwrap();
                    }
                }
                next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
            }
        }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A client config for the stack (what `warden serve` writes), optionally for other servers.
pub fn client_config(stack: &Stack, servers: Option<Vec<(String, String)>>) -> Config {
    let path = stack.state.join("client.toml");
    let mut c = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    if let Some(list) = servers {
        c.servers = list.into_iter().map(|(name, url)| warden::config::ServerEntry::http(name, url)).collect();
        c.client.as_mut().unwrap().allow_http_loopback = true;
    }
    c
}

/// Runs `scenarios` the way `warden run` does: a session with the offline planner on
/// `events` (audit trail in `state`), one `RunScenario` command each, each run judged from its events. Returns the
/// results and the monitor's anomaly counts.
pub async fn run_scenarios(
    stack: &Stack,
    scenarios: &[warden::session::scenario::Scenario],
    events: warden::types::event::EventBus,
    state: &Path,
) -> (Vec<warden::session::scenario::ScenarioResult>, std::collections::BTreeMap<warden::types::event::AnomalyRule, u64>)
{
    let opts = warden::session::SessionOptions {
        model: Some("offline".into()),
        scenarios: scenarios.to_vec(),
        ..Default::default()
    };
    let session = warden::session::Session::open_on(&client_config(stack, None), state, opts, events)
        .await
        .expect("session opens");
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(tokio_util::sync::CancellationToken::new());
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        assert!(core.send(warden::session::command::Command::RunScenario(i)).await);
        let report = warden::session::report::next_run(&mut rx).await.expect("the run finishes");
        results.push(warden::session::scenario::ScenarioResult::judge(s, report));
    }
    let counts = core.anomaly_counts();
    core.shutdown().await;
    (results, counts)
}

/// The issuer and the service as two separate servers on fixed loopback ports (one shared
/// dev CA), each of which a test can stop and start again on the same address: an outage
/// of one without the other, a restart, or an issuer restarted with `--rotate-keys`.
pub struct Split {
    pub root: tempfile::TempDir,
    pub clock: Option<warden::types::time::SharedClock>,
    pub issuer_addr: std::net::SocketAddr,
    pub mcp_addr: std::net::SocketAddr,
    pub issuer: String,
    pub mcp: String,
    pub http: reqwest::Client,
    base: Config,
    issuer_running: Option<Running>,
    service_running: Option<Running>,
}

/// A free loopback port (bound and released: the server binds it next, and again after a
/// restart). Taken below Linux's ephemeral range (32768+), so an outgoing connection made
/// while the server is down cannot take the port as its local one and block the restart.
pub fn free_addr() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let port = 20_000 + (seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed) * 97) % 12_000) as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free loopback port in 20000..32000")
}

impl Split {
    pub async fn start(clock: Option<warden::types::time::SharedClock>) -> Split {
        Self::start_with(config(None), clock).await
    }

    pub async fn start_with(mut base: Config, clock: Option<warden::types::time::SharedClock>) -> Split {
        warden::install_crypto_provider();
        let root = tempfile::tempdir().expect("tempdir");
        let pki = warden::security::tls::DevPki::new(root.path());
        pki.ensure().expect("dev CA");
        base.tls.cert = Some(root.path().join("tls/server.pem"));
        base.tls.key = Some(root.path().join("tls/server.key"));
        let (issuer_addr, mcp_addr) = (free_addr(), free_addr());
        let issuer = format!("https://{issuer_addr}");
        let mcp = format!("https://{mcp_addr}/mcp");
        base.issuer.resources = vec![mcp.clone()];
        base.service.issuer = Some(issuer.clone());
        base.service.issuer_ca_file = Some(pki.ca_path());
        let http = http_client(&ClientTls { ca_file: Some(pki.ca_path()), ca_only: true }, Duration::from_secs(10))
            .expect("client");
        let mut s = Split {
            root,
            clock,
            issuer_addr,
            mcp_addr,
            issuer,
            mcp,
            http,
            base,
            issuer_running: None,
            service_running: None,
        };
        s.start_issuer(false).await;
        s.start_service().await;
        s
    }

    fn opts(&self, only: warden::serve::Only, rotate_keys: bool) -> ServeOptions {
        ServeOptions {
            issuer_addr: Some(self.issuer_addr),
            mcp_addr: Some(self.mcp_addr),
            only: Some(only),
            rotate_keys,
            clock: self.clock.clone(),
            ..ServeOptions::default()
        }
    }

    /// Starts the issuer (`rotate_keys`: as `warden serve --rotate-keys`).
    pub async fn start_issuer(&mut self, rotate_keys: bool) {
        let opts = self.opts(warden::serve::Only::Issuer, rotate_keys);
        let running = start(&self.base, &self.root.path().join("issuer"), &opts).await.expect("issuer starts");
        assert_eq!(running.issuer_url.as_deref(), Some(self.issuer.as_str()));
        self.issuer_running = Some(running);
    }

    pub async fn stop_issuer(&mut self) {
        if let Some(r) = self.issuer_running.take() {
            r.shutdown().await;
        }
    }

    pub async fn start_service(&mut self) {
        let opts = self.opts(warden::serve::Only::Service, false);
        let running = start(&self.base, &self.root.path().join("service"), &opts).await.expect("service starts");
        assert_eq!(running.mcp_url.as_deref(), Some(self.mcp.as_str()));
        self.service_running = Some(running);
    }

    pub async fn stop_service(&mut self) {
        if let Some(r) = self.service_running.take() {
            r.shutdown().await;
        }
    }

    /// The issuer's current signing key id.
    pub fn active_kid(&self) -> String {
        self.issuer_running.as_ref().and_then(|r| r.keys.as_ref()).expect("issuer running").active().kid.clone()
    }

    /// A client config for these servers; `url` replaces the service URL the client dials
    /// (a proxy in front of it), the resource staying the service's.
    pub fn client_config(&self, url: Option<&str>) -> Config {
        let path = self.root.path().join("issuer/client.toml");
        let mut c = Config::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let client = c.client.as_mut().unwrap();
        client.ca_file = Some(self.root.path().join("tls/ca.pem"));
        client.ca_only = true;
        c.servers = vec![warden::config::ServerEntry {
            resource: Some(self.mcp.clone()),
            ..warden::config::ServerEntry::http("customer-service", url.unwrap_or(&self.mcp))
        }];
        c
    }

    pub fn ticket_rows(&self) -> i64 {
        let c = rusqlite::Connection::open(self.root.path().join("service/service.db")).unwrap();
        c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).unwrap()
    }

    pub async fn stop(mut self) {
        self.stop_service().await;
        self.stop_issuer().await;
    }
}

/// What a [`Proxy`] does with the bytes the upstream sends back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Relay everything.
    Pass,
    /// Hold every response until the mode changes (a hung server).
    Stall,
    /// On the next response: swallow it and go down (listener closed, every connection
    /// cut), as a server that crashes after doing the work but before answering.
    CrashOnResponse,
}

struct ProxyState {
    addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    mode: parking_lot::Mutex<ProxyMode>,
    changed: tokio::sync::Notify,
    crashed: tokio::sync::Notify,
    /// Cancelled when the proxy goes down; replaced when it comes back up.
    life: parking_lot::Mutex<tokio_util::sync::CancellationToken>,
}

/// A TCP proxy on a fixed loopback port in front of a real server: the network path a
/// test can stall, cut mid-call or take down and bring back. TLS passes through untouched.
#[derive(Clone)]
pub struct Proxy {
    state: std::sync::Arc<ProxyState>,
}

impl Proxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let state = std::sync::Arc::new(ProxyState {
            addr: free_addr(),
            upstream,
            mode: parking_lot::Mutex::new(ProxyMode::Pass),
            changed: tokio::sync::Notify::new(),
            crashed: tokio::sync::Notify::new(),
            life: parking_lot::Mutex::new(tokio_util::sync::CancellationToken::new()),
        });
        let p = Proxy { state };
        p.up().await;
        p
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.state.addr
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *self.state.mode.lock() = mode;
        self.state.changed.notify_waiters();
    }

    /// Resolves when a `CrashOnResponse` has happened (also if it already had).
    pub async fn crashed(&self) {
        self.state.crashed.notified().await
    }

    /// Stops listening and cuts every connection.
    pub fn down(&self) {
        self.state.life.lock().cancel();
    }

    /// Listens again on the same address.
    pub async fn up(&self) {
        let life = tokio_util::sync::CancellationToken::new();
        *self.state.life.lock() = life.clone();
        let listener = tokio::net::TcpListener::bind(self.state.addr).await.expect("proxy binds");
        let state = self.state.clone();
        tokio::spawn(async move {
            loop {
                let (down, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    () = life.cancelled() => break,
                };
                let (state, life) = (state.clone(), life.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = relay(down, state) => {}
                        () = life.cancelled() => {}
                    }
                });
            }
        });
    }
}

async fn relay(down: tokio::net::TcpStream, state: std::sync::Arc<ProxyState>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(up) = tokio::net::TcpStream::connect(state.upstream).await else { return };
    let (mut down_r, mut down_w) = down.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    let upward = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match down_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = up_w.shutdown().await;
    };
    let downward = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match up_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            loop {
                let mode = *state.mode.lock();
                match mode {
                    ProxyMode::Pass => break,
                    ProxyMode::Stall => {
                        let changed = state.changed.notified();
                        if *state.mode.lock() == ProxyMode::Stall {
                            changed.await;
                        }
                    }
                    ProxyMode::CrashOnResponse => {
                        *state.mode.lock() = ProxyMode::Pass;
                        state.life.lock().cancel();
                        state.crashed.notify_one();
                        return;
                    }
                }
            }
            if down_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    tokio::join!(upward, downward);
}
