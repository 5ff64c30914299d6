//! The Chat pane: the conversation (requests, answers, refusals, notes) and a multi-line
//! input. Enter sends; Alt-Enter or Ctrl-J inserts a newline; ↑/↓ on a one-line input
//! recall earlier requests.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_textarea::TextArea;

use super::wrap;
use crate::tui::theme::Theme;
use crate::types::event::{Event, EventKind, RunStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    You,
    Agent,
    Note,
}

#[derive(Debug, Clone)]
pub struct ChatLine {
    pub who: Who,
    pub text: String,
}

/// What a key did to the input.
#[derive(Debug, PartialEq, Eq)]
pub enum InputOutcome {
    Submit(String),
    Edited,
}

pub struct ChatPane {
    pub history: Vec<ChatLine>,
    pub input: TextArea<'static>,
    sent: Vec<String>,
    recall: Option<usize>,
    /// Lines scrolled up from the bottom of the history.
    pub scroll_back: usize,
}

impl Default for ChatPane {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatPane {
    pub fn new() -> Self {
        let mut input = TextArea::default();
        input.set_placeholder_text("Type a request, Enter to send (Alt-Enter: newline)");
        Self { history: Vec::new(), input, sent: Vec::new(), recall: None, scroll_back: 0 }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.history.push(ChatLine { who: Who::Note, text: text.into() });
    }

    pub fn ingest(&mut self, e: &Event) {
        match &e.kind {
            EventKind::RunStarted { request, .. } => {
                self.history.push(ChatLine { who: Who::You, text: request.clone() })
            }
            EventKind::FinalAnswer { response } => {
                self.history.push(ChatLine { who: Who::Agent, text: response.clone() })
            }
            EventKind::RunFinished { status: RunStatus::Cancelled, .. } => self.note("request cancelled"),
            EventKind::AgentError { message } if e.step.is_none() || message.contains("LM") => {
                self.note(format!("agent error: {message}"))
            }
            _ => {}
        }
    }

    pub fn input_text(&self) -> String {
        self.input.lines().join("\n")
    }

    fn set_input(&mut self, text: &str) {
        let mut input = TextArea::new(text.split('\n').map(str::to_string).collect());
        input.set_placeholder_text("Type a request, Enter to send (Alt-Enter: newline)");
        input.move_cursor(ratatui_textarea::CursorMove::Bottom);
        input.move_cursor(ratatui_textarea::CursorMove::End);
        self.input = input;
    }

    /// Handles a key while the input has focus.
    pub fn key(&mut self, k: KeyEvent) -> InputOutcome {
        let newline = (k.code == KeyCode::Enter && k.modifiers.intersects(KeyModifiers::ALT | KeyModifiers::SHIFT))
            || (k.code == KeyCode::Char('j') && k.modifiers == KeyModifiers::CONTROL);
        if newline {
            self.input.insert_newline();
            return InputOutcome::Edited;
        }
        let single_line = self.input.lines().len() <= 1;
        match k.code {
            KeyCode::Enter => {
                let text = self.input_text().trim().to_string();
                if text.is_empty() {
                    return InputOutcome::Edited;
                }
                self.sent.push(text.clone());
                self.recall = None;
                self.set_input("");
                self.scroll_back = 0;
                InputOutcome::Submit(text)
            }
            KeyCode::Up if single_line && !self.sent.is_empty() => {
                let i = self.recall.map(|i| i.saturating_sub(1)).unwrap_or(self.sent.len() - 1);
                self.recall = Some(i);
                let text = self.sent[i].clone();
                self.set_input(&text);
                InputOutcome::Edited
            }
            KeyCode::Down if single_line && self.recall.is_some() => {
                let next = self.recall.map(|i| i + 1).filter(|i| *i < self.sent.len());
                self.recall = next;
                let text = next.map(|i| self.sent[i].clone()).unwrap_or_default();
                self.set_input(&text);
                InputOutcome::Edited
            }
            _ => {
                self.input.input(k);
                InputOutcome::Edited
            }
        }
    }

    pub fn render(&mut self, f: &mut Frame, area: Rect, theme: &Theme, focused: bool, typing: bool) {
        let input_height = (self.input.lines().len() as u16 + 2).clamp(3, 7);
        let [hist_area, input_area] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(input_height)]).areas(area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused && !typing))
            .title(Span::styled(" Chat ", theme.colored(theme.accent)));
        let inner = block.inner(hist_area);
        f.render_widget(block, hist_area);
        let width = inner.width.saturating_sub(2) as usize;
        let mut lines: Vec<Line> = Vec::new();
        for msg in &self.history {
            let (label, style) = match msg.who {
                Who::You => ("you  ", theme.colored(theme.accent).add_modifier(Modifier::BOLD)),
                Who::Agent => ("agent", theme.colored(theme.ok).add_modifier(Modifier::BOLD)),
                Who::Note => ("note ", theme.muted()),
            };
            for (i, chunk) in wrap(&msg.text, width.saturating_sub(6)).into_iter().enumerate() {
                let lead = if i == 0 { label } else { "     " };
                let body = if msg.who == Who::Note { Span::styled(chunk, theme.muted()) } else { Span::raw(chunk) };
                lines.push(Line::from(vec![Span::styled(lead, style), Span::raw(" "), body]));
            }
        }
        let height = inner.height as usize;
        let max_back = lines.len().saturating_sub(height);
        self.scroll_back = self.scroll_back.min(max_back);
        let start = lines.len().saturating_sub(height + self.scroll_back);
        let shown: Vec<Line> = lines.into_iter().skip(start).take(height).collect();
        if shown.is_empty() {
            f.render_widget(
                Paragraph::new(vec![
                    Line::styled("Ask the support agent something, for example:", theme.muted()),
                    Line::styled(
                        "For customer ABC123 create a support ticket as the bbq grill that she bought is defective.",
                        theme.muted(),
                    ),
                ])
                .wrap(ratatui::widgets::Wrap { trim: true }),
                inner,
            );
        } else {
            f.render_widget(Paragraph::new(shown), inner);
        }
        let title = if typing { " Request ▏typing — Esc: panes " } else { " Request — i or Enter to type " };
        self.input.set_block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border(focused && typing))
                .title(Span::styled(title, theme.muted())),
        );
        self.input.set_cursor_line_style(ratatui::style::Style::default());
        self.input.set_placeholder_style(theme.muted());
        f.render_widget(&self.input, input_area);
    }
}
