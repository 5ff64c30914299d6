//! Client authentication at the token endpoint (RFC 6749 §2.3, OAuth 2.1 §2.4):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2, a signed
//! assertion from a PEM key) and `none` (a public client: its `client_id` in the form only).
//!
//! Which one is used is decided once, by `choose`, from what the client has (a secret, a
//! key, neither), what the config asks for (`[client] auth_method`), and what the
//! authorization server lists in `token_endpoint_auth_methods_supported`. The token manager
//! (`auth::token`) then calls `ClientAuthenticator::apply` on every token and
//! introspection request. The secret and the key never leave this module except on the
//! wire to the token endpoint: neither is `Debug`-printed, and errors name the file or the
//! method, never the material.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::types::secret::Secret;

/// How long an assertion is valid. RFC 7523 §3 wants a short expiry; one minute covers
/// clock skew and a slow token endpoint without making a captured assertion useful later
/// (and each carries a unique `jti` the server may remember).
pub const ASSERTION_LIFETIME_SECS: u64 = 60;

/// RFC 7523 §2.2.
pub const JWT_BEARER_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token endpoint authentication method (the IANA names of RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// A public client: no credential, only `client_id`.
    None,
}

impl Method {
    /// The registered name, as metadata lists it and as errors say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }

    /// A method named in the config: the registered names, plus `basic` and `post` (the
    /// short forms earlier Warden configs use).
    pub fn parse(name: &str) -> Result<Self, ClientAuthError> {
        match name {
            "basic" | "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "post" | "client_secret_post" => Ok(Self::ClientSecretPost),
            "private_key_jwt" => Ok(Self::PrivateKeyJwt),
            "none" => Ok(Self::None),
            other => Err(ClientAuthError::UnknownMethod(other.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthError {
    #[error(
        "unknown auth_method {0:?}: use \"client_secret_basic\" (or \"basic\"), \"client_secret_post\" (or \"post\"), \"private_key_jwt\" or \"none\""
    )]
    UnknownMethod(String),
    #[error(
        "auth_method = \"{method}\", but the authorization server accepts only {offered} at its token endpoint; set auth_method to one of those, or remove it to let Warden choose"
    )]
    NotOffered { method: &'static str, offered: String },
    #[error("auth_method = \"{method}\" needs {needs}: set {how}")]
    MissingCredential { method: &'static str, needs: &'static str, how: &'static str },
    /// No secret, no key, and the server does not take public clients. Starts as the
    /// message did before key files existed: people search for it.
    #[error(
        "no client secret: set client_secret, or client_secret_env to the name of an environment variable that holds it (--client-secret-env VAR), or client_key to a PEM private key for private_key_jwt (--client-key PEM_FILE){}",
        offered.as_deref().map(|o| format!("; the authorization server accepts {o}")).unwrap_or_default()
    )]
    NoCredentials { offered: Option<String> },
    /// The client has a credential, but not one of a kind the server accepts.
    #[error(
        "the authorization server accepts {offered} at its token endpoint, and this client has {have}: configure a credential it accepts (client_secret_env / --client-secret-env for client_secret_*, client_key / --client-key for private_key_jwt)"
    )]
    NothingFits { offered: String, have: &'static str },
    #[error(
        "cannot use the client key {}: {reason}; it must be a PEM private key (PKCS#8 or SEC1 EC P-256 for ES256, P-384 for ES384, RSA for RS256), e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`",
        path.display()
    )]
    Key { path: PathBuf, reason: String },
    #[error("could not sign the client assertion with {}: {reason}", path.display())]
    Sign { path: PathBuf, reason: String },
}

/// A private key for `private_key_jwt`, loaded from a PEM file and checked by signing once.
pub struct SigningKey {
    key: EncodingKey,
    alg: Algorithm,
    /// Named in errors (never the key).
    path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("alg", &self.alg).field("path", &self.path).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads the PEM key at `path`. `alg` (`ES256`, `ES384`, `RS256`) pins the algorithm;
    /// without it an EC key signs ES256 and an RSA key RS256 (what authorization servers
    /// most often list in `token_endpoint_auth_signing_alg_values_supported`).
    pub fn load(path: &Path, alg: Option<&str>) -> Result<Self, ClientAuthError> {
        let key_err = |reason: String| ClientAuthError::Key { path: path.to_path_buf(), reason };
        let pem = std::fs::read(path).map_err(|e| key_err(format!("cannot read it ({e})")))?;
        Self::from_pem(&pem, alg, path)
    }

    /// `load` for a PEM already in memory; `origin` is what errors call it.
    pub fn from_pem(pem: &[u8], alg: Option<&str>, origin: &Path) -> Result<Self, ClientAuthError> {
        let key_err = |reason: String| ClientAuthError::Key { path: origin.to_path_buf(), reason };
        let wanted = match alg {
            None => None,
            Some("ES256") => Some(Algorithm::ES256),
            Some("ES384") => Some(Algorithm::ES384),
            Some("RS256") => Some(Algorithm::RS256),
            Some(other) => return Err(key_err(format!("client_key_alg {other:?} is not one of ES256, ES384, RS256"))),
        };
        let ec = EncodingKey::from_ec_pem(pem);
        let rsa = EncodingKey::from_rsa_pem(pem);
        let (key, alg) = match (wanted, ec, rsa) {
            (Some(a @ (Algorithm::ES256 | Algorithm::ES384)), Ok(k), _) => (k, a),
            (Some(Algorithm::RS256), _, Ok(k)) => (k, Algorithm::RS256),
            (Some(a), _, _) => return Err(key_err(format!("it is not a key for {a:?}"))),
            (None, Ok(k), _) => (k, Algorithm::ES256),
            (None, _, Ok(k)) => (k, Algorithm::RS256),
            (None, Err(e), Err(_)) => return Err(key_err(format!("it is not a PEM EC or RSA private key ({e})"))),
        };
        let key = Self { key, alg, path: origin.to_path_buf() };
        // A P-384 key asked to sign ES256 (or a damaged key) fails only when it signs: find
        // out now, while the error can still name the file, not at the first token request.
        key.sign(&AssertionClaims::new("check", "check", 0)).map_err(|e| match e {
            ClientAuthError::Sign { reason, .. } => key_err(format!("it cannot sign {:?} ({reason})", key.alg)),
            e => e,
        })?;
        Ok(key)
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    fn sign(&self, claims: &AssertionClaims) -> Result<String, ClientAuthError> {
        jsonwebtoken::encode(&Header::new(self.alg), claims, &self.key)
            .map_err(|e| ClientAuthError::Sign { path: self.path.clone(), reason: e.to_string() })
    }
}

/// RFC 7523 §3 claims of a client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

impl AssertionClaims {
    /// Claims for `client_id` authenticating to the authorization server `audience` at `now`.
    pub fn new(client_id: &str, audience: &str, now: u64) -> Self {
        Self {
            iss: client_id.to_string(),
            sub: client_id.to_string(),
            aud: audience.to_string(),
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The method to use: `configured` if the server accepts it (and the client has what it
/// needs), else the first that fits of private_key_jwt (a key), client_secret_basic, then
/// client_secret_post (a secret), none (neither). `supported` is the metadata's
/// `token_endpoint_auth_methods_supported`; RFC 8414 §2 reads an absent list as
/// client_secret_basic only, but servers that omit it often take more, so an empty list
/// refuses nothing except `none` (a public client must be allowed explicitly).
pub fn choose(
    configured: Option<Method>,
    has_secret: bool,
    has_key: bool,
    supported: &[String],
) -> Result<Method, ClientAuthError> {
    let listed = |m: Method| {
        if supported.is_empty() { m != Method::None } else { supported.iter().any(|s| s == m.name()) }
    };
    let offered = || {
        if supported.is_empty() {
            "client_secret_basic (it lists no methods)".to_string()
        } else {
            supported.join(", ")
        }
    };
    if let Some(m) = configured {
        if !listed(m) {
            return Err(ClientAuthError::NotOffered { method: m.name(), offered: offered() });
        }
        let missing = |needs, how| Err(ClientAuthError::MissingCredential { method: m.name(), needs, how });
        return match m {
            Method::ClientSecretBasic | Method::ClientSecretPost if !has_secret => {
                missing("a client secret", "client_secret_env (--client-secret-env VAR) or client_secret")
            }
            Method::PrivateKeyJwt if !has_key => missing("a private key", "client_key (--client-key PEM_FILE)"),
            m => Ok(m),
        };
    }
    if has_key && listed(Method::PrivateKeyJwt) {
        return Ok(Method::PrivateKeyJwt);
    }
    if has_secret {
        for m in [Method::ClientSecretBasic, Method::ClientSecretPost] {
            if listed(m) {
                return Ok(m);
            }
        }
    }
    match (has_secret, has_key) {
        (false, false) if listed(Method::None) => Ok(Method::None),
        (false, false) => Err(ClientAuthError::NoCredentials { offered: Some(offered()) }),
        (true, false) => Err(ClientAuthError::NothingFits { offered: offered(), have: "a client secret" }),
        (false, true) => Err(ClientAuthError::NothingFits { offered: offered(), have: "a private key" }),
        (true, true) => Err(ClientAuthError::NothingFits { offered: offered(), have: "a client secret and a key" }),
    }
}

/// How this client proves who it is to one authorization server.
#[derive(Clone)]
pub struct ClientAuthenticator {
    client_id: String,
    method: Method,
    secret: Option<Secret<String>>,
    key: Option<Arc<SigningKey>>,
    /// The assertion's `aud`: the authorization server's issuer identifier (what
    /// draft-ietf-oauth-rfc7523bis asks for, and what servers following RFC 7523 accept).
    audience: String,
}

impl std::fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticator {
    /// `method` as `choose` returned it; the credential it needs must be given.
    pub fn new(
        client_id: &str,
        method: Method,
        secret: Option<Secret<String>>,
        key: Option<Arc<SigningKey>>,
        audience: &str,
    ) -> Result<Self, ClientAuthError> {
        choose(Some(method), secret.is_some(), key.is_some(), &[method.name().to_string()])?;
        Ok(Self { client_id: client_id.to_string(), method, secret, key, audience: audience.to_string() })
    }

    /// A public client (`none`): only its `client_id` is sent.
    pub fn public(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            method: Method::None,
            secret: None,
            key: None,
            audience: String::new(),
        }
    }

    /// A client with a secret, sent with `method` (basic or post).
    pub fn with_secret(client_id: &str, secret: Secret<String>, method: Method) -> Self {
        Self { client_id: client_id.to_string(), method, secret: Some(secret), key: None, audience: String::new() }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Adds this client's credentials to a POST (`req`) whose form is `form`, at `now`
    /// (epoch seconds, for the assertion), and sets the form.
    pub fn apply(
        &self,
        mut req: reqwest::RequestBuilder,
        mut form: Vec<(&'static str, String)>,
        now: u64,
    ) -> Result<reqwest::RequestBuilder, ClientAuthError> {
        match (self.method, &self.secret, &self.key) {
            (Method::ClientSecretBasic, Some(secret), _) => {
                // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
                req = req.basic_auth(form_encode(&self.client_id), Some(form_encode(secret.expose())));
            }
            (Method::ClientSecretPost, Some(secret), _) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.expose().clone()));
            }
            (Method::PrivateKeyJwt, _, Some(key)) => {
                let assertion = key.sign(&AssertionClaims::new(&self.client_id, &self.audience, now))?;
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_assertion_type", JWT_BEARER_ASSERTION_TYPE.to_string()));
                form.push(("client_assertion", assertion));
            }
            // `new` refuses a method without its credential; `none` sends the id alone.
            _ => form.push(("client_id", self.client_id.clone())),
        }
        Ok(req.form(&form))
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_method_follows_the_credential_and_what_the_server_lists() {
        use Method::{ClientSecretBasic, ClientSecretPost, PrivateKeyJwt};
        let all = list(&["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]);
        // (configured, has a secret, has a key, the server's list, chosen)
        type Row = (Option<Method>, bool, bool, Vec<String>, Method);
        let ok: &[Row] = &[
            (None, true, false, all.clone(), ClientSecretBasic),
            (None, true, false, list(&["client_secret_post"]), ClientSecretPost),
            (None, true, false, vec![], ClientSecretBasic),
            (None, false, true, all.clone(), PrivateKeyJwt),
            (None, false, true, vec![], PrivateKeyJwt),
            (None, true, true, all.clone(), PrivateKeyJwt),
            (None, true, true, list(&["client_secret_basic"]), ClientSecretBasic),
            (None, false, false, all.clone(), Method::None),
            (None, false, false, list(&["none"]), Method::None),
            (Some(ClientSecretPost), true, false, all.clone(), ClientSecretPost),
            (Some(ClientSecretPost), true, false, vec![], ClientSecretPost),
            (Some(Method::None), true, false, all.clone(), Method::None),
        ];
        for (configured, secret, key, supported, want) in ok {
            assert_eq!(
                choose(*configured, *secret, *key, supported),
                Ok(*want),
                "{configured:?} {secret} {key} {supported:?}"
            );
        }
        let err = |c, s, k, sup: Vec<String>| choose(c, s, k, &sup).unwrap_err().to_string();
        assert_eq!(
            err(Some(ClientSecretBasic), true, false, list(&["client_secret_post"])),
            "auth_method = \"client_secret_basic\", but the authorization server accepts only client_secret_post at its token endpoint; set auth_method to one of those, or remove it to let Warden choose"
        );
        assert_eq!(
            err(Some(PrivateKeyJwt), true, false, all.clone()),
            "auth_method = \"private_key_jwt\" needs a private key: set client_key (--client-key PEM_FILE)"
        );
        assert!(
            err(None, false, false, list(&["client_secret_basic", "client_secret_post"]))
                .starts_with("no client secret: set client_secret, or client_secret_env"),
        );
        assert!(err(None, false, false, vec![]).ends_with("accepts client_secret_basic (it lists no methods)"));
        assert_eq!(
            err(None, true, false, list(&["private_key_jwt"])),
            "the authorization server accepts private_key_jwt at its token endpoint, and this client has a client secret: configure a credential it accepts (client_secret_env / --client-secret-env for client_secret_*, client_key / --client-key for private_key_jwt)"
        );
        assert!(
            err(Some(Method::None), false, false, vec![])
                .contains("accepts only client_secret_basic (it lists no methods)")
        );
        assert_eq!(Method::parse("post"), Ok(ClientSecretPost));
        assert!(Method::parse("tls_client_auth").unwrap_err().to_string().starts_with("unknown auth_method"));
    }

    fn pem_and_public(alg: &'static rcgen::SignatureAlgorithm) -> (String, Vec<u8>) {
        let kp = rcgen::KeyPair::generate_for(alg).expect("key generation");
        (kp.serialize_pem(), kp.public_key_raw().to_vec())
    }

    /// Checks `assertion` against `public` the way an RFC 7523 server does, and returns its
    /// claims and header algorithm.
    fn check(assertion: &str, key: DecodingKey, alg: Algorithm, audience: &str) -> AssertionClaims {
        let mut v = Validation::new(alg);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &v).expect("a valid assertion").claims
    }

    fn assertion_of(auth: &ClientAuthenticator, now: u64) -> (Vec<(String, String)>, Option<String>) {
        let req = auth.apply(reqwest::Client::new().post("https://as.example/token"), vec![], now).unwrap();
        let req = req.build().unwrap();
        let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        let basic = req.headers().get("authorization").map(|h| h.to_str().unwrap().to_string());
        (form, basic)
    }

    #[test]
    fn an_es256_assertion_names_the_client_and_the_issuer_and_expires_soon() {
        let (pem, public) = pem_and_public(&rcgen::PKCS_ECDSA_P256_SHA256);
        let key = Arc::new(SigningKey::from_pem(pem.as_bytes(), None, Path::new("k.pem")).unwrap());
        assert_eq!(key.alg(), Algorithm::ES256);
        let auth =
            ClientAuthenticator::new("agent-1", Method::PrivateKeyJwt, None, Some(key), "https://as.example").unwrap();
        let now = crate::types::time::now_epoch();
        let (form, basic) = assertion_of(&auth, now);
        assert_eq!(basic, None, "no secret, no Basic header");
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("client_assertion_type").as_deref(), Some(JWT_BEARER_ASSERTION_TYPE));
        assert_eq!(get("client_id").as_deref(), Some("agent-1"));
        let jwt = get("client_assertion").unwrap();
        let c = check(&jwt, DecodingKey::from_ec_der(&public), Algorithm::ES256, "https://as.example");
        assert_eq!((c.iss.as_str(), c.sub.as_str(), c.aud.as_str()), ("agent-1", "agent-1", "https://as.example"));
        assert_eq!((c.iat, c.exp), (now, now + 60));
        assert!(c.exp - c.iat <= 300, "RFC 7523: a short expiry");
        // Every assertion is unique (a server may refuse a replayed jti).
        let (again, _) = assertion_of(&auth, now);
        let jti2 = check(
            &again.iter().find(|(n, _)| n == "client_assertion").unwrap().1,
            DecodingKey::from_ec_der(&public),
            Algorithm::ES256,
            "https://as.example",
        )
        .jti;
        assert_ne!(c.jti, jti2);
    }

    #[test]
    fn an_rsa_key_signs_rs256() {
        let (pem, public) = pem_and_public(&rcgen::PKCS_RSA_SHA256);
        let key = Arc::new(SigningKey::from_pem(pem.as_bytes(), None, Path::new("rsa.pem")).unwrap());
        assert_eq!(key.alg(), Algorithm::RS256);
        let auth = ClientAuthenticator::new("c", Method::PrivateKeyJwt, None, Some(key), "https://as").unwrap();
        let (form, _) = assertion_of(&auth, crate::types::time::now_epoch());
        let jwt = &form.iter().find(|(n, _)| n == "client_assertion").unwrap().1;
        let c = check(jwt, DecodingKey::from_rsa_der(&public), Algorithm::RS256, "https://as");
        assert_eq!(c.iss, "c");
    }

    #[test]
    fn a_key_that_cannot_sign_is_named_when_loaded() {
        let (pem, _) = pem_and_public(&rcgen::PKCS_ECDSA_P256_SHA256);
        let e = SigningKey::from_pem(pem.as_bytes(), Some("RS256"), Path::new("/keys/c.pem")).unwrap_err();
        assert!(e.to_string().starts_with("cannot use the client key /keys/c.pem: it is not a key for RS256"), "{e}");
        let e = SigningKey::from_pem(b"not a key", None, Path::new("x.pem")).unwrap_err().to_string();
        assert!(e.starts_with("cannot use the client key x.pem: it is not a PEM EC or RSA private key"), "{e}");
        let e = SigningKey::load(Path::new("/nonexistent/k.pem"), None).unwrap_err().to_string();
        assert!(e.starts_with("cannot use the client key /nonexistent/k.pem: cannot read it"), "{e}");
    }

    #[test]
    fn secrets_go_in_the_header_or_the_form_and_a_public_client_sends_its_id() {
        let basic = ClientAuthenticator::with_secret("a b", Secret::new("s:1".into()), Method::ClientSecretBasic);
        let (form, header) = assertion_of(&basic, 0);
        assert!(form.is_empty());
        // RFC 6749 §2.3.1: "a+b:s%3A1", base64.
        assert_eq!(header.as_deref(), Some("Basic YStiOnMlM0Ex"));
        let post = ClientAuthenticator::with_secret("a", Secret::new("s".into()), Method::ClientSecretPost);
        let (form, header) = assertion_of(&post, 0);
        assert_eq!(header, None);
        assert_eq!(form, vec![("client_id".into(), "a".into()), ("client_secret".into(), "s".into())]);
        let public = ClientAuthenticator::new("pub", Method::None, None, None, "https://as").unwrap();
        assert_eq!(assertion_of(&public, 0).0, vec![("client_id".to_string(), "pub".to_string())]);
        assert!(ClientAuthenticator::new("x", Method::ClientSecretPost, None, None, "").is_err());
    }
}
