//! The embedded authorization server over real HTTPS: token issuance, every RFC 6749 /
//! RFC 8707 error, metadata documents, and key rotation across a restart.

mod common;

use base64::Engine;
use common::{AUDITOR, READONLY, SUPPORT, Stack};
use serde_json::{Value, json};

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_string(), body["error_description"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn metadata_documents_describe_the_issuer() {
    let s = Stack::start().await;
    let meta: Value = s
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], s.issuer.as_str());
    assert_eq!(meta["token_endpoint"], format!("{}/token", s.issuer));
    assert_eq!(meta["jwks_uri"], format!("{}/jwks.json", s.issuer));
    assert_eq!(meta["grant_types_supported"], json!(["authorization_code", "client_credentials", "refresh_token"]));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        meta["scopes_supported"],
        json!(["account:calculate", "customer:read", "security:read", "ticket:create"])
    );

    let jwks: Value = s.http.get(format!("{}/jwks.json", s.issuer)).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0]["alg"].as_str(), keys[0]["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(keys[0]["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(keys[0].get("d").is_none() && keys[0].get("p").is_none(), "public parts only");
    s.stop().await;
}

#[tokio::test]
async fn client_secret_basic_issues_an_rfc9068_token() {
    let s = Stack::start().await;
    let resp = s.token_response(SUPPORT, &[("scope", "customer:read ticket:create"), ("resource", &s.mcp)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "customer:read ticket:create");
    let token = body["access_token"].as_str().unwrap();

    let header = decode_part(token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    let jwks: Value = s.http.get(format!("{}/jwks.json", s.issuer)).send().await.unwrap().json().await.unwrap();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = decode_part(token, 1);
    assert_eq!(claims["iss"], s.issuer.as_str());
    assert_eq!(claims["sub"], "support-agent");
    assert_eq!(claims["client_id"], "support-agent");
    assert_eq!(claims["aud"], s.mcp.as_str());
    assert_eq!(claims["scope"], "customer:read ticket:create");
    let (iat, nbf, exp) =
        (claims["iat"].as_u64().unwrap(), claims["nbf"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    let now = warden::types::time::now_epoch();
    assert!(iat.abs_diff(now) <= 5, "iat is real UTC epoch seconds");
    assert_eq!((nbf, exp - iat), (iat, 900));
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    s.stop().await;
}

#[tokio::test]
async fn client_secret_post_and_default_scopes() {
    let s = Stack::start().await;
    let resp = s
        .http
        .post(format!("{}/token", s.issuer))
        .form(&[("grant_type", "client_credentials"), ("client_id", READONLY.0), ("client_secret", READONLY.1)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // No scope requested: the client's defaults. No resource: the local service.
    assert_eq!(body["scope"], "customer:read");
    assert_eq!(decode_part(body["access_token"].as_str().unwrap(), 1)["aud"], s.mcp.as_str());
    s.stop().await;
}

#[tokio::test]
async fn client_authentication_errors() {
    let s = Stack::start().await;
    let wrong = s.token_response((SUPPORT.0, "wrong-secret"), &[]).await;
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"warden\"");
    let (status, error, description) = error_of(wrong).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(description.contains("check client_id and client_secret"), "{description}");

    let (status, error, _) = error_of(s.token_response(("nobody", "x"), &[]).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));

    let none =
        s.http.post(format!("{}/token", s.issuer)).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(error_of(none).await.1, "invalid_client");

    let both = s
        .http
        .post(format!("{}/token", s.issuer))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&[("grant_type", "client_credentials"), ("client_id", SUPPORT.0), ("client_secret", SUPPORT.1)])
        .send()
        .await
        .unwrap();
    let (status, error, _) = error_of(both).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    s.stop().await;
}

#[tokio::test]
async fn grant_scope_and_target_errors() {
    let s = Stack::start().await;
    let post = |form: Vec<(&'static str, String)>| {
        s.http.post(format!("{}/token", s.issuer)).basic_auth(SUPPORT.0, Some(SUPPORT.1)).form(&form).send()
    };
    let (status, error, _) = error_of(post(vec![]).await.unwrap()).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"), "missing grant_type");

    let (_, error, description) = error_of(post(vec![("grant_type", "password".into())]).await.unwrap()).await;
    assert_eq!(error, "unsupported_grant_type");
    assert!(description.contains("client_credentials"));

    let (status, error, description) =
        error_of(s.token_response(READONLY, &[("scope", "customer:read ticket:create")]).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_scope"));
    assert_eq!(description, "client readonly-agent may not request: ticket:create");

    let (_, error, _) = error_of(s.token_response(AUDITOR, &[("scope", "bad\"scope")]).await).await;
    assert_eq!(error, "invalid_scope");

    let (status, error, description) =
        error_of(s.token_response(SUPPORT, &[("resource", "https://elsewhere.example/mcp")]).await).await;
    assert_eq!((status, error.as_str()), (400, "invalid_target"));
    assert!(description.contains("unknown resource"));

    let (_, error, _) = error_of(s.token_response(SUPPORT, &[("resource", "not a uri")]).await).await;
    assert_eq!(error, "invalid_target");

    let repeated =
        post(vec![("grant_type", "client_credentials".into()), ("scope", "a".into()), ("scope", "b".into())])
            .await
            .unwrap();
    assert_eq!(error_of(repeated).await.1, "invalid_request");

    // Regression (issue 11, defect 12): a repeated parameter's name went raw and whole into
    // the error description and the log line, so a newline in it forged a log line.
    let name = format!("scope\nINFO warden::issuer: token issued client_id=admin {}", "x".repeat(5000));
    let body = format!("grant_type=client_credentials&{0}=a&{0}=b", urlencode(&name));
    let forged = s
        .http
        .post(format!("{}/token", s.issuer))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, error, description) = error_of(forged).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    assert!(!description.contains('\n'), "{description:.100}");
    assert!(description.starts_with("parameter `scope\\nINFO warden::issuer: token issued"), "{description:.100}");
    assert!(description.chars().count() < 120, "cut short: {} chars", description.chars().count());

    let json_body = s
        .http
        .post(format!("{}/token", s.issuer))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    let (_, error, description) = error_of(json_body).await;
    assert_eq!(error, "invalid_request");
    assert!(description.contains("x-www-form-urlencoded"));
    s.stop().await;
}

#[tokio::test]
async fn rotation_keeps_in_flight_tokens_valid() {
    let s = Stack::start().await;
    let old = s.token(SUPPORT, Some("customer:read")).await;
    let old_kid = decode_part(&old, 0)["kid"].clone();
    let state = s.state.clone();
    let (state_issuer, state_mcp) = (s.issuer.clone(), s.mcp.clone());
    let tmp = s.stop().await;

    // Restart on the same state dir and the same ports, with --rotate-keys.
    let mut config = common::config(None);
    config.issuer.addr = s_issuer_addr(&state_issuer);
    config.service.addr = s_issuer_addr(&state_mcp);
    let s = Stack::start_in(&state, config, true).await;
    let jwks: Value = s.http.get(format!("{}/jwks.json", s.issuer)).send().await.unwrap().json().await.unwrap();
    let kids: Vec<Value> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], old_kid, "previous key stays published");
    let new = s.token(SUPPORT, Some("customer:read")).await;
    assert_eq!(decode_part(&new, 0)["kid"], kids[0]);
    assert_ne!(kids[0], old_kid);

    // The token signed before the rotation still verifies at the service, as does the new one.
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(s.mcp_post(Some(&new), &list).await.status(), 200);
    assert_eq!(s.mcp_post(Some(&old), &list).await.status(), 200);
    s.stop().await;
    drop(tmp);
}

/// The socket address in an `https://host:port[/path]` URL.
fn s_issuer_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("https://").split('/').next().unwrap().parse().unwrap()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("k", s)]).unwrap().trim_start_matches("k=").to_string()
}
