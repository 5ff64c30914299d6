//! The customer-service data store: customers, tickets and idempotency keys.
//!
//! Two backends behind one [`Store`]: the embedded SQLite file (the default, this file) and
//! PostgreSQL (`[service.store] url`, [`postgres`]), which several service instances can
//! share. Both keep the same contract, checked by one test suite run against each
//! (`tests/store.rs`): the same rows, the same ticket ids' shape, the same idempotency
//! answers and errors.
//!
//! SQLite: a few connections, each behind its own mutex, serve all requests with prepared
//! statements. Queries are point lookups on a small indexed table (microseconds), so they
//! run inline on the async worker instead of paying a `spawn_blocking` hop per call.
//! Tickets are persisted; `(client_id, idempotency_key)` is unique, so a retried creation
//! returns the ticket the first attempt made.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::seed::SEED_CUSTOMERS;

pub mod postgres;

pub use postgres::PgStore;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL server cannot be reached (down, refusing, no pool slot or no answer in
    /// time). The text names the cause; it never holds the password.
    #[error("the PostgreSQL store is unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL answered with an error (the text is the server's, never the password).
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// The store could not be set up (configuration, TLS, migrations); the text says what to fix.
    #[error("{0}")]
    Setup(String),
    #[error("idempotency key already used for a different ticket ({0})")]
    IdempotencyConflict(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Customer {
    pub customer_id: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub tier: String,
    pub status: String,
    pub joined: String,
    pub last_activity: String,
    pub lifetime_value: f64,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ticket {
    pub ticket_id: String,
    pub customer_id: String,
    pub subject: String,
    pub description: String,
    pub priority: String,
    pub status: String,
    pub created_at: String,
    /// True when this call returned an existing ticket for a reused idempotency key.
    pub replayed: bool,
}

/// A ticket to create.
pub struct NewTicket<'a> {
    pub customer_id: &'a str,
    pub subject: &'a str,
    pub description: &'a str,
    pub priority: &'a str,
    pub client_id: &'a str,
    pub idempotency_key: Option<&'a str>,
}

impl NewTicket<'_> {
    /// The ticket this request became when it was inserted (not a replay), as both backends
    /// answer it.
    fn created(&self, ticket_id: String, created_at: String) -> Ticket {
        Ticket {
            ticket_id,
            customer_id: self.customer_id.to_string(),
            subject: self.subject.to_string(),
            description: self.description.to_string(),
            priority: self.priority.to_string(),
            status: "open".into(),
            created_at,
            replayed: false,
        }
    }
}

/// The service's store: the embedded SQLite file or a shared PostgreSQL database.
///
/// The SQLite arm has no await point, so its calls finish on the first poll, inline on the
/// worker, as before the enum (no boxing, no extra task): the default path keeps its speed.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating and seeding if new) the SQLite database at `path` with `pool`
    /// connections.
    pub fn open(path: &Path, pool: usize) -> Result<Self, StoreError> {
        SqliteStore::open(path, pool).map(Self::Sqlite)
    }

    /// Connects to PostgreSQL as `[service.store]` says, runs the migrations and seeds the
    /// demo customers.
    pub async fn connect(cfg: &crate::config::StoreConfig) -> Result<Self, StoreError> {
        PgStore::connect(cfg).await.map(Self::Postgres)
    }

    /// The database system, as OpenTelemetry's `db.system.name` names it.
    pub fn system(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    /// Which backend, for logs and banners: `SQLite <path>` or `PostgreSQL <url, redacted>`.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(s) => format!("SQLite {}", s.path.display()),
            Self::Postgres(p) => format!("PostgreSQL {}", p.redacted_url()),
        }
    }

    /// The PostgreSQL store, when this is one (the shared rate limit lives there too).
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(p) => Some(p),
        }
    }

    // The PostgreSQL arms are boxed: tokio-postgres futures run to kilobytes, and unboxed
    // they would make every tool's future that large on SQLite too, copied on each call
    // when rmcp boxes the handler (~4% of the server's CPU per call in a profile).
    pub async fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        match self {
            Self::Sqlite(s) => s.customer(id),
            Self::Postgres(p) => Box::pin(p.customer(id)).await,
        }
    }

    pub async fn recent_customers(&self, limit: u32) -> Result<Vec<Customer>, StoreError> {
        match self {
            Self::Sqlite(s) => s.recent_customers(limit),
            Self::Postgres(p) => Box::pin(p.recent_customers(limit)).await,
        }
    }

    /// Creates a ticket, or returns the existing one for a reused idempotency key with the
    /// same content (a reused key with different content is a conflict).
    pub async fn create_ticket(&self, t: &NewTicket<'_>) -> Result<Ticket, StoreError> {
        match self {
            Self::Sqlite(s) => s.create_ticket(t),
            Self::Postgres(p) => Box::pin(p.create_ticket(t)).await,
        }
    }

    pub async fn ticket_count(&self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.ticket_count(),
            Self::Postgres(p) => Box::pin(p.ticket_count()).await,
        }
    }
}

pub struct SqliteStore {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    path: std::path::PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    phone TEXT NOT NULL,
    tier TEXT NOT NULL,
    status TEXT NOT NULL,
    joined TEXT NOT NULL,
    last_activity TEXT NOT NULL,
    lifetime_value REAL NOT NULL,
    notes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS customers_by_activity ON customers(last_activity DESC);
CREATE TABLE IF NOT EXISTS tickets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    client_id TEXT NOT NULL,
    idempotency_key TEXT,
    request_digest TEXT NOT NULL,
    UNIQUE(client_id, idempotency_key)
);
";

/// A macro so the column list can be spliced into `concat!`ed SQL: statements are
/// `&'static str`, with no formatting on the per-call path.
macro_rules! customer_columns {
    () => {
        "customer_id, name, email, phone, tier, status, joined, last_activity, lifetime_value, notes"
    };
}

impl SqliteStore {
    /// Opens (creating and seeding if new) the database at `path` with `pool` connections.
    pub fn open(path: &Path, pool: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Several processes may open one file at once (`serve --instances` on SQLite): the
        // switch to WAL can fail with "database is locked" without waiting on the busy
        // timeout, so the one-time setup runs under an exclusive lock on a file beside it.
        let lock_path = path.with_extension("db-init.lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path);
        let guard = match lock {
            Ok(f) => f.lock().map(|()| f).ok(),
            Err(_) => None,
        };
        let first = Connection::open(path)?;
        configure(&first)?;
        first.execute_batch(SCHEMA)?;
        seed(&first)?;
        drop(guard);
        let mut conns = vec![Mutex::new(first)];
        for _ in 1..pool.max(1) {
            let c = Connection::open(path)?;
            configure(&c)?;
            conns.push(Mutex::new(c));
        }
        Ok(Self { conns, next: AtomicUsize::new(0), path: path.to_path_buf() })
    }

    /// Runs `f` on a free connection (or waits on one, round-robin, when all are busy).
    fn with<R>(&self, f: impl FnOnce(&Connection) -> Result<R, StoreError>) -> Result<R, StoreError> {
        for c in &self.conns {
            if let Some(guard) = c.try_lock() {
                return f(&guard);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let guard = self.conns[i].lock();
        f(&guard)
    }

    pub fn customer(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached(concat!("SELECT ", customer_columns!(), " FROM customers WHERE customer_id = ?1"))?;
            Ok(stmt.query_row([id], row_to_customer).optional()?)
        })
    }

    pub fn recent_customers(&self, limit: u32) -> Result<Vec<Customer>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                customer_columns!(),
                " FROM customers ORDER BY last_activity DESC, customer_id LIMIT ?1"
            ))?;
            let rows = stmt.query_map([limit], row_to_customer)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Creates a ticket, or returns the existing one for a reused idempotency key with the
    /// same content (a reused key with different content is a conflict).
    pub fn create_ticket(&self, t: &NewTicket<'_>) -> Result<Ticket, StoreError> {
        let digest = request_digest(t);
        self.with(|c| {
            // IMMEDIATE: the write lock is held before anything is read, so two creations on
            // different pooled connections cannot both miss the same idempotency key or both
            // number their ticket from the same MAX(seq). With a deferred transaction the
            // second writer failed (busy on a stale snapshot, or a UNIQUE violation): an
            // internal error for a valid request, found by tests/soak.rs.
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            if let Some(key) = t.idempotency_key
                && let Some((existing, existing_digest)) = find_by_key(&tx, t.client_id, key)?
            {
                if existing_digest != digest {
                    return Err(StoreError::IdempotencyConflict(existing.ticket_id));
                }
                return Ok(Ticket { replayed: true, ..existing });
            }
            let created_at = crate::types::time::rfc3339(crate::types::time::now_epoch());
            let next: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM tickets", [], |r| r.get(0))?;
            let ticket_id = format!("TKT-{next:06}");
            tx.prepare_cached(
                "INSERT INTO tickets (ticket_id, customer_id, subject, description, priority, status, created_at, client_id, idempotency_key, request_digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9)",
            )?
            .execute(params![ticket_id, t.customer_id, t.subject, t.description, t.priority, created_at, t.client_id, t.idempotency_key, digest])?;
            tx.commit()?;
            Ok(t.created(ticket_id, created_at))
        })
    }

    pub fn ticket_count(&self) -> Result<u64, StoreError> {
        self.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM tickets", [], |r| r.get::<_, i64>(0))? as u64))
    }
}

fn configure(c: &Connection) -> Result<(), StoreError> {
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a committed ticket survives a process crash; only an OS crash
    // or power loss can lose the last commits.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(())
}

fn seed(c: &Connection) -> Result<(), StoreError> {
    let mut stmt = c.prepare(concat!(
        "INSERT OR IGNORE INTO customers (",
        customer_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    for s in SEED_CUSTOMERS {
        stmt.execute(params![
            s.id,
            s.name,
            s.email,
            s.phone,
            s.tier,
            s.status,
            s.joined,
            s.last_activity,
            s.lifetime_value,
            s.notes
        ])?;
    }
    Ok(())
}

fn row_to_customer(r: &rusqlite::Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        customer_id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        phone: r.get(3)?,
        tier: r.get(4)?,
        status: r.get(5)?,
        joined: r.get(6)?,
        last_activity: r.get(7)?,
        lifetime_value: r.get(8)?,
        notes: r.get(9)?,
    })
}

fn find_by_key(c: &Connection, client_id: &str, key: &str) -> Result<Option<(Ticket, String)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT ticket_id, customer_id, subject, description, priority, status, created_at, request_digest
         FROM tickets WHERE client_id = ?1 AND idempotency_key = ?2",
    )?;
    Ok(stmt
        .query_row([client_id, key], |r| {
            Ok((
                Ticket {
                    ticket_id: r.get(0)?,
                    customer_id: r.get(1)?,
                    subject: r.get(2)?,
                    description: r.get(3)?,
                    priority: r.get(4)?,
                    status: r.get(5)?,
                    created_at: r.get(6)?,
                    replayed: false,
                },
                r.get::<_, String>(7)?,
            ))
        })
        .optional()?)
}

/// Digest of a ticket's content, to tell a faithful retry from a reused key (both backends
/// store it, so a key's digest means the same whichever wrote it).
pub(crate) fn request_digest(t: &NewTicket<'_>) -> String {
    let joined = [t.customer_id, t.subject, t.description, t.priority].join("\u{1f}");
    crate::types::secret::Fingerprint::of(joined.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket<'a>(key: Option<&'a str>, subject: &'a str) -> NewTicket<'a> {
        NewTicket {
            customer_id: "ABC123",
            subject,
            description: "grill defective",
            priority: "high",
            client_id: "support-agent",
            idempotency_key: key,
        }
    }

    #[test]
    fn seeded_customers_and_recent_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db"), 2).unwrap();
        assert_eq!(s.customer("ABC123").unwrap().unwrap().name, "Sarah Johnson");
        assert!(s.customer("NOP000").unwrap().is_none());
        let recent = s.recent_customers(3).unwrap();
        assert_eq!(recent.len(), 3);
        assert!(recent[0].last_activity >= recent[1].last_activity);
    }

    /// Regression: concurrent creations on different pooled connections failed (deferred
    /// transactions raced on MAX(seq) and on the idempotency lookup).
    #[test]
    fn concurrent_creations_on_a_pool_all_succeed_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStore::open(&dir.path().join("db"), 4).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0..40 {
                        let own = format!("k-{t}-{i}");
                        ids.push(s.create_ticket(&ticket(Some(&own), "Grill")).unwrap().ticket_id);
                        // Every thread also races the others on one shared key per round.
                        let shared = format!("shared-{i}");
                        ids.push(s.create_ticket(&ticket(Some(&shared), "Grill")).unwrap().ticket_id);
                    }
                    ids
                })
            })
            .collect();
        let ids: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 8 * 40 + 40, "one ticket per key");
        assert_eq!(s.ticket_count().unwrap(), 8 * 40 + 40);
    }

    #[test]
    fn idempotency_key_returns_the_same_ticket_and_detects_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db"), 1).unwrap();
        let a = s.create_ticket(&ticket(Some("k1"), "Grill")).unwrap();
        let b = s.create_ticket(&ticket(Some("k1"), "Grill")).unwrap();
        assert_eq!(a.ticket_id, b.ticket_id);
        assert!(!a.replayed && b.replayed);
        assert!(matches!(s.create_ticket(&ticket(Some("k1"), "Other")), Err(StoreError::IdempotencyConflict(_))));
        let c = s.create_ticket(&ticket(None, "Grill")).unwrap();
        assert_ne!(c.ticket_id, a.ticket_id);
        assert_eq!(s.ticket_count().unwrap(), 2);
    }
}
