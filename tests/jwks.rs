//! The JWKS cache when the issuer's key endpoint goes away, on manual time: stale keys
//! keep working without a refetch storm, then fail closed, then recover.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use warden::auth::jwks::{JwksCache, JwksError};
use warden::types::time::ManualClock;

/// Regression (issue 11, defect 11): once cached keys passed their max age the cooldown no
/// longer applied, so with the issuer down every verification refetched.
#[tokio::test]
async fn stale_keys_back_off_then_fail_closed_then_recover() {
    let dir = tempfile::tempdir().unwrap();
    let keys = warden::issuer::keys::KeyStore::open(dir.path(), 1).unwrap();
    let set = serde_json::to_value(keys.jwks()).unwrap();
    let kid = set["keys"][0]["kid"].as_str().unwrap().to_string();
    let (fetches, up) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(true)));
    let (f, u) = (fetches.clone(), up.clone());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (f, u, set) = (f.clone(), u.clone(), set.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                if u.load(Ordering::SeqCst) { Ok(axum::Json(set)) } else { Err(http::StatusCode::SERVICE_UNAVAILABLE) }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let clock = ManualClock::starting_now();
    let cache = JwksCache::from_url(reqwest::Client::new(), url).with_clock(clock.clone());

    assert!(cache.key(&kid).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // Past the max age (1 h) with the endpoint down: one attempt, then the cooldown holds,
    // and the cached key keeps verifying.
    up.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(3601));
    for _ in 0..20 {
        assert!(cache.key(&kid).await.is_ok(), "stale keys serve until the hard age");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one refetch for twenty verifications");
    clock.advance(Duration::from_secs(31));
    assert!(cache.key(&kid).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 3, "another attempt after the cooldown");

    // Past the hard age (2 h): fail closed.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(cache.key(&kid).await.err(), Some(JwksError::Stale));

    // The endpoint comes back: the next attempt after the cooldown recovers.
    up.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    assert!(cache.key(&kid).await.is_ok());
}

/// Unknown kids (forged, or a key rotated in just after a fetch): a small burst of
/// refetches per cooldown, a second apart, so a flood stays bounded while a real new key
/// is picked up at once (found by tests/faults.rs: a session started right after
/// `--rotate-keys` was refused for a whole cooldown).
#[tokio::test]
async fn unknown_kids_get_a_bounded_burst_of_refetches() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(warden::issuer::keys::KeyStore::open(dir.path(), 1).unwrap());
    let fetches = Arc::new(AtomicUsize::new(0));
    let (f, k) = (fetches.clone(), keys.clone());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (f, k) = (f.clone(), k.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::to_value(k.jwks()).unwrap())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let clock = ManualClock::starting_now();
    let cache = JwksCache::from_url(reqwest::Client::new(), url).with_clock(clock.clone());
    cache.refresh().await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // A key rotated in a second after the fetch is found at once.
    clock.advance(Duration::from_secs(1));
    let rotated = keys.rotate().unwrap();
    assert!(cache.key(&rotated).await.is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A flood of forged kids: nothing inside the second, then one per second up to three
    // attempts in the 30 s window, then nothing until the window moves.
    let forged = |i: usize| format!("forged-{i}");
    for i in 0..20 {
        assert_eq!(cache.key(&forged(i)).await.err(), Some(JwksError::UnknownKid(forged(i))));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "not within a second of the last fetch");
    let mut seen = Vec::new();
    for _ in 0..5 {
        clock.advance(Duration::from_secs(1));
        for i in 0..20 {
            assert!(cache.key(&forged(i)).await.is_err());
        }
        seen.push(fetches.load(Ordering::SeqCst));
    }
    assert_eq!(seen, vec![3, 3, 3, 3, 3], "three attempts per 30 s window");
    clock.advance(Duration::from_secs(25));
    assert!(cache.key(&forged(0)).await.is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), 4, "the window moved on");
}
