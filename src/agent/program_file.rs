//! Program files on disk: sealed (the program and its security configuration, the seeds'
//! `agent_state`, under `security::seal`) or plain DSPy JSON (the program alone, for
//! Python's `program.load(path)`). `load_file` tells them apart by their first bytes: a
//! sealed file begins with its format name, DSPy JSON with `{`.
//!
//! The sealed payload is the seeds' `agent_state`, as JSON:
//! `{"program": <DSPy JSON>, "security_config": <SecurityConfig>, "timestamp": <unix s>}`.
//! It is only ever parsed as JSON (never code), and only after the seal opened.

use std::path::Path;

use serde_json::{Value, json};

use super::program::{ProgramFile, ProgramFileError, ProgramState, SecurityConfig};
use crate::security::seal::{self, SealKey};

/// What a sealed file's (authenticated) header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedInfo {
    pub record_id: uuid::Uuid,
    pub key_id: String,
}

/// A loaded program file, with its seal when it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedProgram {
    pub file: ProgramFile,
    /// `None` for plain DSPy JSON.
    pub sealed: Option<SealedInfo>,
}

impl ProgramFile {
    /// The seeds' `agent_state`: the program in DSPy's JSON, the security configuration and
    /// when it was compiled.
    pub fn agent_state(&self) -> Value {
        let timestamp = self.security.as_ref().map(|s| s.timestamp).unwrap_or_else(crate::types::time::now_epoch);
        json!({
            "program": self.program.to_dspy_json(),
            "security_config": self.security,
            "timestamp": timestamp,
        })
    }

    /// Writes the program and its security configuration sealed under `key` (0600).
    pub fn save_sealed(&self, path: &Path, key: &SealKey) -> Result<(), ProgramFileError> {
        let shown = path.display().to_string();
        let payload = serde_json::to_vec(&self.agent_state())
            .map_err(|e| ProgramFileError::Parse { path: shown.clone(), message: e.to_string() })?;
        let sealed =
            seal::seal(key, &payload).map_err(|cause| ProgramFileError::Sealed { path: shown.clone(), cause })?;
        crate::paths::write_private(path, &sealed).map_err(|cause| ProgramFileError::Write { path: shown, cause })
    }

    /// Writes the program alone as DSPy's saved-state JSON (0600): no security
    /// configuration, no secrets, no endpoints. Python loads it with `program.load(path)`
    /// (DSPy wants the name to end in `.json`).
    pub fn save_dspy_json(&self, path: &Path) -> Result<(), ProgramFileError> {
        crate::paths::write_private(path, dspy_json_text(&self.program).as_bytes())
            .map_err(|cause| ProgramFileError::Write { path: path.display().to_string(), cause })
    }
}

/// DSPy JSON as Warden writes it: two-space indentation and a final newline, as DSPy's own
/// `save` (orjson `OPT_INDENT_2 | OPT_APPEND_NEWLINE`) does.
pub fn dspy_json_text(program: &ProgramState) -> String {
    let mut text = serde_json::to_string_pretty(&program.to_dspy_json()).unwrap_or_default();
    text.push('\n');
    text
}

/// The key for a sealed file: `key_file`, else `WARDEN_PROGRAM_KEY`, else an error naming both.
pub fn resolve_key(path: &Path, key_file: Option<&Path>) -> Result<SealKey, ProgramFileError> {
    if let Some(k) = key_file {
        return SealKey::from_file(k).map_err(|cause| ProgramFileError::Key { cause });
    }
    SealKey::from_env()
        .map_err(|cause| ProgramFileError::Key { cause })?
        .ok_or_else(|| ProgramFileError::NoKey { path: path.display().to_string() })
}

/// Loads a program file (see `program::load_file`), saying whether it was sealed.
pub fn load(path: &Path, key_file: Option<&Path>) -> Result<LoadedProgram, ProgramFileError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| ProgramFileError::Read { path: shown.clone(), source })?;
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        let v: Value = serde_json::from_slice(&data)
            .map_err(|e| ProgramFileError::Parse { path: shown.clone(), message: e.to_string() })?;
        let program =
            ProgramState::from_dspy_json(&v).map_err(|source| ProgramFileError::Program { path: shown, source })?;
        return Ok(LoadedProgram { file: ProgramFile { program, security: None }, sealed: None });
    }
    // A sealed file: the header is checked before a key is asked for, so a damaged or
    // foreign file is reported as such even without one.
    let sealed = |cause| ProgramFileError::Sealed { path: shown.clone(), cause };
    if !data.is_empty() && !seal::looks_sealed(&data) {
        return Err(ProgramFileError::Parse {
            path: shown,
            message: format!(
                "it begins neither with `{{` (DSPy JSON) nor with `{}/` (a sealed program); if it was a sealed program, its first bytes were changed — restore it from a trusted copy",
                seal::FORMAT
            ),
        });
    }
    seal::read_header(&data).map_err(sealed)?;
    let key = resolve_key(path, key_file)?;
    let opened = seal::unseal(&key, &data).map_err(sealed)?;
    let bad = |what: &str| ProgramFileError::Parse {
        path: shown.clone(),
        message: format!("its seal opened but {what}; it was written by an incompatible Warden — re-create it"),
    };
    let state: Value = serde_json::from_slice(&opened.payload).map_err(|_| bad("its contents are not JSON"))?;
    let program = state.get("program").ok_or_else(|| bad("it holds no `program`"))?;
    let program = ProgramState::from_dspy_json(program)
        .map_err(|source| ProgramFileError::Program { path: shown.clone(), source })?;
    let security = match state.get("security_config") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<SecurityConfig>(v.clone())
                .map_err(|e| bad(&format!("its security_config does not read ({e})")))?,
        ),
    };
    Ok(LoadedProgram {
        file: ProgramFile { program, security },
        sealed: Some(SealedInfo { record_id: opened.record_id, key_id: key.id() }),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Map;

    use super::*;
    use crate::agent::program::{EXTRACT, LearnedConstraint, PredictorState, load_file};
    use crate::agent::signature::Signature;
    use crate::types::scope::ScopeSet;

    fn file() -> ProgramFile {
        let mut demo = Map::new();
        demo.insert("request".into(), json!("Look up ABC123"));
        demo.insert("response".into(), json!("Sarah Johnson, gold tier."));
        let grant: ScopeSet = ScopeSet::parse("customer:read").unwrap();
        ProgramFile {
            program: ProgramState {
                predictors: vec![(EXTRACT.into(), PredictorState::of(&Signature::customer_service(), &[demo]))],
                dependency_versions: BTreeMap::new(),
            },
            security: Some(SecurityConfig {
                grant: grant.clone(),
                required_scopes: [("get_customer_info".to_string(), grant.clone())].into(),
                learned_constraints: vec![LearnedConstraint {
                    tool: "create_support_ticket".into(),
                    grant,
                    missing: ScopeSet::parse("ticket:create").unwrap(),
                    kind: "denied".into(),
                    source: "production".into(),
                    count: 2,
                    request: None,
                }],
                timestamp: 1_767_225_600,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn sealed_round_trip_keeps_program_and_security_config() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("program.key");
        let key = seal::keygen(&key_path).unwrap();
        let p = dir.path().join("prog.sealed");
        let f = file();
        f.save_sealed(&p, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let loaded = load(&p, Some(&key_path)).unwrap();
        assert_eq!(loaded.file.program.predictors, f.program.predictors);
        assert_eq!(loaded.file.security, f.security);
        assert_eq!(loaded.sealed.unwrap().key_id, key.id());
        assert_eq!(load_file(&p, Some(&key_path)).unwrap().security, f.security);
        // Nothing readable in the sealed bytes.
        let raw = std::fs::read(&p).unwrap();
        assert!(!raw.windows(13).any(|w| w == b"Sarah Johnson"));
    }

    #[test]
    fn dspy_json_has_no_security_config_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prog.json");
        file().save_dspy_json(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("customer:read") && !text.contains("security_config"), "{text}");
        assert!(text.ends_with("}\n"));
        let loaded = load(&p, None).unwrap();
        assert_eq!(loaded.sealed, None);
        assert_eq!(loaded.file.security, None);
        assert_eq!(loaded.file.program.predictors, file().program.predictors);
    }

    #[test]
    fn a_sealed_file_without_a_key_names_both_ways_to_give_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prog.sealed");
        file().save_sealed(&p, &SealKey::from_bytes([3; 32])).unwrap();
        // Only this test's process reads the variable here; it is never set in these tests.
        if std::env::var_os(seal::KEY_ENV).is_none() {
            let e = load(&p, None).unwrap_err().to_string();
            assert!(e.contains("--key-file") && e.contains("WARDEN_PROGRAM_KEY"), "{e}");
        }
        let wrong = dir.path().join("wrong.key");
        seal::keygen(&wrong).unwrap();
        let e = load(&p, Some(&wrong)).unwrap_err().to_string();
        assert!(e.contains("sealed with a different key"), "{e}");
    }
}
