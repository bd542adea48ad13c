//! What a `when`, a `require` or a script gives, where that is known when the rules load.
//!
//! Rhai checks the type of a result only when it runs: `require: 'amount - 1000'` compiles,
//! then fails every request that reaches it ("the expression gave a number, not true or false"), and a
//! script ending with `amount / 1000` fails the same way. Worse, a method that changes its
//! object in place gives `()`: `return ("  한도 초과: " + order_id).trim();` passes the payment
//! it meant to refuse. Each is a load error where the kind of the value is certain — a literal,
//! a request variable, arithmetic, a call known to give one kind — and left alone otherwise.

use rhai::{ASTFlags, Expr, FnCallExpr, Position, Stmt, StmtBlock, AST};

use super::declared_once;
use super::kinds::{InPlace, Kind, Names, IN_PLACE};

/// A value a `when`, a `require` or a script may end with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Expr(&'a Expr),
    /// A call as a statement (Rhai's form of a call at the top of a script or expression).
    Call(&'a FnCallExpr, Position),
    /// A way out that gives `()`: an `if` without `else`, a `switch` without `_` (at the
    /// `if` or `switch`), an empty block.
    Nothing(Position),
}

impl Value<'_> {
    /// Where the value starts: `amount` in `amount + 1`, not the `+`.
    fn start(self) -> Position {
        match self {
            Value::Expr(e) => start(e),
            Value::Call(call, at) => call_start(call, at),
            Value::Nothing(at) => at,
        }
    }
}

/// Where `e` starts (Rhai places an operator's call, and a chain, at the operator).
pub(super) fn start(e: &Expr) -> Position {
    match e {
        Expr::FnCall(call, at) => call_start(call, *at),
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => start(&chain.lhs),
        Expr::And(operands, _) | Expr::Or(operands, _) => start(&operands[0]),
        _ => e.start_position(),
    }
}

fn call_start(call: &FnCallExpr, at: Position) -> Position {
    match &call.args[..] {
        [first, _] if call.op_token.is_some() => start(first),
        _ => at,
    }
}

/// The values `stmt`, ending a script or block, may give.
fn ends_of<'a>(stmt: &'a Stmt, out: &mut Vec<Value<'a>>) {
    match stmt {
        Stmt::Expr(e) => ends_of_expr(e, out),
        Stmt::FnCall(call, at) => out.push(Value::Call(call, *at)),
        Stmt::If(f, at) => {
            ends_of_block(&f.body, out);
            match f.branch.statements() {
                [] => out.push(Value::Nothing(*at)),
                _ => ends_of_block(&f.branch, out),
            }
        }
        Stmt::Switch(switch, at) => {
            let cases = &switch.1;
            for case in &cases.expressions {
                ends_of_expr(&case.rhs, out);
            }
            if cases.def_case.is_none() {
                out.push(Value::Nothing(*at));
            }
        }
        Stmt::Block(block) => ends_of_block(block, out),
        // A catch block gives `()` (see `no_result`).
        Stmt::TryCatch(f, _) => ends_of_block(&f.body, out),
        Stmt::Return(Some(e), flags, _) if !flags.contains(ASTFlags::BREAK) => {
            ends_of_expr(e, out);
        }
        _ => {}
    }
}

pub(super) fn ends_of_block<'a>(block: &'a StmtBlock, out: &mut Vec<Value<'a>>) {
    match block.statements().last() {
        Some(last) => ends_of(last, out),
        None => out.push(Value::Nothing(block.position())),
    }
}

fn ends_of_expr<'a>(e: &'a Expr, out: &mut Vec<Value<'a>>) {
    match e {
        // A closure that captures variables is a block too, but gives its function pointer.
        Expr::Stmt(block)
            if !block
                .statements()
                .iter()
                .any(|s| matches!(s, Stmt::Share(..))) =>
        {
            ends_of_block(block, out);
        }
        _ => out.push(Value::Expr(e)),
    }
}

/// The values of the script's own `return`s (not its functions' or closures').
fn returns<'a>(statements: &'a [Stmt], out: &mut Vec<Value<'a>>) {
    for stmt in statements {
        match stmt {
            Stmt::Return(Some(e), flags, _) if !flags.contains(ASTFlags::BREAK) => {
                ends_of_expr(e, out);
            }
            Stmt::If(f, _) | Stmt::While(f, _) | Stmt::Do(f, ..) | Stmt::TryCatch(f, _) => {
                returns(f.body.statements(), out);
                returns(f.branch.statements(), out);
            }
            Stmt::For(f, _) => returns(f.2.body.statements(), out),
            Stmt::Block(block) => returns(block.statements(), out),
            Stmt::Switch(switch, _) => {
                for case in &switch.1.expressions {
                    if let Expr::Stmt(block) = &case.rhs {
                        returns(block.statements(), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Everything a script may give: the values its last statement may give, and its returns'.
pub(super) fn script_results(ast: &AST) -> Vec<Value<'_>> {
    let mut out = Vec::new();
    if let Some(last) = ast.statements().last() {
        ends_of(last, &mut out);
    }
    returns(ast.statements(), &mut out);
    out
}

/// Everything an expression may give (an `if` or `switch` gives one of its branches').
fn expression_results(ast: &AST) -> Vec<Value<'_>> {
    let mut out = Vec::new();
    if let Some(last) = ast.statements().last() {
        ends_of(last, &mut out);
    }
    out
}

/// The method a chain calls last (`len` in `fetched["s"].body.len()`), with its position;
/// `None` when the chain ends with a property or an index.
pub(super) fn last_method(e: &Expr) -> Option<(&FnCallExpr, Position)> {
    let (Expr::Dot(chain, ..) | Expr::Index(chain, ..)) = e else {
        return None;
    };
    match &chain.rhs {
        Expr::MethodCall(call, at) if matches!(e, Expr::Dot(..)) => Some((call, *at)),
        // An index's own expression is no part of the chain (`a[b.len()]`).
        rest @ (Expr::Dot(..) | Expr::Index(..)) if !e.options().contains(ASTFlags::BREAK) => {
            last_method(rest)
        }
        _ => None,
    }
}

/// What the last method of a chain is called on, when that is the chain's head alone
/// (`"x".trim()`, `(a + b).trim()`).
pub(super) fn object_of(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::Dot(chain, ..) if matches!(chain.rhs, Expr::MethodCall(..)) => Some(&chain.lhs),
        _ => None,
    }
}

/// Why a `when` or `require` expression cannot give true or false, whatever the request: what
/// it gives (or one of its `if`/`switch` branches gives) is a string, a number, `()`, an array
/// or a map — a literal, a request variable, arithmetic (`amount + 1`), a call known to give
/// one of those (`seoul_hour(now)`, `order_id.len()`). `require: 'order_id'` would fail every
/// request that reaches it.
pub(in crate::script) fn not_a_condition(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let mut found: Vec<_> = expression_results(ast).into_iter().filter_map(|value| {
        let kind = match value {
            Value::Expr(Expr::Variable(var, ..)) if var.1 == "store_id" => "a string or ()",
            // `if amount > 5 { true }` would fail every request it does not pass, with Rhai's
            // "gave ()" blaming a missing field.
            Value::Nothing(at) => return Some((NO_BRANCH_TAKEN.to_owned(), at)),
            _ => names.value_kind(value).filter(|k| *k != Kind::Bool)?.name(),
        };
        Some((
            format!(
                "this gives {kind}, not true or false: write a condition, such as order_id == \"x\" or amount > 1000"
            ),
            value.start(),
        ))
    })
    .collect();
    // The same inside `!`, `&&` and `||`, whose operands must be true or false as well.
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let operands: &[Expr] = match path.last() {
            Some(rhai::ASTNode::Expr(Expr::And(operands, _) | Expr::Or(operands, _))) => {
                operands.as_slice()
            }
            Some(
                rhai::ASTNode::Expr(Expr::FnCall(call, _))
                | rhai::ASTNode::Stmt(Stmt::FnCall(call, _)),
            ) if call.name == "!" => &call.args,
            _ => return true,
        };
        for operand in operands {
            let mut ends = Vec::new();
            ends_of_expr(operand, &mut ends);
            for end in ends {
                if let Value::Nothing(at) = end {
                    if !found.iter().any(|(_, seen)| *seen == at) {
                        found.push((NO_BRANCH_TAKEN.to_owned(), at));
                    }
                }
            }
        }
        true
    });
    found
}

/// Why an `if` without `else` (or a `switch` without `_`) is no condition.
/// The `else` to add is the answer for the requests no branch takes, which the expression's own
/// branches do not tell (a trial's `if amount > 5000000 { false }` was told `else { false }`).
const NO_BRANCH_TAKEN: &str = "this if (or switch) gives () when no branch is taken, not true or false: add an else giving what those requests should get (else { true } or else { false }; _ => for a switch), or write the condition itself (if amount > 5000000 { false } is amount <= 5000000)";

/// Why a script fails every request that reaches its end or a `return`: what it gives there
/// is a number, an array or a map (`amount / 1000`, `#{ok: true}`), and a script gives true,
/// false, `()` or a string.
pub(in crate::script) fn not_a_result(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    script_results(ast).into_iter().filter_map(|value| {
        let kind = names
            .value_kind(value)
            .filter(|k| matches!(k, Kind::Number | Kind::Array | Kind::Map))?;
        Some((
            format!(
                "this gives {}, which no script may give: a script gives true or () to pass, false to refuse with the rule's reason, or a string to refuse with that string; write a condition, such as amount <= 1000000, or a reason",
                kind.name()
            ),
            value.start(),
        ))
    })
    .collect()
}

/// A script that gives the text `"true"` or `"false"` (at its end or a `return`): a string
/// refuses with itself as the reason, so `"true"` refuses every payment that gets there.
pub(in crate::script) fn quoted_bool_result(ast: &AST) -> Vec<(String, Position)> {
    let bool_text = |e: &Expr| match e {
        Expr::StringConstant(text, _)
            if ["true", "false"].contains(&text.trim().to_ascii_lowercase().as_str()) =>
        {
            Some(text.to_string())
        }
        _ => None,
    };
    // Also through a variable declared once with it (`let r = "false"; … return r;`), unless a
    // method is called on it, which may change it in place (`r.replace("false", "한도 초과")`).
    let mut kept = declared_once(ast, bool_text);
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Expr(Expr::Dot(chain, ..))) = path.last() {
            if let Expr::Variable(var, ..) = &chain.lhs {
                kept.remove(var.1.as_str());
            }
        }
        true
    });
    script_results(ast).into_iter().filter_map(|value| {
        let Value::Expr(e) = value else { return None };
        let text = match e {
            Expr::Variable(var, ..) => kept.get(var.1.as_str()).cloned(),
            _ => bool_text(e),
        }?;
        Some((
            format!("\"{text}\" is a string, and a script that gives a string refuses the payment with it as the reason: write {} without quotes", text.trim().to_ascii_lowercase()),
            start(e),
        ))
    })
    .collect()
}

/// Each method that changes its object in place (`trim`, `push`, …) whose `()` is what
/// a script gives (at its end, or a `return`) or a `when`/`require` gives: `()` passes the
/// payment (a script), or is no condition (an expression). `script` tells which.
pub(in crate::script) fn in_place_result(ast: &AST, script: bool) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let results = if script {
        script_results(ast)
    } else {
        expression_results(ast)
    };
    results.into_iter().filter_map(|value| {
        let InPlace {
            name,
            noun,
            args,
            at,
        } = names.in_place(value)?;
        let args = if args { "…" } else { "" };
        let message = if script {
            format!(
                "{name} changes its {noun} in place and gives (), which passes the payment; write: let r = …; r.{name}({args}); return r;"
            )
        } else {
            format!(
                "{name} changes its {noun} in place and gives (), not true or false: write a condition, such as order_id == \"x\" or amount > 1000"
            )
        };
        Some((message, at))
    })
    .collect()
}

/// Each variable declared with what a method that changes its object in place gives,
/// and read afterwards: `let msg = ("  한도 초과  ").trim();` makes `msg` `()`, so `if amount >
/// 1000000 { return msg; }` passes the payment. Only a variable declared once and never
/// assigned again (see [`declared_once`]) is known to hold that `()` wherever it is read.
pub(in crate::script) fn in_place_kept(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let kept = declared_once(ast, |value| names.in_place(Value::Expr(value)));
    if kept.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let Some(rhai::ASTNode::Expr(Expr::Variable(var, _, read))) = path.last() else {
            return true;
        };
        let Some(InPlace {
            name,
            noun,
            args,
            at,
        }) = kept.get(var.1.as_str())
        else {
            return true;
        };
        let variable = var.1.as_str();
        let args = if *args { "…" } else { "" };
        found.push((
            format!(
                "{name} changes its {noun} in place and gives (), so {variable} is () where it is read (line {}, column {}); write: let {variable} = …; {variable}.{name}({args});",
                read.line().unwrap_or(1),
                read.position().unwrap_or(1)
            ),
            *at,
        ));
        true
    });
    found
}

/// Each method that changes its object in place called on a request variable or a field of one
/// (`order_id.make_upper();`, `payload.custom_data.coupon.trim();`): the request's variables
/// are constants, so the call fails on every request (a trial).
pub(in crate::script) fn in_place_on_request(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let Some(rhai::ASTNode::Expr(Expr::Dot(chain, ..))) = path.last() else {
            return true;
        };
        if super::race::continues_chain(path) {
            return true;
        }
        let Expr::Variable(var, ..) = &chain.lhs else {
            return true;
        };
        let name = var.1.as_str();
        if !names.request(name) {
            return true;
        }
        // Down the fields to the method called on one (a method before it gives a new value).
        let mut rest = &chain.rhs;
        loop {
            match rest {
                Expr::Dot(inner, ..) | Expr::Index(inner, ..)
                    if matches!(inner.lhs, Expr::Property(..)) =>
                {
                    rest = &inner.rhs;
                }
                Expr::MethodCall(call, at) => {
                    if let Some((method, _)) =
                        IN_PLACE.iter().find(|(m, _)| *m == call.name.as_str())
                    {
                        found.push((
                            format!("{name} is the request's, which a script cannot change, and {method} changes its object in place, so this fails on every request; copy it first: let v = {name}…; v.{method}(…); and use v"),
                            *at,
                        ));
                    }
                    break;
                }
                _ => break,
            }
        }
        true
    });
    found
}

/// Each method that changes its object in place (`pad`, `truncate`, `trim`, …) whose `()` is
/// put into a value: an operand (`"[" + x.pad(10, "*") + "]"`), an argument, or a part of a
/// backtick string (`` `주문 ${x.truncate(3)} 거절` ``). The `()` shows as nothing, so a reason
/// built so reads `[]` to the buyer. (At a script's end, a `return` or a `let`, the other
/// checks say so.)
pub(in crate::script) fn in_place_used(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        use rhai::ASTNode::{Expr as E, Stmt as S};
        let operation_or_call = |call: &FnCallExpr| {
            if call.op_token.is_some() {
                "the operation"
            } else {
                "the call"
            }
        };
        let (into, e) = match path {
            // `${…}` holds a block: its last statement is the part's value.
            [.., E(Expr::InterpolatedString(..)), E(Expr::Stmt(block)), S(stmt), E(e)]
                if block
                    .statements()
                    .last()
                    .is_some_and(|last| std::ptr::eq(last, *stmt)) =>
            {
                ("the backtick string", *e)
            }
            [.., E(Expr::FnCall(call, _)), E(e)] => (operation_or_call(call), *e),
            // A call at the top of a script or expression is a statement to Rhai.
            [.., S(Stmt::FnCall(call, _)), E(e)] => (operation_or_call(call), *e),
            _ => return true,
        };
        if let Some(InPlace {
            name,
            noun,
            args,
            at,
        }) = names.in_place(Value::Expr(e))
        {
            let args = if args { "…" } else { "" };
            found.push((
                format!("{name} changes its {noun} in place and gives (), so {into} gets () (shown as nothing); write: let r = …; r.{name}({args}); and use r"),
                at,
            ));
        }
        true
    });
    found
}

#[cfg(test)]
mod tests {
    use crate::script::{ScriptEngine, ScriptVerdict};

    /// An in-place method on a request variable (or a field of one) fails on every request:
    /// the request's variables are constants (a trial's `order_id.make_upper();`).
    #[test]
    fn an_in_place_method_on_a_request_variable_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, name, method, column) in [
            (
                "order_id.make_upper();\norder_id != \"\"",
                "order_id",
                "make_upper",
                10,
            ),
            (
                "payload.custom_data.coupon.trim();\ntrue",
                "payload",
                "trim",
                28,
            ),
        ] {
            crate::script::tests::assert_refused(
                &engine,
                src,
                &format!("{name} is the request's, which a script cannot change, and {method} changes its object in place, so this fails on every request; copy it first: let v = {name}…; v.{method}(…); and use v"),
                1,
                column,
            );
            let ran = crate::script::tests::run_unchecked(&engine, src);
            assert!(ran.is_err(), "{src}: {ran:?}");
        }
        for fine in [
            "let id = order_id;\nid.make_upper();\nid != \"\"",
            "order_id.to_upper().len() > 0",
            "let order_id = \"x\";\norder_id.make_upper();\norder_id == \"X\"",
        ] {
            engine
                .compile_script(fine)
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
    }

    /// Arithmetic, helpers and methods known to give a number or a string, and `if`/`switch`
    /// branches giving one, fail every request as a `when` or `require`.
    #[test]
    fn an_expression_of_a_known_kind_is_no_condition() {
        let engine = ScriptEngine::new();
        for (src, kind, column) in [
            ("amount + 1", "a number", 1),
            ("amount - 1000", "a number", 1),
            ("(amount + 1) * 2", "a number", 2),
            (r#"order_id + "x""#, "a string", 1),
            (r#""주문 " + amount"#, "a string", 1),
            ("seoul_hour(now)", "a number", 1),
            ("order_id.len()", "a number", 1),
            ("fetched[\"stock\"].body.len()", "a number", 1),
            ("seoul_date(now)", "a string", 1),
            (r#"format_amount(amount) + "원""#, "a string", 1),
            ("payload.keys()", "an array", 1),
            ("if amount > 1 {1} else {2}", "a number", 16),
            (r#"if amount > 1 { true } else { "no" }"#, "a string", 31),
            (r#"switch api { "v1" => 1, _ => 2 }"#, "a number", 22),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!(
                (e.message.as_str(), e.column),
                (
                    format!("this gives {kind}, not true or false: write a condition, such as order_id == \"x\" or amount > 1000").as_str(),
                    column
                ),
                "{src}"
            );
        }
        // Trial: an `if` without `else` failed every request it did not pass, at run time.
        for (src, column) in [
            ("if amount > 5 { true }", 1),
            (r#"switch api { "v1" => true }"#, 1),
            // Verification: inside `!`, `&&` and `||` it loaded.
            ("!(if amount > 5 { true })", 3),
            ("amount > 5 && if order_id == \"x\" { true }", 15),
            ("amount < 5 || if amount > 9 { true }", 15),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!(
                (e.message.as_str(), e.column),
                (super::NO_BRANCH_TAKEN, column),
                "{src}"
            );
        }
        crate::script::tests::expressions_load(
            &engine,
            &[
                "amount + 1 > 1000",
                r#"order_id + "x" == "ax""#,
                "order_id.len() > 3 && seoul_hour(now) >= 9",
                r#"if amount > 1 { true } else { order_id == "x" }"#,
                r#"switch api { "v1" => true, _ => amount > 5 }"#,
                "payload.flag",
                r#"fetched["stock"].body.ok"#,
                "is_blank(store_id) || one_of(api, [\"v1\"])",
                r#"if amount > 5 { fail("x") } else { true }"#,
            ],
        );
    }

    /// A script gives true, false, `()` or a string; a number, array or map at its end or in
    /// a `return` fails every request that gets there.
    #[test]
    fn a_script_giving_a_number_array_or_map_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, kind, line, column) in [
            ("amount / 1000", "a number", 1, 1),
            ("#{ok: true}", "a map", 1, 1),
            ("let ok = amount < 5;\n#{ok: ok}", "a map", 2, 1),
            ("if amount > 5 { return [1]; }\ntrue", "an array", 1, 24),
            (
                "if amount > 5 { \"too much\" } else { amount * 2 }",
                "a number",
                1,
                37,
            ),
            ("payload", "a map", 1, 1),
            ("order_id.len()", "a number", 1, 1),
            // An operand not known here (a trial: `price` read from a map) still makes a
            // number of one that is, except by `+`, which could make text.
            (
                "const PRICES = #{vip: 165000};\nlet price = PRICES[\"vip\"];\namount - price",
                "a number",
                3,
                1,
            ),
            (
                "let n = parse_int(\"2\");\nreturn n * payload.price;",
                "a number",
                2,
                8,
            ),
            // A variable given one value of a known kind, and never another.
            (
                "let limit = 1000000;\nif amount > limit { return limit; }\ntrue",
                "a number",
                2,
                28,
            ),
            // A trial's VIP script, ending with its limit: assigned again, but only numbers.
            (
                "let limit = 1000000;\nif payload.custom_data?.tier == \"vip\" { limit = 5000000; }\nif amount > limit { return \"한도 초과\"; }\nlimit",
                "a number",
                4,
                1,
            ),
        ] {
            let message = format!("this gives {kind}, which no script may give: a script gives true or () to pass, false to refuse with the rule's reason, or a string to refuse with that string; write a condition, such as amount <= 1000000, or a reason");
            crate::script::tests::assert_refused(&engine, src, &message, line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                "order_id",
                r#""한도 초과: " + format_amount(amount) + "원""#,
                r#"if amount > 5 { "x" } else { true }"#,
                "let total = amount / 1000; total > 50",
                "fn limit() { 1000 }\namount > limit()",
                "fn next(x) { return x + 1; }\nnext(amount) > 5",
                "[1, 2].map(|x| x * 2).len() > 0",
                "let m = #{ len: || true };\nm.len()",
                "fn len(x) { true }\nlen(order_id)",
                "if amount > 5 { return \"x\"; }\n()",
                // Assigned again, declared twice, or a parameter: its value is not known here.
                "let n = 0;\nn += 1;\nreturn n > 0;",
                "let n = 0;\nn += 1;\nn > 0",
                "let r = 1;\nif amount > 5 { r = \"한도 초과\"; }\nif r == 1 { true } else { r }",
                "let r = 1;\nr = \"x\";\nreturn r;",
                "let r = 1;\nlet r = \"x\";\nr",
                "fn f(r) { r }\nlet r = 1;\nf(\"x\")",
                "let limit = 1000000;\namount <= limit",
                "const P = #{a: 1};\nP[\"a\"] + amount == 0",
            ],
        );
    }

    /// `trim`, `push` … give `()`, which passes the payment as a script's result.
    #[test]
    fn an_in_place_method_as_the_result_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, message, line, column) in [
            (
                r#"return ("  한도 초과: " + order_id).trim();"#,
                "trim changes its string in place and gives (), which passes the payment; write: let r = …; r.trim(); return r;",
                1,
                33,
            ),
            (
                "let s = \"a\";\nif amount > 5 { s.replace(\"a\", \"b\") } else { true }",
                "replace changes its string in place and gives (), which passes the payment; write: let r = …; r.replace(…); return r;",
                2,
                19,
            ),
            (
                "let tags = payload.tags;\ntags.push(\"checked\")",
                "push changes its array in place and gives (), which passes the payment; write: let r = …; r.push(…); return r;",
                2,
                6,
            ),
            (
                "let reason = \"x\";\ntruncate(reason, 10)",
                "truncate changes its string in place and gives (), which passes the payment; write: let r = …; r.truncate(…); return r;",
                2,
                1,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message, line, column);
        }
        let e = engine
            .compile_expression(r#"(order_id + " ").trim()"#, &[])
            .unwrap_err();
        assert_eq!(
            e.message,
            "trim changes its string in place and gives (), not true or false: write a condition, such as order_id == \"x\" or amount > 1000"
        );
        crate::script::tests::scripts_load(
            &engine,
            &[
                r#"let r = "  한도 초과: " + order_id; r.trim(); return r;"#,
                "let a = [3, 1]; a.sort(); a[0] > 0",
                "let items = [1]; items.remove(0) == 1",
                "fn trim(s) { true }\ntrim(order_id)",
                "let m = #{ push: |x| true };\nm.push(1)",
                "let m = #{};\nm.push = |x| true;\nm.push(1)",
            ],
        );
    }

    /// An in-place method's `()` put into a value shows as nothing: a reason built so read
    /// `[]` or `주문  거절` to the buyer.
    #[test]
    fn an_in_place_method_inside_a_value_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, message, line, column) in [
            (
                "let x = order_id;\nreturn \"[\" + x.pad(10, \"*\") + \"]\";",
                "pad changes its string in place and gives (), so the operation gets () (shown as nothing); write: let r = …; r.pad(…); and use r",
                2,
                16,
            ),
            (
                "let x = order_id;\nreturn `주문 ${x.truncate(3)} 거절`;",
                "truncate changes its string in place and gives (), so the backtick string gets () (shown as nothing); write: let r = …; r.truncate(…); and use r",
                2,
                16,
            ),
            (
                "let x = order_id;\nprint(x.trim());\ntrue",
                "trim changes its string in place and gives (), so the call gets () (shown as nothing); write: let r = …; r.trim(); and use r",
                2,
                9,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message, line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                "let x = order_id;\nx.pad(10, \"*\");\nreturn \"[\" + x + \"]\";",
                "let x = order_id;\nreturn `주문 ${x.truncate(3); x} 거절`;",
                "let x = order_id;\nreturn `주문 ${x.sub_string(0, 3)} 거절`;",
                "let a = [3, 1];\nlet n = a.len() + 1;\nn > 0",
            ],
        );
        // At the top of a `when` or `require`, where Rhai makes the operation a statement.
        let e = engine
            .compile_expression("order_id.trim() == ()", &[])
            .unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.column),
            ("trim changes its string in place and gives (), so the operation gets () (shown as nothing); write: let r = …; r.trim(); and use r", 10)
        );
    }

    /// A variable declared with what an in-place method gives holds `()`: returned, it passes
    /// the payment it meant to refuse.
    #[test]
    fn a_variable_holding_an_in_place_result_is_a_load_error() {
        let engine = ScriptEngine::new();
        let script =
            "let msg = (\"  1회 한도 초과  \").trim();\nif amount > 1000000 { return msg; }\ntrue";
        // What it did: the refusal passed.
        let amount = r#"{"imp_uid":"i","merchant_uid":"m","amount":2000000}"#;
        assert_eq!(
            crate::script::tests::run_unchecked_on(&engine, script, amount),
            Ok(ScriptVerdict::Pass)
        );
        for (src, message, line, column) in [
            (
                script,
                "trim changes its string in place and gives (), so msg is () where it is read (line 2, column 30); write: let msg = …; msg.trim();",
                1,
                28,
            ),
            (
                "let tags = payload.tags;\nlet all = tags.push(\"x\");\nall.len() > 1",
                "push changes its array in place and gives (), so all is () where it is read (line 3, column 1); write: let all = …; all.push(…);",
                2,
                16,
            ),
            (
                "let r = \"a\" + order_id;\nlet up = make_upper(r);\nif up == \"A\" { return \"x\"; }\ntrue",
                "make_upper changes its string in place and gives (), so up is () where it is read (line 3, column 4); write: let up = …; up.make_upper();",
                2,
                10,
            ),
            (
                "fn reason(s) { let r = s.replace(\"a\", \"b\"); r }\nreason(order_id)",
                "replace changes its string in place and gives (), so r is () where it is read (line 1, column 45); write: let r = …; r.replace(…);",
                1,
                26,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message, line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                "let msg = \"  1회 한도 초과  \";\nmsg.trim();\nif amount > 1000000 { return msg; }\ntrue",
                // Never read, assigned again, or a map's own function.
                "let s = \" x \";\nlet done = s.trim();\ns != \"\"",
                "let msg = \" x \".trim();\nmsg = \"x\";\nif amount > 5 { return msg; }\ntrue",
                "let m = #{ trim: || \"x\" };\nlet msg = m.trim();\nmsg",
            ],
        );
    }

    /// Only a map has properties of any name: `order_id.length` (JavaScript's) fails every
    /// request that reads it.
    #[test]
    fn an_unknown_property_of_a_string_is_a_load_error() {
        let engine = ScriptEngine::new();
        let fails = "so reading it fails every request";
        for (src, message, line, column) in [
            (
                "order_id.length > 10",
                format!("a string has no property length, {fails}; write order_id.len()"),
                1,
                10,
            ),
            (
                "tx_id.size == 0",
                format!("a string has no property size, {fails}; write tx_id.len()"),
                1,
                7,
            ),
            (
                r#""abc".length > 1"#,
                format!(r#"a string has no property length, {fails}; write "abc".len()"#),
                1,
                7,
            ),
            (
                "order_id.to_upper().length > 1",
                format!("a string has no property length, {fails}; write order_id.len()"),
                1,
                21,
            ),
            (
                r#"order_id.lower == "x""#,
                format!("a string has no property lower, {fails}; write order_id.to_lower()"),
                1,
                10,
            ),
            (
                "order_id.lenght > 1",
                format!("a string has no property lenght, {fails}; did you mean order_id.len?"),
                1,
                10,
            ),
            (
                "amount.length > 1",
                format!("a number has no property length, {fails}; write amount.len()"),
                1,
                8,
            ),
            (
                "let s = order_id + \"-x\";\ns.length > 3",
                format!("a string has no property length, {fails}; write s.len()"),
                2,
                3,
            ),
            // "an array", not "a array".
            (
                "let parts = order_id.split(\"-\");\nparts.length == 4",
                format!("an array has no property length, {fails}; write parts.len()"),
                2,
                7,
            ),
            (
                "order_id.length() > 10",
                "function not found: length; did you mean len?".to_owned(),
                1,
                10,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message.as_str(), line, column);
        }
        let e = engine
            .compile_expression("api.length > 2", &[])
            .unwrap_err();
        assert_eq!(
            e.message,
            format!("a string has no property length, {fails}; write api.len()")
        );
        crate::script::tests::expressions_load(
            &engine,
            &[
                "order_id.len > 1 && order_id.len() > 1 && !order_id.is_empty",
                "order_id.len.is_odd || amount.is_zero",
                // Maps have properties of any name; what they hold is not known here.
                "payload.length > 1 && payload.items.length > 0",
                r#"fetched["stock"].body.size > 0"#,
            ],
        );
        crate::script::tests::scripts_load(
            &engine,
            &[
                "let m = #{ length: 1 };\nm.length > 0",
                "let s = order_id;\ns = #{ length: 1 };\ns.length > 0",
                // An index's own expression is a chain of its own.
                "let s = \"ab\";\nlet a = [1, 2, 3];\na[s.len] > 0 && a[0] > 0",
            ],
        );
    }

    /// Every method the check names gives `()` in the Rhai we build with.
    #[test]
    fn a_number_method_on_text_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, name, instead, column) in [
            ("order_id.to_int() > 0", "to_int", "parse_int", 10),
            ("to_int(tx_id) > 0", "to_int", "parse_int", 1),
            (
                r#""10.5".to_decimal() > 1"#,
                "to_decimal",
                "parse_decimal",
                8,
            ),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!(
                (e.message, e.column),
                (format!("{name} is for numbers, and this is text: write {instead}(…), which reads a number from text"), column),
                "{src}"
            );
        }
        crate::script::tests::expressions_load(
            &engine,
            &[
                "parse_int(order_id) > 0",
                "parse_decimal(\"10.5\") > 1",
                "amount.to_int() > 0",
                "payload.count.to_int() > 0",
                "seoul_hour(now).to_float() > 1.0",
            ],
        );
    }

    #[test]
    fn the_in_place_methods_give_nothing() {
        let calls = [
            r#"s.trim()"#,
            r#"s.make_upper()"#,
            r#"s.make_lower()"#,
            r#"s.replace("a", "b")"#,
            r#"s.crop(1)"#,
            r#"s.pad(5, "x")"#,
            r#"a.pad(5, 0)"#,
            r#"s.truncate(1)"#,
            r#"a.truncate(1)"#,
            r#"s.clear()"#,
            r#"m.clear()"#,
            r#"s.append("x")"#,
            r#"a.append([1])"#,
            r#"a.push(1)"#,
            r#"a.insert(0, 1)"#,
            r#"a.reverse()"#,
            r#"a.sort()"#,
            r#"a.sort_desc()"#,
            r#"a.dedup()"#,
            r#"a.chop(1)"#,
            r#"a.splice(0, 1, [5])"#,
            r#"m.mixin(#{b: 2})"#,
            r#"m.fill_with(#{c: 3})"#,
            r#"n.set_bit(1, true)"#,
            r#"n.set_bits(0, 2, 3)"#,
        ];
        for call in calls {
            let name = call[2..].split('(').next().unwrap_or_default();
            assert!(
                super::super::kinds::IN_PLACE
                    .iter()
                    .any(|(m, _)| *m == name),
                "{call}"
            );
            let src = format!(
                "let s = \" ab \"; let a = [2, 1, 1]; let m = #{{a: 1}}; let n = 5;\ntype_of({call}) == \"()\""
            );
            // (Loaded, `type_of(…)` is refused: an in-place call's `()` put into a value.)
            assert_eq!(
                crate::script::tests::run_unchecked(&ScriptEngine::new(), &src),
                Ok(ScriptVerdict::Pass),
                "{call}"
            );
        }
        for (name, _) in super::super::kinds::IN_PLACE {
            assert!(
                calls
                    .iter()
                    .any(|c| c[2..].starts_with(&format!("{name}("))),
                "{name}"
            );
        }
    }
}
