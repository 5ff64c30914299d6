//! The `offline` planner: a deterministic stand-in for a language model that needs no
//! network and no weights. It reads the real prompt the adapter built — the tools listed
//! in the ReAct instructions with their argument schemas, the request, the trajectory so
//! far, any demos — and answers in the ChatAdapter format, so the whole format/parse path
//! runs exactly as with a hosted model.
//!
//! What it does: extracts customer IDs, amounts, priority and intent from the request;
//! plans among the tools actually offered (never one that is not listed); follows a
//! similar demo's tool sequence when there is one; after a denial or a tool error it
//! stops and explains instead of retrying; for requests no tool can serve (for example
//! "Delete all customer data") it finishes at once and declines. It plans only from the
//! request, never from tool output, so instructions hidden in an observation cannot steer
//! it. It is honest about what it is: its name is `offline-planner`.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::{Completion, Lm, LmError, Message, Role, Usage, UsageMeter};
use crate::agent::adapter::value::parse_json_like;

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
struct OfferedTool {
    name: String,
    args: Map<String, Value>,
}

/// The parsed prompt.
struct Prompt {
    outputs: Vec<String>,
    tools: Vec<OfferedTool>,
    fields: BTreeMap<String, String>,
    demos: Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>,
    json_mode: bool,
}

fn respond(messages: &[Message]) -> String {
    let prompt = parse_prompt(messages);
    let answer: Vec<(String, Value)> = if prompt.outputs.iter().any(|o| o == "next_tool_name") {
        let step = next_step(&prompt);
        vec![
            ("next_thought".into(), json!(step.thought)),
            ("next_tool_name".into(), json!(step.tool)),
            ("next_tool_args".into(), Value::Object(step.args)),
        ]
    } else {
        let (reasoning, response) = summarize(&prompt);
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
    Prompt { outputs, tools, fields: sections(inputs_only), demos, json_mode }
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

/// What the request asks for.
#[derive(Debug, Default, Clone)]
struct Intent {
    customer_ids: Vec<String>,
    amounts: Vec<f64>,
    priority: Option<&'static str>,
    limit: Option<u64>,
    ticket: bool,
    account: bool,
    recent: bool,
    info: bool,
    /// A destructive or otherwise unsupported action verb (delete, wipe, …).
    destructive: Option<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '.' && c != '$' && c != '-')
        .map(|w| w.trim_matches(|c: char| c == '.' || c == '\'' || c == '-').to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn is_customer_id(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 6 && b[..3].iter().all(u8::is_ascii_alphabetic) && b[3..].iter().all(u8::is_ascii_digit)
}

fn intent_of(request: &str) -> Intent {
    let ws = words(request);
    let has = |list: &[&str]| ws.iter().any(|w| list.contains(&w.as_str()));
    let lower = request.to_ascii_lowercase();
    let mut i = Intent::default();
    for w in request.split(|c: char| !c.is_ascii_alphanumeric()) {
        let up = w.to_ascii_uppercase();
        if is_customer_id(w) && !i.customer_ids.contains(&up) {
            i.customer_ids.push(up);
        }
    }
    i.ticket = has(&["ticket", "complaint", "defective", "broken", "faulty", "damaged", "issue", "problem"])
        || lower.contains("not working");
    i.account = has(&["calculate", "total", "value", "worth", "purchases", "spend", "spent", "lifetime"]);
    i.recent = has(&["recent", "latest", "newest", "lately"]) && has(&["customers", "customer", "accounts"]);
    i.info = has(&["status", "info", "information", "details", "profile", "lookup", "look", "check", "who"])
        || !i.customer_ids.is_empty();
    i.priority = if has(&["urgent", "urgently", "asap", "emergency"]) {
        Some("urgent")
    } else if lower.contains("high priority") || has(&["defective", "broken", "faulty", "damaged"]) {
        Some("high")
    } else if lower.contains("low priority") {
        Some("low")
    } else if i.ticket {
        Some("medium")
    } else {
        None
    };
    i.destructive = ["delete", "remove", "erase", "wipe", "purge", "drop", "destroy", "truncate"]
        .into_iter()
        .find(|v| ws.iter().any(|w| w == v || w.starts_with(v)))
        .map(str::to_string);
    i.amounts = amounts(request);
    i.limit = ws.iter().filter_map(|w| w.parse::<u64>().ok()).find(|n| (1..=50).contains(n)).filter(|_| i.recent);
    i
}

/// Money-looking numbers: inside `[...]`, after `$`, or with a decimal point; never the
/// digits of a customer ID.
fn amounts(request: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let bracketed = request.find('[').and_then(|s| request[s..].find(']').map(|e| &request[s + 1..s + e]));
    let source = bracketed.unwrap_or(request);
    for token in source
        .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '[' || c == ']' || c == '(' || c == ')')
    {
        let t = token.trim_end_matches(['.', ':']);
        let dollar = t.starts_with('$');
        let t = t.trim_start_matches('$').replace('_', "");
        if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        if let Ok(v) = t.parse::<f64>()
            && (bracketed.is_some() || dollar || t.contains('.'))
        {
            out.push(v);
        }
    }
    out
}

struct NextStep {
    thought: String,
    tool: String,
    args: Map<String, Value>,
}

fn finish(thought: String) -> NextStep {
    NextStep { thought, tool: "finish".into(), args: Map::new() }
}

/// Executed steps from the trajectory: (tool, args, observation).
fn executed(fields: &BTreeMap<String, String>) -> Vec<(String, String, String)> {
    (0..)
        .map_while(|i| {
            let tool = fields.get(&format!("tool_name_{i}"))?;
            Some((
                tool.clone(),
                fields.get(&format!("tool_args_{i}")).cloned().unwrap_or_default(),
                fields.get(&format!("observation_{i}")).cloned().unwrap_or_default(),
            ))
        })
        .collect()
}

fn offered<'p>(prompt: &'p Prompt, name: &str) -> Option<&'p OfferedTool> {
    prompt.tools.iter().find(|t| t.name == name)
}

fn plan(prompt: &Prompt, request: &str, intent: &Intent) -> Vec<String> {
    if let Some(seq) = demo_sequence(prompt, request) {
        return seq;
    }
    let mut seq = Vec::new();
    let id = intent.customer_ids.first();
    if id.is_some() && (intent.ticket || intent.account || intent.info) {
        seq.push("get_customer_info");
    }
    if intent.ticket && id.is_some() {
        seq.push("create_support_ticket");
    }
    if intent.account && id.is_some() {
        seq.push("calculate_account_value");
    }
    if intent.recent && id.is_none() {
        seq.push("get_recent_customers");
    }
    seq.into_iter().filter(|t| offered(prompt, t).is_some()).map(str::to_string).collect()
}

/// The tool sequence of the most similar demo (by word overlap with the request).
fn demo_sequence(prompt: &Prompt, request: &str) -> Option<Vec<String>> {
    let mine: std::collections::HashSet<String> = words(request).into_iter().filter(|w| !is_customer_id(w)).collect();
    let mut best: Option<(f64, Vec<String>)> = None;
    for (user, assistant) in &prompt.demos {
        let Some(demo_request) = user.get("request") else { continue };
        let theirs: std::collections::HashSet<String> =
            words(demo_request).into_iter().filter(|w| !is_customer_id(w)).collect();
        let union = mine.union(&theirs).count().max(1) as f64;
        let score = mine.intersection(&theirs).count() as f64 / union;
        let mut seq: Vec<String> = executed(user).into_iter().map(|(t, _, _)| t).collect();
        if let Some(next) = assistant.get("next_tool_name") {
            seq.push(next.clone());
        }
        seq.retain(|t| t != "finish" && offered(prompt, t).is_some());
        if score >= 0.3 && !seq.is_empty() && best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, seq));
        }
    }
    best.map(|(_, s)| s)
}

fn next_step(prompt: &Prompt) -> NextStep {
    let request = prompt.fields.get("request").cloned().unwrap_or_default();
    let intent = intent_of(&request);
    let done = executed(&prompt.fields);
    if let Some((tool, _, obs)) = done.last() {
        if obs.starts_with("Permission denied") {
            return finish(format!(
                "The call to {tool} was denied: {} Retrying would be denied again, so I will stop and explain the denial.",
                obs.trim_start_matches("Permission denied: ")
            ));
        }
        if obs.starts_with("Execution error") {
            return finish(format!(
                "{tool} failed ({}). I will stop and report the problem instead of guessing.",
                obs.split(": ").skip(1).collect::<Vec<_>>().join(": ")
            ));
        }
    }
    if let Some(verb) = &intent.destructive
        && !prompt.tools.iter().any(|t| t.name.contains(verb.as_str()))
    {
        return finish(format!(
            "The request asks me to {verb} data. None of the available tools ({}) can do that, and a destructive request like this is outside what I am permitted to do. I will decline.",
            tool_names(prompt)
        ));
    }
    let seq = plan(prompt, &request, &intent);
    if seq.is_empty() {
        return finish(format!(
            "I cannot serve this request with the available tools ({}); nothing in it maps to a customer lookup, ticket, account calculation or customer list. I will explain that.",
            tool_names(prompt)
        ));
    }
    let Some(next) = seq.get(done.len()) else {
        return finish("I have gathered everything the request needs; finishing so the answer can be written.".into());
    };
    let Some(tool) = offered(prompt, next) else {
        return finish(format!("The next step would need {next}, which is not available to me."));
    };
    match args_for(tool, &request, &intent, &done) {
        Ok((args, thought)) => NextStep { thought, tool: tool.name.clone(), args },
        Err(why) => finish(why),
    }
}

fn tool_names(prompt: &Prompt) -> String {
    prompt.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn args_for(
    tool: &OfferedTool,
    request: &str,
    intent: &Intent,
    done: &[(String, String, String)],
) -> Result<(Map<String, Value>, String), String> {
    let id = intent.customer_ids.first().cloned().unwrap_or_default();
    let mut args = Map::new();
    let thought = match tool.name.as_str() {
        "get_customer_info" => {
            args.insert("customer_id".into(), json!(id));
            format!("The request concerns customer {id}. First I will look up their profile with get_customer_info.")
        }
        "create_support_ticket" => {
            let priority = intent.priority.unwrap_or("medium");
            args.insert("customer_id".into(), json!(id));
            args.insert("subject".into(), json!(subject(request)));
            args.insert("description".into(), json!(request.trim()));
            args.insert("priority".into(), json!(priority));
            format!(
                "Customer {id} exists. Next I will open a support ticket with create_support_ticket at {priority} priority."
            )
        }
        "calculate_account_value" => {
            let (amounts, source) = if intent.amounts.is_empty() {
                let ltv = done
                    .iter()
                    .find(|(t, _, _)| t == "get_customer_info")
                    .and_then(|(_, _, obs)| parse_json_like(obs))
                    .and_then(|v| v.get("lifetime_value").and_then(Value::as_f64));
                match ltv {
                    Some(v) => (vec![v], "the lifetime value on file, since the request lists no purchase amounts"),
                    None => return Err("The request asks for an account value but gives no purchase amounts, and none are on file; I will ask for them.".into()),
                }
            } else {
                (intent.amounts.clone(), "the purchase amounts given in the request")
            };
            args.insert("customer_id".into(), json!(id));
            args.insert("amounts".into(), json!(amounts));
            format!("Now I will calculate the account value for {id} with calculate_account_value, using {source}.")
        }
        "get_recent_customers" => {
            let limit = intent.limit.unwrap_or(5);
            args.insert("limit".into(), json!(limit));
            format!(
                "The request asks for recent customers; I will list the {limit} most recently active with get_recent_customers."
            )
        }
        other => format!("Next I will call {other}."),
    };
    // Only arguments the tool actually declares.
    if !tool.args.is_empty() {
        args.retain(|k, _| tool.args.contains_key(k));
    }
    Ok((args, thought))
}

/// A ticket subject from the request: the clause explaining the problem, capitalised.
fn subject(request: &str) -> String {
    let lower = request.to_ascii_lowercase();
    let clause = ["as the ", "because ", "since ", "about ", "regarding "]
        .iter()
        .find_map(|m| lower.find(m).map(|i| &request[i + m.len()..]))
        .unwrap_or(request);
    let clause = clause.trim().trim_end_matches('.');
    let mut s: String = clause.chars().take(80).collect();
    if let Some(first) = s.get(..1) {
        s = first.to_uppercase() + &s[1..];
    }
    if s.is_empty() { "Support request".into() } else { s }
}

/// The extract step: reasoning and a response built from what the tools returned.
fn summarize(prompt: &Prompt) -> (String, String) {
    let request = prompt.fields.get("request").cloned().unwrap_or_default();
    let done = executed(&prompt.fields);
    let used: Vec<&(String, String, String)> = done.iter().filter(|(t, _, _)| t != "finish").collect();
    let mut facts = Vec::new();
    let mut problems = Vec::new();
    for (tool, _, obs) in &used {
        if obs.starts_with("Permission denied") {
            let detail = obs.trim_start_matches("Permission denied: ");
            problems.push(format!(
                "I could not complete {tool}: the request was denied because {}. An operator can grant the missing scope and re-run the request.",
                lowercase_first(detail.trim_end_matches('.'))
            ));
            continue;
        }
        if obs.starts_with("Execution error") {
            problems.push(format!(
                "{tool} failed: {}.",
                obs.split(": ").skip(1).collect::<Vec<_>>().join(": ").trim_end_matches('.')
            ));
            continue;
        }
        let v = parse_json_like(obs).unwrap_or(Value::Null);
        facts.push(describe(tool, &v));
    }
    let intent = intent_of(&request);
    let response = if used.is_empty() {
        match &intent.destructive {
            Some(verb) => format!(
                "I'm sorry, but I can't {verb} customer data. None of my tools can do that, and a destructive request like this must go through an administrator with the right authorization."
            ),
            None => "I'm sorry, but I can't help with that request using the tools available to me (customer lookup, recent customers, support tickets and account value calculations).".into(),
        }
    } else {
        facts.into_iter().chain(problems).collect::<Vec<_>>().join(" ")
    };
    let steps: Vec<String> = used.iter().map(|(t, a, _)| format!("{t}({a})")).collect();
    let reasoning = if steps.is_empty() {
        "No available tool can serve this request, so I did not call any.".to_string()
    } else {
        format!("I called {} and based the answer on their results.", steps.join(", then "))
    };
    (reasoning, response)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn describe(tool: &str, v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    match tool {
        "get_customer_info" => format!(
            "Customer {} ({}) is a {}-tier customer with status {}.",
            s("customer_id"),
            s("name"),
            s("tier"),
            s("status")
        ),
        "create_support_ticket" => {
            let replay = if v.get("replayed").and_then(Value::as_bool) == Some(true) {
                " (it already existed for this request)"
            } else {
                ""
            };
            format!(
                "I opened support ticket {} for {} at {} priority{replay}: \"{}\".",
                s("ticket_id"),
                s("customer_id"),
                s("priority"),
                s("subject")
            )
        }
        "calculate_account_value" => format!(
            "The account value for {} is ${:.2} across {} purchase(s) (average ${:.2}, min ${:.2}, max ${:.2}), which is {} tier.",
            s("customer_id"),
            n("total"),
            n("count"),
            n("average"),
            n("min"),
            n("max"),
            s("tier")
        ),
        "get_recent_customers" => {
            let names: Vec<String> = v
                .get("customers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            format!(
                                "{} ({})",
                                c.get("name").and_then(Value::as_str).unwrap_or("?"),
                                c.get("customer_id").and_then(Value::as_str).unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("The most recently active customers are: {}.", names.join(", "))
        }
        other => format!("{other} returned: {}", crate::agent::pyfmt::str_scalar(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_extraction() {
        let i = intent_of("For customer ABC123 create a support ticket as the bbq grill that she bought is defective.");
        assert_eq!(i.customer_ids, vec!["ABC123"]);
        assert!(i.ticket && !i.account);
        assert_eq!(i.priority, Some("high"));
        let a = intent_of(
            "Check the account status for customer ABC123 and calculate their total purchase value with amounts [250.0, 175.50, 82.25]",
        );
        assert_eq!(a.amounts, vec![250.0, 175.5, 82.25]);
        assert!(a.account);
        let d = intent_of("Delete all customer data");
        assert_eq!(d.destructive.as_deref(), Some("delete"));
        assert_eq!(amounts("purchases: $120, $80.50 and 3 items"), vec![120.0, 80.5]);
    }

    #[test]
    fn subjects_come_from_the_problem_clause() {
        assert_eq!(
            subject("For customer ABC123 create a support ticket as the bbq grill that she bought is defective."),
            "Bbq grill that she bought is defective"
        );
    }

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
}
