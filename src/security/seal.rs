//! Sealed files: a JSON payload under AES-256-GCM (aws-lc-rs), behind a one-line header
//! that says what the file is, so `head -1` tells a person and the parser tells a program.
//! Compiled programs and their security configuration are saved this way (the seeds'
//! `_encrypt_state`); the key comes from a private key file or `WARDEN_PROGRAM_KEY`.
//!
//! Layout:
//!
//! ```text
//! warden-sealed-program/1 alg=AES-256-GCM id=<uuid> key=<16 hex> nonce=<24 hex> len=<n>\n
//! <n bytes: ciphertext ‖ 16-byte tag>
//! ```
//!
//! The whole header line is the AEAD's associated data, so the format version and the record
//! id (and everything else in it) are authenticated: a flipped byte anywhere fails closed.
//! `key` is a key id (a truncated HMAC of a fixed label under the key, which says nothing
//! about the key) so a wrong key is told apart from a changed file; `len` tells a truncated
//! file from a tampered one. The payload is only ever parsed as JSON by the caller: nothing
//! in a sealed file is code.
//!
//! May import: `types`, `paths`. Enforced by `tests/layering.rs`.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;

/// The format name: the header's first word is `FORMAT/VERSION`.
pub const FORMAT: &str = "warden-sealed-program";
/// The one format version this Warden writes and reads.
pub const VERSION: u32 = 1;
/// The one algorithm (named as in the header).
pub const ALGORITHM: &str = "AES-256-GCM";
/// The environment variable a key may come from (64 hex digits or base64 of 32 bytes).
pub const KEY_ENV: &str = "WARDEN_PROGRAM_KEY";
/// Key length in bytes.
pub const KEY_LEN: usize = 32;
/// AES-GCM's tag length.
const TAG_LEN: usize = 16;
/// A header is one short line; anything longer is not one (and is not read further).
const MAX_HEADER: usize = 512;

/// A 32-byte program key. No `Display`; `Debug` shows only its key id.
pub struct SealKey {
    bytes: [u8; KEY_LEN],
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("id", &self.id()).finish_non_exhaustive()
    }
}

/// Why a key could not be had. Each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read the program key {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error(
        "the program key {path} is readable by group or others (mode {mode:04o}); a key must be private: run `chmod 600 {path}`"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "{path} is not a program key: expected 64 hex digits, base64 of 32 bytes, or 32 raw bytes; create one with `warden keygen --out FILE`"
    )]
    Malformed { path: PathBuf },
    #[error(
        "{KEY_ENV} is not a program key: expected 64 hex digits or base64 of 32 bytes (e.g. the contents of a file made by `warden keygen`)"
    )]
    MalformedEnv,
    #[error(
        "{path} already exists; not overwriting it (programs sealed with it could no longer be opened): pick another path, or delete it first if it is no longer needed"
    )]
    Exists { path: PathBuf },
    #[error("cannot create the program key {path}: {cause}")]
    Create { path: PathBuf, cause: std::io::Error },
    #[error("no randomness available from the operating system to make a key")]
    Random,
}

/// Why a sealed file did not open. Nothing is ever returned from a file that fails. Each
/// message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error(
        "the file is empty (0 bytes): nothing was sealed in it; write it again (warden optimize --out) or restore a copy"
    )]
    Empty,
    #[error(
        "its sealed-program header is damaged or missing ({0}); the file was changed, cut short, or is not a program file — restore it from a trusted copy or re-create it"
    )]
    BadHeader(String),
    #[error(
        "it is in sealed-program format version {0}, which this Warden does not read (it reads version {VERSION}); open it with the Warden that wrote it, or re-create it"
    )]
    UnsupportedVersion(String),
    #[error(
        "it is sealed with {0}, which this Warden does not support (it uses {ALGORITHM}); re-create it with this Warden"
    )]
    UnsupportedAlgorithm(String),
    #[error(
        "it is truncated: its header announces {expected} bytes of sealed data but {found} follow; copy the file again in full"
    )]
    Truncated { expected: usize, found: usize },
    #[error(
        "it has {extra} bytes after its sealed data; something was appended to it — restore it from a trusted copy or re-create it"
    )]
    TrailingData { extra: usize },
    #[error(
        "it was sealed with a different key (the file's key id is {file}, this key's is {this}); pass the key it was sealed with (--key-file FILE or {KEY_ENV})"
    )]
    WrongKey { file: String, this: String },
    #[error(
        "it failed authentication: it was changed after it was sealed (a flipped byte in its header or body); nothing was loaded — restore it from a trusted copy or re-create it"
    )]
    Tampered,
    #[error("no randomness available from the operating system to seal with")]
    Random,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

impl SealKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| KeyError::Random)?;
        Ok(Self { bytes })
    }

    /// Key text: 64 hex digits, or standard base64 of 32 bytes (surrounding whitespace ignored).
    fn parse_text(text: &str) -> Option<Self> {
        let t = text.trim();
        let bytes = unhex(t).or_else(|| base64::engine::general_purpose::STANDARD.decode(t).ok())?;
        Some(Self { bytes: bytes.try_into().ok()? })
    }

    /// Reads a key file: 64 hex digits (what `warden keygen` writes), base64 of 32 bytes, or
    /// exactly 32 raw bytes. Refuses a file that group or others may read.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let read = |cause| KeyError::Read { path: path.to_path_buf(), cause };
        let meta = std::fs::metadata(path).map_err(read)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen { path: path.to_path_buf(), mode });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let data = std::fs::read(path).map_err(read)?;
        // 32 raw bytes cannot be mistaken for text: a text key is 44 or 64 characters.
        if let Ok(bytes) = <[u8; KEY_LEN]>::try_from(data.as_slice()) {
            return Ok(Self { bytes });
        }
        std::str::from_utf8(&data)
            .ok()
            .and_then(Self::parse_text)
            .ok_or_else(|| KeyError::Malformed { path: path.to_path_buf() })
    }

    /// The key in `WARDEN_PROGRAM_KEY`, if that is set (and not empty).
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        match std::env::var(KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse_text(&v).map(Some).ok_or(KeyError::MalformedEnv),
            _ => Ok(None),
        }
    }

    /// The key id written in a sealed file's header: the first 8 bytes of
    /// HMAC-SHA256(key, label), in hex. It tells keys apart without revealing them.
    pub fn id(&self) -> String {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.bytes);
        hex(&aws_lc_rs::hmac::sign(&k, b"warden-sealed-program key id").as_ref()[..8])
    }

    fn aead(&self) -> LessSafeKey {
        // AES-256 takes exactly KEY_LEN bytes, which the type guarantees.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.bytes).unwrap_or_else(|_| unreachable!("32-byte key")))
    }
}

/// Creates a new key file at `path` (64 hex digits and a newline, mode 0600, created
/// exclusively: an existing file, or a symlink planted there, is never overwritten). A
/// missing parent directory is created private (0700).
pub fn keygen(path: &Path) -> Result<SealKey, KeyError> {
    use std::io::Write;
    let key = SealKey::generate()?;
    let create = |cause| KeyError::Create { path: path.to_path_buf(), cause };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        crate::paths::ensure_private_dir(parent).map_err(create)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists { path: path.to_path_buf() }
        } else {
            create(e)
        }
    })?;
    if let Err(e) = file.write_all(format!("{}\n", hex(&key.bytes)).as_bytes()).and_then(|()| file.sync_all()) {
        drop(file);
        // Half a key is worse than none: the next run would refuse it as malformed.
        let _ = std::fs::remove_file(path);
        return Err(create(e));
    }
    Ok(key)
}

/// The key in `path`, created there first (as `keygen` does) when there is no file yet.
/// `warden optimize --key-file K` uses it so the first optimization needs no extra step.
pub fn ensure_key(path: &Path) -> Result<SealKey, KeyError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match keygen(path) {
            // Another process created it in between: use theirs.
            Err(KeyError::Exists { .. }) => SealKey::from_file(path),
            other => other,
        },
        _ => SealKey::from_file(path),
    }
}

/// A sealed file's header, as read (authenticated only once the body opens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub record_id: uuid::Uuid,
    /// The id of the key it was sealed with.
    pub key_id: String,
    nonce: [u8; NONCE_LEN],
    len: usize,
}

/// What opened: the record id from the (now authenticated) header, and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    pub record_id: uuid::Uuid,
    pub payload: Vec<u8>,
}

/// Whether `data` claims to be a sealed file (begins with the format name). A damaged
/// claim still counts: `unseal` then says what is wrong with it.
pub fn looks_sealed(data: &[u8]) -> bool {
    data.starts_with(FORMAT.as_bytes())
}

fn header_line(h: &Header) -> String {
    format!(
        "{FORMAT}/{} alg={ALGORITHM} id={} key={} nonce={} len={}\n",
        h.version,
        h.record_id.hyphenated(),
        h.key_id,
        hex(&h.nonce),
        h.len
    )
}

/// Seals `payload` under `key` with a fresh record id and nonce.
pub fn seal(key: &SealKey, payload: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Random)?;
    let header = Header {
        version: VERSION,
        record_id: uuid::Uuid::new_v4(),
        key_id: key.id(),
        nonce,
        len: payload.len() + TAG_LEN,
    };
    let line = header_line(&header);
    let mut body = payload.to_vec();
    key.aead()
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(line.as_bytes()), &mut body)
        .map_err(|_| SealError::Random)?;
    let mut out = line.into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reads the header line of a sealed file (without the key), and where the body starts.
pub fn read_header(data: &[u8]) -> Result<(Header, usize), SealError> {
    if data.is_empty() {
        return Err(SealError::Empty);
    }
    let end = data.iter().take(MAX_HEADER).position(|&b| b == b'\n').ok_or_else(|| {
        SealError::BadHeader(
            if data.len() < MAX_HEADER { "it ends before the header line does" } else { "no header line" }.into(),
        )
    })?;
    let line = std::str::from_utf8(&data[..end]).map_err(|_| SealError::BadHeader("not text".into()))?;
    let bad = |what: &str| SealError::BadHeader(what.to_string());
    let mut words = line.split(' ');
    let first = words.next().unwrap_or_default();
    let version = first
        .strip_prefix(FORMAT)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| bad(&format!("it does not begin with `{FORMAT}/`")))?;
    if version != VERSION.to_string() {
        return Err(SealError::UnsupportedVersion(version.chars().take(16).collect()));
    }
    let mut field = |name: &str| -> Result<&str, SealError> {
        words
            .next()
            .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| bad(&format!("no valid `{name}=` field")))
    };
    let alg = field("alg")?;
    if alg != ALGORITHM {
        return Err(SealError::UnsupportedAlgorithm(alg.chars().take(32).collect()));
    }
    let id = field("id")?;
    let record_id = uuid::Uuid::try_parse(id)
        .ok()
        .filter(|u| u.hyphenated().to_string() == id)
        .ok_or_else(|| bad("the record id is not a UUID"))?;
    let key_id = field("key")?;
    if key_id.len() != 16 || unhex(key_id).is_none() || key_id.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("the key id is not 16 hex digits"));
    }
    let nonce: [u8; NONCE_LEN] = field("nonce")
        .ok()
        .and_then(|n| unhex(n).filter(|_| !n.bytes().any(|b| b.is_ascii_uppercase())))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the nonce is not 24 hex digits"))?;
    let len_text = field("len")?;
    let len: usize = len_text
        .parse()
        .ok()
        .filter(|n: &usize| *n >= TAG_LEN && n.to_string() == len_text)
        .ok_or_else(|| bad("the length is not a number of bytes"))?;
    let header = Header { version: VERSION, record_id, key_id: key_id.to_string(), nonce, len };
    // The exact canonical line, or it is not one we wrote (extra spaces, fields, case).
    if words.next().is_some() || header_line(&header).as_bytes() != &data[..=end] {
        return Err(bad("unexpected text in it"));
    }
    Ok((header, end + 1))
}

/// Opens a sealed file with `key`. Fails closed: any error means nothing was read.
pub fn unseal(key: &SealKey, data: &[u8]) -> Result<Unsealed, SealError> {
    let (header, start) = read_header(data)?;
    let body = &data[start..];
    if body.len() < header.len {
        return Err(SealError::Truncated { expected: header.len, found: body.len() });
    }
    if body.len() > header.len {
        return Err(SealError::TrailingData { extra: body.len() - header.len });
    }
    let this = key.id();
    if header.key_id != this {
        return Err(SealError::WrongKey { file: header.key_id, this });
    }
    let mut buf = body.to_vec();
    let plain = key
        .aead()
        .open_in_place(Nonce::assume_unique_for_key(header.nonce), Aad::from(&data[..start]), &mut buf)
        .map_err(|_| SealError::Tampered)?;
    Ok(Unsealed { record_id: header.record_id, payload: plain.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn round_trip_and_a_readable_header() {
        let sealed = seal(&key(1), br#"{"a":1}"#).unwrap();
        let first = std::str::from_utf8(&sealed[..sealed.iter().position(|&b| b == b'\n').unwrap()]).unwrap();
        assert!(first.starts_with("warden-sealed-program/1 alg=AES-256-GCM id="), "{first}");
        assert!(first.contains(&format!(" key={} nonce=", key(1).id())), "{first}");
        assert!(first.ends_with(" len=23"), "7 bytes and the tag: {first}");
        let out = unseal(&key(1), &sealed).unwrap();
        assert_eq!(out.payload, br#"{"a":1}"#);
        assert_eq!(read_header(&sealed).unwrap().0.record_id, out.record_id);
        // A fresh record id and nonce each time.
        let again = seal(&key(1), br#"{"a":1}"#).unwrap();
        assert_ne!(read_header(&again).unwrap().0.record_id, out.record_id);
        assert_ne!(again, sealed);
    }

    #[test]
    fn a_wrong_key_is_named_as_such() {
        let sealed = seal(&key(1), b"{}").unwrap();
        match unseal(&key(2), &sealed) {
            Err(SealError::WrongKey { file, this }) => {
                assert_eq!(file, key(1).id());
                assert_eq!(this, key(2).id());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Every byte of the file, header included, is covered: flipping any one fails.
    #[test]
    fn a_flipped_byte_anywhere_fails_closed() {
        let sealed = seal(&key(1), br#"{"program":{}}"#).unwrap();
        let header_end = sealed.iter().position(|&b| b == b'\n').unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                let err = unseal(&key(1), &bad).expect_err("a flipped byte must fail");
                if i > header_end {
                    assert_eq!(err, SealError::Tampered, "body byte {i}");
                }
            }
        }
        // A flip in the record id that still reads as a UUID is caught by the tag.
        let id_at = sealed.windows(3).position(|w| w == b"id=").unwrap() + 3;
        let mut bad = sealed.clone();
        bad[id_at] = if bad[id_at] == b'a' { b'b' } else { b'a' };
        assert_eq!(unseal(&key(1), &bad), Err(SealError::Tampered));
        // So is one in the nonce.
        let n_at = sealed.windows(6).position(|w| w == b"nonce=").unwrap() + 6;
        let mut bad = sealed.clone();
        bad[n_at] = if bad[n_at] == b'0' { b'1' } else { b'0' };
        assert_eq!(unseal(&key(1), &bad), Err(SealError::Tampered));
    }

    #[test]
    fn truncated_empty_appended_and_other_versions_are_told_apart() {
        let sealed = seal(&key(1), br#"{"x":"yyyy"}"#).unwrap();
        assert_eq!(unseal(&key(1), b""), Err(SealError::Empty));
        let cut = &sealed[..sealed.len() - 5];
        assert_eq!(unseal(&key(1), cut), Err(SealError::Truncated { expected: 12 + 16, found: 12 + 16 - 5 }));
        assert!(matches!(unseal(&key(1), &sealed[..20]), Err(SealError::BadHeader(_))));
        let mut more = sealed.clone();
        more.extend_from_slice(b"xx");
        assert_eq!(unseal(&key(1), &more), Err(SealError::TrailingData { extra: 2 }));
        let v2 = String::from_utf8_lossy(&sealed).replacen("warden-sealed-program/1 ", "warden-sealed-program/2 ", 1);
        let e = unseal(&key(1), v2.as_bytes()).unwrap_err();
        assert_eq!(e, SealError::UnsupportedVersion("2".into()));
        assert!(e.to_string().contains("version 2, which this Warden does not read (it reads version 1)"), "{e}");
        let alg = String::from_utf8_lossy(&sealed).replacen("AES-256-GCM", "AES-128-GCM", 1);
        assert_eq!(unseal(&key(1), alg.as_bytes()), Err(SealError::UnsupportedAlgorithm("AES-128-GCM".into())));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_hex_base64_raw_and_too_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys/program.key");
        let made = keygen(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.len(), 65, "64 hex digits and a newline");
        assert_eq!(SealKey::from_file(&p).unwrap().id(), made.id());
        assert!(matches!(keygen(&p), Err(KeyError::Exists { .. })));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text, "not overwritten");
        assert_eq!(ensure_key(&p).unwrap().id(), made.id(), "an existing key is used");
        let fresh = dir.path().join("fresh.key");
        let created = ensure_key(&fresh).unwrap();
        assert_eq!(SealKey::from_file(&fresh).unwrap().id(), created.id());

        let b64 = dir.path().join("b64.key");
        crate::paths::write_private(&b64, base64::engine::general_purpose::STANDARD.encode([7u8; 32]).as_bytes())
            .unwrap();
        assert_eq!(SealKey::from_file(&b64).unwrap().id(), key(7).id());
        let raw = dir.path().join("raw.key");
        crate::paths::write_private(&raw, &[9u8; 32]).unwrap();
        assert_eq!(SealKey::from_file(&raw).unwrap().id(), key(9).id());
        let short = dir.path().join("short.key");
        crate::paths::write_private(&short, b"abcd\n").unwrap();
        let e = SealKey::from_file(&short).unwrap_err();
        assert!(e.to_string().contains("warden keygen --out FILE"), "{e}");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = SealKey::from_file(&p).unwrap_err();
        assert!(matches!(e, KeyError::TooOpen { mode: 0o640, .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("chmod 600 {}", p.display())), "{e}");
    }

    #[test]
    fn the_key_id_does_not_reveal_the_key_and_debug_shows_only_it() {
        let k = key(0xab);
        assert_eq!(k.id().len(), 16);
        assert!(!k.id().contains("abab"));
        assert_eq!(format!("{k:?}"), format!("SealKey {{ id: {:?}, .. }}", k.id()));
    }
}
