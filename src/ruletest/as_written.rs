//! A rule test decides as `serve` decides the same request: its numbers sent as written.

use super::*;

/// Asserts that every case of the suites passes.
async fn assert_all_pass(rules: &Rules, suites: &[Suite], engine: &ScriptEngine) {
    for r in run(rules, suites, engine, None).await {
        assert!(r.passed(), "{}", r.explain());
    }
}

/// Loads `rules` and the rule test file `test`, and asserts that every case passes.
async fn passes(rules: &str, test: &str) {
    let (_dir, rules, suites) = loaded(rules, test);
    assert_all_pass(&rules, &suites.unwrap(), &ScriptEngine::new()).await;
}

/// A case's `request` mapping is sent with its numbers as written, not as the `f64`s serde_yaml
/// reads them as: `1000.000000000000000001` stays above `max: 1000`, refused by the test as by
/// `serve`.
#[tokio::test]
async fn case_request_amount_is_sent_as_written() {
    let (_dir, rules, suites) = loaded(
        "rules:\n  - { name: limit, amount: { max: 1000 }, reason: \"over {amount}\" }\n",
        "ruleset: default\ncases:\n  - name: just over\n    request: { imp_uid: i, merchant_uid: o, amount: 1000.000000000000000001 }\n    expect: { decision: reject, rule: limit }\n",
    );
    let suites = suites.unwrap();
    let engine = ScriptEngine::new();

    // What `serve` decides for the body as the case writes it.
    let body = br#"{"imp_uid":"i","merchant_uid":"o","amount":1000.000000000000000001}"#;
    let Ok(Parsed::Confirm(req)) = payload::parse(Some("application/json"), body) else {
        panic!("a confirm request")
    };
    let original = Original {
        body: bytes::Bytes::from_static(body),
        content_type: None,
        webhook_headers: Vec::new(),
    };
    let ctx = Context {
        scripts: &engine,
        upstreams: Arc::new(Canned::new()),
        now: chrono::Utc::now().fixed_offset(),
        started: tokio::time::Instant::now(),
        original: &original,
        decision_id: None,
        sent: None,
    };
    let served = evaluate(rules.get("default").unwrap(), &req, &ctx).await;
    assert_eq!(served.decision, Verdict::Reject, "serve refuses it");

    let results = run(&rules, &suites, &engine, None).await;
    assert!(
        results[0].passed(),
        "the rule test decided otherwise than serve: sent {:?}\n{}",
        String::from_utf8_lossy(&suites[0].cases[0].body),
        results[0].explain()
    );
}

/// Same, for the reason: `{amount}` renders as the body wrote it, `10.50` in the test as in
/// `serve` (not `10.5`).
#[tokio::test]
async fn case_request_amount_renders_as_written() {
    passes(
        "rules:\n  - { name: limit, amount: { max: 10 }, reason: \"over {amount}\" }\n",
        "ruleset: default\ncases:\n  - name: over\n    request: { imp_uid: i, merchant_uid: o, amount: 10.50 }\n    expect: { decision: reject, reason: \"over 10.50\" }\n",
    )
    .await;
}

/// A number beyond a float (`1e400`), which YAML hands over as a string, is sent as the number
/// the case writes, so `payload.qty > 10` holds in the test as in `serve`; quoted, it is text.
#[tokio::test]
async fn a_number_beyond_a_float_is_sent_as_a_number() {
    let (_dir, rules, suites) = loaded(
        "rules:\n  - { name: qty, require: 'type_of(payload.qty) == \"string\" || payload.qty <= 10', reason: \"수량 초과\" }\n",
        "ruleset: default\ncases:\n  - name: huge\n    request: { imp_uid: i, merchant_uid: o, amount: 5000, qty: 1e400 }\n    expect: { decision: reject, rule: qty }\n  - name: quoted\n    request: { imp_uid: i, merchant_uid: o, amount: 5000, qty: \"1e400\" }\n    expect: { decision: approve }\n",
    );
    let suites = suites.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&suites[0].cases[0].body),
        r#"{"amount":5000,"imp_uid":"i","merchant_uid":"o","qty":1e400}"#
    );
    assert_all_pass(&rules, &suites, &ScriptEngine::new()).await;
}

/// A canned answer's numbers are read as written, as `serve` reads the answer's JSON: a number
/// with more digits than any number type holds is text to Rhai in both, not the float 1.0
/// (which would pass `>= 1`), so the `require` fails and `on_error` refuses.
#[tokio::test]
async fn a_canned_answer_keeps_its_numbers_as_written() {
    passes(
        "upstreams:\n  shop: { url: \"http://shop.test\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: /stock }\n    require: 'response.body.v >= 1'\n    reason: 품절\n",
        "ruleset: default\ncases:\n  - name: just under one\n    request: { imp_uid: i, merchant_uid: o, amount: 5000 }\n    upstreams:\n      shop:\n        \"GET /stock\": { status: 200, body: { v: 0.99999999999999999999999999999, n: 10.50 } }\n    expect: { decision: reject, rule: stock, errors: [stock] }\n",
    )
    .await;
}

const SHOP: &str = "upstreams:\n  shop: { url: \"http://127.0.0.1:9\", timeout: 1s, headers: { Authorization: \"Bearer ${SHOP_TOKEN}\" } }\n";

/// A canned answer too large to read on the runtime's workers (more than 2,000 values) is
/// decided on, as `serve` decides on the real one: on the paused clock of `confirm-proxy test`
/// and replay, reading it on a thread of its own seemed to take until the deadline, and every
/// such case ended by `on_error`.
#[tokio::test(start_paused = true)]
async fn a_large_canned_answer_is_decided_on() {
    let pad = vec!["0"; 2100].join(", ");
    passes(
        &format!("settings: {{ on_error: reject, deadline: 3s }}\n{}rules:\n  - name: stock\n    on_error: approve\n    fetch: {{ upstream: shop, path: \"/api/stock/{{order_id}}\" }}\n    require: 'response.status == 200 && response.body.available >= 1'\n    reason: \"재고 없음\"\n", SHOP.replace("${SHOP_TOKEN}", "t")),
        &format!("ruleset: default\ncases:\n  - name: in stock\n    request: {{ imp_uid: i, merchant_uid: o3, amount: 1000 }}\n    upstreams: {{ shop: {{ \"GET /api/stock/o3\": {{ status: 200, body: {{ available: 1, pad: [{pad}] }} }} }} }}\n    expect: {{ decision: approve }}\n  - name: sold out\n    request: {{ imp_uid: i, merchant_uid: o3, amount: 1000 }}\n    upstreams: {{ shop: {{ \"GET /api/stock/o3\": {{ status: 200, body: {{ available: 0, pad: [{pad}] }} }} }} }}\n    expect: {{ decision: reject, rule: stock, reason: \"재고 없음\" }}\n"),
    )
    .await;
}

/// A canned answer's `${VAR}` secrets are masked before rules read it, as `serve` masks a real
/// answer's: a merchant that echoes the token gives the buyer `***`, in the test as live.
#[tokio::test]
async fn a_canned_answer_has_its_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "default.yaml",
        &format!("{SHOP}rules:\n  - name: auth\n    fetch: {{ upstream: shop, path: /me }}\n    reason: \"거절 {{response.body.error}}\"\n"),
    );
    write(
        "tests/t.yaml",
        "ruleset: default\ncases:\n  - name: echoed\n    request: { imp_uid: i, merchant_uid: o, amount: 1000 }\n    upstreams: { shop: { \"GET /me\": { status: 401, body: { error: \"invalid credentials: Bearer supersecret123\" } } } }\n    expect: { decision: reject, reason: \"거절 invalid credentials: Bearer ***\" }\n",
    );
    let env = |name: &str| match name {
        "SHOP_TOKEN" => Ok("supersecret123".to_owned()),
        _ => Err(std::env::VarError::NotPresent),
    };
    let engine = ScriptEngine::new();
    let opts = crate::rules::LoadOptions {
        engine: &engine,
        env: &env,
        previous: None,
    };
    let rules = crate::rules::load_dir(dir.path(), &opts).unwrap();
    let suites = load_suites(dir.path(), &rules).unwrap();
    assert_all_pass(&rules, &suites, &engine).await;
}

/// `amount: -0` in a case is sent as `-0`, as the file writes it (YAML reads it as the
/// integer 0): `{amount}` renders `-0` in the test as in `serve`.
#[tokio::test]
async fn a_negative_zero_is_sent_as_written() {
    passes(
        "rules:\n  - { name: limit, amount: { min: 1 }, reason: \"요청: {amount}원\" }\n",
        "ruleset: default\ncases:\n  - name: zero\n    request: { imp_uid: i, merchant_uid: o, amount: -0 }\n    expect: { decision: reject, reason: \"요청: -0원\" }\n",
    )
    .await;
}
