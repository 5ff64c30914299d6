//! Tokens Warden cannot verify, against real servers on loopback: a small authorization
//! server (RFC 8414 metadata without `jwks_uri`, opaque tokens with `expires_in`,
//! optionally RFC 7662 introspection that answers or refuses) in front of a small MCP
//! resource (rmcp, one tool) that accepts exactly the tokens that server issued.
//!
//! What a user notices: `warden token` says "opaque token: the server decides" with the
//! scopes and expiry it knows and no invented claims; with introspection it shows what the
//! authorization server said, labelled as such; `warden call` works with the opaque token;
//! the token manager refreshes before `expires_in` (manual clock); no token is printed.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use parking_lot::Mutex;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::MetaObject;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use warden::config::Config;
use warden::types::event::{EventBus, EventKind, RefreshReason, TokenState};
use warden::types::time::ManualClock;

const CLIENT_ID: &str = "notes-agent";
const CLIENT_SECRET: &str = "opaque-test-secret-7d1e";
const EXPIRES_IN: u64 = 300;

/// What the introspection endpoint does.
#[derive(Clone, Copy, PartialEq)]
enum Introspect {
    /// Not in the metadata.
    Off,
    /// Answers RFC 7662 responses to this client.
    Answers,
    /// Refuses this client with 401.
    Refuses,
    /// Says every token is inactive (a broken or hostile AS).
    SaysInactive,
}

#[derive(Clone, Copy)]
struct AsOptions {
    /// Include `scope` in token responses.
    scope_in_response: bool,
    introspect: Introspect,
    /// Publish a `jwks_uri` (an empty key set): the tokens are still not JWTs.
    jwks: bool,
}

/// A token the test AS issued: its scope and expiry (AS clock: real time).
#[derive(Clone)]
struct Issued {
    scope: String,
    exp: u64,
}

#[derive(Clone)]
struct AsState {
    issuer: String,
    opts: AsOptions,
    issued: Arc<Mutex<HashMap<String, Issued>>>,
    token_requests: Arc<AtomicU32>,
    introspections: Arc<AtomicU32>,
}

/// The test authorization server and the resource it protects, both on 127.0.0.1:0.
struct Servers {
    issuer: String,
    mcp: String,
    state: AsState,
    dir: tempfile::TempDir,
}

impl Servers {
    async fn start(opts: AsOptions) -> Servers {
        let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", as_listener.local_addr().unwrap());
        let state = AsState {
            issuer: issuer.clone(),
            opts,
            issued: Arc::default(),
            token_requests: Arc::default(),
            introspections: Arc::default(),
        };
        let as_router = Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/token", post(token))
            .route("/introspect", post(introspect))
            .route("/jwks.json", get(|| async { axum::Json(json!({"keys": []})) }))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(as_listener, as_router).await;
        });

        let rs_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = rs_listener.local_addr().unwrap();
        let mcp = format!("http://{addr}/mcp");
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts(vec!["127.0.0.1".to_string(), "localhost".to_string()]);
        let service =
            Arc::new(StreamableHttpService::new(|| Ok(Notes::new()), Arc::new(NeverSessionManager::default()), config));
        let mcp_service = tower::service_fn(move |req: Request| {
            let service = service.clone();
            async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
        });
        let prm = json!({"resource": mcp, "authorization_servers": [issuer], "scopes_supported": ["notes:read"]});
        let rs_router = Router::new()
            .route_service("/mcp", mcp_service)
            .layer(axum::middleware::from_fn_with_state(state.clone(), bearer))
            .route("/.well-known/oauth-protected-resource/mcp", get(move || async move { axum::Json(prm) }));
        tokio::spawn(async move {
            let _ = axum::serve(rs_listener, rs_router).await;
        });
        Servers { issuer, mcp, state, dir: tempfile::tempdir().unwrap() }
    }

    fn config_text(&self) -> String {
        format!(
            "[client]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nallow_http_loopback = true\n\n[[servers]]\nname = \"notes\"\nurl = \"{}\"\n",
            self.issuer, self.mcp
        )
    }

    fn config_path(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("client.toml");
        std::fs::write(&path, self.config_text()).unwrap();
        path
    }

    fn config(&self) -> Config {
        let path = self.config_path();
        Config::parse(&self.config_text(), &path).unwrap()
    }

    /// Runs the warden binary (off the runtime, so the servers keep answering).
    async fn warden(&self, args: &[&str]) -> Output {
        let config = self.config_path();
        let state = self.dir.path().join("client-state");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || run(&config, &state, &args)).await.unwrap()
    }

    /// Every token the AS issued: none may appear in any output.
    fn assert_no_token_in(&self, what: &str, text: &str) {
        for token in self.state.issued.lock().keys() {
            assert!(!text.contains(token.as_str()), "an access token leaked in {what}");
        }
    }
}

fn run(config: &Path, state: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("WARDEN_LOG", "trace")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn now() -> u64 {
    warden::types::time::now_epoch()
}

/// RFC 8414 metadata: no `jwks_uri` unless asked, `introspection_endpoint` when offered.
async fn metadata(State(s): State<AsState>) -> impl IntoResponse {
    let mut m = json!({
        "issuer": s.issuer,
        "token_endpoint": format!("{}/token", s.issuer),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": ["notes:read"],
    });
    if s.opts.jwks {
        m["jwks_uri"] = json!(format!("{}/jwks.json", s.issuer));
    }
    if s.opts.introspect != Introspect::Off {
        m["introspection_endpoint"] = json!(format!("{}/introspect", s.issuer));
    }
    axum::Json(m)
}

/// Whether the request carries this client's Basic credentials.
fn client_authenticated(headers: &HeaderMap) -> bool {
    let Some(basic) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = basic.strip_prefix("Basic ") else { return false };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
    decoded == format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes()
}

async fn token(
    State(s): State<AsState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    if !client_authenticated(&headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    let scope = form.get("scope").cloned().unwrap_or_else(|| "notes:read".into());
    // Opaque: random, not a JWS (no dots, no JSON header).
    let access_token = format!("op_{}", uuid::Uuid::new_v4().simple());
    s.issued.lock().insert(access_token.clone(), Issued { scope: scope.clone(), exp: now() + EXPIRES_IN });
    let mut body = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": EXPIRES_IN});
    if s.opts.scope_in_response {
        body["scope"] = json!(scope);
    }
    axum::Json(body).into_response()
}

async fn introspect(
    State(s): State<AsState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    s.introspections.fetch_add(1, Ordering::SeqCst);
    if s.opts.introspect == Introspect::Refuses || !client_authenticated(&headers) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let issued = form.get("token").and_then(|t| s.issued.lock().get(t).cloned());
    let issued = issued.filter(|_| s.opts.introspect != Introspect::SaysInactive);
    match issued {
        Some(i) => axum::Json(json!({
            "active": true, "scope": i.scope, "exp": i.exp, "client_id": CLIENT_ID, "sub": "notes-agent-sub",
            "token_type": "Bearer",
        }))
        .into_response(),
        None => axum::Json(json!({"active": false})).into_response(),
    }
}

/// The resource's guard: only tokens the AS issued and that have not expired.
async fn bearer(State(s): State<AsState>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let known = token.and_then(|t| s.issued.lock().get(&t).cloned()).filter(|i| i.exp > now());
    if known.is_none() {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")])
            .into_response();
    }
    next.run(req).await
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct NoteArgs {
    /// The note to echo back.
    text: String,
}

/// A one-tool MCP server.
#[derive(Clone)]
struct Notes {
    tool_router: ToolRouter<Notes>,
}

impl Notes {
    fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }
}

fn notes_meta() -> MetaObject {
    let mut meta = MetaObject::new();
    warden::types::policy::advertise(&mut meta, &warden::types::scope::ScopeSet::parse("notes:read").unwrap());
    meta
}

#[tool_router]
impl Notes {
    /// Echo a note back.
    #[tool(meta = notes_meta(), annotations(read_only_hint = true))]
    async fn echo_note(&self, Parameters(args): Parameters<NoteArgs>) -> String {
        format!("note: {}", args.text)
    }
}

#[tool_handler(router = self.tool_router, name = "notes", version = "0.1.0")]
impl ServerHandler for Notes {}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_token_is_used_and_shown_as_the_server_decides() {
    let s = Servers::start(AsOptions { scope_in_response: false, introspect: Introspect::Off, jwks: false }).await;
    let mut all = String::new();

    let out = s.warden(&["token", "--scopes", "notes:read"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.lines().next(), Some("opaque token: the server decides"), "{t}");
    assert!(stdout.contains("\n  verified     no: the authorization server publishes no keys (no jwks_uri)\n"), "{t}");
    assert!(stdout.contains("\n  scopes       notes:read (requested, not confirmed)\n"), "{t}");
    assert!(stdout.contains("\n  expires      in 4m5") || stdout.contains("\n  expires      in 5m00s"), "{t}");
    assert!(stdout.contains("\n  fingerprint  sha256:"), "{t}");
    for invented in ["✓", "subject", "kid", "issuer", "audience"] {
        assert!(!stdout.contains(invented), "an opaque token shows no {invented}: {t}");
    }
    all += &t;

    let out = s.warden(&["token", "--json"]).await;
    let v = json_of(&out);
    assert_eq!(v["summary"], "opaque token: the server decides");
    assert_eq!(v["state"], json!({"kind": "opaque", "why": "no_jwks", "scopes": "unknown"}), "{v}");
    let left = v["seconds_to_expiry"].as_i64().unwrap();
    assert!((290..=300).contains(&left), "{left}");
    all += &text(&out);

    // No scope stated, none requested: `warden tools` gives no verdict.
    let out = s.warden(&["tools"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("  granted: unknown (opaque token: the server decides)\n"), "{t}");
    assert!(t.contains("  ? unknown  echo_note                  needs notes:read\n"), "{t}");
    all += &t;

    let out = s.warden(&["call", "echo_note", r#"{"text":"hello"}"#]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("note: hello"), "{}", text(&out));
    all += &text(&out);

    s.assert_no_token_in("command output", &all);
    let log = std::fs::read_to_string(s.dir.path().join("client-state/logs/warden.log")).unwrap_or_default();
    s.assert_no_token_in("the client log", &log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_result_is_shown_as_the_authorization_servers_word() {
    let s = Servers::start(AsOptions { scope_in_response: true, introspect: Introspect::Answers, jwks: true }).await;

    let out = s.warden(&["token"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.lines().next(), Some("opaque token, introspected by the authorization server"), "{t}");
    assert!(
        stdout.contains(
            "\n  verified     no: introspected by the authorization server\n  active       yes\n  scope        notes:read\n  client_id    notes-agent\n  subject      notes-agent-sub\n"
        ),
        "{t}"
    );
    assert!(!stdout.contains("✓"), "{t}");
    assert_eq!(s.state.introspections.load(Ordering::SeqCst), 1, "one introspection for one token");

    let out = s.warden(&["token", "--json"]).await;
    let v = json_of(&out);
    assert_eq!(v["state"]["kind"], "introspected");
    assert_eq!(v["state"]["active"], true);
    assert_eq!(v["state"]["sub"], "notes-agent-sub");
    assert_eq!(v["granted"], json!(["notes:read"]));

    let out = s.warden(&["call", "echo_note", r#"{"text":"introspected"}"#]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("note: introspected"));
    s.assert_no_token_in("command output", &(t + &text(&out)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_introspection_falls_back_to_opaque_and_says_so_once() {
    let s = Servers::start(AsOptions { scope_in_response: true, introspect: Introspect::Refuses, jwks: true }).await;
    let out = s.warden(&["token"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(stdout.lines().next(), Some("opaque token: the server decides"), "{t}");
    assert!(stdout.contains("\n  verified     no: not a JWT, nothing to verify here\n"), "{t}");
    assert!(stdout.contains("\n  scopes       notes:read (from the token response)\n"), "{t}");
    assert!(
        stdout.contains("\n  introspect   introspection not allowed for this client (HTTP 401); the server decides\n"),
        "{t}"
    );

    // In one session: refused once, not asked again for the next token.
    let clock = ManualClock::starting_now();
    let events = EventBus::recording().with_clock(clock.clone());
    let (_, tokens) = warden::mcp::token_manager(&s.config(), None, events.clone()).await.unwrap();
    tokens.claims().await.unwrap();
    let before = s.state.introspections.load(Ordering::SeqCst);
    clock.advance(Duration::from_secs(EXPIRES_IN - 30));
    tokens.claims().await.unwrap();
    assert_eq!(s.state.introspections.load(Ordering::SeqCst), before, "a refused client does not ask again");
    let info = tokens.info().unwrap();
    assert!(
        matches!(&info.state, TokenState::Opaque { introspection: None, .. }),
        "said once, on the first token: {:?}",
        info.state
    );
}

/// Manual time against the real test AS: refreshed `REFRESH_SKEW_SECS` before
/// `expires_in` runs out, and each new token introspected exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_token_is_refreshed_before_expires_in() {
    for introspect in [Introspect::Off, Introspect::Answers] {
        let s = Servers::start(AsOptions { scope_in_response: true, introspect, jwks: false }).await;
        let clock = ManualClock::starting_now();
        let events = EventBus::recording().with_clock(clock.clone());
        let (_, tokens) = warden::mcp::token_manager(&s.config(), None, events.clone()).await.unwrap();
        let first = tokens.claims().await.unwrap();
        let left = first.seconds_to_expiry(clock_now(&clock));
        // The test AS stamps `exp` (introspection) with the real time, a moment after the
        // manual clock started: a second boundary crossed in between reads as 301.
        assert!(left.is_some_and(|l| (298..=301).contains(&l)), "{left:?}");
        // 300 s lifetime, 60 s skew: 239 s later still fresh…
        clock.advance(Duration::from_secs(239));
        for _ in 0..3 {
            assert_eq!(tokens.claims().await.unwrap().fingerprint, first.fingerprint);
        }
        assert_eq!(s.state.token_requests.load(Ordering::SeqCst), 1);
        // …2 s later (59 s left) it is replaced.
        clock.advance(Duration::from_secs(2));
        let second = tokens.claims().await.unwrap();
        assert_ne!(second.fingerprint, first.fingerprint);
        assert_eq!(s.state.token_requests.load(Ordering::SeqCst), 2);
        let reasons: Vec<RefreshReason> = events
            .recorded()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::TokenIssued { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons, vec![RefreshReason::Initial, RefreshReason::Expiring]);
        let expected = if introspect == Introspect::Answers { 2 } else { 0 };
        assert_eq!(s.state.introspections.load(Ordering::SeqCst), expected, "once per token");
        assert_eq!(tokens.info().unwrap().refresh_count, 1);
    }
}

/// A token the authorization server itself calls inactive is not used: exit 4, named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_introspected_as_inactive_is_refused() {
    let s =
        Servers::start(AsOptions { scope_in_response: true, introspect: Introspect::SaysInactive, jwks: false }).await;
    let out = s.warden(&["token"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("says the token it just issued is not active; it was not used"), "{t}");
    assert!(out.stdout.is_empty(), "no token state shown: {t}");
    s.assert_no_token_in("command output", &t);
}

/// The resource forgets the token (revoked): its 401 gets one new opaque token and one
/// retry, as with JWTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_opaque_token_is_replaced_once_and_the_call_retried() {
    let s = Servers::start(AsOptions { scope_in_response: true, introspect: Introspect::Off, jwks: false }).await;
    let events = EventBus::recording();
    let stack = warden::mcp::ClientStack::connect(
        &s.config(),
        None,
        warden::mcp::secure_tool::CallPolicy::default(),
        events.clone(),
    )
    .await
    .unwrap();
    let tool = stack.tool("echo_note").unwrap();
    let scope = warden::types::event::Scope::default();
    let first = tool.call(json!({"text": "one"}), &scope).await;
    assert!(first.outcome.is_success(), "{:?}", first.outcome);
    let before = stack.servers[0].tokens.as_ref().unwrap().info().unwrap().fingerprint;

    s.state.issued.lock().clear();
    let second = tool.call(json!({"text": "two"}), &scope).await;
    assert!(second.outcome.is_success(), "{:?}", second.outcome);
    assert_eq!(second.attempts, 2);
    assert_ne!(stack.servers[0].tokens.as_ref().unwrap().info().unwrap().fingerprint, before);
    assert_eq!(s.state.token_requests.load(Ordering::SeqCst), 2);
    let reasons: Vec<RefreshReason> = events
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::TokenIssued { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, vec![RefreshReason::Initial, RefreshReason::Unauthorized]);
}

fn clock_now(clock: &ManualClock) -> u64 {
    use warden::types::time::Clock;
    clock.now_epoch()
}
