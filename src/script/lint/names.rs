//! Names that exist nowhere: a function the engine does not have (with its JavaScript
//! spelling hinted), a field no upstream answer has; and what the other checks look names up
//! in: the properties the script's own maps set, and the rules it reads from `fetched`.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rhai::{ASTFlags, ASTNode, Expr, Position, Stmt, AST};

use super::declared_names;
use super::kinds::Kind;
use super::race::{continues_chain, methods_of};
use super::values::{
    assignment_holds_no_closure, closure_gives_data, holds_no_closure, Known, Unknown,
};

/// A call of the script's own `fn name` (`defined`: the parameters of each `fn` of that name)
/// with a number of arguments none of them takes: Rhai finds no function then, and the call
/// fails on every request that reaches it. A method call `x.f(a)` runs `fn f(a)`, with `this`
/// bound to `x` (never `fn f(x, a)`); an engine function of the name taking that many
/// arguments (a helper's name reused) runs too.
fn own_function_arity(
    name: &str,
    defined: &[Vec<&str>],
    call: &rhai::FnCallExpr,
    method: bool,
    known: &Functions,
) -> Option<String> {
    let given = call.args.len();
    let fits = |n: usize| defined.iter().any(|params| params.len() == n);
    if fits(given)
        || known
            .get(name)
            .is_some_and(|a| a.contains(&(given + usize::from(method))))
    {
        return None;
    }
    let mut defined = defined.to_vec();
    defined.sort_by_key(Vec::len);
    let ways: Vec<String> = defined
        .iter()
        .map(|params| format!("fn {name}({})", params.join(", ")))
        .collect();
    let s = if given == 1 { "" } else { "s" };
    let (how, this) = if method {
        (
            "x.",
            " (x itself is `this` in the function, not an argument)",
        )
    } else {
        ("", "")
    };
    Some(format!(
        "{how}{name}(…) is given {given} argument{s}{this}, but this script defines {}: Rhai would find no function to call, on every request",
        ways.join(" and ")
    ))
}

/// Rhai's `curry` copies the values it binds into the function pointer, where the sandbox's
/// size checks do not look: `b.pad(10000, Fn("id").curry(a))` copies a list of 10,000 ten
/// thousand times in one call — seconds past the time limit and gigabytes of memory.
const CURRY: &str = "curry is not available in rules: the values it binds are copied with the function, beyond the sandbox's size limits; a closure captures what it needs without copying it: |x| id(x, a)";

/// Whether the `curry` call at the end of `path` is how Rhai makes a closure capture its
/// variables (the second statement of the closure's block), rather than one written in the
/// script — which may look the same, `curry(|x, v| …, a)`, but stands elsewhere.
fn closes_over(path: &[ASTNode]) -> bool {
    let block = match path {
        [.., ASTNode::Expr(block), ASTNode::Stmt(Stmt::Expr(_)), ASTNode::Expr(Expr::FnCall(..))]
        | [.., ASTNode::Expr(block), ASTNode::Stmt(Stmt::FnCall(..))] => block,
        _ => return false,
    };
    super::race::captures(block).is_some()
}

/// Names Rhai handles itself rather than as registered functions.
const KEYWORDS: [&str; 12] = [
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
    "this",
    "global",
];

/// JavaScript's (and Python's) names for what Rhai calls otherwise, for a hint.
pub(super) const JAVASCRIPT: [(&str, &str); 16] = [
    ("any", "some"),
    ("length", "len"),
    ("size", "len"),
    ("exists", "some"),
    ("every", "all"),
    ("lower", "to_lower"),
    ("upper", "to_upper"),
    ("startsWith", "starts_with"),
    ("endsWith", "ends_with"),
    ("includes", "contains"),
    ("indexOf", "index_of"),
    ("toUpperCase", "to_upper"),
    ("toLowerCase", "to_lower"),
    ("toString", "to_string"),
    ("parseInt", "parse_int"),
    ("parseFloat", "parse_float"),
];

/// Every function the engine has, by name, with the numbers of arguments it takes.
pub(in crate::script) type Functions = BTreeMap<String, BTreeSet<usize>>;

/// A method called on a range (`range(0, 3).all(…)`, `(1..5).len()`) that ranges do not have:
/// the name exists (for arrays), so the check of unknown functions passes it, and the call
/// fails on every request (a trial's). A range only loops (`for i in 0..3`) and answers
/// `contains`, `start`, `end`, `is_empty`, `is_inclusive` and `is_exclusive`.
pub(in crate::script) fn method_on_range(ast: &AST) -> Vec<(String, Position)> {
    const RANGE: [&str; 9] = [
        "start",
        "end",
        "is_inclusive",
        "is_exclusive",
        "is_empty",
        "contains",
        "type_of",
        "to_string",
        "to_debug",
    ];
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Dot(chain, ..))) = path.last() else {
            return true;
        };
        let range = match &chain.lhs {
            Expr::FnCall(call, _) => {
                (call.name == "range" && call.args.len() == 2)
                    || (call.is_operator_call() && matches!(call.name.as_str(), ".." | "..="))
            }
            // `1..5` of constants, made at compile time.
            Expr::DynamicConstant(value, _) => {
                value.is::<std::ops::Range<rhai::INT>>()
                    || value.is::<std::ops::RangeInclusive<rhai::INT>>()
            }
            _ => false,
        };
        let method = match &chain.rhs {
            Expr::MethodCall(m, at) => Some((m, *at)),
            Expr::Dot(next, ..) => match &next.lhs {
                Expr::MethodCall(m, at) => Some((m, *at)),
                _ => None,
            },
            _ => None,
        };
        if let Some((m, at)) = method.filter(|_| range) {
            let name = m.name.as_str();
            if !RANGE.contains(&name) && !own.contains(name) {
                found.push((
                    format!("a range has no {name}(): it only loops (for i in 0..3 {{ … }}) and answers contains, start, end and is_empty; to use {name}, write the list ([0, 1, 2].{name}(…)) or loop over the range"),
                    at,
                ));
            }
        }
        true
    });
    found
}

/// Each call in `ast` of a function that exists neither in `known` (the engine's) nor in
/// the script itself, or with a number of arguments it does not take: its message and position.
pub(in crate::script) fn unknown_function(ast: &AST, known: &Functions) -> Vec<(String, Position)> {
    // The script's own functions, by name, with the parameters of each of its arities.
    let mut own: BTreeMap<&str, Vec<Vec<&str>>> = BTreeMap::new();
    for f in ast.iter_functions() {
        own.entry(f.name).or_default().push(f.params.clone());
    }
    let properties = map_properties(ast, &Unknown);
    let declared = declared_names(ast);
    let kinds = super::kinds::Names::of(ast);
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let (call, at, method) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, at)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, at))) => (call, *at, false),
            // A map's property holding a function is called as a method: unless no map can
            // hold `name`, the call may be that (where a key is computed at run time, only
            // an object that is no map is checked).
            Some(ASTNode::Expr(Expr::MethodCall(call, at)))
                if !properties.may_hold(call.name.as_str())
                    || (!properties.written(call.name.as_str())
                        && no_map_object(path, &declared)) =>
            {
                (call, *at, true)
            }
            _ => return true,
        };
        let name = call.name.as_str();
        if name == "curry" && (method || !closes_over(path)) {
            found.push((CURRY.to_owned(), at));
            return true;
        }
        // Operators are Rhai's own (and `!` of an identifier is no call).
        let identifier = name.starts_with(|c: char| c.is_alphabetic() || c == '_');
        if !identifier || KEYWORDS.contains(&name) {
            return true;
        }
        if let Some(defined) = own.get(name) {
            found.extend(own_function_arity(name, defined, call, method, known).map(|m| (m, at)));
            return true;
        }
        if let Some(arities) = known.get(name) {
            // The value before the dot is the first argument.
            let given = call.args.len() + usize::from(method);
            if arities.contains(&given) {
                found.extend(wrong_kind(name, call, method, &kinds, &declared));
                return true;
            }
            let offset = usize::from(method);
            let takes: Vec<String> = arities
                .iter()
                .filter(|&&n| n >= offset)
                .map(|n| (n - offset).to_string())
                .collect();
            let how = if method { "x." } else { "" };
            found.push((
                format!(
                    "{how}{name}(…) takes {} argument{}, not {}",
                    takes.join(" or "),
                    if takes == ["1"] { "" } else { "s" },
                    call.args.len()
                ),
                at,
            ));
            return true;
        }
        if let Some((_, why)) = crate::script::helpers::FORBIDDEN
            .iter()
            .find(|(f, _)| *f == name)
        {
            found.push(((*why).to_owned(), at));
            return true;
        }
        let hint = JAVASCRIPT
            .iter()
            .find(|(js, _)| *js == name)
            .map(|(_, rhai)| (*rhai).to_owned())
            .or_else(|| closest(name, known));
        let hint = match hint {
            Some(h) => format!("; did you mean {h}?"),
            // Python's `not (…)`.
            None if name == "not" => "; Rhai writes not as ! (if !(amount > 5))".to_owned(),
            None => String::new(),
        };
        found.push((format!("function not found: {name}{hint}"), at));
        true
    });
    found
}

/// What each helper's arguments must be, where one of another kind finds no function on every
/// request: (helper, argument index as a function call counts it, kind, in words).
const HELPER_ARGUMENTS: [(&str, usize, &[Kind], &str); 17] = [
    ("seoul_date", 0, &[Kind::Number], TIME),
    ("seoul_time", 0, &[Kind::Number], TIME),
    ("seoul_hour", 0, &[Kind::Number], TIME),
    ("seoul_minute", 0, &[Kind::Number], TIME),
    ("seoul_weekday", 0, &[Kind::Number], TIME),
    (
        "format_amount",
        0,
        &[Kind::Number],
        "a number (such as amount)",
    ),
    (
        "one_of",
        1,
        &[Kind::Array],
        "a list (such as [\"store-a\", \"store-b\"])",
    ),
    (
        "seoul_at",
        0,
        &[Kind::String],
        "a date and time in Korea as text (such as \"2026-12-07 10:00\")",
    ),
    ("before", 0, &[Kind::String], "text"),
    ("before", 1, &[Kind::String], "text"),
    ("after", 0, &[Kind::String], "text"),
    ("after", 1, &[Kind::String], "text"),
    (
        "parse_int",
        0,
        &[Kind::String, Kind::Number],
        "text or a number",
    ),
    (
        "parse_float",
        0,
        &[Kind::String, Kind::Number],
        "text or a number",
    ),
    (
        "parse_decimal",
        0,
        &[Kind::String, Kind::Number],
        "text or a number",
    ),
    ("parse_json", 0, &[Kind::String], "JSON text"),
    ("fail", 0, &[Kind::String], "a message as text"),
];

/// What the `seoul_…` helpers take.
const TIME: &str = "a time in Unix milliseconds (such as now)";

/// A helper given an argument of a kind known at load (a literal, a request variable, a
/// variable declared with one) that it does not take (`one_of(store_id, "store-a")`,
/// `before(order_id, 1)`, `format_amount(order_id)`): Rhai finds no function for it on every
/// request, and `on_error` decides every payment.
fn wrong_kind(
    name: &str,
    call: &rhai::FnCallExpr,
    method: bool,
    kinds: &super::kinds::Names,
    declared: &HashSet<String>,
) -> Option<(String, Position)> {
    let mut arguments = HELPER_ARGUMENTS
        .iter()
        .filter(|(helper, ..)| *helper == name);
    arguments.find_map(|&(_, index, takes, words)| {
        // The value before the dot of a method call is the first argument, not in `args`.
        let arg = call.args.get(index.checked_sub(usize::from(method))?)?;
        // A variable the script declares may hold another value where the call reads it
        // (`let now = seoul_time(now)` reads the request's `now`): only what is certain.
        if matches!(arg, Expr::Variable(v, ..) if declared.contains(v.1.as_str())) {
            return None;
        }
        let given = kinds.kind(arg)?;
        (!takes.contains(&given)).then(|| {
            let nth = ["first", "second"][index];
            (
                format!("{name}(…) takes {words} as its {nth} argument, not {}, so this call would fail on every request", given.name()),
                arg.position(),
            )
        })
    })
}

/// Whether the method call ending `path` is made on a value that is never a map: a string
/// literal, or a request variable that is a string or a number (`order_id.f()`, `amount.f()`).
fn no_map_object(path: &[ASTNode], declared: &HashSet<String>) -> bool {
    let [.., ASTNode::Expr(Expr::Dot(chain, ..)), ASTNode::Expr(call)] = path else {
        return false;
    };
    if !std::ptr::eq(&chain.rhs, *call) {
        return false;
    }
    match &chain.lhs {
        Expr::StringConstant(..) | Expr::InterpolatedString(..) => true,
        Expr::Variable(v, ..) => {
            matches!(
                v.1.as_str(),
                "order_id" | "tx_id" | "api" | "amount" | "now"
            ) && !declared.contains(v.1.as_str())
        }
        _ => false,
    }
}

/// The names a map in `ast` may hold a value under: `obj.over(1)` calls the function held by
/// the map property `over`, when there is one, rather than a function `over`. A map gets its
/// keys from a literal (`#{ over: |x| … }`), an assignment (`m.over = |x| …;`, `m["over"] =
/// Fn("f");`) or `set` (`m.set("over", …)`); the maps a script is given (`payload`, an answer)
/// come from JSON, which holds no function. A key computed at run time (`m[k] = …`) may be any
/// name.
pub(in crate::script) struct Properties {
    names: HashSet<String>,
    /// Where a value may go under a key that is only known at run time (the first such
    /// place), and how: any name may be a property.
    any: Option<(Position, AnyKey)>,
}

/// How a value may go under any key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::script) enum AnyKey {
    /// `m[k] = v`, `m.set(k, v)`.
    Computed,
    /// `this = v` in a closure or a function called on a property.
    This,
    /// `d.map(…)`: the closure's values under `d`'s keys.
    Map,
}

impl Properties {
    /// No names at all, before they are known.
    pub(in crate::script) fn none() -> Self {
        Properties {
            names: HashSet::new(),
            any: None,
        }
    }

    /// Whether some map may hold a value under `name`.
    pub(in crate::script) fn may_hold(&self, name: &str) -> bool {
        self.any.is_some() || self.names.contains(name)
    }

    /// Where (and how) a value may go under any key, when `name` is no key written as such.
    pub(in crate::script) fn computed_for(&self, name: &str) -> Option<(Position, AnyKey)> {
        self.any.filter(|_| !self.names.contains(name))
    }

    /// Whether `name` is a key written in the script (a literal's, an assignment's, `set`'s).
    fn written(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

///
/// A key whose value can hold no closure (`#{ all: 10 }`, `m.count = 0`, `m[k] += 1`) is left
/// out: nothing can be called through it.
///
/// `known` tells the variables known to hold no closure (see [`super::values`]).
pub(in crate::script) fn map_properties(ast: &AST, known: &dyn Known) -> Properties {
    let mut properties = Properties::none();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::Map(map, _))) => {
                properties.names.extend(
                    map.0
                        .iter()
                        .filter(|(_, value)| !holds_no_closure(value, known))
                        .map(|(key, _)| key.name.to_string()),
                );
            }
            Some(ASTNode::Stmt(Stmt::Assignment(assign)))
                if !assignment_holds_no_closure(assign, known) =>
            {
                assigned_keys(&assign.1.lhs, assign.0.position(), &mut properties);
            }
            // `d.map(|k| …)` gives the closure's values under the keys `d` has, whatever they
            // are (from a literal of numbers, or from the request): unless those values hold
            // no closure, any key may hold one.
            Some(ASTNode::Expr(e @ (Expr::Dot(chain, ..) | Expr::Index(chain, ..))))
                if !continues_chain(path) =>
            {
                for (i, (call, at)) in methods_of(e).into_iter().enumerate() {
                    let object = (i == 0).then_some(&chain.lhs);
                    if call.name == "map" && !maps_to_data(ast, object, call.args.first(), known) {
                        properties.any.get_or_insert((at, AnyKey::Map));
                    }
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(call, at)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, at)))
                if call.name == "map"
                    && !maps_to_data(ast, call.args.first(), call.args.get(1), known) =>
            {
                properties.any.get_or_insert((*at, AnyKey::Map));
            }
            // `m.set("over", …)`, `set(m, "over", …)`.
            Some(ASTNode::Expr(Expr::MethodCall(call, at))) if call.name == "set" => {
                let (key, value) = (call.args.first(), call.args.get(1));
                set_key(key, value, *at, known, &mut properties);
            }
            Some(ASTNode::Expr(Expr::FnCall(call, at)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, at)))
                if call.name == "set" =>
            {
                let (key, value) = (call.args.get(1), call.args.get(2));
                set_key(key, value, *at, known, &mut properties);
            }
            _ => {}
        }
        true
    });
    properties
}

/// Whether `map` of `object` with `closure` gives values that hold no closure: both known to.
fn maps_to_data(
    ast: &AST,
    object: Option<&Expr>,
    closure: Option<&Expr>,
    known: &dyn Known,
) -> bool {
    object.is_some_and(|object| holds_no_closure(object, known))
        && closure.is_some_and(|closure| closure_gives_data(ast, closure, known))
}

/// The keys an assignment's target names (`over` in `m.over = …`, `m["over"] = …`, `a.b.over =
/// …`); a computed last key (`m[k] = …`, `m[key.name] = …`) may be any.
fn assigned_keys(target: &Expr, at: Position, properties: &mut Properties) {
    // `this = v` in a closure or a function called on a property (`d.contains.put(v)`, or
    // `d.filter(|k| { this = v; … })`) replaces that property's value: any key may be it.
    if matches!(target, Expr::ThisPtr(..)) {
        properties.any.get_or_insert((at, AnyKey::This));
        return;
    }
    let mut node = target;
    while let Expr::Dot(chain, options, _) | Expr::Index(chain, options, _) = node {
        // Without `BREAK`, the chain goes on after this key: `m[k].over` is `m` indexed by
        // `k.over`. With it, the index is an expression of its own: `key.name` in
        // `m[key.name]` is the key, not a property of it.
        match &chain.rhs {
            rest @ (Expr::Dot(inner, ..) | Expr::Index(inner, ..))
                if !options.contains(ASTFlags::BREAK) =>
            {
                key_of(&inner.lhs, properties);
                node = rest;
            }
            Expr::Property(..) | Expr::StringConstant(..) => {
                key_of(&chain.rhs, properties);
                break;
            }
            // An array's element (`a[0] = …`).
            Expr::IntegerConstant(..) => break,
            _ => {
                properties.any.get_or_insert((at, AnyKey::Computed));
                break;
            }
        }
    }
}

fn key_of(key: &Expr, properties: &mut Properties) {
    match key {
        Expr::Property(prop, _) => {
            properties.names.insert(prop.2.to_string());
        }
        Expr::StringConstant(s, _) => {
            properties.names.insert(s.to_string());
        }
        _ => {}
    }
}

/// The key `set` is given a `value` under: a string, or (computed at run time) any; none when
/// the value holds no closure.
fn set_key(
    key: Option<&Expr>,
    value: Option<&Expr>,
    at: Position,
    known: &dyn Known,
    properties: &mut Properties,
) {
    if value.is_some_and(|value| holds_no_closure(value, known)) {
        return;
    }
    match key {
        Some(Expr::StringConstant(s, _)) => {
            properties.names.insert(s.to_string());
        }
        // An array's, a string's or a blob's element (`a.set(0, …)`).
        Some(Expr::IntegerConstant(..)) => {}
        _ => {
            properties.any.get_or_insert((at, AnyKey::Computed));
        }
    }
}

/// A field of `payload` read (`payload.custom_data` or `payload["custom_data"]`): as written,
/// its name, what is read inside it, if anything (`.tier`, and whether through `?.`), and
/// where its key is.
type PayloadRead = (String, String, Option<(String, bool)>, Position);

/// Each field read inside a field of `payload` that a payment may not have
/// (`payload.custom_data.tier`): the field, the read as written, and where. A body without
/// `custom_data` fails the read, and `on_error` decides, on every such payment (a trial's
/// `require` refused every V1 payment without it). A field read with `?.` somewhere (`payload.custom_data?.tier`), or
/// tested on its own (`"custom_data" in payload`, `payload.custom_data != ()`,
/// `type_of(payload.custom_data)`), is taken as guarded, and so is a read inside a `try`
/// block, whose `catch` decides. `payload.data` is left out: every body of PortOne V2's
/// current format has it, and a store on that format gets no other (a V1 body and a V2 body
/// of the 2024-01-01 format have none, which a ruleset serving those must test: `api`).
pub fn unguarded_payload_reads(ast: &AST) -> Vec<(String, String, Position)> {
    if super::declared_names(ast).contains("payload") {
        return Vec::new();
    }
    let field_of_payload = |e: &Expr| -> Option<PayloadRead> {
        // `payload.K…` or `payload["K"]…`: the field, as written, and where its key is.
        let (head, field, key_at, rest) = match e {
            Expr::Dot(chain, ..) | Expr::Index(chain, ..) => {
                let Expr::Variable(var, ..) = &chain.lhs else {
                    return None;
                };
                if var.1 != "payload" {
                    return None;
                }
                let indexed = matches!(e, Expr::Index(..));
                let (key, rest) = match &chain.rhs {
                    Expr::Dot(inner, flags, _) | Expr::Index(inner, flags, _) => {
                        (&inner.lhs, Some((&chain.rhs, &inner.rhs, *flags)))
                    }
                    key => (key, None),
                };
                let (field, at) = match key {
                    Expr::Property(p, at) if !indexed => (p.2.to_string(), *at),
                    Expr::StringConstant(k, at) if indexed => (k.to_string(), *at),
                    _ => return None,
                };
                let head = if indexed {
                    format!("payload[\"{field}\"]")
                } else {
                    format!("payload.{field}")
                };
                (head, field, at, rest)
            }
            _ => return None,
        };
        let Some((next, inner, flags)) = rest else {
            return Some((head, field, None, key_at));
        };
        // A method on the field is a read that fails on `()` too
        // (`payload.custom_data.len()`), but for those that take anything.
        let method = |m: &rhai::FnCallExpr| {
            (!matches!(
                m.name.as_str(),
                "type_of" | "is_blank" | "to_string" | "to_debug"
            ))
            .then(|| format!(".{}()", m.name))
        };
        let read = match inner {
            Expr::Property(q, _) => Some(format!(".{}", q.2)),
            Expr::MethodCall(m, _) => method(m),
            Expr::Dot(deeper, ..) | Expr::Index(deeper, ..) => match &deeper.lhs {
                Expr::Property(q, _) => Some(format!(".{}", q.2)),
                Expr::MethodCall(m, _) => method(m),
                Expr::StringConstant(key, _) if matches!(next, Expr::Index(..)) => {
                    Some(format!("[\"{key}\"]"))
                }
                _ => None,
            },
            Expr::StringConstant(key, _) if matches!(next, Expr::Index(..)) => {
                Some(format!("[\"{key}\"]"))
            }
            _ => None,
        };
        let guarded = flags.contains(rhai::ASTFlags::NEGATED);
        Some((head, field, read.map(|r| (r, guarded)), key_at))
    };
    let mut reads = Vec::new();
    // Keys named in text (`"custom_data" in payload`) test their field, but for the key of
    // `payload["K"]` itself.
    let mut texts = Vec::new();
    let mut keys = std::collections::HashSet::new();
    let mut tested = std::collections::HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        // In a `try` block (not its `catch`), a failure is the catch's to decide.
        let in_try = path.windows(2).any(|w| match (&w[0], &w[1]) {
            (ASTNode::Stmt(Stmt::TryCatch(flow, _)), ASTNode::Stmt(s)) => {
                flow.body.iter().any(|b| std::ptr::eq(b, *s))
            }
            _ => false,
        });
        match path.last() {
            Some(ASTNode::Expr(Expr::StringConstant(text, at))) => {
                texts.push((text.to_string(), *at));
            }
            Some(ASTNode::Expr(e)) => match field_of_payload(e) {
                Some((_, field, None | Some((_, true)), at)) => {
                    keys.insert(at);
                    tested.insert(field);
                }
                Some((head, field, Some((read, false)), at)) => {
                    keys.insert(at);
                    if !in_try && field != "data" {
                        reads.push((field, format!("{head}{read}"), at));
                    }
                }
                None => {}
            },
            _ => {}
        }
        true
    });
    tested.extend(
        texts
            .into_iter()
            .filter(|(_, at)| !keys.contains(at))
            .map(|(text, _)| text),
    );
    reads
        .into_iter()
        .filter(|(field, ..)| !tested.contains(field))
        .collect()
}

/// Every rule `ast` reads from `fetched` (`fetched["stock"]`, `fetched.stock`), with where.
/// Keys computed at run time are not known here and left out, and so are assignments (a
/// script writing into its own copy of `fetched` reads nothing).
pub fn fetched_names(ast: &AST) -> Vec<(String, Position)> {
    let mut names = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        if let [.., ASTNode::Stmt(Stmt::Assignment(assign)), _] = path {
            if std::ptr::eq(&assign.1.lhs, *e) {
                return true;
            }
        }
        if let Some((name, at, _)) = fetched_access(e) {
            names.push((name.to_owned(), at));
        }
        true
    });
    names
}

/// Whether `ast` (its functions and closures included) names `field` as a property or a
/// string key anywhere (`r.headers`, `r["headers"]`): what replay notes a script reading,
/// where a key computed at run time is out of its sight.
pub fn names_field(ast: &AST, field: &str) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(e)) = path.last() {
            found = match e {
                Expr::Property(p, _) => p.2 == field,
                Expr::StringConstant(s, _) => s.as_str() == field,
                _ => false,
            };
        }
        !found
    });
    found
}

/// Each field read from a fetch's answer that no answer has: `response` (and an earlier
/// fetch's `fetched["name"]`) holds `status`, `headers` and `body` only, so
/// `response.statuss == 200` would read `()` on every request.
pub(in crate::script) fn unknown_response_field(ast: &AST) -> Vec<(String, Position)> {
    const FIELDS: [&str; 3] = ["status", "headers", "body"];
    let declared = declared_names(ast);
    let answers: Vec<&str> = ["response", "fetched"]
        .into_iter()
        .filter(|n| !declared.contains(*n))
        .collect();
    // Copies of an answer (`let r = fetched["stock"]; r.bodyy…`, a trial's slip let through).
    let copies = super::declared_once(ast, |value| {
        let (.., rest) = fetched_access(value)?;
        (answers.contains(&"fetched") && rest.is_none()).then_some(())
    });
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        let copy = match e {
            Expr::Dot(chain, ..) => match &chain.lhs {
                Expr::Variable(v, ..) if copies.contains_key(v.1.as_str()) => Some(&chain.rhs),
                _ => None,
            },
            _ => None,
        };
        let Some(mut field) = copy.or_else(|| answer_rest(e, &answers)) else {
            return true;
        };
        // `response.headers["Content-Type"]`: the answer's header names are lower case, so
        // a name with capitals is never there.
        if let Expr::Index(inner, _, _) = field {
            if matches!(&inner.lhs, Expr::Property(p, _) if p.2 == "headers") {
                let mut key = &inner.rhs;
                while let Expr::Index(i, _, _) | Expr::Dot(i, _, _) = key {
                    key = &i.lhs;
                }
                if let Expr::StringConstant(name, at) = key {
                    if name.chars().any(char::is_uppercase) {
                        found.push((
                            // `Content Type`: no header name holds a space either.
                            format!("header names in an answer's headers are lower case, so \"{name}\" is never there: write \"{}\"", name.to_lowercase().replace(' ', "-")),
                            *at,
                        ));
                        return true;
                    }
                }
            }
        }
        while let Expr::Index(inner, _, _) | Expr::Dot(inner, _, _) = field {
            field = &inner.lhs;
        }
        if let Expr::Property(prop, at) = field {
            let name = prop.2.as_str();
            if !FIELDS.contains(&name) {
                let hint = crate::suggest::closest(name, FIELDS)
                    .map_or(String::new(), |c| format!("; did you mean {c}?"));
                found.push((
                    format!("an upstream's answer has status, headers and body, not {name}{hint}"),
                    *at,
                ));
                return true;
            }
        }
        true
    });
    found
}

/// What follows an upstream's answer in `e`: `status` in `response.status`,
/// `fetched["stock"].status` or `fetched.stock.status`, `body.left` in `response.body.left`.
/// Only for the answers named in `answers` (a script may have a `response` of its own).
pub(super) fn answer_rest<'a>(e: &'a Expr, answers: &[&str]) -> Option<&'a Expr> {
    let is = |e: &Expr, name: &str| {
        answers.contains(&name) && matches!(e, Expr::Variable(v, ..) if v.1 == name)
    };
    match e {
        Expr::Dot(chain, ..) if is(&chain.lhs, "response") => Some(&chain.rhs),
        _ if answers.contains(&"fetched") => fetched_access(e).and_then(|(.., rest)| rest),
        _ => None,
    }
}

/// `fetched["stock"]…` or `fetched.stock…`: the rule named, where, and what follows the name
/// (`status` in `fetched["stock"].status`, which Rhai holds as `fetched` indexed by
/// `"stock".status`); `None` for anything else, or a name computed at run time.
fn fetched_access(e: &Expr) -> Option<(&str, Position, Option<&Expr>)> {
    let (Expr::Index(chain, ..) | Expr::Dot(chain, ..)) = e else {
        return None;
    };
    if !matches!(&chain.lhs, Expr::Variable(v, ..) if v.1 == "fetched") {
        return None;
    }
    let (key, rest) = match &chain.rhs {
        Expr::Index(inner, ..) | Expr::Dot(inner, ..) => (&inner.lhs, Some(&inner.rhs)),
        key => (key, None),
    };
    match key {
        Expr::StringConstant(name, at) => Some((name.as_str(), *at, rest)),
        Expr::Property(prop, at) => Some((prop.2.as_str(), *at, rest)),
        _ => None,
    }
}

/// The strings of an array literal, with their positions (the array's, once Rhai has folded
/// an all-constant one into a single value).
pub(super) fn listed_strings(list: &Expr) -> Vec<(String, Position)> {
    match list {
        Expr::Array(items, _) => items
            .iter()
            .filter_map(|item| match item {
                Expr::StringConstant(s, at) => Some((s.to_string(), *at)),
                _ => None,
            })
            .collect(),
        Expr::DynamicConstant(value, at) => value
            .read_lock::<rhai::Array>()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| {
                        item.read_lock::<rhai::ImmutableString>()
                            .map(|s| (s.to_string(), *at))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The known function name closest to `name`, when it is close enough to be a slip.
fn closest(name: &str, known: &Functions) -> Option<String> {
    // Getters and setters (`get$len`) are not called by name.
    let names = known
        .keys()
        .map(String::as_str)
        .filter(|k| !k.contains('$'));
    crate::suggest::closest(name, names).map(str::to_owned)
}
