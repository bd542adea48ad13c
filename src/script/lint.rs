//! Checks of a compiled expression or script for slips that Rhai accepts and that would change
//! decisions without a word.
//!
//! Rhai answers a comparison between a number and a string `false` (`true` for `!=`) instead of
//! failing: `amount > "1000000"` never holds, so a rule guarded by it never applies, and
//! `require: 'amount < "1000000"'` refuses every payment. Such a comparison can only be told
//! apart from a meaningful one where the types are known when the rules load: a string literal
//! against a number literal, `amount`, `now`, or arithmetic. Caught there, it is a load error at
//! the string. (Making it a run-time error instead would mean turning off Rhai's fast operators,
//! which made the 20-rule Rhai benchmark half again as slow.)

use rhai::{ASTNode, Expr, Position, Stmt, AST};

/// Comparison operators, as Rhai names the functions behind them.
const COMPARISONS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];
/// Arithmetic, whose result is a number whenever a number is involved.
const ARITHMETIC: [&str; 5] = ["+", "-", "*", "/", "%"];
/// Request variables that are always numbers.
const NUMBERS: [&str; 2] = ["amount", "now"];

/// The first comparison of a string literal with a number in `ast`: its message and position.
pub(super) fn number_compared_with_string(ast: &AST) -> Option<(String, Position)> {
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        // A call at the top of an expression or script is a statement.
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        if call.args.len() != 2 || !COMPARISONS.contains(&call.name.as_str()) {
            return true;
        }
        let (a, b) = (&call.args[0], &call.args[1]);
        let hit = match (a, b) {
            (Expr::StringConstant(s, at), other) | (other, Expr::StringConstant(s, at))
                if is_number(other) =>
            {
                Some((s, *at))
            }
            _ => None,
        };
        match hit {
            Some((s, at)) => {
                found = Some((
                    format!(
                        "\"{s}\" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"
                    ),
                    at,
                ));
                false
            }
            None => true,
        }
    });
    found
}

/// Whether `e` is a number whatever the request: a number literal, `amount`, `now`, or
/// arithmetic on numbers only (`"…" + amount` is a string).
fn is_number(e: &Expr) -> bool {
    match e {
        Expr::IntegerConstant(..) | Expr::FloatConstant(..) => true,
        Expr::DynamicConstant(value, _) => value.is_int() || value.is_float() || value.is_decimal(),
        Expr::Variable(var, ..) => NUMBERS.contains(&var.1.as_str()),
        Expr::FnCall(call, _) => {
            ARITHMETIC.contains(&call.name.as_str()) && call.args.iter().all(is_number)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::script::ScriptEngine;

    /// Each slip is an error at its string; comparisons whose types are not known at load, and
    /// strings compared with strings, are left alone.
    #[test]
    fn a_string_compared_with_a_number_is_a_load_error_at_the_string() {
        let engine = ScriptEngine::new();
        for (src, column) in [
            (r#"amount > "1000000""#, 10),
            (r#""1000000" <= amount"#, 1),
            (r#"order_id.starts_with("vip-") && amount * 2 != "0""#, 47),
            (r#"now >= "1764550800000""#, 8),
            (r#"amount == "5000""#, 11),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message
                    .contains("is a string, and a number compared with a string"),
                "{src}: {e:?}"
            );
            assert_eq!((e.line, e.column), (1, column), "{src}");
        }
        let script = "let limit = 1000000;\nif amount > \"1000000\" { return false; }\ntrue\n";
        let e = engine.compile_script(script).unwrap_err();
        assert_eq!((e.line, e.column), (2, 13), "{e:?}");
        for fine in [
            r#"order_id == "1000000""#,
            r#"payload.level == "gold""#,
            r#""x" + amount != "x0""#,
            r#"amount > 1000000"#,
            r#"fetched["stock"].body.available >= 1"#,
        ] {
            engine
                .compile_expression(fine, &[])
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
    }
}
