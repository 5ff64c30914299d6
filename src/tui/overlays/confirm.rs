//! The confirmation overlay: a tool call the server's `confirm` policy says needs the
//! operator waits here — server, tool, its annotation hints, why it asks, and the
//! arguments (bounded and escaped: they were written by the model, which may have read
//! hostile text). `y`/Enter allows, `n`/Esc declines. A [`Component`] that owns a copy of
//! the question; the reply itself stays with `App`, which answers it when this overlay
//! says so, and declines it when the overlay goes away any other way.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::centered;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::clip;
use crate::types::confirm::Question;
use crate::types::tool::Confirm;

/// Lines of arguments shown at most; the rest are counted.
const MAX_ARG_LINES: usize = 12;

/// The open question.
#[derive(Debug, Clone)]
pub struct ConfirmView {
    question: Question,
}

impl ConfirmView {
    pub fn new(question: Question) -> Self {
        Self { question }
    }

    pub fn question(&self) -> &Question {
        &self.question
    }
}

impl Component for ConfirmView {
    fn context(&self) -> Context {
        Context::Confirm
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        match action {
            Action::Allow => Handled::emit(Msg::Confirm(true)),
            Action::Decline | Action::Close => Handled::emit(Msg::Confirm(false)),
            // Ctrl-C: App closes the overlay (declining) and cancels the run.
            Action::Cancel => Handled::NotMine,
            // Nothing else may act while a call waits for an answer.
            _ => Handled::Consumed,
        }
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        vec![(keymap.key_for(Action::Allow), "allow"), (keymap.key_for(Action::Decline), "decline")]
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let theme = ctx.theme;
        let q = &self.question;
        let width = area.width.saturating_sub(4).min(90);
        let inner = (width as usize).saturating_sub(2);
        let label = |l: &str| Span::styled(format!(" {l:<9}"), theme.muted());
        let why = match (q.policy, q.hints.declared) {
            (Confirm::Always, _) => format!("{} asks before every call (confirm = \"always\")", q.tool.server),
            (_, false) => "the server declares no annotations: treated as destructive".to_string(),
            _ => "annotated as destructive".to_string(),
        };
        let mut lines = vec![
            Line::from(vec![label("server"), Span::raw(clip(&escape(&q.tool.server), inner.saturating_sub(10)))]),
            Line::from(vec![
                label("tool"),
                Span::styled(
                    clip(&escape(&q.tool.name), inner.saturating_sub(10)),
                    theme.colored(theme.accent).add_modifier(Modifier::BOLD),
                ),
            ]),
            Line::from(vec![label("hints"), Span::raw(clip(&q.hints.describe(), inner.saturating_sub(10)))]),
            Line::from(vec![
                label("why"),
                Span::styled(clip(&why, inner.saturating_sub(10)), theme.colored(theme.warn)),
            ]),
            Line::from(label("arguments")),
        ];
        let args = serde_json::to_string_pretty(&q.args).unwrap_or_default();
        let arg_lines: Vec<&str> = args.lines().collect();
        for l in arg_lines.iter().take(MAX_ARG_LINES) {
            lines.push(Line::raw(format!("   {}", clip(&escape(l), inner.saturating_sub(3)))));
        }
        if arg_lines.len() > MAX_ARG_LINES {
            let more = crate::types::text::counted((arg_lines.len() - MAX_ARG_LINES) as u64, "line", "lines");
            lines.push(Line::styled(format!("   … {more} more"), theme.muted()));
        }
        lines.push(Line::raw(""));
        let k = |a: Action| ctx.keymap.key_for(a);
        lines.push(Line::styled(
            format!(" {} allow · {} decline (nothing is sent)", k(Action::Allow), k(Action::Decline)),
            theme.text().add_modifier(Modifier::BOLD),
        ));
        let rect = centered(area, width, lines.len() as u16 + 2);
        f.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.colored(theme.warn))
            .title(Span::styled(" Confirm tool call ", theme.colored(theme.warn).add_modifier(Modifier::BOLD)));
        f.render_widget(Paragraph::new(lines).block(block), rect);
    }
}

/// Control and bidirectional-formatting characters as `\u{…}`, so text the model wrote
/// cannot move the cursor, recolour the terminal or reorder what the operator reads.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_escaped() {
        assert_eq!(escape("rm\u{1b}[2J -rf \u{202e}fdp.exe"), "rm\\u{1b}[2J -rf \\u{202e}fdp.exe");
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
    }
}
