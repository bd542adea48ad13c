//! The commonest rule expressions — a prefix, suffix, substring or equality test of one request
//! id against a string literal, as in `order_id.starts_with("qa-")`, `store_id` compared with
//! one, or `amount` compared with a whole number, and such tests joined by `&&` — evaluated
//! without Rhai.
//!
//! Through Rhai such a test costs about 4,600 instructions (function resolution, `Dynamic`
//! values); here it is a string comparison, and a ruleset made only of such tests needs no Rhai
//! scope per request at all. Every expression is still compiled by Rhai at load (errors and
//! positions come from there); this is a second way to run the few shapes whose meaning cannot
//! differ: the variables are always strings (or `()`, which no string equals) and the literal
//! has no escapes, or the amount is an exact decimal and the literal a whole number, so neither
//! side can fail or round anything. Everything else runs in Rhai. Tests below check that both
//! ways agree.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::payload::ConfirmRequest;

/// A recognised expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Native {
    Text {
        var: Var,
        op: Op,
        literal: Box<str>,
        /// `!` before a method call, or `!=` instead of `==`.
        negate: bool,
    },
    /// `amount OP N`: whether it holds when the amount is less than, equal to, greater than
    /// `literal`.
    Amount { literal: Decimal, holds: [bool; 3] },
    /// Shapes joined by `&&` (`order_id.starts_with("qa-") && amount <= 1000`): each side is
    /// a boolean that cannot fail, so Rhai's short circuit changes nothing.
    All(Vec<Native>),
}

/// Request variables that are always strings, and `store_id`, which V1 requests lack (`()`):
/// only compared with `==` / `!=`, which Rhai answers for `()` too (not equal), where a method
/// call on it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    OrderId,
    TxId,
    Api,
    StoreId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StartsWith,
    EndsWith,
    Contains,
    Equals,
}

impl Native {
    /// Recognises `[!]VAR.starts_with|ends_with|contains("LIT")`, `VAR ==|!= "LIT"` and
    /// `amount <|<=|>|>=|==|!= DIGITS`, with any spaces between the parts; `None` for everything
    /// else.
    ///
    /// Several of them joined by `&&` are one too.
    pub fn recognise(src: &str) -> Option<Native> {
        let mut s = Cursor(src);
        let mut all = vec![Native::one(&mut s)?];
        while s.eat("&&") {
            all.push(Native::one(&mut s)?);
        }
        s.end()?;
        Some(match all.len() {
            1 => all.swap_remove(0),
            _ => Native::All(all),
        })
    }

    /// One shape, from where `s` is.
    fn one(s: &mut Cursor<'_>) -> Option<Native> {
        let negate_call = s.eat("!");
        let ident = s.ident()?;
        if ident == "amount" && !negate_call {
            return Native::amount(s);
        }
        let var = match ident {
            "order_id" => Var::OrderId,
            "tx_id" => Var::TxId,
            "api" => Var::Api,
            "store_id" => Var::StoreId,
            _ => return None,
        };
        let (op, literal, negate) = if var != Var::StoreId && s.eat(".") {
            let op = match s.ident()? {
                "starts_with" => Op::StartsWith,
                "ends_with" => Op::EndsWith,
                "contains" => Op::Contains,
                _ => return None,
            };
            if !s.eat("(") {
                return None;
            }
            let literal = s.string()?;
            if !s.eat(")") {
                return None;
            }
            (op, literal, negate_call)
        } else if negate_call {
            // `!order_id == "x"` negates a string: a Rhai error, which Rhai should report.
            return None;
        } else if s.eat("==") {
            (Op::Equals, s.string()?, false)
        } else if s.eat("!=") {
            (Op::Equals, s.string()?, true)
        } else {
            return None;
        };
        Some(Native::Text {
            var,
            op,
            literal: literal.into(),
            negate,
        })
    }

    /// The rest of `amount OP DIGITS`. Only digits: a sign, a point, an exponent or `_` is left
    /// to Rhai (and its float rules); 18 digits at most, so the literal is a Rhai `INT`.
    fn amount(s: &mut Cursor<'_>) -> Option<Native> {
        // Longest first: `<=` before `<`.
        let holds = [
            ("<=", [true, true, false]),
            (">=", [false, true, true]),
            ("==", [false, true, false]),
            ("!=", [true, false, true]),
            ("<", [true, false, false]),
            (">", [false, false, true]),
        ]
        .into_iter()
        .find(|(op, _)| s.eat(op))?
        .1;
        let digits = s.digits()?;
        if digits.len() > 18 {
            return None;
        }
        Some(Native::Amount {
            literal: digits.parse::<i64>().ok()?.into(),
            holds,
        })
    }

    pub fn eval(&self, req: &ConfirmRequest) -> bool {
        let (var, op, lit, negate) = match self {
            Native::Text {
                var,
                op,
                literal,
                negate,
            } => (*var, *op, &**literal, *negate),
            Native::Amount { literal, holds } => {
                return match req.amount.value().cmp(literal) {
                    Ordering::Less => holds[0],
                    Ordering::Equal => holds[1],
                    Ordering::Greater => holds[2],
                };
            }
            Native::All(all) => return all.iter().all(|n| n.eval(req)),
        };
        let value = match var {
            Var::OrderId => req.order_id.as_str(),
            Var::TxId => req.tx_id.as_str(),
            Var::Api => req.api.as_str(),
            // Only `==` (see `Var`): `()` equals no string.
            Var::StoreId => match req.store_id.as_deref() {
                Some(id) => id,
                None => return negate,
            },
        };
        let result = match op {
            Op::StartsWith => value.starts_with(lit),
            Op::EndsWith => value.ends_with(lit),
            Op::Contains => value.contains(lit),
            Op::Equals => value == lit,
        };
        result != negate
    }
}

/// What is left of the source; every step skips leading whitespace first.
struct Cursor<'a>(&'a str);

impl<'a> Cursor<'a> {
    fn eat(&mut self, token: &str) -> bool {
        self.0 = self.0.trim_start();
        match self.0.strip_prefix(token) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.0 = self.0.trim_start();
        let end = self
            .0
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.0.len());
        let (ident, rest) = self.0.split_at(end);
        if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.0 = rest;
        Some(ident)
    }

    /// A double-quoted literal without escapes (a backslash means Rhai decides).
    fn string(&mut self) -> Option<&'a str> {
        if !self.eat("\"") {
            return None;
        }
        let (lit, rest) = self.0.split_once('"')?;
        if lit.contains('\\') {
            return None;
        }
        self.0 = rest;
        Some(lit)
    }

    /// ASCII digits, at least one, and not followed by what would make them another number
    /// (`1.5`, `1e3`, `1_000`, `0x10`).
    fn digits(&mut self) -> Option<&'a str> {
        self.0 = self.0.trim_start();
        let end = self
            .0
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.0.len());
        let (digits, rest) = self.0.split_at(end);
        if digits.is_empty()
            || rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            return None;
        }
        self.0 = rest;
        Some(digits)
    }

    fn end(&mut self) -> Option<()> {
        self.0.trim().is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: crate::script::TimeLeft =
        crate::script::TimeLeft::Deadline(crate::script::MAX_RUN_TIME);
    use crate::payload::{parse, Parsed};
    use crate::script::{RequestScope, ScriptEngine};

    fn request(order_id: &str, tx_id: &str) -> ConfirmRequest {
        let body = serde_json::json!({"imp_uid": tx_id, "merchant_uid": order_id, "amount": 1000});
        match parse(Some("application/json"), body.to_string().as_bytes()) {
            Ok(Parsed::Confirm(req)) => req,
            other => panic!("not a confirm request: {other:?}"),
        }
    }

    #[test]
    fn recognises_the_common_shapes_only() {
        for src in [
            r#"order_id.starts_with("qa-")"#,
            r#"!order_id.starts_with("legacy-")"#,
            r#" ! tx_id . ends_with ( "x" ) "#,
            r#"api.contains("v2")"#,
            r#"order_id == "a""#,
            r#"order_id != """#,
            r#"order_id.starts_with("주문-")"#,
            r#"store_id == "gangnam""#,
            r#"store_id != "x""#,
            "amount >= 1000000",
            "amount<1000",
            " amount == 0 ",
            "amount != 50000",
            "amount <= 999999999999999999",
            r#"order_id.starts_with("qa-") && amount <= 1000"#,
            r#"amount>1&&!order_id.contains("&&") && store_id == "a""#,
        ] {
            assert!(Native::recognise(src).is_some(), "{src}");
        }
        for src in [
            r#"store_id.starts_with("a")"#,
            r#"!store_id.contains("a")"#,
            r#"!store_id == "a""#,
            "amount >= 1_000_000",
            "amount > 1.5",
            "amount > 1.",
            "amount > -1",
            "amount >= 1e6",
            "amount > 0x10",
            "amount > 0b1",
            "!amount > 1",
            "amount >= 1000000 && true",
            r#"order_id == "a" &&"#,
            r#"&& order_id == "a""#,
            r#"order_id == "a" & amount > 1"#,
            r#"order_id == "a" && (amount > 1)"#,
            "amount > 1234567890123456789",
            "amount => 1",
            "amount >== 1",
            "amount >",
            "1000 < amount",
            "amount.to_string() == \"1\"",
            r#"payload.starts_with("a")"#,
            r#"order_id.starts_with("a\"b")"#,
            r#"order_id.starts_with("a\\b")"#,
            r#"order_id.starts_with(`a`)"#,
            r#"order_id.starts_with("a") || true"#,
            r#"order_id.starts_with("a", 1)"#,
            r#"order_id.len() == 3"#,
            r#"!order_id == "a""#,
            r#"!!order_id.starts_with("a")"#,
            r#"order_id.starts_with("a") // comment"#,
            r#"(order_id == "a")"#,
            r#""a" == order_id"#,
            r#"order_id.to_upper() == "A""#,
            r#"order_idx == "a""#,
            "",
        ] {
            assert_eq!(Native::recognise(src), None, "{src}");
        }
    }

    /// Runs `shape` both ways on `req` and asserts they agree (`what`: the request, for the
    /// failure message). Compiled unchecked: `api == "qa-"` is a load error, and still has an
    /// answer.
    fn assert_agrees(engine: &ScriptEngine, req: &ConfirmRequest, shape: &str, what: &str) {
        let native = Native::recognise(shape).expect(shape);
        let ast = engine.compile_unchecked(shape);
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+09:00").unwrap();
        let mut scope = RequestScope::new(req, now, false);
        let rhai = engine.eval_bool(&mut scope, &ast, &mut None, FULL).unwrap();
        assert_eq!(native.eval(req), rhai, "{shape} with {what}");
    }

    /// Both ways of running a recognised expression give the same answer, over ids and
    /// literals chosen to hit the edges: empty strings, multi-byte characters, a literal longer
    /// than the id, case differences.
    #[test]
    fn agrees_with_rhai() {
        let engine = ScriptEngine::new();
        // Ids are never empty (an empty id is a 400), literals may be.
        let ids = ["qa-1", "QA-1", "legacy-7", "주문-12", "a", "aa", "imp_123"];
        let literals = [
            "",
            "qa-",
            "qa-1",
            "-1",
            "주문",
            "문-",
            "a",
            "legacy-7x",
            "_",
        ];
        let mut checked = 0;
        for id in ids {
            let req = request(id, &format!("{id}tx"));
            for lit in literals {
                for var in ["order_id", "tx_id", "api"] {
                    for shape in [
                        format!("{var}.starts_with(\"{lit}\")"),
                        format!("!{var}.starts_with(\"{lit}\")"),
                        format!("{var}.ends_with(\"{lit}\")"),
                        format!("!{var}.contains(\"{lit}\")"),
                        format!("{var}.contains(\"{lit}\")"),
                        format!("{var} == \"{lit}\""),
                        format!("{var} != \"{lit}\""),
                    ] {
                        assert_agrees(&engine, &req, &shape, &format!("{var} of {id:?}"));
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 9 * 3 * 7);
    }

    /// `amount` is an `INT`, or a `Decimal` when it has a fraction or is beyond 2^53; compared
    /// with a whole number, both ways give the same answer, at the edges too.
    #[test]
    fn amount_agrees_with_rhai() {
        let engine = ScriptEngine::new();
        let amounts = [
            "1",
            "999999",
            "1000000",
            "1000001",
            "10.5",
            "999999.999",
            "1000000.0000000001",
            "1e6",
            "\"1000000\"",
            "9007199254740992",
            "9007199254740993",
            "123456789012345678901234",
        ];
        let literals = [
            "0",
            "1",
            "10",
            "999999",
            "1000000",
            "9007199254740992",
            "9007199254740993",
            "999999999999999999",
        ];
        let mut checked = 0;
        for amount in amounts {
            let body = format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":{amount}}}"#);
            let req = match parse(Some("application/json"), body.as_bytes()) {
                Ok(Parsed::Confirm(req)) => req,
                other => panic!("{amount}: not a confirm request: {other:?}"),
            };
            for lit in literals {
                for op in ["<", "<=", ">", ">=", "==", "!="] {
                    let shape = format!("amount {op} {lit}");
                    assert_agrees(&engine, &req, &shape, &format!("amount {amount}"));
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 12 * 8 * 6);
    }

    /// `store_id` is `()` in a V1 request: Rhai finds it equal to no string, and the native
    /// way says the same.
    #[test]
    fn store_id_agrees_with_rhai_when_absent_too() {
        let engine = ScriptEngine::new();
        let mut checked = 0;
        for store in [None, Some("store-1"), Some("강남점"), Some("s")] {
            let mut req = request("order-1", "imp-1");
            req.store_id = store.map(str::to_owned);
            for lit in ["", "store-1", "store", "강남점", "()"] {
                for shape in [
                    format!("store_id == \"{lit}\""),
                    format!("store_id != \"{lit}\""),
                ] {
                    assert_agrees(&engine, &req, &shape, &format!("store_id {store:?}"));
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 4 * 5 * 2);
    }

    /// Shapes joined by `&&` agree with Rhai on every mix of sides that hold and do not.
    #[test]
    fn conjunctions_agree_with_rhai() {
        let engine = ScriptEngine::new();
        let sides = [
            r#"order_id.starts_with("qa-")"#,
            r#"!tx_id.contains("x")"#,
            "amount <= 1000",
            "amount > 5000",
            r#"store_id != "s""#,
        ];
        let mut checked = 0;
        for (id, amount) in [
            ("qa-1", 500),
            ("qa-2", 1000),
            ("qa-3", 9000),
            ("order-1", 500),
        ] {
            let body =
                format!(r#"{{"imp_uid":"imp_{id}","merchant_uid":"{id}","amount":{amount}}}"#);
            let Ok(Parsed::Confirm(req)) = parse(Some("application/json"), body.as_bytes()) else {
                panic!("{body}");
            };
            for a in sides {
                for b in sides {
                    assert_agrees(&engine, &req, &format!("{a} && {b}"), &body);
                    assert_agrees(&engine, &req, &format!("{a}&&{b} && {a}"), &body);
                    checked += 2;
                }
            }
        }
        assert_eq!(checked, 4 * 5 * 5 * 2);
    }

    /// The native way reads the request itself, Rhai its scope: they agree only because no
    /// rule can change the scope. Scripts that try, then both ways, on one request's scope.
    #[test]
    fn agrees_with_rhai_after_scripts_tried_to_change_the_request() {
        let engine = ScriptEngine::new();
        let req = request("order-1", "imp-1");
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+09:00").unwrap();
        let mut scope = RequestScope::new(&req, now, false);
        let shapes = [
            r#"order_id.starts_with("qa-")"#,
            r#"order_id == "order-1""#,
            r#"tx_id.ends_with("-1")"#,
            r#"api != "v2-2024-01-01""#,
            r#"store_id == "s1""#,
            "amount > 500",
        ];
        for script in [
            r#"order_id = "qa-1"; true"#,
            r#"order_id.clear(); order_id.append("qa-1"); true"#,
            r#"tx_id += "x"; true"#,
            r#"api = "v2"; true"#,
            r#"store_id = "s1"; true"#,
            r#"let order_id = "qa-1"; let api = "v2"; true"#,
        ] {
            // Without the load's checks, which refuse some of them (an in-place method on a
            // request variable): what Rhai itself lets through is what this is about.
            let ast = engine
                .scripts
                .compile_with_scope(&crate::script::compile_scope(&[]), script)
                .unwrap();
            let _ = engine.eval_script(&scope, &ast, FULL);
            for shape in shapes {
                let native = Native::recognise(shape).expect(shape);
                let ast = engine.compile_expression(shape, &[]).unwrap();
                let rhai = engine.eval_bool(&mut scope, &ast, &mut None, FULL).unwrap();
                assert_eq!(native.eval(&req), rhai, "{shape} after {script}");
            }
        }
    }
}
