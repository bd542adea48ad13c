//! Uses that do not fit the kind of value they are made of, where that kind is known when the
//! rules load: a number method called on text, text compared with a number, a property read
//! from a map that never has it.

use rhai::{ASTFlags, Expr, Position, Stmt, AST};

use super::declared_once;
use super::kinds::{Kind, Names};
use super::results::{last_method, object_of, start};

/// Number methods and the functions that read a number from text, for a hint.
const TEXT_TO_NUMBER: [(&str, &str); 3] = [
    ("to_int", "parse_int"),
    ("to_float", "parse_float"),
    ("to_decimal", "parse_decimal"),
];

/// Each `to_int` (`to_float`, `to_decimal`) called on text: Rhai has them for numbers
/// only, so `order_id.to_int() > 0` compiles and then fails every request ("function not
/// found: to_int (&str | ImmutableString | String)"); `parse_int` reads a number from text.
pub(in crate::script) fn number_method_on_text(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let Some(rhai::ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        let (call, object, at) = match e {
            Expr::Dot(..) => match (last_method(e), object_of(e)) {
                (Some((call, at)), Some(object)) => (call, object, at),
                _ => return true,
            },
            Expr::FnCall(call, at) if call.args.len() == 1 => (&**call, &call.args[0], *at),
            _ => return true,
        };
        let Some((name, instead)) = TEXT_TO_NUMBER.iter().find(|(m, _)| *m == call.name) else {
            return true;
        };
        if names.own(name, matches!(e, Expr::Dot(..))) || names.kind(object) != Some(Kind::String) {
            return true;
        }
        found.push((
            format!("{name} is for numbers, and this is text: write {instead}(…), which reads a number from text"),
            at,
        ));
        true
    });
    found
}

/// Each comparison of text with a number where the kinds are known at load through a
/// variable (the literal cases are [`super::number_compared_with_string`]'s):
/// `const LIMIT = "1000000"; amount > LIMIT`, `let h = seoul_hour(now); h >= "10"`: an error
/// on every request at run time (see `numbers`), so `on_error` would decide every payment.
pub(in crate::script) fn text_compared_with_number(ast: &AST) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    // Text variables declared with a literal, for a message that shows it.
    let literals = declared_once(ast, |value| match value {
        Expr::StringConstant(s, at) => Some((s.to_string(), *at)),
        _ => None,
    });
    // `store_id` is text, or `()` when the request has none: never a number either way.
    let kind = |e: &Expr| match e {
        Expr::Variable(v, ..) if v.1 == "store_id" && names.request("store_id") => {
            Some(Kind::String)
        }
        e => names.kind(e),
    };
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(Expr::FnCall(call, _)))
            | Some(rhai::ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        // `order_id in [1001, 1002]` (Rhai's `contains` on the list), `one_of(order_id, [1001])`:
        // a list of numbers never holds text.
        if let ("contains", [list, item]) | ("one_of", [item, list]) =
            (call.name.as_str(), &call.args[..])
        {
            if !names.own(&call.name, false) && kind(item) == Some(Kind::String) {
                if let Some(at) = only_numbers(list) {
                    let what = match item {
                        Expr::Variable(v, ..) => v.1.to_string(),
                        _ => "the value looked for".to_owned(),
                    };
                    found.push((
                        format!("this list holds only numbers, and {what} is text, which a number never equals: write the items in quotes ([\"1001\", \"1002\"])"),
                        at,
                    ));
                }
            }
            return true;
        }
        if !super::COMPARISONS.contains(&call.name.as_str()) || names.own(&call.name, false) {
            return true;
        }
        let text = match &call.args[..] {
            [a, b] => match (kind(a), kind(b)) {
                (Some(Kind::String), Some(Kind::Number)) => a,
                (Some(Kind::Number), Some(Kind::String)) => b,
                // Text and a character are compared as text (`"x" == 'x'`, a review found;
                // this was refused as never equal): nothing to say.
                _ => return true,
            },
            _ => return true,
        };
        let never = super::NEVER;
        let message = match text {
            Expr::StringConstant(s, _) => super::quoted_number(s),
            Expr::Variable(v, ..) if literals.contains_key(v.1.as_str()) => {
                let (s, at) = &literals[v.1.as_str()];
                format!(
                    "this compares {name}, the string \"{s}\" (line {}), with a number, and {never}: declare {name} without quotes",
                    at.line().unwrap_or(0),
                    name = v.1,
                )
            }
            _ => format!(
                "this is text, and {never}: compare it with text, or read a number from it with parse_int(…)"
            ),
        };
        found.push((message, start(text)));
        true
    });
    found
}

/// Where a list written in the script holds numbers and nothing else: its position.
fn only_numbers(list: &Expr) -> Option<Position> {
    let number = |e: &Expr| matches!(e, Expr::IntegerConstant(..) | Expr::FloatConstant(..));
    match list {
        Expr::Array(items, at) if !items.is_empty() && items.iter().all(number) => Some(*at),
        Expr::DynamicConstant(value, at) => value
            .read_lock::<rhai::Array>()
            .filter(|items| {
                !items.is_empty()
                    && items
                        .iter()
                        .all(|i| i.is_int() || i.is_float() || i.is_decimal())
            })
            .map(|_| *at),
        _ => None,
    }
}

/// Each property read from a string, a number or an array that no such value has:
/// `order_id.length` (JavaScript's) compiles, then fails every request that reads it (`unknown
/// property 'length'`), as only a map has properties of any name. Where the value's kind is
/// known (see [`Names::kind`]), a property no getter of the engine gives (`len`, `is_empty` …)
/// is a load error, with Rhai's name for JavaScript's and Python's (`length` → `len()`).
pub(in crate::script) fn unknown_property(
    ast: &AST,
    known: &super::Functions,
) -> Vec<(String, Position)> {
    let names = Names::of(ast);
    let mut found = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        let Some(rhai::ASTNode::Expr(e @ Expr::Dot(chain, ..))) = path.last() else {
            return true;
        };
        // Only from the head of a chain: Rhai holds `fetched["stock"].body` as `fetched`
        // indexed by `"stock".body` (but `a[b.len]` as `a` indexed by `b.len`, a chain of its
        // own).
        if let [.., rhai::ASTNode::Expr(parent @ (Expr::Dot(outer, ..) | Expr::Index(outer, ..))), _] =
            path
        {
            if std::ptr::eq(&outer.rhs, *e) && !parent.options().contains(ASTFlags::BREAK) {
                return true;
            }
        }
        // Along the chain, with the kind of what each part is read from.
        let mut kind = names.kind(&chain.lhs);
        let mut rest = &chain.rhs;
        loop {
            let (part, next) = match rest {
                Expr::Dot(inner, ..) => (&inner.lhs, Some(&inner.rhs)),
                // What follows an index is read from an item, of a kind not known here.
                Expr::Index(inner, ..) => (&inner.lhs, None),
                part => (part, None),
            };
            match part {
                Expr::Property(prop, at) => {
                    let name = prop.2.as_str();
                    let no_map = matches!(kind, Some(Kind::String | Kind::Number | Kind::Array));
                    if no_map && !known.contains_key(&format!("get${name}")) {
                        let what = kind.map_or("a value", Kind::name);
                        found.push((property_message(what, name, &chain.lhs, known), *at));
                        return true;
                    }
                    kind = (name == "len").then_some(Kind::Number);
                }
                Expr::MethodCall(call, _) => kind = names.call_kind(call, true),
                _ => kind = None,
            }
            match next {
                Some(next) => rest = next,
                None => break,
            }
        }
        true
    });
    found
}

/// What to say of the property `name` read from `what` (`a string`, …), the chain starting at
/// `head`: Rhai's name for JavaScript's or Python's (`length` → `len()`), or the getter closest.
fn property_message(what: &str, name: &str, head: &Expr, known: &super::Functions) -> String {
    let object = match head {
        Expr::Variable(var, ..) => var.1.to_string(),
        Expr::StringConstant(s, _) => format!("\"{s}\""),
        _ => "x".to_owned(),
    };
    let hint = if let Some((_, rhai)) = super::JAVASCRIPT.iter().find(|(js, _)| *js == name) {
        format!("; write {object}.{rhai}()")
    } else {
        let getters = known.keys().filter_map(|k| k.strip_prefix("get$"));
        crate::suggest::closest(name, getters)
            .map_or(String::new(), |c| format!("; did you mean {object}.{c}?"))
    };
    format!("{what} has no property {name}, so reading it fails every request{hint}")
}
