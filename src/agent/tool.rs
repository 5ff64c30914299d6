//! Tools as the agent sees them: identity, description, JSON-schema arguments (validated
//! before any call), and an async call that always ends in a structured `CallOutcome`.
//! The tool reports its own call on the bus (one `ToolCall`, exactly one `ToolResult`);
//! the agent derives the observation text the LM reads from the outcome (`observation`),
//! as DSPy's ReAct turns tool errors into text.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::mcp::secure_tool::{SecureTool, args_digest};
use crate::types::event::{CallAudit, CallOutcome, EventBus, EventKind, ObservationKind, Scope};
use crate::types::scope::ScopeSet;
use crate::types::tool::ToolName;

pub trait Tool: Send + Sync {
    /// Which server offers the tool, and its name there.
    fn id(&self) -> &ToolName;
    fn description(&self) -> &str;
    /// JSON-schema `properties` of the arguments (DSPy's `Tool.args`).
    fn args(&self) -> &Map<String, Value>;
    /// Full input schema (for validation).
    fn schema(&self) -> &Value;
    /// Runs the call and reports it on `events`: one `ToolCall`, exactly one `ToolResult`.
    fn call<'a>(
        &'a self,
        args: Map<String, Value>,
        events: &'a EventBus,
        scope: &'a Scope,
    ) -> BoxFuture<'a, CallOutcome>;

    /// DSPy's `str(tool)` under the name the agent sees, as listed in the ReAct instructions.
    fn describe(&self, shown: &str) -> String {
        let desc = if self.description().is_empty() {
            ".".to_string()
        } else {
            format!(", whose description is <desc>{}</desc>.", self.description()).replace('\n', "  ")
        };
        format!("{shown}{desc} It takes arguments {}.", crate::agent::pyfmt::repr(&Value::Object(self.args().clone())))
    }
}

/// What the LM reads in the trajectory for a call's outcome (`shown`: the tool's name as
/// the agent knows it). Derived from the structured outcome, never parsed back.
pub fn observation(shown: &str, outcome: &CallOutcome) -> (ObservationKind, Value) {
    let kind = ObservationKind::of(outcome);
    let value = match outcome {
        CallOutcome::Success { structured, text } => {
            if text.is_empty() {
                structured.clone().unwrap_or(Value::Null)
            } else {
                Value::String(text.clone())
            }
        }
        CallOutcome::ToolError { message, .. } => Value::String(format!("Execution error in {shown}: {message}")),
        CallOutcome::Denied { side, required, missing, .. } => Value::String(format!(
            "Permission denied: {shown} requires scope {required}; the current access token lacks {missing} ({}).",
            side.explain()
        )),
        CallOutcome::Failed { class, message } => {
            Value::String(format!("Execution error in {shown}: {message} ({})", class.label()))
        }
    };
    (kind, value)
}

/// An MCP tool behind a `SecureTool` (which reports the call on its bus).
pub struct McpTool {
    secure: Arc<SecureTool>,
    args: Map<String, Value>,
}

impl McpTool {
    pub fn new(secure: Arc<SecureTool>) -> Self {
        let args = secure.spec.input_schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        Self { secure, args }
    }
}

impl Tool for McpTool {
    fn id(&self) -> &ToolName {
        self.secure.id()
    }

    fn description(&self) -> &str {
        &self.secure.spec.description
    }

    fn args(&self) -> &Map<String, Value> {
        &self.args
    }

    fn schema(&self) -> &Value {
        &self.secure.spec.input_schema
    }

    fn call<'a>(
        &'a self,
        args: Map<String, Value>,
        _events: &'a EventBus,
        scope: &'a Scope,
    ) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move { self.secure.call(Value::Object(args), scope).await.outcome })
    }
}

/// Why arguments fail a tool's schema (the message is what the agent reads).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    #[error("missing required argument `{0}`")]
    Missing(String),
    #[error("unknown argument `{0}`")]
    Unknown(String),
    #[error("`{path}` must be one of {options}")]
    NotOneOf { path: String, options: String },
    #[error("`{path}` must be {types}")]
    WrongType { path: String, types: String },
    #[error("`{path}` must be at least {min}")]
    TooSmall { path: String, min: f64 },
    #[error("`{path}` must be at most {max}")]
    TooLarge { path: String, max: f64 },
}

/// Validates arguments against a tool's JSON schema (the subset MCP tools use: object
/// properties, required, type, enum, items, minimum/maximum, additionalProperties).
pub fn validate_args(schema: &Value, args: &Map<String, Value>) -> Result<(), ArgsError> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !args.contains_key(r) {
                return Err(ArgsError::Missing(r.to_string()));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in args {
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(s, v, k)?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err(ArgsError::Unknown(k.to_string()));
            }
            None => {}
        }
    }
    Ok(())
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), ArgsError> {
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(ArgsError::NotOneOf {
            path: path.to_string(),
            options: crate::agent::pyfmt::json_dumps(&Value::Array(options.clone())),
        });
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    let ok = types.iter().any(|t| match *t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    });
    if !ok {
        return Err(ArgsError::WrongType { path: path.to_string(), types: types.join(" or ") });
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        return Err(ArgsError::TooSmall { path: path.to_string(), min });
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64())
        && n > max
    {
        return Err(ArgsError::TooLarge { path: path.to_string(), max });
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// A function tool's failure: the message the agent reads as a tool error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ToolFailure(pub String);

/// What a function tool returns: `Ok(value)` (its text, or JSON) or a tool error.
pub type FnResult = Result<Value, ToolFailure>;

type ToolFn = dyn Fn(Map<String, Value>) -> FnResult + Send + Sync;

/// A tool backed by a plain function (tests, local utilities); server `local`.
pub struct FnTool {
    id: ToolName,
    description: String,
    args: Map<String, Value>,
    schema: Value,
    f: Box<ToolFn>,
}

impl FnTool {
    pub fn new(
        name: &str,
        description: &str,
        args: Value,
        f: impl Fn(Map<String, Value>) -> FnResult + Send + Sync + 'static,
    ) -> Self {
        let args = args.as_object().cloned().unwrap_or_default();
        let schema = serde_json::json!({"type": "object", "properties": Value::Object(args.clone())});
        Self { id: ToolName::new("local", name), description: description.into(), args, schema, f: Box::new(f) }
    }
}

impl Tool for FnTool {
    fn id(&self) -> &ToolName {
        &self.id
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn args(&self) -> &Map<String, Value> {
        &self.args
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn call<'a>(
        &'a self,
        args: Map<String, Value>,
        events: &'a EventBus,
        scope: &'a Scope,
    ) -> BoxFuture<'a, CallOutcome> {
        Box::pin(async move {
            let start = Instant::now();
            let digest = args_digest(&args);
            events.emit(
                scope,
                EventKind::ToolCall {
                    tool: self.id.clone(),
                    args: Value::Object(args.clone()),
                    args_digest: digest.clone(),
                    required: ScopeSet::new(),
                },
            );
            let outcome = match (self.f)(args) {
                Ok(Value::String(text)) => CallOutcome::Success { structured: None, text },
                Ok(v) => CallOutcome::Success { text: String::new(), structured: Some(v) },
                Err(ToolFailure(message)) => CallOutcome::ToolError { message, structured: None },
            };
            events.emit(
                scope,
                EventKind::ToolResult {
                    tool: self.id.clone(),
                    outcome: outcome.clone(),
                    attempts: 1,
                    latency_ms: start.elapsed().as_secs_f64() * 1e3,
                    audit: CallAudit { args_digest: Some(digest), ..CallAudit::default() },
                },
            );
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_validation_names_the_problem() {
        let schema = json!({"type": "object", "required": ["customer_id"], "properties": {
            "customer_id": {"type": "string"}, "priority": {"type": "string", "enum": ["low", "high"]},
            "amounts": {"type": "array", "items": {"type": "number"}}, "limit": {"type": ["integer", "null"], "minimum": 1}}});
        let ok = |v: Value| validate_args(&schema, v.as_object().unwrap());
        assert!(ok(json!({"customer_id": "ABC123", "amounts": [1, 2.5], "limit": 3})).is_ok());
        let err = |v: Value| ok(v).unwrap_err().to_string();
        assert_eq!(err(json!({})), "missing required argument `customer_id`");
        assert_eq!(err(json!({"customer_id": 5})), "`customer_id` must be string");
        assert_eq!(
            err(json!({"customer_id": "A", "priority": "mid"})),
            "`priority` must be one of [\"low\", \"high\"]"
        );
        assert_eq!(err(json!({"customer_id": "A", "amounts": [1, "x"]})), "`amounts[1]` must be number");
        assert_eq!(err(json!({"customer_id": "A", "limit": 0})), "`limit` must be at least 1");
    }
}
