//! Network hardening over the real servers and real TLS (issue 11, defects 5 and 6):
//! `/token` failure budgets and bounded secret hashing, and the connection limits
//! (header-read timeout, idle timeout, connection cap) of both listeners.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SUPPORT, Stack};
use serde_json::{Value, json};
use warden::types::time::ManualClock;

/// A reqwest client trusting the stack's CA, connecting from `local` (any 127.0.0.0/8
/// address is loopback on Linux: a second "peer").
fn client_from(stack: &Stack, local: &str) -> reqwest::Client {
    let pem = std::fs::read(stack.state.join("tls/ca.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn token_status(stack: &Stack, http: &reqwest::Client, secret: &str) -> (u16, Option<String>, Value) {
    let resp = http
        .post(format!("{}/token", stack.issuer))
        .basic_auth(SUPPORT.0, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("resource", stack.mcp.as_str())])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry, resp.json().await.unwrap())
}

/// Regression (issue 11, defect 5): 1,000 wrong secrets all got 401, never 429. Injected
/// time: the budgets refill when the test moves the clock, not by waiting.
#[tokio::test]
async fn failed_client_authentication_is_throttled_per_peer_and_per_client() {
    let clock = ManualClock::starting_now();
    let s = Stack::start_with_clock(clock.clone()).await;
    let (a, b, c, d) = (
        client_from(&s, "127.0.0.1"),
        client_from(&s, "127.0.0.2"),
        client_from(&s, "127.0.0.3"),
        client_from(&s, "127.0.0.4"),
    );

    // Peer budget (default burst 10, one more every 2 s).
    for i in 0..10 {
        let (status, retry, body) = token_status(&s, &a, "wrong").await;
        assert_eq!((status, retry, body["error"].as_str()), (401, None, Some("invalid_client")), "attempt {i}");
    }
    for _ in 0..3 {
        let (status, retry, body) = token_status(&s, &a, "wrong").await;
        assert_eq!((status, retry.as_deref()), (429, Some("2")));
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(body["error_description"].as_str().unwrap().contains("too many failed client authentications"));
    }
    let (status, ..) = token_status(&s, &a, SUPPORT.1).await;
    assert_eq!(status, 429, "a peer that spent its budget is refused before its secret is checked");
    let (status, ..) = token_status(&s, &b, SUPPORT.1).await;
    assert_eq!(status, 200, "the right secret from another peer works");
    clock.advance(Duration::from_secs(2));
    let (status, ..) = token_status(&s, &a, SUPPORT.1).await;
    assert_eq!(status, 200, "after the refill the first peer works again");

    // Client budget (default burst 20, one a second): 10 failures from `a` before, 2 tokens
    // back with the 2 s, now 10 from `c` and 2 from `e` spend the rest.
    let e = client_from(&s, "127.0.0.5");
    for http in std::iter::repeat_n(&c, 10).chain([&e, &e]) {
        assert_eq!(token_status(&s, http, "wrong").await.0, 401);
    }
    let (status, retry, _) = token_status(&s, &d, SUPPORT.1).await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")), "a new peer waits while the client's budget is spent");
    let (status, ..) = token_status(&s, &b, SUPPORT.1).await;
    assert_eq!(status, 200, "a peer that recently authenticated as the client is not locked out");
    clock.advance(Duration::from_secs(1));
    let (status, ..) = token_status(&s, &d, SUPPORT.1).await;
    assert_eq!(status, 200, "the lockout ends a second after the failures stop");
    s.stop().await;
}

fn flood_config() -> warden::config::Config {
    let mut c = common::config(None);
    let t = &mut c.issuer.auth_throttle;
    // Budgets out of the way: every request is hashed, so the hashing bound is what holds.
    (t.peer_failures_burst, t.client_failures_burst) = (1_000_000, 1_000_000);
    (t.max_concurrent_hashes, t.max_queued_hashes) = (1, 2);
    c
}

/// Regression (issue 11, defect 5): PBKDF2 ran on the async runtime and unbounded. Now a
/// flood of wrong secrets gets 401 or an immediate 503 with `Retry-After` once the hashing
/// slot and queue are full, and the MCP service keeps answering meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_flood_is_bounded_and_the_service_keeps_answering() {
    let s = Arc::new(Stack::start_with(flood_config()).await);
    let token = s.token(SUPPORT, None).await;
    let flood: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..15 {
                    let (status, retry, body) = token_status(&s, &s.http, "wrong").await;
                    if status == 503 {
                        assert_eq!(
                            (retry.as_deref(), body["error"].as_str()),
                            (Some("1"), Some("temporarily_unavailable"))
                        );
                    }
                    statuses.push(status);
                }
                statuses
            })
        })
        .collect();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let mut pings = 0;
    while !flood.iter().all(|f| f.is_finished()) {
        let resp = s.mcp_post(Some(&token), &ping).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("\"result\":{}"), "{text}");
        pings += 1;
    }
    let mut all = Vec::new();
    for f in flood {
        all.extend(f.await.unwrap());
    }
    let count = |code| all.iter().filter(|&&s| s == code).count();
    assert_eq!(count(401) + count(503), all.len(), "only 401 and 503: {all:?}");
    assert!(count(503) > 0 && count(401) > 0, "the bound was reached and secrets were still checked: {all:?}");
    assert!(pings > 0);
    assert_eq!(s.token_response(SUPPORT, &[]).await.status(), 200, "after the flood the right secret works");
    if let Ok(s) = Arc::try_unwrap(s) {
        s.stop().await;
    }
}

// ---- connection limits (defect 6) ----

fn limits_config(header: u64, idle: u64, max_connections: usize) -> warden::config::Config {
    let mut c = common::config(None);
    c.limits = warden::config::LimitsConfig {
        handshake_timeout_secs: 2,
        header_read_timeout_secs: header,
        idle_timeout_secs: idle,
        max_connections,
    };
    c
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// A TLS connection over a blocking socket, handshake completed (HTTP/1.1: no ALPN).
fn connect(addr: SocketAddr, cfg: &Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Reads until the server closes the connection; returns what it sent and how long that
/// took. Panics if the 10 s socket timeout fires first (the server did not close).
fn read_until_closed(tls: &mut Tls) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("the server kept the connection open for {:?}", start.elapsed())
            }
            Err(_) => break, // reset or EOF without close_notify: closed
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Regression (issue 11, defect 6): a slow header kept the connection open 150 s+. Real
/// time, a one-second timeout: the socket layer cannot run on paused time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_header_is_cut_off_after_the_header_timeout_on_both_servers() {
    let s = Stack::start_with(limits_config(1, 30, 64)).await;
    let cfg = tls_config(&s.state.join("tls/ca.pem"));
    for addr in [s.running.issuer_addr.unwrap(), s.running.mcp_addr.unwrap()] {
        let cfg = cfg.clone();
        let (sent, took) = blocking(move || {
            let mut tls = connect(addr, &cfg).unwrap();
            tls.write_all(b"GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
            tls.flush().unwrap();
            read_until_closed(&mut tls)
        })
        .await;
        assert!(sent.is_empty() || sent.starts_with("HTTP/1.1 408"), "{addr}: {sent}");
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "{addr}: closed after {took:?}");
    }
    s.stop().await;
}

/// A connection that never sends a request is closed after the idle timeout (hyper's
/// header timer does not run before the first request); a kept-alive HTTP/1.1 connection
/// after the header timeout; a normal request on it still works first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let s = Stack::start_with(limits_config(1, 2, 64)).await;
    let cfg = tls_config(&s.state.join("tls/ca.pem"));
    let addr = s.running.issuer_addr.unwrap();
    let c = cfg.clone();
    let (sent, took) = blocking(move || read_until_closed(&mut connect(addr, &c).unwrap())).await;
    assert_eq!(sent, "");
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "silent: closed after {took:?}");

    let (sent, took) = blocking(move || {
        let mut tls = connect(addr, &cfg).unwrap();
        tls.write_all(b"GET /jwks.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        tls.flush().unwrap();
        read_until_closed(&mut tls)
    })
    .await;
    assert!(sent.starts_with("HTTP/1.1 200 OK") && sent.contains("\"keys\""), "the request is answered: {sent}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "kept alive: closed after {took:?}");
    s.stop().await;
}

/// Connections past `max_connections` are closed before the handshake while the earlier
/// ones keep working; a slot frees when a connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused() {
    let s = Stack::start_with(limits_config(10, 60, 2)).await;
    let cfg = tls_config(&s.state.join("tls/ca.pem"));
    let addr = s.running.mcp_addr.unwrap();
    let path = warden::auth::discovery::resource_metadata_url(&s.mcp);
    let path = path.trim_start_matches(&format!("https://{addr}")).to_string();
    blocking(move || {
        let mut first = connect(addr, &cfg).unwrap();
        let second = connect(addr, &cfg).unwrap();
        let third = connect(addr, &cfg);
        assert!(third.is_err(), "the third connection is closed during the handshake");
        // The first still serves requests.
        write!(first, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        first.flush().unwrap();
        let (sent, _) = read_until_closed(&mut first);
        assert!(sent.starts_with("HTTP/1.1 200 OK") && sent.contains("authorization_servers"), "{sent}");
        drop(second);
        // The server notices the closes asynchronously: poll (bounded) for a free slot.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match connect(addr, &cfg) {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("no slot freed after the earlier connections closed: {e}"),
            }
        }
    })
    .await;
    s.stop().await;
}
