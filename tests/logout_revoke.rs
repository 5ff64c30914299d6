//! Issue 14 end to end, with the real binaries on loopback: `warden serve` (its issuer with
//! a demo user and `auto_approve`), and `warden tools --url … --auth headless` as a user
//! runs it — a login by dynamic registration and the authorization code, a second run on
//! the stored access token, a run on the stored refresh token (rotated at the issuer), then
//! `warden logout` revoking that refresh token at the issuer's RFC 7009 endpoint, after
//! which the issuer refuses it; and a logout whose revocation cannot reach the issuer still
//! forgets the login and says what that leaves.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use warden::auth::refresh_store::RefreshStore;

/// `warden serve` on port 0 with `config`; stopped (SIGTERM, then waited for) on drop.
struct Serve {
    child: Child,
    issuer: String,
    mcp: String,
    state: PathBuf,
}

impl Serve {
    fn start(state: &Path, config: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("warden serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("banner");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(line.starts_with("warden serve: issuer https://127.0.0.1:"), "{line}");
        Serve { issuer: words[3].to_string(), mcp: words[5].to_string(), state: state.to_path_buf(), child }
    }

    /// The server's audit decisions so far: (outcome, detail).
    fn decisions(&self) -> Vec<(String, String)> {
        warden::observe::audit::read_all(&self.state.join("audit"), "server")
            .expect("audit trail")
            .into_iter()
            .filter_map(|(_, e)| match e.kind {
                warden::types::event::EventKind::ServiceDecision { outcome, detail, .. } => {
                    Some((outcome.as_str().to_string(), detail.unwrap_or_default()))
                }
                _ => None,
            })
            .collect()
    }

    fn stop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// The Warden client with its own state dir, trusting the server's dev CA.
fn warden(client_state: &Path, ca: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--state-dir")
        .arg(client_state)
        .args(args)
        .env("SSL_CERT_FILE", ca)
        .env("NO_COLOR", "1")
        .output()
        .expect("warden runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn count(log: &[(String, String)], outcome: &str, detail_ends: &str) -> usize {
    log.iter().filter(|(o, d)| o == outcome && d.ends_with(detail_ends)).count()
}

#[test]
fn a_headless_login_refreshes_and_logout_revokes_the_refresh_token_at_warden_serve() {
    warden::install_crypto_provider();
    let tmp = tempfile::tempdir().unwrap();
    let (server_state, client_state) = (tmp.path().join("server"), tmp.path().join("client"));
    // The shipped config (demo user included) with auto-approve on, as for CI.
    let config = tmp.path().join("warden.toml");
    let shipped = warden::config::DEFAULT_CONFIG;
    assert_eq!(shipped.matches("auto_approve = false").count(), 1);
    std::fs::write(&config, shipped.replace("auto_approve = false", "auto_approve = true")).unwrap();
    let mut serve = Serve::start(&server_state, &config);
    let ca = server_state.join("tls/ca.pem");
    let tools = ["tools", "--url", serve.mcp.as_str(), "--auth", "headless"];

    // 1. Login: registration, authorization code, a token.
    let out = warden(&client_state, &ca, &tools);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("✓ allowed  get_customer_info"), "{}", text(&out.stdout));
    let log = serve.decisions();
    assert_eq!(count(&log, "client_registered", ""), 1, "{log:?}");
    assert_eq!(count(&log, "token_issued", "(authorization code approved by demo)"), 1, "{log:?}");
    let store = RefreshStore::in_state_dir(&client_state);
    let first = store.entries().unwrap().pop().expect("a stored login");
    assert_eq!(first.server, "127.0.0.1");
    assert_eq!(first.revocation_endpoint.as_deref(), Some(format!("{}/revoke", serve.issuer).as_str()));
    let r1 = first.refresh_token.clone().expect("a refresh token").expose().clone();

    // 2. The stored access token: nothing asked of the issuer.
    let out = warden(&client_state, &ca, &tools);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(count(&serve.decisions(), "token_issued", ""), 1, "no new token");

    // 3. Once the access token is past its time (its stored expiry moved to now, as if the
    // 15 minutes had gone by: a real wait has no place in a test, and the expiry cannot be
    // moved across processes otherwise), the stored refresh token gets a new one, rotated.
    let mut aged = first.clone();
    if let Some(access) = aged.access.as_mut() {
        access.expires_at = Some(warden::types::time::now_epoch());
    }
    store.save(aged).unwrap();
    let out = warden(&client_state, &ca, &tools);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = serve.decisions();
    assert_eq!(count(&log, "token_issued", "(refresh token rotated, signed in as demo)"), 1, "{log:?}");
    assert_eq!(count(&log, "client_registered", ""), 1, "no new registration");
    let second = store.entries().unwrap().pop().expect("the login, rotated");
    let r2 = second.refresh_token.clone().expect("the rotated refresh token").expose().clone();
    assert_ne!(r1, r2, "rotated");

    // 4. Logout revokes at the issuer, then forgets.
    let out = warden(&client_state, &ca, &["logout"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        (format!("revoked at {}/revoke and forgot the login for 127.0.0.1\n", serve.issuer), Some(0)),
        "{}",
        text(&out.stderr)
    );
    assert!(store.entries().unwrap().is_empty());
    let log = serve.decisions();
    assert_eq!(
        count(&log, "token_revoked", &format!("signed in as demo for {}", serve.mcp)),
        1,
        "recorded as the client's revocation: {log:?}"
    );

    // 5. The revoked token, and the one rotated before it, are refused by the issuer.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = warden::security::tls::http_client(
        &warden::security::tls::ClientTls { ca_file: Some(ca.clone()), ca_only: true },
        Duration::from_secs(10),
    )
    .unwrap();
    for token in [&r2, &r1] {
        let form =
            [("grant_type", "refresh_token"), ("refresh_token", token.as_str()), ("client_id", &second.client_id)];
        let (status, body): (u16, Value) = rt.block_on(async {
            let resp = http.post(format!("{}/token", serve.issuer)).form(&form).send().await.unwrap();
            (resp.status().as_u16(), resp.json().await.unwrap())
        });
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }

    // 6. A revocation that cannot be sent (a config that cannot be read), or that cannot
    // reach the issuer: the login is forgotten all the same, and the output says the
    // refresh token may outlive it.
    let out = warden(&client_state, &ca, &tools);
    assert_eq!(out.status.code(), Some(0), "logged in again: {}", text(&out.stderr));
    assert_eq!(count(&serve.decisions(), "client_registered", ""), 1, "with the stored registration");
    let missing = tmp.path().join("missing.toml");
    let out = warden(&client_state, &ca, &["--config", missing.to_str().unwrap(), "logout"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        (
            format!(
                "forgot the login for 127.0.0.1 (revocation at {}/revoke failed: could not read config {}: No such file or directory (os error 2); the refresh token may stay valid until it expires)\n",
                serve.issuer,
                missing.display()
            ),
            Some(0)
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(store.entries().unwrap().is_empty());
    let out = warden(&client_state, &ca, &tools);
    assert_eq!(out.status.code(), Some(0), "logged in again: {}", text(&out.stderr));
    serve.stop();
    let out = warden(&client_state, &ca, &["logout", "127.0.0.1"]);
    assert_eq!(
        (text(&out.stdout), out.status.code()),
        (
            format!(
                "forgot the login for 127.0.0.1 (revocation at {}/revoke failed: could not reach it: connection refused; the refresh token may stay valid until it expires)\n",
                serve.issuer
            ),
            Some(0)
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(store.entries().unwrap().is_empty(), "forgotten whatever happened");
}
