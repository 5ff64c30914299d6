//! The embedded issuer's user-facing flows over real HTTPS (issue 14): authorization code
//! with PKCE (auto-approve and the consent page), dynamic client registration (RFC 7591)
//! and refresh tokens (rotation, reuse detection, a restart), with every refusal a client
//! can meet. Redirects are never followed: the tests read `Location` like a native app's
//! loopback listener would.

mod common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SUPPORT, Stack};
use serde_json::{Value, json};
use warden::config::Config;

const REDIRECT: &str = "http://127.0.0.1/callback";
/// What a native app's listener would use: the registered loopback URI on a free port.
const REDIRECT_ON_PORT: &str = "http://127.0.0.1:49152/callback";
const VERIFIER: &str = "dBjftJeZ4CK-P1mM-6Q8gUrKfIOyVG7Z7n4B0QUbkdA-warden-test";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(warden::types::secret::sha256(verifier.as_bytes()))
}

fn demo_password() -> String {
    warden::config::demo_password("demo").expect("demo password in config/demo-secrets.toml")
}

fn flow_config(auto_approve: bool) -> Config {
    let mut c = common::config(None);
    c.issuer.auto_approve = auto_approve;
    c
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The query of a redirect's `Location`, with the part before `?`.
fn location(resp: &reqwest::Response) -> (String, HashMap<String, String>) {
    let loc = resp.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(loc).unwrap();
    let base = format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap(),
        url.port().map(|p| format!(":{p}")).unwrap_or_default()
    ) + url.path();
    (base, url.query_pairs().into_owned().collect())
}

async fn register(s: &Stack, body: Value) -> reqwest::Response {
    s.http.post(format!("{}/register", s.issuer)).json(&body).send().await.unwrap()
}

/// Registers a public client (PKCE only) with the loopback redirect URI.
async fn public_client(s: &Stack) -> String {
    let resp = register(
        s,
        json!({"client_name": "Test app", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "grant_types": ["authorization_code", "refresh_token"]}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["client_id"].as_str().unwrap().to_string()
}

fn authorize_query<'a>(s: &'a Stack, client_id: &'a str, verifier: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT_ON_PORT.into()),
        ("code_challenge", challenge(verifier)),
        ("code_challenge_method", "S256".into()),
        ("state", "xyz-state".into()),
        ("scope", "customer:read ticket:create".into()),
        ("resource", s.mcp.clone()),
    ]
}

async fn authorize(s: &Stack, query: &[(&str, String)]) -> reqwest::Response {
    let url = url::Url::parse_with_params(&format!("{}/authorize", s.issuer), query).unwrap();
    s.http.get(url).send().await.unwrap()
}

fn with(query: &[(&'static str, String)], key: &'static str, value: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q: Vec<_> = query.iter().filter(|(k, _)| *k != key).cloned().collect();
    if let Some(v) = value {
        q.push((key, v.to_string()));
    }
    q
}

/// An auto-approved code for `client_id`.
async fn code_for(s: &Stack, client_id: &str) -> String {
    let resp = authorize(s, &authorize_query(s, client_id, VERIFIER)).await;
    assert_eq!(resp.status(), 302);
    let (_, q) = location(&resp);
    q["code"].clone()
}

async fn token(s: &Stack, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = s.http.post(format!("{}/token", s.issuer)).form(form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn exchange(s: &Stack, client_id: &str, code: &str, verifier: &str) -> (u16, Value) {
    token(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT_ON_PORT),
            ("resource", &s.mcp),
        ],
    )
    .await
}

async fn refresh(s: &Stack, client_id: &str, refresh_token: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("client_id", client_id), ("refresh_token", refresh_token)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token(s, &form).await
}

fn decisions(s: &Stack) -> Vec<(String, String)> {
    warden::observe::audit::read_all(&s.state.join("audit"), "server")
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            warden::types::event::EventKind::ServiceDecision { outcome, detail, .. } => {
                Some((outcome.as_str().to_string(), detail.unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn metadata_advertises_the_code_flow_registration_and_refresh() {
    let s = Stack::start_with(flow_config(false)).await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["authorization_endpoint"], format!("{}/authorize", s.issuer));
    assert_eq!(meta["registration_endpoint"], format!("{}/register", s.issuer));
    assert_eq!(meta["grant_types_supported"], json!(["authorization_code", "client_credentials", "refresh_token"]));
    assert_eq!(meta["response_types_supported"], json!(["code"]));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    s.stop().await;

    let mut off = flow_config(false);
    off.issuer.registration = false;
    off.issuer.users.clear();
    let s = Stack::start_with(off).await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta.get("authorization_endpoint").is_none_or(Value::is_null), "{meta}");
    assert!(meta.get("registration_endpoint").is_none_or(Value::is_null), "{meta}");
    assert_eq!(meta["grant_types_supported"], json!(["client_credentials", "refresh_token"]));
    s.stop().await;
}

#[tokio::test]
async fn auto_approved_code_flow_with_pkce_gives_a_working_token_and_a_refresh_token() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let resp = authorize(&s, &authorize_query(&s, &client_id, VERIFIER)).await;
    assert_eq!(resp.status(), 302);
    let (to, q) = location(&resp);
    assert_eq!(to, REDIRECT_ON_PORT, "back to the port the app listens on");
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], s.issuer);
    let code = q["code"].clone();

    let (status, body) = exchange(&s, &client_id, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "customer:read ticket:create");
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.len() >= 43));
    let access = body["access_token"].as_str().unwrap();
    let c = claims(access);
    assert_eq!((c["sub"].as_str(), c["client_id"].as_str()), (Some("demo"), Some(client_id.as_str())));
    assert_eq!(c["aud"], s.mcp.as_str());
    assert_eq!(c["scope"], "customer:read ticket:create");

    let call = common::tools_call("get_customer_info", json!({"customer_id": "ABC123"}));
    assert_eq!(s.mcp_post(Some(access), &call).await.status(), 200, "the MCP server accepts the token");

    let log = decisions(&s);
    let code_issued = log.iter().find(|(o, _)| o == "code_issued").expect("code recorded");
    assert_eq!(
        code_issued.1,
        format!("code for scope \"customer:read ticket:create\" on {} approved by demo (auto-approve)", s.mcp)
    );
    assert!(log.iter().any(|(o, d)| o == "token_issued" && d.ends_with("(authorization code approved by demo)")));
    let mut trail = String::new();
    for f in std::fs::read_dir(s.state.join("audit")).unwrap() {
        trail.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    assert!(trail.contains("code_issued"), "the trail was read");
    assert!(!trail.contains(&code), "the code never reaches the audit trail");
    assert!(!trail.contains(body["refresh_token"].as_str().unwrap()), "nor the refresh token");
    s.stop().await;
}

#[tokio::test]
async fn consent_page_approves_with_the_users_password_and_denies_on_request() {
    let s = Stack::start_with(flow_config(false)).await;
    let client_id = public_client(&s).await;
    let page = authorize(&s, &authorize_query(&s, &client_id, VERIFIER)).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<h1>Authorize Test app ({client_id})</h1>")), "{html}");
    assert!(html.contains("<li><code>customer:read</code></li><li><code>ticket:create</code></li>"), "{html}");
    assert!(html.contains(&format!("at <code>{}</code>", s.mcp)), "{html}");
    let nonce = |html: &str| {
        let at = html.find("name=\"request\" value=\"").unwrap() + "name=\"request\" value=\"".len();
        html[at..].split('"').next().unwrap().to_string()
    };
    let post = |form: Vec<(&'static str, String)>| {
        let http = s.http.clone();
        let url = format!("{}/authorize", s.issuer);
        async move { http.post(url).form(&form).send().await.unwrap() }
    };

    // A wrong password: the form again, with a new nonce; the old one is spent.
    let first = nonce(&html);
    let wrong = post(vec![
        ("request", first.clone()),
        ("username", "demo".into()),
        ("password", "guess".into()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("<p class=\"error\">Wrong user name or password.</p>"), "{html}");
    let second = nonce(&html);
    assert_ne!(first, second);

    let replayed_form = post(vec![
        ("request", first),
        ("username", "demo".into()),
        ("password", demo_password()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(replayed_form.status(), 400, "a spent form does nothing");

    let ok = post(vec![
        ("request", second),
        ("username", "demo".into()),
        ("password", demo_password()),
        ("action", "approve".into()),
    ])
    .await;
    assert_eq!(ok.status(), 303);
    let (to, q) = location(&ok);
    assert_eq!((to.as_str(), q["state"].as_str()), (REDIRECT_ON_PORT, "xyz-state"));
    let (status, body) = exchange(&s, &client_id, &q["code"], VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], "demo");

    // Deny: back to the client with access_denied and the state.
    let html = authorize(&s, &authorize_query(&s, &client_id, VERIFIER)).await.text().await.unwrap();
    let denied = post(vec![("request", nonce(&html)), ("action", "deny".into())]).await;
    assert_eq!(denied.status(), 302);
    let (_, q) = location(&denied);
    assert_eq!((q["error"].as_str(), q["state"].as_str()), ("access_denied", "xyz-state"));
    assert!(!q.contains_key("code"));
    let log = decisions(&s);
    assert!(log.iter().any(|(o, d)| o == "authorization_refused" && d == "wrong password for user \"demo\""));
    assert!(log.iter().any(|(o, d)| o == "authorization_refused" && d == "access_denied: the user denied the request"));
    s.stop().await;
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_a_wrong_verifier_burns_the_code() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let base = authorize_query(&s, &client_id, VERIFIER);

    for (query, description) in [
        (
            with(&base, "code_challenge_method", Some("plain")),
            "code_challenge_method must be S256 (plain is not accepted)",
        ),
        (with(&base, "code_challenge_method", None), "code_challenge_method must be S256 (plain is not accepted)"),
        (
            with(&with(&base, "code_challenge", None), "code_challenge_method", None),
            "PKCE is required: send code_challenge with method S256",
        ),
    ] {
        let resp = authorize(&s, &query).await;
        assert_eq!(resp.status(), 302);
        let (_, q) = location(&resp);
        assert_eq!((q["error"].as_str(), q["error_description"].as_str()), ("invalid_request", description));
        assert_eq!(q["state"], "xyz-state");
    }

    let code = code_for(&s, &client_id).await;
    let (status, body) = exchange(&s, &client_id, &code, "wrong-verifier-wrong-verifier-wrong-verifier-0").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(body["error_description"], "code_verifier does not match the code_challenge (PKCE S256)");
    let (status, body) = exchange(&s, &client_id, &code, VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the code is spent: {body}");
    s.stop().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_refresh_token_issued_from_it() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let code = code_for(&s, &client_id).await;
    let (status, first) = exchange(&s, &client_id, &code, VERIFIER).await;
    assert_eq!(status, 200);
    let (status, body) = exchange(&s, &client_id, &code, VERIFIER).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        body["error_description"],
        "the authorization code was already used; the refresh token issued from it is revoked; authorize again"
    );
    let (status, body) = refresh(&s, &client_id, first["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn redirect_uri_must_match_and_an_unknown_one_gets_a_page_not_a_redirect() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let base = authorize_query(&s, &client_id, VERIFIER);
    for bad in ["https://evil.example/callback", "http://127.0.0.1:49152/other", "http://localhost:49152/callback"] {
        let resp = authorize(&s, &with(&base, "redirect_uri", Some(bad))).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(resp.headers().get("location").is_none());
        let html = resp.text().await.unwrap();
        assert!(
            html.contains(&format!("redirect_uri &quot;{bad}&quot; is not registered for client {client_id}.")),
            "{html}"
        );
    }
    let resp = authorize(&s, &with(&base, "client_id", Some("nobody"))).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Unknown client &quot;nobody&quot;: register it first."));

    // At /token the redirect_uri must be the authorization request's.
    let code = code_for(&s, &client_id).await;
    let (status, body) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "http://127.0.0.1:1/callback"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(body["error_description"], "redirect_uri differs from the one in the authorization request");
    s.stop().await;
}

#[tokio::test]
async fn the_resource_is_required_known_and_bound_into_the_code() {
    let mut config = flow_config(true);
    config.issuer.resources = vec!["https://other.example/mcp".into()];
    let s = Stack::start_with(config).await;
    let client_id = public_client(&s).await;
    let base = authorize_query(&s, &client_id, VERIFIER);
    for (query, description) in [
        (with(&base, "resource", Some("https://evil.example/mcp")), "unknown resource \"https://evil.example/mcp\""),
        (with(&base, "resource", None), "resource is required (RFC 8707): name the MCP server's URI"),
    ] {
        let resp = authorize(&s, &query).await;
        let (_, q) = location(&resp);
        assert_eq!((q["error"].as_str(), q["error_description"].as_str()), ("invalid_target", description));
    }
    let resp = authorize(&s, &with(&base, "scope", Some("security:read"))).await;
    let (_, q) = location(&resp);
    assert_eq!(q["error"], "invalid_scope");

    let code = code_for(&s, &client_id).await;
    let (status, body) = token(
        &s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT_ON_PORT),
            ("resource", "https://other.example/mcp"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));
    assert_eq!(body["error_description"], format!("the authorization code is for resource \"{}\" only", s.mcp));
    s.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_narrow_and_reuse_revokes_the_family() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let code = code_for(&s, &client_id).await;
    let (_, first) = exchange(&s, &client_id, &code, VERIFIER).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_string();

    let (status, body) = refresh(&s, &client_id, &r1, Some("customer:read account:calculate")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "wider than the sign-in");
    assert_eq!(
        body["error_description"],
        "a refresh may narrow the scope, not widen it; not granted at sign-in: account:calculate"
    );

    let (status, second) = refresh(&s, &client_id, &r1, Some("customer:read")).await;
    assert_eq!(status, 200, "a refused refresh did not burn the token: {second}");
    assert_eq!(second["scope"], "customer:read");
    assert_eq!(claims(second["access_token"].as_str().unwrap())["sub"], "demo");
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "rotated");

    let (status, third) = refresh(&s, &client_id, &r2, None).await;
    assert_eq!(status, 200);
    assert_eq!(third["scope"], "customer:read ticket:create", "the sign-in's scope again");
    let r3 = third["refresh_token"].as_str().unwrap().to_string();

    let (status, body) = refresh(&s, &client_id, &r1, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        body["error_description"],
        "the refresh token was already used, so every token of this sign-in is revoked; sign in again"
    );
    let (status, _) = refresh(&s, &client_id, &r3, None).await;
    assert_eq!(status, 400, "the live token of the family is revoked too");

    let other = public_client(&s).await;
    let (_, fresh) = exchange(&s, &client_id, &code_for(&s, &client_id).await, VERIFIER).await;
    let (status, body) = refresh(&s, &other, fresh["refresh_token"].as_str().unwrap(), None).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (400, Some("the refresh token was issued to another client"))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_registered_clients_and_refresh_tokens() {
    let s = Stack::start_with(flow_config(true)).await;
    let client_id = public_client(&s).await;
    let code = code_for(&s, &client_id).await;
    let (_, body) = exchange(&s, &client_id, &code, VERIFIER).await;
    let r1 = body["refresh_token"].as_str().unwrap().to_string();
    let stored = std::fs::read_to_string(s.state.join("issuer/refresh-tokens.json")).unwrap();
    assert!(!stored.contains(&r1), "only hashes on disk");
    let state = s.state.clone();
    let tmp = s.stop().await;

    let s = Stack::start_in(&state, flow_config(true), false).await;
    let (status, body) = refresh(&s, &client_id, &r1, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["client_id"], client_id.as_str());
    s.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn dcr_registers_confidential_clients_validates_metadata_and_is_bounded() {
    let mut config = flow_config(true);
    config.issuer.max_registered_clients = 2;
    let s = Stack::start_with(config).await;
    let resp = register(
        &s,
        json!({"client_name": "Backend", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post",
               "scope": "customer:read security:read"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let reg: Value = resp.json().await.unwrap();
    assert_eq!(reg["scope"], "customer:read", "only what dynamic clients may have");
    assert_eq!(reg["grant_types"], json!(["client_credentials"]));
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(reg["client_secret_expires_at"], 0);
    let (id, secret) = (reg["client_id"].as_str().unwrap(), reg["client_secret"].as_str().unwrap());
    let stored = std::fs::read_to_string(s.state.join("issuer/registered-clients.json")).unwrap();
    assert!(stored.contains(id) && !stored.contains(secret), "hash only");

    let (status, body) = token(
        &s,
        &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret), ("resource", &s.mcp)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], id);
    let (status, body) =
        token(&s, &[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", "wrong")]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    for (meta, error, description) in [
        (
            json!({"redirect_uris": ["http://app.example/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "redirect URI \"http://app.example/cb\" must be an absolute https URI, or http on a loopback address, without a fragment",
        ),
        (
            json!({"token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
            "redirect_uris is required for authorization_code",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
            "a public client (none) cannot use client_credentials",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
            "token_endpoint_auth_method \"private_key_jwt\" is not supported; use none, client_secret_basic or client_secret_post",
        ),
    ] {
        let resp = register(&s, meta).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!((body["error"].as_str(), body["error_description"].as_str()), (Some(error), Some(description)));
    }

    public_client(&s).await;
    let resp = register(&s, json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await;
    assert_eq!(resp.status(), 503, "max_registered_clients = 2");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");
    s.stop().await;
}

#[tokio::test]
async fn dcr_is_rate_limited_per_peer_and_refused_when_off() {
    let mut config = flow_config(true);
    config.issuer.registration_burst = 2;
    config.issuer.registration_per_minute = 1.0;
    let s = Stack::start_with(config).await;
    let meta = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"});
    assert_eq!(register(&s, meta.clone()).await.status(), 201);
    assert_eq!(register(&s, meta.clone()).await.status(), 201);
    let resp = register(&s, meta.clone()).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    s.stop().await;

    let mut off = flow_config(true);
    off.issuer.registration = false;
    let s = Stack::start_with(off).await;
    let resp = register(&s, meta).await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    assert_eq!(
        body["error_description"],
        "dynamic client registration is turned off on this issuer ([issuer] registration = false); ask its operator for a pre-registered client"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_preregistered_confidential_client_uses_the_code_flow_with_its_secret() {
    let mut config = flow_config(true);
    config.issuer.clients[0].redirect_uris = vec![REDIRECT.into()];
    let s = Stack::start_with(config).await;
    let code = code_for(&s, SUPPORT.0).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", SUPPORT.0),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_ON_PORT),
    ];
    let (status, body) = token(&s, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a confidential client must authenticate"
    );
    let code = code_for(&s, SUPPORT.0).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_ON_PORT),
    ];
    let resp = s
        .http
        .post(format!("{}/token", s.issuer))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], "demo");
    assert!(body["refresh_token"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn auto_approve_without_a_user_refuses_to_start() {
    warden::install_crypto_provider();
    let mut config = flow_config(true);
    config.issuer.users.clear();
    let tmp = tempfile::tempdir().unwrap();
    let err = warden::serve::start(&config, tmp.path(), &Default::default()).await.err().expect("refused");
    assert_eq!(
        err.to_string(),
        "[issuer] auto_approve = true needs a user to approve as: add one under [issuer.users]"
    );
}

/// A POST of `form` to `path` on the issuer, with HTTP Basic credentials when `basic`:
/// (status, `WWW-Authenticate`, body as JSON or `null` when empty).
async fn post_form(s: &Stack, path: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (u16, String, Value) {
    let mut req = s.http.post(format!("{}{path}", s.issuer)).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, challenge, body)
}

/// Registers a confidential client for client credentials with `method`; (id, secret).
async fn confidential_client(s: &Stack, method: &str) -> (String, String) {
    let resp = register(
        s,
        json!({"client_name": "Backend", "token_endpoint_auth_method": method,
               "grant_types": ["client_credentials"], "scope": "customer:read"}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    (body["client_id"].as_str().unwrap().to_string(), body["client_secret"].as_str().unwrap().to_string())
}

/// A client credentials request with the secret in the `basic` header or the `post` form.
async fn cc_token(s: &Stack, basic: Option<(&str, &str)>, post: Option<(&str, &str)>) -> (u16, String, Value) {
    let mut form = vec![("grant_type", "client_credentials"), ("resource", s.mcp.as_str())];
    if let Some((id, secret)) = post {
        form.extend([("client_id", id), ("client_secret", secret)]);
    }
    post_form(s, "/token", basic, &form).await
}

/// Issue 14: a client registered with a `token_endpoint_auth_method` authenticates exactly
/// that way at /token and /revoke. Before, a public client's secret was checked (and
/// counted) like a wrong one, and a client_secret_basic client could send its secret in the
/// form. A config client that names no method still takes either.
#[tokio::test]
async fn the_registered_client_authentication_method_is_enforced_at_token_and_revoke() {
    let mut config = flow_config(true);
    config.issuer.clients[1].token_endpoint_auth_method = Some("client_secret_post".into());
    let s = Stack::start_with(config).await;
    let basic_challenge = "Basic realm=\"warden\"";
    let bearer_challenge = "Bearer realm=\"warden\"";

    // client_secret_basic: the secret in the form is refused, in the header taken.
    let (basic_id, basic_secret) = confidential_client(&s, "client_secret_basic").await;
    let basic_refusal = format!(
        "client {basic_id} is registered for client_secret_basic: send its client_id and client_secret in the Authorization header (HTTP Basic), not in the form"
    );
    let (status, challenge, body) = cc_token(&s, None, Some((&basic_id, &basic_secret))).await;
    assert_eq!((status, challenge.as_str(), body["error"].as_str()), (401, basic_challenge, Some("invalid_client")));
    assert_eq!(body["error_description"], basic_refusal.as_str());
    let (status, _, body) = cc_token(&s, Some((&basic_id, &basic_secret)), None).await;
    assert_eq!(status, 200, "{body}");

    // client_secret_post: the header is refused (the challenge is not Basic), the form taken.
    let (post_id, post_secret) = confidential_client(&s, "client_secret_post").await;
    let (status, challenge, body) = cc_token(&s, Some((&post_id, &post_secret)), None).await;
    assert_eq!((status, challenge.as_str(), body["error"].as_str()), (401, bearer_challenge, Some("invalid_client")));
    assert_eq!(
        body["error_description"],
        format!(
            "client {post_id} is registered for client_secret_post: send its client_id and client_secret in the form, not in an Authorization header"
        )
    );
    let (status, _, body) = cc_token(&s, None, Some((&post_id, &post_secret))).await;
    assert_eq!(status, 200, "{body}");
    // A wrong secret sent the wrong way is just a wrong secret: the method is only named to
    // a client that proved it holds the secret.
    let (status, _, body) = cc_token(&s, None, Some((&basic_id, "not-the-secret"))).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (401, Some("client authentication failed: check client_id and client_secret"))
    );

    // A public client (none) sending a secret, in the form or the header.
    let public_id = public_client(&s).await;
    let code = code_for(&s, &public_id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_ON_PORT),
        ("client_id", public_id.as_str()),
        ("client_secret", "made-up"),
    ];
    let public_refusal = format!(
        "client {public_id} is registered as a public client (token_endpoint_auth_method none): send its client_id alone, without a client secret"
    );
    let (status, challenge, body) = post_form(&s, "/token", None, &exchange).await;
    assert_eq!((status, challenge.as_str(), body["error"].as_str()), (401, bearer_challenge, Some("invalid_client")));
    assert_eq!(body["error_description"], public_refusal.as_str());
    let (status, challenge, body) = post_form(&s, "/token", Some((&public_id, "made-up")), &exchange[..4]).await;
    assert_eq!(
        (status, challenge.as_str(), body["error_description"].as_str()),
        (401, basic_challenge, Some(public_refusal.as_str()))
    );
    let (status, _, body) = post_form(&s, "/token", None, &exchange[..5]).await;
    assert_eq!(status, 200, "the refused attempts did not consume the code: {body}");

    // Config clients: one that names no method takes either; readonly-agent names post.
    assert_eq!(cc_token(&s, None, Some(SUPPORT)).await.0, 200, "support-agent by the form");
    assert_eq!(cc_token(&s, Some(SUPPORT), None).await.0, 200, "support-agent by Basic");
    let (status, _, body) = cc_token(&s, Some(common::READONLY), None).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            401,
            Some(
                "client readonly-agent is registered for client_secret_post: send its client_id and client_secret in the form, not in an Authorization header"
            )
        )
    );
    assert_eq!(cc_token(&s, None, Some(common::READONLY)).await.0, 200);

    // The same rule at /revoke.
    let form = [("token", "whatever"), ("client_id", basic_id.as_str()), ("client_secret", basic_secret.as_str())];
    let (status, challenge, body) = post_form(&s, "/revoke", None, &form).await;
    assert_eq!((status, challenge.as_str(), body["error"].as_str()), (401, basic_challenge, Some("invalid_client")));

    let log = decisions(&s);
    let recorded = |outcome: &str, detail: String| log.iter().any(|(o, d)| o == outcome && *d == detail);
    assert!(recorded("token_refused", format!("invalid_client: {public_refusal}")), "{log:?}");
    assert!(recorded("token_refused", format!("invalid_client: {basic_refusal}")), "{log:?}");
    assert!(recorded("revocation_refused", format!("invalid_client: {basic_refusal}")), "{log:?}");
    s.stop().await;
}

/// Issue 14: RFC 7009 at /revoke. A refresh token — current or rotated away — ends its whole
/// sign-in for good (across a restart); unknown and already revoked tokens, and another
/// client's, are a 200 that changes nothing; a live access token goes on the deny-list of
/// the service running in the same process, which refuses it from then on. Every answer is
/// in the audit trail, no token is.
#[tokio::test]
async fn revoking_a_refresh_token_ends_the_sign_in_and_other_tokens_get_rfc_7009_answers() {
    let s = Stack::start_with(flow_config(true)).await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["revocation_endpoint"], format!("{}/revoke", s.issuer));

    let client_id = public_client(&s).await;
    let other = public_client(&s).await;
    let (_, first) = exchange(&s, &client_id, &code_for(&s, &client_id).await, VERIFIER).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_string();
    let a1 = first["access_token"].as_str().unwrap().to_string();
    let (_, second) = refresh(&s, &client_id, &r1, None).await;
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    let revoke = |client: String, token: String, hint: Option<&'static str>| {
        let s = &s;
        async move {
            let mut form = vec![("client_id", client.as_str()), ("token", token.as_str())];
            if let Some(h) = hint {
                form.push(("token_type_hint", h));
            }
            post_form(s, "/revoke", None, &form).await
        }
    };

    // Another client's refresh token: 200, and it still works.
    assert_eq!(revoke(other.clone(), r2.clone(), Some("refresh_token")).await, (200, String::new(), Value::Null));
    let (status, third) = refresh(&s, &client_id, &r2, None).await;
    assert_eq!(status, 200, "another client's revocation did nothing: {third}");
    let r3 = third["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(revoke(client_id.clone(), "never-issued".into(), None).await.0, 200);

    // The owner revokes the live token: the family is gone, rotated tokens included.
    assert_eq!(revoke(client_id.clone(), r3.clone(), Some("refresh_token")).await, (200, String::new(), Value::Null));
    for (which, token) in [("revoked", &r3), ("rotated earlier", &r2)] {
        let (status, body) = refresh(&s, &client_id, token, None).await;
        assert_eq!(
            (status, body["error"].as_str(), body["error_description"].as_str()),
            (400, Some("invalid_grant"), Some("the refresh token is unknown, expired or revoked; sign in again")),
            "{which}"
        );
    }
    assert_eq!(revoke(client_id.clone(), r3.clone(), None).await.0, 200, "already revoked: still 200");

    // A live access token: another client cannot touch it; its own client revokes it, and
    // the service (in this process, trusting this issuer) refuses it from then on.
    let call = common::tools_call("get_customer_info", json!({"customer_id": "ABC123"}));
    assert_eq!(revoke(other.clone(), a1.clone(), None).await.0, 200, "another client's access token: nothing done");
    assert_eq!(s.mcp_post(Some(&a1), &call).await.status(), 200, "still good");
    assert_eq!(revoke(client_id.clone(), a1.clone(), Some("access_token")).await, (200, String::new(), Value::Null));
    let refused = s.mcp_post(Some(&a1), &call).await;
    let revoked_challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"the access token was revoked at the authorization server\", resource_metadata=\"{}\"",
        s.resource_metadata_url()
    );
    assert_eq!((refused.status().as_u16(), common::www_authenticate(&refused)), (401, revoked_challenge));
    let jti = claims(&a1)["jti"].as_str().unwrap().to_string();
    let (status, _, body) = revoke(client_id.clone(), r3.clone(), Some("id_token")).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_token_type")));
    let (status, _, body) = post_form(&s, "/revoke", None, &[("client_id", client_id.as_str())]).await;
    assert_eq!((status, body["error_description"].as_str()), (400, Some("missing token")));
    let (status, _, body) = post_form(&s, "/revoke", None, &[("token", r3.as_str())]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "no client, no revocation");

    // A revocation survives a restart (a fresh sign-in, revoked, then the issuer restarted).
    let (_, fresh) = exchange(&s, &client_id, &code_for(&s, &client_id).await, VERIFIER).await;
    let r4 = fresh["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(revoke(client_id.clone(), r4.clone(), None).await.0, 200);

    let log = decisions(&s);
    let revocations: Vec<&(String, String)> =
        log.iter().filter(|(o, _)| o.starts_with("revocation") || o == "token_revoked").collect();
    let signed_in =
        format!("refresh token revoked with its sign-in (every token of the family), signed in as demo for {}", s.mcp);
    let unknown = "an unknown, expired or already revoked token: nothing to revoke".to_string();
    let expected: Vec<(String, String)> = vec![
        ("revocation_ignored".into(), "a refresh token of another client: not revoked".into()),
        ("revocation_ignored".into(), unknown.clone()),
        ("token_revoked".into(), signed_in.clone()),
        ("revocation_ignored".into(), unknown.clone()),
        ("revocation_ignored".into(), "an access token of another client: not revoked".into()),
        ("token_revoked".into(), format!("access token revoked (jti {jti}); the MCP service refuses it from now on")),
        ("revocation_refused".into(), "unsupported_token_type: token_type_hint \"id_token\" is not a token type this issuer hands out; use refresh_token or access_token, or leave it out".into()),
        ("revocation_refused".into(), "invalid_request: missing token".into()),
        ("revocation_refused".into(), "invalid_client: client authentication required (client_secret_basic or client_secret_post)".into()),
        ("token_revoked".into(), signed_in),
    ];
    assert_eq!(revocations, expected.iter().collect::<Vec<_>>());
    let mut trail = String::new();
    for f in std::fs::read_dir(s.state.join("audit")).unwrap() {
        trail.push_str(&std::fs::read_to_string(f.unwrap().path()).unwrap());
    }
    for token in [&r1, &r2, &r3, &r4, &a1] {
        assert!(!trail.contains(token.as_str()), "no token in the audit trail");
    }

    let state = s.state.clone();
    let tmp = s.stop().await;
    let s = Stack::start_in(&state, flow_config(true), false).await;
    let (status, body) = refresh(&s, &client_id, &r4, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "still revoked after a restart");
    s.stop().await;
    drop(tmp);
}

/// Issue 14: an issuer with no MCP service in its process (here `--only issuer`) has no
/// one to tell of a revoked access token, so it says `unsupported_token_type` instead of a
/// 200 that would claim more than was done.
#[tokio::test]
async fn without_its_service_in_process_the_issuer_does_not_claim_to_revoke_access_tokens() {
    warden::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = flow_config(false);
    config.issuer.resources = vec!["https://mcp.example/mcp".into()];
    let opts = warden::serve::ServeOptions { only: Some(warden::serve::Only::Issuer), ..Default::default() };
    let running = warden::serve::start(&config, tmp.path(), &opts).await.expect("issuer starts");
    let issuer = running.issuer_url.clone().unwrap();
    let http = warden::security::tls::http_client(
        &warden::security::tls::ClientTls { ca_file: Some(tmp.path().join("tls/ca.pem")), ca_only: true },
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let token: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let resp = http
        .post(format!("{issuer}/revoke"))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&[("token", access), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_token_type");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(
            "this issuer cannot revoke access tokens: they are self-contained JWTs, and no MCP service in its process checks its revocations; this one expires in "
        ),
        "{description}"
    );
    assert!(description.ends_with(" s — revoke the refresh token to end the sign-in"), "{description}");
    running.shutdown().await;
}

/// Issue 14: a confidential client revokes with its registered method (Basic here) and
/// its refresh token is dead; the same revocation sent in the form is refused, and
/// revokes nothing.
#[tokio::test]
async fn a_confidential_client_revokes_its_refresh_token_with_its_registered_method() {
    let s = Stack::start_with(flow_config(true)).await;
    let resp = register(
        &s,
        json!({"client_name": "Web app", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic",
               "grant_types": ["authorization_code", "refresh_token"]}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let reg: Value = resp.json().await.unwrap();
    let (id, secret) = (reg["client_id"].as_str().unwrap(), reg["client_secret"].as_str().unwrap());
    let code = code_for(&s, id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT_ON_PORT),
    ];
    let (status, _, body) = post_form(&s, "/token", Some((id, secret)), &exchange).await;
    assert_eq!(status, 200, "{body}");
    let r1 = body["refresh_token"].as_str().unwrap().to_string();

    let in_form = [("token", r1.as_str()), ("client_id", id), ("client_secret", secret)];
    let (status, challenge, _) = post_form(&s, "/revoke", None, &in_form).await;
    assert_eq!((status, challenge.as_str()), (401, "Basic realm=\"warden\""));
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", r1.as_str())];
    let (status, _, body) = post_form(&s, "/token", Some((id, secret)), &refresh_form).await;
    assert_eq!(status, 200, "the refused revocation revoked nothing: {body}");
    let r2 = body["refresh_token"].as_str().unwrap().to_string();

    let (status, _, body) = post_form(&s, "/revoke", Some((id, secret)), &[("token", r2.as_str())]).await;
    assert_eq!((status, body), (200, Value::Null));
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", r2.as_str())];
    let (status, _, body) = post_form(&s, "/token", Some((id, secret)), &refresh_form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    s.stop().await;
}
