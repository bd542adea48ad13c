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

mod local;
mod upstreams;
