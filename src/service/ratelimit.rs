//! Per-client token-bucket rate limiting. A request that finds the bucket empty is told how
//! long until a token is available, which becomes the 429's `Retry-After`. Time comes from
//! the injected clock, so tests move it instead of sleeping.

use std::time::Duration;

use parking_lot::Mutex;

use crate::config::RateLimitConfig;
use crate::security::buckets::Buckets;
use crate::types::time::{self, SharedClock};

/// Most distinct clients tracked at once; beyond that, full (idle) buckets are forgotten.
const MAX_CLIENTS: usize = 10_000;

pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<Buckets<String>>,
    clock: SharedClock,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self::bounded(cfg, MAX_CLIENTS)
    }

    fn bounded(cfg: RateLimitConfig, capacity: usize) -> Self {
        Self { buckets: Mutex::new(Buckets::new(cfg.burst, cfg.per_second, capacity)), cfg, clock: time::system() }
    }

    /// This limiter, tracking at most `n` clients (tests; the default is 10,000).
    pub fn with_capacity(self, n: usize) -> Self {
        Self { clock: self.clock, ..Self::bounded(self.cfg, n) }
    }

    /// This limiter, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Takes one token for `client`; `Err(wait)` when there is none. A client that is new
    /// while the map is full of active clients is refused too (fail closed, bounded) for a
    /// second, until idle buckets can be forgotten.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        let now = self.clock.now_ms();
        self.buckets.lock().take(&client.to_string(), now).map_err(|wait| wait.unwrap_or(Duration::from_secs(1)))
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
    #[test]
    fn burst_then_refill_per_client() {
        let clock = ManualClock::at_ms(1_000_000);
        let rl = RateLimiter::new(RateLimitConfig { per_second: 2.0, burst: 3 }).with_clock(clock.clone());
        for _ in 0..3 {
            assert!(rl.check("a").is_ok());
        }
        let wait = rl.check("a").unwrap_err();
        assert_eq!((wait, retry_after_secs(wait)), (Duration::from_millis(500), 1));
        assert!(rl.check("b").is_ok(), "buckets are per client");
        clock.advance(Duration::from_millis(499));
        assert!(rl.check("a").is_err(), "not yet a whole token");
        clock.advance(Duration::from_millis(1));
        assert!(rl.check("a").is_ok(), "refilled one token");
        assert!(rl.check("a").is_err());
        clock.advance(Duration::from_secs(3600));
        for _ in 0..3 {
            assert!(rl.check("a").is_ok(), "refills up to the burst, not beyond");
        }
        assert!(rl.check("a").is_err());
    }

    /// Regression (issue 11, defect 14): the map had no hard cap, and every new client past
    /// 10,000 scanned the whole map under the lock.
    #[test]
    fn the_client_map_is_bounded_and_swept_at_most_once_a_second() {
        let clock = ManualClock::at_ms(1_000_000);
        let rl =
            RateLimiter::new(RateLimitConfig { per_second: 1.0, burst: 2 }).with_clock(clock.clone()).with_capacity(3);
        for c in ["a", "b", "c"] {
            assert!(rl.check(c).is_ok());
        }
        assert_eq!(rl.check("d"), Err(Duration::from_secs(1)), "full of active clients: a new one waits");
        assert_eq!(rl.buckets.lock().len(), 3, "never past the cap");
        assert!(rl.check("a").is_ok(), "known clients keep their buckets");
        // Two seconds later every bucket has refilled: idle ones are forgotten at the next sweep.
        clock.advance(Duration::from_secs(2));
        assert!(rl.check("d").is_ok());
        assert_eq!(rl.buckets.lock().len(), 1);
        // A sweep that frees nothing is not repeated within the second.
        for c in ["e", "f"] {
            assert!(rl.check(c).is_ok());
        }
        assert!(rl.check("g").is_err());
        assert_eq!(rl.buckets.lock().last_sweep(), Some(1_002_000));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
