//! Unusual tool use: a tool the request did not call for, or a ticket/calculation on a
//! customer other than the one named in the request.

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventKind};
use crate::types::intent::{PROBLEM_PHRASES, PROBLEM_WORDS, TICKET_WORDS};

pub struct UnusualSequence;

/// Words that make a tool plausible for a request: the ways an operator asks for it
/// (`tests/monitor_precision.rs` runs the benign requests against this list). A tool the
/// request gives no reason for is the signal; the list errs towards synonyms an operator
/// uses, since a missed synonym is a false alarm on every such request.
fn implied(tool: &str, request_lower: &str) -> bool {
    let any = |words: &[&str]| words.iter().any(|w| request_lower.contains(w));
    match tool {
        // "a case" / "support case": what support staff log; "case" alone is also in
        // "just in case" and "showcase", which ask for nothing.
        "create_support_ticket" => {
            any(TICKET_WORDS)
                || any(PROBLEM_WORDS)
                || any(PROBLEM_PHRASES)
                || any(&[
                    "a case",
                    "new case",
                    "support case",
                    "incident",
                    "ticket",
                    "complaint",
                    "defective",
                    "broken",
                    "faulty",
                    "damaged",
                    "issue",
                    "problem",
                    "not working",
                    "stopped working",
                    "doesn't work",
                    "missing",
                    "refund",
                    "complain",
                    "report",
                    "escalate",
                    "wrong",
                    "delayed",
                    "return",
                    "replace",
                ])
        }
        "calculate_account_value" => any(&[
            "calculate",
            "value",
            "total",
            "worth",
            "purchase",
            "spend",
            "spent",
            "lifetime",
            "how much",
            "amounts",
        ]),
        "get_recent_customers" => any(&["recent", "latest", "newest", "customers", "lately", "last active"]),
        _ => true,
    }
}

impl Rule for UnusualSequence {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::UnusualToolSequence
    }

    fn observe(&mut self, e: &Event, run: Option<&RunState>, _cfg: &MonitorConfig) -> Vec<Finding> {
        let (EventKind::ToolCall { tool, args, .. }, Some(run)) = (&e.kind, run) else { return Vec::new() };
        let tool = &tool.name;
        let mut out = Vec::new();
        if !implied(tool, &run.request_lower) {
            out.push(Finding {
                rule: self.rule(),
                severity: AnomalySeverity::Medium,
                message: format!("{tool} was called but the request did not ask for it"),
                evidence: vec![e.id],
            });
        }
        let target = args.get("customer_id").and_then(|v| v.as_str()).map(|s| s.trim().to_ascii_uppercase());
        if let Some(target) = target
            && matches!(tool.as_str(), "create_support_ticket" | "calculate_account_value")
            && !run.customers.is_empty()
            && !run.customers.contains(&target)
        {
            out.push(Finding {
                rule: self.rule(),
                severity: AnomalySeverity::High,
                message: format!("{tool} on customer {target}, but the request names {}", run.customers.join(", ")),
                evidence: vec![e.id],
            });
        }
        if let Some(tainted) = run.tainted_by
            && !out.is_empty()
        {
            out.push(Finding {
                rule: AnomalyRule::PromptInjection,
                severity: AnomalySeverity::High,
                message: format!("the agent's next action ({tool}) departs from the request after injected content"),
                evidence: vec![tainted, e.id],
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::implied;

    /// Regression (monitor precision run): "log a case" is how support staff ask for a
    /// ticket, and raised `unusual_tool_sequence`; "just in case" still implies nothing.
    #[test]
    fn a_support_case_implies_a_ticket_and_in_case_does_not() {
        assert!(implied("create_support_ticket", "the feeder jams every time, log a case"));
        assert!(implied("create_support_ticket", "open a support case for abc123"));
        assert!(!implied("create_support_ticket", "look up abc123 just in case"));
        assert!(!implied("create_support_ticket", "show me the showcase customers"));
        // What the offline planner opens a ticket for, the monitor does not call unusual.
        assert!(implied("create_support_ticket", "the lid hinge on ghi789's smoker snapped off, asap please"));
    }
}
