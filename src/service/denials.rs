//! Counting requests without a usable token, per peer address, instead of recording each.
//!
//! Anyone who can reach the service can send garbage tokens, and each used to cost an audit
//! record (~330 bytes): a flood filled the disk with no credentials at all. Now the first
//! denial from a peer in an interval is recorded at once (so a lone probe shows up right
//! away, and a log that cannot record it refuses the request like any other decision); the
//! rest of that interval are counted and recorded as one `DeniedUnauthenticated` record with
//! the count, first and last time and the reasons, when the interval ends (by the periodic
//! flush, the peer's next request, or shutdown). A flood of N requests from one peer writes
//! at most two records per interval, not N.
//!
//! The map is bounded: at most `max_peers` peers are tracked; denials from further peers
//! (an attacker with many addresses) are counted together under `other`. Time comes from
//! the decision bus's clock, so tests move it by hand.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;

use crate::types::event::{EventBus, EventKind, JournalError, Scope};

/// The bucket for peers beyond the cap.
pub const OTHER_PEERS: &str = "other";

#[derive(Debug)]
struct Pending {
    window_start: u64,
    /// Denials not yet in any record.
    count: u64,
    first_ms: u64,
    last_ms: u64,
    reasons: BTreeMap<String, u64>,
}

impl Pending {
    fn new(now: u64) -> Self {
        Self { window_start: now, count: 0, first_ms: now, last_ms: now, reasons: BTreeMap::new() }
    }

    fn add(&mut self, now: u64, reason: &str) {
        if self.count == 0 {
            self.first_ms = now;
        }
        self.count += 1;
        self.last_ms = now;
        *self.reasons.entry(reason.to_string()).or_default() += 1;
    }

    fn record(peer: &str, p: Pending) -> EventKind {
        EventKind::DeniedUnauthenticated {
            peer: peer.to_string(),
            count: p.count,
            first_ms: p.first_ms,
            last_ms: p.last_ms,
            reasons: p.reasons,
        }
    }
}

pub struct DenialCounter {
    bus: EventBus,
    interval_ms: u64,
    max_peers: usize,
    peers: Mutex<HashMap<String, Pending>>,
}

impl DenialCounter {
    pub fn new(bus: EventBus, interval: Duration, max_peers: usize) -> Self {
        Self {
            bus,
            interval_ms: (interval.as_millis() as u64).max(1),
            max_peers: max_peers.max(1),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one denial from `peer` (`None`: unknown). `Err` when a record due now could not
    /// be written (the caller refuses with 503, as for any decision it cannot record).
    pub fn deny(&self, peer: Option<std::net::IpAddr>, reason: &str) -> Result<(), JournalError> {
        let now = self.bus.clock().now_ms();
        let peer = peer.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into());
        let mut due = Vec::new();
        let immediate = {
            let mut peers = self.peers.lock();
            let key =
                if peers.contains_key(&peer) || peers.len() < self.max_peers { peer } else { OTHER_PEERS.to_string() };
            match peers.get_mut(&key) {
                Some(p) if now < p.window_start + self.interval_ms => {
                    p.add(now, reason);
                    return Ok(());
                }
                Some(_) => {
                    if let Some(p) = peers.remove(&key).filter(|p| p.count > 0) {
                        due.push(Pending::record(&key, p));
                    }
                }
                None => {}
            }
            let mut p = Pending::new(now);
            let immediate = if key == OTHER_PEERS {
                // Counted only: peers past the cap must not each cost a record.
                p.add(now, reason);
                None
            } else {
                let mut first = Pending::new(now);
                first.add(now, reason);
                Some(Pending::record(&key, first))
            };
            peers.insert(key, p);
            immediate
        };
        for kind in due {
            self.emit_logged(kind);
        }
        match immediate {
            Some(kind) => self.bus.emit_recorded(&Scope::default(), kind).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Records every interval that has ended and forgets idle peers (called periodically).
    pub fn flush_expired(&self) {
        let now = self.bus.clock().now_ms();
        let due: Vec<EventKind> = {
            let mut peers = self.peers.lock();
            let ended: Vec<String> = peers
                .iter()
                .filter(|(_, p)| now >= p.window_start + self.interval_ms)
                .map(|(k, _)| k.clone())
                .collect();
            ended
                .into_iter()
                .filter_map(|k| peers.remove(&k).filter(|p| p.count > 0).map(|p| Pending::record(&k, p)))
                .collect()
        };
        for kind in due {
            self.emit_logged(kind);
        }
    }

    /// Records every pending count now (shutdown: nothing counted is lost).
    pub fn flush_all(&self) {
        let due: Vec<EventKind> = {
            let mut peers = self.peers.lock();
            peers.drain().filter(|(_, p)| p.count > 0).map(|(k, p)| Pending::record(&k, p)).collect()
        };
        for kind in due {
            self.emit_logged(kind);
        }
    }

    /// Peers tracked now (bounded by `max_peers`).
    pub fn tracked(&self) -> usize {
        self.peers.lock().len()
    }

    fn emit_logged(&self, kind: EventKind) {
        // A count whose interval is over cannot refuse anything any more; the audit log has
        // already logged the failure loudly.
        if let Err(e) = self.bus.emit_recorded(&Scope::default(), kind) {
            tracing::error!(error = %e, "a count of unauthenticated denials was not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::time::ManualClock;

    fn counts(bus: &EventBus) -> Vec<(String, u64)> {
        bus.recorded()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::DeniedUnauthenticated { peer, count, .. } => Some((peer, count)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_flood_costs_records_per_interval_not_per_request() {
        let clock = ManualClock::at_ms(1_000_000);
        let bus = EventBus::recording().with_clock(clock.clone());
        let d = DenialCounter::new(bus.clone(), Duration::from_secs(10), 4);
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..500 {
            d.deny(Some(a), "bad_signature").unwrap();
        }
        assert_eq!(counts(&bus), [("10.0.0.1".to_string(), 1)], "the first at once, the rest counted");
        clock.advance(Duration::from_secs(5));
        d.flush_expired();
        assert_eq!(counts(&bus).len(), 1, "the interval is not over");
        clock.advance(Duration::from_secs(5));
        d.deny(Some(a), "expired").unwrap();
        assert_eq!(counts(&bus)[1..], [("10.0.0.1".to_string(), 499), ("10.0.0.1".to_string(), 1)]);
        d.flush_all();
        assert_eq!(counts(&bus).len(), 3, "nothing pending");
    }

    #[test]
    fn peers_beyond_the_cap_share_one_bucket() {
        let clock = ManualClock::at_ms(0);
        let bus = EventBus::recording().with_clock(clock.clone());
        let d = DenialCounter::new(bus.clone(), Duration::from_secs(10), 3);
        for i in 0..100u8 {
            d.deny(Some(std::net::IpAddr::from([10, 0, 1, i])), "malformed").unwrap();
        }
        assert_eq!(d.tracked(), 3 + 1, "three peers and the shared bucket");
        assert_eq!(counts(&bus).len(), 3, "only tracked peers are recorded at once");
        clock.advance(Duration::from_secs(10));
        d.flush_expired();
        assert_eq!(counts(&bus).last(), Some(&(OTHER_PEERS.to_string(), 97)));
        assert_eq!(d.tracked(), 0, "idle peers are forgotten");
        let total: u64 = counts(&bus).iter().map(|(_, n)| n).sum();
        assert_eq!(total, 100, "every denial counted once");
    }
}
