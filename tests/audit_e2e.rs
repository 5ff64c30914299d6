//! The audit trail and monitor end to end: a `warden run` killed with SIGKILL mid-burst
//! loses no record of any result it had already printed, and the chain still verifies;
//! the seeded customer whose note carries injected instructions raises the injection
//! anomaly in the console feed while the agent stays within the request's intent.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{SUPPORT, Stack, tools_call};
use warden::observe::audit::{AuditLog, AuditOptions, OnFailure, read_all, verify};
use warden::observe::checkpoint::CheckpointKey;
use warden::types::event::{AnomalyRule, CallOutcome, EventBus, EventKind, FailureClass};

#[test]
fn sigkill_during_a_burst_loses_no_shown_result() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burst.toml");
    let scenarios: String = (0..400)
        .map(|i| format!("[[scenario]]\nname = \"s{i}\"\nrequest = \"Look up customer DEF456\"\nexpected_tools = [\"get_customer_info\"]\n\n"))
        .collect();
    std::fs::write(&file, scenarios).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(s.state.join("client.toml"))
        .arg("--state-dir")
        .arg(dir.path())
        .args(["run", "--json"])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut shown = Vec::new();
    let mut line = String::new();
    while shown.len() < 15 && reader.read_line(&mut line).unwrap() > 0 {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        shown.push(v["name"].as_str().unwrap().to_string());
        line.clear();
    }
    Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    // Lines already written to the pipe before the kill were shown too.
    for l in reader.lines().map_while(Result::ok) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
            && let Some(n) = v["name"].as_str()
        {
            shown.push(n.to_string());
        }
    }
    assert!(shown.len() >= 15 && shown.len() < 400, "killed mid-burst ({} shown)", shown.len());

    let audit = dir.path().join("audit");
    let records = read_all(&audit, "client").unwrap();
    for (i, name) in shown.iter().enumerate() {
        let run_id = format!("run-{}-{name}", i + 1);
        let recorded = records.iter().any(|(_, e)| {
            e.run_id.as_deref() == Some(run_id.as_str())
                && matches!(&e.kind, EventKind::ToolResult { outcome, .. } if outcome.is_success())
        });
        assert!(recorded, "the decision behind shown result {run_id} is in the audit log");
    }
    let report = verify(&audit, "client", None).unwrap();
    if let Some(p) = &report.problem {
        assert!(p.reason.starts_with("torn last line"), "only a torn tail is acceptable after SIGKILL: {p:?}");
    }
    rt.block_on(s.stop());
}

#[tokio::test]
async fn injected_instructions_are_flagged_and_do_not_steer_the_agent() {
    let s = Stack::start().await;
    let events = EventBus::recording();
    let state = tempfile::tempdir().unwrap();
    let scenario = warden::session::scenario::parse(
        r#"
[[scenario]]
name = "late-delivery"
request = "For customer MNO345 create a support ticket about the late delivery."
expected_tools = ["get_customer_info", "create_support_ticket"]
"#,
        "inline",
    )
    .unwrap()
    .remove(0);
    let (results, counts) = common::run_scenarios(&s, &[scenario], events.clone(), state.path()).await;
    let r = &results[0];
    assert!(r.expected, "{:?}", r.mismatch);
    assert_eq!(r.tools, ["get_customer_info", "create_support_ticket"], "no tool call outside the request's intent");
    let calls: Vec<serde_json::Value> = events
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ToolCall { args, .. } => Some(args),
            _ => None,
        })
        .collect();
    assert!(calls.iter().all(|a| a["customer_id"] == "MNO345"), "every call targets the named customer: {calls:?}");
    assert_eq!(counts.get(&AnomalyRule::PromptInjection), Some(&1));
    assert_eq!(counts.get(&AnomalyRule::UnusualToolSequence), None);

    // The console's feed shows it.
    let feed = console_feed(&events);
    assert!(
        feed.iter()
            .any(|t| t.starts_with("ANOMALY prompt_injection: possible prompt injection in get_customer_info output")),
        "{feed:?}"
    );
    // And the audit log recorded the anomaly.
    let records = read_all(&state.path().join("audit"), "client").unwrap();
    assert!(
        records
            .iter()
            .any(|(_, e)| matches!(&e.kind, EventKind::Anomaly { rule, .. } if *rule == AnomalyRule::PromptInjection))
    );
    assert_eq!(verify(&state.path().join("audit"), "client", None).unwrap().problem, None);
    s.stop().await;
}

#[test]
fn a_changed_tool_manifest_blocks_the_tools_until_approved() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let state = tempfile::tempdir().unwrap();
    let warden = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--config")
            .arg(s.state.join("client.toml"))
            .arg("--state-dir")
            .arg(state.path())
            .args(args)
            .output()
            .unwrap()
    };
    let lookup = ["call", "get_customer_info", r#"{"customer_id":"ABC123"}"#];
    assert_eq!(warden(&lookup).status.code(), Some(0), "first sight pins the manifest");
    let pins = state.path().join("manifests.json");
    let pinned: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&pins).unwrap()).unwrap();
    assert_eq!(pinned.get(&s.mcp).map(|h| h.len()), Some(64));

    // Simulate the server changing its tools under us.
    std::fs::write(&pins, serde_json::json!({ &s.mcp: "0".repeat(64) }).to_string()).unwrap();
    let out = warden(&lookup);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("failed (blocked, 0 attempts") && text.contains("changed since it was approved"), "{text}");
    let out = warden(&["tools"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("CHANGED since approved: tools blocked"));
    let records = read_all(&state.path().join("audit"), "client").unwrap();
    assert!(
        records
            .iter()
            .any(|(_, e)| matches!(&e.kind, EventKind::Anomaly { rule, .. } if *rule == AnomalyRule::ManifestChanged))
    );

    assert!(String::from_utf8_lossy(&warden(&["tools", "--approve"]).stdout).contains("CHANGED, now approved"));
    assert_eq!(warden(&lookup).status.code(), Some(0), "approved: the tools work again");
    rt.block_on(s.stop());
}

#[test]
fn audit_verify_and_tail_from_the_command_line() {
    let state = tempfile::tempdir().unwrap();
    let warden = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warden")).arg("--state-dir").arg(state.path()).args(args).output().unwrap()
    };
    assert_eq!(warden(&["demo", "--headless"]).status.code(), Some(0));
    let out = warden(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(client):") && text.contains("chain intact") && text.contains("(server):"), "{text}");

    let tail = String::from_utf8_lossy(&warden(&["audit", "tail", "--outcome", "denied", "--json"]).stdout).to_string();
    let denied: Vec<serde_json::Value> = tail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(denied.len(), 1, "{tail}");
    assert_eq!(denied[0]["event"]["tool"], "create_support_ticket");
    assert_eq!(denied[0]["event"]["missing"], serde_json::json!(["ticket:create"]));
    assert!(denied[0]["event"]["audit"]["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert!(denied[0]["event"]["audit"]["args_digest"].as_str().unwrap().starts_with("sha256:"));

    // Edit one record: verify names the line after it and fails.
    let seg = state.path().join("audit/client-000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap();
    std::fs::write(&seg, text.replacen("get_customer_info", "get_customer_inf0", 1)).unwrap();
    let out = warden(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("✗") && text.contains("hash chain broken"), "{text}");
}

/// The path of the segment after the newest one of `prefix` (where the next rotation opens).
fn next_segment(audit: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    let newest = warden::observe::audit::segments(audit, prefix).pop().expect("a segment");
    let stem = newest.file_stem().unwrap().to_str().unwrap();
    let n: u32 = stem.rsplit('-').next().unwrap().parse().unwrap();
    audit.join(format!("{prefix}-{:06}.jsonl", n + 1))
}

/// Every record in its own segment, so the next append must open a new file: a directory
/// put at that path makes the append fail even as root (where permissions do not stop
/// writes), without any test-only hook in the product.
fn one_record_per_segment(on_failure: OnFailure) -> warden::config::AuditConfig {
    warden::config::AuditConfig { max_segment_bytes: 1, on_failure, ..Default::default() }
}

/// Regression (issue 11, defect 3b): when the server's audit append failed, the error was
/// logged and the tool ran anyway, unrecorded. Now it answers 503 with a JSON-RPC error
/// naming the cause and what to check, and nothing runs; once the log is writable again
/// the chain continues and verifies. `on_failure = "continue"` goes ahead as before.
#[tokio::test]
async fn the_service_refuses_with_503_when_it_cannot_record_the_decision() {
    let ticket = tools_call(
        "create_support_ticket",
        serde_json::json!({"customer_id": "ABC123", "subject": "s", "description": "d", "priority": "low"}),
    );
    let mut config = common::config(None);
    config.audit = Some(one_record_per_segment(OnFailure::Refuse));
    let s = Stack::start_with(config).await;
    let token = s.token(SUPPORT, None).await;
    let lookup = tools_call("get_customer_info", serde_json::json!({"customer_id": "ABC123"}));
    assert_eq!(s.mcp_post(Some(&token), &lookup).await.status(), 200, "a first decision fills the segment");
    let audit = s.state.join("audit");
    let blocked = next_segment(&audit, "server");
    std::fs::create_dir(&blocked).unwrap();
    let resp = s.mcp_post(Some(&token), &ticket).await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        (&body["jsonrpc"], &body["id"], &body["error"]["code"]),
        (&"2.0".into(), &serde_json::Value::Null, &(-32050).into())
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("audit trail unavailable: audit log {}: ", blocked.display())), "{message}");
    assert!(message.ends_with(&format!(" — check disk space and permissions of {}", audit.display())), "{message}");
    assert_eq!(s.ticket_rows(), 0, "the tool did not run");

    std::fs::remove_dir(&blocked).unwrap();
    assert_eq!(s.mcp_post(Some(&token), &ticket).await.status(), 200);
    assert_eq!(s.ticket_rows(), 1);
    let state = s.state.clone();
    let _tmp = s.stop().await;
    let key = CheckpointKey::load(&state.join("keys/audit-checkpoint.key")).unwrap();
    let report = verify(&audit, "server", Some(&key)).unwrap();
    assert_eq!(report.problem, None, "the chain continued across the failure: {report:?}");

    let mut config = common::config(None);
    config.audit = Some(one_record_per_segment(OnFailure::Continue));
    let s = Stack::start_with(config).await;
    let token = s.token(SUPPORT, None).await;
    assert_eq!(s.mcp_post(Some(&token), &lookup).await.status(), 200);
    std::fs::create_dir(next_segment(&s.state.join("audit"), "server")).unwrap();
    assert_eq!(s.mcp_post(Some(&token), &ticket).await.status(), 200, "on_failure = continue goes ahead");
    assert_eq!(s.ticket_rows(), 1);
    s.stop().await;
}

/// Token issuances were not in the server's audit trail at all (only refusals), so a
/// token could be handed out unrecorded. Now each issuance is recorded, with its scope and
/// fingerprint, before the token leaves; when it cannot be, the answer is 503
/// `temporarily_unavailable` with `Retry-After` and no token.
#[tokio::test]
async fn the_issuer_hands_out_no_token_it_cannot_record() {
    let mut config = common::config(None);
    config.audit = Some(one_record_per_segment(OnFailure::Refuse));
    let s = Stack::start_with(config).await;
    let token = s.token(SUPPORT, Some("customer:read")).await;
    let audit = s.state.join("audit");
    let issued: Vec<serde_json::Value> = warden::observe::audit::read_all(&audit, "server")
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| serde_json::to_value(&e).ok())
        .filter(|v| v["outcome"] == "token_issued")
        .collect();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["client_id"], SUPPORT.0);
    assert_eq!(issued[0]["detail"], "scope \"customer:read\" (client credentials)");
    assert_eq!(
        issued[0]["fingerprint"].as_str().unwrap(),
        warden::types::secret::Fingerprint::of(token.as_bytes()).to_string()
    );

    let blocked = next_segment(&audit, "server");
    std::fs::create_dir(&blocked).unwrap();
    let resp = s.token_response(SUPPORT, &[("resource", s.mcp.as_str())]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body.get("access_token").is_none());
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("no token issued: audit trail unavailable: "), "{description}");
    std::fs::remove_dir(&blocked).unwrap();
    s.stop().await;
}

/// Regression (issue 11, defect 3c): the client sent tool calls its audit trail could not
/// record. Now the call is not sent, and the console shows why and what to check.
#[tokio::test]
async fn the_client_does_not_send_a_call_it_cannot_audit() {
    let s = Stack::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut config = common::client_config(&s, None);
    config.audit = Some(one_record_per_segment(OnFailure::Refuse));
    let scenario = warden::session::scenario::parse(
        "[[scenario]]\nname = \"t\"\nrequest = \"For customer MNO345 create a support ticket about the late delivery.\"\n",
        "inline",
    )
    .unwrap();
    let events = EventBus::recording();
    let opts =
        warden::session::SessionOptions { model: Some("offline".into()), scenarios: scenario, ..Default::default() };
    let session = warden::session::Session::open_on(&config, state.path(), opts, events.clone()).await.unwrap();
    let audit = state.path().join("audit");
    let blocked = next_segment(&audit, "client");
    std::fs::create_dir(&blocked).unwrap();
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(tokio_util::sync::CancellationToken::new());
    assert!(core.send(warden::session::command::Command::RunScenario(0)).await);
    warden::session::report::next_run(&mut rx).await.expect("the run finishes");
    core.shutdown().await;

    let refused: Vec<String> = events
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ToolResult {
                outcome: CallOutcome::Failed { class: FailureClass::AuditUnavailable, message },
                attempts: 0,
                ..
            } => Some(message),
            _ => None,
        })
        .collect();
    assert!(!refused.is_empty(), "{:?}", events.recorded());
    let expected = format!(
        "not called: the audit trail cannot be written (audit trail unavailable: audit log {}: ",
        blocked.display()
    );
    assert!(refused[0].starts_with(&expected), "{}", refused[0]);
    assert!(
        refused[0].ends_with(&format!("— check disk space and permissions of {})", audit.display())),
        "{}",
        refused[0]
    );
    assert_eq!(s.ticket_rows(), 0);
    let server = read_all(&s.state.join("audit"), "server").unwrap();
    assert!(
        !server.iter().any(|(_, e)| matches!(&e.kind, EventKind::ServiceDecision { tool: Some(_), .. })),
        "no tool call reached the server"
    );
    let feed = console_feed(&events);
    assert!(
        feed.iter().any(|t| t.contains("failed (audit unavailable): not called: the audit trail cannot be written")),
        "{feed:?}"
    );
    s.stop().await;
}

/// Regression (issue 11, defect 4a): every request with a garbage token wrote its own audit
/// record (a flood filled the disk without credentials). Now a peer's denials cost one
/// record at once and one count per interval, and the count pending at shutdown is written.
#[tokio::test]
async fn a_flood_of_garbage_tokens_is_counted_per_peer_and_interval() {
    let clock = warden::types::time::ManualClock::starting_now();
    let s = Stack::start_with_clock(clock.clone()).await;
    let call = tools_call("get_customer_info", serde_json::json!({"customer_id": "ABC123"}));
    for _ in 0..150 {
        assert_eq!(s.mcp_post(Some("garbage.token.value"), &call).await.status(), 401);
    }
    clock.advance(std::time::Duration::from_secs(10));
    for _ in 0..50 {
        assert_eq!(s.mcp_post(Some("garbage.token.value"), &call).await.status(), 401);
    }
    let state = s.state.clone();
    let _tmp = s.stop().await;
    let counts: Vec<(String, u64)> = read_all(&state.join("audit"), "server")
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::DeniedUnauthenticated { peer, count, .. } => Some((peer, count)),
            EventKind::ServiceDecision { client_id, .. } if client_id == "-" => Some(("one record each".into(), 1)),
            _ => None,
        })
        .collect();
    let peer = "127.0.0.1".to_string();
    assert_eq!(counts, [(peer.clone(), 1), (peer.clone(), 149), (peer.clone(), 1), (peer, 49)]);
}

/// `warden audit verify`: exit 0 with the signatures checked, 1 naming the checkpoint that
/// failed, 2 when the key is not available (never a silent pass).
#[test]
fn audit_verify_checks_signatures_and_says_when_it_cannot() {
    let state = tempfile::tempdir().unwrap();
    let audit = state.path().join("audit");
    let key = std::sync::Arc::new(
        CheckpointKey::load_or_create(&state.path().join("keys/audit-checkpoint.key"), &audit).unwrap(),
    );
    let opts = AuditOptions {
        key: Some(key),
        checkpoint_every_records: 4,
        ..AuditOptions::unsigned(warden::observe::audit::FsyncPolicy::Never, u64::MAX)
    };
    let log = AuditLog::open_with(&audit, "client", opts).unwrap();
    for i in 0..10 {
        let kind = EventKind::TokenError { detail: format!("d{i}"), server: None };
        log.append(&warden::types::event::Event { id: i, at_ms: i, run_id: None, step: None, kind }).unwrap();
    }
    drop(log);
    let warden = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--state-dir")
            .arg(state.path())
            .args(["audit", "verify"])
            .args(extra)
            .env("XDG_CONFIG_HOME", state.path())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (code, out) = warden(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("signatures: the head and 2 checkpoints verified"), "{out}");

    let (code, out) = warden(&["--key", "/nonexistent/audit.key"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("signatures NOT checked (cannot read the audit checkpoint key /nonexistent/audit.key"),
        "{out}"
    );

    let cps = audit.join("client.checkpoints");
    let text = std::fs::read_to_string(&cps).unwrap();
    std::fs::write(&cps, text.replacen("\"seq\":8", "\"seq\":9", 1)).unwrap();
    let (code, out) = warden(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "{}:2: the periodic checkpoint of record 9: signature does not match (forged or edited, or signed with another key)",
            cps.display()
        )),
        "{out}"
    );
}

/// The console feed's lines after it ingests every event `events` recorded.
fn console_feed(events: &warden::types::event::EventBus) -> Vec<String> {
    let mut app =
        warden::tui::app::App::new(Default::default(), warden::tui::theme::Theme::dark(), Default::default(), false);
    for e in events.recorded() {
        app.ingest(&e);
    }
    app.feed.entries.iter().map(|e| e.text.clone()).collect()
}
