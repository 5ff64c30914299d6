//! Layout and the status bar. Two columns: Chat over Token on the left, Trace over Feed on
//! the right; it degrades to the same grid, just tighter, down to 80×24. [`layout`] is a
//! pure function of the screen size (the mouse uses it too); [`render`] takes `&App` and
//! has each component draw itself.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::component::Component;
use super::keymap::Action;
use super::panes::Pane;

/// Where everything goes on a screen of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The panes' region (overlays are centred in it).
    pub main: Rect,
    pub status: Rect,
    pub chat: Rect,
    pub token: Rect,
    pub trace: Rect,
    pub feed: Rect,
}

impl Areas {
    /// Each pane and its area, in drawing order.
    pub fn panes(&self) -> [(Pane, Rect); 4] {
        [(Pane::Chat, self.chat), (Pane::Token, self.token), (Pane::Trace, self.trace), (Pane::Feed, self.feed)]
    }

    /// The pane under `pos` (for the mouse).
    pub fn pane_at(&self, pos: Position) -> Option<Pane> {
        self.panes().into_iter().find(|(_, r)| r.contains(pos)).map(|(p, _)| p)
    }
}

/// The layout for a screen `area`: a pure function that drawing and the mouse both use.
pub fn layout(area: Rect) -> Areas {
    let [main, status] = Layout::vertical([Constraint::Min(6), Constraint::Length(1)]).areas(area);
    let left_pct = if main.width >= 140 { 38 } else { 42 };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(left_pct), Constraint::Percentage(100 - left_pct)]).areas(main);
    let [chat, token] = Layout::vertical([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(left);
    let [trace, feed] = Layout::vertical([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(right);
    Areas { main, status, chat, token, trace, feed }
}

/// Draws the console. Reads `app` only: scrolling was settled by the handlers (after
/// `App::resize`), so drawing twice gives the same frame.
pub fn render(f: &mut Frame, app: &App) {
    let areas = layout(f.area());
    for (pane, area) in areas.panes() {
        app.pane(pane).draw(f, area, &app.draw_ctx(app.focus == pane));
    }
    render_status(f, areas.status, app);
    if let Some(overlay) = &app.overlay {
        overlay.draw(f, areas.main, &app.draw_ctx(true));
    }
}

fn render_status(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let sep = Span::styled(" │ ", t.muted());
    let down: Vec<&str> =
        app.info.servers.iter().map(|(name, _)| name.as_str()).filter(|n| app.down.contains(*n)).collect();
    let servers = if app.info.servers.is_empty() {
        Span::styled("○ no servers", t.muted())
    } else if !down.is_empty() {
        let up = app.info.servers.len() - down.len();
        let rest = if up > 0 { format!(" ({up} up)") } else { String::new() };
        Span::styled(format!("✖ {} down{rest}", down.join(", ")), t.colored(t.error).add_modifier(Modifier::BOLD))
    } else {
        Span::styled(
            format!("● {} server{}", app.info.servers.len(), if app.info.servers.len() == 1 { "" } else { "s" }),
            t.colored(t.ok),
        )
    };
    let model = format!("model {}", app.info.model);
    let run = match &app.running {
        Some((id, step)) => Span::styled(
            format!("◉ running {id}{}", step.map(|s| format!(" step {s}")).unwrap_or_default()),
            t.colored(t.warn).add_modifier(Modifier::BOLD),
        ),
        None => Span::styled("○ idle", t.muted()),
    };
    let mut spans = vec![servers, sep.clone(), Span::raw(model), sep.clone(), run];
    if app.replay {
        spans.push(sep.clone());
        spans.push(Span::styled(app.info.mode.clone(), t.colored(t.info).add_modifier(Modifier::BOLD)));
    }
    if let Some(n) = &app.notice {
        spans.push(sep.clone());
        spans.push(Span::styled(n.clone(), t.colored(t.info)));
    }
    let k = |a: Action| app.keymap.key_for(a);
    let hints = format!(
        "{} focus · {} help · {} grant · {} scenarios · {} quit",
        k(Action::NextPane),
        k(Action::Help),
        k(Action::Grant),
        k(Action::Scenarios),
        k(Action::Quit)
    );
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    if used + hints.len() + 3 < area.width as usize {
        spans.push(Span::raw(" ".repeat(area.width as usize - used - hints.chars().count())));
        spans.push(Span::styled(hints, t.muted()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
