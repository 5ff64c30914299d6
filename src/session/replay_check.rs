//! Replay as a regression check (`warden replay --check`): the runs of a session
//! recording, told from its events, and the difference between a recorded run and the same
//! request run again now — against today's servers, grant and program.
//!
//! What is compared, per request: the tools called (names, in order), the decision on each
//! call (allowed, denied, blocked, not sent), the run's status and its answer. A difference
//! is security-relevant when a call's decision changed between allowed and denied/blocked
//! (either way), or when a tool is called now that was not called then: those are what a
//! deploy must not change unnoticed. The rest (order, answer text, status) is reported only.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::types::event::{CallOutcome, Event, EventKind, FailureClass, RunStatus};
use crate::types::scope::ScopeSet;

/// What became of one tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Sent and answered (a result, a tool error, a rate limit: authorization let it through).
    Allowed,
    /// Refused for scopes, by the client's pre-check or the server.
    Denied,
    /// Blocked by the client (unknown tool, or its manifest changed and awaits approval).
    Blocked,
    /// Not sent for another reason (not confirmed, no token, audit unavailable, bad arguments).
    NotSent,
}

impl Decision {
    pub fn of(outcome: &CallOutcome) -> Self {
        match outcome {
            CallOutcome::Denied { .. } => Self::Denied,
            CallOutcome::Failed { class: FailureClass::Blocked, .. } => Self::Blocked,
            CallOutcome::Failed {
                class:
                    FailureClass::NotConfirmed
                    | FailureClass::TokenUnavailable
                    | FailureClass::AuditUnavailable
                    | FailureClass::InvalidArguments,
                ..
            } => Self::NotSent,
            _ => Self::Allowed,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Blocked => "blocked",
            Self::NotSent => "not sent",
        }
    }

    fn refused(self) -> bool {
        matches!(self, Self::Denied | Self::Blocked)
    }
}

/// One tool call of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub tool: String,
    pub decision: Decision,
}

/// One run, from its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRun {
    pub run_id: String,
    pub request: String,
    /// The grant the run had: the scopes of the newest token issued before it started
    /// (`None`: no token, e.g. a server without OAuth).
    pub grant: Option<ScopeSet>,
    pub calls: Vec<CallRecord>,
    /// `None`: the recording ends before the run did.
    pub status: Option<RunStatus>,
    pub response: String,
}

/// The runs in `events`, in the order they started.
pub fn runs(events: &[Event]) -> Vec<RecordedRun> {
    let mut grant: Option<ScopeSet> = None;
    let mut runs: Vec<RecordedRun> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::TokenIssued { token, .. } => {
                // What the token carries; an opaque token's scopes are what was asked for.
                grant = Some(if token.granted.is_empty() {
                    token.requested.clone().unwrap_or_default()
                } else {
                    token.granted.clone()
                });
            }
            EventKind::RunStarted { request, .. } => {
                let run_id = e.run_id.clone().unwrap_or_default();
                index.insert(run_id.clone(), runs.len());
                runs.push(RecordedRun {
                    run_id,
                    request: request.clone(),
                    grant: grant.clone(),
                    calls: Vec::new(),
                    status: None,
                    response: String::new(),
                });
            }
            kind => {
                let Some(run) = e.run_id.as_ref().and_then(|id| index.get(id)).map(|&i| &mut runs[i]) else {
                    continue;
                };
                match kind {
                    EventKind::ToolResult { tool, outcome, .. } => {
                        run.calls.push(CallRecord { tool: tool.name.clone(), decision: Decision::of(outcome) })
                    }
                    EventKind::FinalAnswer { response } => run.response = response.clone(),
                    EventKind::RunFinished { status, .. } => run.status = Some(*status),
                    _ => {}
                }
            }
        }
    }
    runs
}

/// One way a run now differs from its recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The k-th call of `tool` was decided otherwise.
    Decision {
        tool: String,
        occurrence: usize,
        then: Decision,
        now: Decision,
    },
    /// A tool is called now that the recorded run never called.
    NewTool {
        tool: String,
    },
    /// The tools called, in order, differ.
    Calls {
        then: Vec<String>,
        now: Vec<String>,
    },
    Status {
        then: Option<RunStatus>,
        now: Option<RunStatus>,
    },
    Answer {
        then: String,
        now: String,
    },
}

impl Difference {
    /// A change a deploy must not make unnoticed.
    pub fn security_relevant(&self) -> bool {
        match self {
            Self::Decision { then, now, .. } => {
                (*then == Decision::Allowed && now.refused()) || (then.refused() && *now == Decision::Allowed)
            }
            Self::NewTool { .. } => true,
            _ => false,
        }
    }

    pub fn describe(&self) -> String {
        let status = |s: &Option<RunStatus>| s.map(|s| s.label()).unwrap_or("unfinished");
        match self {
            Self::Decision { tool, occurrence, then, now } => {
                format!("decision: {tool} (call {}) was {}, now {}", occurrence + 1, then.label(), now.label())
            }
            Self::NewTool { tool } => format!("new tool: {tool} is called now; the recorded run never called it"),
            Self::Calls { then, now } => format!("tool calls: [{}] then, [{}] now", then.join(", "), now.join(", ")),
            Self::Status { then, now } => format!("outcome: {} then, {} now", status(then), status(now)),
            Self::Answer { .. } => "answer: the text differs".into(),
        }
    }
}

/// A recorded request, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunCheck {
    pub request: String,
    /// The grant it ran under now.
    pub grant: Option<ScopeSet>,
    pub differences: Vec<Difference>,
    pub security_relevant: bool,
}

impl RunCheck {
    /// `✓ same` or `✗` with each difference on its own line (security-relevant ones marked).
    pub fn render(&self) -> String {
        if self.differences.is_empty() {
            return format!("✓ same  {}\n", self.request);
        }
        let mut out = format!("✗ {}  {}\n", if self.security_relevant { "SECURITY" } else { "differs" }, self.request);
        for d in &self.differences {
            let mark = if d.security_relevant() { "!" } else { "-" };
            out.push_str(&format!("    {mark} {}\n", d.describe()));
        }
        out
    }
}

/// How `now` differs from `then` (the same request, run again).
pub fn compare(then: &RecordedRun, now: &RecordedRun) -> RunCheck {
    let mut differences = Vec::new();
    let names = |r: &RecordedRun| r.calls.iter().map(|c| c.tool.clone()).collect::<Vec<_>>();
    let (then_names, now_names) = (names(then), names(now));
    // Calls pair up by tool and occurrence (the 2nd get_customer_info with the 2nd), so a
    // reordering still compares each call's decision with its counterpart.
    let by_tool = |r: &RecordedRun| {
        let mut m: BTreeMap<String, Vec<Decision>> = BTreeMap::new();
        for c in &r.calls {
            m.entry(c.tool.clone()).or_default().push(c.decision);
        }
        m
    };
    let (then_by, now_by) = (by_tool(then), by_tool(now));
    let mut seen_new = Vec::new();
    for c in &now.calls {
        if !then_by.contains_key(&c.tool) && !seen_new.contains(&c.tool) {
            seen_new.push(c.tool.clone());
            differences.push(Difference::NewTool { tool: c.tool.clone() });
        }
    }
    for (tool, decisions) in &now_by {
        let Some(before) = then_by.get(tool) else { continue };
        for (k, (a, b)) in before.iter().zip(decisions).enumerate() {
            if a != b {
                differences.push(Difference::Decision { tool: tool.clone(), occurrence: k, then: *a, now: *b });
            }
        }
    }
    if then_names != now_names {
        differences.push(Difference::Calls { then: then_names, now: now_names });
    }
    if then.status != now.status {
        differences.push(Difference::Status { then: then.status, now: now.status });
    }
    if then.response != now.response {
        differences.push(Difference::Answer { then: then.response.clone(), now: now.response.clone() });
    }
    let security_relevant = differences.iter().any(Difference::security_relevant);
    RunCheck { request: then.request.clone(), grant: now.grant.clone(), differences, security_relevant }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(calls: &[(&str, Decision)], status: RunStatus, response: &str) -> RecordedRun {
        RecordedRun {
            run_id: "run-1".into(),
            request: "For customer ABC123 create a support ticket: the grill is broken".into(),
            grant: None,
            calls: calls.iter().map(|(t, d)| CallRecord { tool: t.to_string(), decision: *d }).collect(),
            status: Some(status),
            response: response.into(),
        }
    }

    use Decision::*;

    #[test]
    fn the_same_run_is_the_same() {
        let a = run(&[("get_customer_info", Allowed), ("create_support_ticket", Allowed)], RunStatus::Ok, "done");
        let c = compare(&a, &a.clone());
        assert!(c.differences.is_empty() && !c.security_relevant);
        assert_eq!(c.render(), "✓ same  For customer ABC123 create a support ticket: the grill is broken\n");
    }

    #[test]
    fn a_call_allowed_then_and_denied_now_is_security_relevant() {
        let then = run(&[("get_customer_info", Allowed), ("create_support_ticket", Allowed)], RunStatus::Ok, "TKT-1");
        let now = run(&[("get_customer_info", Allowed), ("create_support_ticket", Denied)], RunStatus::Denied, "no");
        let c = compare(&then, &now);
        assert!(c.security_relevant);
        assert_eq!(
            c.render(),
            "✗ SECURITY  For customer ABC123 create a support ticket: the grill is broken\n    ! decision: create_support_ticket (call 1) was allowed, now denied\n    - outcome: ok then, denied now\n    - answer: the text differs\n"
        );
        // And the reverse.
        assert!(compare(&now, &then).security_relevant);
    }

    #[test]
    fn a_new_tool_is_security_relevant_and_an_order_or_answer_change_is_not() {
        let then = run(&[("get_customer_info", Allowed)], RunStatus::Ok, "a");
        let now = run(&[("get_customer_info", Allowed), ("get_recent_customers", Allowed)], RunStatus::Ok, "a");
        let c = compare(&then, &now);
        assert!(c.security_relevant);
        assert_eq!(c.differences[0], Difference::NewTool { tool: "get_recent_customers".into() });
        let then = run(&[("get_recent_customers", Allowed), ("get_customer_info", Allowed)], RunStatus::Ok, "a");
        let now = run(&[("get_customer_info", Allowed), ("get_recent_customers", Allowed)], RunStatus::Ok, "b");
        let c = compare(&then, &now);
        assert!(!c.security_relevant);
        assert_eq!(
            c.differences.iter().map(Difference::describe).collect::<Vec<_>>(),
            vec![
                "tool calls: [get_recent_customers, get_customer_info] then, [get_customer_info, get_recent_customers] now",
                "answer: the text differs"
            ]
        );
        // Not sent then (no confirmation), allowed now: reported, not a security change.
        let c = compare(&run(&[("x", NotSent)], RunStatus::Failed, ""), &run(&[("x", Allowed)], RunStatus::Failed, ""));
        assert!(!c.security_relevant && c.differences.len() == 1);
    }

    #[test]
    fn runs_are_read_from_events_with_the_grant_of_their_time() {
        use crate::types::event::{EventBus, RefreshReason, Scope, TokenInfo, TokenState};
        use crate::types::secret::Fingerprint;
        use crate::types::tool::ToolName;
        let bus = EventBus::recording();
        let token = |s: &str| TokenInfo {
            fingerprint: Fingerprint::of(s.as_bytes()),
            requested: Some(ScopeSet::parse(s).unwrap()),
            granted: ScopeSet::parse(s).unwrap(),
            issued_at: 0,
            expires_at: None,
            refresh_count: 0,
            state: TokenState::Opaque {
                why: crate::types::event::OpaqueReason::NotJwt,
                scopes: crate::types::event::ScopeOrigin::TokenResponse,
                introspection: None,
            },
        };
        let at = |id: &str| Scope { run_id: Some(id.into()), step: Some(0) };
        bus.emit(
            &Scope::default(),
            EventKind::TokenIssued { token: token("customer:read"), reason: RefreshReason::Initial, server: None },
        );
        bus.emit(
            &at("run-1"),
            EventKind::RunStarted { request: "look up ABC123".into(), model: "m".into(), tools: vec![] },
        );
        let denied = CallOutcome::Denied {
            side: crate::types::event::DenialSide::Client,
            required: ScopeSet::parse("ticket:create").unwrap(),
            granted: ScopeSet::parse("customer:read").unwrap(),
            missing: ScopeSet::parse("ticket:create").unwrap(),
            status: None,
            www_authenticate: None,
        };
        bus.emit(
            &at("run-1"),
            EventKind::ToolResult {
                tool: ToolName::new("service", "create_support_ticket"),
                outcome: denied,
                attempts: 0,
                latency_ms: 0.0,
                audit: Default::default(),
            },
        );
        bus.emit(&at("run-1"), EventKind::FinalAnswer { response: "cannot".into() });
        bus.emit(&at("run-1"), EventKind::RunFinished { status: RunStatus::Denied, steps: 1, elapsed_ms: 1.0 });
        bus.emit(
            &Scope::default(),
            EventKind::TokenIssued {
                token: token("customer:read ticket:create"),
                reason: RefreshReason::Regrant,
                server: None,
            },
        );
        bus.emit(&at("run-2"), EventKind::RunStarted { request: "hello".into(), model: "m".into(), tools: vec![] });
        let got = runs(&bus.recorded());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].grant, Some(ScopeSet::parse("customer:read").unwrap()));
        assert_eq!(got[0].calls, vec![CallRecord { tool: "create_support_ticket".into(), decision: Denied }]);
        assert_eq!((got[0].status, got[0].response.as_str()), (Some(RunStatus::Denied), "cannot"));
        assert_eq!(got[1].grant, Some(ScopeSet::parse("customer:read ticket:create").unwrap()));
        assert_eq!(got[1].status, None);
    }
}
