//! DSPy's `BootstrapFewShot`: runs a teacher (the student, with labeled demos, unless one
//! is given) over the trainset; each run the metric accepts turns its predictor calls into
//! demos (`augmented: true`) for every predictor — ReAct's step predictor and its extract
//! step alike. An example is never its own demo while it runs. The student then gets up to
//! `max_bootstrapped_demos` traces per predictor plus labeled demos sampled from the
//! examples that did not bootstrap, up to `max_labeled_demos` in all.
//!
//! As in DSPy: examples are tried in order until enough have bootstrapped, each up to
//! `max_rounds` times; without a threshold any non-zero score is a success; a trace with
//! several calls of one predictor gives one of them (the last, or with probability ½ a
//! random earlier one); the leftovers are shuffled and sampled with `random.Random(0)`;
//! the run stops once `max_errors` runs have failed. One difference: DSPy seeds that last
//! choice with a hash of the pickled demos, Warden with SHA-256 of their JSON.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::labeled::LabeledFewShot;
use super::pyrandom::PyRandom;
use super::{Metric, OptimizeError, Progress, ProgressFn, Runner, Score, labeled_demo, reset_copy};
use crate::agent::predict::Example;
use crate::agent::program::ProgramState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapFewShot {
    /// A run is a success when its score reaches this (`None`: any non-zero score).
    pub metric_threshold: Option<f64>,
    pub max_bootstrapped_demos: usize,
    pub max_labeled_demos: usize,
    pub max_rounds: usize,
    /// Stop once this many runs have failed (DSPy's `settings.max_errors`: 10).
    pub max_errors: usize,
}

impl Default for BootstrapFewShot {
    fn default() -> Self {
        Self { metric_threshold: None, max_bootstrapped_demos: 4, max_labeled_demos: 16, max_rounds: 1, max_errors: 10 }
    }
}

/// One bootstrap attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub example: usize,
    pub round: usize,
    pub accepted: bool,
    /// `None` when the run failed.
    pub score: Option<Score>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: ProgramState,
    /// Trainset indices whose traces became demos.
    pub bootstrapped: Vec<usize>,
    pub attempts: Vec<Attempt>,
}

impl BootstrapFewShot {
    pub async fn compile(
        &self,
        student: &ProgramState,
        teacher: Option<&ProgramState>,
        trainset: &[Example],
        runner: &dyn Runner,
        metric: &dyn Metric,
        progress: ProgressFn<'_>,
    ) -> Result<Compiled, OptimizeError> {
        let mut student = reset_copy(student);
        let mut teacher = teacher.cloned().unwrap_or_else(|| student.clone());
        // DSPy gives an uncompiled teacher labeled demos first.
        if self.max_labeled_demos > 0 && teacher.demo_count() == 0 {
            teacher = LabeledFewShot { k: self.max_labeled_demos }.compile(&teacher, trainset, true);
        }
        let names: Vec<String> = student.predictors.iter().map(|(n, _)| n.clone()).collect();
        let mut traces: Vec<(String, Vec<Map<String, Value>>)> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        let mut bootstrapped = BTreeSet::new();
        let mut attempts = Vec::new();
        let mut errors = 0usize;
        for (idx, example) in trainset.iter().enumerate() {
            if bootstrapped.len() >= self.max_bootstrapped_demos {
                break;
            }
            for round in 0..self.max_rounds.max(1) {
                // The example is never its own demo.
                let mut without = teacher.clone();
                for (_, p) in &mut without.predictors {
                    p.demos.retain(|d| *d != example.values);
                }
                let outcome = match runner.run(&without, example).await {
                    Ok(o) => o,
                    Err(e) => {
                        errors += 1;
                        attempts.push(Attempt {
                            example: idx,
                            round,
                            accepted: false,
                            score: None,
                            error: Some(e.clone()),
                        });
                        if errors >= self.max_errors {
                            return Err(OptimizeError::TooManyErrors { count: errors, max: self.max_errors, last: e });
                        }
                        continue;
                    }
                };
                let score = metric.score(example, &outcome);
                let accepted = match self.metric_threshold {
                    Some(t) => score.value >= t,
                    None => score.value != 0.0,
                };
                attempts.push(Attempt { example: idx, round, accepted, score: Some(score), error: None });
                if accepted {
                    let mut per: Vec<(String, Vec<Map<String, Value>>)> = Vec::new();
                    for step in &outcome.trace {
                        let mut demo = Map::new();
                        demo.insert("augmented".into(), Value::Bool(true));
                        demo.extend(step.inputs.clone());
                        demo.extend(step.outputs.clone());
                        match per.iter_mut().find(|(n, _)| n == step.predictor) {
                            Some((_, v)) => v.push(demo),
                            None => per.push((step.predictor.to_string(), vec![demo])),
                        }
                    }
                    for (name, demos) in per {
                        let chosen = if demos.len() > 1 { pick_one(demos) } else { demos };
                        if let Some((_, v)) = traces.iter_mut().find(|(n, _)| *n == name) {
                            v.extend(chosen);
                        }
                    }
                    bootstrapped.insert(idx);
                    break;
                }
            }
            progress(Progress { phase: "bootstrap".into(), done: idx + 1, total: trainset.len() });
        }
        let mut validation: Vec<&Example> =
            trainset.iter().enumerate().filter(|(i, _)| !bootstrapped.contains(i)).map(|(_, e)| e).collect();
        PyRandom::new(0).shuffle(&mut validation);
        let mut rng = PyRandom::new(0);
        let mut raw = validation;
        for (name, predictor) in &mut student.predictors {
            let augmented: Vec<Map<String, Value>> = traces
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.iter().take(self.max_bootstrapped_demos).cloned().collect())
                .unwrap_or_default();
            let size = self.max_labeled_demos.saturating_sub(augmented.len()).min(raw.len());
            raw = rng.sample(&raw, size);
            predictor.demos = augmented.into_iter().chain(raw.iter().map(|e| labeled_demo(e))).collect();
        }
        Ok(Compiled { program: student, bootstrapped: bootstrapped.into_iter().collect(), attempts })
    }
}

/// DSPy keeps one call per predictor from a trace: with probability ½ a random one of the
/// earlier calls, else the last.
fn pick_one(mut demos: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let json = serde_json::to_vec(&demos).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest.as_ref()[..8]);
    let mut rng = PyRandom::new((u64::from_be_bytes(seed) >> 1) as i64);
    let last = demos.len() - 1;
    let i = if rng.random() < 0.5 { rng.randbelow(last) } else { last };
    vec![demos.swap_remove(i)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::program::{EXTRACT, REACT};
    use crate::agent::teleprompt::testing::{Exact, Scripted, example, noop, program};

    fn runner(pairs: &[(&str, &str)]) -> Scripted {
        Scripted { answers: pairs.iter().map(|(q, a)| (q.to_string(), a.to_string())).collect(), ..Default::default() }
    }

    #[tokio::test]
    async fn successful_traces_become_demos_for_every_predictor() {
        // q1 answers wrongly (score 0): not bootstrapped; q0 and q2 are.
        let trainset = vec![example("q0", "a0"), example("q1", "a1"), example("q2", "a2")];
        let r = runner(&[("q0", "a0"), ("q1", "wrong"), ("q2", "a2")]);
        let opt = BootstrapFewShot { max_bootstrapped_demos: 2, max_labeled_demos: 3, ..Default::default() };
        let out = opt.compile(&program(), None, &trainset, &r, &Exact, &noop).await.unwrap();
        assert_eq!(out.bootstrapped, vec![0, 2]);
        let react = &out.program.get(REACT).unwrap().demos;
        // Two react calls per trace, one kept per trace; plus one labeled demo (q1).
        assert_eq!(react.len(), 3);
        assert_eq!(react[0]["augmented"], true);
        assert_eq!(react[0]["request"], "q0");
        assert_eq!(react[1]["request"], "q2");
        assert_eq!(react[2], example("q1", "a1").values);
        let extract = &out.program.get(EXTRACT).unwrap().demos;
        assert_eq!(extract[0]["response"], "a0");
        assert!(extract[0].contains_key("trajectory"));
    }

    #[tokio::test]
    async fn an_example_is_never_its_own_demo_and_the_teacher_has_labeled_demos() {
        let trainset = vec![example("q0", "a0"), example("q1", "a1")];
        let r = runner(&[("q0", "a0"), ("q1", "a1")]);
        let opt = BootstrapFewShot { max_bootstrapped_demos: 2, max_labeled_demos: 2, ..Default::default() };
        opt.compile(&program(), None, &trainset, &r, &Exact, &noop).await.unwrap();
        // The teacher has both examples as labeled demos on each of its 2 predictors; each
        // run sees 2 (one per predictor), its own removed.
        assert_eq!(*r.calls.lock(), vec![("q0".to_string(), 2), ("q1".to_string(), 2)]);
    }

    #[tokio::test]
    async fn threshold_max_bootstrapped_and_errors() {
        let trainset: Vec<Example> = (0..6).map(|i| example(&format!("q{i}"), "a")).collect();
        let r = runner(&[("q0", "a"), ("q1", "a"), ("q2", "a"), ("q3", "a"), ("q4", "a"), ("q5", "a")]);
        let opt = BootstrapFewShot { max_bootstrapped_demos: 2, max_labeled_demos: 0, ..Default::default() };
        let out = opt.compile(&program(), None, &trainset, &r, &Exact, &noop).await.unwrap();
        // Stops looking once two have bootstrapped.
        assert_eq!(out.bootstrapped, vec![0, 1]);
        assert_eq!(r.calls.lock().len(), 2);
        // A threshold above every score: nothing bootstraps, and there are no labeled demos.
        let strict = BootstrapFewShot { metric_threshold: Some(1.5), ..opt };
        let none = strict.compile(&program(), None, &trainset, &r, &Exact, &noop).await.unwrap();
        assert!(none.bootstrapped.is_empty());
        assert_eq!(none.program.demo_count(), 0);
        // Failing runs stop the optimizer at max_errors.
        let failing = Scripted {
            fail: trainset.iter().map(|e| e.values["request"].as_str().unwrap().to_string()).collect(),
            ..Default::default()
        };
        let err = BootstrapFewShot { max_errors: 3, ..opt }
            .compile(&program(), None, &trainset, &failing, &Exact, &noop)
            .await
            .unwrap_err();
        assert!(matches!(err, OptimizeError::TooManyErrors { count: 3, max: 3, .. }), "{err}");
        assert_eq!(failing.calls.lock().len(), 3);
    }

    #[tokio::test]
    async fn max_rounds_retries_an_example() {
        let trainset = vec![example("q0", "a")];
        let r = runner(&[("q0", "wrong")]);
        let opt = BootstrapFewShot { max_rounds: 3, max_labeled_demos: 0, ..Default::default() };
        let out = opt.compile(&program(), None, &trainset, &r, &Exact, &noop).await.unwrap();
        assert_eq!(out.attempts.len(), 3);
        assert!(out.bootstrapped.is_empty());
    }
}
