//! DSPy's ChatAdapter, byte for byte: the system message lists the fields, shows the
//! `[[ ## field ## ]]` structure and states the objective; each user message carries the
//! input field blocks (the final one adds the output requirements); demos become
//! user/assistant pairs. Completions are split on `[[ ## name ## ]]` headers.

use serde_json::{Map, Value};

use super::value::{format_value, parse_value};
use super::{Fields, ParseError};
use crate::agent::lm::{Message, Role};
use crate::agent::signature::{Field, FieldType, Signature};

#[derive(Debug, Clone, Copy, Default)]
pub struct ChatAdapter;

const INCOMPLETE_DEMO_PREFIX: &str =
    "This is an example of the task, though some input or output fields are not supplied.";

impl ChatAdapter {
    /// System message, demos, then the request.
    pub fn format(&self, sig: &Signature, demos: &[Map<String, Value>], inputs: &Map<String, Value>) -> Vec<Message> {
        let mut messages = vec![Message::new(Role::System, self.format_system(sig))];
        messages.extend(self.format_demos(sig, demos));
        messages.push(Message::new(Role::User, self.format_user(sig, inputs, "", true)));
        messages
    }

    pub fn format_system(&self, sig: &Signature) -> String {
        format!(
            "Your input fields are:\n{}\nYour output fields are:\n{}\n{}\n{}",
            field_descriptions(sig.inputs()),
            field_descriptions(sig.outputs()),
            self.format_structure(sig),
            task_description(sig)
        )
    }

    fn format_structure(&self, sig: &Signature) -> String {
        let placeholders = |fields: &[Field], is_input: bool| {
            fields
                .iter()
                .map(|f| format!("[[ ## {} ## ]]\n{}", f.name, placeholder(f, is_input)))
                .collect::<Vec<_>>()
                .join("\n\n")
        };
        let parts = [
            "All interactions will be structured in the following way, with the appropriate values filled in."
                .to_string(),
            placeholders(sig.inputs(), true),
            placeholders(sig.outputs(), false),
            "[[ ## completed ## ]]\n".to_string(),
        ];
        parts.join("\n\n").trim().to_string()
    }

    /// A user turn: `prefix`, the input blocks present in `values`, and (for the main
    /// request) the output requirements.
    pub fn format_user(
        &self,
        sig: &Signature,
        values: &Map<String, Value>,
        prefix: &str,
        main_request: bool,
    ) -> String {
        let mut parts = vec![prefix.to_string()];
        for f in sig.inputs() {
            if let Some(v) = values.get(&f.name) {
                parts.push(format!("[[ ## {} ## ]]\n{}", f.name, format_value(&f.ty, v)));
            }
        }
        if main_request {
            parts.push(output_requirements(sig));
        }
        parts.push(String::new());
        parts.join("\n\n").trim().to_string()
    }

    /// An assistant turn with every output field (missing ones get `missing`).
    pub fn format_assistant(&self, sig: &Signature, values: &Map<String, Value>, missing: &str) -> String {
        let body = sig
            .outputs()
            .iter()
            .map(|f| {
                let v = values
                    .get(&f.name)
                    .filter(|v| !v.is_null())
                    .map(|v| format_value(&f.ty, v))
                    .unwrap_or_else(|| missing.to_string());
                format!("[[ ## {} ## ]]\n{v}", f.name)
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        format!("{}\n\n[[ ## completed ## ]]\n", body.trim())
    }

    /// Incomplete demos first (with DSPy's prefix), then complete ones.
    pub fn format_demos(&self, sig: &Signature, demos: &[Map<String, Value>]) -> Vec<Message> {
        let present = |d: &Map<String, Value>, f: &Field| d.get(&f.name).is_some_and(|v| !v.is_null());
        let mut complete = Vec::new();
        let mut incomplete = Vec::new();
        for d in demos {
            let all = sig.inputs().iter().chain(sig.outputs()).all(|f| present(d, f));
            let has_in = sig.inputs().iter().any(|f| d.contains_key(&f.name));
            let has_out = sig.outputs().iter().any(|f| d.contains_key(&f.name));
            if all {
                complete.push(d);
            } else if has_in && has_out {
                incomplete.push(d);
            }
        }
        let mut messages = Vec::new();
        for d in incomplete {
            messages.push(Message::new(Role::User, self.format_user(sig, d, INCOMPLETE_DEMO_PREFIX, false)));
            messages.push(Message::new(
                Role::Assistant,
                self.format_assistant(sig, d, "Not supplied for this particular example. "),
            ));
        }
        for d in complete {
            messages.push(Message::new(Role::User, self.format_user(sig, d, "", false)));
            messages.push(Message::new(
                Role::Assistant,
                self.format_assistant(sig, d, "Not supplied for this conversation history message. "),
            ));
        }
        messages
    }

    /// Splits the completion on field headers; the first occurrence of each output wins;
    /// every output must be present.
    pub fn parse(&self, sig: &Signature, completion: &str) -> Result<Fields, ParseError> {
        let mut sections: Vec<(Option<String>, Vec<&str>)> = vec![(None, Vec::new())];
        for line in completion.lines() {
            match header(line.trim()) {
                Some((name, rest)) => {
                    sections.push((Some(name.to_string()), if rest.is_empty() { vec![] } else { vec![rest] }))
                }
                None => {
                    if let Some(last) = sections.last_mut() {
                        last.1.push(line);
                    }
                }
            }
        }
        let mut fields = Map::new();
        for (name, lines) in sections {
            let Some(name) = name else { continue };
            let Some(field) = sig.output(&name) else { continue };
            if fields.contains_key(&name) {
                continue;
            }
            let text = lines.join("\n");
            let value = parse_value(&field.ty, text.trim())
                .map_err(|e| ParseError::new(format!("field `{name}`: {e}"), completion))?;
            fields.insert(name, value);
        }
        let missing: Vec<&str> =
            sig.outputs().iter().filter(|f| !fields.contains_key(&f.name)).map(|f| f.name.as_str()).collect();
        if !missing.is_empty() {
            return Err(ParseError::new(format!("missing output field(s): {}", missing.join(", ")), completion));
        }
        // Re-order to signature order.
        Ok(sig.outputs().iter().filter_map(|f| fields.get(&f.name).map(|v| (f.name.clone(), v.clone()))).collect())
    }
}

/// `[[ ## name ## ]]` at the start of a (trimmed) line, and what follows it.
fn header(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("[[ ## ")?;
    let end = rest.find(" ## ]]")?;
    let name = &rest[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((name, rest[end + 6..].trim()))
}

fn field_descriptions(fields: &[Field]) -> String {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{}. `{}` ({}): {}", i + 1, f.name, f.ty.annotation_name(), f.desc))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// An output field's placeholder with its format note (JSON adapter structure).
pub(crate) fn placeholder_text(f: &Field) -> String {
    placeholder(f, false)
}

/// `{name}` plus, for typed outputs, DSPy's `# note:` on the expected format.
fn placeholder(f: &Field, is_input: bool) -> String {
    let note = if is_input {
        None
    } else {
        match &f.ty {
            FieldType::Str => None,
            FieldType::Bool => Some("must be True or False".to_string()),
            FieldType::Int => Some("must be a single int value".to_string()),
            FieldType::Float => Some("must be a single float value".to_string()),
            FieldType::Literal(v) => Some(format!("must exactly match (no extra characters) one of: {}", v.join("; "))),
            other => Some(format!(
                "must adhere to the JSON schema: {}",
                crate::agent::pyfmt::json_dumps(&other.json_schema())
            )),
        }
    };
    match note {
        Some(n) => format!("{{{}}}        # note: the value you produce {n}", f.name),
        None => format!("{{{}}}", f.name),
    }
}

fn task_description(sig: &Signature) -> String {
    let objective: String =
        std::iter::once("").chain(dedent(sig.instructions()).lines()).collect::<Vec<_>>().join("\n        ");
    format!("In adhering to this structure, your objective is: {objective}")
}

/// The output fields as both adapters list them in the request: `` `name` `` (as `quote`
/// writes it) plus, for typed fields, "(must be formatted as a valid Python T)".
pub(crate) fn listed_outputs(sig: &Signature, quote: impl Fn(&str) -> String) -> String {
    sig.outputs()
        .iter()
        .map(|f| {
            let info = if f.ty == FieldType::Str {
                String::new()
            } else {
                format!(" (must be formatted as a valid Python {})", f.ty.annotation_name())
            };
            format!("{}{info}", quote(&f.name))
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

fn output_requirements(sig: &Signature) -> String {
    let fields = listed_outputs(sig, |n| format!("`[[ ## {n} ## ]]`"));
    format!(
        "Respond with the corresponding output fields, starting with the field {fields}, and then ending with the marker for `[[ ## completed ## ]]`."
    )
}

/// Python's `textwrap.dedent`: remove the common leading whitespace of non-blank lines.
fn dedent(s: &str) -> String {
    let indent = s.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    s.lines().map(|l| if l.trim().is_empty() { "" } else { &l[indent.min(l.len())..] }).collect::<Vec<_>>().join("\n")
}
