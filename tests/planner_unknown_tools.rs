//! The offline planner with tools it does not know (the MCP reference server
//! `@modelcontextprotocol/server-everything` over stdio: `echo`, `get-sum`, …): it calls
//! none of them and none of the customer-service tools for requests meant for them, and
//! says honestly that it only plans for the customer-service tools and that a real model
//! (`--model`) is how to use the others. Once with only that server, once with Warden's own
//! service alongside it; the runs go through the real session, as in `tests/planner.rs`.

#[path = "common/everything.rs"]
mod everything;
use everything::everything;

mod common;

use warden::config::{Config, ServerEntry};
use warden::session::scenario::{Scenario, ScenarioResult};
use warden::types::event::{EventBus, EventKind};

fn everything_entry() -> ServerEntry {
    ServerEntry::stdio("everything", "node", vec![everything().display().to_string(), "stdio".into()])
}

/// Runs each request as a scenario on one session with the offline model; returns each
/// run's result and the tools it called.
async fn run(config: &Config, requests: &[&str]) -> Vec<(ScenarioResult, Vec<String>)> {
    let scenarios: Vec<Scenario> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| Scenario {
            name: format!("row-{i:03}"),
            request: r.to_string(),
            expected_tools: Vec::new(),
            required_scopes: Vec::new(),
            should_fail: false,
            scopes: None,
        })
        .collect();
    let events = EventBus::recording();
    let state = tempfile::tempdir().unwrap();
    let opts = warden::session::SessionOptions {
        model: Some("offline".into()),
        scenarios: scenarios.clone(),
        ..Default::default()
    };
    let session =
        warden::session::Session::open_on(config, state.path(), opts, events.clone()).await.expect("session opens");
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(tokio_util::sync::CancellationToken::new());
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        assert!(core.send(warden::session::command::Command::RunScenario(i)).await);
        let report = warden::session::report::next_run(&mut rx).await.expect("the run finishes");
        results.push(ScenarioResult::judge(s, report));
    }
    core.shutdown().await;
    let recorded = events.recorded();
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let suffix = format!("-row-{i:03}");
            let calls = recorded
                .iter()
                .filter(|e| e.run_id.as_deref().is_some_and(|id| id.ends_with(&suffix)))
                .filter_map(|e| match &e.kind {
                    EventKind::ToolCall { tool, .. } => Some(tool.name.clone()),
                    _ => None,
                })
                .collect();
            (r, calls)
        })
        .collect()
}

const REQUESTS: &[&str] = &["echo hello", "add 2 and 3", "What is the sum of 2 and 3?", "hi, what can you do?"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_unknown_tools_the_planner_calls_nothing_and_says_a_model_is_needed() {
    let config = Config { servers: vec![everything_entry()], ..Config::default() };
    let runs = run(&config, REQUESTS).await;
    for (request, (result, calls)) in REQUESTS.iter().zip(&runs) {
        assert_eq!(calls, &Vec::<String>::new(), "{request}: {}", result.response);
        assert!(
            result.response.ends_with(
                "I'm Warden's offline planner: I can only plan for the customer-service tools (customer lookups, recent customers, tickets, account values), and none are available here. The tools offered (echo, get-annotated-message, get-env, get-resource-links, get-resource-reference and 8 more) need a language model: run Warden with --model (see \"Language models\" in the README)."
            ),
            "{request}: {}",
            result.response
        );
    }
    assert!(
        runs[1].0.response.starts_with("I'm sorry, but I can't help with that request. "),
        "{}",
        runs[1].0.response
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_the_customer_service_tools_other_requests_are_not_forced_onto_them() {
    let stack = common::Stack::start().await;
    let mut config = common::client_config(&stack, None);
    config.servers.push(everything_entry());
    let mut requests = REQUESTS.to_vec();
    requests.push("look up ABC123");
    let runs = run(&config, &requests).await;
    for (request, (result, calls)) in REQUESTS.iter().zip(&runs) {
        assert_eq!(calls, &Vec::<String>::new(), "{request}: {}", result.response);
        assert!(
            result.response.ends_with(
                "The other tools offered (echo, get-annotated-message, get-env, get-resource-links, get-resource-reference and 8 more) I cannot plan for: I'm Warden's offline planner and know only the customer-service tools; run Warden with --model to use them (see \"Language models\" in the README)."
            ),
            "{request}: {}",
            result.response
        );
        assert!(result.response.contains("I can look up a customer by ID"), "{request}: {}", result.response);
    }
    let (lookup, calls) = runs.last().unwrap();
    assert_eq!(calls, &vec!["get_customer_info".to_string()], "{}", lookup.response);
    stack.stop().await;
}
