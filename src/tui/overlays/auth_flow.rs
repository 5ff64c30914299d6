//! The "Auth flow" overlay: one server's OAuth timeline — every `AuthStep` (challenge,
//! metadata, registration, authorization request, redirect, code exchange, refresh,
//! step-up) and every token issued, rejected or refused — with its time, URL and outcome,
//! so an operator can see how Warden came by the token it holds (or why it has none). Opened
//! from the token pane (`A` by default) on the server shown; it keeps taking that server's
//! events while open. A [`Component`] owning a copy of the timeline and its scroll (it
//! opens at the newest entry).
//!
//! Each entry takes two lines or more, because at 80 columns a URL and an outcome do not
//! share one legibly: the time, the step and the URL (shortened from the middle, never
//! dropped), then the outcome, indented and wrapped (at most [`OUTCOME_LINES`] lines).
//! Failures are in the theme's error style.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Scroll, centered, reader_hints, scroll_text};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::{clip, clock, wrap};
use crate::tui::theme::Theme;
use crate::types::event::{Event, EventKind, TokenState};

/// Entries kept per server; older ones are counted, not kept.
pub const FLOW_ENTRIES: usize = 200;

/// Lines an outcome wraps to at most (the last one is clipped).
const OUTCOME_LINES: usize = 3;

/// The outcome's indent: under the step column.
const INDENT: usize = 10;

/// The width of the step column: the longest label ("authorization request").
const STEP_W: usize = 21;

/// One entry of a server's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEntry {
    pub at_ms: u64,
    /// The step's name (`AuthStepKind::label`, or "token issued" …).
    pub step: &'static str,
    pub url: Option<String>,
    pub outcome: String,
    /// Drawn in the error style.
    pub failed: bool,
}

impl FlowEntry {
    /// The entry `e` adds to a timeline, and the server it names (`None`: an event from a
    /// recording made before tokens named their server). Other events add nothing.
    pub fn of(e: &Event) -> Option<(Option<&str>, FlowEntry)> {
        let entry = |step, url: Option<&String>, outcome: String, failed| FlowEntry {
            at_ms: e.at_ms,
            step,
            url: url.cloned(),
            outcome,
            failed,
        };
        Some(match &e.kind {
            EventKind::AuthStep { server, step, url, outcome, failed } => {
                (Some(server.as_str()), entry(step.label(), url.as_ref(), outcome.clone(), *failed))
            }
            EventKind::TokenIssued { token, reason, server } => {
                let state = match token.state {
                    TokenState::Verified(_) => "verified",
                    TokenState::Opaque { .. } => "opaque",
                    TokenState::Introspected(_) => "introspected",
                };
                let granted =
                    if token.granted.is_empty() { "(no scopes)".to_string() } else { token.granted.to_string() };
                let outcome = format!("{state} · {granted} · fp {} · {}", token.fingerprint, reason.label());
                (server.as_deref(), entry("token issued", None, outcome, false))
            }
            EventKind::TokenRejected { check, detail, server } => {
                (server.as_deref(), entry("token rejected", None, format!("{check:?}: {detail}"), true))
            }
            EventKind::TokenError { detail, server } => {
                (server.as_deref(), entry("token error", None, detail.clone(), true))
            }
            _ => return None,
        })
    }
}

/// A server's timeline: the last [`FLOW_ENTRIES`] entries, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    entries: VecDeque<FlowEntry>,
    /// Entries no longer kept.
    pub dropped: u64,
}

impl Timeline {
    pub fn push(&mut self, entry: FlowEntry) {
        if self.entries.len() == FLOW_ENTRIES {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(entry);
    }

    pub fn entries(&self) -> impl DoubleEndedIterator<Item = &FlowEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `url` in at most `max` characters: without its scheme, then with the middle of the path
/// replaced by `…` (the host and the last part of the path say most), never empty.
pub fn shorten_url(url: &str, max: usize) -> String {
    let bare = url.split_once("://").map_or(url, |(_, rest)| rest);
    let n = bare.chars().count();
    if n <= max || max < 2 {
        return if n <= max { bare.to_string() } else { "…".to_string() };
    }
    let host_end = bare.find('/').unwrap_or(bare.len());
    let host: String = bare[..host_end].to_string();
    let host_n = host.chars().count();
    if host_n + 2 <= max {
        // host…tail
        let tail_n = max - host_n - 1;
        let tail: String = bare.chars().skip(n - tail_n).collect();
        return format!("{host}…{tail}");
    }
    let tail: String = bare.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

/// The overlay.
#[derive(Debug, Clone)]
pub struct AuthFlowView {
    server: String,
    timeline: Timeline,
    scroll: Scroll,
    /// Whether the view follows new entries (it opened at the newest and was not scrolled
    /// up since).
    follow: bool,
    area: Rect,
}

impl AuthFlowView {
    pub fn new(server: String, timeline: Timeline) -> Self {
        Self { server, timeline, scroll: Scroll::at_end(), follow: true, area: Rect::default() }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn measure(&mut self) {
        let inner = Block::default().borders(Borders::ALL).inner(frame(self.area));
        self.scroll.fit(self.lines_len(inner.width as usize), inner.height as usize);
        if self.follow {
            self.scroll.to_end();
        }
    }

    fn lines_len(&self, width: usize) -> usize {
        let entries: usize = self.timeline.entries().map(|e| 1 + outcome_lines(e, width).len()).sum();
        usize::from(self.timeline.dropped > 0) + entries.max(2)
    }

    fn lines(&self, theme: &Theme, width: usize) -> Vec<Line<'static>> {
        let mut lines = Vec::with_capacity(self.lines_len(width));
        if self.timeline.dropped > 0 {
            let earlier = crate::types::text::counted(self.timeline.dropped, "earlier entry", "earlier entries");
            lines.push(Line::styled(format!("… {earlier} not kept"), theme.muted()));
        }
        if self.timeline.is_empty() {
            lines.push(Line::styled(
                clip(&format!("No OAuth step for {} yet.", self.server), width),
                theme.colored(theme.warn),
            ));
            lines.push(Line::styled(
                clip("  It uses no OAuth, or has not needed a token so far.", width),
                theme.muted(),
            ));
            return lines;
        }
        for e in self.timeline.entries() {
            let style = if e.failed { theme.colored(theme.error) } else { theme.text() };
            let step_style: Style = if e.failed {
                theme.colored(theme.error).add_modifier(Modifier::BOLD)
            } else {
                theme.colored(theme.accent)
            };
            // time (8), two spaces, the step column, a space: the rest is the URL's.
            let url_w = width.saturating_sub(8 + 2 + STEP_W + 1).max(2);
            let mut first = vec![
                Span::styled(clock(e.at_ms), theme.muted()),
                Span::raw("  "),
                Span::styled(format!("{:<STEP_W$} ", e.step), step_style),
            ];
            if let Some(url) = &e.url {
                first.push(Span::styled(shorten_url(url, url_w), theme.muted()));
            }
            lines.push(Line::from(first));
            for l in outcome_lines(e, width) {
                lines.push(Line::styled(format!("{:INDENT$}{l}", ""), style));
            }
        }
        lines
    }
}

/// The outcome of `e` with its glyph, wrapped to the room under the step column.
fn outcome_lines(e: &FlowEntry, width: usize) -> Vec<String> {
    let glyph = if e.failed { "✗" } else { "→" };
    let room = width.saturating_sub(INDENT).max(8);
    let mut lines = wrap(&format!("{glyph} {}", e.outcome), room);
    if lines.len() > OUTCOME_LINES {
        let rest = lines[OUTCOME_LINES - 1..].join(" ");
        lines.truncate(OUTCOME_LINES - 1);
        lines.push(clip(&rest, room));
    }
    lines
}

/// The overlay's box on the panes' `area`.
fn frame(area: Rect) -> Rect {
    centered(area, area.width.saturating_sub(4).clamp(20, 110), area.height.saturating_sub(2).max(5))
}

impl Component for AuthFlowView {
    fn context(&self) -> Context {
        Context::Reader
    }

    fn on_action(&mut self, action: Action, _ctx: &Ctx) -> Handled {
        let handled = scroll_text(&mut self.scroll, action);
        // Scrolled back to the newest entry: follow new ones again.
        self.follow = self.scroll.at_bottom();
        handled
    }

    fn on_event(&mut self, e: &Event) {
        if let Some((Some(server), entry)) = FlowEntry::of(e)
            && server == self.server
        {
            self.timeline.push(entry);
            self.measure();
        }
    }

    fn on_resize(&mut self, area: Rect) {
        self.area = area;
        self.measure();
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        reader_hints(keymap)
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, keymap) = (ctx.theme, ctx.keymap);
        let rect = frame(area);
        f.render_widget(Clear, rect);
        let close = keymap.key_for(Action::Close);
        let title = match self.scroll.indicator() {
            Some(at) => format!(" Auth flow — {} — {at} · {close} close ", self.server),
            None => format!(" Auth flow — {} — {close} close ", self.server),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(true))
            .title(Span::styled(title, theme.colored(theme.accent)));
        let width = block.inner(rect).width as usize;
        let para = Paragraph::new(self.lines(theme, width)).block(block);
        f.render_widget(para.scroll((self.scroll.offset() as u16, 0)), rect);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::types::event::{AuthStepKind, RefreshReason, TokenInfo};
    use crate::types::scope::ScopeSet;

    fn event(at_ms: u64, kind: EventKind) -> Event {
        Event { id: 1, at_ms, run_id: None, step: None, kind }
    }

    fn step(at_s: u64, step: AuthStepKind, url: Option<&str>, outcome: &str) -> Event {
        // The outcomes authcode writes for steps that did not go through.
        let failed = ["failed", "refused", "declined"].iter().any(|p| outcome.starts_with(p));
        event(
            at_s * 1000,
            EventKind::AuthStep {
                server: "files".into(),
                step,
                url: url.map(str::to_string),
                outcome: outcome.into(),
                failed,
            },
        )
    }

    fn render(view: &mut AuthFlowView, w: u16, h: u16) -> (Vec<String>, ratatui::buffer::Buffer) {
        let buf = super::super::draw_alone(view, w, h);
        let rows = (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>().trim_end().to_string())
            .collect();
        (rows, buf)
    }

    fn token(granted: &str) -> TokenInfo {
        let legacy = r#"{"issuer":"https://as","subject":"agent","client_id":"agent","audience":["https://rs/mcp"],"kid":"k1","alg":"RS256","fingerprint":"sha256:0123456789ab","requested":null,"granted":[],"issued_at":10,"expires_at":910,"jti":"j","verified":true,"refresh_count":0}"#;
        let mut t: TokenInfo = serde_json::from_str(legacy).unwrap();
        t.granted = ScopeSet::parse(granted).unwrap();
        t
    }

    /// A login and a declined step-up at 80×24: every step on its own row with its time,
    /// URL (shortened, never dropped) and outcome; the token issued says how it is known.
    #[test]
    fn a_login_and_a_declined_step_up_render_legibly_at_80x24() {
        let long = "https://auth.example.com/oauth2/v1/tenants/0123456789abcdef/authorize";
        let events = vec![
            step(3600 + 61, AuthStepKind::Registration, Some("http://127.0.0.1:9/register"), "registered client-1"),
            step(3600 + 62, AuthStepKind::AuthorizationRequest, Some(long), "asked for files:read (headless)"),
            step(3600 + 62, AuthStepKind::CodeExchange, Some("http://127.0.0.1:9/token"), "access token issued"),
            event(
                3_663_000,
                EventKind::TokenIssued {
                    token: token("files:read"),
                    reason: RefreshReason::Initial,
                    server: Some("files".into()),
                },
            ),
            step(
                3600 + 70,
                AuthStepKind::StepUp,
                Some("http://127.0.0.1:9/authorize"),
                "declined by the operator: the server asked for files:write",
            ),
            // Another server's step is not this timeline's.
            event(
                3_671_000,
                EventKind::AuthStep {
                    server: "other".into(),
                    step: AuthStepKind::Refresh,
                    url: None,
                    outcome: "x".into(),
                    failed: false,
                },
            ),
        ];
        let mut view = AuthFlowView::new("files".into(), Timeline::default());
        for e in &events {
            view.on_event(e);
        }
        let (rows, buf) = render(&mut view, 80, 24);
        let screen = rows.join("\n");
        assert!(rows[1].contains(" Auth flow — files — Esc close "), "{screen}");
        let at =
            |needle: &str| rows.iter().position(|r| r.contains(needle)).unwrap_or_else(|| panic!("{needle}: {screen}"));
        assert_eq!(
            rows[at("registration")].trim_matches(['│', ' ']),
            "01:01:01  registration          127.0.0.1:9/register"
        );
        let auth = &rows[at("authorization request")];
        assert!(auth.contains("01:01:02  authorization request auth.example.com…"), "{auth}");
        assert!(auth.trim_end_matches(['│', ' ']).ends_with("authorize"), "the URL's end is kept: {auth}");
        assert!(screen.contains("→ asked for files:read (headless)"), "{screen}");
        assert!(screen.contains("01:01:03  token issued"), "{screen}");
        assert!(screen.contains("→ verified · files:read · fp sha256:0123456789ab · initial"), "{screen}");
        let declined = at("✗ declined by the operator: the server asked for files:write");
        assert!(rows[declined - 1].contains("01:01:10  step-up"), "{screen}");
        assert!(!screen.contains("other"), "{screen}");
        // The failure is drawn in the error style.
        let x = rows[declined].find('✗').map(|b| rows[declined][..b].chars().count()).unwrap() as u16;
        assert_eq!(buf[(x, declined as u16)].fg, Theme::dark().error);
        // Five entries, two lines each, fit: no scroll indicator.
        assert!(!rows[1].contains("lines "), "{screen}");
    }

    /// Bounded: the last 200 entries are kept and the rest counted; a long timeline opens at
    /// its newest entry and scrolls back.
    #[test]
    fn the_timeline_is_bounded_and_opens_at_the_newest_entry() {
        let mut timeline = Timeline::default();
        for i in 0..250u64 {
            timeline.push(FlowEntry::of(&step(i, AuthStepKind::Refresh, None, &format!("refresh {i}"))).unwrap().1);
        }
        assert_eq!((timeline.len(), timeline.dropped), (200, 50));
        let mut view = AuthFlowView::new("files".into(), timeline);
        let (rows, _) = render(&mut view, 80, 24);
        let screen = rows.join("\n");
        assert!(screen.contains("→ refresh 249"), "{screen}");
        assert!(!screen.contains("→ refresh 239"), "{screen}");
        assert!(rows[1].contains("lines 382–401 of 401"), "{screen}");
        view.on_action(Action::PageUp, &Ctx::default());
        let (rows, _) = render(&mut view, 80, 24);
        assert!(rows.join("\n").contains("→ refresh 244"), "scrolled back");
        // A new entry does not move a view scrolled back.
        view.on_event(&step(300, AuthStepKind::Refresh, None, "refresh 300"));
        let (rows, _) = render(&mut view, 80, 24);
        assert!(!rows.join("\n").contains("refresh 300"));
    }

    #[test]
    fn urls_are_shortened_from_the_middle_and_never_dropped() {
        assert_eq!(shorten_url("https://as.example/token", 40), "as.example/token");
        assert_eq!(shorten_url("https://as.example/a/very/long/path/token", 20), "as.example…ath/token");
        assert_eq!(shorten_url("https://a-very-long-host-name.example/token", 12), "…ample/token");
        assert_eq!(shorten_url("https://as.example/token", 1), "…");
    }
}
