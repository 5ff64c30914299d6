//! TLS for Warden's servers and clients.
//!
//! `DevPki` is the development CA and a leaf certificate for `localhost`, `127.0.0.1` and
//! `::1`, generated with rcgen on first start and kept in `STATE/tls/` so that clients can
//! trust `STATE/tls/ca.pem` across restarts. Real deployments point `[tls]` in the config
//! at their own certificate and key instead. Client side, `http_client` builds the reqwest
//! client that trusts a configured CA (and `SSL_CERT_FILE`) and refuses anything else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::paths::write_private;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("could not read {path}: {cause}")]
    Read { path: PathBuf, cause: std::io::Error },
    #[error("could not write {path}: {cause}")]
    Write { path: PathBuf, cause: std::io::Error },
    #[error("no PEM certificate found in {0}")]
    NoCertificate(PathBuf),
    #[error("no PEM private key found in {0}")]
    NoKey(PathBuf),
    #[error("certificate generation failed: {0}")]
    Generate(rcgen::Error),
    #[error("TLS configuration rejected the certificate or key: {0}")]
    Rustls(rustls::Error),
    #[error("could not build the HTTPS client: {0}")]
    Client(String),
}

// Each TlsError's message already quotes its cause, so the cause is not also its
// `source()` (an error chain printed in full would say it twice); hence no `#[from]`.
impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        Self::Generate(e)
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}

/// Certificate chain and key a server presents, as PEM text.
pub struct ServerIdentity {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

/// Paths of the development PKI inside the state directory.
pub struct DevPki {
    dir: PathBuf,
}

/// Leaf certificates live for a year; they are regenerated when less than 30 days remain.
const LEAF_DAYS: i64 = 365;
const CA_DAYS: i64 = 3650;
const RENEW_BEFORE_SECS: u64 = 30 * 86_400;

impl DevPki {
    pub fn new(state_dir: &Path) -> Self {
        Self { dir: state_dir.join("tls") }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Loads the dev CA and server leaf, generating whatever is missing or about to expire.
    pub fn ensure(&self) -> Result<ServerIdentity, TlsError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|source| TlsError::Write { path: self.dir.clone(), cause: source })?;
        let ca_key = self.load_or_create_ca()?;
        let leaf_ok = self.path("server.pem").exists()
            && self.path("server.key").exists()
            && self.expiry("server.expires") > crate::types::time::now_epoch() + RENEW_BEFORE_SECS;
        if !leaf_ok {
            self.issue_leaf(&ca_key)?;
        }
        Ok(ServerIdentity { cert_chain_pem: read(&self.path("server.pem"))?, key_pem: read(&self.path("server.key"))? })
    }

    fn expiry(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.path(name)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    fn load_or_create_ca(&self) -> Result<(CertificateParams, KeyPair), TlsError> {
        let params = ca_params()?;
        let key_path = self.path("ca.key");
        let ca_valid = self.ca_path().exists()
            && key_path.exists()
            && self.expiry("ca.expires") > crate::types::time::now_epoch() + RENEW_BEFORE_SECS;
        if ca_valid {
            let key = KeyPair::from_pem(&read(&key_path)?)?;
            // The issuer only needs the CA's name and key to sign a leaf; the stored
            // certificate stays the trust anchor clients already have.
            return Ok((params, key));
        }
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(|source| TlsError::Write { path: key_path.clone(), cause: source })?;
        write_file(&self.ca_path(), cert.pem().as_bytes())?;
        write_file(&self.path("ca.expires"), expiry_after(CA_DAYS).as_bytes())?;
        // A new CA invalidates any old leaf.
        let _ = std::fs::remove_file(self.path("server.expires"));
        Ok((params, key))
    }

    fn issue_leaf(&self, ca: &(CertificateParams, KeyPair)) -> Result<(), TlsError> {
        let issuer = rcgen::Issuer::from_params(&ca.0, &ca.1);
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])?;
        params.distinguished_name.push(DnType::CommonName, "warden dev server");
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(LEAF_DAYS);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let key_path = self.path("server.key");
        write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(|source| TlsError::Write { path: key_path, cause: source })?;
        write_file(&self.path("server.pem"), cert.pem().as_bytes())?;
        write_file(&self.path("server.expires"), expiry_after(LEAF_DAYS).as_bytes())?;
        Ok(())
    }
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "Warden development CA");
    params.distinguished_name.push(DnType::OrganizationName, "Warden");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(CA_DAYS);
    Ok(params)
}

fn expiry_after(days: i64) -> String {
    (crate::types::time::now_epoch() + days as u64 * 86_400).to_string()
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), cause: source })
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    std::fs::write(path, data).map_err(|source| TlsError::Write { path: path.to_path_buf(), cause: source })
}

impl ServerIdentity {
    /// Loads a configured certificate chain and key (PEM files).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self { cert_chain_pem: read(cert)?, key_pem: read(key)? })
    }

    /// A rustls server config offering HTTP/2 and HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes()).filter_map(Result::ok).collect();
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(PathBuf::from("server certificate")));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| TlsError::NoKey(PathBuf::from("server key")))?;
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// How an HTTPS client decides whom to trust.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// Extra CA bundle (PEM). Trusted in addition to system roots unless `ca_only`.
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file` (and `SSL_CERT_FILE`), not the system roots.
    pub ca_only: bool,
}

/// Builds the reqwest client every Warden component uses for HTTPS: rustls with
/// aws-lc-rs, the configured CA (plus `SSL_CERT_FILE` when set), timeouts on connect and on
/// the whole request, and no redirects (a token endpoint that redirects is misconfigured).
pub fn http_client(tls: &ClientTls, timeout: Duration) -> Result<reqwest::Client, TlsError> {
    builder(tls, timeout)?.build().map_err(|e| TlsError::Client(e.to_string()))
}

/// The client for MCP sessions: as [`http_client`], but HTTP/1.1 with a keep-alive pool.
/// MCP calls are small request/response pairs; over HTTP/1.1 each concurrent call gets
/// its own pooled connection and costs both ends about 15% less CPU than multiplexing
/// them over one HTTP/2 connection (measured with `cargo bench --bench service`).
pub fn mcp_http_client(tls: &ClientTls, timeout: Duration) -> Result<reqwest::Client, TlsError> {
    builder(tls, timeout)?.http1_only().build().map_err(|e| TlsError::Client(e.to_string()))
}

fn builder(tls: &ClientTls, timeout: Duration) -> Result<reqwest::ClientBuilder, TlsError> {
    let mut extra = Vec::new();
    let env_file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    for path in tls.ca_file.iter().chain(env_file.iter()) {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read { path: path.clone(), cause: source })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| TlsError::NoCertificate(path.clone()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.clone()));
        }
        extra.extend(certs);
    }
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")));
    Ok(if tls.ca_only && !extra.is_empty() { builder.tls_certs_only(extra) } else { builder.tls_certs_merge(extra) })
}

impl ClientTls {
    /// Every CA file this client trusts besides the system roots: `ca_file`, then
    /// `SSL_CERT_FILE` (the order `builder` loads them in).
    pub fn ca_files(&self) -> Vec<PathBuf> {
        self.ca_file.iter().cloned().chain(std::env::var_os("SSL_CERT_FILE").map(PathBuf::from)).collect()
    }

    /// The CA files, each with where it came from: "/x/ca.pem (ca_file) and /y.pem (SSL_CERT_FILE)".
    fn ca_files_named(&self) -> String {
        let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let named: Vec<String> = self
            .ca_file
            .iter()
            .map(|p| format!("{} (ca_file)", p.display()))
            .chain(env.iter().map(|p| format!("{} (SSL_CERT_FILE)", p.display())))
            .collect();
        named.join(" and ")
    }
}

/// Why an HTTPS request failed, in words a user can act on. Judged from the error's source
/// chain (the OS error kind, rustls' certificate error), so no library's type names or
/// internal layers ("client error (Connect)") reach the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetFailure {
    /// Nothing listens at that address.
    Refused,
    /// The certificate chains to no CA this client trusts.
    UntrustedCert,
    /// The certificate names a trusted CA as its issuer but that CA did not sign it: it
    /// comes from another CA with the same name (another `warden serve`'s dev CA).
    WrongCa,
    /// Another certificate problem (expired, issued for another host name, …), in rustls'
    /// words.
    BadCert(String),
    Timeout,
    /// Anything else (DNS, reset, …): the innermost cause's own message.
    Other(String),
}

impl NetFailure {
    pub fn of(e: &reqwest::Error) -> Self {
        let mut innermost = e.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(tls) = err.downcast_ref::<rustls::Error>() {
                return Self::of_rustls(tls);
            }
            // io::Error does not report the error it wraps as its source, and the TLS stream
            // wraps rustls' error in one io::Error inside another: look inside by hand.
            let mut io = err.downcast_ref::<std::io::Error>();
            while let Some(e) = io {
                match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => return Self::Refused,
                    std::io::ErrorKind::TimedOut => return Self::Timeout,
                    _ => {}
                }
                let inner = e.get_ref();
                if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return Self::of_rustls(tls);
                }
                io = inner.and_then(|i| i.downcast_ref::<std::io::Error>());
            }
            innermost = err.to_string();
            cur = err.source();
        }
        if e.is_timeout() { Self::Timeout } else { Self::Other(innermost) }
    }

    fn of_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer) => Self::UntrustedCert,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature) => Self::WrongCa,
            rustls::Error::InvalidCertificate(c) => Self::BadCert(c.to_string()),
            other => Self::Other(other.to_string()),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Self::UntrustedCert | Self::WrongCa | Self::BadCert(_))
    }

    /// What to do about it, for a client that trusts `tls` and was talking to a Warden
    /// server or one like it.
    pub fn next_step(&self, tls: &ClientTls) -> String {
        let files = tls.ca_files();
        let named = tls.ca_files_named();
        match self {
            Self::Refused => "is `warden serve` running? (and is the address in the config right?)".into(),
            Self::UntrustedCert if files.is_empty() => {
                "set `ca_file` in [client] to the CA certificate that signed it \
                 (for `warden serve`: STATE/tls/ca.pem), or point SSL_CERT_FILE at it"
                    .into()
            }
            Self::UntrustedCert => format!(
                "it is not signed by the CA in {named}: point `ca_file` in [client] (or SSL_CERT_FILE) at the CA \
                 certificate that signed it (for `warden serve`: STATE/tls/ca.pem)"
            ),
            Self::WrongCa => format!(
                "it was signed by a different CA than the one in {}: point `ca_file` in [client] (or SSL_CERT_FILE) \
                 at this server's CA (for `warden serve`: its own STATE/tls/ca.pem)",
                if named.is_empty() { "the system trust store".to_string() } else { named }
            ),
            Self::BadCert(_) => "check that the URL names the host the server's certificate was issued for".into(),
            Self::Timeout => {
                "the server did not answer in time: check the address, or raise `timeout_secs` in [client]".into()
            }
            Self::Other(_) => "check the URL and the network".into(),
        }
    }
}

impl std::fmt::Display for NetFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::UntrustedCert => f.write_str("certificate not trusted (signed by a CA this client does not trust)"),
            Self::WrongCa => f.write_str("certificate not trusted (signed by a different CA with the same name)"),
            Self::BadCert(why) => write!(f, "certificate rejected ({why})"),
            Self::Timeout => f.write_str("timed out"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// A failed request in plain words (see [`NetFailure`]); reqwest's own message ("error
/// sending request for url (…): client error (Connect): …") tells a user little.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    NetFailure::of(e).to_string()
}
