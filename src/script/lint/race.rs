//! A closure that reads the variable whose method it is passed to.
//!
//! A closure shares the variables it captures, and Rhai (built with `sync`) locks a shared
//! variable while a method runs on it — on the whole chain it heads, `m.a.filter(…)` and
//! `items[0].map(…)` included. When the closure passed to that method reads the same variable,
//! the second lock waits: Rhai sleeps about 50 ms on the server thread, then fails with "data
//! race detected" — on every request: `items.reduce(|sum, x| sum + x * items.len(), 0)`. The
//! same call written as a function (`reduce(items, |…| …)`) does not lock `items`, and runs.

use std::collections::{HashMap, HashSet};

use rhai::{ASTFlags, ASTNode, Expr, FnCallExpr, Position, Stmt, AST};

/// Each method call whose object is a variable that a closure given to it reads: the
/// closure written in the call, or a variable given a closure once (and closures that call
/// such a closure).
///
/// The call to write instead takes the method's whole receiver, as written in `src`:
/// `reduce(payload.items, …)` for `payload.items.reduce(…)`, not `reduce(payload, …)`, which
/// would fail (no `reduce` of a map) or, for `filter`, quietly work on the whole map.
pub(in crate::script) fn closure_reads_its_own_object(
    ast: &AST,
    src: &str,
) -> Vec<(String, Position)> {
    let closures = closure_variables(ast);
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(e)) = path.last() else {
            return true;
        };
        let (Expr::Dot(chain, ..) | Expr::Index(chain, ..)) = e else {
            return true;
        };
        // Only the head of a chain holds the variable: `items` in `items.filter(…).len()`, not
        // the rest of it.
        if continues_chain(path) {
            return true;
        }
        let Expr::Variable(var, ..) = &chain.lhs else {
            return true;
        };
        let object = var.1.as_str();
        let head = chain.lhs.position();
        for (call, at) in methods_of(e) {
            // A closure `push`ed or `set` into its object is kept, not called: no read
            // happens during the call (what that makes is for the cycle check).
            if STORES.contains(&call.name.as_str()) && !own.contains(call.name.as_str()) {
                continue;
            }
            for arg in call.args.iter() {
                if let Some(read) = reads(arg, object, &closures) {
                    let name = &call.name;
                    let receiver =
                        receiver_text(src, head, at).unwrap_or_else(|| object.to_owned());
                    let message = if CHANGES_ITS_OBJECT.contains(&name.as_str()) {
                        // Called as a function, it would change a copy: the script would run,
                        // and quietly do nothing.
                        format!(
                            "{object} is read inside the closure passed to {receiver}.{name}, which changes {receiver} in place: Rhai locks {object} for the call, so the read would stall, then fail; read what the closure needs before the call (let n = {object}.len();) and use that inside it"
                        )
                    } else if receiver == object {
                        format!(
                            "{object} is read inside the closure passed to its own {name}: Rhai locks {object} for a method call, so the read would stall, then fail; call it as a function, which takes no lock: {name}({object}, …)"
                        )
                    } else {
                        format!(
                            "{object} is read inside the closure passed to {receiver}.{name}: Rhai locks {object} for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: {name}({receiver}, …)"
                        )
                    };
                    found.push((message, if read.is_none() { at } else { read }));
                    return true;
                }
            }
        }
        true
    });
    found
}

/// Whether the node at the end of `path` is the rest of a chain (`filter(…).len()` in
/// `items.filter(…).len()`; `i.map(…)` in `a[i].map(…)`, which Rhai holds as `a` indexed by
/// `i.map(…)`), rather than its head or an expression of its own (the index that ends a
/// chain: `v.push(f)` in `w[v.push(f)]`).
pub(super) fn continues_chain(path: &[ASTNode]) -> bool {
    match path {
        [.., ASTNode::Expr(parent @ (Expr::Dot(outer, ..) | Expr::Index(outer, ..))), ASTNode::Expr(e)] => {
            std::ptr::eq(&outer.rhs, *e) && !parent.options().contains(ASTFlags::BREAK)
        }
        _ => false,
    }
}

/// Methods that change their object in place: written as a function (`sort(items, …)`), the
/// call would take no lock but change a copy, which nobody reads.
const CHANGES_ITS_OBJECT: [&str; 20] = [
    "sort",
    "sort_desc",
    "dedup",
    "retain",
    "drain",
    "push",
    "insert",
    "pad",
    "append",
    "splice",
    "truncate",
    "chop",
    "reverse",
    "clear",
    "set",
    "mixin",
    "fill_with",
    "pop",
    "shift",
    "remove",
];

/// Methods that keep the values they are given in their object without calling any.
pub(super) const STORES: [&str; 8] = [
    "push",
    "insert",
    "pad",
    "append",
    "splice",
    "set",
    "mixin",
    "fill_with",
];

/// The source text of a method call's receiver: from the head of its chain (at `head`) to the
/// method's name (at `method`), without the dot, and with line breaks (and the indentation
/// after them) left out: `payload.custom.keys()` for `payload.custom.keys().filter(…)`.
fn receiver_text(src: &str, head: Position, method: Position) -> Option<String> {
    let start = super::char_offset(src, head)?;
    let end = super::char_offset(src, method)?;
    let text: String = src
        .chars()
        .skip(start)
        .take(end.checked_sub(start)?)
        .collect();
    let text = text.trim_end();
    let text = text.strip_suffix('.')?;
    let text = text.strip_suffix('?').unwrap_or(text).trim_end();
    let text: String = text.lines().map(str::trim).collect();
    (!text.is_empty()).then_some(text)
}

/// The methods a chain calls, each with its position: `filter` and `len` in
/// `items.filter(…).len()`.
pub(super) fn methods_of(chain: &Expr) -> Vec<(&FnCallExpr, Position)> {
    let mut methods = Vec::new();
    let mut node = chain;
    while let Expr::Dot(x, options, _) | Expr::Index(x, options, _) = node {
        if let Expr::MethodCall(call, at) = &x.lhs {
            methods.push((&**call, *at));
        }
        match &x.rhs {
            Expr::MethodCall(call, at) => methods.push((call, *at)),
            // An index that ends the chain is an expression of its own.
            rest @ (Expr::Dot(..) | Expr::Index(..)) if !options.contains(ASTFlags::BREAK) => {
                node = rest;
                continue;
            }
            _ => {}
        }
        break;
    }
    methods
}

/// Whether `arg` is a closure that reads `object`: where it reads it (`Position::NONE` when
/// the closure is a variable's), or `None`.
fn reads(
    arg: &Expr,
    object: &str,
    closures: &HashMap<String, HashSet<String>>,
) -> Option<Position> {
    if let Some(captured) = captures(arg) {
        // A closure calling a closure variable reads what that one reads.
        return captured.iter().find_map(|(name, at)| {
            (name == object || closures.get(name).is_some_and(|c| c.contains(object)))
                .then_some(*at)
        });
    }
    match arg {
        Expr::Variable(var, ..) if closures.get(var.1.as_str())?.contains(object) => {
            Some(Position::NONE)
        }
        _ => None,
    }
}

/// The variables a closure literal captures, with where each is first read; `None` when `e`
/// is no capturing closure.
pub(super) fn captures(e: &Expr) -> Option<Vec<(String, Position)>> {
    closure_literal(e)
        .map(|(_, captured)| captured)
        .filter(|captured| !captured.is_empty())
}

/// A closure written as `e`: its function's name and the variables it captures, with where
/// each is first read (a closure in a closure captures what the inner one does). Rhai writes a
/// capturing closure as a block of exactly two statements — one that shares the variables,
/// then a call of `curry` with the closure's function and them — and any other as its function
/// pointer.
/// Nothing a script writes has that shape: a block holding a closure is no closure.
pub(super) fn closure_literal(e: &Expr) -> Option<(String, Vec<(String, Position)>)> {
    let anon = |value: &rhai::Dynamic| {
        let name = value.read_lock::<rhai::FnPtr>()?.fn_name().to_owned();
        name.starts_with("anon$").then_some(name)
    };
    match e {
        Expr::DynamicConstant(value, _) => Some((anon(value)?, Vec::new())),
        Expr::Stmt(block) => {
            let (vars, call) = match block.statements() {
                [Stmt::Share(vars), Stmt::FnCall(call, _)] => (vars, call),
                [Stmt::Share(vars), Stmt::Expr(e)] => match &**e {
                    Expr::FnCall(call, _) => (vars, call),
                    _ => return None,
                },
                _ => return None,
            };
            let Some(Expr::DynamicConstant(value, _)) = call.args.first() else {
                return None;
            };
            let captured = vars
                .iter()
                .map(|(ident, _)| (ident.name.to_string(), ident.pos))
                .collect();
            (call.name == "curry").then_some((anon(value)?, captured))
        }
        _ => None,
    }
}

/// The variables given a closure that captures variables, with everything each reads through
/// the closure variables it captures in turn. A name given anything else anywhere (another
/// value, a parameter, a loop variable) is left out: which value it holds at a call is not
/// known here.
fn closure_variables(ast: &AST) -> HashMap<String, HashSet<String>> {
    let mut given: HashMap<String, Vec<Option<HashSet<String>>>> = HashMap::new();
    for param in super::own_params(ast) {
        given.entry(param).or_default().push(None);
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let (name, value) = match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, ..))) => (var.0.name.as_str(), Some(&var.1)),
            Some(ASTNode::Stmt(Stmt::Assignment(assign))) => match &assign.1.lhs {
                Expr::Variable(var, ..) => (var.1.as_str(), Some(&assign.1.rhs)),
                _ => return true,
            },
            Some(ASTNode::Stmt(Stmt::For(f, _))) => (f.0.name.as_str(), None),
            _ => return true,
        };
        let captured = value
            .and_then(captures)
            .map(|c| c.into_iter().map(|(name, _)| name).collect());
        given.entry(name.to_owned()).or_default().push(captured);
        true
    });
    let mut closures: HashMap<String, HashSet<String>> = given
        .into_iter()
        .filter_map(|(name, values)| match &values[..] {
            [Some(captured)] => Some((name, captured.clone())),
            _ => None,
        })
        .collect();
    // Through closure variables captured by closure variables, until nothing more is found.
    loop {
        let mut grew = false;
        let names: Vec<String> = closures.keys().cloned().collect();
        for name in &names {
            let inner: HashSet<String> = closures[name]
                .iter()
                .filter_map(|c| closures.get(c))
                .flatten()
                .cloned()
                .collect();
            if let Some(own) = closures.get_mut(name) {
                let before = own.len();
                own.extend(inner);
                grew |= own.len() > before;
            }
        }
        if !grew {
            return closures;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::script::tests::{run_unchecked, run_unchecked_on};
    use crate::script::{ScriptEngine, ScriptVerdict};

    /// Each of these stalls and fails with "data race detected" on every request; each is a
    /// load error, at the closure's read of the variable (or at the call, for a closure held
    /// in a variable).
    #[test]
    fn a_closure_reading_its_own_object_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, object, receiver, method, line, column) in [
            (
                "let items = [1,2,3]; let total = items.reduce(|sum, x| sum + x * items.len(), 0); total > 0",
                "items",
                "items",
                "reduce",
                1,
                66,
            ),
            ("let items = [1,2,3];\nitems.filter(|x| x > items[0]).len() > 0", "items", "items", "filter", 2, 22),
            ("let items = [1,2,3];\nlet f = |x| items.len();\nitems.map(f).len() > 0", "items", "items", "map", 3, 7),
            (
                "let items = [1,2,3];\nlet f = |x| items.len();\nlet g = |x| f.call(x);\nitems.map(g).len() > 0",
                "items",
                "items",
                "map",
                4,
                7,
            ),
            ("let m = #{a: [1,2]};\nm.a.filter(|x| x > m.a[0]).len() > 0", "m", "m.a", "filter", 2, 20),
            ("let items = [[1],[2]];\nitems[0].map(|v| items.len()).len() > 0", "items", "items[0]", "map", 2, 18),
            ("let p = payload;\np.custom.keys().filter(|k| p.amount > 0).len() >= 0", "p", "p.custom.keys()", "filter", 2, 28),
            // The request's variables too, shared as soon as a closure captures them.
            ("payload.custom.keys().filter(|k| payload.amount > 0).len() >= 0", "payload", "payload.custom.keys()", "filter", 1, 34),
        ] {
            let message = if receiver == object {
                format!("{object} is read inside the closure passed to its own {method}: Rhai locks {object} for a method call, so the read would stall, then fail; call it as a function, which takes no lock: {method}({object}, …)")
            } else {
                format!("{object} is read inside the closure passed to {receiver}.{method}: Rhai locks {object} for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: {method}({receiver}, …)")
            };
            crate::script::tests::assert_refused(&engine, src, &message, line, column);
            let ran = run_unchecked(&engine, src).unwrap_err();
            assert!(ran.contains("data race detected"), "{src}: {ran}");
        }
        // A method that changes its object in place would change a copy if called as a
        // function: the error says to read what the closure needs before the call.
        for (src, receiver, method, column) in [
            (
                "let items = [1,2,3];\nitems.sort(|a, b| a - items.len());\ntrue",
                "items",
                "sort",
                23,
            ),
            (
                "let ids = [\"a\", \"b\"];\nids.retain(|x| x != ids[0]);\nids.len() > 0",
                "ids",
                "retain",
                21,
            ),
        ] {
            let object = receiver;
            crate::script::tests::assert_refused(
                &engine,
                src,
                &format!("{object} is read inside the closure passed to {receiver}.{method}, which changes {receiver} in place: Rhai locks {object} for the call, so the read would stall, then fail; read what the closure needs before the call (let n = {object}.len();) and use that inside it"),
                2,
                column,
            );
        }
        let fixed = "let items = [3,1,2];\nlet n = items.len();\nitems.sort(|a, b| a - b + n * 0);\nitems[0] == 1";
        assert!(matches!(
            run_unchecked(&engine, fixed),
            Ok(ScriptVerdict::Pass)
        ));
        // In a `when` or `require` as well.
        let src = "payload.custom.keys().filter(|k| payload.amount > 0).len() >= 0";
        let e = engine.compile_expression(src, &[]).unwrap_err();
        assert!(
            e.message.starts_with(
                "payload is read inside the closure passed to payload.custom.keys().filter"
            ),
            "{e:?}"
        );
        for fine in [
            "let items = [1,2,3]; let n = items.len(); items.reduce(|s, x| s + x * n, 0) > 0",
            "let items = [1,2,3]; let limit = 3; items.filter(|x| x > limit).len() > 0",
            // Written as a function, the call does not lock `items`.
            "let items = [1,2,3]; reduce(items, |s, x| s + items.len(), 0) > 0",
            "let items = [1,2,3]; let copy = items; copy.map(|v| items.len()).len() > 0",
            "let a = [[1]]; let i = 0; a[i].map(|v| v + i).len() > 0",
            "let f = |x| x + 1; let items = [1]; items.map(f).len() > 0",
            "let items = [1,2,3]; let f = |x| items.len(); [1].map(f).len() > 0 && items.len() > 0",
        ] {
            engine
                .compile_script(fine)
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
            let ran = run_unchecked(&engine, fine);
            assert!(ran.is_ok(), "{fine}: {ran:?}");
        }
    }

    /// The call to write instead takes the method's whole receiver, as written: a longer one
    /// (a property, an index, a method's result, across lines) as well as a plain variable.
    /// Each suggested call loads and runs.
    #[test]
    fn the_suggested_call_takes_the_whole_receiver() {
        let engine = ScriptEngine::new();
        let body = r#"{"imp_uid":"imp_1","merchant_uid":"vip-7","amount":50000,"custom":{"tier":"gold"},"items":[1,2,3]}"#;
        for (src, message, instead) in [
            (
                "payload.items.reduce(|sum, x| sum + x * payload.items.len(), 0) > 5",
                "payload is read inside the closure passed to payload.items.reduce: Rhai locks payload for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: reduce(payload.items, …)",
                "reduce(payload.items, |sum, x| sum + x * payload.items.len(), 0) > 5",
            ),
            (
                "payload.custom.keys().filter(|k| payload.amount > 0).len() >= 0",
                "payload is read inside the closure passed to payload.custom.keys().filter: Rhai locks payload for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: filter(payload.custom.keys(), …)",
                "filter(payload.custom.keys(), |k| payload.amount > 0).len() >= 0",
            ),
            (
                "let items = [[1],[2]];\nitems[0].map(|v| items.len()).len() > 0",
                "items is read inside the closure passed to items[0].map: Rhai locks items for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: map(items[0], …)",
                "let items = [[1],[2]];\nmap(items[0], |v| items.len()).len() > 0",
            ),
            (
                "let m = #{a: [1,2]};\nm.a\n  .filter(|x| x > m.a[0]).len() > 0",
                "m is read inside the closure passed to m.a.filter: Rhai locks m for a method call on any part of it, so the read would stall, then fail; call it as a function, which takes no lock: filter(m.a, …)",
                "let m = #{a: [1,2]};\nfilter(m.a, |x| x > m.a[0]).len() > 0",
            ),
            (
                "let items = [1,2,3];\nitems.reduce(|sum, x| sum + x * items.len(), 0) > 5",
                "items is read inside the closure passed to its own reduce: Rhai locks items for a method call, so the read would stall, then fail; call it as a function, which takes no lock: reduce(items, …)",
                "let items = [1,2,3];\nreduce(items, |sum, x| sum + x * items.len(), 0) > 5",
            ),
        ] {
            let e = engine.compile_script(src).unwrap_err();
            assert_eq!(e.message, message, "{src}");
            let ran = run_unchecked_on(&engine, src, body).unwrap_err();
            assert!(ran.contains("data race detected"), "{src}: {ran}");
            engine
                .compile_script(instead)
                .unwrap_or_else(|e| panic!("{instead}: {e:?}"));
            assert_eq!(
                run_unchecked_on(&engine, instead, body),
                Ok(ScriptVerdict::Pass),
                "{instead}"
            );
        }
        // A rule's expression gets the same.
        let e = engine
            .compile_expression(
                "payload.items.reduce(|sum, x| sum + x * payload.items.len(), 0) > 5",
                &[],
            )
            .unwrap_err();
        assert!(e.message.ends_with("reduce(payload.items, …)"), "{e:?}");
    }
}
