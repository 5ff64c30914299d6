//! Warden's optimizers against DSPy's own, on the same trainset with a DummyLM answering
//! in the same order: `LabeledFewShot` and `BootstrapFewShot` give each of ReAct's two
//! predictors the same demos, in the same order, bootstrapped or labeled, as DSPy does
//! (`tests/dspy/optimizers.py` prints DSPy's). DSPy (pinned in `common/pypi.rs` users) is
//! installed from PyPI into a venv under the target directory on first use.

#[path = "common/pypi.rs"]
mod pypi;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use warden::agent::lm::dummy::DummyLm;
use warden::agent::predict::Example;
use warden::agent::program::ProgramState;
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::teleprompt::bootstrap::BootstrapFewShot;
use warden::agent::teleprompt::labeled::LabeledFewShot;
use warden::agent::teleprompt::{Metric, Outcome, Runner, Score};
use warden::agent::tool::{FnTool, Tool};
use warden::types::event::EventBus;

/// As `tests/dspy_interop.rs` pins it.
const DSPY: &str = "dspy==3.4.1";
/// The examples whose run answers correctly (as in optimizers.py).
const RIGHT: [usize; 3] = [1, 3, 4];

fn dspy(mode: &str) -> Value {
    let python = pypi::venv_python("dspy-venv", &[DSPY]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dspy/optimizers.py");
    let out = Command::new(python)
        .arg(script)
        .arg(mode)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("DSPY_CACHEDIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("dspy-cache"))
        .output()
        .expect("run python");
    assert!(out.status.success(), "optimizers.py {mode}: {}", String::from_utf8_lossy(&out.stderr));
    // DSPy prints its own progress lines first; the JSON is the last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn trainset() -> Vec<Example> {
    (0..10)
        .map(|i| {
            let values: Map<String, Value> =
                [("request".to_string(), json!(format!("q{i}"))), ("response".to_string(), json!(format!("a{i}")))]
                    .into_iter()
                    .collect();
            Example::new(values, &["request"])
        })
        .collect()
}

fn tools() -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(FnTool::new("lookup", "Look up a customer.", json!({"customer_id": {"type": "string"}}), |_| {
        Ok(json!("found"))
    }))]
}

/// `(augmented, request)` per demo, per predictor — what optimizers.py prints.
fn view(p: &ProgramState) -> Value {
    let mut out = Map::new();
    for (name, pred) in &p.predictors {
        let demos: Vec<Value> = pred
            .demos
            .iter()
            .map(|d| json!([d.get("augmented").and_then(Value::as_bool).unwrap_or(false), d["request"]]))
            .collect();
        out.insert(name.clone(), Value::Array(demos));
    }
    Value::Object(out)
}

/// Runs the ReAct with the program on one shared DummyLm, answers taken in order.
struct Dummy {
    lm: DummyLm,
    events: EventBus,
}

impl Runner for Dummy {
    fn run<'a>(&'a self, program: &'a ProgramState, ex: &'a Example) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let mut agent = ReAct::new(Signature::customer_service(), tools(), 5);
            agent.load_state(program).map_err(|e| e.to_string())?;
            let r = agent.run(&self.lm, &ex.inputs(), &self.events, "t").await.map_err(|e| e.to_string())?;
            Ok(Outcome { prediction: r.outputs, trace: r.trace, steps: r.steps, status: r.status, violations: vec![] })
        })
    }
}

struct SameResponse;

impl Metric for SameResponse {
    fn score(&self, ex: &Example, o: &Outcome) -> Score {
        let ok = ex.get("response").and_then(Value::as_str) == Some(o.response().as_str());
        Score { value: if ok { 1.0 } else { 0.0 }, reason: String::new() }
    }
}

fn student() -> ProgramState {
    ReAct::new(Signature::customer_service(), tools(), 5).state()
}

#[test]
fn labeled_few_shot_picks_the_demos_dspy_picks() {
    let ours = LabeledFewShot { k: 4 }.compile(&student(), &trainset(), true);
    assert_eq!(view(&ours), dspy("labeled"));
}

#[tokio::test]
async fn bootstrap_few_shot_keeps_the_traces_and_samples_the_rest_as_dspy_does() {
    let mut answers = Vec::new();
    for i in 0..10 {
        let step: Map<String, Value> =
            json!({"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": {}})
                .as_object()
                .unwrap()
                .clone();
        let response = if RIGHT.contains(&i) { format!("a{i}") } else { "wrong".into() };
        let answer: Map<String, Value> = json!({"reasoning": "r", "response": response}).as_object().unwrap().clone();
        answers.extend([step, answer]);
    }
    let runner = Dummy { lm: DummyLm::ordered(answers), events: EventBus::new() };
    let opt = BootstrapFewShot { max_bootstrapped_demos: 2, max_labeled_demos: 5, ..BootstrapFewShot::default() };
    let ours = opt.compile(&student(), None, &trainset(), &runner, &SameResponse, &|_| {}).await.unwrap();
    assert_eq!(ours.bootstrapped, vec![1, 3]);
    assert_eq!(view(&ours.program), dspy("bootstrap"));
}
