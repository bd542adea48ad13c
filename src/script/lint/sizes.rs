//! Literals beyond what a value holds: a list or map literal holding more text than the
//! sandbox lets a value hold, and a number literal too large for a number.
//!
//! Rhai counts the text of every string in a list (or map, nested ones included) together
//! against its one string limit. A literal over it fails every time it is built — on every
//! request, when `on_error` refuses every payment — though each string in it is short: a VIP
//! list of 9,000 eight-character ids. (Rhai itself refuses a literal with too many items.)

use rhai::{ASTNode, Dynamic, Expr, Position, AST};

use crate::script::MAX_STRING_SIZE;

/// Each list or map literal in `ast` whose strings hold more text than the string limit.
pub(in crate::script) fn literal_too_large(ast: &AST) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        let what = match e {
            Expr::Array(..) => "list",
            Expr::Map(..) => "map",
            Expr::DynamicConstant(value, _) if value.is_array() => "list",
            Expr::DynamicConstant(value, _) if value.is_map() => "map",
            _ => return true,
        };
        let text = text_of(e);
        if text <= MAX_STRING_SIZE {
            return true;
        }
        found.push((
            format!(
                "the strings of this {what} hold {} KiB of text, and Rhai counts a {what}'s text together against its {} KiB string limit, so building it would fail on every request; keep each {what} under {} KiB of text (split a long list of ids into several)",
                text.div_ceil(1024),
                MAX_STRING_SIZE / 1024,
                MAX_STRING_SIZE / 1024
            ),
            e.position(),
        ));
        true
    });
    found
}

/// Each number literal beyond the largest number (about 1.8e308), which Rhai reads as infinity
/// without a word: `amount < 1e400` then holds for every payment, and `amount > 1e400` for none.
/// An infinity computed from constants (`1.0 / 0.0`, folded into one at load) is meant.
pub(in crate::script) fn number_too_large(ast: &AST, src: &str) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::FloatConstant(f, at))) = path.last() {
            if !f.is_finite() && written_infinite(src, *at) {
                found.push((
                    "this number is larger than any a number can hold (about 1.8e308), so it is read as infinity, which every amount is below; write the limit you mean".to_owned(),
                    *at,
                ));
            }
        }
        true
    });
    found
}

/// Whether the text at `at` in `src` is a number literal (a sign before it allowed) too large
/// for a float.
fn written_infinite(src: &str, at: Position) -> bool {
    let Some(offset) = super::char_offset(src, at) else {
        return false;
    };
    let mut literal = String::new();
    let rest = src.chars().skip(offset);
    for c in rest.skip_while(|c| matches!(c, '-' | '+') || c.is_whitespace()) {
        let exponent_sign = matches!(c, '+' | '-') && literal.ends_with(['e', 'E']);
        if c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E') || exponent_sign {
            literal.push(c);
        } else if c != '_' {
            break;
        }
    }
    literal.parse::<f64>().is_ok_and(f64::is_infinite)
}

/// Bytes of string text in a literal, its nested literals included (what Rhai counts).
fn text_of(e: &Expr) -> usize {
    match e {
        Expr::StringConstant(s, _) => s.len(),
        Expr::Array(items, _) => items.iter().map(text_of).sum(),
        Expr::Map(map, _) => map.0.iter().map(|(_, v)| text_of(v)).sum::<usize>() + text_in(&map.1),
        Expr::DynamicConstant(value, _) => text_in_value(value),
        _ => 0,
    }
}

fn text_in(map: &std::collections::BTreeMap<rhai::Identifier, Dynamic>) -> usize {
    map.values().map(text_in_value).sum()
}

fn text_in_value(value: &Dynamic) -> usize {
    if let Ok(s) = value.as_immutable_string_ref() {
        return s.len();
    }
    if let Ok(items) = value.as_array_ref() {
        return items.iter().map(text_in_value).sum();
    }
    if let Ok(map) = value.as_map_ref() {
        return map.values().map(text_in_value).sum();
    }
    0
}

#[cfg(test)]
mod tests {
    use crate::script::tests::{assert_refused, run_unchecked};
    use crate::script::ScriptEngine;

    /// `1e400` is read as infinity: refused where it is written, in expressions and scripts.
    #[test]
    fn a_number_literal_beyond_every_number_is_a_load_error() {
        let engine = ScriptEngine::new();
        for src in [
            "amount < 1e400",
            "amount > -1e400",
            "amount < 1_0e3_99",
            "amount < 1.5E+400",
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message
                    .starts_with("this number is larger than any a number can hold"),
                "{src}: {e:?}"
            );
        }
        let e = engine
            .compile_script("let limit = 1e999;\namount < limit")
            .unwrap_err();
        assert_eq!((e.line, e.column), (1, 13), "{e:?}");
        assert!(engine.compile_expression("amount < 1.7e308", &[]).is_ok());
        // An infinity computed is one meant.
        assert!(engine.compile_expression("amount < 1.0 / 0.0", &[]).is_ok());
    }

    /// 9,000 ids of eight characters: 72 KB of text, short strings all. Refused at the list,
    /// where running it fails on every request; 7,000 of them load and run.
    #[test]
    fn a_list_literal_over_the_text_limit_is_a_load_error() {
        let engine = ScriptEngine::new();
        let script = |n: usize| {
            let ids: Vec<String> = (0..n).map(|i| format!("\"c-{i:06}\"")).collect();
            format!(
                "const VIPS = [{}];\nif amount > 1000000 && !(order_id in VIPS) {{ return \"한도 초과\"; }}\ntrue",
                ids.join(",")
            )
        };
        assert_refused(
            &engine,
            &script(9000),
            "the strings of this list hold 71 KiB of text, and Rhai counts a list's text together against its 64 KiB string limit, so building it would fail on every request; keep each list under 64 KiB of text (split a long list of ids into several)",
            1,
            14,
        );
        let ran = run_unchecked(&engine, &script(9000));
        assert!(ran.unwrap_err().contains("too large"));
        let fits = script(7000);
        engine.compile_script(&fits).unwrap();
        assert!(run_unchecked(&engine, &fits).is_ok());
        // A map's values count the same way, nested ones too.
        let long = "x".repeat(40_000);
        assert_refused(
            &engine,
            &format!("let m = #{{a: \"{long}\", b: [\"{long}\"]}};\nm.len() > 0"),
            "the strings of this map hold 79 KiB of text, and Rhai counts a map's text together against its 64 KiB string limit, so building it would fail on every request; keep each map under 64 KiB of text (split a long list of ids into several)",
            1,
            9,
        );
    }
}
