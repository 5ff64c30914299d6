//! `Predict` and `ChainOfThought`: one LM call through the ChatAdapter, with DSPy's JSON
//! fallback when the completion does not parse (never after a transport error).

use serde_json::{Map, Value};

use super::adapter::chat::ChatAdapter;
use super::adapter::json::JsonAdapter;
use super::adapter::{Fields, ParseError};
use super::lm::{Lm, LmError};
use super::signature::{Field, FieldType, Signature};

/// An example: named values, some of them inputs (DSPy's `dspy.Example.with_inputs`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub values: Map<String, Value>,
    #[serde(default)]
    pub input_keys: Vec<String>,
}

impl Example {
    pub fn new(values: Map<String, Value>, inputs: &[&str]) -> Self {
        Self { values, input_keys: inputs.iter().map(|s| s.to_string()).collect() }
    }

    pub fn inputs(&self) -> Map<String, Value> {
        self.values.iter().filter(|(k, _)| self.input_keys.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
}

/// A program's outputs by field name.
pub type Prediction = Fields;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PredictError {
    #[error(transparent)]
    Lm(#[from] LmError),
    #[error("{0} (the JSON fallback failed too: {1})")]
    Parse(ParseError, ParseError),
}

#[derive(Debug, Clone)]
pub struct Predict {
    pub signature: Signature,
    pub demos: Vec<Map<String, Value>>,
}

impl Predict {
    pub fn new(signature: Signature) -> Self {
        Self { signature, demos: Vec::new() }
    }

    pub async fn forward(&self, lm: &dyn Lm, inputs: &Map<String, Value>) -> Result<Prediction, PredictError> {
        let messages = ChatAdapter.format(&self.signature, &self.demos, inputs);
        let completion = lm.complete(&messages).await?;
        match ChatAdapter.parse(&self.signature, &completion.text) {
            Ok(fields) => Ok(fields),
            Err(chat_err) => {
                tracing::debug!(error = %chat_err, "chat format did not parse; retrying with the JSON adapter");
                let messages = JsonAdapter.format(&self.signature, &self.demos, inputs);
                let completion = lm.complete(&messages).await?;
                JsonAdapter
                    .parse(&self.signature, &completion.text)
                    .map_err(|json_err| PredictError::Parse(chat_err, json_err))
            }
        }
    }
}

/// `Predict` over the signature with a `reasoning` output prepended.
#[derive(Debug, Clone)]
pub struct ChainOfThought {
    pub predict: Predict,
}

impl ChainOfThought {
    pub fn new(signature: &Signature) -> Self {
        let extended =
            signature.prepend_output(Field::new("reasoning", FieldType::Str)).unwrap_or_else(|_| signature.clone());
        Self { predict: Predict::new(extended) }
    }

    pub async fn forward(&self, lm: &dyn Lm, inputs: &Map<String, Value>) -> Result<Prediction, PredictError> {
        self.predict.forward(lm, inputs).await
    }
}
