//! `GET/POST /authorize`: the authorization code flow's front channel (OAuth 2.1 §4.1,
//! PKCE S256 only, RFC 8707 `resource`) and a minimal consent page.
//!
//! Until the client and its `redirect_uri` are known to match, errors are a plain 400 page
//! (never a redirect to an unchecked URI: that would make the issuer an open redirector);
//! after that they go back to the client as `error=` on the redirect (RFC 6749 §4.1.2.1).
//!
//! With `[issuer] auto_approve = true` a valid request is approved at once as the first
//! configured user, for CI and headless demos. Otherwise the issuer parks the request and
//! shows a form (who asks, for which scopes and resource); the form carries a random nonce
//! that is the only key to the parked request, works once, and needs a user's password,
//! checked through the same throttle (peer failure budget, bounded hashing) as client
//! secrets. The page may not be framed (clickjacking) or cached.

use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::IssuerState;
use super::clients::{GrantType, RegisteredClient};
use super::error::OAuthErrorCode as Code;
use super::grants::{AuthRequest, CodeGrant};
use super::throttle::Refusal;
use super::token::{Peer, TokenForm};
use crate::security::untrusted::for_log;
use crate::types::event::DecisionOutcome;
use crate::types::scope::ScopeSet;

/// A refusal: a page when the redirect URI cannot be trusted, else a redirect with `error=`.
enum Refused {
    Page { status: StatusCode, message: String },
    Redirect { to: String, state: Option<String>, code: Code, description: String },
}

pub async fn authorize_get(State(state): State<IssuerState>, RawQuery(query): RawQuery) -> Response {
    let (client_id, result) = validate(&state, query.as_deref().unwrap_or(""));
    let request = match result {
        Ok(r) => r,
        Err(refused) => return refuse(&state, &client_id, refused),
    };
    if state.inner.auto_approve {
        // `validate` refused already when no user is configured.
        let Some(user) = state.inner.users.keys().next().cloned() else {
            return refuse(&state, &client_id, page(StatusCode::INTERNAL_SERVER_ERROR, "no user is configured"));
        };
        return approve(&state, request, user, StatusCode::FOUND);
    }
    let now = state.inner.decisions.clock().now_ms();
    match state.inner.grants.park(request.clone(), now) {
        Some(nonce) => consent_page(&request, &nonce, None, StatusCode::OK),
        None => refuse(&state, &client_id, busy(&request)),
    }
}

pub async fn authorize_post(
    State(state): State<IssuerState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match TokenForm::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return refuse(&state, "-", page(StatusCode::BAD_REQUEST, &e.description)),
    };
    let now = state.inner.decisions.clock().now_ms();
    let Some((request, failed)) = form.get("request").and_then(|n| state.inner.grants.take(n, now)) else {
        return refuse(
            &state,
            "-",
            page(
                StatusCode::BAD_REQUEST,
                "This sign-in form has expired or was already used. Start again from the application.",
            ),
        );
    };
    let client_id = request.client_id.clone();
    if form.get("action") != Some("approve") {
        let to_client = Refused::Redirect {
            to: request.redirect_uri.clone(),
            state: request.state.clone(),
            code: Code::AccessDenied,
            description: "the user denied the request".into(),
        };
        return refuse(&state, &client_id, to_client);
    }
    let user = form.get("username").unwrap_or("").to_string();
    let password = form.get("password").unwrap_or("").to_string();
    match check_password(&state, peer, &user, password).await {
        Ok(true) => approve(&state, request, user, StatusCode::SEE_OTHER),
        Ok(false) => {
            record(
                &state,
                &client_id,
                DecisionOutcome::AuthorizationRefused,
                format!("wrong password for user \"{}\"", for_log(&user)),
            );
            match state.inner.grants.retry(request.clone(), failed, now) {
                Some(nonce) => {
                    consent_page(&request, &nonce, Some("Wrong user name or password."), StatusCode::UNAUTHORIZED)
                }
                None => refuse(
                    &state,
                    &client_id,
                    Refused::Redirect {
                        to: request.redirect_uri,
                        state: request.state,
                        code: Code::AccessDenied,
                        description: "too many wrong passwords".into(),
                    },
                ),
            }
        }
        Err(Refusal::TooManyFailures { .. }) | Err(Refusal::Busy) => refuse(
            &state,
            &client_id,
            page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins from this address. Wait a minute and start again.",
            ),
        ),
    }
}

/// One PBKDF2 check of `user`'s password (a dummy check for an unknown user, so timing
/// does not tell which users exist), through the client-authentication throttle: user
/// names have no budget of their own, the peer's failure budget counts.
async fn check_password(
    state: &IssuerState,
    peer: Option<IpAddr>,
    user: &str,
    password: String,
) -> Result<bool, Refusal> {
    let inner = state.inner.clone();
    let name = user.to_string();
    let check = move || match inner.users.get(&name) {
        Some(hash) => hash.verify(&password),
        None => {
            let _ = inner.users_dummy.verify(&password);
            false
        }
    };
    state.inner.throttle.authenticate(&format!("user:{user}"), false, peer, check).await
}

/// Issues a code for `user` and sends the browser back to the client.
fn approve(state: &IssuerState, request: AuthRequest, user: String, status: StatusCode) -> Response {
    let now = state.inner.decisions.clock().now_ms();
    let (client_id, to, client_state) =
        (request.client_id.clone(), request.redirect_uri.clone(), request.state.clone());
    let detail = format!(
        "code for scope \"{}\" on {} approved by {}{}",
        request.scope,
        request.resource,
        user,
        if state.inner.auto_approve { " (auto-approve)" } else { "" }
    );
    let Some(code) = state.inner.grants.issue_code(CodeGrant { request: request.clone(), user }, now) else {
        return refuse(state, &client_id, busy(&request));
    };
    record(state, &client_id, DecisionOutcome::CodeIssued, detail);
    redirect(
        &to,
        &[("code", Some(code.as_str())), ("state", client_state.as_deref()), ("iss", Some(&state.inner.issuer))],
        status,
    )
}

fn busy(request: &AuthRequest) -> Refused {
    Refused::Redirect {
        to: request.redirect_uri.clone(),
        state: request.state.clone(),
        code: Code::TemporarilyUnavailable,
        description: "too many sign-ins are in progress; try again in a minute".into(),
    }
}

fn page(status: StatusCode, message: &str) -> Refused {
    Refused::Page { status, message: message.to_string() }
}

/// Checks a `GET /authorize` query; returns the client id (for the record) and the request.
fn validate(state: &IssuerState, query: &str) -> (String, Result<AuthRequest, Refused>) {
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(query) {
        Ok(p) => p,
        Err(_) => return ("-".into(), Err(page(StatusCode::BAD_REQUEST, "The request's query string is not valid."))),
    };
    let mut seen = std::collections::HashSet::new();
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !seen.insert(k.as_str())) {
        let msg = format!("Parameter `{}` is repeated; each may appear once.", for_log(k));
        return ("-".into(), Err(page(StatusCode::BAD_REQUEST, &msg)));
    }
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(client_id) = get("client_id") else {
        return ("-".into(), Err(page(StatusCode::BAD_REQUEST, "The request names no client_id.")));
    };
    let Some(client) = state.inner.clients.get(client_id) else {
        let msg = format!("Unknown client \"{}\": register it first.", for_log(client_id));
        return ("-".into(), Err(page(StatusCode::BAD_REQUEST, &msg)));
    };
    let id = client.client_id.clone();
    let Some(redirect_uri) = get("redirect_uri") else {
        return (id, Err(page(StatusCode::BAD_REQUEST, "The request names no redirect_uri.")));
    };
    if !client.redirect_matches(redirect_uri) {
        let msg = format!("redirect_uri \"{}\" is not registered for client {id}.", for_log(redirect_uri));
        return (id, Err(page(StatusCode::BAD_REQUEST, &msg)));
    }
    let result = validate_trusted(state, &client, redirect_uri, &get);
    (id, result)
}

/// The checks made once the redirect URI is trusted: failures go back to the client.
fn validate_trusted<'a>(
    state: &IssuerState,
    client: &RegisteredClient,
    redirect_uri: &str,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<AuthRequest, Refused> {
    let client_state = get("state").map(str::to_string);
    let fail = |code: Code, description: String| Refused::Redirect {
        to: redirect_uri.to_string(),
        state: client_state.clone(),
        code,
        description,
    };
    if get("response_type") != Some("code") {
        return Err(fail(Code::UnsupportedResponseType, "only response_type=code is supported".into()));
    }
    if !client.may_use(GrantType::AuthorizationCode) {
        return Err(fail(
            Code::UnauthorizedClient,
            format!("client {} is not registered for the authorization code grant", client.client_id),
        ));
    }
    let Some(challenge) = get("code_challenge") else {
        return Err(fail(Code::InvalidRequest, "PKCE is required: send code_challenge with method S256".into()));
    };
    if get("code_challenge_method") != Some("S256") {
        return Err(fail(Code::InvalidRequest, "code_challenge_method must be S256 (plain is not accepted)".into()));
    }
    let challenge_ok =
        challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !challenge_ok {
        return Err(fail(Code::InvalidRequest, "code_challenge must be a base64url SHA-256 (43 characters)".into()));
    }
    let Some(resource) = get("resource") else {
        return Err(fail(Code::InvalidTarget, "resource is required (RFC 8707): name the MCP server's URI".into()));
    };
    let Some(resource) =
        state.inner.resources.iter().find(|k| k.trim_end_matches('/') == resource.trim_end_matches('/')).cloned()
    else {
        return Err(fail(Code::InvalidTarget, format!("unknown resource \"{}\"", for_log(resource))));
    };
    let scope = match get("scope").map(ScopeSet::parse).transpose() {
        Err(e) => return Err(fail(Code::InvalidScope, e.to_string())),
        Ok(None) => client.default_scopes.clone(),
        Ok(Some(s)) if s.is_empty() => client.default_scopes.clone(),
        Ok(Some(s)) => s,
    };
    let excess = client.allowed_scopes.missing(&scope);
    if !excess.is_empty() {
        return Err(fail(Code::InvalidScope, format!("client {} may not request: {excess}", client.client_id)));
    }
    if state.inner.users.is_empty() {
        return Err(fail(Code::AccessDenied, "this issuer has no users to approve requests ([issuer.users])".into()));
    }
    Ok(AuthRequest {
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: client_state,
        code_challenge: challenge.to_string(),
        resource,
        scope,
    })
}

fn refuse(state: &IssuerState, client_id: &str, refused: Refused) -> Response {
    match refused {
        Refused::Page { status, message } => {
            record(state, client_id, DecisionOutcome::AuthorizationRefused, message.clone());
            let body = format!("<h1>Authorization request refused</h1>\n<p>{}</p>", esc(&message));
            html_page(status, &body)
        }
        Refused::Redirect { to, state: client_state, code, description } => {
            record(
                state,
                client_id,
                DecisionOutcome::AuthorizationRefused,
                format!("{}: {description}", code.as_str()),
            );
            redirect(
                &to,
                &[
                    ("error", Some(code.as_str())),
                    ("error_description", Some(&description)),
                    ("state", client_state.as_deref()),
                    ("iss", Some(&state.inner.issuer)),
                ],
                StatusCode::FOUND,
            )
        }
    }
}

fn record(state: &IssuerState, client_id: &str, outcome: DecisionOutcome, detail: String) {
    super::record_decision(state, "authorization", client_id, outcome, outcome == DecisionOutcome::CodeIssued, detail);
}

/// A redirect to `to` with `params` added to its query (RFC 6749 §4.1.2: the client's
/// own query is kept).
fn redirect(to: &str, params: &[(&str, Option<&str>)], status: StatusCode) -> Response {
    let Ok(mut url) = url::Url::parse(to) else {
        // The URI was matched against a registered one, which was parsed when registered.
        return html_page(StatusCode::BAD_REQUEST, "<p>The redirect URI is not valid.</p>");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    let mut resp = status.into_response();
    match HeaderValue::from_str(url.as_str()) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => return html_page(StatusCode::BAD_REQUEST, "<p>The redirect URI is not valid.</p>"),
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn consent_page(request: &AuthRequest, nonce: &str, error: Option<&str>, status: StatusCode) -> Response {
    let who = match &request.client_name {
        Some(name) => format!("{} ({})", esc(name), esc(&request.client_id)),
        None => esc(&request.client_id),
    };
    let scopes: String = if request.scope.is_empty() {
        "<li>(no scopes)</li>".into()
    } else {
        request.scope.iter().map(|s| format!("<li><code>{}</code></li>", esc(s.as_str()))).collect()
    };
    let error = error.map(|e| format!("<p class=\"error\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<h1>Authorize {who}</h1>\n{error}\
         <p><strong>{who}</strong> asks to act on your behalf at <code>{resource}</code> with these scopes:</p>\n\
         <ul>{scopes}</ul>\n\
         <p>You will be sent back to <code>{redirect}</code>.</p>\n\
         <form method=\"post\" action=\"/authorize\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{nonce}\">\n\
         <label>User <input name=\"username\" autocomplete=\"username\"></label>\n\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\n\
         <button name=\"action\" value=\"approve\">Approve</button>\n\
         <button name=\"action\" value=\"deny\">Deny</button>\n\
         </form>",
        resource = esc(&request.resource),
        redirect = esc(&request.redirect_uri),
        nonce = esc(nonce),
    );
    html_page(status, &body)
}

fn html_page(status: StatusCode, body: &str) -> Response {
    let doc = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Warden authorization</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}.error{{color:#b00}}label{{display:block;margin:.5em 0}}</style>\
         </head><body>\n{body}\n</body></html>\n"
    );
    let mut resp = (status, Html(doc)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// HTML-escapes text from the request or the registry (client names come from strangers).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
