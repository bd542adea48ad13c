//! The text log line and the timestamps of both logs.
//!
//! tracing-subscriber's default line format goes through `core::fmt` for every part and quotes
//! every string field; with one line per decision it cost more instructions than evaluating the
//! rules (callgrind, see BENCHMARKS.md). This writes the same information directly, in logfmt
//! style: `TIME LEVEL target: message key=value …`, a value quoted (and escaped) only when it
//! has to be — when empty or holding spaces, quotes, `=`, backslashes or control characters —
//! so no value from outside can forge a line or a field.

use std::cell::RefCell;
use std::fmt::{self, Write};

use chrono::{DateTime, Datelike, Timelike, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::text::hidden;
use crate::wordscan::{self, Bytes};

/// `2026-11-25T10:00:00.123Z` (3 fraction digits) or `…00.123456Z` (6), without going through
/// `core::fmt` or chrono's format strings.
pub fn rfc3339<'a>(t: &DateTime<Utc>, fraction_digits: u32, out: &'a mut [u8; 27]) -> &'a str {
    fn digits(buf: &mut [u8], mut n: u32) {
        for b in buf.iter_mut().rev() {
            *b = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let digits_n = fraction_digits.clamp(1, 6) as usize;
    // Years outside 0..=9999 do not occur in log times; they wrap rather than panic.
    digits(&mut out[0..4], t.year().rem_euclid(10_000) as u32);
    out[4] = b'-';
    digits(&mut out[5..7], t.month());
    out[7] = b'-';
    digits(&mut out[8..10], t.day());
    out[10] = b'T';
    digits(&mut out[11..13], t.hour());
    out[13] = b':';
    digits(&mut out[14..16], t.minute());
    out[16] = b':';
    digits(&mut out[17..19], t.second());
    out[19] = b'.';
    // A leap second shows as .999… rather than overflowing the field.
    let micros = t.timestamp_subsec_micros().min(999_999);
    digits(
        &mut out[20..20 + digits_n],
        micros / 10u32.pow(6 - digits_n as u32),
    );
    out[20 + digits_n] = b'Z';
    std::str::from_utf8(&out[..21 + digits_n]).unwrap_or_default()
}

/// A millisecond value rounded to the microsecond (`0.052`, `12.0`), printed exactly as ryu
/// (and so serde_json) prints it, but from integer digits; `None` for any other value.
pub fn millis(ms: f64, out: &mut [u8; 24]) -> Option<&str> {
    std::str::from_utf8(millis_ascii(ms, out)?).ok()
}

/// [`millis`] as the ASCII bytes, for a writer of bytes (the decision log) that has no use for
/// the UTF-8 check.
pub fn millis_ascii(ms: f64, out: &mut [u8; 24]) -> Option<&[u8]> {
    let micros = (ms * 1000.0).round();
    // Below 1e12 µs (11 days) doubles are far closer together than 0.001, so no shorter decimal
    // names the same value, and the integer conversion is exact.
    if ms.is_sign_negative() || !(0.0..1e12).contains(&micros) || micros / 1000.0 != ms {
        return None;
    }
    let micros = micros as u64;
    // Written from the end: the fraction without trailing zeros (one digit at least), the
    // point, then the integer part (at most 9 digits).
    let mut at = out.len();
    let mut put = |digit: u64| {
        at -= 1;
        out[at] = b'0' + (digit % 10) as u8;
    };
    let (mut whole, mut frac) = (micros / 1000, micros % 1000);
    let mut places = 3;
    while places > 1 && frac % 10 == 0 {
        frac /= 10;
        places -= 1;
    }
    for _ in 0..places {
        put(frac);
        frac /= 10;
    }
    put(0);
    loop {
        put(whole);
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    out[out.len() - places - 1] = b'.';
    out.get(at..)
}

/// The text format of `--log-format pretty` when stderr is not a terminal (on a terminal the
/// coloured default format is used).
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut time = [0u8; 27];
        w.write_str(rfc3339(&Utc::now(), 6, &mut time))?;
        // Right-aligned to five characters, as the default format does.
        w.write_str(match *meta.level() {
            tracing::Level::ERROR => " ERROR ",
            tracing::Level::WARN => "  WARN ",
            tracing::Level::INFO => "  INFO ",
            tracing::Level::DEBUG => " DEBUG ",
            tracing::Level::TRACE => " TRACE ",
        })?;
        w.write_str(meta.target())?;
        w.write_str(":")?;
        // The fields go into a plain `String` first and reach the writer in one call: written
        // through the `Writer` (a `dyn fmt::Write`) they took five dynamic calls each.
        with_buffer(&LINE, |line| {
            let mut fields = Fields {
                line,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
            fields.line.push('\n');
            w.write_str(fields.line)
        })
    }
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    static DEBUG: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` on this thread's `buffer`, emptied; on a fresh one when it is in use (an event
/// logged while formatting another, from inside a `Debug` implementation).
fn with_buffer<R>(
    buffer: &'static std::thread::LocalKey<RefCell<String>>,
    f: impl FnOnce(&mut String) -> R,
) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            kept.clear();
            f(&mut kept)
        }
        Err(_) => f(&mut String::new()),
    })
}

struct Fields<'a> {
    line: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn field(&mut self, field: &Field, value: &str, always_bare: bool) {
        let line = &mut *self.line;
        line.push(' ');
        if field.name() != "message" {
            line.push_str(field.name());
            line.push('=');
        }
        if always_bare || !needs_quotes(value) {
            line.push_str(value);
        } else {
            // `Debug` for `str` quotes and escapes; writing to a `String` does not fail.
            let _ = write!(line, "{value:?}");
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, bare_message(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        with_buffer(&DEBUG, |buf| {
            if write!(buf, "{value:?}").is_err() {
                self.result = Err(fmt::Error);
                return;
            }
            self.field(field, buf, bare_message(field, buf));
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, itoa::Buffer::new().format(value), true);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, itoa::Buffer::new().format(value), true);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, if value { "true" } else { "false" }, true);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match millis(value, &mut [0; 24]) {
            Some(text) => self.field(field, text, true),
            None => self.field(field, ryu::Buffer::new().format(value), true),
        }
    }
}

/// The message is prose for people, the one value left unquoted, unless it spans lines (a
/// reload error listing failed rule tests): one event stays one line for log collectors; or
/// holds `=`, which would read as fields of the line (a script's `print` of a caller's id
/// `x decision=approve` is no decision).
fn bare_message(field: &Field, value: &str) -> bool {
    const CONTROL: Bytes = Bytes {
        below: b' ',
        any_of: &[0x7f],
        high: false,
    };
    field.name() == "message" && !breaks_line(value, CONTROL) && !value.contains('=')
}

/// Whether a value must be quoted to stay one field on one line.
fn needs_quotes(value: &str) -> bool {
    const SPECIAL: Bytes = Bytes {
        below: b' ' + 1,
        any_of: b"\"=\\\x7f",
        high: false,
    };
    value.is_empty() || breaks_line(value, SPECIAL)
}

/// Whether `value` has a byte of `special`, or a character some log viewers and collectors take
/// as a line break (NEL, U+2028, U+2029) or a bidirectional control (U+061C, U+200E/F,
/// U+202A-E, U+2066-9), which makes a terminal show
/// text in another order than it is written ("Trojan Source"). Characters are decoded only from
/// the first non-ASCII byte on (Korean reasons), so ASCII values are only scanned, eight bytes
/// at a time.
// Inlined so that each caller's set is a constant in the scan (see `wordscan`).
#[inline(always)]
fn breaks_line(value: &str, special: Bytes) -> bool {
    let first = wordscan::find(
        value.as_bytes(),
        &Bytes {
            high: true,
            ..special
        },
    );
    let Some(at) = first else {
        return false;
    };
    // The first byte at or above 0x80 starts a character, so `at` is a boundary.
    let rest = value.get(at..).unwrap_or(value);
    rest.bytes().any(|b| special.has(b)) || rest.chars().any(hidden)
}

/// `text` for a line of a report printed to a terminal: as it is when it shows as itself, else
/// quoted with escapes (line breaks, control and text-direction characters could forge lines of
/// the report or drive the terminal), cut at `max` characters.
pub(crate) fn on_one_line(text: &str, max: usize) -> String {
    let plain = crate::text::shown_as_is(text) && !text.chars().any(hidden);
    let mut shown = if plain {
        text.to_owned()
    } else {
        format!("{text:?}")
    };
    crate::text::cut_chars(&mut shown, max);
    shown
}

/// Whether a JSON line ([`unseen_escaped`]) writes `c` escaped: Unicode line breaks (U+2028,
/// U+2029, U+0085), which JSON allows raw in strings and serde_json leaves so, but which readers
/// that split text on every Unicode line break (Python's `splitlines`, some log shippers) would
/// cut the record at; C1 controls (U+009B starts an escape sequence on many terminals);
/// text-direction controls, which reorder what a terminal shows of the line (`tail -f`, `less`);
/// and invisible characters (zero-width spaces and joiners, U+00AD, U+FEFF, tags), which make one
/// id look like another. The text log quotes the same ones (see [`hidden`]). A V1 `merchant_uid`
/// is chosen in the buyer's browser.
pub(crate) fn escaped_in_json_lines(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}' | '\u{ad}' | '\u{61c}'
        | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// The UTF-8 lead bytes of every character [`escaped_in_json_lines`] escapes: where the scan
/// stops to look. None is a Hangul syllable's (0xEA–0xED), the bulk of non-ASCII text here.
const LEADS: [u8; 5] = [0xC2, 0xD8, 0xE2, 0xEF, 0xF3];

/// `line`, a line of JSON, with every character [`escaped_in_json_lines`] names written as its
/// JSON escape (`\u202e`; a surrogate pair above U+FFFF); `None` when it has none, which is
/// the usual case and copies nothing. In JSON text such characters can only be inside strings,
/// where the escape means the same character, so every reader reads the same data. A lead byte
/// never occurs inside another character, so the scan finds only characters' starts.
pub(crate) fn unseen_escaped(line: &[u8]) -> Option<Vec<u8>> {
    let [a, b, c, d, e] = LEADS;
    // Two searches, each resumed only once it is passed: the common leads, and the rare ones
    // (Arabic, supplementary planes), so that a line with many `…` (0xE2) is not rescanned
    // for the others at each.
    let (mut common, mut rare) = (Some(0), Some(0));
    let mut next = |from: usize| {
        let find = |at: &mut Option<usize>, search: &dyn Fn(&[u8]) -> Option<usize>| {
            if at.is_some_and(|i| i < from) {
                *at = search(&line[from..]).map(|n| from + n);
            }
            *at
        };
        let x = find(&mut common, &|h| memchr::memchr3(a, c, d, h));
        let y = find(&mut rare, &|h| memchr::memchr2(b, e, h));
        x.into_iter().chain(y).min()
    };
    let mut escaped: Option<Vec<u8>> = None;
    let (mut from, mut copied) = (0, 0);
    while let Some(at) = next(from) {
        let len = if line[at] >= 0xF0 {
            4
        } else if line[at] >= 0xE0 {
            3
        } else {
            2
        };
        let c = line
            .get(at..at + len)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|s| s.chars().next());
        let Some(c) = c.filter(|c| escaped_in_json_lines(*c)) else {
            from = at + 1;
            continue;
        };
        let fixed = escaped.get_or_insert_with(|| Vec::with_capacity(line.len() + 16));
        fixed.extend_from_slice(&line[copied..at]);
        for unit in c.encode_utf16(&mut [0; 2]) {
            let _ = std::io::Write::write_fmt(fixed, format_args!("\\u{unit:04x}"));
        }
        (from, copied) = (at + len, at + len);
    }
    let mut fixed = escaped?;
    fixed.extend_from_slice(&line[copied..]);
    Some(fixed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::strategy::Strategy;

    #[test]
    fn rfc3339_with_millis_and_micros() {
        let t = Utc
            .with_ymd_and_hms(2026, 1, 5, 9, 7, 3)
            .unwrap()
            .checked_add_signed(chrono::TimeDelta::microseconds(42_517))
            .unwrap();
        let mut buf = [0u8; 27];
        assert_eq!(rfc3339(&t, 3, &mut buf), "2026-01-05T09:07:03.042Z");
        assert_eq!(rfc3339(&t, 6, &mut buf), "2026-01-05T09:07:03.042517Z");
        assert_eq!(
            rfc3339(&t, 3, &mut buf),
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
    }

    #[test]
    fn millis_as_ryu_prints_them() {
        let mut buf = [0u8; 24];
        for (ms, text) in [
            (0.0, "0.0"),
            (0.052, "0.052"),
            (0.05, "0.05"),
            (12.0, "12.0"),
        ] {
            assert_eq!(millis(ms, &mut buf), Some(text));
        }
        assert_eq!(millis(999_999_999.999, &mut buf), Some("999999999.999"));
        assert_eq!(
            millis(0.0001, &mut buf),
            None,
            "not rounded to the microsecond"
        );
        assert_eq!(millis(-1.0, &mut buf), None);
        assert_eq!(millis(f64::NAN, &mut buf), None);
    }

    /// Renders events through the real subscriber into a buffer.
    fn render(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(LineFormat)
            .with_writer(move || buf.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn line_quotes_only_what_needs_it() {
        let text = render(|| {
            tracing::info!(
                decision_id = %"01a2-x",
                ruleset = "default",
                status = 409u16,
                latency_ms = 0.052,
                rule = Some("no-legacy-orders"),
                reason = Some("새로 주문해 주세요."),
                order_id = "evil\n2026-01-01T00:00:00Z  INFO forged",
                empty = "",
                missing = None::<&str>,
                "decision"
            );
        });
        let (time, rest) = text.split_once(' ').unwrap();
        assert_eq!(time.len(), "2026-01-05T09:07:03.042517Z".len(), "{text}");
        assert_eq!(
            rest,
            " INFO confirm_proxy::logfmt::tests: decision decision_id=01a2-x ruleset=default \
             status=409 latency_ms=0.052 rule=no-legacy-orders reason=\"새로 주문해 주세요.\" \
             order_id=\"evil\\n2026-01-01T00:00:00Z  INFO forged\" empty=\"\"\n"
        );
        assert_eq!(
            text.lines().count(),
            1,
            "a newline in a value stays escaped"
        );
    }

    /// The scan stops at every character a JSON line escapes.
    #[test]
    fn every_character_json_lines_escape_has_a_lead_byte_looked_for() {
        let escaped = (0..=u32::from(char::MAX))
            .filter_map(char::from_u32)
            .filter(|c| escaped_in_json_lines(*c));
        for c in escaped {
            let lead = c.encode_utf8(&mut [0; 4]).as_bytes()[0];
            assert!(LEADS.contains(&lead), "{c:?}");
            // What the text log quotes too.
            assert!(hidden(c), "{c:?}");
        }
    }

    /// A JSON line as the character-by-character reading of the rule would write it.
    pub(crate) fn unseen_escaped_slowly(line: &str) -> String {
        line.chars()
            .map(|c| match c {
                c if escaped_in_json_lines(c) => c
                    .encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect(),
                c => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn json_lines_escape_line_breaks_direction_controls_and_invisibles() {
        let s = "a\u{2028}b\u{202e}c…\u{9b}[31m\u{feff}\u{e0041}한\u{61c}d\u{85}";
        let line = serde_json::to_string(&s).unwrap();
        let out = String::from_utf8(unseen_escaped(line.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            r#""a\u2028b\u202ec…\u009b[31m\ufeff\udb40\udc41한\u061cd\u0085""#
        );
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        // Nothing to escape: nothing copied.
        assert_eq!(unseen_escaped("\"…한 ٠ \u{e0080}\"".as_bytes()), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn json_lines_escape_what_the_rule_names_and_read_back_the_same(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::arbitrary::any::<String>(),
                    proptest::sample::select(vec!["\u{2028}", "\u{202e}", "\u{200b}", "\u{85}", "\u{9b}", "\u{feff}", "\u{e0001}", "\u{61c}", "…", "한", "\u{e2}", "\u{ef}"])
                        .prop_map(str::to_owned),
                ],
                0..8,
            )
        ) {
            let s = parts.concat();
            let line = serde_json::to_string(&s).unwrap();
            let out = match unseen_escaped(line.as_bytes()) {
                Some(out) => String::from_utf8(out).unwrap(),
                None => line.clone(),
            };
            proptest::prop_assert_eq!(&out, &unseen_escaped_slowly(&line));
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn unicode_line_breaks_and_direction_controls_are_quoted_and_escaped() {
        for c in [
            '\u{85}',
            '\u{2028}',
            '\u{2029}',
            '\u{61c}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{80}',
            '\u{9b}',
            '\u{ad}',
            '\u{200b}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            let value = format!("order{c}1");
            let text = render(|| {
                tracing::info!(order_id = value.as_str(), "decision");
                tracing::warn!("bad {value}");
            });
            assert!(!text.contains(c), "{c:?} in {text}");
            let escaped = format!("{:?}", value);
            assert!(text.contains(&format!("order_id={escaped}")), "{text}");
            let message = format!("{:?}", format!("bad {value}"));
            assert!(text.contains(&format!(": {message}\n")), "{text}");
        }
        // Korean text needs no quotes.
        assert!(!needs_quotes("새로주문해주세요"));
    }

    proptest::proptest! {
        /// The one-pass scan says exactly what a character-by-character look says.
        #[test]
        fn quoting_is_decided_as_character_by_character(s in "(\\PC|[ \"=\\\\\u{0}-\u{1f}\u{7f}-\u{9f}\u{ad}\u{61c}\u{200b}\u{2028}\u{202e}\u{2066}\u{feff}\u{e0041}])*") {
            let unsafe_char = |c: char| {
                c <= ' '
                    || matches!(c, '"' | '=' | '\\' | '\u{7f}')
                    || (!c.is_ascii() && format!("{c:?}") != format!("'{c}'"))
            };
            proptest::prop_assert_eq!(needs_quotes(&s), s.is_empty() || s.chars().any(unsafe_char));
        }
    }

    #[test]
    fn a_buffer_in_use_is_not_taken_again() {
        // With the global dispatcher an event logged from inside a `Debug` implementation is
        // formatted while the outer one is: it must get a buffer of its own, not a panic.
        let outer = with_buffer(&LINE, |line| {
            line.push_str("outer");
            let inner = with_buffer(&LINE, |inner| {
                assert!(inner.is_empty());
                inner.push_str("inner");
                inner.clone()
            });
            assert_eq!(inner, "inner");
            line.clone()
        });
        assert_eq!(outer, "outer");
        // Kept for the next event, emptied.
        with_buffer(&LINE, |line| {
            assert!(line.is_empty());
            assert!(line.capacity() >= "outer".len());
        });
    }

    #[test]
    fn levels_and_plain_messages() {
        let text = render(|| {
            tracing::warn!("rules kept: {}", "x.yaml:3:1: expected a map");
            tracing::error!(path = "/tmp/a b", "cannot open");
            tracing::error!("rules not reloaded: {}", "tests/a.yaml: 1 failed\n  case x");
            tracing::info!("print- x decision=approve status=200");
        });
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(
            lines,
            [
                " WARN confirm_proxy::logfmt::tests: rules kept: x.yaml:3:1: expected a map",
                "ERROR confirm_proxy::logfmt::tests: cannot open path=\"/tmp/a b\"",
                "ERROR confirm_proxy::logfmt::tests: \"rules not reloaded: tests/a.yaml: 1 failed\\n  case x\"",
                " INFO confirm_proxy::logfmt::tests: \"print- x decision=approve status=200\"",
            ]
        );
    }
}
