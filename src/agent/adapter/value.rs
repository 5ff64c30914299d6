//! Field values in and out of prompts: DSPy's `format_field_value` (how a value is written
//! into a prompt) and a lenient `parse_value` (how an LM's text becomes a typed value).

use serde_json::Value;

use crate::agent::pyfmt;
use crate::agent::signature::FieldType;

/// How DSPy writes a value into a prompt: a list under a `str` field becomes a numbered
/// list; objects and arrays are `json.dumps`; scalars are `str()`.
pub fn format_value(ty: &FieldType, v: &Value) -> String {
    match (ty, v) {
        (FieldType::Str, Value::Array(items)) => numbered_list(items),
        (_, Value::Object(_) | Value::Array(_)) => pyfmt::json_dumps(v),
        (_, other) => pyfmt::str_scalar(other),
    }
}

fn numbered_list(items: &[Value]) -> String {
    match items {
        [] => "N/A".into(),
        [one] => blob(&pyfmt::str_scalar(one)),
        many => many
            .iter()
            .enumerate()
            .map(|(i, v)| format!("[{}] {}", i + 1, blob(&pyfmt::str_scalar(v))))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// DSPy's `_format_blob`: «text», or a «««…»»» block for multi-line text.
fn blob(text: &str) -> String {
    if !text.contains('\n') && !text.contains('«') && !text.contains('»') {
        return format!("«{text}»");
    }
    format!("«««\n    {}\n»»»", text.replace('\n', "\n    "))
}

/// Why an LM's text is not a value of the field's type (the text is quoted, cut short).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{0:?} is not True or False")]
    NotBool(String),
    #[error("{0:?} is not an integer")]
    NotInt(String),
    #[error("{0:?} is not a number")]
    NotNumber(String),
    #[error("{value:?} is not one of {allowed}")]
    NotAllowed { value: String, allowed: String },
    #[error("{0:?} is not valid JSON")]
    NotJson(String),
    #[error("expected {expected}, got {text:?}")]
    WrongShape { expected: String, text: String },
}

/// Parses an LM's text for a field of type `ty`, forgiving the usual noise: code fences,
/// quotes around literals, Python spellings (`True`, single quotes).
pub fn parse_value(ty: &FieldType, raw: &str) -> Result<Value, ValueError> {
    let text = strip_fences(raw.trim());
    match ty {
        FieldType::Str => Ok(Value::String(raw.trim().to_string())),
        FieldType::Bool => match text.trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Ok(Value::Bool(true)),
            "false" | "no" | "0" | "off" => Ok(Value::Bool(false)),
            _ => Err(ValueError::NotBool(cut(text))),
        },
        FieldType::Int => {
            text.trim_matches('"').parse::<i64>().map(Value::from).map_err(|_| ValueError::NotInt(cut(text)))
        }
        FieldType::Float => text
            .trim_matches('"')
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(|| ValueError::NotNumber(cut(text))),
        FieldType::Literal(allowed) => {
            let mut v = text.trim();
            for prefix in ["Literal[", "str["] {
                if let Some(inner) = v.strip_prefix(prefix).and_then(|r| r.strip_suffix(']')) {
                    v = inner;
                }
            }
            if v.len() > 1 && (v.starts_with('"') && v.ends_with('"') || v.starts_with('\'') && v.ends_with('\'')) {
                v = &v[1..v.len() - 1];
            }
            allowed
                .iter()
                .find(|a| a.as_str() == v)
                .map(|a| Value::String(a.clone()))
                .ok_or_else(|| ValueError::NotAllowed { value: cut(v), allowed: allowed.join(", ") })
        }
        FieldType::List(_) | FieldType::Dict | FieldType::Json(..) => {
            let value = parse_json_like(text).ok_or_else(|| ValueError::NotJson(cut(text)))?;
            let shape_ok = match ty {
                FieldType::List(_) => value.is_array(),
                FieldType::Dict => value.is_object(),
                _ => true,
            };
            if shape_ok {
                Ok(value)
            } else {
                Err(ValueError::WrongShape { expected: ty.annotation_name(), text: cut(text) })
            }
        }
    }
}

/// How much of an LM's text an error quotes. A completion can be megabytes; its error
/// goes into the trace, the feed and the session recording, so it quotes the start only.
const QUOTED_CHARS: usize = 120;

fn cut(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// JSON, or a Python literal (`{'a': True}`), or the JSON object embedded in some text.
pub fn parse_json_like(text: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(text) {
        return Some(v);
    }
    if let Some(v) = python_literal(text) {
        return Some(v);
    }
    let (start, end) = (text.find(['{', '['])?, text.rfind(['}', ']'])?);
    (end > start).then(|| serde_json::from_str(&text[start..=end]).ok()).flatten()
}

/// A best-effort conversion of a Python literal to JSON: quotes, booleans, None.
fn python_literal(text: &str) -> Option<Value> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_str: Option<char> = None;
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (Some(q), '\\') => {
                if let Some(n) = chars.next() {
                    if n == '\'' && q == '\'' {
                        out.push('\'');
                    } else {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            (Some(q), c) if c == q => {
                out.push('"');
                in_str = None;
            }
            (Some(_), '"') => out.push_str("\\\""),
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                out.push('"');
                in_str = Some(c);
            }
            (None, c) => out.push(c),
        }
    }
    let replaced = replace_words(&out);
    serde_json::from_str(&replaced).ok()
}

fn replace_words(s: &str) -> String {
    // Only outside strings matters, but True/False/None inside a JSON string survive this
    // pass unchanged because they are quoted and we only replace whole bare words.
    let mut out = String::with_capacity(s.len());
    let mut in_str = false;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.as_str() {
            "True" => out.push_str("true"),
            "False" => out.push_str("false"),
            "None" => out.push_str("null"),
            w => out.push_str(w),
        }
        word.clear();
    };
    let mut prev = '\0';
    for c in s.chars() {
        if in_str {
            out.push(c);
            if c == '"' && prev != '\\' {
                in_str = false;
            }
        } else if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
            if c == '"' {
                in_str = true;
            }
        }
        prev = c;
    }
    flush(&mut word, &mut out);
    out
}

fn strip_fences(s: &str) -> &str {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("```") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
        return rest.strip_suffix("```").unwrap_or(rest).trim();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by tests/properties.rs: an error quoted the LM's whole text, so a huge
    /// completion made a huge error (in the trace, the feed and the recording).
    #[test]
    fn errors_quote_the_start_of_the_text_only() {
        let huge = "é".repeat(100_000);
        for ty in
            [FieldType::Bool, FieldType::Int, FieldType::Float, FieldType::Dict, FieldType::Literal(vec!["a".into()])]
        {
            let err = parse_value(&ty, &huge).unwrap_err().to_string();
            assert!(err.len() < 600, "{ty:?}: {} bytes", err.len());
            assert!(err.contains(&format!("{}…", "é".repeat(QUOTED_CHARS))), "{err:.80}");
        }
        assert_eq!(parse_value(&FieldType::Int, "x").unwrap_err(), ValueError::NotInt("x".into()));
    }

    #[test]
    fn lenient_parsing() {
        assert_eq!(parse_value(&FieldType::Bool, "True").unwrap(), json!(true));
        assert_eq!(parse_value(&FieldType::Float, " 0.75 ").unwrap(), json!(0.75));
        assert_eq!(parse_value(&FieldType::Int, "42").unwrap(), json!(42));
        let lit = FieldType::Literal(vec!["get_customer_info".into(), "finish".into()]);
        assert_eq!(parse_value(&lit, "'finish'").unwrap(), json!("finish"));
        assert!(parse_value(&lit, "delete_all").is_err());
        assert_eq!(
            parse_value(&FieldType::Dict, "```json\n{\"customer_id\": \"ABC123\"}\n```").unwrap(),
            json!({"customer_id": "ABC123"})
        );
        assert_eq!(
            parse_value(&FieldType::Dict, "{'limit': 5, 'x': True, 'y': None}").unwrap(),
            json!({"limit": 5, "x": true, "y": null})
        );
        assert_eq!(parse_value(&FieldType::List(Box::new(FieldType::Str)), "['a', \"b\"]").unwrap(), json!(["a", "b"]));
        assert!(parse_value(&FieldType::Dict, "[1]").is_err());
    }

    #[test]
    fn formatting_matches_dspy() {
        assert_eq!(
            format_value(&FieldType::Str, &json!(["alpha", "two\nlines", "has «g»"])),
            "[1] «alpha»\n[2] «««\n    two\n    lines\n»»»\n[3] «««\n    has «g»\n»»»"
        );
        assert_eq!(format_value(&FieldType::Str, &json!(["solo"])), "«solo»");
        assert_eq!(format_value(&FieldType::Str, &json!([])), "N/A");
        assert_eq!(
            format_value(&FieldType::List(Box::new(FieldType::Str)), &json!(["hi", "hello"])),
            "[\"hi\", \"hello\"]"
        );
        assert_eq!(format_value(&FieldType::Str, &json!({"a": 1})), "{\"a\": 1}");
        assert_eq!(format_value(&FieldType::Bool, &json!(true)), "True");
    }
}
