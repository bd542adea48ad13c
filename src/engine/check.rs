//! One rule's check: its `when` guard, the check itself (amount, window, `require`, script,
//! health, fetch, forward) and what the answer of an upstream makes of it.

use super::calls::{joined, Prefetch};
use super::{fetch_call, Run};
use crate::decision::{CallMade, UpstreamAnswer};
use crate::rules::{Check, Expr, Fetch, Forward, Health, Mode, Rule, Upstream};
use crate::script::{self, RequestScope, ScriptVerdict, TimeLeft};
use crate::upstream::{HttpCall, UpstreamError, UpstreamResponse};
use rhai::{Dynamic, Map};
use serde_json::Value;

/// What a rule's upstream call leaves in its trace: the call made and the answer read.
#[derive(Default)]
pub(super) struct Called {
    pub(super) call: Option<CallMade>,
    /// A `healthy` rule's probe, and why it last failed when it found the upstream down.
    pub(super) probe: Option<CallMade>,
    pub(super) probe_failure: Option<String>,
    pub(super) answer: Option<UpstreamAnswer>,
}

impl Called {
    /// A call that was made, with what came of it when anything did.
    fn made(call: CallMade, answer: Option<UpstreamAnswer>) -> Called {
        Called {
            call: Some(call),
            answer,
            ..Called::default()
        }
    }
}

/// A fetch's call as the trace names it.
pub(super) fn fetch_made(upstream: &Upstream, call: &HttpCall) -> CallMade {
    CallMade::new(
        upstream,
        call.method.clone(),
        call.path_and_query.clone(),
        Some(call),
    )
}

/// What one rule's check concluded.
pub(super) enum Checked {
    Pass,
    Refuse(String),
    Approve,
    /// The check could not complete: whose business that is, and why (traced as an error).
    Failed(Failure, String),
}

/// Why a check could not complete, as far as deciding and tracing it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// An upstream failed, or something the rule does not control: the rule's `on_error`
    /// decides.
    Error,
    /// The rule's own expression or script failed (`when`, `require`, `script`): decided as an
    /// [`Error`](Failure::Error), and traced as the rule's fault, which rule tests tell from a
    /// failure the case set up (an upstream's).
    Faulted,
    /// The deadline was near: an upstream's answer still coming at [`Run::bodies_by`], or a
    /// call with side effects reached after it. The deadline's business: the ruleset's
    /// `on_error` decides, as when the deadline itself stops a check, never the rule's own (a
    /// hanging upstream and one trickling its answer get the same decision).
    Stopped,
    /// The request's own values made the rule's call impossible to send as written (an order
    /// id `..` in the path, a newline in a header): refused, whatever `on_error` says, since
    /// the values are the caller's to choose (a V1 `merchant_uid` is chosen in the buyer's
    /// browser), and `on_error: approve` would let them skip the check.
    Unsendable,
    /// A shadow rule reached the shadow cut-off (see the `engine` module): an error of its own,
    /// and nothing it fetched stays in `fetched`.
    CutOff,
}

impl Checked {
    pub(super) fn error(cause: String) -> Checked {
        Checked::Failed(Failure::Error, cause)
    }

    pub(super) fn stopped(cause: String) -> Checked {
        Checked::Failed(Failure::Stopped, cause)
    }
}

impl Run<'_, '_> {
    pub(super) async fn guard(
        &self,
        rule: &Rule,
        scope: &mut RequestScope,
    ) -> Result<bool, Checked> {
        match &rule.when {
            Some(when) => self
                .test(rule, when, scope, &mut None)
                .await
                .map_err(|e| own_failure(rule, &e, when.error_at("when", &e))),
            None => Ok(true),
        }
    }

    /// Evaluates, as the request arrives, the `when`s that need Rhai but depend on the request
    /// alone, where knowing them spares a call ([`Rule::when_known_early`]); each rule then
    /// takes its `when` from here rather than evaluating it again, so the call made and the
    /// rule's outcome agree. One that fails is left for its rule to meet in its turn.
    ///
    /// Only with a turn to run Rhai free at once: waiting for one (other requests' scripts
    /// running) would hold up every rule, those that need no Rhai too, with the deadline
    /// running — an amount cap that refuses at once could be answered by `on_error` instead.
    /// Without one, each rule evaluates its `when` in its turn, and the GETs behind them start
    /// early as they would without this.
    pub(super) fn early_whens(&self, calls: &mut super::calls::Calls, scope: &mut RequestScope) {
        calls.whens = vec![None; self.ruleset.rules.len()];
        let Some(_turn) = self.ctx.scripts.try_slot() else {
            return;
        };
        for (i, rule) in self.ruleset.rules.iter().enumerate() {
            if let (true, Some(when)) = (rule.when_known_early(), &rule.when) {
                let left = self.time_left(rule);
                calls.whens[i] = (self.ctx.scripts)
                    .eval_bool(scope, &when.ast, &mut None, left)
                    .ok();
            }
        }
    }

    /// An expression of `rule`: natively when it has that form, else through Rhai (with
    /// `response` in scope for a fetch's `require`), in its turn (see [`Self::turn`]).
    async fn test(
        &self,
        rule: &Rule,
        expr: &Expr,
        scope: &mut RequestScope,
        response: &mut Option<Dynamic>,
    ) -> Result<bool, script::ScriptError> {
        match &expr.native {
            Some(native) => Ok(native.eval(self.req)),
            None => {
                let _turn = self.turn(rule).await.map_err(|cut| script::ScriptError {
                    message: cut,
                    position: None,
                    cut_off: true,
                })?;
                self.ctx
                    .scripts
                    .eval_bool(scope, &expr.ast, response, self.time_left(rule))
            }
        }
    }

    /// Leave to run Rhai (see [`script::ScriptEngine::slot`]): an expression over a large
    /// payload can take as long as a script. A shadow rule waits for its turn only up to its
    /// own cut-off (the error, then): it must never use up the deadline (the ruleset's
    /// on_error would then answer for it).
    async fn turn(&self, rule: &Rule) -> Result<script::Slot<'_>, String> {
        self.wait(rule, self.ctx.scripts.slot())
            .await
            .ok_or_else(|| {
                format!(
                    "{} (waiting for its turn to run Rhai)",
                    super::SHADOW_CUT_OFF
                )
            })
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

    pub(super) async fn check(
        &self,
        rule: &Rule,
        scope: &mut RequestScope,
        prefetched: Option<&mut Prefetch>,
        sent: &mut Option<Box<CallMade>>,
    ) -> (Checked, Called) {
        let reason = || rule.reason.render_reason(self.req, None);
        let pass_if = |ok: bool| {
            if ok {
                Checked::Pass
            } else {
                Checked::Refuse(reason())
            }
        };
        let verdict = match &rule.check {
            Check::Approve => Checked::Approve,
            Check::Amount { min, max } => {
                let amount = self.req.amount.value();
                pass_if(min.is_none_or(|m| amount >= m) && max.is_none_or(|m| amount <= m))
            }
            Check::Window { from, until } => {
                let now = self.ctx.now;
                pass_if(from.is_none_or(|f| now >= f) && until.is_none_or(|u| now < u))
            }
            Check::Require(expr) => match self.test(rule, expr, scope, &mut None).await {
                Ok(ok) => pass_if(ok),
                Err(e) => own_failure(rule, &e, expr.error_at("require", &e)),
            },
            Check::Script { path, ast } => {
                let _turn = match self.turn(rule).await {
                    Ok(turn) => turn,
                    Err(cut) => {
                        let cut = Checked::Failed(Failure::CutOff, format!("{path}: {cut}"));
                        return (cut, Called::default());
                    }
                };
                match self
                    .ctx
                    .scripts
                    .eval_script(scope, ast, self.time_left(rule))
                {
                    Ok(ScriptVerdict::Pass) => Checked::Pass,
                    Ok(ScriptVerdict::Refuse(None)) => Checked::Refuse(reason()),
                    // A long string is capped; one that is blank as the buyer would see it
                    // says nothing (a blank `reason` does not load): the rule's reason stands in.
                    Ok(ScriptVerdict::Refuse(Some(r))) => match shown(r) {
                        Some(r) => Checked::Refuse(r),
                        None => Checked::Refuse(reason()),
                    },
                    Err(e) => own_failure(rule, &e, e.at(path)),
                }
            }
            Check::Healthy(up) => {
                let health = self.ctx.upstreams.health(up);
                let verdict = match health {
                    Health::Up => Checked::Pass,
                    Health::Down => Checked::Refuse(reason()),
                    Health::Unknown => Checked::error(format!(
                        "health of upstream \"{}\" is not known yet",
                        up.name
                    )),
                };
                let probe_failure = match health {
                    Health::Down => self.ctx.upstreams.probe_failure(up).map(|f| f.to_string()),
                    _ => None,
                };
                return (
                    verdict,
                    Called {
                        probe: CallMade::probe(up),
                        probe_failure,
                        ..Called::default()
                    },
                );
            }
            Check::Fetch(f) => return self.fetch(rule, f, scope, prefetched, sent).await,
            Check::Forward(fw) => return self.forward(rule, fw, sent).await,
        };
        (verdict, Called::default())
    }

    /// A `fetch`: its answer (prefetched for a GET, called now otherwise) applied by
    /// [`Self::fetched`], and the call and answer for the trace.
    async fn fetch(
        &self,
        rule: &Rule,
        f: &Fetch,
        scope: &mut RequestScope,
        prefetched: Option<&mut Prefetch>,
        sent: &mut Option<Box<CallMade>>,
    ) -> (Checked, Called) {
        let (waited, call) = match prefetched {
            Some(prefetch) => {
                // Left in its slot, read: a deadline that ends the wait traces it from there.
                prefetch.read = true;
                let call = prefetch.made.clone();
                let waited = self.wait(rule, &mut prefetch.handle).await.map(joined);
                if waited.is_none() {
                    // Cut off as a shadow rule: its answer is no one's now.
                    prefetch.give_up();
                }
                (waited, call)
            }
            // Not prefetched: a POST or PUT, which may change something at the merchant, or a
            // GET that found no free connection at arrival, or could not be built.
            None if let Some(unsent) = self.not_to_send(rule) => {
                return (unsent, Called::default())
            }
            None => match fetch_call(f, self.req, self.body_by(rule)) {
                Ok(mut call) => {
                    call.rule = Some(rule.name.clone());
                    let made = fetch_made(&f.upstream, &call);
                    let call = self.ctx.upstreams.call(f.upstream.clone(), call);
                    self.wait_sent(rule, call, made, sent).await
                }
                Err(e) => return (Checked::Failed(Failure::Unsendable, e), Called::default()),
            },
        };
        let Some(result) = waited else {
            return (self.cut_off(), Called::made(call, None));
        };
        let answer = result.as_ref().ok().map(UpstreamAnswer::from);
        let verdict = self.fetched(rule, f, scope, result).await;
        (verdict, Called::made(call, answer))
    }

    /// A `forward`: the original request to the merchant's confirm handler, whose 200 passes
    /// and whose refusal refuses with its own reason.
    async fn forward(
        &self,
        rule: &Rule,
        fw: &Forward,
        sent: &mut Option<Box<CallMade>>,
    ) -> (Checked, Called) {
        if let Some(unsent) = self.not_to_send(rule) {
            return (unsent, Called::default());
        }
        let original = self.ctx.original;
        let mut headers = http::HeaderMap::new();
        // SPEC §9: the request's own, `application/json` when it had none; but a body without
        // one that was read as a form is labelled as the form it is, or the merchant's JSON
        // parser would refuse it and the buyer see that refusal.
        let ct = original.content_type.clone().unwrap_or_else(|| {
            http::HeaderValue::from_static(if self.req.payload.is_form() {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            })
        });
        headers.insert(http::header::CONTENT_TYPE, ct);
        // Every line as received, in order (`append`, not `insert`): unchanged.
        for (k, v) in &original.webhook_headers {
            headers.append(k.clone(), v.clone());
        }
        let call = HttpCall {
            rule: Some(rule.name.clone()),
            method: http::Method::POST,
            path_and_query: fw.path.clone(),
            headers,
            body: Some(original.body.clone()),
            body_by: self.body_by(rule),
            slot: Default::default(),
            end: None,
        };
        let made = CallMade::new(&fw.upstream, http::Method::POST, fw.path.clone(), None);
        let call = self.ctx.upstreams.call(fw.upstream.clone(), call);
        let (result, made) = self.wait_sent(rule, call, made, sent).await;
        let Some(result) = result else {
            return (self.cut_off(), Called::made(made, None));
        };
        let answer = result.as_ref().ok().map(UpstreamAnswer::from);
        let verdict = match result {
            Ok(r) if r.status == 200 => passing(&fw.upstream.name, &r),
            Ok(r) => Checked::Refuse(
                merchant_reason(&r.body)
                    .unwrap_or_else(|| rule.reason.render_reason(self.req, None)),
            ),
            Err(e) if e.deadline_came() => Checked::stopped(e.to_string()),
            Err(e) => Checked::error(format!("forward to {}: {e}", fw.upstream.name)),
        };
        (verdict, Called::made(made, answer))
    }

    /// Applies a fetch result: records it in `fetched`, then `require` (or the status) decides.
    async fn fetched(
        &self,
        rule: &Rule,
        f: &Fetch,
        scope: &mut RequestScope,
        result: Result<UpstreamResponse, UpstreamError>,
    ) -> Checked {
        let resp = match result {
            Ok(r) => r,
            // Stopped at the deadline, traced as one not started then ("not sent: …").
            Err(e) if e.deadline_came() => return Checked::stopped(e.to_string()),
            Err(e) => return Checked::error(format!("fetch from {}: {e}", f.upstream.name)),
        };
        // A large answer becomes Rhai's values, and their copy for `fetched`, on a thread of
        // its own and of low priority, where the deadline timer can still end the wait (see
        // `upstream::is_large`). What is left of it is freed in the background.
        let large = resp.large;
        let (resp, response) = if large && !self.ctx.upstreams.large_answers_inline() {
            let convert = crate::background::run(move || {
                let dynamic = response_dynamic(&resp);
                let copy = dynamic.clone().into_read_only();
                (resp, dynamic, copy)
            });
            // A shadow rule waits for it only up to its own cut-off, as for its call.
            let Some(converted) = self.wait(rule, convert).await else {
                return self.cut_off();
            };
            match converted {
                Ok((resp, dynamic, copy)) => {
                    scope.set_fetched_copy(&rule.name, copy);
                    (resp, dynamic)
                }
                Err(e) => {
                    return Checked::error(format!(
                        "reading the answer of {}: {e}",
                        f.upstream.name
                    ))
                }
            }
        } else {
            let dynamic = response_dynamic(&resp);
            (resp, scope.set_fetched(&rule.name, dynamic))
        };
        // Freed in the background also if the evaluation is stopped in `require_on`; so is
        // `resp`'s body (see `UpstreamResponse`'s Drop).
        let mut response = crate::background::FreeLater::new(Some(response), large);
        let verdict = self
            .require_on(rule, f, scope, &resp, &mut response.value)
            .await;
        // A shadow rule cut off while its `require` waited or ran leaves nothing in `fetched`,
        // as one cut off waiting for its answer: whether a later rule saw the answer would
        // otherwise depend on the shadow rule's timing and the load (an enforced rule reading
        // it refused a payment that way).
        if matches!(verdict, Checked::Failed(Failure::CutOff, _)) {
            scope.forget_fetched(&rule.name);
        }
        verdict
    }

    /// A fetch's `require` (or, without one, its status) on the answer `resp`, which Rhai
    /// sees as `response`.
    async fn require_on(
        &self,
        rule: &Rule,
        f: &Fetch,
        scope: &mut RequestScope,
        resp: &UpstreamResponse,
        response: &mut Option<Dynamic>,
    ) -> Checked {
        // A field of the merchant's answer can be any size: capped like a merchant's reason.
        let reason = || capped(rule.reason.render_reason(self.req, Some(&resp.body)));
        match &f.require {
            // Part of an answer can pass where the whole would refuse
            // (`!response.body.contains("SOLD_OUT")` before the word came): the check could
            // not be made, which `on_error` decides.
            Some(expr) if let Some(why) = &resp.incomplete => {
                // A refusing status refuses however its body ends, as without `require`, when
                // the expression refuses it without the body (`response.status == 200 && …`,
                // the body `()`): a merchant's 409 cut short must not be an error that the
                // rule's `on_error: approve` lets through. Whatever else it gives was read on
                // part of an answer, and is no decision.
                let refusing = !(200..=299).contains(&resp.status);
                if refusing && matches!(self.test(rule, expr, scope, response).await, Ok(false)) {
                    return Checked::Refuse(reason());
                }
                let cause = format!(
                    "require on the answer of {} (status {}, its body {why}): not evaluated{}",
                    f.upstream.name,
                    resp.status,
                    if resp.partial() {
                        " on part of an answer"
                    } else {
                        ""
                    }
                );
                if resp.cut_by_deadline() {
                    Checked::stopped(cause)
                } else {
                    Checked::error(cause)
                }
            }
            Some(expr) => match self.test(rule, expr, scope, response).await {
                Ok(true) => Checked::Pass,
                Ok(false) => Checked::Refuse(reason()),
                Err(e) => {
                    let not_json = not_json(resp);
                    let cause = expr.error_at(
                        &format!(
                            "require on the answer of {} (status {}{not_json})",
                            f.upstream.name, resp.status,
                        ),
                        &e,
                    );
                    if !e.cut_off && (!not_json.is_empty() || !(200..300).contains(&resp.status)) {
                        // Over an answer that is no JSON, or no success, the upstream's.
                        Checked::error(cause)
                    } else {
                        own_failure(rule, &e, cause)
                    }
                }
            },
            None => match resp.status {
                200..=299 => passing(&f.upstream.name, resp),
                // SPEC §4: a 5xx is an error; a status beyond HTTP's classes (600-999) is no
                // server error, and refuses as any other non-2xx does.
                500..=599 => {
                    Checked::error(format!("{} answered {}", f.upstream.name, resp.status))
                }
                _ => Checked::Refuse(reason()),
            },
        }
    }
}

/// A rule's own expression or script failing with `e` (traced as `cause`): the rule's fault,
/// unless what was left of the deadline or the shadow cut-off stopped it, which is the
/// deadline's business as an answer cut by it is — on the real clock and on the paused one
/// rule tests run on alike, where the deadline has not come by the time Rhai's limit has.
/// (A shadow rule's limit is its cut-off, an error of its own, as its other cut-offs are: it
/// never reaches `on_error`.)
fn own_failure(rule: &Rule, e: &script::ScriptError, cause: String) -> Checked {
    let failure = match (e.cut_off, rule.mode) {
        (false, _) => Failure::Faulted,
        (true, Mode::Shadow) => Failure::CutOff,
        (true, _) => Failure::Stopped,
    };
    Checked::Failed(failure, cause)
}

/// A status that passes, on an answer that came whole. One whose body stopped coming (closed
/// early, the upstream's timeout, the deadline) is a transport failure (SPEC §9), which
/// `on_error` decides — the rule's, or the ruleset's when the deadline cut it: the handler may
/// have failed midway after its status line. (A refusing status refuses however its body
/// ends: `on_error: approve` must not pass a merchant's 409. An answer that came whole but was
/// read only up to the size cap passes: nothing failed.)
fn passing(upstream: &str, resp: &UpstreamResponse) -> Checked {
    let Some(why) = resp.incomplete.as_ref().filter(|_| resp.stopped_coming()) else {
        return Checked::Pass;
    };
    let cause = format!(
        "{upstream} answered {}, but its body {why}: a pass needs the whole answer",
        resp.status
    );
    if resp.cut_by_deadline() {
        Checked::stopped(cause)
    } else {
        Checked::error(cause)
    }
}

/// The longest reason taken from a merchant's answer or a script, in characters: buyers read
/// a sentence, and the answer, the decision log and the log line each carry it (twice in the
/// answer), so a broken handler answering megabytes must not make every refusal that large.
const MERCHANT_REASON_MAX: usize = 500;

/// `reason` as a buyer is shown it: cut at [`MERCHANT_REASON_MAX`] characters (with `…`), line
/// breaks and tabs made spaces, and other control characters and text-direction controls left
/// out — text from a merchant's answer or a script must not garble the payment window.
fn capped(reason: String) -> String {
    match crate::text::for_buyers_cut(&reason, MERCHANT_REASON_MAX) {
        std::borrow::Cow::Borrowed(_) => reason,
        std::borrow::Cow::Owned(shown) => shown,
    }
}

/// The merchant's own reason from a refusing confirm handler (`reason` for V1 style,
/// `errorMessage` for V2 style), capped. A blank one is no reason, and neither is one that was
/// not text in the answer's charset (U+FFFD where bytes could not be read, such as EUC-KR sent
/// without `charset=euc-kr`): the buyer would see mojibake, so the rule's reason is shown.
fn merchant_reason(body: &Value) -> Option<String> {
    ["reason", "errorMessage"].iter().find_map(|k| {
        body.get(k)
            .and_then(Value::as_str)
            .and_then(|s| shown(s.to_owned()))
    })
}

/// `reason` as the buyer would see it ([`capped`]), or `None` when that shows nothing (only
/// spaces, control, text-direction or invisible characters) or holds U+FFFD (text that was not
/// readable in its answer's charset: mojibake to the buyer).
fn shown(reason: String) -> Option<String> {
    if reason.contains(char::REPLACEMENT_CHARACTER) {
        return None;
    }
    Some(capped(reason)).filter(|r| !crate::text::shows_nothing(r))
}

/// Why a text answer is text, for the error of a `require` that read it as JSON: a
/// compressed body, an empty one, or what the JSON parser said (nesting too deep, a syntax
/// error where it starts like JSON). Empty for answers that are JSON, or that never looked
/// like it.
fn not_json(r: &UpstreamResponse) -> String {
    let Value::String(text) = &r.body else {
        return String::new();
    };
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // Compressed as a content coding, or as a transfer coding (`Transfer-Encoding: gzip,
    // chunked`, which HTTP allows and no client here undoes).
    let transfer: Vec<&str> = header("transfer-encoding")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("chunked"))
        .collect();
    let encoding = header("content-encoding")
        .filter(|v| !v.eq_ignore_ascii_case("identity"))
        .map(str::to_owned)
        .or_else(|| (!transfer.is_empty()).then(|| transfer.join(", ")));
    if let Some(encoding) = encoding {
        return format!(", its body compressed ({encoding}), which is not read as JSON");
    }
    // gzip's magic bytes (1f 8b; 8b is no UTF-8 on its own) with no header saying so.
    if text.starts_with("\u{1f}\u{fffd}") {
        return ", its body gzip-compressed bytes with no Content-Encoding saying so, not JSON"
            .into();
    }
    let start = text.trim_start();
    if start.is_empty() {
        return ", its body empty".into();
    }
    if !(start.starts_with('{') || start.starts_with('[')) {
        // An HTML error page, a plain `OK`: `response.body.available` fails on text, which
        // Rhai calls "type 'string'".
        let kind = r
            .headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| format!(" ({v})"))
            .unwrap_or_default();
        return format!(", its body text{kind}, not JSON");
    }
    // What the parser said when the answer was read.
    match &r.not_json {
        Some(e) => format!(", its body not JSON: {e}"),
        None => String::new(),
    }
}

/// `response` and `fetched[name]` for rules: `#{status, headers, body}`. The body of a cut
/// answer is `()`: part of an answer is read by no rule, later ones included.
fn response_dynamic(r: &UpstreamResponse) -> Dynamic {
    let mut map = Map::new();
    map.insert("status".into(), Dynamic::from_int(i64::from(r.status)));
    let headers: Map = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().into(), v.clone().into()))
        .collect();
    map.insert("headers".into(), Dynamic::from_map(headers));
    let body = match r.incomplete {
        Some(_) => Dynamic::UNIT,
        None => script::json_to_dynamic(&r.body),
    };
    map.insert("body".into(), body);
    Dynamic::from_map(map)
}
