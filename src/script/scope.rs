//! [`RequestScope`]: the request as expressions and scripts see it, every variable read-only,
//! and JSON turned into Rhai values.

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset};
use rhai::{Dynamic, Map, Scope};
use rust_decimal::Decimal;
use serde_json::Value;

use super::{compile_scope, REQUEST_VARS};
use crate::payload::ConfirmRequest;

/// The request as expressions and scripts see it: [`REQUEST_VARS`], built once per request
/// and shared by all its rules.
///
/// Every request variable is a Rhai constant, so no rule can change what the rules after it
/// see: an assignment (`amount = 1`, `payload.x.y = 1`) or a mutating method call
/// (`order_id.clear()`, `fetched.clear()`) is an error, which the rule's `on_error` handles.
/// Expressions run on this scope directly, scripts on a copy (see
/// [`ScriptEngine::eval_script`](super::ScriptEngine::eval_script)). Only the engine changes
/// it, to record a fetch ([`set_fetched`](Self::set_fetched)).
pub struct RequestScope {
    /// The request variables, in [`REQUEST_VARS`] order, every one read-only and none shared.
    pub(super) scope: Scope<'static>,
    /// Holds a large answer in `fetched`: freed in the background (see
    /// [`free`](crate::background::free)).
    large: bool,
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        if self.large {
            crate::background::free(std::mem::take(&mut self.scope));
        }
    }
}

impl RequestScope {
    /// The request's variables. `with_payload: false` leaves `payload` as `()`: converting
    /// the whole body is the most expensive part, and rulesets that never mention `payload`
    /// skip it.
    pub fn new(req: &ConfirmRequest, now: DateTime<FixedOffset>, with_payload: bool) -> Self {
        let payload = if with_payload {
            json_to_dynamic(req.payload.value())
        } else {
            Dynamic::UNIT
        };
        let values = [
            req.order_id.clone().into(),
            req.tx_id.clone().into(),
            amount_dynamic(req.amount.value(), req.amount.as_i64()),
            req.store_id.clone().map_or(Dynamic::UNIT, Dynamic::from),
            req.api.as_str().into(),
            payload,
            Dynamic::from_int(now.timestamp_millis()),
            Dynamic::from_map(Map::new()),
        ];
        RequestScope {
            scope: template_with(values.map(Dynamic::into_read_only)),
            large: false,
        }
    }

    /// No variables, for rulesets that run no Rhai (nothing is built per request).
    pub fn empty() -> Self {
        RequestScope {
            scope: Scope::new(),
            large: false,
        }
    }

    /// The value of a request variable (`None` if it does not exist, or in an empty scope).
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<Dynamic> {
        self.scope.get(name).map(Dynamic::flatten_clone)
    }

    /// Records a fetch result under `fetched[rule]` (read-only, as every request variable)
    /// for later rules; returns `response` for the rule's own `require`
    /// ([`ScriptEngine::eval_bool`](super::ScriptEngine::eval_bool) makes it a constant
    /// there).
    pub fn set_fetched(&mut self, rule: &str, response: Dynamic) -> Dynamic {
        if !self.scope.is_empty() {
            // A clone is writable (Rhai's `Dynamic::clone` drops the access mode).
            self.keep_fetched(rule, response.clone().into_read_only(), false);
        }
        response
    }

    /// Like [`set_fetched`](Self::set_fetched), with the read-only copy for `fetched` made
    /// already: a large answer's, made in the background (copying it is as costly as
    /// freeing it). This scope is then freed in the background too.
    pub fn set_fetched_copy(&mut self, rule: &str, read_only: Dynamic) {
        if self.scope.is_empty() {
            crate::background::free(read_only);
        } else {
            self.keep_fetched(rule, read_only, true);
        }
    }

    /// Takes `fetched[rule]` back out (a shadow rule cut off after its answer came). A large
    /// answer's copy is freed in the background.
    pub fn forget_fetched(&mut self, rule: &str) {
        self.repair();
        let removed = self
            .scope
            .get_value_mut::<Map>("fetched")
            .and_then(|fetched| fetched.remove(rule));
        if let Some(value) = removed {
            crate::background::free(value);
        }
    }

    fn keep_fetched(&mut self, rule: &str, read_only: Dynamic, large: bool) {
        self.repair();
        if let Some(fetched) = self.scope.get_value_mut::<Map>("fetched") {
            fetched.insert(rule.into(), read_only);
            self.large |= large;
        }
    }

    /// A closure that captures a request variable turns it into a shared value in place
    /// (Rhai's `Share` statement); it keeps its value, but a shared value could be changed
    /// through another handle to it, and `get_value_mut` does not take one. Put back plain
    /// copies.
    pub(super) fn repair(&mut self) {
        if self.scope.iter_raw().any(|(_, _, v)| v.is_shared()) {
            self.scope = self.copy();
        }
    }

    /// A copy of the variables sharing nothing with these, read-only too (Rhai's
    /// `Dynamic::clone` drops the access mode, so it is set again).
    pub(super) fn copy(&self) -> Scope<'static> {
        if self.scope.is_empty() {
            return Scope::new();
        }
        template_with(REQUEST_VARS.map(|name| {
            self.scope
                .get(name)
                .map_or(Dynamic::UNIT, Dynamic::flatten_clone)
                .into_read_only()
        }))
    }
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.scope.iter_raw().map(|(name, _, value)| (name, value)))
            .finish()
    }
}

/// A scope of [`REQUEST_VARS`] holding `values` (in that order) as they are: read-only values
/// make read-only variables (Rhai keeps a variable's access mode in its value).
fn template_with(values: [Dynamic; REQUEST_VARS.len()]) -> Scope<'static> {
    // Cloning a scope shares its variable names; pushing would allocate each name anew.
    static TEMPLATE: LazyLock<Scope<'static>> = LazyLock::new(|| compile_scope(&[]));
    let mut scope = TEMPLATE.clone();
    for (name, value) in REQUEST_VARS.iter().zip(values) {
        // The template's variables are writable, so `get_mut` finds every one.
        if let Some(slot) = scope.get_mut(name) {
            *slot = value;
        }
    }
    scope
}

/// Integers stay `INT` so `amount >= 1000` reads naturally; fractions are exact `Decimal`s,
/// and so are integers beyond 2^53: Rhai compares an `INT` with a float literal in floating
/// point, where 9007199254740993 equals 9007199254740992.0 (a `Decimal` compares exactly, see
/// [`numbers`](super::numbers)).
fn amount_dynamic(value: Decimal, as_int: Option<i64>) -> Dynamic {
    const EXACT_IN_A_FLOAT: i64 = 1 << 53;
    match as_int {
        Some(i) if i.abs() <= EXACT_IN_A_FLOAT => Dynamic::from_int(i),
        _ => Dynamic::from_decimal(value),
    }
}

/// The significant decimal digits every float holds exactly.
const FLOAT_DIGITS: usize = 15;

/// The significant digits of a JSON number's text: its mantissa without sign, point, and
/// leading or trailing zeros (`0.0120e5` has 2).
fn significant_digits(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or(number);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    let trailing = digits[leading..]
        .iter()
        .rev()
        .take_while(|&&d| d == b'0')
        .count();
    digits.len() - leading - trailing
}

/// Below this, a JSON number that is not 0 and not a Decimal (written with an exponent, or
/// beyond 28 places) is kept as its text: see [`json_to_dynamic`].
const TINY: f64 = 1e-12;

/// JSON → Rhai, keeping integers as `INT` and other numbers exact where they fit, and as
/// their text where they fit no number type exactly.
pub fn json_to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Dynamic::from_int(i);
            }
            let text = n.to_string();
            // Written out (`10.50`) or with an exponent (`1.5e2`, `1e-13`): exact either way.
            let exact = Decimal::from_str_exact(&text)
                .ok()
                .or_else(|| crate::payload::exact_number(&text))
                .ok_or(());
            match exact {
                Ok(d) => Dynamic::from_decimal(d),
                // More digits than a Decimal or a float holds exactly
                // (`0.99999999999999999999999999999`, which either would round to 1, so that
                // `available >= 1` passed): its text, so that comparing it with a number is
                // an error (`on_error`) rather than a decision on a rounded value.
                Err(_) if significant_digits(&text) > FLOAT_DIGITS => text.into(),
                // Beyond a Decimal (`1e30`) with few digits: a float. Beyond a float too
                // (`1e400`): the largest float of its sign, not an infinity: Rhai compares
                // floats relative to their size, and (∞ - 10) / ∞ is NaN, so an infinity is
                // neither larger nor smaller than anything, itself included (`qty > 10` false
                // for `"qty": 1e400`: a buyer's way past a limit). The largest float compares
                // as the number written does against every bound a rule holds.
                Err(_) => {
                    let f = text.parse::<f64>().unwrap_or(f64::NAN);
                    if f.is_infinite() {
                        Dynamic::from_float(f64::MAX.copysign(f))
                    } else if f.abs() < TINY && significant_digits(&text) > 0 {
                        // `1e-30`, or `1e-400`, which is 0 as a float: Rhai takes a float within
                        // 2.2e-16 of 0 for 0 (and two floats whose product is 0 for equal), so
                        // `== 0` would hold for a number that is not 0. Its text, as above.
                        text.into()
                    } else {
                        Dynamic::from_float(f)
                    }
                }
            }
        }
        Value::String(s) => s.clone().into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        Value::Object(obj) => Dynamic::from_map(
            obj.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::{at, request, FULL, V1};
    use crate::script::{ScriptEngine, ScriptVerdict, TimeLeft, MAX_RUN_TIME};

    /// `(order_id, amount, payload, fetched)` as the scope holds them now.
    fn request_vars(scope: &RequestScope) -> String {
        ["order_id", "amount", "payload", "fetched"]
            .map(|n| format!("{n}={:?}", scope.get(n).unwrap()))
            .join(" ")
    }

    fn scope_with_fetch() -> RequestScope {
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let response =
            json_to_dynamic(&serde_json::json!({"status": 200, "body": {"available": 0}}));
        let _ = scope.set_fetched("stock", response);
        scope
    }

    /// JSON numbers: integers as Rhai integers, others exactly as decimals, those beyond a
    /// decimal as floats, and those beyond a float as the largest float of their sign, never an
    /// infinity or NaN.
    #[test]
    fn json_numbers_keep_their_value_and_sign() {
        let number = |text: &str| json_to_dynamic(&serde_json::from_str(text).unwrap());
        assert_eq!(number("7").as_int(), Ok(7));
        assert_eq!(number("10.50").as_decimal(), Ok("10.50".parse().unwrap()));
        assert_eq!(number("1e30").as_float(), Ok(1e30));
        assert_eq!(number("1e400").as_float(), Ok(f64::MAX));
        assert_eq!(number("-1e400").as_float(), Ok(-f64::MAX));
        // Beyond a decimal's places, a number that is not 0 (Rhai would take a float that small,
        // or the float's 0, for 0) is its text; a 0 written so is 0.
        for text in ["1e-400", "-1e-400", "1e-30", "-1.5e-29"] {
            assert_eq!(number(text).into_string().as_deref(), Ok(text), "{text}");
        }
        // Written with an exponent, a number a decimal holds is that decimal, exactly.
        for (text, exact) in [
            ("2.5e-3", "0.0025"),
            ("1e-12", "0.000000000001"),
            ("1.5e-13", "0.00000000000015"),
            ("-1.5E2", "-150"),
            ("1.25e+2", "125"),
            ("0e-400", "0"),
        ] {
            assert_eq!(
                number(text).as_decimal(),
                Ok(exact.parse().unwrap()),
                "{text}"
            );
        }
        // More digits than any number type holds exactly: the text, never a rounded value
        // (`0.999…9` rounded to 1 passed `available >= 1`).
        for text in [
            "0.99999999999999999999999999999",
            "1.00000000000000000000000000001",
            "123456789012345678901234567890123",
        ] {
            assert_eq!(number(text).into_string().as_deref(), Ok(text), "{text}");
        }
        assert_eq!(
            number("0.9999999999999999999999999999").as_decimal(),
            Ok("0.9999999999999999999999999999".parse().unwrap()),
            "28 places fit a decimal"
        );
        assert_eq!(significant_digits("0.0120e5"), 2);
        assert_eq!(significant_digits("-100"), 1);
    }

    /// `eval_bool` hands the answer back (its caller frees a large one off the async workers),
    /// and a copy made beforehand is what `fetched` holds.
    #[test]
    fn the_response_is_handed_back_and_a_large_copy_kept_in_fetched() {
        let engine = ScriptEngine::new();
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), false);
        let response = json_to_dynamic(&serde_json::json!({"status": 200, "body": {"n": 3}}));
        scope.set_fetched_copy("stock", response.clone().into_read_only());
        let mut handed = Some(response);
        for src in ["response.body.n == 3", "fetched.stock.body.n == 3"] {
            let ast = engine.compile_expression(src, &["response"]).unwrap();
            assert_eq!(
                engine.eval_bool(&mut scope, &ast, &mut handed, FULL),
                Ok(true),
                "{src}"
            );
            let back = handed.as_ref().map(|r| r.to_string());
            assert_eq!(
                back.as_deref(),
                Some("#{\"body\": #{\"n\": 3}, \"status\": 200}")
            );
        }
        assert!(scope.large, "freed off the async workers");
    }

    /// A number read as its text holds no comparison with a number: an ordering is an error
    /// (`on_error` decides), where the rounded value would have passed one side.
    #[test]
    fn a_number_too_precise_for_any_type_holds_no_comparison() {
        let engine = ScriptEngine::new();
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let response = json_to_dynamic(
            &serde_json::from_str(
                r#"{"status": 200, "body": {"available": 0.99999999999999999999999999999}}"#,
            )
            .unwrap(),
        );
        let response = scope.set_fetched("stock", response);
        for src in [
            "response.body.available >= 1",
            "response.body.available <= 1",
        ] {
            let ast = engine.compile_expression(src, &["response"]).unwrap();
            let err = engine
                .eval_bool(&mut scope, &ast, &mut Some(response.clone()), FULL)
                .expect_err(src);
            assert!(
                err.message
                    .contains("text is never ordered against a number"),
                "{src}: {err}"
            );
        }
    }

    /// A number beyond a float compares as the number written does: Rhai's relative float
    /// comparisons answer false for every comparison with an infinity, so `qty > 10` would let
    /// `"qty": 1e400` past a limit. One too small for a decimal is not 0: it is its text, which
    /// holds no comparison with a number (an error, for `on_error`).
    #[test]
    fn numbers_beyond_a_float_compare_as_written() {
        let engine = ScriptEngine::new();
        let body = br#"{"imp_uid":"i","merchant_uid":"m","amount":5000,"custom":{"big":1e400,"small":-1e400,"tiny":1e-400,"minus_tiny":-1e-400}}"#;
        let req = match crate::payload::parse(Some("application/json"), body).unwrap() {
            crate::payload::Parsed::Confirm(r) => r,
            crate::payload::Parsed::Ignored { .. } => unreachable!(),
        };
        for expr in [
            "payload.custom.big > 10",
            "payload.custom.big >= 10.5",
            "payload.custom.big > 1e300",
            "payload.custom.big == payload.custom.big",
            "payload.custom.small < 0",
            "payload.custom.small < -1e300",
            "payload.custom.big > amount",
            "!(payload.custom.big < 10)",
        ] {
            let ast = engine.compile_expression(expr, &[]).unwrap();
            let mut scope = RequestScope::new(&req, at("2026-12-01T12:30:00+09:00"), true);
            assert_eq!(
                engine.eval_bool(
                    &mut scope,
                    &ast,
                    &mut None,
                    TimeLeft::Deadline(MAX_RUN_TIME)
                ),
                Ok(true),
                "{expr}"
            );
        }
        for expr in [
            "payload.custom.tiny != 0",
            "payload.custom.tiny == 0",
            "payload.custom.minus_tiny < 0",
        ] {
            let ast = engine.compile_expression(expr, &[]).unwrap();
            let mut scope = RequestScope::new(&req, at("2026-12-01T12:30:00+09:00"), true);
            let e = engine
                .eval_bool(
                    &mut scope,
                    &ast,
                    &mut None,
                    TimeLeft::Deadline(MAX_RUN_TIME),
                )
                .expect_err(expr);
            assert!(e.message.contains("1e-400\""), "{expr}: {e:?}");
        }
    }

    #[test]
    fn get_reads_request_variables_and_nothing_else() {
        let scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), false);
        let order_id = scope.get("order_id").map(|v| v.to_string());
        assert_eq!(order_id.as_deref(), Some("vip-7"));
        assert_eq!(
            scope.get("amount").and_then(|v| v.as_int().ok()),
            Some(50000)
        );
        // Left out when no rule mentions it, but still a variable.
        assert!(scope.get("payload").is_some_and(|v| v.is_unit()));
        assert!(scope.get("response").is_none());
        assert!(RequestScope::empty().get("order_id").is_none());
    }

    #[test]
    fn debug_output_names_every_request_variable_with_its_value() {
        let scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), false);
        let shown = format!("{scope:?}");
        for name in REQUEST_VARS {
            assert!(shown.contains(&format!("{name:?}: ")), "{name}: {shown}");
        }
        for entry in [
            r#""order_id": "vip-7""#,
            r#""amount": 50000"#,
            r#""payload": ()"#,
        ] {
            assert!(shown.contains(entry), "{entry}: {shown}");
        }
        assert_eq!(format!("{:?}", RequestScope::empty()), "{}");
    }

    #[test]
    fn request_variables_are_read_only_to_scripts() {
        let engine = ScriptEngine::new();
        let mut scope = scope_with_fetch();
        let before = request_vars(&scope);
        // The load-time checks refuse some of these (a closure changing a variable it
        // captured); the run-time protection must hold without them.
        let unchecked = |src: &str| {
            engine
                .scripts
                .compile_with_scope(&super::super::compile_scope(&[]), src)
                .unwrap_or_else(|e| panic!("{src}: {e}"))
        };
        for (src, message) in [
            ("amount = 999999; true", "cannot modify constant amount"),
            (
                r#"order_id = "qa-1"; true"#,
                "cannot modify constant order_id",
            ),
            ("amount += 1; true", "cannot modify constant amount"),
            (
                r#"payload.custom.tier = "x"; true"#,
                "cannot modify constant payload",
            ),
            (
                "fetched.stock.body.available = 9; true",
                "cannot modify constant fetched",
            ),
            (
                "fetched.stock.status += 1; true",
                "cannot modify constant fetched",
            ),
            ("now = 0; true", "cannot modify constant now"),
            (
                "order_id.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                r#"payload.custom.remove("tier"); true"#,
                "'remove' cannot be called on constant",
            ),
            (
                "fetched.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                "fetched.stock.body.clear(); true",
                "'clear' cannot be called on constant",
            ),
            (
                "fn f() { this.status = 1 } fetched.stock.f(); true",
                "cannot modify constant",
            ),
            (
                "let f = || { amount = 1 }; f.call(); true",
                "cannot modify constant amount",
            ),
        ] {
            let ast = unchecked(src);
            let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
            assert!(err.message.to_lowercase().contains(message), "{src}: {err}");
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        let ast = engine.compile_script("\n amount = 1; true").unwrap();
        let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot modify constant amount (the request variables are read-only; copy one with `let` to work on a copy) (line 2, column 2)"
        );
        // Rhai lets a script add keys to a constant map, and its own variables may shadow the
        // request's: both change only the script's copy.
        for src in [
            r#"payload.extra = 1; payload.custom.extra = 1; fetched.stock.body.extra = 1; payload.len() == 5"#,
            r#"fetched["fake"] = #{ status: 200 }; fetched.len() == 2"#,
            "fn f() { this.fake = 1 } fetched.f(); fetched.len() == 2",
            "let f = || { fetched.fake = 1; }; f.call(); fetched.len() == 2",
            r#"let amount = 999999; let order_id = "qa-1"; amount == 999999"#,
            r#"order_id[0] = 'q'; order_id[1] = 'a'; order_id.starts_with("qa")"#,
            "amount[20] = true; amount[0..3] = 7; amount > 1000000",
            "payload.custom.tier[0] = 'G'; fetched.stock.body.available[0] = true; true",
        ] {
            let ast = unchecked(src);
            assert_eq!(
                engine.eval_script(&scope, &ast, FULL),
                Ok(ScriptVerdict::Pass),
                "{src}"
            );
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        // The scope still works as before: expressions read it, fetches add to it.
        let ast = engine
            .compile_expression(
                r#"order_id == "vip-7" && amount == 50000 && fetched.len() == 1"#,
                &[],
            )
            .unwrap();
        assert_eq!(
            engine.eval_bool(&mut scope, &ast, &mut None, FULL),
            Ok(true)
        );
    }

    #[test]
    fn request_variables_are_read_only_to_expressions() {
        let engine = ScriptEngine::new();
        let mut scope = scope_with_fetch();
        let before = request_vars(&scope);
        for src in [
            "order_id.clear() == ()",
            "fetched.stock.body.clear() == ()",
            "payload.custom.remove(\"tier\") == ()",
            "fetched.remove(\"stock\") == ()",
        ] {
            // Unchecked: the load refuses an in-place method's `()` used as a value.
            let ast = engine.compile_unchecked(src);
            let err = engine
                .eval_bool(&mut scope, &ast, &mut None, FULL)
                .unwrap_err();
            assert!(
                err.message.contains("cannot be called on constant"),
                "{src}: {err}"
            );
            assert_eq!(request_vars(&scope), before, "{src}");
        }
        // Statements, assignments included, are not expressions at all.
        for src in [
            "amount = 1",
            "order_id[0] = 'q'",
            "{ fetched.x = 1; true }",
            "[1].all(|x| { amount = x; true })",
        ] {
            assert!(engine.compile_expression(src, &[]).is_err(), "{src}");
        }
        // A closure capturing request variables makes them shared; they are put back as
        // plain values, and recording a fetch afterwards still works.
        let ast = engine
            .compile_expression(
                "[1].filter(|x| x < amount && fetched.len() == 1 && order_id != \"\").len() == 1",
                &[],
            )
            .unwrap();
        assert_eq!(
            engine.eval_bool(&mut scope, &ast, &mut None, FULL),
            Ok(true)
        );
        assert!(scope
            .scope
            .iter_raw()
            .all(|(_, constant, v)| constant && !v.is_shared()));
        assert_eq!(request_vars(&scope), before);
        let _ = scope.set_fetched("limits", Dynamic::from_int(1));
        let ast = engine
            .compile_expression("fetched.len() == 2", &[])
            .unwrap();
        assert_eq!(
            engine.eval_bool(&mut scope, &ast, &mut None, FULL),
            Ok(true)
        );
        // `response` is read-only too.
        let response =
            scope.set_fetched("more", json_to_dynamic(&serde_json::json!({"body": [1]})));
        let ast = engine
            .compile_expression("response.body.pop() == 1", &["response"])
            .unwrap();
        let err = engine
            .eval_bool(
                &mut scope,
                &ast,
                &mut Some(response),
                TimeLeft::Deadline(MAX_RUN_TIME),
            )
            .unwrap_err();
        assert!(
            err.message.contains("cannot be called on constant"),
            "{err}"
        );
        let ast = engine
            .compile_expression("fetched.more.body == [1]", &[])
            .unwrap();
        assert_eq!(
            engine.eval_bool(&mut scope, &ast, &mut None, FULL),
            Ok(true)
        );
    }
}
