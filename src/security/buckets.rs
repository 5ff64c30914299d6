//! Token buckets keyed by client, peer or anything hashable, in a map with a hard cap:
//! the service's per-client rate limit and the issuer's failed-authentication budgets are
//! both this. Time is clock milliseconds passed in by the caller (its injected clock).
//!
//! The map never grows past `capacity`. When a new key arrives at a full map, buckets that
//! have refilled (idle keys: forgetting them changes nothing) are swept, at most once a
//! second, so a flood of new keys cannot make every call scan the whole map under the
//! caller's lock. If the map is still full, the new key is refused (fail closed).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

struct Bucket {
    tokens: f64,
    /// Clock milliseconds at the last update.
    updated: u64,
}

pub struct Buckets<K> {
    rate: f64,
    burst: f64,
    capacity: usize,
    map: HashMap<K, Bucket>,
    /// When full buckets were last swept (clock ms).
    last_sweep: Option<u64>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    /// Buckets of `burst` tokens refilling at `per_second`, at most `capacity` keys.
    pub fn new(burst: u32, per_second: f64, capacity: usize) -> Self {
        Self {
            rate: per_second.max(0.001),
            burst: f64::from(burst.max(1)),
            capacity: capacity.max(1),
            map: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Takes one token from `key`'s bucket at clock time `now` (ms). `Err(Some(wait))`: the
    /// bucket is empty, a token is `wait` away; `Err(None)`: `key` is new and the map is full
    /// of buckets still refilling. A clock that steps back counts as no time passed.
    pub fn take(&mut self, key: &K, now: u64) -> Result<(), Option<Duration>> {
        let (rate, burst) = (self.rate, self.burst);
        let secs_since = |then: u64| now.saturating_sub(then) as f64 / 1000.0;
        if !self.map.contains_key(key) && self.map.len() >= self.capacity {
            if self.last_sweep.is_none_or(|t| now.saturating_sub(t) >= 1000) {
                self.map.retain(|_, b| b.tokens + secs_since(b.updated) * rate < burst);
                self.last_sweep = Some(now);
            }
            if self.map.len() >= self.capacity {
                return Err(None);
            }
        }
        let b = self.map.entry(key.clone()).or_insert(Bucket { tokens: burst, updated: now });
        b.tokens = (b.tokens + secs_since(b.updated) * rate).min(burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Some(Duration::from_secs_f64((1.0 - b.tokens) / rate)))
        }
    }

    /// Gives back a token taken by `take` (what it was taken for did not count).
    pub fn refund(&mut self, key: &K) {
        if let Some(b) = self.map.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(self.burst);
        }
    }

    /// Tokens left in `key`'s bucket as of its last update (tests and diagnostics).
    pub fn tokens(&self, key: &K) -> Option<f64> {
        self.map.get(key).map(|b| b.tokens)
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// When full buckets were last swept (clock ms).
    pub fn last_sweep(&self) -> Option<u64> {
        self.last_sweep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_bounded_and_full_buckets_are_forgotten() {
        let mut b: Buckets<&str> = Buckets::new(1, 1.0, 2);
        assert!(b.take(&"a", 1000).is_ok() && b.take(&"c", 1000).is_ok());
        assert_eq!(b.take(&"d", 1000), Err(None), "full of active buckets");
        assert_eq!(b.len(), 2);
        assert!(b.take(&"d", 2000).is_ok(), "refilled buckets are forgotten at the next sweep");
        assert_eq!(b.len(), 1);
    }
}
