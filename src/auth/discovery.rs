//! Discovery documents: RFC 8414 authorization-server metadata and RFC 9728
//! protected-resource metadata. The issuer and service serve them; clients (and the
//! service, when trusting an external issuer) read them.

use serde::{Deserialize, Serialize};

use super::jwks::{JwksError, read_bounded};
use crate::security::tls::NetFailure;

/// RFC 8414 §2 (the fields Warden uses; unknown fields are ignored when reading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    /// Optional in RFC 8414: an authorization server that issues opaque tokens has no keys
    /// to publish, and its clients use its tokens without verifying them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 7662 token introspection (RFC 8414 §2 via RFC 7662 §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
}

/// RFC 9728 §2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub bearer_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// RFC 8414 §3: the metadata URL for an issuer inserts the well-known segment between the
/// host and any path component; `openid_fallback` gives the OpenID Connect location that
/// many providers (Keycloak, Auth0) serve instead.
pub fn as_metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = split_origin(trimmed);
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{trimmed}/.well-known/openid-configuration"),
    ]
}

/// RFC 9728 §3.1: same insertion rule for protected resources.
pub fn resource_metadata_url(resource: &str) -> String {
    let (origin, path) = split_origin(resource.trim_end_matches('/'));
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

/// Fetches the AS metadata for `issuer`, trying the RFC 8414 location first and the
/// OpenID one second, and insists that the document names the same issuer (RFC 8414 §3.3).
pub async fn fetch_as_metadata(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, JwksError> {
    let mut last = None;
    for url in as_metadata_urls(issuer) {
        let fail = |reason: String| JwksError::Fetch { url: url.clone(), reason };
        let resp = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                last = Some(fail(format!("HTTP {}", r.status())));
                continue;
            }
            Err(e) => {
                let failure = crate::security::tls::NetFailure::of(&e);
                // Both locations are on the same host: if one cannot be reached, neither can.
                if matches!(failure, NetFailure::Refused | NetFailure::Timeout) || failure.is_tls() {
                    return Err(JwksError::Unreachable { url: issuer.to_string(), failure });
                }
                last = Some(JwksError::Unreachable { url: url.clone(), failure });
                continue;
            }
        };
        let body = read_bounded(resp, 256 * 1024).await.map_err(fail)?;
        let meta: AuthorizationServerMetadata = serde_json::from_slice(&body)
            .map_err(|e| JwksError::Invalid { url: url.clone(), reason: e.to_string() })?;
        if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(JwksError::Invalid {
                url,
                reason: format!("metadata names issuer {:?}, expected {issuer:?}", meta.issuer),
            });
        }
        return Ok(meta);
    }
    // Both locations failed; the last one's failure says why (it names its URL).
    Err(last.unwrap_or_else(|| JwksError::Fetch { url: issuer.to_string(), reason: "no metadata URL".into() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8414 makes `jwks_uri` optional (an AS with opaque tokens has no keys to publish).
    #[test]
    fn metadata_without_jwks_uri_is_read() {
        let m: AuthorizationServerMetadata = serde_json::from_str(
            r#"{"issuer":"http://127.0.0.1:9","token_endpoint":"http://127.0.0.1:9/token","introspection_endpoint":"http://127.0.0.1:9/introspect"}"#,
        )
        .unwrap();
        assert_eq!(m.jwks_uri, None);
        assert_eq!(m.introspection_endpoint.as_deref(), Some("http://127.0.0.1:9/introspect"));
    }

    #[test]
    fn well_known_urls_insert_before_the_path() {
        assert_eq!(
            as_metadata_urls("https://as.example/realms/x"),
            vec![
                "https://as.example/.well-known/oauth-authorization-server/realms/x",
                "https://as.example/realms/x/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            as_metadata_urls("https://127.0.0.1:8443")[0],
            "https://127.0.0.1:8443/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            resource_metadata_url("https://127.0.0.1:8001/mcp"),
            "https://127.0.0.1:8001/.well-known/oauth-protected-resource/mcp"
        );
    }
}
