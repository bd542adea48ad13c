//! A case whose rule had no canned answer fails, instead of passing on `on_error`'s refusal.

use super::*;

const RULES: &str = "upstreams: { shop: { url: \"http://127.0.0.1:9\" } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: \"/stock/{order_id}\" }, reason: 매진 }\n";

fn case(canned: &str) -> String {
    format!("ruleset: default\ncases:\n  - name: sold out\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 1000 }}\n    upstreams: {{ shop: {{ {canned} }} }}\n    expect: {{ decision: reject, rule: stock }}\n")
}

#[tokio::test]
async fn a_rule_without_its_canned_answer_fails_the_case() {
    // The canned path names another order: the rule errs, and on_error refuses as expected.
    let (_dir, rules, suites) = loaded(RULES, &case("\"GET /stock/o-1\": { status: 409 }"));
    let results = run(&rules, &suites.unwrap(), &ScriptEngine::new(), None).await;
    assert!(!results[0].passed());
    assert_eq!(
        results[0].mismatches,
        ["rule stock made a call the case has no canned answer for (fetch from shop: no canned answer for shop GET /stock/o-2); add it to the case's upstreams (error: refused, dns or timeout to test on_error)"]
    );

    // The answer it asks for, or the failure a case means to test, passes.
    for canned in [
        "\"GET /stock/o-2\": { status: 409 }",
        "\"GET /stock/o-2\": { error: refused }",
    ] {
        let (_dir, rules, suites) = loaded(RULES, &case(canned));
        let results = run(&rules, &suites.unwrap(), &ScriptEngine::new(), None).await;
        assert!(results[0].passed(), "{canned}: {}", results[0].explain());
    }
}

#[test]
fn the_missing_answer_error_reads_as_matched() {
    let e = crate::upstream::UpstreamError::NoCannedAnswer("shop GET /x".into());
    assert!(e.to_string().starts_with(NO_CANNED_ANSWER));
}
