//! `warden demo --program` in a real terminal (tmux, 80×24): the status bar names the
//! program and shows it validated; dropping `ticket:create` in the grant editor turns it ✗
//! for a program whose demo creates a ticket, and ticking it again turns it ✓.

mod common;
#[path = "common/tmux.rs"]
mod tmux;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tmux::Tmux;
use warden::agent::program::REACT;
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::tool::{McpTool, Tool};
use warden::mcp::ClientStack;
use warden::types::event::EventBus;

#[test]
fn the_status_bar_shows_the_program_and_follows_the_grant_editor() {
    // The program is compiled against the service's tools (the demo starts the same
    // service), so its instructions list them as DSPy's ReAct does.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut state = rt.block_on(async {
        let s = common::Stack::start().await;
        let config = common::client_config(&s, None);
        let stack = ClientStack::connect(&config, None, Default::default(), EventBus::new()).await.unwrap();
        let tools: Vec<Arc<dyn Tool>> =
            stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
        let state = ReAct::new(Signature::customer_service(), tools, 5).state();
        stack.close().await;
        s.stop().await;
        state
    });
    let demo = json!({
        "augmented": true,
        "request": "For customer XYZ789 create a support ticket: the grill is broken",
        "trajectory": "[[ ## thought_0 ## ]]\nLook the customer up.\n\n[[ ## tool_name_0 ## ]]\nget_customer_info\n\n[[ ## tool_args_0 ## ]]\n{\"customer_id\": \"XYZ789\"}\n\n[[ ## observation_0 ## ]]\n{\"customer_id\": \"XYZ789\"}",
        "next_thought": "Now the ticket.",
        "next_tool_name": "create_support_ticket",
        "next_tool_args": {},
    });
    state.get_mut(REACT).unwrap().demos = vec![demo.as_object().unwrap().clone()];
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("tickets.json");
    std::fs::write(&program, serde_json::to_string(&state.to_dspy_json()).unwrap()).unwrap();

    let tmux = Tmux::new("warden-program");
    tmux.start(
        80,
        24,
        &format!(
            "{} --state-dir {} demo --program {}; echo WARDEN_EXIT=$?; sleep 30",
            env!("CARGO_BIN_EXE_warden"),
            dir.path().join("state").display(),
            program.display()
        ),
    );
    let s = tmux.wait_for("tickets.json ✓", Duration::from_secs(30));
    let bar = s.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
    assert!(bar.starts_with("● 1 server │ tickets.json ✓ │ ○ idle"), "{bar:?}");

    // Grant editor: scopes sorted; ticket:create is third. Untick it, re-token.
    tmux.keys(&["F2"]);
    tmux.wait_for("Grant editor", Duration::from_secs(5));
    tmux.keys(&["j", "j", "Space"]);
    tmux.wait_for("[ ] ticket:create", Duration::from_secs(5));
    tmux.keys(&["Enter"]);
    tmux.wait_for("tickets.json ✗ 1", Duration::from_secs(15));

    tmux.keys(&["F2"]);
    tmux.wait_for("Grant editor", Duration::from_secs(5));
    tmux.keys(&["j", "j", "Space"]);
    tmux.wait_for("[✓] ticket:create", Duration::from_secs(5));
    tmux.keys(&["Enter"]);
    tmux.wait_for("tickets.json ✓", Duration::from_secs(15));
    tmux.keys(&["C-c"]);
    tmux.wait_for("WARDEN_EXIT=0", Duration::from_secs(15));
}
