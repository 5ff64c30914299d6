//! Tool identity. Two MCP servers may both expose `get_customer_info`; a bare name is not
//! enough to say which one ran, which one denied, or which one the audit record is about.
//! `ToolName` is the pair, everywhere a tool is named.
//!
//! What the agent sees is the *display name*: the bare tool name when it is unique in the
//! session (so single-server prompts stay byte-identical to DSPy's) and `server.tool`
//! only when two servers share it. `ToolNames` decides which.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A tool as offered by one server. Serialized flat as `{"server": …, "tool": …}`, so an
/// event that embeds it with `#[serde(flatten)]` keeps those two fields.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ToolName {
    /// The server's name in the config (`[[servers]] name`).
    pub server: String,
    /// The tool's name as the server lists it.
    #[serde(rename = "tool")]
    pub name: String,
}

impl ToolName {
    pub fn new(server: impl Into<String>, name: impl Into<String>) -> Self {
        Self { server: server.into(), name: name.into() }
    }

    /// `server.tool`, unambiguous across servers.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.server, self.name)
    }
}

impl fmt::Display for ToolName {
    /// `tool on server`, for sentences.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.name, self.server)
    }
}

/// The display names of every tool in a session: bare where unique, qualified where two
/// servers share a name. Resolves a name the agent chose back to exactly one tool.
#[derive(Debug, Clone, Default)]
pub struct ToolNames {
    shown: Vec<(ToolName, String)>,
    by_shown: HashMap<String, usize>,
}

impl ToolNames {
    pub fn new<'a>(tools: impl IntoIterator<Item = &'a ToolName>) -> Self {
        let tools: Vec<&ToolName> = tools.into_iter().collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for t in &tools {
            *count.entry(t.name.as_str()).or_default() += 1;
        }
        let mut names = Self::default();
        for t in tools {
            let shown = if count[t.name.as_str()] > 1 { t.qualified() } else { t.name.clone() };
            names.by_shown.insert(shown.clone(), names.shown.len());
            names.shown.push((t.clone(), shown));
        }
        names
    }

    /// The name the agent sees for `tool`.
    pub fn shown(&self, tool: &ToolName) -> Option<&str> {
        self.shown.iter().find(|(t, _)| t == tool).map(|(_, s)| s.as_str())
    }

    /// The tool a display name stands for (exact match only: an ambiguous bare name
    /// resolves to nothing rather than to the first server that has it).
    pub fn resolve(&self, shown: &str) -> Option<&ToolName> {
        self.by_shown.get(shown).map(|&i| &self.shown[i].0)
    }

    /// `(tool, display name)` in the order the tools were given.
    pub fn iter(&self) -> impl Iterator<Item = (&ToolName, &str)> {
        self.shown.iter().map(|(t, s)| (t, s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bare_unless_two_servers_share_one() {
        let tools = [
            ToolName::new("crm", "get_customer_info"),
            ToolName::new("crm", "create_support_ticket"),
            ToolName::new("billing", "get_customer_info"),
        ];
        let names = ToolNames::new(&tools);
        let shown: Vec<&str> = names.iter().map(|(_, s)| s).collect();
        assert_eq!(shown, ["crm.get_customer_info", "create_support_ticket", "billing.get_customer_info"]);
        assert_eq!(names.resolve("billing.get_customer_info"), Some(&tools[2]));
        assert_eq!(names.resolve("get_customer_info"), None, "ambiguous bare names resolve to nothing");
        assert_eq!(names.resolve("create_support_ticket"), Some(&tools[1]));
    }

    #[test]
    fn serialized_flat_as_server_and_tool() {
        let t = ToolName::new("crm", "get_customer_info");
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"server":"crm","tool":"get_customer_info"}"#);
        assert_eq!(t.to_string(), "get_customer_info on crm");
    }
}
