//! Wall-clock time as UTC epoch seconds. The reference stack used naive local timestamps,
//! which made tokens look immature or expired on hosts outside UTC; everything here is
//! seconds since the Unix epoch, which has no time zone.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (UTC).
pub fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        // A clock before 1970 is a broken host; treating it as the epoch makes every token
        // look expired, which fails closed.
        .unwrap_or(0)
}

/// RFC 3339 rendering of an epoch second, for human-facing output and stored rows.
pub fn rfc3339(epoch: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| epoch.to_string())
}
