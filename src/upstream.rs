//! Calls to merchant services: the [`Upstreams`] seam the engine talks through, its real HTTP
//! implementation (two clients per upstream, built at load: pooled for GETs, a connection per
//! call for the rest), and background health probes.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::metrics::Metrics;
use crate::rules::{Health, Upstream};

mod body;
pub mod canned;
mod probe;

use body::{mask_cut_secret, mask_json, masked, read_body_noting, too_many_parts};
pub use body::{parse_body, MAX_JSON_PARTS};
pub use probe::{same_probe_request, start_probes, start_probes_of, HealthObserver};

/// Answers larger than this are cut off: a confirm check reads a few fields, never megabytes.
/// The status still counts; a `require` that reads the cut body says so in its error.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long an idle connection to an upstream is kept for reuse: below the keep-alive
/// timeouts merchant servers commonly use (Node's 5 s).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The HTTP client of an upstream: no redirects followed (a confirm check must see the
/// merchant's own answer, not wherever it redirects), and with `pool`, idle connections kept
/// 4 s; without, none kept, so every call has a connection of its own.
///
/// A connection not made within a little less than the upstream's `timeout` fails as such
/// ([`UpstreamError::ConnectTimeout`]), just before the timeout would end the call as a whole:
/// told apart, a `forward` that timed out before it had a connection is known never to have
/// reached the merchant, where one that timed out waiting for the answer may have. A layer
/// around the whole connect (every address of the host, and TLS): reqwest's `connect_timeout`
/// is split between a host's addresses, so that a merchant behind eight would get an eighth
/// of it for each.
pub fn http_client(pool: bool, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let connect = timeout - (timeout / 50).min(Duration::from_millis(20));
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connector_layer(tower::timeout::TimeoutLayer::new(connect))
        .tcp_nodelay(true);
    if pool {
        builder.pool_idle_timeout(POOL_IDLE)
    } else {
        builder.pool_max_idle_per_host(0)
    }
    .build()
}

/// How soon after a GET goes out a closed connection is taken for a pooled one the upstream
/// closed as the request was sent (and the GET sent once more): about one round trip.
const STALE_RACE: Duration = Duration::from_millis(250);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One HTTP call to an upstream, already rendered from the rule's templates.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// The rule making the call; `None` for a health probe. Replay answers each rule with the
    /// answer its record holds, not whichever rule's answer to the same call came first.
    pub rule: Option<Arc<str>>,
    pub method: http::Method,
    /// Appended to the upstream's base URL.
    pub path_and_query: String,
    /// Merged over the upstream's own headers.
    pub headers: http::HeaderMap,
    pub body: Option<Bytes>,
    /// When the body must be in, for a call an enforced rule waits on. `None`: the timeout
    /// alone (health probes; shadow rules, whose wait ends at the shadow cut-off).
    pub body_by: Option<BodyDue>,
    /// One of the upstream's `max_connections`, taken before the call started (a prefetch
    /// takes its own in rule order, see `start_prefetches`); otherwise the call waits for one.
    pub slot: TakenSlot,
    /// A prefetch's: shared with the decision record, to settle how the call ended.
    pub end: Option<Arc<CallEnd>>,
}

/// Which of a prefetch and its request's decision record says first how the call ended. The
/// record lists a prefetch no rule read and still under way as cancelled, and it is stopped;
/// its answer may come in at that very moment, and is then counted `cancelled` as well, so
/// that `/metrics` and the decision log agree call for call (they disagreed on about 1% of
/// such calls under load).
#[derive(Debug, Default)]
pub struct CallEnd(std::sync::Mutex<Ending>);

#[derive(Debug, Default)]
enum Ending {
    #[default]
    Open,
    /// The call's answer's status, or its error.
    Ended(Option<u16>, Option<String>),
    /// The record called it cancelled.
    Abandoned,
}

impl CallEnd {
    /// The call ended with `result`; `false` when the record has called it cancelled already.
    fn ended(&self, result: &Result<UpstreamResponse, UpstreamError>) -> bool {
        let mut ending = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(*ending, Ending::Abandoned) {
            return false;
        }
        *ending = match result {
            Ok(r) => Ending::Ended(Some(r.status), None),
            Err(e) => Ending::Ended(None, Some(e.to_string())),
        };
        true
    }

    /// The record's turn: the call's status or error if it has ended; else it is cancelled,
    /// from now on for the call too, and both are `None`.
    pub fn abandon(&self) -> (Option<u16>, Option<String>) {
        let mut ending = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*ending {
            Ending::Ended(status, error) => (*status, error.clone()),
            _ => {
                *ending = Ending::Abandoned;
                (None, None)
            }
        }
    }
}

/// A connection slot a call holds from before it starts until it ends. A copy of the call (a
/// record of it) holds none: the slot is the call's own.
#[derive(Debug, Default)]
pub struct TakenSlot(pub Option<tokio::sync::OwnedSemaphorePermit>);

impl Clone for TakenSlot {
    fn clone(&self) -> Self {
        TakenSlot(None)
    }
}

/// When the body of an answer an enforced rule waits on must be in. A body still coming then
/// is cut there, so the status that already arrived decides (a merchant's refusal stays a
/// refusal) instead of the deadline deciding by `on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDue {
    /// The request's deadline less time for the rule to decide.
    pub by: tokio::time::Instant,
    /// The latest a body is read to, for an answer whose status line comes late: the body is
    /// due `late - by` after its status line, but never before `by` nor after `late`. An
    /// upstream often writes its headers and its body apart, a fraction of a millisecond
    /// between them; cut at `by`, an answer that came whole that late (or straddling `by`)
    /// would lose its body to the timer (a sold-out refusal made an error that
    /// `on_error: approve` let through). Not before `by`.
    pub late: tokio::time::Instant,
    /// The request's deadline. A body still coming at `by` of a call whose own `timeout` ends
    /// before it is cut there all the same (its rule must have time to decide), but as the
    /// call's failure, for the rule's `on_error`, as its timeout would have ended it before the
    /// deadline — not the deadline's, for the ruleset's: one rule's `on_error: reject` turned
    /// into the ruleset's `approve` by how the answer was slow.
    pub deadline: tokio::time::Instant,
}

impl BodyDue {
    /// When the body of an answer whose status line came at `status_at` must be in.
    fn for_status_at(&self, status_at: tokio::time::Instant) -> tokio::time::Instant {
        (status_at + (self.late - self.by)).clamp(self.by, self.late)
    }
}

/// An upstream's answer as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON, or the text when the body is not JSON.
    pub body: Value,
    /// Why `body` holds only the start of the body, or is kept as text, when it is: it was
    /// over [`MAX_RESPONSE_BYTES`], the upstream stopped sending it, its rule had to decide, or
    /// it holds too many values. The status came whole and still counts.
    pub incomplete: Option<Incomplete>,
    /// What the JSON parser said of a body that did not parse as JSON (then `body` is its
    /// text), for the error of a `require` that reads its fields.
    pub not_json: Option<String>,
    /// Whether parsing it, handing it to Rhai and freeing it take long enough to be done off
    /// the runtime's workers ([`is_large`]).
    pub large: bool,
}

/// A large answer is freed off the runtime's threads wherever it is dropped: the answers of a
/// burst of requests that all reached their deadline together (their prefetches done, never
/// read) were otherwise freed one after another on the workers at that moment, and the last
/// requests' answers went out up to 35 ms late.
impl Drop for UpstreamResponse {
    fn drop(&mut self) {
        if self.large {
            crate::background::free(std::mem::take(&mut self.body));
        }
    }
}

/// A body from this size on is parsed (and turned into Rhai's values) on a thread of its own
/// ([`crate::background::run`]):
/// up to [`MAX_RESPONSE_BYTES`] of JSON takes a server thread tens of milliseconds, during
/// which the request's deadline timer could not fire (the answer would go out late).
pub const BIG_BODY: usize = 64 * 1024;

/// A body of more values and keys than this is large whatever its size: the cost grows with
/// the parts, not the bytes — 52 KB of 6,600 one-key objects took 5.5 ms to parse, convert,
/// copy and free, the whole margin a short deadline leaves. A stock or order answer has tens.
pub const MANY_PARTS: usize = 2_000;

/// Whether a body is read, converted and freed off the runtime's workers: from [`BIG_BODY`]
/// bytes, or with more than [`MANY_PARTS`] values and keys.
pub fn is_large(body: &[u8]) -> bool {
    body.len() >= BIG_BODY || crate::payload::more_parts_than(body, MANY_PARTS)
}

/// `path_and_query` as the URL parser sends it after the upstream's base URL: text it does not
/// send as written (beyond ASCII, spaces, quotes, a `\`, a `#…`) percent-encoded or
/// resolved as it does. Traces, the decision log and canned-answer keys name a call by this, so
/// that they say what the merchant's access log says (a rule's own `/재고/{order_id}` is sent
/// as `/%EC%9E%AC%EA%B3%A0/…`).
pub fn as_sent(path_and_query: &str) -> Cow<'_, str> {
    // Text the parser keeps as it is: most paths, kept without a parse.
    // What is not a path (a canned key written without its `/`) is left to be refused.
    // (Not `'`, which a query sends as `%27`.)
    let kept = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/?%".contains(&b);
    if !path_and_query.starts_with('/') || path_and_query.bytes().all(kept) {
        return Cow::Borrowed(path_and_query);
    }
    match reqwest::Url::parse(&format!("http://h{path_and_query}")) {
        Ok(url) => {
            let mut sent = url.path().to_owned();
            if let Some(query) = url.query() {
                sent.push('?');
                sent.push_str(query);
            }
            Cow::Owned(sent)
        }
        Err(_) => Cow::Borrowed(path_and_query),
    }
}

/// `.` or `..`, also percent-encoded, which URL parsers resolve (WHATWG URL, RFC 3986 §5.2.4).
pub fn is_dot_segment(segment: &str) -> bool {
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

/// Why an answer's body is not all there to read (see [`UpstreamResponse::incomplete`]). Its
/// text is what traces, the decision log and rule tests say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// Over [`MAX_RESPONSE_BYTES`]: its start is kept.
    SizeCap,
    /// The upstream stopped sending it: closed early, or broke its framing (why).
    StoppedComing(String),
    /// Still coming when the call's own timeout ended it (why). Read back from a decision
    /// record as [`Incomplete::StoppedComing`], which it reads as: the two differ only in what
    /// `/metrics` counts (`timeout`, where the other is an `error`).
    TimedOut(String),
    /// Still coming when its rule had to decide, before the request's deadline: the
    /// deadline's business.
    Deadline,
    /// The same for a call whose own `timeout` would have ended it before the deadline: the
    /// call's failure, for its rule's `on_error`, as an answer its timeout cut would be.
    OwnTimeout,
    /// Whole, but holding more values than are read as JSON: kept as text.
    TooManyParts,
    /// Written so in a decision record of another build, of none of the kinds above: read as
    /// part of an answer.
    Logged(String),
}

/// The error for a header name HTTP does not allow, with the likely fix: a space where a `-`
/// goes (`Content Type`), or a value written into the name (`Authorization: Bearer x`).
pub(crate) fn invalid_header_name(name: &str) -> String {
    let hint = if let Some((key, _)) = name.split_once(':') {
        format!(
            "; write \"{}\" as the key and what follows the \":\" as its value",
            key.trim()
        )
    } else if name.trim().contains([' ', '\t']) {
        format!(
            "; did you mean \"{}\"?",
            name.trim().replace([' ', '\t'], "-")
        )
    } else {
        String::new()
    };
    format!("invalid header name \"{name}\": a header name holds only ASCII letters, digits and symbols such as - and _, with no spaces{hint}")
}

/// How an [`Incomplete::StoppedComing`] (and the two cuts at the deadline) reads.
const CUT_SHORT: &str = "cut short: ";

/// Why a body is not read as JSON although it came whole (the count is
/// [`body::MAX_JSON_PARTS`], checked by a test below).
const TOO_MANY_PARTS: &str = "not read: it holds more than 20,000 values and keys";

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incomplete::SizeCap => write!(f, "cut at {} KiB", MAX_RESPONSE_BYTES / 1024),
            Incomplete::StoppedComing(why) | Incomplete::TimedOut(why) => {
                write!(f, "{CUT_SHORT}{why}")
            }
            Incomplete::Deadline => write!(
                f,
                "{CUT_SHORT}still coming when its rule had to decide, before the request's deadline"
            ),
            Incomplete::OwnTimeout => write!(
                f,
                "{CUT_SHORT}still coming when its rule had to decide, its own timeout ending before the request's deadline"
            ),
            Incomplete::TooManyParts => f.write_str(TOO_MANY_PARTS),
            Incomplete::Logged(text) => f.write_str(text),
        }
    }
}

impl Incomplete {
    /// Whether the body stopped coming (see [`UpstreamResponse::stopped_coming`]).
    pub fn stopped_coming(&self) -> bool {
        matches!(
            self,
            Incomplete::StoppedComing(_)
                | Incomplete::TimedOut(_)
                | Incomplete::Deadline
                | Incomplete::OwnTimeout
        )
    }

    /// The kind a decision record's text names (replay gives a rule the answer as logged).
    pub fn from_logged(text: &str) -> Incomplete {
        let known = [
            Incomplete::SizeCap,
            Incomplete::Deadline,
            Incomplete::OwnTimeout,
            Incomplete::TooManyParts,
        ];
        if let Some(kind) = known.into_iter().find(|k| k.to_string() == text) {
            return kind;
        }
        match text.strip_prefix(CUT_SHORT) {
            Some(why) => Incomplete::StoppedComing(why.to_owned()),
            None => Incomplete::Logged(text.to_owned()),
        }
    }
}

impl UpstreamResponse {
    /// Whether `body` holds only part of what came (cut by the size cap, the upstream or the
    /// deadline), rather than all of it, kept as text.
    pub fn partial(&self) -> bool {
        self.incomplete
            .as_ref()
            .is_some_and(|why| *why != Incomplete::TooManyParts)
    }

    /// Whether the body stopped coming: the upstream closed early, or was still sending at its
    /// timeout (or, for a rule, near the deadline) — not cut at the size cap.
    pub fn stopped_coming(&self) -> bool {
        self.incomplete
            .as_ref()
            .is_some_and(Incomplete::stopped_coming)
    }

    /// Whether the body was cut because the request's deadline neared (not by the upstream
    /// or the size cap): a check that could not complete for the deadline's sake.
    pub fn cut_by_deadline(&self) -> bool {
        self.incomplete == Some(Incomplete::Deadline)
    }
}

/// Why a call got no answer. Each is an error decided by `on_error`, traced with its cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("connection refused by {0}")]
    Refused(String),
    #[error("DNS lookup failed for {0}")]
    Dns(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A [`Self::Timeout`] that came before a connection was made (and a TLS handshake done):
    /// the request was never sent.
    #[error("timed out after {0:?} before a connection was made: nothing was sent")]
    ConnectTimeout(Duration),
    /// A [`Self::Timeout`] of a call that first waited for a free connection (`max_connections`):
    /// the upstream had only what was left of the `timeout`, which the trace says.
    #[error("timed out after {timeout:?}, {}ms of it waiting for a free connection (max_connections: {max})", waited.as_millis())]
    TimeoutAfterWaiting {
        timeout: Duration,
        waited: Duration,
        max: u32,
    },
    /// Every connection `max_connections` allows stayed busy for the whole `timeout`.
    #[error("timed out after {waited:?} waiting for a free connection (max_connections: {max})")]
    NoFreeConnection { max: u32, waited: Duration },
    #[error("request failed: {0}")]
    Other(String),
    /// A failure as a decision log recorded it, replayed (see `CannedAnswer::logged_failure`).
    #[error("{0}")]
    Logged(String),
    /// An answer not on file: a rule test's canned answers, or a replayed record, hold none
    /// for the call (`test` and `replay` only).
    #[error("no answer on file for {0}")]
    NoCannedAnswer(String),
    /// Held back on purpose (`eval --dry-run`: a call that may change something at the merchant).
    #[error("not sent: {0}")]
    NotSent(String),
    /// A call that may change something at the merchant still waiting for a free connection
    /// when its answer could no longer be read before the deadline ([`BodyDue::by`]): sent
    /// then, the merchant would act on a payment decided whatever it answered.
    #[error("{} too close to the deadline to read an answer, waiting for a free connection (max_connections: {max})", crate::engine::NOT_SENT)]
    TooLateToSend { max: u32 },
}

impl UpstreamError {
    /// Whether the deadline, not the upstream, ended the call (see [`Self::TooLateToSend`]).
    pub fn deadline_came(&self) -> bool {
        matches!(self, UpstreamError::TooLateToSend { .. })
    }

    /// Whether the call failed before its request could reach the upstream: no connection
    /// (refused, no such host, none made in time).
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            UpstreamError::Refused(_) | UpstreamError::Dns(_) | UpstreamError::ConnectTimeout(_)
        )
    }
}

/// How the engine reaches the outside world. The server and `eval` pass [`HttpUpstreams`];
/// `confirm-proxy test` passes canned answers.
pub trait Upstreams: Send + Sync {
    /// Starts a call. The future is `'static` so GET fetches can run in the background while
    /// earlier rules are evaluated.
    fn call(
        &self,
        upstream: Arc<Upstream>,
        call: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>>;

    /// The last health-probe conclusion for an upstream.
    fn health(&self, upstream: &Upstream) -> Health;

    /// Why the upstream's latest failed probe failed, for the trace of a `healthy` rule that
    /// finds it down.
    fn probe_failure(&self, upstream: &Upstream) -> Option<Arc<str>>;

    /// The connection slots of an upstream with `max_connections`, which its calls share: the
    /// upstream's own (across requests, and across a reload that keeps it); canned answers
    /// keep their own, so that a rule test (or `--test-on-reload`'s gate) never competes with
    /// live calls.
    fn slots(&self, upstream: &Upstream) -> Option<crate::rules::Slots> {
        upstream.slots.clone()
    }

    /// Whether a large answer is made into Rhai's values where the rule waits for it, rather
    /// than on a thread of its own (see [`is_large`]): canned answers are given on a paused
    /// clock (rule tests, replay), which moves on to the next timer whenever every task
    /// waits, so work on another thread would seem to last until the deadline and the case
    /// would end by `on_error` where `serve` decides on the answer.
    fn large_answers_inline(&self) -> bool {
        false
    }
}

/// Real HTTP through each upstream's two clients: a pooled one for GETs, a connection of its
/// own for every call that may change something at the merchant (see `send`).
#[derive(Debug, Clone)]
pub struct HttpUpstreams {
    metrics: Metrics,
}

impl HttpUpstreams {
    pub fn new(metrics: Metrics) -> HttpUpstreams {
        HttpUpstreams { metrics }
    }
}

impl Upstreams for HttpUpstreams {
    fn call(
        &self,
        upstream: Arc<Upstream>,
        call: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>> {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut counted = Counted {
                metrics,
                upstream: upstream.clone(),
                started: std::time::Instant::now(),
                outcome: None,
            };
            let end = call.end.clone();
            let result = send(&upstream, call, || {
                counted.metrics.upstream_resent(&upstream)
            })
            .await;
            // Left `None`, it is counted as cancelled.
            if end.is_none_or(|e| e.ended(&result)) {
                counted.outcome = Some(call_outcome(&result));
            }
            result
        })
    }

    fn health(&self, upstream: &Upstream) -> Health {
        upstream.state.get()
    }

    fn probe_failure(&self, upstream: &Upstream) -> Option<Arc<str>> {
        upstream.state.last_failure()
    }
}

/// The start of every digest of calls to an upstream (see [`fingerprint`]): its URL and
/// headers as the rules file writes them, each `${VAR}` by its name, so the digest gives no
/// value away yet tells every edit of the file (`Bearer ${TOKEN}` to `Token ${TOKEN}`, or to
/// `Bearer ${TOKEN_2}`). A variable's new value is no edit of the rules.
pub fn digest_start<'a>(
    url: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> sha2::Sha256 {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(url.trim_end_matches('/'));
    hash_headers(
        &mut hash,
        headers
            .into_iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    );
    hash
}

/// Each header into a digest, as a line `name: value`.
fn hash_headers<'a>(hash: &mut sha2::Sha256, headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) {
    use sha2::Digest;
    for (name, value) in headers {
        hash.update(b"\n");
        hash.update(name);
        hash.update(b": ");
        hash.update(value);
    }
}

/// A short digest of what a call sends besides its method and path: the upstream's URL and
/// headers, which every call to it sends (a forward and a health probe too; see
/// [`digest_start`]), and for a fetch (`content`) the call's own headers and its body. Replay
/// tells by it a call edited in a way its path does not show (a header, a body template, the
/// base URL). A forward's own headers and body are the request's, which no rule edit changes:
/// `None` leaves them out.
pub fn fingerprint(up: &Upstream, content: Option<&HttpCall>) -> String {
    use sha2::Digest;
    let mut hash = up.sends.clone();
    if let Some(call) = content {
        let headers = call.headers.iter();
        hash_headers(
            &mut hash,
            headers.map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes())),
        );
        if let Some(body) = &call.body {
            hash.update(b"\n\n");
            hash.update(body);
        }
    }
    let hex: String = hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{DIGEST_SCHEME}{hex}")
}

/// What the digests of [`fingerprint`] start with: how they are made. A digest made another
/// way (before `v2`, each `${VAR}` went in as `***`; now by its name) tells nothing about a
/// call, so replay compares only digests of the same scheme (see
/// [`CallMade::same_call`](crate::decision::CallMade::same_call)).
pub const DIGEST_SCHEME: &str = "v2:";

/// The headers a call is sent with: the call's replace the upstream's of the same name, and
/// every line of the call's is kept (a forward passes a repeated header on as it came).
pub fn merged_headers(up: &Upstream, call: &HttpCall) -> http::HeaderMap {
    let mut headers = up.headers.clone();
    for name in call.headers.keys() {
        headers.remove(name);
    }
    for (k, v) in &call.headers {
        headers.append(k.clone(), v.clone());
    }
    headers
}

/// The connection slot `call` holds while it runs: the one it took before it started, or one
/// of `slots` once free (`None` without a limit). Waited for within the upstream's `timeout`;
/// a call that may change something at the merchant is not sent once its answer could no
/// longer be read in time: the engine does not start it then, and the wait must not carry it
/// past that point either. Canned answers wait alike, so a rule test decides as `serve` does.
/// `started` is when the call's `timeout` began: a slot taken when none of it is left is given
/// back, the call not sent (a trial's was sent with nothing left, and counted as the
/// merchant's timeout).
pub(crate) async fn connection_for(
    up: &Upstream,
    slots: Option<&crate::rules::Slots>,
    call: &mut HttpCall,
    started: tokio::time::Instant,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, UpstreamError> {
    if let Some(taken) = call.slot.0.take() {
        return Ok(Some(taken));
    }
    let Some(slots) = slots else {
        return Ok(None);
    };
    let timed_out = started + up.timeout;
    let send_by = (call.body_by)
        .filter(|_| call.method != http::Method::GET)
        .map(|due| due.by)
        .filter(|&by| by < timed_out);
    let until = send_by.unwrap_or(timed_out);
    let waited = tokio::time::timeout_at(until, slots.take()).await;
    let no_time_left = tokio::time::Instant::now() >= until;
    match waited {
        Ok(Ok(slot)) if !no_time_left => Ok(Some(slot)),
        _ if send_by.is_some() => Err(UpstreamError::TooLateToSend { max: slots.max }),
        // The semaphore is never closed; were it, waiting could not end otherwise either.
        _ => Err(UpstreamError::NoFreeConnection {
            max: slots.max,
            waited: up.timeout,
        }),
    }
}

/// One call; `resent` is called when a GET is sent a second time (see below).
async fn send(
    up: &Upstream,
    mut call: HttpCall,
    resent: impl FnOnce(),
) -> Result<UpstreamResponse, UpstreamError> {
    let started = std::time::Instant::now();
    // Held until the answer is read: the connection is busy until then. A GET's wait is part
    // of its `timeout`. A health probe (no rule) goes on without one: a busy shop must not
    // read as down because its calls took every connection.
    let slots = up.slots.as_ref().filter(|_| call.rule.is_some());
    let _slot = connection_for(up, slots, &mut call, started.into()).await?;
    // The race below is told by how soon after sending a failure comes, not after waiting.
    let sending = std::time::Instant::now();
    // A call that may change something at the merchant gets its whole `timeout` once it has a
    // connection: sent with what a long wait left of it (a few milliseconds), the merchant
    // would act on a payment the call then gives up on, refused for a timeout. The wait had a
    // bound of its own (the timeout, and the time an answer can still be read); the deadline
    // bounds the rest.
    let get = call.method == http::Method::GET;
    let timed_from = if get { started } else { sending };
    let body_by = call.body_by;
    let url = format!("{}{}", up.url, call.path_and_query);
    // `fresh`: on a connection of its own, which the request says is its last, so the upstream
    // closes first and the closed socket waits out TIME_WAIT at its end, not among the proxy's
    // ephemeral ports (a thousand forwards a second would otherwise use them up).
    let request = |fresh: bool, timeout| {
        let mut headers = merged_headers(up, &call);
        let client = if fresh {
            headers.insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            &up.fresh
        } else {
            &up.client
        };
        let req = client
            .request(call.method.clone(), &url)
            .timeout(timeout)
            .headers(headers);
        match &call.body {
            Some(body) => req.body(body.clone()),
            None => req,
        }
    };
    // A pooled connection the upstream closed just as the request went out fails with nothing
    // said (an upstream that closes after every answer without saying so, or whose keep-alive
    // timeout is shorter than the pool's, does that to a few calls in a hundred). A POST, a PUT
    // or a forward may have been acted on, so it cannot be sent again: it goes on a connection
    // of its own, where that race cannot happen, for the price of a connection set-up (a
    // payment refused for a connection the proxy chose to reuse would cost more). A GET (free of
    // side effects, by the rules' contract) keeps the pool and is sent once more, on a
    // connection of its own. Only a failure that comes at once is that race: one that comes
    // later is the upstream's own end to this request (it read it, then closed), and sending it
    // again would double its time and the load on a service already in trouble. The second try
    // has what is left of the call's timeout, so `timeout` bounds the call as a whole.
    let sent = match request(!get, up.timeout.saturating_sub(timed_from.elapsed()))
        .send()
        .await
    {
        Err(e) if get && closed_under_us(&e) && sending.elapsed() < STALE_RACE => {
            // Without the URL, which reqwest's text names in full: its path may hold a
            // `${VAR}` secret.
            let e = e.without_url();
            tracing::debug!(upstream = %up.name, "connection closed under the request ({e}); sending it again");
            resent();
            let left = up.timeout.saturating_sub(timed_from.elapsed());
            request(true, left).send().await
        }
        sent => sent,
    };
    // Waited for a connection (a millisecond or more: not a slot free at once), the upstream
    // had only the rest of the timeout: said, so that a limit set too low is not taken for a
    // slow merchant — whether the timeout came before the status or during the body.
    let failed = |e: reqwest::Error| match (classify(e, up), slots) {
        (UpstreamError::Timeout(timeout), Some(slots))
            if sending - timed_from >= Duration::from_millis(1) =>
        {
            UpstreamError::TimeoutAfterWaiting {
                timeout,
                waited: sending - timed_from,
                max: slots.max,
            }
        }
        (e, _) => e,
    };
    let mut resp = sent.map_err(failed)?;
    // Framed two ways: which body the upstream meant is a guess another reader of the same
    // bytes may make differently (RFC 9112 §6.3 says to treat it as an error).
    let framing = resp.headers();
    if framing.contains_key(http::header::TRANSFER_ENCODING)
        && framing.contains_key(http::header::CONTENT_LENGTH)
    {
        return Err(UpstreamError::Other(
            "the answer has both Content-Length and Transfer-Encoding, which readers may take for different bodies: not read".into(),
        ));
    }
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let headers = joined_headers(resp.headers(), up);
    // When the call's own timeout ends it: before the deadline, a cut is the call's failure.
    let own_end = tokio::time::Instant::now() + up.timeout.saturating_sub(timed_from.elapsed());
    let cut_as = match body_by {
        Some(due) if own_end < due.deadline => Incomplete::OwnTimeout,
        _ => Incomplete::Deadline,
    };
    let (body, mut incomplete) = read_body(&mut resp, body_by, cut_as, failed).await;
    let large = is_large(&body);
    let secrets = up.secrets.clone();
    // A body that stopped coming is no answer any rule reads (its `require` is not evaluated,
    // later rules see no body): kept as text for the trace, not parsed — a megabyte cut near
    // the deadline, parsed, could use up the time its rule has left to refuse on its status.
    let cut_short = incomplete.as_ref().is_some_and(Incomplete::stopped_coming);
    // A body that breaks the limit on values is kept as text: `require` cannot read it, and
    // says why. Counted with the parse, off the runtime for a large body.
    let parse = move || {
        let json = !cut_short && !too_many_parts(&body);
        let (body, not_json) = read_body_noting(&body, content_type.as_deref(), &secrets, json);
        (body, not_json, json)
    };
    let (mut body, not_json, json) = if large {
        crate::background::run(parse)
            .await
            .map_err(|e| UpstreamError::Other(format!("reading the answer failed: {e}")))?
    } else {
        parse()
    };
    if !json && incomplete.is_none() {
        incomplete = Some(Incomplete::TooManyParts);
    }
    if let (Some(_), Value::String(text)) = (&incomplete, &mut body) {
        mask_cut_secret(text, &up.secrets);
    }
    Ok(UpstreamResponse {
        status,
        headers,
        body,
        incomplete,
        not_json,
        large,
    })
}

/// An answer's headers, names lowercase, `${VAR}` values masked. A header sent on several
/// lines is one value, its lines joined by ", " (RFC 9110 §5.3), so `response.headers["x"]`
/// holds all of it rather than the last line.
fn joined_headers(answer: &http::HeaderMap, up: &Upstream) -> Vec<(String, String)> {
    answer
        .keys()
        .map(|k| {
            let mut value = String::new();
            for (i, line) in answer.get_all(k).iter().enumerate() {
                if i > 0 {
                    value.push_str(", ");
                }
                match masked(line.as_bytes(), &up.secrets) {
                    Some(m) => value.push_str(&String::from_utf8_lossy(&m)),
                    None => value.push_str(&String::from_utf8_lossy(line.as_bytes())),
                }
            }
            (k.as_str().to_owned(), value)
        })
        .collect()
}

/// How much of an answer is read before its task lets others run. Chunks already in come
/// without a wait, and tokio's own budget lets a task read a hundred of them in one go: 100
/// answers of 1 MB landing at once held the workers in turns of a whole answer each, and an
/// answer due at the deadline waited behind them (83 and 96 of 500 went out up to 9 ms after a
/// 1 s deadline; none with this, `DELAY=0.85 scripts/answer-burst.sh`). Not much less: turns of
/// 64 KiB had every answer of a burst read at about the same time, late, rather than the first
/// ones early, and 61 of 500 missed the deadline that all had made.
const YIELD_EVERY: usize = 256 * 1024;

/// The body of an answer whose status is in, as much as came: up to
/// [`MAX_RESPONSE_BYTES`], until the upstream stopped sending, or until `body_by` says its rule
/// must decide. The second value says why the body is not all of it: `cut_as` when `body_by`
/// cut it; `failed` names a failure of the upstream's.
async fn read_body(
    resp: &mut reqwest::Response,
    body_by: Option<BodyDue>,
    cut_as: Incomplete,
    failed: impl Fn(reqwest::Error) -> UpstreamError,
) -> (Vec<u8>, Option<Incomplete>) {
    // Once the status is in, the answer is the upstream's: a body that stops coming (closed
    // early, or still trickling at the timeout) leaves the status to decide, as it decides a
    // `forward` and a fetch without `require`, and a `require` on the body says what happened.
    let mut body = Vec::new();
    let mut incomplete = None;
    // One timer for the whole body (none without `body_by`), not one per chunk.
    let due_at = body_by.map(|due| due.for_status_at(tokio::time::Instant::now()));
    let due = async {
        match due_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(due);
    loop {
        let next = tokio::select! {
            // A chunk already in is taken even when the time is up.
            biased;
            next = resp.chunk() => next,
            () = &mut due => {
                incomplete = Some(cut_as);
                break;
            }
        };
        match next {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
                let before = body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room < chunk.len() {
                    incomplete = Some(Incomplete::SizeCap);
                    break;
                }
                if before / YIELD_EVERY != body.len() / YIELD_EVERY {
                    tokio::task::yield_now().await;
                }
            }
            Ok(None) => break,
            Err(e) => {
                incomplete = Some(match failed(e) {
                    e @ (UpstreamError::Timeout(_) | UpstreamError::TimeoutAfterWaiting { .. }) => {
                        Incomplete::TimedOut(e.to_string())
                    }
                    e => Incomplete::StoppedComing(e.to_string()),
                });
                break;
            }
        }
    }
    (body, incomplete)
}

/// Counts one upstream call when it ends, also when it ends by being dropped: a call cut off by
/// the request's deadline (or a prefetch whose rule was never reached) is counted as
/// `cancelled`, so a hanging merchant service shows in the metrics.
struct Counted {
    metrics: Metrics,
    upstream: Arc<Upstream>,
    started: std::time::Instant,
    outcome: Option<&'static str>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or("cancelled");
        self.metrics
            .upstream_call(&self.upstream, outcome, self.started.elapsed());
    }
}

/// The `outcome` label of an upstream call: a status class or the kind of failure.
fn call_outcome(result: &Result<UpstreamResponse, UpstreamError>) -> &'static str {
    match result {
        // An answer whose body did not come whole is counted by what ended it, not by its
        // status: an upstream that stalls or dies mid-body must show where alerts look.
        Ok(UpstreamResponse {
            incomplete: Some(Incomplete::TimedOut(_) | Incomplete::OwnTimeout),
            ..
        }) => "timeout",
        Ok(UpstreamResponse {
            incomplete: Some(Incomplete::StoppedComing(_)),
            ..
        }) => "error",
        Ok(UpstreamResponse {
            incomplete: Some(Incomplete::Deadline),
            ..
        }) => "cancelled",
        Ok(r) => match r.status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            // Not HTTP's classes (101, 600-999): said as such, not folded into one.
            _ => "other",
        },
        Err(UpstreamError::Refused(_)) => "refused",
        Err(UpstreamError::Dns(_)) => "dns",
        Err(
            UpstreamError::Timeout(_)
            | UpstreamError::ConnectTimeout(_)
            | UpstreamError::TimeoutAfterWaiting { .. },
        ) => "timeout",
        // Told apart from a slow upstream: the limit, not the merchant, is what to look at.
        Err(UpstreamError::NoFreeConnection { .. } | UpstreamError::TooLateToSend { .. }) => {
            "no_free_connection"
        }
        Err(_) => "error",
    }
}

/// Names the cause the way an operator debugs it: refused, DNS, timeout.
fn classify(e: reqwest::Error, up: &Upstream) -> UpstreamError {
    if e.is_timeout() && e.is_connect() {
        return UpstreamError::ConnectTimeout(up.timeout);
    }
    if e.is_timeout() {
        return UpstreamError::Timeout(up.timeout);
    }
    let host = e
        .url()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| up.name.clone());
    // A `${VAR}` in the host (`https://${SHOP_ID}.api.example`) is as secret as one elsewhere.
    let host = match masked(host.as_bytes(), &up.secrets) {
        Some(m) => String::from_utf8_lossy(&m).into_owned(),
        None => host,
    };
    // The URL's path may hold a `${VAR}` secret, and reqwest's text names the whole URL; what
    // goes into traces and the decision log is said without it.
    let e = e.without_url();
    for err in crate::error_chain(&e) {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return UpstreamError::Refused(host),
                std::io::ErrorKind::TimedOut => return UpstreamError::Timeout(up.timeout),
                _ => {}
            }
        }
        let text = err.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return UpstreamError::Dns(host);
        }
    }
    let mut cause = crate::root_cause(&e);
    // hyper says so of an answer with more header lines than it reads, and of a
    // Content-Length it cannot count to, too.
    if cause.contains("message head is too large") {
        cause.push_str(
            " (over 100 header lines, a head of over 400 KiB, or a Content-Length of 2^64 − 2 or more)",
        );
    }
    // rustls reading a plain-HTTP answer where a TLS record should be.
    if up.url.starts_with("https://") && cause.contains("InvalidContentType") {
        return UpstreamError::Other(format!(
            "{cause} (the upstream answered without TLS: is its url meant to be http://?)"
        ));
    }
    // A plain-HTTP server that closes on the TLS greeting it cannot read (Python's
    // `http.server` does) rather than answering it.
    if up.url.starts_with("https://") && cause.contains("tls handshake eof") {
        return UpstreamError::Other(format!(
            "{cause} (the upstream closed the connection during the TLS handshake: is its url meant to be http://?)"
        ));
    }
    UpstreamError::Other(cause)
}

/// Whether a call failed because the (pooled) connection was closed by the upstream before an
/// answer came: hyper's "connection closed before message completed", a reset or broken pipe.
fn closed_under_us(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    crate::error_chain(e).any(|err| {
        err.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_canceled())
            || err.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(io.kind(), BrokenPipe | ConnectionAborted | ConnectionReset)
            })
    })
}

#[cfg(test)]
mod as_sent_tests {
    use super::as_sent;
    use std::borrow::Cow;

    /// Paths are named as the URL parser sends them; the usual ones without a parse.
    #[test]
    fn paths_are_named_as_they_are_sent() {
        for kept in ["/stock/o-1?x=1&y=%20", "/a:b@c/!$()*+,;=~", "/x?"] {
            assert!(
                matches!(as_sent(kept), Cow::Borrowed(p) if p == kept),
                "{kept}"
            );
        }
        for (written, sent) in [
            ("/재고/o-1", "/%EC%9E%AC%EA%B3%A0/o-1"),
            (
                "/a b\"c<d>`{e}/x?q=a b\"'",
                "/a%20b%22c%3Cd%3E%60%7Be%7D/x?q=a%20b%22%27",
            ),
            ("/a\\b", "/a/b"),
            ("/x#frag", "/x"),
            ("/x?q=1#frag", "/x?q=1"),
            // A query sends `'` encoded, a path as it is.
            ("/a'b?q='x'", "/a'b?q=%27x%27"),
        ] {
            assert_eq!(as_sent(written), sent, "{written}");
            assert_eq!(as_sent(sent), sent, "{sent} is kept");
        }
    }

    /// A record written before calls were named as sent names the same call when read.
    #[test]
    fn a_logged_call_reads_as_sent() {
        let logged = r#"{"upstream":"shop","method":"GET","path":"/재고/o-1"}"#;
        let call: crate::decision::CallMade = serde_json::from_str(logged).unwrap();
        assert_eq!(call.path, "/%EC%9E%AC%EA%B3%A0/o-1");
    }
}

#[cfg(test)]
mod slots_tests {
    use super::*;
    use crate::rules::Slots;

    fn limited(slots: &Slots) -> Upstream {
        Upstream {
            slots: Some(slots.clone()),
            // Nothing listens there: a call that got a connection would be refused.
            ..Upstream::for_tests("http://127.0.0.1:1", Duration::from_millis(50))
        }
    }

    fn call(rule: Option<&str>) -> HttpCall {
        HttpCall {
            rule: rule.map(Into::into),
            method: http::Method::GET,
            path_and_query: "/stock".into(),
            headers: http::HeaderMap::new(),
            body: None,
            body_by: None,
            slot: Default::default(),
            end: None,
        }
    }

    /// A prefetch's answer coming in just as the decision record calls it cancelled is counted
    /// `cancelled`, as the record lists it; one that ended first is counted and recorded with
    /// its status.
    #[tokio::test]
    async fn a_prefetch_is_counted_as_its_record_lists_it() {
        // Answers every request 200 after 100 ms.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0; 1024];
                    let _ = conn.read(&mut buf).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                        .await;
                });
            }
        });
        let up = Arc::new(Upstream::for_tests(&url, Duration::from_secs(2)));
        let metrics = crate::metrics::Metrics::new();
        let upstreams = HttpUpstreams::new(metrics.clone());
        let calls = |outcome: &str| {
            let text = metrics.render();
            text.lines()
                .find(|l| {
                    l.starts_with("confirm_proxy_upstream_calls_total{")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };

        // Called cancelled by the record while under way: its 200 is counted as cancelled.
        let end = Arc::new(CallEnd::default());
        let sent = upstreams.call(
            up.clone(),
            HttpCall {
                end: Some(end.clone()),
                ..call(Some("stock"))
            },
        );
        let answered = tokio::spawn(sent);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(end.abandon(), (None, None));
        assert_eq!(answered.await.unwrap().unwrap().status, 200);
        assert_eq!((calls("2xx"), calls("cancelled")), (0, 1));

        // Ended before the record looked: recorded and counted with its status.
        let end = Arc::new(CallEnd::default());
        let answer = upstreams
            .call(
                up.clone(),
                HttpCall {
                    end: Some(end.clone()),
                    ..call(Some("stock"))
                },
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(end.abandon(), (Some(200), None));
        assert_eq!((calls("2xx"), calls("cancelled")), (1, 1));
        server.abort();
    }

    /// With every connection busy, a call waits its `timeout` for one and says so; a health
    /// probe does not wait, and the slot comes back once the call that held it ends.
    #[tokio::test]
    async fn a_call_waits_its_timeout_for_a_free_connection_and_a_probe_does_not() {
        let slots = Slots::new(1);
        let up = limited(&slots);
        let held = slots.free.clone().try_acquire_owned().unwrap();
        let waited = send(&up, call(Some("stock")), || ()).await.unwrap_err();
        assert_eq!(
            waited.to_string(),
            "timed out after 50ms waiting for a free connection (max_connections: 1)"
        );
        assert_eq!(call_outcome(&Err(waited)), "no_free_connection");
        // The wait given up at the timeout is no longer counted; the held slot still is.
        assert_eq!((slots.in_use(), slots.waiting()), (1, 0));
        let probe = send(&up, call(None), || ()).await.unwrap_err();
        assert!(matches!(probe, UpstreamError::Refused(_)), "{probe}");
        drop(held);
        let sent = send(&up, call(Some("stock")), || ()).await.unwrap_err();
        assert!(matches!(sent, UpstreamError::Refused(_)), "{sent}");
        assert_eq!(slots.free.available_permits(), 1);
        assert_eq!((slots.in_use(), slots.waiting()), (0, 0));
    }

    /// A slot that comes free when none of the call's `timeout` is left is given back and the
    /// call not sent: no free connection, not the merchant's timeout (a trial's, whose wait
    /// began a moment after the call's timeout did).
    #[tokio::test]
    async fn a_slot_taken_with_no_time_left_is_given_back_unsent() {
        let slots = Slots::new(1);
        let up = limited(&slots);
        let started = tokio::time::Instant::now() - up.timeout;
        let mut get = call(Some("stock"));
        let late = connection_for(&up, up.slots.as_ref(), &mut get, started).await;
        let e = late.unwrap_err();
        assert_eq!(call_outcome(&Err(e)), "no_free_connection");
        assert_eq!((slots.in_use(), slots.waiting()), (0, 0));
        let on_time = tokio::time::Instant::now();
        let slot = connection_for(&up, up.slots.as_ref(), &mut get, on_time).await;
        assert!(slot.unwrap().is_some());
    }

    /// One call to an upstream with one connection, which another call holds for its first
    /// 150 ms, and a `timeout` of 400 ms; the upstream reads the request, writes `head` and
    /// then nothing more.
    async fn sent_after_a_wait(head: &'static str) -> Result<UpstreamResponse, UpstreamError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stall = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0; 4096];
                let _ = conn.read(&mut buf).await;
                let _ = conn.write_all(head.as_bytes()).await;
                held.push(conn);
            }
        });
        let slots = Slots::new(1);
        let up = Upstream {
            slots: Some(slots.clone()),
            // Far longer than the wait: a busy machine's late timers do not end the wait.
            ..Upstream::for_tests(&url, Duration::from_secs(2))
        };
        let held = slots.free.clone().try_acquire_owned().unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            drop(held);
        };
        let (sent, ()) = tokio::join!(send(&up, call(Some("stock")), || ()), release);
        stall.abort();
        sent
    }

    /// A call that waited for a free connection and then timed out at the upstream says how
    /// much of its `timeout` went to the wait: a limit set too low is not a slow merchant.
    #[tokio::test]
    async fn a_timeout_after_waiting_for_a_connection_says_how_long_it_waited() {
        // Never answers.
        let error = sent_after_a_wait("").await.unwrap_err();
        let UpstreamError::TimeoutAfterWaiting {
            timeout,
            waited,
            max,
        } = error
        else {
            panic!("not a timeout after a wait");
        };
        // In whole milliseconds, as an operator reads a trace.
        assert_eq!(
            error.to_string(),
            format!(
                "timed out after 2s, {}ms of it waiting for a free connection (max_connections: 1)",
                waited.as_millis()
            )
        );
        assert_eq!((timeout, max), (Duration::from_secs(2), 1));
        assert!(
            waited >= Duration::from_millis(150) && waited < timeout,
            "{waited:?}"
        );
    }

    /// The same when the timeout comes while the body is read: the trace of the cut answer
    /// says how much of the timeout went to the wait.
    #[tokio::test]
    async fn a_body_cut_by_the_timeout_after_waiting_for_a_connection_says_how_long_it_waited() {
        // Whole JSON, but less than the length announced: it stops coming.
        let answer = sent_after_a_wait(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"avail\":1}",
        )
        .await
        .unwrap();
        let why = answer.incomplete.clone().unwrap().to_string();
        assert!(
            why.starts_with("cut short: timed out after 2s, ")
                && why.ends_with("ms of it waiting for a free connection (max_connections: 1)"),
            "{why}"
        );
        // A body that stopped coming is kept as text, not parsed: no rule reads it.
        assert_eq!(answer.body, Value::String("{\"avail\":1}".into()));
        assert_eq!(answer.not_json, None);
    }

    /// A call that may change something at the merchant (a POST, a forward) waits for a free
    /// connection only until its answer could no longer be read in time (`body_by.by`), and
    /// is then not sent: a connection freed after that must not carry it to the merchant. A
    /// GET waits its whole `timeout`.
    #[tokio::test]
    async fn a_post_waits_for_a_connection_only_until_it_would_be_too_late_to_send() {
        let slots = Slots::new(1);
        let up = Upstream {
            timeout: Duration::from_secs(5),
            ..limited(&slots)
        };
        let _held = slots.free.clone().try_acquire_owned().unwrap();
        let by = tokio::time::Instant::now() + Duration::from_millis(50);
        let due = Some(BodyDue {
            by,
            late: by,
            deadline: by,
        });
        let post = HttpCall {
            method: http::Method::POST,
            body_by: due,
            ..call(Some("hold"))
        };
        let started = std::time::Instant::now();
        let late = send(&up, post, || ()).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "waited its timeout"
        );
        assert!(late.deadline_came(), "{late}");
        assert_eq!(
            late.to_string(),
            "not sent: reached too close to the deadline to read an answer, waiting for a free connection (max_connections: 1)"
        );
        assert_eq!(call_outcome(&Err(late)), "no_free_connection");
        // A GET due as soon waits for its timeout all the same (shorter here, for the test).
        let up = Upstream {
            timeout: Duration::from_millis(300),
            ..limited(&slots)
        };
        let by = tokio::time::Instant::now() + Duration::from_millis(20);
        let get = HttpCall {
            body_by: Some(BodyDue {
                by,
                late: by,
                deadline: by,
            }),
            ..call(Some("stock"))
        };
        let waited = send(&up, get, || ()).await.unwrap_err();
        assert!(
            matches!(waited, UpstreamError::NoFreeConnection { .. }),
            "{waited}"
        );
    }
}

/// Replay reads back what the decision log wrote of each kind, as that kind: a cut at the
/// deadline stays the deadline's, a body that stopped coming stays a transport failure.
#[test]
fn incomplete_bodies_read_back_as_logged() {
    for kind in [
        Incomplete::SizeCap,
        Incomplete::StoppedComing("timed out after 1s".into()),
        Incomplete::Deadline,
        Incomplete::OwnTimeout,
        Incomplete::TooManyParts,
        Incomplete::Logged("cut somehow".into()),
    ] {
        assert_eq!(Incomplete::from_logged(&kind.to_string()), kind);
    }
    // A body the call's timeout cut is one that stopped coming, as far as the log tells.
    let timed_out = Incomplete::TimedOut("timed out after 1s".into());
    assert_eq!(
        Incomplete::from_logged(&timed_out.to_string()),
        Incomplete::StoppedComing("timed out after 1s".into())
    );
    assert_eq!(
        Incomplete::Deadline.to_string(),
        "cut short: still coming when its rule had to decide, before the request's deadline"
    );
    assert_eq!(Incomplete::SizeCap.to_string(), "cut at 1024 KiB");
}

/// The count written in [`TOO_MANY_PARTS`] is the cap the body reader applies.
#[test]
fn the_too_many_parts_text_names_the_cap() {
    let cap = body::MAX_JSON_PARTS.to_string();
    let (thousands, rest) = cap.split_at(cap.len() - 3);
    assert!(
        TOO_MANY_PARTS.contains(&format!(" {thousands},{rest} ")),
        "{TOO_MANY_PARTS}"
    );
}

#[cfg(test)]
mod body_due_tests {
    use super::BodyDue;
    use std::time::Duration;

    /// A body is due `late - by` after its status line, never before `by` nor after `late`:
    /// an answer straddling `by` is treated like one a little later, not cut at once.
    #[test]
    fn a_body_is_due_a_while_after_its_status_line_within_by_and_late() {
        let t0 = tokio::time::Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let due = BodyDue {
            by: ms(900),
            late: ms(960),
            deadline: ms(1000),
        };
        for (status, body) in [
            (0, 900),
            (840, 900),
            (850, 910),
            (890, 950),
            (905, 960),
            (990, 960),
        ] {
            assert_eq!(
                due.for_status_at(ms(status)),
                ms(body),
                "status at {status} ms"
            );
        }
        let tight = BodyDue {
            by: ms(9),
            late: ms(9),
            deadline: ms(10),
        };
        assert_eq!(tight.for_status_at(ms(20)), ms(9));
    }
}
