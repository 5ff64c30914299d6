//! Overlays drawn over the panes: help (from the keymap), the grant editor, the scenario
//! picker and the step detail. Each is a [`Component`] that owns its state and resolves
//! keys in its own keymap context; `App` holds at most one, as an [`Overlay`], and gives
//! it every key first.

pub mod detail;
pub mod grant;
pub mod help;
pub mod scenarios;

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};

use super::component::{Component, Ctx, DrawCtx, Handled, Msg};
use super::keymap::{Action, Context};
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
}

impl Overlay {
    fn component(&self) -> &dyn Component {
        match self {
            Overlay::Help(c) => c,
            Overlay::Grant(c) => c,
            Overlay::Scenarios(c) => c,
            Overlay::Detail(c) => c,
        }
    }

    fn component_mut(&mut self) -> &mut dyn Component {
        match self {
            Overlay::Help(c) => c,
            Overlay::Grant(c) => c,
            Overlay::Scenarios(c) => c,
            Overlay::Detail(c) => c,
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

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        self.component().draw(f, area, ctx)
    }
}

/// Scrolling for the text overlays (help, step detail); `Apply` closes them.
fn scroll_text(scroll: &mut usize, action: Action) -> Handled {
    match action {
        Action::Down => *scroll += 1,
        Action::Up => *scroll = scroll.saturating_sub(1),
        Action::PageDown => *scroll += 10,
        Action::PageUp => *scroll = scroll.saturating_sub(10),
        Action::Apply => return Handled::emit(Msg::Close),
        _ => return Handled::NotMine,
    }
    Handled::Consumed
}
