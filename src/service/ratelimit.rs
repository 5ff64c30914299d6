//! Per-client token-bucket rate limiting. A request that finds the bucket empty is told how
//! long until a token is available, which becomes the 429's `Retry-After`. Time comes from
//! the injected clock, so tests move it instead of sleeping.
//!
//! With the SQLite store the buckets are in this process's memory. With the PostgreSQL
//! store ([`RateLimiter::shared`]) they are rows in the database, so every instance draws
//! from the same budget: one atomic statement per request, given this instance's clock
//! time (see [`crate::service::store::PgStore::take_token`]). If the database cannot
//! answer, the request is refused ([`Limited::Unavailable`]): fail closed, never unlimited.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::store::Store;
use crate::config::RateLimitConfig;
use crate::security::buckets::Buckets;
use crate::types::time::{self, SharedClock};

/// Most distinct clients tracked at once; beyond that, full (idle) buckets are forgotten.
const MAX_CLIENTS: usize = 10_000;

pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<Buckets<String>>,
    clock: SharedClock,
    /// The PostgreSQL store holding the shared buckets; `None`: the in-memory ones.
    shared: Option<Arc<Store>>,
}

/// Why a request may not go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Limited {
    /// The bucket is empty; a token is this far away (the 429's `Retry-After`).
    Wait(Duration),
    /// The shared buckets cannot be read (the database is unreachable); the text says why.
    Unavailable(String),
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self::bounded(cfg, MAX_CLIENTS)
    }

    fn bounded(cfg: RateLimitConfig, capacity: usize) -> Self {
        Self {
            buckets: Mutex::new(Buckets::new(cfg.burst, cfg.per_second, capacity)),
            cfg,
            clock: time::system(),
            shared: None,
        }
    }

    /// This limiter, tracking at most `n` clients (tests; the default is 10,000).
    pub fn with_capacity(self, n: usize) -> Self {
        Self { clock: self.clock, shared: self.shared, ..Self::bounded(self.cfg, n) }
    }

    /// This limiter, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// This limiter, keeping its buckets in `store` when that is the PostgreSQL store (shared
    /// by every instance on the database); with SQLite it stays in memory.
    pub fn shared(mut self, store: Arc<Store>) -> Self {
        self.shared = store.postgres().is_some().then_some(store);
        self
    }

    /// True when the buckets live in the database.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Takes one token for `client`; [`Limited::Wait`] when there is none. In memory, a
    /// client that is new while the map is full of active clients is refused too (fail
    /// closed, bounded) for a second, until idle buckets can be forgotten.
    pub async fn check(&self, client: &str) -> Result<(), Limited> {
        let now = self.clock.now_ms();
        if let Some(pg) = self.shared.as_deref().and_then(Store::postgres) {
            // The same bounds as the in-memory buckets (`Buckets::new`).
            let burst = f64::from(self.cfg.burst.max(1));
            let rate = self.cfg.per_second.max(0.001);
            // Boxed: the database future is large, and the guard's future (every request's)
            // would otherwise carry it on SQLite too.
            return match Box::pin(pg.take_token(client, now, burst, rate)).await {
                Ok(taken) => taken.map_err(Limited::Wait),
                Err(e) => Err(Limited::Unavailable(e.to_string())),
            };
        }
        self.buckets
            .lock()
            .take(&client.to_string(), now)
            .map_err(|wait| Limited::Wait(wait.unwrap_or(Duration::from_secs(1))))
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::types::time::ManualClock;

    /// Manual time: the clock moves only when the test says so; nothing sleeps.
    #[tokio::test]
    async fn burst_then_refill_per_client() {
        let clock = ManualClock::at_ms(1_000_000);
        let rl = RateLimiter::new(RateLimitConfig { per_second: 2.0, burst: 3 }).with_clock(clock.clone());
        for _ in 0..3 {
            assert!(rl.check("a").await.is_ok());
        }
        let Limited::Wait(wait) = rl.check("a").await.unwrap_err() else { panic!("not a wait") };
        assert_eq!((wait, retry_after_secs(wait)), (Duration::from_millis(500), 1));
        assert!(rl.check("b").await.is_ok(), "buckets are per client");
        clock.advance(Duration::from_millis(499));
        assert!(rl.check("a").await.is_err(), "not yet a whole token");
        clock.advance(Duration::from_millis(1));
        assert!(rl.check("a").await.is_ok(), "refilled one token");
        assert!(rl.check("a").await.is_err());
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(rl.check("a").await.is_ok(), "refills up to the burst, not beyond");
        }
        assert!(rl.check("a").await.is_err());
    }

    /// Regression (issue 11, defect 14): the map had no hard cap, and every new client past
    /// 10,000 scanned the whole map under the lock.
    #[tokio::test]
    async fn the_client_map_is_bounded_and_swept_at_most_once_a_second() {
        let clock = ManualClock::at_ms(1_000_000);
        let rl =
            RateLimiter::new(RateLimitConfig { per_second: 1.0, burst: 2 }).with_clock(clock.clone()).with_capacity(3);
        for c in ["a", "b", "c"] {
            assert!(rl.check(c).await.is_ok());
        }
        assert_eq!(
            rl.check("d").await,
            Err(Limited::Wait(Duration::from_secs(1))),
            "full of active clients: a new one waits"
        );
        assert_eq!(rl.buckets.lock().len(), 3, "never past the cap");
        assert!(rl.check("a").await.is_ok(), "known clients keep their buckets");
        // Two seconds later every bucket has refilled: idle ones are forgotten at the next sweep.
        clock.advance(Duration::from_secs(2));
        assert!(rl.check("d").await.is_ok());
        assert_eq!(rl.buckets.lock().len(), 1);
        // A sweep that frees nothing is not repeated within the second.
        for c in ["e", "f"] {
            assert!(rl.check(c).await.is_ok());
        }
        assert!(rl.check("g").await.is_err());
        assert_eq!(rl.buckets.lock().last_sweep(), Some(1_002_000));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
