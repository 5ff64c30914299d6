//! The MCP reference server `@modelcontextprotocol/server-everything` (npm, pinned), for
//! the tests that point Warden at a server it did not write. Installed on first use into
//! `CARGO_TARGET_TMPDIR` (needs `npm` and the npm registry once; later runs reuse it).
//! Included by path (`#[path = "common/everything.rs"] mod everything;`).

use std::path::PathBuf;

#[path = "npm.rs"]
mod npm;

/// The newest release that runs on this machine kind's Node.js 20 (checked by hand: tools
/// listed, echo and get-sum called, over stdio and streamable HTTP).
pub const EVERYTHING_VERSION: &str = "2026.8.31";

/// `dist/index.js` of the pinned server-everything, installed on first use.
pub fn everything() -> PathBuf {
    const INDEX: &str = "node_modules/@modelcontextprotocol/server-everything/dist/index.js";
    let root = npm::npm_install(
        &format!("server-everything-{EVERYTHING_VERSION}"),
        &[&format!("@modelcontextprotocol/server-everything@{EVERYTHING_VERSION}")],
        &[INDEX],
        "these tests need npm (Node.js 20) on PATH to install @modelcontextprotocol/server-everything",
    );
    root.join(INDEX)
}
