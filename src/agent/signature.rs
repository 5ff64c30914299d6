//! DSPy signatures: ordered input and output fields with types and descriptions, plus the
//! task instructions. Built from the string form (`"a, b: list[str] -> c: int"`) or field
//! by field; edits return a new signature, as in DSPy.

use std::fmt;

use serde_json::Value;

/// A field's type, as DSPy names it in prompts (`str`, `list[str]`, `Literal['a', 'b']`…).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    Str,
    Bool,
    Int,
    Float,
    List(Box<FieldType>),
    /// `dict[str, Any]`.
    Dict,
    /// One of fixed strings (`Literal[...]` / an enum).
    Literal(Vec<String>),
    /// Any other JSON-schema-described type: (type name, schema).
    Json(String, Value),
}

impl FieldType {
    /// Python's name for the annotation, as DSPy's `get_annotation_name` prints it.
    pub fn annotation_name(&self) -> String {
        match self {
            Self::Str => "str".into(),
            Self::Bool => "bool".into(),
            Self::Int => "int".into(),
            Self::Float => "float".into(),
            Self::List(t) => format!("list[{}]", t.annotation_name()),
            Self::Dict => "dict[str, Any]".into(),
            Self::Literal(v) => {
                format!("Literal[{}]", v.iter().map(|s| super::pyfmt::repr_str(s)).collect::<Vec<_>>().join(", "))
            }
            Self::Json(name, _) => name.clone(),
        }
    }

    /// The JSON schema DSPy (via pydantic) shows for non-scalar outputs.
    pub fn json_schema(&self) -> Value {
        match self {
            Self::Str => serde_json::json!({"type": "string"}),
            Self::Bool => serde_json::json!({"type": "boolean"}),
            Self::Int => serde_json::json!({"type": "integer"}),
            Self::Float => serde_json::json!({"type": "number"}),
            // Key order as pydantic emits it (DSPy prints these verbatim).
            Self::List(t) => serde_json::json!({"type": "array", "items": t.json_schema()}),
            Self::Dict => serde_json::json!({"type": "object", "additionalProperties": true}),
            Self::Literal(v) => serde_json::json!({"type": "string", "enum": v}),
            Self::Json(_, s) => s.clone(),
        }
    }

    /// Parses a Python-style annotation: `str`, `int`, `list[str]`, `dict[str, Any]`,
    /// `Literal['a', 'b']`.
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let s = s.trim();
        Ok(match s {
            "str" => Self::Str,
            "bool" => Self::Bool,
            "int" => Self::Int,
            "float" => Self::Float,
            "dict" | "dict[str, Any]" | "dict[str,Any]" => Self::Dict,
            _ => {
                if let Some(inner) = s.strip_prefix("list[").and_then(|r| r.strip_suffix(']')) {
                    Self::List(Box::new(Self::parse(inner)?))
                } else if let Some(inner) = s.strip_prefix("Literal[").and_then(|r| r.strip_suffix(']')) {
                    let values = split_top_level(inner)
                        .into_iter()
                        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                        .filter(|v| !v.is_empty())
                        .collect::<Vec<_>>();
                    if values.is_empty() {
                        return Err(SignatureError::BadType(s.into()));
                    }
                    Self::Literal(values)
                } else {
                    return Err(SignatureError::BadType(s.into()));
                }
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// Empty when not given (DSPy's `${name}` placeholder renders as nothing).
    pub desc: String,
    pub ty: FieldType,
}

impl Field {
    pub fn new(name: &str, ty: FieldType) -> Self {
        Self { name: name.to_string(), desc: String::new(), ty }
    }

    pub fn desc(mut self, desc: &str) -> Self {
        self.desc = desc.to_string();
        self
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("signature must look like \"a, b -> c\" (got {0:?})")]
    NoArrow(String),
    #[error("invalid field name {0:?}: use letters, digits and underscores")]
    BadName(String),
    #[error("unsupported type {0:?}: use str, bool, int, float, list[T], dict[str, Any] or Literal['a', 'b']")]
    BadType(String),
    #[error("field {0:?} appears twice")]
    Duplicate(String),
}

/// Inputs, outputs and instructions. Instructions default to DSPy's
/// "Given the fields `a`, produce the fields `b`." and stay fixed through later edits.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    inputs: Vec<Field>,
    outputs: Vec<Field>,
    instructions: String,
}

impl Signature {
    pub fn new(inputs: Vec<Field>, outputs: Vec<Field>, instructions: Option<&str>) -> Result<Self, SignatureError> {
        let mut seen = std::collections::HashSet::new();
        for f in inputs.iter().chain(&outputs) {
            if f.name.is_empty()
                || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || f.name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(SignatureError::BadName(f.name.clone()));
            }
            if !seen.insert(f.name.clone()) {
                return Err(SignatureError::Duplicate(f.name.clone()));
            }
        }
        let instructions = match instructions {
            Some(i) => i.to_string(),
            None => default_instructions(&inputs, &outputs),
        };
        Ok(Self { inputs, outputs, instructions })
    }

    /// `"question -> answer"`, `"a, b: list[str] -> c: int"`.
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let (lhs, rhs) = s.split_once("->").ok_or_else(|| SignatureError::NoArrow(s.into()))?;
        Self::new(parse_fields(lhs)?, parse_fields(rhs)?, None)
    }

    pub fn inputs(&self) -> &[Field] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Field] {
        &self.outputs
    }

    pub fn instructions(&self) -> &str {
        &self.instructions
    }

    pub fn output(&self, name: &str) -> Option<&Field> {
        self.outputs.iter().find(|f| f.name == name)
    }

    pub fn with_instructions(&self, instructions: &str) -> Self {
        Self { instructions: instructions.to_string(), ..self.clone() }
    }

    pub fn append_input(&self, field: Field) -> Result<Self, SignatureError> {
        let mut inputs = self.inputs.clone();
        inputs.push(field);
        Self::new(inputs, self.outputs.clone(), Some(&self.instructions))
    }

    pub fn prepend_input(&self, field: Field) -> Result<Self, SignatureError> {
        let mut inputs = vec![field];
        inputs.extend(self.inputs.iter().cloned());
        Self::new(inputs, self.outputs.clone(), Some(&self.instructions))
    }

    pub fn append_output(&self, field: Field) -> Result<Self, SignatureError> {
        let mut outputs = self.outputs.clone();
        outputs.push(field);
        Self::new(self.inputs.clone(), outputs, Some(&self.instructions))
    }

    pub fn prepend_output(&self, field: Field) -> Result<Self, SignatureError> {
        let mut outputs = vec![field];
        outputs.extend(self.outputs.iter().cloned());
        Self::new(self.inputs.clone(), outputs, Some(&self.instructions))
    }

    /// The seed's signature.
    pub fn customer_service() -> Self {
        Self::new(
            vec![Field::new("request", FieldType::Str).desc("Customer service request")],
            vec![Field::new("response", FieldType::Str).desc("Helpful customer service response")],
            Some("Handle customer service requests using available tools."),
        )
        .unwrap_or_else(|_| unreachable!("static signature is valid"))
    }
}

impl fmt::Display for Signature {
    /// The string form: `a, b -> c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[Field]| v.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
        write!(f, "{} -> {}", names(&self.inputs), names(&self.outputs))
    }
}

fn default_instructions(inputs: &[Field], outputs: &[Field]) -> String {
    let list = |v: &[Field]| v.iter().map(|f| format!("`{}`", f.name)).collect::<Vec<_>>().join(", ");
    format!("Given the fields {}, produce the fields {}.", list(inputs), list(outputs))
}

fn parse_fields(s: &str) -> Result<Vec<Field>, SignatureError> {
    split_top_level(s)
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let (name, ty) = match part.split_once(':') {
                Some((n, t)) => (n.trim(), FieldType::parse(t)?),
                None => (part.trim(), FieldType::Str),
            };
            Ok(Field::new(name, ty))
        })
        .collect()
}

/// Splits at commas outside brackets (`dict[str, Any]` stays whole).
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_parse_with_types_and_default_instructions() {
        let s = Signature::parse("a, b: list[str] -> c: int").unwrap();
        assert_eq!(s.to_string(), "a, b -> c");
        assert_eq!(s.inputs()[1].ty, FieldType::List(Box::new(FieldType::Str)));
        assert_eq!(s.outputs()[0].ty, FieldType::Int);
        assert_eq!(s.instructions(), "Given the fields `a`, `b`, produce the fields `c`.");
        let d = Signature::parse("x: dict[str, Any], y: Literal['p', 'q'] -> z: bool").unwrap();
        assert_eq!(d.inputs()[0].ty.annotation_name(), "dict[str, Any]");
        assert_eq!(d.inputs()[1].ty.annotation_name(), "Literal['p', 'q']");
    }

    #[test]
    fn edits_are_immutable_and_keep_instructions() {
        let s = Signature::parse("question -> answer").unwrap();
        let cot = s.prepend_output(Field::new("reasoning", FieldType::Str)).unwrap();
        assert_eq!(s.outputs().len(), 1);
        assert_eq!(cot.outputs()[0].name, "reasoning");
        assert_eq!(cot.instructions(), s.instructions());
        assert_eq!(s.with_instructions("Be brief.").instructions(), "Be brief.");
    }

    #[test]
    fn bad_signatures_are_rejected() {
        assert!(matches!(Signature::parse("no arrow"), Err(SignatureError::NoArrow(_))));
        assert!(matches!(Signature::parse("a b -> c"), Err(SignatureError::BadName(_))));
        assert!(matches!(Signature::parse("a -> a"), Err(SignatureError::Duplicate(_))));
        assert!(matches!(Signature::parse("a: tuple -> b"), Err(SignatureError::BadType(_))));
    }
}
