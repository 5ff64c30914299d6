//! Warden against MCP servers it did not write: the reference server
//! `@modelcontextprotocol/server-everything` (npm, pinned below) over stdio and streamable
//! HTTP, no `[client]` section, no OAuth; and a static-API-key server (that same server
//! behind a small proxy in this test that checks `X-API-Key`).
//!
//! The npm package is installed on first use into `CARGO_TARGET_TMPDIR` (needs `npm` and
//! the npm registry once; later runs reuse it). Each test drives the real `warden` binary
//! and asserts what a user sees: stdout, stderr, exit codes, the log.

#[path = "common/everything.rs"]
mod everything;
use everything::everything;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A secret in Warden's own environment that no MCP server may see.
const CANARY: &str = "canary-client-secret-7d41b9";
/// The API key the proxy accepts.
const API_KEY: &str = "test-api-key-93c1f0aa";

fn stdio_line() -> String {
    format!("node {} stdio", everything().display())
}

/// Runs warden with a fresh state dir, a canary secret in its environment, trace logging.
fn warden(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("WARDEN_LOG", "trace")
        .env("WARDEN_CANARY_SECRET", CANARY)
        .env("OPENAI_API_KEY", CANARY)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn log(state: &Path) -> String {
    std::fs::read_to_string(state.join("logs/warden.log")).unwrap_or_default()
}

/// `✓ TOOL on SERVER (1 attempt, N ms)` then the body: the body, after checking the head.
fn body_of_success(o: &Output, tool: &str, server: &str) -> String {
    assert_eq!(o.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    let out = stdout(o);
    let (head, body) = out.split_once('\n').unwrap();
    assert!(head.starts_with(&format!("✓ {tool} on {server} (1 attempt, ")), "{head}");
    body.to_string()
}

#[test]
fn stdio_server_lists_tools_and_calls_them_without_any_config() {
    let state = tempfile::tempdir().unwrap();
    let line = stdio_line();
    let tools = warden(state.path(), &["tools", "--stdio", &line], &[]);
    assert_eq!(tools.status.code(), Some(0), "{}", stderr(&tools));
    let out = stdout(&tools);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with(&format!("node {line} (manifest ")), "{first}");
    assert_eq!(out.lines().nth(1), Some("  auth: none (no token, no scopes to check)"));
    for tool in ["echo", "get-sum", "get-env"] {
        assert!(out.lines().any(|l| l.starts_with(&format!("  ✓ allowed  {tool} "))), "{tool} missing:\n{out}");
    }

    let echo = warden(state.path(), &["call", "--stdio", &line, "echo", r#"{"message":"hi"}"#], &[]);
    assert_eq!(body_of_success(&echo, "echo", "node"), "Echo: hi\n");
    let sum = warden(state.path(), &["call", "--stdio", &line, "get-sum", r#"{"a":2,"b":40}"#], &[]);
    assert_eq!(body_of_success(&sum, "get-sum", "node"), "The sum of 2 and 40 is 42.\n");

    // The child's stderr went to the log, prefixed with the server, never to the terminal.
    assert!(!stderr(&echo).contains("Starting default (STDIO) server"), "{}", stderr(&echo));
    let log = log(state.path());
    assert!(
        log.lines().any(|l| l.contains("stderr: Starting default (STDIO) server...") && l.contains("server=\"node\"")),
        "{log}"
    );
}

#[test]
fn a_stdio_server_sees_only_path_home_and_its_configured_env() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A config with an OAuth client whose secret comes from Warden's environment: the stdio
    // server must not see it (nor the LM key), only PATH, HOME and its own env.
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[client]\nissuer = \"https://127.0.0.1:1\"\nclient_id = \"x\"\nclient_secret_env = \"WARDEN_CANARY_SECRET\"\n\n\
             [[servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\nenv = {{ GREETING = \"hello ${{WHO}}\" }}\n",
            everything().display().to_string()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let env = warden(state.path(), &["--config", cfg, "call", "get-env"], &[("WHO", "world")]);
    let body = body_of_success(&env, "get-env", "everything");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut keys: Vec<&str> = seen.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["GREETING", "HOME", "PATH"], "{body}");
    assert_eq!(seen["GREETING"], "hello world");
    assert!(!body.contains(CANARY));
    assert!(!log(state.path()).contains(CANARY));
}

#[test]
fn an_mcp_servers_json_file_works_as_the_config_and_warden_servers_reports_it() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("claude_desktop_config.json");
    let index = everything().display().to_string();
    std::fs::write(
        &json,
        serde_json::json!({"mcpServers": {
            "everything": {"command": "node", "args": [index, "stdio"]},
            "legacy": {"url": "http://127.0.0.1:9/sse", "type": "sse"},
        }})
        .to_string(),
    )
    .unwrap();
    // One SSE server in the file: the whole file is refused, naming it.
    let refused = warden(state.path(), &["--config", json.to_str().unwrap(), "servers"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused)
            .contains("mcpServers.legacy uses the legacy SSE transport (type \"sse\"), which Warden does not support"),
        "{}",
        stderr(&refused)
    );

    std::fs::write(
        &json,
        serde_json::json!({"mcpServers": {
            "everything": {"command": "node", "args": [index, "stdio"]},
            "gone": {"command": "/nonexistent/mcp-server"},
        }})
        .to_string(),
    )
    .unwrap();
    let cfg = json.to_str().unwrap();
    let listed = warden(state.path(), &["--config", cfg, "servers"], &[]);
    assert_eq!(listed.status.code(), Some(1), "one server does not start");
    assert_eq!(
        stdout(&listed),
        format!(
            "everything\n  transport  stdio  node {index} stdio\n  auth       none\n  status     ✓ reachable, 13 tools\n\
             gone\n  transport  stdio  /nonexistent/mcp-server\n  auth       none\n  status     ✗ could not start the MCP server gone: could not start `/nonexistent/mcp-server`: not found (is it installed and on PATH?)\n"
        )
    );
    let echo = warden(state.path(), &["--config", cfg, "call", "everything.echo", r#"{"message":"json"}"#], &[]);
    assert_eq!(echo.status.code(), Some(1), "the other server fails to start, so the stack does");
    let only = dir.path().join("one.json");
    std::fs::write(
        &only,
        serde_json::json!({"mcpServers": {"everything": {"command": "node", "args": [index, "stdio"]}}}).to_string(),
    )
    .unwrap();
    let echo =
        warden(state.path(), &["--config", only.to_str().unwrap(), "call", "echo", r#"{"message":"json"}"#], &[]);
    assert_eq!(body_of_success(&echo, "echo", "everything"), "Echo: json\n");
}

/// server-everything over streamable HTTP. It listens on all interfaces (its source has no
/// host option: `app.listen(PORT)`), so it gets a random free port and lives only as long
/// as the test.
struct HttpEverything {
    child: Child,
    port: u16,
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_everything() -> HttpEverything {
    let index = everything();
    let port = free_port();
    let child = Command::new("node")
        .arg(&index)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = HttpEverything { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server-everything did not listen on port {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[test]
fn streamable_http_server_without_auth_lists_and_calls_with_its_session_id() {
    let server = http_everything();
    let state = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let tools = warden(state.path(), &["tools", "--url", &url], &[]);
    assert_eq!(tools.status.code(), Some(0), "{}", stderr(&tools));
    assert!(stdout(&tools).starts_with(&format!("127.0.0.1 {url} (manifest ")), "{}", stdout(&tools));
    // The server is stateful: without the Mcp-Session-Id rmcp's client sends back after
    // initialize, tools/list and tools/call would be refused (HTTP 400).
    let echo = warden(state.path(), &["call", "--url", &url, "echo", r#"{"message":"hi"}"#], &[]);
    assert_eq!(body_of_success(&echo, "echo", "127.0.0.1"), "Echo: hi\n");
    let sum = warden(state.path(), &["call", "--url", &url, "get-sum", r#"{"a":1.5,"b":2}"#], &[]);
    assert_eq!(body_of_success(&sum, "get-sum", "127.0.0.1"), "The sum of 1.5 and 2 is 3.5.\n");
}

/// A proxy in front of server-everything that wants `X-API-Key: API_KEY`: no key → 401
/// with a Bearer challenge (as an OAuth server answers); a wrong key → 401, no challenge.
fn key_proxy(upstream: String) -> (u16, tokio::runtime::Runtime) {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::{IntoResponse, Response};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream) = (http.clone(), upstream.clone());
        async move {
            match req.headers().get("x-api-key").map(|v| v.as_bytes().to_vec()) {
                None => {
                    return (
                        http::StatusCode::UNAUTHORIZED,
                        [("www-authenticate", "Bearer realm=\"mcp\", resource_metadata=\"http://127.0.0.1/x\"")],
                        "no key",
                    )
                        .into_response();
                }
                Some(k) if k != API_KEY.as_bytes() => {
                    return (http::StatusCode::UNAUTHORIZED, "wrong key").into_response();
                }
                Some(_) => {}
            }
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            let mut out = http.request(parts.method, format!("{upstream}{}", parts.uri.path())).body(bytes);
            for (k, v) in &parts.headers {
                if !matches!(k.as_str(), "host" | "x-api-key" | "content-length") {
                    out = out.header(k, v);
                }
            }
            let Ok(resp) = out.send().await else {
                return (http::StatusCode::BAD_GATEWAY, "upstream down").into_response();
            };
            let mut back = Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection") {
                    back = back.header(k, v);
                }
            }
            back.body(Body::from_stream(resp.bytes_stream())).unwrap_or_default()
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await });
    (port, rt)
}

#[test]
fn static_api_key_header_right_wrong_and_missing() {
    let server = http_everything();
    let (port, _rt) = key_proxy(format!("http://127.0.0.1:{}", server.port));
    let url = format!("http://127.0.0.1:{port}/mcp");
    let state = tempfile::tempdir().unwrap();

    let right = warden(
        state.path(),
        &["call", "--url", &url, "--header", "X-API-Key: ${TEST_MCP_KEY}", "echo", r#"{"message":"keyed"}"#],
        &[("TEST_MCP_KEY", API_KEY)],
    );
    assert_eq!(body_of_success(&right, "echo", "127.0.0.1"), "Echo: keyed\n");

    let wrong = warden(
        state.path(),
        &["tools", "--url", &url, "--header", "X-API-Key: ${TEST_MCP_KEY}"],
        &[("TEST_MCP_KEY", "not-the-key-5521")],
    );
    assert_eq!(wrong.status.code(), Some(4), "an auth failure: {}", stderr(&wrong));
    assert_eq!(
        stderr(&wrong),
        "warden: 127.0.0.1: the server refused the X-API-Key header; check its value (and the environment variable it comes from) (HTTP 401)\n"
    );

    // No key: the proxy's 401 carries a Bearer challenge, so Warden tries OAuth discovery
    // (the challenge's metadata URL leads nowhere, the proxy publishes none) and says both
    // what it tried and how to send an API key instead.
    let none = warden(state.path(), &["tools", "--url", &url], &[]);
    assert_eq!(none.status.code(), Some(4));
    assert_eq!(
        stderr(&none),
        format!(
            "warden: 127.0.0.1 requires OAuth (it answered 401 with a Bearer challenge), but Warden could not discover how: no protected resource metadata (RFC 9728) for {url}: tried http://127.0.0.1/x (connection refused), http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp (HTTP 401), http://127.0.0.1:{port}/.well-known/oauth-protected-resource (HTTP 401); the server must publish it (or name it in its 401 challenge's resource_metadata) for Warden to find its authorization server. If it takes an API key instead, pass it with --header 'X-API-Key: ${{MY_KEY}}' (in a config: auth = \"headers\" with headers = {{ \"X-API-Key\" = \"${{MY_KEY}}\" }})\n"
        )
    );

    // `warden servers` shows the header by name and fingerprint, never the key.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        format!(
            "[[servers]]\nname = \"keyed\"\nurl = \"{url}\"\nheaders = {{ \"X-API-Key\" = \"${{TEST_MCP_KEY}}\" }}\n"
        ),
    )
    .unwrap();
    let listed = warden(state.path(), &["--config", config.to_str().unwrap(), "servers"], &[("TEST_MCP_KEY", API_KEY)]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let fp = warden::types::secret::Fingerprint::of(API_KEY.as_bytes());
    assert_eq!(
        stdout(&listed),
        format!(
            "keyed\n  transport  http  {url}\n  auth       headers (X-API-Key: {fp})\n  status     ✓ reachable, 13 tools\n"
        )
    );

    // The key is nowhere in what Warden printed or logged (trace level).
    for o in [&right, &wrong, &none, &listed] {
        assert!(!stdout(o).contains(API_KEY) && !stderr(o).contains(API_KEY));
    }
    let log = log(state.path());
    assert!(log.contains("127.0.0.1"), "the log was written");
    assert!(!log.contains(API_KEY), "the API key leaked into the log");
    assert!(!log.contains("not-the-key-5521"), "the wrong key leaked into the log");
}

#[test]
fn the_stdio_child_is_gone_when_warden_exits() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    // `exec` keeps the shell's pid, so the file names the server process itself.
    let line = format!("sh -c 'echo $$ > {}; exec node {} stdio'", pidfile.display(), everything().display());
    let listed = warden(state.path(), &["servers", "--stdio", &line, "--json"], &[]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(
        rows,
        serde_json::json!([{"name": "sh", "transport": "stdio", "endpoint": format!("sh -c echo $$ > {}; exec node {} stdio", pidfile.display(), everything().display()),
            "auth": "none", "auth_discovered": false, "discovered": null, "headers": [], "status": "reachable",
            "reachable": true, "tools": 13, "error": null}])
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert_stops(&pid, "the stdio server");
}

/// Waits (bounded) until process `pid` is gone, or at most a zombie waiting for init to
/// reap it: not running.
fn assert_stops(pid: &str, what: &str) {
    let state_of = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().chars().next().unwrap_or('?')))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(state_of(), Some(c) if c != 'Z') {
        assert!(Instant::now() < deadline, "{what} ({pid}) still runs after warden exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Regression: only the server process was killed, so what it started lived on (`npx -y
/// server` starts `node`; killing `npx` left `node` running). The server now leads its own
/// process group and the whole group is killed.
#[test]
fn what_a_stdio_server_started_is_gone_when_warden_exits() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let line =
        format!("sh -c 'sleep 300 & echo $! > {}; exec node {} stdio'", pidfile.display(), everything().display());
    let listed = warden(state.path(), &["tools", "--stdio", &line], &[]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert!(stdout(&listed).contains("echo"), "{}", stdout(&listed));
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert_stops(&pid, "the server's own child");
}

/// What OpenTelemetry's MCP conventions put on the client span comes from the wire, seen by
/// the transport: the JSON-RPC id rmcp gave the call, the server's `Mcp-Session-Id` (this
/// server is stateful over HTTP; stdio has no session) and the protocol version the server
/// answered `initialize` with. A call sent without a traceparent is not tracked.
#[test]
fn a_traced_call_reports_its_request_id_session_and_negotiated_version() {
    use warden::mcp::session::McpSession;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let server = http_everything();
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let args = |m: &str| serde_json::json!({"message": m}).as_object().unwrap().clone();
    rt.block_on(async {
        let http = warden::security::tls::http_client(&Default::default(), Duration::from_secs(10)).unwrap();
        let (no_headers, no_overrides) = (Default::default(), Default::default());
        let session = McpSession::connect("everything", &url, http, None, &no_headers, &no_overrides).await.unwrap();
        session.call("echo", args("untraced"), None).await.unwrap();
        let result = session.call("echo", args("traced"), Some(tp)).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        let ex = session.exchange(tp).expect("the traced call was noted");
        // initialize is request 0, tools/list 1, the untraced call 2.
        assert_eq!(ex.request_id, "3");
        let sid = ex.session_id.expect("a stateful server's session id");
        assert!(!sid.is_empty() && sid.len() <= 200, "{sid}");
        assert_eq!(ex.protocol_version.as_deref(), Some("2025-11-25"));
        assert!(session.exchange(tp).is_none(), "taken once");
        session.close().await;

        let entry: warden::config::ServerEntry = serde_json::from_value(serde_json::json!({
            "name": "everything", "command": "node", "args": [everything().display().to_string(), "stdio"],
        }))
        .unwrap();
        let stdio = McpSession::connect_stdio(&entry, "node", &entry.args, &no_overrides, None).await.unwrap();
        stdio.call("echo", args("traced"), Some(tp)).await.unwrap();
        let ex = stdio.exchange(tp).expect("noted over stdio too");
        assert_eq!((ex.request_id.as_str(), ex.session_id), ("2", None));
        assert_eq!(ex.protocol_version.as_deref(), Some("2025-11-25"));
        stdio.close().await;
    });
}
