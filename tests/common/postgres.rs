//! A real PostgreSQL server for tests, started from Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/<version>/bin`), which are installed with apt-get on first use when
//! missing and the tests run as root (as CI does). Included by path
//! (`#[path = "common/postgres.rs"] mod postgres;`).
//!
//! - One server per test binary ([`server`]), started on first use on a free loopback port
//!   with a throwaway data directory under `CARGO_TARGET_TMPDIR/postgres`, the Unix socket
//!   in that directory, `trust` auth on 127.0.0.1 except for the role `warden_scram`, which
//!   must give its password (scram-sha-256), so password handling is exercised for real.
//!   Each test takes its own database ([`PgServer::create_database`]), so tests run in
//!   parallel on one server.
//! - As root, initdb and postgres run as the `postgres` user (postgres refuses root).
//! - No orphans: the postmaster gets SIGINT (fast shutdown) when the test process dies
//!   (`PR_SET_PDEATHSIG`, set from a thread that lives as long as the process, since the
//!   signal follows the forking thread). Data directories of processes that are gone are
//!   deleted by the next run.
//! - A test that needs to stop and restart a server takes a private one ([`private`]),
//!   stopped and deleted when dropped.
//! - When PostgreSQL truly cannot be had (not installed, and not root or no apt-get, or
//!   the install failed), [`server`] says so loudly on stderr and returns `None`; once the
//!   binaries exist, any failure to start one is a test failure, never a skip.

#![allow(dead_code)]

#[path = "apt.rs"]
mod apt;

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The role that must authenticate with a password (scram-sha-256) on 127.0.0.1.
pub const SCRAM_ROLE: &str = "warden_scram";

pub struct PgServer {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    /// uid/gid of `postgres` when the tests run as root.
    run_as: Option<(u32, u32)>,
    extra_conf: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    /// Private servers delete their directory when dropped.
    owned: bool,
}

static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// This test binary's server, started on first use; `None` (after a loud message) only when
/// PostgreSQL cannot be installed here.
pub fn server() -> Option<&'static PgServer> {
    match SHARED.get_or_init(|| binaries().map(|bin| PgServer::start(bin, &[], &[], false))) {
        Ok(s) => Some(s),
        Err(why) => {
            skip_notice(why);
            None
        }
    }
}

/// A server of the test's own (to stop and restart), with `extra_conf` settings and
/// `files` written into its data directory first (e.g. a TLS key and certificate).
pub fn private(extra_conf: &[(&str, &str)], files: &[(&str, &[u8])]) -> Option<PgServer> {
    match binaries() {
        Ok(bin) => Some(PgServer::start(bin, extra_conf, files, true)),
        Err(why) => {
            skip_notice(&why);
            None
        }
    }
}

fn skip_notice(why: &str) {
    eprintln!(
        "\n*** SKIPPED: this test needs a PostgreSQL server and none can be had here: {why}\n*** Install Debian's `postgresql` package (or run the tests as root with apt-get) to run it.\n"
    );
}

impl PgServer {
    fn start(bin: PathBuf, extra_conf: &[(&str, &str)], files: &[(&str, &[u8])], owned: bool) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("postgres");
        std::fs::create_dir_all(&root).expect("create CARGO_TARGET_TMPDIR/postgres");
        remove_stale(&root);
        let data = root.join(format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("create the data directory");
        let run_as = rustix::process::geteuid().is_root().then(postgres_user);
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown the data directory to postgres");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        if let Some((uid, gid)) = run_as {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = format!(
            "local all all trust\nhost all {SCRAM_ROLE} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        );
        let mut owned_files: Vec<(&str, &[u8])> = vec![("pg_hba.conf", hba.as_bytes())];
        owned_files.extend_from_slice(files);
        for (name, bytes) in owned_files {
            let path = data.join(name);
            std::fs::write(&path, bytes).expect("write into the data directory");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
        }
        let server = Self {
            port: free_port(),
            data,
            bin,
            run_as,
            extra_conf: extra_conf.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: Mutex::new(None),
            owned,
        };
        server.launch();
        server
    }

    /// Starts the postmaster on this server's data directory and port, and waits until it
    /// accepts connections.
    pub fn launch(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        assert!(guard.is_none(), "the server is already running");
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("open the server log");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D").arg(&self.data).arg("-p").arg(self.port.to_string()).arg("-k").arg(&self.data);
        let mut conf = vec![
            ("listen_addresses", "127.0.0.1".to_string()),
            ("fsync", "off".to_string()),
            ("synchronous_commit", "off".to_string()),
            ("full_page_writes", "off".to_string()),
            ("max_connections", "200".to_string()),
            ("shared_buffers", "32MB".to_string()),
        ];
        conf.extend(self.extra_conf.iter().map(|(k, v)| (k.as_str(), v.clone())));
        for (k, v) in conf {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        // Runs in the child after the uid change (which would clear it) and before exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::INT))
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = spawn_from_lasting_thread(cmd).expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("postgres exited at start ({status}); its log:\n{}", self.log_tail());
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections in 60 s; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        *guard = Some(child);
    }

    /// Fast shutdown (sessions ended, then a clean stop); returns once the process is gone.
    pub fn stop(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = guard.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let _ = child.wait();
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` (trust auth: no password).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database named after `hint`; returns its URL.
    pub fn create_database(&self, hint: &str) -> String {
        let clean: String = hint
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(40)
            .collect();
        let name = format!("{clean}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` with psql as the superuser on database `db` (a name, or a URL from
    /// [`Self::create_database`]); returns the unaligned, tuples-only output, trimmed.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let db = db.rsplit('/').next().unwrap_or(db);
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &self.port.to_string(), "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The directory holding the server's data (and its log beside it).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        if self.owned {
            let _ = std::fs::remove_dir_all(&self.data);
            let _ = std::fs::remove_file(self.log_path());
        }
    }
}

/// Spawns `cmd` from a thread that never ends, so the child's parent-death signal fires
/// when the process dies, not when the test thread that asked for it finishes.
fn spawn_from_lasting_thread(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("postgres-parent".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The senders live in a static: this loop ends only with the process.
            })
            .expect("start the postgres parent thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner.lock().unwrap_or_else(|e| e.into_inner()).send((cmd, reply)).expect("the postgres parent thread is gone");
    answer.recv().expect("the postgres parent thread did not answer")
}

/// The PostgreSQL bin directory: the newest `/usr/lib/postgresql/*/bin` with the server
/// programs, installing Debian's `postgresql` first if there is none and we may.
fn binaries() -> Result<PathBuf, String> {
    apt::install(
        "postgresql",
        || find_binaries().is_some(),
        || {
            // The package would otherwise create and start a system cluster on port 5432.
            let createcluster = Path::new("/etc/postgresql-common/createcluster.conf");
            if !createcluster.exists() {
                let _ = std::fs::create_dir_all("/etc/postgresql-common");
                let _ = std::fs::File::create(createcluster)
                    .and_then(|mut f| f.write_all(b"create_main_cluster = false\n"));
            }
        },
    )?;
    find_binaries().ok_or_else(|| "apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/postgres".into())
}

fn find_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "postgres", "pg_isready", "psql"].iter().all(|p| bin.join(p).exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The `postgres` account's uid and gid (the package creates it).
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .expect("running as root, but there is no postgres user to run the server as (reinstall Debian's postgresql)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// Deletes data directories (`<pid>-<n>`) of test processes that no longer exist.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.split(['-', '.']).next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let path = e.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
}
