//! The client side of OAuth 2.0 token revocation (RFC 7009): one POST of a token to the
//! authorization server's `revocation_endpoint`, authenticated as the client it was issued
//! to (through `client_auth`, as at the token endpoint), so the server can end the sign-in
//! instead of leaving a refresh token valid until it expires. `warden logout` uses it before
//! forgetting a login.
//!
//! RFC 7009 §2.2: a 200 is the only success, and it also means "that token was already
//! invalid"; anything else is a failure whose cause is reported (never the token).

use super::client_auth::{ClientAuthError, ClientAuthenticator};
use super::jwks::read_bounded;
use crate::security::tls::NetFailure;
use crate::types::secret::Secret;

/// The most of an error answer that is read (its JSON names the error).
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Which kind of token is revoked (RFC 7009 §2.1 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    RefreshToken,
    AccessToken,
}

impl TokenTypeHint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshToken => "refresh_token",
            Self::AccessToken => "access_token",
        }
    }
}

/// Why a revocation did not succeed: the cause alone (the caller names the endpoint).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    #[error("{0}")]
    ClientAuth(#[from] ClientAuthError),
    /// No HTTPS client could be set up (the config or a CA file it names is unusable).
    #[error("{0}")]
    NoClient(String),
    #[error("could not reach it: {0}")]
    Unreachable(NetFailure),
    #[error("HTTP {status}{}", said.as_deref().map(|s| format!(" {s}")).unwrap_or_default())]
    Refused {
        status: u16,
        /// The OAuth error and its description, when the answer was RFC 6749 JSON.
        said: Option<String>,
    },
}

/// POSTs `token` to `endpoint` with `hint`, authenticated by `auth`. `http` carries the
/// timeout (a logout should not hang on an authorization server that does not answer).
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &str,
    token: &Secret<String>,
    hint: TokenTypeHint,
    auth: &ClientAuthenticator,
) -> Result<(), RevokeError> {
    let form = vec![("token", token.expose().clone()), ("token_type_hint", hint.as_str().to_string())];
    let req = auth.apply(http.post(endpoint), form, crate::types::time::now_epoch())?;
    let resp = req.send().await.map_err(|e| RevokeError::Unreachable(NetFailure::of(&e)))?;
    let status = resp.status();
    if status == reqwest::StatusCode::OK {
        return Ok(());
    }
    let body = read_bounded(resp, MAX_ERROR_BODY).await.unwrap_or_default();
    let said = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
        let error = v.get("error")?.as_str()?.to_string();
        let description = v.get("error_description").and_then(|d| d.as_str());
        Some(match description {
            Some(d) => format!("{error} ({})", crate::security::untrusted::for_log(d)),
            None => error,
        })
    });
    Err(RevokeError::Refused { status: status.as_u16(), said })
}
