//! Many instances on one PostgreSQL store, one killed mid-run (issue 16).
//!
//! `warden serve --instances 3` (the real binary: three service processes and the issuer)
//! on a real PostgreSQL server (`common/postgres.rs`: Debian's `postgresql`, installed if
//! missing). Concurrent clients create tickets with idempotency keys, each call going to
//! the next instance, a failed call retried on another instance with the same key; while
//! they run, instance 2 is SIGKILLed and the parent restarts it. Meanwhile another client
//! hammers all three instances to check the shared rate limit. Afterwards, from the
//! database: every acknowledged ticket exists exactly once (with the id the client was
//! given), no row was invented (each has a key some client sent), no call got a 5xx, the
//! only transport failures were calls to the killed instance, and the number of calls the
//! three instances allowed together is within 10% of the budget (burst + rate × time).

mod common;
#[path = "common/instances.rs"]
mod instances;
#[path = "common/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use warden::config::RateLimitConfig;
use warden::security::tls::{ClientTls, http_client};

use common::{READONLY, SUPPORT, client_token, tools_call};
use instances::{Instances, free_ports};

const INSTANCES: u16 = 3;
const WRITERS: usize = 12;
const TICKETS_PER_WRITER: usize = 20;
/// The shared per-client budget: `BURST` at once, `PER_SECOND` after.
const BURST: u32 = 40;
const PER_SECOND: f64 = 20.0;
/// How long the rate-limit client hammers.
const HAMMER: Duration = Duration::from_secs(3);

/// What one call came back with.
#[derive(Debug)]
enum Outcome {
    Ticket(String),
    /// A tool error, a 429, a refused connection: retried.
    Retry(String),
    ServerError(u16),
    Transport,
}

async fn post(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Result<(u16, Value), ()> {
    let resp = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .map_err(|_| ())?;
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn create(http: &reqwest::Client, url: &str, token: &str, key: &str) -> Outcome {
    let call = tools_call(
        "create_support_ticket",
        json!({"customer_id": "ABC123", "subject": "scale", "description": key, "priority": "low", "idempotency_key": key}),
    );
    match post(http, url, token, &call).await {
        Err(()) => Outcome::Transport,
        Ok((200, body)) if body["result"]["isError"] == json!(false) => {
            Outcome::Ticket(body["result"]["structuredContent"]["ticket_id"].as_str().unwrap().to_string())
        }
        Ok((200, body)) => Outcome::Retry(format!("tool error {}", body["result"])),
        Ok((s, _)) if s >= 500 => Outcome::ServerError(s),
        Ok((s, _)) => Outcome::Retry(format!("HTTP {s}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_one_killed_every_acknowledged_ticket_once_and_the_budget_holds() {
    let Some(pg) = postgres::server() else { return };
    let db = pg.create_database("scale");
    let state = tempfile::tempdir().unwrap();
    let mut config = common::config(Some(RateLimitConfig { per_second: PER_SECOND, burst: BURST }));
    config.issuer.addr = "127.0.0.1:0".parse().unwrap();
    let base = free_ports(INSTANCES);
    config.service.addr = base;
    config.service.store.url = Some(db.clone());
    // One resource for all three, as behind a proxy: one token per client serves them all.
    let resource = format!("https://{base}/mcp");
    config.service.resource = Some(resource.clone());
    // Each writer is its own client (its own bucket, which its 20 tickets stay within), so
    // the budget under test is only the hammering client's.
    let support = config.issuer.clients.iter().find(|c| c.client_id == SUPPORT.0).unwrap().clone();
    for w in 0..WRITERS {
        config.issuer.clients.push(warden::config::ClientRegistration {
            client_id: format!("writer-{w}"),
            secret_hash: warden::security::hash::SecretHash::create(&format!("writer-secret-{w}"), 1_000).encode(),
            ..support.clone()
        });
    }
    let mut run = Instances::start(state.path(), &config, INSTANCES);
    let urls: Vec<String> = (1..=INSTANCES).map(|n| run.url(n)).collect();
    let http = http_client(
        &ClientTls { ca_file: Some(state.path().join("tls/ca.pem")), ca_only: true },
        Duration::from_secs(10),
    )
    .unwrap();
    let mut writer_tokens = Vec::new();
    for w in 0..WRITERS {
        let (id, secret) = (format!("writer-{w}"), format!("writer-secret-{w}"));
        writer_tokens.push(client_token(&http, &run.issuer, (&id, &secret), &resource).await);
    }
    let hammer_token = client_token(&http, &run.issuer, READONLY, &resource).await;

    // The rate-limit client: four connections as fast as they go, round robin over the
    // instances, for `HAMMER`.
    let hammer_started = Instant::now();
    let hammers: Vec<_> = (0..4)
        .map(|h| {
            let (http, urls, token) = (http.clone(), urls.clone(), hammer_token.clone());
            tokio::spawn(async move {
                let call = tools_call("get_customer_info", json!({"customer_id": "ABC123"}));
                let (mut allowed, mut limited, mut other) = (0u64, 0u64, BTreeMap::<String, u64>::new());
                let mut i = h;
                while hammer_started.elapsed() < HAMMER {
                    i += 1;
                    let url = &urls[i % urls.len()];
                    match post(&http, url, &token, &call).await {
                        Ok((200, _)) => allowed += 1,
                        Ok((429, _)) => limited += 1,
                        Ok((s, _)) => *other.entry(format!("HTTP {s} from {url}")).or_default() += 1,
                        Err(()) => *other.entry(format!("transport error to {url}")).or_default() += 1,
                    }
                }
                (allowed, limited, other, hammer_started.elapsed())
            })
        })
        .collect();

    // The ticket writers: each key tried on the next instance until acknowledged.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let halfway = Arc::new(tokio::sync::Notify::new());
    let failures = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (http, urls, token) = (http.clone(), urls.clone(), writer_tokens[w].clone());
            let (acknowledged, halfway, failures) = (acknowledged.clone(), halfway.clone(), failures.clone());
            tokio::spawn(async move {
                let mut acks = BTreeMap::new();
                for t in 0..TICKETS_PER_WRITER {
                    let key = format!("scale-w{w}-t{t}");
                    let mut attempt = w + t;
                    let ticket = loop {
                        let url = &urls[attempt % urls.len()];
                        match create(&http, url, &token, &key).await {
                            Outcome::Ticket(id) => break id,
                            Outcome::Retry(why) => failures.lock().push((url.clone(), why)),
                            Outcome::ServerError(s) => failures.lock().push((url.clone(), format!("HTTP {s}"))),
                            Outcome::Transport => failures.lock().push((url.clone(), "transport".into())),
                        }
                        attempt += 1;
                        assert!(attempt < w + t + 500, "{key} never acknowledged");
                    };
                    acks.insert(key, ticket);
                    if acknowledged.fetch_add(1, Ordering::SeqCst) + 1 == WRITERS * TICKETS_PER_WRITER / 3 {
                        halfway.notify_one();
                    }
                }
                acks
            })
        })
        .collect();

    // A third of the way through, instance 2 dies (SIGKILL) and the parent restarts it.
    halfway.notified().await;
    let killed_at = acknowledged.load(Ordering::SeqCst);
    let run = tokio::task::spawn_blocking(move || {
        run.kill_and_await_restart(2);
        run
    })
    .await
    .unwrap();

    let mut acks = BTreeMap::new();
    for w in writers {
        acks.extend(w.await.unwrap());
    }
    let after_restart = acknowledged.load(Ordering::SeqCst);
    let (mut allowed, mut limited, mut other, mut window) = (0, 0, BTreeMap::new(), Duration::ZERO);
    for h in hammers {
        let (a, l, o, ended) = h.await.unwrap();
        (allowed, limited, window) = (allowed + a, limited + l, window.max(ended));
        other.extend(o);
    }
    let status = run.stop();
    assert!(status.success(), "serve --instances exits cleanly on SIGTERM: {status}");

    // Every acknowledged ticket exactly once, with the id its client was given; nothing else.
    let rows = pg.psql(&db, "SELECT idempotency_key, ticket_id FROM warden_tickets WHERE subject = 'scale' ORDER BY 1");
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in rows.lines() {
        let (key, id) = line.split_once('|').unwrap();
        stored.entry(key.to_string()).or_default().push(id.to_string());
    }
    let sent: BTreeSet<String> =
        (0..WRITERS).flat_map(|w| (0..TICKETS_PER_WRITER).map(move |t| format!("scale-w{w}-t{t}"))).collect();
    assert_eq!(acks.len(), sent.len(), "every key acknowledged in the end");
    for (key, id) in &acks {
        assert_eq!(stored.get(key), Some(&vec![id.clone()]), "{key}: stored exactly once as acknowledged");
    }
    let invented: Vec<_> = stored.keys().filter(|k| !sent.contains(*k)).collect();
    assert!(invented.is_empty(), "rows no client asked for: {invented:?}");
    assert_eq!(stored.len(), sent.len());

    // No 5xx; transport failures only where the killed instance was.
    let failures = failures.lock().clone();
    let server_errors: Vec<_> = failures.iter().filter(|(_, why)| why.starts_with("HTTP 5")).collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
    let elsewhere: Vec<_> = failures.iter().filter(|(url, why)| why == "transport" && *url != urls[1]).collect();
    assert!(elsewhere.is_empty(), "transport failures at instances that were not killed: {elsewhere:?}");
    let hammer_elsewhere: Vec<_> = other.keys().filter(|k| !k.ends_with(&urls[1])).collect();
    assert!(hammer_elsewhere.is_empty(), "unexpected answers to the rate-limit client: {other:?}");

    // The shared budget: what the three instances allowed together, against burst + rate × time.
    let budget = f64::from(BURST) + PER_SECOND * window.as_secs_f64();
    let ratio = allowed as f64 / budget;
    eprintln!(
        "scale: {} tickets ({} retried calls; instance 2 killed after {killed_at}, {after_restart} acknowledged by the end); rate limit: {allowed} allowed, {limited} limited in {:.2} s, budget {budget:.0} ({:.1}%)",
        acks.len(),
        failures.len(),
        window.as_secs_f64(),
        ratio * 100.0
    );
    assert!(limited > 0, "the hammer must exceed the budget to test it");
    assert!((0.9..=1.1).contains(&ratio), "allowed {allowed} vs budget {budget:.0} over {window:?}");
}
