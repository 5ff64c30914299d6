//! Compiled programs as a user deploys them, over the real binary and real servers:
//! `warden validate` and its exit codes, `warden run --program` (a program's demo changes
//! the offline planner's tool order; one that does not validate is refused), and
//! `warden replay --check` catching a changed decision in a recorded session.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::Stack;
use serde_json::{Map, Value, json};
use warden::agent::program::{ProgramState, REACT};
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::tool::{McpTool, Tool};
use warden::mcp::ClientStack;
use warden::types::event::EventBus;

fn warden(args: &[&str], config: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A `react` demo as bootstrapping writes it: one executed step, then the next tool.
fn demo(request: &str, first: &str, observation: &str, next: &str) -> Map<String, Value> {
    let trajectory = format!(
        "[[ ## thought_0 ## ]]\nI start with {first}.\n\n[[ ## tool_name_0 ## ]]\n{first}\n\n[[ ## tool_args_0 ## ]]\n{{\"customer_id\": \"XYZ789\"}}\n\n[[ ## observation_0 ## ]]\n{observation}"
    );
    json!({
        "augmented": true,
        "request": request,
        "trajectory": trajectory,
        "next_thought": format!("Now {next}."),
        "next_tool_name": next,
        "next_tool_args": {},
    })
    .as_object()
    .unwrap()
    .clone()
}

/// The state of the agent compiled against the stack's tools, as `warden optimize` starts
/// from: DSPy's ReAct instructions list the tools, so a program carries them.
async fn compiled(s: &Stack) -> ProgramState {
    let config = common::client_config(s, None);
    let stack = ClientStack::connect(&config, None, Default::default(), EventBus::new()).await.unwrap();
    let tools: Vec<Arc<dyn Tool>> = stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
    let state = ReAct::new(Signature::customer_service(), tools, 5).state();
    stack.close().await;
    state
}

/// A program in DSPy's JSON with these `react` demos, written to `dir/name`.
fn program(base: &ProgramState, dir: &Path, name: &str, demos: Vec<Map<String, Value>>) -> PathBuf {
    let mut state = base.clone();
    state.get_mut(REACT).unwrap().demos = demos;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&state.to_dspy_json()).unwrap()).unwrap();
    path
}

const CUSTOMER: &str = "{\"customer_id\": \"XYZ789\", \"name\": \"Mike Chen\"}";

/// The demo that teaches looking the customer up before listing recent customers.
fn lookup_first(base: &ProgramState, dir: &Path) -> PathBuf {
    program(
        base,
        dir,
        "lookup-first.json",
        vec![demo(
            "look up XYZ789 and show me the recent customers",
            "get_customer_info",
            CUSTOMER,
            "get_recent_customers",
        )],
    )
}

/// A demo that creates a ticket: outside a read-only grant.
fn ticket_demo(base: &ProgramState, dir: &Path) -> PathBuf {
    program(
        base,
        dir,
        "ticket.json",
        vec![demo(
            "For customer XYZ789 create a support ticket: the grill is broken",
            "get_customer_info",
            CUSTOMER,
            "create_support_ticket",
        )],
    )
}

#[test]
fn validate_exits_0_when_valid_1_with_findings_2_on_usage_and_10_when_no_server_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let config = s.state.join("client.toml");
    let dir = tempfile::tempdir().unwrap();
    let base = rt.block_on(compiled(&s));
    let (clean, ticket) = (lookup_first(&base, dir.path()), ticket_demo(&base, dir.path()));
    let state = dir.path().join("state");

    let out = warden(&["validate", clean.to_str().unwrap(), "--scopes", "customer:read"], &config, &state);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "program {}\nchecked 1 demo (2 tool calls) and 0 pinned tools under the grant {{customer:read}}\n✓ valid: the program may run under this grant\n",
            clean.display()
        )
    );

    let out = warden(&["validate", ticket.to_str().unwrap(), "--scopes", "customer:read"], &config, &state);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("✗ react demo 0 next tool (create_support_ticket): `create_support_ticket` needs {ticket:create}; the grant {customer:read} lacks {ticket:create}\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("✗ invalid: 1 finding (fix the program, e.g. re-run `warden optimize` under this grant, or run it under another grant)\n"), "{stdout}");
    // The same program under a grant that covers the ticket is valid.
    let out = warden(
        &["validate", ticket.to_str().unwrap(), "--scopes", "customer:read ticket:create", "--json"],
        &config,
        &state,
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!((report["ok"].clone(), report["checked_calls"].clone()), (json!(true), json!(2)));

    let out = warden(&["validate", "/nonexistent/program.json"], &config, &state);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.starts_with("warden: cannot read the program /nonexistent/program.json"), "{}", text(&out).1);
    let out = warden(&["validate", clean.to_str().unwrap(), "--scopes", "customer\"read"], &config, &state);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);

    // Its state (client config, CA) stays: only the servers are gone.
    let _kept = rt.block_on(s.stop());
    let out = warden(&["validate", clean.to_str().unwrap(), "--scopes", "customer:read"], &config, &state);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(10), "{stderr}");
    assert!(stderr.starts_with("warden: cannot connect to the MCP servers"), "{stderr}");
}

/// The tools each scenario called, from `warden run --json`.
fn tools_called(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("summary").is_none())
        .map(|v| v["tools"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .collect()
}

#[test]
fn run_with_a_program_follows_its_demo_and_refuses_one_that_does_not_validate() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let config = s.state.join("client.toml");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let scenarios = dir.path().join("scenarios.toml");
    std::fs::write(
        &scenarios,
        // The order the program's demo teaches (the planner's own is the other way round).
        "[[scenario]]\nname = \"both\"\nrequest = \"show me 5 recent customers and look up ABC123\"\nexpected_tools = [\"get_customer_info\", \"get_recent_customers\"]\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", scenarios.to_str().unwrap(), "--json", "--scopes", "customer:read"];
        args.extend_from_slice(extra);
        warden(&args, &config, &state)
    };

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(7), "{:?}", text(&out));
    assert_eq!(tools_called(&text(&out).0), vec![vec!["get_recent_customers", "get_customer_info"]]);

    let base = rt.block_on(compiled(&s));
    let clean = lookup_first(&base, dir.path());
    let out = run(&["--program", clean.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(
        tools_called(&text(&out).0),
        vec![vec!["get_customer_info", "get_recent_customers"]],
        "the program's demo sets the order"
    );
    // Read as people do: the header names the program and its state.
    let out = warden(
        &["run", scenarios.to_str().unwrap(), "--scopes", "customer:read", "--program", clean.to_str().unwrap()],
        &config,
        &state,
    );
    assert!(text(&out).0.starts_with("model: offline-planner"), "{}", text(&out).0);
    assert!(text(&out).0.contains("   program: lookup-first.json ✓ validated\n"), "{}", text(&out).0);

    let ticket = ticket_demo(&base, dir.path());
    let out = run(&["--program", ticket.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "", "nothing ran");
    assert!(
        stderr
            .starts_with("warden: the program ticket.json does not validate against this session's grant and tools:\n"),
        "{stderr}"
    );
    assert!(stderr.contains("✗ react demo 0 next tool (create_support_ticket): `create_support_ticket` needs {ticket:create}; the grant {customer:read} lacks {ticket:create}\n"), "{stderr}");
    assert!(stderr.ends_with("warden: not running it; pass --allow-invalid-program to run it anyway\n"), "{stderr}");

    let out = run(&["--program", ticket.to_str().unwrap(), "--allow-invalid-program"]);
    // It ran (its demo is about tickets, so this request keeps the planner's own order,
    // which the scenario does not expect: exit 7, not 1).
    assert_eq!(out.status.code(), Some(7), "{:?}", text(&out));
    assert!(text(&out).1.ends_with("warden: running it anyway (--allow-invalid-program)\n"));
    assert_eq!(tools_called(&text(&out).0), vec![vec!["get_recent_customers", "get_customer_info"]]);
    rt.block_on(s.stop());
}

#[test]
fn replay_check_flags_a_changed_decision_and_passes_an_unchanged_session() {
    use warden::session::scenario::parse;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Stack::start());
    let config = s.state.join("client.toml");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // A session recorded under a grant that allows tickets: a lookup, then a ticket.
    let scenarios = parse(
        r#"
[[scenario]]
name = "lookup"
request = "Look up customer ABC123"
scopes = ["customer:read", "ticket:create"]

[[scenario]]
name = "ticket"
request = "For customer ABC123 create a support ticket as the bbq grill that she bought is defective."
scopes = ["customer:read", "ticket:create"]
"#,
        "test",
    )
    .unwrap();
    let events = warden::types::event::EventBus::recording();
    let (results, _) = rt.block_on(common::run_scenarios(&s, &scenarios, events.clone(), dir.path()));
    assert_eq!(results[1].tools, ["get_customer_info", "create_support_ticket"]);
    let recording = dir.path().join("session.jsonl");
    let lines: String = events.recorded().iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
    std::fs::write(&recording, lines).unwrap();
    let file = recording.to_str().unwrap();

    // Unchanged servers and grant: the lookup is the same; the ticket's answer names a
    // new ticket number (reported, not failed on).
    let out = warden(&["replay", "--check", file], &config, &state);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("checking 2 requests from {file}\n✓ same  Look up customer ABC123\n")),
        "{stdout}"
    );
    assert!(stdout.contains("✗ differs  For customer ABC123 create a support ticket as the bbq grill that she bought is defective.\n    - answer: the text differs\n"), "{stdout}");
    assert!(stdout.ends_with("1/2 the same; 0 differences are security-relevant\n"), "{stdout}");

    // A narrower grant now: the ticket call that was allowed is denied.
    let out = warden(&["replay", "--check", file, "--scopes", "customer:read"], &config, &state);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("✗ SECURITY  For customer ABC123 create a support ticket as the bbq grill that she bought is defective.\n    ! decision: create_support_ticket (call 1) was allowed, now denied\n    - outcome: ok then, denied now\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1/2 the same; 1 difference is security-relevant\n"), "{stdout}");

    // --json: one object per request, then the summary.
    let out = warden(&["replay", "--check", file, "--scopes", "customer:read", "--json"], &config, &state);
    let objs: Vec<Value> = text(&out).0.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(objs[0]["same"], json!(true));
    assert_eq!(objs[1]["security_relevant"], json!(true));
    assert_eq!(
        objs[1]["differences"][0],
        json!({"kind": "decision", "tool": "create_support_ticket", "occurrence": 0, "then": "allowed", "now": "denied"})
    );
    assert_eq!(objs[2]["security_relevant"], json!(1));

    // Playback still refuses what is not a recording, and --program needs --check.
    let out = warden(&["replay", file, "--program", file], &config, &state);
    assert_eq!(out.status.code(), Some(2));
    rt.block_on(s.stop());
}
