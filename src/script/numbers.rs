//! Operators between exact numbers and float literals.
//!
//! `amount` is exact: an `INT`, or a `Decimal` when it has a fraction or is beyond 2^53 (such numbers in
//! `payload` and in fetch responses are `Decimal`s too). Rules are written with float literals
//! (`amount < 2000.0`), and Rhai has no operators between `Decimal` and `f64`: without these,
//! such a rule is a run-time error and falls to its `on_error`. Rhai's built-in operators
//! already mix `Decimal` with `INT` (exactly) and `INT` with `f64` (in floating point; kept:
//! nothing here is registered for those pairs).
//!
//! Orderings between a number and what is no number are errors ([`register_unordered`]).
//!
//! A float is taken as the number it was written as, its shortest round-trip decimal
//! representation (`2000.1` is 2000.1, not the binary 2000.099999999999909…), and the operation
//! is done on `Decimal`s, so comparisons and results are exact.

use std::cmp::Ordering::{self, Equal, Greater, Less};

use rhai::{Dynamic, Engine, EvalAltResult, Position, FLOAT};
use rust_decimal::Decimal;

/// Registers `==`, `!=`, `<`, `<=`, `>`, `>=`, `+`, `-`, `*`, `/` and `%` between `Decimal` and
/// `f64`, in both orders.
pub(super) fn register(engine: &mut Engine) {
    macro_rules! comparison {
        ($op:literal, $holds:pat) => {
            engine.register_fn($op, |d: Decimal, f: FLOAT| matches!(compare(d, f), $holds));
            engine.register_fn($op, |f: FLOAT, d: Decimal| {
                matches!(compare(d, f).map(Ordering::reverse), $holds)
            });
        };
    }
    comparison!("==", Some(Equal));
    // Unordered (NaN) is unequal.
    comparison!("!=", None | Some(Less | Greater));
    comparison!("<", Some(Less));
    comparison!("<=", Some(Less | Equal));
    comparison!(">", Some(Greater));
    comparison!(">=", Some(Greater | Equal));

    // Rust's float parser takes `inf`, `NaN` and `1e400` (infinity), which Rhai orders as
    // neither above nor below anything: `qty.parse_float() > 10` would be false for them.
    engine.register_fn(
        "parse_float",
        |s: &str| -> Result<FLOAT, Box<EvalAltResult>> {
            match s.trim().parse::<FLOAT>() {
                Ok(f) if f.is_finite() => Ok(f),
                Ok(_) => Err(format!("parse_float: {s:?} is no finite number").into()),
                Err(e) => Err(format!("parse_float: {s:?} is no number: {e}").into()),
            }
        },
    );

    register_parse_of_numbers(engine);

    for op in ARITHMETIC {
        engine.register_fn(op.symbol, move |x: Decimal, y: FLOAT| match exact(y) {
            Some(y) => op.on_decimals(x, y),
            None => Ok(Dynamic::from_float((op.floats)(x.as_f64(), y))),
        });
        engine.register_fn(op.symbol, move |x: FLOAT, y: Decimal| match exact(x) {
            Some(x) => op.on_decimals(x, y),
            None => Ok(Dynamic::from_float((op.floats)(x, y.as_f64()))),
        });
    }
}

/// Registers `<`, `<=`, `>` and `>=` between a number (`INT`, `FLOAT`, `Decimal`) and text, a
/// character, a bool, a list, a map or a blob, in both orders, as errors. Rhai's own answer is `false` to each
/// (`"7" >= 1` and `"7" < 1` alike), so `if payload.qty > 4 { return "…" }` let every quoted
/// quantity through without a word; an error goes to `on_error` and says what to write.
/// Equality between them stays `false` (`!=` `true`): a text is no number, as in Python —
/// except for text that holds a number (`"0" != 0`), an API's quoted number, which a rule
/// means as the number: `response.body.available != 0` passed every sold-out item of a shop
/// that quotes its numbers. That is an error too. `()` keeps Rhai's `false`: a field a
/// request lacks (`when: payload.custom_data.vip_level > 2`) is the usual way of saying "not
/// this one", and an error there would refuse every payment without it. These are reached only with fast operators off
/// ([`super::build_engine`]).
pub(super) fn register_unordered(engine: &mut Engine) {
    macro_rules! unordered {
        ($other:ty, $number:ty) => {
            for op in ["<", "<=", ">", ">="] {
                engine.register_fn(op, move |a: $other, b: $number| {
                    no_order(op, Dynamic::from(a), Dynamic::from(b))
                });
                engine.register_fn(op, move |a: $number, b: $other| {
                    no_order(op, Dynamic::from(a), Dynamic::from(b))
                });
            }
        };
    }
    macro_rules! with_every_number {
        ($other:ty) => {
            unordered!($other, rhai::INT);
            unordered!($other, FLOAT);
            unordered!($other, Decimal);
        };
    }
    with_every_number!(rhai::ImmutableString);
    with_every_number!(char);
    with_every_number!(bool);
    // A list or map where a number was meant (`"qty": [9]` in a buyer's custom_data): Rhai's
    // `false` let it past the limit.
    with_every_number!(rhai::Array);
    with_every_number!(rhai::Map);
    with_every_number!(rhai::Blob);
    macro_rules! unequal {
        ($number:ty) => {
            // Rhai's answer for text that holds no number: never equal.
            for (op, answer) in [("==", false), ("!=", true)] {
                engine.register_fn(
                    op,
                    move |a: rhai::ImmutableString,
                          b: $number|
                          -> Result<bool, Box<EvalAltResult>> {
                        if holds_a_number(&a) {
                            return no_equality(op, Dynamic::from(a), Dynamic::from(b));
                        }
                        Ok(answer)
                    },
                );
                engine.register_fn(
                    op,
                    move |a: $number,
                          b: rhai::ImmutableString|
                          -> Result<bool, Box<EvalAltResult>> {
                        if holds_a_number(&b) {
                            return no_equality(op, Dynamic::from(a), Dynamic::from(b));
                        }
                        Ok(answer)
                    },
                );
            }
        };
    }
    unequal!(rhai::INT);
    unequal!(FLOAT);
    unequal!(Decimal);
}

/// Whether `text` is a number written as text (`"0"`, `" 3.5 "`, `"1e3"`).
pub(super) fn holds_a_number(text: &str) -> bool {
    let t = text.trim();
    t.parse::<FLOAT>().is_ok_and(FLOAT::is_finite) || t.parse::<Decimal>().is_ok()
}

/// The error of `a op b` (`==` or `!=`), one of them a number and the other a number in text.
fn no_equality(op: &str, a: Dynamic, b: Dynamic) -> Result<bool, Box<EvalAltResult>> {
    let shown = |v: &Dynamic| {
        if v.is_string() {
            format!("{v:?}")
        } else {
            v.to_string()
        }
    };
    Err(format!(
        "{} {op} {}: text holding a number is never equal to a number (Rhai reads no number in text): write parse_int(…), parse_float(…) or parse_decimal(…) of the text",
        shown(&a),
        shown(&b)
    )
    .into())
}

/// `parse_int`, `parse_float` and `parse_decimal` of a number too, and of `()` as an error that
/// says what to write: a field one request sends as text (a form body, a page that quotes its
/// numbers) and another as a number, the fix an ordering error suggests
/// (`payload.qty.parse_int() > 4`) must work on both, where Rhai has these for text only
/// (`function not found: parse_int (integer)`).
fn register_parse_of_numbers(engine: &mut Engine) {
    type Parsed<T> = Result<T, Box<EvalAltResult>>;
    fn whole(what: &str, d: Decimal) -> Parsed<rhai::INT> {
        if d.fract().is_zero() {
            rhai::INT::try_from(d).map_err(|_| format!("parse_int: {d} is too large").into())
        } else {
            Err(format!("{what}: {d} is no whole number").into())
        }
    }
    engine.register_fn("parse_int", |n: rhai::INT| n);
    engine.register_fn("parse_int", |d: Decimal| whole("parse_int", d));
    engine.register_fn("parse_int", |f: FLOAT| -> Parsed<rhai::INT> {
        match exact(f) {
            Some(d) => whole("parse_int", d),
            None => Err(format!("parse_int: {f} is no whole number").into()),
        }
    });
    engine.register_fn("parse_float", |n: rhai::INT| n as FLOAT);
    engine.register_fn("parse_float", |f: FLOAT| f);
    engine.register_fn("parse_float", |d: Decimal| d.as_f64());
    engine.register_fn("parse_decimal", |n: rhai::INT| Decimal::from(n));
    engine.register_fn("parse_decimal", |d: Decimal| d);
    engine.register_fn("parse_decimal", |f: FLOAT| -> Parsed<Decimal> {
        exact(f).ok_or_else(|| format!("parse_decimal: {f} has no decimal value").into())
    });
    for name in ["parse_int", "parse_float", "parse_decimal"] {
        engine.register_fn(name, move |_: ()| -> Parsed<Dynamic> {
            Err(format!("{name} of () (a field the request or answer lacks): give a default, {name}(x ?? 0), or check for it first").into())
        });
    }
}

/// The error of `a op b`, one of them a number and the other not.
fn no_order(op: &str, a: Dynamic, b: Dynamic) -> Result<bool, Box<EvalAltResult>> {
    let other = if a.is_int() || a.is_float() || a.is_decimal() {
        &b
    } else {
        &a
    };
    let shown = |v: &Dynamic| match v.type_name() {
        "string" | "char" => format!("{v:?}"),
        // A list may be long: its kind says enough.
        "array" | "map" | "blob" => v.type_name().to_owned(),
        _ => v.to_string(),
    };
    let hint = if other.is_bool() {
        "true or false is never ordered against a number: use the condition itself (if x { … })"
    } else if other.is_char() {
        "a character is never ordered against a number: for a digit, write c.to_string().parse_int()"
    } else if other.is_array() || other.is_map() || other.is_blob() {
        "a list or map is never ordered against a number: compare one of its items, or its len()"
    } else {
        "text is never ordered against a number (Rhai reads no number in text): write parse_int(…), parse_float(…) or parse_decimal(…) of the text"
    };
    Err(format!("{} {op} {}: {hint}", shown(&a), shown(&b)).into())
}

/// The float as written: its shortest round-trip representation (what `Display` prints), as a
/// `Decimal`. `None` for NaN, infinities, and values beyond `Decimal`'s range (about 7.9e28)
/// or precision (28 decimal places).
pub(super) fn exact(f: FLOAT) -> Option<Decimal> {
    if !f.is_finite() {
        return None;
    }
    Decimal::from_str_exact(&f.to_string()).ok()
}

/// How `d` compares with `f`: exactly whenever `f` has a `Decimal` value. Otherwise there is no
/// exact answer, and the float one is the sensible one: an infinity or a float beyond
/// `Decimal`'s range lies beyond every `Decimal`, a tiny float compares by its magnitude, and
/// NaN is unordered (IEEE 754: every comparison false, `!=` true).
fn compare(d: Decimal, f: FLOAT) -> Option<Ordering> {
    match exact(f) {
        Some(e) => Some(d.cmp(&e)),
        None => d.as_f64().partial_cmp(&f),
    }
}

/// An arithmetic operator, on `Decimal`s (`None`: overflow or division by zero) and on floats
/// (when the float has no `Decimal` value, the result is a float).
#[derive(Clone, Copy)]
struct Arithmetic {
    symbol: &'static str,
    decimals: fn(Decimal, Decimal) -> Option<Decimal>,
    floats: fn(FLOAT, FLOAT) -> FLOAT,
}

const ARITHMETIC: [Arithmetic; 5] = [
    Arithmetic {
        symbol: "+",
        decimals: Decimal::checked_add,
        floats: std::ops::Add::add,
    },
    Arithmetic {
        symbol: "-",
        decimals: Decimal::checked_sub,
        floats: std::ops::Sub::sub,
    },
    Arithmetic {
        symbol: "*",
        decimals: Decimal::checked_mul,
        floats: std::ops::Mul::mul,
    },
    Arithmetic {
        symbol: "/",
        decimals: Decimal::checked_div,
        floats: std::ops::Div::div,
    },
    Arithmetic {
        symbol: "%",
        decimals: Decimal::checked_rem,
        floats: std::ops::Rem::rem,
    },
];

impl Arithmetic {
    /// `x op y` as a `Decimal`; an overflow or a division by zero is an error, as it is between
    /// two `Decimal`s in Rhai.
    fn on_decimals(self, x: Decimal, y: Decimal) -> Result<Dynamic, Box<EvalAltResult>> {
        (self.decimals)(x, y)
            .map(Dynamic::from_decimal)
            .ok_or_else(|| {
                let what = if y.is_zero() && matches!(self.symbol, "/" | "%") {
                    "Division by zero"
                } else {
                    "Arithmetic overflow"
                };
                let message = format!("{what}: {x} {} {y}", self.symbol);
                EvalAltResult::ErrorArithmetic(message, Position::NONE).into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{parse, Parsed};
    use crate::script::{RequestScope, ScriptEngine, ScriptError, ScriptVerdict, TimeLeft};

    const FULL: TimeLeft = TimeLeft::Deadline(crate::script::MAX_RUN_TIME);

    fn scope(amount: &str) -> RequestScope {
        let body = format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":{amount}}}"#);
        let req = match parse(Some("application/json"), body.as_bytes()) {
            Ok(Parsed::Confirm(req)) => req,
            other => panic!("not a confirm request: {other:?}"),
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+09:00").unwrap();
        RequestScope::new(&req, now, true)
    }

    /// `src` evaluated with `amount` written as given in the request (`2500.5` is a `Decimal`,
    /// `2500` an `INT`).
    fn eval(src: &str, amount: &str) -> Result<bool, ScriptError> {
        let engine = ScriptEngine::new();
        let ast = engine.compile_expression(src, &[]).unwrap();
        engine.eval_bool(&mut scope(amount), &ast, &mut None, FULL)
    }

    /// Every expression holds for `amount`, without an error.
    fn assert_all(amount: &str, expressions: &[&str]) {
        for src in expressions {
            assert_eq!(eval(src, amount), Ok(true), "{src} with amount {amount}");
        }
    }

    /// `parse_float` gives finite numbers only: Rhai orders infinity and NaN as neither above nor
    /// below anything.
    #[test]
    fn parse_float_refuses_what_is_no_finite_number() {
        use crate::script::tests::eval_expr;
        const V1: &str = r#"{"imp_uid":"i","merchant_uid":"o","amount":5}"#;
        for text in ["1e400", "inf", "-inf", "NaN"] {
            let e = eval_expr(&format!("\"{text}\".parse_float() > 10.0"), V1).unwrap_err();
            assert!(e.message.contains("is no finite number"), "{text}: {e:?}");
        }
        let e = eval_expr("\"x1\".parse_float() > 10.0", V1).unwrap_err();
        assert!(
            e.message.contains("parse_float: \"x1\" is no number"),
            "{e:?}"
        );
        assert_eq!(eval_expr("\" 2.5 \".parse_float() > 2.4", V1), Ok(true));
    }

    /// An ordering between a number and text, a character, a bool, a list or a map is an error, whichever
    /// side each is on and whatever kind of number (Rhai's own answer, `false` both ways, let a
    /// quoted quantity past `if qty > 4 { refuse }`); equality stays `false`, a missing field
    /// (`()`) is still ordered `false`, and numbers of every kind still order among themselves.
    #[test]
    fn a_number_is_never_ordered_against_what_is_no_number() {
        use crate::script::tests::eval_expr;
        const BODY: &str = r#"{"imp_uid":"i","merchant_uid":"o","amount":5,"c":{"t":"7","u":null,"b":true,"n":7,"d":7.5,"a":[9],"m":{"n":9}}}"#;
        for (other, says) in [
            // Review: a buyer's `"qty": [9]` passed `if qty > 4 { refuse }` as text once did.
            (
                "payload.c.a",
                "a list or map is never ordered against a number",
            ),
            (
                "payload.c.m",
                "a list or map is never ordered against a number",
            ),
            ("payload.c.t", "text is never ordered against a number"),
            (
                "payload.c.b",
                "true or false is never ordered against a number",
            ),
            (
                "payload.c.t[0]",
                "a character is never ordered against a number",
            ),
        ] {
            for number in ["4", "4.0", "payload.c.d", "amount"] {
                for op in ["<", "<=", ">", ">="] {
                    for src in [
                        format!("{other} {op} {number}"),
                        format!("{number} {op} {other}"),
                    ] {
                        let e = eval_expr(&src, BODY).expect_err(&src);
                        assert!(e.message.contains(says), "{src}: {e:?}");
                    }
                }
            }
            // A number in text is an error for equality too; what holds none is unequal.
            for (src, unequal) in [
                (format!("{other} == 7"), Ok(false)),
                (format!("7 != {other}"), Ok(true)),
            ] {
                let got = eval_expr(&src, BODY);
                if other == "payload.c.t" {
                    let e = got.expect_err(&src);
                    assert!(
                        e.message
                            .contains("text holding a number is never equal to a number"),
                        "{src}: {e:?}"
                    );
                } else {
                    assert_eq!(got, unequal, "{src}");
                }
            }
        }
        const TEXTS: &str = r#"{"imp_uid":"i","merchant_uid":"o","amount":5,"c":{"s":"sold out","e":"","z":" 0 "}}"#;
        let unequal = "payload.c.s != 0 && !(payload.c.e == 0.5) && payload.c.e != amount";
        assert_eq!(eval_expr(unequal, TEXTS), Ok(true));
        let e = eval_expr("payload.c.z != amount", TEXTS).unwrap_err();
        assert!(
            e.message.starts_with(r#"runtime error: " 0 " != 5: "#),
            "{e:?}"
        );
        let e = eval_expr("payload.c.t >= 1", BODY).unwrap_err();
        assert!(
            e.message.contains(r#""7" >= 1: text is never ordered"#),
            "{e:?}"
        );
        let digit = eval_expr("payload.c.t[0].to_string().parse_int() == 7", BODY);
        assert_eq!(digit, Ok(true), "the hint for a character works");
        for src in [
            "!(payload.c.u > 4) && !(payload.c.u <= 4) && !(4 < payload.c.missing)",
            "payload.c.n > 4",
            "payload.c.d > 7",
            "payload.c.n < 7.5",
            "payload.c.d >= amount",
            "payload.c.t.parse_int() > 4",
            "\"b\" > \"a\"",
        ] {
            assert_eq!(eval_expr(src, BODY), Ok(true), "{src}");
        }
    }

    /// The fix an ordering error suggests works whichever way the field comes: text, a
    /// number of any kind, or missing (an error saying to give a default).
    #[test]
    fn parse_takes_text_and_numbers_alike() {
        use crate::script::tests::eval_expr;
        const BODY: &str =
            r#"{"imp_uid":"i","merchant_uid":"o","amount":5,"c":{"t":"7","n":7,"d":7.0,"f":7.5}}"#;
        for field in ["payload.c.t", "payload.c.n", "payload.c.d"] {
            for src in [
                format!("{field}.parse_int() == 7"),
                format!("parse_float({field}) == 7.0"),
                format!("{field}.parse_decimal() == 7"),
            ] {
                assert_eq!(eval_expr(&src, BODY), Ok(true), "{src}");
            }
        }
        assert_eq!(eval_expr("payload.c.f.parse_float() > 7.4", BODY), Ok(true));
        let e = eval_expr("payload.c.f.parse_int() > 4", BODY).unwrap_err();
        assert!(
            e.message.contains("parse_int: 7.5 is no whole number"),
            "{e:?}"
        );
        let e = eval_expr("payload.c.missing.parse_int() > 4", BODY).unwrap_err();
        assert!(
            e.message.contains("parse_int of () (a field the request or answer lacks): give a default, parse_int(x ?? 0)"),
            "{e:?}"
        );
        assert_eq!(
            eval_expr("parse_int(payload.c.missing ?? 0) == 0", BODY),
            Ok(true)
        );
        assert_eq!(eval_expr("amount.parse_int() == 5", BODY), Ok(true));
    }

    /// What the README offers instead of a `switch` on a fractional amount (a decimal, which no
    /// float arm matches).
    #[test]
    fn a_fractional_amount_matches_float_literals_by_value() {
        assert_all(
            "9.99",
            &[
                "amount == 9.99",
                "one_of(amount, [9.99, 19.99])",
                "switch amount { 9.99 => false, _ => true }",
            ],
        );
    }

    #[test]
    fn decimal_compares_with_float_in_both_orders() {
        assert_all(
            "2500.5",
            &[
                "type_of(amount) == \"decimal\"",
                "!(amount < 2000.0)",
                "amount < 3000.0",
                "!(amount <= 2000.0)",
                "amount <= 3000.0",
                "amount > 2000.0",
                "!(amount > 3000.0)",
                "amount >= 2000.0",
                "!(amount >= 3000.0)",
                "!(amount == 2000.0)",
                "amount != 2000.0",
                "2000.0 < amount",
                "!(3000.0 < amount)",
                "2000.0 <= amount",
                "!(3000.0 <= amount)",
                "!(2000.0 > amount)",
                "3000.0 > amount",
                "!(2000.0 >= amount)",
                "3000.0 >= amount",
                "!(2000.0 == amount)",
                "2000.0 != amount",
                // Just beside the amount.
                "amount > 2500.4999 && amount < 2500.5001",
                "2500.4999 < amount && 2500.5001 > amount",
                "amount in [1.5, 2500.5]",
            ],
        );
    }

    #[test]
    fn equality_is_exact_at_the_boundary() {
        // 2000.1 has no exact binary value: the literal means the decimal 2000.1 as written.
        for amount in ["2000.1", "2000.10"] {
            assert_all(
                amount,
                &[
                    "amount == 2000.1",
                    "2000.1 == amount",
                    "!(amount != 2000.1)",
                    "!(2000.1 != amount)",
                    "amount <= 2000.1 && amount >= 2000.1",
                    "2000.1 <= amount && 2000.1 >= amount",
                    "!(amount < 2000.1) && !(amount > 2000.1)",
                    "!(2000.1 < amount) && !(2000.1 > amount)",
                    "amount == 2000.10",
                    "amount != 2000.2 && amount != 2000.0",
                    "amount - 0.1 == 2000",
                ],
            );
        }
    }

    #[test]
    fn integer_amounts_compare_with_floats() {
        // Rhai's own INT/f64 operators.
        assert_all(
            "2000",
            &[
                "type_of(amount) == \"i64\"",
                "amount == 2000.0 && 2000.0 == amount",
                "amount != 2000.5 && 2000.5 != amount",
                "amount < 2000.5 && 2000.5 > amount",
                "amount <= 2000.0 && 2000.0 >= amount",
                "amount > 1999.5 && 1999.5 < amount",
                "amount >= 2000.0 && 2000.0 <= amount",
                "!(amount < 2000.0) && !(amount > 2000.0)",
                "amount + 0.5 == 2000.5 && 0.5 + amount == 2000.5",
                "amount / 4.0 == 500.0 && 4000.0 / amount == 2.0",
                // Floating point, not exact (2200.0000000000005), but Rhai compares floats
                // with a relative tolerance of one epsilon.
                "type_of(amount * 1.1) == \"f64\" && amount * 1.1 == 2200",
            ],
        );
    }

    #[test]
    fn integer_amounts_beyond_a_float_compare_exactly() {
        // 2^53 + 1, which a float rounds to 2^53: as an INT, Rhai's INT/f64 operators would
        // find it equal to 9007199254740992.0 and below 1e16 + 1.
        assert_all(
            "9007199254740993",
            &[
                "type_of(amount) == \"decimal\"",
                "amount > 9007199254740992.0 && !(amount <= 9007199254740992.0)",
                "amount == 9007199254740993 && amount > 9007199254740992",
                "amount < 1e16 && amount > 1000",
                "amount % 2 == 1",
            ],
        );
        assert_all(
            "10000000000000001",
            &["amount > 1e16 && !(amount == 1e16)", "1e16 < amount"],
        );
        // 2^53 itself is exact in a float, and stays an INT.
        assert_all(
            "9007199254740992",
            &["type_of(amount) == \"i64\"", "amount == 9007199254740992.0"],
        );
    }

    #[test]
    fn decimal_and_integer_mix_in_both_orders() {
        // Rhai's own Decimal/INT operators.
        assert_all(
            "2500.5",
            &[
                "amount > 2500 && !(amount < 2500) && amount >= 2500 && !(amount <= 2500)",
                "2500 < amount && !(2500 > amount) && 2500 <= amount && !(2500 >= amount)",
                "amount != 2500 && 2500 != amount && !(amount == 2500) && !(2500 == amount)",
                "amount + 1 == 2501.5 && 1 + amount == 2501.5",
                "amount - 1 == 2499.5 && 3000 - amount == 499.5",
                "amount * 2 == 5001 && 2 * amount == 5001",
                "amount / 2 == 1250.25 && 5001 / amount == 2",
                "amount % 2 == 0.5 && 5001 % amount == 0",
                "type_of(amount * 2) == \"decimal\"",
            ],
        );
    }

    #[test]
    fn arithmetic_with_floats_stays_exact_in_both_orders() {
        assert_all(
            "2500.5",
            &[
                "amount + 0.25 == 2500.75 && 0.25 + amount == 2500.75",
                "amount - 0.5 == 2500 && 3000.0 - amount == 499.5",
                "amount * 2.0 == 5001 && 2.0 * amount == 5001",
                "amount / 2.0 == 1250.25 && 5001.0 / amount == 2",
                "amount % 1.0 == 0.5 && 5001.5 % amount == 0.5",
                // Exact where floats are not: 0.1 + 0.2 != 0.3 in binary.
                "amount + 0.1 + 0.2 == amount + 0.3",
                "amount * 0.1 == 250.05",
                "[amount + 0.5, 0.5 + amount, amount - 0.5, 0.5 - amount, amount * 0.5, \
                 0.5 * amount, amount / 0.5, 0.5 / amount, amount % 0.5, 0.5 % amount]\
                 .all(|x| type_of(x) == \"decimal\")",
            ],
        );
        // Compound assignment falls back to the operator.
        let engine = ScriptEngine::new();
        let ast = engine
            .compile_script("let x = amount; x += 0.5; x *= 2.0; x == 5002")
            .unwrap();
        assert_eq!(
            engine.eval_script(&scope("2500.5"), &ast, FULL),
            Ok(ScriptVerdict::Pass)
        );
    }

    #[test]
    fn floats_without_a_decimal_value_compare_as_floats() {
        assert_all(
            "2500.5",
            &[
                // NaN (0.0 / 0.0): unordered, so unequal and neither smaller nor larger.
                "amount != 0.0 / 0.0 && 0.0 / 0.0 != amount",
                "!(amount == 0.0 / 0.0 || 0.0 / 0.0 == amount)",
                "!(amount < 0.0 / 0.0 || amount <= 0.0 / 0.0 || amount > 0.0 / 0.0 || amount >= 0.0 / 0.0)",
                "!(0.0 / 0.0 < amount || 0.0 / 0.0 <= amount || 0.0 / 0.0 > amount || 0.0 / 0.0 >= amount)",
                // Infinities and floats beyond Decimal's range lie beyond every amount.
                "amount < 1.0 / 0.0 && -1.0 / 0.0 < amount && amount != 1.0 / 0.0",
                "amount < 1.0e30 && -1.0e30 < amount && amount > -1.0e30 && 1.0e30 > amount",
                // Below Decimal's precision.
                "amount > 1.0e-30 && 1.0e-30 < amount && amount != 1.0e-30",
                // Arithmetic with such floats is float arithmetic.
                "type_of(amount * 1.0e30) == \"f64\" && amount * 1.0e30 > 2.5e33",
                "type_of(1.0e30 - amount) == \"f64\"",
                "type_of(amount + 0.0 / 0.0) == \"f64\"",
            ],
        );
    }

    #[test]
    fn division_by_zero_and_overflow_are_errors() {
        for (src, message) in [
            ("amount / 0.0 > 0", "division by zero: 2500.5 / 0"),
            ("amount % 0.0 > 0", "division by zero: 2500.5 % 0"),
            ("1.0 / (amount - amount) > 0", "division by zero"),
            ("amount * 1.0e28 > 0", "arithmetic overflow"),
            // A quotient too large is an overflow, not a division by zero.
            ("amount / 1.0e-28 > 0", "arithmetic overflow"),
        ] {
            let err = eval(src, "2500.5").unwrap_err();
            assert!(err.message.contains(message), "{src}: {err}");
        }
    }

    /// Rhai writes the negation of the smallest integer as `--9223372036854775808`.
    #[test]
    fn a_negation_overflow_reads_as_one() {
        let err = eval("-(amount - 9223372036854775807 - 2501) > 0", "2500").unwrap_err();
        assert!(
            err.message
                .contains("negation overflow: -(-9223372036854775808) is beyond the integer range"),
            "{err}"
        );
    }

    #[test]
    fn exact_reads_floats_as_written() {
        for (f, text) in [
            (2000.1, "2000.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-28, "0.0000000000000000000000000001"),
            (-0.0, "0"),
            (1e28, "10000000000000000000000000000"),
        ] {
            assert_eq!(exact(f), Some(text.parse().unwrap()), "{f}");
        }
        for f in [FLOAT::NAN, FLOAT::INFINITY, 1e29, -1e29, 1e-29, 1.5e-28] {
            assert_eq!(exact(f), None, "{f}");
        }
    }
}
