//! A case whose rule failed by its own code fails, unless it lists the failure under
//! `expect.errors`: `on_error`'s answer is no refusal (or approval) by the rule's check.

use super::*;

const RULES: &str = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: numeric, require: \"order_id.parse_int() > 0\", reason: 숫자 }\n";

fn case(expect: &str) -> String {
    format!("ruleset: default\ncases:\n  - name: c\n    request: {{ imp_uid: i, merchant_uid: o-1, amount: 1000 }}\n    expect: {{ {expect} }}\n")
}

/// Asserts that `got` is one mismatch, starting with `start`.
#[track_caller]
fn assert_one(got: &[String], start: &str) {
    assert!(got.len() == 1 && got[0].starts_with(start), "{got:?}");
}

/// The result of the first case of `test` over `rules`.
async fn first_case(rules: &str, test: &str) -> CaseResult {
    let (_dir, rules, suites) = loaded(rules, test);
    let mut results = run(&rules, &suites.unwrap(), &ScriptEngine::new(), None).await;
    results.swap_remove(0)
}

async fn mismatches(rules: &str, test: &str) -> Vec<String> {
    first_case(rules, test).await.mismatches
}

#[tokio::test]
async fn a_rule_failing_by_its_code_fails_a_case_that_does_not_list_it() {
    // on_error refuses in the rule's name, as its check would have.
    let got = mismatches(RULES, &case("decision: reject, rule: numeric")).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("rule numeric failed, and on_error decided: ")
            && got[0].ends_with("; fix the rule or the case's request, or list the rule under expect.errors to test that"),
        "{got:?}"
    );
    // With on_error: approve, the approval would pass the case just as quietly.
    let approving = format!("settings: {{ on_error: approve }}\n{RULES}");
    assert_eq!(
        mismatches(&approving, &case("decision: approve"))
            .await
            .len(),
        1
    );

    // Listed, the failure is what the case tests; a list that differs says what failed.
    assert!(mismatches(
        RULES,
        &case("decision: reject, rule: numeric, errors: [numeric]")
    )
    .await
    .is_empty());
    assert_eq!(
        mismatches(RULES, &case("decision: reject, errors: []")).await,
        [r#"expected errors [], got ["numeric"]"#]
    );
}

/// Whose fault a failure is comes from how the check ended, not from its words: a script
/// named for a deadline, or throwing a text that mentions one, is the rule's own fault.
#[tokio::test]
async fn a_failure_is_the_rules_own_whatever_its_words() {
    let (dir, rules) = crate::rules::load_files(&[
        (
            "default.yaml",
            "rules:\n  - { name: preorder, script: scripts/preorder-deadline.rhai, reason: 마감 }\n",
        ),
        (
            "scripts/preorder-deadline.rhai",
            "if order_id == \"o-2\" { throw \"no delivery deadline\" }\norder_id.parse_int() > 0\n",
        ),
        (
            "tests/t.yaml",
            "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 1000 }\n    expect: { decision: reject, rule: preorder }\n  - name: b\n    request: { imp_uid: i, merchant_uid: o-2, amount: 1000 }\n    expect: { decision: reject, rule: preorder }\n",
        ),
    ]);
    let suites = load_suites(dir.path(), &rules).unwrap();
    let results = run(&rules, &suites, &ScriptEngine::new(), None).await;
    for r in &results {
        assert_one(
            &r.mismatches,
            "rule preorder failed, and on_error decided: ",
        );
    }
}

/// A `require` that fails on an answer that came whole and is JSON (its text ordered against
/// a number) is the rule's fault, even with `on_error: approve` deciding; over an answer that
/// is no JSON, the upstream's, which the case set up.
#[tokio::test]
async fn a_require_failing_on_a_good_answer_is_the_rules_own() {
    let rules = "settings: { on_error: approve }\nupstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: \"response.body.remaining >= 1\", reason: 매진 }\n";
    let test = |body: &str| {
        format!("ruleset: default\ncases:\n  - name: c\n    request: {{ imp_uid: i, merchant_uid: o-1, amount: 1000 }}\n    upstreams: {{ shop: {{ \"GET /stock/o-1\": {{ status: 200, body: {body} }} }} }}\n    expect: {{ decision: approve }}\n")
    };
    let got = mismatches(rules, &test("{ remaining: \"0\" }")).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("\"0\" >= 1: text is never ordered"),
        "{got:?}"
    );
    assert!(mismatches(rules, &test("\"sold out\"")).await.is_empty());
    // Nor is text naming a key twice, which `serve` does not read as JSON either (a review:
    // the test read it with a laxer reader, and blamed the rule).
    let twice = r#"'{"remaining":0,"remaining":5}'"#;
    assert!(mismatches(rules, &test(twice)).await.is_empty());
}

/// A rule whose `when` failed made no call: it is not said to lack a canned answer.
#[tokio::test]
async fn a_rule_whose_when_failed_is_not_said_to_lack_an_answer() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, when: \"order_id.parse_int() > 0\", fetch: { upstream: shop, path: \"/stock/{order_id}\" }, reason: 매진 }\n";
    let got = mismatches(rules, &case("decision: reject, rule: stock")).await;
    assert_one(&got, "rule stock failed, and on_error decided: ");
}

/// A shadow rule's failure, through a call the case has no answer for or its own code, fails
/// the case too (once, when `shadow` is given).
#[tokio::test]
async fn a_shadow_rule_that_fails_fails_the_case() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: trial, mode: shadow, fetch: { upstream: shop, path: \"/fraud/{order_id}\" }, reason: 의심 }\n  - { name: trial-code, mode: shadow, require: \"order_id.parse_int() > 0\", reason: 숫자 }\n";
    let uncanned = "rule trial calls shop with \"GET /fraud/o-1\", which the case has no canned answer for; add it to the case's upstreams (error: refused, dns or timeout to test on_error)";
    let got = mismatches(rules, &case("decision: approve")).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("shadow rule trial-code failed: "),
        "{got:?}"
    );
    assert_eq!(got[1], uncanned);

    let got = mismatches(rules, &case("decision: approve, shadow: []")).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("shadow rule trial failed: "), "{got:?}");
    assert!(
        got[1].starts_with("shadow rule trial-code failed: "),
        "{got:?}"
    );
    assert_eq!(got[2], uncanned);

    // Listed under errors, the code's failure is expected; the missing answer still is not.
    let got = mismatches(
        rules,
        &case("decision: approve, errors: [trial, trial-code]"),
    )
    .await;
    assert_eq!(got, [uncanned]);
}

/// Names in `expect.errors` are checked against the rules as `shadow`'s are, and neither list
/// may name a rule twice (each rule has one outcome in a case: the case could never pass).
#[test]
fn error_and_shadow_lists_name_rules_once() {
    let rules = "rules:\n  - { name: numeric, require: \"order_id.parse_int() > 0\", reason: 숫자 }\n  - { name: trial, mode: shadow, amount: { max: 10 }, reason: 큼 }\n  - { name: gone, mode: off, amount: { max: 10 }, reason: 큼 }\n";
    let (dir, _rules, suites) = loaded(
        rules,
        &case("decision: reject, errors: [numeric, nope, gone, numeric], shadow: [trial, trial]"),
    );
    let dir = format!("{}/", dir.path().display());
    let errors: Vec<String> = suites
        .expect_err("refused")
        .iter()
        .map(|e| e.to_string().replace(&dir, ""))
        .collect();
    assert_eq!(
        errors,
        [
            r#"tests/t.yaml:5:51: unknown rule "nope", ruleset "default" has rules numeric, trial, gone"#,
            r#"tests/t.yaml:5:57: rule "gone" has mode: off, so it never runs; name a rule here"#,
            r#"tests/t.yaml:5:63: rule "numeric" is named twice in expect.errors; each rule has one outcome in a case"#,
            r#"tests/t.yaml:5:89: rule "trial" is named twice in expect.shadow; each rule has one outcome in a case"#,
        ]
    );
}

/// A failing case shows what each rule sent and the answer it read: the cause of a refusal
/// over an answer's text where a number was meant is in view.
#[tokio::test]
async fn a_failing_case_shows_the_calls_and_answers() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: \"response.body.remaining >= 1\", reason: 매진 }\n";
    let test = "ruleset: default\ncases:\n  - name: c\n    request: { imp_uid: i, merchant_uid: o-1, amount: 1000 }\n    upstreams: { shop: { \"GET /stock/o-1\": { status: 200, body: { remaining: \"7\" } } } }\n    expect: { decision: approve }\n";
    let shown = first_case(rules, test).await.explain();
    assert!(
        shown.contains("\n      GET /stock/o-1 from shop: answered 200 {\"remaining\":\"7\"}\n"),
        "{shown}"
    );
}

/// A script stopped by what was left of the deadline (a canned delay took the rest) is the
/// deadline's business on the paused clock of a test as in `serve`: the ruleset's `on_error`
/// decides, not the rule's, and the case need not list it.
#[tokio::test]
async fn a_script_stopped_by_the_deadline_is_not_the_rules_fault() {
    let (dir, rules) = crate::rules::load_files(&[
        (
            "default.yaml",
            "settings: { deadline: 500ms, on_error: reject }\nupstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: /stock }, reason: 매진 }\n  - { name: slow, script: scripts/slow.rhai, on_error: approve, reason: 느림 }\n",
        ),
        ("scripts/slow.rhai", "let x = 0;\nloop { x += 1; }\n"),
        (
            "tests/t.yaml",
            "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 1000 }\n    upstreams: { shop: { \"GET /stock\": { status: 200, delay: 445ms } } }\n    expect: { decision: reject, rule: slow }\n",
        ),
    ]);
    let suites = load_suites(dir.path(), &rules).unwrap();
    let results = run(&rules, &suites, &ScriptEngine::new(), None).await;
    assert!(results[0].passed(), "{}", results[0].explain());
    let slow = &results[0].decision.trace[1];
    assert!(
        slow.error
            .as_deref()
            .is_some_and(|e| e.contains("(the request's deadline)")),
        "{slow:?}"
    );
}

/// A `require` failing on an answer that is no success (a canned 500 with a JSON body) is the
/// upstream's failure, which the case set up.
#[tokio::test]
async fn a_require_failing_on_an_error_answer_is_the_upstreams() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, require: \"response.body.stock.available >= 1\", reason: 매진 }\n";
    let test = "ruleset: default\ncases:\n  - name: c\n    request: { imp_uid: i, merchant_uid: o-1, amount: 1000 }\n    upstreams: { shop: { \"GET /stock/o-1\": { status: 500, body: { error: db down } } } }\n    expect: { decision: reject, rule: stock }\n";
    assert_eq!(mismatches(rules, test).await, Vec::<String>::new());
}

/// A failing case's block says the clock it ran on, in Korean time too: a `now` written in
/// UTC is nine hours from the Korean time a case's name speaks of.
#[tokio::test]
async fn a_failing_case_shows_its_clock_in_korean_time() {
    let rules = "rules:\n  - { name: w, window: { from: \"2026-12-10T10:00:00+09:00\", until: \"2026-12-11T00:00:00+09:00\" }, reason: x }\n";
    let test = "ruleset: default\nnow: \"2026-12-10T15:00:00Z\"\ncases:\n  - name: open at midnight\n    request: { imp_uid: i, merchant_uid: o, amount: 1000 }\n    expect: { decision: approve }\n";
    let block = first_case(rules, test).await.explain();
    assert!(
        block.contains("\n  now:    2026-12-10T15:00:00+00:00 (2026-12-11 00:00:00 in Korea)\n"),
        "{block}"
    );
}

/// A trial: a case expecting a script's refusal met a later rule's unset health, and the hint
/// to set it read as the fix; what the expected rule itself did comes first.
#[tokio::test]
async fn a_case_whose_expected_rule_let_the_request_through_says_so() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\", health: { path: /h } } }\nrules:\n  - { name: vip, when: 'order_id.starts_with(\"vip-\")', amount: { max: 10 }, reason: 한도 }\n  - { name: cap, amount: { max: 5000 }, reason: 한도, on_error: approve }\n  - { name: up, healthy: shop, reason: 점검 }\n";
    let got = mismatches(rules, &case("decision: reject, rule: cap")).await;
    assert_eq!(
        got[0],
        "expected rule cap, got up; cap ran and let this request through (its check passed), so a later rule decided"
    );
    assert!(
        got[1].starts_with("rule up reads the health of shop"),
        "{got:?}"
    );
    let got = mismatches(rules, &case("decision: reject, rule: vip")).await;
    assert_eq!(
        got[0],
        "expected rule vip, got up; vip was skipped, its when false for this request"
    );
}

/// An expected rule after the one that decided never ran: the case says which decided first,
/// not only which decided.
#[tokio::test]
async fn a_case_whose_expected_rule_was_not_reached_says_so() {
    let rules = "rules:\n  - { name: floor, amount: { min: 5000 }, reason: 하한 }\n  - { name: cap, amount: { max: 100 }, reason: 한도 }\n";
    let got = mismatches(rules, &case("decision: reject, rule: cap")).await;
    assert_eq!(
        got,
        ["expected rule cap, got floor; cap was not reached: floor decided first"]
    );
}

/// Shadow outcomes are compared as a list in rule order, which the message says: the same
/// names in another order read as a match.
#[tokio::test]
async fn shadow_outcomes_in_another_order_say_the_order_is_the_rules() {
    let rules = "rules:\n  - { name: a, mode: shadow, amount: { max: 10 }, reason: a }\n  - { name: b, mode: shadow, amount: { max: 20 }, reason: b }\n";
    let got = mismatches(rules, &case("decision: approve, shadow: [b, a]")).await;
    assert_eq!(
        got,
        [r#"expected shadow decisions ["b", "a"], got ["a", "b"] (listed in rule order)"#]
    );
}
