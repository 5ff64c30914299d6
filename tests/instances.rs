//! `warden serve --instances N` as a user runs it: N service processes on consecutive
//! ports with one issuer, each answering with its own resource; an instance killed with
//! SIGKILL is restarted by the parent and serves again; SIGTERM to the parent stops every
//! instance, and a parent killed outright takes its instances with it (none orphaned).
//!
//! On the default SQLite store (the instances share `STATE/service.db`); the same over
//! PostgreSQL, under load, is `tests/scale.rs`.

mod common;
#[path = "common/instances.rs"]
mod instances;

use std::time::Duration;

use serde_json::{Value, json};
use warden::security::tls::{ClientTls, http_client};

use common::{SUPPORT, client_token, mcp_post, tools_call};
use instances::{Instances, await_gone, free_ports, signal};

fn config() -> warden::config::Config {
    let mut c = common::config(None);
    // Port 0: the issuer runs in the parent, which prints where it bound.
    c.issuer.addr = "127.0.0.1:0".parse().unwrap();
    c.service.addr = free_ports(2);
    c
}

async fn create_ticket(http: &reqwest::Client, issuer: &str, mcp: &str) -> reqwest::StatusCode {
    let token = client_token(http, issuer, SUPPORT, mcp).await;
    let call = tools_call(
        "create_support_ticket",
        json!({"customer_id": "ABC123", "subject": "printer", "description": "jammed", "priority": "low"}),
    );
    mcp_post(http, mcp, Some(&token), &call).await.status()
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_serve_restart_when_killed_and_stop_with_the_parent() {
    let state = tempfile::tempdir().unwrap();
    let config = config();
    let base = config.service.addr;
    let mut run = Instances::start(state.path(), &config, 2);
    assert_eq!(run.url(1), format!("https://{base}/mcp"));
    assert_eq!(run.url(2), format!("https://127.0.0.1:{}/mcp", base.port() + 1));
    let http = http_client(
        &ClientTls { ca_file: Some(state.path().join("tls/ca.pem")), ca_only: true },
        Duration::from_secs(10),
    )
    .unwrap();

    for n in [1, 2] {
        // Each instance is its own resource (no [service] resource set).
        let meta: Value = http
            .get(format!("https://127.0.0.1:{}/.well-known/oauth-protected-resource", base.port() + n - 1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["resource"], run.url(n));
        assert_eq!(meta["authorization_servers"], json!([run.issuer]));
        assert_eq!(create_ticket(&http, &run.issuer, &run.url(n)).await, 200, "instance {n}");
    }
    // A revoked access token is refused by every instance, not only in the issuer's
    // process: the parent's /revoke writes the shared list, the instances re-read it.
    let token = client_token(&http, &run.issuer, SUPPORT, &run.url(2)).await;
    let tools_list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let list = async |token: &str| mcp_post(&http, &run.url(2), Some(token), &tools_list).await;
    assert_eq!(list(&token).await.status(), 200);
    let revoke = http
        .post(format!("{}/revoke", run.issuer))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&[("token", token.as_str()), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let resp = list(&token).await;
            if resp.status() == 401 {
                break resp.headers()["www-authenticate"].to_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("instance 2 refuses the revoked token within 5 s (it re-reads the list every 250 ms)");
    assert!(refused.contains("revoked"), "{refused}");

    // Each instance keeps its own decision trail and log.
    for f in ["audit/service-1-000001.jsonl", "audit/service-2-000001.jsonl", "logs/warden-1.log", "logs/warden-2.log"]
    {
        assert!(state.path().join(f).exists(), "{f}");
    }

    let old = run.pid(2);
    let new = run.kill_and_await_restart(2);
    assert!(!instances::alive(old));
    assert_eq!(create_ticket(&http, &run.issuer, &run.url(2)).await, 200, "instance 2 after its restart");
    assert_eq!(create_ticket(&http, &run.issuer, &run.url(1)).await, 200, "instance 1 was not disturbed");
    let rows: i64 = rusqlite::Connection::open(state.path().join("service.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM tickets WHERE subject = 'printer'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 4, "every acknowledged ticket stored once, in the one shared store");

    let pids = [run.pid(1), new];
    let status = run.stop();
    assert!(status.success(), "SIGTERM: a clean exit, got {status}");
    await_gone(&pids, Duration::from_secs(5));

    // `warden audit verify` finds and checks every instance's own chain, not only the
    // issuer's; `audit tail --instance N` reads one of them.
    let warden = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--state-dir")
            .arg(state.path())
            .args(args)
            .output()
            .expect("run warden");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = warden(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{out}");
    for trail in ["server", "service-1", "service-2"] {
        assert!(out.contains(&format!("({trail}):")) && !out.contains('✗'), "{trail} verified:\n{out}");
    }
    let (code, out) = warden(&["audit", "tail", "--instance", "2", "--tool", "create_support_ticket"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.matches("create_support_ticket").count(),
        2,
        "instance 2's two tickets (before and after its restart):\n{out}"
    );

    // A parent killed outright (no chance to stop them): its instances notice they
    // were reparented and exit on their own.
    let mut run = Instances::start(state.path(), &config, 2);
    let pids = [run.pid(1), run.pid(2)];
    signal(run.parent.id(), nix::sys::signal::Signal::SIGKILL);
    let _ = run.parent.wait();
    await_gone(&pids, Duration::from_secs(15));
}
