//! `Command`: everything a frontend can ask of the session core. The console, the headless
//! runner and (later) the optimizer all send these; none of them reaches past the core.

use crate::types::scope::ScopeSet;

/// What the UI asks of the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Submit(String),
    /// Re-token with these scopes (`None`: the client's defaults).
    Regrant(Option<ScopeSet>),
    /// Re-token, then run this request.
    RegrantAndRun(Option<ScopeSet>, String),
    Cancel,
    RunScenario(usize),
    /// Restart the stdio server of this name (its process exited or hangs).
    Restart(String),
    /// Optimize the program (`warden optimize`, the console's optimize overlay): progress
    /// and the before/after table come back as `OptimizeProgress`/`OptimizeFinished`.
    Optimize(Box<super::optimize::OptimizeJob>),
    /// Copy the session recording to the exports folder.
    Export,
    Quit,
}
