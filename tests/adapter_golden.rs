//! Golden tests: Warden's ChatAdapter (and JSON fallback adapter) must produce DSPy's
//! prompts byte for byte. Every file in tests/golden/dspy/ was rendered by DSPy itself
//! (`ChatAdapter().format(...)` / `JSONAdapter().format(...)`, no model called) with
//! scripts/golden/gen_dspy_goldens.py, and records the DSPy version and the inputs it used.
//! The customer-service goldens are the seed's own `CustomerServiceSignature` with the tools
//! the live customer-service server advertises.

mod common;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use warden::agent::adapter::chat::ChatAdapter;
use warden::agent::adapter::json::JsonAdapter;
use warden::agent::lm::dummy::DummyLm;
use warden::agent::lm::{Message, Role};
use warden::agent::predict::Predict;
use warden::agent::react::{ReAct, format_trajectory};
use warden::agent::signature::{Field, FieldType, Signature};
use warden::agent::tool::{McpTool, Tool};
use warden::mcp::ClientStack;
use warden::mcp::secure_tool::CallPolicy;
use warden::types::event::EventBus;

/// One golden file: what DSPy was given and the messages it rendered.
#[derive(Deserialize)]
struct Golden {
    inputs: Map<String, Value>,
    #[serde(default)]
    demos: Vec<Map<String, Value>>,
    #[serde(default)]
    trajectory: Map<String, Value>,
    messages: Vec<Message>,
}

fn golden(name: &str) -> Golden {
    let text =
        std::fs::read_to_string(format!("{}/tests/golden/dspy/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn assert_messages(actual: &[Message], expected: &[Message]) {
    assert_eq!(actual.len(), expected.len(), "message count");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.role, e.role, "role of message {i}");
        assert_eq!(a.content, e.content, "content of message {i} ({:?})", e.role);
    }
}

#[test]
fn plain_question_answer() {
    let sig = Signature::parse("question -> answer").unwrap();
    let g = golden("plain");
    assert_messages(&ChatAdapter.format(&sig, &[], &g.inputs), &g.messages);
    let g = golden("json_plain");
    assert_messages(&JsonAdapter.format(&sig, &[], &g.inputs), &g.messages);
}

#[test]
fn docstring_and_typed_outputs() {
    let sig = Signature::new(
        vec![
            Field::new("message", FieldType::Str).desc("The customer's message"),
            Field::new("history", FieldType::List(Box::new(FieldType::Str))),
        ],
        vec![
            Field::new("category", FieldType::Literal(vec!["billing".into(), "technical".into(), "other".into()])),
            Field::new("urgent", FieldType::Bool).desc("Needs a reply within the hour"),
            Field::new("score", FieldType::Float),
            Field::new("tags", FieldType::List(Box::new(FieldType::Str))),
        ],
        Some("Classify the customer's message and score urgency."),
    )
    .unwrap();
    let g = golden("typed");
    assert_messages(&ChatAdapter.format(&sig, &[], &g.inputs), &g.messages);

    let parsed = ChatAdapter
        .parse(&sig, "[[ ## category ## ]]\n'technical'\n\n[[ ## urgent ## ]]\nTrue\n\n[[ ## score ## ]]\n0.75\n\n[[ ## tags ## ]]\n[\"a\", \"b\"]\n\n[[ ## completed ## ]]")
        .unwrap();
    assert_eq!(
        Value::Object(parsed),
        json!({"category": "technical", "urgent": true, "score": 0.75, "tags": ["a", "b"]})
    );
    let err = ChatAdapter.parse(&sig, "[[ ## category ## ]]\nbilling\n\n[[ ## completed ## ]]").unwrap_err();
    assert!(err.reason.contains("missing output field(s): urgent, score, tags"), "{err}");
}

#[test]
fn complete_and_incomplete_demos() {
    let sig = Signature::parse("question, context -> answer").unwrap();
    let g = golden("demos");
    assert_eq!(g.demos.len(), 2, "one complete and one incomplete demo");
    assert_messages(&ChatAdapter.format(&sig, &g.demos, &g.inputs), &g.messages);
}

#[test]
fn list_values_under_str_fields() {
    let sig = Signature::parse("passages, one, empty -> answer").unwrap();
    let g = golden("str_field_list_input");
    assert_messages(&ChatAdapter.format(&sig, &[], &g.inputs), &g.messages);
}

/// The customer-service tools exactly as the agent sees them from the live service (the
/// generator reads the same file; `react_over_the_seed_signature_and_the_live_tools` checks
/// it against the server).
fn tool_specs() -> Value {
    let path = format!("{}/tests/golden/dspy/customer_service_tools.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn predict_over_the_seed_signature() {
    let g = golden("customer_service_predict");
    let lm = DummyLm::ordered(vec![obj(json!({"response": "Ticket opened."}))]);
    let predict = Predict::new(Signature::customer_service());
    predict.forward(&lm, &g.inputs).await.unwrap();
    assert_messages(&lm.history()[0], &g.messages);
}

#[tokio::test]
async fn react_over_the_seed_signature_and_the_live_tools() {
    // The tools come from a running customer-service server, as in `warden console`.
    let s = common::Stack::start().await;
    let client = common::client_config(&s, None);
    let stack = ClientStack::connect(&client, None, CallPolicy::default(), EventBus::new()).await.unwrap();
    let tools: Vec<Arc<dyn Tool>> = stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
    let live: Vec<Value> =
        tools.iter().map(|t| json!({"name": t.id().name, "description": t.description(), "args": t.args()})).collect();
    assert_eq!(
        Value::Array(live.clone()),
        tool_specs(),
        "the service's tools changed: update tests/golden/dspy/customer_service_tools.json to\n{}\nand regenerate (README, DSPy section)",
        serde_json::to_string_pretty(&live).unwrap()
    );
    let react = ReAct::new(Signature::customer_service(), tools, 5);

    for name in ["customer_service_react_empty", "customer_service_react"] {
        let g = golden(name);
        // Warden's trajectory text is DSPy's `ReAct._format_trajectory` of the same steps.
        assert_eq!(Value::String(format_trajectory(&g.trajectory)), g.inputs["trajectory"], "{name}: trajectory");
        assert_messages(&ChatAdapter.format(&react.react.signature, &[], &g.inputs), &g.messages);
    }
    let g = golden("customer_service_extract");
    assert_messages(&ChatAdapter.format(&react.extract.predict.signature, &[], &g.inputs), &g.messages);
    // The JSON fallback's prompt for the same step.
    let g = golden("customer_service_react_json");
    assert_messages(&JsonAdapter.format(&react.react.signature, &[], &g.inputs), &g.messages);
    stack.close().await;
    s.stop().await;
}

#[test]
fn every_golden_names_the_dspy_version_that_rendered_it() {
    let dir = format!("{}/tests/golden/dspy", env!("CARGO_MANIFEST_DIR"));
    let version: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/VERSION.json")).unwrap()).unwrap();
    let version = version["dspy"].as_str().unwrap().to_string();
    assert!(version.starts_with("3."), "{version}");
    let mut goldens = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if v.get("messages").is_some() {
            assert_eq!(v["dspy"].as_str(), Some(version.as_str()), "{}", path.display());
            goldens += 1;
        }
    }
    assert_eq!(goldens, 10);
}

#[test]
fn roles_are_system_then_user() {
    let msgs = ChatAdapter.format(&Signature::parse("a -> b").unwrap(), &[], &obj(json!({"a": "x"})));
    assert_eq!(msgs.iter().map(|m| m.role).collect::<Vec<_>>(), [Role::System, Role::User]);
}
