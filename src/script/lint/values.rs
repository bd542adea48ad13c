//! Values that can hold no closure, nor a variable a closure shares: what the cycle check
//! (see [`super::cycles`]) lets a script write into a variable a closure captured, since such
//! a write cannot make a closure hold itself.

use std::collections::HashSet;

use rhai::{ASTNode, BinaryExpr, Expr, OpAssignment, Stmt, AST};

use super::race::{closure_literal, methods_of};

/// What the check knows of a script's variables.
pub(in crate::script) trait Known {
    /// Whether the variable `name` never holds a closure.
    fn data(&self, name: &str) -> bool;
    /// The closure the variable `name` holds, if it is given one closure and nothing else: its
    /// function's name and the variables it captures.
    fn closure(&self, name: &str) -> Option<(String, Vec<String>)>;
    /// Whether `name` is the engine's function (none of the script's, nor `call` or `Fn`): one
    /// that gives values holding no closure when given such values.
    fn engine_function(&self, name: &str) -> bool;
    /// Whether the closure `closure` gives values that hold no closure (see
    /// [`closure_gives_data`]).
    fn gives_data(&self, closure: &Expr) -> bool;
}

/// Nothing known of the variables: none counts as holding no closure (constants still do).
pub(in crate::script) struct Unknown;

impl Known for Unknown {
    fn data(&self, _: &str) -> bool {
        false
    }
    fn closure(&self, _: &str) -> Option<(String, Vec<String>)> {
        None
    }
    fn engine_function(&self, _: &str) -> bool {
        false
    }
    fn gives_data(&self, _: &Expr) -> bool {
        false
    }
}

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
/// into one); a variable [`Known::data`] names (a request variable, whose values come from
/// JSON, or one the cycle check found only ever given such values); a property or item of such
/// a value, or what the engine's functions give of such values (`payload.items[0].price`,
/// `items.len()`, `parse_int(x)`); `a ?? b`, `a + b`, a list or a map literal made of such
/// values.
pub(in crate::script) fn holds_no_closure(e: &Expr, known: &dyn Known) -> bool {
    let all = |items: Vec<&Expr>| items.into_iter().all(|e| holds_no_closure(e, known));
    match e {
        _ if scalar(e) => true,
        Expr::DynamicConstant(value, _) => no_function_in(value),
        Expr::Variable(var, ..) => known.data(var.1.as_str()),
        // The engine's methods of such a value, given such values, give such values too
        // (`items.len()`, `order_id.to_upper()`): they make no closure, and it holds none
        // for them to give back.
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => {
            holds_no_closure(&chain.lhs, known)
                && methods_of(e)
                    .iter()
                    .all(|(call, _)| engine_call(call, 0, known))
        }
        Expr::FnCall(call, _) if !call.is_operator_call() => engine_call(call, 1, known),
        Expr::Coalesce(sides, _) => all(sides.iter().collect()),
        Expr::FnCall(call, _) if call.is_operator_call() && call.name == "+" => {
            all(call.args.iter().collect())
        }
        Expr::Array(items, _) => all(items.iter().collect()),
        Expr::Map(map, _) => all(map.0.iter().map(|(_, value)| value).collect()),
        // An `if`, `switch` or `{ … }` giving such values (`limit = if vip { 5000000 } else {
        // 1000000 }`, refused in a trial); not a closure that captures (a block sharing them).
        Expr::Stmt(block) if !block.iter().any(|s| matches!(s, Stmt::Share(..))) => {
            let mut ends = Vec::new();
            super::results::ends_of_block(block, &mut ends);
            ends.iter().all(|end| match end {
                super::results::Value::Expr(e) => holds_no_closure(e, known),
                super::results::Value::Nothing(_) => true,
                super::results::Value::Call(..) => false,
            })
        }
        _ => false,
    }
}

/// The engine's functions that call the closure they are given first (after the object, for a
/// method) with the object's items, and give back only those items, indices or what the
/// closure gives — never the closure itself. (`reduce`'s second argument, its starting value,
/// may be given back as it is: it must hold no closure.)
const CALLBACKS: [&str; 15] = [
    "map",
    "filter",
    "some",
    "all",
    "find",
    "find_map",
    "reduce",
    "reduce_rev",
    "index_of",
    "sort",
    "sort_desc",
    "dedup",
    "retain",
    "drain",
    "for_each",
];

/// A call of the engine's function whose arguments hold no closure, but for a callback of
/// [`CALLBACKS`] (at `callback`: 0 for a method, 1 for a function's) that gives none and reads
/// no `this` (`map(|x| x.sku)`, `filter(|x| x.qty > 1)`). Any other closure argument may be
/// given back.
fn engine_call(call: &rhai::FnCallExpr, callback: usize, known: &dyn Known) -> bool {
    let name = call.name.as_str();
    known.engine_function(name)
        && call.args.iter().enumerate().all(|(i, arg)| {
            holds_no_closure(arg, known)
                || (i == callback && CALLBACKS.contains(&name) && known.gives_data(arg))
        })
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
    known: &dyn Known,
) -> bool {
    match assign.0.get_op_assignment_info() {
        Some((.., op_assign, _, _)) if op_assign != "+=" => true,
        _ => holds_no_closure(&assign.1.rhs, known),
    }
}

/// Whether the closure `arg` (given to `map`) gives values that hold no closure when called
/// with such values: a closure (written there, or a variable's one closure) that captures only
/// variables that hold none and, in its body, makes no closure or function pointer, reads no
/// `this` and calls neither `call` nor a function of the script's (which may give back
/// anything). The rest of what it can read or call — its parameters, what it captured, the
/// engine's functions of those — holds none.
pub(in crate::script) fn closure_gives_data(ast: &AST, arg: &Expr, known: &dyn Known) -> bool {
    let closure = match (closure_literal(arg), arg) {
        (Some((name, captured)), _) => (name, captured.into_iter().map(|(v, _)| v).collect()),
        (None, Expr::Variable(var, ..)) => match known.closure(var.1.as_str()) {
            Some(closure) => closure,
            None => return false,
        },
        _ => return false,
    };
    let (name, captured): (String, Vec<String>) = closure;
    if !captured.iter().all(|var| known.data(var)) {
        return false;
    }
    let Some((_, body)) = super::each_function(ast).find(|(f, _)| f.name == name) else {
        return false;
    };
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let mut plain = true;
    let mut on_node = |path: &[ASTNode]| {
        plain = match path.last() {
            Some(ASTNode::Expr(e)) if closure_literal(e).is_some() => false,
            Some(ASTNode::Expr(Expr::ThisPtr(..))) => false,
            Some(ASTNode::Expr(Expr::DynamicConstant(value, _))) => no_function_in(value),
            Some(
                ASTNode::Expr(Expr::FnCall(call, _) | Expr::MethodCall(call, _))
                | ASTNode::Stmt(Stmt::FnCall(call, _)),
            ) => {
                !matches!(call.name.as_str(), "Fn" | "call" | "curry")
                    && !own.contains(call.name.as_str())
            }
            _ => true,
        };
        plain
    };
    body.walk(&mut on_node);
    plain
}
