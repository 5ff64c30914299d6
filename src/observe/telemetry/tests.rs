//! The event → span mapping against the SDK's in-memory exporters: names, ids and parents,
//! the GenAI/MCP attributes, what is never exported, and the metrics.

use std::sync::Arc;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};

use super::*;
use crate::types::event::{
    CallAudit, CallOutcome, DenialSide, EventKind, McpExchange, OpaqueReason, RefreshReason, RetryReason, RunStatus,
    Scope, ScopeOrigin, ServerSummary, TokenInfo, TokenState,
};
use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;
use crate::types::tool::ToolName;
use crate::types::trace::SpanRole;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.the-access-token.sig";
const SALT: [u8; 16] = [7; 16];

struct Harness {
    bus: EventBus,
    telemetry: Arc<Telemetry>,
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    provider: SdkMeterProvider,
}

fn harness(capture_content: bool) -> Harness {
    let spans = InMemorySpanExporter::default();
    let metrics = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(metrics.clone()).build()).build();
    let facts = SessionFacts {
        agent_name: "customer-service".into(),
        conversation_id: "session-1".into(),
        servers: vec![ServerSummary::http("crm", "http://127.0.0.1:8443/mcp", "oauth")],
    };
    let telemetry = Telemetry::with_processor(
        Box::new(SimpleSpanProcessor::new(spans.clone())),
        Some(provider.clone()),
        Arc::new(http::Stats::default()),
        "http://127.0.0.1:4318".into(),
        TraceSalt::fixed(SALT),
        capture_content,
        facts,
    );
    let bus = EventBus::new();
    bus.add_watcher(telemetry.clone());
    Harness { bus, telemetry, spans, metrics, provider }
}

fn scope(step: Option<u32>) -> Scope {
    Scope { run_id: Some("run-1".into()), step }
}

fn crm(tool: &str) -> ToolName {
    ToolName::new("crm", tool)
}

/// One run: a chat, a successful lookup, a denied refund (server side), a second chat.
fn a_run(h: &Harness) -> (u64, u64) {
    let bus = &h.bus;
    let fp = Fingerprint::of(TOKEN.as_bytes());
    let granted = ScopeSet::parse("customer:read").unwrap();
    bus.emit(
        &Scope::default(),
        EventKind::TokenIssued {
            token: TokenInfo {
                fingerprint: fp.clone(),
                requested: None,
                granted: granted.clone(),
                issued_at: 1_000,
                expires_at: Some(1_900),
                refresh_count: 0,
                state: TokenState::Opaque {
                    why: OpaqueReason::NotJwt,
                    scopes: ScopeOrigin::TokenResponse,
                    introspection: None,
                },
            },
            reason: RefreshReason::Initial,
            server: Some("crm".into()),
        },
    );
    bus.emit(
        &scope(None),
        EventKind::RunStarted { request: "refund order 7".into(), model: "openai/gpt-4o-mini".into(), tools: vec![] },
    );
    bus.emit(
        &scope(Some(0)),
        EventKind::LmCall {
            model: "gpt-4o-mini".into(),
            provider: "openai".into(),
            input_tokens: Some(120),
            output_tokens: Some(30),
            latency_ms: 250.0,
            error: None,
        },
    );
    bus.emit(&scope(Some(0)), EventKind::Thought { text: "look up the customer".into() });
    let args = serde_json::json!({"customer_id": "c-42", "note": "secret-ish note"});
    let lookup = bus.emit(
        &scope(Some(0)),
        EventKind::ToolCall {
            tool: crm("get_customer_info"),
            args: args.clone(),
            args_digest: "d1".into(),
            required: granted.clone(),
        },
    );
    let audit = CallAudit {
        args_digest: Some("d1".into()),
        required: granted.clone(),
        granted: granted.clone(),
        fingerprint: Some(fp.clone()),
        mcp: Some(McpExchange {
            request_id: "4".into(),
            session_id: Some("sess-9".into()),
            protocol_version: Some("2025-06-18".into()),
        }),
    };
    bus.emit(
        &scope(Some(0)),
        EventKind::ToolResult {
            tool: crm("get_customer_info"),
            outcome: CallOutcome::Success { structured: None, text: "Ada Lovelace, ada@example.com".into() },
            attempts: 1,
            latency_ms: 12.0,
            audit: audit.clone(),
        },
    );
    let refund = bus.emit(
        &scope(Some(1)),
        EventKind::ToolCall {
            tool: crm("issue_refund"),
            args: serde_json::json!({"order": 7}),
            args_digest: "d2".into(),
            required: ScopeSet::parse("billing:write").unwrap(),
        },
    );
    bus.emit(
        &scope(Some(1)),
        EventKind::ToolRetry {
            tool: crm("issue_refund"),
            attempt: 1,
            reason: RetryReason::Unauthorized,
            detail: "401: refreshed the token".into(),
            delay_ms: 0,
        },
    );
    bus.emit(
        &scope(Some(1)),
        EventKind::ToolResult {
            tool: crm("issue_refund"),
            outcome: CallOutcome::Denied {
                side: DenialSide::Server,
                required: ScopeSet::parse("billing:write").unwrap(),
                granted: granted.clone(),
                missing: ScopeSet::parse("billing:write").unwrap(),
                status: Some(403),
                www_authenticate: Some("Bearer error=\"insufficient_scope\"".into()),
            },
            attempts: 2,
            latency_ms: 20.0,
            audit: CallAudit { required: ScopeSet::parse("billing:write").unwrap(), ..audit },
        },
    );
    bus.emit(&scope(None), EventKind::RunFinished { status: RunStatus::Denied, steps: 2, elapsed_ms: 400.0 });
    (lookup.id, refund.id)
}

fn by_name<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn s(v: &str) -> Value {
    Value::from(v.to_string())
}

#[test]
fn a_run_becomes_invoke_agent_with_chat_tool_and_mcp_client_children() {
    let h = harness(false);
    let (lookup, refund) = a_run(&h);
    let spans = h.spans.get_finished_spans().unwrap();
    let mut got = names(&spans);
    got.sort();
    assert_eq!(
        got,
        [
            "chat gpt-4o-mini",
            "execute_tool get_customer_info",
            "execute_tool issue_refund",
            "invoke_agent customer-service",
            "tools/call get_customer_info",
            "tools/call issue_refund",
        ]
    );
    let salt = TraceSalt::fixed(SALT);
    let trace = TraceId::from_bytes(salt.trace_id("run-1"));
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace), "one trace for the run");

    let run = by_name(&spans, "invoke_agent customer-service");
    assert_eq!(run.parent_span_id, SpanId::INVALID);
    assert_eq!(run.span_context.span_id(), SpanId::from_bytes(salt.span_id("run-1", SpanRole::Run, 0)));
    assert_eq!(attr(run, "gen_ai.operation.name"), Some(&s("invoke_agent")));
    assert_eq!(attr(run, "gen_ai.agent.name"), Some(&s("customer-service")));
    assert_eq!(attr(run, "gen_ai.conversation.id"), Some(&s("session-1")));
    assert_eq!(attr(run, "gen_ai.provider.name"), Some(&s("openai")));
    assert_eq!(attr(run, "gen_ai.usage.input_tokens"), Some(&Value::I64(120)));
    assert_eq!(attr(run, "warden.run.status"), Some(&s("denied")));
    assert_eq!(run.events.iter().map(|e| e.name.as_ref()).collect::<Vec<_>>(), ["warden.thought"]);
    assert!(run.events[0].attributes.iter().all(|kv| kv.key.as_str() != "gen_ai.agent.thought"), "no thought text");

    let chat = by_name(&spans, "chat gpt-4o-mini");
    assert_eq!(chat.parent_span_id, run.span_context.span_id());
    assert_eq!(chat.span_kind, SpanKind::Client);
    assert_eq!(attr(chat, "gen_ai.request.model"), Some(&s("gpt-4o-mini")));
    assert_eq!(attr(chat, "gen_ai.usage.output_tokens"), Some(&Value::I64(30)));
    assert_eq!(chat.end_time.duration_since(chat.start_time).unwrap().as_millis(), 250);

    let tool = by_name(&spans, "execute_tool get_customer_info");
    assert_eq!(tool.parent_span_id, run.span_context.span_id());
    assert_eq!(tool.span_context.span_id(), SpanId::from_bytes(salt.span_id("run-1", SpanRole::Tool, lookup)));
    assert_eq!(attr(tool, "gen_ai.tool.name"), Some(&s("get_customer_info")));
    assert_eq!(attr(tool, "gen_ai.tool.type"), Some(&s("function")));
    assert_eq!(attr(tool, "gen_ai.tool.call.id"), Some(&s(&format!("run-1-{lookup}"))));
    assert_eq!(attr(tool, "warden.token.fingerprint"), Some(&s(Fingerprint::of(TOKEN.as_bytes()).as_str())));
    assert_eq!(attr(tool, "warden.token.expires_at"), Some(&Value::I64(1_900)));
    assert_eq!(tool.status, Status::Unset);

    let client = by_name(&spans, "tools/call get_customer_info");
    assert_eq!(client.parent_span_id, tool.span_context.span_id());
    assert_eq!(client.span_kind, SpanKind::Client);
    // The id a traceparent names before the request is sent is this span's.
    assert_eq!(
        format!("00-{}-{}-01", client.span_context.trace_id(), client.span_context.span_id()),
        salt.traceparent("run-1", lookup)
    );
    assert_eq!(attr(client, "mcp.method.name"), Some(&s("tools/call")));
    // From the exchange the transport noted, not from what Warden offers.
    assert_eq!(attr(client, "mcp.protocol.version"), Some(&s("2025-06-18")));
    assert_eq!(attr(client, "jsonrpc.request.id"), Some(&s("4")));
    assert_eq!(attr(client, "mcp.session.id"), Some(&s("sess-9")));
    assert_eq!(attr(client, "server.address"), Some(&s("127.0.0.1")));
    assert_eq!(attr(client, "server.port"), Some(&Value::I64(8443)));

    let denied = by_name(&spans, "execute_tool issue_refund");
    assert_eq!(denied.span_context.span_id(), SpanId::from_bytes(salt.span_id("run-1", SpanRole::Tool, refund)));
    assert_eq!(attr(denied, "error.type"), Some(&s("insufficient_scope")));
    assert!(matches!(&denied.status, Status::Error { description } if description.contains("billing:write")));
    let events: Vec<&str> = denied.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(events, ["warden.retry", "warden.denial"]);
    let denial = &denied.events[1];
    assert!(denial.attributes.contains(&KeyValue::new("warden.denial.side", "server")));
    assert!(denial.attributes.iter().any(|kv| kv.key.as_str() == "warden.scopes.missing"
        && kv.value == Value::Array(vec![opentelemetry::StringValue::from("billing:write")].into())));
    assert_eq!(attr(by_name(&spans, "tools/call issue_refund"), "error.type"), Some(&s("insufficient_scope")));
}

/// Nothing secret in any exported byte: not the token, not the tool's output, not the
/// arguments (without `capture_content`), not the WWW-Authenticate challenge.
#[test]
fn no_token_arguments_or_results_are_exported_by_default() {
    let h = harness(false);
    a_run(&h);
    let dump = format!("{:?}", h.spans.get_finished_spans().unwrap());
    for secret in
        [TOKEN, "the-access-token", "ada@example.com", "secret-ish note", "c-42", "look up the customer", "Bearer"]
    {
        assert!(!dump.contains(secret), "{secret:?} was exported");
    }
}

/// `capture_content = true`: arguments and thoughts are exported; the tool's output still
/// is not (reduced as the audit trail reduces it); the token never is.
#[test]
fn capture_content_exports_arguments_and_thoughts_but_never_results_or_tokens() {
    let h = harness(true);
    a_run(&h);
    let spans = h.spans.get_finished_spans().unwrap();
    let tool = by_name(&spans, "execute_tool get_customer_info");
    let args = attr(tool, "gen_ai.tool.call.arguments").map(|v| v.as_str().into_owned()).unwrap_or_default();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&args).unwrap()["customer_id"], "c-42");
    assert_eq!(attr(tool, "gen_ai.tool.call.result"), Some(&s(r#"{"outcome":"success","text":""}"#)));
    let dump = format!("{spans:?}");
    assert!(dump.contains("look up the customer"));
    for secret in [TOKEN, "ada@example.com"] {
        assert!(!dump.contains(secret), "{secret:?} was exported");
    }
}

#[test]
fn metrics_follow_the_semantic_conventions() {
    let h = harness(false);
    a_run(&h);
    h.bus.emit(
        &scope(None),
        EventKind::Anomaly {
            rule: crate::types::event::AnomalyRule::DenialSpike,
            severity: crate::types::event::AnomalySeverity::High,
            message: "3 denials in 60 s".into(),
            evidence: vec![1],
        },
    );
    h.provider.force_flush().unwrap();
    let exported = h.metrics.get_finished_metrics().unwrap();
    let metrics: Vec<_> = exported.iter().flat_map(|rm| rm.scope_metrics()).flat_map(|sm| sm.metrics()).collect();
    let find = |name: &str| metrics.iter().find(|m| m.name() == name).unwrap_or_else(|| panic!("no metric {name}"));
    assert_eq!(find("gen_ai.client.operation.duration").unit(), "s");
    match find("gen_ai.client.operation.duration").data() {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
            let p = h.data_points().next().unwrap();
            assert_eq!((p.count(), p.sum()), (1, 0.25));
            assert!(p.attributes().any(|kv| *kv == KeyValue::new("gen_ai.operation.name", "chat")));
        }
        other => panic!("{other:?}"),
    }
    match find("mcp.client.operation.duration").data() {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => {
            assert_eq!(h.data_points().map(|p| p.count()).sum::<u64>(), 2);
        }
        other => panic!("{other:?}"),
    }
    let counter = |name: &str, key: &str, value: &str| match find(name).data() {
        AggregatedMetrics::U64(MetricData::Sum(s)) => s
            .data_points()
            .filter(|p| p.attributes().any(|kv| kv.key.as_str() == key && kv.value.as_str() == value))
            .map(|p| p.value())
            .sum::<u64>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(counter("warden.denials", "warden.denial.side", "server"), 1);
    assert_eq!(counter("warden.anomalies", "warden.anomaly.rule", "denial_spike"), 1);
    assert!(metrics.iter().any(|m| m.name() == "gen_ai.client.token.usage"));
}

/// Shutdown ends a run that never finished, so its spans are not lost.
#[test]
fn shutdown_ends_open_runs() {
    let h = harness(false);
    h.bus.emit(
        &scope(None),
        EventKind::RunStarted { request: "x".into(), model: "offline-planner".into(), tools: vec![] },
    );
    // The in-memory exporter forgets its spans when shut down: end the open run only.
    h.telemetry.end_open();
    let spans = h.spans.get_finished_spans().unwrap();
    let run = by_name(&spans, "invoke_agent customer-service");
    assert_eq!(attr(run, "warden.run.status"), Some(&s("unfinished")));
    assert_eq!(attr(run, "gen_ai.provider.name"), Some(&s("offline")));
}

#[test]
fn settings_resolve_flag_over_environment_over_config_and_keep_headers_secret() {
    let config = TelemetrySettings {
        endpoint: Some("http://127.0.0.1:4318".into()),
        service_name: Some("from-config".into()),
        metrics: true,
        ..Default::default()
    };
    let env = |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("https://cloud.langfuse.com/api/public/otel/".into()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("Authorization=Basic%20cGs6c2s=, x-team = blue".into()),
        "OTEL_SERVICE_NAME" => Some("from-env".into()),
        _ => None,
    };
    let r = config.resolve(None, env).unwrap().unwrap();
    assert_eq!(r.endpoint, "https://cloud.langfuse.com/api/public/otel");
    assert_eq!(r.service_name, "from-env");
    let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (k.as_str(), v.expose().as_str())).collect();
    assert_eq!(headers, [("Authorization", "Basic cGs6c2s="), ("x-team", "blue")]);
    assert!(!format!("{r:?}").contains("cGs6c2s"), "a header value in Debug output");
    let r = config.resolve(Some("http://localhost:6006"), |_| None).unwrap().unwrap();
    assert_eq!((r.endpoint.as_str(), r.service_name.as_str()), ("http://localhost:6006", "from-config"));
    assert!(TelemetrySettings::default().resolve(None, |_| None).unwrap().is_none());
    let err = config.resolve(Some("http://collector.example:4318"), |_| None).unwrap_err();
    assert!(err.to_string().contains("use https"), "{err}");
    let err = config
        .resolve(None, |k| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "Authorization Basic-secret".to_string()))
        .unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// The real exporter against a port nothing listens on: the run is not held up, and the
/// failure is counted and described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_counted_not_fatal() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings =
        TelemetrySettings::default().resolve(Some(&format!("http://127.0.0.1:{port}")), |_| None).unwrap().unwrap();
    crate::install_crypto_provider();
    let bus = EventBus::new();
    let t = Telemetry::start(&bus, &settings, reqwest::Client::new(), SessionFacts::default()).unwrap();
    bus.emit(
        &scope(None),
        EventKind::RunStarted { request: "x".into(), model: "offline-planner".into(), tools: vec![] },
    );
    bus.emit(&scope(None), EventKind::RunFinished { status: RunStatus::Ok, steps: 0, elapsed_ms: 1.0 });
    // Long enough for the export's own retries and timeout to end.
    t.shutdown(std::time::Duration::from_secs(6)).await;
    let status = t.status();
    assert_eq!((status.spans_exported, status.span_batches_failed, status.spans_lost), (0, 1, 1), "{status:?}");
    let line = status.line();
    let want = format!(
        "otlp http://127.0.0.1:{port}: 0 spans exported, 1 lost (cannot send to http://127.0.0.1:{port}/v1/traces: cannot connect)"
    );
    assert!(line.starts_with(&want), "{line}");
}
