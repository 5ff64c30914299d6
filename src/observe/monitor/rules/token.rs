//! Token trouble: any token that failed verification, and repeated 401s.

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState, Window};
use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventKind, RefreshReason};

#[derive(Default)]
pub struct TokenTrouble {
    unauthorized: Window,
}

impl Rule for TokenTrouble {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::TokenTrouble
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        match &e.kind {
            EventKind::TokenRejected { check, .. } => vec![Finding {
                rule: self.rule(),
                severity: AnomalySeverity::High,
                message: format!("the authorization server issued a token that failed verification ({check})"),
                evidence: vec![e.id],
            }],
            EventKind::TokenIssued { reason: RefreshReason::Unauthorized, .. } => {
                self.unauthorized.push(e.at_ms, e.id, cfg.window_secs);
                if self.unauthorized.len() < cfg.repeated_401 {
                    return Vec::new();
                }
                let evidence = self.unauthorized.ids();
                self.unauthorized.clear();
                vec![Finding {
                    rule: self.rule(),
                    severity: AnomalySeverity::Medium,
                    message: format!("{} refreshes after 401 responses within {} s", evidence.len(), cfg.window_secs),
                    evidence,
                }]
            }
            _ => Vec::new(),
        }
    }
}
