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
        .map(|t| (t.rule.as_str(), t.outcome.as_str()))
        .collect()
}

/// The traced error of `rule`.
fn error_of<'d>(d: &'d Decision, rule: &str) -> &'d str {
    d.trace
        .iter()
        .find(|t| t.rule == rule)
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

// ---- order, guards, modes ----

#[tokio::test]
async fn first_refusal_in_file_order_decides() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: big-enough, amount: { min: 1000 }, reason: "too small" }
  - { name: no-orders, require: 'order_id != "order-1"', reason: "order {order_id} blocked" }
  - { name: never-reached, require: 'false', reason: "later" }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), refused("order order-1 blocked", "no-orders"));
    assert_eq!(
        outcomes(&d),
        [("big-enough", "pass"), ("no-orders", "reject")]
    );
    assert_eq!(d.trace[1].reason.as_deref(), Some("order order-1 blocked"));
}

#[tokio::test]
async fn reject_status_is_the_rulesets() {
    let (_dir, rules) = ruleset(
        r#"
settings: { reject_status: 403 }
rules:
  - { name: small, amount: { max: 100 }, reason: "too big" }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), ("reject", 403, Some("too big"), Some("small")));
}

#[tokio::test]
async fn all_passing_approves_with_no_rule() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: a, amount: { min: 1 }, reason: x }
  - { name: b, require: 'api == "v1"', reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(outcomes(&d), [("a", "pass"), ("b", "pass")]);
    assert!(d.shadow.is_empty());
}

#[tokio::test]
async fn false_when_skips_the_rule() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - name: marathon-only
    when: 'order_id.starts_with("marathon-")'
    require: 'false'
    reason: "marathon closed"
  - { name: after, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [("marathon-only", "skipped"), ("after", "pass")]
    );

    let d = decide(&rules, &v1("marathon-7", "1000")).await;
    assert_eq!(summary(&d).2, Some("marathon closed"));
}

#[tokio::test]
async fn approve_action_short_circuits() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: first, amount: { min: 1 }, reason: x }
  - { name: qa-orders, when: 'order_id.starts_with("qa-")', action: approve }
  - { name: refuse-all, require: 'false', reason: "closed" }
"#,
    );
    let d = decide(&rules, &v1("qa-1", "1000")).await;
    assert_eq!(summary(&d), ("approve", 200, None, Some("qa-orders")));
    assert_eq!(outcomes(&d), [("first", "pass"), ("qa-orders", "approve")]);

    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), refused("closed", "refuse-all"));
    assert_eq!(
        outcomes(&d),
        [
            ("first", "pass"),
            ("qa-orders", "skipped"),
            ("refuse-all", "reject")
        ]
    );
}

#[tokio::test]
async fn shadow_rules_observe_but_never_refuse() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: lower-limit-trial, amount: { max: 1000 }, mode: shadow, reason: "over {amount}" }
  - { name: broken-trial, require: 'amount + 1', mode: shadow, reason: x }
  - { name: after, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [
            ("lower-limit-trial", "shadow_reject"),
            ("broken-trial", "error"),
            ("after", "pass")
        ]
    );
    assert_eq!(
        d.shadow,
        [
            ShadowOutcome {
                rule: "lower-limit-trial".into(),
                outcome: Outcome::Reject,
                reason: Some("over 50000".into()),
            },
            ShadowOutcome {
                rule: "broken-trial".into(),
                outcome: Outcome::Error,
                reason: None,
            },
        ]
    );
}

#[tokio::test]
async fn off_rules_are_not_evaluated() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: parked, require: 'false', mode: off, reason: "parked" }
  - { name: a, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(outcomes(&d), [("a", "pass")]);
}

// ---- amount, window, reasons ----

#[tokio::test]
async fn amount_bounds_are_inclusive_and_exact() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: range, amount: { min: 1000, max: 3000000 }, reason: "out of range: {amount}" }
"#,
    );
    for (amount, refused) in [
        ("999", true),
        ("1000", false),
        ("3000000", false),
        ("3000001", true),
        ("999.99", true),
    ] {
        let d = decide(&rules, &v1("order-1", amount)).await;
        let expected = refused.then(|| format!("out of range: {amount}"));
        assert_eq!(d.reason, expected, "amount {amount}");
    }

    let (_dir, rules) =
        ruleset("rules:\n  - { name: ten, amount: { max: 10 }, reason: \"over 10: {amount}\" }\n");
    let d = decide(&rules, &v1("order-1", "10.5")).await;
    assert_eq!(summary(&d), refused("over 10: 10.5", "ten"));
    for amount in ["10", "10.0", "9.99"] {
        let d = decide(&rules, &v1("order-1", amount)).await;
        assert_eq!(summary(&d).0, "approve", "amount {amount}");
    }
}

#[tokio::test]
async fn window_from_is_inclusive_until_exclusive() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - name: sale
    window: { from: "2026-12-01T10:00:00+09:00", until: "2026-12-01T18:00:00+09:00" }
    reason: "접수 기간이 아닙니다"
"#,
    );
    let original = Original::default();
    for (now, open) in [
        ("2026-12-01T09:59:59.999+09:00", false),
        ("2026-12-01T10:00:00+09:00", true),
        ("2026-12-01T01:00:00Z", true),
        ("2026-12-01T17:59:59.999+09:00", true),
        ("2026-12-01T18:00:00+09:00", false),
        ("2026-12-01T09:00:00Z", false),
    ] {
        let d = decide_full(&rules, V1, Arc::new(Canned::new()), now, &original).await;
        let expected = if open {
            APPROVED
        } else {
            refused("접수 기간이 아닙니다", "sale")
        };
        assert_eq!(summary(&d), expected, "now {now}");
    }
}

#[tokio::test]
async fn reasons_are_templates() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: r, require: 'false', reason: "{order_id}/{tx_id}/{amount}원/[{store_id}] {{literal}}" }
"#,
    );
    let v2 = r#"{"type":"Transaction.Confirm","timestamp":"2024-04-25T10:00:00.000Z",
        "data":{"paymentId":"order-9","storeId":"store-1","transactionId":"tx-9","totalAmount":1000}}"#;
    let d = decide(&rules, v2).await;
    assert_eq!(
        d.reason.as_deref(),
        Some("order-9/tx-9/1000원/[store-1] {literal}")
    );
    let d = decide(&rules, &v1("order-1", "10.50")).await;
    assert_eq!(
        d.reason.as_deref(),
        Some("order-1/imp_1/10.50원/[] {literal}")
    );
}

// ---- require, script, on_error ----

#[tokio::test]
async fn require_error_uses_on_error_with_error_reason() {
    let (_dir, rules) = ruleset(
        r#"
settings: { error_reason: "잠시 후 다시 시도해 주세요", reject_status: 503 }
rules:
  - { name: not-a-bool, require: 'amount + 1', reason: "never shown" }
  - { name: after, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(
        summary(&d),
        (
            "reject",
            503,
            Some("잠시 후 다시 시도해 주세요"),
            Some("not-a-bool")
        )
    );
    assert_eq!(outcomes(&d), [("not-a-bool", "error")]);
    assert!(
        error_of(&d, "not-a-bool").contains("expected a bool"),
        "{d:?}"
    );
}

#[tokio::test]
async fn rule_on_error_overrides_the_rulesets() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: lenient, require: 'amount + 1', on_error: approve, reason: x }
  - { name: after, require: 'false', reason: "after refused" }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), refused("after refused", "after"));
    assert_eq!(outcomes(&d), [("lenient", "error"), ("after", "reject")]);

    let (_dir, rules) = ruleset(
        r#"
settings: { on_error: approve }
rules:
  - { name: lenient-by-default, require: 'amount + 1', reason: x }
  - { name: strict, require: 'amount + 1', on_error: reject, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), failed("strict"));
    assert_eq!(
        outcomes(&d),
        [("lenient-by-default", "error"), ("strict", "error")]
    );
}

#[tokio::test]
async fn when_error_is_an_error_too() {
    let (_dir, rules) =
        ruleset("rules:\n  - { name: w, when: 'amount', require: 'true', reason: x }\n");
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), failed("w"));
    assert!(error_of(&d, "w").starts_with("when:"), "{d:?}");
}

#[tokio::test]
async fn runaway_script_is_a_quick_error() {
    let (_dir, rules) = ruleset_with(
        "rules:\n  - { name: spin, script: scripts/spin.rhai }\n",
        &[("scripts/spin.rhai", "loop {}")],
    );
    let started = std::time::Instant::now();
    let d = decide(&rules, V1).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(summary(&d), failed("spin"));
    let error = error_of(&d, "spin");
    assert!(
        error.starts_with("scripts/spin.rhai:") && error.contains("operations"),
        "{error}"
    );
}

#[tokio::test]
async fn script_verdicts() {
    let (_dir, rules) = ruleset_with(
        r#"
rules:
  - { name: unit, script: scripts/unit.rhai }
  - { name: yes, script: scripts/yes.rhai }
  - { name: limit, script: scripts/limit.rhai, reason: "rule reason" }
"#,
        &[
            ("scripts/unit.rhai", "let x = 1;"),
            ("scripts/yes.rhai", "amount > 0"),
            (
                "scripts/limit.rhai",
                r#"if amount > 1000 { return "한도 초과: " + format_amount(amount) + "원"; }
                   order_id != "no""#,
            ),
        ],
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), refused("한도 초과: 50,000원", "limit"));
    assert_eq!(
        outcomes(&d),
        [("unit", "pass"), ("yes", "pass"), ("limit", "reject")]
    );

    let d = decide(&rules, &v1("no", "100")).await;
    assert_eq!(summary(&d), refused("rule reason", "limit"));
    let d = decide(&rules, &v1("ok", "100")).await;
    assert_eq!(summary(&d), APPROVED);
}

// ---- healthy ----

#[tokio::test]
async fn healthy_up_down_unknown() {
    let (_dir, rules) = ruleset(&format!(
        "{SHOP}rules:\n  - {{ name: shop-up, healthy: shop, reason: \"상점 점검 중입니다\" }}\n"
    ));
    let up = Arc::new(Canned::new().health("shop", Health::Up));
    let d = decide_with(&rules, V1, &up).await;
    assert_eq!(summary(&d), APPROVED);

    let down = Arc::new(Canned::new().health("shop", Health::Down));
    let d = decide_with(&rules, V1, &down).await;
    assert_eq!(summary(&d), refused("상점 점검 중입니다", "shop-up"));

    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), failed("shop-up"));
    assert!(error_of(&d, "shop-up").contains("not known"), "{d:?}");
}

// ---- fetch ----

/// A ruleset with one GET fetch rule `stock` (`require` optional) and a rule after it.
fn stock_rules(require: Option<&str>) -> (TempDir, Rules) {
    let require = require.map_or(String::new(), |r| format!("\n    require: '{r}'"));
    ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}{require}
    reason: "재고 없음 ({{response.body.available}}개 남음)"
  - {{ name: after, amount: {{ min: 1 }}, reason: x }}
"#
    ))
}

#[tokio::test]
async fn fetch_without_require_goes_by_status() {
    let (_dir, rules) = stock_rules(None);
    for status in [200, 204, 299] {
        let d = decide_with(&rules, V1, &stock(status, json!({}))).await;
        assert_eq!(summary(&d), APPROVED, "{status}");
    }
    for status in [302, 404, 409] {
        let canned = shop(STOCK, answer(status, json!({"available": 0})));
        let d = decide_with(&rules, V1, &canned).await;
        let expected = refused("재고 없음 (0개 남음)", "stock");
        assert_eq!(summary(&d), expected, "{status}");
    }
    let d = decide_with(&rules, V1, &stock(503, json!("busy"))).await;
    assert_eq!(summary(&d), failed("stock"));
    assert_eq!(outcomes(&d), [("stock", "error")]);
    assert!(error_of(&d, "stock").contains("503"), "{d:?}");
}

#[tokio::test]
async fn fetch_require_reads_the_response() {
    let (_dir, rules) = stock_rules(Some(
        "response.status == 200 && response.body.available >= 1",
    ));
    let d = decide_with(&rules, V1, &stock(200, json!({"available": 3}))).await;
    assert_eq!(summary(&d), APPROVED);

    let d = decide_with(&rules, V1, &stock(200, json!({"available": 0}))).await;
    assert_eq!(summary(&d), refused("재고 없음 (0개 남음)", "stock"));

    // With require, the expression decides whatever the status.
    let (_dir, rules) = stock_rules(Some("response.status == 404"));
    let d = decide_with(&rules, V1, &stock(404, json!(null))).await;
    assert_eq!(summary(&d), APPROVED);
    let d = decide_with(&rules, V1, &stock(503, json!(null))).await;
    assert_eq!(summary(&d), refused("재고 없음 (개 남음)", "stock"));
}

#[tokio::test]
async fn fetch_require_on_a_text_body_is_an_error() {
    let (_dir, rules) = stock_rules(Some("response.body.available >= 1"));
    let canned = shop(STOCK, answer(200, json!("<html>maintenance</html>")));
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), failed("stock"));
    assert_eq!(outcomes(&d), [("stock", "error")]);

    // The text is still there for a require that reads it as text.
    let (_dir, rules) = stock_rules(Some(r#"response.body.contains("maintenance")"#));
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
}

#[tokio::test]
async fn fetched_answers_are_visible_to_later_rules() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: before
    require: 'fetched["stock"] == ()'
    reason: "not yet fetched"
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: enough
    require: 'fetched["stock"].body.available >= 2 && fetched["stock"].status == 200'
    reason: "only {{order_id}} left"
"#
    ));
    let d = decide_with(&rules, V1, &stock(200, json!({"available": 2}))).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [("before", "pass"), ("stock", "pass"), ("enough", "pass")]
    );

    let d = decide_with(&rules, V1, &stock(200, json!({"available": 1}))).await;
    assert_eq!(summary(&d).3, Some("enough"));
}

#[tokio::test]
async fn fetch_transport_errors_use_on_error() {
    let (_dir, rules) = stock_rules(Some("response.status == 200"));
    for (error, cause) in [
        (
            CannedError::Refused,
            "connection refused by shop.invalid:80",
        ),
        (CannedError::Dns, "DNS lookup failed"),
        (CannedError::Timeout, "timed out after 2s"),
    ] {
        let canned = shop(
            STOCK,
            CannedAnswer::error(error).delay(Duration::from_millis(1)),
        );
        let d = decide_with(&rules, V1, &canned).await;
        assert_eq!(summary(&d), failed("stock"), "{error:?}");
        assert!(error_of(&d, "stock").contains(cause), "{d:?}");
    }
    let d = decide(&rules, V1).await;
    assert!(
        error_of(&d, "stock").contains("no canned answer for shop GET /api/stock/order-1"),
        "{d:?}"
    );
}

#[tokio::test]
async fn fetch_requests_are_rendered_from_templates() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: reserve
    fetch:
      upstream: shop
      method: POST
      path: "/api/orders/{{order_id}}/reserve"
      query: {{ tx: "{{tx_id}}" }}
      headers: {{ X-Order: "{{order_id}}" }}
      body: {{ order: "{{order_id}}", amount: "{{amount}}", qty: 1 }}
    reason: x
"#
    ));
    let body = r#"{"imp_uid":"imp 1&2","merchant_uid":"a/b c","amount":50000}"#;
    let key = "POST /api/orders/a%2Fb%20c/reserve?tx=imp+1%262";
    let canned = shop(key, CannedAnswer::status(201));
    let d = decide_with(&rules, body, &canned).await;
    assert_eq!(summary(&d), APPROVED, "{:?}", canned.calls());
    let call = &canned.calls()[0];
    assert_eq!(call.headers["x-order"], "a/b c");
    assert_eq!(call.headers["content-type"], "application/json");
    let sent: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent, json!({"order": "a/b c", "amount": "50000", "qty": 1}));
}

// ---- forward ----

const FORWARD: &str = "POST /payments/confirm";

fn forward_rules(reason: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        "{SHOP}rules:\n  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }}{reason} }}\n"
    ))
}

#[tokio::test]
async fn forward_answers_decide() {
    let (_dir, rules) = forward_rules(", reason: \"기존 확인 거절\"");
    let own = Some("기존 확인 거절");
    let cases = [
        (200, json!({"anything": true}), None),
        (409, json!({"reason": "재고 없음"}), Some("재고 없음")),
        (400, json!({"errorMessage": "한도 초과"}), Some("한도 초과")),
        (409, json!({"message": "ignored"}), own),
        (409, json!({"reason": "  "}), own),
        (503, json!("Service Unavailable"), own),
        (201, json!({}), own),
    ];
    for (status, body, reason) in cases {
        let d = decide_with(&rules, V1, &shop(FORWARD, answer(status, body))).await;
        let expected = match reason {
            None => APPROVED,
            Some(r) => refused(r, "existing"),
        };
        assert_eq!(summary(&d), expected, "{status}");
    }

    let down = shop(FORWARD, CannedAnswer::error(CannedError::Refused));
    let d = decide_with(&rules, V1, &down).await;
    assert_eq!(summary(&d), failed("existing"));

    let (_dir, rules) = forward_rules("");
    let d = decide_with(&rules, V1, &shop(FORWARD, answer(409, json!({})))).await;
    assert_eq!(summary(&d), refused(DEFAULT_REASON, "existing"));
}

#[tokio::test]
async fn forward_passes_the_original_request_unchanged() {
    let (_dir, rules) = forward_rules("");
    let body = "{ \"payment_id\": \"order-1\",\n  \"tx_id\": \"tx-1\", \"total_amount\": 1000 }";
    let webhook = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", "1733022000"),
        ("webhook-signature", "v1,c2lnbmF0dXJl"),
    ];
    let original = Original {
        body: Bytes::from(body),
        content_type: Some(http::HeaderValue::from_static(
            "application/json; charset=UTF-8",
        )),
        webhook_headers: webhook
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect(),
    };
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let d = decide_full(&rules, body, canned.clone(), NOW, &original).await;
    assert_eq!(summary(&d), APPROVED);

    let calls = canned.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.key(), FORWARD);
    assert_eq!(call.body.as_deref(), Some(body.as_bytes()));
    assert_eq!(
        call.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    for (name, value) in webhook {
        assert_eq!(call.headers[name], value);
    }

    // A request without a Content-Type is forwarded as JSON.
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let bare = Original {
        content_type: None,
        ..original
    };
    decide_full(&rules, body, canned.clone(), NOW, &bare).await;
    assert_eq!(
        canned.calls()[0].headers["content-type"],
        "application/json"
    );
}

// ---- what is called, and when ----

#[tokio::test]
async fn side_effects_wait_for_earlier_rules() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - {{ name: closed, require: 'false', reason: "closed" }}
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}", body: {{ qty: 1 }} }}
    reason: x
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", STOCK, CannedAnswer::status(200))
            .answer(
                "shop",
                "POST /api/reserve/order-1",
                CannedAnswer::status(200),
            )
            .answer("shop", FORWARD, CannedAnswer::status(200)),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), refused("closed", "closed"));
    // The GET fetch started early (no side effects); the POST fetch and the forward never did.
    assert_eq!(keys(&canned), [STOCK]);
}

#[tokio::test(start_paused = true)]
async fn get_fetches_run_concurrently_and_writes_in_order() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - {{ name: between, amount: {{ min: 1 }}, reason: x }}
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
"#
    ));
    let canned =
        Canned::new()
            .answer("shop", STOCK, ok_after(300))
            .answer("shop", LIMITS, ok_after(300));
    let canned = Arc::new(canned);
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(keys(&canned), [STOCK, LIMITS]);

    // A POST fetch starts only after the rules before it passed: the times add up.
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    reason: x
"#
    ));
    let canned = Canned::new().answer("shop", STOCK, ok_after(300)).answer(
        "shop",
        "POST /api/reserve/order-1",
        ok_after(300),
    );
    let canned = Arc::new(canned);
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(started.elapsed(), Duration::from_millis(600));
}

// ---- the deadline ----

fn slow_stock_rules(settings: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms, {settings} }}
rules:
  - {{ name: first, amount: {{ min: 1 }}, reason: x }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    on_error: approve
    reason: x
  - {{ name: never, require: 'false', reason: "never" }}
"#
    ))
}

#[tokio::test(start_paused = true)]
async fn deadline_ends_the_evaluation_and_on_error_decides() {
    let slow = || shop(STOCK, ok_after(10_000));

    let (_dir, rules) = slow_stock_rules("error_reason: \"잠시 후 다시 시도해 주세요\"");
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &slow()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    // The ruleset's on_error decides, not the rule's own `on_error: approve`.
    assert_eq!(summary(&d), refused("잠시 후 다시 시도해 주세요", "stock"));
    assert_eq!(outcomes(&d), [("first", "pass"), ("stock", "error")]);
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");

    let (_dir, rules) = slow_stock_rules("on_error: approve");
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &slow()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(summary(&d), ("approve", 200, None, Some("stock")));
    assert_eq!(outcomes(&d), [("first", "pass"), ("stock", "error")]);
}

#[tokio::test(start_paused = true)]
async fn deadline_counts_from_arrival() {
    let (_dir, rules) = slow_stock_rules("on_error: reject");
    let canned = shop(STOCK, ok_after(150));
    let scripts = ScriptEngine::new();
    let original = Original::default();
    let ctx = Context {
        scripts: &scripts,
        upstreams: canned,
        now: at(NOW),
        // The request arrived 100ms ago (reading and verifying it took time).
        started: tokio::time::Instant::now() - Duration::from_millis(100),
        original: &original,
    };
    let started = tokio::time::Instant::now();
    let d = evaluate(rules.get("default").unwrap(), &request(V1), &ctx).await;
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(summary(&d).3, Some("stock"));
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");
}

/// An upstream that never answers and counts its calls still in flight.
struct Hanging(Arc<AtomicUsize>);

/// One call in flight; dropping it (cancelling the call) ends it.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstreams for Hanging {
    fn call(
        &self,
        _: Arc<Upstream>,
        _: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let in_flight = InFlight(self.0.clone());
        Box::pin(async move {
            let _in_flight = in_flight;
            std::future::pending().await
        })
    }

    fn health(&self, _: &Upstream) -> Health {
        Health::Unknown
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_cancels_every_call_in_flight() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms }}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
"#
    ));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let upstreams = Arc::new(Hanging(in_flight.clone()));
    let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");
    // Both prefetches were started; the one being awaited must be cancelled too.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_early_decision_cancels_prefetches() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - {{ name: closed, require: 'false', reason: "closed" }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
    ));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let upstreams = Arc::new(Hanging(in_flight.clone()));
    let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
    assert_eq!(summary(&d).3, Some("closed"));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}
