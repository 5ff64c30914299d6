//! Where Warden keeps its state: `--state-dir`, else `$XDG_STATE_HOME/warden`, else
//! `~/.local/state/warden`. Also the one helper for writing private files (0600), used for
//! keys, the client config and anything else holding a secret.
//!
//! May import: nothing from this crate. Enforced by `tests/layering.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Resolves the state directory from the flag and the environment.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("warden");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/warden")
}

/// Creates `dir` (and any missing parents) private (0700): the state directory holds keys,
/// the customer database and the audit trail. An existing directory is left as it is (it
/// may be the user's own, such as `--state-dir /tmp/x`'s parent).
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `data` to `path` atomically (temp file + rename) with mode 0600 from the start,
/// so a secret is never briefly world-readable and a crash never leaves half a key. The
/// temp file has an unpredictable name and is created exclusively (`O_EXCL`: an existing
/// file or symlink planted at that name makes the write fail instead of being followed);
/// the rename replaces whatever is at `path`, a symlink included, rather than writing
/// through it.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4().simple()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp)?;
    if let Err(e) = file.write_all(data).and_then(|()| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    drop(file);
    std::fs::rename(&tmp, path)
}

/// What tells one version of a file from another when it is replaced whole (written aside,
/// then renamed): a new version is a new inode even when size and modification time match.
/// Processes sharing a file (the signing keys, the revoked access tokens) compare stamps to
/// notice each other's writes with one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// The file's stamp now; `None` when it cannot be read (missing).
pub fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp { inode, len: meta.len(), modified: meta.modified().ok() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_flag_wins() {
        assert_eq!(state_dir(Some(Path::new("/x/y"))), PathBuf::from("/x/y"));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_private(&p, b"secret").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
    }

    /// Regression (issue 11, defect 13): an existing 0644 file kept its mode, and the temp
    /// name was predictable and opened without O_EXCL.
    #[cfg(unix)]
    #[test]
    fn an_existing_file_becomes_0600_and_a_symlink_is_replaced_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"untouched").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_private(&link, b"secret").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched", "the symlink's target is not written");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        ensure_private_dir(&dir.path().join("state")).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("state")).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
