//! Tool identity. Two MCP servers may both expose `get_customer_info`; a bare name is not
//! enough to say which one ran, which one denied, or which one the audit record is about.
//! `ToolName` is the pair, everywhere a tool is named.
//!
//! What the agent sees is the *display name*: the bare tool name when it is unique in the
//! session (so single-server prompts stay byte-identical to DSPy's) and `server.tool`
//! only when two servers share it. `ToolNames` decides which.
//!
//! `ToolHints` is what a tool's MCP annotations say about its effects (read-only,
//! destructive, idempotent, open-world), with the specification's defaults when the
//! server says nothing; `Confirm` is a server's policy for asking the operator before a
//! call (`confirm = "destructive" | "always" | "never"`).

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

/// What a tool's annotations (`readOnlyHint`, `destructiveHint`, `idempotentHint`,
/// `openWorldHint`) say about it. A hint the server leaves out takes the MCP specification's
/// default, which assumes the worst: not read-only, destructive, not idempotent, open
/// world. `destructive` and `idempotent` only mean something for a tool that is not
/// read-only. Hints are claims by the server, used to be careful (confirm, never replay),
/// never to trust a tool more than its scopes allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolHints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
    /// The server declared at least one of the four; `false`: all are the defaults.
    pub declared: bool,
}

impl Default for ToolHints {
    /// An unannotated tool: the specification's defaults.
    fn default() -> Self {
        Self::from_annotations(None, None, None, None)
    }
}

impl ToolHints {
    /// The hints as a server sent them, each `None` when absent.
    pub fn from_annotations(
        read_only: Option<bool>,
        destructive: Option<bool>,
        idempotent: Option<bool>,
        open_world: Option<bool>,
    ) -> Self {
        let declared = read_only.is_some() || destructive.is_some() || idempotent.is_some() || open_world.is_some();
        Self {
            read_only: read_only.unwrap_or(false),
            destructive: destructive.unwrap_or(true),
            idempotent: idempotent.unwrap_or(false),
            open_world: open_world.unwrap_or(true),
            declared,
        }
    }

    /// May destroy or overwrite data: not read-only and not declared otherwise (an
    /// unannotated tool is, by the specification's defaults).
    pub fn is_destructive(&self) -> bool {
        !self.read_only && self.destructive
    }

    /// Safe to send twice: read-only, or declared idempotent.
    pub fn retry_safe(&self) -> bool {
        self.read_only || self.idempotent
    }

    /// Whether a call must be confirmed by the operator under `policy`.
    pub fn needs_confirmation(&self, policy: Confirm) -> bool {
        match policy {
            Confirm::Always => true,
            Confirm::Never => false,
            Confirm::Destructive => self.is_destructive(),
        }
    }

    /// A short marker for narrow tables (the console's matrix): `ro` read-only, `idem`
    /// idempotent, `⚠` destructive (`⚠ idem` when also idempotent), `?` unannotated
    /// (treated as destructive), nothing for a plain additive write.
    pub fn marker(&self) -> &'static str {
        match (self.declared, self.read_only, self.is_destructive(), self.idempotent) {
            (false, ..) => "?",
            (_, true, ..) => "ro",
            (_, _, true, true) => "⚠ idem",
            (_, _, true, false) => "⚠",
            (_, _, false, true) => "idem",
            (_, _, false, false) => "",
        }
    }

    /// The hints in words (`warden tools`, the confirmation overlay).
    pub fn describe(&self) -> String {
        if !self.declared {
            return "unannotated: treated as destructive, not idempotent, open world".into();
        }
        let mut words: Vec<&str> = Vec::new();
        if self.read_only {
            words.push("read-only");
        } else {
            words.push(if self.destructive { "destructive" } else { "not destructive" });
            words.push(if self.idempotent { "idempotent" } else { "not idempotent" });
        }
        words.push(if self.open_world { "open world" } else { "closed world" });
        words.join(", ")
    }
}

/// When a server's tool calls wait for the operator (`confirm` in `[[servers]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// Destructive calls only (including unannotated tools, destructive by default).
    #[default]
    Destructive,
    /// Every call, read-only ones too.
    Always,
    /// No call: the operator trusts this server's tools as they are.
    Never,
}

impl Confirm {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destructive => "destructive",
            Self::Always => "always",
            Self::Never => "never",
        }
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

    #[test]
    fn absent_hints_take_the_specifications_defaults() {
        let none = ToolHints::default();
        assert_eq!(
            (none.read_only, none.destructive, none.idempotent, none.open_world, none.declared),
            (false, true, false, true, false)
        );
        assert!(none.is_destructive() && !none.retry_safe());
        assert_eq!(none.marker(), "?");
        // Read-only: destructive and idempotent mean nothing, and nothing is destroyed.
        let ro = ToolHints::from_annotations(Some(true), None, None, Some(false));
        assert!(!ro.is_destructive() && ro.retry_safe());
        assert_eq!((ro.marker(), ro.describe().as_str()), ("ro", "read-only, closed world"));
        // Only openWorldHint declared: still destructive by default, but annotated.
        let ow = ToolHints::from_annotations(None, None, None, Some(false));
        assert!(ow.declared && ow.is_destructive());
        assert_eq!(ow.marker(), "⚠");
        let additive = ToolHints::from_annotations(Some(false), Some(false), Some(false), None);
        assert_eq!((additive.marker(), additive.is_destructive(), additive.retry_safe()), ("", false, false));
        let delete = ToolHints::from_annotations(None, Some(true), Some(true), None);
        assert_eq!((delete.marker(), delete.retry_safe()), ("⚠ idem", true));
        assert_eq!(ToolHints::from_annotations(None, Some(false), Some(true), None).marker(), "idem");
    }

    #[test]
    fn the_policy_decides_which_calls_need_confirmation() {
        let ro = ToolHints::from_annotations(Some(true), None, None, None);
        let additive = ToolHints::from_annotations(None, Some(false), None, None);
        let destructive = ToolHints::from_annotations(None, Some(true), None, None);
        let unannotated = ToolHints::default();
        let asks = |p: Confirm| [ro, additive, destructive, unannotated].map(|h| h.needs_confirmation(p));
        assert_eq!(asks(Confirm::default()), [false, false, true, true]);
        assert_eq!(asks(Confirm::Always), [true, true, true, true]);
        assert_eq!(asks(Confirm::Never), [false, false, false, false]);
        let parsed: Confirm = serde_json::from_str("\"always\"").unwrap();
        assert_eq!((parsed, parsed.as_str()), (Confirm::Always, "always"));
        assert!(serde_json::from_str::<Confirm>("\"sometimes\"").is_err());
    }
}
