//! Authorization primitives shared by the client and the servers: RFC 9068
//! access-token verification, the JWKS cache, and the discovery documents (RFC 8414 and
//! RFC 9728). The service and (in the client issue) the token manager verify tokens with
//! the very same `Verifier`, so both sides agree on what a valid token is. The client's
//! authorization-code login (`authcode`, with `register` and the sealed `refresh_store`)
//! lives here too.
//!
//! May import: `types`, `security`, `paths`. Enforced by `tests/layering.rs`.

pub mod assertion;
pub mod authcode;
pub mod client_auth;
pub mod discovery;
pub mod jwks;
pub mod refresh_store;
pub mod register;
pub mod revoke;
pub mod revoked;
pub mod token;
pub mod verify;
