//! The audit trail and monitor end to end: a `warden run` killed with SIGKILL mid-burst
//! loses no record of any result it had already printed, and the chain still verifies;
//! the seeded customer whose note carries injected instructions raises the injection
//! anomaly in the console feed while the agent stays within the request's intent.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Stack;
use warden::observe::audit::{read_all, verify};
use warden::types::event::{AnomalyRule, EventBus, EventKind};

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
    let report = verify(&audit, "client").unwrap();
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
    let mut app =
        warden::tui::app::App::new(Default::default(), warden::tui::theme::Theme::dark(), Default::default(), false);
    for e in events.recorded() {
        app.ingest(&e);
    }
    let feed: Vec<String> = app.feed.entries.iter().map(|e| e.text.clone()).collect();
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
    assert_eq!(verify(&state.path().join("audit"), "client").unwrap().problem, None);
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
    assert!(text.contains("failed (blocked, 0 attempt(s)") && text.contains("changed since it was approved"), "{text}");
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
