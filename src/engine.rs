//! Evaluates one compiled ruleset against one request: file order, guards, first refusal wins,
//! `action: approve` short-circuits, shadow rules only observe, the deadline always holds.
//!
//! # Shadow rules never decide
//!
//! A `mode: shadow` rule is evaluated and its outcome recorded (`shadow_reject`, or `error`
//! when its check could not complete), but it never refuses, never approves, is never the
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
//!   [`script::MAX_RUN_TIME`]; past the cut-off that is nothing, so only an evaluation of a
//!   few dozen operations completes;
//! - a non-GET `fetch` or a `forward` (calls with side effects) reached after the cut-off is
//!   not started at all, while a GET fetch, started when the request arrived, is still read
//!   if its answer is already in.
//!
//! A check cut off this way is an `error` shadow outcome, traced as `"shadow rule cut off to
//! keep the deadline for enforced rules (shadow rules may use only the first 250ms of the
//! 500ms deadline)"` (a script's as `"… script stopped after N ms (shadow rule cut off to keep
//! the deadline for enforced rules)"`); a cut-off fetch records nothing in `fetched`. So
//! whatever their upstreams do, a shadow rule reached with more than half the deadline left
//! ends with at least half left, and one reached later waits for nothing: shadow rules never
//! take from the enforced rules after them more than what is left beyond half the deadline.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rhai::{Dynamic, Map};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::decision::{Decision, Outcome, RuleTrace, ShadowOutcome, UpstreamAnswer};
use crate::payload::ConfirmRequest;
use crate::rules::{
    BodyTemplate, Check, Expr, Fetch, Health, HttpMethod, Mode, OnError, Rule, Ruleset, Settings,
};
use crate::script::{self, RequestScope, ScriptEngine, ScriptVerdict, TimeLeft};
use crate::upstream::{HttpCall, UpstreamError, UpstreamResponse, Upstreams};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The original request, passed on unchanged by `forward`.
#[derive(Debug, Clone, Default)]
pub struct Original {
    pub body: Bytes,
    pub content_type: Option<http::HeaderValue>,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` as received.
    pub webhook_headers: Vec<(http::HeaderName, http::HeaderValue)>,
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
}

/// What one rule's check concluded.
enum Verdict {
    Pass,
    Refuse(String),
    Approve,
    Error(String),
}

/// When the answer to a request that arrived at `started` must be ready: the ruleset's
/// deadline less a margin of 2% (at most 10 ms), so that the answer, written after the
/// decision, leaves before the deadline rather than a timer tick after it.
pub fn answer_by(settings: &Settings, started: tokio::time::Instant) -> tokio::time::Instant {
    let margin = (settings.deadline / 50).min(std::time::Duration::from_millis(10));
    started + settings.deadline - margin
}

/// Evaluates `ruleset` for `req`. Always returns within the ruleset's deadline.
pub async fn evaluate(ruleset: &Ruleset, req: &ConfirmRequest, ctx: &Context<'_>) -> Decision {
    let deadline = answer_by(&ruleset.settings, ctx.started);
    let mut run = Run {
        ruleset,
        req,
        ctx,
        deadline,
        shadow_until: ctx.started + ruleset.settings.deadline / 2,
        trace: Vec::with_capacity(ruleset.rules.len()),
        shadow: Vec::new(),
        current: None,
        answer: None,
    };
    // Waiting for an upstream, the timer ends the evaluation; Rhai runs without yielding, so
    // between rules and after a failed check the evaluation looks at the clock itself (`None`).
    let mut decision = match tokio::time::timeout_at(deadline, run.rules()).await {
        Ok(Some(d)) => d,
        Ok(None) | Err(_) => run.timed_out(),
    };
    decision.trace = run.trace;
    decision.shadow = run.shadow;
    decision
}

struct Run<'a, 'c> {
    ruleset: &'a Ruleset,
    req: &'a ConfirmRequest,
    ctx: &'a Context<'c>,
    /// When the answer is due. Rhai runs synchronously, where the timer cannot interrupt it,
    /// so each evaluation is given what is left of this (at most `script::MAX_RUN_TIME`).
    deadline: tokio::time::Instant,
    /// The shadow cut-off: arrival + half the deadline. Shadow rules' checks end by then (see
    /// the module documentation).
    shadow_until: tokio::time::Instant,
    trace: Vec<RuleTrace>,
    shadow: Vec<ShadowOutcome>,
    /// The index of the rule being evaluated and when it started, so a deadline can name it.
    current: Option<(usize, Instant)>,
    /// The upstream answer the current rule read, for its trace.
    answer: Option<UpstreamAnswer>,
}

/// Background GET fetches, aborted if the evaluation ends before their rule is reached. Empty
/// (no allocation) when the ruleset has none; otherwise one slot per rule.
struct Prefetches(Vec<Option<JoinHandle<Result<UpstreamResponse, UpstreamError>>>>);

impl Drop for Prefetches {
    fn drop(&mut self) {
        for handle in self.0.iter().flatten() {
            handle.abort();
        }
    }
}

impl Run<'_, '_> {
    /// The decision, or `None` when the deadline passed first (then [`Self::timed_out`]
    /// decides, with `current` naming the rule it caught).
    async fn rules(&mut self) -> Option<Decision> {
        let settings = &self.ruleset.settings;
        let mut prefetches = self.start_prefetches();
        let mut scope = if self.ruleset.uses_rhai {
            RequestScope::new(self.req, self.ctx.now, self.ruleset.uses_payload)
        } else {
            RequestScope::empty()
        };
        // One clock read per rule: a rule's end is the next rule's start.
        let mut started = Instant::now();
        for (i, rule) in self.ruleset.rules.iter().enumerate() {
            if rule.mode == Mode::Off {
                continue;
            }
            self.current = Some((i, started));
            // Rhai never yields to the deadline's timer, so a rule that runs it first looks at
            // the clock; the other checks take nanoseconds (or await, where the timer ends them).
            if rule.uses_rhai() && tokio::time::Instant::now() >= self.deadline {
                return None;
            }
            let verdict = match self.guard(rule, &mut scope) {
                Ok(true) => {
                    // The handle stays in `prefetches` so a deadline cancels the call being
                    // awaited too (dropping a JoinHandle would only detach it).
                    let prefetched = prefetches.0.get_mut(i).and_then(Option::as_mut);
                    let (verdict, answer) = self.check(rule, &mut scope, prefetched).await;
                    self.answer = answer;
                    verdict
                }
                Ok(false) => {
                    started = self.record(rule, Outcome::Skipped, started, None, None);
                    continue;
                }
                Err(e) => Verdict::Error(format!("when: {e}")),
            };
            self.current = None;
            let shadow = rule.mode == Mode::Shadow;
            started = match verdict {
                Verdict::Pass => self.record(rule, Outcome::Pass, started, None, None),
                Verdict::Approve if shadow => self.record(rule, Outcome::Pass, started, None, None),
                Verdict::Approve => {
                    self.record(rule, Outcome::Approve, started, None, None);
                    return Some(Decision::approve(Some(rule.name.clone())));
                }
                Verdict::Refuse(reason) if shadow => {
                    self.shadow.push(ShadowOutcome {
                        rule: rule.name.clone(),
                        outcome: Outcome::Reject,
                        reason: Some(reason.clone()),
                    });
                    self.record(rule, Outcome::ShadowReject, started, Some(reason), None)
                }
                Verdict::Refuse(reason) => {
                    self.record(rule, Outcome::Reject, started, Some(reason.clone()), None);
                    return Some(Decision::reject(
                        settings.reject_status,
                        reason,
                        Some(rule.name.clone()),
                    ));
                }
                Verdict::Error(cause) => {
                    tracing::warn!(ruleset = %self.ruleset.name, rule = %rule.name, error = %cause, "rule check failed");
                    let ended =
                        self.record(rule, Outcome::Error, started, None, Some(cause.clone()));
                    if shadow {
                        self.shadow.push(ShadowOutcome {
                            rule: rule.name.clone(),
                            outcome: Outcome::Error,
                            reason: None,
                        });
                    } else if tokio::time::Instant::now() >= self.deadline {
                        // A check stopped by the deadline (Rhai given no time left) is the
                        // deadline's business, not the rule's own `on_error`.
                        return Some(self.past_deadline(Some(rule)));
                    } else if rule.on_error.unwrap_or(settings.on_error) == OnError::Reject {
                        return Some(Decision::reject(
                            settings.reject_status,
                            settings.error_reason.clone(),
                            Some(rule.name.clone()),
                        ));
                    }
                    ended
                }
            };
        }
        Some(Decision::approve(None))
    }

    /// The deadline passed while `current` was being evaluated (or about to be): it is traced
    /// as an error, whatever was in flight (an upstream call, a prefetch) is dropped and
    /// cancelled, and the ruleset's `on_error` decides.
    fn timed_out(&mut self) -> Decision {
        let rule = self
            .current
            .take()
            .map(|(i, started)| (&self.ruleset.rules[i], started));
        if let Some((rule, started)) = rule {
            self.trace.push(RuleTrace {
                rule: rule.name.clone(),
                outcome: Outcome::Error,
                ms: millis(started.elapsed()),
                reason: None,
                upstream: None,
                error: Some(format!(
                    "deadline of {:?} exceeded",
                    self.ruleset.settings.deadline
                )),
            });
            // Shadow rules end by the shadow cut-off, before the deadline; should one still
            // be running, it is not the deciding rule either.
            if rule.mode == Mode::Shadow {
                self.shadow.push(ShadowOutcome {
                    rule: rule.name.clone(),
                    outcome: Outcome::Error,
                    reason: None,
                });
            }
        }
        self.past_deadline(rule.map(|(rule, _)| rule))
    }

    /// The ruleset's `on_error` decision once the deadline has passed, naming `rule` unless it
    /// is a shadow rule.
    fn past_deadline(&self, rule: Option<&Rule>) -> Decision {
        let settings = &self.ruleset.settings;
        let name = rule
            .filter(|rule| rule.mode != Mode::Shadow)
            .map(|rule| rule.name.clone());
        match settings.on_error {
            OnError::Approve => Decision::approve(name),
            OnError::Reject => {
                Decision::reject(settings.reject_status, settings.error_reason.clone(), name)
            }
        }
    }

    /// Traces one rule; returns when it ended.
    fn record(
        &mut self,
        rule: &Rule,
        outcome: Outcome,
        started: Instant,
        reason: Option<String>,
        error: Option<String>,
    ) -> Instant {
        let ended = Instant::now();
        self.trace.push(RuleTrace {
            rule: rule.name.clone(),
            outcome,
            upstream: self.answer.take(),
            ms: millis(ended.saturating_duration_since(started)),
            reason,
            error,
        });
        ended
    }

    fn guard(&self, rule: &Rule, scope: &mut RequestScope) -> Result<bool, script::ScriptError> {
        match &rule.when {
            Some(when) => self.test(rule, when, scope, None),
            None => Ok(true),
        }
    }

    /// An expression of `rule`: natively when it has that form, else through Rhai (with
    /// `response` in scope for a fetch's `require`).
    fn test(
        &self,
        rule: &Rule,
        expr: &Expr,
        scope: &mut RequestScope,
        response: Option<Dynamic>,
    ) -> Result<bool, script::ScriptError> {
        match &expr.native {
            Some(native) => Ok(native.eval(self.req)),
            None => self
                .ctx
                .scripts
                .eval_bool(scope, &expr.ast, response, self.time_left(rule)),
        }
    }

    /// The most a Rhai evaluation of `rule` may take: what is left of the deadline, or for a
    /// shadow rule what is left before the shadow cut-off.
    fn time_left(&self, rule: &Rule) -> TimeLeft {
        let now = tokio::time::Instant::now();
        if rule.mode == Mode::Shadow {
            TimeLeft::ShadowCutoff(self.shadow_until.saturating_duration_since(now))
        } else {
            TimeLeft::Deadline(self.deadline.saturating_duration_since(now))
        }
    }

    /// Awaits `call` for `rule`: to the end for an enforced rule (the deadline bounds it), until
    /// the shadow cut-off for a shadow rule (`None` if it is not done by then).
    async fn wait<F: std::future::Future>(&self, rule: &Rule, call: F) -> Option<F::Output> {
        if rule.mode == Mode::Shadow {
            // Polls `call` first: an answer already in is taken even past the cut-off.
            tokio::time::timeout_at(self.shadow_until, call).await.ok()
        } else {
            Some(call.await)
        }
    }

    /// Whether `rule` is a shadow rule reached after the shadow cut-off: it starts no call.
    fn past_shadow_cutoff(&self, rule: &Rule) -> bool {
        rule.mode == Mode::Shadow && tokio::time::Instant::now() >= self.shadow_until
    }

    /// The error of a shadow rule cut off at the shadow cut-off.
    fn cut_off(&self) -> Verdict {
        let deadline = self.ruleset.settings.deadline;
        Verdict::Error(format!(
            "shadow rule cut off to keep the deadline for enforced rules (shadow rules may use only the first {:?} of the {deadline:?} deadline)",
            deadline / 2
        ))
    }

    /// GET fetches have no side effects, so they start now and run while earlier rules are
    /// evaluated; a request costs about its slowest check, not the sum.
    fn start_prefetches(&self) -> Prefetches {
        let is_prefetch = |rule: &Rule| {
            matches!(&rule.check, Check::Fetch(f) if f.method == HttpMethod::GET)
                && rule.mode != Mode::Off
        };
        if !self.ruleset.rules.iter().any(is_prefetch) {
            return Prefetches(Vec::new());
        }
        Prefetches(
            self.ruleset
                .rules
                .iter()
                .map(|rule| match &rule.check {
                    // A call that cannot be made is an error when its rule is reached.
                    Check::Fetch(f) if is_prefetch(rule) => {
                        fetch_call(f, self.req).ok().map(|call| {
                            tokio::spawn(self.ctx.upstreams.call(f.upstream.clone(), call))
                        })
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    async fn check(
        &self,
        rule: &Rule,
        scope: &mut RequestScope,
        prefetched: Option<&mut JoinHandle<Result<UpstreamResponse, UpstreamError>>>,
    ) -> (Verdict, Option<UpstreamAnswer>) {
        let reason = || rule.reason.render(self.req, None);
        let verdict = match &rule.check {
            Check::Approve => Verdict::Approve,
            Check::Amount { min, max } => {
                let amount = self.req.amount.value();
                let ok = min.is_none_or(|m| amount >= m) && max.is_none_or(|m| amount <= m);
                if ok {
                    Verdict::Pass
                } else {
                    Verdict::Refuse(reason())
                }
            }
            Check::Window { from, until } => {
                let now = self.ctx.now;
                let ok = from.is_none_or(|f| now >= f) && until.is_none_or(|u| now < u);
                if ok {
                    Verdict::Pass
                } else {
                    Verdict::Refuse(reason())
                }
            }
            Check::Require(expr) => match self.test(rule, expr, scope, None) {
                Ok(true) => Verdict::Pass,
                Ok(false) => Verdict::Refuse(reason()),
                Err(e) => Verdict::Error(format!("require: {e}")),
            },
            Check::Script { path, ast } => {
                match self
                    .ctx
                    .scripts
                    .eval_script(scope, ast, self.time_left(rule))
                {
                    Ok(ScriptVerdict::Pass) => Verdict::Pass,
                    Ok(ScriptVerdict::Refuse(None)) => Verdict::Refuse(reason()),
                    Ok(ScriptVerdict::Refuse(Some(r))) => Verdict::Refuse(r),
                    Err(e) => Verdict::Error(format!("{path}: {e}")),
                }
            }
            Check::Healthy(up) => match self.ctx.upstreams.health(up) {
                Health::Up => Verdict::Pass,
                Health::Down => Verdict::Refuse(reason()),
                Health::Unknown => Verdict::Error(format!(
                    "health of upstream \"{}\" is not known yet",
                    up.name
                )),
            },
            Check::Fetch(f) => {
                let result = match prefetched {
                    Some(handle) => match self.wait(rule, handle).await {
                        Some(joined) => joined.unwrap_or_else(|e| {
                            Err(UpstreamError::Other(format!("fetch task ended: {e}")))
                        }),
                        None => return (self.cut_off(), None),
                    },
                    None if self.past_shadow_cutoff(rule) => return (self.cut_off(), None),
                    None => {
                        let call = match fetch_call(f, self.req) {
                            Ok(call) => self.ctx.upstreams.call(f.upstream.clone(), call),
                            Err(e) => return (Verdict::Error(e), None),
                        };
                        match self.wait(rule, call).await {
                            Some(result) => result,
                            None => return (self.cut_off(), None),
                        }
                    }
                };
                let answer = result.as_ref().ok().map(UpstreamAnswer::from);
                return (self.fetched(rule, f, scope, result), answer);
            }
            Check::Forward(_) if self.past_shadow_cutoff(rule) => return (self.cut_off(), None),
            Check::Forward(fw) => {
                let mut headers = http::HeaderMap::new();
                let ct = self
                    .ctx
                    .original
                    .content_type
                    .clone()
                    .unwrap_or(http::HeaderValue::from_static("application/json"));
                headers.insert(http::header::CONTENT_TYPE, ct);
                for (k, v) in &self.ctx.original.webhook_headers {
                    headers.insert(k.clone(), v.clone());
                }
                let call = HttpCall {
                    method: http::Method::POST,
                    path_and_query: fw.path.clone(),
                    headers,
                    body: Some(self.ctx.original.body.clone()),
                };
                let call = self.ctx.upstreams.call(fw.upstream.clone(), call);
                let Some(result) = self.wait(rule, call).await else {
                    return (self.cut_off(), None);
                };
                let answer = result.as_ref().ok().map(UpstreamAnswer::from);
                let verdict = match result {
                    Ok(r) if r.status == 200 => Verdict::Pass,
                    Ok(r) => Verdict::Refuse(merchant_reason(&r.body).unwrap_or_else(reason)),
                    Err(e) => Verdict::Error(format!("forward to {}: {e}", fw.upstream.name)),
                };
                return (verdict, answer);
            }
        };
        (verdict, None)
    }

    /// Applies a fetch result: records it in `fetched`, then `require` (or the status) decides.
    fn fetched(
        &self,
        rule: &Rule,
        f: &Fetch,
        scope: &mut RequestScope,
        result: Result<UpstreamResponse, UpstreamError>,
    ) -> Verdict {
        let resp = match result {
            Ok(r) => r,
            Err(e) => return Verdict::Error(format!("fetch from {}: {e}", f.upstream.name)),
        };
        let response = scope.set_fetched(&rule.name, response_dynamic(&resp));
        let reason = || rule.reason.render(self.req, Some(&resp.body));
        match &f.require {
            Some(expr) => match self.test(rule, expr, scope, Some(response)) {
                Ok(true) => Verdict::Pass,
                Ok(false) => Verdict::Refuse(reason()),
                Err(e) => Verdict::Error(format!(
                    "require on the answer of {} (status {}): {e}",
                    f.upstream.name, resp.status
                )),
            },
            None => match resp.status {
                200..=299 => Verdict::Pass,
                500.. => Verdict::Error(format!("{} answered {}", f.upstream.name, resp.status)),
                _ => Verdict::Refuse(reason()),
            },
        }
    }
}

/// The call a fetch rule makes for `req`, or why it cannot be made. Rule tests use it too, to
/// tell canned answers no rule asks for.
pub fn fetch_call(f: &Fetch, req: &ConfirmRequest) -> Result<HttpCall, String> {
    let mut path_and_query = f.path.render_escaped(req, None, |s| {
        Cow::Owned(utf8_percent_encode(s, PATH_SEGMENT).to_string())
    });
    // A `.` or `..` segment would be resolved by the URL parser, so an order id of ".."
    // would choose another endpoint at the merchant; escaping cannot help, as `%2e%2e` is a
    // dot segment too.
    if let Some(segment) = path_and_query
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split('/')
        .find(|s| is_dot_segment(s))
    {
        return Err(format!(
            "fetch path \"{path_and_query}\" has the segment \"{segment}\", which would leave the path the rule names; not sent"
        ));
    }
    if !f.query.is_empty() {
        let pairs: Vec<(&str, String)> = f
            .query
            .iter()
            .map(|(k, t)| (k.as_str(), t.render(req, None)))
            .collect();
        path_and_query.push(if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        });
        path_and_query.push_str(&serde_urlencoded::to_string(pairs).unwrap_or_default());
    }
    let mut headers = http::HeaderMap::new();
    for (name, t) in &f.headers {
        // A header value a request field made invalid (a newline, say) is left out rather
        // than sent broken; the upstream then decides without it.
        if let Ok(v) = http::HeaderValue::from_str(&t.render(req, None)) {
            headers.insert(name.clone(), v);
        }
    }
    let body = f.body.as_ref().map(|b| {
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Bytes::from(render_body(b, req).to_string())
    });
    let method = match f.method {
        HttpMethod::GET => http::Method::GET,
        HttpMethod::POST => http::Method::POST,
        HttpMethod::PUT => http::Method::PUT,
    };
    Ok(HttpCall {
        method,
        path_and_query,
        headers,
        body,
    })
}

/// `.` or `..`, also percent-encoded, which URL parsers resolve (WHATWG URL, RFC 3986 §5.2.4).
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while let Some(&first) = rest.first() {
        rest = if first == b'.' {
            &rest[1..]
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            &rest[3..]
        } else {
            return false;
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

fn render_body(b: &BodyTemplate, req: &ConfirmRequest) -> Value {
    match b {
        BodyTemplate::Value(v) => v.clone(),
        BodyTemplate::Text(t) => Value::String(t.render(req, None)),
        BodyTemplate::Array(items) => {
            Value::Array(items.iter().map(|i| render_body(i, req)).collect())
        }
        BodyTemplate::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), render_body(v, req)))
                .collect(),
        ),
    }
}

/// The merchant's own reason from a refusing confirm handler (`reason` for V1 style,
/// `errorMessage` for V2 style).
fn merchant_reason(body: &Value) -> Option<String> {
    ["reason", "errorMessage"]
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn response_dynamic(r: &UpstreamResponse) -> Dynamic {
    let mut map = Map::new();
    map.insert("status".into(), Dynamic::from_int(i64::from(r.status)));
    let headers: Map = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.clone().into()))
        .collect();
    map.insert("headers".into(), Dynamic::from_map(headers));
    map.insert("body".into(), script::json_to_dynamic(&r.body));
    Dynamic::from_map(map)
}

fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests;
