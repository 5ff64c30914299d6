//! The words with which an operator asks for a support ticket, shared by the two parts
//! that must agree on them: the offline planner, which opens a ticket when a request
//! describes a problem, and the monitor's `unusual_tool_sequence` rule, which flags a
//! ticket the request gave no reason for. Kept in one place because they drifted apart:
//! "the lid hinge on GHI789's smoker snapped off" made the planner open a ticket and the
//! monitor call that unusual.

/// Words that name a ticket itself.
pub const TICKET_WORDS: &[&str] = &["ticket", "complaint", "complain", "incident"];

/// Words that describe a problem worth a ticket.
pub const PROBLEM_WORDS: &[&str] = &[
    "defective",
    "broken",
    "broke",
    "faulty",
    "damaged",
    "issue",
    "problem",
    "fails",
    "failing",
    "failed",
    "crash",
    "crashes",
    "crashed",
    "leaking",
    "snapped",
    "cracked",
    "jammed",
    "stuck",
    "leaks",
    "missing",
    "refund",
    "escalate",
    "error",
];

/// Phrases that describe a problem worth a ticket.
pub const PROBLEM_PHRASES: &[&str] =
    &["not working", "doesn't work", "does not work", "won't", "stopped working", "never arrived"];
