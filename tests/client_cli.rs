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

    // Output into a pipe nobody reads (`warden tools | head -0`): no panic, the command
    // finishes and exits as usual.
    let closed = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(state.join("client-state"))
        .args(["tools", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut closed = closed;
    drop(closed.stdout.take());
    let out = closed.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = warden(state, &config, &["token", "--json", "--scopes", "customer:read"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["granted"], serde_json::json!(["customer:read"]));
    assert!(v["seconds_to_expiry"].as_i64().unwrap() > 800);
    all += &text(&out);

    let out = warden(state, &config, &["tools", "--scopes", "customer:read"]);
    let t = text(&out);
    assert!(t.contains("✗ denied   create_support_ticket      needs ticket:create  missing ticket:create"), "{t}");
    assert!(
        t.contains(
            "✓ allowed  get_customer_info          needs customer:read\n      ro      read-only, closed world\n"
        ),
        "{t}"
    );
    // A ticket adds and never overwrites: no marker, and no confirmation asked.
    assert!(
        t.contains(
            "needs ticket:create  missing ticket:create\n              not destructive, not idempotent, closed world\n"
        ),
        "{t}"
    );
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

/// `warden serve` with `args`, in `state`, returning the child once it printed its banner.
/// A `warden serve` child that is stopped when dropped: a failing assertion must not
/// leave it running after the test.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_in(state: &Path, args: &[&str]) -> (Serving, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let serving = Serving(child);
    assert!(line.starts_with("warden serve:"), "{line}");
    (serving, line)
}

/// The client binary with no CA from the environment (so messages do not depend on the
/// machine's SSL_CERT_FILE) unless the test sets one.
fn client(state: &Path, config: &Path, args: &[&str], ssl_cert_file: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("--config").arg(config).arg("--state-dir").arg(state.join("client-state")).args(args);
    match ssl_cert_file {
        Some(f) => cmd.env("SSL_CERT_FILE", f),
        None => cmd.env_remove("SSL_CERT_FILE"),
    };
    cmd.output().unwrap()
}

/// No Rust paths (`rmcp::transport::…`) and no generic syntax (`WorkerTransport<…>`) in
/// what the user reads.
fn assert_plain(what: &str, s: &str) {
    let b = s.as_bytes();
    for i in 1..b.len().saturating_sub(2) {
        let path =
            b[i] == b':' && b[i + 1] == b':' && b[i - 1].is_ascii_alphanumeric() && b[i + 2].is_ascii_alphabetic();
        let generic = b[i] == b'<' && b[i - 1].is_ascii_alphanumeric() && b[i + 1].is_ascii_alphabetic();
        assert!(!path && !generic, "{what}: a Rust type name in {s:?}");
    }
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn unreachable_servers_and_untrusted_certificates_are_explained_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = serve_in(&dir.path().join("a"), &[]);
    let config = dir.path().join("a/client.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let issuer = original.lines().find_map(|l| l.strip_prefix("issuer = \"")).unwrap().trim_end_matches('"');
    let ca = dir.path().join("a/tls/ca.pem");
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut seen = Vec::new();

    // The MCP server is down, the issuer is up.
    let mcp_url = format!("https://127.0.0.1:{}/mcp", dead_port());
    let dead_mcp = original
        .lines()
        .map(|l| if l.starts_with("url = ") { format!("url = \"{mcp_url}\"") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let dead_mcp = write("dead-mcp.toml", dead_mcp);
    for cmd in [&["tools"][..], &["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#]] {
        let out = client(dir.path(), &dead_mcp, cmd, None);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("cannot reach the MCP server {mcp_url} (for customer-service): connection refused; is `warden serve` running?")),
            "{err}"
        );
        seen.push(err);
    }

    // No CA configured: the dev CA's certificate is not trusted.
    let no_ca =
        write("no-ca.toml", original.lines().filter(|l| !l.starts_with("ca_file")).collect::<Vec<_>>().join("\n"));
    let out = client(dir.path(), &no_ca, &["tools"], None);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach the authorization server {issuer} (for customer-service): certificate not trusted"
        )),
        "{err}"
    );
    assert!(err.contains("set `ca_file` in [client]") && err.contains("SSL_CERT_FILE"), "{err}");
    seen.push(err);

    // Trusting another `warden serve`'s CA (same name, different key): the file used is named.
    let (other, _) = serve_in(&dir.path().join("b"), &["--only", "issuer"]);
    let other_ca = dir.path().join("b/tls/ca.pem");
    let wrong_ca = write("wrong-ca.toml", original.replace(&ca.display().to_string(), &other_ca.display().to_string()));
    let out = client(dir.path(), &wrong_ca, &["token"], None);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate not trusted (signed by a different CA"), "{err}");
    assert!(err.contains(&format!("than the one in {} (ca_file)", other_ca.display())), "{err}");
    seen.push(err);
    // The same through SSL_CERT_FILE.
    let out = client(dir.path(), &no_ca, &["token"], Some(&other_ca));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&format!("than the one in {} (SSL_CERT_FILE)", other_ca.display())), "{err}");
    seen.push(err);
    drop(other);

    // Everything stopped.
    drop(server);
    for cmd in [&["token"][..], &["tools"], &["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#]] {
        let out = client(dir.path(), &config, cmd, None);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        assert_eq!(
            err.trim_end(),
            format!(
                "warden: cannot reach the authorization server {issuer} (for customer-service): connection refused; is `warden serve` running? (and is the address in the config right?)"
            ),
            "{cmd:?}"
        );
        seen.push(err);
    }
    for err in &seen {
        assert_plain("client error", err);
    }
}

#[test]
fn os_errors_are_printed_once_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let once = |out: &Output, expect: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expect), "{err}");
        assert_eq!(err.matches("(os error").count(), 1, "the OS error once: {err}");
        assert_plain("error", &err);
    };
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warden")).args(args).env("XDG_STATE_HOME", dir.path()).output().unwrap()
    };
    once(
        &run(&["--config", "/nonexistent/warden.toml", "tools"]),
        "warden: could not read config /nonexistent/warden.toml: No such file or directory (os error 2)",
    );
    // A state dir below a regular file cannot be created.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let below = file.join("state");
    let below = below.to_str().unwrap();
    once(
        &run(&["--state-dir", below, "tools"]),
        &format!("warden: cannot create the state directory {below}: Not a directory (os error 20)"),
    );
    let missing = dir.path().join("no-audit");
    once(
        &run(&["--state-dir", dir.path().to_str().unwrap(), "audit", "verify", missing.to_str().unwrap()]),
        &format!("audit log {}: No such file or directory (os error 2)", missing.display()),
    );
    let config = dir.path().join("bad-ca.toml");
    std::fs::write(
        &config,
        "[client]\nissuer = \"https://127.0.0.1:1\"\nclient_id = \"x\"\nclient_secret = \"y\"\nca_file = \"/nonexistent/ca.pem\"\n\n[[servers]]\nname = \"s\"\nurl = \"https://127.0.0.1:1/mcp\"\n",
    )
    .unwrap();
    once(
        &run(&["--config", config.to_str().unwrap(), "--state-dir", dir.path().to_str().unwrap(), "tools"]),
        "warden: could not read /nonexistent/ca.pem: No such file or directory (os error 2)",
    );

    // ARGS that are not a JSON object: a usage error (exit 2), before anything is contacted.
    let state = dir.path().to_str().unwrap();
    let out = run(&[
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state,
        "call",
        "get_customer_info",
        r#"{"customer_id":"#,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("warden: ARGS is not valid JSON (EOF while parsing a value at line 1 column 15); pass a JSON object, e.g. '{\"customer_id\": \"ABC123\"}'"), "{err}");
    let out = run(&["--config", config.to_str().unwrap(), "--state-dir", state, "call", "get_customer_info", "[1]"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ARGS must be a JSON object"));
}

/// Every error path reachable without a server, in plain words: no Rust paths or generic
/// syntax, starting `warden: `, and the exit code that says what kind of failure.
#[test]
fn error_messages_name_no_rust_types() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[client]\nissuer = \"https://127.0.0.1:1\"\nclient_idd = \"x\"\n").unwrap();
    let http = dir.path().join("http.toml");
    std::fs::write(
        &http,
        "[client]\nissuer = \"http://example.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\n[[servers]]\nname = \"s\"\nurl = \"https://127.0.0.1:1/mcp\"\n",
    )
    .unwrap();
    let nosecret = dir.path().join("nosecret.toml");
    std::fs::write(
        &nosecret,
        "[client]\nissuer = \"https://127.0.0.1:1\"\nclient_id = \"x\"\n\n[[servers]]\nname = \"s\"\nurl = \"https://127.0.0.1:1/mcp\"\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let oauth = dir.path().join("oauth.toml");
    std::fs::write(&oauth, "[[servers]]\nname = \"s\"\nurl = \"https://127.0.0.1:1/mcp\"\nauth = \"oauth\"\n").unwrap();
    let oauth = oauth.to_str().unwrap();
    let (typo, http, nosecret, empty) =
        (typo.to_str().unwrap(), http.to_str().unwrap(), nosecret.to_str().unwrap(), empty.to_str().unwrap());
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--config", typo, "tools"], 1, "client_idd"),
        (&["--config", http, "token"], 1, "plain http is refused"),
        (&["--config", nosecret, "tools"], 1, "no client secret"),
        // No [client] is fine now (servers need not use OAuth); no server is not.
        (&["--config", empty, "tools"], 1, "no MCP servers in the config"),
        (&["--config", oauth, "tools"], 1, "s uses auth = \"oauth\" but the config has no [client] section: add one"),
        (&["tools", "--stdio", "'unclosed"], 2, "--stdio \"'unclosed\": missing closing quote (check the quotes)"),
        (&["call", "--url", "https://127.0.0.1:1/mcp", "--header", "no-colon", "x"], 2, "--header takes 'Name: value'"),
        (
            &["tools", "--url", "https://127.0.0.1:1/mcp", "--header", "X-Key: ${WARDEN_TEST_UNSET_VAR}"],
            2,
            "header X-Key: uses ${WARDEN_TEST_UNSET_VAR}, which is not set",
        ),
        (&["--config", nosecret, "tools", "--scopes", "a\\b"], 2, "--scopes takes space-separated scopes"),
        (&["--config", empty, "call", "x", "nope"], 2, "ARGS is not valid JSON"),
        (&["run", "/nonexistent/scenarios.toml"], 1, "cannot read scenarios /nonexistent/scenarios.toml"),
        (&["replay", "/nonexistent/s.jsonl"], 1, "cannot read session /nonexistent/s.jsonl"),
        (&["audit", "verify", "/nonexistent/audit"], 1, "/nonexistent/audit"),
    ];
    for (args, code, expect) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["--state-dir", state])
            .args(*args)
            .env_remove("SSL_CERT_FILE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.starts_with("warden: ") && err.contains(expect), "{args:?}: {err}");
        assert_plain(&format!("{args:?}"), &err);
    }
}
