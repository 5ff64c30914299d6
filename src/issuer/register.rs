//! `POST /register`: OAuth 2.0 Dynamic Client Registration (RFC 7591).
//!
//! Anyone who can reach the issuer may register, so everything is bounded: the body (the
//! router's 16 KiB limit), the number of clients (`max_registered_clients`), the number
//! and length of redirect URIs, and registrations per peer address (a token bucket, like
//! the service's rate limit). A registered client gets no more scopes than the issuer
//! allows dynamic clients (`registration_max_scopes`); one that names none gets
//! `registration_default_scopes`. Redirect URIs must be https, or http on loopback.
//!
//! A confidential client's secret is returned once, in the 201 answer, and stored only as
//! a PBKDF2 hash. `[issuer] registration = false` turns the endpoint off (403).

use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::IssuerState;
use super::clients::{AuthMethod, GrantType, RegistryError, StoredClient, redirect_uri_allowed};
use super::error::{OAuthError, OAuthErrorCode as Code};
use super::grants::random_token;
use super::token::Peer;
use crate::security::hash::{DEFAULT_ITERATIONS, SecretHash};
use crate::security::untrusted::for_log;
use crate::types::event::DecisionOutcome;
use crate::types::scope::ScopeSet;

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_LEN: usize = 2048;
const MAX_NAME_CHARS: usize = 100;

/// The RFC 7591 §2 metadata Warden reads; anything else is ignored (§3.1 allows that).
#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    scope: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    client_id_issued_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    grant_types: Vec<&'static str>,
    response_types: Vec<&'static str>,
    token_endpoint_auth_method: &'static str,
    scope: String,
}

pub async fn register(State(state): State<IssuerState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, peer, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            record(&state, "-", DecisionOutcome::RegistrationRefused, e.audit_detail());
            e.into_response()
        }
    }
}

async fn handle(
    state: &IssuerState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    if !state.inner.registration.enabled {
        return Err(OAuthError::new(
            Code::AccessDenied,
            "dynamic client registration is turned off on this issuer ([issuer] registration = false); ask its operator for a pre-registered client",
        ));
    }
    let now_ms = state.inner.decisions.clock().now_ms();
    let peer = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let taken = state.inner.registration.peers.lock().take(&peer, now_ms);
    if let Err(wait) = taken {
        let secs = wait.map_or(60.0, |w| w.as_secs_f64()).ceil().max(1.0) as u64;
        return Err(OAuthError::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            secs,
            "too many registrations from this address; retry after Retry-After seconds",
        ));
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json_type {
        return Err(OAuthError::new(Code::InvalidClientMetadata, "the registration request must be application/json"));
    }
    let meta: Metadata = serde_json::from_slice(body).map_err(|e| {
        OAuthError::new(
            Code::InvalidClientMetadata,
            format!("the client metadata is not valid: {}", for_log(&e.to_string())),
        )
    })?;
    let stored_without_secret = validate(state, meta, now_ms / 1000)?;
    let (stored, secret) = if stored_without_secret.token_endpoint_auth_method == AuthMethod::None {
        (stored_without_secret, None)
    } else {
        let secret =
            random_token().ok_or_else(|| OAuthError::new(Code::ServerError, "no client secret could be made"))?;
        let to_hash = secret.clone();
        // PBKDF2 costs milliseconds of CPU: off the async runtime.
        let hash = tokio::task::spawn_blocking(move || SecretHash::create(&to_hash, DEFAULT_ITERATIONS).encode())
            .await
            .map_err(|_| OAuthError::new(Code::ServerError, "the client secret could not be hashed"))?;
        (StoredClient { secret_hash: Some(hash), ..stored_without_secret }, Some(secret))
    };
    let client = state.inner.clients.register(stored.clone()).map_err(|e| match e {
        RegistryError::Full { .. } => OAuthError::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            3600,
            "this issuer has registered as many clients as it keeps; ask its operator",
        ),
        other => {
            tracing::error!(target: "warden::issuer", error = %other, "client registration not saved");
            OAuthError::new(Code::ServerError, "the registration could not be saved")
        }
    })?;
    record(
        state,
        &client.client_id,
        DecisionOutcome::ClientRegistered,
        format!(
            "{} client{} with scope \"{}\"",
            client.auth_method.as_str(),
            client.name.as_deref().map(|n| format!(" \"{}\"", for_log(n))).unwrap_or_default(),
            client.allowed_scopes
        ),
    );
    let answer = Registered {
        client_id: stored.client_id.clone(),
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: stored.issued_at,
        client_name: stored.client_name.clone(),
        redirect_uris: stored.redirect_uris.clone(),
        grant_types: stored.grant_types.iter().map(|g| g.as_str()).collect(),
        response_types: if stored.grant_types.contains(&GrantType::AuthorizationCode) { vec!["code"] } else { vec![] },
        token_endpoint_auth_method: stored.token_endpoint_auth_method.as_str(),
        scope: stored.allowed_scopes.to_string(),
    };
    let mut resp = (StatusCode::CREATED, Json(answer)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Checks the metadata and decides what is registered (the secret is added after).
fn validate(state: &IssuerState, meta: Metadata, now: u64) -> Result<StoredClient, OAuthError> {
    let bad = |m: String| OAuthError::new(Code::InvalidClientMetadata, m);
    let method = match meta.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic") {
        "none" => AuthMethod::None,
        "client_secret_basic" => AuthMethod::ClientSecretBasic,
        "client_secret_post" => AuthMethod::ClientSecretPost,
        other => {
            return Err(bad(format!(
                "token_endpoint_auth_method \"{}\" is not supported; use none, client_secret_basic or client_secret_post",
                for_log(other)
            )));
        }
    };
    let mut grant_types = Vec::new();
    for g in meta.grant_types.unwrap_or_else(|| vec!["authorization_code".into()]) {
        let grant =
            GrantType::parse(&g).ok_or_else(|| bad(format!("grant type \"{}\" is not supported", for_log(&g))))?;
        if grant == GrantType::ClientCredentials && method == AuthMethod::None {
            return Err(bad("a public client (none) cannot use client_credentials".into()));
        }
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    grant_types.sort();
    let wants_code = grant_types.contains(&GrantType::AuthorizationCode);
    if let Some(types) = &meta.response_types
        && (types.iter().any(|t| t != "code") || (wants_code && types.is_empty()))
    {
        return Err(bad("only the response type \"code\" is supported".into()));
    }
    if wants_code && meta.redirect_uris.is_empty() {
        return Err(OAuthError::new(Code::InvalidRedirectUri, "redirect_uris is required for authorization_code"));
    }
    if meta.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(Code::InvalidRedirectUri, format!("at most {MAX_REDIRECT_URIS} redirect_uris")));
    }
    if let Some(u) = meta.redirect_uris.iter().find(|u| u.len() > MAX_URI_LEN || !redirect_uri_allowed(u)) {
        return Err(OAuthError::new(
            Code::InvalidRedirectUri,
            format!(
                "redirect URI \"{}\" must be an absolute https URI, or http on a loopback address, without a fragment",
                for_log(u)
            ),
        ));
    }
    let reg = &state.inner.registration;
    let allowed = match meta.scope.as_deref().map(ScopeSet::parse).transpose() {
        Err(e) => return Err(bad(e.to_string())),
        Ok(Some(asked)) if !asked.is_empty() => {
            // RFC 7591 §2: the server may register less than asked; the answer says what.
            asked.iter().filter(|s| reg.max_scopes.contains(s)).cloned().collect::<ScopeSet>()
        }
        _ => reg.default_scopes.iter().filter(|s| reg.max_scopes.contains(s)).cloned().collect(),
    };
    if allowed.is_empty() {
        return Err(bad(format!(
            "none of the requested scopes may be granted to a dynamically registered client (allowed: \"{}\")",
            reg.max_scopes
        )));
    }
    let client_name = meta.client_name.map(|n| n.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect());
    Ok(StoredClient {
        client_id: format!("dyn-{}", uuid::Uuid::new_v4().simple()),
        client_name,
        redirect_uris: meta.redirect_uris,
        grant_types,
        token_endpoint_auth_method: method,
        default_scopes: allowed.clone(),
        allowed_scopes: allowed,
        secret_hash: None,
        issued_at: now,
    })
}

fn record(state: &IssuerState, client_id: &str, outcome: DecisionOutcome, detail: String) {
    super::record_decision(
        state,
        "registration",
        client_id,
        outcome,
        outcome == DecisionOutcome::ClientRegistered,
        detail,
    );
}
