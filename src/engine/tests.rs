//! Engine semantics (SPEC §4, §9): order, guards, modes, checks, on_error, the deadline and
//! concurrency — rules loaded from YAML as an operator writes them, upstreams canned.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::payload::{parse, Parsed};
use crate::rules::{Rules, Upstream, DEFAULT_ERROR_REASON, DEFAULT_REASON};
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
    let mut all = vec![("default.yaml", yaml)];
    all.extend_from_slice(files);
    crate::rules::load_files(&all)
}

/// A request read as one without a Content-Type: JSON, or else a form.
fn request(json: &str) -> ConfirmRequest {
    match parse(None, json.as_bytes()).unwrap() {
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
        decision_id: None,
        sent: None,
    };
    evaluate(rules.get("default").unwrap(), &request(body), &ctx).await
}

/// Evaluates ruleset `default` for the V1 example as if the request had arrived `ago` before
/// now (reading and verifying it took that long): the deadline counts from arrival.
async fn decide_arrived(rules: &Rules, upstreams: Arc<dyn Upstreams>, ago: Duration) -> Decision {
    decide_on(&ScriptEngine::new(), rules, upstreams, ago).await
}

/// [`decide_arrived`] on the script engine `scripts` (whose turns a test may hold).
async fn decide_on(
    scripts: &ScriptEngine,
    rules: &Rules,
    upstreams: Arc<dyn Upstreams>,
    ago: Duration,
) -> Decision {
    let original = Original::default();
    let ctx = Context {
        scripts,
        upstreams,
        now: at(NOW),
        started: tokio::time::Instant::now() - ago,
        original: &original,
        decision_id: None,
        sent: None,
    };
    evaluate(rules.get("default").unwrap(), &request(V1), &ctx).await
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

use crate::script::tests::HEAVY;

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
        error.starts_with("scripts/heavy.rhai:")
            && error.ends_with(": script stopped after 50 ms (time limit)"),
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
    for (rule, field) in [("guard", ": when: "), ("check", ": require: ")] {
        let error = error_of(&d, rule);
        assert!(
            error.starts_with("default.yaml:")
                && error.contains(field)
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
    let started = std::time::Instant::now();
    // The request arrived 970 ms ago: 10 ms are left before the answer is due (20 ms before
    // the deadline).
    let d = decide_arrived(&rules, Arc::new(Canned::new()), Duration::from_millis(970)).await;
    let took = started.elapsed();
    println!("heavy script with 10 ms left answered after {took:?}");
    // Stopped by what was left of the deadline: the deadline's business, so the ruleset's
    // `on_error: approve` answers, naming the rule it stopped (as for an answer the deadline
    // cut), not the rule's own `on_error`.
    assert_eq!(summary(&d), ("approve", 200, None, Some("heavy")));
    assert_eq!(outcomes(&d), [("heavy", "error")]);
    let error = error_of(&d, "heavy");
    assert!(
        error.starts_with("scripts/heavy.rhai:")
            && error.ends_with(": script stopped after 10 ms (the request's deadline)"),
        "{error}"
    );
    // Marked so for replay, which would run the script with time to spare.
    assert!(d.trace[0].deadline && !d.trace[0].faulted);
    // The error says when it stopped; the clock only guards against a hang (a busy machine
    // stretches it).
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

// ---- the request is read-only (audit: scripts changed what later rules saw) ----

/// A shadow script that tries to rewrite the request, then rules that would be fooled by it.
const REWRITE: &str = r#"
rules:
  - { name: rewrite, script: scripts/rewrite.rhai, mode: shadow, reason: x }
  - { name: min-amount, require: 'amount >= 1000', reason: "amount too low" }
  - { name: qa, when: 'order_id.starts_with("qa-") && true', action: approve }
  - { name: qa-native, when: 'order_id.starts_with("qa-")', action: approve }
  - { name: closed, require: 'false', reason: "closed" }
"#;

#[tokio::test]
async fn scripts_cannot_change_the_request_later_rules_see() {
    let (_dir, rules) = ruleset_with(
        REWRITE,
        &[(
            "scripts/rewrite.rhai",
            r#"amount = 999999; order_id = "qa-hacked"; true"#,
        )],
    );
    let d = decide(&rules, &v1("order-1", "5")).await;
    assert_eq!(summary(&d), refused("amount too low", "min-amount"));
    assert_eq!(
        outcomes(&d),
        [("rewrite", "shadow_error"), ("min-amount", "reject")]
    );
    let error = error_of(&d, "rewrite");
    println!("rewrite: {error}");
    assert!(
        error.starts_with("scripts/rewrite.rhai:1:1: ")
            && error.contains("constant")
            && error.contains("amount"),
        "{error}"
    );
    assert_eq!(
        d.shadow,
        [ShadowOutcome {
            rule: "rewrite".into(),
            outcome: Outcome::Error,
            reason: None,
        }]
    );
}

#[tokio::test]
async fn no_script_trick_changes_the_request() {
    // Each script tries another way to change what the rules after it see; a trick Rhai
    // refuses is an error (the shadow rule's outcome), one it allows changes only the
    // script's own copy. Either way the enforced rules see the request as it arrived.
    let tricks = [
        r#"order_id += "-x"; true"#,
        r#"amount += 1000000; true"#,
        r#"payload.merchant_uid = "qa-1"; true"#,
        r#"payload.extra = 1; true"#,
        r#"fetched.stock = #{ status: 200, body: #{ available: 9 } }; true"#,
        r#"fetched["stock"] = 1; true"#,
        r#"fn fake() { this.stock = 1 } fetched.fake(); true"#,
        r#"let f = || order_id; f.call(); true"#,
        r#"let amount = 999999; let order_id = "qa-1"; true"#,
        // Rhai allows these on constants: they change only the script's copy.
        r#"order_id[0] = 'q'; order_id[1] = 'a'; order_id[2] = '-'; true"#,
        r#"amount[20] = true; amount[0..3] = 7; true"#,
        r#"payload.merchant_uid[0] = 'q'; true"#,
        r#"now = 0; true"#,
        r#"api = "v2"; true"#,
    ];
    for trick in tricks {
        let (_dir, rules) = ruleset_with(
            r#"
rules:
  - { name: trick, script: scripts/trick.rhai, mode: shadow, reason: x }
  - name: unchanged
    require: 'amount == 5 && order_id == "order-1" && fetched == #{} && !("extra" in payload) && payload.merchant_uid == "order-1" && api == "v1" && now > 0'
    reason: "changed"
  - { name: qa, when: 'order_id.starts_with("qa-")', action: approve }
  - { name: closed, require: 'false', reason: "closed" }
"#,
            &[("scripts/trick.rhai", trick)],
        );
        let d = decide(&rules, &v1("order-1", "5")).await;
        assert_eq!(summary(&d), refused("closed", "closed"), "{trick}: {d:?}");
        assert_eq!(
            outcomes(&d)[1..],
            [
                ("unchanged", "pass"),
                ("qa", "skipped"),
                ("closed", "reject")
            ],
            "{trick}"
        );
    }
    // An in-place method on a request variable is refused at load; were it loaded, Rhai would
    // refuse it, the request's variables being constants (see `script::native`'s test).
    let errors = crate::rules::load_errors(&[
        (
            "default.yaml",
            "rules:\n  - { name: trick, script: scripts/trick.rhai, mode: shadow, reason: x }\n",
        ),
        (
            "scripts/trick.rhai",
            r#"order_id.clear(); order_id.append("qa-1"); true"#,
        ),
    ]);
    assert!(errors.contains("which a script cannot change"), "{errors}");
}

/// An expression can change the request only through an in-place method's value, which the
/// load refuses (`clear changes its string in place …`); were it loaded, the request's
/// variables are constants to Rhai, and later rules see them as they came.
#[tokio::test]
async fn expressions_cannot_change_the_request_either() {
    let errors = crate::rules::load_errors(&[(
        "default.yaml",
        "rules:\n  - { name: clear, require: 'order_id.clear() == ()', reason: x }\n",
    )]);
    assert!(
        errors.contains("clear changes its string in place"),
        "{errors}"
    );
    let engine = crate::script::ScriptEngine::new();
    let req = request(&v1("order-1", "5"));
    let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+09:00").unwrap();
    for src in [
        "order_id.clear() == ()",
        "payload.len() > 0 && fetched.clear() == ()",
    ] {
        let ast = engine.compile_unchecked(src);
        let mut scope = crate::script::RequestScope::new(&req, now, true);
        let e = engine
            .eval_bool(
                &mut scope,
                &ast,
                &mut None,
                crate::script::TimeLeft::Deadline(crate::script::MAX_RUN_TIME),
            )
            .unwrap_err();
        assert!(e.message.contains("constant"), "{src}: {e:?}");
    }
    let (_dir, rules) = ruleset(
        r#"
settings: { on_error: approve }
rules:
  - { name: capture, require: '[1].filter(|x| x < amount).len() == 1', reason: x }
  - { name: unchanged, require: 'order_id == "order-1" && amount == 5 && fetched == #{}', reason: "changed" }
  - { name: closed, require: 'false', reason: "closed" }
"#,
    );
    let d = decide(&rules, &v1("order-1", "5")).await;
    assert_eq!(summary(&d), refused("closed", "closed"));
    assert_eq!(
        outcomes(&d),
        [
            ("capture", "pass"),
            ("unchanged", "pass"),
            ("closed", "reject")
        ]
    );
}

#[tokio::test]
async fn fetched_answers_cannot_be_faked() {
    let (_dir, rules) = ruleset_with(
        &format!(
            r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    require: 'response.body.available >= 0'
    reason: x
  - {{ name: fake, script: scripts/fake.rhai, mode: shadow, reason: x }}
  - {{ name: unchanged, require: '!("note" in fetched.stock.body) && fetched.len() == 1', reason: "changed" }}
  - {{ name: in-stock, require: 'fetched.stock.body.available >= 1', reason: "sold out" }}
"#
        ),
        &[(
            "scripts/fake.rhai",
            // Rhai lets a script add a key to a constant map (on the script's own copy here),
            // but not change one.
            r#"fetched.stock.body.note = "x"; fetched.stock.body.available = 9; true"#,
        )],
    );
    let d = decide_with(&rules, V1, &stock(200, json!({"available": 0}))).await;
    assert_eq!(summary(&d), refused("sold out", "in-stock"));
    assert_eq!(
        outcomes(&d),
        [
            ("stock", "pass"),
            ("fake", "shadow_error"),
            ("unchanged", "pass"),
            ("in-stock", "reject")
        ]
    );
    assert!(error_of(&d, "fake").contains("constant"), "{d:?}");
}

// ---- shadow rules never decide (audit: a slow shadow rule used up the deadline) ----

/// The audit's ruleset: an enforced rule, a slow shadow GET fetch, a blocking rule.
fn slow_shadow_rules(on_error: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 500ms, on_error: {on_error} }}
rules:
  - {{ name: r1, amount: {{ min: 1000 }}, reason: r1 }}
  - name: trial
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    mode: shadow
    reason: trial
  - {{ name: r3, require: '!order_id.starts_with("blocked-")', reason: r3 }}
"#
    ))
}

const FORWARD_KEY: &str = "POST /payments/confirm";
const BLOCKED_STOCK: &str = "GET /api/stock/blocked-1";
const SHADOW_CUT_OFF: &str = "shadow rule cut off to keep the deadline for enforced rules (shadow rules may use only the first 250ms of the 500ms deadline)";

fn shadow_error(rule: &str) -> ShadowOutcome {
    ShadowOutcome {
        rule: rule.into(),
        outcome: Outcome::Error,
        reason: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_shadow_rule_is_cut_off_and_enforced_rules_decide() {
    for on_error in ["approve", "reject"] {
        let (_dir, rules) = slow_shadow_rules(on_error);
        let canned = shop(BLOCKED_STOCK, ok_after(1000));
        let started = tokio::time::Instant::now();
        let d = decide_with(&rules, &v1("blocked-1", "5000"), &canned).await;
        // Cut off at half the deadline; r3 then decides well within it.
        assert_eq!(started.elapsed(), Duration::from_millis(250), "{on_error}");
        assert_eq!(summary(&d), refused("r3", "r3"), "{on_error}");
        assert_eq!(
            outcomes(&d),
            [("r1", "pass"), ("trial", "shadow_error"), ("r3", "reject")]
        );
        assert_eq!(error_of(&d, "trial"), SHADOW_CUT_OFF);
        assert_eq!(d.shadow, [shadow_error("trial")]);
        // The rules went on: no `on_error` decided, which replay must know.
        assert!(!d.trace[1].deadline);

        // A request r3 lets through is approved by every rule, not by the shadow rule.
        let canned = shop(STOCK, ok_after(1000));
        let d = decide_with(&rules, &v1("order-1", "5000"), &canned).await;
        assert_eq!(summary(&d), APPROVED, "{on_error}");
        assert_eq!(d.shadow, [shadow_error("trial")]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_shadow_fetch_within_its_bound_is_recorded() {
    let (_dir, rules) = slow_shadow_rules("reject");
    // The answer arrives before the cut-off: its refusal is recorded, and never refuses.
    let canned = shop(
        STOCK,
        CannedAnswer::status(409).delay(Duration::from_millis(200)),
    );
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, &v1("order-1", "5000"), &canned).await;
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [("r1", "pass"), ("trial", "shadow_reject"), ("r3", "pass")]
    );
    assert_eq!(
        d.shadow,
        [ShadowOutcome {
            rule: "trial".into(),
            outcome: Outcome::Reject,
            reason: Some("trial".into()),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn erring_shadow_rules_never_refuse() {
    let (_dir, rules) = ruleset_with(
        &format!(
            r#"{SHOP}
settings: {{ on_error: reject }}
rules:
  - name: refused-fetch
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    mode: shadow
    on_error: reject
    reason: x
  - {{ name: broken-script, script: scripts/broken.rhai, mode: shadow, on_error: reject, reason: x }}
  - name: refused-forward
    forward: {{ upstream: shop, path: /payments/confirm }}
    mode: shadow
    on_error: reject
  - {{ name: unknown-health, healthy: shop, mode: shadow, reason: x }}
  - {{ name: after, amount: {{ min: 1 }}, reason: x }}
"#
        ),
        &[("scripts/broken.rhai", "let x = (); x + 1")],
    );
    let canned = Arc::new(
        Canned::new()
            .answer("shop", STOCK, CannedAnswer::error(CannedError::Refused))
            .answer(
                "shop",
                "POST /payments/confirm",
                CannedAnswer::error(CannedError::Refused),
            ),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [
            ("refused-fetch", "shadow_error"),
            ("broken-script", "shadow_error"),
            ("refused-forward", "shadow_error"),
            ("unknown-health", "shadow_error"),
            ("after", "pass")
        ]
    );
    assert_eq!(
        d.shadow,
        [
            shadow_error("refused-fetch"),
            shadow_error("broken-script"),
            shadow_error("refused-forward"),
            shadow_error("unknown-health"),
        ]
    );
    assert!(
        error_of(&d, "refused-fetch").contains("connection refused"),
        "{d:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shadow_rules_together_use_at_most_half_the_deadline() {
    // Three slow shadow checks: a prefetched GET, a POST started when reached, a forward.
    // The first waits until the cut-off; the others find it passed and start nothing.
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 500ms, on_error: approve }}
rules:
  - name: trial-get
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    mode: shadow
    reason: x
  - name: trial-post
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    mode: shadow
    reason: x
  - name: trial-forward
    forward: {{ upstream: shop, path: /payments/confirm }}
    mode: shadow
  - name: limits
    fetch: {{ upstream: shop, method: POST, path: "/api/limits/{{order_id}}" }}
    require: 'response.body.ok'
    reason: "limits"
"#
    ));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", STOCK, ok_after(1000))
            .answer("shop", "POST /api/reserve/order-1", ok_after(1000))
            .answer("shop", FORWARD_KEY, ok_after(1000))
            .answer(
                "shop",
                "POST /api/limits/order-1",
                answer(200, json!({"ok": false})).delay(Duration::from_millis(200)),
            ),
    );
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &canned).await;
    // 250 ms for the shadow rules, then 200 ms for the enforced POST: within the deadline.
    assert_eq!(started.elapsed(), Duration::from_millis(450));
    assert_eq!(summary(&d), refused("limits", "limits"));
    assert_eq!(
        outcomes(&d),
        [
            ("trial-get", "shadow_error"),
            ("trial-post", "shadow_error"),
            ("trial-forward", "shadow_error"),
            ("limits", "reject")
        ]
    );
    for rule in ["trial-get", "trial-post", "trial-forward"] {
        assert_eq!(error_of(&d, rule), SHADOW_CUT_OFF);
    }
    // The writes of shadow rules past the cut-off were never sent.
    assert_eq!(keys(&canned), [STOCK, "POST /api/limits/order-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_shadow_answer_already_in_is_read_past_the_cut_off() {
    // An enforced GET takes 300 ms, past the 250 ms cut-off. The shadow GET was started with
    // it when the request arrived and answered after 100 ms: it is still read and recorded.
    // The shadow POST after it would only start now, past the cut-off: it never does.
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 500ms }}
rules:
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
  - name: trial-get
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    mode: shadow
    reason: "trial {{response.body.available}}"
  - name: trial-post
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    mode: shadow
    reason: x
  - {{ name: after, require: 'fetched["trial-get"].status == 409 && !("trial-post" in fetched)', reason: x }}
"#
    ));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", LIMITS, ok_after(300))
            .answer(
                "shop",
                STOCK,
                answer(409, json!({"available": 0})).delay(Duration::from_millis(100)),
            )
            .answer(
                "shop",
                "POST /api/reserve/order-1",
                CannedAnswer::status(200),
            ),
    );
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [
            ("limits", "pass"),
            ("trial-get", "shadow_reject"),
            ("trial-post", "shadow_error"),
            ("after", "pass")
        ]
    );
    assert_eq!(error_of(&d, "trial-post"), SHADOW_CUT_OFF);
    assert_eq!(keys(&canned), [LIMITS, STOCK]);
    assert_eq!(
        d.shadow,
        [
            ShadowOutcome {
                rule: "trial-get".into(),
                outcome: Outcome::Reject,
                reason: Some("trial 0".into()),
            },
            shadow_error("trial-post"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shadow_scripts_get_only_what_is_left_before_the_cut_off() {
    let (_dir, rules) = ruleset_with(
        r#"
settings: { deadline: 1s, on_error: reject }
rules:
  - { name: heavy, script: scripts/heavy.rhai, mode: shadow, reason: x }
  - { name: after, require: 'amount > 0', reason: x }
"#,
        &[("scripts/heavy.rhai", HEAVY)],
    );
    // The request arrived 490 ms ago: 10 ms are left before the shadow cut-off.
    let d = decide_arrived(&rules, Arc::new(Canned::new()), Duration::from_millis(490)).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(outcomes(&d), [("heavy", "shadow_error"), ("after", "pass")]);
    let error = error_of(&d, "heavy");
    assert!(
        error.starts_with("scripts/heavy.rhai:")
            && error.ends_with(
                ": script stopped after 10 ms (shadow rule cut off to keep the deadline for enforced rules)"
            ),
        "{error}"
    );
    assert_eq!(d.shadow, [shadow_error("heavy")]);
}

mod as_written;
mod local;
mod upstreams;

// ---- the deadline between rules (audit: 40 slow script rules answered after the deadline) ----

/// The answer is due 2% before the deadline: at least 5 ms (half of one under 10 ms), at most
/// 10 ms.
#[tokio::test(start_paused = true)]
async fn the_answer_is_due_a_margin_before_the_deadline() {
    let start = tokio::time::Instant::now();
    for (deadline, margin) in [
        (4000, 50_000),
        (2000, 40_000),
        (400, 8000),
        (100, 5000),
        (30, 5000),
        (10, 5000),
        (6, 3000),
        (1, 500),
    ] {
        let settings = Settings {
            deadline: Duration::from_millis(deadline),
            ..Settings::default()
        };
        assert_eq!(
            start + settings.deadline - answer_by(&settings, start),
            Duration::from_micros(margin),
            "deadline {deadline} ms"
        );
    }
}

/// Each evaluation runs up to its own 50 ms limit: 40 of them take 2 s.
const SLOW_SCRIPTS: usize = 40;

/// The scripts take about 2 s one after another, far longer than `deadline`.
fn slow_script_rules(deadline: &str, rule_on_error: &str, mode: &str) -> String {
    let mut yaml = format!(
        "settings: {{ deadline: {deadline}, on_error: reject, error_reason: DEADLINE }}\nrules:\n",
    );
    for i in 0..SLOW_SCRIPTS {
        yaml.push_str(&format!(
            "  - {{ name: s{i}, script: scripts/heavy.rhai, on_error: {rule_on_error}, mode: {mode}, reason: x }}\n"
        ));
    }
    yaml.push_str("  - { name: last, require: 'order_id != \"final\"', reason: FINAL }\n");
    yaml
}

#[tokio::test]
async fn rules_reached_after_the_deadline_are_not_evaluated_and_the_ruleset_decides() {
    let (_dir, rules) = ruleset_with(
        &slow_script_rules("300ms", "approve", "enforce"),
        &[("scripts/heavy.rhai", HEAVY)],
    );
    let started = std::time::Instant::now();
    let d = decide(&rules, &v1("final", "50000")).await;
    let took = started.elapsed();
    println!("{SLOW_SCRIPTS} slow scripts, 300 ms deadline: answered after {took:?}");
    // A rule's `on_error: approve` lets a failed check pass, but a check stopped by the
    // deadline is the deadline's: the ruleset's on_error refuses, and `last` is never reached.
    assert_eq!(d.decision, crate::decision::Verdict::Reject);
    assert_eq!(d.reason.as_deref(), Some("DEADLINE"));
    assert!(d.trace.iter().all(|t| &*t.rule != "last"), "{:?}", d.trace);
    assert!(d.trace.len() < SLOW_SCRIPTS, "{:?}", d.trace);
    // Generous for debug builds on a busy machine; without the check it took 2 s.
    assert!(took < Duration::from_millis(1000), "took {took:?}");
}

/// A script waits for a free slot (scripts never take every server thread) with its deadline
/// running: one that comes too late is the ruleset's `on_error`, answered in time.
#[tokio::test]
async fn a_script_waiting_for_a_slot_is_answered_by_the_deadline() {
    let (_dir, rules) = ruleset_with(
        "settings: { deadline: 300ms, error_reason: DEADLINE }\nrules:\n  - { name: s, script: scripts/ok.rhai, on_error: approve, reason: x }\n",
        &[("scripts/ok.rhai", "true")],
    );
    let scripts = ScriptEngine::new();
    let evaluate_now = || decide_on(&scripts, &rules, Arc::new(Canned::new()), Duration::ZERO);
    let held = scripts.hold_every_slot();
    assert!(!held.is_empty());
    let started = std::time::Instant::now();
    let d = evaluate_now().await;
    let took = started.elapsed();
    assert_eq!(summary(&d), ("reject", 409, Some("DEADLINE"), Some("s")));
    assert!(took >= Duration::from_millis(250), "took {took:?}");
    assert!(took < Duration::from_millis(1000), "took {took:?}");
    // A slot free again: the script runs.
    drop(held);
    assert_eq!(summary(&evaluate_now().await), APPROVED);
}

/// A `when` evaluated as the request arrives (it decides whether a GET is sent) does not wait
/// for a turn to run Rhai: with every turn taken by other requests' scripts, an amount cap
/// before it still refuses at once, where waiting let the deadline pass and `on_error: approve`
/// approve the payment.
#[tokio::test]
async fn an_early_when_does_not_hold_up_the_local_checks_waiting_for_a_turn() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 300ms, on_error: approve, error_reason: DEADLINE }}
rules:
  - {{ name: cap, amount: {{ max: 10 }}, reason: CAP }}
  - name: stock
    when: 'order_id.len() > 3'
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
    ));
    let scripts = ScriptEngine::new();
    let _held = scripts.hold_every_slot();
    let canned = shop(STOCK, CannedAnswer::status(200));
    let d = decide_on(&scripts, &rules, canned, Duration::ZERO).await;
    assert_eq!(summary(&d), refused("CAP", "cap"));
}

/// Rhai expressions take turns as scripts do (one over a large payload can take as long as a
/// script); native ones (simple id tests) and the local checks do not wait.
#[tokio::test]
async fn a_rhai_expression_waits_for_its_turn_and_a_native_one_does_not() {
    let (_dir, rules) = ruleset_with(
        "settings: { deadline: 300ms, error_reason: DEADLINE }\nrules:\n  - { name: native, require: 'order_id.starts_with(\"order\")', reason: N }\n  - { name: rhai, require: 'amount + 0 > 1', reason: R }\n",
        &[],
    );
    let scripts = ScriptEngine::new();
    let evaluate_now = || decide_on(&scripts, &rules, Arc::new(Canned::new()), Duration::ZERO);
    let held = scripts.hold_every_slot();
    let started = std::time::Instant::now();
    let d = evaluate_now().await;
    assert_eq!(summary(&d), ("reject", 409, Some("DEADLINE"), Some("rhai")));
    assert_eq!(d.trace[0].outcome, Outcome::Pass, "{:?}", d.trace);
    assert!(started.elapsed() >= Duration::from_millis(250));
    drop(held);
    assert_eq!(summary(&evaluate_now().await), APPROVED);
}

/// A shadow script waits for its turn only until the shadow cut-off (half the deadline): it
/// never uses up the deadline, and the enforced rule after it decides.
#[tokio::test]
async fn a_shadow_script_waits_for_its_turn_only_until_its_cut_off() {
    let (_dir, rules) = ruleset_with(
        "settings: { deadline: 300ms, error_reason: DEADLINE }\nrules:\n  - { name: s, script: scripts/ok.rhai, mode: shadow, reason: x }\n  - { name: limit, amount: { max: 10 }, reason: LIMIT }\n",
        &[("scripts/ok.rhai", "false")],
    );
    let scripts = ScriptEngine::new();
    let _held = scripts.hold_every_slot();
    let d = decide_on(&scripts, &rules, Arc::new(Canned::new()), Duration::ZERO).await;
    // Decided by `limit`, not DEADLINE: the wait for a turn ended before the deadline did
    // (asserted by the outcome, not by a clock, which a loaded machine can stretch).
    assert_eq!(summary(&d), refused("LIMIT", "limit"));
    assert_eq!(d.shadow.len(), 1, "{:?}", d.shadow);
    assert_eq!(d.shadow[0].outcome, shadow_error("s").outcome);
}

/// A shadow rule cut off after its answer came (its `require` waiting for a turn to run Rhai
/// until the cut-off) leaves nothing in `fetched`, as one cut off waiting for the answer: an
/// enforced rule after it reads `()` whatever the shadow rule's timing (one refused a payment
/// under load when the answer stayed).
#[tokio::test]
async fn a_shadow_rule_cut_off_after_its_answer_came_leaves_nothing_in_fetched() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 2s, on_error: reject }}
rules:
  - name: trial
    mode: shadow
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    require: '[1, 2].reduce(|s, x| s + x, 0) > 0 && response.status == 200'
    reason: trial
  - {{ name: reader, require: 'fetched["trial"] == ()', reason: "trial answer visible" }}
"#
    ));
    let scripts = ScriptEngine::new();
    let held = scripts.hold_every_slot();
    // Turns are free again after the cut-off (1 s), for `reader`, with most of a second left.
    let release = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        drop(held);
    };
    let canned = shop(STOCK, CannedAnswer::status(200));
    let (d, ()) = tokio::join!(decide_on(&scripts, &rules, canned, Duration::ZERO), release);
    assert_eq!(
        outcomes(&d),
        [("trial", "shadow_error"), ("reader", "pass")]
    );
    assert!(
        error_of(&d, "trial").contains("waiting for its turn to run Rhai"),
        "{}",
        error_of(&d, "trial")
    );
    assert_eq!(summary(&d), APPROVED);
}

#[tokio::test]
async fn slow_shadow_rules_cannot_carry_the_answer_past_the_deadline() {
    // A second: the half left after the shadow rules' cut-off is room for `last` on a busy
    // machine (300 ms left it 150 ms).
    let (_dir, rules) = ruleset_with(
        &slow_script_rules("1s", "approve", "shadow"),
        &[("scripts/heavy.rhai", HEAVY)],
    );
    let started = std::time::Instant::now();
    let d = decide(&rules, &v1("order-1", "50000")).await;
    let took = started.elapsed();
    println!("{SLOW_SCRIPTS} slow shadow scripts, 1 s deadline: answered after {took:?}");
    // Shadow rules stop at half the deadline; what is left of their Rhai is next to nothing,
    // so `last` runs in time and approves (run to their end, they would take it past the
    // deadline, and DEADLINE would refuse).
    assert_eq!(d.decision, crate::decision::Verdict::Approve);
    assert_eq!(d.trace.last().map(|t| &*t.rule), Some("last"));
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

// ---- trace timings ----

/// A rule's `ms` in traces and the decision log is milliseconds rounded to the microsecond:
/// operators compare rules' costs by it.
#[test]
fn rule_times_are_milliseconds_to_the_microsecond() {
    assert_eq!(millis(Duration::ZERO), 0.0);
    assert_eq!(millis(Duration::from_micros(1500)), 1.5);
    assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
    assert_eq!(millis(Duration::from_nanos(400)), 0.0);
    assert_eq!(millis(Duration::from_secs(2)), 2000.0);
}

/// An approval reached after its answer was due does not stand: the ruleset's `on_error`
/// answers, with what the rules did still traced, and the lateness traced after it. A
/// refusal reached that late stands, whatever `on_error` says: the first refusal decides.
#[tokio::test]
async fn an_approval_reached_after_its_answer_was_due_is_replaced_by_on_error() {
    for (on_error, expected) in [
        ("reject", ("reject", 409, Some(ERR), None)),
        ("approve", APPROVED),
    ] {
        let (_dir, rules) = ruleset(&format!(
            "settings: {{ deadline: 1s, on_error: {on_error} }}\nrules:\n  - {{ name: small, amount: {{ max: 10 }}, reason: big }}\n  - {{ name: trial, amount: {{ max: 10 }}, mode: shadow, reason: t }}\n"
        ));
        let on_time = decide(&rules, &v1("order-1", "5")).await;
        assert_eq!(summary(&on_time), APPROVED);
        assert!(!stands_late(&on_time));
        let late_refusal = decide(&rules, &v1("order-1", "50")).await;
        assert_eq!(summary(&late_refusal), refused("big", "small"));
        assert!(stands_late(&late_refusal), "on_error: {on_error}");
        let settings = &rules.get("default").unwrap().settings;
        let late = decided_late(
            settings,
            &request(&v1("order-1", "5")),
            on_time.clone(),
            Duration::from_millis(1200),
        );
        assert_eq!(summary(&late), expected, "on_error: {on_error}");
        let mut traced = outcomes(&on_time);
        traced.push((EVALUATION, "error"));
        assert_eq!(outcomes(&late), traced);
        assert_eq!(late.shadow, on_time.shadow);
        assert!(
            error_of(&late, EVALUATION)
                .starts_with("decided (approve) only after the answer was due"),
            "{}",
            error_of(&late, EVALUATION)
        );
    }
}
