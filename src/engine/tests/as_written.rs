//! Values as the operator wrote them: amount bounds exact, canned answers like real ones.

use super::*;

/// A bound written with more digits than an `f64` holds (serde_yaml's reading of it) keeps
/// them all: 1000 is above a maximum of 999.99999999999999999, and below a minimum of
/// 1000.00000000000000001. The amount is exact; its bounds are too.
#[tokio::test]
async fn amount_bounds_are_exact_as_written() {
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: limit, amount: { max: 999.99999999999999999 }, reason: "over" }
"#,
    );
    let d = decide(&rules, &v1("order-1", "1000")).await;
    assert_eq!(summary(&d), refused("over", "limit"));

    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: floor, amount: { min: 1000.00000000000000001 }, reason: "under" }
"#,
    );
    let d = decide(&rules, &v1("order-1", "1000")).await;
    assert_eq!(summary(&d), refused("under", "floor"));

    // Each bound is its own rule's, however many the file has (they are read in one pass).
    let (_dir, rules) = ruleset(
        r#"
rules:
  - { name: any, amount: { min: 1, max: 5000000 }, reason: "range" }
  - { name: limit, amount: { max: 1000.00000000000000001 }, reason: "over" }
  - name: floor
    amount:
      min: 1000.00000000000000001
      max: 2000.5
    reason: "under"
"#,
    );
    let d = decide(&rules, &v1("order-1", "1000")).await;
    assert_eq!(summary(&d), refused("under", "floor"));
}

/// A canned answer written without a body (`{ status: 204 }`) is what a real answer without a
/// body gives rules (`response.body == ""`), so a rule that reads it is decided alike in its
/// test and by `serve`.
#[tokio::test]
async fn canned_answer_without_body_is_what_a_real_empty_answer_gives() {
    let canned: Canned = serde_yaml::from_str(
        r#"upstreams: { shop: { "POST /api/reserve/order-1": { status: 204 } } }"#,
    )
    .unwrap();
    let real_empty = crate::upstream::parse_body(b"", None, &[]);
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    require: 'response.status == 204 && response.body.is_empty()'
    reason: "not reserved"
"#
    ));
    let test_run = decide_with(&rules, V1, &Arc::new(canned)).await;
    let serve_run = decide_with(
        &rules,
        V1,
        &shop(
            "POST /api/reserve/order-1",
            CannedAnswer::status(204).body(real_empty.clone()),
        ),
    )
    .await;
    assert_eq!(
        summary(&test_run),
        summary(&serve_run),
        "rule test vs serve (real empty body is {real_empty:?}); test trace {:?}",
        test_run.trace
    );
}

/// The body the first rule of `rules`, a fetch, sends for a V1 request.
fn sent_body(rules: &Rules) -> String {
    let crate::rules::Check::Fetch(f) = &rules.get("default").unwrap().rules[0].check else {
        panic!("not a fetch");
    };
    let call = crate::engine::calls::fetch_call(f, &request(&v1("order-1", "1000")), None).unwrap();
    String::from_utf8(call.body.unwrap().to_vec()).unwrap()
}

/// A fetch body's numbers reach the merchant as the operator wrote them: serde_yaml reads one
/// with a fraction or exponent through an `f64`, which sent `10.50` as 10.5 and rounded a long
/// one. Integers (also those YAML writes in hex or with a sign) were always exact.
#[test]
fn fetch_body_numbers_are_sent_as_written() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: reserve
    fetch:
      upstream: shop
      method: POST
      path: /api/reserve
      body:
        price: 10.50
        parts: [0.1, 12345678901234567890.123]
        nested: {{ rate: 0.30, id: 123456789012345678901234567890, hex: 0x1F, plus: +5 }}
        order: "{{order_id}}"
    reason: r
"#
    ));
    assert_eq!(
        sent_body(&rules),
        r#"{"nested":{"hex":31,"id":123456789012345678901234567890,"plus":5,"rate":0.30},"order":"order-1","parts":[0.1,12345678901234567890.123],"price":10.50}"#
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Every JSON number spelling with a fraction or exponent, in a flow or a block mapping of a
    /// fetch body, is sent with its digits as written.
    #[test]
    fn any_fractional_body_number_is_sent_as_written(
        number in proptest::strategy::Strategy::prop_filter(
            r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
            "a fraction or exponent",
            |n: &String| n.contains(['.', 'e', 'E']),
        ),
        block in proptest::prelude::any::<bool>(),
    ) {
        let body = if block {
            format!("\n      body:\n        n: {number}\n        list:\n          - {number}\n")
        } else {
            format!(" body: {{ n: {number}, list: [{number}] }}\n")
        };
        let yaml = format!(
            "{SHOP}\nrules:\n  - name: reserve\n    reason: r\n    fetch:\n      upstream: shop\n      method: POST\n      path: /r\n     {body}"
        );
        let (_dir, rules) = ruleset(&yaml);
        // Its digits as written; an exponent is spelt `e+3` or `e-3` whatever its case or
        // sign were (serde_json's spelling of the same number).
        let sent: serde_json::Number = serde_json::from_str(&number).unwrap();
        let mantissa = number.split(['e', 'E']).next().unwrap();
        proptest::prop_assert!(sent.to_string().starts_with(mantissa), "{} {}", sent, number);
        proptest::prop_assert_eq!(
            sent_body(&rules),
            format!(r#"{{"list":[{sent}],"n":{sent}}}"#)
        );
    }
}
