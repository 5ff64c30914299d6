//! Warden: a terminal operator console for a DSPy-style ReAct support agent that calls tools
//! on OAuth-2.1-protected MCP servers, plus the embedded authorization server ("issuer") and
//! the secured customer-service MCP server ("service") that demos and tests run against.
//!
//! The module map follows `DESIGN.md`: `auth` is shared by client and server (token
//! verification, JWKS, scopes, discovery documents), `issuer` and `service` are the two
//! servers, `security` holds TLS and secret-handling primitives, `cli` the command edge.
#![forbid(unsafe_code)]

// The layers, from the ground up: a module imports only from layers above it in this list
// (enforced by tests/layering.rs; the README's Layout section describes each).

// 0. shared vocabulary and private-file helpers
pub mod paths;
pub mod types;

// 1. primitives and event consumers
pub mod observe;
pub mod security;

// 2. shared by client and servers
pub mod auth;

// 3. configuration
pub mod config;

// 4. the servers
pub mod issuer;
pub mod serve;
pub mod service;

// 5. the client
pub mod mcp;

// 6. the agent
pub mod agent;

// 7. the headless session core
pub mod session;

// 8. frontends
pub mod cli;
pub mod tui;

/// Installs aws-lc-rs as the process-wide rustls crypto provider. Idempotent: every entry
/// point (binary, tests, benches) calls it before any TLS or JWT work.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is exactly the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
