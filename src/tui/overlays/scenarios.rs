//! The scenario picker: entries from `config/scenarios.toml`; Enter runs one (under its
//! own grant when it names one).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::session::scenario::Scenario;
use crate::tui::panes::clip;
use crate::tui::theme::Theme;

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, scenarios: &[Scenario], selected: usize) {
    let width = area.width.saturating_sub(4).min(110);
    let mut lines = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let grant = s.scopes.as_ref().map(|g| format!("  [grant: {g}]")).unwrap_or_default();
        let expect = if s.should_fail { " (should fail)" } else { "" };
        let mut line = Line::from(vec![
            Span::styled(format!(" {:<30}", clip(&s.name, 30)), theme.colored(theme.accent)),
            Span::raw(clip(&format!("{}{grant}{expect}", s.request), (width as usize).saturating_sub(34))),
        ]);
        if i == selected {
            line = line.style(theme.selected());
        }
        lines.push(line);
    }
    if lines.is_empty() {
        lines.push(Line::styled("No scenarios (config/scenarios.toml).", theme.muted()));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(" Enter run · j/k move · Esc close", theme.muted()));
    let rect = centered(area, width, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Scenarios ", theme.colored(theme.accent)));
    f.render_widget(Paragraph::new(lines).block(block), rect);
}
