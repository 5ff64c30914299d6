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

pub fn document(state: &IssuerState) -> AuthorizationServerMetadata {
    let issuer = state.inner.issuer.clone();
    AuthorizationServerMetadata {
        token_endpoint: format!("{issuer}/token"),
        jwks_uri: Some(format!("{issuer}/jwks.json")),
        introspection_endpoint: None,
        grant_types_supported: vec!["client_credentials".into()],
        token_endpoint_auth_methods_supported: vec!["client_secret_basic".into(), "client_secret_post".into()],
        scopes_supported: state.inner.scopes_supported.to_vec(),
        response_types_supported: Vec::new(),
        // Issue 14 adds the code flow and dynamic registration to the embedded issuer.
        authorization_endpoint: None,
        registration_endpoint: None,
        code_challenge_methods_supported: Vec::new(),
        client_id_metadata_document_supported: false,
        issuer,
    }
}

pub async fn as_metadata(State(state): State<IssuerState>) -> impl IntoResponse {
    Json(document(&state))
}
