//! The command-line edge: clap definitions and dispatch. Errors become `anyhow` here, with
//! context that tells the user what to do next; everything below uses typed errors.
//!
//! May import: every layer (it is the composition edge). Enforced by `tests/layering.rs`.

pub mod audit;
pub mod bench;
pub mod client;
pub mod logging;
pub mod run;
pub mod serve;

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
    /// Run agent scenarios through the real stack (token manager, secure tools, ReAct).
    ///
    /// Exit 0: every scenario as expected; 7: one was not; 9: the model failed in one
    /// (status `error`: no key, key rejected, unreachable, timed out).
    Run(RunArgs),
    /// One command, no keys, no network: start issuer + service on loopback and run the demo.
    Demo(DemoArgs),
    /// The operator console against the configured servers and model.
    Console(ConsoleArgs),
    /// Play a recorded session (STATE/sessions/*.jsonl) back in the console.
    Replay(ReplayArgs),
    /// The audit trail: verify the hash chain, or show records.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Hash a client secret (read from stdin) for `[[issuer.clients]] secret_hash`.
    HashSecret,
    /// Load the service: authenticated tool calls vs. its metadata GET (the ceiling), budgets checked.
    Bench(bench::BenchArgs),
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
        /// Keep printing new records.
        #[arg(long, short)]
        follow: bool,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        /// allowed, denied, denied_client, denied_server, rate_limited, error, token, anomaly, …
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
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A session file (JSONL), e.g. from STATE/sessions/ or exported with `e`.
    pub file: PathBuf,
    /// Playback speed multiplier.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    #[arg(long)]
    pub theme: Option<String>,
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
    /// One JSON object per scenario and a final summary object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Scenarios file (TOML with [[scenario]] tables), e.g. config/scenarios.toml.
    pub scenarios: PathBuf,
    /// Scopes to request, space-separated (default: the config's or the client's defaults).
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Run the scenarios and print the trace instead of opening the console.
    #[arg(long)]
    pub headless: bool,
    /// Theme: dark, light, mono, or a path to a theme TOML (NO_COLOR forces mono).
    #[arg(long)]
    pub theme: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Scopes to request, space-separated (default: the config's, else the client's defaults).
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ToolsArgs {
    /// Scopes to request, space-separated.
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Approve each server's current tool manifest (after reviewing a change).
    #[arg(long)]
    pub approve: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// Tool name, e.g. get_customer_info.
    pub tool: String,
    /// Arguments as a JSON object, e.g. '{"customer_id": "ABC123"}'.
    #[arg(default_value = "{}")]
    pub args: String,
    /// Scopes to request, space-separated.
    #[arg(long, value_name = "\"A B\"")]
    pub scopes: Option<String>,
    /// Skip the client-side scope pre-check and let the server decide (to see its 403).
    #[arg(long)]
    pub no_precheck: bool,
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
}

impl ServeArgs {
    pub fn options(&self) -> crate::serve::ServeOptions {
        crate::serve::ServeOptions {
            issuer_addr: self.issuer_addr,
            mcp_addr: self.mcp_addr,
            only: self.only,
            rotate_keys: self.rotate_keys,
            clock: None,
        }
    }
}
