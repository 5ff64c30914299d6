//! Registered OAuth clients and their authentication.
//!
//! The registry holds only secret hashes. Authentication always runs one PBKDF2
//! verification, against a dummy hash when the client id is unknown, so response timing
//! does not reveal which client ids exist.

use std::collections::HashMap;

use crate::config::ClientRegistration;
use crate::security::hash::{HashError, SecretHash};
use crate::types::scope::ScopeSet;

#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    pub allowed_scopes: ScopeSet,
    pub default_scopes: ScopeSet,
    secret_hash: SecretHash,
}

pub struct ClientRegistry {
    clients: HashMap<String, RegisteredClient>,
    dummy: SecretHash,
}

#[derive(Debug, thiserror::Error)]
#[error("client {client_id}: {cause}")]
pub struct RegistryError {
    client_id: String,
    cause: HashError,
}

impl ClientRegistry {
    pub fn from_config(regs: &[ClientRegistration]) -> Result<Self, RegistryError> {
        let mut clients = HashMap::new();
        for r in regs {
            let secret_hash = SecretHash::parse(&r.secret_hash)
                .map_err(|source| RegistryError { client_id: r.client_id.clone(), cause: source })?;
            let default_scopes = r.default_scopes.clone().unwrap_or_else(|| r.allowed_scopes.clone());
            clients.insert(
                r.client_id.clone(),
                RegisteredClient {
                    client_id: r.client_id.clone(),
                    allowed_scopes: r.allowed_scopes.clone(),
                    default_scopes,
                    secret_hash,
                },
            );
        }
        let dummy = SecretHash::create("warden-dummy-secret", crate::security::hash::DEFAULT_ITERATIONS);
        Ok(Self { clients, dummy })
    }

    /// The client if `secret` is its secret; `None` for an unknown id or a wrong secret.
    /// One PBKDF2 verification (milliseconds of CPU): async code runs it on the blocking
    /// pool, through `throttle::AuthThrottle`.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Option<&RegisteredClient> {
        match self.clients.get(client_id) {
            Some(c) if c.secret_hash.verify(secret) => Some(c),
            Some(_) => None,
            None => {
                let _ = self.dummy.verify(secret);
                None
            }
        }
    }

    /// The registered client `client_id`, without checking any secret.
    pub fn get(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    /// How many clients are registered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Union of every client's allowed scopes (for `scopes_supported`).
    pub fn all_scopes(&self) -> ScopeSet {
        self.clients.values().flat_map(|c| c.allowed_scopes.iter().cloned()).collect()
    }
}
