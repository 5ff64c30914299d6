//! The command-line edge: clap definitions and dispatch. Errors become `anyhow` here, with
//! context that tells the user what to do next; everything below uses typed errors.
//!
//! May import: every layer (it is the composition edge). Enforced by `tests/layering.rs`.

/// `print!`/`println!` for command output, minus their panic when stdout has gone away
/// (`warden tools | head`): a closed pipe only means nobody reads the rest, so the command
/// finishes its work (audit, child processes) quietly instead of dying mid-way.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::cli::written(writeln!(std::io::stdout().lock(), $($arg)*));
    }};
}
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        $crate::cli::written(write!(std::io::stdout().lock(), $($arg)*));
    }};
}

/// What a failed write to stdout means: nothing for a closed pipe; otherwise (a full disk)
/// the user hears of it on stderr.
pub fn written(result: std::io::Result<()>) {
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("warden: could not write the output: {e}");
    }
}

pub mod audit;
pub mod bench;
pub mod client;
pub mod inspect;
pub mod logging;
pub mod optimize;
pub mod replay_check;
pub mod run;
pub mod serve;
pub mod token_view;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "Operator console for a ReAct support agent on OAuth-protected MCP servers"
)]
pub struct Cli {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/warden/warden.toml, then ./config/warden.toml, then built-in defaults.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// State directory (keys, TLS, database, logs). Default: $XDG_STATE_HOME/warden or ~/.local/state/warden.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded authorization server and the customer-service MCP server.
    Serve(ServeArgs),
    /// Obtain and verify an access token and print its state (never the token itself).
    Token(TokenArgs),
    /// List each server's tools with their required scopes and whether the grant allows them.
    Tools(ToolsArgs),
    /// Call one tool through the secure client (scope pre-check, classified failures).
    Call(CallArgs),
    /// List the configured MCP servers: transport, auth mode, and whether each answers
    /// (its tool count, or the error). Exit 0 when every server answered, 1 otherwise.
    Servers(ServersArgs),
    /// Run agent scenarios through the real stack (token manager, secure tools, ReAct).
    ///
    /// Exit 0: every scenario as expected; 7: one was not; 9: the model failed in one
    /// (status `error`: no key, key rejected, unreachable, timed out).
    Run(RunArgs),
    /// One command, no keys, no network: start issuer + service on loopback and run the demo.
    Demo(DemoArgs),
    /// The operator console against the configured servers and model.
    Console(ConsoleArgs),
    /// Play a recorded session (STATE/sessions/*.jsonl) back in the console; or, with
    /// --check, run its requests again and compare each with its recording.
    ///
    /// --check exits 0 when nothing security-relevant changed; 1 when a call's decision
    /// changed between allowed and denied/blocked or a tool is called that was not then;
    /// 2 usage; 4 cannot log in; 9 the model failed; 10 a server cannot be reached.
    Replay(ReplayArgs),
    /// Validate a compiled program against the grant and the servers' tools before deploying it.
    ///
    /// Every demo's tool calls must exist, be allowed by the grant and the servers' stated
    /// scopes, and break no learned constraint; no demo may show a denied or failed step;
    /// pinned tool manifests must be unchanged. Exit 0: valid; 1: findings; 2: usage or
    /// unreadable program; 4: cannot log in; 10: a server cannot be reached.
    Validate(ValidateArgs),
    /// The audit trail: verify the hash chain, or show records.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Hash a client secret (read from stdin) for `[[issuer.clients]] secret_hash`.
    HashSecret,
    /// Revoke (RFC 7009, where offered) and forget the stored logins of SERVER, or of every server.
    Logout(LogoutArgs),
    /// Load the service: authenticated tool calls vs. its metadata GET (the ceiling), budgets checked.
    Bench(bench::BenchArgs),
    /// Optimize the agent's program (DSPy's optimizers, the seeds' security-aware metric),
    /// print the before/after table, validate, and write it sealed or as DSPy JSON.
    ///
    /// Exit 0: written (or, without --out, valid); 1: the program did not validate, nothing
    /// written; 2: bad usage.
    Optimize(optimize::OptimizeArgs),
    /// Show a program file (sealed or DSPy JSON): each predictor's instructions and demos,
    /// and a sealed file's security configuration; --export-dspy writes it for Python.
    ///
    /// Exit 0: shown; 1: the file could not be opened (wrong key, changed, truncated, …);
    /// 2: the command line is wrong.
    Inspect(inspect::InspectArgs),
    /// Create a program key (32 random bytes as hex, mode 0600) for sealing programs.
    Keygen(inspect::KeygenArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, the head and the signed checkpoints; report the first problem
    /// (exit 1), or that the signatures could not be checked without the key (exit 2).
    Verify {
        /// A segment file or an audit directory (default STATE/audit).
        path: Option<PathBuf>,
        /// The checkpoint key (default: [audit] checkpoint_key, else STATE/keys/audit-checkpoint.key).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Show the newest records.
    Tail {
        /// The servers' decision log instead of the client's.
        #[arg(long)]
        server: bool,
        /// The decision log of service instance N (`serve --instances`: STATE/audit/service-N-*).
        #[arg(long, value_name = "N", conflicts_with = "server")]
        instance: Option<u16>,
        /// Keep printing new records.
        #[arg(long, short)]
        follow: bool,
        /// One JSON object per record (`{"seq": N, "event": {…}}`), one per line.
        #[arg(long)]
        json: bool,
        /// Only the records of this agent run (its run id, as the console and `--json` show it).
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        /// Only the records about this tool, e.g. get_customer_info.
        #[arg(long, value_name = "NAME")]
        tool: Option<String>,
        /// Only records whose outcome starts with this: allowed, denied (also matches
        /// denied_client and denied_server), rate_limited, error, not_confirmed, confirmed,
        /// declined, token, anomaly, …
        #[arg(long)]
        outcome: Option<String>,
        /// How many records (default 20).
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Scopes to request, space-separated.
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Theme: dark, light, mono, or a path to a theme TOML (NO_COLOR forces mono).
    #[arg(long)]
    pub theme: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub program: ProgramFlags,
    /// `--url` / `--stdio` / `--header`: one server from the command line instead of the
    /// config's servers.
    #[command(flatten)]
    pub adhoc: AdHocArgs,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// The compiled program: sealed, or DSPy JSON.
    pub program: PathBuf,
    /// The grant to validate for, space-separated (default: the grant the program was compiled for, else the config's or the client's defaults)
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// The key that opens a sealed program (default: the environment's key)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// A JSON object: the report (ok, findings with predictor, demo, step, tool, kind and message; what was checked).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub login: LoginArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A session file (JSONL), e.g. from STATE/sessions/ or exported with `e`.
    pub file: PathBuf,
    /// Run each recorded request again (headless, against the configured servers, under the grant it had) and compare tool calls, decisions and outcome with the recording
    #[arg(long)]
    pub check: bool,
    /// With --check: every request under these scopes instead of the recorded grant
    #[arg(long, value_name = "\"A B\"", requires = "check")]
    pub scopes: Option<String>,
    /// With --check: one JSON object per request (its differences) and a final summary object.
    #[arg(long, requires = "check")]
    pub json: bool,
    /// With --check: allow calls that need confirmation (without it they are refused, unsent, and reported if they ran then)
    #[arg(long, requires = "check")]
    pub yes: bool,
    #[command(flatten)]
    pub program: ProgramFlags,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Playback speed multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Theme: dark, light, mono, or a path to a theme TOML (NO_COLOR forces mono).
    #[arg(long)]
    pub theme: Option<String>,
}

/// `--program FILE [--key-file K] [--allow-invalid-program]`, for the commands that run the agent.
#[derive(Debug, Clone, Args, Default)]
pub struct ProgramFlags {
    /// A compiled program (sealed, or DSPy JSON from `warden optimize`) every run starts from: its demos and instructions. It is validated against the grant and the servers' tools first; one that does not validate is refused (exit 1)
    #[arg(long, value_name = "FILE")]
    pub program: Option<PathBuf>,
    /// The key that opens a sealed --program (default: the environment's key)
    #[arg(long, value_name = "FILE", requires = "program")]
    pub key_file: Option<PathBuf>,
    /// Run a --program that does not validate anyway (its findings are printed; the console's status bar shows ✗)
    #[arg(long, requires = "program")]
    pub allow_invalid_program: bool,
}

impl ProgramFlags {
    pub fn args(&self) -> run::ProgramArgs {
        run::ProgramArgs {
            file: self.program.clone(),
            key_file: self.key_file.clone(),
            allow_invalid: self.allow_invalid_program,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Language model: offline (default), openai/MODEL, anthropic/MODEL, ollama/MODEL.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Base URL of an OpenAI-compatible server (default: OPENAI_BASE_URL, or the provider's).
    #[arg(long, value_name = "URL")]
    pub lm_base_url: Option<String>,
    /// ReAct iterations per request (default 5).
    #[arg(long, value_name = "N")]
    pub max_iters: Option<usize>,
    /// Export runs as OpenTelemetry traces to this OTLP/HTTP base URL, e.g.
    /// http://127.0.0.1:6006 for Phoenix (default: OTEL_EXPORTER_OTLP_ENDPOINT, then [telemetry]).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Scenarios file (TOML with [[scenario]] tables), e.g. config/scenarios.toml.
    pub scenarios: PathBuf,
    /// Scopes to request, space-separated (default: the config's or the client's defaults).
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// One JSON object per scenario and a final summary object.
    #[arg(long)]
    pub json: bool,
    /// Allow tool calls that need confirmation (destructive or unannotated tools, or every
    /// call of a server with confirm = "always"); without it they are refused, unsent.
    #[arg(long)]
    pub yes: bool,
    /// Record every event to STATE/sessions/ as the console does (for `warden replay`,
    /// `replay --check`, and `optimize --feedback`, which learns the requests behind
    /// denials from recordings).
    #[arg(long)]
    pub record: bool,
    #[command(flatten)]
    pub login: LoginArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub program: ProgramFlags,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run the scenarios and print the trace instead of opening the console.
    #[arg(long)]
    pub headless: bool,
    /// With --headless: one JSON object per scenario and a final summary object, no trace.
    #[arg(long, requires = "headless")]
    pub json: bool,
    /// With --headless: record the run to STATE/sessions/ (the console always records).
    #[arg(long, requires = "headless")]
    pub record: bool,
    /// Theme: dark, light, mono, or a path to a theme TOML (NO_COLOR forces mono).
    #[arg(long)]
    pub theme: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub program: ProgramFlags,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub adhoc: AdHocArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Scopes to request, space-separated (default: the config's, else the client's defaults).
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// A JSON object with the token's state (claims, scopes, expiry, fingerprint; never the token).
    #[arg(long)]
    pub json: bool,
}

/// One MCP server named on the command line instead of in a config file.
#[derive(Debug, Clone, Args, Default)]
pub struct AdHocArgs {
    /// A streamable-HTTP MCP server at URL (no config file needed).
    #[arg(long, value_name = "URL", conflicts_with = "stdio")]
    pub url: Option<String>,
    /// A stdio MCP server: the command line to start, split like a shell does
    /// ('node dist/index.js stdio'; quotes group words, no variables or globs).
    #[arg(long, value_name = "'COMMAND ARGS…'")]
    pub stdio: Option<String>,
    /// A static header for --url, 'Name: value' (repeatable); `${VAR}` in the value is read
    /// from the environment, so the key need not appear on the command line.
    #[arg(long = "header", value_name = "'NAME: VALUE'", requires = "url")]
    pub headers: Vec<String>,
    /// OAuth client for --url, without a config file: its client ID (client credentials).
    /// The authorization server is the one the server's metadata names; plain http is
    /// followed only when --url itself is a loopback http URL.
    #[arg(long, value_name = "ID", requires = "url")]
    pub client_id: Option<String>,
    /// The environment variable that holds --client-id's secret (never the secret itself:
    /// command lines are visible to other users).
    #[arg(long, value_name = "VAR", requires = "client_id")]
    pub client_secret_env: Option<String>,
    /// A PEM private key (EC or RSA) for --client-id: private_key_jwt (RFC 7523).
    #[arg(long, value_name = "PEM_FILE", requires = "client_id")]
    pub client_key: Option<PathBuf>,
    /// Enterprise-managed authorization for --client-id: the identity provider's token endpoint, where the user's ID token is exchanged for an identity assertion grant (then the JWT bearer grant at the authorization server)
    #[arg(long, value_name = "URL", requires_all = ["client_id", "idp_client_id", "id_token_env"])]
    pub idp_token_endpoint: Option<String>,
    /// This client's id at the identity provider (with --idp-token-endpoint)
    #[arg(long, value_name = "ID", requires = "idp_token_endpoint")]
    pub idp_client_id: Option<String>,
    /// The environment variable holding the user's ID token from the identity provider (with --idp-token-endpoint)
    #[arg(long, value_name = "VAR", requires = "idp_token_endpoint")]
    pub id_token_env: Option<String>,
}

/// How to log in to a server that needs OAuth when no client secret is configured.
#[derive(Debug, Clone, Args, Default)]
pub struct LoginArgs {
    /// Log in to a server that needs OAuth (authorization code + PKCE) when no client secret is configured: browser (the default on a terminal) opens the system browser or prints the URL; headless follows the authorization server's redirect without a user (CI)
    #[arg(long = "auth", value_name = "browser|headless")]
    pub auth: Option<crate::auth::authcode::LoginMode>,
    /// On 403 insufficient_scope from a server Warden logged in to: auto re-authorizes with the scopes it asks for added (at most twice per call); never (the default, headless) reports the denial; ask (the console's default) asks the operator in an overlay
    #[arg(long, value_name = "auto|never|ask")]
    pub step_up: Option<crate::auth::authcode::StepUp>,
    /// A client ID metadata document URL to log in with as the client_id, where the authorization server supports them (client_id_metadata_document_supported); else registration or [client] client_id is used
    #[arg(long, value_name = "URL")]
    pub client_id_metadata_url: Option<String>,
}

impl LoginArgs {
    /// Puts the login settings into `config`: `--auth`, else `[client] login`, else a
    /// browser login when a user is at the terminal (never in a pipeline, where waiting
    /// for a browser would hang).
    ///
    /// For a headless command: `--step-up` defaults to `never`, and `ask` is refused (a
    /// usage message: no one is there to answer).
    pub fn apply(&self, config: &mut crate::config::Config, state_dir: &std::path::Path) -> Result<(), String> {
        use crate::auth::authcode::StepUp;
        if self.step_up == Some(StepUp::Ask) {
            return Err("--step-up ask needs someone to answer: it works in the console (warden console); headless commands take --step-up auto or never".into());
        }
        self.apply_with(config, state_dir, self.step_up.unwrap_or(StepUp::Never));
        Ok(())
    }

    /// As [`Self::apply`], for the console: `--step-up` defaults to `ask` (the operator
    /// answers each step-up in an overlay).
    pub fn apply_console(&self, config: &mut crate::config::Config, state_dir: &std::path::Path) {
        self.apply_with(config, state_dir, self.step_up.unwrap_or(crate::auth::authcode::StepUp::Ask));
    }

    fn apply_with(
        &self,
        config: &mut crate::config::Config,
        state_dir: &std::path::Path,
        step_up: crate::auth::authcode::StepUp,
    ) {
        use std::io::IsTerminal;
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        config.login.mode = self
            .auth
            .or(config.client.as_ref().and_then(|c| c.login))
            .or(interactive.then_some(crate::auth::authcode::LoginMode::Browser));
        config.login.step_up = step_up;
        config.login.client_id_metadata_url = self.client_id_metadata_url.clone();
        config.login.state_dir = Some(state_dir.to_path_buf());
    }
}

#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// The server (its name, or its URL as given to --url); all servers when left out.
    pub server: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServersArgs {
    #[command(flatten)]
    pub adhoc: AdHocArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    /// A JSON array, one object per server: name, transport, endpoint, auth, headers
    /// (name and value fingerprint), status (reachable, needs credentials, error), reachable,
    /// tools, error, and for a server whose OAuth was discovered auth_discovered and
    /// discovered (authorization_server, token_endpoint, scopes, registration_endpoint).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ToolsArgs {
    #[command(flatten)]
    pub adhoc: AdHocArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Scopes to request, space-separated.
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Approve each server's current tool manifest (after reviewing a change).
    #[arg(long)]
    pub approve: bool,
    /// A JSON array, one object per tool: server, tool, description, required_scopes,
    /// scopes_source, allowed, missing_scopes.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub adhoc: AdHocArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Tool name, e.g. get_customer_info.
    pub tool: String,
    /// Arguments as a JSON object, e.g. '{"customer_id": "ABC123"}' (not JSON: exit 2).
    #[arg(default_value = "{}", value_name = "ARGS")]
    pub args: String,
    /// Scopes to request, space-separated.
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Skip the client-side scope pre-check and let the server decide (to see its 403).
    #[arg(long)]
    pub no_precheck: bool,
    /// Allow the call when it needs confirmation (a destructive or unannotated tool, or a
    /// server with confirm = "always"); without it such a call is refused, unsent (exit 1).
    #[arg(long)]
    pub yes: bool,
    /// A JSON object: the call's report (outcome, attempts, latency) and the events it raised.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Issuer listen address (default 127.0.0.1:8443; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub issuer_addr: Option<std::net::SocketAddr>,
    /// MCP service listen address (default 127.0.0.1:8001; port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub mcp_addr: Option<std::net::SocketAddr>,
    /// Run only one of the two servers.
    #[arg(long, value_enum)]
    pub only: Option<crate::serve::Only>,
    /// Generate a new signing key before starting; the previous key stays in the JWKS.
    #[arg(long)]
    pub rotate_keys: bool,
    /// Also log to stderr (logs always go to STATE/logs/warden.log).
    #[arg(long)]
    pub log_stderr: bool,
    /// Run N service instances, each its own process, on consecutive ports from the MCP address; the embedded issuer runs once, in this process. A child that dies is restarted; Ctrl-C or SIGTERM stops them all
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64), conflicts_with_all = ["only", "instance"])]
    pub instances: Option<u16>,
    /// Run as service instance N of `serve --instances` (set by it): own audit trail and log file, and exit when the parent is gone
    #[arg(long, value_name = "N", requires = "only")]
    pub instance: Option<u16>,
    /// Trust this authorization server when [service] issuer names none (`serve --instances` passes its embedded issuer to each instance)
    #[arg(long, value_name = "URL")]
    pub trust_issuer: Option<String>,
    /// Keep the service's customers, tickets and rate limit in this PostgreSQL database
    /// (postgres://user@host:port/db; overrides [service.store] url). Put the password in
    /// PGPASSWORD, not here: command lines are visible to other users.
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
    /// Export the MCP service's tool calls as OpenTelemetry spans (continuing the caller's
    /// trace from `_meta.traceparent`) to this OTLP/HTTP base URL (default:
    /// OTEL_EXPORTER_OTLP_ENDPOINT, then [telemetry]).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    pub fn options(&self) -> crate::serve::ServeOptions {
        crate::serve::ServeOptions {
            issuer_addr: self.issuer_addr,
            mcp_addr: self.mcp_addr,
            only: self.only,
            rotate_keys: self.rotate_keys,
            clock: None,
            otlp_endpoint: self.otlp_endpoint.clone(),
            telemetry: None,
            trust_issuer: self.trust_issuer.clone(),
            instance: self.instance,
            resources: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::CommandFactory;

    use super::Cli;

    /// Help texts deliberately shared by several subcommands: each was checked to be true
    /// for every subcommand that shows it. A new shared text must be added here, which
    /// makes someone read it against each of them.
    const SHARED: &[&str] = &[
        "Theme: dark, light, mono, or a path to a theme TOML (NO_COLOR forces mono)",
        "Scopes to request, space-separated",
        "Scopes to request, space-separated (default: the config's, else the client's defaults)",
        "Language model: offline (default), openai/MODEL, anthropic/MODEL, ollama/MODEL",
        "Base URL of an OpenAI-compatible server (default: OPENAI_BASE_URL, or the provider's)",
        "ReAct iterations per request (default 5)",
        // Export of the agent's runs: the same for every command that runs the agent.
        "Export runs as OpenTelemetry traces to this OTLP/HTTP base URL, e.g. http://127.0.0.1:6006 for Phoenix (default: OTEL_EXPORTER_OTLP_ENDPOINT, then [telemetry])",
        // --program means the same for run, demo and console (and replay --check).
        "A compiled program (sealed, or DSPy JSON from `warden optimize`) every run starts from: its demos and instructions. It is validated against the grant and the servers' tools first; one that does not validate is refused (exit 1)",
        "The key that opens a sealed --program (default: the environment's key)",
        "Run a --program that does not validate anyway (its findings are printed; the console's status bar shows ✗)",
        // The ad hoc server flags mean the same for tools, call and servers.
        "A streamable-HTTP MCP server at URL (no config file needed)",
        "A stdio MCP server: the command line to start, split like a shell does ('node dist/index.js stdio'; quotes group words, no variables or globs)",
        "A static header for --url, 'Name: value' (repeatable); `${VAR}` in the value is read from the environment, so the key need not appear on the command line",
        // The ad hoc OAuth client flags mean the same for token, tools, call, servers and console.
        "OAuth client for --url, without a config file: its client ID (client credentials). The authorization server is the one the server's metadata names; plain http is followed only when --url itself is a loopback http URL",
        "The environment variable that holds --client-id's secret (never the secret itself: command lines are visible to other users)",
        "A PEM private key (EC or RSA) for --client-id: private_key_jwt (RFC 7523)",
        "Enterprise-managed authorization for --client-id: the identity provider's token endpoint, where the user's ID token is exchanged for an identity assertion grant (then the JWT bearer grant at the authorization server)",
        "This client's id at the identity provider (with --idp-token-endpoint)",
        "The environment variable holding the user's ID token from the identity provider (with --idp-token-endpoint)",
        // The login flags mean the same wherever a server may need OAuth.
        "Log in to a server that needs OAuth (authorization code + PKCE) when no client secret is configured: browser (the default on a terminal) opens the system browser or prints the URL; headless follows the authorization server's redirect without a user (CI)",
        // Right for each: it says which default is whose, and that ask is the console's.
        "On 403 insufficient_scope from a server Warden logged in to: auto re-authorizes with the scopes it asks for added (at most twice per call); never (the default, headless) reports the denial; ask (the console's default) asks the operator in an overlay",
        "A client ID metadata document URL to log in with as the client_id, where the authorization server supports them (client_id_metadata_document_supported); else registration or [client] client_id is used",
    ];

    /// Every (subcommand path, argument id, help text), walking the whole tree.
    fn args(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, Option<String>)>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            // clap's own --help/--version, and the globals (checked once, at the top).
            if id == "help" || id == "version" || (arg.is_global_set() && !path.is_empty()) {
                continue;
            }
            out.push((path.to_string(), id.to_string(), arg.get_help().map(|h| h.to_string())));
        }
        for sub in cmd.get_subcommands() {
            args(sub, format!("{path} {}", sub.get_name()).trim(), out);
        }
    }

    #[test]
    fn every_argument_has_help() {
        let mut all = Vec::new();
        args(&Cli::command(), "", &mut all);
        assert!(all.len() > 40, "walked the tree: {}", all.len());
        let missing: Vec<String> =
            all.iter().filter(|(_, _, h)| h.is_none()).map(|(p, id, _)| format!("warden {p} {id}")).collect();
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn help_texts_shared_between_subcommands_are_meant_for_all_of_them() {
        let mut all = Vec::new();
        args(&Cli::command(), "", &mut all);
        let mut by_text: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (path, id, help) in all {
            by_text.entry(help.unwrap_or_default()).or_default().push(format!("{path} --{id}"));
        }
        for (text, users) in by_text {
            let commands: std::collections::BTreeSet<&str> =
                users.iter().map(|u| u.rsplit_once(" --").map_or("", |(p, _)| p)).collect();
            if commands.len() > 1 {
                assert!(
                    SHARED.contains(&text.as_str()),
                    "{users:?} share the help text {text:?}; is it right for each?"
                );
            }
        }
    }

    #[test]
    fn json_flags_say_what_they_print_for_their_command() {
        let mut all = Vec::new();
        args(&Cli::command(), "", &mut all);
        let json: BTreeMap<String, String> = all
            .into_iter()
            .filter(|(_, id, _)| id == "json")
            .map(|(path, _, help)| (path, help.unwrap_or_default()))
            .collect();
        assert!(!json.contains_key("console"), "the console is interactive: no --json");
        let expect = [
            ("token", "token's state"),
            ("tools", "one object per tool"),
            ("call", "the call's report"),
            ("run", "per scenario"),
            ("demo", "With --headless"),
            ("audit tail", "per record"),
            ("bench", "report"),
            ("inspect", "each predictor"),
        ];
        for (cmd, words) in expect {
            let help = json.get(cmd).unwrap_or_else(|| panic!("warden {cmd} --json exists"));
            assert!(help.contains(words), "warden {cmd} --json: {help:?}");
        }
    }

    /// Each cause once: anyhow's full-chain format prints every error's message followed
    /// by its source, so an error that quotes its cause and also reports it as its source
    /// shows the OS error twice ("No such file or directory (os error 2): No such file or
    /// directory (os error 2)"). Checked on the types, whatever `main` does when printing.
    fn assert_cause_once(e: impl Into<anyhow::Error>, expect: &str) {
        let full = format!("{:#}", e.into());
        assert!(full.contains(expect), "{full}");
        assert_eq!(full.matches("(os error").count(), 1, "{full}");
    }

    #[tokio::test]
    async fn error_types_quote_their_os_error_once() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = crate::config::Config::load(Some(&missing)).unwrap_err();
        assert_cause_once(e, "could not read config");

        let tls = crate::security::tls::ClientTls { ca_file: Some(missing.clone()), ca_only: false };
        let e = crate::security::tls::http_client(&tls, std::time::Duration::from_secs(1)).unwrap_err();
        assert_cause_once(crate::mcp::ClientError::from(e), "could not read");

        assert_cause_once(crate::observe::audit::read_all(&missing, "client").unwrap_err(), "audit log");

        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = crate::serve::start(&crate::config::Config::default(), &file.join("state"), &Default::default())
            .await
            .err()
            .unwrap();
        assert_cause_once(e, "cannot");
    }
}
