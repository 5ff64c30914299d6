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
        let mut req = self
            .http
            .post(&self.mcp)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("mcp request")
    }

    pub fn resource_metadata_url(&self) -> String {
        warden::auth::discovery::resource_metadata_url(&self.mcp)
    }

    pub fn ticket_rows(&self) -> i64 {
        let c = rusqlite::Connection::open(self.state.join("service.db")).unwrap();
        c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).unwrap()
    }
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
                        Fault::Unauthorized(k) if n < k => {
                            Some((401, Some("Bearer error=\"invalid_token\", error_description=\"token has expired\"")))
                        }
                        Fault::Unauthorized(_) => None,
                    };
                    if let Some((status, challenge)) = fail {
                        let mut resp = axum::response::Response::builder().status(status);
                        if status == 429 {
                            resp = resp.header("retry-after", "1");
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
        c.servers = list
            .into_iter()
            .map(|(name, url)| warden::config::ServerEntry {
                name,
                url,
                resource: None,
                headers: Default::default(),
                scopes: Default::default(),
            })
            .collect();
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
