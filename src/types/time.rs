//! Time. Everything is UTC seconds (or milliseconds) since the Unix epoch: the reference
//! stack used naive local timestamps, which made tokens look immature or expired on hosts
//! outside UTC; an epoch count has no time zone.
//!
//! Time comes from one injectable source, the `Clock`. Production uses `SystemClock`;
//! tests of expiry, refresh, rate limits and monitor windows use `ManualClock` and move it
//! forward instead of sleeping. The session's clock travels with its event bus, so every
//! part built on that bus (token manager, verifier, monitor, console) reads the same time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future that completes after a clock's sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch (UTC).
    fn now_ms(&self) -> u64;

    /// Waits `d` on this clock (retry back-off, `Retry-After`). A manual clock moves
    /// itself forward by `d` and returns at once, so a test of back-off takes no time.
    fn sleep(&self, d: Duration) -> Sleep;

    /// Seconds since the Unix epoch (UTC).
    fn now_epoch(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A clock shared by everything in one session.
pub type SharedClock = Arc<dyn Clock>;

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            // A clock before 1970 is a broken host; treating it as the epoch makes every
            // token look expired, which fails closed.
            .unwrap_or(0)
    }
}

/// The host's clock as a `SharedClock`.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to (tests).
#[derive(Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// Starts at the host's current time, so tokens from a real issuer look fresh.
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self { ms: AtomicU64::new(SystemClock.now_ms()) })
    }

    pub fn at_ms(ms: u64) -> Arc<Self> {
        Arc::new(Self { ms: AtomicU64::new(ms) })
    }

    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) -> Sleep {
        self.advance(d);
        Box::pin(std::future::ready(()))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManualClock({} ms)", self.now_ms())
    }
}

/// Seconds since the Unix epoch (UTC) on the host's clock, for code outside a session
/// (certificate lifetimes, the issuer's own stamps).
pub fn now_epoch() -> u64 {
    SystemClock.now_epoch()
}

/// RFC 3339 rendering of an epoch second, for human-facing output and stored rows.
pub fn rfc3339(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| epoch.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let c = ManualClock::at_ms(1_000_500);
        assert_eq!((c.now_ms(), c.now_epoch()), (1_000_500, 1_000));
        c.advance(Duration::from_millis(1_500));
        assert_eq!(c.now_epoch(), 1_002);
        futures::executor::block_on(c.sleep(Duration::from_secs(3)));
        assert_eq!(c.now_epoch(), 1_005, "sleeping on a manual clock moves it");
    }

    #[test]
    fn rfc3339_is_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
