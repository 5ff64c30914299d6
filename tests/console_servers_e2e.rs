//! Two servers side by side in the real console under tmux: Warden's own customer-service
//! server (OAuth, from `warden serve`) and the MCP reference server
//! `@modelcontextprotocol/server-everything` over stdio (no auth), with a model that calls a
//! tool on each. The language model is a local server speaking the OpenAI wire format (the
//! one part out of reach here), scripted to call `echo` on the reference server, then
//! `get_customer_info` on Warden's, then answer.
//!
//! Then the reference server's process is killed: the console shows it down, `R` restarts
//! it, and the same request works again.

#[path = "common/chat_reply.rs"]
mod chat_reply;
use chat_reply::chat_reply;
#[path = "common/tmux.rs"]
mod tmux;
use tmux::Tmux;

#[path = "common/everything.rs"]
mod everything;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use serde_json::Value;

/// `warden serve`, stopped when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The scripted model: the ReAct step is chosen by how many observations the trajectory
/// already holds; the extract step answers from what the tools returned.
async fn chat(Json(body): Json<Value>) -> Json<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let system = messages.first().and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    let last = messages.last().and_then(|m| m["content"].as_str()).unwrap_or_default().to_string();
    if !system.contains("next_tool_name") {
        let echoed = last.contains("Echo: hello from the operator");
        let response = if echoed {
            "The reference server echoed your message, and ABC123 is on file."
        } else {
            "I could not reach the echo tool."
        };
        return Json(chat_reply(&[("reasoning", "Both tools answered."), ("response", response)]));
    }
    let observations = last.matches("[[ ## observation_").count();
    Json(match observations {
        0 => chat_reply(&[
            ("next_thought", "Echo the operator's words on the reference server."),
            ("next_tool_name", "echo"),
            ("next_tool_args", r#"{"message": "hello from the operator"}"#),
        ]),
        1 => chat_reply(&[
            ("next_thought", "Now look up the customer on the customer-service server."),
            ("next_tool_name", "get_customer_info"),
            ("next_tool_args", r#"{"customer_id": "ABC123"}"#),
        ]),
        _ => chat_reply(&[
            ("next_thought", "I have both answers."),
            ("next_tool_name", "finish"),
            ("next_tool_args", "{}"),
        ]),
    })
}

/// Serves the scripted model on loopback; returns its base URL (`…/v1`).
fn model_server(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/chat/completions", post(chat));
    rt.spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

#[test]
fn both_servers_side_by_side_and_a_crashed_stdio_server_restarts() {
    let index = everything::everything();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let model = model_server(&rt);

    let serve_state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(serve_state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut banner).unwrap();
    let _serve = Serve(child);
    assert!(banner.starts_with("warden serve: issuer https://127.0.0.1:"), "{banner}");

    // Warden's own client config, plus the reference server over stdio.
    let console_state = tempfile::tempdir().unwrap();
    let config = console_state.path().join("both.toml");
    let mut text = std::fs::read_to_string(serve_state.path().join("client.toml")).unwrap();
    text.push_str(&format!(
        "\n[[servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\n",
        index.display().to_string()
    ));
    std::fs::write(&config, text).unwrap();

    let tmux = Tmux { socket: format!("warden-servers-e2e-{}", std::process::id()) };
    let command = format!(
        "OPENAI_API_KEY=sk-e2e-test {} --state-dir {} console --config {} --model openai/gpt-e2e --lm-base-url {model}; echo WARDEN_EXIT=$?; sleep 30",
        env!("CARGO_BIN_EXE_warden"),
        console_state.path().display(),
        config.display(),
    );
    let out = tmux.cmd(&["new-session", "-d", "-s", "w", "-x", "160", "-y", "45", &command]);
    assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
    let s = tmux.wait_for("● 2 servers", Duration::from_secs(60));
    assert!(s.contains("Token & scopes · server 1 of 2"), "{s}");
    assert!(s.contains("● customer-service  ● everything"), "{s}");
    assert!(s.contains("✓ verified"), "the first server's token: {s}");

    // One request; the model calls a tool on each server.
    tmux.keys(&["Echo hello from the operator, then look up ABC123.", "Enter"]);
    let s = tmux.wait_for("✓ ok — 3 steps", Duration::from_secs(60));
    assert!(s.contains("echo {\"message\": \"hello from the operator\"}"), "{s}");
    assert!(s.contains("get_customer_info {\"customer_id\": \"ABC123\"}"), "{s}");
    assert!(s.contains("The reference server echoed your message, and ABC123 is on file."), "{s}");

    // The token pane's second server: no auth, a local process, its tools.
    // Esc and `l` as separate keystrokes (together a terminal reads them as Alt-l).
    tmux.keys(&["Escape"]);
    tmux.wait_for("Request — i or Enter to type", Duration::from_secs(5));
    tmux.keys(&["l"]);
    let s = tmux.wait_for("Token & scopes · server 2 of 2", Duration::from_secs(5));
    assert!(s.contains("○ no auth: a local process (stdio)"), "{s}");
    assert!(s.contains("· echo"), "{s}");

    // The process dies: shown down, with the key that restarts it. The console's own child
    // (other tests may run the same server at the same time).
    let console = console_pid(&tmux);
    let first = children(&console);
    assert_eq!(first.len(), 1, "the reference server runs as the console's child: {first:?}");
    Command::new("kill").args(["-9", &first[0]]).status().unwrap();
    let s = tmux.wait_for("✖ everything down (1 up)", Duration::from_secs(15));
    assert!(s.contains("✖ down: its process exited"), "{s}");
    assert!(s.contains("R restart · L its stderr"), "{s}");

    tmux.keys(&["R"]);
    let s = tmux.wait_for("● 2 servers", Duration::from_secs(30));
    assert!(!s.contains("✖ down"), "{s}");
    // Its stderr: the first process's banner (written before the console listened) and
    // the restarted one's.
    tmux.keys(&["L"]);
    let s = tmux.wait_for("Server stderr", Duration::from_secs(5));
    assert!(s.contains("everything  2 lines"), "{s}");
    assert_eq!(s.matches("Starting default (STDIO) server...").count(), 2, "{s}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("Feed (", Duration::from_secs(5));
    // The same request works on the new process.
    tmux.keys(&["r"]);
    let s = tmux
        .wait_until("the second run's result", Duration::from_secs(60), |s| s.matches("✓ ok — 3 steps").count() == 2);
    assert_eq!(s.matches("0 observe Echo: hello from the operator").count(), 2, "{s}");

    let second = children(&console);
    assert!(second.len() == 1 && second != first, "a new process: {first:?} then {second:?}");
    tmux.keys(&["q"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
    let state = std::fs::read_to_string(format!("/proc/{}/stat", second[0])).unwrap_or_default();
    let running = state.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim().starts_with('Z'));
    assert!(!running, "the reference server was stopped with the console");
}

/// The pid of the console: the child of the shell in tmux's pane.
fn console_pid(tmux: &Tmux) -> String {
    let shell =
        String::from_utf8_lossy(&tmux.cmd(&["display", "-p", "-t", "w", "#{pane_pid}"]).stdout).trim().to_string();
    let out = Command::new("pgrep").args(["-P", &shell, "warden"]).output().unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!pid.is_empty() && !pid.contains('\n'), "one console under the shell {shell}: {pid:?}");
    pid
}

/// The `node` processes `pid` started.
fn children(pid: &str) -> Vec<String> {
    let out = Command::new("pgrep").args(["-P", pid, "node"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}
