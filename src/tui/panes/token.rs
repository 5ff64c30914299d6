//! The Token & scopes pane, one server at a time (←/→ switches; a strip on top lists every
//! server with its state when there are several). For each server: how Warden
//! authenticates to it — an OAuth token in one of three states, verified ✓ (issuer,
//! client, audience, alg, kid from the verified claims), introspected by the authorization
//! server (what it said, never shown as verified), or opaque ("the server decides", with
//! only the token response's scopes and lifetime), with its expiry (countdown and gauge),
//! refreshes and fingerprint; static headers by name and fingerprint; or no auth at all —
//! whether it is down and why, and its tools against the scopes they need. A stdio
//! server's stderr is kept (the last [`LOG_LINES`] lines) for the server-log overlay, and
//! a crashed one can be restarted from here. Each server's OAuth timeline is kept (the last
//! `FLOW_ENTRIES`) for the auth-flow overlay (`A`), and its last few tokens — when, why
//! (initial, expiring, 401, regrant, step-up) and fingerprint — are listed under the token
//! details when the pane has rows to spare. A [`Component`]; asked for
//! [`Action::Grant`] it opens the grant editor on what it knows (the scopes the OAuth
//! servers' tools need and the scopes granted now).

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph};

use super::clip;
use crate::session::command::Command;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Keymap};
use crate::tui::overlays::Overlay;
use crate::tui::overlays::auth_flow::{AuthFlowView, FlowEntry, Timeline};
use crate::tui::overlays::detail::{DetailContent, StepDetail};
use crate::tui::overlays::grant::GrantEditor;
use crate::types::event::{
    Event, EventKind, OpaqueReason, RefreshReason, ScopeOrigin, ServerSummary, TokenInfo, TokenState,
};
use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;
use crate::types::tool::ToolHints;

/// stderr lines kept per stdio server for the server-log overlay.
pub const LOG_LINES: usize = 500;

/// Tokens kept per server for the history under the token details.
pub const HISTORY: usize = 4;

/// One token a server was issued, for the history.
#[derive(Debug, Clone)]
struct Issued {
    at_ms: u64,
    reason: RefreshReason,
    fingerprint: Fingerprint,
}

/// A tool and the scopes it needs.
#[derive(Debug, Clone)]
pub struct ToolScopes {
    pub server: String,
    pub name: String,
    pub required: ScopeSet,
    /// Its annotation hints, shown as a short marker (`hint_marker`).
    pub hints: ToolHints,
}

/// The matrix's marker for a tool's hints: `ro`, `idem`, `⚠` (destructive), `⚠ idem`,
/// nothing for a plain write, or `?` when the server declared none (treated as
/// destructive: calls ask first).
pub fn hint_marker(hints: &ToolHints) -> &'static str {
    hints.marker()
}

/// What the pane knows about one server.
#[derive(Debug, Clone)]
struct ServerView {
    summary: ServerSummary,
    token: Option<TokenInfo>,
    /// The last token failure (rejected or refused), cleared by the next good token.
    problem: Option<String>,
    /// Why it is down (the health probe, or a call that could not reach it); `None`: up.
    down: Option<String>,
    /// The last [`LOG_LINES`] lines of its stderr (stdio servers).
    log: VecDeque<String>,
    /// stderr lines no longer kept.
    log_dropped: u64,
    /// Its OAuth timeline, for the auth-flow overlay.
    flow: Timeline,
    /// Its last [`HISTORY`] tokens, newest first.
    history: VecDeque<Issued>,
}

impl ServerView {
    fn new(summary: ServerSummary) -> Self {
        Self {
            summary,
            token: None,
            problem: None,
            down: None,
            log: VecDeque::new(),
            log_dropped: 0,
            flow: Timeline::default(),
            history: VecDeque::new(),
        }
    }

    fn oauth(&self) -> bool {
        self.summary.auth == "oauth" || self.token.is_some()
    }

    fn stdio(&self) -> bool {
        self.summary.transport == "stdio"
    }
}

#[derive(Debug, Default)]
pub struct TokenPane {
    servers: Vec<ServerView>,
    /// The server shown (an index into `servers`).
    selected: usize,
    tools: Vec<ToolScopes>,
    /// Rows of the tool matrix scrolled off the top (clamped to what the last known area
    /// leaves hidden, and again when drawn).
    scroll: usize,
    /// The whole pane, from the last `on_resize` (empty until then).
    area: Rect,
}

/// How the pane lays out the selected server in `height` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Two summary lines instead of identity lines, gauge and fingerprint, so the matrix
    /// keeps the room (an 80×24 terminal).
    compact: bool,
    /// Rows left for the matrix.
    rows: usize,
    /// Rows of token history (its heading included; 0: none shown).
    history: usize,
}

impl TokenPane {
    /// A pane for these servers (in the order the console lists them) and their tools.
    pub fn new(servers: Vec<ServerSummary>, tools: Vec<ToolScopes>) -> Self {
        Self { servers: servers.into_iter().map(ServerView::new).collect(), tools, ..Self::default() }
    }

    /// The view of the server an event names; an event that names none (a recording made
    /// before tokens were per server) belongs to the first OAuth server, and when the pane
    /// knows no server at all (an old recording) one is made up for it.
    fn view_mut(&mut self, server: Option<&str>) -> &mut ServerView {
        let i = match server {
            Some(name) => self.servers.iter().position(|s| s.summary.name == name),
            None => self.servers.iter().position(|s| s.summary.auth == "oauth" || s.summary.auth.is_empty()),
        };
        let i = match i {
            Some(i) => i,
            None => {
                let name = server.unwrap_or("(server)").to_string();
                let auth = if server.is_none() { "oauth" } else { "" };
                self.servers.push(ServerView::new(ServerSummary {
                    name,
                    transport: String::new(),
                    endpoint: String::new(),
                    auth: auth.into(),
                    headers: Vec::new(),
                }));
                self.servers.len() - 1
            }
        };
        &mut self.servers[i]
    }

    pub fn ingest(&mut self, e: &Event) {
        if let Some((server, entry)) = FlowEntry::of(e) {
            self.view_mut(server).flow.push(entry);
        }
        match &e.kind {
            EventKind::TokenIssued { token, server, reason } => {
                let v = self.view_mut(server.as_deref());
                v.token = Some(token.clone());
                v.problem = None;
                v.history.push_front(Issued {
                    at_ms: e.at_ms,
                    reason: *reason,
                    fingerprint: token.fingerprint.clone(),
                });
                v.history.truncate(HISTORY);
            }
            EventKind::TokenRejected { check, detail, server } => {
                self.view_mut(server.as_deref()).problem = Some(format!("✗ rejected ({check}): {detail}"))
            }
            EventKind::TokenError { detail, server } => {
                self.view_mut(server.as_deref()).problem = Some(format!("✗ {detail}"))
            }
            EventKind::ServerHealth { server, up, detail } => {
                self.view_mut(Some(server)).down = (!up).then(|| detail.clone());
            }
            EventKind::ToolResult { tool, outcome, attempts, .. } if *attempts > 0 => match outcome.server_reached() {
                Some(true) => self.view_mut(Some(&tool.server)).down = None,
                Some(false) => {
                    let v = self.view_mut(Some(&tool.server));
                    if v.down.is_none() {
                        v.down = Some(format!("a call to {} could not reach it", tool.name));
                    }
                }
                None => {}
            },
            EventKind::ServerStderr { server, line } => {
                let v = self.view_mut(Some(server));
                if v.log.len() == LOG_LINES {
                    v.log.pop_front();
                    v.log_dropped += 1;
                }
                v.log.push_back(line.clone());
            }
            _ => {}
        }
    }

    /// The grant of the server shown, or else of the first server with a token.
    pub fn granted(&self) -> ScopeSet {
        let token = self
            .selected()
            .and_then(|s| s.token.as_ref())
            .or_else(|| self.servers.iter().find_map(|s| s.token.as_ref()));
        token.map(|t| t.granted.clone()).unwrap_or_default()
    }

    /// Every scope some tool of an OAuth server needs (what a grant can change).
    pub fn offered(&self) -> ScopeSet {
        let mut offered = ScopeSet::new();
        let oauth =
            |name: &str| self.servers.iter().any(|s| s.summary.name == name && s.oauth()) || self.servers.is_empty();
        for t in self.tools.iter().filter(|t| oauth(&t.server)) {
            for s in t.required.iter() {
                offered.insert(s.clone());
            }
        }
        offered
    }

    fn selected(&self) -> Option<&ServerView> {
        self.servers.get(self.selected)
    }

    /// The tools of the server shown.
    fn shown_tools(&self) -> Vec<&ToolScopes> {
        match self.selected() {
            Some(s) => self.tools.iter().filter(|t| t.server == s.summary.name).collect(),
            None => self.tools.iter().collect(),
        }
    }

    fn scroll(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        self.scroll = if delta < 0 { self.scroll.saturating_sub(n) } else { self.scroll.saturating_add(n) };
    }

    fn select(&mut self, delta: isize) {
        let n = self.servers.len();
        if n > 1 {
            self.selected = (self.selected as isize + delta).rem_euclid(n as isize) as usize;
            self.scroll = 0;
        }
    }

    /// Rows of the matrix (tools of the server shown).
    fn matrix_len(&self) -> usize {
        self.shown_tools().len()
    }

    /// Lines above the server's own section: the server strip when there are several.
    fn strip_len(&self) -> usize {
        usize::from(self.servers.len() > 1)
    }

    /// Lines of the selected server's section before the matrix, full or compact.
    fn head_len(&self, compact: bool) -> usize {
        let Some(v) = self.selected() else { return 1 };
        let problem = usize::from(v.problem.is_some());
        // Why, and for a stdio server the keys that help.
        let down = if v.down.is_some() { 1 + usize::from(v.stdio()) } else { 0 };
        match &v.token {
            // Identity (5), problem, gauge, refreshes and granted, a blank line.
            Some(_) if !compact => 5 + problem + down + 1 + 2 + 1,
            // Expiry and granted, the problem.
            Some(_) => 2 + problem + down,
            // What it is (1–2 lines), why no token (oauth), down.
            None => 2 + usize::from(v.oauth()) + down,
        }
    }

    /// The layout for an inner height: full when everything fits, compact otherwise.
    ///
    /// The token history takes only rows the matrix leaves (a heading and at least one
    /// token, else nothing), so a short pane drops it before any tool.
    fn plan(&self, height: usize) -> Plan {
        // The matrix header.
        let fixed = self.strip_len() + 1;
        let full = fixed + self.head_len(false);
        let compact = height < full + self.matrix_len();
        let head = if compact { fixed + self.head_len(true) } else { full };
        let tokens = self.selected().filter(|v| v.token.is_some()).map_or(0, |v| v.history.len());
        let spare = height.saturating_sub(head + self.matrix_len());
        let history = if spare >= 2 && tokens > 0 { 1 + tokens.min(spare - 1) } else { 0 };
        Plan { compact, rows: height.saturating_sub(head + history), history }
    }

    /// The token history: a heading and the newest `rows - 1` tokens.
    fn history_lines(theme: &crate::tui::theme::Theme, v: &ServerView, rows: usize, w: usize) -> Vec<Line<'static>> {
        if rows == 0 {
            return Vec::new();
        }
        let mut lines = vec![Line::styled(clip("recent tokens", w), theme.muted())];
        for t in v.history.iter().take(rows - 1) {
            let style = match t.reason {
                RefreshReason::StepUp | RefreshReason::Unauthorized => theme.colored(theme.warn),
                _ => theme.text(),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("  {} ", crate::tui::panes::clock(t.at_ms)), theme.muted()),
                Span::styled(format!("{:<9}", t.reason.label()), style),
                Span::raw(clip(&t.fingerprint.to_string(), w.saturating_sub(21))),
            ]));
        }
        lines
    }

    /// Matrix rows hidden below at this inner height (what the scroll can reach).
    fn max_scroll(&self, height: usize) -> usize {
        self.matrix_len().saturating_sub(self.plan(height).rows)
    }

    fn clamp_scroll(&mut self) {
        if !self.area.is_empty() {
            let height = Block::default().borders(Borders::ALL).inner(self.area).height as usize;
            self.scroll = self.scroll.min(self.max_scroll(height));
        }
    }

    /// The matrix of the server shown, for a text width `w`: a 26-wide name column when
    /// there is room; in a narrow pane names are clipped so the scopes keep ten columns.
    /// Against a token each row says whether the grant covers the tool; a server without
    /// OAuth has no grant to compare with, and its rows say so.
    fn matrix(
        &self,
        theme: &crate::tui::theme::Theme,
        token: Option<&TokenInfo>,
        oauth: bool,
        w: usize,
    ) -> Vec<Line<'static>> {
        // An opaque token whose scopes nobody stated: the server decides each call.
        let unknown = token.is_some_and(|t| matches!(t.state, TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. }));
        const NAME: usize = 26;
        const NEEDS: usize = 10;
        let tools = self.shown_tools();
        let longest = tools.iter().map(|t| t.name.chars().count()).max().unwrap_or(4);
        // The hint column is as wide as the widest marker (`ro`, `⚠ idem`), so it costs
        // the names little at 80×24.
        let hint_w = tools.iter().map(|t| hint_marker(&t.hints).chars().count()).max().unwrap_or(0) + 1;
        let name_w = if w >= NAME + 3 + hint_w + NEEDS {
            NAME
        } else {
            longest.min(w.saturating_sub(3 + hint_w + NEEDS)).clamp(6, NAME)
        };
        let needs_w = w.saturating_sub(name_w + 3 + hint_w);
        let mut lines = Vec::with_capacity(tools.len() + 1);
        lines.push(Line::styled(format!("  {:<name_w$} {:<hint_w$}needs", "tool", ""), theme.muted()));
        for tool in tools {
            let missing = token.map(|t| t.missing(&tool.required)).unwrap_or_else(|| tool.required.clone());
            let (glyph, color) = if !oauth {
                ("·", theme.muted)
            } else if unknown || token.is_none() {
                ("?", theme.warn)
            } else if missing.is_empty() {
                ("✓", theme.ok)
            } else {
                ("✗", theme.denied)
            };
            let needs = match (tool.required.is_empty(), oauth) {
                (true, true) => "(not advertised)".to_string(),
                (true, false) => "—".to_string(),
                (false, _) => tool.required.to_string(),
            };
            let style =
                if !oauth || missing.is_empty() || token.is_none() { theme.text() } else { theme.colored(color) };
            lines.push(Line::from(vec![
                Span::styled(format!("{glyph} "), theme.colored(color).add_modifier(Modifier::BOLD)),
                Span::raw(format!("{:<name_w$} ", clip(&tool.name, name_w))),
                Span::styled(
                    format!("{:<hint_w$}", hint_marker(&tool.hints)),
                    if tool.hints.is_destructive() { theme.colored(theme.warn) } else { theme.muted() },
                ),
                Span::styled(clip(&needs, needs_w), style),
            ]));
        }
        lines
    }

    /// The strip of servers: each with its state, the one shown highlighted. When the
    /// names do not all fit, the one shown keeps its name and the others share what is
    /// left (cut, never dropped: a server that is down must stay visible).
    fn strip(&self, theme: &crate::tui::theme::Theme, w: usize) -> Line<'static> {
        let n = self.servers.len();
        let full: usize = self.servers.iter().map(|v| v.summary.name.chars().count() + 4).sum();
        let others_w = if full <= w || n < 2 {
            usize::MAX
        } else {
            let shown = self.selected().map_or(0, |v| v.summary.name.chars().count() + 4);
            // Each other server: glyph, space, name, two spaces.
            (w.saturating_sub(shown) / (n - 1)).saturating_sub(4).max(1)
        };
        let mut spans = Vec::new();
        for (i, v) in self.servers.iter().enumerate() {
            let (glyph, color) = if v.down.is_some() { ("✖", theme.error) } else { ("●", theme.ok) };
            let name = if i == self.selected { v.summary.name.clone() } else { clip(&v.summary.name, others_w) };
            let style = if i == self.selected {
                theme.colored(color).add_modifier(Modifier::BOLD | Modifier::REVERSED)
            } else {
                theme.colored(color)
            };
            spans.push(Span::styled(format!("{glyph} {name}"), style));
            spans.push(Span::raw("  "));
        }
        Line::from(spans)
    }

    /// What the server is and how Warden authenticates to it, when it holds no token:
    /// static headers by name and fingerprint, no auth, or an OAuth server still waiting
    /// for one (and why).
    fn no_token_lines(&self, theme: &crate::tui::theme::Theme, v: &ServerView, w: usize) -> Vec<Line<'static>> {
        let bold = |c| theme.colored(c).add_modifier(Modifier::BOLD);
        let what = if v.stdio() { format!("$ {}", v.summary.endpoint) } else { v.summary.endpoint.clone() };
        let first = match v.summary.auth.as_str() {
            "headers" => {
                let headers: Vec<String> =
                    v.summary.headers.iter().map(|(name, fp)| format!("{name} (fp {fp})")).collect();
                Line::from(vec![
                    Span::styled("⚿ static headers ", bold(theme.info)),
                    Span::raw(clip(&headers.join(", "), w.saturating_sub(17))),
                ])
            }
            "oauth" => Line::styled(clip("OAuth: no token yet", w), bold(theme.warn)),
            _ if v.stdio() => Line::styled(clip("○ no auth: a local process (stdio)", w), bold(theme.info)),
            _ => Line::styled(clip("○ no auth: Warden sends no credentials", w), bold(theme.info)),
        };
        let mut lines = vec![first, Line::styled(clip(&what, w), theme.muted())];
        if v.oauth() {
            let why = v.problem.clone().unwrap_or_else(|| "No token yet.".into());
            lines.push(Line::styled(clip(&why, w), theme.colored(theme.error)));
        }
        lines
    }

    /// The lines of a server that is down: why, and for a stdio server the keys that help.
    fn down_lines(theme: &crate::tui::theme::Theme, v: &ServerView, keymap: &Keymap, w: usize) -> Vec<Line<'static>> {
        let Some(detail) = &v.down else { return Vec::new() };
        let mut lines = vec![Line::styled(
            clip(&format!("✖ down: {detail}"), w),
            theme.colored(theme.error).add_modifier(Modifier::BOLD),
        )];
        if v.stdio() {
            let keys = format!(
                "  {} restart · {} its stderr",
                keymap.key_for(Action::Restart),
                keymap.key_for(Action::ServerLog)
            );
            lines.push(Line::styled(clip(&keys, w), theme.colored(theme.warn)));
        }
        lines
    }

    /// The server-log overlay for the server shown.
    fn log_overlay(&self) -> Option<Overlay> {
        let v = self.selected()?;
        let kept = v.log.len() as u64;
        let meta = match (kept, v.log_dropped) {
            (0, _) => "nothing written to stderr".to_string(),
            (n, 0) => crate::types::text::counted(n, "line", "lines"),
            (n, d) => format!("the last {} ({d} earlier not kept)", crate::types::text::counted(n, "line", "lines")),
        };
        let text = if v.log.is_empty() {
            if v.stdio() {
                "The server has written nothing to its stderr.".to_string()
            } else {
                "Only stdio servers have a stderr to show; an HTTP server's logs are on its host.".to_string()
            }
        } else {
            v.log.iter().cloned().collect::<Vec<_>>().join("\n")
        };
        Some(Overlay::Detail(StepDetail::new(DetailContent {
            title: "Server stderr",
            kind: v.summary.name.clone(),
            meta,
            rows: Vec::new(),
            text,
        })))
    }
}

impl Component for TokenPane {
    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled {
        match action {
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-super::PAGE),
            Action::PageDown => self.scroll(super::PAGE),
            Action::Top => self.scroll = 0,
            Action::Bottom => self.scroll = usize::MAX,
            Action::PrevServer => self.select(-1),
            Action::NextServer => self.select(1),
            Action::Grant => {
                return Handled::emit(Msg::Open(Overlay::Grant(GrantEditor::new(&self.offered(), &self.granted()))));
            }
            Action::AuthFlow => {
                return match self.selected() {
                    Some(v) => Handled::emit(Msg::Open(Overlay::AuthFlow(AuthFlowView::new(
                        v.summary.name.clone(),
                        v.flow.clone(),
                    )))),
                    None => Handled::emit(Msg::Notice("no server to show".into())),
                };
            }
            Action::ServerLog => {
                return match self.log_overlay() {
                    Some(o) => Handled::emit(Msg::Open(o)),
                    None => Handled::emit(Msg::Notice("no server to show".into())),
                };
            }
            Action::Restart => {
                // The server shown when it is a stdio server; else the stdio server that is
                // down (the status bar names it; the operator need not find it first).
                let down_stdio: Vec<&ServerView> =
                    self.servers.iter().filter(|v| v.stdio() && v.down.is_some()).collect();
                let target = match self.selected() {
                    Some(v) if v.stdio() => Some(v),
                    _ if down_stdio.len() == 1 => Some(down_stdio[0]),
                    _ => None,
                };
                return if ctx.replay {
                    Handled::emit(Msg::Notice(format!("restart: {}", crate::tui::overlays::grant::REPLAY_NOTICE)))
                } else if let Some(v) = target {
                    let name = v.summary.name.clone();
                    Handled::Emit(vec![
                        Msg::Notice(format!("restarting {name}…")),
                        Msg::Command(Command::Restart(name)),
                    ])
                } else {
                    let notice = match self.selected() {
                        Some(v) if !down_stdio.is_empty() => {
                            format!("{} is an HTTP server; pick the stdio server to restart with ←/→", v.summary.name)
                        }
                        Some(v) => format!(
                            "{} is an HTTP server: Warden reconnects by itself when it answers again",
                            v.summary.name
                        ),
                        None => "no server to restart".to_string(),
                    };
                    Handled::emit(Msg::Notice(notice))
                };
            }
            _ => return Handled::NotMine,
        }
        self.clamp_scroll();
        Handled::Consumed
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
        self.clamp_scroll();
    }

    fn on_resize(&mut self, area: Rect) {
        self.area = area;
        self.clamp_scroll();
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        let mut hints = Vec::new();
        if self.servers.len() > 1 {
            hints.push((format!("{}/{}", k(Action::PrevServer), k(Action::NextServer)), "server"));
        }
        if self.selected().is_some_and(|v| v.oauth() || !v.flow.is_empty()) {
            hints.push((k(Action::AuthFlow), "auth flow"));
        }
        if let Some(v) = self.selected().filter(|v| v.stdio()) {
            if v.down.is_some() {
                hints.push((k(Action::Restart), "restart"));
            }
            hints.push((k(Action::ServerLog), "stderr"));
        }
        let height = Block::default().borders(Borders::ALL).inner(self.area).height as usize;
        if self.max_scroll(height) > 0 {
            hints.push((format!("{}/{}", k(Action::Down), k(Action::Up)), "scroll the tools"));
        }
        hints
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, focused, now) = (ctx.theme, ctx.focused, ctx.now);
        let title = match self.servers.len() {
            0 | 1 => " Token & scopes ".to_string(),
            n => format!(" Token & scopes · server {} of {n} ", self.selected + 1),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused))
            .title(Span::styled(title, theme.colored(theme.accent)));
        let mut inner = block.inner(area);
        f.render_widget(block, area);
        let w = inner.width as usize;
        if self.servers.len() > 1 && inner.height > 0 {
            let [strip, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
            f.render_widget(Paragraph::new(self.strip(theme, w)), strip);
            inner = rest;
        }
        let Some(v) = self.selected() else {
            f.render_widget(Paragraph::new(Line::styled("No token yet.", theme.colored(theme.error))), inner);
            return;
        };
        let plan = self.plan(inner.height as usize + self.strip_len());
        let oauth = v.oauth();
        let mut matrix = self.matrix(theme, v.token.as_ref(), oauth, w);
        // The header stays; the tools scroll under it.
        let skip = self.scroll.min(self.max_scroll(inner.height as usize + self.strip_len()));
        matrix.drain(1..(1 + skip).min(matrix.len()));
        let down = Self::down_lines(theme, v, ctx.keymap, w);
        let Some(t) = &v.token else {
            let mut lines = self.no_token_lines(theme, v, w);
            lines.extend(down);
            lines.extend(matrix);
            f.render_widget(Paragraph::new(lines), inner);
            return;
        };
        let left = t.seconds_to_expiry(now);
        // No lifetime known (no expires_in): an empty gauge, and the countdown says why.
        let ratio = match (left, t.expires_at) {
            (Some(left), Some(at)) => {
                (left.max(0) as f64 / at.saturating_sub(t.issued_at).max(1) as f64).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        let expiry_color = match left {
            None => theme.warn,
            Some(l) if l <= 0 => theme.error,
            Some(l) if l < 120 => theme.warn,
            Some(_) => theme.ok,
        };
        let countdown = match left {
            Some(l) if l > 0 => format!("{}m{:02}s left", l / 60, l % 60),
            Some(l) => format!("EXPIRED {}s ago", -l),
            None => "expiry unknown (no expires_in)".into(),
        };
        let label = |s: &'static str| Span::styled(format!("{s:<10}"), theme.muted());
        let granted_text = match &t.state {
            TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. } => "unknown: the server decides".to_string(),
            TokenState::Opaque { scopes: ScopeOrigin::RequestedNotConfirmed, .. } => {
                format!("{} (requested, not confirmed)", t.granted)
            }
            _ => t.granted.to_string(),
        };
        let granted_line = Line::from(vec![
            label("granted"),
            Span::styled(clip(&granted_text, w.saturating_sub(10)), theme.colored(theme.info)),
        ]);
        let problem = v.problem.as_ref().map(|p| Line::styled(clip(p, w), theme.colored(theme.error)));
        let history = Self::history_lines(theme, v, plan.history, w);
        let bold = |c| theme.colored(c).add_modifier(Modifier::BOLD);
        if plan.compact {
            let badge = match &t.state {
                TokenState::Verified(v) => vec![
                    Span::styled("✓ verified ", bold(theme.ok)),
                    Span::styled(format!("{} · ", v.alg), theme.muted()),
                ],
                TokenState::Opaque { .. } => vec![Span::styled("◌ opaque: the server decides · ", bold(theme.warn))],
                TokenState::Introspected(_) => vec![Span::styled("◑ introspected by the AS · ", bold(theme.info))],
            };
            let mut first = badge;
            first.push(Span::styled(countdown, theme.colored(expiry_color)));
            let mut lines = vec![Line::from(first), granted_line];
            lines.extend(problem);
            lines.extend(down);
            lines.extend(history);
            lines.extend(matrix);
            f.render_widget(Paragraph::new(lines), inner);
            return;
        }
        let value = |s: &str| Span::raw(clip(s, w.saturating_sub(10)));
        // Five identity lines in every state (the plan counts them).
        let mut head = match &t.state {
            TokenState::Verified(v) => vec![
                Line::from(vec![
                    Span::styled("✓ verified", bold(theme.ok)),
                    Span::styled(format!("  {} · kid {}", v.alg, clip(&v.kid, w.saturating_sub(22))), theme.muted()),
                ]),
                Line::from(vec![label("issuer"), value(&v.issuer)]),
                Line::from(vec![label("client"), value(&format!("{} (sub {})", v.client_id, v.subject))]),
                Line::from(vec![label("audience"), value(&v.audience.join(", "))]),
            ],
            TokenState::Opaque { why, scopes, introspection } => vec![
                Line::styled(clip("◌ opaque token: the server decides", w), bold(theme.warn)),
                Line::from(vec![
                    label("why"),
                    value(match why {
                        OpaqueReason::NotJwt => "not a JWT: nothing to verify here",
                        OpaqueReason::NoJwks => "the issuer publishes no keys",
                    }),
                ]),
                Line::from(vec![
                    label("scopes"),
                    value(match scopes {
                        ScopeOrigin::TokenResponse => "from the token response",
                        ScopeOrigin::RequestedNotConfirmed => "requested, not confirmed",
                        ScopeOrigin::Unknown => "none stated by the server",
                    }),
                ]),
                Line::from(vec![
                    label("AS check"),
                    value(introspection.as_deref().unwrap_or("introspection not offered")),
                ]),
            ],
            TokenState::Introspected(i) => vec![
                Line::styled(clip("◑ introspected by the authorization server", w), bold(theme.info)),
                Line::from(vec![label("active"), value(if i.active { "yes" } else { "no" })]),
                Line::from(vec![
                    label("client"),
                    value(&match (&i.client_id, &i.sub) {
                        (Some(c), Some(s)) => format!("{c} (sub {s})"),
                        (Some(c), None) => c.clone(),
                        (None, Some(s)) => format!("(not stated) (sub {s})"),
                        (None, None) => "(not stated)".into(),
                    }),
                ]),
                Line::from(vec![
                    label(""),
                    Span::styled(clip("not verified locally", w.saturating_sub(10)), theme.muted()),
                ]),
            ],
        };
        head.push(Line::from(vec![label("expires"), Span::styled(countdown.clone(), theme.colored(expiry_color))]));
        head.extend(problem);
        head.extend(down);
        let [top, gauge, bottom] =
            Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Length(1), Constraint::Min(0)])
                .areas(inner);
        f.render_widget(Paragraph::new(head), top);
        f.render_widget(
            Gauge::default()
                .ratio(ratio)
                .label(format!("{:.0}%", ratio * 100.0))
                .gauge_style(theme.colored(expiry_color))
                .use_unicode(true),
            gauge,
        );
        let mut lines = vec![
            Line::from(vec![
                label("refreshes"),
                Span::raw(t.refresh_count.to_string()),
                Span::styled("  fp ", theme.muted()),
                Span::raw(t.fingerprint.to_string()),
            ]),
            granted_line,
        ];
        lines.extend(history);
        lines.push(Line::raw(""));
        lines.extend(matrix);
        f.render_widget(Paragraph::new(lines), bottom);
    }
}
