//! An upstream's answer as rules see it: the body parsed as JSON (else text, in the charset
//! its `Content-Type` names), with the upstream's secrets masked wherever they are echoed.

use std::borrow::Cow;

use memchr::memmem::Finder;
use serde_json::Value;

/// `bytes` with every occurrence of a secret replaced by `***`, taking `secrets` in their order
/// (longest first, as [`crate::rules::Upstream::secrets`] holds them); `None` when none occurs, which is the usual case and copies nothing.
pub(super) fn masked(bytes: &[u8], secrets: &[Finder<'static>]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for secret in secrets {
        let text = out.as_deref().unwrap_or(bytes);
        // Occurrences come without overlap, left to right.
        let mut hits = secret.find_iter(text).peekable();
        if hits.peek().is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(text.len());
        let mut from = 0;
        for at in hits {
            next.extend_from_slice(&text[from..at]);
            next.extend_from_slice(b"***");
            from = at + secret.needle().len();
        }
        next.extend_from_slice(&text[from..]);
        out = Some(next);
    }
    out
}

/// The start of a secret (4 bytes or more) that a cut body ends with, replaced by `***`: the
/// cut can come in the middle of an echoed token, which [`masked`] finds only whole.
pub(super) fn mask_cut_secret(text: &mut String, secrets: &[Finder<'static>]) {
    let bytes = text.as_bytes();
    let cut = secrets
        .iter()
        .filter_map(|secret| {
            let needle = secret.needle();
            (4..needle.len())
                .rev()
                .find(|&k| bytes.ends_with(&needle[..k]))
        })
        .max();
    if let Some(k) = cut {
        let at = text.len() - k;
        if text.is_char_boundary(at) {
            text.truncate(at);
            text.push_str("***");
        }
    }
}

/// JSON when it parses, else the text (so `require` can still compare it). A byte-order mark
/// (UTF-8, UTF-16) and a UTF-16 label decide the charset first; then bytes that are valid
/// UTF-8 are read as UTF-8, JSON's own encoding, whatever a label says (a UTF-8 answer
/// labelled `charset=iso-8859-1` still reads right); any other bytes are read in the charset
/// the answer's `Content-Type` names — legacy Korean servers answer in EUC-KR and say so
/// (`application/json; charset=euc-kr`), and EUC-KR text is never valid UTF-8 — else as UTF-8.
/// Bytes that are not text in that charset become U+FFFD, so the numbers and ASCII of such an
/// answer are still read. `secrets` are masked once the text is decoded (an upstream may echo
/// a token back in any charset): in the strings of a JSON answer, read as JSON first so that
/// the masks leave it JSON (a `${MERCHANT_ID}` of `1234567` masked in `{"available":1234567}`
/// made it unreadable to every `require`) and catch a token JSON-escaped (`\/` for `/`);
/// in the text of any other answer.
pub fn parse_body(body: &[u8], content_type: Option<&str>, secrets: &[Finder<'static>]) -> Value {
    read_body_noting(body, content_type, secrets, true).0
}

/// At most this many values and keys are read from one answer as JSON. Each costs memory once
/// parsed and handed to Rhai (about 1.5 KB an object, 100 bytes a number in a list): 1 MiB of
/// nested `{"":{"":0}}` took 350 MB, and 10,000 objects of twelve numbers each 76 MB — ten such
/// answers at once over half a gigabyte, with the CPU making other requests' answers late. A
/// stock or order answer has tens. Under this limit the costliest answer found (a 1 MB map of
/// 9,999 long keys) peaked at 18 MB, ten at once at 70 MB.
pub const MAX_JSON_PARTS: usize = 20_000;

/// Whether `body` holds more than [`MAX_JSON_PARTS`] values and keys (see
/// [`more_parts_than`](crate::payload::more_parts_than)).
pub fn too_many_parts(body: &[u8]) -> bool {
    crate::payload::more_parts_than(body, MAX_JSON_PARTS)
}

/// The members of every object in `value`, at any depth.
fn members(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(members).sum::<usize>(),
        Value::Array(items) => items.iter().map(members).sum(),
        _ => 0,
    }
}

/// [`parse_body`] (or only its text when `json` is false), and what the JSON parser said of a
/// body read as JSON that did not parse:
/// kept for the error of a `require` that reads its fields, so that it need not be parsed
/// again then (a megabyte, on a worker).
pub fn read_body_noting(
    body: &[u8],
    content_type: Option<&str>,
    secrets: &[Finder<'static>],
    json: bool,
) -> (Value, Option<String>) {
    use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};
    let labelled = content_type.and_then(charset).and_then(encoding);
    let text = match (Encoding::for_bom(body), labelled) {
        (Some((bom, len)), _) => bom.decode_without_bom_handling(&body[len..]).0,
        (None, Some(e)) if e == UTF_16LE || e == UTF_16BE => e.decode_without_bom_handling(body).0,
        // One pass over the bytes: valid UTF-8 is borrowed as it is.
        (None, label) => match std::str::from_utf8(body) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => label.unwrap_or(UTF_8).decode_without_bom_handling(body).0,
        },
    };
    let parsed = json.then(|| match crate::payload::reserved_key(&text) {
        // Read as an instruction by the parser here, as an ordinary key by every other reader
        // of the answer (the merchant's, the decision log's): a `require` on it errs rather
        // than decide on what no one else sees (`{"available":{"$serde_json::private::Number":
        // "99"}}` would be 99).
        Some(key) => Err(format!(
            "a key the JSON reader here would take for an instruction, not data: \"{}\"",
            crate::text::for_buyers_cut(&key, 100)
        )),
        // `{"available":0,"available":5}`: serde_json keeps the last, the merchant's own reader
        // perhaps the first; a rule must not approve on the count its sender did not mean.
        // Found without a second parse: each `:` outside strings is one member, and a key
        // named twice leaves the parsed value a member short; only then is the text walked
        // again, for the key's path.
        None => serde_json::from_str::<Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                let written =
                    crate::payload::outside_strings(text.as_bytes()).filter(|&b| b == b':');
                if written.count() == members(&json) {
                    return Ok(json);
                }
                match crate::payload::json_flaw(&text) {
                    Some(flaw) => Err(format!(
                        "{flaw} (readers differ on which one counts, so its fields are not read)"
                    )),
                    None => Ok(json),
                }
            }),
    });
    let not_json = match parsed {
        Some(Ok(mut json)) => {
            if !secrets.is_empty() {
                mask_json(&mut json, secrets);
            }
            return (json, None);
        }
        Some(Err(e)) => Some(e),
        None => None,
    };
    let mut text = text.into_owned();
    mask_text(&mut text, secrets);
    (Value::String(text), not_json)
}

/// [`masked`] in every string and key of a JSON value; numbers and the structure stay as they
/// are. The parser's depth limit (128) bounds the recursion.
pub(super) fn mask_json(value: &mut Value, secrets: &[Finder<'static>]) {
    match value {
        Value::String(text) => mask_text(text, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_json(v, secrets)),
        Value::Object(map) => {
            if map.keys().any(|k| masked(k.as_bytes(), secrets).is_some()) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(mut k, v)| {
                        mask_text(&mut k, secrets);
                        (k, v)
                    })
                    .collect();
            }
            map.values_mut().for_each(|v| mask_json(v, secrets));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn mask_text(text: &mut String, secrets: &[Finder<'static>]) {
    if let Some(m) = masked(text.as_bytes(), secrets) {
        // Valid UTF-8 in, whole UTF-8 secrets replaced: valid UTF-8 out.
        *text = String::from_utf8_lossy(&m).into_owned();
    }
}

/// The encoding a charset label names: the web's labels, and the names Java and Windows
/// servers give the same Korean code page (WHATWG's EUC-KR is that superset, code page 949).
fn encoding(label: &str) -> Option<&'static encoding_rs::Encoding> {
    // `for_label_no_replacement`: labels such as `iso-2022-kr` name the web's "replacement"
    // encoding, which reads every body as one U+FFFD; such a label is taken as none.
    encoding_rs::Encoding::for_label_no_replacement(label.as_bytes()).or_else(|| {
        ["cp949", "ms949", "uhc"]
            .iter()
            .any(|k| label.eq_ignore_ascii_case(k))
            .then_some(encoding_rs::EUC_KR)
    })
}

/// The `charset` parameter of a `Content-Type` value, unquoted.
/// A quoted value may hold `;` (`foo="a;charset=x"`), which ends no parameter (RFC 9110 §5.6.6).
fn charset(content_type: &str) -> Option<&str> {
    let (_, mut rest) = content_type.split_once(';')?;
    loop {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            // Up to the closing quote, past any backslash-escaped character.
            Some(quoted) => {
                let mut escaped = false;
                let end = quoted.char_indices().find_map(|(i, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes.then_some(i)
                })?;
                let next = quoted[end + 1..].split_once(';').map(|(_, n)| n);
                (&quoted[..end], next)
            }
            None => match after.split_once(';') {
                Some((value, next)) => (value.trim_end(), Some(next)),
                None => (after.trim_end(), None),
            },
        };
        if name.trim().eq_ignore_ascii_case("charset") {
            return Some(value);
        }
        rest = next?;
    }
}

#[cfg(test)]
mod tests {

    /// Values and keys are counted outside strings only, escaped quotes included.
    #[test]
    fn values_and_keys_are_counted_outside_strings() {
        let limit = super::MAX_JSON_PARTS;
        // A list of n numbers: its `[` and n - 1 commas.
        let numbers = |n: usize| format!("[{}]", vec!["0"; n].join(","));
        assert!(!super::too_many_parts(numbers(limit).as_bytes()));
        assert!(super::too_many_parts(numbers(limit + 1).as_bytes()));
        // An object of one key: its `{` and `:`, and a comma after it in a list.
        let objects = |n: usize| format!("[{}]", vec![r#"{"a":0}"#; n].join(","));
        assert!(!super::too_many_parts(objects(limit / 3).as_bytes()));
        assert!(super::too_many_parts(objects(limit / 3 + 1).as_bytes()));
        // In strings, with an escaped quote before them: not counted.
        let text = format!(r#"["\"{}"]"#, "{[,:".repeat(limit));
        assert!(!super::too_many_parts(text.as_bytes()));
        let text = format!(r#"["\\", {}]"#, vec!["0"; limit].join(","));
        assert!(super::too_many_parts(text.as_bytes()));
    }

    /// An answer is read off the workers from 64 KiB, or when it has more than
    /// [`MANY_PARTS`](crate::upstream::MANY_PARTS) values and keys at any size.
    #[test]
    fn an_answer_is_large_by_its_size_or_by_its_parts() {
        use crate::upstream::{is_large, BIG_BODY, MANY_PARTS};
        let objects = |n: usize| format!("[{}]", vec![r#"{"a":0}"#; n].join(","));
        // 6,600 objects in 52 KB: large though small.
        let many = objects(6_600);
        assert!(many.len() < BIG_BODY && is_large(many.as_bytes()));
        assert!(!is_large(objects(MANY_PARTS / 3).as_bytes()));
        assert!(is_large(objects(MANY_PARTS / 3 + 1).as_bytes()));
        // A stock answer is not; 64 KiB of text is.
        assert!(!is_large(br#"{"available": 3, "sku": "A-1"}"#));
        assert!(is_large(format!("\"{}\"", "x".repeat(BIG_BODY)).as_bytes()));
    }

    use super::*;

    fn finders(secrets: &[&str]) -> Vec<Finder<'static>> {
        secrets
            .iter()
            .map(|s| Finder::new(s.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn masked_replaces_every_secret_longest_first() {
        let secrets = finders(&["t0ken-long", "t0ken"]);
        let out = masked(
            br#"{"error":"bad t0ken-long, t0ken, t0ken-longt0ken-long"}"#,
            &secrets,
        );
        assert_eq!(
            String::from_utf8(out.unwrap()).unwrap(),
            r#"{"error":"bad ***, ***, ******"}"#
        );
        // Overlapping occurrences: each byte is masked once, nothing of the secret is left.
        let out = masked(b"aaaaaaa", &finders(&["aaaaaa"]));
        assert_eq!(out.as_deref(), Some(&b"***a"[..]));
        assert_eq!(
            masked(b"aaaaaaaaaaaa", &finders(&["aaaaaa"])).as_deref(),
            Some(&b"******"[..])
        );
        assert_eq!(masked(b"no secret here", &secrets), None);
    }

    /// A byte-order mark decides the charset over the label; a label of the web's
    /// "replacement" encoding is taken as none; a secret echoed in any charset is masked once
    /// the text is decoded.
    #[test]
    fn byte_order_marks_replacement_labels_and_secrets_in_other_charsets() {
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in r#"{"reason":"bad token s3cret-token","left":2}"#.encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let secrets = finders(&["s3cret-token"]);
        for ct in [None, Some("application/json; charset=euc-kr")] {
            assert_eq!(
                parse_body(&utf16, ct, &secrets),
                serde_json::json!({"reason": "bad token ***", "left": 2}),
                "{ct:?}"
            );
        }
        assert_eq!(
            parse_body(
                br#"{"left":2}"#,
                Some("application/json; charset=iso-2022-kr"),
                &[]
            ),
            serde_json::json!({"left": 2})
        );
        // UTF-8 is read as UTF-8 whatever the label says (windows-1252 would read any byte),
        // also after a UTF-8 byte-order mark.
        let utf8 = r#"{"reason":"재고 없음"}"#;
        for body in [utf8.to_owned(), format!("\u{feff}{utf8}")] {
            assert_eq!(
                parse_body(
                    body.as_bytes(),
                    Some("application/json; charset=ISO-8859-1"),
                    &[]
                ),
                serde_json::json!({"reason": "재고 없음"})
            );
        }
    }

    /// In a JSON answer only strings and keys are masked: the answer stays JSON, its numbers
    /// stay numbers, and a token JSON-escaped by the upstream is found too.
    #[test]
    fn secrets_in_a_json_answer_are_masked_in_its_strings_only() {
        let secrets = finders(&["1234567", "ab/cd+ef=="]);
        assert_eq!(
            parse_body(
                br#"{"merchant":1234567,"available":1234567,"note":"id 1234567","1234567":[{"t":"ab\/cd+ef=="}]}"#,
                None,
                &secrets
            ),
            serde_json::json!({"merchant": 1234567, "available": 1234567, "note": "id ***", "***": [{"t": "***"}]})
        );
        assert_eq!(
            parse_body(b"denied: ab/cd+ef== 1234567", None, &secrets),
            serde_json::json!("denied: *** ***")
        );
    }

    #[test]
    fn a_cut_body_ending_in_the_start_of_a_secret_masks_it() {
        let secrets = finders(&["sk_live_abcdef123456"]);
        for (text, want) in [
            ("denied: Bearer sk_live_abc", "denied: Bearer ***"),
            ("denied: Bearer sk_", "denied: Bearer sk_"),
            ("어떤 답 sk_live", "어떤 답 ***"),
            ("nothing secret here", "nothing secret here"),
        ] {
            let mut text = text.to_owned();
            mask_cut_secret(&mut text, &secrets);
            assert_eq!(text, want);
        }
    }

    #[test]
    fn the_charset_parameter_is_read_past_quoted_values() {
        for (ct, want) in [
            ("application/json; charset=euc-kr", Some("euc-kr")),
            (
                "application/json;charset=\"EUC-KR\";foo=bar",
                Some("EUC-KR"),
            ),
            (
                "application/json; foo=\"x;charset=utf-8\"; charset=euc-kr",
                Some("euc-kr"),
            ),
            (
                "application/json; foo=\"a\\\"b;c\" ; Charset = cp949 ",
                Some("cp949"),
            ),
            ("application/json; foo=bar", None),
            ("application/json", None),
            ("application/json; foo=\"unclosed; charset=x", None),
        ] {
            assert_eq!(charset(ct), want, "{ct}");
        }
    }

    #[test]
    fn bodies_are_read_in_the_charset_their_content_type_names() {
        let (euc_kr, _, _) = encoding_rs::EUC_KR.encode(r#"{"reason":"재고 없음","left":0}"#);
        let want = serde_json::json!({"reason": "재고 없음", "left": 0});
        for ct in [
            "application/json; charset=euc-kr",
            "application/json;charset=\"EUC-KR\"",
            "text/plain; format=x; Charset=cp949",
        ] {
            assert_eq!(parse_body(&euc_kr, Some(ct), &[]), want, "{ct}");
        }
        // Named nowhere (or unknown): UTF-8, with what is not UTF-8 as U+FFFD; the numbers and
        // ASCII of the answer are still read.
        for ct in [
            None,
            Some("application/json"),
            Some("application/json; charset=nope"),
        ] {
            let body = parse_body(&euc_kr, ct, &[]);
            assert_eq!(body["left"], 0, "{ct:?}");
            assert!(
                body["reason"].as_str().unwrap().contains('\u{fffd}'),
                "{ct:?}"
            );
        }
        // A key the JSON reader here takes for an instruction: not read as JSON (a `require`
        // on it errs), rather than as what no other reader of the answer sees.
        let answer = br#"{"available":{"$serde_json::private::Number":"99"}}"#;
        let (body, not_json) = read_body_noting(answer, None, &[], true);
        assert_eq!(body, Value::String(String::from_utf8_lossy(answer).into()));
        assert_eq!(
            not_json.as_deref(),
            Some(
                r#"a key the JSON reader here would take for an instruction, not data: "$serde_json::private::Number""#
            )
        );
        // An audit: `{"available":0,"available":5}` approved a stock check on the 5, where the
        // merchant's own reader may take the 0. Not read as JSON, at any depth.
        for (answer, path) in [
            (&br#"{"available":0,"available":5}"#[..], "available"),
            (
                br#"{"items":[{"sku":"a"},{"sku":"b","s\u006bu":"c"}]}"#,
                "items[1].sku",
            ),
        ] {
            let (body, not_json) = read_body_noting(answer, None, &[], true);
            assert!(body.is_string(), "{body}");
            assert_eq!(
                not_json.unwrap(),
                format!("{path}: a key named twice in one object (readers differ on which one counts, so its fields are not read)")
            );
        }
        // Colons in strings, escaped quotes, keys in nested lists: no key twice, read as JSON.
        let answer = br#"{"a":"x:y","b":"q\":\\","c":[{"d":1},{"d":2}],"e":{"f":{}}}"#;
        let (body, not_json) = read_body_noting(answer, None, &[], true);
        assert_eq!((body["b"].as_str(), not_json), (Some("q\":\\"), None));
        // A byte-order mark before JSON; text stays text.
        assert_eq!(
            parse_body("\u{feff}{\"a\":1}".as_bytes(), None, &[]),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            parse_body(b"not json", Some("text/plain; charset=utf-8"), &[]),
            Value::String("not json".into())
        );
    }
}
