//! The HTTP side: the public listener (`/confirm`, `/confirm/{ruleset}`, `/healthz`) and the
//! admin listener (`/healthz`, `/readyz`, `/metrics`, `/admin/rules`, `/admin/reload`).
//! Handlers are thin: guard, parse, evaluate, answer.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, FixedOffset, Utc};
use ipnet::IpNet;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use crate::audit::{DecisionLog, Record, Sampling};
use crate::decision::Decision;
use crate::engine::{self, Context, Original};
use crate::metrics::Metrics;
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::reload::{self, EnvReader, Gate, Reloader, RuleStore};
use crate::rules::{Check, Mode, Rules, Ruleset};
use crate::script::ScriptEngine;
use crate::upstream::{HttpUpstreams, Upstreams};
use crate::webhook::{Verifier, WebhookSecret};

/// Bodies over this get 413 (PortOne's are a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// The only label an unknown ruleset gets: label values must not be chosen by callers.
const UNKNOWN_RULESET: &str = "unknown";
const JSON_UTF8: &str = "application/json; charset=utf-8";
const DECISION_ID: &str = "x-confirm-decision-id";

/// Everything `serve` needs, already parsed by the CLI.
pub struct Config {
    pub rules_dir: PathBuf,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub allow_from: Vec<IpNet>,
    pub trust_forwarded_for: bool,
    pub admin_token: Option<String>,
    pub decision_log: Option<PathBuf>,
    pub decision_log_approvals: Sampling,
    /// Extra check a rules generation must pass to go live (`--test-on-reload`).
    pub gate: Option<Gate>,
    /// Watch the rules directory (tests of the admin reload turn it off).
    pub watch: bool,
    pub env: EnvReader,
    /// A connection that sends no complete request head for this long is closed: slow senders
    /// and idle keep-alive connections alike (`--idle-timeout`).
    pub idle_timeout: Duration,
}

/// Above the idle timeout of common load balancers (AWS ALB and nginx: 60 s), which must close
/// an idle connection before the proxy does or a request sent on it as it closes fails.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

impl Config {
    /// Defaults for a rules directory: no security options, watching on, the process env.
    pub fn new(rules_dir: PathBuf) -> Config {
        Config {
            rules_dir,
            webhook_secrets: Vec::new(),
            allow_from: Vec::new(),
            trust_forwarded_for: false,
            admin_token: None,
            decision_log: None,
            decision_log_approvals: Sampling { every: 1 },
            gate: None,
            watch: true,
            env: Arc::new(|name| std::env::var(name).ok()),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    store: Arc<RuleStore>,
    scripts: Arc<ScriptEngine>,
    upstreams: Arc<dyn Upstreams>,
    metrics: Metrics,
    decision_log: Option<DecisionLog>,
    verifier: Option<Verifier>,
    allow_from: Vec<IpNet>,
    trust_forwarded_for: bool,
    admin_token: Option<String>,
    reloader: Reloader,
    idle_timeout: Duration,
    /// Evaluations that call upstreams, run apart from their connection (see
    /// [`AppState::detached`]); shutdown waits for them.
    evaluations: TaskTracker,
    /// The longest `deadline` (in nanoseconds) of any ruleset a request has been answered from
    /// since start: a request still running on an older rules generation keeps its deadline,
    /// and shutdown waits for it.
    longest_deadline: AtomicU64,
}

/// A started server: rules loaded, reload loop and watcher running, not yet listening.
pub struct App {
    state: AppState,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl App {
    /// Loads the rules (invalid rules are an error with every `FILE:LINE:COL` line), opens the
    /// decision log, and starts the reload loop, the watcher and the health probes.
    pub async fn start(config: Config) -> Result<App, Vec<String>> {
        let metrics = Metrics::new();
        let scripts = Arc::new(ScriptEngine::new());
        let store = {
            let (dir, scripts, env, gate, metrics) = (
                config.rules_dir.clone(),
                scripts.clone(),
                config.env.clone(),
                config.gate.clone(),
                metrics.clone(),
            );
            tokio::task::spawn_blocking(move || RuleStore::open(dir, scripts, env, gate, metrics))
                .await
                .map_err(|e| vec![format!("loading rules failed: {e}")])??
        };
        let store = Arc::new(store);
        for w in &store.current().warnings {
            tracing::warn!("{w}");
        }
        store.start();
        let decision_log = match &config.decision_log {
            Some(path) => Some(
                DecisionLog::open(path, config.decision_log_approvals, metrics.clone()).map_err(
                    |e| vec![format!("{}: cannot open decision log: {e}", path.display())],
                )?,
            ),
            None => None,
        };
        let (reloader, _task) = reload::spawn_reload_loop(store.clone());
        let watcher = if config.watch {
            Some(
                reload::watch(&config.rules_dir, reloader.clone()).map_err(|e| {
                    vec![format!(
                        "{}: cannot watch rules directory: {e}",
                        config.rules_dir.display()
                    )]
                })?,
            )
        } else {
            None
        };
        let rules = store.current();
        let longest_deadline = AtomicU64::new(nanos(longest_deadline(&rules)));
        tracing::info!(
            version = %rules.version,
            rulesets = rules.rulesets.len(),
            rules = rules.rule_count(),
            dir = %config.rules_dir.display(),
            "rules loaded"
        );
        let verifier =
            (!config.webhook_secrets.is_empty()).then(|| Verifier::new(config.webhook_secrets));
        Ok(App {
            state: AppState(Arc::new(Shared {
                store,
                scripts,
                upstreams: Arc::new(HttpUpstreams::new(metrics.clone())),
                metrics,
                decision_log,
                verifier,
                allow_from: config.allow_from,
                trust_forwarded_for: config.trust_forwarded_for,
                admin_token: config.admin_token,
                reloader,
                idle_timeout: config.idle_timeout,
                evaluations: TaskTracker::new(),
                longest_deadline,
            })),
            _watcher: watcher,
        })
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    pub fn reloader(&self) -> Reloader {
        self.state.0.reloader.clone()
    }

    pub fn decision_log(&self) -> Option<DecisionLog> {
        self.state.0.decision_log.clone()
    }

    /// Serves both listeners until `shutdown` resolves, then finishes in-flight requests and
    /// evaluations whose caller has gone, and drains the decision log.
    ///
    /// Everything in flight is waited for at most the grace period, counted from `shutdown`:
    /// the longest deadline of any rules generation a request was answered from, plus 1 s.
    pub async fn serve(
        self,
        public: TcpListener,
        admin: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let idle = self.state.0.idle_timeout;
        // One end of the grace period for both listeners and the detached evaluations, fixed
        // by whichever asks first (a listener, as it stops accepting).
        let wait_until: Arc<OnceLock<tokio::time::Instant>> = Arc::default();
        let until = {
            let (state, wait_until) = (self.state.clone(), wait_until.clone());
            move || *wait_until.get_or_init(|| tokio::time::Instant::now() + state.grace())
        };
        let grace = || {
            let until = until.clone();
            move || until().saturating_duration_since(tokio::time::Instant::now())
        };
        let public = listen::serve(
            public,
            public_router(self.state.clone()),
            idle,
            stopped(stop_rx.clone()),
            grace(),
        );
        let admin = listen::serve(
            admin,
            admin_router(self.state.clone()),
            idle,
            stopped(stop_rx),
            grace(),
        );
        let upkeep = self.state.0.metrics.spawn_upkeep();
        let (a, b) = tokio::join!(public, admin);
        // No request is accepted any more; what is left are evaluations whose caller went away
        // (or whose connection was given up on), each bound by its deadline.
        let evaluations = &self.state.0.evaluations;
        evaluations.close();
        if tokio::time::timeout_at(until(), evaluations.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = evaluations.len(),
                "stopped waiting for evaluations at the end of the grace period"
            );
        }
        upkeep.abort();
        if let Some(log) = &self.state.0.decision_log {
            log.shutdown().await;
        }
        a.and(b)
    }
}

/// The longest deadline of a rules generation.
fn longest_deadline(rules: &Rules) -> Duration {
    let longest = rules.rulesets.values().map(|rs| rs.settings.deadline).max();
    longest.unwrap_or_default()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether evaluating `ruleset` may wait for an upstream (`fetch`, `forward`). Every other
/// check (and Rhai) runs without yielding, so such an evaluation cannot be cut off midway by
/// its caller going away; one that waits can, after a `forward` or a `POST` has reached the
/// merchant.
fn calls_upstreams(ruleset: &Ruleset) -> bool {
    ruleset.rules.iter().any(|rule| {
        rule.mode != Mode::Off && matches!(rule.check, Check::Fetch(_) | Check::Forward(_))
    })
}

pub use admin::admin_router;

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
        .route("/healthz", get(healthz))
        .with_state(state)
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
/// `/confirm/{ruleset}`.
fn ruleset_in(path: &str) -> &str {
    path.strip_prefix("/confirm/").unwrap_or("default")
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
            id: uuid::Uuid::now_v7().to_string(),
            started: tokio::time::Instant::now(),
            arrived: Utc::now(),
            ruleset: rules.get(ruleset).cloned(),
            rules,
        }
    }

    fn method_not_allowed(&self, ruleset: &str, peer: SocketAddr, headers: &HeaderMap) -> Response {
        let seen = self.seen(ruleset);
        if let Some(refusal) = self.source_refused(&seen, peer, headers) {
            return refusal;
        }
        self.refuse(&seen, 405, "POST 요청만 받습니다".into())
    }

    async fn confirm(
        &self,
        ruleset: &str,
        peer: SocketAddr,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        let s = &self.0;
        let seen = self.seen(ruleset);
        // Guards in the order of SPEC §9; the first failing one answers.
        if let Some(refusal) = self.source_refused(&seen, peer, &headers) {
            return refusal;
        }
        let Some(set) = seen.ruleset.clone() else {
            return self.refuse(&seen, 404, "알 수 없는 결제 확인 경로입니다".into());
        };
        self.note_deadline(set.settings.deadline);
        let too_large = || {
            let reason = format!("요청 본문이 너무 큽니다 (최대 {} KiB)", MAX_BODY / 1024);
            self.refuse(&seen, 413, reason)
        };
        // A body announced as too large is refused before any of it is read (and before an
        // `Expect: 100-continue` client is told to send it).
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY as u64) {
            return too_large();
        }
        // The deadline covers a body sent slowly too; what has not arrived cannot be checked.
        let read = axum::body::to_bytes(body, MAX_BODY);
        let bytes =
            match tokio::time::timeout_at(engine::answer_by(&set.settings, seen.started), read)
                .await
            {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) if over_limit(&e) => return too_large(),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "request body could not be read");
                    return self.refuse(&seen, 400, "요청 본문을 읽지 못했습니다".into());
                }
                Err(_) => {
                    tracing::warn!("request body not received within the deadline");
                    return self.refuse(
                        &seen,
                        408,
                        "요청 본문을 제한 시간 안에 받지 못했습니다".into(),
                    );
                }
            };
        if let Some(verifier) = &s.verifier {
            if let Err(e) = verifier.verify(&headers, &bytes, unix_now()) {
                tracing::warn!(error = %e, "webhook signature refused");
                return self.refuse(&seen, 401, e.reason().into());
            }
        }
        // A Content-Type that is not even text is not one we read (and not a missing one).
        let content_type = match headers.get(header::CONTENT_TYPE).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(ct)) => Some(ct),
            Some(Err(_)) => {
                let e = payload::PayloadError::UnsupportedContentType("(not text)".into());
                return self.refuse(&seen, e.status(), e.to_string());
            }
        };
        let req = match payload::parse_bytes(content_type, &bytes) {
            Ok(Parsed::Confirm(req)) => req,
            Ok(Parsed::Ignored { message_type }) => {
                tracing::info!(message_type, "webhook type ignored");
                return self.finish(&seen, Decision::ignored(), None);
            }
            Err(e) => return self.refuse(&seen, e.status(), e.to_string()),
        };
        let original = Original {
            content_type: headers.get(header::CONTENT_TYPE).cloned(),
            webhook_headers: headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            body: bytes,
        };
        if calls_upstreams(&set) {
            self.detached(seen, set, req, original).await
        } else {
            let decision = engine::evaluate(&set, &req, &self.context(&seen, &original)).await;
            self.finish(&seen, decision, Some(&req))
        }
    }

    /// What an evaluation of the request `seen` needs besides the rules and the request.
    fn context<'a>(&'a self, seen: &Seen, original: &'a Original) -> Context<'a> {
        Context {
            scripts: &self.0.scripts,
            upstreams: self.0.upstreams.clone(),
            now: now_fixed(),
            started: seen.started,
            original,
        }
    }

    /// The evaluation and [`Self::finish`] in a task of their own, for a ruleset that calls
    /// upstreams. Run in the connection's task, the evaluation would be dropped with it when
    /// the caller hangs up while a rule waits for an upstream: a `forward` may already have
    /// reached the merchant, yet there would be no log line, no decision record and no count.
    /// Apart, it finishes (within its deadline) whatever the caller does, and shutdown waits
    /// for it (see [`App::serve`]).
    async fn detached(
        &self,
        seen: Seen,
        set: Arc<Ruleset>,
        req: ConfirmRequest,
        original: Original,
    ) -> Response {
        let (tx, rx) = oneshot::channel();
        let state = self.clone();
        let (kept, ruleset) = (seen.clone(), set.clone());
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
                let settings = &ruleset.settings;
                let reason = settings.error_reason.clone();
                let decision = Decision::reject(settings.reject_status, reason, None);
                self.finish(&kept, decision, None)
            }
        }
    }

    /// Keeps the longest deadline a request has been answered with, for the grace period.
    fn note_deadline(&self, deadline: Duration) {
        let deadline = nanos(deadline);
        let longest = &self.0.longest_deadline;
        // Read first: written only the first time a longer deadline is seen, the value stays in
        // every core's cache.
        if deadline > longest.load(Ordering::Relaxed) {
            longest.fetch_max(deadline, Ordering::Relaxed);
        }
    }

    /// How long shutdown waits for what is in flight: the longest deadline of any rules
    /// generation a request has been answered from (or of the current one), plus 1 s.
    fn grace(&self) -> Duration {
        let seen = Duration::from_nanos(self.0.longest_deadline.load(Ordering::Relaxed));
        let current = longest_deadline(&self.0.store.current());
        seen.max(current) + Duration::from_secs(1)
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
            Some(client) if allow_from.iter().any(|net| net.contains(&client)) => None,
            Some(client) => {
                tracing::warn!(%client, "source address not allowed");
                Some(self.refuse(seen, 403, "허용되지 않은 발신 주소입니다".into()))
            }
            None => {
                tracing::warn!(
                    "source address unknown: X-Forwarded-For does not end in an address"
                );
                Some(self.refuse(seen, 403, "허용되지 않은 발신 주소입니다".into()))
            }
        }
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
            Some(v) => forwarded_addr(v.to_str().ok()?.rsplit(',').next()?)?,
        };
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        Some(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
    }

    fn refuse(&self, seen: &Seen, status: u16, reason: String) -> Response {
        self.finish(seen, Decision::reject(status, reason, None), None)
    }

    /// Counts, logs and records one answer, then renders it.
    fn finish(&self, seen: &Seen, decision: Decision, req: Option<&ConfirmRequest>) -> Response {
        let s = &self.0;
        let elapsed = seen.started.elapsed();
        s.metrics
            .decision(seen.ruleset.as_deref(), &decision, elapsed);
        let latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
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
            });
        }
        response
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port as some load balancers
/// write it (`203.0.113.7:443`, `[2001:db8::1]:443`).
fn forwarded_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
}

/// Whether reading the body failed because it is over [`MAX_BODY`].
fn over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The evaluation time, in Korea's offset so traces read naturally for Korean operators.
fn now_fixed() -> DateTime<FixedOffset> {
    match FixedOffset::east_opt(9 * 3600) {
        Some(kst) => Utc::now().with_timezone(&kst),
        None => Utc::now().fixed_offset(),
    }
}

/// Liveness, on both listeners: the process answers HTTP.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

mod admin;
mod listen;
