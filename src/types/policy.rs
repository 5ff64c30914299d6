//! How a tool's scope requirement travels between server and client. The service writes
//! each tool's required scopes into `tools/list` under `_meta[SCOPES_META_KEY]`; the client
//! reads them back to pre-check calls. Both sides use this module, so neither imports the
//! other.

use serde_json::{Map, Value};

use super::scope::ScopeSet;

/// `_meta` key under which each tool advertises the scopes it needs.
pub const SCOPES_META_KEY: &str = "io.warden/required_scopes";

/// The `_meta` entry advertising `scopes`.
pub fn advertise(meta: &mut Map<String, Value>, scopes: &ScopeSet) {
    meta.insert(SCOPES_META_KEY.into(), Value::Array(scopes.iter().map(|s| Value::String(s.to_string())).collect()));
}

/// The scopes a tool's `_meta` advertises, if it advertises valid ones.
pub fn advertised(meta: &Map<String, Value>) -> Option<ScopeSet> {
    meta.get(SCOPES_META_KEY).and_then(|v| serde_json::from_value::<ScopeSet>(v.clone()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_server_advertises_the_client_reads() {
        let scopes = ScopeSet::parse("ticket:create customer:read").unwrap();
        let mut meta = Map::new();
        advertise(&mut meta, &scopes);
        assert_eq!(meta[SCOPES_META_KEY], serde_json::json!(["customer:read", "ticket:create"]));
        assert_eq!(advertised(&meta), Some(scopes));
        meta.insert(SCOPES_META_KEY.into(), serde_json::json!(["bad scope"]));
        assert_eq!(advertised(&meta), None);
    }
}
