//! `warden run SCENARIOS.toml` and `warden demo --headless`: scenarios through the real
//! stack, printed as a readable trace or as JSON lines, with an exit code that says
//! whether every scenario ended as expected.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::session::command::Command;
use crate::session::report::next_run;
use crate::session::scenario::{Scenario, ScenarioResult, render};
use crate::session::{Session, SessionOptions};
use crate::types::event::RunStatus;

/// Options shared by `run` and `demo`.
#[derive(Debug, Clone, Default)]
pub struct AgentArgs {
    pub model: Option<String>,
    pub lm_base_url: Option<String>,
    pub scopes: Option<String>,
    pub max_iters: Option<usize>,
    /// `--otlp-endpoint`: OpenTelemetry export (over the environment and `[telemetry]`).
    pub otlp_endpoint: Option<String>,
    pub json: bool,
    /// `--yes`: headless runs allow calls that need confirmation (no one is there to ask).
    pub yes: bool,
    /// `--auth` / `--step-up`: logging in to a server that needs OAuth.
    pub login: super::LoginArgs,
    /// `--program FILE [--key-file K] [--allow-invalid-program]`.
    pub program: ProgramArgs,
    /// `--record`: write every event to `STATE/sessions/` as the console does.
    pub record: bool,
}

/// A compiled program to run, and whether one that does not validate may run anyway.
#[derive(Debug, Clone, Default)]
pub struct ProgramArgs {
    pub file: Option<std::path::PathBuf>,
    pub key_file: Option<std::path::PathBuf>,
    pub allow_invalid: bool,
}

impl ProgramArgs {
    /// Reads the program file (plain DSPy JSON or sealed).
    pub fn load(&self) -> anyhow::Result<Option<crate::session::Program>> {
        let Some(path) = &self.file else { return Ok(None) };
        let file = crate::agent::program::load_file(path, self.key_file.as_deref())?;
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        Ok(Some(crate::session::Program { name, file }))
    }
}

/// Exit code when `--program` does not validate against the session's grant and tools
/// (and `--allow-invalid-program` was not given).
pub const EXIT_INVALID_PROGRAM: u8 = 1;

/// Checks the session's program: `Some(code)` to stop (the report printed on stderr);
/// `None` to go on (an invalid program allowed by the flag is reported on stderr too).
pub(crate) fn refuse_invalid_program(session: &Session, args: &AgentArgs) -> Option<ExitCode> {
    let status = session.info().program?;
    if status.report.ok {
        return None;
    }
    eprint!(
        "warden: the program {} does not validate against this session's grant and tools:\n{}",
        status.name,
        status.report.render()
    );
    if args.program.allow_invalid {
        eprintln!("warden: running it anyway (--allow-invalid-program)");
        None
    } else {
        eprintln!("warden: not running it; pass --allow-invalid-program to run it anyway");
        Some(ExitCode::from(EXIT_INVALID_PROGRAM))
    }
}

impl AgentArgs {
    /// The session these flags ask for, with no scenarios.
    pub fn session_options(&self) -> SessionOptions {
        self.session(Vec::new())
    }

    fn session(&self, scenarios: Vec<Scenario>) -> SessionOptions {
        SessionOptions {
            model: self.model.clone(),
            lm_base_url: self.lm_base_url.clone(),
            scopes: self.scopes.clone(),
            max_iters: self.max_iters,
            otlp_endpoint: self.otlp_endpoint.clone(),
            scenarios,
            probe_health: false,
            confirmer: crate::types::confirm::Confirmer::Flag { yes: self.yes },
            step_up: Default::default(),
            program: None,
        }
    }
}

/// Exit code when at least one scenario did not end as expected.
pub const EXIT_UNEXPECTED: u8 = 7;
/// Exit code when the language model failed in at least one scenario (status `error`: no
/// key, key rejected, unreachable, timed out). Takes precedence over 7: nothing was tested.
pub const EXIT_MODEL_ERROR: u8 = 9;

/// Runs every scenario through the session core — the same `RunScenario` command the
/// console's picker sends — and judges each run from its events.
pub async fn run_scenarios(
    config: &Config,
    state_dir: &Path,
    scenarios: &[Scenario],
    args: &AgentArgs,
) -> anyhow::Result<ExitCode> {
    let program = args.program.load()?;
    let session =
        Session::open(config, state_dir, SessionOptions { program, ..args.session(scenarios.to_vec()) }).await?;
    if let Some(code) = refuse_invalid_program(&session, args) {
        session.start(CancellationToken::new()).shutdown().await;
        return Ok(code);
    }
    let info = session.info();
    let model = info.model;
    let mut events = session.events().subscribe(1 << 16);
    // A recording, as the console makes one: for `warden replay`, `replay --check` and
    // `optimize --feedback` (which learns the requests behind denials from it).
    let recording = if args.record {
        let path = crate::observe::recorder::session_path(state_dir);
        let recorder = crate::observe::recorder::spawn_recorder(path.clone(), session.events().subscribe(1 << 16))
            .with_context(|| format!("cannot record the session to {}", path.display()))?;
        // The tokens the stack got while connecting, so the recording has the grant.
        session.announce_tokens();
        Some((path, recorder))
    } else {
        None
    };
    let core = session.start(CancellationToken::new());
    if !args.json {
        let program = info.program.map(|p| format!("   program: {} {}", p.name, p.report.badge())).unwrap_or_default();
        outln!("model: {model}   scenarios: {}{program}\n", scenarios.len());
    }
    let (mut as_expected, mut errors, mut total_ms) = (0usize, 0usize, 0.0);
    for (i, s) in scenarios.iter().enumerate() {
        // Wall time, from the command to the run's end (a scenario's own re-grant included):
        // what the operator waited. `Instant`, not the session clock, which tests may hold
        // still and which only paces tokens and monitor windows.
        let started = Instant::now();
        anyhow::ensure!(core.send(Command::RunScenario(i)).await, "the session core stopped unexpectedly");
        let report = next_run(&mut events).await.context("the session core stopped before the run finished")?;
        let mut result = ScenarioResult::judge(s, report);
        result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        as_expected += usize::from(result.expected);
        errors += usize::from(result.status == RunStatus::Error);
        total_ms += result.elapsed_ms;
        if args.json {
            outln!("{}", serde_json::to_string(&result)?);
        } else {
            outln!("{}", render(&result));
        }
    }
    let (usage, anomalies) = (core.usage(), core.anomaly_counts());
    // Export is flushed by the shutdown below; its figures are read after it.
    let telemetry = core.telemetry();
    let mut summary = json!({
        "anomalies": anomalies,
        "summary": true,
        "model": model,
        "scenarios": scenarios.len(),
        "as_expected": as_expected,
        "unexpected": scenarios.len() - as_expected,
        "errors": errors,
        "elapsed_ms": total_ms,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    });
    core.shutdown().await;
    let telemetry = telemetry.map(|t| t.status());
    if let Some(status) = &telemetry {
        summary["telemetry"] = serde_json::to_value(status)?;
    }
    if args.json {
        outln!("{summary}");
    } else {
        outln!("{as_expected}/{} scenarios as expected ({:.0} ms, model {model})", scenarios.len(), total_ms);
        if errors > 0 {
            outln!(
                "{} not tested: the language model failed (see each error)",
                crate::types::text::counted(errors as u64, "scenario", "scenarios")
            );
        }
        if let Some(status) = &telemetry {
            outln!("{}", status.line());
        }
    }
    if let Some((path, recorder)) = recording {
        // The core and its stack are gone, so the bus's last sender with them: the
        // recorder drains what is left and stops.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), recorder).await;
        if !args.json {
            outln!("recorded {}", path.display());
        }
    }
    Ok(if errors > 0 {
        ExitCode::from(EXIT_MODEL_ERROR)
    } else if as_expected == scenarios.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNEXPECTED)
    })
}

pub async fn run(
    config_path: Option<&Path>,
    state_dir: &Path,
    file: &Path,
    args: AgentArgs,
) -> anyhow::Result<ExitCode> {
    let (mut config, _) = Config::load(config_path)?;
    if let Err(msg) = args.login.apply(&mut config, state_dir) {
        eprintln!("warden: {msg}");
        return Ok(ExitCode::from(2));
    }
    let scenarios = crate::session::scenario::load(file)?;
    anyhow::ensure!(!scenarios.is_empty(), "{} has no [[scenario]] entries", file.display());
    run_scenarios(&config, state_dir, &scenarios, &args).await
}

/// The demo's servers: issuer + service on port 0 in `state_dir`, or in a temporary state
/// dir (removed on drop) when none is given, with the client config they wrote.
pub(crate) struct DemoServers {
    pub(crate) running: crate::serve::Running,
    pub(crate) client: Config,
    dir: std::path::PathBuf,
    _temp: Option<TempState>,
}

impl DemoServers {
    /// `otlp_endpoint`: the demo's service exports its spans too (`--otlp-endpoint`).
    pub(crate) async fn start(state_dir: Option<&Path>, otlp_endpoint: Option<&str>) -> anyhow::Result<Self> {
        let temp = if state_dir.is_some() { None } else { Some(TempState::new("warden-demo")?) };
        let dir = match (state_dir, &temp) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(t)) => t.0.clone(),
            (None, None) => unreachable!("a temporary dir is created when none is given"),
        };
        let mut serve_config = Config::parse(crate::config::DEFAULT_CONFIG, Path::new("<built-in>"))?;
        serve_config.issuer.addr = "127.0.0.1:0".parse()?;
        serve_config.service.addr = "127.0.0.1:0".parse()?;
        serve_config.service.rate_limit.burst = serve_config.service.rate_limit.burst.max(1000);
        let opts = crate::serve::ServeOptions {
            otlp_endpoint: otlp_endpoint.map(str::to_string),
            ..crate::serve::ServeOptions::default()
        };
        let running = crate::serve::start(&serve_config, &dir, &opts).await?;
        let client_path = running.client_config.clone().context("serve did not write a client config")?;
        let client = Config::parse(&std::fs::read_to_string(&client_path)?, &client_path)?;
        Ok(Self { running, client, dir, _temp: temp })
    }
}

/// `warden demo --headless`: start issuer + service on port 0 in a state dir (a fresh
/// temporary one unless given), run the built-in scenarios with the offline planner.
pub async fn demo_headless(state_dir: Option<&Path>, log_dir: &Path, args: AgentArgs) -> anyhow::Result<ExitCode> {
    let DemoServers { running, client, dir, _temp } =
        DemoServers::start(state_dir, args.otlp_endpoint.as_deref()).await?;
    if !args.json {
        outln!(
            "warden demo: issuer {}  mcp {}  (state {})",
            running.issuer_url.as_deref().unwrap_or("-"),
            running.mcp_url.as_deref().unwrap_or("-"),
            dir.display()
        );
    }
    let scenarios =
        crate::session::scenario::parse(crate::session::scenario::DEFAULT_SCENARIOS, "built-in config/scenarios.toml")?;
    let args = AgentArgs { model: Some(args.model.unwrap_or_else(|| "offline".into())), ..args };
    let code = run_scenarios(&client, log_dir, &scenarios, &args).await;
    running.shutdown().await;
    code
}

/// A temporary state directory removed on drop.
pub(crate) struct TempState(std::path::PathBuf);

impl TempState {
    /// A fresh directory `PREFIX-PID-RANDOM` in the system's temp dir.
    pub(crate) fn new(prefix: &str) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempState {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Theme and keymap from flags and `[console]`.
pub fn look(
    config: &Config,
    theme_flag: Option<&str>,
) -> anyhow::Result<(crate::tui::theme::Theme, crate::tui::keymap::Keymap)> {
    let console = config.console.clone().unwrap_or_default();
    let theme = crate::tui::theme::Theme::load(theme_flag.or(console.theme.as_deref()))?;
    let keymap = crate::tui::keymap::Keymap::with_overrides(&console.keys)?;
    Ok((theme, keymap))
}

/// `warden console`: the console against configured servers.
pub async fn console(
    config_path: Option<&Path>,
    state_dir: &Path,
    args: AgentArgs,
    theme: Option<&str>,
    adhoc: &super::AdHocArgs,
) -> anyhow::Result<ExitCode> {
    let mut config = match super::client::adhoc_server(adhoc) {
        Ok(None) => Config::load(config_path)?.0,
        // One server from the command line, as for `warden tools --url`: a config named with
        // --config lends its [client] (for an OAuth server) and its console look, nothing
        // else; without one, the server's auth is discovered.
        Ok(Some(entry)) => {
            let lent = match config_path {
                Some(path) => Config::load(Some(path))?.0,
                None => Config::default(),
            };
            let client = super::client::adhoc_client(adhoc, lent.client);
            Config { client, console: lent.console, servers: vec![entry], ..Config::default() }
        }
        Err(msg) => {
            eprintln!("warden: {msg}");
            return Ok(ExitCode::from(2));
        }
    };
    args.login.apply_console(&mut config, state_dir);
    let scenarios = match Path::new("config/scenarios.toml") {
        p if p.exists() => crate::session::scenario::load(p)?,
        _ => crate::session::scenario::parse(crate::session::scenario::DEFAULT_SCENARIOS, "built-in")?,
    };
    live(&config, state_dir, args, theme, scenarios).await
}

async fn live(
    config: &Config,
    state_dir: &Path,
    args: AgentArgs,
    theme: Option<&str>,
    scenarios: Vec<Scenario>,
) -> anyhow::Result<ExitCode> {
    let (theme, keymap) = look(config, theme)?;
    // The console shows whether each server is reachable, so it wants the health probe;
    // and it asks the operator about calls that need confirmation (an overlay).
    let (confirmer, confirmations) = crate::types::confirm::Confirmer::operator(4);
    // Step-ups under `--step-up ask` are asked the same way (an overlay of their own).
    let (step_up, step_ups) = crate::types::step_up::StepUpAsker::operator(4);
    let program = args.program.load()?;
    let opts = SessionOptions { probe_health: true, confirmer, step_up, program, ..args.session(scenarios) };
    let session = Session::open(config, state_dir, opts).await?;
    if let Some(code) = refuse_invalid_program(&session, &args) {
        session.start(CancellationToken::new()).shutdown().await;
        return Ok(code);
    }
    let setup = crate::tui::LiveSetup {
        session,
        theme,
        keymap,
        state_dir: state_dir.to_path_buf(),
        confirmations: Some(confirmations),
        step_ups: Some(step_ups),
    };
    crate::tui::run_live(setup).await?;
    Ok(ExitCode::SUCCESS)
}

/// `warden demo`: issuer + service on loopback, then the console with the offline planner.
pub async fn demo(
    state_dir: Option<&Path>,
    log_dir: &Path,
    args: AgentArgs,
    theme: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let DemoServers { running, client, dir: _, _temp } =
        DemoServers::start(state_dir, args.otlp_endpoint.as_deref()).await?;
    let scenarios =
        crate::session::scenario::parse(crate::session::scenario::DEFAULT_SCENARIOS, "built-in config/scenarios.toml")?;
    let args = AgentArgs { model: Some(args.model.unwrap_or_else(|| "offline".into())), ..args };
    // Sessions are kept in the persistent state dir even when the servers' state is temporary.
    let result = live(&client, log_dir, args, theme, scenarios).await;
    running.shutdown().await;
    result
}
