//! Anthropic Messages API: `POST {base}/v1/messages` with `x-api-key` and
//! `anthropic-version`. System messages go in the top-level `system` field.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Completion, Lm, LmError, LmOptions, Message, Role, Usage, UsageMeter, api_key, lm_http, post_json};
use crate::types::secret::Secret;

pub struct AnthropicLm {
    name: String,
    model: String,
    url: String,
    /// The key, or why there is none (reported when the model is first asked, as in
    /// `OpenAiLm`).
    key: Result<Secret<String>, LmError>,
    key_env: String,
    http: reqwest::Client,
    opts: LmOptions,
    meter: UsageMeter,
}

impl AnthropicLm {
    pub fn new(name: &str, model: &str, base_url: &str, key_env: &str, opts: &LmOptions) -> Result<Self, LmError> {
        Ok(Self {
            name: name.to_string(),
            model: model.to_string(),
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            key: match &opts.api_key {
                Some(k) => Ok(k.clone()),
                None => api_key(key_env, "anthropic"),
            },
            key_env: key_env.to_string(),
            http: lm_http(opts)?,
            opts: opts.clone(),
            meter: UsageMeter::default(),
        })
    }
}

impl Lm for AnthropicLm {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        Box::pin(async move {
            let system: Vec<&str> =
                messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
            let turns: Vec<Value> = messages
                .iter()
                .filter(|m| m.role != Role::System)
                .map(|m| json!({"role": if m.role == Role::Assistant { "assistant" } else { "user" }, "content": m.content}))
                .collect();
            let mut body =
                json!({"model": self.model, "max_tokens": self.opts.max_tokens.unwrap_or(1024), "messages": turns});
            if !system.is_empty() {
                body["system"] = json!(system.join("\n\n"));
            }
            if let Some(t) = self.opts.temperature {
                body["temperature"] = json!(t);
            }
            let key = self.key.as_ref().map_err(Clone::clone)?;
            let headers = vec![("x-api-key", key.expose().clone()), ("anthropic-version", "2023-06-01".to_string())];
            let v = post_json(
                "anthropic",
                &self.http,
                &self.url,
                &headers,
                &body,
                self.opts.max_retries.unwrap_or(2),
                &self.key_env,
                self.opts.timeout.unwrap_or(super::DEFAULT_TIMEOUT),
            )
            .await?;
            let text: String = v
                .get("content")
                .and_then(Value::as_array)
                .ok_or_else(|| LmError::BadResponse("no content blocks".into(), "anthropic"))?
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            let usage = Usage {
                prompt_tokens: v.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0),
                completion_tokens: v.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0),
            };
            self.meter.add(usage);
            Ok(Completion { text, usage })
        })
    }

    fn usage(&self) -> Usage {
        self.meter.total()
    }
}
