//! What kind of value an expression gives, where that is known when the rules load: a
//! literal, a request variable, arithmetic, a call known to give one kind, a variable declared
//! once with such a value; and which calls change their object in place and give `()`.

use std::collections::HashSet;

use rhai::{Dynamic, Expr, FnCallExpr, Position, StmtBlock, AST};

use super::results::{ends_of_block, last_method, object_of, Value};

use super::{
    declared_alike, declared_names, is_number, map_properties, request_numbers, Properties,
    ARITHMETIC,
};

/// A kind of value that is no condition and no script result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Number,
    String,
    /// `'x'`: one character, which Rhai finds equal to a string of that one character only.
    Char,
    Array,
    Map,
    Unit,
    Bool,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Char => "a character",
            Kind::Array => "an array",
            Kind::Map => "a map",
            Kind::Unit => "()",
            Kind::Bool => "true or false",
        }
    }

    /// What an in-place method changes, when its object is of this kind.
    pub(super) fn noun(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Char => "character",
            Kind::Array => "array",
            Kind::Map => "map",
            Kind::Unit => "value",
            Kind::Bool => "boolean",
        }
    }

    fn of(value: &Dynamic) -> Option<Kind> {
        if value.is_int() || value.is_float() || value.is_decimal() {
            Some(Kind::Number)
        } else if value.is_string() {
            Some(Kind::String)
        } else if value.is_char() {
            Some(Kind::Char)
        } else if value.is_array() {
            Some(Kind::Array)
        } else if value.is_map() {
            Some(Kind::Map)
        } else if value.is_unit() {
            Some(Kind::Unit)
        } else if value.is_bool() {
            Some(Kind::Bool)
        } else {
            None
        }
    }
}

/// Functions that give a number whatever they are called on (Rhai's and our helpers'; every
/// one of their versions gives a number, or fails).
pub(super) const GIVE_NUMBERS: [&str; 16] = [
    "len",
    "index_of",
    "to_int",
    "to_float",
    "to_decimal",
    "parse_int",
    "parse_float",
    "abs",
    "sign",
    "floor",
    "ceiling",
    "round",
    "sqrt",
    "seoul_hour",
    "seoul_minute",
    "seoul_at",
];
/// Functions that give a string.
pub(super) const GIVE_STRINGS: [&str; 12] = [
    "to_string",
    "to_debug",
    "to_json",
    "to_upper",
    "to_lower",
    "sub_string",
    "seoul_date",
    "seoul_time",
    "seoul_weekday",
    "format_amount",
    "before",
    "after",
];
/// Functions that give an array (`split` of a blob gives a blob, an array of bytes).
const GIVE_ARRAYS: [&str; 3] = ["keys", "values", "split"];

/// Rhai's methods that change their object in place and give `()` (every version of each, in
/// Rhai 1.27: `remove` is not here, as it gives the removed item of an array or map), with
/// what they change when the object is not known.
pub(super) const IN_PLACE: [(&str, &str); 21] = [
    ("trim", "string"),
    ("make_upper", "string"),
    ("make_lower", "string"),
    ("replace", "string"),
    ("crop", "string"),
    ("pad", "string or array"),
    ("truncate", "string or array"),
    ("clear", "value"),
    ("append", "string or array"),
    ("push", "array"),
    ("insert", "array"),
    ("reverse", "array"),
    ("sort", "array"),
    ("sort_desc", "array"),
    ("dedup", "array"),
    ("chop", "array"),
    ("splice", "array"),
    ("mixin", "map"),
    ("fill_with", "map"),
    ("set_bit", "number"),
    ("set_bits", "number"),
];

/// What the names in an expression or script mean: the request's variables unless the script
/// declares its own, Rhai's functions unless it defines its own (or calls a map's function
/// property as a method).
pub(super) struct Names {
    numbers: Vec<&'static str>,
    declared: HashSet<String>,
    functions: HashSet<String>,
    properties: Properties,
    /// Variables declared once with a value of a known kind and never assigned again (`let
    /// limit = 1000000;`), or only assigned values of that kind, whose kind is then that
    /// value's wherever they are read.
    constants: std::collections::HashMap<String, Kind>,
}

/// An in-place method whose `()` is a result.
pub(super) struct InPlace {
    pub(super) name: &'static str,
    /// What it changes (`string`, `array`, …).
    pub(super) noun: &'static str,
    /// Whether it was given arguments (`replace("a", "b")`).
    pub(super) args: bool,
    pub(super) at: Position,
}

impl Names {
    pub(super) fn of(ast: &AST) -> Names {
        let mut names = Names {
            numbers: request_numbers(ast),
            declared: declared_names(ast),
            functions: ast.iter_functions().map(|f| f.name.to_owned()).collect(),
            properties: map_properties(ast, &super::values::Unknown),
            constants: std::collections::HashMap::new(),
        };
        // A variable's kind from what it is declared with, by the names known without them.
        // Assigned again with values of the same kind, it is still that kind (a trial's VIP
        // limit, `limit = 5000000` in an if, ended the script as a number).
        let constants = declared_alike(ast, |value| names.kind(value));
        names.constants = constants;
        names
    }

    /// Whether the script gives `name` a meaning of its own: its own `fn`, or (called as a
    /// method) a map's function property (`obj.len()` calls the function held by `obj.len`).
    pub(super) fn own(&self, name: &str, method: bool) -> bool {
        self.functions.contains(name) || (method && self.properties.may_hold(name))
    }

    /// The request variable `name` is, when the script has no `name` of its own.
    pub(super) fn request(&self, name: &str) -> bool {
        super::super::REQUEST_VARS.contains(&name) && !self.declared.contains(name)
    }

    /// The kind `e` gives whatever the request, when it is one of [`Kind`]'s; `None` when it
    /// may be true or false, or is not known here.
    pub(super) fn kind(&self, e: &Expr) -> Option<Kind> {
        if is_number(e, &self.numbers) {
            return Some(Kind::Number);
        }
        match e {
            Expr::StringConstant(..) | Expr::InterpolatedString(..) => Some(Kind::String),
            Expr::CharConstant(..) => Some(Kind::Char),
            Expr::IntegerConstant(..) | Expr::FloatConstant(..) => Some(Kind::Number),
            Expr::Unit(..) => Some(Kind::Unit),
            Expr::BoolConstant(..) => Some(Kind::Bool),
            Expr::Array(..) => Some(Kind::Array),
            Expr::Map(..) => Some(Kind::Map),
            Expr::DynamicConstant(value, _) => Kind::of(value),
            Expr::Variable(var, ..) => match var.1.as_str() {
                name @ ("order_id" | "tx_id" | "api") if self.request(name) => Some(Kind::String),
                name @ ("payload" | "fetched") if self.request(name) => Some(Kind::Map),
                "response" if !self.declared.contains("response") => Some(Kind::Map),
                name => self.constants.get(name).copied(),
            },
            Expr::FnCall(call, _) => self.call_kind(call, false),
            Expr::Dot(..) | Expr::Index(..) => {
                last_method(e).and_then(|(call, _)| self.call_kind(call, true))
            }
            Expr::Stmt(block) => self.block_kind(block),
            _ => None,
        }
    }

    /// The kind a call gives: arithmetic (a string with `+` makes a string), a function known to
    /// give one kind. A script's own function may give anything.
    pub(super) fn call_kind(&self, call: &FnCallExpr, method: bool) -> Option<Kind> {
        let name = call.name.as_str();
        if ARITHMETIC.contains(&name) {
            let kinds: Vec<Option<Kind>> = call.args.iter().map(|a| self.kind(a)).collect();
            // `-`, `*`, `/` and `%` give a number from a number and anything they take (or
            // fail): `amount - price`, with `price` from a map. `+` may make text of one.
            let number = kinds.iter().all(|k| *k == Some(Kind::Number))
                || (name != "+" && kinds.contains(&Some(Kind::Number)));
            return if name == "+" && kinds.contains(&Some(Kind::String)) {
                Some(Kind::String)
            } else if number {
                Some(Kind::Number)
            } else {
                None
            };
        }
        if self.own(name, method) {
            return None;
        }
        if GIVE_NUMBERS.contains(&name) {
            Some(Kind::Number)
        } else if GIVE_STRINGS.contains(&name) {
            Some(Kind::String)
        } else if GIVE_ARRAYS.contains(&name) {
            Some(Kind::Array)
        } else {
            None
        }
    }

    /// The kind every way out of `if`/`switch` gives (all of them the same).
    fn block_kind(&self, block: &StmtBlock) -> Option<Kind> {
        let mut ends = Vec::new();
        ends_of_block(block, &mut ends);
        let mut kinds = ends.iter().map(|v| self.value_kind(*v));
        let first = kinds.next()??;
        kinds.all(|k| k == Some(first)).then_some(first)
    }

    pub(super) fn value_kind(&self, value: Value) -> Option<Kind> {
        match value {
            Value::Expr(e) => self.kind(e),
            Value::Call(call, _) => self.call_kind(call, false),
            Value::Nothing(_) => Some(Kind::Unit),
        }
    }

    /// The method of `IN_PLACE` that `value` calls last, if any, with what it changes: the
    /// object's kind when known, else what the method changes.
    pub(super) fn in_place(&self, value: Value) -> Option<InPlace> {
        let (call, object, at, method) = match value {
            Value::Expr(e @ (Expr::Dot(..) | Expr::Index(..))) => {
                let (call, at) = last_method(e)?;
                (call, object_of(e), at, true)
            }
            Value::Expr(Expr::FnCall(call, at)) => (&**call, call.args.first(), *at, false),
            Value::Call(call, at) => (call, call.args.first(), at, false),
            _ => return None,
        };
        if self.own(&call.name, method) {
            return None;
        }
        let &(name, noun) = IN_PLACE.iter().find(|(m, _)| *m == call.name)?;
        let noun = match object.and_then(|o| self.kind(o)) {
            Some(kind) if kind != Kind::Unit => kind.noun(),
            _ => noun,
        };
        // The object of a call written as a function is its first argument.
        let args = call.args.len() > usize::from(!method);
        Some(InPlace {
            name,
            noun,
            args,
            at,
        })
    }
}
