//! The service is not tied to the embedded issuer: run the issuer alone (standing in for
//! Keycloak or Auth0), then the service alone configured to trust it, once by RFC 8414
//! discovery and once with an explicit JWKS URL.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use warden::config::Config;
use warden::security::tls::{ClientTls, http_client};
use warden::serve::{Only, ServeOptions};

const RESOURCE: &str = "https://mcp.support.test/mcp";

fn base() -> Config {
    let mut c = Config::parse(warden::config::DEFAULT_CONFIG, Path::new("builtin")).unwrap();
    c.issuer.addr = "127.0.0.1:0".parse().unwrap();
    c.service.addr = "127.0.0.1:0".parse().unwrap();
    c
}

async fn check(explicit_jwks: bool) {
    warden::install_crypto_provider();
    let as_dir = tempfile::tempdir().unwrap();
    let rs_dir = tempfile::tempdir().unwrap();

    // The "external" authorization server: issuer only, knows our resource by its public URI.
    let mut as_config = base();
    as_config.issuer.resources = vec![RESOURCE.to_string()];
    let issuer_only = ServeOptions { only: Some(Only::Issuer), ..ServeOptions::default() };
    let auth = warden::serve::start(&as_config, as_dir.path(), &issuer_only).await.unwrap();
    let issuer = auth.issuer_url.clone().unwrap();
    assert!(auth.mcp_url.is_none());

    // The resource server: service only, trusting that issuer over TLS with its CA.
    let mut rs_config = base();
    rs_config.service.issuer = Some(issuer.clone());
    rs_config.service.issuer_ca_file = Some(as_dir.path().join("tls/ca.pem"));
    rs_config.service.resource = Some(RESOURCE.to_string());
    if explicit_jwks {
        rs_config.service.jwks_uri = Some(format!("{issuer}/jwks.json"));
    }
    let service_only = ServeOptions { only: Some(Only::Service), ..ServeOptions::default() };
    let rs = warden::serve::start(&rs_config, rs_dir.path(), &service_only).await.unwrap();
    assert!(rs.issuer_url.is_none());
    let mcp_addr = rs.mcp_addr.unwrap();

    let http = |ca: &Path| {
        http_client(&ClientTls { ca_file: Some(ca.to_path_buf()), ca_only: true }, Duration::from_secs(5)).unwrap()
    };
    let token: Value = http(&as_dir.path().join("tls/ca.pem"))
        .post(format!("{issuer}/token"))
        .basic_auth("readonly-agent", Some("demo-readonly-agent-secret-8b1d7a"))
        .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();

    // Reach the service at its bound address while it presents its public resource URI.
    let resp = http(&rs_dir.path().join("tls/ca.pem"))
        .post(format!("https://{mcp_addr}/mcp"))
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_customer_info", "arguments": {"customer_id": "XYZ789"}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"]["structuredContent"]["name"], "Michael Chen");

    let meta: Value = http(&rs_dir.path().join("tls/ca.pem"))
        .get(format!("https://{mcp_addr}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], RESOURCE);
    assert_eq!(meta["authorization_servers"], json!([issuer]));
    rs.shutdown().await;
    auth.shutdown().await;
}

#[tokio::test]
async fn service_trusts_an_external_issuer_found_by_discovery() {
    check(false).await;
}

#[tokio::test]
async fn service_trusts_an_external_issuer_by_explicit_jwks_url() {
    check(true).await;
}
