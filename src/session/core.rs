//! The core task: owns the client stack and the language model, runs one request at a
//! time on its own task, and reports only through the event bus. The UI talks to it with
//! `Command`s over a bounded channel and never waits for it.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::Command;
use crate::agent::lm::Lm;
use crate::agent::react::ReAct;
use crate::agent::signature::Signature;
use crate::agent::tool::{McpTool, Tool};
use crate::mcp::ClientStack;
use crate::session::scenario::Scenario;
use crate::types::event::{EventBus, EventKind, RunStatus, Scope};
use crate::types::scope::ScopeSet;

pub struct Core {
    pub stack: Arc<ClientStack>,
    pub lm: Arc<dyn Lm>,
    pub events: EventBus,
    pub max_iters: usize,
    pub scenarios: Vec<Scenario>,
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Core {
    pub fn spawn(self, commands: mpsc::Receiver<Command>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(commands, shutdown))
    }

    async fn run(self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut current: Option<Running> = None;
        let mut runs = 0u32;
        loop {
            let cmd = tokio::select! {
                c = commands.recv() => c,
                _ = shutdown.cancelled() => None,
            };
            if current.as_ref().is_some_and(|r| r.task.is_finished()) {
                current = None;
            }
            let Some(cmd) = cmd else { break };
            match cmd {
                Command::Submit(request) => {
                    if current.is_none() {
                        runs += 1;
                        current = Some(self.start(request, format!("run-{runs}")));
                    }
                }
                Command::RegrantAndRun(scopes, request) => {
                    self.regrant(scopes).await;
                    if current.is_none() {
                        runs += 1;
                        current = Some(self.start(request, format!("run-{runs}")));
                    }
                }
                Command::Regrant(scopes) => self.regrant(scopes).await,
                Command::RunScenario(i) => {
                    let Some(s) = self.scenarios.get(i).cloned() else { continue };
                    if current.is_none() {
                        if s.scopes.is_some() {
                            self.regrant(s.scopes.clone()).await;
                        }
                        runs += 1;
                        current = Some(self.start(s.request.clone(), format!("run-{runs}-{}", s.name)));
                    }
                }
                Command::Cancel => {
                    if let Some(r) = current.take() {
                        r.cancel.cancel();
                        let _ = r.task.await;
                    }
                }
                Command::Export => {}
                Command::Quit => break,
            }
        }
        if let Some(r) = current.take() {
            r.cancel.cancel();
            let _ = r.task.await;
        }
    }

    async fn regrant(&self, scopes: Option<ScopeSet>) {
        for server in &self.stack.servers {
            // Failures are reported as TokenError/TokenRejected events by the manager.
            let _ = server.tokens.regrant(scopes.clone()).await;
        }
    }

    fn start(&self, request: String, run_id: String) -> Running {
        let tools: Vec<Arc<dyn Tool>> =
            self.stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
        let agent = ReAct::new(Signature::customer_service(), tools, self.max_iters);
        let (lm, events, cancel) = (self.lm.clone(), self.events.clone(), CancellationToken::new());
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let inputs: Map<String, Value> = [("request".to_string(), json!(request))].into_iter().collect();
            let started = std::time::Instant::now();
            tokio::select! {
                result = agent.run(lm.as_ref(), &inputs, &events, &run_id) => {
                    if let Err(e) = result {
                        tracing::warn!(run = %run_id, error = %e, "run failed");
                    }
                }
                _ = token.cancelled() => {
                    let scope = Scope { run_id: Some(run_id.clone()), step: None };
                    events.emit(&scope, EventKind::RunFinished { status: RunStatus::Cancelled, steps: 0, elapsed_ms: started.elapsed().as_secs_f64() * 1e3 });
                }
            }
        });
        Running { cancel, task }
    }
}
