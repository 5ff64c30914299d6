//! Asking the operator before a tool call runs. A server's `confirm` policy
//! (`types::tool::Confirm`) and a tool's hints decide whether a call needs it; a
//! [`Confirmer`] decides whether it may go ahead. The secure tool (client layer) asks; the
//! frontend answers: `warden run` and `warden call` with the `--yes` flag, the console
//! with an overlay. The question travels as a [`ConfirmRequest`] carrying a one-shot reply,
//! so the console never reaches into the client stack and the client never waits on the
//! terminal: a reply that is dropped (the console quit) is a decline.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::tool::{Confirm, ToolHints, ToolName};

/// What the operator is asked about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub tool: ToolName,
    pub hints: ToolHints,
    /// The server's policy that made this call ask.
    pub policy: Confirm,
    /// The arguments as they will be sent.
    pub args: serde_json::Value,
}

/// A question on its way to the console, with the reply it expects. Dropping it unanswered
/// declines the call.
#[derive(Debug)]
pub struct ConfirmRequest {
    pub question: Question,
    reply: oneshot::Sender<bool>,
}

impl ConfirmRequest {
    /// A request and the receiver its answer arrives on.
    pub fn new(question: Question) -> (Self, oneshot::Receiver<bool>) {
        let (reply, rx) = oneshot::channel();
        (Self { question, reply }, rx)
    }

    /// Allows (`true`) or declines the call.
    pub fn answer(self, allow: bool) {
        // The caller may have stopped waiting (run cancelled): nothing to tell it then.
        let _ = self.reply.send(allow);
    }
}

/// Who decided whether a call that needed confirmation went ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The operator, in the console.
    Operator,
    /// The command line: `--yes` given (allowed) or not (declined).
    Flag,
    /// The server's `confirm = "never"`: a destructive call ran without asking.
    Policy,
    /// Nobody answered: the console closed, or no frontend can ask.
    Unanswered,
}

impl DecidedBy {
    pub fn label(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Flag => "--yes flag",
            Self::Policy => "policy",
            Self::Unanswered => "unanswered",
        }
    }
}

/// Whether a call may go ahead, and who said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub by: DecidedBy,
}

/// Decides calls that need confirmation. Cloned into every secure tool of a session.
#[derive(Clone)]
pub enum Confirmer {
    /// Headless: allowed only when the operator passed `--yes` (no one is there to ask).
    Flag { yes: bool },
    /// An operator answers each question (the console receives them).
    Operator(mpsc::Sender<ConfirmRequest>),
}

impl Default for Confirmer {
    /// Fail closed: without a frontend that can ask, a call that needs confirmation does
    /// not run.
    fn default() -> Self {
        Self::Flag { yes: false }
    }
}

impl fmt::Debug for Confirmer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag { yes } => write!(f, "Confirmer::Flag {{ yes: {yes} }}"),
            Self::Operator(_) => f.write_str("Confirmer::Operator"),
        }
    }
}

impl Confirmer {
    /// A confirmer that sends its questions to an operator, and where they arrive. The
    /// queue is small: the agent makes one call at a time.
    pub fn operator(capacity: usize) -> (Self, mpsc::Receiver<ConfirmRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::Operator(tx), rx)
    }

    /// Waits for the decision on `question`. An operator who never answers keeps the call
    /// waiting (the run can still be cancelled); a console that goes away declines it.
    pub async fn decide(&self, question: Question) -> Decision {
        match self {
            Self::Flag { yes } => Decision { allowed: *yes, by: DecidedBy::Flag },
            Self::Operator(tx) => {
                let (request, reply) = ConfirmRequest::new(question);
                if tx.send(request).await.is_err() {
                    return Decision { allowed: false, by: DecidedBy::Unanswered };
                }
                match reply.await {
                    Ok(allowed) => Decision { allowed, by: DecidedBy::Operator },
                    Err(_) => Decision { allowed: false, by: DecidedBy::Unanswered },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> Question {
        Question {
            tool: ToolName::new("files", "delete_file"),
            hints: ToolHints::default(),
            policy: Confirm::Destructive,
            args: serde_json::json!({"path": "/tmp/x"}),
        }
    }

    #[tokio::test]
    async fn the_flag_allows_only_with_yes() {
        let no = Confirmer::default().decide(question()).await;
        assert_eq!(no, Decision { allowed: false, by: DecidedBy::Flag });
        let yes = Confirmer::Flag { yes: true }.decide(question()).await;
        assert_eq!(yes, Decision { allowed: true, by: DecidedBy::Flag });
    }

    #[tokio::test]
    async fn the_operator_answers_and_a_dropped_question_is_a_decline() {
        let (confirmer, mut rx) = Confirmer::operator(1);
        let asked = tokio::spawn({
            let c = confirmer.clone();
            async move { c.decide(question()).await }
        });
        let request = rx.recv().await.unwrap();
        assert_eq!(request.question.tool.qualified(), "files.delete_file");
        request.answer(true);
        assert_eq!(asked.await.unwrap(), Decision { allowed: true, by: DecidedBy::Operator });

        let asked = tokio::spawn({
            let c = confirmer.clone();
            async move { c.decide(question()).await }
        });
        drop(rx.recv().await.unwrap());
        assert_eq!(asked.await.unwrap(), Decision { allowed: false, by: DecidedBy::Unanswered });

        // The console is gone altogether.
        drop(rx);
        assert_eq!(confirmer.decide(question()).await, Decision { allowed: false, by: DecidedBy::Unanswered });
    }
}
