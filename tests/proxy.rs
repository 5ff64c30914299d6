//! The README's HAProxy recipe, run for real: Debian's `haproxy` (installed with apt-get on
//! first use as root; skipped loudly when it cannot be had) with the shipped
//! `config/haproxy.cfg` — only its ports changed — in front of `warden serve --instances 3`.
//!
//! Calls through the proxy are spread over every instance (each instance's own decision
//! trail records some), an instance killed with SIGKILL mid-run costs no call (the
//! recipe's retries, redispatch and health checks), and every trail verifies afterwards.

#[path = "common/apt.rs"]
mod apt;
mod common;
#[path = "common/instances.rs"]
mod instances;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::security::tls::{ClientTls, http_client};

use common::{READONLY, client_token, mcp_post, tools_call};
use instances::{Instances, free_ports};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// HAProxy, killed with the test.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shipped recipe with its ports moved to `front` and `base..base+3`. Every port the
/// recipe names must be found, so a change to the recipe's shape fails here, not silently.
fn recipe(front: u16, base: u16) -> String {
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/haproxy.cfg")).unwrap();
    let mut cfg = shipped.clone();
    for (from, to) in [(8000, front), (8001, base), (8002, base + 1), (8003, base + 2)] {
        let (from, to) = (format!("127.0.0.1:{from}"), format!("127.0.0.1:{to}"));
        assert_eq!(cfg.matches(&from).count(), 1, "config/haproxy.cfg binds or names {from} once");
        cfg = cfg.replace(&from, &to);
    }
    cfg
}

fn start_proxy(state: &Path, cfg: &str, front: u16) -> Proxy {
    // The certificate followed by its key, as the recipe's comment says to make it.
    let tls = state.join("tls");
    let mut pem = std::fs::read(tls.join("server.pem")).unwrap();
    pem.extend(std::fs::read(tls.join("server.key")).unwrap());
    std::fs::write(tls.join("proxy.pem"), pem).unwrap();
    let path = state.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let check = Command::new(HAPROXY).arg("-c").arg("-f").arg(&path).env("WARDEN_STATE", state).output().unwrap();
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let child = Command::new(HAPROXY)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .env("WARDEN_STATE", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy = Proxy(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", front)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen on {front} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy
}

/// Allowed `get_customer_info` decisions in each instance's trail.
fn allowed_lookups(state: &Path) -> Vec<usize> {
    (1..=3)
        .map(|n| {
            let trail = state.join(format!("audit/service-{n}-000001.jsonl"));
            std::fs::read_to_string(&trail)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"get_customer_info\"") && l.contains("\"allowed\""))
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_spreads_calls_over_the_instances_and_hides_a_killed_one() {
    if let Err(why) = apt::install("haproxy", || Path::new(HAPROXY).exists(), || {}) {
        eprintln!("\n*** SKIPPED: this test needs HAProxy and it cannot be had here: {why}\n");
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // Four consecutive free ports: the proxy's, then the three instances'.
    let front = free_ports(4).port();
    let base = front + 1;
    let mut config = common::config(None);
    config.issuer.addr = "127.0.0.1:0".parse().unwrap();
    config.service.addr = std::net::SocketAddr::from(([127, 0, 0, 1], base));
    // The clients' URL is the proxy's; every instance answers as that resource.
    let resource = format!("https://localhost:{front}/mcp");
    config.service.resource = Some(resource.clone());
    let mut run = Instances::start(state.path(), &config, 3);
    let _proxy = start_proxy(state.path(), &recipe(front, base), front);

    let http = http_client(
        &ClientTls { ca_file: Some(state.path().join("tls/ca.pem")), ca_only: true },
        Duration::from_secs(10),
    )
    .unwrap();
    let meta: Value = http
        .get(format!("https://localhost:{front}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], resource);
    let token = client_token(&http, &run.issuer, READONLY, &resource).await;
    let lookup = tools_call("get_customer_info", json!({"customer_id": "ABC123"}));
    let call = async || {
        let resp = mcp_post(&http, &resource, Some(&token), &lookup).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Sarah Johnson") && !body.contains("\"isError\":true"), "{body}");
    };

    // One client, one keep-alive connection: the proxy balances requests, not connections.
    for _ in 0..9 {
        call().await;
    }
    assert_eq!(allowed_lookups(state.path()), [3, 3, 3], "round robin over the three instances");

    // Instance 2 dies; the next calls still all succeed (connect failures are retried on
    // another instance, the health check takes it out), and the parent brings it back.
    let killed = run.pid(2);
    instances::signal(killed, nix::sys::signal::Signal::SIGKILL);
    for _ in 0..9 {
        call().await;
    }
    let restarted = run.kill_and_await_restart(2);
    assert_ne!(restarted, killed);
    let before = allowed_lookups(state.path());
    assert_eq!(before.iter().sum::<usize>(), 18, "every call was served once: {before:?}");
    // Back in rotation once its health check passes (inter 1s, rise 1).
    let deadline = Instant::now() + Duration::from_secs(20);
    while allowed_lookups(state.path())[1] == before[1] {
        assert!(Instant::now() < deadline, "instance 2 never served again through the proxy");
        call().await;
    }

    let status = run.stop();
    assert!(status.success(), "{status}");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(state.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for trail in ["service-1", "service-2", "service-3"] {
        assert!(text.contains(&format!("({trail}):")) && !text.contains('✗'), "{trail}:\n{text}");
    }
}
