//! `?`: every binding from the keymap with its help text, grouped by the context it works
//! in (panes, every overlay, the grant editor, …), plus the chat input's text-editing keys.
//! Nothing here is written by hand except those editing keys, so the help cannot drift from
//! the behaviour and shows rebound keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{centered, scroll_text};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::theme::Theme;

/// The help overlay: its scroll position.
#[derive(Debug, Clone, Default)]
pub struct HelpView {
    scroll: usize,
}

impl HelpView {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Component for HelpView {
    fn context(&self) -> Context {
        Context::Reader
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        scroll_text(&mut self.scroll, action)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        render(f, area, ctx.theme, ctx.keymap, self.scroll)
    }
}

fn row<'a>(theme: &Theme, keys: &str, help: &'a str) -> Line<'a> {
    Line::from(vec![Span::styled(format!("{keys:>18}  "), theme.colored(theme.accent)), Span::raw(help)])
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap, scroll: usize) {
    let mut lines: Vec<Line> = Vec::new();
    for (context, (heading, rows)) in Context::HELP_ORDER.iter().zip(keymap.help_sections()) {
        if rows.is_empty() {
            continue;
        }
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(format!("{heading}:"), theme.muted()));
        lines.extend(rows.into_iter().map(|(keys, help)| row(theme, &keys, help)));
        if *context == Context::Panes {
            // The input's own editing keys (not bindings: they type).
            lines.push(Line::raw(""));
            lines.push(Line::styled(format!("{}:", Context::Typing.heading()), theme.muted()));
            let leave = keymap.key_for(Action::Back);
            for (k, h) in [
                ("Enter", "send"),
                ("Alt-Enter / Ctrl-J", "new line"),
                ("↑ / ↓", "recall earlier requests"),
                (leave.as_str(), "leave the input"),
            ] {
                lines.push(row(theme, k, h));
            }
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Mouse wheel scrolls the pane under the pointer.", theme.muted()));
    let rect = centered(area, 76, (lines.len() as u16 + 2).min(area.height));
    f.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).border_style(theme.border(true)).title(Span::styled(
        format!(" Keys — {} to close ", keymap.key_for(Action::Close)),
        theme.colored(theme.accent),
    ));
    f.render_widget(Paragraph::new(lines).block(block).scroll((scroll as u16, 0)), rect);
}
