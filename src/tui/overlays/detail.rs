//! Step detail: everything about one trace entry — full arguments and observation, the
//! HTTP status and `WWW-Authenticate` of a denial, timing. A [`Component`] owning a copy
//! of the entry (the trace may drop it while the detail is open) and its scroll.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{centered, scroll_text};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::clock;
use crate::tui::panes::trace::TraceEntry;
use crate::tui::theme::Theme;

/// The step-detail overlay.
#[derive(Debug, Clone)]
pub struct StepDetail {
    entry: Box<TraceEntry>,
    scroll: usize,
}

impl StepDetail {
    pub fn new(entry: Box<TraceEntry>) -> Self {
        Self { entry, scroll: 0 }
    }

    /// The entry shown.
    pub fn entry(&self) -> &TraceEntry {
        &self.entry
    }
}

impl Component for StepDetail {
    fn context(&self) -> Context {
        Context::Reader
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        scroll_text(&mut self.scroll, action)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        render(f, area, ctx.theme, ctx.keymap, &self.entry, self.scroll)
    }
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap, entry: &TraceEntry, scroll: usize) {
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("{:?}", entry.kind), theme.colored(theme.accent)),
        Span::styled(
            format!(
                "  {}  step {}  {}",
                entry.run_id,
                entry.step.map(|s| s.to_string()).unwrap_or("-".into()),
                clock(entry.at_ms)
            ),
            theme.muted(),
        ),
    ])];
    lines.push(Line::raw(""));
    for (label, value) in &entry.detail {
        lines.push(Line::styled(format!("{label}:"), theme.colored(theme.info)));
        for l in value.lines() {
            lines.push(Line::raw(format!("  {l}")));
        }
    }
    if entry.detail.is_empty() {
        lines.push(Line::raw(entry.text.clone()));
    }
    let rect = centered(area, area.width.saturating_sub(6).max(20), area.height.saturating_sub(4).max(5));
    f.render_widget(Clear, rect);
    let block = Block::default().borders(Borders::ALL).border_style(theme.border(true)).title(Span::styled(
        format!(
            " Step detail — {}/{} scroll, {} close ",
            keymap.key_for(Action::Down),
            keymap.key_for(Action::Up),
            keymap.key_for(Action::Close)
        ),
        theme.colored(theme.accent),
    ));
    f.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }).scroll((scroll as u16, 0)), rect);
}
