//! `warden audit verify` and `warden audit tail`.

use crate::types::text::counted;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::observe::audit::{Signatures, read_all, verify};
use crate::observe::checkpoint::CheckpointKey;
use crate::types::event::{CallOutcome, DenialSide, Event, EventKind, FailureClass};

/// The outcome word used by `--outcome` filters and the human output.
pub fn outcome(e: &EventKind) -> String {
    match e {
        EventKind::ToolResult { outcome, .. } => match outcome {
            CallOutcome::Success { .. } => "allowed".into(),
            CallOutcome::Denied { side: DenialSide::Client, .. } => "denied_client".into(),
            CallOutcome::Denied { side: DenialSide::Server, .. } => "denied_server".into(),
            CallOutcome::Failed { class: FailureClass::NotConfirmed, .. } => "not_confirmed".into(),
            CallOutcome::ToolError { .. } | CallOutcome::Failed { .. } => "error".into(),
        },
        EventKind::ToolConfirmation { allowed: true, .. } => "confirmed".into(),
        EventKind::ToolConfirmation { allowed: false, .. } => "declined".into(),
        EventKind::ToolCall { .. } => "call".into(),
        EventKind::ToolRateLimited { .. } => "rate_limited".into(),
        EventKind::TokenIssued { .. } => "token_issued".into(),
        EventKind::TokenRejected { .. } | EventKind::TokenError { .. } => "token_failed".into(),
        EventKind::Anomaly { .. } => "anomaly".into(),
        EventKind::ManifestRecorded { .. } => "manifest".into(),
        EventKind::ServiceDecision { outcome, .. } => outcome.as_str().into(),
        EventKind::DeniedUnauthenticated { .. } => "invalid_token".into(),
        EventKind::AuditSegment { .. } => "segment".into(),
        _ => "other".into(),
    }
}

fn tool_of(e: &EventKind) -> Option<&str> {
    match e {
        EventKind::ToolCall { tool, .. }
        | EventKind::ToolResult { tool, .. }
        | EventKind::ToolConfirmation { tool, .. }
        | EventKind::ToolRateLimited { tool, .. } => Some(&tool.name),
        EventKind::ServiceDecision { tool, .. } => tool.as_deref(),
        _ => None,
    }
}

/// Exit code when the chains are intact but their signatures could not be checked (no key).
pub const EXIT_UNSIGNED: u8 = 2;

/// `warden audit verify`: every chain, head and checkpoint; with the key (`key`, else
/// `[audit] checkpoint_key`, else `STATE/keys/audit-checkpoint.key`) every signature too.
/// Exit 0: all verified; 1: a problem (named: file, line or checkpoint, and why); 2: the
/// chains are intact but the signatures could not be checked (no key).
pub fn run_verify(state_dir: &Path, path: Option<&Path>, key: &Path) -> anyhow::Result<ExitCode> {
    let targets: Vec<(PathBuf, String)> = match path {
        Some(p) if p.is_file() => vec![(p.to_path_buf(), String::new())],
        Some(p) => trails(p).into_iter().map(|t| (p.to_path_buf(), t)).collect(),
        None => {
            let dir = state_dir.join("audit");
            trails(&dir).into_iter().map(|t| (dir.clone(), t)).collect()
        }
    };
    let loaded = CheckpointKey::load(key);
    let mut ok = true;
    let mut unchecked = false;
    let mut checked = 0;
    for (p, prefix) in targets {
        let prefix = prefix.as_str();
        if p.is_dir() && crate::observe::audit::segments(&p, prefix).is_empty() {
            continue;
        }
        checked += 1;
        let r = verify(&p, prefix, loaded.as_ref().ok())?;
        let name = if prefix.is_empty() { p.display().to_string() } else { format!("{} ({prefix})", p.display()) };
        let pruned = r.pruned_through.map(|n| format!(", records 1..={n} pruned by retention")).unwrap_or_default();
        match &r.problem {
            None => outln!(
                "✓ {name}: {} in {}{pruned}, chain intact",
                counted(r.records, "record", "records"),
                counted(r.segments as u64, "segment", "segments")
            ),
            Some(pr) => {
                ok = false;
                outln!("✗ {name}: {}:{}: {}", pr.file, pr.line, pr.reason);
                outln!("  {} records verified before it", r.records);
            }
        }
        match (&r.signatures, &loaded) {
            (Signatures::Verified { checkpoints }, _) if r.problem.is_none() => {
                outln!(
                    "  signatures: the head and {} verified with {}",
                    counted(*checkpoints as u64, "checkpoint", "checkpoints"),
                    key.display()
                )
            }
            (Signatures::NotChecked { checkpoints }, Err(e)) => {
                unchecked = true;
                outln!(
                    "! {name}: signatures NOT checked ({e}); the head and {} could not be checked, so a rewrite of the whole chain would not be detected: pass --key",
                    counted(*checkpoints as u64, "checkpoint", "checkpoints")
                );
            }
            (Signatures::NotApplicable, _) => {
                outln!("  signatures: not checked for a single segment (verify the directory to check them)")
            }
            _ => {}
        }
        for t in &r.repaired_tears {
            outln!("  note: torn line at {t} (crash mid-write), repaired by starting a new segment");
        }
    }
    anyhow::ensure!(checked > 0, "no audit log found at {}", path.unwrap_or(&state_dir.join("audit")).display());
    Ok(match (ok, unchecked) {
        (false, _) => ExitCode::FAILURE,
        (true, true) => ExitCode::from(EXIT_UNSIGNED),
        (true, false) => ExitCode::SUCCESS,
    })
}

/// The trails in an audit directory: the client's, the servers', and one per service
/// instance (`serve --instances`: `service-N`, each its own chain), in that order.
fn trails(dir: &Path) -> Vec<String> {
    let mut instances: Vec<u16> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (n, _) = name.strip_prefix("service-")?.strip_suffix(".jsonl")?.split_once('-')?;
            n.parse().ok()
        })
        .collect();
    instances.sort_unstable();
    instances.dedup();
    let mut all = vec!["client".to_string(), "server".to_string()];
    all.extend(instances.into_iter().map(|n| format!("service-{n}")));
    all
}

pub struct TailArgs {
    pub server: bool,
    pub instance: Option<u16>,
    pub follow: bool,
    pub json: bool,
    pub run: Option<String>,
    pub tool: Option<String>,
    pub outcome: Option<String>,
    pub lines: usize,
}

fn matches(a: &TailArgs, e: &Event) -> bool {
    a.run.as_ref().is_none_or(|r| e.run_id.as_ref() == Some(r))
        && a.tool.as_ref().is_none_or(|t| tool_of(&e.kind) == Some(t.as_str()))
        && a.outcome.as_ref().is_none_or(|o| outcome(&e.kind).starts_with(o.as_str()))
}

fn print(a: &TailArgs, seq: u64, e: &Event) {
    if a.json {
        outln!("{}", serde_json::json!({"seq": seq, "event": e}));
        return;
    }
    let detail = match &e.kind {
        EventKind::ToolResult { outcome, latency_ms, audit, .. } => match outcome {
            CallOutcome::Denied { missing, side, .. } => format!("missing {missing} ({})", side.label()),
            CallOutcome::Failed { message, .. } | CallOutcome::ToolError { message, .. } => message.clone(),
            CallOutcome::Success { .. } => {
                format!("{latency_ms:.1} ms {}", audit.fingerprint.as_ref().map(|f| f.to_string()).unwrap_or_default())
            }
        },
        EventKind::TokenIssued { token, reason, .. } => format!("{reason:?} {} {}", token.granted, token.fingerprint),
        EventKind::Anomaly { rule, message, .. } => format!("{rule}: {message}"),
        EventKind::ServiceDecision { client_id, reason, detail, .. } => match detail {
            Some(d) => format!("{client_id}: {reason} ({d})"),
            None => format!("{client_id}: {reason}"),
        },
        EventKind::ToolCall { args_digest, required, .. } => format!("requires {required}, arguments {args_digest}"),
        EventKind::ToolConfirmation { allowed, by, policy, .. } => format!(
            "{} by {} (confirm = {})",
            if *allowed { "allowed" } else { "declined, not sent" },
            by.label(),
            policy.as_str()
        ),
        EventKind::DeniedUnauthenticated { peer, count, first_ms, last_ms, reasons } => {
            let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
            format!(
                "{count} from {peer} between {} and {} ({})",
                crate::tui::panes::clock(*first_ms),
                crate::tui::panes::clock(*last_ms),
                why.join(", ")
            )
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    outln!(
        "{seq:>6} {} {:<14} {:<24} {:<22} {detail}",
        crate::tui::panes::clock(e.at_ms),
        outcome(&e.kind),
        tool_of(&e.kind).unwrap_or("-"),
        e.run_id.as_deref().unwrap_or("-"),
    );
}

pub async fn run_tail(state_dir: &Path, a: TailArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir.join("audit");
    let prefix = match (a.instance, a.server) {
        (Some(n), _) => format!("service-{n}"),
        (None, true) => "server".to_string(),
        (None, false) => "client".to_string(),
    };
    let prefix = prefix.as_str();
    let all = read_all(&dir, prefix)?;
    let shown: Vec<&(u64, Event)> = all.iter().filter(|(_, e)| matches(&a, e)).collect();
    for (seq, e) in shown.iter().skip(shown.len().saturating_sub(a.lines)) {
        print(&a, *seq, e);
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last = all.last().map(|(s, _)| *s).unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let since = last;
        for (seq, e) in read_all(&dir, prefix)?.into_iter().filter(|(s, _)| *s > since) {
            last = seq;
            if matches(&a, &e) {
                print(&a, seq, &e);
            }
        }
    }
}
