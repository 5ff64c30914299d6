//! `warden validate PROGRAM`: connects to the configured servers as `warden run` does,
//! validates a compiled program against the grant it will run with and the servers' tools
//! now (`session::validate`), and prints the report. Exit codes: 0 valid, 1 findings,
//! 2 usage (bad flags, unreadable program), 4 cannot log in, 10 cannot reach a server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::session::{Program, Session, SessionError, SessionOptions};
use crate::types::scope::ScopeSet;

/// Exit code: the program has findings (or does not fit the agent at all).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: the command line is wrong, or the program file cannot be read.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a server needs a login that failed (as `warden tools`).
pub const EXIT_AUTH: u8 = 4;
/// Exit code: a server could not be reached or connected to.
pub const EXIT_CANNOT_CONNECT: u8 = 10;

pub struct ValidateArgs<'a> {
    pub config: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub program: PathBuf,
    pub key_file: Option<PathBuf>,
    pub scopes: Option<String>,
    pub json: bool,
    pub login: super::LoginArgs,
}

pub async fn run(args: ValidateArgs<'_>) -> anyhow::Result<ExitCode> {
    let usage = |msg: String| {
        eprintln!("warden: {msg}");
        Ok(ExitCode::from(EXIT_USAGE))
    };
    let (mut config, _) = Config::load(args.config)?;
    if let Err(msg) = args.login.apply(&mut config, args.state_dir) {
        return usage(msg);
    }
    let file = match crate::agent::program::load_file(&args.program, args.key_file.as_deref()) {
        Ok(f) => f,
        Err(e) => return usage(e.to_string()),
    };
    // The grant: --scopes, else the one the program was compiled for, else the session's.
    let scopes = match &args.scopes {
        Some(s) => match ScopeSet::parse(s) {
            Ok(_) => Some(s.clone()),
            Err(e) => {
                return usage(format!(
                    "--scopes takes space-separated scopes, e.g. --scopes \"customer:read ticket:create\": {e}"
                ));
            }
        },
        None => file.security.as_ref().map(|s| s.grant.clone()).filter(|g| !g.is_empty()).map(|g| g.to_string()),
    };
    let name = args.program.display().to_string();
    let opts = SessionOptions {
        // Validation asks nothing of a model; the offline planner needs no key.
        model: Some("offline".into()),
        scopes,
        program: Some(Program { name: name.clone(), file }),
        ..SessionOptions::default()
    };
    let session = match Session::open(&config, args.state_dir, opts).await {
        Ok(s) => s,
        Err(e) => return Ok(open_failed(e)),
    };
    let Some(report) = session.program_report().cloned() else {
        anyhow::bail!("the session opened without validating the program (a bug: please report it)");
    };
    session.start(CancellationToken::new()).shutdown().await;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["program"] = json!(name);
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("program {name}");
        out!("{}", report.render());
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FINDINGS) })
}

/// Prints why a session could not open and returns the exit code that says so.
pub fn open_failed(e: SessionError) -> ExitCode {
    eprintln!("warden: {e}");
    match &e {
        SessionError::Connect(c) if c.is_auth() => ExitCode::from(EXIT_AUTH),
        SessionError::Connect(_) => ExitCode::from(EXIT_CANNOT_CONNECT),
        SessionError::Scopes(_) => ExitCode::from(EXIT_USAGE),
        // A program that does not fit the agent; or the audit trail or model could not be
        // opened (exit 1, as any other error of warden's).
        _ => ExitCode::FAILURE,
    }
}
