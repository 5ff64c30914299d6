//! The service's tool → required-scope policy. One table drives three things: the bearer
//! guard's 403 decision, the defence-in-depth check inside each tool, and the `_meta` that
//! advertises the scopes in `tools/list` (`types::policy`, so clients need no hard-coded map).

use crate::types::scope::{Scope, ScopeSet};

pub const GET_CUSTOMER_INFO: &str = "get_customer_info";
pub const GET_RECENT_CUSTOMERS: &str = "get_recent_customers";
pub const CREATE_SUPPORT_TICKET: &str = "create_support_ticket";
pub const CALCULATE_ACCOUNT_VALUE: &str = "calculate_account_value";

const POLICY: &[(&str, &[&str])] = &[
    (GET_CUSTOMER_INFO, &["customer:read"]),
    (GET_RECENT_CUSTOMERS, &["customer:read"]),
    (CREATE_SUPPORT_TICKET, &["ticket:create"]),
    (CALCULATE_ACCOUNT_VALUE, &["account:calculate"]),
];

/// Scopes `tool` requires, or `None` for a tool this server does not have.
pub fn required_scopes(tool: &str) -> Option<ScopeSet> {
    POLICY.iter().find(|(name, _)| *name == tool).map(|(_, scopes)| {
        // The table above is static and every entry is a valid scope token (tested below).
        scopes.iter().filter_map(|s| Scope::new(s).ok()).collect()
    })
}

/// Every scope the service understands (for RFC 9728 `scopes_supported`).
pub fn all_scopes() -> ScopeSet {
    POLICY.iter().flat_map(|(_, s)| s.iter()).filter_map(|s| Scope::new(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_valid_policy() {
        for (name, scopes) in POLICY {
            assert_eq!(required_scopes(name).unwrap().len(), scopes.len(), "{name}");
        }
        assert_eq!(required_scopes("delete_everything"), None);
        assert_eq!(all_scopes().to_string(), "account:calculate customer:read ticket:create");
    }
}
