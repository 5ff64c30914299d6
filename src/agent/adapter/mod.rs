//! Adapters turn a signature, demos and inputs into chat messages, and a completion back
//! into output fields. `chat` is DSPy's ChatAdapter byte for byte; `json` is the JSON
//! fallback used when a completion does not parse in the chat format.

pub mod chat;
pub mod json;
pub mod value;

use serde_json::{Map, Value};

/// Why a completion could not be turned into the signature's outputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("could not parse the LM response: {reason} (response began: {head:?})")]
pub struct ParseError {
    pub reason: String,
    pub head: String,
}

impl ParseError {
    pub fn new(reason: impl Into<String>, completion: &str) -> Self {
        Self { reason: reason.into(), head: completion.chars().take(160).collect() }
    }
}

/// Output field values by name, in signature order.
pub type Fields = Map<String, Value>;
