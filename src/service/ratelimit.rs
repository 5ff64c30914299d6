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
    buckets: Mutex<HashMap<String, Bucket>>,
    clock: SharedClock,
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            rate: cfg.per_second.max(0.001),
            burst: f64::from(cfg.burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            clock: time::system(),
        }
    }

    /// This limiter, reading time from `clock`.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Takes one token for `client`; `Err(wait)` when there is none.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        // A wall clock can step back; `saturating_sub` below treats that as no time passed.
        let now = self.clock.now_ms();
        let secs_since = |then: u64| now.saturating_sub(then) as f64 / 1000.0;
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(client) && buckets.len() >= MAX_CLIENTS {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + secs_since(b.updated) * rate < burst);
        }
        let bucket = buckets.entry(client.to_string()).or_insert(Bucket { tokens: self.burst, updated: now });
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

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
    }
}
