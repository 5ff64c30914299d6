//! The headless session core: the only way in for every frontend (the console, `warden
//! run`, `demo --headless`, `--json` output and, later, `warden optimize`).
//!
//! A frontend opens a `Session` (grant, model, audited event bus, pinned client stack),
//! spawns its core task and sends `Command`s; everything the session does comes back as
//! `Event`s on the bus. Frontends never touch the client stack or the agent directly.
//!
//! May import: every layer below (`types` … `agent`). Enforced by `tests/layering.rs`.

pub mod audit;
pub mod command;
pub mod core;
pub mod scenario;
