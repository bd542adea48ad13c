//! Engine semantics (SPEC §4, §9): order, guards, modes, checks, on_error, the deadline and
//! concurrency — rules loaded from YAML as an operator writes them, upstreams canned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::payload::{parse, Parsed};
use crate::rules::{load_dir, LoadOptions, Rules, Upstream, DEFAULT_ERROR_REASON, DEFAULT_REASON};
use crate::upstream::canned::{Canned, CannedAnswer, CannedError};
use crate::upstream::BoxFuture;

const NOW: &str = "2026-12-01T12:00:00+09:00";
const V1: &str = r#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":50000}"#;
/// A shop with a health probe, for fetch, forward and healthy rules.
const SHOP: &str = r#"
upstreams:
  shop: { url: "http://shop.invalid", health: { path: /health } }
"#;

/// Loads `yaml` as ruleset `default`; the directory must outlive the rules.
fn ruleset(yaml: &str) -> (TempDir, Rules) {
    ruleset_with(yaml, &[])
}

/// Like [`ruleset`], with more files (scripts) under the rules directory.
fn ruleset_with(yaml: &str, files: &[(&str, &str)]) -> (TempDir, Rules) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.yaml"), yaml).unwrap();
    for (rel, src) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, src).unwrap();
    }
    let opts = LoadOptions {
        engine: &ScriptEngine::new(),
        env: &|_| None,
    };
    let rules = load_dir(dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    (dir, rules)
}

fn request(json: &str) -> ConfirmRequest {
    match parse(Some("application/json"), json.as_bytes()).unwrap() {
        Parsed::Confirm(r) => r,
        Parsed::Ignored { .. } => panic!("not a confirm request: {json}"),
    }
}

/// A V1 body for `order_id` and `amount` (written as given: `10.5` stays `10.5`).
fn v1(order_id: &str, amount: &str) -> String {
    format!(r#"{{"imp_uid":"imp_1","merchant_uid":"{order_id}","amount":{amount}}}"#)
}

fn at(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

/// Evaluates ruleset `default` for `body`, as the server would have received it.
async fn decide_full(
    rules: &Rules,
    body: &str,
    upstreams: Arc<dyn Upstreams>,
    now: &str,
    original: &Original,
) -> Decision {
    let scripts = ScriptEngine::new();
    let ctx = Context {
        scripts: &scripts,
        upstreams,
        now: at(now),
        started: tokio::time::Instant::now(),
        original,
    };
    evaluate(rules.get("default").unwrap(), &request(body), &ctx).await
}

async fn decide_with(rules: &Rules, body: &str, canned: &Arc<Canned>) -> Decision {
    let original = Original {
        body: Bytes::from(body.to_owned()),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        webhook_headers: Vec::new(),
    };
    decide_full(rules, body, canned.clone(), NOW, &original).await
}

/// Evaluates with no upstream answers and every health unknown.
async fn decide(rules: &Rules, body: &str) -> Decision {
    decide_with(rules, body, &Arc::new(Canned::new())).await
}

/// (decision, status, reason, deciding rule)
type Summary<'a> = (&'static str, u16, Option<&'a str>, Option<&'a str>);

/// Every rule passed.
const APPROVED: Summary<'static> = ("approve", 200, None, None);
const ERR: &str = DEFAULT_ERROR_REASON;

/// Refused by `rule` with `reason`, with the default status.
fn refused<'a>(reason: &'a str, rule: &'a str) -> Summary<'a> {
    ("reject", 409, Some(reason), Some(rule))
}

/// Refused with the default `error_reason` because `rule` could not complete.
fn failed(rule: &str) -> Summary<'_> {
    refused(ERR, rule)
}

fn summary(d: &Decision) -> Summary<'_> {
    (
        d.decision.as_str(),
        d.status,
        d.reason.as_deref(),
        d.rule.as_deref(),
    )
}

/// (rule, outcome) for every traced rule, in order.
fn outcomes(d: &Decision) -> Vec<(&str, &'static str)> {
    d.trace
        .iter()
        .map(|t| (&*t.rule, t.outcome.as_str()))
        .collect()
}

/// The traced error of `rule`.
fn error_of<'d>(d: &'d Decision, rule: &str) -> &'d str {
    d.trace
        .iter()
        .find(|t| &*t.rule == rule)
        .and_then(|t| t.error.as_deref())
        .unwrap_or_else(|| panic!("no error traced for {rule}: {:?}", d.trace))
}

fn keys(canned: &Canned) -> Vec<String> {
    canned.calls().iter().map(|c| c.key()).collect()
}

fn answer(status: u16, body: serde_json::Value) -> CannedAnswer {
    CannedAnswer::status(status).body(body)
}

fn shop(key: &str, answer: CannedAnswer) -> Arc<Canned> {
    Arc::new(Canned::new().answer("shop", key, answer))
}

const STOCK: &str = "GET /api/stock/order-1";
const LIMITS: &str = "GET /api/limits/order-1";

/// A 200 answer that takes `ms` milliseconds.
fn ok_after(ms: u64) -> CannedAnswer {
    CannedAnswer::status(200).delay(Duration::from_millis(ms))
}

/// The shop answers the stock query of `order-1` with `status` and `body`.
fn stock(status: u16, body: serde_json::Value) -> Arc<Canned> {
    shop(STOCK, answer(status, body))
}

// ---- Rhai's time limit (the deadline holds while a script runs) ----

/// Every operation is expensive (cloning and sorting 9,000 items, changing the case of 60 KB):
/// 200,000 of them took 8 s, overrunning a 1 s deadline, before evaluations had a time limit.
const HEAVY: &str = r#"
let a = [];
for i in 0..9000 { a.push(9000 - i); }
let s = "";
for i in 0..6000 { s += "0123456789"; }
loop {
    let b = a;
    b.sort();
    s.to_upper();
}
"#;

#[tokio::test]
async fn cpu_heavy_script_ends_as_an_error_within_the_deadline() {
    let (_dir, rules) = ruleset_with(
        r#"
settings: { deadline: 1s }
rules:
  - { name: heavy, script: scripts/heavy.rhai, reason: x }
  - { name: after, require: 'true', reason: x }
"#,
        &[("scripts/heavy.rhai", HEAVY)],
    );
    let started = std::time::Instant::now();
    let d = decide(&rules, V1).await;
    let took = started.elapsed();
    println!("heavy script answered after {took:?}: {:?}", d.trace);
    assert_eq!(summary(&d), failed("heavy"));
    assert_eq!(outcomes(&d), [("heavy", "error")]);
    let error = error_of(&d, "heavy");
    assert!(
        error.starts_with("scripts/heavy.rhai: script stopped after 50 ms (time limit) (line "),
        "{error}"
    );
    // Generous for debug builds and busy machines: it stops a few ms after 50 ms.
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[tokio::test]
async fn runaway_expressions_end_as_errors() {
    // Expressions have no loops, but closures called back by `reduce` nest: 10^8 steps.
    let heavy = r#"blob(10000, 1).to_array().reduce(|s, x| s + blob(10000, 1).to_array().reduce(|t, y| t + blob(10000, 65).as_string().to_upper().len(), 0), 0) > 0"#;
    let (_dir, rules) = ruleset(&format!(
        r#"
settings: {{ deadline: 1s }}
rules:
  - {{ name: guard, when: '{heavy}', require: 'true', on_error: approve, reason: x }}
  - {{ name: check, require: '{heavy}', reason: x }}
"#
    ));
    let started = std::time::Instant::now();
    let d = decide(&rules, V1).await;
    let took = started.elapsed();
    println!(
        "two runaway expressions answered after {took:?}: {:?}",
        d.trace
    );
    // `guard` errs and its on_error lets evaluation go on; `check` errs and rejects.
    assert_eq!(summary(&d), failed("check"));
    assert_eq!(outcomes(&d), [("guard", "error"), ("check", "error")]);
    for (rule, prefix) in [("guard", "when: "), ("check", "require: ")] {
        let error = error_of(&d, rule);
        assert!(
            error.starts_with(prefix)
                && (error.contains("(time limit)") || error.contains("(sandbox limit)")),
            "{error}"
        );
    }
    assert!(took < Duration::from_millis(700), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn scripts_get_only_what_is_left_of_the_deadline() {
    let (_dir, rules) = ruleset_with(
        r#"
settings: { deadline: 1s, on_error: approve }
rules:
  - { name: heavy, script: scripts/heavy.rhai, reason: x }
"#,
        &[("scripts/heavy.rhai", HEAVY)],
    );
    let scripts = ScriptEngine::new();
    let original = Original::default();
    let ctx = Context {
        scripts: &scripts,
        upstreams: Arc::new(Canned::new()),
        now: at(NOW),
        // The request arrived 990 ms ago: 10 ms are left.
        started: tokio::time::Instant::now() - Duration::from_millis(990),
        original: &original,
    };
    let started = std::time::Instant::now();
    let d = evaluate(rules.get("default").unwrap(), &request(V1), &ctx).await;
    let took = started.elapsed();
    println!("heavy script with 10 ms left answered after {took:?}");
    // An error passes under `on_error: approve`; evaluation goes on to the end.
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(outcomes(&d), [("heavy", "error")]);
    let error = error_of(&d, "heavy");
    assert!(
        error.starts_with(
            "scripts/heavy.rhai: script stopped after 10 ms (the request's deadline) (line "
        ),
        "{error}"
    );
    assert!(took < Duration::from_millis(300), "took {took:?}");
}

mod local;
mod upstreams;
