//! Review r2: bodies that the proxy reads differently from a standard JSON parser, or that the
//! fast path and the full parser decide differently.

use super::*;

/// serde_json's private `arbitrary_precision` / `raw_value` tokens, which its `Value`
/// deserializer interprets when such a key comes first in an object.
const RAW_TOKEN: &str = "$serde_json::private::RawValue";
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A body whose only key is serde_json's private raw-value token, holding a V1 request as a
/// *string*. Any other JSON parser (the merchant's, PortOne's) sees an object with one unknown
/// key: not a confirm request at all. The proxy reads the embedded text as the body, with a
/// repeated `amount` inside that the duplicate check never sees.
#[test]
fn review_private_raw_value_key_is_not_read_as_the_body() {
    let inner = r#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000000,"amount":100}"#;
    let body = serde_json::json!({ RAW_TOKEN: inner }).to_string();
    let got = parse(JSON, body.as_bytes());
    assert!(
        got.is_err(),
        "a body without any PortOne field must be refused (400), got {got:?}"
    );
}

/// The same trick inside `data`: the proxy finds paymentId/transactionId/totalAmount in a
/// string, where a merchant's parser finds only an unknown key.
#[test]
fn review_private_raw_value_key_in_data_is_not_read_as_data() {
    let inner = r#"{"paymentId":"order-1","transactionId":"tx-1","totalAmount":1000}"#;
    let body = serde_json::json!({
        "type": "Transaction.Confirm",
        "data": { RAW_TOKEN: inner },
    })
    .to_string();
    let got = parse(JSON, body.as_bytes());
    assert!(
        matches!(got, Err(PayloadError::Missing(_))),
        "data has no paymentId for any other parser, got {got:?}"
    );
}

/// A custom field holding serde_json's private number key with a value that is not a number:
/// valid JSON that the full parser refuses (400), while the fast path (no backslash in the
/// body) accepts it and rules then see `payload` as `()` — the whole body lost.
#[test]
fn review_fast_path_and_full_parser_agree_on_private_number_key() {
    let body = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"blocked":true,"z":{{"{NUMBER_TOKEN}":"x"}}}}"#
    );
    let full = parse_full(Encoding::Json, body.as_bytes(), || {
        bytes::Bytes::copy_from_slice(body.as_bytes())
    });
    let fast = parse(JSON, body.as_bytes());
    let describe = |r: &Result<Parsed, PayloadError>| match r {
        Ok(Parsed::Confirm(c)) => format!("confirm, payload {}", c.payload.value()),
        Ok(Parsed::Ignored { .. }) => "ignored".to_owned(),
        Err(e) => format!("error {e:?}"),
    };
    assert_eq!(describe(&fast), describe(&full), "{body}");
}

/// Same, with the raw-value token holding text that is not JSON.
#[test]
fn review_fast_path_keeps_the_payload_rules_read() {
    let body = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"blocked":true,"z":{{"{RAW_TOKEN}":"nope"}}}}"#
    );
    let r = confirm(JSON, body.as_bytes());
    assert_eq!(
        r.payload.value().get("blocked"),
        Some(&Value::Bool(true)),
        "rules must see the body's fields, got payload {}",
        r.payload.value()
    );
}
