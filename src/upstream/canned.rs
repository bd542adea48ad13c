//! Canned upstream answers and health states for rule tests and replay: no network at all.
//! Every call is recorded so a test can say what was (or was not) called.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{
    mask_json, masked, parse_body, read_body_noting, too_many_parts, BoxFuture, HttpCall,
    Incomplete, UpstreamError, UpstreamResponse, Upstreams,
};
use crate::rules::{parse_duration, Health, HttpMethod, Upstream};

/// Stand-in for the merchant's services: answers keyed by upstream name and `"METHOD /path?query"`,
/// health states by upstream name (missing = unknown).
///
/// Tests write one in the shape of a rule test case's `upstreams` and `health` keys (`test`
/// itself reads a case through `ruletest`, which places each error at its answer):
///
/// ```yaml
/// upstreams:
///   shop:
///     "GET /api/stock/order-2": { status: 200, body: { available: 3 } }
///     "POST /payments/confirm": { error: refused }
/// health: { shop: up }
/// ```
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Deserialize), serde(try_from = "RawCanned"))]
pub struct Canned {
    /// Upstream name → normalised `"METHOD /path?query"` → answer.
    answers: BTreeMap<String, BTreeMap<String, CannedAnswer>>,
    /// Per calling rule: (rule, upstream name, normalised key) → answer. A replayed record
    /// answers each rule with its own logged answer (two rules POSTing the same reservation
    /// got 200, then 409); once any is set, calls are answered only from here, and a rule
    /// without an answer of its own gets none.
    by_rule: BTreeMap<(Arc<str>, String, String), CannedAnswer>,
    /// Answers go by rule only (see [`Canned::by_rule`]).
    per_rule: bool,
    health: BTreeMap<String, Health>,
    calls: Mutex<Vec<RecordedCall>>,
    /// Upstream name → the connection slots of its `max_connections`, this stand-in's own
    /// (see [`Upstreams::slots`]).
    slots: Mutex<BTreeMap<String, crate::rules::Slots>>,
}

/// One canned answer, as a rule test file writes it:
/// `{ status: 200, headers: {...}, body: {...}, delay: 300ms }` or `{ error: refused }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawAnswer")]
pub struct CannedAnswer {
    /// The HTTP status, or the transport failure that replaces the answer.
    pub outcome: Result<u16, CannedError>,
    /// Response headers; names are lowercased, as rules see real ones.
    pub headers: BTreeMap<String, String>,
    /// A mapping, list, number or bool is the JSON body; a string is the raw text of the body
    /// and is parsed as JSON when it is JSON (as a real answer would be).
    pub body: Value,
    /// How long until the answer (or failure) arrives. A real call gives up after the upstream's
    /// `timeout`, and so does this one: a longer delay ends in [`UpstreamError::Timeout`].
    pub delay: Option<Duration>,
    /// Never arrives, not even as a timeout: the call is still waiting when the deadline ends
    /// the evaluation (a replayed call that the deadline cut off).
    pub hang: bool,
    /// Why the body is only the start of the answer's (a replayed answer that was cut short):
    /// as [`UpstreamResponse::incomplete`].
    pub incomplete: Option<Incomplete>,
    /// A refused or failed call's error as the log has it (replay): said in its place rather
    /// than one made up from the upstream of the rules now (`connection refused by
    /// shop.invalid:80` for a call that was refused by the shop's real address).
    pub logged_failure: Option<String>,
}

/// A simulated transport failure (`error: refused | dns | timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CannedError {
    /// The connection was refused.
    Refused,
    /// The upstream's host name did not resolve.
    Dns,
    /// No answer: the call fails after the upstream's `timeout` (or after `delay`, if given).
    Timeout,
}

/// A health state as a rule test writes it (`up`, `down`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CannedHealth {
    Up,
    Down,
    Unknown,
}

impl From<CannedHealth> for Health {
    fn from(h: CannedHealth) -> Health {
        match h {
            CannedHealth::Up => Health::Up,
            CannedHealth::Down => Health::Down,
            CannedHealth::Unknown => Health::Unknown,
        }
    }
}

/// A call the engine made, as it would have been sent.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// The rule that made it (`None`: a health probe).
    pub rule: Option<Arc<str>>,
    /// The upstream's name in the rule file.
    pub upstream: String,
    pub method: http::Method,
    pub path_and_query: String,
    /// The upstream's own headers with the call's merged over them.
    pub headers: http::HeaderMap,
    pub body: Option<Bytes>,
}

impl RecordedCall {
    /// `"GET /api/stock/order-2"`, the way canned answers are keyed.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path_and_query)
    }
}

impl Canned {
    /// No answers, every health unknown.
    pub fn new() -> Canned {
        Canned::default()
    }

    /// Adds the answer to `key` (`"GET /api/stock/order-2"`) from `upstream`.
    pub fn answer(mut self, upstream: &str, key: &str, answer: CannedAnswer) -> Canned {
        self.answers
            .entry(upstream.to_owned())
            .or_default()
            .insert(normalise_key(key), answer);
        self
    }

    /// Adds the answer `rule` gets when it calls `key` (`"POST /reserve"`) on `upstream`. Once
    /// any rule has one, answers go by rule only: a call by another rule, or by this rule to
    /// another key, gets [`UpstreamError::NoCannedAnswer`].
    pub fn answer_rule(
        mut self,
        rule: &str,
        upstream: &str,
        key: &str,
        answer: CannedAnswer,
    ) -> Canned {
        self.by_rule.insert(
            (Arc::from(rule), upstream.to_owned(), normalise_key(key)),
            answer,
        );
        self.by_rule()
    }

    /// Answers go by rule only, also before any rule has an answer: a replayed record none
    /// of whose rules made a call still answers no rule with another's.
    pub fn by_rule(mut self) -> Canned {
        self.per_rule = true;
        self
    }

    /// Sets the health state `healthy: upstream` rules see. (Reading it back goes through
    /// [`Upstreams::health`], which this builder method shadows.)
    pub fn health(mut self, upstream: &str, health: Health) -> Canned {
        self.health.insert(upstream.to_owned(), health);
        self
    }

    /// Whether there is an answer to `key` (`"GET /api/stock/order-2"`) from `upstream`.
    pub fn has_answer(&self, upstream: &str, key: &str) -> bool {
        self.answers
            .get(upstream)
            .is_some_and(|answers| answers.contains_key(&normalise_key(key)))
    }

    /// Every call made so far, in the order they were started.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records `call`.
    fn record(&self, up: &Upstream, call: &HttpCall) {
        let headers = super::merged_headers(up, call);
        let recorded = RecordedCall {
            rule: call.rule.clone(),
            upstream: up.name.clone(),
            method: call.method.clone(),
            path_and_query: call.path_and_query.clone(),
            headers,
            body: call.body.clone(),
        };
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(recorded);
    }

    /// The answer to `key` from `upstream` for `call`: by its rule once any rule has its own.
    fn answer_to(&self, upstream: &str, key: &str, call: &HttpCall) -> Option<&CannedAnswer> {
        if !self.per_rule {
            return self
                .answers
                .get(upstream)
                .and_then(|answers| answers.get(key));
        }
        let rule = call.rule.clone()?;
        self.by_rule
            .get(&(rule, upstream.to_owned(), normalise_key(key)))
    }
}

impl CannedAnswer {
    /// An answer with `status` and an empty body: what rules see of a real answer without
    /// one (`response.body == ""`).
    pub fn status(status: u16) -> CannedAnswer {
        CannedAnswer {
            outcome: Ok(status),
            headers: BTreeMap::new(),
            body: parse_body(b"", None, &[]),
            delay: None,
            hang: false,
            incomplete: None,
            logged_failure: None,
        }
    }

    /// A call that is still waiting when the deadline ends the evaluation.
    pub fn hang() -> CannedAnswer {
        CannedAnswer {
            hang: true,
            ..CannedAnswer::error(CannedError::Timeout)
        }
    }

    /// Sets the body as rules see it, already parsed: a string stays a string (a body that was
    /// the JSON text `"123"`), where [`CannedAnswer::body`] would read it as JSON.
    pub fn parsed_body(mut self, body: Value) -> CannedAnswer {
        self.body = body;
        self
    }

    /// A transport failure instead of an answer.
    pub fn error(error: CannedError) -> CannedAnswer {
        CannedAnswer {
            outcome: Err(error),
            ..CannedAnswer::status(0)
        }
    }

    /// A failure said as the log said it (see [`CannedAnswer::logged_failure`]).
    pub fn as_logged(mut self, failure: &str) -> CannedAnswer {
        self.logged_failure = Some(failure.to_owned());
        self
    }

    /// Sets the body (see [`CannedAnswer::body`] for how a string is read).
    pub fn body(mut self, body: Value) -> CannedAnswer {
        self.body = match body {
            Value::String(text) => parse_body(text.as_bytes(), None, &[]),
            other => other,
        };
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> CannedAnswer {
        self.headers
            .insert(name.to_ascii_lowercase(), value.to_owned());
        self
    }

    /// Marks the body as the start of the answer's only, cut for `why`.
    pub fn cut_short(mut self, why: Option<Incomplete>) -> CannedAnswer {
        self.incomplete = why;
        self
    }

    /// Makes the answer arrive after `delay`.
    pub fn delay(mut self, delay: Duration) -> CannedAnswer {
        self.delay = Some(delay);
        self
    }

    /// What the call returns, after how long, given the upstream's timeout.
    fn settle(
        &self,
        up: &Upstream,
        timeout: Duration,
    ) -> (Duration, Result<UpstreamResponse, UpstreamError>) {
        let delay = match (self.delay, self.outcome) {
            (Some(d), _) => d,
            (None, Err(CannedError::Timeout)) => timeout,
            (None, _) => Duration::ZERO,
        };
        if delay > timeout {
            return (timeout, Err(UpstreamError::Timeout(up.timeout)));
        }
        // Its `${VAR}` secrets masked, as `serve` masks a real answer's before rules read it.
        let mut body = self.body.clone();
        mask_json(&mut body, &up.secrets);
        let text = serde_json::to_string(&self.body).unwrap_or_default();
        let mut incomplete = self.incomplete.clone();
        // More values than `serve` reads as JSON: kept as text, which `require` cannot read,
        // so a rule test decides as the server would.
        if incomplete.is_none() && !body.is_string() && too_many_parts(text.as_bytes()) {
            body = Value::String(serde_json::to_string(&body).unwrap_or_default());
            incomplete = Some(Incomplete::TooManyParts);
        }
        let result = match self.outcome {
            Ok(status) => Ok(UpstreamResponse {
                status,
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let v = masked(v.as_bytes(), &up.secrets).map_or_else(
                            || v.clone(),
                            |m| String::from_utf8_lossy(&m).into_owned(),
                        );
                        (k.clone(), v)
                    })
                    .collect(),
                body,
                incomplete,
                // As `serve` would have noted it reading the same text, with the same reader
                // (a key named twice is no JSON to it).
                not_json: match &self.body {
                    serde_json::Value::String(text) => {
                        read_body_noting(text.as_bytes(), None, &[], true).1
                    }
                    _ => None,
                },
                large: super::is_large(text.as_bytes()),
            }),
            Err(_) if self.logged_failure.is_some() && !self.hang => Err(UpstreamError::Logged(
                self.logged_failure.clone().unwrap_or_default(),
            )),
            Err(CannedError::Refused) => Err(UpstreamError::Refused(host(up))),
            Err(CannedError::Dns) => Err(UpstreamError::Dns(host(up))),
            Err(CannedError::Timeout) => Err(UpstreamError::Timeout(up.timeout)),
        };
        (delay, result)
    }
}

impl Upstreams for Canned {
    fn call(
        &self,
        upstream: Arc<Upstream>,
        call: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>> {
        // Recorded when started, so a prefetch counts even if its rule is never reached.
        self.record(&upstream, &call);
        let key = format!("{} {}", call.method, call.path_and_query);
        let answer = self.answer_to(&upstream.name, &key, &call).cloned();
        let slots = self.slots(&upstream).filter(|_| call.rule.is_some());
        let mut call = call;
        Box::pin(async move {
            let Some(answer) = answer else {
                return Err(UpstreamError::NoCannedAnswer(format!(
                    "{} {key}",
                    upstream.name
                )));
            };
            // Held while the answer comes, as `serve` holds a connection.
            let waiting = tokio::time::Instant::now();
            let started = tokio::time::Instant::now();
            let _slot =
                super::connection_for(&upstream, slots.as_ref(), &mut call, started).await?;
            if answer.hang {
                return std::future::pending().await;
            }
            // A GET's wait for a connection is part of its timeout, as in `serve`.
            let waited = waiting.elapsed();
            let timeout = if call.method == http::Method::GET {
                upstream.timeout.saturating_sub(waited)
            } else {
                upstream.timeout
            };
            let (delay, result) = answer.settle(&upstream, timeout);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match (result, slots) {
                (Err(UpstreamError::Timeout(t)), Some(slots))
                    if call.method == http::Method::GET && waited >= Duration::from_millis(1) =>
                {
                    Err(UpstreamError::TimeoutAfterWaiting {
                        timeout: t,
                        waited,
                        max: slots.max,
                    })
                }
                (result, _) => result,
            }
        })
    }

    fn health(&self, upstream: &Upstream) -> Health {
        self.health
            .get(&upstream.name)
            .copied()
            .unwrap_or(Health::Unknown)
    }

    /// A case's health state has no probe behind it.
    fn probe_failure(&self, _: &Upstream) -> Option<Arc<str>> {
        None
    }

    fn slots(&self, upstream: &Upstream) -> Option<crate::rules::Slots> {
        let max = upstream.slots.as_ref()?.max;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let own = slots
            .entry(upstream.name.clone())
            .or_insert_with(|| crate::rules::Slots::new(max));
        Some(own.clone())
    }

    fn large_answers_inline(&self) -> bool {
        true
    }
}

/// `host:port` of the upstream, the way real transport errors name it.
fn host(up: &Upstream) -> String {
    reqwest::Url::parse(&up.url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(format!("{host}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| up.name.clone())
}

/// `"get  /x"` → `"GET /x"`, the path as it is sent (`/재고/…` → `/%EC%9E%AC%EA%B3%A0/…`, as
/// calls are named); anything else is kept as written (and will simply never match).
fn normalise_key(key: &str) -> String {
    match key.trim().split_once(char::is_whitespace) {
        Some((method, path)) => format!(
            "{} {}",
            method.to_ascii_uppercase(),
            crate::upstream::as_sent(path.trim())
        ),
        None => key.trim().to_owned(),
    }
}

/// A `"METHOD /path"` key as written in a test file, normalised (`"get  /x"` → `"GET /x"`);
/// refused unless it has both parts and the method is one a rule can call with.
pub fn check_key(key: &str) -> Result<String, String> {
    let normal = normalise_key(key);
    match normal.split_once(' ') {
        Some((method, path)) if path.starts_with('/') => {
            if is_known_method(method) {
                Ok(normal)
            } else {
                Err(format!(
                    "invalid canned call \"{key}\": unknown method \"{method}\", expected {}",
                    known_methods()
                ))
            }
        }
        _ => Err(format!(
            "invalid canned call \"{key}\", expected a method and a path like \"GET /api/stock/order-1\""
        )),
    }
}

/// Whether rules can call with `method` (uppercase): the methods a `fetch` may name (`forward`
/// always POSTs), read from the rule file's own type so the two never disagree.
fn is_known_method(method: &str) -> bool {
    serde_json::from_value::<HttpMethod>(Value::String(method.to_owned())).is_ok()
}

/// `"GET, POST or PUT"`.
fn known_methods() -> String {
    let known: Vec<&str> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        .into_iter()
        .filter(|m| is_known_method(m))
        .collect();
    match known.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "no method".to_owned(),
    }
}

#[cfg(test)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanned {
    #[serde(default)]
    upstreams: BTreeMap<String, BTreeMap<String, CannedAnswer>>,
    #[serde(default)]
    health: BTreeMap<String, CannedHealth>,
}

#[cfg(test)]
impl TryFrom<RawCanned> for Canned {
    type Error = String;

    fn try_from(raw: RawCanned) -> Result<Canned, String> {
        let mut canned = Canned::new();
        for (upstream, answers) in raw.upstreams {
            for (key, answer) in answers {
                check_key(&key).map_err(|e| format!("upstream \"{upstream}\": {e}"))?;
                canned = canned.answer(&upstream, &key, answer);
            }
        }
        for (upstream, health) in raw.health {
            canned = canned.health(&upstream, health.into());
        }
        Ok(canned)
    }
}

/// A canned answer as written, before the checks that need more than its shape (which
/// `ruletest` reports at the answer, naming its call).
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a canned answer: a mapping with status (and body, headers, delay) or error"
)]
pub struct RawAnswer {
    status: Option<u16>,
    error: Option<CannedError>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Absent: an empty body, as a real answer without one. `null` (or `~`, or nothing after
    /// `body:`) is JSON's `null`, which a real answer of the text `null` gives rules as `()`.
    #[serde(default, deserialize_with = "present")]
    body: Option<Value>,
    delay: Option<String>,
}

/// Whether a canned body is one HTTP would have to send: neither `null` nor empty text.
fn not_empty(body: &Value) -> bool {
    !matches!(body, Value::Null) && !matches!(body, Value::String(text) if text.is_empty())
}

/// A value that is there, `null` included (serde reads a `null` `Option` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl RawAnswer {
    /// The body as read.
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// The body as read, for a reader that knows better how its numbers were written.
    pub fn body_mut(&mut self) -> Option<&mut Value> {
        self.body.as_mut()
    }
}

/// Why a canned answer is refused, and the key of it at fault when one is (`status`, `body`,
/// `delay`), so that the error can be placed there rather than at the answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AnswerError {
    pub key: Option<&'static str>,
    pub message: String,
}

impl From<String> for AnswerError {
    fn from(message: String) -> AnswerError {
        AnswerError { key: None, message }
    }
}

impl AnswerError {
    fn at(key: &'static str, message: String) -> AnswerError {
        AnswerError {
            key: Some(key),
            message,
        }
    }
}

impl TryFrom<RawAnswer> for CannedAnswer {
    type Error = AnswerError;

    fn try_from(raw: RawAnswer) -> Result<CannedAnswer, AnswerError> {
        // A canned answer proves a decision only if a real upstream could give it: what
        // `serve`'s HTTP client never hands to a rule is refused here, not read.
        let mut answer = match (raw.status, raw.error) {
            // 101 ends the exchange (Switching Protocols), and a rule reads it as any other.
            (Some(s @ (100 | 102..=199)), None) => {
                return Err(AnswerError::at("status", format!("status {s} is an interim answer, which an HTTP client reads past to the final one: no rule ever sees it; give the final status (101, or 200 to 999)")))
            }
            // The three digits HTTP has room for: an upstream may answer 600-999 too (each
            // rule has its reading of them), and a test must be able to say so.
            (Some(s), None) if (101..=999).contains(&s) => CannedAnswer::status(s),
            (Some(s), None) => {
                return Err(AnswerError::at("status", format!("status {s} is not an HTTP status (100 to 999)")))
            }
            (None, Some(e)) => CannedAnswer::error(e),
            (Some(_), Some(_)) => {
                return Err("an answer has a status or an error, not both".to_owned().into())
            }
            (None, None) => return Err(
                "an answer needs a status (like status: 200) or an error (refused, dns or timeout)"
                    .to_owned()
                    .into(),
            ),
        };
        if let (Ok(s @ (204 | 304)), Some(body)) = (answer.outcome, &raw.body) {
            if not_empty(body) {
                return Err(AnswerError::at("body", format!("a {s} answer has no body (HTTP sends none with 204 or 304, whatever the upstream writes): leave body out")));
            }
        }
        for (name, value) in &raw.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(super::invalid_header_name(name).into());
            }
            // Control characters other than a tab (a line break would end the header).
            if http::HeaderValue::from_str(value).is_err() {
                return Err(format!("header {name}: the value holds a line break or another control character, which no HTTP answer can carry").into());
            }
            let lower = name.to_ascii_lowercase();
            if answer.headers.contains_key(&lower) {
                return Err(format!("header {name} is given twice (names are the same in any case): a real answer's would reach the rule as one value, joined by \", \"; write it once").into());
            }
            if value.trim_matches([' ', '\t']) != value {
                return Err(format!("header {name}: the value \"{value}\" has spaces at its ends, which HTTP drops before a rule reads it; write it without them").into());
            }
            answer = answer.header(name, value);
        }
        // A 204's or 304's (left empty, as checked above) is none at all.
        let body = raw
            .body
            .filter(|_| !matches!(answer.outcome, Ok(204 | 304)));
        if let Some(body) = body {
            // Written as YAML data, the body is JSON, and an upstream answering JSON says so:
            // a rule reading `response.headers["content-type"]` reads it as from `serve`.
            if !body.is_string() && !answer.headers.contains_key("content-type") {
                answer = answer.header("content-type", "application/json");
            }
            answer = answer.body(body);
        }
        if let Some(d) = &raw.delay {
            let delay = parse_duration(d).map_err(|e| AnswerError::at("delay", e))?;
            answer = answer.delay(delay);
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(timeout: Duration) -> Arc<Upstream> {
        Arc::new(Upstream::for_tests("http://shop.invalid", timeout))
    }

    fn get(path: &str) -> HttpCall {
        HttpCall {
            rule: None,
            method: http::Method::GET,
            path_and_query: path.into(),
            headers: http::HeaderMap::new(),
            body: None,
            body_by: None,
            slot: Default::default(),
            end: None,
        }
    }

    fn post_by(rule: Option<&str>) -> HttpCall {
        HttpCall {
            rule: rule.map(Arc::from),
            method: http::Method::POST,
            ..get("/reserve")
        }
    }

    /// An answer of more values than `serve` reads as JSON is kept as text in a rule test too,
    /// so `require` cannot read it there either.
    #[test]
    fn an_answer_of_too_many_values_is_kept_as_text_as_serve_keeps_it() {
        let up = upstream(Duration::from_secs(1));
        let values = |n: usize| Value::Array((0..n).map(|i| i.into()).collect());
        let limit = super::super::body::MAX_JSON_PARTS;
        let (_, read) = CannedAnswer::status(200)
            .body(values(limit))
            .settle(&up, up.timeout);
        let read = read.unwrap();
        assert!(read.body.is_array() && read.incomplete.is_none());
        let (_, kept) = CannedAnswer::status(200)
            .body(values(limit + 1))
            .settle(&up, up.timeout);
        let kept = kept.unwrap();
        assert!(kept.body.is_string());
        assert_eq!(kept.incomplete, Some(Incomplete::TooManyParts));
        assert!(!kept.partial());
    }

    /// Replay answers each rule with its own logged answer: a rule without one (a new rule
    /// making the same POST) gets none, not another rule's, and no answer is used up.
    #[tokio::test]
    async fn answers_go_by_rule_once_a_rule_has_its_own() {
        let canned = Canned::new()
            .answer("shop", "POST /reserve", CannedAnswer::status(500))
            .answer_rule(
                "reserve",
                "shop",
                "POST /reserve",
                CannedAnswer::status(200),
            )
            .answer_rule("hold", "shop", "post  /reserve", CannedAnswer::status(409));
        let up = upstream(Duration::from_secs(1));
        let status = |rule| {
            let call = canned.call(up.clone(), post_by(rule));
            async move { call.await.map(|r| r.status) }
        };
        assert_eq!(status(Some("reserve")).await, Ok(200));
        assert_eq!(status(Some("hold")).await, Ok(409));
        assert_eq!(status(Some("reserve")).await, Ok(200));
        for rule in [Some("reserve-third"), None] {
            assert_eq!(
                status(rule).await,
                Err(UpstreamError::NoCannedAnswer("shop POST /reserve".into()))
            );
        }
        // Its own answer is for its own call: another path gets none.
        let moved = HttpCall {
            path_and_query: "/v2/reserve".into(),
            ..post_by(Some("reserve"))
        };
        assert!(canned.call(up.clone(), moved).await.is_err());
    }

    #[test]
    fn reads_the_rule_test_shape() {
        let canned: Canned = serde_yaml::from_str(
            r#"
upstreams:
  shop:
    "GET /api/stock/order-2": { status: 200, body: { available: 3 }, delay: 300ms }
    "post  /payments/confirm": { error: refused }
    "GET /text": { status: 200, headers: { X-Shop: a }, body: "sold out" }
health: { shop: up, pay: down }
"#,
        )
        .unwrap();
        let shop = &canned.answers["shop"];
        let stock = &shop["GET /api/stock/order-2"];
        assert_eq!(stock.outcome, Ok(200));
        assert_eq!(stock.body, serde_json::json!({"available": 3}));
        assert_eq!(stock.delay, Some(Duration::from_millis(300)));
        assert_eq!(
            shop["POST /payments/confirm"].outcome,
            Err(CannedError::Refused)
        );
        assert_eq!(shop["GET /text"].body, Value::String("sold out".into()));
        assert_eq!(shop["GET /text"].headers["x-shop"], "a");
        assert_eq!(canned.health["shop"], Health::Up);
        assert_eq!(canned.health["pay"], Health::Down);
    }

    #[test]
    fn refuses_malformed_answers() {
        for (yaml, expected) in [
            (
                r#"upstreams: { shop: { "GET /x": { body: 1 } } }"#,
                "needs a status",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, error: dns } } }"#,
                "not both",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, delay: soon } } }"#,
                "duration",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 99 } } }"#,
                "not an HTTP status",
            ),
            (
                r#"upstreams: { shop: { "/x": { status: 200 } } }"#,
                "invalid canned call",
            ),
            (
                r#"upstreams: { shop: { "nospace": { status: 200 } } }"#,
                "invalid canned call \"nospace\", expected a method and a path",
            ),
            (
                r#"upstreams: { shop: { "GETT /x": { status: 200 } } }"#,
                "invalid canned call \"GETT /x\": unknown method \"GETT\", expected GET, POST or PUT",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, bdy: 1 } } }"#,
                "unknown field",
            ),
            (r#"health: { shop: sideways }"#, "unknown variant"),
            (r#"answers: {}"#, "unknown field"),
            // What no real upstream gives a rule (an audit found rule tests passing on them
            // with decisions `serve` never makes).
            (
                r#"upstreams: { shop: { "GET /x": { status: 103 } } }"#,
                "status 103 is an interim answer",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 204, body: { available: 1 } } } }"#,
                "a 204 answer has no body",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 304, body: "x" } } }"#,
                "a 304 answer has no body",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, headers: { X-A: "1", x-a: "2" } } } }"#,
                "header x-a is given twice",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, headers: { x-a: " yes " } } } }"#,
                "has spaces at its ends",
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, headers: { "Content Type": a } } } }"#,
                r#"invalid header name "Content Type": a header name holds only ASCII letters, digits and symbols such as - and _, with no spaces; did you mean "Content-Type"?"#,
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, headers: { "": a } } } }"#,
                r#"invalid header name "":"#,
            ),
            (
                r#"upstreams: { shop: { "GET /x": { status: 200, headers: { x-note: "a\u0007b" } } } }"#,
                "header x-note: the value holds a line break or another control character",
            ),
        ] {
            let err = serde_yaml::from_str::<Canned>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{yaml}: {err}");
        }
    }

    /// A canned answer reads as the same answer from a real upstream: `body: null` is the JSON
    /// text `null` (`()` to rules), not an empty body; a body written as YAML data is JSON
    /// and labelled so, unless the case names its own type; a 204 may say its body is empty.
    #[test]
    fn canned_answers_read_as_real_ones() {
        let answer = |yaml: &str| -> CannedAnswer { serde_yaml::from_str(yaml).unwrap() };
        for yaml in ["{ status: 200, body: null }", "{ status: 200, body: ~ }"] {
            let a = answer(yaml);
            assert_eq!(a.body, Value::Null, "{yaml}");
            assert_eq!(a.body, parse_body(b"null", None, &[]), "{yaml}");
        }
        assert_eq!(answer("{ status: 200 }").body, parse_body(b"", None, &[]));
        let a = answer("{ status: 200, body: { available: 1 } }");
        assert_eq!(a.headers["content-type"], "application/json");
        let a = answer("{ status: 200, body: [1], headers: { Content-Type: text/plain } }");
        assert_eq!(a.headers["content-type"], "text/plain");
        assert!(!answer("{ status: 200, body: \"ok\" }")
            .headers
            .contains_key("content-type"));
        assert_eq!(answer("{ status: 204, body: \"\" }").outcome, Ok(204));
        let empty = answer("{ status: 204, body: null }");
        assert_eq!(
            (empty.outcome, &empty.body),
            (Ok(204), &parse_body(b"", None, &[]))
        );
        assert!(empty.headers.is_empty());
        assert_eq!(answer("{ status: 101 }").outcome, Ok(101));
    }

    #[test]
    fn canned_calls_are_a_known_method_and_a_path() {
        assert_eq!(check_key("get  /x?a=1 ").as_deref(), Ok("GET /x?a=1"));
        assert_eq!(check_key("PUT /x").as_deref(), Ok("PUT /x"));
        assert_eq!(
            check_key("GETT /x"),
            Err(
                "invalid canned call \"GETT /x\": unknown method \"GETT\", expected GET, POST or PUT"
                    .to_owned()
            )
        );
        assert_eq!(
            check_key("DELETE /x"),
            Err("invalid canned call \"DELETE /x\": unknown method \"DELETE\", expected GET, POST or PUT".to_owned())
        );
        for key in ["nospace", "GET x", "/x", ""] {
            assert_eq!(
                check_key(key),
                Err(format!("invalid canned call \"{key}\", expected a method and a path like \"GET /api/stock/order-1\"")),
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_records_and_times_out_like_a_real_call() {
        let canned = Canned::new()
            .answer(
                "shop",
                "GET /a",
                CannedAnswer::status(204).delay(Duration::from_millis(300)),
            )
            .answer(
                "shop",
                "GET /slow",
                CannedAnswer::status(200).delay(Duration::from_secs(10)),
            )
            .answer(
                "shop",
                "GET /gone",
                CannedAnswer::error(CannedError::Timeout),
            )
            .answer("shop", "GET /no", CannedAnswer::error(CannedError::Refused));
        let up = upstream(Duration::from_secs(1));
        let start = tokio::time::Instant::now();

        let ok = canned.call(up.clone(), get("/a")).await.unwrap();
        assert_eq!(ok.status, 204);
        assert_eq!(start.elapsed(), Duration::from_millis(300));

        let slow = canned.call(up.clone(), get("/slow")).await;
        assert_eq!(slow, Err(UpstreamError::Timeout(Duration::from_secs(1))));
        assert_eq!(start.elapsed(), Duration::from_millis(1300));

        let gone = canned.call(up.clone(), get("/gone")).await;
        assert_eq!(gone, Err(UpstreamError::Timeout(Duration::from_secs(1))));
        assert_eq!(start.elapsed(), Duration::from_millis(2300));

        let no = canned.call(up.clone(), get("/no")).await;
        assert_eq!(no, Err(UpstreamError::Refused("shop.invalid:80".into())));

        let missing = canned.call(up.clone(), get("/nothing?x=1")).await;
        assert_eq!(
            missing,
            Err(UpstreamError::NoCannedAnswer(
                "shop GET /nothing?x=1".into()
            ))
        );

        let keys: Vec<String> = canned.calls().iter().map(RecordedCall::key).collect();
        assert_eq!(
            keys,
            [
                "GET /a",
                "GET /slow",
                "GET /gone",
                "GET /no",
                "GET /nothing?x=1"
            ]
        );
        assert_eq!(Upstreams::health(&canned, &up), Health::Unknown);
        let canned = canned.health("shop", Health::Down);
        assert_eq!(Upstreams::health(&canned, &up), Health::Down);
    }
}
