//! A burst of 429s.

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState, Window};
use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventKind};

#[derive(Default)]
pub struct RateLimitBurst {
    window: Window,
}

impl Rule for RateLimitBurst {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::RateLimitBurst
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        let EventKind::ToolRateLimited { .. } = &e.kind else { return Vec::new() };
        self.window.push(e.at_ms, e.id, cfg.window_secs);
        if self.window.len() < cfg.rate_limit_burst {
            return Vec::new();
        }
        let evidence = self.window.ids();
        self.window.clear();
        vec![Finding {
            rule: self.rule(),
            severity: AnomalySeverity::Medium,
            message: format!("{} rate-limit responses within {} s", evidence.len(), cfg.window_secs),
            evidence,
        }]
    }
}
