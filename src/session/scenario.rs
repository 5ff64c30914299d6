//! Scenarios: named requests with the tool calls they should make and whether they should
//! fail, run through the real stack (token manager, secure tools, ReAct). Used by
//! `warden run`, `warden demo --headless` and tests.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::agent::lm::Lm;
use crate::agent::react::{ReAct, Step};
use crate::agent::signature::Signature;
use crate::agent::tool::{McpTool, Tool};
use crate::mcp::ClientStack;
use crate::types::event::{DenialSide, EventBus, EventKind, ObservationKind, RunStatus};
use crate::types::scope::ScopeSet;

/// The repository's scenarios, compiled in for `warden demo`.
pub const DEFAULT_SCENARIOS: &str = include_str!("../../config/scenarios.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub request: String,
    #[serde(default)]
    pub expected_tools: Vec<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default)]
    pub should_fail: bool,
    /// Run under this grant instead of the default.
    #[serde(default)]
    pub scopes: Option<ScopeSet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    scenario: Vec<Scenario>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenarios {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("scenarios {path} are not valid: {message}")]
    Parse { path: String, message: String },
}

pub fn parse(text: &str, origin: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let file: ScenarioFile =
        toml::from_str(text).map_err(|e| ScenarioError::Parse { path: origin.into(), message: e.to_string() })?;
    Ok(file.scenario)
}

pub fn load(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
    parse(&text, &path.display().to_string())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Denial {
    pub tool: String,
    pub missing: ScopeSet,
    pub side: DenialSide,
}

/// One scenario's outcome (`warden run --json` prints one per line).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub request: String,
    pub status: RunStatus,
    pub tools: Vec<String>,
    pub denials: Vec<Denial>,
    pub response: String,
    pub steps: Vec<Step>,
    pub elapsed_ms: f64,
    pub expected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct Runner<'a> {
    pub stack: &'a ClientStack,
    pub lm: Arc<dyn Lm>,
    pub events: EventBus,
    pub max_iters: usize,
    /// The grant to restore after a scenario that ran under its own `scopes`.
    pub default_scopes: Option<ScopeSet>,
}

impl Runner<'_> {
    pub fn agent(&self) -> ReAct {
        let tools: Vec<Arc<dyn Tool>> =
            self.stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
        ReAct::new(Signature::customer_service(), tools, self.max_iters)
    }

    pub async fn run(&self, scenario: &Scenario, run_id: &str) -> ScenarioResult {
        let mut denial_events = self.events.subscribe(4096);
        if scenario.scopes.is_some() {
            self.regrant(scenario.scopes.clone()).await;
        }
        let agent = self.agent();
        let inputs: Map<String, Value> = [("request".to_string(), json!(scenario.request))].into_iter().collect();
        let result = agent.run(self.lm.as_ref(), &inputs, &self.events, run_id).await;
        if scenario.scopes.is_some() {
            self.regrant(self.default_scopes.clone()).await;
        }
        let mut denials = Vec::new();
        while let Ok(e) = denial_events.try_recv() {
            if let (Some(rid), EventKind::Denied { tool, missing, side, .. }) = (&e.run_id, e.kind)
                && rid == run_id
            {
                denials.push(Denial { tool, missing, side });
            }
        }
        let (status, steps, response, elapsed_ms, error) = match result {
            Ok(r) => {
                let response = r.outputs.get("response").map(crate::agent::pyfmt::str_scalar).unwrap_or_default();
                (r.status, r.steps, response, r.elapsed_ms, None)
            }
            Err(e) => (RunStatus::Failed, Vec::new(), String::new(), 0.0, Some(e.to_string())),
        };
        let tools: Vec<String> = steps
            .iter()
            .filter(|s| !matches!(s.kind, ObservationKind::Finish | ObservationKind::Invalid))
            .map(|s| s.tool.clone())
            .collect();
        let mismatch = judge(scenario, status, &tools);
        ScenarioResult {
            name: scenario.name.clone(),
            request: scenario.request.clone(),
            status,
            tools,
            denials,
            response,
            steps,
            elapsed_ms,
            expected: mismatch.is_none(),
            mismatch,
            error,
        }
    }

    async fn regrant(&self, scopes: Option<ScopeSet>) {
        for server in &self.stack.servers {
            if let Err(e) = server.tokens.regrant(scopes.clone()).await {
                tracing::warn!(error = %e, "re-grant for a scenario failed");
            }
        }
    }
}

/// `None` when the outcome is what the scenario expects, else why not.
pub fn judge(s: &Scenario, status: RunStatus, tools: &[String]) -> Option<String> {
    if s.should_fail {
        if status == RunStatus::Ok {
            return Some(format!("expected a graceful failure, but the run succeeded (tools {tools:?})"));
        }
        if let Some(t) = tools.iter().find(|t| !s.expected_tools.contains(t)) {
            return Some(format!("called {t}, which the scenario does not allow"));
        }
        return None;
    }
    if status != RunStatus::Ok {
        return Some(format!("expected ok, got {status:?}"));
    }
    (tools != s.expected_tools.as_slice()).then(|| format!("expected tools {:?}, called {tools:?}", s.expected_tools))
}

/// A readable trace of one result: thought / action / observation / denial / answer.
pub fn render(r: &ScenarioResult) -> String {
    let mut out = format!("▶ {} — {}\n", r.name, r.request);
    for (i, s) in r.steps.iter().enumerate() {
        out.push_str(&format!("  step {i}  thought  {}\n", s.thought));
        out.push_str(&format!("          action   {} {}\n", s.tool, crate::agent::pyfmt::json_dumps(&s.args)));
        let marker = match s.kind {
            ObservationKind::Denied => "✗ denied",
            ObservationKind::ToolError | ObservationKind::Failed | ObservationKind::Invalid => "✗ error ",
            _ => "observe ",
        };
        out.push_str(&format!("          {marker} {}\n", shorten(&s.observation, 220)));
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("  error    {e}\n"));
    }
    out.push_str(&format!("  answer   {}\n", r.response));
    let verdict = match &r.mismatch {
        None => "✓ as expected".to_string(),
        Some(m) => format!("✗ NOT as expected: {m}"),
    };
    out.push_str(&format!(
        "  {verdict} — status {}, tools [{}], {:.1} ms\n",
        serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        r.tools.join(", "),
        r.elapsed_ms
    ));
    out
}

fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    format!("{}…", one_line.chars().take(max).collect::<String>())
}
