//! Layout and the status bar. Two columns: Chat over Token on the left, Trace over Feed on
//! the right; it degrades to the same grid, just tighter, down to 80×24.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::{App, Overlay};
use super::keymap::Action;
use super::overlays;
use super::panes::Pane;

pub fn render(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let [main, status] = Layout::vertical([Constraint::Min(6), Constraint::Length(1)]).areas(area);
    let left_pct = if main.width >= 140 { 38 } else { 42 };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(left_pct), Constraint::Percentage(100 - left_pct)]).areas(main);
    let [chat, token] = Layout::vertical([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(left);
    let [trace, feed] = Layout::vertical([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(right);
    app.areas = vec![(Pane::Chat, chat), (Pane::Token, token), (Pane::Trace, trace), (Pane::Feed, feed)];

    let theme = app.theme.clone();
    let focus = app.focus;
    app.chat.render(f, chat, &theme, focus == Pane::Chat, app.typing);
    app.token.render(f, token, &theme, focus == Pane::Token, app.now);
    app.trace.render(f, trace, &theme, focus == Pane::Trace);
    app.feed.render(f, feed, &theme, focus == Pane::Feed);
    render_status(f, status, app);

    match &app.overlay {
        Some(Overlay::Help { scroll }) => overlays::help::render(f, main, &theme, &app.keymap, *scroll),
        Some(Overlay::Grant(g)) => overlays::grant::render(f, main, &theme, g),
        Some(Overlay::Scenarios { selected }) => {
            overlays::scenarios::render(f, main, &theme, &app.info.scenarios, *selected)
        }
        Some(Overlay::Detail { entry, scroll }) => overlays::detail::render(f, main, &theme, entry, *scroll),
        None => {}
    }
}

fn render_status(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let sep = Span::styled(" │ ", t.muted());
    let servers = if app.info.servers.is_empty() {
        Span::styled("○ no servers", t.muted())
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
        "Tab focus · {} help · {} grant · {} scenarios · {} quit",
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
