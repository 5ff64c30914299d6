//! A stdio server that dies: the session sees its process gone, a call says so in words, the
//! health probe reports it down (on an injected clock), a restart brings a new process with
//! the same tools, and a restart whose tool manifest changed is refused and leaves no
//! process behind.
//!
//! The server is a tiny MCP server in Node.js written by the test (newline-delimited
//! JSON-RPC on stdin/stdout), which lists the tools named in a file and writes its pid next
//! to it, so the test can kill it and change its manifest between starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Map;
use warden::config::Config;
use warden::mcp::ClientStack;
use warden::mcp::classify::Failure;
use warden::mcp::secure_tool::CallPolicy;
use warden::mcp::session::RestartError;
use warden::session::health::Health;
use warden::types::event::{EventBus, EventKind};
use warden::types::time::ManualClock;

const SERVER: &str = r#"
const fs = require('fs');
const manifest = process.argv[2];
fs.writeFileSync(manifest + '.pid', String(process.pid));
process.stderr.write('tiny server ' + process.pid + ' starting\n');
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  if (msg.id === undefined) return;
  const send = (body) => process.stdout.write(JSON.stringify(Object.assign({ jsonrpc: '2.0', id: msg.id }, body)) + '\n');
  if (msg.method === 'initialize') {
    send({ result: { protocolVersion: msg.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'tiny', version: '1.0.0' } } });
  } else if (msg.method === 'tools/list') {
    const names = fs.readFileSync(manifest, 'utf8').trim().split(',');
    send({ result: { tools: names.map((name) => ({ name, description: 'says hello', inputSchema: { type: 'object', properties: {} }, annotations: { readOnlyHint: true } })) } });
  } else if (msg.method === 'tools/call') {
    send({ result: { content: [{ type: 'text', text: 'hello from ' + process.pid }] } });
  } else if (msg.method === 'ping') {
    send({ result: {} });
  } else {
    send({ error: { code: -32601, message: 'no such method' } });
  }
});
"#;

struct Tiny {
    _dir: tempfile::TempDir,
    manifest: PathBuf,
    config: Config,
}

fn tiny(tools: &str) -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("tiny.js");
    std::fs::write(&script, SERVER).unwrap();
    let manifest = dir.path().join("tools.txt");
    std::fs::write(&manifest, tools).unwrap();
    let text = format!(
        "[[servers]]\nname = \"tiny\"\ncommand = \"node\"\nargs = [{:?}, {:?}]\n",
        script.display().to_string(),
        manifest.display().to_string()
    );
    let config = Config::parse(&text, &dir.path().join("warden.toml")).unwrap();
    Tiny { _dir: dir, manifest, config }
}

fn pid_of(manifest: &Path) -> String {
    std::fs::read_to_string(manifest.with_extension("txt.pid")).unwrap()
}

/// Whether process `pid` runs (a zombie waiting to be reaped does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().chars().next().unwrap_or('?')))
        .is_some_and(|state| state != 'Z')
}

fn kill(pid: &str) {
    std::process::Command::new("kill").args(["-9", pid]).status().unwrap();
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn hello(session: &warden::mcp::session::McpSession) -> Result<String, Failure> {
    let result = session.call("hello", Map::new(), None).await?;
    Ok(result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default())
}

#[tokio::test]
async fn a_dead_stdio_server_is_seen_reported_and_restarted_with_the_same_tools() {
    let t = tiny("hello");
    let bus = EventBus::recording();
    let stack = ClientStack::connect(&t.config, None, CallPolicy::default(), bus.clone()).await.unwrap();
    let session = stack.servers[0].session.clone();
    assert!(session.is_stdio() && session.is_alive());
    let first = pid_of(&t.manifest);
    assert_eq!(hello(&session).await.unwrap(), format!("hello from {first}"));

    let clock = ManualClock::starting_now();
    let http = reqwest::Client::new();
    let mut health = Health::new(&[], http, clock.clone()).with_processes([session.clone()]);
    clock.advance(Duration::from_secs(1));
    health.check(&bus).await;
    let reports = |bus: &EventBus| -> Vec<(bool, String)> {
        bus.recorded()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::ServerHealth { up, detail, .. } => Some((up, detail)),
                _ => None,
            })
            .collect()
    };
    assert!(reports(&bus).is_empty(), "a running process is not reported");

    kill(&first);
    until("the session sees the process gone", || !session.is_alive()).await;
    match hello(&session).await {
        Err(Failure::ConnectionLost(why)) => assert!(
            why.starts_with("the process of tiny exited (`node ")
                && why.ends_with("restart it with R on the console's token pane"),
            "{why}"
        ),
        other => panic!("expected the call to say the process exited, got {other:?}"),
    }
    clock.advance(Duration::from_secs(1));
    health.check(&bus).await;
    assert_eq!(reports(&bus), [(false, "its process exited".to_string())]);
    // Down is reported once, not on every check.
    clock.advance(Duration::from_secs(1));
    health.check(&bus).await;
    assert_eq!(reports(&bus).len(), 1);

    session.restart().await.unwrap();
    let second = pid_of(&t.manifest);
    assert_ne!(first, second);
    assert_eq!(hello(&session).await.unwrap(), format!("hello from {second}"));
    clock.advance(Duration::from_secs(1));
    health.check(&bus).await;
    assert_eq!(reports(&bus)[1], (true, "its process is running again".to_string()));

    // The stderr of both processes, as events (held until a frontend attaches).
    session.attach_stderr();
    let stderr: Vec<String> = bus
        .recorded()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ServerStderr { server, line } if server == "tiny" => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(stderr, [format!("tiny server {first} starting"), format!("tiny server {second} starting")]);

    // Restarting into a different manifest is refused, and the new process is stopped.
    std::fs::write(&t.manifest, "hello,delete_everything").unwrap();
    kill(&second);
    until("the session sees the second process gone", || !session.is_alive()).await;
    let err = session.restart().await.unwrap_err();
    assert!(matches!(err, RestartError::ManifestChanged { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("tiny started again, but its tool manifest changed ("), "{message}");
    assert!(message.contains("it was stopped. Review the tools with `warden tools`"), "{message}");
    let third = pid_of(&t.manifest);
    assert_ne!(third, second);
    until("the refused process is stopped", || !running(&third)).await;
    assert!(!session.is_alive(), "the dead connection stays until a good restart");
    stack.close().await;
}
