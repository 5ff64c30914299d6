//! The operator console (ratatui). The core runs on its own task; the UI owns the terminal
//! and redraws on input, on events and on a one-second tick (for countdowns) — no busy
//! loop and no network on the UI path. The terminal is restored on every exit path,
//! including a panic.
//!
//! A frontend: it reaches the agent and the client stack only through the session core.
//! May import: `types`, `paths`, `observe`, `config`, `session`. Enforced by
//! `tests/layering.rs`.

pub mod app;
pub mod component;
pub mod keymap;
pub mod overlays;
pub mod panes;
pub mod theme;
pub mod view;

use std::io::Stdout;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event as TermEvent, EventStream};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::observe::recorder;
use crate::session::command::Command;
use app::{App, ConsoleInfo};
use keymap::Keymap;
use panes::token::ToolScopes;
use theme::Theme;

use crate::session::{Session, SessionInfo};
use crate::types::confirm::ConfirmRequest;
use crate::types::event::{Event, EventKind, ServerSummary, ToolRequirement};
use crate::types::step_up::StepUpRequest;
use crate::types::tool::ToolName;

/// Why the console stopped or could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    #[error(
        "cannot use this terminal ({0}); run the console in an interactive terminal, or use `warden demo --headless`"
    )]
    Terminal(#[source] std::io::Error),
    #[error("reading terminal input failed: {0}")]
    Input(#[source] std::io::Error),
    #[error("cannot record the session to {path}: {source}")]
    Recording { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Replay(#[from] recorder::ReplayError),
}

/// Why `e` (export) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum ExportError {
    #[error("no session recording to export")]
    NoRecording,
    #[error("cannot copy the recording to {path}: {source}")]
    Copy { path: PathBuf, source: std::io::Error },
}

/// Restores the terminal when dropped (normal exit, error, or unwinding panic).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> Result<(Self, Terminal<CrosstermBackend<Stdout>>), ConsoleError> {
        enable_raw_mode().map_err(ConsoleError::Terminal)?;
        let guard = TerminalGuard;
        execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture).map_err(ConsoleError::Terminal)?;
        let terminal = Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(ConsoleError::Terminal)?;
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, DisableMouseCapture, ratatui::crossterm::cursor::Show);
}

/// Panics restore the terminal before the message is printed, so it is readable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
}

/// Everything a live console needs.
pub struct LiveSetup {
    pub session: Session,
    pub theme: Theme,
    pub keymap: Keymap,
    pub state_dir: PathBuf,
    /// Where the session's confirmer sends tool calls that need the operator (the
    /// session was opened with `Confirmer::operator`); `None`: nothing asks.
    pub confirmations: Option<mpsc::Receiver<ConfirmRequest>>,
    /// Where the session's step-up asker sends step-ups under `--step-up ask` (the session
    /// was opened with `StepUpAsker::operator`); `None`: nothing asks.
    pub step_ups: Option<mpsc::Receiver<StepUpRequest>>,
}

pub fn console_info(info: SessionInfo) -> ConsoleInfo {
    ConsoleInfo {
        servers: info.servers,
        model: if info.deterministic { format!("{} (offline, deterministic)", info.model) } else { info.model },
        tools: info
            .tools
            .into_iter()
            .map(|t| ToolScopes { server: t.id.server, name: t.id.name, required: t.required, hints: t.hints })
            .collect(),
        scenarios: info.scenarios,
        mode: "LIVE".into(),
        program: info.program.map(|p| app::ProgramBadge {
            name: p.name,
            valid: p.report.ok,
            findings: p.report.findings.len(),
            recheck: Some(p.recheck),
        }),
    }
}

/// The event a live console records first: the facts of [`ConsoleInfo`] a replay needs.
pub fn session_started(info: &ConsoleInfo) -> EventKind {
    EventKind::SessionStarted {
        model: info.model.clone(),
        servers: info.servers.iter().map(|s| s.name.clone()).collect(),
        details: info.servers.clone(),
        tools: info
            .tools
            .iter()
            .map(|t| ToolRequirement {
                tool: ToolName::new(&t.server, &t.name),
                required: t.required.clone(),
                hints: t.hints,
            })
            .collect(),
    }
}

/// What a replay knows before its first event is played: the recorded session start (a
/// recording made before that event existed has none, and shows no matrix).
pub fn replay_info(events: &[Event], mode: &str) -> ConsoleInfo {
    let mut info = ConsoleInfo { mode: mode.to_string(), model: "(recorded)".into(), ..ConsoleInfo::default() };
    if let Some(EventKind::SessionStarted { model, servers, tools, details }) =
        events.iter().map(|e| &e.kind).find(|k| matches!(k, EventKind::SessionStarted { .. }))
    {
        info.model = model.clone();
        // An older recording names its servers only: how each authenticated is unknown.
        info.servers = if details.is_empty() {
            servers
                .iter()
                .map(|name| ServerSummary {
                    name: name.clone(),
                    transport: String::new(),
                    endpoint: String::new(),
                    auth: String::new(),
                    headers: Vec::new(),
                })
                .collect()
        } else {
            details.clone()
        };
        info.tools = tools
            .iter()
            .map(|t| ToolScopes {
                server: t.tool.server.clone(),
                name: t.tool.name.clone(),
                required: t.required.clone(),
                hints: t.hints,
            })
            .collect();
    }
    info
}

/// Runs the console against an open session until the operator quits.
pub async fn run_live(setup: LiveSetup) -> Result<(), ConsoleError> {
    let LiveSetup { mut session, theme, keymap, state_dir, confirmations, step_ups } = setup;
    let info = console_info(session.info());
    let ui_rx = session.events().subscribe(1 << 16);
    let recording = recorder::session_path(&state_dir);
    let _recorder = recorder::spawn_recorder(recording.clone(), session.events().subscribe(1 << 16))
        .map_err(|source| ConsoleError::Recording { path: recording.clone(), source })?;
    // The recording opens with what a replay needs to draw the matrix and status bar.
    session.events().emit(&crate::types::event::Scope::default(), session_started(&info));
    // The OAuth steps of connecting (a login, a stored token) happened before the console
    // subscribed: they are sent again as they were, times included, for the auth flow.
    session.announce_connect_auth();
    // Replay the token state the stack already has (obtained before the console started).
    session.announce_tokens();
    let clock = session.events().clock().clone();
    let core = session.start(CancellationToken::new());
    let mut app = App::new(info, theme, keymap, false);
    app.state_dir = Some(state_dir.clone());
    app.telemetry = core.telemetry();
    let asks = Asks { confirmations, step_ups };
    let result = ui_loop(app, ui_rx, Some(core.sender()), asks, &state_dir, Some(recording), clock).await;
    core.shutdown().await;
    result
}

/// Plays a recorded session back in the console.
pub async fn run_replay(
    file: &Path,
    speed: f64,
    theme: Theme,
    keymap: Keymap,
    state_dir: &Path,
) -> Result<(), ConsoleError> {
    let events = recorder::load(file)?;
    // The file name, not its whole path: the status bar is narrow.
    let name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_else(|| file.to_string_lossy());
    let info = replay_info(&events, &format!("REPLAY {name} ×{speed}"));
    let (tx, rx) = mpsc::channel(1024);
    let _player = recorder::spawn_replay(events, speed, tx);
    let app = App::new(info, theme, keymap, true);
    let asks = Asks { confirmations: None, step_ups: None };
    ui_loop(app, rx, None, asks, state_dir, Some(file.to_path_buf()), crate::types::time::system()).await
}

/// Where the questions for the operator arrive (none in a replay).
struct Asks {
    confirmations: Option<mpsc::Receiver<ConfirmRequest>>,
    step_ups: Option<mpsc::Receiver<StepUpRequest>>,
}

async fn ui_loop(
    mut app: App,
    mut events: mpsc::Receiver<Event>,
    commands: Option<mpsc::Sender<Command>>,
    asks: Asks,
    state_dir: &Path,
    session: Option<PathBuf>,
    clock: crate::types::time::SharedClock,
) -> Result<(), ConsoleError> {
    let Asks { mut confirmations, mut step_ups } = asks;
    install_panic_hook();
    let (_guard, mut terminal) = TerminalGuard::enter()?;
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let size = terminal.size().map_err(ConsoleError::Terminal)?;
        let screen = ratatui::layout::Rect::new(0, 0, size.width, size.height);
        app.resize(screen);
        terminal.draw(|f| view::render(f, &app)).map_err(ConsoleError::Terminal)?;
        tokio::select! {
            maybe = input.next() => match maybe {
                Some(Ok(TermEvent::Key(k))) => {
                    for cmd in app.on_key(k) {
                        dispatch(&mut app, cmd, commands.as_ref(), state_dir, session.as_deref());
                    }
                }
                Some(Ok(TermEvent::Mouse(m))) => app.on_mouse(m, screen),
                Some(Ok(TermEvent::Resize(..))) => {}
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ConsoleError::Input(e)),
                None => break,
            },
            Some(e) = events.recv() => {
                app.ingest(&e);
                // Drain a burst before redrawing, but stay responsive.
                for _ in 0..2048 {
                    match events.try_recv() {
                        Ok(e) => app.ingest(&e),
                        Err(_) => break,
                    }
                }
            }
            Some(request) = async {
                match confirmations.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => app.ask(request),
            Some(request) = async {
                match step_ups.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => app.ask_step_up(request),
            _ = tick.tick() => app.now = clock.now_epoch(),
        }
        if app.quit {
            break;
        }
    }
    Ok(())
}

fn dispatch(
    app: &mut App,
    cmd: Command,
    commands: Option<&mpsc::Sender<Command>>,
    state_dir: &Path,
    session: Option<&Path>,
) {
    if cmd == Command::Export {
        app.notice = Some(match export(state_dir, session) {
            Ok(path) => format!("exported to {}", path.display()),
            Err(e) => format!("export failed: {e}"),
        });
        return;
    }
    let optimize = matches!(cmd, Command::Optimize(_));
    if let Some(tx) = commands
        && tx.try_send(cmd).is_err()
    {
        app.notice = Some("the agent core is busy; try again".into());
        if optimize {
            app.optimize_not_sent("the agent core is busy; press Enter to try again");
        }
    }
}

fn export(state_dir: &Path, session: Option<&Path>) -> Result<PathBuf, ExportError> {
    let source = session.ok_or(ExportError::NoRecording)?;
    let dir = state_dir.join("exports");
    let name = source.file_name().ok_or(ExportError::NoRecording)?;
    let target = dir.join(name);
    let copy = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(source, &target).map(|_| ())
    };
    copy().map_err(|source| ExportError::Copy { path: target.clone(), source })?;
    Ok(target)
}
