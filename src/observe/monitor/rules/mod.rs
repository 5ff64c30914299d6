//! One file per anomaly rule.
//!
//! What the rules may read: the operator's request, the agent's choices (tool names and
//! arguments), the outcome's structure (denied, rate-limited, the token checks) and, for
//! `injection` only, the content a server or tool returned. Never Warden's own words — a
//! failure's message, an agent error, a hint — which name URLs and servers and would read
//! as injected text (an outage once raised "possible prompt injection … a URL").

pub mod denial_spike;
pub mod enumeration;
pub mod injection;
pub mod manifest;
pub mod rate_limit;
pub mod repeated_denial;
pub mod token;
pub mod unusual_sequence;

use super::Rule;

pub fn all() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(denial_spike::DenialSpike::default()),
        Box::new(repeated_denial::RepeatedDenial::default()),
        Box::new(enumeration::Enumeration::default()),
        Box::new(unusual_sequence::UnusualSequence),
        Box::new(injection::Injection),
        Box::new(manifest::ManifestChange::default()),
        Box::new(rate_limit::RateLimitBurst::default()),
        Box::new(token::TokenTrouble::default()),
    ]
}
