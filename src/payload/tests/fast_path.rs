//! The fast path against the full parser: which bodies it takes, that both answer alike (a
//! property test), and that the decision log gets the body's own bytes from either.

use super::*;

/// The full parser alone, as `parse` would call it.
fn full(encoding: Encoding, body: &[u8]) -> Result<Parsed, PayloadError> {
    parse_full(encoding, body, || bytes::Bytes::copy_from_slice(body))
}

/// What a parse decided, comparable across the fast path and the full parser.
fn summary(r: &Result<Parsed, PayloadError>) -> String {
    match r {
        Ok(Parsed::Confirm(c)) => format!(
            "confirm {} {:?} {:?} {} {:?} {}",
            c.api,
            c.order_id,
            c.tx_id,
            c.amount,
            c.store_id,
            c.payload.value()
        ),
        Ok(Parsed::Ignored { message_type, .. }) => format!("ignored {message_type}"),
        Err(e) => format!("error {e:?}"),
    }
}

#[test]
fn fast_path_reads_the_portone_examples() {
    for name in [
        "v1.json",
        "v1-fractional.json",
        "v2-2024-01-01.json",
        "v2-2024-04-25.json",
    ] {
        let body = testdata(name);
        assert!(fast::parse(&body).is_some(), "{name}");
        assert_eq!(
            summary(&parse(JSON, &body)),
            summary(&full(Encoding::Json, &body)),
            "{name}"
        );
    }
}

/// Plain bodies do take the shortcut (a numeric-string amount too), up to its nesting limit:
/// the property test below checks only that the answers agree, which a fast path that
/// declined everything would pass.
#[test]
fn fast_path_takes_plain_bodies_up_to_its_nesting_limit() {
    let ids = fast::parse(br#"{"imp_uid":"i","merchant_uid":"m","amount":"1000"}"#).unwrap();
    assert_eq!(
        (ids.order_id.as_str(), ids.amount.to_string()),
        ("m", "1000".to_owned())
    );
    let nested = |open: usize| {
        // `open` brackets in all: the body's own and a nested list's.
        let list = format!("{}{}", "[".repeat(open - 1), "]".repeat(open - 1));
        format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":1,"x":{list}}}"#)
    };
    assert!(fast::parse(nested(fast::MAX_OPEN_BRACKETS).as_bytes()).is_some());
    assert!(fast::parse(nested(fast::MAX_OPEN_BRACKETS + 1).as_bytes()).is_none());
}

#[test]
fn fast_path_leaves_the_unusual_to_the_full_parser() {
    for body in [
        r#"{"imp_uid":"i\u0031","merchant_uid":"m","amount":1}"#,
        r#"{"imp_uid":"i","merchant_uid":"m","amount":1,"amount":2}"#,
        r#"{"imp_uid":null,"payment_id":"p","tx_id":"t","total_amount":1}"#,
        r#"{"imp_uid":"i","merchant_uid":"  ","amount":1}"#,
        r#"{"type":"Transaction.Cancelled","data":{}}"#,
        r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1,"storeId":5}}"#,
        r#"{"imp_uid":"i","merchant_uid":"m","amount":1,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        "[1]",
        "",
    ] {
        assert!(fast::parse(body.as_bytes()).is_none(), "{body}");
    }
}

/// Through the full parser (escapes, exponents) as through the fast path, the decision log
/// gets the body's own bytes, not a re-serialised copy with re-sorted keys.
#[test]
fn decision_log_gets_the_bodys_own_bytes_from_either_parser() {
    for body in [
        "{\"merchant_uid\":\"\\u006frder-1\",\n  \"imp_uid\":\"i\",\r\n\"amount\":3e6}",
        r#"{"z":1,"imp_uid":"i","merchant_uid":"o","amount":1E3,"a":[1.50,2e-0]}"#,
        r#"  {"type":"Transaction.Confirm","data":{"totalAmount":1000,"paymentId":"p\/q","transactionId":"t"}}  "#,
        "{\"imp_uid\":\"i\",\"merchant_uid\":\"\u{d55c}\\t\",\"amount\":\"\\u0031000\"}\n",
        r#"{"imp_uid":"i","merchant_uid":"o","amount":10.50,"memo":"\"quoted\" \\ \ud83d\ude00"}"#,
        r#"{"imp_uid":"i","merchant_uid":"o","amount":1,"big":123456789012345678901234567890.5}"#,
    ] {
        for ct in [JSON, None] {
            for r in [
                confirm(ct, body.as_bytes()),
                match parse_bytes(ct, &bytes::Bytes::copy_from_slice(body.as_bytes())) {
                    Ok(Parsed::Confirm(r)) => r,
                    other => panic!("{other:?}"),
                },
            ] {
                let mut out = Vec::new();
                r.payload.write_json(&mut out).unwrap();
                let text = String::from_utf8(out).unwrap();
                assert_eq!(text, body.replace(['\n', '\r'], " "), "{body}");
                assert!(!text.contains(['\n', '\r']));
                // Still JSON, and the very value rules see.
                let logged: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(&logged, r.payload.value(), "{body}");
            }
        }
    }
}

#[test]
fn decision_log_gets_the_body_on_one_line_and_exact() {
    let body = testdata("v1.json");
    let Ok(Parsed::Confirm(r)) = parse(JSON, &body) else {
        panic!("v1.json is a confirm request")
    };
    let mut out = Vec::new();
    r.payload.write_json(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        String::from_utf8(body.clone()).unwrap().replace('\n', " ")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::from_slice::<Value>(&body).unwrap()
    );
    // A form body has no JSON bytes: its value is written.
    let Ok(Parsed::Confirm(r)) = parse(
        Some("application/x-www-form-urlencoded"),
        b"imp_uid=i&merchant_uid=m%20n&amount=5",
    ) else {
        panic!("a form confirm request")
    };
    let mut out = Vec::new();
    r.payload.write_json(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"amount":"5","imp_uid":"i","merchant_uid":"m n"}"#
    );
}

/// JSON values for the known fields, chosen so that every branch of both parsers is hit.
fn json_value() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        r#""order-1""#,
        r#""""#,
        r#""  ""#,
        r#""imp_1""#,
        r#""a\b""#,
        r#""한글 주문""#,
        r#""Transaction.Confirm""#,
        r#""Transaction.Cancelled""#,
        r#""1000""#,
        r#"" 1000 ""#,
        r#""1e3""#,
        r#""-5""#,
        r#""12a""#,
        "1000",
        "0",
        "-1",
        "-0",
        "10.50",
        "1E3",
        "1e-30",
        "1e400",
        "99999999999999999999999999999",
        "1.0e0",
        "1e+3",
        "5000e0",
        "3.0000001e6",
        "0e5",
        "5000.000000000000000000000000000000",
        "0.0000000000000000000000000000000000",
        "0.1",
        "null",
        "true",
        "[1,2]",
        "{}",
        r#"{"paymentId":"p","transactionId":"t","totalAmount":1000}"#,
        r#"{"paymentId":"p","transactionId":"t","totalAmount":"1000","storeId":"s-1"}"#,
        r#"{"paymentId":"p","transactionId":"t","totalAmount":1000,"storeId":null}"#,
        r#"{"paymentId":"p","transactionId":"t","totalAmount":1000,"storeId":5}"#,
        r#"{"paymentId":null,"transactionId":"t","totalAmount":1000}"#,
        r#"{"paymentId":"p","paymentId":"q","transactionId":"t","totalAmount":1}"#,
        r#"{"paymentId":"p","transactionId":"t","totalAmount":1e3,"x":{"y":0,"y":0}}"#,
        r#"{"transactionId":"t","totalAmount":1}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"\u0061":2}"#,
        r#"[{"k":1},{"k":2,"k":3}]"#,
        r#"[{"k":1},{"k":2}]"#,
    ])
}

/// Where a value from [`json_value`] names a key twice, below the key it is the value of.
fn inner_duplicate(value: &str) -> Option<&'static str> {
    match value {
        r#"{"paymentId":"p","paymentId":"q","transactionId":"t","totalAmount":1}"# => {
            Some("paymentId")
        }
        r#"{"paymentId":"p","transactionId":"t","totalAmount":1e3,"x":{"y":0,"y":0}}"# => {
            Some("x.y")
        }
        r#"{"a":1,"a":2}"# | r#"{"a":1,"\u0061":2}"# => Some("a"),
        r#"[{"k":1},{"k":2,"k":3}]"# => Some("[1].k"),
        _ => None,
    }
}

/// The known fields of one format, so that many generated bodies are accepted (their
/// values still vary, and other entries are added).
fn skeleton() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let value =
        || json_value().prop_filter("no duplicate inside", |v| inner_duplicate(v).is_none());
    prop_oneof![
        Just(Vec::new()),
        (value(), value()).prop_map(|(order, amount)| vec![
            ("imp_uid", r#""imp_1""#.to_owned()),
            ("merchant_uid", order.to_owned()),
            ("amount", amount.to_owned()),
        ]),
        value().prop_map(|amount| vec![
            ("payment_id", r#""p""#.to_owned()),
            ("tx_id", r#""t""#.to_owned()),
            ("total_amount", amount.to_owned()),
        ]),
        (value(), value()).prop_map(|(amount, store)| vec![
            ("type", r#""Transaction.Confirm""#.to_owned()),
            (
                "data",
                format!(
                    r#"{{"paymentId":"p","transactionId":"t","totalAmount":{amount},"storeId":{store}}}"#
                ),
            ),
        ]),
    ]
}

/// The first key named twice in a body of these entries, as its path: what both parsers
/// must refuse it for.
fn expected_duplicate(entries: &[(&str, String)]) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for (key, value) in entries {
        let key = key.replace(r"\u005f", "_");
        if !seen.insert(key.clone()) {
            return Some(key);
        }
        if let Some(inner) = inner_duplicate(value) {
            let sep = if inner.starts_with('[') { "" } else { "." };
            return Some(format!("{key}{sep}{inner}"));
        }
    }
    None
}

fn json_key() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "imp_uid",
        "merchant_uid",
        "amount",
        "payment_id",
        "tx_id",
        "total_amount",
        "type",
        "data",
        "storeId",
        "memo",
        r"merchant\u005fuid",
    ])
}

proptest! {
    /// The fast path answers only where the full parser agrees, field for field.
    #[test]
    fn fast_path_agrees_with_the_full_parser(
        skeleton in skeleton(),
        more in proptest::collection::vec((json_key(), json_value()), 0..9),
        repeats in proptest::bool::weighted(0.25),
        rotate in 0..12usize,
        space in proptest::sample::select(vec!["", " ", "\n  "]),
        ct in 0..2usize,
    ) {
        let mut entries: Vec<(&str, String)> = skeleton;
        entries.extend(more.into_iter().map(|(k, v)| (k, v.to_owned())));
        // Eight keys of eleven nearly always repeat one: most bodies keep only the first
        // of each (so the two parsers are compared on bodies they accept), some keep them.
        if !repeats {
            let mut seen = std::collections::HashSet::new();
            entries.retain(|(k, _)| seen.insert(k.replace(r"\u005f", "_")));
        }
        if !entries.is_empty() {
            let n = rotate % entries.len();
            entries.rotate_left(n);
        }
        let body = format!(
            "{{{space}{}{space}}}",
            entries
                .iter()
                .map(|(k, v)| format!("\"{k}\":{space}{v}"))
                .collect::<Vec<_>>()
                .join(&format!(",{space}"))
        );
        let ct = [JSON, None][ct];
        let full = full(encoding(ct).unwrap(), body.as_bytes());
        prop_assert_eq!(summary(&parse(ct, body.as_bytes())), summary(&full), "{}", body);
        // A key named twice anywhere is refused by both, naming the first repeat.
        match expected_duplicate(&entries) {
            Some(path) => {
                prop_assert_eq!(
                    summary(&full),
                    summary(&Err(PayloadError::DuplicateField(path))),
                    "{}", body
                );
                prop_assert!(fast::parse(body.as_bytes()).is_none());
            }
            None => prop_assert!(
                !matches!(full, Err(PayloadError::DuplicateField(_))),
                "{}: {:?}", body, full
            ),
        }
        // Whichever parser read it, the decision log gets the body's bytes on one line.
        if let Ok(Parsed::Confirm(r)) = &full {
            let mut out = Vec::new();
            r.payload.write_json(&mut out).unwrap();
            prop_assert_eq!(&out, &body.replace('\n', " ").into_bytes());
            let logged: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&logged, r.payload.value());
            // And the amount is the body's own text of it (a string's content, trimmed).
            let amount_key = match r.api {
                Api::V1 => Some("amount"),
                Api::V2_2024_01_01 => Some("total_amount"),
                Api::V2_2024_04_25 => None,
            };
            if let Some((_, v)) = amount_key.and_then(|k| entries.iter().find(|(key, _)| *key == k)) {
                let written = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map_or(v.as_str(), str::trim);
                prop_assert_eq!(r.amount.as_str(), written);
            }
        }
        if let Some(ids) = fast::parse(body.as_bytes()) {
            let Ok(Parsed::Confirm(r)) = &full else {
                panic!("fast path accepted what the full parser refuses: {body}")
            };
            prop_assert_eq!(ids.amount.as_str(), r.amount.as_str());
            let mut out = Vec::new();
            fast::write_one_line(body.as_bytes(), &mut out);
            let compact: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&compact, r.payload.value());
            prop_assert!(!out.contains(&b'\n'));
        }
    }
}
