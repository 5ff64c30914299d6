//! `warden replay --check SESSION`: every request of a session recording run again through
//! the session core, headless (the path `warden run` takes), under the grant it had then
//! (or `--scopes`), against the servers and `--program` of today; each run is compared
//! with its recording (`session::replay_check`).
//!
//! Exit codes: 0 nothing security-relevant changed (differences in order, status or answer
//! are printed, not failed on); 1 a call's decision changed between allowed and
//! denied/blocked, or a tool is called that was not then (also: `--program` does not
//! validate); 2 usage; 4 cannot log in; 9 the model failed in a re-run (nothing was
//! checked); 10 cannot reach a server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::validate::{EXIT_USAGE, open_failed};
use crate::config::Config;
use crate::session::command::Command;
use crate::session::replay_check::{RecordedRun, RunCheck, compare, runs};
use crate::session::{Session, SessionOptions};
use crate::types::event::{Event, EventKind, RunStatus};
use crate::types::scope::ScopeSet;

/// Exit code: a security-relevant difference (a decision changed, a new tool).
pub const EXIT_SECURITY_DIFFERENCE: u8 = 1;

pub struct CheckArgs<'a> {
    pub config: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub file: PathBuf,
    /// Every request under these scopes instead of the recorded grant.
    pub scopes: Option<String>,
    pub json: bool,
    pub agent: super::run::AgentArgs,
}

pub async fn run(args: CheckArgs<'_>) -> anyhow::Result<ExitCode> {
    let usage = |msg: String| {
        eprintln!("warden: {msg}");
        Ok(ExitCode::from(EXIT_USAGE))
    };
    let recorded = match crate::observe::recorder::load(&args.file) {
        Ok(events) => runs(&events),
        Err(e) => return usage(e.to_string()),
    };
    if recorded.is_empty() {
        return usage(format!("{} recorded no request: nothing to check", args.file.display()));
    }
    let forced = match args.scopes.as_deref().map(ScopeSet::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            return usage(format!(
                "--scopes takes space-separated scopes, e.g. --scopes \"customer:read ticket:create\": {e}"
            ));
        }
    };
    let (mut config, _) = Config::load(args.config)?;
    if let Err(msg) = args.agent.login.apply(&mut config, args.state_dir) {
        return usage(msg);
    }
    let program = match args.agent.program.load() {
        Ok(p) => p,
        Err(e) => return usage(e.to_string()),
    };
    let grant_of = |r: &RecordedRun| forced.clone().or_else(|| r.grant.clone());
    let first = grant_of(&recorded[0]);
    let opts =
        SessionOptions { scopes: first.as_ref().map(ToString::to_string), program, ..args.agent.session_options() };
    let session = match Session::open(&config, args.state_dir, opts).await {
        Ok(s) => s,
        Err(e) => return Ok(open_failed(e)),
    };
    if let Some(code) = super::run::refuse_invalid_program(&session, &args.agent) {
        session.start(CancellationToken::new()).shutdown().await;
        return Ok(code);
    }
    let mut events = session.events().subscribe(1 << 16);
    let core = session.start(CancellationToken::new());
    if !args.json {
        outln!(
            "checking {} from {}",
            crate::types::text::counted(recorded.len() as u64, "request", "requests"),
            args.file.display()
        );
    }
    let mut current = first;
    let (mut security, mut changed, mut model_errors) = (0usize, 0usize, 0usize);
    for then in &recorded {
        let grant = grant_of(then);
        let cmd = if grant != current {
            current = grant.clone();
            Command::RegrantAndRun(grant.clone(), then.request.clone())
        } else {
            Command::Submit(then.request.clone())
        };
        anyhow::ensure!(core.send(cmd).await, "the session core stopped unexpectedly");
        let now = next_run(&mut events).await.context("the session core stopped before the run finished")?;
        let mut check: RunCheck = compare(then, &now);
        check.grant = grant;
        security += usize::from(check.security_relevant);
        changed += usize::from(!check.differences.is_empty());
        model_errors += usize::from(now.status == Some(RunStatus::Error));
        if args.json {
            let mut v = serde_json::to_value(&check)?;
            v["same"] = json!(check.differences.is_empty());
            outln!("{}", serde_json::to_string(&v)?);
        } else {
            out!("{}", check.render());
        }
    }
    core.shutdown().await;
    let total = recorded.len();
    if args.json {
        outln!(
            "{}",
            json!({"summary": true, "requests": total, "same": total - changed, "differ": changed, "security_relevant": security, "model_errors": model_errors})
        );
    } else {
        outln!(
            "{}/{total} the same; {} security-relevant",
            total - changed,
            crate::types::text::counted(security as u64, "difference is", "differences are")
        );
    }
    Ok(if model_errors > 0 {
        ExitCode::from(super::run::EXIT_MODEL_ERROR)
    } else if security > 0 {
        ExitCode::from(EXIT_SECURITY_DIFFERENCE)
    } else {
        ExitCode::SUCCESS
    })
}

/// The next run the core reports, told from its events (the regrant's token included, so
/// the run knows its grant).
async fn next_run(events: &mut mpsc::Receiver<Event>) -> Option<RecordedRun> {
    let mut seen = Vec::new();
    let mut run_id: Option<String> = None;
    while let Some(e) = events.recv().await {
        if let EventKind::RunStarted { .. } = e.kind
            && run_id.is_none()
        {
            run_id = e.run_id.clone();
        }
        let done = run_id.is_some() && e.run_id == run_id && matches!(e.kind, EventKind::RunFinished { .. });
        seen.push(e);
        if done {
            return runs(&seen).pop();
        }
    }
    None
}
