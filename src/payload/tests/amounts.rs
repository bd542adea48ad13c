//! Amounts in request bodies, through either parser: kept as written, exact, or refused.

use super::*;

/// With `arbitrary_precision`, serde_json's `Value` parser turns an object holding only its
/// private number key into a number: the amount was `5` for the proxy and an object for a
/// merchant. Such a key is refused wherever it is (see `reserved.rs`).
#[test]
fn an_object_in_serde_jsons_private_number_shape_is_no_amount() {
    for body in [
        r#"{"imp_uid":"i","merchant_uid":"m","amount":{"$serde_json::private::Number":"5"}}"#,
        r#"{"imp_uid":"i\u0031","merchant_uid":"m","amount":{"$serde_json::private::Number":"5"}}"#,
        r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":{"$serde_json::private::Number":"5"}}}"#,
    ] {
        assert_eq!(
            err(JSON, body),
            PayloadError::ReservedField("$serde_json::private::Number".into()),
            "{body}"
        );
    }
}

/// The body's own text of the amount, through either parser, in every format: `{amount}`
/// and the decision log show what the body said, not serde_json's rewriting (`1e+3`).
#[test]
fn request_amounts_keep_the_bodys_text() {
    for (number, value) in [
        ("1e3", "1000"),
        ("5000e0", "5000"),
        ("3.0000001e6", "3000000.1"),
        ("0e5", "0"),
        ("3e6", "3000000"),
        ("3E+6", "3000000"),
        ("12345e-2", "123.45"),
        ("10.50", "10.5"),
        ("5000.000000000000000000000000000000", "5000"),
    ] {
        let bodies = [
            format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":{number}}}"#),
            // An escape sends it to the full parser.
            format!(r#"{{"imp_uid":"i\u0031","merchant_uid":"m","amount":{number}}}"#),
            format!(r#"{{"payment_id":"p","tx_id":"t","total_amount":{number}}}"#),
            format!(r#"{{"payment_id":"p\u0031","tx_id":"t","total_amount":{number}}}"#),
            format!(
                r#"{{"type":"Transaction.Confirm","data":{{"paymentId":"p","transactionId":"t","totalAmount":{number}}}}}"#
            ),
            format!(
                r#"{{"type":"Transaction.Confirm","data":{{"paymentId":"p\u0031","transactionId":"t","totalAmount":{number}}}}}"#
            ),
        ];
        for body in &bodies {
            let r = confirm(JSON, body.as_bytes());
            assert_eq!(r.amount.as_str(), number, "{body}");
            assert_eq!(r.amount.value().to_string(), value, "{body}");
        }
        // In a string (JSON or form) only plain decimals are numbers: `"1e3"` is text that
        // readers read differently (`parseInt` says 1).
        let strings = [
            format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":"{number}"}}"#),
            format!(r#"{{"imp_uid":"i","merchant_uid":"m\u0031","amount":" {number}"}}"#),
        ];
        let form = format!(
            "imp_uid=i&merchant_uid=m&amount={}",
            number.replace('+', "%2B")
        );
        if number.contains(['e', 'E']) {
            for body in &strings {
                assert_eq!(
                    err(JSON, body),
                    PayloadError::WrongType {
                        field: "amount",
                        expected: "숫자"
                    },
                    "{body}"
                );
            }
            assert!(parse(FORM, form.as_bytes()).is_err(), "{form}");
        } else {
            for body in &strings {
                assert_eq!(
                    confirm(JSON, body.as_bytes()).amount.as_str(),
                    number,
                    "{body}"
                );
            }
            assert_eq!(confirm(FORM, form.as_bytes()).amount.as_str(), number);
        }
    }
    // Digits in a string come as they were decoded.
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":"\u0031000"}"#,
    );
    assert_eq!(r.amount.as_str(), "1000");
    let r = confirm(FORM, b"imp_uid=i&merchant_uid=m&amount=%201000%0D%0A");
    assert_eq!(r.amount.as_str(), "1000");
}

#[test]
fn superfluous_zeros_are_exact_and_accepted() {
    let value = |s: &str| s.parse::<Amount>().map(|a| a.value().to_string());
    for (text, want) in [
        ("5000.000000000000000000000000000000", "5000"),
        ("0.0000000000000000000000000000000000", "0"),
        ("0e-50", "0"),
        ("0.000e99999999999999999999", "0"),
        ("-0.0000000000000000000000000000000000", "0"),
        ("10.500000000000000000000000000000000000000", "10.5"),
        ("50000000000000000000000000000e-24", "50000"),
        ("0.00000000000000000000000000000000005e35", "5"),
        ("00000000000000000000000000000000001000", "1000"),
        ("1000.0e0", "1000"),
        (
            "0.0000000000000000000000000001",
            "0.0000000000000000000000000001",
        ),
        (
            "79228162514264337593543950335",
            "79228162514264337593543950335",
        ),
        (
            "7922816251426433759354395033.5",
            "7922816251426433759354395033.5",
        ),
        (
            "7.9228162514264337593543950335000e28",
            "79228162514264337593543950335",
        ),
    ] {
        assert_eq!(value(text), Ok(want.to_owned()), "{text}");
    }
    // In a body too, through either parser.
    for body in [
        r#"{"imp_uid":"i","merchant_uid":"m","amount":5000.000000000000000000000000000000}"#,
        r#"{"imp_uid":"i1","merchant_uid":"m","amount":5000.000000000000000000000000000000}"#,
    ] {
        let r = confirm(JSON, body.as_bytes());
        assert_eq!(r.amount.as_i64(), Some(5000));
        assert_eq!(r.amount.as_str(), "5000.000000000000000000000000000000");
    }
    let r = confirm(
        JSON,
        br#"{"imp_uid":"i","merchant_uid":"m","amount":0.0000000000000000000000000000000000}"#,
    );
    assert_eq!(r.amount.as_i64(), Some(0));
    // What the digits cannot hold exactly is still refused.
    for text in [
        "0.00000000000000000000000000001",
        "79228162514264337593543950336",
        "7922816251426433759354395033.6",
        "1.00000000000000000000000000001",
        "123456789012345678901234567890",
        "1000000000000000000000000000000.5",
        "1e-29",
        "8e28",
        "1e-99999999999999999999",
    ] {
        assert_eq!(text.parse::<Amount>(), Err(AmountError::TooLarge), "{text}");
    }
    // A negative amount is refused as negative, however it is written; zero is zero.
    for text in ["-1", "-0.5e-40", "-1e400", "-00001"] {
        assert_eq!(text.parse::<Amount>(), Err(AmountError::Negative), "{text}");
    }
}

proptest! {
    #[test]
    fn arbitrary_amount_strings_never_panic(s in ".{0,64}") {
        let _ = s.parse::<Amount>();
        let body = serde_json::json!({"imp_uid": "i", "merchant_uid": "m", "amount": s});
        let _ = parse(JSON, body.to_string().as_bytes());
    }
}
