//! Turning what went wrong on the wire into a `Failure` the rest of Warden can act on:
//! 401, 403 `insufficient_scope` (with the scopes from `WWW-Authenticate`), 429 (with
//! `Retry-After`), timeout, connection failure, TLS failure, protocol error.

use std::time::Duration;

use rmcp::ServiceError;
use rmcp::transport::streamable_http_client::StreamableHttpError;

use crate::security::tls::NetFailure;
pub use crate::security::tls::describe_reqwest;
use crate::types::event::FailureClass;
use crate::types::scope::ScopeSet;

/// A classified transport-level failure of one MCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Unauthorized {
        www_authenticate: String,
    },
    InsufficientScope {
        www_authenticate: String,
        scopes: ScopeSet,
    },
    RateLimited {
        retry_after: Option<Duration>,
    },
    Timeout,
    /// Could not connect at all: the request certainly did not reach the server.
    ConnectFailed(String),
    /// The connection broke after the request may have been sent: outcome unknown.
    ConnectionLost(String),
    Tls(String),
    Protocol(String),
}

impl Failure {
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Unauthorized { .. } => FailureClass::Unauthorized,
            Self::InsufficientScope { .. } => FailureClass::Protocol,
            Self::RateLimited { .. } => FailureClass::RateLimited,
            Self::Timeout => FailureClass::Timeout,
            Self::ConnectFailed(_) | Self::ConnectionLost(_) => FailureClass::Connection,
            Self::Tls(_) => FailureClass::Tls,
            Self::Protocol(_) => FailureClass::Protocol,
        }
    }

    /// Could the server have run the tool? Then replaying a non-idempotent call could run
    /// it twice. 401/403/429, refused connections and TLS failures are all answered before
    /// any tool runs.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Self::Timeout | Self::ConnectionLost(_) | Self::Protocol(_))
    }

    pub fn message(&self) -> String {
        match self {
            Self::Unauthorized { www_authenticate } => {
                format!("server answered 401 Unauthorized ({www_authenticate})")
            }
            Self::InsufficientScope { scopes, .. } => {
                format!("server answered 403 insufficient_scope (needs {scopes})")
            }
            Self::RateLimited { retry_after: Some(d) } => {
                format!("server answered 429 Too Many Requests (retry after {} s)", d.as_secs())
            }
            Self::RateLimited { retry_after: None } => "server answered 429 Too Many Requests".into(),
            Self::Timeout => "the request timed out".into(),
            Self::ConnectFailed(m) => format!("could not connect: {m}"),
            Self::ConnectionLost(m) => format!("connection lost: {m}"),
            Self::Tls(m) => format!("TLS failure: {m}"),
            Self::Protocol(m) => format!("protocol error: {m}"),
        }
    }
}

/// Classifies an error from rmcp's client.
pub fn classify(e: &ServiceError) -> Failure {
    match e {
        ServiceError::TransportSend(d) => match d.error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
            Some(http) => classify_http(http),
            None => Failure::ConnectionLost(d.error.to_string()),
        },
        ServiceError::Timeout { .. } => Failure::Timeout,
        ServiceError::TransportClosed => Failure::ConnectionLost("the MCP transport closed".into()),
        ServiceError::McpError(err) => Failure::Protocol(format!("{} ({})", err.message, err.code.0)),
        other => Failure::Protocol(other.to_string()),
    }
}

pub fn classify_http(e: &StreamableHttpError<reqwest::Error>) -> Failure {
    match e {
        StreamableHttpError::AuthRequired(a) => {
            Failure::Unauthorized { www_authenticate: a.www_authenticate_header.clone() }
        }
        StreamableHttpError::InsufficientScope(s) => Failure::InsufficientScope {
            scopes: s
                .required_scope
                .as_deref()
                .and_then(|v| ScopeSet::parse(v).ok())
                .or_else(|| challenge_param(&s.www_authenticate_header, "scope").and_then(|v| ScopeSet::parse(&v).ok()))
                .unwrap_or_default(),
            www_authenticate: s.www_authenticate_header.clone(),
        },
        StreamableHttpError::HttpStatus(h) if h.status == 429 => {
            Failure::RateLimited { retry_after: h.retry_after.as_deref().and_then(parse_retry_after) }
        }
        StreamableHttpError::HttpStatus(h) => Failure::Protocol(format!("HTTP {}", h.status)),
        StreamableHttpError::Client(re) => classify_reqwest(re),
        StreamableHttpError::Io(io) => Failure::ConnectionLost(io.to_string()),
        other => Failure::Protocol(other.to_string()),
    }
}

pub fn classify_reqwest(e: &reqwest::Error) -> Failure {
    let failure = NetFailure::of(e);
    if failure.is_tls() {
        return Failure::Tls(failure.to_string());
    }
    if e.is_timeout() || failure == NetFailure::Timeout {
        return Failure::Timeout;
    }
    if e.is_connect() {
        return Failure::ConnectFailed(failure.to_string());
    }
    Failure::ConnectionLost(failure.to_string())
}

/// `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::from_secs((when - now).whole_seconds().max(0) as u64))
}

/// One `name="value"` parameter of a `WWW-Authenticate` challenge (parsed where OAuth
/// discovery, which reads the same challenges, lives).
pub use crate::auth::discovery::challenge_param;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params_are_parsed_with_escapes() {
        let h = r#"Bearer error="insufficient_scope", scope="ticket:create customer:read", resource_metadata="https://x/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(challenge_param(h, "scope").as_deref(), Some("ticket:create customer:read"));
        assert_eq!(
            challenge_param(h, "resource_metadata").as_deref(),
            Some("https://x/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(challenge_param(h, "error").as_deref(), Some("insufficient_scope"));
        assert_eq!(
            challenge_param(r#"Bearer error_description="say \"hi\"""#, "error_description").as_deref(),
            Some("say \"hi\"")
        );
        assert_eq!(challenge_param(h, "realm"), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn only_outcome_unknown_failures_are_ambiguous() {
        assert!(Failure::Timeout.is_ambiguous());
        assert!(Failure::ConnectionLost("reset".into()).is_ambiguous());
        assert!(!Failure::ConnectFailed("refused".into()).is_ambiguous());
        assert!(!Failure::RateLimited { retry_after: None }.is_ambiguous());
        assert!(!Failure::Unauthorized { www_authenticate: String::new() }.is_ambiguous());
    }
}
