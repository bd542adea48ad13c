//! PortOne confirm payloads (V1, V2 `2024-01-01`, V2 `2024-04-25`) turned into one
//! [`ConfirmRequest`]. Pure: bytes and a content type in, a request or a reasoned error out.

use std::fmt;
use std::sync::OnceLock;

use serde_json::Value;

mod amount;
mod fast;
mod form;
mod normalise;
mod scan;

pub(crate) use amount::exact_number;
pub use amount::{Amount, AmountError};
use form::parse_form;
use normalise::normalise;
pub(crate) use scan::{json_flaw, more_parts_than, outside_strings, reserved_key, RESERVED};

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
    pub const fn as_str(self) -> &'static str {
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

    /// Whether the body was read as a form (`application/x-www-form-urlencoded`, or no
    /// Content-Type and not JSON).
    pub fn is_form(&self) -> bool {
        self.raw.is_none()
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
        /// Its format, for its record.
        api: Api,
    },
}

/// The largest confirm body read (SPEC §2); PortOne's are a few hundred bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The most values and keys a confirm body may hold (a JSON body's counted as
/// `more_parts_than` does, a form's fields by their `&`); PortOne's have tens. 64 KiB of
/// small objects (8,000 `{"a":0}`) held about 20 MB per request while its rules read
/// `payload` (an audit's): a few hundred such requests at once would take gigabytes.
pub const MAX_PARTS: usize = 1_000;

/// Why a body was refused. `Display` is the buyer-facing (Korean) text of the 400/413/415 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("요청 본문이 너무 큽니다 (최대 {} KiB)", MAX_BODY / 1024)]
    TooLarge,
    #[error("요청 본문의 값이 너무 많습니다 (키와 값, form 필드 합쳐 최대 {MAX_PARTS}개)")]
    TooManyParts,
    #[error("지원하지 않는 Content-Type입니다: {0} (application/json 또는 application/x-www-form-urlencoded만 받습니다)")]
    UnsupportedContentType(String),
    /// A compressed body (any coding but `identity`): PortOne sends plain bodies, and the
    /// compressed bytes would be read as a broken JSON text.
    #[error("지원하지 않는 Content-Encoding입니다: {0} (압축하지 않은 본문만 받습니다)")]
    UnsupportedContentEncoding(String),
    /// A transfer coding besides `chunked` (`gzip, chunked`): the HTTP layer undoes only
    /// `chunked`, and the rest would be read as the body's text.
    #[error("지원하지 않는 Transfer-Encoding입니다: {0} (chunked 외의 전송 코딩은 받지 않습니다)")]
    UnsupportedTransferEncoding(String),
    /// `chunked` twice (RFC 9112 forbids it): a proxy in front may take the body to end
    /// elsewhere than the HTTP layer here does, a way to slip a second request in.
    #[error("Transfer-Encoding에 chunked가 두 번 이상 있습니다: 본문이 어디서 끝나는지 한 가지로 정해지지 않습니다")]
    RepeatedChunked,
    /// Only the position: serde_json's own (English) message is not for buyers.
    #[error("요청 본문이 올바른 JSON이 아닙니다 ({line}행 {column}열)")]
    InvalidJson { line: usize, column: usize },
    /// JSON is UTF-8 (RFC 8259 §8.1), whatever a `charset` label says: a body in EUC-KR is
    /// told so, rather than that its JSON is broken at a column.
    #[error("요청 본문이 UTF-8이 아닙니다 ({line}행 {column}열): JSON은 UTF-8로 보내야 합니다")]
    NotUtf8 { line: usize, column: usize },
    /// Nested deeper than serde_json reads (127 levels: its limit of 128 counts the value
    /// inside the deepest one); no confirm body comes close.
    #[error("요청 본문의 JSON이 너무 깊이 중첩되어 있습니다 (최대 127단계)")]
    TooDeep,
    /// An empty body (or only whitespace), whatever its Content-Type.
    #[error("요청 본문이 비어 있습니다")]
    EmptyBody,
    /// A `%` in a form key or value (the field named; a key as written) that does not start a
    /// `%XX` escape.
    #[error("필드 {0}에 올바르지 않은 % 이스케이프가 있습니다 (%는 16진수 두 자리와 함께 씁니다, % 자체는 %25)")]
    FormBadEscape(String),
    /// A raw `;` in a form pair (the field named): older parsers split pairs on it as on `&`.
    #[error("필드 {0}에 ;가 있습니다: ;를 &처럼 필드 구분자로 읽는 파서가 있으니, 값의 ;는 %3B로 보내 주세요")]
    FormSemicolon(String),
    /// A form key or value (the field named) that is not UTF-8, raw or percent-encoded.
    #[error("필드 {0}의 값이 UTF-8이 아닙니다: form 본문은 UTF-8로 인코딩해 보내 주세요")]
    FormNotUtf8(String),
    /// A form key that is not UTF-8, raw or percent-encoded: named as written, its bytes
    /// beyond ASCII as `%XX` (as text they would be mojibake).
    #[error("필드 이름 {0}이(가) UTF-8이 아닙니다: form 본문은 UTF-8로 인코딩해 보내 주세요")]
    FormKeyNotUtf8(String),
    /// A UTF-8 byte-order mark before the body (a file saved by some Windows editors and sent
    /// with `curl -d @file`): read as no JSON and no form, it would be refused as an unknown
    /// format, which is no help. Not skipped: a `forward` passes the bytes on, and parsers
    /// disagree about it (JavaScript's `JSON.parse` refuses it).
    #[error("요청 본문이 BOM(U+FEFF)으로 시작합니다: BOM 없이 보내 주세요")]
    ByteOrderMark,
    #[error("요청 본문이 JSON 객체가 아닙니다")]
    NotAnObject,
    /// A JSON text sent as `application/x-www-form-urlencoded` (what `curl -d` does unless told
    /// otherwise): read as a form, it holds none of the fields.
    #[error("요청 본문이 JSON인데 Content-Type이 application/x-www-form-urlencoded입니다: JSON은 Content-Type: application/json으로 보내 주세요")]
    JsonLabelledAsForm,
    /// The other way round: a confirm form sent as `application/json`.
    #[error("요청 본문이 form-urlencoded인데 Content-Type이 application/json입니다: form은 Content-Type: application/x-www-form-urlencoded로 보내 주세요")]
    FormLabelledAsJson,
    #[error("알 수 없는 요청 형식입니다: imp_uid/merchant_uid/amount (V1), payment_id/tx_id/total_amount (V2) 또는 type/data (V2) 필드가 필요합니다")]
    UnknownFormat,
    #[error("type/data 형식(V2)의 메시지는 JSON으로만 받습니다: Content-Type: application/json으로 보내 주세요")]
    MessageAsForm,
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
    #[error("필드 {0}의 값이 너무 크거나 자릿수가 너무 많습니다 (유효숫자 28자리, 소수점 아래 28자리까지)")]
    AmountTooLarge(&'static str),
    /// A key given twice in one object (its path, cut at 100 characters): the proxy and a
    /// merchant reading the same body could take different values.
    #[error("필드 {0}가 중복되어 있습니다 (같은 필드는 한 번만 보낼 수 있습니다)")]
    DuplicateField(String),
    /// A key serde_json would read as an instruction (its path, cut at 100 characters); see
    /// `scan::RESERVED`.
    #[error("필드 이름 {0}는 사용할 수 없습니다")]
    ReservedField(String),
    /// A key (its path, cut at 100 characters) that other parsers read as a field the proxy
    /// reads (see `scan::look_alike`): the proxy and a merchant could take different values.
    #[error("필드 이름 {key}는 {field}와 대소문자나 표기만 달라 받을 수 없습니다 (서버에 따라 같은 필드로 읽힙니다)")]
    LookAlikeField { key: String, field: &'static str },
}

/// A field name from the request as its refusal shows it to the buyer: made safe to show
/// (a key may hold line breaks or text-direction controls) and cut at 100 characters. A
/// control character is shown escaped (`amount\u{0}`), not left out: the name must still
/// read as the one that was refused, not as the field it looks like. (Line breaks and tabs
/// are spaces, as in every reason.)
fn field_name(name: &str) -> String {
    let escaped_control = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    let escaped: String = if name.contains(escaped_control) {
        name.chars()
            .map(|c| {
                if escaped_control(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        name.to_owned()
    };
    let shown = crate::text::for_buyers_cut(&escaped, 100);
    // `  amount`: its spaces would not show, and the reason would read "field amount differs
    // from amount".
    // An empty name would leave the reason with a gap: "필드 가 중복되어 있습니다".
    if shown.is_empty()
        || shown.starts_with(char::is_whitespace)
        || shown.ends_with(char::is_whitespace)
    {
        format!("\"{shown}\"")
    } else {
        shown.into_owned()
    }
}

impl PayloadError {
    fn duplicate(path: &str) -> PayloadError {
        PayloadError::DuplicateField(field_name(path))
    }

    fn reserved(path: &str) -> PayloadError {
        PayloadError::ReservedField(field_name(path))
    }

    fn look_alike(path: &str, field: &'static str) -> PayloadError {
        PayloadError::LookAlikeField {
            key: field_name(path),
            field,
        }
    }

    /// 413 for a body over [`MAX_BODY`], 415 for a content type, content coding or transfer
    /// coding we do not read, 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            PayloadError::TooLarge => 413,
            PayloadError::UnsupportedContentType(_)
            | PayloadError::UnsupportedContentEncoding(_)
            | PayloadError::UnsupportedTransferEncoding(_) => 415,
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
    // An empty header is a missing one; anything else must name a type we read (";;;" does
    // not: it is garbled, not absent).
    let Some(ct) = content_type.filter(|ct| !ct.trim().is_empty()) else {
        return Ok(Encoding::Unknown);
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    if lists_types(ct) {
        // `application/json; charset=utf-8, text/plain`: two types, as two headers are, which
        // parsers may read the other way round, with parameters or without.
        Err(PayloadError::UnsupportedContentType(
            crate::text::for_buyers_cut(ct, 100).into_owned(),
        ))
    } else if mime.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(Encoding::Form)
    } else {
        // Shown to the buyer: a tab or a control character in it must not be.
        Err(PayloadError::UnsupportedContentType(
            crate::text::for_buyers_cut(ct, 100).into_owned(),
        ))
    }
}

/// Whether `ct` holds a comma outside a quoted parameter value (a list of types), or a quote
/// never closed, which would hide one.
fn lists_types(ct: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for c in ct.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => return true,
            _ => {}
        }
    }
    quoted
}

/// What a request's headers say about reading its body: its codings must leave the body as
/// it was sent, and its Content-Type, if any, is returned for [`parse`]. A Content-Type that is
/// not even text is not one we read (and not a missing one); nor are two of them, which a
/// merchant's parser might read the other way round.
pub fn body_type(headers: &http::HeaderMap) -> Result<Option<&str>, PayloadError> {
    let values = |name| {
        headers
            .get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    };
    // A body is read only as it came: the HTTP layer undoes `chunked` and nothing else (RFC
    // 9112 has no `identity` transfer coding: `identity, chunked` is refused too), and any
    // content coding but `identity` (an empty value is none) is a 415 naming it.
    check_codings(
        values(http::header::TRANSFER_ENCODING),
        b"chunked",
        PayloadError::UnsupportedTransferEncoding,
    )?;
    check_codings(
        values(http::header::CONTENT_ENCODING),
        b"identity",
        PayloadError::UnsupportedContentEncoding,
    )?;
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    let first = types.next();
    match (first.map(http::HeaderValue::to_str), types.next()) {
        (None, _) => Ok(None),
        (Some(Ok(ct)), None) => Ok(Some(ct)),
        (Some(Ok(_)), Some(_)) => Err(PayloadError::UnsupportedContentType("(여러 개)".into())),
        // Text beyond ASCII (`text/한글`) is named as the codings are; other bytes are not
        // text to show.
        (Some(Err(_)), _) => Err(PayloadError::UnsupportedContentType(
            match first.map(|v| std::str::from_utf8(v.as_bytes())) {
                Some(Ok(text)) => crate::text::for_buyers_cut(text.trim(), 100).into_owned(),
                _ => "(텍스트가 아님)".into(),
            },
        )),
    }
}

/// Whether the request's `Transfer-Encoding` headers name `chunked` more than once, in one
/// header or several: how such a body is framed depends on who reads it (see
/// [`PayloadError::RepeatedChunked`]).
pub fn chunked_twice(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::TRANSFER_ENCODING)
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .count()
        > 1
}

/// Every coding listed in `values` is `allowed`, else the value as `error`.
fn check_codings<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    allowed: &[u8],
    error: fn(String) -> PayloadError,
) -> Result<(), PayloadError> {
    for value in values {
        let coded = value
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(allowed));
        if coded {
            // Shown to the buyer: what a caller put in a header (a control character, a
            // text-direction override) must not be.
            let shown = String::from_utf8_lossy(value);
            return Err(error(
                crate::text::for_buyers_cut(shown.trim(), 100).into_owned(),
            ));
        }
    }
    Ok(())
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

/// How `body` is read under `headers`: as `json`, as a `form`, or not at all (`none`: headers
/// under which no body is read, a 415), and whether its type names a charset other than
/// UTF-8. Two requests with the same body and the same reading are the same request, whatever
/// else their headers say (the header's case, `charset=utf-8` or none, or no Content-Type for
/// a body that reads as JSON without one). The proxy reads every body as UTF-8, but a
/// `forward` passes the type on as it came, and a merchant's handler may honour another
/// charset (a trial's read a copy labelled ISO-8859-1 otherwise than the proxy did): such a
/// copy is a request of its own.
pub fn reading(headers: &http::HeaderMap, body: &[u8]) -> &'static str {
    let content_type = body_type(headers);
    let other_charset = matches!(content_type, Ok(Some(ct)) if names_other_charset(ct));
    match (content_type.and_then(encoding), other_charset) {
        (Ok(Encoding::Json), false) => "json",
        (Ok(Encoding::Json), true) => "json, other charset",
        (Ok(Encoding::Form), false) => "form",
        (Ok(Encoding::Form), true) => "form, other charset",
        // Without a Content-Type, JSON is read as JSON and anything else (at best) as a form:
        // see `parse_full`.
        (Ok(Encoding::Unknown), _) if starts_as_json(body) => "json",
        (Ok(Encoding::Unknown), _) => "form",
        (Err(_), _) => "none",
    }
}

/// Whether a parameter of `content_type` named `charset` (or `charset*`) names anything but
/// UTF-8, quoted or not, in any case.
fn names_other_charset(content_type: &str) -> bool {
    content_type.split(';').skip(1).any(|param| {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let name = name.trim().trim_end_matches('*');
        let value = value.trim().trim_matches('"').trim();
        name.eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8")
    })
}

/// Whether `body` starts as a JSON object or list does, which no form PortOne sends does.
fn starts_as_json(body: &[u8]) -> bool {
    let start = body.trim_ascii_start();
    start.starts_with(b"{") || start.starts_with(b"[")
}

/// A request as the server received it: its headers' [`body_type`] and [`parse_bytes`].
pub fn parse_request(
    headers: &http::HeaderMap,
    body: &bytes::Bytes,
) -> Result<Parsed, PayloadError> {
    parse_bytes(body_type(headers)?, body)
}

fn parse_kept(
    content_type: Option<&str>,
    body: &[u8],
    kept: Option<&bytes::Bytes>,
) -> Result<Parsed, PayloadError> {
    // The server refuses these before reading them; `eval` and tests come here with them.
    if body.len() > MAX_BODY {
        return Err(PayloadError::TooLarge);
    }
    // The type's 415 first (SPEC §9's order). Not in `parse_unbounded`: a form's record is a
    // JSON object of twice as many parts.
    let encoding = encoding(content_type)?;
    if too_many_parts(body) {
        return Err(PayloadError::TooManyParts);
    }
    parse_unbounded(encoding, body, kept)
}

/// Whether `body` holds more than [`MAX_PARTS`] values and keys: as JSON if it starts as JSON
/// (a form never does), else as a form's fields. One pass over the bytes, none for a body
/// shorter than the limit.
fn too_many_parts(body: &[u8]) -> bool {
    if starts_as_json(body) {
        more_parts_than(body, MAX_PARTS)
    } else {
        body.len() > MAX_PARTS
            && body
                .iter()
                .filter(|&&b| b == b'&')
                .nth(MAX_PARTS - 1)
                .is_some()
    }
}

/// A request body as the decision log keeps it (a form as a JSON object of its decoded
/// strings), for `replay`. Not held to [`MAX_BODY`]: the request met it as it arrived, and its
/// JSON spelling may be longer (a form's `%01` is `\u0001`).
pub fn parse_logged(body: &[u8]) -> Result<Parsed, PayloadError> {
    parse_unbounded(Encoding::Json, body, None)
}

fn parse_unbounded(
    encoding: Encoding,
    body: &[u8],
    kept: Option<&bytes::Bytes>,
) -> Result<Parsed, PayloadError> {
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
    if body.trim_ascii().is_empty() {
        return Err(PayloadError::EmptyBody);
    }
    if body.starts_with("\u{feff}".as_bytes()) {
        return Err(PayloadError::ByteOrderMark);
    }
    let read_form = || parse_form(body).and_then(|f| normalise(f, None, Payload::parsed));
    // A body that is not JSON and holds a `=` is meant as a form: its own error (which field,
    // what is wrong) says more than a JSON error at line 1, column 1.
    let starts_as_json = starts_as_json(body);
    let looks_like_form = || !starts_as_json && body.contains(&b'=');
    match encoding {
        Encoding::Json => match parse_json_body(body, raw) {
            // `curl -d 'imp_uid=…'` with `-H content-type: application/json`.
            Err(json_err @ PayloadError::InvalidJson { .. }) if looks_like_form() => {
                match read_form() {
                    Ok(_) => Err(PayloadError::FormLabelledAsJson),
                    Err(_) => Err(json_err),
                }
            }
            read => read,
        },
        // A body that starts as JSON is never read as a form, whatever fields a form reading
        // finds in it: a JSON string holding `&merchant_uid=ok-7&amount=1000&` would decide
        // the payment on those, while the JSON itself — what a `forward` passes on, and what
        // a handler that reads JSON whatever the label reads — says otherwise. No form
        // PortOne sends starts with `{` or `[`.
        Encoding::Form if starts_as_json => Err(PayloadError::JsonLabelledAsForm),
        Encoding::Form => match read_form() {
            // `curl -d '{…}'` without a Content-Type header sends JSON labelled as a form.
            Err(
                PayloadError::UnknownFormat
                | PayloadError::FormBadEscape(_)
                | PayloadError::FormSemicolon(_)
                | PayloadError::FormNotUtf8(_)
                | PayloadError::FormKeyNotUtf8(_),
            ) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
                Err(PayloadError::JsonLabelledAsForm)
            }
            read => read,
        },
        Encoding::Unknown => match parse_json_body(body, raw) {
            // Not JSON but shaped like a form: read as one, refused with its own reason.
            Err(PayloadError::InvalidJson { .. } | PayloadError::NotUtf8 { .. })
                if looks_like_form() =>
            {
                read_form()
            }
            // Broken JSON, or neither: said as broken JSON, rather than read as a form holding
            // one odd key and refused as an unknown format.
            read => read,
        },
    }
}

/// The column (from 1, in characters) of the `byte_column`th byte (from 1) of line `line`.
fn char_column(text: &str, line: usize, byte_column: usize) -> usize {
    let text_of_line = text
        .split('\n')
        .nth(line.saturating_sub(1))
        .unwrap_or_default();
    let mut before = byte_column.saturating_sub(1).min(text_of_line.len());
    while !text_of_line.is_char_boundary(before) {
        before -= 1;
    }
    1 + text_of_line[..before].chars().count()
}

/// A JSON body: scanned first (a key named twice, or one serde_json reserves, is refused before
/// serde_json's own `Value` parser could act on it), then read with the amount's own text,
/// keeping the bytes as they came.
fn parse_json_body(
    body: &[u8],
    raw: impl FnOnce() -> bytes::Bytes,
) -> Result<Parsed, PayloadError> {
    // Not UTF-8: where the first byte that is not starts (serde_json does not check the text
    // of strings it skips). Columns count characters from 1, as an editor shows them.
    let text = std::str::from_utf8(body).map_err(|e| {
        // Valid by definition of `valid_up_to`.
        let before = std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        PayloadError::NotUtf8 {
            line: 1 + before.matches('\n').count(),
            column: 1 + before[line_start..].chars().count(),
        }
    })?;
    let invalid = |e: serde_json::Error| {
        // serde_json says so only in its text.
        if e.to_string().starts_with("recursion limit exceeded") {
            return PayloadError::TooDeep;
        }
        PayloadError::InvalidJson {
            line: e.line(),
            // serde_json counts bytes (and says 0 for an empty body); an editor shows
            // characters, and `주문` before the error is two, not six.
            column: char_column(text, e.line(), e.column()),
        }
    };
    let mut top = scan::Top::default();
    // The scan stops at the first flaw; a syntax error further on is still the answer (the
    // body is no JSON at all), so a flaw is reported only for a text that parses.
    let syntax = || serde_json::from_str::<serde::de::IgnoredAny>(text).err();
    scan::scan(text, &mut top).map_err(|e| match e {
        scan::ScanError::Json(e) => invalid(e),
        _ if let Some(e) = syntax() => invalid(e),
        scan::ScanError::Duplicate(path) => PayloadError::duplicate(&path),
        scan::ScanError::Reserved(path) => PayloadError::reserved(&path),
        scan::ScanError::LookAlike(path, field) => PayloadError::look_alike(&path, field),
    })?;
    let value: Value = serde_json::from_str(text).map_err(invalid)?;
    normalise(value, Some(&top), |value| Payload {
        raw: Some(raw()),
        value: OnceLock::from(value),
    })
}

#[cfg(test)]
mod tests;
