//! `warden run SCENARIOS.toml` and `warden demo --headless`: scenarios through the real
//! stack, printed as a readable trace or as JSON lines, with an exit code that says
//! whether every scenario ended as expected.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::agent::lm::{self, Lm, LmOptions};
use crate::config::{AgentConfig, Config};
use crate::mcp::ClientStack;
use crate::mcp::secure_tool::CallPolicy;
use crate::session::scenario::{Runner, Scenario, render};
use crate::types::event::EventBus;
use crate::types::scope::ScopeSet;

/// Options shared by `run` and `demo`.
#[derive(Debug, Clone, Default)]
pub struct AgentArgs {
    pub model: Option<String>,
    pub lm_base_url: Option<String>,
    pub scopes: Option<String>,
    pub max_iters: Option<usize>,
    pub json: bool,
}

/// What `run`, `demo` and `console` share: the requested grant, the model, an event bus
/// with the audit trail and monitor attached, and the client stack (manifests pinned).
struct AgentSession {
    scopes: Option<ScopeSet>,
    lm: Arc<dyn Lm>,
    events: EventBus,
    monitor: Arc<crate::observe::monitor::Monitor>,
    stack: ClientStack,
    max_iters: usize,
    /// Kept alive for the session (the bus also holds it).
    _audit: Arc<crate::observe::audit::AuditLog>,
}

impl AgentSession {
    async fn open(config: &Config, state_dir: &Path, args: &AgentArgs) -> anyhow::Result<Self> {
        let scopes =
            args.scopes.as_deref().map(ScopeSet::parse).transpose().context("--scopes takes space-separated scopes")?;
        let lm = build_lm(args, config.agent.as_ref())?;
        let events = EventBus::new();
        let (audit, monitor) = crate::session::audit::attach(&events, state_dir, config)?;
        let pins = state_dir.join("manifests.json");
        let stack =
            ClientStack::connect_pinned(config, scopes.clone(), CallPolicy::default(), events.clone(), Some(&pins))
                .await
                .context("cannot connect to the MCP servers in the config")?;
        let max_iters = args
            .max_iters
            .or(config.agent.as_ref().and_then(|a| a.max_iters))
            .unwrap_or(crate::agent::react::DEFAULT_MAX_ITERS);
        Ok(Self { scopes, lm, events, monitor, stack, max_iters, _audit: audit })
    }
}

/// Exit code when at least one scenario did not end as expected.
pub const EXIT_UNEXPECTED: u8 = 7;

pub fn build_lm(args: &AgentArgs, agent: Option<&AgentConfig>) -> anyhow::Result<Arc<dyn Lm>> {
    let cfg = agent.cloned().unwrap_or_default();
    let name = args.model.clone().or(cfg.model).unwrap_or_else(|| "offline".into());
    let opts = LmOptions {
        base_url: args.lm_base_url.clone().or(cfg.base_url),
        api_key_env: cfg.api_key_env,
        timeout: cfg.timeout_secs.map(Duration::from_secs),
        max_retries: None,
        temperature: cfg.temperature,
        max_tokens: cfg.max_tokens,
        api_key: None,
    };
    Ok(lm::from_name(&name, &opts)?)
}

pub async fn run_scenarios(
    config: &Config,
    state_dir: &Path,
    scenarios: &[Scenario],
    args: &AgentArgs,
) -> anyhow::Result<ExitCode> {
    let AgentSession { scopes, lm, events, monitor, stack, max_iters, _audit } =
        AgentSession::open(config, state_dir, args).await?;
    let runner = Runner { stack: &stack, lm: lm.clone(), events, max_iters, default_scopes: scopes };
    if !args.json {
        println!("model: {}   scenarios: {}\n", lm.name(), scenarios.len());
    }
    let (mut as_expected, mut total_ms) = (0usize, 0.0);
    for (i, s) in scenarios.iter().enumerate() {
        let result = runner.run(s, &format!("run-{}-{}", i + 1, s.name)).await;
        as_expected += usize::from(result.expected);
        total_ms += result.elapsed_ms;
        if args.json {
            println!("{}", serde_json::to_string(&result)?);
        } else {
            println!("{}", render(&result));
        }
    }
    let usage = lm.usage();
    let anomalies: std::collections::BTreeMap<&str, u64> = monitor.counts();
    let summary = json!({
        "anomalies": anomalies,
        "summary": true,
        "model": lm.name(),
        "scenarios": scenarios.len(),
        "as_expected": as_expected,
        "unexpected": scenarios.len() - as_expected,
        "elapsed_ms": total_ms,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!("{as_expected}/{} scenarios as expected ({:.0} ms, model {})", scenarios.len(), total_ms, lm.name());
    }
    stack.close().await;
    Ok(if as_expected == scenarios.len() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_UNEXPECTED) })
}

pub async fn run(
    config_path: Option<&Path>,
    state_dir: &Path,
    file: &Path,
    args: AgentArgs,
) -> anyhow::Result<ExitCode> {
    let (config, _) = Config::load(config_path)?;
    let scenarios = crate::session::scenario::load(file)?;
    anyhow::ensure!(!scenarios.is_empty(), "{} has no [[scenario]] entries", file.display());
    run_scenarios(&config, state_dir, &scenarios, &args).await
}

/// The demo's servers: issuer + service on port 0 in `state_dir`, or in a temporary state
/// dir (removed on drop) when none is given, with the client config they wrote.
struct DemoServers {
    running: crate::serve::Running,
    client: Config,
    dir: std::path::PathBuf,
    _temp: Option<TempState>,
}

impl DemoServers {
    async fn start(state_dir: Option<&Path>) -> anyhow::Result<Self> {
        let temp = if state_dir.is_some() { None } else { Some(TempState::new()?) };
        let dir = match (state_dir, &temp) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(t)) => t.0.clone(),
            (None, None) => unreachable!("a temporary dir is created when none is given"),
        };
        let mut serve_config = Config::parse(crate::config::DEFAULT_CONFIG, Path::new("<built-in>"))?;
        serve_config.issuer.addr = "127.0.0.1:0".parse()?;
        serve_config.service.addr = "127.0.0.1:0".parse()?;
        serve_config.service.rate_limit.burst = serve_config.service.rate_limit.burst.max(1000);
        let running = crate::serve::start(&serve_config, &dir, &crate::serve::ServeOptions::default()).await?;
        let client_path = running.client_config.clone().context("serve did not write a client config")?;
        let client = Config::parse(&std::fs::read_to_string(&client_path)?, &client_path)?;
        Ok(Self { running, client, dir, _temp: temp })
    }
}

/// `warden demo --headless`: start issuer + service on port 0 in a state dir (a fresh
/// temporary one unless given), run the built-in scenarios with the offline planner.
pub async fn demo_headless(state_dir: Option<&Path>, log_dir: &Path, args: AgentArgs) -> anyhow::Result<ExitCode> {
    let DemoServers { running, client, dir, _temp } = DemoServers::start(state_dir).await?;
    if !args.json {
        println!(
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
struct TempState(std::path::PathBuf);

impl TempState {
    fn new() -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("warden-demo-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self(dir))
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
) -> anyhow::Result<ExitCode> {
    let (config, _) = Config::load(config_path)?;
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
    let AgentSession { lm, events, stack, max_iters, .. } = AgentSession::open(config, state_dir, &args).await?;
    let setup = crate::tui::LiveSetup {
        stack: Arc::new(stack),
        lm,
        events,
        scenarios,
        max_iters,
        theme,
        keymap,
        state_dir: state_dir.to_path_buf(),
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
    let DemoServers { running, client, dir: _, _temp } = DemoServers::start(state_dir).await?;
    let scenarios =
        crate::session::scenario::parse(crate::session::scenario::DEFAULT_SCENARIOS, "built-in config/scenarios.toml")?;
    let args = AgentArgs { model: Some(args.model.unwrap_or_else(|| "offline".into())), ..args };
    // Sessions are kept in the persistent state dir even when the servers' state is temporary.
    let result = live(&client, log_dir, args, theme, scenarios).await;
    running.shutdown().await;
    result
}
