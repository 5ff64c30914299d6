//! The Token & scopes pane: who the token says we are (issuer, client, audience), how it
//! was checked (verified ✓, alg, kid), when it expires (countdown and gauge), refreshes,
//! fingerprint — and the granted scopes against each tool's required scopes. A
//! [`Component`]; asked for [`Action::Grant`] it opens the grant editor on what it knows
//! (the scopes the tools need and the scopes granted now).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph};

use super::clip;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Msg};
use crate::tui::keymap::Action;
use crate::tui::overlays::Overlay;
use crate::tui::overlays::grant::GrantEditor;
use crate::types::event::{Event, EventKind, TokenInfo};
use crate::types::scope::ScopeSet;

/// A tool and the scopes it needs.
#[derive(Debug, Clone)]
pub struct ToolScopes {
    pub server: String,
    pub name: String,
    pub required: ScopeSet,
}

#[derive(Debug, Default)]
pub struct TokenPane {
    token: Option<TokenInfo>,
    /// The last token failure (rejected or refused), cleared by the next good token.
    problem: Option<String>,
    tools: Vec<ToolScopes>,
    /// Rows of the tool matrix scrolled off the top (clamped when drawn).
    scroll: usize,
}

impl TokenPane {
    pub fn new(tools: Vec<ToolScopes>) -> Self {
        Self { tools, ..Self::default() }
    }

    pub fn ingest(&mut self, e: &Event) {
        match &e.kind {
            EventKind::TokenIssued { token, .. } => {
                self.token = Some(token.clone());
                self.problem = None;
            }
            EventKind::TokenRejected { check, detail } => {
                self.problem = Some(format!("✗ rejected ({check}): {detail}"))
            }
            EventKind::TokenError { detail } => self.problem = Some(format!("✗ {detail}")),
            _ => {}
        }
    }

    pub fn granted(&self) -> ScopeSet {
        self.token.as_ref().map(|t| t.granted.clone()).unwrap_or_default()
    }

    /// Every scope some tool needs.
    pub fn offered(&self) -> ScopeSet {
        let mut offered = ScopeSet::new();
        for t in &self.tools {
            for s in t.required.iter() {
                offered.insert(s.clone());
            }
        }
        offered
    }

    fn scroll(&mut self, delta: i64) {
        let n = delta.unsigned_abs() as usize;
        self.scroll = if delta < 0 { self.scroll.saturating_sub(n) } else { self.scroll.saturating_add(n) };
    }
}

impl Component for TokenPane {
    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        match action {
            Action::Up => self.scroll(-1),
            Action::Down => self.scroll(1),
            Action::PageUp => self.scroll(-super::PAGE),
            Action::PageDown => self.scroll(super::PAGE),
            Action::Top => self.scroll = 0,
            Action::Bottom => self.scroll = usize::MAX / 2,
            Action::Grant => {
                return Handled::emit(Msg::Open(Overlay::Grant(GrantEditor::new(&self.offered(), &self.granted()))));
            }
            _ => return Handled::NotMine,
        }
        Handled::Consumed
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, focused, now) = (ctx.theme, ctx.focused, ctx.now);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(focused))
            .title(Span::styled(" Token & scopes ", theme.colored(theme.accent)));
        let inner = block.inner(area);
        f.render_widget(block, area);
        let w = inner.width as usize;
        let Some(t) = &self.token else {
            let msg = self.problem.clone().unwrap_or_else(|| "No token yet.".into());
            f.render_widget(Paragraph::new(Line::styled(msg, theme.colored(theme.error))), inner);
            return;
        };
        let left = t.seconds_to_expiry(now);
        let ttl = t.expires_at.saturating_sub(t.issued_at).max(1) as f64;
        let ratio = (left.max(0) as f64 / ttl).clamp(0.0, 1.0);
        let expiry_color = if left <= 0 {
            theme.error
        } else if left < 120 {
            theme.warn
        } else {
            theme.ok
        };
        let countdown =
            if left > 0 { format!("{}m{:02}s left", left / 60, left % 60) } else { format!("EXPIRED {}s ago", -left) };
        let label = |s: &'static str| Span::styled(format!("{s:<10}"), theme.muted());
        let mut head = vec![
            Line::from(vec![
                Span::styled("✓ verified", theme.colored(theme.ok).add_modifier(Modifier::BOLD)),
                Span::styled(format!("  {} · kid {}", t.alg, clip(&t.kid, w.saturating_sub(22))), theme.muted()),
            ]),
            Line::from(vec![label("issuer"), Span::raw(clip(&t.issuer, w.saturating_sub(10)))]),
            Line::from(vec![
                label("client"),
                Span::raw(clip(&format!("{} (sub {})", t.client_id, t.subject), w.saturating_sub(10))),
            ]),
            Line::from(vec![label("audience"), Span::raw(clip(&t.audience.join(", "), w.saturating_sub(10)))]),
            Line::from(vec![label("expires"), Span::styled(countdown.clone(), theme.colored(expiry_color))]),
        ];
        let after_gauge = vec![
            Line::from(vec![
                label("refreshes"),
                Span::raw(t.refresh_count.to_string()),
                Span::styled("  fp ", theme.muted()),
                Span::raw(t.fingerprint.to_string()),
            ]),
            Line::from(vec![
                label("granted"),
                Span::styled(clip(&t.granted.to_string(), w.saturating_sub(10)), theme.colored(theme.info)),
            ]),
        ];
        if let Some(p) = &self.problem {
            head.push(Line::styled(clip(p, w), theme.colored(theme.error)));
        }
        let [top, gauge, bottom] =
            Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Length(1), Constraint::Min(0)])
                .areas(inner);
        f.render_widget(Paragraph::new(head), top);
        f.render_widget(
            Gauge::default()
                .ratio(ratio)
                .label(format!("{:.0}%", ratio * 100.0))
                .gauge_style(theme.colored(expiry_color))
                .use_unicode(true),
            gauge,
        );
        let mut lines = after_gauge;
        lines.push(Line::raw(""));
        lines.push(Line::styled(format!("  {:<26} needs", "tool"), theme.muted()));
        let granted = &t.granted;
        // With several servers the matrix is grouped under each server's name (tools are
        // listed server by server already), since two of them may offer the same tool.
        let grouped = self.tools.iter().any(|x| x.server != self.tools[0].server);
        let mut server: Option<&str> = None;
        for tool in &self.tools {
            if grouped && server != Some(tool.server.as_str()) {
                server = Some(tool.server.as_str());
                lines.push(Line::styled(clip(&format!("{}:", tool.server), w), theme.colored(theme.accent)));
            }
            let missing = granted.missing(&tool.required);
            let (glyph, color) = if missing.is_empty() { ("✓", theme.ok) } else { ("✗", theme.denied) };
            let needs =
                if tool.required.is_empty() { "(not advertised)".to_string() } else { tool.required.to_string() };
            lines.push(Line::from(vec![
                Span::styled(format!("{glyph} "), theme.colored(color).add_modifier(Modifier::BOLD)),
                Span::raw(format!("{:<26} ", clip(&tool.name, 26))),
                Span::styled(
                    clip(&needs, w.saturating_sub(29)),
                    if missing.is_empty() { theme.text() } else { theme.colored(color) },
                ),
            ]));
        }
        let skip = self.scroll.min(lines.len().saturating_sub(1));
        f.render_widget(Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()), bottom);
    }
}
