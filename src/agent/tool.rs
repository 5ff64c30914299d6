//! Tools as the agent sees them: name, description, JSON-schema arguments (validated before
//! any call), and an async call that always yields an observation — tool errors, denials
//! and transport failures become text the model can read, as in DSPy's ReAct.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::mcp::secure_tool::{CallOutcome, SecureTool};
use crate::types::event::{DenialSide, ObservationKind, Scope};

/// What a tool step returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub kind: ObservationKind,
    /// The value written into the trajectory.
    pub value: Value,
}

impl Observation {
    pub fn text(&self) -> String {
        crate::agent::pyfmt::str_scalar(&self.value)
    }
}

pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON-schema `properties` of the arguments (DSPy's `Tool.args`).
    fn args(&self) -> &Map<String, Value>;
    /// Full input schema (for validation).
    fn schema(&self) -> &Value;
    fn call<'a>(&'a self, args: Map<String, Value>, scope: &'a Scope) -> BoxFuture<'a, Observation>;

    /// DSPy's `str(tool)`, as listed in the ReAct instructions.
    fn describe(&self) -> String {
        let desc = if self.description().is_empty() {
            ".".to_string()
        } else {
            format!(", whose description is <desc>{}</desc>.", self.description()).replace('\n', "  ")
        };
        format!(
            "{}{desc} It takes arguments {}.",
            self.name(),
            crate::agent::pyfmt::repr(&Value::Object(self.args().clone()))
        )
    }
}

/// An MCP tool behind a `SecureTool`.
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
    fn name(&self) -> &str {
        &self.secure.spec.name
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

    fn call<'a>(&'a self, args: Map<String, Value>, scope: &'a Scope) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            let report = self.secure.call(Value::Object(args), scope).await;
            let name = self.name();
            match report.outcome {
                CallOutcome::Success { structured, text } => Observation {
                    kind: ObservationKind::Ok,
                    value: if text.is_empty() { structured.unwrap_or(Value::Null) } else { Value::String(text) },
                },
                CallOutcome::ToolError { message, .. } => Observation {
                    kind: ObservationKind::ToolError,
                    value: Value::String(format!("Execution error in {name}: {message}")),
                },
                CallOutcome::Denied { side, required, missing, .. } => {
                    let by = match side {
                        DenialSide::Client => "refused by the client's scope pre-check before sending",
                        DenialSide::Server => "the server answered 403 insufficient_scope",
                    };
                    Observation {
                        kind: ObservationKind::Denied,
                        value: Value::String(format!(
                            "Permission denied: {name} requires scope {required}; the current access token lacks {missing} ({by})."
                        )),
                    }
                }
                CallOutcome::Failed { class, message } => Observation {
                    kind: ObservationKind::Failed,
                    value: Value::String(format!("Execution error in {name}: {message} ({class:?})")),
                },
            }
        })
    }
}

/// Validates arguments against a tool's JSON schema (the subset MCP tools use: object
/// properties, required, type, enum, items, minimum/maximum, additionalProperties).
pub fn validate_args(schema: &Value, args: &Map<String, Value>) -> Result<(), String> {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !args.contains_key(r) {
                return Err(format!("missing required argument `{r}`"));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    for (k, v) in args {
        match props.and_then(|p| p.get(k)) {
            Some(s) => check(s, v, k)?,
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err(format!("unknown argument `{k}`"));
            }
            None => {}
        }
    }
    Ok(())
}

fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        return Err(format!(
            "`{path}` must be one of {}",
            crate::agent::pyfmt::json_dumps(&Value::Array(options.clone()))
        ));
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
        return Err(format!("`{path}` must be {}", types.join(" or ")));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        return Err(format!("`{path}` must be at least {min}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64())
        && n > max
    {
        return Err(format!("`{path}` must be at most {max}"));
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check(items, item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

type ToolFn = dyn Fn(Map<String, Value>) -> Observation + Send + Sync;

/// A tool backed by a plain function (tests, local utilities).
pub struct FnTool {
    name: String,
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
        f: impl Fn(Map<String, Value>) -> Observation + Send + Sync + 'static,
    ) -> Self {
        let args = args.as_object().cloned().unwrap_or_default();
        let schema = serde_json::json!({"type": "object", "properties": Value::Object(args.clone())});
        Self { name: name.into(), description: description.into(), args, schema, f: Box::new(f) }
    }
}

impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
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

    fn call<'a>(&'a self, args: Map<String, Value>, _scope: &'a Scope) -> BoxFuture<'a, Observation> {
        Box::pin(async move { (self.f)(args) })
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
        assert_eq!(ok(json!({})).unwrap_err(), "missing required argument `customer_id`");
        assert_eq!(ok(json!({"customer_id": 5})).unwrap_err(), "`customer_id` must be string");
        assert_eq!(
            ok(json!({"customer_id": "A", "priority": "mid"})).unwrap_err(),
            "`priority` must be one of [\"low\", \"high\"]"
        );
        assert_eq!(ok(json!({"customer_id": "A", "amounts": [1, "x"]})).unwrap_err(), "`amounts[1]` must be number");
        assert_eq!(ok(json!({"customer_id": "A", "limit": 0})).unwrap_err(), "`limit` must be at least 1");
    }
}
