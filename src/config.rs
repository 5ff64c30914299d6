//! Warden's configuration: one TOML schema whose sections are all optional, so the same
//! file type serves `warden serve` (`[issuer]`, `[service]`, `[tls]`) and the client
//! commands (`[client]`, `[[servers]]`, written by `serve` as `STATE/client.toml`).
//!
//! Lookup order: `--config PATH`, then `$XDG_CONFIG_HOME/warden/warden.toml`, then
//! `./config/warden.toml`, then the defaults compiled into the binary (the repository's
//! `config/warden.toml`), so `warden serve` works from any directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::scopes::ScopeSet;

/// The repository's default config, compiled in.
pub const DEFAULT_CONFIG: &str = include_str!("../config/warden.toml");
/// Demo client secrets (plaintext) for writing `client.toml`; the issuer never reads them.
pub const DEMO_SECRETS: &str = include_str!("../config/demo-secrets.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub issuer: IssuerConfig,
    #[serde(default)]
    pub service: ServiceConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    pub addr: SocketAddr,
    /// Public issuer URL; defaults to `https://<bound addr>`.
    pub url: Option<String>,
    pub token_ttl_secs: u64,
    /// Resource URIs (RFC 8707) tokens may be issued for, besides the local service.
    pub resources: Vec<String>,
    /// How many previous signing keys stay in the JWKS after a rotation.
    pub keep_previous_keys: usize,
    pub clients: Vec<ClientRegistration>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            url: None,
            token_ttl_secs: 900,
            resources: Vec::new(),
            keep_previous_keys: 1,
            clients: Vec::new(),
        }
    }
}

/// A registered OAuth client. Only the hash of its secret is ever stored.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    pub client_id: String,
    pub secret_hash: String,
    pub allowed_scopes: ScopeSet,
    /// Scopes granted when a request names none; defaults to all allowed scopes.
    #[serde(default)]
    pub default_scopes: Option<ScopeSet>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub addr: SocketAddr,
    /// Public resource URI of `/mcp`; defaults to `https://<bound addr>/mcp`.
    pub resource: Option<String>,
    /// Trust this authorization server instead of the embedded one.
    pub issuer: Option<String>,
    /// Explicit JWKS URL (skips RFC 8414 discovery of the trusted issuer).
    pub jwks_uri: Option<String>,
    /// CA bundle for reaching an external issuer over TLS.
    pub issuer_ca_file: Option<PathBuf>,
    pub leeway_secs: u64,
    pub rate_limit: RateLimitConfig,
    pub max_body_bytes: usize,
    /// SQLite database; defaults to `STATE/service.db`.
    pub database: Option<PathBuf>,
    /// Extra `Host` header values accepted (DNS-rebinding protection allows loopback only).
    pub allowed_hosts: Vec<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8001)),
            resource: None,
            issuer: None,
            jwks_uri: None,
            issuer_ca_file: None,
            leeway_secs: crate::auth::verify::DEFAULT_LEEWAY_SECS,
            rate_limit: RateLimitConfig::default(),
            max_body_bytes: 64 * 1024,
            database: None,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Token bucket per client: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain (PEM) to serve instead of the generated dev certificate.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// Client credentials and trust settings (consumed by the client commands).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<ScopeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub name: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl Config {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Loads the config by the lookup order in the module docs.
    pub fn load(explicit: Option<&Path>) -> Result<(Self, PathBuf), ConfigError> {
        let candidates = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => {
                let mut v = Vec::new();
                if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
                    v.push(PathBuf::from(x).join("warden/warden.toml"));
                }
                v.push(PathBuf::from("config/warden.toml"));
                v
            }
        };
        for path in &candidates {
            if explicit.is_none() && !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            return Ok((Self::parse(&text, path)?, path.clone()));
        }
        let builtin = PathBuf::from("<built-in config/warden.toml>");
        Ok((Self::parse(DEFAULT_CONFIG, &builtin)?, builtin))
    }
}

/// The plaintext demo secret for `client_id`, if the demo file has one.
pub fn demo_secret(client_id: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Demo {
        clients: std::collections::BTreeMap<String, String>,
    }
    let demo: Demo = toml::from_str(DEMO_SECRETS).ok()?;
    demo.clients.get(client_id).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_config_parses_and_registers_the_three_clients() {
        let c = Config::parse(DEFAULT_CONFIG, Path::new("builtin")).unwrap();
        let ids: Vec<_> = c
            .issuer
            .clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect();
        assert_eq!(ids, ["support-agent", "readonly-agent", "auditor"]);
        let support = &c.issuer.clients[0];
        assert_eq!(
            support.allowed_scopes.to_string(),
            "account:calculate customer:read ticket:create"
        );
    }

    #[test]
    fn demo_secrets_match_the_registered_hashes() {
        let c = Config::parse(DEFAULT_CONFIG, Path::new("builtin")).unwrap();
        for reg in &c.issuer.clients {
            let secret = demo_secret(&reg.client_id).expect("demo secret");
            let hash = crate::security::hash::SecretHash::parse(&reg.secret_hash).unwrap();
            assert!(hash.verify(&secret), "{}", reg.client_id);
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let err =
            Config::parse("[issuer]\ntoken_tll_secs = 5\n", Path::new("my.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("my.toml") && msg.contains("token_tll_secs"),
            "{msg}"
        );
    }
}
