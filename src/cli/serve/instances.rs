//! `warden serve --instances N`: N service instances on one machine, each its own process,
//! and one embedded issuer in this (the parent) process.
//!
//! Instance `i` (1-based) is `warden serve --only service --instance i` on port
//! `PORT + i - 1` of the MCP address, with the same config and state directory: one
//! store (`[service.store]`, or the shared SQLite file), one dev CA, one key directory.
//! Each has its own decision trail (`STATE/audit/service-i-*.jsonl`) and log file
//! (`STATE/logs/warden-i.log`). Separate processes, so one can crash (or be killed) alone.
//!
//! Supervision: the parent prints one line per instance when it is ready (its URL and pid)
//! and restarts an instance that exits on its own, at most once a second per instance.
//! An instance that fails its first start stops everything, with its error on stderr.
//! Ctrl-C or SIGTERM to the parent sends SIGTERM to every instance (they drain their
//! requests), waits, then stops the issuer. The instances run in their own process group
//! (a terminal's Ctrl-C reaches only the parent, which must not mistake them for crashed),
//! and each checks once a second that its parent is still its parent: if the parent dies
//! without stopping them (SIGKILL), they are reparented, notice, and shut down, so none is
//! left orphaned.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::serve::{Only, ServeOptions, start, url_host};

/// Shortest time between two starts of one instance (a crash loop does not spin).
const RESTART_GAP: Duration = Duration::from_secs(1);
/// How long an instance may take to start (TLS setup, store migration, JWKS fetch).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping instance may drain its requests before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a supervisor reports to the parent.
enum Event {
    Up {
        instance: u16,
        pid: u32,
    },
    /// The first start failed: the parent stops everything.
    FailedToStart {
        instance: u16,
        why: String,
    },
    Exited {
        instance: u16,
        pid: u32,
        status: String,
    },
}

/// How to start instance `i`: everything but the instance's address is the same.
#[derive(Clone)]
struct Launch {
    exe: PathBuf,
    config: Option<PathBuf>,
    state_dir: PathBuf,
    issuer: String,
    log_stderr: bool,
    /// `--store-url`, passed on (the password stays in the environment, inherited).
    store_url: Option<String>,
    /// `--otlp-endpoint`, passed on: every instance exports its own spans.
    otlp_endpoint: Option<String>,
}

impl Launch {
    fn command(&self, instance: u16, addr: SocketAddr) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.exe);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--state-dir").arg(&self.state_dir);
        cmd.args(["serve", "--only", "service", "--instance", &instance.to_string()]);
        cmd.args(["--mcp-addr", &addr.to_string(), "--trust-issuer", &self.issuer]);
        if self.log_stderr {
            cmd.arg("--log-stderr");
        }
        if let Some(url) = &self.store_url {
            cmd.args(["--store-url", url]);
        }
        if let Some(url) = &self.otlp_endpoint {
            cmd.args(["--otlp-endpoint", url]);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        cmd
    }
}

/// `config` as loaded, with the command line's overrides applied (each instance applies
/// them again: it is given the same flags).
pub async fn run(
    config: crate::config::Config,
    config_path: Option<&Path>,
    state_dir: &Path,
    args: &ServeArgs,
    n: u16,
) -> anyhow::Result<()> {
    tracing::info!(state_dir = %state_dir.display(), instances = n, "starting");
    let base = args.mcp_addr.unwrap_or(config.service.addr);
    if base.port() == 0 {
        anyhow::bail!(
            "--instances needs a fixed MCP port to put the instances on (PORT to PORT+{}); pass --mcp-addr 127.0.0.1:8001 or set [service] addr",
            n - 1
        );
    }
    let addrs = (0..n)
        .map(|i| base.port().checked_add(i).map(|p| SocketAddr::new(base.ip(), p)))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{n} instances from port {} run past port 65535; pick a lower port", base.port()))?;
    // Behind a proxy every instance is the proxy's resource; else each is its own.
    let resources: Vec<String> = match &config.service.resource {
        Some(r) => vec![r.clone()],
        None => addrs.iter().map(|a| format!("https://{}/mcp", url_host(*a))).collect(),
    };
    let issuer = start(
        &config,
        state_dir,
        &ServeOptions {
            issuer_addr: args.issuer_addr,
            only: Some(Only::Issuer),
            rotate_keys: args.rotate_keys,
            resources: resources.clone(),
            ..ServeOptions::default()
        },
    )
    .await?;
    let issuer_url = issuer.issuer_url.clone().unwrap_or_default();
    let launch = Launch {
        exe: std::env::current_exe().context("cannot find the warden executable to start the instances")?,
        config: config_path.map(Path::to_path_buf),
        state_dir: state_dir.to_path_buf(),
        issuer: issuer_url.clone(),
        log_stderr: args.log_stderr,
        store_url: args.store_url.clone(),
        otlp_endpoint: args.otlp_endpoint.clone(),
    };

    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(64);
    let supervisors: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let (launch, stop, tx, addr) = (launch.clone(), stop.clone(), tx.clone(), *addr);
            tokio::spawn(supervise(i as u16 + 1, addr, launch, stop, tx))
        })
        .collect();
    drop(tx);
    let url = |i: u16| format!("https://{}/mcp", url_host(addrs[usize::from(i) - 1]));

    let mut ready = 0;
    let mut failure = None;
    let mut signal = std::pin::pin!(super::shutdown_signal());
    while ready < n && failure.is_none() {
        tokio::select! {
            _ = &mut signal => { failure = Some(None); }
            ev = rx.recv() => match ev {
                Some(Event::Up { instance, pid }) => {
                    outln!("instance {instance}: {} (pid {pid})", url(instance));
                    ready += 1;
                }
                Some(Event::FailedToStart { instance, why }) => {
                    failure = Some(Some(format!("service instance {instance} did not start: {why}")));
                }
                Some(Event::Exited { instance, pid, status }) => {
                    outln!("instance {instance} (pid {pid}) exited ({status}); restarting");
                }
                None => failure = Some(Some("the instance supervisors stopped".into())),
            }
        }
    }
    if failure.is_none() {
        let mut line = format!("warden serve: issuer {issuer_url}  {n} service instances");
        if let Some(r) = &config.service.resource {
            line.push_str(&format!(" (resource {r})"));
        }
        if let Some(p) = &issuer.client_config {
            line.push_str(&format!("  client config {}", p.display()));
        }
        outln!("{line}  (Ctrl-C to stop)");
        loop {
            tokio::select! {
                _ = &mut signal => break,
                ev = rx.recv() => match ev {
                    Some(Event::Up { instance, pid }) => outln!("instance {instance}: {} (pid {pid})", url(instance)),
                    Some(Event::Exited { instance, pid, status }) => {
                        outln!("instance {instance} (pid {pid}) exited ({status}); restarting");
                    }
                    Some(Event::FailedToStart { .. }) | None => break,
                }
            }
        }
    }
    tracing::info!("stopping the service instances");
    stop.cancel();
    for s in supervisors {
        let _ = s.await;
    }
    issuer.shutdown().await;
    match failure {
        Some(Some(why)) => Err(anyhow::anyhow!(why)),
        _ => Ok(()),
    }
}

/// Starts instance `instance` and keeps it running until `stop`.
async fn supervise(
    instance: u16,
    addr: SocketAddr,
    launch: Launch,
    stop: CancellationToken,
    events: mpsc::Sender<Event>,
) {
    let mut first = true;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = run_once(instance, addr, &launch, &stop, &events).await;
        match outcome {
            Once::Stopped => return,
            Once::NeverReady(why) if first => {
                let _ = events.send(Event::FailedToStart { instance, why }).await;
                return;
            }
            Once::NeverReady(why) => {
                tracing::warn!(instance, why = %why, "service instance failed to restart");
            }
            Once::Exited { pid, status } => {
                let _ = events.send(Event::Exited { instance, pid, status: describe(status) }).await;
            }
        }
        first = false;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(started + RESTART_GAP) => {}
        }
    }
}

enum Once {
    Stopped,
    NeverReady(String),
    Exited { pid: u32, status: ExitStatus },
}

/// One life of an instance: start it, report it ready, wait for it to exit or for `stop`.
async fn run_once(
    instance: u16,
    addr: SocketAddr,
    launch: &Launch,
    stop: &CancellationToken,
    events: &mpsc::Sender<Event>,
) -> Once {
    let mut child = match launch.command(instance, addr).spawn() {
        Ok(c) => c,
        Err(e) => return Once::NeverReady(format!("cannot run {}: {e}", launch.exe.display())),
    };
    let pid = child.id().unwrap_or_default();
    let Some(stdout) = child.stdout.take() else {
        terminate(&mut child).await;
        return Once::NeverReady("its output could not be read".into());
    };
    let mut lines = BufReader::new(stdout).lines();
    // Ready when it prints its banner (after its listener is bound).
    let banner = tokio::select! {
        _ = stop.cancelled() => {
            terminate(&mut child).await;
            return Once::Stopped;
        }
        line = tokio::time::timeout(START_TIMEOUT, lines.next_line()) => line,
    };
    match banner {
        Ok(Ok(Some(line))) if line.starts_with("warden serve:") => {}
        Ok(Ok(Some(line))) => {
            terminate(&mut child).await;
            return Once::NeverReady(format!("unexpected output: {line}"));
        }
        Ok(_) => {
            let status = child.wait().await.map(describe).unwrap_or_else(|e| e.to_string());
            return Once::NeverReady(format!("it exited ({status})"));
        }
        Err(_) => {
            terminate(&mut child).await;
            return Once::NeverReady(format!("not ready after {} s", START_TIMEOUT.as_secs()));
        }
    }
    let _ = events.send(Event::Up { instance, pid }).await;
    // Anything else it prints goes to ours, marked; the pipe must be drained either way.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            outln!("instance {instance}: {line}");
        }
    });
    tokio::select! {
        status = child.wait() => match status {
            Ok(status) => Once::Exited { pid, status },
            Err(e) => {
                tracing::warn!(instance, error = %e, "cannot wait for a service instance");
                Once::Stopped
            }
        },
        _ = stop.cancelled() => {
            terminate(&mut child).await;
            Once::Stopped
        }
    }
}

/// SIGTERM (a graceful drain), then SIGKILL if it is still there after `STOP_TIMEOUT`.
async fn terminate(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}
