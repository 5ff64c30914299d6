//! Registered OAuth clients and their authentication.
//!
//! Two kinds live in one registry: the clients of the config (`[[issuer.clients]]`,
//! confidential, fixed for the server's life) and the ones registered at `/register`
//! (RFC 7591), kept in `STATE/issuer/registered-clients.json` (0600) so a restart keeps
//! them, at most `max_dynamic` of them. A config client id always wins over a stored one.
//!
//! The registry holds only secret hashes. Authentication always runs one PBKDF2
//! verification, against a dummy hash when the client id is unknown or has no secret (a
//! public client), so response timing does not reveal which client ids exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::config::ClientRegistration;
use crate::paths::write_private;
use crate::security::hash::{HashError, SecretHash};
use crate::types::scope::ScopeSet;

/// How a client authenticates at `/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client (a native app): no secret, PKCE is its proof.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// A grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub allowed_scopes: ScopeSet,
    pub default_scopes: ScopeSet,
    /// Where `/authorize` may send the user back (see [`RegisteredClient::redirect_matches`]).
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub auth_method: AuthMethod,
    /// Whether `auth_method` is the only way this client may authenticate: true for every
    /// dynamically registered client and for a config client that names its method; a
    /// config client that names none may use either secret method (as before methods were
    /// enforced, so existing configs keep working).
    pub auth_method_enforced: bool,
    /// The name shown on the consent page (DCR `client_name`, or the config description).
    pub name: Option<String>,
    /// `None` for a public client.
    secret_hash: Option<SecretHash>,
}

impl RegisteredClient {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// The one method this client must authenticate with, if it registered one.
    pub fn required_method(&self) -> Option<AuthMethod> {
        self.auth_method_enforced.then_some(self.auth_method)
    }

    pub fn may_use(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `uri` is one of the client's redirect URIs: exactly, or, for a registered
    /// `http` loopback URI (`127.0.0.1`, `[::1]`, `localhost`), on any port (RFC 8252 §7.3:
    /// a native app's listener gets whatever port is free).
    pub fn redirect_matches(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri || loopback_equal(r, uri))
    }
}

fn loopback_equal(registered: &str, presented: &str) -> bool {
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else { return false };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback_host(&r)
        && r.host() == p.host()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && p.username().is_empty()
        && p.password().is_none()
}

/// Whether `u`'s host is a loopback address or `localhost`.
pub fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// What `/register` stores for one client (never a plaintext secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    pub allowed_scopes: ScopeSet,
    pub default_scopes: ScopeSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    pub issued_at: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct StoredClients {
    clients: Vec<StoredClient>,
}

pub struct ClientRegistry {
    configured: HashMap<String, RegisteredClient>,
    /// Each dynamic client with the record it is saved as.
    dynamic: RwLock<HashMap<String, (RegisteredClient, StoredClient)>>,
    /// Where dynamic clients are kept; `None`: memory only (unit tests).
    path: Option<PathBuf>,
    max_dynamic: usize,
    dummy: SecretHash,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("client {client_id}: {cause}")]
    Hash { client_id: String, cause: HashError },
    #[error(
        "client {client_id}: token_endpoint_auth_method \"{method}\" is not one a client with a secret can use; use client_secret_basic or client_secret_post (or leave it out to accept either)"
    )]
    Method { client_id: String, method: String },
    #[error("client {client_id}: redirect URI \"{uri}\" must be https, or http on a loopback address")]
    RedirectUri { client_id: String, uri: String },
    #[error(
        "could not read the registered clients {path}: {message} (fix or remove the file; clients then register again)"
    )]
    Read { path: PathBuf, message: String },
    #[error("could not save the registered clients {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("{max} clients are registered already; raise [issuer] max_registered_clients or remove some")]
    Full { max: usize },
}

/// A redirect URI a client may register: absolute, no fragment, https — or plain http
/// only on a loopback host (RFC 8252 §7.3), since anything else would carry the code in
/// the clear.
pub fn redirect_uri_allowed(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else { return false };
    if u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return false;
    }
    match u.scheme() {
        "https" => u.host().is_some(),
        "http" => is_loopback_host(&u),
        _ => false,
    }
}

impl ClientRegistry {
    /// The config's clients, plus the dynamic ones stored in `dir` (if given).
    pub fn open(regs: &[ClientRegistration], dir: Option<&Path>, max_dynamic: usize) -> Result<Self, RegistryError> {
        let mut configured = HashMap::new();
        for r in regs {
            let secret_hash = SecretHash::parse(&r.secret_hash)
                .map_err(|cause| RegistryError::Hash { client_id: r.client_id.clone(), cause })?;
            if let Some(bad) = r.redirect_uris.iter().find(|u| !redirect_uri_allowed(u)) {
                return Err(RegistryError::RedirectUri { client_id: r.client_id.clone(), uri: bad.clone() });
            }
            let default_scopes = r.default_scopes.clone().unwrap_or_else(|| r.allowed_scopes.clone());
            let (auth_method, auth_method_enforced) = match r.token_endpoint_auth_method.as_deref() {
                None => (AuthMethod::ClientSecretBasic, false),
                Some("client_secret_basic") => (AuthMethod::ClientSecretBasic, true),
                Some("client_secret_post") => (AuthMethod::ClientSecretPost, true),
                Some(other) => {
                    return Err(RegistryError::Method { client_id: r.client_id.clone(), method: other.to_string() });
                }
            };
            let mut grant_types = vec![GrantType::ClientCredentials];
            if !r.redirect_uris.is_empty() {
                grant_types.extend([GrantType::AuthorizationCode, GrantType::RefreshToken]);
            }
            configured.insert(
                r.client_id.clone(),
                RegisteredClient {
                    client_id: r.client_id.clone(),
                    allowed_scopes: r.allowed_scopes.clone(),
                    default_scopes,
                    redirect_uris: r.redirect_uris.clone(),
                    grant_types,
                    auth_method,
                    auth_method_enforced,
                    name: (!r.description.is_empty()).then(|| r.description.clone()),
                    secret_hash: Some(secret_hash),
                },
            );
        }
        let path = dir.map(|d| d.join("registered-clients.json"));
        let mut dynamic = HashMap::new();
        if let Some(path) = path.as_ref().filter(|p| p.exists()) {
            let read_err = |message: String| RegistryError::Read { path: path.clone(), message };
            let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
            let stored: StoredClients = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
            for c in stored.clients {
                if configured.contains_key(&c.client_id) {
                    continue;
                }
                let client =
                    Self::from_stored(&c).map_err(|cause| read_err(format!("client {}: {cause}", c.client_id)))?;
                dynamic.insert(c.client_id.clone(), (client, c));
            }
        }
        let dummy = SecretHash::create("warden-dummy-secret", crate::security::hash::DEFAULT_ITERATIONS);
        let registry = Self { configured, dynamic: RwLock::new(dynamic), path, max_dynamic, dummy };
        Ok(registry)
    }

    /// The config's clients only (no dynamic registration).
    pub fn from_config(regs: &[ClientRegistration]) -> Result<Self, RegistryError> {
        Self::open(regs, None, 0)
    }

    fn from_stored(c: &StoredClient) -> Result<RegisteredClient, HashError> {
        let secret_hash = c.secret_hash.as_deref().map(SecretHash::parse).transpose()?;
        Ok(RegisteredClient {
            client_id: c.client_id.clone(),
            allowed_scopes: c.allowed_scopes.clone(),
            default_scopes: c.default_scopes.clone(),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c.grant_types.clone(),
            auth_method: c.token_endpoint_auth_method,
            // RFC 7591 §2: the client registered this method; nothing else is accepted.
            auth_method_enforced: true,
            name: c.client_name.clone(),
            secret_hash,
        })
    }

    /// Adds a dynamically registered client and saves the store; on a write failure the
    /// client is not registered (fail closed: a client that would vanish on restart).
    pub fn register(&self, stored: StoredClient) -> Result<RegisteredClient, RegistryError> {
        let client = Self::from_stored(&stored)
            .map_err(|cause| RegistryError::Hash { client_id: stored.client_id.clone(), cause })?;
        let mut dynamic = self.dynamic.write();
        if dynamic.len() >= self.max_dynamic {
            return Err(RegistryError::Full { max: self.max_dynamic });
        }
        dynamic.insert(stored.client_id.clone(), (client.clone(), stored.clone()));
        if let Some(path) = &self.path {
            let mut all: Vec<StoredClient> = dynamic.values().map(|(_, s)| s.clone()).collect();
            all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
            let json = serde_json::to_vec_pretty(&StoredClients { clients: all }).unwrap_or_default();
            if let Err(cause) = write_private(path, &json) {
                dynamic.remove(&stored.client_id);
                return Err(RegistryError::Write { path: path.clone(), cause });
            }
        }
        Ok(client)
    }

    /// Whether `secret` is `client_id`'s secret. One PBKDF2 verification (milliseconds of
    /// CPU) whatever the answer: async code runs it on the blocking pool, through
    /// `throttle::AuthThrottle`.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> bool {
        match self.get(client_id).and_then(|c| c.secret_hash) {
            Some(hash) => hash.verify(secret),
            None => {
                let _ = self.dummy.verify(secret);
                false
            }
        }
    }

    /// The registered client `client_id`, without checking any secret.
    pub fn get(&self, client_id: &str) -> Option<RegisteredClient> {
        self.configured.get(client_id).cloned().or_else(|| self.dynamic.read().get(client_id).map(|(c, _)| c.clone()))
    }

    /// How many clients are registered (config and dynamic).
    pub fn len(&self) -> usize {
        self.configured.len() + self.dynamic.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most clients there can ever be (the throttle's per-client map cap).
    pub fn capacity(&self) -> usize {
        self.configured.len() + self.max_dynamic
    }

    /// Union of every configured client's allowed scopes (for `scopes_supported`).
    pub fn all_scopes(&self) -> ScopeSet {
        self.configured.values().flat_map(|c| c.allowed_scopes.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(redirects: &[&str]) -> RegisteredClient {
        RegisteredClient {
            client_id: "c".into(),
            allowed_scopes: ScopeSet::new(),
            default_scopes: ScopeSet::new(),
            redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
            grant_types: vec![GrantType::AuthorizationCode],
            auth_method: AuthMethod::None,
            auth_method_enforced: true,
            name: None,
            secret_hash: None,
        }
    }

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_is_loosened() {
        let c = client(&["http://127.0.0.1/callback", "https://app.example/cb"]);
        assert!(c.redirect_matches("http://127.0.0.1:53121/callback"));
        assert!(c.redirect_matches("http://127.0.0.1/callback"));
        assert!(!c.redirect_matches("http://127.0.0.1:53121/other"));
        assert!(!c.redirect_matches("http://localhost:53121/callback"), "host must match");
        assert!(!c.redirect_matches("http://127.0.0.1:1/callback?x=1"));
        assert!(c.redirect_matches("https://app.example/cb"));
        assert!(!c.redirect_matches("https://app.example:8443/cb"), "only loopback gets any port");
        assert!(!c.redirect_matches("https://app.example/cb/"));
    }

    #[test]
    fn a_config_client_enforces_the_method_it_names_and_only_secret_methods_may_be_named() {
        let hash = SecretHash::create("s", 1000).encode();
        let reg = |method: Option<&str>| ClientRegistration {
            client_id: "c".into(),
            secret_hash: hash.clone(),
            allowed_scopes: ScopeSet::new(),
            default_scopes: None,
            description: String::new(),
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: method.map(str::to_string),
        };
        let required =
            |method| ClientRegistry::from_config(&[reg(method)]).unwrap().get("c").unwrap().required_method();
        assert_eq!(required(None), None, "either secret method, as before");
        assert_eq!(required(Some("client_secret_post")), Some(AuthMethod::ClientSecretPost));
        assert_eq!(required(Some("client_secret_basic")), Some(AuthMethod::ClientSecretBasic));
        let err = ClientRegistry::from_config(&[reg(Some("none"))]).err().unwrap().to_string();
        assert_eq!(
            err,
            "client c: token_endpoint_auth_method \"none\" is not one a client with a secret can use; use client_secret_basic or client_secret_post (or leave it out to accept either)"
        );
    }

    #[test]
    fn only_https_or_loopback_http_redirects_may_be_registered() {
        assert!(redirect_uri_allowed("https://app.example/cb"));
        assert!(redirect_uri_allowed("http://localhost/cb"));
        assert!(redirect_uri_allowed("http://[::1]:8080/cb"));
        assert!(!redirect_uri_allowed("http://app.example/cb"));
        assert!(!redirect_uri_allowed("https://app.example/cb#frag"));
        assert!(!redirect_uri_allowed("javascript:alert(1)"));
        assert!(!redirect_uri_allowed("/relative"));
    }
}
