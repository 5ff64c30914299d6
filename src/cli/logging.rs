//! Logging: `tracing` to `STATE/logs/warden.log`, never to the terminal unless asked
//! (`serve --log-stderr`). Level from `WARDEN_LOG` (env-filter syntax), default `info` (rmcp at `warn`: it logs every stateless request).
//!
//! The file is rotated by size (`[log] max_file_bytes`, default 10 MiB): when the next
//! line would pass the limit, `warden.log` becomes `warden.log.1`, `.1` becomes `.2`, …,
//! and the oldest beyond `keep_files` (default 5) is deleted, so the log never takes more
//! than about `max_file_bytes × (keep_files + 1)` of disk however much is logged (issue 11,
//! defect 4). tracing-appender rotates by time only, which does not bound a flood, hence
//! this small writer behind its non-blocking worker. Files are created 0600.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogConfig;

/// Installs the global subscriber. Keep the returned guard alive until exit so buffered
/// lines are flushed.
pub fn init(state_dir: &Path, stderr: bool, cfg: LogConfig) -> anyhow::Result<WorkerGuard> {
    init_named(state_dir, "warden.log", stderr, cfg)
}

/// As [`init`], to `STATE/logs/<name>`: each service instance of `serve --instances` has
/// its own file (processes rotating one file by size would rename it under each other).
pub fn init_named(state_dir: &Path, name: &str, stderr: bool, cfg: LogConfig) -> anyhow::Result<WorkerGuard> {
    let dir = state_dir.join("logs");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
    let file = RotatingFile::open(&dir, name, cfg)
        .map_err(|e| anyhow::anyhow!("cannot open the log file in {}: {e}", dir.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = || EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let file = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter());
    let err = stderr.then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter()));
    // A second init (tests calling the CLI twice in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(file).with(err).try_init();
    Ok(guard)
}

/// An append-only file rotated by size (see the module docs). Each `write` is one whole
/// log line (the non-blocking worker writes line by line), so a line never straddles two
/// files.
pub struct RotatingFile {
    dir: PathBuf,
    name: String,
    max_bytes: u64,
    keep: usize,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (appends to) `dir/name`, deleting rotated files beyond `keep_files` left by a
    /// run with a larger setting.
    pub fn open(dir: &Path, name: &str, cfg: LogConfig) -> io::Result<Self> {
        let mut f = Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            max_bytes: cfg.max_file_bytes.max(1),
            keep: cfg.keep_files,
            file: None,
            size: 0,
        };
        let prefix = format!("{name}.");
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let stale = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n > f.keep);
            if stale {
                remove_if_present(&entry.path())?;
            }
        }
        f.open_current()?;
        Ok(f)
    }

    fn path(&self, index: usize) -> PathBuf {
        match index {
            0 => self.dir.join(&self.name),
            n => self.dir.join(format!("{}.{n}", self.name)),
        }
    }

    fn open_current(&mut self) -> io::Result<&mut File> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(self.path(0))?;
        // A file left by an older version may be 0644: the log is private whatever made it.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        self.size = file.metadata()?.len();
        Ok(self.file.insert(file))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            remove_if_present(&self.path(0))?;
        } else {
            remove_if_present(&self.path(self.keep))?;
            for i in (0..self.keep).rev() {
                match std::fs::rename(self.path(i), self.path(i + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size.saturating_add(buf.len() as u64) > self.max_bytes {
            self.rotate()?;
        }
        let file = match self.file.take() {
            Some(f) => self.file.insert(f),
            None => self.open_current()?,
        };
        let n = file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<(String, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().into_string().unwrap(), e.metadata().unwrap().len())
            })
            .collect();
        v.sort();
        v
    }

    /// Regression (issue 11, defect 4): `warden.log` grew without bound.
    #[test]
    fn the_log_rotates_by_size_and_keeps_only_the_newest_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f =
            RotatingFile::open(tmp.path(), "warden.log", LogConfig { max_file_bytes: 100, keep_files: 2 }).unwrap();
        for i in 0..12 {
            f.write_all(format!("line {i:02} {}\n", "x".repeat(21)).as_bytes()).unwrap(); // 30 bytes
        }
        f.flush().unwrap();
        // 3 lines (90 bytes) per file; 12 lines: 4 files written, the oldest deleted.
        assert_eq!(
            listing(tmp.path()),
            [("warden.log".into(), 90), ("warden.log.1".into(), 90), ("warden.log.2".into(), 90)]
        );
        let current = std::fs::read_to_string(tmp.path().join("warden.log")).unwrap();
        assert!(current.starts_with("line 09 ") && current.ends_with(&format!("line 11 {}\n", "x".repeat(21))));
        let oldest = std::fs::read_to_string(tmp.path().join("warden.log.2")).unwrap();
        assert!(oldest.starts_with("line 03 "), "lines 00-02 were pruned: {oldest}");
        #[cfg(unix)]
        for (name, _) in listing(tmp.path()) {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(tmp.path().join(&name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn reopening_appends_and_prunes_what_a_larger_setting_left() {
        let tmp = tempfile::tempdir().unwrap();
        for n in ["warden.log.1", "warden.log.2", "warden.log.3", "warden.log.x", "other.log.9"] {
            std::fs::write(tmp.path().join(n), "old\n").unwrap();
        }
        std::fs::write(tmp.path().join("warden.log"), "0123456789\n").unwrap();
        let mut f =
            RotatingFile::open(tmp.path(), "warden.log", LogConfig { max_file_bytes: 20, keep_files: 1 }).unwrap();
        f.write_all(b"abcdefgh\n").unwrap(); // 11 + 9 = 20: still fits
        f.write_all(b"z\n").unwrap(); // rotates
        let names: Vec<String> = listing(tmp.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["other.log.9", "warden.log", "warden.log.1", "warden.log.x"]);
        assert_eq!(std::fs::read_to_string(tmp.path().join("warden.log.1")).unwrap(), "0123456789\nabcdefgh\n");
        assert_eq!(std::fs::read_to_string(tmp.path().join("warden.log")).unwrap(), "z\n");
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let mut f =
            RotatingFile::open(tmp.path(), "warden.log", LogConfig { max_file_bytes: 10, keep_files: 3 }).unwrap();
        f.write_all(b"short\n").unwrap();
        f.write_all(b"a much longer line\n").unwrap();
        f.write_all(b"next\n").unwrap();
        assert_eq!(
            listing(tmp.path()),
            [("warden.log".into(), 5), ("warden.log.1".into(), 19), ("warden.log.2".into(), 6)]
        );
    }
}
