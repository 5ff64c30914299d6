//! The agent retrying the same denied call again and again within one run.

use std::collections::HashMap;

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalyRule, AnomalySeverity, CallOutcome, Event, EventKind};

#[derive(Default)]
pub struct RepeatedDenial {
    /// (run, tool, args digest) → denial event ids.
    seen: HashMap<(String, String, String), Vec<u64>>,
}

impl Rule for RepeatedDenial {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::RepeatedDeniedCall
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        let (Some(run), EventKind::ToolResult { tool, outcome: CallOutcome::Denied { .. }, audit, .. }) =
            (&e.run_id, &e.kind)
        else {
            return Vec::new();
        };
        let tool = &tool.name;
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
            rule: AnomalyRule::RepeatedDeniedCall,
            severity: AnomalySeverity::Medium,
            message: format!("the agent retried the denied call {tool} {} times in run {run}", ids.len()),
            evidence: ids.clone(),
        }]
    }
}
