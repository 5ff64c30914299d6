//! `SecureTool`: every tool call the agent makes goes through here.
//!
//! 1. Pre-check the token's scopes against the tool's required scopes and refuse locally,
//!    naming the missing scopes (fast, clear feedback; the server still decides).
//! 2. Call, with a timeout.
//! 3. Classify: success, tool error, 401 (refresh once, retry once), 403
//!    `insufficient_scope` (denied, with the server's scopes), 429 (exponential back-off
//!    never shorter than `Retry-After`, with jitter; a few attempts, each wait and all waits
//!    together capped), timeout, connection, TLS.
//!
//! Between the pre-check and the network, a call the server's `confirm` policy says needs
//! the operator (by default: destructive or unannotated tools) waits for the session's
//! `Confirmer`; a declined call sends nothing and ends as `Failed { NotConfirmed }`, with a
//! `ToolConfirmation` event saying who decided.
//!
//! Every call is recorded in the audit trail (`ToolCall`) before it is sent; if that record
//! cannot be written the call is not sent and ends as `Failed { AuditUnavailable }`.
//!
//! A call with side effects (not read-only, not declared idempotent) is never replayed
//! after a failure whose outcome is unknown (connection lost, timeout): it ends as
//! `OutcomeUnknown`. For tools that accept an `idempotency_key`, one is generated per
//! logical call and named in that outcome, so a deliberate repeat cannot run it twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::classify::Failure;
use super::session::{McpSession, ToolSpec};
use crate::auth::authcode::{CodeLogin, StepUp};
use crate::auth::token::TokenManager;
use crate::types::confirm::{Confirmer, DecidedBy, Question};
use crate::types::event::{CallAudit, CallOutcome, DenialSide, EventBus, EventKind, FailureClass, RetryReason, Scope};
use crate::types::scope::ScopeSet;
use crate::types::secret::Fingerprint;
use crate::types::step_up::{StepUpAnswer, StepUpAsker, StepUpQuestion};
use crate::types::tool::{Confirm, ToolName};

/// The first back-off after a 429 without `Retry-After`; it doubles per 429.
const RATE_LIMIT_BACKOFF: Duration = Duration::from_millis(500);

/// Retry and timeout bounds for one logical call.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    pub timeout: Duration,
    /// Attempts in total when the server answers 429.
    pub rate_limit_attempts: u32,
    /// Longest `Retry-After` we wait; a longer one gives up at once.
    pub max_retry_after: Duration,
    /// Most time one call spends backing off after 429s, all waits together.
    pub max_total_wait: Duration,
    /// Extra attempts after a transient failure, for calls that are safe to repeat.
    pub transient_retries: u32,
    /// Refuse locally when the token lacks the tool's scopes. Disable to let the server
    /// decide (to see its 403).
    pub precheck: bool,
    /// Decides calls that need the operator's confirmation (default: decline them, as a
    /// headless run without `--yes` does).
    pub confirmer: Confirmer,
    /// Asked before a step-up under `--step-up ask` (default: nobody, so it is declined).
    pub step_up: StepUpAsker,
    /// OpenTelemetry export is on: each request carries a W3C `traceparent` in
    /// `params._meta` naming its MCP client span (ids derived as the exporter derives
    /// them). Off: the request bytes are as they always were.
    pub trace: Option<crate::types::trace::TraceSalt>,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            rate_limit_attempts: 3,
            max_retry_after: Duration::from_secs(10),
            max_total_wait: Duration::from_secs(15),
            transient_retries: 1,
            precheck: true,
            confirmer: Confirmer::default(),
            step_up: StepUpAsker::default(),
            trace: None,
        }
    }
}

/// The outcome plus what it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport {
    #[serde(flatten)]
    pub tool: ToolName,
    #[serde(flatten)]
    pub outcome: CallOutcome,
    pub attempts: u32,
    pub latency_ms: f64,
}

/// A call ready to go on the wire.
pub struct Prepared {
    pub args: Map<String, Value>,
    /// What the token grants; None for a server without OAuth.
    pub claims: Option<Arc<crate::auth::token::Grant>>,
    /// Safe to send again after an ambiguous failure.
    pub repeatable: bool,
}

pub struct SecureTool {
    pub spec: ToolSpec,
    session: Arc<McpSession>,
    /// None for a server without OAuth: no pre-check, no refresh on 401.
    tokens: Option<Arc<TokenManager>>,
    events: EventBus,
    policy: CallPolicy,
    blocked: Option<String>,
    /// What to say when a server without OAuth answers 401 (which header it refused, or
    /// that it needs OAuth).
    refusal_hint: String,
    /// The server's `confirm` policy.
    confirm: Confirm,
}

impl SecureTool {
    pub fn new(
        spec: ToolSpec,
        session: Arc<McpSession>,
        tokens: Option<Arc<TokenManager>>,
        events: EventBus,
        policy: CallPolicy,
    ) -> Self {
        Self {
            spec,
            session,
            tokens,
            events,
            policy,
            blocked: None,
            refusal_hint: String::new(),
            confirm: Confirm::default(),
        }
    }

    /// The server's confirmation policy (`confirm` in `[[servers]]`).
    pub fn confirm(mut self, policy: Confirm) -> Self {
        self.confirm = policy;
        self
    }

    /// Whether a call to this tool waits for the operator.
    pub fn needs_confirmation(&self) -> bool {
        self.spec.hints.needs_confirmation(self.confirm)
    }

    /// What a 401 means for this server when it holds no token manager.
    pub fn refusal_hint(mut self, hint: String) -> Self {
        self.refusal_hint = hint;
        self
    }

    /// Refuses every call with `reason` (a changed tool manifest awaiting approval).
    pub fn blocked(mut self, reason: Option<String>) -> Self {
        self.blocked = reason;
        self
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    pub fn id(&self) -> &ToolName {
        &self.spec.id
    }

    /// The scopes this tool needs that the current token lacks (`None` before a token).
    pub fn missing_scopes(&self) -> Option<ScopeSet> {
        self.tokens.as_ref()?.info().map(|t| t.missing(&self.spec.required_scopes))
    }

    /// Makes one logical call and reports it on the bus exactly once: `ToolCall`, a
    /// `ToolConfirmation` when it needed one, any `ToolRateLimited`/`ToolRetry`, then one
    /// `ToolResult`.
    pub async fn call(&self, args: Value, scope: &Scope) -> CallReport {
        let start = Instant::now();
        let digest = match &args {
            Value::Object(m) => args_digest(m),
            _ => String::new(),
        };
        // The call is recorded before anything is sent: a call the audit trail cannot record
        // is not made (fail closed; `[audit] on_failure = "continue"` lets it through).
        let recorded = self.events.emit_recorded(
            scope,
            EventKind::ToolCall {
                tool: self.spec.id.clone(),
                args: args.clone(),
                args_digest: digest.clone(),
                required: self.spec.required_scopes.clone(),
            },
        );
        let (outcome, attempts, exchange) = match recorded {
            Ok(call) => {
                let traceparent = self.policy.trace.map(|salt| {
                    salt.traceparent(&crate::types::trace::run_key(scope.run_id.as_deref(), call.id), call.id)
                });
                let (outcome, attempts) = self.run(args, scope, traceparent.clone()).await;
                (outcome, attempts, traceparent.and_then(|tp| self.session.exchange(&tp)))
            }
            Err(e) => (
                failed(FailureClass::AuditUnavailable, &format!("not called: the audit trail cannot be written ({e})")),
                0,
                None,
            ),
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        self.events.emit(
            scope,
            EventKind::ToolResult {
                tool: self.spec.id.clone(),
                outcome: outcome.clone(),
                attempts,
                latency_ms,
                audit: CallAudit { mcp: exchange, ..self.audit(&digest) },
            },
        );
        CallReport { tool: self.spec.id.clone(), outcome, attempts, latency_ms }
    }

    /// Digest, scopes and token fingerprint for the audit trail.
    fn audit(&self, digest: &str) -> CallAudit {
        let token = self.tokens.as_ref().and_then(|t| t.info());
        CallAudit {
            args_digest: (!digest.is_empty()).then(|| digest.to_string()),
            required: self.spec.required_scopes.clone(),
            granted: token.as_ref().map(|t| t.granted.clone()).unwrap_or_default(),
            fingerprint: token.map(|t| t.fingerprint),
            mcp: None,
        }
    }

    /// Everything before the network: token (cached), scope pre-check, idempotency key.
    /// With the argument digest `call` computes once for both events, this is the
    /// per-call overhead the client layer adds.
    pub async fn prepare(&self, args: Value) -> Result<Prepared, CallOutcome> {
        let Value::Object(mut args) = args else {
            return Err(failed(FailureClass::InvalidArguments, "tool arguments must be a JSON object"));
        };
        if let Some(reason) = &self.blocked {
            return Err(failed(FailureClass::Blocked, reason));
        }
        let claims = match &self.tokens {
            None => None,
            Some(tokens) => match tokens.claims().await {
                Ok(c) => Some(c),
                Err(e) => {
                    let class = if e.is_auth() { FailureClass::Unauthorized } else { FailureClass::TokenUnavailable };
                    return Err(failed(class, &e.to_string()));
                }
            },
        };
        if self.policy.precheck
            && let Some(claims) = &claims
        {
            let missing = claims.missing(&self.spec.required_scopes);
            if !missing.is_empty() {
                let granted = claims.scope.clone();
                return Err(denied(DenialSide::Client, self.spec.required_scopes.clone(), granted, None));
            }
        }
        if self.spec.takes_idempotency_key && !args.contains_key("idempotency_key") {
            args.insert("idempotency_key".into(), Value::String(format!("warden-{}", uuid::Uuid::new_v4())));
        }
        // Only calls without side effects are sent again after a failure that may have
        // reached the server: a call with side effects is reported as outcome unknown
        // instead (its idempotency key makes a deliberate repeat safe).
        let repeatable = self.spec.retry_safe;
        Ok(Prepared { args, claims, repeatable })
    }

    async fn run(&self, args: Value, scope: &Scope, traceparent: Option<String>) -> (CallOutcome, u32) {
        let Prepared { args, mut claims, repeatable } = match self.prepare(args).await {
            Ok(p) => p,
            Err(outcome) => return (outcome, 0),
        };
        // Asked after the pre-check (never ask about a call that would be refused anyway)
        // and before anything is sent.
        if let Err(outcome) = self.confirmed(&args, scope).await {
            return (outcome, 0);
        }
        let (mut attempt, mut refreshed, mut rate_limited, mut transient) = (0u32, false, 0u32, 0u32);
        let mut stepped_up = 0u32;
        // Time spent backing off after 429s, against `max_total_wait`.
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let failure = match tokio::time::timeout(
                self.policy.timeout,
                self.session.call(&self.spec.id.name, args.clone(), traceparent.as_deref()),
            )
            .await
            {
                Ok(Ok(result)) => return (outcome_of(result), attempt),
                Ok(Err(f)) => f,
                Err(_) => Failure::Timeout,
            };
            match failure {
                // No token manager: nothing to refresh; say what the server refused.
                Failure::Unauthorized { www_authenticate } if self.tokens.is_none() => {
                    return (self.refused(401, &www_authenticate), attempt);
                }
                Failure::InsufficientScope { www_authenticate, .. } if self.tokens.is_none() => {
                    return (self.refused(403, &www_authenticate), attempt);
                }
                // 401 is answered before any tool runs, so one retry is always safe.
                Failure::Unauthorized { www_authenticate } if !refreshed => {
                    let (Some(tokens), Some(held)) = (&self.tokens, &claims) else {
                        return (self.refused(401, &www_authenticate), attempt);
                    };
                    refreshed = true;
                    match tokens.refresh_rejected(held).await {
                        Ok(c) => claims = Some(c),
                        Err(e) => {
                            let class =
                                if e.is_auth() { FailureClass::Unauthorized } else { FailureClass::TokenUnavailable };
                            let msg = format!(
                                "the server rejected the token ({www_authenticate}) and no new one could be had: {e}"
                            );
                            return (failed(class, &msg), attempt);
                        }
                    }
                    self.retry(scope, attempt, RetryReason::Unauthorized, "401: refreshed the token", Duration::ZERO);
                }
                Failure::Unauthorized { www_authenticate } => {
                    let msg = format!("the server rejected a freshly issued token ({www_authenticate})");
                    return (failed(FailureClass::Unauthorized, &msg), attempt);
                }
                Failure::InsufficientScope { www_authenticate, scopes } => {
                    let required = if scopes.is_empty() { self.spec.required_scopes.clone() } else { scopes };
                    let granted = claims.as_ref().map(|c| c.scope.clone()).unwrap_or_default();
                    // Step-up (a login's tokens, `--step-up auto`, or `ask` and the operator says
                    // yes): ask for the union, at most twice per call; a 403 is never retried
                    // as if the token had expired.
                    if let Some(tokens) = &self.tokens
                        && stepped_up < MAX_STEP_UPS
                        && let Some(union) = self.step_up(tokens, &granted, &required).await
                    {
                        stepped_up += 1;
                        match tokens.step_up(union.clone()).await {
                            Ok(c) => claims = Some(c),
                            Err(e) => {
                                let msg =
                                    format!("the server asked for {required}; re-authorizing with {union} failed: {e}");
                                return (failed(FailureClass::Unauthorized, &msg), attempt);
                            }
                        }
                        let detail = format!("403 insufficient_scope: re-authorized with {union}");
                        self.retry(scope, attempt, RetryReason::StepUp, &detail, Duration::ZERO);
                        continue;
                    }
                    return (denied(DenialSide::Server, required, granted, Some((403, www_authenticate))), attempt);
                }
                Failure::RateLimited { retry_after } => {
                    rate_limited += 1;
                    let wait = retry_after.unwrap_or(Duration::from_secs(1));
                    self.events.emit(
                        scope,
                        EventKind::ToolRateLimited {
                            tool: self.spec.id.clone(),
                            retry_after_ms: wait.as_millis() as u64,
                            attempt,
                        },
                    );
                    if rate_limited >= self.policy.rate_limit_attempts {
                        let msg = format!("rate limited: gave up after {attempt} attempts");
                        return (failed(FailureClass::RateLimited, &msg), attempt);
                    }
                    if wait > self.policy.max_retry_after {
                        let msg = format!(
                            "rate limited: the server asks to wait {} s, more than the {} s cap",
                            wait.as_secs(),
                            self.policy.max_retry_after.as_secs()
                        );
                        return (failed(FailureClass::RateLimited, &msg), attempt);
                    }
                    // Exponential back-off, never shorter than the server asked, plus
                    // jitter so clients limited together do not come back in lockstep.
                    let backoff = RATE_LIMIT_BACKOFF.saturating_mul(1 << (rate_limited - 1).min(16)).max(wait);
                    let delay = backoff + jitter(Duration::from_millis(250));
                    if waited + delay > self.policy.max_total_wait {
                        let msg = format!(
                            "rate limited: gave up after {attempt} attempts; waiting another {:.1} s would pass the {} s retry budget",
                            delay.as_secs_f64(),
                            self.policy.max_total_wait.as_secs()
                        );
                        return (failed(FailureClass::RateLimited, &msg), attempt);
                    }
                    waited += delay;
                    self.retry(scope, attempt, RetryReason::RateLimited, "429: backing off", delay);
                    self.events.clock().sleep(delay).await;
                }
                f @ (Failure::Timeout | Failure::ConnectFailed(_) | Failure::ConnectionLost(_))
                    if transient < self.policy.transient_retries && (repeatable || !f.is_ambiguous()) =>
                {
                    transient += 1;
                    let delay = Duration::from_millis(200) + jitter(Duration::from_millis(200));
                    self.retry(scope, attempt, RetryReason::Transient, &f.message(), delay);
                    self.events.clock().sleep(delay).await;
                }
                f @ (Failure::Timeout | Failure::ConnectionLost(_)) if !repeatable => {
                    let what = self.describe(&f);
                    return (outcome_unknown(&what, args.get("idempotency_key").and_then(Value::as_str)), attempt);
                }
                f => {
                    let mut msg = self.describe(&f);
                    if f.is_ambiguous() && !repeatable {
                        msg.push_str("; not retried: the call may have run and is not safe to repeat");
                    }
                    return (failed(f.class(), &msg), attempt);
                }
            }
        }
    }

    /// The confirmation gate: `Ok` when the call may be sent. Reports the decision as a
    /// `ToolConfirmation`; a destructive call that runs unasked under `confirm = "never"`
    /// is reported too (`by: policy`), so the trace shows nobody was asked.
    async fn confirmed(&self, args: &Map<String, Value>, scope: &Scope) -> Result<(), CallOutcome> {
        let hints = self.spec.hints;
        if !self.needs_confirmation() {
            if self.confirm == Confirm::Never && hints.is_destructive() {
                self.confirmation(scope, true, DecidedBy::Policy)?;
            }
            return Ok(());
        }
        let question =
            Question { tool: self.spec.id.clone(), hints, policy: self.confirm, args: Value::Object(args.clone()) };
        let decision = self.policy.confirmer.decide(question).await;
        self.confirmation(scope, decision.allowed, decision.by)?;
        if decision.allowed {
            return Ok(());
        }
        let (tool, server) = (&self.spec.id.name, &self.spec.id.server);
        let why = match (self.confirm, hints.declared) {
            (Confirm::Always, _) => format!("{server} has confirm = \"always\""),
            (_, false) => "it has no annotations, so it is treated as destructive".to_string(),
            _ => "it is annotated as destructive".to_string(),
        };
        let message = match decision.by {
            DecidedBy::Flag => format!(
                "not called: {tool} on {server} needs the operator's confirmation ({why}) and this command was not given --yes; nothing was sent. Re-run with --yes to allow it, or set confirm = \"never\" for {server}"
            ),
            DecidedBy::Unanswered => format!(
                "not called: {tool} on {server} needs the operator's confirmation ({why}) and no one answered (the console closed); nothing was sent"
            ),
            DecidedBy::Operator | DecidedBy::Policy => {
                format!("not called: the operator declined {tool} on {server} ({why}); nothing was sent")
            }
        };
        Err(failed(FailureClass::NotConfirmed, &message))
    }

    /// Reports the decision; an allowed call the audit trail cannot record is not sent
    /// (fail closed, as for `ToolCall`).
    fn confirmation(&self, scope: &Scope, allowed: bool, by: DecidedBy) -> Result<(), CallOutcome> {
        let kind = EventKind::ToolConfirmation { tool: self.spec.id.clone(), allowed, by, policy: self.confirm };
        match self.events.emit_recorded(scope, kind) {
            Err(e) if allowed => Err(failed(
                FailureClass::AuditUnavailable,
                &format!("not called: the audit trail cannot record the confirmation ({e})"),
            )),
            _ => Ok(()),
        }
    }

    /// A failure in words; a timeout says how long we waited, on whom, and what to check.
    fn describe(&self, f: &Failure) -> String {
        match f {
            Failure::Timeout => format!(
                "no answer from {} within {:.1} s; the server may be overloaded or hung: check it, or raise [client] timeout_secs",
                self.spec.id.server,
                self.policy.timeout.as_secs_f64()
            ),
            // The transport's own text no longer carries the URL: name the server here.
            Failure::ConnectFailed(m) => format!(
                "could not connect to {} ({}): {m}; is the server running?",
                self.spec.id.server, self.session.url
            ),
            other => other.message(),
        }
    }

    /// A 401/403 from a server Warden holds no token for.
    fn refused(&self, status: u16, www_authenticate: &str) -> CallOutcome {
        let challenge =
            if www_authenticate.is_empty() { String::new() } else { format!(", WWW-Authenticate: {www_authenticate}") };
        failed(FailureClass::Unauthorized, &format!("{} (HTTP {status}{challenge})", self.refusal_hint))
    }

    /// The scopes to re-authorize with after a 403 asking for `required`, by the login's
    /// step-up policy: `auto` at once, `ask` when the operator says yes (a no, or no one
    /// to answer, is recorded as a `step-up` auth step and the denial stands), `never`
    /// not at all. None: report the denial.
    async fn step_up(&self, tokens: &TokenManager, granted: &ScopeSet, required: &ScopeSet) -> Option<ScopeSet> {
        let login = tokens.login()?;
        let union = step_up_union(login, granted, required)?;
        match login.step_up() {
            StepUp::Never => return None,
            StepUp::Auto => {}
            StepUp::Ask => {
                let question = StepUpQuestion {
                    server: self.spec.id.server.clone(),
                    tool: self.spec.id.name.clone(),
                    asked: required.clone(),
                    granted: granted.clone(),
                    union: union.clone(),
                };
                let answer = self.policy.step_up.ask(question).await;
                if answer != StepUpAnswer::Reauthorize {
                    login.note_step_up_refused(required, answer.refusal());
                    return None;
                }
            }
        }
        login.note_step_up(required, &union);
        Some(union)
    }

    fn retry(&self, scope: &Scope, attempt: u32, reason: RetryReason, detail: &str, delay: Duration) {
        self.events.emit(
            scope,
            EventKind::ToolRetry {
                tool: self.spec.id.clone(),
                attempt,
                reason,
                detail: detail.to_string(),
                delay_ms: delay.as_millis() as u64,
            },
        );
    }
}

/// Re-authorizations per call after 403 insufficient_scope; then the denial stands.
pub(crate) const MAX_STEP_UPS: u32 = 2;

/// What a re-authorization after a 403 asking for `required` would ask for: the union of
/// the grant, the login's grant and `required`, when it asks for something new. None:
/// nothing to step up to (the denial stands).
fn step_up_union(login: &CodeLogin, granted: &ScopeSet, required: &ScopeSet) -> Option<ScopeSet> {
    let mut union = granted.clone();
    for s in login.granted().iter().chain(required.iter()) {
        union.insert(s.clone());
    }
    (!required.is_empty() && union != *granted).then_some(union)
}

/// The scopes to re-authorize with after a 403 while connecting: only under `--step-up
/// auto` — the console that would answer an `ask` is not open yet, so there the denial
/// stands (and is reported) as under `never`.
pub(crate) fn step_up_scopes(tokens: &TokenManager, granted: &ScopeSet, required: &ScopeSet) -> Option<ScopeSet> {
    let login = tokens.login().filter(|l| l.step_up() == StepUp::Auto)?;
    let union = step_up_union(login, granted, required)?;
    login.note_step_up(required, &union);
    Some(union)
}

fn denied(
    side: DenialSide,
    required: ScopeSet,
    granted: ScopeSet,
    server_answer: Option<(u16, String)>,
) -> CallOutcome {
    let (status, www_authenticate) = match server_answer {
        Some((s, w)) => (Some(s), Some(w)),
        None => (None, None),
    };
    let missing = granted.missing(&required);
    CallOutcome::Denied { side, required, granted, missing, status, www_authenticate }
}

/// A call with side effects whose request may have reached the server before the failure:
/// it may or may not have run. Says so, and how to repeat it safely.
fn outcome_unknown(what: &str, idempotency_key: Option<&str>) -> CallOutcome {
    let repeat = match idempotency_key {
        Some(k) => format!(
            "check before repeating it, or repeat it with idempotency_key \"{k}\" (the server then returns the same result instead of running it twice)"
        ),
        None => "check on the server before repeating it".to_string(),
    };
    failed(
        FailureClass::OutcomeUnknown,
        &format!(
            "outcome unknown: {what}; the call may have run on the server and is not repeated automatically; {repeat}"
        ),
    )
}

fn failed(class: FailureClass, message: &str) -> CallOutcome {
    CallOutcome::Failed { class, message: message.to_string() }
}

fn outcome_of(result: rmcp::model::CallToolResult) -> CallOutcome {
    let text: String =
        result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect::<Vec<_>>().join("\n");
    if result.is_error == Some(true) {
        CallOutcome::ToolError { message: text, structured: result.structured_content }
    } else {
        CallOutcome::Success { structured: result.structured_content, text }
    }
}

/// Arguments are not logged by default; a digest lets the audit trail correlate calls.
pub fn args_digest(args: &Map<String, Value>) -> String {
    Fingerprint::of(super::session::canonical_json(&Value::Object(args.clone())).as_bytes()).to_string()
}

/// A random duration in `[0, max)`, so clients rate-limited together do not retry in lockstep.
fn jitter(max: Duration) -> Duration {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::SystemRandom::new().fill(&mut b);
    let frac = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    max.mul_f64(frac.min(0.999))
}
