//! `DummyLm`, as in DSPy's `dspy.utils.DummyLM`: answers given in order, or keyed by a
//! substring of the prompt, optionally following a demo whose inputs match the request.
//! Answers are written in the ChatAdapter's format so the whole parse path runs.

use std::collections::VecDeque;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::{Completion, Lm, LmError, Message, Role, Usage};

enum Answers {
    Ordered(Mutex<VecDeque<Map<String, Value>>>),
    Keyed(Vec<(String, Map<String, Value>)>),
}

pub struct DummyLm {
    answers: Answers,
    follow_examples: bool,
    history: Mutex<Vec<Vec<Message>>>,
}

impl DummyLm {
    /// Answers returned one per call, in order.
    pub fn ordered(answers: Vec<Map<String, Value>>) -> Self {
        Self {
            answers: Answers::Ordered(Mutex::new(answers.into())),
            follow_examples: false,
            history: Mutex::new(Vec::new()),
        }
    }

    /// The answer whose key occurs in the last user message.
    pub fn keyed(answers: Vec<(String, Map<String, Value>)>) -> Self {
        Self { answers: Answers::Keyed(answers), follow_examples: false, history: Mutex::new(Vec::new()) }
    }

    /// Prefer the outputs of a demo (user/assistant pair) whose user turn equals the final
    /// request; fall back to the configured answers.
    pub fn follow_examples(mut self) -> Self {
        self.follow_examples = true;
        self
    }

    /// Every prompt received, for assertions.
    pub fn history(&self) -> Vec<Vec<Message>> {
        self.history.lock().clone()
    }

    fn answer(&self, messages: &[Message]) -> Result<String, LmError> {
        if self.follow_examples
            && let Some(from_demo) = demo_answer(messages)
        {
            return Ok(from_demo);
        }
        let last_user = messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.as_str()).unwrap_or("");
        let fields = match &self.answers {
            Answers::Ordered(q) => q.lock().pop_front(),
            Answers::Keyed(list) => list.iter().find(|(k, _)| last_user.contains(k.as_str())).map(|(_, v)| v.clone()),
        }
        .ok_or(LmError::Exhausted)?;
        Ok(render(&fields))
    }
}

/// `[[ ## field ## ]]` blocks followed by the completed marker.
pub fn render(fields: &Map<String, Value>) -> String {
    let mut parts: Vec<String> =
        fields.iter().map(|(k, v)| format!("[[ ## {k} ## ]]\n{}", crate::agent::pyfmt::str_scalar(v))).collect();
    parts.push("[[ ## completed ## ]]".into());
    parts.join("\n\n")
}

fn demo_answer(messages: &[Message]) -> Option<String> {
    let request = messages.last().filter(|m| m.role == Role::User)?;
    // The final user turn ends with the output-requirements line that demos lack.
    let request_inputs = request.content.split("\n\nRespond with the corresponding output fields").next()?;
    messages.windows(2).find_map(|w| {
        (w[0].role == Role::User && w[1].role == Role::Assistant && w[0].content == request_inputs)
            .then(|| w[1].content.clone())
    })
}

impl Lm for DummyLm {
    fn name(&self) -> &str {
        "dummy"
    }

    fn complete<'a>(&'a self, messages: &'a [Message]) -> BoxFuture<'a, Result<Completion, LmError>> {
        Box::pin(async move {
            self.history.lock().push(messages.to_vec());
            let text = self.answer(messages)?;
            Ok(Completion { text, usage: Usage::default() })
        })
    }

    fn usage(&self) -> Usage {
        Usage::default()
    }
}
