//! DSPy's `LabeledFewShot`: each predictor gets up to `k` examples of the trainset as raw
//! demos — a sample drawn with `random.Random(0)` (one generator for all predictors, in
//! order), or the first `k` when not sampling.

use super::pyrandom::PyRandom;
use super::{labeled_demo, reset_copy};
use crate::agent::predict::Example;
use crate::agent::program::ProgramState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabeledFewShot {
    pub k: usize,
}

impl Default for LabeledFewShot {
    fn default() -> Self {
        Self { k: 16 }
    }
}

impl LabeledFewShot {
    pub fn compile(&self, student: &ProgramState, trainset: &[Example], sample: bool) -> ProgramState {
        let mut program = reset_copy(student);
        if trainset.is_empty() {
            return program;
        }
        let mut rng = PyRandom::new(0);
        let n = self.k.min(trainset.len());
        for (_, predictor) in &mut program.predictors {
            let chosen: Vec<&Example> = if sample {
                rng.sample_indices(trainset.len(), n).into_iter().map(|i| &trainset[i]).collect()
            } else {
                trainset[..n].iter().collect()
            };
            predictor.demos = chosen.into_iter().map(labeled_demo).collect();
        }
        program
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::program::{EXTRACT, REACT};
    use crate::agent::teleprompt::testing::{example, program};

    fn requests(p: &ProgramState, name: &str) -> Vec<String> {
        p.get(name).unwrap().demos.iter().map(|d| d["request"].as_str().unwrap().to_string()).collect()
    }

    /// Python: `r = random.Random(0); r.sample(range(10), 4); r.sample(range(10), 4)` gives
    /// [6, 9, 0, 2] then [8, 7, 6, 9] (checked with CPython 3.11).
    #[test]
    fn samples_as_dspy_does_with_seed_zero() {
        let trainset: Vec<Example> = (0..10).map(|i| example(&format!("q{i}"), "a")).collect();
        let p = LabeledFewShot { k: 4 }.compile(&program(), &trainset, true);
        assert_eq!(requests(&p, REACT), ["q6", "q9", "q0", "q2"]);
        assert_eq!(requests(&p, EXTRACT), ["q8", "q7", "q6", "q9"]);
        let first = LabeledFewShot { k: 3 }.compile(&program(), &trainset, false);
        assert_eq!(requests(&first, REACT), ["q0", "q1", "q2"]);
        let all = LabeledFewShot { k: 16 }.compile(&program(), &trainset[..2], true);
        assert_eq!(all.get(REACT).unwrap().demos.len(), 2);
        assert_eq!(LabeledFewShot::default().compile(&program(), &[], true).demo_count(), 0);
    }
}
