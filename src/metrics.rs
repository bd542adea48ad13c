//! Metric names and recording. Each server owns its own Prometheus recorder (no global), so
//! two servers in one process (tests) never mix their counts.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{counter, gauge, histogram, with_local_recorder, Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::decision::{Decision, Outcome, RuleTrace, Verdict};
use crate::rules::{Health, Rules, Ruleset, Upstream};

/// Confirm answers by ruleset and decision.
pub const REQUESTS: &str = "confirm_proxy_requests_total";
/// Time from request arrival to answer.
pub const REQUEST_DURATION: &str = "confirm_proxy_request_duration_seconds";
/// Answers that left after their ruleset's deadline, by ruleset.
pub const ANSWERS_LATE: &str = "confirm_proxy_answers_late_total";
/// Rule outcomes by ruleset, rule and outcome.
pub const RULE_OUTCOMES: &str = "confirm_proxy_rule_outcomes_total";
/// Upstream calls by upstream and outcome (a status class or an error kind).
pub const UPSTREAM_CALLS: &str = "confirm_proxy_upstream_calls_total";
pub const UPSTREAM_DURATION: &str = "confirm_proxy_upstream_call_duration_seconds";
/// GET calls sent a second time, by ruleset and upstream (see `upstream::send`).
pub const UPSTREAM_RESENT: &str = "confirm_proxy_upstream_calls_resent_total";
/// 1 healthy, 0 unhealthy, -1 not known yet, by ruleset and upstream. Not recorded: rendered at
/// scrape time from the rules in force (see [`Metrics::render_with`]).
pub const UPSTREAM_HEALTHY: &str = "confirm_proxy_upstream_healthy";
/// An upstream's `max_connections`, by ruleset and upstream; rendered at scrape time as
/// [`UPSTREAM_HEALTHY`] is, for each upstream with a limit.
pub const UPSTREAM_MAX_CONNECTIONS: &str = "confirm_proxy_upstream_max_connections";
/// Connections of an upstream with `max_connections` held by calls now (rendered likewise).
pub const UPSTREAM_CONNECTIONS_IN_USE: &str = "confirm_proxy_upstream_connections_in_use";
/// Calls waiting for one of those connections now (rendered likewise).
pub const UPSTREAM_CONNECTIONS_WAITING: &str = "confirm_proxy_upstream_connections_waiting";
/// Health probes by upstream and result (`success`, `failure`).
pub const HEALTH_PROBES: &str = "confirm_proxy_health_probes_total";
/// Rule reloads by result (applied, unchanged, rejected).
pub const RELOADS: &str = "confirm_proxy_reloads_total";
/// 1 while the rules directory holds what runs (the last reload applied, or found the files
/// unchanged), 0 while its last reload was rejected and the running rules are older than the
/// files: unlike `reloads_total{result="rejected"}`, it stays 0 until the files are fixed.
pub const RULES_LAST_RELOAD_SUCCESSFUL: &str = "confirm_proxy_rules_last_reload_successful";
/// Decision-log records that could not be written (must stay 0).
pub const DECISION_LOG_DROPPED: &str = "confirm_proxy_decision_log_dropped_total";
/// Gauge, read at scrape time.
pub const DECISION_LOG_BACKLOG: &str = "confirm_proxy_decision_log_backlog";

/// 1 while every edit of the rules directory is picked up by its watcher, 0 while it is not
/// watched or cannot be looked at; set at scrape time.
pub const RULES_WATCHED: &str = "confirm_proxy_rules_watched";

/// Repeated deliveries of a signed message by how they were answered (`answered`: as the first
/// delivery was; `unanswered`: refused, the first had no answer in time; `other_ruleset`,
/// `other_body`: refused, not a copy of the first).
pub const REPEATED_DELIVERIES: &str = "confirm_proxy_repeated_deliveries_total";
/// The `answer` labels of [`REPEATED_DELIVERIES`]: given the first delivery's answer, refused
/// while it had none, refused for another body or another ruleset under the same id.
pub const REPEAT_ANSWERS: [&str; 4] = ["answered", "unanswered", "other_body", "other_ruleset"];
/// Message ids forgotten before their signatures expired, to make room for new ones.
pub const DELIVERY_IDS_FORGOTTEN: &str = "confirm_proxy_delivery_ids_forgotten_total";
/// Signed message ids remembered now; set at scrape time.
pub const DELIVERY_IDS: &str = "confirm_proxy_delivery_ids";
/// Signed requests whose signature verified, by the secret that verified it (`secret="1"`: the
/// first `--webhook-secret` given).
pub const SIGNATURES_VERIFIED: &str = "confirm_proxy_signatures_verified_total";
/// Confirm requests refused by a guard before any rule ran, by guard (SPEC §9's order).
pub const GUARD_REFUSALS: &str = "confirm_proxy_guard_refusals_total";
/// The guards and the status each answers with; `other` for any other status.
pub const GUARDS: [(&str, u16); 9] = [
    ("source", 403),
    ("ruleset", 404),
    ("method", 405),
    ("body_size", 413),
    ("body_time", 408),
    ("signature", 401),
    ("content_type", 415),
    ("payload", 400),
    ("other", 0),
];

/// The `# HELP` line of each recorded metric (the gauges read from the rules at scrape time
/// write their own).
const HELP: [(&str, &str); 18] = [
    (REQUESTS, "Confirm answers by ruleset and decision (approve, reject, ignored)."),
    (GUARD_REFUSALS, "Confirm requests refused before any rule ran, by guard (source, ruleset, method, body_size, body_time, signature, content_type, payload, other)."),
    (REQUEST_DURATION, "Time from the arrival of a confirm request to its answer."),
    (RULE_OUTCOMES, "Outcomes of evaluated rules (pass, reject, error, skipped, approve, shadow_reject, shadow_approve, shadow_error)."),
    (UPSTREAM_CALLS, "Calls to merchant upstreams by outcome (a status class 2xx-5xx, other for a status outside 200-599, or refused, dns, timeout, no_free_connection, error, cancelled)."),
    (ANSWERS_LATE, "Confirm answers that left after their ruleset's deadline (from the request head read until the answer is handed to its connection): the deadline holds with a margin, which a machine short of CPU can use up; PortOne itself waits 5-10 s."),
    (UPSTREAM_RESENT, "GET calls to merchant upstreams sent a second time because their connection closed at once, as a pooled one the upstream closed just then does; each is one call in the decision log and two in the upstream's access log."),
    (UPSTREAM_DURATION, "Duration of calls to merchant upstreams."),
    (HEALTH_PROBES, "Health probes of upstreams by result (success, failure)."),
    (RELOADS, "Rule reloads by result (applied, unchanged, rejected)."),
    (RULES_LAST_RELOAD_SUCCESSFUL, "1 while the rules in force are those of the files; 0 while the last reload was rejected and the running rules stay (/admin/rules shows the error)."),
    (DECISION_LOG_DROPPED, "Decision-log records that could not be written (should stay 0)."),
    (DECISION_LOG_BACKLOG, "Decision-log records queued and not yet written (a few at most; one that keeps growing is a writer stuck on its file)."),
    (REPEATED_DELIVERIES, "Repeated deliveries of a signed message (answered as the first was, unanswered, other_ruleset, other_body)."),
    (RULES_WATCHED, "1 while every edit of the rules directory is picked up by the watcher; 0 while it cannot be watched or looked at (/admin/rules says why; SIGHUP or POST /admin/reload still reload)."),
    (DELIVERY_IDS_FORGOTTEN, "Signed message ids forgotten early to make room (a replay of one is evaluated again)."),
    (DELIVERY_IDS, "Signed message ids remembered now, each until its signature expires (at most 100000)."),
    (SIGNATURES_VERIFIED, "Signed confirm requests whose signature verified, by the secret that verified it (1 for the first --webhook-secret given): after a rotation, the old secret's count stops growing once PortOne signs with the new one alone."),
];

/// Gives `name` its help text, with its unit when it has one. The exporter keeps help texts by
/// name whatever the kind (`# TYPE` follows the metric recorded), so counters and the gauge share
/// the one call.
fn describe(name: &'static str, help: &'static str) {
    if name.ends_with("_seconds") {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
    } else {
        metrics::describe_counter!(name, help);
    }
}

/// Buckets fit for millisecond decisions, up to PortOne's timeout; local rules decide in tens
/// of microseconds, which a lowest bucket of 0.5 ms would put all in one.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// A cheap, cloneable handle to this server's metrics.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    unknown: Arc<RulesetMetrics>,
    guards: Arc<[Counter; GUARDS.len()]>,
    /// One counter per webhook secret, in the order given; set once at start.
    secrets: Arc<OnceLock<Box<[Counter]>>>,
}

/// Metric handles of one ruleset, kept with the ruleset so a request never looks them up.
/// Request counters are indexed by [`Verdict`], rule counters by rule index and [`Outcome`];
/// a rule's series appears the first time that outcome happens.
#[derive(Debug)]
pub struct RulesetMetrics {
    requests: [Counter; Verdict::ALL.len()],
    duration: Histogram,
    /// `None` for requests to no ruleset, which have no deadline.
    late: Option<Counter>,
    rules: Vec<[OnceLock<Counter>; Outcome::ALL.len()]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        // set_buckets only fails on an empty list, which BUCKETS is not.
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let unknown = with_local_recorder(&recorder, || {
            RulesetMetrics {
            requests: Verdict::ALL
                .map(|v| counter!(REQUESTS, "ruleset" => crate::rules::UNKNOWN_RULESET, "decision" => v.as_str())),
            duration: histogram!(REQUEST_DURATION, "ruleset" => crate::rules::UNKNOWN_RULESET),
            late: None,
            rules: Vec::new(),
        }
        });
        // Registered up front, at 0 (see below).
        let guards = with_local_recorder(&recorder, || {
            GUARDS.map(|(guard, _)| counter!(GUARD_REFUSALS, "guard" => guard))
        });
        let m = Metrics {
            recorder: Arc::new(recorder),
            handle,
            unknown: Arc::new(unknown),
            guards: Arc::new(guards),
            secrets: Arc::default(),
        };
        m.record(|| {
            for (name, help) in HELP {
                describe(name, help);
            }
            // Registered up front so dashboards and alerts see 0, not "no data": an
            // `increase(…) > 0` alert misses a series that is born at 1.
            counter!(DECISION_LOG_DROPPED).absolute(0);
            counter!(DELIVERY_IDS_FORGOTTEN).absolute(0);
            for result in ["applied", "unchanged", "rejected"] {
                counter!(RELOADS, "result" => result).absolute(0);
            }
            // Serving at all means the rules loaded at start-up.
            gauge!(RULES_LAST_RELOAD_SUCCESSFUL).set(1.0);
            for answer in REPEAT_ANSWERS {
                counter!(REPEATED_DELIVERIES, "answer" => answer).absolute(0);
            }
        });
        m
    }

    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        with_local_recorder(self.recorder.as_ref(), f)
    }

    /// Prometheus text format: the recorded metrics only. `/metrics` serves
    /// [`render_with`](Self::render_with).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Prometheus text format: the recorded metrics, the health of every probed upstream of
    /// `rules` (the generation in force) and the connections of every upstream with
    /// `max_connections`. These gauges are read from the rules at scrape time
    /// rather than recorded, so they describe exactly that generation: an upstream (or ruleset)
    /// removed by a reload has no series any more, a replaced generation's probes never show,
    /// and two rulesets' upstreams of the same name are two series.
    pub fn render_with(&self, rules: &Rules) -> String {
        let mut out = self.render();
        write_upstream_gauges(&mut out, rules);
        out
    }

    /// Folds the histogram samples recorded since the last call into their buckets. The
    /// recorder keeps every sample until then, so without this (or a scrape) memory grows with
    /// every request: [`spawn_upkeep`](Self::spawn_upkeep) runs it every few seconds.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`run_upkeep`](Self::run_upkeep) every 5 s until the returned task is aborted.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        })
    }

    /// Registers the counters of [`SIGNATURES_VERIFIED`] for `n` secrets, at 0: a secret that
    /// verifies nothing shows as 0, not as no data. Only the first call counts.
    pub fn signature_secrets(&self, n: usize) {
        let counters = self.record(|| {
            (1..=n)
                .map(|i| {
                    let c = counter!(SIGNATURES_VERIFIED, "secret" => i.to_string());
                    c.absolute(0);
                    c
                })
                .collect()
        });
        let _ = self.secrets.set(counters);
    }

    /// A signed request verified by secret `index` (0 for the first given).
    pub fn signature_verified(&self, index: usize) {
        if let Some(c) = self.secrets.get().and_then(|c| c.get(index)) {
            c.increment(1);
        }
    }

    /// A confirm request refused with `status` by a guard, before any rule ran: a wrong
    /// webhook secret (401) or a stale allow-list (403) refuses every payment, which the
    /// requests counter alone cannot tell from rules refusing.
    pub fn guard_refusal(&self, status: u16) {
        let guard = GUARDS
            .iter()
            .position(|(_, answers)| *answers == status)
            .unwrap_or(GUARDS.len() - 1);
        self.guards[guard].increment(1);
    }

    /// One confirm answer, with the outcomes of the rules that were evaluated. `None` is an
    /// unknown ruleset, counted under `ruleset="unknown"`.
    pub fn decision(&self, ruleset: Option<&Ruleset>, decision: &Decision, elapsed: Duration) {
        let handles = match ruleset {
            // Registered once per ruleset and rules generation: a lookup by labels on every
            // request cost more than the rest of the metrics work together.
            Some(rs) => self.handles(rs),
            None => &self.unknown,
        };
        // `get`: a variant left out of `ALL` goes uncounted rather than failing the request.
        if let Some(requests) = handles.requests.get(decision.decision as usize) {
            requests.increment(1);
        }
        handles.duration.record(elapsed.as_secs_f64());
        if let Some(rs) = ruleset {
            if elapsed > rs.settings.deadline {
                if let Some(late) = &handles.late {
                    late.increment(1);
                }
            }
            self.rule_outcomes(rs, &decision.trace);
        }
    }

    /// The outcomes of the rules of `rs` that `trace` lists: those of a decision, and those of
    /// an evaluation whose answer was sent without them (the server answered at the deadline
    /// while it still ran).
    pub fn rule_outcomes(&self, rs: &Ruleset, trace: &[RuleTrace]) {
        let handles = self.handles(rs);
        // Traces list evaluated rules in file order, so one pass pairs them with their index.
        let mut rules = rs.rules.iter().enumerate();
        for t in trace {
            if let Some((i, _)) = rules.by_ref().find(|(_, r)| r.name == t.rule) {
                let Some(cell) = handles.rules.get(i).and_then(|r| r.get(t.outcome as usize))
                else {
                    continue;
                };
                cell.get_or_init(|| {
                    self.record(|| {
                        counter!(RULE_OUTCOMES, "ruleset" => rs.name.clone(), "rule" => t.rule.clone(), "outcome" => t.outcome.as_str())
                    })
                })
                .increment(1);
            }
        }
    }

    /// Registers the series of every ruleset of `rules` at 0 — its requests by decision, and
    /// each rule's `error` outcome (`shadow_error` for a shadow rule) — so that a `rate`/`increase` alert sees the first refusal or
    /// failed check after a start or a reload (a series born at 1 shows no increase); so too
    /// each upstream's calls answered 5xx or waiting out their `timeout` for a connection,
    /// its calls sent again, and its failed probes, which the README's alerts read.
    pub fn register(&self, rules: &Rules) {
        for rs in rules.rulesets.values() {
            for up in rs.upstreams.values() {
                let (ruleset, upstream) = (up.ruleset.to_string(), up.name.clone());
                self.record(|| {
                    for outcome in ["5xx", "no_free_connection"] {
                        counter!(UPSTREAM_CALLS, "ruleset" => ruleset.clone(), "upstream" => upstream.clone(), "outcome" => outcome).increment(0);
                    }
                    counter!(UPSTREAM_RESENT, "ruleset" => ruleset.clone(), "upstream" => upstream.clone()).increment(0);
                    if up.health.is_some() {
                        counter!(HEALTH_PROBES, "ruleset" => ruleset.clone(), "upstream" => upstream.clone(), "result" => "failure").increment(0);
                    }
                });
            }
            let handles = self.handles(rs);
            for (rule, cells) in rs.rules.iter().zip(&handles.rules) {
                let error = match rule.mode {
                    crate::rules::Mode::Off => continue,
                    crate::rules::Mode::Enforce => crate::decision::Outcome::Error,
                    crate::rules::Mode::Shadow => crate::decision::Outcome::ShadowError,
                };
                cells[error as usize].get_or_init(|| {
                    self.record(|| {
                        counter!(RULE_OUTCOMES, "ruleset" => rs.name.clone(), "rule" => rule.name.clone(), "outcome" => error.as_str())
                    })
                });
            }
        }
    }

    /// The handles of `rs`, registered once per ruleset and rules generation.
    fn handles<'r>(&self, rs: &'r Ruleset) -> &'r RulesetMetrics {
        rs.metrics
            .get_or_init(|| self.ruleset_handles(&rs.name, rs.rules.len()))
    }

    fn ruleset_handles(&self, ruleset: &str, rules: usize) -> RulesetMetrics {
        self.record(|| RulesetMetrics {
            requests: Verdict::ALL.map(
                |v| counter!(REQUESTS, "ruleset" => ruleset.to_owned(), "decision" => v.as_str()),
            ),
            duration: histogram!(REQUEST_DURATION, "ruleset" => ruleset.to_owned()),
            // Registered at 0, so that an alert on its increase has a series from the start.
            late: Some(counter!(ANSWERS_LATE, "ruleset" => ruleset.to_owned())),
            rules: (0..rules).map(|_| Default::default()).collect(),
        })
    }

    pub fn upstream_call(&self, up: &Upstream, outcome: &'static str, elapsed: Duration) {
        let (ruleset, upstream) = (up.ruleset.to_string(), up.name.clone());
        self.record(|| {
            counter!(UPSTREAM_CALLS, "ruleset" => ruleset.clone(), "upstream" => upstream.clone(), "outcome" => outcome)
                .increment(1);
            histogram!(UPSTREAM_DURATION, "ruleset" => ruleset, "upstream" => upstream)
                .record(elapsed.as_secs_f64());
        });
    }

    /// A GET to `up` sent a second time, its first connection closed under it at once: the
    /// merchant's access log may show both, the decision log shows the call once.
    pub fn upstream_resent(&self, up: &Upstream) {
        self.record(|| {
            counter!(UPSTREAM_RESENT, "ruleset" => up.ruleset.to_string(), "upstream" => up.name.clone())
                .increment(1);
        });
    }

    /// One probe of `upstream` and its result. The state it leaves is not recorded: the health
    /// gauge is rendered from the rules in force (see [`render_with`](Self::render_with)).
    pub fn health(&self, up: &Upstream, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.record(|| {
            counter!(HEALTH_PROBES, "ruleset" => up.ruleset.to_string(), "upstream" => up.name.clone(), "result" => result)
                .increment(1);
        });
    }

    pub fn reload(&self, result: &'static str) {
        self.record(|| {
            counter!(RELOADS, "result" => result).increment(1);
            gauge!(RULES_LAST_RELOAD_SUCCESSFUL).set(if result == "rejected" { 0.0 } else { 1.0 });
        });
    }

    /// A repeated delivery of a signed message, by how it was answered (one of
    /// [`REPEAT_ANSWERS`]).
    pub fn repeated_delivery(&self, answer: &'static str) {
        debug_assert!(REPEAT_ANSWERS.contains(&answer), "{answer}");
        self.record(|| counter!(REPEATED_DELIVERIES, "answer" => answer).increment(1));
    }

    /// How many signed message ids are remembered, read when `/metrics` is scraped.
    pub fn delivery_ids(&self, n: usize) {
        self.record(|| metrics::gauge!(DELIVERY_IDS).set(n as f64));
    }

    pub fn delivery_ids_forgotten(&self, n: usize) {
        if n > 0 {
            self.record(|| counter!(DELIVERY_IDS_FORGOTTEN).increment(n as u64));
        }
    }

    /// How many decision-log records wait to be written, read when `/metrics` is scraped.
    pub fn decision_log_backlog(&self, n: u64) {
        self.record(|| metrics::gauge!(DECISION_LOG_BACKLOG).set(n as f64));
    }

    /// Whether the rules directory's watch picks up every edit, read when `/metrics` is
    /// scraped.
    pub fn rules_watched(&self, ok: bool) {
        self.record(|| metrics::gauge!(RULES_WATCHED).set(if ok { 1.0 } else { 0.0 }));
    }

    pub fn decision_log_dropped(&self, records: u64) {
        self.record(|| counter!(DECISION_LOG_DROPPED).increment(records));
    }
}

/// Appends the gauges read from the upstreams of the rules in force: [`UPSTREAM_HEALTHY`] for
/// each upstream with a `health` block, and the `max_connections` families for each with a
/// limit.
fn write_upstream_gauges(out: &mut String, rules: &Rules) {
    write_upstream_gauge(
        out,
        rules,
        UPSTREAM_HEALTHY,
        "Health of each probed upstream of the rules in force: 1 up, 0 down, -1 not known yet.",
        |up| {
            up.health.as_ref().map(|_| match up.state.get() {
                Health::Up => 1,
                Health::Down => 0,
                Health::Unknown => -1,
            })
        },
    );
    write_upstream_gauge(
        out,
        rules,
        UPSTREAM_MAX_CONNECTIONS,
        "The max_connections of each upstream that has one, in the rules in force.",
        |up| up.slots.as_ref().map(|s| i64::from(s.max)),
    );
    write_upstream_gauge(
        out,
        rules,
        UPSTREAM_CONNECTIONS_IN_USE,
        "Connections held by calls now, of each upstream with max_connections.",
        |up| up.slots.as_ref().map(|s| i64::from(s.in_use())),
    );
    write_upstream_gauge(
        out,
        rules,
        UPSTREAM_CONNECTIONS_WAITING,
        "Calls waiting for a free connection now, of each upstream with max_connections.",
        |up| up.slots.as_ref().map(|s| i64::from(s.waiting())),
    );
}

/// Appends the gauge family `name`: one series per upstream `value` has one for, in ruleset and
/// upstream name order. Nothing (not even `# TYPE`) when it has none, as the recorder does for
/// a family without series.
fn write_upstream_gauge(
    out: &mut String,
    rules: &Rules,
    name: &str,
    help: &str,
    value: impl Fn(&Upstream) -> Option<i64>,
) {
    use std::fmt::Write;
    let mut series = rules.rulesets.values().flat_map(|rs| {
        rs.upstreams
            .values()
            .filter_map(|up| Some((rs.name.as_str(), up.name.as_str(), value(up)?)))
    });
    let Some(first) = series.next() else {
        return;
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
    for (ruleset, upstream, value) in std::iter::once(first).chain(series) {
        let _ = writeln!(
            out,
            r#"{name}{{ruleset="{}",upstream="{}"}} {value}"#,
            escape_label_value(ruleset),
            escape_label_value(upstream),
        );
    }
}

/// A label value as the text exposition format quotes it: `\`, `"` and line feeds escaped.
fn escape_label_value(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str(r"\\"),
            '"' => escaped.push_str(r#"\""#),
            '\n' => escaped.push_str(r"\n"),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_keeps_every_histogram_sample() {
        let m = Metrics::new();
        for i in 0..1000 {
            m.decision(None, &Decision::approve(None), Duration::from_micros(i));
            if i % 300 == 0 {
                m.run_upkeep();
            }
        }
        m.run_upkeep();
        let text = m.render();
        let count = format!(r#"{REQUEST_DURATION}_count{{ruleset="unknown"}} 1000"#);
        assert!(text.contains(&count), "{text}");
    }

    /// Alerts on `increase(…) > 0` need the series before the first event; operators need
    /// to know what each metric counts.
    #[test]
    fn counters_alerts_read_exist_at_zero_and_every_metric_has_help() {
        let m = Metrics::new();
        m.decision(None, &Decision::approve(None), Duration::from_millis(1));
        let text = m.render();
        for result in ["applied", "unchanged", "rejected"] {
            let line = format!("{RELOADS}{{result=\"{result}\"}} 0\n");
            assert!(text.contains(&line), "{text}");
        }
        for answer in REPEAT_ANSWERS {
            let line = format!("{REPEATED_DELIVERIES}{{answer=\"{answer}\"}} 0\n");
            assert!(text.contains(&line), "{text}");
        }
        for name in [REQUESTS, REQUEST_DURATION, RELOADS, DECISION_LOG_DROPPED] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        }
    }

    /// An answer that left after its ruleset's deadline is counted; one in time is not. The
    /// series is there at 0 from the first request, for an alert on its increase.
    #[test]
    fn answers_after_the_deadline_are_counted_by_ruleset() {
        let (_dir, rules) = crate::rules::load_files(&[(
            "default.yaml",
            "settings: { deadline: 1s }\nrules:\n  - { name: a, amount: { max: 5 }, reason: r }\n",
        )]);
        let rs = &rules.rulesets["default"];
        let m = Metrics::new();
        let late = |m: &Metrics| {
            let text = m.render();
            let prefix = format!("{ANSWERS_LATE}{{ruleset=\"default\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
                .unwrap_or_else(|| panic!("{text}"))
        };
        m.decision(
            Some(rs),
            &Decision::approve(None),
            Duration::from_millis(999),
        );
        assert_eq!(late(&m), "0");
        m.decision(
            Some(rs),
            &Decision::approve(None),
            Duration::from_millis(1001),
        );
        m.decision(None, &Decision::approve(None), Duration::from_secs(9));
        assert_eq!(late(&m), "1");
        assert!(m.render().contains(&format!("# HELP {ANSWERS_LATE} ")));
    }

    /// Trial: the upstream series the README's alerts read were born at their first event,
    /// which a `rate` over them does not see. They are there at 0 once the rules load.
    #[test]
    fn upstream_series_alerts_read_exist_at_zero() {
        let (_dir, rules) = crate::rules::load_files(&[(
            "default.yaml",
            "upstreams:\n  shop: { url: \"http://127.0.0.1:9\", health: { path: /health } }\n  pay: { url: \"http://127.0.0.1:9\" }\nrules:\n  - { name: up, healthy: shop, reason: r }\n  - { name: f, fetch: { upstream: pay, path: /x } }\n",
        )]);
        let m = Metrics::new();
        m.register(&rules);
        let text = m.render();
        for line in [
            format!("{UPSTREAM_CALLS}{{ruleset=\"default\",upstream=\"shop\",outcome=\"5xx\"}} 0"),
            format!("{UPSTREAM_CALLS}{{ruleset=\"default\",upstream=\"pay\",outcome=\"no_free_connection\"}} 0"),
            format!("{UPSTREAM_RESENT}{{ruleset=\"default\",upstream=\"pay\"}} 0"),
            format!("{HEALTH_PROBES}{{ruleset=\"default\",upstream=\"shop\",result=\"failure\"}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        // A probe only for an upstream that has one.
        assert!(!text.contains(&format!(
            "{HEALTH_PROBES}{{ruleset=\"default\",upstream=\"pay\""
        )));
        // Registering again (a reload) keeps what was counted.
        let (_dir2, again) = crate::rules::load_files(&[(
            "default.yaml",
            "upstreams:\n  pay: { url: \"http://127.0.0.1:9\" }\nrules:\n  - { name: f, fetch: { upstream: pay, path: /x } }\n",
        )]);
        let pay = &again.rulesets["default"].upstreams["pay"];
        m.upstream_resent(pay);
        m.register(&again);
        let resent = format!("{UPSTREAM_RESENT}{{ruleset=\"default\",upstream=\"pay\"}} 1");
        assert!(m.render().lines().any(|l| l == resent), "{}", m.render());
    }

    /// The gauge says whether the files are what runs, for as long as they are not: 0 from a
    /// rejected reload until one that applies, or finds the files back to the running rules.
    #[test]
    fn the_last_reload_gauge_follows_the_files() {
        let m = Metrics::new();
        let gauge = |m: &Metrics| {
            let line = m
                .render()
                .lines()
                .find(|l| l.starts_with(&format!("{RULES_LAST_RELOAD_SUCCESSFUL} ")))
                .map(str::to_owned);
            line.unwrap_or_default()
        };
        assert_eq!(gauge(&m), format!("{RULES_LAST_RELOAD_SUCCESSFUL} 1"));
        for (result, after) in [
            ("rejected", 0),
            ("rejected", 0),
            ("unchanged", 1),
            ("rejected", 0),
            ("applied", 1),
        ] {
            m.reload(result);
            assert_eq!(
                gauge(&m),
                format!("{RULES_LAST_RELOAD_SUCCESSFUL} {after}"),
                "after {result}"
            );
        }
    }

    /// An evaluation the server answered for at the deadline counts its rules as a decision
    /// would have (flash-sale audit: 4% of refusals were missing from the rules' outcomes).
    #[test]
    fn outcomes_of_an_evaluation_answered_without_them_are_counted() {
        let (_dir, rules) = crate::rules::load_files(&[(
            "default.yaml",
            "rules:\n  - { name: a, amount: { max: 10 }, reason: x }\n  - { name: b, require: 'amount > 0', reason: y }\n",
        )]);
        let rs = rules.get("default").unwrap();
        let traced = |rule: &str, outcome| RuleTrace {
            rule: rule.into(),
            outcome,
            ms: 1.0,
            reason: None,
            call: None,
            probe: None,
            probe_failure: None,
            upstream: None,
            error: None,
            deadline: false,
            faulted: false,
        };
        let trace = [
            traced("a", Outcome::Pass),
            traced("b", Outcome::Error),
            traced(crate::engine::EVALUATION, Outcome::Error),
        ];
        let m = Metrics::new();
        m.rule_outcomes(rs, &trace);
        let text = m.render();
        for (rule, outcome) in [("a", "pass"), ("b", "error")] {
            let line = format!(
                "{RULE_OUTCOMES}{{ruleset=\"default\",rule=\"{rule}\",outcome=\"{outcome}\"}} 1\n"
            );
            assert!(text.contains(&line), "{line}: {text}");
        }
        // The answer itself was counted where it was sent.
        let requests = format!("{REQUESTS}{{ruleset=\"default\"");
        assert!(
            text.lines()
                .filter(|l| l.starts_with(&requests))
                .all(|l| l.ends_with(" 0")),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("shop-eu_1"), "shop-eu_1");
        assert_eq!(escape_label_value("a\\b\"c\nd 상점"), r#"a\\b\"c\nd 상점"#);
    }
}
