//! LM providers against local HTTP servers that speak the OpenAI and Anthropic wire
//! formats: request shape and headers, usage accounting, error bodies, 401 → bad key
//! (without echoing the key), 429/5xx retried a bounded number of times.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use warden::agent::lm::{LmError, LmOptions, Message, Role, from_name};
use warden::types::secret::Secret;

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    BadKey,
    RateLimitOnce,
    AlwaysRateLimit,
    ServerErrorOnce,
}

#[derive(Clone)]
struct Fake {
    mode: Mode,
    hits: Arc<AtomicUsize>,
    seen: Arc<parking_lot::Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn openai(State(f): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let n = f.hits.fetch_add(1, Ordering::SeqCst);
    f.seen.lock().push((headers, body.clone()));
    if let Some(r) = failure(f.mode, n) {
        return r;
    }
    let prompt = body["messages"].as_array().unwrap().len();
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("[[ ## answer ## ]]\nParis ({prompt} messages)\n\n[[ ## completed ## ]]")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
    }))
    .into_response()
}

async fn anthropic(State(f): State<Fake>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let n = f.hits.fetch_add(1, Ordering::SeqCst);
    f.seen.lock().push((headers, body.clone()));
    if let Some(r) = failure(f.mode, n) {
        return r;
    }
    Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": [{"type": "text", "text": "[[ ## answer ## ]]\nRome"}, {"type": "text", "text": "\n\n[[ ## completed ## ]]"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 5}
    }))
    .into_response()
}

fn failure(mode: Mode, n: usize) -> Option<Response> {
    let err = |status: StatusCode, msg: &str| {
        let mut r = (status, Json(json!({"error": {"message": msg, "type": "error"}}))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
        }
        r
    };
    match (mode, n) {
        (Mode::BadKey, _) => Some(err(StatusCode::UNAUTHORIZED, "Incorrect API key provided: sk-te****")),
        (Mode::RateLimitOnce, 0) | (Mode::AlwaysRateLimit, _) => {
            Some(err(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached"))
        }
        (Mode::ServerErrorOnce, 0) => Some(err(StatusCode::INTERNAL_SERVER_ERROR, "overloaded")),
        _ => None,
    }
}

async fn serve(mode: Mode) -> (String, Fake) {
    let fake = Fake { mode, hits: Arc::new(AtomicUsize::new(0)), seen: Arc::new(parking_lot::Mutex::new(Vec::new())) };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), fake)
}

fn opts(base: &str) -> LmOptions {
    LmOptions {
        base_url: Some(base.to_string()),
        api_key: Some(Secret::new("sk-test-secret-123".into())),
        timeout: Some(Duration::from_secs(5)),
        max_retries: Some(2),
        ..LmOptions::default()
    }
}

fn messages() -> Vec<Message> {
    vec![Message::new(Role::System, "You answer."), Message::new(Role::User, "Capital?")]
}

#[tokio::test]
async fn openai_compatible_request_response_and_usage() {
    let (base, fake) = serve(Mode::Ok).await;
    let lm = from_name("openai/gpt-test", &opts(&format!("{base}/v1"))).unwrap();
    assert_eq!(lm.name(), "openai/gpt-test");
    let c = lm.complete(&messages()).await.unwrap();
    assert_eq!(c.text, "[[ ## answer ## ]]\nParis (2 messages)\n\n[[ ## completed ## ]]");
    assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (31, 9));
    lm.complete(&messages()).await.unwrap();
    assert_eq!(lm.usage().prompt_tokens, 62);
    let (headers, body) = fake.seen.lock()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-test-secret-123");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "You answer."}, {"role": "user", "content": "Capital?"}])
    );
}

#[tokio::test]
async fn anthropic_messages_request_response_and_usage() {
    let (base, fake) = serve(Mode::Ok).await;
    let lm = from_name("anthropic/claude-test", &opts(&base)).unwrap();
    let c = lm.complete(&messages()).await.unwrap();
    assert_eq!(c.text, "[[ ## answer ## ]]\nRome\n\n[[ ## completed ## ]]");
    assert_eq!((c.usage.prompt_tokens, c.usage.completion_tokens), (12, 5));
    let (headers, body) = fake.seen.lock()[0].clone();
    assert_eq!(headers["x-api-key"], "sk-test-secret-123");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["system"], "You answer.");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Capital?"}]));
    assert_eq!(body["max_tokens"], 1024);
}

#[tokio::test]
async fn bad_key_is_reported_without_the_key() {
    for name in ["openai/gpt-test", "anthropic/claude-test"] {
        let (base, fake) = serve(Mode::BadKey).await;
        let base = if name.starts_with("openai") { format!("{base}/v1") } else { base };
        let err = from_name(name, &opts(&base)).unwrap().complete(&messages()).await.unwrap_err();
        assert!(matches!(err, LmError::BadKey { status: 401, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("API key was rejected") && !msg.contains("sk-test-secret-123"), "{msg}");
        assert_eq!(fake.hits.load(Ordering::SeqCst), 1, "a 401 is not retried");
    }
}

#[tokio::test]
async fn transient_errors_are_retried_a_bounded_number_of_times() {
    let (base, fake) = serve(Mode::RateLimitOnce).await;
    let lm = from_name("openai/gpt-test", &opts(&format!("{base}/v1"))).unwrap();
    assert!(lm.complete(&messages()).await.is_ok());
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);

    let (base, fake) = serve(Mode::ServerErrorOnce).await;
    let lm = from_name("anthropic/claude-test", &opts(&base)).unwrap();
    assert!(lm.complete(&messages()).await.is_ok());
    assert_eq!(fake.hits.load(Ordering::SeqCst), 2);

    let (base, fake) = serve(Mode::AlwaysRateLimit).await;
    let lm = from_name("openai/gpt-test", &opts(&format!("{base}/v1"))).unwrap();
    let err = lm.complete(&messages()).await.unwrap_err();
    assert_eq!(err, LmError::RateLimited { provider: "openai", attempts: 3 });
    assert_eq!(fake.hits.load(Ordering::SeqCst), 3, "one try plus max_retries = 2");
}

#[tokio::test]
async fn configuration_errors_are_clear() {
    let err = from_name("gpt-4", &LmOptions::default()).err().unwrap();
    assert_eq!(err.to_string(), "unknown model \"gpt-4\": use offline, openai/MODEL, anthropic/MODEL or ollama/MODEL");
    let no_key = LmOptions { api_key_env: Some("WARDEN_TEST_SURELY_UNSET_KEY".into()), ..LmOptions::default() };
    // A missing key is reported when the model is asked (as the run's error), not when it
    // is built, so a console opens and tells the operator what to set.
    let err = from_name("anthropic/claude", &no_key).unwrap().complete(&messages()).await.unwrap_err();
    assert_eq!(err.to_string(), "anthropic: no API key: set WARDEN_TEST_SURELY_UNSET_KEY");
    let err = from_name("openai/gpt", &LmOptions { base_url: Some("http://127.0.0.1:1/v1".into()), ..opts("") })
        .unwrap()
        .complete(&messages())
        .await
        .unwrap_err();
    assert!(matches!(err, LmError::Unreachable { .. }), "{err:?}");
    assert_eq!(from_name("offline", &LmOptions::default()).unwrap().name(), "offline-planner");
}
