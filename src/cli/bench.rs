//! `warden bench`: load against the real service, measured from the outside.
//!
//! By default it starts `warden serve` as a child process (this same binary, on loopback
//! port 0, in a throwaway state dir, with the per-client rate limit lifted so the bench
//! measures the service and not the limiter), obtains a token the way `warden token` does,
//! and at each concurrency level runs two phases over the same HTTPS connections (HTTP/1.1
//! keep-alive, one connection per concurrent client, TLS 1.3):
//!
//! 1. **authenticated**: MCP `tools/call` of one tool with a bearer token (the full path:
//!    TLS, HTTP, the guard's token check, rate limiter, scope check and audit record, the
//!    tool itself and its database read);
//! 2. **ceiling**: the same server's unauthenticated `GET /.well-known/oauth-protected-resource`
//!    (TLS, HTTP and a small JSON body: what the server costs when it does no work).
//!
//! The ratio of the two says how much of the server's capacity the security and the tool
//! take. Server CPU and RSS come from `/proc/<pid>` (the server is a separate process, so
//! its figures are its own); client CPU from the process CPU clock. Budgets from issue 11
//! are checked and printed as PASS/FAIL; `--check` turns a failure into exit code 8.
//!
//! `--url` points the load at a running server instead (token from the config's `[client]`
//! or `--token-env`; `--server-pid` for its CPU and RSS). `--scenarios` runs the ReAct
//! scenario set through the session core with the offline LM and reports scenarios/s and
//! the agent's overhead per step.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::{HeaderMap, HeaderValue, header};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::auth::token::TokenManager;
use crate::config::{Config, RateLimitConfig, ServerEntry};
use crate::security::tls::{ClientTls, mcp_http_client};
use crate::types::event::{EventBus, EventKind};

/// Exit code of `--check` when a budget is not met (or could not be measured).
pub const EXIT_BUDGET: u8 = 8;

/// The protocol the bench speaks, as printed and reported.
const TRANSPORT: &str = "HTTPS (TLS 1.3), HTTP/1.1 keep-alive, one connection per concurrent client";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
/// Longest measured phase (`--duration`): latencies are kept per request, so memory grows
/// with the duration.
const MAX_DURATION_SECS: f64 = 600.0;
const MAX_CONCURRENCY: usize = 4096;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Concurrent clients (connections) per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64", value_name = "N,N,…")]
    pub concurrency: Vec<usize>,
    /// Seconds measured per phase (each level has an authenticated and a ceiling phase),
    /// after a warm-up of a tenth of that (at most 1 s).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub duration: f64,
    /// The tool to call.
    #[arg(long, default_value = "get_customer_info", value_name = "NAME")]
    pub tool: String,
    /// The tool's arguments (a JSON object). Default: {"customer_id": "ABC123"} for
    /// get_customer_info, {} for any other tool.
    #[arg(long, value_name = "JSON")]
    pub args: Option<String>,
    /// Machine-readable report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Exit with code 8 unless every budget passes.
    #[arg(long)]
    pub check: bool,
    /// Load an existing MCP endpoint instead of starting a server (token from the config's
    /// [client], as `warden token` gets it, or from --token-env).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: read the bearer token from this environment variable.
    #[arg(long, value_name = "VAR", requires = "url")]
    pub token_env: Option<String>,
    /// With --url: the server's process id on this machine, for its CPU time and RSS.
    #[arg(long, value_name = "PID", requires = "url")]
    pub server_pid: Option<u32>,
    /// Run the ReAct scenario set (built-in, or FILE) through the session core with the
    /// offline LM, for --duration seconds, instead of the HTTP load.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "", conflicts_with = "url")]
    pub scenarios: Option<String>,
}

/// `warden bench`.
pub async fn run(config_path: Option<&Path>, args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= MAX_DURATION_SECS,
        "--duration takes seconds between 0 and {MAX_DURATION_SECS}"
    );
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|&c| (1..=MAX_CONCURRENCY).contains(&c)),
        "--concurrency takes comma-separated levels between 1 and {MAX_CONCURRENCY}, e.g. 1,16,64"
    );
    if let Some(file) = &args.scenarios {
        return scenarios(Path::new(file), &args).await;
    }
    let target = Target::open(config_path, &args).await?;
    let call = CallSpec::new(&args)?;
    let progress = Progress::new();
    if !args.json {
        outln!("warden bench: tools/call {} vs GET {METADATA_PATH} (the ceiling)", call.tool);
        outln!("  server    {}", target.describe());
        outln!("  transport {TRANSPORT}");
        outln!("  {} s per phase after {:.1} s warm-up\n", args.duration, warm_up(args.duration).as_secs_f64());
        outln!("{}", table_header());
    }
    let rss_start = target.pid.and_then(rss_mb);
    let mut levels = Vec::new();
    for &concurrency in &args.concurrency {
        let clients = (0..concurrency)
            .map(|_| mcp_http_client(&target.tls, Duration::from_secs(10)))
            .collect::<Result<Vec<_>, _>>()
            .context("cannot build the HTTPS clients")?;
        let bearer = target.bearer().await?;
        let auth = Arc::new(call.request(&target.mcp, &target.protocol, &bearer)?);
        let authenticated = phase(&clients, auth, args.duration, target.pid, &progress, concurrency).await;
        let ceiling_req = Arc::new(Request::metadata(&target.metadata));
        let ceiling = phase(&clients, ceiling_req, args.duration, target.pid, &progress, concurrency).await;
        let level = Level::new(concurrency, authenticated, ceiling);
        if !args.json {
            outln!("{}", level.rows());
        }
        levels.push(level);
    }
    let rss_end = target.pid.and_then(rss_mb);
    let budgets = budgets(&levels, rss_end);
    let pass = budgets.iter().all(|b| b.status == Status::Pass);
    if args.json {
        let report = json!({
            "tool": call.tool,
            "transport": TRANSPORT,
            "duration_s": args.duration,
            "server": {
                "url": target.mcp,
                "started_by_bench": target.child.is_some(),
                "pid": target.pid,
                "rss_mb_start": rss_start,
                "rss_mb_end": rss_end,
            },
            "levels": levels,
            "budgets": budgets,
            "pass": pass,
        });
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let total: u64 = levels.iter().map(|l| l.authenticated.requests + l.ceiling.requests).sum();
        match (rss_start, rss_end) {
            (Some(a), Some(b)) => {
                outln!("\nserver RSS {a:.1} MB at start, {b:.1} MB after {} requests", group(total))
            }
            _ => outln!("\nserver RSS: unknown (pass --server-pid with --url)"),
        }
        outln!("budgets:");
        for b in &budgets {
            outln!("  {}", b.line());
        }
    }
    if let Some(child) = target.child {
        child.stop();
    }
    Ok(if args.check && !pass { ExitCode::from(EXIT_BUDGET) } else { ExitCode::SUCCESS })
}

fn warm_up(duration: f64) -> Duration {
    Duration::from_secs_f64((duration / 10.0).min(1.0))
}

// ---------------------------------------------------------------------------------------
// The server under load

/// Where the load goes and what it needs.
struct Target {
    mcp: String,
    metadata: String,
    tls: ClientTls,
    /// The negotiated MCP protocol version (sent on every request, as the spec asks).
    protocol: String,
    token: TokenSource,
    /// The server's process, for `/proc`.
    pid: Option<u32>,
    child: Option<ChildServer>,
}

enum TokenSource {
    Manager(Arc<TokenManager>),
    Fixed(crate::types::secret::Secret<String>),
}

impl Target {
    async fn open(config_path: Option<&Path>, args: &BenchArgs) -> anyhow::Result<Self> {
        let (config, child) = match &args.url {
            None => {
                let child = ChildServer::start().await?;
                (child.client_config()?, Some(child))
            }
            Some(url) => {
                let (mut config, _) = Config::load(config_path)?;
                let entry = config
                    .servers
                    .iter()
                    .find(|s| s.url == *url)
                    .cloned()
                    .unwrap_or_else(|| ServerEntry::http("bench", url.clone()));
                config.servers = vec![entry];
                (config, None)
            }
        };
        let mcp = config.servers.first().map(|s| s.url.clone()).context("no server to load")?;
        let parsed = url::Url::parse(&mcp).with_context(|| format!("{mcp} is not a URL"))?;
        let metadata = format!("{}{METADATA_PATH}", parsed.origin().ascii_serialization());
        let tls = config
            .client
            .as_ref()
            .map(|c| ClientTls { ca_file: c.ca_file.clone(), ca_only: c.ca_only })
            .unwrap_or_default();
        let token = match &args.token_env {
            Some(var) => TokenSource::Fixed(crate::types::secret::Secret::new(
                std::env::var(var).with_context(|| format!("--token-env {var}: the variable is not set"))?,
            )),
            None => {
                let (_, tokens) = crate::mcp::token_manager(&config, None, EventBus::new()).await.context(
                    "cannot obtain a token for the bench (check [client] in the config, or use --token-env)",
                )?;
                TokenSource::Manager(tokens)
            }
        };
        let pid = child.as_ref().map(|c| c.pid).or(args.server_pid);
        let mut target = Target { mcp, metadata, tls, protocol: String::new(), token, pid, child };
        target.protocol = target.initialize().await?;
        Ok(target)
    }

    fn describe(&self) -> String {
        match (&self.child, self.pid) {
            (Some(c), _) => format!(
                "{} (warden serve, pid {}, child process, state {}, rate limit lifted)",
                self.mcp,
                c.pid,
                c.dir.path().display()
            ),
            (None, Some(pid)) => format!("{} (pid {pid})", self.mcp),
            (None, None) => format!("{} (not on this machine or pid unknown: no server CPU/RSS)", self.mcp),
        }
    }

    /// A current token (refreshed if it is close to expiry).
    async fn bearer(&self) -> anyhow::Result<String> {
        match &self.token {
            TokenSource::Fixed(t) => Ok(t.expose().clone()),
            TokenSource::Manager(m) => {
                m.claims().await.context("cannot refresh the bench's token")?;
                m.bearer().context("the token manager holds no token")
            }
        }
    }

    /// MCP `initialize`, once: proves the URL is an MCP endpoint that takes our token and
    /// returns the protocol version to send on every request.
    async fn initialize(&self) -> anyhow::Result<String> {
        let http = mcp_http_client(&self.tls, Duration::from_secs(10))?;
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "warden-bench", "version": env!("CARGO_PKG_VERSION")}}});
        let resp = http
            .post(&self.mcp)
            .bearer_auth(self.bearer().await?)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.mcp))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "{} answered initialize with {status}; is it an MCP endpoint that accepts this token?",
            self.mcp
        );
        let reply: Value = serde_json::from_slice(json_payload(text.as_bytes()))
            .with_context(|| format!("{} answered initialize with something other than JSON-RPC", self.mcp))?;
        let version = reply["result"]["protocolVersion"].as_str().with_context(|| {
            format!(
                "{} answered initialize without a protocol version: {}",
                self.mcp,
                crate::security::untrusted::for_log(&text)
            )
        })?;
        // Stateless servers ignore it; stateful ones expect it before other requests.
        let _ = http
            .post(&self.mcp)
            .bearer_auth(self.bearer().await?)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await;
        Ok(version.to_string())
    }
}

/// `warden serve` in a child process on loopback, in a temporary state dir.
struct ChildServer {
    child: Child,
    pid: u32,
    dir: super::run::TempState,
    client_config: PathBuf,
}

impl ChildServer {
    async fn start() -> anyhow::Result<Self> {
        let dir = super::run::TempState::new("warden-bench")?;
        let mut config = Config::parse(crate::config::DEFAULT_CONFIG, Path::new("<built-in>"))?;
        config.issuer.addr = "127.0.0.1:0".parse()?;
        config.service.addr = "127.0.0.1:0".parse()?;
        // The bench measures the service, not the per-client limiter (which would answer
        // most calls with 429 at the default 50/s).
        config.service.rate_limit = RateLimitConfig { per_second: 1e9, burst: u32::MAX };
        let config_path = dir.path().join("bench-serve.toml");
        crate::paths::write_private(&config_path, toml::to_string(&config)?.as_bytes())
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let exe = std::env::current_exe().context("cannot find the warden binary to start the server")?;
        let mut child = Process::new(exe)
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(dir.path())
            .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `warden serve` for the bench")?;
        let pid = child.id();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // The banner line is printed once the servers listen (killing a server that hangs
        // closes its stdout, which ends the read).
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            line
        });
        let banner = match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(line) => line.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let Some(client_config) = banner.split("client config ").nth(1).and_then(|r| r.split_whitespace().next())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = stderr {
                let _ = e.read_to_string(&mut err);
            }
            anyhow::bail!("`warden serve` did not start: {}", err.trim());
        };
        let client_config = PathBuf::from(client_config);
        Ok(Self { child, pid, dir, client_config })
    }

    fn client_config(&self) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(&self.client_config)
            .with_context(|| format!("cannot read {}", self.client_config.display()))?;
        Ok(Config::parse(&text, &self.client_config)?)
    }

    /// SIGTERM (a graceful shutdown flushes the audit trail), then SIGKILL after 5 s.
    fn stop(mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // `stop` already reaped it; on an early return this kills it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident set size of a process, in MB (from `/proc/<pid>/status`).
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds (user + system) a process has used (from `/proc/<pid>/stat`).
fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may contain spaces; count fields after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / rustix::param::clock_ticks_per_second() as f64)
}

/// CPU seconds this process (the load generator) has used.
fn own_cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

// ---------------------------------------------------------------------------------------
// Requests and their outcomes

/// The tool call to make.
struct CallSpec {
    tool: String,
    body: bytes::Bytes,
}

impl CallSpec {
    fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let arguments: Value = match &args.args {
            Some(text) => serde_json::from_str(text).with_context(|| {
                format!("--args must be a JSON object, e.g. '{{\"customer_id\": \"ABC123\"}}'; got {text:?}")
            })?,
            None if args.tool == "get_customer_info" => json!({"customer_id": "ABC123"}),
            None => json!({}),
        };
        anyhow::ensure!(arguments.is_object(), "--args must be a JSON object");
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": args.tool, "arguments": arguments}});
        Ok(Self { tool: args.tool.clone(), body: serde_json::to_vec(&body)?.into() })
    }

    fn request(&self, url: &str, protocol: &str, bearer: &str) -> anyhow::Result<Request> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {bearer}")).context("the token is not a header value")?;
        auth.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, auth);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("mcp-protocol-version", HeaderValue::from_str(protocol).context("bad protocol version")?);
        Ok(Request { kind: Kind::ToolCall, url: url.to_string(), headers, body: Some(self.body.clone()) })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ToolCall,
    Metadata,
}

/// One prepared request, sent over and over.
struct Request {
    kind: Kind,
    url: String,
    headers: HeaderMap,
    body: Option<bytes::Bytes>,
}

impl Request {
    fn metadata(url: &str) -> Self {
        Self { kind: Kind::Metadata, url: url.to_string(), headers: HeaderMap::new(), body: None }
    }

    /// Sends once; `Ok` or the class of failure (`http_401`, `jsonrpc_-32602`,
    /// `tool_error`, `bad_response`, `transport`).
    async fn send(&self, http: &reqwest::Client) -> Result<(), String> {
        let builder = match &self.body {
            Some(body) => http.post(&self.url).body(body.clone()),
            None => http.get(&self.url),
        };
        let resp = builder.headers(self.headers.clone()).send().await.map_err(|_| "transport".to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|_| "transport".to_string())?;
        if status != http::StatusCode::OK {
            return Err(format!("http_{}", status.as_u16()));
        }
        match self.kind {
            Kind::ToolCall => classify_call(&body),
            Kind::Metadata => match serde_json::from_slice::<Metadata>(&body) {
                Ok(m) if !m.resource.is_empty() => Ok(()),
                _ => Err("bad_response".into()),
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct Metadata {
    resource: String,
}

/// A JSON-RPC reply to `tools/call`: an error, a tool error, or a result.
fn classify_call(body: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Reply {
        error: Option<RpcError>,
        result: Option<CallResult>,
    }
    #[derive(serde::Deserialize)]
    struct RpcError {
        code: i64,
    }
    #[derive(serde::Deserialize)]
    struct CallResult {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    match serde_json::from_slice::<Reply>(json_payload(body)) {
        Ok(Reply { error: Some(e), .. }) => Err(format!("jsonrpc_{}", e.code)),
        Ok(Reply { result: Some(CallResult { is_error: Some(true) }), .. }) => Err("tool_error".into()),
        Ok(Reply { result: Some(_), .. }) => Ok(()),
        _ => Err("bad_response".into()),
    }
}

/// The JSON in a reply: the body itself, or the first `data:` line of an SSE stream.
fn json_payload(body: &[u8]) -> &[u8] {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return trimmed;
    }
    body.split(|&b| b == b'\n').find_map(|line| line.strip_prefix(b"data:")).map(<[u8]>::trim_ascii).unwrap_or(body)
}

// ---------------------------------------------------------------------------------------
// Phases

/// What one worker saw during the measured window.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
}

/// Runs `concurrency` workers (one per client/connection) for warm-up + `duration`.
async fn phase(
    clients: &[reqwest::Client],
    request: Arc<Request>,
    duration: f64,
    server: Option<u32>,
    progress: &Progress,
    concurrency: usize,
) -> Phase {
    let start = Instant::now();
    let measure_from = start + warm_up(duration);
    let end = measure_from + Duration::from_secs_f64(duration);
    let label = match request.kind {
        Kind::ToolCall => "authenticated",
        Kind::Metadata => "ceiling",
    };
    let ticker = progress.show(format!("concurrency {concurrency}, {label}"), start, end);
    // CPU is read at the edges of the measured window, by a task of its own.
    let meter = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = (own_cpu_secs(), server.and_then(process_cpu_secs));
        tokio::time::sleep_until(end.into()).await;
        let after = (own_cpu_secs(), server.and_then(process_cpu_secs));
        (after.0 - before.0, after.1.zip(before.1).map(|(a, b)| a - b))
    });
    let workers: Vec<_> = clients
        .iter()
        .map(|http| {
            let (http, request) = (http.clone(), request.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let outcome = request.send(&http).await;
                    let done = Instant::now();
                    // Only requests wholly inside the window count.
                    if sent >= measure_from && done <= end {
                        match &outcome {
                            Ok(()) => tally.latencies_us.push((done - sent).as_micros().min(u32::MAX as u128) as u32),
                            Err(class) => *tally.errors.entry(class.clone()).or_default() += 1,
                        }
                    }
                    if outcome.is_err_and(|c| c == "transport") {
                        // A refused connection fails at once; do not spin on it.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            all.latencies_us.extend(t.latencies_us);
            for (k, v) in t.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }
    }
    let (client_cpu, server_cpu) = meter.await.unwrap_or((0.0, None));
    ticker.cancel();
    Phase::new(all, duration, client_cpu, server_cpu)
}

#[derive(Debug, Serialize)]
struct Phase {
    /// Requests completed in the measured window (successes + errors).
    requests: u64,
    ok: u64,
    /// Successful requests per second.
    per_second: f64,
    latency_ms: Latency,
    errors: Errors,
    /// CPU time per request in the window, µs (server: null when its pid is unknown).
    cpu_us_per_request: Cpu,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct Errors {
    total: u64,
    by_class: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct Cpu {
    client: f64,
    server: Option<f64>,
}

impl Phase {
    fn new(mut t: Tally, secs: f64, client_cpu: f64, server_cpu: Option<f64>) -> Self {
        t.latencies_us.sort_unstable();
        let ok = t.latencies_us.len() as u64;
        let errors: u64 = t.errors.values().sum();
        let requests = ok + errors;
        let per = |cpu: f64| if requests == 0 { 0.0 } else { cpu / requests as f64 * 1e6 };
        Phase {
            requests,
            ok,
            per_second: ok as f64 / secs,
            latency_ms: Latency {
                p50: percentile(&t.latencies_us, 0.50),
                p95: percentile(&t.latencies_us, 0.95),
                p99: percentile(&t.latencies_us, 0.99),
                max: t.latencies_us.last().map_or(0.0, |&us| us as f64 / 1e3),
            },
            errors: Errors { total: errors, by_class: t.errors },
            cpu_us_per_request: Cpu { client: per(client_cpu), server: server_cpu.map(per) },
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1e3
}

#[derive(Debug, Serialize)]
struct Level {
    concurrency: usize,
    authenticated: Phase,
    ceiling: Phase,
    /// Authenticated calls/s over ceiling requests/s.
    ratio: f64,
    /// Ceiling server CPU per request over authenticated server CPU per call: the ratio the
    /// server alone would reach if the load generator cost nothing (null without its pid).
    /// On a shared machine the throughput ratio also depends on the client's own CPU, which
    /// is spent equally on both phases and so pulls that ratio toward 1.
    server_cpu_ratio: Option<f64>,
}

impl Level {
    fn new(concurrency: usize, authenticated: Phase, ceiling: Phase) -> Self {
        let ratio = if ceiling.per_second > 0.0 { authenticated.per_second / ceiling.per_second } else { 0.0 };
        let server_cpu_ratio = match (ceiling.cpu_us_per_request.server, authenticated.cpu_us_per_request.server) {
            (Some(c), Some(a)) if a > 0.0 && authenticated.ok > 0 => Some(c / a),
            _ => None,
        };
        Self { concurrency, authenticated, ceiling, ratio, server_cpu_ratio }
    }

    fn rows(&self) -> String {
        let row = |name: &str, p: &Phase, conc: &str| {
            let server = p.cpu_us_per_request.server.map_or("-".to_string(), |s| format!("{s:.0}"));
            format!(
                "{conc:>5}  {name:<13} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {:>7} {:>7.0} {:>7}",
                group(p.per_second.round() as u64),
                p.latency_ms.p50,
                p.latency_ms.p95,
                p.latency_ms.p99,
                p.latency_ms.max,
                p.errors.total,
                p.cpu_us_per_request.client,
                server,
            )
        };
        let mut out = row("tools/call", &self.authenticated, &self.concurrency.to_string());
        out.push('\n');
        out.push_str(&row("ceiling GET", &self.ceiling, ""));
        out.push_str(&format!("\n{:>5}  {:<13} {:>8.1}%", "", "ratio", self.ratio * 100.0));
        if let Some(r) = self.server_cpu_ratio {
            out.push_str(&format!("   (server CPU: ceiling/call {:.1}%)", r * 100.0));
        }
        for (phase, p) in [("tools/call", &self.authenticated), ("ceiling", &self.ceiling)] {
            if !p.errors.by_class.is_empty() {
                let list: Vec<String> = p.errors.by_class.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
                out.push_str(&format!("\n{:>5}  {phase} errors: {}", "", list.join(", ")));
            }
        }
        out
    }
}

fn table_header() -> String {
    format!(
        "{:>5}  {:<13} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7}\n{:>5}  {:<13} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7}",
        "conc",
        "request",
        "req/s",
        "p50",
        "p95",
        "p99",
        "max",
        "errors",
        "CPU µs",
        "CPU µs",
        "",
        "",
        "",
        "ms",
        "ms",
        "ms",
        "ms",
        "",
        "client",
        "server",
    )
}

/// 12345 → "12,345".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Budgets (issue 11)

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Pass,
    Fail,
    /// Not measured in this run (a level or the server's pid missing): not a pass.
    NotMeasured,
}

#[derive(Debug, Serialize)]
struct Budget {
    name: &'static str,
    description: &'static str,
    limit: f64,
    measured: Option<f64>,
    status: Status,
}

impl Budget {
    fn check(name: &'static str, description: &'static str, limit: f64, measured: Option<f64>, ok: bool) -> Self {
        let status = match measured {
            None => Status::NotMeasured,
            Some(_) if ok => Status::Pass,
            Some(_) => Status::Fail,
        };
        Self { name, description, limit, measured, status }
    }

    fn line(&self) -> String {
        let mark = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotMeasured => "SKIP",
        };
        let measured = match (self.measured, self.name) {
            (None, _) => "not measured".to_string(),
            (Some(m), "ratio_c16" | "server_cpu_ratio_c16") => format!("{:.1}%", m * 100.0),
            (Some(m), "p99_c16_ms") => format!("{m:.3} ms"),
            (Some(m), "server_rss_mb") => format!("{m:.1} MB"),
            (Some(m), _) => format!("{m}"),
        };
        format!("{mark}  {:<52} measured {measured}", self.description)
    }
}

fn budgets(levels: &[Level], rss_end: Option<f64>) -> Vec<Budget> {
    let c16 = levels.iter().find(|l| l.concurrency == 16);
    let ratio = c16.map(|l| l.ratio);
    let cpu_ratio = c16.and_then(|l| l.server_cpu_ratio);
    let p99 = c16.filter(|l| l.authenticated.ok > 0).map(|l| l.authenticated.latency_ms.p99);
    let errors: u64 = levels.iter().map(|l| l.authenticated.errors.total + l.ceiling.errors.total).sum();
    vec![
        Budget::check(
            "ratio_c16",
            "authenticated ≥ 50% of the ceiling at concurrency 16",
            0.5,
            ratio,
            ratio.is_some_and(|r| r >= 0.5),
        ),
        Budget::check(
            "server_cpu_ratio_c16",
            "server CPU per call ≤ 2× the ceiling's at concurrency 16",
            0.5,
            cpu_ratio,
            cpu_ratio.is_some_and(|r| r >= 0.5),
        ),
        Budget::check(
            "p99_c16_ms",
            "authenticated p99 < 2 ms at concurrency 16",
            2.0,
            p99,
            p99.is_some_and(|p| p < 2.0),
        ),
        Budget::check(
            "server_rss_mb",
            "server RSS < 100 MB after the run",
            100.0,
            rss_end,
            rss_end.is_some_and(|r| r < 100.0),
        ),
        Budget::check("errors", "no errors", 0.0, Some(errors as f64), errors == 0),
    ]
}

// ---------------------------------------------------------------------------------------
// Progress on a terminal

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress {
    enabled: bool,
}

impl Progress {
    fn new() -> Self {
        Self { enabled: std::io::stderr().is_terminal() }
    }

    /// Shows `label` with elapsed/total until the returned token is cancelled.
    fn show(&self, label: String, start: Instant, end: Instant) -> CancellationToken {
        let stop = CancellationToken::new();
        if !self.enabled {
            return stop;
        }
        let total = (end - start).as_secs_f64();
        let token = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {
                        let done = start.elapsed().as_secs_f64().min(total);
                        eprint!("\r\x1b[2K  bench: {label}  {done:.1}/{total:.1} s");
                        let _ = std::io::stderr().flush();
                    }
                }
            }
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        stop
    }
}

// ---------------------------------------------------------------------------------------
// --scenarios

/// Runs the scenario set through the session core (offline LM) against a child server
/// for `--duration` seconds (at least one full pass) and reports scenarios/s and the
/// agent's overhead per step: run time minus time spent waiting on tool calls, per step.
async fn scenarios(file: &Path, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    use crate::session::scenario::{self, ScenarioResult};
    let set = if file.as_os_str().is_empty() {
        scenario::parse(scenario::DEFAULT_SCENARIOS, "built-in config/scenarios.toml")?
    } else {
        scenario::load(file)?
    };
    anyhow::ensure!(!set.is_empty(), "{} has no [[scenario]] entries", file.display());
    let child = ChildServer::start().await?;
    let config = child.client_config()?;
    let opts =
        crate::session::SessionOptions { model: Some("offline".into()), scenarios: set.clone(), ..Default::default() };
    let session_dir = child.dir.path().join("client");
    let session = crate::session::Session::open(&config, &session_dir, opts).await?;
    let mut runs_rx = session.events().subscribe(1 << 16);
    let mut tools_rx = session.events().subscribe(1 << 16);
    let core = session.start(CancellationToken::new());
    let progress = Progress::new();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let ticker = progress.show("scenarios".into(), start, end);
    let cpu_before = (own_cpu_secs(), process_cpu_secs(child.pid));
    let (mut runs, mut steps, mut unexpected, mut run_ms, mut tool_ms, mut tool_calls) =
        (0u64, 0u64, 0u64, 0.0, 0.0, 0u64);
    let mut mismatches: BTreeMap<String, u64> = BTreeMap::new();
    'rounds: loop {
        for (i, s) in set.iter().enumerate() {
            anyhow::ensure!(
                core.send(crate::session::command::Command::RunScenario(i)).await,
                "the session core stopped unexpectedly"
            );
            let report = crate::session::report::next_run(&mut runs_rx)
                .await
                .context("the session core stopped before the run finished")?;
            let result = ScenarioResult::judge(s, report);
            runs += 1;
            steps += result.steps.len() as u64;
            run_ms += result.elapsed_ms;
            if !result.expected {
                unexpected += 1;
                *mismatches.entry(result.name.clone()).or_default() += 1;
            }
            while let Ok(e) = tools_rx.try_recv() {
                if let EventKind::ToolResult { latency_ms, .. } = e.kind {
                    tool_ms += latency_ms;
                    tool_calls += 1;
                }
            }
        }
        if Instant::now() >= end {
            break 'rounds;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = (own_cpu_secs(), process_cpu_secs(child.pid));
    ticker.cancel();
    core.shutdown().await;
    let overhead_us = if steps == 0 { 0.0 } else { (run_ms - tool_ms) / steps as f64 * 1e3 };
    let per_run = |cpu: f64| cpu / runs.max(1) as f64 * 1e6;
    let report = json!({
        "mode": "scenarios",
        "model": "offline",
        "scenarios": set.len(),
        "runs": runs,
        "elapsed_s": elapsed,
        "scenarios_per_second": runs as f64 / elapsed,
        "steps": steps,
        "tool_calls": tool_calls,
        "per_step_overhead_us": overhead_us,
        "tool_call_mean_ms": if tool_calls == 0 { 0.0 } else { tool_ms / tool_calls as f64 },
        "unexpected": unexpected,
        "unexpected_by_scenario": mismatches,
        "cpu_us_per_run": {
            "client": per_run(cpu_after.0 - cpu_before.0),
            "server": cpu_after.1.zip(cpu_before.1).map(|(a, b)| per_run(a - b)),
        },
        "server_rss_mb": rss_mb(child.pid),
    });
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "warden bench --scenarios: {} scenarios through the session core (offline LM), server pid {}\n",
            set.len(),
            child.pid
        );
        outln!("  runs                {} in {elapsed:.1} s: {:.1} scenarios/s", group(runs), runs as f64 / elapsed);
        outln!(
            "  steps               {} ({} tool calls, mean {:.3} ms each)",
            group(steps),
            group(tool_calls),
            report["tool_call_mean_ms"].as_f64().unwrap_or(0.0)
        );
        outln!("  per-step overhead   {overhead_us:.1} µs (run time outside tool calls, per step)");
        outln!("  unexpected outcomes {unexpected}");
        if let Some(rss) = rss_mb(child.pid) {
            outln!("  server RSS          {rss:.1} MB");
        }
    }
    child.stop();
    Ok(if args.check && unexpected > 0 { ExitCode::from(EXIT_BUDGET) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_what_went_wrong() {
        assert_eq!(classify_call(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#), Ok(()));
        assert_eq!(classify_call(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#), Ok(()));
        assert_eq!(
            classify_call(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#),
            Err("tool_error".into())
        );
        assert_eq!(
            classify_call(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}"#),
            Err("jsonrpc_-32602".into())
        );
        assert_eq!(classify_call(b"<html>"), Err("bad_response".into()));
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n";
        assert_eq!(classify_call(sse), Ok(()));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let us: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&us, 0.50), 50.0);
        assert_eq!(percentile(&us, 0.99), 99.0);
        assert_eq!(percentile(&us, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(percentile(&[7], 0.99), 0.007);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
