//! `?`: every binding from the keymap with its help text, plus the input-line keys.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::tui::keymap::Keymap;
use crate::tui::theme::Theme;

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap, scroll: usize) {
    let mut lines: Vec<Line> = keymap
        .help_rows()
        .into_iter()
        .map(|(keys, help)| {
            Line::from(vec![Span::styled(format!("{keys:>18}  "), theme.colored(theme.accent)), Span::raw(help)])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled("While typing a request:", theme.muted()));
    for (k, h) in [
        ("Enter", "send"),
        ("Alt-Enter / Ctrl-J", "new line"),
        ("↑ / ↓", "recall earlier requests"),
        ("Esc", "leave the input"),
    ] {
        lines.push(Line::from(vec![Span::styled(format!("{k:>18}  "), theme.colored(theme.accent)), Span::raw(h)]));
    }
    lines.push(Line::styled("Mouse wheel scrolls the pane under the pointer.", theme.muted()));
    let rect = centered(area, 76, (lines.len() as u16 + 2).min(area.height));
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Keys — Esc to close ", theme.colored(theme.accent)));
    f.render_widget(Paragraph::new(lines).block(block).scroll((scroll as u16, 0)), rect);
}
