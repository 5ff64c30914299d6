//! The grant editor: toggle scopes, re-token, and optionally re-run the last request —
//! the core workflow for reproducing and debugging a denial.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::tui::theme::Theme;
use crate::types::scope::{Scope, ScopeSet};

#[derive(Debug, Clone, PartialEq)]
pub struct GrantEditor {
    /// Every scope worth offering, with whether it is checked.
    pub scopes: Vec<(Scope, bool)>,
    pub selected: usize,
}

impl GrantEditor {
    /// Offers the union of what the tools need and what is granted now; checks the grant.
    pub fn new(offered: &ScopeSet, granted: &ScopeSet) -> Self {
        let mut all = offered.clone();
        for s in granted.iter() {
            all.insert(s.clone());
        }
        Self { scopes: all.iter().map(|s| (s.clone(), granted.contains(s))).collect(), selected: 0 }
    }

    pub fn toggle(&mut self) {
        if let Some((_, on)) = self.scopes.get_mut(self.selected) {
            *on = !*on;
        }
    }

    pub fn up(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    pub fn down(&mut self) {
        self.selected = (self.selected + 1).min(self.scopes.len().saturating_sub(1));
    }

    pub fn chosen(&self) -> ScopeSet {
        self.scopes.iter().filter(|(_, on)| *on).map(|(s, _)| s.clone()).collect()
    }
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, g: &GrantEditor) {
    let mut lines =
        vec![Line::styled("Scopes to request (the issuer decides what is allowed):", theme.muted()), Line::raw("")];
    for (i, (scope, on)) in g.scopes.iter().enumerate() {
        let mark = if *on { "[✓]" } else { "[ ]" };
        let mut line = Line::from(vec![
            Span::styled(format!(" {mark} "), theme.colored(if *on { theme.ok } else { theme.muted })),
            Span::raw(scope.to_string()),
        ]);
        if i == g.selected {
            line = line.style(theme.selected());
        }
        lines.push(line);
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("Space toggle · Enter re-token · r re-token and re-run the last request", theme.muted()));
    lines.push(Line::styled("d the client's default scopes · Esc cancel", theme.muted()));
    let rect = centered(area, 72, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Grant editor ", theme.colored(theme.accent)));
    f.render_widget(Paragraph::new(lines).block(block), rect);
}
