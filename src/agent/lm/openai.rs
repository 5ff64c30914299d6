//! OpenAI-compatible chat completions: OpenAI, Ollama, vLLM, LM Studio, llama.cpp server.
//! `POST {base}/chat/completions`; the key (if any) comes from the environment variable
//! named in the config and goes only into the Authorization header.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Completion, Lm, LmError, LmOptions, Message, Usage, UsageMeter, api_key, lm_http, post_json};
use crate::types::secret::Secret;

pub struct OpenAiLm {
    name: String,
    model: String,
    url: String,
    /// The key, or why there is none: a missing key is reported when the model is first
    /// asked (as that run's error, with the variable to set), so the console still opens
    /// and says what to do instead of refusing to start.
    key: Result<Option<Secret<String>>, LmError>,
    key_env: String,
    http: reqwest::Client,
    opts: LmOptions,
    meter: UsageMeter,
}

impl OpenAiLm {
    /// `key_env: None` means no key is needed (local servers such as Ollama).
    pub fn new(
        name: &str,
        model: &str,
        base_url: &str,
        key_env: Option<String>,
        opts: &LmOptions,
    ) -> Result<Self, LmError> {
        let key = match &key_env {
            _ if opts.api_key.is_some() => Ok(opts.api_key.clone()),
            Some(env) if name.starts_with("openai/") => api_key(env, "openai").map(Some),
            Some(env) => Ok(std::env::var(env).ok().filter(|k| !k.is_empty()).map(Secret::new)),
            None => Ok(None),
        };
        Ok(Self {
            name: name.to_string(),
            model: model.to_string(),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            key,
            key_env: key_env.unwrap_or_else(|| "the API key variable".into()),
            http: lm_http(opts)?,
            opts: opts.clone(),
            meter: UsageMeter::default(),
        })
    }
}

impl Lm for OpenAiLm {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        Box::pin(async move {
            let mut body = json!({"model": self.model, "messages": messages});
            if let Some(t) = self.opts.temperature {
                body["temperature"] = json!(t);
            }
            if let Some(m) = self.opts.max_tokens {
                body["max_tokens"] = json!(m);
            }
            let key = self.key.as_ref().map_err(Clone::clone)?;
            let headers: Vec<(&str, String)> =
                key.iter().map(|k| ("authorization", format!("Bearer {}", k.expose()))).collect();
            let v = post_json(
                "openai",
                &self.http,
                &self.url,
                &headers,
                &body,
                self.opts.max_retries.unwrap_or(2),
                &self.key_env,
                self.opts.timeout.unwrap_or(super::DEFAULT_TIMEOUT),
            )
            .await?;
            let text = v
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or_else(|| LmError::BadResponse("no choices[0].message.content".into(), "openai"))?
                .to_string();
            let usage = Usage {
                prompt_tokens: v.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
                completion_tokens: v.pointer("/usage/completion_tokens").and_then(Value::as_u64).unwrap_or(0),
            };
            self.meter.add(usage);
            Ok(Completion { text, usage })
        })
    }

    fn usage(&self) -> Usage {
        self.meter.total()
    }
}
