//! OAuth without a config file: `--url` with `--client-id` and `--client-secret-env` (or
//! `--client-key`) against a running `warden serve`. The authorization server is the one
//! the MCP server's metadata names (no issuer configured anywhere); what the user sees is
//! asserted: output, exit codes, and that the secret appears nowhere.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use axum::response::IntoResponse;

const SECRET: &str = "demo-support-agent-secret-4f9c2e";

struct Server {
    child: Child,
    state: tempfile::TempDir,
    mcp: String,
    /// The issuer `serve` started (read from its client.toml, for the assertions only: the
    /// client under test is never told).
    issuer: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn ca(&self) -> PathBuf {
        self.state.path().join("tls/ca.pem")
    }
}

fn serve() -> Server {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("warden serve:"), "{line}");
    let text = std::fs::read_to_string(state.path().join("client.toml")).unwrap();
    let config = warden::config::Config::parse(&text, Path::new("client.toml")).unwrap();
    let mcp = config.servers[0].url.clone();
    let issuer = config.client.and_then(|c| c.issuer).expect("client.toml names the issuer");
    Server { child, state, mcp, issuer }
}

/// The client with no config file, trusting the server's dev CA through SSL_CERT_FILE (as
/// a user of a private CA would), the secret in `WARDEN_TEST_SECRET`.
fn client(s: &Server, args: &[&str], secret: Option<&str>) -> Output {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("--state-dir").arg(state.path()).args(args).env("SSL_CERT_FILE", s.ca()).env("WARDEN_LOG", "trace");
    match secret {
        Some(v) => cmd.env("WARDEN_TEST_SECRET", v),
        None => cmd.env_remove("WARDEN_TEST_SECRET"),
    };
    cmd.env_remove("WARDEN_CONFIG").env("XDG_CONFIG_HOME", state.path());
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn client_credentials_with_flags_and_the_discovered_issuer() {
    let s = serve();
    let flags = ["--url", &s.mcp, "--client-id", "support-agent", "--client-secret-env", "WARDEN_TEST_SECRET"];
    let out = client(&s, &[&["tools"], &flags[..]].concat(), Some(SECRET));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("  granted: account:calculate customer:read ticket:create\n"), "{stdout}");
    assert!(stdout.contains("✓ allowed") && stdout.contains("get_customer_info"), "{stdout}");

    let call = [&["call"], &flags[..], &["get_customer_info", r#"{"customer_id":"ABC123"}"#, "--json"]].concat();
    let out = client(&s, &call, Some(SECRET));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["report"]["outcome"], "success", "{v}");
    assert_eq!(v["report"]["structured"]["name"], "Sarah Johnson", "{v}");
    // The token came from the issuer the server's metadata names, verified against its keys.
    let issued = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "token_issued")
        .unwrap_or_else(|| panic!("a token_issued event: {v}"));
    let state = &issued["token"]["state"];
    assert_eq!(
        (state["kind"].as_str(), state["issuer"].as_str()),
        (Some("verified"), Some(s.issuer.as_str())),
        "{issued}"
    );
    assert_eq!(state["client_id"], "support-agent");
    assert!(!text(&out).contains(SECRET), "the secret leaked");
}

#[test]
fn flag_mistakes_say_what_to_do() {
    let s = serve();
    let base = ["tools", "--url", &s.mcp, "--client-id", "support-agent"];

    let out = client(&s, &[&base[..], &["--client-secret-env", "WARDEN_TEST_SECRET"]].concat(), Some("wrong"));
    assert_eq!(out.status.code(), Some(4), "an auth failure: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("returned invalid_client"), "{err}");
    assert!(err.contains("or --client-id and --client-secret-env/--client-key"), "{err}");

    let out = client(&s, &[&base[..], &["--client-secret-env", "WARDEN_TEST_SECRET"]].concat(), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "warden: environment variable WARDEN_TEST_SECRET (client_secret_env, or --client-secret-env) is not set: export it with the client secret"
    );

    // No credential at all: said before anything is contacted.
    let out = client(&s, &base, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "warden: 127.0.0.1: no client secret: set client_secret, or client_secret_env to the name of an environment variable that holds it (--client-secret-env VAR), or client_key to a PEM private key for private_key_jwt (--client-key PEM_FILE)"
    );

    // A key where the server takes only secrets.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.pem");
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(&key, kp.serialize_pem()).unwrap();
    let out = client(&s, &[&base[..], &["--client-key", key.to_str().unwrap()]].concat(), None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "the authorization server accepts client_secret_basic, client_secret_post, none at its token endpoint, and this client has a private key"
        ),
        "{}",
        text(&out)
    );

    // The credential flags belong to --client-id, and --client-id to --url.
    let out = client(&s, &["tools", "--url", &s.mcp, "--client-secret-env", "X"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = client(&s, &["tools", "--client-id", "support-agent"], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// RFC 9728 §3.3 with no issuer configured: a server whose metadata names another resource
/// gets nothing. The authorization server it names (here the same hostile host) sees no
/// token request, so the secret never leaves.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_naming_another_resource_gets_no_credentials() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let prm = serde_json::json!({"resource": "https://bank.example/mcp", "authorization_servers": [base]});
    let meta = serde_json::json!({"issuer": base, "token_endpoint": format!("{base}/token")});
    let challenge = format!(r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#);
    let token_requests = Arc::new(AtomicUsize::new(0));
    let seen = token_requests.clone();
    let router = axum::Router::new()
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            axum::routing::get(move || std::future::ready(axum::Json(prm.clone()))),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            axum::routing::get(move || std::future::ready(axum::Json(meta.clone()))),
        )
        .route(
            "/token",
            axum::routing::post(move || {
                seen.fetch_add(1, Ordering::SeqCst);
                std::future::ready(axum::Json(serde_json::json!({"access_token": "t", "token_type": "Bearer"})))
            }),
        )
        .route(
            "/mcp",
            axum::routing::post(move || {
                std::future::ready(
                    (axum::http::StatusCode::UNAUTHORIZED, [("www-authenticate", challenge.clone())], "")
                        .into_response(),
                )
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("{base}/mcp");
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            let state = tempfile::tempdir().unwrap();
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .arg("--state-dir")
                .arg(state.path())
                .args(["tools", "--url", &url, "--client-id", "agent", "--client-secret-env", "WARDEN_TEST_SECRET"])
                .env("WARDEN_TEST_SECRET", SECRET)
                .env("XDG_CONFIG_HOME", state.path())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "warden: 127.0.0.1 says it is the resource https://bank.example/mcp, which is not {url} (RFC 9728 §3.3); refusing to get a token for another resource. If this is intended, set `resource` for the server in the config"
        )
    );
    assert_eq!(token_requests.load(Ordering::SeqCst), 0, "no token request reached the authorization server");
}
