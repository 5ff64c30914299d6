//! Per-client token-bucket rate limiting. A request that finds the bucket empty is told how
//! long until a token is available, which becomes the 429's `Retry-After`. Time comes from
//! the injected clock, so tests move it instead of sleeping.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::RateLimitConfig;
use crate::types::time::{self, SharedClock};

/// Most distinct clients tracked at once; beyond that, full (idle) buckets are forgotten.
const MAX_CLIENTS: usize = 10_000;

struct Bucket {
    tokens: f64,
    /// Clock milliseconds at the last update.
    updated: u64,
}

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
    clock: SharedClock,
    /// Most clients tracked at once (a hard cap: the map never grows past it).
    capacity: usize,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<String, Bucket>,
    /// When idle buckets were last swept (clock ms): at most one O(n) sweep per second,
    /// so a flood of new client ids cannot make every request scan the whole map.
    last_sweep: Option<u64>,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            rate: cfg.per_second.max(0.001),
            burst: f64::from(cfg.burst.max(1)),
            buckets: Mutex::new(Buckets::default()),
            clock: time::system(),
            capacity: MAX_CLIENTS,
        }
    }

    /// This limiter, tracking at most `n` clients (tests; the default is 10,000).
    pub fn with_capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// This limiter, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Takes one token for `client`; `Err(wait)` when there is none. A client that is new
    /// while the map is full of active clients is refused too (fail closed, bounded), until
    /// idle buckets can be forgotten.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        // A wall clock can step back; `saturating_sub` below treats that as no time passed.
        let now = self.clock.now_ms();
        let secs_since = |then: u64| now.saturating_sub(then) as f64 / 1000.0;
        let mut guard = self.buckets.lock();
        let buckets = &mut *guard;
        if !buckets.map.contains_key(client) && buckets.map.len() >= self.capacity {
            if buckets.last_sweep.is_none_or(|t| now.saturating_sub(t) >= 1000) {
                let (rate, burst) = (self.rate, self.burst);
                buckets.map.retain(|_, b| b.tokens + secs_since(b.updated) * rate < burst);
                buckets.last_sweep = Some(now);
            }
            if buckets.map.len() >= self.capacity {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.map.entry(client.to_string()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = secs_since(bucket.updated);
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
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
        assert_eq!(rl.buckets.lock().map.len(), 3, "never past the cap");
        assert!(rl.check("a").is_ok(), "known clients keep their buckets");
        // Two seconds later every bucket has refilled: idle ones are forgotten at the next sweep.
        clock.advance(Duration::from_secs(2));
        assert!(rl.check("d").is_ok());
        assert_eq!(rl.buckets.lock().map.len(), 1);
        // A sweep that frees nothing is not repeated within the second.
        for c in ["e", "f"] {
            assert!(rl.check(c).is_ok());
        }
        assert!(rl.check("g").is_err());
        assert_eq!(rl.buckets.lock().last_sweep, Some(1_002_000));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
