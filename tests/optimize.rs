//! `warden optimize` as a user runs it, over the real servers (`--demo`: the embedded issuer
//! and service on loopback, TLS, real tokens) with the offline planner: under a grant
//! without `ticket:create` the shipped trainset's ticket requests run into denials before
//! optimization; the optimizer learns the constraint, the compiled program refuses them up
//! front, and the final score rises. Also: the table, the written DSPy JSON, production
//! feedback from a real audit trail, random search's candidates, and bad usage.

use std::process::{Command, Output};

use serde_json::Value;

fn warden(state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        // No user config: what a fresh machine has.
        .env("XDG_CONFIG_HOME", state.join("no-config"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("warden runs")
}

fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

const NARROW: &str = "customer:read account:calculate";
const RULE: &str = "- Do not call `create_support_ticket` under the grant {account:calculate customer:read}: it needs ticket:create, which this grant lacks; say so instead.";

#[test]
fn optimizing_under_a_narrow_grant_learns_to_refuse_before_the_denial() {
    let state = tempfile::tempdir().unwrap();
    let out_file = state.path().join("program.json");
    let out = warden(
        state.path(),
        &[
            "optimize",
            "--demo",
            "--scopes",
            NARROW,
            "--format",
            "dspy-json",
            "--out",
            out_file.to_str().unwrap(),
            "--json",
        ],
    );
    let s = summary(&out);
    assert_eq!(s["optimizer"], "BootstrapFewShot");
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 14);
    // The five ticket requests: a denial each before (attempted, refused by the client's
    // pre-check), a clean refusal naming ticket:create after.
    let tickets: Vec<&Value> =
        rows.iter().filter(|r| r["request"].as_str().unwrap().to_lowercase().contains("ticket")).collect();
    assert_eq!(tickets.len(), 5);
    for r in &tickets {
        assert_eq!(r["before"]["violations"], 1, "{r}");
        assert!((r["before"]["final_score"].as_f64().unwrap() - 0.4).abs() < 1e-9, "{r}");
        assert_eq!(r["after"]["violations"], 0, "{r}");
        assert_eq!(r["after"]["final_score"], 1.0, "{r}");
    }
    let (before, after) = (&s["before"], &s["after"]);
    assert!(after["final_score"].as_f64().unwrap() > before["final_score"].as_f64().unwrap() + 0.15, "{s}");
    assert!(after["violations"].as_u64().unwrap() + 5 <= before["violations"].as_u64().unwrap(), "{s}");
    assert_eq!(s["constraints"], serde_json::json!([RULE]));
    assert_eq!(s["findings"], serde_json::json!([]));
    assert_eq!(s["format"], "dspy-json");
    // The written program is DSPy's JSON: the two ReAct predictors with the constraint in
    // their instructions, bootstrapped demos, no secrets, no endpoints.
    let text = std::fs::read_to_string(&out_file).unwrap();
    let program: Value = serde_json::from_str(&text).unwrap();
    for name in ["react", "extract.predict"] {
        assert!(program[name]["signature"]["instructions"].as_str().unwrap().contains(RULE), "{name}");
        assert_eq!(program[name]["lm"], Value::Null);
    }
    let demos = program["react"]["demos"].as_array().unwrap();
    assert!(demos.iter().any(|d| d["augmented"] == true), "{text}");
    assert!(!text.contains("demo-support-agent-secret") && !text.contains("https://127.0.0.1"), "{text}");
    // The optimizer's runs went through the session: its audit trail has the denials.
    let audit = std::fs::read_dir(state.path().join("audit")).unwrap().count();
    assert!(audit > 0);
}

#[test]
fn the_table_shows_before_after_and_the_constraint() {
    let state = tempfile::tempdir().unwrap();
    let out = warden(state.path(), &["optimize", "--demo", "--scopes", NARROW]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("BootstrapFewShot · model offline-planner · 14 examples · "), "{stdout}");
    assert!(
        lines.iter().any(|l| l.trim_end()
            == "  #  request                                        base viol  final   base viol  final"),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("  1  For customer ABC123 create a support ticket…   0.50    1   0.40   1.00    0   1.00 ↑")),
        "{stdout}"
    );
    assert!(lines.iter().any(|l| l.trim_start().starts_with("total (mean score, sum of violations)")), "{stdout}");
    assert!(stdout.contains(&format!("learnt constraints:\n  {RULE}\n")), "{stdout}");
    assert!(stdout.trim_end().ends_with("valid; nothing written (no --out)"), "{stdout}");
}

#[test]
fn production_feedback_from_a_real_audit_trail_and_recording() {
    // Production: the demo's scenarios, recorded; one runs under {customer:read} and is
    // denied a ticket. Its audit trail alone gives the constraint; the recording also
    // gives the request behind it, which becomes a training example.
    let prod = tempfile::tempdir().unwrap();
    let run = warden(prod.path(), &["demo", "--headless", "--record"]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.lines().last().unwrap_or("").starts_with("recorded "), "{stdout}");
    let rule = "- Do not call `create_support_ticket` under the grant {customer:read}: it needs ticket:create, which this grant lacks; say so instead.";
    let request = "For customer XYZ789 create a support ticket because three items were missing from the bulk order.";
    let optimize = |feedback: &std::path::Path| {
        let state = tempfile::tempdir().unwrap();
        let args =
            ["optimize", "--demo", "--scopes", "customer:read", "--optimizer", "labeled", "--json", "--feedback"];
        let mut args: Vec<&str> = args.to_vec();
        args.push(feedback.to_str().unwrap());
        summary(&warden(state.path(), &args))
    };
    let from_audit = optimize(&prod.path().join("audit"));
    assert!(from_audit["constraints"].as_array().unwrap().iter().any(|c| c == rule), "{from_audit}");
    assert_eq!(from_audit["rows"].as_array().unwrap().len(), 14, "no requests in an audit trail");
    let from_recording = optimize(&prod.path().join("sessions"));
    assert!(from_recording["constraints"].as_array().unwrap().iter().any(|c| c == rule), "{from_recording}");
    let rows = from_recording["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 15, "the production request joins the trainset");
    assert_eq!(rows[14]["request"], request);
    // Refused up front after optimizing: no violation, full score.
    assert_eq!(
        (rows[14]["after"]["violations"].as_u64(), rows[14]["after"]["final_score"].as_f64()),
        (Some(0), Some(1.0))
    );
    // An anomaly seen in production is kept, not made a rule.
    let kept: Vec<&str> = from_recording["kept"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(kept.iter().any(|k| k.starts_with("get_recent_customers flagged prompt_injection under {")), "{kept:?}");
}

#[test]
fn random_search_reports_every_candidate_seed() {
    let state = tempfile::tempdir().unwrap();
    let out =
        warden(state.path(), &["optimize", "--demo", "--optimizer", "random-search", "--candidates", "2", "--json"]);
    let s = summary(&out);
    let seeds: Vec<i64> = s["candidates"].as_array().unwrap().iter().map(|c| c[0].as_i64().unwrap()).collect();
    assert_eq!(seeds, vec![-3, -2, -1, 0, 1]);
    assert_eq!(s["optimizer"], "BootstrapFewShotWithRandomSearch");
}

#[test]
fn bad_usage_is_refused_with_the_reason() {
    let state = tempfile::tempdir().unwrap();
    let out = warden(state.path(), &["optimize", "--penalty", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "warden: --penalty and --metric-threshold take a number from 0 to 1"
    );
    let nothing = warden(state.path(), &["optimize"]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&nothing.stderr).contains("add --demo"),
        "{}",
        String::from_utf8_lossy(&nothing.stderr)
    );
    let missing = warden(state.path(), &["optimize", "--demo", "--trainset", "/nonexistent/train.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read the trainset /nonexistent/train.toml"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// The loop end to end: optimize under a narrow grant, seal, then run the seed scenarios
/// with the sealed program — it validates at start, creates tickets where the grant allows
/// them (its learnt rule does not bind there) and refuses up front, with no denial, where
/// the grant lacks ticket:create.
#[test]
fn a_sealed_program_validates_and_passes_the_seed_scenarios() {
    let state = tempfile::tempdir().unwrap();
    let sealed = state.path().join("support.sealed");
    let key = state.path().join("program.key");
    let args = [
        "optimize",
        "--demo",
        "--scopes",
        NARROW,
        "--out",
        sealed.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
        "--json",
    ];
    let s = summary(&warden(state.path(), &args));
    assert_eq!(s["format"], "sealed");
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(bytes.starts_with(b"warden-sealed-program/1 alg=AES-256-GCM "), "{:?}", &bytes[..40]);
    assert!(!String::from_utf8_lossy(&bytes).contains("create_support_ticket"), "sealed means unreadable");
    let run = warden(
        state.path(),
        &["demo", "--headless", "--json", "--program", sealed.to_str().unwrap(), "--key-file", key.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    let results: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = results.last().unwrap();
    assert_eq!((summary["as_expected"].as_u64(), summary["unexpected"].as_u64()), (Some(8), Some(0)), "{stdout}");
    let by_name = |n: &str| results.iter().find(|r| r["name"] == n).unwrap_or_else(|| panic!("{n}: {stdout}"));
    assert_eq!(
        by_name("ticket-defective-grill")["tools"],
        serde_json::json!(["get_customer_info", "create_support_ticket"])
    );
    let narrow = by_name("ticket-under-read-only-grant");
    assert_eq!((narrow["status"].as_str(), narrow["tools"].as_array().map(Vec::len)), (Some("refused"), Some(0)));
    assert_eq!(narrow["denials"], serde_json::json!([]));
    assert!(narrow["response"].as_str().unwrap().contains("it needs ticket:create"), "{narrow}");
    // A wrong key opens nothing.
    let other = state.path().join("other.key");
    assert!(warden(state.path(), &["keygen", "--out", other.to_str().unwrap()]).status.success());
    let refused = warden(
        state.path(),
        &["demo", "--headless", "--program", sealed.to_str().unwrap(), "--key-file", other.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("key"), "{}", String::from_utf8_lossy(&refused.stderr));
}
