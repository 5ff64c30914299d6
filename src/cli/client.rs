//! `warden token`, `warden tools` and `warden call`: the client layer from the command line.
//! Output is for people by default and JSON with `--json`; exit codes tell scripts what
//! happened (see `Exit`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::Config;
use crate::mcp::secure_tool::{CallPolicy, CallReport};
use crate::mcp::{ClientError, ClientStack, token_manager};
use crate::types::event::{CallOutcome, EventBus, FailureClass, Scope, TokenState};
use crate::types::scope::ScopeSet;

/// Process exit codes of the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Other = 1,
    /// The command line itself is wrong (clap uses the same code for its own errors).
    Usage = 2,
    Denied = 3,
    Auth = 4,
    RateLimited = 5,
    ToolError = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

pub struct ClientArgs<'a> {
    pub config: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub scopes: Option<&'a str>,
    pub json: bool,
}

/// The config, and the `--scopes` override; a malformed `--scopes` is a usage error
/// (`Err` holds the exit code, the message already printed).
fn load(args: &ClientArgs<'_>) -> anyhow::Result<Result<(Config, Option<ScopeSet>), ExitCode>> {
    let scopes = match args.scopes.map(ScopeSet::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            return Ok(Err(usage(&format!(
                "--scopes takes space-separated scopes, e.g. --scopes \"customer:read ticket:create\": {e}"
            ))));
        }
    };
    let (config, _) = Config::load(args.config)?;
    Ok(Ok((config, scopes)))
}

/// Prints a usage error and returns its exit code.
fn usage(msg: &str) -> ExitCode {
    eprintln!("warden: {msg}");
    Exit::Usage.into()
}

/// Maps a connection-time error to an exit code after printing it.
fn fail(e: ClientError) -> anyhow::Result<ExitCode> {
    eprintln!("warden: {e}");
    Ok(if e.is_auth() { Exit::Auth } else { Exit::Other }.into())
}

pub async fn token(args: ClientArgs<'_>) -> anyhow::Result<ExitCode> {
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let (entry, tokens) = match token_manager(&config, scopes, EventBus::new()).await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Err(e) = tokens.claims().await {
        let tls = config.client.as_ref().map(crate::mcp::client_tls).unwrap_or_default();
        return fail(ClientError::token(&entry.name, e, &tls));
    }
    let info = tokens.info().context("token manager holds no token after a successful fetch")?;
    if args.json {
        let now = crate::types::time::now_epoch();
        let mut v = serde_json::to_value(&info)?;
        v["seconds_to_expiry"] = json!(info.seconds_to_expiry(now));
        v["summary"] = json!(super::token_view::headline(&info));
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", render_token(&info, crate::types::time::now_epoch()));
    }
    Ok(Exit::Ok.into())
}

pub use super::token_view::render_token;

pub async fn tools(args: ClientArgs<'_>, approve: bool) -> anyhow::Result<ExitCode> {
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let pins = args.state_dir.join("manifests.json");
    let stack =
        match ClientStack::connect_pinned(&config, scopes, CallPolicy::default(), EventBus::new(), Some(&pins)).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
    let mut out = Vec::new();
    let mut text = String::new();
    for server in &stack.servers {
        let token = server.tokens.info();
        let granted = token.as_ref().map(|t| t.granted.clone()).unwrap_or_default();
        // An opaque token whose scopes nobody stated: no verdict, the server decides.
        let unknown = token.as_ref().is_some_and(|t| {
            matches!(t.state, TokenState::Opaque { scopes: crate::types::event::ScopeOrigin::Unknown, .. })
        });
        let granted_text =
            if unknown { "unknown (opaque token: the server decides)".into() } else { granted.to_string() };
        let blocked = server.tools.iter().any(|t| t.is_blocked());
        if approve {
            crate::mcp::pins::approve(&pins, &server.entry.url, server.session.manifest_hash());
        }
        let status = match (blocked, approve) {
            (true, true) => "  — CHANGED, now approved",
            (true, false) => "  — CHANGED since approved: tools blocked (review, then --approve)",
            _ => "",
        };
        text.push_str(&format!(
            "{} {} (manifest {}){status}\n  granted: {}\n",
            server.entry.name,
            server.entry.url,
            &server.session.manifest_hash()[..16],
            granted_text
        ));
        for tool in &server.tools {
            let missing = if unknown { ScopeSet::new() } else { granted.missing(&tool.spec.required_scopes) };
            let mark = match (unknown, missing.is_empty()) {
                (true, _) => "? unknown",
                (false, true) => "✓ allowed",
                (false, false) => "✗ denied ",
            };
            let needs = if tool.spec.required_scopes.is_empty() {
                "(none advertised)".to_string()
            } else {
                tool.spec.required_scopes.to_string()
            };
            let why = if missing.is_empty() { String::new() } else { format!("  missing {missing}") };
            text.push_str(&format!("  {mark}  {:<26} needs {needs}{why}\n", tool.spec.id.name));
            out.push(json!({
                "server": server.entry.name,
                "tool": tool.spec.id.name,
                "description": tool.spec.description,
                "required_scopes": tool.spec.required_scopes,
                "scopes_source": tool.spec.scopes_source,
                "allowed": if unknown { Value::Null } else { Value::Bool(missing.is_empty()) },
                "missing_scopes": missing,
            }));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
    } else {
        print!("{text}");
    }
    stack.close().await;
    Ok(Exit::Ok.into())
}

/// The ARGS of `warden call`: a JSON object, or a usage error saying what was wrong with it.
pub fn parse_call_args(json_args: &str) -> Result<Value, String> {
    let example = r#"e.g. '{"customer_id": "ABC123"}'"#;
    match serde_json::from_str::<Value>(json_args) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(format!("ARGS must be a JSON object, {example}; got {json_args:?}")),
        Err(e) => Err(format!("ARGS is not valid JSON ({e}); pass a JSON object, {example}; got {json_args:?}")),
    }
}

pub async fn call(args: ClientArgs<'_>, tool: &str, json_args: &str, precheck: bool) -> anyhow::Result<ExitCode> {
    // A usage error, reported before anything is loaded or contacted.
    let tool_args = match parse_call_args(json_args) {
        Ok(v) => v,
        Err(msg) => return Ok(usage(&msg)),
    };
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let events = EventBus::recording();
    let _security = crate::session::audit::attach(&events, args.state_dir, &config)?;
    let policy = CallPolicy { precheck, ..CallPolicy::default() };
    let pins = args.state_dir.join("manifests.json");
    let stack = match ClientStack::connect_pinned(&config, scopes, policy, events.clone(), Some(&pins)).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let Some(secure) = stack.tool(tool).cloned() else {
        let names: Vec<String> = stack.tool_names().iter().map(|(_, shown)| shown.to_string()).collect();
        eprintln!("warden: no tool named {tool:?}; available: {} (or SERVER.TOOL)", names.join(", "));
        stack.close().await;
        return Ok(Exit::Other.into());
    };
    let report = secure.call(tool_args, &Scope::default()).await;
    let exit = exit_of(&report.outcome);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"report": report, "events": events.recorded()}))?);
    } else {
        print!("{}", render_report(&report));
    }
    drop(secure);
    stack.close().await;
    Ok(exit.into())
}

fn exit_of(outcome: &CallOutcome) -> Exit {
    match outcome {
        CallOutcome::Success { .. } => Exit::Ok,
        CallOutcome::ToolError { .. } => Exit::ToolError,
        CallOutcome::Denied { .. } => Exit::Denied,
        CallOutcome::Failed { class: FailureClass::Unauthorized, .. } => Exit::Auth,
        CallOutcome::Failed { class: FailureClass::RateLimited, .. } => Exit::RateLimited,
        CallOutcome::Failed { .. } => Exit::Other,
    }
}

pub fn render_report(r: &CallReport) -> String {
    let timing =
        format!("{}, {:.1} ms", crate::types::text::counted(r.attempts as u64, "attempt", "attempts"), r.latency_ms);
    match &r.outcome {
        CallOutcome::Success { structured, text } => {
            let body =
                structured.as_ref().and_then(|v| serde_json::to_string_pretty(v).ok()).unwrap_or_else(|| text.clone());
            format!("✓ {} ({timing})\n{body}\n", r.tool)
        }
        CallOutcome::ToolError { message, .. } => {
            format!("✗ {} reported an error ({timing}): {message}\n", r.tool.name)
        }
        CallOutcome::Denied { side, required, granted, missing, www_authenticate, .. } => {
            let mut by = side.explain().to_string();
            if let Some(w) = www_authenticate {
                by.push_str(&format!("\n  WWW-Authenticate: {w}"));
            }
            format!(
                "✗ DENIED {}: missing {missing}\n  {by}\n  required {required}; granted {granted}\n  fix: re-grant with --scopes including {missing} (the client must be registered for it)\n",
                r.tool.name
            )
        }
        CallOutcome::Failed { class, message } => {
            format!("✗ {} failed ({}, {timing}): {message}\n", r.tool.name, class.label())
        }
    }
}
