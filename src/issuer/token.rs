//! `POST /token`: the OAuth 2.1 grants — client credentials, authorization code (with
//! PKCE S256) and refresh token.
//!
//! Client authentication by `client_secret_basic` (RFC 6749 §2.3.1: the id and secret are
//! form-urlencoded before base64) or `client_secret_post`, never both; a public client
//! (registered with `none`) names itself with `client_id` in the form and proves nothing
//! but the PKCE verifier, so it may use the code and refresh grants only. A client that
//! registered a method must use exactly it (see `authenticate`; `/revoke` shares it).
//!
//! Client credentials: the requested `scope` must be within the client's allowed scopes;
//! none requested means the client's defaults. Each RFC 8707 `resource` must be a
//! registered resource and becomes the token's `aud`. Authorization code: the code is
//! single-use and bound to the client, `redirect_uri`, PKCE challenge, resource and scope
//! (see `grants`); a replayed code revokes the refresh tokens issued from it. Refresh
//! token: rotated on every use (see `refresh`); `scope` may narrow, never widen. Tokens
//! are RFC 9068 JWTs: `typ: at+jwt`, `kid`, RS256; `sub` is the user for the delegated
//! grants and the client for client credentials.
//!
//! The secret check goes through `throttle::AuthThrottle`: failure budgets per peer and per
//! client (429 `temporarily_unavailable` with `Retry-After`), PBKDF2 on the blocking pool
//! with a bounded queue (503 when full).

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

use super::IssuerState;
use super::clients::{AuthMethod, GrantType, RegisteredClient};
use super::error::{OAuthError, OAuthErrorCode as Code};
use super::grants::Redeem;
use super::refresh::{RefreshError, RefreshGrant};
use super::throttle::Refusal;
use crate::auth::verify::Audience;
use crate::security::untrusted::for_log;
use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// RFC 9068 §2.2 claims.
#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    client_id: &'a str,
    aud: Audience,
    scope: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

/// The parsed form, with RFC 6749 §3.2's "parameters MUST NOT be included more than once"
/// enforced (except `resource`, which RFC 8707 allows to repeat).
pub(super) struct TokenForm {
    pairs: Vec<(String, String)>,
}

impl TokenForm {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !form_type {
            return Err(OAuthError::new(Code::InvalidRequest, "the request must be application/x-www-form-urlencoded"));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::new(Code::InvalidRequest, "the request body is not valid form encoding"))?;
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &pairs {
            if k != "resource" && !seen.insert(k.as_str()) {
                let name = for_log(k);
                return Err(OAuthError::new(Code::InvalidRequest, format!("parameter `{name}` is repeated")));
            }
        }
        Ok(Self { pairs })
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The TCP peer's address, when the server hands handlers `ConnectInfo` (`serve` does);
/// the failure budgets are kept per peer.
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

pub async fn token(State(state): State<IssuerState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    match issue(&state, peer, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(target: "warden::issuer", error = ?e.code, description = %e.description, "token request refused");
            record(&state, "-", e.audit_detail(), None);
            e.into_response()
        }
    }
}

/// A token request's answer before it is recorded and sent.
struct Issued {
    client_id: String,
    subject: String,
    scope: ScopeSet,
    aud: Audience,
    refresh_token: Option<String>,
    /// What the audit record says about how the token came to be.
    how: String,
}

async fn issue(
    state: &IssuerState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form = TokenForm::parse(headers, body)?;
    let grant_type =
        form.get("grant_type").ok_or_else(|| OAuthError::new(Code::InvalidRequest, "missing grant_type"))?;
    let client = authenticate(state, peer, headers, &form).await?;
    let Some(grant) = GrantType::parse(grant_type) else {
        return Err(OAuthError::new(
            Code::UnsupportedGrantType,
            format!(
                "grant_type \"{}\" is not supported; use client_credentials, authorization_code or refresh_token",
                for_log(grant_type)
            ),
        ));
    };
    if !client.may_use(grant) {
        return Err(OAuthError::new(
            Code::UnauthorizedClient,
            format!("client {} is not registered for the {} grant", client.client_id, grant.as_str()),
        ));
    }
    let issued = match grant {
        GrantType::ClientCredentials => Issued {
            scope: granted_scope(&client, form.get("scope"))?,
            aud: audience(state, form.all("resource").collect())?,
            subject: client.client_id.clone(),
            client_id: client.client_id.clone(),
            refresh_token: None,
            how: "client credentials".into(),
        },
        GrantType::AuthorizationCode => exchange_code(state, &client, &form)?,
        GrantType::RefreshToken => refresh(state, &client, &form)?,
    };
    let (access_token, ttl) = sign(state, &issued)?;
    let fingerprint = Fingerprint::of(access_token.as_bytes());
    let scope = &issued.scope;
    // Fail closed: a token whose issuance cannot be recorded is not handed out.
    state
        .inner
        .decisions
        .emit_recorded(
            &crate::types::event::Scope::default(),
            crate::types::event::EventKind::ServiceDecision {
                client_id: client.client_id.clone(),
                tool: None,
                outcome: crate::types::event::DecisionOutcome::TokenIssued,
                reason: crate::types::event::DecisionReason::Issued,
                detail: Some(format!("scope \"{scope}\" ({})", issued.how)),
                fingerprint: Some(fingerprint.clone()),
                missing: ScopeSet::new(),
            },
        )
        .map_err(|e| {
            OAuthError::retry_later(StatusCode::SERVICE_UNAVAILABLE, 5, format!("no token issued: {}", e.message()))
        })?;
    tracing::info!(
        target: "warden::issuer",
        client_id = %client.client_id,
        scope = %scope,
        grant = grant.as_str(),
        fingerprint = %fingerprint,
        "token issued"
    );
    let mut resp = Json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: scope.to_string(),
        refresh_token: issued.refresh_token,
    })
    .into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `grant_type=authorization_code`: the code is consumed first (a failed check burns it,
/// so a verifier cannot be guessed at), then every binding is checked.
fn exchange_code(state: &IssuerState, client: &RegisteredClient, form: &TokenForm) -> Result<Issued, OAuthError> {
    let required =
        |name: &str| form.get(name).ok_or_else(|| OAuthError::new(Code::InvalidRequest, format!("missing {name}")));
    let code = required("code")?;
    let verifier = required("code_verifier")?;
    let redirect_uri = required("redirect_uri")?;
    let now_ms = state.inner.decisions.clock().now_ms();
    let invalid = |why: &str| OAuthError::new(Code::InvalidGrant, why.to_string());
    let grant = match state.inner.grants.redeem(code, now_ms) {
        Redeem::Fresh(g) => g,
        Redeem::Invalid => return Err(invalid("the authorization code is unknown or expired; authorize again")),
        Redeem::Replayed(family) => {
            let revoked = match family {
                Some(f) => state.inner.refresh.revoke_family(&f).unwrap_or(false),
                None => false,
            };
            let what = if revoked { "; the refresh token issued from it is revoked" } else { "" };
            return Err(invalid(&format!("the authorization code was already used{what}; authorize again")));
        }
    };
    let req = &grant.request;
    if req.client_id != client.client_id {
        return Err(invalid("the authorization code was issued to another client"));
    }
    if req.redirect_uri != redirect_uri {
        return Err(invalid("redirect_uri differs from the one in the authorization request"));
    }
    if !pkce_s256_matches(verifier, &req.code_challenge) {
        return Err(invalid("code_verifier does not match the code_challenge (PKCE S256)"));
    }
    let resources: Vec<&str> = form.all("resource").collect();
    if resources.iter().any(|r| r.trim_end_matches('/') != req.resource.trim_end_matches('/')) {
        return Err(OAuthError::new(
            Code::InvalidTarget,
            format!("the authorization code is for resource \"{}\" only", req.resource),
        ));
    }
    let refresh_token = if client.may_use(GrantType::RefreshToken) {
        let refresh_grant = RefreshGrant {
            client_id: client.client_id.clone(),
            user: grant.user.clone(),
            resource: req.resource.clone(),
            scope: req.scope.clone(),
        };
        let now = state.inner.decisions.clock().now_epoch();
        let (token, family) = state.inner.refresh.issue(refresh_grant, now).map_err(refresh_failure)?;
        state.inner.grants.link_family(code, family);
        Some(token)
    } else {
        None
    };
    Ok(Issued {
        client_id: client.client_id.clone(),
        subject: grant.user.clone(),
        scope: req.scope.clone(),
        aud: Audience::One(req.resource.clone()),
        refresh_token,
        how: format!("authorization code approved by {}", grant.user),
    })
}

/// `grant_type=refresh_token`: rotates the token; `scope` may narrow the access token's.
fn refresh(state: &IssuerState, client: &RegisteredClient, form: &TokenForm) -> Result<Issued, OAuthError> {
    let token =
        form.get("refresh_token").ok_or_else(|| OAuthError::new(Code::InvalidRequest, "missing refresh_token"))?;
    let requested = form
        .get("scope")
        .map(ScopeSet::parse)
        .transpose()
        .map_err(|e| OAuthError::new(Code::InvalidScope, e.to_string()))?
        .filter(|s| !s.is_empty());
    let resources: Vec<&str> = form.all("resource").collect();
    let now = state.inner.decisions.clock().now_epoch();
    let check = |g: &RefreshGrant| -> Result<(), OAuthError> {
        if let Some(req) = &requested {
            let wider = g.scope.missing(req);
            if !wider.is_empty() {
                return Err(OAuthError::new(
                    Code::InvalidScope,
                    format!("a refresh may narrow the scope, not widen it; not granted at sign-in: {wider}"),
                ));
            }
        }
        if resources.iter().any(|r| r.trim_end_matches('/') != g.resource.trim_end_matches('/')) {
            return Err(OAuthError::new(
                Code::InvalidTarget,
                format!("the refresh token is for resource \"{}\" only", g.resource),
            ));
        }
        Ok(())
    };
    let (grant, new_token) =
        state.inner.refresh.rotate(token, &client.client_id, now, check).map_err(refresh_failure)??;
    Ok(Issued {
        client_id: client.client_id.clone(),
        subject: grant.user.clone(),
        scope: requested.unwrap_or_else(|| grant.scope.clone()),
        aud: Audience::One(grant.resource.clone()),
        refresh_token: Some(new_token),
        how: format!("refresh token rotated, signed in as {}", grant.user),
    })
}

fn refresh_failure(e: RefreshError) -> OAuthError {
    match e {
        RefreshError::Invalid | RefreshError::Reused { .. } | RefreshError::WrongClient => {
            OAuthError::new(Code::InvalidGrant, e.to_string())
        }
        other => {
            tracing::error!(target: "warden::issuer", error = %other, "refresh token store failed");
            OAuthError::retry_later(StatusCode::SERVICE_UNAVAILABLE, 5, "the issuer could not record the refresh token")
        }
    }
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge, with the verifier's own
/// syntax checked (43–128 unreserved characters).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let syntax_ok = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = URL_SAFE_NO_PAD.encode(crate::types::secret::sha256(verifier.as_bytes()));
    syntax_ok && aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

/// Records a refused token request in the server audit trail (`detail`: the OAuth error).
fn record(state: &IssuerState, client_id: &str, detail: String, fingerprint: Option<Fingerprint>) {
    state.inner.decisions.emit(
        &crate::types::event::Scope::default(),
        crate::types::event::EventKind::ServiceDecision {
            client_id: client_id.to_string(),
            tool: None,
            outcome: crate::types::event::DecisionOutcome::TokenRefused,
            reason: crate::types::event::DecisionReason::TokenRequestRefused,
            detail: Some(detail),
            fingerprint,
            missing: ScopeSet::new(),
        },
    );
}

/// Client authentication (at `/token` and `/revoke`): the credentials are read here, the
/// secret is checked through the throttle (failure budgets first, then PBKDF2 on the
/// blocking pool, bounded). A public client (registered with `none`) names itself with
/// `client_id` alone. A client that registered a method (every DCR client; a config client
/// that names one) must use exactly that one: a public client sending a secret is refused
/// before any hashing (its id is no secret: it travels in front-channel URLs), a
/// confidential client sending its secret the other way only after the secret checked out,
/// so the refusal says nothing about a client id that a wrong secret would not.
pub(super) async fn authenticate(
    state: &IssuerState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<RegisteredClient, OAuthError> {
    let basic = basic_credentials(headers)?;
    let post = form.get("client_secret").map(|secret| (form.get("client_id"), secret));
    let (client_id, secret, used_basic) = match (basic, post) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(Code::InvalidRequest, "use one client authentication method, not both"));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::new(
                    Code::InvalidRequest,
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, secret, true)
        }
        (None, Some((Some(id), secret))) => (id.to_string(), secret.to_string(), false),
        (None, Some((None, _))) => {
            return Err(OAuthError::new(Code::InvalidRequest, "client_secret without client_id"));
        }
        (None, None) => {
            let named = form.get("client_id").and_then(|id| state.inner.clients.get(id));
            if let Some(public) = named.as_ref().filter(|c| c.is_public()) {
                return Ok(public.clone());
            }
            let post_only = named.is_some_and(|c| c.required_method() == Some(AuthMethod::ClientSecretPost));
            return Err(OAuthError {
                basic_challenge: !post_only,
                ..OAuthError::new(
                    Code::InvalidClient,
                    "client authentication required (client_secret_basic or client_secret_post)",
                )
            });
        }
    };
    let registered = state.inner.clients.get(&client_id);
    if let Some(public) = registered.as_ref().filter(|c| c.is_public()) {
        return Err(OAuthError {
            basic_challenge: used_basic,
            ..OAuthError::new(
                Code::InvalidClient,
                format!(
                    "client {} is registered as a public client (token_endpoint_auth_method none): send its client_id alone, without a client secret",
                    for_log(&public.client_id)
                ),
            )
        });
    }
    let check = {
        let (inner, id) = (state.inner.clone(), client_id.clone());
        move || inner.clients.authenticate(&id, &secret)
    };
    match state.inner.throttle.authenticate(&client_id, registered.is_some(), peer, check).await {
        Ok(true) => {
            let client = registered.ok_or_else(|| OAuthError::new(Code::ServerError, "the client registry changed"))?;
            let used = if used_basic { AuthMethod::ClientSecretBasic } else { AuthMethod::ClientSecretPost };
            match client.required_method() {
                Some(required) if required != used => Err(method_mismatch(&client.client_id, required)),
                _ => Ok(client),
            }
        }
        Ok(false) => Err(OAuthError {
            basic_challenge: used_basic,
            ..OAuthError::new(Code::InvalidClient, "client authentication failed: check client_id and client_secret")
        }),
        Err(Refusal::TooManyFailures { wait }) => Err(OAuthError::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            wait.as_secs_f64().ceil().max(1.0) as u64,
            "too many failed client authentications from this address or for this client; retry after Retry-After seconds",
        )),
        Err(Refusal::Busy) => Err(OAuthError::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            1,
            "the issuer is busy checking other client credentials; retry in a second",
        )),
    }
}

/// `invalid_client` for a confidential client that sent its secret the way it did not
/// register: with a Basic challenge when Basic is what it must use (RFC 6749 §5.2).
fn method_mismatch(client_id: &str, required: AuthMethod) -> OAuthError {
    let how = match required {
        AuthMethod::ClientSecretBasic => {
            "send its client_id and client_secret in the Authorization header (HTTP Basic), not in the form"
        }
        _ => "send its client_id and client_secret in the form, not in an Authorization header",
    };
    OAuthError {
        basic_challenge: required == AuthMethod::ClientSecretBasic,
        ..OAuthError::new(
            Code::InvalidClient,
            format!("client {} is registered for {}: {how}", for_log(client_id), required.as_str()),
        )
    }
}

/// `Authorization: Basic` credentials, form-urlencoding undone (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad =
        || OAuthError { basic_challenge: true, ..OAuthError::new(Code::InvalidClient, "malformed Basic credentials") };
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, b64)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(b64.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> Result<String, OAuthError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).map_err(|_| bad())?;
        Ok(pairs.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

fn granted_scope(client: &RegisteredClient, requested: Option<&str>) -> Result<ScopeSet, OAuthError> {
    let requested = match requested {
        None => return Ok(client.default_scopes.clone()),
        Some(s) => ScopeSet::parse(s).map_err(|e| OAuthError::new(Code::InvalidScope, e.to_string()))?,
    };
    if requested.is_empty() {
        return Ok(client.default_scopes.clone());
    }
    let excess = client.allowed_scopes.missing(&requested);
    if !excess.is_empty() {
        return Err(OAuthError::new(
            Code::InvalidScope,
            format!("client {} may not request: {excess}", client.client_id),
        ));
    }
    Ok(requested)
}

fn audience(state: &IssuerState, requested: Vec<&str>) -> Result<Audience, OAuthError> {
    let known = &state.inner.resources;
    if requested.is_empty() {
        let default = known.first().ok_or_else(|| {
            OAuthError::new(Code::InvalidTarget, "no resource requested and this issuer has no default resource")
        })?;
        return Ok(Audience::One(default.clone()));
    }
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        if r.contains('#') || !(r.starts_with("https://") || r.starts_with("http://")) {
            return Err(OAuthError::new(
                Code::InvalidTarget,
                format!("resource \"{}\" must be an absolute URI without a fragment", for_log(r)),
            ));
        }
        let canonical = r.trim_end_matches('/');
        let Some(k) = known.iter().find(|k| k.trim_end_matches('/') == canonical) else {
            return Err(OAuthError::new(Code::InvalidTarget, format!("unknown resource \"{}\"", for_log(r))));
        };
        if !out.contains(k) {
            out.push(k.clone());
        }
    }
    Ok(if out.len() == 1 { Audience::One(out.remove(0)) } else { Audience::Many(out) })
}

fn sign(state: &IssuerState, issued: &Issued) -> Result<(String, u64), OAuthError> {
    let key = state.inner.keys.active();
    let now = state.inner.decisions.clock().now_epoch();
    let ttl = state.inner.token_ttl_secs;
    let claims = AccessTokenClaims {
        iss: &state.inner.issuer,
        sub: &issued.subject,
        client_id: &issued.client_id,
        aud: issued.aud.clone(),
        scope: issued.scope.to_string(),
        iat: now,
        nbf: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    let token = jsonwebtoken::encode(&header, &claims, key.encoding_key()).map_err(|e| {
        tracing::error!(target: "warden::issuer", error = %e, "signing failed");
        OAuthError::new(Code::ServerError, "the token could not be signed")
    })?;
    Ok((token, ttl))
}

#[cfg(test)]
mod tests {
    use super::pkce_s256_matches;

    #[test]
    fn pkce_s256_matches_an_independently_computed_challenge() {
        // Challenge computed outside Warden: python3 hashlib.sha256 + urlsafe_b64encode, unpadded.
        let verifier = "dBjftJeZ4CK-P1mM-6Q8gUrKfIOyVG7Z7n4B0QUbkdA";
        let challenge = "pmjMtTR1WnH2HBwQh2d_iCiGXiiGVgt7aEQRODj4iw0";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(verifier, "pmjMtTR1WnH2HBwQh2d_iCiGXiiGVgt7aEQRODj4iw1"));
        assert!(!pkce_s256_matches(challenge, challenge), "plain (verifier = challenge) never matches");
        assert!(!pkce_s256_matches("short", challenge));
    }
}
