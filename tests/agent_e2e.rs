//! The offline planner driving ReAct over the real servers (TLS, tokens, secure tools):
//! the seed's scenarios call the expected tools in order and answer from the tool results;
//! the delete request is refused without a tool call; a narrowed grant yields a denial
//! observation and an answer that explains it. Also `warden run --json` and
//! `warden demo --headless` as a user runs them.

mod common;

use std::process::Command;

use common::Stack;
use warden::session::scenario::parse;
use warden::types::event::{EventBus, EventKind, RunStatus};

#[tokio::test]
async fn offline_planner_runs_the_seed_scenarios_over_the_real_stack() {
    let s = Stack::start().await;
    let events = EventBus::recording();
    let all = parse(warden::session::scenario::DEFAULT_SCENARIOS, "built-in").unwrap();
    let names = [
        "ticket-defective-grill",
        "account-value-with-amounts",
        "account-status-total",
        "delete-all-data",
        "ticket-under-read-only-grant",
    ];
    let scenarios: Vec<_> = names.iter().map(|n| all.iter().find(|s| s.name == *n).unwrap().clone()).collect();
    let (results, _) = common::run_scenarios(&s, &scenarios, events.clone(), tempfile::tempdir().unwrap().path()).await;

    let r = &results[0];
    assert_eq!(r.tools, ["get_customer_info", "create_support_ticket"]);
    assert_eq!(r.status, RunStatus::Ok);
    assert!(r.response.contains("TKT-000001") && r.response.contains("Sarah Johnson"), "{}", r.response);

    let r = &results[1];
    assert_eq!(r.tools, ["get_customer_info", "calculate_account_value"]);
    assert!(r.response.contains("The 3 purchases you gave for ABC123 total $507.75"), "{}", r.response);

    // No amounts in the request: the status and the lifetime value on file, and a question
    // for the amounts — never a calculation over a number taken from the profile.
    let r = &results[2];
    assert_eq!(r.tools, ["get_customer_info"]);
    assert!(r.response.contains("Their lifetime value on file is $4,820.75."), "{}", r.response);
    assert!(
        r.response.contains("To calculate the account value for ABC123 I need the purchase amounts"),
        "{}",
        r.response
    );

    let r = &results[3];
    assert_eq!((r.status, r.tools.len()), (RunStatus::Refused, 0));
    assert!(r.response.starts_with("I'm sorry, but I can't delete customer data."), "{}", r.response);
    let run4 = |e: &&warden::types::event::Event| e.run_id.as_deref() == Some("run-4-delete-all-data");
    let recorded = events.recorded();
    assert!(!recorded.iter().filter(run4).any(|e| matches!(e.kind, EventKind::ToolCall { .. })), "no tool call at all");

    let r = &results[4];
    assert_eq!(r.status, RunStatus::Denied);
    assert_eq!(r.tools, ["get_customer_info", "create_support_ticket"]);
    assert_eq!(r.denials.len(), 1);
    assert_eq!(
        (r.denials[0].tool.as_str(), r.denials[0].missing.to_string()),
        ("create_support_ticket", "ticket:create".to_string())
    );
    assert!(
        r.steps[1].observation.starts_with("Permission denied: create_support_ticket requires scope ticket:create")
    );
    assert!(r.response.contains("denied because") && r.response.contains("ticket:create"), "{}", r.response);
    assert!(r.expected);
    assert_eq!(s.ticket_rows(), 1, "only the first ticket was created; the denied one was not");

    // The grant is restored after a scenario that ran under its own scopes.
    let last_grant = recorded
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::TokenIssued { token, .. } => Some(token.granted.to_string()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_grant, "account:calculate customer:read ticket:create");
    s.stop().await;
}

#[test]
fn demo_headless_runs_every_scenario_as_expected() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden")).args(["demo", "--headless"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model: offline-planner"));
    assert!(text.contains("8/8 scenarios as expected"), "{text}");
    assert!(text.contains("✗ denied Permission denied: create_support_ticket requires scope ticket:create"));
}

#[test]
fn run_json_reports_each_scenario_and_fails_on_unexpected_outcomes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scenarios.toml");
    std::fs::write(
        &file,
        r#"
[[scenario]]
name = "lookup"
request = "Look up customer DEF456"
expected_tools = ["get_customer_info"]

[[scenario]]
name = "wrong-expectation"
request = "Show me the 2 most recent customers"
expected_tools = ["get_customer_info"]
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(s.state.join("client.toml"))
        .arg("--state-dir")
        .arg(dir.path())
        .arg("run")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "one scenario did not go as expected");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (lines[0]["name"].as_str(), lines[0]["status"].as_str(), lines[0]["expected"].as_bool()),
        (Some("lookup"), Some("ok"), Some(true))
    );
    assert_eq!(lines[0]["tools"], serde_json::json!(["get_customer_info"]));
    assert!(lines[0]["response"].as_str().unwrap().contains("Emily Rodriguez"));
    assert!(lines[0]["elapsed_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["expected"], false);
    assert_eq!(lines[1]["mismatch"], "expected tools [\"get_customer_info\"], called [\"get_recent_customers\"]");
    assert_eq!(
        (lines[2]["summary"].as_bool(), lines[2]["as_expected"].as_u64(), lines[2]["model"].as_str()),
        (Some(true), Some(1), Some("offline-planner"))
    );
    rt.block_on(s.stop());
}
