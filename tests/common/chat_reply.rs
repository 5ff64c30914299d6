//! The scripted language model's answers, for tests that drive the console against a local
//! server speaking the OpenAI chat completions wire format (the real LM is out of reach).

use serde_json::{Value, json};

/// One ChatAdapter reply: each field under its `[[ ## name ## ]]` header, in a chat
/// completion response.
pub fn chat_reply(fields: &[(&str, &str)]) -> Value {
    let mut text = String::new();
    for (name, value) in fields {
        text.push_str(&format!("[[ ## {name} ## ]]\n{value}\n\n"));
    }
    text.push_str("[[ ## completed ## ]]");
    json!({
        "id": "chatcmpl-e2e", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}
