//! The step-up question: a server answered a tool call with 403 `insufficient_scope` and
//! the login's policy is `ask` (the console's default), so the call waits here for the
//! operator — which server asks for which scopes, for which tool, and the grant a
//! re-authorization would ask for, each scope it adds marked `+`. `y` re-authorizes (the
//! call is then retried); `n`, Esc or Enter declines (the default: more access is the
//! operator's call), and the denial stands. A [`Component`] owning a copy of the question;
//! the reply stays with `App`, which answers it when this overlay says so and declines it
//! when the overlay goes away any other way.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::centered;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::{clip, wrap};
use crate::types::step_up::StepUpQuestion;

/// The open question.
#[derive(Debug, Clone)]
pub struct StepUpView {
    question: StepUpQuestion,
}

impl StepUpView {
    pub fn new(question: StepUpQuestion) -> Self {
        Self { question }
    }

    pub fn question(&self) -> &StepUpQuestion {
        &self.question
    }

    /// The question as one sentence.
    pub fn sentence(&self) -> String {
        let q = &self.question;
        format!("{} asks for {} — re-authorize with {}? [y/N]", q.server, q.asked, q.union)
    }
}

impl Component for StepUpView {
    fn context(&self) -> Context {
        Context::StepUp
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        match action {
            Action::Allow => Handled::emit(Msg::Confirm(true)),
            // Ctrl-C: App closes the overlay (declining) and cancels the run.
            Action::Cancel => Handled::NotMine,
            // [y/N]: every other key that means something here is a no.
            _ => Handled::emit(Msg::Confirm(false)),
        }
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        vec![(keymap.key_for(Action::Allow), "re-authorize"), (keymap.key_for(Action::Decline), "decline")]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let q = &self.question;
        let width = area.width.saturating_sub(4).min(90);
        let inner = (width as usize).saturating_sub(2);
        let label = |l: &str| Span::styled(format!(" {l:<9}"), theme.muted());
        let value_w = inner.saturating_sub(10);
        let mut lines: Vec<Line> = wrap(&self.sentence(), inner.saturating_sub(1))
            .into_iter()
            .map(|l| Line::styled(format!(" {l}"), theme.text().add_modifier(Modifier::BOLD)))
            .collect();
        lines.push(Line::raw(""));
        lines.push(Line::from(vec![label("tool"), Span::raw(clip(&q.tool, value_w))]));
        let granted = if q.granted.is_empty() { "(no scopes)".to_string() } else { q.granted.to_string() };
        lines.push(Line::from(vec![label("granted"), Span::raw(clip(&granted, value_w))]));
        // The grant a re-authorization asks for, each added scope marked `+`.
        let added = q.added();
        let mut spans = vec![label("would be")];
        let mut used = 0;
        for s in q.union.iter() {
            let new = added.iter().any(|a| a == s);
            let text = if new { format!("+{s} ") } else { format!("{s} ") };
            used += text.chars().count();
            if used > value_w {
                spans.push(Span::styled("…", theme.muted()));
                break;
            }
            let style = if new { theme.colored(theme.ok).add_modifier(Modifier::BOLD) } else { theme.text() };
            spans.push(Span::styled(text, style));
        }
        lines.push(Line::from(spans));
        lines.push(Line::raw(""));
        let k = |a: Action| ctx.keymap.key_for(a);
        lines.push(Line::styled(
            clip(
                &format!(" {} re-authorize · {} decline (the denial stands)", k(Action::Allow), k(Action::Decline)),
                inner,
            ),
            theme.colored(theme.warn),
        ));
        let rect = centered(area, width, lines.len() as u16 + 2);
        f.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.colored(theme.warn))
            .title(Span::styled(" Step-up ", theme.colored(theme.warn).add_modifier(Modifier::BOLD)));
        f.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::theme::Theme;
    use crate::types::scope::ScopeSet;

    fn view() -> StepUpView {
        let set = |s: &str| ScopeSet::parse(s).unwrap();
        StepUpView::new(StepUpQuestion {
            server: "customer-service".into(),
            tool: "create_support_ticket".into(),
            asked: set("ticket:create"),
            granted: set("account:calculate customer:read"),
            union: set("account:calculate customer:read ticket:create"),
        })
    }

    #[test]
    fn the_question_and_the_grant_diff_at_80x24() {
        let theme = Theme::dark();
        let buf = super::super::draw_alone(&mut view(), 80, 24);
        let rows: Vec<String> =
            (0..24).map(|y| (0..80).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect();
        let screen = rows.join("\n");
        let text = |r: &str| r.trim().trim_matches('│').trim().to_string();
        let body: Vec<String> = rows.iter().map(|r| text(r)).filter(|r| !r.is_empty()).collect();
        assert_eq!(
            body[1..body.len() - 1],
            [
                "customer-service asks for ticket:create — re-authorize with",
                "account:calculate customer:read ticket:create? [y/N]",
                "tool     create_support_ticket",
                "granted  account:calculate customer:read",
                "would be account:calculate customer:read +ticket:create",
                "y re-authorize · n decline (the denial stands)",
            ],
            "{screen}"
        );
        let y = rows.iter().position(|r| r.contains("+ticket:create")).unwrap();
        let x = rows[y].find("+ticket").map(|b| rows[y][..b].chars().count()).unwrap() as u16;
        assert_eq!(buf[(x, y as u16)].fg, theme.ok, "an added scope in the success style");
        let x = rows[y].find("customer:read").map(|b| rows[y][..b].chars().count()).unwrap() as u16;
        assert_eq!(buf[(x, y as u16)].fg, theme.fg, "a scope already granted in the text style");
    }

    #[test]
    fn y_re_authorizes_and_anything_else_declines() {
        let mut v = view();
        let answer = |h: Handled| match h {
            Handled::Emit(m) => format!("{m:?}"),
            other => format!("{other:?}"),
        };
        assert_eq!(answer(v.on_action(Action::Allow, &Ctx::default())), "[Confirm(true)]");
        for a in [Action::Decline, Action::Close, Action::Apply, Action::Down] {
            assert_eq!(answer(v.on_action(a, &Ctx::default())), "[Confirm(false)]", "{a:?}");
        }
        assert_eq!(answer(v.on_action(Action::Cancel, &Ctx::default())), "NotMine");
    }
}
