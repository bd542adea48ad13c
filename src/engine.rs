//! Evaluates one compiled ruleset against one request: file order, guards, first refusal wins,
//! `action: approve` short-circuits, shadow rules only observe, the deadline always holds.
//!
//! # Shadow rules never decide
//!
//! A `mode: shadow` rule is evaluated and its outcome traced and counted (`shadow_reject`,
//! `shadow_approve`, or `shadow_error` when its check could not complete; the decision record's
//! `shadow` list says what it would have done: `reject`, `approve`, `error`), but it never refuses, never approves, is never the
//! deciding rule, and never decides through `on_error` (its own or the ruleset's): an erring
//! shadow rule is an `error` shadow outcome and evaluation goes on with the next rule.
//!
//! Nor can it use up the deadline. **Shadow rules may use only the first half of the
//! deadline**: the shadow cut-off is the request's arrival plus half of `settings.deadline`
//! (250 ms of a 500 ms deadline), and a shadow rule's check ends by then at the latest:
//!
//! - waiting for its upstream (a `fetch`, prefetched or not, or a `forward`) stops at the
//!   cut-off (sooner if the upstream's `timeout` ends the call first);
//! - its Rhai (`when`, `require`, `script`) gets what is left before the cut-off, at most
//!   [`script::MAX_RUN_TIME`](crate::script::MAX_RUN_TIME); past the cut-off that is
//!   nothing, so only an evaluation of a few dozen operations completes;
//! - a non-GET `fetch` or a `forward` (calls with side effects) reached after the cut-off is
//!   not started at all, while a GET fetch, started early (see the `calls` module), is still
//!   read if its answer is already in.
//!
//! A check cut off this way is an `error` shadow outcome, traced as `"shadow rule cut off to
//! keep the deadline for enforced rules (shadow rules may use only the first 250ms of the
//! 500ms deadline)"` (a script's as `"… script stopped after N ms (shadow rule cut off to keep
//! the deadline for enforced rules)"`); a cut-off fetch records nothing in `fetched`. So
//! whatever their upstreams do, a shadow rule reached with more than half the deadline left
//! ends with at least half left, and one reached later waits for nothing: shadow rules never
//! take from the enforced rules after them more than what is left beyond half the deadline.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use crate::decision::{Decision, Outcome, RuleTrace, ShadowOutcome};
use crate::payload::ConfirmRequest;
use crate::rules::{Mode, OnError, Rule, Ruleset, Settings};
use crate::script::{RequestScope, ScriptEngine};
use crate::upstream::Upstreams;

mod calls;
mod check;

/// Why a shadow rule ended as an error at the shadow cut-off; each place that cuts one off
/// adds what was cut short.
pub(crate) const SHADOW_CUT_OFF: &str =
    "shadow rule cut off to keep the deadline for enforced rules";

pub use calls::fetch_call;
use check::{Called, Checked, Failure};

/// The original request, passed on unchanged by `forward`.
#[derive(Debug, Clone, Default)]
pub struct Original {
    pub body: Bytes,
    pub content_type: Option<http::HeaderValue>,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` as received.
    pub webhook_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Original {
    /// A body and its content type, without webhook headers. An empty content type was read
    /// as none, and is forwarded as none.
    pub fn new(body: impl Into<Bytes>, content_type: Option<&http::HeaderValue>) -> Original {
        Original {
            body: body.into(),
            content_type: content_type
                .filter(|ct| !ct.as_bytes().trim_ascii().is_empty())
                .cloned(),
            webhook_headers: Vec::new(),
        }
    }

    /// A request as the server received it, with its `webhook-*` headers.
    pub fn received(body: Bytes, headers: &http::HeaderMap) -> Original {
        Original {
            webhook_headers: headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Original::new(body, headers.get(http::header::CONTENT_TYPE))
        }
    }
}

/// Everything an evaluation needs besides the rules and the request.
pub struct Context<'a> {
    pub scripts: &'a ScriptEngine,
    pub upstreams: Arc<dyn Upstreams>,
    /// The evaluation time (`now` in Rhai; window checks).
    pub now: DateTime<FixedOffset>,
    /// When the request arrived; the deadline counts from here.
    pub started: tokio::time::Instant,
    pub original: &'a Original,
    /// The id the answer will carry, for the log lines of this evaluation; `None` outside
    /// `serve` (`eval`, rule tests, replay), where nothing is logged: their output is the trace,
    /// and a rule test's expected failure must not read as a live request's.
    pub decision_id: Option<&'a str>,
    /// Where the calls that may change something at the merchant are noted as they go out,
    /// for the server to name should it answer at the deadline without the evaluation
    /// ([`overran`]); `None` where nothing answers for the evaluation.
    pub sent: Option<&'a SentCalls>,
}

/// The calls with side effects (a `forward`, a POST or PUT fetch) an evaluation has sent, with
/// their rules. Should the server answer at the deadline while the evaluation still runs
/// ([`overran`]), its record names them: a payment refused after its reservation went out may
/// hold one at the merchant, which a trial's operator could not tell from the record.
#[derive(Default)]
pub struct SentCalls(std::sync::Mutex<Vec<(Arc<str>, crate::decision::CallMade)>>);

impl SentCalls {
    fn push(&self, rule: Arc<str>, call: crate::decision::CallMade) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((rule, call));
    }

    /// The rules and the calls they sent, in order.
    pub fn take(&self) -> Vec<(Arc<str>, crate::decision::CallMade)> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// When the answer to a request that arrived at `started` must be ready: the ruleset's
/// deadline less a margin of 2% (at least 5 ms, or half of a deadline shorter than 10 ms; at
/// most 50 ms), so that the answer, written after the decision, leaves before the deadline
/// rather than a timer tick after it. The floor covers a busy moment between the decision and
/// the answer (about 1.5 ms measured on a loaded 2-CPU machine) and one operation of a script
/// that cannot be interrupted (sorting a list of 9,000 took up to 3.5 ms), either of which
/// would otherwise carry a short deadline's answer past it. The 2% covers a machine whose CPUs
/// are saturated, where timers fire late: with 64 clients' processes on 2 CPUs, answers due at
/// 1,990 ms of a 2 s deadline left at up to 2,046 ms.
pub fn answer_by(settings: &Settings, started: tokio::time::Instant) -> tokio::time::Instant {
    use std::time::Duration;
    let deadline = settings.deadline;
    let floor = Duration::from_millis(5).min(deadline / 2);
    let margin = (deadline / 50).max(floor).min(Duration::from_millis(50));
    started + deadline - margin
}

/// When the server answers for an evaluation still running (see [`overran`]): half-way
/// through the margin [`answer_by`] leaves, so an evaluation that keeps its deadline always
/// answers first, and the answer still leaves before the deadline.
pub fn answer_at_latest(
    settings: &Settings,
    started: tokio::time::Instant,
) -> tokio::time::Instant {
    let by = answer_by(settings, started);
    by + (started + settings.deadline - by) / 2
}

/// The decision for an evaluation still running when its answer was due: held past its own
/// deadline in work the timer cannot interrupt (a megabyte answer parsed or freed). The
/// ruleset's `on_error` decides, as for any check that could not complete.
pub fn overran(
    settings: &Settings,
    req: &ConfirmRequest,
    took: std::time::Duration,
    sent: Vec<(Arc<str>, crate::decision::CallMade)>,
) -> Decision {
    let mut decision = on_error(settings, req, None);
    let sent: Vec<String> = sent
        .iter()
        .map(|(rule, call)| {
            format!(
                "rule {rule} sent {} {} to {}",
                call.method, call.path, call.upstream
            )
        })
        .collect();
    let after = if sent.is_empty() {
        String::new()
    } else {
        format!(
            ", after {} (the merchant may have acted on it)",
            sent.join(", ")
        )
    };
    decision.trace.push(evaluation_error(
        took,
        capped_error(format!(
            "still running at the deadline of {:?}{after}: answered by on_error",
            settings.deadline
        )),
    ));
    decision
}

/// Whether a decision the evaluation reached only after its answer was due stands: a refusal
/// does — a rule refused, or a check failed and `on_error` refused — as the first refusal
/// decides whenever it comes (`on_error: approve` must not turn it into an approval); an
/// approval does not (see [`decided_late`]).
pub fn stands_late(late: &Decision) -> bool {
    late.decision == crate::decision::Verdict::Reject
}

/// The decision for an evaluation that approved only after its answer was due: held up
/// between its checks (every CPU busy, its timers late), too late to stand, so the ruleset's
/// `on_error` decides, as when the evaluation is still running then. The trace keeps what the
/// rules did. (A late refusal stands: [`stands_late`].)
pub fn decided_late(
    settings: &Settings,
    req: &ConfirmRequest,
    late: Decision,
    took: std::time::Duration,
) -> Decision {
    let mut decision = on_error(settings, req, None);
    decision.trace = late.trace;
    decision.shadow = late.shadow;
    decision.unused_fetches = late.unused_fetches;
    decision.trace.push(evaluation_error(
        took,
        format!(
            "decided ({}) only after the answer was due, near the deadline of {:?}: answered by on_error",
            late.decision.as_str(),
            settings.deadline
        ),
    ));
    decision
}

/// The trace entry's rule name when the evaluation as a whole, not one rule, ended in error:
/// still running, or decided, when its answer was due.
pub const EVALUATION: &str = "(evaluation)";

/// How a trace's error begins for a rule the deadline kept from running: a check not run, or a
/// call that may change something at the merchant not sent. `replay` reads them back from the
/// decision log to decide such a record by `on_error`, as `serve` did.
pub const NOT_RUN: &str = "not run: reached";
pub const NOT_SENT: &str = "not sent: reached";

/// How the `(evaluation)` entry's error begins for an evaluation that ended without an answer
/// (it panicked: a bug), which refused the payment whatever `on_error` says; `replay` reads it
/// back to refuse again rather than take it for the deadline's.
pub const ENDED_WITHOUT_ANSWER: &str = "ended without an answer";

/// The decision for an evaluation that ended without one (it panicked: a bug in the proxy):
/// refused with the ruleset's `error_reason`, never approved, even under `on_error: approve`,
/// which is for checks that could not complete, not for the proxy's own fault.
pub fn ended_without_answer(
    settings: &Settings,
    req: &ConfirmRequest,
    took: std::time::Duration,
) -> Decision {
    let mut decision = error_refusal(settings, req, None);
    decision.trace.push(evaluation_error(
        took,
        format!(
            "{ENDED_WITHOUT_ANSWER} (a bug, logged as an error): refused whatever on_error says"
        ),
    ));
    decision
}

fn evaluation_error(took: std::time::Duration, error: String) -> RuleTrace {
    RuleTrace {
        rule: EVALUATION.into(),
        outcome: Outcome::Error,
        ms: millis(took),
        reason: None,
        call: None,
        probe: None,
        probe_failure: None,
        upstream: None,
        error: Some(error),
        deadline: false,
        faulted: false,
    }
}

/// The ruleset's `on_error` decision for a request whose checks could not complete, naming
/// `rule` when one decided.
pub fn on_error(settings: &Settings, req: &ConfirmRequest, rule: Option<Arc<str>>) -> Decision {
    match settings.on_error {
        OnError::Approve => Decision::approve(rule),
        OnError::Reject => error_refusal(settings, req, rule),
    }
}

/// The refusal of a request whose check could not complete (`on_error: reject`), naming
/// `rule` when one decided.
pub fn error_refusal(
    settings: &Settings,
    req: &ConfirmRequest,
    rule: Option<Arc<str>>,
) -> Decision {
    Decision::reject(
        settings.reject_status,
        settings.error_reason.render_reason(req, None),
        rule,
    )
}

/// Evaluates `ruleset` for `req`. Every wait (an upstream, a script's turn) ends at the
/// ruleset's deadline, but work between waits that the timer cannot interrupt (a megabyte
/// answer parsed, a script at its operation limit) can run past it: the server therefore
/// answers at the deadline itself ([`overran`], [`decided_late`]) rather than trusting this
/// future to be done by then.
pub async fn evaluate(ruleset: &Ruleset, req: &ConfirmRequest, ctx: &Context<'_>) -> Decision {
    let deadline = answer_by(&ruleset.settings, ctx.started);
    evaluate_by(ruleset, req, ctx, deadline, false).await
}

/// Evaluates `ruleset` for `req` as if its answer were due already: `serve` is shutting down,
/// and the answer would be due after the grace period, so there is no time to wait for
/// anything. The checks that take nanoseconds (amounts, windows, health, ids) decide as ever,
/// and the first rule that would run Rhai or make a call is not run, the ruleset's `on_error`
/// deciding there. Nothing is sent and nothing waits.
pub async fn evaluate_at_shutdown(
    ruleset: &Ruleset,
    req: &ConfirmRequest,
    ctx: &Context<'_>,
) -> Decision {
    evaluate_by(ruleset, req, ctx, tokio::time::Instant::now(), true).await
}

/// [`evaluate`] with its answer due at `deadline`; `shutting_down`: for
/// [`evaluate_at_shutdown`], which traces and logs the rule it stops as such.
async fn evaluate_by(
    ruleset: &Ruleset,
    req: &ConfirmRequest,
    ctx: &Context<'_>,
    deadline: tokio::time::Instant,
    shutting_down: bool,
) -> Decision {
    // A tenth of the deadline, at most 100 ms, for a rule to read an answer and decide.
    let margin = (ruleset.settings.deadline / 10).min(std::time::Duration::from_millis(100));
    let mut run = Run {
        ruleset,
        req,
        ctx,
        deadline,
        // Never after the answer is due: a deadline under 50 ms leaves a smaller margin here
        // than `answer_by` does.
        bodies_by: (ctx.started + ruleset.settings.deadline - margin).min(deadline),
        shadow_until: ctx.started + ruleset.settings.deadline / 2,
        trace: Vec::with_capacity(ruleset.rules.len()),
        shadow: Vec::new(),
        current: None,
        shutting_down,
    };
    // Outside `run`, so that a deadline that drops the evaluation leaves them to be recorded
    // (and to name the call it cut off); small futures matter here, as every request makes one.
    let mut calls = calls::Calls::default();
    // Waiting for an upstream, the timer ends the evaluation; Rhai runs without yielding, so
    // between rules and after a failed check the evaluation looks at the clock itself.
    let mut decision = match tokio::time::timeout_at(deadline, run.rules(&mut calls)).await {
        Ok(d) => d,
        Err(_) => run.timed_out(&mut calls),
    };
    decision.trace = run.trace;
    decision.shadow = run.shadow;
    decision.unused_fetches = calls.unused(&ruleset.rules);
    decision
}

struct Run<'a, 'c> {
    ruleset: &'a Ruleset,
    req: &'a ConfirmRequest,
    ctx: &'a Context<'c>,
    /// When the answer is due. Rhai runs synchronously, where the timer cannot interrupt it,
    /// so each evaluation is given what is left of this (at most `script::MAX_RUN_TIME`).
    deadline: tokio::time::Instant,
    /// When an enforced rule's upstream answer must be in: a tenth of the deadline (at most
    /// 100 ms) before it, for the rule to decide, and never after `deadline`. A body still
    /// coming then is cut, so a status that already arrived decides (a merchant's refusal
    /// stays a refusal) rather than the deadline by `on_error`; a call that may change
    /// something at the merchant is not sent after it (the ruleset's `on_error` decides, as
    /// for the deadline itself).
    bodies_by: tokio::time::Instant,
    /// The shadow cut-off: arrival + half the deadline. Shadow rules' checks end by then (see
    /// the module documentation).
    shadow_until: tokio::time::Instant,
    trace: Vec<RuleTrace>,
    shadow: Vec<ShadowOutcome>,
    /// The index of the rule being evaluated and when it started, so a deadline can name it.
    current: Option<(usize, Instant)>,
    /// Evaluated at shutdown with its answer due at once ([`evaluate_at_shutdown`]).
    shutting_down: bool,
}

impl Run<'_, '_> {
    /// The decision. Should the deadline pass while this awaits, the caller drops it and
    /// [`Self::timed_out`] decides, with `current` naming the rule it caught.
    async fn rules(&mut self, calls: &mut calls::Calls) -> Decision {
        // Already due (the body took the whole deadline to arrive, or `serve` is shutting
        // down): nothing is started, not even a prefetch, but the checks that take nanoseconds
        // still decide (an amount cap refuses as it would have in time); the first rule that
        // would run Rhai or make a call is stopped below, for the ruleset's `on_error`.
        let due = tokio::time::Instant::now() >= self.deadline;
        let mut scope = if self.ruleset.uses_rhai {
            RequestScope::new(self.req, self.ctx.now, self.ruleset.uses_payload)
        } else {
            RequestScope::empty()
        };
        if self.ruleset.early_whens && !due {
            self.early_whens(calls, &mut scope);
        }
        self.start_prefetches(calls, 0);
        // One clock read per rule: a rule's end is the next rule's start.
        let mut started = Instant::now();
        for (i, rule) in self.ruleset.rules.iter().enumerate() {
            // The GET fetches after a call that may have changed something at the merchant
            // start once it is done (or skipped).
            if i > 0 && self.holds_back_prefetches(&calls.whens, i - 1) {
                self.start_prefetches(calls, i);
            }
            if rule.mode == Mode::Off {
                continue;
            }
            self.current = Some((i, started));
            // Rhai never yields to the deadline's timer, so a rule that runs it first looks at
            // the clock, and so does a rule whose call may change something at the merchant:
            // once the answer is due, `on_error` decides it whatever the merchant does, so such
            // a call must not go out (the timer cannot take back a request already handed to
            // a pooled connection; see also `Self::not_to_send`). The other checks take
            // nanoseconds, or await, where the timer ends them.
            if (rule.uses_rhai() || rule.has_side_effects())
                && tokio::time::Instant::now() >= self.deadline
            {
                self.current = None;
                // A `when` of the simple shapes that skips the request still does: the rule
                // would not have run in time either, and a refusing check after it must decide.
                if self.skipped_up_front(&calls.whens, i) {
                    calls.done_with(i, rule);
                    let skipped = Called::default();
                    started = self.record(rule, Outcome::Skipped, started, skipped, None, None);
                    continue;
                }
                // Not run, but traced and named with why: the decision record must say which
                // check the deadline kept from running (a `forward` the merchant never saw).
                let what = if rule.has_side_effects() {
                    NOT_SENT
                } else {
                    NOT_RUN
                };
                let cause = if self.shutting_down {
                    format!("{what} while shutting down, the answer due after the grace period")
                } else {
                    format!(
                        "{what} after the answer was due (deadline of {:?})",
                        self.ruleset.settings.deadline
                    )
                };
                match self.conclude(rule, Checked::stopped(cause), Called::default(), started) {
                    ControlFlow::Continue(ended) => {
                        started = ended;
                        continue;
                    }
                    ControlFlow::Break(decision) => return decision,
                }
            }
            let guard = match calls.whens.get(i).copied().flatten() {
                Some(known) => Ok(known),
                None => self.guard(rule, &mut scope).await,
            };
            let (verdict, answer) = match guard {
                Ok(true) => {
                    // The handle stays in its slot, so that a deadline that ends the wait
                    // cancels the call (dropping a JoinHandle would only detach it).
                    let prefetched = calls.prefetches.get_mut(i).and_then(Option::as_mut);
                    let checked = self
                        .check(rule, &mut scope, prefetched, &mut calls.sent)
                        .await;
                    calls.sent = None;
                    checked
                }
                Ok(false) => {
                    calls.done_with(i, rule);
                    self.current = None;
                    let skipped = Called::default();
                    started = self.record(rule, Outcome::Skipped, started, skipped, None, None);
                    continue;
                }
                Err(failed) => (failed, Called::default()),
            };
            calls.done_with(i, rule);
            self.current = None;
            match self.conclude(rule, verdict, answer, started) {
                ControlFlow::Continue(ended) => started = ended,
                ControlFlow::Break(decision) => return decision,
            }
        }
        Decision::approve(None)
    }

    /// Traces what `rule`'s check concluded and whether that decides the request; if it does
    /// not, evaluation goes on from when the rule ended.
    fn conclude(
        &mut self,
        rule: &Rule,
        verdict: Checked,
        answer: Called,
        started: Instant,
    ) -> ControlFlow<Decision, Instant> {
        // Stopped by the deadline (now, or as it neared), or an error once it has passed (Rhai
        // given no time left, say): the deadline's, for the ruleset's `on_error` to decide, and
        // logged as such ("failed" would send the operator to the rule).
        let stopped = match &verdict {
            Checked::Failed(Failure::Stopped, _) => true,
            // The request's own doing, refused whatever the clock or `on_error` says.
            Checked::Failed(Failure::Unsendable, _) => false,
            // A check that neither waits nor runs Rhai (`healthy` on a state not known yet)
            // fails for its own reason, whenever it runs: its rule's `on_error` decides.
            Checked::Failed(..) => {
                (rule.uses_rhai() || rule.calls_upstream())
                    && tokio::time::Instant::now() >= self.deadline
            }
            _ => false,
        };
        // The rule's own fault, unless the deadline had come (the clock stopping its Rhai is
        // `Stopped` already).
        let faulted = !stopped && matches!(&verdict, Checked::Failed(Failure::Faulted, _));
        let unsendable = matches!(&verdict, Checked::Failed(Failure::Unsendable, _));
        let verdict = match verdict {
            Checked::Failed(failure, cause) => Checked::Failed(failure, capped_error(cause)),
            verdict => verdict,
        };
        if let (Checked::Failed(_, cause), Some(id)) = (&verdict, self.ctx.decision_id) {
            if stopped && self.shutting_down {
                tracing::warn!(decision_id = id, ruleset = %self.ruleset.name, rule = %rule.name, error = %cause, "rule check not run: shutting down");
            } else if stopped {
                tracing::warn!(decision_id = id, ruleset = %self.ruleset.name, rule = %rule.name, deadline = ?self.ruleset.settings.deadline, error = %cause, "rule check stopped by the deadline");
            } else if rule.mode == Mode::Shadow {
                tracing::warn!(decision_id = id, ruleset = %self.ruleset.name, rule = %rule.name, error = %cause, "shadow rule check failed (it decides nothing)");
            } else {
                tracing::warn!(decision_id = id, ruleset = %self.ruleset.name, rule = %rule.name, error = %cause, "rule check failed");
            }
        }
        if rule.mode == Mode::Shadow {
            // Traced and counted, never deciding.
            let (traced, outcome, reason, error) = match verdict {
                Checked::Pass => {
                    let ended = self.record(rule, Outcome::Pass, started, answer, None, None);
                    return ControlFlow::Continue(ended);
                }
                Checked::Approve => (Outcome::ShadowApprove, Outcome::Approve, None, None),
                Checked::Refuse(reason) => {
                    (Outcome::ShadowReject, Outcome::Reject, Some(reason), None)
                }
                Checked::Failed(_, cause) => {
                    (Outcome::ShadowError, Outcome::Error, None, Some(cause))
                }
            };
            self.shadow_outcome(rule, outcome, reason.clone());
            let ended = self.record(rule, traced, started, answer, reason, error);
            // Never deciding, even stopped: the ruleset's `on_error` did not decide here.
            self.mark_ended_by(faulted, false);
            return ControlFlow::Continue(ended);
        }
        let settings = &self.ruleset.settings;
        match verdict {
            Checked::Pass => {
                ControlFlow::Continue(self.record(rule, Outcome::Pass, started, answer, None, None))
            }
            Checked::Approve => {
                self.record(rule, Outcome::Approve, started, answer, None, None);
                ControlFlow::Break(Decision::approve(Some(rule.name.clone())))
            }
            Checked::Refuse(reason) => {
                let traced = Some(reason.clone());
                self.record(rule, Outcome::Reject, started, answer, traced, None);
                ControlFlow::Break(Decision::reject(
                    settings.reject_status,
                    reason,
                    Some(rule.name.clone()),
                ))
            }
            Checked::Failed(_, cause) => {
                let ended = self.record(rule, Outcome::Error, started, answer, None, Some(cause));
                self.mark_ended_by(faulted, stopped);
                if stopped {
                    // A check stopped by the deadline (Rhai given no time left, an answer cut
                    // as it neared) is the deadline's business, not the rule's own `on_error`.
                    ControlFlow::Break(self.past_deadline(Some(rule)))
                } else if unsendable
                    || rule.on_error.unwrap_or(settings.on_error) == OnError::Reject
                {
                    ControlFlow::Break(error_refusal(settings, self.req, Some(rule.name.clone())))
                } else {
                    ControlFlow::Continue(ended)
                }
            }
        }
    }

    /// The deadline passed while `current` was being evaluated (or about to be): it is traced
    /// as an error (with the call it was waiting for), whatever was in flight (an upstream
    /// call, a prefetch) is dropped and cancelled, and the ruleset's `on_error` decides.
    fn timed_out(&mut self, calls: &mut calls::Calls) -> Decision {
        let rule = self
            .current
            .take()
            .map(|(i, started)| (i, &self.ruleset.rules[i], started));
        if let Some((i, rule, started)) = rule {
            calls.give_up(i);
            if let Some(id) = self.ctx.decision_id {
                tracing::warn!(decision_id = id, ruleset = %self.ruleset.name, rule = %rule.name, deadline = ?self.ruleset.settings.deadline, "rule check stopped by the deadline");
            }
            let shadow = rule.mode == Mode::Shadow;
            let outcome = if shadow {
                Outcome::ShadowError
            } else {
                Outcome::Error
            };
            let called = Called {
                call: calls.waited_for(i),
                ..Called::default()
            };
            let error = format!("deadline of {:?} exceeded", self.ruleset.settings.deadline);
            self.record(rule, outcome, started, called, None, Some(error));
            self.mark_ended_by(false, true);
            // Shadow rules end by the shadow cut-off, before the deadline; should one still
            // be running, it is not the deciding rule either.
            if shadow {
                self.shadow_outcome(rule, Outcome::Error, None);
            }
        }
        self.past_deadline(rule.map(|(_, rule, _)| rule))
    }

    /// The ruleset's `on_error` decision once the deadline has passed, naming `rule` unless it
    /// is a shadow rule.
    fn past_deadline(&self, rule: Option<&Rule>) -> Decision {
        let name = rule
            .filter(|rule| rule.mode != Mode::Shadow)
            .map(|rule| rule.name.clone());
        on_error(&self.ruleset.settings, self.req, name)
    }

    /// What shadow rule `rule` would have done, for the decision's `shadow` list.
    fn shadow_outcome(&mut self, rule: &Rule, outcome: Outcome, reason: Option<String>) {
        self.shadow.push(ShadowOutcome {
            rule: rule.name.clone(),
            outcome,
            reason,
        });
    }

    /// Marks the rule just traced as failed by its own expression or script, or as ended by
    /// the deadline.
    fn mark_ended_by(&mut self, faulted: bool, deadline: bool) {
        if let Some(t) = self.trace.last_mut() {
            t.faulted = faulted;
            t.deadline = deadline;
        }
    }

    /// Traces one rule, with the call it made and the answer it read; returns when it ended.
    fn record(
        &mut self,
        rule: &Rule,
        outcome: Outcome,
        started: Instant,
        called: Called,
        reason: Option<String>,
        error: Option<String>,
    ) -> Instant {
        let ended = Instant::now();
        self.trace.push(RuleTrace {
            rule: rule.name.clone(),
            outcome,
            call: called.call,
            probe: called.probe,
            probe_failure: called.probe_failure,
            upstream: called.answer,
            ms: millis(ended.saturating_duration_since(started)),
            reason,
            error,
            deadline: false,
            faulted: false,
        });
        ended
    }
}

/// The longest error a trace, the decision log and the log line carry, in characters.
const MAX_ERROR_CHARS: usize = 2000;

/// `cause` cut at [`MAX_ERROR_CHARS`] (with `…`): a script's `throw` or `fail` of a 64 KiB
/// string, or an upstream error quoting a huge answer, must not make each of those lines that
/// large. What an operator needs to know comes first in every error.
fn capped_error(mut cause: String) -> String {
    crate::text::cut_chars(&mut cause, MAX_ERROR_CHARS);
    cause
}

/// Milliseconds to the microsecond, as traces and the log line show them.
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
