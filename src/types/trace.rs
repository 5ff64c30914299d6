//! Trace and span ids for OpenTelemetry export, decided from what the event stream already
//! carries: a run's id and an event's id, under a per-process random salt.
//!
//! The exporter (`observe::telemetry`) builds spans after the fact from events, and the
//! client stack must put a W3C `traceparent` into an MCP request *before* the events that
//! describe it are exported. Deriving the ids from (salt, run, event) lets both sides name
//! the same span without passing ids around: whoever holds the salt computes them. Run ids
//! (`run-1`, …) repeat across processes; the salt keeps traces of different sessions apart.

use super::secret::{hex, sha256};

/// What every id of one session is derived from (random per session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSalt([u8; 16]);

/// Which span of a run an id is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRole {
    /// The run's `invoke_agent` span.
    Run,
    /// A `chat` span (the LM call event's id).
    Chat,
    /// An `execute_tool` span (the `ToolCall` event's id).
    Tool,
    /// The MCP client span `tools/call` under it (the same `ToolCall` event's id).
    McpClient,
}

impl SpanRole {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Run => b"run",
            Self::Chat => b"chat",
            Self::Tool => b"tool",
            Self::McpClient => b"mcp",
        }
    }
}

impl TraceSalt {
    /// A fresh random salt.
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    /// A fixed salt (tests).
    pub fn fixed(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The trace id of a run (16 bytes, never all zero).
    pub fn trace_id(&self, run_id: &str) -> [u8; 16] {
        let d = self.digest(&[b"trace", run_id.as_bytes()]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        nonzero(&mut id);
        id
    }

    /// The id of one span of a run (8 bytes, never all zero); `event` is the id of the event
    /// that opens it (unused for [`SpanRole::Run`]).
    pub fn span_id(&self, run_id: &str, role: SpanRole, event: u64) -> [u8; 8] {
        let d = self.digest(&[b"span", run_id.as_bytes(), role.tag(), &event.to_be_bytes()]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        nonzero(&mut id);
        id
    }

    /// The W3C `traceparent` of the MCP client span of the tool call opened by event
    /// `event` in run `run_id` (sampled).
    pub fn traceparent(&self, run_id: &str, event: u64) -> String {
        traceparent(&self.trace_id(run_id), &self.span_id(run_id, SpanRole::McpClient, event))
    }

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        // Length-prefixed parts: ("ab", "c") and ("a", "bc") must not collide.
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&self.0);
        for p in parts {
            buf.extend_from_slice(&(p.len() as u32).to_be_bytes());
            buf.extend_from_slice(p);
        }
        sha256(&buf)
    }
}

/// The key a run's spans hang under: the run's id, or for a tool call outside any run
/// (`warden call`) a trace of its own, named by the call's event id.
pub fn run_key(run_id: Option<&str>, event: u64) -> String {
    run_id.map(str::to_string).unwrap_or_else(|| format!("call-{event}"))
}

/// A W3C trace-context `traceparent` header value (version 00, sampled).
pub fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8]) -> String {
    format!("00-{}-{}-01", hex(trace_id), hex(span_id))
}

/// Reads a `traceparent` (version 00): the trace id and the parent span id. `None` for
/// anything malformed or for the all-zero ids the spec forbids.
pub fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || flags.len() != 2 {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?.try_into().ok()?;
    let span: [u8; 8] = unhex(span)?.try_into().ok()?;
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// An all-zero id is invalid in OpenTelemetry; a digest that starts with 16 zero bytes is
/// not going to happen, but the fix costs nothing.
fn nonzero(id: &mut [u8]) {
    if id.iter().all(|b| *b == 0) {
        id[0] = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_per_salt_and_differ_across_salts_runs_and_roles() {
        let a = TraceSalt::fixed([1; 16]);
        let b = TraceSalt::fixed([2; 16]);
        assert_eq!(a.trace_id("run-1"), a.trace_id("run-1"));
        assert_ne!(a.trace_id("run-1"), b.trace_id("run-1"));
        assert_ne!(a.trace_id("run-1"), a.trace_id("run-2"));
        assert_ne!(a.span_id("run-1", SpanRole::Tool, 7), a.span_id("run-1", SpanRole::McpClient, 7));
        assert_ne!(a.span_id("run-1", SpanRole::Tool, 7), a.span_id("run-1", SpanRole::Tool, 8));
    }

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let salt = TraceSalt::fixed([3; 16]);
        let tp = salt.traceparent("run-1", 5);
        assert_eq!(tp.len(), 55);
        let (trace, span) = parse_traceparent(&tp).unwrap();
        assert_eq!((trace, span), (salt.trace_id("run-1"), salt.span_id("run-1", SpanRole::McpClient, 5)));
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        assert!(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some());
    }
}
