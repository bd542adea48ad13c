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
        ["rule stock calls shop with \"GET /stock/o-2\", which the case has no canned answer for; add it to the case's upstreams (error: refused, dns or timeout to test on_error)"]
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

/// The same for a `healthy` rule: without a health state the case sets, the state is unknown,
/// the rule errs, and `on_error` refuses as a case expecting the rule's refusal would.
#[tokio::test]
async fn a_healthy_rule_without_its_state_fails_the_case() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\", health: { path: /health } } }\nrules:\n  - { name: shop-up, healthy: shop, reason: 점검 중 }\n";
    let test = |health: &str| {
        format!("ruleset: default\ncases:\n  - name: down\n    request: {{ imp_uid: i, merchant_uid: o, amount: 1000 }}\n{health}    expect: {{ decision: reject, rule: shop-up }}\n")
    };
    let (_dir, loaded_rules, suites) = loaded(rules, &test(""));
    let results = run(&loaded_rules, &suites.unwrap(), &ScriptEngine::new(), None).await;
    assert_eq!(
        results[0].mismatches,
        ["rule shop-up reads the health of shop, which the case does not set; add health: { shop: up } (down, or unknown to test on_error)"]
    );
    for health in ["down", "unknown"] {
        let (_dir, loaded_rules, suites) =
            loaded(rules, &test(&format!("    health: {{ shop: {health} }}\n")));
        let results = run(&loaded_rules, &suites.unwrap(), &ScriptEngine::new(), None).await;
        assert!(results[0].passed(), "{health}: {}", results[0].explain());
    }
}
