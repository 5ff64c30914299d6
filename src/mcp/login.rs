//! From what discovery found to a token manager that logs in: the authorization code flow
//! with PKCE (`auth::authcode`) for a server that needs OAuth when no client credentials are
//! configured. Who the client is comes from `[client]` (a pre-registered public client_id, a
//! client ID metadata document URL the authorization server accepts) or else from dynamic
//! registration when the authorization server offers it.

use std::sync::Arc;

use super::ClientError;
use crate::auth::discovery;
use crate::config::ClientSection;

use crate::auth::authcode::{BROWSER_WAIT, CodeLogin, LoginSetup, state_paths};
use crate::auth::client_auth::ClientAuthenticator;
use crate::auth::discovery::Discovered;
use crate::auth::jwks::JwksCache;
use crate::auth::register::{Identity, Registered, Registrar};
use crate::auth::token::{TokenManager, TokenSource, Verification};
use crate::auth::verify::{DEFAULT_LEEWAY_SECS, Verifier, VerifierConfig};
use crate::config::{Config, ServerEntry};
use crate::types::event::EventBus;
use crate::types::scope::ScopeSet;

/// Whether a login can be tried for `d`: a mode was chosen, the authorization server has an
/// authorization endpoint, and it advertises PKCE S256 (MCP 2025-11-25 has clients refuse
/// to authorize without it).
pub fn can_log_in(config: &Config, d: &Discovered) -> bool {
    login_mode(config).is_some() && d.metadata.authorization_endpoint.is_some() && advertises_s256(d)
}

/// Whether a login for `server` at `d`'s resource, with `d`'s authorization server, is
/// stored: then no login mode is needed to use it (nothing asks the user), only to replace
/// it once it no longer works.
pub fn has_stored_login(config: &Config, server: &str, d: &Discovered) -> bool {
    let state_dir = config.login.state_dir.clone().unwrap_or_else(|| crate::paths::state_dir(None));
    let (_, store) = state_paths(&state_dir);
    matches!(store.load(server, &d.resource), Ok(Some(l)) if l.issuer == d.authorization_server)
}

pub fn advertises_s256(d: &Discovered) -> bool {
    d.metadata.code_challenge_methods_supported.iter().any(|m| m == "S256")
}

fn login_mode(config: &Config) -> Option<crate::auth::authcode::LoginMode> {
    config.login.mode.or(config.client.as_ref().and_then(|c| c.login))
}

/// Whether `[client]` describes a client that logs in rather than one with client
/// credentials: no secret configured, and a login mode chosen.
pub fn public_client(config: &Config) -> bool {
    config.client.as_ref().is_some_and(|c| {
        c.client_secret.is_none()
            && c.client_secret_env.is_none()
            && c.client_key.is_none()
            && login_mode(config).is_some()
    })
}

/// For a `[client]` without a secret: discovery from the server's 401 (as for a server whose
/// auth is left to it), checked to name `[client]`'s issuer, then a login token manager.
pub async fn public_login_tokens(
    config: &Config,
    client: &ClientSection,
    entry: &ServerEntry,
    http: &reqwest::Client,
    scopes: Option<ScopeSet>,
    events: &EventBus,
) -> Result<Arc<TokenManager>, ClientError> {
    super::check_url(&entry.url, client.allow_http_loopback)?;
    let challenge = super::probe_challenge(http, &entry.url).await;
    let d = discovery::discover(http, &entry.url, &challenge, client.allow_http_loopback)
        .await
        .map_err(|e| ClientError::undiscovered(&entry.name, e, &super::client_tls(client)))?;
    if let Some(issuer) = &client.issuer
        && d.authorization_server.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        return Err(ClientError::UntrustedIssuer {
            server: entry.name.clone(),
            named: d.authorization_server.clone(),
            configured: issuer.clone(),
        });
    }
    if !can_log_in(config, &d) {
        // Says what was found and why logging in is not possible there.
        return Err(ClientError::NeedsOauth { server: entry.name.clone(), discovered: Box::new(d) });
    }
    Ok(login_tokens(config, entry, http, scopes, events, &d))
}

/// A token manager whose tokens come from logging in to the authorization server `d` names
/// (and then from the refresh token). Nothing is sent until its first `claims()`.
pub fn login_tokens(
    config: &Config,
    entry: &ServerEntry,
    http: &reqwest::Client,
    scopes: Option<ScopeSet>,
    events: &EventBus,
    d: &Discovered,
) -> Arc<TokenManager> {
    let state_dir = config.login.state_dir.clone().unwrap_or_else(|| crate::paths::state_dir(None));
    let (clients_path, store) = state_paths(&state_dir);
    let client = config.client.as_ref();
    let cimd = config
        .login
        .client_id_metadata_url
        .clone()
        .or_else(|| client.and_then(|c| c.client_id_metadata_url.clone()))
        .filter(|_| d.metadata.client_id_metadata_document_supported);
    let identity = match (client.filter(|c| !c.client_id.is_empty()), cimd, d.registration_endpoint()) {
        (_, Some(url), _) => Identity::MetadataDocument(url),
        (Some(c), None, _) => Identity::Preregistered(Registered {
            client_secret: c.client_secret.clone(),
            auth_method: match (&c.client_secret, c.auth_method.as_deref()) {
                (None, _) => "none".into(),
                (Some(_), Some("post" | "client_secret_post")) => "client_secret_post".into(),
                (Some(_), _) => "client_secret_basic".into(),
            },
            ..Registered::public(&c.client_id)
        }),
        (None, None, Some(endpoint)) => Identity::Dynamic {
            endpoint: endpoint.to_string(),
            methods: d.metadata.token_endpoint_auth_methods_supported.clone(),
        },
        (None, None, None) => Identity::Unavailable,
    };
    let registrar = Registrar::new(http.clone(), &d.authorization_server, &d.resource, identity, clients_path);
    let setup = LoginSetup {
        http: http.clone(),
        server: entry.name.clone(),
        issuer: d.authorization_server.clone(),
        // `can_log_in` checked it is there.
        authorization_endpoint: d.metadata.authorization_endpoint.clone().unwrap_or_default(),
        token_endpoint: d.metadata.token_endpoint.clone(),
        resource: d.resource.clone(),
        mode: login_mode(config),
        registrar,
        store: Some(store),
        revocation_endpoint: d.metadata.revocation_endpoint.clone(),
        events: events.clone(),
        wait: config.login.wait.unwrap_or(BROWSER_WAIT),
        step_up: config.login.step_up,
    };
    d.narrate(events, &entry.name);
    let login = CodeLogin::new(setup);
    let verification = match &d.metadata.jwks_uri {
        Some(jwks_uri) => Verification::Jwks(Box::new(
            Verifier::new(
                VerifierConfig {
                    issuer: d.metadata.issuer.clone(),
                    audience: d.resource.clone(),
                    leeway_secs: DEFAULT_LEEWAY_SECS,
                },
                Arc::new(JwksCache::from_url(http.clone(), jwks_uri.clone()).with_clock(events.clock().clone())),
            )
            .with_clock(events.clock().clone()),
        )),
        None => Verification::NoJwks,
    };
    // The client credentials source is never used: `with_login` takes every token request.
    let source = TokenSource {
        token_endpoint: d.metadata.token_endpoint.clone(),
        resource: d.resource.clone(),
        auth: ClientAuthenticator::public(""),
        assertion: None,
    };
    let scopes = scopes.or_else(|| (!d.scopes.is_empty()).then(|| d.scopes.clone()));
    Arc::new(
        TokenManager::new(http.clone(), source, verification, scopes, events.clone())
            .with_login(login)
            .for_server(&entry.name),
    )
}
