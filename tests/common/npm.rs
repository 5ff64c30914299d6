//! npm packages the tests run (the MCP reference server, the conformance suite and the
//! Node.js it needs), installed on first use into `CARGO_TARGET_TMPDIR` (needs `npm` and the
//! npm registry once; later runs reuse the install). Included by path
//! (`#[path = "common/npm.rs"] mod npm;`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// `CARGO_TARGET_TMPDIR/dir` with `packages` installed, once: a directory holding every file
/// of `ready` (paths inside it) counts as installed. `why` ends the panic when npm is
/// missing ("this test needs npm on PATH to install …").
pub fn npm_install(dir: &str, packages: &[&str], ready: &[&str], why: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let complete = || ready.iter().all(|f| root.join(f).exists());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if complete() {
        return root;
    }
    // Installed beside, then renamed: an interrupted install never looks complete.
    let staging = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&staging)
        .args(packages)
        .output()
        .expect(why);
    assert!(out.status.success(), "npm install failed: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root).unwrap();
    assert!(complete(), "{ready:?} missing in {} after npm install", root.display());
    root
}
