//! serde_json's reserved keys: bodies its own `Value` parser would read differently from any
//! other JSON parser are refused, by the fast path and the full parser alike.

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
fn a_reserved_raw_value_key_is_refused_not_read_as_the_body() {
    let inner = r#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000000,"amount":100}"#;
    let body = serde_json::json!({ RAW_TOKEN: inner }).to_string();
    let e = parse(JSON, body.as_bytes()).unwrap_err();
    assert_eq!(e, PayloadError::ReservedField(RAW_TOKEN.into()));
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.to_string(),
        "필드 이름 $serde_json::private::RawValue는 사용할 수 없습니다"
    );
    // Spelled with an escape it is the same key once decoded; without a Content-Type too.
    let escaped = body.replace("$serde", "\\u0024serde");
    assert_eq!(
        parse(None, escaped.as_bytes()).unwrap_err(),
        PayloadError::ReservedField(RAW_TOKEN.into())
    );
}

/// The same trick inside `data`: the proxy finds paymentId/transactionId/totalAmount in a
/// string, where a merchant's parser finds only an unknown key.
#[test]
fn a_reserved_raw_value_key_in_data_is_refused() {
    let inner = r#"{"paymentId":"order-1","transactionId":"tx-1","totalAmount":1000}"#;
    let body = serde_json::json!({
        "type": "Transaction.Confirm",
        "data": { RAW_TOKEN: inner },
    })
    .to_string();
    assert_eq!(
        parse(JSON, body.as_bytes()).unwrap_err(),
        PayloadError::ReservedField(RAW_TOKEN.into())
    );
}

/// A custom field holding serde_json's private number key with a value that is not a number:
/// the fast path (no backslash in the body) once accepted it, and rules then saw `payload` as
/// `()` (the lazy `Value` parse failed), while the full parser refused it.
#[test]
fn the_fast_path_and_the_full_parser_agree_on_a_reserved_number_key() {
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

/// Same, with the raw-value token holding text that is not JSON, and a key that only starts
/// like a reserved one.
#[test]
fn a_reserved_key_anywhere_is_refused() {
    let body = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"blocked":true,"z":{{"{RAW_TOKEN}":"nope"}}}}"#
    );
    assert_eq!(
        parse(JSON, body.as_bytes()).unwrap_err(),
        PayloadError::ReservedField(RAW_TOKEN.into())
    );
    let body = r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"items":[{"$serde_json::private::x":1}]}"#;
    assert_eq!(
        parse(JSON, body.as_bytes()).unwrap_err(),
        PayloadError::ReservedField("$serde_json::private::x".into())
    );
    // Spelled with escapes it is found where it is.
    let body = r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"items":[{"\u0024serde_json::private::x":1}]}"#;
    assert_eq!(
        parse(JSON, body.as_bytes()).unwrap_err(),
        PayloadError::ReservedField("items[0].$serde_json::private::x".into())
    );
}

/// The reserved words inside a value (a buyer's memo quoting them, a value that is exactly
/// one) are text: only a key is read as an instruction. Both parsers agree, and the value
/// reaches rules as written.
#[test]
fn reserved_words_in_a_value_are_text() {
    for value in [
        "see $serde_json::private::RawValue docs",
        NUMBER_TOKEN,
        "a \\u0024serde_json::private::Number",
    ] {
        let body = serde_json::json!({
            "imp_uid": "i", "merchant_uid": "m", "amount": 1000, "memo": value, "n": [NUMBER_TOKEN],
        })
        .to_string();
        match parse(JSON, body.as_bytes()) {
            Ok(Parsed::Confirm(c)) => assert_eq!(c.payload.value()["memo"], value, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    // Spaced before its colon, a key is still a key.
    let body = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"z":{{"{NUMBER_TOKEN}" :"1"}}}}"#
    );
    assert_eq!(
        parse(JSON, body.as_bytes()).unwrap_err(),
        PayloadError::ReservedField(NUMBER_TOKEN.into())
    );
}
