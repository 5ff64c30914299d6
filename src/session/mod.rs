//! The headless session core: the only way in for every frontend (the console, `warden
//! run`, `demo --headless`, `--json` output and, later, `warden optimize`).
//!
//! A frontend opens a `Session` (grant, model, audited event bus, pinned client stack),
//! spawns its core task and sends `Command`s; everything the session does comes back as
//! `Event`s on the bus. Frontends never touch the client stack or the agent directly.
//!
//! May import: every layer below (`types` … `agent`). Enforced by `tests/layering.rs`.

pub mod audit;
pub mod command;
pub mod core;
pub mod health;
pub mod optimize;
pub mod replay_check;
pub mod report;
pub mod scenario;
pub mod validate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::lm::{self, Lm, LmOptions, Usage};
use crate::config::{AgentConfig, Config};
use crate::mcp::secure_tool::CallPolicy;
use crate::mcp::{ClientError, ClientStack};
use crate::observe::audit::{AuditError, AuditLog};
use crate::observe::monitor::Monitor;
use crate::observe::telemetry::{SessionFacts, Telemetry};
use crate::types::event::{AnomalyRule, EventBus, EventKind, RefreshReason, ServerSummary};
use crate::types::scope::{InvalidScope, ScopeSet};
use crate::types::tool::ToolName;
use command::Command;
use scenario::Scenario;

/// Events of connecting looked at for `Session::take_connect_auth` (a login is a dozen;
/// beyond this many the earliest are what is kept).
pub const CONNECT_AUTH_EVENTS: usize = 1024;

/// How a frontend wants the session set up (flags over `[agent]` over defaults).
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `offline`, `openai/MODEL`, `anthropic/MODEL`, `ollama/MODEL`.
    pub model: Option<String>,
    pub lm_base_url: Option<String>,
    /// The grant, space-separated (`None`: the config's, else the client's defaults).
    pub scopes: Option<String>,
    pub max_iters: Option<usize>,
    /// `--otlp-endpoint`: OpenTelemetry export, over `OTEL_EXPORTER_OTLP_ENDPOINT` and
    /// `[telemetry]` (none of them: no export).
    pub otlp_endpoint: Option<String>,
    /// What the scenario picker and `RunScenario` offer.
    pub scenarios: Vec<Scenario>,
    /// Probe the servers in the background and report when one goes down or comes back
    /// (`health`); for a console, which shows it. Headless runs learn from their calls.
    pub probe_health: bool,
    /// Decides tool calls that need the operator's confirmation: `--yes` for headless
    /// runs, an operator channel for the console. Default: decline them.
    pub confirmer: crate::types::confirm::Confirmer,
    /// Asked before a step-up under `--step-up ask`: an operator channel for the console.
    /// Default: nobody (declined).
    pub step_up: crate::types::step_up::StepUpAsker,
    /// A compiled program (`--program`) every run's ReAct starts from; validated against
    /// the session's grant and tools when the session opens.
    pub program: Option<Program>,
}

/// A compiled program as a session runs it: where it came from (for the status bar) and
/// what it holds.
#[derive(Debug, Clone)]
pub struct Program {
    /// The file name, as the console's status bar shows it.
    pub name: String,
    pub file: crate::agent::program::ProgramFile,
}

/// The program a session runs and how it validated.
#[derive(Debug, Clone)]
pub struct ProgramStatus {
    pub name: String,
    pub report: validate::ValidationReport,
    /// To validate it again under another grant.
    pub recheck: validate::Recheck,
}

/// Why a session could not open. Each says what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("--scopes takes space-separated scopes: {0}")]
    Scopes(#[from] InvalidScope),
    #[error(transparent)]
    Model(#[from] lm::LmError),
    #[error("cannot open the client audit trail: {0}")]
    Audit(#[from] AuditError),
    #[error("cannot connect to the MCP servers: {0}")]
    Connect(#[from] ClientError),
    #[error("OpenTelemetry export: {0}")]
    Telemetry(#[from] crate::observe::telemetry::TelemetryError),
    #[error("cannot build the OTLP exporter's HTTP client: {0}")]
    TelemetryTls(#[from] crate::security::tls::TlsError),
    #[error("the program {name} does not fit this agent: {source}")]
    Program { name: String, source: crate::agent::program::ProgramError },
}

/// A tool as frontends show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub id: ToolName,
    /// The name the agent sees (bare unless two servers share it).
    pub shown: String,
    pub required: ScopeSet,
    pub hints: crate::types::tool::ToolHints,
    /// `required` is stated by the server (advertised in its `_meta`) or the config
    /// (`[servers.scopes]`); false when nobody states it (the server still decides).
    pub scopes_known: bool,
    /// The digest of its server's tool manifest (what `STATE/manifests.json` pins, and
    /// what a compiled program's `PinnedTool::manifest_digest` records).
    pub manifest_digest: String,
}

/// Static facts about a session, for a frontend's header and panes.
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    /// Each server: how it is reached and authenticated.
    pub servers: Vec<ServerSummary>,
    /// The model's name (`offline-planner`, `openai/gpt-4o`, …).
    pub model: String,
    /// True for the offline planner: no network, same answer every time.
    pub deterministic: bool,
    pub tools: Vec<ToolInfo>,
    pub scenarios: Vec<Scenario>,
    /// The compiled program every run starts from, and its validation, if one was given.
    pub program: Option<ProgramStatus>,
}

/// An open session: grant, model, an event bus with the audit trail and monitor attached,
/// and the client stack (manifests pinned). Frontends read `info()` and `events()`, then
/// `start()` the core and talk to it with `Command`s.
pub struct Session {
    stack: Arc<ClientStack>,
    lm: Arc<dyn Lm>,
    events: EventBus,
    monitor: Arc<Monitor>,
    max_iters: usize,
    default_scopes: Option<ScopeSet>,
    scenarios: Vec<Scenario>,
    /// The health probe's HTTP client (the client's TLS settings), when asked for.
    probe_http: Option<reqwest::Client>,
    /// Kept alive for the session (the bus also holds it).
    _audit: Arc<AuditLog>,
    /// The auth steps and token failures of connecting, kept for a frontend that
    /// subscribes afterwards (`take_connect_auth`).
    connect_auth: Vec<crate::types::event::Event>,
    /// The compiled program (checked to fit the agent) and its name.
    program: Option<(String, Arc<crate::agent::program::ProgramFile>)>,
    /// Its validation against the grant and tools the session opened with, and what it
    /// takes to validate it again.
    program_report: Option<(validate::ValidationReport, validate::Recheck)>,
    /// OpenTelemetry export, when configured (a watcher on the bus).
    telemetry: Option<Arc<Telemetry>>,
}

impl Session {
    /// Opens a session against the servers in `config`, keeping the audit trail, session
    /// pins and recordings under `state_dir`.
    pub async fn open(config: &Config, state_dir: &Path, opts: SessionOptions) -> Result<Self, SessionError> {
        Self::open_on(config, state_dir, opts, EventBus::new()).await
    }

    /// Like `open`, on a bus the caller made (a recording bus, or one with a manual clock).
    pub async fn open_on(
        config: &Config,
        state_dir: &Path,
        opts: SessionOptions,
        events: EventBus,
    ) -> Result<Self, SessionError> {
        Self::open_with_lm(config, state_dir, opts, events, None).await
    }

    /// Like `open_on`, with a model the caller built (`None`: from the options and
    /// `[agent]`) — a scripted `DummyLm` in tests, a program's own model when embedding.
    pub async fn open_with_lm(
        config: &Config,
        state_dir: &Path,
        opts: SessionOptions,
        events: EventBus,
        lm: Option<Arc<dyn Lm>>,
    ) -> Result<Self, SessionError> {
        let scopes = opts.scopes.as_deref().map(ScopeSet::parse).transpose()?;
        // A program that does not fit DSPy's ReAct is refused before connecting anywhere.
        if let Some(p) = &opts.program {
            let mut probe =
                crate::agent::react::ReAct::new(crate::agent::signature::Signature::customer_service(), Vec::new(), 1);
            probe
                .load_state(&p.file.program)
                .map_err(|source| SessionError::Program { name: p.name.clone(), source })?;
        }
        let lm = match lm {
            Some(lm) => lm,
            None => build_lm(&opts, config.agent.as_ref())?,
        };
        let (audit, monitor) = audit::attach(&events, state_dir, config)?;
        // Attached before connecting, so the tokens connecting gets are known to it.
        let telemetry = start_telemetry(config, &opts, &events)?;
        // What connecting does to the OAuth state (a login's steps) is told on the bus
        // before any frontend listens: kept here, bounded, for the console's auth flow.
        let mut early = events.subscribe(CONNECT_AUTH_EVENTS);
        let pins = state_dir.join("manifests.json");
        let policy = CallPolicy {
            confirmer: opts.confirmer.clone(),
            step_up: opts.step_up.clone(),
            trace: telemetry.as_ref().map(|t| t.salt()),
            ..CallPolicy::default()
        };
        let stack = ClientStack::connect_pinned(config, scopes.clone(), policy, events.clone(), Some(&pins)).await?;
        let mut connect_auth = Vec::new();
        while let Ok(e) = early.try_recv() {
            if matches!(
                e.kind,
                EventKind::AuthStep { .. } | EventKind::TokenRejected { .. } | EventKind::TokenError { .. }
            ) {
                connect_auth.push(e);
            }
        }
        // Closed: the bus drops this subscriber at its next event.
        drop(early);
        let max_iters = opts
            .max_iters
            .or(config.agent.as_ref().and_then(|a| a.max_iters))
            .unwrap_or(crate::agent::react::DEFAULT_MAX_ITERS);
        let mut session = Self {
            stack: Arc::new(stack),
            lm,
            events,
            monitor,
            max_iters,
            default_scopes: scopes,
            scenarios: opts.scenarios,
            probe_http: opts.probe_health.then(|| probe_client(config)).flatten(),
            _audit: audit,
            connect_auth,
            program: opts.program.as_ref().map(|p| (p.name.clone(), Arc::new(p.file.clone()))),
            program_report: None,
            telemetry,
        };
        if let Some(t) = &session.telemetry {
            t.set_servers(session.stack.servers.iter().map(summary).collect());
        }
        if let Some(p) = opts.program {
            let recheck = validate::Recheck::new(p.file, session.info().tools);
            session.program_report = Some((recheck.under(&session.grant()), recheck));
        }
        Ok(session)
    }

    /// The grant the session runs under: the scopes asked for, else what the servers'
    /// tokens were granted (the client's defaults).
    pub fn grant(&self) -> ScopeSet {
        if let Some(s) = &self.default_scopes {
            return s.clone();
        }
        let mut all = ScopeSet::new();
        for t in self.stack.servers.iter().filter_map(|s| s.tokens.as_ref()).filter_map(|t| t.info()) {
            for scope in t.granted.iter() {
                all.insert(scope.clone());
            }
        }
        all
    }

    /// The program's validation, when the session runs one.
    pub fn program_report(&self) -> Option<&validate::ValidationReport> {
        self.program_report.as_ref().map(|(r, _)| r)
    }

    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            servers: self.stack.servers.iter().map(summary).collect(),
            model: self.lm.name().to_string(),
            deterministic: self.lm.name() == lm::offline::NAME,
            tools: tool_infos(&self.stack),
            scenarios: self.scenarios.clone(),
            program: self.program.as_ref().zip(self.program_report.as_ref()).map(|((name, _), (report, recheck))| {
                ProgramStatus { name: name.clone(), report: report.clone(), recheck: recheck.clone() }
            }),
        }
    }

    /// Everything the session does is reported here.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Anomalies per rule so far.
    pub fn anomaly_counts(&self) -> std::collections::BTreeMap<AnomalyRule, u64> {
        self.monitor.counts()
    }

    /// LM tokens used so far.
    pub fn usage(&self) -> Usage {
        self.lm.usage()
    }

    /// What OpenTelemetry export has done, when it is on.
    pub fn telemetry(&self) -> Option<Arc<Telemetry>> {
        self.telemetry.clone()
    }

    /// Sends the auth steps and token failures of connecting (at most
    /// [`CONNECT_AUTH_EVENTS`] events were looked at) again, as they happened — ids and
    /// times unchanged — to the subscribers that joined since (the console and its
    /// recording), once; the audit trail has them already. The tokens themselves are
    /// announced by [`Self::announce_tokens`].
    pub fn announce_connect_auth(&mut self) {
        for e in std::mem::take(&mut self.connect_auth) {
            self.events.resend(&e);
        }
    }

    /// Reports what the stack learnt while connecting, before a frontend subscribed: the
    /// tokens it already holds, and the stderr its stdio servers wrote (held until now), so
    /// a console starting now shows them.
    pub fn announce_tokens(&self) {
        for server in &self.stack.servers {
            server.session.attach_stderr();
            if let Some(token) = server.tokens.as_ref().and_then(|t| t.info()) {
                let server = Some(server.entry.name.clone());
                self.events.emit(
                    &Default::default(),
                    EventKind::TokenIssued { token, reason: RefreshReason::Initial, server },
                );
            }
        }
    }

    /// Starts the core task; stops when told to quit, when every sender is dropped, or on
    /// `shutdown`.
    pub fn start(self, shutdown: CancellationToken) -> SessionHandle {
        let (tx, rx) = mpsc::channel(64);
        let (stack, lm) = (self.stack.clone(), self.lm.clone());
        let health = self.probe_http.map(|http| {
            let servers: Vec<(String, String)> =
                self.stack.servers.iter().map(|s| (s.entry.name.clone(), s.entry.url.clone())).collect();
            let processes = self.stack.servers.iter().filter(|s| s.session.is_stdio()).map(|s| s.session.clone());
            health::Health::new(&servers, http, self.events.clock().clone()).with_processes(processes)
        });
        let task = core::Core {
            stack: self.stack,
            lm: self.lm,
            events: self.events,
            max_iters: self.max_iters,
            scenarios: self.scenarios,
            default_scopes: self.default_scopes,
            health,
            program: self.program.map(|(_, p)| p),
            optimize_runs: None,
        }
        .spawn(rx, shutdown);
        SessionHandle {
            commands: tx,
            task,
            stack,
            lm,
            monitor: self.monitor,
            _audit: self._audit,
            telemetry: self.telemetry,
        }
    }
}

/// A running session core.
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    stack: Arc<ClientStack>,
    lm: Arc<dyn Lm>,
    monitor: Arc<Monitor>,
    _audit: Arc<AuditLog>,
    telemetry: Option<Arc<Telemetry>>,
}

impl SessionHandle {
    /// OpenTelemetry export, when it is on: its status stays readable after `shutdown`.
    pub fn telemetry(&self) -> Option<Arc<Telemetry>> {
        self.telemetry.clone()
    }

    /// Anomalies per rule so far.
    pub fn anomaly_counts(&self) -> std::collections::BTreeMap<AnomalyRule, u64> {
        self.monitor.counts()
    }

    /// LM tokens used so far.
    pub fn usage(&self) -> Usage {
        self.lm.usage()
    }

    /// A sender for frontends that send without waiting (the console).
    pub fn sender(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// Sends a command, waiting for room in the queue. `false` when the core has stopped.
    pub async fn send(&self, cmd: Command) -> bool {
        self.commands.send(cmd).await.is_ok()
    }

    /// Asks the core to quit, waits for it (bounded), and closes the MCP sessions.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Quit).await;
        drop(self.commands);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
        if let Ok(stack) = Arc::try_unwrap(self.stack) {
            stack.close().await;
        }
        // Last: the runs' final events are in; what is queued goes out, bounded.
        if let Some(t) = self.telemetry {
            t.shutdown(crate::observe::telemetry::FLUSH_TIMEOUT).await;
        }
    }
}

/// The stack's tools as frontends (and validation) see them.
pub(crate) fn tool_infos(stack: &ClientStack) -> Vec<ToolInfo> {
    let names = stack.tool_names();
    stack
        .servers
        .iter()
        .flat_map(|s| s.tools.iter().map(move |t| (s.session.manifest_hash(), t)))
        .map(|(digest, t)| ToolInfo {
            id: t.id().clone(),
            shown: names.shown(t.id()).unwrap_or(&t.id().name).to_string(),
            required: t.spec.required_scopes.clone(),
            hints: t.spec.hints,
            scopes_known: t.spec.scopes_source != crate::mcp::session::ScopesSource::Unknown,
            manifest_digest: digest.to_string(),
        })
        .collect()
}

/// What a frontend shows about a connected server: never a secret (headers by name and
/// fingerprint).
fn summary(s: &crate::mcp::Connected) -> ServerSummary {
    let transport = match s.entry.transport() {
        crate::config::Transport::Stdio { .. } => "stdio",
        crate::config::Transport::Http { .. } => "http",
    };
    let headers = match s.auth {
        crate::config::AuthMode::Headers => s
            .entry
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), crate::types::secret::Fingerprint::of(v.expose().as_bytes())))
            .collect(),
        _ => Vec::new(),
    };
    ServerSummary {
        name: s.entry.name.clone(),
        transport: transport.into(),
        endpoint: s.entry.endpoint(),
        auth: s.auth.label().into(),
        headers,
    }
}

/// The health probe's HTTP client: the same trust as the client stack's (the system roots
/// when there is no `[client]`: servers without OAuth are probed too; stdio servers have no
/// URL and are not). `None` (no probe, a warning in the log) if it cannot be built — the
/// stack just connected with the same settings, so that would be surprising, and not worth
/// refusing a console over.
fn probe_client(config: &Config) -> Option<reqwest::Client> {
    let tls = config.client.as_ref().map(crate::mcp::client_tls).unwrap_or_default();
    crate::security::tls::http_client(&tls, health::PROBE_TIMEOUT)
        .map_err(|e| tracing::warn!(error = %e, "no server health probe"))
        .ok()
}

/// The language model from flags and `[agent]`.
pub fn build_lm(opts: &SessionOptions, agent: Option<&AgentConfig>) -> Result<Arc<dyn Lm>, lm::LmError> {
    let cfg = agent.cloned().unwrap_or_default();
    let name = opts.model.clone().or(cfg.model).unwrap_or_else(|| "offline".into());
    let lm_opts = LmOptions {
        base_url: opts.lm_base_url.clone().or(cfg.base_url),
        api_key_env: cfg.api_key_env,
        timeout: cfg.timeout_secs.map(Duration::from_secs),
        max_retries: None,
        temperature: cfg.temperature,
        max_tokens: cfg.max_tokens,
        api_key: None,
    };
    lm::from_name(&name, &lm_opts)
}

/// Arguments rendered the way the agent's prompts show them (`{"a": 1}`), for frontends.
pub fn format_args(args: &serde_json::Value) -> String {
    crate::agent::pyfmt::json_dumps(args)
}

/// OpenTelemetry export when `--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `[telemetry] endpoint` asks for it, through an HTTP client with the client's TLS
/// settings (its CA on top of the system roots). A misconfigured endpoint refuses the
/// session (the operator asked for export); an unreachable one does not (counted).
fn start_telemetry(
    config: &Config,
    opts: &SessionOptions,
    events: &EventBus,
) -> Result<Option<Arc<Telemetry>>, SessionError> {
    let settings = config.telemetry.clone().unwrap_or_default();
    let Some(resolved) = settings.resolve(opts.otlp_endpoint.as_deref(), |k| std::env::var(k).ok())? else {
        return Ok(None);
    };
    let tls = config.client.as_ref().map(crate::mcp::client_tls).unwrap_or_default();
    let http = crate::security::tls::http_client(&tls, std::time::Duration::from_secs(10))?;
    let facts = SessionFacts {
        agent_name: opts.program.as_ref().map(|p| p.name.clone()).unwrap_or_else(|| "customer-service".into()),
        conversation_id: uuid::Uuid::new_v4().to_string(),
        servers: Vec::new(),
    };
    tracing::info!(endpoint = %resolved.endpoint, "exporting OpenTelemetry traces");
    Ok(Some(Telemetry::start(events, &resolved, http, facts)?))
}
