//! Enterprise-managed authorization (MCP SEP-990, the IETF identity assertion
//! authorization grant): the user's single sign-on ID token, issued by the enterprise's
//! identity provider, is exchanged at that identity provider for an identity assertion
//! JWT authorization grant (an "ID-JAG", RFC 8693 token exchange), which the MCP server's
//! authorization server takes in the JWT bearer grant (RFC 7523 §2.1) for an access token.
//! No browser and no consent page: the enterprise's policy at its identity provider decides.
//!
//! The ID token is a secret (it is read from an environment variable, never a flag); it goes
//! only to the identity provider's token endpoint, and the ID-JAG only to the authorization
//! server's. Neither is logged or put in an event.

use serde::Deserialize;

use super::client_auth::ClientAuthenticator;
use super::token::{TokenError, TokenResponse, token_endpoint_answer, token_request};
use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// What to do when the identity provider refuses the exchange, whatever its error says.
const REFUSED_HINT: &str = "the identity provider refused to exchange the ID token (expired, for another client, or this resource is not allowed): get a fresh ID token from your single sign-on";

/// Where the identity provider is and who the user is there.
#[derive(Debug, Clone)]
pub struct IdentityAssertion {
    /// The identity provider's token endpoint (token exchange).
    pub idp_token_endpoint: String,
    /// This client's id at the identity provider.
    pub idp_client_id: String,
    /// The user's ID token from the identity provider.
    pub id_token: Secret<String>,
    /// The authorization server's issuer identifier: the ID-JAG's audience.
    pub audience: String,
}

/// RFC 8693 §2.2.1: the fields read from the exchange's answer.
#[derive(Deserialize)]
struct Exchanged {
    access_token: Secret<String>,
    #[serde(default)]
    issued_token_type: Option<String>,
}

impl IdentityAssertion {
    /// The ID-JAG for `resource` (and `scopes`), from the identity provider.
    async fn grant(
        &self,
        http: &reqwest::Client,
        resource: &str,
        scopes: Option<&ScopeSet>,
    ) -> Result<Secret<String>, TokenError> {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE.to_string()),
            ("requested_token_type", ID_JAG.to_string()),
            ("audience", self.audience.clone()),
            ("resource", resource.to_string()),
            ("subject_token", self.id_token.expose().clone()),
            ("subject_token_type", ID_TOKEN.to_string()),
            ("client_id", self.idp_client_id.clone()),
        ];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.to_string()));
        }
        let endpoint = &self.idp_token_endpoint;
        let body = token_endpoint_answer(http.post(endpoint).form(&form), endpoint, |_| REFUSED_HINT).await?;
        let exchanged: Exchanged = serde_json::from_slice(&body).map_err(|_| TokenError::BadResponse {
            endpoint: endpoint.clone(),
            reason: "not an RFC 8693 token exchange response".into(),
        })?;
        if exchanged.issued_token_type.as_deref().is_some_and(|t| t != ID_JAG) {
            return Err(TokenError::BadResponse {
                endpoint: endpoint.clone(),
                reason: format!(
                    "the identity provider issued a {} instead of an identity assertion grant (ID-JAG)",
                    exchanged.issued_token_type.unwrap_or_default()
                ),
            });
        }
        Ok(exchanged.access_token)
    }

    /// An access token from the authorization server at `token_endpoint` for the ID-JAG the
    /// identity provider gives for `resource`; the client authenticates as `auth` says.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        token_endpoint: &str,
        auth: &ClientAuthenticator,
        resource: &str,
        scopes: Option<&ScopeSet>,
        now: u64,
    ) -> Result<TokenResponse, TokenError> {
        let jag = self.grant(http, resource, scopes).await?;
        let mut form = vec![("grant_type", JWT_BEARER.to_string()), ("assertion", jag.expose().clone())];
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            form.push(("scope", s.to_string()));
        }
        let req = auth
            .apply(http.post(token_endpoint), form, now)
            .map_err(|cause| TokenError::ClientAuth { endpoint: token_endpoint.to_string(), cause })?;
        token_request(req, token_endpoint).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    /// An identity provider on loopback answering every token exchange with `answer`, and an
    /// authorization server that records the grant it gets.
    async fn idp(answer: (u16, serde_json::Value)) -> String {
        let app = axum::Router::new().route(
            "/token",
            post(move || {
                let (status, body) = answer.clone();
                async move { (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(body)) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    fn assertion(base: &str) -> IdentityAssertion {
        IdentityAssertion {
            idp_token_endpoint: format!("{base}/token"),
            idp_client_id: "idp-client".into(),
            id_token: Secret::new("id-token-secret".into()),
            audience: "http://as.example".into(),
        }
    }

    #[tokio::test]
    async fn a_refused_exchange_names_the_identity_provider_and_what_to_do() {
        let base =
            idp((400, serde_json::json!({"error": "invalid_grant", "error_description": "ID token expired"}))).await;
        let http = reqwest::Client::new();
        let auth = ClientAuthenticator::public("c");
        let err = assertion(&base).token(&http, "http://127.0.0.1:9/token", &auth, "http://mcp", None, 0).await;
        let msg = err.err().expect("refused").to_string();
        assert_eq!(
            msg,
            format!(
                "token endpoint {base}/token returned invalid_grant (ID token expired): the identity provider refused to exchange the ID token (expired, for another client, or this resource is not allowed): get a fresh ID token from your single sign-on"
            )
        );
        assert!(!msg.contains("id-token-secret"));
    }

    #[tokio::test]
    async fn an_exchange_that_issues_something_else_than_an_id_jag_is_not_used() {
        let base = idp((
            200,
            serde_json::json!({"access_token": "x", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}),
        ))
        .await;
        let http = reqwest::Client::new();
        let auth = ClientAuthenticator::public("c");
        let err = assertion(&base).token(&http, "http://127.0.0.1:9/token", &auth, "http://mcp", None, 0).await;
        assert_eq!(
            err.err().expect("not an ID-JAG").to_string(),
            format!(
                "token endpoint {base}/token sent an unusable response: the identity provider issued a urn:ietf:params:oauth:token-type:access_token instead of an identity assertion grant (ID-JAG)"
            )
        );
    }
}
