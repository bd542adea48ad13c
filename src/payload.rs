//! PortOne confirm payloads (V1, V2 `2024-01-01`, V2 `2024-04-25`) turned into one
//! [`ConfirmRequest`]. Pure: bytes and a content type in, a request or a reasoned error out.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// The V2 message type that asks for a confirmation; every other type is acknowledged and ignored.
const CONFIRM_TYPE: &str = "Transaction.Confirm";

/// Which PortOne format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    V1,
    V2_2024_01_01,
    V2_2024_04_25,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V2_2024_01_01 => "v2-2024-01-01",
            Api::V2_2024_04_25 => "v2-2024-04-25",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment amount kept exactly as PortOne sent it: compared as a decimal, rendered as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    value: Decimal,
    text: String,
}

impl Amount {
    pub fn value(&self) -> Decimal {
        self.value
    }

    /// The amount digit for digit as it was sent; always JSON number syntax.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount as an integer when it is one (the usual case for KRW).
    pub fn as_i64(&self) -> Option<i64> {
        use rust_decimal::prelude::ToPrimitive;
        if self.value.fract().is_zero() {
            self.value.to_i64()
        } else {
            None
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Parses a non-negative decimal number written in JSON style (`50000`, `10.5`, `1e3`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if !is_json_number(text) {
            return Err(AmountError::NotANumber);
        }
        let value = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        }
        // The syntax is valid, so rust_decimal refused it for its range (28 significant digits).
        .map_err(|_| AmountError::TooLarge)?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        Ok(Amount {
            value: value.normalize().max(Decimal::ZERO),
            text: text.to_owned(),
        })
    }
}

/// JSON number syntax: `-?digits(.digits)?([eE][+-]?digits)?`.
fn is_json_number(s: &str) -> bool {
    fn digits(s: &str) -> (&str, usize) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (&s[n..], n)
    }
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mut rest, n) = digits(s);
    if n == 0 {
        return false;
    }
    if let Some(frac) = rest.strip_prefix('.') {
        let (r, n) = digits(frac);
        if n == 0 {
            return false;
        }
        rest = r;
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let (r, n) = digits(exp);
        if n == 0 {
            return false;
        }
        rest = r;
    }
    rest.is_empty()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    NotANumber,
    Negative,
    TooLarge,
}

/// One confirm request in the shape rules see, whatever format it arrived in.
#[derive(Debug, Clone)]
pub struct ConfirmRequest {
    /// The merchant's order id (V1 `merchant_uid`, V2 `paymentId` / `payment_id`).
    pub order_id: String,
    /// PortOne's id for this payment attempt (V1 `imp_uid`, V2 `transactionId` / `tx_id`).
    pub tx_id: String,
    pub amount: Amount,
    pub store_id: Option<String>,
    pub api: Api,
    /// The whole original body, for rules that read custom fields.
    pub payload: Value,
}

/// What a body turned out to be.
#[derive(Debug)]
pub enum Parsed {
    Confirm(ConfirmRequest),
    /// A V2 message of another `type`: acknowledged, approves nothing.
    Ignored {
        message_type: String,
    },
}

/// Why a body was refused. `Display` is the buyer-facing (Korean) text of the 400/415 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("지원하지 않는 Content-Type입니다: {0} (application/json 또는 application/x-www-form-urlencoded만 받습니다)")]
    UnsupportedContentType(String),
    #[error("요청 본문이 올바른 JSON이 아닙니다: {0}")]
    InvalidJson(String),
    #[error("요청 본문이 올바른 form-urlencoded 형식이 아닙니다")]
    InvalidForm,
    #[error("요청 본문이 JSON 객체가 아닙니다")]
    NotAnObject,
    #[error("알 수 없는 요청 형식입니다: imp_uid/merchant_uid/amount (V1), payment_id/tx_id/total_amount (V2) 또는 type/data (V2) 필드가 필요합니다")]
    UnknownFormat,
    #[error("필수 필드 {0}가 없습니다")]
    Missing(&'static str),
    #[error("필드 {0}가 비어 있습니다")]
    Empty(&'static str),
    #[error("필드 {field}의 형식이 올바르지 않습니다: {expected}이어야 합니다")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("필드 {0}는 0 이상이어야 합니다")]
    NegativeAmount(&'static str),
    #[error("필드 {0}의 값이 너무 크거나 자릿수가 너무 많습니다 (유효숫자 28자리까지)")]
    AmountTooLarge(&'static str),
}

impl PayloadError {
    /// 415 for a content type we do not read, 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            PayloadError::UnsupportedContentType(_) => 415,
            _ => 400,
        }
    }
}

/// How the body is encoded, from the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
    /// No header: JSON first, then a form (some senders omit it).
    Unknown,
}

fn encoding(content_type: Option<&str>) -> Result<Encoding, PayloadError> {
    let Some(ct) = content_type else {
        return Ok(Encoding::Unknown);
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(Encoding::Form)
    } else if mime.is_empty() {
        Ok(Encoding::Unknown)
    } else {
        Err(PayloadError::UnsupportedContentType(
            ct.chars().take(100).collect(),
        ))
    }
}

/// Checks only the content type, so the guard order of SPEC §9 (415 before 400) can be kept.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), PayloadError> {
    encoding(content_type).map(|_| ())
}

/// Reads a confirm body in any PortOne format.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Parsed, PayloadError> {
    let value = match encoding(content_type)? {
        Encoding::Json => parse_json(body)?,
        Encoding::Form => parse_form(body)?,
        Encoding::Unknown => match parse_json(body) {
            Ok(v) => v,
            Err(json_err) => parse_form(body).map_err(|_| json_err)?,
        },
    };
    normalise(value)
}

fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::InvalidJson(e.to_string()))
}

/// A form body becomes a JSON object of strings, so rules see the same `payload` either way.
fn parse_form(body: &[u8]) -> Result<Value, PayloadError> {
    // serde_urlencoded decodes invalid UTF-8 lossily; a payment id must be exact, so refuse it.
    std::str::from_utf8(body).map_err(|_| PayloadError::InvalidForm)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| PayloadError::InvalidForm)?;
    if pairs.is_empty() {
        return Err(PayloadError::InvalidForm);
    }
    Ok(Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    ))
}

fn normalise(payload: Value) -> Result<Parsed, PayloadError> {
    let Value::Object(obj) = &payload else {
        return Err(PayloadError::NotAnObject);
    };
    let (api, ids) = if obj.contains_key("type") && obj.contains_key("data") {
        let message_type =
            obj.get("type")
                .and_then(Value::as_str)
                .ok_or(PayloadError::WrongType {
                    field: "type",
                    expected: "문자열",
                })?;
        if message_type != CONFIRM_TYPE {
            return Ok(Parsed::Ignored {
                message_type: message_type.chars().take(100).collect(),
            });
        }
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or(PayloadError::WrongType {
                field: "data",
                expected: "객체",
            })?;
        (
            Api::V2_2024_04_25,
            read_ids(
                data,
                "data.paymentId",
                "data.transactionId",
                "data.totalAmount",
            )?,
        )
    } else if obj.contains_key("imp_uid") || obj.contains_key("merchant_uid") {
        (Api::V1, read_ids(obj, "merchant_uid", "imp_uid", "amount")?)
    } else if obj.contains_key("payment_id") || obj.contains_key("tx_id") {
        (
            Api::V2_2024_01_01,
            read_ids(obj, "payment_id", "tx_id", "total_amount")?,
        )
    } else {
        return Err(PayloadError::UnknownFormat);
    };
    let store_id = match &ids.store_id {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(PayloadError::WrongType {
                field: "data.storeId",
                expected: "문자열",
            })
        }
    };
    Ok(Parsed::Confirm(ConfirmRequest {
        order_id: ids.order_id,
        tx_id: ids.tx_id,
        amount: ids.amount,
        store_id,
        api,
        payload,
    }))
}

struct Ids {
    order_id: String,
    tx_id: String,
    amount: Amount,
    store_id: Option<Value>,
}

/// Field names are given with their path (`data.paymentId`) so errors say exactly where.
fn read_ids(
    obj: &Map<String, Value>,
    order_field: &'static str,
    tx_field: &'static str,
    amount_field: &'static str,
) -> Result<Ids, PayloadError> {
    Ok(Ids {
        order_id: read_id(obj, order_field)?,
        tx_id: read_id(obj, tx_field)?,
        amount: read_amount(obj, amount_field)?,
        store_id: obj.get("storeId").cloned(),
    })
}

fn key(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

fn read_id(obj: &Map<String, Value>, field: &'static str) -> Result<String, PayloadError> {
    match obj.get(key(field)) {
        None | Some(Value::Null) => Err(PayloadError::Missing(field)),
        Some(Value::String(s)) if s.trim().is_empty() => Err(PayloadError::Empty(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(PayloadError::WrongType {
            field,
            expected: "문자열",
        }),
    }
}

fn read_amount(obj: &Map<String, Value>, field: &'static str) -> Result<Amount, PayloadError> {
    let text = match obj.get(key(field)) {
        None | Some(Value::Null) => return Err(PayloadError::Missing(field)),
        // With serde_json's `arbitrary_precision`, a number keeps its exact source text.
        Some(Value::Number(n)) => n.as_str(),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(PayloadError::Empty(field)),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(PayloadError::WrongType {
                field,
                expected: "숫자",
            })
        }
    };
    text.parse::<Amount>().map_err(|e| match e {
        AmountError::NotANumber => PayloadError::WrongType {
            field,
            expected: "숫자",
        },
        AmountError::Negative => PayloadError::NegativeAmount(field),
        AmountError::TooLarge => PayloadError::AmountTooLarge(field),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        assert_eq!(r.payload["amount"], Value::String("50000".into()));
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
        assert_eq!(r.payload["type"], "Transaction.Confirm");
    }

    #[test]
    fn v2_other_type_is_ignored() {
        match parse(JSON, &testdata("v2-2024-04-25-other-type.json")) {
            Ok(Parsed::Ignored { message_type }) => {
                assert_eq!(message_type, "Transaction.Cancelled")
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
        assert_eq!(r.payload["custom_data"]["vip"], true);
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
        assert!(matches!(err(JSON, "{not json"), InvalidJson(_)));
        assert!(matches!(err(None, ""), InvalidJson(_)));
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let body = b"imp_uid=\xff\xfe&merchant_uid=m&amount=1";
        assert_eq!(
            parse(Some("application/x-www-form-urlencoded"), body).unwrap_err(),
            PayloadError::InvalidForm
        );
        assert!(matches!(
            parse(JSON, b"{\"imp_uid\":\"\xff\"}").unwrap_err(),
            PayloadError::InvalidJson(_)
        ));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            err(Some("text/plain"), "{}").status(),
            415,
            "other types are refused with 415"
        );
        confirm(
            Some("Application/JSON;charset=UTF-8"),
            br#"{"imp_uid":"i","merchant_uid":"m","amount":1}"#,
        );
    }

    #[test]
    fn amount_parsing() {
        let a: Amount = "1e3".parse().unwrap();
        assert_eq!(a.as_i64(), Some(1000));
        assert_eq!(a.to_string(), "1e3");
        let a: Amount = "1000.00".parse().unwrap();
        assert_eq!(a.as_i64(), Some(1000));
        assert_eq!("-0".parse::<Amount>().unwrap().value(), Decimal::ZERO);
        assert_eq!("0x10".parse::<Amount>(), Err(AmountError::NotANumber));
        assert_eq!("1.2.3".parse::<Amount>(), Err(AmountError::NotANumber));
        assert_eq!(
            "99999999999999999999".parse::<Amount>().unwrap().as_i64(),
            None,
            "too big for i64 but still exact"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), ct in 0..4usize) {
            let ct = [None, JSON, Some("application/x-www-form-urlencoded"), Some("text/plain")][ct];
            let _ = parse(ct, &body);
        }

        #[test]
        fn arbitrary_amount_strings_never_panic(s in ".{0,64}") {
            let _ = s.parse::<Amount>();
            let body = serde_json::json!({"imp_uid": "i", "merchant_uid": "m", "amount": s});
            let _ = parse(JSON, body.to_string().as_bytes());
        }
    }
}
