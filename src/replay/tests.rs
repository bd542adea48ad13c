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

/// Asserts that the first rule errs in the replay, with `note` its only note.
#[track_caller]
fn assert_first_rule_errs(r: &Replayed, note: &str) {
    assert_rule_errs(r, 0, note);
}

/// Asserts that rule `i` (in the trace) errs in the replay, with `note` its only note.
#[track_caller]
fn assert_rule_errs(r: &Replayed, i: usize, note: &str) {
    assert_eq!(
        r.decision.trace[i].outcome,
        Outcome::Error,
        "{}",
        r.explain()
    );
    assert_eq!(r.notes, [note]);
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

/// A line the proxy could not have written — edited or damaged — is named as such, not taken
/// for a guard's answer or for a decision that changed.
#[test]
fn a_record_the_proxy_could_not_have_written_is_refused() {
    let approve = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":0.1}"#,
        "approve",
        "",
    );
    assert_eq!(
        read(
            approve
                .replace(r#""decision":"approve""#, r#""decision":"approved""#)
                .as_bytes()
        )
        .unwrap_err(),
        "not a decision-log record: decision: unknown variant `approved`, expected one of `approve`, `reject`, `ignored` (column 180)"
    );
    let cut = approve.replace(
        r#","request":{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000}"#,
        "",
    );
    assert!(read(cut.as_bytes())
        .unwrap_err()
        .starts_with("not a decision-log record: it has a rule or a trace but no request"));
    let e = read(
        approve
            .replace("2026-11-25T07:51:02.114Z", "2026-11-25 07:51")
            .as_bytes(),
    )
    .unwrap_err();
    assert!(
        e.starts_with(r#"not a decision-log record: time: "2026-11-25 07:51": "#)
            && e.contains("expected RFC 3339 as the proxy writes it"),
        "{e}"
    );
    // A field of the wrong kind is named.
    assert_eq!(
        read(approve.replace(r#""status":200"#, r#""status":"200""#).as_bytes()).unwrap_err(),
        "not a decision-log record: status: invalid type: string \"200\", expected u16 (column 194)"
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
    assert_eq!(
        r.notes,
        ["rule existing-confirm: not in the record, and its POST /payments/confirm from shop may change something at the merchant, so no other rule's answer stands in for it; it counted as an error"]
    );

    // A body the log cut: said outright (`cut`), also where the text kept is shorter than the
    // limit (a JSON answer cut where its spelling, escapes and all, reaches 4 KiB); in a log
    // written before `cut`, told by a text longer than the limit.
    let long = format!("\"{}…\"", "x".repeat(MAX_TRACED_BODY));
    let answered = |body: &str, cut: &str| {
        line(
            &format!(
                r#"{{"rule":"shop-up","outcome":"pass","ms":0.01}},{{"rule":"existing-confirm","outcome":"pass","ms":3.2,"upstream":{{"status":409,"body":{body}{cut}}}}}"#
            ),
            "reject",
            "",
        )
    };
    for (body, cut, noted) in [
        (long.as_str(), "", true),
        ("\"{\\\"a\\\":\\\"xx…\"", ",\"cut\":true", true),
        ("\"short…\"", "", false),
    ] {
        let r = again(&rules, &answered(body, cut)).await;
        let expected: &[&str] = if noted {
            &["rule existing-confirm: the log kept only the first 4 KiB of the upstream's answer"]
        } else {
            &[]
        };
        assert_eq!(r.notes, expected, "{body}");
    }
    // Said only of a rule the replay reaches: here a new limit before it refuses first.
    let (_limited_dir, limited) = load_files(&[(
        "default.yaml",
        &RULES.replace(
            "rules:\n",
            "rules:\n  - { name: limit, amount: { max: 1 }, reason: z }\n",
        ),
    )]);
    let r = again(&limited, &answered(&long, "")).await;
    assert_eq!(r.decision.rule.as_deref(), Some("limit"), "{}", r.explain());
    assert!(r.notes.is_empty(), "{:?}", r.notes);
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

/// A `forward` the deadline cut off is traced with its call: replayed, the same call waits
/// for the deadline again, and one whose path changed since has no answer in the record.
#[tokio::test(start_paused = true)]
async fn a_forward_the_deadline_cut_off_is_matched_by_its_call() {
    let forward = |path: &str| {
        format!("settings: {{ deadline: 1s, on_error: reject }}\nupstreams:\n  shop: {{ url: \"http://shop.invalid\", timeout: 3s }}\nrules:\n  - {{ name: existing, forward: {{ upstream: shop, path: {path} }}, reason: x }}\n")
    };
    let cut = line(
        r#"{"rule":"existing","outcome":"error","ms":990.0,"call":{"upstream":"shop","method":"POST","path":"/confirm"},"error":"deadline of 1s exceeded"}"#,
        "reject",
        "",
    )
    .replace(
        r#""status":200"#,
        r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","rule":"existing""#,
    );
    let (_dir, rules) = load_files(&[("default.yaml", &forward("/confirm"))]);
    let r = again(&rules, &cut).await;
    assert!(!r.changed(), "{}", r.explain());
    // Said, since an edited deadline or timeout changes nothing here.
    assert_eq!(r.notes, ["rule existing: its call was still unanswered when the deadline came then; it waits again, and the ruleset's on_error decides as it is now (how long the upstream would have taken is not in the log: try an edited deadline or timeout with eval)"]);
    assert!(!r.unanswered, "its own failure stands in");
    assert_eq!(
        r.decision.trace[0].error.as_deref(),
        Some("deadline of 1s exceeded")
    );
    let (_dir, rules) = load_files(&[("default.yaml", &forward("/v2/confirm"))]);
    let r = again(&rules, &cut).await;
    assert_first_rule_errs(&r, "rule existing: its call changed (then POST /confirm from shop, now POST /v2/confirm from shop): the record has no answer for it");
    assert!(r.unanswered, "on_error's guess, counted apart");
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

/// A rule that errs in the replay but did not then read something the log does not keep: its
/// `require` reads headers, which the log does not keep, and the note says so.
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
    assert_eq!(
        r.notes,
        ["rule stock reads response headers, which the log does not keep"],
        "{}",
        r.explain()
    );
}

/// Headers read through `fetched` by a later rule are noted too; a rule that was skipped
/// read nothing and gets no note.
#[tokio::test]
async fn headers_read_through_fetched_are_noted_and_skipped_rules_not() {
    let rules_yaml = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    reason: x\n  - name: header-check\n    require: 'fetched[\"stock\"].headers[\"x-stock\"] == \"1\"'\n    reason: y\n  - name: off-today\n    when: 'amount > 1000000'\n    require: 'fetched[\"stock\"].headers[\"x-stock\"] == \"2\"'\n    reason: z\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":3.0,"upstream":{"status":200,"body":{"available":3}}},{"rule":"header-check","outcome":"pass","ms":0.1}"#,
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.notes,
        ["rule header-check reads response headers, which the log does not keep"],
        "{}",
        r.explain()
    );
}

/// A rule the deadline stopped then — a call with side effects not sent, a Rhai rule not run,
/// reached too close to it — was decided by the ruleset's `on_error`; replayed with time to
/// spare it would run, and a call with no answer on record would be the rule's own `on_error`'s
/// (an audit replayed an unchanged log as `now approved` by a rule's `on_error: approve`). It is
/// the deadline's again, as the ruleset's `on_error` is now.
#[tokio::test(start_paused = true)]
async fn a_rule_the_deadline_stopped_then_is_the_deadlines_again() {
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        "settings: { on_error: reject }\nupstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - { name: reserve, fetch: { upstream: shop, method: POST, path: /reserve }, reason: x, on_error: approve }\n  - { name: big, require: 'amount < 100', reason: y, on_error: approve }\n",
    )]);
    let refused = r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","rule":"reserve""#;
    for (trace, rule) in [
        (
            r#"{"rule":"reserve","outcome":"error","ms":0.0,"error":"not sent: reached too close to the deadline of 400ms to read an answer"}"#,
            "reserve",
        ),
        (
            r#"{"rule":"reserve","outcome":"pass","ms":390.0,"upstream":{"status":200,"body":{}}},{"rule":"big","outcome":"error","ms":0.0,"error":"not run: reached after the answer was due (deadline of 400ms)"}"#,
            "big",
        ),
        // Said by `deadline`, whatever the error: a script stopped as the time ran out
        // (replayed, it would run on).
        (
            r#"{"rule":"reserve","outcome":"pass","ms":300.0,"upstream":{"status":200,"body":{}}},{"rule":"big","outcome":"error","ms":41.1,"error":"script stopped after 41.1 ms (the request's deadline)","deadline":true}"#,
            "big",
        ),
    ] {
        let logged = line(trace, "reject", "").replace(r#""status":200"#, refused);
        let r = again(&rules, &logged).await;
        assert_eq!(r.decision.decision, Verdict::Reject, "{}", r.explain());
        assert_eq!(r.decision.rule.as_deref(), Some(rule), "{}", r.explain());
        assert_eq!(r.notes, [format!("the deadline ended rule {rule} (reached too close to it, or still running when the answer was due), so the ruleset's on_error decided; it decides again as it is now")]);
    }
    // A call timing out just after the answer was due (replayed, it would time out in time,
    // for the rule's own `on_error: approve`) is waited for again, until the deadline: the
    // ruleset's `on_error` decides again, and an edit before the rule would show.
    let logged = line(
        r#"{"rule":"reserve","outcome":"error","ms":389.0,"call":{"upstream":"shop","method":"POST","path":"/reserve","sent":"x"},"error":"fetch from shop: timed out after 389ms","deadline":true}"#,
        "reject",
        "",
    )
    .replace(r#""status":200"#, refused);
    let r = again(&rules, &logged).await;
    assert_eq!(
        (r.decision.decision, r.decision.rule.as_deref()),
        (Verdict::Reject, Some("reserve")),
        "{}",
        r.explain()
    );
    assert_eq!(
        r.decision.trace[0].error.as_deref(),
        Some("deadline of 4s exceeded")
    );
    // A shadow rule the deadline caught still running: the ruleset's `on_error` decided,
    // naming no rule.
    let (_dir, shadow) = load_files(&[(
        "default.yaml",
        "settings: { on_error: reject }\nrules:\n  - { name: trial, mode: shadow, script: scripts/t.rhai, reason: y }\n  - { name: big, amount: { max: 1000000 }, reason: z }\n",
    ), ("scripts/t.rhai", "amount > 5")]);
    for call in [
        "",
        r#","call":{"upstream":"shop","method":"GET","path":"/x","sent":"x"}"#,
    ] {
        let logged = line(
            &format!(r#"{{"rule":"trial","outcome":"shadow_error","ms":400.0{call},"error":"deadline of 400ms exceeded","deadline":true}}"#),
            "reject",
            "",
        )
        .replace(
            r#""status":200"#,
            r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.""#,
        );
        let r = again(&shadow, &logged).await;
        assert_eq!(
            (r.decision.decision, r.decision.rule.as_deref()),
            (Verdict::Reject, None),
            "{call}: {}",
            r.explain()
        );
        assert!(!r.changed(), "{}", r.explain());
    }
    // A shadow rule stopped otherwise decided nothing: the rules went on, and are replayed.
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        "settings: { on_error: approve }\nrules:\n  - { name: trial, mode: shadow, require: 'amount < 100', reason: y }\n  - { name: big, amount: { max: 1000 }, reason: z }\n",
    )]);
    let logged = line(
        r#"{"rule":"trial","outcome":"shadow_error","ms":0.0,"error":"not run: reached after the answer was due (deadline of 400ms)"},{"rule":"big","outcome":"reject","ms":0.0,"reason":"z"}"#,
        "reject",
        "",
    )
    .replace(r#""status":200"#, r#""status":409,"reason":"z","rule":"big""#);
    let r = again(&rules, &logged).await;
    assert_eq!(r.decision.rule.as_deref(), Some("big"), "{}", r.explain());
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

/// Shadow rules decide nothing, so no change shows them: the tally counts what each does now
/// beside what the rule of that name did then (enforced, or a failure logged as `error`).
#[tokio::test]
async fn shadow_rules_are_tallied_now_and_then() {
    let yaml = "rules:\n  - { name: vip, mode: shadow, amount: { max: 4000 }, reason: r }\n  - { name: trial, mode: shadow, when: \"amount > 100\", require: \"order_id != `order-1`\", reason: r }\n  - { name: late, mode: shadow, when: \"amount > 100000\", amount: { max: 1 }, reason: r }\n  - { name: qa, mode: shadow, when: \"amount == 5000\", action: approve }\n";
    let (_dir, rules) = load_files(&[("default.yaml", yaml)]);
    let ruleset = rules.get("default").unwrap();
    let mut tally = ShadowTally::default();
    // Then, vip was enforced and refused; trial is new.
    let vip_refused = line(r#"{"rule":"vip","outcome":"reject"}"#, "reject", "");
    tally.add(ruleset, &again(&rules, &vip_refused).await);
    // Then, vip failed as a shadow rule, written `error` before `shadow_error` existed.
    let vip_failed = line(r#"{"rule":"vip","outcome":"error"}"#, "approve", "");
    tally.add(ruleset, &again(&rules, &vip_failed).await);
    assert_eq!(
        tally.report(),
        "shadow rules (they decide nothing; what each did over the replayed records, and what the rule of that name did then):\n  \
         default/vip: now 2 checked, 2 would refuse, 0 failed; then 2 checked, 1 refused, 1 failed\n  \
         default/trial: now 2 checked, 2 would refuse, 0 failed; in no record (new, or never reached then)\n  \
         default/late: now 0 checked, 0 would refuse, 0 failed; in no record (new, or never reached then)\n  \
         default/qa: now 2 checked, 0 would refuse, 2 would approve, 0 failed; in no record (new, or never reached then)\n"
    );
    assert_eq!(ShadowTally::default().report(), "");
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

const RESERVE: &str = "upstreams:\n  res: { url: \"http://res.invalid\" }\nrules:\n  - { name: reserve, fetch: { upstream: res, method: POST, path: /reserve }, reason: r1 }\n";

fn reserved(call: &str) -> String {
    line(
        &format!(
            r#"{{"rule":"reserve","outcome":"pass","ms":1.0{call},"upstream":{{"status":200,"body":""}}}}"#
        ),
        "approve",
        "",
    )
}

/// A new rule POSTing the same call as a logged one does not get that rule's answer: a POST
/// may change something at the merchant, and the record has no answer for this one.
#[tokio::test]
async fn a_new_post_rule_gets_no_other_rules_answer() {
    let third = format!(
        "{RESERVE}  - {{ name: reserve-third, fetch: {{ upstream: res, method: POST, path: /reserve }}, reason: r3 }}\n"
    );
    let (_dir, rules) = load_files(&[("default.yaml", &third)]);
    let call = r#","call":{"upstream":"res","method":"POST","path":"/reserve"}"#;
    for logged in [reserved(call), reserved("")] {
        let r = again(&rules, &logged).await;
        assert_eq!(
            r.decision.trace[0].outcome,
            Outcome::Pass,
            "{}",
            r.explain()
        );
        assert_eq!(
            r.decision.trace[1].outcome,
            Outcome::Error,
            "{}",
            r.explain()
        );
        assert_eq!(r.decision.rule.as_deref(), Some("reserve-third"));
        assert_eq!(
            r.notes,
            ["rule reserve-third: not in the record, and its POST /reserve from res may change something at the merchant, so no other rule's answer stands in for it; it counted as an error"]
        );
    }
}

/// A rule whose call was edited (its path, method or upstream) gets no answer: the logged one
/// answered another call.
#[tokio::test]
async fn a_changed_call_gets_no_answer() {
    let stock = |path: &str, method: &str| {
        format!("upstreams:\n  shop: {{ url: \"http://shop.invalid\" }}\nrules:\n  - {{ name: stock, fetch: {{ upstream: shop, method: {method}, path: \"{path}\" }}, reason: x }}\n")
    };
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":1.0,"call":{"upstream":"shop","method":"GET","path":"/api/stock/order-1"},"upstream":{"status":200,"body":{"available":3}}}"#,
        "approve",
        "",
    );
    let (_dir, rules) = load_files(&[("default.yaml", &stock("/api/stock/{order_id}", "GET"))]);
    let r = again(&rules, &logged).await;
    assert!(!r.changed(), "{}", r.explain());
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    // The call is in the replay's trace too.
    let call = r.decision.trace[0].call.as_ref().unwrap();
    assert_eq!(call.to_string(), "GET /api/stock/order-1 from shop");

    for (path, method, now) in [
        (
            "/api/v2/stock/{tx_id}",
            "GET",
            "GET /api/v2/stock/imp_1 from shop",
        ),
        (
            "/api/stock/{order_id}",
            "POST",
            "POST /api/stock/order-1 from shop",
        ),
    ] {
        let (_dir, rules) = load_files(&[("default.yaml", &stock(path, method))]);
        let r = again(&rules, &logged).await;
        assert_first_rule_errs(&r, &format!("rule stock: its call changed (then GET /api/stock/order-1 from shop, now {now}): the record has no answer for it"));
    }

    // Logged with the digest of the rest of what was sent: a header, a body or a base URL
    // edited since is a changed call too, though its path is the same.
    let sent = &call.sent;
    let with_sent = logged.replace(
        r#""path":"/api/stock/order-1"}"#,
        &format!(r#""path":"/api/stock/order-1","sent":"{sent}"}}"#),
    );
    assert_ne!(with_sent, logged);
    assert!(!again(&rules, &with_sent).await.changed());
    let header = stock("/api/stock/{order_id}", "GET")
        .replace("fetch: {", "fetch: { headers: { x-key: \"b\" },");
    let url = stock("/api/stock/{order_id}", "GET").replace("shop.invalid", "shop.invalid/v2");
    for edited in [header, url] {
        let (_dir, rules) = load_files(&[("default.yaml", &edited)]);
        let r = again(&rules, &with_sent).await;
        assert_first_rule_errs(
            &r,
            "rule stock: its call changed (GET /api/stock/order-1 from shop, with other headers, another body or another base URL of its upstream): the record has no answer for it",
        );
    }
}

const TWO_GETS: &str = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: 'response.body.available > 0', reason: x }\n  - { name: stock-strict, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: 'response.body.available > 5', reason: y }\n";

/// A new GET identical to one the record has gets that answer (a GET changes nothing at the
/// merchant, so the answer stands), and the note says whose it was.
#[tokio::test]
async fn a_new_get_rule_gets_the_answer_to_the_same_get() {
    let (_dir, rules) = load_files(&[("default.yaml", TWO_GETS)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":1.0,"call":{"upstream":"shop","method":"GET","path":"/stock/order-1"},"upstream":{"status":200,"body":{"available":3}}}"#,
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.decision.rule.as_deref(),
        Some("stock-strict"),
        "{}",
        r.explain()
    );
    assert_eq!(r.decision.trace[1].outcome, Outcome::Reject);
    assert_eq!(
        r.notes,
        ["rule stock-strict: not in the record; it got the answer rule stock got to the same GET"]
    );
}

/// A GET started early then that no rule read is on record with its status (or failure),
/// not its body: the status stands in for a fetch without `require`, which it alone decides;
/// a fetch with `require` reads the body, which the record does not have.
#[tokio::test]
async fn a_get_started_early_then_stands_in_by_its_status() {
    let rules_yaml = |fast: &str| {
        format!("upstreams:\n  shop: {{ url: \"http://shop.invalid\" }}\nrules:\n  - {{ name: slow, fetch: {{ upstream: shop, path: /slow }}, require: 'false', reason: 느림, mode: shadow }}\n  - {{ name: fast, fetch: {{ upstream: shop, path: \"/nope/{{order_id}}\" }}{fast}, reason: 빠른 거절 }}\n")
    };
    let slow = r#"{"rule":"slow","outcome":"reject","ms":1500.0,"call":{"upstream":"shop","method":"GET","path":"/slow"},"upstream":{"status":200,"body":{}}}"#;
    let early = |outcome: &str| {
        format!(
            r#","unused_fetches":[{{"rule":"fast","call":{{"upstream":"shop","method":"GET","path":"/nope/order-1"}}{outcome}}}]"#
        )
    };
    let replayed = |fast: &'static str, outcome: &'static str| async move {
        let (_dir, rules) = load_files(&[("default.yaml", &rules_yaml(fast))]);
        again(&rules, &line(slow, "reject", &early(outcome))).await
    };

    let r = replayed("", r#","status":404"#).await;
    assert_eq!(r.decision.rule.as_deref(), Some("fast"), "{}", r.explain());
    assert_eq!(r.decision.reason.as_deref(), Some("빠른 거절"));
    assert_eq!(
        r.notes,
        ["rule fast: not in the record; it got the status (404) of its own GET started early then, which decides a fetch without require (its body is not on record: no rule read it, and a later rule reading it through fetched sees none)"]
    );
    let r = replayed("", r#","status":200"#).await;
    assert_eq!(r.decision.decision, Verdict::Approve, "{}", r.explain());
    // A later rule reading its body sees none: `()`, not an empty text.
    let peek = format!(
        "{}  - {{ name: peek, require: 'type_of(fetched[\"fast\"].body) == \"()\" && fetched[\"fast\"].status == 200', reason: 본문 }}\n",
        rules_yaml("")
    );
    let (_dir, rules) = load_files(&[("default.yaml", &peek)]);
    let r = again(&rules, &line(slow, "reject", &early(r#","status":200"#))).await;
    assert_eq!(r.decision.decision, Verdict::Approve, "{}", r.explain());

    let r = replayed(", require: 'response.body.ok'", r#","status":200"#).await;
    assert_rule_errs(
        &r,
        1,
        "rule fast: not in the record; the record has only the status (200) of its own GET started early then, not its body (no rule read it), and its require reads the answer; it counted as an error",
    );
    let r = replayed("", r#","error":"timed out after 1s""#).await;
    assert_rule_errs(
        &r,
        1,
        "rule fast: not in the record; it got the failure of its own GET started early then",
    );
    assert!(!r.unanswered, "a failure that came then stands in");
    let r = replayed("", "").await;
    assert_rule_errs(
        &r,
        1,
        "rule fast: not in the record, and its own GET started early then was still under way when the evaluation ended: the record has no upstream answer for it; it counted as an error",
    );
    assert!(r.unanswered);
}

/// A shadow rule cut off at the shadow cut-off then, enforced now: it takes the answer another
/// rule got to the same GET, or, with none, it has no answer and the note says why.
#[tokio::test(start_paused = true)]
async fn a_shadow_rule_cut_off_then_and_enforced_now() {
    let (_dir, rules) = load_files(&[("default.yaml", TWO_GETS)]);
    let cut = r#"{"rule":"stock-strict","outcome":"error","ms":0.1,"call":{"upstream":"shop","method":"GET","path":"/stock/order-1"},"error":"shadow rule cut off to keep the deadline for enforced rules (shadow rules may use only the first 2s of the 4s deadline)"}"#;
    let logged = line(
        &format!(
            r#"{{"rule":"stock","outcome":"pass","ms":1.0,"call":{{"upstream":"shop","method":"GET","path":"/stock/order-1"}},"upstream":{{"status":200,"body":{{"available":9}}}}}},{cut}"#
        ),
        "approve",
        r#","shadow":[{"rule":"stock-strict","outcome":"error"}]"#,
    );
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.decision.trace[1].outcome,
        Outcome::Pass,
        "{}",
        r.explain()
    );
    assert_eq!(
        r.notes,
        ["rule stock-strict: cut off as a shadow rule then; it got the answer rule stock got to the same GET"]
    );

    let alone = TWO_GETS.replace(
        "/stock/{order_id}\" }, require: 'response.body.available > 0'",
        "/other/{order_id}\" }, require: 'response.body.available > 0'",
    );
    let (_dir, rules) = load_files(&[("default.yaml", &alone)]);
    let logged = line(
        &format!(
            r#"{{"rule":"stock","outcome":"pass","ms":1.0,"call":{{"upstream":"shop","method":"GET","path":"/other/order-1"}},"upstream":{{"status":200,"body":{{"available":9}}}}}},{cut}"#
        ),
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.decision.trace[1].outcome,
        Outcome::Error,
        "{}",
        r.explain()
    );
    assert_eq!(
        r.notes,
        ["rule stock-strict: cut off as a shadow rule then, so the record has no answer for it; it counted as an error"]
    );
}

/// A shadow rule that was cut off then and is still one now is cut off again, with its own
/// failure, not another rule's answer; no note claims it had none — whether the log says
/// `shadow_error`, or `error` as logs written before that outcome did.
#[tokio::test(start_paused = true)]
async fn a_shadow_rule_still_shadow_gets_its_own_failure() {
    for logged_outcome in ["shadow_error", "error"] {
        shadow_rule_gets_its_own_failure(logged_outcome).await;
    }
}

async fn shadow_rule_gets_its_own_failure(logged_outcome: &str) {
    let shadow = TWO_GETS.replace("reason: y }", "reason: y, mode: shadow }");
    let (_dir, rules) = load_files(&[("default.yaml", &shadow)]);
    let logged = line(
        &format!(
            r#"{{"rule":"stock","outcome":"pass","ms":1.0,"upstream":{{"status":200,"body":{{"available":9}}}}}},{{"rule":"stock-strict","outcome":"{logged_outcome}","ms":0.1,"error":"shadow rule cut off to keep the deadline for enforced rules (shadow rules may use only the first 250ms of the 500ms deadline)"}}"#
        ),
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert!(!r.changed(), "{}", r.explain());
    let strict = &r.decision.trace[1];
    assert_eq!(strict.outcome, Outcome::ShadowError, "{}", r.explain());
    assert!(
        strict
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("shadow rule cut off")),
        "{strict:?}"
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}

/// The log's time has microseconds: a window limit inside a millisecond is judged on the
/// side it was, and an older record with milliseconds still reads.
#[tokio::test]
async fn a_window_limit_inside_a_millisecond_is_kept() {
    let window = |until: &str| {
        format!("rules:\n  - name: sale\n    window: {{ until: \"{until}\" }}\n    reason: \"판매 기간이 아닙니다\"\n")
    };
    let at = |time: &str| line("", "approve", "").replace("2026-11-25T07:51:02.114Z", time);
    for (time, until, open) in [
        (
            "2026-12-04T18:50:03.000400Z",
            "2026-12-04T18:50:03.0005Z",
            true,
        ),
        (
            "2026-12-04T18:50:03.000600Z",
            "2026-12-04T18:50:03.0005Z",
            false,
        ),
        (
            "2026-12-04T18:50:03.001Z",
            "2026-12-04T18:50:03.0005Z",
            false,
        ),
    ] {
        let (_dir, rules) = load_files(&[("default.yaml", &window(until))]);
        let r = again(&rules, &at(time)).await;
        assert_eq!(
            r.decision.decision == Verdict::Approve,
            open,
            "{time}: {}",
            r.explain()
        );
    }
    // The report shows the time fixed-width, also on a whole second.
    let (_dir, rules) = load_files(&[("default.yaml", &window("2026-01-01T00:00:00Z"))]);
    let r = again(&rules, &at("2026-12-04T18:45:25.000000Z")).await;
    assert!(
        r.explain()
            .starts_with("d-1 (default, order order-1, 2026-12-04T18:45:25.000000Z)\n"),
        "{}",
        r.explain()
    );
}

/// A record whose deadline passed before the first rule ran (the body came just before it) is
/// the ruleset's `on_error` answer, told from the record alone: it is decided again by the
/// `on_error` of the rules now, not by their checks, which would run with time to spare.
#[tokio::test]
async fn a_record_the_deadline_answered_before_any_rule_is_decided_by_on_error_again() {
    let rules_with = |settings: &str| {
        load_files(&[(
            "default.yaml",
            &format!("settings: {{ deadline: 1s{settings} }}\nrules:\n  - {{ name: limit, amount: {{ max: 10000 }}, reason: x }}\n"),
        )])
    };
    let (_dir, rules) = rules_with("");
    let refused = line("", "reject", "").replace(
        r#""status":200"#,
        r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.""#,
    );
    assert!(read(refused.as_bytes())
        .unwrap()
        .deadline_came_first(&rules));
    assert!(!again(&rules, &refused).await.changed());
    // A refusal by a rule is the rules' own; an approval at once is no deadline's.
    for other in [
        refused.replace(r#""trace":[]"#, r#""rule":"limit","trace":[]"#),
        line("", "approve", ""),
    ] {
        assert!(
            !read(other.as_bytes()).unwrap().deadline_came_first(&rules),
            "{other}"
        );
    }
    // Edited since: another reason, or `on_error: approve`, shows as the change it is.
    let (_dir, edited) = rules_with(", error_reason: \"시간 초과\"");
    let now = again(&edited, &refused).await;
    assert!(now.changed());
    assert_eq!(now.decision.reason.as_deref(), Some("시간 초과"));
    assert_eq!(now.decision.rule, None);
    let (_dir, approving) = rules_with(", on_error: approve");
    let now = again(&approving, &refused).await;
    assert_eq!(now.decision.decision.as_str(), "approve");
    // The change's block says why no rule ran.
    assert_eq!(now.notes, ["the deadline had passed before the first rule ran (the body came just before it), so the ruleset's on_error decided; it decides again as it is now"]);
    // An approval with an empty trace that took the deadline, whatever `on_error` is now.
    let late = line("", "approve", "").replace(r#""latency_ms":0.1"#, r#""latency_ms":995.2"#);
    assert!(read(late.as_bytes()).unwrap().deadline_came_first(&rules));
    let now = again(&rules, &late).await;
    assert_eq!(
        (now.decision.decision.as_str(), now.decision.rule.as_deref()),
        ("reject", None)
    );
    assert!(!again(&approving, &late).await.changed());
}

/// A record of a refusal with the default `error_reason` and `trace`.
fn error_refusal(trace: &str) -> String {
    line(trace, "reject", "").replace(
        r#""status":200"#,
        r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.""#,
    )
}

/// A record the server answered by `on_error` with the rules unfinished when the answer was
/// due (or finished late), its trace ending with the `(evaluation)` entry, is the deadline's:
/// decided by the `on_error` of the rules now, not by their checks.
#[tokio::test]
async fn a_record_answered_at_the_deadline_with_rules_unfinished_is_decided_by_on_error_again() {
    let rules_with = |settings: &str| {
        load_files(&[(
            "default.yaml",
            &format!("settings: {{ deadline: 1s{settings} }}\nrules:\n  - {{ name: limit, amount: {{ max: 10000 }}, reason: x }}\n"),
        )])
    };
    let (_dir, rules) = rules_with("");
    let late = error_refusal(
        r#"{"rule":"limit","outcome":"pass","ms":0.1},{"rule":"(evaluation)","outcome":"error","ms":1012.0,"error":"decided (approve) only after the answer was due, near the deadline of 1s: answered by on_error"}"#,
    );
    let record = read(late.as_bytes()).unwrap();
    assert!(record.overran() && !record.deadline_came_first(&rules));
    assert!(!again(&rules, &late).await.changed());
    let (_dir, approving) = rules_with(", on_error: approve");
    let now = again(&approving, &late).await;
    assert_eq!(now.decision.decision.as_str(), "approve");
    assert_eq!(now.notes, ["the rules had not finished by the deadline, so the ruleset's on_error decided; it decides again as it is now"]);
    assert!(!read(line("", "approve", "").as_bytes()).unwrap().overran());
}

/// A record of an evaluation that ended without an answer (it panicked: a bug) was refused
/// whatever `on_error` said; replay refuses it again rather than take it for the deadline's,
/// which under `on_error: approve` showed it as now approved (a code review).
#[tokio::test]
async fn a_record_of_an_evaluation_that_ended_without_an_answer_is_refused_again() {
    let (_dir, approving) = load_files(&[(
        "default.yaml",
        "settings: { on_error: approve }\nrules:\n  - { name: limit, amount: { max: 10000 }, reason: x }\n",
    )]);
    let refused = error_refusal(
        r#"{"rule":"(evaluation)","outcome":"error","ms":3.0,"error":"ended without an answer (a bug, logged as an error): refused whatever on_error says"}"#,
    );
    let record = read(refused.as_bytes()).unwrap();
    assert!(record.ended_without_answer() && !record.overran());
    let now = again(&approving, &refused).await;
    assert!(!now.changed(), "{}", now.explain());
    assert_eq!(now.notes, ["the evaluation ended without an answer (a bug in the proxy), so the payment was refused whatever on_error said; it is refused again, not replayed"]);
}

/// JSON that is no object is said to be no record plainly, not in serde's words.
#[test]
fn json_that_is_no_object_is_no_record() {
    for text in ["[]", "\"x\"", "3", "[1, 2]"] {
        assert_eq!(
            read(text.as_bytes()).unwrap_err(),
            "not a decision-log record: expected a JSON object",
            "{text}"
        );
    }
}

/// A `healthy` rule reads the logged state only of the probe it read then: a rule of the same
/// name that now reads another upstream, another probe path, or was a fetch then, gets the state
/// another rule of the record read of its probe, or none (an error, noted).
#[tokio::test]
async fn a_health_state_stands_in_only_for_the_same_probe() {
    let health = |upstream: &str, path: &str| {
        format!("upstreams:\n  shop: {{ url: \"http://shop.invalid\", health: {{ path: {path} }} }}\n  backup: {{ url: \"http://backup.invalid\", health: {{ path: /health }} }}\nrules:\n  - {{ name: shop-up, healthy: {upstream}, reason: 점검 }}\n")
    };
    let (_dir, rules) = load_files(&[("default.yaml", &health("shop", "/health"))]);
    // The probe as the engine traces it, read back from its own trace.
    let up = match &rules.get("default").unwrap().rules[0].check {
        Check::Healthy(up) => up.clone(),
        other => panic!("{other:?}"),
    };
    let probe = CallMade::probe(&up).unwrap();
    let probe = serde_json::to_string(&probe).unwrap();
    let logged = line(
        &format!(r#"{{"rule":"shop-up","outcome":"pass","ms":0.01,"probe":{probe}}}"#),
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert!(!r.changed(), "{}", r.explain());
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(
        r.decision.trace[0]
            .probe
            .as_ref()
            .map(|p| p.to_string())
            .as_deref(),
        Some("GET /health from shop")
    );

    for (edited, now) in [
        (health("backup", "/health"), "GET /health from backup"),
        (health("shop", "/healthz"), "GET /healthz from shop"),
    ] {
        let (_dir, rules) = load_files(&[("default.yaml", &edited)]);
        let r = again(&rules, &logged).await;
        assert_first_rule_errs(&r, &format!("rule shop-up: its health check changed (then GET /health from shop, now {now}), and no rule of the record read the health of {now}: the record has no health state for it; it counted as an error"));
    }
    // The same in words, but with another header: said so, not "then X, now X".
    let headed = health("shop", "/health").replace(
        "url: \"http://shop.invalid\",",
        "url: \"http://shop.invalid\", headers: { X-Probe: \"1\" },",
    );
    let (_headed_dir, headed) = load_files(&[("default.yaml", &headed)]);
    let r = again(&headed, &logged).await;
    assert_first_rule_errs(&r, "rule shop-up: its health check changed (GET /health from shop, with other headers or another base URL of its upstream), and no rule of the record read the health of GET /health from shop: the record has no health state for it; it counted as an error");

    // Logged as a fetch, a healthy rule now.
    let fetched = line(
        r#"{"rule":"shop-up","outcome":"pass","ms":1.0,"call":{"upstream":"shop","method":"GET","path":"/stock"},"upstream":{"status":200,"body":{}}}"#,
        "approve",
        "",
    );
    let r = again(&rules, &fetched).await;
    assert_first_rule_errs(&r, "rule shop-up: it read no health then (it made GET /stock from shop), and no rule of the record read the health of GET /health from shop: the record has no health state for it; it counted as an error");

    // A new rule reading a probe another rule of the record read gets that state.
    let renamed = logged.replace(r#""rule":"shop-up""#, r#""rule":"shop-alive""#);
    let r = again(&rules, &renamed).await;
    assert!(!r.changed(), "{}", r.explain());
    assert_eq!(r.notes, ["rule shop-up: not in the record; it got the health rule shop-alive read of the same probe (GET /health from shop)"]);

    // A log written before probes were traced stands the state of the same name in.
    let old = line(
        r#"{"rule":"shop-up","outcome":"reject","ms":0.01}"#,
        "reject",
        "",
    );
    let r = again(&rules, &old).await;
    assert_eq!(r.decision.rule.as_deref(), Some("shop-up"));
    assert!(r.notes.is_empty(), "{:?}", r.notes);

    // Audit: a rule its `when` skipped then (no probe in its entry, as in an old log) was taken
    // for an old log's, and went without its health unnoted and uncounted: it read none.
    let skipped = line(
        r#"{"rule":"shop-up","outcome":"skipped","ms":0.01}"#,
        "approve",
        "",
    );
    let r = again(&rules, &skipped).await;
    assert_first_rule_errs(&r, "rule shop-up: it read no health then (its when skipped it, or failed), and no rule of the record read the health of GET /health from shop: the record has no health state for it; it counted as an error");
    assert!(r.unanswered, "counted as on_error's guess");
}

/// A forward sends its upstream's headers: one edited since is a changed call, though the
/// forward's own headers and body are the request's.
#[test]
fn a_forward_digest_holds_its_upstreams_headers() {
    let forward = |key: &str| {
        format!("upstreams:\n  shop: {{ url: \"http://shop.invalid\", headers: {{ x-shop-key: \"{key}\" }} }}\nrules:\n  - {{ name: confirm, forward: {{ upstream: shop, path: /confirm }} }}\n")
    };
    let sent = |yaml: &str| {
        let (_dir, rules) = load_files(&[("default.yaml", yaml)]);
        let rule = &rules.get("default").unwrap().rules[0];
        let body = br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000}"#;
        let Ok(payload::Parsed::Confirm(req)) = payload::parse(Some("application/json"), body)
        else {
            panic!("not a confirm request");
        };
        call_of(rule, &req).unwrap().sent
    };
    assert_eq!(sent(&forward("right")), sent(&forward("right")));
    assert_ne!(sent(&forward("right")), sent(&forward("rihgt")));
}

/// A script reading an answer's headers is noted as `when` and `require` are.
#[tokio::test]
async fn headers_read_by_a_script_are_noted() {
    let rules_yaml = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    reason: x\n  - name: ctype\n    script: ctype.rhai\n";
    let script = "let h = fetched[\"stock\"][\"headers\"];\nif h[\"content-type\"] != \"application/json\" { return \"json 아님\"; }\ntrue\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml), ("ctype.rhai", script)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"pass","ms":3.0,"upstream":{"status":200,"body":{"available":3}}},{"rule":"ctype","outcome":"pass","ms":0.1}"#,
        "approve",
        "",
    );
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.notes,
        ["rule ctype reads response headers, which the log does not keep"],
        "{}",
        r.explain()
    );
}

/// A shadow rule cut off after its answer came (its `require` waiting for a turn to run Rhai)
/// left nothing in `fetched`: replayed as cut off again, so a rule reading `fetched` decides
/// as it did, rather than on the logged answer the paused clock would let it pass on.
#[tokio::test(start_paused = true)]
async fn a_shadow_rule_cut_off_after_its_answer_came_is_cut_off_again() {
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        r#"
settings: { deadline: 1s }
upstreams:
  shop: { url: "http://shop.invalid" }
rules:
  - name: trial
    mode: shadow
    fetch: { upstream: shop, path: "/api/stock/{order_id}" }
    require: '[1, 2].reduce(|s, x| s + x, 0) > 0'
    reason: trial
  - { name: reader, require: 'fetched["trial"] == ()', reason: "trial answer visible" }
"#,
    )]);
    let record = line(
        &format!(
            r#"{{"rule":"trial","outcome":"error","ms":500.0,"error":"require on the answer of shop (status 200): script stopped after 0 ms ({} (waiting for its turn to run Rhai))","upstream":{{"status":200,"body":{{"available":1}}}}}},{{"rule":"reader","outcome":"pass","ms":0.01}}"#,
            crate::engine::SHADOW_CUT_OFF
        ),
        "approve",
        r#","shadow":[{"rule":"trial","outcome":"error"}]"#,
    );
    let r = again(&rules, &record).await;
    assert_eq!(r.decision.decision, Verdict::Approve, "{}", r.explain());
    assert_eq!(
        r.notes,
        ["rule trial: cut off as a shadow rule then, after its answer came; cut off again, waiting for it"]
    );
}

/// Decision-log lines broken at random (a log cut, edited or corrupted): each is read or
/// refused with a reason, and replayed if read, never a panic.
mod mutations {
    use super::*;
    use crate::rules::yaml::mutate::{apply, edits};
    use proptest::prelude::*;

    const RULES_ALL: &str = "settings: { deadline: 1s }\nupstreams:\n  shop: { url: \"http://shop.invalid\", health: { path: /health } }\nrules:\n  - { name: shop-up, healthy: shop, reason: down }\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: 'response.body.available > 0', reason: sold out }\n  - { name: trial, amount: { max: 100 }, mode: shadow, reason: over }\n  - { name: existing, forward: { upstream: shop, path: /confirm } }\n";

    fn lines() -> [String; 3] {
        [
            line(
                r#"{"rule":"shop-up","outcome":"pass","ms":0.01,"probe":{"upstream":"shop","method":"GET","path":"/health"}},{"rule":"stock","outcome":"pass","ms":1.0,"call":{"upstream":"shop","method":"GET","path":"/stock/order-1"},"upstream":{"status":200,"body":{"available":3}}},{"rule":"trial","outcome":"shadow_reject","ms":0.01,"reason":"over"},{"rule":"existing","outcome":"pass","ms":2.0,"call":{"upstream":"shop","method":"POST","path":"/confirm"},"upstream":{"status":200,"body":"ok"}}"#,
                "approve",
                r#","shadow":[{"rule":"trial","outcome":"reject","reason":"over"}]"#,
            ),
            line(
                r#"{"rule":"shop-up","outcome":"pass","ms":0.01},{"rule":"stock","outcome":"error","ms":990.0,"call":{"upstream":"shop","method":"GET","path":"/stock/order-1"},"error":"deadline of 1s exceeded"}"#,
                "reject",
                r#","unused_fetches":[{"rule":"x","call":{"upstream":"shop","method":"GET","path":"/x"},"status":200}]"#,
            )
            .replacen(
                r#""status":200"#,
                r#""status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","rule":"stock""#,
                1,
            ),
            line(
                r#"{"rule":"shop-up","outcome":"pass","ms":0.01},{"rule":"stock","outcome":"reject","ms":1.0,"upstream":{"status":200,"body":{"available":0}},"reason":"sold out"}"#,
                "reject",
                "",
            )
            .replacen(
                r#""status":200"#,
                r#""status":409,"reason":"sold out","rule":"stock""#,
                1,
            ),
        ]
    }

    /// The lines broken below are whole records, replayed as they were decided.
    #[tokio::test(start_paused = true)]
    async fn the_lines_to_break_are_records() {
        let (_dir, rules) = load_files(&[("default.yaml", RULES_ALL)]);
        for line in lines() {
            let r = again(&rules, &line).await;
            assert!(!r.changed(), "{}", r.explain());
        }
    }

    proptest! {
        #![proptest_config(crate::rules::yaml::mutate::config())]

        #[test]
        fn a_log_line_broken_anyhow_is_read_or_refused(which in 0..3usize, edits in edits()) {
            let (_dir, rules) = load_files(&[("default.yaml", RULES_ALL)]);
            let broken = apply(&lines()[which], &edits);
            match read(broken.as_bytes()) {
                Err(e) => prop_assert!(!e.trim().is_empty()),
                Ok(record) if record.decided_by_rules() => {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .start_paused(true)
                        .build()
                        .unwrap();
                    let r = runtime.block_on(replay(&rules, &ScriptEngine::new(), record));
                    let _ = r.explain();
                }
                Ok(_) => {}
            }
        }
    }
}

/// A rule that errs in the replay and was not reached then is named with its error: an
/// expression failing on the request is its own, while a rule that reads health has no state
/// on record (an audit found such a note given for a payload check).
#[tokio::test]
async fn a_new_rules_error_is_named_by_what_it_lacks() {
    let logged = line(r#"{"rule":"a","outcome":"pass","ms":0.0}"#, "approve", "");
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        "rules:\n  - { name: a, amount: { max: 10000 }, reason: x }\n  - { name: qty, require: 'order_id.parse_int() < 3', reason: y }\n",
    )]);
    let r = again(&rules, &logged).await;
    assert_eq!(r.notes.len(), 1, "{}", r.explain());
    assert!(
        r.notes[0].starts_with(
            "rule qty: an error in the replay, where the log has the rule not reached ("
        ),
        "{}",
        r.explain()
    );
    let (_dir, rules) = load_files(&[(
        "default.yaml",
        "upstreams:\n  shop: { url: \"http://shop.invalid\", health: { path: /health } }\nrules:\n  - { name: a, amount: { max: 10000 }, reason: x }\n  - { name: up, healthy: shop, reason: y }\n",
    )]);
    let r = again(&rules, &logged).await;
    assert_eq!(
        r.notes,
        ["rule up: not in the record, and no rule of the record read the health of GET /health from shop: the record has no health state for it; it counted as an error"],
        "{}",
        r.explain()
    );
}

/// A decision counts as `on_error`'s guess only where the rule without a recorded answer
/// decided it: refusing by its own `on_error`, or letting an approval through by
/// `on_error: approve` — not where a later rule refused on its own check.
#[tokio::test]
async fn a_change_is_on_errors_guess_only_where_the_unanswered_rule_decides() {
    let logged = line(
        r#"{"rule":"limit","outcome":"pass","ms":0.01}"#,
        "approve",
        "",
    );
    let rules = |limit: u32, fraud_on_error: &str| {
        format!("upstreams: {{ shop: {{ url: \"http://shop.invalid\" }} }}\nrules:\n  - {{ name: fraud, fetch: {{ upstream: shop, path: /fraud }}, reason: f, on_error: {fraud_on_error} }}\n  - {{ name: limit, amount: {{ max: {limit} }}, reason: over }}\n")
    };
    for (limit, on_error, verdict, guessed) in [
        // The limit refuses on its own check: a real change.
        (1000, "approve", Verdict::Reject, false),
        // The approval rests on fraud's on_error: approve.
        (100000, "approve", Verdict::Approve, true),
        // fraud's own on_error refuses.
        (100000, "reject", Verdict::Reject, true),
    ] {
        let (_dir, loaded) = load_files(&[("default.yaml", &rules(limit, on_error))]);
        let r = again(&loaded, &logged).await;
        assert_eq!(r.decision.decision, verdict, "{}", r.explain());
        assert_eq!(r.unanswered, guessed, "{limit} {on_error}: {}", r.explain());
    }
    // A refusal by a rule that reads what fraud fetched rests on the answer the record lacks.
    let reads = "upstreams: { shop: { url: \"http://shop.invalid\" } }\nrules:\n  - { name: fraud, fetch: { upstream: shop, path: /fraud }, reason: f, on_error: approve }\n  - { name: limit, require: 'fetched.fraud?.status == 200', reason: over }\n";
    let (_dir, loaded) = load_files(&[("default.yaml", reads)]);
    let r = again(&loaded, &logged).await;
    assert_eq!(r.decision.decision, Verdict::Reject, "{}", r.explain());
    assert!(r.unanswered, "{}", r.explain());
}

/// A rule renamed whose GET (under its old name) the deadline caught unanswered then takes
/// that wait over, and the note says so, as for the rule's own call: an edited deadline is
/// not replayed there either.
#[tokio::test(start_paused = true)]
async fn a_renamed_rule_taking_over_a_wait_the_deadline_ended_says_so() {
    let rules_yaml = "settings: { deadline: 1s }\nupstreams:\n  shop: { url: \"http://shop.invalid\", timeout: 3s }\nrules:\n  - name: stock-check\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    reason: x\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    let logged = line(
        r#"{"rule":"stock","outcome":"error","ms":990.0,"call":{"upstream":"shop","method":"GET","path":"/stock/order-1"},"error":"deadline of 1s exceeded","deadline":true}"#,
        "reject",
        "",
    );
    let r = again(&rules, &logged).await;
    assert!(r.waited_again, "{}", r.explain());
    assert!(
        r.notes[0].starts_with("rule stock-check: not in the record; it got the failure rule stock got to the same GET; its call was still unanswered when the deadline came then"),
        "{:?}",
        r.notes
    );
}

/// A call that failed then fails again in the words the log has, not in words made up from
/// the upstream as the rules name it now (`connection refused by shop.invalid:80` read as if
/// the replay had gone to the network).
#[tokio::test]
async fn a_failure_is_replayed_in_the_words_of_the_log() {
    let rules_yaml = "settings: { on_error: approve }\nupstreams:\n  shop: { url: \"http://shop.invalid\", timeout: 3s }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    reason: x\n";
    let (_dir, rules) = load_files(&[("default.yaml", rules_yaml)]);
    for failure in [
        // Not the 3s of the rules now, which was never tried.
        "timed out after 1s",
        "connection refused by 127.0.0.1:48601",
        "DNS lookup failed for shop.example:443",
        "request failed: connection closed before message completed",
    ] {
        let logged = line(
            &format!(
                r#"{{"rule":"stock","outcome":"error","ms":3.0,"call":{{"upstream":"shop","method":"GET","path":"/stock/order-1"}},"error":"fetch from shop: {failure}"}}"#
            ),
            "approve",
            "",
        );
        let r = again(&rules, &logged).await;
        assert!(!r.changed(), "{}", r.explain());
        assert_eq!(
            r.decision.trace[0].error.as_deref(),
            Some(format!("fetch from shop: {failure}").as_str()),
            "{}",
            r.explain()
        );
    }
}
