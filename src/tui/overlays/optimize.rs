//! The optimize overlay (`O`): the console's way to run the seeds' optimization loop
//! (`Command::Optimize`) and read its before/after table without leaving the session.
//!
//! Three stages, one [`Component`]:
//! - **confirm** — what will run (training examples, optimizer, the grant it runs under,
//!   where the program will be written); Enter starts it, Esc closes.
//! - **running** — the phase, a gauge of done/total, and the denials and anomalies seen
//!   since it started (each also appears in the feed as it happens); Ctrl-C cancels.
//! - **finished** — the per-example before/after table with its total line (the columns of
//!   `warden optimize`), the learnt constraints, and where the program was written, or the
//!   validation findings, or the error; it scrolls, and Enter sets up another run.
//!
//! The optimization's agent runs (`optimize-N`) go to the feed and the token pane only:
//! the trace and the chat keep to the operator's own requests (`App` routes them). Closing
//! the overlay does not stop the optimization: `App` keeps this component and gives it the
//! events, `O` brings it back, and the end is one feed line either way.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Scroll, centered};
use crate::session::command::Command;
use crate::session::optimize::{OptimizeJob, OutFormat};
use crate::tui::component::{Component, Ctx, DrawCtx, Handled, Hint, Msg};
use crate::tui::keymap::{Action, Context, Keymap};
use crate::tui::panes::{clip, wrap};
use crate::tui::theme::Theme;
use crate::types::event::{CallOutcome, Event, EventKind};
use crate::types::optimize::{OptimizeSummary, Scored};

/// The run ids the session core gives an optimization's agent runs start with this.
pub const RUN_PREFIX: &str = "optimize-";

/// Whether `e` belongs to one of an optimization's agent runs.
pub fn is_optimize_run(e: &Event) -> bool {
    e.run_id.as_deref().is_some_and(|r| r.starts_with(RUN_PREFIX))
}

/// Where the overlay is in its life.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// The job is built; nothing sent yet.
    Confirm,
    /// `Command::Optimize` was sent.
    Running { phase: String, done: u64, total: u64, cancelling: bool },
    /// The summary, or why it stopped.
    Finished(Result<Box<OptimizeSummary>, String>),
}

/// The optimize overlay.
#[derive(Debug, Clone)]
pub struct OptimizeView {
    stage: Stage,
    /// The job the confirm stage offers (sent, and so taken, on Enter).
    job: Option<Box<OptimizeJob>>,
    /// What the confirm stage says about the job (kept after it is sent).
    examples: usize,
    optimizer: &'static str,
    out: String,
    /// The grant the session holds, as the token pane shows it.
    grant: String,
    /// Seen since the optimization started.
    denials: u64,
    anomalies: u64,
    scroll: Scroll,
    area: Rect,
}

impl OptimizeView {
    /// The confirm stage for `job`, which will run under `grant` (shown as is).
    pub fn new(job: OptimizeJob, grant: String) -> Self {
        let out = match &job.out {
            Some((path, OutFormat::Sealed { .. })) => format!("{} (sealed)", path.display()),
            Some((path, OutFormat::DspyJson)) => format!("{} (DSPy JSON)", path.display()),
            None => "nothing (report only)".into(),
        };
        Self {
            stage: Stage::Confirm,
            examples: job.trainset.len(),
            optimizer: job.optimizer.name(),
            out,
            job: Some(Box::new(job)),
            grant,
            denials: 0,
            anomalies: 0,
            scroll: Scroll::default(),
            area: Rect::default(),
        }
    }

    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// Started and not finished.
    pub fn running(&self) -> bool {
        matches!(self.stage, Stage::Running { .. })
    }

    /// Worth keeping when closed: it runs, or it has a result to show again.
    pub fn worth_keeping(&self) -> bool {
        !matches!(self.stage, Stage::Confirm)
    }

    /// The start command never reached the core: the run ends here, with the reason.
    pub fn not_sent(&mut self, why: &str) {
        if self.running() {
            self.stage = Stage::Finished(Err(format!("not started: {why}")));
            self.measure();
        }
    }

    fn measure(&mut self) {
        let inner = Block::default().borders(Borders::ALL).inner(frame(self.area));
        let len = self.body(&Theme::dark(), inner.width as usize).len();
        self.scroll.fit(len, inner.height as usize);
    }

    /// The text of the current stage, `width` columns wide.
    fn body(&self, theme: &Theme, width: usize) -> Vec<Line<'static>> {
        let mut lines = Vec::new();
        let muted = |lines: &mut Vec<Line<'static>>, text: &str| {
            for l in wrap(text, width) {
                lines.push(Line::styled(l, theme.muted()));
            }
        };
        match &self.stage {
            Stage::Confirm => {
                let what = format!(
                    "Optimize the program with {} on {}, scored with the security metric before and after.",
                    self.optimizer,
                    crate::types::text::counted(self.examples as u64, "training example", "training examples")
                );
                for l in wrap(&what, width) {
                    lines.push(Line::raw(l));
                }
                lines.push(Line::raw(""));
                lines.push(fact(theme, "grant", &self.grant, width));
                lines.push(fact(theme, "writes", &self.out, width));
                lines.push(Line::raw(""));
                muted(
                    &mut lines,
                    "Every example runs as an agent run (optimize-N) on this session's servers: their \
                     denials and anomalies appear in the feed as they happen; the trace and the chat \
                     keep to your own requests.",
                );
            }
            Stage::Running { phase, done, total, cancelling } => {
                let phase = if *cancelling { "cancelling…" } else { phase.as_str() };
                lines.push(fact(theme, "phase", phase, width));
                lines.push(Line::raw(gauge(*done, *total, width)));
                lines.push(Line::raw(""));
                lines.push(Line::from(vec![
                    Span::styled(format!("{:<9}", "seen"), theme.muted()),
                    Span::styled(
                        format!("✗ {}", crate::types::text::counted(self.denials, "denial", "denials")),
                        if self.denials > 0 { theme.colored(theme.error) } else { theme.text() },
                    ),
                    Span::raw(" · "),
                    Span::styled(
                        format!("⚠ {}", crate::types::text::counted(self.anomalies, "anomaly", "anomalies")),
                        if self.anomalies > 0 { theme.colored(theme.warn) } else { theme.text() },
                    ),
                ]));
                lines.push(Line::raw(""));
                muted(
                    &mut lines,
                    "Each denial and anomaly is in the feed; the trace and the chat keep to your own \
                     requests. Closing this overlay does not stop the optimization: O shows it again.",
                );
            }
            Stage::Finished(Err(error)) => {
                for l in wrap(&format!("✗ the optimization stopped: {error}"), width) {
                    lines.push(Line::styled(l, theme.colored(theme.error)));
                }
                lines.push(Line::raw(""));
                let seen = format!(
                    "seen meanwhile: {} · {}",
                    crate::types::text::counted(self.denials, "denial", "denials"),
                    crate::types::text::counted(self.anomalies, "anomaly", "anomalies")
                );
                muted(&mut lines, &seen);
            }
            Stage::Finished(Ok(s)) => {
                table(&mut lines, theme, s, width);
                lines.push(Line::raw(""));
                let seen = format!(
                    "seen while it ran (each in the feed): {} · {}",
                    crate::types::text::counted(self.denials, "denial", "denials"),
                    crate::types::text::counted(self.anomalies, "anomaly", "anomalies")
                );
                muted(&mut lines, &seen);
            }
        }
        lines
    }

    fn footer(&self, keymap: &Keymap) -> String {
        let k = |a| keymap.key_for(a);
        match self.stage {
            Stage::Confirm => format!(" {} start · {} cancel ", k(Action::Apply), k(Action::Close)),
            Stage::Running { .. } => {
                format!(" {} cancel the optimization · {} hide ", k(Action::Cancel), k(Action::Close))
            }
            Stage::Finished(_) => format!(
                " {}/{} scroll · {} run again · {} close ",
                k(Action::Down),
                k(Action::Up),
                k(Action::Apply),
                k(Action::Close)
            ),
        }
    }
}

/// `label` in a column of 9, then `value` clipped to the rest.
fn fact(theme: &Theme, label: &str, value: &str, width: usize) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<9}"), theme.muted()),
        Span::raw(clip(value, width.saturating_sub(9))),
    ])
}

/// `[█████░░░░░]  6/14` in `width` columns (an empty bar until the total is known).
fn gauge(done: u64, total: u64, width: usize) -> String {
    let count = format!(" {done}/{total}");
    let bar = width.saturating_sub(count.chars().count() + 2).clamp(4, 60);
    let filled = if total == 0 { 0 } else { (done.min(total) as usize * bar) / total as usize };
    format!("[{}{}]{count}", "█".repeat(filled), "░".repeat(bar - filled))
}

/// The width of the request column: what `width` leaves beside the score columns (the
/// CLI's 44 at most, so wide terminals show the same table as `warden optimize`).
fn request_width(width: usize) -> usize {
    width.saturating_sub(43).clamp(8, 44)
}

/// One score triple as the CLI prints it: base, violations, final.
fn triple(s: &Scored) -> String {
    format!("{:>5.2} {:>4} {:>6.2}", s.base, s.violations, s.final_score)
}

/// The finished stage: the header, the table, the constraints and what was written.
fn table(lines: &mut Vec<Line<'static>>, theme: &Theme, s: &OptimizeSummary, width: usize) {
    let r = request_width(width);
    let head = format!(
        "{} · {} · {} demos · {} runs in {:.1} s",
        s.optimizer,
        crate::types::text::counted(s.rows.len() as u64, "example", "examples"),
        s.demos,
        s.runs,
        s.elapsed_ms / 1e3
    );
    lines.push(Line::styled(clip(&head, width), theme.colored(theme.accent)));
    lines.push(Line::styled(format!("{:>2} {:<r$}  {:>17}  {:>17}", "", "", "before", "after"), theme.muted()));
    lines.push(Line::styled(
        format!(
            "{:>2} {:<r$}  {:>5} {:>4} {:>6}  {:>5} {:>4} {:>6}",
            "#", "request", "base", "viol", "final", "base", "viol", "final"
        ),
        theme.muted(),
    ));
    for (i, row) in s.rows.iter().enumerate() {
        let (marker, style) = if row.after.final_score > row.before.final_score + 1e-9 {
            ("↑", theme.colored(theme.ok))
        } else if row.after.final_score + 1e-9 < row.before.final_score {
            ("↓", theme.colored(theme.error))
        } else {
            (" ", theme.text())
        };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:>2} {:<r$}  {}  {}",
                i + 1,
                clip(&row.request, r),
                triple(&row.before),
                triple(&row.after)
            )),
            Span::styled(format!(" {marker}"), style),
        ]));
    }
    lines.push(Line::styled(
        format!(
            "{:>2} {:<r$}  {}  {}",
            "",
            clip("total (mean, sum of violations)", r),
            triple(&s.before),
            triple(&s.after)
        ),
        theme.colored(theme.accent),
    ));
    let below: Vec<String> = s
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.after.final_score < 1.0)
        .map(|(i, row)| format!("{:>2}  {}", i + 1, row.reason))
        .collect();
    if !below.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("below 1.00 after:", theme.muted()));
        for b in below {
            for l in wrap(&b, width) {
                lines.push(Line::raw(l));
            }
        }
    }
    lines.push(Line::raw(""));
    if s.constraints.is_empty() {
        lines.push(Line::styled("learnt constraints: none", theme.muted()));
    } else {
        lines.push(Line::styled("learnt constraints:", theme.muted()));
        for c in &s.constraints {
            for l in wrap(c, width) {
                lines.push(Line::raw(l));
            }
        }
    }
    lines.push(Line::raw(""));
    match (&s.out, s.findings.is_empty()) {
        (Some(path), true) => {
            for l in wrap(&format!("✓ valid; wrote {path} ({})", s.format), width) {
                lines.push(Line::styled(l, theme.colored(theme.ok)));
            }
        }
        (None, true) => lines.push(Line::styled("✓ valid; nothing written", theme.colored(theme.ok))),
        (_, false) => {
            let n = crate::types::text::counted(s.findings.len() as u64, "finding", "findings");
            lines.push(Line::styled(format!("✗ NOT valid, nothing written ({n}):"), theme.colored(theme.error)));
            for f in &s.findings {
                for l in wrap(&format!("  ✗ {f}"), width) {
                    lines.push(Line::styled(l, theme.colored(theme.error)));
                }
            }
        }
    }
}

/// The one feed line an optimization's end gets (`None`: not an `OptimizeFinished`).
pub fn feed_line(summary: Option<&OptimizeSummary>, error: Option<&str>) -> String {
    match (summary, error) {
        (Some(s), _) => {
            let end = match (&s.out, s.findings.is_empty()) {
                (Some(path), true) => format!("wrote {path}"),
                (None, true) => "nothing written".to_string(),
                (_, false) => format!(
                    "NOT valid, nothing written ({})",
                    crate::types::text::counted(s.findings.len() as u64, "finding", "findings")
                ),
            };
            format!(
                "optimize: final {:.2} → {:.2}, {} → {} violations, {end}",
                s.before.final_score, s.after.final_score, s.before.violations, s.after.violations
            )
        }
        (None, Some(e)) => format!("optimize stopped: {e}"),
        (None, None) => "optimize stopped without a result".to_string(),
    }
}

/// The overlay's box on the panes' `area`: the whole width on a narrow terminal (the
/// table needs 78 columns inside the borders at 80), a margin on wider ones.
fn frame(area: Rect) -> Rect {
    let w = if area.width <= 84 { area.width } else { area.width.saturating_sub(4).min(110) };
    let h = if area.height <= 26 { area.height } else { area.height.saturating_sub(2) };
    centered(area, w, h)
}

impl Component for OptimizeView {
    fn context(&self) -> Context {
        Context::Optimize
    }

    fn on_action(&mut self, action: Action, ctx: &Ctx) -> Handled {
        match (&mut self.stage, action) {
            (Stage::Confirm, Action::Apply) => {
                if ctx.replay {
                    return Handled::emit(Msg::Notice(format!("optimize: {}", super::grant::REPLAY_NOTICE)));
                }
                if ctx.running {
                    return Handled::emit(Msg::Notice("a request is running: optimize when it has finished".into()));
                }
                let Some(job) = self.job.take() else { return Handled::Consumed };
                self.stage = Stage::Running { phase: "starting".into(), done: 0, total: 0, cancelling: false };
                (self.denials, self.anomalies) = (0, 0);
                self.measure();
                Handled::emit(Msg::Command(Command::Optimize(job)))
            }
            (Stage::Running { cancelling, .. }, Action::Cancel) => {
                *cancelling = true;
                self.measure();
                Handled::Emit(vec![Msg::Command(Command::Cancel), Msg::Notice("cancelling the optimization…".into())])
            }
            // Another run: `App` builds a fresh job (a new output file, the trainset as it
            // is now) and opens a new confirm stage.
            (Stage::Finished(_), Action::Apply) => Handled::Emit(vec![Msg::Close, Msg::OpenOptimize]),
            (Stage::Finished(_), Action::Down) => {
                self.scroll.by(1);
                Handled::Consumed
            }
            (Stage::Finished(_), Action::Up) => {
                self.scroll.by(-1);
                Handled::Consumed
            }
            (Stage::Finished(_), Action::PageDown) => {
                self.scroll.by(10);
                Handled::Consumed
            }
            (Stage::Finished(_), Action::PageUp) => {
                self.scroll.by(-10);
                Handled::Consumed
            }
            _ => Handled::NotMine,
        }
    }

    fn on_event(&mut self, e: &Event) {
        let Stage::Running { phase, done, total, .. } = &mut self.stage else { return };
        match &e.kind {
            EventKind::OptimizeProgress { phase: p, done: d, total: t } => {
                (*phase, *done, *total) = (p.clone(), *d, *t);
            }
            EventKind::OptimizeFinished { summary, error } => {
                self.stage = match (summary, error) {
                    (Some(s), _) => Stage::Finished(Ok(s.clone())),
                    (None, e) => Stage::Finished(Err(e.clone().unwrap_or_else(|| "no result".into()))),
                };
                self.scroll = Scroll::default();
            }
            EventKind::ToolResult { outcome: CallOutcome::Denied { .. }, .. } => self.denials += 1,
            EventKind::Anomaly { .. } => self.anomalies += 1,
            _ => return,
        }
        self.measure();
    }

    fn on_resize(&mut self, area: Rect) {
        self.area = area;
        self.measure();
    }

    fn hints(&self, keymap: &Keymap, _ctx: &Ctx) -> Vec<Hint> {
        let k = |a| keymap.key_for(a);
        match self.stage {
            Stage::Confirm => vec![(k(Action::Apply), "start"), (k(Action::Close), "cancel")],
            Stage::Running { .. } => vec![(k(Action::Cancel), "cancel"), (k(Action::Close), "hide")],
            Stage::Finished(_) => vec![
                (format!("{}/{}", k(Action::Down), k(Action::Up)), "scroll"),
                (k(Action::Apply), "again"),
                (k(Action::Close), "close"),
            ],
        }
    }

    fn draw(&self, f: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let (theme, keymap) = (ctx.theme, ctx.keymap);
        let rect = frame(area);
        f.render_widget(Clear, rect);
        let state = match &self.stage {
            Stage::Confirm => "start?",
            Stage::Running { .. } => "running",
            Stage::Finished(Ok(_)) => "done",
            Stage::Finished(Err(_)) => "stopped",
        };
        let title = match self.scroll.indicator() {
            Some(at) => format!(" Optimize — {state} — {at} "),
            None => format!(" Optimize — {state} "),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.border(true))
            .title(Span::styled(title, theme.colored(theme.accent)))
            .title_bottom(Span::styled(self.footer(keymap), theme.muted()));
        let width = block.inner(rect).width as usize;
        let para = Paragraph::new(self.body(theme, width)).block(block);
        f.render_widget(para.scroll((self.scroll.offset() as u16, 0)), rect);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::types::event::{CallAudit, DenialSide};
    use crate::types::optimize::ExampleRow;
    use crate::types::scope::ScopeSet;
    use crate::types::tool::ToolName;

    fn job() -> OptimizeJob {
        OptimizeJob::console_default(Path::new("/state"), 1_700_000_000).unwrap()
    }

    fn event(run_id: Option<&str>, kind: EventKind) -> Event {
        Event { id: 1, at_ms: 0, run_id: run_id.map(str::to_string), step: None, kind }
    }

    fn denial(run_id: &str) -> Event {
        let s = |t: &str| ScopeSet::parse(t).unwrap();
        event(
            Some(run_id),
            EventKind::ToolResult {
                tool: ToolName::new("customer-service", "create_support_ticket"),
                outcome: CallOutcome::Denied {
                    side: DenialSide::Client,
                    required: s("ticket:create"),
                    granted: s("customer:read account:calculate"),
                    missing: s("ticket:create"),
                    status: None,
                    www_authenticate: None,
                },
                attempts: 0,
                latency_ms: 0.0,
                audit: CallAudit::default(),
            },
        )
    }

    fn scored(base: f64, violations: u64, final_score: f64) -> Scored {
        Scored { base, violations, final_score }
    }

    fn summary() -> OptimizeSummary {
        OptimizeSummary {
            optimizer: "BootstrapFewShot".into(),
            rows: vec![
                ExampleRow {
                    request: "For customer ABC123 create a support ticket as the bbq grill is defective.".into(),
                    before: scored(1.0, 1, 0.4),
                    after: scored(1.0, 0, 1.0),
                    reason: "refused: needs ticket:create".into(),
                },
                ExampleRow {
                    request: "What is the account balance of ABC123?".into(),
                    before: scored(1.0, 0, 1.0),
                    after: scored(0.5, 0, 0.5),
                    reason: "answer lacks the balance".into(),
                },
            ],
            before: scored(1.0, 1, 0.7),
            after: scored(0.75, 0, 0.75),
            constraints: vec![
                "- Do not call `create_support_ticket` under the grant {customer:read}: it needs ticket:create.".into(),
            ],
            demos: 2,
            candidates: vec![],
            out: Some("/state/programs/optimized-1700000000.sealed".into()),
            format: "sealed".into(),
            findings: vec![],
            kept: vec![],
            elapsed_ms: 1234.0,
            runs: 28,
        }
    }

    fn render(view: &mut OptimizeView, w: u16, h: u16) -> Vec<String> {
        let buf = super::super::draw_alone(view, w, h);
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>()).collect()
    }

    fn started() -> OptimizeView {
        let mut v = OptimizeView::new(job(), "account:calculate customer:read".into());
        let Handled::Emit(msgs) = v.on_action(Action::Apply, &Ctx::default()) else { panic!("Enter starts") };
        assert!(matches!(msgs.as_slice(), [Msg::Command(Command::Optimize(_))]), "{msgs:?}");
        v
    }

    #[test]
    fn the_confirm_stage_says_what_will_run_at_80x24() {
        let mut v = OptimizeView::new(job(), "account:calculate customer:read".into());
        let rows = render(&mut v, 80, 24);
        let r = |i: usize| rows[i].trim_end().to_string();
        assert_eq!(r(0), format!("┌ Optimize — start? {}┐", "─".repeat(59)));
        assert_eq!(
            r(1),
            format!("│Optimize the program with BootstrapFewShot on 14 training examples, scored{}│", " ".repeat(4))
        );
        assert_eq!(r(2), format!("│with the security metric before and after.{}│", " ".repeat(36)));
        assert_eq!(r(4), format!("│grant    account:calculate customer:read{}│", " ".repeat(38)));
        assert_eq!(r(5), format!("│writes   /state/programs/optimized-1700000000.sealed (sealed){}│", " ".repeat(17)));
        assert_eq!(r(23), format!("└ Enter start · Esc cancel {}┘", "─".repeat(52)));
        assert_eq!(
            r(8),
            format!("│their denials and anomalies appear in the feed as they happen; the trace and{}│", "  ")
        );
    }

    #[test]
    fn the_table_fits_78_columns_at_80x24() {
        let mut v = started();
        v.on_event(&event(None, EventKind::OptimizeFinished { summary: Some(Box::new(summary())), error: None }));
        let rows = render(&mut v, 80, 24);
        let r = |i: usize| rows[i].clone();
        assert_eq!(r(0), format!("┌ Optimize — done {}┐", "─".repeat(61)));
        assert_eq!(r(1), format!("│BootstrapFewShot · 2 examples · 2 demos · 28 runs in 1.2 s{}│", " ".repeat(20)));
        assert_eq!(r(2), format!("│{}before              after  │", " ".repeat(51)));
        assert_eq!(r(3), "│ # request                               base viol  final   base viol  final  │");
        assert_eq!(r(4), "│ 1 For customer ABC123 create a suppo…   1.00    1   0.40   1.00    0   1.00 ↑│");
        assert_eq!(r(5), "│ 2 What is the account balance of ABC…   1.00    0   1.00   0.50    0   0.50 ↓│");
        assert_eq!(r(6), "│   total (mean, sum of violations)       1.00    1   0.70   0.75    0   0.75  │");
        assert!(rows.iter().any(|l| l.contains("✓ valid; wrote /state/programs/optimized-1700000000.sealed (sealed)")));
        assert!(rows.iter().all(|l| l.chars().count() == 80));
    }

    #[test]
    fn progress_denials_and_the_end_move_the_stages() {
        let mut v = started();
        assert!(v.running());
        v.on_event(&event(None, EventKind::OptimizeProgress { phase: "evaluate before".into(), done: 6, total: 14 }));
        v.on_event(&denial("optimize-3"));
        v.on_event(&denial("optimize-4"));
        assert_eq!(
            v.stage(),
            &Stage::Running { phase: "evaluate before".into(), done: 6, total: 14, cancelling: false }
        );
        let rows = render(&mut v, 80, 24);
        assert_eq!(rows[1].trim_end(), format!("│phase    evaluate before{}│", " ".repeat(54)));
        assert_eq!(rows[2], format!("│[{}{}] 6/14{}│", "█".repeat(25), "░".repeat(35), " ".repeat(11)));
        assert!(rows[4].starts_with("│seen     ✗ 2 denials · ⚠ 0 anomalies "), "{}", rows[4]);
        // Ctrl-C cancels (and the overlay says so); the core's answer ends it.
        let Handled::Emit(msgs) = v.on_action(Action::Cancel, &Ctx::default()) else { panic!() };
        assert!(matches!(msgs.as_slice(), [Msg::Command(Command::Cancel), Msg::Notice(_)]), "{msgs:?}");
        v.on_event(&event(None, EventKind::OptimizeFinished { summary: None, error: Some("cancelled".into()) }));
        assert_eq!(v.stage(), &Stage::Finished(Err("cancelled".into())));
        let rows = render(&mut v, 80, 24);
        assert!(rows[1].starts_with("│✗ the optimization stopped: cancelled "), "{}", rows[1]);
        // Enter asks for a fresh run.
        let Handled::Emit(msgs) = v.on_action(Action::Apply, &Ctx::default()) else { panic!() };
        assert!(matches!(msgs.as_slice(), [Msg::Close, Msg::OpenOptimize]), "{msgs:?}");
    }

    #[test]
    fn a_start_the_core_did_not_take_ends_with_the_reason() {
        let mut v = started();
        v.not_sent("the agent core is busy; press Enter to try again");
        assert_eq!(
            v.stage(),
            &Stage::Finished(Err("not started: the agent core is busy; press Enter to try again".into()))
        );
        let rows = render(&mut v, 80, 24);
        assert!(
            rows[1].starts_with("│✗ the optimization stopped: not started: the agent core is busy; press Enter"),
            "{}",
            rows[1]
        );
    }

    #[test]
    fn it_does_not_start_while_a_request_runs_or_in_a_replay() {
        let mut v = OptimizeView::new(job(), String::new());
        let running = Ctx { running: true, ..Ctx::default() };
        let Handled::Emit(msgs) = v.on_action(Action::Apply, &running) else { panic!() };
        assert!(
            matches!(msgs.as_slice(), [Msg::Notice(n)] if n == "a request is running: optimize when it has finished")
        );
        let replay = Ctx { replay: true, ..Ctx::default() };
        let Handled::Emit(msgs) = v.on_action(Action::Apply, &replay) else { panic!() };
        assert!(
            matches!(msgs.as_slice(), [Msg::Notice(n)] if n.starts_with("optimize: not available in a replay")),
            "{msgs:?}"
        );
        assert_eq!(v.stage(), &Stage::Confirm);
        // Events before the start change nothing.
        v.on_event(&event(None, EventKind::OptimizeFinished { summary: None, error: Some("x".into()) }));
        assert_eq!(v.stage(), &Stage::Confirm);
    }

    #[test]
    fn the_feed_line_sums_up_the_end() {
        assert_eq!(
            feed_line(Some(&summary()), None),
            "optimize: final 0.70 → 0.75, 1 → 0 violations, wrote /state/programs/optimized-1700000000.sealed"
        );
        let invalid = OptimizeSummary { findings: vec!["react demo 0: calls x".into()], out: None, ..summary() };
        assert_eq!(
            feed_line(Some(&invalid), None),
            "optimize: final 0.70 → 0.75, 1 → 0 violations, NOT valid, nothing written (1 finding)"
        );
        assert_eq!(feed_line(None, Some("cancelled")), "optimize stopped: cancelled");
    }
}
