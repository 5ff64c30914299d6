//! The core task: owns the client stack and the language model, runs one request at a
//! time on its own task, and reports only through the event bus. Frontends talk to it with
//! `Command`s over a bounded channel and never wait for it.
//!
//! A command that starts a run while another is running waits its turn in a short queue
//! (the console refuses to send one, so only headless frontends ever queue); a scenario
//! that runs under its own grant gets the session's grant back when it ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::command::Command;
use super::scenario::Scenario;
use crate::agent::lm::Lm;
use crate::agent::react::ReAct;
use crate::agent::signature::Signature;
use crate::agent::tool::{McpTool, Tool};
use crate::mcp::ClientStack;
use crate::types::event::{EventBus, EventKind, RunStatus, Scope};
use crate::types::scope::ScopeSet;

/// Runs that may wait behind the current one.
const MAX_QUEUED: usize = 16;

pub struct Core {
    pub stack: Arc<ClientStack>,
    pub lm: Arc<dyn Lm>,
    pub events: EventBus,
    pub max_iters: usize,
    pub scenarios: Vec<Scenario>,
    /// The session's grant (`None`: the client's defaults), restored after a scenario that
    /// ran under its own.
    pub default_scopes: Option<ScopeSet>,
    /// The servers' health probe, run beside the core while it runs (`None`: off).
    pub health: Option<super::health::Health>,
    /// The compiled program (`--program`) each run's ReAct starts from, fitted to the
    /// grant held when the run starts (`optimize::fit_to_grant`).
    pub program: Option<Arc<crate::agent::program::ProgramFile>>,
    /// Collects optimization runs' events; attached to the bus at the first `Optimize`
    /// and reused after (a bus keeps its journals).
    pub optimize_runs: Option<Arc<super::optimize::Collector>>,
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// A run waiting to start: the request, its run id, and the grant it needs first.
struct Pending {
    request: String,
    run_id: String,
    /// `Some`: re-grant to this before the run (and restore the session's grant after it).
    scopes: Option<Option<ScopeSet>>,
    restore: bool,
}

impl Core {
    pub fn spawn(self, commands: mpsc::Receiver<Command>, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(commands, shutdown))
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        // The probe runs on its own task so a slow connect never delays a command; it
        // stops with the core.
        let probe_stop = shutdown.child_token();
        let probe = self.health.take().map(|h| tokio::spawn(h.run(self.events.clone(), probe_stop.clone())));
        let mut current: Option<Running> = None;
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut runs = 0u32;
        loop {
            let finished = async {
                match current.as_mut() {
                    Some(r) => {
                        let _ = (&mut r.task).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let cmd = tokio::select! {
                c = commands.recv() => match c {
                    Some(c) => c,
                    None => break,
                },
                () = finished => {
                    current = None;
                    if let Some(next) = queue.pop_front() {
                        current = Some(self.start(next).await);
                    }
                    continue;
                }
                () = shutdown.cancelled() => break,
            };
            let pending = match cmd {
                Command::Submit(request) => {
                    runs += 1;
                    Some(Pending { request, run_id: format!("run-{runs}"), scopes: None, restore: false })
                }
                Command::RegrantAndRun(scopes, request) => {
                    runs += 1;
                    Some(Pending { request, run_id: format!("run-{runs}"), scopes: Some(scopes), restore: false })
                }
                Command::RunScenario(i) => match self.scenarios.get(i) {
                    Some(s) => {
                        runs += 1;
                        Some(Pending {
                            request: s.request.clone(),
                            run_id: format!("run-{runs}-{}", s.name),
                            scopes: s.scopes.clone().map(Some),
                            restore: s.scopes.is_some(),
                        })
                    }
                    None => {
                        tracing::warn!(index = i, "no such scenario");
                        None
                    }
                },
                Command::Regrant(scopes) => {
                    self.regrant(scopes).await;
                    None
                }
                Command::Cancel => {
                    queue.clear();
                    if let Some(r) = current.take() {
                        r.cancel.cancel();
                        let _ = r.task.await;
                    }
                    None
                }
                Command::Restart(name) => {
                    self.restart(name);
                    None
                }
                Command::Optimize(job) => {
                    if current.is_some() {
                        self.events.emit(
                            &Scope::default(),
                            EventKind::OptimizeFinished {
                                summary: None,
                                error: Some("a request is running; optimize when it has finished".into()),
                            },
                        );
                    } else {
                        let cancel = CancellationToken::new();
                        let token = cancel.clone();
                        let collector = self
                            .optimize_runs
                            .get_or_insert_with(|| super::optimize::Collector::attach(&self.events))
                            .clone();
                        let job = super::optimize::run_job(
                            self.stack.clone(),
                            self.lm.clone(),
                            self.events.clone(),
                            self.max_iters,
                            collector,
                            *job,
                        );
                        let events = self.events.clone();
                        let task = tokio::spawn(async move {
                            tokio::select! {
                                () = job => {}
                                () = token.cancelled() => {
                                    events.emit(
                                        &Scope::default(),
                                        EventKind::OptimizeFinished { summary: None, error: Some("cancelled".into()) },
                                    );
                                }
                            }
                        });
                        current = Some(Running { cancel, task });
                    }
                    None
                }
                // Exporting is the frontend's (it owns the recording); nothing to do here.
                Command::Export => None,
                Command::Quit => break,
            };
            if let Some(p) = pending {
                if current.is_none() {
                    current = Some(self.start(p).await);
                } else if queue.len() < MAX_QUEUED {
                    queue.push_back(p);
                } else {
                    tracing::warn!("too many runs queued; dropping {}", p.run_id);
                }
            }
        }
        if let Some(r) = current.take() {
            r.cancel.cancel();
            let _ = r.task.await;
        }
        probe_stop.cancel();
        if let Some(p) = probe {
            let _ = p.await;
        }
    }

    async fn regrant(&self, scopes: Option<ScopeSet>) {
        regrant(&self.stack, scopes).await;
    }

    /// Restarts a stdio server on its own task (starting `npx …` can take seconds, and the
    /// core must still take a Cancel meanwhile); the outcome is a `ServerHealth` event.
    fn restart(&self, name: String) {
        let (stack, events) = (self.stack.clone(), self.events.clone());
        tokio::spawn(async move {
            let Some(server) = stack.servers.iter().find(|s| s.entry.name == name) else {
                tracing::warn!(server = %name, "restart: no such server");
                return;
            };
            let (up, detail) = match server.session.restart().await {
                Ok(()) => (true, format!("restarted `{}`", server.session.url)),
                Err(e) => (false, format!("could not restart: {e}")),
            };
            tracing::info!(server = %name, up, %detail, "restart");
            events.emit(&Scope::default(), EventKind::ServerHealth { server: name, up, detail });
        });
    }

    async fn start(&self, p: Pending) -> Running {
        if let Some(scopes) = p.scopes {
            self.regrant(scopes).await;
        }
        let tools: Vec<Arc<dyn Tool>> =
            self.stack.tools().map(|t| Arc::new(McpTool::new(t.clone())) as Arc<dyn Tool>).collect();
        let mut agent = ReAct::new(Signature::customer_service(), tools, self.max_iters);
        if let Some(file) = &self.program
            && let Err(e) =
                agent.load_state(&super::optimize::fit_to_grant(file, &super::optimize::current_grant(&self.stack)))
        {
            // `Session::open` applied it to the same signature already; this cannot fail
            // unless that check is removed, and then the run says so.
            self.events.emit(
                &Scope::default(),
                EventKind::AgentError { message: format!("the program was not applied: {e}") },
            );
        }
        let (lm, events, cancel) = (self.lm.clone(), self.events.clone(), CancellationToken::new());
        let (stack, restore) = (self.stack.clone(), p.restore.then(|| self.default_scopes.clone()));
        let token = cancel.clone();
        let (request, run_id) = (p.request, p.run_id);
        let task = tokio::spawn(async move {
            let inputs: Map<String, Value> = [("request".to_string(), json!(request))].into_iter().collect();
            let started = Instant::now();
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
            if let Some(scopes) = restore {
                regrant(&stack, scopes).await;
            }
        });
        Running { cancel, task }
    }
}

async fn regrant(stack: &ClientStack, scopes: Option<ScopeSet>) {
    for server in &stack.servers {
        // Failures are reported as TokenError/TokenRejected events by the token manager.
        // A server without OAuth has no grant to change.
        if let Some(tokens) = &server.tokens {
            let _ = tokens.regrant(scopes.clone()).await;
        }
    }
}
