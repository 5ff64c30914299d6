//! The console's state and its update rules. `App` routes events to the panes and turns
//! keys into pane actions or `Command`s for the core; it never touches the network.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::keymap::{Action, Keymap};
use super::overlays::grant::GrantEditor;
use super::panes::Pane;
use super::panes::chat::{ChatPane, InputOutcome};
use super::panes::feed::FeedPane;
use super::panes::token::{TokenPane, ToolScopes};
use super::panes::trace::{TraceEntry, TracePane};
use super::theme::Theme;
use crate::session::command::Command;
use crate::session::scenario::Scenario;
use crate::types::event::{Event, EventKind};
use crate::types::scope::ScopeSet;

/// Static facts about the session, known at start.
#[derive(Debug, Clone, Default)]
pub struct ConsoleInfo {
    pub servers: Vec<(String, String)>,
    pub model: String,
    pub tools: Vec<ToolScopes>,
    pub scenarios: Vec<Scenario>,
    /// "LIVE" or "REPLAY <file>".
    pub mode: String,
}

#[derive(Debug, Clone)]
pub enum Overlay {
    Help { scroll: usize },
    Grant(GrantEditor),
    Scenarios { selected: usize },
    Detail { entry: Box<TraceEntry>, scroll: usize },
}

pub struct App {
    pub info: ConsoleInfo,
    pub theme: Theme,
    pub keymap: Keymap,
    pub focus: Pane,
    /// The chat input has the keyboard.
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
    /// Epoch seconds used for countdowns (set on every tick).
    pub now: u64,
    pub events_seen: u64,
    /// Where each pane was drawn last frame (for the mouse).
    pub areas: Vec<(Pane, Rect)>,
}

impl App {
    pub fn new(info: ConsoleInfo, theme: Theme, keymap: Keymap, replay: bool) -> Self {
        let token = TokenPane::new(info.tools.clone());
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
            now: crate::types::time::now_epoch(),
            events_seen: 0,
            areas: Vec::new(),
        }
    }

    pub fn ingest(&mut self, e: &Event) {
        self.events_seen += 1;
        match &e.kind {
            EventKind::RunStarted { request, .. } => {
                self.running = Some((e.run_id.clone().unwrap_or_default(), None));
                self.last_request = Some(request.clone());
            }
            EventKind::RunFinished { .. } => self.running = None,
            EventKind::Thought { .. } => {
                if let Some((_, step)) = &mut self.running {
                    *step = e.step;
                }
            }
            _ => {}
        }
        self.chat.ingest(e);
        self.trace.ingest(e);
        self.token.ingest(e);
        self.feed.ingest(e);
    }

    pub fn on_key(&mut self, k: KeyEvent) -> Vec<Command> {
        if k.kind == KeyEventKind::Release {
            return Vec::new();
        }
        if self.overlay.is_some() {
            return self.overlay_key(k);
        }
        if self.feed.editing_filter {
            match k.code {
                KeyCode::Esc => {
                    self.feed.editing_filter = false;
                    self.feed.filter.clear();
                }
                KeyCode::Enter => self.feed.editing_filter = false,
                KeyCode::Backspace => {
                    self.feed.filter.pop();
                }
                KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => self.feed.filter.push(c),
                _ => {}
            }
            self.feed.cursor.selected = 0;
            return Vec::new();
        }
        let plain_char =
            matches!(k.code, KeyCode::Char(_)) && !k.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        if self.typing && self.focus == Pane::Chat {
            let action = if plain_char { None } else { self.keymap.action(&k, true) };
            if let Some(a) = action {
                return self.act(a);
            }
            return match self.chat.key(k) {
                InputOutcome::Submit(text) => self.submit(text),
                InputOutcome::Edited => Vec::new(),
            };
        }
        match self.keymap.action(&k, false) {
            Some(a) => self.act(a),
            None => Vec::new(),
        }
    }

    fn submit(&mut self, text: String) -> Vec<Command> {
        if self.replay {
            self.notice = Some("replay: requests are not sent".into());
            return Vec::new();
        }
        if self.running.is_some() {
            self.notice = Some("a request is running: Ctrl-C cancels it".into());
            return Vec::new();
        }
        self.last_request = Some(text.clone());
        vec![Command::Submit(text)]
    }

    fn act(&mut self, a: Action) -> Vec<Command> {
        let page = 10;
        match a {
            Action::Cancel => {
                if self.running.is_some() {
                    self.notice = Some("cancelling…".into());
                    return vec![Command::Cancel];
                }
                self.quit = true;
                return vec![Command::Quit];
            }
            Action::Quit => {
                self.quit = true;
                let mut cmds = Vec::new();
                if self.running.is_some() {
                    cmds.push(Command::Cancel);
                }
                cmds.push(Command::Quit);
                return cmds;
            }
            Action::Help => self.overlay = Some(Overlay::Help { scroll: 0 }),
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
                } else if !self.feed.filter.is_empty() {
                    self.feed.filter.clear();
                }
            }
            Action::Input => {
                self.focus = Pane::Chat;
                self.typing = true;
            }
            Action::Grant => {
                let mut offered = ScopeSet::new();
                for t in &self.info.tools {
                    for s in t.required.iter() {
                        offered.insert(s.clone());
                    }
                }
                self.overlay = Some(Overlay::Grant(GrantEditor::new(&offered, &self.token.granted())));
            }
            Action::Scenarios => self.overlay = Some(Overlay::Scenarios { selected: 0 }),
            Action::Rerun => {
                if let Some(r) = self.last_request.clone() {
                    return self.submit(r);
                }
                self.notice = Some("nothing to re-run yet".into());
            }
            Action::Export => return vec![Command::Export],
            Action::Filter => {
                self.focus = Pane::Feed;
                self.feed.editing_filter = true;
            }
            Action::Select => match self.focus {
                Pane::Chat => self.typing = true,
                Pane::Trace => {
                    if let Some(entry) = self.trace.selected().cloned() {
                        self.overlay = Some(Overlay::Detail { entry: Box::new(entry), scroll: 0 });
                    }
                }
                _ => {}
            },
            Action::Up => self.scroll(self.focus, -1),
            Action::Down => self.scroll(self.focus, 1),
            Action::PageUp => self.scroll(self.focus, -page),
            Action::PageDown => self.scroll(self.focus, page),
            Action::Top => match self.focus {
                Pane::Trace => self.trace.cursor.top(),
                Pane::Feed => self.feed.cursor.top(),
                Pane::Chat => self.chat.scroll_back = usize::MAX,
                Pane::Token => self.token.scroll = 0,
            },
            Action::Bottom => match self.focus {
                Pane::Trace => self.trace.cursor.bottom(self.trace.entries.len()),
                Pane::Feed => {
                    let n = self.feed.visible().len();
                    self.feed.cursor.down(n, n);
                }
                Pane::Chat => self.chat.scroll_back = 0,
                Pane::Token => self.token.scroll = usize::MAX / 2,
            },
        }
        Vec::new()
    }

    /// Moves the selection (or scrolls) in `pane` by `delta` rows.
    pub fn scroll(&mut self, pane: Pane, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        match pane {
            Pane::Trace => {
                let len = self.trace.entries.len();
                if delta < 0 {
                    if self.trace.cursor.follow {
                        self.trace.cursor.selected = len.saturating_sub(1);
                    }
                    self.trace.cursor.up(n);
                } else {
                    self.trace.cursor.down(n, len);
                    if self.trace.cursor.selected + 1 >= len {
                        self.trace.cursor.follow = true;
                    }
                }
            }
            Pane::Feed => {
                let len = self.feed.visible().len();
                if delta < 0 { self.feed.cursor.up(n) } else { self.feed.cursor.down(n, len) }
            }
            Pane::Chat => {
                self.chat.scroll_back = if delta < 0 {
                    self.chat.scroll_back.saturating_add(n)
                } else {
                    self.chat.scroll_back.saturating_sub(n)
                };
            }
            Pane::Token => {
                self.token.scroll =
                    if delta < 0 { self.token.scroll.saturating_sub(n) } else { self.token.scroll.saturating_add(n) };
            }
        }
    }

    pub fn on_mouse(&mut self, m: MouseEvent) {
        let pos = Position::new(m.column, m.row);
        let Some(pane) = self.areas.iter().find(|(_, r)| r.contains(pos)).map(|(p, _)| *p) else { return };
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll(pane, -3),
            MouseEventKind::ScrollDown => self.scroll(pane, 3),
            MouseEventKind::Down(_) => {
                self.focus = pane;
                self.typing = pane == Pane::Chat && !self.replay;
            }
            _ => {}
        }
    }

    fn overlay_key(&mut self, k: KeyEvent) -> Vec<Command> {
        let Some(overlay) = self.overlay.as_mut() else { return Vec::new() };
        let down = matches!(k.code, KeyCode::Down | KeyCode::Char('j'));
        let up = matches!(k.code, KeyCode::Up | KeyCode::Char('k'));
        if k.code == KeyCode::Esc || (k.code == KeyCode::Char('q') && !matches!(overlay, Overlay::Grant(_))) {
            self.overlay = None;
            return Vec::new();
        }
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            self.overlay = None;
            return self.act(Action::Cancel);
        }
        match overlay {
            Overlay::Help { scroll } | Overlay::Detail { scroll, .. } => {
                if down {
                    *scroll += 1;
                } else if up {
                    *scroll = scroll.saturating_sub(1);
                } else if k.code == KeyCode::PageDown {
                    *scroll += 10;
                } else if k.code == KeyCode::PageUp {
                    *scroll = scroll.saturating_sub(10);
                } else if matches!(k.code, KeyCode::Char('?') | KeyCode::Enter) {
                    self.overlay = None;
                }
            }
            Overlay::Scenarios { selected } => {
                let len = self.info.scenarios.len();
                if down {
                    *selected = (*selected + 1).min(len.saturating_sub(1));
                } else if up {
                    *selected = selected.saturating_sub(1);
                } else if k.code == KeyCode::Enter && len > 0 {
                    let i = *selected;
                    self.overlay = None;
                    if self.replay || self.running.is_some() {
                        self.notice = Some(if self.replay {
                            "replay: scenarios are not run".into()
                        } else {
                            "a request is running".into()
                        });
                        return Vec::new();
                    }
                    return vec![Command::RunScenario(i)];
                }
            }
            Overlay::Grant(g) => match k.code {
                KeyCode::Char(' ') => g.toggle(),
                _ if down => g.down(),
                _ if up => g.up(),
                KeyCode::Enter => {
                    let chosen = g.chosen();
                    self.overlay = None;
                    self.notice = Some(format!(
                        "re-token with: {}",
                        if chosen.is_empty() { "(no scopes)".into() } else { chosen.to_string() }
                    ));
                    return vec![Command::Regrant(Some(chosen))];
                }
                KeyCode::Char('r') => {
                    let chosen = g.chosen();
                    self.overlay = None;
                    return match (self.last_request.clone(), self.running.is_some()) {
                        (Some(req), false) if !self.replay => vec![Command::RegrantAndRun(Some(chosen), req)],
                        _ => {
                            self.notice = Some("re-token only: nothing to re-run".into());
                            vec![Command::Regrant(Some(chosen))]
                        }
                    };
                }
                KeyCode::Char('d') => {
                    self.overlay = None;
                    return vec![Command::Regrant(None)];
                }
                _ => {}
            },
        }
        Vec::new()
    }
}
