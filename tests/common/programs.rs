//! A compiled customer-service program for the program-file tests: DSPy's ReAct over the
//! seed signature and tools named, described and typed exactly as the customer-service
//! server advertises them (`tests/golden/dspy/customer_service_tools.json`, which
//! `tests/adapter_golden.rs` checks against the live server), with a bootstrapped step demo
//! for `react`, and a bootstrapped and a labeled demo for `extract.predict`. Included by
//! path (`#[path = "common/programs.rs"] mod programs;`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use warden::agent::program::{LearnedConstraint, OptimizationMetrics, ProgramFile, ScoreSummary, SecurityConfig};
use warden::agent::react::{ReAct, format_trajectory};
use warden::agent::signature::Signature;
use warden::agent::tool::{FnTool, Tool, ToolFailure};
use warden::types::scope::ScopeSet;

/// The four customer-service tools as the agent sees them.
pub fn tools() -> Vec<Arc<dyn Tool>> {
    let path = format!("{}/tests/golden/dspy/customer_service_tools.json", env!("CARGO_MANIFEST_DIR"));
    let specs: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    specs
        .into_iter()
        .map(|s| {
            // Known only by its advertised spec: these tests never call one.
            Arc::new(FnTool::new(
                s["name"].as_str().unwrap(),
                s["description"].as_str().unwrap(),
                s["args"].clone(),
                |_| Err(ToolFailure("not callable in this test".into())),
            )) as Arc<dyn Tool>
        })
        .collect()
}

/// The seed's program, uncompiled: `dspy.ReAct(CustomerServiceSignature, tools, max_iters=5)`.
pub fn react() -> ReAct {
    ReAct::new(Signature::customer_service(), tools(), 5)
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

pub const REQUEST: &str = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective.";

/// The program with demos, as BootstrapFewShot would leave it.
pub fn compiled() -> ReAct {
    let mut r = react();
    let mut traj = Map::new();
    traj.insert("thought_0".into(), json!("I should look up the customer first."));
    traj.insert("tool_name_0".into(), json!("get_customer_info"));
    traj.insert("tool_args_0".into(), json!({"customer_id": "ABC123"}));
    traj.insert("observation_0".into(), json!({"customer_id": "ABC123", "name": "Sarah Johnson", "tier": "gold"}));
    r.react.demos = vec![obj(json!({
        "request": REQUEST,
        "trajectory": format_trajectory(&traj),
        "next_thought": "Sarah Johnson is a gold customer; open a high-priority ticket for the grill.",
        "next_tool_name": "create_support_ticket",
        "next_tool_args": {"customer_id": "ABC123", "subject": "Defective bbq grill", "description": "The bbq grill she bought is defective.", "priority": "high"},
        "augmented": true,
    }))];
    r.extract.predict.demos = vec![
        obj(json!({
            "request": REQUEST,
            "trajectory": format_trajectory(&traj),
            "reasoning": "The ticket was opened for the gold customer.",
            "response": "I opened ticket T-1001 (high priority) for Sarah Johnson's defective bbq grill.",
            "augmented": true,
        })),
        obj(
            json!({"request": "What is the account value of XYZ789?", "response": "XYZ789's account value is $1,240.00."}),
        ),
    ];
    r
}

/// A security configuration such as `warden optimize` writes.
pub fn security() -> SecurityConfig {
    let read = ScopeSet::parse("customer:read").unwrap();
    SecurityConfig {
        grant: ScopeSet::parse("customer:read ticket:create").unwrap(),
        required_scopes: BTreeMap::from([
            ("calculate_account_value".to_string(), ScopeSet::parse("account:read").unwrap()),
            ("create_support_ticket".to_string(), ScopeSet::parse("ticket:create").unwrap()),
            ("get_customer_info".to_string(), read.clone()),
        ]),
        tools: Vec::new(),
        optimization_metrics: OptimizationMetrics {
            optimizer: "bootstrap".into(),
            trainset: 8,
            valset: 0,
            penalty: 0.1,
            before: ScoreSummary { base: 0.5, violations: 3, final_score: 0.35 },
            after: ScoreSummary { base: 0.875, violations: 0, final_score: 0.875 },
            candidates: Vec::new(),
        },
        learned_constraints: vec![LearnedConstraint {
            tool: "create_support_ticket".into(),
            grant: read,
            missing: ScopeSet::parse("ticket:create").unwrap(),
            kind: "denied".into(),
            source: "production".into(),
            count: 2,
            request: Some(REQUEST.into()),
        }],
        // 2026-01-01T00:00:00Z
        timestamp: 1_767_225_600,
    }
}

pub fn program_file() -> ProgramFile {
    ProgramFile { program: compiled().state(), security: Some(security()) }
}
