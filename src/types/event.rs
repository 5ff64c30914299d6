//! The one vocabulary everything reports in. The token manager, secure tools and (later)
//! the agent emit `Event`s; the console, the audit log, the monitor, session recording and
//! `--json` output all consume the same stream. Events carry fingerprints, digests and
//! scope sets — never a token, secret or raw credential.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;

/// One thing that happened, stamped with when, and (when inside an agent run) where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Process-unique, increasing: anomalies cite events by id as evidence.
    pub id: u64,
    /// Milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Which side refused a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialSide {
    /// Our own pre-check refused before any network traffic.
    Client,
    /// The server answered 403 `insufficient_scope`.
    Server,
}

/// How a tool call ended when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The tool ran and reported an error (`isError: true`).
    ToolError,
    /// Arguments failed local schema validation; nothing was sent.
    InvalidArguments,
    /// 401 even after one refresh, or no usable token.
    Unauthorized,
    RateLimited,
    Timeout,
    Connection,
    Tls,
    /// A JSON-RPC error or anything else the server returned that we cannot use.
    Protocol,
    /// The tool is blocked (unknown, or its manifest changed and awaits approval).
    Blocked,
}

/// A snapshot of the access token's state, for display. Never contains the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub issuer: String,
    pub subject: String,
    pub client_id: String,
    pub audience: Vec<String>,
    pub kid: String,
    pub alg: String,
    pub fingerprint: Fingerprint,
    /// Scopes asked for (`None`: the client's defaults).
    pub requested: Option<ScopeSet>,
    pub granted: ScopeSet,
    pub issued_at: u64,
    pub expires_at: u64,
    pub jti: String,
    /// Every token we hold passed verification; kept explicit for display.
    pub verified: bool,
    pub refresh_count: u32,
}

impl TokenInfo {
    pub fn seconds_to_expiry(&self, now: u64) -> i64 {
        self.expires_at as i64 - now as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// First token of the session.
    Initial,
    /// Less than the refresh skew left before `exp`.
    Expiring,
    /// The server answered 401 to the current token.
    Unauthorized,
    /// The operator asked for a different scope set.
    Regrant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    TokenIssued {
        token: TokenInfo,
        reason: RefreshReason,
    },
    /// A token from the authorization server failed verification and was not used.
    TokenRejected {
        check: String,
        detail: String,
    },
    /// The token endpoint refused or could not be reached.
    TokenError {
        detail: String,
    },
    ManifestRecorded {
        server: String,
        hash: String,
        tools: Vec<String>,
    },
    ToolCall {
        server: String,
        tool: String,
        args_digest: String,
        attempt: u32,
    },
    ToolSucceeded {
        server: String,
        tool: String,
        latency_ms: f64,
        attempts: u32,
        #[serde(default)]
        audit: CallAudit,
    },
    ToolFailed {
        server: String,
        tool: String,
        failure: FailureClass,
        message: String,
        latency_ms: f64,
        attempts: u32,
        #[serde(default)]
        audit: CallAudit,
    },
    Denied {
        #[serde(default)]
        audit: CallAudit,
        server: String,
        tool: String,
        required: ScopeSet,
        granted: ScopeSet,
        missing: ScopeSet,
        side: DenialSide,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        www_authenticate: Option<String>,
    },
    RateLimited {
        server: String,
        tool: String,
        retry_after_ms: u64,
        attempt: u32,
    },
    Retry {
        server: String,
        tool: String,
        attempt: u32,
        reason: String,
        delay_ms: u64,
    },
    /// An agent run began.
    RunStarted {
        request: String,
        model: String,
        tools: Vec<String>,
    },
    Thought {
        text: String,
    },
    Action {
        tool: String,
        args: serde_json::Value,
    },
    Observation {
        tool: String,
        text: String,
        outcome: ObservationKind,
        latency_ms: f64,
    },
    FinalAnswer {
        response: String,
    },
    RunFinished {
        status: RunStatus,
        steps: u32,
        elapsed_ms: f64,
    },
    /// The agent could not go on (LM failure, unparseable output after the fallback).
    AgentError {
        message: String,
    },
    /// The monitor saw something an operator should look at.
    Anomaly {
        rule: String,
        severity: AnomalySeverity,
        message: String,
        evidence: Vec<u64>,
    },
    /// A decision of the MCP server's bearer guard (the server's own audit trail).
    ServiceDecision {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        outcome: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<Fingerprint>,
        #[serde(default, skip_serializing_if = "ScopeSet::is_empty")]
        missing: ScopeSet,
    },
    /// The audit log opened a new segment for a reason worth recording (crash repair).
    AuditSegment {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalySeverity {
    Low,
    Medium,
    High,
}

/// What the audit trail needs about a tool call: the argument digest (not the arguments),
/// required vs granted scopes and the token's fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallAudit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    #[serde(default)]
    pub required: ScopeSet,
    #[serde(default)]
    pub granted: ScopeSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// What a tool step produced, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    Ok,
    ToolError,
    Denied,
    Failed,
    /// The LM named a tool that does not exist or gave arguments that fail its schema.
    Invalid,
    Finish,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    Denied,
    Failed,
    Refused,
    Cancelled,
}

/// Where events go: every subscriber gets every event. Subscribers are bounded channels;
/// a subscriber that falls behind loses events and the loss is counted, so a slow
/// consumer can never stall the agent. (The audit log will not rely on this path.)
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

/// A synchronous sink that sees every event before any subscriber does (the audit trail:
/// a record must be durable before the result it describes is shown).
pub trait Journal: Send + Sync {
    fn record(&self, event: &Event);
}

#[derive(Default)]
struct BusInner {
    journals: parking_lot::RwLock<Vec<Arc<dyn Journal>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    subscribers: Mutex<Vec<tokio::sync::mpsc::Sender<Event>>>,
    recorded: Mutex<Option<Vec<Event>>>,
}

/// A weak handle to a bus.
#[derive(Clone)]
pub struct WeakBus(std::sync::Weak<BusInner>);

impl WeakBus {
    pub fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

/// Run context stamped on events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub run_id: Option<String>,
    pub step: Option<u32>,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus that also keeps every event in memory (CLI `--json`, tests).
    pub fn recording() -> Self {
        let bus = Self::default();
        *bus.inner.recorded.lock() = Some(Vec::new());
        bus
    }

    /// Adds a synchronous observer (the audit log first, then the monitor). Observers may
    /// emit events themselves (the monitor's anomalies); no lock is held while they run.
    pub fn add_journal(&self, journal: Arc<dyn Journal>) {
        self.inner.journals.write().push(journal);
    }

    /// A handle that does not keep the bus alive (for observers that emit into it).
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.inner))
    }

    pub fn subscribe(&self, capacity: usize) -> tokio::sync::mpsc::Receiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.inner.subscribers.lock().push(tx);
        rx
    }

    pub fn emit(&self, scope: &Scope, kind: EventKind) -> Event {
        let event = Event {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: now_ms(),
            run_id: scope.run_id.clone(),
            step: scope.step,
            kind,
        };
        let journals = self.inner.journals.read().clone();
        for j in journals {
            j.record(&event);
        }
        let mut subs = self.inner.subscribers.lock();
        subs.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        });
        drop(subs);
        if let Some(rec) = self.inner.recorded.lock().as_mut() {
            rec.push(event.clone());
        }
        event
    }

    /// Events kept by a `recording()` bus so far.
    pub fn recorded(&self) -> Vec<Event> {
        self.inner.recorded.lock().clone().unwrap_or_default()
    }

    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::recording();
        let mut a = bus.subscribe(8);
        let mut b = bus.subscribe(8);
        let scope = Scope { run_id: Some("r1".into()), step: Some(2) };
        bus.emit(&scope, EventKind::TokenError { detail: "x".into() });
        bus.emit(&Scope::default(), EventKind::TokenError { detail: "y".into() });
        let (a1, a2) = (a.recv().await.unwrap(), a.recv().await.unwrap());
        assert_eq!((a1.id, a2.id), (1, 2));
        assert_eq!((a1.run_id.as_deref(), a1.step), (Some("r1"), Some(2)));
        assert_eq!(b.recv().await.unwrap(), a1);
        assert_eq!(bus.recorded().len(), 2);
    }

    #[tokio::test]
    async fn a_full_subscriber_loses_events_without_blocking() {
        let bus = EventBus::new();
        let _slow = bus.subscribe(1);
        for _ in 0..3 {
            bus.emit(&Scope::default(), EventKind::TokenError { detail: "x".into() });
        }
        assert_eq!(bus.dropped(), 2);
    }

    #[test]
    fn serialized_form_is_flat_and_tagged() {
        let e = Event { id: 7, at_ms: 1, run_id: None, step: None, kind: EventKind::TokenError { detail: "d".into() } };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"id":7,"at_ms":1,"type":"token_error","detail":"d"}"#);
    }
}
