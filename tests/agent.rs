//! The agent core driven by `DummyLm`: Predict, ChainOfThought, the JSON fallback, ReAct's
//! loop (observations, errors, invalid tools, max_iters, streaming events) and Evaluate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use warden::agent::lm::dummy::DummyLm;
use warden::agent::lm::{Lm, Role};
use warden::agent::predict::{ChainOfThought, Predict};
use warden::agent::react::ReAct;
use warden::agent::signature::Signature;
use warden::agent::tool::{FnTool, Tool, ToolFailure};
use warden::types::event::{EventBus, EventKind, ObservationKind, RunStatus};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn predict_and_chain_of_thought_parse_typed_outputs() {
    let lm = DummyLm::ordered(vec![
        obj(json!({"answer": "Paris"})),
        obj(json!({"reasoning": "France's capital.", "answer": "Paris"})),
    ]);
    let sig = Signature::parse("question -> answer").unwrap();
    let out = Predict::new(sig.clone()).forward(&lm, &obj(json!({"question": "Capital of France?"}))).await.unwrap();
    assert_eq!(Value::Object(out), json!({"answer": "Paris"}));
    let out = ChainOfThought::new(&sig).forward(&lm, &obj(json!({"question": "Capital of France?"}))).await.unwrap();
    assert_eq!(out["reasoning"], "France's capital.");
    // The chain-of-thought prompt asks for reasoning first.
    let prompt = &lm.history()[1];
    assert!(prompt[1].content.ends_with("starting with the field `[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."));
}

#[tokio::test]
async fn json_fallback_only_after_a_parse_failure() {
    struct Scripted(Vec<&'static str>, AtomicUsize);
    impl Lm for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        fn complete<'a>(
            &'a self,
            messages: &'a [warden::agent::lm::Message],
        ) -> futures::future::BoxFuture<'a, Result<warden::agent::lm::Completion, warden::agent::lm::LmError>> {
            let i = self.1.fetch_add(1, Ordering::SeqCst);
            let json_mode = messages.last().unwrap().content.contains("Respond with a JSON object");
            Box::pin(async move {
                assert_eq!(json_mode, i == 1, "second call uses the JSON adapter");
                Ok(warden::agent::lm::Completion { text: self.0[i].to_string(), usage: Default::default() })
            })
        }
        fn usage(&self) -> warden::agent::lm::Usage {
            Default::default()
        }
    }
    let sig = Signature::parse("question -> answer, confidence: float").unwrap();
    let lm = Scripted(
        vec!["The answer is Paris.", "```json\n{\"answer\": \"Paris\", \"confidence\": \"0.9\"}\n```"],
        AtomicUsize::new(0),
    );
    let out = Predict::new(sig.clone()).forward(&lm, &obj(json!({"question": "q"}))).await.unwrap();
    assert_eq!(Value::Object(out), json!({"answer": "Paris", "confidence": 0.9}));

    let lm = Scripted(vec!["nothing useful", "still nothing"], AtomicUsize::new(0));
    let err = Predict::new(sig).forward(&lm, &obj(json!({"question": "q"}))).await.unwrap_err();
    assert!(err.to_string().contains("missing output field(s): answer, confidence"), "{err}");
    assert!(err.to_string().contains("JSON fallback failed too"), "{err}");
}

#[tokio::test]
async fn lm_transport_errors_do_not_trigger_the_fallback() {
    let lm = DummyLm::ordered(vec![]);
    let err =
        Predict::new(Signature::parse("a -> b").unwrap()).forward(&lm, &obj(json!({"a": "x"}))).await.unwrap_err();
    assert_eq!(err.to_string(), "DummyLm has no answer left for this prompt");
    assert_eq!(lm.history().len(), 1, "no second (JSON) call after an LM error");
}

fn counting_tool(calls: Arc<AtomicUsize>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new("lookup", "Look something up.", json!({"key": {"type": "string"}}), move |args| {
        calls.fetch_add(1, Ordering::SeqCst);
        match args.get("key").and_then(Value::as_str) {
            Some("missing") => Err(ToolFailure("not found".into())),
            Some(k) => Ok(json!({"key": k, "value": 42})),
            None => Err(ToolFailure("no key".into())),
        }
    }))
}

fn step(thought: &str, tool: &str, args: Value) -> Map<String, Value> {
    obj(json!({"next_thought": thought, "next_tool_name": tool, "next_tool_args": args}))
}

#[tokio::test]
async fn react_runs_tools_streams_events_and_extracts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let lm = DummyLm::ordered(vec![
        step("Look it up.", "lookup", json!({"key": "k1"})),
        step("Bad args.", "lookup", json!({"key": 7})),
        step("Try a tool that does not exist.", "delete_everything", json!({})),
        // Consumed by the JSON-adapter retry of the step above, which fails again.
        step("still not a tool", "delete_everything", json!({})),
        obj(json!({"reasoning": "Found 42.", "response": "The value is 42."})),
    ]);
    let react = ReAct::new(Signature::customer_service(), vec![counting_tool(calls.clone())], 5);
    let events = EventBus::recording();
    let r = react.run(&lm, &obj(json!({"request": "What is k1?"})), &events, "run-7").await.unwrap();
    assert_eq!(r.outputs["response"], "The value is 42.");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "invalid arguments never reach the tool");
    let kinds: Vec<ObservationKind> = r.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [ObservationKind::Ok, ObservationKind::Invalid], "an unknown tool name ends the trajectory");
    assert_eq!(r.steps[1].observation, "Execution error in lookup: `key` must be string");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(lm.history().len(), 5);
    assert!(events.recorded().iter().any(|e| matches!(&e.kind, EventKind::AgentError { message } if message.contains("\"delete_everything\" is not one of lookup, finish"))));

    // The second prompt carries the first step's trajectory, formatted as DSPy does.
    let second = &lm.history()[1];
    assert!(second.last().unwrap().content.contains(
        "[[ ## trajectory ## ]]\n[[ ## thought_0 ## ]]\nLook it up.\n\n[[ ## tool_name_0 ## ]]\nlookup\n\n[[ ## tool_args_0 ## ]]\n{\"key\": \"k1\"}\n\n[[ ## observation_0 ## ]]\n{\"key\": \"k1\", \"value\": 42}"
    ));

    let rec = events.recorded();
    assert!(rec.iter().all(|e| e.run_id.as_deref() == Some("run-7")));
    let names: Vec<&str> = rec
        .iter()
        .map(|e| match &e.kind {
            EventKind::RunStarted { .. } => "start",
            EventKind::Thought { .. } => "thought",
            EventKind::ToolCall { .. } => "call",
            EventKind::ToolResult { .. } => "result",
            EventKind::InvalidAction { .. } => "invalid",
            EventKind::AgentError { .. } => "error",
            EventKind::FinalAnswer { .. } => "answer",
            EventKind::RunFinished { .. } => "finished",
            EventKind::LmCall { .. } => "lm",
            _ => "other",
        })
        .collect();
    // One account of the one call that ran (call, then exactly one result); the invalid
    // choice is reported as such, with no call; every model call is one `lm` event (the
    // failed parse, its fallback attempt and the extraction included).
    assert_eq!(
        names,
        [
            "start", "lm", "thought", "call", "result", "lm", "thought", "invalid", "lm", "lm", "error", "lm",
            "answer", "finished"
        ]
    );
    let steps: Vec<Option<u32>> = rec
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ToolCall { .. } | EventKind::InvalidAction { .. }))
        .map(|e| e.step)
        .collect();
    assert_eq!(steps, [Some(0), Some(1)]);
}

#[tokio::test]
async fn react_stops_at_max_iters_then_extracts() {
    let mut answers: Vec<Map<String, Value>> =
        (0..3).map(|i| step("again", "lookup", json!({"key": format!("k{i}")}))).collect();
    answers.push(obj(json!({"reasoning": "r", "response": "gave up"})));
    let lm = DummyLm::ordered(answers);
    let react = ReAct::new(Signature::customer_service(), vec![counting_tool(Arc::new(AtomicUsize::new(0)))], 3);
    let r = react.run(&lm, &obj(json!({"request": "loop"})), &EventBus::new(), "r").await.unwrap();
    assert_eq!(r.steps.len(), 3);
    assert_eq!(lm.history().len(), 4, "three steps and one extract, nothing more");
}

#[tokio::test]
async fn dummy_lm_keyed_and_follow_examples() {
    let lm = DummyLm::keyed(vec![
        ("France".into(), obj(json!({"answer": "Paris"}))),
        ("Italy".into(), obj(json!({"answer": "Rome"}))),
    ]);
    let p = Predict::new(Signature::parse("question -> answer").unwrap());
    assert_eq!(p.forward(&lm, &obj(json!({"question": "Capital of Italy?"}))).await.unwrap()["answer"], "Rome");

    let lm = DummyLm::ordered(vec![obj(json!({"answer": "fallback"}))]).follow_examples();
    let mut p = Predict::new(Signature::parse("question -> answer").unwrap());
    p.demos = vec![obj(json!({"question": "2+2?", "answer": "4"}))];
    assert_eq!(p.forward(&lm, &obj(json!({"question": "2+2?"}))).await.unwrap()["answer"], "4");
    assert_eq!(p.forward(&lm, &obj(json!({"question": "3+3?"}))).await.unwrap()["answer"], "fallback");
    assert_eq!(lm.history()[0][1].role, Role::User);
}
