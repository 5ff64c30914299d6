//! `warden keygen` and `warden inspect` from the command line, on real files: a sealed
//! program is shown (predictors, demos, security configuration), exported as DSPy JSON that
//! loads back, and every way a sealed file can fail to open is reported with its cause and
//! exit code 1, with nothing shown; a wrong command line exits 2.

#[path = "common/programs.rs"]
mod programs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use warden::agent::program::load_file;
use warden::security::seal::SealKey;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn warden(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--state-dir")
            .arg(self.path("state"))
            .args(args)
            .env_remove("WARDEN_PROGRAM_KEY")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// A key made with `warden keygen`, and the compiled program sealed with it.
    fn sealed(&self) -> (PathBuf, PathBuf) {
        let key = self.path("program.key");
        let out = self.warden(&["keygen", "--out", key.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let file = self.path("program.sealed");
        programs::program_file().save_sealed(&file, &SealKey::from_file(&key).unwrap()).unwrap();
        (file, key)
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_writes_a_private_key_once() {
    let env = Env::new();
    let key = env.path("keys/program.key");
    let out = env.warden(&["keygen", "--out", s(&key)]);
    assert_eq!(out.status.code(), Some(0));
    let id = SealKey::from_file(&key).unwrap().id();
    assert_eq!(
        stdout(&out),
        format!(
            "wrote a new program key to {} (mode 0600, key id {id}); keep it secret and keep a copy: a program sealed with it opens only with it\n",
            key.display()
        )
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let before = std::fs::read(&key).unwrap();
    let again = env.warden(&["keygen", "--out", s(&key)]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists; not overwriting it"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&key).unwrap(), before);
    assert_eq!(env.warden(&["keygen"]).status.code(), Some(2), "--out is required");
}

#[test]
fn inspect_shows_a_sealed_program() {
    let env = Env::new();
    let (file, key) = env.sealed();
    let out = env.warden(&["inspect", s(&file), "--key-file", s(&key)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let first = lines[0];
    let key_id = SealKey::from_file(&key).unwrap().id();
    assert!(
        first.starts_with(&format!("{}: sealed program (AES-256-GCM, format 1, record ", file.display())),
        "{first}"
    );
    assert!(first.ends_with(&format!(", key id {key_id})")), "{first}");
    let expect = [
        "predictor react: 1 demo",
        "  instructions: Handle customer service requests using available tools.",
        "                You are an Agent. In each episode, you will be given the fields `request` as input. And you can see…",
        "                (+10 more lines)",
        r#"  demo 1: "For customer ABC123 create a support ticket as the bbq gril…" → create_support_ticket({"customer_id":"ABC123","subject":"Defective bbq grill","de…)  [bootstrapped]"#,
        "predictor extract.predict: 2 demos",
        r#"  demo 1: "For customer ABC123 create a support ticket as the bbq gril…" → "I opened ticket T-1001 (high priority) for Sarah Johnson's …"  [bootstrapped]"#,
        r#"  demo 2: "What is the account value of XYZ789?" → "XYZ789's account value is $1,240.00.""#,
        "security config",
        "  compiled:        2026-01-01T00:00:00Z (UTC)",
        "  grant:           customer:read ticket:create",
        "  required scopes: calculate_account_value: account:read",
        "                   create_support_ticket: ticket:create",
        "                   get_customer_info: customer:read",
        "  learned constraints: 1",
        "    - create_support_ticket denied under {customer:read}, missing ticket:create (production, seen 2×)",
        "  optimization:    bootstrap on 8 examples (valset 0), penalty 0.1",
        "    before base 0.500, 3 violations, final 0.350",
        "    after  base 0.875, 0 violations, final 0.875",
    ];
    for want in expect {
        assert!(lines.contains(&want), "missing line {want:?} in\n{text}");
    }
    // ReAct's long instructions are cut to their first lines.
    assert!(!text.contains("(1) calculate_account_value"), "{text}");
}

#[test]
fn inspect_json_and_export_dspy_load_back() {
    let env = Env::new();
    let (file, key) = env.sealed();
    let export = env.path("out/program.json");
    let out = env.warden(&["inspect", s(&file), "--key-file", s(&key), "--json", "--export-dspy", s(&export)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["format"], "sealed");
    assert_eq!(report["compiled_utc"], "2026-01-01T00:00:00Z");
    assert_eq!(report["predictors"][0]["name"], "react");
    assert_eq!(
        report["predictors"][1]["demo_summaries"][1],
        r#""What is the account value of XYZ789?" → "XYZ789's account value is $1,240.00.""#
    );
    assert_eq!(report["security_config"]["learned_constraints"][0]["tool"], "create_support_ticket");
    assert_eq!(stderr(&out), format!("wrote {} (DSPy JSON, 3 demos, no security configuration)\n", export.display()));
    // The export is the program alone, and loads back the same.
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(!text.contains("security_config") && !text.contains("ticket:create"), "{text}");
    let back = load_file(&export, None).unwrap();
    assert_eq!(back.security, None);
    assert_eq!(back.program.predictors, programs::compiled().state().predictors);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&export).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Inspecting the export: DSPy JSON, no key needed.
    let out = env.warden(&["inspect", s(&export)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        format!("{}: DSPy JSON program (not sealed: no security configuration)", export.display())
    );
    assert!(!stdout(&out).lines().any(|l| l == "security config"));
    assert!(stdout(&out).contains("\nmetadata: dspy 3.4.1\n"), "{}", stdout(&out));
}

/// Each way a sealed file fails: exit 1, its own message, nothing on stdout.
#[test]
fn every_failure_is_named_and_loads_nothing() {
    let env = Env::new();
    let (file, key) = env.sealed();
    let good = std::fs::read(&file).unwrap();
    let header_end = good.iter().position(|&b| b == b'\n').unwrap();
    let other_key = env.path("other.key");
    assert_eq!(env.warden(&["keygen", "--out", s(&other_key)]).status.code(), Some(0));

    let case = |name: &str, bytes: Option<Vec<u8>>, key: &Path, want: &str| {
        let p = env.path(name);
        if let Some(b) = bytes {
            std::fs::write(&p, b).unwrap();
        }
        let target = if p.exists() { p } else { file.clone() };
        let out = env.warden(&["inspect", s(&target), "--key-file", s(key)]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{name}: nothing shown");
        assert!(stderr(&out).contains(want), "{name}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("warden: "), "{name}: {}", stderr(&out));
    };
    case("wrong-key", None, &other_key, "was sealed with a different key");
    let flip = |i: usize| {
        let mut b = good.clone();
        b[i] ^= 0x01;
        b
    };
    // In the record id (still hex): caught by the tag over the header.
    let id_at = good.windows(3).position(|w| w == b"id=").unwrap() + 3;
    let mut in_id = good.clone();
    in_id[id_at] = if in_id[id_at] == b'a' { b'b' } else { b'a' };
    case("flipped-header", Some(in_id), &key, "failed authentication: it was changed after it was sealed");
    case("flipped-body", Some(flip(good.len() - 20)), &key, "failed authentication");
    case("flipped-magic", Some(flip(0)), &key, "its first bytes were changed");
    case("truncated", Some(good[..good.len() - 7].to_vec()), &key, "it is truncated");
    case("truncated-header", Some(good[..header_end / 2].to_vec()), &key, "header is damaged or missing");
    let v9 = String::from_utf8_lossy(&good[..=header_end]).replacen("program/1 ", "program/9 ", 1);
    let mut v9 = v9.into_bytes();
    v9.extend_from_slice(&good[header_end + 1..]);
    case("version", Some(v9), &key, "format version 9, which this Warden does not read (it reads version 1)");
    case("empty", Some(Vec::new()), &key, "the file is empty");

    // No key at all: both ways to give one are named.
    let out = env.warden(&["inspect", s(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--key-file FILE, or set WARDEN_PROGRAM_KEY"), "{}", stderr(&out));
    // The key from the environment works.
    let hex = std::fs::read_to_string(&key).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(env.path("state"))
        .args(["inspect", s(&file)])
        .env("WARDEN_PROGRAM_KEY", hex.trim())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = env.warden(&["inspect", s(&file), "--key-file", s(&key)]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(&format!("run `chmod 600 {}`", key.display())), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let (file, key) = env.sealed();
    assert_eq!(env.warden(&["inspect"]).status.code(), Some(2), "FILE is required");
    let out = env.warden(&["inspect", s(&file), "--key-file", s(&key), "--export-dspy", s(&env.path("x.txt"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the name must end in .json"), "{}", stderr(&out));
    assert!(!env.path("x.txt").exists());
    let missing = env.warden(&["inspect", s(&env.path("missing.json"))]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("cannot read the program"), "{}", stderr(&missing));
}
