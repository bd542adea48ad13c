//! Values that can hold no closure, nor a variable a closure shares: what the cycle check
//! (see [`super::cycles`]) lets a script write into a variable a closure captured, since such
//! a write cannot make a closure hold itself.

use rhai::{BinaryExpr, Expr, OpAssignment};

use super::race::methods_of;

/// Operators that give a number, text or a boolean whatever they are given (or fail): none
/// gives a list or a map, so their value holds no closure. (`+` is apart: two lists or two
/// maps make one.) Scripts cannot define operators.
const SCALAR_OPERATORS: [&str; 17] = [
    "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "<", ">", "<=", ">=", "==", "!=", "!",
];

/// Whether the value of `e` is certainly a number, text, a character, a boolean or `()`: a
/// literal, an interpolated string, `&&`/`||`, an operator of [`SCALAR_OPERATORS`], or `+` with
/// such a value on either side (text and anything make text; a number and a list fail).
fn scalar(e: &Expr) -> bool {
    match e {
        Expr::IntegerConstant(..)
        | Expr::FloatConstant(..)
        | Expr::StringConstant(..)
        | Expr::CharConstant(..)
        | Expr::BoolConstant(..)
        | Expr::Unit(..)
        | Expr::InterpolatedString(..)
        | Expr::And(..)
        | Expr::Or(..) => true,
        Expr::FnCall(call, _) if call.is_operator_call() => match call.name.as_str() {
            "+" => call.args.iter().any(scalar),
            name => SCALAR_OPERATORS.contains(&name),
        },
        _ => false,
    }
}

/// Whether the value of `e` can hold no closure, nor a variable a closure shares: a
/// [`scalar`]; a constant with no function pointer in it (a list or map of constants is folded
/// into one); a variable `data` names (a request variable, whose values come from JSON, or
/// one the cycle check found only ever given such values); a property or item of such a value
/// (`payload.items[0].price`; no method call on the way); `a ?? b`, `a + b`, a list or a map
/// literal made of such values.
pub(in crate::script) fn holds_no_closure(e: &Expr, data: &dyn Fn(&str) -> bool) -> bool {
    let all = |items: Vec<&Expr>| items.into_iter().all(|e| holds_no_closure(e, data));
    match e {
        _ if scalar(e) => true,
        Expr::DynamicConstant(value, _) => no_function_in(value),
        Expr::Variable(var, ..) => data(var.1.as_str()),
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => {
            methods_of(e).is_empty() && holds_no_closure(&chain.lhs, data)
        }
        Expr::Coalesce(sides, _) => all(sides.iter().collect()),
        Expr::FnCall(call, _) if call.is_operator_call() && call.name == "+" => {
            all(call.args.iter().collect())
        }
        Expr::Array(items, _) => all(items.iter().collect()),
        Expr::Map(map, _) => all(map.0.iter().map(|(_, value)| value).collect()),
        _ => false,
    }
}

fn no_function_in(value: &rhai::Dynamic) -> bool {
    if value.is_fnptr() {
        return false;
    }
    if let Some(list) = value.read_lock::<rhai::Array>() {
        return list.iter().all(no_function_in);
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return map.values().all(no_function_in);
    }
    true
}

/// Whether what an assignment writes can hold no closure: `x = 3`, `total += i.price * i.qty`,
/// `left -= x.price` (an operator of [`SCALAR_OPERATORS`] gives no list or map, whatever `x.price`
/// is). `+=` adds its value to a list (or a map, or text), so that value must hold none.
pub(in crate::script) fn assignment_holds_no_closure(
    assign: &(OpAssignment, BinaryExpr),
    data: &dyn Fn(&str) -> bool,
) -> bool {
    match assign.0.get_op_assignment_info() {
        Some((.., op_assign, _, _)) if op_assign != "+=" => true,
        _ => holds_no_closure(&assign.1.rhs, data),
    }
}
