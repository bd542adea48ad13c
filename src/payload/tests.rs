//! The parser through its entry points: every PortOne format, the errors a buyer is shown,
//! content types and form decoding.

use super::*;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::Map;

mod amounts;
mod duplicates;
mod fast_path;
mod reserved;

const JSON: Option<&str> = Some("application/json");

fn testdata(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../shared/testdata/portone/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn confirm(ct: Option<&str>, body: &[u8]) -> ConfirmRequest {
    match parse(ct, body) {
        Ok(Parsed::Confirm(r)) => r,
        other => panic!("expected a confirm request, got {other:?}"),
    }
}

fn err(ct: Option<&str>, body: &str) -> PayloadError {
    match parse(ct, body.as_bytes()) {
        Err(e) => e,
        other => panic!("expected an error for {body}, got {other:?}"),
    }
}

#[test]
fn v1_json() {
    let r = confirm(JSON, &testdata("v1.json"));
    assert_eq!(r.api, Api::V1);
    assert_eq!(r.order_id, "order-20261201-0001");
    assert_eq!(r.tx_id, "imp_123412341234");
    assert_eq!(r.amount.to_string(), "50000");
    assert_eq!(r.amount.as_i64(), Some(50000));
    assert_eq!(r.store_id, None);
}

#[test]
fn v1_form() {
    let r = confirm(
        Some("application/x-www-form-urlencoded"),
        &testdata("v1.form"),
    );
    assert_eq!(r.api, Api::V1);
    assert_eq!(r.order_id, "order-20261201-0001");
    assert_eq!(r.tx_id, "imp_123412341234");
    assert_eq!(r.amount.as_i64(), Some(50000));
    assert_eq!(r.payload.value()["amount"], Value::String("50000".into()));
}

#[test]
fn v1_form_without_content_type() {
    let r = confirm(None, &testdata("v1.form"));
    assert_eq!(r.order_id, "order-20261201-0001");
}

#[test]
fn v1_fractional_is_exact() {
    let r = confirm(JSON, &testdata("v1-fractional.json"));
    assert_eq!(r.amount.to_string(), "10.5");
    assert_eq!(r.amount.value(), Decimal::new(105, 1));
    assert_eq!(r.amount.as_i64(), None);
    // A value f64 cannot hold exactly stays exact.
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":0.10000000000000000555}"#,
    );
    assert_eq!(r.amount.to_string(), "0.10000000000000000555");
    assert_ne!(r.amount.value(), Decimal::new(1, 1));
}

#[test]
fn v2_2024_01_01() {
    let r = confirm(
        Some("application/json; charset=utf-8"),
        &testdata("v2-2024-01-01.json"),
    );
    assert_eq!(r.api, Api::V2_2024_01_01);
    assert_eq!(r.order_id, "example-payment-id");
    assert_eq!(r.tx_id, "55451513-9763-4a7a-bb43-78a4c65be843");
    assert_eq!(r.amount.as_i64(), Some(1000));
}

#[test]
fn v2_2024_04_25() {
    let r = confirm(JSON, &testdata("v2-2024-04-25.json"));
    assert_eq!(r.api, Api::V2_2024_04_25);
    assert_eq!(r.order_id, "example-payment-id");
    assert_eq!(r.tx_id, "55451513-9763-4a7a-bb43-78a4c65be843");
    assert_eq!(
        r.store_id.as_deref(),
        Some("store-ae356798-3d20-4969-b739-14c6b0e1a667")
    );
    assert_eq!(r.amount.as_i64(), Some(1000));
    assert_eq!(r.payload.value()["type"], "Transaction.Confirm");
}

#[test]
fn v2_other_type_is_ignored() {
    match parse(JSON, &testdata("v2-2024-04-25-other-type.json")) {
        Ok(Parsed::Ignored { message_type, api }) => {
            assert_eq!(message_type, "Transaction.Cancelled");
            assert_eq!(api, Api::V2_2024_04_25);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn extra_fields_are_kept_in_payload() {
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":1,"custom_data":{"vip":true}}"#,
    );
    assert_eq!(r.payload.value()["custom_data"]["vip"], true);
}

#[test]
fn numeric_string_amounts_are_accepted() {
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":"1200"}"#,
    );
    assert_eq!(r.amount.as_i64(), Some(1200));
    assert_eq!(r.amount.to_string(), "1200");
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    use PayloadError::*;
    let cases: &[(&str, PayloadError)] = &[
        (
            r#"{"merchant_uid":"m","amount":1,"imp_uid":null}"#,
            Missing("imp_uid"),
        ),
        (r#"{"imp_uid":"i","amount":1}"#, Missing("merchant_uid")),
        (r#"{"imp_uid":"i","merchant_uid":"m"}"#, Missing("amount")),
        (
            r#"{"imp_uid":"","merchant_uid":"m","amount":1}"#,
            Empty("imp_uid"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"  ","amount":1}"#,
            Empty("merchant_uid"),
        ),
        // Trial: ids that show nothing were evaluated as ids, escaped or written as they are.
        (
            r#"{"imp_uid":"i","merchant_uid":"\u200b","amount":1}"#,
            Empty("merchant_uid"),
        ),
        (
            "{\"imp_uid\":\"\u{3164}\",\"merchant_uid\":\"m\",\"amount\":1}",
            Empty("imp_uid"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"\u0000","amount":1}"#,
            Empty("merchant_uid"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":-1}"#,
            NegativeAmount("amount"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":"-5"}"#,
            NegativeAmount("amount"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":"lots"}"#,
            WrongType {
                field: "amount",
                expected: "숫자",
            },
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":""}"#,
            Empty("amount"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":true}"#,
            WrongType {
                field: "amount",
                expected: "숫자",
            },
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":1e400}"#,
            AmountTooLarge("amount"),
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":123456789012345678901234567890123}"#,
            AmountTooLarge("amount"),
        ),
        (
            r#"{"imp_uid":12,"merchant_uid":"m","amount":1}"#,
            WrongType {
                field: "imp_uid",
                expected: "문자열",
            },
        ),
        (r#"{"payment_id":"p","total_amount":1}"#, Missing("tx_id")),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t"}}"#,
            Missing("data.totalAmount"),
        ),
        (
            r#"{"type":"Transaction.Confirm","data":"x"}"#,
            WrongType {
                field: "data",
                expected: "객체",
            },
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1,"storeId":5}}"#,
            WrongType {
                field: "data.storeId",
                expected: "문자열",
            },
        ),
        (r#"{"hello":"world"}"#, UnknownFormat),
        ("[1,2,3]", NotAnObject),
    ];
    for (body, want) in cases {
        assert_eq!(&err(JSON, body), want, "body {body}");
    }
    assert_eq!(err(JSON, "{not json"), InvalidJson { line: 1, column: 2 });
    for body in ["", " \n", "\t"] {
        for content_type in [None, JSON, FORM] {
            assert_eq!(
                err(content_type, body),
                EmptyBody,
                "{body:?} as {content_type:?}"
            );
        }
    }
}

#[test]
fn invalid_utf8_is_refused() {
    let body = b"imp_uid=\xff\xfe&merchant_uid=m&amount=1";
    assert_eq!(
        parse(Some("application/x-www-form-urlencoded"), body).unwrap_err(),
        PayloadError::FormNotUtf8("imp_uid".into())
    );
    // The position is the first byte that is not UTF-8, in characters as an editor shows them.
    assert_eq!(
        parse(JSON, b"{\"imp_uid\":\"\xff\"}").unwrap_err(),
        PayloadError::NotUtf8 {
            line: 1,
            column: 13
        }
    );
    assert_eq!(
        parse(JSON, b"{\n \"a\": \"\xc3\"}").unwrap_err(),
        PayloadError::NotUtf8 { line: 2, column: 8 }
    );
    assert_eq!(
        parse(
            JSON,
            "{\"imp_uid\":\"한글"
                .bytes()
                .chain(*b"\xff\"}")
                .collect::<Vec<u8>>()
                .as_slice()
        )
        .unwrap_err(),
        PayloadError::NotUtf8 {
            line: 1,
            column: 15
        }
    );
    // Labelled EUC-KR, which JSON never is: the reason says what to send.
    let e = parse(
        Some("application/json; charset=euc-kr"),
        b"{\"merchant_uid\":\"\xc1\xd6\xb9\xae-1\"}",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "요청 본문이 UTF-8이 아닙니다 (1행 18열): JSON은 UTF-8로 보내야 합니다"
    );
    assert_eq!(e.status(), 400);
}

#[test]
fn a_compressed_body_is_refused_naming_its_coding() {
    let check = |values: &[&str]| {
        check_codings(
            values.iter().map(|v| v.as_bytes()),
            b"identity",
            PayloadError::UnsupportedContentEncoding,
        )
    };
    assert_eq!(check(&[]), Ok(()));
    assert_eq!(check(&["identity", "", " IDENTITY , "]), Ok(()));
    for values in [&["gzip"][..], &["identity, br"], &["identity", "deflate"]] {
        let e = check(values).unwrap_err();
        assert_eq!(e.status(), 415);
        assert!(e.to_string().contains("Content-Encoding"), "{e}");
    }
    assert_eq!(
        check(&[" gzip "]).unwrap_err().to_string(),
        "지원하지 않는 Content-Encoding입니다: gzip (압축하지 않은 본문만 받습니다)"
    );
    // Shown to the buyer as any text from outside: no control or text-direction character,
    // a tab as a space, cut at 100 characters with `…`.
    assert_eq!(
        check(&["x\u{9b}31m\u{202e}\u{85}y\tz"]).unwrap_err(),
        PayloadError::UnsupportedContentEncoding("x31m y z".into())
    );
    let long = "g".repeat(150);
    assert_eq!(
        check(&[long.as_str()]).unwrap_err(),
        PayloadError::UnsupportedContentEncoding(format!("{}…", "g".repeat(100)))
    );
    // No `identity` transfer coding (RFC 9112): only `chunked` is undone.
    let te = |value: &str| {
        check_codings(
            [value.as_bytes()],
            b"chunked",
            PayloadError::UnsupportedTransferEncoding,
        )
    };
    assert_eq!(te(" chunked "), Ok(()));
    assert_eq!(
        te("identity, chunked"),
        Err(PayloadError::UnsupportedTransferEncoding(
            "identity, chunked".into()
        ))
    );
    assert_eq!(
        parse(Some("text/pl\tain"), b"{}").unwrap_err(),
        PayloadError::UnsupportedContentType("text/pl ain".into())
    );
    // Trial: a list of types was read as its first one when that had parameters.
    let body = br#"{"imp_uid":"i","merchant_uid":"m","amount":1}"#;
    for ct in [
        "application/json, text/plain",
        "application/json; charset=utf-8, text/plain",
        "application/json; q=1, text/plain",
    ] {
        assert_eq!(
            parse(Some(ct), body).unwrap_err(),
            PayloadError::UnsupportedContentType(ct.into()),
            "{ct}"
        );
    }
    // A comma in a quoted parameter value is no list; a quote never closed hides one.
    assert!(parse(Some(r#"application/json; x="a,b""#), body).is_ok());
    let open = r#"application/json; foo="a,b, text/plain"#;
    assert_eq!(
        parse(Some(open), body).unwrap_err(),
        PayloadError::UnsupportedContentType(open.into())
    );
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[test]
fn a_body_after_a_byte_order_mark_is_refused_saying_so() {
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000}"#);
    for ct in [JSON, None, FORM] {
        assert_eq!(
            parse(ct, &body).unwrap_err(),
            PayloadError::ByteOrderMark,
            "{ct:?}"
        );
    }
    let form = "\u{feff}imp_uid=imp_1&merchant_uid=order-1&amount=5000";
    assert_eq!(
        parse(FORM, form.as_bytes()).unwrap_err(),
        PayloadError::ByteOrderMark
    );
}

#[test]
fn extra_type_and_data_never_make_a_v1_request_ignored() {
    // The audited fail-open: this used to be answered "ignored" (200, no rules run).
    for message_type in ["custom", "Transaction.Cancelled", "Transaction.Confirm"] {
        let body = format!(
            r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"type":"{message_type}","data":{{}}}}"#
        );
        let r = confirm(JSON, body.as_bytes());
        assert_eq!(r.api, Api::V1, "{body}");
        assert_eq!((r.order_id.as_str(), r.tx_id.as_str()), ("m", "i"));
        assert_eq!(r.amount.as_i64(), Some(1000));
        assert_eq!(r.payload.value()["type"], message_type, "kept for rules");
    }
    // V1 fields next to type/data make it V1, which must then be valid.
    assert_eq!(
        err(
            JSON,
            r#"{"merchant_uid":"m","type":"Transaction.Cancelled","data":{}}"#
        ),
        PayloadError::Missing("imp_uid")
    );
    assert_eq!(
        err(
            JSON,
            r#"{"imp_uid":null,"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1}}"#
        ),
        PayloadError::Missing("merchant_uid")
    );
    // Also in a form body (where `data` can only be a string).
    let r = confirm(
        FORM,
        b"imp_uid=i&merchant_uid=m&amount=1000&type=Transaction.Cancelled&data=x",
    );
    assert_eq!(r.api, Api::V1);
}

#[test]
fn extra_type_and_data_never_make_a_v2_2024_01_01_request_ignored() {
    let r = confirm(
        JSON,
        br#"{"payment_id":"p","tx_id":"t","total_amount":1000,"type":"custom","data":{}}"#,
    );
    assert_eq!(r.api, Api::V2_2024_01_01);
    assert_eq!((r.order_id.as_str(), r.tx_id.as_str()), ("p", "t"));
    assert_eq!(r.amount.as_i64(), Some(1000));
    assert_eq!(
        err(
            JSON,
            r#"{"payment_id":"p","total_amount":1000,"type":"Transaction.Cancelled","data":{}}"#
        ),
        PayloadError::Missing("tx_id")
    );
    assert_eq!(
        err(
            JSON,
            r#"{"tx_id":"t","type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1}}"#
        ),
        PayloadError::Missing("payment_id")
    );
}

#[test]
fn type_and_data_alone_are_still_v2_2024_04_25() {
    let body = r#"{"type":"Transaction.Cancelled","data":{"paymentId":"p"},"storeId":"x"}"#;
    assert!(matches!(
        parse(JSON, body.as_bytes()),
        Ok(Parsed::Ignored { message_type, .. }) if message_type == "Transaction.Cancelled"
    ));
}

/// V2 `2024-04-25` needs both `type` and `data`: a body with only one of them is no known
/// format (400), never an ignored message, which is answered 200.
#[test]
fn type_or_data_alone_is_no_known_format() {
    for body in [
        r#"{"type":"Transaction.Cancelled"}"#,
        r#"{"type":"Transaction.Confirm"}"#,
        r#"{"data":{"paymentId":"p","transactionId":"t","totalAmount":1}}"#,
    ] {
        assert_eq!(err(JSON, body), PayloadError::UnknownFormat, "{body}");
    }
    assert_eq!(
        err(FORM, "type=Transaction.Cancelled"),
        PayloadError::UnknownFormat
    );
}

#[test]
fn store_id_comes_only_from_v2_2024_04_25_data() {
    for body in [
        r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"storeId":5}"#,
        r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"storeId":"s-1"}"#,
        r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"storeId":{"a":[]}}"#,
        r#"{"payment_id":"p","tx_id":"t","total_amount":1000,"storeId":5}"#,
        r#"{"payment_id":"p","tx_id":"t","total_amount":1000,"storeId":"s-1"}"#,
    ] {
        let r = confirm(JSON, body.as_bytes());
        assert_eq!(r.store_id, None, "{body}");
        assert!(
            !r.payload.value()["storeId"].is_null(),
            "still in payload: {body}"
        );
    }
    let r = confirm(FORM, b"imp_uid=i&merchant_uid=m&amount=1000&storeId=s-1");
    assert_eq!(r.store_id, None);
    // A top-level storeId is not V2 2024-04-25's either.
    let r = confirm(
        JSON,
        br#"{"type":"Transaction.Confirm","storeId":"top","data":{"paymentId":"p","transactionId":"t","totalAmount":1}}"#,
    );
    assert_eq!(r.store_id, None);
    let r = confirm(
        JSON,
        br#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1,"storeId":null}}"#,
    );
    assert_eq!(r.store_id, None);
    for store_id in ["5", "true", "{}", r#"["s"]"#] {
        let body = format!(
            r#"{{"type":"Transaction.Confirm","data":{{"paymentId":"p","transactionId":"t","totalAmount":1,"storeId":{store_id}}}}}"#
        );
        let e = err(JSON, &body);
        assert_eq!(
            e,
            PayloadError::WrongType {
                field: "data.storeId",
                expected: "문자열"
            }
        );
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("data.storeId"), "{e}");
    }
}

/// serde_json reads 127 levels of nesting (the object itself is one); the answer says so, not
/// that the JSON is broken, and names the limit it applies.
#[test]
fn json_nested_too_deep_says_so() {
    // The top object, then `x` holding `depth - 1` nested arrays.
    let nested = |depth: usize| {
        format!(
            r#"{{"imp_uid":"i","merchant_uid":"m","amount":1,"x":{}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    let e = err(JSON, &nested(128));
    assert_eq!(e, PayloadError::TooDeep);
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.to_string(),
        "요청 본문의 JSON이 너무 깊이 중첩되어 있습니다 (최대 127단계)"
    );
    assert_eq!(err(None, &nested(200)), PayloadError::TooDeep);
    // At the limit it is read.
    assert!(parse(JSON, nested(127).as_bytes()).is_ok());
}

#[test]
fn invalid_json_reason_is_korean_with_the_position_only() {
    let cases = [
        ("{not json", 1, 2),
        ("{\n  \"imp_uid\": ,\n}", 2, 14),
        // End of input: the position is where the body ended.
        (r#"{"imp_uid":"#, 1, 11),
        // Columns count characters, as an editor shows them: Hangul before the error is one
        // column a syllable, not three.
        (
            r#"{"imp_uid":"한글", "merchant_uid":"o","amount":500,}"#,
            1,
            50,
        ),
        ("{\n\"imp_uid\":\"한글\" x}", 2, 16),
    ];
    for (body, line, column) in cases {
        let e = err(JSON, body);
        assert_eq!(e, PayloadError::InvalidJson { line, column }, "{body:?}");
        assert_eq!(
            e.to_string(),
            format!("요청 본문이 올바른 JSON이 아닙니다 ({line}행 {column}열)")
        );
        assert_eq!(e.status(), 400);
    }
    assert_eq!(
        err(JSON, "{not json").to_string(),
        "요청 본문이 올바른 JSON이 아닙니다 (1행 2열)"
    );
    // Without a Content-Type, broken JSON is said to be broken JSON, not an unknown form.
    assert_eq!(
        err(None, "{bad"),
        PayloadError::InvalidJson { line: 1, column: 2 }
    );
    // Without a Content-Type a body that is neither JSON nor a form keeps the JSON reason.
    let e = err(None, "{\"imp_uid\":\"%FF");
    assert!(matches!(e, PayloadError::InvalidJson { .. }), "{e:?}");
    assert!(!e.to_string().contains("line"), "{e}");
}

#[test]
fn a_percent_sign_not_starting_an_escape_refuses_a_form() {
    // The field is named: a value by its key, a key as it was written.
    for (body, field) in [
        ("imp_uid=i&merchant_uid=m%&amount=50000", "merchant_uid"),
        ("imp_uid=i&merchant_uid=m%2&amount=50000", "merchant_uid"),
        ("imp_uid=i&merchant_uid=m&amount=50000&x=%ZZ", "x"),
        ("imp_uid=i&merchant_uid=m&amount=50000&%G1=x", "%G1"),
    ] {
        let want = PayloadError::FormBadEscape(field.into());
        assert_eq!(err(FORM, body), want, "{body}");
        // Without a Content-Type the body is read as the form it looks like.
        assert_eq!(err(None, body), want, "{body}");
    }
    assert!(PayloadError::FormBadEscape("merchant_uid".into())
        .to_string()
        .contains("필드 merchant_uid에 올바르지 않은 % 이스케이프"));
    // An escaped one is the character itself.
    let Ok(Parsed::Confirm(req)) = parse(FORM, b"imp_uid=i&merchant_uid=m%25&amount=50000") else {
        panic!("an escaped % is refused");
    };
    assert_eq!(req.order_id, "m%");
}

#[test]
fn percent_encoded_invalid_utf8_in_a_form_is_refused() {
    for (body, field) in [
        (
            "merchant_uid=blocked-%FF%FE&imp_uid=i&amount=1000",
            "merchant_uid",
        ),
        ("merchant_uid=m&imp_uid=i%C3&amount=1000", "imp_uid"),
        ("merchant_uid=m&imp_uid=i&amount=1000&memo=%80", "memo"),
    ] {
        let want = PayloadError::FormNotUtf8(field.into());
        assert_eq!(err(FORM, body), want, "{body}");
        assert_eq!(want.status(), 400);
        // Without a Content-Type the body is read as the form it looks like.
        assert_eq!(err(None, body), want, "{body}");
    }
    // A key that is not UTF-8 is named as written, its bytes beyond ASCII as `%XX` (as text,
    // EUC-KR's 한글 was mojibake), and the reason says it is the key.
    // A key that is text, with a bad escape, is named as it reads.
    assert_eq!(
        parse(
            FORM,
            "주문번호%ZZ=1&imp_uid=i&merchant_uid=m&amount=5".as_bytes()
        )
        .unwrap_err(),
        PayloadError::FormBadEscape("주문번호%ZZ".into())
    );
    for (body, key) in [
        (&b"merchant_uid=m&imp_uid=i&amount=1000&%FF=x"[..], "%FF"),
        (
            b"merchant%ED%A0%80_uid=m&imp_uid=i&amount=1000",
            "merchant%ED%A0%80_uid",
        ),
        (b"merchant_uid=m&imp_uid=i&amount=1000&\xc3=x", "%C3"),
        (
            b"imp_uid=i&merchant_uid=o&amount=500&\xc7\xd1\xb1\xdb=1",
            "%C7%D1%B1%DB",
        ),
    ] {
        let e = parse(FORM, body).unwrap_err();
        assert_eq!(e, PayloadError::FormKeyNotUtf8(key.into()));
        assert!(
            e.to_string()
                .starts_with(&format!("필드 이름 {key}이(가) UTF-8이 아닙니다")),
            "{e}"
        );
    }
}

#[test]
fn form_decoding() {
    let r = confirm(
        FORM,
        "merchant_uid=order+1%2B2%2F%EC%A3%BC%EB%AC%B8&imp_uid=imp%5F1&amount=1000&%EB%A9%94%EB%AA%A8=%ED%95%9C+%EA%B8%80"
            .as_bytes(),
    );
    assert_eq!(r.order_id, "order 1+2/주문", "+ is a space, %2B a plus");
    assert_eq!(r.tx_id, "imp_1");
    assert_eq!(r.payload.value()["메모"], "한 글");
    // Raw (unencoded) UTF-8 is fine.
    let r = confirm(FORM, "merchant_uid=주문-1&imp_uid=i&amount=1000".as_bytes());
    assert_eq!(r.order_id, "주문-1");
    // Empty pairs are skipped, a key without `=` has an empty value, only the first `=`
    // splits.
    let r = confirm(FORM, b"&&merchant_uid=first&&imp_uid=i=j&flag&amount=1000&");
    assert_eq!(r.order_id, "first");
    assert_eq!(r.tx_id, "i=j");
    assert_eq!(r.payload.value()["flag"], "");
    assert_eq!(r.payload.value().as_object().map(Map::len), Some(4));
    // Nothing but separators is no form at all: the format error lists the fields.
    assert_eq!(err(FORM, ""), PayloadError::EmptyBody);
    for body in ["&", "&&&"] {
        assert_eq!(err(FORM, body), PayloadError::UnknownFormat, "{body:?}");
    }
    assert_eq!(err(FORM, "="), PayloadError::UnknownFormat);
    // V2 messages come as JSON: a form shaped like one is neither ignored (a 200 without a
    // rule) nor read as a confirm.
    for body in [
        "type=Transaction.Paid&data=x",
        "type=Transaction.Confirm&data=x&paymentId=o-1&totalAmount=1000",
    ] {
        assert_eq!(err(FORM, body), PayloadError::MessageAsForm, "{body:?}");
    }
    assert_eq!(
        err(FORM, "merchant_uid=m&imp_uid=+&amount=1"),
        PayloadError::Empty("imp_uid")
    );
}

/// The server's limit holds for every caller of the parser (`eval` among them).
#[test]
fn bodies_over_64_kib_are_413() {
    let v1 = r#"{"imp_uid":"i","merchant_uid":"m","amount":1}"#;
    let padded = |len: usize| format!("{v1}{}", " ".repeat(len - v1.len()));
    confirm(JSON, padded(MAX_BODY).as_bytes());
    let e = err(JSON, &padded(MAX_BODY + 1));
    assert_eq!(
        (e.status(), e.to_string().as_str()),
        (413, "요청 본문이 너무 큽니다 (최대 64 KiB)")
    );
}

#[test]
fn content_types() {
    assert_eq!(
        err(Some("text/plain"), "{}").status(),
        415,
        "other types are refused with 415"
    );
    let v1 = br#"{"imp_uid":"i","merchant_uid":"m","amount":1}"#;
    confirm(Some("Application/JSON;charset=UTF-8"), v1);
    // Empty is missing (JSON, then a form); garbled is not a type we read.
    confirm(Some(""), v1);
    confirm(Some("  "), v1);
    for garbled in [";;;", "; charset=utf-8", ",application/json"] {
        assert_eq!(err(Some(garbled), "{}").status(), 415, "{garbled}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), ct in 0..4usize) {
        let ct = [None, JSON, Some("application/x-www-form-urlencoded"), Some("text/plain")][ct];
        let _ = parse(ct, &body);
    }

    /// Bodies built from the pieces form decoding cares about, so escapes actually occur.
    #[test]
    fn form_like_bodies_never_panic_nor_decode_lossily(
        pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "&", "=", "+", "%", "%2", "%FF", "%C3", "%A9", "%ED%A0%80", "%F0%9F%92%B3",
                "%2B", "%26", "%3D", "%zz", "a", "é", "1", "imp_uid=", "merchant_uid=", "amount=",
            ]),
            0..24,
        ),
        ct in 0..2usize,
    ) {
        let ct = [None, FORM][ct];
        let body = pieces.concat();
        let _ = parse(ct, body.as_bytes());
        if let Ok(form) = parse_form(body.as_bytes()) {
            let text = form.to_string();
            prop_assert!(!text.contains('\u{FFFD}'), "lossy decoding of {body:?}: {text}");
        }
    }
}

/// `curl -d '{"imp_uid":…}'` without `-H content-type` labels JSON as a form: the 400 says so.
#[test]
fn json_labelled_as_a_form_is_told_apart() {
    let body = br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000}"#;
    assert_eq!(
        parse(FORM, body).unwrap_err(),
        PayloadError::JsonLabelledAsForm
    );
    assert_eq!(PayloadError::JsonLabelledAsForm.status(), 400);
    let with_percent =
        br#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":5000,"memo":"50%"}"#;
    assert_eq!(
        parse(FORM, with_percent).unwrap_err(),
        PayloadError::JsonLabelledAsForm
    );
    // Whatever a form reading would find in it: fields hidden in a JSON string (or after the
    // JSON) must not decide the payment that the JSON itself names.
    for hidden in [
        &br#"{"imp_uid":"imp_1","merchant_uid":"blocked-7","amount":5000000,"memo":"&imp_uid=imp_1&merchant_uid=ok-7&amount=1000&"}"#[..],
        br#"{"imp_uid":"imp_1","merchant_uid":"blocked-7","amount":5000000}&imp_uid=imp_1&merchant_uid=ok-7&amount=1000"#,
        b" [1]&imp_uid=imp_1&merchant_uid=ok-7&amount=1000",
    ] {
        assert_eq!(
            parse(FORM, hidden).unwrap_err(),
            PayloadError::JsonLabelledAsForm,
            "{}",
            String::from_utf8_lossy(hidden)
        );
    }
    // A form that merely lacks the fields keeps the usual reason.
    assert_eq!(
        parse(FORM, b"a=1").unwrap_err(),
        PayloadError::UnknownFormat
    );
}

/// The other way round: a confirm form sent as `application/json` is told so; text that is
/// neither stays a JSON error with its position.
#[test]
fn a_form_labelled_as_json_is_told_apart() {
    let form = b"imp_uid=imp_1&merchant_uid=order-1&amount=5000";
    assert_eq!(
        parse(JSON, form).unwrap_err(),
        PayloadError::FormLabelledAsJson
    );
    assert!(matches!(parse(None, form), Ok(Parsed::Confirm(_))));
    assert_eq!(
        parse(JSON, b"hello").unwrap_err(),
        PayloadError::InvalidJson { line: 1, column: 1 }
    );
    assert_eq!(
        parse(JSON, b"{\"a\"=1}").unwrap_err(),
        PayloadError::InvalidJson { line: 1, column: 5 }
    );
}

/// A key serde_json reserves is refused in a form as in JSON: the decision log writes a form
/// as a JSON object, which `replay` reads back.
#[test]
fn a_reserved_key_is_refused_in_a_form() {
    let body = "imp_uid=i&merchant_uid=m&amount=1000&%24serde_json%3A%3Aprivate%3A%3ANumber=5";
    let want = PayloadError::ReservedField("$serde_json::private::Number".into());
    assert_eq!(err(FORM, body), want);
    assert_eq!(err(None, body), want);
}

/// `chunked` counted across the codings of every `Transfer-Encoding` header, in any case.
#[test]
fn chunked_named_twice_is_found_in_one_header_or_several() {
    let headers = |values: &[&str]| {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    };
    for twice in [
        &["chunked, chunked"][..],
        &["Chunked", " CHUNKED "],
        &["chunked,gzip,chunked"],
    ] {
        assert!(chunked_twice(&headers(twice)), "{twice:?}");
    }
    for once in [
        &[][..],
        &["chunked"],
        &["gzip, chunked"],
        &["identity", "chunked"],
    ] {
        assert!(!chunked_twice(&headers(once)), "{once:?}");
    }
}

/// A body's reading follows what decides how it is read — the media type, not its case or
/// parameters, and without one the body itself — so that two deliveries of one signed message
/// read alike exactly when their readings are equal.
#[test]
fn the_reading_of_a_body_is_how_it_is_read() {
    let reading = |types: &[&str], body: &[u8]| {
        let mut headers = http::HeaderMap::new();
        for t in types {
            headers.append(http::header::CONTENT_TYPE, t.parse().unwrap());
        }
        super::reading(&headers, body)
    };
    let (json, form) = (&br#" {"imp_uid":"i"}"#[..], &b"imp_uid=i"[..]);
    assert_eq!(reading(&["application/json"], json), "json");
    assert_eq!(reading(&["Application/JSON; charset=utf-8"], json), "json");
    assert_eq!(
        reading(&["application/json;CHARSET=\"UTF-8\""], json),
        "json"
    );
    // Security trial: a copy labelled ISO-8859-1, forwarded so, was read otherwise by the
    // merchant's handler and then decided PortOne's own delivery as its repeat.
    for other in [
        "application/json; charset=iso-8859-1",
        "application/json; charset=\"utf-16\"",
        "application/json; charset=utf-8; charset=latin1",
        "application/json; charset*=utf-8''x",
        "application/json; charset=",
    ] {
        assert_eq!(reading(&[other], json), "json, other charset", "{other}");
    }
    assert_eq!(
        reading(&["application/x-www-form-urlencoded; charset=euc-kr"], form),
        "form, other charset"
    );
    assert_eq!(
        reading(&["application/x-www-form-urlencoded"], form),
        "form"
    );
    // Without a type, JSON reads as JSON (as with one), anything else as a form.
    for none in [&[][..], &[""]] {
        assert_eq!(reading(none, json), "json");
        assert_eq!(reading(none, form), "form");
    }
    for unread in [
        &["text/plain"][..],
        &["application/json", "application/json"],
    ] {
        assert_eq!(reading(unread, json), "none", "{unread:?}");
    }
}

/// Trial: an empty key given twice was named as nothing, "필드 가 중복되어 있습니다".
#[test]
fn an_empty_field_name_is_shown_quoted() {
    let body = br#"{"imp_uid":"imp_1","merchant_uid":"o-1","amount":1000,"":1,"":2}"#;
    let e = parse(Some("application/json"), body).unwrap_err();
    assert!(e.to_string().starts_with("필드 \"\"가 중복되어"), "{e}");
    let e = parse(FORM, b"imp_uid=imp_1&merchant_uid=o-1&amount=1000&=1&=2").unwrap_err();
    assert!(e.to_string().starts_with("필드 \"\"가 중복되어"), "{e}");
    // Verification: nested, it read `x.`.
    let body = br#"{"imp_uid":"imp_1","merchant_uid":"o-1","amount":1000,"x":{"":1,"":2}}"#;
    let e = parse(Some("application/json"), body).unwrap_err();
    assert!(e.to_string().starts_with("필드 x.\"\"가 중복되어"), "{e}");
}

/// A body of many small values is refused before it is parsed (an audit's 64 KiB of 8,000
/// objects held about 20 MB per request while its rules read `payload`); PortOne's hold tens,
/// and a long text is one value however long.
#[test]
fn a_body_of_too_many_values_is_refused_before_it_is_parsed() {
    let v1 = r#""imp_uid":"i","merchant_uid":"m","amount":1"#;
    let objects = |n: usize| format!(r#"{{{v1},"x":[{}]}}"#, vec![r#"{"a":0}"#; n].join(","));
    assert_eq!(
        err(Some("application/json"), &objects(8_000)),
        PayloadError::TooManyParts
    );
    assert_eq!(err(None, &objects(400)), PayloadError::TooManyParts);
    confirm(Some("application/json"), objects(300).as_bytes());
    let long = format!(r#"{{{v1},"memo":"{}"}}"#, "{[,:".repeat(10_000));
    confirm(Some("application/json"), long.as_bytes());
    // A form's fields, the ids among them.
    let form = |n: usize| {
        let mut f = "imp_uid=i&merchant_uid=m&amount=1".to_owned();
        for i in 3..n {
            f.push_str(&format!("&f{i}=1"));
        }
        f
    };
    confirm(
        Some("application/x-www-form-urlencoded"),
        form(1_000).as_bytes(),
    );
    assert_eq!(
        err(Some("application/x-www-form-urlencoded"), &form(1_001)),
        PayloadError::TooManyParts
    );
    assert_eq!(err(None, &form(1_001)), PayloadError::TooManyParts);
    assert_eq!(PayloadError::TooManyParts.status(), 400);
    // The type is judged first (SPEC §9: content type, then payload).
    assert_eq!(
        err(Some("text/plain"), &objects(8_000)),
        PayloadError::UnsupportedContentType("text/plain".into())
    );
}
