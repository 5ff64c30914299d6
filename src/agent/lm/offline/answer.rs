//! Writing the final answer (the extract step) from the trajectory's observations. Facts
//! come from what the tools returned; what was asked, and what is missing, from the
//! request. Every sentence names what its number or tier belongs to, so two facts never
//! read as a contradiction (the customer's tier on file vs the tier a total would earn).

use serde_json::Value;

use super::parse::{Request, parse, words};
use super::plan::{Decision, KNOWN_TOOLS, Missing, Task, decide_among};
use super::{Executed, Prompt, TOOLS_MARKER};
use crate::agent::adapter::value::parse_json_like;

/// What the planner can do, per tool, with an example request.
const CAPABILITIES: &[(&str, &str)] = &[
    ("get_customer_info", "look up a customer by ID (\"look up ABC123\")"),
    ("get_recent_customers", "list the most recently active customers (\"show the 5 most recent customers\")"),
    ("create_support_ticket", "open a support ticket (\"create a ticket for ABC123: the grill is broken\")"),
    (
        "calculate_account_value",
        "calculate an account value from purchase amounts (\"account value for ABC123 with purchases 120, 80.50\")",
    ),
];

/// `(reasoning, response)` for the extract step.
pub fn summarize(prompt: &Prompt) -> (String, String) {
    let request = prompt.request();
    let req = parse(&request);
    let done = prompt.executed();
    let used: Vec<&Executed> = done.iter().filter(|s| s.tool != "finish").collect();
    let response = if used.is_empty() { without_tools(&request, &req, &done) } else { from_observations(&req, &used) };
    let steps: Vec<String> = used.iter().map(|s| format!("{}({})", s.tool, s.args)).collect();
    let reasoning = if steps.is_empty() {
        "No tool call could serve this request as it stands, so I did not call any.".to_string()
    } else {
        format!("I called {} and based the answer on their results.", steps.join(", then "))
    };
    (reasoning, response)
}

/// The answer when no tool ran: a question for what is missing, what the planner can do,
/// or a refusal. Tools it does not know (another server's) are named, with the way to use
/// them: a real model.
fn without_tools(request: &str, req: &Request, done: &[Executed]) -> String {
    let offered = offered(done);
    let can = capabilities(offered.as_deref());
    let unknown = unknown_tools(offered.as_deref());
    let thanked = req.wants.greeting && words(request).iter().any(|w| w == "thanks" || w == "thank");
    let answer = |opening: &str| match &can {
        Some(can) => format!("{opening}I can {can}.{}", other_tools(&unknown, true)),
        None => format!(
            "{opening}I'm Warden's offline planner: I can only plan for the customer-service tools (customer lookups, recent customers, tickets, account values), and none are available here.{}",
            other_tools(&unknown, false)
        ),
    };
    match decide_among(req, !unknown.is_empty()) {
        Decision::Decline(verb) => format!(
            "I'm sorry, but I can't {verb} customer data. None of my tools can do that, and a destructive request like this must go through an administrator with the right authorization."
        ),
        // Asking for a customer ID only makes sense when there is a customer tool to use it.
        Decision::Ask(missing) if can.is_some() => ask(req, &missing),
        Decision::Greet if thanked && can.is_some() => {
            answer("You're welcome! ").replacen("welcome! I can ", "welcome! I can also ", 1)
        }
        Decision::Greet if thanked => answer("You're welcome! "),
        Decision::Greet if req.wants.greeting => answer("Hello! "),
        Decision::Greet if can.is_some() => answer("Here is what I can do: ").replacen("do: I can ", "do: ", 1),
        Decision::Greet => answer(""),
        Decision::Unsupported if !req.ticket_refs.is_empty() => answer(&format!(
            "I'm sorry, but I can't look up existing tickets ({}): none of my tools reads tickets back. ",
            req.ticket_refs.join(", ")
        )),
        Decision::Calls(_) => {
            let why = done.last().map(|s| s.thought.split(TOOLS_MARKER).next().unwrap_or("").trim()).unwrap_or("");
            answer(&format!("I couldn't complete the request: {} ", lowercase_first(why)))
        }
        _ => answer("I'm sorry, but I can't help with that request. "),
    }
}

/// The tools offered, from the planner's own finish thought (None when it does not say).
fn offered(done: &[Executed]) -> Option<Vec<&str>> {
    done.iter()
        .rev()
        .find_map(|s| s.thought.split_once(TOOLS_MARKER))
        .map(|(_, list)| list.trim_end_matches('.').split(", ").map(str::trim).filter(|t| *t != "finish").collect())
}

/// Offered tools the planner has no plan for: another server's (`echo`, `get-sum`, …).
fn unknown_tools<'a>(offered: Option<&[&'a str]>) -> Vec<&'a str> {
    offered.unwrap_or_default().iter().filter(|t| !t.is_empty() && !KNOWN_TOOLS.contains(t)).copied().collect()
}

/// The sentence about tools the planner cannot plan for: a real model can.
fn other_tools(unknown: &[&str], beside_known: bool) -> String {
    const SHOWN: usize = 5;
    if unknown.is_empty() {
        return String::new();
    }
    let mut list = unknown.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if unknown.len() > SHOWN {
        list.push_str(&format!(" and {} more", unknown.len() - SHOWN));
    }
    if beside_known {
        format!(
            " The other tools offered ({list}) I cannot plan for: I'm Warden's offline planner and know only the customer-service tools; run Warden with --model to use them (see \"Language models\" in the README)."
        )
    } else {
        format!(
            " The tools offered ({list}) need a language model: run Warden with --model (see \"Language models\" in the README)."
        )
    }
}

fn ask(req: &Request, missing: &Missing) -> String {
    const ID_HINT: &str = "Give me their customer ID, like ABC123 (three letters and three digits).";
    let bad = match req.bad_ids.as_slice() {
        [] => String::new(),
        [one] => format!(" \"{one}\" is not a customer ID."),
        many => {
            format!(" {} are not customer IDs.", many.iter().map(|b| format!("\"{b}\"")).collect::<Vec<_>>().join(", "))
        }
    };
    let what = |task: &Task| match task {
        Task::Ticket => "is this ticket for",
        Task::Account => "should I calculate the account value for",
        Task::Lookup => "do you mean",
    };
    match missing {
        Missing::Customer(task) => format!("Which customer {}?{bad} {ID_HINT}", what(task)),
        Missing::OneCustomer(task, ids) => format!(
            "The request names several customers ({}); which one {}? Ask again with just that customer's ID.",
            ids.join(", "),
            what(task)
        ),
        Missing::Problem(id) => format!(
            "What is the problem for customer {id}? Tell me what happened, for example: \"Create a ticket for {id}: the grill's igniter does not spark\"."
        ),
        Missing::Amounts(id) => amounts_hint(id),
        Missing::OneCurrency(codes) => format!(
            "The amounts are in different currencies ({}), and I can't add them up without an exchange rate. Give me the amounts in one currency.",
            codes.join(", ")
        ),
    }
}

fn amounts_hint(id: &str) -> String {
    format!(
        "To calculate the account value for {id} I need the purchase amounts, for example: \"account value for {id} with purchases 120, 80.50\"."
    )
}

/// "look up …, list …, open … and calculate …", for the customer-service tools offered
/// (all four when the trajectory does not say); None when none of them is.
fn capabilities(offered: Option<&[&str]>) -> Option<String> {
    let items: Vec<&str> = CAPABILITIES
        .iter()
        .filter(|(tool, _)| offered.is_none_or(|o| o.contains(tool)))
        .map(|(_, text)| *text)
        .collect();
    match items.as_slice() {
        [] => None,
        [one] => Some((*one).to_string()),
        [init @ .., last] => Some(format!("{}; and {last}", init.join("; "))),
    }
}

fn from_observations(req: &Request, used: &[&Executed]) -> String {
    let mut facts = Vec::new();
    let mut problems = Vec::new();
    // The tier on the customer's profile, when it was looked up (to tell it apart from the
    // tier a calculated total would earn).
    let mut profile_tier: Option<String> = None;
    let mut calculated = false;
    for step in used {
        let (tool, obs) = (step.tool.as_str(), step.observation.as_str());
        if let Some(detail) = obs.strip_prefix("Permission denied: ") {
            problems.push(format!(
                "I could not complete {tool}: the request was denied because {}. An operator can grant the missing scope and re-run the request.",
                lowercase_first(detail.trim_end_matches('.'))
            ));
            continue;
        }
        if obs.starts_with("Execution error") {
            let detail = obs.split(": ").skip(1).collect::<Vec<_>>().join(": ");
            let detail = detail.trim_end_matches('.');
            problems.push(match detail.strip_prefix("customer ").and_then(|d| d.strip_suffix(" not found")) {
                Some(id) => {
                    format!("I couldn't find customer {id}. Check the ID: three letters and three digits, like ABC123.")
                }
                None => format!("{tool} failed: {detail}."),
            });
            continue;
        }
        let v = parse_json_like(obs).unwrap_or(Value::Null);
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        match tool {
            "get_customer_info" => {
                let mut fact = format!(
                    "Customer {} ({}) is a {}-tier customer with status {}.",
                    s("customer_id"),
                    s("name"),
                    s("tier"),
                    s("status")
                );
                if req.wants.lifetime || (req.wants.account && req.amounts.is_empty()) {
                    fact.push_str(&format!(" Their lifetime value on file is {}.", money("$", n("lifetime_value"))));
                }
                profile_tier = v.get("tier").and_then(Value::as_str).map(str::to_string);
                facts.push(fact);
            }
            "create_support_ticket" => {
                let replay = if v.get("replayed").and_then(Value::as_bool) == Some(true) {
                    " (it already existed for this request)"
                } else {
                    ""
                };
                facts.push(format!(
                    "I opened support ticket {} for {} at {} priority{replay}: \"{}\".",
                    s("ticket_id"),
                    s("customer_id"),
                    s("priority"),
                    s("subject")
                ));
            }
            "calculate_account_value" => {
                calculated = true;
                let sym = req.currencies.first().map_or("$", |c| c.prefix());
                let count = n("count") as u64;
                let total = money(sym, n("total"));
                let mut fact = if count == 1 {
                    format!("The 1 purchase you gave for {} comes to {total}.", s("customer_id"))
                } else {
                    format!(
                        "The {count} purchases you gave for {} total {total} (average {}, min {}, max {}).",
                        s("customer_id"),
                        money(sym, n("average")),
                        money(sym, n("min")),
                        money(sym, n("max"))
                    )
                };
                let earned = s("tier");
                fact.push(' ');
                fact.push_str(&match &profile_tier {
                    Some(t) if *t == earned => {
                        format!("A total of that size falls in the {earned} tier, the same tier the customer has on file.")
                    }
                    Some(t) => format!(
                        "A total of that size corresponds to the {earned} tier; the customer's own tier on file is {t} (it is not recalculated from these amounts)."
                    ),
                    None => format!("A total of that size corresponds to the {earned} tier."),
                });
                facts.push(fact);
            }
            "get_recent_customers" => facts.push(recent(req, step, &v)),
            other => facts.push(format!("{other} returned: {}", crate::agent::pyfmt::str_scalar(&v))),
        }
    }
    // Asked for a calculation without amounts: say so rather than use a number on file.
    if req.wants.account
        && !calculated
        && req.amounts.is_empty()
        && problems.is_empty()
        && let Some(id) = req.customer_ids.first()
    {
        facts.push(amounts_hint(id));
    }
    facts.into_iter().chain(problems).collect::<Vec<_>>().join(" ")
}

/// The recent-customers fact, saying when the count asked for was out of range.
fn recent(req: &Request, step: &Executed, v: &Value) -> String {
    let used = parse_json_like(&step.args).and_then(|a| a.get("limit").and_then(Value::as_i64));
    let customers: Vec<String> = v
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
    let mut out = String::new();
    // `i64::MAX` stands for "all" (see `parse`): no count was named, so nothing to correct.
    if let (Some(asked), Some(used)) = (req.count.filter(|c| *c != i64::MAX), used) {
        if asked > used {
            out.push_str(&format!("I can list at most {used} customers, so I asked for the {used} most recent. "));
        } else if asked < used {
            out.push_str(&format!("I can't list {asked} customers, so I asked for {used}. "));
        }
    }
    let c = customers.len();
    let list = customers.join(", ");
    out.push_str(&match c {
        0 => "There are no customers on file.".to_string(),
        1 => format!("The most recently active customer is {list}."),
        _ if used.is_some_and(|u| (c as i64) < u) => {
            format!("There are only {c} customers; from the most recently active: {list}.")
        }
        _ => format!("The {c} most recently active customers are: {list}."),
    });
    out
}

/// `$1,234.50`: two decimals, thousands grouped.
pub fn money(prefix: &str, v: f64) -> String {
    let cents = (v.abs() * 100.0).round() as u64;
    let (whole, frac) = (cents / 100, cents % 100);
    let digits = whole.to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    format!("{sign}{prefix}{grouped}.{frac:02}")
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(tool: &str, args: &str, obs: &str) -> Executed {
        Executed { thought: String::new(), tool: tool.into(), args: args.into(), observation: obs.into() }
    }

    #[test]
    fn money_is_grouped_with_two_decimals() {
        assert_eq!(money("$", 4820.75), "$4,820.75");
        assert_eq!(money("€", 1_000_000.0), "€1,000,000.00");
        assert_eq!(money("$", 0.5), "$0.50");
    }

    #[test]
    fn tiers_are_told_apart_and_counts_agree() {
        let req = parse("Check ABC123 and calculate value with purchases 300.50");
        let info = step(
            "get_customer_info",
            "{\"customer_id\": \"ABC123\"}",
            "{\"customer_id\": \"ABC123\", \"name\": \"Sarah Johnson\", \"tier\": \"gold\", \"status\": \"active\"}",
        );
        let calc = step(
            "calculate_account_value",
            "{}",
            "{\"customer_id\": \"ABC123\", \"count\": 1, \"total\": 300.5, \"average\": 300.5, \"min\": 300.5, \"max\": 300.5, \"tier\": \"bronze\"}",
        );
        let text = from_observations(&req, &[&info, &calc]);
        assert_eq!(
            text,
            "Customer ABC123 (Sarah Johnson) is a gold-tier customer with status active. The 1 purchase you gave for ABC123 comes to $300.50. A total of that size corresponds to the bronze tier; the customer's own tier on file is gold (it is not recalculated from these amounts)."
        );
        assert!(!text.contains("purchase(s)"));
    }

    #[test]
    fn clamped_lists_say_so() {
        let req = parse("Show me the 100 most recent customers");
        let s = step(
            "get_recent_customers",
            "{\"limit\": 50}",
            "{\"count\": 2, \"customers\": [{\"name\": \"A\", \"customer_id\": \"AAA111\"}, {\"name\": \"B\", \"customer_id\": \"BBB222\"}]}",
        );
        assert_eq!(
            from_observations(&req, &[&s]),
            "I can list at most 50 customers, so I asked for the 50 most recent. There are only 2 customers; from the most recently active: A (AAA111), B (BBB222)."
        );
    }

    #[test]
    fn missing_pieces_are_asked_for() {
        assert_eq!(
            without_tools("Create a ticket: my grill is broken", &parse("Create a ticket: my grill is broken"), &[]),
            "Which customer is this ticket for? Give me their customer ID, like ABC123 (three letters and three digits)."
        );
        assert!(without_tools("hello", &parse("hello"), &[]).starts_with("Hello! I can look up a customer by ID"));
        let only_lookup = [step("finish", "{}", "Completed.")].map(|mut s| {
            s.thought = format!("Greeting. {TOOLS_MARKER}get_customer_info.");
            s
        });
        assert_eq!(
            without_tools("what can you do?", &parse("what can you do?"), &only_lookup),
            "Here is what I can do: look up a customer by ID (\"look up ABC123\")."
        );
    }
}
