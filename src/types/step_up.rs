//! Asking the operator before a step-up. A server that answers a tool call with 403
//! `insufficient_scope` names the scopes it wants; under `--step-up ask` (the console's
//! default for servers it logged in to) the secure tool does not re-authorize on its own but
//! asks through a [`StepUpAsker`], the way a destructive call asks through
//! `confirm::Confirmer`: the question travels as a [`StepUpRequest`] carrying a one-shot
//! reply, the console answers it from an overlay, and a reply that is dropped (the console
//! quit) is a decline — more access is never granted by default.

use std::fmt;

use tokio::sync::{mpsc, oneshot};

use super::scope::ScopeSet;

/// What the operator is asked: server, tool, what the server asked for, what is granted
/// now and what the re-authorization would ask for (the union).
#[derive(Debug, Clone, PartialEq)]
pub struct StepUpQuestion {
    pub server: String,
    /// The tool whose call was refused.
    pub tool: String,
    /// The scopes the server's challenge named.
    pub asked: ScopeSet,
    /// The grant the refused token carried.
    pub granted: ScopeSet,
    /// What a re-authorization asks for: the grant and the asked scopes together.
    pub union: ScopeSet,
}

impl StepUpQuestion {
    /// The scopes the re-authorization would add to the grant.
    pub fn added(&self) -> ScopeSet {
        self.granted.missing(&self.union)
    }
}

/// A step-up question on its way to the console, with the reply it expects. Dropping it
/// unanswered declines.
#[derive(Debug)]
pub struct StepUpRequest {
    pub question: StepUpQuestion,
    reply: oneshot::Sender<bool>,
}

impl StepUpRequest {
    /// A request and the receiver its answer arrives on.
    pub fn new(question: StepUpQuestion) -> (Self, oneshot::Receiver<bool>) {
        let (reply, rx) = oneshot::channel();
        (Self { question, reply }, rx)
    }

    /// Re-authorize (`true`) or decline.
    pub fn answer(self, reauthorize: bool) {
        // The call may have been cancelled meanwhile: nobody waits for the answer then.
        let _ = self.reply.send(reauthorize);
    }
}

/// How a step-up question was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpAnswer {
    /// The operator said yes: re-authorize with the union.
    Reauthorize,
    /// The operator said no.
    Declined,
    /// No one answered: the console went away, or nothing can ask.
    Unanswered,
}

impl StepUpAnswer {
    /// The outcome of the `step-up` auth step when the denial stands.
    pub fn refusal(self) -> &'static str {
        match self {
            Self::Reauthorize => "re-authorizing",
            Self::Declined => "declined by the operator",
            Self::Unanswered => "not re-authorized, no one answered (the console closed)",
        }
    }
}

/// Who is asked about step-ups. Cloned into every secure tool of a session.
#[derive(Clone, Default)]
pub enum StepUpAsker {
    /// No frontend can ask: a step-up that should be asked about is declined.
    #[default]
    Nobody,
    /// An operator answers each question (the console receives them).
    Operator(mpsc::Sender<StepUpRequest>),
}

impl fmt::Debug for StepUpAsker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nobody => f.write_str("StepUpAsker::Nobody"),
            Self::Operator(_) => f.write_str("StepUpAsker::Operator"),
        }
    }
}

impl StepUpAsker {
    /// An asker whose questions arrive on the returned receiver. Small: the agent makes
    /// one call at a time.
    pub fn operator(capacity: usize) -> (Self, mpsc::Receiver<StepUpRequest>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::Operator(tx), rx)
    }

    /// Waits for the operator's answer to `question` (the run can still be cancelled
    /// meanwhile); no operator, or one who went away, is [`StepUpAnswer::Unanswered`].
    pub async fn ask(&self, question: StepUpQuestion) -> StepUpAnswer {
        let Self::Operator(tx) = self else { return StepUpAnswer::Unanswered };
        let (request, reply) = StepUpRequest::new(question);
        if tx.send(request).await.is_err() {
            return StepUpAnswer::Unanswered;
        }
        match reply.await {
            Ok(true) => StepUpAnswer::Reauthorize,
            Ok(false) => StepUpAnswer::Declined,
            Err(_) => StepUpAnswer::Unanswered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> StepUpQuestion {
        let set = |s: &str| ScopeSet::parse(s).unwrap();
        StepUpQuestion {
            server: "customer-service".into(),
            tool: "create_support_ticket".into(),
            asked: set("ticket:create"),
            granted: set("customer:read account:calculate"),
            union: set("account:calculate customer:read ticket:create"),
        }
    }

    #[test]
    fn the_question_names_what_would_be_added() {
        assert_eq!(question().added().to_string(), "ticket:create");
    }

    #[tokio::test]
    async fn yes_no_and_a_dropped_question() {
        let (asker, mut rx) = StepUpAsker::operator(1);
        for (reply, expected) in [(true, StepUpAnswer::Reauthorize), (false, StepUpAnswer::Declined)] {
            let asked = tokio::spawn({
                let a = asker.clone();
                async move { a.ask(question()).await }
            });
            let request = rx.recv().await.unwrap();
            assert_eq!(request.question, question());
            request.answer(reply);
            assert_eq!(asked.await.unwrap(), expected);
        }

        let asked = tokio::spawn({
            let a = asker.clone();
            async move { a.ask(question()).await }
        });
        drop(rx.recv().await.unwrap());
        assert_eq!(asked.await.unwrap(), StepUpAnswer::Unanswered);

        // The console is gone altogether, and a session without one never asks.
        drop(rx);
        assert_eq!(asker.ask(question()).await, StepUpAnswer::Unanswered);
        assert_eq!(StepUpAsker::default().ask(question()).await, StepUpAnswer::Unanswered);
    }
}
