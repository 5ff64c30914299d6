//! The service store's contract, one set of cases run against both backends: the embedded
//! SQLite file and a real PostgreSQL server (tests/common/postgres.rs; Debian's
//! `postgresql`, installed on first use). Each case also gets a second store instance on
//! the same data (another open of the file, another pool on the database), as a second
//! service instance would have, so "exactly once" is checked across instances too.
//!
//! Then what only PostgreSQL has: migrations under concurrent starts, a server that goes
//! away and comes back, passwords (scram) and TLS, and the shared rate limit on a manual
//! clock.

#[path = "common/postgres.rs"]
mod postgres;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden::config::{RateLimitConfig, StoreConfig};
use warden::service::ratelimit::{Limited, RateLimiter, retry_after_secs};
use warden::service::seed::SEED_CUSTOMERS;
use warden::service::store::{NewTicket, PgStore, Store, StoreError, Ticket};
use warden::types::time::ManualClock;

/// One backend's data, and how to open another instance on it.
enum Backing {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backing {
    async fn open(&self) -> Store {
        match self {
            Self::Sqlite(dir) => Store::open(&dir.path().join("service.db"), 4).expect("open SQLite"),
            Self::Postgres(url) => Store::connect(&store_config(url)).await.expect("connect to PostgreSQL"),
        }
    }
}

fn store_config(url: &str) -> StoreConfig {
    StoreConfig { url: Some(url.to_string()), pool_size: 8, timeout_ms: 2_000, ..StoreConfig::default() }
}

/// Runs each listed case once per backend: `sqlite::case` and `postgresql::case`.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let backing = super::Backing::Sqlite(tempfile::tempdir().unwrap());
                    super::$case(&backing).await;
                }
            )*
        }
        mod postgresql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(pg) = super::postgres::server() else { return };
                    let backing = super::Backing::Postgres(pg.create_database(stringify!($case)));
                    super::$case(&backing).await;
                }
            )*
        }
    };
}

both_backends!(
    seeded_customers_and_recent_order,
    tickets_are_numbered_and_stored,
    an_idempotency_key_replays_the_same_ticket,
    a_reused_key_with_other_content_is_a_conflict,
    one_key_from_many_tasks_on_two_instances_makes_one_ticket,
    ticket_ids_are_unique_across_instances,
    unicode_and_the_longest_texts_come_back_exactly,
);

fn ticket<'a>(client: &'a str, key: Option<&'a str>, subject: &'a str, description: &'a str) -> NewTicket<'a> {
    NewTicket { customer_id: "ABC123", subject, description, priority: "high", client_id: client, idempotency_key: key }
}

async fn seeded_customers_and_recent_order(b: &Backing) {
    let store = b.open().await;
    let sarah = store.customer("ABC123").await.unwrap().expect("seeded");
    let seed = SEED_CUSTOMERS.iter().find(|s| s.id == "ABC123").unwrap();
    assert_eq!(
        (sarah.name.as_str(), sarah.email.as_str(), sarah.tier.as_str(), sarah.lifetime_value, sarah.notes.as_str()),
        (seed.name, seed.email, seed.tier, seed.lifetime_value, seed.notes)
    );
    assert!(store.customer("NOP000").await.unwrap().is_none());
    // Most recently active first, ties by id: byte order on both backends.
    let mut expected: Vec<_> = SEED_CUSTOMERS.iter().map(|s| (s.last_activity, s.id)).collect();
    expected.sort_by(|a, b| b.0.cmp(a.0).then(a.1.cmp(b.1)));
    let all = store.recent_customers(50).await.unwrap();
    let got: Vec<_> = all.iter().map(|c| (c.last_activity.as_str(), c.customer_id.as_str())).collect();
    assert_eq!(got, expected);
    let three = store.recent_customers(3).await.unwrap();
    assert_eq!(three, all[..3]);
    // A second instance seeds again on start without duplicating anyone.
    let again = b.open().await;
    assert_eq!(again.recent_customers(50).await.unwrap().len(), SEED_CUSTOMERS.len());
}

async fn tickets_are_numbered_and_stored(b: &Backing) {
    let store = b.open().await;
    assert_eq!(store.ticket_count().await.unwrap(), 0);
    let first = store.create_ticket(&ticket("agent", None, "Grill", "It smokes")).await.unwrap();
    let second = store.create_ticket(&ticket("agent", None, "Grill", "It smokes")).await.unwrap();
    for t in [&first, &second] {
        assert!(
            t.ticket_id.len() == 10
                && t.ticket_id.starts_with("TKT-")
                && t.ticket_id[4..].bytes().all(|c| c.is_ascii_digit()),
            "{}",
            t.ticket_id
        );
        assert_eq!(
            (
                t.customer_id.as_str(),
                t.subject.as_str(),
                t.description.as_str(),
                t.priority.as_str(),
                t.status.as_str()
            ),
            ("ABC123", "Grill", "It smokes", "high", "open")
        );
        assert!(!t.replayed);
        assert!(t.created_at.ends_with('Z') && t.created_at.len() == 20, "{}", t.created_at);
    }
    assert!(second.ticket_id > first.ticket_id, "{} then {}", first.ticket_id, second.ticket_id);
    assert_eq!(store.ticket_count().await.unwrap(), 2);
}

async fn an_idempotency_key_replays_the_same_ticket(b: &Backing) {
    let store = b.open().await;
    let a = store.create_ticket(&ticket("agent", Some("req-1"), "Grill", "It smokes")).await.unwrap();
    let again = store.create_ticket(&ticket("agent", Some("req-1"), "Grill", "It smokes")).await.unwrap();
    assert!(!a.replayed && again.replayed);
    assert_eq!(Ticket { replayed: false, ..again }, a, "the stored ticket, field for field");
    // Keys are per client: another client's same key is another ticket.
    let other = store.create_ticket(&ticket("other-agent", Some("req-1"), "Grill", "It smokes")).await.unwrap();
    assert!(!other.replayed);
    assert_ne!(other.ticket_id, a.ticket_id);
    // Another instance sees the same key.
    let second = b.open().await;
    let replayed = second.create_ticket(&ticket("agent", Some("req-1"), "Grill", "It smokes")).await.unwrap();
    assert_eq!((replayed.ticket_id.as_str(), replayed.replayed), (a.ticket_id.as_str(), true));
    assert_eq!(store.ticket_count().await.unwrap(), 2);
}

async fn a_reused_key_with_other_content_is_a_conflict(b: &Backing) {
    let store = b.open().await;
    let a = store.create_ticket(&ticket("agent", Some("k"), "Grill", "It smokes")).await.unwrap();
    for changed in [ticket("agent", Some("k"), "Oven", "It smokes"), ticket("agent", Some("k"), "Grill", "It sparks")] {
        match store.create_ticket(&changed).await {
            Err(StoreError::IdempotencyConflict(existing)) => assert_eq!(existing, a.ticket_id),
            other => panic!("expected a conflict naming {}, got {other:?}", a.ticket_id),
        }
    }
    let mut urgent = ticket("agent", Some("k"), "Grill", "It smokes");
    urgent.priority = "urgent";
    assert!(matches!(store.create_ticket(&urgent).await, Err(StoreError::IdempotencyConflict(_))));
    assert_eq!(store.ticket_count().await.unwrap(), 1);
}

async fn one_key_from_many_tasks_on_two_instances_makes_one_ticket(b: &Backing) {
    let stores = [Arc::new(b.open().await), Arc::new(b.open().await)];
    for round in 0..3 {
        let key = format!("shared-{round}");
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let store = stores[i % 2].clone();
                let key = key.clone();
                tokio::spawn(async move {
                    store.create_ticket(&ticket("agent", Some(&key), "Grill", "It smokes")).await.unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        let ids: BTreeSet<&str> = results.iter().map(|t| t.ticket_id.as_str()).collect();
        assert_eq!(ids.len(), 1, "one ticket for one key: {ids:?}");
        assert_eq!(results.iter().filter(|t| !t.replayed).count(), 1, "exactly one creation, the rest replays");
    }
    assert_eq!(stores[0].ticket_count().await.unwrap(), 3);
}

async fn ticket_ids_are_unique_across_instances(b: &Backing) {
    let stores = [Arc::new(b.open().await), Arc::new(b.open().await)];
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                let key = format!("own-{i}");
                let keyed = store.create_ticket(&ticket("agent", Some(&key), "Grill", "It smokes")).await.unwrap();
                let plain = store.create_ticket(&ticket("agent", None, "Grill", "It smokes")).await.unwrap();
                [keyed.ticket_id, plain.ticket_id]
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), 80, "every creation its own id");
    assert_eq!(stores[1].ticket_count().await.unwrap(), 80);
}

async fn unicode_and_the_longest_texts_come_back_exactly(b: &Backing) {
    let store = b.open().await;
    let subject = "Grill 🔥 défectueux — 顧客の苦情 👩‍👩‍👧 e\u{301}";
    let description = "\u{20ac}".repeat(4_990) + "\tmañana\n";
    let made = store.create_ticket(&ticket("agent", Some("uni"), subject, &description)).await.unwrap();
    // The replay is read back from the database, not echoed from the request.
    let read = store.create_ticket(&ticket("agent", Some("uni"), subject, &description)).await.unwrap();
    assert!(read.replayed);
    assert_eq!((read.subject.as_str(), read.description.as_str()), (subject, description.as_str()));
    assert_eq!(read.description.chars().count(), 4_998);
    let long_subject = "ä".repeat(200);
    let t = store.create_ticket(&ticket("agent", Some("long"), &long_subject, "x")).await.unwrap();
    let back = store.create_ticket(&ticket("agent", Some("long"), &long_subject, "x")).await.unwrap();
    assert_eq!((back.subject.chars().count(), back.ticket_id), (200, t.ticket_id));
    assert_eq!(made.subject, subject);
}

// ---- PostgreSQL only ----

/// Instances starting together: the migration lock lets one apply version 1 while the
/// others wait, then find it applied; every one of them serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_migrate_once_and_seed_once() {
    let Some(pg) = postgres::server() else { return };
    let url = pg.create_database("concurrent_starts");
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::connect(&store_config(&url)).await })
        })
        .collect();
    for s in starts {
        let store = s.await.unwrap().expect("every instance starts");
        assert!(store.customer("ABC123").await.unwrap().is_some());
    }
    assert_eq!(pg.psql(&url, "SELECT string_agg(version::text, ',') FROM warden_schema_migrations"), "1");
    assert_eq!(pg.psql(&url, "SELECT count(*) FROM warden_customers"), SEED_CUSTOMERS.len().to_string());
}

/// The server goes away: calls fail within the timeout as "unavailable" (no hang, no
/// panic), the shared rate limit refuses (fail closed), and both work again once the
/// server is back, without restarting the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_goes_away_fails_calls_clearly_and_they_recover() {
    let Some(pg) = postgres::private(&[], &[]) else { return };
    let url = pg.url("postgres");
    let store =
        Arc::new(Store::connect(&StoreConfig { timeout_ms: 1_000, ..store_config(&url) }).await.expect("connect"));
    let clock = ManualClock::at_ms(5_000_000);
    let limiter = RateLimiter::new(RateLimitConfig { per_second: 10.0, burst: 5 })
        .with_clock(clock.clone())
        .shared(store.clone());
    assert!(limiter.is_shared());
    assert!(store.customer("ABC123").await.unwrap().is_some());
    assert_eq!(limiter.check("agent").await, Ok(()));

    pg.stop();
    let started = Instant::now();
    match store.customer("ABC123").await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("127.0.0.1"), "names the server: {why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    match limiter.check("agent").await {
        Err(Limited::Unavailable(why)) => assert!(why.contains("unavailable"), "{why}"),
        other => panic!("the limiter must fail closed, got {other:?}"),
    }
    assert!(matches!(
        store.create_ticket(&ticket("agent", Some("down"), "Grill", "x")).await,
        Err(StoreError::Unavailable(_))
    ));

    pg.launch();
    // The pool drops the dead connections and dials again; poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.customer("ABC123").await {
            Ok(Some(_)) => break,
            other => assert!(Instant::now() < deadline, "did not recover: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(limiter.check("agent").await, Ok(()));
    let t = store.create_ticket(&ticket("agent", Some("up"), "Grill", "x")).await.unwrap();
    assert!(!t.replayed);
}

/// A database that is not there at start: a clear error naming it (redacted), no hang.
#[tokio::test]
async fn nothing_listening_at_start_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://warden:pa55word@127.0.0.1:{port}/warden");
    let started = Instant::now();
    let e = match Store::connect(&StoreConfig { timeout_ms: 1_000, ..store_config(&url) }).await {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        e.starts_with(&format!(
            "the PostgreSQL store is unavailable: cannot connect to postgres://warden:***@127.0.0.1:{port}/warden"
        )),
        "{e}"
    );
    assert!(!e.contains("pa55word"), "{e}");
}

/// A role that must give its password (scram-sha-256): the password from the environment
/// variable named by password_env gets in; a wrong one is refused, and no message shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_come_from_the_environment_and_never_show() {
    let Some(pg) = postgres::server() else { return };
    let db = pg.create_database("passwords");
    let name = db.rsplit('/').next().unwrap();
    pg.psql("postgres", &format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{0}') THEN CREATE ROLE {0} LOGIN PASSWORD 'right-pw'; END IF; END $$",
        postgres::SCRAM_ROLE
    ));
    pg.psql("postgres", &format!("ALTER DATABASE {name} OWNER TO {}", postgres::SCRAM_ROLE));
    let url = format!("postgres://{}@127.0.0.1:{}/{name}", postgres::SCRAM_ROLE, pg.port);
    let cfg = StoreConfig { password_env: Some("WARDEN_TEST_DB_PASSWORD".into()), ..store_config(&url) };
    let env = |pw: &'static str| move |var: &str| (var == "WARDEN_TEST_DB_PASSWORD").then(|| pw.to_string());
    let store = PgStore::connect_with_env(&cfg, env("right-pw")).await.expect("the right password gets in");
    assert!(store.customer("ABC123").await.unwrap().is_some());
    let e = match PgStore::connect_with_env(&cfg, env("wrong-pw")).await {
        Ok(_) => panic!("a wrong password got in"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-pw") && !e.contains("right-pw"), "{e}");
    // In the URL works too, and is shown redacted.
    let with_pw = format!("postgres://{}:right-pw@127.0.0.1:{}/{name}", postgres::SCRAM_ROLE, pg.port);
    let store = Store::connect(&store_config(&with_pw)).await.expect("password in the URL");
    assert_eq!(
        store.describe(),
        format!("PostgreSQL postgres://{}:***@127.0.0.1:{}/{name}", postgres::SCRAM_ROLE, pg.port)
    );
}

/// The shared token bucket on a manual clock: burst, refill, the wait that becomes
/// `Retry-After`, as the in-memory limiter answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_limit_bursts_refills_and_tells_the_wait() {
    let Some(pg) = postgres::server() else { return };
    let store = Arc::new(Backing::Postgres(pg.create_database("limit_burst")).open().await);
    let clock = ManualClock::at_ms(1_000_000);
    let rl = RateLimiter::new(RateLimitConfig { per_second: 2.0, burst: 3 }).with_clock(clock.clone()).shared(store);
    for _ in 0..3 {
        assert_eq!(rl.check("a").await, Ok(()));
    }
    let Err(Limited::Wait(wait)) = rl.check("a").await else { panic!("the fourth call must wait") };
    assert_eq!((wait, retry_after_secs(wait)), (Duration::from_millis(500), 1));
    assert_eq!(rl.check("b").await, Ok(()), "buckets are per client");
    clock.advance(Duration::from_millis(499));
    assert!(matches!(rl.check("a").await, Err(Limited::Wait(_))), "not yet a whole token");
    clock.advance(Duration::from_millis(1));
    assert_eq!(rl.check("a").await, Ok(()), "refilled one token");
    assert!(rl.check("a").await.is_err());
    clock.advance(Duration::from_secs(3600));
    for _ in 0..3 {
        assert_eq!(rl.check("a").await, Ok(()), "refills up to the burst, not beyond");
    }
    assert!(rl.check("a").await.is_err());
}

/// The shared limit's connections acknowledge a bucket update without waiting for the WAL
/// flush (its per-call fsync was the scaling limit); tickets and idempotency keys keep
/// synchronous commits. The limit still holds exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_commits_asynchronously_and_tickets_do_not() {
    let Some(pg) = postgres::server() else { return };
    let db = pg.create_database("limit_commit");
    // The test server runs with synchronous commits off for speed; this database gets the
    // production default back.
    pg.psql("postgres", &format!("ALTER DATABASE {} SET synchronous_commit = on", db.rsplit('/').next().unwrap()));
    let store = Arc::new(Backing::Postgres(db).open().await);
    let modes = store.postgres().expect("postgres").commit_modes().await.unwrap();
    assert_eq!(modes, ("on".to_string(), "off".to_string()));
    let rl = RateLimiter::new(RateLimitConfig { per_second: 0.001, burst: 5 }).shared(store);
    let mut granted = 0;
    for _ in 0..8 {
        granted += usize::from(rl.check("c").await.is_ok());
    }
    assert_eq!(granted, 5);
}

/// Two instances (two pools, two limiters) on one database draw from one budget, even
/// when their calls race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_limiters_on_one_database_share_one_budget() {
    let Some(pg) = postgres::server() else { return };
    let backing = Backing::Postgres(pg.create_database("limit_shared"));
    let clock = ManualClock::at_ms(2_000_000);
    let cfg = RateLimitConfig { per_second: 1.0, burst: 20 };
    let limiters = [
        Arc::new(RateLimiter::new(cfg).with_clock(clock.clone()).shared(Arc::new(backing.open().await))),
        Arc::new(RateLimiter::new(cfg).with_clock(clock.clone()).shared(Arc::new(backing.open().await))),
    ];
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let l = limiters[i % 2].clone();
            tokio::spawn(async move { l.check("agent").await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => granted += 1,
            Err(Limited::Wait(w)) => assert!(w <= Duration::from_secs(1), "{w:?}"),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(granted, 20, "the burst is shared, not per instance");
    clock.advance(Duration::from_secs(2));
    assert_eq!(limiters[0].check("agent").await, Ok(()));
    assert_eq!(limiters[1].check("agent").await, Ok(()));
    assert!(limiters[0].check("agent").await.is_err(), "two seconds refilled two tokens, for both");
}

/// Idle clients' buckets (full again) are deleted once a minute of clock time, so the
/// table holds only active clients; forgetting them changes no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_buckets_are_pruned() {
    let Some(pg) = postgres::server() else { return };
    let url = pg.create_database("limit_prune");
    let store = Arc::new(Backing::Postgres(url.clone()).open().await);
    let clock = ManualClock::at_ms(3_000_000);
    let rl = RateLimiter::new(RateLimitConfig { per_second: 1.0, burst: 2 }).with_clock(clock.clone()).shared(store);
    for c in ["a", "b", "c"] {
        assert_eq!(rl.check(c).await, Ok(()));
    }
    assert_eq!(pg.psql(&url, "SELECT count(*) FROM warden_rate_buckets"), "3");
    clock.advance(Duration::from_secs(30));
    assert_eq!(rl.check("d").await, Ok(()));
    assert_eq!(pg.psql(&url, "SELECT count(*) FROM warden_rate_buckets"), "4", "no prune within the minute");
    clock.advance(Duration::from_secs(31));
    assert_eq!(rl.check("e").await, Ok(()));
    assert_eq!(pg.psql(&url, "SELECT string_agg(client_id, ',' ORDER BY client_id) FROM warden_rate_buckets"), "e");
    for _ in 0..2 {
        assert_eq!(rl.check("a").await, Ok(()), "a forgotten client starts with a full bucket");
    }
    assert!(rl.check("a").await.is_err());
}

/// A CA and a server certificate for `name`, as PEM: (CA, certificate, key).
fn test_pki(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "store test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);
    let mut leaf = CertificateParams::new(vec![name.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

/// A host that is not loopback gets TLS without being asked, verified against ca_file
/// (a wrong CA is refused); a server without TLS is refused rather than spoken to in the
/// clear, unless the URL says sslmode=disable. (`hostaddr` points the name db.example at
/// this machine, so the test needs no network.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_hosts_get_verified_tls_or_nothing() {
    let (ca, cert, key) = test_pki("db.example");
    let Some(tls_server) = postgres::private(
        &[("ssl", "on"), ("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key")],
        &[("server.crt", cert.as_bytes()), ("server.key", key.as_bytes())],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let remote = |port: u16, db: &str, extra: &str| {
        format!("postgres://postgres@db.example:{port}/{db}?hostaddr=127.0.0.1{extra}")
    };
    let cfg = |url: String, ca: &std::path::Path| StoreConfig { ca_file: Some(ca.to_path_buf()), ..store_config(&url) };

    let store =
        Store::connect(&cfg(remote(tls_server.port, "postgres", ""), &ca_file)).await.expect("TLS with the right CA");
    assert!(store.customer("ABC123").await.unwrap().is_some());
    let encrypted = tls_server.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'warden' AND s.ssl",
    );
    assert_ne!(encrypted, "0", "the store's connections are encrypted");

    let (other_ca, _, _) = test_pki("db.example");
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let e = match Store::connect(&cfg(remote(tls_server.port, "postgres", ""), &other_file)).await {
        Ok(_) => panic!("a certificate from an unknown CA was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("certificate"), "{e}");

    let Some(plain) = postgres::server() else { return };
    let db = plain.create_database("tls_refused");
    let db = db.rsplit('/').next().unwrap();
    let e = match Store::connect(&cfg(remote(plain.port, db, ""), &ca_file)).await {
        Ok(_) => panic!("spoke to a non-loopback host without TLS"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("TLS"), "{e}");
    let opted_out = Store::connect(&cfg(remote(plain.port, db, "&sslmode=disable"), &ca_file)).await;
    assert!(opted_out.is_ok(), "sslmode=disable is an explicit choice: {:?}", opted_out.err());
}

/// `warden serve --store-url` as a user runs it: the banner names the PostgreSQL store
/// (password redacted), a ticket created through `warden call` is a row in the database
/// and a retry with its key replays it; a database that is not there stops the start with
/// a message naming it and what to check.
#[test]
fn warden_serve_keeps_its_tickets_in_postgres() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};
    let Some(pg) = postgres::server() else { return };
    let url = pg.create_database("serve_e2e");
    let with_pw = url.replacen("postgres@", "postgres:unused-pw@", 1);
    let state = tempfile::tempdir().unwrap();
    let warden = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_warden"));
        c.env_remove("WARDEN_CONFIG").env_remove("PGPASSWORD").env("XDG_CONFIG_HOME", state.path());
        c
    };
    let mut child = warden()
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--store-url", &with_pw])
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let shown = url.replacen("postgres@", "postgres:***@", 1);
    assert!(line.contains(&format!("  store PostgreSQL {shown}  ")), "{line}");
    assert!(!line.contains("unused-pw"), "{line}");

    let client = state.path().join("client.toml");
    let call = |args: &str| {
        let out = warden()
            .arg("--config")
            .arg(&client)
            .args(["call", "create_support_ticket", args, "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["report"]["structured"].clone()
    };
    let args = r#"{"customer_id":"ABC123","subject":"Grill","description":"It smokes","priority":"high","idempotency_key":"e2e-1"}"#;
    let first = call(args);
    let again = call(args);
    let id = first["ticket_id"].as_str().unwrap_or_else(|| panic!("a ticket: {first}")).to_string();
    assert_eq!((again["ticket_id"].as_str(), again["replayed"].as_bool()), (Some(id.as_str()), Some(true)));
    assert_eq!(
        pg.psql(&url, "SELECT ticket_id || ' ' || client_id || ' ' || idempotency_key FROM warden_tickets"),
        format!("{id} support-agent e2e-1")
    );
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = format!("postgres://warden:s3cret@127.0.0.1:{port}/warden");
    let out = warden()
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--store-url", &down])
        .arg("--state-dir")
        .arg(state.path().join("down"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains(&format!("cannot use the PostgreSQL store postgres://warden:***@127.0.0.1:{port}/warden")),
        "{stderr}"
    );
    assert!(stderr.contains("check that the server is running"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
