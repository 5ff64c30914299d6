//! What an optimization reports to frontends: its progress, and at the end the before and
//! after table (per example and in total) with the constraints it learnt and where the
//! program went. Plain data: the optimizers live in `agent::teleprompt`, the job in
//! `session::optimize`.

use serde::{Deserialize, Serialize};

/// Base score, violations and final score of one run (or their totals).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Scored {
    pub base: f64,
    pub violations: u64,
    pub final_score: f64,
}

/// One example, before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRow {
    pub request: String,
    pub before: Scored,
    pub after: Scored,
    /// The metric's reason for the score after.
    pub reason: String,
}

/// The end of an optimization.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizeSummary {
    pub optimizer: String,
    pub rows: Vec<ExampleRow>,
    /// Means of base and final, total violations.
    pub before: Scored,
    pub after: Scored,
    /// The learnt constraints that bind under this grant, as the program's instructions
    /// state them.
    pub constraints: Vec<String>,
    /// The others, kept in the security configuration (and checked by validation) but not
    /// in the instructions: denials of scopes this grant has, and anomalies.
    #[serde(default)]
    pub kept: Vec<String>,
    pub demos: usize,
    /// Random search: (seed, score) of each candidate, in the order tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(i64, f64)>,
    /// Where the program was written, and in which format.
    pub out: Option<String>,
    pub format: String,
    /// Findings of the validation run before writing (empty: valid).
    pub findings: Vec<String>,
    pub elapsed_ms: f64,
    pub runs: u64,
}
