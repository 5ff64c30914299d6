//! Auth chosen by what the server says: an HTTP server with no `auth`, no headers and no
//! `[client]` (every bare `--url`) is connected without credentials; when it answers 401 with
//! a Bearer challenge Warden runs OAuth discovery (RFC 9728, then RFC 8414 / OpenID Connect)
//! and stops with what it found and what to configure. Real servers on loopback: Warden's
//! own stack (TLS, dev CA) and small axum servers for the variants discovery must handle;
//! the real binary, its exact lines and exit codes.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use common::Stack;

/// Runs the real binary with `args` (state in `state`), trusting the dev CA in `ca` if any.
async fn warden(state: &Path, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("--state-dir").arg(state).args(args).env_remove("SSL_CERT_FILE").env("NO_COLOR", "1");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("warden runs")).await.expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What the fake server answers: the challenge of its `POST /mcp` 401 (None: 200 to every
/// MCP request is not needed here), and JSON documents by path.
struct Fake {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// The GET paths requested so far, in order.
    fn gets(&self) -> Vec<String> {
        self.hits.lock().unwrap().iter().filter_map(|h| h.strip_prefix("GET ").map(str::to_string)).collect()
    }
}

/// A plain-http loopback server whose `/mcp` answers 401 with `challenge(base)` and which
/// serves `docs(base)` (path → JSON); everything else is 404. Records every request.
async fn fake(challenge: impl Fn(&str) -> String, docs: impl Fn(&str) -> Vec<(String, Value)>) -> Fake {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let challenge = challenge(&base);
    let docs: HashMap<String, Value> = docs(&base).into_iter().collect();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = hits.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (challenge, docs, seen) = (challenge.clone(), docs.clone(), seen.clone());
        async move {
            let path = req.uri().path().to_string();
            seen.lock().unwrap().push(format!("{} {path}", req.method()));
            if path == "/mcp" {
                let mut resp = (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&challenge).unwrap());
                return resp;
            }
            match docs.get(&path) {
                Some(doc) if req.method() == axum::http::Method::GET => axum::Json(doc.clone()).into_response(),
                _ => Response::builder().status(404).body(axum::body::Body::from("not found")).unwrap(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fake { base, hits }
}

fn prm(resource: &str, issuer: &str) -> Value {
    json!({"resource": resource, "authorization_servers": [issuer], "scopes_supported": ["files:read", "files:write"]})
}

fn as_meta(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "registration_endpoint": format!("{issuer}/register"),
    })
}

/// The whole error `warden tools --url` prints for a discovered OAuth server.
fn needs_oauth(server: &str, issuer: &str, prm_url: &str, scopes: &str, registration: &str, keys: &str) -> String {
    let mut section = format!(
        "  [client]\n  issuer = \"{issuer}\"\n  client_id = \"YOUR_CLIENT_ID\"\n  client_secret_env = \"YOUR_CLIENT_SECRET_VAR\"\n"
    );
    if let Some((list, _from)) = scopes.split_once(" (").filter(|(_, from)| !from.starts_with("the authorization")) {
        section.push_str(&format!("  scopes = \"{list}\"\n"));
    }
    if issuer.starts_with("http://") {
        section.push_str("  allow_http_loopback = true\n");
    }
    format!(
        "warden: {server} requires OAuth (it answered 401 with a Bearer challenge). Discovered:\n  \
         authorization server  {issuer} (named by {prm_url})\n  \
         token endpoint        {issuer}/token\n  \
         scopes                {scopes}\n  \
         client registration   {registration}\n  \
         token keys            {keys}\n\
         Next: get a client_id and secret for the client credentials grant from that authorization server, put them in a config file and pass it with --config:\n\
         {section}\
         (it offers no authorization endpoint, so Warden cannot log in with a browser)\n"
    )
}

/// Warden's own service: its 401 names its RFC 9728 document; the document names the issuer,
/// whose RFC 8414 metadata gives the token endpoint. `tools`, `call` and `servers` say so.
#[tokio::test(flavor = "multi_thread")]
async fn warden_service_without_client_section_reports_its_discovered_authorization_server() {
    let stack = Stack::start().await;
    let ca = stack.state.join("tls/ca.pem");
    let tmp = tempfile::tempdir().unwrap();
    let scopes = "account:calculate customer:read ticket:create (the server's scopes_supported)";
    let expected = needs_oauth(
        "127.0.0.1",
        &stack.issuer,
        &stack.resource_metadata_url(),
        scopes,
        &format!("offered at {}/register (Warden registers there when it logs in)", stack.issuer),
        &format!("{}/jwks.json (tokens can be verified)", stack.issuer),
    )
    // Warden's issuer offers the authorization code flow: the report says how to log in.
    .replace(
        "(it offers no authorization endpoint, so Warden cannot log in with a browser)\n",
        "Or log in: run again with --auth browser (or --auth headless, for an authorization server that approves without a user)\n",
    );

    let out = warden(tmp.path(), Some(&ca), &["tools", "--url", &stack.mcp]).await;
    assert_eq!(stderr(&out), expected);
    assert_eq!(out.status.code(), Some(4), "an authorization problem exits 4");
    assert_eq!(stdout(&out), "");

    let out = warden(tmp.path(), Some(&ca), &["call", "--url", &stack.mcp, "get_customer_info", "{}"]).await;
    assert_eq!((stderr(&out), out.status.code()), (expected.clone(), Some(4)));

    let out = warden(tmp.path(), Some(&ca), &["servers", "--url", &stack.mcp]).await;
    assert_eq!(
        stdout(&out),
        format!(
            "127.0.0.1\n  transport  http  {mcp}\n  auth       oauth (discovered)\n  issuer     {iss} (token endpoint {iss}/token)\n  status     ✗ needs credentials: log in with --auth browser (or --auth headless), or add a [client] section with issuer = \"{iss}\", client_id and client_secret_env\n",
            mcp = stack.mcp,
            iss = stack.issuer
        )
    );
    assert_eq!(out.status.code(), Some(1), "a server that is not usable makes `servers` exit 1");

    let out = warden(tmp.path(), Some(&ca), &["servers", "--url", &stack.mcp, "--json"]).await;
    let rows: Value = serde_json::from_str(&stdout(&out)).expect("servers --json prints JSON");
    let row = &rows[0];
    assert_eq!(row["auth"], "oauth");
    assert_eq!(row["auth_discovered"], true);
    assert_eq!(row["status"], "needs credentials");
    assert_eq!(row["reachable"], false);
    assert_eq!(row["discovered"]["authorization_server"], stack.issuer.as_str());
    assert_eq!(row["discovered"]["token_endpoint"], format!("{}/token", stack.issuer).as_str());
    assert_eq!(row["discovered"]["scopes"], "account:calculate customer:read ticket:create");
    assert_eq!(row["discovered"]["registration_endpoint"], format!("{}/register", stack.issuer).as_str());
    stack.stop().await;
}

/// With a `[client]` for the issuer discovery finds, the same `--url` just works (client
/// credentials); a `[client]` for another issuer is refused before any secret is sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_section_for_the_discovered_issuer_works_and_one_for_another_is_refused() {
    let stack = Stack::start().await;
    let ca = stack.state.join("tls/ca.pem");
    let tmp = tempfile::tempdir().unwrap();
    let client_toml = stack.state.join("client.toml");
    let out =
        warden(tmp.path(), Some(&ca), &["tools", "--url", &stack.mcp, "--config", client_toml.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("  ✓ allowed  get_customer_info      "), "{}", stdout(&out));

    let other = tmp.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "[client]\nissuer = \"https://127.0.0.1:1\"\nclient_id = \"support-agent\"\nclient_secret = \"not-sent\"\nca_file = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let out = warden(tmp.path(), Some(&ca), &["tools", "--url", &stack.mcp, "--config", other.to_str().unwrap()]).await;
    assert_eq!(
        stderr(&out),
        format!(
            "warden: 127.0.0.1 names authorization server {}, but the config trusts https://127.0.0.1:1; refusing to send credentials there\n",
            stack.issuer
        )
    );
    assert_eq!(out.status.code(), Some(1));
    stack.stop().await;
}

/// No `resource_metadata` in the challenge: the path-aware well-known URL is tried first and
/// the issuer's path-aware RFC 8414 metadata is used. No credentials go anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn path_aware_resource_metadata_and_path_aware_as_metadata() {
    let f = fake(
        |_| "Bearer realm=\"mcp\", scope=\"files:read\"".into(),
        |b| {
            vec![
                ("/.well-known/oauth-protected-resource/mcp".into(), prm(&format!("{b}/mcp"), &format!("{b}/tenant"))),
                ("/.well-known/oauth-authorization-server/tenant".into(), as_meta(&format!("{b}/tenant"))),
            ]
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    let issuer = format!("{}/tenant", f.base);
    assert_eq!(
        stderr(&out),
        needs_oauth(
            "127.0.0.1",
            &issuer,
            &format!("{}/.well-known/oauth-protected-resource/mcp", f.base),
            "files:read (from the challenge)",
            &format!("offered at {issuer}/register (Warden registers there when it logs in)"),
            &format!("{issuer}/jwks (tokens can be verified)"),
        )
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        f.gets(),
        vec!["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-authorization-server/tenant"]
    );
    assert!(
        f.hits.lock().unwrap().iter().all(|h| !h.contains("/token") && !h.contains("/register")),
        "discovery only reads metadata"
    );
}

/// Only the root RFC 9728 document exists: found after the path-aware one 404s.
#[tokio::test(flavor = "multi_thread")]
async fn root_resource_metadata_is_the_last_fallback() {
    let f = fake(
        |_| "Bearer".into(),
        |b| {
            vec![
                ("/.well-known/oauth-protected-resource".into(), prm(b, b)),
                ("/.well-known/oauth-authorization-server".into(), as_meta(b)),
            ]
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    assert_eq!(
        stderr(&out),
        needs_oauth(
            "127.0.0.1",
            &f.base,
            &format!("{}/.well-known/oauth-protected-resource", f.base),
            "files:read files:write (the server's scopes_supported)",
            &format!("offered at {}/register (Warden registers there when it logs in)", f.base),
            &format!("{}/jwks (tokens can be verified)", f.base),
        )
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        f.gets(),
        vec![
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-authorization-server"
        ]
    );
}

/// A resource document for another server is refused before the authorization server it
/// names is contacted at all.
#[tokio::test(flavor = "multi_thread")]
async fn resource_metadata_for_another_server_is_refused_before_anything_else() {
    let f = fake(
        |b| format!("Bearer resource_metadata=\"{b}/prm\""),
        |b| {
            vec![
                ("/prm".into(), prm("https://bank.example/mcp", &format!("{b}/as"))),
                ("/.well-known/oauth-authorization-server/as".into(), as_meta(&format!("{b}/as"))),
            ]
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    assert_eq!(
        stderr(&out),
        format!(
            "warden: 127.0.0.1 requires OAuth (it answered 401 with a Bearer challenge), but Warden could not discover how: the resource metadata at {b}/prm is for https://bank.example/mcp, which is not {b}/mcp (RFC 9728 §3.3); refusing to use another server's authorization settings. If it takes an API key instead, pass it with --header 'X-API-Key: ${{MY_KEY}}' (in a config: auth = \"headers\" with headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }})\n",
            b = f.base
        )
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(f.gets(), vec!["/prm"], "the authorization server was never asked");
}

/// An issuer with a path whose metadata is only at the OpenID Connect path-append location:
/// the two earlier locations are tried first, in the order MCP prescribes. It publishes no
/// JWKS and offers no registration: both are said.
#[tokio::test(flavor = "multi_thread")]
async fn openid_path_append_metadata_without_jwks() {
    let f = fake(
        |b| format!("Bearer resource_metadata=\"{b}/.well-known/oauth-protected-resource/mcp\""),
        |b| {
            let issuer = format!("{b}/realms/demo");
            vec![
                ("/.well-known/oauth-protected-resource/mcp".into(), prm(&format!("{b}/mcp"), &issuer)),
                (
                    "/realms/demo/.well-known/openid-configuration".into(),
                    json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token")}),
                ),
            ]
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    let issuer = format!("{}/realms/demo", f.base);
    assert_eq!(
        stderr(&out),
        needs_oauth(
            "127.0.0.1",
            &issuer,
            &format!("{}/.well-known/oauth-protected-resource/mcp", f.base),
            "files:read files:write (the server's scopes_supported)",
            "not offered: register a client with the authorization server's administrator",
            "none published (its tokens will be shown as opaque: the server decides)",
        )
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        f.gets(),
        vec![
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server/realms/demo",
            "/.well-known/openid-configuration/realms/demo",
            "/realms/demo/.well-known/openid-configuration"
        ]
    );
}

/// A challenge that points to plain http off loopback is not followed; the server's own
/// well-known locations are tried instead, and the error lists each with what came of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_resource_metadata_url_off_loopback_is_not_followed() {
    let f = fake(|_| "Bearer resource_metadata=\"http://metadata.example/prm\"".into(), |_| Vec::new()).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    assert_eq!(
        stderr(&out),
        format!(
            "warden: 127.0.0.1 requires OAuth (it answered 401 with a Bearer challenge), but Warden could not discover how: no protected resource metadata (RFC 9728) for {b}/mcp: tried http://metadata.example/prm (not followed: plain http off loopback), {b}/.well-known/oauth-protected-resource/mcp (HTTP 404), {b}/.well-known/oauth-protected-resource (HTTP 404); the server must publish it (or name it in its 401 challenge's resource_metadata) for Warden to find its authorization server. If it takes an API key instead, pass it with --header 'X-API-Key: ${{MY_KEY}}' (in a config: auth = \"headers\" with headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }})\n",
            b = f.base
        )
    );
    assert_eq!(out.status.code(), Some(4));
}

/// An authorization server on plain http off loopback is refused too (its metadata is not
/// fetched); and a 401 without a Bearer challenge keeps the "needs credentials" hint.
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_authorization_server_is_refused_and_a_non_bearer_401_gets_the_hint() {
    let f = fake(
        |_| "Bearer".into(),
        |b| vec![("/.well-known/oauth-protected-resource/mcp".into(), prm(&format!("{b}/mcp"), "http://as.example"))],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    assert_eq!(
        stderr(&out),
        "warden: 127.0.0.1 requires OAuth (it answered 401 with a Bearer challenge), but Warden could not discover how: authorization server http://as.example is not https; Warden follows plain http only to a loopback address, so it did not go there. If it takes an API key instead, pass it with --header 'X-API-Key: ${MY_KEY}' (in a config: auth = \"headers\" with headers = { \"X-API-Key\" = \"${MY_KEY}\" })\n"
    );
    assert_eq!(out.status.code(), Some(4));

    let basic = fake(|_| "Basic realm=\"files\"".into(), |_| Vec::new()).await;
    let out = warden(tmp.path(), None, &["tools", "--url", &basic.url()]).await;
    assert_eq!(
        stderr(&out),
        "warden: 127.0.0.1 requires authorization and Warden sent none: it needs OAuth (add a [client] section with issuer, client_id and client_secret_env, and auth = \"oauth\" for this server), or, if it takes an API key, set auth = \"headers\" with headers = { \"X-API-Key\" = \"${MY_KEY}\" } (HTTP 401, WWW-Authenticate: Basic realm=\"files\")\n"
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(basic.gets(), Vec::<String>::new(), "no discovery without a Bearer challenge");

    // `auth = "none"` set in the config overrides the server: no discovery, the hint.
    let config = tmp.path().join("none.toml");
    std::fs::write(&config, format!("[[servers]]\nname = \"files\"\nurl = \"{}\"\nauth = \"none\"\n", f.url()))
        .unwrap();
    let before = f.gets().len();
    let out = warden(tmp.path(), None, &["--config", config.to_str().unwrap(), "tools"]).await;
    assert_eq!(
        stderr(&out),
        "warden: files requires authorization and Warden sent none: it needs OAuth (add a [client] section with issuer, client_id and client_secret_env, and auth = \"oauth\" for this server), or, if it takes an API key, set auth = \"headers\" with headers = { \"X-API-Key\" = \"${MY_KEY}\" } (HTTP 401, WWW-Authenticate: Bearer)\n"
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(f.gets().len(), before, "no discovery when the config sets the mode");
}

/// `warden console --url` connects the same way: the discovered authorization server is
/// reported before any terminal is taken over.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_with_url_reports_discovery_too() {
    let f = fake(
        |_| "Bearer".into(),
        |b| {
            vec![
                ("/.well-known/oauth-protected-resource/mcp".into(), prm(&format!("{b}/mcp"), b)),
                ("/.well-known/openid-configuration".into(), as_meta(b)),
            ]
        },
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["console", "--url", &f.url()]).await;
    let told = needs_oauth(
        "127.0.0.1",
        &f.base,
        &format!("{}/.well-known/oauth-protected-resource/mcp", f.base),
        "files:read files:write (the server's scopes_supported)",
        &format!("offered at {}/register (Warden registers there when it logs in)", f.base),
        &format!("{}/jwks (tokens can be verified)", f.base),
    )
    .replacen("warden: ", "warden: cannot connect to the MCP servers: ", 1);
    assert_eq!(stderr(&out), told);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        f.gets(),
        vec![
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration"
        ],
        "an issuer without a path: RFC 8414, then OpenID Connect"
    );
}

/// An authorization server that does not answer is named, with what to do next.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_authorization_server_is_named() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let named = issuer.clone();
    let f = fake(
        |_| "Bearer".into(),
        move |b| vec![("/.well-known/oauth-protected-resource/mcp".into(), prm(&format!("{b}/mcp"), &named))],
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = warden(tmp.path(), None, &["tools", "--url", &f.url()]).await;
    assert_eq!(
        stderr(&out),
        format!(
            "warden: cannot reach the authorization server {issuer} (for 127.0.0.1): connection refused; 127.0.0.1 names it as its authorization server: check that it is up, or ask the server's operator\n"
        )
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A server of the 2025-03-26 revision publishes no resource metadata: its origin is its
/// authorization server. Its origin's RFC 8414 document is read when there is one (issuer on
/// that origin, endpoints under a path); without one the default endpoints are reported.
#[tokio::test(flavor = "multi_thread")]
async fn a_2025_03_26_server_is_discovered_at_its_origin_then_by_the_default_endpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let with_doc = fake(
        |_| "Bearer".to_string(),
        |b| {
            let meta = json!({
                "issuer": format!("{b}/oauth"),
                "token_endpoint": format!("{b}/oauth/token"),
                "authorization_endpoint": format!("{b}/oauth/authorize"),
                "code_challenge_methods_supported": ["S256"],
            });
            vec![("/.well-known/oauth-authorization-server".to_string(), meta)]
        },
    )
    .await;
    let out = warden(tmp.path(), None, &["tools", "--url", &with_doc.url()]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let b = &with_doc.base;
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "  authorization server  {b}/oauth (named by the server's origin: it publishes no resource metadata (2025-03-26))\n  token endpoint        {b}/oauth/token\n"
        )),
        "{text}"
    );
    assert!(text.contains("Or log in: run again with --auth browser"), "{text}");
    assert_eq!(
        with_doc.gets(),
        vec![
            "/.well-known/oauth-protected-resource/mcp".to_string(),
            "/.well-known/oauth-protected-resource".to_string(),
            "/.well-known/oauth-authorization-server".to_string(),
        ]
    );

    let bare = fake(|_| "Bearer".to_string(), |_| Vec::new()).await;
    let out = warden(tmp.path(), None, &["tools", "--url", &bare.url()]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let b = &bare.base;
    assert!(
        stderr(&out).contains(&format!(
            "  authorization server  {b} (named by the server's origin, assumed: it publishes no OAuth metadata, so these are the 2025-03-26 default endpoints; if it takes an API key instead, pass it with --header 'Authorization: Bearer ${{MY_KEY}}')\n  token endpoint        {b}/token\n"
        )),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&format!("client registration   offered at {b}/register")), "{}", stderr(&out));

    // An origin document naming an issuer elsewhere is not that server's: refused.
    let elsewhere = fake(
        |_| "Bearer".to_string(),
        |_| {
            let meta = json!({"issuer": "https://as.example", "token_endpoint": "https://as.example/token"});
            vec![("/.well-known/oauth-authorization-server".to_string(), meta)]
        },
    )
    .await;
    let out = warden(tmp.path(), None, &["tools", "--url", &elsewhere.url()]).await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("names issuer \"https://as.example\""), "{}", stderr(&out));
}
