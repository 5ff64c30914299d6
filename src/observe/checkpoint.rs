//! Signed checkpoints of the audit trail (HMAC-SHA256, aws-lc-rs).
//!
//! The hash chain alone proves only that the records agree with each other: anyone who can
//! write the log directory can edit a record and recompute every `prev` after it, and the
//! head anchor with it. A checkpoint binds "record `seq` has hash `hash`" to a key kept
//! *outside* the log directory (default `STATE/keys/audit-checkpoint.key`, 0600), so that
//! rewriting history needs the key too. Because each record's hash covers its `prev`, a
//! signature over one record's hash covers every record before it.
//!
//! What is signed:
//! - the **head** (`PREFIX.head`, rewritten after every record): the newest record;
//! - a **periodic** checkpoint every K records or T seconds (`[audit] checkpoint_every_records`,
//!   `checkpoint_every_secs`), appended to `PREFIX.checkpoints`;
//! - a **pruned** checkpoint ("segments up to record `seq`, whose hash is `hash`, were deleted
//!   on purpose") written before retention deletes old segments, so the chain still verifies
//!   across the gap.
//!
//! The message signed is `warden-audit-checkpoint/1 \n PREFIX \n KIND \n SEQ \n HASH \n AT_MS`:
//! the prefix stops a client checkpoint from being replayed into the server's log, the kind
//! stops a periodic checkpoint from being passed off as a head or a pruning point.
//!
//! Why a separate file rather than records inside the chain: a checkpoint inside the chain
//! would have to sign a hash that already includes itself (or the record before it, which
//! moves the problem one step); a separate append-only file keeps the chain format as it was
//! (old logs still verify), is read without walking the chain, and losing it is itself
//! detected (the head is signed as well, so deleting the file does not make a rewrite pass).
//!
//! # Threat model
//!
//! The attacker can read and write everything in the audit directory (segments, head,
//! checkpoints file) but cannot read the key. `warden audit verify` with the key then
//! detects, naming the failing record or checkpoint:
//! - any edit, insertion, deletion or reordering of a record at or before the newest signed
//!   point (head or checkpoint), even with every `prev` and the head recomputed: the signed
//!   hash no longer matches (the head's or a checkpoint's MAC fails, or the record's hash
//!   differs from the signed one);
//! - a forged head or checkpoint (a newer one, or one edited to match a rewrite): the MAC
//!   fails; records appended after the head by something other than the log (more than the
//!   one record a crash between record and head can leave);
//! - deletion of the head, or of segments beyond the last signed pruning point (records
//!   missing at the start or in the middle);
//! - removal of the signature fields (an unsigned head is reported, not accepted).
//!
//! It can NOT detect:
//! - **rollback** to a state the attacker saw: they can copy the signed head at any moment,
//!   later cut the log back to that record and put the old head (and the checkpoints file cut
//!   back to match) in place. Everything after that point is lost without a trace in the
//!   directory. (A periodic checkpoint alone is not enough: the head must name the last record
//!   or the one before it, and only a copied head does.) Only a copy of the head kept
//!   elsewhere (another host, a ticket, the operator's note of `verify`'s output) reveals it;
//! - deletion of the **whole** log (directory, head and checkpoints): `verify` reports that no
//!   log exists, but cannot say what was in it;
//! - the last record when the head lags it by one (a crash between writing the record and the
//!   head): that one record is covered by the chain only, not yet by a signature;
//! - anything by someone who also holds the key (root on the host, the user running Warden):
//!   the key only separates "can write the log directory" from "can write the log directory
//!   and read the state directory's keys". Keep the key on another mount or owned by another
//!   user (`[audit] checkpoint_key`) for a stronger split.
//!
//! Without the key, `verify` still walks the chain and compares records with the hashes in
//! the head and checkpoints, but says that the signatures were *not* checked and exits
//! non-zero: a consistent rewrite cannot be told apart from the original without it.
//!
//! May import: `types`, `paths` (through `observe`). Enforced by `tests/layering.rs`.

use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

use crate::types::secret::hex;

/// Bytes of key material: the HMAC-SHA256 block-size-safe minimum recommended by RFC 2104.
const KEY_BYTES: usize = 32;

/// Why a checkpoint key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read the audit checkpoint key {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("cannot create the audit checkpoint key {path}: {cause}")]
    Create { path: PathBuf, cause: std::io::Error },
    #[error(
        "the audit checkpoint key {path} is not {KEY_BYTES} or more bytes in hex; restore it from a backup or move it aside (checkpoints signed with it can then no longer be checked)"
    )]
    Malformed { path: PathBuf },
    #[error(
        "the audit checkpoint key {key} is inside the audit directory {dir}: anyone who can write the log could read it; set [audit] checkpoint_key to a path outside it"
    )]
    InsideLog { key: PathBuf, dir: PathBuf },
    #[error("cannot generate an audit checkpoint key: the system random generator failed")]
    Random,
}

/// The HMAC key that signs checkpoints. Never printed (Debug shows the path only).
pub struct CheckpointKey {
    key: hmac::Key,
    path: PathBuf,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey").field("path", &self.path).finish_non_exhaustive()
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

impl CheckpointKey {
    /// Reads an existing key (verification: a missing key is reported, never created).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.into(), cause: source })?;
        let bytes = unhex(text.trim()).filter(|b| b.len() >= KEY_BYTES);
        let bytes = bytes.ok_or_else(|| KeyError::Malformed { path: path.into() })?;
        Ok(Self { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes), path: path.into() })
    }

    /// Reads the key, creating it (random, 0600, in a 0700 directory) on first use. Refuses
    /// a key inside `log_dir`.
    pub fn load_or_create(path: &Path, log_dir: &Path) -> Result<Self, KeyError> {
        if is_inside(path, log_dir) {
            return Err(KeyError::InsideLog { key: path.into(), dir: log_dir.into() });
        }
        match std::fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use aws_lc_rs::rand::SecureRandom;
                let mut bytes = [0u8; KEY_BYTES];
                aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| KeyError::Random)?;
                let create = |source| KeyError::Create { path: path.into(), cause: source };
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    crate::paths::ensure_private_dir(parent).map_err(create)?;
                }
                crate::paths::write_private(path, format!("{}\n", hex(&bytes)).as_bytes()).map_err(create)?;
                Self::load(path)
            }
            Err(source) => Err(KeyError::Read { path: path.into(), cause: source }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn message(prefix: &str, kind: CheckpointKind, seq: u64, hash: &str, at_ms: u64) -> String {
        format!("warden-audit-checkpoint/1\n{prefix}\n{}\n{seq}\n{hash}\n{at_ms}", kind.as_str())
    }

    /// The MAC (hex) over one checkpoint.
    pub fn sign(&self, prefix: &str, kind: CheckpointKind, seq: u64, hash: &str, at_ms: u64) -> String {
        hex(hmac::sign(&self.key, Self::message(prefix, kind, seq, hash, at_ms).as_bytes()).as_ref())
    }

    /// Whether `mac` is this key's MAC over the checkpoint (constant-time comparison).
    pub fn verify(&self, prefix: &str, kind: CheckpointKind, seq: u64, hash: &str, at_ms: u64, mac: &str) -> bool {
        let Some(tag) = unhex(mac) else { return false };
        hmac::verify(&self.key, Self::message(prefix, kind, seq, hash, at_ms).as_bytes(), &tag).is_ok()
    }
}

/// Whether `path` lies inside `dir` (both resolved as far as they exist, so `..` and
/// symlinked parents do not hide it).
fn is_inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| -> PathBuf {
        let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(p) };
        // Canonicalize the longest existing ancestor and re-append the rest.
        let mut existing = abs.as_path();
        let mut rest = Vec::new();
        loop {
            if let Ok(c) = existing.canonicalize() {
                return rest.iter().rev().fold(c, |acc: PathBuf, part| acc.join(part));
            }
            match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return abs,
            }
        }
    };
    resolve(path).starts_with(resolve(dir))
}

/// What a checkpoint vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// The newest record (`PREFIX.head`).
    Head,
    /// Every K records or T seconds.
    Periodic,
    /// Segments up to and including this record were deleted by retention.
    Pruned,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Periodic => "periodic",
            Self::Pruned => "pruned",
        }
    }
}

/// One line of `PREFIX.checkpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub kind: CheckpointKind,
    pub seq: u64,
    pub hash: String,
    pub at_ms: u64,
    pub mac: String,
}

impl Checkpoint {
    pub fn new(key: &CheckpointKey, prefix: &str, kind: CheckpointKind, seq: u64, hash: &str, at_ms: u64) -> Self {
        Self { kind, seq, hash: hash.to_string(), at_ms, mac: key.sign(prefix, kind, seq, hash, at_ms) }
    }

    pub fn verify(&self, key: &CheckpointKey, prefix: &str) -> bool {
        key.verify(prefix, self.kind, self.seq, &self.hash, self.at_ms, &self.mac)
    }
}

/// `DIR/PREFIX.checkpoints`.
pub fn checkpoints_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.checkpoints"))
}

/// A line of the checkpoints file that is not a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    /// The last line, without a newline: a write cut short by a crash.
    pub torn: bool,
}

/// The checkpoints of a file with the 1-based line of each, and the lines that are not.
pub type CheckpointLines = (Vec<(usize, Checkpoint)>, Vec<BadLine>);

/// Reads `PREFIX.checkpoints` (missing file: none).
pub fn read_checkpoints(dir: &Path, prefix: &str) -> std::io::Result<CheckpointLines> {
    let path = checkpoints_path(dir, prefix);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e),
    };
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let complete = line.ends_with('\n');
        match serde_json::from_str::<Checkpoint>(line.trim_end_matches('\n')) {
            Ok(c) if complete => good.push((i + 1, c)),
            _ => bad.push(BadLine { line: i + 1, torn: !complete }),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_private_and_signs_what_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit-checkpoint.key");
        let key = CheckpointKey::load_or_create(&path, &dir.path().join("audit")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let cp = Checkpoint::new(&key, "server", CheckpointKind::Periodic, 7, "ab", 9);
        assert!(cp.verify(&key, "server"));
        // The same key on reload; another prefix, kind, seq, hash or time does not verify.
        let again = CheckpointKey::load(&path).unwrap();
        assert!(cp.verify(&again, "server"));
        assert!(!cp.verify(&again, "client"));
        for changed in [
            Checkpoint { kind: CheckpointKind::Head, ..cp.clone() },
            Checkpoint { seq: 8, ..cp.clone() },
            Checkpoint { hash: "ac".into(), ..cp.clone() },
            Checkpoint { at_ms: 10, ..cp.clone() },
            Checkpoint { mac: "zz".into(), ..cp.clone() },
        ] {
            assert!(!changed.verify(&again, "server"), "{changed:?}");
        }
        let other = CheckpointKey::load_or_create(&dir.path().join("other.key"), dir.path().join("audit").as_path());
        assert!(!cp.verify(&other.unwrap(), "server"));
        assert!(!format!("{key:?}").contains(&std::fs::read_to_string(&path).unwrap().trim().to_string()));
    }

    #[test]
    fn a_key_inside_the_log_directory_or_malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit");
        let err = CheckpointKey::load_or_create(&audit.join("k.key"), &audit).unwrap_err();
        assert!(matches!(err, KeyError::InsideLog { .. }), "{err}");
        let err = CheckpointKey::load_or_create(&audit.join("../audit/sub/k.key"), &audit).unwrap_err();
        assert!(matches!(err, KeyError::InsideLog { .. }), "{err}");
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        assert!(matches!(CheckpointKey::load(&short), Err(KeyError::Malformed { .. })));
        assert!(matches!(CheckpointKey::load(&dir.path().join("none")), Err(KeyError::Read { .. })));
    }
}
