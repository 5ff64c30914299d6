//! The MCP reference server `@modelcontextprotocol/server-everything` (npm, pinned), for
//! the tests that point Warden at a server it did not write. Installed on first use into
//! `CARGO_TARGET_TMPDIR` (needs `npm` and the npm registry once; later runs reuse it).
//! Included by path (`#[path = "common/everything.rs"] mod everything;`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The newest release that runs on this machine kind's Node.js 20 (checked by hand: tools
/// listed, echo and get-sum called, over stdio and streamable HTTP).
pub const EVERYTHING_VERSION: &str = "2026.8.31";

static INSTALL: Mutex<()> = Mutex::new(());

/// `dist/index.js` of the pinned server-everything, installed on first use.
pub fn everything() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("server-everything-{EVERYTHING_VERSION}"));
    let index = root.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if index.exists() {
        return index;
    }
    // Installed beside, then renamed: an interrupted install never looks complete.
    let staging = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&staging)
        .arg(format!("@modelcontextprotocol/server-everything@{EVERYTHING_VERSION}"))
        .output()
        .expect("these tests need npm (Node.js 20) on PATH to install @modelcontextprotocol/server-everything");
    assert!(out.status.success(), "npm install failed: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&staging, &root).unwrap();
    assert!(index.exists(), "{} missing after npm install", index.display());
    index
}
