//! Faults against the real servers (issue 11, "Faults"): the issuer, the service and the
//! network path between them stopped, restarted, stalled or cut mid-call, on manual time
//! wherever the product waits. Each test says what a user sees: the events, the outcome
//! classes and messages, the rows stored, the console's status bar.

mod common;

use std::time::Duration;

use common::{Proxy, ProxyMode, Split};
use serde_json::json;
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::{CallPolicy, CallReport};
use warden::types::event::{CallOutcome, Event, EventBus, EventKind, FailureClass, RefreshReason, Scope};
use warden::types::time::ManualClock;

async fn call(stack: &ClientStack, tool: &str, args: serde_json::Value) -> CallReport {
    stack.tool(tool).unwrap_or_else(|| panic!("no tool {tool}")).call(args, &Scope::default()).await
}

async fn read_customer(stack: &ClientStack) -> CallReport {
    call(stack, "get_customer_info", json!({"customer_id": "ABC123"})).await
}

fn failed(r: &CallReport) -> (FailureClass, &str) {
    match &r.outcome {
        CallOutcome::Failed { class, message } => (*class, message.as_str()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn issued(events: &[Event]) -> Vec<RefreshReason> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::TokenIssued { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

fn token_errors(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TokenError { detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .collect()
}

/// Fault 1: the issuer goes away while a session runs. A token still valid keeps working
/// through an early-refresh failure; once a token is needed the call fails with a clear
/// event (what failed, what to check) and nothing reaches the service; when the issuer is
/// back the next call obtains a token, without restarting anything.
#[tokio::test]
async fn issuer_down_when_a_token_is_needed_then_recovery_without_restart() {
    let clock = ManualClock::starting_now();
    let mut s = Split::start(Some(clock.clone())).await;
    let events = EventBus::recording().with_clock(clock.clone());
    let stack =
        ClientStack::connect(&s.client_config(None), None, CallPolicy::default(), events.clone()).await.unwrap();
    assert!(read_customer(&stack).await.outcome.is_success());

    s.stop_issuer().await;
    // Inside the 60 s refresh skew, 50 s before expiry: the early refresh fails, is
    // reported, and the still-valid token carries the call.
    clock.advance(Duration::from_secs(850));
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    let errors = token_errors(&events.recorded());
    assert_eq!(errors.len(), 1, "{errors:?}");
    // Within the retry pause the next calls do not try again.
    assert!(read_customer(&stack).await.outcome.is_success());
    assert_eq!(token_errors(&events.recorded()).len(), 1);

    // Past expiry: a token is needed and none can be had.
    clock.advance(Duration::from_secs(60));
    let r = read_customer(&stack).await;
    let (class, message) = failed(&r);
    assert_eq!(class, FailureClass::TokenUnavailable);
    let endpoint = format!("{}/token", s.issuer);
    assert!(message.starts_with(&format!("could not reach the token endpoint {endpoint}: ")), "{message}");
    assert!(message.ends_with("; check that the authorization server is running and reachable from here"), "{message}");
    assert_eq!(r.attempts, 0, "nothing was sent to the service");
    let errors = token_errors(&events.recorded());
    assert_eq!(errors.last().map(String::as_str), Some(message), "the event says the same");

    // The issuer comes back on the same address: the next call gets a token and works.
    s.start_issuer(false).await;
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert_eq!(issued(&events.recorded()), vec![RefreshReason::Initial, RefreshReason::Expiring]);
    stack.close().await;
    s.stop().await;
}

/// Fault 2, end to end (tests/jwks.rs covers the cache alone): with the issuer (and its
/// JWKS) down, the service keeps accepting a session's token on its cached keys past their
/// 1 h max age; past the hard age (2 h) it fails closed with 401 even for a token it had
/// verified before; when the JWKS is back it recovers on the next call after the cooldown.
#[tokio::test]
async fn jwks_down_cached_keys_then_401_then_recovery() {
    let clock = ManualClock::starting_now();
    let mut config = common::config(None);
    // A token that outlives the key set's hard age, so only the keys decide.
    config.issuer.token_ttl_secs = 3 * 3600;
    let mut s = Split::start_with(config, Some(clock.clone())).await;
    let events = EventBus::recording().with_clock(clock.clone());
    let stack =
        ClientStack::connect(&s.client_config(None), None, CallPolicy::default(), events.clone()).await.unwrap();
    assert!(read_customer(&stack).await.outcome.is_success());

    s.stop_issuer().await;
    clock.advance(Duration::from_secs(3601));
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "stale keys still verify: {:?}", r.outcome);

    clock.advance(Duration::from_secs(3600));
    let r = read_customer(&stack).await;
    let (class, message) = failed(&r);
    assert_eq!(class, FailureClass::TokenUnavailable, "{message}");
    assert!(
        message.starts_with("the server rejected the token (Bearer error=\"invalid_token\"")
            && message.contains("refusing to trust stale keys")
            && message.contains(&format!("could not reach the token endpoint {}/token", s.issuer)),
        "{message}"
    );
    assert_eq!(r.attempts, 1);

    s.start_issuer(false).await;
    clock.advance(Duration::from_secs(31));
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    stack.close().await;
    s.stop().await;
}

fn ticket_args() -> serde_json::Value {
    json!({"customer_id": "ABC123", "subject": "Grill", "description": "The grill is defective.", "priority": "high"})
}

/// Fault 4: the service restarts under a running session. Between calls, the next call
/// just works. A ticket creation in flight when the service goes down (it did the work,
/// the answer never came) is reported as outcome unknown with the idempotency key that
/// makes a deliberate repeat safe, and is not replayed; after the restart the session's
/// next calls work, and repeating with that key returns the same ticket.
#[tokio::test]
async fn service_restart_mid_session_reconnects_and_an_interrupted_ticket_is_outcome_unknown() {
    let clock = ManualClock::starting_now();
    let mut s = Split::start(Some(clock.clone())).await;
    let proxy = Proxy::start(s.mcp_addr).await;
    let url = format!("https://{}/mcp", proxy.addr());
    let events = EventBus::recording().with_clock(clock.clone());
    let stack =
        ClientStack::connect(&s.client_config(Some(&url)), None, CallPolicy::default(), events.clone()).await.unwrap();
    assert!(read_customer(&stack).await.outcome.is_success());

    // A restart between two calls.
    s.stop_service().await;
    s.start_service().await;
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);

    // The service goes down after creating the ticket, before its answer arrives.
    proxy.set_mode(ProxyMode::CrashOnResponse);
    let r = call(&stack, "create_support_ticket", ticket_args()).await;
    proxy.crashed().await;
    let (class, message) = failed(&r);
    assert_eq!(class, FailureClass::OutcomeUnknown, "{message}");
    assert_eq!(r.attempts, 1, "not replayed");
    assert_eq!(s.ticket_rows(), 1, "the service did create it");
    let key = message.split('"').nth(1).unwrap_or_default().to_string();
    assert!(key.starts_with("warden-"), "{message}");
    assert!(
        message.starts_with("outcome unknown: connection lost: ")
            && message.ends_with(&format!(
                "; the call may have run on the server and is not repeated automatically; check before repeating it, or repeat it with idempotency_key \"{key}\" (the server then returns the same result instead of running it twice)"
            )),
        "{message}"
    );

    s.stop_service().await;
    s.start_service().await;
    proxy.up().await;
    let r = read_customer(&stack).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    let mut args = ticket_args();
    args["idempotency_key"] = json!(key);
    let r = call(&stack, "create_support_ticket", args).await;
    let CallOutcome::Success { structured, .. } = &r.outcome else { panic!("{:?}", r.outcome) };
    assert_eq!(structured.as_ref().unwrap()["ticket_id"], "TKT-000001");
    assert_eq!(s.ticket_rows(), 1, "the same ticket, not a second one");
    stack.close().await;
    s.stop().await;
}

fn failures(events: &[Event]) -> Vec<CallOutcome> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolResult { outcome, .. } if !outcome.is_success() => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

/// Fault 3: the issuer restarts with `--rotate-keys` while sessions run. Tokens signed
/// with the previous key keep working (it stays published), a session that starts right
/// after the rotation gets a token with the new key and the service accepts it at once,
/// and the running session's refresh moves it to the new key: no call fails.
#[tokio::test]
async fn key_rotation_while_sessions_run_fails_no_call() {
    let clock = ManualClock::starting_now();
    let mut s = Split::start(Some(clock.clone())).await;
    let events = EventBus::recording().with_clock(clock.clone());
    let first =
        ClientStack::connect(&s.client_config(None), None, CallPolicy::default(), events.clone()).await.unwrap();
    assert!(read_customer(&first).await.outcome.is_success());
    let old_kid = s.active_kid();

    clock.advance(Duration::from_secs(5));
    s.stop_issuer().await;
    s.start_issuer(true).await;
    let new_kid = s.active_kid();
    assert_ne!(new_kid, old_kid);
    assert!(read_customer(&first).await.outcome.is_success(), "a token under the previous key still works");

    clock.advance(Duration::from_secs(5));
    let second =
        ClientStack::connect(&s.client_config(None), None, CallPolicy::default(), events.clone()).await.unwrap();
    assert_eq!(
        second.servers[0].tokens.as_ref().unwrap().info().unwrap().verified().map(|v| v.kid.clone()),
        Some(new_kid.clone())
    );
    for _ in 0..3 {
        assert!(read_customer(&second).await.outcome.is_success());
        assert!(read_customer(&first).await.outcome.is_success());
    }

    // The first session's token reaches its refresh window: the new one is under the new key.
    clock.advance(Duration::from_secs(850));
    let r = read_customer(&first).await;
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert_eq!(
        first.servers[0].tokens.as_ref().unwrap().info().unwrap().verified().map(|v| v.kid.clone()),
        Some(new_kid.clone())
    );
    assert!(call(&second, "create_support_ticket", ticket_args()).await.outcome.is_success());
    assert_eq!(failures(&events.recorded()), Vec::<CallOutcome>::new());
    first.close().await;
    second.close().await;
    s.stop().await;
}

/// A session (audit trail, monitor, offline planner) on `config`, its core started.
async fn open_session(
    config: &warden::config::Config,
    state: &std::path::Path,
    events: EventBus,
) -> (warden::session::SessionHandle, tokio::sync::mpsc::Receiver<Event>) {
    let opts = warden::session::SessionOptions { model: Some("offline".into()), ..Default::default() };
    let session = warden::session::Session::open_on(config, state, opts, events).await.expect("session opens");
    let rx = session.events().subscribe(1 << 16);
    (session.start(tokio_util::sync::CancellationToken::new()), rx)
}

/// Fault 7 (regression): a service outage during a run. Warden's own connection-error
/// text names the service's URL; the prompt-injection rule must judge only what a server
/// or tool returned, so the outage raises no `prompt_injection` anomaly.
#[tokio::test]
async fn an_outage_raises_no_false_prompt_injection() {
    let clock = ManualClock::starting_now();
    let mut s = Split::start(Some(clock.clone())).await;
    let state = tempfile::tempdir().unwrap();
    let events = EventBus::recording().with_clock(clock.clone());
    let (core, mut rx) = open_session(&s.client_config(None), state.path(), events.clone()).await;
    s.stop_service().await;
    assert!(
        core.send(warden::session::command::Command::Submit("Look up customer ABC123 and tell me their tier.".into()))
            .await
    );
    let report = warden::session::report::next_run(&mut rx).await.expect("the run finishes");
    assert!(!report.tools().is_empty(), "the agent tried a tool");
    let outages: Vec<String> = events
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ToolResult {
                outcome: CallOutcome::Failed { class: FailureClass::Connection, message }, ..
            } => Some(message),
            _ => None,
        })
        .collect();
    assert!(!outages.is_empty() && outages.iter().all(|m| m.contains("https://127.0.0.1:")), "{outages:?}");
    let counts = core.anomaly_counts();
    assert_eq!(counts.get(&warden::types::event::AnomalyRule::PromptInjection), None, "{counts:?}");
    core.shutdown().await;
    s.stop().await;
}

/// The console's status bar (the last row) for `app` on a 120×30 screen.
fn status_bar(app: &warden::tui::app::App) -> String {
    use ratatui::{Terminal, backend::TestBackend};
    let mut term = Terminal::new(TestBackend::new(120, 30)).unwrap();
    term.draw(|f| warden::tui::view::render(f, app)).unwrap();
    let buf = term.backend().buffer().clone();
    (0..120).map(|x| buf[(x, 29)].symbol().to_string()).collect::<String>().trim_end().to_string()
}

/// Fault 8: the console's status bar shows the server down during an outage and up again
/// after, derived from the events of real calls (as the console and a replay see them).
#[tokio::test]
async fn the_status_bar_shows_the_server_down_during_an_outage() {
    let clock = ManualClock::starting_now();
    let mut s = Split::start(Some(clock.clone())).await;
    let events = EventBus::recording().with_clock(clock.clone());
    let stack =
        ClientStack::connect(&s.client_config(None), None, CallPolicy::default(), events.clone()).await.unwrap();
    let info = warden::tui::app::ConsoleInfo {
        servers: vec![warden::types::event::ServerSummary::http("customer-service", &s.mcp, "oauth")],
        model: "offline-planner".into(),
        mode: "LIVE".into(),
        ..Default::default()
    };
    let mut app = warden::tui::app::App::new(
        info,
        warden::tui::theme::Theme::dark(),
        warden::tui::keymap::Keymap::default(),
        false,
    );
    let mut seen = 0;
    let mut catch_up = |app: &mut warden::tui::app::App| {
        let rec = events.recorded();
        for e in &rec[seen..] {
            app.ingest(e);
        }
        seen = rec.len();
    };
    assert!(read_customer(&stack).await.outcome.is_success());
    catch_up(&mut app);
    assert!(status_bar(&app).starts_with("● 1 server │ model offline-planner │ ○ idle"), "{}", status_bar(&app));

    s.stop_service().await;
    assert_eq!(failed(&read_customer(&stack).await).0, FailureClass::Connection);
    catch_up(&mut app);
    assert!(
        status_bar(&app).starts_with("✖ customer-service down │ model offline-planner │ ○ idle"),
        "{}",
        status_bar(&app)
    );

    s.start_service().await;
    assert!(read_customer(&stack).await.outcome.is_success());
    catch_up(&mut app);
    assert!(status_bar(&app).starts_with("● 1 server │"), "{}", status_bar(&app));
    stack.close().await;
    s.stop().await;
}

/// Fault 5: a hung service. The client's timeout fires with a clear error (a read is
/// retried once, then fails as a timeout; a ticket ends as outcome unknown), and a session
/// stalled on the hung call still processes commands: Cancel ends the run at once.
#[tokio::test]
async fn a_slow_service_times_out_and_the_session_stays_responsive() {
    let clock = ManualClock::starting_now();
    let s = Split::start(Some(clock.clone())).await;
    let proxy = Proxy::start(s.mcp_addr).await;
    let url = format!("https://{}/mcp", proxy.addr());
    let config = s.client_config(Some(&url));
    let events = EventBus::recording().with_clock(clock.clone());
    let policy = CallPolicy { timeout: Duration::from_millis(300), ..CallPolicy::default() };
    let stack = ClientStack::connect(&config, None, policy, events.clone()).await.unwrap();

    proxy.set_mode(ProxyMode::Stall);
    let started = std::time::Instant::now();
    let r = read_customer(&stack).await;
    let (class, message) = failed(&r);
    assert_eq!((class, r.attempts), (FailureClass::Timeout, 2), "{message}");
    assert_eq!(
        message,
        "no answer from customer-service within 0.3 s; the server may be overloaded or hung: check it, or raise [client] timeout_secs"
    );
    let r = call(&stack, "create_support_ticket", ticket_args()).await;
    let (class, message) = failed(&r);
    assert_eq!((class, r.attempts), (FailureClass::OutcomeUnknown, 1), "{message}");
    assert!(message.starts_with("outcome unknown: no answer from customer-service within 0.3 s;"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "the timeouts fired: {:?}", started.elapsed());
    proxy.set_mode(ProxyMode::Pass);
    assert!(read_customer(&stack).await.outcome.is_success());
    stack.close().await;

    // A session whose run hangs on the service still takes commands.
    let state = tempfile::tempdir().unwrap();
    let session_events = EventBus::recording().with_clock(clock.clone());
    let (core, mut rx) = open_session(&config, state.path(), session_events.clone()).await;
    proxy.set_mode(ProxyMode::Stall);
    assert!(core.send(warden::session::command::Command::Submit("Look up customer ABC123.".into())).await);
    // Wait (bounded) until the run is stuck in its tool call.
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = rx.recv().await {
            if matches!(e.kind, EventKind::ToolCall { .. }) {
                break;
            }
        }
    })
    .await
    .expect("the run reaches its tool call");
    let cancelled_at = std::time::Instant::now();
    assert!(core.send(warden::session::command::Command::Cancel).await);
    let finished = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(e) = rx.recv().await {
            if let EventKind::RunFinished { status, .. } = e.kind {
                return status;
            }
        }
        panic!("the bus closed")
    })
    .await
    .expect("Cancel is processed while the call hangs");
    assert_eq!(finished, warden::types::event::RunStatus::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    proxy.set_mode(ProxyMode::Pass);
    core.shutdown().await;
    s.stop().await;
}

/// Fault 6: a 429 storm. Every call stops after the bounded number of attempts; the total
/// back-off of a call is capped (a long `Retry-After` ends the call early instead of
/// waiting it out twice); back-off delays carry jitter (not all identical). All waits are
/// on the manual clock.
#[tokio::test]
async fn a_429_storm_is_bounded_capped_and_jittered() {
    use warden::types::time::Clock;
    let clock = ManualClock::starting_now();
    for (fault, attempts) in [(common::Fault::RateLimit, 3u32), (common::Fault::RateLimitFor(8), 2)] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let mut config = common::config(None);
        config.issuer.resources = vec![url.clone()];
        let s = common::Stack::start_with(config).await;
        let url = common::faulty_service(listener, &s, fault).await;
        let events = EventBus::recording().with_clock(clock.clone());
        let config = common::client_config(&s, Some(vec![("faulty".into(), url)]));
        let policy = CallPolicy::default();
        let stack = ClientStack::connect(&config, None, policy.clone(), events.clone()).await.unwrap();
        let wall = std::time::Instant::now();
        for _ in 0..8 {
            let before = clock.now_ms();
            let r = read_customer(&stack).await;
            let waited = Duration::from_millis(clock.now_ms() - before);
            let (class, message) = failed(&r);
            assert_eq!((class, r.attempts), (FailureClass::RateLimited, attempts), "{message}");
            assert!(waited <= policy.max_total_wait, "{waited:?}");
            if fault == common::Fault::RateLimitFor(8) {
                // One wait of 8 s + jitter; a second would pass the 15 s budget.
                assert!(waited >= Duration::from_secs(8) && waited < Duration::from_millis(8250), "{waited:?}");
                assert!(message.ends_with("s would pass the 15 s retry budget"), "{message}");
            }
        }
        assert!(wall.elapsed() < Duration::from_secs(5), "no real waiting: {:?}", wall.elapsed());
        let delays: Vec<u64> = events
            .recorded()
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::ToolRetry { delay_ms, .. } => Some(delay_ms),
                _ => None,
            })
            .collect();
        assert_eq!(delays.len(), 8 * (attempts as usize - 1));
        let floor = if attempts == 3 { 1000 } else { 8000 };
        assert!(delays.iter().all(|d| (floor..floor + 250).contains(d)), "{delays:?}");
        let mut distinct = delays.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 1, "jittered, not identical: {delays:?}");
        stack.close().await;
        s.stop().await;
    }
}
