//! Direct answers to plain stateless `tools/call` requests.
//!
//! rmcp's stateless transport builds a whole MCP service per POST: a peer, channels, a
//! served task and a second task for the request. For a tool call that sends nothing back
//! but its result, that machinery is most of the server's per-call cost. This layer sits
//! between the bearer guard and rmcp and answers exactly that case through the same rmcp
//! handler (`Service::handle_request` on our `ServerHandler`, so argument parsing, the
//! tool router and result shaping are rmcp's), then serialises rmcp's own response
//! message. It only takes requests it is sure of; everything else — other methods,
//! sessions, unusual headers, per-request protocol negotiation, anything it cannot parse —
//! goes on to rmcp untouched, so rmcp stays the authority on every error.
//!
//! Our tools never call back to the client (no progress, sampling or elicitation), which
//! is what makes answering without a live peer sound; the peer handed to them is detached.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, header};
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, GetExtensions, GetMeta, JsonRpcVersion2_0, RequestId,
    ServerJsonRpcMessage,
};
use rmcp::service::{Peer, RequestContext, RunningService, Service};
use serde_json::value::RawValue;
use std::borrow::Cow;

use super::tools::CustomerService;

/// Protocol versions this layer answers: the ones negotiated by `initialize`, whose
/// stateless requests rmcp serves with the plain handler call mirrored here. Newer
/// versions (per-request negotiation, standard headers) go to rmcp.
const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

pub struct DirectCalls {
    service: CustomerService,
    peer: Peer<RoleServer>,
    /// Host names the DNS-rebinding check admits (any port); a request whose `Host` is not
    /// plainly one of them is left to rmcp's own check.
    hosts: Vec<String>,
    max_body_bytes: usize,
    /// Owns the detached peer's service; dropping it ends that service.
    _detached: RunningService<RoleServer, CustomerService>,
}

impl DirectCalls {
    /// Must run inside a tokio runtime (the detached peer's service is spawned).
    pub fn new(service: CustomerService, hosts: &[String], max_body_bytes: usize) -> Self {
        let quiet =
            (futures::sink::drain::<ServerJsonRpcMessage>(), futures::stream::pending::<ClientJsonRpcMessage>());
        let detached = rmcp::service::serve_directly(service.clone(), quiet, None);
        let hosts = hosts.iter().filter(|h| !h.contains(':') || h.starts_with('[')).map(|h| h.to_lowercase()).collect();
        Self { service, peer: detached.peer().clone(), hosts, max_body_bytes, _detached: detached }
    }

    /// True when the headers are ones rmcp would accept for a stateless JSON POST.
    fn headers_qualify(&self, method: &Method, uri: &http::Uri, headers: &HeaderMap) -> bool {
        *method == Method::POST
            && !headers.contains_key(header::ORIGIN)
            && !headers.contains_key("mcp-session-id")
            && self.host_allowed(uri, headers)
            && accepts_json_and_sse(headers)
            && single(headers, header::CONTENT_TYPE)
                .is_some_and(|ct| essence(ct).eq_ignore_ascii_case("application/json"))
            && single(headers, "mcp-protocol-version").is_some_and(|v| VERSIONS.contains(&v))
    }

    fn host_allowed(&self, uri: &http::Uri, headers: &HeaderMap) -> bool {
        host_of_request(uri, headers).is_some_and(|host| self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }

    /// Answers `body` if it is one plain `tools/call` request; `Err` hands the request
    /// back for rmcp.
    async fn answer(&self, parts: http::request::Parts, body: &[u8]) -> Result<Response, http::request::Parts> {
        let Some((id, call)) = parse_call(body) else {
            return Err(parts);
        };
        let mut request = ClientRequest::CallToolRequest(call);
        if request.get_meta().protocol_version().is_some() {
            return Err(parts);
        }
        // As rmcp's serve loop does: the request's meta and extensions move into the
        // context, and the HTTP parts (carrying the verified claims) ride along.
        let mut context = RequestContext::new(id.clone(), self.peer.clone());
        context.meta = std::mem::take(request.get_meta_mut());
        context.extensions = std::mem::take(request.extensions_mut());
        context.extensions.insert(parts);
        let message = match self.service.handle_request(request, context).await {
            Ok(result) => ServerJsonRpcMessage::response(result, id),
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        };
        let json = serde_json::to_vec(&message).unwrap_or_default();
        let mut response = Response::new(Body::from(json));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

/// The envelope of one JSON-RPC request, with the method borrowed and the params left raw.
/// Exactly these four members, each once (serde refuses a repeated or unknown one), so
/// anything unusual goes to rmcp.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[allow(dead_code, reason = "parsed only to insist on \"2.0\"")]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

/// A plain `tools/call` request, read the way rmcp reads it but without its message enum:
/// `ClientJsonRpcMessage` is untagged over flattened structs, so serde buffered the body
/// several times and built an error for each variant it ruled out (11% of the server's CPU
/// per call in a profile). The params still go through rmcp's own `Request` deserializer,
/// so `_meta` lands in the extensions exactly where rmcp puts it.
fn parse_call(body: &[u8]) -> Option<(RequestId, CallToolRequest)> {
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    if envelope.method != "tools/call" {
        return None;
    }
    let params = envelope.params?.get();
    let mut request = String::with_capacity(params.len() + 40);
    request.push_str(r#"{"method":"tools/call","params":"#);
    request.push_str(params);
    request.push('}');
    Some((envelope.id, serde_json::from_str(&request).ok()?))
}

/// The middleware (install inside the bearer guard with `from_fn_with_state`).
pub async fn direct_calls(State(d): State<Arc<DirectCalls>>, req: Request, next: Next) -> Response {
    if !d.headers_qualify(req.method(), req.uri(), req.headers()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // The guard has already buffered (and size-checked) the body; this takes it back out.
    let Ok(bytes) = axum::body::to_bytes(body, d.max_body_bytes).await else {
        return super::guard::payload_too_large(d.max_body_bytes);
    };
    match d.answer(parts, &bytes).await {
        Ok(response) => response,
        Err(parts) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    }
}

/// The host the request names (`Host` in HTTP/1.1, the URI authority in HTTP/2), without
/// its port.
fn host_of_request<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let authority = match single(headers, header::HOST) {
        Some(h) => h,
        None if headers.contains_key(header::HOST) => return None,
        None => uri.authority()?.as_str(),
    };
    Some(match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    })
}

/// The value of a header that appears exactly once and is text.
pub(super) fn single(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',') {
            json |= essence(item).eq_ignore_ascii_case("application/json");
            sse |= essence(item).eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn host_comes_from_the_header_or_the_authority_without_port() {
        let uri: http::Uri = "https://127.0.0.1:8001/mcp".parse().unwrap();
        assert_eq!(host_of_request(&uri, &HeaderMap::new()), Some("127.0.0.1"));
        assert_eq!(host_of_request(&uri, &headers(&[("host", "localhost:9")])), Some("localhost"));
        assert_eq!(host_of_request(&uri, &headers(&[("host", "[::1]:8001")])), Some("[::1]"));
        // Two Host headers: not ours to judge.
        assert_eq!(host_of_request(&uri, &headers(&[("host", "a"), ("host", "b")])), None);
        let relative: http::Uri = "/mcp".parse().unwrap();
        assert_eq!(host_of_request(&relative, &HeaderMap::new()), None);
    }

    #[test]
    fn accept_needs_both_media_types() {
        assert!(accepts_json_and_sse(&headers(&[("accept", "application/json, text/event-stream")])));
        assert!(accepts_json_and_sse(&headers(&[
            ("accept", "text/event-stream;q=0.9"),
            ("accept", "Application/JSON")
        ])));
        assert!(!accepts_json_and_sse(&headers(&[("accept", "application/json")])));
        assert!(!accepts_json_and_sse(&headers(&[("accept", "*/*")])));
        assert!(!accepts_json_and_sse(&HeaderMap::new()));
    }

    #[test]
    fn only_plain_tool_calls_are_parsed_here() {
        let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"ABC123"},"_meta":{"progressToken":"p1"}}}"#;
        let (id, request) = parse_call(call).expect("a plain call");
        assert_eq!(id, RequestId::Number(7));
        assert_eq!(request.params.name, "get_customer_info");
        assert_eq!(request.params.arguments.as_ref().map(|a| a["customer_id"].clone()), Some("ABC123".into()));
        // rmcp's reading of the same message agrees, `_meta` included.
        let Ok(ClientJsonRpcMessage::Request(theirs)) = serde_json::from_slice::<ClientJsonRpcMessage>(call) else {
            panic!("rmcp reads it as a request")
        };
        let ClientRequest::CallToolRequest(theirs_call) = &theirs.request else { panic!("a tools/call") };
        assert_eq!(theirs.id, id);
        assert_eq!(theirs_call.params, request.params);
        let mut ours = ClientRequest::CallToolRequest(request);
        assert_eq!(ours.get_meta_mut().clone(), theirs.request.get_meta().clone());
        assert!(ours.get_meta().get("progressToken").is_some());
        // Anything else goes to rmcp.
        for other in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a"}}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"a"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"extra":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"a"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]"#,
        ] {
            assert!(parse_call(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn single_refuses_repeated_headers() {
        let h = headers(&[("mcp-protocol-version", "2025-06-18")]);
        assert_eq!(single(&h, "mcp-protocol-version"), Some("2025-06-18"));
        let twice = headers(&[("mcp-protocol-version", "2025-06-18"), ("mcp-protocol-version", "2025-06-18")]);
        assert_eq!(single(&twice, "mcp-protocol-version"), None);
    }
}
