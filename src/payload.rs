//! PortOne confirm payloads (V1, V2 `2024-01-01`, V2 `2024-04-25`) turned into one
//! [`ConfirmRequest`]. Pure: bytes and a content type in, a request or a reasoned error out.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

mod fast;
mod scan;

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

    /// The amount digit for digit as it was sent: a JSON number's own text (`1e3`, `10.50`),
    /// or the content of a numeric string (JSON or form) without surrounding whitespace. This
    /// is what `{amount}` renders.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The amount as a JSON number, for the decision log: as written, except that a numeric
    /// string with leading zeros (`"0100"`), which JSON numbers may not have, is written as its
    /// value (`100`).
    pub fn as_json_number(&self) -> Cow<'_, str> {
        let unsigned = self.text.strip_prefix('-').unwrap_or(&self.text);
        let bytes = unsigned.as_bytes();
        if bytes.len() > 1 && bytes[0] == b'0' && bytes[1].is_ascii_digit() {
            Cow::Owned(self.value.to_string())
        } else {
            Cow::Borrowed(&self.text)
        }
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
        // The usual case, a plain integer (`50000`), without the general parse.
        let value =
            if !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse::<u64>()
                    .map(Decimal::from)
                    .map_err(|_| AmountError::NotANumber)?
            } else if is_json_number(text) {
                exact_decimal(text)?
            } else {
                return Err(AmountError::NotANumber);
            };
        Ok(Amount {
            value,
            text: text.to_owned(),
        })
    }
}

/// The value of a number in JSON syntax, exactly or not at all.
///
/// Digits that carry no value are dropped first — leading zeros, and trailing zeros, which
/// only move the point (`5000.000…0` is 5000, `0.000…0` and `0e-50` are 0) — so only a value
/// that really needs more than `Decimal` holds is refused: over 28 decimal places, or a
/// mantissa over 96 bits (79,228,162,514,264,337,593,543,950,335). Nothing is ever rounded:
/// `Decimal::from_scientific` rounds digits beyond its precision
/// (`999.99999999999999999999999999e0` became 1000 and passed a `min: 1000`).
fn exact_decimal(text: &str) -> Result<Decimal, AmountError> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || int.bytes().chain(frac.bytes());
    let total = int.len() + frac.len();
    let leading = digits().take_while(|&b| b == b'0').count();
    if leading == total {
        // Zero, whatever the sign or the exponent.
        return Ok(Decimal::ZERO);
    }
    if negative {
        return Err(AmountError::Negative);
    }
    let trailing = digits().rev().take_while(|&b| b == b'0').count();
    // The value is `significand × 10^-scale`.
    let significant = total - leading - trailing;
    // Decimal's largest mantissa has 29 digits.
    if significant > 29 {
        return Err(AmountError::TooLarge);
    }
    let significand = digits()
        .skip(leading)
        .take(significant)
        .fold(0i128, |n, b| n * 10 + i128::from(b - b'0'));
    let exponent: i128 = match exponent {
        None => 0,
        // An exponent beyond i64 can only be out of range, the digits being so few.
        Some(e) => e.parse::<i64>().map_err(|_| AmountError::TooLarge)?.into(),
    };
    let scale = i128::try_from(frac.len()).map_err(|_| AmountError::TooLarge)?
        - i128::try_from(trailing).map_err(|_| AmountError::TooLarge)?
        - exponent;
    if scale >= 0 {
        // More than 28 decimal places cannot be held.
        let scale = u32::try_from(scale).map_err(|_| AmountError::TooLarge)?;
        return Decimal::try_from_i128_with_scale(significand, scale)
            .map_err(|_| AmountError::TooLarge);
    }
    // A positive power of ten: 10^29 already exceeds Decimal's range.
    let shift = u32::try_from(-scale).map_err(|_| AmountError::TooLarge)?;
    if shift > 28 {
        return Err(AmountError::TooLarge);
    }
    let value = significand
        .checked_mul(10i128.pow(shift))
        .ok_or(AmountError::TooLarge)?;
    Decimal::try_from_i128_with_scale(value, 0).map_err(|_| AmountError::TooLarge)
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
    /// Only V2 `2024-04-25` carries one (`data.storeId`); a top-level `storeId` in the other
    /// formats is an unknown extra field like any other.
    pub store_id: Option<String>,
    pub api: Api,
    /// The whole original body, for rules that read custom fields.
    pub payload: Payload,
}

/// The original body, as rules see it (`payload`) and as the decision log keeps it.
#[derive(Debug, Clone)]
pub struct Payload {
    /// A JSON body as it arrived (a form body has none). When the fast path read the ids (the
    /// common case), the `Value` is built only if a rule reads `payload`.
    raw: Option<bytes::Bytes>,
    value: OnceLock<Value>,
}

impl Payload {
    fn parsed(value: Value) -> Payload {
        Payload {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    fn raw_json(body: bytes::Bytes) -> Payload {
        Payload {
            raw: Some(body),
            value: OnceLock::new(),
        }
    }

    /// The body as a JSON value (a form body as an object of strings).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            // Read once already, so it parses; `Null` only keeps this total.
            self.raw
                .as_deref()
                .and_then(|raw| serde_json::from_slice(raw).ok())
                .unwrap_or(Value::Null)
        })
    }

    /// Appends the body as JSON on one line: a JSON body's own bytes (line breaks made spaces),
    /// whichever parser read it, so the decision log shows exactly what was received; a form
    /// body's value (an object of strings).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.raw {
            Some(raw) => {
                fast::write_one_line(raw, out);
                Ok(())
            }
            None => serde_json::to_writer(out, self.value()),
        }
    }
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
    /// Only the position: serde_json's own (English) message is not for buyers.
    #[error("요청 본문이 올바른 JSON이 아닙니다 ({line}행 {column}열)")]
    InvalidJson { line: usize, column: usize },
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
    /// A key given twice in one object (its path, cut at 100 characters): the proxy and a
    /// merchant reading the same body could take different values.
    #[error("필드 {0}가 중복되어 있습니다 (같은 필드는 한 번만 보낼 수 있습니다)")]
    DuplicateField(String),
}

impl PayloadError {
    fn duplicate(path: &str) -> PayloadError {
        PayloadError::DuplicateField(path.chars().take(100).collect())
    }

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
    parse_kept(content_type, body, None)
}

/// Like [`parse`], for a body the caller already holds as `Bytes` (the server): the request
/// keeps a reference to it rather than a copy.
pub fn parse_bytes(
    content_type: Option<&str>,
    body: &bytes::Bytes,
) -> Result<Parsed, PayloadError> {
    parse_kept(content_type, body, Some(body))
}

fn parse_kept(
    content_type: Option<&str>,
    body: &[u8],
    kept: Option<&bytes::Bytes>,
) -> Result<Parsed, PayloadError> {
    let encoding = encoding(content_type)?;
    let raw = || kept.map_or_else(|| bytes::Bytes::copy_from_slice(body), bytes::Bytes::clone);
    // A JSON body is tried as JSON first in both cases, so the fast path's answer is the one the
    // full parser would give.
    if encoding != Encoding::Form {
        if let Some(ids) = fast::parse(body) {
            return Ok(Parsed::Confirm(ConfirmRequest {
                order_id: ids.order_id,
                tx_id: ids.tx_id,
                amount: ids.amount,
                store_id: ids.store_id,
                api: ids.api,
                payload: Payload::raw_json(raw()),
            }));
        }
    }
    parse_full(encoding, body, raw)
}

/// Every body the fast path leaves alone: through a `serde_json::Value`, with errors that say
/// what is wrong. `raw` gives the body's bytes, which a JSON body's `payload` keeps for the
/// decision log.
fn parse_full(
    encoding: Encoding,
    body: &[u8],
    raw: impl FnOnce() -> bytes::Bytes,
) -> Result<Parsed, PayloadError> {
    match encoding {
        Encoding::Json => parse_json_body(parse_json(body)?, body, raw),
        Encoding::Form => normalise(parse_form(body)?, None, Payload::parsed),
        Encoding::Unknown => match parse_json(body) {
            Ok(value) => parse_json_body(value, body, raw),
            // Not JSON: a form, if it is one; one that names a key twice is refused as such.
            Err(json_err) => match parse_form(body) {
                Ok(form) => normalise(form, None, Payload::parsed),
                Err(e @ PayloadError::DuplicateField(_)) => Err(e),
                Err(_) => Err(json_err),
            },
        },
    }
}

/// A body that is JSON (`value` is what it parsed to): refused if any object in it names a key
/// twice, else read with the amount's own text, keeping the bytes as they came.
fn parse_json_body(
    value: Value,
    body: &[u8],
    raw: impl FnOnce() -> bytes::Bytes,
) -> Result<Parsed, PayloadError> {
    // It parsed, so it is UTF-8 (serde_json checks strings, and only ASCII may be outside them).
    let text =
        std::str::from_utf8(body).map_err(|_| PayloadError::InvalidJson { line: 1, column: 0 })?;
    let mut top = scan::Top::default();
    scan::scan(text, &mut top).map_err(|e| match e {
        scan::ScanError::Duplicate(path) => PayloadError::duplicate(&path),
        // Not reached: the body parsed already.
        scan::ScanError::Json(e) => PayloadError::InvalidJson {
            line: e.line(),
            column: e.column(),
        },
    })?;
    normalise(value, Some(&top), |value| Payload {
        raw: Some(raw()),
        value: OnceLock::from(value),
    })
}

fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body).map_err(|e| PayloadError::InvalidJson {
        line: e.line(),
        column: e.column(),
    })
}

/// A form body becomes a JSON object of strings, so rules see the same `payload` either way.
///
/// Decoded strictly: a payment id must be exact, so invalid UTF-8 anywhere — raw or
/// percent-encoded, in a key or a value — refuses the body instead of becoming U+FFFD.
/// Empty pairs (`a=1&&b=2`) are skipped and a pair without `=` has an empty value. A key
/// given twice (compared decoded) refuses the body, as in JSON: the merchant a `forward` sends
/// the body to might read the other one.
fn parse_form(body: &[u8]) -> Result<Value, PayloadError> {
    use serde_json::map::Entry;
    let body = std::str::from_utf8(body).map_err(|_| PayloadError::InvalidForm)?;
    let mut fields = Map::new();
    for pair in body.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = Value::String(form_decode(value)?);
        match fields.entry(form_decode(key)?) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(slot) => return Err(PayloadError::duplicate(slot.key())),
        }
    }
    if fields.is_empty() {
        return Err(PayloadError::InvalidForm);
    }
    Ok(Value::Object(fields))
}

/// One form-urlencoded key or value: `+` is a space, then `%XX` escapes must decode to UTF-8.
/// A `%` not followed by two hex digits stays as it is (as browsers and `form_urlencoded` do).
fn form_decode(text: &str) -> Result<String, PayloadError> {
    let spaced = if text.contains('+') {
        Cow::Owned(text.replace('+', " "))
    } else {
        Cow::Borrowed(text)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| PayloadError::InvalidForm)
}

/// Reads the request from a body's value. `raw` has the raw text of a JSON body's fields (for
/// the amount as written; a form has none), `keep` makes the `payload` of the value.
fn normalise(
    payload: Value,
    raw: Option<&scan::Top<'_>>,
    keep: impl FnOnce(Value) -> Payload,
) -> Result<Parsed, PayloadError> {
    let Value::Object(obj) = &payload else {
        return Err(PayloadError::NotAnObject);
    };
    // V1 first, then V2 `2024-01-01`, and V2 `2024-04-25` last: an ignored message approves
    // the payment (200) without a rule, so extra `type`/`data` fields on a request that names
    // V1 or V2 `2024-01-01` ids must never turn it into one (fail closed: those ids are then
    // required and validated).
    let (api, ids, store_id) = if obj.contains_key("imp_uid") || obj.contains_key("merchant_uid") {
        (
            Api::V1,
            read_ids(
                obj,
                "merchant_uid",
                "imp_uid",
                "amount",
                raw.and_then(|r| r.amount.raw()),
            )?,
            None,
        )
    } else if obj.contains_key("payment_id") || obj.contains_key("tx_id") {
        (
            Api::V2_2024_01_01,
            read_ids(
                obj,
                "payment_id",
                "tx_id",
                "total_amount",
                raw.and_then(|r| r.total_amount.raw()),
            )?,
            None,
        )
    } else if obj.contains_key("type") && obj.contains_key("data") {
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
        let raw_amount = match raw.map(|r| &r.data) {
            Some(scan::Data::Object(fields)) => fields.total_amount.raw(),
            _ => None,
        };
        let ids = read_ids(
            data,
            "data.paymentId",
            "data.transactionId",
            "data.totalAmount",
            raw_amount,
        )?;
        (Api::V2_2024_04_25, ids, read_store_id(data)?)
    } else {
        return Err(PayloadError::UnknownFormat);
    };
    Ok(Parsed::Confirm(ConfirmRequest {
        order_id: ids.order_id,
        tx_id: ids.tx_id,
        amount: ids.amount,
        store_id,
        api,
        payload: keep(payload),
    }))
}

struct Ids {
    order_id: String,
    tx_id: String,
    amount: Amount,
}

/// Field names are given with their path (`data.paymentId`) so errors say exactly where;
/// `raw_amount` is the amount's JSON text in the body, when there is one.
fn read_ids(
    obj: &Map<String, Value>,
    order_field: &'static str,
    tx_field: &'static str,
    amount_field: &'static str,
    raw_amount: Option<&str>,
) -> Result<Ids, PayloadError> {
    Ok(Ids {
        order_id: read_id(obj, order_field)?,
        tx_id: read_id(obj, tx_field)?,
        amount: read_amount(obj, amount_field, raw_amount)?,
    })
}

/// V2 `2024-04-25`'s optional `data.storeId`.
fn read_store_id(data: &Map<String, Value>) -> Result<Option<String>, PayloadError> {
    match data.get("storeId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PayloadError::WrongType {
            field: "data.storeId",
            expected: "문자열",
        }),
    }
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

fn read_amount(
    obj: &Map<String, Value>,
    field: &'static str,
    raw: Option<&str>,
) -> Result<Amount, PayloadError> {
    let text = match obj.get(key(field)) {
        None | Some(Value::Null) => return Err(PayloadError::Missing(field)),
        // The number as the body wrote it, from the scan: serde_json's `arbitrary_precision`
        // keeps the digits but rewrites an exponent (`1E3` becomes `1e+3`), and it reads an
        // object holding only its private number key as a number. (A form has no numbers.)
        Some(Value::Number(n)) => raw.unwrap_or(n.as_str()),
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

    /// The full parser alone, as `parse` would call it.
    fn full(encoding: Encoding, body: &[u8]) -> Result<Parsed, PayloadError> {
        parse_full(encoding, body, || bytes::Bytes::copy_from_slice(body))
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
        assert!(matches!(err(None, ""), InvalidJson { .. }));
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
            PayloadError::InvalidJson { .. }
        ));
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

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
            Ok(Parsed::Ignored { message_type }) if message_type == "Transaction.Cancelled"
        ));
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

    #[test]
    fn invalid_json_reason_is_korean_with_the_position_only() {
        let cases = [
            ("{not json", 1, 2),
            ("{\n  \"imp_uid\": ,\n}", 2, 14),
            // End of input: the position is where the body ended.
            (r#"{"imp_uid":"#, 1, 11),
            ("", 1, 0),
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
        // Without a Content-Type a body that is neither JSON nor a form keeps the JSON reason.
        let e = err(None, "{\"imp_uid\":\"%FF");
        assert!(matches!(e, PayloadError::InvalidJson { .. }), "{e:?}");
        assert!(!e.to_string().contains("line"), "{e}");
    }

    #[test]
    fn percent_encoded_invalid_utf8_in_a_form_is_refused() {
        for body in [
            "merchant_uid=blocked-%FF%FE&imp_uid=i&amount=1000",
            "merchant_uid=m&imp_uid=i%C3&amount=1000",
            "merchant_uid=m&imp_uid=i&amount=1000&memo=%80",
            "merchant_uid=m&imp_uid=i&amount=1000&%FF=x",
            "merchant%ED%A0%80_uid=m&imp_uid=i&amount=1000",
        ] {
            assert_eq!(err(FORM, body), PayloadError::InvalidForm, "{body}");
            assert_eq!(err(FORM, body).status(), 400);
            // Without a Content-Type it is refused too (with the JSON reason, tried first).
            assert!(parse(None, body.as_bytes()).is_err(), "{body}");
        }
        // Raw invalid UTF-8 in a key is refused as well.
        assert_eq!(
            parse(FORM, b"merchant_uid=m&imp_uid=i&amount=1000&\xc3=x").unwrap_err(),
            PayloadError::InvalidForm
        );
    }

    #[test]
    fn form_decoding() {
        let r = confirm(
            FORM,
            "merchant_uid=order+1%2B2%2F%EC%A3%BC%EB%AC%B8&imp_uid=imp%5F1&amount=1000&memo=%zz%&%EB%A9%94%EB%AA%A8=%ED%95%9C+%EA%B8%80"
                .as_bytes(),
        );
        assert_eq!(r.order_id, "order 1+2/주문", "+ is a space, %2B a plus");
        assert_eq!(r.tx_id, "imp_1");
        assert_eq!(
            r.payload.value()["memo"],
            "%zz%",
            "a stray % stays as it is"
        );
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
        // Nothing but separators is no form at all.
        for body in ["", "&", "&&&"] {
            assert_eq!(err(FORM, body), PayloadError::InvalidForm, "{body:?}");
        }
        assert_eq!(err(FORM, "="), PayloadError::UnknownFormat);
        assert_eq!(
            err(FORM, "merchant_uid=m&imp_uid=+&amount=1"),
            PayloadError::Empty("imp_uid")
        );
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

    /// With `arbitrary_precision`, serde_json's `Value` parser turns an object holding only its
    /// private number key into a number: the amount was `5` for the proxy and an object for a
    /// merchant. The amount is now read from the body's own text, which is no number.
    #[test]
    fn an_object_in_serde_jsons_private_number_shape_is_no_amount() {
        for body in [
            r#"{"imp_uid":"i","merchant_uid":"m","amount":{"$serde_json::private::Number":"5"}}"#,
            r#"{"imp_uid":"i\u0031","merchant_uid":"m","amount":{"$serde_json::private::Number":"5"}}"#,
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":{"$serde_json::private::Number":"5"}}}"#,
        ] {
            let field = if body.contains("totalAmount") {
                "data.totalAmount"
            } else {
                "amount"
            };
            assert_eq!(
                err(JSON, body),
                PayloadError::WrongType {
                    field,
                    expected: "숫자"
                },
                "{body}"
            );
        }
    }

    #[test]
    fn amounts_render_as_written() {
        for text in [
            "50000",
            "10.5",
            "10.50",
            "1e3",
            "1E3",
            "1e+3",
            "5000e0",
            "3.0000001e6",
            "0e5",
            "3e6",
            "-0",
            "5000.000000000000000000000000000000",
        ] {
            let a: Amount = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
            assert_eq!(a.as_str(), text);
            assert_eq!(a.as_json_number(), text, "valid JSON number syntax already");
        }
        // Surrounding whitespace of a numeric string is not part of the amount.
        assert_eq!(" 1000 ".parse::<Amount>().unwrap().to_string(), "1000");
        // A numeric string may have leading zeros, which a JSON number may not: the decision
        // log then writes the value.
        let a: Amount = "0100".parse().unwrap();
        assert_eq!((a.as_str(), a.as_json_number().as_ref()), ("0100", "100"));
        let a: Amount = "00.50".parse().unwrap();
        assert_eq!((a.as_str(), a.as_json_number().as_ref()), ("00.50", "0.5"));
        assert_eq!("0".parse::<Amount>().unwrap().as_json_number(), "0");
        assert_eq!("0.5".parse::<Amount>().unwrap().as_json_number(), "0.5");
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
                format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":"{number}"}}"#),
                format!(r#"{{"imp_uid":"i","merchant_uid":"m\u0031","amount":" {number}"}}"#),
            ];
            for body in &bodies {
                let r = confirm(JSON, body.as_bytes());
                assert_eq!(r.amount.as_str(), number, "{body}");
                assert_eq!(r.amount.value().to_string(), value, "{body}");
            }
            let form = format!(
                "imp_uid=i&merchant_uid=m&amount={}",
                number.replace('+', "%2B")
            );
            assert_eq!(confirm(FORM, form.as_bytes()).amount.as_str(), number);
        }
        // Digits in a string come as they were decoded.
        let r = confirm(
            JSON,
            br#"{"imp_uid":"i","merchant_uid":"m","amount":"1e3"}"#,
        );
        assert_eq!(r.amount.as_str(), "1e3");
        let r = confirm(FORM, b"imp_uid=i&merchant_uid=m&amount=%201E%2B3");
        assert_eq!(r.amount.as_str(), "1E+3");
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
            Ok(Parsed::Ignored { message_type }) => format!("ignored {message_type}"),
            Err(e) => format!("error {e:?}"),
        }
    }

    #[test]
    fn exponents_are_exact_or_refused() {
        let value = |s: &str| s.parse::<Amount>().map(|a| a.value().to_string());
        assert_eq!(value("1e3"), Ok("1000".into()));
        assert_eq!(value("1.5E1"), Ok("15".into()));
        assert_eq!(value("12345e-2"), Ok("123.45".into()));
        assert_eq!(value("0e-50"), Ok("0".into()));
        assert_eq!(value("5000e0"), Ok("5000".into()));
        assert_eq!(value("3.0000001e6"), Ok("3000000.1".into()));
        assert_eq!(value("0e5"), Ok("0".into()));
        assert_eq!(value("5e28"), Ok("50000000000000000000000000000".into()));
        // The audited fail-open: these were rounded to 1000 and 3000000 and passed the range.
        for s in [
            "999.99999999999999999999999999e0",
            "3000000.000000000000000000000001e0",
            "1e-30",
            "1e29",
            "1e400",
            "1e99999999999999999999",
        ] {
            assert_eq!(s.parse::<Amount>(), Err(AmountError::TooLarge), "{s}");
        }
        // Without an exponent the same digits were already refused.
        assert_eq!(
            "999.99999999999999999999999999".parse::<Amount>(),
            Err(AmountError::TooLarge)
        );
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
                    format!(
                        "필드 {field}가 중복되어 있습니다 (같은 필드는 한 번만 보낼 수 있습니다)"
                    )
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
        // A caller-chosen key is cut in the reason.
        let key = "k".repeat(500);
        let e = err(JSON, &format!(r#"{{"{key}":1,"{key}":2}}"#));
        assert_eq!(e, PayloadError::DuplicateField("k".repeat(100)));
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

        /// Any keys and values, percent-encoded, come back exactly; a key given twice refuses
        /// the body, naming that key.
        #[test]
        fn form_values_round_trip(
            pairs in proptest::collection::vec(("\\PC{1,8}", "\\PC{0,12}"), 1..6),
            plus in any::<bool>(),
        ) {
            use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
            let encode = |s: &str| {
                let e = utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
                if plus { e.replace("%20", "+") } else { e }
            };
            let body = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            let mut want = Map::new();
            let mut repeated = None;
            for (k, v) in &pairs {
                if want.insert(k.clone(), Value::String(v.clone())).is_some() {
                    repeated = Some(PayloadError::DuplicateField(k.clone()));
                    break;
                }
            }
            match repeated {
                Some(e) => prop_assert_eq!(parse_form(body.as_bytes()), Err(e)),
                None => prop_assert_eq!(parse_form(body.as_bytes()), Ok(Value::Object(want))),
            }
        }

        #[test]
        fn arbitrary_amount_strings_never_panic(s in ".{0,64}") {
            let _ = s.parse::<Amount>();
            let body = serde_json::json!({"imp_uid": "i", "merchant_uid": "m", "amount": s});
            let _ = parse(JSON, body.to_string().as_bytes());
        }
    }
}
