//! Training and validation sets: `[[example]]` entries in TOML — a request, the tool calls
//! it should make (in order), facts the answer should mention, the scopes it needs, and
//! whether it should be refused — turned into DSPy `Example`s with `request` as the input.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::agent::predict::Example;
use crate::types::scope::ScopeSet;

/// The repository's trainset, compiled in.
pub const DEFAULT_TRAINSET: &str = include_str!("../../../config/trainset.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainExample {
    pub request: String,
    #[serde(default)]
    pub expected_tools: Vec<String>,
    /// Words or phrases the answer must contain (case-insensitive).
    #[serde(default)]
    pub expected_facts: Vec<String>,
    /// What the request needs; under a grant without them the right answer is a refusal
    /// that names what is missing, without calling the tools.
    #[serde(default)]
    pub required_scopes: ScopeSet,
    #[serde(default)]
    pub should_fail: bool,
    /// A labeled answer (becomes the `response` of a labeled demo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

impl TrainExample {
    pub fn to_example(&self) -> Example {
        let mut values = Map::new();
        values.insert("request".into(), json!(self.request));
        if let Some(r) = &self.response {
            values.insert("response".into(), json!(r));
        }
        values.insert("expected_tools".into(), json!(self.expected_tools));
        values.insert("expected_facts".into(), json!(self.expected_facts));
        values.insert("required_scopes".into(), json!(self.required_scopes.to_vec()));
        values.insert("should_fail".into(), json!(self.should_fail));
        Example::new(values, &["request"])
    }

    /// Reads back what `to_example` wrote (missing keys: defaults).
    pub fn from_example(ex: &Example) -> Self {
        let strings = |k: &str| -> Vec<String> {
            ex.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default()
        };
        Self {
            request: ex.get("request").and_then(Value::as_str).unwrap_or_default().to_string(),
            expected_tools: strings("expected_tools"),
            expected_facts: strings("expected_facts"),
            required_scopes: ScopeSet::parse(&strings("required_scopes").join(" ")).unwrap_or_default(),
            should_fail: ex.get("should_fail").and_then(Value::as_bool).unwrap_or(false),
            response: ex.get("response").and_then(Value::as_str).map(str::to_string),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainFile {
    #[serde(default)]
    example: Vec<TrainExample>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainsetError {
    #[error("cannot read the trainset {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the trainset {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("the trainset {0} has no [[example]] entries")]
    Empty(String),
}

pub fn parse(text: &str, origin: &str) -> Result<Vec<TrainExample>, TrainsetError> {
    let file: TrainFile =
        toml::from_str(text).map_err(|e| TrainsetError::Parse { path: origin.into(), message: e.to_string() })?;
    if file.example.is_empty() {
        return Err(TrainsetError::Empty(origin.into()));
    }
    if let Some(bad) = file.example.iter().position(|e| e.request.trim().is_empty()) {
        return Err(TrainsetError::Parse {
            path: origin.into(),
            message: format!("example {} has an empty request", bad + 1),
        });
    }
    Ok(file.example)
}

pub fn load(path: &Path) -> Result<Vec<TrainExample>, TrainsetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TrainsetError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_trainset_parses_and_round_trips() {
        let set = parse(DEFAULT_TRAINSET, "config/trainset.toml").unwrap();
        assert!(set.len() >= 12, "{}", set.len());
        assert!(set.iter().any(|e| e.should_fail));
        for e in &set {
            assert_eq!(TrainExample::from_example(&e.to_example()), *e);
        }
        assert!(matches!(parse("", "x"), Err(TrainsetError::Empty(_))));
        assert!(matches!(parse("[[example]]\nrequest = \"\"", "x"), Err(TrainsetError::Parse { .. })));
        assert!(matches!(parse("[[example]]\nrequest = \"a\"\ntypo = 1", "x"), Err(TrainsetError::Parse { .. })));
    }
}
