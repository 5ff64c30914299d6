//! The grant editor: toggle scopes, re-token, and optionally re-run the last request —
//! the core workflow for reproducing and debugging a denial. A [`Component`] in the
//! keymap's `Grant` context (Space toggles, Enter re-tokens, `r` re-tokens and re-runs,
//! `d` asks to go back to the client's default scopes — the editor stays open until Enter
//! confirms, Esc or any other key takes it back — by default). In a replay nothing can be
//! re-tokened: the editor says so instead of pretending.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::session::command::Command;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::theme::Theme;
use crate::types::scope::{Scope, ScopeSet};

/// What the live-only actions say in a replay.
pub const REPLAY_NOTICE: &str = "not available in a replay";

#[derive(Debug, Clone, PartialEq)]
pub struct GrantEditor {
    /// Every scope worth offering, with whether it is checked.
    pub scopes: Vec<(Scope, bool)>,
    pub selected: usize,
    /// `d` was pressed: Enter re-tokens with the client's defaults.
    pub defaults_pending: bool,
}

impl GrantEditor {
    /// Offers the union of what the tools need and what is granted now; checks the grant.
    pub fn new(offered: &ScopeSet, granted: &ScopeSet) -> Self {
        let mut all = offered.clone();
        for s in granted.iter() {
            all.insert(s.clone());
        }
        Self {
            scopes: all.iter().map(|s| (s.clone(), granted.contains(s))).collect(),
            selected: 0,
            defaults_pending: false,
        }
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

impl Component for GrantEditor {
    fn context(&self) -> Context {
        Context::Grant
    }

    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled {
        if ctx.replay && matches!(action, Action::Apply | Action::RegrantAndRun | Action::DefaultGrant) {
            return Handled::emit(Msg::Notice(REPLAY_NOTICE.into()));
        }
        if std::mem::take(&mut self.defaults_pending) {
            return match action {
                Action::Apply => Handled::Emit(vec![
                    Msg::Close,
                    Msg::Notice("re-token with the client's default scopes".into()),
                    Msg::Command(Command::Regrant(None)),
                ]),
                // Ctrl-C still closes and cancels.
                Action::Cancel => Handled::NotMine,
                // Esc (or any other key) takes the request back; the editor stays open.
                _ => Handled::Consumed,
            };
        }
        match action {
            Action::Toggle => self.toggle(),
            Action::Down => self.down(),
            Action::Up => self.up(),
            Action::Apply => {
                let chosen = self.chosen();
                let shown = if chosen.is_empty() { "(no scopes)".into() } else { chosen.to_string() };
                return Handled::Emit(vec![
                    Msg::Close,
                    Msg::Notice(format!("re-token with: {shown}")),
                    Msg::Command(Command::Regrant(Some(chosen))),
                ]);
            }
            Action::RegrantAndRun => {
                let chosen = self.chosen();
                return Handled::Emit(match (&ctx.last_request, ctx.running) {
                    (Some(req), false) => {
                        vec![Msg::Close, Msg::Command(Command::RegrantAndRun(Some(chosen), req.clone()))]
                    }
                    _ => vec![
                        Msg::Close,
                        Msg::Notice("re-token only: nothing to re-run".into()),
                        Msg::Command(Command::Regrant(Some(chosen))),
                    ],
                });
            }
            Action::DefaultGrant => self.defaults_pending = true,
            _ => return Handled::NotMine,
        }
        Handled::Consumed
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        if self.defaults_pending {
            return vec![(k(Action::Apply), "confirm defaults"), (k(Action::Close), "keep editing")];
        }
        vec![
            (k(Action::Toggle), "toggle"),
            (k(Action::Apply), "re-token"),
            (k(Action::RegrantAndRun), "re-token and re-run"),
            (k(Action::DefaultGrant), "defaults"),
            (k(Action::Close), "cancel"),
        ]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        render(f, area, ctx.theme, ctx.keymap, self)
    }
}

pub fn render(f: &mut Frame, area: Rect, theme: &Theme, keymap: &Keymap, g: &GrantEditor) {
    let k = |a: Action| keymap.key_for(a);
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
    lines.push(Line::styled(
        format!(
            "{} toggle · {} re-token · {} re-token and re-run the last request",
            k(Action::Toggle),
            k(Action::Apply),
            k(Action::RegrantAndRun)
        ),
        theme.muted(),
    ));
    if g.defaults_pending {
        lines.push(Line::styled(
            format!(
                "Use the client's default scopes? {} confirms · {} keeps editing",
                k(Action::Apply),
                k(Action::Close)
            ),
            theme.colored(theme.warn),
        ));
    } else {
        lines.push(Line::styled(
            format!("{} the client's default scopes · {} cancel", k(Action::DefaultGrant), k(Action::Close)),
            theme.muted(),
        ));
    }
    let rect = centered(area, 72, lines.len() as u16 + 2);
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border(true))
        .title(Span::styled(" Grant editor ", theme.colored(theme.accent)));
    f.render_widget(Paragraph::new(lines).block(block), rect);
}
