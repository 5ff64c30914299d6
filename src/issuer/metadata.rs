//! `GET /jwks.json` and RFC 8414 authorization-server metadata.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderValue, header};

use super::IssuerState;
use crate::auth::discovery::AuthorizationServerMetadata;

pub async fn jwks(State(state): State<IssuerState>) -> impl IntoResponse {
    let mut resp = Json(state.inner.keys.jwks()).into_response();
    // Short caching: clients refetch on an unknown kid anyway.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// The RFC 8414 document: advertises only what is on (`/authorize` needs a user to
/// approve; `/register` can be turned off).
pub fn document(state: &IssuerState) -> AuthorizationServerMetadata {
    let inner = &state.inner;
    let issuer = inner.issuer.clone();
    let code_flow = !inner.users.is_empty();
    let mut grants = vec!["client_credentials".to_string(), "refresh_token".to_string()];
    if code_flow {
        grants.insert(0, "authorization_code".into());
    }
    AuthorizationServerMetadata {
        token_endpoint: format!("{issuer}/token"),
        jwks_uri: Some(format!("{issuer}/jwks.json")),
        introspection_endpoint: None,
        // RFC 7009: refresh tokens (see `revoke`); `warden logout` revokes there first.
        revocation_endpoint: Some(format!("{issuer}/revoke")),
        grant_types_supported: grants,
        token_endpoint_auth_methods_supported: vec![
            "client_secret_basic".into(),
            "client_secret_post".into(),
            "none".into(),
        ],
        scopes_supported: inner.scopes_supported.to_vec(),
        response_types_supported: if code_flow { vec!["code".into()] } else { Vec::new() },
        authorization_endpoint: code_flow.then(|| format!("{issuer}/authorize")),
        registration_endpoint: inner.registration.enabled.then(|| format!("{issuer}/register")),
        code_challenge_methods_supported: if code_flow { vec!["S256".into()] } else { Vec::new() },
        client_id_metadata_document_supported: false,
        issuer,
    }
}

pub async fn as_metadata(State(state): State<IssuerState>) -> impl IntoResponse {
    Json(document(&state))
}
