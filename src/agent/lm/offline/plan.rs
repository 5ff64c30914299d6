//! Choosing the next step: from the parsed request (never from tool output), decide what
//! the request needs — a sequence of tool calls, a question back because something is
//! missing, a greeting, or a refusal — then pick the next call among the tools actually
//! offered, with arguments built from the request and fitted to the tool's schema.

use serde_json::{Map, Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::parse::{Request, is_customer_id, parse, words};
use super::{Executed, OfferedTool, Prompt, TOOLS_MARKER};

/// At most this many profiles are looked up for one request (ReAct stops at five steps
/// and the last one should be `finish`).
const MAX_LOOKUPS: usize = 4;
/// Ticket subjects: a summary line, well under the service's 200-character limit.
pub const SUBJECT_MAX: usize = 60;
/// The service's description limit.
const DESCRIPTION_MAX: usize = 5_000;

pub struct NextStep {
    pub thought: String,
    pub tool: String,
    pub args: Map<String, Value>,
}

/// What the planner does for a request, decided from the request alone.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Call these tools, in order.
    Calls(Vec<&'static str>),
    /// Something a tool needs is missing: ask for it, call nothing.
    Ask(Missing),
    /// A greeting or a request for help: say what the planner can do.
    Greet,
    /// A destructive request (the verb): decline.
    Decline(String),
    /// Nothing the tools can serve.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Ticket,
    Account,
    Lookup,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Missing {
    /// No customer ID.
    Customer(Task),
    /// Several IDs where one is needed.
    OneCustomer(Task, Vec<String>),
    /// A ticket with nothing to say what it is about.
    Problem(String),
    /// An account value with no purchase amounts.
    Amounts(String),
    /// Amounts in more than one currency.
    OneCurrency(Vec<&'static str>),
}

pub fn decide(req: &Request) -> Decision {
    if let Some(verb) = &req.destructive {
        return Decision::Decline(verb.clone());
    }
    let w = req.wants;
    let ids = &req.customer_ids;
    // "What's the status of TKT-000001?": no tool reads tickets back.
    if !req.ticket_refs.is_empty() && !w.account && ids.is_empty() {
        return Decision::Unsupported;
    }
    if w.ticket || w.account {
        let task = if w.ticket { Task::Ticket } else { Task::Account };
        let id = match ids.as_slice() {
            [] => return Decision::Ask(Missing::Customer(task)),
            [one] => one.clone(),
            many => return Decision::Ask(Missing::OneCustomer(task, many.to_vec())),
        };
        if w.ticket && req.problem.is_none() {
            return Decision::Ask(Missing::Problem(id));
        }
        if w.account && req.currencies.len() > 1 {
            return Decision::Ask(Missing::OneCurrency(req.currencies.iter().map(|c| c.code()).collect()));
        }
        // "Check the status and calculate the value for ABC123" without amounts: the
        // lookup still runs and the answer asks for the amounts.
        if w.account && !w.ticket && req.amounts.is_empty() && !w.info {
            return Decision::Ask(Missing::Amounts(id));
        }
        let mut calls = vec!["get_customer_info"];
        if w.ticket {
            calls.push("create_support_ticket");
        }
        if w.account && !req.amounts.is_empty() && req.currencies.len() <= 1 {
            calls.push("calculate_account_value");
        }
        return Decision::Calls(calls);
    }
    let mut calls = Vec::new();
    if w.recent {
        calls.push("get_recent_customers");
    }
    if !ids.is_empty() && (w.info || w.lifetime) {
        calls.extend(ids.iter().take(MAX_LOOKUPS - calls.len()).map(|_| "get_customer_info"));
    }
    if !calls.is_empty() {
        return Decision::Calls(calls);
    }
    if ids.is_empty() && (w.about_customer || w.lifetime || !req.bad_ids.is_empty()) {
        return Decision::Ask(Missing::Customer(Task::Lookup));
    }
    if w.greeting || w.help {
        return Decision::Greet;
    }
    Decision::Unsupported
}

/// The tools the planner has plans for: the customer-service server's.
pub const KNOWN_TOOLS: [&str; 4] =
    ["get_customer_info", "get_recent_customers", "create_support_ticket", "calculate_account_value"];

/// `decide`, knowing whether tools the planner has no plan for are offered too. Then a
/// request that says nothing about a customer ("what is the sum of 2 and 3?") is not
/// turned into a question for a customer ID: it is likely meant for one of those tools,
/// and the answer says so instead of forcing it onto a customer-service tool.
pub fn decide_among(req: &Request, other_tools: bool) -> Decision {
    match decide(req) {
        Decision::Ask(Missing::Customer(_)) if other_tools && !req.wants.about_customer && req.bad_ids.is_empty() => {
            Decision::Unsupported
        }
        decision => decision,
    }
}

fn finish(thought: String) -> NextStep {
    NextStep { thought, tool: "finish".into(), args: Map::new() }
}

pub fn next_step(prompt: &Prompt) -> NextStep {
    let request = prompt.request();
    let req = parse(&request);
    let done = prompt.executed();
    if let Some(last) = done.last() {
        let (tool, obs) = (&last.tool, &last.observation);
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
    let available = format!("{TOOLS_MARKER}{}.", tool_names(prompt));
    let other_tools = prompt.tools.iter().any(|t| t.name != "finish" && !KNOWN_TOOLS.contains(&t.name.as_str()));
    let calls = match decide_among(&req, other_tools) {
        Decision::Calls(calls) => calls,
        Decision::Decline(verb) => {
            return finish(format!(
                "The request asks me to {verb} data. None of the available tools can do that, and a destructive request like this is outside what I am permitted to do. I will decline. {available}"
            ));
        }
        Decision::Ask(missing) => {
            return finish(format!("{} I will ask for it instead of guessing. {available}", missing_thought(&missing)));
        }
        Decision::Greet => {
            return finish(format!(
                "The request is a greeting or asks what I can do; I will answer with what I can do. {available}"
            ));
        }
        Decision::Unsupported => {
            return finish(format!(
                "Nothing in the request maps to a customer lookup, a list of recent customers, a ticket or an account calculation; I will say what I can do. {available}"
            ));
        }
    };
    // A call the program's learnt constraints forbid under its grant is never attempted:
    // nothing is started that would end in that denial.
    if let Some(f) = calls.iter().find_map(|c| prompt.forbidden(c)) {
        // What can still be done lists only the tools no constraint forbids, so the answer
        // does not offer what it just declined.
        let allowed: Vec<&str> =
            prompt.tools.iter().map(|t| t.name.as_str()).filter(|t| prompt.forbidden(t).is_none()).collect();
        return finish(format!(
            "The request needs {}, and this program's learnt security constraints forbid calling it under the grant {{{}}}: {}. I will not attempt it, and will explain instead. {TOOLS_MARKER}{}.",
            f.tool,
            f.grant,
            f.why,
            allowed.join(", ")
        ));
    }
    // A similar demo may set the order, but never adds a call the request cannot supply
    // arguments for (a calculation without amounts, a ticket without a problem).
    // A demo that ends in `finish` shows a whole run and may also end the plan early; one
    // caught mid-run (bootstrapping keeps one step of a trace) only shows how it began, so
    // the planner's own remaining calls follow it.
    let seq = demo_sequence(prompt, &request)
        .map(|(mut seq, complete)| {
            seq.retain(|t| calls.contains(&t.as_str()));
            if !complete && !seq.is_empty() {
                for (i, c) in calls.iter().enumerate() {
                    let wanted = calls[..=i].iter().filter(|x| *x == c).count();
                    if seq.iter().filter(|t| t.as_str() == *c).count() < wanted {
                        seq.push(c.to_string());
                    }
                }
            }
            seq
        })
        .filter(|seq| !seq.is_empty())
        .unwrap_or_else(|| calls.iter().map(|c| c.to_string()).collect());
    let Some(next) = seq.get(done.len()) else {
        return finish("I have gathered everything the request needs; finishing so the answer can be written.".into());
    };
    let Some(tool) = prompt.offered(next) else {
        return finish(format!("The next step would need {next}, which is not available to me. {available}"));
    };
    let lookup_index = seq[..done.len()].iter().filter(|t| *t == "get_customer_info").count();
    let (args, thought) = args_for(tool, &request, &req, lookup_index);
    NextStep { thought, tool: tool.name.clone(), args }
}

fn missing_thought(m: &Missing) -> String {
    match m {
        Missing::Customer(_) => "The request names no customer ID (three letters and three digits).".into(),
        Missing::OneCustomer(_, ids) => {
            format!("The request names several customers ({}), and this needs one.", ids.join(", "))
        }
        Missing::Problem(id) => format!("The request asks for a ticket for {id} but does not say what the problem is."),
        Missing::Amounts(id) => {
            format!(
                "The request asks for an account value for {id} but gives no purchase amounts, and I only use amounts from the request."
            )
        }
        Missing::OneCurrency(codes) => format!("The amounts are in different currencies ({}).", codes.join(", ")),
    }
}

fn tool_names(prompt: &Prompt) -> String {
    prompt.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The arguments for `tool` and the thought that explains them. Only arguments the tool
/// declares are kept.
fn args_for(tool: &OfferedTool, request: &str, req: &Request, lookup_index: usize) -> (Map<String, Value>, String) {
    let id = req.customer_ids.get(lookup_index).or(req.customer_ids.first()).cloned().unwrap_or_default();
    let mut args = Map::new();
    let thought = match tool.name.as_str() {
        "get_customer_info" => {
            args.insert("customer_id".into(), json!(id));
            format!("The request concerns customer {id}. I will look up their profile with get_customer_info.")
        }
        "create_support_ticket" => {
            let level = req.priority.map_or("medium", |p| p.level);
            let why = req
                .priority
                .map_or_else(|| "no priority was given".to_string(), |p| format!("the request says \"{}\"", p.said));
            let subject = subject(req.problem.as_deref().unwrap_or(request));
            args.insert("customer_id".into(), json!(id));
            args.insert("subject".into(), json!(subject));
            args.insert("description".into(), json!(cut(request.trim(), DESCRIPTION_MAX)));
            args.insert("priority".into(), json!(level));
            format!(
                "Customer {id} exists. Next I will open a support ticket with create_support_ticket at {level} priority ({why}), subject \"{subject}\"."
            )
        }
        "calculate_account_value" => {
            args.insert("customer_id".into(), json!(id));
            args.insert("amounts".into(), json!(req.amounts));
            let amounts = crate::types::text::counted(req.amounts.len() as u64, "purchase amount", "purchase amounts");
            format!(
                "Now I will calculate the account value for {id} with calculate_account_value from the {amounts} given in the request."
            )
        }
        "get_recent_customers" => {
            let (min, max, default) = limit_range(tool);
            let asked = req.count.unwrap_or(default);
            let limit = asked.clamp(min, max);
            args.insert("limit".into(), json!(limit));
            let clamped = if asked == i64::MAX {
                format!(" The request asks for all of them; the tool returns at most {max}.")
            } else if limit != asked {
                format!(
                    " The request asks for {asked}, but the tool accepts {min} to {max}, so I will ask for {limit}."
                )
            } else {
                String::new()
            };
            format!(
                "The request asks for recent customers; I will list the {limit} most recently active with get_recent_customers.{clamped}"
            )
        }
        other => format!("Next I will call {other}."),
    };
    if !tool.args.is_empty() {
        args.retain(|k, _| tool.args.contains_key(k));
    }
    (args, thought)
}

/// `(minimum, maximum, default)` for `limit`: from the schema's `minimum`/`maximum`, else
/// from a range in its description ("1-50, default 5"), else the service's 1–50, 5.
fn limit_range(tool: &OfferedTool) -> (i64, i64, i64) {
    let schema = tool.args.get("limit");
    let num = |k: &str| schema.and_then(|s| s.get(k)).and_then(Value::as_i64);
    let desc = schema.and_then(|s| s.get("description")).and_then(Value::as_str).unwrap_or("");
    let described = described_range(desc);
    let min = num("minimum").or(described.map(|r| r.0)).unwrap_or(1);
    let max = num("maximum").or(described.map(|r| r.1)).unwrap_or(50).max(min);
    let default = num("default")
        .or_else(|| {
            let rest = &desc[desc.find("default ")? + "default ".len()..];
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .unwrap_or(5)
        .clamp(min, max);
    (min, max, default)
}

/// The first `A-B` (or `A–B`) range of whole numbers in a description.
fn described_range(desc: &str) -> Option<(i64, i64)> {
    let b = desc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()) {
            let s = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let a: i64 = desc[s..i].parse().ok()?;
            let rest = &desc[i..];
            let rest = rest.strip_prefix('-').or_else(|| rest.strip_prefix('–'));
            if let Some(rest) = rest {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(z) = digits.parse::<i64>() {
                    return Some((a, z));
                }
            }
        } else {
            i += 1;
        }
    }
    None
}

/// A ticket subject from the problem: its first sentence, capitalised, cut at a word
/// boundary to at most [`SUBJECT_MAX`] characters.
pub fn subject(problem: &str) -> String {
    let first = first_sentence(problem.trim());
    let first = first.trim().trim_end_matches(['.', '!', '?', '。', '！', '？']);
    let mut chars = first.chars();
    let s = match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => return "Support request".into(),
    };
    cut(&s, SUBJECT_MAX)
}

fn first_sentence(s: &str) -> &str {
    let mut prev_end = false;
    for (i, c) in s.char_indices() {
        if prev_end && c.is_whitespace() {
            return &s[..i];
        }
        // Full-width stops end a sentence without a following space.
        if matches!(c, '。' | '！' | '？') {
            return &s[..i];
        }
        prev_end = matches!(c, '.' | '!' | '?');
    }
    s
}

/// `s` if it has at most `max` characters; else its longest prefix that ends at a word
/// boundary (never inside a grapheme cluster) and fits with "…" appended. A single word
/// longer than that (CJK has no spaces) is cut between grapheme clusters.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let budget = max.saturating_sub(1);
    let (mut end, mut used) = (0, 0);
    for (i, w) in s.split_word_bound_indices() {
        used += w.chars().count();
        if used > budget {
            break;
        }
        if w.chars().any(char::is_alphanumeric) {
            end = i + w.len();
        }
    }
    if end == 0 {
        used = 0;
        for (i, g) in s.grapheme_indices(true) {
            used += g.chars().count();
            if used > budget {
                break;
            }
            end = i + g.len();
        }
    }
    let head = s[..end].trim_end_matches(|c: char| c.is_whitespace() || ",;:-—–(".contains(c));
    format!("{head}…")
}

/// The tool sequence of the most similar demo (by word overlap with the request), and
/// whether the demo shows the whole run (its next step is `finish`).
fn demo_sequence(prompt: &Prompt, request: &str) -> Option<(Vec<String>, bool)> {
    use std::collections::HashSet;
    let mine: HashSet<String> = words(request).into_iter().filter(|w| !is_customer_id(w)).collect();
    let mut best: Option<(f64, Vec<String>, bool)> = None;
    for (user, assistant) in &prompt.demos {
        let Some(demo_request) = user.get("request") else { continue };
        let theirs: HashSet<String> = words(demo_request).into_iter().filter(|w| !is_customer_id(w)).collect();
        let union = mine.union(&theirs).count().max(1) as f64;
        let score = mine.intersection(&theirs).count() as f64 / union;
        let mut seq: Vec<String> = super::executed(user).into_iter().map(|s: Executed| s.tool).collect();
        let next = assistant.get("next_tool_name");
        if let Some(next) = next {
            seq.push(next.clone());
        }
        let complete = next.is_some_and(|n| n == "finish");
        seq.retain(|t| t != "finish" && prompt.offered(t).is_some());
        if score >= 0.3 && !seq.is_empty() && best.as_ref().is_none_or(|(b, ..)| score > *b) {
            best = Some((score, seq, complete));
        }
    }
    best.map(|(_, s, complete)| (s, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(s: &str) -> Decision {
        decide(&parse(s))
    }

    #[test]
    fn decisions_from_the_request() {
        assert_eq!(decide_for("Create a ticket: my grill is broken"), Decision::Ask(Missing::Customer(Task::Ticket)));
        assert_eq!(decide_for("Create a ticket for ABC123"), Decision::Ask(Missing::Problem("ABC123".into())));
        assert_eq!(decide_for("What is the total value for ABC123"), Decision::Ask(Missing::Amounts("ABC123".into())));
        assert_eq!(
            decide_for("Check account status and calculate total value for ABC123"),
            Decision::Calls(vec!["get_customer_info"])
        );
        assert_eq!(
            decide_for("What is the total of purchases 120, 80 for XYZ789"),
            Decision::Calls(vec!["get_customer_info", "calculate_account_value"])
        );
        assert_eq!(decide_for("hello"), Decision::Greet);
        assert_eq!(decide_for("What's the weather like?"), Decision::Unsupported);
        assert_eq!(decide_for("Delete all customer data"), Decision::Decline("delete".into()));
        assert_eq!(decide_for("look up ABC123 and XYZ789"), Decision::Calls(vec!["get_customer_info"; 2]));
        assert_eq!(
            decide_for("show me 5 recent customers and look up ABC123"),
            Decision::Calls(vec!["get_recent_customers", "get_customer_info"])
        );
        assert_eq!(decide_for("What's the status of ticket TKT-000001?"), Decision::Unsupported);
        assert_eq!(
            decide_for("value for ABC123: £10 and €20"),
            Decision::Ask(Missing::OneCurrency(vec!["GBP", "EUR"]))
        );
    }

    #[test]
    fn subjects_are_summaries_cut_at_word_boundaries() {
        assert_eq!(subject("login fails"), "Login fails");
        assert_eq!(subject("the grill is broken. She bought it last week."), "The grill is broken");
        let long = "the replacement burner that was shipped last week does not fit the Grillmaster 3000 model at all";
        let s = subject(long);
        assert_eq!(s, "The replacement burner that was shipped last week does not…");
        assert!(s.chars().count() <= SUBJECT_MAX);
        // CJK: cut between characters, never inside a cluster; the emoji ZWJ sequence
        // and the combining accent survive whole or not at all.
        let cjk = "注文したグリルが届いたときには既に壊れていて点火装置も動作しません交換をお願いしたいです至急対応してください本当に困っています本当に困っています";
        let s = subject(cjk);
        assert!(s.chars().count() <= SUBJECT_MAX && s.ends_with('…') && cjk.starts_with(s.trim_end_matches('…')));
        let family = "👩‍👩‍👧‍👦".repeat(20);
        let s = cut(&family, 10);
        assert_eq!(s, format!("{}…", "👩‍👩‍👧‍👦"), "a 7-char cluster fits once in 9 characters");
        assert_eq!(cut("cafe\u{301} cafe\u{301} cafe\u{301}", 8), "cafe\u{301}…");
        assert_eq!(cut("cafe\u{301}cafe\u{301}", 5), "caf…", "the accent stays with its letter");
    }

    #[test]
    fn limit_ranges_from_the_schema_or_description() {
        let tool =
            |args: Value| OfferedTool { name: "get_recent_customers".into(), args: args.as_object().cloned().unwrap() };
        let described = tool(
            json!({"limit": {"description": "How many customers to return, most recently active first (1-50, default 5)."}}),
        );
        assert_eq!(limit_range(&described), (1, 50, 5));
        assert_eq!(limit_range(&tool(json!({"limit": {"minimum": 1, "maximum": 20}}))), (1, 20, 5));
        assert_eq!(limit_range(&tool(json!({"limit": {}}))), (1, 50, 5));
    }
}
