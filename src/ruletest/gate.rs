//! `serve --test-on-reload`'s gate: the suites decide whether a generation goes live.

use std::time::{Duration, Instant};

use super::*;

/// Canned timeouts pass on the test's own clock: five cases waiting out a 3 s upstream timeout
/// hold a reload up for no 15 s (nor does each case's `on_error` wait for the real deadline).
#[test]
fn canned_timeouts_do_not_hold_up_the_gate() {
    let rules = "upstreams: { shop: { url: \"http://127.0.0.1:9\", timeout: 3s } }\nrules:\n  - { name: stock, fetch: { upstream: shop, path: /stock }, reason: 매진 }\n";
    let case = |n: usize| {
        format!("  - name: slow {n}\n    request: {{ imp_uid: i, merchant_uid: o-{n}, amount: 1000 }}\n    upstreams: {{ shop: {{ \"GET /stock\": {{ error: timeout }} }} }}\n    expect: {{ decision: reject, rule: stock }}\n")
    };
    let test = format!(
        "ruleset: default\ncases:\n{}",
        (0..5).map(case).collect::<String>()
    );
    let (dir, rules) =
        crate::rules::load_files(&[("default.yaml", rules), ("tests/t.yaml", &test)]);
    let started = Instant::now();
    let gated = gate(dir.path(), &rules, &ScriptEngine::new());
    let took = started.elapsed();
    assert_eq!(gated, Ok(Vec::new()));
    // 15 s of canned waiting on a real clock; generous for a loaded machine.
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A ruleset no suite names passes the gate unchecked, with a warning that says so.
#[test]
fn a_ruleset_without_tests_is_let_through_with_a_warning() {
    let rules = "rules:\n  - { name: limit, amount: { max: 1000 }, reason: 한도 }\n";
    let test = "ruleset: default\ncases:\n  - name: within\n    request: { imp_uid: i, merchant_uid: o, amount: 1000 }\n    expect: { decision: approve }\n";
    let (dir, loaded) = crate::rules::load_files(&[
        ("default.yaml", rules),
        ("presale.yaml", rules),
        ("tests/t.yaml", test),
    ]);
    let warnings = gate(dir.path(), &loaded, &ScriptEngine::new()).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].ends_with("presale.yaml: ruleset \"presale\" has no rule tests (no file under tests/ names it): --test-on-reload lets every edit of it go live untested"),
        "{warnings:?}"
    );
}
