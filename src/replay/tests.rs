//! Replaying records: what is replayed, what stands in for upstreams, and what is noted.

use super::*;
use crate::decision::Verdict;
use crate::rules::load_files;

const RULES: &str = r#"
upstreams:
  shop: { url: "http://shop.invalid", health: { path: /health } }
rules:
  - name: shop-up
    healthy: shop
    reason: "상점 점검 중입니다"
  - name: existing-confirm
    forward: { upstream: shop, path: /payments/confirm }
    reason: "결제할 수 없습니다"
"#;

fn line(trace: &str, decision: &str, extra: &str) -> String {
    format!(
        r#"{{"time":"2026-11-25T07:51:02.114Z","decision_id":"d-1","ruleset":"default","rules_version":"abc","api":"v1","order_id":"order-1","tx_id":"imp_1","amount":5000,"decision":"{decision}","status":200,"trace":[{trace}],"latency_ms":0.1,"request":{{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000}}{extra}}}"#
    )
}

async fn again(rules: &Rules, line: &str) -> Replayed {
    let record = read(line.as_bytes()).unwrap();
    assert!(record.decided_by_rules());
    replay(rules, &ScriptEngine::new(), record).await
}

fn decided(line: &str) -> bool {
    read(line.as_bytes()).unwrap().decided_by_rules()
}

#[test]
fn records_no_rule_decided_are_not_replayed() {
    let guard = r#"{"time":"2026-11-25T07:51:02.114Z","decision_id":"d-2","ruleset":"unknown","decision":"reject","status":404,"reason":"x","trace":[],"latency_ms":0.1}"#;
    assert!(!decided(guard));
    assert!(!decided(&line("", "approve", r#","repeat_of":"d-0""#)));
    assert!(!decided(&line("", "ignored", "")));
    assert!(decided(&line("", "approve", "")));
    assert!(read(b"{}")
        .unwrap_err()
        .starts_with("not a decision-log record"));
    assert_eq!(
        read(b"{\"time\":\"\xff\n").unwrap_err(),
        "not a decision-log record: not UTF-8 at byte 10 (a line cut inside a character?)"
    );
    assert_eq!(
        read(b"{\"time\":\"2026\n").unwrap_err(),
        "not a decision-log record: EOF while parsing a string (column 13)"
    );
}

/// An answer that was cut short then is replayed cut: its `require` is again not evaluated
/// on part of an answer, and the rule's `on_error` decides as it did.
#[tokio::test]
async fn a_cut_answer_is_replayed_cut() {
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        "upstreams: { shop: { url: \"http://shop.invalid\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: /stock }, require: '!response.body.contains(\"SOLD_OUT\")', reason: 매진 }\n",
    )]);
    let cut = line(
        r#"{"rule":"stock","outcome":"error","ms":900.0,"error":"require on the answer of shop (status 200, its body cut short: still coming when its rule had to decide, before the request's deadline): not evaluated on part of an answer","upstream":{"status":200,"body":"{\"state\":\"ON_SA","incomplete":"cut short: still coming when its rule had to decide, before the request's deadline"}}"#,
        "reject",
        "",
    );
    let r = again(&rules, &cut).await;
    assert_eq!(r.decision.decision, Verdict::Reject, "{}", r.explain());
    assert_eq!(r.decision.trace[0].outcome, Outcome::Error);
    assert!(
        r.decision.trace[0]
            .error
            .as_deref()
            .is_some_and(|e| e.ends_with("not evaluated on part of an answer")),
        "{:?}",
        r.decision.trace
    );
}

/// The health a `healthy` rule read and the merchant's answer to a `forward` come from the
/// record; the same rules decide the same way.
#[tokio::test]
async fn health_and_forward_answers_come_from_the_record() {
    let (_dir, rules) = load_files(&[("default.yaml", RULES)]);
    let approved = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":0.01},{"rule":"existing-confirm","outcome":"pass","ms":3.2,"upstream":{"status":200,"body":{"ok":true}}}"#,
        "approve",
        "",
    );
    let r = again(&rules, &approved).await;
    assert!(!r.changed(), "{}", r.explain());
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    let refused = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":0.01},{"rule":"existing-confirm","outcome":"reject","ms":3.2,"upstream":{"status":409,"body":{"reason":"이미 결제된 주문입니다"}}}"#,
        "approve",
        "",
    );
    let r = again(&rules, &refused).await;
    assert_eq!(r.decision.decision, Verdict::Reject);
    assert_eq!(r.decision.reason.as_deref(), Some("이미 결제된 주문입니다"));
    assert!(r.changed());

    let down = line(
        r#"{"rule":"shop-up","outcome":"reject","ms":0.01}"#,
        "approve",
        "",
    );
    let r = again(&rules, &down).await;
    assert_eq!(r.decision.rule.as_deref(), Some("shop-up"));
    assert_eq!(r.decision.reason.as_deref(), Some("상점 점검 중입니다"));
}

/// A forward that failed then fails again; one the record never reached is an error with a
/// note, and so is an answer the log kept only in part.
#[tokio::test(start_paused = true)]
async fn what_the_record_cannot_stand_in_for_is_noted() {
    let (_dir, rules) = load_files(&[("default.yaml", RULES)]);
    let failed = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":0.01},{"rule":"existing-confirm","outcome":"error","ms":1000.0,"error":"forward to shop: timed out after 1s"}"#,
        "reject",
        "",
    );
    let r = again(&rules, &failed).await;
    assert_eq!(r.decision.trace[1].outcome, Outcome::Error);
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    let unreached = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":0.01}"#,
        "approve",
        "",
    );
    let r = again(&rules, &unreached).await;
    assert_eq!(r.decision.trace[1].outcome, Outcome::Error);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].starts_with("rule existing-confirm: the record has no upstream answer"));

    let cut = format!("\"{}…\"", "x".repeat(MAX_TRACED_BODY));
    let partial = line(
        &format!(
            r#"{{"rule":"shop-up","outcome":"pass","ms":0.01}},{{"rule":"existing-confirm","outcome":"pass","ms":3.2,"upstream":{{"status":200,"body":{cut}}}}}"#
        ),
        "approve",
        "",
    );
    let r = again(&rules, &partial).await;
    assert_eq!(
        r.notes,
        ["rule existing-confirm: the log kept only the first 4 KiB of the upstream's answer"]
    );
}

/// A call the deadline cut off is still waiting when the deadline comes again: the
/// ruleset's `on_error` decides, not the rule's (the clock is paused, so no time passes).
#[tokio::test(start_paused = true)]
async fn a_call_the_deadline_cut_off_is_cut_off_again() {
    let rules_yaml = "settings: { deadline: 1s, on_error: reject }\nupstreams:\n  shop: { url: \"http://shop.invalid\", timeout: 3s }\nrules:\n  - name: optional\n    fetch: { upstream: shop, path: \"/extra/{order_id}\" }\n    on_error: approve\n    reason: x\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let cut = line(
            r#"{"rule":"optional","outcome":"error","ms":990.0,"error":"deadline of 1s exceeded"}"#,
            "reject",
            "",
        )
        .replace(
            r#""status":200"#,
            r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","rule":"optional""#,
        );
    let r = again(&rules, &cut).await;
    assert!(!r.changed(), "{}", r.explain());
    assert_eq!(
        r.decision.trace[0].error.as_deref(),
        Some("deadline of 1s exceeded")
    );
}

/// An enforced fetch and a shadow trial of the same call: the answer the enforced rule got
/// stands, whatever the shadow rule's cut-off left in the log; and a body that was a JSON
/// string stays a string.
#[tokio::test(start_paused = true)]
async fn an_answer_that_arrived_beats_a_failure_of_the_same_call() {
    let rules_yaml = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.body == \"3\"'\n    reason: x\n  - name: strict-trial\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'false'\n    mode: shadow\n    reason: y\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":1200.0,"upstream":{"status":200,"body":"3"}},{"rule":"strict-trial","outcome":"error","ms":0.1,"error":"shadow rule cut off to keep the deadline for enforced rules (shadow rules may use only the first 2s of the 4s deadline)"}"#,
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert!(!r.changed(), "{}", r.explain());
    assert_eq!(
        r.decision.trace[0].outcome,
        Outcome::Pass,
        "{}",
        r.explain()
    );
}

/// Two rules POSTing the same reservation each got their own answer (200, then 409), and a
/// third one the deadline cut off: replayed, each call gets its rule's answer in turn, and
/// the decision stands.
#[tokio::test(start_paused = true)]
async fn repeated_calls_with_side_effects_get_their_answers_in_turn() {
    let rules_yaml = "settings: { deadline: 1s }\nupstreams:\n  res: { url: \"http://res.invalid\", timeout: 3s }\nrules:\n  - { name: a1, fetch: { upstream: res, method: POST, path: /reserve }, reason: r1 }\n  - { name: a2, fetch: { upstream: res, method: POST, path: /reserve }, reason: r2 }\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let refused = line(
        r#"{"rule":"a1","outcome":"pass","ms":1.0,"upstream":{"status":200,"body":""}},{"rule":"a2","outcome":"reject","ms":1.0,"upstream":{"status":409,"body":""},"reason":"r2"}"#,
        "reject",
        "",
    )
    .replace(r#""status":200,"trace""#, r#""status":409,"reason":"r2","rule":"a2","trace""#);
    let r = again(&rules, &refused).await;
    assert!(!r.changed(), "{}", r.explain());
    assert_eq!(r.decision.rule.as_deref(), Some("a2"));

    let cut = line(
        r#"{"rule":"a1","outcome":"pass","ms":600.0,"upstream":{"status":200,"body":""}},{"rule":"a2","outcome":"error","ms":390.0,"error":"deadline of 1s exceeded"}"#,
        "reject",
        "",
    )
    .replace(
        r#""status":200,"trace""#,
        r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","rule":"a2","trace""#,
    );
    let r = again(&rules, &cut).await;
    assert!(!r.changed(), "{}", r.explain());
    assert_eq!(r.decision.trace[1].outcome, Outcome::Error);
}

/// A rule that errs in the replay but did not then read something the log does not keep.
#[tokio::test]
async fn an_error_only_the_replay_has_is_noted() {
    let rules_yaml = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.headers[\"content-type\"].starts_with(\"application/json\")'\n    reason: x\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":3.0,"upstream":{"status":200,"body":{"available":3}}}"#,
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert_eq!(r.notes.len(), 1, "{}", r.explain());
    assert!(r.notes[0].contains("not its headers"), "{:?}", r.notes);
}

/// A rule's `window` is judged at the record's arrival time, not today.
#[tokio::test]
async fn the_record_time_is_the_evaluation_time() {
    let window = "rules:\n  - name: sale\n    window: { from: \"2026-11-25T16:00:00+09:00\", until: \"2026-11-26T00:00:00+09:00\" }\n    reason: \"판매 기간이 아닙니다\"\n";
    let (_dir, rules) = load_files(&[("default.yaml", window)]);
    let r = again(&rules, &line("", "approve", "")).await;
    assert_eq!(r.decision.decision, Verdict::Approve, "{}", r.explain());
    let (_dir, rules) = load_files(&[("default.yaml", &window.replace("16:00:00", "17:00:00"))]);
    let r = again(&rules, &line("", "approve", "")).await;
    assert_eq!(r.decision.rule.as_deref(), Some("sale"));
    assert!(r.changed());
}

/// A caller chose the order id: in the report it cannot break lines or reach the terminal.
#[test]
fn order_ids_are_shown_escaped_when_they_hold_controls() {
    assert_eq!(super::shown_id("order-1"), "order-1");
    assert_eq!(super::shown_id("주문-1"), "주문-1");
    assert_eq!(
        super::shown_id("b-1\n  logged: reject\u{1b}[2J"),
        r#""b-1\n  logged: reject\u{1b}[2J""#
    );
    assert_eq!(super::shown_id("b-\u{202e}abc"), r#""b-\u{202e}abc""#);
    assert_eq!(super::shown_id(&"x".repeat(300)).chars().count(), 101);
}
