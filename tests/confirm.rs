//! Destructive-call confirmation through the real binary, against a small MCP server on
//! loopback (rmcp, no auth) whose `create_support_ticket` is annotated destructive and
//! counts the calls that reach it — so "nothing was executed" is the server's word, not
//! Warden's. The offline planner drives the agent (it plans by tool name: a lookup, then
//! the ticket).
//!
//! What a user notices: `warden run` refuses the destructive call without `--yes` (exit 7,
//! the answer says the operator did not confirm it, the server saw no call) and makes it
//! with `--yes`; `confirm = "never"` makes it unasked; `confirm = "always"` refuses even
//! the read-only lookup; `warden call` needs `--yes` too; `warden tools` shows the hints;
//! the audit trail records who decided. In the console (the real binary under tmux) the
//! destructive call opens a confirmation overlay: `n` declines it and the agent's answer
//! says so, `y` allows it.

#[path = "common/tmux.rs"]
mod tmux;
use tmux::Tmux;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::Request;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

/// Calls that reached the server, per tool.
#[derive(Default)]
struct Counts {
    lookups: AtomicU32,
    tickets: AtomicU32,
    slow: AtomicU32,
    slow_idempotent: AtomicU32,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct LookupArgs {
    /// The customer's ID.
    customer_id: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct TicketArgs {
    customer_id: String,
    subject: String,
    description: String,
    priority: String,
}

#[derive(Clone)]
struct Tickets {
    counts: Arc<Counts>,
    tool_router: ToolRouter<Tickets>,
}

#[tool_router]
impl Tickets {
    /// Look up a customer.
    #[tool(annotations(read_only_hint = true, open_world_hint = false))]
    async fn get_customer_info(&self, Parameters(a): Parameters<LookupArgs>) -> String {
        self.counts.lookups.fetch_add(1, Ordering::SeqCst);
        format!(r#"{{"customer_id": "{}", "name": "Ada", "tier": "gold", "status": "active"}}"#, a.customer_id)
    }

    /// Replace the customer's open ticket with a new one (deletes the old one).
    #[tool(annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = false))]
    async fn create_support_ticket(&self, Parameters(a): Parameters<TicketArgs>) -> String {
        let n = self.counts.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        format!(
            r#"{{"ticket_id": "T-{n}", "customer_id": "{}", "subject": "{}", "priority": "{}", "status": "open", "chars": {}}}"#,
            a.customer_id,
            a.subject,
            a.priority,
            a.description.len()
        )
    }

    /// Takes longer than the client waits; declares nothing about itself.
    #[tool]
    async fn slow_unannotated(&self) -> String {
        self.counts.slow.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        "done".into()
    }

    /// Takes longer than the client waits; declared idempotent (safe to send again).
    #[tool(annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true))]
    async fn slow_idempotent(&self) -> String {
        self.counts.slow_idempotent.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        "done".into()
    }
}

#[tool_handler(router = self.tool_router, name = "tickets", version = "0.1.0")]
impl ServerHandler for Tickets {}

/// The server on a port of its own (its runtime lives as long as the returned handle).
struct Server {
    url: String,
    counts: Arc<Counts>,
    _rt: tokio::runtime::Runtime,
}

fn server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let counts = Arc::new(Counts::default());
    let url = rt.block_on({
        let counts = counts.clone();
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let config = StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
                .with_sse_keep_alive(None)
                .with_allowed_hosts(vec!["127.0.0.1".to_string()]);
            let service = Arc::new(StreamableHttpService::new(
                move || Ok(Tickets { counts: counts.clone(), tool_router: Tickets::tool_router() }),
                Arc::new(NeverSessionManager::default()),
                config,
            ));
            let mcp = tower::service_fn(move |req: Request| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
            });
            let router = Router::new().route_service("/mcp", mcp);
            tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            });
            format!("http://{addr}/mcp")
        }
    });
    Server { url, counts, _rt: rt }
}

impl Server {
    fn lookups(&self) -> u32 {
        self.counts.lookups.load(Ordering::SeqCst)
    }

    fn tickets(&self) -> u32 {
        self.counts.tickets.load(Ordering::SeqCst)
    }
}

const SCENARIO: &str = r#"
[[scenario]]
name = "replace-ticket"
request = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective."
expected_tools = ["get_customer_info", "create_support_ticket"]
"#;

/// A state dir with a config for the server under `confirm` (none: the default) and the
/// scenario file.
fn setup(url: &str, confirm: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let confirm = confirm.map(|c| format!("confirm = \"{c}\"\n")).unwrap_or_default();
    let config = format!("[[servers]]\nname = \"tickets\"\nurl = \"{url}\"\nauth = \"none\"\n{confirm}");
    std::fs::write(dir.path().join("warden.toml"), config).unwrap();
    std::fs::write(dir.path().join("scenarios.toml"), SCENARIO).unwrap();
    dir
}

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(dir.join("warden.toml"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `warden run --json`: the scenario's result line.
fn run(dir: &Path, extra: &[&str]) -> (Output, Value) {
    let scenarios = dir.join("scenarios.toml");
    let mut args = vec!["run", scenarios.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = warden(dir, &args);
    let first = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    let result = serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out, result)
}

#[test]
fn run_refuses_a_destructive_call_without_yes_and_makes_it_with_yes() {
    let s = server();
    let dir = setup(&s.url, None);

    let (out, result) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(s.tickets(), 0, "the destructive call must not reach the server");
    assert_eq!(s.lookups(), 1, "the read-only lookup needs no confirmation");
    assert_eq!(result["status"], "failed", "{result}");
    let response = result["response"].as_str().unwrap();
    assert!(
        response.contains("create_support_ticket failed: not called: create_support_ticket on tickets needs the operator's confirmation (it is annotated as destructive) and this command was not given --yes; nothing was sent"),
        "{response}"
    );
    // The audit trail says who decided, between the call and its result.
    let tail = warden(dir.path(), &["audit", "tail", "--json", "--tool", "create_support_ticket"]);
    let kinds: Vec<(String, Value)> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .map(|e| (e["type"].as_str().unwrap_or_default().to_string(), e))
        .collect();
    let types: Vec<&str> = kinds.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["tool_call", "tool_confirmation", "tool_result"], "{}", text(&tail));
    assert_eq!(
        (&kinds[1].1["allowed"], &kinds[1].1["by"], &kinds[1].1["policy"]),
        (&Value::Bool(false), &Value::from("flag"), &Value::from("destructive"))
    );
    assert_eq!(
        (&kinds[2].1["outcome"], &kinds[2].1["class"], &kinds[2].1["attempts"]),
        (&Value::from("failed"), &Value::from("not_confirmed"), &Value::from(0))
    );

    let (out, result) = run(dir.path(), &["--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.tickets(), 1);
    assert_eq!(result["tools"], serde_json::json!(["get_customer_info", "create_support_ticket"]), "{result}");
    assert!(result["response"].as_str().unwrap().contains("T-1"), "{result}");
}

#[test]
fn confirm_never_runs_it_unasked_and_always_asks_even_for_a_lookup() {
    let s = server();
    let never = setup(&s.url, Some("never"));
    let (out, _) = run(never.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!((s.lookups(), s.tickets()), (1, 1));
    // Nobody was asked, and the trail says so.
    let tail = warden(never.path(), &["audit", "tail", "--outcome", "confirmed"]);
    let shown = String::from_utf8_lossy(&tail.stdout);
    assert!(shown.contains("allowed by policy (confirm = never)"), "{}", text(&tail));

    let always = setup(&s.url, Some("always"));
    let (out, result) = run(always.path(), &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!((s.lookups(), s.tickets()), (1, 1), "the read-only lookup was not sent either");
    let response = result["response"].as_str().unwrap();
    assert!(response.contains("tickets has confirm = \"always\""), "{response}");
}

#[test]
fn warden_call_needs_yes_for_a_destructive_tool_and_tools_shows_the_hints() {
    let s = server();
    let dir = setup(&s.url, None);
    let args = r#"{"customer_id":"ABC123","subject":"Grill","description":"broken","priority":"low"}"#;
    let out = warden(dir.path(), &["call", "create_support_ticket", args]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("✗ create_support_ticket failed (not confirmed, 0 attempts"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("Re-run with --yes to allow it"), "{}", text(&out));
    assert_eq!(s.tickets(), 0);
    let out = warden(dir.path(), &["call", "create_support_ticket", args, "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(s.tickets(), 1);
    // A read-only tool needs no flag.
    let out = warden(dir.path(), &["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let out = warden(dir.path(), &["tools"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("      ⚠       destructive, not idempotent, open world, asks to confirm\n"), "{shown}");
    assert!(shown.contains("      ro      read-only, closed world\n"), "{shown}");
    let out = warden(dir.path(), &["tools", "--json"]);
    let tools: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ticket = tools.as_array().unwrap().iter().find(|t| t["tool"] == "create_support_ticket").unwrap();
    assert_eq!(ticket["needs_confirmation"], true);
    assert_eq!(ticket["confirm"], "destructive");
    assert_eq!(
        ticket["hints"],
        serde_json::json!({"read_only": false, "destructive": true, "idempotent": false, "open_world": true, "declared": true})
    );
}

#[test]
fn the_console_asks_before_a_destructive_call_n_declines_and_y_allows() {
    let s = server();
    let dir = setup(&s.url, None);
    let tmux = Tmux { socket: format!("warden-confirm-{}", std::process::id()) };
    let command = format!(
        "{} --state-dir {} --config {} console; echo WARDEN_EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_warden"),
        dir.path().join("state").display(),
        dir.path().join("warden.toml").display()
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "w", "-x", "200", "-y", "50", &command]);
    assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
    let wait = std::time::Duration::from_secs(30);
    tmux.wait_for("○ idle", wait);

    let request = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective.";
    tmux.keys(&[request, "Enter"]);
    let screen = tmux.wait_for("Confirm tool call", wait);
    assert!(screen.contains("tool     create_support_ticket"), "{screen}");
    assert!(screen.contains("why      annotated as destructive"), "{screen}");
    assert!(screen.contains("\"customer_id\": \"ABC123\""), "{screen}");
    assert_eq!(s.lookups(), 1, "the read-only lookup ran without asking");
    tmux.keys(&["n"]);
    let screen = tmux.wait_for("✗ failed —", wait);
    assert!(screen.contains("⚠ asked create_support_ticket declined by operator"), "{screen}");
    assert!(screen.contains("the operator declined"), "the agent's answer says so: {screen}");
    assert_eq!(s.tickets(), 0, "a declined call sends nothing");

    tmux.keys(&[request, "Enter"]);
    tmux.wait_for("Confirm tool call", wait);
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("✓ ok —", wait);
    assert!(screen.contains("⚠ asked create_support_ticket allowed by operator"), "{screen}");
    assert!(screen.contains("T-1"), "{screen}");
    assert_eq!(s.tickets(), 1);

    tmux.keys(&["C-c"]);
    tmux.wait_for("WARDEN_EXIT=0", std::time::Duration::from_secs(15));
}

/// The retry policy reads the same hints: a call to a tool that declares nothing (so is
/// neither read-only nor idempotent) is never sent twice after a timeout — it ends as
/// outcome unknown after one attempt, and the server saw it once — while a tool declared
/// idempotent is sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unannotated_tool_is_never_replayed_after_a_timeout() {
    use warden::mcp::ClientStack;
    use warden::mcp::secure_tool::CallPolicy;
    use warden::types::confirm::Confirmer;
    use warden::types::event::{CallOutcome, EventBus, FailureClass, Scope};
    warden::install_crypto_provider();
    let s = tokio::task::spawn_blocking(server).await.unwrap();
    let dir = setup(&s.url, Some("never"));
    let (config, _) = warden::config::Config::load(Some(&dir.path().join("warden.toml"))).unwrap();
    let policy = CallPolicy {
        timeout: std::time::Duration::from_millis(300),
        confirmer: Confirmer::Flag { yes: true },
        ..CallPolicy::default()
    };
    let stack = ClientStack::connect(&config, None, policy, EventBus::new()).await.unwrap();

    let unannotated = stack.tool("slow_unannotated").unwrap().clone();
    assert!(!unannotated.spec.hints.declared && !unannotated.spec.retry_safe);
    let report = unannotated.call(serde_json::json!({}), &Scope::default()).await;
    assert_eq!(report.attempts, 1, "{report:?}");
    assert!(
        matches!(&report.outcome, CallOutcome::Failed { class: FailureClass::OutcomeUnknown, message } if message.contains("is not repeated automatically")),
        "{report:?}"
    );

    let idempotent = stack.tool("slow_idempotent").unwrap().clone();
    assert!(idempotent.spec.retry_safe);
    let report = idempotent.call(serde_json::json!({}), &Scope::default()).await;
    assert_eq!(report.attempts, 2, "{report:?}");

    // What reached the server, once every request has had time to arrive.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.counts.slow.load(Ordering::SeqCst), 1);
    assert_eq!(s.counts.slow_idempotent.load(Ordering::SeqCst), 2);
    drop((unannotated, idempotent));
    stack.close().await;
    // The server's runtime is dropped off the async context.
    tokio::task::spawn_blocking(move || drop(s)).await.unwrap();
}
