//! Hostile input at the live service (issue 11, "Hostile input and fuzzing"): a table of
//! forged and malformed tokens and requests sent over real TLS, each over HTTP/1.1 and
//! HTTP/2. Every one must get 401 with the full `WWW-Authenticate: Bearer` challenge
//! (`error="invalid_token"` and the check that failed when a token was presented; the bare
//! `resource_metadata` challenge when none was), never a 5xx or a panic, and the service
//! must answer a valid request right after. Headers that point at keys elsewhere (`jku`,
//! `x5u`, `jwk`, `x5c`) aim at a listener this test owns, which must see no connection.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use common::{READONLY, Stack};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// Panics anywhere in this test binary (the servers run in-process), counted by a hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
}

/// What one case sends.
enum Send {
    /// `Authorization: Bearer <token>` on a `tools/list` POST.
    Bearer(String),
    /// A request with no Authorization header: method, `?query` on /mcp, content type, body.
    NoHeader { method: &'static str, query: String, content_type: &'static str, body: String },
}

/// What the service must answer (always 401).
enum Expect {
    /// `error="invalid_token"` with exactly this description.
    InvalidToken(String),
    /// The bare challenge: the request carried no usable bearer token.
    Challenge,
    /// A header section past the servers' budget (`serve::MAX_HEADER_BYTES`): 431 (RFC 6585)
    /// before the request reaches any handler (an h2 client that honours the server's
    /// advertised limit does not send it at all).
    HeaderTooLarge,
}

struct Case {
    name: String,
    send: Send,
    expect: Expect,
}

fn case(name: impl Into<String>, token: String, description: impl Into<String>) -> Case {
    Case { name: name.into(), send: Send::Bearer(token), expect: Expect::InvalidToken(description.into()) }
}

fn pem(label: &str, der: &[u8], trailing_newline: bool) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let mut out = format!("-----BEGIN {label}-----\n{}\n-----END {label}-----", lines.join("\n"));
    if trailing_newline {
        out.push('\n');
    }
    out
}

/// A compact JWS of `header` and `claims` signed with `key` under `alg`.
fn jws(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// An unsigned JWS (`alg: none` style): header and claims, then `signature` verbatim.
fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

struct RsaKey {
    encoding: EncodingKey,
    pair: aws_lc_rs::rsa::KeyPair,
}

fn rsa_from_pkcs8_pem(pem_text: &str) -> RsaKey {
    let body: String = pem_text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    RsaKey {
        encoding: EncodingKey::from_rsa_pem(pem_text.as_bytes()).unwrap(),
        pair: aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).unwrap(),
    }
}

fn fresh_rsa() -> RsaKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der = pair.as_der().unwrap();
    rsa_from_pkcs8_pem(&pem("PRIVATE KEY", der.as_ref(), true))
}

/// The public JWK of `key` (what an attacker would embed or serve).
fn public_jwk(key: &RsaKey, kid: &str) -> Value {
    use aws_lc_rs::signature::KeyPair as _;
    let public = key.pair.public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
        "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
    })
}

/// A loopback listener that only counts the connections it accepts.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr.to_string(), seen)
}

#[tokio::test]
async fn forged_and_malformed_requests_get_the_401_challenge_and_nothing_else() {
    count_panics();
    let s = Stack::start().await;
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(s.state.join("issuer/signing-keys.json")).unwrap()).unwrap();
    let kid = stored["keys"][0]["kid"].as_str().unwrap().to_string();
    let issuer_key = rsa_from_pkcs8_pem(stored["keys"][0]["private_key_pem"].as_str().unwrap());
    let foreign = fresh_rsa();
    let (listener, connections) = counting_listener().await;

    let now = warden::types::time::now_epoch() as i64;
    let good = json!({
        "iss": s.issuer, "sub": "support-agent", "client_id": "support-agent", "aud": s.mcp,
        "scope": "customer:read", "iat": now, "nbf": now, "exp": now + 600, "jti": "hostile-jti"
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let hdr = |extra: Value| {
        let mut h = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        h
    };
    let rs = |h: &Value, c: &Value| jws(h, c, &issuer_key.encoding, Algorithm::RS256);
    let valid = rs(&hdr(json!({})), &good);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(s.mcp_post(Some(&valid), &list).await.status(), 200, "sanity: a token minted here verifies");

    let alg_refused = |alg: &str| format!("token algorithm {alg:?} is not allowed (only RS256)");
    let bad_signature = "token signature is invalid";
    let unknown_kid = |k: &str| format!("no signing key with kid {k:?} in the issuer's JWKS");
    let malformed = "token is not a well-formed JWS compact serialization";
    let mut cases: Vec<Case> = Vec::new();

    // alg "none" in every casing, with an empty and a (real, stolen) non-empty signature.
    let stolen_sig = valid.rsplit('.').next().unwrap().to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for (label, sig) in [("empty signature", ""), ("a valid RS256 signature", stolen_sig.as_str())] {
            cases.push(case(
                format!("alg {alg}, {label}"),
                unsigned(&hdr(json!({"alg": alg})), &good, sig),
                alg_refused(alg),
            ));
        }
    }

    // HMAC keyed with the issuer's public key, in every encoding an RSA key has.
    {
        use aws_lc_rs::signature::KeyPair as _;
        let public = issuer_key.pair.public_key();
        let spki = public.as_der().unwrap().as_ref().to_vec();
        let pkcs1 = public.as_ref().to_vec();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let jwks_text = s.http.get(format!("{}/jwks.json", s.issuer)).send().await.unwrap().text().await.unwrap();
        let jwks: Value = serde_json::from_str(&jwks_text).unwrap();
        let encodings: Vec<(&str, Vec<u8>)> = vec![
            ("SPKI PEM with trailing newline", pem("PUBLIC KEY", &spki, true).into_bytes()),
            ("SPKI PEM without trailing newline", pem("PUBLIC KEY", &spki, false).into_bytes()),
            ("PKCS#1 PEM with trailing newline", pem("RSA PUBLIC KEY", &pkcs1, true).into_bytes()),
            ("PKCS#1 PEM without trailing newline", pem("RSA PUBLIC KEY", &pkcs1, false).into_bytes()),
            ("SPKI DER", spki.clone()),
            ("PKCS#1 DER", pkcs1.clone()),
            ("the JWK as served", jwks["keys"][0].to_string().into_bytes()),
            ("the JWKS document as served", jwks_text.into_bytes()),
            ("the raw modulus bytes", modulus.clone()),
            ("the modulus as base64url (JWK n)", B64.encode(&modulus).into_bytes()),
        ];
        for (alg, name) in [(Algorithm::HS256, "HS256"), (Algorithm::HS384, "HS384"), (Algorithm::HS512, "HS512")] {
            for (label, bytes) in &encodings {
                let token = jws(&hdr(json!({"alg": name})), &good, &EncodingKey::from_secret(bytes), alg);
                cases.push(case(format!("{name} keyed with {label}"), token, alg_refused(name)));
            }
        }
    }

    // A freshly generated RSA key: with the issuer's kid, an unknown kid, no kid.
    let fs = |h: &Value, c: &Value| jws(h, c, &foreign.encoding, Algorithm::RS256);
    cases.push(case("foreign key, the issuer's kid", fs(&hdr(json!({})), &good), bad_signature));
    cases.push(case(
        "foreign key, unknown kid",
        fs(&hdr(json!({"kid": "attacker-key"})), &good),
        unknown_kid("attacker-key"),
    ));
    cases.push(case("foreign key, no kid", fs(&hdr(json!({"kid": null})), &good), "token header has no kid"));

    // Key references the verifier must never follow: signed by the foreign key, each
    // pointing at (or carrying) that key. The listener must see no connection at all.
    let jku = format!("https://{listener}/jwks.json");
    let jku_http = format!("http://{listener}/jwks.json");
    let cert_der = {
        let pem_text = std::fs::read_to_string(s.state.join("tls/ca.pem")).unwrap();
        let body: String = pem_text.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    };
    let x5c = json!([STANDARD.encode(&cert_der)]);
    for (field, value) in [
        ("jku", json!(jku)),
        ("jku (http)", json!(jku_http)),
        ("x5u", json!(format!("https://{listener}/cert.pem"))),
        ("jwk", public_jwk(&foreign, "attacker-key")),
        ("x5c", x5c.clone()),
    ] {
        let key = field.split(' ').next().unwrap();
        cases.push(case(
            format!("{field} header, foreign key, the issuer's kid"),
            fs(&hdr(json!({key: value})), &good),
            bad_signature,
        ));
        cases.push(case(
            format!("{field} header, foreign key, the foreign key's kid"),
            fs(&hdr(json!({key: value, "kid": "attacker-key"})), &good),
            unknown_kid("attacker-key"),
        ));
        cases.push(case(
            format!("{field} header, foreign key, no kid"),
            fs(&hdr(json!({key: value, "kid": null})), &good),
            "token header has no kid",
        ));
    }
    cases.push(case(
        "jku, x5u, jwk and x5c together, no kid",
        fs(
            &hdr(json!({"jku": jku, "x5u": jku_http, "jwk": public_jwk(&foreign, "attacker-key"), "x5c": x5c, "kid": null})),
            &good,
        ),
        "token header has no kid",
    ));

    // `crit`, even one naming a registered claim, and even when signed by the issuer's key.
    let crit = "token has critical header parameters we do not understand";
    cases.push(case("crit [\"exp\"], issuer-signed", rs(&hdr(json!({"crit": ["exp"]})), &good), crit));
    cases.push(case("crit [] (empty), issuer-signed", rs(&hdr(json!({"crit": []})), &good), crit));
    cases.push(case("crit with an unknown extension", rs(&hdr(json!({"crit": ["x"], "x": 1})), &good), crit));

    // Wrong number of segments, and headers that are not one JSON object.
    let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    cases.push(case("2 segments", format!("{}.{}", parts[0], parts[1]), malformed));
    cases.push(case("4 segments", format!("{valid}.{}", parts[2]), malformed));
    cases.push(case("5 segments (JWE shape)", format!("{valid}.{}.{}", parts[1], parts[2]), malformed));
    cases.push(case("empty token segments", "..".to_string(), malformed));
    let rest = format!("{}.{}", parts[1], parts[2]);
    cases.push(case("non-JSON header", format!("{}.{rest}", B64.encode("not json at all")), malformed));
    cases.push(case("header is a JSON array", format!("{}.{rest}", B64.encode("[\"RS256\"]")), malformed));
    cases.push(case("header not base64url", format!("!!!.{rest}"), malformed));
    cases.push(case(
        "header with a duplicate alg (RS256 then none)",
        format!("{}.{rest}", B64.encode(format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#))),
        alg_refused("none"),
    ));
    let too_large = format!("token is larger than {} bytes", warden::auth::verify::MAX_TOKEN_BYTES);
    cases.push(case("10 KiB header", rs(&hdr(json!({"pad": "A".repeat(10 * 1024)})), &good), too_large.clone()));
    cases.push(Case {
        name: "16 KiB header".into(),
        send: Send::Bearer(rs(&hdr(json!({"pad": "A".repeat(16 * 1024)})), &good)),
        expect: Expect::InvalidToken(too_large),
    });
    cases.push(Case {
        name: "header section past the servers' budget".into(),
        send: Send::Bearer(rs(&hdr(json!({"pad": "A".repeat(2 * warden::serve::MAX_HEADER_BYTES)})), &good)),
        expect: Expect::HeaderTooLarge,
    });

    // Tampering after signing.
    let flipped = B64.encode(with(&|c| c["scope"] = json!("ticket:create")).to_string());
    cases.push(case("tampered payload (scope flipped)", format!("{}.{flipped}.{}", parts[0], parts[2]), bad_signature));
    let mut sig: Vec<u8> = parts[2].clone().into_bytes();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(sig).unwrap();
    cases.push(case("tampered signature", parts.join("."), bad_signature));

    // Claims, each signed by the issuer's own key.
    cases.push(case(
        "expired",
        rs(
            &hdr(json!({})),
            &with(&|c| {
                c["iat"] = json!(now - 4000);
                c["nbf"] = json!(now - 4000);
                c["exp"] = json!(now - 3600);
            }),
        ),
        "token has expired",
    ));
    cases.push(case(
        "future nbf",
        rs(&hdr(json!({})), &with(&|c| c["nbf"] = json!(now + 3600))),
        "token is not valid yet (nbf in the future)",
    ));
    cases.push(case(
        "string exp",
        rs(&hdr(json!({})), &with(&|c| c["exp"] = json!((now + 600).to_string()))),
        "token claim `exp` has the wrong type or format",
    ));
    cases.push(case(
        "numeric iss",
        rs(&hdr(json!({})), &with(&|c| c["iss"] = json!(1))),
        "token claim `iss` has the wrong type or format",
    ));
    cases.push(case(
        "aud an object",
        rs(&hdr(json!({})), &with(&|c| c["aud"] = json!({"aud": s.mcp}))),
        "token claim `aud` has the wrong type or format",
    ));
    let wrong_iss = "token issuer does not match the trusted issuer";
    cases.push(case("wrong iss", rs(&hdr(json!({})), &with(&|c| c["iss"] = json!("https://evil.example"))), wrong_iss));
    cases.push(case(
        "trailing-slash iss",
        rs(&hdr(json!({})), &with(&|c| c["iss"] = json!(format!("{}/", s.issuer)))),
        wrong_iss,
    ));
    let wrong_aud = "token audience does not include this resource";
    cases.push(case(
        "wrong aud",
        rs(&hdr(json!({})), &with(&|c| c["aud"] = json!("https://127.0.0.1:1/mcp"))),
        wrong_aud,
    ));
    cases.push(case(
        "trailing-slash aud",
        rs(&hdr(json!({})), &with(&|c| c["aud"] = json!(format!("{}/", s.mcp)))),
        wrong_aud,
    ));
    cases.push(case(
        "missing aud",
        rs(
            &hdr(json!({})),
            &with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        "token lacks the required claim `aud`",
    ));

    // typ: RFC 9068 requires at+jwt; JWT, none, or anything else is not an access token.
    for (label, typ) in
        [("typ JWT", json!("JWT")), ("typ jwt", json!("jwt")), ("typ id_token+jwt", json!("id_token+jwt"))]
    {
        let t = typ.as_str().unwrap().to_string();
        cases.push(case(
            label,
            rs(&hdr(json!({"typ": typ})), &good),
            format!("token type {t:?} is not an access token (typ must be at+jwt)"),
        ));
    }
    cases.push(case(
        "typ missing",
        rs(&hdr(json!({"typ": null})), &good),
        "token type \"\" is not an access token (typ must be at+jwt)",
    ));
    cases.push(case(
        "typ a number",
        rs(&hdr(json!({"typ": 1})), &good),
        "token type \"\" is not an access token (typ must be at+jwt)",
    ));

    // A valid token anywhere but the Authorization header is no token at all.
    let form = format!("access_token={valid}");
    for (name, method, query, content_type, body) in [
        (
            "valid token in the query string (POST)",
            "POST",
            format!("?access_token={valid}"),
            "application/json",
            list.to_string(),
        ),
        (
            "valid token in the query string (GET)",
            "GET",
            format!("?access_token={valid}"),
            "application/json",
            String::new(),
        ),
        ("valid token in a form body", "POST", String::new(), "application/x-www-form-urlencoded", form.clone()),
        (
            "valid token in a form body and the query string",
            "POST",
            format!("?access_token={valid}"),
            "application/x-www-form-urlencoded",
            form,
        ),
    ] {
        cases.push(Case {
            name: name.into(),
            send: Send::NoHeader { method, query, content_type, body },
            expect: Expect::Challenge,
        });
    }

    let tls = warden::security::tls::ClientTls { ca_file: Some(s.state.join("tls/ca.pem")), ca_only: true };
    let h1 = warden::security::tls::mcp_http_client(&tls, Duration::from_secs(10)).unwrap();
    let h2 = warden::security::tls::http_client(&tls, Duration::from_secs(10)).unwrap();
    let metadata = s.resource_metadata_url();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for (proto, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        for c in &cases {
            let name = format!("{proto} {}", c.name);
            let req = match &c.send {
                Send::Bearer(token) => client
                    .post(&s.mcp)
                    .header("Accept", "application/json, text/event-stream")
                    .header("Content-Type", "application/json")
                    .bearer_auth(token)
                    .body(list.to_string()),
                Send::NoHeader { method, query, content_type, body } => client
                    .request(method.parse().unwrap(), format!("{}{query}", s.mcp))
                    .header("Accept", "application/json, text/event-stream")
                    .header("Content-Type", *content_type)
                    .body(body.clone()),
            };
            let resp = match req.send().await {
                Ok(r) => r,
                // h2 clients honour the server's advertised SETTINGS_MAX_HEADER_LIST_SIZE and
                // refuse to send such a request at all: refused before it left.
                Err(_) if proto == "HTTP/2" && matches!(c.expect, Expect::HeaderTooLarge) => continue,
                Err(e) => {
                    failures.push(format!("{name}: no answer ({e})"));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let version = resp.version();
            let challenge = common::www_authenticate(&resp);
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let h2_limit = matches!(c.expect, Expect::HeaderTooLarge);
            let want_status = if h2_limit { 431 } else { 401 };
            let (want_challenge, want_body) = match &c.expect {
                _ if h2_limit => (String::new(), Value::Null),
                Expect::HeaderTooLarge => (String::new(), Value::Null),
                Expect::InvalidToken(d) => (
                    format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{metadata}\"",
                        d.replace('\\', "\\\\").replace('"', "\\\"")
                    ),
                    json!({"error": "invalid_token", "error_description": d}),
                ),
                Expect::Challenge => (
                    format!("Bearer resource_metadata=\"{metadata}\""),
                    json!({"error": "unauthorized", "error_description": "a bearer access token is required"}),
                ),
            };
            let want_version = if proto == "HTTP/2" { http::Version::HTTP_2 } else { http::Version::HTTP_11 };
            table.push(format!("{name} -> {status}"));
            if status != want_status || challenge != want_challenge || body != want_body || version != want_version {
                failures.push(format!(
                    "{name}: got {status} {version:?}\n    WWW-Authenticate: {challenge}\n    body: {body}\n  want {want_status} {want_version:?}\n    WWW-Authenticate: {want_challenge}\n    body: {want_body}"
                ));
            }
            // The service is still there and still serves a valid token.
            let after = client.post(&s.mcp).bearer_auth(&valid).header("Accept", "application/json, text/event-stream");
            let after = after.header("Content-Type", "application/json").body(list.to_string()).send().await;
            if after.as_ref().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
                failures.push(format!("{name}: a valid request afterwards got {after:?}"));
            }
        }
    }
    if std::env::var_os("WARDEN_HOSTILE_TABLE").is_some() {
        println!("{}", table.join("\n"));
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a jku/x5u/jwk/x5c header made the service connect out");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked while handling hostile input");

    let readonly = s.token(READONLY, None).await;
    assert_eq!(s.mcp_post(Some(&readonly), &list).await.status(), 200, "the issuer's own tokens still work");
    s.stop().await;
}
