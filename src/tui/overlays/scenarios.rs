//! The scenario picker: entries from `config/scenarios.toml`; Enter runs one (under its
//! own grant when it names one). A [`Component`] that owns a copy of the list (taken when
//! it opens) and the selection.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::session::command::Command;
use crate::session::scenario::Scenario;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::clip;
use crate::tui::theme::Theme;

/// The scenario picker.
#[derive(Debug, Clone)]
pub struct ScenarioPicker {
    scenarios: Vec<Scenario>,
    selected: usize,
}

impl ScenarioPicker {
    pub fn new(scenarios: Vec<Scenario>) -> Self {
        Self { scenarios, selected: 0 }
    }
}

impl Component for ScenarioPicker {
    fn context(&self) -> Context {
        Context::Viewer
    }

    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled {
        let len = self.scenarios.len();
        match action {
            Action::Down => self.selected = (self.selected + 1).min(len.saturating_sub(1)),
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Apply if len > 0 => {
                let run = if ctx.replay {
                    Msg::Notice(super::grant::REPLAY_NOTICE.into())
                } else if ctx.running {
                    Msg::Notice("a request is running".into())
                } else {
                    Msg::Command(Command::RunScenario(self.selected))
                };
                return Handled::Emit(vec![Msg::Close, run]);
            }
            Action::Apply => {}
            _ => return Handled::NotMine,
        }
        Handled::Consumed
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        vec![
            (k(Action::Apply), "run"),
            (format!("{}/{}", k(Action::Down), k(Action::Up)), "move"),
            (k(Action::Close), "close"),
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        render(f, area, ctx.theme, ctx.keymap, &self.scenarios, self.selected)
    }
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap, scenarios: &[Scenario], selected: usize) {
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
    let k = |a: Action| keymap.key_for(a);
    lines.push(Line::styled(
        format!(" {} run · {}/{} move · {} close", k(Action::Apply), k(Action::Down), k(Action::Up), k(Action::Close)),
        theme.muted(),
    ));
    let rect = centered(area, width, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Scenarios ", theme.colored(theme.accent)));
    f.render_widget(Paragraph::new(lines).block(block), rect);
}
