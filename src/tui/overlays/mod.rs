//! Overlays drawn over the panes: help (from the keymap), the grant editor, the scenario
//! picker and the step detail. Each is a small state struct plus a render function.

pub mod detail;
pub mod grant;
pub mod help;
pub mod scenarios;

use ratatui::layout::{Constraint, Flex, Layout, Rect};

/// A centred rectangle `w`×`h` (clamped to `area`).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [v] = Layout::vertical([Constraint::Length(h.min(area.height))]).flex(Flex::Center).areas(area);
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))]).flex(Flex::Center).areas(v);
    r
}
