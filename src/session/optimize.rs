//! `Command::Optimize`: the seeds' loop inside the session core. Every run goes through the
//! session's own client stack, model and event bus — the same secure tools, audit trail
//! and monitor as any request, at most `concurrency` at a time — so a permission failure
//! during optimization is in the feed and the audit log like any other.
//!
//! 1. Production feedback (`--feedback DIR`: audit logs and session recordings) becomes
//!    learned constraints ("create_support_ticket denied under {customer:read}") and, where
//!    the request is known, training examples the program must handle without the
//!    violation.
//! 2. The program as it is (no demos, or `--program`) is scored on the evaluation set:
//!    the "before" column. Denials it runs into under this grant are learnt too.
//! 3. The constraints go into the program's instructions (the offline planner and a hosted
//!    model both read them), then the chosen optimizer compiles it with the security-aware
//!    metric, and the result is scored again: the "after" column.
//! 4. The program is validated against the grant, the tools and the constraints; only a
//!    valid program is written (sealed with its security configuration, or DSPy JSON).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;

use crate::agent::lm::Lm;
use crate::agent::predict::{Example, PredictError};
use crate::agent::program::{
    LearnedConstraint, OptimizationMetrics, PinnedTool, ProgramFile, ProgramState, SecurityConfig,
};
use crate::agent::react::ReAct;
use crate::agent::signature::Signature;
use crate::agent::teleprompt::bootstrap::BootstrapFewShot;
use crate::agent::teleprompt::labeled::LabeledFewShot;
use crate::agent::teleprompt::metric::SecurityMetric;
use crate::agent::teleprompt::random_search::RandomSearch;
use crate::agent::teleprompt::trainset::TrainExample;
use crate::agent::teleprompt::{EvalReport, Outcome, Progress, Runner, Violation, evaluate};
use crate::agent::tool::{McpTool, Tool};
use crate::mcp::ClientStack;
use crate::types::confirm::DecidedBy;
use crate::types::event::{CallOutcome, Event, EventBus, EventKind, Journal, JournalError, Scope};
use crate::types::optimize::{ExampleRow, OptimizeSummary, Scored};
use crate::types::scope::ScopeSet;

/// Which optimizer, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Optimizer {
    Labeled(LabeledFewShot),
    Bootstrap(BootstrapFewShot),
    RandomSearch(RandomSearch),
}

impl Optimizer {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Labeled(_) => "LabeledFewShot",
            Self::Bootstrap(_) => "BootstrapFewShot",
            Self::RandomSearch(_) => "BootstrapFewShotWithRandomSearch",
        }
    }
}

/// Where the compiled program goes.
#[derive(Debug, Clone, PartialEq)]
pub enum OutFormat {
    /// Program + security configuration, AES-256-GCM under the key file.
    Sealed { key_file: PathBuf },
    /// DSPy's JSON, loadable in Python (no security configuration).
    DspyJson,
}

/// Everything `warden optimize` (or the console) asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeJob {
    pub trainset: Vec<TrainExample>,
    pub valset: Option<Vec<TrainExample>>,
    pub optimizer: Optimizer,
    pub penalty: f64,
    pub concurrency: usize,
    /// Audit logs and session recordings from production.
    pub feedback: Option<PathBuf>,
    /// A program to start from (`--program`), else the plain ReAct.
    pub start: Option<ProgramState>,
    /// `None`: report only, write nothing.
    pub out: Option<(PathBuf, OutFormat)>,
}

impl OptimizeJob {
    /// What the console's optimize overlay runs: the trainset in `./config/trainset.toml`
    /// when there is one (else the built-in), `BootstrapFewShot` with Warden's defaults,
    /// the seeds' penalty, and the program sealed to `STATE/programs/optimized-<time>.sealed`
    /// under `STATE/keys/program.key`.
    pub fn console_default(state_dir: &Path, now_secs: u64) -> Result<Self, String> {
        let local = Path::new("config/trainset.toml");
        let trainset = if local.exists() {
            crate::agent::teleprompt::trainset::load(local).map_err(|e| e.to_string())?
        } else {
            crate::agent::teleprompt::trainset::parse(
                crate::agent::teleprompt::trainset::DEFAULT_TRAINSET,
                "built-in config/trainset.toml",
            )
            .map_err(|e| e.to_string())?
        };
        let out = state_dir.join("programs").join(format!("optimized-{now_secs}.sealed"));
        Ok(Self {
            trainset,
            valset: None,
            optimizer: Optimizer::Bootstrap(BootstrapFewShot {
                metric_threshold: Some(1.0),
                ..BootstrapFewShot::default()
            }),
            penalty: crate::agent::teleprompt::metric::DEFAULT_PENALTY,
            concurrency: 8,
            feedback: None,
            start: None,
            out: Some((out, OutFormat::Sealed { key_file: state_dir.join("keys").join("program.key") })),
        })
    }
}

/// Events of the runs in flight, by run id (a journal: it sees each event as it is
/// emitted, so when a run returns, all its events — anomalies included — are here).
#[derive(Default)]
pub struct Collector {
    runs: Mutex<HashMap<String, Vec<Event>>>,
}

impl Journal for Collector {
    fn record(&self, event: &Event) -> Result<(), JournalError> {
        if let Some(run) = &event.run_id {
            let mut runs = self.runs.lock();
            if let Some(v) = runs.get_mut(run) {
                v.push(event.clone());
            }
        }
        Ok(())
    }
}

/// A run's entry in the collector, removed when dropped.
struct Tracked<'a> {
    collector: &'a Collector,
    run_id: String,
}

impl<'a> Tracked<'a> {
    fn new(collector: &'a Collector, run_id: String) -> Self {
        collector.runs.lock().insert(run_id.clone(), Vec::new());
        Self { collector, run_id }
    }

    fn take(self) -> Vec<Event> {
        self.collector.runs.lock().remove(&self.run_id).unwrap_or_default()
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.collector.runs.lock().remove(&self.run_id);
    }
}

/// The violations in one run's events.
pub fn violations(events: &[Event]) -> Vec<Violation> {
    let ids: HashSet<u64> = events.iter().map(|e| e.id).collect();
    let mut out = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::ToolResult { tool, outcome: CallOutcome::Denied { side, missing, .. }, .. } => {
                out.push(Violation::Denied { tool: tool.name.clone(), side: *side, missing: missing.clone() });
            }
            // An anomaly this run caused: every event it cites is the run's own (a spike
            // across concurrent runs is the optimizer's load, not this run's doing).
            EventKind::Anomaly { rule, message, evidence, .. } if evidence.iter().all(|id| ids.contains(id)) => {
                out.push(Violation::Anomaly { rule: *rule, message: message.clone() });
            }
            EventKind::ToolConfirmation { tool, allowed: true, by: DecidedBy::Policy, .. } => {
                out.push(Violation::Unconfirmed { tool: tool.name.clone() });
            }
            _ => {}
        }
    }
    out
}

/// Runs a program on an example through the session's stack and model.
pub struct StackRunner {
    stack: Arc<ClientStack>,
    lm: Arc<dyn Lm>,
    events: EventBus,
    max_iters: usize,
    collector: Arc<Collector>,
    next: AtomicU64,
}

impl Collector {
    /// A collector attached to `events` (as a journal: a bus keeps its journals, so a
    /// session attaches one and reuses it for every optimization).
    pub fn attach(events: &EventBus) -> Arc<Self> {
        let collector = Arc::new(Self::default());
        events.add_journal(collector.clone());
        collector
    }
}

impl StackRunner {
    pub fn new(
        stack: Arc<ClientStack>,
        lm: Arc<dyn Lm>,
        events: EventBus,
        max_iters: usize,
        collector: Arc<Collector>,
    ) -> Self {
        Self { stack, lm, events, max_iters, collector, next: AtomicU64::new(0) }
    }

    /// DSPy's ReAct over the stack's tools with `signature` (the instructions a program
    /// then replaces, and the tool list they carry).
    fn agent(&self, signature: Signature) -> ReAct {
        let tools: Vec<Arc<dyn Tool>> =
            self.stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
        ReAct::new(signature, tools, self.max_iters)
    }

    /// How many runs so far.
    pub fn runs(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

impl Runner for StackRunner {
    fn run<'a>(&'a self, program: &'a ProgramState, example: &'a Example) -> BoxFuture<'a, Result<Outcome, String>> {
        Box::pin(async move {
            let mut agent = self.agent(Signature::customer_service());
            agent.load_state(program).map_err(|e| e.to_string())?;
            let run_id = format!("optimize-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
            // Removes the run's entry however the run ends (a cancelled optimization drops
            // its runs mid-way): the collector holds only runs in flight.
            let tracked = Tracked::new(&self.collector, run_id.clone());
            let inputs = example.inputs();
            let result = agent.run(self.lm.as_ref(), &inputs, &self.events, &run_id).await;
            let events = tracked.take();
            match result {
                Ok(r) => Ok(Outcome {
                    prediction: r.outputs,
                    trace: r.trace,
                    steps: r.steps,
                    status: r.status,
                    violations: violations(&events),
                }),
                Err(PredictError::Lm(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// The base signature with the learnt constraints stated in its instructions.
pub fn constrained_signature(constraints: &[LearnedConstraint]) -> Signature {
    let base = Signature::customer_service();
    if constraints.is_empty() {
        return base;
    }
    let rules: Vec<String> = constraints.iter().map(LearnedConstraint::rule).collect();
    base.with_instructions(&format!(
        "{}\n\nSecurity constraints learnt from denials in optimization and production:\n{}",
        base.instructions(),
        rules.join("\n")
    ))
}

/// Adds a constraint, or counts it again.
fn learn(into: &mut Vec<LearnedConstraint>, c: LearnedConstraint) {
    match into.iter_mut().find(|x| x.tool == c.tool && x.grant == c.grant && x.kind == c.kind) {
        Some(x) => {
            x.count += c.count;
            if x.request.is_none() {
                x.request = c.request;
            }
        }
        None => into.push(c),
    }
}

/// Constraints and training examples from audit logs and session recordings under `dir`
/// (every `*.jsonl`, recursively; audit records and recorded events alike).
pub fn feedback(dir: &Path) -> std::io::Result<Vec<LearnedConstraint>> {
    let mut files = Vec::new();
    collect_jsonl(dir, &mut files)?;
    files.sort();
    let mut constraints = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let mut grant = ScopeSet::new();
        let mut requests: HashMap<String, String> = HashMap::new();
        let mut last_tool: HashMap<String, String> = HashMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            // An audit record wraps the event; a recording is the event.
            let ev = v.get("event").cloned().unwrap_or(v);
            let Ok(e) = serde_json::from_value::<Event>(ev) else { continue };
            let run = e.run_id.clone().unwrap_or_default();
            match &e.kind {
                EventKind::TokenIssued { token, .. } => grant = token.granted.clone(),
                EventKind::RunStarted { request, .. } => {
                    requests.insert(run, request.clone());
                }
                EventKind::ToolCall { tool, .. } => {
                    last_tool.insert(run, tool.name.clone());
                }
                EventKind::ToolResult { tool, outcome: CallOutcome::Denied { missing, .. }, .. } => {
                    learn(
                        &mut constraints,
                        LearnedConstraint {
                            tool: tool.name.clone(),
                            grant: grant.clone(),
                            missing: missing.clone(),
                            kind: "denied".into(),
                            source: "production".into(),
                            count: 1,
                            request: requests.get(&run).cloned(),
                        },
                    );
                }
                EventKind::Anomaly { rule, .. } => {
                    if let Some(tool) = last_tool.get(&run) {
                        learn(
                            &mut constraints,
                            LearnedConstraint {
                                tool: tool.clone(),
                                grant: grant.clone(),
                                missing: ScopeSet::new(),
                                kind: rule.as_str().into(),
                                source: "production".into(),
                                count: 1,
                                request: requests.get(&run).cloned(),
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }
    Ok(constraints)
}

/// Whether a constraint binds under `grant`: a denial for scopes the grant still lacks.
/// (An anomaly's constraint is kept in the security configuration and checked by
/// validation, but does not forbid a tool outright.)
pub fn applies(c: &LearnedConstraint, grant: &ScopeSet) -> bool {
    !c.missing.is_empty() && !c.missing.is_subset(grant)
}

/// The program as it should run under `grant`: a learnt rule stays in the instructions only
/// while it binds (a program compiled under {customer:read} that runs where ticket:create
/// is granted must not refuse tickets). Rules are matched by their exact text; other
/// instructions are untouched.
pub fn fit_to_grant(file: &ProgramFile, grant: &ScopeSet) -> ProgramState {
    let mut program = file.program.clone();
    let Some(security) = &file.security else { return program };
    let lifted: Vec<String> =
        security.learned_constraints.iter().filter(|c| !applies(c, grant)).map(LearnedConstraint::rule).collect();
    if lifted.is_empty() {
        return program;
    }
    for (_, p) in &mut program.predictors {
        p.instructions =
            p.instructions.lines().filter(|l| !lifted.iter().any(|r| r == l)).collect::<Vec<_>>().join("\n");
    }
    program
}

/// The training example a binding constraint with a known request makes: under this
/// grant the request must be refused, naming what is missing, without calling the tool.
fn example_from(c: &LearnedConstraint, tool_scopes: &BTreeMap<String, ScopeSet>) -> Option<TrainExample> {
    Some(TrainExample {
        request: c.request.clone()?,
        expected_tools: Vec::new(),
        expected_facts: Vec::new(),
        required_scopes: tool_scopes.get(&c.tool).cloned().unwrap_or_else(|| c.missing.clone()),
        should_fail: true,
        response: None,
    })
}

fn collect_jsonl(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_jsonl(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs a job: emits `OptimizeProgress` while it works and one `OptimizeFinished`.
pub async fn run_job(
    stack: Arc<ClientStack>,
    lm: Arc<dyn Lm>,
    events: EventBus,
    max_iters: usize,
    collector: Arc<Collector>,
    job: OptimizeJob,
) {
    let started = Instant::now();
    let result = optimize(stack, lm, events.clone(), max_iters, collector, job).await;
    let kind = match result {
        Ok(mut summary) => {
            summary.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            EventKind::OptimizeFinished { summary: Some(Box::new(summary)), error: None }
        }
        Err(e) => EventKind::OptimizeFinished { summary: None, error: Some(e) },
    };
    events.emit(&Scope::default(), kind);
}

/// The grant the session holds (the union over its servers' tokens); a server without
/// OAuth limits nothing, so its tools' scopes count as granted.
pub fn current_grant(stack: &ClientStack) -> ScopeSet {
    let mut grant = ScopeSet::new();
    for server in &stack.servers {
        match server.tokens.as_ref().and_then(|t| t.info()) {
            Some(info) => {
                for s in info.granted.iter() {
                    grant.insert(s.clone());
                }
            }
            None if server.tokens.is_none() => {
                for t in stack.tools().filter(|t| t.id().server == server.entry.name) {
                    for s in t.spec.required_scopes.iter() {
                        grant.insert(s.clone());
                    }
                }
            }
            None => {}
        }
    }
    grant
}

async fn optimize(
    stack: Arc<ClientStack>,
    lm: Arc<dyn Lm>,
    events: EventBus,
    max_iters: usize,
    collector: Arc<Collector>,
    job: OptimizeJob,
) -> Result<OptimizeSummary, String> {
    let infos = super::tool_infos(&stack);
    let tool_scopes: BTreeMap<String, ScopeSet> = infos.iter().map(|t| (t.shown.clone(), t.required.clone())).collect();
    let grant = current_grant(&stack);
    let runner = StackRunner::new(stack.clone(), lm, events.clone(), max_iters, collector);
    let progress_bus = events.clone();
    let progress = move |p: Progress| {
        progress_bus.emit(
            &Scope::default(),
            EventKind::OptimizeProgress { phase: p.phase, done: p.done as u64, total: p.total as u64 },
        );
    };
    let mut constraints = Vec::new();
    let mut trainset = job.trainset.clone();
    if let Some(dir) = &job.feedback {
        let learnt = feedback(dir).map_err(|e| format!("cannot read the feedback in {}: {e}", dir.display()))?;
        for c in learnt {
            if applies(&c, &grant)
                && let Some(ex) = example_from(&c, &tool_scopes)
                && !trainset.iter().any(|t| t.request == ex.request)
            {
                trainset.push(ex);
            }
            learn(&mut constraints, c);
        }
    }
    let train: Vec<Example> = trainset.iter().map(TrainExample::to_example).collect();
    let eval_set: Vec<Example> = match &job.valset {
        Some(v) => v.iter().map(TrainExample::to_example).collect(),
        None => train.clone(),
    };
    let metric = SecurityMetric { grant: grant.clone(), tool_scopes: tool_scopes.clone(), penalty: job.penalty };
    let plain = runner.agent(Signature::customer_service()).state();
    let start = job.start.clone().unwrap_or_else(|| plain.clone());
    let before = evaluate(&runner, &start, &eval_set, &metric, job.concurrency, &progress, "evaluate before").await;
    // Denials the program runs into under this grant are learnt as well.
    for (item, ex) in before.items.iter().zip(&eval_set) {
        let Some(outcome) = &item.outcome else { continue };
        for v in &outcome.violations {
            if let Violation::Denied { tool, missing, .. } = v {
                learn(
                    &mut constraints,
                    LearnedConstraint {
                        tool: tool.clone(),
                        grant: grant.clone(),
                        missing: missing.clone(),
                        kind: "denied".into(),
                        source: "optimization".into(),
                        count: 1,
                        request: ex.get("request").and_then(Value::as_str).map(str::to_string),
                    },
                );
            }
        }
    }
    // The student: the starting program with the constraints in its instructions.
    let mut student = {
        let binding: Vec<LearnedConstraint> = constraints.iter().filter(|c| applies(c, &grant)).cloned().collect();
        runner.agent(constrained_signature(&binding)).state()
    };
    if let Some(s) = &job.start {
        for (name, p) in &mut student.predictors {
            if let Some(from) = s.get(name) {
                p.demos = from.demos.clone();
            }
        }
    }
    let (program, candidates) = match &job.optimizer {
        Optimizer::Labeled(l) => (l.compile(&student, &train, true), Vec::new()),
        Optimizer::Bootstrap(b) => (
            b.compile(&student, None, &train, &runner, &metric, &progress).await.map_err(|e| e.to_string())?.program,
            Vec::new(),
        ),
        Optimizer::RandomSearch(r) => {
            let valset = job.valset.as_ref().map(|_| eval_set.as_slice());
            let out = r
                .compile(&student, None, &train, valset, &runner, &metric, &progress)
                .await
                .map_err(|e| e.to_string())?;
            let candidates = out.candidates.iter().map(|c| (c.seed, c.score)).collect();
            (out.program, candidates)
        }
    };
    let after = evaluate(&runner, &program, &eval_set, &metric, job.concurrency, &progress, "evaluate after").await;
    let rows = table(&metric, &eval_set, &before, &after);
    let totals = |pick: fn(&ExampleRow) -> Scored| total(rows.iter().map(pick));
    let (before_total, after_total) = (totals(|r| r.before), totals(|r| r.after));
    let security = SecurityConfig {
        grant: grant.clone(),
        required_scopes: tool_scopes.clone(),
        tools: infos
            .iter()
            .map(|t| PinnedTool {
                name: t.shown.clone(),
                required_scopes: t.required.clone(),
                manifest_digest: t.manifest_digest.clone(),
            })
            .collect(),
        optimization_metrics: OptimizationMetrics {
            optimizer: job.optimizer.name().into(),
            trainset: train.len(),
            valset: eval_set.len(),
            penalty: job.penalty,
            before: before_total,
            after: after_total,
            candidates: candidates.clone(),
        },
        learned_constraints: constraints.clone(),
        timestamp: events.clock().now_epoch(),
    };
    let file = ProgramFile { program, security: Some(security) };
    let report = crate::session::validate::validate(&file, &grant, &infos);
    let findings: Vec<String> = report.findings.iter().map(|f| format!("{}: {}", f.location(), f.message)).collect();
    let (out, format) = match &job.out {
        Some((path, fmt)) if findings.is_empty() => {
            let format = match fmt {
                OutFormat::Sealed { key_file } => {
                    save_sealed(&file, path, key_file)?;
                    "sealed"
                }
                OutFormat::DspyJson => {
                    save_dspy_json(&file.program, path)?;
                    "dspy-json"
                }
            };
            (Some(path.display().to_string()), format.to_string())
        }
        _ => (None, String::new()),
    };
    Ok(OptimizeSummary {
        optimizer: job.optimizer.name().into(),
        rows,
        before: before_total,
        after: after_total,
        constraints: constraints.iter().filter(|c| applies(c, &grant)).map(LearnedConstraint::rule).collect(),
        kept: constraints.iter().filter(|c| !applies(c, &grant)).map(LearnedConstraint::describe).collect(),
        demos: file.program.demo_count(),
        candidates,
        out,
        format,
        findings,
        elapsed_ms: 0.0,
        runs: runner.runs(),
    })
}

fn table(metric: &SecurityMetric, set: &[Example], before: &EvalReport, after: &EvalReport) -> Vec<ExampleRow> {
    let scored = |report: &EvalReport, i: usize| -> (Scored, String) {
        match report.items.get(i).and_then(|it| it.outcome.as_ref()) {
            Some(o) => {
                let b = metric.breakdown(&set[i], o);
                (Scored { base: b.base, violations: b.violations, final_score: b.final_score }, b.reason)
            }
            None => (
                Scored::default(),
                report.items.get(i).and_then(|it| it.error.clone()).unwrap_or_else(|| "not run".into()),
            ),
        }
    };
    (0..set.len())
        .map(|i| {
            let (b, _) = scored(before, i);
            let (a, reason) = scored(after, i);
            ExampleRow {
                request: set[i].get("request").and_then(Value::as_str).unwrap_or_default().to_string(),
                before: b,
                after: a,
                reason,
            }
        })
        .collect()
}

fn total(rows: impl Iterator<Item = Scored>) -> Scored {
    let rows: Vec<Scored> = rows.collect();
    let n = rows.len().max(1) as f64;
    Scored {
        base: rows.iter().map(|r| r.base).sum::<f64>() / n,
        violations: rows.iter().map(|r| r.violations).sum(),
        final_score: rows.iter().map(|r| r.final_score).sum::<f64>() / n,
    }
}

fn save_dspy_json(program: &ProgramState, path: &Path) -> Result<(), String> {
    ensure_parent(path)?;
    ProgramFile { program: program.clone(), security: None }.save_dspy_json(path).map_err(|e| e.to_string())
}

/// Seals the program with the key in `key_file`, creating the key (0600) when missing.
fn save_sealed(file: &ProgramFile, path: &Path, key_file: &Path) -> Result<(), String> {
    ensure_parent(path)?;
    let key = crate::security::seal::ensure_key(key_file).map_err(|e| e.to_string())?;
    file.save_sealed(path, &key).map_err(|e| e.to_string())
}

fn ensure_parent(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            crate::paths::ensure_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::event::{AnomalyRule, AnomalySeverity, CallAudit, DenialSide, RefreshReason, TokenInfo};
    use crate::types::tool::ToolName;

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    fn token(granted: &str) -> TokenInfo {
        let legacy = r#"{"issuer":"https://as","subject":"agent","client_id":"agent","audience":["https://rs/mcp"],"kid":"k1","alg":"RS256","fingerprint":"sha256:0123456789ab","requested":null,"granted":[],"issued_at":10,"expires_at":910,"jti":"j","verified":true,"refresh_count":0}"#;
        let mut t: TokenInfo = serde_json::from_str(legacy).unwrap();
        t.granted = scopes(granted);
        t
    }

    fn denied(run: &str, bus: &EventBus) -> Event {
        let scope = Scope { run_id: Some(run.into()), step: Some(1) };
        bus.emit(
            &scope,
            EventKind::ToolResult {
                tool: ToolName::new("crm", "create_support_ticket"),
                outcome: CallOutcome::Denied {
                    side: DenialSide::Client,
                    required: scopes("ticket:create"),
                    granted: scopes("customer:read"),
                    missing: scopes("ticket:create"),
                    status: None,
                    www_authenticate: None,
                },
                attempts: 0,
                latency_ms: 0.0,
                audit: CallAudit::default(),
            },
        )
    }

    #[test]
    fn the_collector_keeps_only_runs_in_flight() {
        let bus = EventBus::new();
        let collector = Collector::attach(&bus);
        let tracked = Tracked::new(&collector, "optimize-1".into());
        denied("optimize-1", &bus);
        denied("someone-else", &bus);
        let events = tracked.take();
        assert_eq!(events.len(), 1);
        assert!(collector.runs.lock().is_empty());
        // A run dropped mid-way (a cancelled optimization) leaves nothing behind.
        drop(Tracked::new(&collector, "optimize-2".into()));
        assert!(collector.runs.lock().is_empty());
    }

    #[test]
    fn violations_count_denials_unconfirmed_calls_and_the_runs_own_anomalies() {
        let bus = EventBus::recording();
        let scope = Scope { run_id: Some("r1".into()), step: Some(0) };
        let d = denied("r1", &bus);
        let own = bus.emit(
            &scope,
            EventKind::Anomaly {
                rule: AnomalyRule::RepeatedDeniedCall,
                severity: AnomalySeverity::Medium,
                message: "again".into(),
                evidence: vec![d.id],
            },
        );
        // A spike that cites another run's event is not this run's doing.
        let shared = bus.emit(
            &scope,
            EventKind::Anomaly {
                rule: AnomalyRule::DenialSpike,
                severity: AnomalySeverity::Medium,
                message: "spike".into(),
                evidence: vec![d.id, 999_999],
            },
        );
        let unconfirmed = bus.emit(
            &scope,
            EventKind::ToolConfirmation {
                tool: ToolName::new("files", "delete_file"),
                allowed: true,
                by: DecidedBy::Policy,
                policy: crate::types::tool::Confirm::Destructive,
            },
        );
        let v = violations(&[d, own, shared, unconfirmed]);
        assert_eq!(
            v,
            vec![
                Violation::Denied {
                    tool: "create_support_ticket".into(),
                    side: DenialSide::Client,
                    missing: scopes("ticket:create")
                },
                Violation::Anomaly { rule: AnomalyRule::RepeatedDeniedCall, message: "again".into() },
                Violation::Unconfirmed { tool: "delete_file".into() },
            ]
        );
    }

    #[test]
    fn a_recorded_denial_becomes_a_constraint_and_a_training_example() {
        let bus = EventBus::recording();
        bus.emit(
            &Scope::default(),
            EventKind::TokenIssued { token: token("customer:read"), reason: RefreshReason::Initial, server: None },
        );
        let run = Scope { run_id: Some("run-1".into()), step: None };
        bus.emit(
            &run,
            EventKind::RunStarted {
                request: "Open a ticket for ABC123: broken grill".into(),
                model: "offline".into(),
                tools: vec![],
            },
        );
        denied("run-1", &bus);
        denied("run-1", &bus);
        let dir = tempfile::tempdir().unwrap();
        // A recording (one event per line) and an audit segment (records wrapping events).
        let lines: Vec<String> = bus.recorded().iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        std::fs::write(dir.path().join("session-1.jsonl"), lines.join("\n")).unwrap();
        let audit: Vec<String> = bus
            .recorded()
            .iter()
            .filter(|e| !matches!(e.kind, EventKind::RunStarted { .. }))
            .enumerate()
            .map(|(i, e)| serde_json::json!({"seq": i + 1, "event": e}).to_string())
            .collect();
        std::fs::create_dir(dir.path().join("audit")).unwrap();
        std::fs::write(dir.path().join("audit/client-000001.jsonl"), audit.join("\n")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let tool_scopes: BTreeMap<String, ScopeSet> =
            [("create_support_ticket".to_string(), scopes("ticket:create"))].into_iter().collect();
        let constraints = feedback(dir.path()).unwrap();
        assert_eq!(
            constraints,
            vec![LearnedConstraint {
                tool: "create_support_ticket".into(),
                grant: scopes("customer:read"),
                missing: scopes("ticket:create"),
                kind: "denied".into(),
                source: "production".into(),
                count: 4,
                request: Some("Open a ticket for ABC123: broken grill".into()),
            }]
        );
        assert_eq!(
            constraints[0].rule(),
            "- Do not call `create_support_ticket` under the grant {customer:read}: it needs ticket:create, which this grant lacks; say so instead."
        );
        // It binds under the grant it was seen under, not once ticket:create is granted.
        assert!(applies(&constraints[0], &scopes("customer:read account:calculate")));
        assert!(!applies(&constraints[0], &scopes("customer:read ticket:create")));
        let example = example_from(&constraints[0], &tool_scopes).unwrap();
        assert_eq!(example.request, "Open a ticket for ABC123: broken grill");
        assert!(example.should_fail);
        assert_eq!(example.required_scopes, scopes("ticket:create"));
        // The constraint reaches the program's instructions, and leaves them when the
        // program runs where it no longer binds.
        let sig = constrained_signature(&constraints);
        assert!(sig.instructions().ends_with(&constraints[0].rule()));
        let mut state = crate::agent::program::ProgramState::default();
        state.predictors.push(("react".into(), crate::agent::program::PredictorState::of(&sig, &[])));
        let file = ProgramFile {
            program: state,
            security: Some(SecurityConfig { learned_constraints: constraints.clone(), ..Default::default() }),
        };
        let narrow = fit_to_grant(&file, &scopes("customer:read"));
        assert!(narrow.predictors[0].1.instructions.contains(&constraints[0].rule()));
        let full = fit_to_grant(&file, &scopes("customer:read ticket:create"));
        assert!(!full.predictors[0].1.instructions.contains("Do not call"));
        assert!(
            full.predictors[0].1.instructions.starts_with("Handle customer service requests using available tools.")
        );
    }
}
