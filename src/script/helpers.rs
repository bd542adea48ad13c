//! The helper functions rules may call (`seoul_hour`, `format_amount`, `one_of`, `fail`, …),
//! registered on the shared engine.

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike};
use rhai::{Dynamic, Engine, INT};
use rust_decimal::Decimal;

/// Korea has no daylight saving time, so a fixed offset is exact.
const SEOUL_OFFSET_SECS: i32 = 9 * 3600;

fn seoul(now_ms: INT) -> Option<DateTime<FixedOffset>> {
    FixedOffset::east_opt(SEOUL_OFFSET_SECS)?
        .timestamp_millis_opt(now_ms)
        .single()
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

/// Functions of Rhai's standard library that no rule may call, with why. The load refuses a
/// call by name; a call reached another way (`Fn("sleep").call(3)`) is an error at run time.
pub(super) const FORBIDDEN: [(&str, &str); 1] = [(
    "sleep",
    "sleep is not available in rules: it would hold the request (and a worker thread) past its deadline",
)];

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
    engine.register_fn("seoul_date", |now: INT| {
        seoul(now).map_or(String::new(), |t| t.format("%Y-%m-%d").to_string())
    });
    engine.register_fn("seoul_time", |now: INT| {
        seoul(now).map_or(String::new(), |t| t.format("%H:%M").to_string())
    });
    engine.register_fn("seoul_hour", |now: INT| {
        seoul(now).map_or(-1, |t| INT::from(t.hour()))
    });
    engine.register_fn("seoul_minute", |now: INT| {
        seoul(now).map_or(-1, |t| INT::from(t.minute()))
    });
    engine.register_fn("seoul_weekday", |now: INT| {
        seoul(now).map_or("", |t| {
            WEEKDAYS[t.weekday().num_days_from_monday() as usize]
        })
    });
    engine.register_fn("format_amount", |n: INT| format_amount_text(&n.to_string()));
    engine.register_fn("format_amount", |d: Decimal| {
        format_amount_text(&d.to_string())
    });
    engine.register_fn("one_of", |x: &str, list: rhai::Array| {
        list.iter().any(|item| {
            item.read_lock::<rhai::ImmutableString>()
                .is_some_and(|s| s.as_str() == x)
        })
    });
    // An absent field (`store_id` of a V1 payment, `payload.coupon` not sent) is `()`: it is
    // blank and in no list, rather than a "function not found" error decision.
    engine.register_fn("one_of", |_: (), _: rhai::Array| false);
    engine.register_fn("is_blank", |s: &str| s.trim().is_empty());
    engine.register_fn("is_blank", |_: ()| true);
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
    engine.register_fn("before", |s: &str, sep: &str| {
        s.split_once(sep).map_or(s, |(head, _)| head).to_owned()
    });
    engine.register_fn("after", |s: &str, sep: &str| {
        s.split_once(sep).map_or("", |(_, tail)| tail).to_owned()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::{eval_expr, V1};

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
            eval_expr(r#"is_blank("  ") && !is_blank(order_id)"#, V1),
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
        assert_eq!(format_amount_text("1234567"), "1,234,567");
        assert_eq!(format_amount_text("100"), "100");
        assert_eq!(format_amount_text("1000.5"), "1,000.5");
    }
}
