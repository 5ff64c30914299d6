//! First-seen tool-manifest hashes per server URL (`STATE/manifests.json`). A server whose
//! manifest later hashes differently has changed its tools under us (a "rug pull"): its
//! tools stay blocked until an operator approves the new manifest.

use std::collections::BTreeMap;
use std::path::Path;

pub type Pins = BTreeMap<String, String>;

pub fn load(path: &Path) -> Pins {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

pub fn save(path: &Path, pins: &Pins) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(pins).unwrap_or_default()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot save manifest pins");
    }
}

/// Pins `url` to `hash` (operator approval).
pub fn approve(path: &Path, url: &str, hash: &str) {
    let mut pins = load(path);
    pins.insert(url.to_string(), hash.to_string());
    save(path, &pins);
}
