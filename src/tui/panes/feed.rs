//! The Feed pane: permission failures (tool, missing scopes, client- or server-side), rate
//! limits, retries, errors, grant changes and anomalies — newest first, each with a
//! severity glyph as well as a colour. `/` filters.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Cursor, clip, clock};
use crate::tui::theme::Theme;
use crate::types::event::{CallOutcome, Event, EventKind, RefreshReason};

pub const MAX_ENTRIES: usize = 10_000;

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
    pub text: String,
    pub at_ms: u64,
    pub run_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct FeedPane {
    /// Newest first.
    pub entries: VecDeque<FeedEntry>,
    pub cursor: Cursor,
    pub filter: String,
    /// The operator is typing a filter.
    pub editing_filter: bool,
}

impl FeedPane {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, e: &Event, severity: Severity, text: String) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_back();
        }
        self.entries.push_front(FeedEntry { severity, text, at_ms: e.at_ms, run_id: e.run_id.clone() });
        // Keep the operator's selection on the same entry as new ones arrive on top.
        if self.cursor.selected > 0 || !self.cursor.follow {
            self.cursor.selected += 1;
        }
    }

    pub fn ingest(&mut self, e: &Event) {
        match &e.kind {
            EventKind::ToolResult { tool, outcome, .. } => match outcome {
                CallOutcome::Denied { missing, side, .. } => {
                    let (name, server, by) = (&tool.name, &tool.server, side.label());
                    self.push(e, Severity::Denied, format!("{name} denied on {server}: missing {missing} ({by})"));
                }
                CallOutcome::Failed { class, message } => {
                    self.push(e, Severity::Error, format!("{} failed ({}): {message}", tool.name, class.label()));
                }
                CallOutcome::ToolError { message, .. } => {
                    self.push(e, Severity::Warn, format!("{} reported an error: {message}", tool.name))
                }
                CallOutcome::Success { .. } => {}
            },
            EventKind::ToolRateLimited { tool, retry_after_ms, attempt } => {
                self.push(
                    e,
                    Severity::Warn,
                    format!("{} rate limited (attempt {attempt}, retry after {} s)", tool.name, retry_after_ms / 1000),
                );
            }
            EventKind::ToolRetry { tool, attempt, detail, .. } => {
                self.push(e, Severity::Warn, format!("{} retry after attempt {attempt}: {detail}", tool.name));
            }
            EventKind::TokenRejected { check, detail } => {
                self.push(e, Severity::Error, format!("token rejected ({check}): {detail}"));
            }
            EventKind::TokenError { detail } => {
                self.push(e, Severity::Error, format!("token request failed: {detail}"))
            }
            EventKind::TokenIssued { token, reason: RefreshReason::Regrant } => {
                self.push(e, Severity::Info, format!("grant changed: now {} ({})", token.granted, token.fingerprint));
            }
            EventKind::TokenIssued { token, reason: RefreshReason::Unauthorized } => {
                self.push(e, Severity::Warn, format!("token refreshed after a 401 ({})", token.fingerprint));
            }
            EventKind::AgentError { message } => self.push(e, Severity::Error, format!("agent: {message}")),
            EventKind::Anomaly { rule, severity, message, .. } => {
                let sev = match severity {
                    crate::types::event::AnomalySeverity::High => Severity::Error,
                    crate::types::event::AnomalySeverity::Medium => Severity::Warn,
                    crate::types::event::AnomalySeverity::Low => Severity::Info,
                };
                self.push(e, sev, format!("ANOMALY {rule}: {message}"));
            }
            _ => {}
        }
    }

    /// Entries passing the filter (case-insensitive substring), newest first.
    pub fn visible(&self) -> Vec<&FeedEntry> {
        let needle = self.filter.to_lowercase();
        self.entries.iter().filter(|e| needle.is_empty() || e.text.to_lowercase().contains(&needle)).collect()
    }

    pub fn render(&mut self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool) {
        let filter = match (self.editing_filter, self.filter.is_empty()) {
            (true, _) => format!(" /{}▏", self.filter),
            (false, false) => format!(" /{}", self.filter),
            _ => String::new(),
        };
        let needle = self.filter.to_lowercase();
        let visible: Vec<&FeedEntry> =
            self.entries.iter().filter(|e| needle.is_empty() || e.text.to_lowercase().contains(&needle)).collect();
        let title = format!(" Feed ({}){filter} ", visible.len());
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused))
            .title(Span::styled(title, theme.colored(theme.accent)));
        let inner = block.inner(area);
        f.render_widget(block, area);
        if visible.is_empty() {
            let msg = if self.entries.is_empty() {
                "No denials, rate limits or errors yet."
            } else {
                "Nothing matches the filter."
            };
            f.render_widget(Paragraph::new(Line::styled(msg, theme.muted())), inner);
            return;
        }
        // Newest first: the "follow" position is the top.
        let mut cursor = Cursor { follow: false, ..self.cursor };
        let range = cursor.window(visible.len(), inner.height as usize);
        let selected = self.cursor.selected;
        let width = inner.width as usize;
        let lines: Vec<Line> = range
            .map(|i| {
                let e = visible[i];
                let color = match e.severity {
                    Severity::Info => theme.info,
                    Severity::Warn => theme.warn,
                    Severity::Denied => theme.denied,
                    Severity::Error => theme.error,
                };
                let head = format!("{} {} ", clock(e.at_ms), e.severity.glyph());
                let mut line = Line::from(vec![
                    Span::styled(head.clone(), theme.colored(color)),
                    Span::raw(clip(&e.text, width.saturating_sub(head.chars().count()))),
                ]);
                if focused && i == selected {
                    line = line.style(theme.selected());
                }
                line
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
        self.cursor.offset = cursor.offset;
    }
}
