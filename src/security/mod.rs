//! Security primitives shared by every part of Warden: redacting secret types and
//! fingerprints (`secret`), password-style hashing of client secrets (`hash`), and the
//! development CA plus rustls configurations (`tls`).

pub mod audit;
pub mod hash;
pub mod monitor;
pub mod secret;
pub mod tls;

use std::path::Path;
use std::sync::Arc;

/// Attaches the client's audit trail (`STATE/audit/client-*.jsonl`) and the monitor to a
/// bus. The audit log comes first, so every record is durable before anyone else — the
/// console, a `--json` printer — sees the event.
pub fn attach(
    bus: &crate::events::EventBus,
    state_dir: &Path,
    config: &crate::config::Config,
) -> Result<(Arc<audit::AuditLog>, Arc<monitor::Monitor>), audit::AuditError> {
    let cfg = config.audit.clone().unwrap_or_default();
    let log =
        Arc::new(audit::AuditLog::open(&state_dir.join("audit"), "client", cfg.client_fsync, cfg.max_segment_bytes)?);
    bus.add_journal(log.clone());
    let monitor = monitor::Monitor::attach(bus, config.monitor.clone().unwrap_or_default());
    Ok((log, monitor))
}
