//! Types that keep secrets out of logs, events, errors and `Debug` output.
//!
//! `Secret<T>` has no `Display` and a redacted `Debug`; the only way to the inner value is
//! the explicit `expose()`, which is easy to grep for. `Fingerprint` is what we show instead
//! of a token: a short SHA-256 prefix that identifies it without revealing it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A secret value (token, client secret, API key). Never printed, and deliberately not
/// `PartialEq`: comparing secrets with `==` leaks their contents through timing, so the
/// only comparison is `ct_eq` (constant time).
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T: AsRef<[u8]>> Secret<T> {
    /// Constant-time equality (aws-lc-rs), for checking a presented secret.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_ref(), other).is_ok()
    }
}

/// Writes a secret's value into a file the user asked for (`client.toml`, 0600) — the one
/// place a secret is serialized. Use with `#[serde(serialize_with = …)]` on that field only;
/// `Secret` itself has no `Serialize`, so it cannot end up in an event or a log by accident.
pub fn serialize_exposed<S: serde::Serializer>(secret: &Option<Secret<String>>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_some(v.expose()),
        None => s.serialize_none(),
    }
}

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Call sites are the few places a secret must go on the wire.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

/// A short, stable identifier of a secret: `sha256:` plus the first 12 hex digits of its
/// SHA-256. Enough to correlate log lines and events; useless for replaying the secret.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn of(secret: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        Fingerprint(format!("sha256:{}", hex(&digest.as_ref()[..6])))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// SHA-256 of `data` as raw bytes; used as cache keys for tokens so the map never holds
/// the token itself.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lowercase hex of `bytes` (digests, MACs, key files): one table lookup per nibble, no
/// per-byte formatting, since the audit trail hashes every record.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "hunter2");
        assert!(s.ct_eq(b"hunter2") && !s.ct_eq(b"hunter3") && !s.ct_eq(b"hunter"));
    }

    #[test]
    fn fingerprint_is_a_short_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea...
        assert_eq!(Fingerprint::of(b"abc").as_str(), "sha256:ba7816bf8f01");
    }
}
