//! A validated rules directory: every ruleset compiled, every reference resolved. Built by
//! [`load_dir`], shared read-only by every request that started on it.

mod load;
pub mod model;
pub mod template;
pub(crate) mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;

pub(crate) use load::{is_misnamed_yaml, leads_outside, read_yaml_text, UNKNOWN_RULESET};
pub use load::{
    is_rule_source, load_dir, parse_duration, referenced_scripts, rules_version, Env, Environment,
    LoadOptions, ProcessEnv,
};
pub use model::{HttpMethod, Mode, OnError};
pub use template::Template;
pub use yaml::Location;

/// Where PortOne may stop waiting (its documents say 5–10 s).
pub const PORTONE_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(4);
pub const DEFAULT_ERROR_REASON: &str =
    "일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.";
pub const DEFAULT_REJECT_STATUS: u16 = 409;
/// Korean time, in which buyers, sales and operators read the clock: a fixed offset is exact,
/// as Korea keeps no daylight saving time.
pub const SEOUL: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A refusal with no reason of its own (a `forward` whose endpoint gave none, say).
pub const DEFAULT_REASON: &str = "결제를 진행할 수 없습니다.";
/// The reason of the 404 for a ruleset that is not loaded.
pub const UNKNOWN_RULESET_REASON: &str = "알 수 없는 결제 확인 경로입니다";

/// A time as rule files, rule tests and `eval --now` take it: RFC 3339, with its UTC offset.
/// The error says what is wrong where that can be said (see [`time_slip`]).
pub fn parse_time(s: &str) -> Result<DateTime<FixedOffset>, Option<String>> {
    use chrono::{format::ParseErrorKind, Timelike};
    match DateTime::parse_from_rfc3339(s) {
        // chrono keeps `:60` as a leap second, which sorts before the next minute in a window
        // but is that next minute in `now`'s milliseconds: the two would disagree.
        Ok(t) if t.nanosecond() >= 1_000_000_000 => Err(Some(
            "it has second 60 (a leap second), which the clocks here do not count: write :59, or :00 of the next minute".to_owned(),
        )),
        Ok(t) => Ok(t),
        Err(e) => Err(time_slip(s).or_else(|| {
            (e.kind() == ParseErrorKind::OutOfRange).then(|| {
                "a part of it is out of range: months 01-12, a day the month has, hours 00-23, minutes and seconds 00-59, an offset from -23:59 to +23:59 (+09:00 for Korean time)".to_owned()
            })
        })),
    }
}

/// What is wrong with `s`, a time that is not RFC 3339, when it is a common near miss: no UTC
/// offset, an offset without its colon, a date alone, no seconds; with `s` put right (Korean time
/// where the offset is missing), for the error that names it.
pub fn time_slip(s: &str) -> Option<String> {
    use chrono::NaiveDate;
    let s = s.trim();
    let parses = |t: &str| DateTime::parse_from_rfc3339(t).is_ok();
    // chrono also reads a space between date and time; the fix shows the usual `T`.
    let with_t = || s.replacen(' ', "T", 1);
    let offset_without_colon = s.len() > 5
        && s.is_char_boundary(s.len() - 5)
        && s[s.len() - 5..].starts_with(['+', '-'])
        && s[s.len() - 4..].bytes().all(|b| b.is_ascii_digit());
    let colon_added = || format!("{}:{}", &s[..s.len() - 2], &s[s.len() - 2..]);
    // `KST` (or `UTC`) for the offset: RFC 3339 writes it as a number.
    let named = [("KST", "+09:00"), ("UTC", "Z")]
        .into_iter()
        .find_map(|(name, offset)| Some((s.strip_suffix(name)?.trim_end(), name, offset)));
    if let Some((time, name, offset)) = named.filter(|(t, _, o)| parses(&format!("{t}{o}"))) {
        return Some(format!(
            "write the offset as RFC 3339 does, {offset} for {name} ({}{offset})",
            time.replacen(' ', "T", 1)
        ));
    }
    // `… Asia/Seoul`: a zone's name, which RFC 3339 has no room for.
    if let Some((time, zone)) = s.rsplit_once(' ').filter(|(_, zone)| zone.contains('/')) {
        if parses(&format!("{}+09:00", time.trim_end())) {
            return Some(format!(
                "a time zone is written as its offset, not its name (\"{zone}\"): +09:00 for Korean time ({}+09:00)",
                time.trim_end().replacen(' ', "T", 1)
            ));
        }
    }
    if parses(&format!("{s}+09:00")) {
        Some(format!(
            "it has no UTC offset: add one, +09:00 for Korean time ({}+09:00)",
            with_t()
        ))
    } else if offset_without_colon && parses(&colon_added()) {
        Some(format!(
            "write the offset with a colon: +09:00, not +0900 ({})",
            colon_added()
        ))
    } else if parses(&format!("{s}:00+09:00")) {
        Some(format!(
            "it has no seconds and no UTC offset: add both, :00 and +09:00 for Korean time ({}:00+09:00)",
            with_t()
        ))
    } else if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        Some(format!(
            "a date alone: add the time and the offset ({s}T00:00:00+09:00)"
        ))
    } else if let Some(t) = [s.to_owned(), with_t()]
        .iter()
        .find_map(|s| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M%:z").ok())
    {
        // Rebuilt from the value: chrono reads an offset after spaces (an IME's U+3000
        // included) and without its colon, so the text cannot be cut at a fixed length.
        Some(format!(
            "the seconds are required: 10:00:00, not 10:00 ({})",
            t.format("%Y-%m-%dT%H:%M:00%:z")
        ))
    } else if let Some((unit, t)) = unix_time(s) {
        Some(format!(
            "a Unix time in {unit}: write it as a date and time ({})",
            t.with_timezone(&SEOUL).to_rfc3339()
        ))
    } else {
        None
    }
}

/// `s` read as a Unix time of this century, in seconds (10 digits) or milliseconds (13).
fn unix_time(s: &str) -> Option<(&'static str, DateTime<chrono::Utc>)> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = s.parse().ok()?;
    match s.len() {
        10 => Some(("seconds", DateTime::from_timestamp(n, 0)?)),
        13 => Some(("milliseconds", DateTime::from_timestamp_millis(n)?)),
        _ => None,
    }
}

/// The confirm URL path of ruleset `name` (its file's stem): `/confirm` for `default`.
pub fn confirm_path(name: &str) -> String {
    if name == "default" {
        "/confirm".to_owned()
    } else {
        format!("/confirm/{name}")
    }
}

/// Every ruleset of one rules directory, loaded together and swapped together.
pub struct Rules {
    /// Short content hash of every file the load reads (see [`rules_version`]).
    pub version: String,
    pub loaded_at: SystemTime,
    pub rulesets: BTreeMap<String, Arc<Ruleset>>,
    /// Loadable but worth an operator's attention (a deadline over PortOne's timeout, say).
    pub warnings: Vec<String>,
    /// Background tasks (health probes) owned by this generation; stopped when it is dropped.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Rules {
    pub fn new(
        version: String,
        rulesets: BTreeMap<String, Arc<Ruleset>>,
        warnings: Vec<String>,
    ) -> Rules {
        Rules {
            version,
            loaded_at: SystemTime::now(),
            rulesets,
            warnings,
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Ruleset>> {
        self.rulesets.get(name)
    }

    pub fn rule_count(&self) -> usize {
        self.rulesets.values().map(|r| r.rules.len()).sum()
    }

    /// Every upstream of every ruleset.
    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.rulesets.values().flat_map(|r| r.upstreams.values())
    }

    /// Ties a background task to this generation.
    pub fn own_task(&self, handle: tokio::task::AbortHandle) {
        // Even poisoned: a task left out would never be stopped.
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
    }

    /// Stops this generation's background tasks (its health probes): when it is replaced,
    /// not only once its last request is done, or the upstreams it shares with the new
    /// generation would be probed (and counted) twice for as long as a request of the old
    /// one still waits on its upstreams.
    pub fn stop_tasks(&self) {
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("version", &self.version)
            .field("rulesets", &self.rulesets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One rule file, compiled.
#[derive(Debug)]
pub struct Ruleset {
    pub name: String,
    pub file: PathBuf,
    pub settings: Settings,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub rules: Vec<Rule>,
    /// Whether any expression or script mentions `payload` (else it is not built per request).
    pub uses_payload: bool,
    /// Whether any rule runs Rhai (else no Rhai scope is built per request).
    pub uses_rhai: bool,
    /// Whether an evaluation may wait for an upstream (a `fetch` or `forward` rule): the server
    /// then runs it in a task of its own, which the caller hanging up cannot cut short (as it
    /// does for one that runs Rhai, which may wait for its turn).
    pub calls_upstreams: bool,
    /// Whether any rule makes a call that may change something at the merchant (a `forward`,
    /// a POST or PUT fetch): only then are the calls sent noted for an answer at the deadline.
    pub has_side_effects: bool,
    /// Whether any rule is a GET fetch, started early (as the request arrives, or once the
    /// last call before it that may change something at the merchant is done).
    pub prefetches: bool,
    /// Whether a rule's `when` is evaluated as the request arrives
    /// ([`Rule::when_known_early`]).
    pub early_whens: bool,
    /// Metric handles, registered on first use by the server that evaluates this ruleset.
    pub metrics: std::sync::OnceLock<crate::metrics::RulesetMetrics>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub deadline: Duration,
    pub on_error: OnError,
    /// Request placeholders only: it replaces whatever check failed, so no response is known.
    pub error_reason: Template,
    pub reject_status: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            deadline: DEFAULT_DEADLINE,
            on_error: OnError::Reject,
            error_reason: Template::literal(DEFAULT_ERROR_REASON),
            reject_status: DEFAULT_REJECT_STATUS,
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    /// Shared with every trace and decision that names the rule, so naming costs no copy.
    pub name: Arc<str>,
    pub when: Option<Expr>,
    pub mode: Mode,
    pub on_error: Option<OnError>,
    pub reason: Template,
    pub check: Check,
}

impl Rule {
    /// Whether its check may change something at the merchant: a `forward` (which may confirm
    /// the order) or a POST/PUT `fetch` (a reservation, say). Such a call is started only once
    /// every earlier rule has passed, and never once the answer is due.
    pub fn has_side_effects(&self) -> bool {
        match &self.check {
            Check::Forward(_) => true,
            Check::Fetch(f) => f.method != HttpMethod::GET,
            _ => false,
        }
    }

    /// Whether this rule runs and makes a call that may change something at the merchant:
    /// GET fetches after it wait for it (see `engine::calls`).
    pub fn changes_state(&self) -> bool {
        self.mode != Mode::Off && self.has_side_effects()
    }

    /// Whether this rule is a GET fetch: free of side effects, so started as the request
    /// arrives, before the rules ahead of it are evaluated.
    pub fn is_prefetch(&self) -> bool {
        self.mode != Mode::Off
            && matches!(&self.check, Check::Fetch(f) if f.method == HttpMethod::GET)
    }

    /// Whether this rule's `when` skips `req` whatever the rules before it do: a `when` of the
    /// simple shapes ([`crate::script::native::Native`], `order_id.starts_with("marathon-")`)
    /// reads nothing but the request's ids and amount, so it is known as the request arrives,
    /// and the call of a rule it skips need not be made at all.
    pub fn skips_up_front(&self, req: &crate::payload::ConfirmRequest) -> bool {
        let native = self.when.as_ref().and_then(|w| w.native.as_ref());
        native.is_some_and(|n| !n.eval(req))
    }

    /// Whether this rule's `when` needs Rhai, reads nothing earlier rules leave (`fetched`),
    /// and decides whether a call is made ahead of the rule: of a GET fetch, whether it is
    /// sent at all; of a call that may change something at the merchant, whether the GET
    /// fetches after it wait for it. Such a `when` depends on the request alone (its `now`
    /// too is fixed as it arrives), so the engine evaluates it then, once, and a call it skips
    /// is never made, as for the shapes of [`Self::skips_up_front`]. Any mention of `fetched`
    /// in its text ([`Expr::mentions_fetched`]) keeps it to its turn.
    pub fn when_known_early(&self) -> bool {
        let early = |w: &Expr| w.native.is_none() && !w.mentions_fetched;
        self.when.as_ref().is_some_and(early) && (self.is_prefetch() || self.changes_state())
    }

    /// Whether evaluating this rule may wait for an upstream's answer (`fetch`, `forward`).
    pub fn calls_upstream(&self) -> bool {
        self.called().is_some()
    }

    /// The upstream this rule calls (`fetch`, `forward`), unless it has `mode: off`.
    pub fn called(&self) -> Option<&Upstream> {
        match &self.check {
            _ if self.mode == Mode::Off => None,
            Check::Fetch(f) => Some(&f.upstream),
            Check::Forward(f) => Some(&f.upstream),
            _ => None,
        }
    }

    /// Whether this rule's outcome may depend on the clock: a `window`, or an expression or
    /// script that reads `now`.
    pub fn reads_clock(&self) -> bool {
        let reads = |e: &Option<Expr>| e.as_ref().is_some_and(|e| crate::script::reads_now(&e.ast));
        self.mode != Mode::Off
            && (reads(&self.when)
                || match &self.check {
                    Check::Window { .. } => true,
                    Check::Require(e) => crate::script::reads_now(&e.ast),
                    Check::Script { ast, .. } => crate::script::reads_now(ast),
                    Check::Fetch(f) => reads(&f.require),
                    Check::Approve
                    | Check::Amount { .. }
                    | Check::Healthy(_)
                    | Check::Forward(_) => false,
                })
    }

    /// Whether evaluating this rule may run Rhai. A fetch counts: its answer goes into the
    /// Rhai scope as `fetched[name]` for the rules after it.
    pub fn uses_rhai(&self) -> bool {
        let rhai = |e: &Option<Expr>| e.as_ref().is_some_and(|e| e.native.is_none());
        self.mode != Mode::Off
            && (rhai(&self.when)
                || match &self.check {
                    Check::Require(e) => e.native.is_none(),
                    Check::Script { .. } | Check::Fetch(_) => true,
                    Check::Approve
                    | Check::Amount { .. }
                    | Check::Window { .. }
                    | Check::Healthy(_)
                    | Check::Forward(_) => false,
                })
    }
}

/// The fields an expression reads as `response.body.NAME` (the first name after `body`).
pub(crate) fn fields_read(expr: &str) -> Vec<&str> {
    const READ: &str = "response.body.";
    let mut fields: Vec<&str> = expr
        .match_indices(READ)
        .map(|(i, _)| {
            let rest = &expr[i + READ.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|f| !f.is_empty())
        .collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// A compiled Rhai expression with its source, for traces.
pub struct Expr {
    pub src: String,
    pub ast: rhai::AST,
    /// The same expression run without Rhai, when it is one of the common simple shapes.
    pub native: Option<crate::script::native::Native>,
    /// Whether its text mentions `fetched` anywhere (inside a string too): what earlier rules
    /// fetched may then decide it (see [`Rule::when_known_early`]). Found at load.
    pub mentions_fetched: bool,
    /// The rule file it is written in, relative to the rules directory, and where it is there:
    /// a run-time error names the file's line and column, not the expression's own.
    pub file: Arc<str>,
    pub origin: yaml::Origin,
}

impl Expr {
    /// A run-time error of this expression as `FILE:LINE:COL: what: message`.
    pub fn error_at(&self, what: &str, e: &crate::script::ScriptError) -> String {
        // No position (a value of the wrong type): the expression's first character.
        let (line, column) = e.position.unwrap_or((1, 1));
        let at = self.origin.position(&self.src, line, column);
        format!(
            "{}:{}:{}: {what}: {}",
            self.file, at.line, at.column, e.message
        )
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.src)
    }
}

#[derive(Debug)]
pub enum Check {
    /// `action: approve` (with `when`).
    Approve,
    Amount {
        min: Option<Decimal>,
        max: Option<Decimal>,
    },
    /// `from` inclusive, `until` exclusive.
    Window {
        from: Option<DateTime<FixedOffset>>,
        until: Option<DateTime<FixedOffset>>,
    },
    Require(Expr),
    Healthy(Arc<Upstream>),
    Fetch(Fetch),
    Forward(Forward),
    Script {
        path: String,
        /// Shared by every rule that names the same script.
        ast: Arc<rhai::AST>,
    },
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Approve => "approve",
            Check::Amount { .. } => "amount",
            Check::Window { .. } => "window",
            Check::Require(_) => "require",
            Check::Healthy(_) => "healthy",
            Check::Fetch(_) => "fetch",
            Check::Forward(_) => "forward",
            Check::Script { .. } => "script",
        }
    }
}

/// A call to a merchant API whose answer a rule reads.
#[derive(Debug)]
pub struct Fetch {
    pub upstream: Arc<Upstream>,
    pub method: HttpMethod,
    pub path: Template,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(http::HeaderName, Template)>,
    pub body: Option<BodyTemplate>,
    pub require: Option<Expr>,
}

/// A JSON body whose string values are templates.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    Value(serde_json::Value),
    Text(Template),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
}

/// Chaining to the merchant's existing confirm handler.
#[derive(Debug)]
pub struct Forward {
    pub upstream: Arc<Upstream>,
    pub path: String,
}

/// A merchant service, with its two HTTP clients built once at load.
pub struct Upstream {
    pub name: String,
    /// The ruleset (file) that defines it: two files may each have a `shop`, with their own
    /// URL and probe, so metrics name both.
    pub ruleset: Arc<str>,
    /// Base URL without a trailing slash; rule paths are appended.
    pub url: String,
    pub timeout: Duration,
    /// Header values filled from `${VAR}` are marked sensitive and never printed.
    pub headers: http::HeaderMap,
    pub health: Option<HealthSpec>,
    /// Pooled, for GETs (fetches and probes).
    pub client: reqwest::Client,
    /// A client that keeps no connection: for POST/PUT fetches and forwards, which cannot be
    /// sent again should a pooled connection close under them, and for a GET sent again after
    /// its pooled connection was closed under it (another pooled one, idle as long, may be
    /// closing too).
    pub fresh: reqwest::Client,
    pub state: Arc<HealthState>,
    /// `max_connections`: the calls to it that may be in flight at once (each has a
    /// connection), for requests; health probes are not among them.
    pub slots: Option<Slots>,
    /// Searchers, built at load and longest first, for the `${VAR}` values of its url and
    /// headers (and a URL's password) of 6 characters or more: any of them may be a
    /// credential. An upstream that echoes one back (`401 {"error":"bad token Bearer …"}`) has
    /// it replaced by `***` in its answer before anything reads it, so it never reaches a
    /// reason, the decision log or `eval`'s output.
    pub secrets: Arc<[memchr::memmem::Finder<'static>]>,
    /// Its URL and headers as written, hashed at load: the start of every call's digest
    /// ([`crate::upstream::digest_start`]).
    pub sends: sha2::Sha256,
    /// The digest of what every call to it sends (its URL and headers; see
    /// [`crate::upstream::fingerprint`]), made at load: a forward's and a probe's whole digest.
    pub digest: String,
}

/// The connections an upstream's calls share (`max_connections`): a call waits for one, within
/// its `timeout`. Kept across a reload that keeps the upstream and its limit, so that calls of
/// the old rules and of the new share them.
#[derive(Clone, Debug)]
pub struct Slots {
    pub max: u32,
    pub free: Arc<tokio::sync::Semaphore>,
    /// Calls waiting for a slot now (see [`Slots::take`]).
    waiting: Arc<std::sync::atomic::AtomicU32>,
}

impl Slots {
    pub fn new(max: u32) -> Slots {
        Slots {
            max,
            free: Arc::new(tokio::sync::Semaphore::new(max as usize)),
            waiting: Arc::default(),
        }
    }

    /// A slot, once one is free; the call is counted as waiting until then (or until the
    /// caller gives up, dropping the future). Fails only were the semaphore closed, which it
    /// never is.
    pub async fn take(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError> {
        use std::sync::atomic::Ordering::Relaxed;
        if let Ok(slot) = self.free.clone().try_acquire_owned() {
            return Ok(slot);
        }
        /// Uncounts the wait however it ends: given a slot, or dropped at the call's timeout.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Relaxed);
            }
        }
        self.waiting.fetch_add(1, Relaxed);
        let _waiting = Waiting(&self.waiting);
        self.free.clone().acquire_owned().await
    }

    /// Slots held by calls now.
    pub fn in_use(&self) -> u32 {
        self.max
            .saturating_sub(u32::try_from(self.free.available_permits()).unwrap_or(u32::MAX))
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
impl Upstream {
    /// An upstream named `shop` of the ruleset `default`, as loaded from a `url` and a
    /// `timeout` alone; a test sets any other field with `..Upstream::for_tests(…)`.
    pub fn for_tests(url: &str, timeout: Duration) -> Upstream {
        Upstream {
            name: "shop".into(),
            ruleset: "default".into(),
            url: url.into(),
            timeout,
            headers: http::HeaderMap::new(),
            health: None,
            client: reqwest::Client::new(),
            fresh: reqwest::Client::new(),
            state: Arc::default(),
            slots: None,
            secrets: Arc::new([]),
            sends: crate::upstream::digest_start(url, []),
            digest: String::new(),
        }
    }
}

impl Upstream {
    /// Probed, but its first probe has not answered yet (what `/readyz` waits for).
    pub fn awaiting_first_probe(&self) -> bool {
        self.health.is_some() && self.state.get() == Health::Unknown
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the headers: they may hold tokens.
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct HealthSpec {
    pub path: String,
    pub interval: Duration,
    pub unhealthy_after: u32,
    pub healthy_after: u32,
}

/// What the background probe last concluded about an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// Lock-free health state read by every `healthy` rule, with what its probe has counted so
/// far. A reload that keeps the upstream carries all of it over ([`HealthState::carry`]):
/// were the count to start again at every reload, edits more frequent than
/// `unhealthy_after` probes would hide an outage for as long as they go on (and keep a shop
/// that is back marked down).
#[derive(Debug, Default)]
pub struct HealthState {
    health: AtomicU8,
    /// The latest probes' results in a row: successes (> 0) or failures (< 0).
    streak: std::sync::atomic::AtomicI32,
    /// When the latest probe was sent; the probe of the next generation goes on from there
    /// instead of sending one at once.
    last_probe: Mutex<Option<tokio::time::Instant>>,
    /// Since when a probe has waited for an answer with no result counted since: set as a
    /// probe is sent (the earliest kept), cleared by a result, and carried to the next
    /// generation. A reload stops the probe of the rules it replaces mid-request, so with
    /// reloads coming faster than the probe's timeout a hung upstream's probe never failed and
    /// the upstream stayed up; the next probe counts a failure once this is older than the
    /// timeout ([`HealthState::unanswered_since`]).
    unanswered: Mutex<Option<tokio::time::Instant>>,
    /// Why the latest probe that failed did, for the trace of a `healthy` rule refusing on a
    /// down upstream: the decision log then says what the shop answered, not only that it was
    /// down.
    last_failure: Mutex<Option<Arc<str>>>,
    /// Wakes whoever waits for the state to be known ([`HealthState::known`]).
    changed: tokio::sync::Notify,
}

impl HealthState {
    /// Takes over `old`'s state, count and probe time (the same upstream in the rules being
    /// replaced).
    pub fn carry(&self, old: &HealthState) {
        self.set(old.get());
        self.streak
            .store(old.streak.load(Ordering::Acquire), Ordering::Release);
        let last = old.last_probe();
        if let Ok(mut mine) = self.last_probe.lock() {
            *mine = last;
        }
        let unanswered = old.unanswered_since();
        if let Ok(mut mine) = self.unanswered.lock() {
            *mine = unanswered;
        }
        let failure = old.last_failure();
        if let Ok(mut mine) = self.last_failure.lock() {
            *mine = failure;
        }
    }

    /// Why the latest failed probe failed, if one has.
    pub fn last_failure(&self) -> Option<Arc<str>> {
        self.last_failure.lock().map(|f| f.clone()).unwrap_or(None)
    }

    /// A probe is sent at `at`.
    pub fn sending(&self, at: tokio::time::Instant) {
        if let Ok(mut since) = self.unanswered.lock() {
            since.get_or_insert(at);
        }
    }

    /// Since when probes have gone unanswered, none counted since (see the field).
    pub fn unanswered_since(&self) -> Option<tokio::time::Instant> {
        self.unanswered.lock().map(|at| *at).unwrap_or(None)
    }

    /// Brings the state in line with the results in a row so far under `spec`'s thresholds:
    /// after each probe, and when a probe starts, since they may not be the thresholds the
    /// results were counted under (a reload that lowers `unhealthy_after`, or an upstream
    /// probed on its own that now shares a probe with others). Returns the state before and
    /// after.
    pub fn settle(&self, spec: &HealthSpec) -> (Health, Health) {
        let before = self.get();
        let streak = self.streak.load(Ordering::Acquire);
        let after = match before {
            // The first result settles an unknown state at once so readiness comes quickly;
            // after that the thresholds keep one blip from flapping decisions.
            Health::Unknown if streak > 0 => Health::Up,
            Health::Unknown if streak < 0 => Health::Down,
            Health::Up if streak < 0 && streak.unsigned_abs() >= spec.unhealthy_after => {
                Health::Down
            }
            Health::Down if streak > 0 && streak.unsigned_abs() >= spec.healthy_after => Health::Up,
            same => same,
        };
        self.set(after);
        (before, after)
    }

    /// The results in a row so far: successes (> 0) or failures (< 0).
    pub fn streak(&self) -> i32 {
        self.streak.load(Ordering::Acquire)
    }

    /// Counts a probe's result, sent at `at`: a success (`None`) or why it failed; returns the
    /// results in a row like it.
    pub fn count(&self, failure: Option<&str>, at: tokio::time::Instant) -> u32 {
        let ok = failure.is_none();
        if let (Some(cause), Ok(mut last)) = (failure, self.last_failure.lock()) {
            *last = Some(cause.into());
        }
        let before = self.streak.load(Ordering::Acquire);
        let after = match (ok, before) {
            (true, n) if n > 0 => n.saturating_add(1),
            (true, _) => 1,
            (false, n) if n < 0 => n.saturating_sub(1),
            (false, _) => -1,
        };
        self.streak.store(after, Ordering::Release);
        if let Ok(mut last) = self.last_probe.lock() {
            *last = Some(at);
        }
        if let Ok(mut since) = self.unanswered.lock() {
            *since = None;
        }
        after.unsigned_abs()
    }

    /// When the latest probe was sent, if one was.
    pub fn last_probe(&self) -> Option<tokio::time::Instant> {
        self.last_probe.lock().map(|at| *at).unwrap_or(None)
    }

    pub fn get(&self) -> Health {
        match self.health.load(Ordering::Acquire) {
            1 => Health::Up,
            2 => Health::Down,
            _ => Health::Unknown,
        }
    }

    pub fn set(&self, h: Health) {
        let v = match h {
            Health::Unknown => 0,
            Health::Up => 1,
            Health::Down => 2,
        };
        if self.health.swap(v, Ordering::AcqRel) != v {
            self.changed.notify_waiters();
        }
    }

    /// Waits until every one of `states` is known ([`Self::known`]), for at most `within`:
    /// a reload waiting for new upstreams' first probes, `eval` for the probes it started.
    pub async fn all_known(states: &[&HealthState], within: std::time::Duration) {
        let _ = tokio::time::timeout(within, async {
            for state in states {
                state.known().await;
            }
        })
        .await;
    }

    /// The state once known: at once when it is, else when a probe (or a reload carrying the
    /// state over) makes it known. Never, for an upstream no probe of which runs any more: a
    /// caller bounds the wait ([`Self::all_known`]).
    pub async fn known(&self) -> Health {
        loop {
            // Registered before the state is read, so a change between the two still wakes it.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            match self.get() {
                Health::Unknown => changed.await,
                known => return known,
            }
        }
    }
}

/// One load error: `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    pub location: Option<Location>,
    pub message: String,
}

/// The most characters of a quoted text (a name, a value) a load error shows.
const MAX_QUOTED_CHARS: usize = 200;
/// The most characters of a load error's message, hints included.
const MAX_MESSAGE_CHARS: usize = 2_000;

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A message may quote the file (Rhai's `unexpected '\0'`): a control character would
        // act on the operator's terminal rather than show. Line breaks and tabs are layout.
        let raw = |c: char| c.is_control() && !matches!(c, '\n' | '\t');
        let message: std::borrow::Cow<'_, str> = if self.message.contains(raw) {
            self.message
                .chars()
                .map(|c| {
                    if raw(c) {
                        c.escape_unicode().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect::<String>()
                .into()
        } else {
            self.message.as_str().into()
        };
        // A value of a megabyte, quoted whole (or unquoted, by Rhai), would make a line no one
        // reads.
        let message = crate::text::cut_quoted(&message, MAX_QUOTED_CHARS);
        let message = crate::text::cut(&message, MAX_MESSAGE_CHARS);
        match self.location {
            Some(l) => write!(
                f,
                "{}:{}:{}: {message}",
                self.file.display(),
                l.line,
                l.column,
            ),
            None => write!(f, "{}: {message}", self.file.display()),
        }
    }
}

/// Every error of one load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl LoadErrors {
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

/// Loads a rules directory made of `files` (path under it, content), with no environment
/// variables set; the directory must outlive the rules. For unit tests.
#[cfg(test)]
pub(crate) fn load_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Rules) {
    let (dir, rules) = try_load_files(files);
    (dir, rules.unwrap_or_else(|e| panic!("{e}")))
}

/// The errors of loading a rules directory made of `files`, as `check` prints them.
#[cfg(test)]
pub(crate) fn load_errors(files: &[(&str, &str)]) -> String {
    match try_load_files(files).1 {
        Ok(_) => panic!("the rules loaded"),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
fn try_load_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Rules, LoadErrors>) {
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let opts = LoadOptions {
        engine: &crate::script::ScriptEngine::new(),
        env: &|_: &str| Err(std::env::VarError::NotPresent),
        previous: None,
    };
    let rules = load_dir(dir.path(), &opts);
    (dir, rules)
}
