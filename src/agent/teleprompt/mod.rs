//! DSPy's optimizers ("teleprompters") over Warden's ReAct, with DSPy's semantics:
//! `LabeledFewShot`, `BootstrapFewShot` and `BootstrapFewShotWithRandomSearch`, and
//! `evaluate` (DSPy's `Evaluate`: a program scored over a dev set, bounded concurrency).
//!
//! An optimizer sees a program only as its state (`ProgramState`: each predictor's demos
//! and instructions) and runs it through a `Runner` — the session core in Warden, scripted
//! tools in tests — which reports what the run did: the prediction, the predictor calls
//! (DSPy's trace) and the security violations seen in its events. A `Metric` scores a run
//! with a reason; `metric` has the seeds' security-aware one.
//!
//! Random draws use `pyrandom`, CPython's generator, so the same seed picks the same demos
//! as DSPy does.

pub mod bootstrap;
pub mod labeled;
pub mod metric;
pub mod pyrandom;
pub mod random_search;
pub mod trainset;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value};

use super::predict::{Example, Prediction};
use super::program::ProgramState;
use super::react::{Step, TraceStep};
use crate::types::event::{AnomalyRule, DenialSide, RunStatus};
use crate::types::scope::ScopeSet;

/// A security violation seen in a run's events (the seeds' `_count_violations`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    /// A call the grant did not cover, refused by the client or the server.
    Denied { tool: String, side: DenialSide, missing: ScopeSet },
    /// An anomaly the run itself raised (every event it cites is the run's).
    Anomaly { rule: AnomalyRule, message: String },
    /// A destructive call that ran without anyone confirming it.
    Unconfirmed { tool: String },
}

impl Violation {
    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Denied { tool, missing, side } => format!("{tool} denied ({}: missing {missing})", side.label()),
            Self::Anomaly { rule, .. } => format!("anomaly {rule}"),
            Self::Unconfirmed { tool } => format!("{tool} ran unconfirmed"),
        }
    }
}

/// What one run of a program on one example did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub prediction: Prediction,
    pub trace: Vec<TraceStep>,
    pub steps: Vec<Step>,
    pub status: RunStatus,
    pub violations: Vec<Violation>,
}

impl Outcome {
    /// The tools called, in order (finish and invalid actions left out).
    pub fn tools(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| {
                !matches!(
                    s.kind,
                    crate::types::event::ObservationKind::Finish | crate::types::event::ObservationKind::Invalid
                )
            })
            .map(|s| s.tool.clone())
            .collect()
    }

    /// The program's answer (its output fields, joined).
    pub fn response(&self) -> String {
        self.prediction.get("response").map(super::pyfmt::str_scalar).unwrap_or_default()
    }
}

/// Runs a program (a state applied to the ReAct) on one example. An `Err` is a run that
/// could not finish (the model failed): it counts toward `max_errors`.
pub trait Runner: Send + Sync {
    fn run<'a>(&'a self, program: &'a ProgramState, example: &'a Example) -> BoxFuture<'a, Result<Outcome, String>>;
}

/// A metric's verdict: a score in [0, 1] and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub value: f64,
    pub reason: String,
}

pub trait Metric: Send + Sync {
    fn score(&self, example: &Example, outcome: &Outcome) -> Score;
}

/// What an optimizer reports while it works.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// `bootstrap`, `evaluate`, `candidate 3/16`…
    pub phase: String,
    pub done: usize,
    pub total: usize,
}

pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Why an optimization stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OptimizeError {
    #[error(
        "{count} runs failed (max_errors = {max}); the last: {last}. Fix the cause (often the model: see the error) or raise --max-errors"
    )]
    TooManyErrors { count: usize, max: usize, last: String },
    #[error("the trainset is empty: add [[example]] entries")]
    EmptyTrainset,
}

/// One example's result in an evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalItem {
    pub index: usize,
    pub score: Score,
    /// `None` when the run failed (then `error` says why and the score is 0).
    #[serde(skip)]
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Mean score in [0, 1] (a failed run counts 0).
    pub average: f64,
    pub items: Vec<EvalItem>,
}

/// DSPy's `Evaluate`: every example of `devset` through `program`, at most `concurrency`
/// at a time, scored by `metric`; results in the dev set's order.
pub async fn evaluate(
    runner: &dyn Runner,
    program: &ProgramState,
    devset: &[Example],
    metric: &dyn Metric,
    concurrency: usize,
    progress: ProgressFn<'_>,
    phase: &str,
) -> EvalReport {
    let total = devset.len();
    // A hand-rolled window over `FuturesOrdered` (not `stream::buffered` over a closure):
    // the closure form's future is not `Send` for every lifetime, so the session core could
    // not spawn it.
    let mut pending = futures::stream::FuturesOrdered::new();
    let mut items = Vec::with_capacity(total);
    let mut next = 0usize;
    while items.len() < total {
        while next < total && pending.len() < concurrency.max(1) {
            pending.push_back(run_one(runner, program, &devset[next], metric, next));
            next += 1;
        }
        if let Some(item) = pending.next().await {
            items.push(item);
            progress(Progress { phase: phase.to_string(), done: items.len(), total });
        }
    }
    let average =
        if items.is_empty() { 0.0 } else { items.iter().map(|i| i.score.value).sum::<f64>() / items.len() as f64 };
    EvalReport { average, items }
}

async fn run_one(
    runner: &dyn Runner,
    program: &ProgramState,
    example: &Example,
    metric: &dyn Metric,
    index: usize,
) -> EvalItem {
    match runner.run(program, example).await {
        Ok(outcome) => EvalItem { index, score: metric.score(example, &outcome), outcome: Some(outcome), error: None },
        Err(e) => EvalItem {
            index,
            score: Score { value: 0.0, reason: format!("the run failed: {e}") },
            outcome: None,
            error: Some(e),
        },
    }
}

/// DSPy's `reset_copy`: the same program without demos.
pub fn reset_copy(program: &ProgramState) -> ProgramState {
    let mut p = program.clone();
    for (_, pred) in &mut p.predictors {
        pred.demos.clear();
    }
    p
}

/// A raw (labeled) demo: the example's values, as DSPy stores an `Example`.
pub fn labeled_demo(ex: &Example) -> Map<String, Value> {
    ex.values.clone()
}

#[cfg(test)]
pub(crate) mod testing {
    //! A scripted runner for optimizer tests: each example's request maps to the tools a
    //! run "calls"; a run follows the first demo (of the `react` predictor) whose request
    //! equals one in `follow`, as DummyLM follows examples.

    use super::*;
    use crate::agent::program::{EXTRACT, PredictorState, REACT};
    use crate::types::event::ObservationKind;
    use serde_json::json;
    use std::collections::HashMap;

    pub fn example(request: &str, answer: &str) -> Example {
        let mut values = Map::new();
        values.insert("request".into(), json!(request));
        values.insert("response".into(), json!(answer));
        Example::new(values, &["request"])
    }

    pub fn program() -> ProgramState {
        let react = PredictorState { instructions: "step".into(), ..Default::default() };
        let extract = PredictorState { instructions: "extract".into(), ..Default::default() };
        ProgramState { predictors: vec![(REACT.into(), react), (EXTRACT.into(), extract)], ..Default::default() }
    }

    /// Answers each request with its scripted response; requests in `fail` error out;
    /// requests in `deny` get a denied step.
    #[derive(Default)]
    pub struct Scripted {
        pub answers: HashMap<String, String>,
        pub fail: Vec<String>,
        pub deny: Vec<String>,
        pub calls: parking_lot::Mutex<Vec<(String, usize)>>,
    }

    impl Runner for Scripted {
        fn run<'a>(&'a self, program: &'a ProgramState, ex: &'a Example) -> BoxFuture<'a, Result<Outcome, String>> {
            Box::pin(async move {
                let request = ex.get("request").and_then(Value::as_str).unwrap_or_default().to_string();
                self.calls.lock().push((request.clone(), program.demo_count()));
                if self.fail.contains(&request) {
                    return Err(format!("model failed on {request}"));
                }
                let answer = self.answers.get(&request).cloned().unwrap_or_else(|| "unknown".into());
                let denied = self.deny.contains(&request);
                let mut prediction = Map::new();
                prediction.insert("response".into(), json!(answer));
                let step_in: Map<String, Value> =
                    [("request".to_string(), json!(request)), ("trajectory".to_string(), json!(""))]
                        .into_iter()
                        .collect();
                let trace = vec![
                    TraceStep {
                        predictor: REACT,
                        inputs: step_in.clone(),
                        outputs: [("next_tool_name".to_string(), json!("lookup"))].into_iter().collect(),
                    },
                    TraceStep {
                        predictor: REACT,
                        inputs: step_in.clone(),
                        outputs: [("next_tool_name".to_string(), json!("finish"))].into_iter().collect(),
                    },
                    TraceStep { predictor: EXTRACT, inputs: step_in, outputs: prediction.clone() },
                ];
                let steps = vec![Step {
                    thought: String::new(),
                    tool: "lookup".into(),
                    args: json!({}),
                    observation: String::new(),
                    kind: if denied { ObservationKind::Denied } else { ObservationKind::Ok },
                }];
                let violations = if denied {
                    vec![Violation::Denied {
                        tool: "lookup".into(),
                        side: DenialSide::Client,
                        missing: ScopeSet::parse("x:y").unwrap_or_default(),
                    }]
                } else {
                    Vec::new()
                };
                Ok(Outcome {
                    prediction,
                    trace,
                    steps,
                    status: if denied { RunStatus::Denied } else { RunStatus::Ok },
                    violations,
                })
            })
        }
    }

    /// 1.0 when the response equals the example's, else 0.
    pub struct Exact;

    impl Metric for Exact {
        fn score(&self, ex: &Example, o: &Outcome) -> Score {
            let ok = ex.get("response").and_then(Value::as_str) == Some(o.response().as_str());
            Score { value: if ok { 1.0 } else { 0.0 }, reason: String::new() }
        }
    }

    pub fn noop(_: Progress) {}

    /// `evaluate` keeps the dev set's order whatever order the runs finish in, scores a
    /// failed run 0 with its error, and averages over every item.
    #[tokio::test]
    async fn evaluate_averages_scores_and_counts_errors_as_zero() {
        let devset: Vec<Example> = (0..4).map(|i| example(&format!("q{i}"), &format!("a{i}"))).collect();
        let r = Scripted {
            answers: [("q0", "a0"), ("q1", "wrong"), ("q2", "a2")]
                .iter()
                .map(|(q, a)| (q.to_string(), a.to_string()))
                .collect(),
            fail: vec!["q3".into()],
            ..Default::default()
        };
        let report = evaluate(&r, &program(), &devset, &Exact, 2, &noop, "evaluate").await;
        assert_eq!(report.items.iter().map(|i| i.index).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(report.items.iter().map(|i| i.score.value).collect::<Vec<_>>(), vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(report.average, 0.5);
        assert_eq!(report.items[3].error.as_deref(), Some("model failed on q3"));
        assert_eq!(report.items[3].score.reason, "the run failed: model failed on q3");
    }
}
