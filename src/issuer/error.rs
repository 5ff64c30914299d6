//! RFC 6749 §5.2 error responses. The client sees the error code and a description that
//! tells it what to fix; nothing internal leaks.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2: the requested resource is unknown or not allowed.
    InvalidTarget,
    ServerError,
    /// `/authorize`: the user (or the issuer on their behalf) said no.
    AccessDenied,
    /// `/authorize`: only `response_type=code` is served.
    UnsupportedResponseType,
    /// `/register` (RFC 7591 §3.2.2): a metadata value is invalid.
    InvalidClientMetadata,
    /// `/register` (RFC 7591 §3.2.2): a redirect URI is not acceptable.
    InvalidRedirectUri,
    /// Throttled or overloaded: try again after `Retry-After` (RFC 6749 §4.1.2.1's code,
    /// the one OAuth clients know to mean "later").
    TemporarilyUnavailable,
    /// `/revoke` (RFC 7009 §2.2.1): this kind of token cannot be revoked here.
    UnsupportedTokenType,
}

impl OAuthErrorCode {
    /// The RFC 6749 wire name (`invalid_client`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::ServerError => "server_error",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnsupportedTokenType => "unsupported_token_type",
        }
    }
}

#[derive(Debug)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    /// Set when the client tried HTTP Basic: a 401 must then carry a Basic challenge.
    pub basic_challenge: bool,
    /// With `TemporarilyUnavailable`: the status (429 throttled, 503 overloaded) and the
    /// `Retry-After` seconds.
    pub retry: Option<(StatusCode, u64)>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into(), basic_challenge: false, retry: None }
    }

    /// The refusal as the audit trail records it: `code: description`.
    pub fn audit_detail(&self) -> String {
        format!("{}: {}", self.code.as_str(), self.description)
    }

    /// A `temporarily_unavailable` answer with `status` and `Retry-After: secs`.
    pub fn retry_later(status: StatusCode, secs: u64, description: impl Into<String>) -> Self {
        Self { retry: Some((status, secs)), ..Self::new(OAuthErrorCode::TemporarilyUnavailable, description) }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: OAuthErrorCode,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match (self.code, self.retry) {
            (_, Some((status, _))) => status,
            (OAuthErrorCode::InvalidClient, _) => StatusCode::UNAUTHORIZED,
            (OAuthErrorCode::ServerError, _) => StatusCode::INTERNAL_SERVER_ERROR,
            (OAuthErrorCode::AccessDenied, _) => StatusCode::FORBIDDEN,
            (OAuthErrorCode::TemporarilyUnavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut resp = (status, Json(Body { error: self.code, error_description: &self.description })).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some((_, secs)) = self.retry {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge { "Basic realm=\"warden\"" } else { "Bearer realm=\"warden\"" };
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        resp
    }
}
