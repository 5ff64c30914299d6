//! The client's authorization-code login, end to end with the real binary: a server that
//! needs OAuth (401 with a Bearer challenge) and no client credentials configured, so
//! `--auth headless` registers (RFC 7591), authorizes with PKCE S256, `state` and `resource`,
//! exchanges the code, keeps the refresh token sealed in the state dir, uses it on the next
//! run, and steps up on 403 insufficient_scope when asked to.
//!
//! The authorization server and the MCP server are one small axum app on loopback written
//! here, strict where a real one is: single-use codes checked against the S256 challenge,
//! the registered redirect URI (any loopback port, RFC 8252 §7.3), rotating refresh tokens,
//! opaque access tokens whose scopes the MCP server enforces.

#[path = "common/chat_reply.rs"]
mod chat_reply;
use chat_reply::chat_reply;
#[path = "common/tmux.rs"]
mod tmux;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

/// What the test authorization server does wrong on purpose.
#[derive(Clone, Copy, Default, PartialEq)]
enum Misbehave {
    #[default]
    Nothing,
    /// Redirects back with another `state` (a forged or replayed answer).
    WrongState,
    /// Remembers another challenge than the one sent, as if the code had been stolen and
    /// redeemed with another verifier: the token endpoint must refuse the exchange.
    OtherChallenge,
    /// Revokes the access token at the first tool call (the MCP server answers 401).
    RevokeAtFirstCall,
    /// Never grants files:write, whatever is asked (a policy the client cannot change).
    NeverGrantsWrite,
}

#[derive(Default)]
struct AsState {
    base: String,
    misbehave: Misbehave,
    /// client_id → registered redirect URIs.
    clients: HashMap<String, Vec<String>>,
    /// code → (client_id, challenge, redirect_uri, scope).
    codes: HashMap<String, (String, String, String, String)>,
    /// refresh token → (client_id, scope).
    refresh: HashMap<String, (String, String)>,
    /// access token → scope.
    access: HashMap<String, String>,
    /// The scope of every authorization request, in order.
    authorizations: Vec<String>,
    /// The client_id of every authorization request, in order.
    authorized_clients: Vec<String>,
    /// Advertise client ID metadata documents, and accept an https client_id.
    cimd: bool,
    registrations: u32,
    refreshes: u32,
    token_requests: u32,
    issued: u32,
}

type Shared = Arc<Mutex<AsState>>;

struct TestAs {
    base: String,
    state: Shared,
}

impl TestAs {
    fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }
    fn with<T>(&self, f: impl FnOnce(&mut AsState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }
}

fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn oauth_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response()
}

/// RFC 8252 §7.3: a loopback redirect URI matches whatever its port.
fn same_without_port(a: &str, b: &str) -> bool {
    let strip = |u: &str| {
        let mut u = url::Url::parse(u).ok()?;
        u.set_port(None).ok()?;
        Some(u.to_string())
    };
    strip(a).is_some() && strip(a) == strip(b)
}

async fn start(misbehave: Misbehave) -> TestAs {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // One client registered by hand: a public client for any loopback port (RFC 8252 §7.3).
    let clients = HashMap::from([("warden-public".to_string(), vec!["http://127.0.0.1/callback".to_string()])]);
    let state: Shared = Arc::new(Mutex::new(AsState { base: base.clone(), misbehave, clients, ..AsState::default() }));
    let app = axum::Router::new()
        .route("/.well-known/oauth-protected-resource/mcp", get(prm))
        .route("/.well-known/oauth-authorization-server", get(as_metadata))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/mcp", post(mcp).get(|| async { StatusCode::METHOD_NOT_ALLOWED }).delete(|| async { StatusCode::OK }))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    TestAs { base, state }
}

async fn prm(State(s): State<Shared>) -> Response {
    let base = s.lock().unwrap().base.clone();
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "scopes_supported": ["files:read"],
    }))
    .into_response()
}

async fn as_metadata(State(s): State<Shared>) -> Response {
    let (base, cimd) = {
        let s = s.lock().unwrap();
        (s.base.clone(), s.cimd)
    };
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": cimd,
    }))
    .into_response()
}

async fn register(State(s): State<Shared>, axum::Json(body): axum::Json<Value>) -> Response {
    let mut s = s.lock().unwrap();
    let uris: Vec<String> = body["redirect_uris"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if uris.is_empty() || body["token_endpoint_auth_method"] != "none" {
        return oauth_error("invalid_client_metadata");
    }
    s.registrations += 1;
    let id = format!("client-{}", s.registrations);
    s.clients.insert(id.clone(), uris.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"client_id": id, "redirect_uris": uris, "token_endpoint_auth_method": "none"})),
    )
        .into_response()
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let (client, redirect) = (get("client_id"), get("redirect_uri"));
    // A client ID metadata document URL would be fetched by a real server; here it is taken.
    let by_document = s.cimd && client.starts_with("https://");
    let registered =
        by_document || s.clients.get(&client).is_some_and(|uris| uris.iter().any(|u| same_without_port(u, &redirect)));
    let resource = format!("{}/mcp", s.base);
    if !registered
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || get("state").is_empty()
        || get("resource") != resource
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    s.authorizations.push(get("scope"));
    s.authorized_clients.push(client.clone());
    s.issued += 1;
    let code = format!("code-{}", s.issued);
    let challenge =
        if s.misbehave == Misbehave::OtherChallenge { s256("another-verifier") } else { get("code_challenge") };
    s.codes.insert(code.clone(), (client, challenge, redirect.clone(), get("scope")));
    let state = if s.misbehave == Misbehave::WrongState { "forged".to_string() } else { get("state") };
    let mut location = url::Url::parse(&redirect).unwrap();
    location.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    (StatusCode::FOUND, [(header::LOCATION, location.to_string())]).into_response()
}

async fn token(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    s.token_requests += 1;
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("resource") != format!("{}/mcp", s.base) {
        return oauth_error("invalid_target");
    }
    let (client, scope) = match get("grant_type").as_str() {
        "authorization_code" => {
            // Single use: the code is gone whatever happens next.
            let Some((client, challenge, redirect, scope)) = s.codes.remove(&get("code")) else {
                return oauth_error("invalid_grant");
            };
            if client != get("client_id") || redirect != get("redirect_uri") || s256(&get("code_verifier")) != challenge
            {
                return oauth_error("invalid_grant");
            }
            (client, scope)
        }
        "refresh_token" => {
            // Rotation: the refresh token used is spent.
            let Some((client, scope)) = s.refresh.remove(&get("refresh_token")) else {
                return oauth_error("invalid_grant");
            };
            if client != get("client_id") {
                return oauth_error("invalid_grant");
            }
            s.refreshes += 1;
            (client, scope)
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    let scope = match s.misbehave {
        Misbehave::NeverGrantsWrite => scope.split(' ').filter(|w| *w != "files:write").collect::<Vec<_>>().join(" "),
        _ => scope,
    };
    s.issued += 1;
    let (access, refresh) = (format!("at-{}", s.issued), format!("rt-{}-secret", s.issued));
    s.access.insert(access.clone(), scope.clone());
    s.refresh.insert(refresh.clone(), (client, scope.clone()));
    axum::Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": refresh, "scope": scope,
    }))
    .into_response()
}

/// A minimal MCP server over streamable HTTP (JSON responses): `read_file` needs
/// files:read, `write_file` files:write, enforced with 401/403 challenges.
async fn mcp(State(s): State<Shared>, headers: HeaderMap, axum::Json(req): axum::Json<Value>) -> Response {
    let (base, scope) = {
        let s = s.lock().unwrap();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        (s.base.clone(), s.access.get(bearer).cloned())
    };
    let prm = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let Some(scope) = scope else {
        let challenge = format!(r#"Bearer resource_metadata="{prm}", scope="files:read""#);
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    };
    let method = req["method"].as_str().unwrap_or("");
    let id = req["id"].clone();
    let result = match method {
        "initialize" => json!({
            "protocolVersion": req["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "files", "version": "1.0.0"},
        }),
        "notifications/initialized" => return StatusCode::ACCEPTED.into_response(),
        "tools/list" => json!({"tools": [
            {"name": "read_file", "description": "Read a file", "inputSchema": {"type": "object"},
             "annotations": {"readOnlyHint": true}},
            {"name": "write_file", "description": "Write a file", "inputSchema": {"type": "object"},
             "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true}},
        ]}),
        "tools/call" => {
            let tool = req["params"]["name"].as_str().unwrap_or("");
            let mut st = s.lock().unwrap();
            if st.misbehave == Misbehave::RevokeAtFirstCall {
                st.misbehave = Misbehave::Nothing;
                st.access.clear();
                let challenge = format!(r#"Bearer error="invalid_token", resource_metadata="{prm}""#);
                return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
            }
            drop(st);
            let needs = if tool == "write_file" { "files:write" } else { "files:read" };
            if !scope.split(' ').any(|s| s == needs) {
                let challenge = format!(
                    r#"Bearer error="insufficient_scope", scope="files:read {needs}", resource_metadata="{prm}""#
                );
                return (StatusCode::FORBIDDEN, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
            }
            json!({"content": [{"type": "text", "text": format!("{tool} done")}], "isError": false})
        }
        _ => {
            return axum::Json(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}}),
            )
            .into_response();
        }
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

async fn warden(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("--state-dir").arg(state).args(args).env_remove("SSL_CERT_FILE").env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || cmd.output().expect("warden runs")).await.expect("join")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Login, reuse and logout: the first run registers and logs in; the second uses the stored
/// (sealed) access token; once the server no longer takes it, the stored refresh token gets
/// a new one, no new registration or authorization; the rotated refresh token is what is
/// stored then; `warden logout` forgets it, so the next run logs in again (with
/// the stored registration).
#[tokio::test(flavor = "multi_thread")]
async fn headless_login_registers_once_and_the_sealed_refresh_token_survives_a_restart() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mcp = server.mcp();

    let out = warden(tmp.path(), &["tools", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(listing.contains("\n  granted: files:read\n  ✓ allowed  read_file "), "{listing}");
    assert!(listing.contains("\n  ✓ allowed  write_file "), "{listing}");
    assert_eq!(
        server.with(|s| (s.registrations, s.authorizations.clone(), s.refreshes)),
        (1, vec!["files:read".to_string()], 0),
        "one registration, one authorization asking for the challenge's scope"
    );

    let clients = tmp.path().join("auth/clients.json");
    let sealed = tmp.path().join("auth/refresh-tokens.sealed");
    let key = tmp.path().join("keys/refresh-tokens.key");
    #[cfg(unix)]
    assert_eq!((mode(&clients), mode(&sealed), mode(&key)), (0o600, 0o600, 0o600));
    let registered: Value = serde_json::from_str(&std::fs::read_to_string(&clients).unwrap()).unwrap();
    let entry = registered.as_object().unwrap().values().next().unwrap();
    assert_eq!(entry["client_id"], "client-1");
    let raw = std::fs::read(&sealed).unwrap();
    let first_rt = server.with(|s| s.refresh.keys().next().cloned().unwrap());
    assert!(!raw.windows(first_rt.len()).any(|w| w == first_rt.as_bytes()), "the refresh token is not stored in clear");
    assert!(!raw.windows(3).any(|w| w == b"rt-"), "no refresh token in clear");

    let at = server.with(|s| s.access.keys().next().cloned().unwrap());
    assert!(!raw.windows(at.len()).any(|w| w == at.as_bytes()), "nor the access token");

    // A restart: the stored access token (an hour left), nothing sent to the AS.
    let out = warden(tmp.path(), &["tools", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.registrations, s.authorizations.len(), s.refreshes, s.token_requests)), (1, 1, 0, 1));

    // The server forgets its access tokens (restarted): the stored one gets a 401, and the
    // stored refresh token a new one, no new login.
    server.with(|s| s.access.clear());
    let out = warden(tmp.path(), &["tools", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.registrations, s.authorizations.len(), s.refreshes)), (1, 1, 1));
    // Rotation: the AS spent the first refresh token; the new one is what is stored.
    let live_rt = server.with(|s| s.refresh.keys().cloned().collect::<Vec<_>>());
    assert_eq!(live_rt.len(), 1);
    assert_ne!(live_rt[0], first_rt);
    let store = warden::auth::refresh_store::RefreshStore::in_state_dir(tmp.path());
    let stored = store.load("127.0.0.1", &mcp).unwrap().expect("a stored login");
    assert_eq!(stored.refresh_token.as_ref().map(|t| t.expose().as_str()), Some(live_rt[0].as_str()));
    let access = stored.access.expect("the new access token is stored too");
    assert_eq!(Some(access.token.expose()), server.with(|s| s.access.keys().next().cloned()).as_ref());
    assert_eq!(stored.client_id, "client-1");

    let out = warden(tmp.path(), &["logout", "127.0.0.1"]).await;
    assert_eq!((text(&out.stdout), out.status.code()), ("forgot the login for 127.0.0.1\n".to_string(), Some(0)));
    assert!(!sealed.exists());
    let out = warden(tmp.path(), &["logout", "127.0.0.1"]).await;
    assert_eq!(
        (text(&out.stderr), out.status.code()),
        (
            "warden: no stored login for 127.0.0.1; nothing to forget (`warden logout` forgets every server's)\n"
                .to_string(),
            Some(1)
        )
    );

    // Logged out: a new authorization, the stored registration reused.
    let out = warden(tmp.path(), &["tools", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.registrations, s.authorizations.len(), s.refreshes)), (1, 2, 1));
}

/// Without `--auth` (and not at a terminal) nothing is sent to the authorization server:
/// the report says what was found and how to log in.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_login_mode_a_pipeline_gets_the_report_not_a_hanging_browser() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), &["tools", "--url", &server.mcp()]).await;
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("run again with --auth browser"), "{err}");
    let out = warden(tmp.path(), &["servers", "--url", &server.mcp()]).await;
    assert!(
        text(&out.stdout).contains(&format!(
            "  status     ✗ needs credentials: log in with --auth browser (or --auth headless), or add a [client] section with issuer = \"{}\", client_id and client_secret_env\n",
            server.base
        )),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(server.with(|s| (s.registrations, s.authorizations.len())), (0, 0));
}

/// A redirect with another state is refused before the code is used.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_with_another_state_is_refused_and_its_code_never_exchanged() {
    let server = start(Misbehave::WrongState).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), &["tools", "--url", &server.mcp(), "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(4), "an authorization failure exits 4");
    assert_eq!(
        text(&out.stderr),
        "warden: 127.0.0.1: the redirect's state does not match the one Warden sent; the answer was ignored (it may be forged: log in again)\n"
    );
    assert_eq!(server.with(|s| s.token_requests), 0, "the code was never sent to the token endpoint");
    assert!(!tmp.path().join("auth/refresh-tokens.sealed").exists());
}

/// The token endpoint checks the PKCE verifier against the challenge of the authorization
/// request: with the right one (every other test) the exchange works; with a code bound to
/// another challenge it is refused, and Warden says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_bound_to_another_pkce_challenge_is_not_exchanged() {
    let server = start(Misbehave::OtherChallenge).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), &["tools", "--url", &server.mcp(), "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        text(&out.stderr),
        format!(
            "warden: 127.0.0.1: token endpoint {}/token returned invalid_grant: the authorization code or refresh token was refused; log in again\n",
            server.base
        )
    );
    assert_eq!(server.with(|s| (s.token_requests, s.access.len())), (1, 0));
}

/// 403 insufficient_scope: `--step-up auto` re-authorizes with the union of the grant and
/// the challenge's scopes and the call goes through; `never` (the default) is a denial that
/// names the scopes, with no new authorization.
#[tokio::test(flavor = "multi_thread")]
async fn step_up_auto_reauthorizes_with_the_union_and_never_is_a_clear_denial() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mcp = server.mcp();

    let out = warden(tmp.path(), &["call", "--url", &mcp, "--auth", "headless", "--yes", "write_file", "{}"]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a denial exits 3: {err}");
    let said = text(&out.stdout) + &err;
    assert!(said.starts_with("✗ DENIED write_file: missing files:write\n"), "{said}");
    assert!(said.contains("files:write"), "the denial names the missing scope: {said}");
    assert!(!said.contains("expired"), "a 403 is not an expired token: {said}");
    assert_eq!(server.with(|s| s.authorizations.clone()), vec!["files:read".to_string()]);

    let out = warden(
        tmp.path(),
        &["call", "--url", &mcp, "--auth", "headless", "--step-up", "auto", "--yes", "write_file", "{}"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("write_file done"), "{}", text(&out.stdout));
    assert_eq!(
        server.with(|s| s.authorizations.clone()),
        vec!["files:read".to_string(), "files:read files:write".to_string()],
        "one new authorization, with the union"
    );
}

/// Each login step is an `auth_step` event in `--json` output, with its URL and outcome,
/// and nothing secret anywhere in it: no code, verifier, access or refresh token. Discovery
/// comes first: the challenge, the resource metadata, the authorization server's metadata.
#[tokio::test(flavor = "multi_thread")]
async fn every_login_step_is_an_event_and_none_carries_a_secret() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mcp = server.mcp();
    let args = ["call", "--url", &mcp, "--auth", "headless", "--step-up", "auto", "--json", "write_file", "{}"];
    let out = warden(tmp.path(), &args).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for secret in ["code-", "at-", "rt-", "code_verifier"] {
        assert!(!stdout.contains(secret), "{secret} in {stdout}");
    }
    let report: Value = serde_json::from_str(&stdout).expect("call --json prints one JSON object");
    let steps: Vec<(String, String)> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "auth_step")
        .map(|e| (e["stage"].as_str().unwrap().to_string(), e["url"].as_str().unwrap_or("").to_string()))
        .collect();
    let base = &server.base;
    let steps: Vec<(&str, String)> = steps.iter().map(|(s, u)| (s.as_str(), u.replace(base, "BASE"))).collect();
    let redirect =
        |(s, u): &(&str, String)| *s == "redirect" && u.starts_with("http://127.0.0.1:") && u.ends_with("/callback");
    assert!(steps.iter().filter(|s| redirect(s)).count() == 2, "{steps:?}");
    let others: Vec<(&str, String)> = steps.iter().filter(|s| !redirect(s)).cloned().collect();
    assert_eq!(
        others,
        vec![
            ("challenge", "BASE/mcp".to_string()),
            ("resource_metadata", "BASE/.well-known/oauth-protected-resource/mcp".to_string()),
            ("server_metadata", "BASE/.well-known/oauth-authorization-server".to_string()),
            ("registration", "BASE/register".to_string()),
            ("authorization_request", "BASE/authorize".to_string()),
            ("code_exchange", "BASE/token".to_string()),
            ("step_up", "BASE/authorize".to_string()),
            ("registration", "BASE/register".to_string()),
            ("authorization_request", "BASE/authorize".to_string()),
            ("code_exchange", "BASE/token".to_string()),
        ]
    );
    assert_eq!(server.with(|s| s.registrations), 1, "the step-up reuses the registration");
}

/// A `[client]` without a secret logs in as that pre-registered public client (no
/// registration); with `client_id_metadata_url` and an authorization server that supports
/// client ID metadata documents, the URL is the client_id.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_section_without_a_secret_logs_in_as_that_client_or_by_its_metadata_document() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        let path = tmp.path().join("warden.toml");
        std::fs::write(
            &path,
            format!(
                "[client]\nissuer = \"{base}\"\nclient_id = \"warden-public\"\nallow_http_loopback = true\nlogin = \"headless\"\n{extra}\n[[servers]]\nname = \"files\"\nurl = \"{base}/mcp\"\n",
                base = server.base
            ),
        )
        .unwrap();
        path
    };
    let plain = config("");
    let out = warden(tmp.path(), &["tools", "--config", plain.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("files {}/mcp", server.base)), "{}", text(&out.stdout));
    assert_eq!(
        server.with(|s| (s.registrations, s.authorized_clients.clone())),
        (0, vec!["warden-public".to_string()])
    );
    // `warden token` takes the same way, here with the stored access token.
    let out = warden(tmp.path(), &["token", "--config", plain.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.authorizations.len(), s.refreshes, s.token_requests)), (1, 0, 1));

    // The same config with a metadata document URL, to a server that takes them.
    server.with(|s| s.cimd = true);
    let doc = "https://warden.example/client-metadata.json";
    let cimd = config(&format!("client_id_metadata_url = \"{doc}\"\n"));
    std::fs::remove_file(tmp.path().join("auth/refresh-tokens.sealed")).unwrap();
    let out = warden(tmp.path(), &["tools", "--config", cimd.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.registrations, s.authorized_clients.last().cloned())), (0, Some(doc.to_string())));

    // No config at all: --client-id-metadata-url with --url.
    let other = tempfile::tempdir().unwrap();
    let flag_doc = "https://warden.example/other-client.json";
    let out = warden(
        other.path(),
        &["tools", "--url", &server.mcp(), "--auth", "headless", "--client-id-metadata-url", flag_doc],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        server.with(|s| (s.registrations, s.authorized_clients.last().cloned())),
        (0, Some(flag_doc.to_string()))
    );
}

/// A 401 in the middle of a run (the token was revoked): the refresh token gets a new access
/// token and the call is retried once, without a new authorization.
#[tokio::test(flavor = "multi_thread")]
async fn a_401_mid_run_is_answered_with_the_refresh_token_not_a_new_login() {
    let server = start(Misbehave::RevokeAtFirstCall).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), &["call", "--url", &server.mcp(), "--auth", "headless", "read_file", "{}"]).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("read_file done"), "{}", text(&out.stdout));
    assert_eq!(server.with(|s| (s.registrations, s.authorizations.len(), s.refreshes)), (1, 1, 1));
}

/// `--auth browser` without a display prints the URL; whoever opens it (here: an HTTP client
/// that follows redirects, as a browser does) lands on the loopback listener, which answers
/// with a page to close, and the login completes.
#[tokio::test(flavor = "multi_thread")]
async fn browser_login_prints_the_url_and_the_loopback_listener_takes_the_redirect() {
    use std::io::BufRead;
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(tmp.path())
        .args(["tools", "--url", &server.mcp(), "--auth", "browser"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (first, url) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr).lines();
        let first = lines.next().unwrap().unwrap();
        let url = lines.next().unwrap().unwrap();
        (first, url.trim().to_string())
    })
    .await
    .unwrap();
    assert_eq!(first, "warden: open this URL in a browser to log in (Warden waits for the redirect):");
    assert!(url.starts_with(&format!("{}/authorize?response_type=code&client_id=client-1&", server.base)), "{url}");
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.url().path(), "/callback");
    assert_eq!(
        page.text().await.unwrap(),
        "<!doctype html><title>Warden</title><p>Warden received the authorization server's answer. You can close this tab.</p>"
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("✓ allowed  read_file"), "{}", text(&out.stdout));
    assert_eq!(server.with(|s| s.authorizations.len()), 1);
}

/// Step-up is bounded: an authorization server that never grants the scope gets two
/// re-authorizations for the call, then the denial stands, naming the scope.
#[tokio::test(flavor = "multi_thread")]
async fn step_up_gives_up_after_two_reauthorizations_with_the_denial() {
    let server = start(Misbehave::NeverGrantsWrite).await;
    let tmp = tempfile::tempdir().unwrap();
    let args = ["call", "--url", &server.mcp(), "--auth", "headless", "--step-up", "auto", "write_file", "{}"];
    let out = warden(tmp.path(), &args).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("✗ DENIED write_file: missing files:write\n"), "{}", text(&out.stdout));
    assert_eq!(
        server.with(|s| s.authorizations.clone()),
        vec!["files:read", "files:read files:write", "files:read files:write"],
        "the login, then two step-ups"
    );
}

/// The refresh token is used before the access token expires (inside the refresh skew), with
/// no new authorization; the token manager's single-flight refresh drives it.
#[tokio::test(flavor = "multi_thread")]
async fn the_refresh_token_is_used_before_the_access_token_expires() {
    use std::time::Duration;
    use warden::auth::authcode::LoginMode;
    use warden::auth::discovery::{BearerChallenge, discover};

    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let challenge = BearerChallenge { resource_metadata: None, scope: None };
    let found = discover(&http, &server.mcp(), &challenge, true).await.expect("discovery");
    let mut config = warden::config::Config::default();
    config.login.mode = Some(LoginMode::Headless);
    config.login.state_dir = Some(tmp.path().to_path_buf());
    let entry = warden::config::ServerEntry::http("files", server.mcp());
    let clock = warden::types::time::ManualClock::at_ms(1_700_000_000_000);
    let events = warden::types::event::EventBus::new().with_clock(clock.clone());
    let tokens = warden::mcp::login::login_tokens(&config, &entry, &http, None, &events, &found);

    let first = tokens.claims().await.expect("login");
    assert_eq!(first.expires_at, Some(1_700_000_000 + 3600));
    assert_eq!(server.with(|s| (s.authorizations.len(), s.refreshes)), (1, 0));
    // Still more than the skew left: the same token, nothing sent.
    clock.advance(Duration::from_secs(3600 - 120));
    assert_eq!(tokens.claims().await.unwrap().fingerprint, first.fingerprint);
    assert_eq!(server.with(|s| s.refreshes), 0);
    // Inside the skew: refreshed, not re-authorized.
    clock.advance(Duration::from_secs(70));
    let second = tokens.claims().await.expect("refresh");
    assert_ne!(second.fingerprint, first.fingerprint);
    assert_eq!(server.with(|s| (s.authorizations.len(), s.refreshes)), (1, 1));
}

/// `warden token --url` takes the same way as `tools`: discovery from the 401, a login, and
/// the token's state (never the token); the next `token` shows the stored one.
#[tokio::test(flavor = "multi_thread")]
async fn token_with_url_logs_in_and_shows_the_token_state() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mcp = server.mcp();
    let out = warden(tmp.path(), &["token", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.starts_with("opaque token: the server decides\n"), "{shown}");
    assert!(shown.contains("\n  scopes       files:read (from the token response)\n"), "{shown}");
    assert!(!shown.contains("at-1"), "never the token itself: {shown}");
    let out = warden(tmp.path(), &["token", "--url", &mcp, "--auth", "headless", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.with(|s| (s.authorizations.len(), s.token_requests)), (1, 1), "the stored token, nothing asked");
}

/// A stored login is used without `--auth` (nothing asks the user); once it no longer works,
/// a pipeline without `--auth` is told to log in again, and no browser is opened.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_login_needs_no_login_mode_until_it_stops_working() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let mcp = server.mcp();
    let out = warden(tmp.path(), &["tools", "--url", &mcp, "--auth", "headless"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = warden(tmp.path(), &["tools", "--url", &mcp]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\n  granted: files:read\n"), "{}", text(&out.stdout));
    let out = warden(tmp.path(), &["servers", "--url", &mcp]).await;
    assert!(text(&out.stdout).contains("\n  auth       oauth (discovered, logged in)\n"), "{}", text(&out.stdout));

    // The authorization server forgets every token: the stored ones no longer work.
    server.with(|s| {
        s.access.clear();
        s.refresh.clear();
    });
    let out = warden(tmp.path(), &["tools", "--url", &mcp]).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "the stored login for 127.0.0.1 no longer works; log in again with --auth browser (or --auth headless)"
        ),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.with(|s| s.authorizations.len()), 1, "no new authorization without a login mode");
}

/// The scripted model: calls `write_file`, then finishes; its answer says whether the tool
/// wrote (the only part of the console's world that is a double).
async fn lm_chat(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    let last = messages.last().and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    if !system.contains("next_tool_name") {
        let response = if last.contains("write_file done") { "The file is written." } else { "I could not write it." };
        return axum::Json(chat_reply(&[("reasoning", "The tool answered."), ("response", response)]));
    }
    axum::Json(match last.matches("[[ ## observation_").count() {
        0 => chat_reply(&[
            ("next_thought", "Write the file."),
            ("next_tool_name", "write_file"),
            ("next_tool_args", "{}"),
        ]),
        _ => chat_reply(&[("next_thought", "Done."), ("next_tool_name", "finish"), ("next_tool_args", "{}")]),
    })
}

/// The console asks before a step-up (`--step-up ask` is its default): the operator first
/// answers n — the denial stands, naming the missing scope, and the auth flow says the
/// operator declined — then, on a re-run, y: Warden re-authorizes with the union and the
/// call goes through. The "Auth flow" overlay (`A`) then lists the steps that happened, and
/// the token pane's history shows the step-up token. Real binary, real terminal (tmux).
#[test]
fn the_console_asks_before_a_step_up_and_shows_the_auth_flow() {
    use std::time::Duration;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = rt.block_on(start(Misbehave::Nothing));
    let model = {
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/v1/chat/completions", post(lm_chat));
        rt.spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    };
    let state = tempfile::tempdir().unwrap();
    let tmux = tmux::Tmux::new("warden-step-up-e2e");
    tmux.start(
        100,
        30,
        &format!(
            "OPENAI_API_KEY=sk-e2e-test {} --state-dir {} console --url {} --auth headless --model openai/gpt-e2e --lm-base-url {model}; echo WARDEN_EXIT=$?; sleep 30",
            env!("CARGO_BIN_EXE_warden"),
            state.path().display(),
            server.mcp(),
        ),
    );
    tmux.wait_for("◌ opaque", Duration::from_secs(60));

    // The call is refused with 403; the console asks. n: the denial stands.
    tmux.keys(&["Write the file.", "Enter"]);
    // At 100 columns the question wraps before its [y/N].
    let question = "127.0.0.1 asks for files:read files:write — re-authorize with files:read files:write?";
    let s = tmux.wait_for("Step-up", Duration::from_secs(30));
    assert!(s.contains(question) && s.contains("│ [y/N]"), "{s}");
    assert!(s.contains("granted  files:read"), "{s}");
    assert!(s.contains("would be files:read +files:write"), "{s}");
    tmux.keys(&["n"]);
    let s = tmux.wait_for("I could not write it.", Duration::from_secs(30));
    assert!(s.contains("missing files:write"), "the denial names the missing scope: {s}");
    assert_eq!(server.with(|s| s.authorizations.clone()), vec!["files:read".to_string()]);

    // Re-run (r, out of the input): asked again; y re-authorizes and the call goes through.
    tmux.keys(&["Escape"]);
    tmux.wait_for("Request — i or Enter to type", Duration::from_secs(5));
    tmux.keys(&["r"]);
    tmux.wait_for(question, Duration::from_secs(30));
    tmux.keys(&["y"]);
    tmux.wait_for("The file is written.", Duration::from_secs(30));
    assert_eq!(
        server.with(|s| s.authorizations.clone()),
        vec!["files:read".to_string(), "files:read files:write".to_string()],
        "one new authorization, with the union"
    );

    // The auth flow of the server: every step that happened, the declined step-up included.
    tmux.keys(&["A"]);
    // The answer can reach the chat before the console has drawn the last token events
    // (they come on the event stream): wait for the step-up's token in the overlay, which
    // follows new events while open.
    let s = tmux.wait_for("files:read files:write · fp sha256:", Duration::from_secs(10));
    assert!(s.contains("Auth flow — 127.0.0.1"), "{s}");
    let rows: Vec<&str> = s.lines().collect();
    // A step row: its time (HH:MM:SS), two spaces, the step in a 21-wide column.
    let steps: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            let chars: Vec<char> = r.chars().collect();
            let at = chars.windows(10).position(|w| {
                let digit = |i: usize| w[i].is_ascii_digit();
                digit(0)
                    && digit(1)
                    && w[2] == ':'
                    && digit(3)
                    && digit(4)
                    && w[5] == ':'
                    && digit(6)
                    && digit(7)
                    && w[8] == ' '
                    && w[9] == ' '
            })?;
            Some(chars[at + 10..(at + 31).min(chars.len())].iter().collect::<String>().trim().to_string())
        })
        .collect();
    assert_eq!(
        steps,
        [
            "registration",
            "authorization request",
            "redirect",
            "code exchange",
            "token issued",
            "step-up",
            "step-up",
            "registration",
            "authorization request",
            "redirect",
            "code exchange",
            "token issued",
        ],
        "{s}"
    );
    assert!(s.contains("✗ declined by the operator: the server asked for files:read files:write"), "{s}");
    // Wrapped under the step column, never cut.
    assert!(s.contains("→ the server asked for files:read files:write; re-authorizing with files:read"), "{s}");
    assert!(s.contains("│          files:write  "), "{s}");
    assert!(s.contains("→ opaque · files:read files:write · fp "), "{s}");
    assert!(s.contains(" · step-up"), "{s}");
    tmux.keys(&["Escape"]);
    let s = tmux.wait_for("recent tokens", Duration::from_secs(5));
    assert!(s.contains("step-up"), "the token history: {s}");
    tmux.keys(&["q"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));

    // The recording has the login's steps too (a replay shows the same auth flow), with
    // the time they happened: before the session started.
    let sessions = state.path().join("sessions");
    let file = std::fs::read_dir(&sessions).unwrap().next().unwrap().unwrap().path();
    let events: Vec<Value> =
        std::fs::read_to_string(file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let at = |pred: &dyn Fn(&Value) -> bool| events.iter().find(|e| pred(e)).map(|e| e["at_ms"].as_u64().unwrap());
    let started = at(&|e| e["type"] == "session_started").expect("session_started recorded");
    let registered = at(&|e| e["type"] == "auth_step" && e["stage"] == "registration").expect("the login recorded");
    assert!(registered <= started, "{registered} then {started}");
}

/// `--step-up ask` is the console's: a headless command has no one to ask, and says so
/// before connecting anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_headless_command_refuses_step_up_ask() {
    let server = start(Misbehave::Nothing).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(
        tmp.path(),
        &["call", "--url", &server.mcp(), "--auth", "headless", "--step-up", "ask", "write_file", "{}"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "warden: --step-up ask needs someone to answer: it works in the console (warden console); headless commands take --step-up auto or never\n"
    );
    assert_eq!(server.with(|s| s.authorizations.len()), 0, "nothing was sent");
}
