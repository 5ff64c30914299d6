//! `warden token|tools|call` as a user runs them against a running `warden serve`: output,
//! exit codes, and a canary check that neither the client secret nor any token appears in
//! stdout, stderr or the log file, even at trace level.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const SECRET: &str = "demo-support-agent-secret-4f9c2e";

struct Server {
    child: Child,
    state: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .env("WARDEN_LOG", "trace")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("warden serve:"), "{line}");
    Server { child, state }
}

fn warden(state: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state.join("client-state"))
        .args(args)
        .env("WARDEN_LOG", "trace")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A JWT always starts with a base64url `{"` header: `eyJ`.
fn assert_no_secrets(what: &str, s: &str) {
    assert!(!s.contains(SECRET), "client secret leaked in {what}");
    assert!(
        !s.contains("eyJ"),
        "a JWT leaked in {what}: {}",
        &s[s.find("eyJ").unwrap().saturating_sub(80)..][..160.min(s.len())]
    );
}

#[test]
fn client_commands_print_results_and_exit_codes_without_leaking_secrets() {
    let server = serve();
    let state = server.state.path();
    let config = state.join("client.toml");
    let mut all = String::new();

    let out = warden(state, &config, &["token"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("token for support-agent")
            && t.contains("verified     ✓ RS256")
            && t.contains("fingerprint  sha256:"),
        "{t}"
    );
    all += &t;

    let out = warden(state, &config, &["token", "--json", "--scopes", "customer:read"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["granted"], serde_json::json!(["customer:read"]));
    assert!(v["seconds_to_expiry"].as_i64().unwrap() > 800);
    all += &text(&out);

    let out = warden(state, &config, &["tools", "--scopes", "customer:read"]);
    let t = text(&out);
    assert!(t.contains("✗ denied   create_support_ticket      needs ticket:create  missing ticket:create"), "{t}");
    assert!(t.contains("✓ allowed  get_customer_info          needs customer:read"), "{t}");
    all += &t;

    let out = warden(state, &config, &["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("\"name\": \"Sarah Johnson\""));
    all += &text(&out);

    let ticket = r#"{"customer_id":"ABC123","subject":"Grill","description":"defective","priority":"high"}"#;
    let out = warden(state, &config, &["call", "create_support_ticket", ticket, "--scopes", "customer:read"]);
    assert_eq!(out.status.code(), Some(3), "denied locally");
    assert!(text(&out).contains("DENIED create_support_ticket: missing ticket:create"));
    all += &text(&out);

    let out = warden(
        state,
        &config,
        &["call", "create_support_ticket", ticket, "--scopes", "customer:read", "--no-precheck", "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "denied by the server");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["report"]["outcome"].as_str(), v["report"]["side"].as_str()), (Some("denied"), Some("server")));
    all += &text(&out);

    let out = warden(state, &config, &["call", "get_customer_info", r#"{"customer_id":"QQQ111"}"#]);
    assert_eq!(out.status.code(), Some(6), "tool error");
    all += &text(&out);

    let bad = state.join("bad-client.toml");
    std::fs::write(&bad, std::fs::read_to_string(&config).unwrap().replace(SECRET, "wrong-secret")).unwrap();
    let out = warden(state, &bad, &["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#]);
    assert_eq!(out.status.code(), Some(4), "auth failure: {}", text(&out));
    assert!(text(&out).contains("invalid_client") && text(&out).contains("check client_id and client_secret"));
    all += &text(&out);

    assert_no_secrets("command output", &all);
    let client_log = std::fs::read_to_string(state.join("client-state/logs/warden.log")).unwrap();
    assert!(client_log.len() > 1000, "trace logging was on");
    assert_no_secrets("the client log", &client_log);
    let server_log = std::fs::read_to_string(state.join("logs/warden.log")).unwrap();
    assert_no_secrets("the server log", &server_log);
}
