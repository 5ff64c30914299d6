//! Enumeration: many distinct customers read in a short window, or sequential IDs.
//!
//! Per session, across runs: bulk reading spread over many requests is still bulk reading.
//! Only `get_customer_info` calls count, by the customer they name.

use std::collections::{HashMap, VecDeque};

use crate::observe::monitor::{Finding, MonitorConfig, Rule, RunState};
use crate::types::event::{AnomalyRule, AnomalySeverity, Event, EventKind};

#[derive(Default)]
pub struct Enumeration {
    /// Reads inside `window_secs` (time, event id, customer).
    reads: VecDeque<(u64, u64, String)>,
    /// The last `sequential_ids` reads, whatever their age (checked against
    /// `sequential_window_secs`).
    last: VecDeque<(u64, u64, String)>,
    /// Reads per customer inside the window (its length is the distinct count).
    distinct: HashMap<String, usize>,
    fired_distinct: bool,
    fired_sequential: bool,
}

fn number(id: &str) -> Option<(String, u32)> {
    (id.len() == 6).then(|| (id[..3].to_string(), id[3..].parse().ok())).and_then(|(p, n)| n.map(|n| (p, n)))
}

impl Rule for Enumeration {
    fn rule(&self) -> AnomalyRule {
        AnomalyRule::Enumeration
    }

    fn observe(&mut self, e: &Event, _run: Option<&RunState>, cfg: &MonitorConfig) -> Vec<Finding> {
        let EventKind::ToolCall { tool, args, .. } = &e.kind else { return Vec::new() };
        if tool.name != "get_customer_info" {
            return Vec::new();
        }
        let Some(id) = args.get("customer_id").and_then(|v| v.as_str()).map(|s| s.trim().to_ascii_uppercase()) else {
            return Vec::new();
        };
        self.reads.push_back((e.at_ms, e.id, id.clone()));
        *self.distinct.entry(id.clone()).or_default() += 1;
        let horizon = e.at_ms.saturating_sub(cfg.window_secs * 1000);
        while self.reads.front().is_some_and(|(t, _, _)| *t < horizon) {
            if let Some((_, _, old)) = self.reads.pop_front()
                && let Some(n) = self.distinct.get_mut(&old)
            {
                *n -= 1;
                if *n == 0 {
                    self.distinct.remove(&old);
                }
            }
        }
        let mut out = Vec::new();
        let distinct = self.distinct.len();
        if distinct >= cfg.enumeration_distinct && !self.fired_distinct {
            self.fired_distinct = true;
            out.push(Finding {
                rule: self.rule(),
                severity: AnomalySeverity::High,
                message: format!("{distinct} distinct customers read within {} s", cfg.window_secs),
                evidence: self.reads.iter().map(|(_, id, _)| *id).collect(),
            });
        } else if distinct < cfg.enumeration_distinct {
            self.fired_distinct = false;
        }
        // Sequential: the last N reads are consecutive numbers with one prefix, the first
        // no older than `sequential_window_secs` (its own, longer window: a slow walk of
        // the ID space stays under the distinct-customer window but is still a walk).
        self.last.push_back((e.at_ms, e.id, id.clone()));
        while self.last.len() > cfg.sequential_ids {
            self.last.pop_front();
        }
        let tail: Vec<&(u64, u64, String)> = self.last.iter().rev().collect();
        let recent =
            self.last.front().is_some_and(|(t, _, _)| e.at_ms.saturating_sub(*t) <= cfg.sequential_window_secs * 1000);
        let sequential = recent
            && tail.len() == cfg.sequential_ids
            && tail.windows(2).all(|w| match (number(&w[0].2), number(&w[1].2)) {
                (Some((p1, n1)), Some((p0, n0))) => p1 == p0 && n1 == n0 + 1,
                _ => false,
            });
        if sequential && !self.fired_sequential {
            self.fired_sequential = true;
            out.push(Finding {
                rule: self.rule(),
                severity: AnomalySeverity::Medium,
                message: format!(
                    "sequential customer IDs read ({} … {})",
                    tail.last().map(|t| t.2.as_str()).unwrap_or(""),
                    id
                ),
                evidence: tail.iter().rev().map(|t| t.1).collect(),
            });
        } else if !sequential {
            self.fired_sequential = false;
        }
        out
    }
}
