//! One decision-log record as a JSON line, written straight into a byte buffer.
//!
//! Deriving `Serialize` sent every key and value through serde_json's string escaper and its
//! `io::Write` calls; with a record per request that was the largest single cost of answering
//! (10.1k of 49.5k instructions per request, callgrind, see BENCHMARKS.md). The keys here are
//! fixed ASCII and written as literals; only values are escaped, exactly as serde_json escapes
//! them (the tests compare the two byte for byte). Free-form JSON (the request body, upstream
//! bodies) still goes through serde_json.

use serde_json::Value;

use crate::decision::{CallMade, Decision, RuleTrace, ShadowOutcome};
use crate::wordscan;

use super::Record;

/// Appends `r` as one line of JSON, newline included.
pub(super) fn write(r: &Record<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let start = out.len();
    let mut time = [0u8; 27];
    out.extend_from_slice(b"{\"time\":\"");
    // Microseconds: a sale window's limit may fall inside a millisecond, and replay must
    // judge the arrival on the same side of it.
    out.extend_from_slice(crate::logfmt::rfc3339(&r.time, 6, &mut time).as_bytes());
    raw(out, "\",\"decision_id\":");
    string(out, r.decision_id);
    if let Some(first) = r.repeat_of {
        raw(out, ",\"repeat_of\":");
        string(out, first);
    }
    if let Some(why) = r.repeat_refused {
        raw(out, ",\"repeat_refused\":");
        string(out, why);
    }
    if let Some(guard) = r.guard {
        raw(out, ",\"guard\":");
        string(out, guard);
    }
    if let Some(id) = r.webhook_id {
        raw(out, ",\"webhook_id\":");
        string(out, id);
    }
    if let Some(source) = r.source {
        // An address is ASCII without quotes or backslashes: nothing to escape.
        raw(out, ",\"source\":\"");
        raw(out, &source.to_string());
        raw(out, "\"");
    }
    raw(out, ",\"ruleset\":");
    string(out, r.ruleset);
    raw(out, ",\"rules_version\":");
    string(out, r.rules_version);
    if let Some(api) = r.api {
        raw(out, ",\"api\":");
        string(out, api);
    }
    if let Some(id) = r.order_id {
        raw(out, ",\"order_id\":");
        string(out, id);
    }
    if let Some(id) = r.tx_id {
        raw(out, ",\"tx_id\":");
        string(out, id);
    }
    if let Some(amount) = r.amount {
        // As the body wrote it (`3e6`, `10.50`), in JSON number syntax.
        raw(out, ",\"amount\":");
        raw(out, &amount.as_json_number());
    }
    decision(r.decision, out)?;
    raw(out, ",\"latency_ms\":");
    millis(out, r.latency_ms);
    if let Some(request) = r.request {
        raw(out, ",\"request\":");
        request.write_json(out)?;
    }
    out.extend_from_slice(b"}\n");
    if let Some(line) = crate::logfmt::unseen_escaped(&out[start..]) {
        out.truncate(start);
        out.extend_from_slice(&line);
    }
    Ok(())
}

/// The fields of a [`Decision`], as its `Serialize` would write them.
fn decision(d: &Decision, out: &mut Vec<u8>) -> serde_json::Result<()> {
    raw(out, ",\"decision\":\"");
    raw(out, d.decision.as_str());
    raw(out, "\",\"status\":");
    raw(out, itoa::Buffer::new().format(d.status));
    if let Some(reason) = &d.reason {
        raw(out, ",\"reason\":");
        string(out, reason);
    }
    if let Some(rule) = &d.rule {
        raw(out, ",\"rule\":");
        string(out, rule);
    }
    if !d.shadow.is_empty() {
        raw(out, ",\"shadow\":[");
        for (i, s) in d.shadow.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            shadow(s, out);
        }
        out.push(b']');
    }
    raw(out, ",\"trace\":[");
    for (i, t) in d.trace.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        trace(t, out)?;
    }
    out.push(b']');
    if !d.unused_fetches.is_empty() {
        raw(out, ",\"unused_fetches\":[");
        for (i, u) in d.unused_fetches.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            raw(out, "{\"rule\":");
            string(out, &u.rule);
            call_made(out, ",\"call\":", &u.call);
            if let Some(status) = u.status {
                raw(out, ",\"status\":");
                raw(out, itoa::Buffer::new().format(status));
            }
            if let Some(error) = &u.error {
                raw(out, ",\"error\":");
                string(out, error);
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    Ok(())
}

fn shadow(s: &ShadowOutcome, out: &mut Vec<u8>) {
    raw(out, "{\"rule\":");
    string(out, &s.rule);
    raw(out, ",\"outcome\":\"");
    raw(out, s.outcome.as_str());
    out.push(b'"');
    if let Some(reason) = &s.reason {
        raw(out, ",\"reason\":");
        string(out, reason);
    }
    out.push(b'}');
}

/// `key` (with its comma and colon) and a call as an object.
fn call_made(out: &mut Vec<u8>, key: &str, call: &CallMade) {
    raw(out, key);
    raw(out, "{\"upstream\":");
    string(out, &call.upstream);
    raw(out, ",\"method\":");
    string(out, call.method.as_str());
    raw(out, ",\"path\":");
    string(out, &call.path);
    raw(out, ",\"sent\":\"");
    raw(out, &call.sent);
    out.push(b'"');
    out.push(b'}');
}

fn trace(t: &RuleTrace, out: &mut Vec<u8>) -> serde_json::Result<()> {
    raw(out, "{\"rule\":");
    string(out, &t.rule);
    raw(out, ",\"outcome\":\"");
    raw(out, t.outcome.as_str());
    raw(out, "\",\"ms\":");
    millis(out, t.ms);
    if let Some(reason) = &t.reason {
        raw(out, ",\"reason\":");
        string(out, reason);
    }
    if let Some(call) = &t.call {
        call_made(out, ",\"call\":", call);
    }
    if let Some(probe) = &t.probe {
        call_made(out, ",\"probe\":", probe);
    }
    if let Some(failure) = &t.probe_failure {
        raw(out, ",\"probe_failure\":");
        string(out, failure);
    }
    if let Some(answer) = &t.upstream {
        raw(out, ",\"upstream\":{\"status\":");
        raw(out, itoa::Buffer::new().format(answer.status));
        raw(out, ",\"body\":");
        value(out, &answer.body)?;
        if let Some(why) = &answer.incomplete {
            raw(out, ",\"incomplete\":");
            string(out, why);
        }
        if answer.cut {
            raw(out, ",\"cut\":true");
        }
        out.push(b'}');
    }
    if let Some(error) = &t.error {
        raw(out, ",\"error\":");
        string(out, error);
    }
    if t.deadline {
        raw(out, ",\"deadline\":true");
    }
    out.push(b'}');
    Ok(())
}

fn raw(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn value(out: &mut Vec<u8>, v: &Value) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, v)
}

/// Milliseconds as the engine and server measure them, from integer digits when they are
/// rounded to the microsecond (always, in practice): ryu's general shortest-digits search cost
/// more than the rest of the record at five numbers a line.
fn millis(out: &mut Vec<u8>, ms: f64) {
    match crate::logfmt::millis_ascii(ms, &mut [0; 24]) {
        Some(text) => out.extend_from_slice(text),
        None => number(out, ms),
    }
}

/// As serde_json writes an `f64`: shortest round-trip digits, `null` when not finite. Times in
/// milliseconds are in ryu's plain-decimal range; the rest (exponent notation, where the two
/// differ in style) is left to serde_json.
fn number(out: &mut Vec<u8>, n: f64) {
    if n == 0.0 || (1e-5..1e16).contains(&n.abs()) {
        raw(out, ryu::Buffer::new().format_finite(n));
    } else {
        let _ = serde_json::to_writer(&mut *out, &n);
    }
}

/// A JSON string with serde_json's escapes: `"` `\` and control characters; everything else,
/// non-ASCII included, as it is. Runs without escapes are copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    const ESCAPED: wordscan::Bytes = wordscan::Bytes {
        below: 0x20,
        any_of: b"\"\\",
        high: false,
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(n) = wordscan::find(&bytes[start..], &ESCAPED) {
        let i = start + n;
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::decision::{CallMade, Outcome, UnusedFetch, UpstreamAnswer, Verdict};
    use crate::payload::Amount;

    fn line(r: &Record<'_>) -> String {
        let mut out = Vec::new();
        write(r, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A decision with every optional part present, and strings that need escaping.
    fn full_decision() -> Decision {
        let tricky = "재고 \"없음\"\n\\ \u{1}\u{1f}\t/\u{7f}";
        Decision {
            decision: Verdict::Reject,
            status: 409,
            reason: Some(tricky.into()),
            rule: Some(Arc::from("stock")),
            shadow: vec![
                ShadowOutcome {
                    rule: Arc::from("trial"),
                    outcome: Outcome::ShadowReject,
                    reason: Some("시험 \"한도\"".into()),
                },
                ShadowOutcome {
                    rule: Arc::from("trial-2"),
                    outcome: Outcome::Pass,
                    reason: None,
                },
            ],
            trace: vec![
                RuleTrace {
                    rule: Arc::from("amount-range"),
                    outcome: Outcome::Pass,
                    ms: 0.001,
                    reason: None,
                    call: None,
                    probe: Some(CallMade {
                        upstream: "shop".into(),
                        method: http::Method::GET,
                        path: "/health".into(),
                        sent: "fedcba9876543210".into(),
                    }),
                    probe_failure: Some("/health answered 503, \"점검 중\"\n".into()),
                    upstream: None,
                    error: None,
                    deadline: false,
                    faulted: false,
                },
                RuleTrace {
                    rule: Arc::from("stock"),
                    outcome: Outcome::Error,
                    ms: 12.0,
                    reason: Some(tricky.into()),
                    call: Some(CallMade {
                        upstream: "shop".into(),
                        method: http::Method::GET,
                        path: "/api/stock/o-\"1\"?x=1".into(),
                        sent: "0123456789abcdef".into(),
                    }),
                    probe: None,
                    probe_failure: None,
                    upstream: Some(UpstreamAnswer {
                        status: 503,
                        body: json!({"error": "down\n", "n": 1.5, "list": [1, "x"]}),
                        incomplete: Some("cut short: timed out after 1s".into()),
                        cut: true,
                    }),
                    error: Some("timeout after 1s: \"shop\"".into()),
                    deadline: true,
                    faulted: false,
                },
            ],
            unused_fetches: vec![
                UnusedFetch {
                    rule: Arc::from("limits"),
                    call: CallMade {
                        upstream: "shop".into(),
                        method: http::Method::GET,
                        path: "/api/limits/o-\"1\"".into(),
                        sent: "0123456789abcdef".into(),
                    },
                    status: Some(200),
                    error: None,
                },
                UnusedFetch {
                    rule: Arc::from("stock-2"),
                    call: CallMade::default(),
                    status: None,
                    error: Some("connection refused: \"shop\"".into()),
                },
            ],
        }
    }

    #[test]
    fn decision_fields_match_serde() {
        let d = full_decision();
        let mut out = Vec::new();
        decision(&d, &mut out).unwrap();
        // `decision` writes the fields of an object whose opening part is already written.
        let text = format!("{{\"x\":0{}}}", String::from_utf8(out).unwrap());
        let mut ours: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        ours.remove("x");
        assert_eq!(Value::Object(ours), serde_json::to_value(&d).unwrap());
        // And byte for byte, since nothing is reordered.
        let serde_text = serde_json::to_string(&d).unwrap();
        assert_eq!(text.replacen("{\"x\":0,", "{", 1), serde_text);
    }

    #[test]
    fn minimal_decision_matches_serde() {
        let d = Decision::approve(None);
        let mut out = Vec::new();
        decision(&d, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            format!("{{{}}}", &text[1..]),
            serde_json::to_string(&d).unwrap()
        );
    }

    #[test]
    fn record_is_one_line_of_the_documented_shape() {
        use chrono::TimeZone;
        let time = chrono::Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .unwrap()
            .checked_add_signed(chrono::TimeDelta::milliseconds(42))
            .unwrap();
        let amount: Amount = "10.50".parse().unwrap();
        let body = r#"{"imp_uid": "imp_1", "merchant_uid": "o\n1", "amount": 10.50}"#;
        let Ok(crate::payload::Parsed::Confirm(req)) =
            crate::payload::parse(Some("application/json"), body.as_bytes())
        else {
            panic!("a confirm body")
        };
        let request = &req.payload;
        let d = full_decision();
        let r = Record {
            time,
            decision_id: "01a2",
            ruleset: "default",
            rules_version: "abc123",
            api: Some("v1"),
            order_id: Some("o\n1"),
            tx_id: Some("imp_1"),
            amount: Some(&amount),
            decision: &d,
            latency_ms: 0.052,
            request: Some(request),
            repeat_of: Some("01a1"),
            repeat_refused: Some("other_body"),
            guard: None,
            webhook_id: Some("msg_2\"x"),
            source: Some("2001:db8::7".parse().unwrap()),
        };
        let text = line(&r);
        assert!(text.ends_with('\n'));
        assert_eq!(text.trim_end().lines().count(), 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        let mut expected = json!({
            "time": "2026-12-01T12:00:00.042000Z",
            "decision_id": "01a2",
            "repeat_of": "01a1",
            "repeat_refused": "other_body",
            "webhook_id": "msg_2\"x",
            "source": "2001:db8::7",
            "ruleset": "default",
            "rules_version": "abc123",
            "api": "v1",
            "order_id": "o\n1",
            "tx_id": "imp_1",
            "amount": serde_json::from_str::<Value>("10.50").unwrap(),
            "latency_ms": 0.052,
            "request": serde_json::from_str::<Value>(body).unwrap(),
        });
        let serde_json::Value::Object(decision) = serde_json::to_value(&d).unwrap() else {
            panic!("a decision is an object")
        };
        expected.as_object_mut().unwrap().extend(decision);
        assert_eq!(v, expected);
        // The amount is written as sent, trailing zero and all.
        assert!(text.contains(",\"amount\":10.50,"), "{text}");
    }

    /// A sale window's limit can fall inside a millisecond, and a whole second must not lose
    /// its digits: `time` is always six fraction digits.
    #[test]
    fn time_is_fixed_width_to_the_microsecond() {
        use chrono::TimeZone;
        let second = chrono::Utc
            .with_ymd_and_hms(2026, 12, 4, 18, 45, 25)
            .unwrap();
        let d = Decision::approve(None);
        for (micros, expected) in [
            (0, "2026-12-04T18:45:25.000000Z"),
            (500, "2026-12-04T18:45:25.000500Z"),
            (42_007, "2026-12-04T18:45:25.042007Z"),
        ] {
            let r = Record {
                time: second + chrono::TimeDelta::microseconds(micros),
                ..crate::audit::testing::record("id", &d)
            };
            assert!(
                line(&r).starts_with(&format!("{{\"time\":\"{expected}\",")),
                "{}",
                line(&r)
            );
        }
    }

    #[test]
    fn absent_fields_are_left_out() {
        let d = Decision::reject(404, "알 수 없는 경로".into(), None);
        let r = Record {
            time: chrono::Utc::now(),
            decision_id: "id",
            ruleset: "unknown",
            rules_version: "v",
            api: None,
            order_id: None,
            tx_id: None,
            amount: None,
            decision: &d,
            latency_ms: f64::NAN,
            request: None,
            repeat_of: None,
            repeat_refused: None,
            guard: None,
            webhook_id: None,
            source: None,
        };
        let v: Value = serde_json::from_str(&line(&r)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "decision",
                "decision_id",
                "latency_ms",
                "reason",
                "rules_version",
                "ruleset",
                "status",
                "time",
                "trace"
            ]
        );
        assert_eq!(v["latency_ms"], Value::Null, "as serde_json writes NaN");
    }

    /// A line for a request parsed from `body`, with the request fields filled in as the
    /// server fills them.
    fn request_line(content_type: Option<&str>, body: &[u8]) -> String {
        let Ok(crate::payload::Parsed::Confirm(req)) = crate::payload::parse(content_type, body)
        else {
            panic!("a confirm body: {}", String::from_utf8_lossy(body))
        };
        let d = Decision::approve(None);
        line(&Record {
            time: chrono::Utc::now(),
            decision_id: "id",
            ruleset: "default",
            rules_version: "v",
            api: Some(req.api.as_str()),
            order_id: Some(&req.order_id),
            tx_id: Some(&req.tx_id),
            amount: Some(&req.amount),
            decision: &d,
            latency_ms: 0.1,
            request: Some(&req.payload),
            repeat_of: None,
            repeat_refused: None,
            guard: None,
            webhook_id: None,
            source: None,
        })
    }

    /// The text after `"request":` up to the closing brace of the line.
    fn request_text(line: &str) -> &str {
        let start = line.find(",\"request\":").expect("a request field") + ",\"request\":".len();
        &line[start..line.len() - 2]
    }

    #[test]
    fn request_is_the_bodys_own_bytes_whichever_parser_read_it() {
        const JSON: Option<&str> = Some("application/json");
        for body in [
            // The fast path.
            "{\n  \"imp_uid\": \"imp_1\",\n  \"merchant_uid\": \"o\",\n  \"amount\": 10.50\n}\n",
            // The full parser: an escape, an exponent, keys out of order, a big number.
            r#"{"z":0,"merchant_uid":"\u006f","imp_uid":"i","amount":3e6,"n":1.0E+400}"#,
            "{\"type\":\"Transaction.Confirm\",\r\n\"data\":{\"paymentId\":\"p\\/1\",\"transactionId\":\"t\",\"totalAmount\":1E3}}",
            r#"{"imp_uid":"i","merchant_uid":"\ud55c\"\\\n","amount":"\u0031000"}"#,
        ] {
            for ct in [JSON, None] {
                let text = request_line(ct, body.as_bytes());
                assert_eq!(text.trim_end().lines().count(), 1, "{text}");
                let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
                assert_eq!(request_text(&text), body.replace(['\n', '\r'], " "));
                assert_eq!(v["request"], serde_json::from_str::<Value>(body).unwrap());
            }
        }
        // A form body has no JSON bytes: an object of its strings.
        let text = request_line(
            Some("application/x-www-form-urlencoded"),
            b"merchant_uid=o&imp_uid=i&amount=1000.0&memo=a%0Ab",
        );
        assert_eq!(
            request_text(&text),
            r#"{"amount":"1000.0","imp_uid":"i","memo":"a\nb","merchant_uid":"o"}"#
        );
    }

    /// U+2028, U+2029 and NEL, which some readers take for line breaks, and text-direction
    /// controls, which reorder a terminal's line, are escaped wherever they are in the record:
    /// in the ids and in the body's own bytes.
    #[test]
    fn unicode_line_breaks_and_direction_controls_are_escaped() {
        let body =
            "{\"imp_uid\":\"i\u{2029}\",\"merchant_uid\":\"a\u{85}b\u{2028}c…\u{202e}d\",\"amount\":5}";
        for ct in [Some("application/json"), None] {
            let text = request_line(ct, body.as_bytes());
            assert!(text.ends_with('\n'));
            assert!(
                !text.contains(['\u{2028}', '\u{2029}', '\u{85}', '\u{202e}']),
                "{text}"
            );
            assert!(
                text.contains(r#""order_id":"a\u0085b\u2028c…\u202ed""#),
                "{text}"
            );
            assert!(text.contains(r#""tx_id":"i\u2029""#), "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["order_id"], "a\u{85}b\u{2028}c…\u{202e}d");
            assert_eq!(v["request"], serde_json::from_str::<Value>(body).unwrap());
        }
    }

    #[test]
    fn amount_is_written_as_the_body_wrote_it() {
        const JSON: Option<&str> = Some("application/json");
        for (body, amount) in [
            (r#"{"imp_uid":"i","merchant_uid":"o","amount":3e6}"#, "3e6"),
            (
                r#"{"imp_uid":"i\u0031","merchant_uid":"o","amount":3E+6}"#,
                "3E+6",
            ),
            (
                r#"{"payment_id":"p","tx_id":"t","total_amount":5000.000000000000000000000000000000}"#,
                "5000.000000000000000000000000000000",
            ),
            (
                r#"{"imp_uid":"i","merchant_uid":"o","amount":"10.50"}"#,
                "10.50",
            ),
            // A numeric string with leading zeros is no JSON number: its value is written.
            (
                r#"{"imp_uid":"i","merchant_uid":"o","amount":"0100"}"#,
                "100",
            ),
            (r#"{"imp_uid":"i","merchant_uid":"o","amount":" 00 "}"#, "0"),
        ] {
            let text = request_line(JSON, body.as_bytes());
            assert!(text.contains(&format!(",\"amount\":{amount},")), "{text}");
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        }
        let text = request_line(
            Some("application/x-www-form-urlencoded"),
            b"merchant_uid=o&imp_uid=i&amount=007",
        );
        assert!(text.contains(",\"amount\":7,"), "{text}");
        serde_json::from_str::<Value>(&text).unwrap();
    }

    /// Every ASCII character, one by one: random strings seldom hold the control characters
    /// that have a short escape of their own (`\b`, `\f`, `\r`).
    #[test]
    fn every_ascii_character_escapes_exactly_as_serde_json() {
        for c in (0u8..0x80).map(char::from) {
            let s = format!("a{c}b");
            let mut out = Vec::new();
            string(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{c:?}"
            );
        }
    }

    proptest! {
        /// Whatever ids, amount spelling and whitespace an accepted body has, its line is one
        /// line of JSON with the body's value under `request`.
        #[test]
        fn every_line_is_json(
            order in any::<String>().prop_filter("shows something", |s| !crate::text::shows_nothing(s)),
            amount in proptest::sample::select(vec![
                "1000", "10.50", "1e3", "1E+3", "0e5", "3.0000001e6", "0.0000000000000000000000000000000000",
                "\"1000\"", "\" 10.50 \"", "\"0100\"", "\"00\"", "\"\\u0031\"",
            ]),
            space in proptest::sample::select(vec!["", " ", "\n", "\r\n\t", "\n\n  "]),
            escape in any::<bool>(),
        ) {
            let order = serde_json::to_string(&order).unwrap();
            let order = if escape { order.replace('o', "\\u006f") } else { order };
            let body = format!(
                "{space}{{{space}\"imp_uid\"{space}:{space}\"i\",{space}\"merchant_uid\":{order},\"amount\":{space}{amount}{space}}}{space}"
            );
            for ct in [Some("application/json"), None] {
                let text = request_line(ct, body.as_bytes());
                prop_assert_eq!(text.trim_end().lines().count(), 1);
                prop_assert!(!text.chars().any(crate::logfmt::escaped_in_json_lines), "{}", text);
                let v: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(&v["request"], &serde_json::from_str::<Value>(&body).unwrap());
                let one_line =
                    crate::logfmt::tests::unseen_escaped_slowly(&body.replace(['\n', '\r'], " "));
                prop_assert_eq!(request_text(&text), one_line);
            }
        }

        #[test]
        fn strings_escape_exactly_as_serde_json(s in any::<String>()) {
            let mut out = Vec::new();
            string(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn millis_print_exactly_as_serde_json(micros in 0u64..1_000_000_000_000, n in any::<f64>()) {
            // What the engine produces: a duration rounded to the microsecond.
            let ms = micros as f64 / 1000.0;
            let mut out = Vec::new();
            millis(&mut out, ms);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&ms).unwrap());
            // And anything else still comes out as serde_json writes it.
            let mut out = Vec::new();
            millis(&mut out, n);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&n).unwrap());
        }

        #[test]
        fn numbers_print_exactly_as_serde_json(n in any::<f64>()) {
            let mut out = Vec::new();
            number(&mut out, n);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&n).unwrap());
        }
    }
}
