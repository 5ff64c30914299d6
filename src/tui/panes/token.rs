//! The Token & scopes pane: how the token was checked, in one of three states — verified ✓
//! (issuer, client, audience, alg, kid from the verified claims), introspected by the
//! authorization server (what it said, never shown as verified), or opaque ("the server
//! decides", with only the token response's scopes and lifetime) — when it expires
//! (countdown and gauge), refreshes, fingerprint, and the granted scopes against each
//! tool's required scopes. A
//! [`Component`]; asked for [`Action::Grant`] it opens the grant editor on what it knows
//! (the scopes the tools need and the scopes granted now).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph};

use super::clip;
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Keymap};
use crate::tui::overlays::Overlay;
use crate::tui::overlays::grant::GrantEditor;
use crate::types::event::{Event, EventKind, OpaqueReason, ScopeOrigin, TokenInfo, TokenState};
use crate::types::scope::ScopeSet;
use crate::types::tool::ToolHints;

/// A tool and the scopes it needs.
#[derive(Debug, Clone)]
pub struct ToolScopes {
    pub server: String,
    pub name: String,
    pub required: ScopeSet,
    /// Its annotation hints, shown as a short marker (`hint_marker`).
    pub hints: ToolHints,
}

/// The matrix's marker for a tool's hints: `ro`, `idem`, `⚠` (destructive), `⚠ idem`,
/// nothing for a plain write, or `?` when the server declared none (treated as
/// destructive: calls ask first).
pub fn hint_marker(hints: &ToolHints) -> &'static str {
    hints.marker()
}

#[derive(Debug, Default)]
pub struct TokenPane {
    token: Option<TokenInfo>,
    /// The last token failure (rejected or refused), cleared by the next good token.
    problem: Option<String>,
    tools: Vec<ToolScopes>,
    /// Rows of the tool matrix scrolled off the top (clamped to what the last known area
    /// leaves hidden, and again when drawn).
    scroll: usize,
    /// The whole pane, from the last `on_resize` (empty until then).
    area: Rect,
}

/// How the pane lays out a token in `height` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Two summary lines instead of identity lines, gauge and fingerprint, so the matrix
    /// keeps the room (an 80×24 terminal).
    compact: bool,
    /// Rows left for the matrix.
    rows: usize,
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

    /// Rows of the matrix: a heading per server when there are several, and a row per tool.
    fn matrix_len(&self) -> usize {
        let servers = self.tools.windows(2).filter(|w| w[0].server != w[1].server).count() + 1;
        self.tools.len() + if self.grouped() { servers } else { 0 }
    }

    fn grouped(&self) -> bool {
        self.tools.iter().any(|x| x.server != self.tools[0].server)
    }

    /// The layout for an inner height: full when everything fits, compact otherwise.
    fn plan(&self, height: usize) -> Plan {
        let problem = usize::from(self.problem.is_some());
        // Identity (5) and problem, gauge, refreshes and granted, a blank line, the header.
        let full = 5 + problem + 1 + 2 + 1 + 1;
        if height >= full + self.matrix_len() {
            return Plan { compact: false, rows: height - full };
        }
        // Expiry and granted, the problem, the header.
        Plan { compact: true, rows: height.saturating_sub(2 + problem + 1) }
    }

    /// Matrix rows hidden below at this inner height (what the scroll can reach).
    fn max_scroll(&self, height: usize) -> usize {
        self.matrix_len().saturating_sub(self.plan(height).rows)
    }

    fn clamp_scroll(&mut self) {
        if !self.area.is_empty() {
            let height = Block::default().borders(Borders::ALL).inner(self.area).height as usize;
            self.scroll = self.scroll.min(self.max_scroll(height));
        }
    }

    /// The matrix for a text width `w`: a 26-wide name column when there is room; in a
    /// narrow pane names are clipped so the scopes keep ten columns.
    fn matrix<'a>(&'a self, theme: &crate::tui::theme::Theme, t: &TokenInfo, w: usize) -> Vec<Line<'a>> {
        // An opaque token whose scopes nobody stated: the server decides each call.
        let unknown = matches!(t.state, TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. });
        const NAME: usize = 26;
        const NEEDS: usize = 10;
        let longest = self.tools.iter().map(|t| t.name.chars().count()).max().unwrap_or(4);
        // The hint column is as wide as the widest marker (`ro`, `⚠ idem`), so it costs
        // the names little at 80×24.
        let hint_w = self.tools.iter().map(|t| hint_marker(&t.hints).chars().count()).max().unwrap_or(0) + 1;
        let name_w = if w >= NAME + 3 + hint_w + NEEDS {
            NAME
        } else {
            longest.min(w.saturating_sub(3 + hint_w + NEEDS)).clamp(6, NAME)
        };
        let needs_w = w.saturating_sub(name_w + 3 + hint_w);
        let mut lines = Vec::with_capacity(self.matrix_len() + 1);
        lines.push(Line::styled(format!("  {:<name_w$} {:<hint_w$}needs", "tool", ""), theme.muted()));
        let grouped = self.grouped();
        let mut server: Option<&str> = None;
        for tool in &self.tools {
            if grouped && server != Some(tool.server.as_str()) {
                server = Some(tool.server.as_str());
                lines.push(Line::styled(clip(&format!("{}:", tool.server), w), theme.colored(theme.accent)));
            }
            let missing = t.missing(&tool.required);
            let (glyph, color) = if unknown {
                ("?", theme.warn)
            } else if missing.is_empty() {
                ("✓", theme.ok)
            } else {
                ("✗", theme.denied)
            };
            let needs =
                if tool.required.is_empty() { "(not advertised)".to_string() } else { tool.required.to_string() };
            lines.push(Line::from(vec![
                Span::styled(format!("{glyph} "), theme.colored(color).add_modifier(Modifier::BOLD)),
                Span::raw(format!("{:<name_w$} ", clip(&tool.name, name_w))),
                Span::styled(
                    format!("{:<hint_w$}", hint_marker(&tool.hints)),
                    if tool.hints.is_destructive() { theme.colored(theme.warn) } else { theme.muted() },
                ),
                Span::styled(
                    clip(&needs, needs_w),
                    if missing.is_empty() { theme.text() } else { theme.colored(color) },
                ),
            ]));
        }
        lines
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
            Action::Bottom => self.scroll = usize::MAX,
            Action::Grant => {
                return Handled::emit(Msg::Open(Overlay::Grant(GrantEditor::new(&self.offered(), &self.granted()))));
            }
            _ => return Handled::NotMine,
        }
        self.clamp_scroll();
        Handled::Consumed
    }

    fn on_event(&mut self, e: &Event) {
        self.ingest(e);
        self.clamp_scroll();
    }

    fn on_resize(&mut self, area: Rect) {
        self.area = area;
        self.clamp_scroll();
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let height = Block::default().borders(Borders::ALL).inner(self.area).height as usize;
        if self.token.is_some() && self.max_scroll(height) > 0 {
            let k = |a| keymap.key_for(a);
            return vec![(format!("{}/{}", k(Action::Down), k(Action::Up)), "scroll the tools")];
        }
        Vec::new()
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
        // No lifetime known (no expires_in): an empty gauge, and the countdown says why.
        let ratio = match (left, t.expires_at) {
            (Some(left), Some(at)) => {
                (left.max(0) as f64 / at.saturating_sub(t.issued_at).max(1) as f64).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        let expiry_color = match left {
            None => theme.warn,
            Some(l) if l <= 0 => theme.error,
            Some(l) if l < 120 => theme.warn,
            Some(_) => theme.ok,
        };
        let countdown = match left {
            Some(l) if l > 0 => format!("{}m{:02}s left", l / 60, l % 60),
            Some(l) => format!("EXPIRED {}s ago", -l),
            None => "expiry unknown (no expires_in)".into(),
        };
        let label = |s: &'static str| Span::styled(format!("{s:<10}"), theme.muted());
        let plan = self.plan(inner.height as usize);
        let granted_text = match &t.state {
            TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. } => "unknown: the server decides".to_string(),
            TokenState::Opaque { scopes: ScopeOrigin::RequestedNotConfirmed, .. } => {
                format!("{} (requested, not confirmed)", t.granted)
            }
            _ => t.granted.to_string(),
        };
        let granted_line = Line::from(vec![
            label("granted"),
            Span::styled(clip(&granted_text, w.saturating_sub(10)), theme.colored(theme.info)),
        ]);
        let problem = self.problem.as_ref().map(|p| Line::styled(clip(p, w), theme.colored(theme.error)));
        let mut matrix = self.matrix(theme, t, w);
        // The header stays; the tools scroll under it.
        let skip = self.scroll.min(self.max_scroll(inner.height as usize));
        matrix.drain(1..(1 + skip).min(matrix.len()));
        let bold = |c| theme.colored(c).add_modifier(Modifier::BOLD);
        if plan.compact {
            let badge = match &t.state {
                TokenState::Verified(v) => vec![
                    Span::styled("✓ verified ", bold(theme.ok)),
                    Span::styled(format!("{} · ", v.alg), theme.muted()),
                ],
                TokenState::Opaque { .. } => vec![Span::styled("◌ opaque: the server decides · ", bold(theme.warn))],
                TokenState::Introspected(_) => vec![Span::styled("◑ introspected by the AS · ", bold(theme.info))],
            };
            let mut first = badge;
            first.push(Span::styled(countdown, theme.colored(expiry_color)));
            let mut lines = vec![Line::from(first), granted_line];
            lines.extend(problem);
            lines.extend(matrix);
            f.render_widget(Paragraph::new(lines), inner);
            return;
        }
        let value = |s: &str| Span::raw(clip(s, w.saturating_sub(10)));
        // Five identity lines in every state (the plan counts them).
        let mut head = match &t.state {
            TokenState::Verified(v) => vec![
                Line::from(vec![
                    Span::styled("✓ verified", bold(theme.ok)),
                    Span::styled(format!("  {} · kid {}", v.alg, clip(&v.kid, w.saturating_sub(22))), theme.muted()),
                ]),
                Line::from(vec![label("issuer"), value(&v.issuer)]),
                Line::from(vec![label("client"), value(&format!("{} (sub {})", v.client_id, v.subject))]),
                Line::from(vec![label("audience"), value(&v.audience.join(", "))]),
            ],
            TokenState::Opaque { why, scopes, introspection } => vec![
                Line::styled(clip("◌ opaque token: the server decides", w), bold(theme.warn)),
                Line::from(vec![
                    label("why"),
                    value(match why {
                        OpaqueReason::NotJwt => "not a JWT: nothing to verify here",
                        OpaqueReason::NoJwks => "the issuer publishes no keys",
                    }),
                ]),
                Line::from(vec![
                    label("scopes"),
                    value(match scopes {
                        ScopeOrigin::TokenResponse => "from the token response",
                        ScopeOrigin::RequestedNotConfirmed => "requested, not confirmed",
                        ScopeOrigin::Unknown => "none stated by the server",
                    }),
                ]),
                Line::from(vec![
                    label("AS check"),
                    value(introspection.as_deref().unwrap_or("introspection not offered")),
                ]),
            ],
            TokenState::Introspected(i) => vec![
                Line::styled(clip("◑ introspected by the authorization server", w), bold(theme.info)),
                Line::from(vec![label("active"), value(if i.active { "yes" } else { "no" })]),
                Line::from(vec![
                    label("client"),
                    value(&match (&i.client_id, &i.sub) {
                        (Some(c), Some(s)) => format!("{c} (sub {s})"),
                        (Some(c), None) => c.clone(),
                        (None, Some(s)) => format!("(not stated) (sub {s})"),
                        (None, None) => "(not stated)".into(),
                    }),
                ]),
                Line::from(vec![
                    label(""),
                    Span::styled(clip("not verified locally", w.saturating_sub(10)), theme.muted()),
                ]),
            ],
        };
        head.push(Line::from(vec![label("expires"), Span::styled(countdown.clone(), theme.colored(expiry_color))]));
        head.extend(problem);
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
        let mut lines = vec![
            Line::from(vec![
                label("refreshes"),
                Span::raw(t.refresh_count.to_string()),
                Span::styled("  fp ", theme.muted()),
                Span::raw(t.fingerprint.to_string()),
            ]),
            granted_line,
            Line::raw(""),
        ];
        lines.extend(matrix);
        f.render_widget(Paragraph::new(lines), bottom);
    }
}
