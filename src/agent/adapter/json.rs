//! DSPy's JSONAdapter, used as the fallback when a completion does not parse in the chat
//! format: the same field lists, inputs as `[[ ## field ## ]]` blocks, outputs requested
//! as one JSON object.

use serde_json::{Map, Value};

use super::value::{format_value, parse_json_like, parse_value};
use super::{Fields, ParseError};
use crate::agent::lm::{Message, Role};
use crate::agent::signature::{FieldType, Signature};

#[derive(Debug, Clone, Copy, Default)]
pub struct JsonAdapter;

impl JsonAdapter {
    pub fn format(&self, sig: &Signature, demos: &[Map<String, Value>], inputs: &Map<String, Value>) -> Vec<Message> {
        let chat = super::chat::ChatAdapter;
        let mut messages = vec![Message::new(Role::System, self.format_system(sig))];
        for d in demos {
            let has_all_outputs = sig.outputs().iter().all(|f| d.get(&f.name).is_some_and(|v| !v.is_null()));
            if !has_all_outputs {
                continue;
            }
            messages.push(Message::new(Role::User, chat.format_user(sig, d, "", false)));
            let outputs: Map<String, Value> =
                sig.outputs().iter().filter_map(|f| d.get(&f.name).map(|v| (f.name.clone(), v.clone()))).collect();
            messages.push(Message::new(Role::Assistant, serde_json::to_string_pretty(&outputs).unwrap_or_default()));
        }
        let mut user = chat.format_user(sig, inputs, "", false);
        user.push_str("\n\n");
        user.push_str(&output_requirements(sig));
        messages.push(Message::new(Role::User, user));
        messages
    }

    fn format_system(&self, sig: &Signature) -> String {
        let chat_system = super::chat::ChatAdapter.format_system(sig);
        // Same description and objective as the chat format; only the structure differs.
        let (head, _) = chat_system.split_once("All interactions will be structured").unwrap_or((&chat_system, ""));
        let objective = chat_system.rsplit_once("In adhering to this structure").map(|(_, t)| t).unwrap_or("");
        let inputs = sig
            .inputs()
            .iter()
            .map(|f| format!("[[ ## {} ## ]]\n{{{}}}", f.name, f.name))
            .collect::<Vec<_>>()
            .join("\n\n");
        let outputs: Map<String, Value> =
            sig.outputs().iter().map(|f| (f.name.clone(), Value::String(super::chat::placeholder_text(f)))).collect();
        format!(
            "{head}All interactions will be structured in the following way, with the appropriate values filled in.\n\nInputs will have the following structure:\n\n{inputs}\n\nOutputs will be a JSON object with the following fields.\n\n{}\nIn adhering to this structure{objective}",
            serde_json::to_string_pretty(&outputs).unwrap_or_default()
        )
    }

    /// A JSON object (possibly fenced or embedded in text) with every output field.
    pub fn parse(&self, sig: &Signature, completion: &str) -> Result<Fields, ParseError> {
        let Some(Value::Object(obj)) = parse_json_like(completion.trim()) else {
            return Err(ParseError::new("LM response cannot be serialized to a JSON object", completion));
        };
        let mut fields = Map::new();
        for f in sig.outputs() {
            let Some(v) = obj.get(&f.name) else {
                return Err(ParseError::new(format!("missing output field `{}`", f.name), completion));
            };
            let value = match (v, &f.ty) {
                (Value::String(s), FieldType::Str) => Value::String(s.clone()),
                (Value::String(s), ty) => {
                    parse_value(ty, s).map_err(|e| ParseError::new(format!("field `{}`: {e}", f.name), completion))?
                }
                (other, ty) => parse_value(ty, &format_value(ty, other))
                    .map_err(|e| ParseError::new(format!("field `{}`: {e}", f.name), completion))?,
            };
            fields.insert(f.name.clone(), value);
        }
        Ok(fields)
    }
}

fn output_requirements(sig: &Signature) -> String {
    let fields = super::chat::listed_outputs(sig, |n| format!("`{n}`"));
    format!("Respond with a JSON object in the following order of fields: {fields}.")
}
