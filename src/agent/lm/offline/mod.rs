//! The `offline` planner: a deterministic stand-in for a language model that needs no
//! network and no weights. It reads the real prompt the adapter built — the tools listed
//! in the ReAct instructions with their argument schemas, the request, the trajectory so
//! far, any demos — and answers in the ChatAdapter format, so the whole format/parse path
//! runs exactly as with a hosted model.
//!
//! What it does: extracts customer IDs, amounts, priority and intent from the request
//! (`parse`); decides what the request needs and plans among the tools actually offered,
//! never one that is not listed, following a similar demo's order when there is one
//! (`plan`); after a denial or a tool error it stops and explains instead of retrying;
//! when the request lacks what a tool needs it calls nothing and asks for it; a count out
//! of the tool's range is clamped and the answer says so; requests no tool can serve
//! ("Delete all customer data") are declined at once (`answer` writes every final
//! answer). It plans only from the request, never from tool output, so amounts or
//! instructions in an observation cannot steer it. It is honest about what it is: its
//! name is `offline-planner`.
//!
//! This file is the `Lm` implementation and the ChatAdapter plumbing: reading the prompt
//! (output fields, offered tools, input sections, demos, the trajectory) and writing the
//! reply in the chat or JSON format.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::{Completion, Lm, LmError, Message, Role, Usage, UsageMeter};
use crate::agent::adapter::value::parse_json_like;

mod answer;
mod parse;
mod plan;

pub const NAME: &str = "offline-planner";

#[derive(Default)]
pub struct OfflinePlanner {
    meter: UsageMeter,
}

impl OfflinePlanner {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Lm for OfflinePlanner {
    fn name(&self) -> &str {
        NAME
    }

    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        Box::pin(async move {
            let text = respond(messages);
            // Rough token counts (4 bytes a token), so usage displays are not empty.
            let usage = Usage {
                prompt_tokens: messages.iter().map(|m| m.content.len() as u64 / 4).sum(),
                completion_tokens: text.len() as u64 / 4,
            };
            self.meter.add(usage);
            Ok(Completion { text, usage })
        })
    }

    fn usage(&self) -> Usage {
        self.meter.total()
    }
}

/// A tool as listed in the ReAct instructions.
#[derive(Debug, Clone)]
pub(crate) struct OfferedTool {
    pub name: String,
    pub args: Map<String, Value>,
}

/// The parsed prompt.
pub(crate) struct Prompt {
    outputs: Vec<String>,
    tools: Vec<OfferedTool>,
    fields: BTreeMap<String, String>,
    demos: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    json_mode: bool,
    /// Tools a learnt security constraint in the instructions forbids, with why.
    forbidden: Vec<Forbidden>,
}

/// `- Do not call `tool` under the grant {…}: it needs …, which this grant lacks; …` — a
/// rule `warden optimize` writes into the program's instructions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Forbidden {
    pub tool: String,
    pub grant: String,
    /// The missing scopes, or the anomaly it was flagged for.
    pub why: String,
}

fn parse_forbidden(line: &str) -> Option<Forbidden> {
    let rest = line.trim().strip_prefix("- Do not call `")?;
    let (tool, rest) = rest.split_once('`')?;
    let grant =
        rest.split_once('{').and_then(|(_, r)| r.split_once('}')).map(|(g, _)| g.to_string()).unwrap_or_default();
    let why = if let Some(needs) = rest.split_once("it needs ").map(|(_, r)| r) {
        format!("it needs {}", needs.split(", which").next().unwrap_or(needs).trim_end_matches('.'))
    } else if let Some(flag) = rest.split_once("flagged (").and_then(|(_, r)| r.split_once(')')) {
        format!("it was flagged as {}", flag.0)
    } else {
        "a learnt security constraint".to_string()
    };
    Some(Forbidden { tool: tool.to_string(), grant, why })
}

fn respond(messages: &[Message]) -> String {
    let prompt = parse_prompt(messages);
    let answer: Vec<(String, Value)> = if prompt.outputs.iter().any(|o| o == "next_tool_name") {
        let step = plan::next_step(&prompt);
        vec![
            ("next_thought".into(), json!(step.thought)),
            ("next_tool_name".into(), json!(step.tool)),
            ("next_tool_args".into(), Value::Object(step.args)),
        ]
    } else {
        let (reasoning, response) = answer::summarize(&prompt);
        prompt
            .outputs
            .iter()
            .map(|o| {
                let v = match o.as_str() {
                    "reasoning" => json!(reasoning),
                    _ => json!(response),
                };
                (o.clone(), v)
            })
            .collect()
    };
    if prompt.json_mode {
        let obj: Map<String, Value> = answer.into_iter().collect();
        return serde_json::to_string_pretty(&obj).unwrap_or_default();
    }
    let mut parts: Vec<String> =
        answer.iter().map(|(k, v)| format!("[[ ## {k} ## ]]\n{}", crate::agent::pyfmt::str_scalar(v))).collect();
    parts.push("[[ ## completed ## ]]".into());
    parts.join("\n\n")
}

fn parse_prompt(messages: &[Message]) -> Prompt {
    let system = messages.first().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).unwrap_or("");
    let outputs = system
        .split("Your output fields are:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .filter_map(|l| l.split('`').nth(1).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let tools = system.lines().filter_map(parse_tool_line).filter(|t| t.name != "finish").collect();
    let forbidden = system.lines().filter_map(parse_forbidden).collect();
    let last_user = messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
    let json_mode = last_user.contains("Respond with a JSON object");
    let mut demos = Vec::new();
    let body =
        &messages[messages.iter().position(|m| m.role != Role::System).unwrap_or(messages.len()).min(messages.len())..];
    for pair in body.windows(2).step_by(2) {
        if pair[0].role == Role::User && pair[1].role == Role::Assistant {
            demos.push((sections(&pair[0].content), sections(&pair[1].content)));
        }
    }
    // The output-requirements line is the adapter's, not part of the last input field.
    let inputs_only = ["\n\nRespond with the corresponding output fields", "\n\nRespond with a JSON object"]
        .iter()
        .filter_map(|m| last_user.rfind(m))
        .min()
        .map_or(last_user, |i| &last_user[..i]);
    Prompt { outputs, tools, fields: sections(inputs_only), demos, json_mode, forbidden }
}

/// `(N) name, whose description is <desc>…</desc>. It takes arguments {…}.`
fn parse_tool_line(line: &str) -> Option<OfferedTool> {
    let line = line.trim();
    let rest = line.strip_prefix('(')?;
    let (num, rest) = rest.split_once(") ")?;
    num.parse::<u32>().ok()?;
    let name_end = rest.find([',', '.'])?;
    let name = rest[..name_end].to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    let args_text = rest.rsplit_once("It takes arguments ")?.1.trim_end_matches('.');
    let args = parse_json_like(args_text).and_then(|v| v.as_object().cloned()).unwrap_or_default();
    Some(OfferedTool { name, args })
}

/// `[[ ## name ## ]]` blocks of a message (nested trajectory headers flatten in).
fn sections(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut buf: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[ ## ").and_then(|r| r.strip_suffix(" ## ]]")) {
            if let Some(c) = current.take() {
                out.entry(c).or_insert_with(|| buf.join("\n").trim().to_string());
            }
            current = Some(name.to_string());
            buf.clear();
        } else if current.is_some() {
            buf.push(line);
        }
    }
    if let Some(c) = current {
        out.entry(c).or_insert_with(|| buf.join("\n").trim().to_string());
    }
    out
}

/// One executed step of the trajectory.
#[derive(Debug, Clone)]
pub(crate) struct Executed {
    pub thought: String,
    pub tool: String,
    /// The arguments as the trajectory shows them (JSON-like text).
    pub args: String,
    pub observation: String,
}

impl Prompt {
    fn request(&self) -> String {
        self.fields.get("request").cloned().unwrap_or_default()
    }

    fn executed(&self) -> Vec<Executed> {
        executed(&self.fields)
    }

    fn forbidden(&self, name: &str) -> Option<&Forbidden> {
        self.forbidden.iter().find(|f| f.tool == name)
    }

    fn offered(&self, name: &str) -> Option<&OfferedTool> {
        self.tools.iter().find(|t| t.name == name)
    }
}

/// Executed steps from a trajectory's fields.
fn executed(fields: &BTreeMap<String, String>) -> Vec<Executed> {
    let get = |k: String| fields.get(&k).cloned().unwrap_or_default();
    (0..)
        .map_while(|i| {
            let tool = fields.get(&format!("tool_name_{i}"))?;
            Some(Executed {
                thought: get(format!("thought_{i}")),
                tool: tool.clone(),
                args: get(format!("tool_args_{i}")),
                observation: get(format!("observation_{i}")),
            })
        })
        .collect()
}

/// The planner ends a no-tool thought with this, so the answer step (whose prompt does
/// not list the tools) can say what it can do with the tools actually offered.
pub(crate) const TOOLS_MARKER: &str = "Tools available: ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lines_parse_from_the_react_instructions() {
        let t = parse_tool_line("        (2) create_support_ticket, whose description is <desc>Open a ticket.</desc>. It takes arguments {'customer_id': {'type': 'string'}, 'priority': {'type': 'string', 'enum': ['low', 'high']}}.").unwrap();
        assert_eq!(t.name, "create_support_ticket");
        assert_eq!(t.args.keys().collect::<Vec<_>>(), ["customer_id", "priority"]);
        assert!(
            parse_tool_line(
                "(3) finish, whose description is <desc>Marks the task as complete.</desc>. It takes arguments {}."
            )
            .is_some()
        );
    }

    /// A ReAct prompt as the adapter writes it, with the service's four tools.
    fn react_prompt(request: &str) -> Vec<Message> {
        let system = "Your input fields are:\n1. `request` (str): \n2. `trajectory` (str):\nYour output fields are:\n1. `next_thought` (str): \n2. `next_tool_name` (Literal): \n3. `next_tool_args` (dict): \nAll interactions will be structured in the following way.\n\
            (1) get_customer_info, whose description is <desc>Look up one customer.</desc>. It takes arguments {'customer_id': {'type': 'string'}}.\n\
            (2) get_recent_customers, whose description is <desc>List recent customers.</desc>. It takes arguments {'limit': {'type': ['integer', 'null'], 'description': 'How many customers to return, most recently active first (1-50, default 5).'}}.\n\
            (3) create_support_ticket, whose description is <desc>Open a ticket.</desc>. It takes arguments {'customer_id': {'type': 'string'}, 'subject': {'type': 'string'}, 'description': {'type': 'string'}, 'priority': {'type': 'string'}}.\n\
            (4) calculate_account_value, whose description is <desc>Account value.</desc>. It takes arguments {'customer_id': {'type': 'string'}, 'amounts': {'type': 'array', 'items': {'type': 'number'}}}.\n\
            (5) finish, whose description is <desc>Marks the task as complete.</desc>. It takes arguments {}.";
        vec![
            Message { role: Role::System, content: system.into() },
            Message {
                role: Role::User,
                content: format!(
                    "[[ ## request ## ]]\n{request}\n\n[[ ## trajectory ## ]]\n\n\nRespond with the corresponding output fields, starting with the field `[[ ## next_thought ## ]]`."
                ),
            },
        ]
    }

    proptest::proptest! {
        // As in tests/properties.rs: `WARDEN_PROPTEST_CASES` for a long run.
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("WARDEN_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            ..Default::default()
        })]
        /// Whatever is typed, the planner answers in the chat format with an offered tool
        /// (or finish), IDs it plans with are well formed and amounts are finite and
        /// non-negative unless typed with a minus, and a subject never exceeds its limit.
        #[test]
        fn any_request_gets_a_well_formed_step(request in "(\\PC|[0-9$€£,.:\\- \\[\\]kK]|ABC123|abc-123|İ|\u{212A}|e\u{301}|👩‍👩‍👧‍👦|ticket|total|recent|urgent|not){0,40}") {
            let text = respond(&react_prompt(&request));
            let out = sections(&text);
            let tool = out.get("next_tool_name").cloned().unwrap_or_default();
            proptest::prop_assert!(
                ["get_customer_info", "get_recent_customers", "create_support_ticket", "calculate_account_value", "finish"].contains(&tool.as_str()),
                "{text}"
            );
            let args = parse_json_like(out.get("next_tool_args").map_or("{}", String::as_str)).unwrap_or(Value::Null);
            proptest::prop_assert!(args.is_object(), "{text}");
            if let Some(id) = args.get("customer_id").and_then(Value::as_str) {
                proptest::prop_assert!(parse::is_customer_id(id) && id == id.to_ascii_uppercase(), "{id}");
            }
            if let Some(subject) = args.get("subject").and_then(Value::as_str) {
                proptest::prop_assert!(subject.chars().count() <= plan::SUBJECT_MAX, "{subject}");
            }
            let req = parse::parse(&request);
            proptest::prop_assert!(req.amounts.iter().all(|a| !a.is_nan()));
        }
    }

    #[test]
    fn a_react_prompt_gets_a_planned_step() {
        let out = sections(&respond(&react_prompt("look up abc-123")));
        assert_eq!(out["next_tool_name"], "get_customer_info");
        assert_eq!(out["next_tool_args"], "{\"customer_id\": \"ABC123\"}");
        let out = sections(&respond(&react_prompt("Show me the 100 most recent customers")));
        assert_eq!(out["next_tool_args"], "{\"limit\": 50}");
        assert!(
            out["next_thought"]
                .ends_with("The request asks for 100, but the tool accepts 1 to 50, so I will ask for 50.")
        );
    }

    #[test]
    fn a_learnt_constraint_stops_the_plan_before_the_denial() {
        let mut prompt = react_prompt("For customer ABC123 create a support ticket: the grill is defective.");
        assert_eq!(sections(&respond(&prompt))["next_tool_name"], "get_customer_info");
        prompt[0].content.push_str("\n- Do not call `create_support_ticket` under the grant {customer:read}: it needs ticket:create, which this grant lacks; say so instead.");
        let out = sections(&respond(&prompt));
        assert_eq!(out["next_tool_name"], "finish");
        assert!(
            out["next_thought"].starts_with("The request needs create_support_ticket, and this program's learnt security constraints forbid calling it under the grant {customer:read}: it needs ticket:create. I will not attempt it"),
            "{}",
            out["next_thought"]
        );
        // A lookup alone is not affected.
        let mut lookup = react_prompt("Look up ABC123");
        lookup[0].content = prompt[0].content.clone();
        assert_eq!(sections(&respond(&lookup))["next_tool_name"], "get_customer_info");
    }

    #[test]
    fn trajectory_steps_and_sections() {
        let f = sections(
            "[[ ## request ## ]]\nhi\n\n[[ ## trajectory ## ]]\n[[ ## thought_0 ## ]]\nLook up.\n\n[[ ## tool_name_0 ## ]]\nget_customer_info\n\n[[ ## tool_args_0 ## ]]\n{\"customer_id\": \"ABC123\"}\n\n[[ ## observation_0 ## ]]\n{}",
        );
        assert_eq!(f["request"], "hi");
        let steps = executed(&f);
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].thought.as_str(), steps[0].tool.as_str()), ("Look up.", "get_customer_info"));
        assert_eq!(steps[0].args, "{\"customer_id\": \"ABC123\"}");
    }
}
