//! The bearer guard in front of `/mcp`, per the MCP authorization spec and RFC 6750.
//!
//! Order of checks: a bearer token must be present (401 with the RFC 9728
//! `resource_metadata` pointer) and valid (401 `invalid_token`); the client must be within
//! its rate limit (429 + `Retry-After`); a `tools/call` must name a tool whose scopes the
//! token carries (403 `insufficient_scope`, before the tool runs, so no side effect). On
//! success the verified claims ride along in the request extensions for the tools.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::policy;
use super::ratelimit::{Limited, RateLimiter, retry_after_secs};
use crate::auth::verify::{VerifiedClaims, Verifier, VerifyError};
use crate::observe::telemetry::server::{Decision, Incoming, ServerSpans};
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
    /// Browser origins allowed besides loopback ones, lowercased, no trailing slash.
    pub allowed_origins: Vec<String>,
    /// Requests with unusable tokens, counted per peer instead of recorded one by one.
    pub denials: Arc<super::denials::DenialCounter>,
    /// Access tokens revoked at the embedded issuer (RFC 7009), by `jti`.
    pub revoked: Option<Arc<crate::auth::revoked::RevokedAccess>>,
    /// OpenTelemetry export on: tool calls continue the caller's trace (`_meta.traceparent`).
    pub telemetry: Option<Arc<ServerSpans>>,
}

/// The middleware function (install with `axum::middleware::from_fn_with_state`).
pub async fn bearer_guard(State(g): State<Arc<GuardState>>, req: Request, next: Next) -> Response {
    // Before any credential is looked at: a page on a foreign origin (DNS rebinding, a
    // malicious site in the operator's browser) and ambiguous authorities are refused.
    if let Err(refusal) = check_origin_and_authority(req.headers(), req.uri(), &g.allowed_origins) {
        tracing::info!(target: "warden::service::decision", outcome = "denied", reason = refusal.describe(), "request refused");
        return refusal.into_response();
    }
    // Anything that is not one usable Bearer token (no header, another scheme, an empty or
    // repeated one) gets the full challenge, so any client can discover the authorization
    // server from it (RFC 6750 §3, MCP authorization).
    let Some(token) = bearer_token(req.headers()).map(str::to_string) else {
        return challenge(&g, None);
    };
    let claims = match g.verifier.verify(&token).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(target: "warden::service::decision", outcome = "denied", reason = e.code().as_str(), "invalid token");
            let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            if let Err(unrecorded) = g.denials.deny(peer, e.code().as_str()) {
                return audit_unavailable(&unrecorded);
            }
            return challenge(&g, Some(&e));
        }
    };
    // After verification (so a forged jti costs a signature check, like any bad token).
    if g.revoked.as_ref().is_some_and(|r| r.is_revoked(&claims.jti)) {
        tracing::debug!(target: "warden::service::decision", outcome = "denied", reason = "revoked", "revoked token");
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        if let Err(unrecorded) = g.denials.deny(peer, "revoked") {
            return audit_unavailable(&unrecorded);
        }
        return revoked_token(&g);
    }
    match g.limiter.check(&claims.client_id).await {
        Ok(()) => {}
        Err(Limited::Unavailable(why)) => {
            // Fail closed: without the shared budget nobody knows this client is within it.
            tracing::warn!(target: "warden::service::decision", outcome = "denied", reason = "rate_limit_unavailable", client_id = %claims.client_id, error = %why, "rate limit unavailable");
            if let Err(e) = decide(
                &g,
                &claims.client_id,
                None,
                Outcome::Denied,
                Reason::RateLimitUnavailable,
                Some(&claims),
                ScopeSet::new(),
            ) {
                return audit_unavailable(&e);
            }
            refused_unread(&g, &req, &claims, Outcome::Denied, "rate_limit_unavailable", 503);
            return rate_limit_unavailable();
        }
        Err(Limited::Wait(wait)) => {
            tracing::info!(target: "warden::service::decision", outcome = "rate_limited", client_id = %claims.client_id, fingerprint = %claims.fingerprint, "rate limited");
            if let Err(e) = decide(
                &g,
                &claims.client_id,
                None,
                Outcome::RateLimited,
                Reason::TokenBucketEmpty,
                Some(&claims),
                ScopeSet::new(),
            ) {
                return audit_unavailable(&e);
            }
            refused_unread(&g, &req, &claims, Outcome::RateLimited, "token_bucket_empty", 429);
            return rate_limited(retry_after_secs(wait));
        }
    }
    if req.method() != Method::POST {
        return forward(req, claims, next).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, g.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return payload_too_large(g.max_body_bytes),
    };
    let tools = match called_tools(&bytes) {
        Ok(tools) if !foreign_charset(&parts.headers) => tools,
        result => {
            let why = result.err().unwrap_or(Unreadable::Charset);
            tracing::info!(target: "warden::service::decision", outcome = "denied", reason = "malformed_request", client_id = %claims.client_id, why = why.describe(), "request refused");
            if let Err(e) = decide(
                &g,
                &claims.client_id,
                None,
                Outcome::Denied,
                Reason::MalformedRequest,
                Some(&claims),
                ScopeSet::new(),
            ) {
                return audit_unavailable(&e);
            }
            return malformed(why);
        }
    };
    // Only with export on is the message read again, for its trace context.
    let traced = match (&g.telemetry, tools.first()) {
        (Some(spans), Some(tool)) => Some((traced_call(spans, &bytes, &parts.headers), tool.clone())),
        _ => None,
    };
    for tool in tools {
        let Some(required) = policy::required_scopes(&tool) else {
            continue;
        };
        let missing = claims.scope.missing(&required);
        if !missing.is_empty() {
            tracing::info!(target: "warden::service::decision", outcome = "denied", reason = "insufficient_scope", client_id = %claims.client_id, tool = %tool, missing = %missing, fingerprint = %claims.fingerprint, "tool call denied");
            if let Err(e) = decide(
                &g,
                &claims.client_id,
                Some(&tool),
                Outcome::Denied,
                Reason::InsufficientScope,
                Some(&claims),
                missing.clone(),
            ) {
                return audit_unavailable(&e);
            }
            if let Some((incoming, _)) = &traced {
                incoming.decided(
                    Decision {
                        tool: Some(&tool),
                        outcome: Outcome::Denied.as_str(),
                        reason: "insufficient_scope",
                        missing: &missing,
                        client_id: &claims.client_id,
                        fingerprint: Some(&claims.fingerprint),
                        status: 403,
                    },
                    (parts.method.as_str(), parts.uri.path()),
                );
            }
            return insufficient_scope(&g, &tool, &required, &missing);
        }
        // Allowed calls are the bulk of traffic and each is already in the audit log; the
        // text log keeps them at debug so it stays readable (and cheap) under load.
        tracing::debug!(target: "warden::service::decision", outcome = "allowed", client_id = %claims.client_id, tool = %tool, fingerprint = %claims.fingerprint, "tool call allowed");
        // Fail closed: a call whose "allowed" cannot be recorded does not run.
        if let Err(e) = decide(
            &g,
            &claims.client_id,
            Some(&tool),
            Outcome::Allowed,
            Reason::ScopesPresent,
            Some(&claims),
            ScopeSet::new(),
        ) {
            return audit_unavailable(&e);
        }
    }
    let Some((incoming, tool)) = traced else {
        return forward(Request::from_parts(parts, Body::from(bytes)), claims, next).await;
    };
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    let mut req = Request::from_parts(parts, Body::from(bytes));
    // The tool handler hangs its store query's span under this request's.
    req.extensions_mut().insert(incoming.clone());
    let response = forward(req, claims.clone(), next).await;
    incoming.decided(
        Decision {
            tool: Some(&tool),
            outcome: Outcome::Allowed.as_str(),
            reason: "scopes_present",
            missing: &ScopeSet::new(),
            client_id: &claims.client_id,
            fingerprint: Some(&claims.fingerprint),
            status: response.status().as_u16(),
        },
        (method.as_str(), &path),
    );
    response
}

/// The trace context and JSON-RPC id of a single `tools/call` message (`params._meta.traceparent`,
/// else the HTTP header); a batch or anything unreadable without the header starts a trace
/// of its own.
fn traced_call(spans: &Arc<ServerSpans>, body: &[u8], headers: &http::HeaderMap) -> Incoming {
    #[derive(serde::Deserialize)]
    struct Meta {
        traceparent: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        id: Option<Value>,
        params: Option<Params>,
    }
    let message = serde_json::from_slice::<Message>(body).ok();
    let traceparent = message.as_ref().and_then(|m| m.params.as_ref()?.meta.as_ref()?.traceparent.clone());
    let id = message.and_then(|m| m.id).map(|id| match id {
        Value::String(s) => s,
        other => other.to_string(),
    });
    spans.incoming(traceparent.as_deref().or_else(|| header_traceparent(headers)), id)
}

/// The W3C `traceparent` HTTP header, when there is exactly one.
fn header_traceparent(headers: &http::HeaderMap) -> Option<&str> {
    super::direct::single(headers, "traceparent")
}

/// With export on, the SERVER span of a request refused before its body was read (the
/// rate limit): it continues the client's trace from the `traceparent` header, and is named
/// by method and path since the tool is not known yet.
fn refused_unread(g: &GuardState, req: &Request, claims: &VerifiedClaims, outcome: Outcome, reason: &str, status: u16) {
    let Some(spans) = &g.telemetry else { return };
    spans.incoming(header_traceparent(req.headers()), None).decided(
        Decision {
            tool: None,
            outcome: outcome.as_str(),
            reason,
            missing: &ScopeSet::new(),
            client_id: &claims.client_id,
            fingerprint: Some(&claims.fingerprint),
            status,
        },
        (req.method().as_str(), req.uri().path()),
    );
}

/// Records one decision in the server's audit trail (and nowhere else: the bus has no
/// other subscribers on the server). `Err`: not recorded; the request must be refused.
fn decide(
    g: &GuardState,
    client_id: &str,
    tool: Option<&str>,
    outcome: Outcome,
    reason: Reason,
    claims: Option<&VerifiedClaims>,
    missing: ScopeSet,
) -> Result<(), crate::types::event::JournalError> {
    g.decisions.emit_recorded(
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
    )?;
    Ok(())
}

/// 503 with a JSON-RPC error: the decision could not be recorded, so nothing was executed
/// (the message names the failure and what to check).
fn audit_unavailable(e: &crate::types::event::JournalError) -> Response {
    tracing::error!(target: "warden::service::decision", error = %e, "request refused: its decision cannot be recorded");
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": AUDIT_UNAVAILABLE, "message": e.message()},
    });
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The JSON-RPC error code (server-defined range) of a request refused because its
/// decision could not be recorded.
pub const AUDIT_UNAVAILABLE: i64 = -32050;

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

/// A request refused before authentication: where it came from or which host it names
/// is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// An `Origin` that is neither loopback nor in `[service] allowed_origins`.
    ForeignOrigin,
    /// Two `Host` or `Origin` headers, or an HTTP/2 `:authority` that disagrees with `Host`.
    AmbiguousAuthority,
}

impl Refusal {
    fn describe(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "this origin may not call the MCP endpoint; add it to [service] allowed_origins",
            Self::AmbiguousAuthority => "the request names more than one host or origin",
        }
    }

    fn into_response(self) -> Response {
        let status = match self {
            Self::ForeignOrigin => StatusCode::FORBIDDEN,
            Self::AmbiguousAuthority => StatusCode::BAD_REQUEST,
        };
        invalid_request(status, self.describe())
    }
}

/// Checks `Origin` (absent, loopback, or allowed) and that the request names one host.
fn check_origin_and_authority(
    headers: &http::HeaderMap,
    uri: &http::Uri,
    allowed_origins: &[String],
) -> Result<(), Refusal> {
    let hosts: Vec<&HeaderValue> = headers.get_all(header::HOST).iter().collect();
    if hosts.len() > 1 || headers.get_all(header::ORIGIN).iter().count() > 1 {
        return Err(Refusal::AmbiguousAuthority);
    }
    if let (Some(authority), Some(host)) = (uri.authority(), hosts.first())
        && !host.to_str().is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str()))
    {
        return Err(Refusal::AmbiguousAuthority);
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| Refusal::ForeignOrigin)?.trim_end_matches('/').to_ascii_lowercase();
    let loopback = url::Url::parse(&origin).is_ok_and(|u| crate::security::urls::is_loopback(&u));
    if loopback || allowed_origins.contains(&origin) { Ok(()) } else { Err(Refusal::ForeignOrigin) }
}

/// Why the guard cannot read a request exactly. Such a request is refused (400) and
/// recorded: a body two parsers could read differently (a duplicate `params.name`) must not
/// slip past the scope check to a parser that reads it another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// Not one JSON-RPC message or batch, or a key given twice.
    NotJsonRpc,
    /// A `tools/call` without exactly one string `params.name`.
    ToolCallWithoutName,
    /// A charset other than UTF-8.
    Charset,
}

impl Unreadable {
    fn describe(self) -> &'static str {
        match self {
            Self::NotJsonRpc => "the body is not one JSON-RPC message or batch (or repeats a key)",
            Self::ToolCallWithoutName => "a tools/call must name exactly one tool in params.name",
            Self::Charset => "the body must be JSON in UTF-8",
        }
    }
}

/// A `Content-Type` that names a charset other than UTF-8 (JSON is UTF-8, RFC 8259 §8.1).
fn foreign_charset(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::CONTENT_TYPE).iter().any(|v| {
        let v = v.to_str().unwrap_or("").to_ascii_lowercase();
        v.split(';').skip(1).filter_map(|p| p.trim().strip_prefix("charset=")).any(|c| {
            let c = c.trim_matches('"');
            c != "utf-8" && c != "utf8"
        })
    })
}

/// Names of the tools a JSON-RPC message (or batch) calls.
///
/// Only `method` and `params.name` are read (borrowed where the JSON has no escapes); the
/// rest of the message is skipped without building a tree, since rmcp parses it properly
/// next.
fn called_tools(body: &[u8]) -> Result<Vec<String>, Unreadable> {
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
    fn tool_name(params: Option<&serde_json::value::RawValue>) -> Result<String, Unreadable> {
        let params = params.ok_or(Unreadable::ToolCallWithoutName)?;
        // A duplicate `name` is a parse error here (serde refuses repeated fields).
        let parsed = serde_json::from_str::<Params>(params.get()).map_err(|_| Unreadable::ToolCallWithoutName)?;
        parsed.name.map(|n| n.into_owned()).ok_or(Unreadable::ToolCallWithoutName)
    }
    // A batch is an array; peeking beats an untagged enum, which would buffer the whole body.
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if batch {
        serde_json::from_slice::<Vec<Message>>(body)
    } else {
        serde_json::from_slice::<Message>(body).map(|m| vec![m])
    };
    let messages = parsed.map_err(|_| Unreadable::NotJsonRpc)?;
    messages.into_iter().filter(|m| m.method.as_deref() == Some("tools/call")).map(|m| tool_name(m.params)).collect()
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

/// 401 for a token that verified but was revoked at the issuer (RFC 6750 `invalid_token`).
fn revoked_token(g: &GuardState) -> Response {
    let description = "the access token was revoked at the authorization server";
    let value = format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{}\"",
        g.resource_metadata
    );
    with_www_authenticate(
        StatusCode::UNAUTHORIZED,
        &value,
        json!({"error": "invalid_token", "error_description": description}),
    )
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

/// 503: the shared rate limit's database did not answer, so the request is not served.
fn rate_limit_unavailable() -> Response {
    let body = json!({"error": "temporarily_unavailable", "error_description": "the rate limit cannot be checked (its database is unreachable); retry in a few seconds"});
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
    resp
}

fn malformed(why: Unreadable) -> Response {
    invalid_request(StatusCode::BAD_REQUEST, why.describe())
}

/// An RFC 6749-style `invalid_request` answer for a request refused before any tool ran.
fn invalid_request(status: StatusCode, description: &str) -> Response {
    let body = json!({"error": "invalid_request", "error_description": description});
    (status, axum::Json(body)).into_response()
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
        let names = |b: &[u8]| called_tools(b).map(|v| v.join(","));
        assert_eq!(names(one), Ok("create_support_ticket".into()));
        let batch = br#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"a"}},{"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(names(batch), Ok("a,b".into()));
        assert_eq!(names(b"not json"), Err(Unreadable::NotJsonRpc));
        // An escaped name is still read (so it cannot slip past the scope check), and a
        // message with non-object params does not hide the calls batched with it.
        let escaped = br#"{"method":"tools/call","params":{"name":"create\u005fsupport_ticket"}}"#;
        assert_eq!(names(escaped), Ok("create_support_ticket".into()));
        let mixed = br#" [{"method":"ping","params":[1,2]},{"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(names(mixed), Ok("b".into()));
    }

    /// Regression (issue 11, defect 8): `Origin` was never validated; two `Host` headers and
    /// an `:authority` that disagrees with `Host` were accepted.
    #[test]
    fn origins_and_authorities_are_checked() {
        let allowed = vec!["https://app.example".to_string()];
        let uri: http::Uri = "/mcp".parse().unwrap();
        let check = |pairs: &[(&str, &str)], uri: &http::Uri| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            check_origin_and_authority(&h, uri, &allowed)
        };
        assert_eq!(check(&[], &uri), Ok(()), "no Origin: not a browser");
        assert_eq!(check(&[("origin", "http://localhost:6274")], &uri), Ok(()));
        assert_eq!(check(&[("origin", "http://127.0.0.1:3000")], &uri), Ok(()));
        assert_eq!(check(&[("origin", "https://APP.example/")], &uri), Ok(()));
        assert_eq!(check(&[("origin", "https://evil.example")], &uri), Err(Refusal::ForeignOrigin));
        assert_eq!(check(&[("origin", "http://localhost.evil.example")], &uri), Err(Refusal::ForeignOrigin));
        assert_eq!(check(&[("origin", "null")], &uri), Err(Refusal::ForeignOrigin));
        let two_hosts = [("host", "127.0.0.1:8001"), ("host", "evil.example")];
        assert_eq!(check(&two_hosts, &uri), Err(Refusal::AmbiguousAuthority));
        let h2: http::Uri = "https://127.0.0.1:8001/mcp".parse().unwrap();
        assert_eq!(check(&[("host", "127.0.0.1:8001")], &h2), Ok(()));
        assert_eq!(check(&[("host", "evil.example")], &h2), Err(Refusal::AmbiguousAuthority));
    }

    /// Regression (issue 11, defect 10): a body the guard could not parse (here a repeated
    /// `params.name`) was let through unchecked and unrecorded.
    #[test]
    fn what_cannot_be_read_exactly_is_refused() {
        let dup_name =
            br#"{"method":"tools/call","params":{"name":"get_customer_info","name":"create_support_ticket"}}"#;
        assert_eq!(called_tools(dup_name), Err(Unreadable::ToolCallWithoutName));
        let dup_method = br#"{"method":"tools/list","method":"tools/call","params":{"name":"a"}}"#;
        assert_eq!(called_tools(dup_method), Err(Unreadable::NotJsonRpc));
        for no_name in [&br#"{"method":"tools/call"}"#[..], br#"{"method":"tools/call","params":{"name":7}}"#] {
            assert_eq!(called_tools(no_name), Err(Unreadable::ToolCallWithoutName));
        }
        let mut h = http::HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!foreign_charset(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
        assert!(!foreign_charset(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-16"));
        assert!(foreign_charset(&h));
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
