//! Events → OpenTelemetry spans and metrics, following the GenAI semantic conventions
//! (v1.37, development status) and the MCP semantic conventions.
//!
//! Spans are built after the fact from the event stream, with the times the events carry
//! and ids derived from the run and event ids (`types::trace`), so the span tree of a run
//! is the same whichever frontend drove it, and the client stack can name the MCP client
//! span in a `traceparent` before the events describing it arrive here:
//!
//! ```text
//! invoke_agent {agent}                         INTERNAL  (RunStarted … RunFinished)
//! ├── chat {model}                             CLIENT    (one per LmCall)
//! └── execute_tool {tool}                      INTERNAL  (ToolCall … ToolResult)
//!     └── tools/call {tool}                    CLIENT    (when the request was sent)
//! ```
//!
//! What never becomes an attribute: a token, a secret, a header value, a prompt, a
//! completion, what a tool returned. Tool arguments and thoughts only with
//! `capture_content` — the arguments the agent wrote (as the audit trail's `ToolCall`
//! does), the results reduced as the audit trail reduces them (`without_content`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::types::event::{CallOutcome, DenialSide, Event, EventKind, ServerSummary, TokenInfo};
use crate::types::scope::ScopeSet;
use crate::types::tool::ToolName;
use crate::types::trace::{SpanRole, TraceSalt};

/// Runs kept open at once; beyond this the oldest is ended as it stands (a frontend that
/// never finishes its runs must not grow memory without bound).
const MAX_OPEN_RUNS: usize = 64;
/// Span events kept per span (a run that retries forever must not grow one span forever).
const MAX_SPAN_EVENTS: usize = 128;

/// What the metrics are recorded into (the SDK's instruments).
pub(crate) struct Instruments {
    /// `gen_ai.client.operation.duration` (s), one per chat.
    pub chat_duration: opentelemetry::metrics::Histogram<f64>,
    /// `gen_ai.client.token.usage` ({token}), by `gen_ai.token.type`.
    pub token_usage: opentelemetry::metrics::Histogram<u64>,
    /// `mcp.client.operation.duration` (s), one per tool call sent.
    pub tool_duration: opentelemetry::metrics::Histogram<f64>,
    /// `warden.denials` by `warden.denial.side`.
    pub denials: opentelemetry::metrics::Counter<u64>,
    /// `warden.anomalies` by `warden.anomaly.rule`.
    pub anomalies: opentelemetry::metrics::Counter<u64>,
}

impl Instruments {
    pub(crate) fn new(meter: &opentelemetry::metrics::Meter) -> Self {
        Self {
            chat_duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .build(),
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .build(),
            tool_duration: meter
                .f64_histogram("mcp.client.operation.duration")
                .with_unit("s")
                .with_description("The duration of the MCP request or notification as observed on the sender")
                .build(),
            denials: meter
                .u64_counter("warden.denials")
                .with_unit("{denial}")
                .with_description("Tool calls refused for missing scopes, by the side that refused")
                .build(),
            anomalies: meter
                .u64_counter("warden.anomalies")
                .with_unit("{anomaly}")
                .with_description("Findings of the anomaly monitor, by rule")
                .build(),
        }
    }
}

/// Static facts the mapping needs about the session.
#[derive(Debug, Clone, Default)]
pub struct SessionFacts {
    /// `gen_ai.agent.name`.
    pub agent_name: String,
    /// `gen_ai.conversation.id`: one per session.
    pub conversation_id: String,
    /// How each MCP server is reached (`server.address`, `server.port`).
    pub servers: Vec<ServerSummary>,
}

struct OpenRun {
    run_id: String,
    start: SystemTime,
    model: Option<String>,
    provider: Option<String>,
    events: Vec<opentelemetry::trace::Event>,
    input_tokens: u64,
    output_tokens: u64,
    error: Option<String>,
    order: u64,
}

struct OpenTool {
    run_key: String,
    event_id: u64,
    start: SystemTime,
    args: Option<serde_json::Value>,
    events: Vec<opentelemetry::trace::Event>,
}

/// The mapping's state: open runs and tool calls, the tokens last issued per server.
pub(crate) struct Mapper {
    salt: TraceSalt,
    capture_content: bool,
    facts: SessionFacts,
    scope: InstrumentationScope,
    runs: HashMap<String, OpenRun>,
    /// Open tool calls by (run key, server, tool): calls within a run are sequential.
    tools: HashMap<(String, ToolName), OpenTool>,
    tokens: HashMap<String, TokenInfo>,
    opened: u64,
}

impl Mapper {
    pub(crate) fn new(salt: TraceSalt, capture_content: bool, facts: SessionFacts) -> Self {
        Self {
            salt,
            capture_content,
            facts,
            scope: InstrumentationScope::builder("warden").with_version(env!("CARGO_PKG_VERSION")).build(),
            runs: HashMap::new(),
            tools: HashMap::new(),
            tokens: HashMap::new(),
            opened: 0,
        }
    }

    pub(crate) fn set_servers(&mut self, servers: Vec<ServerSummary>) {
        self.facts.servers = servers;
    }

    /// Takes one event; finished spans go to `out`, measurements to `metrics`.
    pub(crate) fn on_event(&mut self, e: &Event, out: &mut Vec<SpanData>, metrics: Option<&Instruments>) {
        let at = time(e.at_ms);
        match &e.kind {
            EventKind::RunStarted { model, .. } => {
                let Some(run_id) = &e.run_id else { return };
                if self.runs.len() >= MAX_OPEN_RUNS
                    && let Some(oldest) = self.runs.values().min_by_key(|r| r.order).map(|r| r.run_id.clone())
                {
                    self.end_run(&oldest, at, None, out);
                }
                self.opened += 1;
                let (provider, model) = split_model(model);
                self.runs.insert(
                    run_id.clone(),
                    OpenRun {
                        run_id: run_id.clone(),
                        start: at,
                        model: Some(model),
                        provider: Some(provider),
                        events: Vec::new(),
                        input_tokens: 0,
                        output_tokens: 0,
                        error: None,
                        order: self.opened,
                    },
                );
            }
            EventKind::RunFinished { status, steps, .. } => {
                if let Some(run_id) = &e.run_id {
                    self.end_run(run_id, at, Some((status.label(), *status, *steps)), out);
                }
            }
            EventKind::Thought { text } => {
                let mut attrs = vec![KeyValue::new("warden.step", i64::from(e.step.unwrap_or(0)))];
                if self.capture_content {
                    attrs.push(KeyValue::new("gen_ai.agent.thought", text.clone()));
                }
                self.run_event(e, span_event("warden.thought", at, attrs));
            }
            EventKind::InvalidAction { tool, reason, .. } => {
                let attrs = vec![
                    KeyValue::new("gen_ai.tool.name", tool.clone()),
                    KeyValue::new("warden.reason", reason.clone()),
                ];
                self.run_event(e, span_event("warden.invalid_action", at, attrs));
            }
            EventKind::AgentError { message } => {
                if let Some(run) = e.run_id.as_ref().and_then(|r| self.runs.get_mut(r)) {
                    run.error = Some(message.clone());
                }
                let attrs = vec![KeyValue::new("exception.message", message.clone())];
                self.run_event(e, span_event("exception", at, attrs));
            }
            EventKind::Anomaly { rule, severity, message, .. } => {
                if let Some(m) = metrics {
                    m.anomalies.add(1, &[KeyValue::new("warden.anomaly.rule", rule.as_str())]);
                }
                let attrs = vec![
                    KeyValue::new("warden.anomaly.rule", rule.as_str()),
                    KeyValue::new("warden.anomaly.severity", format!("{severity:?}").to_lowercase()),
                    KeyValue::new("warden.anomaly.message", message.clone()),
                ];
                self.run_event(e, span_event("warden.anomaly", at, attrs));
            }
            EventKind::LmCall { model, provider, input_tokens, output_tokens, latency_ms, error } => {
                self.chat(
                    e,
                    at,
                    model,
                    provider,
                    (*input_tokens, *output_tokens),
                    *latency_ms,
                    error.as_deref(),
                    out,
                    metrics,
                );
            }
            EventKind::TokenIssued { token, server, .. } => {
                self.tokens.insert(server.clone().unwrap_or_default(), token.clone());
            }
            EventKind::ToolCall { tool, args, .. } => {
                let run_key = self.run_key(e);
                let args = self.capture_content.then(|| args.clone());
                self.tools.insert(
                    (run_key.clone(), tool.clone()),
                    OpenTool { run_key, event_id: e.id, start: at, args, events: Vec::new() },
                );
            }
            EventKind::ToolConfirmation { tool, allowed, by, .. } => {
                let attrs = vec![
                    KeyValue::new("warden.confirmation.allowed", *allowed),
                    KeyValue::new("warden.confirmation.by", format!("{by:?}").to_lowercase()),
                ];
                self.tool_event(e, tool, span_event("warden.confirmation", at, attrs));
            }
            EventKind::ToolRateLimited { tool, retry_after_ms, attempt } => {
                let attrs = vec![
                    KeyValue::new("warden.retry_after_ms", *retry_after_ms as i64),
                    KeyValue::new("warden.attempt", i64::from(*attempt)),
                ];
                self.tool_event(e, tool, span_event("warden.rate_limited", at, attrs));
            }
            EventKind::ToolRetry { tool, attempt, reason, detail, delay_ms } => {
                let attrs = vec![
                    KeyValue::new("warden.retry.reason", format!("{reason:?}").to_lowercase()),
                    KeyValue::new("warden.attempt", i64::from(*attempt)),
                    KeyValue::new("warden.retry.delay_ms", *delay_ms as i64),
                    KeyValue::new("warden.retry.detail", detail.clone()),
                ];
                self.tool_event(e, tool, span_event("warden.retry", at, attrs));
            }
            EventKind::ToolResult { tool, outcome, attempts, latency_ms, audit } => {
                self.tool_result(e, at, tool, outcome, *attempts, *latency_ms, audit, out, metrics);
            }
            _ => {}
        }
    }

    /// Ends every open span as it stands (shutdown).
    pub(crate) fn end_all(&mut self, out: &mut Vec<SpanData>) {
        let now = SystemTime::now();
        let runs: Vec<String> = self.runs.keys().cloned().collect();
        for run in runs {
            self.end_run(&run, now, None, out);
        }
    }

    fn run_key(&self, e: &Event) -> String {
        // A call outside any run (`warden call`) is a trace of its own.
        crate::types::trace::run_key(e.run_id.as_deref(), e.id)
    }

    fn run_event(&mut self, e: &Event, event: opentelemetry::trace::Event) {
        if let Some(run) = e.run_id.as_ref().and_then(|r| self.runs.get_mut(r))
            && run.events.len() < MAX_SPAN_EVENTS
        {
            run.events.push(event);
        }
    }

    fn tool_event(&mut self, e: &Event, tool: &ToolName, event: opentelemetry::trace::Event) {
        let open = match &e.run_id {
            Some(run) => self.tools.get_mut(&(run.clone(), tool.clone())),
            None => self.tools.iter_mut().find(|((k, t), _)| k.starts_with("call-") && t == tool).map(|(_, v)| v),
        };
        if let Some(open) = open
            && open.events.len() < MAX_SPAN_EVENTS
        {
            open.events.push(event);
        }
    }

    fn context(&self, run_key: &str, role: SpanRole, event: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.salt.trace_id(run_key)),
            SpanId::from_bytes(self.salt.span_id(run_key, role, event)),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    fn span(
        &self,
        context: SpanContext,
        parent: SpanId,
        kind: SpanKind,
        name: String,
        times: (SystemTime, SystemTime),
    ) -> SpanData {
        SpanData {
            span_context: context,
            parent_span_id: parent,
            parent_span_is_remote: false,
            span_kind: kind,
            name: name.into(),
            start_time: times.0,
            end_time: times.1.max(times.0),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: self.scope.clone(),
        }
    }

    fn end_run(
        &mut self,
        run_id: &str,
        at: SystemTime,
        finished: Option<(&str, crate::types::event::RunStatus, u32)>,
        out: &mut Vec<SpanData>,
    ) {
        let Some(run) = self.runs.remove(run_id) else { return };
        let ctx = self.context(run_id, SpanRole::Run, 0);
        let agent = self.facts.agent_name.clone();
        let mut span =
            self.span(ctx, SpanId::INVALID, SpanKind::Internal, format!("invoke_agent {agent}"), (run.start, at));
        span.attributes = vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", agent),
            KeyValue::new("gen_ai.conversation.id", self.facts.conversation_id.clone()),
            KeyValue::new("warden.run.id", run.run_id.clone()),
        ];
        if let Some(model) = run.model {
            span.attributes.push(KeyValue::new("gen_ai.request.model", model));
        }
        if let Some(provider) = run.provider {
            span.attributes.push(KeyValue::new("gen_ai.provider.name", provider));
        }
        if run.input_tokens + run.output_tokens > 0 {
            span.attributes.push(KeyValue::new("gen_ai.usage.input_tokens", run.input_tokens as i64));
            span.attributes.push(KeyValue::new("gen_ai.usage.output_tokens", run.output_tokens as i64));
        }
        match finished {
            Some((label, status, steps)) => {
                span.attributes.push(KeyValue::new("warden.run.status", label.to_string()));
                span.attributes.push(KeyValue::new("warden.run.steps", i64::from(steps)));
                use crate::types::event::RunStatus;
                if matches!(status, RunStatus::Error | RunStatus::Failed) {
                    let kind = if status == RunStatus::Error { "model_error" } else { "agent_failed" };
                    span.attributes.push(KeyValue::new("error.type", kind));
                    span.status = Status::error(run.error.clone().unwrap_or_else(|| label.to_string()));
                } else {
                    span.status = Status::Ok;
                }
            }
            None => {
                span.attributes.push(KeyValue::new("warden.run.status", "unfinished"));
            }
        }
        span.events.events = run.events;
        out.push(span);
    }

    #[allow(clippy::too_many_arguments)]
    fn chat(
        &mut self,
        e: &Event,
        at: SystemTime,
        model: &str,
        provider: &str,
        tokens: (Option<u64>, Option<u64>),
        latency_ms: f64,
        error: Option<&str>,
        out: &mut Vec<SpanData>,
        metrics: Option<&Instruments>,
    ) {
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", provider.to_string()),
            KeyValue::new("gen_ai.request.model", model.to_string()),
        ];
        if let Some(err) = error {
            attrs.push(KeyValue::new("error.type", lm_error_type(err)));
        }
        if let Some(m) = metrics {
            m.chat_duration.record(latency_ms / 1e3, &attrs);
            let base = &attrs[..3];
            for (kind, n) in [("input", tokens.0), ("output", tokens.1)] {
                if let Some(n) = n {
                    let mut a = base.to_vec();
                    a.push(KeyValue::new("gen_ai.token.type", kind));
                    m.token_usage.record(n, &a);
                }
            }
        }
        let Some(run_id) = e.run_id.clone() else { return };
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.input_tokens += tokens.0.unwrap_or(0);
            run.output_tokens += tokens.1.unwrap_or(0);
        }
        let start = at.checked_sub(Duration::from_secs_f64(latency_ms.max(0.0) / 1e3)).unwrap_or(at);
        let ctx = self.context(&run_id, SpanRole::Chat, e.id);
        let parent = self.context(&run_id, SpanRole::Run, 0).span_id();
        let mut span = self.span(ctx, parent, SpanKind::Client, format!("chat {model}"), (start, at));
        if let Some(n) = tokens.0 {
            attrs.push(KeyValue::new("gen_ai.usage.input_tokens", n as i64));
        }
        if let Some(n) = tokens.1 {
            attrs.push(KeyValue::new("gen_ai.usage.output_tokens", n as i64));
        }
        if let Some(step) = e.step {
            attrs.push(KeyValue::new("warden.step", i64::from(step)));
        }
        span.attributes = attrs;
        if let Some(err) = error {
            span.status = Status::error(err.to_string());
        }
        out.push(span);
    }

    #[allow(clippy::too_many_arguments)]
    fn tool_result(
        &mut self,
        e: &Event,
        at: SystemTime,
        tool: &ToolName,
        outcome: &CallOutcome,
        attempts: u32,
        latency_ms: f64,
        audit: &crate::types::event::CallAudit,
        out: &mut Vec<SpanData>,
        metrics: Option<&Instruments>,
    ) {
        let key = match &e.run_id {
            Some(run) => Some((run.clone(), tool.clone())),
            None => self.tools.keys().find(|(k, t)| k.starts_with("call-") && t == tool).cloned(),
        };
        let open = key.and_then(|k| self.tools.remove(&k)).unwrap_or_else(|| OpenTool {
            run_key: self.run_key(e),
            event_id: e.id,
            start: at.checked_sub(Duration::from_secs_f64(latency_ms.max(0.0) / 1e3)).unwrap_or(at),
            args: None,
            events: Vec::new(),
        });
        let error_type = error_type(outcome);
        if let CallOutcome::Denied { side, required, granted, missing, .. } = outcome {
            if let Some(m) = metrics {
                m.denials.add(1, &[KeyValue::new("warden.denial.side", side_name(*side))]);
            }
            let attrs = vec![
                KeyValue::new("warden.denial.side", side_name(*side)),
                KeyValue::new("warden.scopes.missing", scopes(missing)),
                KeyValue::new("warden.scopes.required", scopes(required)),
                KeyValue::new("warden.scopes.granted", scopes(granted)),
            ];
            let mut open_events = open.events;
            open_events.push(span_event("warden.denial", at, attrs));
            return self.finish_tool(
                OpenTool { events: open_events, ..open },
                at,
                tool,
                outcome,
                attempts,
                audit,
                error_type,
                out,
                metrics,
                latency_ms,
            );
        }
        self.finish_tool(open, at, tool, outcome, attempts, audit, error_type, out, metrics, latency_ms);
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_tool(
        &mut self,
        open: OpenTool,
        at: SystemTime,
        tool: &ToolName,
        outcome: &CallOutcome,
        attempts: u32,
        audit: &crate::types::event::CallAudit,
        error_type: Option<&'static str>,
        out: &mut Vec<SpanData>,
        metrics: Option<&Instruments>,
        latency_ms: f64,
    ) {
        let run_key = open.run_key.clone();
        let call_id = format!("{}-{}", run_key, open.event_id);
        let tool_ctx = self.context(&run_key, SpanRole::Tool, open.event_id);
        // A call inside a run hangs under its invoke_agent span; a lone call is a root.
        let parent = if self.runs.contains_key(&run_key) {
            self.context(&run_key, SpanRole::Run, 0).span_id()
        } else {
            SpanId::INVALID
        };
        let mut span = self.span(
            tool_ctx.clone(),
            parent,
            SpanKind::Internal,
            format!("execute_tool {}", tool.name),
            (open.start, at),
        );
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", tool.name.clone()),
            KeyValue::new("gen_ai.tool.call.id", call_id.clone()),
            KeyValue::new("gen_ai.tool.type", "function"),
            KeyValue::new("warden.mcp.server", tool.server.clone()),
            KeyValue::new("warden.tool.outcome", outcome_name(outcome)),
            KeyValue::new("warden.tool.attempts", i64::from(attempts)),
            KeyValue::new("warden.scopes.required", scopes(&audit.required)),
        ];
        if let Some(fp) = &audit.fingerprint {
            attrs.push(KeyValue::new("warden.token.fingerprint", fp.as_str().to_string()));
            attrs.push(KeyValue::new("warden.token.scopes", scopes(&audit.granted)));
            if let Some(exp) = self.tokens.get(&tool.server).filter(|t| t.fingerprint == *fp).and_then(|t| t.expires_at)
            {
                attrs.push(KeyValue::new("warden.token.expires_at", exp as i64));
            }
        }
        if let Some(args) = &open.args {
            attrs.push(KeyValue::new("gen_ai.tool.call.arguments", args.to_string()));
        }
        if self.capture_content {
            // The result as the audit trail keeps it: the outcome, not what the tool returned.
            let kept = serde_json::to_string(&outcome.without_content()).unwrap_or_default();
            attrs.push(KeyValue::new("gen_ai.tool.call.result", kept));
        }
        if let Some(kind) = error_type {
            attrs.push(KeyValue::new("error.type", kind));
            span.status = Status::error(outcome_message(outcome));
        }
        span.attributes = attrs;
        span.events.events = open.events;
        // The MCP request, when one was sent.
        if attempts > 0 {
            let ctx = self.context(&run_key, SpanRole::McpClient, open.event_id);
            let mut client = self.span(
                ctx,
                tool_ctx.span_id(),
                SpanKind::Client,
                format!("tools/call {}", tool.name),
                (open.start, at),
            );
            let mut attrs = vec![
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", tool.name.clone()),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
            ];
            // What the wire said (the transport noted it for this traced call): the JSON-RPC
            // id of the last attempt, the server's session, the negotiated version.
            if let Some(mcp) = &audit.mcp {
                attrs.push(KeyValue::new("jsonrpc.request.id", mcp.request_id.clone()));
                if let Some(session) = &mcp.session_id {
                    attrs.push(KeyValue::new("mcp.session.id", session.clone()));
                }
                if let Some(version) = &mcp.protocol_version {
                    attrs.push(KeyValue::new("mcp.protocol.version", version.clone()));
                }
            }
            if let Some(server) = self.facts.servers.iter().find(|s| s.name == tool.server) {
                if let Some((host, port)) = address(&server.endpoint) {
                    attrs.push(KeyValue::new("server.address", host));
                    attrs.push(KeyValue::new("server.port", i64::from(port)));
                    attrs.push(KeyValue::new("network.transport", "tcp"));
                } else if server.transport == "stdio" {
                    attrs.push(KeyValue::new("network.transport", "pipe"));
                }
            }
            if let Some(kind) = error_type {
                attrs.push(KeyValue::new("error.type", kind));
                client.status = Status::error(outcome_message(outcome));
            }
            if let Some(m) = metrics {
                m.tool_duration.record(latency_ms / 1e3, &attrs[..attrs.len().min(3)]);
            }
            client.attributes = attrs;
            out.push(client);
        }
        out.push(span);
    }
}

fn time(at_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(at_ms)
}

fn span_event(name: &'static str, at: SystemTime, attrs: Vec<KeyValue>) -> opentelemetry::trace::Event {
    opentelemetry::trace::Event::new(name, at, attrs, 0)
}

fn scopes(set: &ScopeSet) -> Value {
    Value::Array(Array::String(set.iter().map(|s| StringValue::from(s.as_str().to_string())).collect()))
}

fn side_name(side: DenialSide) -> &'static str {
    match side {
        DenialSide::Client => "client",
        DenialSide::Server => "server",
    }
}

fn outcome_name(o: &CallOutcome) -> &'static str {
    match o {
        CallOutcome::Success { .. } => "success",
        CallOutcome::ToolError { .. } => "tool_error",
        CallOutcome::Denied { .. } => "denied",
        CallOutcome::Failed { .. } => "failed",
    }
}

/// `error.type` of a call that did not succeed.
fn error_type(o: &CallOutcome) -> Option<&'static str> {
    use crate::types::event::FailureClass as F;
    match o {
        CallOutcome::Success { .. } => None,
        CallOutcome::ToolError { .. } => Some("tool_error"),
        CallOutcome::Denied { .. } => Some("insufficient_scope"),
        CallOutcome::Failed { class, .. } => Some(match class {
            F::ToolError => "tool_error",
            F::InvalidArguments => "invalid_arguments",
            F::Unauthorized => "unauthorized",
            F::RateLimited => "rate_limited",
            F::Timeout => "timeout",
            F::Connection => "connection",
            F::Tls => "tls",
            F::Protocol => "protocol",
            F::Blocked => "blocked",
            F::TokenUnavailable => "token_unavailable",
            F::OutcomeUnknown => "outcome_unknown",
            F::AuditUnavailable => "audit_unavailable",
            F::NotConfirmed => "not_confirmed",
        }),
    }
}

/// The status description: what went wrong, never what the tool returned.
fn outcome_message(o: &CallOutcome) -> String {
    match o {
        CallOutcome::Denied { side, missing, .. } => format!("denied ({}): missing {missing}", side.label()),
        CallOutcome::Failed { class, message } => format!("{}: {message}", class.label()),
        CallOutcome::ToolError { .. } => "the tool reported an error".into(),
        CallOutcome::Success { .. } => String::new(),
    }
}

/// `error.type` for a model failure, from the words every frontend shows.
fn lm_error_type(message: &str) -> &'static str {
    if message.contains("timed out") {
        "timeout"
    } else if message.contains("rate limited") {
        "rate_limited"
    } else if message.contains("API key") {
        "unauthorized"
    } else if message.contains("cannot reach") {
        "connection"
    } else {
        "_OTHER"
    }
}

/// `openai/gpt-4o` → (`openai`, `gpt-4o`); `offline-planner` → (`offline`, itself).
fn split_model(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((p, m)) if !m.is_empty() => (p.to_string(), m.to_string()),
        _ if name.starts_with("offline") => ("offline".into(), name.to_string()),
        _ => (name.to_string(), name.to_string()),
    }
}

/// Host and port of an http(s) endpoint.
fn address(endpoint: &str) -> Option<(String, u16)> {
    let url = url::Url::parse(endpoint).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some((url.host_str()?.trim_matches(['[', ']']).to_string(), url.port_or_known_default()?))
}
