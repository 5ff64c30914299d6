//! Benchmark: console frame time with 10,000 trace events and a full feed at 200×60
//! (ratatui's TestBackend, so this measures layout and widget work, not the terminal).
//!
//! Run: `cargo bench --bench console_render`.

use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use warden::tui::app::{App, ConsoleInfo};
use warden::tui::keymap::Keymap;
use warden::tui::theme::Theme;
use warden::types::event::{CallOutcome, DenialSide, EventBus, EventKind, Scope};
use warden::types::scope::ScopeSet;
use warden::types::tool::ToolName;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bus = EventBus::recording();
    let scope = |i: u32| Scope { run_id: Some(format!("run-{}", i / 20)), step: Some(i % 20) };
    for i in 0..10_000u32 {
        let kind = match i % 4 {
            0 => EventKind::Thought {
                text: format!("Step {i}: the request concerns customer ABC123; look up the profile first."),
            },
            1 => EventKind::ToolCall {
                tool: ToolName::new("customer-service", "get_customer_info"),
                args: serde_json::json!({"customer_id": "ABC123"}),
                args_digest: "sha256:0123456789ab".into(),
                required: ScopeSet::parse("customer:read").unwrap(),
            },
            2 => EventKind::ToolResult {
                tool: ToolName::new("customer-service", "get_customer_info"),
                outcome: CallOutcome::Success {
                    structured: None,
                    text: "{\"customer_id\":\"ABC123\",\"name\":\"Sarah Johnson\",\"tier\":\"gold\"}".repeat(4),
                },
                attempts: 1,
                latency_ms: 1.2,
                audit: Default::default(),
            },
            _ => EventKind::ToolResult {
                tool: ToolName::new("customer-service", "create_support_ticket"),
                outcome: CallOutcome::Denied {
                    required: ScopeSet::parse("ticket:create").unwrap(),
                    granted: ScopeSet::parse("customer:read").unwrap(),
                    missing: ScopeSet::parse("ticket:create").unwrap(),
                    side: DenialSide::Server,
                    status: Some(403),
                    www_authenticate: None,
                },
                attempts: 1,
                latency_ms: 1.4,
                audit: Default::default(),
            },
        };
        bus.emit(&scope(i), kind);
    }
    let mut app = App::new(
        ConsoleInfo { model: "offline-planner".into(), ..ConsoleInfo::default() },
        Theme::dark(),
        Keymap::default(),
        false,
    );
    for e in bus.recorded() {
        app.ingest(&e);
    }
    // Fill the feed to its cap.
    let extra = EventBus::recording();
    for i in 0..warden::tui::panes::feed::MAX_ENTRIES {
        extra.emit(
            &Scope::default(),
            EventKind::ToolRateLimited {
                tool: ToolName::new("s", format!("tool{i}")),
                retry_after_ms: 1000,
                attempt: 1,
            },
        );
    }
    for e in extra.recorded() {
        app.ingest(&e);
    }
    app.resize(ratatui::layout::Rect::new(0, 0, 200, 60));
    let mut term = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
    for _ in 0..200 {
        term.draw(|f| warden::tui::view::render(f, &app)).expect("draw");
    }
    let frames = 3_000u32;
    let start = Instant::now();
    for _ in 0..frames {
        term.draw(|f| warden::tui::view::render(f, &app)).expect("draw");
    }
    let per = start.elapsed().as_secs_f64() / f64::from(frames) * 1e3;
    println!(
        "console frame at 200x60 with {} trace entries and {} feed entries: {per:.3} ms/frame ({frames} frames)",
        app.trace.len(),
        app.feed.len()
    );
}
