//! Two servers side by side in the real console under tmux: Warden's own customer-service
//! server (OAuth, from `warden serve`) and the MCP reference server
//! `@modelcontextprotocol/server-everything` over stdio (no auth), with a model that calls a
//! tool on each. The language model is a local server speaking the OpenAI wire format (the
//! one part out of reach here), scripted to call `echo` on the reference server, then
//! `get_customer_info` on Warden's, then answer.
//!
//! Then the reference server's process is killed: the console shows it down, `R` restarts
//! it, and the same request works again.

#[path = "common/everything.rs"]
mod everything;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is required for this test (apt-get install tmux)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "w"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(start.elapsed() < timeout, "timed out waiting for {what:?}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// `warden serve`, stopped when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One ChatAdapter reply: each field under its `[[ ## name ## ]]` header.
fn reply(fields: &[(&str, &str)]) -> Value {
    let mut text = String::new();
    for (name, value) in fields {
        text.push_str(&format!("[[ ## {name} ## ]]\n{value}\n\n"));
    }
    text.push_str("[[ ## completed ## ]]");
    json!({
        "id": "chatcmpl-e2e", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
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
        return Json(reply(&[("reasoning", "Both tools answered."), ("response", response)]));
    }
    let observations = last.matches("[[ ## observation_").count();
    Json(match observations {
        0 => reply(&[
            ("next_thought", "Echo the operator's words on the reference server."),
            ("next_tool_name", "echo"),
            ("next_tool_args", r#"{"message": "hello from the operator"}"#),
        ]),
        1 => reply(&[
            ("next_thought", "Now look up the customer on the customer-service server."),
            ("next_tool_name", "get_customer_info"),
            ("next_tool_args", r#"{"customer_id": "ABC123"}"#),
        ]),
        _ => reply(&[("next_thought", "I have both answers."), ("next_tool_name", "finish"), ("next_tool_args", "{}")]),
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

    // The process dies: shown down, with the key that restarts it.
    let pids = Command::new("pgrep").args(["-f", &format!("{} stdio", index.display())]).output().unwrap();
    let pids = String::from_utf8_lossy(&pids.stdout).trim().to_string();
    assert!(!pids.is_empty(), "the reference server runs as a child of the console");
    for pid in pids.lines() {
        Command::new("kill").args(["-9", pid]).status().unwrap();
    }
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
    let start = Instant::now();
    let s = loop {
        let s = tmux.screen();
        if s.matches("✓ ok — 3 steps").count() == 2 {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the second run did not finish; screen:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(s.matches("0 observe Echo: hello from the operator").count(), 2, "{s}");

    tmux.keys(&["q"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
    let left = Command::new("pgrep").args(["-f", &format!("{} stdio", index.display())]).output().unwrap();
    assert!(left.stdout.is_empty(), "the reference server was stopped with the console");
}
