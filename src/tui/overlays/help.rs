//! `?`: every binding from the keymap with its help text, grouped by the context it works
//! in (panes, every overlay, the grant editor, …), plus the chat input's text-editing keys.
//! Nothing here is written by hand except those editing keys, so the help cannot drift from
//! the behaviour and shows rebound keys. Each key is listed once per context; when the
//! list does not fit, the title says which lines are shown and the scroll stops at the end.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Scroll, centered, reader_hints, scroll_text};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::theme::Theme;

/// One line of the help.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    Blank,
    Heading(&'static str),
    Key(String, &'static str),
    Note(&'static str),
}

/// The help overlay: its lines (built from the keymap when it opens) and scroll position.
#[derive(Debug, Clone)]
pub struct HelpView {
    rows: Vec<Row>,
    scroll: Scroll,
}

impl HelpView {
    pub fn new(keymap: &Keymap) -> Self {
        Self { rows: rows(keymap), scroll: Scroll::default() }
    }
}

fn rows(keymap: &Keymap) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for (context, (heading, rows)) in Context::HELP_ORDER.iter().zip(keymap.help_sections()) {
        if rows.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(Row::Blank);
        }
        out.push(Row::Heading(heading));
        out.extend(rows.into_iter().map(|(keys, help)| Row::Key(keys, help)));
        if *context == Context::Panes {
            // The input's own editing keys (not bindings: they type).
            out.push(Row::Blank);
            out.push(Row::Heading(Context::Typing.heading()));
            let leave = keymap.key_for(Action::Back);
            for (k, h) in [
                ("Enter", "send"),
                ("Alt-Enter / Ctrl-J", "new line"),
                ("↑ / ↓", "recall earlier requests"),
                (leave.as_str(), "leave the input (the panes' keys act again)"),
            ] {
                out.push(Row::Key(k.to_string(), h));
            }
        }
    }
    out.push(Row::Blank);
    out.push(Row::Note("Mouse wheel scrolls the pane under the pointer."));
    out
}

fn line<'a>(theme: &Theme, row: &'a Row) -> Line<'a> {
    match row {
        Row::Blank => Line::raw(""),
        Row::Heading(h) => Line::styled(format!("{h}:"), theme.muted()),
        Row::Key(keys, help) => {
            Line::from(vec![Span::styled(format!("{keys:>18}  "), theme.colored(theme.accent)), Span::raw(*help)])
        }
        Row::Note(n) => Line::styled(*n, theme.muted()),
    }
}

/// The overlay's box on the panes' `area` for `lines` lines of help.
fn frame(area: Rect, lines: usize) -> Rect {
    centered(area, 76, (lines as u16).saturating_add(2).min(area.height))
}

impl Component for HelpView {
    fn context(&self) -> Context {
        Context::Reader
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        scroll_text(&mut self.scroll, action)
    }

    fn on_resize(&mut self, area: Rect) {
        let rect = frame(area, self.rows.len());
        self.scroll.fit(self.rows.len(), rect.height.saturating_sub(2) as usize);
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        reader_hints(keymap)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, keymap) = (ctx.theme, ctx.keymap);
        let rect = frame(area, self.rows.len());
        f.render_widget(Clear, rect);
        let close = keymap.key_for(Action::Close);
        let title = match self.scroll.indicator() {
            Some(at) => format!(
                " Keys — {at} · {}/{} scroll · {close} close ",
                keymap.key_for(Action::Down),
                keymap.key_for(Action::Up)
            ),
            None => format!(" Keys — {close} to close "),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(true))
            .title(Span::styled(title, theme.colored(theme.accent)));
        // Only the rows that show are turned into lines.
        let height = rect.height.saturating_sub(2) as usize;
        let lines: Vec<Line> =
            self.rows.iter().skip(self.scroll.offset()).take(height).map(|r| line(theme, r)).collect();
        f.render_widget(Paragraph::new(lines).block(block), rect);
    }
}
