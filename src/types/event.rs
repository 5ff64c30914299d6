//! The one vocabulary everything reports in. The token manager, secure tools and the agent
//! emit `Event`s; the console, the audit log, the monitor, session recording and `--json`
//! output all consume the same stream. Events carry fingerprints, digests and scope sets —
//! never a token, secret or raw credential.
//!
//! One account per tool call: `ToolCall` when it begins (arguments, digest, required
//! scopes), `ToolRateLimited`/`ToolRetry` while it is retried, then exactly one
//! `ToolResult` with the structured outcome. The agent's observation text is derived from
//! that outcome; nobody parses text back into structure.
//!
//! The bus stamps events with its clock (`types::time::Clock`), so tests that move a
//! manual clock move every consumer's notion of "now" with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::scope::ScopeSet;
use super::secret::Fingerprint;
use super::time::{SharedClock, system};
use super::tool::{Confirm, ToolHints, ToolName};

/// One thing that happened, stamped with when, and (when inside an agent run) where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Process-unique, increasing: anomalies cite events by id as evidence.
    pub id: u64,
    /// Milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Which side refused a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialSide {
    /// Our own pre-check refused before any network traffic.
    Client,
    /// The server answered 403 `insufficient_scope`.
    Server,
}

impl DenialSide {
    /// Who decided, in a few words (trace, feed, audit tail).
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client pre-check",
            Self::Server => "server 403",
        }
    }

    /// Who decided, as a sentence (the agent's observation, `warden call`).
    pub fn explain(self) -> &'static str {
        match self {
            Self::Client => "refused by the client's scope pre-check before sending",
            Self::Server => "the server answered 403 insufficient_scope",
        }
    }
}

/// How a tool call ended when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The tool ran and reported an error (`isError: true`).
    ToolError,
    /// Arguments failed local schema validation; nothing was sent.
    InvalidArguments,
    /// 401 even after one refresh, or no usable token.
    Unauthorized,
    RateLimited,
    Timeout,
    Connection,
    Tls,
    /// A JSON-RPC error or anything else the server returned that we cannot use.
    Protocol,
    /// The tool is blocked (unknown, or its manifest changed and awaits approval).
    Blocked,
    /// No usable access token: the authorization server could not be reached (nothing
    /// was sent to the MCP server).
    TokenUnavailable,
    /// The connection broke or timed out after the request may have reached the server,
    /// and the tool has side effects: it may or may not have run. Not replayed blindly.
    OutcomeUnknown,
    /// The call could not be recorded in the audit trail, so it was not sent.
    AuditUnavailable,
    /// The call needed the operator's confirmation and did not get it (declined, no
    /// `--yes`, or the console closed): nothing was sent.
    NotConfirmed,
}

impl FailureClass {
    /// A short human label.
    pub fn label(self) -> &'static str {
        match self {
            Self::ToolError => "tool error",
            Self::InvalidArguments => "invalid arguments",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate limited",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::Tls => "TLS",
            Self::Protocol => "protocol",
            Self::Blocked => "blocked",
            Self::TokenUnavailable => "no token",
            Self::OutcomeUnknown => "outcome unknown",
            Self::AuditUnavailable => "audit unavailable",
            Self::NotConfirmed => "not confirmed",
        }
    }
}

/// A snapshot of the access token's state, for display. Never contains the token.
///
/// What is known about a token depends on how the client learnt it (`state`): verified
/// locally against the issuer's keys, told by the authorization server (introspection), or
/// nothing beyond the token response (opaque: the server decides). Only a verified token
/// has issuer, subject, kid and alg; the types leave no room to show them otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TokenInfoRecord")]
pub struct TokenInfo {
    pub fingerprint: Fingerprint,
    /// Scopes asked for (`None`: the client's defaults).
    pub requested: Option<ScopeSet>,
    /// The scopes the client acts on (its scope pre-check); where they come from is in
    /// `state`. Empty when nothing is known (opaque, no `scope`, client defaults asked).
    pub granted: ScopeSet,
    /// When the client got it (`iat` for a verified token).
    pub issued_at: u64,
    /// `exp`, or the time of issue plus `expires_in`; `None`: the server gave no lifetime.
    pub expires_at: Option<u64>,
    pub refresh_count: u32,
    pub state: TokenState,
}

impl TokenInfo {
    /// Seconds left (negative: expired); `None` when no lifetime is known.
    pub fn seconds_to_expiry(&self, now: u64) -> Option<i64> {
        self.expires_at.map(|at| at as i64 - now as i64)
    }

    /// The verified claims, if the token was verified locally.
    pub fn verified(&self) -> Option<&VerifiedToken> {
        match &self.state {
            TokenState::Verified(v) => Some(v),
            _ => None,
        }
    }

    /// Scopes of `required` the client knows it lacks; empty when its scopes are unknown
    /// (the server decides).
    pub fn missing(&self, required: &ScopeSet) -> ScopeSet {
        match self.state {
            TokenState::Opaque { scopes: ScopeOrigin::Unknown, .. } => ScopeSet::new(),
            _ => self.granted.missing(required),
        }
    }
}

/// `TokenInfo` as recordings and audit logs hold it: the current shape, or the one written
/// before tokens had states (every token then was a verified JWT), so older session
/// recordings still replay.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenInfoRecord {
    Current {
        fingerprint: Fingerprint,
        requested: Option<ScopeSet>,
        granted: ScopeSet,
        issued_at: u64,
        expires_at: Option<u64>,
        refresh_count: u32,
        state: TokenState,
    },
    Verified {
        issuer: String,
        subject: String,
        client_id: String,
        audience: Vec<String>,
        kid: String,
        alg: String,
        fingerprint: Fingerprint,
        requested: Option<ScopeSet>,
        granted: ScopeSet,
        issued_at: u64,
        expires_at: u64,
        jti: String,
        refresh_count: u32,
    },
}

impl From<TokenInfoRecord> for TokenInfo {
    fn from(r: TokenInfoRecord) -> Self {
        match r {
            TokenInfoRecord::Current {
                fingerprint,
                requested,
                granted,
                issued_at,
                expires_at,
                refresh_count,
                state,
            } => TokenInfo { fingerprint, requested, granted, issued_at, expires_at, refresh_count, state },
            TokenInfoRecord::Verified {
                issuer,
                subject,
                client_id,
                audience,
                kid,
                alg,
                fingerprint,
                requested,
                granted,
                issued_at,
                expires_at,
                jti,
                refresh_count,
            } => TokenInfo {
                fingerprint,
                requested,
                granted,
                issued_at,
                expires_at: Some(expires_at),
                refresh_count,
                state: TokenState::Verified(VerifiedToken { issuer, subject, client_id, audience, kid, alg, jti }),
            },
        }
    }
}

/// How much the client knows about the token it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenState {
    /// A JWT that passed every RFC 9068 check against the issuer's published keys.
    Verified(VerifiedToken),
    /// Not verifiable here (not a JWT, or the issuer publishes no keys): used as it is, and
    /// the resource server decides what it allows.
    Opaque {
        why: OpaqueReason,
        scopes: ScopeOrigin,
        /// Introspection was tried and not allowed (401/403), or failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        introspection: Option<String>,
    },
    /// Described by the authorization server's introspection endpoint (RFC 7662); not
    /// verified locally.
    Introspected(Introspection),
}

impl TokenState {
    /// How the client knows what it knows, in a few words.
    pub fn label(&self) -> &'static str {
        match self {
            TokenState::Verified(_) => "verified",
            TokenState::Opaque { .. } => "opaque: the server decides",
            TokenState::Introspected(_) => "introspected by the authorization server",
        }
    }
}

/// The claims of a locally verified token, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: String,
    pub client_id: String,
    pub audience: Vec<String>,
    pub kid: String,
    pub alg: String,
    pub jti: String,
}

/// Why a token is opaque to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpaqueReason {
    /// The token is not a JWS compact serialization.
    NotJwt,
    /// The authorization server publishes no JWKS (`jwks_uri` absent from its metadata).
    NoJwks,
}

/// Where an opaque token's scopes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeOrigin {
    /// The token response's `scope` (RFC 6749 §5.1).
    TokenResponse,
    /// No `scope` in the response: the scopes asked for, not confirmed by the server.
    RequestedNotConfirmed,
    /// No `scope` in the response and none asked for: unknown.
    Unknown,
}

/// An RFC 7662 introspection response (the fields Warden shows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshReason {
    /// First token of the session.
    Initial,
    /// Less than the refresh skew left before `exp`.
    Expiring,
    /// The server answered 401 to the current token.
    Unauthorized,
    /// The operator asked for a different scope set.
    Regrant,
    /// A 403 insufficient_scope led to a re-authorization with more scopes.
    StepUp,
}

impl RefreshReason {
    /// Why the token was issued, in a word or two (the token pane's history).
    pub fn label(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Expiring => "expiring",
            Self::Unauthorized => "401",
            Self::Regrant => "regrant",
            Self::StepUp => "step-up",
        }
    }
}

/// The check an access token failed (RFC 9068 / RFC 8725 verification, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenCheck {
    Malformed,
    TooLarge,
    AlgNotAllowed,
    WrongTyp,
    CritHeader,
    MissingKid,
    UnknownKid,
    JwksUnavailable,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
    BadClaim,
}

impl TokenCheck {
    /// The wire name (`expired`, `wrong_audience`, …), as in `error_description`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::WrongTyp => "wrong_typ",
            Self::CritHeader => "crit_header",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::JwksUnavailable => "jwks_unavailable",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::BadClaim => "bad_claim",
        }
    }
}

impl std::fmt::Display for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server decided about one request (its own audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecisionOutcome {
    Allowed,
    Denied,
    InvalidToken,
    RateLimited,
    TokenIssued,
    TokenRefused,
    /// `/authorize` sent an authorization code back to the client.
    CodeIssued,
    /// `/authorize` refused (the OAuth error, or the user's denial, is in `detail`).
    AuthorizationRefused,
    /// `/register` registered a client (RFC 7591).
    ClientRegistered,
    /// `/register` refused (the error is in `detail`).
    RegistrationRefused,
    /// `/revoke` (RFC 7009) revoked a token (a refresh token: its whole sign-in).
    TokenRevoked,
    /// `/revoke` answered 200 and revoked nothing: the token was unknown, already invalid,
    /// or another client's (`detail` says which).
    RevocationIgnored,
    /// `/revoke` refused the request (the OAuth error is in `detail`).
    RevocationRefused,
}

impl DecisionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::InvalidToken => "invalid_token",
            Self::RateLimited => "rate_limited",
            Self::TokenIssued => "token_issued",
            Self::TokenRefused => "token_refused",
            Self::CodeIssued => "code_issued",
            Self::AuthorizationRefused => "authorization_refused",
            Self::ClientRegistered => "client_registered",
            Self::RegistrationRefused => "registration_refused",
            Self::TokenRevoked => "token_revoked",
            Self::RevocationIgnored => "revocation_ignored",
            Self::RevocationRefused => "revocation_refused",
        }
    }
}

/// Why a server decided what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecisionReason {
    /// The token carries every scope the tool needs.
    ScopesPresent,
    InsufficientScope,
    /// The client's token bucket is empty.
    TokenBucketEmpty,
    /// The shared rate limit's database could not be read, so the request was refused.
    RateLimitUnavailable,
    /// The token endpoint issued a token.
    Issued,
    /// The token endpoint refused (the OAuth error is in `detail`).
    TokenRequestRefused,
    /// The revocation endpoint revoked a token.
    Revoked,
    /// The request could not be read exactly (not JSON-RPC, a repeated key, a tool call
    /// without one name, not UTF-8), so it was refused rather than guessed at.
    MalformedRequest,
    /// The access token failed this check.
    #[serde(untagged)]
    Token(TokenCheck),
}

impl std::fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ScopesPresent => f.write_str("scopes present"),
            Self::InsufficientScope => f.write_str("insufficient_scope"),
            Self::TokenBucketEmpty => f.write_str("token bucket empty"),
            Self::RateLimitUnavailable => f.write_str("rate limit unavailable"),
            Self::Issued => f.write_str("issued"),
            Self::TokenRequestRefused => f.write_str("token request refused"),
            Self::Revoked => f.write_str("revoked"),
            Self::MalformedRequest => f.write_str("malformed request"),
            Self::Token(check) => check.fmt(f),
        }
    }
}

/// The monitor's rules, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnomalyRule {
    DenialSpike,
    RepeatedDeniedCall,
    Enumeration,
    UnusualToolSequence,
    PromptInjection,
    ManifestChanged,
    RateLimitBurst,
    TokenTrouble,
}

impl AnomalyRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DenialSpike => "denial_spike",
            Self::RepeatedDeniedCall => "repeated_denied_call",
            Self::Enumeration => "enumeration",
            Self::UnusualToolSequence => "unusual_tool_sequence",
            Self::PromptInjection => "prompt_injection",
            Self::ManifestChanged => "manifest_changed",
            Self::RateLimitBurst => "rate_limit_burst",
            Self::TokenTrouble => "token_trouble",
        }
    }
}

impl std::fmt::Display for AnomalyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a tool call is being sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryReason {
    /// 401: the token was refreshed; one retry.
    Unauthorized,
    /// 429: waiting for `Retry-After`.
    RateLimited,
    /// A timeout or connection failure on a call that is safe to repeat.
    Transient,
    /// 403 insufficient_scope: re-authorized with the union of the grant and the scopes the
    /// server asked for (`--step-up auto`); at most two per call.
    StepUp,
}

/// How one tool call ended: exactly one per call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallOutcome {
    Success {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        structured: Option<serde_json::Value>,
        /// The text content blocks, joined.
        #[serde(default)]
        text: String,
    },
    /// The tool ran and reported a failure.
    ToolError {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        structured: Option<serde_json::Value>,
    },
    Denied {
        side: DenialSide,
        required: ScopeSet,
        granted: ScopeSet,
        missing: ScopeSet,
        /// The server's HTTP status (403) when the server decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        www_authenticate: Option<String>,
    },
    Failed {
        class: FailureClass,
        message: String,
    },
}

impl CallOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success { .. })
    }

    /// The text a tool returned (success text, or the tool error's message).
    pub fn tool_text(&self) -> Option<&str> {
        match self {
            Self::Success { text, .. } => Some(text),
            Self::ToolError { message, .. } => Some(message),
            _ => None,
        }
    }

    /// What this outcome says about the MCP server's availability, for a call that was
    /// sent (attempts > 0): `Some(true)` when the server answered (a result, a tool error,
    /// a 403, 401 or 429, a protocol error), `Some(false)` when it could not be reached or
    /// stopped answering (connection, TLS, timeout, outcome unknown), `None` when nothing
    /// about the server follows (a local refusal, no token, invalid arguments, blocked).
    pub fn server_reached(&self) -> Option<bool> {
        match self {
            Self::Success { .. } | Self::ToolError { .. } => Some(true),
            Self::Denied { side: DenialSide::Server, .. } => Some(true),
            Self::Denied { side: DenialSide::Client, .. } => None,
            Self::Failed { class, .. } => match class {
                FailureClass::Connection | FailureClass::Tls | FailureClass::Timeout | FailureClass::OutcomeUnknown => {
                    Some(false)
                }
                FailureClass::ToolError
                | FailureClass::Unauthorized
                | FailureClass::RateLimited
                | FailureClass::Protocol => Some(true),
                FailureClass::InvalidArguments
                | FailureClass::Blocked
                | FailureClass::TokenUnavailable
                | FailureClass::AuditUnavailable
                | FailureClass::NotConfirmed => None,
            },
        }
    }

    /// The same outcome without what the tool returned (the audit trail records the
    /// decision, not customer data).
    pub fn without_content(&self) -> Self {
        match self {
            Self::Success { .. } => Self::Success { structured: None, text: String::new() },
            Self::ToolError { .. } => Self::ToolError { message: String::new(), structured: None },
            other => other.clone(),
        }
    }
}

/// The steps of an OAuth flow (discovery, then an authorization-code login or a client
/// credentials grant), in the order they usually happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStepKind {
    /// The MCP server answered 401 with a Bearer challenge (what it named: resource
    /// metadata, scope).
    Challenge,
    /// The protected-resource metadata (RFC 9728) was fetched, or looked for and missing.
    ResourceMetadata,
    /// The authorization server's metadata (RFC 8414 / OpenID discovery) was fetched, or
    /// the 2025-03-26 default endpoints were assumed.
    ServerMetadata,
    /// A stored access token (sealed at rest) was used instead of a new login.
    StoredToken,
    /// RFC 7591 dynamic client registration (or a stored registration reused).
    Registration,
    /// The browser (or the headless request) sent to the authorization endpoint.
    AuthorizationRequest,
    /// The authorization server's answer arrived at the loopback redirect URI.
    Redirect,
    /// The code was exchanged at the token endpoint (with the PKCE verifier).
    CodeExchange,
    /// A refresh token was used for a new access token.
    Refresh,
    /// A 403 insufficient_scope asked for more scopes: re-authorization with the union.
    StepUp,
}

impl AuthStepKind {
    /// The step's name as the console and `--json` consumers read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Challenge => "401 challenge",
            Self::ResourceMetadata => "resource metadata",
            Self::ServerMetadata => "server metadata",
            Self::StoredToken => "stored token",
            Self::Registration => "registration",
            Self::AuthorizationRequest => "authorization request",
            Self::Redirect => "redirect",
            Self::CodeExchange => "code exchange",
            Self::Refresh => "refresh",
            Self::StepUp => "step-up",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// `server` (on the three token events) names the MCP server the token is for; absent
    /// in recordings made before there could be several.
    TokenIssued {
        token: TokenInfo,
        reason: RefreshReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// A token from the authorization server failed verification and was not used.
    TokenRejected {
        check: TokenCheck,
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// The token endpoint refused or could not be reached.
    TokenError {
        detail: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// One step of an authorization-code login (registration, authorization request,
    /// redirect, code exchange, refresh, step-up): what was asked where, and how it went.
    /// `url` never carries a secret (no code, no verifier, no token).
    AuthStep {
        server: String,
        /// `stage` in JSON: an event's own `step` is the ReAct step it belongs to.
        #[serde(rename = "stage")]
        step: AuthStepKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        outcome: String,
        /// The step did not go through (failed, refused, declined); `outcome` says why.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        failed: bool,
    },
    ManifestRecorded {
        server: String,
        hash: String,
        tools: Vec<String>,
    },
    /// A tool call begins: one per logical call, however many attempts it takes.
    ToolCall {
        #[serde(flatten)]
        tool: ToolName,
        /// The arguments as the caller gave them (never secrets: the agent wrote them).
        args: serde_json::Value,
        args_digest: String,
        required: ScopeSet,
    },
    /// A call that needed confirmation (the server's `confirm` policy and the tool's hints)
    /// was allowed or declined, and by whom; or a destructive call ran unasked because the
    /// policy is `never` (`by: policy`). Between the `ToolCall` and its `ToolResult`; a
    /// declined call's result is `not_confirmed` and nothing was sent.
    ToolConfirmation {
        #[serde(flatten)]
        tool: ToolName,
        allowed: bool,
        by: super::confirm::DecidedBy,
        policy: Confirm,
    },
    /// The server answered 429 (the call retries or gives up; its `ToolResult` says which).
    ToolRateLimited {
        #[serde(flatten)]
        tool: ToolName,
        retry_after_ms: u64,
        attempt: u32,
    },
    /// The call is sent again.
    ToolRetry {
        #[serde(flatten)]
        tool: ToolName,
        attempt: u32,
        reason: RetryReason,
        detail: String,
        delay_ms: u64,
    },
    /// How the call ended: exactly one per `ToolCall`.
    ToolResult {
        #[serde(flatten)]
        tool: ToolName,
        #[serde(flatten)]
        outcome: CallOutcome,
        attempts: u32,
        latency_ms: f64,
        #[serde(default)]
        audit: CallAudit,
    },
    /// An agent run began.
    RunStarted {
        request: String,
        model: String,
        /// The tool names the agent sees.
        tools: Vec<String>,
    },
    Thought {
        text: String,
    },
    /// One call to the language model (a step's prediction, its JSON fallback, or the
    /// extract step), after it returned: how long it took and the tokens it used (absent
    /// when the provider does not say). Never the prompt or the completion.
    LmCall {
        /// The model as the provider names it (`gpt-4o-mini`, `offline-planner`).
        model: String,
        /// `openai`, `anthropic`, `ollama`, `offline`, …
        provider: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_tokens: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_tokens: Option<u64>,
        latency_ms: f64,
        /// The error when the call failed (the same words the run shows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The agent named a tool that does not exist, or arguments that fail its schema;
    /// nothing was called.
    InvalidAction {
        tool: String,
        args: serde_json::Value,
        reason: String,
    },
    /// The agent decided it has what it needs.
    Finish,
    FinalAnswer {
        response: String,
    },
    RunFinished {
        status: RunStatus,
        steps: u32,
        elapsed_ms: f64,
    },
    /// An optimization moved on (`phase`: bootstrap, evaluate before/after, a candidate).
    OptimizeProgress {
        phase: String,
        done: u64,
        total: u64,
    },
    /// An optimization ended: the before/after table, or why it stopped (`error`).
    OptimizeFinished {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary: Option<Box<super::optimize::OptimizeSummary>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The agent could not go on (LM failure, unparseable output after the fallback).
    AgentError {
        message: String,
    },
    /// The monitor saw something an operator should look at.
    Anomaly {
        rule: AnomalyRule,
        severity: AnomalySeverity,
        message: String,
        evidence: Vec<u64>,
    },
    /// A decision of a server (bearer guard or token endpoint): the server's own audit trail.
    ServiceDecision {
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        outcome: DecisionOutcome,
        reason: DecisionReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<Fingerprint>,
        #[serde(default, skip_serializing_if = "ScopeSet::is_empty")]
        missing: ScopeSet,
    },
    /// Requests without a usable token from one peer, counted over an interval instead of
    /// recorded one by one (so a flood of garbage tokens cannot fill the disk). `peer` is an
    /// IP address, or `other` for peers beyond the tracked-peer cap.
    DeniedUnauthenticated {
        peer: String,
        count: u64,
        first_ms: u64,
        last_ms: u64,
        /// Why, by verification failure code (`expired`, `bad_signature`, …), with counts.
        reasons: std::collections::BTreeMap<String, u64>,
    },
    /// The audit log opened a new segment for a reason worth recording (crash repair).
    AuditSegment {
        reason: String,
    },
    /// A console session began: what a replay needs to draw the status bar and the
    /// tool/scope matrix, which no other event carries (written first in a recording).
    SessionStarted {
        model: String,
        /// Server names, in the order the console lists them.
        servers: Vec<String>,
        tools: Vec<ToolRequirement>,
        /// How each server is reached and authenticated (absent in older recordings).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        details: Vec<ServerSummary>,
    },
    /// The session's health probe found an MCP server unreachable (`up: false`) or
    /// reachable again (`up: true`); only changes are reported. `detail` says what was
    /// tried and, when down, what to check.
    ServerHealth {
        server: String,
        up: bool,
        detail: String,
    },
    /// A line a stdio server wrote to its stderr (escaped, cut at a bounded length, and
    /// bounded in number per process). Shown in the console's server log; not audited.
    ServerStderr {
        server: String,
        line: String,
    },
}

/// How the client reaches and authenticates to one MCP server, for display (the console's
/// per-server token view, and a replay of it). Never a secret: static headers appear by
/// name and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSummary {
    pub name: String,
    /// `http` or `stdio`.
    pub transport: String,
    /// The URL, or a stdio server's command line.
    pub endpoint: String,
    /// `oauth`, `headers` or `none`.
    pub auth: String,
    /// Static headers sent (`auth = "headers"`): name and value fingerprint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, Fingerprint)>,
}

impl ServerSummary {
    /// A streamable-HTTP server with this auth mode and no static headers.
    pub fn http(name: &str, url: &str, auth: &str) -> Self {
        Self {
            name: name.into(),
            transport: "http".into(),
            endpoint: url.into(),
            auth: auth.into(),
            headers: Vec::new(),
        }
    }
}

/// A tool and the scopes its server says it needs (for [`EventKind::SessionStarted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRequirement {
    #[serde(flatten)]
    pub tool: ToolName,
    pub required: ScopeSet,
    /// The tool's annotation hints (recordings made before they were kept read as
    /// unannotated).
    #[serde(default)]
    pub hints: ToolHints,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalySeverity {
    Low,
    Medium,
    High,
}

/// What the audit trail needs about a tool call: the argument digest (not the arguments),
/// required vs granted scopes and the token's fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallAudit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    #[serde(default)]
    pub required: ScopeSet,
    #[serde(default)]
    pub granted: ScopeSet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// The MCP request the call went out as (noted for traced calls: OpenTelemetry export on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpExchange>,
}

/// What the wire said about one `tools/call`: the JSON-RPC id of its last attempt, the MCP
/// session it went on (stateful servers only) and the protocol version the session
/// negotiated. Lets the client's record name the request the server's trail recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpExchange {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
}

/// What a tool step produced, as the agent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    Ok,
    ToolError,
    Denied,
    Failed,
    /// The LM named a tool that does not exist or gave arguments that fail its schema.
    Invalid,
    Finish,
}

impl ObservationKind {
    /// The kind of step a call outcome makes.
    pub fn of(outcome: &CallOutcome) -> Self {
        match outcome {
            CallOutcome::Success { .. } => Self::Ok,
            CallOutcome::ToolError { .. } => Self::ToolError,
            CallOutcome::Denied { .. } => Self::Denied,
            CallOutcome::Failed { .. } => Self::Failed,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ok,
    Denied,
    Failed,
    Refused,
    Cancelled,
    /// The language model could not be used (no key, key rejected, unreachable, timed
    /// out): the agent never decided anything, so the run says nothing about the request.
    Error,
}

impl RunStatus {
    /// How the operator reads it. `Refused` is any run that used no tool: a decline, but
    /// also a greeting answered or a question asked back, so it is not shown as a failure.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Failed => "failed",
            Self::Refused => "answered without tools",
            Self::Cancelled => "cancelled",
            Self::Error => "model error",
        }
    }

    /// ✓ done, ○ no tool used, ✗ anything that went wrong.
    pub fn glyph(self) -> &'static str {
        match self {
            Self::Ok => "✓",
            Self::Refused => "○",
            _ => "✗",
        }
    }
}

/// Where events go: every subscriber gets every event. Subscribers are bounded channels;
/// a subscriber that falls behind loses events and the loss is counted, so a slow
/// consumer can never stall the agent. (The audit log will not rely on this path.)
#[derive(Clone, Default)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

/// A synchronous sink that sees every event before any subscriber does (the audit trail:
/// a record must be durable before the result it describes is shown).
pub trait Journal: Send + Sync {
    /// Records `event`; an error means it is not recorded and the action it describes must
    /// not go ahead (the audit trail's `on_failure = "refuse"`).
    fn record(&self, event: &Event) -> Result<(), JournalError>;
}

/// A journal could not record an event. The message says what failed and what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JournalError {
    message: String,
}

impl JournalError {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

struct BusInner {
    clock: SharedClock,
    journals: parking_lot::RwLock<Vec<Arc<dyn Journal>>>,
    watchers: parking_lot::RwLock<Vec<Arc<dyn Journal>>>,
    next_id: AtomicU64,
    dropped: AtomicU64,
    subscribers: Mutex<Vec<tokio::sync::mpsc::Sender<Event>>>,
    recorded: Mutex<Option<Vec<Event>>>,
}

impl Default for BusInner {
    fn default() -> Self {
        Self {
            clock: system(),
            journals: Default::default(),
            watchers: Default::default(),
            next_id: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            recorded: Mutex::new(None),
        }
    }
}

/// A weak handle to a bus.
#[derive(Clone)]
pub struct WeakBus(std::sync::Weak<BusInner>);

impl WeakBus {
    pub fn upgrade(&self) -> Option<EventBus> {
        self.0.upgrade().map(|inner| EventBus { inner })
    }
}

/// Run context stamped on events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub run_id: Option<String>,
    pub step: Option<u32>,
}

impl EventBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bus that also keeps every event in memory (CLI `--json`, tests).
    pub fn recording() -> Self {
        let bus = Self::default();
        *bus.inner.recorded.lock() = Some(Vec::new());
        bus
    }

    /// This bus, stamping events with `clock` instead of the host's (tests; must be set
    /// before the bus is shared).
    pub fn with_clock(self, clock: SharedClock) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                inner.clock = clock;
                Self { inner: Arc::new(inner) }
            }
            // Already shared: build a fresh bus with the same recording mode.
            Err(inner) => {
                let recording = inner.recorded.lock().is_some();
                let bus = Self { inner: Arc::new(BusInner { clock, ..BusInner::default() }) };
                if recording {
                    *bus.inner.recorded.lock() = Some(Vec::new());
                }
                bus
            }
        }
    }

    /// The session's clock: everything built on this bus reads time here.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Adds a synchronous observer that records each event before anyone sees it (the audit
    /// log). No lock is held while journals run.
    pub fn add_journal(&self, journal: Arc<dyn Journal>) {
        self.inner.journals.write().push(journal);
    }

    /// Adds an observer that sees each event once every subscriber has it (the monitor).
    /// What it emits in response (an anomaly) therefore reaches subscribers and recordings
    /// after the event it is about: run as a journal, the anomaly overtook its evidence, and
    /// the console could not show what the evidence was. It gates nothing: its result is
    /// not an audit failure.
    pub fn add_watcher(&self, watcher: Arc<dyn Journal>) {
        self.inner.watchers.write().push(watcher);
    }

    /// A handle that does not keep the bus alive (for observers that emit into it).
    pub fn downgrade(&self) -> WeakBus {
        WeakBus(Arc::downgrade(&self.inner))
    }

    pub fn subscribe(&self, capacity: usize) -> tokio::sync::mpsc::Receiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        self.inner.subscribers.lock().push(tx);
        rx
    }

    /// Sends an event to every journal and subscriber. A journal that cannot record it
    /// reports that itself; use [`EventBus::emit_recorded`] when the caller must act on it.
    pub fn emit(&self, scope: &Scope, kind: EventKind) -> Event {
        self.dispatch(scope, kind).0
    }

    /// Like `emit`, but says whether every journal recorded the event: the audit trail
    /// refuses (by default) when it cannot write, and the caller must then not carry out the
    /// action the event describes (fail closed). Subscribers see the event either way.
    pub fn emit_recorded(&self, scope: &Scope, kind: EventKind) -> Result<Event, JournalError> {
        match self.dispatch(scope, kind) {
            (event, None) => Ok(event),
            (_, Some(e)) => Err(e),
        }
    }

    /// Sends an event dispatched earlier, unchanged (its id and time as they were), to the
    /// subscribers only: journals and watchers saw it the first time. For a frontend that
    /// subscribed after the fact (the console, after connecting logged in).
    pub fn resend(&self, event: &Event) {
        self.to_subscribers(event);
    }

    /// Offers `event` to every subscriber: a full queue counts as dropped (the subscriber
    /// stays), a closed one is removed.
    fn to_subscribers(&self, event: &Event) {
        let mut subs = self.inner.subscribers.lock();
        subs.retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    fn dispatch(&self, scope: &Scope, kind: EventKind) -> (Event, Option<JournalError>) {
        let event = Event {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms: self.inner.clock.now_ms(),
            run_id: scope.run_id.clone(),
            step: scope.step,
            kind,
        };
        let journals = self.inner.journals.read().clone();
        let mut failed = None;
        for j in journals {
            if let Err(e) = j.record(&event) {
                failed.get_or_insert(e);
            }
        }
        self.to_subscribers(&event);
        if let Some(rec) = self.inner.recorded.lock().as_mut() {
            rec.push(event.clone());
        }
        let watchers = self.inner.watchers.read().clone();
        for w in watchers {
            // A watcher only reacts (by emitting); nothing waits on whether it could.
            let _ = w.record(&event);
        }
        (event, failed)
    }

    /// Events kept by a `recording()` bus so far.
    pub fn recorded(&self) -> Vec<Event> {
        self.inner.recorded.lock().clone().unwrap_or_default()
    }

    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording made before tokens had states still replays: its token was verified.
    #[test]
    fn token_info_reads_the_shape_written_before_token_states() {
        let legacy = r#"{"issuer":"https://as","subject":"agent","client_id":"agent","audience":["https://rs/mcp"],"kid":"k1","alg":"RS256","fingerprint":"sha256:0123456789ab","requested":null,"granted":["customer:read"],"issued_at":10,"expires_at":910,"jti":"j","verified":true,"refresh_count":2}"#;
        let t: TokenInfo = serde_json::from_str(legacy).unwrap();
        assert_eq!(t.expires_at, Some(910));
        assert_eq!(t.verified().map(|v| (v.kid.as_str(), v.issuer.as_str())), Some(("k1", "https://as")));
        // And the current shape round-trips.
        let again: TokenInfo = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(again, t);
        let opaque = TokenInfo {
            state: TokenState::Opaque { why: OpaqueReason::NoJwks, scopes: ScopeOrigin::Unknown, introspection: None },
            expires_at: None,
            ..t
        };
        let again: TokenInfo = serde_json::from_str(&serde_json::to_string(&opaque).unwrap()).unwrap();
        assert_eq!(again, opaque);
    }

    /// A recording made before hints were kept still replays: its tools read as
    /// unannotated. The confirmation event is flat, like the other tool events.
    #[test]
    fn tool_requirements_without_hints_load_and_confirmations_serialize_flat() {
        let old = r#"{"server":"crm","tool":"get_customer_info","required":["customer:read"]}"#;
        let t: ToolRequirement = serde_json::from_str(old).unwrap();
        assert_eq!((t.hints, t.hints.marker()), (ToolHints::default(), "?"));
        let kind = EventKind::ToolConfirmation {
            tool: ToolName::new("files", "delete_file"),
            allowed: false,
            by: super::super::confirm::DecidedBy::Flag,
            policy: Confirm::Destructive,
        };
        let e = Event { id: 3, at_ms: 1, run_id: None, step: Some(1), kind };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"id":3,"at_ms":1,"step":1,"type":"tool_confirmation","server":"files","tool":"delete_file","allowed":false,"by":"flag","policy":"destructive"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    /// An auth step inside a run's step round-trips: its stage does not collide with the
    /// event's own `step` (a recording with one could not be replayed).
    #[test]
    fn an_auth_step_round_trips_inside_a_run_step() {
        let kind = EventKind::AuthStep {
            server: "files".into(),
            step: AuthStepKind::Challenge,
            url: Some("https://files.example/mcp".into()),
            outcome: "401".into(),
            failed: false,
        };
        let e = Event { id: 4, at_ms: 2, run_id: None, step: Some(2), kind };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"id":4,"at_ms":2,"step":2,"type":"auth_step","server":"files","stage":"challenge","url":"https://files.example/mcp","outcome":"401"}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
    }

    /// Emits a note about every `Thought`, as the monitor emits an anomaly.
    struct Echo(WeakBus);

    impl Journal for Echo {
        fn record(&self, event: &Event) -> Result<(), JournalError> {
            if let (EventKind::Thought { text }, Some(bus)) = (&event.kind, self.0.upgrade()) {
                bus.emit(
                    &Scope::default(),
                    EventKind::FinalAnswer { response: format!("about {} ({text})", event.id) },
                );
            }
            Ok(())
        }
    }

    /// Regression (issue 12, found in the console): the monitor ran as a journal, so its
    /// anomaly reached the console and the recording before the event it was about, and
    /// the feed showed the evidence as "not in the console's memory".
    #[tokio::test]
    async fn what_a_watcher_emits_arrives_after_the_event_it_is_about() {
        let bus = EventBus::recording();
        let mut rx = bus.subscribe(8);
        bus.add_watcher(Arc::new(Echo(bus.downgrade())));
        bus.emit(&Scope::default(), EventKind::Thought { text: "t".into() });
        let (first, second) = (rx.recv().await.unwrap(), rx.recv().await.unwrap());
        assert!(matches!(first.kind, EventKind::Thought { .. }), "{first:?}");
        assert!(matches!(&second.kind, EventKind::FinalAnswer { response } if response == "about 1 (t)"), "{second:?}");
        let ids: Vec<u64> = bus.recorded().iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let bus = EventBus::recording();
        let mut a = bus.subscribe(8);
        let mut b = bus.subscribe(8);
        let scope = Scope { run_id: Some("r1".into()), step: Some(2) };
        bus.emit(&scope, EventKind::TokenError { detail: "x".into(), server: None });
        bus.emit(&Scope::default(), EventKind::TokenError { detail: "y".into(), server: None });
        let (a1, a2) = (a.recv().await.unwrap(), a.recv().await.unwrap());
        assert_eq!((a1.id, a2.id), (1, 2));
        assert_eq!((a1.run_id.as_deref(), a1.step), (Some("r1"), Some(2)));
        assert_eq!(b.recv().await.unwrap(), a1);
        assert_eq!(bus.recorded().len(), 2);
    }

    #[tokio::test]
    async fn a_full_subscriber_loses_events_without_blocking() {
        let bus = EventBus::new();
        let _slow = bus.subscribe(1);
        for _ in 0..3 {
            bus.emit(&Scope::default(), EventKind::TokenError { detail: "x".into(), server: None });
        }
        assert_eq!(bus.dropped(), 2);
    }

    #[test]
    fn serialized_form_is_flat_and_tagged() {
        let e = Event {
            id: 7,
            at_ms: 1,
            run_id: None,
            step: None,
            kind: EventKind::TokenError { detail: "d".into(), server: None },
        };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"id":7,"at_ms":1,"type":"token_error","detail":"d"}"#);
    }
}
