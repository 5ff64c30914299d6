//! Request parsing for the offline planner: customer IDs, amounts, a count, a priority,
//! the problem a ticket is about, and what the request wants (intent). Everything here
//! reads the operator's request only — never tool output — so an observation cannot put
//! an amount or an instruction into a plan.
//!
//! Numbers, as people type them:
//! - integers and decimals (`100`, `300.50`), with a currency symbol or code before or
//!   after (`$`, `€`, `£`, `¥`, `USD`, `EUR`, `GBP`, …) or a word after (`300 dollars`,
//!   `20 euros`), and `k` for thousands (`1.5k`);
//! - a comma directly followed by exactly three digits (no space) groups thousands
//!   (`1,200.50` is one number); a comma followed by a space or by other than three
//!   digits separates list items (`100, 200 and 300.50` is three numbers), and inside a
//!   bracketed list (`[100,200,300]`) commas always separate; a comma followed by exactly
//!   two digits is a decimal comma (`12,50 €` is 12.50), also after dot-grouped thousands
//!   (`1.234,56`); a dot with three digits and no decimal comma after is a decimal point
//!   (`1.234` is 1.234, as in English);
//! - not amounts: the digits of a customer ID, digits glued to letters (`TKT-000001`,
//!   `2nd`), parts of dates, times and ranges (`2024-05-30`, `10:30`), years after "in",
//!   "since", … (`in 2024`), percentages, and a number followed by what it counts
//!   (`3 items`, `2 purchases`);
//! - a currency code glued to digits is an amount, not a customer ID (`USD100`).

use crate::types::intent::{PROBLEM_PHRASES, PROBLEM_WORDS, TICKET_WORDS};

/// What a request wants, as far as the customer-service tools go.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Request {
    /// Customer IDs in the order they appear, upper-cased, without duplicates.
    pub customer_ids: Vec<String>,
    /// Money amounts (see the module doc for what counts).
    pub amounts: Vec<f64>,
    /// The currencies the amounts were written in (distinct, in order of appearance).
    pub currencies: Vec<Currency>,
    /// The first whole number that could be "how many" (for listing customers).
    pub count: Option<i64>,
    pub priority: Option<Priority>,
    /// What a ticket would be about: the request without its command words and IDs.
    pub problem: Option<String>,
    pub wants: Wants,
    /// A destructive verb aimed at data ("delete all customer data").
    pub destructive: Option<String>,
    /// Tokens that look like a mistyped customer ID (`AB12`, `ABCD1234`).
    pub bad_ids: Vec<String>,
    /// Existing tickets referred to (`TKT-000001`): no tool reads tickets back.
    pub ticket_refs: Vec<String>,
}

/// The intents found; several can hold at once ("check ABC123 and calculate …").
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    /// Open a ticket: an explicit ticket word, or a problem described ("is broken").
    pub ticket: bool,
    /// An explicit ticket word ("ticket", "complaint", "case").
    pub ticket_word: bool,
    /// Calculate an account value from purchase amounts.
    pub account: bool,
    /// List the most recent customers.
    pub recent: bool,
    /// Look a customer up (status, profile, details; or just an ID on its own).
    pub info: bool,
    /// The lifetime value on file (a profile fact, not a calculation).
    pub lifetime: bool,
    /// Mentions a customer or their profile (with or without a usable ID).
    pub about_customer: bool,
    pub greeting: bool,
    pub help: bool,
}

/// A ticket priority and the words that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub level: &'static str,
    pub said: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    Usd,
    Eur,
    Gbp,
    Jpy,
    Cad,
    Aud,
    Chf,
}

impl Currency {
    /// How an amount in this currency is written: `$1,234.50`, `CHF 1,234.50`.
    pub fn prefix(self) -> &'static str {
        match self {
            Currency::Usd => "$",
            Currency::Eur => "€",
            Currency::Gbp => "£",
            Currency::Jpy => "¥",
            Currency::Cad => "CA$",
            Currency::Aud => "A$",
            Currency::Chf => "CHF ",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
            Currency::Cad => "CAD",
            Currency::Aud => "AUD",
            Currency::Chf => "CHF",
        }
    }

    fn from_code(word: &str) -> Option<Currency> {
        Some(match word.to_ascii_lowercase().as_str() {
            "usd" | "dollar" | "dollars" | "bucks" | "us$" => Currency::Usd,
            "eur" | "euro" | "euros" => Currency::Eur,
            "gbp" | "pound" | "pounds" | "quid" => Currency::Gbp,
            "jpy" | "yen" => Currency::Jpy,
            "cad" => Currency::Cad,
            "aud" => Currency::Aud,
            "chf" | "francs" => Currency::Chf,
            _ => return None,
        })
    }

    fn from_symbol(c: char) -> Option<Currency> {
        Some(match c {
            '$' => Currency::Usd,
            '€' => Currency::Eur,
            '£' => Currency::Gbp,
            '¥' | '￥' => Currency::Jpy,
            _ => return None,
        })
    }
}

/// Three letters and three digits, as the service's IDs are (`ABC123`).
pub fn is_customer_id(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 6 && b[..3].iter().all(u8::is_ascii_alphabetic) && b[3..].iter().all(u8::is_ascii_digit)
}

pub fn parse(request: &str) -> Request {
    let ids = customer_ids(request);
    let numbers = numbers(request);
    let ws = words(request);
    let has = |list: &[&str]| ws.iter().any(|w| list.iter().any(|k| close(w, k)));
    let lower = request.to_lowercase();
    let phrase = |list: &[&str]| list.iter().any(|p| contains_phrase(&lower, p));
    let mut r = Request { customer_ids: ids.iter().map(|(id, _)| id.clone()).collect(), ..Request::default() };

    let money: Vec<&Number> = numbers.iter().filter(|n| n.amount_like()).collect();
    let calc_verb = has(&["calculate", "calc", "compute", "sum", "tally", "total", "totals"]) || phrase(&["add up"]);
    let value_words = has(&["value", "worth"]) || phrase(&["account value", "total value"]);
    let purchase_words = has(&["purchases", "purchase", "purchased", "amounts", "amount", "spent", "spend", "bought"]);
    let w = &mut r.wants;
    // "tickets" (plural) asks about tickets rather than for a new one: not a ticket word.
    w.ticket_word = ws.iter().all(|w| w != "tickets") && has(TICKET_WORDS)
        || ws.iter().any(|w| w == "case" || w == "チケット" || w == "工单");
    let problem_words = has(PROBLEM_WORDS) || phrase(PROBLEM_PHRASES);
    w.ticket = w.ticket_word || problem_words;
    w.lifetime = has(&["lifetime", "ltv"]);
    // A ticket can mention a total ("the total on the invoice is wrong"); only a
    // calculation verb makes it an account request as well.
    w.account = if w.ticket_word {
        has(&["calculate", "calc", "compute", "tally"]) || phrase(&["add up", "account value"])
    } else {
        calc_verb || (value_words && !w.lifetime) || (purchase_words && !money.is_empty())
    };
    let recent_word = has(&["recent", "recently", "latest", "newest", "lately"]) || phrase(&["last active"]);
    let people = has(&["customers", "customer", "clients", "client", "accounts", "people", "users"]);
    let list_verb =
        ws.first().is_some_and(|f| f == "list") || phrase(&["list all", "show all", "list the", "list customers"]);
    // With an ID, "recent" needs a word for people ("5 recent customers and ABC123"), so
    // "recent tickets for ABC123" stays a lookup.
    w.recent = (recent_word && (people || r.customer_ids.is_empty())) || (list_verb && people);
    w.info = !r.customer_ids.is_empty()
        && (has(&[
            "status",
            "info",
            "information",
            "details",
            "profile",
            "lookup",
            "look",
            "check",
            "who",
            "show",
            "find",
            "email",
            "phone",
            "contact",
            "tier",
            "lifetime",
        ]) || !(w.ticket || w.account));
    w.about_customer = has(&["customer", "client", "profile", "status", "lookup", "details", "info", "information"])
        || phrase(&["look up"]);
    w.greeting = ws.iter().any(|w| GREETINGS.contains(&w.as_str()));
    w.help = has(&["help", "commands", "capabilities"])
        || phrase(&["what can you do", "what do you do", "how does this work", "what can i ask"])
        || request.trim() == "?";
    r.priority = priority(&lower, &ws);
    // Inside a ticket ("ticket: she wants her account data deleted") the verb is the
    // customer's request to the support team, not a command to the agent.
    r.destructive = ["delete", "remove", "erase", "wipe", "purge", "destroy", "truncate", "drop"]
        .into_iter()
        .filter(|_| !r.wants.ticket_word)
        .find(|v| ws.iter().any(|w| w == v))
        .filter(|_| {
            ws.iter().any(|w| {
                [
                    "data",
                    "customer",
                    "customers",
                    "account",
                    "accounts",
                    "record",
                    "records",
                    "database",
                    "table",
                    "all",
                    "everything",
                ]
                .contains(&w.as_str())
            })
        })
        .map(str::to_string);
    r.amounts = money.iter().map(|n| n.value).collect();
    for n in &money {
        if let Some(c) = n.currency
            && !r.currencies.contains(&c)
        {
            r.currencies.push(c);
        }
    }
    r.count = numbers.iter().find(|n| n.whole()).map(|n| n.value as i64).or_else(|| number_word(&ws));
    if r.count.is_none() && r.wants.recent {
        if ws.iter().any(|w| w == "customer") && !people_plural(&ws) {
            // "the most recent customer": one.
            r.count = Some(1);
        } else if ws.iter().any(|w| w == "all" || w == "every") {
            // "list all customers": as many as the tool allows.
            r.count = Some(i64::MAX);
        }
    }
    r.problem = problem(request, &ids);
    if r.wants.account {
        // "Create a ticket for ABC123 and calculate …": the calculation is not the problem.
        r.problem = r.problem.and_then(|p| {
            let lower = p.to_ascii_lowercase();
            let cut = ["calculate", "compute", "calc ", "sum up", "add up", "tally"]
                .iter()
                .filter_map(|v| lower.find(v))
                .min()
                .unwrap_or(p.len());
            let head = p[..cut].trim_end();
            let head = head
                .strip_suffix(" and")
                .unwrap_or(head)
                .trim_matches(|c: char| c.is_whitespace() || ",;:".contains(c));
            let ws = words(head);
            (!ws.is_empty() && ws.iter().any(|w| !COMMAND_WORDS.contains(&w.as_str()))).then(|| head.to_string())
        });
    }
    r.ticket_refs = ascii_runs(request)
        .windows(2)
        .filter(|w| {
            let (a, b) = (&request[w[0].0..w[0].1], &request[w[1].0..w[1].1]);
            a.eq_ignore_ascii_case("tkt") && w[1].0 == w[0].1 + 1 && b.bytes().all(|c| c.is_ascii_digit())
        })
        .map(|w| request[w[0].0..w[1].1].to_ascii_uppercase())
        .collect();
    r.bad_ids = ascii_runs(request)
        .into_iter()
        .map(|(s, e)| &request[s..e])
        .filter(|run| {
            let letters = run.bytes().take_while(u8::is_ascii_alphabetic).count();
            let digits = run.len() - letters;
            (4..=8).contains(&run.len())
                && letters > 0
                && digits > 0
                && run.bytes().skip(letters).all(|b| b.is_ascii_digit())
                && !is_customer_id(run)
                && Currency::from_code(&run[..letters]).is_none()
        })
        .map(str::to_string)
        .collect();
    r
}

fn people_plural(ws: &[String]) -> bool {
    ws.iter().any(|w| ["customers", "clients", "accounts", "people", "users"].contains(&w.as_str()))
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "howdy",
    "morning",
    "afternoon",
    "evening",
    "yo",
    "hola",
    "bonjour",
    "hallo",
    "ciao",
    "salut",
    "olá",
    "hej",
    "こんにちは",
    "你好",
    "안녕하세요",
    "привет",
    "thanks",
    "thank",
];

/// Words (Unicode letters and digits, apostrophes kept inside), lower-cased.
pub fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(|c: char| c == '\'' || c == '’').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `word` is `keyword`, or one typo away from it (for words of five letters or more:
/// "tikcet", "calcualte", "custmer").
pub fn close(word: &str, keyword: &str) -> bool {
    if word == keyword {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (word.chars().collect(), keyword.chars().collect());
    a.len() >= 5 && b.len() >= 5 && a.len().abs_diff(b.len()) <= 1 && osa_distance(&a, &b) <= 1
}

/// Optimal-string-alignment distance (Levenshtein plus adjacent swaps).
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// `phrase` appears in `lower` on word boundaries.
fn contains_phrase(lower: &str, phrase: &str) -> bool {
    lower.match_indices(phrase).any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

fn priority(lower: &str, ws: &[String]) -> Option<Priority> {
    let phrase = |p: &str| contains_phrase(lower, p);
    let word = |w: &str| ws.iter().any(|x| x == w);
    // Negations first: "not urgent" must not read as urgent.
    const LOW: &[&str] = &[
        "not urgent",
        "non-urgent",
        "nonurgent",
        "not a priority",
        "no rush",
        "no hurry",
        "low priority",
        "low-priority",
        "low prio",
        "whenever",
    ];
    const URGENT: &[&str] = &[
        "as soon as possible",
        "right away",
        "top priority",
        "asap",
        "urgent",
        "urgently",
        "emergency",
        "immediately",
        "critical",
    ];
    const HIGH: &[&str] = &["high priority", "high-priority", "high prio", "important"];
    const MEDIUM: &[&str] = &["medium priority", "normal priority", "medium-priority", "medium"];
    let found = |list: &[&'static str]| list.iter().copied().find(|p| phrase(p));
    if let Some(said) = found(LOW) {
        return Some(Priority { level: "low", said });
    }
    if let Some(said) = found(URGENT) {
        return Some(Priority { level: "urgent", said });
    }
    if let Some(said) = found(HIGH) {
        return Some(Priority { level: "high", said });
    }
    if let Some(said) = found(MEDIUM) {
        return Some(Priority { level: "medium", said });
    }
    // A product that no longer works is worth more than the default.
    ["defective", "broken", "faulty", "damaged"]
        .into_iter()
        .find(|w| word(w))
        .map(|said| Priority { level: "high", said })
}

/// IDs with their byte spans: `ABC123`, `abc123`, `abc-123`; not a currency code with
/// digits (`USD100`), not part of a longer run of letters and digits.
fn customer_ids(text: &str) -> Vec<(String, (usize, usize))> {
    let mut out: Vec<(String, (usize, usize))> = Vec::new();
    let runs = ascii_runs(text);
    for (k, &(s, e)) in runs.iter().enumerate() {
        let run = &text[s..e];
        let candidate = if is_customer_id(run) {
            Some((run.to_ascii_uppercase(), (s, e)))
        } else if run.len() == 3 && run.bytes().all(|b| b.is_ascii_alphabetic()) {
            // `abc-123`: three letters, one hyphen, three digits.
            runs.get(k + 1).and_then(|&(s2, e2)| {
                let digits = &text[s2..e2];
                (s2 == e + 1
                    && text.as_bytes()[e] == b'-'
                    && digits.len() == 3
                    && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (format!("{}{digits}", run.to_ascii_uppercase()), (s, e2)))
            })
        } else {
            None
        };
        if let Some((id, span)) = candidate
            && Currency::from_code(&id[..3]).is_none()
            && !out.iter().any(|(o, _)| *o == id)
        {
            out.push((id, span));
        }
    }
    out
}

/// Byte spans of maximal runs of ASCII letters and digits.
fn ascii_runs(text: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, b) in text.bytes().enumerate() {
        match (b.is_ascii_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, text.len()));
    }
    runs
}

/// A number found in the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    pub value: f64,
    pub currency: Option<Currency>,
    /// Written with a decimal part.
    pub decimal: bool,
    /// Followed by what it counts ("3 items").
    pub counted: bool,
    /// Glued to letters or part of a date, time, range, percentage or reference.
    pub not_a_quantity: bool,
}

impl Number {
    fn amount_like(&self) -> bool {
        !self.counted && !self.not_a_quantity
    }

    fn whole(&self) -> bool {
        !self.not_a_quantity && !self.decimal && self.currency.is_none() && self.value.fract() == 0.0
    }
}

const COUNT_NOUNS: &[&str] = &[
    "item",
    "items",
    "unit",
    "units",
    "time",
    "times",
    "order",
    "orders",
    "piece",
    "pieces",
    "pcs",
    "purchase",
    "purchases",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "hour",
    "hours",
    "minute",
    "minutes",
    "ticket",
    "tickets",
    "percent",
];

/// Every number in `text` (see the module doc for the rules).
pub fn numbers(text: &str) -> Vec<Number> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let digit_at = |i: usize| at(i).is_some_and(|c| c.is_ascii_digit());
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ => {}
        }
        if !c.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        while digit_at(i) {
            digits.push(at(i).unwrap_or('0'));
            i += 1;
        }
        // Thousands groups: `1,200` / `12,345,678`, never inside brackets.
        let mut grouped = false;
        while depth <= 0
            && at(i) == Some(',')
            && (1..=3).all(|k| digit_at(i + k))
            && !digit_at(i + 4)
            && (grouped || digits.len() <= 3)
        {
            for k in 1..=3 {
                digits.push(at(i + k).unwrap_or('0'));
            }
            grouped = true;
            i += 4;
        }
        let mut decimal = false;
        // European grouping with a decimal comma: `1.234,56`, `1.234.567,89`.
        if !grouped && depth <= 0 && digits.len() <= 3 {
            let (mut j, mut groups) = (i, String::new());
            while at(j) == Some('.') && (1..=3).all(|k| digit_at(j + k)) && !digit_at(j + 4) {
                groups.extend((1..=3).filter_map(|k| at(j + k)));
                j += 4;
            }
            if !groups.is_empty() && at(j) == Some(',') && digit_at(j + 1) && digit_at(j + 2) && !digit_at(j + 3) {
                digits.push_str(&groups);
                digits.push('.');
                digits.extend([at(j + 1), at(j + 2)].into_iter().flatten());
                i = j + 3;
                decimal = true;
            }
        }
        if decimal {
            // Already read as `1.234,56`.
        } else if at(i) == Some('.') && digit_at(i + 1) {
            digits.push('.');
            i += 1;
            while digit_at(i) {
                digits.push(at(i).unwrap_or('0'));
                i += 1;
            }
            decimal = true;
        } else if !grouped && depth <= 0 && at(i) == Some(',') && digit_at(i + 1) && digit_at(i + 2) && !digit_at(i + 3)
        {
            // Decimal comma: `12,50`.
            digits.push('.');
            digits.push(at(i + 1).unwrap_or('0'));
            digits.push(at(i + 2).unwrap_or('0'));
            i += 3;
            decimal = true;
        }
        let Ok(mut value) = digits.parse::<f64>() else { continue };
        if matches!(at(i), Some('k' | 'K')) && !at(i + 1).is_some_and(|c| c.is_alphanumeric()) {
            value *= 1000.0;
            i += 1;
        }
        let end = i;
        let before = start.checked_sub(1).and_then(at);
        let before2 = start.checked_sub(2).and_then(at);
        let after = at(end);
        let glued_before = before.is_some_and(|c| c.is_ascii_alphabetic())
            || (matches!(before, Some('-' | '/' | ':' | '#')) && before2.is_some_and(|c| c.is_ascii_alphanumeric()))
            || before == Some('#');
        let glued_after = matches!(after, Some('%'))
            || (matches!(after, Some('-' | '/' | ':')) && digit_at(end + 1))
            || (after.is_some_and(|c| c.is_ascii_alphabetic()) && glued_currency(&chars, end).is_none());
        // The currency: a symbol or code just before, or a symbol, code or word just after.
        let byte = |k: usize| chars.get(k).map_or(text.len(), |&(b, _)| b);
        let prefix = text[..byte(start)].trim_end();
        let mut currency = prefix.chars().next_back().and_then(Currency::from_symbol).or_else(|| {
            let word: String = prefix.chars().rev().take_while(char::is_ascii_alphabetic).collect();
            let word: String = word.chars().rev().collect();
            // Only the three-letter codes stand before an amount ("EUR 40", "usd 40").
            (word.len() == 3).then(|| Currency::from_code(&word)).flatten()
        });
        let rest = text[byte(end)..].trim_start();
        let next_word: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
        if currency.is_none() {
            currency = rest.chars().next().and_then(Currency::from_symbol).or_else(|| Currency::from_code(&next_word));
        }
        let negative = before == Some('-') && !before2.is_some_and(|c| c.is_ascii_alphanumeric());
        // "in 2024", "since 2019": a year, not an amount.
        let prev_word: String = {
            let w: String = prefix.chars().rev().take_while(|c| c.is_alphabetic()).collect();
            w.chars().rev().collect::<String>().to_lowercase()
        };
        let year = !decimal
            && currency.is_none()
            && (1900.0..=2100.0).contains(&value)
            && ["in", "since", "during", "year", "from", "until", "before", "after"].contains(&prev_word.as_str());
        out.push(Number {
            value: if negative { -value } else { value },
            currency,
            decimal,
            counted: currency.is_none() && COUNT_NOUNS.contains(&next_word.as_str()),
            not_a_quantity: glued_before || glued_after || year,
        });
    }
    out
}

/// `100USD`: a currency code glued after the digits.
fn glued_currency(chars: &[(usize, char)], from: usize) -> Option<Currency> {
    let word: String = chars[from..].iter().map(|&(_, c)| c).take_while(char::is_ascii_alphabetic).collect();
    Currency::from_code(&word)
}

/// Small counts written as words ("the three most recent customers").
fn number_word(ws: &[String]) -> Option<i64> {
    const NUMBERS: &[(&str, i64)] = &[
        ("one", 1),
        ("two", 2),
        ("three", 3),
        ("four", 4),
        ("five", 5),
        ("six", 6),
        ("seven", 7),
        ("eight", 8),
        ("nine", 9),
        ("ten", 10),
        ("dozen", 12),
        ("twenty", 20),
        ("fifty", 50),
        ("hundred", 100),
    ];
    ws.iter().find_map(|w| NUMBERS.iter().find(|(n, _)| n == w).map(|&(_, v)| v))
}

/// Words that make up a ticket command rather than the problem it describes.
const COMMAND_WORDS: &[&str] = &[
    "please",
    "pls",
    "plz",
    "kindly",
    "can",
    "could",
    "would",
    "you",
    "hi",
    "hello",
    "hey",
    "create",
    "open",
    "file",
    "raise",
    "log",
    "make",
    "submit",
    "add",
    "start",
    "new",
    "a",
    "an",
    "urgent",
    "urgently",
    "asap",
    "high",
    "low",
    "medium",
    "normal",
    "priority",
    "prio",
    "high-priority",
    "low-priority",
    "not",
    "support",
    "ticket",
    "case",
    "complaint",
    "incident",
    "for",
    "on",
    "to",
    "customer",
    "customers",
    "client",
    "id",
    "with",
    "about",
    "regarding",
    "that",
    "saying",
    "says",
    "said",
    "which",
    "reports",
    "reported",
    "told",
    "us",
    "me",
    "and",
    "re",
    "immediately",
    "emergency",
    "critical",
    "important",
    "we",
    "need",
    "needs",
    "i",
    "want",
    "the",
    "their",
    "account",
    "of",
];

/// What a ticket would be about: the text after a colon or dash that follows the command,
/// or after "as"/"because"/"since"/"about"/"regarding"; otherwise the request with the
/// command words and customer IDs stripped from both ends. `None` when nothing is left.
fn problem(request: &str, ids: &[(String, (usize, usize))]) -> Option<String> {
    // Take the IDs out (with a possessive: "ABC123's grill" → "grill").
    let mut text = String::with_capacity(request.len());
    let mut last = 0;
    for (_, (s, e)) in ids {
        text.push_str(&request[last..*s]);
        text.push(' ');
        last = *e;
        for poss in ["'s", "’s"] {
            if request[last..].starts_with(poss) {
                last += poss.len();
            }
        }
    }
    text.push_str(&request[last..]);
    // Priority phrases read as words of the problem otherwise ("as soon as possible").
    // ASCII lower-casing keeps every byte offset, so an index in `lower` is one in `text`.
    for p in
        ["as soon as possible", "right away", "top priority", "no rush", "no hurry", "not urgent", "not a priority"]
    {
        while let Some(i) = text.to_ascii_lowercase().find(p) {
            text.replace_range(i..i + p.len(), " ");
        }
    }
    // "Crear un ticket para DEF456: …": a ticket word before the separator is enough.
    let names_a_ticket =
        |s: &str| words(s).iter().any(|w| ["ticket", "complaint", "case", "incident"].iter().any(|k| close(w, k)));
    let commandish = |s: &str| {
        let ws = words(s);
        !ws.is_empty() && ws.iter().all(|w| COMMAND_WORDS.contains(&w.as_str()) || close(w, "ticket"))
    };
    // "…ticket for ABC123: login fails" / "… — login fails" / "… - login fails"
    let separated = [":", "：", " — ", " – ", " - "].iter().find_map(|sep| {
        text.split_once(sep)
            .filter(|(head, tail)| (commandish(head) || names_a_ticket(head)) && !tail.trim().is_empty())
            .map(|(_, t)| t.to_string())
    });
    let clause = separated.or_else(|| {
        let lower = text.to_ascii_lowercase();
        [" as ", " because ", " since ", " about ", " regarding ", " saying ", " re: "]
            .iter()
            .filter_map(|m| lower.find(m).map(|i| (i, m.len())))
            .min()
            .filter(|&(i, _)| commandish(&text[..i]))
            .map(|(i, n)| text[i + n..].to_string())
    });
    let clause = clause.unwrap_or(text);
    // Strip command words from both ends, word by word.
    let tokens: Vec<&str> = clause.split_whitespace().collect();
    let is_cmd = |t: &&&str| {
        let ws = words(t);
        ws.iter().all(|w| COMMAND_WORDS.contains(&w.as_str()) || close(w, "ticket"))
    };
    let lead = tokens.iter().take_while(is_cmd).count();
    let trail = tokens[lead..].iter().rev().take_while(is_cmd).count();
    let kept = &tokens[lead..tokens.len() - trail];
    let out = kept.join(" ");
    let out = out.trim_matches(|c: char| c.is_whitespace() || ",;:.!?-—–".contains(c)).to_string();
    (!out.is_empty() && words(&out).iter().any(|w| !COMMAND_WORDS.contains(&w.as_str()))).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amounts(s: &str) -> Vec<f64> {
        parse(s).amounts
    }

    #[test]
    fn numbers_as_people_type_them() {
        assert_eq!(
            amounts("Calculate account value for DEF456 with purchases 100, 200 and 300.50"),
            [100.0, 200.0, 300.5]
        );
        assert_eq!(amounts("total of purchases 1,200.50 and 80 for XYZ789"), [1200.5, 80.0]);
        assert_eq!(amounts("purchases: $120, $80.50 and 3 items for ABC123"), [120.0, 80.5]);
        assert_eq!(amounts("account value ABC123 amounts [250.0, 175.50, 82.25]"), [250.0, 175.5, 82.25]);
        assert_eq!(amounts("account value ABC123 amounts [100,200,300]"), [100.0, 200.0, 300.0]);
        assert_eq!(amounts("account value for ABC123: €12,50 and €7"), [12.5, 7.0]);
        assert_eq!(amounts("value for abc123: 300 dollars and 1.5k USD"), [300.0, 1500.0]);
        assert_eq!(amounts("value for abc123: USD 40 and 60USD"), [40.0, 60.0]);
        assert_eq!(amounts("total for ABC123 of 1,000,000"), [1_000_000.0]);
        assert_eq!(amounts("account value for XYZ789: 1.234,56 and 2.000.000,00"), [1234.56, 2_000_000.0]);
        assert_eq!(amounts("account value for XYZ789: 1.234 and 5"), [1.234, 5.0]);
        assert_eq!(amounts("total for ABC123 on 2024-05-30 at 10:30: 50 and 25% off ref TKT-000001"), [50.0]);
        assert_eq!(amounts("total of purchases in 2024 for ABC123: 100 and eur 20"), [100.0, 20.0]);
        let p = parse("value for abc123: £10 and €20");
        assert_eq!(p.currencies, [Currency::Gbp, Currency::Eur]);
    }

    #[test]
    fn customer_ids_in_any_case_and_not_currency_codes() {
        assert_eq!(parse("look up abc123 and Xyz-789").customer_ids, ["ABC123", "XYZ789"]);
        assert_eq!(parse("顧客ABC123の情報").customer_ids, ["ABC123"]);
        assert!(parse("USD100 for ABCD1234 or AB123").customer_ids.is_empty());
    }

    #[test]
    fn priorities_in_words_with_negation() {
        let level = |s: &str| parse(s).priority.map(|p| p.level);
        assert_eq!(level("ticket for ABC123, not urgent: invoice typo"), Some("low"));
        assert_eq!(level("ASAP ticket for ABC123: login fails"), Some("urgent"));
        assert_eq!(level("low priority ticket for ABC123: typo"), Some("low"));
        assert_eq!(level("ticket for ABC123: grill is broken"), Some("high"));
        assert_eq!(level("ticket for ABC123: question about invoice"), None);
    }

    #[test]
    fn intents_with_typos() {
        let w = parse("pls open a tikcet for abc123: grill broken").wants;
        assert!(w.ticket && !w.account);
        let w = parse("calcualte the value for ABC123 with purchases 10, 20").wants;
        assert!(w.account);
        assert!(parse("Show me the 100 most recent customers").wants.recent);
        assert_eq!(parse("Show me the 100 most recent customers").count, Some(100));
        assert_eq!(parse("the three latest customers").count, Some(3));
        assert_eq!(parse("who is the most recent customer?").count, Some(1));
        assert!(parse("hello").wants.greeting);
        assert_eq!(parse("Delete all customer data").destructive.as_deref(), Some("delete"));
        assert_eq!(parse("the item was removed from my order").destructive, None);
        assert_eq!(parse("ticket for ABC123: she asks us to delete her account data").destructive, None);
        assert!(!parse("show recent tickets for ABC123").wants.ticket);
        let t = parse("Create a ticket for ABC123: the total on the invoice is wrong").wants;
        assert!(t.ticket && !t.account);
    }

    #[test]
    fn problems_without_the_command() {
        let p = |s: &str| parse(s).problem;
        assert_eq!(p("Create an urgent ticket for DEF456: login fails").as_deref(), Some("login fails"));
        assert_eq!(
            p("For customer ABC123 create a support ticket as the bbq grill that she bought is defective.").as_deref(),
            Some("bbq grill that she bought is defective")
        );
        assert_eq!(p("ABC123's grill is broken, please open a ticket").as_deref(), Some("grill is broken"));
        assert_eq!(p("Create a ticket for ABC123").as_deref(), None);
        assert_eq!(p("open a high priority ticket for abc123 asap").as_deref(), None);
        assert_eq!(p("Create a ticket for ABC123 and calculate the value of purchases 10, 20"), None);
        assert_eq!(
            p("ticket for ABC123: lid snapped, and calculate the value of 10, 20").as_deref(),
            Some("lid snapped")
        );
        assert_eq!(parse("What's the status of ticket tkt-000001?").ticket_refs, ["TKT-000001"]);
    }
}
