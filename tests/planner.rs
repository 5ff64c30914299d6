//! The offline planner against requests written the way support staff write them
//! (`tests/fixtures/planner_requests.json`: paraphrases, typos, lower case, several
//! numbers, missing pieces, other scripts, greetings, out-of-range counts). Every row runs
//! through the real stack — issuer and customer-service server on loopback, a session
//! with the offline model — one after another on one session, and is checked against
//! the tool calls the session reported (`ToolCall` events: tool and exact arguments) and
//! against the final answer (substrings that must and must not appear).
//!
//! The fixture is plain data so other harnesses (the monitor's false-positive
//! measurement) can replay the same requests.

mod common;

use serde::Deserialize;
use serde_json::Value;
use warden::session::scenario::Scenario;
use warden::types::event::{EventBus, EventKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    request: String,
    calls: Vec<Call>,
    #[serde(default)]
    answer_contains: Vec<String>,
    #[serde(default)]
    answer_excludes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    tool: String,
    args: Value,
}

fn rows() -> Vec<Row> {
    serde_json::from_str(include_str!("fixtures/planner_requests.json")).expect("the fixture is valid JSON")
}

/// JSON equality where numbers compare by value (`100` equals `100.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn the_fixture_is_big_and_varied_enough() {
    let rows = rows();
    assert!(rows.len() >= 60, "{} rows", rows.len());
    let no_call = rows.iter().filter(|r| r.calls.is_empty()).count();
    assert!(no_call >= 10, "rows that must not call a tool: {no_call}");
    assert!(rows.iter().any(|r| !r.request.is_ascii()), "a request in another script");
    for r in &rows {
        assert!(
            !r.answer_contains.is_empty() || !r.answer_excludes.is_empty(),
            "every row checks the answer: {}",
            r.request
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_plans_and_answers_as_expected_over_the_real_stack() {
    let rows = rows();
    let s = common::Stack::start().await;
    let events = EventBus::recording();
    let scenarios: Vec<Scenario> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Scenario {
            name: format!("row-{i:03}"),
            request: r.request.clone(),
            expected_tools: r.calls.iter().map(|c| c.tool.clone()).collect(),
            required_scopes: Vec::new(),
            should_fail: false,
            scopes: None,
        })
        .collect();
    let state = tempfile::tempdir().unwrap();
    let (results, _) = common::run_scenarios(&s, &scenarios, events.clone(), state.path()).await;
    let recorded = events.recorded();

    let mut failures = Vec::new();
    for (i, (row, result)) in rows.iter().zip(&results).enumerate() {
        let suffix = format!("-row-{i:03}");
        let calls: Vec<(String, Value)> = recorded
            .iter()
            .filter(|e| e.run_id.as_deref().is_some_and(|r| r.ends_with(&suffix)))
            .filter_map(|e| match &e.kind {
                EventKind::ToolCall { tool, args, .. } => Some((tool.name.clone(), args.clone())),
                _ => None,
            })
            .collect();
        let mut problems = Vec::new();
        let calls_match = calls.len() == row.calls.len()
            && calls.iter().zip(&row.calls).all(|((tool, args), want)| *tool == want.tool && same(args, &want.args));
        if !calls_match {
            let want: Vec<(String, String)> = row.calls.iter().map(|c| (c.tool.clone(), c.args.to_string())).collect();
            let got: Vec<(String, String)> = calls.iter().map(|(t, a)| (t.clone(), a.to_string())).collect();
            problems.push(format!("calls\n    want {want:?}\n    got  {got:?}"));
        }
        for needle in &row.answer_contains {
            if !result.response.contains(needle.as_str()) {
                problems.push(format!("answer lacks {needle:?}"));
            }
        }
        for needle in &row.answer_excludes {
            if result.response.contains(needle.as_str()) {
                problems.push(format!("answer contains {needle:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "row {i}: {:?}\n  {}\n  answer: {:?}",
                row.request,
                problems.join("\n  "),
                result.response
            ));
        }
    }
    s.stop().await;
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}
