//! Language models: one `Lm` trait (messages in, completion and token usage out) and its
//! providers — OpenAI-compatible chat completions, Anthropic Messages, the deterministic
//! `offline` planner, and `DummyLm` for tests. Model names follow DSPy/LiteLLM:
//! `offline`, `openai/MODEL`, `anthropic/MODEL`, `ollama/MODEL`.

pub mod anthropic;
pub mod dummy;
pub mod offline;
pub mod openai;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
}

/// Why the model gave no completion. Each message is what the operator reads — in the
/// console's chat as the agent's reply, and as a scenario's `error` in `warden run` — so it
/// names the cause and the next step with the real setting to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LmError {
    #[error("{provider}: the API key was rejected (HTTP {status}); check {key_env}")]
    BadKey { provider: &'static str, status: u16, key_env: String },
    #[error("{provider}: no API key: set {0}", provider = .1)]
    NoKey(String, &'static str),
    #[error(
        "{provider}: cannot reach {url}: {reason} — is the server at {url} running? (set it with [agent] base_url or --lm-base-url)"
    )]
    Unreachable { provider: &'static str, url: String, reason: String },
    /// No answer within `[agent] timeout_secs` (not retried: a model that has not answered
    /// in that long is not likely to on a second try, and the operator is waiting).
    #[error(
        "{provider}: the request to {url} timed out after {secs} s — raise [agent] timeout_secs, or check that the server is answering"
    )]
    Timeout { provider: &'static str, url: String, secs: u64 },
    #[error("{provider}: HTTP {status}: {message}")]
    Http { provider: &'static str, status: u16, message: String },
    #[error("{provider}: rate limited (HTTP 429) after {attempts} attempts")]
    RateLimited { provider: &'static str, attempts: u32 },
    #[error("{provider}: unusable response: {0}", provider = .1)]
    BadResponse(String, &'static str),
    #[error("unknown model {0:?}: use offline, openai/MODEL, anthropic/MODEL or ollama/MODEL")]
    UnknownModel(String),
    #[error("DummyLm has no answer left for this prompt")]
    Exhausted,
}

/// A language model. Object-safe so programs can hold `Arc<dyn Lm>`.
pub trait Lm: Send + Sync {
    /// The model's name as shown to users (`offline-planner`, `openai/gpt-4o-mini`, …).
    fn name(&self) -> &str;
    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>>;
    /// Tokens used so far.
    fn usage(&self) -> Usage;
}

/// Running token totals, shared by providers.
#[derive(Default)]
pub struct UsageMeter {
    prompt: AtomicU64,
    completion: AtomicU64,
}

impl UsageMeter {
    pub fn add(&self, u: Usage) {
        self.prompt.fetch_add(u.prompt_tokens, Ordering::Relaxed);
        self.completion.fetch_add(u.completion_tokens, Ordering::Relaxed);
    }

    pub fn total(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt.load(Ordering::Relaxed),
            completion_tokens: self.completion.load(Ordering::Relaxed),
        }
    }
}

/// Where and how to reach a hosted model.
#[derive(Debug, Clone, Default)]
pub struct LmOptions {
    pub base_url: Option<String>,
    /// Environment variable holding the API key (default per provider).
    pub api_key_env: Option<String>,
    pub timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// The key itself, for programmatic use (tests, embedding); normally read from the env.
    pub api_key: Option<crate::types::secret::Secret<String>>,
}

/// Builds a model from its DSPy/LiteLLM-style name.
pub fn from_name(name: &str, opts: &LmOptions) -> Result<Arc<dyn Lm>, LmError> {
    let (provider, model) = name.split_once('/').unwrap_or((name, ""));
    match (provider, model) {
        ("offline", _) => Ok(Arc::new(offline::OfflinePlanner::new())),
        ("openai", m) if !m.is_empty() => {
            let base = opts
                .base_url
                .clone()
                .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
                .unwrap_or_else(|| "https://api.openai.com/v1".into());
            let key_env = opts.api_key_env.clone().unwrap_or_else(|| "OPENAI_API_KEY".into());
            Ok(Arc::new(openai::OpenAiLm::new(name, m, &base, Some(key_env), opts)?))
        }
        ("ollama", m) if !m.is_empty() => {
            let base = opts.base_url.clone().unwrap_or_else(|| "http://localhost:11434/v1".into());
            Ok(Arc::new(openai::OpenAiLm::new(name, m, &base, opts.api_key_env.clone(), opts)?))
        }
        ("anthropic", m) if !m.is_empty() => {
            let base = opts.base_url.clone().unwrap_or_else(|| "https://api.anthropic.com".into());
            let key_env = opts.api_key_env.clone().unwrap_or_else(|| "ANTHROPIC_API_KEY".into());
            Ok(Arc::new(anthropic::AnthropicLm::new(name, m, &base, &key_env, opts)?))
        }
        _ => Err(LmError::UnknownModel(name.to_string())),
    }
}

/// The request timeout when `[agent] timeout_secs` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared HTTP plumbing for hosted providers: timeout, bounded retries on transient
/// failures only (connect errors, 429, 5xx), with backoff; never on 4xx, never on a
/// timeout (the operator has already waited the whole timeout once).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn post_json(
    provider: &'static str,
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &serde_json::Value,
    max_retries: u32,
    key_env: &str,
    timeout: Duration,
) -> Result<serde_json::Value, LmError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut req = http.post(url).json(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(LmError::Timeout { provider, url: url.to_string(), secs: timeout.as_secs() });
            }
            Err(e) if attempt <= max_retries && e.is_connect() => {
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            Err(e) => {
                return Err(LmError::Unreachable {
                    provider,
                    url: url.to_string(),
                    reason: crate::security::tls::describe_reqwest(&e),
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::mcp::classify::parse_retry_after);
        let body = crate::auth::jwks::read_bounded(resp, 8 * 1024 * 1024)
            .await
            .map_err(|e| LmError::BadResponse(e, provider))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| LmError::BadResponse(e.to_string(), provider));
        }
        if status == 401 || status == 403 {
            return Err(LmError::BadKey { provider, status, key_env: key_env.to_string() });
        }
        let transient = status == 429 || status >= 500;
        if transient && attempt <= max_retries {
            let wait = retry_after.unwrap_or_else(|| backoff(attempt)).min(Duration::from_secs(20));
            tokio::time::sleep(wait).await;
            continue;
        }
        if status == 429 {
            return Err(LmError::RateLimited { provider, attempts: attempt });
        }
        return Err(LmError::Http { provider, status, message: error_message(&body) });
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt.min(5)))
}

/// The provider's error message from its JSON error body (both OpenAI and Anthropic use
/// `{"error": {"message": …}}`), never echoing request headers.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

pub(crate) fn api_key(env: &str, provider: &'static str) -> Result<crate::types::secret::Secret<String>, LmError> {
    std::env::var(env)
        .ok()
        .filter(|k| !k.is_empty())
        .map(crate::types::secret::Secret::new)
        .ok_or_else(|| LmError::NoKey(env.to_string(), provider))
}

pub(crate) fn lm_http(opts: &LmOptions) -> Result<reqwest::Client, LmError> {
    crate::security::tls::http_client(
        &crate::security::tls::ClientTls::default(),
        opts.timeout.unwrap_or(DEFAULT_TIMEOUT),
    )
    .map_err(|e| LmError::BadResponse(e.to_string(), "http"))
}

/// A model that reports each call as an `LmCall` event in the run it belongs to (what the
/// OpenTelemetry export turns into `chat` spans). The prompt and completion are not in the
/// event: only the model, its provider, the time taken and the tokens used.
pub struct Reporting<'a> {
    pub lm: &'a dyn Lm,
    pub events: &'a crate::types::event::EventBus,
    pub scope: crate::types::event::Scope,
}

impl Lm for Reporting<'_> {
    fn name(&self) -> &str {
        self.lm.name()
    }

    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        Box::pin(async move {
            let start = std::time::Instant::now();
            let result = self.lm.complete(messages).await;
            let latency_ms = start.elapsed().as_secs_f64() * 1e3;
            let (provider, model) = provider_and_model(self.lm.name());
            // A provider that reports no usage reports zeros: unknown, not "free".
            let usage = result.as_ref().ok().map(|c| c.usage).filter(|u| *u != Usage::default());
            self.events.emit(
                &self.scope,
                crate::types::event::EventKind::LmCall {
                    model: model.to_string(),
                    provider: provider.to_string(),
                    input_tokens: usage.map(|u| u.prompt_tokens),
                    output_tokens: usage.map(|u| u.completion_tokens),
                    latency_ms,
                    error: result.as_ref().err().map(ToString::to_string),
                },
            );
            result
        })
    }

    fn usage(&self) -> Usage {
        self.lm.usage()
    }
}

/// `openai/gpt-4o` → (`openai`, `gpt-4o`); a name without a provider (the offline planner,
/// a test's model) is its own provider's model.
pub fn provider_and_model(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((provider, model)) if !model.is_empty() => (provider, model),
        _ if name == offline::NAME => ("offline", name),
        _ => (name, name),
    }
}
