//! Throttling of client authentication at `/token` (issue 11, defect 5).
//!
//! Checking a client secret costs one PBKDF2 verification (~20,000 HMAC rounds). Two
//! limits keep that cost from being turned against the server:
//!
//! - **Bounded hashing, off the async runtime.** Hashes run on Tokio's blocking pool, at
//!   most `max_concurrent_hashes` at once (default: one per core). At most
//!   `max_queued_hashes` more requests wait for a slot; beyond that the answer is an
//!   immediate 503 with `Retry-After: 1`, so a flood neither starves the other endpoints
//!   (the MCP service shares this runtime) nor queues without bound.
//! - **Failure budgets.** Token buckets count *failed* authentications: one per peer
//!   address (an IPv6 peer by its /64, since one host owns a whole /64) and one per
//!   registered client id. A request takes one token from each bucket *before* hashing and
//!   gets it back if the secret is right, so a success costs nothing and only failures
//!   drain a bucket. An empty bucket means 429 with `Retry-After` (time to the next token)
//!   without hashing at all: the limiter is checked before the expensive part.
//!
//! The lockout trade-off. A per-client budget is what stops a guessing run spread over
//! many addresses, but it is also a lever: anyone who knows a client id can spend that
//! client's budget with wrong secrets. Three things keep that lever short:
//! 1. the budget refills quickly (default burst 20, one per second), so a lockout ends
//!    about a second after the attacker stops, and to sustain it the attacker needs
//!    failures from several addresses (each address has its own, smaller budget);
//! 2. a peer address that authenticated as that client within `trusted_peer_secs` (the
//!    legitimate deployment's own host) still gets its secret checked while the client's
//!    budget is empty, so an attack from elsewhere does not lock out the client where it
//!    actually runs;
//! 3. unknown client ids have no per-client bucket (nothing to protect; their attempts
//!    count against the peer), so the client map is bounded by the registry's size.
//!
//! What remains: a legitimate client from a *new* address, while someone keeps the
//! client's budget empty from several addresses, waits (429) until the attack stops; and
//! peers behind one NAT share one budget. Peers are identified by the TCP peer address
//! only (no `X-Forwarded-For`: it is client-supplied).
//!
//! Every map has a hard cap. The peer map forgets fully refilled buckets (at most one
//! sweep a second, like the service's rate limiter); if it is still full of active
//! buckets, a new peer is refused (fail closed) unless it is trusted for the client.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::config::AuthThrottleConfig;
use crate::security::buckets::Buckets;
use crate::types::time::SharedClock;

/// Most peers tracked at once.
const MAX_PEERS: usize = 10_000;
/// Most (client, peer) pairs remembered as trusted.
const MAX_TRUSTED: usize = 4_096;

/// Why a token request was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer's or the client's failure budget is spent: 429, retry after `wait`.
    TooManyFailures { wait: Duration },
    /// Every hashing slot and queue place is taken: 503, retry in a second.
    Busy,
}

/// The `/token` authentication throttle: failure budgets and the hashing bound.
pub struct AuthThrottle {
    clock: SharedClock,
    trusted_ms: u64,
    peers: Mutex<Buckets<IpAddr>>,
    clients: Mutex<Buckets<String>>,
    /// (client id, peer) → clock ms of its last successful authentication.
    trusted: Mutex<HashMap<(String, IpAddr), u64>>,
    /// Hashing slots (the CPU bound).
    workers: Arc<Semaphore>,
    /// Slots plus queue places (the wait bound).
    admission: Arc<Semaphore>,
}

impl AuthThrottle {
    /// `registered`: how many client ids are registered (the client map's cap).
    pub fn new(cfg: &AuthThrottleConfig, registered: usize, clock: SharedClock) -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
        let workers = if cfg.max_concurrent_hashes == 0 { cores } else { cfg.max_concurrent_hashes };
        let workers = workers.clamp(1, 1024);
        let queue = cfg.max_queued_hashes.min(1 << 16);
        Self {
            clock,
            trusted_ms: cfg.trusted_peer_secs.saturating_mul(1000),
            peers: Mutex::new(Buckets::new(cfg.peer_failures_burst, cfg.peer_failures_per_second, MAX_PEERS)),
            clients: Mutex::new(Buckets::new(
                cfg.client_failures_burst,
                cfg.client_failures_per_second,
                registered.max(1),
            )),
            trusted: Mutex::new(HashMap::new()),
            workers: Arc::new(Semaphore::new(workers)),
            admission: Arc::new(Semaphore::new(workers + queue)),
        }
    }

    /// Runs `verify` (the secret check) if the budgets and the hashing bound allow, and
    /// settles the budgets with its answer. `registered`: whether `client_id` is a
    /// registered client (only those have a per-client budget). `peer`: the TCP peer
    /// address; `None` (no address known) shares one bucket with every other such request.
    pub async fn authenticate<F>(
        &self,
        client_id: &str,
        registered: bool,
        peer: Option<IpAddr>,
        verify: F,
    ) -> Result<bool, Refusal>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let now = self.clock.now_ms();
        let peer = peer_key(peer);
        let trusted = || {
            self.trusted
                .lock()
                .get(&(client_id.to_string(), peer))
                .is_some_and(|t| now.saturating_sub(*t) < self.trusted_ms)
        };
        let peer_bucket = self.peers.lock().take(&peer, now);
        let took_peer = match peer_bucket {
            Ok(()) => true,
            Err(Some(wait)) => return Err(Refusal::TooManyFailures { wait }),
            // The peer map is full of active buckets: only a trusted peer gets through.
            Err(None) if registered && trusted() => false,
            Err(None) => return Err(Refusal::TooManyFailures { wait: Duration::from_secs(1) }),
        };
        // Until settled, the tokens taken go back on any exit: a refusal, or the request
        // being dropped while it waits (client gone, request timeout) — neither was a failure.
        let mut held = Reservation { throttle: self, peer: took_peer.then_some(peer), client: None, failed: false };
        if registered {
            let client_bucket = self.clients.lock().take(&client_id.to_string(), now);
            match client_bucket {
                Ok(()) => held.client = Some(client_id.to_string()),
                Err(_) if trusted() => {}
                Err(wait) => {
                    return Err(Refusal::TooManyFailures { wait: wait.unwrap_or(Duration::from_secs(1)) });
                }
            }
        }
        let Ok(_place) = self.admission.clone().try_acquire_owned() else {
            return Err(Refusal::Busy);
        };
        let Ok(_slot) = self.workers.clone().acquire_owned().await else {
            return Err(Refusal::Busy);
        };
        // A panic inside the check (there is none to expect) counts as a failure.
        let ok = tokio::task::spawn_blocking(verify).await.unwrap_or(false);
        // A failure keeps its tokens; a success gives them back (when `held` drops).
        held.failed = !ok;
        if ok {
            let mut trusted = self.trusted.lock();
            if trusted.len() >= MAX_TRUSTED {
                let ttl = self.trusted_ms;
                trusted.retain(|_, t| now.saturating_sub(*t) < ttl);
            }
            let key = (client_id.to_string(), peer);
            if trusted.len() < MAX_TRUSTED || trusted.contains_key(&key) {
                trusted.insert(key, now);
            }
        }
        Ok(ok)
    }
}

/// Budget tokens taken for one attempt; returned on drop unless the attempt failed.
struct Reservation<'a> {
    throttle: &'a AuthThrottle,
    peer: Option<IpAddr>,
    client: Option<String>,
    failed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        if let Some(peer) = &self.peer {
            self.throttle.peers.lock().refund(peer);
        }
        if let Some(client) = &self.client {
            self.throttle.clients.lock().refund(client);
        }
    }
}

/// The bucket key of a peer: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn peer_key(peer: Option<IpAddr>) -> IpAddr {
    match peer {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::types::time::ManualClock;

    fn cfg() -> AuthThrottleConfig {
        AuthThrottleConfig {
            peer_failures_burst: 3,
            peer_failures_per_second: 0.5,
            client_failures_burst: 5,
            client_failures_per_second: 1.0,
            trusted_peer_secs: 600,
            max_concurrent_hashes: 1,
            max_queued_hashes: 1,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// Injected time: a peer's failures are limited, its successes are not, and the budget
    /// refills at the configured rate.
    #[tokio::test]
    async fn a_peer_is_limited_on_failures_only() {
        let clock = ManualClock::at_ms(1_000_000);
        let t = AuthThrottle::new(&cfg(), 1, clock.clone());
        for _ in 0..10 {
            assert_eq!(t.authenticate("svc", true, ip("10.0.0.1"), || true).await, Ok(true), "success is free");
        }
        for _ in 0..3 {
            assert_eq!(t.authenticate("nobody", false, ip("10.0.0.1"), || false).await, Ok(false));
        }
        let refused = t.authenticate("nobody", false, ip("10.0.0.1"), || panic!("not hashed")).await;
        assert_eq!(refused, Err(Refusal::TooManyFailures { wait: Duration::from_secs(2) }));
        assert_eq!(
            t.authenticate("svc", true, ip("10.0.0.1"), || panic!("not hashed")).await,
            Err(Refusal::TooManyFailures { wait: Duration::from_secs(2) }),
            "an empty peer bucket refuses before hashing, whatever the client"
        );
        assert_eq!(t.authenticate("nobody", false, ip("10.0.0.2"), || false).await, Ok(false), "per peer");
        clock.advance(Duration::from_millis(1999));
        assert!(t.authenticate("svc", true, ip("10.0.0.1"), || true).await.is_err());
        clock.advance(Duration::from_millis(1));
        assert_eq!(t.authenticate("svc", true, ip("10.0.0.1"), || true).await, Ok(true), "refilled");
    }

    /// The per-client budget spans peers; a peer that recently authenticated as the client
    /// keeps getting its secret checked while others spend that budget.
    #[tokio::test]
    async fn a_client_budget_spans_peers_but_spares_its_trusted_peer() {
        let clock = ManualClock::at_ms(1_000_000);
        let t = AuthThrottle::new(&cfg(), 1, clock.clone());
        assert_eq!(t.authenticate("svc", true, ip("192.0.2.10"), || true).await, Ok(true));
        // Five attacker addresses, one failure each: the client's budget (5) is spent.
        for i in 1..=5 {
            let peer = ip(&format!("203.0.113.{i}"));
            assert_eq!(t.authenticate("svc", true, peer, || false).await, Ok(false));
        }
        let wait = Duration::from_secs(1);
        assert_eq!(
            t.authenticate("svc", true, ip("203.0.113.9"), || panic!("not hashed")).await,
            Err(Refusal::TooManyFailures { wait })
        );
        assert_eq!(
            t.authenticate("svc", true, ip("198.51.100.7"), || panic!("not hashed")).await,
            Err(Refusal::TooManyFailures { wait }),
            "a new address with the right secret waits while the budget is empty"
        );
        assert_eq!(
            t.authenticate("svc", true, ip("192.0.2.10"), || true).await,
            Ok(true),
            "the client's own recent address still gets in"
        );
        assert_eq!(
            t.authenticate("other-unregistered", false, ip("198.51.100.7"), || false).await,
            Ok(false),
            "other client ids are not affected"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(t.authenticate("svc", true, ip("198.51.100.7"), || true).await, Ok(true), "a second later");
        // Trust expires.
        clock.advance(Duration::from_secs(600));
        for i in 1..=5 {
            let _ = t.authenticate("svc", true, ip(&format!("203.0.113.{}", 20 + i)), || false).await;
        }
        assert!(t.authenticate("svc", true, ip("192.0.2.10"), || true).await.is_err(), "trust lasts 600 s");
    }

    #[tokio::test]
    async fn ipv6_peers_share_a_budget_per_64() {
        let clock = ManualClock::at_ms(1_000_000);
        let t = AuthThrottle::new(&cfg(), 1, clock);
        for i in 1..=3 {
            let peer = ip(&format!("2001:db8:1:2::{i}"));
            assert_eq!(t.authenticate("x", false, peer, || false).await, Ok(false));
        }
        assert!(t.authenticate("x", false, ip("2001:db8:1:2:ffff::1"), || false).await.is_err(), "same /64");
        assert_eq!(t.authenticate("x", false, ip("2001:db8:1:3::1"), || false).await, Ok(false), "next /64");
        assert_eq!(peer_key(ip("::ffff:10.1.2.3")), "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    /// Starts a check that holds the one hashing slot until `release` is sent.
    async fn occupy_the_hashing_slot(
        t: &Arc<AuthThrottle>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<bool, Refusal>>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let first = tokio::spawn({
            let t = t.clone();
            async move {
                t.authenticate("a", false, ip("10.0.0.1"), move || {
                    let _ = started_tx.send(());
                    wait.recv().is_ok()
                })
                .await
            }
        });
        started.await.unwrap();
        (release, first)
    }

    /// Waits until every queue place is taken.
    async fn queue_filled(t: &AuthThrottle) {
        while t.admission.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// One hashing slot and one queue place: a third concurrent request is refused at once.
    #[tokio::test]
    async fn hashing_is_bounded_and_a_full_queue_answers_busy() {
        let clock = ManualClock::at_ms(1_000_000);
        let t = Arc::new(AuthThrottle::new(&cfg(), 1, clock));
        let (release, first) = occupy_the_hashing_slot(&t).await;
        let second = tokio::spawn({
            let t = t.clone();
            async move { t.authenticate("b", false, ip("10.0.0.2"), || true).await }
        });
        // The second is queued (holds the queue place) once its admission succeeded.
        queue_filled(&t).await;
        assert_eq!(t.authenticate("c", false, ip("10.0.0.3"), || true).await, Err(Refusal::Busy));
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        assert_eq!(second.await.unwrap(), Ok(true));
        assert_eq!(t.authenticate("c", false, ip("10.0.0.3"), || true).await, Ok(true), "free again");
        assert_eq!(t.peers.lock().tokens(&"10.0.0.3".parse::<IpAddr>().unwrap()).unwrap(), 3.0, "busy refunded");
    }

    /// A request dropped while it waits for a hashing slot (client gone, request timeout)
    /// was never checked: its budget tokens come back.
    #[tokio::test]
    async fn a_request_dropped_while_queued_gets_its_budget_back() {
        let t = Arc::new(AuthThrottle::new(&cfg(), 1, ManualClock::at_ms(1_000_000)));
        let (release, first) = occupy_the_hashing_slot(&t).await;
        let queued = tokio::spawn({
            let t = t.clone();
            async move { t.authenticate("svc", true, ip("10.0.0.2"), || false).await }
        });
        queue_filled(&t).await;
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let tokens = |t: &AuthThrottle| {
            (t.peers.lock().tokens(&peer).unwrap(), t.clients.lock().tokens(&"svc".to_string()).unwrap())
        };
        assert_eq!(tokens(&t), (2.0, 4.0), "reserved while queued");
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        assert_eq!(tokens(&t), (3.0, 5.0), "given back");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
    }
}
