//! A server's tool manifest hash changed since first seen in this process (a "rug pull").
//! The client also persists first-seen hashes and blocks changed tools until approved.

use std::collections::HashMap;

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventKind};

#[derive(Default)]
pub struct ManifestChange {
    first: HashMap<String, (String, u64)>,
}

impl Rule for ManifestChange {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::ManifestChanged
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, _cfg: &MonitorConfig) -> Vec<Finding> {
        let EventKind::ManifestRecorded { server, hash, .. } = &e.kind else { return Vec::new() };
        match self.first.get(server) {
            None => {
                self.first.insert(server.clone(), (hash.clone(), e.id));
                Vec::new()
            }
            Some((first, _)) if first == hash => Vec::new(),
            Some((first, first_id)) => vec![Finding {
                rule: self.rule(),
                severity: AnomalySeverity::High,
                message: format!(
                    "the tool manifest of {server} changed ({} → {}); its tools are blocked until approved",
                    &first[..12.min(first.len())],
                    &hash[..12.min(hash.len())]
                ),
                evidence: vec![*first_id, e.id],
            }],
        }
    }
}
