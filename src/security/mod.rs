//! Security primitives shared by every part of Warden: redacting secret types and
//! fingerprints (`secret`), password-style hashing of client secrets (`hash`), and the
//! development CA plus rustls configurations (`tls`).

pub mod hash;
pub mod secret;
pub mod tls;
