//! The embedded OAuth 2.1 authorization server ("issuer").
//!
//! Serves `POST /token` (client credentials, authorization code with PKCE, refresh token;
//! `client_secret_basic`/`_post` or `none` for public clients; RFC 8707 resource
//! indicators), `GET/POST /authorize` (a consent page for the configured users, or
//! auto-approval when configured), `POST /register` (RFC 7591), `POST /revoke` (RFC 7009:
//! refresh tokens, with their whole sign-in), `GET /jwks.json` and
//! RFC 8414 metadata. Tokens are RFC 9068 JWT access tokens signed with RS256 keys
//! persisted in `STATE/issuer/` and rotatable; refresh tokens and dynamically registered
//! clients are persisted there too (hashed secrets only); codes live in memory.
//!
//! May import: `types`, `paths`, `security`, `observe`, `auth`, `config` (never the client
//! side). Enforced by `tests/layering.rs`.

pub mod authorize;
pub mod clients;
pub mod error;
pub mod grants;
pub mod keys;
pub mod metadata;
pub mod refresh;
pub mod register;
pub mod revoke;
pub mod throttle;
pub mod token;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::security::buckets::Buckets;
use crate::security::hash::SecretHash;
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
    /// Failure budgets and the hashing bound for client authentication (and passwords).
    pub throttle: throttle::AuthThrottle,
    /// Users who may approve at `/authorize`: name → password hash.
    pub users: BTreeMap<String, SecretHash>,
    /// Checked instead when the user name is unknown (same timing).
    pub users_dummy: SecretHash,
    /// Approve valid `/authorize` requests at once as the first user.
    pub auto_approve: bool,
    pub registration: Registration,
    /// Consent requests and authorization codes (memory, bounded).
    pub grants: grants::Grants,
    pub refresh: refresh::RefreshStore,
    /// The access-token deny-list the MCP service of this process checks, when it trusts
    /// this issuer; `None`: no resource server would hear of a revoked access token, so
    /// `/revoke` does not claim to revoke one.
    pub revoked_access: Option<Arc<crate::auth::revoked::RevokedAccess>>,
}

/// Dynamic client registration settings and its per-peer budget.
pub struct Registration {
    pub enabled: bool,
    pub default_scopes: ScopeSet,
    pub max_scopes: ScopeSet,
    pub peers: parking_lot::Mutex<Buckets<IpAddr>>,
}

/// Most consent requests waiting, and most codes outstanding, at once.
pub const MAX_PENDING_GRANTS: usize = 1024;
/// Most peers whose registration budget is tracked at once.
const MAX_REGISTRATION_PEERS: usize = 10_000;

impl Registration {
    pub fn new(enabled: bool, default_scopes: ScopeSet, max_scopes: ScopeSet, burst: u32, per_minute: f64) -> Self {
        Self {
            enabled,
            default_scopes,
            max_scopes,
            peers: parking_lot::Mutex::new(Buckets::new(burst, per_minute / 60.0, MAX_REGISTRATION_PEERS)),
        }
    }
}

impl IssuerState {
    pub fn new(inner: IssuerInner) -> Self {
        Self { inner: Arc::new(inner) }
    }
}

/// The issuer's HTTP routes, with a small body limit (token, consent and registration
/// requests are a few hundred bytes) and a timeout on every request.
pub fn router(state: IssuerState) -> Router {
    Router::new()
        .route("/token", post(token::token))
        .route("/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/register", post(register::register))
        .route("/revoke", post(revoke::revoke))
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

/// Records one decision of the authorization or registration endpoint in the issuer's audit
/// trail (and the log): who asked, what was decided, and why in words (never a code,
/// token, password or secret). `issued` is the outcome that grants something.
fn record_decision(
    state: &IssuerState,
    endpoint: &'static str,
    client_id: &str,
    outcome: crate::types::event::DecisionOutcome,
    issued: bool,
    detail: String,
) {
    use crate::types::event::{DecisionOutcome, DecisionReason, EventKind, Scope};
    let reason = match outcome {
        DecisionOutcome::TokenRevoked => DecisionReason::Revoked,
        _ if issued => DecisionReason::Issued,
        _ => DecisionReason::TokenRequestRefused,
    };
    tracing::info!(target: "warden::issuer", client_id = %client_id, outcome = outcome.as_str(), detail = %detail, "{endpoint}");
    state.inner.decisions.emit(
        &Scope::default(),
        EventKind::ServiceDecision {
            client_id: client_id.to_string(),
            tool: None,
            outcome,
            reason,
            detail: Some(detail),
            fingerprint: None,
            missing: ScopeSet::new(),
        },
    );
}
