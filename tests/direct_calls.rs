//! The service's direct `tools/call` path must answer exactly as rmcp's transport does.
//! Two real stacks, one with `direct_calls` on and one with it off, get the same requests
//! (over HTTP/2 and HTTP/1.1); status, content type and body must match byte for byte.

mod common;

use std::time::Duration;

use common::{SUPPORT, Stack, config, tools_call};
use serde_json::{Value, json};
use warden::security::tls::{ClientTls, mcp_http_client};

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

fn case(name: &'static str, version: Option<&'static str>, body: Value) -> Case {
    let mut headers = vec![("Accept", "application/json, text/event-stream"), ("Content-Type", "application/json")];
    if let Some(v) = version {
        headers.push(("MCP-Protocol-Version", v));
    }
    Case { name, headers, body: body.to_string() }
}

fn cases() -> Vec<Case> {
    let v = Some("2025-06-18");
    let mut all = vec![
        case("customer", v, tools_call("get_customer_info", json!({"customer_id": "ABC123"}))),
        case(
            "customer 2025-11-25",
            Some("2025-11-25"),
            tools_call("get_customer_info", json!({"customer_id": "XYZ789"})),
        ),
        case(
            "customer 2025-03-26",
            Some("2025-03-26"),
            tools_call("get_customer_info", json!({"customer_id": "DEF456"})),
        ),
        case("no version header", None, tools_call("get_customer_info", json!({"customer_id": "ABC123"}))),
        case("bad id", v, tools_call("get_customer_info", json!({"customer_id": "x"}))),
        case("unknown customer", v, tools_call("get_customer_info", json!({"customer_id": "ZZZ999"}))),
        case("missing argument", v, tools_call("get_customer_info", json!({}))),
        case("wrong argument type", v, tools_call("get_customer_info", json!({"customer_id": 42}))),
        case("unknown tool", v, tools_call("no_such_tool", json!({}))),
        case("recent", v, tools_call("get_recent_customers", json!({"limit": 3}))),
        case(
            "account",
            v,
            tools_call("calculate_account_value", json!({"customer_id": "ABC123", "amounts": [10.5, 20, 30]})),
        ),
        case(
            "account empty",
            v,
            tools_call("calculate_account_value", json!({"customer_id": "ABC123", "amounts": []})),
        ),
        case(
            "string id",
            v,
            json!({"jsonrpc": "2.0", "id": "req-7", "method": "tools/call", "params": {"name": "get_customer_info", "arguments": {"customer_id": "ABC123"}}}),
        ),
        case(
            "with _meta",
            v,
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_customer_info", "arguments": {"customer_id": "ABC123"}, "_meta": {"progressToken": 5}}}),
        ),
        case("tools/list", v, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})),
        case("notification", v, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        case("unknown version", Some("1999-01-01"), tools_call("get_customer_info", json!({"customer_id": "ABC123"}))),
        Case {
            name: "malformed json",
            headers: case("", v, json!(null)).headers,
            body: "{\"jsonrpc\": \"2.0\", ".into(),
        },
    ];
    let mut only_json = case("accept json only", v, tools_call("get_customer_info", json!({"customer_id": "ABC123"})));
    only_json.headers[0] = ("Accept", "application/json");
    all.push(only_json);
    let mut text = case("text/plain body", v, tools_call("get_customer_info", json!({"customer_id": "ABC123"})));
    text.headers[1] = ("Content-Type", "text/plain");
    all.push(text);
    let mut host = case("foreign host", v, tools_call("get_customer_info", json!({"customer_id": "ABC123"})));
    host.headers.push(("Host", "evil.example"));
    all.push(host);
    let mut session = case("session header", v, tools_call("get_customer_info", json!({"customer_id": "ABC123"})));
    session.headers.push(("Mcp-Session-Id", "abc"));
    all.push(session);
    all
}

async fn send(http: &reqwest::Client, s: &Stack, token: &str, c: &Case) -> (u16, String, String) {
    let mut req = http.post(&s.mcp).bearer_auth(token).body(c.body.clone());
    for (k, v) in &c.headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap_or("?").to_string()).unwrap_or_default();
    (status, ct, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn direct_answers_match_rmcp_byte_for_byte() {
    let direct = Stack::start().await;
    let mut off = config(None);
    off.service.direct_calls = false;
    let via_rmcp = Stack::start_with(off).await;
    let tokens = (direct.token(SUPPORT, None).await, via_rmcp.token(SUPPORT, None).await);
    let h1 = |s: &Stack| {
        mcp_http_client(
            &ClientTls { ca_file: Some(s.state.join("tls/ca.pem")), ca_only: true },
            Duration::from_secs(10),
        )
        .expect("client")
    };
    let clients = [("h2", direct.http.clone(), via_rmcp.http.clone()), ("h1", h1(&direct), h1(&via_rmcp))];
    let mut served = 0;
    for (proto, dc, rc) in &clients {
        for c in cases() {
            let a = send(dc, &direct, &tokens.0, &c).await;
            let b = send(rc, &via_rmcp, &tokens.1, &c).await;
            assert_eq!(a, b, "{proto} case {:?}: direct (left) and rmcp (right) differ", c.name);
            served += usize::from(a.0 == 200);
        }
    }
    // The comparison means something only if most cases were real answers.
    assert!(served >= 24, "only {served} answers were 200");
    let _ = direct.stop().await;
    let _ = via_rmcp.stop().await;
}
