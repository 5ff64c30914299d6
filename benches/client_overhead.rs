//! Benchmark: the per-call overhead the secure client layer adds on top of the network
//! call — cached token lookup, scope pre-check, idempotency/digest preparation, the
//! Authorization header value and the emitted event. Also the server-side cost of verifying
//! an already-verified token (one SHA-256 and a map lookup: no RSA, no JWKS fetch).
//!
//! Run: `cargo bench --bench client_overhead`.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use warden::config::Config;
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::CallPolicy;
use warden::serve::ServeOptions;
use warden::types::event::{CallOutcome, EventBus, EventKind, Scope};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: u32 = 200_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    warden::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::parse(warden::config::DEFAULT_CONFIG, Path::new("builtin")).expect("config");
        config.issuer.addr = "127.0.0.1:0".parse().expect("addr");
        config.service.addr = "127.0.0.1:0".parse().expect("addr");
        let running = warden::serve::start(&config, dir.path(), &ServeOptions::default()).await.expect("serve");
        let client_toml = dir.path().join("client.toml");
        let client_config =
            Config::parse(&std::fs::read_to_string(&client_toml).expect("client.toml"), &client_toml).expect("parse");
        let events = EventBus::new();
        let _sink = events.subscribe(1 << 20);
        let stack =
            ClientStack::connect(&client_config, None, CallPolicy::default(), events.clone()).await.expect("connect");
        let tool = stack.tool("get_customer_info").expect("tool").clone();
        let tokens = stack.servers[0].tokens.clone().expect("an OAuth server");
        let scope = Scope { run_id: Some("bench".into()), step: Some(1) };

        // Warm-up, then measure.
        for _ in 0..10_000 {
            let p = tool.prepare(json!({"customer_id": "ABC123"})).await.expect("prepare");
            std::hint::black_box(tokens.bearer());
            std::hint::black_box(p);
        }
        let start = Instant::now();
        for _ in 0..N {
            let args = json!({"customer_id": "ABC123"});
            events.emit(
                &scope,
                EventKind::ToolCall {
                    tool: tool.id().clone(),
                    args: args.clone(),
                    args_digest: warden::mcp::secure_tool::args_digest(args.as_object().expect("object")),
                    required: tool.spec.required_scopes.clone(),
                },
            );
            let p = tool.prepare(args).await.expect("prepare");
            let header = tokens.bearer();
            events.emit(
                &scope,
                EventKind::ToolResult {
                    tool: tool.id().clone(),
                    outcome: CallOutcome::Success { structured: None, text: String::new() },
                    attempts: 1,
                    latency_ms: 0.0,
                    audit: Default::default(),
                },
            );
            std::hint::black_box((p, header));
        }
        let per_call = start.elapsed().as_secs_f64() / f64::from(N) * 1e6;
        println!(
            "client layer overhead per call (prepare + header + call and result events): {per_call:.2} µs  ({N} calls)"
        );

        // Server-side verification of a token it has already verified.
        let verifier = warden::auth::verify::Verifier::new(
            warden::auth::verify::VerifierConfig {
                issuer: running.issuer_url.clone().expect("issuer"),
                audience: running.mcp_url.clone().expect("mcp"),
                leeway_secs: 30,
            },
            std::sync::Arc::new(warden::auth::jwks::JwksCache::fixed(&running.keys.as_ref().expect("keys").jwks())),
        );
        let token = tokens.bearer().expect("token");
        let t0 = Instant::now();
        verifier.verify(&token).await.expect("first verification");
        let first = t0.elapsed().as_secs_f64() * 1e6;
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(verifier.verify(&token).await.expect("verify"));
        }
        let cached = start.elapsed().as_secs_f64() / f64::from(N) * 1e6;
        println!("token verification: first (RSA) {first:.1} µs, already verified {cached:.3} µs");
        stack.close().await;
        running.shutdown().await;
    });
}
