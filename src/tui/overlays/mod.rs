//! Overlays drawn over the panes: help (from the keymap), the grant editor, the scenario
//! picker, the step detail, a server's auth flow, the tool-call confirmation, the
//! step-up question and the optimization. Each is a [`Component`] that owns its state and resolves
//! keys in its own keymap context; `App` holds at most one, as an [`Overlay`], and gives
//! it every key first.

pub mod auth_flow;
pub mod confirm;
pub mod detail;
pub mod grant;
pub mod help;
pub mod optimize;
pub mod scenarios;
pub mod step_up;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};

use super::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use super::keymap::{Action, Context, Keymap};
use crate::types::event::Event;

/// A centred rectangle `w`×`h` (clamped to `area`).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))]).flex(Flex::Center).areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))]).flex(Flex::Center).areas(v);
    r
}

/// The open overlay. An enum rather than a `Box<dyn Component>` so that callers (and
/// tests) can tell which one is open.
#[derive(Debug, Clone)]
pub enum Overlay {
    Help(help::HelpView),
    Grant(grant::GrantEditor),
    Scenarios(scenarios::ScenarioPicker),
    Detail(detail::StepDetail),
    /// A tool call waiting for the operator (`App` holds its reply).
    Confirm(confirm::ConfirmView),
    /// One server's OAuth timeline.
    AuthFlow(auth_flow::AuthFlowView),
    /// A step-up waiting for the operator (`App` holds its reply).
    StepUp(step_up::StepUpView),
    /// An optimization: confirm, progress, the before/after table.
    Optimize(optimize::OptimizeView),
}

impl Overlay {
    /// The optimize overlay, if that is the one open.
    pub fn optimize_mut(&mut self) -> Option<&mut optimize::OptimizeView> {
        match self {
            Overlay::Optimize(v) => Some(v),
            _ => None,
        }
    }

    fn component(&self) -> &dyn Component {
        match self {
            Overlay::Help(c) => c,
            Overlay::Grant(c) => c,
            Overlay::Scenarios(c) => c,
            Overlay::Detail(c) => c,
            Overlay::Confirm(c) => c,
            Overlay::AuthFlow(c) => c,
            Overlay::StepUp(c) => c,
            Overlay::Optimize(c) => c,
        }
    }

    fn component_mut(&mut self) -> &mut dyn Component {
        match self {
            Overlay::Help(c) => c,
            Overlay::Grant(c) => c,
            Overlay::Scenarios(c) => c,
            Overlay::Detail(c) => c,
            Overlay::Confirm(c) => c,
            Overlay::AuthFlow(c) => c,
            Overlay::StepUp(c) => c,
            Overlay::Optimize(c) => c,
        }
    }
}

impl Component for Overlay {
    fn context(&self) -> Context {
        self.component().context()
    }

    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled {
        self.component_mut().on_action(action, ctx)
    }

    fn on_event(&mut self, e: &Event) {
        self.component_mut().on_event(e)
    }

    fn on_resize(&mut self, area: Rect) {
        self.component_mut().on_resize(area)
    }

    fn hints(&self, keymap: &Keymap, ctx: &Ctx) -> Vec<Hint> {
        self.component().hints(keymap, ctx)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        self.component().draw(f, area, ctx)
    }
}

/// Draws a component alone into a `w`×`h` test terminal (dark theme, default keys), for
/// the overlays' unit tests.
#[cfg(test)]
pub(crate) fn draw_alone(view: &mut dyn Component, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let theme = super::theme::Theme::dark();
    let keymap = Keymap::default();
    let area = Rect::new(0, 0, w, h);
    view.on_resize(area);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).expect("a test terminal");
    let ctx = DrawCtx { theme: &theme, keymap: &keymap, focused: true, typing: false, now: 0, replay: false };
    term.draw(|f| view.draw(f, area, &ctx)).expect("drawn");
    term.backend().buffer().clone()
}

/// The scroll position of a text overlay (help, detail), clamped to its text once the
/// overlay has been told its size.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scroll {
    offset: usize,
    /// Lines of text and the rows that show them (both 0 until measured).
    total: usize,
    height: usize,
}

impl Scroll {
    /// Measures: `total` lines in `height` rows; clamps the offset.
    pub fn fit(&mut self, total: usize, height: usize) {
        (self.total, self.height) = (total, height);
        self.offset = self.offset.min(self.max());
    }

    fn max(&self) -> usize {
        if self.height == 0 { usize::MAX } else { self.total.saturating_sub(self.height) }
    }

    /// A scroll that starts at the end of the text (a log-like overlay opens at its
    /// newest line).
    pub fn at_end() -> Self {
        Self { offset: usize::MAX, ..Self::default() }
    }

    /// Moves to the end of the text.
    pub fn to_end(&mut self) {
        self.offset = self.max();
    }

    /// Whether the last line is shown.
    pub fn at_bottom(&self) -> bool {
        self.height == 0 || self.offset() >= self.max()
    }

    /// The first line shown.
    pub fn offset(&self) -> usize {
        self.offset.min(self.max())
    }

    fn by(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        self.offset =
            if delta < 0 { self.offset().saturating_sub(n) } else { self.offset().saturating_add(n).min(self.max()) };
    }

    /// "lines 11–30 of 64" when the text does not fit, `None` when it does (or before it
    /// was measured).
    pub fn indicator(&self) -> Option<String> {
        if self.height == 0 || self.total <= self.height {
            return None;
        }
        let first = self.offset() + 1;
        Some(format!("lines {first}–{} of {}", (self.offset() + self.height).min(self.total), self.total))
    }
}

/// Scrolling for the text overlays (help, step detail); `Apply` closes them.
fn scroll_text(scroll: &mut Scroll, action: Action) -> Handled {
    match action {
        Action::Down => scroll.by(1),
        Action::Up => scroll.by(-1),
        Action::PageDown => scroll.by(10),
        Action::PageUp => scroll.by(-10),
        Action::Apply => return Handled::emit(Msg::Close),
        _ => return Handled::NotMine,
    }
    Handled::Consumed
}

/// The status-bar hints of a text overlay.
fn reader_hints(keymap: &Keymap) -> Vec<Hint> {
    let k = |a| keymap.key_for(a);
    vec![
        (format!("{}/{}", k(Action::Down), k(Action::Up)), "scroll"),
        (k(Action::PageDown), "page"),
        (k(Action::Close), "close"),
    ]
}
