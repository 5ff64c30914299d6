//! The layering of `src/` (README, "Layout"): each top-level module may import only the
//! modules listed for it here — the layers below it. A file that imports from a higher
//! layer fails this test with the file, the line and the import named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level module → the modules it may import (besides itself and the crate root's
/// `install_crypto_provider`).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    const BASE: &[&str] = &["types", "paths"];
    BTreeMap::from([
        ("types", &[][..]),
        ("paths", &[][..]),
        ("observe", BASE),
        ("security", BASE),
        ("auth", &["types", "paths", "security"][..]),
        ("config", &["types", "paths", "security", "observe", "auth"][..]),
        ("issuer", &["types", "paths", "security", "observe", "auth", "config"][..]),
        ("service", &["types", "paths", "security", "observe", "auth", "config"][..]),
        ("serve", &["types", "paths", "security", "observe", "auth", "config", "issuer", "service"][..]),
        ("mcp", &["types", "paths", "security", "auth", "config"][..]),
        ("agent", &["types", "paths", "security", "auth", "config", "mcp"][..]),
        ("session", &["types", "paths", "security", "observe", "auth", "config", "serve", "mcp", "agent"][..]),
        // The console is a frontend: it reaches the agent and the client stack only through
        // the session core.
        ("tui", &["types", "paths", "observe", "config", "session"][..]),
        (
            "cli",
            &[
                "types", "paths", "security", "observe", "auth", "config", "issuer", "service", "serve", "mcp",
                "agent", "session", "tui",
            ][..],
        ),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line names through `crate::`.
fn crate_imports(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: every first segment in the group.
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_from_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut unknown = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(may) = allowed.get(top.as_str()) else {
            unknown.push(top);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for import in crate_imports(code) {
                let ok = import == top || import == "install_crypto_provider" || may.contains(&import.as_str());
                if !ok && allowed.contains_key(import.as_str()) {
                    violations.push(format!(
                        "src/{}:{}: `{top}` imports `crate::{import}`, a layer above it or beside it ({})",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(unknown.is_empty(), "top-level modules missing from the layering table: {unknown:?}");
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_reads_plain_and_grouped_imports() {
    assert_eq!(crate_imports("use crate::agent::react::ReAct;"), ["agent"]);
    assert_eq!(crate_imports("use crate::{mcp::ClientStack, types};"), ["mcp", "types"]);
    assert_eq!(crate_imports("let x = crate::tui::keymap::Action::Quit; crate::cli::run()"), ["tui", "cli"]);
}
