//! `warden bench` as a user runs it: the real binary starting its own `warden serve`
//! child, a short load at two levels, the JSON report's shape and counts (never its
//! timings: those belong to the machine, not to the code), the child stopped afterwards;
//! `--url` against a running server with the token from a client config; `--scenarios`.

mod common;

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str], state: &std::path::Path) -> (Value, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(state)
        .arg("bench")
        .args(args)
        .output()
        .expect("run warden bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("bench printed no JSON report ({e}):\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    (report, out.status.code().unwrap_or(-1))
}

fn assert_phase(p: &Value, what: &str) {
    assert!(p["ok"].as_u64().unwrap() > 0, "{what}: no successful requests: {p}");
    assert_eq!(p["errors"]["total"], 0, "{what}: {p}");
    assert_eq!(p["requests"], p["ok"], "{what}: {p}");
    assert!(p["per_second"].as_f64().unwrap() > 0.0, "{what}: {p}");
    for k in ["p50", "p95", "p99", "max"] {
        assert!(p["latency_ms"][k].as_f64().is_some(), "{what}: latency_ms.{k} missing: {p}");
    }
    assert!(p["cpu_us_per_request"]["client"].as_f64().is_some(), "{what}: {p}");
}

#[test]
fn bench_starts_its_own_server_and_reports_every_level() {
    let state = tempfile::tempdir().unwrap();
    let (report, code) = bench(&["--duration", "1", "--concurrency", "1,4", "--json"], state.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["tool"], "get_customer_info");
    assert_eq!(report["server"]["started_by_bench"], true);
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.iter().map(|l| l["concurrency"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 4]);
    for level in levels {
        assert_phase(&level["authenticated"], "authenticated");
        assert_phase(&level["ceiling"], "ceiling");
        assert!(level["authenticated"]["cpu_us_per_request"]["server"].as_f64().is_some(), "{level}");
        assert!(level["ratio"].as_f64().unwrap() > 0.0, "{level}");
        assert!(level["server_cpu_ratio"].as_f64().is_some(), "{level}");
    }
    assert!(report["server"]["rss_mb_end"].as_f64().unwrap() > 0.0, "{report}");
    // The budgets are reported, whatever this machine measures; concurrency 16 did not run,
    // so the ones that need it are "not measured", never a silent pass.
    let budgets: Vec<(&str, &str)> = report["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(budgets[0], ("ratio_c16", "not_measured"));
    assert_eq!(budgets[1], ("server_cpu_ratio_c16", "not_measured"));
    assert_eq!(budgets[2], ("p99_c16_ms", "not_measured"));
    assert_eq!(budgets[4], ("errors", "pass"));
    assert_eq!(report["pass"], false);
    // The child server is gone once the bench has exited.
    let pid = report["server"]["pid"].as_u64().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "server {pid} still running");
}

#[test]
fn check_fails_when_a_budget_cannot_be_measured() {
    let state = tempfile::tempdir().unwrap();
    let (report, code) = bench(&["--duration", "0.3", "--concurrency", "2", "--json", "--check"], state.path());
    assert_eq!(report["pass"], false);
    assert_eq!(code, 8, "--check exits 8 when a budget is not met or not measured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_loads_a_running_server_with_the_configs_client() {
    let stack = common::Stack::start().await;
    let config = stack.state.join("client.toml");
    let args: Vec<String> = ["--config", config.to_str().unwrap(), "bench", "--url", &stack.mcp]
        .iter()
        .map(|s| s.to_string())
        .chain(["--duration", "0.5", "--concurrency", "2", "--json"].map(String::from))
        .collect();
    let state = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_warden")).arg("--state-dir").arg(state.path()).args(&args).output().unwrap()
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["server"]["url"], stack.mcp.as_str());
    assert_eq!(report["server"]["started_by_bench"], false);
    assert_eq!(report["server"]["pid"], Value::Null);
    let level = &report["levels"][0];
    assert_phase(&level["authenticated"], "authenticated");
    assert_phase(&level["ceiling"], "ceiling");
    assert_eq!(level["authenticated"]["cpu_us_per_request"]["server"], Value::Null);
    assert_eq!(level["server_cpu_ratio"], Value::Null);
}

#[test]
fn scenarios_mode_runs_the_scenario_set_through_the_session_core() {
    let state = tempfile::tempdir().unwrap();
    let (report, code) = bench(&["--scenarios", "--duration", "0.2", "--json"], state.path());
    assert_eq!(code, 0, "{report}");
    let n = report["scenarios"].as_u64().unwrap();
    assert!(n > 0);
    assert!(report["runs"].as_u64().unwrap() >= n, "at least one full pass: {report}");
    assert_eq!(report["unexpected"], 0, "{report}");
    assert!(report["steps"].as_u64().unwrap() > 0, "{report}");
    assert!(report["scenarios_per_second"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["per_step_overhead_us"].as_f64().is_some(), "{report}");
}
