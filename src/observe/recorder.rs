//! Session recording and replay. Every event goes to `STATE/sessions/<time>.jsonl` as it
//! happens (events carry no secrets, so neither does the file); `warden replay FILE`
//! plays one back into the console at its original pace (or `--speed N` times faster).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::types::event::Event;

/// The file a new session records to.
pub fn session_path(state_dir: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc();
    let name = format!(
        "session-{:04}{:02}{:02}-{:02}{:02}{:02}-{}.jsonl",
        stamp.year(),
        stamp.month() as u8,
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second(),
        std::process::id()
    );
    state_dir.join("sessions").join(name)
}

/// Writes every event from `rx` to `path`, one JSON object per line, flushed per event so
/// a crash loses at most the event being written.
pub fn spawn_recorder(path: PathBuf, mut rx: mpsc::Receiver<Event>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    Ok(tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::new(file);
        while let Some(e) = rx.blocking_recv() {
            if serde_json::to_writer(&mut out, &e).is_err() || out.write_all(b"\n").is_err() || out.flush().is_err() {
                tracing::error!(path = %path.display(), "session recording failed; stopping the recorder");
                return;
            }
        }
    }))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("cannot read session {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} line {line} is not a Warden event ({message}); `warden replay` plays a session recording (STATE/sessions/session-*.jsonl, one JSON event per line)"
    )]
    Parse { path: PathBuf, line: usize, message: String },
    #[error(
        "{path} is not a Warden session recording: {found}; `warden replay` plays the files the console writes to STATE/sessions/session-*.jsonl (one JSON event per line)"
    )]
    NotRecording { path: PathBuf, found: &'static str },
}

/// Reads a recorded session. A torn last line (a crash mid-write) is skipped when events
/// came before it; a file with no event at all (empty, a directory's listing, another
/// program's JSON, a binary file) is refused rather than replayed as an empty console.
pub fn load(path: &Path) -> Result<Vec<Event>, ReplayError> {
    let bytes = std::fs::read(path).map_err(|source| ReplayError::Read { path: path.into(), source })?;
    let not = |found| ReplayError::NotRecording { path: path.into(), found };
    let text = String::from_utf8(bytes).map_err(|_| not("it is not text"))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::new();
    let last = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if events.is_empty() => return Err(not("its first line is not a Warden event")),
            Err(_) if i + 1 == last => tracing::warn!("skipping a torn last line in {}", path.display()),
            Err(e) => return Err(ReplayError::Parse { path: path.into(), line: i + 1, message: e.to_string() }),
        }
    }
    if events.is_empty() {
        return Err(not("it is empty"));
    }
    Ok(events)
}

/// Sends `events` with their recorded spacing divided by `speed` (gaps capped at 2 s).
pub fn spawn_replay(events: Vec<Event>, speed: f64, tx: mpsc::Sender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut prev: Option<u64> = None;
        for e in events {
            if let Some(p) = prev {
                let gap = e.at_ms.saturating_sub(p) as f64 / speed.max(0.01);
                tokio::time::sleep(Duration::from_millis(gap.min(2000.0) as u64)).await;
            }
            prev = Some(e.at_ms);
            if tx.send(e).await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::event::{EventBus, EventKind, Scope};

    #[test]
    fn sessions_round_trip_and_tolerate_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let bus = EventBus::recording();
        bus.emit(&Scope::default(), EventKind::Thought { text: "a".into() });
        bus.emit(&Scope::default(), EventKind::FinalAnswer { response: "b".into() });
        let mut text: String = bus.recorded().iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
        text.push_str("{\"id\":3,\"at_ms\":1,\"ty");
        std::fs::write(&path, text).unwrap();
        let events = load(&path).unwrap();
        assert_eq!(events, bus.recorded());
        let first = serde_json::to_string(&bus.recorded()[0]).unwrap();
        std::fs::write(&path, format!("{first}\ngarbage\n{{}}\n")).unwrap();
        assert!(matches!(load(&path), Err(ReplayError::Parse { line: 2, .. })));
    }

    #[test]
    fn a_file_that_is_not_a_recording_is_refused_with_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        for (content, found) in [
            (&b""[..], "it is empty"),
            (b"\n\n", "it is empty"),
            (b"# my notes\n", "its first line is not a Warden event"),
            (b"{\"name\": \"package\", \"version\": \"1.0\"}\n", "its first line is not a Warden event"),
            (b"\xff\xfe\x00binary", "it is not text"),
        ] {
            std::fs::write(&path, content).unwrap();
            let err = load(&path).unwrap_err();
            assert!(matches!(&err, ReplayError::NotRecording { found: f, .. } if *f == found), "{err}");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("{} is not a Warden session recording: {found};", path.display())),
                "{msg}"
            );
            assert!(msg.contains("STATE/sessions/session-*.jsonl"), "{msg}");
        }
    }
}
