//! Program files between Warden and DSPy, checked with DSPy itself: a program Warden saved
//! loads in Python with `program.load(path)` on the seed's module structure, and one DSPy
//! saved loads in Warden and applies to its ReAct. DSPy (pinned, `DSPY`) is installed from
//! PyPI into a venv under the target directory on first use (`common/pypi.rs`); the Python
//! side is `tests/dspy/interop.py`.
//!
//! Both files are also kept as goldens (`tests/golden/dspy/program_*.json`): the tests
//! marked "no Python" compare Warden's save with its golden and load DSPy's golden, so a
//! format regression fails before any Python is installed. `WARDEN_UPDATE_GOLDEN=1`
//! rewrites Warden's golden; DSPy's is rewritten by `dspy_saves_a_program_warden_loads`
//! only when DSPy's own output changed (it fails then, saying so).

#[path = "common/programs.rs"]
mod programs;
#[path = "common/pypi.rs"]
mod pypi;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use warden::agent::program::{DSPY_FORMAT_VERSION, EXTRACT, ProgramFile, REACT, load_file};
use warden::agent::program_file::dspy_json_text;

/// The DSPy release the files are checked against (also what Warden writes in
/// `metadata.dependency_versions.dspy`).
const DSPY: &str = "dspy==3.4.1";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dspy").join(name)
}

const WARDEN_GOLDEN: &str = "program_warden_saved.json";
const DSPY_GOLDEN: &str = "program_dspy_saved.json";

/// Runs `interop.py ARGS` with the pinned DSPy; its stdout as JSON, and its stderr.
fn dspy(args: &[&str]) -> (Value, String) {
    let python = pypi::venv_python("dspy-venv", &[DSPY]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dspy/interop.py");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dspy-cache");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        // LiteLLM would fetch a price list at import (no network here), DSPy would make
        // a cache in $HOME.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("DSPY_CACHEDIR", &cache)
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "interop.py {args:?} failed:\n{stderr}");
    (serde_json::from_slice(&out.stdout).expect("interop.py prints JSON"), stderr)
}

/// What a Warden program holds, in the shape interop.py prints.
fn warden_view(state: &warden::agent::program::ProgramState) -> Value {
    let mut preds = serde_json::Map::new();
    for (name, p) in &state.predictors {
        preds.insert(name.clone(), json!({"instructions": p.instructions, "fields": p.fields, "demos": p.demos}));
    }
    Value::Object(preds)
}

// ---- no Python ----

#[test]
fn warden_save_matches_its_golden_no_python() {
    let text = dspy_json_text(&programs::compiled().state());
    if std::env::var_os("WARDEN_UPDATE_GOLDEN").is_some() {
        std::fs::write(golden(WARDEN_GOLDEN), &text).unwrap();
    }
    let want = std::fs::read_to_string(golden(WARDEN_GOLDEN)).unwrap();
    assert_eq!(
        text, want,
        "Warden's DSPy JSON changed; if on purpose, rerun with WARDEN_UPDATE_GOLDEN=1 and check it with DSPy (cargo test --test dspy_interop)"
    );
    // Only DSPy's own metadata keys (DSPy's `load` looks each one up in its own).
    let v: Value = serde_json::from_str(&want).unwrap();
    let keys: Vec<&str> =
        v["metadata"]["dependency_versions"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["python", "dspy", "cloudpickle"]);
    assert_eq!(v["metadata"]["dependency_versions"]["dspy"], DSPY.trim_start_matches("dspy=="));
    assert_eq!(DSPY_FORMAT_VERSION, DSPY.trim_start_matches("dspy=="));
}

/// What interop.py's `save` sets in Python, checked here without Python through the golden.
#[test]
fn dspy_golden_loads_and_applies_in_warden_no_python() {
    let file = load_file(&golden(DSPY_GOLDEN), None).unwrap();
    assert_eq!(file.security, None);
    let mut r = programs::react();
    r.load_state(&file.program).unwrap();
    assert_eq!(r.react.demos.len(), 1);
    assert_eq!(r.react.demos[0]["next_tool_name"], "get_customer_info");
    assert_eq!(r.react.demos[0]["next_tool_args"], json!({"customer_id": "ABC123"}));
    assert_eq!(r.react.demos[0]["augmented"], true);
    assert_eq!(
        Value::Object(r.extract.predict.demos[0].clone()),
        json!({"request": "What is the account value of XYZ789?", "response": "XYZ789's account value is $1,240.00."})
    );
    assert_eq!(
        r.extract.predict.signature.instructions(),
        "Answer the customer from the trajectory. Never invent ticket numbers."
    );
    // The react instructions are DSPy's own (its tool list from the Python functions).
    assert!(
        r.react
            .signature
            .instructions()
            .starts_with("Handle customer service requests using available tools.\n\nYou are an Agent.")
    );
    // Saved again by Warden, DSPy's file comes back byte for byte.
    assert_eq!(dspy_json_text(&r.state()), std::fs::read_to_string(golden(DSPY_GOLDEN)).unwrap());
}

#[test]
fn warden_golden_loads_back_in_warden_no_python() {
    let file = load_file(&golden(WARDEN_GOLDEN), None).unwrap();
    let mut r = programs::react();
    r.load_state(&file.program).unwrap();
    assert_eq!(r.state(), programs::compiled().state());
}

// ---- with DSPy ----

#[test]
fn a_program_warden_saved_loads_in_dspy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("program.json");
    let file = ProgramFile { program: programs::compiled().state(), security: Some(programs::security()) };
    file.save_dspy_json(&path).unwrap();
    let (loaded, stderr) = dspy(&["load", path.to_str().unwrap()]);
    assert_eq!(loaded["dspy"], DSPY.trim_start_matches("dspy=="));
    assert_eq!(loaded["predictors"], warden_view(&file.program));
    assert_eq!(loaded["predictors"][REACT]["demos"].as_array().unwrap().len(), 1);
    assert_eq!(loaded["predictors"][EXTRACT]["demos"].as_array().unwrap().len(), 2);
    // Same versions as DSPy's own: no mismatch warning.
    assert!(!stderr.contains("mismatch"), "{stderr}");
    // The golden is what DSPy was given here.
    let (golden_loaded, _) = dspy(&["load", golden(WARDEN_GOLDEN).to_str().unwrap()]);
    assert_eq!(golden_loaded, loaded);
}

#[test]
fn dspy_saves_a_program_warden_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dspy_program.json");
    let (set, _) = dspy(&["save", path.to_str().unwrap()]);
    let file = load_file(&path, None).unwrap();
    let mut r = programs::react();
    r.load_state(&file.program).unwrap();
    // What Python set is what Warden's ReAct now holds.
    assert_eq!(warden_view(&r.state()), set["predictors"]);
    assert_eq!(file.program.dependency_versions["dspy"], DSPY.trim_start_matches("dspy=="));
    let fresh = std::fs::read_to_string(&path).unwrap();
    let kept = std::fs::read_to_string(golden(DSPY_GOLDEN)).unwrap();
    if fresh != kept {
        std::fs::write(golden(DSPY_GOLDEN), &fresh).unwrap();
        panic!(
            "DSPy now saves this program differently; tests/golden/dspy/{DSPY_GOLDEN} was rewritten — review the diff"
        );
    }
}

/// The ReAct instructions list the tools; Warden's lines are DSPy's `str(Tool)` format.
/// The tools' argument schemas differ by source: Warden lists the MCP server's JSON Schema
/// (with descriptions, `format`, `enum`, `default`), DSPy derives one from Python type
/// hints. Everything else in the instructions is byte-identical.
#[test]
fn react_instructions_match_dspy_but_for_the_argument_schemas() {
    let (fresh, _) = dspy(&["describe"]);
    let theirs = fresh["predictors"][REACT]["instructions"].as_str().unwrap();
    let state = programs::react().state();
    let ours = &state.get(REACT).unwrap().instructions;
    let (theirs, ours): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    assert_eq!(theirs.len(), ours.len());
    let mut differing = 0;
    for (t, o) in theirs.iter().zip(&ours) {
        if t != o {
            differing += 1;
            let (t_head, _) = t.split_once(" It takes arguments ").expect("a tool line");
            let (o_head, _) = o.split_once(" It takes arguments ").expect("a tool line");
            assert_eq!(t_head, o_head, "name and description are DSPy's");
        }
    }
    // The four service tools differ in their schemas; `finish` and the rest do not.
    assert_eq!(differing, 4);
    // And each tool line in Warden's format is `str(Tool)`: the same words around the args.
    for (i, line) in fresh["tools"].as_array().unwrap().iter().enumerate() {
        let numbered = format!("({}) {}", i + 1, line.as_str().unwrap());
        assert!(theirs.contains(&numbered.as_str()), "{numbered}");
    }
    // The extract step's instructions and every field are DSPy's.
    assert_eq!(fresh["predictors"][EXTRACT], warden_view(&state)[EXTRACT]);
    assert_eq!(fresh["predictors"][REACT]["fields"], warden_view(&state)[REACT]["fields"]);
}
