//! Form-urlencoded bodies: decoded strictly into a JSON object of strings, so rules see the
//! same `payload` as for a JSON body.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::PayloadError;

/// A form body becomes a JSON object of strings, so rules see the same `payload` either way.
///
/// Decoded strictly: a payment id must be exact, so invalid UTF-8 anywhere — raw or
/// percent-encoded, in a key or a value — refuses the body instead of becoming U+FFFD.
/// Empty pairs (`a=1&&b=2`) are skipped and a pair without `=` has an empty value. A key
/// given twice (compared decoded) refuses the body, as in JSON: the merchant a `forward` sends
/// the body to might read the other one.
pub(super) fn parse_form(body: &[u8]) -> Result<Value, PayloadError> {
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
/// A `%` not followed by two hex digits refuses the body: browsers keep it as it is, other
/// decoders reject it, so the merchant a `forward` sends the body to might read another id.
fn form_decode(text: &str) -> Result<String, PayloadError> {
    let bytes = text.as_bytes();
    let escape_ok = |i: usize| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    };
    if bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && !escape_ok(i))
    {
        return Err(PayloadError::InvalidForm);
    }
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
}
