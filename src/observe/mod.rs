//! Consumers of the event stream: the hash-chained audit trail (`audit`, signed by
//! `checkpoint`), the anomaly monitor (`monitor/`, one file per rule) and session recording
//! and replay (`recorder`), and OpenTelemetry export (`telemetry/`).
//! They see every event the console sees, and only that: nothing here reaches into the
//! client stack or the agent.
//!
//! May import: `types`, `paths`. Enforced by `tests/layering.rs`.

pub mod audit;
pub mod checkpoint;
pub mod monitor;
pub mod recorder;
pub mod telemetry;
