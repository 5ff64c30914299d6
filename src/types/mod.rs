//! The bottom layer: the vocabulary every other part of Warden speaks.
//!
//! - `event`: the one `Event` enum (one account per tool call) and the bus that carries it;
//! - `scope`: validated OAuth scopes and scope sets;
//! - `secret`: `Secret` (never printed, compared in constant time only) and `Fingerprint`;
//! - `time`: UTC epoch time and the injectable `Clock`;
//! - `tool`: qualified tool identity (`ToolName { server, name }`), a tool's annotation
//!   hints and the per-server confirmation policy;
//! - `confirm`: asking the operator before a call (`Confirmer`, `ConfirmRequest`);
//! - `step_up`: asking the operator before re-authorizing with more scopes (`StepUpAsker`);
//! - `policy`: how tools advertise the scopes they need (read by client and server alike);
//! - `text`: counting in words ("1 segment", "2 segments");
//! - `intent`: the words that ask for a support ticket (planner and monitor agree on them).
//!
//! May import: nothing from this crate (std and external crates only). Enforced by
//! `tests/layering.rs`.

pub mod confirm;
pub mod event;
pub mod intent;
pub mod optimize;
pub mod policy;
pub mod scope;
pub mod secret;
pub mod step_up;
pub mod text;
pub mod time;
pub mod tool;
pub mod trace;
