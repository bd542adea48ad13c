//! Review: behaviour at the edges of the deadline and of the forwarded request.

use super::*;

const FORWARD: &str = "POST /payments/confirm";

/// A `forward` (a call with side effects at the merchant) must not be started once the
/// deadline is already over: the answer is then the ruleset's `on_error` whatever the merchant
/// does, so a confirm sent now only makes the merchant act on a payment PortOne is refused.
#[tokio::test(start_paused = true)]
async fn review_no_forward_is_sent_once_the_deadline_has_passed() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms }}
rules:
  - {{ name: first, amount: {{ min: 1 }}, reason: x }}
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    let canned = shop(FORWARD, ok_after(20));
    // The body came in just as the answer fell due (196 ms of a 200 ms deadline).
    let d = decide_arrived(&rules, canned.clone(), Duration::from_millis(196)).await;
    println!("{:?} trace {:?}", summary(&d), d.trace);
    assert_eq!(
        summary(&d),
        failed("existing"),
        "the ruleset's on_error decides"
    );
    assert_eq!(
        keys(&canned),
        Vec::<String>::new(),
        "the forward reached the merchant after the deadline, yet the payment is refused"
    );
}

/// With an immediate merchant answer the evaluation goes on past the deadline and approves,
/// although the answer was already due before any rule ran and `on_error` is `reject`
/// (the body came in just as the answer fell due: the body read's own timeout let it through).
#[tokio::test(start_paused = true)]
async fn review_rules_after_the_deadline_still_decide() {
    let (_dir, rules) = ruleset(&format!(
        r#"{SHOP}
settings: {{ deadline: 200ms, on_error: reject }}
rules:
  - {{ name: first, amount: {{ min: 1 }}, reason: x }}
  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}
"#
    ));
    let canned = shop(FORWARD, CannedAnswer::status(200));
    let d = decide_arrived(&rules, canned.clone(), Duration::from_millis(196)).await;
    println!("{:?} trace {:?}", summary(&d), d.trace);
    assert_eq!(
        summary(&d).0,
        "reject",
        "past the deadline, on_error: reject decides"
    );
}

/// `forward` sends the `webhook-*` headers "unchanged"; with a header given twice the
/// verifier read the first one, the merchant gets only the last.
#[tokio::test]
async fn review_forward_keeps_every_webhook_header_line() {
    let (_dir, rules) = ruleset(&format!(
        "{SHOP}rules:\n  - {{ name: existing, forward: {{ upstream: shop, path: /payments/confirm }} }}\n"
    ));
    let original = Original {
        body: Bytes::from(V1),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        webhook_headers: [
            ("webhook-id", "msg_first"),
            ("webhook-id", "msg_second"),
            ("webhook-timestamp", "1733022000"),
            ("webhook-signature", "v1,c2lnbmF0dXJl"),
        ]
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            )
        })
        .collect(),
    };
    let canned = shop(FORWARD, CannedAnswer::status(200));
    decide_full(&rules, V1, canned.clone(), NOW, &original).await;
    let call = &canned.calls()[0];
    let ids: Vec<_> = call.headers.get_all("webhook-id").iter().collect();
    assert_eq!(ids, ["msg_first", "msg_second"], "as received, in order");
}
