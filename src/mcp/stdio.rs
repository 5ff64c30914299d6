//! The stdio transport: an MCP server started as a child process, speaking JSON-RPC on its
//! stdin/stdout (rmcp's `TokioChildProcess`).
//!
//! - **Environment.** The child gets only `PATH` and `HOME` from Warden's environment, plus
//!   the entry's own `env`. Desktop clients pass their whole environment; Warden's may hold
//!   its client secret (`client_secret_env`), LM API keys and whatever the operator's shell
//!   exports, and a third-party server has no business reading those (the `get-env` tool of
//!   the reference server prints its whole environment to the model). `PATH` is kept so
//!   `npx`, `uvx`, `node` and the interpreters scripts name resolve; `HOME` so package
//!   managers find their caches and config. Anything else a server needs goes in `env`.
//! - **stderr** never reaches the terminal (it would tear the console's screen): each line
//!   goes to Warden's log, prefixed with the server's name, control characters escaped,
//!   cut at `MAX_LINE` bytes, and at most `MAX_LINES` lines per child (a chatty or hostile
//!   server cannot fill the disk); the same lines go out as `ServerStderr` events, which
//!   the console keeps (its last lines) for the server-log view and the audit trail does
//!   not record. Lines written before a frontend listens (a server's startup banner and
//!   errors come first) wait in a bounded buffer until [`StderrSink::attach`].
//! - **Lifetime.** The child is killed when the session is dropped (rmcp's cleanup guard,
//!   process-wrap's `KillOnDrop`, and [`GroupGuard`] for the whole group) and shut down in
//!   order (stdin closed, then SIGTERM, then kill) when the session is closed. It leads its
//!   own process group and the signals go to the group: `npx -y some-server` starts `node`,
//!   which a kill of `npx` alone left running; and the terminal's Ctrl-C does not reach it
//!   behind Warden's back.

use rmcp::transport::TokioChildProcess;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};

use crate::config::ServerEntry;
use crate::types::event::{EventBus, EventKind, Scope};

/// Longest stderr line logged; the rest of the line is dropped (and says so).
pub const MAX_LINE: usize = 2048;
/// Most stderr lines logged per child; after that one notice, then silence.
pub const MAX_LINES: u64 = 10_000;

/// Variables passed through from Warden's own environment (see the module docs).
pub const INHERITED_ENV: [&str; 2] = ["PATH", "HOME"];

/// Lines held for a frontend that is not listening yet.
pub const HELD_LINES: usize = 200;

/// Where a stdio server's stderr lines go as events: held (bounded) until a frontend
/// attaches, then emitted as they come. Shared by every process a session starts (a
/// restarted server keeps the same sink).
#[derive(Clone, Default)]
pub struct StderrSink(std::sync::Arc<parking_lot::Mutex<SinkState>>);

#[derive(Default)]
struct SinkState {
    events: Option<EventBus>,
    live: bool,
    held: std::collections::VecDeque<(String, String)>,
}

impl StderrSink {
    /// A sink for `events`; `None` keeps lines for the log only.
    pub fn new(events: Option<EventBus>) -> Self {
        Self(std::sync::Arc::new(parking_lot::Mutex::new(SinkState { events, live: false, held: Default::default() })))
    }

    /// A frontend listens now: the held lines go out, in order, then each line as it comes.
    pub fn attach(&self) {
        let mut state = self.0.lock();
        state.live = true;
        let held = std::mem::take(&mut state.held);
        if let Some(bus) = &state.events {
            for (server, line) in held {
                bus.emit(&Scope::default(), EventKind::ServerStderr { server, line });
            }
        }
    }

    fn line(&self, server: &str, line: String) {
        let mut state = self.0.lock();
        if state.events.is_none() {
            return;
        }
        if state.live {
            if let Some(bus) = &state.events {
                bus.emit(&Scope::default(), EventKind::ServerStderr { server: server.to_string(), line });
            }
        } else {
            if state.held.len() == HELD_LINES {
                state.held.pop_front();
            }
            state.held.push_back((server.to_string(), line));
        }
    }
}

/// Kills a stdio server's process group when dropped, at once and on this thread: rmcp's
/// own cleanup spawns the kill on a task, which never runs when Warden is exiting, and
/// kills only the server, not what it started.
#[derive(Debug)]
pub struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        // ESRCH (the group is already gone) is the normal case after an orderly close.
        let _ = killpg(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// Starts the server's process. The error is in words: which command, and why.
pub fn spawn(
    entry: &ServerEntry,
    command: &str,
    args: &[String],
    sink: StderrSink,
) -> Result<(TokioChildProcess, GroupGuard), String> {
    let mut cmd = Command::new(command);
    cmd.args(args).env_clear();
    for var in INHERITED_ENV {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    for (key, value) in &entry.env {
        cmd.env(key, value.expose());
    }
    if let Some(dir) = &entry.cwd {
        cmd.current_dir(dir);
    }
    let mut cmd = process_wrap::tokio::CommandWrap::from(cmd);
    cmd.wrap(process_wrap::tokio::ProcessGroup::leader()).wrap(process_wrap::tokio::KillOnDrop);
    let (process, stderr) =
        TokioChildProcess::builder(cmd).stderr(std::process::Stdio::piped()).spawn().map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not found (is it installed and on PATH?)".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied (is it executable?)".to_string(),
                _ => e.to_string(),
            };
            format!("could not start `{}`: {why}", entry.endpoint())
        })?;
    if let Some(stderr) = stderr {
        tokio::spawn(pump_stderr(entry.name.clone(), stderr, sink));
    }
    // The server leads its group, so the group's id is its pid.
    let pid = process
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| format!("`{}` exited as soon as it started; its stderr is in Warden's log", entry.endpoint()))?;
    Ok((process, GroupGuard(pid)))
}

/// Copies the child's stderr to the log, line by line, bounded (see the module docs). Ends
/// when the child closes stderr (it exited or was killed).
async fn pump_stderr(server: String, mut stderr: ChildStderr, sink: StderrSink) {
    let mut lines = LineCutter::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in lines.push(&buf[..n]) {
            if !log_line(&server, &line, &mut lines.logged, &sink) {
                return drain(stderr).await;
            }
        }
    }
    if let Some(line) = lines.finish() {
        log_line(&server, &line, &mut lines.logged, &sink);
    }
}

/// Logs one line unless the budget is spent; false once it is.
fn log_line(server: &str, line: &str, logged: &mut u64, sink: &StderrSink) -> bool {
    *logged += 1;
    if *logged > MAX_LINES {
        let notice = format!("more than {MAX_LINES} lines; the rest is not logged");
        tracing::warn!(target: "warden::stdio", server, "stderr: {notice}");
        sink.line(server, format!("({notice})"));
        return false;
    }
    tracing::info!(target: "warden::stdio", server, "stderr: {line}");
    sink.line(server, line.to_string());
    true
}

/// Reads and discards the rest, so the child never blocks on a full pipe.
async fn drain(mut stderr: ChildStderr) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Splits a byte stream into escaped lines of at most `MAX_LINE` bytes.
#[derive(Default)]
struct LineCutter {
    pending: Vec<u8>,
    /// The current line passed `MAX_LINE`: drop bytes until its newline.
    cut: bool,
    logged: u64,
}

impl LineCutter {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                if !self.cut {
                    out.push(escape(&self.pending));
                }
                self.pending.clear();
                self.cut = false;
            } else if !self.cut {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    out.push(format!("{} … (line cut at {MAX_LINE} bytes)", escape(&self.pending)));
                    self.pending.clear();
                    self.cut = true;
                }
            }
        }
        out
    }

    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty() && !self.cut).then(|| escape(&std::mem::take(&mut self.pending)))
    }
}

/// Lossy UTF-8 with control characters escaped (`\u{1b}`, `\r`): a server cannot write
/// terminal escapes or fake log lines into the log.
fn escape(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_are_split_escaped_and_cut() {
        let mut c = LineCutter::default();
        assert_eq!(c.push(b"hello\nwor"), ["hello"]);
        assert_eq!(c.push(b"ld\x1b[31m\r\n"), ["world\\u{1b}[31m\\r"]);
        let long = vec![b'x'; MAX_LINE + 10];
        let out = c.push(&long);
        assert_eq!(out.len(), 1);
        assert!(out[0].ends_with("… (line cut at 2048 bytes)"));
        assert_eq!(c.push(b"tail\nnext"), Vec::<String>::new(), "the rest of a cut line is dropped");
        assert_eq!(c.finish().as_deref(), Some("next"));
    }
}
