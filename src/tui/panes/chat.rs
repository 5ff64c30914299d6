//! The Chat pane: the conversation (requests, answers, refusals, notes) and a multi-line
//! input. Enter sends; Alt-Enter or Ctrl-J inserts a newline; ↑/↓ on a one-line input
//! recall earlier requests. A [`Component`]: the input is its text entry (it gets the raw
//! keys no binding claims while the operator types), and it scrolls its own history.

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui_textarea::TextArea;

use super::wrap;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Keymap};
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

const PLACEHOLDER: &str = "Type a request, Enter to send (Alt-Enter: newline)";

pub struct ChatPane {
    history: Vec<ChatLine>,
    /// No block and no placeholder: `draw` adds them (they depend on the theme and the
    /// focus), so drawing needs no `&mut`.
    input: TextArea<'static>,
    sent: Vec<String>,
    recall: Option<usize>,
    /// Lines scrolled up from the bottom of the history (clamped by the handlers to what
    /// the last known area can show, and again when drawn).
    scroll_back: usize,
    /// The whole pane, from the last `on_resize` (empty until then).
    area: Rect,
}

impl Default for ChatPane {
    fn default() -> Self {
        Self::new()
    }
}

impl ChatPane {
    pub fn new() -> Self {
        Self {
            history: Vec::new(),
            input: new_input(""),
            sent: Vec::new(),
            recall: None,
            scroll_back: 0,
            area: Rect::default(),
        }
    }

    /// The conversation so far.
    pub fn history(&self) -> &[ChatLine] {
        &self.history
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
        self.input = new_input(text);
    }

    /// The history part of the pane (above the input) for the whole pane's `area`.
    fn split(&self, area: Rect) -> [Rect; 2] {
        let input_height = (self.input.lines().len() as u16 + 2).clamp(3, 7);
        Layout::vertical([Constraint::Min(1), Constraint::Length(input_height)]).areas(area)
    }

    /// The history as wrapped lines for a text `width`.
    fn history_lines(&self, theme: &Theme, width: usize) -> Vec<Line<'_>> {
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
        lines
    }

    /// Keeps `scroll_back` within what the last known area can scroll (as drawing does),
    /// so that scrolling down after scrolling past the top moves at once.
    fn clamp_scroll(&mut self) {
        if self.area.is_empty() {
            return;
        }
        let inner = Block::default().borders(Borders::ALL).inner(self.split(self.area)[0]);
        let width = inner.width.saturating_sub(2) as usize;
        let count: usize = self.history.iter().map(|m| wrap(&m.text, width.saturating_sub(6)).len()).sum();
        self.scroll_back = self.scroll_back.min(count.saturating_sub(inner.height as usize));
    }

    fn scroll(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        self.scroll_back =
            if delta < 0 { self.scroll_back.saturating_add(n) } else { self.scroll_back.saturating_sub(n) };
    }

    /// Handles a key while the input has focus.
    fn key(&mut self, k: KeyEvent) -> InputOutcome {
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
}

/// An empty input for `text`, cursor at the end.
fn new_input(text: &str) -> TextArea<'static> {
    let mut input = TextArea::new(text.split('\n').map(str::to_string).collect());
    input.set_cursor_line_style(ratatui::style::Style::default());
    input.move_cursor(ratatui_textarea::CursorMove::Bottom);
    input.move_cursor(ratatui_textarea::CursorMove::End);
    input
}

impl Component for ChatPane {
    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        self.clamp_scroll();
        match action {
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-super::PAGE),
            Action::PageDown => self.scroll(super::PAGE),
            Action::Top => self.scroll_back = usize::MAX,
            Action::Bottom => self.scroll_back = 0,
            Action::Select => return Handled::emit(Msg::StartTyping),
            _ => return Handled::NotMine,
        }
        self.clamp_scroll();
        Handled::Consumed
    }

    /// Text entry: every key the keymap left to the input.
    fn on_key(&mut self, k: KeyEvent, _ctx: &Ctx) -> Handled {
        match self.key(k) {
            InputOutcome::Submit(text) => Handled::emit(Msg::Submit(text)),
            InputOutcome::Edited => Handled::Consumed,
        }
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
    }

    fn on_resize(&mut self, area: Rect) {
        self.area = area;
    }

    fn hints(&self, keymap: &Keymap, ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        let scroll = (format!("{}/{}", k(Action::Down), k(Action::Up)), "scroll");
        if ctx.replay { vec![scroll] } else { vec![(k(Action::Select), "type"), scroll] }
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, focused, typing) = (ctx.theme, ctx.focused, ctx.typing);
        let [hist_area, input_area] = self.split(area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused && !typing))
            .title(Span::styled(" Chat ", theme.colored(theme.accent)));
        let inner = block.inner(hist_area);
        f.render_widget(block, hist_area);
        let width = inner.width.saturating_sub(2) as usize;
        let lines = self.history_lines(theme, width);
        let height = inner.height as usize;
        let max_back = lines.len().saturating_sub(height);
        let scroll_back = self.scroll_back.min(max_back);
        let start = lines.len().saturating_sub(height + scroll_back);
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
        let title = match (ctx.replay, typing) {
            (true, _) => " Request — not in a replay ",
            (false, true) => " Request ▏typing — Esc: panes ",
            (false, false) => " Request — i or Enter to type ",
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused && typing))
            .title(Span::styled(title, theme.muted()));
        let text_area = block.inner(input_area);
        f.render_widget(block, input_area);
        if self.input.is_empty() && !ctx.replay {
            // What the text area draws for its placeholder (the cursor, then the text in
            // the placeholder style), drawn here because the style comes from the theme.
            let placeholder =
                Text::from(Line::from(vec![Span::styled(" ", self.input.cursor_style()), Span::raw(PLACEHOLDER)]))
                    .style(theme.muted());
            f.render_widget(Paragraph::new(placeholder), text_area);
        } else {
            f.render_widget(&self.input, text_area);
        }
    }
}
