//! DSPy's ReAct over Warden's tools. Each step asks the LM for `next_thought`,
//! `next_tool_name` (one of the tools or `finish`) and `next_tool_args`; the tool's result
//! (or its error, or the denial) is appended to the trajectory as an observation. After
//! `finish` or `max_iters` steps, a ChainOfThought "extract" step writes the outputs.
//! Every step is reported as events while it happens.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use super::adapter::chat::ChatAdapter;
use super::lm::Lm;
use super::predict::{ChainOfThought, Predict, PredictError, Prediction};
use super::signature::{Field, FieldType, Signature};
use super::tool::{Tool, observation, validate_args};
use crate::types::event::{EventBus, EventKind, ObservationKind, RunStatus, Scope};
use crate::types::tool::ToolNames;

/// The seed uses five iterations.
pub const DEFAULT_MAX_ITERS: usize = 5;

pub struct ReAct {
    pub signature: Signature,
    pub react: Predict,
    pub extract: ChainOfThought,
    tools: Vec<Arc<dyn Tool>>,
    /// The names the agent sees: bare where unique, `server.tool` where two servers share one.
    names: ToolNames,
    pub max_iters: usize,
}

/// What happened in one step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub thought: String,
    pub tool: String,
    pub args: Value,
    pub observation: String,
    pub kind: ObservationKind,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunResult {
    pub outputs: Prediction,
    pub steps: Vec<Step>,
    pub status: RunStatus,
    pub elapsed_ms: f64,
    /// Every predictor call, in order (DSPy's `settings.trace`): what bootstrapping turns
    /// into demos.
    #[serde(skip)]
    pub trace: Vec<TraceStep>,
}

/// One predictor call: which predictor (DSPy's attribute path), its inputs, its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceStep {
    pub predictor: &'static str,
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
}

impl ReAct {
    pub fn new(signature: Signature, tools: Vec<Arc<dyn Tool>>, max_iters: usize) -> Self {
        let names = ToolNames::new(tools.iter().map(|t| t.id()));
        let react_sig = react_signature(&signature, &tools, &names);
        let fallback =
            Signature::new(signature.inputs().to_vec(), signature.outputs().to_vec(), Some(signature.instructions()))
                .and_then(|s| s.append_input(Field::new("trajectory", FieldType::Str)))
                .unwrap_or_else(|_| signature.clone());
        Self {
            react: Predict::new(react_sig),
            extract: ChainOfThought::new(&fallback),
            signature,
            tools,
            names,
            max_iters,
        }
    }

    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// Runs the agent. Tool failures become observations; only an LM failure (or output
    /// that does not parse even with the JSON fallback) aborts the run.
    pub async fn run(
        &self,
        lm: &dyn Lm,
        inputs: &Map<String, Value>,
        events: &EventBus,
        run_id: &str,
    ) -> Result<RunResult, PredictError> {
        let start = Instant::now();
        let mut trajectory = Map::new();
        let mut steps = Vec::new();
        let mut trace = Vec::new();
        let scope_at = |step: Option<u32>| Scope { run_id: Some(run_id.to_string()), step };
        events.emit(
            &scope_at(None),
            EventKind::RunStarted {
                request: inputs.values().map(crate::agent::pyfmt::str_scalar).collect::<Vec<_>>().join("\n"),
                model: lm.name().to_string(),
                tools: self.names.iter().map(|(_, shown)| shown.to_string()).collect(),
            },
        );
        for idx in 0..self.max_iters {
            let scope = scope_at(Some(idx as u32));
            let mut step_inputs = inputs.clone();
            step_inputs.insert("trajectory".into(), Value::String(format_trajectory(&trajectory)));
            let reporting = super::lm::Reporting { lm, events, scope: scope.clone() };
            let pred = match self.react.forward(&reporting, &step_inputs).await {
                Ok(p) => {
                    trace.push(TraceStep { predictor: super::program::REACT, inputs: step_inputs, outputs: p.clone() });
                    p
                }
                // As in DSPy: output that names no valid tool ends the trajectory, and the
                // extract step answers from what was gathered so far.
                Err(e @ PredictError::Parse(..)) => {
                    tracing::warn!(error = %e, "ending the trajectory: the agent failed to select a valid tool");
                    events.emit(&scope, EventKind::AgentError { message: format!("ending the trajectory: {e}") });
                    break;
                }
                Err(e) => return Err(self.abort(events, &scope, e, &steps, start)),
            };
            let thought = pred.get("next_thought").map(crate::agent::pyfmt::str_scalar).unwrap_or_default();
            let tool = pred.get("next_tool_name").and_then(Value::as_str).unwrap_or("finish").to_string();
            let args = pred.get("next_tool_args").cloned().unwrap_or(Value::Object(Map::new()));
            events.emit(&scope, EventKind::Thought { text: thought.clone() });
            trajectory.insert(format!("thought_{idx}"), Value::String(thought.clone()));
            trajectory.insert(format!("tool_name_{idx}"), Value::String(tool.clone()));
            trajectory.insert(format!("tool_args_{idx}"), args.clone());
            let (kind, observation) = self.dispatch(&tool, &args, events, &scope).await;
            let text = crate::agent::pyfmt::str_scalar(&observation);
            trajectory.insert(format!("observation_{idx}"), observation);
            steps.push(Step { thought, tool: tool.clone(), args, observation: text, kind });
            if tool == "finish" {
                break;
            }
        }
        let scope = scope_at(Some(steps.len() as u32));
        let mut extract_inputs = inputs.clone();
        extract_inputs.insert("trajectory".into(), Value::String(format_trajectory(&trajectory)));
        let reporting = super::lm::Reporting { lm, events, scope: scope.clone() };
        let outputs = match self.extract.forward(&reporting, &extract_inputs).await {
            Ok(o) => {
                trace.push(TraceStep {
                    predictor: super::program::EXTRACT,
                    inputs: extract_inputs,
                    outputs: o.clone(),
                });
                o
            }
            Err(e) => return Err(self.abort(events, &scope, e, &steps, start)),
        };
        let response = self
            .signature
            .outputs()
            .iter()
            .filter_map(|f| outputs.get(&f.name))
            .map(crate::agent::pyfmt::str_scalar)
            .collect::<Vec<_>>()
            .join("\n");
        events.emit(&scope, EventKind::FinalAnswer { response });
        let status = status_of(&steps);
        let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        events.emit(&scope_at(None), EventKind::RunFinished { status, steps: steps.len() as u32, elapsed_ms });
        Ok(RunResult { outputs, steps, status, elapsed_ms, trace })
    }

    /// Ends a run the model could not continue. A model failure (no key, rejected key,
    /// unreachable, timed out) is also the agent's reply — its message names the cause and
    /// the setting to change, so every frontend shows the same words — and the run ends
    /// as `error`, never as a graceful failure of the request.
    fn abort(&self, events: &EventBus, scope: &Scope, e: PredictError, steps: &[Step], start: Instant) -> PredictError {
        events.emit(scope, EventKind::AgentError { message: e.to_string() });
        let status = match &e {
            PredictError::Lm(lm) => {
                events.emit(scope, EventKind::FinalAnswer { response: lm.to_string() });
                RunStatus::Error
            }
            _ => RunStatus::Failed,
        };
        let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        let run = Scope { step: None, ..scope.clone() };
        events.emit(&run, EventKind::RunFinished { status, steps: steps.len() as u32, elapsed_ms });
        e
    }

    /// Runs the named tool (which reports its own call), or explains why it cannot.
    async fn dispatch(&self, name: &str, args: &Value, events: &EventBus, scope: &Scope) -> (ObservationKind, Value) {
        if name == "finish" {
            events.emit(scope, EventKind::Finish);
            return (ObservationKind::Finish, Value::String("Completed.".into()));
        }
        let invalid = |reason: String| {
            events.emit(
                scope,
                EventKind::InvalidAction { tool: name.to_string(), args: args.clone(), reason: reason.clone() },
            );
            (ObservationKind::Invalid, Value::String(format!("Execution error in {name}: {reason}")))
        };
        let Some(tool) = self.names.resolve(name).and_then(|id| self.tools.iter().find(|t| t.id() == id)) else {
            return invalid("no such tool".into());
        };
        let Value::Object(map) = args else {
            return invalid("arguments must be a JSON object".into());
        };
        if let Err(e) = validate_args(tool.schema(), map) {
            return invalid(e.to_string());
        }
        let outcome = tool.call(map.clone(), events, scope).await;
        observation(name, &outcome)
    }
}

/// How a run ended, from its steps: any denial → denied; no tool used → refused (the
/// agent declined); a failed or invalid step → failed; else ok.
pub fn status_of(steps: &[Step]) -> RunStatus {
    if steps.iter().any(|s| s.kind == ObservationKind::Denied) {
        RunStatus::Denied
    } else if steps.iter().all(|s| s.kind == ObservationKind::Finish) {
        RunStatus::Refused
    } else if steps
        .iter()
        .any(|s| matches!(s.kind, ObservationKind::Failed | ObservationKind::Invalid | ObservationKind::ToolError))
    {
        RunStatus::Failed
    } else {
        RunStatus::Ok
    }
}

/// DSPy's ReAct signature: the original inputs plus `trajectory`, producing the next
/// thought, tool name and tool arguments, with DSPy's instruction text.
pub fn react_signature(sig: &Signature, tools: &[Arc<dyn Tool>], tool_names: &ToolNames) -> Signature {
    let names = |fields: &[Field]| fields.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", ");
    let (inputs, outputs) = (names(sig.inputs()), names(sig.outputs()));
    let mut instr: Vec<String> = Vec::new();
    if !sig.instructions().is_empty() {
        instr.push(format!("{}\n", sig.instructions()));
    }
    instr.extend([
        format!("You are an Agent. In each episode, you will be given the fields {inputs} as input. And you can see your past trajectory so far."),
        format!("Your goal is to use one or more of the supplied tools to collect any necessary information for producing {outputs}.\n"),
        "To do this, you will interleave next_thought, next_tool_name, and next_tool_args in each turn, and also when finishing the task.".into(),
        "After each tool call, you receive a resulting observation, which gets appended to your trajectory.\n".into(),
        "When writing next_thought, you may reason about the current situation and plan for future steps.".into(),
        "When selecting the next_tool_name and its next_tool_args, the tool must be one of:\n".into(),
    ]);
    let mut names_list: Vec<String> = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let shown = tool_names.shown(t.id()).unwrap_or(&t.id().name);
        instr.push(format!("({}) {}", i + 1, t.describe(shown)));
        names_list.push(shown.to_string());
    }
    instr.push(format!(
        "({}) finish, whose description is <desc>Marks the task as complete. That is, signals that all information for producing the outputs, i.e. {outputs}, are now available to be extracted.</desc>. It takes arguments {{}}.",
        tools.len() + 1
    ));
    instr.push("When providing `next_tool_args`, the value inside the field must be in JSON format".into());
    names_list.push("finish".into());
    let mut inputs_fields = sig.inputs().to_vec();
    inputs_fields.push(Field::new("trajectory", FieldType::Str));
    Signature::new(
        inputs_fields,
        vec![
            Field::new("next_thought", FieldType::Str),
            Field::new("next_tool_name", FieldType::Literal(names_list)),
            Field::new("next_tool_args", FieldType::Dict),
        ],
        Some(&instr.join("\n")),
    )
    .unwrap_or_else(|_| sig.clone())
}

/// The trajectory as DSPy renders it: one `[[ ## key ## ]]` block per entry.
pub fn format_trajectory(trajectory: &Map<String, Value>) -> String {
    let fields: Vec<Field> = trajectory.keys().map(|k| Field::new(k, FieldType::Str)).collect();
    match Signature::new(fields, vec![Field::new("x", FieldType::Str)], Some("")) {
        Ok(sig) => ChatAdapter.format_user(&sig, trajectory, "", false),
        Err(_) => String::new(),
    }
}
