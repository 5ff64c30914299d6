//! The detail overlay: everything about one trace step or one feed entry — full arguments
//! and observation, required and granted scopes, the HTTP status and `WWW-Authenticate` of
//! a denial, an anomaly's evidence, timing. A [`Component`] owning a copy of what it shows
//! (the pane may drop the entry while the overlay is open) and its scroll, which it clamps
//! to the text it has once it knows its size (a scroll indicator in the title says where
//! it is when the text does not fit).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Scroll, centered, reader_hints, scroll_text};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::trace::TraceEntry;
use crate::tui::panes::{clock, wrap};
use crate::tui::theme::Theme;

/// What the overlay shows: a heading, then label/value rows (or a plain text).
#[derive(Debug, Clone)]
pub struct DetailContent {
    /// "Step detail", "Feed entry".
    pub title: &'static str,
    /// What the entry is (`Denied`, `ANOMALY`, …), drawn in the accent colour.
    pub kind: String,
    /// Run, step and time, drawn muted after the kind.
    pub meta: String,
    pub rows: Vec<(String, String)>,
    /// Shown when there are no rows.
    pub text: String,
}

impl DetailContent {
    /// A trace step.
    pub fn step(entry: &TraceEntry) -> Self {
        let step = entry.step.map(|s| s.to_string()).unwrap_or("-".into());
        Self {
            title: "Step detail",
            kind: format!("{:?}", entry.kind),
            meta: format!("{}  step {step}  {}", entry.run_id, clock(entry.at_ms)),
            rows: entry.detail.clone(),
            text: entry.text.clone(),
        }
    }
}

/// The detail overlay.
#[derive(Debug, Clone)]
pub struct StepDetail {
    content: Box<DetailContent>,
    scroll: Scroll,
    /// The panes' area last measured for (to measure again only when it changes).
    area: Rect,
}

impl StepDetail {
    pub fn new(content: DetailContent) -> Self {
        Self { content: Box::new(content), scroll: Scroll::default(), area: Rect::default() }
    }

    /// What is shown.
    pub fn content(&self) -> &DetailContent {
        &self.content
    }

    fn lines(&self, theme: &Theme) -> Vec<Line<'_>> {
        let c = &self.content;
        let mut lines = vec![Line::from(vec![
            Span::styled(c.kind.as_str(), theme.colored(theme.accent)),
            Span::styled(format!("  {}", c.meta), theme.muted()),
        ])];
        lines.push(Line::raw(""));
        for (label, value) in &c.rows {
            lines.push(Line::styled(format!("{label}:"), theme.colored(theme.info)));
            for l in value.lines() {
                lines.push(Line::raw(format!("  {l}")));
            }
        }
        if c.rows.is_empty() {
            lines.push(Line::raw(c.text.as_str()));
        }
        lines
    }
}

/// The overlay's box on the panes' `area`.
fn frame(area: Rect) -> Rect {
    centered(area, area.width.saturating_sub(6).max(20), area.height.saturating_sub(4).max(5))
}

impl Component for StepDetail {
    fn context(&self) -> Context {
        Context::Reader
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        scroll_text(&mut self.scroll, action)
    }

    fn on_resize(&mut self, area: Rect) {
        if self.area == area {
            return;
        }
        self.area = area;
        let inner = Block::default().borders(Borders::ALL).inner(frame(area));
        // The wrapped height at this width (the same greedy word wrap the panes use).
        let width = inner.width as usize;
        let c = &self.content;
        let rows = |s: &str| wrap(s, width).len();
        let mut total = rows(&format!("{}  {}", c.kind, c.meta)) + 1;
        for (label, value) in &c.rows {
            total += rows(&format!("{label}:")) + value.lines().map(|l| rows(&format!("  {l}"))).sum::<usize>();
        }
        if c.rows.is_empty() {
            total += rows(&c.text);
        }
        self.scroll.fit(total, inner.height as usize);
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        reader_hints(keymap)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, keymap) = (ctx.theme, ctx.keymap);
        let rect = frame(area);
        f.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(true))
            .title(Span::styled(title(&self.content, keymap, &self.scroll), theme.colored(theme.accent)));
        let para = Paragraph::new(self.lines(theme)).block(block).wrap(Wrap { trim: false });
        f.render_widget(para.scroll((self.scroll.offset() as u16, 0)), rect);
    }
}

fn title(c: &DetailContent, keymap: &Keymap, scroll: &Scroll) -> String {
    let close = keymap.key_for(Action::Close);
    match scroll.indicator() {
        Some(at) => format!(
            " {} — {at} · {}/{} scroll · {close} close ",
            c.title,
            keymap.key_for(Action::Down),
            keymap.key_for(Action::Up)
        ),
        None => format!(" {} — {close} close ", c.title),
    }
}
