//! The client's audit trail and monitor, attached to a session's bus.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::observe::{audit, monitor};
use crate::types::event::EventBus;

/// Attaches the client's audit trail (`STATE/audit/client-*.jsonl`) and the monitor to a
/// bus. The audit log comes first, so every record is durable before anyone else — the
/// console, a `--json` printer — sees the event.
pub fn attach(
    bus: &EventBus,
    state_dir: &Path,
    config: &Config,
) -> Result<(Arc<audit::AuditLog>, Arc<monitor::Monitor>), audit::AuditError> {
    let cfg = config.audit.clone().unwrap_or_default();
    let opts = cfg.log_options(state_dir, cfg.client_fsync, bus.clock().clone())?;
    let log = Arc::new(audit::AuditLog::open_with(&state_dir.join("audit"), "client", opts)?);
    bus.add_journal(log.clone());
    let monitor = monitor::Monitor::attach(bus, config.monitor.clone().unwrap_or_default());
    Ok((log, monitor))
}
