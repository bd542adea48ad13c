//! Form-urlencoded bodies: decoded strictly into a JSON object of strings, so rules see the
//! same `payload` as for a JSON body.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::scan::{look_alike, RESERVED, TOP_FIELDS};
use super::PayloadError;

/// A form body becomes a JSON object of strings, so rules see the same `payload` either way.
///
/// Decoded strictly: a payment id must be exact, so invalid UTF-8 anywhere — raw or
/// percent-encoded, in a key or a value — refuses the body instead of becoming U+FFFD, and
/// the refusal names the field. Empty pairs (`a=1&&b=2`) are skipped and a pair without `=`
/// has an empty value. A key given twice (compared decoded) refuses the body, as in JSON: the
/// merchant a `forward` sends the body to might read the other one; so does a key serde_json
/// reserves, which a JSON body may not carry either (the decision log writes the form as JSON).
/// A raw `;` refuses it too: parsers that split pairs on it as on `&` (Python's before 3.9.2,
/// old PHP settings) would read `merchant_uid=o-1;amount=5` as another amount than ours.
pub(super) fn parse_form(body: &[u8]) -> Result<Value, PayloadError> {
    use serde_json::map::Entry;
    let mut fields = Map::new();
    for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        // A key that does not decode is named as it was written; one that is not even UTF-8
        // as written, its bytes beyond ASCII as `%XX` (as text they would be mojibake).
        let key = form_decode(key).map_err(|flaw| {
            let written = match std::str::from_utf8(key) {
                Ok(text) => text.to_owned(),
                Err(_) => {
                    percent_encoding::percent_encode(key, percent_encoding::CONTROLS).to_string()
                }
            };
            match flaw.naming(&written) {
                PayloadError::FormNotUtf8(key) => PayloadError::FormKeyNotUtf8(key),
                other => other,
            }
        })?;
        if key.starts_with(RESERVED) {
            return Err(PayloadError::reserved(&key));
        }
        if let Some(field) = look_alike(&key, &TOP_FIELDS) {
            return Err(PayloadError::look_alike(&key, field));
        }
        if pair.contains(&b';') {
            return Err(PayloadError::FormSemicolon(super::field_name(&key)));
        }
        let value = Value::String(form_decode(value).map_err(|flaw| flaw.naming(&key))?);
        match fields.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(slot) => return Err(PayloadError::duplicate(slot.key())),
        }
    }
    if fields.is_empty() {
        // Only separators: no field at all, which the format error lists.
        return Err(PayloadError::UnknownFormat);
    }
    Ok(Value::Object(fields))
}

/// What is wrong with one form key or value; the caller names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    BadEscape,
    NotUtf8,
}

impl Flaw {
    fn naming(self, field: &str) -> PayloadError {
        let field = super::field_name(field);
        match self {
            Flaw::BadEscape => PayloadError::FormBadEscape(field),
            Flaw::NotUtf8 => PayloadError::FormNotUtf8(field),
        }
    }
}

/// One form-urlencoded key or value: `+` is a space, then `%XX` escapes must decode to UTF-8.
/// A `%` not followed by two hex digits refuses the body: browsers keep it as it is, other
/// decoders reject it, so the merchant a `forward` sends the body to might read another id.
fn form_decode(text: &[u8]) -> Result<String, Flaw> {
    let escape_ok = |i: usize| {
        text.get(i + 1..i + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    };
    if text
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && !escape_ok(i))
    {
        return Err(Flaw::BadEscape);
    }
    let spaced = if text.contains(&b'+') {
        Cow::Owned(
            text.iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    };
    let decoded: Cow<[u8]> = percent_encoding::percent_decode(&spaced).into();
    String::from_utf8(decoded.into_owned()).map_err(|_| Flaw::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
            // Keys that other parsers read as a field the proxy reads have a test of their own.
            prop_assume!(pairs.iter().all(|(k, _)| look_alike(k, &TOP_FIELDS).is_none()));
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
    }

    /// Trial: `merchant_uid=o-1;amount=5&amount=1000` was order `o-1;amount=5` of 1,000 to
    /// us, and order `o-1` of 5 to a parser that splits on `;`. A raw `;` is refused, naming
    /// its field; one sent as `%3B` is a character like any other.
    #[test]
    fn a_raw_semicolon_is_refused() {
        for (body, field) in [
            (
                "imp_uid=imp_1&merchant_uid=o-1;amount=5&amount=1000",
                "merchant_uid",
            ),
            ("imp_uid=imp_1;merchant_uid=o-1;amount=1000", "imp_uid"),
            (
                "imp_uid=imp_1&merchant_uid=o-1&amount=1000&memo;x=1",
                "memo;x",
            ),
        ] {
            assert_eq!(
                parse_form(body.as_bytes()),
                Err(PayloadError::FormSemicolon(field.into())),
                "{body}"
            );
        }
        let read = parse_form(b"imp_uid=imp_1&merchant_uid=o-1%3Bx&amount=1000").unwrap();
        assert_eq!(read["merchant_uid"], "o-1;x");
    }

    #[test]
    fn keys_php_reads_as_a_read_field_are_refused() {
        for (body, key, field) in [
            (
                "imp_uid=a&merchant_uid=b&amount=5000&+amount=9000000",
                // Quoted: its space would not show in the reason.
                "\" amount\"",
                "amount",
            ),
            (
                "imp_uid=a&merchant.uid=b&amount=5000",
                "merchant.uid",
                "merchant_uid",
            ),
            (
                "imp_uid=a&merchant_uid=b&amount[]=5000",
                "amount[]",
                "amount",
            ),
            ("IMP_UID=a&merchant_uid=b&amount=5000", "IMP_UID", "imp_uid"),
            // A name ends at a NUL for PHP.
            (
                "imp_uid=i&merchant_uid=o&amount=5000&amount%00=1",
                "amount\\u{0}",
                "amount",
            ),
            (
                "imp_uid=i&merchant_uid=o&amount=5000&merchant_uid%00x=qa-1",
                "merchant_uid\\u{0}x",
                "merchant_uid",
            ),
            // A `[` never closed is a `_` to PHP.
            (
                "imp_uid=a&merchant_uid=b&merchant[uid=c&amount=5000",
                "merchant[uid",
                "merchant_uid",
            ),
        ] {
            assert_eq!(
                parse_form(body.as_bytes()),
                Err(PayloadError::LookAlikeField {
                    key: key.into(),
                    field
                }),
                "{body}"
            );
        }
    }
}
