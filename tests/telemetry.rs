//! OpenTelemetry export against a real OTLP receiver: Arize Phoenix from PyPI (installed on
//! first use into a venv under the target directory, `common/pypi.rs`), started on free
//! loopback ports with a throwaway working directory. The real `warden demo --headless`
//! runs the seed scenarios with `--otlp-endpoint`; Phoenix's REST API must then hold the
//! span tree of every run (names, parents, one trace per run, the GenAI and MCP
//! attributes, the denial event with its missing scopes), continued by the demo's own
//! service (its SERVER span from `_meta.traceparent`, and the store query under it), and
//! neither its API output nor its database may contain a secret or a token.
//!
//! Phoenix takes traces only (metrics are checked in the unit tests with the SDK's
//! in-memory exporter). Export failure is tested without it: an endpoint nobody listens on.

#[path = "common/pypi.rs"]
mod pypi;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PHOENIX: &str = "arize-phoenix==20.26.1";

fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    // Nothing from the developer's environment decides where spans go.
    c.env_remove("WARDEN_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_SERVICE_NAME")
        .env("NO_COLOR", "1");
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Phoenix server, killed on drop.
struct Phoenix {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Phoenix {
    fn start() -> Self {
        let python = pypi::venv_python("phoenix-venv", &[PHOENIX]);
        let dir = tempfile::tempdir().unwrap();
        let (port, grpc) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("phoenix.log")).unwrap();
        let child = Command::new(python)
            .args(["-m", "phoenix.server.main", "serve"])
            .env("PHOENIX_WORKING_DIR", dir.path())
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc.to_string())
            // No phoning home from a test.
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start Phoenix");
        let phoenix = Self { child, url: format!("http://127.0.0.1:{port}"), dir };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if get(&format!("{}/healthz", phoenix.url)).is_some() {
                return phoenix;
            }
            let log = std::fs::read_to_string(phoenix.dir.path().join("phoenix.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "Phoenix did not answer within 180 s; its log:\n{log}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every span of the default project (Phoenix pages by 1000 at most).
    fn spans(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/projects/default/spans?limit=1000", self.url);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Some(body) = get(&url) else { return out };
            let page: Value = serde_json::from_str(&body).unwrap();
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

/// A blocking GET with curl-free std networking: the body of a 200, else `None`.
fn get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Some(dechunk(body));
    }
    Some(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn demo(state: &Path, endpoint: &str) -> Output {
    warden()
        .arg("--state-dir")
        .arg(state)
        .args(["demo", "--headless", "--json", "--otlp-endpoint", endpoint])
        .output()
        .unwrap()
}

/// An attribute by its dotted name, whether the API gives attributes flat
/// (`"gen_ai.tool.name"`) or nested (`{"gen_ai": {"tool": {"name": …}}}`).
/// `SERVER` for the service's `tools/call` span, `CLIENT` for the agent's, else `other`.
fn role(span: &Value) -> &'static str {
    match (
        span["name"].as_str().is_some_and(|n| n.starts_with("tools/call ")),
        attr(span, "warden.decision.outcome").is_null(),
    ) {
        (true, false) => "SERVER",
        (true, true) => "CLIENT",
        _ => "other",
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    let attrs = &span["attributes"];
    if !attrs[key].is_null() {
        return &attrs[key];
    }
    key.split('.').fold(attrs, |v, part| &v[part])
}

/// Substrings shaped like a compact JWS (`eyJ….eyJ….sig`): any access token.
fn jwt_shapes(h: &[u8]) -> usize {
    h.windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"eyJ")
        .filter(|(i, _)| {
            let rest = &h[*i..];
            let dot = rest.iter().position(|c| !(c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_'));
            dot.is_some_and(|d| rest[d] == b'.' && rest[d + 1..].starts_with(b"eyJ"))
        })
        .count()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out
}

#[test]
fn demo_runs_arrive_in_phoenix_as_genai_span_trees_without_secrets() {
    let phoenix = Phoenix::start();
    let state = tempfile::tempdir().unwrap();
    let out = demo(state.path(), &phoenix.url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let runs = summary["scenarios"].as_u64().unwrap() as usize;
    assert_eq!(summary["telemetry"]["span_batches_failed"], 0, "{summary}");
    let exported = summary["telemetry"]["spans_exported"].as_u64().unwrap() as usize;

    // Phoenix ingests asynchronously: wait (bounded) until it holds every span the agent
    // exported and a SERVER span (from the demo's own service) for every request sent.
    // Phoenix's `span_kind` is OpenInference's (LLM, TOOL, …), not OpenTelemetry's: the
    // service's span is told from the client's by the guard's decision on it (the kinds
    // themselves are checked in the unit tests).
    let kind = |spans: &[Value], k: &str| spans.iter().filter(|s| role(s) == k).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = phoenix.spans();
        let agent_side = spans
            .iter()
            .filter(|s| attr(s, "warden.decision.outcome").is_null() && attr(s, "db.system.name").is_null())
            .count();
        let complete = agent_side >= exported && kind(&spans, "CLIENT") == kind(&spans, "SERVER");
        if complete || Instant::now() > deadline {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let servers = kind(&spans, "SERVER");
    assert!(servers > 0 && servers == kind(&spans, "CLIENT"), "a SERVER span for each request: {servers}");
    let named =
        |prefix: &str| spans.iter().filter(|s| s["name"].as_str().unwrap().starts_with(prefix)).collect::<Vec<_>>();
    let agents = named("invoke_agent ");
    assert_eq!(agents.len(), runs, "one invoke_agent span per scenario");
    let by_id = |id: &str| spans.iter().find(|s| s["context"]["span_id"] == id);

    for run in &agents {
        assert_eq!(run["name"], "invoke_agent customer-service");
        assert_eq!(run["parent_id"], Value::Null);
        assert_eq!(attr(run, "gen_ai.operation.name"), "invoke_agent");
        assert_eq!(attr(run, "gen_ai.provider.name"), "offline");
        assert!(attr(run, "gen_ai.conversation.id").as_str().is_some_and(|c| c.len() == 36), "{run}");
    }
    // One conversation (the session) for every run.
    let conversations: std::collections::BTreeSet<_> =
        agents.iter().map(|r| attr(r, "gen_ai.conversation.id").to_string()).collect();
    assert_eq!(conversations.len(), 1);

    // Every other span hangs, in the same trace, under the chain the conventions describe.
    for span in &spans {
        let name = span["name"].as_str().unwrap();
        let Some(parent) = span["parent_id"].as_str() else {
            assert!(name.starts_with("invoke_agent "), "a root that is not a run: {name}");
            continue;
        };
        let parent = by_id(parent).unwrap_or_else(|| panic!("{name}: parent {parent} not exported"));
        assert_eq!(span["context"]["trace_id"], parent["context"]["trace_id"], "{name} left its run's trace");
        let parent_name = parent["name"].as_str().unwrap();
        let (expected_parent, parent_role) = match (name.split(' ').next().unwrap(), role(span)) {
            ("chat" | "execute_tool", _) => ("invoke_agent", "other"),
            ("tools/call", "CLIENT") => ("execute_tool", "other"),
            // Warden's own service continues the agent's trace from `_meta.traceparent`.
            ("tools/call", "SERVER") => ("tools/call", "CLIENT"),
            ("SELECT" | "INSERT", _) => ("tools/call", "SERVER"),
            other => panic!("unexpected span {other:?}"),
        };
        assert!(parent_name.starts_with(expected_parent), "{name} under {parent_name}");
        assert_eq!(role(parent), parent_role, "{name} under {parent_name}");
    }

    let chats = named("chat ");
    assert!(chats.len() >= runs, "at least one chat per run");
    for chat in &chats {
        assert_eq!(chat["name"], "chat offline-planner");
        assert_eq!(attr(chat, "gen_ai.request.model"), "offline-planner");
    }
    let lookups = named("execute_tool get_customer_info");
    assert!(!lookups.is_empty());
    for tool in &lookups {
        assert_eq!(attr(tool, "gen_ai.tool.type"), "function");
        assert_eq!(attr(tool, "gen_ai.tool.name"), "get_customer_info");
        assert!(attr(tool, "warden.token.fingerprint").as_str().is_some_and(|f| f.starts_with("sha256:")), "{tool}");
    }
    let clients: Vec<_> = named("tools/call get_customer_info").into_iter().filter(|s| role(s) == "CLIENT").collect();
    assert_eq!(clients.len(), lookups.len(), "each lookup was sent");
    for client in &clients {
        assert_eq!(attr(client, "mcp.method.name"), "tools/call");
        assert_eq!(attr(client, "server.address"), "127.0.0.1");
        assert!(attr(client, "server.port").as_i64().is_some_and(|p| p > 0), "{client}");
        assert!(attr(client, "mcp.protocol.version").as_str().is_some_and(|v| v.starts_with("20")), "{client}");
        // The id rmcp gave the request, seen on the wire; Warden's service is stateless, so
        // there is no MCP session to name.
        assert!(attr(client, "jsonrpc.request.id").as_str().is_some_and(|id| id.parse::<u64>().is_ok()), "{client}");
        assert!(attr(client, "mcp.session.id").is_null(), "{client}");
    }

    // The service's side: the guard's decision on the same token, and the store query.
    for server in spans.iter().filter(|s| role(s) == "SERVER") {
        let client = by_id(server["parent_id"].as_str().unwrap()).unwrap();
        let tool = by_id(client["parent_id"].as_str().unwrap()).unwrap();
        assert_eq!(attr(server, "warden.decision.outcome"), "allowed", "{server}");
        assert_eq!(attr(server, "gen_ai.tool.name"), attr(tool, "gen_ai.tool.name"));
        assert_eq!(attr(server, "warden.token.fingerprint"), attr(tool, "warden.token.fingerprint"));
        assert_eq!(attr(server, "http.response.status_code"), 200);
        // Both ends name the same JSON-RPC request.
        assert_eq!(attr(server, "jsonrpc.request.id"), attr(client, "jsonrpc.request.id"), "{server}");
    }
    let lookup_server = spans
        .iter()
        .find(|s| role(s) == "SERVER" && attr(s, "gen_ai.tool.name") == "get_customer_info")
        .expect("a lookup reached the service");
    let store = spans.iter().find(|s| s["parent_id"] == lookup_server["context"]["span_id"]).expect("its store span");
    assert_eq!(store["name"], "SELECT customers");
    assert_eq!(attr(store, "db.system.name"), "sqlite");
    assert_eq!(attr(store, "db.operation.name"), "SELECT");

    // The read-only scenario: the ticket is refused by the client's pre-check, and the span
    // says so (status, error.type, the denial event with the missing scope), with no
    // tools/call under it (nothing was sent).
    let denied: Vec<_> = named("execute_tool create_support_ticket")
        .into_iter()
        .filter(|s| attr(s, "error.type") == "insufficient_scope")
        .collect();
    assert_eq!(denied.len(), 1, "one denied ticket");
    let denied = denied[0];
    assert_eq!(denied["status_code"], "ERROR");
    let denial =
        denied["events"].as_array().unwrap().iter().find(|e| e["name"] == "warden.denial").expect("denial event");
    assert_eq!(attr(denial, "warden.denial.side"), "client");
    assert_eq!(attr(denial, "warden.scopes.missing"), &serde_json::json!(["ticket:create"]));
    let sent_under = spans.iter().filter(|s| s["parent_id"] == denied["context"]["span_id"]).count();
    assert_eq!(sent_under, 0, "a call refused before sending has no MCP client span");

    // No secret and no token in any exported byte: the API's answer and Phoenix's files.
    let secrets =
        ["demo-support-agent-secret-4f9c2e", "demo-readonly-agent-secret-8b1d7a", "demo-user-password-5a7e31"];
    let api = serde_json::to_vec(&spans).unwrap();
    let mut stored = files(phoenix.dir.path()).into_iter().filter_map(|f| std::fs::read(f).ok()).collect::<Vec<_>>();
    stored.push(api);
    for bytes in &stored {
        for s in secrets {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "{s} was exported");
        }
        assert_eq!(jwt_shapes(bytes), 0, "an access token was exported");
    }
    // The customer data the tools returned stays out too (no capture_content).
    let customer = b"sarah.johnson@example.com";
    assert!(!stored.iter().any(|b| b.windows(customer.len()).any(|w| w == customer)), "tool output was exported");
}

/// Export to an endpoint nobody listens on: the demo still passes, and the summary says
/// what was lost.
#[test]
fn an_unreachable_collector_is_counted_and_shown_not_fatal() {
    let state = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = warden()
        .arg("--state-dir")
        .arg(state.path())
        .args(["demo", "--headless", "--otlp-endpoint", &endpoint])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("otlp ")).unwrap_or_else(|| panic!("no otlp line in:\n{stdout}"));
    let lost: u64 = line
        .strip_prefix(&format!("otlp {endpoint}: 0 spans exported, "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(lost > 0, "{line}");
    assert!(line.contains(&format!("lost (cannot send to {endpoint}/v1/traces: cannot connect)")), "{line}");
    // Bounded: the flush gives up after its timeout instead of holding the run.
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// A remote collector over plain http is refused before anything runs, naming the fix.
#[test]
fn a_plain_http_remote_collector_is_refused_with_the_fix() {
    let state = tempfile::tempdir().unwrap();
    let out = warden()
        .arg("--state-dir")
        .arg(state.path())
        .args(["demo", "--headless", "--otlp-endpoint", "http://collector.example:4318"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("plain http on a remote host: use https"), "{stderr}");
}
