//! Validation of a compiled program before it is deployed (the seeds' "Compiled Program
//! Validation"): a pure function over the program, the grant it will run with and the
//! tools the servers offer now. `warden validate`, `warden optimize` (before it writes)
//! and every `--program` load run it.
//!
//! A demo teaches the model what to do, so a demo that calls a tool the grant does not
//! allow, or shows a denied or failed step, teaches a violation. Each demo's tool calls —
//! the trajectory's `tool_name_N` and the demo's own `next_tool_name` — must name a tool
//! that exists now, whose scopes the servers state (advertised or configured) and the
//! grant covers, and that no learned constraint forbids under this grant; no observation
//! may be a denial or an error; and the tools the program was compiled against must still
//! have the manifests it pinned.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::ToolInfo;
use crate::agent::program::{LearnedConstraint, ProgramFile};
use crate::types::scope::ScopeSet;

/// What the agent reads for a denied call (`agent::tool::observation`).
const DENIED_PREFIX: &str = "Permission denied";
/// What the agent reads for a tool error, a failed or blocked call, an unknown tool or bad
/// arguments (`agent::tool::observation`, `ReAct::dispatch`).
const ERROR_PREFIX: &str = "Execution error";

/// What is wrong, by kind (for scripts reading `--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A demo calls a tool no server offers now.
    UnknownTool,
    /// A demo calls a tool whose required scopes the grant does not cover.
    OutsideGrant,
    /// A demo calls a tool whose required scopes no server states (neither advertised in
    /// its `_meta` nor configured), so the grant cannot be checked.
    ScopesUnknown,
    /// A demo shows a denied step.
    DeniedStep,
    /// A demo shows a failed step (tool error, failed or blocked call, invalid action).
    ErrorStep,
    /// A demo calls a tool a learned constraint forbids under this grant.
    ConstraintViolated,
    /// A tool the program was compiled against is gone.
    PinnedToolMissing,
    /// A tool's server manifest differs from the one the program pinned.
    ManifestChanged,
    /// A tool requires other scopes now than when the program was compiled.
    ScopesChanged,
    /// The `react` instructions (DSPy's ReAct lists the tools in them, and a saved program
    /// keeps that list) offer a tool that is gone, or miss one the servers offer now.
    InstructionsStale,
}

/// One thing wrong with the program: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The predictor (`react`, `extract.predict`); `None` for the program's pinned tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictor: Option<String>,
    /// The demo's index in that predictor's demos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<usize>,
    /// The trajectory step (`tool_name_N`); `None` for the demo's `next_tool_name` or a
    /// program-level finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    pub tool: String,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Finding {
    /// `react demo 0 step 1 (create_support_ticket)`, or `pinned tool get_customer_info`.
    pub fn location(&self) -> String {
        match (&self.predictor, self.demo) {
            (Some(p), Some(d)) => {
                let step = match self.step {
                    Some(s) => format!("step {s}"),
                    None => "next tool".into(),
                };
                format!("{p} demo {d} {step} ({})", self.tool)
            }
            (Some(p), None) => format!("{p} instructions ({})", self.tool),
            _ => format!("pinned tool {}", self.tool),
        }
    }
}

/// The result of validating a program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    /// No findings.
    pub ok: bool,
    pub findings: Vec<Finding>,
    /// Demos looked at, across predictors.
    pub checked_demos: usize,
    /// Tool calls in them (trajectory steps and next tools, `finish` excluded).
    pub checked_calls: usize,
    /// The program's pinned tools compared with the servers' manifests.
    pub checked_pins: usize,
    /// The grant the program was checked against.
    pub grant: ScopeSet,
}

impl ValidationReport {
    /// `✓ validated` or `✗ N findings`: the one-line state the console's status bar shows.
    pub fn badge(&self) -> String {
        if self.ok {
            "✓ validated".into()
        } else {
            format!("✗ {}", crate::types::text::counted(self.findings.len() as u64, "finding", "findings"))
        }
    }

    /// The report for people: what was checked, each finding on its own line, the verdict.
    pub fn render(&self) -> String {
        let mut out = format!(
            "checked {} ({}) and {} under the grant {{{}}}\n",
            crate::types::text::counted(self.checked_demos as u64, "demo", "demos"),
            crate::types::text::counted(self.checked_calls as u64, "tool call", "tool calls"),
            crate::types::text::counted(self.checked_pins as u64, "pinned tool", "pinned tools"),
            self.grant
        );
        for f in &self.findings {
            out.push_str(&format!("✗ {}: {}\n", f.location(), f.message));
        }
        if self.ok {
            out.push_str("✓ valid: the program may run under this grant\n");
        } else {
            out.push_str(&format!(
                "✗ invalid: {} (fix the program, e.g. re-run `warden optimize` under this grant, or run it under another grant)\n",
                crate::types::text::counted(self.findings.len() as u64, "finding", "findings")
            ));
        }
        out
    }
}

/// Validates `program` for running under `grant` against the servers' `tools` now.
pub fn validate(program: &ProgramFile, grant: &ScopeSet, tools: &[ToolInfo]) -> ValidationReport {
    let constraints: &[LearnedConstraint] =
        program.security.as_ref().map(|s| s.learned_constraints.as_slice()).unwrap_or_default();
    let mut findings = Vec::new();
    let (mut checked_demos, mut checked_calls) = (0, 0);
    for (predictor, state) in &program.program.predictors {
        for (d, demo) in state.demos.iter().enumerate() {
            checked_demos += 1;
            let at = |step: Option<usize>, tool: &str, kind: FindingKind, message: String| Finding {
                kind,
                predictor: Some(predictor.clone()),
                demo: Some(d),
                step,
                tool: tool.to_string(),
                message,
            };
            let mut calls: Vec<(Option<usize>, String)> = Vec::new();
            for (i, step) in trajectory_steps(demo.get("trajectory")).into_iter().enumerate() {
                if let Some(obs) = &step.observation {
                    let obs = obs.trim_start();
                    if obs.starts_with(DENIED_PREFIX) {
                        findings.push(at(
                            Some(i),
                            &step.tool,
                            FindingKind::DeniedStep,
                            format!(
                                "the demo shows a denied call (\"{}\"); a demo must not teach a denial",
                                first_line(obs)
                            ),
                        ));
                    } else if obs.starts_with(ERROR_PREFIX) {
                        findings.push(at(
                            Some(i),
                            &step.tool,
                            FindingKind::ErrorStep,
                            format!(
                                "the demo shows a failed call (\"{}\"); a demo must not teach an error",
                                first_line(obs)
                            ),
                        ));
                    }
                }
                calls.push((Some(i), step.tool));
            }
            if let Some(next) = demo.get("next_tool_name").and_then(Value::as_str) {
                calls.push((None, next.trim().to_string()));
            }
            for (step, tool) in calls {
                if tool == "finish" || tool.is_empty() {
                    continue;
                }
                checked_calls += 1;
                for (kind, message) in check_call(&tool, grant, tools, constraints) {
                    findings.push(at(step, &tool, kind, message));
                }
            }
        }
    }
    if let Some(react) = program.program.get(crate::agent::program::REACT) {
        findings.extend(check_instructions(&react.instructions, tools));
    }
    let pins = check_pins(program, tools);
    let checked_pins = pins.0;
    findings.extend(pins.1);
    ValidationReport {
        ok: findings.is_empty(),
        findings,
        checked_demos,
        checked_calls,
        checked_pins,
        grant: grant.clone(),
    }
}

/// A program and the tools it was validated against, to validate it again under another
/// grant: the console does when the operator re-grants (the tools stay those of the
/// session's start).
#[derive(Debug, Clone)]
pub struct Recheck {
    program: ProgramFile,
    tools: Vec<ToolInfo>,
}

impl Recheck {
    pub fn new(program: ProgramFile, tools: Vec<ToolInfo>) -> Self {
        Self { program, tools }
    }

    pub fn under(&self, grant: &ScopeSet) -> ValidationReport {
        validate(&self.program, grant, &self.tools)
    }
}

/// The tool `name` stands for: its name as the agent sees it, or `server.tool`.
fn find<'a>(tools: &'a [ToolInfo], name: &str) -> Option<&'a ToolInfo> {
    tools.iter().find(|t| t.shown == name || format!("{}.{}", t.id.server, t.id.name) == name)
}

/// What is wrong with one call of `tool` by a demo, under `grant`.
fn check_call(
    tool: &str,
    grant: &ScopeSet,
    tools: &[ToolInfo],
    constraints: &[LearnedConstraint],
) -> Vec<(FindingKind, String)> {
    let mut out = Vec::new();
    match find(tools, tool) {
        None => out.push((
            FindingKind::UnknownTool,
            format!("no server offers `{tool}` now (offered: {})", offered(tools)),
        )),
        Some(t) if !t.scopes_known => out.push((
            FindingKind::ScopesUnknown,
            format!(
                "{} states no required scopes (not advertised, not in [servers.scopes]), so the grant cannot be checked",
                t.id
            ),
        )),
        Some(t) if !t.required.is_subset(grant) => out.push((
            FindingKind::OutsideGrant,
            format!(
                "`{tool}` needs {{{}}}; the grant {{{grant}}} lacks {{{}}}",
                t.required,
                grant.missing(&t.required)
            ),
        )),
        Some(_) => {}
    }
    for c in constraints.iter().filter(|c| c.tool == tool && applies(c, grant)) {
        out.push((
            FindingKind::ConstraintViolated,
            format!(
                "a learned constraint forbids `{tool}` under {{{grant}}}: {} under {{{}}} ({} time(s), {})",
                c.kind, c.grant, c.count, c.source
            ),
        ));
    }
    out
}

/// A constraint learnt under `c.grant` holds under `grant` when it is that grant, or when
/// `grant` also lacks a scope the denial named.
fn applies(c: &LearnedConstraint, grant: &ScopeSet) -> bool {
    c.grant == *grant || (!c.missing.is_empty() && !c.missing.is_subset(grant))
}

/// The tools the `react` instructions list against the tools offered now. Instructions
/// that list no tool (a program written by hand, or by another module) are not checked.
fn check_instructions(instructions: &str, tools: &[ToolInfo]) -> Vec<Finding> {
    let listed: Vec<String> = instructions.lines().filter_map(listed_tool).filter(|t| t != "finish").collect();
    if listed.is_empty() {
        return Vec::new();
    }
    let finding = |tool: &str, message: String| Finding {
        kind: FindingKind::InstructionsStale,
        predictor: Some(crate::agent::program::REACT.into()),
        demo: None,
        step: None,
        tool: tool.to_string(),
        message,
    };
    let mut out: Vec<Finding> = listed
        .iter()
        .filter(|t| find(tools, t).is_none())
        .map(|t| {
            finding(
                t,
                format!(
                    "the instructions offer `{t}`, which no server offers now; re-optimize against the current tools"
                ),
            )
        })
        .collect();
    out.extend(tools.iter().filter(|t| !listed.contains(&t.shown)).map(|t| {
        finding(
            &t.shown,
            format!("`{}` is offered now but the instructions do not list it, so the model will not see it; re-optimize against the current tools", t.shown),
        )
    }));
    out
}

/// The tool a line of DSPy's ReAct instructions offers: `(2) name, whose description is
/// <desc>…</desc>. It takes arguments {…}.` (or `(2) name. It takes …` without one).
fn listed_tool(line: &str) -> Option<String> {
    let rest = line.trim().strip_prefix('(')?;
    let (num, rest) = rest.split_once(") ")?;
    num.parse::<u32>().ok()?;
    let end = rest.find(", whose description is <desc>").or_else(|| rest.find(". It takes arguments "))?;
    let name = &rest[..end];
    (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
}

/// The program's pinned tools against the servers' manifests now: (how many, findings).
fn check_pins(program: &ProgramFile, tools: &[ToolInfo]) -> (usize, Vec<Finding>) {
    let Some(security) = &program.security else { return (0, Vec::new()) };
    let pinned = |tool: &str, kind, message| Finding {
        kind,
        predictor: None,
        demo: None,
        step: None,
        tool: tool.to_string(),
        message,
    };
    let mut out = Vec::new();
    // Scopes per tool as compiled: the pins' own, then the security config's map for tools
    // it lists that are not pinned.
    let mut compiled: BTreeMap<&str, &ScopeSet> =
        security.required_scopes.iter().map(|(k, v)| (k.as_str(), v)).collect();
    for p in &security.tools {
        compiled.insert(p.name.as_str(), &p.required_scopes);
    }
    for p in &security.tools {
        match find(tools, &p.name) {
            None => out.push(pinned(
                &p.name,
                FindingKind::PinnedToolMissing,
                format!("the program was compiled against `{}`, which no server offers now", p.name),
            )),
            Some(t) if t.manifest_digest != p.manifest_digest => out.push(pinned(
                &p.name,
                FindingKind::ManifestChanged,
                format!(
                    "the manifest of {} changed since the program was compiled (pinned {}, now {}); review the change, then re-optimize",
                    t.id.server,
                    short(&p.manifest_digest),
                    short(&t.manifest_digest)
                ),
            )),
            Some(_) => {}
        }
    }
    for (name, scopes) in &compiled {
        if let Some(t) = find(tools, name)
            && t.required != **scopes
        {
            out.push(pinned(
                name,
                FindingKind::ScopesChanged,
                format!(
                    "`{name}` now requires {{{}}}; the program was compiled when it required {{{scopes}}}",
                    t.required
                ),
            ));
        }
    }
    (security.tools.len(), out)
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn offered(tools: &[ToolInfo]) -> String {
    if tools.is_empty() {
        return "none".into();
    }
    tools.iter().map(|t| t.shown.as_str()).collect::<Vec<_>>().join(", ")
}

/// One executed step of a demo's trajectory.
#[derive(Debug, Clone, PartialEq)]
struct DemoStep {
    tool: String,
    observation: Option<String>,
}

/// The steps of a demo's trajectory: DSPy's rendered text (`[[ ## tool_name_0 ## ]]` …),
/// or a map of the same keys.
fn trajectory_steps(trajectory: Option<&Value>) -> Vec<DemoStep> {
    let fields: BTreeMap<String, String> = match trajectory {
        Some(Value::String(text)) => sections(text),
        Some(Value::Object(map)) => map_fields(map),
        _ => return Vec::new(),
    };
    (0..)
        .map_while(|i| {
            let tool = fields.get(&format!("tool_name_{i}"))?;
            Some(DemoStep {
                tool: tool.trim().to_string(),
                observation: fields.get(&format!("observation_{i}")).cloned(),
            })
        })
        .collect()
}

fn map_fields(map: &Map<String, Value>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), crate::agent::pyfmt::str_scalar(v))).collect()
}

/// The `[[ ## name ## ]]` sections of a rendered trajectory.
fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some(name) = header(line) {
            if let Some((n, lines)) = current.take() {
                out.insert(n, lines.join("\n").trim().to_string());
            }
            current = Some((name.to_string(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some((n, lines)) = current {
        out.insert(n, lines.join("\n").trim().to_string());
    }
    out
}

fn header(line: &str) -> Option<&str> {
    let name = line.trim().strip_prefix("[[ ## ")?.strip_suffix(" ## ]]")?;
    (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::program::{
        EXTRACT, LearnedConstraint, PinnedTool, PredictorState, ProgramState, REACT, SecurityConfig,
    };
    use crate::types::tool::{ToolHints, ToolName};
    use serde_json::json;

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    fn tool(name: &str, required: &str) -> ToolInfo {
        ToolInfo {
            id: ToolName { server: "service".into(), name: name.into() },
            shown: name.into(),
            required: scopes(required),
            hints: ToolHints::default(),
            scopes_known: true,
            manifest_digest: "a".repeat(64),
        }
    }

    fn service() -> Vec<ToolInfo> {
        vec![
            tool("get_customer_info", "customer:read"),
            tool("get_recent_customers", "customer:read"),
            tool("create_support_ticket", "ticket:create"),
        ]
    }

    /// A `react` demo as bootstrapping writes it: executed steps, then the next tool.
    fn react_demo(steps: &[(&str, &str)], next: &str) -> Map<String, Value> {
        let trajectory = steps
            .iter()
            .enumerate()
            .map(|(i, (tool, obs))| {
                format!(
                    "[[ ## thought_{i} ## ]]\nI need {tool}.\n\n[[ ## tool_name_{i} ## ]]\n{tool}\n\n[[ ## tool_args_{i} ## ]]\n{{\"customer_id\": \"ABC123\"}}\n\n[[ ## observation_{i} ## ]]\n{obs}"
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        json!({
            "augmented": true,
            "request": "For customer ABC123 create a support ticket: the grill is broken",
            "trajectory": trajectory,
            "next_thought": "Next.",
            "next_tool_name": next,
            "next_tool_args": {},
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn program(react: Vec<Map<String, Value>>, security: Option<SecurityConfig>) -> ProgramFile {
        let labeled =
            json!({"request": "hello", "response": "Hi! I can look up customers."}).as_object().unwrap().clone();
        ProgramFile {
            program: ProgramState {
                predictors: vec![
                    (REACT.into(), PredictorState { demos: react, ..Default::default() }),
                    (EXTRACT.into(), PredictorState { demos: vec![labeled], ..Default::default() }),
                ],
                dependency_versions: Default::default(),
            },
            security,
        }
    }

    const INFO: &str = "{\"customer_id\": \"ABC123\", \"name\": \"Jane\"}";

    #[test]
    fn a_clean_program_validates() {
        let p = program(
            vec![react_demo(&[("get_customer_info", INFO)], "create_support_ticket")],
            Some(SecurityConfig {
                tools: vec![PinnedTool {
                    name: "get_customer_info".into(),
                    required_scopes: scopes("customer:read"),
                    manifest_digest: "a".repeat(64),
                }],
                ..Default::default()
            }),
        );
        let r = validate(&p, &scopes("customer:read ticket:create"), &service());
        assert_eq!(r.findings, vec![]);
        assert!(r.ok);
        assert_eq!((r.checked_demos, r.checked_calls, r.checked_pins), (2, 2, 1));
        assert_eq!(r.badge(), "✓ validated");
        assert_eq!(
            r.render(),
            "checked 2 demos (2 tool calls) and 1 pinned tool under the grant {customer:read ticket:create}\n✓ valid: the program may run under this grant\n"
        );
    }

    #[test]
    fn a_demo_calling_outside_the_grant_with_a_denied_step_is_rejected_with_where_and_why() {
        let denied = "Permission denied: create_support_ticket requires scope ticket:create; the current access token lacks ticket:create (the client checked before sending).";
        let p = program(
            vec![
                react_demo(&[("get_customer_info", INFO)], "finish"),
                react_demo(&[("get_customer_info", INFO), ("create_support_ticket", denied)], "finish"),
            ],
            None,
        );
        let r = validate(&p, &scopes("customer:read"), &service());
        assert!(!r.ok);
        assert_eq!(
            r.findings,
            vec![
                Finding {
                    kind: FindingKind::DeniedStep,
                    predictor: Some("react".into()),
                    demo: Some(1),
                    step: Some(1),
                    tool: "create_support_ticket".into(),
                    message: format!("the demo shows a denied call (\"{denied}\"); a demo must not teach a denial"),
                },
                Finding {
                    kind: FindingKind::OutsideGrant,
                    predictor: Some("react".into()),
                    demo: Some(1),
                    step: Some(1),
                    tool: "create_support_ticket".into(),
                    message:
                        "`create_support_ticket` needs {ticket:create}; the grant {customer:read} lacks {ticket:create}"
                            .into(),
                },
            ]
        );
        assert_eq!(r.badge(), "✗ 2 findings");
        let text = r.render();
        assert!(
            text.contains("✗ react demo 1 step 1 (create_support_ticket): `create_support_ticket` needs {ticket:create}; the grant {customer:read} lacks {ticket:create}\n"),
            "{text}"
        );
        assert!(text.ends_with("✗ invalid: 2 findings (fix the program, e.g. re-run `warden optimize` under this grant, or run it under another grant)\n"), "{text}");
    }

    #[test]
    fn an_error_step_and_an_unknown_next_tool_are_findings() {
        let p = program(
            vec![react_demo(
                &[("get_customer_info", "Execution error in get_customer_info: customer not found")],
                "delete_customer",
            )],
            None,
        );
        let r = validate(&p, &scopes("customer:read ticket:create"), &service());
        let kinds: Vec<(FindingKind, Option<usize>, &str)> =
            r.findings.iter().map(|f| (f.kind, f.step, f.tool.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (FindingKind::ErrorStep, Some(0), "get_customer_info"),
                (FindingKind::UnknownTool, None, "delete_customer"),
            ]
        );
        assert_eq!(
            r.findings[1].message,
            "no server offers `delete_customer` now (offered: get_customer_info, get_recent_customers, create_support_ticket)"
        );
        assert_eq!(r.findings[1].location(), "react demo 0 next tool (delete_customer)");
    }

    #[test]
    fn a_learned_constraint_is_enforced_under_its_grant() {
        // The server's map says the ticket needs only customer:read here, so the grant
        // check passes; the constraint learnt in production still forbids the call.
        let mut tools = service();
        tools[2].required = scopes("customer:read");
        let constraint = LearnedConstraint {
            tool: "create_support_ticket".into(),
            grant: scopes("customer:read"),
            missing: ScopeSet::new(),
            kind: "unusual_sequence".into(),
            source: "production".into(),
            count: 3,
            request: None,
        };
        let p = program(
            vec![react_demo(&[("get_customer_info", INFO)], "create_support_ticket")],
            Some(SecurityConfig { learned_constraints: vec![constraint], ..Default::default() }),
        );
        let r = validate(&p, &scopes("customer:read"), &tools);
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert_eq!(r.findings[0].kind, FindingKind::ConstraintViolated);
        assert_eq!(
            r.findings[0].message,
            "a learned constraint forbids `create_support_ticket` under {customer:read}: unusual_sequence under {customer:read} (3 time(s), production)"
        );
        // Under another grant the constraint does not hold.
        assert!(validate(&p, &scopes("customer:read ticket:create"), &tools).ok);
    }

    #[test]
    fn a_changed_manifest_or_missing_pinned_tool_fails_validation() {
        let pin = |name: &str, digest: &str| PinnedTool {
            name: name.into(),
            required_scopes: scopes("customer:read"),
            manifest_digest: digest.into(),
        };
        let p = program(
            Vec::new(),
            Some(SecurityConfig {
                tools: vec![pin("get_customer_info", &"b".repeat(64)), pin("get_orders", &"a".repeat(64))],
                ..Default::default()
            }),
        );
        let r = validate(&p, &scopes("customer:read"), &service());
        assert_eq!(
            r.findings.iter().map(|f| (f.kind, f.tool.as_str())).collect::<Vec<_>>(),
            vec![(FindingKind::ManifestChanged, "get_customer_info"), (FindingKind::PinnedToolMissing, "get_orders")]
        );
        assert_eq!(
            r.findings[0].message,
            "the manifest of service changed since the program was compiled (pinned bbbbbbbbbbbb, now aaaaaaaaaaaa); review the change, then re-optimize"
        );
        assert_eq!(r.findings[0].location(), "pinned tool get_customer_info");
    }

    #[test]
    fn changed_or_unstated_scopes_are_findings() {
        let mut tools = service();
        tools[0].required = scopes("customer:read customer:pii");
        tools[1].scopes_known = false;
        let mut security = SecurityConfig::default();
        security.required_scopes.insert("get_customer_info".into(), scopes("customer:read"));
        let p = program(vec![react_demo(&[("get_recent_customers", "[]")], "finish")], Some(security));
        let r = validate(&p, &scopes("customer:read customer:pii"), &tools);
        assert_eq!(
            r.findings.iter().map(|f| (f.kind, f.tool.as_str())).collect::<Vec<_>>(),
            vec![
                (FindingKind::ScopesUnknown, "get_recent_customers"),
                (FindingKind::ScopesChanged, "get_customer_info")
            ]
        );
        assert_eq!(
            r.findings[1].message,
            "`get_customer_info` now requires {customer:pii customer:read}; the program was compiled when it required {customer:read}"
        );
    }

    #[test]
    fn instructions_that_list_other_tools_than_the_servers_offer_are_stale() {
        let mut p = program(Vec::new(), None);
        let instructions = "Answer the request.\n\nWhen selecting the next_tool_name and its next_tool_args, the tool must be one of:\n\n(1) get_customer_info, whose description is <desc>Look up one customer.</desc>. It takes arguments {'customer_id': {'type': 'string'}}.\n(2) delete_customer. It takes arguments {}.\n(3) finish, whose description is <desc>Marks the task as complete.</desc>. It takes arguments {}.";
        p.program.get_mut(REACT).unwrap().instructions = instructions.into();
        let r = validate(&p, &scopes("customer:read ticket:create"), &service());
        assert_eq!(
            r.findings.iter().map(|f| (f.kind, f.location())).collect::<Vec<_>>(),
            vec![
                (FindingKind::InstructionsStale, "react instructions (delete_customer)".to_string()),
                (FindingKind::InstructionsStale, "react instructions (get_recent_customers)".to_string()),
                (FindingKind::InstructionsStale, "react instructions (create_support_ticket)".to_string()),
            ]
        );
        assert_eq!(
            r.findings[1].message,
            "`get_recent_customers` is offered now but the instructions do not list it, so the model will not see it; re-optimize against the current tools"
        );
        // Instructions that list no tool are not checked (a labeled-only or hand-written program).
        p.program.get_mut(REACT).unwrap().instructions = "Answer the request.".into();
        assert!(validate(&p, &scopes("customer:read ticket:create"), &service()).ok);
    }

    #[test]
    fn trajectories_parse_from_text_and_from_a_map() {
        let text = "[[ ## thought_0 ## ]]\nlook\n\n[[ ## tool_name_0 ## ]]\nget_customer_info\n\n[[ ## tool_args_0 ## ]]\n{}\n\n[[ ## observation_0 ## ]]\nline one\nline two";
        assert_eq!(
            trajectory_steps(Some(&json!(text))),
            vec![DemoStep { tool: "get_customer_info".into(), observation: Some("line one\nline two".into()) }]
        );
        let map = json!({"tool_name_0": "a", "observation_0": "x", "tool_name_1": "b"});
        assert_eq!(
            trajectory_steps(Some(&map)),
            vec![
                DemoStep { tool: "a".into(), observation: Some("x".into()) },
                DemoStep { tool: "b".into(), observation: None }
            ]
        );
        assert_eq!(trajectory_steps(None), vec![]);
    }
}
