//! `confirm-proxy eval`: one request body through the same engine `serve` uses, printed as
//! JSON with its per-rule trace. Upstreams are called for real, so every call that may change
//! something at the merchant (`forward`, POST/PUT fetches) is reported on stderr, and
//! `--dry-run` holds those back.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use clap::Args;

use super::RulesDir;
use crate::decision::{Decision, Verdict};
use crate::engine::{evaluate, Context, Original};
use crate::metrics::Metrics;
use crate::payload::{self, Parsed};
use crate::rules::Health;
use crate::rules::Upstream;
use crate::script::ScriptEngine;
use crate::upstream::{
    start_probes_of, BoxFuture, HttpCall, HttpUpstreams, UpstreamError, UpstreamResponse, Upstreams,
};

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub rules: RulesDir,
    /// Ruleset to evaluate (the file stem: default = rules/default.yaml).
    #[arg(long, env = "CONFIRM_PROXY_RULESET", default_value = "default")]
    pub ruleset: String,
    /// Evaluation time instead of the clock, e.g. 2026-12-01T10:00:00+09:00.
    #[arg(long, env = "CONFIRM_PROXY_NOW", allow_hyphen_values = true, value_parser = parse_now)]
    pub now: Option<DateTime<FixedOffset>>,
    /// Send only GET requests: a `forward` or POST/PUT `fetch` (which may confirm or reserve at
    /// the merchant) is not sent and counts as a failed check, decided by on_error.
    #[arg(long, env = "CONFIRM_PROXY_DRY_RUN", value_parser = super::switch)]
    pub dry_run: bool,
    /// The request's Content-Type, to decide a body exactly as `serve` did (a form sent as
    /// application/json is a 400 there); without it the body is read as a request without
    /// one: JSON first, then a form.
    #[arg(long, env = "CONFIRM_PROXY_CONTENT_TYPE", value_name = "TYPE", value_parser = parse_content_type)]
    pub content_type: Option<http::HeaderValue>,
    /// Request body file (PortOne JSON or form); "-" or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
}

/// `word` as one word of a POSIX shell command: as it is when nothing in it is special to
/// the shell, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn parse_now(s: &str) -> Result<DateTime<FixedOffset>, String> {
    crate::rules::parse_time(s).map_err(|why| {
        let why = why.map(|h| format!(": {h}")).unwrap_or_default();
        format!("expected RFC 3339 like 2026-12-01T10:00:00+09:00{why}")
    })
}

fn parse_content_type(s: &str) -> Result<http::HeaderValue, String> {
    http::HeaderValue::from_str(s)
        .ok()
        .filter(|v| v.to_str().is_ok())
        .ok_or_else(|| "expected a header value like application/json; charset=utf-8".to_string())
}

const USAGE: u8 = 2;

pub fn run(args: &EvalArgs) -> ExitCode {
    let body = match read_body(args.file.as_ref()) {
        Ok(b) => b,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some((ruleset, time)) = logged_record(&body) {
        // The rules given are the ones to evaluate against: run as printed, the command must
        // not fall back to ./rules.
        let rules = if args.rules.dir == std::path::Path::new("rules") {
            String::new()
        } else {
            format!("--rules {} ", shell_word(&args.rules.dir.to_string_lossy()))
        };
        err!("error: this is a decision-log record, not a request body: give eval the record's request at the record's time, as in  jq -c .request RECORD | confirm-proxy eval {rules}--ruleset {} --dry-run --now {} -  (--dry-run holds back a forward or POST that would reach the merchant again; or replay the whole log with confirm-proxy replay)", shell_word(&ruleset), shell_word(&time));
        return ExitCode::from(USAGE);
    }
    // A script's `print` and `debug` output goes to stderr, where someone trying a script
    // with `eval` looks for it (`RUST_LOG` chooses other output).
    let filter = super::log_filter("off,confirm_proxy::script=debug");
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .without_time()
        .try_init();
    let scripts = ScriptEngine::new();
    let Some(rules) = args.rules.load_servable(&scripts) else {
        return ExitCode::FAILURE;
    };
    let Some(ruleset) = rules.get(&args.ruleset).cloned() else {
        let known: Vec<&str> = rules.rulesets.keys().map(String::as_str).collect();
        err!(
            "error: unknown ruleset \"{}\", expected one of {}: name it with --ruleset",
            args.ruleset,
            known.join(", ")
        );
        return ExitCode::from(USAGE);
    };
    // What `check` would warn about may be why the decision surprises (a timeout not below
    // the deadline, a rule no enforced rule lets reach): but not of the other rulesets.
    let others: Vec<String> = (rules.rulesets.keys())
        .filter(|name| **name != ruleset.name)
        .map(|name| format!("{}:", args.rules.dir.join(format!("{name}.yaml")).display()))
        .collect();
    for w in &rules.warnings {
        if !others.iter().any(|other| w.starts_with(other.as_str())) {
            err!("warning: {w}");
        }
    }
    let Some(runtime) = super::runtime(false) else {
        return ExitCode::FAILURE;
    };
    let upstreams = Arc::new(EvalUpstreams {
        real: HttpUpstreams::new(Metrics::new()),
        dry_run: args.dry_run,
        writes: Arc::default(),
    });
    let mut request = serde_json::Value::Null;
    let mut probes = Vec::new();
    // Printed, so that a run on the clock can be told apart and run again with `--now`.
    let now = args
        .now
        .unwrap_or_else(|| chrono::Utc::now().fixed_offset());
    let decision = runtime.block_on(async {
        let content_type = args.content_type.as_ref().and_then(|ct| ct.to_str().ok());
        match payload::parse(content_type, &body) {
            Ok(Parsed::Confirm(req)) => {
                request = normalised(&req);
                probes = wait_for_health(&rules, &ruleset.name).await;
                let original = Original::new(body.clone(), args.content_type.as_ref());
                let ctx = Context {
                    scripts: &scripts,
                    upstreams: upstreams.clone(),
                    now,
                    started: tokio::time::Instant::now(),
                    original: &original,
                    decision_id: None,
                    sent: None,
                };
                evaluate(&ruleset, &req, &ctx).await
            }
            Ok(Parsed::Ignored { .. }) => Decision::ignored(),
            Err(e) => Decision::reject(e.status(), e.to_string(), None),
        }
    });
    let mut out = serde_json::json!({
        "ruleset": ruleset.name,
        "rules_version": rules.version,
        "now": now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "decision": decision,
    });
    // Moved in, not serialized again: that would spell the amount anew (`1e3` as `1e+3`).
    out["request"] = request;
    let shown = serde_json::to_string_pretty(&out).unwrap_or_default();
    // A caller's id may hold a terminal's escape (U+009B) or text-direction controls: escaped
    // as in the decision log, so the operator's terminal shows them, not obeys them.
    match crate::logfmt::unseen_escaped(shown.as_bytes()) {
        Some(escaped) => out!("{}", String::from_utf8_lossy(&escaped)),
        None => out!("{shown}"),
    }
    // What a `healthy` rule read: the state of one probe, which `serve` would reach only
    // after its thresholds, and why it failed (eval logs nothing else).
    for probe in probes {
        err!("note: {probe}");
    }
    for (call, write) in upstreams.writes() {
        match write {
            Write::Sent => {
                err!("note: sent {call} for real (eval --dry-run holds such calls back)")
            }
            Write::NotSent(why) => err!("note: tried {call}, not sent: {why}"),
            Write::HeldBack => {
                err!("note: held back {call} (--dry-run); the rule counted as an error")
            }
        }
    }
    let last = ruleset.rules.last().map(|r| &*r.name);
    if let Some(note) = held_back_decided(&decision, last) {
        err!("note: {note}");
    }
    ExitCode::SUCCESS
}

/// How a call `--dry-run` held back ends: as an error the rule's `on_error` decides.
const HELD_BACK: &str = "held back by eval --dry-run";

/// What to say when the rule that refused did so only because `--dry-run` held its call
/// back: the JSON reads as a refusal of an order that, sent for real, may well pass.
fn held_back_decided(decision: &Decision, last_rule: Option<&str>) -> Option<String> {
    let rule = decision.rule.as_ref()?;
    let trace = decision.trace.iter().find(|t| t.rule == *rule)?;
    let error = trace.error.as_deref()?;
    if decision.decision != Verdict::Reject || !error.ends_with(HELD_BACK) {
        return None;
    }
    let upstream = (trace.call.as_ref()).map_or("its upstream".to_owned(), |c| {
        format!("upstream {}", c.upstream)
    });
    let after = if last_rule == Some(&**rule) {
        ""
    } else {
        " (and on the rules after it)"
    };
    Some(format!(
        "rule \"{rule}\" refused only because --dry-run held its call back: no rule before it refused, so sent for real, the decision turns on what {upstream} answers{after}"
    ))
}

/// The real upstreams, with every call that is not a GET noted (and with `--dry-run` held
/// back): a `forward` or a POST/PUT fetch may confirm or reserve at the merchant, which an
/// operator replaying an order to understand a decision must not do unawares.
struct EvalUpstreams {
    real: HttpUpstreams,
    dry_run: bool,
    /// "POST /payments/confirm to upstream shop", and what became of it.
    writes: Arc<std::sync::Mutex<Vec<(String, Write)>>>,
}

/// What became of a call that may change something at the merchant.
#[derive(Debug, Clone)]
enum Write {
    /// Sent, or at least possibly received (an answer, a timeout, a connection cut midway).
    Sent,
    /// Never reached the upstream: why (connection refused, DNS).
    NotSent(String),
    /// Held back by `--dry-run`.
    HeldBack,
}

impl EvalUpstreams {
    fn writes(&self) -> Vec<(String, Write)> {
        self.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Upstreams for EvalUpstreams {
    fn call(
        &self,
        upstream: Arc<Upstream>,
        call: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>> {
        if call.method != http::Method::GET {
            // With the body as sent: how an operator sees what a POST's body template renders
            // (a forward's is the request's own), on one line that the terminal shows rather
            // than obeys.
            let body = match &call.body {
                Some(body) if !body.is_empty() => format!(
                    " with body {}",
                    crate::logfmt::on_one_line(&String::from_utf8_lossy(body), 500)
                ),
                _ => String::new(),
            };
            let what = format!(
                "{} {} to upstream {}{body}",
                call.method, call.path_and_query, upstream.name
            );
            let state = if self.dry_run {
                Write::HeldBack
            } else {
                Write::Sent
            };
            let index = match self.writes.lock() {
                Ok(mut writes) => {
                    writes.push((what, state));
                    Some(writes.len() - 1)
                }
                Err(_) => None,
            };
            if self.dry_run {
                let method = call.method.to_string();
                return Box::pin(async move {
                    Err(UpstreamError::NotSent(format!("{method} {HELD_BACK}")))
                });
            }
            // A call that failed before reaching the upstream is no call to warn about.
            let (writes, sending) = (self.writes.clone(), self.real.call(upstream, call));
            return Box::pin(async move {
                let result = sending.await;
                if let Some(e) = result.as_ref().err().filter(|e| e.never_sent()) {
                    if let (Some(i), Ok(mut writes)) = (index, writes.lock()) {
                        if let Some(entry) = writes.get_mut(i) {
                            entry.1 = Write::NotSent(e.to_string());
                        }
                    }
                }
                result
            });
        }
        self.real.call(upstream, call)
    }

    fn health(&self, upstream: &Upstream) -> Health {
        self.real.health(upstream)
    }

    fn probe_failure(&self, upstream: &Upstream) -> Option<Arc<str>> {
        self.real.probe_failure(upstream)
    }
}

/// The request as rules see it (SPEC §2), the amount as the decision log writes it (as written,
/// a numeric string's value as a number).
fn normalised(req: &payload::ConfirmRequest) -> serde_json::Value {
    let mut request = serde_json::json!({
        "api": req.api.as_str(),
        "order_id": req.order_id,
        "tx_id": req.tx_id,
        "store_id": req.store_id,
    });
    // The text itself, set in place: parsed, or passed through `json!` (which serializes its
    // values again), `1e3` would come out as `1e+3`. `as_json_number` is JSON number syntax.
    request["amount"] = serde_json::Value::Number(serde_json::Number::from_string_unchecked(
        req.amount.as_json_number().into_owned(),
    ));
    request
}

/// The ruleset and time of a decision-log record given where a request body goes (the next
/// step after `replay` names one), if `body` is one — a JSON object with the record's
/// `decision_id`, `time` and `trace`, which no PortOne body has — whole (pretty-printed by
/// `jq`) or as the first line of several.
fn logged_record(body: &[u8]) -> Option<(String, String)> {
    type Object = serde_json::Map<String, serde_json::Value>;
    let record: Object = serde_json::from_slice(body).ok().or_else(|| {
        let line = body.split(|b| *b == b'\n').next()?;
        serde_json::from_slice(line).ok()
    })?;
    if !(record.contains_key("decision_id") && record.contains_key("trace")) {
        return None;
    }
    let text = |key: &str| Some(record.get(key)?.as_str()?.to_owned());
    Some((text("ruleset")?, text("time")?))
}

/// The body, or what could not be read, naming the file (or stdin).
fn read_body(file: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    match file {
        Some(p) if p.as_os_str() != "-" => {
            std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
        }
        _ => {
            // A forgotten file argument would otherwise wait on the terminal without a word.
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                err!("reading the request body from stdin (no FILE given); end it with Ctrl-D");
            }
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(body)
        }
    }
}

/// `healthy` rules need a probe result; give the probes one round before evaluating. What the
/// first probe of each upstream of `ruleset` found, one line each.
async fn wait_for_health(rules: &crate::rules::Rules, ruleset: &str) -> Vec<String> {
    let probed: Vec<_> = rules
        .get(ruleset)
        .into_iter()
        .flat_map(|r| r.upstreams.values())
        .filter(|u| u.health.is_some())
        .cloned()
        .collect();
    if probed.is_empty() {
        return Vec::new();
    }
    let found = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let seen = found.clone();
    start_probes_of(
        rules,
        probed.iter(),
        Arc::new(move |up: &Upstream, failure: Option<&str>, _| {
            if let Ok(mut seen) = seen.lock() {
                seen.entry((up.ruleset.clone(), up.name.clone()))
                    .or_insert_with(|| failure.map(str::to_owned));
            }
        }),
    );
    let limit =
        probed.iter().map(|u| u.timeout).max().unwrap_or_default() + Duration::from_millis(200);
    let states: Vec<_> = probed.iter().map(|u| &*u.state).collect();
    crate::rules::HealthState::all_known(&states, limit).await;
    let found = found.lock().map(|f| f.clone()).unwrap_or_default();
    probed
        .iter()
        .map(|u| {
            let probe = format!("health probe of upstream \"{}\"", u.name);
            match found.get(&(u.ruleset.clone(), u.name.clone())) {
                Some(None) => format!("{probe}: up"),
                Some(Some(why)) => format!("{probe}: down ({why})"),
                None => format!("{probe}: no answer within {} ms, so unknown (an error for a healthy rule, decided by on_error)", limit.as_millis()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_special_to_the_shell_is_quoted() {
        assert_eq!(shell_word("rules/live-2"), "rules/live-2");
        assert_eq!(
            shell_word("2026-12-07T07:41:56.7Z"),
            "2026-12-07T07:41:56.7Z"
        );
        assert_eq!(shell_word("my rules"), "'my rules'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$HOME"), "'$HOME'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn an_unreadable_body_file_is_named() {
        let missing = PathBuf::from("/nonexistent/request.json");
        let e = read_body(Some(&missing)).unwrap_err();
        assert!(e.starts_with("/nonexistent/request.json: "), "{e}");
    }
}
