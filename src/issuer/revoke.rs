//! `POST /revoke`: OAuth 2.0 token revocation (RFC 7009).
//!
//! The client authenticates as at `/token` (the same code: its registered method enforced,
//! secrets checked through the throttle, a public client named by `client_id`), then names
//! the `token` (and maybe a `token_type_hint`). A refresh token of that client — current or
//! rotated away — revokes its whole family, the sign-in, saved before the answer (see
//! `refresh::RefreshStore::revoke`), so a later refresh with any of its tokens is
//! `invalid_grant`.
//!
//! Access tokens are self-contained JWTs the MCP service verifies on its own. When the
//! service runs in this process and trusts this issuer (`warden serve`, `warden demo`), a
//! live access token of the calling client goes on the deny-list the service's bearer guard
//! checks (`auth::revoked`, persisted until the token's `exp`). Without such a service (the
//! issuer alone, or a service trusting another issuer) nothing would hear of it, so the
//! answer is `400 unsupported_token_type` (RFC 7009 §2.2.1, "the client tried to revoke an
//! access token on a server not supporting this feature") rather than a 200 that would claim
//! more than was done. Per RFC 7009 §2.2 an unknown, expired or already revoked token is a
//! 200, and so is another client's token — which is left alone.
//!
//! Every answer is one decision in the server audit trail: `token_revoked`,
//! `revocation_ignored` (200, nothing done, and why) or `revocation_refused`. The router's
//! body limit (16 KiB) and timeout apply, as at `/token`.

use std::net::IpAddr;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::IssuerState;
use super::error::{OAuthError, OAuthErrorCode as Code};
use super::refresh::{RefreshError, Revocation};
use super::token::{Peer, TokenForm, authenticate};
use crate::security::untrusted::for_log;
use crate::types::event::DecisionOutcome;

/// What a successful (200) revocation request did, for the audit trail.
struct Done {
    client_id: String,
    outcome: DecisionOutcome,
    detail: String,
}

pub async fn revoke(State(state): State<IssuerState>, Peer(peer): Peer, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, peer, &headers, &body).await {
        Ok(done) => {
            super::record_decision(&state, "revocation", &done.client_id, done.outcome, false, done.detail);
            let mut resp = StatusCode::OK.into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err((client_id, e)) => {
            let detail = e.audit_detail();
            super::record_decision(&state, "revocation", &client_id, DecisionOutcome::RevocationRefused, false, detail);
            e.into_response()
        }
    }
}

/// The request's outcome; a refusal carries the client id when it is known by then.
async fn handle(
    state: &IssuerState,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Done, (String, OAuthError)> {
    let anonymous = |e: OAuthError| ("-".to_string(), e);
    let form = TokenForm::parse(headers, body).map_err(anonymous)?;
    let token = form.get("token").ok_or_else(|| anonymous(OAuthError::new(Code::InvalidRequest, "missing token")))?;
    let client = authenticate(state, peer, headers, &form).await.map_err(anonymous)?;
    let client_id = client.client_id.clone();
    let refused = |e: OAuthError| (client_id.clone(), e);
    let hint = form.get("token_type_hint");
    if let Some(other) = hint.filter(|h| !matches!(*h, "refresh_token" | "access_token")) {
        return Err(refused(OAuthError::new(
            Code::UnsupportedTokenType,
            format!(
                "token_type_hint \"{}\" is not a token type this issuer hands out; use refresh_token or access_token, or leave it out",
                for_log(other)
            ),
        )));
    }
    let now = state.inner.decisions.clock().now_epoch();
    // RFC 7009 §2.1: the hint only orders the search; every type is looked at. Refresh
    // tokens first: they are the only ones that can be revoked here.
    let done = |outcome, detail: String| Done { client_id: client_id.clone(), outcome, detail };
    match state.inner.refresh.revoke(token, &client.client_id, now) {
        Ok(Revocation::Revoked(grant)) => {
            return Ok(done(
                DecisionOutcome::TokenRevoked,
                format!(
                    "refresh token revoked with its sign-in (every token of the family), signed in as {} for {}",
                    grant.user, grant.resource
                ),
            ));
        }
        Ok(Revocation::OtherClient) => {
            return Ok(done(
                DecisionOutcome::RevocationIgnored,
                "a refresh token of another client: not revoked".into(),
            ));
        }
        Ok(Revocation::Unknown) => {}
        Err(e) => {
            return Err(refused(match e {
                RefreshError::Write { .. } | RefreshError::Read { .. } => {
                    tracing::error!(target: "warden::issuer", error = %e, "refresh token revocation not saved");
                    OAuthError::retry_later(
                        StatusCode::SERVICE_UNAVAILABLE,
                        5,
                        "the issuer could not record the revocation; the token stays valid, retry in a few seconds",
                    )
                }
                other => OAuthError::new(Code::ServerError, other.to_string()),
            }));
        }
    }
    match state.inner.keys.own_access_token(token, now) {
        Some(access) if access.client_id == client.client_id => match &state.inner.revoked_access {
            Some(list) => match list.revoke(&access.jti, access.exp, now) {
                Ok(()) => Ok(done(
                    DecisionOutcome::TokenRevoked,
                    format!("access token revoked (jti {}); the MCP service refuses it from now on", access.jti),
                )),
                Err(e) => {
                    tracing::error!(target: "warden::issuer", error = %e, "access token revocation not saved");
                    Err(refused(OAuthError::retry_later(
                        StatusCode::SERVICE_UNAVAILABLE,
                        5,
                        format!("the access token could not be revoked: {e}; it stays valid until it expires"),
                    )))
                }
            },
            None => Err(refused(OAuthError::new(
                Code::UnsupportedTokenType,
                format!(
                    "this issuer cannot revoke access tokens: they are self-contained JWTs, and no MCP service in its process checks its revocations; this one expires in {} s — revoke the refresh token to end the sign-in",
                    access.exp.saturating_sub(now)
                ),
            ))),
        },
        Some(_) => {
            Ok(done(DecisionOutcome::RevocationIgnored, "an access token of another client: not revoked".into()))
        }
        None => Ok(done(
            DecisionOutcome::RevocationIgnored,
            "an unknown, expired or already revoked token: nothing to revoke".into(),
        )),
    }
}
