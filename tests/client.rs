//! The secure client layer against the real servers (port 0, TLS): verified tokens,
//! refresh before expiry (single-flight), local and server-side denials classified the
//! same way, bounded 429 and 401 handling, refusal of an unknown CA, and no secret in any
//! event.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Fault, Stack, client_config, faulty_service};
use serde_json::json;
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::CallPolicy;
use warden::types::event::{
    CallOutcome, DenialSide, EventBus, EventKind, FailureClass, RefreshReason, RetryReason, Scope, TokenState,
};
use warden::types::scope::ScopeSet;
use warden::types::time::{Clock, ManualClock};

fn issued(events: &EventBus) -> Vec<RefreshReason> {
    events
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::TokenIssued { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn token_is_fetched_verified_and_described() {
    let s = Stack::start().await;
    let events = EventBus::recording();
    let (_, tokens) = warden::mcp::token_manager(&client_config(&s, None), None, events.clone()).await.unwrap();
    let claims = tokens.claims().await.unwrap();
    assert_eq!(claims.claims.as_ref().expect("a JWT from this issuer is verified").client_id, "support-agent");
    let info = tokens.info().unwrap();
    let TokenState::Verified(verified) = &info.state else { panic!("expected a verified token, got {:?}", info.state) };
    assert_eq!(verified.issuer, s.issuer);
    assert_eq!(verified.audience, vec![s.mcp.clone()]);
    assert_eq!(info.granted.to_string(), "account:calculate customer:read ticket:create");
    assert_eq!(info.requested, None);
    assert!(info.fingerprint.as_str().starts_with("sha256:") && info.fingerprint.as_str().len() == 19);
    let left = info.seconds_to_expiry(warden::types::time::now_epoch());
    assert!(left.is_some_and(|l| (895..=900).contains(&l)), "{left:?}");
    assert_eq!(issued(&events), vec![RefreshReason::Initial]);

    // Re-grant with a narrower set: the new token carries exactly that.
    let narrowed = tokens.regrant(Some(ScopeSet::parse("customer:read").unwrap())).await.unwrap();
    assert_eq!(narrowed.scope.to_string(), "customer:read");
    assert_eq!(tokens.info().unwrap().requested.unwrap().to_string(), "customer:read");

    // A scope the client may not have is refused by the issuer with a hint.
    let err = tokens.regrant(Some(ScopeSet::parse("admin:delete").unwrap())).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("invalid_scope") && msg.contains("--scopes"), "{msg}");
    assert!(err.is_auth());
    s.stop().await;
}

/// Manual time: the session's clock jumps forward instead of the test sleeping.
#[tokio::test]
async fn token_is_refreshed_before_expiry_by_one_shared_request() {
    let clock = ManualClock::starting_now();
    let s = Stack::start_with_clock(clock.clone()).await;
    let events = EventBus::recording().with_clock(clock.clone());
    let (_, tokens) = warden::mcp::token_manager(&client_config(&s, None), None, events.clone()).await.unwrap();
    let first = tokens.claims().await.unwrap();
    assert_eq!(tokens.claims().await.unwrap().fingerprint, first.fingerprint, "a fresh token is reused");
    // 900 s lifetime, 60 s refresh skew: 839 s later it is still fresh…
    clock.advance(Duration::from_secs(839));
    assert_eq!(tokens.claims().await.unwrap().fingerprint, first.fingerprint, "still outside the refresh skew");
    assert_eq!(issued(&events), vec![RefreshReason::Initial]);
    // …2 s later it is inside the skew, and the next callers share one refresh.
    clock.advance(Duration::from_secs(2));
    let tokens = Arc::new(tokens);
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let t = tokens.clone();
            tokio::spawn(async move { t.claims().await.unwrap().fingerprint.clone() })
        })
        .collect();
    let mut jtis = Vec::new();
    for h in handles {
        jtis.push(h.await.unwrap());
    }
    assert!(jtis.iter().all(|j| *j == jtis[0] && *j != first.fingerprint), "all callers share one new token");
    assert_eq!(issued(&events), vec![RefreshReason::Initial, RefreshReason::Expiring]);
    assert_eq!(tokens.info().unwrap().refresh_count, 1);
    s.stop().await;
}

#[tokio::test]
async fn narrowed_grant_is_denied_locally_and_by_the_server_the_same_way() {
    let s = Stack::start().await;
    let config = client_config(&s, None);
    let args = json!({"customer_id": "ABC123", "subject": "Grill", "description": "The bbq grill she bought is defective.", "priority": "high"});
    for precheck in [true, false] {
        let events = EventBus::recording();
        let policy = CallPolicy { precheck, ..CallPolicy::default() };
        let stack =
            ClientStack::connect(&config, Some(ScopeSet::parse("customer:read").unwrap()), policy, events.clone())
                .await
                .unwrap();
        let report = stack.tool("create_support_ticket").unwrap().call(args.clone(), &Scope::default()).await;
        let CallOutcome::Denied { side, missing, required, www_authenticate, .. } = &report.outcome else {
            panic!("expected a denial, got {:?}", report.outcome)
        };
        assert_eq!(missing.to_string(), "ticket:create");
        assert_eq!(required.to_string(), "ticket:create");
        // Exactly one account of the call: its start, then one result.
        let rec = events.recorded();
        let calls: Vec<&EventKind> = rec
            .iter()
            .map(|e| &e.kind)
            .filter(|k| matches!(k, EventKind::ToolCall { .. } | EventKind::ToolResult { .. }))
            .collect();
        assert_eq!(calls.len(), 2, "{calls:?}");
        let EventKind::ToolResult {
            tool,
            outcome: CallOutcome::Denied { side: event_side, missing: event_missing, status, .. },
            ..
        } = calls[1].clone()
        else {
            panic!("expected a denial result, got {:?}", calls[1])
        };
        assert_eq!(
            (event_side, event_missing.to_string(), tool.name.as_str(), tool.server.as_str()),
            (*side, "ticket:create".to_string(), "create_support_ticket", "customer-service")
        );
        if precheck {
            assert_eq!((*side, report.attempts, status), (DenialSide::Client, 0, None));
            assert!(www_authenticate.is_none());
        } else {
            assert_eq!((*side, report.attempts, status), (DenialSide::Server, 1, Some(403)));
            assert!(
                www_authenticate
                    .as_deref()
                    .unwrap()
                    .starts_with("Bearer error=\"insufficient_scope\", scope=\"ticket:create\"")
            );
        }
        stack.close().await;
    }
    assert_eq!(s.ticket_rows(), 0);
    s.stop().await;
}

#[tokio::test]
async fn successful_call_reports_structured_result_and_events() {
    let s = Stack::start().await;
    let events = EventBus::recording();
    let stack =
        ClientStack::connect(&client_config(&s, None), None, CallPolicy::default(), events.clone()).await.unwrap();
    let tools: Vec<(String, String)> =
        stack.tools().map(|t| (t.id().name.clone(), t.spec.required_scopes.to_string())).collect();
    assert!(tools.contains(&("get_recent_customers".into(), "customer:read".into())), "{tools:?}");
    let scope = Scope { run_id: Some("run-1".into()), step: Some(3) };
    let report = stack.tool("get_customer_info").unwrap().call(json!({"customer_id": "DEF456"}), &scope).await;
    let CallOutcome::Success { structured, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert_eq!(structured.as_ref().unwrap()["name"], "Emily Rodriguez");
    let kinds: Vec<&str> = events
        .recorded()
        .iter()
        .filter(|e| e.run_id.as_deref() == Some("run-1"))
        .map(|e| match &e.kind {
            EventKind::ToolCall { .. } => "call",
            EventKind::ToolResult { outcome: CallOutcome::Success { .. }, .. } => "ok",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["call", "ok"]);
    assert!(
        events
            .recorded()
            .iter()
            .any(|e| matches!(&e.kind, EventKind::ManifestRecorded { hash, .. } if hash.len() == 64))
    );

    // A ticket without an idempotency key gets one, so the call is safe to retry.
    let report = stack
        .tool("create_support_ticket")
        .unwrap()
        .call(
            json!({"customer_id": "ABC123", "subject": "Grill", "description": "Defective", "priority": "high"}),
            &Scope::default(),
        )
        .await;
    let CallOutcome::Success { structured, .. } = &report.outcome else { panic!("{:?}", report.outcome) };
    assert_eq!(structured.as_ref().unwrap()["ticket_id"], "TKT-000001");
    stack.close().await;
    s.stop().await;
}

async fn faulty_stack(fault: Fault) -> (Stack, ClientStack, EventBus) {
    faulty_stack_on(fault, EventBus::recording()).await
}

async fn faulty_stack_on(fault: Fault, events: EventBus) -> (Stack, ClientStack, EventBus) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let mut config = common::config(None);
    config.issuer.resources = vec![url.clone()];
    let s = Stack::start_with(config).await;
    let url = faulty_service(listener, &s, fault).await;
    let config = client_config(&s, Some(vec![("faulty".into(), url)]));
    let stack = ClientStack::connect(&config, None, CallPolicy::default(), events.clone()).await.unwrap();
    (s, stack, events)
}

/// Manual time: the client waits `Retry-After` on the session clock, which a test moves
/// instead of sleeping; the waits are measured on that clock.
#[tokio::test]
async fn always_429_gives_up_within_the_attempt_and_time_bounds() {
    let clock = ManualClock::starting_now();
    let (s, stack, events) = faulty_stack_on(Fault::RateLimit, EventBus::recording().with_clock(clock.clone())).await;
    let (start, wall) = (clock.now_ms(), Instant::now());
    let report =
        stack.tool("get_customer_info").unwrap().call(json!({"customer_id": "ABC123"}), &Scope::default()).await;
    let elapsed = Duration::from_millis(clock.now_ms() - start);
    assert!(wall.elapsed() < elapsed, "the waits were on the manual clock, not real time");
    assert_eq!(report.attempts, 3);
    assert!(
        matches!(&report.outcome, CallOutcome::Failed { class: FailureClass::RateLimited, message } if message.contains("gave up after 3 attempts")),
        "{:?}",
        report.outcome
    );
    // Two waits of Retry-After (1 s) plus jitter (under 250 ms each), none after the last 429.
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2500), "{elapsed:?}");
    let rec = events.recorded();
    assert_eq!(
        rec.iter().filter(|e| matches!(e.kind, EventKind::ToolRateLimited { retry_after_ms: 1000, .. })).count(),
        3
    );
    assert_eq!(
        rec.iter().filter(|e| matches!(e.kind, EventKind::ToolRetry { reason: RetryReason::RateLimited, .. })).count(),
        2
    );
    stack.close().await;
    s.stop().await;
}

#[tokio::test]
async fn a_401_is_refreshed_once_and_retried_once() {
    let (s, stack, events) = faulty_stack(Fault::Unauthorized(1)).await;
    let report =
        stack.tool("get_customer_info").unwrap().call(json!({"customer_id": "ABC123"}), &Scope::default()).await;
    assert!(matches!(report.outcome, CallOutcome::Success { .. }), "{:?}", report.outcome);
    assert_eq!(report.attempts, 2);
    assert_eq!(issued(&events), vec![RefreshReason::Initial, RefreshReason::Unauthorized]);
    stack.close().await;
    s.stop().await;

    // A server that keeps answering 401 gets one refresh and one retry, not a loop.
    let (s, stack, events) = faulty_stack(Fault::Unauthorized(usize::MAX)).await;
    let report =
        stack.tool("get_customer_info").unwrap().call(json!({"customer_id": "ABC123"}), &Scope::default()).await;
    assert!(
        matches!(&report.outcome, CallOutcome::Failed { class: FailureClass::Unauthorized, message } if message.contains("rejected a freshly issued token")),
        "{:?}",
        report.outcome
    );
    assert_eq!(report.attempts, 2);
    assert_eq!(issued(&events), vec![RefreshReason::Initial, RefreshReason::Unauthorized]);
    stack.close().await;
    s.stop().await;
}

#[tokio::test]
async fn an_unknown_ca_is_refused_before_any_credential_is_sent() {
    let s = Stack::start().await;
    let other = tempfile::tempdir().unwrap();
    let other_ca = warden::security::tls::DevPki::new(other.path());
    other_ca.ensure().unwrap();
    let mut config = client_config(&s, None);
    let c = config.client.as_mut().unwrap();
    c.ca_file = Some(other_ca.ca_path());
    c.ca_only = true;
    let events = EventBus::recording();
    let err = match ClientStack::connect(&config, None, CallPolicy::default(), events.clone()).await {
        Ok(_) => panic!("connected through an untrusted certificate"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("certificate") || err.contains("UnknownIssuer"), "{err}");
    assert!(issued(&events).is_empty());
    s.stop().await;
}

#[tokio::test]
async fn plain_http_and_foreign_issuers_are_refused() {
    let s = Stack::start().await;
    let mut config = client_config(&s, None);
    config.servers[0].url = s.mcp.replace("https://", "http://");
    let err = ClientStack::connect(&config, None, CallPolicy::default(), EventBus::new()).await.err().unwrap();
    assert!(err.to_string().contains("plain http is refused"), "{err}");

    let mut config = client_config(&s, None);
    config.client.as_mut().unwrap().issuer = Some("https://127.0.0.1:1".into());
    let err = ClientStack::connect(&config, None, CallPolicy::default(), EventBus::new()).await.err().unwrap();
    assert!(err.to_string().contains("refusing to send credentials there"), "{err}");
    s.stop().await;
}

/// Regression (issue 11, defect 7): a server's RFC 9728 metadata named another resource
/// (here the real service), and the client asked for a token with that audience.
#[tokio::test]
async fn a_server_that_names_another_resource_gets_no_token() {
    let s = Stack::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let metadata = json!({"resource": s.mcp, "authorization_servers": [s.issuer]});
    let router = axum::Router::new().route(
        "/.well-known/oauth-protected-resource/mcp",
        axum::routing::get(move || {
            let m = metadata.clone();
            async move { axum::Json(m) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let events = EventBus::recording();
    let config = client_config(&s, Some(vec![("hostile".into(), url.clone())]));
    let err = match ClientStack::connect(&config, None, CallPolicy::default(), events.clone()).await {
        Ok(_) => panic!("connected to a server that named another resource"),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with(&format!("hostile says it is the resource {}, which is not {url}", s.mcp)), "{err}");
    assert!(issued(&events).is_empty(), "no token was requested");
    s.stop().await;
}

/// A URL that is not an MCP endpoint (here the issuer's): the error says what the server
/// answered and what to check, not the transport's Rust type.
#[tokio::test]
async fn a_url_that_is_not_an_mcp_endpoint_is_named_plainly() {
    let s = Stack::start().await;
    let mut config = client_config(&s, None);
    config.servers[0].url = format!("{}/mcp", s.issuer);
    config.servers[0].resource = Some(s.mcp.clone());
    let err = match ClientStack::connect(&config, None, CallPolicy::default(), EventBus::new()).await {
        Ok(_) => panic!("an MCP session with the issuer"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.ends_with(
            "unexpected server response: HTTP 404 Not Found (while trying to send initialize request); check that the URL is the server's MCP (streamable HTTP) endpoint"
        ),
        "{err}"
    );
    assert!(!err.contains("rmcp::") && !err.contains("Transport ["), "{err}");
    s.stop().await;
}
