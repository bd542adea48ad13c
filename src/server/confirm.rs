//! The public listener: the `/confirm` routes, the guards in the order of SPEC §9, the
//! evaluation (in a task of its own when it calls upstreams), and the answer with its log line,
//! metrics and decision record.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::deliveries::{Claim, Earlier, Ticket};
use super::{healthz, AppState};
use crate::audit::Record;
use crate::decision::Decision;
use crate::engine::{self, Context, Original};
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::rules::{Rules, Ruleset};
use crate::webhook::Verifier;

/// Bodies over this get 413.
use crate::payload::MAX_BODY;
// The only label an unknown ruleset gets: label values must not be chosen by callers (a
// ruleset file may not take this name).
use crate::rules::UNKNOWN_RULESET;
/// The reason of the 404 for a ruleset that is not loaded.
pub const UNKNOWN_RULESET_REASON: &str = "알 수 없는 결제 확인 경로입니다";
const JSON_UTF8: &str = "application/json; charset=utf-8";
const DECISION_ID: &str = "x-confirm-decision-id";

pub fn public_router(state: AppState) -> Router {
    let confirm_endpoint = || post(confirm).fallback(wrong_method);
    Router::new()
        .route("/confirm", confirm_endpoint())
        // Everything under `/confirm/` is ours to answer (404 with a reason for any name that is
        // not a loaded ruleset, `/confirm/` and `/confirm/a/b` included), so it is matched whole
        // and the name read from the raw path: ruleset names are plain ASCII, so a
        // percent-encoded one never names a ruleset and needs no decoding (or a 400 for bad
        // escapes from the framework).
        .route("/confirm/", confirm_endpoint())
        .route("/confirm/{*ruleset}", confirm_endpoint())
        .route(
            "/healthz",
            get(healthz).fallback(plain(StatusCode::METHOD_NOT_ALLOWED)),
        )
        .fallback(plain(StatusCode::NOT_FOUND))
        .with_state(state)
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
        .confirm(ruleset_in(parts.uri.path()), peer, parts.headers, body)
        .await
}

/// The ruleset a confirm path names, as written: `default` for `/confirm`, `{ruleset}` for
/// `/confirm/{ruleset}`. [`confirm_path`] is the way back.
fn ruleset_in(path: &str) -> &str {
    path.strip_prefix("/confirm/").unwrap_or("default")
}

/// The confirm URL path of ruleset `name`: `/confirm` for `default`.
pub fn confirm_path(name: &str) -> String {
    if name == "default" {
        "/confirm".to_owned()
    } else {
        format!("/confirm/{name}")
    }
}

// A 405 is an answer of the confirm endpoint like any other: counted, logged and recorded,
// after the source guard.
async fn wrong_method(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    state.method_not_allowed(ruleset_in(request.uri().path()), peer, request.headers())
}

/// Per-request facts gathered on the way in, for the log line and decision record.
#[derive(Clone)]
struct Seen {
    id: String,
    started: tokio::time::Instant,
    arrived: DateTime<Utc>,
    /// The ruleset, when one of that name is loaded (metrics label it `unknown` otherwise).
    ruleset: Option<Arc<Ruleset>>,
    /// The rules snapshot this request is answered from.
    rules: Arc<Rules>,
    delivery: Delivery,
    /// The `webhook-id` of a request whose signature was verified (cut at 100 characters: a
    /// sender chooses it), in its log line and record: an operator finds every delivery of a
    /// message by it.
    webhook_id: Option<Box<str>>,
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

impl Seen {
    fn ruleset_name(&self) -> &str {
        self.ruleset
            .as_ref()
            .map_or(UNKNOWN_RULESET, |r| r.name.as_str())
    }
}

impl AppState {
    fn seen(&self, ruleset: &str) -> Seen {
        let rules = self.0.store.current(); // one snapshot for the whole request
        Seen {
            // Written straight into its buffer: `to_string` goes through `core::fmt`.
            id: uuid::Uuid::now_v7()
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .to_owned(),
            started: tokio::time::Instant::now(),
            arrived: Utc::now(),
            ruleset: rules.get(ruleset).cloned(),
            rules,
            delivery: Delivery::Unsigned,
            webhook_id: None,
        }
    }

    fn method_not_allowed(&self, ruleset: &str, peer: SocketAddr, headers: &HeaderMap) -> Response {
        let seen = self.seen(ruleset);
        if let Some(refusal) = self.source_refused(&seen, peer, headers) {
            return refusal;
        }
        unread_body(
            headers,
            self.refuse(&seen, 405, "POST 요청만 받습니다".into()),
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
        let mut seen = self.seen(ruleset);
        // Guards in the order of SPEC §9; the first failing one answers.
        if let Some(refusal) = self.source_refused(&seen, peer, &headers) {
            return refusal;
        }
        let Some(set) = seen.ruleset.clone() else {
            // Every payment sent to a mistyped confirm URL fails: say which name was asked for
            // (metrics and the record say `unknown`; label values must not be callers' choice).
            let requested: String = ruleset.chars().take(100).collect();
            tracing::warn!(decision_id = seen.id.as_str(), requested, "no such ruleset");
            return unread_body(
                &headers,
                self.refuse(&seen, 404, UNKNOWN_RULESET_REASON.into()),
            );
        };
        self.note_deadline(set.settings.deadline);
        let bytes = match self.read_body(&seen, &set, &headers, body).await {
            Ok(bytes) => bytes,
            Err(refusal) => return refusal,
        };
        if let Some(verifier) = &s.verifier {
            if let Some(answer) = self
                .signed(verifier, &mut seen, &set, &headers, &bytes)
                .await
            {
                return answer;
            }
        }
        let content_type = match payload::body_type(&headers) {
            Ok(ct) => ct,
            Err(e) => return self.refuse(&seen, e.status(), e.to_string()),
        };
        let req = match payload::parse_bytes(content_type, &bytes) {
            Ok(Parsed::Confirm(req)) => req,
            Ok(Parsed::Ignored { message_type }) => {
                tracing::info!(
                    decision_id = seen.id.as_str(),
                    message_type,
                    "webhook type ignored"
                );
                return self.finish(&seen, Decision::ignored(), None);
            }
            Err(e) => return self.refuse(&seen, e.status(), e.to_string()),
        };
        let original = Original {
            // An empty one was read as missing, and is forwarded as missing.
            content_type: headers
                .get(header::CONTENT_TYPE)
                .filter(|ct| !ct.as_bytes().trim_ascii().is_empty())
                .cloned(),
            webhook_headers: headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: bytes,
        };
        // An evaluation that waits for an upstream could be cut off midway by its caller going
        // away, after a `forward` or a `POST` has reached the merchant: it gets a task of its own.
        // Every other check (and Rhai) runs without yielding.
        if set.calls_upstreams {
            self.detached(seen, set, req, original).await
        } else {
            let decision = engine::evaluate(&set, &req, &self.context(&seen, &original)).await;
            self.finish(&seen, decision, Some(&req))
        }
    }

    /// What an evaluation of the request `seen` needs besides the rules and the request.
    fn context<'a>(&'a self, seen: &'a Seen, original: &'a Original) -> Context<'a> {
        Context {
            scripts: &self.0.scripts,
            upstreams: self.0.upstreams.clone(),
            // The arrival: the decision log's `time`, so a record replayed with `eval --now`
            // falls on the same side of every sale window.
            now: seen.arrived.fixed_offset(),
            started: seen.started,
            original,
            decision_id: Some(seen.id.as_str()),
        }
    }

    /// The evaluation and [`Self::finish`] in a task of their own, for a ruleset that calls
    /// upstreams. Run in the connection's task, the evaluation would be dropped with it when
    /// the caller hangs up while a rule waits for an upstream: a `forward` may already have
    /// reached the merchant, yet there would be no log line, no decision record and no count.
    /// Apart, it finishes (within its deadline) whatever the caller does, and shutdown waits
    /// for it (see [`App::serve`](super::App::serve)).
    async fn detached(
        &self,
        seen: Seen,
        set: Arc<Ruleset>,
        req: ConfirmRequest,
        original: Original,
    ) -> Response {
        let (tx, rx) = oneshot::channel();
        let state = self.clone();
        // What the answer needs should the evaluation end without one (its reason may name
        // the order).
        let req = Arc::new(req);
        let (kept, ruleset, kept_req) = (seen.clone(), set.clone(), req.clone());
        self.0.evaluations.spawn(async move {
            let decision = engine::evaluate(&set, &req, &state.context(&seen, &original)).await;
            let response = state.finish(&seen, decision, Some(&req));
            if tx.send(response).is_err() {
                tracing::warn!(
                    decision_id = seen.id.as_str(),
                    "answer not delivered: the caller hung up before it was ready"
                );
            }
        });
        match rx.await {
            Ok(response) => response,
            // The evaluation panicked (a bug): an error the ruleset's way, counted and recorded,
            // rather than a dropped connection.
            Err(_) => {
                tracing::error!(
                    decision_id = kept.id.as_str(),
                    "evaluation ended without an answer"
                );
                let decision = engine::error_refusal(&ruleset.settings, &kept_req, None);
                self.finish(&kept, decision, None)
            }
        }
    }

    /// Checks the request's signature and claims its message. `None` for its first delivery,
    /// to be evaluated (the ticket its answer settles is put in `seen`); otherwise the answer:
    /// the 401 of a bad signature or of a message first sent to another ruleset, or a repeat's.
    async fn signed(
        &self,
        verifier: &Verifier,
        seen: &mut Seen,
        set: &Ruleset,
        headers: &HeaderMap,
        body: &bytes::Bytes,
    ) -> Option<Response> {
        let s = &self.0;
        let now = seen.arrived.timestamp();
        let message = match verifier.verify(headers, body, now) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(decision_id = seen.id.as_str(), error = %e, "webhook signature refused");
                return Some(self.refuse(seen, 401, e.reason().into()));
            }
        };
        seen.webhook_id = Some(
            String::from_utf8_lossy(message.id)
                .chars()
                .take(100)
                .collect(),
        );
        let (claim, forgotten) = s.deliveries.claim(message, body, &set.name, now);
        s.metrics.delivery_ids_forgotten(forgotten);
        match claim {
            Claim::First(ticket) => {
                seen.delivery = Delivery::First(Arc::new(ticket));
                None
            }
            Claim::Repeat(earlier) => Some(self.repeat(seen, set, earlier, headers, body).await),
            Claim::Elsewhere => Some(self.not_a_copy(
                seen,
                (headers, body),
                "other_ruleset",
                "for another ruleset",
                "다른 결제 확인 경로로 이미 받은 요청입니다",
            )),
            Claim::Altered => Some(self.not_a_copy(
                seen,
                (headers, body),
                "other_body",
                "with another body",
                "이미 받은 요청과 같은 id로 다른 내용의 요청이 왔습니다",
            )),
        }
    }

    /// The 401 of a message id seen before on a delivery that is no copy of the first. Its
    /// line and record name the webhook id (as the first delivery's do) and, when its body
    /// reads, the request, so that an operator can put the two side by side.
    fn not_a_copy(
        &self,
        seen: &mut Seen,
        (headers, body): (&HeaderMap, &bytes::Bytes),
        label: &'static str,
        how: &str,
        reason: &str,
    ) -> Response {
        self.0.metrics.repeated_delivery(label);
        seen.delivery = Delivery::Refused(label);
        tracing::warn!(
            decision_id = seen.id.as_str(),
            webhook_id = seen.webhook_id.as_deref(),
            "webhook message already received {how}"
        );
        let decision = Decision::reject(401, reason.into(), None);
        self.finish(seen, decision, body_request(headers, body).as_ref())
    }

    /// The answer to a repeated delivery of a signed message: the one its first delivery got,
    /// once given. A first delivery still unanswered at this request's deadline, or ended
    /// without an answer, is a refusal: a repeat never approves what its first delivery did not.
    /// The body is read only for the log line and record (the order id an operator looks for).
    async fn repeat(
        &self,
        seen: &mut Seen,
        set: &Ruleset,
        earlier: Earlier,
        headers: &HeaderMap,
        body: &bytes::Bytes,
    ) -> Response {
        let answered = tokio::time::timeout_at(
            engine::answer_by(&set.settings, seen.started),
            earlier.answer(),
        )
        .await
        .ok()
        .flatten();
        let req = body_request(headers, body);
        let Some(answered) = answered else {
            self.0.metrics.repeated_delivery("unanswered");
            seen.delivery = Delivery::Refused("unanswered");
            tracing::warn!(
                decision_id = seen.id.as_str(),
                "webhook message repeated while its first delivery has no answer"
            );
            let reason = "같은 결제 확인 요청을 처리하고 있습니다. 잠시 후 다시 시도해 주세요.";
            let decision = Decision::reject(set.settings.reject_status, reason.into(), None);
            return self.finish(seen, decision, req.as_ref());
        };
        self.0.metrics.repeated_delivery("answered");
        seen.delivery = Delivery::RepeatOf(answered.decision_id.clone());
        self.finish(seen, answered.decision(), req.as_ref())
    }

    /// The 403 of `--allow-from`, when the source is not allowed.
    fn source_refused(
        &self,
        seen: &Seen,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Option<Response> {
        let allow_from = &self.0.allow_from;
        if allow_from.is_empty() {
            return None;
        }
        match self.client_addr(peer, headers) {
            Some(client) if allow_from.iter().any(|net| net.contains(&client)) => return None,
            Some(client) => {
                tracing::warn!(decision_id = seen.id.as_str(), %client, "source address not allowed");
            }
            None => {
                tracing::warn!(
                    decision_id = seen.id.as_str(),
                    "source address unknown: X-Forwarded-For does not end in an address"
                );
            }
        }
        let refusal = self.refuse(seen, 403, "허용되지 않은 발신 주소입니다".into());
        // The socket's own peer is refused: it keeps no connection open for its next attempt.
        // (Behind a load balancer the connection is the balancer's, shared with allowed clients:
        // kept, unless the body left unread ends it anyway.)
        Some(if self.0.trust_forwarded_for {
            unread_body(headers, refusal)
        } else {
            closing(refusal)
        })
    }

    /// The body, read within the deadline and the size limit, or the refusal saying which
    /// it broke (413, 408; 400 when the HTTP layer could not read it). Each refusal leaves the
    /// body unread (or half read) on the connection, so hyper closes it after the answer,
    /// which says so: a client pooling connections sends its next request on a new one.
    async fn read_body(
        &self,
        seen: &Seen,
        set: &Ruleset,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<bytes::Bytes, Response> {
        let too_large = || {
            let e = payload::PayloadError::TooLarge;
            closing(self.refuse(seen, e.status(), e.to_string()))
        };
        // A body announced as too large is refused before any of it is read (and before an
        // `Expect: 100-continue` client is told to send it).
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        // The deadline covers a body sent slowly too; what has not arrived cannot be checked.
        let read = axum::body::to_bytes(body, MAX_BODY);
        match tokio::time::timeout_at(engine::answer_by(&set.settings, seen.started), read).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(e)) if over_limit(&e) => Err(too_large()),
            // Nobody is left to answer, and nothing was read to decide about: like a request
            // dropped before it was read, no decision, no count, no record.
            Ok(Err(e)) if caller_gone(&e) => {
                tracing::warn!(
                    decision_id = seen.id.as_str(),
                    "the caller hung up while sending the request body; nothing was decided"
                );
                Err(closing(StatusCode::BAD_REQUEST.into_response()))
            }
            Ok(Err(e)) => {
                tracing::warn!(decision_id = seen.id.as_str(), error = %e, "request body could not be read");
                Err(closing(self.refuse(
                    seen,
                    400,
                    "요청 본문을 읽지 못했습니다".into(),
                )))
            }
            Err(_) => {
                tracing::warn!(
                    decision_id = seen.id.as_str(),
                    "request body not received within the deadline"
                );
                Err(closing(self.refuse(
                    seen,
                    408,
                    "요청 본문을 제한 시간 안에 받지 못했습니다".into(),
                )))
            }
        }
    }

    /// Whether a connection from `peer` is refused whatever it sends: `--allow-from` is set,
    /// `peer` is not in it, and it is not a load balancer speaking for others
    /// (`--trust-forwarded-for`). Such a connection gets a short head timeout.
    pub(super) fn refuses_at_sight(&self, peer: IpAddr) -> bool {
        let s = &self.0;
        !s.allow_from.is_empty()
            && !s.trust_forwarded_for
            && !s.allow_from.iter().any(|net| net.contains(&unmapped(peer)))
    }

    /// With `--trust-forwarded-for`, the right-most `X-Forwarded-For` entry: the address our
    /// own load balancer saw. Entries left of it are written by the client and prove nothing.
    /// `None` when that entry is not an address (`unknown`, garbage): the source is then
    /// unknown, never the load balancer's own address, which an allow-list may well contain.
    fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let forwarded = self
            .0
            .trust_forwarded_for
            .then(|| headers.get_all("x-forwarded-for").iter().next_back())
            .flatten();
        let ip = match forwarded {
            None => peer.ip(),
            // Only the right-most entry is read: those to its left are the client's to write,
            // bytes that are not text included.
            Some(v) => {
                let last = v.as_bytes().rsplit(|&b| b == b',').next()?;
                forwarded_addr(std::str::from_utf8(last).ok()?)?
            }
        };
        Some(unmapped(ip))
    }

    fn refuse(&self, seen: &Seen, status: u16, reason: String) -> Response {
        self.finish(seen, Decision::reject(status, reason, None), None)
    }

    /// Counts, logs and records one answer, then renders it.
    fn finish(&self, seen: &Seen, decision: Decision, req: Option<&ConfirmRequest>) -> Response {
        let s = &self.0;
        if let Delivery::First(ticket) = &seen.delivery {
            ticket.settle(&seen.id, &decision);
        }
        let (repeat_of, repeat_refused) = match &seen.delivery {
            Delivery::RepeatOf(id) => (Some(&**id), None),
            Delivery::Refused(why) => (None, Some(*why)),
            _ => (None, None),
        };
        let elapsed = seen.started.elapsed();
        s.metrics
            .decision(seen.ruleset.as_deref(), &decision, elapsed);
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
        // order id comes from outside). Absent fields are left out.
        tracing::info!(
            decision_id = seen.id.as_str(),
            ruleset = seen.ruleset_name(),
            decision = decision.decision.as_str(),
            status = decision.status,
            rule = decision.rule.as_deref(),
            reason = decision.reason.as_deref(),
            order_id = req.map(|r| r.order_id.as_str()),
            shadow = shadow.as_deref(),
            webhook_id = seen.webhook_id.as_deref(),
            repeat_of,
            latency_ms,
            "decision"
        );
        let response = answer(&decision, &seen.id);
        if let Some(log) = &s.decision_log {
            log.write(&Record {
                time: seen.arrived,
                decision_id: &seen.id,
                ruleset: seen.ruleset_name(),
                rules_version: &seen.rules.version,
                api: req.map(|r| r.api.as_str()),
                order_id: req.map(|r| r.order_id.as_str()),
                tx_id: req.map(|r| r.tx_id.as_str()),
                amount: req.map(|r| &r.amount),
                decision: &decision,
                latency_ms,
                request: req.map(|r| &r.payload),
                repeat_of,
                repeat_refused,
                webhook_id: seen.webhook_id.as_deref(),
            });
        }
        response
    }
}

/// An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d: as a.b.c.d.
pub(crate) fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port as some load balancers
/// write it (`203.0.113.7:443`, `[2001:db8::1]:443`), or an IPv6 address in brackets without
/// one (`[2001:db8::1]`, as RFC 7239's `Forwarded` writes it).
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    // HTTP's own whitespace only (spaces and tabs around the comma), not Unicode's.
    let entry = entry.trim_matches([' ', '\t']);
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        })
}

/// Whether reading the body failed because the connection closed (or was reset) before all
/// of it came: hyper says so with an I/O error of its own under the body error.
fn caller_gone(e: &axum::Error) -> bool {
    use std::io::ErrorKind;
    crate::error_chain(e).any(|err| {
        err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
            )
        })
    })
}

/// Whether reading the body failed because it is over [`MAX_BODY`].
fn over_limit(e: &axum::Error) -> bool {
    crate::error_chain(e).any(|err| err.is::<http_body_util::LengthLimitError>())
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

/// The request a body holds, if it reads as one: for the log line and record of an answer
/// that no rule decided.
fn body_request(headers: &HeaderMap, body: &bytes::Bytes) -> Option<ConfirmRequest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match payload::parse_bytes(content_type, body) {
        Ok(Parsed::Confirm(req)) => Some(req),
        _ => None,
    }
}

/// `answer`, to a request whose body is left unread, with `Connection: close` when there is a
/// body: hyper ends such a connection after the answer (unless the whole body happened to be
/// in already), and the answer says so, so that a client pooling connections does not send
/// its next request into a connection being closed.
fn unread_body(headers: &HeaderMap, answer: Response) -> Response {
    let empty = headers.get(header::TRANSFER_ENCODING).is_none()
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|n| n.as_bytes() == b"0");
    if empty {
        answer
    } else {
        closing(answer)
    }
}

/// `answer` with `Connection: close`: hyper ends the connection after it.
fn closing(mut answer: Response) -> Response {
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}
