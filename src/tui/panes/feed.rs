//! The Feed pane: permission failures (tool, missing scopes, client- or server-side), rate
//! limits, retries, errors, real grant changes, anomalies and the end of an optimization — newest first, each with a
//! severity glyph as well as a colour. Enter opens the whole entry (a denial's required and
//! granted scopes, HTTP status and `WWW-Authenticate`; an anomaly's evidence) in the detail
//! overlay. The list follows the newest entry while its view is at the top; scrolled down,
//! the view holds still and the title counts the newer entries above it. `/` filters:
//! while the filter is being typed the pane takes every key raw (Enter keeps it, Esc
//! clears it). A [`Component`] that owns its entries, selection and filter.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::trace::{denial_rows, timing};
use super::{clip, clock};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Keymap};
use crate::tui::overlays::Overlay;
use crate::tui::overlays::detail::{DetailContent, StepDetail};
use crate::types::event::{AnomalySeverity, CallOutcome, Event, EventKind, RefreshReason};
use crate::types::scope::ScopeSet;

pub const MAX_ENTRIES: usize = 10_000;

/// Recent events an anomaly's evidence may point at (by event id), summarised.
const EVIDENCE_MEMORY: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warn,
    Denied,
    Error,
}

impl Severity {
    pub fn glyph(self) -> &'static str {
        match self {
            Severity::Info => "●",
            Severity::Warn => "⚠",
            Severity::Denied => "✗",
            Severity::Error => "✗",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub severity: Severity,
    /// What the entry is, for the detail overlay's heading ("Denied", "Anomaly", …).
    pub kind: &'static str,
    pub text: String,
    /// Everything the one-line text leaves out, as label/value rows for the detail overlay.
    pub detail: Vec<(String, String)>,
    pub at_ms: u64,
    pub run_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct FeedPane {
    /// Newest first. Public for reading only (tests/audit_e2e.rs reads it; outside this
    /// file nothing writes it).
    pub entries: VecDeque<FeedEntry>,
    /// Index of the selected entry in the visible (filtered) list.
    selected: usize,
    /// First visible row; 0 is the newest entry, and while it is 0 the feed follows.
    offset: usize,
    filter: String,
    /// The operator is typing a filter.
    editing_filter: bool,
    /// Rows the list shows, from the last `on_resize` (0 until then).
    height: usize,
    /// The scopes of the last token seen, to report only real grant changes.
    /// The grant last seen per server (`None`: a recording without server names).
    granted: std::collections::BTreeMap<Option<String>, ScopeSet>,
    /// `(event id, summary)` of recent calls and tokens, newest last, for anomaly evidence.
    recent: VecDeque<(u64, String)>,
}

impl FeedPane {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many entries are kept (filtered or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The filter text (empty: no filter).
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The view is at the newest entry, so new entries show as they arrive.
    pub fn following(&self) -> bool {
        self.offset == 0
    }

    fn matches(&self, e: &FeedEntry) -> bool {
        self.filter.is_empty() || e.text.to_lowercase().contains(&self.filter.to_lowercase())
    }

    fn visible_len(&self) -> usize {
        if self.filter.is_empty() {
            self.entries.len()
        } else {
            self.entries.iter().filter(|e| self.matches(e)).count()
        }
    }

    /// Clamps the selection and moves the view the least needed to show it.
    fn settle(&mut self) {
        let len = self.visible_len();
        self.selected = self.selected.min(len.saturating_sub(1));
        if self.height == 0 {
            return;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + self.height {
            self.offset = self.selected + 1 - self.height;
        }
        self.offset = self.offset.min(len.saturating_sub(self.height));
    }

    fn scroll(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        self.selected = if delta < 0 { self.selected.saturating_sub(n) } else { self.selected.saturating_add(n) };
    }

    fn push(&mut self, e: &Event, severity: Severity, kind: &'static str, text: String, detail: Vec<(String, String)>) {
        let mut detail = detail;
        // An optimization's runs are not in the trace: the detail says where this came from.
        if crate::tui::overlays::optimize::is_optimize_run(e)
            && let Some(run) = &e.run_id
        {
            detail.insert(0, ("run".into(), format!("{run} (an optimization run; not in the trace)")));
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_back();
        }
        let entry = FeedEntry { severity, kind, text, detail, at_ms: e.at_ms, run_id: e.run_id.clone() };
        let shown = self.matches(&entry);
        self.entries.push_front(entry);
        if !shown {
            return;
        }
        // Following (view at the top) with the newest selected, the selection stays on the
        // newest. Otherwise it stays on its entry: following, the view stays at the top and
        // the new entry shows, the selection kept on screen; scrolled down, the view moves
        // with its entries and the title counts what is above.
        if self.offset == 0 && self.selected == 0 {
            return;
        }
        self.selected += 1;
        if self.offset > 0 {
            self.offset += 1;
        } else if self.height > 0 {
            self.selected = self.selected.min(self.height - 1);
        }
    }

    /// Remembers what an anomaly's evidence may name.
    fn remember(&mut self, e: &Event) {
        let summary = match &e.kind {
            EventKind::ToolCall { tool, args, .. } => {
                format!("call {} {}", tool.name, crate::session::format_args(args))
            }
            EventKind::ToolResult { tool, outcome, .. } => format!("{} → {}", tool.name, outcome_label(outcome)),
            EventKind::TokenIssued { token, .. } => format!("token {} ({})", token.granted, token.fingerprint),
            EventKind::RunStarted { request, .. } => format!("run: {request}"),
            _ => return,
        };
        if self.recent.len() >= EVIDENCE_MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back((e.id, summary));
    }

    pub fn ingest(&mut self, e: &Event) {
        self.remember(e);
        let run = |detail: &mut Vec<(String, String)>| {
            if let Some(step) = e.step {
                detail.insert(0, ("step".into(), step.to_string()));
            }
        };
        match &e.kind {
            EventKind::ToolResult { tool, outcome, attempts, latency_ms, .. } => {
                let mut detail = vec![
                    ("tool".into(), tool.name.clone()),
                    ("server".into(), tool.server.clone()),
                    ("timing".into(), timing(*latency_ms, *attempts)),
                ];
                run(&mut detail);
                match outcome {
                    CallOutcome::Denied { missing, side, .. } => {
                        detail.extend(denial_rows(outcome));
                        let (name, server, by) = (&tool.name, &tool.server, side.label());
                        let text = format!("{name} denied on {server}: missing {missing} ({by})");
                        self.push(e, Severity::Denied, "Denied", text, detail);
                    }
                    CallOutcome::Failed { class, message } => {
                        detail.push(("failure".into(), class.label().into()));
                        detail.push(("message".into(), message.clone()));
                        let text = format!("{} failed ({}): {message}", tool.name, class.label());
                        self.push(e, Severity::Error, "Failed", text, detail);
                    }
                    CallOutcome::ToolError { message, structured } => {
                        let shown = structured.as_ref().map(pretty).unwrap_or_else(|| message.clone());
                        detail.push(("error".into(), shown));
                        let text = format!("{} reported an error: {message}", tool.name);
                        self.push(e, Severity::Warn, "Tool error", text, detail);
                    }
                    CallOutcome::Success { .. } => {}
                }
            }
            EventKind::ToolRateLimited { tool, retry_after_ms, attempt } => {
                let mut detail = vec![
                    ("tool".into(), tool.name.clone()),
                    ("server".into(), tool.server.clone()),
                    ("attempt".into(), attempt.to_string()),
                    ("retry after".into(), format!("{retry_after_ms} ms")),
                ];
                run(&mut detail);
                let text =
                    format!("{} rate limited (attempt {attempt}, retry after {} s)", tool.name, retry_after_ms / 1000);
                self.push(e, Severity::Warn, "Rate limited", text, detail);
            }
            EventKind::ToolConfirmation { tool, allowed, by, policy } => {
                let mut detail = vec![
                    ("tool".into(), tool.name.clone()),
                    ("server".into(), tool.server.clone()),
                    ("decision".into(), if *allowed { "allowed" } else { "declined: nothing was sent" }.into()),
                    ("by".into(), by.label().into()),
                    ("confirm".into(), policy.as_str().into()),
                ];
                run(&mut detail);
                let (severity, title, verb) = if *allowed {
                    (Severity::Info, "Confirmed", "allowed")
                } else {
                    (Severity::Warn, "Not confirmed", "declined")
                };
                let text = format!("{} on {} {verb} by {}", tool.name, tool.server, by.label());
                self.push(e, severity, title, text, detail);
            }
            EventKind::ToolRetry { tool, attempt, detail: why, delay_ms, reason } => {
                let mut detail = vec![
                    ("tool".into(), tool.name.clone()),
                    ("server".into(), tool.server.clone()),
                    ("attempt".into(), attempt.to_string()),
                    ("reason".into(), format!("{reason:?}").to_lowercase()),
                    ("detail".into(), why.clone()),
                    ("delay".into(), format!("{delay_ms} ms")),
                ];
                run(&mut detail);
                let text = format!("{} retry after attempt {attempt}: {why}", tool.name);
                self.push(e, Severity::Warn, "Retry", text, detail);
            }
            EventKind::TokenRejected { check, detail, server } => {
                let mut rows = vec![("check".into(), check.to_string()), ("detail".into(), detail.clone())];
                rows.extend(server.iter().map(|s| ("server".to_string(), s.clone())));
                let text = format!("token{} rejected ({check}): {detail}", for_server(server));
                self.push(e, Severity::Error, "Token rejected", text, rows);
            }
            EventKind::TokenError { detail, server } => {
                let mut rows = vec![("detail".into(), detail.clone())];
                rows.extend(server.iter().map(|s| ("server".to_string(), s.clone())));
                let text = format!("token request{} failed: {detail}", for_server(server));
                self.push(e, Severity::Error, "Token error", text, rows);
            }
            EventKind::TokenIssued { token, reason, server } => {
                // Each server has its own grant: a change is news against that server's.
                let before = self.granted.insert(server.clone(), token.granted.clone());
                let shown = |s: &ScopeSet| if s.is_empty() { "(no scopes)".to_string() } else { s.to_string() };
                let mut rows = vec![
                    ("granted".into(), shown(&token.granted)),
                    ("token".into(), token.state.label().to_string()),
                    ("fingerprint".into(), token.fingerprint.to_string()),
                ];
                match reason {
                    // Only a grant that changed is news; re-tokening with the same scopes
                    // (or restoring defaults that were in force) is not.
                    RefreshReason::Regrant | RefreshReason::StepUp if before.as_ref() != Some(&token.granted) => {
                        if let Some(b) = &before {
                            rows.insert(1, ("before".into(), shown(b)));
                        }
                        if let Some(r) = &token.requested {
                            rows.insert(1, ("requested".into(), shown(r)));
                        }
                        let text = format!("grant changed: now {} ({})", shown(&token.granted), token.fingerprint);
                        self.push(e, Severity::Info, "Grant changed", text, rows);
                    }
                    RefreshReason::Unauthorized => {
                        let text = format!("token refreshed after a 401 ({})", token.fingerprint);
                        self.push(e, Severity::Warn, "Token refreshed", text, rows);
                    }
                    _ => {}
                }
            }
            EventKind::ServerHealth { server, up, detail } => {
                let rows = vec![("server".into(), server.clone()), ("detail".into(), detail.clone())];
                if *up {
                    self.push(e, Severity::Info, "Server up", format!("{server} up: {detail}"), rows);
                } else {
                    self.push(e, Severity::Error, "Server down", format!("{server} down: {detail}"), rows);
                }
            }
            EventKind::OptimizeFinished { summary, error } => {
                let text = crate::tui::overlays::optimize::feed_line(summary.as_deref(), error.as_deref());
                let mut rows = Vec::new();
                let severity = match (summary, error) {
                    (Some(s), _) => {
                        rows.push(("optimizer".into(), s.optimizer.clone()));
                        rows.push(("examples".into(), s.rows.len().to_string()));
                        rows.extend(s.constraints.iter().map(|c| ("constraint".to_string(), c.clone())));
                        rows.extend(s.findings.iter().map(|f| ("finding".to_string(), f.clone())));
                        if let Some(out) = &s.out {
                            rows.push(("wrote".into(), format!("{out} ({})", s.format)));
                        }
                        if s.findings.is_empty() { Severity::Info } else { Severity::Warn }
                    }
                    (None, e) => {
                        rows.push(("error".into(), e.clone().unwrap_or_default()));
                        Severity::Error
                    }
                };
                self.push(e, severity, "Optimization", text, rows);
            }
            EventKind::AgentError { message } => {
                let rows = vec![("message".into(), message.clone())];
                self.push(e, Severity::Error, "Agent error", format!("agent: {message}"), rows)
            }
            EventKind::Anomaly { rule, severity, message, evidence } => {
                let sev = match severity {
                    AnomalySeverity::High => Severity::Error,
                    AnomalySeverity::Medium => Severity::Warn,
                    AnomalySeverity::Low => Severity::Info,
                };
                let evidence: Vec<String> = evidence
                    .iter()
                    .map(|id| match self.recent.iter().rev().find(|(seen, _)| seen == id) {
                        Some((_, summary)) => format!("#{id} {summary}"),
                        None => format!("#{id} (not in the console's memory; see the recording)"),
                    })
                    .collect();
                let mut rows = vec![
                    ("rule".into(), rule.to_string()),
                    ("severity".into(), format!("{severity:?}").to_lowercase()),
                    ("message".into(), message.clone()),
                ];
                if !evidence.is_empty() {
                    rows.push(("evidence (event id, what it was)".into(), evidence.join("\n")));
                }
                self.push(e, sev, "Anomaly", format!("ANOMALY {rule}: {message}"), rows);
            }
            _ => {}
        }
    }

    /// Entries passing the filter (case-insensitive substring), newest first.
    pub fn visible(&self) -> Vec<&FeedEntry> {
        self.entries.iter().filter(|e| self.matches(e)).collect()
    }

    /// The selected entry (of the visible ones).
    fn selected_entry(&self) -> Option<&FeedEntry> {
        if self.filter.is_empty() {
            self.entries.get(self.selected)
        } else {
            self.entries.iter().filter(|e| self.matches(e)).nth(self.selected)
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn outcome_label(o: &CallOutcome) -> String {
    match o {
        CallOutcome::Success { .. } => "success".into(),
        CallOutcome::ToolError { .. } => "tool error".into(),
        CallOutcome::Failed { class, .. } => class.label().into(),
        CallOutcome::Denied { side, missing, .. } => format!("denied, missing {missing} ({})", side.label()),
    }
}

impl Component for FeedPane {
    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        self.settle();
        match action {
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-super::PAGE),
            Action::PageDown => self.scroll(super::PAGE),
            Action::Top => (self.selected, self.offset) = (0, 0),
            Action::Bottom => self.selected = usize::MAX,
            Action::Select => {
                return match self.selected_entry() {
                    Some(entry) => {
                        let meta = match &entry.run_id {
                            Some(run) => format!("{run}  {}", clock(entry.at_ms)),
                            None => clock(entry.at_ms),
                        };
                        let content = DetailContent {
                            title: "Feed entry",
                            kind: entry.kind.to_string(),
                            meta,
                            rows: entry.detail.clone(),
                            text: entry.text.clone(),
                        };
                        Handled::emit(Msg::Open(Overlay::Detail(StepDetail::new(content))))
                    }
                    None => Handled::Consumed,
                };
            }
            Action::Filter => self.editing_filter = true,
            Action::Back if !self.filter.is_empty() => self.filter.clear(),
            _ => return Handled::NotMine,
        }
        self.settle();
        Handled::Consumed
    }

    /// Typing the filter: Enter keeps it, Esc drops it; the selection goes to the top.
    fn on_key(&mut self, k: KeyEvent, _ctx: &Ctx) -> Handled {
        if !self.editing_filter {
            return Handled::NotMine;
        }
        match k.code {
            KeyCode::Esc => {
                self.editing_filter = false;
                self.filter.clear();
            }
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => self.filter.push(c),
            _ => {}
        }
        (self.selected, self.offset) = (0, 0);
        Handled::Consumed
    }

    fn grabs_keys(&self) -> bool {
        self.editing_filter
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
    }

    fn on_resize(&mut self, area: Rect) {
        // Called before every frame: settle only when the height changed (counting a
        // filtered list is not free).
        let height = super::rows_inside(area);
        if height != self.height {
            self.height = height;
            self.settle();
        }
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        if self.editing_filter {
            return vec![("Enter".into(), "keep filter"), ("Esc".into(), "clear filter")];
        }
        let k = |a| keymap.key_for(a);
        let mut hints = vec![(k(Action::Select), "open"), (k(Action::Filter), "filter")];
        if !self.following() {
            hints.insert(0, (k(Action::Top), "newest"));
        }
        hints
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, focused) = (ctx.theme, ctx.focused);
        let filter = match (self.editing_filter, self.filter.is_empty()) {
            (true, _) => format!(" /{}▏", self.filter),
            (false, false) => format!(" /{}", self.filter),
            _ => String::new(),
        };
        let len = self.visible_len();
        // Drawing uses the offset the handlers settled for this height (a smaller frame
        // than the one settled for only shows fewer rows).
        let height = Block::default().borders(Borders::ALL).inner(area).height as usize;
        let offset = self.offset.min(len.saturating_sub(1));
        let newer = if offset > 0 {
            format!(" ▲ {offset} newer · {}: newest", ctx.keymap.key_for(Action::Top))
        } else {
            String::new()
        };
        let title = format!(" Feed ({len}){filter}{newer} ");
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused))
            .title(Span::styled(title, theme.colored(theme.accent)));
        let inner = block.inner(area);
        f.render_widget(block, area);
        if len == 0 {
            let msg = if self.entries.is_empty() {
                "No denials, rate limits or errors yet."
            } else {
                "Nothing matches the filter."
            };
            f.render_widget(Paragraph::new(Line::styled(msg, theme.muted())), inner);
            return;
        }
        let width = inner.width as usize;
        // Only the rows on screen are visited (no per-frame list of every entry).
        let shown = self.entries.iter().filter(|e| self.matches(e)).enumerate().skip(offset).take(height);
        let lines: Vec<Line> = shown
            .map(|(i, e)| {
                let color = match e.severity {
                    Severity::Info => theme.info,
                    Severity::Warn => theme.warn,
                    Severity::Denied => theme.denied,
                    Severity::Error => theme.error,
                };
                let head = format!("{} {} ", clock(e.at_ms), e.severity.glyph());
                let budget = width.saturating_sub(head.chars().count());
                let mut line =
                    Line::from(vec![Span::styled(head, theme.colored(color)), Span::raw(clip(&e.text, budget))]);
                if focused && i == self.selected {
                    line = line.style(theme.selected());
                }
                line
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
    }
}

/// " for NAME" when a token event names its server (several servers can hold tokens).
fn for_server(server: &Option<String>) -> String {
    server.as_ref().map(|s| format!(" for {s}")).unwrap_or_default()
}
