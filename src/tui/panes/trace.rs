//! The Trace pane: the live ReAct trajectory of the current and past runs — thought,
//! action (tool + args), observation, denials and retries highlighted, per-step timing.
//! Follows the newest step until the operator scrolls; Enter opens the step detail.
//! A [`Component`]: it owns the entries and the selection, and settles its scroll offset in
//! its handlers (it knows its height from `on_resize`), so drawing changes nothing.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Cursor, clip};
use crate::session::format_args;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Keymap};
use crate::tui::overlays::Overlay;
use crate::tui::overlays::detail::{DetailContent, StepDetail};
use crate::tui::theme::Theme;
use crate::types::event::{CallOutcome, Event, EventKind};
use crate::types::tool::ToolName;

/// Most entries kept; older ones are dropped (the session recording keeps everything).
pub const MAX_ENTRIES: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    Run,
    Thought,
    Action,
    Observation,
    ToolError,
    Denied,
    Retry,
    /// A call that needed the operator's confirmation: allowed or declined, and by whom.
    Confirm,
    Answer,
    Finished,
    Error,
}

#[derive(Debug, Clone)]
pub struct TraceEntry {
    pub run_id: String,
    pub step: Option<u32>,
    pub kind: TraceKind,
    pub text: String,
    /// Label/value pairs shown in the step-detail overlay.
    pub detail: Vec<(String, String)>,
    pub at_ms: u64,
}

/// Calls whose result has not arrived yet, at most this many (a result names its call by
/// run, step and tool; one that never comes must not grow the list forever).
const OPEN_CALLS: usize = 64;

/// A call waiting for its result: where it was made and its arguments, so the result's
/// detail shows them too (a denial's above all: the arguments that were refused).
#[derive(Debug)]
struct OpenCall {
    run_id: Option<String>,
    step: Option<u32>,
    tool: ToolName,
    args: serde_json::Value,
}

#[derive(Debug, Default)]
pub struct TracePane {
    entries: VecDeque<TraceEntry>,
    cursor: Cursor,
    /// Rows the list shows, from the last `on_resize` (0 until then).
    height: usize,
    open_calls: VecDeque<OpenCall>,
}

impl TracePane {
    pub fn new() -> Self {
        Self { cursor: Cursor::following(), ..Self::default() }
    }

    pub fn selected(&self) -> Option<&TraceEntry> {
        self.entries.get(self.cursor.selected)
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sticking to the newest entry.
    pub fn following(&self) -> bool {
        self.cursor.follow
    }

    /// Moves the selection by `delta` rows; moving up stops following, reaching the end
    /// follows again.
    fn scroll(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        let len = self.entries.len();
        if delta < 0 {
            if self.cursor.follow {
                self.cursor.selected = len.saturating_sub(1);
            }
            self.cursor.up(n);
        } else {
            self.cursor.down(n, len);
            if self.cursor.selected + 1 >= len {
                self.cursor.follow = true;
            }
        }
    }

    fn settle(&mut self) {
        self.cursor.settle(self.entries.len(), self.height);
    }

    fn push(&mut self, e: &Event, kind: TraceKind, text: String, detail: Vec<(String, String)>) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
            self.cursor.selected = self.cursor.selected.saturating_sub(1);
            self.cursor.offset = self.cursor.offset.saturating_sub(1);
        }
        let run_id = e.run_id.clone().unwrap_or_default();
        self.entries.push_back(TraceEntry { run_id, step: e.step, kind, text, detail, at_ms: e.at_ms });
    }

    pub fn ingest(&mut self, e: &Event) {
        let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
        match &e.kind {
            EventKind::RunStarted { request, model, .. } => self.push(
                e,
                TraceKind::Run,
                format!("▶ {request}"),
                vec![("model".into(), model.clone()), ("request".into(), request.clone())],
            ),
            EventKind::Thought { text } => {
                self.push(e, TraceKind::Thought, text.clone(), vec![("thought".into(), text.clone())])
            }
            EventKind::ToolCall { tool, args, required, .. } => {
                if self.open_calls.len() >= OPEN_CALLS {
                    self.open_calls.pop_front();
                }
                let call = OpenCall { run_id: e.run_id.clone(), step: e.step, tool: tool.clone(), args: args.clone() };
                self.open_calls.push_back(call);
                self.push(
                    e,
                    TraceKind::Action,
                    format!("{} {}", tool.name, format_args(args)),
                    vec![
                        ("tool".into(), tool.name.clone()),
                        ("server".into(), tool.server.clone()),
                        ("required".into(), required.to_string()),
                        ("arguments".into(), pretty(args)),
                    ],
                )
            }
            EventKind::ToolResult { tool, outcome, attempts, latency_ms, .. } => {
                let call = self
                    .open_calls
                    .iter()
                    .rposition(|c| c.run_id == e.run_id && c.step == e.step && c.tool == *tool)
                    .and_then(|i| self.open_calls.remove(i));
                let mut detail = vec![("tool".into(), tool.name.clone()), ("server".into(), tool.server.clone())];
                if let Some(call) = call {
                    detail.push(("arguments".into(), pretty(&call.args)));
                }
                detail.push(("timing".into(), timing(*latency_ms, *attempts)));
                let (kind, text) = match outcome {
                    CallOutcome::Success { structured, text } => {
                        let shown = if text.is_empty() {
                            structured.as_ref().map(|v| v.to_string()).unwrap_or_default()
                        } else {
                            text.clone()
                        };
                        detail.push(("outcome".into(), "success".into()));
                        detail.push(("result".into(), structured.as_ref().map(pretty).unwrap_or_else(|| text.clone())));
                        (TraceKind::Observation, format!("{shown}  ({latency_ms:.1} ms)"))
                    }
                    CallOutcome::ToolError { message, structured } => {
                        detail.push(("outcome".into(), "tool error".into()));
                        detail
                            .push(("error".into(), structured.as_ref().map(pretty).unwrap_or_else(|| message.clone())));
                        (
                            TraceKind::ToolError,
                            format!("{} reported an error: {message}  ({latency_ms:.1} ms)", tool.name),
                        )
                    }
                    CallOutcome::Failed { class, message } => {
                        detail.push(("outcome".into(), class.label().into()));
                        detail.push(("error".into(), message.clone()));
                        (TraceKind::ToolError, format!("{} failed ({}): {message}", tool.name, class.label()))
                    }
                    CallOutcome::Denied { side, .. } => {
                        detail.extend(denial_rows(outcome));
                        let missing = match outcome {
                            CallOutcome::Denied { missing, .. } => missing.to_string(),
                            _ => String::new(),
                        };
                        (TraceKind::Denied, format!("{} denied: missing {missing} ({})", tool.name, side.label()))
                    }
                };
                self.push(e, kind, text, detail)
            }
            EventKind::InvalidAction { tool, args, reason } => self.push(
                e,
                TraceKind::ToolError,
                format!("{tool} {}: {reason}", format_args(args)),
                vec![
                    ("tool".into(), tool.clone()),
                    ("arguments".into(), pretty(args)),
                    ("error".into(), reason.clone()),
                ],
            ),
            EventKind::Finish => self.push(e, TraceKind::Action, "finish".into(), Vec::new()),
            EventKind::ToolConfirmation { tool, allowed, by, policy } => self.push(
                e,
                TraceKind::Confirm,
                format!("{} {} by {}", tool.name, if *allowed { "allowed" } else { "declined" }, by.label()),
                vec![
                    ("tool".into(), tool.name.clone()),
                    ("server".into(), tool.server.clone()),
                    ("decision".into(), if *allowed { "allowed" } else { "declined: not sent" }.into()),
                    ("by".into(), by.label().into()),
                    ("confirm".into(), policy.as_str().into()),
                ],
            ),
            EventKind::ToolRetry { tool, attempt, detail, delay_ms, .. } => self.push(
                e,
                TraceKind::Retry,
                format!("{} attempt {attempt} failed: {detail}; retrying in {delay_ms} ms", tool.name),
                vec![("reason".into(), detail.clone())],
            ),
            EventKind::FinalAnswer { response } => {
                self.push(e, TraceKind::Answer, response.clone(), vec![("answer".into(), response.clone())])
            }
            EventKind::RunFinished { status, steps, elapsed_ms } => {
                let steps = crate::types::text::counted(u64::from(*steps), "step", "steps");
                self.push(
                    e,
                    TraceKind::Finished,
                    format!("{} {} — {steps}, {elapsed_ms:.1} ms", status.glyph(), status.label()),
                    Vec::new(),
                )
            }
            EventKind::AgentError { message } => {
                self.push(e, TraceKind::Error, message.clone(), vec![("error".into(), message.clone())])
            }
            _ => {}
        }
    }
}

impl Component for TracePane {
    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        self.settle();
        match action {
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-super::PAGE),
            Action::PageDown => self.scroll(super::PAGE),
            Action::Top => self.cursor.top(),
            Action::Bottom => self.cursor.bottom(self.entries.len()),
            Action::Select => {
                return match self.selected() {
                    Some(entry) => {
                        Handled::emit(Msg::Open(Overlay::Detail(StepDetail::new(DetailContent::step(entry)))))
                    }
                    None => Handled::Consumed,
                };
            }
            _ => return Handled::NotMine,
        }
        self.settle();
        Handled::Consumed
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        let mut hints = vec![(k(Action::Select), "detail"), (format!("{}/{}", k(Action::Down), k(Action::Up)), "move")];
        if !self.cursor.follow {
            hints.push((k(Action::Bottom), "follow"));
        }
        hints
    }

    fn on_resize(&mut self, area: Rect) {
        self.height = super::rows_inside(area);
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, focused) = (ctx.theme, ctx.focused);
        let follow = if self.cursor.follow { " ● follow" } else { "" };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused))
            .title(Span::styled(format!(" Trace{follow} "), theme.colored(theme.accent)));
        let inner = block.inner(area);
        f.render_widget(block, area);
        // A copy: the handlers settled the offset for this height; drawing changes nothing.
        let mut cursor = self.cursor;
        let range = cursor.settle(self.entries.len(), inner.height as usize);
        let width = inner.width as usize;
        let lines: Vec<Line> = range
            .map(|i| {
                let e = &self.entries[i];
                let mut line = entry_line(e, theme, width);
                if focused && i == cursor.selected && !cursor.follow {
                    line = line.style(theme.selected());
                }
                line
            })
            .collect();
        if lines.is_empty() {
            f.render_widget(
                Paragraph::new(Line::styled(
                    "No runs yet: type a request in Chat, or press s for a scenario.",
                    theme.muted(),
                )),
                inner,
            );
        } else {
            f.render_widget(Paragraph::new(lines), inner);
        }
    }
}

/// How long a call took and how often it was sent, for a detail view ("0.2 ms, not sent").
pub fn timing(latency_ms: f64, attempts: u32) -> String {
    let sent = match attempts {
        0 => "not sent".to_string(),
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    format!("{latency_ms:.1} ms, {sent}")
}

/// A denial's rows for a detail view: who decided, required, granted and missing scopes,
/// the HTTP status and `WWW-Authenticate` when the server decided (the feed shows the same).
pub fn denial_rows(outcome: &CallOutcome) -> Vec<(String, String)> {
    let CallOutcome::Denied { side, required, granted, missing, status, www_authenticate } = outcome else {
        return Vec::new();
    };
    let mut rows = vec![
        ("decided by".to_string(), side.label().to_string()),
        ("required".into(), required.to_string()),
        ("granted".into(), if granted.is_empty() { "(none)".into() } else { granted.to_string() }),
        ("missing".into(), missing.to_string()),
    ];
    if let Some(status) = status {
        rows.push(("HTTP status".into(), status.to_string()));
    }
    if let Some(w) = www_authenticate {
        rows.push(("WWW-Authenticate".into(), w.clone()));
    }
    rows
}

fn entry_line<'a>(e: &'a TraceEntry, theme: &Theme, width: usize) -> Line<'a> {
    let (label, style) = match e.kind {
        TraceKind::Run => ("run    ", theme.colored(theme.accent).add_modifier(Modifier::BOLD)),
        TraceKind::Thought => ("thought", theme.text()),
        TraceKind::Action => ("action ", theme.colored(theme.info)),
        TraceKind::Observation => ("observe", theme.muted()),
        TraceKind::ToolError => ("✗ error", theme.colored(theme.error)),
        TraceKind::Denied => ("✗ DENY ", theme.colored(theme.denied).add_modifier(Modifier::BOLD)),
        TraceKind::Retry => ("↻ retry", theme.colored(theme.warn)),
        TraceKind::Confirm => ("⚠ asked", theme.colored(theme.warn)),
        TraceKind::Answer => ("answer ", theme.colored(theme.ok)),
        TraceKind::Finished => ("done   ", theme.muted()),
        TraceKind::Error => ("✗ agent", theme.colored(theme.error)),
    };
    let step = e.step.map(|s| format!("{s:>2} ")).unwrap_or_else(|| "   ".into());
    let budget = width.saturating_sub(step.len() + label.chars().count() + 1);
    Line::from(vec![
        Span::styled(step, theme.muted()),
        Span::styled(label, style),
        Span::raw(" "),
        Span::styled(clip(&e.text, budget), if e.kind == TraceKind::Denied { style } else { Style::default() }),
    ])
}
