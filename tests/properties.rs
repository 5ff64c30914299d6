//! Property-based tests (proptest) of the parsers that read outside input (issue 11,
//! "Hostile input and fuzzing"): the ChatAdapter's completion parser, token verification
//! (header and claims), config parsing, the service's request handling behind the bearer
//! guard, and the loopback rule for URLs.
//!
//! Every property checks that nothing panics, that each case ends within a time bound
//! (proptest's per-case `timeout`, which runs the cases in a forked child), that outputs
//! stay bounded, and the real invariant where there is one (round trips, "accepted iff
//! every check passes", "no ticket is ever created without ticket:create", "never loopback
//! unless the host is").
//!
//! The normal suite runs `WARDEN_PROPTEST_CASES` cases per property (default 256: a few
//! seconds). A long run:
//!
//! ```text
//! WARDEN_PROPTEST_CASES=100000 cargo test --release --test properties proptest
//! ```

use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use warden::agent::adapter::chat::ChatAdapter;
use warden::agent::signature::{Field, FieldType, Signature};

/// Cases per property: `WARDEN_PROPTEST_CASES`, default 256.
fn config() -> ProptestConfig {
    let cases = std::env::var("WARDEN_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig {
        cases,
        // Per case, in milliseconds; generous for a loaded 2-core debug build, yet a parser
        // that went quadratic or looped would blow it.
        timeout: 10_000,
        // Failing inputs are printed (with the seed) rather than written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Error texts and responses are shown to operators and written to logs: bounded.
const MAX_MESSAGE: usize = 2048;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    warden::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
});

// ---------------------------------------------------------------------------------------
// ChatAdapter

fn chat_signature() -> Signature {
    Signature::new(
        vec![Field::new("request", FieldType::Str)],
        vec![
            Field::new("answer", FieldType::Str),
            Field::new("count", FieldType::Int),
            Field::new("ok", FieldType::Bool),
            Field::new("ratio", FieldType::Float),
            Field::new("kind", FieldType::Literal(vec!["refund".into(), "ticket".into()])),
            Field::new("items", FieldType::List(Box::new(FieldType::Str))),
            Field::new("args", FieldType::Dict),
        ],
        Some("Property test signature."),
    )
    .unwrap()
}

/// Completions shaped like the chat format (field headers, some known, some not, some
/// malformed) with arbitrary text between them, or arbitrary text alone.
fn completion() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        prop::sample::select(vec!["answer", "count", "ok", "ratio", "kind", "items", "args", "completed"])
            .prop_map(str::to_string),
        "[a-z_]{0,12}",
        ".{0,12}",
    ];
    let header =
        (name, prop::sample::select(vec!["[[ ## {} ## ]]", "[[ ## {} ## ]", "  [[ ## {} ## ]]  ", "[[## {} ##]]"]))
            .prop_map(|(n, shape)| shape.replace("{}", &n));
    let body = prop_oneof![
        ".{0,80}",
        "[0-9.eE+-]{0,20}",
        prop::sample::select(vec!["True", "false", "yes", "refund", "'ticket'", "Literal['refund']", "None"])
            .prop_map(str::to_string),
        "[\\[\\]{}\"':, a-z0-9]{0,60}",
        "```(json)?\n[\\[\\]{}\"':, a-z0-9]{0,40}\n```",
    ];
    let sections = prop::collection::vec((header, body), 0..12)
        .prop_map(|v| v.into_iter().map(|(h, b)| format!("{h}\n{b}")).collect::<Vec<_>>().join("\n"));
    prop_oneof![sections, any::<String>(), ".{0,4000}"]
}

/// A value for each output of `chat_signature`, of the field's type, that survives being
/// written into a completion (text with no header-looking line, trimmed, no `\r`).
fn chat_values() -> impl Strategy<Value = Map<String, Value>> {
    let text = "[a-zA-Z0-9 ,.!?'\"{}:\n«»é-]{0,60}".prop_map(|s| s.trim().to_string());
    let scalar = prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from)
    ];
    (
        text,
        any::<i64>(),
        any::<bool>(),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        prop::sample::select(vec!["refund", "ticket"]),
        prop::collection::vec(any::<String>(), 0..5),
        prop::collection::btree_map("[a-z_]{1,8}", scalar, 0..5),
    )
        .prop_map(|(answer, count, ok, ratio, kind, items, args)| {
            let mut m = Map::new();
            m.insert("answer".into(), json!(answer));
            m.insert("count".into(), json!(count));
            m.insert("ok".into(), json!(ok));
            m.insert("ratio".into(), json!(ratio));
            m.insert("kind".into(), json!(kind));
            m.insert("items".into(), json!(items));
            m.insert("args".into(), Value::Object(args.into_iter().collect()));
            m
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any completion: no panic; an error's text is bounded whatever the completion's size;
    /// a success has exactly the signature's outputs, in order.
    #[test]
    fn proptest_chat_parse_is_total_and_bounded(text in completion()) {
        let sig = chat_signature();
        match ChatAdapter.parse(&sig, &text) {
            Ok(fields) => {
                let names: Vec<&String> = fields.keys().collect();
                let want: Vec<&String> = sig.outputs().iter().map(|f| &f.name).collect();
                prop_assert_eq!(names, want);
            }
            Err(e) => prop_assert!(e.to_string().len() <= MAX_MESSAGE, "error text of {} bytes", e.to_string().len()),
        }
    }

    /// What the adapter writes as an assistant turn, it reads back unchanged.
    #[test]
    fn proptest_chat_format_then_parse_round_trips(values in chat_values()) {
        let sig = chat_signature();
        let text = ChatAdapter.format_assistant(&sig, &values, "");
        let parsed = ChatAdapter.parse(&sig, &text);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&values), "completion:\n{}", text);
    }

    /// A huge field value: parsing fails or succeeds, but an error never quotes it whole.
    #[test]
    fn proptest_chat_errors_do_not_echo_huge_values(filler in "[a-z ]{1,16}", repeat in 100usize..2000) {
        let sig = chat_signature();
        let huge = filler.repeat(repeat);
        for field in ["count", "ok", "ratio", "kind", "items", "args"] {
            let text = format!("[[ ## {field} ## ]]\n{huge}\n[[ ## completed ## ]]");
            if let Err(e) = ChatAdapter.parse(&sig, &text) {
                prop_assert!(e.to_string().len() <= MAX_MESSAGE, "{field}: error text of {} bytes", e.to_string().len());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Token verification

struct Keys {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    verifier: warden::auth::verify::Verifier,
}

const ISSUER: &str = "https://issuer.test";
const RESOURCE: &str = "https://localhost/mcp";
const NOW: u64 = 1_800_000_000;

/// One RSA key for the whole binary: generating one per case would dominate the run.
static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    warden::install_crypto_provider();
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    use aws_lc_rs::encoding::AsDer;
    let der = pair.as_der().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, jsonwebtoken::Algorithm::RS256).unwrap();
    let kid = jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).unwrap();
    jwk.common.key_id = Some(kid.clone());
    let jwks = warden::auth::jwks::JwksCache::fixed(&jsonwebtoken::jwk::JwkSet { keys: vec![jwk] });
    let clock = warden::types::time::ManualClock::at_ms(NOW * 1000);
    let verifier = warden::auth::verify::Verifier::new(
        warden::auth::verify::VerifierConfig { issuer: ISSUER.into(), audience: RESOURCE.into(), leeway_secs: 30 },
        Arc::new(jwks),
    )
    .with_clock(clock);
    Keys { kid, encoding, verifier }
});

fn sign(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &KEYS.encoding, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

fn verify(token: &str) -> Result<Arc<warden::auth::verify::VerifiedClaims>, warden::auth::verify::VerifyError> {
    RUNTIME.block_on(KEYS.verifier.verify(token))
}

fn good_claims(jti: u64) -> Value {
    json!({
        "iss": ISSUER, "sub": "agent", "client_id": "agent", "aud": RESOURCE, "scope": "customer:read",
        "iat": NOW, "nbf": NOW, "exp": NOW + 600, "jti": format!("jti-{jti}")
    })
}

/// A header field: absent, or one of a few values (the good one first).
#[derive(Debug, Clone)]
enum Slot {
    Absent,
    Value(Value),
}

/// `good` three times in five (so that accepted tokens are common), else absent or one of
/// `others`.
fn slot(good: Slot, others: Vec<Value>) -> impl Strategy<Value = Slot> {
    prop_oneof![3 => Just(good), 1 => Just(Slot::Absent), 1 => prop::sample::select(others).prop_map(Slot::Value)]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary text, and three base64url segments of arbitrary bytes, never verify.
    #[test]
    fn proptest_token_garbage_never_verifies(
        text in prop_oneof![any::<String>(), "[A-Za-z0-9_.-]{0,400}", ".{0,9000}"],
        parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 3),
    ) {
        prop_assert!(verify(&text).is_err());
        let joined = parts.iter().map(|p| B64.encode(p)).collect::<Vec<_>>().join(".");
        prop_assert!(verify(&joined).is_err());
    }

    /// Signed by the trusted key, with an arbitrary header: accepted exactly when alg is
    /// RS256, typ is at+jwt (any case, or its media-type form), there is no crit, and the kid
    /// is the key's. Every rejection's message is short.
    #[test]
    fn proptest_token_header_accepted_iff_every_check_passes(
        alg in slot(Slot::Value(json!("RS256")), vec![json!("none"), json!("HS256"), json!("rs256"), json!("RS384"), json!(""), json!(7)]),
        typ in slot(Slot::Value(json!("at+jwt")), vec![json!("AT+JWT"), json!("application/at+jwt"), json!("JWT"), json!("jwt"), json!(""), json!(null), json!(["at+jwt"])]),
        kid in slot(Slot::Value(json!("KID")), vec![json!("other"), json!(""), json!(1)]),
        crit in slot(Slot::Absent, vec![json!(["exp"]), json!([]), json!("x")]),
        extra in prop::collection::btree_map("x-[a-z]{1,6}", any::<String>().prop_map(Value::from), 0..3),
        jti in any::<u64>(),
    ) {
        let mut header = Map::new();
        for (name, s) in [("alg", &alg), ("typ", &typ), ("kid", &kid), ("crit", &crit)] {
            if let Slot::Value(v) = s {
                let v = if v == &json!("KID") { json!(KEYS.kid) } else { v.clone() };
                header.insert(name.into(), v);
            }
        }
        header.extend(extra.into_iter());
        let token = sign(&Value::Object(header.clone()), &good_claims(jti));
        let typ_ok = header.get("typ").and_then(Value::as_str).is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        let should = header.get("alg") == Some(&json!("RS256"))
            && typ_ok
            && !header.contains_key("crit")
            && header.get("kid") == Some(&json!(KEYS.kid));
        let result = verify(&token);
        prop_assert_eq!(result.is_ok(), should, "header {:?}: {:?}", header, result.as_ref().err());
        if let Err(e) = result {
            prop_assert!(e.to_string().len() <= 200, "{}", e);
        }
    }

    /// Signed by the trusted key with a correct header, with each claim either right, absent,
    /// of the wrong type or of the wrong value: accepted exactly when every claim is right
    /// (nbf and scope may be absent), and then the claims are the ones signed.
    #[test]
    fn proptest_token_claims_accepted_iff_every_claim_is_right(
        // 0: right, 1: absent, 2: wrong type, 3: wrong value; mostly right, so that
        // accepted tokens are common.
        choices in prop::collection::vec(prop_oneof![12 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)], 9),
        aud_as_list in any::<bool>(),
        jti in any::<u64>(),
    ) {
        let good = good_claims(jti);
        // (claim, wrong-type value, wrong value); None: absent is fine.
        let variants: [(&str, Value, Option<Value>, bool); 9] = [
            ("iss", json!(1), Some(json!(format!("{ISSUER}/"))), false),
            ("sub", json!(["agent"]), None, false),
            ("client_id", json!(false), None, false),
            ("aud", json!({"aud": RESOURCE}), Some(json!(["https://other.test/mcp"])), false),
            ("exp", json!((NOW + 600).to_string()), Some(json!(NOW - 3600)), false),
            ("iat", json!("now"), None, false),
            ("nbf", json!(-1.5), Some(json!(NOW + 3600)), true),
            ("jti", json!(12), None, false),
            ("scope", json!(["customer:read"]), Some(json!("customer:read back\\slash")), true),
        ];
        let mut claims = good.clone();
        if aud_as_list {
            // A list that includes this resource is as good as the resource alone; the
            // variants below may still replace it.
            claims["aud"] = json!(["https://other.test/mcp", RESOURCE]);
        }
        let mut should = true;
        for ((name, wrong_type, wrong_value, optional), choice) in variants.iter().zip(&choices) {
            match choice {
                0 => {}
                1 => {
                    claims.as_object_mut().unwrap().remove(*name);
                    should &= *optional;
                }
                2 => {
                    claims[*name] = wrong_type.clone();
                    // A null is "absent"; scope absent is fine.
                    should &= wrong_type.is_null() && *optional;
                }
                _ => {
                    if let Some(v) = wrong_value {
                        claims[*name] = v.clone();
                        // An audience list that includes this resource is right.
                        should &= v.as_array().is_some_and(|a| a.contains(&json!(RESOURCE)));
                    }
                }
            }
        }
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": KEYS.kid});
        let result = verify(&sign(&header, &claims));
        prop_assert_eq!(result.is_ok(), should, "claims {}: {:?}", claims, result.as_ref().err());
        match result {
            Ok(c) => {
                prop_assert_eq!(&c.jti, &format!("jti-{jti}"));
                prop_assert_eq!(c.exp, claims["exp"].as_u64().unwrap());
            }
            Err(e) => prop_assert!(e.to_string().len() <= 200, "{}", e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Config

const KEYS_NAMES: &[&str] = &[
    "addr",
    "url",
    "token_ttl_secs",
    "resources",
    "keep_previous_keys",
    "client_id",
    "secret_hash",
    "allowed_scopes",
    "description",
    "resource",
    "issuer",
    "jwks_uri",
    "issuer_ca_file",
    "leeway_secs",
    "max_body_bytes",
    "allowed_hosts",
    "allowed_origins",
    "direct_calls",
    "per_second",
    "burst",
    "cert",
    "key",
    "token_endpoint",
    "client_secret",
    "client_secret_env",
    "auth_method",
    "scopes",
    "ca_file",
    "ca_only",
    "allow_http_loopback",
    "timeout_secs",
    "name",
    "headers",
    "theme",
    "keys",
    "model",
    "dir",
    "on_failure",
];

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("18446744073709551616".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[^\"\\\\\n]{0,30}\"",
        "'[^'\n]{0,30}'",
        Just("\"127.0.0.1:0\"".to_string()),
        Just("\"999.1.1.1:99999\"".to_string()),
        Just("[\"customer:read\", \"x\"]".to_string()),
        Just("[1, \"a\", [true]]".to_string()),
        Just("{ a = 1, b = \"c\" }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        ".{0,20}",
    ]
}

fn toml_text() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[issuer]",
        "[service]",
        "[service.rate_limit]",
        "[tls]",
        "[client]",
        "[audit]",
        "[console]",
        "[agent]",
        "[[issuer.clients]]",
        "[[servers]]",
        "[servers.headers]",
        "[clients]",
        "[nonsense]",
        "[issuer",
    ]);
    let key = prop_oneof![prop::sample::select(KEYS_NAMES.to_vec()).prop_map(str::to_string), "[a-z_.\"]{1,10}"];
    let line = (key, toml_value()).prop_map(|(k, v)| format!("{k} = {v}"));
    let block = (section, prop::collection::vec(line, 0..6)).prop_map(|(s, l)| format!("{s}\n{}", l.join("\n")));
    let structured = prop::collection::vec(block, 0..6).prop_map(|b| b.join("\n"));
    prop_oneof![
        structured,
        any::<String>(),
        "\\{.{0,200}",
        "\\{\"mcpServers\": \\{\"[a-z]{0,5}\": \\{.{0,40}\\}\\}.{0,40}"
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Any text: `Config::parse` returns, never panics; an error names the file and its text
    /// is bounded by the input's size.
    #[test]
    fn proptest_config_parse_is_total(text in toml_text()) {
        let origin = std::path::Path::new("prop.toml");
        match warden::config::Config::parse(&text, origin) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("prop.toml"), "{}", msg);
                prop_assert!(msg.len() <= 2 * text.len() + MAX_MESSAGE, "{} bytes for {} bytes of input", msg.len(), text.len());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The service's request handling (bearer guard, direct calls, rmcp) through its router

struct Service {
    router: axum::Router,
    token: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

static SERVICE: LazyLock<Service> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("service.db");
    // Current time here: the service's rate limiter and verifier read the host's clock.
    let now = warden::types::time::now_epoch();
    let token = sign(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": KEYS.kid}),
        &json!({"iss": ISSUER, "sub": "agent", "client_id": "agent", "aud": RESOURCE, "scope": "customer:read",
                "iat": now, "nbf": now, "exp": now + 24 * 3600, "jti": "service-property"}),
    );
    let router = RUNTIME.block_on(async {
        let verifier = warden::auth::verify::Verifier::new(
            warden::auth::verify::VerifierConfig { issuer: ISSUER.into(), audience: RESOURCE.into(), leeway_secs: 30 },
            KEYS.verifier.jwks().clone(),
        );
        warden::service::router(warden::service::ServiceParams {
            verifier: Arc::new(verifier),
            store: Arc::new(warden::service::store::Store::open(&db, 1).unwrap()),
            resource: RESOURCE.into(),
            authorization_servers: vec![ISSUER.into()],
            rate_limit: warden::config::RateLimitConfig { per_second: 1e9, burst: 1_000_000_000 },
            max_body_bytes: 65536,
            allowed_hosts: vec![],
            allowed_origins: vec![],
            decisions: warden::types::event::EventBus::new(),
            direct_calls: true,
            denials: Arc::new(warden::service::denials::DenialCounter::new(
                warden::types::event::EventBus::new(),
                std::time::Duration::from_secs(10),
                64,
            )),
        })
    });
    Service { router, token, db, _dir: dir }
});

const TOOLS: &[&str] = &[
    "get_customer_info",
    "create_support_ticket",
    "calculate_account_value",
    "create\\u005fsupport_ticket",
    "nope",
    "",
];

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        Just(json!("ABC123")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// One JSON-RPC-ish message as text (so keys can repeat and names can be escaped).
fn message() -> impl Strategy<Value = String> {
    let method = prop_oneof![
        prop::sample::select(vec![
            "tools/call",
            "tools/list",
            "initialize",
            "ping",
            "notifications/initialized",
            "tools\\/call"
        ])
        .prop_map(str::to_string),
        ".{0,12}".prop_map(|s| Value::from(s).to_string().trim_matches('"').to_string()),
    ];
    let args = prop_oneof![
        Just(json!({"customer_id": "ABC123", "subject": "s", "description": "d", "priority": "low"})),
        Just(json!({"customer_id": "ABC123", "amounts": [1.0, 2.5]})),
        json_value(),
    ];
    let params = prop_oneof![
        (prop::sample::select(TOOLS.to_vec()), args.clone())
            .prop_map(|(n, a)| format!(r#"{{"name":"{n}","arguments":{a}}}"#)),
        (prop::sample::select(TOOLS.to_vec()), prop::sample::select(TOOLS.to_vec()), args)
            .prop_map(|(a, b, args)| format!(r#"{{"name":"{a}","arguments":{args},"name":"{b}"}}"#)),
        json_value().prop_map(|v| v.to_string()),
    ];
    (method, params, prop_oneof![Just("1".to_string()), Just("null".to_string()), "\"[a-z]{0,4}\""], any::<bool>())
        .prop_map(|(m, p, id, dup_method)| {
            let extra = if dup_method { r#","method":"tools/call""# } else { "" };
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{m}","params":{p}{extra}}}"#)
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => message().prop_map(String::into_bytes),
        2 => prop::collection::vec(message(), 0..4).prop_map(|m| format!("[{}]", m.join(",")).into_bytes()),
        1 => message().prop_map(|m| format!("\u{feff}{m}").into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn tickets(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get(0)).unwrap()
}

proptest! {
    #![proptest_config(config())]

    /// Any body, content type and origin, with a valid read-only token: never a 5xx, a
    /// bounded answer, 403 for a foreign origin, and never a ticket (the token lacks
    /// ticket:create, so whatever the body says, the guard must stop it).
    #[test]
    fn proptest_service_requests_never_5xx_and_never_exceed_the_grant(
        body in body(),
        content_type in prop::sample::select(vec![
            "application/json", "application/json; charset=utf-8", "application/json; charset=utf-16",
            "text/plain", "application/x-www-form-urlencoded", "application/json; charset=\"UTF-8\"",
        ]),
        origin in prop::option::of(prop::sample::select(vec![
            "http://localhost:6274", "http://127.0.0.1", "https://evil.example", "null", "http://localhost.evil.example",
        ])),
        authorized in prop::bool::weighted(0.9),
    ) {
        use tower::ServiceExt;
        let s = &*SERVICE;
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/mcp")
            .header("host", "localhost")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", content_type);
        if authorized {
            req = req.header("authorization", format!("Bearer {}", s.token));
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let mut req = req.body(axum::body::Body::from(body.clone())).unwrap();
        req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
        let (status, answer) = RUNTIME.block_on(async {
            let resp = s.router.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            (status, axum::body::to_bytes(resp.into_body(), 1 << 20).await)
        });
        prop_assert!(!status.is_server_error(), "{} for {:?}", status, String::from_utf8_lossy(&body));
        prop_assert!(answer.is_ok(), "answer larger than 1 MiB");
        let foreign = origin.is_some_and(|o| !o.starts_with("http://localhost:") && o != "http://127.0.0.1");
        if foreign {
            prop_assert_eq!(status.as_u16(), 403);
        } else if !authorized {
            prop_assert_eq!(status.as_u16(), 401);
        }
        prop_assert_eq!(tickets(&s.db), 0, "a ticket was created with a read-only token: {:?}", String::from_utf8_lossy(&body));
    }
}

// ---------------------------------------------------------------------------------------
// URLs

fn loopback_host() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?i)localhost".prop_map(|s| s.to_string()),
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| format!("127.{a}.{b}.{c}")),
        Just("[::1]".to_string()),
        Just("[0:0:0:0:0:0:0:1]".to_string()),
        Just("0x7f000001".to_string()),
        Just("2130706433".to_string()),
    ]
}

fn foreign_host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){0,3}"
            .prop_filter("not localhost", |h| !h.eq_ignore_ascii_case("localhost")),
        (1u8..=255, any::<u8>(), any::<u8>(), any::<u8>())
            .prop_filter("not 127/8", |(a, ..)| *a != 127)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("localhost.evil.example".to_string()),
        Just("127.0.0.1.evil.example".to_string()),
        Just("[::2]".to_string()),
        Just("[::ffff:7f00:1]".to_string()),
        Just("evil.example".to_string()),
    ]
}

/// Decoration that must not change whose host a URL names: user info that looks like a
/// loopback host, a port, a path, query and fragment that mention one.
fn decorate() -> impl Strategy<Value = (String, String, String)> {
    (
        prop::sample::select(vec!["", "localhost@", "localhost:80@", "127.0.0.1@", "user:pw@", "[::1]@"]),
        prop::option::of(any::<u16>()).prop_map(|p| p.map(|p| format!(":{p}")).unwrap_or_default()),
        prop::sample::select(vec![
            "",
            "/",
            "/@localhost",
            "/mcp?x=http://127.0.0.1/",
            "/#@localhost",
            "/%2F%2Flocalhost",
        ]),
    )
        .prop_map(|(u, p, rest)| (u.to_string(), p, rest.to_string()))
}

proptest! {
    #![proptest_config(config())]

    /// Whatever decorates it, a URL is loopback exactly when its host is.
    #[test]
    fn proptest_is_loopback_follows_the_host(
        scheme in prop::sample::select(vec!["http", "https", "HTTP", "ws"]),
        loopback in any::<bool>(),
        lo in loopback_host(),
        other in foreign_host(),
        (userinfo, port, rest) in decorate(),
    ) {
        let host = if loopback { lo } else { other };
        let text = format!("{scheme}://{userinfo}{host}{port}{rest}");
        if let Ok(url) = url::Url::parse(&text) {
            prop_assert_eq!(warden::security::urls::is_loopback(&url), loopback, "{}", text);
        }
    }

    /// Any text that parses as a URL: loopback only if the parsed host is one.
    #[test]
    fn proptest_is_loopback_never_true_for_another_host(text in prop_oneof![any::<String>(), "https?://.{0,40}"]) {
        if let Ok(url) = url::Url::parse(&text)
            && warden::security::urls::is_loopback(&url)
        {
            let host = url.host_str().unwrap_or("").to_ascii_lowercase();
            let ok = host == "localhost"
                || host == "[::1]"
                || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.octets()[0] == 127);
            prop_assert!(ok, "{} has host {}", text, host);
        }
    }
}
