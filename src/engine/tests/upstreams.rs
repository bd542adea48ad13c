//! Upstream checks: health, fetch, forward, what is called when, and the deadline.

use super::*;
use crate::rules::Health;
use crate::upstream::is_dot_segment;
use crate::upstream::{HttpCall, UpstreamError, UpstreamResponse};

// ---- fetch ----

/// A ruleset with one GET fetch rule `stock` (`require` optional) and a rule after it.
fn stock_rules(require: Option<&str>) -> (TempDir, Rules) {
    let require = require.map_or(String::new(), |r| format!("\n    require: '{r}'"));
    ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}{require}
    reason: "재고 없음 ({{response.body.available}}개 남음)"
  - {{ name: after, amount: {{ min: 1 }}, reason: x }}
"#
    ))
}

#[tokio::test]
async fn fetch_without_require_goes_by_status() {
    let (_dir, rules) = stock_rules(None);
    for status in [200, 204, 299] {
        let d = decide_with(&rules, V1, &stock(status, json!({}))).await;
        assert_eq!(summary(&d), APPROVED, "{status}");
    }
    // A status beyond HTTP's classes (600-999) is no 5xx: it refuses, as any other non-2xx.
    for status in [302, 404, 409, 600, 999] {
        let canned = shop(STOCK, answer(status, json!({"available": 0})));
        let d = decide_with(&rules, V1, &canned).await;
        let expected = refused("재고 없음 (0개 남음)", "stock");
        assert_eq!(summary(&d), expected, "{status}");
    }
    let d = decide_with(&rules, V1, &stock(503, json!("busy"))).await;
    assert_eq!(summary(&d), failed("stock"));
    assert_eq!(outcomes(&d), [("stock", "error")]);
    assert!(error_of(&d, "stock").contains("503"), "{d:?}");
}

#[tokio::test]
async fn fetch_require_reads_the_response() {
    let (_dir, rules) = stock_rules(Some(
        "response.status == 200 && response.body.available >= 1",
    ));
    let d = decide_with(&rules, V1, &stock(200, json!({"available": 3}))).await;
    assert_eq!(summary(&d), APPROVED);

    let d = decide_with(&rules, V1, &stock(200, json!({"available": 0}))).await;
    assert_eq!(summary(&d), refused("재고 없음 (0개 남음)", "stock"));

    // With require, the expression decides whatever the status.
    let (_dir, rules) = stock_rules(Some("response.status == 404"));
    let d = decide_with(&rules, V1, &stock(404, json!(null))).await;
    assert_eq!(summary(&d), APPROVED);
    let d = decide_with(&rules, V1, &stock(503, json!(null))).await;
    assert_eq!(summary(&d), refused("재고 없음 (개 남음)", "stock"));
}

/// JSON after a byte-order mark is JSON; an answer that is not JSON says why in the error of a
/// `require` that read it as JSON (compressed, nested too deep, broken).
#[tokio::test]
async fn why_an_answer_is_not_json_is_said() {
    let (_dir, rules) = stock_rules(Some("response.body.available >= 1"));
    let bom = shop(STOCK, answer(200, json!("\u{feff}{\"available\": 3}")));
    let d = decide_with(&rules, V1, &bom).await;
    assert_eq!(summary(&d), APPROVED);

    let deep = format!(
        "{{\"available\": 3, \"d\": {}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    for (canned, why) in [
        (
            answer(200, json!(deep)),
            ", its body not JSON: recursion limit exceeded",
        ),
        (
            answer(200, json!("{\"available\": 3,}")),
            ", its body not JSON: trailing comma",
        ),
        (
            answer(200, json!("\u{1f}\u{8b}binary")).header("Content-Encoding", "gzip"),
            ", its body compressed (gzip), which is not read as JSON",
        ),
        (answer(200, json!("")), ", its body empty"),
        (
            answer(200, json!("<html>점검 중</html>")).header("Content-Type", "text/html"),
            ", its body text (text/html), not JSON",
        ),
        (answer(200, json!("OK")), ", its body text, not JSON"),
    ] {
        let d = decide_with(&rules, V1, &shop(STOCK, canned)).await;
        assert_eq!(summary(&d), failed("stock"));
        let error = error_of(&d, "stock");
        assert!(error.contains(why), "{error}");
    }
}

/// A field of the answer in the reason is the merchant's text: capped like a merchant reason.
#[tokio::test]
async fn a_reason_from_the_response_is_capped() {
    let (_dir, rules) = stock_rules(Some("false"));
    let huge = "9".repeat(1 << 20);
    let d = decide_with(&rules, V1, &stock(200, json!({ "available": huge }))).await;
    // The placeholder's value is cut at 100 characters, like every value put into a reason.
    assert_eq!(
        d.reason.unwrap(),
        format!("재고 없음 ({}…개 남음)", "9".repeat(100))
    );
}

#[tokio::test]
async fn fetch_require_on_a_text_body_is_an_error() {
    let (_dir, rules) = stock_rules(Some("response.body.available >= 1"));
    let canned = shop(STOCK, answer(200, json!("<html>maintenance</html>")));
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), failed("stock"));
    assert_eq!(outcomes(&d), [("stock", "error")]);

    // The text is still there for a require that reads it as text.
    let (_dir, rules) = stock_rules(Some(r#"response.body.contains("maintenance")"#));
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
}

/// An answer may hold more than the sandbox lets a script value hold (here 80 KB of text in
/// one list): it is read field by field and counted all the same; a method called on
/// the whole list fails, saying what can be done instead.
#[tokio::test]
async fn an_answer_over_the_sandbox_limits_is_read_field_by_field() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    require: 'response.body.items[399].sku.len() == 200 && len(response.body.items) == 400'
    reason: x
  - name: later
    require: 'fetched.stock.body.items[0].sku != ""'
    reason: x
  - name: method
    require: 'fetched.stock.body.items.len() == 400'
    reason: x
"#
    ));
    let items: Vec<_> = (0..400).map(|_| json!({"sku": "s".repeat(200)})).collect();
    let d = decide_with(&rules, V1, &stock(200, json!({ "items": items }))).await;
    assert_eq!(
        outcomes(&d),
        [("stock", "pass"), ("later", "pass"), ("method", "error")]
    );
    let error = error_of(&d, "method");
    assert!(
        error.contains("length of string too large (sandbox limits: 64 KiB of text"),
        "{error}"
    );
    assert!(
        error.contains("counted with len(response.body.items)"),
        "{error}"
    );
}

#[tokio::test]
async fn fetched_answers_are_visible_to_later_rules() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: before
    require: 'fetched.len() == 0'
    reason: "not yet fetched"
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: enough
    require: 'fetched["stock"].body.available >= 2 && fetched["stock"].status == 200'
    reason: "only {{order_id}} left"
"#
    ));
    let d = decide_with(&rules, V1, &stock(200, json!({"available": 2}))).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        outcomes(&d),
        [("before", "pass"), ("stock", "pass"), ("enough", "pass")]
    );

    let d = decide_with(&rules, V1, &stock(200, json!({"available": 1}))).await;
    assert_eq!(summary(&d).3, Some("enough"));
}

#[tokio::test]
async fn fetch_transport_errors_use_on_error() {
    let (_dir, rules) = stock_rules(Some("response.status == 200"));
    for (error, cause) in [
        (
            CannedError::Refused,
            "connection refused by shop.invalid:80",
        ),
        (CannedError::Dns, "DNS lookup failed"),
        (CannedError::Timeout, "timed out after 2s"),
    ] {
        let canned = shop(
            STOCK,
            CannedAnswer::error(error).delay(Duration::from_millis(1)),
        );
        let d = decide_with(&rules, V1, &canned).await;
        assert_eq!(summary(&d), failed("stock"), "{error:?}");
        assert!(error_of(&d, "stock").contains(cause), "{d:?}");
    }
    let d = decide(&rules, V1).await;
    assert!(
        error_of(&d, "stock").contains("no answer on file for shop GET /api/stock/order-1"),
        "{d:?}"
    );
}

#[tokio::test]
async fn fetch_requests_are_rendered_from_templates() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: reserve
    fetch:
      upstream: shop
      method: POST
      path: "/api/orders/{{order_id}}/reserve"
      query: {{ tx: "{{tx_id}}" }}
      headers: {{ X-Order: "{{order_id}}" }}
      body: {{ order: "{{order_id}}", amount: "{{amount}}", qty: 1 }}
    reason: x
"#
    ));
    let body = r#"{"imp_uid":"imp 1&2","merchant_uid":"a/b c","amount":50000}"#;
    let key = "POST /api/orders/a%2Fb%20c/reserve?tx=imp+1%262";
    let canned = shop(key, CannedAnswer::status(201));
    let d = decide_with(&rules, body, &canned).await;
    assert_eq!(summary(&d), APPROVED, "{:?}", canned.calls());
    let call = &canned.calls()[0];
    assert_eq!(call.headers["x-order"], "a/b c");
    assert_eq!(call.headers["content-type"], "application/json");
    let sent: serde_json::Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    assert_eq!(sent, json!({"order": "a/b c", "amount": "50000", "qty": 1}));
}

#[tokio::test]
async fn an_id_that_would_leave_the_fetch_path_is_an_error_and_nothing_is_sent() {
    // Audit: order id ".." turned GET /api/stock/.. into GET /api, which passed on its 200.
    let (_dir, rules) = stock_rules(None);
    for order_id in [".", ".."] {
        let canned = shop("GET /api", answer(200, json!({})));
        let d = decide_with(&rules, &v1(order_id, "50000"), &canned).await;
        assert_eq!(summary(&d), failed("stock"), "{order_id}");
        assert!(
            canned.calls().is_empty(),
            "{order_id}: {:?}",
            canned.calls()
        );
        let error = error_of(&d, "stock");
        assert!(
            error.contains("would leave the path"),
            "{order_id}: {error}"
        );
    }
    // Review: it was the rule's on_error that decided, so `on_error: approve` (meant for a
    // stock API that is down) let an order id the buyer's browser chose skip the check. The
    // request's own values are refused, whatever on_error says; so is a header they broke.
    let (_dir, lenient) = ruleset(&format!(
        "{SHOP}\nrules:\n  - {{ name: stock, on_error: approve, fetch: {{ upstream: shop, path: \"/api/stock/{{order_id}}\", headers: {{ X-Order: \"{{order_id}}\" }} }}, reason: x }}\n"
    ));
    for order_id in ["..", r"a\nb", " A-100"] {
        let canned = shop("GET /api", answer(200, json!({})));
        let d = decide_with(&lenient, &v1(order_id, "50000"), &canned).await;
        assert_eq!(summary(&d), failed("stock"), "{order_id:?}");
        assert!(canned.calls().is_empty(), "{order_id:?}");
    }
    // Dots inside a segment are just characters (and `%` in an id is escaped as `%25`).
    let escaped = shop("GET /api/stock/%252e%252e", answer(200, json!({})));
    let d = decide_with(&rules, &v1("%2e%2e", "50000"), &escaped).await;
    assert_eq!(summary(&d), APPROVED);
    for order_id in ["...", "a..b", ".x"] {
        let canned = shop(
            &format!("GET /api/stock/{order_id}"),
            answer(200, json!({})),
        );
        let d = decide_with(&rules, &v1(order_id, "50000"), &canned).await;
        assert_eq!(summary(&d), APPROVED, "{order_id}");
    }
}

#[tokio::test]
async fn a_header_value_a_request_field_made_invalid_is_an_error_and_nothing_is_sent() {
    // Security review: the header used to be left out, so the upstream answered a different
    // question than the rule asks.
    let (_dir, rules) = stock_with_header(r#"X-Order: "{order_id}""#);
    let canned = shop("GET /api/stock", answer(200, json!({})));
    let d = decide_with(&rules, &v1(r"a\nb", "50000"), &canned).await;
    assert_eq!(summary(&d), failed("stock"));
    assert!(canned.calls().is_empty(), "{:?}", canned.calls());
    let error = error_of(&d, "stock");
    assert!(error.contains("fetch header x-order"), "{error}");
    // So is an id the upstream would read as another: spaces and tabs at its ends, which
    // readers drop (` A-100` read as order `A-100`).
    for order_id in [" A-100", "A-100\\t"] {
        let d = decide_with(&rules, &v1(order_id, "50000"), &canned).await;
        assert_eq!(summary(&d), failed("stock"), "{order_id:?}");
        let error = error_of(&d, "stock");
        assert!(
            error.contains("the upstream would read another value"),
            "{error}"
        );
    }
    assert!(canned.calls().is_empty(), "{:?}", canned.calls());
    // The same rule with a plain id sends the header.
    let d = decide_with(&rules, &v1("a-b", "50000"), &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(canned.calls()[0].headers["x-order"], "a-b");
    // Text beyond ASCII goes as its UTF-8 bytes.
    let d = decide_with(&rules, &v1("주문-1", "50000"), &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        canned.calls()[1].headers["x-order"].as_bytes(),
        "주문-1".as_bytes()
    );
    // A space the template's own text leaves at an end (no store id in V1) is no field's: it
    // is dropped, as a reader would, and the header sent.
    let (_dir, rules) = stock_with_header(r#"X-Ids: "{order_id} {store_id}""#);
    let canned = shop("GET /api/stock", answer(200, json!({})));
    let d = decide_with(&rules, &v1("a-b", "50000"), &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(canned.calls()[0].headers["x-ids"], "a-b");
}

/// A ruleset whose one rule GETs `/api/stock` with the fetch header `header` (`Name: "value"`).
fn stock_with_header(header: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        "{SHOP}\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /api/stock, headers: {{ {header} }} }}\n    reason: x\n"
    ))
}

#[test]
fn dot_segments_are_recognised_in_every_spelling() {
    for s in [".", "..", "%2e", "%2E", ".%2e", "%2e.", "%2E%2e"] {
        assert!(is_dot_segment(s), "{s}");
    }
    for s in ["", "...", "a", ".a", "%2e%2e%2e", "%2", "%2f", "%2e%2"] {
        assert!(!is_dot_segment(s), "{s}");
    }
}

// ---- forward ----

const FORWARD: &str = "POST /payments/confirm";

/// Header lines as a request brought them, in order.
fn headers(lines: &[(&'static str, &'static str)]) -> Vec<(http::HeaderName, http::HeaderValue)> {
    lines
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            )
        })
        .collect()
}

fn forward_rules(reason: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        "{SHOP}rules:\n  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }}{reason} }}\n"
    ))
}

#[tokio::test]
async fn forward_answers_decide() {
    let (_dir, rules) = forward_rules(", reason: \"기존 확인 거절\"");
    let own = Some("기존 확인 거절");
    let cases = [
        (200, json!({"anything": true}), None),
        (409, json!({"reason": "재고 없음"}), Some("재고 없음")),
        (400, json!({"errorMessage": "한도 초과"}), Some("한도 초과")),
        (409, json!({"message": "ignored"}), own),
        (409, json!({"reason": "  "}), own),
        // A blank `reason` does not hide the other key's text.
        (
            409,
            json!({"reason": "", "errorMessage": "품절"}),
            Some("품절"),
        ),
        // Line breaks become spaces; control and text-direction characters are left out.
        (
            409,
            json!({"reason": "재고\n없음\u{202e}\u{0}\u{9b}"}),
            Some("재고 없음"),
        ),
        // Zero-width spaces are left out too; the joiners that build an emoji stay.
        (
            409,
            json!({"reason": "재고\u{200b}없음\u{feff}\u{2060} 👩\u{200d}💻"}),
            Some("재고없음 👩\u{200d}💻"),
        ),
        // A line separator alone is a line break too.
        (
            409,
            json!({"reason": "재고\u{2028}없음"}),
            Some("재고 없음"),
        ),
        (503, json!("Service Unavailable"), own),
        (201, json!({}), own),
    ];
    for (status, body, reason) in cases {
        let d = decide_with(&rules, V1, &shop(FORWARD, answer(status, body))).await;
        let expected = match reason {
            None => APPROVED,
            Some(r) => refused(r, "existing"),
        };
        assert_eq!(summary(&d), expected, "{status}");
    }

    let down = shop(FORWARD, CannedAnswer::error(CannedError::Refused));
    let d = decide_with(&rules, V1, &down).await;
    assert_eq!(summary(&d), failed("existing"));

    let (_dir, rules) = forward_rules("");
    let d = decide_with(&rules, V1, &shop(FORWARD, answer(409, json!({})))).await;
    assert_eq!(summary(&d), refused(DEFAULT_REASON, "existing"));

    // A reason of a megabyte is passed on cut to 500 characters.
    let huge = "재".repeat(1 << 20);
    let d = decide_with(
        &rules,
        V1,
        &shop(FORWARD, answer(409, json!({ "reason": huge }))),
    )
    .await;
    let reason = d.reason.unwrap();
    assert_eq!(reason.chars().count(), 501);
    assert_eq!(reason, format!("{}…", "재".repeat(500)));
}

#[tokio::test]
async fn forward_passes_the_original_request_unchanged() {
    let (_dir, rules) = forward_rules("");
    let body = "{ \"payment_id\": \"order-1\",\n  \"tx_id\": \"tx-1\", \"total_amount\": 1000 }";
    let webhook = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", "1733022000"),
        ("webhook-signature", "v1,c2lnbmF0dXJl"),
    ];
    let original = Original {
        body: Bytes::from(body),
        content_type: Some(http::HeaderValue::from_static(
            "application/json; charset=UTF-8",
        )),
        webhook_headers: headers(&webhook),
    };
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let d = decide_full(&rules, body, canned.clone(), NOW, &original).await;
    assert_eq!(summary(&d), APPROVED);

    let calls = canned.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.key(), FORWARD);
    assert_eq!(call.body.as_deref(), Some(body.as_bytes()));
    assert_eq!(
        call.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    for (name, value) in webhook {
        assert_eq!(call.headers[name], value);
    }

    // A request without a Content-Type is forwarded as JSON (SPEC §9).
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let bare = Original {
        content_type: None,
        ..original
    };
    decide_full(&rules, body, canned.clone(), NOW, &bare).await;
    assert_eq!(
        canned.calls()[0].headers["content-type"],
        "application/json"
    );
    // Unless it was read as a form: then it is labelled as one.
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let form = "imp_uid=imp_1&merchant_uid=order-1&amount=5000";
    decide_full(&rules, form, canned.clone(), NOW, &bare).await;
    assert_eq!(
        canned.calls()[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
}

// ---- what is called, and when ----

#[tokio::test]
async fn side_effects_wait_for_earlier_rules() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - {{ name: closed, require: 'false', reason: "closed" }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}", body: {{ qty: 1 }} }}
    reason: x
  - name: reserved
    fetch: {{ upstream: shop, path: "/api/reserved/{{order_id}}" }}
    reason: x
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", STOCK, CannedAnswer::status(200))
            .answer(
                "shop",
                "POST /api/reserve/order-1",
                CannedAnswer::status(200),
            )
            .answer("shop", FORWARD, CannedAnswer::status(200)),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), refused("closed", "closed"));
    // The GET fetch before the POST started early (no side effects); the POST fetch and the
    // forward never did, nor did the GET after the POST, which waits for what it changes.
    assert_eq!(keys(&canned), [STOCK]);
}

/// How long the V1 example, which `canned` must let through, took to decide on the paused
/// clock.
async fn approval_time(rules: &Rules, canned: &Arc<Canned>) -> Duration {
    let started = tokio::time::Instant::now();
    let d = decide_with(rules, V1, canned).await;
    assert_eq!(summary(&d), APPROVED);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn get_fetches_run_concurrently_and_writes_in_order() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - {{ name: between, amount: {{ min: 1 }}, reason: x }}
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
"#
    ));
    let canned =
        Canned::new()
            .answer("shop", STOCK, ok_after(300))
            .answer("shop", LIMITS, ok_after(300));
    let canned = Arc::new(canned);
    assert_eq!(
        approval_time(&rules, &canned).await,
        Duration::from_millis(300)
    );
    assert_eq!(keys(&canned), [STOCK, LIMITS]);

    // A POST fetch starts only after the rules before it passed: the times add up.
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    reason: x
"#
    ));
    let canned = Canned::new().answer("shop", STOCK, ok_after(300)).answer(
        "shop",
        "POST /api/reserve/order-1",
        ok_after(300),
    );
    let canned = Arc::new(canned);
    assert_eq!(
        approval_time(&rules, &canned).await,
        Duration::from_millis(600)
    );

    // GET fetches after the POST start when it is answered, together.
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    reason: x
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
"#
    ));
    let canned = Canned::new()
        .answer("shop", "POST /api/reserve/order-1", ok_after(300))
        .answer("shop", STOCK, ok_after(300))
        .answer("shop", LIMITS, ok_after(300));
    let canned = Arc::new(canned);
    assert_eq!(
        approval_time(&rules, &canned).await,
        Duration::from_millis(600)
    );
    assert_eq!(keys(&canned), ["POST /api/reserve/order-1", STOCK, LIMITS]);
}

/// Audit: a GET fetch behind a `when` that skips the payment was sent all the same as the
/// request arrived (a ruleset with a stock fetch per event asked every event's stock on every
/// payment), and a `forward` its `when` skips held back the GETs after it. A `when` of the
/// simple shapes is known up front; so is one that needs Rhai but reads the request alone
/// (not `fetched`), evaluated as the request arrives, once. One that reads `fetched` is not,
/// and its fetch still starts early (see `prefetches_that_decided_nothing_are_recorded`).
#[tokio::test(start_paused = true)]
async fn a_call_its_when_skips_is_neither_made_nor_waited_for() {
    for (marathon, concert) in [
        // Run without Rhai.
        (
            r#"order_id.starts_with("marathon-")"#,
            r#"order_id.starts_with("concert-")"#,
        ),
        // Through Rhai.
        (
            r#"order_id.starts_with("marathon-") && amount >= 50000"#,
            r#"order_id.starts_with("concert-") || store_id == "hall""#,
        ),
    ] {
        let (_dir, rules) = ruleset(&format!(
            r#"{SHOP}
rules:
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
  - name: marathon
    when: '{marathon}'
    fetch: {{ upstream: shop, path: "/api/marathon/{{order_id}}" }}
    reason: 마감
  - name: concert
    when: '{concert}'
    forward: {{ upstream: shop, path: /payments/confirm }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
        ));
        let canned = Canned::new().answer("shop", LIMITS, ok_after(300)).answer(
            "shop",
            STOCK,
            ok_after(300),
        );
        let canned = Arc::new(canned);
        assert_eq!(
            approval_time(&rules, &canned).await,
            Duration::from_millis(300),
            "the stock fetch waited for the skipped forward ({concert})"
        );
        assert_eq!(keys(&canned), [LIMITS, STOCK], "{marathon}");
    }
}

/// A `when` that fails as the request arrives is left to its rule: its fetch is sent as any
/// other GET's, and the rule meets the error in its turn, for `on_error`.
#[tokio::test(start_paused = true)]
async fn a_rhai_when_that_fails_early_fails_in_its_turn() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: odd
    when: 'amount / 0 > 1'
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
    ));
    let canned = Arc::new(Canned::new().answer("shop", STOCK, ok_after(10)));
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(outcomes(&d), [("odd", "error")]);
    assert!(
        error_of(&d, "odd").contains("when"),
        "{}",
        error_of(&d, "odd")
    );
    assert_eq!(keys(&canned), [STOCK]);
}

// ---- the deadline ----

fn slow_stock_rules(settings: &str) -> (TempDir, Rules) {
    ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms, {settings} }}
rules:
  - {{ name: first, amount: {{ min: 1 }}, reason: x }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    on_error: approve
    reason: x
  - {{ name: never, require: 'false', reason: "never" }}
"#
    ))
}

#[tokio::test(start_paused = true)]
async fn deadline_ends_the_evaluation_and_on_error_decides() {
    let slow = || shop(STOCK, ok_after(10_000));

    let (_dir, rules) = slow_stock_rules("error_reason: \"잠시 후 다시 시도해 주세요\"");
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &slow()).await;
    // Decided a margin (5 ms of 200 ms) early, so that the answer leaves before it.
    assert_eq!(started.elapsed(), Duration::from_millis(195));
    // The ruleset's on_error decides, not the rule's own `on_error: approve`.
    assert_eq!(summary(&d), refused("잠시 후 다시 시도해 주세요", "stock"));
    assert_eq!(outcomes(&d), [("first", "pass"), ("stock", "error")]);
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");
    // An enforced rule caught by the deadline is not a shadow outcome (the log line and the
    // decision log would report `shadow=stock:error`).
    assert!(d.shadow.is_empty(), "{:?}", d.shadow);

    let (_dir, rules) = slow_stock_rules("on_error: approve");
    let started = tokio::time::Instant::now();
    let d = decide_with(&rules, V1, &slow()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(195));
    assert_eq!(summary(&d), ("approve", 200, None, Some("stock")));
    assert_eq!(outcomes(&d), [("first", "pass"), ("stock", "error")]);
}

#[tokio::test(start_paused = true)]
async fn deadline_counts_from_arrival() {
    let (_dir, rules) = slow_stock_rules("on_error: reject");
    let started = tokio::time::Instant::now();
    // The request arrived 100ms ago (reading and verifying it took time).
    let d = decide_arrived(
        &rules,
        shop(STOCK, ok_after(150)),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(started.elapsed(), Duration::from_millis(95));
    assert_eq!(summary(&d).3, Some("stock"));
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");
}

/// A prefetch whose task had not begun when the evaluation ended (an earlier rule decided at
/// once) is stopped before it sends anything, and left out of the record: the merchant's API
/// cannot have seen it. (On this single-threaded runtime the evaluation never yields to it.)
#[tokio::test]
async fn a_prefetch_that_never_began_is_not_sent_nor_recorded() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - {{ name: first, amount: {{ min: 100000000 }}, reason: "한도 미달" }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
    ));
    let upstreams = Arc::new(Hanging::default());
    let begun = upstreams.begun.clone();
    let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
    assert_eq!(summary(&d), refused("한도 미달", "first"));
    assert_eq!(d.unused_fetches, [], "{:?}", d.unused_fetches);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(begun.load(Ordering::SeqCst), 0, "the call was sent");
}

/// An upstream that never answers and counts its calls still in flight, and the calls it
/// began (a call's future polled: the point where a real one sends its request).
#[derive(Default)]
struct Hanging {
    in_flight: Arc<AtomicUsize>,
    begun: Arc<AtomicUsize>,
}

/// One call in flight; dropping it (cancelling the call) ends it.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstreams for Hanging {
    fn call(
        &self,
        _: Arc<Upstream>,
        _: HttpCall,
    ) -> BoxFuture<Result<UpstreamResponse, UpstreamError>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let in_flight = InFlight(self.in_flight.clone());
        let begun = self.begun.clone();
        Box::pin(async move {
            let _in_flight = in_flight;
            begun.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        })
    }

    fn health(&self, _: &Upstream) -> Health {
        Health::Unknown
    }

    fn probe_failure(&self, _: &Upstream) -> Option<Arc<str>> {
        None
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_cancels_every_call_in_flight() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms }}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    reason: x
"#
    ));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let upstreams = Arc::new(Hanging {
        in_flight: in_flight.clone(),
        ..Default::default()
    });
    let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
    assert_eq!(error_of(&d, "stock"), "deadline of 200ms exceeded");
    // The call the deadline cut off is traced with its rule; the one never read is recorded
    // as cancelled.
    let call = |c: Option<&crate::decision::CallMade>| c.map(|c| c.path.clone());
    assert_eq!(
        call(d.trace[0].call.as_ref()),
        Some("/api/stock/order-1".into())
    );
    assert_eq!(d.unused_fetches.len(), 1, "{:?}", d.unused_fetches);
    let limits = &d.unused_fetches[0];
    assert_eq!(call(Some(&limits.call)), Some("/api/limits/order-1".into()));
    assert_eq!((limits.status, limits.error.as_deref()), (None, None));
    // Both prefetches were started; the one being awaited must be cancelled too.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}

/// A call the rule sent itself (not prefetched), still unanswered at the deadline, is traced
/// with the rule: the record says the merchant was sent it, not only that time ran out.
#[tokio::test(start_paused = true)]
async fn a_sent_call_cut_off_by_the_deadline_is_traced() {
    for (check, path) in [
        (
            "forward: { upstream: shop, path: /payments/confirm }",
            "/payments/confirm",
        ),
        (
            r#"fetch: { upstream: shop, method: POST, path: "/api/reserve/{order_id}" }"#,
            "/api/reserve/order-1",
        ),
    ] {
        let (_dir, rules) = ruleset(&format!(
            "{SHOP}settings: {{ deadline: 200ms }}\nrules:\n  - name: merchant\n    {check}\n    reason: x\n"
        ));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let upstreams = Arc::new(Hanging {
            in_flight: in_flight.clone(),
            ..Default::default()
        });
        let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
        assert_eq!(summary(&d).3, Some("merchant"), "{check}");
        assert_eq!(error_of(&d, "merchant"), "deadline of 200ms exceeded");
        let call = d.trace[0]
            .call
            .as_ref()
            .map(|c| (c.method.as_str(), c.path.as_str()));
        assert_eq!(call, Some(("POST", path)), "{check}");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(in_flight.load(Ordering::SeqCst), 0, "{check}");
    }
}

#[tokio::test]
async fn an_early_decision_cancels_prefetches() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - {{ name: closed, require: 'false', reason: "closed" }}
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
"#
    ));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let upstreams = Arc::new(Hanging {
        in_flight: in_flight.clone(),
        ..Default::default()
    });
    let d = decide_full(&rules, V1, upstreams, NOW, &Original::default()).await;
    assert_eq!(summary(&d).3, Some("closed"));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(in_flight.load(Ordering::SeqCst), 0);
}

/// GET fetches started early whose answers decided nothing are on record with what became of
/// them: the merchant's API saw those calls too. A rule skipped by a `when` that reads what an
/// earlier rule fetched (answered; a `when` known as the request arrives would not have sent
/// it), a rule never reached (one answered with an error, one still under way and
/// cancelled); the fetches their rules read are in the trace, not here.
#[tokio::test(start_paused = true)]
async fn prefetches_that_decided_nothing_are_recorded() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: profile
    fetch: {{ upstream: shop, path: "/api/profile/{{order_id}}" }}
    reason: x
  - name: vip
    when: 'fetched["profile"].body.tier == "vip"'
    fetch: {{ upstream: shop, path: "/api/vip/{{order_id}}" }}
    reason: x
  - name: limits
    fetch: {{ upstream: shop, path: "/api/limits/{{order_id}}" }}
    require: 'response.body.ok'
    reason: "한도 초과"
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - name: coupon
    fetch: {{ upstream: shop, path: "/api/coupon/{{order_id}}" }}
    reason: x
"#
    ));
    let profile = || answer(200, json!({"tier": "basic"}));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", "GET /api/profile/order-1", profile())
            .answer("shop", "GET /api/vip/order-1", ok_after(10))
            .answer(
                "shop",
                LIMITS,
                answer(200, json!({"ok": false})).delay(Duration::from_millis(50)),
            )
            .answer("shop", STOCK, ok_after(1000))
            .answer(
                "shop",
                "GET /api/coupon/order-1",
                CannedAnswer::error(CannedError::Refused),
            ),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), refused("한도 초과", "limits"));
    let unused: Vec<_> = d
        .unused_fetches
        .iter()
        .map(|u| (&*u.rule, u.call.path.as_str(), u.status, u.error.is_some()))
        .collect();
    assert_eq!(
        unused,
        [
            ("vip", "/api/vip/order-1", Some(200), false),
            ("stock", "/api/stock/order-1", None, false),
            ("coupon", "/api/coupon/order-1", None, true),
        ]
    );
    assert!(
        d.unused_fetches[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("connection refused")),
        "{:?}",
        d.unused_fetches
    );
    assert_eq!(
        d.trace[2].call.as_ref().map(|c| c.path.as_str()),
        Some("/api/limits/order-1")
    );
    // An evaluation that reads every fetch it started has none to record.
    let canned = Arc::new(
        Canned::new()
            .answer("shop", "GET /api/profile/order-1", profile())
            .answer("shop", LIMITS, answer(200, json!({"ok": true})))
            .answer("shop", STOCK, ok_after(0))
            .answer("shop", "GET /api/coupon/order-1", ok_after(0)),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED);
    assert_eq!(
        d.unused_fetches.len(),
        1,
        "only the skipped vip rule's: {:?}",
        d.unused_fetches
    );
}

// ---- the deadline and side effects; forwarded headers ----

/// A `forward` (a call with side effects at the merchant) must not be started once the
/// deadline is already over: the answer is then the ruleset's `on_error` whatever the merchant
/// does, so a confirm sent now only makes the merchant act on a payment PortOne is refused.
#[tokio::test(start_paused = true)]
async fn no_forward_is_sent_once_the_answer_is_due() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms }}
rules:
  - {{ name: first, amount: {{ min: 1 }}, reason: x }}
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    let canned = shop(FORWARD, ok_after(20));
    // The body came in just as the answer fell due (195 ms of a 200 ms deadline).
    let d = decide_arrived(&rules, canned.clone(), Duration::from_millis(195)).await;
    // The amount check needs no waiting and runs; the forward is not sent, named, and the
    // ruleset's on_error decides.
    assert_eq!(
        summary(&d),
        ("reject", 409, Some(DEFAULT_ERROR_REASON), Some("existing")),
        "the ruleset's on_error decides"
    );
    assert_eq!(outcomes(&d), [("first", "pass"), ("existing", "error")]);
    assert!(
        error_of(&d, "existing").starts_with(NOT_SENT),
        "{:?}",
        d.trace
    );
    assert_eq!(
        keys(&canned),
        Vec::<String>::new(),
        "no forward reaches the merchant for a payment that is refused"
    );
}

/// A `forward` after a GET fetch that answers late is not sent: neither when the answer falls
/// due just as the fetch answers (195 ms of a 200 ms deadline, less its 5 ms margin; with
/// tokio's paused clock the timer is seen first), nor once the forward's own answer could no
/// longer be read in time (at 185 ms, past the 180 ms by which bodies must be in: a tenth of
/// the deadline, at most 100 ms, before it). The merchant would act on a payment decided
/// whatever it answered. In the second case the forward's check could not complete for the
/// deadline's sake: an error traced for the rule, which the ruleset's `on_error` decides, not
/// the rule's own (as if the deadline had stopped it).
#[tokio::test(start_paused = true)]
async fn a_forward_reached_too_late_to_read_its_answer_is_not_sent() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms }}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    for stock_at in [195, 185] {
        let canned = Arc::new(
            Canned::new()
                .answer("shop", STOCK, ok_after(stock_at))
                .answer("shop", FORWARD, CannedAnswer::status(200)),
        );
        let d = decide_arrived(&rules, canned.clone(), Duration::ZERO).await;
        assert_eq!(summary(&d).0, "reject", "{stock_at}");
        assert_eq!(summary(&d).2, Some(DEFAULT_ERROR_REASON), "{stock_at}");
        assert_eq!(
            keys(&canned),
            [STOCK],
            "{stock_at}: the forward never went out"
        );
    }
    let d = forward_after_a_stock_answer_at_185_ms(&rules).await;
    assert_eq!(
        summary(&d),
        ("reject", 409, Some(DEFAULT_ERROR_REASON), Some("existing"))
    );
    assert_eq!(outcomes(&d), [("stock", "pass"), ("existing", "error")]);
    assert_eq!(
        error_of(&d, "existing"),
        "not sent: reached too close to the deadline of 200ms to read an answer"
    );
    // The ruleset's on_error decides, not the rule's own: the rule's `approve` does not let
    // through a check the deadline stopped, and the ruleset's `approve` does.
    for (ruleset_on_error, rule_on_error, decided) in [
        ("reject", "approve", "reject"),
        ("approve", "reject", "approve"),
    ] {
        let (_dir, rules) = ruleset(&format!(
            r#"{SHOP}
settings: {{ deadline: 200ms, on_error: {ruleset_on_error} }}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }}, on_error: {rule_on_error} }}
"#
        ));
        let d = forward_after_a_stock_answer_at_185_ms(&rules).await;
        assert_eq!(summary(&d).0, decided, "ruleset {ruleset_on_error}");
        assert_eq!(outcomes(&d), [("stock", "pass"), ("existing", "error")]);
    }
}

/// `rules` decided with the stock answer coming at 185 ms; the forward is never sent.
async fn forward_after_a_stock_answer_at_185_ms(rules: &Rules) -> Decision {
    let canned = Arc::new(Canned::new().answer("shop", STOCK, ok_after(185)).answer(
        "shop",
        FORWARD,
        CannedAnswer::status(200),
    ));
    let d = decide_arrived(rules, canned.clone(), Duration::ZERO).await;
    assert_eq!(keys(&canned), [STOCK], "the forward never went out");
    d
}

/// The other order: a POST fetch's answer comes in just as the answer falls due and is seen
/// first (it is awaited inside the evaluation, which the timer polls before itself). The
/// timer cannot stop what comes next without an await, so the rules after it look at the
/// clock: a `forward` is not sent, and a Rhai rule is not evaluated (with no time left a short
/// expression still completes and would let the payment through); the ruleset's `on_error`
/// decides, naming that rule, whose trace says why it did not run (a record with no word of
/// it read as an unexplained refusal, or with `on_error: approve` an approval whose forward
/// the merchant never saw).
#[tokio::test(start_paused = true)]
async fn rules_reached_after_an_answer_seen_as_it_falls_due_are_not_run() {
    const RESERVE: &str = "POST /api/reserve/order-1";
    for (last, why) in [
        (
            "{ name: last, forward: { upstream: shop, path: /payments/confirm } }",
            "not sent: reached after the answer was due (deadline of 200ms)",
        ),
        (
            "{ name: last, require: 'true', reason: x }",
            "not run: reached after the answer was due (deadline of 200ms)",
        ),
    ] {
        let (_dir, rules) = ruleset(&format!(
            r#"{SHOP}
settings: {{ deadline: 200ms, on_error: reject }}
rules:
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: "/api/reserve/{{order_id}}" }}
    reason: x
  - {last}
"#
        ));
        // Due at 195 ms (the deadline less its 5 ms margin).
        let canned = Arc::new(Canned::new().answer("shop", RESERVE, ok_after(195)).answer(
            "shop",
            FORWARD,
            CannedAnswer::status(200),
        ));
        let d = decide_arrived(&rules, canned.clone(), Duration::ZERO).await;
        assert_eq!(
            summary(&d),
            ("reject", 409, Some(DEFAULT_ERROR_REASON), Some("last")),
            "{last}"
        );
        assert_eq!(
            outcomes(&d),
            [("reserve", "pass"), ("last", "error")],
            "{last}"
        );
        assert_eq!(error_of(&d, "last"), why);
        assert!(
            d.trace[1].deadline,
            "{last}: marked as the deadline's for replay"
        );
        assert_eq!(
            keys(&canned),
            [RESERVE],
            "{last}: only the reservation went out"
        );
    }
}

/// A call failing once the answer is due (its `timeout` just past that) fails by the deadline:
/// the ruleset's `on_error` decides, not the rule's own, and the trace says so for a replay,
/// where the same call would fail in time (an audit found such records replayed as approved).
#[tokio::test(start_paused = true)]
async fn a_call_failing_after_the_answer_is_due_is_the_deadlines() {
    for (timeout, decision, deadline) in [
        // Due at 195 ms (the deadline less its 5 ms margin).
        (
            "197ms",
            ("reject", 409, Some(DEFAULT_ERROR_REASON), Some("stock")),
            true,
        ),
        ("190ms", ("approve", 200, None, None), false),
    ] {
        let (_dir, rules) = ruleset(&format!(
            r#"
settings: {{ deadline: 200ms, on_error: reject }}
upstreams:
  shop: {{ url: "http://shop.invalid", timeout: {timeout} }}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}" }}
    reason: x
    on_error: approve
"#
        ));
        let canned = Arc::new(Canned::new().answer("shop", STOCK, ok_after(1000)));
        let d = decide_arrived(&rules, canned, Duration::ZERO).await;
        assert_eq!(summary(&d), decision, "timeout {timeout}");
        assert_eq!(outcomes(&d), [("stock", "error")], "timeout {timeout}");
        assert_eq!(d.trace[0].deadline, deadline, "timeout {timeout}");
    }
}

/// An answer already due when evaluation starts (the body came in just as it fell due): the
/// checks that need no waiting still decide — an amount cap refuses, whatever `on_error` says —
/// and the first rule that would make a call or run Rhai is not run, for the ruleset's
/// `on_error`; nothing is sent, not even a GET fetch, though the merchant would answer at once.
#[tokio::test(start_paused = true)]
async fn an_evaluation_that_starts_after_the_answer_is_due_runs_only_what_needs_no_waiting() {
    let late = Duration::from_millis(195);
    for (on_error, decided) in [("reject", "reject"), ("approve", "approve")] {
        for (check, not) in [
            (
                "forward: { upstream: shop, path: /payments/confirm }",
                "not sent",
            ),
            (
                "fetch: { upstream: shop, path: \"/api/stock/{order_id}\" }",
                "not run",
            ),
            ("require: 'order_id.len() + 1 > 0'", "not run"),
        ] {
            let (_dir, rules) = ruleset(&format!(
                "{SHOP}\nsettings: {{ deadline: 200ms, on_error: {on_error} }}\nrules:\n  - {{ name: first, amount: {{ min: 1 }}, reason: x }}\n  - {{ name: healthy-shop, healthy: shop, reason: y }}\n  - {{ name: existing, {check} }}\n"
            ));
            let canned = Arc::new(
                Canned::new()
                    .answer("shop", FORWARD, CannedAnswer::status(200))
                    .answer("shop", STOCK, CannedAnswer::status(200))
                    .health("shop", Health::Up),
            );
            let d = decide_arrived(&rules, canned.clone(), late).await;
            assert_eq!(summary(&d).0, decided, "{check}: {:?}", d.trace);
            assert_eq!(summary(&d).3, Some("existing"), "{check}");
            assert_eq!(
                outcomes(&d),
                [
                    ("first", "pass"),
                    ("healthy-shop", "pass"),
                    ("existing", "error")
                ],
                "{check}"
            );
            assert!(error_of(&d, "existing").starts_with(not), "{:?}", d.trace);
            assert!(canned.calls().is_empty(), "{check}: {:?}", keys(&canned));
        }
        // A rule that needs no waiting refuses as it would have in time, even with
        // `on_error: approve`.
        let (_dir, rules) = ruleset(&format!(
            "{SHOP}\nsettings: {{ deadline: 200ms, on_error: {on_error} }}\nrules:\n  - {{ name: stock, fetch: {{ upstream: shop, path: \"/api/stock/{{order_id}}\" }}, mode: shadow }}\n  - {{ name: cap, amount: {{ max: 1000 }}, reason: \"한도 초과\" }}\n  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}\n"
        ));
        let canned = shop(FORWARD, CannedAnswer::status(200));
        let d = decide_arrived(&rules, canned.clone(), late).await;
        assert_eq!(summary(&d), ("reject", 409, Some("한도 초과"), Some("cap")));
        assert_eq!(outcomes(&d), [("stock", "shadow_error"), ("cap", "reject")]);
        assert!(canned.calls().is_empty(), "{:?}", keys(&canned));
        // A review: a rule whose simple `when` skips the request was stopped all the same, and
        // on_error approved what the cap after it refuses.
        let (_dir, rules) = ruleset(&format!(
            "{SHOP}\nsettings: {{ deadline: 200ms, on_error: {on_error} }}\nrules:\n  - {{ name: marathon-stock, when: 'order_id.starts_with(\"marathon-\")', fetch: {{ upstream: shop, path: \"/api/stock/{{order_id}}\" }}, reason: 매진 }}\n  - {{ name: marathon-confirm, when: 'order_id.starts_with(\"marathon-\")', forward: {{ upstream: shop, path: /payments/confirm }} }}\n  - {{ name: cap, amount: {{ max: 1000 }}, reason: \"한도 초과\" }}\n"
        ));
        let canned = shop(FORWARD, CannedAnswer::status(200));
        let d = decide_arrived(&rules, canned.clone(), late).await;
        assert_eq!(summary(&d), ("reject", 409, Some("한도 초과"), Some("cap")));
        assert_eq!(
            outcomes(&d),
            [
                ("marathon-stock", "skipped"),
                ("marathon-confirm", "skipped"),
                ("cap", "reject")
            ]
        );
        // And a check that neither waits nor runs Rhai fails for its own reason (a health not
        // known yet): its rule's on_error decides, not the ruleset's as for the deadline.
        let (_dir, rules) = ruleset(&format!(
            "{SHOP}\nsettings: {{ deadline: 200ms, on_error: {on_error} }}\nrules:\n  - {{ name: shop-up, healthy: shop, reason: 점검, on_error: reject }}\n"
        ));
        let unknown = Arc::new(Canned::new().health("shop", Health::Unknown));
        let d = decide_arrived(&rules, unknown, late).await;
        assert_eq!(summary(&d).0, "reject", "{:?}", d.trace);
        assert_eq!(summary(&d).3, Some("shop-up"));
        assert!(!d.trace[0].deadline, "{:?}", d.trace);
    }
}

/// `forward` sends the `webhook-*` headers unchanged: every line, in order (a request with one
/// given twice is refused by the signature check when secrets are set; without, it is passed
/// on as it came).
#[tokio::test]
async fn forward_keeps_every_webhook_header_line() {
    let (_dir, rules) = ruleset(&format!(
        "{SHOP}rules:\n  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}\n"
    ));
    let original = Original {
        body: Bytes::from(V1),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        webhook_headers: headers(&[
            ("webhook-id", "msg_first"),
            ("webhook-id", "msg_second"),
            ("webhook-timestamp", "1733022000"),
            ("webhook-signature", "v1,c2lnbmF0dXJl"),
        ]),
    };
    let canned = shop(FORWARD, CannedAnswer::status(200));
    decide_full(&rules, V1, canned.clone(), NOW, &original).await;
    let call = &canned.calls()[0];
    let ids: Vec<_> = call.headers.get_all("webhook-id").iter().collect();
    assert_eq!(ids, ["msg_first", "msg_second"], "as received, in order");
}

/// Each rule that made a call names it in its trace (upstream, method, path as sent), so a
/// replay can tell an edited call from the logged one; the call carries the rule's name.
#[tokio::test]
async fn the_trace_names_each_call_made() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
rules:
  - name: stock
    fetch: {{ upstream: shop, path: "/api/stock/{{order_id}}", query: {{ x: "1" }} }}
    reason: a
  - name: reserve
    fetch: {{ upstream: shop, method: POST, path: /reserve }}
    reason: b
  - name: existing
    forward: {{ upstream: shop, path: /payments/confirm }}
  - name: limit
    amount: {{ max: 100000 }}
    reason: c
"#
    ));
    let canned = Arc::new(
        Canned::new()
            .answer(
                "shop",
                "GET /api/stock/order-1?x=1",
                CannedAnswer::status(200),
            )
            .answer("shop", "POST /reserve", CannedAnswer::status(200))
            .answer("shop", "POST /payments/confirm", CannedAnswer::status(200)),
    );
    let d = decide_with(&rules, V1, &canned).await;
    assert_eq!(summary(&d), APPROVED, "{:?}", d.trace);
    let calls: Vec<Option<String>> = d
        .trace
        .iter()
        .map(|t| t.call.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(
        calls,
        [
            Some("GET /api/stock/order-1?x=1 from shop".to_owned()),
            Some("POST /reserve from shop".to_owned()),
            Some("POST /payments/confirm from shop".to_owned()),
            None,
        ]
    );
    let mut call = serde_json::to_value(&d.trace[0]).unwrap()["call"].take();
    // The digest of the rest of what was sent: its scheme and 16 hex digits.
    let sent = call["sent"].take();
    let hex = sent
        .as_str()
        .and_then(|s| s.strip_prefix(crate::upstream::DIGEST_SCHEME));
    assert!(
        hex.is_some_and(|s| s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit())),
        "{sent}"
    );
    assert_eq!(
        call,
        json!({"upstream": "shop", "method": "GET", "path": "/api/stock/order-1?x=1", "sent": null})
    );
    let by: Vec<Option<Arc<str>>> = canned.calls().into_iter().map(|c| c.rule).collect();
    assert_eq!(
        by,
        [
            Some("stock".into()),
            Some("reserve".into()),
            Some("existing".into())
        ]
    );
}

/// Canned answers share an upstream's `max_connections` as `serve`'s calls do: with one
/// connection, two 800 ms fetches run one after another and the second misses a 1.5 s
/// deadline, which a rule test used to pass as if they ran side by side. The stand-in's
/// connections are its own: the live upstream's stay free.
#[tokio::test(start_paused = true)]
async fn canned_answers_wait_for_a_limited_upstreams_connections() {
    let yaml = |max: u32| {
        format!(
            r#"settings: {{ deadline: 1500ms }}
upstreams:
  shop: {{ url: "http://shop.invalid", timeout: 1s, max_connections: {max} }}
rules:
  - name: a
    fetch: {{ upstream: shop, path: /a }}
    reason: x
  - name: b
    fetch: {{ upstream: shop, path: /b }}
    reason: x
"#
        )
    };
    let canned = || {
        Arc::new(
            Canned::new()
                .answer("shop", "GET /a", ok_after(800))
                .answer("shop", "GET /b", ok_after(800)),
        )
    };
    let (_dir, one) = ruleset(&yaml(1));
    let d = decide_with(&one, V1, &canned()).await;
    assert_eq!(summary(&d), failed("b"), "{:?}", d.trace);
    let live = one.get("default").unwrap().upstreams["shop"]
        .slots
        .clone()
        .unwrap();
    assert_eq!(live.in_use(), 0, "the live connections were not used");
    let (_dir, two) = ruleset(&yaml(2));
    assert_eq!(summary(&decide_with(&two, V1, &canned()).await), APPROVED);
}

/// A call with side effects is noted as it goes out, and stays noted: should the server
/// answer at the deadline while the evaluation still runs, the record names it (a flash-sale
/// trial could not tell which refused payments had a reservation sent). A GET is not noted.
#[tokio::test]
async fn a_call_with_side_effects_is_noted_for_an_answer_at_the_deadline() {
    let (_dir, rules) = ruleset(&format!(
        "{SHOP}\nrules:\n  - {{ name: stock, fetch: {{ upstream: shop, path: /api/stock }} }}\n  - {{ name: reserve, fetch: {{ upstream: shop, method: POST, path: /api/reservations }}, reason: 매진 }}\n"
    ));
    let canned = Arc::new(
        Canned::new()
            .answer("shop", "GET /api/stock", CannedAnswer::status(200))
            .answer("shop", "POST /api/reservations", ok_after(300)),
    );
    let sent = SentCalls::default();
    let original = Original::default();
    let scripts = ScriptEngine::new();
    let ctx = Context {
        scripts: &scripts,
        upstreams: canned.clone(),
        now: at(NOW),
        started: tokio::time::Instant::now(),
        original: &original,
        decision_id: None,
        sent: Some(&sent),
    };
    let req = request(V1);
    let evaluation = evaluate(rules.get("default").unwrap(), &req, &ctx);
    let look = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sent.take()
    };
    let (decision, noted) = tokio::join!(evaluation, look);
    assert_eq!(summary(&decision), APPROVED);
    let [(rule, call)] = &noted[..] else {
        panic!(
            "one call noted while its answer was awaited: {:?}",
            noted.len()
        );
    };
    assert_eq!(
        (&**rule, call.method.as_str(), call.path.as_str()),
        ("reserve", "POST", "/api/reservations")
    );
    let settings = &rules.get("default").unwrap().settings;
    let answered = overran(settings, &req, Duration::from_millis(3990), noted.clone());
    assert_eq!(
        answered.trace[0].error.as_deref(),
        Some("still running at the deadline of 4s, after rule reserve sent POST /api/reservations to shop (the merchant may have acted on it): answered by on_error")
    );
    // Answered and done, the call stays noted: the rules after it may still be running.
    evaluate(rules.get("default").unwrap(), &req, &ctx).await;
    assert_eq!(sent.take().len(), 1);
    let answered = overran(settings, &req, Duration::from_millis(3990), Vec::new());
    assert_eq!(
        answered.trace[0].error.as_deref(),
        Some("still running at the deadline of 4s: answered by on_error")
    );
}
