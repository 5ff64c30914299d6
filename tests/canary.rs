//! Secrets canary (issue 11): the real `warden` binary through every command that handles a
//! client secret or a token, with a unique canary secret registered (as its hash) for the
//! support agent. Afterwards every file under the state directories (logs, audit segments,
//! the database and its WAL, pins, session recordings — an export is a byte copy of one)
//! and everything the commands printed is scanned: neither the secret (raw, base64, or
//! inside a Basic credential), a second "wrong" secret that was tried and refused, nor any
//! access token may appear. Tokens are caught two ways: the exact tokens this test obtained
//! from the issuer with the canary credentials, and anything shaped like a JWT
//! (`eyJ….eyJ….sig`), which catches the tokens the commands obtained themselves.
//!
//! Only the config files the test writes outside the state dir hold the secret (that is
//! where an operator puts it). The demo's state dir holds `client.toml` with the
//! published demo secret by design (serve writes it, 0600); that one file is exempt from
//! the demo-secret check only.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

fn warden() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
    // Nothing from the developer's environment: no config, no proxy, no log filter.
    c.env_remove("WARDEN_CONFIG").env_remove("RUST_LOG").env("NO_COLOR", "1");
    c
}

/// A pipe being read to its end on a thread.
type Drained = std::thread::JoinHandle<Vec<u8>>;

/// A `warden serve` child, stopped (SIGTERM, then waited for) even if the test fails.
struct Server {
    child: std::process::Child,
    /// Its stdout and stderr, drained as they come so a chatty server never blocks on a
    /// full pipe.
    output: Option<(Drained, Drained)>,
}

impl Server {
    fn stop(mut self) -> (Vec<u8>, Vec<u8>) {
        terminate(&self.child);
        let _ = self.child.wait();
        let (out, err) = self.output.take().unwrap();
        (out.join().unwrap_or_default(), err.join().unwrap_or_default())
    }
}

fn drain(mut r: impl Read + Send + 'static, mut into: Vec<u8>) -> Drained {
    std::thread::spawn(move || {
        let _ = r.read_to_end(&mut into);
        into
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&self.child);
            let _ = self.child.wait();
        }
    }
}

fn terminate(child: &std::process::Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

/// Everything that must never be written anywhere.
struct Needles(Vec<(String, Vec<u8>)>);

impl Needles {
    fn add(&mut self, what: impl Into<String>, value: impl AsRef<[u8]>) {
        self.0.push((what.into(), value.as_ref().to_vec()));
    }

    /// A secret in the forms it travels in: raw, base64 and inside a Basic credential.
    fn add_secret(&mut self, what: &str, client_id: &str, secret: &str) {
        self.add(what, secret);
        self.add(format!("{what} (base64)"), STANDARD.encode(secret));
        self.add(format!("{what} (base64url)"), URL_SAFE_NO_PAD.encode(secret));
        self.add(format!("{what} (Basic credential)"), STANDARD.encode(format!("{client_id}:{secret}")));
    }

    /// What in `haystack` is a needle or looks like a JWT.
    fn find(&self, haystack: &[u8]) -> Vec<String> {
        let mut found: Vec<String> = self
            .0
            .iter()
            .filter(|(_, n)| haystack.windows(n.len()).any(|w| w == n.as_slice()))
            .map(|(what, _)| what.clone())
            .collect();
        found.extend(jwt_shapes(haystack).into_iter().map(|j| format!("a JWT ({j:.40}…)")));
        found
    }
}

/// Substrings shaped like a compact JWS with JSON header and payload: `eyJ[..].eyJ[..].[..]`.
fn jwt_shapes(h: &[u8]) -> Vec<String> {
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let run = |mut i: usize| {
        while i < h.len() && b64(h[i]) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = h[i..].windows(3).position(|w| w == b"eyJ") {
        let start = i + off;
        let end1 = run(start);
        let ok = h.get(end1) == Some(&b'.') && h[end1 + 1..].starts_with(b"eyJ");
        if ok {
            let end2 = run(end1 + 1);
            if h.get(end2) == Some(&b'.') {
                let end3 = run(end2 + 1);
                if end3 > end2 + 1 {
                    out.push(String::from_utf8_lossy(&h[start..end3]).into_owned());
                    i = end3;
                    continue;
                }
            }
        }
        i = start + 3;
    }
    out
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// A command's outcome, kept for the scan (and shown when it should have succeeded).
struct Ran {
    label: String,
    output: Output,
}

fn run(label: &str, cmd: &mut Command) -> Ran {
    let output = cmd.stdin(Stdio::null()).output().unwrap();
    Ran { label: label.to_string(), output }
}

fn expect_ok(r: &Ran) {
    assert!(
        r.output.status.success(),
        "{} failed ({:?})\nstdout: {}\nstderr: {}",
        r.label,
        r.output.status,
        String::from_utf8_lossy(&r.output.stdout),
        String::from_utf8_lossy(&r.output.stderr)
    );
}

#[test]
fn no_secret_and_no_token_is_written_or_printed_anywhere() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let conf = root.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let wrong = format!("wrong-canary-{}", uuid::Uuid::new_v4().simple());
    let mut needles = Needles(Vec::new());
    needles.add_secret("the canary secret", "support-agent", &canary);
    needles.add_secret("the refused secret", "support-agent", &wrong);
    let mut ran: Vec<Ran> = Vec::new();

    // `warden hash-secret`: the secret on stdin, its hash on stdout.
    let mut child = warden()
        .arg("--state-dir")
        .arg(&state)
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(canary.as_bytes()).unwrap();
    let hashed = Ran { label: "hash-secret".into(), output: child.wait_with_output().unwrap() };
    expect_ok(&hashed);
    let hash = String::from_utf8(hashed.output.stdout.clone()).unwrap().trim().to_string();
    assert!(hash.starts_with("pbkdf2-sha256$"), "{hash}");
    ran.push(hashed);

    // The servers, with the support agent registered by the canary's hash only.
    let default = warden::config::DEFAULT_CONFIG;
    let at = default.find("secret_hash = \"").unwrap();
    let end = at + default[at..].find('\n').unwrap();
    let server_config = conf.join("server.toml");
    std::fs::write(&server_config, format!("{}secret_hash = \"{hash}\"{}", &default[..at], &default[end..])).unwrap();
    let mut child = warden()
        .arg("--config")
        .arg(&server_config)
        .arg("--state-dir")
        .arg(&state)
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--log-stderr"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    out.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("warden serve: issuer https://127.0.0.1:"), "{banner}");
    let err = child.stderr.take().unwrap();
    let server = Server { output: Some((drain(out, banner.into_bytes()), drain(err, Vec::new()))), child };
    let (issuer, mcp) = {
        let text = std::fs::read_to_string(state.join("client.toml")).unwrap();
        let parsed = warden::config::Config::parse(&text, Path::new("client.toml")).unwrap();
        let client = parsed.client.unwrap();
        assert!(client.client_secret.is_none(), "serve cannot know the canary, so client.toml has no secret");
        (client.issuer.expect("client.toml pins the issuer"), parsed.servers[0].url.clone())
    };

    // Client configs as an operator writes them, outside the state dir: the secret inline
    // (client_secret_basic), from the environment (client_secret_post), and a wrong one.
    let base: toml::Table = std::fs::read_to_string(state.join("client.toml")).unwrap().parse().unwrap();
    let client_config = |name: &str, edit: &dyn Fn(&mut toml::Table)| {
        let mut t = base.clone();
        edit(t.get_mut("client").unwrap().as_table_mut().unwrap());
        let path = conf.join(name);
        std::fs::write(&path, toml::to_string(&t).unwrap()).unwrap();
        path
    };
    let inline = client_config("client.toml", &|c| {
        c.insert("client_secret".into(), canary.clone().into());
    });
    let from_env = client_config("client-env.toml", &|c| {
        c.insert("client_secret_env".into(), "WARDEN_CANARY_SECRET".into());
        c.insert("auth_method".into(), "post".into());
    });
    let refused = client_config("client-wrong.toml", &|c| {
        c.insert("client_secret".into(), wrong.clone().into());
    });

    // Tokens straight from the issuer with the canary credentials, both ways.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tokens: Vec<String> = rt.block_on(async {
        warden::install_crypto_provider();
        let tls = warden::security::tls::ClientTls { ca_file: Some(state.join("tls/ca.pem")), ca_only: true };
        let http = warden::security::tls::http_client(&tls, Duration::from_secs(10)).unwrap();
        let mut tokens = Vec::new();
        for post in [false, true] {
            let mut form = vec![("grant_type", "client_credentials"), ("resource", mcp.as_str())];
            let mut req = http.post(format!("{issuer}/token"));
            if post {
                form.extend([("client_id", "support-agent"), ("client_secret", canary.as_str())]);
            } else {
                req = req.basic_auth("support-agent", Some(&canary));
            }
            let resp = req.form(&form).send().await.unwrap();
            assert_eq!(resp.status(), 200, "the issuer accepts the canary (post: {post})");
            let body: serde_json::Value = resp.json().await.unwrap();
            tokens.push(body["access_token"].as_str().unwrap().to_string());
        }
        tokens
    });
    assert_eq!(jwt_shapes(tokens[0].as_bytes()).len(), 1, "the JWT scan recognises an issued token");
    for (i, t) in tokens.iter().enumerate() {
        needles.add(format!("issued token {i}"), t);
        needles.add(format!("issued token {i}'s signature"), t.rsplit('.').next().unwrap());
    }

    // Every client command that obtains a token or calls a tool, human and --json output.
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scenarios.toml");
    let ticket = r#"{"customer_id": "ABC123", "subject": "Canary", "description": "canary run", "priority": "low"}"#;
    let lookup = r#"{"customer_id": "ABC123"}"#;
    let client = |config: &Path| {
        let mut c = warden();
        c.arg("--config").arg(config).arg("--state-dir").arg(&state);
        c
    };
    let must_succeed: Vec<(&str, Vec<&str>)> = vec![
        ("token", vec!["token"]),
        ("token --json", vec!["token", "--json"]),
        ("tools --json", vec!["tools", "--json"]),
        ("tools --approve", vec!["tools", "--approve"]),
        ("call get_customer_info", vec!["call", "get_customer_info", lookup]),
        ("call get_customer_info --json", vec!["call", "get_customer_info", lookup, "--json"]),
        ("call create_support_ticket", vec!["call", "create_support_ticket", ticket]),
        (
            "call calculate_account_value --json",
            vec!["call", "calculate_account_value", r#"{"customer_id": "ABC123", "amounts": [1, 2]}"#, "--json"],
        ),
        ("run scenarios", vec!["run", scenarios.to_str().unwrap()]),
        ("run scenarios --json", vec!["run", scenarios.to_str().unwrap(), "--json"]),
    ];
    for (label, args) in must_succeed {
        let r = run(label, client(&inline).args(&args));
        expect_ok(&r);
        ran.push(r);
    }
    // Denials and failures (the server's 403, a refused secret) are where secrets tend to
    // slip into error text.
    let denied = run(
        "call --no-precheck (server 403)",
        client(&inline).args(["--scopes", "customer:read", "call", "create_support_ticket", ticket, "--no-precheck"]),
    );
    assert!(!denied.output.status.success(), "a read-only grant cannot open a ticket");
    ran.push(denied);
    let r = run(
        "token (secret from env, client_secret_post)",
        client(&from_env).env("WARDEN_CANARY_SECRET", &canary).args(["token", "--json"]),
    );
    expect_ok(&r);
    ran.push(r);
    let r = run("token with a wrong secret", client(&refused).args(["token"]));
    assert!(!r.output.status.success(), "a wrong secret is refused");
    assert!(String::from_utf8_lossy(&r.output.stderr).contains("invalid_client"), "{:?}", r.output);
    ran.push(r);

    // A recorded session (what the console records, and `e` exports byte for byte).
    rt.block_on(async {
        let text = std::fs::read_to_string(&inline).unwrap();
        let config = warden::config::Config::parse(&text, &inline).unwrap();
        let scenarios = warden::session::scenario::load(&scenarios).unwrap();
        let opts = warden::session::SessionOptions {
            model: Some("offline".into()),
            scenarios: scenarios.clone(),
            ..Default::default()
        };
        let events = warden::types::event::EventBus::new();
        let session = warden::session::Session::open_on(&config, &state, opts, events).await.expect("session opens");
        let path = warden::observe::recorder::session_path(&state);
        let recorder =
            warden::observe::recorder::spawn_recorder(path.clone(), session.events().subscribe(1 << 16)).unwrap();
        let mut rx = session.events().subscribe(1 << 16);
        session.announce_tokens();
        let core = session.start(tokio_util::sync::CancellationToken::new());
        for i in 0..scenarios.len() {
            assert!(core.send(warden::session::command::Command::RunScenario(i)).await);
            warden::session::report::next_run(&mut rx).await.expect("the run finishes");
        }
        core.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), recorder).await;
        let recorded = std::fs::read_to_string(&path).unwrap();
        assert!(recorded.lines().count() > 10, "the session was recorded");
        assert!(recorded.contains("TokenIssued") || recorded.contains("token_issued"), "tokens were part of it");
    });

    // The audit trail through the CLI (these read what the commands above wrote).
    for (label, args) in [
        ("audit verify", vec!["audit", "verify"]),
        ("audit tail --json", vec!["audit", "tail", "--json", "-n", "100000"]),
        ("audit tail --server --json", vec!["audit", "tail", "--server", "--json", "-n", "100000"]),
        ("audit tail", vec!["audit", "tail", "-n", "100000"]),
    ] {
        let r = run(label, warden().arg("--state-dir").arg(&state).args(&args));
        expect_ok(&r);
        ran.push(r);
    }
    let (out, err) = server.stop();
    ran.push(Ran {
        label: "serve".into(),
        output: Output { status: std::process::ExitStatus::default(), stdout: out, stderr: err },
    });

    // The demo with its built-in secret, headless and --json, in its own state dir.
    let demo_state = root.path().join("demo-state");
    let demo_secret = warden::config::demo_secret("support-agent").unwrap();
    for (label, json) in [("demo --headless", false), ("demo --headless --json", true)] {
        let mut cmd = warden();
        cmd.arg("--state-dir").arg(&demo_state).args(["demo", "--headless"]);
        if json {
            cmd.arg("--json");
        }
        let r = run(label, &mut cmd);
        expect_ok(&r);
        ran.push(r);
    }

    // The scan.
    let mut leaks = Vec::new();
    let mut scanned = Vec::new();
    for file in files(&state) {
        let bytes = std::fs::read(&file).unwrap();
        for what in needles.find(&bytes) {
            leaks.push(format!("{}: {what}", file.display()));
        }
        scanned.push(file);
    }
    let mut demo_needles = Needles(Vec::new());
    demo_needles.add_secret("the demo secret", "support-agent", &demo_secret);
    for file in files(&demo_state) {
        let bytes = std::fs::read(&file).unwrap();
        let mut found = needles.find(&bytes);
        if file != demo_state.join("client.toml") {
            found.extend(demo_needles.find(&bytes).into_iter().filter(|w| !w.starts_with("a JWT")));
        }
        leaks.extend(found.into_iter().map(|what| format!("{}: {what}", file.display())));
        scanned.push(file);
    }
    for r in &ran {
        for (stream, bytes) in [("stdout", &r.output.stdout), ("stderr", &r.output.stderr)] {
            let mut found = needles.find(bytes);
            found.extend(demo_needles.find(bytes).into_iter().filter(|w| !w.starts_with("a JWT")));
            leaks.extend(found.into_iter().map(|what| format!("`warden {}` {stream}: {what}", r.label)));
        }
    }
    // The scan covered what it is meant to: logs, both audit trails, the database, the
    // recording, the pins — in both state dirs.
    for (dir, expected) in [
        (&state, &["logs/", "audit/", "service.db", "sessions/", "manifests.json", "issuer/"][..]),
        (&demo_state, &["logs/", "audit/", "service.db"][..]),
    ] {
        for e in expected {
            assert!(
                scanned.iter().any(|f| f.strip_prefix(dir).is_ok_and(|r| r.to_string_lossy().starts_with(e))),
                "{e} in {}",
                dir.display()
            );
        }
    }
    if std::env::var_os("WARDEN_CANARY_LIST").is_some() {
        for f in &scanned {
            println!("scanned {} ({} bytes)", f.display(), std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
        }
        for r in &ran {
            println!("ran warden {} ({} + {} bytes of output)", r.label, r.output.stdout.len(), r.output.stderr.len());
        }
    }
    assert!(leaks.is_empty(), "secrets or tokens leaked:\n{}", leaks.join("\n"));
}
