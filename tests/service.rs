//! The customer-service MCP server over real HTTPS, through rmcp's own client and raw
//! HTTP: protected-resource metadata, the bearer guard's 401/403/429 with exact
//! `WWW-Authenticate`, tool results, validation, persistence and idempotency.

mod common;

use common::{READONLY, SUPPORT, Stack, tools_call, www_authenticate};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use warden::config::RateLimitConfig;

async fn mcp_client(s: &Stack, token: &str) -> RunningService<RoleClient, ()> {
    let config = StreamableHttpClientTransportConfig::with_uri(s.mcp.clone()).auth_header(token.to_string());
    let transport = StreamableHttpClientTransport::with_client(s.http.clone(), config);
    ().serve(transport).await.expect("MCP initialize")
}

async fn call(client: &RunningService<RoleClient, ()>, name: &'static str, args: Value) -> CallToolResult {
    let params = CallToolRequestParams::new(name).with_arguments(args.as_object().unwrap().clone());
    client.call_tool(params).await.expect("tools/call")
}

fn text_of(r: &CallToolResult) -> String {
    r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn protected_resource_metadata() {
    let s = Stack::start().await;
    for url in [s.resource_metadata_url(), s.mcp.replace("/mcp", "/.well-known/oauth-protected-resource")] {
        let doc: Value = s.http.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            doc,
            json!({
                "resource": s.mcp,
                "authorization_servers": [s.issuer],
                "scopes_supported": ["account:calculate", "customer:read", "ticket:create"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Warden customer service"
            }),
            "{url}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn missing_or_invalid_token_gets_401_with_resource_metadata() {
    let s = Stack::start().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let resp = s.mcp_post(None, &list).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_authenticate(&resp), format!("Bearer resource_metadata=\"{}\"", s.resource_metadata_url()));

    let resp = s.mcp_post(Some("not-a-jwt"), &list).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        www_authenticate(&resp),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"token is not a well-formed JWS compact serialization\", resource_metadata=\"{}\"",
            s.resource_metadata_url()
        )
    );

    // Regression (issue 11, defect 9): credentials that are not one usable Bearer token got
    // 400 with no challenge, so a client could not discover the authorization server.
    let valid = s.token(READONLY, None).await;
    let challenge = format!("Bearer resource_metadata=\"{}\"", s.resource_metadata_url());
    for value in ["Basic Zm9vOmJhcg==".to_string(), "Bearer ".into(), "Bearer".into(), format!("Basic {valid}"), valid]
    {
        let resp = s.http.post(&s.mcp).header("Authorization", &value).body(list.to_string()).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{value:.12}");
        assert_eq!(www_authenticate(&resp), challenge, "{value:.12}");
    }
    s.stop().await;
}

#[tokio::test]
async fn tools_list_advertises_scopes_and_schemas() {
    let s = Stack::start().await;
    let token = s.token(READONLY, None).await;
    let client = mcp_client(&s, &token).await;
    let tools = client.list_all_tools().await.unwrap();
    let mut summary: Vec<(String, Value)> = tools
        .iter()
        .map(|t| {
            (t.name.to_string(), t.meta.as_ref().and_then(|m| m.get("io.warden/required_scopes")).cloned().unwrap())
        })
        .collect();
    summary.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        summary,
        vec![
            ("calculate_account_value".to_string(), json!(["account:calculate"])),
            ("create_support_ticket".to_string(), json!(["ticket:create"])),
            ("get_customer_info".to_string(), json!(["customer:read"])),
            ("get_recent_customers".to_string(), json!(["customer:read"])),
        ]
    );
    let ticket = tools.iter().find(|t| t.name == "create_support_ticket").unwrap();
    let schema = serde_json::to_value(&*ticket.input_schema).unwrap();
    assert_eq!(schema["properties"]["priority"]["enum"], json!(["low", "medium", "high", "urgent"]));
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, ["customer_id", "subject", "description", "priority"]);
    assert!(ticket.output_schema.is_some(), "structured output is described");
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn read_tools_return_structured_results_and_clear_errors() {
    let s = Stack::start().await;
    let token = s.token(SUPPORT, None).await;
    let client = mcp_client(&s, &token).await;

    let r = call(&client, "get_customer_info", json!({"customer_id": "ABC123"})).await;
    assert_eq!(r.is_error, Some(false));
    let c = r.structured_content.unwrap();
    assert_eq!(
        (c["customer_id"].as_str(), c["name"].as_str(), c["tier"].as_str()),
        (Some("ABC123"), Some("Sarah Johnson"), Some("gold"))
    );

    let r = call(&client, "get_customer_info", json!({"customer_id": "ZZZ999"})).await;
    assert_eq!(r.is_error, Some(true));
    assert_eq!(text_of(&r), "customer ZZZ999 not found");
    assert_eq!(r.structured_content.unwrap()["code"], "not_found");

    let r = call(&client, "get_customer_info", json!({"customer_id": "12345"})).await;
    assert_eq!(r.is_error, Some(true));
    assert!(text_of(&r).contains("expected three letters and three digits"));

    let r = call(&client, "get_recent_customers", json!({"limit": 3})).await;
    let recent = r.structured_content.unwrap();
    let ids: Vec<&str> =
        recent["customers"].as_array().unwrap().iter().map(|c| c["customer_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["VWX234", "XYZ789", "MNO345"]);
    let r = call(&client, "get_recent_customers", json!({"limit": 500})).await;
    assert_eq!(text_of(&r), "limit must be between 1 and 50; got 500");

    let r =
        call(&client, "calculate_account_value", json!({"customer_id": "ABC123", "amounts": [250.0, 175.50, 82.25]}))
            .await;
    assert_eq!(
        r.structured_content.unwrap(),
        json!({"customer_id": "ABC123", "count": 3, "total": 507.75, "average": 169.25, "min": 82.25, "max": 250.0, "tier": "bronze"})
    );
    let r = call(&client, "calculate_account_value", json!({"customer_id": "ABC123", "amounts": [-5.0]})).await;
    assert_eq!(text_of(&r), "amounts[0] = -5 is outside 0..1000000");
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn insufficient_scope_is_403_with_exact_challenge_and_no_side_effect() {
    let s = Stack::start().await;
    let token = s.token(READONLY, None).await;
    let args = json!({"customer_id": "ABC123", "subject": "Grill", "description": "defective", "priority": "high"});
    let resp = s.mcp_post(Some(&token), &tools_call("create_support_ticket", args)).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        www_authenticate(&resp),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"ticket:create\", resource_metadata=\"{}\"",
            s.resource_metadata_url()
        )
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["missing_scopes"], json!(["ticket:create"]));
    assert_eq!(s.ticket_rows(), 0, "a denied call creates nothing");

    // rmcp's client sees the same denial as InsufficientScope with the scope parsed out.
    let client = mcp_client(&s, &token).await;
    let params = CallToolRequestParams::new("calculate_account_value")
        .with_arguments(json!({"customer_id": "ABC123", "amounts": [1.0]}).as_object().unwrap().clone());
    let err = client.call_tool(params).await.unwrap_err();
    let rmcp::ServiceError::TransportSend(e) = &err else { panic!("unexpected error {err:?}") };
    let http_err =
        e.error.downcast_ref::<rmcp::transport::streamable_http_client::StreamableHttpError<reqwest::Error>>().unwrap();
    let rmcp::transport::streamable_http_client::StreamableHttpError::InsufficientScope(scope) = http_err else {
        panic!("expected InsufficientScope, got {http_err:?}")
    };
    assert_eq!(scope.required_scope.as_deref(), Some("account:calculate"));
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let s = Stack::start_with(common::config(Some(RateLimitConfig { per_second: 0.5, burst: 2 }))).await;
    let token = s.token(READONLY, None).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(s.mcp_post(Some(&token), &list).await.status(), 200);
    assert_eq!(s.mcp_post(Some(&token), &list).await.status(), 200);
    let resp = s.mcp_post(Some(&token), &list).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    // Another client has its own bucket.
    let other = s.token(SUPPORT, None).await;
    assert_eq!(s.mcp_post(Some(&other), &list).await.status(), 200);
    s.stop().await;
}

/// With OpenTelemetry on, a request refused before its body is read (the rate limit) still
/// gets its SERVER span, continuing the caller's trace from the W3C `traceparent` header
/// (the body's `_meta` is never read), named by method and path since no tool is known.
#[tokio::test]
async fn a_rate_limited_request_continues_the_callers_trace_from_the_header() {
    use opentelemetry::trace::{SpanKind, TraceId};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
    use warden::observe::telemetry::server::ServerSpans;
    let exporter = InMemorySpanExporter::default();
    let spans = ServerSpans::with_processor(
        Box::new(SimpleSpanProcessor::new(exporter.clone())),
        Default::default(),
        "in-memory".into(),
    );
    let s = Stack::start_traced(common::config(Some(RateLimitConfig { per_second: 0.001, burst: 1 })), spans).await;
    let token = s.token(READONLY, None).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "get_customer_info", "arguments": {"customer_id": "ABC123"}}});
    let send = |tp: &'static str| {
        s.http
            .post(&s.mcp)
            .bearer_auth(&token)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("MCP-Protocol-Version", "2025-06-18")
            .header("traceparent", tp)
            .json(&call)
            .send()
    };
    let first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let second = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(send(first).await.unwrap().status(), 200);
    assert_eq!(send(second).await.unwrap().status(), 429);

    let finished = exporter.get_finished_spans().unwrap();
    let servers: Vec<_> = finished.iter().filter(|s| s.span_kind == SpanKind::Server).collect();
    assert_eq!(servers.len(), 2, "{servers:#?}");
    let allowed = servers.iter().find(|s| s.name == "tools/call get_customer_info").expect("the allowed call");
    assert_eq!(allowed.span_context.trace_id(), TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap());
    let refused = servers.iter().find(|s| s.name == "POST /mcp").expect("the refused request");
    assert_eq!(refused.span_context.trace_id(), TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
    assert_eq!(refused.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(refused.parent_span_is_remote);
    let attr = |k: &str| refused.attributes.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.to_string());
    assert_eq!(attr("warden.decision.outcome").as_deref(), Some("rate_limited"));
    assert_eq!(attr("http.response.status_code").as_deref(), Some("429"));
    assert_eq!(attr("error.type").as_deref(), Some("token_bucket_empty"));
    assert_eq!(attr("gen_ai.tool.name"), None, "the body was not read");
    s.stop().await;
}

#[tokio::test]
async fn tickets_persist_across_restart_and_idempotency_keys_replay() {
    let s = Stack::start().await;
    let token = s.token(SUPPORT, None).await;
    let client = mcp_client(&s, &token).await;
    let args = json!({
        "customer_id": "ABC123",
        "subject": "Defective BBQ grill",
        "description": "The bbq grill she bought is defective.",
        "priority": "high",
        "idempotency_key": "req-42"
    });
    let first = call(&client, "create_support_ticket", args.clone()).await.structured_content.unwrap();
    assert_eq!(first["ticket_id"], "TKT-000001");
    assert_eq!((first["status"].as_str(), first["replayed"].as_bool()), (Some("open"), Some(false)));
    let again = call(&client, "create_support_ticket", args.clone()).await.structured_content.unwrap();
    assert_eq!((again["ticket_id"].as_str(), again["replayed"].as_bool()), (Some("TKT-000001"), Some(true)));

    let mut changed = args.clone();
    changed["subject"] = json!("Something else");
    let conflict = call(&client, "create_support_ticket", changed).await;
    assert_eq!(conflict.is_error, Some(true));
    assert!(text_of(&conflict).contains("already used for ticket TKT-000001"));

    let bad = call(
        &client,
        "create_support_ticket",
        json!({"customer_id": "ABC123", "subject": "x", "description": "y", "priority": "critical"}),
    )
    .await;
    assert_eq!(text_of(&bad), "priority \"critical\" is not one of low, medium, high, urgent");
    assert_eq!(s.ticket_rows(), 1);
    client.cancel().await.unwrap();

    let state = s.state.clone();
    let tmp = s.stop().await;
    let s = Stack::start_in(&state, common::config(None), false).await;
    assert_eq!(s.ticket_rows(), 1, "tickets survive a restart");
    let token = s.token(SUPPORT, None).await;
    let client = mcp_client(&s, &token).await;
    let replay = call(&client, "create_support_ticket", args).await.structured_content.unwrap();
    assert_eq!((replay["ticket_id"].as_str(), replay["replayed"].as_bool()), (Some("TKT-000001"), Some(true)));
    let next = call(
        &client,
        "create_support_ticket",
        json!({"customer_id": "XYZ789", "subject": "Bulk order", "description": "Missing items", "priority": "low"}),
    )
    .await;
    assert_eq!(next.structured_content.unwrap()["ticket_id"], "TKT-000002");
    client.cancel().await.unwrap();
    s.stop().await;
    drop(tmp);
}

/// Regression (issue 11, defect 10): a tools/call naming two tools (a repeated
/// `params.name`) got past the guard with no scope check and no audit record; a UTF-16
/// body was accepted. Both are now 400, recorded, and nothing runs.
#[tokio::test]
async fn requests_the_guard_cannot_read_exactly_are_refused_and_recorded() {
    let s = Stack::start().await;
    let token = s.token(READONLY, None).await;
    let post = |body: String, content_type: &'static str| {
        s.http
            .post(&s.mcp)
            .bearer_auth(&token)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", content_type)
            .header("MCP-Protocol-Version", "2025-06-18")
            .body(body)
            .send()
    };
    let dup = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","name":"create_support_ticket","arguments":{"customer_id":"ABC123","subject":"s","description":"d","priority":"low"}}}"#;
    let resp = post(dup.to_string(), "application/json").await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_description"], "a tools/call must name exactly one tool in params.name");
    let ok = tools_call("get_customer_info", json!({"customer_id": "ABC123"})).to_string();
    let resp = post(ok.clone(), "application/json; charset=utf-16").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(post(ok, "application/json; charset=utf-8").await.unwrap().status(), 200);
    assert_eq!(s.ticket_rows(), 0, "nothing ran");
    let records = warden::observe::audit::read_all(&s.state.join("audit"), "server").unwrap();
    let refused = records
        .iter()
        .filter(|(_, e)| {
            matches!(
                &e.kind,
                warden::types::event::EventKind::ServiceDecision {
                    reason: warden::types::event::DecisionReason::MalformedRequest,
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 2, "both refusals are in the server's audit trail");
    s.stop().await;
}

/// Regression (issue 11, defect 8): `Origin` was never validated, so a page on any site
/// could drive the MCP endpoint through the operator's browser.
#[tokio::test]
async fn foreign_origins_are_refused_before_anything_else() {
    let s = Stack::start().await;
    let token = s.token(READONLY, None).await;
    let call = tools_call("get_customer_info", json!({"customer_id": "ABC123"})).to_string();
    let post = |origin: &'static str| {
        s.http
            .post(&s.mcp)
            .bearer_auth(&token)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("MCP-Protocol-Version", "2025-06-18")
            .header("Origin", origin)
            .body(call.clone())
            .send()
    };
    let resp = post("https://evil.example").await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("[service] allowed_origins"), "{body}");
    assert_eq!(post("http://localhost:6274").await.unwrap().status(), 200, "a loopback origin (a local inspector)");
    s.stop().await;
}
