//! More than N permission denials of one tool inside the window (the seed: more than 10).

use std::collections::HashMap;

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState, Window};
use crate::types::event::{AnomalyRule, AnomalySeverity, CallOutcome, Event, EventKind};
use crate::types::tool::ToolName;

#[derive(Default)]
pub struct DenialSpike {
    per_tool: HashMap<ToolName, Window>,
}

impl Rule for DenialSpike {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::DenialSpike
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        let EventKind::ToolResult { tool, outcome: CallOutcome::Denied { .. }, .. } = &e.kind else {
            return Vec::new();
        };
        let w = self.per_tool.entry(tool.clone()).or_default();
        w.push(e.at_ms, e.id, cfg.window_secs);
        if w.len() <= cfg.denial_spike {
            return Vec::new();
        }
        let evidence = w.ids();
        // Report once per spike; a new spike needs a fresh run of denials.
        w.clear();
        vec![Finding {
            rule: self.rule(),
            severity: AnomalySeverity::High,
            message: format!("{} permission denials of {} within {} s", evidence.len(), tool.name, cfg.window_secs),
            evidence,
        }]
    }
}
