//! RFC 9068 access-token verification (with RFC 8725's JWT BCP checks).
//!
//! A `VerifiedClaims` can only be produced here, after every check passed: `alg` on the
//! allow-list (RS256 only), `typ` = `at+jwt`, no `crit`, a `kid` found in the issuer's
//! JWKS, a valid signature, exact `iss`, `aud` containing this resource, `exp`/`nbf` with
//! a small leeway, and the required claims present. There is no unverified path.
//!
//! Verified claims are cached by SHA-256 of the token until the token's `exp`, so a client
//! reusing its token costs one hash and one map lookup per request, not an RSA verify.

use std::collections::HashMap;
use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::jwks::{JwksCache, JwksError};
use crate::types::event::TokenCheck;
use crate::types::scope::ScopeSet;
use crate::types::secret::{Fingerprint, sha256};
use crate::types::time::{self, SharedClock};

/// Largest token we are willing to parse.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
const CACHE_CAPACITY: usize = 16_384;

/// Why a token was rejected. Each variant names the one check that failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("token is not a well-formed JWS compact serialization")]
    Malformed,
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token algorithm {0:?} is not allowed (only RS256)")]
    AlgorithmNotAllowed(String),
    #[error("token type {0:?} is not an access token (typ must be at+jwt)")]
    WrongType(String),
    #[error("token has critical header parameters we do not understand")]
    CriticalHeader,
    #[error("token header has no kid")]
    MissingKid,
    #[error(transparent)]
    Keys(#[from] JwksError),
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf in the future)")]
    NotYetValid,
    #[error("token issuer does not match the trusted issuer")]
    WrongIssuer,
    #[error("token audience does not include this resource")]
    WrongAudience,
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(String),
    #[error("token claim `{0}` has the wrong type or format")]
    BadClaim(String),
}

impl VerifyError {
    /// Short machine-readable reason, for logs and the audit trail.
    pub fn code(&self) -> TokenCheck {
        match self {
            Self::Malformed => TokenCheck::Malformed,
            Self::TooLarge => TokenCheck::TooLarge,
            Self::AlgorithmNotAllowed(_) => TokenCheck::AlgNotAllowed,
            Self::WrongType(_) => TokenCheck::WrongTyp,
            Self::CriticalHeader => TokenCheck::CritHeader,
            Self::MissingKid => TokenCheck::MissingKid,
            Self::Keys(JwksError::UnknownKid(_)) => TokenCheck::UnknownKid,
            Self::Keys(_) => TokenCheck::JwksUnavailable,
            Self::BadSignature => TokenCheck::BadSignature,
            Self::Expired => TokenCheck::Expired,
            Self::NotYetValid => TokenCheck::NotYetValid,
            Self::WrongIssuer => TokenCheck::WrongIssuer,
            Self::WrongAudience => TokenCheck::WrongAudience,
            Self::MissingClaim(_) => TokenCheck::MissingClaim,
            Self::BadClaim(_) => TokenCheck::BadClaim,
        }
    }
}

/// `aud` may be a string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Audience::One(a) => a == resource,
            Audience::Many(v) => v.iter().any(|a| a == resource),
        }
    }

    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(v) => v.clone(),
        }
    }
}

/// Claims as they arrive; optional where RFC 9068 requires them, so a missing one gets a
/// precise error instead of a generic parse failure.
#[derive(Debug, Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// The claims of a token that passed every check. Only `Verifier` can construct it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub scope: ScopeSet,
    pub iat: u64,
    pub nbf: Option<u64>,
    pub exp: u64,
    pub jti: String,
    pub kid: String,
    pub alg: String,
    /// Fingerprint of the token these claims came from (never the token itself).
    pub fingerprint: Fingerprint,
    _proof: Proof,
}

/// Private field type: code outside this module cannot build a `VerifiedClaims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Proof;

impl VerifiedClaims {
    pub fn seconds_to_expiry(&self, now: u64) -> i64 {
        self.exp as i64 - now as i64
    }
}

/// What a verifier trusts.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Exact expected `iss`.
    pub issuer: String,
    /// This resource's URI; `aud` must contain it.
    pub audience: String,
    pub leeway_secs: u64,
}

pub struct Verifier {
    config: VerifierConfig,
    jwks: Arc<JwksCache>,
    validation: Validation,
    cache: RwLock<HashMap<[u8; 32], Arc<VerifiedClaims>>>,
    /// `exp`/`nbf` are checked here against this clock, not by jsonwebtoken against the
    /// host's, so tests can move time instead of sleeping.
    clock: SharedClock,
}

impl Verifier {
    pub fn new(config: VerifierConfig, jwks: Arc<JwksCache>) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.leeway = config.leeway_secs;
        // Checked below with our clock (presence of `exp` is still required).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self { config, jwks, validation, cache: RwLock::new(HashMap::new()), clock: time::system() }
    }

    /// This verifier, reading time from `clock` (a session's clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    /// Verifies `token`, answering from the cache when this exact token was verified before
    /// and has not expired since.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedClaims>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        let key = sha256(token.as_bytes());
        let now = self.clock.now_epoch();
        let hit = self.cache.read().get(&key).cloned();
        if let Some(hit) = hit {
            if hit.exp + self.config.leeway_secs <= now {
                return Err(VerifyError::Expired);
            }
            // The key that signed it must still be usable: once the key set is past its
            // hard age (the issuer unreachable too long) or the key was withdrawn, a token
            // verified earlier fails closed like a new one would. A fresh set answers from
            // memory, so this costs a map lookup.
            self.jwks.key(&hit.kid).await?;
            return Ok(hit);
        }
        let claims = Arc::new(self.verify_uncached(token, now).await?);
        self.remember(key, claims.clone(), now);
        Ok(claims)
    }

    fn remember(&self, key: [u8; 32], claims: Arc<VerifiedClaims>, now: u64) {
        let mut cache = self.cache.write();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| c.exp + self.config.leeway_secs > now);
            if cache.len() >= CACHE_CAPACITY {
                // Still full of live tokens: start over rather than grow without bound.
                cache.clear();
            }
        }
        cache.insert(key, claims);
    }

    async fn verify_uncached(&self, token: &str, now: u64) -> Result<VerifiedClaims, VerifyError> {
        let header = parse_header(token)?;
        let kid = header.kid.ok_or(VerifyError::MissingKid)?;
        let decoding_key = self.jwks.key(&kid).await?;
        let data = jsonwebtoken::decode::<RawClaims>(token, &decoding_key, &self.validation).map_err(|e| {
            match e.kind() {
                // Name the claim (a string `exp`, a numeric `iss`), not just "the payload".
                ErrorKind::Json(_) => VerifyError::BadClaim(mistyped_claim(token).unwrap_or("payload").into()),
                _ => map_jwt_error(e),
            }
        })?;
        let c = data.claims;
        let leeway = self.config.leeway_secs;
        if c.exp.is_some_and(|exp| exp.saturating_add(leeway) < now) {
            return Err(VerifyError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        let need = |v: Option<String>, name: &str| v.ok_or_else(|| VerifyError::MissingClaim(name.into()));
        let scope =
            ScopeSet::parse(c.scope.as_deref().unwrap_or("")).map_err(|_| VerifyError::BadClaim("scope".into()))?;
        Ok(VerifiedClaims {
            iss: need(c.iss, "iss")?,
            sub: need(c.sub, "sub")?,
            aud: c.aud.ok_or_else(|| VerifyError::MissingClaim("aud".into()))?,
            client_id: need(c.client_id, "client_id")?,
            scope,
            iat: c.iat.ok_or_else(|| VerifyError::MissingClaim("iat".into()))?,
            nbf: c.nbf,
            exp: c.exp.ok_or_else(|| VerifyError::MissingClaim("exp".into()))?,
            jti: need(c.jti, "jti")?,
            kid,
            alg: "RS256".into(),
            fingerprint: Fingerprint::of(token.as_bytes()),
            _proof: Proof,
        })
    }
}

struct CheckedHeader {
    kid: Option<String>,
}

/// Header checks done on the raw JSON, before any key lookup, so that `alg: none`, HS256
/// and friends are named precisely and never reach the signature code.
fn parse_header(token: &str) -> Result<CheckedHeader, VerifyError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| VerifyError::Malformed)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)?;
    let alg = header.get("alg").and_then(|v| v.as_str()).unwrap_or("");
    if alg != "RS256" {
        return Err(VerifyError::AlgorithmNotAllowed(alg.chars().take(16).collect()));
    }
    let typ = header.get("typ").and_then(|v| v.as_str()).unwrap_or("");
    // RFC 9068 §2.1: "at+jwt"; the media-type form "application/at+jwt" is equivalent.
    let typ_ok = typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt");
    if !typ_ok {
        return Err(VerifyError::WrongType(typ.chars().take(32).collect()));
    }
    if header.contains_key("crit") {
        return Err(VerifyError::CriticalHeader);
    }
    let kid = header.get("kid").and_then(|v| v.as_str()).map(str::to_string);
    Ok(CheckedHeader { kid })
}

/// The first registered claim whose JSON type is not the one RFC 7519 / RFC 9068 give it
/// (only called once the signature has verified and the claims did not deserialize).
fn mistyped_claim(token: &str) -> Option<&'static str> {
    use serde_json::Value;
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&payload).ok()?;
    let ok = |name: &str, v: &Value| match name {
        "aud" => v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        "exp" | "iat" | "nbf" => v.as_u64().is_some(),
        _ => v.is_string(),
    };
    ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope"]
        .into_iter()
        .find(|name| claims.get(*name).is_some_and(|v| !v.is_null() && !ok(name, v)))
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> VerifyError {
    match e.kind() {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => VerifyError::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => VerifyError::BadClaim(c.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            VerifyError::AlgorithmNotAllowed("?".into())
        }
        ErrorKind::Json(_) => VerifyError::BadClaim("payload".into()),
        _ => VerifyError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn header_checks_name_the_failure() {
        let tok = |h: &str| format!("{}.{}.sig", b64(h), b64("{}"));
        assert_eq!(
            parse_header(&tok(r#"{"alg":"none","typ":"at+jwt"}"#)).err(),
            Some(VerifyError::AlgorithmNotAllowed("none".into()))
        );
        assert_eq!(
            parse_header(&tok(r#"{"alg":"HS256","typ":"at+jwt"}"#)).err(),
            Some(VerifyError::AlgorithmNotAllowed("HS256".into()))
        );
        assert_eq!(
            parse_header(&tok(r#"{"alg":"RS256","typ":"JWT","kid":"k"}"#)).err(),
            Some(VerifyError::WrongType("JWT".into()))
        );
        assert_eq!(
            parse_header(&tok(r#"{"alg":"RS256","typ":"at+jwt","crit":["x"]}"#)).err(),
            Some(VerifyError::CriticalHeader)
        );
        assert!(parse_header(&tok(r#"{"alg":"RS256","typ":"application/at+jwt","kid":"k"}"#)).is_ok());
        assert_eq!(parse_header("a.b").err(), Some(VerifyError::Malformed));
        assert_eq!(parse_header("!!.b.c").err(), Some(VerifyError::Malformed));
    }

    #[test]
    fn audience_accepts_string_or_array() {
        let one: Audience = serde_json::from_str(r#""https://r""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["x","https://r"]"#).unwrap();
        assert!(one.contains("https://r") && many.contains("https://r"));
        assert!(!one.contains("https://r/"));
    }
}
