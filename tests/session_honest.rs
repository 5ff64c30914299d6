//! The session core, honest about what happened: the health probe reports a real server
//! that is stopped as down and, restarted, as up again, and learns from calls that could
//! not reach it (time moved by hand, no sleeps); a
//! refused connection raises no anomaly (Warden's own error text is never read as tool
//! output); a scenario's own grant does not outlive it (the operator's next request runs
//! under the operator's grant); and a model failure reaches every frontend as the agent's
//! reply plus a run that ends as `error`.

mod common;

use std::time::Duration;

use common::{Split, Stack};
use tokio_util::sync::CancellationToken;
use warden::session::command::Command;
use warden::session::health::Health;
use warden::session::report::next_run;
use warden::session::{Session, SessionOptions};
use warden::types::event::{CallOutcome, EventBus, EventKind, FailureClass, RunStatus};
use warden::types::time::ManualClock;

fn health_events(bus: &EventBus) -> Vec<(String, bool, String)> {
    bus.recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ServerHealth { server, up, detail } => Some((server, up, detail)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_health_probe_sees_a_stopped_server_and_its_return() {
    let mut split = Split::start(None).await;
    let clock = ManualClock::starting_now();
    let bus = EventBus::recording();
    let servers = vec![("customer-service".to_string(), split.mcp.clone())];
    let mut health = Health::new(&servers, split.http.clone(), clock.clone());
    let probed = format!("https://{}/.well-known/oauth-protected-resource/mcp", split.mcp_addr);

    // Nothing is due before the first interval; an answering server is not reported.
    health.check(&bus).await;
    assert_eq!(health.probes(), 0);
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(health.probes(), 1);
    assert!(health_events(&bus).is_empty());

    split.stop_service().await;
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(
        health_events(&bus),
        [("customer-service".to_string(), false, format!("{probed}: cannot connect — is the server running?"))]
    );

    // While down: backoff 5 s, 10 s, 20 s … between probes, and no repeated report.
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(health.probes(), 3);
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(health.probes(), 3, "10 s must pass after the second failure");
    assert_eq!(health.next_due_in(), Duration::from_secs(5));
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(health.probes(), 4);
    assert_eq!(health.next_due_in(), Duration::from_secs(20));
    assert_eq!(health_events(&bus).len(), 1);

    split.start_service().await;
    clock.advance(Duration::from_secs(20));
    health.check(&bus).await;
    let events = health_events(&bus);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], ("customer-service".to_string(), true, format!("{probed} answers again")));
    assert_eq!(health.next_due_in(), Duration::from_secs(5), "back to the normal interval");

    // A call that could not reach the server (an outage shorter than the interval, seen by
    // the agent): the console marked it down from the call; the probe learns it too, and
    // reports the server up at its next probe, clearing the mark.
    let failed = bus.emit(
        &Default::default(),
        EventKind::ToolResult {
            tool: warden::types::tool::ToolName::new("customer-service", "get_customer_info"),
            outcome: CallOutcome::Failed { class: FailureClass::Connection, message: "connection refused".into() },
            attempts: 2,
            latency_ms: 1.0,
            audit: Default::default(),
        },
    );
    // A timed-out call first: the server may be hung behind a live metadata endpoint, so
    // the probe does not take it as down (and so will not report it up over the call's mark).
    let timed_out = bus.emit(
        &Default::default(),
        EventKind::ToolResult {
            tool: warden::types::tool::ToolName::new("customer-service", "get_customer_info"),
            outcome: CallOutcome::Failed { class: FailureClass::Timeout, message: "timed out".into() },
            attempts: 1,
            latency_ms: 1.0,
            audit: Default::default(),
        },
    );
    health.observe(&timed_out);
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    assert_eq!(health_events(&bus).len(), 2, "nothing to report after a timeout");
    health.observe(&failed);
    assert_eq!(health_events(&bus).len(), 2, "the call itself is the report");
    clock.advance(Duration::from_secs(5));
    health.check(&bus).await;
    let events = health_events(&bus);
    assert_eq!(events.len(), 3);
    assert_eq!(events[2], ("customer-service".to_string(), true, format!("{probed} answers again")));
    split.stop().await;
}

#[tokio::test]
async fn a_refused_connection_raises_no_anomaly() {
    let mut split = Split::start(None).await;
    let state = tempfile::tempdir().unwrap();
    let events = EventBus::recording();
    let opts = SessionOptions { model: Some("offline".into()), ..Default::default() };
    let session = Session::open_on(&split.client_config(None), state.path(), opts, events.clone()).await.unwrap();
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(CancellationToken::new());
    split.stop_service().await;

    assert!(core.send(Command::Submit("What is the status of customer MNO345?".into())).await);
    let report = next_run(&mut rx).await.unwrap();
    assert_eq!(report.status, Some(RunStatus::Failed));
    let recorded = events.recorded();
    let failure = recorded
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ToolResult { outcome: CallOutcome::Failed { class, message }, .. } => Some((*class, message)),
            _ => None,
        })
        .expect("the call failed");
    assert_eq!(failure.0, FailureClass::Connection);
    assert!(failure.1.contains("https://127.0.0.1:"), "Warden's message names the URL: {}", failure.1);
    let anomalies: Vec<_> = recorded.iter().filter(|e| matches!(e.kind, EventKind::Anomaly { .. })).collect();
    assert!(anomalies.is_empty(), "{anomalies:?}");
    assert!(core.anomaly_counts().is_empty());
    core.shutdown().await;
    split.stop().await;
}

#[tokio::test]
async fn a_scenario_grant_does_not_outlive_the_scenario() {
    let stack = Stack::start().await;
    let state = tempfile::tempdir().unwrap();
    let all = warden::session::scenario::parse(warden::session::scenario::DEFAULT_SCENARIOS, "built-in").unwrap();
    let readonly = all.iter().position(|s| s.name == "ticket-under-read-only-grant").unwrap();
    assert!(all[readonly].scopes.is_some(), "the scenario runs under its own grant");
    let events = EventBus::recording();
    let opts = SessionOptions { model: Some("offline".into()), scenarios: all.clone(), ..Default::default() };
    let session =
        Session::open_on(&common::client_config(&stack, None), state.path(), opts, events.clone()).await.unwrap();
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(CancellationToken::new());

    assert!(core.send(Command::RunScenario(readonly)).await);
    let scenario = next_run(&mut rx).await.unwrap();
    assert_eq!(scenario.status, Some(RunStatus::Denied));
    // Sent as soon as the scenario's run finishes, as an operator might.
    let request = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective.";
    assert!(core.send(Command::Submit(request.into())).await);
    let next = next_run(&mut rx).await.unwrap();
    assert_eq!(next.status, Some(RunStatus::Ok), "{:?}", next.denials);
    assert!(next.denials.is_empty());
    assert_eq!(next.tools(), ["get_customer_info", "create_support_ticket"]);
    let granted = events
        .recorded()
        .into_iter()
        .filter(|e| e.run_id.as_deref() == Some(next.run_id.as_str()))
        .find_map(|e| match e.kind {
            EventKind::ToolResult { tool, audit, .. } if tool.name == "create_support_ticket" => Some(audit.granted),
            _ => None,
        })
        .unwrap();
    assert_eq!(granted.to_string(), "account:calculate customer:read ticket:create");
    core.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_model_failure_is_the_agents_reply_and_an_error() {
    let stack = Stack::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut config = common::client_config(&stack, None);
    config.agent = Some(warden::config::AgentConfig {
        api_key_env: Some("WARDEN_TEST_SURELY_UNSET_KEY".into()),
        ..Default::default()
    });
    let events = EventBus::recording();
    let opts = SessionOptions { model: Some("openai/gpt-test".into()), ..Default::default() };
    let session = Session::open_on(&config, state.path(), opts, events.clone()).await.expect("opens without a key");
    let mut rx = session.events().subscribe(1 << 16);
    let core = session.start(CancellationToken::new());
    assert!(core.send(Command::Submit("Look up customer ABC123".into())).await);
    let report = next_run(&mut rx).await.unwrap();
    let message = "openai: no API key: set WARDEN_TEST_SURELY_UNSET_KEY";
    assert_eq!(report.status, Some(RunStatus::Error));
    assert_eq!(report.error.as_deref(), Some(message));
    let kinds: Vec<EventKind> = events
        .recorded()
        .into_iter()
        .filter(|e| e.run_id.as_deref() == Some(report.run_id.as_str()))
        .map(|e| e.kind)
        .skip(1)
        .collect();
    // The one model call is reported (for the console's and the exporter's `chat`), failed,
    // with the same words the run shows.
    match kinds.first() {
        Some(EventKind::LmCall { model, provider, error, .. }) => {
            assert_eq!((model.as_str(), provider.as_str(), error.as_deref()), ("gpt-test", "openai", Some(message)));
        }
        other => panic!("the failed model call must be reported first: {other:?}"),
    }
    let kinds = &kinds[1..];
    assert_eq!(
        kinds,
        [
            EventKind::AgentError { message: message.into() },
            EventKind::FinalAnswer { response: message.into() },
            match kinds.last() {
                Some(k @ EventKind::RunFinished { status: RunStatus::Error, steps: 0, .. }) => k.clone(),
                other => panic!("the run must end as error: {other:?}"),
            },
        ]
    );
    core.shutdown().await;
    stack.stop().await;
}
