//! The bearer guard in front of `/mcp`, per the MCP authorization spec and RFC 6750.
//!
//! Order of checks: a bearer token must be present (401 with the RFC 9728
//! `resource_metadata` pointer) and valid (401 `invalid_token`); the client must be within
//! its rate limit (429 + `Retry-After`); a `tools/call` must name a tool whose scopes the
//! token carries (403 `insufficient_scope`, before the tool runs, so no side effect). On
//! success the verified claims ride along in the request extensions for the tools.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::policy;
use super::ratelimit::{RateLimiter, retry_after_secs};
use crate::auth::verify::{VerifiedClaims, Verifier, VerifyError};
use crate::types::event::{DecisionOutcome as Outcome, DecisionReason as Reason};
use crate::types::scope::ScopeSet;

pub struct GuardState {
    /// The server's own decision trail (audit journal attached).
    pub decisions: crate::types::event::EventBus,
    pub verifier: Arc<Verifier>,
    pub limiter: RateLimiter,
    /// The RFC 9728 metadata URL advertised in every challenge.
    pub resource_metadata: String,
    pub max_body_bytes: usize,
}

/// The middleware function (install with `axum::middleware::from_fn_with_state`).
pub async fn bearer_guard(State(g): State<Arc<GuardState>>, req: Request, next: Next) -> Response {
    // Anything that is not one usable Bearer token (no header, another scheme, an empty or
    // repeated one) gets the full challenge, so any client can discover the authorization
    // server from it (RFC 6750 §3, MCP authorization).
    let Some(token) = bearer_token(req.headers()).map(str::to_string) else {
        return challenge(&g, None);
    };
    let claims = match g.verifier.verify(&token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(target: "warden::service::decision", outcome = "denied", reason = e.code().as_str(), "invalid token");
            decide(&g, "-", None, Outcome::InvalidToken, Reason::Token(e.code()), None, ScopeSet::new());
            return challenge(&g, Some(&e));
        }
    };
    if let Err(wait) = g.limiter.check(&claims.client_id) {
        tracing::info!(target: "warden::service::decision", outcome = "rate_limited", client_id = %claims.client_id, fingerprint = %claims.fingerprint, "rate limited");
        decide(
            &g,
            &claims.client_id,
            None,
            Outcome::RateLimited,
            Reason::TokenBucketEmpty,
            Some(&claims),
            ScopeSet::new(),
        );
        return rate_limited(retry_after_secs(wait));
    }
    if req.method() != Method::POST {
        return forward(req, claims, next).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, g.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return payload_too_large(g.max_body_bytes),
    };
    for tool in called_tools(&bytes) {
        let Some(required) = policy::required_scopes(&tool) else {
            continue;
        };
        let missing = claims.scope.missing(&required);
        if !missing.is_empty() {
            tracing::info!(target: "warden::service::decision", outcome = "denied", reason = "insufficient_scope", client_id = %claims.client_id, tool = %tool, missing = %missing, fingerprint = %claims.fingerprint, "tool call denied");
            decide(
                &g,
                &claims.client_id,
                Some(&tool),
                Outcome::Denied,
                Reason::InsufficientScope,
                Some(&claims),
                missing.clone(),
            );
            return insufficient_scope(&g, &tool, &required, &missing);
        }
        // Allowed calls are the bulk of traffic and each is already in the audit log; the
        // text log keeps them at debug so it stays readable (and cheap) under load.
        tracing::debug!(target: "warden::service::decision", outcome = "allowed", client_id = %claims.client_id, tool = %tool, fingerprint = %claims.fingerprint, "tool call allowed");
        decide(
            &g,
            &claims.client_id,
            Some(&tool),
            Outcome::Allowed,
            Reason::ScopesPresent,
            Some(&claims),
            ScopeSet::new(),
        );
    }
    forward(Request::from_parts(parts, Body::from(bytes)), claims, next).await
}

/// Records one decision in the server's audit trail (and nowhere else: the bus has no
/// other subscribers on the server).
fn decide(
    g: &GuardState,
    client_id: &str,
    tool: Option<&str>,
    outcome: Outcome,
    reason: Reason,
    claims: Option<&VerifiedClaims>,
    missing: ScopeSet,
) {
    g.decisions.emit(
        &crate::types::event::Scope::default(),
        crate::types::event::EventKind::ServiceDecision {
            client_id: client_id.to_string(),
            tool: tool.map(str::to_string),
            outcome,
            reason,
            detail: None,
            fingerprint: claims.map(|c| c.fingerprint.clone()),
            missing,
        },
    );
}

async fn forward(mut req: Request, claims: Arc<VerifiedClaims>, next: Next) -> Response {
    req.extensions_mut().insert(claims);
    next.run(req).await
}

/// The one Bearer token in the request, if there is exactly one usable one (not repeated,
/// ASCII, scheme `Bearer` in any case, non-empty, no spaces).
fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    let usable = scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' ');
    usable.then_some(token)
}

/// Names of the tools a JSON-RPC message (or batch) calls. Unparseable bodies yield none
/// and go on to the MCP layer, which answers them with a JSON-RPC parse error.
///
/// Only `method` and `params.name` are read (borrowed where the JSON has no escapes); the
/// rest of the message is skipped without building a tree, since rmcp parses it properly
/// next.
fn called_tools(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        /// Raw, so a message whose params are not an object does not spoil a whole batch.
        #[serde(borrow)]
        params: Option<&'a serde_json::value::RawValue>,
    }
    fn tool_name(params: &serde_json::value::RawValue) -> Option<String> {
        serde_json::from_str::<Params>(params.get()).ok()?.name.map(|n| n.into_owned())
    }
    // A batch is an array; peeking beats an untagged enum, which would buffer the whole body.
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if batch {
        serde_json::from_slice::<Vec<Message>>(body)
    } else {
        serde_json::from_slice::<Message>(body).map(|m| vec![m])
    };
    let Ok(messages) = parsed else {
        return Vec::new();
    };
    messages
        .into_iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| tool_name(m.params?))
        .collect()
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn challenge(g: &GuardState, err: Option<&VerifyError>) -> Response {
    let value = match err {
        None => format!("Bearer resource_metadata=\"{}\"", g.resource_metadata),
        Some(e) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
            quoted(&e.to_string()),
            g.resource_metadata
        ),
    };
    let body = match err {
        None => {
            json!({"error": "unauthorized", "error_description": "a bearer access token is required"})
        }
        Some(e) => json!({"error": "invalid_token", "error_description": e.to_string()}),
    };
    with_www_authenticate(StatusCode::UNAUTHORIZED, &value, body)
}

fn insufficient_scope(g: &GuardState, tool: &str, required: &ScopeSet, missing: &ScopeSet) -> Response {
    let value = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{required}\", resource_metadata=\"{}\"",
        g.resource_metadata
    );
    let body = json!({
        "error": "insufficient_scope",
        "error_description": format!("tool {tool} requires scope {required}; the token lacks {missing}"),
        "tool": tool,
        "required_scopes": required.to_vec(),
        "missing_scopes": missing.to_vec(),
    });
    with_www_authenticate(StatusCode::FORBIDDEN, &value, body)
}

fn with_www_authenticate(status: StatusCode, value: &str, body: Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn rate_limited(retry_after: u64) -> Response {
    let body = json!({"error": "rate_limited", "error_description": format!("too many requests; retry after {retry_after} s")});
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    resp
}

pub(super) fn payload_too_large(limit: usize) -> Response {
    let body =
        json!({"error": "payload_too_large", "error_description": format!("request body exceeds {limit} bytes")});
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tool_calls_in_single_and_batched_messages() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"create_support_ticket","arguments":{}}}"#;
        assert_eq!(called_tools(one), vec!["create_support_ticket"]);
        let batch = br#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"a"}},{"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(called_tools(batch), vec!["a", "b"]);
        assert!(called_tools(b"not json").is_empty());
        // An escaped name is still read (so it cannot slip past the scope check), and a
        // message with non-object params does not hide the calls batched with it.
        let escaped = br#"{"method":"tools/call","params":{"name":"create\u005fsupport_ticket"}}"#;
        assert_eq!(called_tools(escaped), vec!["create_support_ticket"]);
        let mixed = br#" [{"method":"ping","params":[1,2]},{"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(called_tools(mixed), vec!["b"]);
    }

    #[test]
    fn bearer_parsing_follows_rfc6750() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        assert_eq!(bearer_token(&h), Some("abc.def.ghi"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
        assert_eq!(bearer_token(&h), Some("abc.def.ghi"));
        for unusable in ["Basic Zm9vOmJhcg==", "Bearer ", "Bearer", "abc.def.ghi", "Bearer a b"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(unusable));
            assert_eq!(bearer_token(&h), None, "{unusable:?}");
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def.ghi"));
        assert_eq!(bearer_token(&h), None, "two Authorization headers");
    }
}
