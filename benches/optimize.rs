//! Benchmark: `BootstrapFewShot` examples per second with a zero-latency LM and
//! zero-latency tools — the optimizer's own overhead plus ReAct's (prompt formatting with
//! demos, parsing, dispatch, events), nothing else. Every example of the shipped trainset
//! bootstraps (`max_bootstrapped_demos` = its size, a metric that accepts every run), each
//! run being two ReAct steps (a tool call, then `finish`) and the extract step: the same
//! work `benches/dspy_bootstrap.py` gives DSPy with its `DummyLM`, for the side-by-side
//! figure in the README.
//!
//! Run: `cargo bench --bench optimize`.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use warden::agent::lm::{Completion, Lm, LmError, Message, Usage};
use warden::agent::predict::Example;
use warden::agent::program::ProgramState;
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::teleprompt::bootstrap::BootstrapFewShot;
use warden::agent::teleprompt::trainset::{DEFAULT_TRAINSET, parse};
use warden::agent::teleprompt::{Metric, Outcome, Runner, Score};
use warden::agent::tool::{FnTool, Tool};
use warden::types::event::EventBus;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CALL: &str = "[[ ## next_thought ## ]]\nLook up the customer.\n\n[[ ## next_tool_name ## ]]\nget_customer_info\n\n[[ ## next_tool_args ## ]]\n{\"customer_id\": \"ABC123\"}\n\n[[ ## completed ## ]]";
const FINISH: &str = "[[ ## next_thought ## ]]\nDone.\n\n[[ ## next_tool_name ## ]]\nfinish\n\n[[ ## next_tool_args ## ]]\n{}\n\n[[ ## completed ## ]]";
const ANSWER: &str = "[[ ## reasoning ## ]]\nLooked it up.\n\n[[ ## response ## ]]\nSarah Johnson is a gold customer.\n\n[[ ## completed ## ]]";

/// Answers at once: a tool call first, then `finish`, then the extract step's answer.
struct InstantLm;

impl Lm for InstantLm {
    fn name(&self) -> &str {
        "instant"
    }
    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        let last = messages.last().map(|m| m.content.as_str()).unwrap_or("");
        let text = if !last.contains("`[[ ## next_thought ## ]]`") {
            ANSWER
        } else if last.contains("[[ ## tool_name_0 ## ]]") {
            FINISH
        } else {
            CALL
        };
        Box::pin(async move { Ok(Completion { text: text.to_string(), usage: Usage::default() }) })
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

fn tools() -> Vec<Arc<dyn Tool>> {
    let customer = json!({"customer_id": "ABC123", "name": "Sarah Johnson", "tier": "gold", "status": "active"});
    ["get_customer_info", "get_recent_customers", "create_support_ticket", "calculate_account_value"]
        .iter()
        .map(|n| {
            let c = customer.clone();
            Arc::new(FnTool::new(
                n,
                "A customer-service tool.",
                json!({"customer_id": {"type": "string"}}),
                move |_| Ok(Value::String(c.to_string())),
            )) as Arc<dyn Tool>
        })
        .collect()
}

struct Local {
    tools: Vec<Arc<dyn Tool>>,
    events: EventBus,
}

impl Runner for Local {
    fn run<'a>(&'a self, program: &'a ProgramState, example: &'a Example) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let mut agent = ReAct::new(Signature::customer_service(), self.tools.clone(), 5);
            agent.load_state(program).map_err(|e| e.to_string())?;
            let r = agent.run(&InstantLm, &example.inputs(), &self.events, "bench").await.map_err(|e| e.to_string())?;
            Ok(Outcome { prediction: r.outputs, trace: r.trace, steps: r.steps, status: r.status, violations: vec![] })
        })
    }
}

struct Accept;

impl Metric for Accept {
    fn score(&self, _: &Example, _: &Outcome) -> Score {
        Score { value: 1.0, reason: String::new() }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let trainset: Vec<Example> =
        parse(DEFAULT_TRAINSET, "trainset").expect("trainset").iter().map(|e| e.to_example()).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let events = EventBus::new();
    let runner = Local { tools: tools(), events };
    let student = ReAct::new(Signature::customer_service(), tools(), 5).state();
    let opt = BootstrapFewShot { max_bootstrapped_demos: trainset.len(), ..BootstrapFewShot::default() };
    rt.block_on(async {
        for _ in 0..5 {
            opt.compile(&student, None, &trainset, &runner, &Accept, &|_| {}).await.expect("compile");
        }
        let rounds = 60u32;
        let start = Instant::now();
        for _ in 0..rounds {
            let out = opt.compile(&student, None, &trainset, &runner, &Accept, &|_| {}).await.expect("compile");
            assert_eq!(out.bootstrapped.len(), trainset.len());
        }
        let secs = start.elapsed().as_secs_f64();
        let examples = f64::from(rounds) * trainset.len() as f64;
        println!(
            "BootstrapFewShot, zero-latency LM and tools: {:.0} examples/s ({:.1} µs per example; {} examples × {rounds} compiles)",
            examples / secs,
            secs / examples * 1e6,
            trainset.len()
        );
    });
}
