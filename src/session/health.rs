//! Server health: a bounded, cheap probe of each MCP server while a console is open, so
//! the status bar shows a server that cannot be reached as down — and back up when it
//! recovers — without waiting for the agent's next tool call to find out.
//!
//! The probe is an unauthenticated `GET` of the server's RFC 9728 protected-resource
//! metadata (`/.well-known/oauth-protected-resource/mcp`) over the client's own TLS
//! settings: no token, so nothing for the server's guard to authenticate, record or
//! rate-limit, and any HTTP answer — even an error status — proves the server is up (a TCP
//! connect would call a hung server up). A server that is up is probed every [`INTERVAL`];
//! one that is down with exponential backoff up to [`MAX_BACKOFF`], so an outage costs one
//! request every half minute at most. Each probe is bounded by [`PROBE_TIMEOUT`].
//!
//! The probe also learns from the session's tool calls (`observe`): a call that could not
//! connect to a server makes it down here too (the console has already marked it from that
//! call), so the probe reports when it comes back. Only changes are reported, as
//! `EventKind::ServerHealth`; the console renders them.
//!
//! A stdio server is not probed over the network: its session says whether its process is
//! still there (the connection ends when the process exits), checked every
//! [`PROCESS_INTERVAL`] since it costs nothing. A restart (`Command::Restart`) reports the
//! server up again, and the probe learns that from the event.
//!
//! When a probe is due is decided on the session's clock (a test moves a `ManualClock`
//! instead of sleeping); the background loop itself waits on tokio's timer.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::mcp::session::McpSession;
use crate::types::event::{CallOutcome, Event, EventBus, EventKind, FailureClass, Scope};
use crate::types::time::SharedClock;

/// How often a server that is up is probed.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between probes of a server that is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one probe may take, connect to answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a stdio server's process is checked.
pub const PROCESS_INTERVAL: Duration = Duration::from_secs(1);

/// One server's probe state.
#[derive(Debug)]
struct Target {
    name: String,
    /// The metadata URL to probe; `None` when the server URL cannot be parsed (never
    /// probed).
    probe_url: Option<String>,
    /// A stdio server's session, whose process is checked instead.
    process: Option<Arc<McpSession>>,
    up: bool,
    /// Consecutive failed probes (drives the backoff).
    failures: u32,
    next_at_ms: u64,
}

/// The probes of a session's servers.
#[derive(Debug)]
pub struct Health {
    targets: Vec<Target>,
    clock: SharedClock,
    http: reqwest::Client,
    probes: u64,
}

impl Health {
    /// Probes for `(name, url)` servers over `http` (the client's TLS settings; its own
    /// timeout is cut to [`PROBE_TIMEOUT`] per probe), each assumed up (the session just
    /// connected to it) and first probed one interval from now.
    pub fn new(servers: &[(String, String)], http: reqwest::Client, clock: SharedClock) -> Self {
        let now = clock.now_ms();
        let targets = servers
            .iter()
            .map(|(name, url)| Target {
                name: name.clone(),
                probe_url: metadata_url(url),
                process: None,
                up: true,
                failures: 0,
                next_at_ms: now + INTERVAL.as_millis() as u64,
            })
            .collect();
        Self { targets, clock, http, probes: 0 }
    }

    /// Also watches these stdio servers' processes (by session; first checked one
    /// [`PROCESS_INTERVAL`] from now).
    pub fn with_processes(mut self, sessions: impl IntoIterator<Item = Arc<McpSession>>) -> Self {
        let at = self.clock.now_ms() + PROCESS_INTERVAL.as_millis() as u64;
        for session in sessions {
            self.targets.retain(|t| t.name != session.name);
            self.targets.push(Target {
                name: session.name.clone(),
                probe_url: None,
                process: Some(session),
                up: true,
                failures: 0,
                next_at_ms: at,
            });
        }
        self
    }

    /// Learns from a tool call's outcome: a call that could not connect to its server
    /// makes it down (not reported: the console marked it from the call itself) and probed
    /// one interval later; a call it answered makes it up. A call that timed out does not
    /// count: the server may still answer the probe while its MCP handler hangs, and the
    /// probe must not then clear the mark the call set.
    pub fn observe(&mut self, e: &Event) {
        // A restart (or this probe itself) said so: start from there.
        if let EventKind::ServerHealth { server, up, .. } = &e.kind {
            if let Some(t) = self.targets.iter_mut().find(|t| t.name == *server) {
                t.up = *up;
                if *up {
                    t.failures = 0;
                }
            }
            return;
        }
        let EventKind::ToolResult { tool, outcome, attempts, .. } = &e.kind else { return };
        if *attempts == 0 {
            return;
        }
        let reached = match outcome {
            CallOutcome::Failed { class: FailureClass::Connection | FailureClass::Tls, .. } => false,
            other if other.server_reached() == Some(true) => true,
            _ => return,
        };
        let now = self.clock.now_ms();
        if let Some(t) = self.targets.iter_mut().find(|t| t.name == tool.server) {
            match (reached, t.up) {
                (false, true) => {
                    t.up = false;
                    t.failures = 1;
                    t.next_at_ms = now + INTERVAL.as_millis() as u64;
                }
                (true, false) => {
                    t.up = true;
                    t.failures = 0;
                    t.next_at_ms = now + INTERVAL.as_millis() as u64;
                }
                _ => {}
            }
        }
    }

    /// Connect attempts made so far.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// How long until the next probe is due (zero when one is due now).
    pub fn next_due_in(&self) -> Duration {
        let now = self.clock.now_ms();
        let next =
            self.targets.iter().filter(|t| t.probe_url.is_some() || t.process.is_some()).map(|t| t.next_at_ms).min();
        next.map_or(INTERVAL, |at| Duration::from_millis(at.saturating_sub(now)))
    }

    /// Probes every server that is due, and reports each that went down or came back.
    pub async fn check(&mut self, events: &EventBus) {
        let now = self.clock.now_ms();
        for t in &mut self.targets {
            if t.next_at_ms > now {
                continue;
            }
            if let Some(session) = &t.process {
                // Free to check: every interval, no backoff. Only a restart brings it back.
                t.next_at_ms = now + PROCESS_INTERVAL.as_millis() as u64;
                let alive = session.is_alive();
                if alive != t.up {
                    t.up = alive;
                    let detail = if alive { "its process is running again" } else { "its process exited" }.to_string();
                    events
                        .emit(&Scope::default(), EventKind::ServerHealth { server: t.name.clone(), up: alive, detail });
                }
                continue;
            }
            let Some(url) = t.probe_url.clone() else { continue };
            self.probes += 1;
            let result = probe(&self.http, &url).await;
            let now = self.clock.now_ms();
            match result {
                Ok(()) => {
                    t.failures = 0;
                    t.next_at_ms = now + INTERVAL.as_millis() as u64;
                    if !t.up {
                        t.up = true;
                        events.emit(
                            &Scope::default(),
                            EventKind::ServerHealth {
                                server: t.name.clone(),
                                up: true,
                                detail: format!("{url} answers again"),
                            },
                        );
                    }
                }
                Err(reason) => {
                    t.failures += 1;
                    t.next_at_ms = now + backoff(t.failures).as_millis() as u64;
                    if t.up {
                        t.up = false;
                        events.emit(
                            &Scope::default(),
                            EventKind::ServerHealth {
                                server: t.name.clone(),
                                up: false,
                                detail: format!("{url}: {reason} — is the server running?"),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Probes until `stop` is cancelled, learning from the tool calls on `events`.
    pub async fn run(mut self, events: EventBus, stop: CancellationToken) {
        let mut calls = events.subscribe(1024);
        loop {
            let wait = self.next_due_in().clamp(Duration::from_millis(100), INTERVAL);
            tokio::select! {
                () = stop.cancelled() => return,
                Some(e) = calls.recv() => {
                    self.observe(&e);
                    continue;
                }
                () = tokio::time::sleep(wait) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.check(&events) => {}
            }
        }
    }
}

/// The wait after `failures` failed probes in a row: the interval, doubled each time,
/// capped at [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    INTERVAL.saturating_mul(1 << failures.saturating_sub(1).min(8)).min(MAX_BACKOFF)
}

/// One probe: any HTTP answer within [`PROBE_TIMEOUT`] is up.
async fn probe(http: &reqwest::Client, url: &str) -> Result<(), String> {
    match http.get(url).timeout(PROBE_TIMEOUT).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.is_timeout() => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Err(e) if e.is_connect() => Err("cannot connect".into()),
        Err(e) => Err(crate::security::tls::describe_reqwest(&e)),
    }
}

/// The RFC 9728 metadata URL of a server, or None for one that has no URL to probe (a
/// stdio server's command line).
fn metadata_url(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .filter(|u| u.host_str().is_some())
        .map(|_| crate::auth::discovery::resource_metadata_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=5).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 30, 30]);
    }

    #[test]
    fn metadata_urls_of_server_urls() {
        assert_eq!(
            metadata_url("https://127.0.0.1:8001/mcp").as_deref(),
            Some("https://127.0.0.1:8001/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            metadata_url("https://example.com/").as_deref(),
            Some("https://example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(metadata_url("not a url"), None);
    }
}
