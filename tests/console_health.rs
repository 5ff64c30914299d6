//! The status bar follows the session's health probe: a `ServerHealth` down event marks
//! the server down (✖, in the theme's error colour) with no tool call at all, and the
//! matching up event clears the mark. Rendered into ratatui's `TestBackend`. And a model
//! failure shows in the chat as the agent's reply, in the session core's words.

mod common;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use warden::tui::app::{App, ConsoleInfo};
use warden::tui::keymap::Keymap;
use warden::tui::theme::Theme;
use warden::tui::view;
use warden::types::event::{EventBus, EventKind, Scope, ServerSummary};

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
        servers: vec![ServerSummary::http("customer-service", "https://127.0.0.1:8001/mcp", "oauth")],
        model: "offline-planner (offline, deterministic)".into(),
        tools: vec![],
        scenarios: vec![],
        mode: "LIVE".into(),
        program: None,
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

/// A model failure reaches the chat as the agent's reply, in the core's words: the console
/// renders the session's events and adds nothing. The session runs for real (issuer and
/// service on loopback), with a model whose key variable is unset.
#[tokio::test]
async fn a_model_failure_is_the_agents_reply_in_the_chat() {
    use tokio_util::sync::CancellationToken;
    use warden::session::command::Command;
    use warden::session::{Session, SessionOptions};
    use warden::tui::panes::chat::Who;

    let stack = common::Stack::start().await;
    let state = tempfile::tempdir().unwrap();
    let mut config = common::client_config(&stack, None);
    config.agent = Some(warden::config::AgentConfig {
        api_key_env: Some("WARDEN_TEST_SURELY_UNSET_KEY".into()),
        ..Default::default()
    });
    let events = EventBus::recording();
    let opts = SessionOptions { model: Some("openai/gpt-test".into()), ..Default::default() };
    let session = Session::open_on(&config, state.path(), opts, events.clone()).await.unwrap();
    let mut rx = session.events().subscribe(1 << 16);
    let info = session.info();
    let core = session.start(CancellationToken::new());
    assert!(core.send(Command::Submit("Look up customer ABC123".into())).await);
    warden::session::report::next_run(&mut rx).await.unwrap();
    core.shutdown().await;

    let console = ConsoleInfo {
        servers: info.servers,
        model: info.model,
        tools: vec![],
        scenarios: vec![],
        mode: "LIVE".into(),
        program: None,
    };
    let mut app = App::new(console, Theme::dark(), Keymap::default(), false);
    for e in events.recorded() {
        app.ingest(&e);
    }
    let chat: Vec<(Who, &str)> = app.chat.history().iter().map(|l| (l.who, l.text.as_str())).collect();
    assert_eq!(
        chat,
        [(Who::You, "Look up customer ABC123"), (Who::Agent, "openai: no API key: set WARDEN_TEST_SURELY_UNSET_KEY")]
    );
    stack.stop().await;
}
