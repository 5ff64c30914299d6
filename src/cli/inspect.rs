//! `warden inspect FILE` and `warden keygen`: what a program file holds — each predictor's
//! instructions (first lines) and demos (one line each), and for a sealed file its security
//! configuration — and `--export-dspy` to write the plain DSPy JSON for Python. `keygen`
//! makes the private key that `optimize` seals with.
//!
//! Exit codes: 0 shown; 1 the file could not be opened (the message says why and what to
//! do); 2 the command line is wrong.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use crate::agent::program::{PredictorState, REACT, SecurityConfig};
use crate::agent::program_file::{self, LoadedProgram};
use crate::cli::client::Exit;
use crate::security::seal;
use crate::types::text::counted;

#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// A program file: sealed (from `warden optimize`) or DSPy JSON.
    pub file: PathBuf,
    /// The key a sealed file was sealed with (default: WARDEN_PROGRAM_KEY).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Also write the program as plain DSPy JSON (no security configuration) to OUT.json,
    /// for `program.load(path)` in Python.
    #[arg(long, value_name = "OUT.json")]
    pub export_dspy: Option<PathBuf>,
    /// One JSON object: the file's format and seal, each predictor's instructions and
    /// demos, and the security configuration.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the new key (64 hex digits, mode 0600); an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// How many lines of a predictor's instructions are shown (ReAct's list every tool).
const INSTRUCTION_LINES: usize = 3;
/// Longest text shown for one value of a demo.
const CELL: usize = 60;

/// `warden inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.export_dspy {
        if out.extension().and_then(|e| e.to_str()) != Some("json") {
            eprintln!(
                "warden inspect: --export-dspy {}: the name must end in .json (DSPy's `program.load` reads JSON only from a .json path)",
                out.display()
            );
            return Ok(Exit::Usage.into());
        }
        if same_file(out, &args.file) {
            eprintln!("warden inspect: --export-dspy would overwrite the program being inspected; choose another path");
            return Ok(Exit::Usage.into());
        }
    }
    let loaded = program_file::load(&args.file, args.key_file.as_deref())?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report_json(&args.file, &loaded))?);
    } else {
        out!("{}", render(&args.file, &loaded));
    }
    if let Some(out) = &args.export_dspy {
        loaded.file.save_dspy_json(out)?;
        let note = format!(
            "wrote {} (DSPy JSON, {}, no security configuration)",
            out.display(),
            counted(loaded.file.program.demo_count() as u64, "demo", "demos")
        );
        // With --json, stdout holds only the JSON object.
        if args.json {
            eprintln!("{note}");
        } else {
            outln!("\n{note}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `warden keygen --out FILE`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = seal::keygen(&args.out)?;
    outln!(
        "wrote a new program key to {} (mode 0600, key id {}); keep it secret and keep a copy: a program sealed with it opens only with it",
        args.out.display(),
        key.id()
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of text, at most `max` characters (an ellipsis marks a cut).
fn cell(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max { flat } else { format!("{}…", flat.chars().take(max - 1).collect::<String>()) }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One demo in one line: the request, then for a step demo (ReAct's `react`) the tool it
/// chose with its arguments, otherwise the response.
pub fn summarize_demo(demo: &Map<String, Value>) -> String {
    let request = demo.get("request").map(text_of).unwrap_or_else(|| {
        // A program over another signature: its first field.
        demo.iter()
            .find(|(k, _)| k.as_str() != "augmented")
            .map(|(k, v)| format!("{k}: {}", text_of(v)))
            .unwrap_or_default()
    });
    let outcome = if let Some(tool) = demo.get("next_tool_name") {
        let args = demo.get("next_tool_args").map(Value::to_string).unwrap_or_else(|| "{}".into());
        format!("{}({})", text_of(tool), cell(&args, CELL))
    } else if let Some(response) = demo.get("response") {
        format!("{:?}", cell(&text_of(response), CELL))
    } else {
        "(no tool or response)".into()
    };
    let tag = if demo.get("augmented") == Some(&Value::Bool(true)) { "  [bootstrapped]" } else { "" };
    format!("{:?} → {outcome}{tag}", cell(&request, CELL))
}

fn instructions_head(p: &PredictorState) -> (Vec<&str>, usize) {
    let lines: Vec<&str> = p.instructions.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown = lines.iter().take(INSTRUCTION_LINES).copied().collect();
    (shown, lines.len().saturating_sub(INSTRUCTION_LINES))
}

/// The human report.
pub fn render(path: &Path, loaded: &LoadedProgram) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    let program = &loaded.file.program;
    match &loaded.sealed {
        Some(s) => line(format!(
            "{}: sealed program ({}, format {}, record {}, key id {})",
            path.display(),
            seal::ALGORITHM,
            seal::VERSION,
            s.record_id,
            s.key_id
        )),
        None => line(format!("{}: DSPy JSON program (not sealed: no security configuration)", path.display())),
    }
    if let Some(v) = program.dependency_versions.get("dspy").filter(|_| loaded.sealed.is_none()) {
        line(format!("metadata: dspy {v}"));
    }
    for (name, p) in &program.predictors {
        line(String::new());
        line(format!("predictor {name}: {}", counted(p.demos.len() as u64, "demo", "demos")));
        let (head, more) = instructions_head(p);
        for (i, l) in head.iter().enumerate() {
            line(format!("  {} {}", if i == 0 { "instructions:" } else { "             " }, cell(l, 100)));
        }
        if more > 0 {
            line(format!("                (+{})", counted(more as u64, "more line", "more lines")));
        }
        for (i, d) in p.demos.iter().enumerate() {
            line(format!("  demo {}: {}", i + 1, summarize_demo(d)));
        }
        if name == REACT && p.demos.iter().any(|d| !d.contains_key("next_tool_name")) {
            line("  (demos without a tool are labeled examples: request and response)".into());
        }
    }
    if let Some(sec) = &loaded.file.security {
        line(String::new());
        render_security(sec, &mut line);
    }
    o
}

fn render_security(sec: &SecurityConfig, line: &mut impl FnMut(String)) {
    line("security config".into());
    line(format!("  compiled:        {} (UTC)", crate::types::time::rfc3339(sec.timestamp)));
    line(format!(
        "  grant:           {}",
        if sec.grant.is_empty() { "(none)".to_string() } else { sec.grant.to_string() }
    ));
    if sec.required_scopes.is_empty() {
        line("  required scopes: (none recorded)".into());
    }
    for (i, (tool, scopes)) in sec.required_scopes.iter().enumerate() {
        let label = if i == 0 { "  required scopes:" } else { "                  " };
        line(format!("{label} {tool}: {}", if scopes.is_empty() { "(none)".to_string() } else { scopes.to_string() }));
    }
    for t in &sec.tools {
        line(format!("  pinned tool:     {} (manifest {})", t.name, t.manifest_digest));
    }
    line(format!("  learned constraints: {}", sec.learned_constraints.len()));
    for c in &sec.learned_constraints {
        let missing = if c.missing.is_empty() { String::new() } else { format!(", missing {}", c.missing) };
        line(format!("    - {} {} under {{{}}}{missing} ({}, seen {}×)", c.tool, c.kind, c.grant, c.source, c.count));
    }
    let m = &sec.optimization_metrics;
    if m.optimizer.is_empty() {
        line("  optimization:    (none recorded)".into());
    } else {
        line(format!(
            "  optimization:    {} on {} (valset {}), penalty {}",
            m.optimizer,
            counted(m.trainset as u64, "example", "examples"),
            m.valset,
            m.penalty
        ));
        for (label, s) in [("before", m.before), ("after", m.after)] {
            line(format!(
                "    {label:<6} base {:.3}, {}, final {:.3}",
                s.base,
                counted(s.violations, "violation", "violations"),
                s.final_score
            ));
        }
        for (seed, score) in &m.candidates {
            line(format!("    candidate seed {seed}: {score:.3}"));
        }
    }
}

/// The `--json` report.
pub fn report_json(path: &Path, loaded: &LoadedProgram) -> Value {
    let predictors: Vec<Value> = loaded
        .file
        .program
        .predictors
        .iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "instructions": p.instructions,
                "fields": p.fields,
                "demos": p.demos,
                "demo_summaries": p.demos.iter().map(summarize_demo).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "format": if loaded.sealed.is_some() { "sealed" } else { "dspy-json" },
        "record_id": loaded.sealed.as_ref().map(|s| s.record_id.to_string()),
        "key_id": loaded.sealed.as_ref().map(|s| s.key_id.clone()),
        "predictors": predictors,
        "security_config": loaded.file.security,
        "compiled_utc": loaded.file.security.as_ref().map(|s| crate::types::time::rfc3339(s.timestamp)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demos_read_as_request_then_tool_or_response() {
        let step = json!({"request": "For customer ABC123\ncreate a ticket", "trajectory": "…",
            "next_thought": "look up", "next_tool_name": "get_customer_info",
            "next_tool_args": {"customer_id": "ABC123"}, "augmented": true});
        assert_eq!(
            summarize_demo(step.as_object().unwrap()),
            r#""For customer ABC123 create a ticket" → get_customer_info({"customer_id":"ABC123"})  [bootstrapped]"#
        );
        let labeled = json!({"request": "Hi", "response": "Hello! How can I help?"});
        assert_eq!(summarize_demo(labeled.as_object().unwrap()), r#""Hi" → "Hello! How can I help?""#);
        let long = "x".repeat(100);
        assert_eq!(cell(&long, 10), format!("{}…", "x".repeat(9)));
    }
}
