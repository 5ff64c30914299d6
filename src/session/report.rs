//! A run, told from its events. Headless frontends (`warden run`, `demo --headless`,
//! `--json`) and, later, the optimizer's security metric read a run's outcome here, from
//! the same stream the console shows — there is no second channel that could disagree.

use serde::Serialize;
use tokio::sync::mpsc;

use crate::agent::pyfmt::str_scalar;
use crate::agent::react::Step;
use crate::agent::tool::observation;
use crate::types::event::{CallOutcome, DenialSide, Event, EventKind, ObservationKind, RunStatus};
use crate::types::scope::ScopeSet;
use crate::types::tool::ToolName;

/// A denial in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denial {
    pub tool: String,
    pub missing: ScopeSet,
    pub side: DenialSide,
}

/// One run's outcome.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub run_id: String,
    pub request: String,
    /// Names the agent saw (to show a tool the way the agent named it).
    tools: Vec<String>,
    pub status: Option<RunStatus>,
    pub steps: Vec<Step>,
    pub denials: Vec<Denial>,
    pub response: String,
    pub elapsed_ms: f64,
    /// The last agent error (an LM failure when the run failed).
    pub error: Option<String>,
    /// The step the next tool event belongs to has begun (its thought arrived).
    open: bool,
}

impl RunReport {
    /// Folds one event of this run into the report; `true` once the run has finished.
    pub fn ingest(&mut self, e: &Event) -> bool {
        match &e.kind {
            EventKind::RunStarted { request, tools, .. } => {
                self.run_id = e.run_id.clone().unwrap_or_default();
                self.request = request.clone();
                self.tools = tools.clone();
            }
            EventKind::Thought { text } => {
                self.steps.push(Step {
                    thought: text.clone(),
                    tool: String::new(),
                    args: serde_json::Value::Object(Default::default()),
                    observation: String::new(),
                    kind: ObservationKind::Finish,
                });
                self.open = true;
            }
            EventKind::ToolCall { tool, args, .. } => {
                let shown = self.shown(tool);
                if let Some(step) = self.current() {
                    step.tool = shown;
                    step.args = args.clone();
                }
            }
            EventKind::ToolResult { tool, outcome, .. } => {
                let shown = self.shown(tool);
                if let CallOutcome::Denied { side, missing, .. } = outcome {
                    self.denials.push(Denial { tool: tool.name.clone(), missing: missing.clone(), side: *side });
                }
                let (kind, value) = observation(&shown, outcome);
                if let Some(step) = self.current() {
                    step.kind = kind;
                    step.observation = str_scalar(&value);
                }
                self.open = false;
            }
            EventKind::InvalidAction { tool, args, reason } => {
                if let Some(step) = self.current() {
                    step.tool = tool.clone();
                    step.args = args.clone();
                    step.kind = ObservationKind::Invalid;
                    step.observation = format!("Execution error in {tool}: {reason}");
                }
                self.open = false;
            }
            EventKind::Finish => {
                if let Some(step) = self.current() {
                    step.tool = "finish".into();
                    step.kind = ObservationKind::Finish;
                    step.observation = "Completed.".into();
                }
                self.open = false;
            }
            EventKind::AgentError { message } => {
                // A thought-less step cannot exist: an unparseable choice ends the trajectory.
                self.error = Some(message.clone());
            }
            EventKind::FinalAnswer { response } => self.response = response.clone(),
            EventKind::RunFinished { status, elapsed_ms, .. } => {
                self.status = Some(*status);
                self.elapsed_ms = *elapsed_ms;
                // A model failure keeps its error (its reply is that same error); a run that
                // failed and still answered, or did not fail, has none left to report.
                let keep = match status {
                    RunStatus::Error => true,
                    RunStatus::Failed => self.response.is_empty(),
                    _ => false,
                };
                if !keep {
                    self.error = None;
                }
                return true;
            }
            _ => {}
        }
        false
    }

    /// The tools the run called, as the agent named them (finish and invalid choices aside).
    pub fn tools(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !matches!(s.kind, ObservationKind::Finish | ObservationKind::Invalid))
            .map(|s| s.tool.clone())
            .collect()
    }

    fn current(&mut self) -> Option<&mut Step> {
        if self.open { self.steps.last_mut() } else { None }
    }

    fn shown(&self, tool: &ToolName) -> String {
        let qualified = tool.qualified();
        if self.tools.contains(&qualified) { qualified } else { tool.name.clone() }
    }
}

/// Reads `events` until the next run that starts there has finished, and reports it.
/// `None` when the stream ends first.
pub async fn next_run(events: &mut mpsc::Receiver<Event>) -> Option<RunReport> {
    let mut report = RunReport::default();
    let mut run_id: Option<String> = None;
    while let Some(e) = events.recv().await {
        if let EventKind::RunStarted { .. } = e.kind
            && run_id.is_none()
        {
            run_id = e.run_id.clone();
        }
        if run_id.is_none() || e.run_id != run_id {
            continue;
        }
        if report.ingest(&e) {
            return Some(report);
        }
    }
    None
}
