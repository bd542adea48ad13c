//! The public listener: the `/confirm` routes, the guards in the order of SPEC §9, the
//! evaluation (in a task of its own when it calls upstreams or runs Rhai), and the answer with its log line,
//! metrics and decision record. The guards live beside it: [`source`] (403), [`body`]
//! (413, 408) and [`signed`] (401, repeated deliveries).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::oneshot;

use super::deliveries::Ticket;
use super::{healthz, AppState};
use crate::audit::Record;
use crate::decision::Decision;
use crate::engine::{self, Context, Original};
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::rules::{Rules, Ruleset, UNKNOWN_RULESET, UNKNOWN_RULESET_REASON};
use body::unread_body;
pub(crate) use source::{is_loopback, unmapped};

mod body;
mod signed;
mod source;

const JSON_UTF8: &str = "application/json; charset=utf-8";
const DECISION_ID: &str = "x-confirm-decision-id";
const NO_SUCH_RULESET: &str = "no such ruleset";
/// The characters of an order or webhook id the decision's log line shows.
const LOGGED_ID_MAX: usize = 200;

/// The `guard` of a request refused for its signature, in its record: no rule decided it.
const SIGNATURE_GUARD: &str = "signature";

pub fn public_router(state: AppState) -> Router {
    let confirm_endpoint = || post(confirm).fallback(wrong_method);
    Router::new()
        .route("/confirm", confirm_endpoint())
        // Everything under `/confirm/` is ours to answer (404 with a reason for any name that is
        // not a loaded ruleset, `/confirm//` and `/confirm/a/b` included), so it is matched whole
        // and the name read from the raw path by [`ruleset_in`] (no 400 from the framework
        // for a bad escape: such a path names no ruleset).
        .route("/confirm/", confirm_endpoint())
        .route("/confirm/{*ruleset}", confirm_endpoint())
        .route(
            "/healthz",
            get(healthz).fallback(plain(StatusCode::METHOD_NOT_ALLOWED)),
        )
        .fallback(not_served)
        .with_state(state)
}

/// A path the proxy does not serve. A POST to one with a `confirm` segment is most likely a
/// confirm URL mistyped where it was registered (`//confirm` from a base URL ending in `/`,
/// `/Confirm`, `/api/confirm` behind a proxy that keeps its prefix): every payment sent to it
/// would fail, so it is refused like a ruleset that is not loaded — a reason, a warning naming
/// the path, counted and recorded. Anything else gets the bare 404 of any web server: scanners
/// posting to `/wp-login.php` are no payments, and must not fire the unknown-ruleset alert.
async fn not_served(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path();
    if request.method() != axum::http::Method::POST || !names_confirm(path) {
        return unread_body(request.headers(), StatusCode::NOT_FOUND.into_response());
    }
    state.path_not_served(path, peer, request.headers())
}

/// Whether `path` has a segment that reads `confirm`, in any case or percent-encoding.
fn names_confirm(path: &str) -> bool {
    path.split('/').any(|segment| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .is_ok_and(|s| s.eq_ignore_ascii_case("confirm"))
    })
}

/// The bare `status` answer of a path or method the proxy does not serve, which reads no
/// body: with `Connection: close` when the request has one (see [`unread_body`]).
pub(super) fn plain(
    status: StatusCode,
) -> impl Fn(HeaderMap) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |headers: HeaderMap| std::future::ready(unread_body(&headers, status.into_response()))
}

// The whole request is taken rather than a `HeaderMap` extractor, which would copy the headers.
async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    state
        .confirm(&ruleset_in(parts.uri.path()), peer, parts.headers, body)
        .await
}

/// The ruleset a confirm path names, as written: `default` for `/confirm`, `{ruleset}` for
/// `/confirm/{ruleset}`. [`confirm_path`](crate::rules::confirm_path) is the way back.
fn ruleset_in(path: &str) -> Cow<'_, str> {
    match path.strip_prefix("/confirm/") {
        None => Cow::Borrowed("default"),
        // A client may percent-encode any character of the name (`%2D` for `-`), which names
        // the same path (RFC 3986 §6.2.2.2); bytes that do not decode to text name no ruleset.
        // A confirm URL registered with a trailing slash is the same: `/confirm/concert/` is
        // `/confirm/concert`, and `/confirm/` is `/confirm` (else every payment sent to a URL
        // registered so would be refused).
        Some("") => Cow::Borrowed("default"),
        Some(name) => {
            let name = name
                .strip_suffix('/')
                .filter(|n| !n.is_empty())
                .unwrap_or(name);
            percent_encoding::percent_decode_str(name)
                .decode_utf8()
                .unwrap_or(Cow::Borrowed(name))
        }
    }
}

// A 405 is an answer of the confirm endpoint like any other: counted, logged and recorded,
// after the source guard.
async fn wrong_method(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    state.method_not_allowed(&ruleset_in(request.uri().path()), peer, request.headers())
}

/// Per-request facts gathered on the way in, for the log line and decision record.
#[derive(Clone)]
struct Arrival {
    id: String,
    started: tokio::time::Instant,
    arrived: DateTime<Utc>,
    /// The ruleset, when one of that name is loaded (metrics label it `unknown` otherwise).
    ruleset: Option<Arc<Ruleset>>,
    /// The rules snapshot this request is answered from.
    rules: Arc<Rules>,
    delivery: Delivery,
    /// The `webhook-id` of a request whose signature was verified, or the one a refused
    /// signature claims (cut at 100 characters: a sender chooses it), in its log line and
    /// record: an operator finds every delivery of a message by it.
    webhook_id: Option<Box<str>>,
    /// The client address `--allow-from` refused, for its 403's record (the log line has it
    /// too): an operator sees which sender to add, or to block further up; and that of a
    /// signature refused, for its 401's.
    refused_source: Option<std::net::IpAddr>,
    /// The guard that answered a request whose record names it all the same (a refused
    /// signature's, for the buyers a wrong secret refused), so that `replay` passes it over.
    guard: Option<&'static str>,
    /// The format of a message answered without rules (a V2 message of another `type`), for
    /// its record: SPEC §7 gives every line the api format.
    ignored_api: Option<crate::payload::Api>,
}

/// Where a request stands among the deliveries of its signed message (see
/// [`deliveries`](super::deliveries)).
#[derive(Clone, Default)]
enum Delivery {
    /// Not signed (no `--webhook-secret`), or not verified yet.
    #[default]
    Unsigned,
    /// The message's first delivery: its answer settles the ticket for any repeat.
    First(Arc<Ticket>),
    /// A repeat, answered as the delivery with this decision id was.
    RepeatOf(Box<str>),
    /// A delivery of a message id seen before that was refused without running rules: why, as
    /// the metric labels it (`other_body`, `other_ruleset`, `unanswered`).
    Refused(&'static str),
}

/// Who answers a request evaluated apart ([`AppState::detached`]): the evaluation, or the
/// request's own side at the deadline. Whoever claims it first answers and records; the other
/// stands down, so no request is answered or recorded twice.
#[derive(Clone, Default)]
struct AnswerClaim(Arc<std::sync::atomic::AtomicBool>);

impl AnswerClaim {
    /// Whether this side is the first to claim the answer, and so must give it.
    fn claim(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

impl Arrival {
    fn ruleset_name(&self) -> &str {
        self.ruleset
            .as_ref()
            .map_or(UNKNOWN_RULESET, |r| r.name.as_str())
    }
}

impl AppState {
    fn arrival(&self, ruleset: &str) -> Arrival {
        let rules = self.0.store.current(); // one snapshot for the whole request
        Arrival {
            // Written straight into its buffer: `to_string` goes through `core::fmt`.
            id: uuid::Uuid::now_v7()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
            started: tokio::time::Instant::now(),
            // To the microsecond, as the decision log keeps it: a replay of the record then
            // gives `window` and scripts the very clock they read here.
            arrived: Utc::now().trunc_subsecs(6),
            ruleset: rules.get(ruleset).cloned(),
            rules,
            delivery: Delivery::Unsigned,
            webhook_id: None,
            refused_source: None,
            guard: None,
            ignored_api: None,
        }
    }

    fn method_not_allowed(&self, ruleset: &str, peer: SocketAddr, headers: &HeaderMap) -> Response {
        let arrival = self.arrival(ruleset);
        if let Some(refusal) = self.source_refused(&arrival, peer, headers) {
            return refusal;
        }
        // An unknown ruleset is the first thing wrong with the request (SPEC §9's order).
        if arrival.ruleset.is_none() {
            return self.not_found(&arrival, ruleset, NO_SUCH_RULESET, headers);
        }
        unread_body(
            headers,
            self.refuse(&arrival, 405, "POST 요청만 받습니다".into()),
        )
    }

    fn path_not_served(&self, path: &str, peer: SocketAddr, headers: &HeaderMap) -> Response {
        // No ruleset file may be named `unknown`: this arrival has none.
        let arrival = self.arrival(UNKNOWN_RULESET);
        if let Some(refusal) = self.source_refused(&arrival, peer, headers) {
            return refusal;
        }
        let message = "no such path: confirm URLs are /confirm and /confirm/RULESET";
        self.not_found(&arrival, path, message, headers)
    }

    /// The 404 of a confirm URL that names nothing loaded: `requested` is the ruleset name
    /// asked for, or the whole path when it is no confirm path at all.
    fn not_found(
        &self,
        arrival: &Arrival,
        requested: &str,
        message: &str,
        headers: &HeaderMap,
    ) -> Response {
        // Every payment sent to a mistyped confirm URL fails: say what was asked for (metrics
        // and the record say `unknown`; label values must not be callers' choice).
        let requested = crate::text::cut(requested, 100);
        tracing::warn!(decision_id = arrival.id.as_str(), requested = %requested, "{message}");
        unread_body(
            headers,
            self.refuse(arrival, 404, UNKNOWN_RULESET_REASON.into()),
        )
    }

    async fn confirm(
        &self,
        ruleset: &str,
        peer: SocketAddr,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let s = &self.0;
        let mut arrival = self.arrival(ruleset);
        // Guards in the order of SPEC §9; the first failing one answers.
        if let Some(refusal) = self.source_refused(&arrival, peer, &headers) {
            return refusal;
        }
        let Some(set) = arrival.ruleset.clone() else {
            return self.not_found(&arrival, ruleset, NO_SUCH_RULESET, &headers);
        };
        self.note_deadline(set.settings.deadline);
        let bytes = match self.read_body(&arrival, &set, &headers, body).await {
            Ok(bytes) => bytes,
            Err(refusal) => return refusal,
        };
        if let Some(verifier) = &s.verifier {
            if let Some(answer) = self
                .signed(verifier, &mut arrival, &set, (&headers, &bytes), peer)
                .await
            {
                return answer;
            }
        }
        let req = match payload::parse_request(&headers, &bytes) {
            Ok(Parsed::Confirm(req)) => req,
            Ok(Parsed::Ignored { message_type, api }) => {
                arrival.ignored_api = Some(api);
                tracing::info!(
                    decision_id = arrival.id.as_str(),
                    message_type,
                    "webhook type ignored"
                );
                return self.finish(&arrival, Decision::ignored(), None);
            }
            Err(e) => {
                // Read with another `Content-Type` (which the signature does not cover), the
                // same signed body may well be a request: not an answer for its repeats.
                if let Delivery::First(ticket) = &arrival.delivery {
                    ticket.release();
                }
                return self.refuse(&arrival, e.status(), e.to_string());
            }
        };
        let original = Original::received(bytes, &headers);
        // Shutting down, a request whose answer would be due after the grace period (its head
        // was only partly in when the signal came, and the rest came late) would be cut off
        // there, unanswered and unrecorded, perhaps after a `forward` reached the merchant:
        // it is evaluated as if its answer were due now. The checks that take nanoseconds
        // decide as ever; the first rule that would wait (a call, Rhai) is not run, and the
        // ruleset's `on_error` decides there. Nothing waits, so nothing needs a task.
        let stopping = *self.0.stopping.borrow();
        if let Some(until) = stopping {
            if engine::answer_at_latest(&set.settings, arrival.started) > until {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    "shutting down: this request's answer would be due after the grace period, so only the rules that need no waiting are run; on_error decides at the first that would wait"
                );
                let ctx = self.context(&arrival, &original, None);
                let decision = engine::evaluate_at_shutdown(&set, &req, &ctx).await;
                return self.finish(&arrival, decision, Some(&req));
            }
        }
        // An evaluation that waits — for an upstream, or for its turn to run Rhai — could be
        // cut off midway by its caller going away (after a `forward` or a `POST` has reached
        // the merchant, or with no record of the request at all): it gets a task of its own.
        // Every other check runs without yielding.
        // Already due (the body came in as the answer fell due), the evaluation waits for
        // nothing either (see `engine::evaluate`): run apart, it would race the timer that
        // answers by `on_error`, which has fired already, and a refusing check could lose.
        let due = tokio::time::Instant::now() >= engine::answer_by(&set.settings, arrival.started);
        if (set.calls_upstreams || set.uses_rhai) && !due {
            self.detached(arrival, set, req, original).await
        } else {
            let decision =
                engine::evaluate(&set, &req, &self.context(&arrival, &original, None)).await;
            self.finish(&arrival, decision, Some(&req))
        }
    }

    /// What an evaluation of the request `arrival` needs besides the rules and the request.
    fn context<'a>(
        &'a self,
        arrival: &'a Arrival,
        original: &'a Original,
        sent: Option<&'a engine::SentCalls>,
    ) -> Context<'a> {
        Context {
            scripts: &self.0.scripts,
            upstreams: self.0.upstreams.clone(),
            // The arrival: the decision log's `time`, so a record replayed with `eval --now`
            // falls on the same side of every sale window.
            now: arrival.arrived.fixed_offset(),
            started: arrival.started,
            original,
            decision_id: Some(arrival.id.as_str()),
            sent,
        }
    }

    /// The evaluation and [`Self::finish`] in a task of their own, for a ruleset that calls
    /// upstreams or runs Rhai. Run in the connection's task, the evaluation would be dropped
    /// with it when the caller hangs up while a rule waits for an upstream or its turn: a
    /// `forward` may already have reached the merchant, yet there would be no log line, no
    /// decision record and no count.
    /// Apart, it finishes (within its deadline) whatever the caller does, and shutdown waits
    /// for it (see [`App::serve`](super::App::serve)).
    async fn detached(
        &self,
        arrival: Arrival,
        set: Arc<Ruleset>,
        req: ConfirmRequest,
        original: Original,
    ) -> Response {
        let (tx, mut rx) = oneshot::channel();
        let state = self.clone();
        // What the answer needs should the evaluation end without one (its reason may name
        // the order).
        let req = Arc::new(req);
        let (kept, ruleset, kept_req) = (arrival.clone(), set.clone(), req.clone());
        let answer = AnswerClaim::default();
        let answer_here = answer.clone();
        let due = engine::answer_at_latest(&ruleset.settings, kept.started);
        // Only a ruleset that may change something at the merchant has calls worth naming.
        let sent = set
            .has_side_effects
            .then(|| Arc::new(engine::SentCalls::default()));
        let sent_here = sent.clone();
        self.0.evaluations.spawn(async move {
            let ctx = state.context(&arrival, &original, sent.as_deref());
            let mut decision = engine::evaluate(&set, &req, &ctx).await;
            if !answer.claim() {
                // Answered at the deadline from the other side (by on_error, warned about
                // there). Its decision is not sent or recorded, but what its rules did is
                // counted: a rule the deadline stopped is an `error` an alert must see.
                state.0.metrics.rule_outcomes(&set, &decision.trace);
                tracing::debug!(
                    decision_id = arrival.id.as_str(),
                    decision = decision.decision.as_str(),
                    "evaluation ended after its answer was due; on_error answered, and this decision was not sent"
                );
                return;
            }
            // Decided, but only after the answer was due (the runtime held up, its timers
            // late): an approval is too late to stand, as if still running then; a refusal
            // stands (see `decided_late`).
            if tokio::time::Instant::now() > due && !engine::stands_late(&decision) {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    decision = decision.decision.as_str(),
                    deadline = ?set.settings.deadline,
                    "evaluation decided only after its answer was due: answered by on_error"
                );
                decision =
                    engine::decided_late(&set.settings, &req, decision, arrival.started.elapsed());
            }
            let response = state.finish(&arrival, decision, Some(&req));
            if tx.send(response).is_err() {
                tracing::warn!(
                    decision_id = arrival.id.as_str(),
                    "answer not delivered: the caller hung up before it was ready"
                );
            }
        });
        // The evaluation keeps its deadline where it awaits; work the timer cannot interrupt
        // (a megabyte answer parsed or freed, on a busy machine) could still hold it past it,
        // so the answer is sent from here then: the ruleset's `on_error`, in time.
        let answered = match tokio::time::timeout_at(due, &mut rx).await {
            Ok(answered) => answered,
            Err(_) if answer_here.claim() => {
                // Its own deadline has passed: where it next pauses, it ends, and what it
                // still has in flight (upstream calls, a turn it waits for) is cancelled. It
                // is not aborted, so that it still counts its rules' outcomes.
                tracing::warn!(
                    decision_id = kept.id.as_str(),
                    deadline = ?ruleset.settings.deadline,
                    "evaluation still running when its answer was due: answered by on_error; it ends at its next pause"
                );
                let decision = engine::overran(
                    &ruleset.settings,
                    &kept_req,
                    kept.started.elapsed(),
                    sent_here.map(|sent| sent.take()).unwrap_or_default(),
                );
                return self.finish(&kept, decision, Some(&kept_req));
            }
            // Taken by the evaluation just now: its answer is on its way.
            Err(_) => rx.await,
        };
        match answered {
            Ok(response) => response,
            // The evaluation panicked (a bug): refused, counted and recorded, rather than a
            // dropped connection.
            Err(_) => {
                tracing::error!(
                    decision_id = kept.id.as_str(),
                    "evaluation ended without an answer"
                );
                let decision = engine::ended_without_answer(
                    &ruleset.settings,
                    &kept_req,
                    kept.started.elapsed(),
                );
                self.finish(&kept, decision, Some(&kept_req))
            }
        }
    }

    /// A guard's refusal, before any rule ran.
    fn refuse(&self, arrival: &Arrival, status: u16, reason: String) -> Response {
        self.0.metrics.guard_refusal(status);
        self.finish(arrival, Decision::reject(status, reason, None), None)
    }

    /// Counts, logs and records one answer, then renders it.
    fn finish(
        &self,
        arrival: &Arrival,
        decision: Decision,
        req: Option<&ConfirmRequest>,
    ) -> Response {
        let s = &self.0;
        if let Delivery::First(ticket) = &arrival.delivery {
            ticket.settle(&arrival.id, &decision);
        }
        let (repeat_of, repeat_refused) = match &arrival.delivery {
            Delivery::RepeatOf(id) => (Some(&**id), None),
            Delivery::Refused(why) => (None, Some(*why)),
            _ => (None, None),
        };
        let elapsed = arrival.started.elapsed();
        s.metrics
            .decision(arrival.ruleset.as_deref(), &decision, elapsed);
        let latency_ms = engine::millis(elapsed);
        // What shadow rules would have done, `rule:outcome,…`: the point of running them.
        let shadow = (!decision.shadow.is_empty()).then(|| {
            let outcomes: Vec<String> = decision
                .shadow
                .iter()
                .map(|s| format!("{}:{}", s.rule, s.outcome.as_str()))
                .collect();
            outcomes.join(",")
        });
        // Plain `&str`s: the line format quotes and escapes a value only when it needs it (an
        // order id comes from outside). Absent fields are left out. Ids from outside are cut
        // for the line (a 60 KB order id fits a body): the decision log keeps them whole.
        let order_id = req.map(|r| crate::text::cut(&r.order_id, LOGGED_ID_MAX));
        let webhook_id = arrival
            .webhook_id
            .as_deref()
            .map(|id| crate::text::cut(id, LOGGED_ID_MAX));
        tracing::info!(
            decision_id = arrival.id.as_str(),
            ruleset = arrival.ruleset_name(),
            decision = decision.decision.as_str(),
            status = decision.status,
            rule = decision.rule.as_deref(),
            reason = decision.reason.as_deref(),
            order_id = order_id.as_deref(),
            shadow = shadow.as_deref(),
            webhook_id = webhook_id.as_deref(),
            repeat_of,
            latency_ms,
            "decision"
        );
        let response = answer(&decision, &arrival.id);
        s.answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(log) = &s.decision_log {
            // A request refused for its signature is anyone's to send: its record keeps the
            // ids it claims (cut, as on the log line) but not its body, so that no one can
            // write 64 KiB records at will.
            let unsigned = arrival.guard == Some(SIGNATURE_GUARD);
            let max = if unsigned { LOGGED_ID_MAX } else { usize::MAX };
            let (order_id, tx_id) = (
                req.map(|r| crate::text::cut(&r.order_id, max)),
                req.map(|r| crate::text::cut(&r.tx_id, max)),
            );
            log.write(&Record {
                time: arrival.arrived,
                decision_id: &arrival.id,
                ruleset: arrival.ruleset_name(),
                rules_version: &arrival.rules.version,
                api: req
                    .map(|r| r.api)
                    .or(arrival.ignored_api)
                    .map(|api| api.as_str()),
                order_id: order_id.as_deref(),
                tx_id: tx_id.as_deref(),
                amount: req.map(|r| &r.amount),
                decision: &decision,
                latency_ms,
                request: req.filter(|_| !unsigned).map(|r| &r.payload),
                repeat_of,
                repeat_refused,
                guard: arrival.guard,
                webhook_id: arrival.webhook_id.as_deref(),
                source: arrival.refused_source,
            });
        }
        response
    }
}

/// Renders a decision as PortOne's answer (SPEC §3).
fn answer(decision: &Decision, id: &str) -> Response {
    let status = StatusCode::from_u16(decision.status).unwrap_or(StatusCode::CONFLICT);
    let mut response = (status, decision.body()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    if let Ok(v) = HeaderValue::from_str(id) {
        h.insert(DECISION_ID, v);
    }
    response
}
