//! Server health: a bounded, cheap probe of each MCP server while a console is open, so
//! the status bar shows a server that cannot be reached as down — and back up when it
//! recovers — without waiting for the agent's next tool call to find out.
//!
//! The probe is a TCP connect to the server's host and port (no TLS, no HTTP request, no
//! token: nothing for the server to authenticate, log or rate-limit). A server that is up
//! is probed every [`INTERVAL`]; one that is down is probed with exponential backoff up to
//! [`MAX_BACKOFF`], so an outage costs a connect attempt every half minute at most. Each
//! attempt is bounded by [`CONNECT_TIMEOUT`]. Only transitions are reported, as
//! `EventKind::ServerHealth`; the console renders them.
//!
//! When a probe is due is decided on the session's clock (a test moves a `ManualClock`
//! instead of sleeping); the background loop itself waits on tokio's timer.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::types::event::{EventBus, EventKind, Scope};
use crate::types::time::SharedClock;

/// How often a server that is up is probed.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait between probes of a server that is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one connect attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One server's probe state.
#[derive(Debug)]
struct Target {
    name: String,
    /// `host:port` to connect to; `None` when the URL has none (never probed).
    addr: Option<String>,
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
    probes: u64,
}

impl Health {
    /// Probes for `(name, url)` servers, each assumed up (the session just connected to
    /// it) and first probed one interval from now.
    pub fn new(servers: &[(String, String)], clock: SharedClock) -> Self {
        let now = clock.now_ms();
        let targets = servers
            .iter()
            .map(|(name, url)| Target {
                name: name.clone(),
                addr: host_port(url),
                up: true,
                failures: 0,
                next_at_ms: now + INTERVAL.as_millis() as u64,
            })
            .collect();
        Self { targets, clock, probes: 0 }
    }

    /// Connect attempts made so far.
    pub fn probes(&self) -> u64 {
        self.probes
    }

    /// How long until the next probe is due (zero when one is due now).
    pub fn next_due_in(&self) -> Duration {
        let now = self.clock.now_ms();
        let next = self.targets.iter().filter(|t| t.addr.is_some()).map(|t| t.next_at_ms).min();
        next.map_or(INTERVAL, |at| Duration::from_millis(at.saturating_sub(now)))
    }

    /// Probes every server that is due, and reports each that went down or came back.
    pub async fn check(&mut self, events: &EventBus) {
        let now = self.clock.now_ms();
        for t in &mut self.targets {
            let Some(addr) = t.addr.clone() else { continue };
            if t.next_at_ms > now {
                continue;
            }
            self.probes += 1;
            let result = probe(&addr).await;
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
                                detail: format!("{addr} answers again"),
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
                                detail: format!("cannot connect to {addr}: {reason} — is the server running?"),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Probes until `stop` is cancelled.
    pub async fn run(mut self, events: EventBus, stop: CancellationToken) {
        loop {
            let wait = self.next_due_in().clamp(Duration::from_millis(100), INTERVAL);
            tokio::select! {
                () = stop.cancelled() => return,
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

async fn probe(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.kind().to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// `host:port` of a server URL (the scheme's default port when none is given).
fn host_port(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let port = u.port_or_known_default()?;
    // `host_str` keeps an IPv6 address's brackets, as a socket address needs them.
    Some(format!("{}:{port}", u.host_str()?))
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
    fn host_and_port_of_server_urls() {
        assert_eq!(host_port("https://127.0.0.1:8001/mcp").as_deref(), Some("127.0.0.1:8001"));
        assert_eq!(host_port("https://example.com/mcp").as_deref(), Some("example.com:443"));
        assert_eq!(host_port("http://[::1]:9/mcp").as_deref(), Some("[::1]:9"));
        assert_eq!(host_port("not a url"), None);
    }
}
