//! Possible prompt injection in a tool observation: instruction-like text, URLs, or hidden
//! Unicode (zero-width, bidi controls, tag characters).
//!
//! Only what a server or tool returned is judged: a success's content and a tool error's
//! message. Denials and failures are Warden's own words (a connection error names the
//! server's URL), so an outage must not read as an injection.

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalyRule, AnomalySeverity, CallOutcome, Event, EventKind};

pub struct Injection;

const PHRASES: &[&str] = &[
    "ignore all previous instructions",
    "ignore previous instructions",
    "ignore the above",
    "disregard previous",
    "disregard all prior",
    "new instructions",
    "system notice",
    "system prompt",
    "you are now",
    "you must now",
    "call create_support_ticket",
    "call get_",
    "send the",
];

fn hidden(c: char) -> bool {
    matches!(c as u32, 0x200B..=0x200F | 0x2060..=0x2064 | 0xFEFF | 0x202A..=0x202E | 0x2066..=0x2069 | 0xE0000..=0xE007F)
}

/// Why `text` looks like an injection attempt, if it does.
pub fn signs(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out: Vec<String> =
        PHRASES.iter().filter(|p| lower.contains(*p)).map(|p| format!("instruction-like text \"{p}\"")).collect();
    if lower.contains("http://") || lower.contains("https://") {
        out.push("a URL".into());
    }
    let n = text.chars().filter(|c| hidden(*c)).count();
    if n > 0 {
        out.push(crate::types::text::counted(n as u64, "hidden Unicode character", "hidden Unicode characters"));
    }
    out
}

/// The part of an outcome that came from the server or tool, if any. Exhaustive on
/// purpose: a new kind of outcome must decide whose words it carries.
fn server_content(outcome: &CallOutcome) -> Option<String> {
    match outcome {
        CallOutcome::Success { text, structured: Some(v) } if text.is_empty() => Some(v.to_string()),
        CallOutcome::Success { text, .. } => Some(text.clone()),
        CallOutcome::ToolError { message, .. } => Some(message.clone()),
        CallOutcome::Denied { .. } | CallOutcome::Failed { .. } => None,
    }
}

impl Rule for Injection {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::PromptInjection
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, _cfg: &MonitorConfig) -> Vec<Finding> {
        let EventKind::ToolResult { tool, outcome, .. } = &e.kind else { return Vec::new() };
        let Some(text) = server_content(outcome) else { return Vec::new() };
        let tool = &tool.name;
        let signs = signs(&text);
        if signs.is_empty() {
            return Vec::new();
        }
        vec![Finding {
            rule: AnomalyRule::PromptInjection,
            severity: AnomalySeverity::High,
            message: format!("possible prompt injection in {tool} output: {}", signs.join(", ")),
            evidence: vec![e.id],
        }]
    }
}
