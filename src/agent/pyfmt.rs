//! Python's renderings of JSON-like values, because DSPy's prompts contain them verbatim:
//! `json.dumps(v, ensure_ascii=False)` (", " and ": " separators) for field values, and
//! `repr(v)` (single-quoted strings, `True`/`False`/`None`) for tool argument schemas.
//! Matching them byte for byte keeps our prompts identical to DSPy's.

use serde_json::Value;

/// `json.dumps(value, ensure_ascii=False)`.
pub fn json_dumps(v: &Value) -> String {
    let mut out = String::new();
    dumps_into(v, &mut out);
    out
}

fn dumps_into(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                dumps_into(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps_into(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => out.push_str(&py_number(n)),
        other => out.push_str(&other.to_string()),
    }
}

/// `repr(value)` of the Python object a JSON value decodes to.
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    repr_into(v, &mut out);
    out
}

fn repr_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => out.push_str(&repr_str(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_into(v, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_str(k));
                out.push_str(": ");
                repr_into(v, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(str)`: single quotes unless the string contains a single quote and no
/// double quote; backslash escapes for the quote, backslash and control characters.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python prints floats with a decimal point (`3.0`), integers without.
fn py_number(n: &serde_json::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
            return format!("{f:.1}");
        }
        return f.to_string();
    }
    n.to_string()
}

/// `str(value)` for a scalar as DSPy writes it into a prompt (`True`, `3.5`, text as is).
pub fn str_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        Value::Number(n) => py_number(n),
        other => json_dumps(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dumps_like_python() {
        assert_eq!(
            json_dumps(&json!({"a": [1, 2.5, true, null], "b": "é\"x"})),
            r#"{"a": [1, 2.5, true, null], "b": "é\"x"}"#
        );
        assert_eq!(json_dumps(&json!(3.0)), "3.0");
    }

    #[test]
    fn repr_like_python() {
        assert_eq!(
            repr(&json!({"customer_id": {"type": "string"}, "n": [1, true, null]})),
            "{'customer_id': {'type': 'string'}, 'n': [1, True, None]}"
        );
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("line\nnext"), "'line\\nnext'");
    }
}
