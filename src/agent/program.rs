//! A compiled program: what optimization changes in a `ReAct` (each predictor's demos and
//! its signature's instructions and field prefixes/descriptions), in DSPy's saved-state
//! shape, plus the security configuration Warden learnt for it.
//!
//! DSPy's `ReAct` has two predictors, saved under their attribute paths: `react` (one call
//! per step) and `extract.predict` (the ChainOfThought that writes the outputs). A saved
//! program is one JSON object with a key per predictor — `{"traces", "train", "demos",
//! "signature": {"instructions", "fields": [{"prefix", "description"}]}, "lm"}` — and
//! `metadata.dependency_versions`, so a file written here loads in Python with
//! `program.load(path)` on the same module structure, and one DSPy wrote loads here.
//! Nothing in it is code, a secret or an endpoint (`lm` is always `null`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::react::ReAct;
use super::signature::Signature;
use crate::types::scope::ScopeSet;

/// DSPy's attribute path of ReAct's step predictor.
pub const REACT: &str = "react";
/// DSPy's attribute path of ReAct's extract predictor (a ChainOfThought's inner Predict).
pub const EXTRACT: &str = "extract.predict";

/// The DSPy release whose saved-state format this follows (checked against DSPy itself by
/// `tests/dspy_interop.rs`).
pub const DSPY_FORMAT_VERSION: &str = "3.4.1";

/// A signature field as DSPy saves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldState {
    pub prefix: String,
    pub description: String,
}

/// One predictor's learnable state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PredictorState {
    /// Demos: field name → value, as DSPy stores them (bootstrapped ones carry
    /// `"augmented": true`).
    pub demos: Vec<Map<String, Value>>,
    pub instructions: String,
    /// Inputs then outputs, in the signature's order.
    pub fields: Vec<FieldState>,
}

/// Every predictor's state, by DSPy attribute path, in the program's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProgramState {
    pub predictors: Vec<(String, PredictorState)>,
    /// `metadata.dependency_versions` as read (written: the DSPy format version).
    pub dependency_versions: BTreeMap<String, String>,
}

/// Why a program could not be read or applied. Each says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProgramError {
    #[error("not a saved DSPy program: {0}")]
    Shape(String),
    #[error(
        "the program has no predictor {0:?}; it was saved from a different module (Warden runs DSPy's ReAct: predictors `react` and `extract.predict`)"
    )]
    MissingPredictor(String),
    #[error(
        "predictor {name:?} has {found} fields but this ReAct's signature has {expected}; the program was compiled for a different signature"
    )]
    FieldCount { name: String, expected: usize, found: usize },
}

/// DSPy's `infer_prefix`: `next_thought` → `Next Thought:`.
pub fn infer_prefix(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            None => false,
            Some(p) => {
                c == '_'
                    || p == '_'
                    || (c.is_ascii_uppercase() && (p.is_ascii_lowercase() || p.is_ascii_digit()))
                    || (c.is_ascii_uppercase()
                        && p.is_ascii_uppercase()
                        && next.is_some_and(|n| n.is_ascii_lowercase()))
                    || (c.is_ascii_digit() && p.is_ascii_alphabetic())
                    || (c.is_ascii_alphabetic() && p.is_ascii_digit())
            }
        };
        if boundary && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        if c != '_' {
            cur.push(c);
        }
        prev = Some(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let words: Vec<String> = words
        .into_iter()
        .map(|w| {
            if w.chars().all(|c| c.is_ascii_uppercase()) {
                w
            } else {
                let mut cs = w.chars();
                cs.next()
                    .map(|f| f.to_uppercase().collect::<String>() + &cs.as_str().to_lowercase())
                    .unwrap_or_default()
            }
        })
        .collect();
    format!("{}:", words.join(" "))
}

/// A signature's fields as DSPy saves them (an empty description is DSPy's `${name}`).
pub fn fields_of(sig: &Signature) -> Vec<FieldState> {
    sig.inputs()
        .iter()
        .chain(sig.outputs())
        .map(|f| FieldState {
            prefix: infer_prefix(&f.name),
            description: if f.desc.is_empty() { format!("${{{}}}", f.name) } else { f.desc.clone() },
        })
        .collect()
}

impl PredictorState {
    pub fn of(sig: &Signature, demos: &[Map<String, Value>]) -> Self {
        Self { demos: demos.to_vec(), instructions: sig.instructions().to_string(), fields: fields_of(sig) }
    }

    fn to_dspy(&self) -> Value {
        json!({
            "traces": [],
            "train": [],
            "demos": self.demos,
            "signature": {"instructions": self.instructions, "fields": self.fields},
            "lm": Value::Null,
        })
    }

    fn from_dspy(name: &str, v: &Value) -> Result<Self, ProgramError> {
        let shape = |what: &str| ProgramError::Shape(format!("{name}: {what}"));
        let obj = v.as_object().ok_or_else(|| shape("not an object"))?;
        let demos = match obj.get("demos") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| d.as_object().cloned().ok_or_else(|| shape("a demo is not an object")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(shape("`demos` is not a list")),
        };
        let sig = obj.get("signature").and_then(Value::as_object).ok_or_else(|| shape("no `signature` object"))?;
        let instructions =
            sig.get("instructions").and_then(Value::as_str).ok_or_else(|| shape("no signature instructions"))?;
        let fields: Vec<FieldState> = serde_json::from_value(sig.get("fields").cloned().unwrap_or(json!([])))
            .map_err(|e| shape(&format!("signature fields: {e}")))?;
        Ok(Self { demos, instructions: instructions.to_string(), fields })
    }
}

impl ProgramState {
    pub fn get(&self, name: &str) -> Option<&PredictorState> {
        self.predictors.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut PredictorState> {
        self.predictors.iter_mut().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Demos across all predictors.
    pub fn demo_count(&self) -> usize {
        self.predictors.iter().map(|(_, p)| p.demos.len()).sum()
    }

    /// DSPy's saved-state JSON.
    pub fn to_dspy_json(&self) -> Value {
        let mut out = Map::new();
        for (name, p) in &self.predictors {
            out.insert(name.clone(), p.to_dspy());
        }
        out.insert(
            "metadata".into(),
            json!({"dependency_versions": {"python": "3.11", "dspy": DSPY_FORMAT_VERSION, "cloudpickle": "3.1"}}),
        );
        Value::Object(out)
    }

    /// Reads DSPy's saved-state JSON (every key but `metadata` is a predictor).
    pub fn from_dspy_json(v: &Value) -> Result<Self, ProgramError> {
        let obj = v.as_object().ok_or_else(|| ProgramError::Shape("the file is not a JSON object".into()))?;
        let mut predictors = Vec::new();
        for (name, p) in obj {
            if name == "metadata" {
                continue;
            }
            predictors.push((name.clone(), PredictorState::from_dspy(name, p)?));
        }
        let dependency_versions = obj
            .get("metadata")
            .and_then(|m| m.get("dependency_versions"))
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        Ok(Self { predictors, dependency_versions })
    }
}

impl ReAct {
    /// The program's learnable state (DSPy's `named_predictors`).
    pub fn state(&self) -> ProgramState {
        ProgramState {
            predictors: vec![
                (REACT.into(), PredictorState::of(&self.react.signature, &self.react.demos)),
                (EXTRACT.into(), PredictorState::of(&self.extract.predict.signature, &self.extract.predict.demos)),
            ],
            dependency_versions: BTreeMap::new(),
        }
    }

    /// Applies a saved state, as DSPy's `load_state` does: demos, instructions and field
    /// descriptions replace this program's; field names and types stay.
    pub fn load_state(&mut self, state: &ProgramState) -> Result<(), ProgramError> {
        for (name, predict) in [(REACT, &mut self.react), (EXTRACT, &mut self.extract.predict)] {
            let saved = state.get(name).ok_or_else(|| ProgramError::MissingPredictor(name.into()))?;
            let expected = predict.signature.inputs().len() + predict.signature.outputs().len();
            if saved.fields.len() != expected {
                return Err(ProgramError::FieldCount { name: name.into(), expected, found: saved.fields.len() });
            }
            predict.signature =
                with_saved_fields(&predict.signature.with_instructions(&saved.instructions), &saved.fields);
            predict.demos = saved.demos.clone();
        }
        Ok(())
    }
}

/// DSPy's `Signature.load_state` for the fields: each saved description replaces the
/// field's, in order (DSPy's `${name}` placeholder is an empty description here). Prefixes
/// are not kept: no adapter Warden (or DSPy 3) renders them.
fn with_saved_fields(sig: &Signature, saved: &[FieldState]) -> Signature {
    let apply = |f: &super::signature::Field, s: &FieldState| {
        let mut f = f.clone();
        f.desc = if s.description == format!("${{{}}}", f.name) { String::new() } else { s.description.clone() };
        f
    };
    let n = sig.inputs().len();
    let inputs = sig.inputs().iter().zip(&saved[..n.min(saved.len())]).map(|(f, s)| apply(f, s)).collect();
    let outputs = sig.outputs().iter().zip(saved.get(n..).unwrap_or_default()).map(|(f, s)| apply(f, s)).collect();
    Signature::new(inputs, outputs, Some(sig.instructions())).unwrap_or_else(|_| sig.clone())
}

/// A constraint learnt from a denial or anomaly seen under a grant, in optimization or in
/// production: "create_support_ticket denied under {customer:read}".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedConstraint {
    /// The tool as the agent names it.
    pub tool: String,
    /// The grant it was denied (or flagged) under.
    pub grant: ScopeSet,
    /// The scopes the denial named as missing (empty for an anomaly).
    pub missing: ScopeSet,
    /// `denied` or the anomaly rule.
    pub kind: String,
    /// `production` (from `--feedback`) or `optimization` (seen in a training run).
    pub source: String,
    /// How many times it was seen.
    pub count: u64,
    /// One request that led to it (for the training example made from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl LearnedConstraint {
    /// The rule as the program's instructions state it (the offline planner and a hosted
    /// model both read it).
    /// What was seen, for reports: "create_support_ticket denied under {customer:read}
    /// (missing ticket:create), 4× in production".
    pub fn describe(&self) -> String {
        let what = if self.missing.is_empty() {
            format!("flagged {}", self.kind)
        } else {
            format!("{} (missing {})", self.kind, self.missing)
        };
        format!("{} {what} under {{{}}}, {}× in {}", self.tool, self.grant, self.count, self.source)
    }

    pub fn rule(&self) -> String {
        if self.missing.is_empty() {
            format!("- Do not call `{}` under the grant {{{}}}: it was flagged ({}).", self.tool, self.grant, self.kind)
        } else {
            format!(
                "- Do not call `{}` under the grant {{{}}}: it needs {}, which this grant lacks; say so instead.",
                self.tool, self.grant, self.missing
            )
        }
    }
}

/// A tool the program was compiled against: its name and the digest of its pinned manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedTool {
    pub name: String,
    pub required_scopes: ScopeSet,
    pub manifest_digest: String,
}

/// Scores of an optimization, before and after.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizationMetrics {
    pub optimizer: String,
    pub trainset: usize,
    pub valset: usize,
    pub penalty: f64,
    pub before: ScoreSummary,
    pub after: ScoreSummary,
    /// Random search: the seed of each candidate and its score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(i64, f64)>,
}

/// Mean base score, violations and mean final score: the same record the optimizer's
/// before/after table reports.
pub type ScoreSummary = crate::types::optimize::Scored;

/// The seeds' `security_config`, saved beside the program.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// The grant the program was compiled and validated for.
    pub grant: ScopeSet,
    /// Required scopes per tool, as the servers advertised them.
    pub required_scopes: BTreeMap<String, ScopeSet>,
    pub tools: Vec<PinnedTool>,
    pub optimization_metrics: OptimizationMetrics,
    pub learned_constraints: Vec<LearnedConstraint>,
    /// Unix seconds when the program was compiled.
    pub timestamp: u64,
}

/// A program with its security configuration (sealed files have both; plain DSPy JSON has
/// no security configuration).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProgramFile {
    pub program: ProgramState,
    pub security: Option<SecurityConfig>,
}

/// Why a program file could not be loaded. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProgramFileError {
    #[error("cannot read the program {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a program file (sealed, or DSPy JSON): {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {source}")]
    Program { path: String, source: ProgramError },
    #[error("cannot open the sealed program {path}: {cause}")]
    Sealed { path: String, cause: crate::security::seal::SealError },
    #[error(
        "{path} is a sealed program and no key was given: pass --key-file FILE, or set WARDEN_PROGRAM_KEY (64 hex digits)"
    )]
    NoKey { path: String },
    #[error("{cause}")]
    Key { cause: crate::security::seal::KeyError },
    #[error("cannot write the program {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
}

/// Loads a program file: plain DSPy JSON (no security configuration) or a sealed file
/// (opened with the key from `key_file`, else `WARDEN_PROGRAM_KEY`; without either, an
/// error naming both). A sealed file that does not open loads nothing.
pub fn load_file(path: &std::path::Path, key_file: Option<&std::path::Path>) -> Result<ProgramFile, ProgramFileError> {
    super::program_file::load(path, key_file).map(|l| l.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_inferred_as_dspy_does() {
        assert_eq!(infer_prefix("next_thought"), "Next Thought:");
        assert_eq!(infer_prefix("request"), "Request:");
        assert_eq!(infer_prefix("camelCaseText"), "Camel Case Text:");
        assert_eq!(infer_prefix("text2number"), "Text 2 Number:");
        assert_eq!(infer_prefix("HTMLParser"), "HTML Parser:");
    }

    #[test]
    fn state_round_trips_through_dspy_json() {
        let sig = Signature::customer_service();
        let mut demo = Map::new();
        demo.insert("request".into(), json!("hi"));
        demo.insert("response".into(), json!("hello"));
        let state = ProgramState {
            predictors: vec![(EXTRACT.into(), PredictorState::of(&sig, &[demo]))],
            dependency_versions: BTreeMap::new(),
        };
        let v = state.to_dspy_json();
        assert_eq!(v["extract.predict"]["signature"]["fields"][0]["prefix"], "Request:");
        assert_eq!(v["extract.predict"]["lm"], Value::Null);
        let back = ProgramState::from_dspy_json(&v).unwrap();
        assert_eq!(back.predictors, state.predictors);
        assert_eq!(back.dependency_versions["dspy"], DSPY_FORMAT_VERSION);
    }

    /// As DSPy's `Signature.load_state`: a saved description replaces the field's (one an
    /// optimizer rewrote reaches the prompt); the `${name}` placeholder means none.
    #[test]
    fn load_state_applies_saved_field_descriptions() {
        let mut react = ReAct::new(Signature::customer_service(), Vec::new(), 5);
        let mut state = react.state();
        let extract = state.get_mut(EXTRACT).unwrap();
        extract.fields[0].description = "The customer's message, verbatim".into();
        extract.instructions = "Answer briefly.".into();
        react.load_state(&state).unwrap();
        let sig = &react.extract.predict.signature;
        assert_eq!(sig.inputs()[0].desc, "The customer's message, verbatim");
        assert_eq!(sig.inputs()[1].name, "trajectory");
        assert_eq!(sig.inputs()[1].desc, "", "DSPy's `${{trajectory}}` placeholder means no description");
        assert_eq!(sig.instructions(), "Answer briefly.");
        assert_eq!(react.state(), state);
        let mut short = state.clone();
        short.get_mut(REACT).unwrap().fields.pop();
        assert!(matches!(react.load_state(&short), Err(ProgramError::FieldCount { .. })));
    }
}
