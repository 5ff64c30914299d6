//! Logging: `tracing` to `STATE/logs/warden.log`, never to the terminal unless asked
//! (`serve --log-stderr`). Level from `WARDEN_LOG` (env-filter syntax), default `info` (rmcp at `warn`: it logs every stateless request).

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber. Keep the returned guard alive until exit so buffered
/// lines are flushed.
pub fn init(state_dir: &Path, stderr: bool) -> anyhow::Result<WorkerGuard> {
    let dir = state_dir.join("logs");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(tracing_appender::rolling::never(&dir, "warden.log"));
    let filter = || EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let file = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_filter(filter());
    let err = stderr.then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter()));
    // A second init (tests calling the CLI twice in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(file).with(err).try_init();
    Ok(guard)
}
