//! The PostgreSQL backend of the service store (`[service.store] url`), which several
//! service instances share.
//!
//! - One pool per instance (deadpool over tokio-postgres) with bounded waits: a full pool,
//!   a slow connect or a server that stops answering fails the call as
//!   [`StoreError::Unavailable`] within `timeout_ms` instead of hanging it, and the pool
//!   reconnects by itself once the server is back (a closed connection is dropped when it
//!   is next taken).
//! - Versioned migrations run at start, under a session advisory lock, so instances that
//!   start together apply each version once; the demo customers are seeded with
//!   `ON CONFLICT DO NOTHING` every start.
//! - Idempotency across instances rests on the unique `(client_id, idempotency_key)`
//!   constraint: the insert is `ON CONFLICT DO NOTHING RETURNING`, and only when it inserted
//!   nothing is the existing row read and its request digest compared, as the SQLite path
//!   does. Ticket numbers come from a sequence, so two instances never hand out the same.
//! - The per-client token buckets of the shared rate limit ([`PgStore::take_token`]) are one
//!   row each, updated by a single atomic statement.
//! - TLS: a loopback host (or a Unix socket) may be plain; any other host gets TLS
//!   (rustls, certificates checked against `ca_file` or the system's roots) unless the URL
//!   says `sslmode=disable` explicitly. `sslmode=require` asks for TLS on loopback too.
//!
//! The password never appears in a message: the URL is shown through
//! [`crate::config::redact_url`], and the driver's errors do not carry it.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use super::{Customer, NewTicket, StoreError, Ticket, request_digest};
use crate::config::{StoreConfig, redact_url};
use crate::service::seed::SEED_CUSTOMERS;

/// The advisory lock key migrations run under (any constant shared by all instances;
/// this one spells "WARDEN" and the issue number).
const MIGRATION_LOCK: i64 = 0x5741_5244_454e_0016;

/// Full buckets of clients idle this long (clock ms) are deleted, at most this often.
const PRUNE_EVERY_MS: u64 = 60_000;

struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

/// Applied in order, each in its own transaction, recorded in `warden_schema_migrations`.
/// Never edit a released one: add the next version.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "customers, tickets with idempotency keys, ticket numbers, rate-limit buckets",
    // COLLATE "C" on the columns that order results: byte order, as SQLite compares, so
    // both backends list recent customers identically whatever the database's locale.
    sql: r#"
CREATE TABLE warden_customers (
    customer_id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    phone text NOT NULL,
    tier text NOT NULL,
    status text NOT NULL,
    joined text NOT NULL,
    last_activity text COLLATE "C" NOT NULL,
    lifetime_value double precision NOT NULL,
    notes text NOT NULL
);
CREATE INDEX warden_customers_by_activity ON warden_customers (last_activity DESC, customer_id);
CREATE SEQUENCE warden_ticket_seq;
CREATE TABLE warden_tickets (
    seq bigint PRIMARY KEY,
    ticket_id text NOT NULL UNIQUE,
    customer_id text COLLATE "C" NOT NULL REFERENCES warden_customers (customer_id),
    subject text NOT NULL,
    description text NOT NULL,
    priority text NOT NULL,
    status text NOT NULL,
    created_at text NOT NULL,
    client_id text NOT NULL,
    idempotency_key text,
    request_digest text NOT NULL,
    UNIQUE (client_id, idempotency_key)
);
CREATE TABLE warden_rate_buckets (
    client_id text PRIMARY KEY,
    tokens double precision NOT NULL,
    updated_ms bigint NOT NULL,
    granted boolean NOT NULL
);
CREATE INDEX warden_rate_buckets_by_age ON warden_rate_buckets (updated_ms);
"#,
}];

const SELECT_CUSTOMER: &str = "SELECT customer_id, name, email, phone, tier, status, joined, last_activity, \
     lifetime_value, notes FROM warden_customers WHERE customer_id = $1";

const SELECT_RECENT: &str = "SELECT customer_id, name, email, phone, tier, status, joined, last_activity, \
     lifetime_value, notes FROM warden_customers ORDER BY last_activity DESC, customer_id LIMIT $1";

const SEED_CUSTOMER: &str = "INSERT INTO warden_customers (customer_id, name, email, phone, tier, status, joined, \
     last_activity, lifetime_value, notes) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (customer_id) DO NOTHING";

/// One statement: the number is drawn, formatted like SQLite's `TKT-{n:06}` (six digits
/// at least, never cut), and the row inserted unless the client already used the key.
const INSERT_TICKET: &str = "WITH n AS (SELECT nextval('warden_ticket_seq') AS seq) \
     INSERT INTO warden_tickets (seq, ticket_id, customer_id, subject, description, priority, status, \
     created_at, client_id, idempotency_key, request_digest) \
     SELECT seq, 'TKT-' || lpad(seq::text, greatest(6, length(seq::text)), '0'), \
     $1::text, $2::text, $3::text, $4::text, 'open', $5::text, $6::text, $7::text, $8::text FROM n \
     ON CONFLICT (client_id, idempotency_key) DO NOTHING RETURNING ticket_id";

const SELECT_BY_KEY: &str = "SELECT ticket_id, customer_id, subject, description, priority, status, created_at, \
     request_digest FROM warden_tickets WHERE client_id = $1 AND idempotency_key = $2";

/// One atomic statement per request: refill by the time elapsed on the caller's clock
/// (never negative, so an instance whose clock lags refills nothing), cap at the burst,
/// take a token if there is a whole one. `granted` tells the caller which happened
/// (`RETURNING` sees only the new row). A new client starts with a full bucket.
/// $1 client, $2 burst, $3 now (ms), $4 tokens per second.
const TAKE_TOKEN: &str = "INSERT INTO warden_rate_buckets AS b (client_id, tokens, updated_ms, granted) \
     VALUES ($1, $2::float8 - 1, $3::int8, true) \
     ON CONFLICT (client_id) DO UPDATE SET \
     tokens = least($2::float8, b.tokens + greatest($3::int8 - b.updated_ms, 0)::float8 * $4::float8 / 1000.0) \
       - CASE WHEN least($2::float8, b.tokens + greatest($3::int8 - b.updated_ms, 0)::float8 * $4::float8 / 1000.0) >= 1 \
         THEN 1 ELSE 0 END, \
     updated_ms = greatest(b.updated_ms, $3::int8), \
     granted = least($2::float8, b.tokens + greatest($3::int8 - b.updated_ms, 0)::float8 * $4::float8 / 1000.0) >= 1 \
     RETURNING granted, tokens";

pub struct PgStore {
    pool: Pool,
    /// The shared rate limit's own connections, with `synchronous_commit` off: a bucket
    /// update is acknowledged without waiting for its WAL flush. Losing the last moments of
    /// bucket updates in a database crash (at most ~3 × `wal_writer_delay`, 600 ms by
    /// default) only lets those clients spend that much again; tickets and idempotency
    /// keys stay on `pool`, fully durable.
    limiter: Pool,
    /// Bound on any one operation (pool wait, connect, statements).
    timeout: Duration,
    /// The URL with its password replaced, for every message.
    shown_url: String,
    /// Clock ms of the last prune of idle rate-limit buckets (0: never).
    last_prune_ms: AtomicU64,
}

impl PgStore {
    /// Connects as `cfg` says (password from the URL, else from `password_env` or
    /// `PGPASSWORD` in the environment), then migrates and seeds.
    pub async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        Self::connect_with_env(cfg, |name| std::env::var(name).ok()).await
    }

    /// As [`Self::connect`], reading environment variables through `env` (tests).
    pub async fn connect_with_env(cfg: &StoreConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, StoreError> {
        let raw = cfg.url.as_deref().ok_or_else(|| {
            StoreError::Setup("[service.store] has no url; set url = \"postgres://user@host:port/database\"".into())
        })?;
        let shown_url = redact_url(raw);
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            return Err(StoreError::Setup(format!(
                "[service.store] url {shown_url} is not a PostgreSQL URL; write it as postgres://user@host:port/database"
            )));
        }
        let mut pg = tokio_postgres::Config::from_str(raw).map_err(|e| {
            StoreError::Setup(format!(
                "[service.store] url {shown_url} cannot be read ({e}); write it as postgres://user@host:port/database"
            ))
        })?;
        if pg.get_user().is_none_or(str::is_empty) {
            return Err(StoreError::Setup(format!(
                "[service.store] url {shown_url} names no user; write it as postgres://user@host:port/database"
            )));
        }
        if pg.get_hosts().is_empty() {
            return Err(StoreError::Setup(format!(
                "[service.store] url {shown_url} names no host; write it as postgres://user@host:port/database"
            )));
        }
        if pg.get_password().is_none() {
            let var = cfg.password_env.as_deref().unwrap_or("PGPASSWORD");
            match env(var) {
                Some(password) => {
                    pg.password(password);
                }
                None if cfg.password_env.is_some() => {
                    return Err(StoreError::Setup(format!(
                        "[service.store] password_env names {var}, which is not set; export it with the database password"
                    )));
                }
                None => {}
            }
        }
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        pg.connect_timeout(timeout);
        pg.keepalives(true);
        if pg.get_application_name().is_none() {
            pg.application_name("warden");
        }
        let loopback = pg.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => is_loopback(name),
            Host::Unix(_) => true,
        }) && pg.get_hostaddrs().iter().all(|a| a.is_loopback());
        let tls = match pg.get_ssl_mode() {
            SslMode::Disable => false,
            SslMode::Prefer => !loopback,
            _ => true,
        };
        if !tls && !loopback {
            tracing::warn!(target: "warden::service::store", url = %shown_url, "TLS to the PostgreSQL store is off (sslmode=disable): traffic, password included, crosses the network in the clear");
        }
        if tls {
            // Never fall back to plain text for a host that is not this machine.
            pg.ssl_mode(SslMode::Require);
        }
        let connector = tls.then(|| tls_config(cfg).map(tokio_postgres_rustls::MakeRustlsConnect::new)).transpose()?;
        let pool = |pg: tokio_postgres::Config, size: usize| {
            let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
            let manager = match &connector {
                Some(connector) => Manager::from_config(pg, connector.clone(), manager_config),
                None => Manager::from_config(pg, NoTls, manager_config),
            };
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(timeout))
                .create_timeout(Some(timeout))
                .recycle_timeout(Some(timeout))
                .build()
                .map_err(|e| StoreError::Setup(format!("cannot set up the PostgreSQL connection pool: {e}")))
        };
        let mut limiter_pg = pg.clone();
        let options = limiter_pg.get_options().map(|o| format!("{o} ")).unwrap_or_default();
        limiter_pg.options(format!("{options}-c synchronous_commit=off"));
        let limiter = pool(limiter_pg, (cfg.pool_size / 2).max(2))?;
        let pool = pool(pg, cfg.pool_size.max(1))?;
        let store = Self { pool, limiter, timeout, shown_url, last_prune_ms: AtomicU64::new(0) };
        // Migrations may wait on another instance's lock: longer than one call's bound.
        match tokio::time::timeout(timeout * 6, store.migrate()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "migrating the schema took longer than {} s (another instance holding the migration lock?)",
                    (timeout * 6).as_secs()
                )));
            }
        }
        Ok(store)
    }

    /// `synchronous_commit` as the server reports it for (ticket and idempotency
    /// connections, rate-limit connections): `on` and `off` unless the database forces
    /// otherwise. Logged at start, so an operator sees what a database crash may cost.
    pub async fn commit_modes(&self) -> Result<(String, String), StoreError> {
        self.bounded(async { Ok((self.commit_mode(&self.pool).await?, self.commit_mode(&self.limiter).await?)) }).await
    }

    async fn commit_mode(&self, pool: &Pool) -> Result<String, StoreError> {
        let c = self.client_of(pool).await?;
        let row = c.query_one("SHOW synchronous_commit", &[]).await.map_err(db_error)?;
        row.try_get(0).map_err(db_error)
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.shown_url
    }

    /// Applies the migrations this database lacks and seeds the demo customers, holding
    /// the migration lock so concurrent starts take turns.
    async fn migrate(&self) -> Result<(), StoreError> {
        // Taken out of the pool and closed when this returns: the session advisory lock is
        // released with the connection, whatever fails on the way.
        let mut client = deadpool_postgres::Object::take(self.pool.get().await.map_err(|e| self.pool_error(e))?);
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS warden_schema_migrations (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )",
            )
            .await
            .map_err(db_error)?;
        let applied: i32 = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM warden_schema_migrations", &[])
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if applied > known {
            return Err(StoreError::Setup(format!(
                "the database's schema is at version {applied}, newer than this Warden knows ({known}); run a newer Warden against it"
            )));
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let tx = client.transaction().await.map_err(db_error)?;
            tx.batch_execute(m.sql).await.map_err(db_error)?;
            tx.execute(
                "INSERT INTO warden_schema_migrations (version, description) VALUES ($1, $2)",
                &[&m.version, &m.description],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            tracing::info!(target: "warden::service::store", version = m.version, description = m.description, "applied schema migration");
        }
        let seed = client.prepare(SEED_CUSTOMER).await.map_err(db_error)?;
        for s in SEED_CUSTOMERS {
            client
                .execute(
                    &seed,
                    &[
                        &s.id,
                        &s.name,
                        &s.email,
                        &s.phone,
                        &s.tier,
                        &s.status,
                        &s.joined,
                        &s.last_activity,
                        &s.lifetime_value,
                        &s.notes,
                    ],
                )
                .await
                .map_err(db_error)?;
        }
        client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(db_error)?;
        Ok(())
    }

    /// Runs `op` within the store's time bound.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            // A connection lost mid-call says only "connection closed": name the server.
            Ok(Err(StoreError::Unavailable(why))) if !why.contains(&self.shown_url) => {
                Err(StoreError::Unavailable(format!("{}: {why}", self.shown_url)))
            }
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from {} within {} ms",
                self.shown_url,
                self.timeout.as_millis()
            ))),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client_of(&self.pool).await
    }

    async fn client_of(&self, pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
        pool.get().await.map_err(|e| self.pool_error(e))
    }

    fn pool_error(&self, e: PoolError) -> StoreError {
        let ms = self.timeout.as_millis();
        let url = &self.shown_url;
        match e {
            PoolError::Timeout(TimeoutType::Wait) => {
                StoreError::Unavailable(format!("every connection to {url} stayed busy for {ms} ms"))
            }
            PoolError::Timeout(TimeoutType::Create) => {
                StoreError::Unavailable(format!("connecting to {url} took longer than {ms} ms"))
            }
            PoolError::Timeout(_) => {
                StoreError::Unavailable(format!("checking a connection to {url} took longer than {ms} ms"))
            }
            PoolError::Backend(e) => match db_error(e) {
                StoreError::Postgres(m) | StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("cannot connect to {url}: {m}"))
                }
                other => other,
            },
            other => StoreError::Unavailable(format!("no connection to {url}: {other}")),
        }
    }

    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.bounded(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(SELECT_CUSTOMER).await.map_err(db_error)?;
            let row = c.query_opt(&stmt, &[&id]).await.map_err(db_error)?;
            row.as_ref().map(row_to_customer).transpose()
        })
        .await
    }

    pub async fn recent_customers(&self, limit: u32) -> Result<Vec<Customer>, StoreError> {
        self.bounded(async {
            let c = self.client().await?;
            let stmt = c.prepare_cached(SELECT_RECENT).await.map_err(db_error)?;
            let rows = c.query(&stmt, &[&i64::from(limit)]).await.map_err(db_error)?;
            rows.iter().map(row_to_customer).collect()
        })
        .await
    }

    /// Creates a ticket, or returns the existing one for a reused idempotency key with the
    /// same content (a reused key with different content is a conflict), across every
    /// instance sharing the database.
    pub async fn create_ticket(&self, t: &NewTicket<'_>) -> Result<Ticket, StoreError> {
        let digest = request_digest(t);
        let created_at = crate::types::time::rfc3339(crate::types::time::now_epoch());
        self.bounded(async {
            let c = self.client().await?;
            let insert = c.prepare_cached(INSERT_TICKET).await.map_err(db_error)?;
            let inserted = c
                .query_opt(
                    &insert,
                    &[
                        &t.customer_id,
                        &t.subject,
                        &t.description,
                        &t.priority,
                        &created_at,
                        &t.client_id,
                        &t.idempotency_key,
                        &digest,
                    ],
                )
                .await
                .map_err(db_error)?;
            if let Some(row) = inserted {
                return Ok(t.created(row.try_get(0).map_err(db_error)?, created_at));
            }
            // Nothing inserted: the key is taken (a conflict waits for the other insert to
            // commit, so its row is visible to this next statement).
            let Some(key) = t.idempotency_key else {
                return Err(StoreError::Postgres("the ticket insert returned no row".into()));
            };
            let select = c.prepare_cached(SELECT_BY_KEY).await.map_err(db_error)?;
            let row = c
                .query_opt(&select, &[&t.client_id, &key])
                .await
                .map_err(db_error)?
                .ok_or_else(|| StoreError::Postgres("the ticket holding this idempotency key vanished".into()))?;
            let existing = Ticket {
                ticket_id: row.try_get(0).map_err(db_error)?,
                customer_id: row.try_get(1).map_err(db_error)?,
                subject: row.try_get(2).map_err(db_error)?,
                description: row.try_get(3).map_err(db_error)?,
                priority: row.try_get(4).map_err(db_error)?,
                status: row.try_get(5).map_err(db_error)?,
                created_at: row.try_get(6).map_err(db_error)?,
                replayed: true,
            };
            let existing_digest: String = row.try_get(7).map_err(db_error)?;
            if existing_digest != digest {
                return Err(StoreError::IdempotencyConflict(existing.ticket_id));
            }
            Ok(existing)
        })
        .await
    }

    pub async fn ticket_count(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let c = self.client().await?;
            let n: i64 = c
                .query_one("SELECT COUNT(*) FROM warden_tickets", &[])
                .await
                .map_err(db_error)?
                .try_get(0)
                .map_err(db_error)?;
            Ok(n.max(0) as u64)
        })
        .await
    }

    /// Takes one token from `client`'s shared bucket at clock time `now_ms`: `Ok(Ok(()))`
    /// granted, `Ok(Err(wait))` empty (a whole token is `wait` away). `burst` and
    /// `per_second` are the limiter's (at least 1 and positive). Once a minute of clock
    /// time, buckets idle long enough to be full again are deleted, which changes no
    /// answer (a missing bucket is a full one) and keeps the table to active clients.
    pub async fn take_token(
        &self,
        client: &str,
        now_ms: u64,
        burst: f64,
        per_second: f64,
    ) -> Result<Result<(), Duration>, StoreError> {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        self.bounded(async {
            let c = self.client_of(&self.limiter).await?;
            let stmt = c.prepare_cached(TAKE_TOKEN).await.map_err(db_error)?;
            let row = c.query_one(&stmt, &[&client, &burst, &now, &per_second]).await.map_err(db_error)?;
            let granted: bool = row.try_get(0).map_err(db_error)?;
            let tokens: f64 = row.try_get(1).map_err(db_error)?;
            let last = self.last_prune_ms.load(Ordering::Relaxed);
            if now_ms.saturating_sub(last) >= PRUNE_EVERY_MS
                && self.last_prune_ms.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                let full_after_ms = (burst / per_second * 1000.0).ceil() as i64;
                let before = now.saturating_sub(full_after_ms);
                let pruned = c
                    .execute("DELETE FROM warden_rate_buckets WHERE updated_ms < $1", &[&before])
                    .await
                    .map_err(db_error)?;
                tracing::debug!(target: "warden::service::ratelimit", pruned, "forgot idle rate-limit buckets");
            }
            Ok(if granted { Ok(()) } else { Err(Duration::from_secs_f64(((1.0 - tokens) / per_second).max(0.0))) })
        })
        .await
    }
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`): traffic that never leaves
/// the machine, where plain text is acceptable.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// TLS to the server, verified against `ca_file` or else the system's CA certificates.
fn tls_config(cfg: &StoreConfig) -> Result<rustls::ClientConfig, StoreError> {
    crate::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Setup(format!("cannot read [service.store] ca_file {}: {e}", path.display()))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    StoreError::Setup(format!("[service.store] ca_file {} is not valid PEM: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Setup(format!(
                        "[service.store] ca_file {} holds an unusable certificate: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::Setup(format!(
                    "[service.store] ca_file {} holds no certificate; give the PEM file of the CA that signed the database server's certificate",
                    path.display()
                )));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(StoreError::Setup(
                    "no system CA certificates found to check the database server's TLS certificate; set [service.store] ca_file".into(),
                ));
            }
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// The driver's error as the store's: the server not there (connection refused, closed,
/// shutting down, too many connections) is [`StoreError::Unavailable`]; an error the
/// server answered with is [`StoreError::Postgres`], with its message and SQLSTATE.
fn db_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let gone = code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
        let text = format!("{} (SQLSTATE {code})", db.message());
        return if gone { StoreError::Unavailable(text) } else { StoreError::Postgres(text) };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    // The driver's own text can stop at "error performing TLS handshake": the causes
    // (an unknown certificate issuer, a name mismatch) are what the operator must read.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    if e.is_closed() || io { StoreError::Unavailable(text) } else { StoreError::Postgres(text) }
}

fn row_to_customer(r: &tokio_postgres::Row) -> Result<Customer, StoreError> {
    Ok(Customer {
        customer_id: r.try_get(0).map_err(db_error)?,
        name: r.try_get(1).map_err(db_error)?,
        email: r.try_get(2).map_err(db_error)?,
        phone: r.try_get(3).map_err(db_error)?,
        tier: r.try_get(4).map_err(db_error)?,
        status: r.try_get(5).map_err(db_error)?,
        joined: r.try_get(6).map_err(db_error)?,
        last_activity: r.try_get(7).map_err(db_error)?,
        lifetime_value: r.try_get(8).map_err(db_error)?,
        notes: r.try_get(9).map_err(db_error)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]", "LOCALHOST"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["db.example", "10.0.0.5", "192.168.1.2", "::2", "localhost.evil.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    fn cfg(url: &str) -> StoreConfig {
        StoreConfig { url: Some(url.into()), timeout_ms: 200, ..StoreConfig::default() }
    }

    async fn setup_error(c: &StoreConfig, env: impl Fn(&str) -> Option<String>) -> String {
        match PgStore::connect_with_env(c, env).await {
            Ok(_) => panic!("connected to {:?}", c.url),
            Err(e) => e.to_string(),
        }
    }

    /// Refusals before any connection: each says what to write, and none shows a password.
    #[tokio::test]
    async fn bad_urls_and_missing_passwords_are_explained_without_the_password() {
        let e = setup_error(&cfg("mysql://u:s3cret@db/w"), |_| None).await;
        assert!(e.contains("is not a PostgreSQL URL") && e.contains("u:***@db") && !e.contains("s3cret"), "{e}");
        let e = setup_error(&cfg("postgres://:s3cret@127.0.0.1/w"), |_| None).await;
        assert!(e.contains("names no user") && !e.contains("s3cret"), "{e}");
        let c = StoreConfig { password_env: Some("WARDEN_DB_PASSWORD".into()), ..cfg("postgres://u@127.0.0.1:1/w") };
        let e = setup_error(&c, |_| None).await;
        assert_eq!(
            e,
            "[service.store] password_env names WARDEN_DB_PASSWORD, which is not set; export it with the database password"
        );
        // Nothing listens on port 1: the password from the environment is used (no
        // refusal for a missing one) and the failure names the server, redacted.
        let e = setup_error(&c, |name| (name == "WARDEN_DB_PASSWORD").then(|| "s3cret".into())).await;
        assert!(
            e.starts_with("the PostgreSQL store is unavailable: cannot connect to postgres://u@127.0.0.1:1/w"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
    }
}
