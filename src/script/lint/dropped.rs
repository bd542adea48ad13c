//! A value at the end of an `if` block whose value nobody takes.
//!
//! An `if` gives the value its block ends with, and a script gives the value of its last
//! statement. An `if` that is not the last statement (of the script, of a function, or of a
//! block whose value is taken) gives its value to nobody: in
//!
//! ```text
//! if amount > 1000000 { "1회 한도 초과" }
//! true
//! ```
//!
//! the reason is thrown away and the script gives `true`, approving every payment. `return
//! "…";` is what was meant. An `if` whose value is taken (`let x = if c { "a" } else { "b" };`,
//! the script's last statement, a `switch` arm's value) is left alone.

use std::collections::HashSet;

use rhai::{ASTNode, Expr, Position, Stmt, StmtBlock, AST};

use super::kinds::{GIVE_NUMBERS, GIVE_STRINGS};
use super::results::start;

/// Each value (a literal, a variable, arithmetic or text made of those) ending a block of
/// an `if` or an arm of a `switch` whose value nobody takes, with what to write instead.
pub(in crate::script) fn dropped_value(ast: &AST) -> Vec<(String, Position)> {
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    // Each part on its own: the script's statements, then each function's (closures too),
    // so that a statement at the top of a part is known to be the part's last or not.
    std::iter::once(ast.clone_statements_only())
        .chain(super::each_function(ast).map(|(_, one)| one))
        .flat_map(|part| dropped_in(&part, &own))
        .collect()
}

/// [`dropped_value`] in a part whose top statements are one list: a script's, or one
/// function's body.
fn dropped_in(part: &AST, own: &HashSet<&str>) -> Vec<(String, Position)> {
    let mut last: Option<*const Stmt> = None;
    part.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(stmt)] = path {
            last = Some(*stmt);
        }
        true
    });
    let mut found = Vec::new();
    part.walk(&mut |path: &[ASTNode]| {
        let value = match path.last() {
            Some(ASTNode::Stmt(Stmt::If(f, _))) if !taken(path, last) => {
                [&f.body, &f.branch].into_iter().find_map(|b| pure_end(b, own))
            }
            // A catch block gives `()` wherever it is: a value ending it is always thrown away
            // (at the end of the script that is `no_result`'s to say, first).
            Some(ASTNode::Stmt(Stmt::TryCatch(blocks, _))) => pure_end(&blocks.branch, own),
            Some(ASTNode::Stmt(Stmt::Switch(switch, _))) if !taken(path, last) => {
                switch.1.expressions.iter().find_map(|case| match &case.rhs {
                    Expr::Stmt(block) => pure_end(block, own),
                    e => pure(e, own).then_some(e),
                })
            }
            _ => None,
        };
        if let Some(value) = value {
            let write = match value {
                Expr::StringConstant(s, _) => format!("\"{s}\""),
                Expr::BoolConstant(b, _) => b.to_string(),
                Expr::Variable(v, ..) => v.1.to_string(),
                _ => "…".to_owned(),
            };
            let (what, statement) = match path.last() {
                Some(ASTNode::Stmt(Stmt::Switch(..))) => ("a switch arm", "switch"),
                Some(ASTNode::Stmt(Stmt::TryCatch(..))) => ("a catch block", "try/catch"),
                _ => ("an if block", "if"),
            };
            found.push((
                format!(
                    "this value at the end of {what} is thrown away: the {statement} is not the last statement, so the script goes on after it as if the value were not there; {}",
                    match value {
                        // A number is no answer a script may give.
                        Expr::IntegerConstant(..) | Expr::FloatConstant(..) => "a script gives true or () to pass, false or a text to refuse: return one of those, or leave the value out".to_owned(),
                        _ => format!("to refuse with it, write return {write};"),
                    }
                ),
                start(value),
            ));
            return true;
        }
        true
    });
    found
}

/// Whether the value of the statement ending `path` is taken: it is the last statement of its
/// part, or the last of a block whose value is taken (an `if`'s, a `try`'s, a block's, or a
/// block in an expression, such as `let x = if …` or a `switch` arm's). A loop's body, a catch
/// block and what is not last give their value to nobody.
fn taken(path: &[ASTNode], last: Option<*const Stmt>) -> bool {
    let Some((ASTNode::Stmt(stmt), above)) = path.split_last() else {
        return true;
    };
    let is_last = |block: &StmtBlock| {
        block
            .statements()
            .last()
            .is_some_and(|l| std::ptr::eq(l, *stmt))
    };
    match above.last() {
        None => last.is_some_and(|l| std::ptr::eq(l, *stmt)),
        Some(ASTNode::Stmt(Stmt::If(f, _))) => {
            (is_last(&f.body) || is_last(&f.branch)) && taken(above, last)
        }
        Some(ASTNode::Stmt(Stmt::TryCatch(f, _))) => is_last(&f.body) && taken(above, last),
        Some(ASTNode::Stmt(Stmt::Block(block))) => is_last(block) && taken(above, last),
        Some(ASTNode::Stmt(Stmt::While(..) | Stmt::Do(..) | Stmt::For(..))) => false,
        Some(ASTNode::Expr(Expr::Stmt(block))) => is_last(block),
        // Anything else: not known here, so taken.
        _ => true,
    }
}

/// The value `block` ends with, when it is [`pure`].
fn pure_end<'a>(block: &'a StmtBlock, own: &HashSet<&str>) -> Option<&'a Expr> {
    match block.statements().last() {
        Some(Stmt::Expr(e)) if pure(e, own) => Some(e),
        _ => None,
    }
}

/// Whether `e` is a value and nothing else: a literal, a variable, operators on those, or a
/// helper known to give text or a number (`format_amount(amount)`). `()` is left out, and so
/// is any other call, which may do something.
fn pure(e: &Expr, own: &HashSet<&str>) -> bool {
    match e {
        Expr::StringConstant(..)
        | Expr::InterpolatedString(..)
        | Expr::IntegerConstant(..)
        | Expr::FloatConstant(..)
        | Expr::BoolConstant(..)
        | Expr::CharConstant(..)
        | Expr::Variable(..) => true,
        Expr::DynamicConstant(value, _) => !value.is_unit(),
        // Reading a field or an item (`payload.grade`, `h[0]`); a method call on the right
        // (`list.push(x)`) is not pure.
        Expr::Dot(x, ..) | Expr::Index(x, ..) => pure(&x.lhs, own) && pure(&x.rhs, own),
        Expr::Property(..) => true,
        Expr::Array(items, _) => items.iter().all(|i| pure(i, own)),
        Expr::Map(map, _) => map.0.iter().all(|(_, v)| pure(v, own)),
        Expr::And(operands, _) | Expr::Or(operands, _) => operands.iter().all(|o| pure(o, own)),
        Expr::FnCall(call, _) => {
            let name = call.name.as_str();
            let value = call.op_token.is_some()
                || ((GIVE_STRINGS.contains(&name) || GIVE_NUMBERS.contains(&name))
                    && !own.contains(name));
            value && call.args.iter().all(|a| pure(a, own))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::script::ScriptEngine;

    /// `if c { "reason" }` followed by more statements throws the reason away.
    #[test]
    fn a_value_thrown_away_at_the_end_of_an_if_block_is_a_load_error() {
        let engine = ScriptEngine::new();
        let message = |what: &str, write: &str| {
            let stmt = if what == "a switch arm" {
                "switch"
            } else {
                "if"
            };
            format!("this value at the end of {what} is thrown away: the {stmt} is not the last statement, so the script goes on after it as if the value were not there; to refuse with it, write {write}")
        };
        let reason = r#"return "1회 한도 초과";"#;
        // A number is no answer: the error says what a script may give instead.
        let e = engine
            .compile_script("if amount > 5 { 1 }\ntrue")
            .unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line, e.column),
            ("this value at the end of an if block is thrown away: the if is not the last statement, so the script goes on after it as if the value were not there; a script gives true or () to pass, false or a text to refuse: return one of those, or leave the value out", 1, 17)
        );
        for (src, message, line, column) in [
            (
                "if amount > 1000000 { \"1회 한도 초과\" }\ntrue",
                message("an if block", reason),
                1,
                23,
            ),
            (
                "if amount > 1000000 {\n  \"1회 한도 초과\"\n}\nlet ok = true;\nok",
                message("an if block", reason),
                2,
                3,
            ),
            (
                "if amount < 100 { true } else if amount > 1000000 { \"1회 한도 초과\" }\ntrue",
                message("an if block", "return true;"),
                1,
                19,
            ),
            (
                "if amount > 1000000 { let a = format_amount(amount); \"한도 초과: \" + a + \"원\" }\ntrue",
                message("an if block", "return …;"),
                1,
                54,
            ),
            (
                "if amount > 5 { let n = 1; } else { `한도 초과: ${amount}` }\ntrue",
                message("an if block", "return …;"),
                1,
                37,
            ),
            (
                "for s in [\"a\", \"b\"] {\n  if order_id == s { \"차단\" }\n}\ntrue",
                message("an if block", r#"return "차단";"#),
                2,
                22,
            ),
            (
                "fn check(a) {\n  if a > 5 { \"x\" }\n  true\n}\ncheck(amount)",
                message("an if block", r#"return "x";"#),
                2,
                14,
            ),
            (
                "{\n  if amount > 5 { false }\n}\ntrue",
                message("an if block", "return false;"),
                2,
                19,
            ),
            // Text joined with a field or an item is a value all the same.
            (
                "if amount > 1000000 { \"1회 한도 초과 \" + payload.grade }\ntrue",
                message("an if block", "return …;"),
                1,
                23,
            ),
            (
                "let h = [10, 22];\nif amount > 5 {\n  \"영업시간(\" + h[0] + \"시)\"\n}\ntrue",
                message("an if block", "return …;"),
                3,
                3,
            ),
            (
                "let m = #{a: 1};\nif amount > 5 { m.a }\ntrue",
                message("an if block", "return …;"),
                2,
                17,
            ),
            (
                "switch api { \"v1\" => \"구버전\", _ => () }\ntrue",
                message("a switch arm", r#"return "구버전";"#),
                1,
                22,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message.as_str(), line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                // The script's, a function's or a closure's last statement gives its value.
                "if amount > 1000000 { \"1회 한도 초과\" }",
                "let ok = amount < 5;\nif ok { true } else { \"x\" }",
                "fn check(a) { if a > 5 { \"x\" } else { true } }\ncheck(amount)",
                "let f = |a| if a > 5 { \"x\" } else { true };\nf.call(amount)",
                // An `if` (or a block) whose value is taken.
                "let x = if amount > 5 { \"a\" } else { \"b\" };\nx != \"c\"",
                "let r = { if amount > 5 { \"a\" } else { \"b\" } };\nr",
                "switch api { \"v1\" => if amount > 5 { \"a\" } else { true }, _ => true }",
                "let s = switch api { \"v1\" => { if amount > 5 { \"a\" } else { \"b\" } }, _ => \"c\" };\ns != \"d\"",
                "if amount > 5 { if order_id == \"x\" { \"a\" } else { \"b\" } } else { true }",
                "try { if amount > 5 { \"x\" } else { true } } catch (e) { return \"c\"; }",
                // Returns, calls and assignments do something.
                "if amount > 1000000 { return \"1회 한도 초과\"; }\ntrue",
                "let n = 0;\nif amount > 5 { n += 1; }\nif amount > 6 { print(\"x\") }\nn < 2",
                "let a = [];\nif amount > 5 { a.push(1) }\na.len() < 1",
                "let a = [[1]];\nif amount > 5 { a[0].push(1) }\na.len() < 1",
                "let m = #{a: []};\nif amount > 5 { m.a.push(1) }\ntrue",
                "if amount > 5 { () }\ntrue",
                "switch api { \"v1\" => print(\"v1\"), _ => () }\ntrue",
                "loop { if amount > 5 { break \"x\"; } break true; }",
            ],
        );
    }
}
