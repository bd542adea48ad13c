//! The helper functions rules may call (`seoul_hour`, `format_amount`, `one_of`, `fail`, …),
//! registered on the shared engine.

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike};
use rhai::{Dynamic, Engine, ImmutableString, NativeCallContext, FLOAT, INT};

use super::numbers::exact;
use super::scope::json_to_dynamic;
use rust_decimal::Decimal;

/// `now_ms` in Seoul; `None` outside the years 0 to 9999. Past 9999 a date is written
/// `+10000-01-01`, which sorts before every real date (`seoul_date(now * 1000) < "2026-12-03"`
/// would hold), and such a time is a unit slip (microseconds or nanoseconds for milliseconds).
pub(super) fn seoul(now_ms: INT) -> Option<DateTime<FixedOffset>> {
    crate::rules::SEOUL
        .timestamp_millis_opt(now_ms)
        .single()
        .filter(|t| (0..=9999).contains(&t.year()))
}

/// A time written in a script (`"2026-12-07 10:00"`, Korean time) as Unix milliseconds, for
/// comparing with `now`: a date and a time of day (a space or `T` between them, seconds
/// optional), a date alone (its midnight), or RFC 3339 with its own offset. Text comparison of
/// built strings is the slip it replaces: `seoul_date(now) + "T" + seoul_time(now) <
/// "2026-12-07 10:00"` orders `T` after the space and opens the window a day early.
pub(super) fn seoul_at(text: &str) -> Option<INT> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        // A 60th second (chrono's leap second) is the next minute's first: not what was meant.
        let leap = t.nanosecond() >= 1_000_000_000;
        return Some(t.timestamp_millis()).filter(|_| !leap && (0..=9999).contains(&t.year()));
    }
    if !written_in_full(text) {
        return None;
    }
    let t = crate::rules::SEOUL
        .from_local_datetime(&leniently(text)?)
        .single()?;
    Some(t.timestamp_millis()).filter(|_| (0..=9999).contains(&t.year()))
}

/// `text` as chrono reads a date and time of the forms `seoul_at` takes: also with fields of one
/// digit (`2026-12-7 9:5`), and a 60th second as the next minute's first.
fn leniently(text: &str) -> Option<chrono::NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        day.and_hms_opt(0, 0, 0)
    })
}

/// The text `seoul_at` reads for `text` that chrono reads but is not written in full
/// (`2026-12-07 9:05` → `2026-12-07 09:05`; a 60th second → the next minute).
fn written_out(text: &str) -> Option<String> {
    let t = leniently(text.trim())?;
    let (t, seconds) = if t.nanosecond() >= 1_000_000_000 {
        // Checked: `+` panics past chrono's last year (`+262143-12-31 23:59:60`).
        let next = t.with_nanosecond(0)?;
        (
            next.checked_add_signed(chrono::Duration::seconds(1))?,
            false,
        )
    } else {
        (t, text.matches(':').count() == 2)
    };
    let form = match (text.trim().len() <= 10, seconds) {
        (true, _) => "%Y-%m-%d",
        (false, true) => "%Y-%m-%d %H:%M:%S",
        (false, false) => "%Y-%m-%d %H:%M",
    };
    Some(t.format(form).to_string())
}

/// Whether `text` is `2026-12-07`, `2026-12-07 10:00` or `2026-12-07 10:00:00` (or with a `T`)
/// digit for digit, seconds under 60: chrono alone also reads `2026-12-7` and `1:5`, and a
/// 60th second as the next minute's first, none of which an operator meant to write.
fn written_in_full(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| b[from..to].iter().all(u8::is_ascii_digit);
    // Each read only at a length that has its bytes.
    let date = || digits(0, 4) && b[4] == b'-' && digits(5, 7) && b[7] == b'-' && digits(8, 10);
    let clock =
        || matches!(b[10], b' ' | b'T') && digits(11, 13) && b[13] == b':' && digits(14, 16);
    match b.len() {
        10 => date(),
        16 => date() && clock(),
        19 => date() && clock() && b[16] == b':' && digits(17, 19) && b[17] < b'6',
        _ => false,
    }
}

/// What `seoul_at` says of text it cannot read: the time to write where the text has a clock
/// time in Korean (`9시`, `오후 3시 30분`), the forms it reads otherwise.
pub(super) fn seoul_at_error(text: &str) -> String {
    let shown = crate::text::cut(text, 60);
    if let Some(meant) = korean_clock(text) {
        return format!("seoul_at: {shown:?} is no date and time: write it as \"{meant}\" (Korean time, 24-hour clock)");
    }
    if let Some(next) = midnight_after(text) {
        return format!("seoul_at: {shown:?} is no date and time: the end of a day is the next day's 00:00, \"{next}\"");
    }
    if let Some(full) = written_out(text) {
        return format!("seoul_at: {shown:?} is not written in full: write \"{full}\" (two digits for each of month, day, hour, minute and second; seconds 00 to 59)");
    }
    format!("seoul_at: {shown:?} is no date and time: write it as \"2026-12-07 10:00\" (Korean time; seconds optional), a date alone for its midnight, or with an offset as \"2026-12-07T10:00:00+09:00\"")
}

/// `2026-12-01 24:00` (or `T24:00`, seconds `:00`) as the next day's midnight, `2026-12-02 00:00`.
fn midnight_after(text: &str) -> Option<String> {
    let text = text.trim();
    let (date, clock) = text.split_at_checked(10)?;
    let clock = clock.strip_prefix([' ', 'T'])?;
    if clock != "24:00" && clock != "24:00:00" {
        return None;
    }
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Some(format!("{} 00:00", day.succ_opt()?.format("%Y-%m-%d")))
}

/// A date followed by a clock time in Korean words (`9시`, `9시 30분`, `9시 반`, `오후 3시`) as
/// `seoul_at` reads it (`2026-12-07 15:00`).
fn korean_clock(text: &str) -> Option<String> {
    let (date, rest) = text.trim().split_once(char::is_whitespace)?;
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let rest = rest.trim();
    let (afternoon, rest) = match (rest.strip_prefix("오후"), rest.strip_prefix("오전")) {
        (Some(r), _) => (Some(true), r.trim_start()),
        (_, Some(r)) => (Some(false), r.trim_start()),
        _ => (None, rest),
    };
    let (hour, rest) = rest.split_once('시')?;
    let mut hour: u32 = hour.trim().parse().ok()?;
    let minute: u32 = match rest.trim() {
        "" => 0,
        "반" => 30,
        m => m.strip_suffix('분')?.trim().parse().ok()?,
    };
    match afternoon {
        Some(true) if (1..12).contains(&hour) => hour += 12,
        // `오후 0시`: noon, as `오후 12시` is.
        Some(true) if hour == 0 => hour = 12,
        Some(false) if hour == 12 => hour = 0,
        Some(_) if hour > 12 => return None,
        _ => {}
    }
    (hour < 24 && minute < 60).then(|| format!("{date} {hour:02}:{minute:02}"))
}

/// What a `seoul_…` helper gives for a time in Seoul.
type Give = fn(DateTime<FixedOffset>) -> Dynamic;

/// `text` read as a JSON object, as `parse_json` gives it to scripts: strictly JSON (no Rhai
/// expressions, comments or trailing commas, which Rhai's own reader takes and the merchant's
/// JSON reader would not), numbers as the answers' (see [`json_to_dynamic`]).
fn parse_json(text: &str) -> Result<Dynamic, String> {
    // Held to what a request body is held to: a key named twice (serde_json keeps the last,
    // another reader the first) or one serde_json reads as an instruction
    // (`{"$serde_json::private::Number": "1"}` would be the number 1) would have the rule read
    // other values than the merchant's systems do.
    if let Some(flaw) = crate::payload::json_flaw(text) {
        return Err(format!(
            "parse_json: the text given is JSON that readers take differently: {flaw}"
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let what = message
            .rfind(" at line ")
            .map_or(message.as_str(), |i| &message[..i]);
        format!(
            "parse_json: the text given is not valid JSON (an object): {what} at line {}, column {} of that text",
            e.line(),
            e.column()
        )
    })?;
    let kind = match &value {
        serde_json::Value::Object(_) => return Ok(json_to_dynamic(&value)),
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::String(_) => "a text",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "true or false",
        serde_json::Value::Null => "null",
    };
    Err(format!(
        "parse_json: the text given is JSON, but of {kind} where an object ({{…}}) was expected"
    ))
}

/// A value of that kind, as an error names what a condition gave instead of true or false.
pub(super) fn a_value_of_kind(type_name: &str) -> &'static str {
    match type_name {
        "()" => "() (what a missing field reads as)",
        t => a_kind(t),
    }
}

/// A value's kind as Rhai names it (`array`, `i64`, `string` …), in words: "an array".
pub(super) fn a_kind(type_name: &str) -> &'static str {
    match type_name {
        "array" => "an array",
        "map" => "a map",
        "string" | "&str" | "ImmutableString" => "a text",
        "bool" => "true or false",
        "()" => "()",
        "char" => "a character",
        t if [
            "i64",
            "i32",
            "u64",
            "f64",
            "f32",
            "decimal",
            "rust_decimal::Decimal",
            "INT",
            "FLOAT",
        ]
        .contains(&t)
            || t.ends_with("Decimal") =>
        {
            "a number"
        }
        "Fn" => "a function",
        _ => "another kind of value",
    }
}

/// `1234567` → `"1,234,567"`; keeps a fractional part as written.
pub fn format_amount_text(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(text.len() + int.len() / 3);
    out.push_str(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    out
}

/// `one_of` of a number: whether it is in `list`, or the error of a list holding text that
/// holds a number (`one_of(amount, ["50000"])`).
fn number_in(d: Decimal, list: &rhai::Array) -> Result<bool, Box<rhai::EvalAltResult>> {
    // Found among the numbers, as `in` finds it before it meets the text.
    if in_list(d, list) {
        return Ok(true);
    }
    let quoted = list.iter().find_map(|item| {
        item.read_lock::<rhai::ImmutableString>()
            .filter(|s| super::numbers::holds_a_number(s))
            .map(|s| format!("{:?}", s.as_str()))
    });
    match quoted {
        Some(text) => Err(text_among_numbers(&text)),
        None => Ok(false),
    }
}

/// The error of `one_of` between a number and text holding one.
fn text_among_numbers(text: &str) -> Box<rhai::EvalAltResult> {
    format!("one_of: {text} is text holding a number, never equal to a number (Rhai reads no number in text): write parse_int(…), parse_float(…) or parse_decimal(…) of the text, or the list's items as the kind looked for").into()
}

/// Whether `list` holds a number (integer, Decimal or float) of the value `d`.
fn in_list(d: Decimal, list: &rhai::Array) -> bool {
    list.iter().any(|item| {
        let value = if let Some(n) = item.read_lock::<INT>() {
            Some(Decimal::from(*n))
        } else if let Some(x) = item.read_lock::<Decimal>() {
            Some(*x)
        } else {
            item.read_lock::<FLOAT>().and_then(|f| exact(*f))
        };
        value == Some(d)
    })
}

/// Functions of Rhai's standard library that no rule may call, with why. The load refuses a
/// call by name; a call reached another way (`Fn("sleep").call(3)`) is an error at run time.
pub(super) const FORBIDDEN: [(&str, &str); 2] = [
    (
        "sleep",
        "sleep is not available in rules: it would hold the request (and a worker thread) past its deadline",
    ),
    // Left out of the engine (rhai's `no_time`); named here so that its error says why.
    (
        "timestamp",
        "timestamp is not available in rules: it reads the machine's clock, so a rule would decide one way in serve and another in its rule tests or a replay; the request's time is now (Unix time in milliseconds), in Korean time seoul_date(now), seoul_time(now), seoul_hour(now)",
    ),
];

/// What `seoul_weekday` returns, Monday first.
pub(super) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub(super) fn register_helpers(engine: &mut Engine) {
    // Rhai's `sleep` blocks the thread the request runs on, beyond the reach of the operation
    // and time budget, and panics on a huge or NaN argument. Registered functions shadow the
    // standard library's.
    let (_, why) = FORBIDDEN[0];
    engine.register_fn(
        "sleep",
        move |_: rhai::FLOAT| -> Result<(), Box<rhai::EvalAltResult>> { Err(why.into()) },
    );
    engine.register_fn(
        "sleep",
        move |_: INT| -> Result<(), Box<rhai::EvalAltResult>> { Err(why.into()) },
    );
    // Rhai checks a string's size after the call that made it; `replace` is the one string call
    // whose result can be far beyond the limit from inputs within it (each of 64 KiB of `x`
    // replaced by 64 KiB: 4 GB, seconds of one uninterruptible call, or the process killed
    // for memory). Its result's size is known before it is built.
    engine.register_fn(
        "replace",
        |ctx: NativeCallContext, s: &mut ImmutableString, find: &str, with: &str| {
            replaced(&ctx, s, find, with)
        },
    );
    engine.register_fn(
        "replace",
        |ctx: NativeCallContext, s: &mut ImmutableString, find: char, with: &str| {
            replaced(&ctx, s, find.encode_utf8(&mut [0; 4]), with)
        },
    );
    // A number past the year 9999 (a time in microseconds or nanoseconds) is an error rather
    // than a made-up hour of -1 or a date a comparison would quietly misorder.
    // Arithmetic on `now` with a fraction (`now + 0.5 * 3600000`) gives a float, and with a
    // decimal a decimal: each is read to the millisecond.
    fn register<T: rhai::Variant + Clone>(
        engine: &mut Engine,
        name: &'static str,
        millis: fn(&T) -> Option<INT>,
        shown: fn(&T) -> String,
        give: Give,
    ) {
        engine.register_fn(
            name,
            move |now: T| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
                match millis(&now).and_then(seoul) {
                    Some(t) => Ok(give(t)),
                    None => Err(format!(
                        "{name}: {} is no time: it takes Unix time in milliseconds, as now is",
                        shown(&now)
                    )
                    .into()),
                }
            },
        );
    }
    let helpers: [(&'static str, Give); 5] = [
        ("seoul_date", |t| t.format("%Y-%m-%d").to_string().into()),
        ("seoul_time", |t| t.format("%H:%M").to_string().into()),
        ("seoul_hour", |t| INT::from(t.hour()).into()),
        ("seoul_minute", |t| INT::from(t.minute()).into()),
        ("seoul_weekday", |t| {
            WEEKDAYS[t.weekday().num_days_from_monday() as usize].into()
        }),
    ];
    for (name, give) in helpers {
        register::<INT>(engine, name, |n| Some(*n), INT::to_string, give);
        register::<FLOAT>(
            engine,
            name,
            |f| {
                // `as` saturates: a float beyond the integers is no time, said as such.
                (f.is_finite() && f.abs() < 9.0e18).then(|| f.trunc() as INT)
            },
            FLOAT::to_string,
            give,
        );
        register::<Decimal>(
            engine,
            name,
            |d| rust_decimal::prelude::ToPrimitive::to_i64(&d.trunc()),
            Decimal::to_string,
            give,
        );
    }
    // `amount` is an integer or a Decimal, and arithmetic with a float literal on an integer
    // amount gives a float (`amount * 0.9`): each helper that takes a number takes all three,
    // so a rule does not work for one amount and fail for the next.
    engine.register_fn("format_amount", |n: INT| format_amount_text(&n.to_string()));
    engine.register_fn("format_amount", |d: Decimal| {
        // `normalize`: 45000.450 (from arithmetic) is shown as 45,000.45.
        format_amount_text(&d.normalize().to_string())
    });
    // A float from arithmetic carries binary noise (`12300 * 1.1` is 13530.000000000002): it is
    // shown to six decimal places at most. Infinity and NaN are no amount: an error.
    engine.register_fn(
        "format_amount",
        |f: FLOAT| -> Result<String, Box<rhai::EvalAltResult>> {
            // Below what six decimal places show: 0, where a decimal could not even hold it.
            if f.abs() < 5e-7 {
                return Ok("0".to_owned());
            }
            // `{f:?}` keeps an exponent (`1e300`) where `{f}` would write out 300 digits.
            let d = exact(f)
                .ok_or_else(|| format!("format_amount: {f:?} is not an amount"))?
                .round_dp(6)
                .normalize();
            Ok(format_amount_text(&d.to_string()))
        },
    );
    // Rounding an integer amount is the amount itself; Rhai has these for Decimals and floats.
    for name in ["round", "floor", "ceiling"] {
        engine.register_fn(name, |n: INT| n);
    }
    // Text holding a number looked for among numbers, or a number among such text, is an
    // error as `==` between them is (`"0" == 0`): an API's quoted number, meant as the number.
    engine.register_fn(
        "one_of",
        |x: &str, list: rhai::Array| -> Result<bool, Box<rhai::EvalAltResult>> {
            let found = list.iter().any(|item| {
                item.read_lock::<rhai::ImmutableString>()
                    .is_some_and(|s| s.as_str() == x)
            });
            let numbers = list
                .iter()
                .any(|i| i.is_int() || i.is_float() || i.is_decimal());
            if !found && numbers && super::numbers::holds_a_number(x) {
                return Err(text_among_numbers(&format!("{x:?}")));
            }
            Ok(found)
        },
    );
    // Numbers are in a list when one of its numbers has the same value (1000 and 1000.0 too).
    engine.register_fn("one_of", |n: INT, list: rhai::Array| {
        number_in(Decimal::from(n), &list)
    });
    engine.register_fn("one_of", |d: Decimal, list: rhai::Array| {
        number_in(d, &list)
    });
    // A float with no decimal value (1e30 from arithmetic) is in no list of decimals.
    engine.register_fn("one_of", |f: FLOAT, list: rhai::Array| match exact(f) {
        Some(d) => number_in(d, &list),
        None => Ok(false),
    });
    engine.register_fn("one_of", |b: bool, list: rhai::Array| {
        list.iter().any(|item| item.as_bool() == Ok(b))
    });
    // An absent field (`store_id` of a V1 payment, `payload.coupon` not sent) is `()`: it is
    // blank and in no list, rather than a "function not found" error decision.
    engine.register_fn("one_of", |_: (), _: rhai::Array| false);
    // Blank as a buyer would see it: a zero-width space or a Hangul filler shows nothing either.
    engine.register_fn("is_blank", crate::text::shows_nothing);
    engine.register_fn("is_blank", |_: ()| true);
    // A number or a flag is a value, not blank (`is_blank(payload.count)` with a number sent).
    engine.register_fn("is_blank", |_: INT| false);
    engine.register_fn("is_blank", |_: Decimal| false);
    engine.register_fn("is_blank", |_: FLOAT| false);
    engine.register_fn("is_blank", |_: bool| false);
    // A list or map is blank when it holds nothing (`is_blank(payload.items)`).
    engine.register_fn("is_blank", |a: rhai::Array| a.is_empty());
    engine.register_fn("is_blank", |m: rhai::Map| m.is_empty());
    // An expression cannot `throw`; this makes "cannot tell" an error (-> on_error) rather than
    // a refusal with the rule's reason: `if response.status == 200 { … } else { fail("…") }`.
    engine.register_fn(
        "fail",
        |message: &str| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            Err(Box::new(rhai::EvalAltResult::ErrorRuntime(
                message.into(),
                rhai::Position::NONE,
            )))
        },
    );
    // Rhai's own `parse_json` reads Rhai's map literals (`{"x": 2 - 1}`, comments, trailing
    // commas), and fails with the position inside the JSON text, which the trace would show as
    // a place in the script: JSON read as JSON, failing at the call, with the JSON's own
    // position in words.
    engine.register_fn(
        "parse_json",
        |json: &str| -> Result<Dynamic, Box<rhai::EvalAltResult>> {
            parse_json(json).map_err(|e| {
                Box::new(rhai::EvalAltResult::ErrorRuntime(
                    e.into(),
                    rhai::Position::NONE,
                ))
            })
        },
    );
    engine.register_fn(
        "seoul_at",
        |text: &str| -> Result<INT, Box<rhai::EvalAltResult>> {
            seoul_at(text).ok_or_else(|| seoul_at_error(text).into())
        },
    );
    engine.register_fn("before", |s: &str, sep: &str| {
        s.split_once(sep).map_or(s, |(head, _)| head).to_owned()
    });
    engine.register_fn("after", |s: &str, sep: &str| {
        s.split_once(sep).map_or("", |(_, tail)| tail).to_owned()
    });
}

/// `s` with every `find` replaced by `with`, unless the result would be over the engine's
/// string limit: then the error Rhai gives for a string grown too large, before any of it is
/// built.
fn replaced(
    ctx: &NativeCallContext,
    s: &mut ImmutableString,
    find: &str,
    with: &str,
) -> Result<(), Box<rhai::EvalAltResult>> {
    if s.is_empty() {
        return Ok(());
    }
    // An empty `find` matches at every character boundary.
    let count = if find.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(find).count()
    };
    let len = (s.len() - count * find.len()).saturating_add(count.saturating_mul(with.len()));
    let max = ctx.engine().max_string_size();
    if max > 0 && len > max {
        return Err(rhai::EvalAltResult::ErrorDataTooLarge(
            "Length of string".into(),
            ctx.call_position(),
        )
        .into());
    }
    *s = s.replace(find, with).into();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::{eval_expr, V1};

    /// `one_of` between a number and text holding a number is the error `==` gives; text that
    /// holds none, and lists of one kind, are as before.
    #[test]
    fn one_of_between_numbers_and_numbers_in_text_is_an_error() {
        const BODY: &str = r#"{"imp_uid":"i","merchant_uid":"o","amount":5,"c":{"z":"0","s":"sold out","ids":["1001","1002"],"ns":[0,1]}}"#;
        for src in [
            "!one_of(payload.c.z, payload.c.ns)",
            "one_of(amount, payload.c.ids)",
        ] {
            let e = eval_expr(src, BODY).unwrap_err();
            assert!(
                e.message
                    .contains("is text holding a number, never equal to a number"),
                "{src}: {e:?}"
            );
        }
        for src in [
            "!one_of(payload.c.s, payload.c.ns)",
            "one_of(payload.c.z, [\"0\", \"1\"])",
            "one_of(amount, [5, 6])",
            "!one_of(payload.c.ns[0], [payload.c.s])",
            // Found before the other kind is met, as `in` finds it.
            "one_of(payload.c.z, [payload.c.z, 0])",
            "one_of(payload.c.ns[0], [0, payload.c.z])",
        ] {
            assert_eq!(eval_expr(src, BODY), Ok(true), "{src}");
        }
    }

    /// Text chrono reads but that is not written in full gets the same time written in full;
    /// a 60th second (RFC 3339's too) is refused, and shown as the next minute it would be.
    #[test]
    fn a_time_not_written_in_full_is_shown_written_out() {
        for (text, full) in [
            ("2026-12-07 9:05", "2026-12-07 09:05"),
            ("2026-12-7", "2026-12-07"),
            ("2026-12-07T9:5:3", "2026-12-07 09:05:03"),
            ("2026-12-07 10:00:60", "2026-12-07 10:01"),
            ("2026-12-31 23:59:60", "2027-01-01 00:00"),
        ] {
            assert_eq!(seoul_at(text), None, "{text}");
            let said = seoul_at_error(text);
            assert!(said.contains(&format!("write \"{full}\"")), "{said}");
        }
        assert_eq!(seoul_at("2026-12-07T10:00:60+09:00"), None);
        assert_eq!(seoul_at("2026-12-31T23:59:60Z"), None);
        // Review: the next minute of chrono's last one is no time (it panicked).
        let text = "+262143-12-31 23:59:60";
        assert_eq!(seoul_at(text), None);
        assert!(seoul_at_error(text).contains("is no date and time"));
    }

    /// A clock time written in Korean words gets the time to write in its place; other text
    /// that is no time, the forms `seoul_at` reads.
    #[test]
    fn a_clock_time_in_korean_words_is_shown_as_seoul_at_reads_it() {
        for (text, meant) in [
            ("2026-12-07 9시", Some("2026-12-07 09:00")),
            ("2026-12-07 9시 30분", Some("2026-12-07 09:30")),
            ("2026-12-07 9시반", Some("2026-12-07 09:30")),
            ("2026-12-07 오후 3시", Some("2026-12-07 15:00")),
            ("2026-12-07 오후 12시", Some("2026-12-07 12:00")),
            ("2026-12-07 오후 0시 30분", Some("2026-12-07 12:30")),
            ("2026-12-07 오전 12시 5분", Some("2026-12-07 00:05")),
            ("2026-12-07 21시", Some("2026-12-07 21:00")),
            ("2026-12-07 오후 21시", None),
            ("2026-12-07 25시", None),
            ("2026-12-07 9시 60분", None),
            ("12월 7일 9시", None),
            ("9시", None),
        ] {
            assert_eq!(korean_clock(text).as_deref(), meant, "{text}");
            let said = seoul_at_error(text);
            match meant {
                Some(m) => assert!(said.contains(&format!("write it as \"{m}\"")), "{said}"),
                None => assert!(said.contains("a date alone for its midnight"), "{said}"),
            }
        }
    }

    /// `now` (2026-12-01 12:30 in Seoul in these tests) against times written in Korean time,
    /// to the millisecond, however the text writes them.
    #[test]
    fn seoul_at_reads_a_korean_date_and_time() {
        for src in [
            r#"now == seoul_at("2026-12-01 12:30")"#,
            r#"now == seoul_at("2026-12-01T12:30:00")"#,
            r#"now == seoul_at(" 2026-12-01 12:30:00 ")"#,
            r#"now == seoul_at("2026-12-01T03:30:00Z")"#,
            r#"now == seoul_at("2026-12-01T12:30:00+09:00")"#,
            r#"now - seoul_at("2026-12-01") == (12 * 60 + 30) * 60000"#,
            r#"now >= seoul_at("2026-12-01 12:29:59") && now < seoul_at("2026-12-01 12:30:01")"#,
        ] {
            assert_eq!(eval_expr(src, V1), Ok(true), "{src}");
        }
        for text in [
            "2026-12-01 9시",
            "12/01/2026 10:00",
            // Each field written in full, and no 60th second (chrono reads all of these).
            "2026-12-7",
            "2026-12-07 1:5",
            "2026-12-07 10:00:60",
            "2026-12-31 23:59:60",
            "2026-12-07 10:00:0",
            "2026-12-01 24:00",
            "",
            "10:00",
        ] {
            assert_eq!(seoul_at(text), None, "{text:?}");
            // Put together as the request is evaluated (in one piece, it is read at load).
            let (a, b) = text.split_at(text.len().min(4));
            let src = format!("now >= seoul_at(order_id.sub_string(0, 0) + {a:?} + {b:?})");
            let e = eval_expr(&src, V1).unwrap_err();
            let said = ["is no date and time: ", "is not written in full: "];
            assert!(said.iter().any(|s| e.message.contains(s)), "{e:?}");
        }
        // The year 10000 sorts nowhere a date should.
        assert_eq!(seoul_at("+10000-01-01T00:00:00Z"), None);
    }

    #[test]
    fn helpers() {
        // 2026-12-01 12:30 KST is a Tuesday.
        assert_eq!(
            eval_expr(
                r#"seoul_date(now) == "2026-12-01" && seoul_hour(now) == 12 && seoul_minute(now) == 30 && seoul_weekday(now) == "tue" && seoul_time(now) == "12:30""#,
                V1
            ),
            Ok(true)
        );
        // Arithmetic with a fraction gives a float or a decimal: read to the millisecond.
        assert_eq!(
            eval_expr(
                r#"seoul_hour(now + 0.5 * 3600000) == 13 && seoul_time(now.to_decimal() + 60000.5) == "12:31" && seoul_weekday(now + 0.0) == "tue""#,
                V1
            ),
            Ok(true)
        );
        for (call, name) in [
            ("seoul_time(1.5e20)", "seoul_time"),
            ("seoul_hour(-1.0e30)", "seoul_hour"),
            ("seoul_date(1.0e20.to_decimal())", "seoul_date"),
        ] {
            let e = eval_expr(&format!("{call} != ()"), V1).unwrap_err();
            assert!(
                e.message.contains(&format!("{name}: ")) && e.message.contains(" is no time"),
                "{call}: {e:?}"
            );
        }
        // A time in microseconds is past the year 9999, where a date would sort before every
        // real one: an error. The last millisecond of 9999 is still a date.
        let e = eval_expr("seoul_date(now * 1000) < \"2026-12-03\"", V1).unwrap_err();
        assert!(
            e.message
                .contains(" is no time: it takes Unix time in milliseconds"),
            "{e:?}"
        );
        assert_eq!(
            eval_expr(
                r#"seoul_date(253402300799999 - 9 * 3600000) == "9999-12-31""#,
                V1
            ),
            Ok(true)
        );
        // A number no clock gives is an error, not an hour of -1.
        for name in [
            "seoul_date",
            "seoul_time",
            "seoul_hour",
            "seoul_minute",
            "seoul_weekday",
        ] {
            let e = eval_expr(&format!("{name}(9223372036854775807) != ()"), V1).unwrap_err();
            assert!(
                e.message.contains(&format!(
                    "{name}: 9223372036854775807 is no time: it takes Unix time in milliseconds, as now is"
                )),
                "{e:?}"
            );
        }
        assert_eq!(
            eval_expr(
                r#"one_of(order_id, ["a", "vip-7"]) && !one_of("z", ["a"])"#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"before(order_id, "-") == "vip" && after(order_id, "-") == "7""#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"is_blank("  ") && is_blank("\u200b\u3000") && is_blank("\u3164") && !is_blank("a\u200b") && !is_blank(order_id)"#,
                V1
            ),
            Ok(true)
        );
        // V1 has no store_id and this body no coupon: absent values are blank and in no list,
        // not even one holding another absent value (`[payload.partner_store]`).
        assert_eq!(
            eval_expr(
                r#"is_blank(store_id) && is_blank(payload.coupon) && !one_of(store_id, ["store-1"]) && !one_of(payload.coupon, [()]) && !one_of(store_id, [payload.partner, "s"])"#,
                V1
            ),
            Ok(true)
        );
        // fail() is an error with its message, in an expression where `throw` cannot be.
        let e = eval_expr(
            r#"if amount > 0 { fail("stock API answered 401") } else { true }"#,
            V1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("stock API answered 401"), "{e}");
        // Numbers of every kind: an integer amount, arithmetic with a float on it (a float), a
        // Decimal from arithmetic on a fractional one.
        assert_eq!(
            eval_expr(
                r#"format_amount(amount) == "50,000" && format_amount(amount * 0.9) == "45,000" && format_amount(1000.50) == "1,000.5" && format_amount(amount + 0.45) == "50,000.45""#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"amount.round() == 50000 && amount.floor() == 50000 && amount.ceiling() == 50000 && one_of(amount, [1, 50000]) && one_of(amount, [50000.0]) && !one_of(amount, [payload.imp_uid]) && one_of(amount * 1.5, [75000]) && !is_blank(amount) && !is_blank(true)"#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"format_amount(amount * 9 / 10) == "45,000.45" && one_of(amount, [50000.5]) && !one_of(amount, [50000]) && amount.round() == 50000"#,
                r#"{"imp_uid":"i","merchant_uid":"m","amount":50000.50}"#
            ),
            Ok(true)
        );
        assert_eq!(
            eval_expr(
                r#"format_amount(12300 * 1.1) == "13,530" && format_amount(33 * 0.7) == "23.1" && format_amount(3 * 0.1) == "0.3" && one_of(true, [false, true]) && !one_of(false, [true, "false"]) && is_blank([]) && !is_blank([1]) && is_blank(#{}) && !is_blank(#{a: 1})"#,
                V1
            ),
            Ok(true)
        );
        let e = eval_expr(r#"format_amount(1.0 / 0.0) == "x""#, V1).unwrap_err();
        assert!(e.to_string().contains("is not an amount"), "{e}");
        // Too large for a decimal: named with its exponent, not 300 digits.
        let e = eval_expr(r#"format_amount(1e300) == "x""#, V1).unwrap_err();
        assert!(
            e.to_string()
                .contains("format_amount: 1e300 is not an amount"),
            "{e}"
        );
        // Too small for six decimal places (and for a decimal): 0, as 1e-9 is.
        assert_eq!(
            eval_expr(
                r#"format_amount(1e-300) == "0" && format_amount(1e-9) == "0" && format_amount(-1e-29) == "0""#,
                V1
            ),
            Ok(true)
        );
        assert_eq!(format_amount_text("1234567"), "1,234,567");
        assert_eq!(format_amount_text("100"), "100");
        assert_eq!(format_amount_text("1000.5"), "1,000.5");
    }
}
