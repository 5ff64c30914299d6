//! The console's router. `App` holds the components (four panes and at most one overlay),
//! the focus and the session facts the status bar shows; it turns keys into actions with the
//! keymap and routes them — the overlay first, then the focused pane, then its own global
//! actions — and acts on the messages components answer with. It never reads or writes a
//! component's fields, and never touches the network: what the core must do comes back
//! as `Command`s.
//!
//! An optimization (`O`) is an overlay too, but it outlives being closed: `App` keeps the
//! closed optimize overlay and goes on giving it events, so `O` shows it again. Its agent
//! runs (`optimize-N`) reach the feed and the token pane only; the chat, the trace and the
//! "request running" state keep to the operator's own requests.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use super::keymap::{Action, Context, Keymap};
pub use super::overlays::Overlay;
use super::overlays::confirm::ConfirmView;
use super::overlays::grant::REPLAY_NOTICE;
use super::overlays::help::HelpView;
use super::overlays::optimize::{self, OptimizeView};
use super::overlays::scenarios::ScenarioPicker;
use super::overlays::step_up::StepUpView;
use super::panes::Pane;
use super::panes::chat::ChatPane;
use super::panes::feed::FeedPane;
use super::panes::token::{TokenPane, ToolScopes};
use super::panes::trace::TracePane;
use super::theme::Theme;
use super::view;
use crate::session::command::Command;
use crate::session::optimize::OptimizeJob;
use crate::session::scenario::Scenario;
use crate::types::confirm::ConfirmRequest;
use crate::types::event::{Event, EventKind, ServerSummary};
use crate::types::scope::ScopeSet;
use crate::types::step_up::StepUpRequest;

/// Static facts about the session, known at start.
#[derive(Debug, Clone, Default)]
pub struct ConsoleInfo {
    pub servers: Vec<ServerSummary>,
    pub model: String,
    pub tools: Vec<ToolScopes>,
    pub scenarios: Vec<Scenario>,
    /// `LIVE`, or `REPLAY <file> ×<speed>` in a replay.
    pub mode: String,
    /// The compiled program every run starts from (`--program`), and how it validated.
    pub program: Option<ProgramBadge>,
}

/// What the status bar says about the session's compiled program.
#[derive(Debug, Clone)]
pub struct ProgramBadge {
    /// The file name.
    pub name: String,
    /// It validated against the session's grant and tools.
    pub valid: bool,
    /// How many findings it has.
    pub findings: usize,
    /// Validates it again when a token with another grant is issued (`None`: nothing to
    /// validate again with).
    pub recheck: Option<crate::session::validate::Recheck>,
}

pub struct App {
    pub info: ConsoleInfo,
    pub theme: Theme,
    pub keymap: Keymap,
    pub focus: Pane,
    /// The chat input has the keyboard (part of the focus).
    pub typing: bool,
    pub overlay: Option<Overlay>,
    pub chat: ChatPane,
    pub trace: TracePane,
    pub token: TokenPane,
    pub feed: FeedPane,
    /// The run in progress, if any (run id, current step).
    pub running: Option<(String, Option<u32>)>,
    pub last_request: Option<String>,
    /// A transient message for the status bar.
    pub notice: Option<String>,
    pub quit: bool,
    pub replay: bool,
    /// Servers whose last sent call found them unreachable (connection, TLS, timeout,
    /// outcome unknown), by name; a later call they answer clears the mark. Derived from
    /// `ToolResult` events only, so a replay shows the outage as it happened.
    pub down: std::collections::BTreeSet<String>,
    /// Epoch seconds used for countdowns (set on every tick).
    pub now: u64,
    pub events_seen: u64,
    /// The question the open confirmation or step-up overlay asks; its reply is answered
    /// here, and dropped (a decline) if the console goes away first.
    confirming: Option<Question>,
    /// Questions that arrived while another was open.
    confirm_queue: std::collections::VecDeque<Question>,
    /// The session's state directory (where an optimization writes its program); `None`
    /// in a replay.
    pub state_dir: Option<std::path::PathBuf>,
    /// An optimization was started and has not finished.
    optimizing: bool,
    /// The optimize overlay while it is closed (running, or with a result to show again).
    optimize_kept: Option<OptimizeView>,
    /// The grant last seen per server, for the optimize overlay's "runs under".
    grants: std::collections::BTreeMap<Option<String>, ScopeSet>,
    /// OpenTelemetry export, when on: the status bar shows spans it could not deliver.
    pub telemetry: Option<std::sync::Arc<crate::observe::telemetry::Telemetry>>,
}

/// A question waiting for the operator: a tool call to confirm, or a step-up.
#[derive(Debug)]
enum Question {
    Call(ConfirmRequest),
    StepUp(StepUpRequest),
}

impl Question {
    fn overlay(&self) -> Overlay {
        match self {
            Question::Call(r) => Overlay::Confirm(ConfirmView::new(r.question.clone())),
            Question::StepUp(r) => Overlay::StepUp(StepUpView::new(r.question.clone())),
        }
    }

    /// Answers it; what the status bar says.
    fn answer(self, yes: bool) -> String {
        match self {
            Question::Call(r) => {
                let tool = r.question.tool.clone();
                r.answer(yes);
                format!("{} {tool}", if yes { "allowed" } else { "declined" })
            }
            Question::StepUp(r) => {
                let notice = if yes {
                    format!("re-authorizing with {}…", r.question.union)
                } else {
                    format!("step-up declined: {} stays denied", r.question.tool)
                };
                r.answer(yes);
                notice
            }
        }
    }
}

impl App {
    pub fn new(info: ConsoleInfo, theme: Theme, keymap: Keymap, replay: bool) -> Self {
        let token = TokenPane::new(info.servers.clone(), info.tools.clone());
        Self {
            info,
            theme,
            keymap,
            focus: Pane::Chat,
            typing: !replay,
            overlay: None,
            chat: ChatPane::new(),
            trace: TracePane::new(),
            token,
            feed: FeedPane::new(),
            running: None,
            last_request: None,
            notice: None,
            quit: false,
            replay,
            down: Default::default(),
            now: crate::types::time::now_epoch(),
            events_seen: 0,
            confirming: None,
            confirm_queue: Default::default(),
            state_dir: None,
            optimizing: false,
            optimize_kept: None,
            grants: Default::default(),
            telemetry: None,
        }
    }

    /// A tool call waits for the operator: the confirmation overlay opens over whatever
    /// was open (it cannot wait behind a help screen), or the question queues behind the
    /// one already open.
    pub fn ask(&mut self, request: ConfirmRequest) {
        self.pose(Question::Call(request));
    }

    /// A step-up waits for the operator (`--step-up ask`): its overlay opens, or it queues,
    /// as a confirmation does.
    pub fn ask_step_up(&mut self, request: StepUpRequest) {
        self.pose(Question::StepUp(request));
    }

    fn pose(&mut self, question: Question) {
        if self.confirming.is_some() {
            self.confirm_queue.push_back(question);
            return;
        }
        self.set_overlay(Some(question.overlay()));
        self.confirming = Some(question);
    }

    /// Whether the open overlay is the one asking the open question.
    fn asking_open(&self) -> bool {
        matches!(self.overlay, Some(Overlay::Confirm(_) | Overlay::StepUp(_)))
    }

    /// Replaces the open overlay. An optimize overlay that runs or has a result is kept
    /// (closing it does not stop the optimization; `O` shows it again).
    fn set_overlay(&mut self, overlay: Option<Overlay>) {
        if let Some(Overlay::Optimize(view)) = std::mem::replace(&mut self.overlay, overlay)
            && view.worth_keeping()
        {
            self.optimize_kept = Some(view);
        }
    }

    /// Whether an optimization is running.
    pub fn optimizing(&self) -> bool {
        self.optimizing
    }

    /// `O`: the optimization kept from before (running, or its result), else a new one to
    /// confirm. Refused in a replay and while a request runs.
    fn open_optimize(&mut self) {
        if self.replay {
            self.notice = Some(format!("optimize: {REPLAY_NOTICE}"));
            return;
        }
        if let Some(view) = self.optimize_kept.take() {
            self.set_overlay(Some(Overlay::Optimize(view)));
            return;
        }
        if self.running.is_some() {
            self.notice = Some("a request is running: optimize when it has finished".into());
            return;
        }
        let Some(dir) = self.state_dir.clone() else {
            self.notice = Some("optimize: this console has no state directory to write the program to".into());
            return;
        };
        match OptimizeJob::console_default(&dir, self.now) {
            Ok(job) => self.set_overlay(Some(Overlay::Optimize(OptimizeView::new(job, self.grant_label())))),
            Err(e) => {
                self.notice = Some(format!("optimize: {e}; fix config/trainset.toml or remove it to use the built-in"))
            }
        }
    }

    /// The core did not take the `Command::Optimize` that was sent (its queue was full):
    /// nothing runs, and the overlay says so instead of waiting for an end that never comes.
    pub fn optimize_not_sent(&mut self, why: &str) {
        self.optimizing = false;
        for view in
            [self.overlay.as_mut().and_then(Overlay::optimize_mut), self.optimize_kept.as_mut()].into_iter().flatten()
        {
            view.not_sent(why);
        }
    }

    /// The grant the session holds, over all servers, as the optimize overlay shows it.
    fn grant_label(&self) -> String {
        if self.grants.is_empty() {
            return "no token yet: servers without OAuth limit nothing".into();
        }
        let mut all = ScopeSet::new();
        for granted in self.grants.values() {
            for s in granted.iter() {
                all.insert(s.clone());
            }
        }
        if all.is_empty() { "(no scopes)".into() } else { all.to_string() }
    }

    /// Whether a tool call is waiting for the operator.
    pub fn confirming(&self) -> bool {
        self.confirming.is_some()
    }

    /// Answers the open question, closes its overlay and opens the next one.
    fn answer(&mut self, allow: bool) {
        if let Some(question) = self.confirming.take() {
            self.notice = Some(question.answer(allow));
        }
        if self.asking_open() {
            self.set_overlay(None);
        }
        if let Some(next) = self.confirm_queue.pop_front() {
            self.pose(next);
        }
    }

    /// A pane, as a component.
    pub fn pane(&self, pane: Pane) -> &dyn Component {
        match pane {
            Pane::Chat => &self.chat,
            Pane::Trace => &self.trace,
            Pane::Token => &self.token,
            Pane::Feed => &self.feed,
        }
    }

    fn pane_mut(&mut self, pane: Pane) -> &mut dyn Component {
        match pane {
            Pane::Chat => &mut self.chat,
            Pane::Trace => &mut self.trace,
            Pane::Token => &mut self.token,
            Pane::Feed => &mut self.feed,
        }
    }

    /// What components may know about the session when they handle an action.
    fn ctx(&self) -> Ctx {
        Ctx {
            replay: self.replay,
            running: self.running.is_some() || self.optimizing,
            last_request: self.last_request.clone(),
        }
    }

    /// What a component may know when it draws.
    pub fn draw_ctx(&self, focused: bool) -> DrawCtx<'_> {
        DrawCtx {
            theme: &self.theme,
            keymap: &self.keymap,
            focused,
            typing: self.typing,
            now: self.now,
            replay: self.replay,
        }
    }

    pub fn ingest(&mut self, e: &Event) {
        self.events_seen += 1;
        // An optimization's agent runs are not the operator's: they reach the feed (their
        // denials and anomalies), the token pane and the optimize overlay, nothing else.
        let optimize_run = optimize::is_optimize_run(e);
        match &e.kind {
            EventKind::RunStarted { .. } | EventKind::RunFinished { .. } | EventKind::Thought { .. }
                if optimize_run => {}
            EventKind::OptimizeProgress { .. } => self.optimizing = true,
            EventKind::OptimizeFinished { .. } => {
                self.optimizing = false;
                // (A replay has no overlay to show it in: the feed line says it all.)
                if !self.replay && !matches!(self.overlay, Some(Overlay::Optimize(_))) {
                    self.notice = Some(format!(
                        "optimization finished: {} shows the table",
                        self.keymap.key_for(Action::Optimize)
                    ));
                }
            }
            EventKind::RunStarted { request, .. } => {
                self.running = Some((e.run_id.clone().unwrap_or_default(), None));
                self.last_request = Some(request.clone());
            }
            EventKind::RunFinished { .. } => self.running = None,
            // A re-grant changes what the program may do: its badge follows the new grant
            // (and the optimize overlay shows the grant it would run under).
            EventKind::TokenIssued { token, server, .. } => {
                self.grants.insert(server.clone(), token.granted.clone());
                if let Some(p) = &mut self.info.program
                    && let Some(recheck) = &p.recheck
                {
                    let grant = if token.granted.is_empty() {
                        token.requested.clone().unwrap_or_default()
                    } else {
                        token.granted.clone()
                    };
                    let report = recheck.under(&grant);
                    p.valid = report.ok;
                    p.findings = report.findings.len();
                }
            }
            EventKind::ToolResult { tool, outcome, attempts, .. } if *attempts > 0 => match outcome.server_reached() {
                Some(true) => {
                    self.down.remove(&tool.server);
                }
                Some(false) => {
                    self.down.insert(tool.server.clone());
                }
                None => {}
            },
            // The session's health probe: the server's reachability, seen without a call.
            EventKind::ServerHealth { server, up, .. } => {
                if *up {
                    self.down.remove(server);
                } else {
                    self.down.insert(server.clone());
                }
            }
            EventKind::Thought { .. } => {
                if let Some((_, step)) = &mut self.running {
                    *step = e.step;
                }
            }
            _ => {}
        }
        for pane in Pane::ALL {
            if optimize_run && matches!(pane, Pane::Chat | Pane::Trace) {
                continue;
            }
            self.pane_mut(pane).on_event(e);
        }
        if let Some(overlay) = &mut self.overlay {
            overlay.on_event(e);
        }
        if let Some(view) = &mut self.optimize_kept {
            view.on_event(e);
        }
    }

    /// Tells the panes where they will be drawn on a `screen` of this size (call it before
    /// drawing, and whenever the terminal is resized), so they can settle their scrolling.
    pub fn resize(&mut self, screen: Rect) {
        let areas = view::layout(screen);
        for (pane, area) in areas.panes() {
            self.pane_mut(pane).on_resize(area);
        }
        if let Some(overlay) = &mut self.overlay {
            overlay.on_resize(areas.main);
        }
    }

    /// The keys the status bar offers now, most useful first: those of whatever has the
    /// keyboard (the open overlay, the feed filter, the chat input, or the focused pane),
    /// then the global ones that work there. A replay leaves out what it cannot do.
    pub fn hints(&self) -> Vec<Hint> {
        let ctx = self.ctx();
        let km = &self.keymap;
        if let Some(overlay) = &self.overlay {
            return overlay.hints(km, &ctx);
        }
        if let Some(pane) = Pane::ALL.into_iter().find(|p| self.pane(*p).grabs_keys()) {
            return self.pane(pane).hints(km, &ctx);
        }
        if self.typing && self.focus == Pane::Chat {
            // Only keys that act while typing: a plain `?` would type a `?`.
            let mut hints = vec![("Enter".to_string(), "send")];
            let typing = [
                (Action::Back, "panes"),
                (Action::Help, "help"),
                (Action::NextPane, "focus"),
                (Action::Grant, "grant"),
                (Action::Scenarios, "scenarios"),
            ];
            hints.extend(typing.into_iter().filter_map(|(a, what)| km.key_while_typing(a).map(|k| (k, what))));
            return hints;
        }
        let mut hints = self.pane(self.focus).hints(km, &ctx);
        let mut global = vec![(Action::Help, "help"), (Action::NextPane, "focus")];
        if !self.replay {
            global.extend([(Action::Grant, "grant"), (Action::Scenarios, "scenarios")]);
        }
        global.push((Action::Quit, "quit"));
        for (a, what) in global {
            let key = km.key_for(a);
            if !hints.iter().any(|(k, _)| *k == key) {
                hints.push((key, what));
            }
        }
        hints
    }

    pub fn on_key(&mut self, k: KeyEvent) -> Vec<Command> {
        let cmds = self.handle_key(k);
        // The confirmation overlay closed without an answer (Ctrl-C): that is a decline.
        if self.confirming.is_some() && !self.asking_open() {
            self.answer(false);
        }
        cmds
    }

    fn handle_key(&mut self, k: KeyEvent) -> Vec<Command> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        // A notice lasts until the next key, like an editor's message line: kept, it took
        // the status bar's room for the key hints for the rest of the session.
        self.notice = None;
        let ctx = self.ctx();
        if let Some(overlay) = &mut self.overlay {
            let Some(action) = self.keymap.action(&k, overlay.context()) else { return Vec::new() };
            return match overlay.on_action(action, &ctx) {
                Handled::NotMine => self.overlay_global(action),
                handled => self.apply(handled),
            };
        }
        if let Some(pane) = Pane::ALL.into_iter().find(|p| self.pane(*p).grabs_keys()) {
            let handled = self.pane_mut(pane).on_key(k, &ctx);
            return self.apply(handled);
        }
        let plain_char =
            matches!(k.code, KeyCode::Char(_)) && !k.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if self.typing && self.focus == Pane::Chat {
            // Plain characters always type, even when bound; other keys act when bound to
            // a `while_typing` action.
            let action = if plain_char { None } else { self.keymap.action(&k, Context::Typing) };
            if let Some(a) = action {
                return self.route(a);
            }
            let handled = self.chat.on_key(k, &ctx);
            return self.apply(handled);
        }
        match self.keymap.action(&k, Context::Panes) {
            Some(a) => self.route(a),
            None => Vec::new(),
        }
    }

    /// A pane action: the focused pane first, then the global actions.
    fn route(&mut self, a: Action) -> Vec<Command> {
        let ctx = self.ctx();
        match self.pane_mut(self.focus).on_action(a, &ctx) {
            Handled::NotMine => self.act(a),
            handled => self.apply(handled),
        }
    }

    /// Sends `a` to `pane` (not necessarily the focused one).
    fn send(&mut self, pane: Pane, a: Action) -> Vec<Command> {
        let ctx = self.ctx();
        let handled = self.pane_mut(pane).on_action(a, &ctx);
        self.apply(handled)
    }

    /// An overlay action the overlay left: closing it, and Ctrl-C (closes it and cancels).
    fn overlay_global(&mut self, a: Action) -> Vec<Command> {
        match a {
            Action::Close => {
                self.set_overlay(None);
                Vec::new()
            }
            Action::Cancel => {
                self.set_overlay(None);
                self.act(Action::Cancel)
            }
            _ => Vec::new(),
        }
    }

    /// Acts on what a component answered.
    fn apply(&mut self, handled: Handled) -> Vec<Command> {
        let Handled::Emit(msgs) = handled else { return Vec::new() };
        let mut cmds = Vec::new();
        for msg in msgs {
            match msg {
                Msg::Command(c) => {
                    if matches!(c, Command::Optimize(_)) {
                        self.optimizing = true;
                    }
                    cmds.push(c)
                }
                Msg::Notice(n) => self.notice = Some(n),
                Msg::Open(o) => self.set_overlay(Some(o)),
                Msg::Close => self.set_overlay(None),
                Msg::OpenOptimize => {
                    // "Run again" asks for a new job, not the finished one back.
                    self.optimize_kept = None;
                    self.open_optimize();
                }
                Msg::Submit(text) => cmds.extend(self.submit(text)),
                Msg::StartTyping if self.replay => self.notice = Some(format!("typing: {REPLAY_NOTICE}")),
                Msg::StartTyping => self.typing = true,
                Msg::Confirm(allow) => self.answer(allow),
            }
        }
        cmds
    }

    fn submit(&mut self, text: String) -> Vec<Command> {
        if self.replay {
            self.notice = Some(format!("requests: {REPLAY_NOTICE}"));
            return Vec::new();
        }
        if self.running.is_some() {
            self.notice = Some("a request is running: Ctrl-C cancels it".into());
            return Vec::new();
        }
        if self.optimizing {
            self.notice = Some("an optimization is running: Ctrl-C cancels it".into());
            return Vec::new();
        }
        self.last_request = Some(text.clone());
        vec![Command::Submit(text)]
    }

    /// The global actions (no component claimed them).
    fn act(&mut self, a: Action) -> Vec<Command> {
        match a {
            Action::Cancel => {
                if self.running.is_some() || self.optimizing {
                    self.notice = Some("cancelling…".into());
                    return vec![Command::Cancel];
                }
                self.quit = true;
                return vec![Command::Quit];
            }
            Action::Quit => {
                self.quit = true;
                let mut cmds = Vec::new();
                if self.running.is_some() || self.optimizing {
                    cmds.push(Command::Cancel);
                }
                cmds.push(Command::Quit);
                return cmds;
            }
            Action::Help => self.set_overlay(Some(Overlay::Help(HelpView::new(&self.keymap)))),
            Action::Optimize => self.open_optimize(),
            Action::NextPane => {
                self.focus = self.focus.next();
                self.typing = false;
            }
            Action::PrevPane => {
                self.focus = self.focus.prev();
                self.typing = false;
            }
            Action::Back => {
                if self.typing {
                    self.typing = false;
                } else {
                    // Esc clears the feed filter wherever the focus is.
                    return self.send(Pane::Feed, Action::Back);
                }
            }
            // What only a live session can do says so in a replay instead of doing nothing.
            Action::Input | Action::Grant | Action::Scenarios | Action::Rerun if self.replay => {
                let what = match a {
                    Action::Input => "typing",
                    Action::Grant => "the grant editor",
                    Action::Scenarios => "scenarios",
                    _ => "re-run",
                };
                self.notice = Some(format!("{what}: {REPLAY_NOTICE}"));
            }
            Action::Input => {
                self.focus = Pane::Chat;
                self.typing = true;
            }
            // The token pane knows the grant; it opens the editor.
            Action::Grant => return self.send(Pane::Token, Action::Grant),
            // The token pane knows the servers: these work from any pane.
            Action::Restart if self.replay => self.notice = Some(format!("restart: {REPLAY_NOTICE}")),
            Action::PrevServer | Action::NextServer | Action::Restart | Action::ServerLog | Action::AuthFlow => {
                return self.send(Pane::Token, a);
            }
            Action::Scenarios => {
                self.set_overlay(Some(Overlay::Scenarios(ScenarioPicker::new(self.info.scenarios.clone()))))
            }
            Action::Rerun => {
                if let Some(r) = self.last_request.clone() {
                    return self.submit(r);
                }
                self.notice = Some("nothing to re-run yet".into());
            }
            Action::Export => return vec![Command::Export],
            Action::Filter => {
                self.focus = Pane::Feed;
                return self.send(Pane::Feed, Action::Filter);
            }
            // Pane and overlay actions no one claimed.
            Action::Select
            | Action::Up
            | Action::Down
            | Action::PageUp
            | Action::PageDown
            | Action::Top
            | Action::Bottom
            | Action::Close
            | Action::Apply
            | Action::Toggle
            | Action::RegrantAndRun
            | Action::DefaultGrant
            | Action::Allow
            | Action::Decline => {}
        }
        Vec::new()
    }

    /// The wheel scrolls the pane under the pointer (three rows); a click focuses it. The
    /// panes are where [`view::layout`] puts them on a `screen` of this size.
    pub fn on_mouse(&mut self, m: MouseEvent, screen: Rect) {
        let Some(pane) = view::layout(screen).pane_at(Position::new(m.column, m.row)) else { return };
        match m.kind {
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let a = if m.kind == MouseEventKind::ScrollUp { Action::Up } else { Action::Down };
                for _ in 0..3 {
                    self.send(pane, a);
                }
            }
            MouseEventKind::Down(_) => {
                self.focus = pane;
                self.typing = pane == Pane::Chat && !self.replay;
            }
            _ => {}
        }
    }
}
