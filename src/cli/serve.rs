//! `warden serve`: start the issuer and the service, print one line saying where, wait for
//! Ctrl-C or SIGTERM, shut down gracefully. `--instances N` runs the service as N processes
//! (see `instances`).

mod instances;

use std::path::Path;

use super::ServeArgs;
use crate::serve::start;

/// `warden serve`: start, print where, wait for Ctrl-C or SIGTERM, shut down.
pub async fn run(config_path: Option<&Path>, state_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let (mut config, origin) = crate::config::Config::load(config_path)?;
    if let Some(url) = &args.store_url {
        config.service.store.url = Some(url.clone());
    }
    if let Some(n) = args.instances {
        return instances::run(config, config_path, state_dir, &args, n).await;
    }
    tracing::info!(config = %origin.display(), state_dir = %state_dir.display(), "starting");
    let running = start(&config, state_dir, &args.options()).await?;
    let mut line = String::from("warden serve:");
    if let Some(u) = &running.issuer_url {
        line.push_str(&format!(" issuer {u}"));
    }
    if let Some(u) = &running.mcp_url {
        line.push_str(&format!("  mcp {u}"));
    }
    if let Some(s) = &running.store {
        line.push_str(&format!("  store {s}"));
    }
    if let Some(p) = &running.client_config {
        line.push_str(&format!("  client config {}", p.display()));
    }
    if let Some(note) = &running.client_note {
        line.push_str(&format!(" ({note})"));
    }
    outln!("{line}  (Ctrl-C to stop)");
    if args.instance.is_some() {
        // An instance of `serve --instances` also stops when its parent is gone.
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = parent_gone() => tracing::info!("the supervising process is gone"),
        }
    } else {
        shutdown_signal().await;
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// Returns when the process that started this one is gone (it was reparented): the
/// `serve --instances` parent, however it exited, SIGKILL included. Checked once a second.
async fn parent_gone() {
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != parent {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
