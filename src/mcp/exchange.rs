//! What the wire said about each traced `tools/call`: the JSON-RPC request id rmcp gave it
//! and the MCP session it travelled on.
//!
//! rmcp assigns request ids inside its service loop and keeps the `Mcp-Session-Id` inside
//! its HTTP worker; neither reaches the caller of `call_tool`. OpenTelemetry's MCP
//! conventions want both on the client span (`jsonrpc.request.id`, `mcp.session.id`), and
//! they let the client's audit record name the request the server's trail recorded. So
//! the transport is watched instead: [`Observed`] wraps any rmcp client transport (HTTP or
//! stdio) and notes the id of each outgoing `tools/call`, and the HTTP client notes the
//! session id it posts with. A call is recognised by its `traceparent` in `params._meta`,
//! which is unique per call; calls sent without one (export off) are not tracked.
//!
//! Bounded: at most [`KEPT`] calls are remembered; a call whose entry was pushed out (or
//! that never reached the wire) simply has no exchange to report.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, RequestId};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

use crate::types::event::McpExchange;

/// Calls remembered at once: far more than one session has in flight.
const KEPT: usize = 64;

/// The traced calls of one connection, by `traceparent`.
#[derive(Clone, Default)]
pub struct Exchanges(Arc<Mutex<VecDeque<(String, McpExchange)>>>);

/// The request id and `traceparent` of a `tools/call` request that carries one.
fn traced_call(message: &ClientJsonRpcMessage) -> Option<(&RequestId, &str)> {
    let JsonRpcMessage::Request(req) = message else { return None };
    let ClientRequest::CallToolRequest(call) = &req.request else { return None };
    let traceparent = call.params.meta.as_ref()?.get_traceparent()?;
    Some((&req.id, traceparent))
}

impl Exchanges {
    /// A traced `tools/call` is being sent: remember its request id. A retry sends the same
    /// traceparent again with a new id; the newest wins.
    fn sent(&self, message: &ClientJsonRpcMessage) {
        let Some((request_id, traceparent)) = traced_call(message) else { return };
        let mut calls = self.0.lock();
        calls.retain(|(tp, _)| tp != traceparent);
        if calls.len() >= KEPT {
            calls.pop_front();
        }
        let request_id = request_id.to_string();
        calls.push_back((traceparent.to_string(), McpExchange { request_id, ..McpExchange::default() }));
    }

    /// The HTTP client is posting `message` on `session` (stateless servers have none).
    /// Returns the traced call's `traceparent`, which the HTTP client sends as the W3C header
    /// too, so a server (or proxy) that refuses the request before reading its body can still
    /// continue the trace.
    pub fn posted<'m>(&self, message: &'m ClientJsonRpcMessage, session: Option<&str>) -> Option<&'m str> {
        let (_, traceparent) = traced_call(message)?;
        if let Some(session) = session
            && let Some((_, exchange)) = self.0.lock().iter_mut().find(|(tp, _)| tp == traceparent)
        {
            exchange.session_id = Some(session.to_string());
        }
        Some(traceparent)
    }

    /// What was noted for the call with `traceparent`; forgets it.
    pub fn take(&self, traceparent: &str) -> Option<McpExchange> {
        let mut calls = self.0.lock();
        let at = calls.iter().position(|(tp, _)| tp == traceparent)?;
        calls.remove(at).map(|(_, exchange)| exchange)
    }
}

/// An rmcp client transport that notes each traced `tools/call` on its way out.
pub struct Observed<T> {
    inner: T,
    exchanges: Exchanges,
}

impl<T> Observed<T> {
    pub fn new(inner: T, exchanges: Exchanges) -> Self {
        Self { inner, exchanges }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Observed<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.exchanges.sent(&item);
        self.inner.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.inner.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolRequest, CallToolRequestParams, JsonRpcRequest, NumberOrString, RequestMetaObject};

    fn call(id: i64, traceparent: Option<&str>) -> ClientJsonRpcMessage {
        let mut params = CallToolRequestParams::new("get_customer_info");
        if let Some(tp) = traceparent {
            let mut meta = serde_json::Map::new();
            meta.insert("traceparent".into(), tp.into());
            params.meta = Some(RequestMetaObject::from(meta));
        }
        JsonRpcMessage::Request(JsonRpcRequest::new(
            NumberOrString::Number(id),
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
        ))
    }

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_traced_call_is_found_by_its_traceparent_with_id_and_session() {
        let ex = Exchanges::default();
        ex.sent(&call(7, Some(TP)));
        ex.posted(&call(7, Some(TP)), Some("sess-1"));
        let got = ex.take(TP).expect("noted");
        assert_eq!((got.request_id.as_str(), got.session_id.as_deref()), ("7", Some("sess-1")));
        assert!(ex.take(TP).is_none(), "taken once");
    }

    #[test]
    fn untraced_calls_are_not_kept_and_a_retry_replaces_the_id() {
        let ex = Exchanges::default();
        ex.sent(&call(1, None));
        assert!(ex.0.lock().is_empty());
        ex.sent(&call(2, Some(TP)));
        ex.sent(&call(3, Some(TP)));
        assert_eq!(ex.take(TP).map(|e| e.request_id), Some("3".into()));
    }

    #[test]
    fn at_most_kept_calls_are_remembered() {
        let ex = Exchanges::default();
        let tps: Vec<String> = (0..KEPT + 5).map(|i| format!("00-{i:032x}-b7ad6b7169203331-01")).collect();
        for (i, tp) in tps.iter().enumerate() {
            ex.sent(&call(i as i64, Some(tp)));
        }
        assert_eq!(ex.0.lock().len(), KEPT);
        assert!(ex.take(&tps[0]).is_none(), "the oldest was pushed out");
        assert_eq!(ex.take(&tps[KEPT + 4]).map(|e| e.request_id), Some((KEPT + 4).to_string()));
    }
}
