//! Local checks: order, guards, modes, bounds, reasons, scripts, on_error.

use super::*;
use crate::rules::Health;

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
  - { name: broken-trial, require: 'payload.amount + 1', mode: shadow, reason: x }
  - { name: after, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [
            ("lower-limit-trial", "shadow_reject"),
            ("broken-trial", "shadow_error"),
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

/// A shadow `action: approve` would have approved at once: recorded as such, while the rules
/// after it still decide.
#[tokio::test]
async fn a_shadow_approve_is_recorded_and_decides_nothing() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: vip-trial, when: 'order_id.starts_with("order-")', action: approve, mode: shadow }
  - { name: limit, amount: { max: 1000 }, reason: "한도 초과" }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(
        summary(&d),
        ("reject", 409, Some("한도 초과"), Some("limit"))
    );
    assert_eq!(
        outcomes(&d),
        [("vip-trial", "shadow_approve"), ("limit", "reject")]
    );
    assert_eq!(
        d.shadow,
        [ShadowOutcome {
            rule: "vip-trial".into(),
            outcome: Outcome::Approve,
            reason: None,
        }]
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

/// A fractional amount is a Decimal, a float literal an f64: the rule decides, on both sides
/// of the limit, instead of failing to `on_error` (which, with `approve`, let everything
/// through).
#[tokio::test]
async fn require_compares_fractional_amounts_with_float_literals() {
    for on_error in ["reject", "approve"] {
        let (_dir, rules) = ruleset(&format!(
            r#"
settings: {{ on_error: {on_error} }}
rules:
  - {{ name: limit, require: 'amount < 2000.0', reason: "over 2000: {{amount}}" }}
"#
        ));
        for (amount, expected) in [
            ("2500.5", refused("over 2000: 2500.5", "limit")),
            ("2500", refused("over 2000: 2500", "limit")),
            ("2000.0", refused("over 2000: 2000.0", "limit")),
            ("1500.5", APPROVED),
            ("1999.99", APPROVED),
            ("1500", APPROVED),
        ] {
            let d = decide(&rules, &v1("order-1", amount)).await;
            assert_eq!(
                summary(&d),
                expected,
                "amount {amount}, on_error {on_error}"
            );
            assert!(
                d.trace.iter().all(|t| t.error.is_none()),
                "amount {amount}: {:?}",
                d.trace
            );
        }
        let (_dir, rules) = ruleset(&format!(
            r#"
settings: {{ on_error: {on_error} }}
rules:
  - {{ name: exact, require: '2000.1 != amount', reason: "exactly 2000.1" }}
"#
        ));
        for amount in ["2000.1", "2000.10"] {
            let d = decide(&rules, &v1("order-1", amount)).await;
            assert_eq!(summary(&d), refused("exactly 2000.1", "exact"));
            assert_eq!(outcomes(&d), [("exact", "reject")]);
        }
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
settings: { error_reason: "주문 {order_id}: 잠시 후 다시 시도해 주세요", reject_status: 503 }
rules:
  - { name: not-a-bool, require: 'payload.amount + 1', reason: "never shown" }
  - { name: after, amount: { min: 1 }, reason: x }
"#,
    );
    let d = decide(&rules, V1).await;
    assert_eq!(
        summary(&d),
        (
            "reject",
            503,
            Some("주문 order-1: 잠시 후 다시 시도해 주세요"),
            Some("not-a-bool")
        )
    );
    assert_eq!(outcomes(&d), [("not-a-bool", "error")]);
    // Where in the rule file: the expression's first character (inside the quote).
    assert_eq!(
        error_of(&d, "not-a-bool"),
        "default.yaml:4:35: require: the expression gave a number, not true or false: write a condition, such as order_id == \"x\" or amount > 1000"
    );
}

/// A run-time error inside an expression names the rule file's line and column, through the
/// folding of a `>-` block, not the expression's own "line 1".
#[tokio::test]
async fn run_time_expression_errors_name_the_place_in_the_rule_file() {
    let (_dir, rules) = ruleset(
        r#"rules:
  - name: folded
    require: >-
      amount > 0 &&
      parse_int(order_id) > 0
    reason: x
"#,
    );
    let d = decide(&rules, V1).await;
    let error = error_of(&d, "folded");
    assert!(
        error.starts_with("default.yaml:5:7: require: error parsing integer number 'order-1'"),
        "{error}"
    );
}

#[tokio::test]
async fn rule_on_error_overrides_the_rulesets() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: lenient, require: 'payload.amount + 1', on_error: approve, reason: x }
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
  - { name: lenient-by-default, require: 'payload.amount + 1', reason: x }
  - { name: strict, require: 'payload.amount + 1', on_error: reject, reason: x }
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
    let (_dir, rules) = ruleset(
        "rules:\n  - { name: w, when: 'payload.amount + 0', require: 'true', reason: x }\n",
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), failed("w"));
    assert_eq!(
        error_of(&d, "w"),
        "default.yaml:2:23: when: the expression gave a number, not true or false: write a condition, such as order_id == \"x\" or amount > 1000"
    );
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
        // The operations limit, or on a loaded machine the time limit, whichever comes first.
        error.starts_with("scripts/spin.rhai:")
            && (error.contains("operations (sandbox limit)") || error.contains("(time limit)")),
        "{error}"
    );
}

/// A script throwing a 64 KiB string: its error is cut for the trace, the decision log and
/// the log line.
#[tokio::test]
async fn a_huge_error_is_cut() {
    let (_dir, rules) = ruleset_with(
        "rules:\n  - { name: loud, script: scripts/loud.rhai }\n",
        &[(
            "scripts/loud.rhai",
            "let s = \"오류\"; s.pad(60000, \"!\"); throw s;",
        )],
    );
    let d = decide(&rules, V1).await;
    assert_eq!(summary(&d), failed("loud"));
    let error = error_of(&d, "loud");
    assert_eq!(error.chars().count(), MAX_ERROR_CHARS + 1, "{error}");
    assert!(
        error.starts_with("scripts/loud.rhai:1:") && error.ends_with("!…"),
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
            ("scripts/unit.rhai", "if amount < 0 { false }"),
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

/// A string a script returns is the buyer's reason: a blank one says nothing (the rule's
/// reason, or the default one, stands in), and a long one is capped like a merchant's.
#[tokio::test]
async fn script_reasons_are_never_blank_and_capped() {
    let (_dir, rules) = ruleset_with(
        r#"
rules:
  - { name: blank, when: 'order_id == "b"', script: scripts/blank.rhai, reason: "rule reason" }
  - { name: empty, when: 'order_id == "e"', script: scripts/empty.rhai }
  - { name: unseen, when: 'order_id == "u" || order_id == "f"', script: scripts/unseen.rhai, reason: "rule reason" }
  - { name: long, script: scripts/long.rhai }
"#,
        &[
            ("scripts/blank.rhai", r#""  ""#),
            // Blank as the buyer would see it: controls and text-direction marks are left out.
            (
                "scripts/unseen.rhai",
                r#"if order_id == "u" { " \u202e\x07\u2066\u2069\t\u200b\u3164\u00ad" } else { "재고\ufffd" }"#,
            ),
            ("scripts/empty.rhai", r#""""#),
            ("scripts/long.rhai", r#"let s = "가"; s.pad(5000, '나'); s"#),
        ],
    );
    let d = decide(&rules, &v1("b", "100")).await;
    assert_eq!(summary(&d), refused("rule reason", "blank"));
    let d = decide(&rules, &v1("e", "100")).await;
    assert_eq!(summary(&d), refused(DEFAULT_REASON, "empty"));
    let d = decide(&rules, &v1("u", "100")).await;
    assert_eq!(summary(&d), refused("rule reason", "unseen"));
    // Text that was not readable in its answer's charset (U+FFFD) is no reason either.
    let d = decide(&rules, &v1("f", "100")).await;
    assert_eq!(summary(&d), refused("rule reason", "unseen"));
    let d = decide(&rules, &v1("x", "100")).await;
    let reason = d.reason.unwrap();
    assert_eq!(reason.chars().count(), 501);
    assert!(
        reason.starts_with("가나나") && reason.ends_with("나…"),
        "{reason}"
    );
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

/// Simple id tests run without Rhai; a ruleset of only those builds no Rhai scope, and one
/// Rhai expression among them brings the scope back for every rule.
#[tokio::test]
async fn simple_id_tests_run_without_rhai() {
    let native_only = r#"
rules:
  - { name: qa, when: 'order_id.starts_with("qa-")', action: approve }
  - { name: legacy, require: '!order_id.starts_with("legacy-")', reason: "old" }
  - { name: api, require: 'api != "v2-2024-01-01"', reason: "v1 only" }
  - { name: cap, require: 'amount <= 3000000', reason: "cap" }
"#;
    let (_dir, rules) = ruleset(native_only);
    let rs = rules.get("default").unwrap();
    assert!(!rs.uses_rhai);
    assert!(rs.rules.iter().all(|r| !r.uses_rhai()));
    assert_eq!(
        summary(&decide(&rules, &v1("legacy-1", "1000")).await),
        refused("old", "legacy")
    );
    assert_eq!(
        summary(&decide(&rules, &v1("qa-legacy-1", "1000")).await),
        ("approve", 200, None, Some("qa"))
    );
    assert_eq!(
        summary(&decide(&rules, &v1("order-1", "1000")).await),
        ("approve", 200, None, None)
    );
    assert_eq!(
        summary(&decide(&rules, &v1("order-1", "3000000.5")).await),
        refused("cap", "cap")
    );

    let mixed =
        format!("{native_only}  - {{ name: big, require: 'amount * 2 < 10000', reason: big }}\n");
    let (_dir, rules) = ruleset(&mixed);
    assert!(rules.get("default").unwrap().uses_rhai);
    assert_eq!(
        summary(&decide(&rules, &v1("legacy-1", "1000")).await),
        refused("old", "legacy")
    );
    assert_eq!(
        summary(&decide(&rules, &v1("order-1", "9000")).await),
        refused("big", "big")
    );
}
