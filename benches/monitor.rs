//! Benchmarks: monitor throughput (events per second through all rules, one core) and
//! audit-log appends per second with the default fsync-every-record policy (and the
//! group-commit policy for comparison). The audit log is written under the system temp
//! dir, so its figure depends on that disk.
//!
//! Run: `cargo bench --bench monitor`.

use std::time::Instant;

use serde_json::json;
use warden::observe::audit::{AuditLog, FsyncPolicy};
use warden::observe::monitor::{Monitor, MonitorConfig};
use warden::types::event::{CallAudit, CallOutcome, DenialSide, Event, EventKind};
use warden::types::scope::ScopeSet;
use warden::types::tool::ToolName;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn events(n: usize) -> Vec<Event> {
    let ev = |i: usize, kind: EventKind| Event {
        id: i as u64,
        at_ms: 1_000_000 + i as u64,
        run_id: Some(format!("run-{}", i / 8)),
        step: Some((i % 8) as u32),
        kind,
    };
    (0..n)
        .map(|i| match i % 8 {
            0 => ev(
                i,
                EventKind::RunStarted {
                    request: "For customer ABC123 create a support ticket as the grill is defective".into(),
                    model: "m".into(),
                    tools: vec![],
                },
            ),
            1 => ev(i, EventKind::Thought { text: "Look up the customer first.".into() }),
            2 => ev(
                i,
                EventKind::ToolCall {
                    tool: ToolName::new("s", "get_customer_info"),
                    args: json!({"customer_id": "ABC123"}),
                    args_digest: "d".into(),
                    required: ScopeSet::new(),
                },
            ),
            3 => ev(
                i,
                EventKind::ToolResult {
                    tool: ToolName::new("s", "get_customer_info"),
                    outcome: CallOutcome::Success {
                        structured: None,
                        text: "{\"customer_id\":\"ABC123\",\"name\":\"Sarah Johnson\",\"notes\":\"Prefers email contact.\"}"
                            .into(),
                    },
                    attempts: 1,
                    latency_ms: 1.0,
                    audit: CallAudit::default(),
                },
            ),
            4 => ev(
                i,
EventKind::ToolCall {
                    tool: ToolName::new("s", "create_support_ticket"),
                    args: json!({"customer_id": "ABC123", "priority": "high"}),
                    args_digest: "d".into(),
                    required: ScopeSet::new(),
                },
            ),
            5 => ev(
                i,
                EventKind::ToolResult {
                    tool: ToolName::new("s", "create_support_ticket"),
                    outcome: CallOutcome::Denied {
                        required: ScopeSet::parse("ticket:create").unwrap(),
                        granted: ScopeSet::new(),
                        missing: ScopeSet::parse("ticket:create").unwrap(),
                        side: DenialSide::Client,
                        status: None,
                        www_authenticate: None,
                    },
                    attempts: 0,
                    latency_ms: 0.1,
                    audit: CallAudit::default(),
                },
            ),
            6 => ev(i, EventKind::FinalAnswer { response: "done".into() }),
            _ => {
                ev(i, EventKind::RunFinished { status: warden::types::event::RunStatus::Ok, steps: 2, elapsed_ms: 1.0 })
            }
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bus = warden::types::event::EventBus::new();
    let monitor = Monitor::attach(&bus, MonitorConfig { denial_spike: usize::MAX, ..MonitorConfig::default() });
    let evs = events(400_000);
    for e in &evs[..20_000] {
        monitor.check(e);
    }
    let start = Instant::now();
    let mut findings = 0usize;
    for e in &evs {
        findings += monitor.check(e).len();
    }
    let rate = evs.len() as f64 / start.elapsed().as_secs_f64();
    println!("monitor: {rate:.0} events/s through all rules ({} events, {findings} findings)", evs.len());

    for (name, policy, n) in [
        ("fsync every record (default)", FsyncPolicy::Always, 2_000usize),
        ("group commit, 50 ms", FsyncPolicy::Batch { interval_ms: 50 }, 50_000),
    ] {
        let dir = std::env::temp_dir().join(format!("warden-audit-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let log = AuditLog::open(&dir, "bench", policy, 64 * 1024 * 1024).expect("open");
        let start = Instant::now();
        for e in evs.iter().take(n) {
            log.append(e).expect("append");
        }
        log.flush().expect("flush");
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("audit append, {name}: {rate:.0} records/s ({n} records, {})", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
