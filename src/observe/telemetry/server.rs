//! Warden's own MCP service in the agent's trace (`warden serve --otlp-endpoint`).
//!
//! The client puts a W3C `traceparent` into each `tools/call`'s `params._meta`. When export
//! is on, the bearer guard reads it and opens an [`Incoming`]: a SERVER span `tools/call
//! {tool}` under the client's span, carrying the guard's decision (outcome, reason, missing
//! scopes, the token's fingerprint — never the token), and the tool handler adds a child
//! span for its store query. One trace then shows agent → tool → server decision → store.
//!
//! With export off the service holds no `ServerSpans` and the guard does not look for a
//! `traceparent`: the hot path costs one `Option` check.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks, SpanProcessor};

use super::{Resolved, TelemetryError, TelemetryStatus, http};
use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;
use crate::types::trace::parse_traceparent;

/// The service's span exporter.
pub struct ServerSpans {
    processor: Box<dyn SpanProcessor>,
    scope: InstrumentationScope,
    stats: Arc<http::Stats>,
    endpoint: String,
}

impl std::fmt::Debug for ServerSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSpans").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// One traced request: where its spans hang, and when it arrived.
#[derive(Clone)]
pub struct Incoming {
    spans: Arc<ServerSpans>,
    trace_id: TraceId,
    /// The client's span (invalid: the request carried no usable `traceparent`, and the
    /// server span is the root of a trace of its own).
    parent: SpanId,
    span_id: SpanId,
    start: SystemTime,
    /// The JSON-RPC request id, as the request wrote it.
    request_id: Option<String>,
}

impl ServerSpans {
    /// Export to `settings.endpoint` through `client` (Warden's TLS rules). Needs a Tokio
    /// runtime.
    pub fn start(settings: &Resolved, client: reqwest::Client) -> Result<Arc<Self>, TelemetryError> {
        let otlp = super::Otlp::new(settings, client)?;
        let processor = otlp.spans(settings)?;
        Ok(Self::with_processor(Box::new(processor), otlp.stats, settings.endpoint.clone()))
    }

    /// Over any span processor (tests: the SDK's in-memory exporter).
    pub fn with_processor(processor: Box<dyn SpanProcessor>, stats: Arc<http::Stats>, endpoint: String) -> Arc<Self> {
        Arc::new(Self {
            processor,
            scope: InstrumentationScope::builder("warden-service").with_version(env!("CARGO_PKG_VERSION")).build(),
            stats,
            endpoint,
        })
    }

    /// A request arriving now with a W3C `traceparent` (the message's `_meta`, else the HTTP
    /// header) and its JSON-RPC id when the body was read.
    pub fn incoming(self: &Arc<Self>, traceparent: Option<&str>, request_id: Option<String>) -> Incoming {
        let (trace_id, parent) = match traceparent.and_then(parse_traceparent) {
            Some((t, s)) => (TraceId::from_bytes(t), SpanId::from_bytes(s)),
            None => (TraceId::from_bytes(random_bytes()), SpanId::INVALID),
        };
        let mut span = [0u8; 8];
        span.copy_from_slice(&random_bytes()[..8]);
        if span == [0; 8] {
            span[0] = 1;
        }
        Incoming {
            spans: self.clone(),
            trace_id,
            parent,
            span_id: SpanId::from_bytes(span),
            start: SystemTime::now(),
            request_id,
        }
    }

    /// What export has done so far.
    pub fn status(&self) -> TelemetryStatus {
        self.stats.status(&self.endpoint, false)
    }

    /// Sends what is queued (bounded by `timeout`) and stops; off the async threads.
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) {
        let me = self.clone();
        let flush = tokio::task::spawn_blocking(move || {
            let _ = me.processor.force_flush();
            let _ = me.processor.shutdown_with_timeout(timeout);
        });
        let _ = tokio::time::timeout(timeout + Duration::from_secs(1), flush).await;
    }

    fn span(
        &self,
        ctx: SpanContext,
        parent: SpanId,
        remote: bool,
        kind: SpanKind,
        name: String,
        start: SystemTime,
    ) -> SpanData {
        SpanData {
            span_context: ctx,
            parent_span_id: parent,
            parent_span_is_remote: remote,
            span_kind: kind,
            name: name.into(),
            start_time: start,
            end_time: SystemTime::now().max(start),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        }
    }
}

/// What the bearer guard decided about one request: a tool call, or (`tool: None`) a
/// request refused before its body was read (rate limit), named by its HTTP method and path.
pub struct Decision<'a> {
    pub tool: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: &'a str,
    pub missing: &'a ScopeSet,
    pub client_id: &'a str,
    pub fingerprint: Option<&'a Fingerprint>,
    /// The HTTP status the request was answered with.
    pub status: u16,
}

impl Incoming {
    fn context(&self, span: SpanId) -> SpanContext {
        SpanContext::new(self.trace_id, span, TraceFlags::SAMPLED, false, TraceState::default())
    }

    /// Ends (now) and exports the request's SERVER span with the guard's decision.
    /// `http` is the request's method and path, the span's name when no tool is known.
    pub fn decided(&self, d: Decision<'_>, http: (&str, &str)) {
        let (method, path) = http;
        let name = match d.tool {
            Some(tool) => format!("tools/call {tool}"),
            None => format!("{method} {path}"),
        };
        let mut span = self.spans.span(
            self.context(self.span_id),
            self.parent,
            self.parent != SpanId::INVALID,
            SpanKind::Server,
            name,
            self.start,
        );
        span.attributes = match d.tool {
            Some(tool) => vec![
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", tool.to_string()),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
            ],
            None => Vec::new(),
        };
        span.attributes.extend([
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("url.path", path.to_string()),
            KeyValue::new("warden.decision.outcome", d.outcome.to_string()),
            KeyValue::new("warden.decision.reason", d.reason.to_string()),
            KeyValue::new("warden.client_id", d.client_id.to_string()),
            KeyValue::new("http.response.status_code", i64::from(d.status)),
        ]);
        if let Some(id) = &self.request_id {
            span.attributes.push(KeyValue::new("jsonrpc.request.id", id.clone()));
        }
        if !d.missing.is_empty() {
            span.attributes.push(KeyValue::new(
                "warden.scopes.missing",
                opentelemetry::Value::Array(opentelemetry::Array::String(
                    d.missing.iter().map(|s| s.as_str().to_string().into()).collect(),
                )),
            ));
        }
        if let Some(fp) = d.fingerprint {
            span.attributes.push(KeyValue::new("warden.token.fingerprint", fp.as_str().to_string()));
        }
        if d.outcome != "allowed" {
            span.attributes.push(KeyValue::new("error.type", d.reason.to_string()));
            span.status = Status::error(format!("{}: {}", d.outcome, d.reason));
        } else if d.status >= 500 {
            span.attributes.push(KeyValue::new("error.type", d.status.to_string()));
            span.status = Status::error(format!("HTTP {}", d.status));
        }
        self.spans.stats.spans_queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.spans.processor.on_end(span);
    }

    /// Exports a span for one store query that began at `start` and ended now, under the
    /// request's SERVER span (`db.system.name`, `db.operation.name`, `db.collection.name`).
    pub fn store(&self, system: &str, operation: &str, collection: &str, start: SystemTime) {
        let mut id = [0u8; 8];
        id.copy_from_slice(&random_bytes()[..8]);
        id[0] |= 1;
        let mut span = self.spans.span(
            self.context(SpanId::from_bytes(id)),
            self.span_id,
            false,
            SpanKind::Client,
            format!("{operation} {collection}"),
            start,
        );
        span.attributes = vec![
            KeyValue::new("db.system.name", system.to_string()),
            KeyValue::new("db.operation.name", operation.to_string()),
            KeyValue::new("db.collection.name", collection.to_string()),
        ];
        self.spans.stats.spans_queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.spans.processor.on_end(span);
    }
}

fn random_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}
