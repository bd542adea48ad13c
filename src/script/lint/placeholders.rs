//! Text in a script written as if Rhai filled it in: a reason template's `{amount}`, or a
//! `${amount}` inside double quotes. Rhai fills in `${…}` only in a backtick string, so the
//! buyer would be shown the braces as written.

use std::collections::HashSet;

use rhai::{ASTNode, Expr, Position, Stmt, AST};

use super::results::{script_results, Value};
use crate::script::REQUEST_VARS;

/// Each string literal a script returns (or throws, or fails with, or ends with), alone,
/// joined with `+` or in a backtick string, holding `${…}` (written in double quotes) or a
/// reason template's placeholder of a request variable (`{amount}`). Text used otherwise may
/// hold braces on purpose: a template the script fills in itself (`tpl.replace("{amount}",
/// …)`).
pub(in crate::script) fn placeholder_in_text(ast: &AST) -> Vec<(String, Position)> {
    // The text the script ends with (a review: `…\n"한도 초과 ({amount}원)"` was let through).
    let mut at_end = HashSet::new();
    for value in script_results(ast) {
        if let Value::Expr(e) = value {
            text_of(e, &mut at_end);
        }
    }
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::StringConstant(text, at))) = path.last() else {
            return true;
        };
        if !given_as_reason(path) && !at_end.contains(at) {
            return true;
        }
        let message = if let Some(name) = dollar_braced(text) {
            format!("${{{name}}} is not filled in inside double quotes: Rhai fills in ${{…}} only in a backtick string, so write `…${{{name}}}…` with backticks")
        } else if let Some(name) = braced(text, "{").filter(|n| {
            let head = n.split(['.', '[']).next().unwrap_or_default();
            REQUEST_VARS.contains(&head) || head == "response"
        }) {
            format!("{{{name}}} is a reason template's placeholder, which a script's text is not: the buyer would see it as written; write `…${{{name}}}…` in a backtick string, which Rhai fills in (format_amount(amount) for an amount with separators)")
        } else {
            return true;
        };
        found.push((message, *at));
        true
    });
    found
}

/// The places of the string literals `e` is made of: itself, the parts joined with `+`, the
/// text of a backtick string.
fn text_of(e: &Expr, out: &mut HashSet<Position>) {
    match e {
        Expr::StringConstant(_, at) => {
            out.insert(*at);
        }
        Expr::FnCall(call, _) if call.name == "+" => {
            call.args.iter().for_each(|a| text_of(a, out));
        }
        Expr::InterpolatedString(parts, _) => parts.iter().for_each(|p| text_of(p, out)),
        _ => {}
    }
}

/// Whether the node at the end of `path` is what a `return` or `throw` gives, or what `fail`
/// is called with, itself, joined with `+` or in a backtick string.
fn given_as_reason(path: &[ASTNode]) -> bool {
    for node in path.iter().rev().skip(1) {
        match node {
            ASTNode::Expr(Expr::FnCall(call, _)) if call.name == "+" => continue,
            ASTNode::Expr(Expr::InterpolatedString(..)) => continue,
            ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)) => {
                return call.name == "fail";
            }
            ASTNode::Stmt(Stmt::Return(..)) => return true,
            _ => return false,
        }
    }
    false
}

/// What is between the first `${` and the `}` after it, whatever it is: in double quotes it is
/// never filled in, a call (`${format_amount(amount)}`, the form the README shows) no more than
/// a name.
fn dollar_braced(text: &str) -> Option<&str> {
    let after = &text[text.find("${")? + 2..];
    let inner = &after[..after.find('}')?];
    (!inner.trim().is_empty() && !inner.contains('\n')).then_some(inner)
}

/// The name between the first `open` (`{`) and the `}` after it, when it is a plain
/// name or a path of names (`amount`, `response.body.seat`).
fn braced<'t>(text: &'t str, open: &str) -> Option<&'t str> {
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            let is_path = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
                && !name.starts_with(|c: char| c.is_ascii_digit() || c == '.');
            if is_path {
                return Some(name);
            }
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::script::tests::assert_refused;
    use crate::script::ScriptEngine;

    #[test]
    fn a_placeholder_rhai_does_not_fill_in_is_a_load_error() {
        let engine = ScriptEngine::new();
        assert_refused(
            &engine,
            "if amount > 1000000 { return \"한도 초과 (요청: {amount}원)\"; }\ntrue",
            "{amount} is a reason template's placeholder, which a script's text is not: the buyer would see it as written; write `…${amount}…` in a backtick string, which Rhai fills in (format_amount(amount) for an amount with separators)",
            1,
            30,
        );
        assert_refused(
            &engine,
            "if amount > 1000000 { fail(\"한도 \" + \"{amount}\"); }\ntrue",
            "{amount} is a reason template's placeholder, which a script's text is not: the buyer would see it as written; write `…${amount}…` in a backtick string, which Rhai fills in (format_amount(amount) for an amount with separators)",
            1,
            36,
        );
        assert_refused(
            &engine,
            "if amount > 1000000 {\n  return \"주문 ${order_id}: 한도 초과\";\n}\ntrue",
            "${order_id} is not filled in inside double quotes: Rhai fills in ${…} only in a backtick string, so write `…${order_id}…` with backticks",
            2,
            10,
        );
        // A trial: a call, the form the README shows, was let through.
        assert_refused(
            &engine,
            "if amount > 1000000 { return \"한도 초과 (${format_amount(amount)}원)\"; }\ntrue",
            "${format_amount(amount)} is not filled in inside double quotes: Rhai fills in ${…} only in a backtick string, so write `…${format_amount(amount)}…` with backticks",
            1,
            30,
        );
        // Review: the text a script ends with, and the text of a backtick string, were let
        // through.
        assert_refused(
            &engine,
            "if amount <= 1000000 { return true; }\n\"1회 한도 초과 (요청: {amount}원)\"",
            "{amount} is a reason template's placeholder, which a script's text is not: the buyer would see it as written; write `…${amount}…` in a backtick string, which Rhai fills in (format_amount(amount) for an amount with separators)",
            2,
            1,
        );
        assert_refused(
            &engine,
            "if amount > 1000000 { return `주문 ${order_id}: {amount}원 초과`; }\ntrue",
            "{amount} is a reason template's placeholder, which a script's text is not: the buyer would see it as written; write `…${amount}…` in a backtick string, which Rhai fills in (format_amount(amount) for an amount with separators)",
            1,
            45,
        );
        for fine in [
            "if amount > 1000000 { return `한도 초과 (요청: ${format_amount(amount)}원)`; }\ntrue",
            "if amount > 1000000 { return `주문 ${order_id}: 한도 초과`; }\ntrue",
            // Braces that are no placeholder of a request value.
            "let s = \"{}\"; let t = \"{grade}\"; let u = \"{ amount }\"; s != t && t != u",
            // A template the script fills in itself.
            "let tpl = \"한도 초과 (요청: {amount}원)\";\ntpl.replace(\"{amount}\", format_amount(amount));\nif amount > 1000000 { return tpl; }\ntrue",
        ] {
            engine
                .compile_script(fine)
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
    }
}
