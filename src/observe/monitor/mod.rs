//! The monitor: anomaly rules over the live event stream (the same events the console
//! shows). It observes every event synchronously on the bus, keeps small sliding windows
//! per rule, and emits `Anomaly` events (rule, severity, evidence event ids, a sentence)
//! back into the bus, so they reach the feed and the audit log. Counts per rule are kept
//! for the optimizer's metric.

pub mod rules;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventBus, EventKind, Journal, Scope, WeakBus};

/// Thresholds (`[monitor]` in the config). The defaults are set so that an operator's
/// ordinary work raises nothing and every attack in `tests/monitor_precision.rs` is caught
/// (the README's "Monitor precision" table); each says why it is where it is. Windows are
/// per session (they span runs: an attack spread over many requests is still one attack);
/// `repeated_denials` is per run (a retry loop is one agent's behaviour in one request).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// More than this many denials of one tool inside `window_secs` is a spike. 10 (the
    /// seed's number): an operator on a narrow grant meets one denial per request that
    /// needs the missing scope, a few a minute at most; eleven in a minute is a loop or a
    /// probe.
    pub denial_spike: usize,
    /// The sliding window of `denial_spike`, `enumeration_distinct` and
    /// `rate_limit_burst`: 60 s. Long enough to span several runs, short enough that an
    /// operator's steady pace (a request every 15–20 s) never fills it.
    pub window_secs: u64,
    /// The same denied call (tool and argument digest) this many times in one run: 3. A
    /// model may retry a denied call once after reading the denial; a third identical try
    /// is a loop that ignores it.
    pub repeated_denials: usize,
    /// This many distinct customers read inside `window_secs`: 6. An operator browsing
    /// reads three or four customers a minute; a burst of six in a minute is bulk reading.
    pub enumeration_distinct: usize,
    /// This many consecutive customer numbers read in a row (ABC120, ABC121, ABC122): 3.
    /// Real customer IDs are not consecutive, so even three in a row is walking the ID
    /// space.
    pub sequential_ids: usize,
    /// How far apart the first and last of `sequential_ids` reads may be: 600 s. Longer
    /// than `window_secs` on purpose: walking the ID space slowly, to stay under the
    /// distinct-customer window, is still walking it.
    pub sequential_window_secs: u64,
    /// This many 429s inside `window_secs`: 5. One call gives up after 3 attempts, so five
    /// means at least two calls kept hitting the limit.
    pub rate_limit_burst: usize,
    /// This many 401-triggered refreshes inside `window_secs`: 3. A token expiring early
    /// (clock skew, key rotation) costs one refresh; three in a minute means the server
    /// keeps refusing fresh tokens (revoked client, forged or replayed tokens).
    pub repeated_401: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            denial_spike: 10,
            window_secs: 60,
            repeated_denials: 3,
            enumeration_distinct: 6,
            sequential_ids: 3,
            sequential_window_secs: 600,
            rate_limit_burst: 5,
            repeated_401: 3,
        }
    }
}

/// What a rule found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: AnomalyRule,
    pub severity: AnomalySeverity,
    pub message: String,
    pub evidence: Vec<u64>,
}

/// What the monitor knows about one agent run.
#[derive(Debug, Default, Clone)]
pub struct RunState {
    pub request: String,
    /// The request lowercased once, for the rules' keyword checks.
    pub request_lower: String,
    /// Customer IDs named in the request.
    pub customers: Vec<String>,
    /// Event id of an observation that looked like an injection, if any.
    pub tainted_by: Option<u64>,
}

/// A rule: looks at one event with the run's context, may report findings.
pub trait Rule: Send {
    fn rule(&self) -> AnomalyRule;
    fn observe(&mut self, e: &Event, run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding>;
}

struct State {
    rules: Vec<Box<dyn Rule>>,
    runs: HashMap<String, RunState>,
    finished: VecDeque<String>,
    counts: BTreeMap<AnomalyRule, u64>,
}

pub struct Monitor {
    cfg: MonitorConfig,
    state: Mutex<State>,
    bus: WeakBus,
}

impl Monitor {
    /// Creates the monitor and attaches it to `bus`.
    pub fn attach(bus: &EventBus, cfg: MonitorConfig) -> Arc<Self> {
        let m = Arc::new(Self {
            cfg,
            state: Mutex::new(State {
                rules: rules::all(),
                runs: HashMap::new(),
                finished: VecDeque::new(),
                counts: BTreeMap::new(),
            }),
            bus: bus.downgrade(),
        });
        bus.add_watcher(m.clone());
        m
    }

    /// Anomalies per rule so far.
    pub fn counts(&self) -> BTreeMap<AnomalyRule, u64> {
        self.state.lock().counts.clone()
    }

    /// Runs the rules on one event; returns the findings (also emitted on the bus).
    pub fn check(&self, e: &Event) -> Vec<Finding> {
        if matches!(e.kind, EventKind::Anomaly { .. }) {
            return Vec::new();
        }
        let mut guard = self.state.lock();
        let st = &mut *guard;
        track_run(st, e);
        let run = e.run_id.as_ref().and_then(|r| st.runs.get(r));
        let mut findings = Vec::new();
        for rule in st.rules.iter_mut() {
            findings.extend(rule.observe(e, run, &self.cfg));
        }
        for f in &findings {
            *st.counts.entry(f.rule).or_default() += 1;
            if f.rule == AnomalyRule::PromptInjection
                && let Some(r) = e.run_id.as_ref().and_then(|r| st.runs.get_mut(r))
            {
                r.tainted_by.get_or_insert(e.id);
            }
        }
        findings
    }
}

fn track_run(st: &mut State, e: &Event) {
    let Some(run_id) = &e.run_id else { return };
    match &e.kind {
        EventKind::RunStarted { request, .. } => {
            let customers = customer_ids(request);
            st.runs.insert(
                run_id.clone(),
                RunState {
                    request: request.clone(),
                    request_lower: request.to_lowercase(),
                    customers,
                    tainted_by: None,
                },
            );
        }
        EventKind::RunFinished { .. } => {
            st.finished.push_back(run_id.clone());
            // Keep a few finished runs for late events; bound the map.
            while st.finished.len() > 256 {
                if let Some(old) = st.finished.pop_front() {
                    st.runs.remove(&old);
                }
            }
        }
        _ => {}
    }
}

/// Customer IDs (three letters, three digits) in a text, uppercased, in order.
pub fn customer_ids(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let b = w.as_bytes();
        if b.len() == 6 && b[..3].iter().all(u8::is_ascii_alphabetic) && b[3..].iter().all(u8::is_ascii_digit) {
            let up = w.to_ascii_uppercase();
            if !out.contains(&up) {
                out.push(up);
            }
        }
    }
    out
}

impl Journal for Monitor {
    fn record(&self, event: &Event) -> Result<(), crate::types::event::JournalError> {
        let findings = self.check(event);
        if findings.is_empty() {
            return Ok(());
        }
        let Some(bus) = self.bus.upgrade() else { return Ok(()) };
        let scope = Scope { run_id: event.run_id.clone(), step: event.step };
        for f in findings {
            bus.emit(
                &scope,
                EventKind::Anomaly { rule: f.rule, severity: f.severity, message: f.message, evidence: f.evidence },
            );
        }
        // The monitor only observes: an anomaly it could not record is the audit log's to
        // report, not a reason to refuse the event that raised it.
        Ok(())
    }
}

/// A sliding window of (time, event id) entries.
#[derive(Debug, Default, Clone)]
pub struct Window {
    items: VecDeque<(u64, u64)>,
}

impl Window {
    pub fn push(&mut self, at_ms: u64, id: u64, window_secs: u64) {
        self.items.push_back((at_ms, id));
        let horizon = at_ms.saturating_sub(window_secs * 1000);
        while self.items.front().is_some_and(|(t, _)| *t < horizon) {
            self.items.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.items.iter().map(|(_, id)| *id).collect()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}
