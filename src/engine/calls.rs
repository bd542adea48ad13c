//! The upstream calls of an evaluation: GET fetches started in the background, waits bounded
//! by the shadow cut-off, and the HTTP call a fetch rule makes.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::check::{Checked, Failure};
use super::Run;
use crate::decision::{CallMade, UnusedFetch};
use crate::payload::ConfirmRequest;
use crate::rules::{BodyTemplate, Check, Fetch, HttpMethod, Mode, Rule};
use crate::upstream::{BodyDue, HttpCall, TakenSlot, UpstreamError, UpstreamResponse};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The calls of an evaluation that a deadline may cut off, kept outside it so that they can be
/// traced (and recorded) when it is dropped.
#[derive(Default)]
pub(super) struct Calls {
    /// Background GET fetches, one slot per rule. Empty (no allocation) when the ruleset has
    /// none.
    pub(super) prefetches: Vec<Option<Prefetch>>,
    /// The call the rule being evaluated sent itself (a `forward`, a POST or PUT fetch, a GET
    /// that was not prefetched), until its check is done. Boxed: every request's future holds the slot, few fill it.
    pub(super) sent: Option<Box<CallMade>>,
    /// The `when`s evaluated as the request arrived ([`Rule::when_known_early`]), one slot per
    /// rule (`None`: not evaluated then, or it failed, so its rule evaluates it in its turn).
    /// Empty when the ruleset has none.
    pub(super) whens: Vec<Option<bool>>,
}

/// One GET started early, with the call as the trace names it (made from what was sent, not
/// rendered again). Dropping it cancels the call: the evaluation ended before its rule read
/// it, or the deadline stopped the wait (dropping a bare `JoinHandle` would only detach it).
pub(super) struct Prefetch {
    pub(super) handle: JoinHandle<Result<UpstreamResponse, UpstreamError>>,
    pub(super) made: CallMade,
    /// Its rule reached its check and waited for it.
    pub(super) read: bool,
    /// Set by whichever comes first: the task beginning its call, or the evaluation ending
    /// with the call unread ([`Calls::unused`]). A call whose task had not begun by then is
    /// never sent, so the record leaves it out: the merchant's API cannot have seen it.
    pub(super) claimed: Arc<AtomicBool>,
    /// Shared with the call: says how it ended, or that the record called it cancelled.
    pub(super) end: Arc<crate::upstream::CallEnd>,
}

impl Prefetch {
    /// Starts `call` to `upstream` in a task of its own, on the connection `slot` holds (if
    /// the upstream limits them).
    fn start(
        upstreams: &dyn crate::upstream::Upstreams,
        upstream: &Arc<crate::rules::Upstream>,
        mut call: crate::upstream::HttpCall,
        slot: TakenSlot,
    ) -> Prefetch {
        let made = super::check::fetch_made(upstream, &call);
        call.slot = slot;
        let end = Arc::new(crate::upstream::CallEnd::default());
        call.end = Some(end.clone());
        let claimed = Arc::new(AtomicBool::new(false));
        let call = upstreams.call(upstream.clone(), call);
        let begun = claimed.clone();
        let handle = tokio::spawn(async move {
            if begun.swap(true, Ordering::AcqRel) {
                return Err(UpstreamError::Other("not sent".into()));
            }
            call.await
        });
        Prefetch {
            handle,
            made,
            read: false,
            claimed,
            end,
        }
    }

    /// Stops the call, counted `cancelled` unless its answer came in just now.
    pub(super) fn give_up(&self) {
        self.end.abandon();
        self.handle.abort();
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Calls {
    /// The call rule `i` was waiting for: the one it sent, or its prefetch if it read it.
    pub(super) fn waited_for(&mut self, i: usize) -> Option<CallMade> {
        if let Some(sent) = self.sent.take() {
            return Some(*sent);
        }
        let prefetch = self.prefetches.get(i)?.as_ref()?;
        prefetch.read.then(|| prefetch.made.clone())
    }

    /// Rule `i`'s prefetch, which its rule read, given up unanswered (the deadline or the
    /// shadow cut-off ended the wait): stopped, and counted `cancelled` as its trace leaves
    /// it, unless its answer came in just now.
    pub(super) fn give_up(&self, i: usize) {
        if let Some(Some(prefetch)) = self.prefetches.get(i) {
            prefetch.give_up();
        }
    }

    /// Rule `i` is done with (checked, skipped, failed or cut off): its prefetch to an
    /// upstream with `max_connections`, if still running, is stopped, so that it holds none of
    /// the connections a later rule's call would wait for. The record still names it if it was
    /// sent ([`Self::unused`]). Other prefetches run on, for the record to have their answers.
    pub(super) fn done_with(&self, i: usize, rule: &Rule) {
        let limited = matches!(&rule.check, Check::Fetch(f) if f.upstream.slots.is_some());
        if let (true, Some(Some(prefetch))) = (limited, self.prefetches.get(i)) {
            prefetch.handle.abort();
        }
    }

    /// The fetches no rule of `rules` (whose slots these are) read by the end of the
    /// evaluation, none of which decided anything: their rules were not reached, or skipped by
    /// `when`, or failed before their wait. Each with its answer's status or error if it had
    /// one by then; the rest are cancelled as they are dropped. One whose task had not begun
    /// is stopped before it sends anything, and left out.
    pub(super) fn unused(self, rules: &[Rule]) -> Vec<UnusedFetch> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let slots = self.prefetches.into_iter().zip(rules);
        slots
            .filter_map(|(slot, rule)| Some((slot.filter(|p| !p.read)?, rule)))
            .filter(|(prefetch, _)| prefetch.claimed.swap(true, Ordering::AcqRel))
            .map(|(mut prefetch, rule)| {
                // Unconstrained: with the task's cooperative budget spent, even a finished
                // handle would answer `Pending`.
                let handle = std::pin::pin!(tokio::task::unconstrained(&mut prefetch.handle));
                let (status, error) = match handle.poll(&mut cx) {
                    // Stopped when its rule was done with ([`Calls::done_with`]), unanswered.
                    std::task::Poll::Ready(Err(e)) if e.is_cancelled() => (None, None),
                    std::task::Poll::Ready(ended) => match joined(ended) {
                        Ok(answer) => (Some(answer.status), None),
                        Err(e) => (None, Some(e.to_string())),
                    },
                    // Under way: cancelled, unless its answer came in just now.
                    std::task::Poll::Pending => prefetch.end.abandon(),
                };
                UnusedFetch {
                    rule: rule.name.clone(),
                    call: std::mem::take(&mut prefetch.made),
                    status,
                    error,
                }
            })
            .collect()
    }
}

/// A fetch task's end as the fetch's own result (a task that panicked is a failed call).
pub(super) fn joined(
    ended: Result<Result<UpstreamResponse, UpstreamError>, tokio::task::JoinError>,
) -> Result<UpstreamResponse, UpstreamError> {
    ended.unwrap_or_else(|e| Err(UpstreamError::Other(format!("fetch task ended: {e}"))))
}

impl Run<'_, '_> {
    /// Awaits `call` for `rule`: to the end for an enforced rule (the deadline bounds it), until
    /// the shadow cut-off for a shadow rule (`None` if it is not done by then).
    pub(super) async fn wait<F: Future>(&self, rule: &Rule, call: F) -> Option<F::Output> {
        if rule.mode == Mode::Shadow {
            // Polls `call` first: an answer already in is taken even past the cut-off.
            tokio::time::timeout_at(self.shadow_until, call).await.ok()
        } else {
            Some(call.await)
        }
    }

    /// [`Self::wait`] for the answer to a call `rule` sent itself, `made`, a copy of which
    /// stays in `sent` until the rule's check is done ([`Run::rules`] clears it): a deadline
    /// that ends the check, in the wait or in reading the answer after it, names the call
    /// from there, as it does a prefetch from its slot.
    pub(super) async fn wait_sent<F: Future>(
        &self,
        rule: &Rule,
        call: F,
        made: CallMade,
        sent: &mut Option<Box<CallMade>>,
    ) -> (Option<F::Output>, CallMade) {
        *sent = Some(Box::new(made.clone()));
        if let Some(noted) = self.ctx.sent.filter(|_| rule.has_side_effects()) {
            noted.push(rule.name.clone(), made.clone());
        }
        (self.wait(rule, call).await, made)
    }

    /// When the body of an answer `rule` waits for must be in (see [`Run::bodies_by`]); `None`
    /// for a shadow rule, whose wait ends at the shadow cut-off with the cut-off's own error.
    pub(super) fn body_by(&self, rule: &Rule) -> Option<BodyDue> {
        // A body whose status came late gets up to three quarters of what is left after
        // `bodies_by` (nothing for a deadline under 50 ms, where the two coincide).
        let late = self.deadline - (self.deadline - self.bodies_by) / 4;
        (rule.mode != Mode::Shadow).then_some(BodyDue {
            by: self.bodies_by,
            late,
            deadline: self.deadline,
        })
    }

    /// Whether the call of enforced rule `rule`, which may change something at the merchant
    /// (a `forward`, a POST or PUT fetch), comes too late to be sent: its answer could no
    /// longer be read before the deadline ([`Run::bodies_by`]), and the merchant would act on
    /// a payment decided whatever it answers. The rule's check cannot complete: stopped by the
    /// deadline, for the ruleset's `on_error`, traced.
    fn too_late_to_send(&self, rule: &Rule) -> Option<Checked> {
        let late = rule.has_side_effects()
            && rule.mode != Mode::Shadow
            && tokio::time::Instant::now() >= self.bodies_by;
        late.then(|| {
            Checked::stopped(format!(
                "{} too close to the deadline of {:?} to read an answer",
                super::NOT_SENT,
                self.ruleset.settings.deadline
            ))
        })
    }

    /// Whether `rule` is a shadow rule reached after the shadow cut-off: it starts no call.
    fn past_shadow_cutoff(&self, rule: &Rule) -> bool {
        rule.mode == Mode::Shadow && tokio::time::Instant::now() >= self.shadow_until
    }

    /// Why the call `rule` is about to start must not be sent, when it must not: a shadow
    /// rule past its cut-off, or a call with side effects too close to the deadline.
    pub(super) fn not_to_send(&self, rule: &Rule) -> Option<Checked> {
        if self.past_shadow_cutoff(rule) {
            return Some(self.cut_off());
        }
        self.too_late_to_send(rule)
    }

    /// The error of a shadow rule cut off at the shadow cut-off.
    pub(super) fn cut_off(&self) -> Checked {
        let deadline = self.ruleset.settings.deadline;
        Checked::Failed(
            Failure::CutOff,
            format!(
                "{} (shadow rules may use only the first {:?} of the {deadline:?} deadline)",
                super::SHADOW_CUT_OFF,
                deadline / 2
            ),
        )
    }

    /// Whether rule `i`'s `when` is known as the request arrives to skip it: of a shape that
    /// runs without Rhai ([`Rule::skips_up_front`]), or evaluated then ([`Self::early_whens`]).
    pub(super) fn skipped_up_front(&self, whens: &[Option<bool>], i: usize) -> bool {
        self.ruleset.rules[i].skips_up_front(self.req) || whens.get(i) == Some(&Some(false))
    }

    /// Whether the GET fetches after rule `i` wait for it: it may change something at the
    /// merchant, and it is not known up front to be skipped.
    pub(super) fn holds_back_prefetches(&self, whens: &[Option<bool>], i: usize) -> bool {
        self.ruleset.rules[i].changes_state() && !self.skipped_up_front(whens, i)
    }

    /// GET fetches have no side effects, so they start early and run while earlier rules are
    /// evaluated; a request costs about its slowest check, not the sum. Started here: those
    /// of the rules from `from` up to the next rule whose call may change something at the
    /// merchant (a `forward`, a POST or PUT fetch). The ones after such a rule start once it is
    /// done ([`Run::rules`] calls this again), so that they read the merchant's state as that
    /// call left it (`GET /orders/{id}` after a `forward` that confirms the order): decisions
    /// are as if rules ran one after another.
    ///
    /// A rule whose `when` is known up front to skip the request ([`Rule::skips_up_front`],
    /// [`Rule::when_known_early`]) makes no call: a ruleset with a stock fetch per event, each
    /// behind its own `when`, asks only the stock of the payment's event. Nor does its
    /// `forward` hold back the GETs after it.
    pub(super) fn start_prefetches(&self, calls: &mut Calls, from: usize) {
        // Once the answer is due, every rule that fetches is stopped before it is run.
        if !self.ruleset.prefetches || tokio::time::Instant::now() >= self.deadline {
            return;
        }
        let rules = &self.ruleset.rules;
        let (prefetches, whens) = (&mut calls.prefetches, &calls.whens);
        if prefetches.is_empty() {
            prefetches.resize_with(rules.len(), || None);
        }
        // Upstreams found with no free connection in this pass: a connection freed meanwhile
        // (by another request's call) must not go to a later rule ahead of an earlier one.
        let mut exhausted: Vec<&str> = Vec::new();
        for (i, rule) in rules.iter().enumerate().skip(from) {
            if self.holds_back_prefetches(whens, i) {
                break;
            }
            if let Check::Fetch(f) = &rule.check {
                // A call that cannot be made is an error when its rule is reached.
                if rule.is_prefetch() && !self.skipped_up_front(whens, i) {
                    // One of a limited upstream's connections is taken here, in rule order.
                    // Taken in the tasks, the last one spawned (which the runtime runs first)
                    // would get it before an earlier rule's, and the earlier rule's call would
                    // wait out a later one's, perhaps to its timeout: not as if rules ran one
                    // after another. None free now: the fetch is made when its rule is reached.
                    let slot = match self.ctx.upstreams.slots(&f.upstream) {
                        Some(_) if exhausted.contains(&f.upstream.name.as_str()) => continue,
                        Some(slots) => match slots.free.clone().try_acquire_owned() {
                            Ok(slot) => TakenSlot(Some(slot)),
                            Err(_) => {
                                exhausted.push(&f.upstream.name);
                                continue;
                            }
                        },
                        None => TakenSlot::default(),
                    };
                    let call = fetch_call(f, self.req, self.body_by(rule));
                    prefetches[i] = call.ok().map(|mut call| {
                        call.rule = Some(rule.name.clone());
                        Prefetch::start(&*self.ctx.upstreams, &f.upstream, call, slot)
                    });
                }
            }
        }
    }
}

/// Whether rendering `t` for `req` puts a space or tab from a request field at either end of
/// the text (among the template's own, if any), where readers of a header drop it. The
/// fields' spaces and tabs are marked as they are put in, to be told from the template's.
fn field_padding_at_an_end(t: &crate::rules::Template, req: &ConfirmRequest) -> bool {
    const SPACE: char = '\u{1}';
    const TAB: char = '\u{2}';
    let marked = t.render_escaped(req, None, |s| {
        if s.contains([' ', '\t']) {
            Cow::Owned(s.replace(' ', "\u{1}").replace('\t', "\u{2}"))
        } else {
            Cow::Borrowed(s)
        }
    });
    let blank = |c: &char| matches!(*c, ' ' | '\t' | SPACE | TAB);
    let field = |c: char| c == SPACE || c == TAB;
    marked.chars().take_while(blank).any(field) || marked.chars().rev().take_while(blank).any(field)
}

/// The call a fetch rule makes for `req`, its body due by `body_by`, or why it cannot be made.
/// Rule tests use it too, to tell canned answers no rule asks for.
pub fn fetch_call(
    f: &Fetch,
    req: &ConfirmRequest,
    body_by: Option<BodyDue>,
) -> Result<HttpCall, String> {
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
        .split(['/', '\\'])
        .find(|s| crate::upstream::is_dot_segment(s))
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
    if let Cow::Owned(sent) = crate::upstream::as_sent(&path_and_query) {
        path_and_query = sent;
    }
    let mut headers = http::HeaderMap::new();
    for (name, t) in &f.headers {
        // A value a request field made invalid (a newline, say) cannot be sent, and leaving the
        // header out would let the upstream decide on a different question: an error, like a
        // path that cannot be sent. So is one the upstream would read as another value: HTTP
        // readers drop spaces and tabs around a value (` A-100` is read as `A-100`). (Text
        // beyond ASCII goes as its UTF-8 bytes, which some servers read as Latin-1: see the
        // README.) The value is not shown: it may hold a `${VAR}` secret.
        let value = t.render(req, None);
        // Spaces and tabs the template's own text leaves at an end (`Bearer {store_id}` with
        // no store id) are dropped as readers would; a request field's are what is refused.
        // (Told apart by rendering again, only for a value that has any.)
        let trimmed = value.trim_matches([' ', '\t']);
        let padded = trimmed.len() != value.len() && field_padding_at_an_end(t, req);
        let value = trimmed;
        match http::HeaderValue::from_str(value) {
            Ok(v) if !padded => {
                headers.insert(name.clone(), v);
            }
            Ok(_) => {
                return Err(format!(
                    "fetch header {name}: a request field put a space or tab at an end of its value, which readers drop, so the upstream would read another value; not sent"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "fetch header {name}: a request field put a character into its value that HTTP headers cannot carry (a control character such as a newline); not sent"
                ))
            }
        }
    }
    let body = match (&f.body, f.method) {
        (Some(b), _) => {
            // A `Content-Type` the rule or upstream names (`application/vnd.shop+json`) is
            // the operator's: only a call without one says what the body is.
            if !headers.contains_key(http::header::CONTENT_TYPE)
                && !f.upstream.headers.contains_key(http::header::CONTENT_TYPE)
            {
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
            }
            Some(Bytes::from(render_body(b, req).to_string()))
        }
        // Said as `Content-Length: 0` (the HTTP client says nothing of an empty body): servers
        // may refuse a POST without a length (411), which would refuse buyers with the rule's
        // reason.
        (None, HttpMethod::POST | HttpMethod::PUT) => {
            headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("0"),
            );
            Some(Bytes::new())
        }
        (None, HttpMethod::GET) => None,
    };
    let method = match f.method {
        HttpMethod::GET => http::Method::GET,
        HttpMethod::POST => http::Method::POST,
        HttpMethod::PUT => http::Method::PUT,
    };
    Ok(HttpCall {
        rule: None,
        method,
        path_and_query,
        headers,
        body,
        body_by,
        slot: Default::default(),
        end: None,
    })
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
