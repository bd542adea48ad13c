//! The HTTP side: the public listener (`/confirm`, `/confirm/{ruleset}`, `/healthz`) and the
//! admin listener (`/healthz`, `/readyz`, `/metrics`, `/admin/rules`, `/admin/reload`).
//! Handlers are thin: guard, parse, evaluate, answer.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use ipnet::IpNet;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::audit::{DecisionLog, Sampling};
use crate::metrics::Metrics;
use crate::reload::{self, EnvReader, Gate, Reloader, RuleStore};
use crate::rules::Rules;
use crate::script::ScriptEngine;
use crate::upstream::{HttpUpstreams, Upstreams};
use crate::webhook::{Verifier, WebhookSecret};
use deliveries::Deliveries;

/// Everything `serve` needs, already parsed by the CLI.
pub struct Config {
    pub rules_dir: PathBuf,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub allow_from: Vec<IpNet>,
    pub trust_forwarded_for: bool,
    /// The load balancers whose `X-Forwarded-For` is read (`--forwarded-by`); empty: any peer's,
    /// with `trust_forwarded_for`.
    pub forwarded_by: Vec<IpNet>,
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
            forwarded_by: Vec::new(),
            admin_token: None,
            decision_log: None,
            decision_log_approvals: Sampling { every: 1 },
            gate: None,
            watch: true,
            env: Arc::new(crate::rules::ProcessEnv),
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
    /// Signed messages seen while their signatures hold, and their answers.
    deliveries: Deliveries,
    allow_from: Vec<IpNet>,
    trust_forwarded_for: bool,
    forwarded_by: Vec<IpNet>,
    admin_token: Option<String>,
    reloader: Reloader,
    idle_timeout: Duration,
    /// Evaluations that call upstreams, run apart from their connection (see
    /// [`AppState::detached`]); shutdown waits for them.
    evaluations: TaskTracker,
    /// Confirm answers given since start, and how many when the stop began: the stop's log
    /// line says how many it finished.
    answered: AtomicU64,
    answered_at_stop: AtomicU64,
    /// The longest `deadline` (in nanoseconds) of any ruleset a request has started on since
    /// start: a request still running on an older rules generation keeps its deadline,
    /// and shutdown waits for it.
    longest_deadline: AtomicU64,
    /// At shutdown, the end of the grace period: one for both listeners and the evaluations
    /// left, fixed then (the deadlines of the rules generations answered from so far). Also
    /// for what waits on something shutdown does not (an admin reload waiting for a writer).
    stopping: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
}

/// A started server: rules loaded, reload loop and watcher running, not yet listening.
pub struct App {
    state: AppState,
    _watcher: Option<reload::RulesWatcher>,
}

/// Rules loaded and the decision log open, nothing started yet: a process that will not serve
/// (an address in use) sends the merchant no health probe.
pub struct Opened {
    config: Config,
    metrics: Metrics,
    scripts: Arc<ScriptEngine>,
    store: Arc<RuleStore>,
    decision_log: Option<DecisionLog>,
}

impl App {
    /// Loads the rules (invalid rules are an error with every `FILE:LINE:COL` line), opens the
    /// decision log, and starts the reload loop, the watcher and the health probes.
    pub async fn start(config: Config) -> Result<App, Vec<String>> {
        Ok(App::open(config).await?.start())
    }

    /// Loads the rules and opens the decision log; every reason not to go on at once.
    pub async fn open(config: Config) -> Result<Opened, Vec<String>> {
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
            let opened = tokio::task::spawn_blocking(move || {
                RuleStore::open(dir, scripts, env, gate, metrics)
            })
            .await
            .map_err(|e| vec![format!("loading rules failed: {e}")])?;
            match opened {
                Ok(store) => store,
                Err(mut errors) => {
                    // Every reason not to start at once: a decision log that cannot be opened
                    // too, rather than only once the rules are fixed.
                    if let Some(path) = &config.decision_log {
                        if let Err(e) = crate::audit::can_open(path) {
                            errors
                                .push(format!("{}: cannot open decision log: {e}", path.display()));
                        }
                    }
                    return Err(errors);
                }
            }
        };
        let store = Arc::new(store);
        let decision_log = match &config.decision_log {
            Some(path) => Some(
                DecisionLog::open(path, config.decision_log_approvals, metrics.clone()).map_err(
                    |e| vec![format!("{}: cannot open decision log: {e}", path.display())],
                )?,
            ),
            None => None,
        };
        Ok(Opened {
            config,
            metrics,
            scripts,
            store,
            decision_log,
        })
    }
}

impl Opened {
    /// Starts the health probes, the reload loop and the watcher.
    pub fn start(self) -> App {
        let Opened {
            config,
            metrics,
            scripts,
            store,
            decision_log,
        } = self;
        for w in &store.current().warnings {
            tracing::warn!("{w}");
        }
        store.start();
        let (reloader, _task) = reload::spawn_reload_loop(store.clone());
        let watcher = config
            .watch
            .then(|| reload::watch(&config.rules_dir, reloader.clone()));
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
        if let Some(v) = &verifier {
            metrics.signature_secrets(v.secrets());
        }
        App {
            state: AppState(Arc::new(Shared {
                store,
                scripts,
                upstreams: Arc::new(HttpUpstreams::new(metrics.clone())),
                metrics,
                decision_log,
                verifier,
                deliveries: Deliveries::new(deliveries::CAPACITY),
                allow_from: config.allow_from,
                trust_forwarded_for: config.trust_forwarded_for,
                forwarded_by: config.forwarded_by,
                admin_token: config.admin_token,
                reloader,
                idle_timeout: config.idle_timeout,
                evaluations: TaskTracker::new(),
                answered: AtomicU64::new(0),
                answered_at_stop: AtomicU64::new(0),
                longest_deadline,
                stopping: tokio::sync::watch::Sender::new(None),
            })),
            _watcher: watcher,
        }
    }
}

impl App {
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
    ) {
        let stop_rx = self.state.0.stopping.subscribe();
        let state = self.state.clone();
        tokio::spawn(async move {
            shutdown.await;
            let answered = state.0.answered.load(Ordering::Relaxed);
            state.0.answered_at_stop.store(answered, Ordering::Relaxed);
            state
                .0
                .stopping
                .send_replace(Some(tokio::time::Instant::now() + state.grace()));
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>| async move {
            match rx.wait_for(Option::is_some).await {
                Ok(until) => until.unwrap_or_else(tokio::time::Instant::now),
                Err(_) => tokio::time::Instant::now(),
            }
        };
        let idle = self.state.0.idle_timeout;
        let state = self.state.clone();
        let public = listen::serve(
            public,
            public_router(self.state.clone()),
            idle,
            move |peer| state.refuses_at_sight(peer),
            stopped(stop_rx.clone()),
        );
        let admin_on_loopback = admin.local_addr().is_ok_and(|a| is_loopback(a.ip()));
        let admin = listen::serve(
            admin,
            admin_router(self.state.clone(), admin_on_loopback),
            idle,
            |_| false,
            stopped(stop_rx.clone()),
        );
        let upkeep = self.state.0.metrics.spawn_upkeep();
        tokio::join!(public, admin);
        // No request is accepted any more; what is left are evaluations whose caller went away
        // (or whose connection was given up on), each bound by its deadline.
        let evaluations = &self.state.0.evaluations;
        evaluations.close();
        let until = stopped(stop_rx).await;
        if tokio::time::timeout_at(until, evaluations.wait())
            .await
            .is_err()
        {
            // Each was answered (and recorded) at its deadline by its request's side, or its
            // caller had gone before any answer: either way no answered request lacks a record.
            tracing::warn!(
                left = evaluations.len(),
                "stopped waiting for evaluations at the end of the grace period"
            );
        }
        upkeep.abort();
        let s = &self.state.0;
        let answered = s.answered.load(Ordering::Relaxed);
        tracing::info!(
            answered_while_stopping =
                answered.saturating_sub(s.answered_at_stop.load(Ordering::Relaxed)),
            answered_since_start = answered,
            "in-flight requests finished"
        );
        if let Some(log) = &self.state.0.decision_log {
            log.shutdown().await;
        }
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

impl AppState {
    /// Keeps the longest deadline a request has started with, for the grace period.
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
}

pub use admin::admin_router;
pub use confirm::public_router;
pub(crate) use confirm::{is_loopback, unmapped};

/// Liveness, on both listeners: the process answers HTTP.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

mod admin;
mod confirm;
mod deliveries;
mod listen;
