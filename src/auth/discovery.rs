//! Discovery documents: RFC 8414 authorization-server metadata and RFC 9728
//! protected-resource metadata. The issuer and service serve them; clients (and the
//! service, when trusting an external issuer) read them.
//!
//! `discover` is OAuth discovery as the MCP authorization spec (2025-11-25) lays it out,
//! for a server that answered 401 with a Bearer challenge: where its resource metadata is,
//! that it names this server, which authorization server it trusts and that server's
//! metadata, every URL held to https-unless-loopback. Its result, `Discovered`, is what the
//! OAuth flows start from; its errors (`DiscoveryError`) name the URLs tried.

use serde::{Deserialize, Serialize};

use super::jwks::read_bounded;
use crate::security::tls::NetFailure;
use crate::types::scope::{Scope, ScopeSet};

/// RFC 8414 §2 (the fields Warden uses; unknown fields are ignored when reading).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    pub token_endpoint: String,
    /// Optional in RFC 8414: an authorization server that issues opaque tokens has no keys
    /// to publish, and its clients use its tokens without verifying them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// RFC 7662 token introspection (RFC 8414 §2 via RFC 7662 §4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// RFC 7009 token revocation (RFC 8414 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub grant_types_supported: Vec<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types_supported: Vec<String>,
    /// The authorization code flow's front door (OAuth 2.1 §3.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// RFC 7591 dynamic client registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// PKCE methods (RFC 7636); MCP clients must see `S256` here before using the code flow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    /// The authorization server accepts a client ID metadata document URL as a client_id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_id_metadata_document_supported: bool,
}

/// RFC 9728 §2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub bearer_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

/// Where an issuer's metadata may be, in the order MCP 2025-11-25 prescribes: RFC 8414 §3
/// inserts the well-known segment between the host and any path component; OpenID Connect
/// providers (Keycloak, Auth0) serve theirs with the segment inserted the same way, or (the
/// OpenID Connect Discovery 1.0 rule) appended to the issuer. Without a path the last two
/// are one URL.
pub fn as_metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let (origin, path) = split_origin(trimmed);
    let mut urls = vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
    ];
    let appended = format!("{trimmed}/.well-known/openid-configuration");
    if !urls.contains(&appended) {
        urls.push(appended);
    }
    urls
}

/// RFC 9728 §3.1: same insertion rule for protected resources.
pub fn resource_metadata_url(resource: &str) -> String {
    let (origin, path) = split_origin(resource.trim_end_matches('/'));
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

/// Fetches the AS metadata for `issuer` (see `locate_as_metadata`).
pub async fn fetch_as_metadata(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    locate_as_metadata(client, issuer).await.map(|(_, meta)| meta)
}

/// Finds the AS metadata for `issuer` at the locations of `as_metadata_urls`, in order, and
/// insists that the document names the same issuer (RFC 8414 §3.3). Returns the URL it was
/// found at with it.
pub async fn locate_as_metadata(
    client: &reqwest::Client,
    issuer: &str,
) -> Result<(String, AuthorizationServerMetadata), DiscoveryError> {
    locate_as_metadata_at(client, issuer, &as_metadata_urls(issuer), &mut Vec::new()).await
}

/// `locate_as_metadata` over `urls`, recording every location that gave nothing in `tried`.
async fn locate_as_metadata_at(
    client: &reqwest::Client,
    issuer: &str,
    urls: &[String],
    tried: &mut Vec<Attempt>,
) -> Result<(String, AuthorizationServerMetadata), DiscoveryError> {
    for url in urls.iter().cloned() {
        let resp = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                tried.push(Attempt { url, outcome: format!("HTTP {}", r.status().as_u16()) });
                continue;
            }
            Err(e) => {
                let failure = NetFailure::of(&e);
                // Every location is on the issuer's host: if one cannot be reached, none can.
                if matches!(failure, NetFailure::Refused | NetFailure::Timeout) || failure.is_tls() {
                    return Err(DiscoveryError::Unreachable { url: issuer.to_string(), failure });
                }
                tried.push(Attempt { url, outcome: failure.to_string() });
                continue;
            }
        };
        let meta = read_as_metadata(resp, &url).await?;
        if meta.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(DiscoveryError::IssuerMismatch { url, named: meta.issuer, expected: issuer.to_string() });
        }
        return Ok((url, meta));
    }
    Err(DiscoveryError::NoAsMetadata { issuer: issuer.to_string(), tried: tried.clone() })
}

/// The RFC 8414 document in `resp` (bounded), fetched from `url`.
async fn read_as_metadata(resp: reqwest::Response, url: &str) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    let invalid =
        |reason| DiscoveryError::Invalid { url: url.to_string(), what: "authorization server metadata", reason };
    let body = read_bounded(resp, 256 * 1024).await.map_err(invalid)?;
    serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))
}

/// One location discovery tried, and what came of it (for the error that lists them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub url: String,
    pub outcome: String,
}

fn attempts(tried: &[Attempt]) -> String {
    tried.iter().map(|a| format!("{} ({})", a.url, a.outcome)).collect::<Vec<_>>().join(", ")
}

/// Why discovery stopped. Every variant names the URL it is about; the message says what the
/// server's operator (or the user) can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    #[error("{url} is not a valid URL")]
    BadUrl { url: String },
    /// Plain http off loopback (or with loopback not allowed), or another scheme.
    #[error("{what} {url} is not https; Warden follows plain http only to a loopback address, so it did not go there")]
    Insecure { what: &'static str, url: String },
    #[error(
        "no protected resource metadata (RFC 9728) for {server_url}: tried {}; the server must publish it (or name it in its 401 challenge's resource_metadata) for Warden to find its authorization server",
        attempts(tried)
    )]
    NoResourceMetadata { server_url: String, tried: Vec<Attempt> },
    #[error(
        "the resource metadata at {url} is for {advertised}, which is not {server_url} (RFC 9728 §3.3); refusing to use another server's authorization settings"
    )]
    ResourceMismatch { url: String, advertised: String, server_url: String },
    #[error("the resource metadata at {url} names no authorization server (authorization_servers is empty)")]
    NoAuthorizationServer { url: String },
    #[error(
        "no authorization server metadata for {issuer}: tried {}; the authorization server must publish RFC 8414 or OpenID Connect discovery metadata",
        attempts(tried)
    )]
    NoAsMetadata { issuer: String, tried: Vec<Attempt> },
    #[error("{url} names issuer {named:?}, not {expected:?} (RFC 8414 §3.3); refusing metadata for another issuer")]
    IssuerMismatch { url: String, named: String, expected: String },
    #[error("the {what} at {url} is not valid: {reason}")]
    Invalid { url: String, what: &'static str, reason: String },
    /// The request never got an answer (refused, TLS, timeout): the caller says what to do.
    #[error("could not reach {url}: {failure}")]
    Unreachable { url: String, failure: NetFailure },
}

/// https everywhere; http only for loopback hosts and only when `allow_http_loopback`. The
/// URL is parsed, not pattern-matched: `http://localhost:80@evil.example/` is evil.example.
pub fn check_url(url: &str, allow_http_loopback: bool, what: &'static str) -> Result<(), DiscoveryError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| DiscoveryError::BadUrl { url: url.to_string() })?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http_loopback && crate::security::urls::is_loopback(&parsed) => Ok(()),
        _ => Err(DiscoveryError::Insecure { what, url: url.to_string() }),
    }
}

/// Whether a resource identifier a server advertises names that server (RFC 9728 §3.3):
/// same scheme, host and port, and a path that is the server URL's path or a prefix of it
/// at a segment boundary.
pub fn resource_matches(advertised: &str, server_url: &str) -> bool {
    let (Ok(a), Ok(s)) = (reqwest::Url::parse(advertised), reqwest::Url::parse(server_url)) else { return false };
    if a.scheme() != s.scheme() || a.host() != s.host() || a.port_or_known_default() != s.port_or_known_default() {
        return false;
    }
    let (ap, sp) = (a.path().trim_end_matches('/'), s.path().trim_end_matches('/'));
    ap == sp || sp.starts_with(&format!("{ap}/"))
}

/// One `name="value"` parameter of a `WWW-Authenticate` challenge.
pub fn challenge_param(header: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut search = header;
    while let Some(i) = search.find(&needle) {
        let before = search[..i].chars().last();
        let start = i + needle.len();
        if before.is_none_or(|c| c == ' ' || c == ',') {
            let rest = &search[start..];
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            return None;
        }
        search = &search[start..];
    }
    None
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3) and the parameters discovery reads:
/// `resource_metadata` (RFC 9728 §5.1) and `scope`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BearerChallenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// None when no challenge in the header uses the Bearer scheme (`Basic realm="x"`, an
    /// API gateway's own scheme): then OAuth discovery has nothing to go on.
    pub fn parse(header: &str) -> Option<Self> {
        let is_bearer = |s: &str| {
            let s = s.trim_start();
            s.len() >= 6
                && s[..6].eq_ignore_ascii_case("bearer")
                && s[6..].chars().next().is_none_or(|c| c == ' ' || c == ',')
        };
        // Several challenges may share the header; a scheme starts the header or follows a comma.
        if !is_bearer(header) && !header.split(',').skip(1).any(is_bearer) {
            return None;
        }
        Some(Self {
            resource_metadata: challenge_param(header, "resource_metadata"),
            scope: challenge_param(header, "scope"),
        })
    }
}

/// Where the scopes in `Discovered::scopes` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopesFrom {
    /// The challenge's `scope` parameter: what this request needs (MCP 2025-11-25 prefers it).
    Challenge,
    /// The resource metadata's `scopes_supported`: everything the server knows.
    ResourceMetadata,
    /// Neither says: the authorization server's defaults apply.
    NotStated,
}

/// What OAuth discovery found for a server that answered 401 with a Bearer challenge: the
/// resource it is, the authorization server it trusts, that server's metadata, and the scopes
/// to ask for. Built only by `discover`, after every check; the OAuth flows (client
/// credentials, authorization code + PKCE, dynamic registration) start from it.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    /// The resource identifier (RFC 8707 `resource`), checked to name the server.
    pub resource: String,
    /// Where the RFC 9728 document was found; None for a 2025-03-26 server, which has none
    /// (its origin is its authorization server).
    pub resource_metadata_url: Option<String>,
    /// `authorization_servers[0]` of that document, and its issuer identifier.
    pub authorization_server: String,
    /// Where the RFC 8414 / OpenID document was found; None when a 2025-03-26 server
    /// published none and its default endpoints are used.
    pub metadata_url: Option<String>,
    pub metadata: AuthorizationServerMetadata,
    pub scopes: ScopeSet,
    pub scopes_from: ScopesFrom,
    /// The 401 challenge discovery started from.
    pub challenge: BearerChallenge,
    /// Every location looked at, in order, and what came of it: the narrated flow's
    /// discovery steps (the caller turns them into events).
    pub trail: Vec<TrailStep>,
}

/// One discovery step for the narrated auth flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailStep {
    /// True for the protected-resource metadata, false for the authorization server's.
    pub resource_metadata: bool,
    pub url: String,
    pub outcome: String,
}

impl Discovered {
    /// The discovery half of the narrated auth flow, as `AuthStep` events for `server`: the
    /// challenge, then every metadata location looked at.
    pub fn narrate(&self, events: &crate::types::event::EventBus, server: &str) {
        use crate::types::event::{AuthStepKind, EventKind, Scope as EventScope};
        let c = &self.challenge;
        let mut named = Vec::new();
        if let Some(url) = &c.resource_metadata {
            named.push(format!("resource_metadata {url}"));
        }
        if let Some(scope) = &c.scope {
            named.push(format!("scope \"{scope}\""));
        }
        let outcome = match named.is_empty() {
            true => "401 with a Bearer challenge naming nothing".to_string(),
            false => format!("401 with a Bearer challenge naming {}", named.join(", ")),
        };
        let emit = |step, url: Option<&str>, outcome: String| {
            events.emit(
                &EventScope::default(),
                EventKind::AuthStep {
                    server: server.to_string(),
                    step,
                    url: url.map(str::to_string),
                    outcome,
                    failed: false,
                },
            )
        };
        emit(AuthStepKind::Challenge, Some(&self.resource), outcome);
        for t in &self.trail {
            let step = if t.resource_metadata { AuthStepKind::ResourceMetadata } else { AuthStepKind::ServerMetadata };
            emit(step, Some(&t.url), t.outcome.clone());
        }
    }

    /// RFC 7591 dynamic client registration, when the authorization server offers it.
    pub fn registration_endpoint(&self) -> Option<&str> {
        self.metadata.registration_endpoint.as_deref()
    }
}

/// RFC 9728 §3 locations for `server_url`, in the order MCP 2025-11-25 prescribes: the URL
/// the challenge names, then the path-aware well-known URL, then the root one.
pub fn resource_metadata_candidates(server_url: &str, challenge: &BearerChallenge) -> Vec<String> {
    let path_aware = resource_metadata_url(server_url);
    let (origin, _) = split_origin(server_url.trim_end_matches('/'));
    let root = format!("{origin}/.well-known/oauth-protected-resource");
    let mut out: Vec<String> = challenge.resource_metadata.iter().cloned().collect();
    for url in [path_aware, root] {
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

/// OAuth discovery for the server at `server_url`, which answered 401 with `challenge`:
/// RFC 9728 resource metadata (checked to name this server before anything else is
/// contacted), then the metadata of its first authorization server (RFC 8414, OpenID
/// Connect). Every URL followed passes `check_url` first.
pub async fn discover(
    http: &reqwest::Client,
    server_url: &str,
    challenge: &BearerChallenge,
    allow_http_loopback: bool,
) -> Result<Discovered, DiscoveryError> {
    discover_for(http, server_url, None, challenge, allow_http_loopback).await
}

/// `discover`, for a server whose resource identifier the operator configured
/// (`configured_resource`): resource metadata naming exactly that resource is accepted as
/// well as metadata naming the server itself.
pub async fn discover_for(
    http: &reqwest::Client,
    server_url: &str,
    configured_resource: Option<&str>,
    challenge: &BearerChallenge,
    allow_http_loopback: bool,
) -> Result<Discovered, DiscoveryError> {
    let mut tried = Vec::new();
    let mut found = None;
    for url in resource_metadata_candidates(server_url, challenge) {
        if let Err(e) = check_url(&url, allow_http_loopback, "resource metadata") {
            let outcome = match e {
                DiscoveryError::Insecure { .. } => "not followed: plain http off loopback".to_string(),
                other => other.to_string(),
            };
            tried.push(Attempt { url, outcome });
            continue;
        }
        match fetch_prm(http, &url).await {
            Ok(prm) => {
                found = Some((url, prm));
                break;
            }
            Err(outcome) => tried.push(Attempt { url, outcome }),
        }
    }
    let mut trail: Vec<TrailStep> = tried
        .iter()
        .map(|a| TrailStep { resource_metadata: true, url: a.url.clone(), outcome: a.outcome.clone() })
        .collect();
    let Some((prm_url, prm)) = found else {
        // Nothing anywhere: a server of the 2025-03-26 revision, whose origin is its
        // authorization server (unless the challenge named a location: then the server
        // meant one, and it is not to be guessed).
        // Nor when the server's well-known locations gave no HTTP answer at all (refused,
        // timed out): that is a server that cannot be reached, not one without metadata.
        if challenge.resource_metadata.is_some() || !tried.iter().all(|a| a.outcome.starts_with("HTTP ")) {
            return Err(DiscoveryError::NoResourceMetadata { server_url: server_url.to_string(), tried });
        }
        return legacy(http, server_url, challenge, trail, tried).await;
    };
    trail.push(TrailStep {
        resource_metadata: true,
        url: prm_url.clone(),
        outcome: format!(
            "found: resource {}, authorization server {}",
            prm.resource,
            prm.authorization_servers.first().map(String::as_str).unwrap_or("(none named)")
        ),
    });
    let configured = configured_resource.is_some_and(|r| r.trim_end_matches('/') == prm.resource.trim_end_matches('/'));
    if !configured && !resource_matches(&prm.resource, server_url) {
        return Err(DiscoveryError::ResourceMismatch {
            url: prm_url,
            advertised: prm.resource,
            server_url: server_url.to_string(),
        });
    }
    let issuer = prm
        .authorization_servers
        .first()
        .cloned()
        .ok_or_else(|| DiscoveryError::NoAuthorizationServer { url: prm_url.clone() })?;
    check_url(&issuer, allow_http_loopback, "authorization server")?;
    let mut as_tried = Vec::new();
    let (metadata_url, metadata) =
        locate_as_metadata_at(http, &issuer, &as_metadata_urls(&issuer), &mut as_tried).await?;
    trail.extend(as_tried.into_iter().map(|a| TrailStep { resource_metadata: false, url: a.url, outcome: a.outcome }));
    trail.push(TrailStep { resource_metadata: false, url: metadata_url.clone(), outcome: as_summary(&metadata) });
    check_endpoints(&metadata, allow_http_loopback)?;
    let (scopes, scopes_from) = scopes_for(challenge, &prm.scopes_supported);
    Ok(Discovered {
        resource: prm.resource,
        resource_metadata_url: Some(prm_url),
        authorization_server: issuer,
        metadata_url: Some(metadata_url),
        metadata,
        scopes,
        scopes_from,
        challenge: challenge.clone(),
        trail,
    })
}

/// Every endpoint of `metadata` passes `check_url`.
fn check_endpoints(metadata: &AuthorizationServerMetadata, allow_http_loopback: bool) -> Result<(), DiscoveryError> {
    check_url(&metadata.token_endpoint, allow_http_loopback, "token endpoint")?;
    for (what, url) in [
        ("authorization endpoint", &metadata.authorization_endpoint),
        ("registration endpoint", &metadata.registration_endpoint),
        ("JWKS", &metadata.jwks_uri),
        ("revocation endpoint", &metadata.revocation_endpoint),
        ("introspection endpoint", &metadata.introspection_endpoint),
    ] {
        if let Some(url) = url {
            check_url(url, allow_http_loopback, what)?;
        }
    }
    Ok(())
}

/// The scopes to ask for (MCP 2025-11-25 "scope selection strategy"): the challenge's, else
/// everything the resource supports, else none (the authorization server's defaults).
fn scopes_for(challenge: &BearerChallenge, supported: &[String]) -> (ScopeSet, ScopesFrom) {
    let lenient = |s: &str| s.split(' ').filter_map(|t| Scope::new(t).ok()).collect::<ScopeSet>();
    match (&challenge.scope, supported.is_empty()) {
        (Some(s), _) if !lenient(s).is_empty() => (lenient(s), ScopesFrom::Challenge),
        (_, false) => (lenient(&supported.join(" ")), ScopesFrom::ResourceMetadata),
        _ => (ScopeSet::new(), ScopesFrom::NotStated),
    }
}

/// What an authorization server's metadata offers, in a line.
fn as_summary(m: &AuthorizationServerMetadata) -> String {
    let mut offers = vec![format!("issuer {}", m.issuer)];
    if m.authorization_endpoint.is_some() {
        offers.push("authorization code".into());
    }
    if m.registration_endpoint.is_some() {
        offers.push("registration".into());
    }
    if m.client_id_metadata_document_supported {
        offers.push("client ID metadata documents".into());
    }
    offers.push(if m.jwks_uri.is_some() { "signing keys".into() } else { "no keys (opaque tokens)".into() });
    format!("found: {}", offers.join(", "))
}

/// The 2025-03-26 revision's discovery, for a server without resource metadata: its
/// origin (the URL without its path) is the authorization server; its RFC 8414 document at
/// the origin's root, else the default endpoints `/authorize`, `/token` and `/register`
/// there. The document's issuer may carry a path (the endpoints can live under one), but it
/// must be on the server's own origin: nothing here names another party.
async fn legacy(
    http: &reqwest::Client,
    server_url: &str,
    challenge: &BearerChallenge,
    mut trail: Vec<TrailStep>,
    prm_tried: Vec<Attempt>,
) -> Result<Discovered, DiscoveryError> {
    let (origin, _) = split_origin(server_url.trim_end_matches('/'));
    let origin = origin.to_string();
    let url = format!("{origin}/.well-known/oauth-authorization-server");
    let answer = match http.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return Err(DiscoveryError::Unreachable { url, failure: NetFailure::of(&e) }),
    };
    let status = answer.status();
    let (metadata_url, metadata) = if status.is_success() {
        let meta = read_as_metadata(answer, &url).await?;
        if split_origin(meta.issuer.trim_end_matches('/')).0 != origin {
            return Err(DiscoveryError::IssuerMismatch { url, named: meta.issuer, expected: origin });
        }
        trail.push(TrailStep {
            resource_metadata: false,
            url: url.clone(),
            outcome: format!("{} (2025-03-26: the server's origin)", as_summary(&meta)),
        });
        (Some(url), meta)
    } else if status == reqwest::StatusCode::NOT_FOUND {
        trail.push(TrailStep {
            resource_metadata: false,
            url: url.clone(),
            outcome: format!("HTTP 404: using the 2025-03-26 defaults {origin}/authorize, /token, /register"),
        });
        let meta = AuthorizationServerMetadata {
            issuer: origin.clone(),
            token_endpoint: format!("{origin}/token"),
            jwks_uri: None,
            introspection_endpoint: None,
            revocation_endpoint: None,
            grant_types_supported: vec!["authorization_code".into(), "refresh_token".into()],
            token_endpoint_auth_methods_supported: Vec::new(),
            scopes_supported: Vec::new(),
            response_types_supported: vec!["code".into()],
            authorization_endpoint: Some(format!("{origin}/authorize")),
            registration_endpoint: Some(format!("{origin}/register")),
            // The 2025-03-26 revision requires PKCE (S256) of every client and server.
            code_challenge_methods_supported: vec!["S256".into()],
            client_id_metadata_document_supported: false,
        };
        (None, meta)
    } else {
        let mut tried = prm_tried;
        tried.push(Attempt { url, outcome: format!("HTTP {}", status.as_u16()) });
        return Err(DiscoveryError::NoResourceMetadata { server_url: server_url.to_string(), tried });
    };
    let (scopes, scopes_from) = scopes_for(challenge, &metadata.scopes_supported);
    Ok(Discovered {
        resource: server_url.to_string(),
        resource_metadata_url: None,
        authorization_server: metadata.issuer.clone(),
        metadata_url,
        metadata,
        scopes,
        scopes_from,
        challenge: challenge.clone(),
        trail,
    })
}

/// One RFC 9728 document; `Err` says in words why this location gave none.
pub async fn fetch_prm(http: &reqwest::Client, url: &str) -> Result<ProtectedResourceMetadata, String> {
    let resp = http.get(url).send().await.map_err(|e| NetFailure::of(&e).to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    let body = read_bounded(resp, 64 * 1024).await?;
    serde_json::from_slice(&body).map_err(|e| format!("not RFC 9728 metadata: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8414 makes `jwks_uri` optional (an AS with opaque tokens has no keys to publish).
    #[test]
    fn metadata_without_jwks_uri_is_read() {
        let m: AuthorizationServerMetadata = serde_json::from_str(
            r#"{"issuer":"http://127.0.0.1:9","token_endpoint":"http://127.0.0.1:9/token","introspection_endpoint":"http://127.0.0.1:9/introspect"}"#,
        )
        .unwrap();
        assert_eq!(m.jwks_uri, None);
        assert_eq!(m.introspection_endpoint.as_deref(), Some("http://127.0.0.1:9/introspect"));
    }

    #[test]
    fn only_bearer_challenges_start_discovery() {
        let c = BearerChallenge::parse(r#"Bearer resource_metadata="https://x/prm", scope="a b""#).unwrap();
        assert_eq!(c.resource_metadata.as_deref(), Some("https://x/prm"));
        assert_eq!(c.scope.as_deref(), Some("a b"));
        assert_eq!(BearerChallenge::parse("bearer"), Some(BearerChallenge { resource_metadata: None, scope: None }));
        assert!(BearerChallenge::parse(r#"Basic realm="x", Bearer realm="y""#).is_some(), "the second challenge");
        assert_eq!(BearerChallenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(BearerChallenge::parse("Bearerish"), None);
        assert_eq!(BearerChallenge::parse(r#"ApiKey realm="Bearer""#), None);
    }

    #[test]
    fn resource_metadata_is_looked_for_where_the_challenge_says_then_path_aware_then_root() {
        let none = BearerChallenge { resource_metadata: None, scope: None };
        assert_eq!(
            resource_metadata_candidates("https://h:1/api/mcp", &none),
            vec![
                "https://h:1/.well-known/oauth-protected-resource/api/mcp",
                "https://h:1/.well-known/oauth-protected-resource"
            ]
        );
        let named = BearerChallenge { resource_metadata: Some("https://h:1/prm".into()), scope: None };
        assert_eq!(
            resource_metadata_candidates("https://h:1/", &named),
            vec!["https://h:1/prm", "https://h:1/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn well_known_urls_insert_before_the_path() {
        assert_eq!(
            as_metadata_urls("https://as.example/realms/x"),
            vec![
                "https://as.example/.well-known/oauth-authorization-server/realms/x",
                "https://as.example/.well-known/openid-configuration/realms/x",
                "https://as.example/realms/x/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            as_metadata_urls("https://127.0.0.1:8443/"),
            vec![
                "https://127.0.0.1:8443/.well-known/oauth-authorization-server",
                "https://127.0.0.1:8443/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            resource_metadata_url("https://127.0.0.1:8001/mcp"),
            "https://127.0.0.1:8001/.well-known/oauth-protected-resource/mcp"
        );
    }
}
