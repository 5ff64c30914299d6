//! Layout and the status bar. Two columns: Chat over Token on the left, Trace over Feed on
//! the right; it degrades to the same grid, just tighter, down to 80×24 (where the token
//! pane turns compact to keep its matrix). The status bar's key hints follow the mode
//! ([`App::hints`]): the keys that work where the keyboard is, never `?` while typing.
//! [`layout`] is a pure function of the screen size (the mouse uses it too); [`render`]
//! takes `&App` and has each component draw itself.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::app::App;
use super::component::Component;
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

/// The status bar: session facts on the left, the key hints of the mode on the right. When
/// both do not fit, the model is shortened and then dropped, and the hints are cut at a
/// whole hint, so the servers, the run state, a notice and the first hints always show.
fn render_status(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.theme;
    let width = area.width as usize;
    let facts = status_facts(app);
    let used = |spans: &[Span]| spans.iter().map(|s| s.content.chars().count()).sum::<usize>();
    let hints = app.hints();
    // Room for at least the first three hints (or all of them) beside the facts.
    let wanted = hints_text(&hints[..hints.len().min(3)]).chars().count();
    let mut spans = Vec::new();
    for model in [ModelShown::Full, ModelShown::Name, ModelShown::None] {
        spans = facts.spans(app, model);
        if used(&spans) + 3 + wanted <= width {
            break;
        }
    }
    let room = width.saturating_sub(used(&spans) + 3);
    let mut shown = hints.len();
    while shown > 0 && hints_text(&hints[..shown]).chars().count() > room {
        shown -= 1;
    }
    if shown > 0 {
        let text = hints_text(&hints[..shown]);
        spans.push(Span::raw(" ".repeat(width - used(&spans) - text.chars().count())));
        spans.push(Span::styled(text, t.muted()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `key what · key what`.
fn hints_text(hints: &[crate::tui::component::Hint]) -> String {
    let mut out = String::new();
    for (i, (key, what)) in hints.iter().enumerate() {
        if i > 0 {
            out.push_str(" · ");
        }
        out.push_str(key);
        out.push(' ');
        out.push_str(what);
    }
    out
}

/// How much of the model name the status bar has room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelShown {
    Full,
    /// The name without its note (`offline-planner`, not `(offline, deterministic)`).
    Name,
    /// No model, and a replay says only `REPLAY`.
    None,
}

/// The facts the status bar shows, before they are laid out.
struct StatusFacts<'a> {
    servers: Span<'a>,
    run: Span<'a>,
    /// Spans the OpenTelemetry export could not deliver (shown only when there are some).
    otlp: Option<Span<'a>>,
}

fn status_facts(app: &App) -> StatusFacts<'static> {
    let t = &app.theme;
    let down: Vec<&str> = app.info.servers.iter().map(|s| s.name.as_str()).filter(|n| app.down.contains(*n)).collect();
    let servers = if app.info.servers.is_empty() {
        Span::styled("○ no servers", t.muted())
    } else if !down.is_empty() {
        let up = app.info.servers.len() - down.len();
        let rest = if up > 0 { format!(" ({up} up)") } else { String::new() };
        Span::styled(format!("✖ {} down{rest}", down.join(", ")), t.colored(t.error).add_modifier(Modifier::BOLD))
    } else {
        Span::styled(
            format!("● {}", crate::types::text::counted(app.info.servers.len() as u64, "server", "servers")),
            t.colored(t.ok),
        )
    };
    let run = match &app.running {
        Some((id, step)) => Span::styled(
            format!("◉ running {id}{}", step.map(|s| format!(" step {s}")).unwrap_or_default()),
            t.colored(t.warn).add_modifier(Modifier::BOLD),
        ),
        // An optimization's runs are not the operator's request, but the session is busy.
        None if app.optimizing() => Span::styled("◉ optimizing", t.colored(t.warn).add_modifier(Modifier::BOLD)),
        None => Span::styled("○ idle", t.muted()),
    };
    let otlp = app.telemetry.as_ref().map(|t| t.status()).filter(|s| s.spans_lost > 0).map(|s| {
        Span::styled(
            format!("✖ otlp: {} lost", crate::types::text::counted(s.spans_lost, "span", "spans")),
            t.colored(t.error).add_modifier(Modifier::BOLD),
        )
    });
    StatusFacts { servers, run, otlp }
}

impl StatusFacts<'_> {
    fn spans(&self, app: &App, model: ModelShown) -> Vec<Span<'static>> {
        let t = &app.theme;
        let sep = Span::styled(" │ ", t.muted());
        let mut spans = vec![Span::styled(self.servers.content.to_string(), self.servers.style), sep.clone()];
        if let Some(otlp) = &self.otlp {
            spans.extend([Span::styled(otlp.content.to_string(), otlp.style), sep.clone()]);
        }
        let name = app.info.model.split(" (").next().unwrap_or_default();
        match model {
            ModelShown::Full => spans.extend([Span::raw(format!("model {}", app.info.model)), sep.clone()]),
            ModelShown::Name if !name.is_empty() => spans.extend([Span::raw(name.to_string()), sep.clone()]),
            _ => {}
        }
        if let Some(p) = &app.info.program {
            // The program's name and validation state; words give way to the glyph and
            // count when the bar is tight (the glyph says it over ssh and in mono too).
            let state = match (p.valid, model) {
                (true, ModelShown::None) => "✓".to_string(),
                (true, _) => "✓ validated".to_string(),
                (false, ModelShown::None) => format!("✗ {}", p.findings),
                (false, _) => format!("✗ {}", crate::types::text::counted(p.findings as u64, "finding", "findings")),
            };
            let label = if model == ModelShown::Full { format!("program {} ", p.name) } else { format!("{} ", p.name) };
            spans.push(Span::raw(label));
            let color = if p.valid { t.ok } else { t.error };
            spans.push(Span::styled(state, t.colored(color).add_modifier(Modifier::BOLD)));
            spans.push(sep.clone());
        }
        spans.push(Span::styled(self.run.content.to_string(), self.run.style));
        if app.replay {
            // Tight: just the word, so a notice still fits.
            let mode = if model == ModelShown::None {
                app.info.mode.split(' ').next().unwrap_or_default().to_string()
            } else {
                app.info.mode.clone()
            };
            spans.push(sep.clone());
            spans.push(Span::styled(mode, t.colored(t.info).add_modifier(Modifier::BOLD)));
        }
        if let Some(n) = &app.notice {
            spans.push(sep);
            spans.push(Span::styled(n.clone(), t.colored(t.info)));
        }
        spans
    }
}
