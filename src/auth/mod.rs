//! Authorization primitives shared by the client and the servers: scope sets, RFC 9068
//! access-token verification, the JWKS cache, and the discovery documents (RFC 8414 and
//! RFC 9728). The service and (in the client issue) the token manager verify tokens with
//! the very same `Verifier`, so both sides agree on what a valid token is.

pub mod discovery;
pub mod jwks;
pub mod scopes;
pub mod token;
pub mod verify;
