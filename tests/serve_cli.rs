//! `warden serve` as a user runs it: the real binary on port 0, its one-line banner, the
//! client config it writes, graceful shutdown on SIGTERM, and refusing to run a service
//! that could not verify tokens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

#[test]
fn serve_prints_real_urls_writes_client_config_and_stops_on_sigterm() {
    let state = tempfile::tempdir().unwrap();
    let mut child = warden()
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("warden serve: issuer https://127.0.0.1:"), "{line}");
    assert!(!line.contains(":0 ") && !line.contains(":0/"), "bound ports are printed, not 0: {line}");
    let words: Vec<&str> = line.split_whitespace().collect();
    let issuer = words[3];
    let mcp = words[5];
    assert!(mcp.ends_with("/mcp"), "{line}");

    let client_toml = state.path().join("client.toml");
    assert!(line.contains(&client_toml.display().to_string()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&client_toml).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&client_toml).unwrap();
    let parsed = warden::config::Config::parse(&text, &client_toml).expect("client.toml parses as a Warden config");
    let client = parsed.client.unwrap();
    assert_eq!(client.issuer.as_deref(), Some(issuer));
    assert_eq!(client.client_id, "support-agent");
    assert_eq!(client.client_secret.as_ref().map(|s| s.expose().as_str()), Some("demo-support-agent-secret-4f9c2e"));
    // Parsed straight into a `Secret`: its Debug output never shows it.
    assert!(!format!("{client:?}").contains("demo-support-agent-secret"), "{client:?}");
    assert_eq!(client.ca_file.unwrap(), state.path().join("tls/ca.pem"));
    assert_eq!(parsed.servers[0].url, mcp);

    // Regression (issue 11, defect 13): the state dir was 0755 and the audit logs, the text
    // log and the customer database 0644. Now the state dir is 0700 and every file in it 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fresh = tempfile::tempdir().unwrap().path().join("state");
        let mut other = warden()
            .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
            .arg(&fresh)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        BufReader::new(other.stdout.take().unwrap()).read_line(&mut String::new()).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700, "state dir");
        let mut files = Vec::new();
        let mut dirs = vec![fresh.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    assert_eq!(mode(&e.path()), 0o700, "{}", e.path().display());
                    dirs.push(e.path());
                } else {
                    files.push(e.path());
                }
            }
        }
        for name in ["service.db", "audit/server.head", "logs", "client.toml"] {
            assert!(files.iter().any(|f| f.starts_with(fresh.join(name))), "{name} written: {files:?}");
        }
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        Command::new("kill").args(["-TERM", &other.id().to_string()]).status().unwrap();
        let _ = other.wait();
    }

    // The documents are reachable over TLS with the generated CA.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        warden::install_crypto_provider();
        let http = warden::security::tls::http_client(
            &warden::security::tls::ClientTls { ca_file: Some(state.path().join("tls/ca.pem")), ca_only: true },
            Duration::from_secs(5),
        )
        .unwrap();
        let meta: serde_json::Value = http
            .get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["issuer"], issuer);
    });

    #[cfg(unix)]
    {
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    }
    #[cfg(not(unix))]
    child.kill().unwrap();
    assert!(state.path().join("logs/warden.log").exists(), "logs go to the state dir");
}

#[test]
fn service_alone_without_a_trusted_issuer_refuses_to_start() {
    let state = tempfile::tempdir().unwrap();
    let out = warden()
        .args(["--state-dir"])
        .arg(state.path())
        .args(["serve", "--only", "service", "--mcp-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the service has no way to verify tokens"), "{err}");
}

#[test]
fn a_config_typo_is_reported_with_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[service]\nrate_limt = 3\n").unwrap();
    let out = warden().arg("--config").arg(&cfg).args(["serve", "--state-dir"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("rate_limt"), "{err}");
}

/// `warden serve --config CFG` in `state`: its banner, once it is up; the child is stopped by SIGKILL on return.
fn banner_of(cfg: &std::path::Path, state: &std::path::Path) -> String {
    let mut child = warden()
        .arg("--config")
        .arg(cfg)
        .args(["serve", "--issuer-addr", "127.0.0.1:0", "--mcp-addr", "127.0.0.1:0", "--state-dir"])
        .arg(state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn without_the_demo_client_serve_says_so_and_writes_no_secret() {
    let dir = tempfile::tempdir().unwrap();

    // Another client registered: client.toml names it, without a secret, and says why.
    let cfg = dir.path().join("readonly.toml");
    std::fs::write(
        &cfg,
        "[[issuer.clients]]\nclient_id = \"readonly-agent\"\nsecret_hash = \"pbkdf2-sha256$20000$PLQtvBXYYwJ4js9cxlGKmQ$WLw1/vVjcIL+APpENDO0tBRX+u5EOsoLqAunWXsTnjg\"\nallowed_scopes = [\"customer:read\"]\n",
    )
    .unwrap();
    let state = dir.path().join("one");
    let line = banner_of(&cfg, &state);
    let client_toml = state.join("client.toml");
    assert!(
        line.contains(&format!(
            "client config {} (no demo client: add the secret of readonly-agent to it)",
            client_toml.display()
        )),
        "{line}"
    );
    let text = std::fs::read_to_string(&client_toml).unwrap();
    assert!(
        text.contains("# No demo client: this issuer does not register `support-agent` with the demo secret"),
        "{text}"
    );
    let parsed = warden::config::Config::parse(&text, &client_toml).unwrap().client.unwrap();
    assert_eq!(parsed.client_id, "readonly-agent");
    assert!(parsed.client_secret.is_none());
    let out = warden()
        .arg("--config")
        .arg(&client_toml)
        .arg("--state-dir")
        .arg(dir.path().join("c"))
        .arg("tools")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client secret: set client_secret, or client_secret_env"));

    // No client at all: no client.toml (a stale one written by an earlier serve is removed).
    let cfg = dir.path().join("none.toml");
    std::fs::write(&cfg, "[issuer]\n").unwrap();
    let state = dir.path().join("two");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("client.toml"),
        "# Written by `warden serve`: a ready client config (use with --config).\n[client]\n",
    )
    .unwrap();
    let line = banner_of(&cfg, &state);
    assert!(line.contains("(no client config: no demo client, and [[issuer.clients]] registers no client)"), "{line}");
    assert!(!line.contains("client config /"), "{line}");
    assert!(!state.join("client.toml").exists());
}
