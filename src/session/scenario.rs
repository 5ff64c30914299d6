//! Scenarios: named requests with the tool calls they should make and whether they should
//! fail. The session core runs them (`Command::RunScenario`) through the real stack; a
//! headless frontend judges each finished run (`ScenarioResult::judge`) and prints it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::report::{Denial, RunReport};
use crate::agent::react::Step;
use crate::types::event::{ObservationKind, RunStatus};
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
#[non_exhaustive]
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

impl ScenarioResult {
    /// Judges a finished run against what the scenario expects.
    pub fn judge(scenario: &Scenario, report: RunReport) -> Self {
        let status = report.status.unwrap_or(RunStatus::Failed);
        let tools = report.tools();
        let mismatch = judge(scenario, status, &tools);
        ScenarioResult {
            name: scenario.name.clone(),
            request: scenario.request.clone(),
            status,
            tools,
            denials: report.denials,
            response: report.response,
            steps: report.steps,
            elapsed_ms: report.elapsed_ms,
            expected: mismatch.is_none(),
            mismatch,
            error: report.error,
        }
    }
}

/// `None` when the outcome is what the scenario expects, else why not. A run whose model
/// failed (`error`) never is: the agent decided nothing, so a scenario that expects a
/// graceful failure has not been tested either.
pub fn judge(s: &Scenario, status: RunStatus, tools: &[String]) -> Option<String> {
    if status == RunStatus::Error {
        return Some("the language model failed, so the scenario was not tested".into());
    }
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
    // A model failure's reply is its error, already printed above.
    if r.status != RunStatus::Error {
        out.push_str(&format!("  answer   {}\n", r.response));
    }
    let verdict = match &r.mismatch {
        None => "✓ as expected".to_string(),
        Some(m) if r.status == RunStatus::Error => format!("✗ ERROR: {m}"),
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
