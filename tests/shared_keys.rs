//! Issuer instances sharing one key directory (`[issuer] keys_dir`): any instance's JWKS
//! verifies any instance's tokens, and a rotation on one is picked up by the others and by
//! the service without a restart and without a refused call.
//!
//! Two real issuers and one service on loopback TLS, each with its own state directory (as
//! on separate machines) but one key directory. Both issuers name the same public issuer
//! URL, instance two's address, standing for the proxy in front of them; the service
//! fetches its keys there, so a key rotated in by instance one reaches the service only if
//! instance two has picked it up.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use warden::security::tls::{ClientTls, DevPki, http_client};
use warden::serve::{Only, Running, ServeOptions, start};
use warden::types::time::ManualClock;

use common::{SUPPORT, free_addr, tools_call};

async fn token(http: &reqwest::Client, issuer_addr: std::net::SocketAddr, resource: &str) -> String {
    let resp = http
        .post(format!("https://{issuer_addr}/token"))
        .basic_auth(SUPPORT.0, Some(SUPPORT.1))
        .form(&[("grant_type", "client_credentials"), ("resource", resource)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "token from {issuer_addr}");
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn call(http: &reqwest::Client, mcp: &str, token: &str) -> u16 {
    http.post(mcp)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .bearer_auth(token)
        .body(tools_call("get_customer_info", json!({"customer_id": "ABC123"})).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_rotation_on_one_issuer_instance_verifies_everywhere_with_no_refused_call() {
    warden::install_crypto_provider();
    let root = tempfile::tempdir().unwrap();
    let pki = DevPki::new(root.path());
    pki.ensure().unwrap();
    let (addr1, addr2, mcp_addr) = (free_addr(), free_addr(), free_addr());
    let issuer = format!("https://{addr2}");
    let mcp = format!("https://{mcp_addr}/mcp");
    let mut config = common::config(None);
    config.tls.cert = Some(root.path().join("tls/server.pem"));
    config.tls.key = Some(root.path().join("tls/server.key"));
    config.issuer.url = Some(issuer.clone());
    config.issuer.keys_dir = Some(root.path().join("keys"));
    config.issuer.resources = vec![mcp.clone()];
    config.service.issuer = Some(issuer.clone());
    config.service.issuer_ca_file = Some(pki.ca_path());
    let http =
        http_client(&ClientTls { ca_file: Some(pki.ca_path()), ca_only: true }, Duration::from_secs(10)).unwrap();

    let issuer_at = |addr, dir: &str| {
        let opts = ServeOptions { issuer_addr: Some(addr), only: Some(Only::Issuer), ..Default::default() };
        let (config, state) = (config.clone(), root.path().join(dir));
        async move { start(&config, &state, &opts).await.expect("issuer starts") }
    };
    // Started together on the empty key directory: they must agree on one key.
    let (one, two): (Running, Running) = tokio::join!(issuer_at(addr1, "issuer-1"), issuer_at(addr2, "issuer-2"));
    let active = |r: &Running| r.keys.as_ref().unwrap().active().kid.clone();
    let first = active(&one);
    assert_eq!(active(&two), first, "two instances starting together made one key");

    // The service's clock is moved by hand past its one-second gap between JWKS fetches,
    // so the test does not wait for it.
    let clock = ManualClock::starting_now();
    let service_opts = ServeOptions {
        mcp_addr: Some(mcp_addr),
        only: Some(Only::Service),
        clock: Some(clock.clone()),
        ..Default::default()
    };
    let service = start(&config, &root.path().join("service"), &service_opts).await.expect("service starts");

    let before = [token(&http, addr1, &mcp).await, token(&http, addr2, &mcp).await];
    for t in &before {
        assert_eq!(kid(t), first);
        assert_eq!(call(&http, &mcp, t).await, 200);
    }

    clock.advance(Duration::from_secs(2));
    let second = one.keys.as_ref().unwrap().rotate().unwrap();
    assert_ne!(second, first);

    // Instance two publishes the new key (newest first) and the old one, without a restart.
    let jwks: Value = http.get(format!("https://{addr2}/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids, vec![second.as_str(), first.as_str()]);

    // New tokens from both instances carry the new key and are accepted at once; the
    // tokens signed before the rotation still are too.
    let after = [token(&http, addr1, &mcp).await, token(&http, addr2, &mcp).await];
    for t in &after {
        assert_eq!(kid(t), second, "every instance signs with the rotated key");
        assert_eq!(call(&http, &mcp, t).await, 200, "a token signed with the rotated key was refused");
    }
    for t in &before {
        assert_eq!(call(&http, &mcp, t).await, 200, "a token signed before the rotation was refused");
    }

    service.shutdown().await;
    one.shutdown().await;
    two.shutdown().await;
}
