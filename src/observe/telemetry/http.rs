//! The OTLP exporters' HTTP client and their failure accounting.
//!
//! `opentelemetry-otlp` sends through any `opentelemetry_http::HttpClient`. Ours wraps the
//! reqwest client the caller built with Warden's TLS rules (its CA handling, rustls with
//! aws-lc), so export adds no second HTTP stack. The SDK's batch span processor and
//! periodic metric reader run exports on their own threads and drive the future with a
//! plain executor, where reqwest (which needs Tokio) cannot run: the request is therefore
//! spawned onto the Tokio runtime that was current when telemetry started, and the export
//! thread waits for its join handle (which any executor can poll).
//!
//! `Counted` wraps an exporter and counts what it could not deliver, for the console's
//! status bar and the headless run's summary: export failures are shown, never fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use parking_lot::Mutex;

/// What export delivered and what it could not, so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) spans_exported: AtomicU64,
    pub(crate) span_batches_failed: AtomicU64,
    pub(crate) spans_lost: AtomicU64,
    pub(crate) metric_exports_failed: AtomicU64,
    /// Spans handed to the batch processor.
    pub(crate) spans_queued: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    /// The figures; `finished`: export has shut down, so what was queued and not delivered
    /// is lost.
    pub(crate) fn status(&self, endpoint: &str, finished: bool) -> super::TelemetryStatus {
        let exported = self.spans_exported.load(Ordering::Relaxed);
        let mut lost = self.spans_lost.load(Ordering::Relaxed);
        if finished {
            lost = lost.max(self.spans_queued.load(Ordering::Relaxed).saturating_sub(exported));
        }
        super::TelemetryStatus {
            endpoint: endpoint.to_string(),
            spans_exported: exported,
            span_batches_failed: self.span_batches_failed.load(Ordering::Relaxed),
            spans_lost: lost,
            metric_exports_failed: self.metric_exports_failed.load(Ordering::Relaxed),
            last_error: self.last_error(),
        }
    }

    fn failed(&self, what: String) {
        *self.last_error.lock() = Some(what);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

/// The reqwest client, used from the SDK's export threads.
#[derive(Debug, Clone)]
pub struct ReqwestOtlp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    stats: Arc<Stats>,
}

impl ReqwestOtlp {
    pub(crate) fn new(client: reqwest::Client, runtime: tokio::runtime::Handle, stats: Arc<Stats>) -> Self {
        Self { client, runtime, stats }
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOtlp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let sent = self.runtime.spawn(async move {
            // Headers are copied as they are (the configured ones carry credentials); none
            // of them is ever put into an error message.
            let response = client.request(parts.method, &url).headers(parts.headers).body(body).send().await;
            let response = response.map_err(|e| describe(&url, &e))?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await.map_err(|e| describe(&url, &e))?;
            Ok::<_, String>((status, headers, body))
        });
        let (status, headers, body) = match sent.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => {
                self.stats.failed(why.clone());
                return Err(why.into());
            }
            Err(e) => return Err(format!("the export task stopped: {e}").into()),
        };
        let mut response = Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// A transport failure in words, without the request's headers (reqwest never puts them
/// in its errors) and without any query string (an endpoint may carry a key there).
fn describe(url: &str, e: &reqwest::Error) -> String {
    let shown = url.split('?').next().unwrap_or(url);
    let cause = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = s.to_string();
            source = s.source();
        }
        text
    };
    format!("cannot send to {shown}: {cause}")
}

/// An exporter whose failures are counted in [`Stats`].
#[derive(Debug)]
pub struct Counted<E> {
    pub(crate) inner: E,
    pub(crate) stats: Arc<Stats>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                self.stats.spans_exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.span_batches_failed.fetch_add(1, Ordering::Relaxed);
                self.stats.spans_lost.fetch_add(n, Ordering::Relaxed);
                if self.stats.last_error.lock().is_none() {
                    self.stats.failed(format!("span export failed: {e}"));
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        if result.is_err() {
            // A receiver that takes traces only (Phoenix) answers 404 here every interval:
            // counted, shown once in the status, never logged per attempt.
            self.stats.metric_exports_failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
