//! Calls to merchant services: the [`Upstreams`] seam the engine talks through, its real HTTP
//! implementation (one pooled client per upstream, built at load), and background health probes.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use memchr::memmem::Finder;
use serde_json::Value;

use crate::metrics::Metrics;
use crate::rules::{Health, Rules, Upstream};

pub mod canned;

/// Answers larger than this are cut off: a confirm check reads a few fields, never megabytes.
/// The status still counts; a `require` that reads the cut body says so in its error.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long an idle connection to an upstream is kept for reuse: below the keep-alive
/// timeouts merchant servers commonly use (Node's 5 s).
const POOL_IDLE: Duration = Duration::from_secs(4);

/// The HTTP client of an upstream: no redirects followed (a confirm check must see the
/// merchant's own answer, not wherever it redirects), and with `pool`, idle connections kept
/// 4 s; without, none kept, so every call has a connection of its own.
pub fn http_client(pool: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    if pool {
        builder.pool_idle_timeout(POOL_IDLE)
    } else {
        builder.pool_max_idle_per_host(0)
    }
    .build()
}

/// `up`'s client that keeps no connection, built on first use (the pooled one should it fail
/// to build; it takes the same settings).
fn fresh_client(up: &Upstream) -> &reqwest::Client {
    if let Some(client) = up.fresh.get() {
        return client;
    }
    match http_client(false) {
        Ok(client) => up.fresh.get_or_init(|| client),
        Err(_) => &up.client,
    }
}

/// How soon after a GET goes out a closed connection is taken for a pooled one the upstream
/// closed as the request was sent (and the GET sent once more): about one round trip.
const STALE_RACE: Duration = Duration::from_millis(250);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One HTTP call to an upstream, already rendered from the rule's templates.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub method: http::Method,
    /// Appended to the upstream's base URL.
    pub path_and_query: String,
    /// Merged over the upstream's own headers.
    pub headers: http::HeaderMap,
    pub body: Option<Bytes>,
    /// When the body must be in, for a call an enforced rule waits on: the request's deadline
    /// less time for the rule to decide. A body still coming then is cut there, so the status
    /// that already arrived decides (a merchant's refusal stays a refusal) instead of the
    /// deadline deciding by `on_error`. `None`: the timeout alone (health probes; shadow
    /// rules, whose wait ends at the shadow cut-off).
    pub body_by: Option<tokio::time::Instant>,
}

/// An upstream's answer as rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamResponse {
    pub status: u16,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON, or the text when the body is not JSON.
    pub body: Value,
    /// Why `body` holds only the start of the body, when it does: it was over
    /// [`MAX_RESPONSE_BYTES`] (`cut at 1024 KiB`), or the upstream stopped sending it (`cut
    /// short: timed out after 1s`). The status came whole and still counts.
    pub incomplete: Option<String>,
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

/// [`UpstreamResponse::incomplete`] of an answer still coming when its rule had to decide.
const CUT_BY_DEADLINE: &str =
    "cut short: still coming when its rule had to decide, before the request's deadline";

impl UpstreamResponse {
    /// Whether the body was cut because the request's deadline neared (not by the upstream
    /// or the size cap): a check that could not complete for the deadline's sake.
    pub fn cut_by_deadline(&self) -> bool {
        self.incomplete.as_deref() == Some(CUT_BY_DEADLINE)
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
    #[error("request failed: {0}")]
    Other(String),
    /// A canned test answer was missing (rule tests only).
    #[error("no canned answer for {0}")]
    NoCannedAnswer(String),
    /// Held back on purpose (`eval --dry-run`: a call that may change something at the merchant).
    #[error("not sent: {0}")]
    NotSent(String),
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
}

/// Real HTTP through each upstream's pooled client.
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
            let result = send(&upstream, call).await;
            counted.outcome = Some(call_outcome(&result));
            result
        })
    }

    fn health(&self, upstream: &Upstream) -> Health {
        upstream.state.get()
    }
}

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

async fn send(up: &Upstream, call: HttpCall) -> Result<UpstreamResponse, UpstreamError> {
    let started = std::time::Instant::now();
    let body_by = call.body_by;
    let url = format!("{}{}", up.url, call.path_and_query);
    let get = call.method == http::Method::GET;
    let request = |client: &reqwest::Client, timeout| {
        let req = client
            .request(call.method.clone(), &url)
            .timeout(timeout)
            .headers(merged_headers(up, &call));
        match &call.body {
            Some(body) => req.body(body.clone()),
            None => req,
        }
    };
    // A pooled connection the upstream closed just as the request went out fails with nothing
    // said; a GET (free of side effects, by the rules' contract) is sent once more, on a
    // connection of its own. A POST or PUT may have been acted on: never repeated. Only a
    // failure that comes at once is that race: one that comes later is the upstream's own end
    // to this request (it read it, then closed), and sending it again would double its time and
    // the load on a service already in trouble. The second try has what is left of the call's
    // timeout, so `timeout` bounds the call as a whole.
    let sent = match request(&up.client, up.timeout).send().await {
        Err(e) if get && closed_under_us(&e) && started.elapsed() < STALE_RACE => {
            // Without the URL, which reqwest's text names in full: its path may hold a
            // `${VAR}` secret.
            let e = e.without_url();
            tracing::debug!(upstream = %up.name, "connection closed under the request ({e}); sending it again");
            let left = up.timeout.saturating_sub(started.elapsed());
            request(fresh_client(up), left).send().await
        }
        sent => sent,
    };
    let mut resp = sent.map_err(|e| classify(e, up))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // A header sent on several lines is one value, its lines joined by ", " (RFC 9110 §5.3),
    // so `response.headers["x"]` holds all of it rather than the last line.
    let headers = resp
        .headers()
        .keys()
        .map(|k| {
            let mut value = String::new();
            for (i, line) in resp.headers().get_all(k).iter().enumerate() {
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
        .collect();
    // Once the status is in, the answer is the upstream's: a body that stops coming (closed
    // early, or still trickling at the timeout) leaves the status to decide, as it decides a
    // `forward` and a fetch without `require`, and a `require` on the body says what happened.
    let mut body = Vec::new();
    let mut incomplete = None;
    // One timer for the whole body (none without `body_by`), not one per chunk.
    let due = async {
        match body_by {
            Some(by) => tokio::time::sleep_until(by).await,
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
                incomplete = Some(CUT_BY_DEADLINE.into());
                break;
            }
        };
        match next {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room < chunk.len() {
                    incomplete = Some(format!("cut at {} KiB", MAX_RESPONSE_BYTES / 1024));
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                incomplete = Some(format!("cut short: {}", classify(e, up)));
                break;
            }
        }
    }
    let mut body = parse_body(&body, content_type.as_deref(), &up.secrets);
    if let (Some(_), Value::String(text)) = (&incomplete, &mut body) {
        mask_cut_secret(text, &up.secrets);
    }
    Ok(UpstreamResponse {
        status,
        headers,
        body,
        incomplete,
    })
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
        Err(UpstreamError::Timeout(_)) => "timeout",
        Err(_) => "error",
    }
}

/// `bytes` with every occurrence of a secret (longest first) replaced by `***` (see
/// [`Upstream::secrets`]); `None` when none occurs, which is the usual case and copies nothing.
fn masked(bytes: &[u8], secrets: &[Finder<'static>]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for secret in secrets {
        let text = out.as_deref().unwrap_or(bytes);
        // Occurrences come without overlap, left to right.
        let mut hits = secret.find_iter(text).peekable();
        if hits.peek().is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(text.len());
        let mut from = 0;
        for at in hits {
            next.extend_from_slice(&text[from..at]);
            next.extend_from_slice(b"***");
            from = at + secret.needle().len();
        }
        next.extend_from_slice(&text[from..]);
        out = Some(next);
    }
    out
}

/// The start of a secret (4 bytes or more) that a cut body ends with, replaced by `***`: the
/// cut can come in the middle of an echoed token, which [`masked`] finds only whole.
fn mask_cut_secret(text: &mut String, secrets: &[Finder<'static>]) {
    let bytes = text.as_bytes();
    let cut = secrets
        .iter()
        .filter_map(|secret| {
            let needle = secret.needle();
            (4..needle.len())
                .rev()
                .find(|&k| bytes.ends_with(&needle[..k]))
        })
        .max();
    if let Some(k) = cut {
        let at = text.len() - k;
        if text.is_char_boundary(at) {
            text.truncate(at);
            text.push_str("***");
        }
    }
}

/// JSON when it parses, else the text (so `require` can still compare it). A byte-order mark
/// (UTF-8, UTF-16) and a UTF-16 label decide the charset first; then bytes that are valid
/// UTF-8 are read as UTF-8, JSON's own encoding, whatever a label says (a UTF-8 answer
/// labelled `charset=iso-8859-1` still reads right); any other bytes are read in the charset
/// the answer's `Content-Type` names — legacy Korean servers answer in EUC-KR and say so
/// (`application/json; charset=euc-kr`), and EUC-KR text is never valid UTF-8 — else as UTF-8.
/// Bytes that are not text in that charset become U+FFFD, so the numbers and ASCII of such an
/// answer are still read. `secrets` are masked once the text is decoded (an upstream may echo
/// a token back in any charset): in the strings of a JSON answer, read as JSON first so that
/// the masks leave it JSON (a `${MERCHANT_ID}` of `1234567` masked in `{"available":1234567}`
/// made it unreadable to every `require`) and catch a token JSON-escaped (`\/` for `/`);
/// in the text of any other answer.
pub fn parse_body(body: &[u8], content_type: Option<&str>, secrets: &[Finder<'static>]) -> Value {
    use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};
    let labelled = content_type.and_then(charset).and_then(encoding);
    let text = match (Encoding::for_bom(body), labelled) {
        (Some((bom, len)), _) => bom.decode_without_bom_handling(&body[len..]).0,
        (None, Some(e)) if e == UTF_16LE || e == UTF_16BE => e.decode_without_bom_handling(body).0,
        // One pass over the bytes: valid UTF-8 is borrowed as it is.
        (None, label) => match std::str::from_utf8(body) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => label.unwrap_or(UTF_8).decode_without_bom_handling(body).0,
        },
    };
    match serde_json::from_str(&text) {
        Ok(mut json) => {
            if !secrets.is_empty() {
                mask_json(&mut json, secrets);
            }
            json
        }
        Err(_) => {
            let mut text = text.into_owned();
            mask_text(&mut text, secrets);
            Value::String(text)
        }
    }
}

/// [`masked`] in every string and key of a JSON value; numbers and the structure stay as they
/// are. The parser's depth limit (128) bounds the recursion.
fn mask_json(value: &mut Value, secrets: &[Finder<'static>]) {
    match value {
        Value::String(text) => mask_text(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_json(v, secrets)),
        Value::Object(map) => {
            if map.keys().any(|k| masked(k.as_bytes(), secrets).is_some()) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(mut k, v)| {
                        mask_text(&mut k, secrets);
                        (k, v)
                    })
                    .collect();
            }
            map.values_mut().for_each(|v| mask_json(v, secrets));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn mask_text(text: &mut String, secrets: &[Finder<'static>]) {
    if let Some(m) = masked(text.as_bytes(), secrets) {
        // Valid UTF-8 in, whole UTF-8 secrets replaced: valid UTF-8 out.
        *text = String::from_utf8_lossy(&m).into_owned();
    }
}

/// The encoding a charset label names: the web's labels, and the names Java and Windows
/// servers give the same Korean code page (WHATWG's EUC-KR is that superset, code page 949).
fn encoding(label: &str) -> Option<&'static encoding_rs::Encoding> {
    // `for_label_no_replacement`: labels such as `iso-2022-kr` name the web's "replacement"
    // encoding, which reads every body as one U+FFFD; such a label is taken as none.
    encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()).or_else(|| {
        ["cp949", "ms949", "uhc"]
            .iter()
            .any(|k| label.eq_ignore_ascii_case(k))
            .then_some(encoding_rs::EUC_KR)
    })
}

/// The `charset` parameter of a `Content-Type` value, unquoted.
/// A quoted value may hold `;` (`foo="a;charset=x"`), which ends no parameter (RFC 9110 §5.6.6).
fn charset(content_type: &str) -> Option<&str> {
    let (_, mut rest) = content_type.split_once(';')?;
    loop {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            // Up to the closing quote, past any backslash-escaped character.
            Some(quoted) => {
                let mut escaped = false;
                let end = quoted.char_indices().find_map(|(i, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes.then_some(i)
                })?;
                let next = quoted[end + 1..].split_once(';').map(|(_, n)| n);
                (&quoted[..end], next)
            }
            None => match after.split_once(';') {
                Some((value, next)) => (value.trim_end(), Some(next)),
                None => (after.trim_end(), None),
            },
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            return Some(value);
        }
        rest = next?;
    }
}

/// Names the cause the way an operator debugs it: refused, DNS, timeout.
fn classify(e: reqwest::Error, up: &Upstream) -> UpstreamError {
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
    let cause = root_cause(&e);
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

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    crate::error_chain(e).last().unwrap_or(e).to_string()
}

/// Called after every probe (metrics count it): the upstream, whether this probe succeeded, and
/// the state after it (the two differ while `unhealthy_after` / `healthy_after` are still
/// counting). The state itself lives in [`Upstream::state`], where readiness, `healthy` rules
/// and the `/metrics` health gauge read it.
pub type HealthObserver = Arc<dyn Fn(&Upstream, bool, Health) + Send + Sync>;

/// Starts one probe per upstream with a `health` block; the tasks belong to this generation of
/// rules and stop when it is dropped.
pub fn start_probes(rules: &Rules, observer: HealthObserver) {
    for up in rules.upstreams() {
        if up.health.is_some() {
            let task = tokio::spawn(probe(up.clone(), observer.clone()));
            rules.own_task(task.abort_handle());
        }
    }
}

async fn probe(up: Arc<Upstream>, observer: HealthObserver) {
    let Some(spec) = up.health.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ups, mut downs) = (0u32, 0u32);
    loop {
        ticker.tick().await;
        let call = HttpCall {
            method: http::Method::GET,
            path_and_query: spec.path.clone(),
            headers: http::HeaderMap::new(),
            body: None,
            body_by: None,
        };
        // Why a probe failed, for the operator reading the log when the shop goes down.
        let failure = match send(&up, call).await {
            Ok(r) if (200..300).contains(&r.status) => None,
            Ok(r) => Some(format!("{} answered {}", spec.path, r.status)),
            Err(e) => Some(format!("{}: {e}", spec.path)),
        };
        let ok = failure.is_none();
        if ok {
            ups += 1;
            downs = 0;
        } else {
            downs += 1;
            ups = 0;
        }
        let before = up.state.get();
        // The first result settles an unknown state at once so readiness comes quickly;
        // after that the thresholds keep one blip from flapping decisions.
        let after = match before {
            Health::Unknown => {
                if ok {
                    Health::Up
                } else {
                    Health::Down
                }
            }
            Health::Up if downs >= spec.unhealthy_after => Health::Down,
            Health::Down if ups >= spec.healthy_after => Health::Up,
            same => same,
        };
        if after != before {
            up.state.set(after);
            match (after, failure) {
                (Health::Down, Some(cause)) => tracing::warn!(
                    ruleset = %up.ruleset,
                    upstream = %up.name,
                    from = %before,
                    failed_probes = downs,
                    "upstream unhealthy: {cause}"
                ),
                _ => tracing::info!(
                    ruleset = %up.ruleset,
                    upstream = %up.name,
                    from = %before,
                    "upstream healthy"
                ),
            }
        }
        observer(&up, ok, after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finders(secrets: &[&str]) -> Vec<Finder<'static>> {
        secrets
            .iter()
            .map(|s| Finder::new(s.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn masked_replaces_every_secret_longest_first() {
        let secrets = finders(&["t0ken-long", "t0ken"]);
        let out = masked(
            br#"{"error":"bad t0ken-long, t0ken, t0ken-longt0ken-long"}"#,
            &secrets,
        );
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            r#"{"error":"bad ***, ***, ******"}"#
        );
        // Overlapping occurrences: each byte is masked once, nothing of the secret is left.
        let out = masked(b"aaaaaaa", &finders(&["aaaaaa"]));
        assert_eq!(out.as_deref(), Some(&b"***a"[..]));
        assert_eq!(
            masked(b"aaaaaaaaaaaa", &finders(&["aaaaaa"])).as_deref(),
            Some(&b"******"[..])
        );
        assert_eq!(masked(b"no secret here", &secrets), None);
    }

    /// A byte-order mark decides the charset over the label; a label of the web's
    /// "replacement" encoding is taken as none; a secret echoed in any charset is masked once
    /// the text is decoded.
    #[test]
    fn byte_order_marks_replacement_labels_and_secrets_in_other_charsets() {
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in r#"{"reason":"bad token s3cret-token","left":2}"#.encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let secrets = finders(&["s3cret-token"]);
        for ct in [None, Some("application/json; charset=euc-kr")] {
            assert_eq!(
                parse_body(&utf16, ct, &secrets),
                serde_json::json!({"reason": "bad token ***", "left": 2}),
                "{ct:?}"
            );
        }
        assert_eq!(
            parse_body(
                br#"{"left":2}"#,
                Some("application/json; charset=iso-2022-kr"),
                &[]
            ),
            serde_json::json!({"left": 2})
        );
        // UTF-8 is read as UTF-8 whatever the label says (windows-1252 would read any byte),
        // also after a UTF-8 byte-order mark.
        let utf8 = r#"{"reason":"재고 없음"}"#;
        for body in [utf8.to_owned(), format!("\u{feff}{utf8}")] {
            assert_eq!(
                parse_body(
                    body.as_bytes(),
                    Some("application/json; charset=ISO-8859-1"),
                    &[]
                ),
                serde_json::json!({"reason": "재고 없음"})
            );
        }
    }

    /// In a JSON answer only strings and keys are masked: the answer stays JSON, its numbers
    /// stay numbers, and a token JSON-escaped by the upstream is found too.
    #[test]
    fn secrets_in_a_json_answer_are_masked_in_its_strings_only() {
        let secrets = finders(&["1234567", "ab/cd+ef=="]);
        assert_eq!(
            parse_body(
                br#"{"merchant":1234567,"available":1234567,"note":"id 1234567","1234567":[{"t":"ab\/cd+ef=="}]}"#,
                None,
                &secrets
            ),
            serde_json::json!({"merchant": 1234567, "available": 1234567, "note": "id ***", "***": [{"t": "***"}]})
        );
        assert_eq!(
            parse_body(b"denied: ab/cd+ef== 1234567", None, &secrets),
            serde_json::json!("denied: *** ***")
        );
    }

    #[test]
    fn a_cut_body_ending_in_the_start_of_a_secret_masks_it() {
        let secrets = finders(&["sk_live_abcdef123456"]);
        for (text, want) in [
            ("denied: Bearer sk_live_abc", "denied: Bearer ***"),
            ("denied: Bearer sk_", "denied: Bearer sk_"),
            ("어떤 답 sk_live", "어떤 답 ***"),
            ("nothing secret here", "nothing secret here"),
        ] {
            let mut text = text.to_owned();
            mask_cut_secret(&mut text, &secrets);
            assert_eq!(text, want);
        }
    }

    #[test]
    fn the_charset_parameter_is_read_past_quoted_values() {
        for (ct, want) in [
            ("application/json; charset=euc-kr", Some("euc-kr")),
            (
                "application/json;charset=\"EUC-KR\";foo=bar",
                Some("EUC-KR"),
            ),
            (
                "application/json; foo=\"x;charset=utf-8\"; charset=euc-kr",
                Some("euc-kr"),
            ),
            (
                "application/json; foo=\"a\\\"b;c\" ; Charset = cp949 ",
                Some("cp949"),
            ),
            ("application/json; foo=bar", None),
            ("application/json", None),
            ("application/json; foo=\"unclosed; charset=x", None),
        ] {
            assert_eq!(charset(ct), want, "{ct}");
        }
    }

    #[test]
    fn bodies_are_read_in_the_charset_their_content_type_names() {
        let (euc_kr, _, _) = encoding_rs::EUC_KR.encode(r#"{"reason":"재고 없음","left":0}"#);
        let want = serde_json::json!({"reason": "재고 없음", "left": 0});
        for ct in [
            "application/json; charset=euc-kr",
            "application/json;charset=\"EUC-KR\"",
            "text/plain; format=x; Charset=cp949",
        ] {
            assert_eq!(parse_body(&euc_kr, Some(ct), &[]), want, "{ct}");
        }
        // Named nowhere (or unknown): UTF-8, with what is not UTF-8 as U+FFFD; the numbers and
        // ASCII of the answer are still read.
        for ct in [
            None,
            Some("application/json"),
            Some("application/json; charset=nope"),
        ] {
            let body = parse_body(&euc_kr, ct, &[]);
            assert_eq!(body["left"], 0, "{ct:?}");
            assert!(
                body["reason"].as_str().unwrap().contains('\u{fffd}'),
                "{ct:?}"
            );
        }
        // A byte-order mark before JSON; text stays text.
        assert_eq!(
            parse_body("\u{feff}{\"a\":1}".as_bytes(), None, &[]),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            parse_body(b"not json", Some("text/plain; charset=utf-8"), &[]),
            Value::String("not json".into())
        );
    }
}
