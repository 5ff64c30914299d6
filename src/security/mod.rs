//! Security primitives: bounded token buckets for rate limits and failure budgets
//! (`buckets`), password-style hashing of client secrets (`hash`) and the
//! development CA plus rustls configurations (`tls`), all on aws-lc-rs, and the
//! https-unless-loopback rule for URLs (`urls`), and outside strings made safe for logs
//! (`untrusted`), and AEAD sealing of saved programs (`seal`). Secret and
//! fingerprint types live in `types::secret`; event consumers (audit, monitor) in `observe`.
//!
//! May import: `types`, `paths`. Enforced by `tests/layering.rs`.

pub mod buckets;
pub mod hash;
pub mod seal;
pub mod tls;
pub mod untrusted;
pub mod urls;
