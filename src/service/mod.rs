//! The secured customer-service MCP server ("service").
//!
//! `/mcp` is rmcp's streamable HTTP transport in stateless mode with plain JSON responses
//! (no session, no SSE for simple calls), behind the bearer guard. RFC 9728 metadata is
//! served unauthenticated at `/.well-known/oauth-protected-resource` (and the path-suffixed
//! form for `/mcp`).
//!
//! May import: `types`, `paths`, `security`, `observe`, `auth`, `config` (never the client
//! side). Enforced by `tests/layering.rs`.

pub mod denials;
pub mod direct;
pub mod guard;
pub mod policy;
pub mod ratelimit;
pub mod seed;
pub mod store;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use crate::auth::discovery::{ProtectedResourceMetadata, resource_metadata_url};
use crate::auth::verify::Verifier;
use crate::config::RateLimitConfig;
use direct::{DirectCalls, direct_calls};
use guard::{GuardState, bearer_guard};
use ratelimit::RateLimiter;
use store::Store;
use tools::CustomerService;

pub struct ServiceParams {
    pub verifier: Arc<Verifier>,
    pub store: Arc<Store>,
    /// This server's resource URI (the `/mcp` URL); tokens must name it in `aud`.
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub rate_limit: RateLimitConfig,
    pub max_body_bytes: usize,
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed besides loopback ones (`[service] allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// Where decisions are recorded (a bus with the server's audit journal attached).
    pub decisions: crate::types::event::EventBus,
    /// Answer plain stateless `tools/call` requests without rmcp's per-request service
    /// (see [`direct`]); off, every request goes through rmcp's transport.
    pub direct_calls: bool,
    /// Counts requests with unusable tokens per peer (one record per peer per interval).
    pub denials: Arc<denials::DenialCounter>,
}

/// Must run inside a tokio runtime.
pub fn router(p: ServiceParams) -> Router {
    router_checking(p, None)
}

/// As [`router`], and the bearer guard also refuses access tokens on `revoked` (the
/// embedded issuer's RFC 7009 deny-list, when this service trusts that issuer).
pub fn router_checking(p: ServiceParams, revoked: Option<Arc<crate::auth::revoked::RevokedAccess>>) -> Router {
    let metadata = ProtectedResourceMetadata {
        resource: p.resource.clone(),
        authorization_servers: p.authorization_servers.clone(),
        scopes_supported: policy::all_scopes().to_vec(),
        bearer_methods_supported: vec!["header".into()],
        resource_name: Some("Warden customer service".into()),
    };
    // With the PostgreSQL store the buckets are shared with every instance on the database.
    let limiter = RateLimiter::new(p.rate_limit).with_clock(p.decisions.clock().clone()).shared(p.store.clone());
    let guard = Arc::new(GuardState {
        decisions: p.decisions,
        verifier: p.verifier,
        limiter,
        resource_metadata: resource_metadata_url(&p.resource),
        max_body_bytes: p.max_body_bytes,
        allowed_origins: p.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
        denials: p.denials,
        revoked,
    });
    let prototype = CustomerService::prototype(p.store);
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string(), "[::1]".to_string()];
    hosts.extend(host_of(&p.resource));
    hosts.extend(p.allowed_hosts);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(p.max_body_bytes);
    let direct = p.direct_calls.then(|| Arc::new(DirectCalls::new(prototype.clone(), &hosts, p.max_body_bytes)));
    let config = config.with_allowed_hosts(hosts);
    let mcp = Arc::new(StreamableHttpService::new(
        move || Ok(prototype.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    ));
    // axum clones a route's service for every request; rmcp's clones its whole config (the
    // allowed-hosts list included), 2% of a direct call's CPU for a service it never uses.
    // Behind an `Arc` the per-request clone is a reference count.
    let mcp = tower::service_fn(move |req: axum::extract::Request| {
        let mcp = mcp.clone();
        async move { Ok::<_, std::convert::Infallible>(mcp.handle(req).await) }
    });
    let mut protected = Router::new().route_service("/mcp", mcp);
    if let Some(direct) = direct {
        protected = protected.layer(axum::middleware::from_fn_with_state(direct, direct_calls));
    }
    // Added last, so it runs first: nothing reaches the MCP layers without passing it.
    let protected = protected.layer(axum::middleware::from_fn_with_state(guard, bearer_guard));
    let metadata = Arc::new(metadata);
    let serve_metadata = move || {
        let m = metadata.clone();
        async move { Json((*m).clone()) }
    };
    Router::new()
        .merge(protected)
        .route("/.well-known/oauth-protected-resource", get(serve_metadata.clone()))
        .route("/.well-known/oauth-protected-resource/mcp", get(serve_metadata))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(p.max_body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
}

/// The host part of a URL (without port), for the DNS-rebinding allow-list.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]"))?
    } else {
        authority.split(':').next()?.to_string()
    };
    Some(host)
}
