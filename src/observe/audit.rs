//! The audit trail: append-only, hash-chained, fsync'd JSONL.
//!
//! Each line is `{"seq":N,"prev":"<sha256 of the previous line>","event":{…}}`. Lines live
//! in segments (`audit-000001.jsonl`, …) rotated by size; the chain runs across segments.
//! `audit.head` anchors the newest `seq` and hash so that cutting records off the end is
//! detected too. After a crash mid-write the torn last line stays where it is (evidence)
//! and the next start opens a new segment whose first record names the repair — nothing
//! earlier is dropped. `verify` walks every segment and reports the first bad line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::types::event::{Event, EventKind};
use crate::types::secret::sha256;
use crate::types::time::Clock;

const HEAD_WIDTH: usize = 160;

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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
    prev: String,
    event: Event,
}

/// What `append` writes: the same shape as [`Record`], borrowed, so appending does not
/// clone the event.
#[derive(Serialize)]
struct RecordRef<'a> {
    seq: u64,
    prev: &'a str,
    event: &'a Event,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct Head {
    seq: u64,
    hash: String,
    segment: u32,
}

struct Writer {
    file: File,
    path: PathBuf,
    segment: u32,
    size: u64,
    seq: u64,
    last_hash: String,
    last_sync: Instant,
    dirty: bool,
    /// `PREFIX.head`, kept open and rewritten in place (fixed width) on every append.
    head: File,
}

pub struct AuditLog {
    dir: PathBuf,
    prefix: String,
    policy: FsyncPolicy,
    max_segment_bytes: u64,
    w: Mutex<Writer>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_path_buf(), source }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

pub fn line_hash(line: impl AsRef<[u8]>) -> String {
    hex(&sha256(line.as_ref()))
}

fn segment_path(dir: &Path, prefix: &str, n: u32) -> PathBuf {
    dir.join(format!("{prefix}-{n:06}.jsonl"))
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

impl AuditLog {
    /// Opens (or creates) the log `DIR/PREFIX-*.jsonl`. If the last segment ends in a torn
    /// line, a new segment is started and its first record says so.
    pub fn open(dir: &Path, prefix: &str, policy: FsyncPolicy, max_segment_bytes: u64) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let segs = segments(dir, prefix);
        let (mut seq, mut last_hash, mut segment, mut torn) = (0u64, GENESIS.to_string(), 1u32, false);
        if let Some(last) = segs.last() {
            segment = segment_number(last).unwrap_or(1);
        }
        // The chain continues from the newest complete record, wherever it is: the newest
        // segment may be empty (rotated at the last start, no traffic since).
        for (i, seg) in segs.iter().enumerate().rev() {
            let text = std::fs::read_to_string(seg).map_err(io(seg))?;
            let mut found = false;
            for line in text.split_inclusive('\n') {
                let complete = line.ends_with('\n');
                let body = line.trim_end_matches('\n');
                match serde_json::from_str::<Record>(body) {
                    Ok(r) if complete => {
                        seq = r.seq;
                        last_hash = line_hash(body);
                        found = true;
                    }
                    // Only a tear in the segment we would append to needs a repair; an
                    // earlier one was repaired when it happened.
                    _ => torn |= i + 1 == segs.len(),
                }
            }
            if found || torn {
                break;
            }
        }
        let rotate_now = torn
            || segs.last().is_some_and(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) >= max_segment_bytes);
        if rotate_now {
            segment += 1;
        }
        let path = segment_path(dir, prefix, segment);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let head_path = dir.join(format!("{prefix}.head"));
        let head =
            OpenOptions::new().create(true).write(true).truncate(false).open(&head_path).map_err(io(&head_path))?;
        let log = Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            policy,
            max_segment_bytes,
            w: Mutex::new(Writer {
                file,
                path,
                segment,
                size,
                seq,
                last_hash,
                last_sync: Instant::now(),
                dirty: false,
                head,
            }),
        };
        if torn {
            log.append(&Event {
                id: 0,
                at_ms: crate::types::time::SystemClock.now_ms(),
                run_id: None,
                step: None,
                kind: EventKind::AuditSegment {
                    reason: "previous segment ended in a torn line (crash mid-write); it is kept as evidence".into(),
                },
            })?;
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record; returns only once the record is as durable as the policy says.
    pub fn append(&self, event: &Event) -> Result<u64, AuditError> {
        let mut w = self.w.lock();
        if w.size >= self.max_segment_bytes {
            self.rotate(&mut w)?;
        }
        let seq = w.seq + 1;
        let mut line = serde_json::to_vec(&RecordRef { seq, prev: &w.last_hash, event }).unwrap_or_default();
        let hash = line_hash(&line);
        line.push(b'\n');
        // One write per record: a crash can tear at most this line, never interleave two.
        if let Err(source) = w.file.write_all(&line) {
            return Err(AuditError::Io { path: w.path.clone(), source });
        }
        w.size += line.len() as u64;
        w.seq = seq;
        w.last_hash = hash;
        w.dirty = true;
        match self.policy {
            FsyncPolicy::Always => self.sync(&mut w)?,
            FsyncPolicy::Batch { interval_ms } if w.last_sync.elapsed() >= Duration::from_millis(interval_ms) => {
                self.sync(&mut w)?
            }
            _ => {}
        }
        self.write_head(&mut w)?;
        Ok(seq)
    }

    /// fsync now (also called on a timer for the batch policy).
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut w = self.w.lock();
        self.sync(&mut w)
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

    fn rotate(&self, w: &mut Writer) -> Result<(), AuditError> {
        self.sync(w)?;
        w.segment += 1;
        w.path = segment_path(&self.dir, &self.prefix, w.segment);
        let path = w.path.clone();
        w.file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        w.size = 0;
        Ok(())
    }

    /// Rewrites the head in place, padded to a fixed width so no stale bytes remain.
    fn write_head(&self, w: &mut Writer) -> Result<(), AuditError> {
        use std::os::unix::fs::FileExt;
        let head = Head { seq: w.seq, hash: w.last_hash.clone(), segment: w.segment };
        let mut text = serde_json::to_string(&head).unwrap_or_default();
        while text.len() < HEAD_WIDTH {
            text.push(' ');
        }
        // A positioned write: one syscall, no seek.
        w.head
            .write_all_at(text.as_bytes(), 0)
            .map_err(|source| AuditError::Io { path: self.dir.join(format!("{}.head", self.prefix)), source })
    }
}

fn segment_number(p: &Path) -> Option<u32> {
    p.file_stem()?.to_str()?.rsplit('-').next()?.parse().ok()
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

/// Checks every segment of `DIR/PREFIX-*.jsonl` (or one file) against the chain and head.
pub fn verify(path: &Path, prefix: &str) -> Result<VerifyReport, AuditError> {
    let (files, head_path) = if path.is_dir() {
        (segments(path, prefix), Some(path.join(format!("{prefix}.head"))))
    } else {
        (vec![path.to_path_buf()], None)
    };
    let mut report = VerifyReport { records: 0, segments: files.len(), problem: None, repaired_tears: Vec::new() };
    let head: Option<Head> = head_path
        .as_ref()
        .and_then(|hp| std::fs::read_to_string(hp).ok())
        .and_then(|text| serde_json::from_str(text.trim()).ok());
    // Where the record the head anchors was found, and its hash.
    let mut anchored: Option<(String, usize, String)> = None;
    let (mut expect_seq, mut prev) = (1u64, GENESIS.to_string());
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
            if rec.seq != expect_seq {
                let why = if rec.seq > expect_seq {
                    format!("sequence jumps from {} to {}: records deleted or reordered", expect_seq - 1, rec.seq)
                } else {
                    format!("sequence {} after {}: records inserted or reordered", rec.seq, expect_seq - 1)
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
            if head.as_ref().is_some_and(|h| h.seq == rec.seq) {
                anchored = Some((name.clone(), li + 1, prev.clone()));
            }
            expect_seq += 1;
            report.records += 1;
        }
    }
    let Some(head) = head else { return Ok(report) };
    let last_file = files.last().map(|p| p.display().to_string()).unwrap_or_default();
    if head.seq > report.records {
        report.problem = Some(Problem {
            file: last_file,
            line: report.records as usize,
            reason: format!(
                "truncated: the log ends at record {} but the head says {} were written",
                report.records, head.seq
            ),
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
    // The head is written right after each record, so a crash can leave it one behind;
    // more records than that past the anchor were not written by this log.
    let after = report.records - head.seq;
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
    fn record(&self, event: &Event) {
        if !is_security_relevant(&event.kind) {
            return;
        }
        // A tool call's record is the decision, not what the tool returned (customer data).
        let result = match &event.kind {
            EventKind::ToolResult { outcome, .. } if outcome.tool_text().is_some() => {
                let mut redacted = event.clone();
                if let EventKind::ToolResult { outcome, .. } = &mut redacted.kind {
                    *outcome = outcome.without_content();
                }
                self.append(&redacted)
            }
            _ => self.append(event),
        };
        if let Err(e) = result {
            // Loud, but the decision it describes has already been made; see README.
            tracing::error!(error = %e, "AUDIT WRITE FAILED");
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
            | EventKind::ToolResult { .. }
            | EventKind::ToolRateLimited { .. }
            | EventKind::ManifestRecorded { .. }
            | EventKind::Anomaly { .. }
            | EventKind::ServiceDecision { .. }
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
            kind: EventKind::TokenError { detail: format!("d{i}") },
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
        let r = verify(dir.path(), "audit").unwrap();
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
            let p = verify(dir.path(), "audit").unwrap().problem.unwrap_or_else(|| panic!("{name} not caught"));
            assert_eq!(format!("line {}", p.line), expect, "{name}: {p:?}");
        }
        // Cutting complete records off the end is caught by the head anchor.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 10, u64::MAX);
        let seg = segments(dir.path(), "audit").remove(0);
        let l = lines(&seg);
        std::fs::write(&seg, l[..7].join("\n") + "\n").unwrap();
        let p = verify(dir.path(), "audit").unwrap().problem.unwrap();
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
        let p = verify(dir.path(), "audit").unwrap().problem.expect("an edit of the newest record is caught");
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
        let p = verify(dir.path(), "audit").unwrap().problem.expect("a recomputed chain is caught");
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
        let p = verify(dir.path(), "audit").unwrap().problem.expect("records after the head are caught");
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
        let r = verify(dir.path(), "audit").unwrap();
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
        let p = verify(dir.path(), "audit").unwrap().problem.unwrap();
        assert!(p.reason.starts_with("torn last line"), "{p:?}");
        // The next start keeps the torn segment and continues the chain in a new one.
        write(dir.path(), 3, u64::MAX);
        let r = verify(dir.path(), "audit").unwrap();
        assert_eq!(r.problem, None, "{r:?}");
        assert_eq!(r.records, 5 + 1 + 3, "five old, one repair note, three new");
        assert_eq!(r.repaired_tears.len(), 1);
        assert_eq!(lines(&seg).len(), 6, "nothing earlier was dropped");
    }
}
