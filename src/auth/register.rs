//! Who the client is to an authorization server, for the authorization-code login: a
//! pre-registered client_id (config or flag), a client ID metadata document URL used as the
//! client_id (when the server says it supports them), or an RFC 7591 dynamic registration.
//!
//! A dynamic registration is stored per (authorization server, MCP server) in
//! `STATE/auth/clients.json` (0600) and reused on the next login, so the authorization
//! server sees one registration per machine, not one per run. The loopback redirect URI it
//! registers names the port of that first login; later logins bind the same port when it is
//! free (authorization servers that follow RFC 8252 §7.3 accept any port anyway) and register
//! again only when they cannot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::authcode::LoginError;
use super::client_auth::{ClientAuthenticator, Method};
use super::jwks::read_bounded;
use crate::types::scope::ScopeSet;
use crate::types::secret::Secret;

/// A client the authorization server knows.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Registered {
    pub client_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::types::secret::serialize_exposed"
    )]
    pub client_secret: Option<Secret<String>>,
    /// RFC 7591 `token_endpoint_auth_method`: `none` for a public client.
    #[serde(default = "none_method")]
    pub auth_method: String,
    /// The redirect URI registered (dynamic registrations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
}

fn none_method() -> String {
    "none".into()
}

/// The token endpoint authentication to register with: `none` (a public client, what a
/// login needs) when the server lists it or lists nothing, else the first secret-based
/// method it lists.
fn registration_method(supported: &[String]) -> &'static str {
    let lists = |m: &str| supported.iter().any(|s| s == m);
    if supported.is_empty() || lists("none") {
        "none"
    } else if lists("client_secret_basic") {
        "client_secret_basic"
    } else if lists("client_secret_post") {
        "client_secret_post"
    } else {
        "none"
    }
}

impl Registered {
    /// A public client known by `client_id` alone.
    pub fn public(client_id: &str) -> Self {
        Self { client_id: client_id.to_string(), client_secret: None, auth_method: none_method(), redirect_uri: None }
    }

    /// How this client authenticates at the authorization server's token and revocation
    /// endpoints: the way it registered (Basic or the post form with its secret; a public
    /// client's id alone). The sending is `client_auth`'s.
    pub fn authenticator(&self) -> ClientAuthenticator {
        match &self.client_secret {
            Some(secret) => {
                let method = if self.auth_method == "client_secret_basic" {
                    Method::ClientSecretBasic
                } else {
                    Method::ClientSecretPost
                };
                ClientAuthenticator::with_secret(&self.client_id, secret.clone(), method)
            }
            None => ClientAuthenticator::public(&self.client_id),
        }
    }

    /// The registration stored in `path` (`STATE/auth/clients.json`) for the authorization
    /// server `issuer` and the MCP server `resource` when it is `client_id`'s, else a public
    /// client of that id — what a login's refresh or `warden logout`'s revocation sends as.
    pub fn stored_for(path: &Path, issuer: &str, resource: &str, client_id: &str) -> Self {
        read_stored(path, issuer, resource)
            .filter(|r| r.client_id == client_id)
            .unwrap_or_else(|| Self::public(client_id))
    }
}

/// The key a registration is stored under: one per (authorization server, MCP server).
fn stored_key(issuer: &str, resource: &str) -> String {
    format!("{issuer} {resource}")
}

fn read_stored(path: &Path, issuer: &str, resource: &str) -> Option<Registered> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut all: BTreeMap<String, Registered> = serde_json::from_str(&text).ok()?;
    all.remove(&stored_key(issuer, resource))
}

/// How the client comes to be known, in the order a login tries them.
pub enum Identity {
    /// A client_id (and maybe secret) registered by hand.
    Preregistered(Registered),
    /// A client ID metadata document URL, used as the client_id.
    MetadataDocument(String),
    /// RFC 7591 at this endpoint, stored in the state dir. `methods` is the authorization
    /// server's `token_endpoint_auth_methods_supported`: a public client (`none`) unless it
    /// does not list that.
    Dynamic { endpoint: String, methods: Vec<String> },
    /// Nothing works: the error says what to configure.
    Unavailable,
}

pub struct Registrar {
    http: reqwest::Client,
    issuer: String,
    server: String,
    identity: Identity,
    path: PathBuf,
    current: Mutex<Option<Registered>>,
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<Secret<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

impl Registrar {
    pub fn new(http: reqwest::Client, issuer: &str, server: &str, identity: Identity, path: PathBuf) -> Self {
        let current = match &identity {
            Identity::Preregistered(r) => Some(r.clone()),
            Identity::MetadataDocument(url) => Some(Registered::public(url)),
            _ => None,
        };
        Self {
            http,
            issuer: issuer.to_string(),
            server: server.to_string(),
            identity,
            path,
            current: Mutex::new(current),
        }
    }

    fn key(&self) -> String {
        stored_key(&self.issuer, &self.server)
    }

    fn stored(&self) -> Option<Registered> {
        read_stored(&self.path, &self.issuer, &self.server)
    }

    fn store(&self, r: &Registered) -> Result<(), String> {
        let mut all: BTreeMap<String, Registered> =
            std::fs::read_to_string(&self.path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        all.insert(self.key(), r.clone());
        let json = serde_json::to_vec_pretty(&all).map_err(|e| e.to_string())?;
        crate::paths::write_private(&self.path, &json).map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// The registration endpoint, for the events.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.identity {
            Identity::Dynamic { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }

    /// The loopback port a stored registration's redirect URI names.
    pub fn preferred_port(&self) -> Option<u16> {
        let r = self.current.lock().clone().or_else(|| self.stored())?;
        reqwest::Url::parse(r.redirect_uri.as_deref()?).ok()?.port()
    }

    /// The registration behind `client_id` (for a refresh): the current or stored one, else
    /// a public client of that id.
    pub fn known(&self, client_id: &str) -> Registered {
        self.current
            .lock()
            .clone()
            .or_else(|| self.stored())
            .filter(|r| r.client_id == client_id)
            .unwrap_or_else(|| Registered::public(client_id))
    }

    /// The client to log in as with `redirect_uri`, and how it came to be (for the event).
    pub async fn client(
        &self,
        redirect_uri: &str,
        scopes: Option<&ScopeSet>,
    ) -> Result<(Registered, String), LoginError> {
        let (endpoint, methods) = match &self.identity {
            Identity::Preregistered(r) => return Ok((r.clone(), format!("pre-registered client {}", r.client_id))),
            Identity::MetadataDocument(url) => {
                return Ok((Registered::public(url), format!("client ID metadata document {url}")));
            }
            Identity::Unavailable => {
                return Err(LoginError::Registration {
                    url: self.issuer.clone(),
                    reason: "it offers no registration endpoint and no client_id is configured; register a client with its administrator and pass --client-id (or set client_id in [client])".into(),
                });
            }
            Identity::Dynamic { endpoint, methods } => (endpoint, methods),
        };
        let usable = |r: &Registered| r.redirect_uri.as_deref().is_none_or(|u| u == redirect_uri);
        if let Some(r) = self.current.lock().clone().filter(usable) {
            return Ok((r.clone(), format!("client {} (registered earlier)", r.client_id)));
        }
        if let Some(r) = self.stored().filter(usable) {
            *self.current.lock() = Some(r.clone());
            return Ok((r.clone(), format!("reused the stored registration, client {}", r.client_id)));
        }
        let mut body = serde_json::json!({
            "client_name": "Warden",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": registration_method(methods),
        });
        if let Some(s) = scopes.filter(|s| !s.is_empty()) {
            body["scope"] = serde_json::Value::String(s.to_string());
        }
        let fail = |reason: String| LoginError::Registration { url: endpoint.clone(), reason };
        let resp = self
            .http
            .post(endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| fail(crate::security::tls::NetFailure::of(&e).to_string()))?;
        let status = resp.status();
        let bytes = read_bounded(resp, 64 * 1024).await.map_err(fail)?;
        if !status.is_success() {
            let said = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(fail(format!("HTTP {}{said}", status.as_u16())));
        }
        let parsed: RegistrationResponse =
            serde_json::from_slice(&bytes).map_err(|e| fail(format!("not an RFC 7591 response: {e}")))?;
        let method = parsed.token_endpoint_auth_method.unwrap_or_else(|| {
            if parsed.client_secret.is_some() { "client_secret_basic".into() } else { none_method() }
        });
        let r = Registered {
            client_id: parsed.client_id,
            client_secret: parsed.client_secret,
            auth_method: method,
            redirect_uri: Some(redirect_uri.to_string()),
        };
        if let Err(e) = self.store(&r) {
            tracing::warn!(server = %self.server, error = %e, "the client registration could not be stored; the next run registers again");
        }
        *self.current.lock() = Some(r.clone());
        Ok((r.clone(), format!("registered as client {}", r.client_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_as_a_public_client_unless_the_server_only_takes_secrets() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(registration_method(&[]), "none");
        assert_eq!(registration_method(&v(&["client_secret_basic", "none"])), "none");
        assert_eq!(registration_method(&v(&["client_secret_post", "client_secret_basic"])), "client_secret_basic");
        assert_eq!(registration_method(&v(&["client_secret_post"])), "client_secret_post");
    }
}
