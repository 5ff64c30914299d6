//! The audit trail: append-only, hash-chained, fsync'd JSONL, with signed checkpoints.
//!
//! Each line is `{"seq":N,"prev":"<sha256 of the previous line>","event":{…}}`. Lines live
//! in segments (`audit-000001.jsonl`, …) rotated by size; the chain runs across segments.
//! `audit.head` anchors the newest `seq` and hash so that cutting records off the end is
//! detected too; it and the checkpoints in `audit.checkpoints` are signed with a key kept
//! outside the log directory (see [`super::checkpoint`] for the format and threat model), so
//! rewriting the whole chain is detected as well.
//!
//! Failures: a write that fails is cut back off the segment (`set_len`) and the writer's
//! state is left as it was, so the next successful append continues the chain; the caller
//! gets the error and, by default (`[audit] on_failure = "refuse"`), refuses the action the
//! record describes. After a crash mid-write the torn last line stays where it is
//! (evidence) and the next start opens a new segment whose first record names the repair —
//! nothing earlier is dropped. At start, a head that disagrees with the records (cut off or
//! rewritten while the log was closed) is recorded in the chain before it is re-signed.
//!
//! Retention (`retain_segments`, `retain_bytes`, `retain_days`) deletes the oldest segments
//! at rotation, after writing a signed "pruned through record N, hash H" checkpoint, so
//! `verify` still checks the chain that remains. `verify` walks every segment and reports the
//! first problem: file, line and what it means.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointKey, CheckpointKind, checkpoints_path, read_checkpoints};
use crate::types::event::{Event, EventKind, JournalError};
use crate::types::secret::{hex, sha256};
use crate::types::time::SharedClock;

/// The head is rewritten in place, padded to this width so no stale bytes remain.
const HEAD_WIDTH: usize = 256;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// When records reach the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum FsyncPolicy {
    #[default]
    /// fsync every record before `append` returns (the default: nothing acknowledged is lost).
    Always,
    /// Write and flush every record; fsync at most every `interval_ms` (a process crash
    /// loses nothing, a power loss at most that window).
    Batch { interval_ms: u64 },
    /// Flush to the OS only.
    Never,
}

/// What happens to an action whose record cannot be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Refuse the action (the service answers 503, the client does not send the call).
    #[default]
    Refuse,
    /// Log a warning and go ahead unrecorded.
    Continue,
}

/// Which old segments retention deletes (at rotation). Unset limits do not prune; the
/// newest segment is never deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Keep at most this many segments (the newest).
    pub segments: Option<usize>,
    /// Keep the newest segments up to this many bytes in total.
    pub bytes: Option<u64>,
    /// Delete segments last written more than this many days ago.
    pub days: Option<u64>,
}

impl Retention {
    fn is_set(&self) -> bool {
        self.segments.is_some() || self.bytes.is_some() || self.days.is_some()
    }
}

/// How a log is opened.
#[derive(Clone)]
pub struct AuditOptions {
    pub fsync: FsyncPolicy,
    pub max_segment_bytes: u64,
    /// Signs the head and checkpoints; `None` writes an unsigned log (tests, tools).
    pub key: Option<Arc<CheckpointKey>>,
    /// A periodic checkpoint after this many records…
    pub checkpoint_every_records: u64,
    /// …or this long after the previous one, whichever comes first (checked on append).
    pub checkpoint_every: Duration,
    pub retention: Retention,
    pub on_failure: OnFailure,
    /// Where checkpoint times come from.
    pub clock: SharedClock,
}

impl AuditOptions {
    /// An unsigned log with no retention (tests and one-off tools).
    pub fn unsigned(fsync: FsyncPolicy, max_segment_bytes: u64) -> Self {
        Self {
            fsync,
            max_segment_bytes,
            key: None,
            checkpoint_every_records: 1000,
            checkpoint_every: Duration::from_secs(60),
            retention: Retention::default(),
            on_failure: OnFailure::Refuse,
            clock: crate::types::time::system(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit log {path}: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error(
        "audit log {path}: a failed write could not be cut back off the segment ({cause}); no further records are written until Warden restarts (it then continues in a new segment)"
    )]
    Torn { path: PathBuf, cause: std::io::Error },
    #[error(transparent)]
    Key(#[from] super::checkpoint::KeyError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    prev: String,
    event: Event,
}

/// What `append` writes: the same shape as [`Record`], borrowed. `append` splices the
/// event's JSON into this shape by hand ([`record_line`]); the test that pins them equal
/// serialises this.
#[cfg(test)]
#[derive(Serialize)]
struct RecordRef<'a> {
    seq: u64,
    prev: &'a str,
    event: &'a Event,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Head {
    seq: u64,
    hash: String,
    segment: u32,
    #[serde(default)]
    at_ms: u64,
    /// HMAC over (prefix, "head", seq, hash, at_ms); absent in an unsigned log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// Where records go: a segment file (a trait so the torn-write repair can be tested with a
/// file that fails half-way through a write).
trait Sink: Write + Send {
    fn len(&self) -> std::io::Result<u64>;
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// A second handle on the same file, to fsync it without holding the writer.
    fn sync_handle(&self) -> std::io::Result<File>;
}

impl Sink for File {
    fn len(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&mut self) -> std::io::Result<()> {
        File::sync_data(self)
    }
    fn sync_handle(&self) -> std::io::Result<File> {
        self.try_clone()
    }
}

/// Writes `line` at the end of `sink` (`before` bytes long). On failure nothing of `line`
/// remains: a short write is cut off again, so the next record does not follow a fragment.
/// `Err(Ok(e))`: nothing written; `Err(Err(e))`: the fragment could not be removed.
fn write_whole(sink: &mut dyn Sink, before: u64, line: &[u8]) -> Result<(), Result<std::io::Error, std::io::Error>> {
    let Err(e) = sink.write_all(line) else { return Ok(()) };
    Err(cut_back(sink, before).map(|()| e))
}

fn cut_back(sink: &mut dyn Sink, before: u64) -> Result<(), std::io::Error> {
    sink.set_len(before)?;
    match sink.len()? {
        n if n == before => Ok(()),
        n => Err(std::io::Error::other(format!("the segment is {n} bytes after cutting it back to {before}"))),
    }
}

struct Writer {
    file: Box<dyn Sink>,
    path: PathBuf,
    segment: u32,
    size: u64,
    seq: u64,
    last_hash: String,
    last_sync: Instant,
    dirty: bool,
    /// `PREFIX.head`, kept open and rewritten in place (fixed width) on every append.
    head: File,
    /// `PREFIX.checkpoints` (signed logs only), opened for appending.
    checkpoints: Option<File>,
    last_checkpoint_seq: u64,
    last_checkpoint_ms: u64,
    /// Set when a failed write left bytes that could not be removed: every later append
    /// fails (the chain would otherwise continue after a fragment).
    poisoned: Option<String>,
}

pub struct AuditLog {
    dir: PathBuf,
    prefix: String,
    opts: AuditOptions,
    w: Mutex<Writer>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_path_buf(), cause: source }
}

/// A record's line (without the newline), byte for byte what serialising [`RecordRef`]
/// gives, from the event already serialised.
fn record_line(seq: u64, prev: &str, event_json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(event_json.len() + prev.len() + 40);
    line.extend_from_slice(b"{\"seq\":");
    line.extend_from_slice(seq.to_string().as_bytes());
    line.extend_from_slice(b",\"prev\":");
    // A hex digest (or the genesis value): serialised as JSON all the same, never assumed.
    let _ = serde_json::to_writer(&mut line, prev);
    line.extend_from_slice(b",\"event\":");
    line.extend_from_slice(event_json);
    line.push(b'}');
    line
}

pub fn line_hash(line: impl AsRef<[u8]>) -> String {
    hex(&sha256(line.as_ref()))
}

fn segment_path(dir: &Path, prefix: &str, n: u32) -> PathBuf {
    dir.join(format!("{prefix}-{n:06}.jsonl"))
}

fn head_path(dir: &Path, prefix: &str) -> PathBuf {
    dir.join(format!("{prefix}.head"))
}

/// The segments of a log, oldest first.
pub fn segments(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix(&format!("{prefix}-"))?.strip_suffix(".jsonl")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// The last complete record of a segment: (seq, hash), and whether it ends in a torn line.
fn last_record(seg: &Path) -> Result<(Option<(u64, String)>, bool), AuditError> {
    let text = std::fs::read_to_string(seg).map_err(io(seg))?;
    let (mut last, mut torn) = (None, false);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        match serde_json::from_str::<Record>(body) {
            Ok(r) if line.ends_with('\n') => {
                last = Some((r.seq, line_hash(body)));
                torn = false;
            }
            _ => torn = true,
        }
    }
    Ok((last, torn))
}

fn read_head(dir: &Path, prefix: &str) -> Option<Head> {
    let text = std::fs::read_to_string(head_path(dir, prefix)).ok()?;
    serde_json::from_str(text.trim()).ok()
}

impl AuditLog {
    /// Opens (or creates) an unsigned log `DIR/PREFIX-*.jsonl` (tests and tools; the client
    /// and the servers use [`AuditLog::open_with`] with a key).
    pub fn open(dir: &Path, prefix: &str, policy: FsyncPolicy, max_segment_bytes: u64) -> Result<Self, AuditError> {
        Self::open_with(dir, prefix, AuditOptions::unsigned(policy, max_segment_bytes))
    }

    /// Opens (or creates) the log `DIR/PREFIX-*.jsonl`. If the last segment ends in a torn
    /// line, a new segment is started and its first record says so; if the head disagrees
    /// with the records, a record says that too.
    pub fn open_with(dir: &Path, prefix: &str, opts: AuditOptions) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let segs = segments(dir, prefix);
        let (mut seq, mut last_hash, mut segment, mut torn) = (0u64, GENESIS.to_string(), 1u32, false);
        if let Some(last) = segs.last() {
            segment = segment_number(last).unwrap_or(1);
        }
        // The chain continues from the newest complete record, wherever it is: the newest
        // segment may be empty (rotated at the last start, no traffic since).
        let mut found = false;
        for (i, seg) in segs.iter().enumerate().rev() {
            let (last, tear) = last_record(seg)?;
            // Only a tear in the segment we would append to needs a repair; an earlier one
            // was repaired when it happened.
            torn |= tear && i + 1 == segs.len();
            if let Some((s, h)) = last {
                (seq, last_hash, found) = (s, h, true);
            }
            if found || torn {
                break;
            }
        }
        let head = read_head(dir, prefix);
        let (checkpoints, _) = read_checkpoints(dir, prefix).map_err(io(&checkpoints_path(dir, prefix)))?;
        let signed_ok = |cp: &Checkpoint| opts.key.as_ref().is_none_or(|k| cp.verify(k, prefix));
        if !found {
            // Every record was pruned (or deleted): continue from the newest signed point,
            // so the chain stays one chain and a deletion stays visible as a gap.
            let pruned = checkpoints
                .iter()
                .map(|(_, c)| c)
                .filter(|c| c.kind == CheckpointKind::Pruned && signed_ok(c))
                .max_by_key(|c| c.seq);
            let head_point = head.as_ref().filter(|h| h.seq > 0 && head_signed_ok(h, prefix, opts.key.as_deref()));
            match (pruned, head_point) {
                (_, Some(h)) if pruned.is_none_or(|p| h.seq >= p.seq) => (seq, last_hash) = (h.seq, h.hash.clone()),
                (Some(p), _) => (seq, last_hash) = (p.seq, p.hash.clone()),
                _ => {}
            }
        }
        let mut notes = Vec::new();
        if torn {
            notes.push("previous segment ended in a torn line (crash mid-write); it is kept as evidence".to_string());
        }
        notes.extend(head_discrepancy(head.as_ref(), seq, &last_hash, prefix, opts.key.as_deref(), &segs));
        let rotate_now = torn
            || segs
                .last()
                .is_some_and(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) >= opts.max_segment_bytes);
        if rotate_now {
            segment += 1;
        }
        let path = segment_path(dir, prefix, segment);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let hp = head_path(dir, prefix);
        let head_file = OpenOptions::new().create(true).write(true).truncate(false).open(&hp).map_err(io(&hp))?;
        let cp_path = checkpoints_path(dir, prefix);
        let cp_file = match &opts.key {
            Some(_) => {
                let file = OpenOptions::new().create(true).append(true).open(&cp_path).map_err(io(&cp_path))?;
                drop_torn_checkpoint(&file, &cp_path)?;
                Some(file)
            }
            None => None,
        };
        let last_checkpoint_seq = checkpoints.iter().map(|(_, c)| c.seq).max().unwrap_or(0).min(seq);
        let now = opts.clock.now_ms();
        let log = Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            w: Mutex::new(Writer {
                file: Box::new(file),
                path,
                segment,
                size,
                seq,
                last_hash,
                last_sync: Instant::now(),
                dirty: false,
                head: head_file,
                checkpoints: cp_file,
                last_checkpoint_seq,
                last_checkpoint_ms: now,
                poisoned: None,
            }),
            opts,
        };
        if notes.is_empty() {
            // Sign the head now: a log written before signing existed gets a signed head at
            // once, not at its next record.
            let mut w = log.w.lock();
            log.write_head(&mut w)?;
        }
        for reason in notes {
            log.append(&Event {
                id: 0,
                at_ms: now,
                run_id: None,
                step: None,
                kind: EventKind::AuditSegment { reason },
            })?;
        }
        {
            let mut w = log.w.lock();
            log.prune(&mut w);
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record; returns only once the record is as durable as the policy says.
    /// On error nothing of the record is left in the segment and the chain continues from
    /// the previous record.
    pub fn append(&self, event: &Event) -> Result<u64, AuditError> {
        // The event is serialised before the writer is taken: under the lock only the chain
        // fields are put around it, so concurrent appends wait for a write, not for JSON.
        let body = serde_json::to_vec(event).unwrap_or_default();
        let mut w = self.w.lock();
        if let Some(why) = &w.poisoned {
            return Err(AuditError::Torn { path: w.path.clone(), cause: std::io::Error::other(why.clone()) });
        }
        if w.size >= self.opts.max_segment_bytes {
            self.rotate(&mut w)?;
        }
        let seq = w.seq + 1;
        let mut line = record_line(seq, &w.last_hash, &body);
        let hash = line_hash(&line);
        line.push(b'\n');
        let before = w.size;
        // One write per record: a crash can tear at most this line, never interleave two.
        match write_whole(w.file.as_mut(), before, &line) {
            Ok(()) => {}
            Err(Ok(source)) => return Err(AuditError::Io { path: w.path.clone(), cause: source }),
            Err(Err(source)) => return Err(self.poison(&mut w, source)),
        }
        let (prev_hash, prev_dirty) = (std::mem::replace(&mut w.last_hash, hash), w.dirty);
        w.size += line.len() as u64;
        w.seq = seq;
        w.dirty = true;
        let durable = match self.opts.fsync {
            FsyncPolicy::Always => self.sync(&mut w),
            // The batch policy's timer calls `flush` every interval, off this path; an append
            // waits on the disk itself only when that timer has fallen behind (or none runs).
            FsyncPolicy::Batch { interval_ms }
                if w.last_sync.elapsed() >= Duration::from_millis(interval_ms.saturating_mul(2)) =>
            {
                self.sync(&mut w)
            }
            _ => Ok(()),
        };
        if let Err(e) = durable.and_then(|()| self.write_head(&mut w)) {
            // Not recorded as far as the caller knows: take the record back out, so the
            // chain does not hold a decision that was then refused.
            (w.seq, w.last_hash, w.size, w.dirty) = (seq - 1, prev_hash, before, prev_dirty);
            if let Err(source) = cut_back(w.file.as_mut(), before) {
                return Err(self.poison(&mut w, source));
            }
            let _ = self.write_head(&mut w);
            return Err(e);
        }
        let due = w.seq - w.last_checkpoint_seq >= self.opts.checkpoint_every_records.max(1)
            || self.opts.clock.now_ms().saturating_sub(w.last_checkpoint_ms)
                >= self.opts.checkpoint_every.as_millis() as u64;
        if self.opts.key.is_some() && due {
            let hash = w.last_hash.clone();
            // The record is already durable and anchored by the signed head; a checkpoint that
            // cannot be written now is tried again on the next append.
            if let Err(e) = self.checkpoint(&mut w, CheckpointKind::Periodic, seq, &hash) {
                tracing::error!(error = %e, "audit checkpoint not written; retrying on the next record");
            }
        }
        Ok(seq)
    }

    fn poison(&self, w: &mut Writer, source: std::io::Error) -> AuditError {
        w.poisoned = Some(source.to_string());
        AuditError::Torn { path: w.path.clone(), cause: source }
    }

    /// fsync now (the batch policy's timer). The disk is waited on through a second handle,
    /// outside the writer's lock: an fdatasync can take milliseconds, and every decision
    /// waiting to be recorded would wait with it. A failed sync leaves the log dirty for the
    /// next try.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (handle, path) = {
            let mut w = self.w.lock();
            w.last_sync = Instant::now();
            if !w.dirty {
                return Ok(());
            }
            let handle = w.file.sync_handle().map_err(io(&w.path))?;
            w.dirty = false;
            (handle, w.path.clone())
        };
        handle.sync_data().map_err(|e| {
            self.w.lock().dirty = true;
            AuditError::Io { path, cause: e }
        })
    }

    fn sync(&self, w: &mut Writer) -> Result<(), AuditError> {
        if w.dirty {
            let path = w.path.clone();
            w.file.sync_data().map_err(io(&path))?;
            w.dirty = false;
        }
        w.last_sync = Instant::now();
        Ok(())
    }

    /// Starts the next segment. The writer switches only once the new file is open, so a
    /// failure leaves it appending where it was (and the next append tries again).
    fn rotate(&self, w: &mut Writer) -> Result<(), AuditError> {
        // Always synced: a `flush` may have taken the dirty mark and still be waiting on
        // this segment, and the next segment's records must not reach the disk before it.
        w.dirty = true;
        self.sync(w)?;
        let next = w.segment + 1;
        let path = segment_path(&self.dir, &self.prefix, next);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (w.file, w.path, w.segment, w.size) = (Box::new(file), path, next, size);
        self.prune(w);
        Ok(())
    }

    /// Appends a signed checkpoint for record `seq` (already written). The segment is
    /// synced first: a checkpoint must never outlive the record it vouches for.
    fn checkpoint(&self, w: &mut Writer, kind: CheckpointKind, seq: u64, hash: &str) -> Result<(), AuditError> {
        let Some(key) = &self.opts.key else { return Ok(()) };
        w.dirty = true;
        self.sync(w)?;
        let now = self.opts.clock.now_ms();
        let cp = Checkpoint::new(key, &self.prefix, kind, seq, hash, now);
        let mut line = serde_json::to_vec(&cp).unwrap_or_default();
        line.push(b'\n');
        let path = checkpoints_path(&self.dir, &self.prefix);
        let Some(file) = w.checkpoints.as_mut() else { return Ok(()) };
        let before = file.metadata().map(|m| m.len()).map_err(io(&path))?;
        match write_whole(file, before, &line) {
            Ok(()) => {}
            Err(Ok(source)) => return Err(AuditError::Io { path, cause: source }),
            Err(Err(source)) => return Err(AuditError::Torn { path, cause: source }),
        }
        file.sync_data().map_err(io(&path))?;
        if kind == CheckpointKind::Periodic {
            (w.last_checkpoint_seq, w.last_checkpoint_ms) = (seq, now);
        }
        Ok(())
    }

    /// Deletes the oldest segments retention allows, after a signed checkpoint of the last
    /// record they hold. Best effort: a failure is logged and nothing is deleted.
    fn prune(&self, w: &mut Writer) {
        let r = &self.opts.retention;
        if !r.is_set() {
            return;
        }
        if self.opts.key.is_none() {
            tracing::warn!("audit retention is set but the log is unsigned: nothing pruned");
            return;
        }
        let segs: Vec<PathBuf> = segments(&self.dir, &self.prefix)
            .into_iter()
            .filter(|p| segment_number(p).is_some_and(|n| n < w.segment))
            .collect();
        let total = segs.len() + 1; // the current one is always kept
        let mut n = r.segments.map(|keep| total.saturating_sub(keep.max(1))).unwrap_or(0);
        if let Some(limit) = r.bytes {
            let mut sum = w.size;
            let kept = segs
                .iter()
                .rev()
                .take_while(|p| {
                    sum += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    sum <= limit
                })
                .count();
            n = n.max(segs.len() - kept);
        }
        if let Some(days) = r.days {
            let cutoff = std::time::SystemTime::now() - Duration::from_secs(days.saturating_mul(86_400));
            let old = segs
                .iter()
                .take_while(|p| std::fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t < cutoff))
                .count();
            n = n.max(old);
        }
        let doomed = &segs[..n.min(segs.len())];
        if doomed.is_empty() {
            return;
        }
        let mut last = None;
        for seg in doomed {
            match last_record(seg) {
                Ok((Some(l), _)) => last = Some(l),
                Ok((None, _)) => {}
                Err(e) => {
                    tracing::error!(error = %e, "audit retention: cannot read a segment; nothing pruned");
                    return;
                }
            }
        }
        if let Some((seq, hash)) = &last
            && let Err(e) = self.checkpoint(w, CheckpointKind::Pruned, *seq, hash)
        {
            tracing::error!(error = %e, "audit retention: cannot write the pruning checkpoint; nothing pruned");
            return;
        }
        for seg in doomed {
            if let Err(e) = std::fs::remove_file(seg) {
                tracing::error!(error = %e, segment = %seg.display(), "audit retention: cannot delete a segment");
                return;
            }
        }
        tracing::info!(segments = doomed.len(), through = ?last.map(|l| l.0), "audit retention pruned old segments");
    }

    /// Rewrites the head in place, padded to a fixed width so no stale bytes remain.
    fn write_head(&self, w: &mut Writer) -> Result<(), AuditError> {
        use std::os::unix::fs::FileExt;
        let at_ms = self.opts.clock.now_ms();
        let mac =
            self.opts.key.as_ref().map(|k| k.sign(&self.prefix, CheckpointKind::Head, w.seq, &w.last_hash, at_ms));
        let head = Head { seq: w.seq, hash: w.last_hash.clone(), segment: w.segment, at_ms, mac };
        let mut text = serde_json::to_string(&head).unwrap_or_default();
        while text.len() < HEAD_WIDTH {
            text.push(' ');
        }
        // A positioned write: one syscall, no seek.
        w.head.write_all_at(text.as_bytes(), 0).map_err(io(&head_path(&self.dir, &self.prefix)))
    }
}

/// A checkpoint line cut short by a crash would run into the next one and make both
/// unreadable; it vouches for nothing (the head and the chain still do), so it is removed.
fn drop_torn_checkpoint(file: &File, path: &Path) -> Result<(), AuditError> {
    let text = std::fs::read(path).map_err(io(path))?;
    if text.last().is_none_or(|b| *b == b'\n') {
        return Ok(());
    }
    let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    tracing::warn!(path = %path.display(), "removing a torn last checkpoint line (crash mid-write)");
    file.set_len(keep as u64).map_err(io(path))
}

fn head_signed_ok(h: &Head, prefix: &str, key: Option<&CheckpointKey>) -> bool {
    match key {
        None => true,
        Some(k) => h.mac.as_deref().is_some_and(|m| k.verify(prefix, CheckpointKind::Head, h.seq, &h.hash, h.at_ms, m)),
    }
}

/// What, if anything, is wrong with the head found at start, given the newest record.
fn head_discrepancy(
    head: Option<&Head>,
    seq: u64,
    hash: &str,
    prefix: &str,
    key: Option<&CheckpointKey>,
    segs: &[PathBuf],
) -> Option<String> {
    let Some(h) = head else {
        return (seq > 0 && !segs.is_empty())
            .then(|| format!("the head anchor was missing at start (the log ends at record {seq})"));
    };
    if key.is_some() && h.mac.is_none() && h.seq > 0 {
        return Some(format!(
            "the head anchor (record {}) was not signed at start: written before signed checkpoints, or its signature removed",
            h.seq
        ));
    }
    if !head_signed_ok(h, prefix, key) {
        return Some(format!("the head anchor (record {}) had an invalid signature at start", h.seq));
    }
    if h.seq > seq {
        return Some(format!(
            "the log ended at record {seq} at start but the head anchor said {}: records were cut off while the log was closed",
            h.seq
        ));
    }
    if h.seq + 1 < seq {
        return Some(format!(
            "the log ended at record {seq} at start but the head anchor said {}: records were appended by something other than this log",
            h.seq
        ));
    }
    if h.seq == seq && h.hash != hash {
        return Some(format!(
            "record {seq} differed from the head anchor at start: it was rewritten while the log was closed"
        ));
    }
    None
}

fn segment_number(p: &Path) -> Option<u32> {
    p.file_stem()?.to_str()?.rsplit('-').next()?.parse().ok()
}

/// Whether the signatures (head, checkpoints) were checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Signatures {
    /// Every checkpoint's and the head's MAC verified with the key.
    Verified { checkpoints: usize },
    /// No key: the chain was checked against the head's and checkpoints' hashes, but a
    /// consistent rewrite (hashes and all) cannot be told from the original.
    NotChecked { checkpoints: usize },
    /// A single segment file was checked (no head or checkpoints belong to it).
    NotApplicable,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub segments: usize,
    /// The first problem, if any: where and what.
    pub problem: Option<Problem>,
    /// Torn lines found at the end of earlier segments (crash evidence, repaired).
    pub repaired_tears: Vec<String>,
    pub signatures: Signatures,
    /// Records up to this one were deleted by retention (a signed pruning checkpoint).
    pub pruned_through: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Checks every segment of `DIR/PREFIX-*.jsonl` (or one file) against the chain, the head
/// and the checkpoints; with `key`, also every signature.
pub fn verify(path: &Path, prefix: &str, key: Option<&CheckpointKey>) -> Result<VerifyReport, AuditError> {
    let is_dir = path.is_dir();
    let files = if is_dir { segments(path, prefix) } else { vec![path.to_path_buf()] };
    let mut report = VerifyReport {
        records: 0,
        segments: files.len(),
        problem: None,
        repaired_tears: Vec::new(),
        signatures: Signatures::NotApplicable,
        pruned_through: None,
    };
    let (checkpoints, bad_lines) = if is_dir {
        let cp_path = checkpoints_path(path, prefix);
        read_checkpoints(path, prefix).map_err(io(&cp_path))?
    } else {
        Default::default()
    };
    let cp_name = checkpoints_path(path, prefix).display().to_string();
    let cp_problem = |line: usize, reason: String| Problem { file: cp_name.clone(), line, reason };
    if is_dir {
        report.signatures = match key {
            Some(_) => Signatures::Verified { checkpoints: checkpoints.len() },
            None => Signatures::NotChecked { checkpoints: checkpoints.len() },
        };
    }
    // A torn last checkpoint line is a crash between two checkpoints; anything else that
    // does not parse was written by something else.
    if let Some(bad) = bad_lines.iter().find(|b| !b.torn || b.line <= checkpoints.last().map_or(0, |c| c.0)) {
        report.problem = Some(cp_problem(bad.line, "not a valid checkpoint (edited or corrupted)".into()));
        return Ok(report);
    }
    if let Some(key) = key {
        for (line, cp) in &checkpoints {
            if !cp.verify(key, prefix) {
                report.problem = Some(cp_problem(
                    *line,
                    format!(
                        "the {} checkpoint of record {}: signature does not match (forged or edited, or signed with another key)",
                        cp.kind.as_str(),
                        cp.seq
                    ),
                ));
                return Ok(report);
            }
        }
    }
    let mut by_seq: std::collections::BTreeMap<u64, Vec<(usize, &Checkpoint)>> = Default::default();
    for (line, cp) in &checkpoints {
        by_seq.entry(cp.seq).or_default().push((*line, cp));
    }
    let head_path = is_dir.then(|| head_path(path, prefix));
    let head: Option<Head> = if is_dir { read_head(path, prefix) } else { None };
    // Where the record the head anchors was found, and its hash.
    let mut anchored: Option<(String, usize, String)> = None;
    // The newest pruning point: the chain may start right after it.
    let pruned = checkpoints.iter().map(|(_, c)| c).filter(|c| c.kind == CheckpointKind::Pruned).max_by_key(|c| c.seq);
    let (mut expect_seq, mut prev) = (None::<u64>, GENESIS.to_string());
    let mut last_seq = 0u64;
    let mut first_seq = None;
    for (fi, file) in files.iter().enumerate() {
        let last_file = fi + 1 == files.len();
        let reader = BufReader::new(File::open(file).map_err(io(file))?);
        let lines: Vec<String> = reader.lines().collect::<Result<_, _>>().map_err(io(file))?;
        let raw = std::fs::read(file).map_err(io(file))?;
        let ends_clean = raw.last().is_none_or(|b| *b == b'\n');
        let name = file.display().to_string();
        for (li, line) in lines.iter().enumerate() {
            let is_last_line = li + 1 == lines.len();
            let fail = |reason: String| Problem { file: name.clone(), line: li + 1, reason };
            let rec = match serde_json::from_str::<Record>(line) {
                Ok(r) if !is_last_line || ends_clean => r,
                _ if is_last_line && !ends_clean && !last_file => {
                    report.repaired_tears.push(format!("{name}:{}", li + 1));
                    continue;
                }
                _ if is_last_line && !ends_clean => {
                    report.problem = Some(fail(
                        "torn last line: an incomplete write (crash); the next start continues in a new segment".into(),
                    ));
                    return Ok(report);
                }
                _ => {
                    report.problem = Some(fail("not a valid audit record (edited or corrupted)".into()));
                    return Ok(report);
                }
            };
            let expected = match expect_seq {
                Some(e) => e,
                // The first record: seq 1 from genesis, or right after the pruning point.
                None if rec.seq == 1 || !is_dir => 1,
                None => match pruned {
                    Some(p) if p.seq + 1 == rec.seq && p.hash == rec.prev => {
                        report.pruned_through = Some(p.seq);
                        prev = p.hash.clone();
                        rec.seq
                    }
                    Some(p) => {
                        report.problem = Some(fail(format!(
                            "records {}..{} are missing: retention pruned only through record {} (segments deleted by hand?)",
                            p.seq + 1,
                            rec.seq - 1,
                            p.seq
                        )));
                        return Ok(report);
                    }
                    None => {
                        report.problem = Some(fail(format!(
                            "records 1..{} are missing and no pruning checkpoint covers them: segments deleted",
                            rec.seq - 1
                        )));
                        return Ok(report);
                    }
                },
            };
            if rec.seq != expected {
                let why = if rec.seq > expected {
                    format!("sequence jumps from {} to {}: records deleted or reordered", expected - 1, rec.seq)
                } else {
                    format!("sequence {} after {}: records inserted or reordered", rec.seq, expected - 1)
                };
                report.problem = Some(fail(why));
                return Ok(report);
            }
            if rec.prev != prev {
                report.problem =
                    Some(fail("hash chain broken: the previous record was edited, removed or replaced".into()));
                return Ok(report);
            }
            prev = line_hash(line);
            for (cp_line, cp) in by_seq.get(&rec.seq).into_iter().flatten() {
                if cp.hash != prev {
                    report.problem = Some(fail(format!(
                        "record {} differs from its {} checkpoint ({cp_name} line {cp_line}): it, or the chain before it, was rewritten after it was written",
                        rec.seq,
                        cp.kind.as_str()
                    )));
                    return Ok(report);
                }
            }
            if head.as_ref().is_some_and(|h| h.seq == rec.seq) {
                anchored = Some((name.clone(), li + 1, prev.clone()));
            }
            first_seq.get_or_insert(rec.seq);
            last_seq = rec.seq;
            expect_seq = Some(rec.seq + 1);
            report.records += 1;
        }
    }
    let last_file = files.last().map(|p| p.display().to_string()).unwrap_or_default();
    if first_seq.is_none()
        && let Some(p) = pruned
    {
        // Every record was pruned: the log now ends at the pruning point.
        (last_seq, report.pruned_through) = (p.seq, Some(p.seq));
        prev = p.hash.clone();
    }
    if let Some((line, cp)) = checkpoints.iter().find(|(_, c)| c.seq > last_seq) {
        report.problem = Some(cp_problem(
            *line,
            format!(
                "the {} checkpoint of record {} is beyond the end of the log (record {last_seq}): records were cut off",
                cp.kind.as_str(),
                cp.seq
            ),
        ));
        return Ok(report);
    }
    let Some(head_path) = head_path else { return Ok(report) };
    let head_name = head_path.display().to_string();
    let Some(head) = head else {
        if last_seq > 0 {
            report.problem = Some(Problem {
                file: head_name,
                line: 1,
                reason: "the head anchor is missing or unreadable: deleted or edited (the newest records cannot be confirmed)"
                    .into(),
            });
        }
        return Ok(report);
    };
    if head.seq > last_seq {
        report.problem = Some(Problem {
            file: last_file,
            line: report.records as usize,
            reason: format!("truncated: the log ends at record {last_seq} but the head says {} were written", head.seq),
        });
        return Ok(report);
    }
    if let Some((file, line, hash)) = anchored
        && hash != head.hash
    {
        report.problem = Some(Problem {
            file,
            line,
            reason: format!(
                "record {} differs from the head anchor: it (or the chain before it) was rewritten after it was written",
                head.seq
            ),
        });
        return Ok(report);
    }
    if head.seq == last_seq && first_seq.is_none() && head.hash != prev {
        report.problem = Some(Problem {
            file: head_name,
            line: 1,
            reason: format!("the head anchor (record {}) differs from the pruning checkpoint of that record", head.seq),
        });
        return Ok(report);
    }
    if let Some(key) = key {
        let reason = match &head.mac {
            None => Some("the head anchor is not signed (written before signed checkpoints, or its signature removed)"),
            Some(mac) if !key.verify(prefix, CheckpointKind::Head, head.seq, &head.hash, head.at_ms, mac) => {
                Some("the head anchor's signature does not match: it was forged or edited (or signed with another key)")
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            report.problem =
                Some(Problem { file: head_name, line: 1, reason: format!("{reason}; it names record {}", head.seq) });
            return Ok(report);
        }
    }
    // The head is written right after each record, so a crash can leave it one behind;
    // more records than that past the anchor were not written by this log.
    let after = last_seq - head.seq;
    if after > 1 {
        report.problem = Some(Problem {
            file: last_file,
            line: report.records as usize,
            reason: format!(
                "{after} records after the head anchor (record {}): appended by something other than this log",
                head.seq
            ),
        });
    }
    Ok(report)
}

/// Reads every record (for `audit tail`), oldest first.
pub fn read_all(path: &Path, prefix: &str) -> Result<Vec<(u64, Event)>, AuditError> {
    let files = if path.is_dir() { segments(path, prefix) } else { vec![path.to_path_buf()] };
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io(&file))?;
        for line in text.lines() {
            if let Ok(r) = serde_json::from_str::<Record>(line) {
                out.push((r.seq, r.event));
            }
        }
    }
    Ok(out)
}

impl crate::types::event::Journal for AuditLog {
    fn record(&self, event: &Event) -> Result<(), JournalError> {
        if !is_security_relevant(&event.kind) {
            return Ok(());
        }
        // A tool call's record is the decision, not the arguments or what the tool returned
        // (customer data): the argument digest correlates them.
        let result = match &event.kind {
            EventKind::ToolResult { outcome, .. } if outcome.tool_text().is_some() => {
                let mut redacted = event.clone();
                if let EventKind::ToolResult { outcome, .. } = &mut redacted.kind {
                    *outcome = outcome.without_content();
                }
                self.append(&redacted)
            }
            EventKind::ToolCall { .. } => {
                let mut redacted = event.clone();
                if let EventKind::ToolCall { args, .. } = &mut redacted.kind {
                    *args = serde_json::Value::Null;
                }
                self.append(&redacted)
            }
            _ => self.append(event),
        };
        let Err(e) = result else { return Ok(()) };
        let message =
            format!("audit trail unavailable: {e} — check disk space and permissions of {}", self.dir.display());
        match self.opts.on_failure {
            OnFailure::Refuse => {
                tracing::error!(error = %e, "AUDIT WRITE FAILED: the action is refused");
                Err(JournalError::new(message))
            }
            OnFailure::Continue => {
                tracing::warn!(error = %e, "AUDIT WRITE FAILED: going ahead unrecorded ([audit] on_failure = \"continue\")");
                Ok(())
            }
        }
    }
}

/// Which events the audit trail records.
pub fn is_security_relevant(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::TokenIssued { .. }
            | EventKind::TokenRejected { .. }
            | EventKind::TokenError { .. }
            | EventKind::ToolCall { .. }
            | EventKind::ToolResult { .. }
            | EventKind::ToolConfirmation { .. }
            | EventKind::ToolRateLimited { .. }
            | EventKind::ManifestRecorded { .. }
            | EventKind::Anomaly { .. }
            | EventKind::ServiceDecision { .. }
            | EventKind::DeniedUnauthenticated { .. }
            | EventKind::AuditSegment { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::event::Scope;

    fn ev(i: u64) -> Event {
        Event {
            id: i,
            at_ms: 1000 + i,
            run_id: Some("r".into()),
            step: Some(i as u32),
            kind: EventKind::TokenError { detail: format!("d{i}"), server: None },
        }
    }

    fn write(dir: &Path, n: u64, max: u64) {
        let log = AuditLog::open(dir, "audit", FsyncPolicy::Never, max).unwrap();
        for i in 0..n {
            log.append(&ev(i)).unwrap();
        }
    }

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn a_clean_log_verifies_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 50, 2000);
        write(dir.path(), 10, 2000); // reopen and continue the chain
        let r = verify(dir.path(), "audit", None).unwrap();
        assert_eq!((r.records, r.problem.clone()), (60, None), "{r:?}");
        assert!(r.segments > 3, "rotated by size");
        let _ = Scope::default();
    }

    #[test]
    fn edits_deletions_insertions_reorders_and_truncation_are_caught() {
        type Mutation = Box<dyn Fn(&mut Vec<String>)>;
        let cases: Vec<(&str, Mutation, &str)> = vec![
            ("edit", Box::new(|l: &mut Vec<String>| l[3] = l[3].replace("d3", "dX")), "line 5"),
            (
                "delete",
                Box::new(|l: &mut Vec<String>| {
                    l.remove(4);
                }),
                "line 5",
            ),
            (
                "insert",
                Box::new(|l: &mut Vec<String>| {
                    let c = l[2].clone();
                    l.insert(5, c);
                }),
                "line 6",
            ),
            ("reorder", Box::new(|l: &mut Vec<String>| l.swap(6, 7)), "line 7"),
        ];
        for (name, mutate, expect) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), 10, u64::MAX);
            let seg = segments(dir.path(), "audit").remove(0);
            let mut l = lines(&seg);
            mutate(&mut l);
            std::fs::write(&seg, l.join("\n") + "\n").unwrap();
            let p = verify(dir.path(), "audit", None).unwrap().problem.unwrap_or_else(|| panic!("{name} not caught"));
            assert_eq!(format!("line {}", p.line), expect, "{name}: {p:?}");
        }
        // Cutting complete records off the end is caught by the head anchor.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let l = lines(&seg);
        std::fs::write(&seg, l[..7].join("\n") + "\n").unwrap();
        let p = verify(dir.path(), "audit", None).unwrap().problem.unwrap();
        assert!(p.reason.starts_with("truncated: the log ends at record 7 but the head says 10"), "{p:?}");
    }

    /// Regression (issue 11, defect 1): rewriting the newest record, or editing an earlier
    /// one and recomputing every `prev` after it, verified as "chain intact".
    #[test]
    fn rewriting_the_newest_records_is_caught_by_the_head() {
        // The last record rewritten in place (its prev still matches).
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let mut l = lines(&seg);
        l[9] = l[9].replace("d9", "dX");
        std::fs::write(&seg, l.join("\n") + "\n").unwrap();
        let p = verify(dir.path(), "audit", None).unwrap().problem.expect("an edit of the newest record is caught");
        assert_eq!(p.line, 10, "{p:?}");
        assert!(p.reason.starts_with("record 10 differs from the head anchor"), "{p:?}");

        // Record 8 edited and the chain after it recomputed.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let mut l = lines(&seg);
        l[7] = l[7].replace("d7", "dX");
        for i in 8..10 {
            let mut rec: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
            rec["prev"] = serde_json::Value::String(line_hash(&l[i - 1]));
            l[i] = serde_json::to_string(&rec).unwrap();
        }
        std::fs::write(&seg, l.join("\n") + "\n").unwrap();
        let p = verify(dir.path(), "audit", None).unwrap().problem.expect("a recomputed chain is caught");
        assert!(p.reason.starts_with("record 10 differs from the head anchor"), "{p:?}");

        // Records appended after the head (more than a crash between record and head can leave).
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let mut l = lines(&seg);
        for seq in 11..13 {
            let prev = line_hash(l.last().unwrap());
            let rec = serde_json::json!({"seq": seq, "prev": prev, "event": ev(seq)});
            l.push(serde_json::to_string(&rec).unwrap());
        }
        std::fs::write(&seg, l.join("\n") + "\n").unwrap();
        let p = verify(dir.path(), "audit", None).unwrap().problem.expect("records after the head are caught");
        assert!(p.reason.starts_with("2 records after the head anchor"), "{p:?}");
    }

    /// Regression (issue 11, defect 2): reopening when the newest segment is empty (rotated
    /// at open, no traffic since) restarted the chain at seq 1 from genesis.
    #[test]
    fn a_restart_after_an_empty_segment_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, 1); // every record fills a segment, so the log rotates on open
        let _idle = AuditLog::open(dir.path(), "audit", FsyncPolicy::Never, 1).unwrap();
        drop(_idle);
        let newest = segments(dir.path(), "audit").pop().unwrap();
        assert_eq!(std::fs::metadata(&newest).unwrap().len(), 0, "the newest segment is empty");
        write(dir.path(), 3, 1);
        let r = verify(dir.path(), "audit", None).unwrap();
        assert_eq!((r.records, r.problem.clone()), (13, None), "{r:?}");
    }

    #[test]
    fn a_torn_tail_is_reported_then_repaired_by_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 5, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let mut text = std::fs::read_to_string(&seg).unwrap();
        text.push_str("{\"seq\":6,\"prev\":\"ab");
        std::fs::write(&seg, text).unwrap();
        let p = verify(dir.path(), "audit", None).unwrap().problem.unwrap();
        assert!(p.reason.starts_with("torn last line"), "{p:?}");
        // The next start keeps the torn segment and continues the chain in a new one.
        write(dir.path(), 3, u64::MAX);
        let r = verify(dir.path(), "audit", None).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(r.records, 5 + 1 + 3, "five old, one repair note, three new");
        assert_eq!(r.repaired_tears.len(), 1);
        assert_eq!(lines(&seg).len(), 6, "nothing earlier was dropped");
    }

    struct Signed {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        key: Arc<CheckpointKey>,
    }

    fn signed_log() -> Signed {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("audit");
        let key = CheckpointKey::load_or_create(&tmp.path().join("keys/audit-checkpoint.key"), &dir).unwrap();
        Signed { dir, key: Arc::new(key), _tmp: tmp }
    }

    fn signed_opts(s: &Signed, every: u64, max: u64) -> AuditOptions {
        AuditOptions {
            key: Some(s.key.clone()),
            checkpoint_every_records: every,
            checkpoint_every: Duration::from_secs(3600),
            ..AuditOptions::unsigned(FsyncPolicy::Never, max)
        }
    }

    /// Rewrites record `at` (0-based line) of a one-segment log and recomputes every `prev`
    /// after it and the head's seq and hash: what an attacker with write access can do.
    fn rewrite_chain(dir: &Path, at: usize) {
        let seg = segments(dir, "audit").remove(0);
        let mut l = lines(&seg);
        l[at] = l[at].replace(&format!("d{at}"), "dX");
        for i in at + 1..l.len() {
            let mut rec: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
            rec["prev"] = serde_json::Value::String(line_hash(&l[i - 1]));
            l[i] = serde_json::to_string(&rec).unwrap();
        }
        std::fs::write(&seg, l.join("\n") + "\n").unwrap();
        let hp = head_path(dir, "audit");
        let mut head: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&hp).unwrap().trim()).unwrap();
        head["hash"] = serde_json::Value::String(line_hash(l.last().unwrap()));
        std::fs::write(&hp, head.to_string()).unwrap();
    }

    /// Regression (issue 11, defect 1): editing a record and recomputing every `prev` and the
    /// head verified as "chain intact". Signed checkpoints and a signed head catch it, and
    /// say which one failed.
    #[test]
    fn rewriting_the_whole_chain_is_caught_by_the_signed_checkpoints() {
        let s = signed_log();
        let log = AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 5, u64::MAX)).unwrap();
        for i in 0..12 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        let clean = verify(&s.dir, "audit", Some(&s.key)).unwrap();
        assert_eq!(clean.problem, None, "{clean:?}");
        assert_eq!(clean.signatures, Signatures::Verified { checkpoints: 2 }, "records 5 and 10");
        let cps = checkpoints_path(&s.dir, "audit");
        let pristine = (std::fs::read(segments(&s.dir, "audit").remove(0)).unwrap(), std::fs::read(&cps).unwrap());

        // Record 3 rewritten, the chain and head recomputed: the checkpoint of record 5 fails.
        rewrite_chain(&s.dir, 2);
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.expect("a recomputed chain is caught");
        assert_eq!(p.line, 5, "{p:?}");
        assert_eq!(
            p.reason,
            format!(
                "record 5 differs from its periodic checkpoint ({} line 1): it, or the chain before it, was rewritten after it was written",
                cps.display()
            )
        );

        // The same rewrite with the checkpoints file deleted: the head's signature fails.
        std::fs::remove_file(&cps).unwrap();
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.expect("caught by the signed head");
        assert!(p.file.ends_with("audit.head"), "{p:?}");
        assert!(p.reason.starts_with("the head anchor's signature does not match"), "{p:?}");
        // Without the key the rewrite is consistent, and verify says it could not tell.
        let r = verify(&s.dir, "audit", None).unwrap();
        assert_eq!((r.problem, r.signatures), (None, Signatures::NotChecked { checkpoints: 0 }));

        // A checkpoint edited to match a rewrite: its signature fails, by line and record.
        let (seg, cp) = pristine;
        std::fs::write(segments(&s.dir, "audit").remove(0), seg).unwrap();
        let mut cp_lines: Vec<String> = String::from_utf8(cp).unwrap().lines().map(str::to_string).collect();
        let mut second: serde_json::Value = serde_json::from_str(&cp_lines[1]).unwrap();
        second["hash"] = serde_json::Value::String("ab".repeat(32));
        cp_lines[1] = second.to_string();
        std::fs::write(&cps, cp_lines.join("\n") + "\n").unwrap();
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.expect("a forged checkpoint is caught");
        assert_eq!((p.file.as_str(), p.line), (cps.to_str().unwrap(), 2));
        assert_eq!(
            p.reason,
            "the periodic checkpoint of record 10: signature does not match (forged or edited, or signed with another key)"
        );

        // A checkpoint beyond the end: records were cut off together with the head.
        std::fs::remove_file(&cps).unwrap();
        let log = AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 5, u64::MAX)).unwrap();
        for i in 12..16 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        assert_eq!(verify(&s.dir, "audit", Some(&s.key)).unwrap().problem, None);
        let seg = segments(&s.dir, "audit").remove(0);
        let l = lines(&seg);
        // (Reopening recorded the rewritten head as record 13 and checkpointed it.)
        assert!(l[12].contains("had an invalid signature at start"), "{}", l[12]);
        std::fs::write(&seg, l[..12].join("\n") + "\n").unwrap();
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.unwrap();
        assert!(p.reason.contains("checkpoint of record 13 is beyond the end of the log (record 12)"), "{p:?}");
    }

    #[test]
    fn checkpoints_are_also_written_every_t_seconds_on_the_logs_clock() {
        let s = signed_log();
        let clock = crate::types::time::ManualClock::at_ms(1_000_000);
        let opts = AuditOptions {
            checkpoint_every: Duration::from_secs(60),
            clock: clock.clone(),
            ..signed_opts(&s, 1000, u64::MAX)
        };
        let log = AuditLog::open_with(&s.dir, "audit", opts).unwrap();
        log.append(&ev(0)).unwrap();
        log.append(&ev(1)).unwrap();
        let count = || read_checkpoints(&s.dir, "audit").unwrap().0.len();
        assert_eq!(count(), 0);
        clock.advance(Duration::from_secs(60));
        log.append(&ev(2)).unwrap();
        let (cps, _) = read_checkpoints(&s.dir, "audit").unwrap();
        assert_eq!(cps.iter().map(|(_, c)| (c.seq, c.at_ms)).collect::<Vec<_>>(), [(3, 1_060_000)]);
        log.append(&ev(3)).unwrap();
        assert_eq!(count(), 1, "the next one waits another 60 s");
    }

    /// The line spliced around the pre-serialised event is exactly what serde writes for
    /// the record, so the hash chain and `verify` are unchanged.
    #[test]
    fn a_spliced_record_line_is_the_serialised_record() {
        for (seq, prev) in [(1, GENESIS.to_string()), (42, line_hash("x")), (u64::MAX, "q\"uote\\".to_string())] {
            let event = ev(7);
            let spliced = record_line(seq, &prev, &serde_json::to_vec(&event).unwrap());
            let whole = serde_json::to_vec(&RecordRef { seq, prev: &prev, event: &event }).unwrap();
            assert_eq!(String::from_utf8(spliced).unwrap(), String::from_utf8(whole).unwrap());
        }
    }

    /// Regression: the batch policy's fsync ran under the writer's lock, on a server worker,
    /// stalling every decision behind the disk. `flush` now syncs through a second handle:
    /// the lock is free while the disk works, and a flush leaves the log clean.
    #[test]
    fn flush_syncs_outside_the_writer_and_leaves_the_log_clean() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), "audit", FsyncPolicy::Batch { interval_ms: 60_000 }, u64::MAX).unwrap();
        log.append(&ev(1)).unwrap();
        assert!(log.w.lock().dirty, "a batch append is not synced at once");
        log.flush().unwrap();
        assert!(!log.w.lock().dirty);
        log.append(&ev(2)).unwrap();
        assert!(log.w.lock().dirty);
        assert_eq!(verify(dir.path(), "audit", None).unwrap().records, 2);
    }

    /// A sink that writes only `budget` more bytes, then fails (a disk that fills mid-write).
    struct Flaky {
        inner: File,
        budget: Arc<Mutex<Option<usize>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut budget = self.budget.lock();
            match budget.as_mut() {
                None => self.inner.write(buf),
                Some(0) => Err(std::io::Error::other("No space left on device (test)")),
                Some(n) => {
                    let k = (*n).min(buf.len());
                    let written = self.inner.write(&buf[..k])?;
                    *n -= written;
                    Ok(written)
                }
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    impl Sink for Flaky {
        fn len(&self) -> std::io::Result<u64> {
            Sink::len(&self.inner)
        }
        fn set_len(&mut self, len: u64) -> std::io::Result<()> {
            File::set_len(&self.inner, len)
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            File::sync_data(&self.inner)
        }
        fn sync_handle(&self) -> std::io::Result<File> {
            self.inner.try_clone()
        }
    }

    /// Regression (issue 11, defect 3a): a write that failed half-way left a torn fragment
    /// mid-file, and the writer's seq and hash moved on as if the record were written.
    #[test]
    fn a_write_that_fails_half_way_is_cut_back_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), "audit", FsyncPolicy::Always, u64::MAX).unwrap();
        for i in 0..3 {
            log.append(&ev(i)).unwrap();
        }
        let seg = segments(dir.path(), "audit").remove(0);
        let before = std::fs::read(&seg).unwrap();
        let budget = Arc::new(Mutex::new(Some(20)));
        {
            let mut w = log.w.lock();
            let inner = OpenOptions::new().append(true).open(&seg).unwrap();
            w.file = Box::new(Flaky { inner, budget: budget.clone() });
        }
        let err = log.append(&ev(3)).unwrap_err();
        assert!(err.to_string().contains("No space left on device"), "{err}");
        assert_eq!(std::fs::read(&seg).unwrap(), before, "no fragment of the failed record remains");
        *budget.lock() = None; // space again
        assert_eq!(log.append(&ev(4)).unwrap(), 4, "the next record takes the failed one's seq");
        drop(log);
        let r = verify(dir.path(), "audit", None).unwrap();
        assert_eq!((r.records, r.problem), (4, None));
        assert!(lines(&seg)[3].contains("\"d4\""));
    }

    /// A segment that cannot be opened at rotation (here a directory in its place; as root,
    /// permissions would not stop the write) fails the append and leaves the writer where it
    /// was; once the obstacle is gone the chain continues.
    #[test]
    fn a_rotation_that_fails_leaves_the_writer_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), "audit", FsyncPolicy::Always, 1).unwrap();
        log.append(&ev(0)).unwrap();
        let next = segment_path(dir.path(), "audit", 2);
        std::fs::create_dir(&next).unwrap();
        let err = log.append(&ev(1)).unwrap_err();
        assert!(err.to_string().starts_with(&format!("audit log {}:", next.display())), "{err}");
        std::fs::remove_dir(&next).unwrap();
        assert_eq!(log.append(&ev(2)).unwrap(), 2);
        drop(log);
        let r = verify(dir.path(), "audit", None).unwrap();
        assert_eq!((r.records, r.problem), (2, None));
    }

    /// Regression (issue 11, defect 4b): audit segments were never pruned. Retention deletes
    /// the oldest after a signed pruning checkpoint; the rest still verifies, tampering with
    /// it is still caught, and deleting more than retention did is reported.
    #[test]
    fn retention_prunes_old_segments_behind_a_signed_checkpoint() {
        let s = signed_log();
        let opts = || AuditOptions {
            retention: Retention { segments: Some(3), ..Default::default() },
            ..signed_opts(&s, 1000, 400)
        };
        let log = AuditLog::open_with(&s.dir, "audit", opts()).unwrap();
        for i in 0..40 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        let segs = segments(&s.dir, "audit");
        assert_eq!(segs.len(), 3, "{segs:?}");
        let r = verify(&s.dir, "audit", Some(&s.key)).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        let pruned = r.pruned_through.expect("a pruning point");
        assert_eq!(r.records, 40 - pruned);
        // Reopening continues the same chain.
        let log = AuditLog::open_with(&s.dir, "audit", opts()).unwrap();
        log.append(&ev(40)).unwrap();
        drop(log);
        assert_eq!(verify(&s.dir, "audit", Some(&s.key)).unwrap().problem, None);

        // Tampering with what remains is still caught.
        let first = segments(&s.dir, "audit").remove(0);
        let original = std::fs::read_to_string(&first).unwrap();
        let first_seq: u64 = serde_json::from_str::<Record>(original.lines().next().unwrap()).unwrap().seq;
        std::fs::write(&first, original.replacen(&format!("\"d{}\"", first_seq - 1), "\"dX\"", 1)).unwrap();
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.expect("an edit after pruning");
        assert_eq!(p.line, 2, "{p:?}");
        std::fs::write(&first, &original).unwrap();

        // Deleting one more segment than retention did is a gap, not a prune.
        let until = verify(&s.dir, "audit", Some(&s.key)).unwrap().pruned_through.unwrap();
        std::fs::remove_file(&first).unwrap();
        let p = verify(&s.dir, "audit", Some(&s.key)).unwrap().problem.expect("a deleted segment");
        assert!(p.reason.starts_with(&format!("records {}..", until + 1)), "{p:?}");
        assert!(p.reason.contains(&format!("retention pruned only through record {until}")), "{p:?}");
    }

    #[test]
    fn retention_by_bytes_and_by_age() {
        let s = signed_log();
        let by_bytes = AuditOptions {
            retention: Retention { bytes: Some(1200), ..Default::default() },
            ..signed_opts(&s, 1000, 400)
        };
        let log = AuditLog::open_with(&s.dir, "audit", by_bytes).unwrap();
        for i in 0..40 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        let total: u64 = segments(&s.dir, "audit").iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(total <= 1200 + 400, "{total}");
        assert_eq!(verify(&s.dir, "audit", Some(&s.key)).unwrap().problem, None);

        let s = signed_log();
        let log = AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 1000, 400)).unwrap();
        for i in 0..20 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        let segs = segments(&s.dir, "audit");
        let old = std::time::SystemTime::now() - Duration::from_secs(3 * 86_400);
        for p in &segs[..2] {
            File::options().append(true).open(p).unwrap().set_modified(old).unwrap();
        }
        let by_age =
            AuditOptions { retention: Retention { days: Some(2), ..Default::default() }, ..signed_opts(&s, 1000, 400) };
        drop(AuditLog::open_with(&s.dir, "audit", by_age).unwrap());
        assert_eq!(segments(&s.dir, "audit"), segs[2..].to_vec(), "the two old segments went");
        let r = verify(&s.dir, "audit", Some(&s.key)).unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        assert!(r.pruned_through.is_some());
    }

    /// A head that disagrees with the records at start (records cut off while the log was
    /// closed) is recorded in the chain before the head is signed again.
    #[test]
    fn a_truncation_while_closed_is_recorded_at_the_next_start() {
        let s = signed_log();
        let log = AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 1000, u64::MAX)).unwrap();
        for i in 0..10 {
            log.append(&ev(i)).unwrap();
        }
        drop(log);
        let seg = segments(&s.dir, "audit").remove(0);
        std::fs::write(&seg, lines(&seg)[..7].join("\n") + "\n").unwrap();
        drop(AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 1000, u64::MAX)).unwrap());
        let all = read_all(&s.dir, "audit").unwrap();
        let (seq, note) = all.last().unwrap();
        assert_eq!(*seq, 8);
        assert!(
            matches!(&note.kind, EventKind::AuditSegment { reason } if reason == "the log ended at record 7 at start but the head anchor said 10: records were cut off while the log was closed"),
            "{note:?}"
        );
    }

    #[test]
    fn a_torn_checkpoint_line_is_tolerated_then_dropped_at_the_next_start() {
        let s = signed_log();
        let append = |n: std::ops::Range<u64>| {
            let log = AuditLog::open_with(&s.dir, "audit", signed_opts(&s, 2, u64::MAX)).unwrap();
            for i in n {
                log.append(&ev(i)).unwrap();
            }
        };
        append(0..4);
        let cps = checkpoints_path(&s.dir, "audit");
        let mut f = OpenOptions::new().append(true).open(&cps).unwrap();
        f.write_all(br#"{"kind":"periodic","seq":6,"ha"#).unwrap();
        let r = verify(&s.dir, "audit", Some(&s.key)).unwrap();
        assert_eq!((r.problem, r.signatures), (None, Signatures::Verified { checkpoints: 2 }));
        append(4..8);
        let r = verify(&s.dir, "audit", Some(&s.key)).unwrap();
        assert_eq!((r.problem, r.signatures), (None, Signatures::Verified { checkpoints: 4 }));
    }
}
