//! DSPy's `BootstrapFewShotWithRandomSearch`: candidate programs for seeds −3 … n−1 — −3
//! the student without demos, −2 `LabeledFewShot`, −1 `BootstrapFewShot` on the trainset
//! as given, and each seed ≥ 0 `BootstrapFewShot` on the trainset shuffled with
//! `random.Random(seed)` keeping `random.Random(seed).randint(1, max_bootstrapped_demos)`
//! traces — each scored with `evaluate` on the validation set (the trainset when none is
//! given). The first candidate with the best score wins; `stop_at_score` ends the search
//! early. Every candidate's seed and score are reported.

use serde::Serialize;

use super::bootstrap::BootstrapFewShot;
use super::labeled::LabeledFewShot;
use super::pyrandom::PyRandom;
use super::{EvalReport, Metric, OptimizeError, Progress, ProgressFn, Runner, evaluate, reset_copy};
use crate::agent::predict::Example;
use crate::agent::program::ProgramState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomSearch {
    pub bootstrap: BootstrapFewShot,
    pub num_candidate_programs: usize,
    pub stop_at_score: Option<f64>,
    /// Runs at a time in each evaluation.
    pub concurrency: usize,
}

impl Default for RandomSearch {
    fn default() -> Self {
        Self { bootstrap: BootstrapFewShot::default(), num_candidate_programs: 16, stop_at_score: None, concurrency: 8 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub seed: i64,
    /// Mean score on the validation set, in [0, 1].
    pub score: f64,
    pub demos: usize,
}

pub struct Searched {
    pub program: ProgramState,
    pub best_seed: i64,
    /// In the order they were tried.
    pub candidates: Vec<Candidate>,
    pub best_report: EvalReport,
}

impl RandomSearch {
    #[allow(clippy::too_many_arguments)]
    pub async fn compile(
        &self,
        student: &ProgramState,
        teacher: Option<&ProgramState>,
        trainset: &[Example],
        valset: Option<&[Example]>,
        runner: &dyn Runner,
        metric: &dyn Metric,
        progress: ProgressFn<'_>,
    ) -> Result<Searched, OptimizeError> {
        let valset = valset.unwrap_or(trainset);
        let mut best: Option<(f64, i64, ProgramState, EvalReport)> = None;
        let mut candidates = Vec::new();
        let total = self.num_candidate_programs + 3;
        for (n, seed) in (-3..self.num_candidate_programs as i64).enumerate() {
            let phase = format!("candidate {}/{total} (seed {seed})", n + 1);
            let program = match seed {
                -3 => reset_copy(student),
                -2 => LabeledFewShot { k: self.bootstrap.max_labeled_demos }.compile(student, trainset, true),
                -1 => self.bootstrap.compile(student, teacher, trainset, runner, metric, progress).await?.program,
                _ => {
                    let mut shuffled = trainset.to_vec();
                    PyRandom::new(seed).shuffle(&mut shuffled);
                    let size = PyRandom::new(seed).randint(1, self.bootstrap.max_bootstrapped_demos.max(1) as i64);
                    let opt = BootstrapFewShot { max_bootstrapped_demos: size as usize, ..self.bootstrap };
                    opt.compile(student, teacher, &shuffled, runner, metric, progress).await?.program
                }
            };
            let report = evaluate(runner, &program, valset, metric, self.concurrency, progress, &phase).await;
            candidates.push(Candidate { seed, score: report.average, demos: program.demo_count() });
            progress(Progress { phase: "random search".into(), done: n + 1, total });
            let better = best.as_ref().is_none_or(|(s, ..)| report.average > *s);
            let stop = self.stop_at_score.is_some_and(|t| report.average >= t);
            if better {
                best = Some((report.average, seed, program, report));
            }
            if stop {
                break;
            }
        }
        let (_, best_seed, program, best_report) = best.ok_or(OptimizeError::EmptyTrainset)?;
        Ok(Searched { program, best_seed, candidates, best_report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::teleprompt::testing::{Exact, Scripted, example, noop, program};

    #[tokio::test]
    async fn tries_every_seed_and_keeps_the_first_best() {
        let trainset: Vec<Example> = (0..4).map(|i| example(&format!("q{i}"), "a")).collect();
        let r = Scripted {
            answers: [("q0", "a"), ("q1", "a"), ("q2", "wrong"), ("q3", "a")]
                .iter()
                .map(|(q, a)| (q.to_string(), a.to_string()))
                .collect(),
            ..Default::default()
        };
        let opt = RandomSearch { num_candidate_programs: 2, concurrency: 2, ..Default::default() };
        let out = opt.compile(&program(), None, &trainset, None, &r, &Exact, &noop).await.unwrap();
        assert_eq!(out.candidates.iter().map(|c| c.seed).collect::<Vec<_>>(), vec![-3, -2, -1, 0, 1]);
        // The scripted runner answers the same whatever the demos: every candidate scores
        // 3/4, so the first (seed −3, no demos) is kept.
        assert!(out.candidates.iter().all(|c| (c.score - 0.75).abs() < 1e-9));
        assert_eq!(out.best_seed, -3);
        assert_eq!(out.program.demo_count(), 0);
        assert_eq!(out.candidates[1].demos, 8, "labeled: 4 per predictor");
        // stop_at_score ends the search at the first candidate reaching it.
        let stop = RandomSearch { stop_at_score: Some(0.7), ..opt };
        let out = stop.compile(&program(), None, &trainset, None, &r, &Exact, &noop).await.unwrap();
        assert_eq!(out.candidates.len(), 1);
    }

    /// Seed 0's trainset order and trace count are CPython's: `l = list(range(4));
    /// random.Random(0).shuffle(l)` → [2, 0, 1, 3]; `random.Random(0).randint(1, 4)` → 4.
    #[test]
    fn seeds_shuffle_as_python_does() {
        let mut l: Vec<usize> = (0..4).collect();
        PyRandom::new(0).shuffle(&mut l);
        assert_eq!(l, PY_SHUFFLE_0);
        assert_eq!(PyRandom::new(0).randint(1, 4), PY_RANDINT_0);
    }

    const PY_SHUFFLE_0: [usize; 4] = [2, 0, 1, 3];
    const PY_RANDINT_0: i64 = 4;
}
