//! `warden token`, `warden tools` and `warden call`: the client layer from the command line.
//! Output is for people by default and JSON with `--json`; exit codes tell scripts what
//! happened (see `Exit`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::{AuthMode, ClientSection, Config, ServerEntry, Transport};
use crate::mcp::secure_tool::{CallPolicy, CallReport};
use crate::mcp::{ClientError, ClientStack, token_manager};
use crate::types::confirm::Confirmer;
use crate::types::event::{CallOutcome, EventBus, FailureClass, Scope, TokenState};
use crate::types::scope::ScopeSet;
use crate::types::secret::{Fingerprint, Secret};

/// Process exit codes of the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Other = 1,
    /// The command line itself is wrong (clap uses the same code for its own errors).
    Usage = 2,
    Denied = 3,
    Auth = 4,
    RateLimited = 5,
    ToolError = 6,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

pub struct ClientArgs<'a> {
    pub config: Option<&'a Path>,
    pub state_dir: &'a Path,
    pub scopes: Option<&'a str>,
    pub json: bool,
    /// `--url` / `--stdio` / `--header`: one server from the command line.
    pub adhoc: super::AdHocArgs,
    /// `--auth` / `--step-up`: logging in to a server that needs OAuth.
    pub login: super::LoginArgs,
}

/// The config, and the `--scopes` override; a malformed `--scopes` is a usage error
/// (`Err` holds the exit code, the message already printed).
fn load(args: &ClientArgs<'_>) -> anyhow::Result<Result<(Config, Option<ScopeSet>), ExitCode>> {
    let scopes = match args.scopes.map(ScopeSet::parse).transpose() {
        Ok(s) => s,
        Err(e) => {
            return Ok(Err(usage(&format!(
                "--scopes takes space-separated scopes, e.g. --scopes \"customer:read ticket:create\": {e}"
            ))));
        }
    };
    let mut config = match adhoc_server(&args.adhoc) {
        Ok(None) => Config::load(args.config)?.0,
        Ok(Some(entry)) => {
            // The server comes from the command line; a config named with --config still
            // lends its [client] section (for an OAuth server), nothing else is read.
            let client = match args.config {
                Some(path) => Config::load(Some(path))?.0.client,
                None => None,
            };
            Config { client: adhoc_client(&args.adhoc, client), servers: vec![entry], ..Config::default() }
        }
        Err(msg) => return Ok(Err(usage(&msg))),
    };
    if let Err(msg) = args.login.apply(&mut config, args.state_dir) {
        return Ok(Err(usage(&msg)));
    }
    Ok(Ok((config, scopes)))
}

/// The server `--url`/`--stdio`/`--header` describe, if any; `Err` is a usage message.
pub fn adhoc_server(a: &super::AdHocArgs) -> Result<Option<ServerEntry>, String> {
    let entry = match (&a.url, &a.stdio) {
        (None, None) => return Ok(None),
        (Some(url), _) => {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .ok_or_else(|| format!("--url {url:?} is not a URL, e.g. --url https://mcp.example.com/mcp"))?;
            let mut entry = ServerEntry::http(host, url.clone());
            for h in &a.headers {
                let Some((name, value)) = h.split_once(':') else {
                    return Err(format!(
                        "--header takes 'Name: value', e.g. --header 'X-API-Key: ${{MY_KEY}}'; got {h:?}"
                    ));
                };
                entry.headers.insert(name.trim().to_string(), Secret::new(value.trim().to_string()));
            }
            if !entry.headers.is_empty() {
                entry.auth = Some(AuthMode::Headers);
            }
            if a.client_id.is_some() {
                entry.auth = Some(AuthMode::Oauth);
            }
            entry
        }
        (None, Some(line)) => {
            let words = shell_words::split(line).map_err(|e| format!("--stdio {line:?}: {e} (check the quotes)"))?;
            let Some((command, args)) = words.split_first() else {
                return Err(
                    "--stdio needs a command, e.g. --stdio 'npx -y @modelcontextprotocol/server-everything'".into()
                );
            };
            let name = Path::new(command).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ServerEntry::stdio(name, command.clone(), args.to_vec())
        }
    };
    entry.resolved().map(Some)
}

/// The `[client]` that `--client-id` / `--client-secret-env` / `--client-key` describe,
/// or `lent` (a config's `[client]`) when they are not given. From `lent` only the trust
/// settings carry over (CA file, timeout): its issuer and credentials belong to another
/// client. The issuer is left to discovery. Plain http is allowed for loopback addresses
/// only when the user's `--url` is itself a loopback http URL (a local test server, the
/// MCP conformance suite's mock servers): its metadata and token endpoints are then on the
/// same machine too, and http off loopback stays refused.
pub fn adhoc_client(a: &super::AdHocArgs, lent: Option<ClientSection>) -> Option<ClientSection> {
    let Some(client_id) = &a.client_id else { return lent };
    let loopback_http = a
        .url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| u.scheme() == "http" && crate::security::urls::is_loopback(&u));
    let mut client = ClientSection::adhoc(client_id);
    if let Some(lent) = lent {
        client.ca_file = lent.ca_file;
        client.ca_only = lent.ca_only;
        client.timeout_secs = lent.timeout_secs;
        client.allow_http_loopback = lent.allow_http_loopback;
    }
    client.client_secret_env = a.client_secret_env.clone();
    client.client_key = a.client_key.clone();
    if let (Some(idp_token_endpoint), Some(idp_client_id), Some(id_token_env)) =
        (&a.idp_token_endpoint, &a.idp_client_id, &a.id_token_env)
    {
        client.identity_assertion = Some(crate::config::IdentityAssertionSection {
            idp_token_endpoint: idp_token_endpoint.clone(),
            idp_client_id: idp_client_id.clone(),
            id_token_env: id_token_env.clone(),
        });
    }
    client.allow_http_loopback |= loopback_http;
    Some(client)
}

/// Prints a usage error and returns its exit code.
fn usage(msg: &str) -> ExitCode {
    eprintln!("warden: {msg}");
    Exit::Usage.into()
}

/// Maps a connection-time error to an exit code after printing it.
fn fail(e: ClientError) -> anyhow::Result<ExitCode> {
    eprintln!("warden: {e}");
    Ok(if e.is_auth() { Exit::Auth } else { Exit::Other }.into())
}

pub async fn token(args: ClientArgs<'_>) -> anyhow::Result<ExitCode> {
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let (entry, tokens) = match token_manager(&config, scopes, EventBus::new()).await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Err(e) = tokens.claims().await {
        let tls = config.client.as_ref().map(crate::mcp::client_tls).unwrap_or_default();
        return fail(ClientError::token(&entry.name, e, &tls));
    }
    let info = tokens.info().context("token manager holds no token after a successful fetch")?;
    if args.json {
        let now = crate::types::time::now_epoch();
        let mut v = serde_json::to_value(&info)?;
        v["seconds_to_expiry"] = json!(info.seconds_to_expiry(now));
        v["summary"] = json!(super::token_view::headline(&info));
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!("{}", render_token(&info, crate::types::time::now_epoch()));
    }
    Ok(Exit::Ok.into())
}

pub use super::token_view::render_token;

pub async fn tools(args: ClientArgs<'_>, approve: bool) -> anyhow::Result<ExitCode> {
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let pins = args.state_dir.join("manifests.json");
    let stack =
        match ClientStack::connect_pinned(&config, scopes, CallPolicy::default(), EventBus::new(), Some(&pins)).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
    let mut out = Vec::new();
    let mut text = String::new();
    for server in &stack.servers {
        let token = server.tokens.as_ref().and_then(|t| t.info());
        let granted = token.as_ref().map(|t| t.granted.clone()).unwrap_or_default();
        // An opaque token whose scopes nobody stated: no verdict, the server decides.
        let unknown = token.as_ref().is_some_and(|t| {
            matches!(t.state, TokenState::Opaque { scopes: crate::types::event::ScopeOrigin::Unknown, .. })
        });
        let granted_text =
            if unknown { "unknown (opaque token: the server decides)".into() } else { granted.to_string() };
        let blocked = server.tools.iter().any(|t| t.is_blocked());
        if approve {
            crate::mcp::pins::approve(&pins, &server.entry.endpoint(), server.session.manifest_hash());
        }
        let status = match (blocked, approve) {
            (true, true) => "  — CHANGED, now approved",
            (true, false) => "  — CHANGED since approved: tools blocked (review, then --approve)",
            _ => "",
        };
        // Scopes mean something only with OAuth; other servers say how they are reached.
        let grant = match server.auth {
            AuthMode::Oauth => format!("granted: {granted_text}"),
            other => format!("auth: {} (no token, no scopes to check)", other.label()),
        };
        text.push_str(&format!(
            "{} {} (manifest {}){status}\n  {grant}\n",
            server.entry.name,
            server.entry.endpoint(),
            &server.session.manifest_hash()[..16],
        ));
        for tool in &server.tools {
            let missing = if unknown { ScopeSet::new() } else { granted.missing(&tool.spec.required_scopes) };
            let mark = match (unknown, missing.is_empty()) {
                (true, _) => "? unknown",
                (false, true) => "✓ allowed",
                (false, false) => "✗ denied ",
            };
            let needs = if tool.spec.required_scopes.is_empty() {
                "(none advertised)".to_string()
            } else {
                tool.spec.required_scopes.to_string()
            };
            let why = if missing.is_empty() { String::new() } else { format!("  missing {missing}") };
            // What the annotations say, and whether a call waits for confirmation.
            let hints = tool.spec.hints;
            let asks = if tool.needs_confirmation() { ", asks to confirm" } else { "" };
            text.push_str(&format!(
                "  {mark}  {:<26} needs {needs}{why}\n      {:<7} {}{asks}\n",
                tool.spec.id.name,
                hints.marker(),
                hints.describe()
            ));
            out.push(json!({
                "server": server.entry.name,
                "tool": tool.spec.id.name,
                "description": tool.spec.description,
                "required_scopes": tool.spec.required_scopes,
                "scopes_source": tool.spec.scopes_source,
                "allowed": if unknown { Value::Null } else { Value::Bool(missing.is_empty()) },
                "missing_scopes": missing,
                "hints": hints,
                "confirm": server.entry.confirm,
                "needs_confirmation": tool.needs_confirmation(),
            }));
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&Value::Array(out))?);
    } else {
        out!("{text}");
    }
    stack.close().await;
    Ok(Exit::Ok.into())
}

/// The ARGS of `warden call`: a JSON object, or a usage error saying what was wrong with it.
pub fn parse_call_args(json_args: &str) -> Result<Value, String> {
    let example = r#"e.g. '{"customer_id": "ABC123"}'"#;
    match serde_json::from_str::<Value>(json_args) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(format!("ARGS must be a JSON object, {example}; got {json_args:?}")),
        Err(e) => Err(format!("ARGS is not valid JSON ({e}); pass a JSON object, {example}; got {json_args:?}")),
    }
}

/// `warden call`: one tool call. A call that needs confirmation (the server's `confirm`
/// policy) runs only with `yes`: the command line cannot ask, and a script that changes
/// or destroys data should say so.
pub async fn call(
    args: ClientArgs<'_>,
    tool: &str,
    json_args: &str,
    precheck: bool,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    // A usage error, reported before anything is loaded or contacted.
    let tool_args = match parse_call_args(json_args) {
        Ok(v) => v,
        Err(msg) => return Ok(usage(&msg)),
    };
    let (config, scopes) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let events = EventBus::recording();
    let _security = crate::session::audit::attach(&events, args.state_dir, &config)?;
    let policy = CallPolicy { precheck, confirmer: Confirmer::Flag { yes }, ..CallPolicy::default() };
    let pins = args.state_dir.join("manifests.json");
    let stack = match ClientStack::connect_pinned(&config, scopes, policy, events.clone(), Some(&pins)).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let Some(secure) = stack.tool(tool).cloned() else {
        let names: Vec<String> = stack.tool_names().iter().map(|(_, shown)| shown.to_string()).collect();
        eprintln!("warden: no tool named {tool:?}; available: {} (or SERVER.TOOL)", names.join(", "));
        stack.close().await;
        return Ok(Exit::Other.into());
    };
    let report = secure.call(tool_args, &Scope::default()).await;
    let exit = exit_of(&report.outcome);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&json!({"report": report, "events": events.recorded()}))?);
    } else {
        out!("{}", render_report(&report));
    }
    drop(secure);
    stack.close().await;
    Ok(exit.into())
}

fn exit_of(outcome: &CallOutcome) -> Exit {
    match outcome {
        CallOutcome::Success { .. } => Exit::Ok,
        CallOutcome::ToolError { .. } => Exit::ToolError,
        CallOutcome::Denied { .. } => Exit::Denied,
        CallOutcome::Failed { class: FailureClass::Unauthorized, .. } => Exit::Auth,
        CallOutcome::Failed { class: FailureClass::RateLimited, .. } => Exit::RateLimited,
        CallOutcome::Failed { .. } => Exit::Other,
    }
}

pub fn render_report(r: &CallReport) -> String {
    let timing =
        format!("{}, {:.1} ms", crate::types::text::counted(r.attempts as u64, "attempt", "attempts"), r.latency_ms);
    match &r.outcome {
        CallOutcome::Success { structured, text } => {
            let body =
                structured.as_ref().and_then(|v| serde_json::to_string_pretty(v).ok()).unwrap_or_else(|| text.clone());
            format!("✓ {} ({timing})\n{body}\n", r.tool)
        }
        CallOutcome::ToolError { message, .. } => {
            format!("✗ {} reported an error ({timing}): {message}\n", r.tool.name)
        }
        CallOutcome::Denied { side, required, granted, missing, www_authenticate, .. } => {
            let mut by = side.explain().to_string();
            if let Some(w) = www_authenticate {
                by.push_str(&format!("\n  WWW-Authenticate: {w}"));
            }
            format!(
                "✗ DENIED {}: missing {missing}\n  {by}\n  required {required}; granted {granted}\n  fix: re-grant with --scopes including {missing} (the client must be registered for it)\n",
                r.tool.name
            )
        }
        CallOutcome::Failed { class, message } => {
            format!("✗ {} failed ({}, {timing}): {message}\n", r.tool.name, class.label())
        }
    }
}

/// `warden servers`: every configured server, connected one by one (a server that fails
/// does not hide the others), with transport, auth mode and status.
pub async fn servers(args: ClientArgs<'_>) -> anyhow::Result<ExitCode> {
    let (config, _) = match load(&args)? {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    if config.servers.is_empty() {
        return fail(ClientError::NoServers);
    }
    let http = match crate::mcp::mcp_http(&config) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let (mut text, mut rows, mut all_ok) = (String::new(), Vec::new(), true);
    for entry in &config.servers {
        let auth = entry.auth_mode(config.client.is_some());
        let transport = match entry.transport() {
            Transport::Http { .. } => "http",
            Transport::Stdio { .. } => "stdio",
        };
        // Header values are secrets: shown by name and fingerprint only.
        let headers: Vec<(String, Fingerprint)> =
            entry.headers.iter().map(|(k, v)| (k.clone(), Fingerprint::of(v.expose().as_bytes()))).collect();
        let mut auth_words = match auth {
            AuthMode::Headers => {
                format!("headers ({})", headers.iter().map(|(k, f)| format!("{k}: {f}")).collect::<Vec<_>>().join(", "))
            }
            other => other.label().to_string(),
        };
        let result = crate::mcp::connect_server(&config, entry, &http, &EventBus::new()).await;
        let (mut auth_label, mut extra, mut extra_json) = (auth.label().to_string(), String::new(), Value::Null);
        // Auth left to the server, and Warden logged in (or used the stored login): say so.
        if let Ok(c) = &result
            && c.auth != auth
        {
            auth_label = c.auth.label().to_string();
            auth_words = format!("{} (discovered, logged in)", c.auth.label());
        }
        let (status, status_word, tools, error) = match &result {
            Ok(c) => (
                format!("✓ reachable, {}", crate::types::text::counted(c.tools.len() as u64, "tool", "tools")),
                "reachable",
                Some(c.tools.len()),
                None,
            ),
            // Auth left to the server and it asked for OAuth: what discovery found is the
            // answer, not an error to dump (`warden tools --url` prints the whole story).
            Err(ClientError::NeedsOauth { discovered: d, .. }) => {
                auth_label = "oauth".into();
                auth_words = "oauth (discovered)".into();
                extra =
                    format!("  issuer     {} (token endpoint {})\n", d.authorization_server, d.metadata.token_endpoint);
                extra_json = json!({
                    "authorization_server": d.authorization_server,
                    "token_endpoint": d.metadata.token_endpoint,
                    "scopes": d.scopes.to_string(),
                    "registration_endpoint": d.registration_endpoint(),
                });
                // Logging in is possible (authorization code + PKCE): say so first.
                let login = d.metadata.authorization_endpoint.is_some()
                    && crate::mcp::login::advertises_s256(d)
                    && config.login.mode.is_none();
                (
                    format!(
                        "✗ needs credentials: {}add a [client] section with issuer = \"{}\", client_id and client_secret_env",
                        if login { "log in with --auth browser (or --auth headless), or " } else { "" },
                        d.authorization_server
                    ),
                    "needs credentials",
                    None,
                    None,
                )
            }
            Err(e) => (format!("✗ {e}"), "error", None, Some(e.to_string())),
        };
        if result.is_err() {
            all_ok = false;
        }
        text.push_str(&format!(
            "{}\n  transport  {transport}  {}\n  auth       {auth_words}\n{extra}  status     {status}\n",
            entry.name,
            entry.endpoint()
        ));
        rows.push(json!({
            "name": entry.name,
            "transport": transport,
            "endpoint": entry.endpoint(),
            "auth": auth_label,
            "auth_discovered": !extra_json.is_null(),
            "discovered": extra_json,
            "headers": headers.iter().map(|(k, f)| json!({"name": k, "fingerprint": f})).collect::<Vec<_>>(),
            "status": status_word,
            "reachable": result.is_ok(),
            "tools": tools,
            "error": error,
        }));
        if let Ok(c) = result {
            close_one(c).await;
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&Value::Array(rows))?);
    } else {
        out!("{text}");
    }
    Ok(if all_ok { Exit::Ok } else { Exit::Other }.into())
}

/// Closes one server's session (a stdio child is shut down in order).
async fn close_one(c: crate::mcp::Connected) {
    drop(c.tools);
    if let Ok(session) = std::sync::Arc::try_unwrap(c.session) {
        session.close().await;
    }
}

/// A revocation `warden logout` tried: the endpoint, and what it answered.
type RevokeAttempt = (String, Result<(), crate::auth::revoke::RevokeError>);

/// How long `warden logout` waits for a revocation endpoint before forgetting anyway.
pub const REVOKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `warden logout [SERVER]`: for each stored login of SERVER (its name, or the URL given to
/// --url), or of every server, first revokes the refresh token at the authorization server's
/// RFC 7009 endpoint when it offers one (as the client the login registered, within
/// `REVOKE_TIMEOUT`), then forgets the login whatever the revocation did, and says which
/// happened. The next run logs in again.
pub async fn logout(config: Option<&Path>, state_dir: &Path, server: Option<&str>) -> anyhow::Result<ExitCode> {
    use crate::auth::refresh_store::StoreError;
    use crate::auth::revoke::{TokenTypeHint, revoke};
    let (clients_path, store) = crate::auth::authcode::state_paths(state_dir);
    // An unreadable store has nothing to revoke with; `forget` removes it below.
    let stored = match store.entries() {
        Ok(all) => all,
        Err(StoreError::Tampered { .. }) => Vec::new(),
        Err(e) => return Err(e).with_context(|| "could not read the stored logins"),
    };
    let mut revoked: Vec<(String, Option<RevokeAttempt>)> = Vec::new();
    let mut http: Option<Result<reqwest::Client, String>> = None;
    for login in stored.iter().filter(|l| l.is_for(server)) {
        let (Some(endpoint), Some(token)) = (&login.revocation_endpoint, &login.refresh_token) else {
            revoked.push((login.server.clone(), None));
            continue;
        };
        // Built once, when there is something to revoke. A config or CA file that cannot be
        // used fails the revocations, not the logout: the logins are forgotten all the same.
        let http = http.get_or_insert_with(|| {
            let (config, _) = Config::load(config).map_err(|e| e.to_string())?;
            let tls = config.client.as_ref().map(crate::mcp::client_tls).unwrap_or_default();
            crate::security::tls::http_client(&tls, REVOKE_TIMEOUT).map_err(|e| e.to_string())
        });
        let http = match http {
            Ok(http) => http,
            Err(cause) => {
                let failed = Err(crate::auth::revoke::RevokeError::NoClient(cause.clone()));
                revoked.push((login.server.clone(), Some((endpoint.clone(), failed))));
                continue;
            }
        };
        let client = crate::auth::register::Registered::stored_for(
            &clients_path,
            &login.issuer,
            &login.resource,
            &login.client_id,
        );
        let result = revoke(http, endpoint, token, TokenTypeHint::RefreshToken, &client.authenticator()).await;
        if let Err(e) = &result {
            tracing::warn!(server = %login.server, endpoint = %endpoint, error = %e, "refresh token revocation failed");
        }
        revoked.push((login.server.clone(), Some((endpoint.clone(), result))));
    }
    let forgotten = store.forget(server).with_context(|| "could not update the stored logins")?;
    match (forgotten.is_empty(), server) {
        (true, Some(s)) => {
            eprintln!("warden: no stored login for {s}; nothing to forget (`warden logout` forgets every server's)");
            Ok(Exit::Other.into())
        }
        (true, None) => {
            outln!("no stored logins");
            Ok(ExitCode::SUCCESS)
        }
        (false, _) => {
            // `forget` names the logins in the store's order, the one they were read in.
            for (i, name) in forgotten.iter().enumerate() {
                match revoked.get(i).filter(|(n, _)| n == name).and_then(|(_, r)| r.as_ref()) {
                    Some((url, Ok(()))) => outln!("revoked at {url} and forgot the login for {name}"),
                    Some((url, Err(cause))) => outln!(
                        "forgot the login for {name} (revocation at {url} failed: {cause}; the refresh token may stay valid until it expires)"
                    ),
                    None => outln!("forgot the login for {name}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::AdHocArgs;

    fn args(url: &str) -> AdHocArgs {
        AdHocArgs {
            url: Some(url.into()),
            client_id: Some("agent".into()),
            client_secret_env: Some("AGENT_SECRET".into()),
            ..AdHocArgs::default()
        }
    }

    #[test]
    fn client_flags_make_an_oauth_client_with_a_discovered_issuer() {
        let mut lent = ClientSection::new("https://pinned.example", "other-client");
        lent.client_secret_env = Some("OTHER_SECRET".into());
        lent.ca_file = Some("/etc/ca.pem".into());
        lent.timeout_secs = Some(5);
        let c = adhoc_client(&args("https://mcp.example.com/mcp"), Some(lent)).unwrap();
        assert_eq!((c.client_id.as_str(), c.issuer.as_deref()), ("agent", None), "the issuer is discovered");
        assert_eq!(c.client_secret_env.as_deref(), Some("AGENT_SECRET"), "not the lent client's secret");
        assert_eq!((c.ca_file.as_deref(), c.timeout_secs), (Some(Path::new("/etc/ca.pem")), Some(5)), "trust kept");
        assert!(!c.allow_http_loopback, "an https --url allows no http");
        let entry = adhoc_server(&args("https://mcp.example.com/mcp")).unwrap().unwrap();
        assert_eq!(entry.auth, Some(AuthMode::Oauth));
    }

    #[test]
    fn plain_http_only_when_the_url_is_loopback_http() {
        for (url, allowed) in [
            ("http://localhost:3000/mcp", true),
            ("http://127.0.0.1:3000/mcp", true),
            ("http://[::1]:3000/mcp", true),
            ("https://127.0.0.1:3000/mcp", false),
            ("http://mcp.example.com/mcp", false),
        ] {
            assert_eq!(adhoc_client(&args(url), None).unwrap().allow_http_loopback, allowed, "{url}");
        }
        // Without --client-id the lent [client] is used as it is.
        let lent = ClientSection::new("https://as.example", "c");
        let none = AdHocArgs { url: Some("http://localhost/mcp".into()), ..AdHocArgs::default() };
        assert_eq!(adhoc_client(&none, Some(lent)).unwrap().issuer.as_deref(), Some("https://as.example"));
    }
}
