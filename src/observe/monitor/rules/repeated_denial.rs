//! The agent retrying the same denied call again and again within one run.

use std::collections::HashMap;

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalySeverity, Event, EventKind};

#[derive(Default)]
pub struct RepeatedDenial {
    /// (run, tool, args digest) → denial event ids.
    seen: HashMap<(String, String, String), Vec<u64>>,
}

impl Rule for RepeatedDenial {
    fn name(&self) -> &'static str {
        "repeated_denied_call"
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        let (Some(run), EventKind::Denied { tool, audit, .. }) = (&e.run_id, &e.kind) else { return Vec::new() };
        if self.seen.len() > 10_000 {
            self.seen.clear();
        }
        let key = (run.clone(), tool.clone(), audit.args_digest.clone().unwrap_or_default());
        let ids = self.seen.entry(key).or_default();
        ids.push(e.id);
        if ids.len() != cfg.repeated_denials {
            return Vec::new();
        }
        vec![Finding {
            rule: "repeated_denied_call",
            severity: AnomalySeverity::Medium,
            message: format!("the agent retried the denied call {tool} {} times in run {run}", ids.len()),
            evidence: ids.clone(),
        }]
    }
}
