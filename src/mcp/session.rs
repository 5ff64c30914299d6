//! One live MCP session over streamable HTTP: connect (with our HTTP client and a bearer
//! header that follows refreshes), list tools, learn each tool's required scopes, and pin a
//! hash of the tool manifest so a later change (a "rug pull") can be flagged.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde::Serialize;
use serde_json::Value;

use super::classify::{Failure, classify};
use super::exchange::{Exchanges, Observed};
use super::http::AuthedHttp;
use crate::auth::token::TokenManager;
use crate::types::event::McpExchange;
use crate::types::policy;
use crate::types::scope::ScopeSet;
use crate::types::tool::{ToolHints, ToolName};

/// Where a tool's scope requirement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopesSource {
    /// The server's `_meta` for the tool.
    Advertised,
    /// The `[servers.scopes]` map in the config.
    Config,
    /// Neither: the client cannot pre-check; the server still decides.
    Unknown,
}

/// What the client knows about one tool.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// Which server offers it, and its name there.
    #[serde(flatten)]
    pub id: ToolName,
    pub description: String,
    pub input_schema: Value,
    pub required_scopes: ScopeSet,
    pub scopes_source: ScopesSource,
    /// What the tool's annotations say (the specification's defaults when absent).
    pub hints: ToolHints,
    /// Safe to call twice (read-only or declared idempotent): `hints.retry_safe()`.
    pub retry_safe: bool,
    /// The tool accepts an `idempotency_key` argument.
    pub takes_idempotency_key: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error(
        "could not open an MCP session with {server} ({url}): {failure}; check that the URL is the server's MCP (streamable HTTP) endpoint"
    )]
    Connect { server: String, url: String, failure: String },
    /// The server never answered (refused, TLS, timeout).
    #[error("could not open an MCP session with {server} ({url}): {failure}")]
    Unreachable { server: String, url: String, failure: crate::security::tls::NetFailure },
    #[error("could not list the tools of {server}: {failure}")]
    ListTools { server: String, failure: String },
    /// The server answered 401/403 to `initialize`: it wants credentials we did not send,
    /// or refused the ones we did (the caller knows which and words it).
    #[error("{server} ({url}) refused the connection (HTTP {status})")]
    Refused { server: String, url: String, status: u16, challenge: Option<String> },
    /// A stdio server could not be started or did not speak MCP.
    #[error("could not start the MCP server {server}: {failure}")]
    Start { server: String, failure: String },
}

/// What Warden says in `initialize`. The protocol version is the newest one that has an
/// `initialize` handshake (rmcp's `LATEST` names a revision without one, which servers that
/// speak the handshake do not know).
fn client_info() -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("warden", env!("CARGO_PKG_VERSION")))
        .with_protocol_version(rmcp::model::ProtocolVersion::LATEST_WITH_INITIALIZE)
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession").field("name", &self.name).field("url", &self.url).finish_non_exhaustive()
    }
}

pub struct McpSession {
    pub name: String,
    /// The URL, or for a stdio server its command line.
    pub url: String,
    /// The live connection; a restarted stdio server swaps in a new one while calls in
    /// flight finish on the old (dropped, and its process group killed, after the last).
    conn: parking_lot::Mutex<Arc<Conn>>,
    tools: Vec<ToolSpec>,
    manifest_hash: String,
    /// How to start a stdio server again; `None` for HTTP.
    stdio: Option<StdioStart>,
    /// Request ids and session ids of traced calls, as the transport saw them go out
    /// (shared by every connection a restarted stdio server gets).
    exchanges: Exchanges,
}

/// One running MCP client service, and for a stdio server its process group.
struct Conn {
    client: RunningService<RoleClient, ClientConfig>,
    /// A stdio server's process group, killed with the connection.
    _group: Option<super::stdio::GroupGuard>,
}

/// What a stdio server was started with (to start it again).
struct StdioStart {
    entry: crate::config::ServerEntry,
    command: String,
    args: Vec<String>,
    stderr: super::stdio::StderrSink,
    exchanges: Exchanges,
}

/// Why a stdio server could not be restarted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestartError {
    #[error("{0} is an HTTP server: Warden reconnects to it by itself when it answers again")]
    NotStdio(String),
    #[error(transparent)]
    Start(#[from] SessionError),
    #[error(
        "{server} started again, but its tool manifest changed ({old} → {new}); it was stopped. Review the tools with `warden tools` and approve them with `warden tools --approve`, then restart the console"
    )]
    ManifestChanged { server: String, old: String, new: String },
}

impl McpSession {
    /// Opens a session over streamable HTTP. With a token manager the caller must have
    /// obtained a token first (`claims()`), since initialize itself is authenticated;
    /// without one, `headers` are the only credentials (`auth = "headers"`), or none.
    pub async fn connect(
        name: &str,
        url: &str,
        http: reqwest::Client,
        tokens: Option<Arc<TokenManager>>,
        headers: &BTreeMap<String, crate::types::secret::Secret<String>>,
        overrides: &BTreeMap<String, ScopeSet>,
    ) -> Result<Self, SessionError> {
        let mut custom = std::collections::HashMap::new();
        for (k, v) in headers {
            if tokens.is_some() && k.eq_ignore_ascii_case("authorization") {
                tracing::warn!(server = name, "ignoring a static Authorization header: the token manager provides it");
                continue;
            }
            match (http::HeaderName::try_from(k.as_str()), http::HeaderValue::try_from(v.expose().as_str())) {
                (Ok(k), Ok(mut v)) => {
                    // Kept out of any debug output of the request.
                    v.set_sensitive(true);
                    custom.insert(k, v);
                }
                _ => {
                    return Err(SessionError::Connect {
                        server: name.to_string(),
                        url: url.to_string(),
                        failure: format!("the header {k:?} is not a valid HTTP header name and value"),
                    });
                }
            }
        }
        let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).custom_headers(custom);
        let exchanges = Exchanges::default();
        let transport = Observed::new(
            StreamableHttpClientTransport::with_client(AuthedHttp::new(http, tokens, exchanges.clone()), config),
            exchanges.clone(),
        );
        let client = client_info().serve(transport).await.map_err(|e| match init_failure(&e) {
            InitFailure::Net(failure) => {
                SessionError::Unreachable { server: name.to_string(), url: url.to_string(), failure }
            }
            InitFailure::Refused { status, challenge } => {
                SessionError::Refused { server: name.to_string(), url: url.to_string(), status, challenge }
            }
            InitFailure::Other(failure) => {
                SessionError::Connect { server: name.to_string(), url: url.to_string(), failure }
            }
        })?;
        Self::ready(name, url, Conn { client, _group: None }, overrides, exchanges).await
    }

    /// Starts a stdio server (`command` with `args`) and opens a session on its pipes. Its
    /// stderr goes to the log and, with `events`, out as `ServerStderr` events.
    pub async fn connect_stdio(
        entry: &crate::config::ServerEntry,
        command: &str,
        args: &[String],
        overrides: &BTreeMap<String, ScopeSet>,
        events: Option<crate::types::event::EventBus>,
    ) -> Result<Self, SessionError> {
        let stderr = super::stdio::StderrSink::new(events);
        let exchanges = Exchanges::default();
        let start = StdioStart {
            entry: entry.clone(),
            command: command.to_string(),
            args: args.to_vec(),
            stderr,
            exchanges: exchanges.clone(),
        };
        let conn = start.start().await?;
        let mut session = Self::ready(&entry.name, &entry.endpoint(), conn, overrides, exchanges).await?;
        session.stdio = Some(start);
        Ok(session)
    }

    /// Starts a stdio server again (after it exited, or to unstick it): a new process and
    /// MCP session, swapped in for the next calls. The tools must be the ones approved at
    /// start: a different manifest stops the new process and is refused.
    pub async fn restart(&self) -> Result<(), RestartError> {
        let start = self.stdio.as_ref().ok_or_else(|| RestartError::NotStdio(self.name.clone()))?;
        let conn = start.start().await?;
        let listed = conn
            .client
            .list_all_tools()
            .await
            .map_err(|e| SessionError::ListTools { server: self.name.clone(), failure: classify(&e).message() })?;
        let hash = manifest_hash(&listed);
        if hash != self.manifest_hash {
            return Err(RestartError::ManifestChanged {
                server: self.name.clone(),
                old: self.manifest_hash[..12].to_string(),
                new: hash[..12].to_string(),
            });
        }
        *self.conn.lock() = Arc::new(conn);
        Ok(())
    }

    /// False once the connection has ended: a stdio server whose process exited (or
    /// closed its stdout). An HTTP session is always live here (its server may still be
    /// down; the health probe and the calls tell).
    pub fn is_alive(&self) -> bool {
        !self.conn.lock().client.peer().is_transport_closed()
    }

    /// A frontend listens now: a stdio server's stderr lines held so far go out as
    /// events, and the next ones as they come.
    pub fn attach_stderr(&self) {
        if let Some(start) = &self.stdio {
            start.stderr.attach();
        }
    }

    /// Whether the server is a child process Warden can restart.
    pub fn is_stdio(&self) -> bool {
        self.stdio.is_some()
    }

    /// Lists the tools of a freshly initialized session and pins the manifest.
    async fn ready(
        name: &str,
        endpoint: &str,
        conn: Conn,
        overrides: &BTreeMap<String, ScopeSet>,
        exchanges: Exchanges,
    ) -> Result<Self, SessionError> {
        let listed = conn.client.list_all_tools().await.map_err(|e| match classify(&e) {
            // Some servers let `initialize` through and ask for credentials on the first
            // real request: that is the same 401 challenge, and the caller treats it so
            // (OAuth discovery for a server whose auth is left to it).
            Failure::Unauthorized { www_authenticate } => SessionError::Refused {
                server: name.to_string(),
                url: endpoint.to_string(),
                status: 401,
                challenge: Some(www_authenticate),
            },
            // A grant too narrow to list the tools: the caller may step up.
            Failure::InsufficientScope { www_authenticate, .. } => SessionError::Refused {
                server: name.to_string(),
                url: endpoint.to_string(),
                status: 403,
                challenge: Some(www_authenticate),
            },
            failure => SessionError::ListTools { server: name.to_string(), failure: failure.message() },
        })?;
        let manifest_hash = manifest_hash(&listed);
        let tools = listed.iter().map(|t| spec(name, t, overrides)).collect();
        Ok(Self {
            name: name.to_string(),
            url: endpoint.to_string(),
            conn: parking_lot::Mutex::new(Arc::new(conn)),
            tools,
            manifest_hash,
            stdio: None,
            exchanges,
        })
    }

    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    pub fn manifest_hash(&self) -> &str {
        &self.manifest_hash
    }

    /// One `tools/call`, classified on failure.
    /// Calls `tool`; `traceparent` (OpenTelemetry export on) goes into `params._meta`.
    pub async fn call(
        &self,
        tool: &str,
        args: serde_json::Map<String, Value>,
        traceparent: Option<&str>,
    ) -> Result<CallToolResult, Failure> {
        let mut params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        if let Some(tp) = traceparent {
            let mut meta = serde_json::Map::new();
            meta.insert("traceparent".into(), Value::String(tp.to_string()));
            params.meta = Some(rmcp::model::RequestMetaObject::from(meta));
        }
        // The connection of the moment: a restart during the call does not cut it off.
        let conn = self.conn.lock().clone();
        conn.client.call_tool(params).await.map_err(|e| match e {
            // A stdio server's transport ends with its process: say that, and what to do.
            rmcp::ServiceError::TransportClosed if self.stdio.is_some() => Failure::ConnectionLost(format!(
                "the process of {} exited (`{}`); restart it with R on the console's token pane",
                self.name, self.url
            )),
            e => classify(&e),
        })
    }

    /// What went over the wire for the traced call with `traceparent` (its last attempt):
    /// the JSON-RPC request id, the MCP session, and the protocol version the connection
    /// negotiated. `None` when the call never reached the transport. Taken once.
    pub fn exchange(&self, traceparent: &str) -> Option<McpExchange> {
        let mut exchange = self.exchanges.take(traceparent)?;
        exchange.protocol_version =
            self.conn.lock().client.peer_info().map(|info| info.protocol_version.as_str().to_string());
        Some(exchange)
    }

    pub async fn close(self) {
        if let Ok(conn) = Arc::try_unwrap(self.conn.into_inner()) {
            let _ = conn.client.cancel().await;
        }
    }
}

impl StdioStart {
    /// Spawns the process and runs the MCP handshake on its pipes.
    async fn start(&self) -> Result<Conn, SessionError> {
        let name = &self.entry.name;
        let endpoint = self.entry.endpoint();
        let (process, group) = super::stdio::spawn(&self.entry, &self.command, &self.args, self.stderr.clone())
            .map_err(|failure| SessionError::Start { server: name.clone(), failure })?;
        let client = client_info().serve(Observed::new(process, self.exchanges.clone())).await.map_err(|e| {
            SessionError::Start {
                server: name.clone(),
                failure: match init_failure(&e) {
                    InitFailure::Other(why) => format!("`{endpoint}` started but {why}; its stderr is in Warden's log"),
                    _ => format!("`{endpoint}` started but the MCP handshake failed; its stderr is in Warden's log"),
                },
            }
        })?;
        Ok(Conn { client, _group: Some(group) })
    }
}

fn spec(server: &str, t: &Tool, overrides: &BTreeMap<String, ScopeSet>) -> ToolSpec {
    let advertised = t.meta.as_ref().and_then(|m| policy::advertised(m));
    let (required_scopes, scopes_source) = match (overrides.get(t.name.as_ref()), advertised) {
        (Some(s), _) => (s.clone(), ScopesSource::Config),
        (None, Some(s)) => (s, ScopesSource::Advertised),
        (None, None) => (ScopeSet::new(), ScopesSource::Unknown),
    };
    let input_schema = Value::Object((*t.input_schema).clone());
    let takes_idempotency_key = input_schema.pointer("/properties/idempotency_key").is_some();
    let hints = match t.annotations.as_ref() {
        Some(a) => {
            ToolHints::from_annotations(a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        }
        None => ToolHints::default(),
    };
    ToolSpec {
        id: ToolName::new(server, t.name.to_string()),
        description: t.description.as_deref().unwrap_or_default().to_string(),
        input_schema,
        required_scopes,
        scopes_source,
        hints,
        retry_safe: hints.retry_safe(),
        takes_idempotency_key,
    }
}

enum InitFailure {
    Net(crate::security::tls::NetFailure),
    /// 401 or 403, with the `WWW-Authenticate` challenge when there was one.
    Refused {
        status: u16,
        challenge: Option<String>,
    },
    Other(String),
}

/// What went wrong opening a session, in words: rmcp's own messages name the transport's
/// Rust type ("Transport [rmcp::transport::worker::WorkerTransport<…>]") or print the
/// server's reply with `{:?}`, which tells a user nothing.
fn init_failure(e: &rmcp::service::ClientInitializeError) -> InitFailure {
    use rmcp::service::ClientInitializeError as E;
    use rmcp::transport::streamable_http_client::StreamableHttpError;
    let other = |s: &str| InitFailure::Other(s.to_string());
    match e {
        E::TransportError { error, context } => {
            let context = context.trim_start_matches("when ");
            match error.error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
                Some(StreamableHttpError::AuthRequired(a)) => {
                    InitFailure::Refused { status: 401, challenge: Some(a.www_authenticate_header.clone()) }
                }
                Some(StreamableHttpError::InsufficientScope(s)) => {
                    InitFailure::Refused { status: 403, challenge: Some(s.www_authenticate_header.clone()) }
                }
                // rmcp words a 401/403 without a challenge as "HTTP 401 Unauthorized: body".
                Some(StreamableHttpError::UnexpectedServerResponse(why))
                    if why.starts_with("HTTP 401") || why.starts_with("HTTP 403") =>
                {
                    InitFailure::Refused {
                        status: if why.starts_with("HTTP 401") { 401 } else { 403 },
                        challenge: None,
                    }
                }
                Some(StreamableHttpError::Client(re)) => {
                    let failure = crate::security::tls::NetFailure::of(re);
                    match failure {
                        crate::security::tls::NetFailure::Other(why) => {
                            InitFailure::Other(format!("{why} (while trying to {context})"))
                        }
                        net => InitFailure::Net(net),
                    }
                }
                // rmcp ends some messages with ": " and an empty body.
                Some(http) => InitFailure::Other(format!(
                    "{} (while trying to {context})",
                    classify_http_words(http).trim_end_matches([':', ' '])
                )),
                None => InitFailure::Other(format!("the connection failed (while trying to {context})")),
            }
        }
        // rmcp tries the newer discovery handshake, then the legacy one; the legacy
        // attempt's failure is the one that speaks to this server.
        E::LegacyFallbackFailed { fallback, .. } => init_failure(fallback),
        E::ExpectedInitResponse(_) | E::ExpectedInitResult(_) | E::ConflictInitResponseId(..) => {
            other("the server did not answer `initialize` as an MCP server does")
        }
        E::UncorrelatedErrorResponse { .. } => other("the server answered a different request than it was asked"),
        E::ConnectionClosed(why) => InitFailure::Other(format!("the server closed the connection ({why})")),
        E::JsonRpcError(err) => {
            InitFailure::Other(format!("the server refused `initialize`: {} ({})", err.message, err.code.0))
        }
        E::NoCompatibleProtocolVersion { .. } => other("the server speaks no MCP protocol version this client does"),
        E::Cancelled => other("cancelled"),
        _ => other("the MCP handshake failed"),
    }
}

/// An HTTP-level failure of the handshake in words (401, 403, a status, a body that is not
/// MCP).
fn classify_http_words(e: &rmcp::transport::streamable_http_client::StreamableHttpError<reqwest::Error>) -> String {
    use rmcp::transport::streamable_http_client::StreamableHttpError as H;
    match e {
        H::UnexpectedServerResponse(why) => format!("unexpected server response: {why}"),
        H::UnexpectedContentType(ct) => {
            format!("the server answered with content type {}", ct.as_deref().unwrap_or("(none)"))
        }
        other => super::classify::classify_http(other).message(),
    }
}

/// SHA-256 over the canonical JSON of every tool's name, description and schemas, sorted
/// by name, so the same manifest always hashes the same whatever order it came in.
pub fn manifest_hash(tools: &[Tool]) -> String {
    let mut entries: Vec<Value> = tools
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "description": t.description,
                "input_schema": Value::Object((*t.input_schema).clone()),
                "output_schema": t.output_schema.as_ref().map(|s| Value::Object((**s).clone())),
                "meta": t.meta.as_ref().map(|m| Value::Object(m.0.clone())),
            })
        })
        .collect();
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let canonical = canonical_json(&Value::Array(entries));
    crate::types::secret::hex(&crate::types::secret::sha256(canonical.as_bytes()))
}

/// JSON with object keys sorted at every level.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical_json(&m[*k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":null}}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":null,"d":[{"x":2,"y":1}]},"b":1}"#);
    }
}
