//! Benchmark: agent overhead per ReAct step with a zero-latency LM and a zero-latency tool
//! — formatting the DSPy prompt (system message with tool list, growing trajectory),
//! parsing the completion, validating arguments, dispatching and emitting events.
//!
//! Run: `cargo bench --bench agent_step`. Each run is 5 tool steps plus the extract step;
//! the figure is total time divided by the 5 steps (the extract is charged to them).

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use warden::agent::lm::{Completion, Lm, LmError, Message, Usage};
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::tool::{FnTool, Tool};
use warden::types::event::EventBus;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers instantly: a tool call for ReAct steps, an answer for the extract step.
struct InstantLm;

const STEP: &str = "[[ ## next_thought ## ]]\nLook up the customer.\n\n[[ ## next_tool_name ## ]]\nget_customer_info\n\n[[ ## next_tool_args ## ]]\n{\"customer_id\": \"ABC123\"}\n\n[[ ## completed ## ]]";
const EXTRACT: &str = "[[ ## reasoning ## ]]\nLooked it up.\n\n[[ ## response ## ]]\nSarah Johnson is a gold customer.\n\n[[ ## completed ## ]]";

impl Lm for InstantLm {
    fn name(&self) -> &str {
        "instant"
    }
    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        let react = messages.last().is_some_and(|m| m.content.contains("`[[ ## next_thought ## ]]`"));
        Box::pin(async move {
            Ok(Completion { text: if react { STEP } else { EXTRACT }.to_string(), usage: Usage::default() })
        })
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

fn tools() -> Vec<Arc<dyn Tool>> {
    let customer = json!({"customer_id": "ABC123", "name": "Sarah Johnson", "email": "sarah.johnson@example.com", "tier": "gold", "status": "active", "lifetime_value": 4820.75});
    let names = ["get_customer_info", "get_recent_customers", "create_support_ticket", "calculate_account_value"];
    names
        .iter()
        .map(|n| {
            let c = customer.clone();
            Arc::new(FnTool::new(
                n,
                "A customer-service tool.",
                json!({"customer_id": {"type": "string", "description": "Customer ID"}}),
                move |_| Ok(Value::String(c.to_string())),
            )) as Arc<dyn Tool>
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let react = ReAct::new(Signature::customer_service(), tools(), 5);
    let events = EventBus::new();
    let _sink = events.subscribe(1 << 22);
    let inputs: Map<String, Value> = [(
        "request".to_string(),
        json!("For customer ABC123 create a support ticket as the bbq grill that she bought is defective."),
    )]
    .into_iter()
    .collect();
    rt.block_on(async {
        for _ in 0..200 {
            react.run(&InstantLm, &inputs, &events, "warm").await.expect("run");
        }
        let runs = 5_000u32;
        let start = Instant::now();
        for _ in 0..runs {
            let r = react.run(&InstantLm, &inputs, &events, "bench").await.expect("run");
            assert_eq!(r.steps.len(), 5);
        }
        let per_step = start.elapsed().as_secs_f64() / f64::from(runs * 5) * 1e6;
        println!("agent overhead per ReAct step (zero-latency LM and tool): {per_step:.1} µs  ({runs} runs × 5 steps + extract)");
    });
}
