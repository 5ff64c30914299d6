//! Python packages the tests run (DSPy, to check Warden's program files against DSPy
//! itself), installed on first use into a virtual environment under `CARGO_TARGET_TMPDIR`
//! (needs `python3` with `venv` and PyPI once; later runs reuse the install). Included by
//! path (`#[path = "common/pypi.rs"] mod pypi;`), as `npm.rs` is for npm packages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// The Python of a venv `CARGO_TARGET_TMPDIR/dir` holding `packages` (pinned
/// requirements), created once. A marker written after a successful install names the
/// requirements, so an interrupted install, or one of other versions, is done again.
pub fn venv_python(dir: &str, packages: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let python = root.join("bin/python");
    let marker = root.join("installed.txt");
    let want = packages.join("\n");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    // Other test binaries may want the same venv at the same time: one installs, the
    // others wait for it (the lock is released when the file closes).
    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lock = std::fs::File::create(root.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == want) && python.exists() {
        return python;
    }
    // A venv records its own path, so it is built in place (not beside and renamed); the
    // marker comes last, so a half-built one is never taken as complete.
    let _ = std::fs::remove_dir_all(&root);
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&root)
        .output()
        .expect("this test needs python3 on PATH (with the venv module) to install DSPy");
    assert!(out.status.success(), "python3 -m venv failed: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install {packages:?} failed (needs PyPI once): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&marker, &want).unwrap();
    python
}
