//! Soak: many concurrent Warden client sessions create tickets with idempotency keys while
//! the real `warden serve` process is killed and restarted on the same state dir and ports.
//! A session whose call fails for want of a server retries with the same key. Afterwards:
//! every acknowledged ticket exists exactly once in `service.db`, no ticket exists that no
//! session asked for, every key asked for was acknowledged, no 5xx was ever seen, and both
//! audit trails (the sessions' and the servers') verify with `warden audit verify`.
//!
//! The short version runs in the suite (a few seconds, two restarts). The long one:
//! `SOAK_SECS=600 SOAK_SESSIONS=32 cargo test --release --test soak -- --ignored`
//! (restarts every `SOAK_RESTART_SECS`, default 5).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use warden::config::{Config, RateLimitConfig};
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::CallPolicy;
use warden::types::event::{CallOutcome, EventBus, EventKind, FailureClass, RetryReason, Scope};

/// `warden serve` on the soak's state dir: first on port 0, then on the ports it got.
struct Server {
    state: PathBuf,
    config: PathBuf,
    addrs: Option<(String, String)>,
    child: Option<Child>,
}

impl Server {
    fn new(state: &Path) -> Self {
        let mut c = Config::parse(warden::config::DEFAULT_CONFIG, Path::new("builtin")).unwrap();
        // The limiter is not under test: every session is the same client id.
        c.service.rate_limit = RateLimitConfig { per_second: 1e9, burst: u32::MAX };
        let config = state.join("soak-serve.toml");
        std::fs::write(&config, toml::to_string(&c).unwrap()).unwrap();
        Server { state: state.to_path_buf(), config, addrs: None, child: None }
    }

    fn start(&mut self) {
        let (issuer, mcp) = self.addrs.clone().unwrap_or(("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state)
            .args(["serve", "--issuer-addr", &issuer, "--mcp-addr", &mcp])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(line.starts_with("warden serve: issuer https://"), "serve did not start: {line:?}");
        let host = |u: &str| u.trim_start_matches("https://").split('/').next().unwrap().to_string();
        let got = (host(words[3]), host(words[5]));
        if let Some(expected) = &self.addrs {
            assert_eq!(&got, expected, "restarted on the same ports");
        }
        self.addrs = Some(got);
        self.child = Some(child);
    }

    /// SIGKILL (a crash) or SIGTERM (a graceful stop), then wait for the process to end.
    fn stop(&mut self, crash: bool) {
        let Some(mut child) = self.child.take() else { return };
        if crash {
            child.kill().unwrap();
        } else {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        }
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the sessions saw.
#[derive(Default)]
struct Ledger {
    /// Every key a session asked for.
    asked: BTreeSet<String>,
    /// Key → ticket id the server acknowledged (every acknowledgement of a key must agree).
    acked: BTreeMap<String, String>,
    /// Anything that is neither a success nor a failure for want of a server.
    unexpected: Vec<String>,
    /// Calls that failed for want of a server and were retried with the same key.
    retried: u64,
}

async fn session(
    n: usize,
    config: Config,
    events: EventBus,
    ledger: Arc<Mutex<Ledger>>,
    load_until: Instant,
    give_up: Instant,
) {
    // Connecting needs the server; it may be down right now.
    let stack = loop {
        match ClientStack::connect_pinned(&config, None, CallPolicy::default(), events.clone(), None).await {
            Ok(s) => break s,
            Err(e) if Instant::now() < give_up => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                ledger.lock().unexpected.push(format!("session {n} never connected: {e}"));
                return;
            }
        }
    };
    let tool = stack.tool("create_support_ticket").expect("the service offers create_support_ticket").clone();
    let mut i = 0;
    while Instant::now() < load_until {
        i += 1;
        let key = format!("soak-{n}-{i}");
        let args = json!({"customer_id": "ABC123", "subject": format!("soak {n}/{i}"),
            "description": "created by the soak test", "priority": "low", "idempotency_key": key});
        ledger.lock().asked.insert(key.clone());
        loop {
            let report = tool.call(args.clone(), &Scope::default()).await;
            match &report.outcome {
                CallOutcome::Success { structured, .. } => {
                    let id = structured.as_ref().and_then(|s| s["ticket_id"].as_str()).unwrap_or("").to_string();
                    let mut l = ledger.lock();
                    if let Some(before) = l.acked.insert(key.clone(), id.clone())
                        && before != id
                    {
                        l.unexpected.push(format!("{key} acknowledged as {before} and as {id}"));
                    }
                    break;
                }
                // The server is down or restarting (or went away with the call in flight: the
                // client reports that as outcome unknown and never replays it by itself): the
                // caller repeats it deliberately, with the same key.
                CallOutcome::Failed {
                    class: FailureClass::Connection | FailureClass::Timeout | FailureClass::OutcomeUnknown,
                    ..
                } if Instant::now() < give_up => {
                    ledger.lock().retried += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => {
                    ledger.lock().unexpected.push(format!("{key}: {}", serde_json::to_string(other).unwrap()));
                    break;
                }
            }
        }
    }
    drop(tool);
    stack.close().await;
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn audit_verifies(state: &Path) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_warden")).arg("--state-dir").arg(state).args(["audit", "verify"]).output();
    let out = out.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "audit verify failed for {}:\n{text}{}",
        state.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn soak(secs: u64, sessions: usize, restart_every: Duration) {
    warden::install_crypto_provider();
    let server_state = tempfile::tempdir().unwrap();
    let client_state = tempfile::tempdir().unwrap();
    let mut server = Server::new(server_state.path());
    server.start();
    let client_toml = server_state.path().join("client.toml");
    let config = Config::parse(&std::fs::read_to_string(&client_toml).unwrap(), &client_toml).unwrap();

    // The sessions' own audit trail, as `warden call` and the console keep it.
    let events = EventBus::new();
    let _audit = warden::session::audit::attach(&events, client_state.path(), &config).unwrap();
    // Watch every event for a 5xx (the client retries those silently for keyed calls).
    // Count the client's own retries after a lost connection too: they show the restarts hit
    // calls in flight.
    let five_xx = Arc::new(AtomicU64::new(0));
    let transient = Arc::new(AtomicU64::new(0));
    let mut rx = events.subscribe(1 << 16);
    let (seen, retries) = (five_xx.clone(), transient.clone());
    let watcher = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let EventKind::ToolRetry { reason: RetryReason::Transient, .. } = e.kind {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            let text = serde_json::to_string(&e).unwrap_or_default();
            if let Some(i) = text.find("HTTP 5") {
                let code = &text[i + 5..(i + 8).min(text.len())];
                if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let load_until = Instant::now() + Duration::from_secs(secs);
    let give_up = load_until + Duration::from_secs(30);
    let tasks: Vec<_> = (0..sessions)
        .map(|n| tokio::spawn(session(n, config.clone(), events.clone(), ledger.clone(), load_until, give_up)))
        .collect();
    let mut restarts = 0;
    while Instant::now() + restart_every < load_until {
        tokio::time::sleep(restart_every).await;
        // Alternate crashes and graceful stops.
        let crash = restarts % 2 == 0;
        server.stop(crash);
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.start();
        restarts += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.stop(false);
    drop(events);
    watcher.abort();

    let ledger = ledger.lock();
    assert!(restarts >= 2, "the service was restarted during the load ({restarts})");
    assert!(ledger.unexpected.is_empty(), "unexpected outcomes: {:#?}", ledger.unexpected);
    let client_retries = transient.load(Ordering::Relaxed);
    assert!(
        ledger.retried + client_retries > 0,
        "no call ever met a server that was down: the restarts were not exercised"
    );
    assert_eq!(five_xx.load(Ordering::Relaxed), 0, "a 5xx was seen");
    assert!(ledger.acked.len() >= sessions, "each session had tickets acknowledged: {}", ledger.acked.len());
    let missing: Vec<&String> = ledger.asked.iter().filter(|k| !ledger.acked.contains_key(*k)).collect();
    assert!(missing.is_empty(), "asked for but never acknowledged: {missing:?}");

    let db = rusqlite::Connection::open(server_state.path().join("service.db")).unwrap();
    let mut stmt =
        db.prepare("SELECT idempotency_key, ticket_id FROM tickets WHERE idempotency_key LIKE 'soak-%'").unwrap();
    let rows: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, t) in &rows {
        by_key.entry(k).or_default().push(t);
    }
    for (key, id) in &ledger.acked {
        assert_eq!(
            by_key.get(key.as_str()),
            Some(&vec![id.as_str()]),
            "{key}: acknowledged as {id}, exactly once in the database"
        );
    }
    let invented: Vec<&&str> = by_key.keys().filter(|k| !ledger.asked.contains(**k)).collect();
    assert!(invented.is_empty(), "tickets nobody asked for: {invented:?}");
    assert_eq!(rows.len(), ledger.acked.len(), "one row per acknowledged key");
    let total: i64 = db.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).unwrap();
    let distinct: i64 = db.query_row("SELECT COUNT(DISTINCT ticket_id) FROM tickets", [], |r| r.get(0)).unwrap();
    assert_eq!(total, distinct);

    audit_verifies(server_state.path());
    audit_verifies(client_state.path());
    eprintln!(
        "soak: {} tickets from {sessions} sessions in {secs} s through {restarts} restarts \
         ({client_retries} client retries, {} calls retried by the sessions)",
        ledger.acked.len(),
        ledger.retried
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_survive_restarts_exactly_once() {
    soak(4, 8, Duration::from_millis(1300)).await;
}

/// The long version (see the module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn soak_long() {
    let restart = Duration::from_secs(env_or("SOAK_RESTART_SECS", 5));
    soak(env_or("SOAK_SECS", 300), env_or("SOAK_SESSIONS", 32) as usize, restart).await;
}
