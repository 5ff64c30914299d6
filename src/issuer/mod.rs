//! The embedded OAuth 2.1 authorization server ("issuer").
//!
//! Serves `POST /token` (client credentials, `client_secret_basic`/`_post`, RFC 8707
//! resource indicators), `GET /jwks.json` and RFC 8414 metadata. Tokens are RFC 9068 JWT
//! access tokens signed with RS256 keys persisted in `STATE/issuer/` and rotatable.
//!
//! May import: `types`, `paths`, `security`, `observe`, `auth`, `config` (never the client
//! side). Enforced by `tests/layering.rs`.

pub mod clients;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod throttle;
pub mod token;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::types::scope::ScopeSet;
use clients::ClientRegistry;
use keys::KeyStore;

/// Everything the issuer's handlers share. Cheap to clone.
#[derive(Clone)]
pub struct IssuerState {
    pub inner: Arc<IssuerInner>,
}

pub struct IssuerInner {
    /// The exact `iss` value and base of every endpoint URL.
    pub issuer: String,
    pub keys: Arc<KeyStore>,
    pub clients: ClientRegistry,
    /// Resource URIs tokens may be issued for; the first is the default audience.
    pub resources: Vec<String>,
    pub token_ttl_secs: u64,
    pub scopes_supported: ScopeSet,
    /// Where token decisions are recorded (the server audit trail).
    pub decisions: crate::types::event::EventBus,
    /// Failure budgets and the hashing bound for client authentication.
    pub throttle: throttle::AuthThrottle,
}

impl IssuerState {
    pub fn new(inner: IssuerInner) -> Self {
        Self { inner: Arc::new(inner) }
    }
}

/// The issuer's HTTP routes, with a small body limit (token requests are a few hundred
/// bytes) and a timeout on every request.
pub fn router(state: IssuerState) -> Router {
    Router::new()
        .route("/token", post(token::token))
        .route("/jwks.json", get(metadata::jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata::as_metadata))
        .route("/.well-known/openid-configuration", get(metadata::as_metadata))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(10),
        ))
        .with_state(state)
}
