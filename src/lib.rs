//! Warden: a terminal operator console for a DSPy-style ReAct support agent that calls tools
//! on OAuth-2.1-protected MCP servers, plus the embedded authorization server ("issuer") and
//! the secured customer-service MCP server ("service") that demos and tests run against.
//!
//! The module map follows `DESIGN.md`: `auth` is shared by client and server (token
//! verification, JWKS, scopes, discovery documents), `issuer` and `service` are the two
//! servers, `security` holds TLS and secret-handling primitives, `cli` the command edge.
#![forbid(unsafe_code)]

pub mod agent;
pub mod auth;
pub mod cli;
pub mod config;
pub mod events;
pub mod issuer;
pub mod mcp;
pub mod paths;
pub mod scenario;
pub mod security;
pub mod serve;
pub mod service;
pub mod time;
pub mod tui;

/// Installs aws-lc-rs as the process-wide rustls crypto provider. Idempotent: every entry
/// point (binary, tests, benches) calls it before any TLS or JWT work.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is exactly the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
