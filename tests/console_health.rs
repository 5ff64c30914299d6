//! The status bar follows the session's health probe: a `ServerHealth` down event marks
//! the server down (✖, in the theme's error colour) with no tool call at all, and the
//! matching up event clears the mark. Rendered into ratatui's `TestBackend`.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use warden::tui::app::{App, ConsoleInfo};
use warden::tui::keymap::Keymap;
use warden::tui::theme::Theme;
use warden::tui::view;
use warden::types::event::{EventBus, EventKind, Scope};

/// The last row of the screen, and the foreground colour of its first cell.
fn status(app: &App) -> (String, ratatui::style::Color) {
    let (w, h) = (120, 30);
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| view::render(f, app)).unwrap();
    let buf = term.backend().buffer().clone();
    let text: String = (0..w).map(|x| buf[(x, h - 1)].symbol().to_string()).collect();
    (text.trim_end().to_string(), buf[(0, h - 1)].fg)
}

#[test]
fn the_health_probe_marks_a_server_down_and_up_without_a_call() {
    let info = ConsoleInfo {
        servers: vec![("customer-service".into(), "https://127.0.0.1:8001/mcp".into())],
        model: "offline-planner (offline, deterministic)".into(),
        tools: vec![],
        scenarios: vec![],
        mode: "LIVE".into(),
    };
    let theme = Theme::dark();
    let mut app = App::new(info, theme.clone(), Keymap::default(), false);
    let bus = EventBus::recording();
    let (text, _) = status(&app);
    assert!(text.starts_with("● 1 server │"), "{text}");

    app.ingest(&bus.emit(
        &Scope::default(),
        EventKind::ServerHealth {
            server: "customer-service".into(),
            up: false,
            detail: "cannot connect to 127.0.0.1:8001: connection refused — is the server running?".into(),
        },
    ));
    let (text, colour) = status(&app);
    assert!(text.starts_with("✖ customer-service down │"), "{text}");
    assert_eq!(colour, theme.error);

    app.ingest(&bus.emit(
        &Scope::default(),
        EventKind::ServerHealth {
            server: "customer-service".into(),
            up: true,
            detail: "127.0.0.1:8001 answers again".into(),
        },
    ));
    let (text, colour) = status(&app);
    assert!(text.starts_with("● 1 server │"), "{text}");
    assert_ne!(colour, theme.error);
}
