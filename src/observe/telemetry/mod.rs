//! OpenTelemetry export of Warden's runs: a consumer of the event stream (a bus watcher,
//! like the monitor) that turns runs, LM calls and tool calls into spans (`spans`) and
//! metrics, and sends them over OTLP HTTP/protobuf with the official `opentelemetry`
//! crates, through our own reqwest client (`http`).
//!
//! Export never gets in the agent's way: spans go into the SDK's batch processor's bounded
//! queue (full: dropped and counted), a background thread sends them, failures are counted
//! and shown (`status`), and shutdown flushes with a bounded timeout.
//!
//! Settings come from `[telemetry]`, then the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`), then `--otlp-endpoint`. Header
//! values are credentials (Langfuse's Basic auth): they are kept as `Secret`s, sent only
//! as headers, and never logged or shown.

pub mod http;
pub mod server;
pub mod spans;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanProcessor};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::types::event::{Event, EventBus, Journal, JournalError};
use crate::types::secret::Secret;
use crate::types::trace::TraceSalt;

pub use spans::SessionFacts;

/// Spans waiting for export at most; beyond this new ones are dropped (and counted by the
/// SDK) rather than held: export must never grow memory or block the agent.
const QUEUE: usize = 2048;
/// How long shutdown waits for the last spans to go out.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(4);
/// One export's time, retries included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the session's exporter and the service's ([`server::ServerSpans`]) send through:
/// Warden's HTTP client (its TLS rules), the collector's headers, the loss counters, and
/// the resource naming this process.
pub(crate) struct Otlp {
    adapter: http::ReqwestOtlp,
    headers: std::collections::HashMap<String, String>,
    stats: Arc<http::Stats>,
    resource: opentelemetry_sdk::Resource,
}

impl Otlp {
    /// Needs a Tokio runtime (the exports run on it).
    fn new(settings: &Resolved, client: reqwest::Client) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
        let stats = Arc::new(http::Stats::default());
        Ok(Self {
            adapter: http::ReqwestOtlp::new(client, runtime, stats.clone()),
            headers: settings.headers.iter().map(|(k, v)| (k.clone(), v.expose().clone())).collect(),
            stats,
            resource: opentelemetry_sdk::Resource::builder()
                .with_service_name(settings.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        })
    }

    /// The batching span processor sending to `settings.endpoint`/v1/traces: a bounded
    /// queue, counted losses, never blocking the caller.
    fn spans(&self, settings: &Resolved) -> Result<BatchSpanProcessor, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(self.adapter.clone())
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", settings.endpoint))
            .with_headers(self.headers.clone())
            .with_retry_policy(retry())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TelemetryError::Build(e.to_string()))?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(QUEUE)
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let mut processor = BatchSpanProcessor::builder(http::Counted { inner: exporter, stats: self.stats.clone() })
            .with_batch_config(batch)
            .build();
        processor.set_resource(&self.resource);
        Ok(processor)
    }
}

/// A couple of quick retries (a collector restarting), not the recommended minute-long
/// patience: spans that cannot go out within [`EXPORT_TIMEOUT`] are counted as lost.
fn retry() -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::recommended().with_max_retries(2).with_max_delay(Duration::from_millis(500))
}
/// How often metrics are sent.
const METRIC_INTERVAL: Duration = Duration::from_secs(30);

/// `[telemetry]`: where to export, and what. Everything is optional; without an endpoint
/// (here, in `OTEL_EXPORTER_OTLP_ENDPOINT` or `--otlp-endpoint`) nothing is exported.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP base URL (`http://127.0.0.1:6006` for Phoenix); traces go to
    /// `/v1/traces` under it, metrics to `/v1/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Extra headers (credentials: `Authorization = "Basic …"` for Langfuse). Never
    /// written back and never shown.
    #[serde(default, skip_serializing)]
    pub headers: BTreeMap<String, Secret<String>>,
    /// `service.name` of the exported resource (default `warden`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Export tool arguments and the agent's thoughts (default: no).
    #[serde(default)]
    pub capture_content: bool,
    /// Export metrics too (default: yes; a receiver that takes traces only, like Phoenix,
    /// answers 404 to them: counted, not an error).
    #[serde(default = "yes")]
    pub metrics: bool,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for TelemetrySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetrySettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("service_name", &self.service_name)
            .field("capture_content", &self.capture_content)
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// Why telemetry could not start. The session goes on without it when the caller chooses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    #[error("the OTLP endpoint {0:?} is not an http(s) URL: give the collector's base URL, e.g. http://127.0.0.1:4318")]
    BadEndpoint(String),
    #[error("the OTLP endpoint {0} is plain http on a remote host: use https (plain http is allowed only on loopback)")]
    PlainRemote(String),
    #[error("OTEL_EXPORTER_OTLP_HEADERS is not a list of name=value pairs (the entry named {0:?} has no value)")]
    BadHeaders(String),
    #[error("cannot set up the OTLP exporter: {0}")]
    Build(String),
    #[error("OpenTelemetry export needs a Tokio runtime (internal error: started outside one)")]
    NoRuntime,
}

/// Settings with the environment and the flag applied: what export runs with.
#[derive(Clone)]
pub struct Resolved {
    pub endpoint: String,
    pub headers: Vec<(String, Secret<String>)>,
    pub service_name: String,
    pub capture_content: bool,
    pub metrics: bool,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

impl TelemetrySettings {
    /// The settings in effect: `flag` (`--otlp-endpoint`) over the environment (read through
    /// `env`) over `[telemetry]`. `None`: no endpoint anywhere, nothing to export.
    pub fn resolve(
        &self,
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Resolved>, TelemetryError> {
        let env_nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let endpoint = flag
            .map(str::to_string)
            .or_else(|| env_nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .or_else(|| self.endpoint.clone());
        let Some(endpoint) = endpoint else { return Ok(None) };
        let endpoint = check_endpoint(endpoint.trim())?;
        let mut headers: BTreeMap<String, Secret<String>> = self.headers.clone();
        if let Some(list) = env_nonempty("OTEL_EXPORTER_OTLP_HEADERS") {
            for (k, v) in parse_headers(&list)? {
                headers.insert(k, v);
            }
        }
        let service_name =
            env_nonempty("OTEL_SERVICE_NAME").or_else(|| self.service_name.clone()).unwrap_or_else(|| "warden".into());
        Ok(Some(Resolved {
            endpoint,
            headers: headers.into_iter().collect(),
            service_name,
            capture_content: self.capture_content,
            metrics: self.metrics,
        }))
    }
}

/// An http(s) URL, https unless the host is loopback; without a trailing slash.
fn check_endpoint(endpoint: &str) -> Result<String, TelemetryError> {
    let url = url::Url::parse(endpoint).map_err(|_| TelemetryError::BadEndpoint(endpoint.into()))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(TelemetryError::PlainRemote(endpoint.into()));
            }
        }
        _ => return Err(TelemetryError::BadEndpoint(endpoint.into())),
    }
    if url.host().is_none() {
        return Err(TelemetryError::BadEndpoint(endpoint.into()));
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `name=value,name2=value2`, values percent-decoded (the
/// OpenTelemetry spec's format). Values become secrets at once.
fn parse_headers(list: &str) -> Result<Vec<(String, Secret<String>)>, TelemetryError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, value)) = entry.split_once('=') else {
            // Only the name is named in the error: the entry may be a credential.
            let name: String = entry.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            return Err(TelemetryError::BadHeaders(name));
        };
        let value = percent_decode(value.trim());
        out.push((name.trim().to_string(), Secret::new(value)));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What export has done so far, for the console's status bar and a run's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TelemetryStatus {
    /// Where spans go (the base URL; it never carries a credential here).
    pub endpoint: String,
    pub spans_exported: u64,
    /// Export requests for spans that failed, and the spans in them.
    pub span_batches_failed: u64,
    pub spans_lost: u64,
    /// Metric exports that failed (a traces-only receiver answers 404 to each).
    pub metric_exports_failed: u64,
    /// The latest failure, in words (never a header value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl TelemetryStatus {
    /// One line for a run's summary: `otlp URL: 42 spans exported`, or what was lost and
    /// why: `otlp URL: 0 spans exported, 97 lost (cannot send to …: cannot connect)`.
    pub fn line(&self) -> String {
        let mut line = format!("otlp {}: {} spans exported", self.endpoint, self.spans_exported);
        if self.spans_lost > 0 || self.span_batches_failed > 0 {
            let why = self.last_error.as_deref().unwrap_or("the collector did not answer in time");
            line.push_str(&format!(", {} lost ({why})", self.spans_lost));
        }
        if self.metric_exports_failed > 0 {
            line.push_str(&format!(", {} metric exports refused", self.metric_exports_failed));
        }
        line
    }
}

/// Where spans end up: the batch processor in a real session, a test's in-memory exporter.
type Processor = Box<dyn SpanProcessor>;

/// A running exporter, attached to a bus.
pub struct Telemetry {
    mapper: Mutex<spans::Mapper>,
    salt: TraceSalt,
    processor: Processor,
    meters: Option<(opentelemetry_sdk::metrics::SdkMeterProvider, spans::Instruments)>,
    stats: Arc<http::Stats>,
    endpoint: String,
    shut: std::sync::atomic::AtomicBool,
}

impl Telemetry {
    /// Starts export to `settings.endpoint` through `client` (built by the caller with
    /// Warden's TLS rules) and attaches it to `bus`. Needs a Tokio runtime (the requests run
    /// on it).
    pub fn start(
        bus: &EventBus,
        settings: &Resolved,
        client: reqwest::Client,
        facts: SessionFacts,
    ) -> Result<Arc<Self>, TelemetryError> {
        let otlp = Otlp::new(settings, client)?;
        let processor = otlp.spans(settings)?;
        let meters = if settings.metrics {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(otlp.adapter.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(format!("{}/v1/metrics", settings.endpoint))
                .with_headers(otlp.headers.clone())
                .with_retry_policy(retry())
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| TelemetryError::Build(e.to_string()))?;
            let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(http::Counted {
                inner: exporter,
                stats: otlp.stats.clone(),
            })
            .with_interval(METRIC_INTERVAL)
            .build();
            let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
                .with_resource(otlp.resource.clone())
                .with_reader(reader)
                .build();
            Some(provider)
        } else {
            None
        };
        let telemetry = Self::with_processor(
            Box::new(processor),
            meters,
            otlp.stats,
            settings.endpoint.clone(),
            TraceSalt::random(),
            settings.capture_content,
            facts,
        );
        bus.add_watcher(telemetry.clone());
        Ok(telemetry)
    }

    /// An exporter over any span processor and meter provider (tests: the SDK's in-memory
    /// exporters), not yet attached to a bus.
    pub fn with_processor(
        processor: Processor,
        meters: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
        stats: Arc<http::Stats>,
        endpoint: String,
        salt: TraceSalt,
        capture_content: bool,
        facts: SessionFacts,
    ) -> Arc<Self> {
        let meters = meters.map(|p| {
            let instruments = spans::Instruments::new(&p.meter("warden"));
            (p, instruments)
        });
        Arc::new(Self {
            mapper: Mutex::new(spans::Mapper::new(salt, capture_content, facts)),
            salt,
            processor,
            meters,
            stats,
            endpoint,
            shut: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// What this exporter derives its ids from: the client stack puts the same ids into
    /// each request's `traceparent`.
    pub fn salt(&self) -> TraceSalt {
        self.salt
    }

    /// How the session's MCP servers are reached (known once it has connected).
    pub fn set_servers(&self, servers: Vec<crate::types::event::ServerSummary>) {
        self.mapper.lock().set_servers(servers);
    }

    /// What export has done so far. After shutdown, every span handed to export and not
    /// delivered counts as lost (a failed export, a full queue, or the flush timing out).
    pub fn status(&self) -> TelemetryStatus {
        self.stats.status(&self.endpoint, self.shut.load(Ordering::SeqCst))
    }

    /// Ends what is still open, sends what is queued (waiting at most `timeout`), and
    /// stops. Blocking: call it from `spawn_blocking` (or [`Self::shutdown`]) — the export
    /// thread needs the runtime's other threads to send.
    pub fn shutdown_blocking(&self, timeout: Duration) {
        if self.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        // Marked shut first, so nothing new is taken while the last spans go out; the
        // status counts undelivered spans as lost from here on.
        self.end_open();
        let _ = self.processor.force_flush();
        let _ = self.processor.shutdown_with_timeout(timeout);
        if let Some((provider, _)) = &self.meters {
            let _ = provider.force_flush();
            let _ = provider.shutdown_with_timeout(timeout);
        }
    }

    /// Ends every span still open (a run that never finished) as it stands and hands
    /// it to export.
    fn end_open(&self) {
        let mut out = Vec::new();
        self.mapper.lock().end_all(&mut out);
        self.stats.spans_queued.fetch_add(out.len() as u64, Ordering::Relaxed);
        for span in out {
            self.processor.on_end(span);
        }
    }

    /// [`Self::shutdown_blocking`] off the async threads.
    pub async fn shutdown(self: &Arc<Self>, timeout: Duration) {
        let me = self.clone();
        // Bounded twice: the SDK's own timeout, and ours in case a flush ignores it.
        let _ = tokio::time::timeout(
            timeout + Duration::from_secs(1),
            tokio::task::spawn_blocking(move || me.shutdown_blocking(timeout)),
        )
        .await;
    }

    fn take(&self, event: &Event) {
        if self.shut.load(Ordering::Relaxed) {
            return;
        }
        let mut out: Vec<SpanData> = Vec::new();
        self.mapper.lock().on_event(event, &mut out, self.meters.as_ref().map(|(_, i)| i));
        self.stats.spans_queued.fetch_add(out.len() as u64, Ordering::Relaxed);
        for span in out {
            self.processor.on_end(span);
        }
    }
}

impl Journal for Telemetry {
    fn record(&self, event: &Event) -> Result<(), JournalError> {
        self.take(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
