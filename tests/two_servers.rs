//! Two MCP servers exposing the same tool names, end to end: a second customer-service
//! instance ("billing", trusting the first one's issuer) beside the first. The agent sees
//! qualified names only where names collide, calls the server it chose, and every account
//! of the call (events, audit record, `warden call`) names that server.

mod common;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use warden::agent::lm::dummy::DummyLm;
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::tool::{McpTool, Tool};
use warden::config::ServerEntry;
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::CallPolicy;
use warden::observe::audit::read_all;
use warden::serve::{Only, ServeOptions};
use warden::types::event::{CallOutcome, EventBus, EventKind};

/// The second server's public resource URI (tokens for it carry this `aud`).
const BILLING: &str = "https://billing.warden.test/mcp";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn same_tool_names_on_two_servers_stay_apart() {
    let mut config = common::config(None);
    config.issuer.resources = vec![BILLING.to_string()];
    let s = common::Stack::start_with(config).await;
    // The billing instance: service only, trusting the first issuer; same dev CA, so one
    // client config trusts both.
    let billing_dir = tempfile::tempdir().unwrap();
    copy_dir(&s.state.join("tls"), &billing_dir.path().join("tls"));
    let mut rs = common::config(None);
    rs.service.issuer = Some(s.issuer.clone());
    rs.service.issuer_ca_file = Some(s.state.join("tls/ca.pem"));
    rs.service.resource = Some(BILLING.to_string());
    let only = ServeOptions { only: Some(Only::Service), ..ServeOptions::default() };
    let billing = warden::serve::start(&rs, billing_dir.path(), &only).await.unwrap();
    let billing_url = format!("https://{}/mcp", billing.mcp_addr.unwrap());

    let mut client = common::client_config(&s, None);
    client.servers.push(ServerEntry { resource: Some(BILLING.into()), ..ServerEntry::http("billing", billing_url) });
    let events = EventBus::recording();
    let state = tempfile::tempdir().unwrap();
    let _audit = warden::session::audit::attach(&events, state.path(), &client).unwrap();
    let stack = ClientStack::connect(&client, None, CallPolicy::default(), events.clone()).await.unwrap();

    // Every name collides, so every tool is shown qualified; a bare name resolves to nothing.
    let shown: Vec<String> = stack.tool_names().iter().map(|(_, n)| n.to_string()).collect();
    assert_eq!(shown.len(), 8);
    assert!(shown.contains(&"billing.get_customer_info".to_string()), "{shown:?}");
    assert!(shown.contains(&"customer-service.get_customer_info".to_string()), "{shown:?}");
    assert!(stack.tool("get_customer_info").is_none(), "an ambiguous bare name is not guessed");
    assert_eq!(stack.tool("billing.get_customer_info").unwrap().id().server, "billing");

    // The agent lists qualified names and calls exactly the server it chose.
    let tools: Vec<Arc<dyn Tool>> = stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
    let step =
        |tool: &str, args: Value| obj(json!({"next_thought": "t", "next_tool_name": tool, "next_tool_args": args}));
    let lm = DummyLm::ordered(vec![
        step("billing.get_customer_info", json!({"customer_id": "ABC123"})),
        step("finish", json!({})),
        obj(json!({"reasoning": "r", "response": "Sarah Johnson"})),
    ]);
    let agent = ReAct::new(Signature::customer_service(), tools, 5);
    let r = agent.run(&lm, &obj(json!({"request": "Look up ABC123"})), &events, "run-1").await.unwrap();
    let system = &lm.history()[0][0].content;
    assert!(system.contains(") billing.get_customer_info, whose description is"), "{system}");
    assert!(system.contains(") customer-service.get_customer_info, whose description is"), "{system}");
    assert!(!system.contains(") get_customer_info,"), "no bare name for a shared tool: {system}");
    assert_eq!(r.steps[0].tool, "billing.get_customer_info");
    assert!(r.steps[0].observation.contains("Sarah Johnson"), "{}", r.steps[0].observation);

    let rec = events.recorded();
    let calls: Vec<(String, String)> = rec
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ToolCall { tool, .. } => Some((tool.server.clone(), tool.name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(calls, [("billing".to_string(), "get_customer_info".to_string())], "one call, on billing");
    let results = rec.iter().filter(|e| matches!(e.kind, EventKind::ToolResult { .. })).count();
    assert_eq!(results, 1, "exactly one result for the one call");

    // The audit record names the server too (and not the customer data it returned).
    let records = read_all(&state.path().join("audit"), "client").unwrap();
    let audited: Vec<_> = records
        .iter()
        .filter_map(|(_, e)| match &e.kind {
            EventKind::ToolResult { tool, outcome: CallOutcome::Success { structured, text }, .. } => {
                Some((tool.server.clone(), structured.is_none() && text.is_empty()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(audited, [("billing".to_string(), true)]);

    drop(agent);
    stack.close().await;
    billing.shutdown().await;
    s.stop().await;
}
