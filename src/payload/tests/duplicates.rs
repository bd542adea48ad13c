//! A key named twice refuses the body, anywhere in a JSON body and in a form, naming the key.

use super::*;

/// The audited case: the proxy checked `o` while a merchant taking the first key would act
/// on `legacy-1`.
#[test]
fn duplicate_keys_in_json_are_refused_naming_the_field() {
    let cases = [
        (
            r#"{"imp_uid":"i","merchant_uid":"legacy-1","merchant_uid":"o","amount":5000}"#,
            "merchant_uid",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":5000,"imp_uid":"j"}"#,
            "imp_uid",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":50000,"amount":5}"#,
            "amount",
        ),
        (
            r#"{"payment_id":"p","payment_id":"q","tx_id":"t","total_amount":1}"#,
            "payment_id",
        ),
        (
            r#"{"payment_id":"p","tx_id":"t","tx_id":"u","total_amount":1}"#,
            "tx_id",
        ),
        (
            r#"{"payment_id":"p","tx_id":"t","total_amount":1,"total_amount":2}"#,
            "total_amount",
        ),
        (
            r#"{"type":"Transaction.Cancelled","type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1}}"#,
            "type",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1},"data":{"paymentId":"q","transactionId":"t","totalAmount":1}}"#,
            "data",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","paymentId":"q","transactionId":"t","totalAmount":1}}"#,
            "data.paymentId",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","transactionId":"u","totalAmount":1}}"#,
            "data.transactionId",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1,"totalAmount":9}}"#,
            "data.totalAmount",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1,"storeId":"a","storeId":"b"}}"#,
            "data.storeId",
        ),
        // Keys the proxy does not read are refused too: rules read them from `payload`, and
        // the merchant may read them.
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":1,"memo":"a","memo":"b"}"#,
            "memo",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":1,"custom_data":{"vip":false,"vip":true}}"#,
            "custom_data.vip",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":1,"items":[{"sku":1},{"sku":2,"sku":3}]}"#,
            "items[1].sku",
        ),
        (
            r#"{"type":"Transaction.Cancelled","data":{},"timestamp":"a","timestamp":"b"}"#,
            "timestamp",
        ),
        // Keys are compared decoded.
        (
            r#"{"imp_uid":"i","merchant_uid":"legacy-1","merchant_uid":"o","amount":5000}"#,
            "merchant_uid",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"o","amount":5000,"a":1,"a":2}"#,
            "a",
        ),
    ];
    for (body, field) in cases {
        for ct in [JSON, None] {
            let e = err(ct, body);
            assert_eq!(e, PayloadError::DuplicateField(field.into()), "{body}");
            assert_eq!(e.status(), 400);
            assert_eq!(
                e.to_string(),
                format!("필드 {field}가 중복되어 있습니다 (같은 필드는 한 번만 보낼 수 있습니다)")
            );
            assert!(fast::parse(body.as_bytes()).is_none(), "{body}");
        }
    }
    // A JSON syntax error is still reported as such, before any duplicate.
    assert!(matches!(
        err(JSON, r#"{"merchant_uid":"a","merchant_uid":"b","#),
        PayloadError::InvalidJson { .. }
    ));
    // Equal keys in different objects are no duplicates.
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":1,"data":{"merchant_uid":"x","amount":2},"list":[{"a":1},{"a":1}]}"#,
    );
    assert_eq!((r.order_id.as_str(), r.amount.as_str()), ("m", "1"));
    // A caller-chosen key is cut in the reason, and shown safely: no line breaks or
    // text-direction controls reach the payment window.
    let key = "k".repeat(500);
    let e = err(JSON, &format!(r#"{{"{key}":1,"{key}":2}}"#));
    assert_eq!(
        e,
        PayloadError::DuplicateField(format!("{}…", "k".repeat(100)))
    );
    let e = err(
        JSON,
        r#"{"a\r\nX-Injected: 1\u202e":1,"a\r\nX-Injected: 1\u202e":2}"#,
    );
    assert_eq!(e, PayloadError::DuplicateField("a  X-Injected: 1".into()));
    let form = "imp_uid=i1&merchant_uid=o1&amount=5000&a%0D%0AX-Injected:%201%E2%80%AE=%FF";
    assert_eq!(
        err(Some("application/x-www-form-urlencoded"), form),
        PayloadError::FormNotUtf8("a  X-Injected: 1".into())
    );
}

#[test]
fn duplicate_keys_in_forms_are_refused_naming_the_field() {
    for (body, field) in [
        (
            "merchant_uid=a&merchant_uid=b&imp_uid=i&amount=1000",
            "merchant_uid",
        ),
        ("merchant_uid=a&imp_uid=i&amount=1000&imp_uid=j", "imp_uid"),
        ("merchant_uid=a&imp_uid=i&amount=1000&amount=5", "amount"),
        ("merchant_uid=a&imp_uid=i&amount=1000&memo=x&memo=x", "memo"),
        // Compared decoded.
        (
            "merchant_uid=a&merchant%5Fuid=b&imp_uid=i&amount=1000",
            "merchant_uid",
        ),
        ("a+b=1&a%20b=2", "a b"),
        ("flag&flag=", "flag"),
    ] {
        for ct in [FORM, None] {
            assert_eq!(
                err(ct, body),
                PayloadError::DuplicateField(field.into()),
                "{body} {ct:?}"
            );
        }
    }
    // Empty pairs are not keys.
    confirm(FORM, b"merchant_uid=a&&imp_uid=i&&amount=1000&");
}
