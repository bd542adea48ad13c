//! A variable changed after a closure captured it.
//!
//! A closure shares the variables it captures: Rhai turns each into a shared cell that the
//! closure and the script both hold. A value is otherwise copied when it is assigned, put in an
//! array or a map, or given to a function — but for an engine function's first argument,
//! which it may change in place (`push(v, f)` changes `v`). So a cycle of cells (a closure holding a
//! variable that holds the closure), which is never freed and keeps whatever it holds in
//! memory after every request, can only be made by writing into a cell after the closure that
//! shares it exists: before that, the closure did not exist to be written there.
//!
//! Writing into a cell is changing the variable: assigning it or a part of it; calling a method
//! that adds a value (`push`, `mixin`, …), a function of the script's or a closure a map holds
//! (either gets the variable as `this`), or a method that calls a closure with each element as
//! `this` (`for_each`, `filter`, …) when that closure may change `this`; or giving it (or
//! `it ?? x`) to `call`, which hands the cell itself to the closure it calls. Every such change
//! of a variable after a closure captured it (earlier in the text, in the same statement, or in
//! a loop around both when the variable outlives a round) is refused, and so is a call with
//! `!`, which lets a function change the caller's variables unseen. That rules out every way of
//! building a cycle that two adversarial reviews found (two variables, a map literal, an array,
//! an `if`, a function wrapping the closure, `call`, `??`, a map's closure under a native
//! function's name, one set through `Fn("set")`, shadowed names, a key computed from a
//! property), at the price of refusing some changes that would have been harmless — the
//! message says which call counted as a change and why, and how to write it instead. A value
//! that cannot hold a closure (a number, text, what `-` or `*` give, a constant list) is no
//! change: a counter, a budget counted down or a limit given a new number after a closure read
//! it are fine. Variables are told apart by their declarations: a `let` of
//! the same name in an inner block, or in a loop's round, is another variable.

use std::collections::{HashMap, HashSet};

use rhai::{ASTNode, Expr, FnCallExpr, Position, Stmt, AST};

use super::names::{map_properties, AnyKey, Functions, Properties};
use super::race::{closure_literal, continues_chain, methods_of, STORES};
use super::values::{
    assignment_holds_no_closure, closure_gives_data, holds_no_closure, Known, Unknown,
};

/// Methods that call the closure they are given with their object, or each element of it, as
/// `this` — which the closure may change.
const GIVE_THIS: [&str; 14] = [
    "call",
    "index_of",
    "for_each",
    "map",
    "filter",
    "find",
    "find_map",
    "some",
    "all",
    "reduce",
    "reduce_rev",
    "zip",
    "drain",
    "retain",
];

/// The changes of a variable after a closure captured it, or inside a closure that captured
/// it, a call with `!`, or a `break` that gives a variable out of its loop: the first of each
/// of the script's parts (its statements, each function), with its message and position.
pub(in crate::script) fn captured_variable_changed(
    ast: &AST,
    known: &Functions,
) -> Vec<(String, Position)> {
    if let Some(at) = break_with_variable(ast) {
        return vec![(BREAK_WITH_VARIABLE.to_owned(), at)];
    }
    let script = Script::new(ast, known);
    let main = ast.clone_statements_only();
    let mut found: Vec<_> = script.changed_in(&main, &[]).into_iter().collect();
    for (f, one) in super::each_function(ast) {
        // A closure's function takes what it captures as its first parameters.
        let shared = script.externals.get(f.name.as_str()).copied().unwrap_or(0);
        let captured: Vec<&str> = f.params.iter().take(shared).map(|p| p.as_str()).collect();
        found.extend(script.changed_in(&one, &captured));
    }
    found
}

/// A `switch` arm in a `when` or `require` whose value reads a variable: as Rhai optimises
/// expressions, such an arm (or a closure ending in the `switch`) hands out the variable's own
/// cell rather than a copy, which a closure could then be written into where the checks cannot
/// follow — three adversarial reviews built cycles through `payload` that way. Arms of
/// constants, and what operators make of variables (`amount * 2`), are new values.
pub(in crate::script) fn switch_arm_reads_variable(ast: &AST) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Switch(switch, _))) = path.last() {
            found.extend(
                switch
                    .1
                    .expressions
                    .iter()
                    .map(|arm| arm_value(&arm.rhs))
                    .filter(|value| !holds_no_closure(value, &Unknown))
                    .map(|value| (SWITCH_ARM_VARIABLE.to_owned(), value.position())),
            );
        }
        true
    });
    found
}

const SWITCH_ARM_VARIABLE: &str = "a switch arm in a when or require that gives a variable's value hands out the variable itself, not a copy, where the checks against closures that hold themselves cannot follow; give constants in the arms (switch api { \"v1\" => 1000000, _ => 3000000 }), or write a script";

/// The value of a `switch` arm: its expression, inside the block Rhai may wrap it in.
fn arm_value(e: &Expr) -> &Expr {
    match e {
        Expr::Stmt(block) => match block.statements() {
            [Stmt::Expr(inner)] => arm_value(inner),
            _ => e,
        },
        _ => e,
    }
}

const BREAK_WITH_VARIABLE: &str = "break with a value read from a variable gives that variable itself out of the loop, not a copy, and a closure sharing it could then come to hold itself where the checks cannot follow (a cycle never freed); give a variable the value before the break instead (found = x; break;)";

/// Where a loop is left with `break value` whose value may be a variable's own cell: Rhai
/// hands out a loop's value as it is, so `|| loop { break a; }` called gives `a` itself,
/// which `g.call().push(g)` or `call(f, loop { break a; })` then write into (a sixth review's
/// cycles). A value that is no variable's (`break n + 1`, `break "none"`) is a new one.
fn break_with_variable(ast: &AST) -> Option<Position> {
    let mut found = None;
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::BreakLoop(Some(value), _, at))) = path.last() {
            if !holds_no_closure(value, &Unknown) {
                found = Some(*at);
            }
        }
        found.is_none()
    });
    found
}

/// A declaration in one body: a `let`/`const`, a `for` loop (its variables), a `try` (its
/// `catch` variable); `None` for a name declared outside the body (a request variable, a
/// parameter, a variable a closure captured).
type Declaration = Option<*const Stmt>;

/// A capture of a variable: where, and the loops around it.
struct Capture {
    at: Position,
    loops: Vec<*const Stmt>,
}

impl Known for Script<'_> {
    /// One of [`Script::data`].
    fn data(&self, name: &str) -> bool {
        self.data.contains(name)
    }

    fn engine_function(&self, name: &str) -> bool {
        self.known.contains_key(name)
            && !self.own.contains(name)
            && !matches!(name, "call" | "Fn" | "curry")
    }

    fn gives_data(&self, closure: &Expr) -> bool {
        closure_gives_data(self.ast, closure, self)
    }

    fn closure(&self, name: &str) -> Option<(String, Vec<String>)> {
        let closure = self.closure_variables.get(name)?;
        let shared = self.externals.get(closure).copied().unwrap_or(0);
        let captured = self
            .params
            .get(closure)?
            .iter()
            .take(shared)
            .cloned()
            .collect();
        Some((closure.clone(), captured))
    }
}

/// A variable that the node at the end of a path changes.
struct Change<'p> {
    name: String,
    at: Position,
    /// The expression whose evaluation comes before the change (the value assigned, the call).
    written: ASTNode<'p>,
    /// Why a call counts as a change, for the message: a call reads as no change at all.
    how: Option<String>,
}

/// What the whole script tells about its functions.
struct Script<'a> {
    ast: &'a AST,
    known: &'a Functions,
    properties: Properties,
    /// How many variables each closure (by its function's name) captures.
    externals: HashMap<String, usize>,
    /// The closures whose bodies use `this`.
    use_this: HashSet<String>,
    /// The functions the script defines (closures left out).
    own: HashSet<String>,
    /// Variables given a closure once, when declared, and never changed: the closure's name.
    closure_variables: HashMap<String, String>,
    /// The script makes function pointers by name (`Fn("set")`), through which a native
    /// function may put a closure anywhere (`call(Fn("set"), m, "contains", |v| …)`): every
    /// method call on a captured variable may then be a map's closure.
    pointers: bool,
    /// Variables that can never hold a closure: declared (`let`, `for`) with values that hold
    /// none, and never changed but by writing such values (`let items = payload.items ?? [];`,
    /// `for it in items`, `let total = 0; … total += it.price;`).
    data: HashSet<String>,
    /// Each function's parameters (a closure's start with what it captures).
    params: HashMap<String, Vec<String>>,
}

impl<'a> Script<'a> {
    fn new(ast: &'a AST, known: &'a Functions) -> Self {
        let mut externals = HashMap::new();
        let mut given: HashMap<String, Vec<Option<String>>> = HashMap::new();
        let mut pointers = false;
        let own: HashSet<String> = ast
            .iter_functions()
            .map(|f| f.name)
            .filter(|name| !name.starts_with("anon$"))
            .map(str::to_owned)
            .collect();
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(e)) => {
                    // Both the closure's block and the function pointer in it are closures:
                    // the block knows what is captured.
                    if let Some((name, captured)) = closure_literal(e) {
                        let count = externals.entry(name).or_insert(0);
                        *count = captured.len().max(*count);
                    }
                }
                Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                    let closure = closure_literal(&var.1).map(|(name, _)| name);
                    given
                        .entry(var.0.name.to_string())
                        .or_default()
                        .push(closure);
                }
                Some(ASTNode::Stmt(Stmt::Assignment(assign))) => {
                    if let Some((name, _)) = head_variable(&assign.1.lhs) {
                        given.entry(name.to_owned()).or_default().push(None);
                    }
                }
                // A loop's or a `catch`'s variable may hold anything.
                Some(ASTNode::Stmt(Stmt::For(f, _))) => {
                    for var in std::iter::once(&f.0).chain(f.1.as_ref()) {
                        given.entry(var.name.to_string()).or_default().push(None);
                    }
                }
                Some(ASTNode::Stmt(Stmt::TryCatch(flow, _))) => {
                    if let Expr::Variable(var, ..) = &flow.expr {
                        given.entry(var.1.to_string()).or_default().push(None);
                    }
                }
                _ => {}
            }
            if let Some(
                ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)),
            ) = path.last()
            {
                // A pointer to the script's own function reaches nothing a call of it by
                // name would not; one to a native function (`Fn("set")`) may reach anything,
                // and so may one named like both (`call(Fn("set"), m, k, v)` runs the
                // engine's `set` when the script's takes another number of arguments).
                pointers |= call.name == "Fn"
                    && !matches!(call.args.as_slice(), [Expr::StringConstant(f, _)]
                        if own.contains(f.as_str()) && !known.contains_key(f.as_str()));
            }
            true
        });
        // A parameter may be given anything; what a closure captures is the same variable.
        for f in ast.iter_functions() {
            let shared = externals.get(f.name).copied().unwrap_or(0);
            for param in f.params.into_iter().skip(shared) {
                given.entry(param.to_owned()).or_default().push(None);
            }
        }
        let declared: HashSet<String> = given.keys().cloned().collect();
        let closure_variables: HashMap<String, String> = given
            .into_iter()
            .filter_map(|(name, values)| match <[_; 1]>::try_from(values) {
                Ok([Some(closure)]) => Some((name, closure)),
                _ => None,
            })
            .collect();
        let mut use_this = HashSet::new();
        for (f, one) in super::each_function(ast) {
            if !f.name.starts_with("anon$") {
                continue;
            }
            let mut this = false;
            one.walk(&mut |path: &[ASTNode]| {
                this = matches!(path.last(), Some(ASTNode::Expr(Expr::ThisPtr(..))));
                !this
            });
            if this {
                use_this.insert(f.name.to_string());
            }
        }
        // Every variable is taken to hold no closure until a declaration or a change of it
        // shows otherwise; what is left when none does holds none, whatever the order the
        // script runs in (each value written into one is made of request values, constants
        // and such variables). The same goes for the variables given one closure once: one
        // that a change may give another closure is no longer known by it.
        let (values, not_data) = declared_values(ast, &externals);
        // A request variable the script does not declare holds JSON — until the script writes
        // into it: read-only as they are, `payload.call(|| this.k = g)`, a closure setting
        // `this` given to `payload.items.some(…)`, or the script's function called as
        // `payload.put(g)` can (a fifth review stored a closure in `payload` that way).
        let data = values
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| !not_data.contains(name))
            .chain(
                crate::script::REQUEST_VARS
                    .iter()
                    .filter(|name| !declared.contains(**name))
                    .map(|name| name.to_string()),
            )
            .collect();
        let mut script = Self {
            ast,
            known,
            properties: Properties::none(),
            externals,
            use_this,
            own,
            closure_variables,
            pointers,
            data,
            params: ast
                .iter_functions()
                .map(|f| {
                    let params = f.params.iter().map(|p| p.to_string()).collect();
                    (f.name.to_owned(), params)
                })
                .collect(),
        };
        // The values that read each variable: when a variable turns out to hold a closure, only
        // they can change their answer (`let x1 = x0; let x2 = x1; …` is settled in one pass
        // over the values, not one walk of the whole script per link: 4,000 links took 2 s).
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (_, value)) in values.iter().enumerate() {
            let mut read = Vec::new();
            variables_read(value, &mut read);
            for (name, _) in read {
                readers.entry(name).or_default().push(i);
            }
        }
        loop {
            let properties = map_properties(ast, &script);
            script.properties = properties;
            let mut changed: HashSet<String> = HashSet::new();
            ast.walk(&mut |path: &[ASTNode]| {
                changed.extend(script.changes(path).iter().map(|c| c.name.to_owned()));
                true
            });
            // A closure variable changed (`h.become(k)`, a function of the script's that sets
            // `this`) may hold another closure, or none.
            let before = (script.data.len(), script.closure_variables.len());
            script.data.retain(|name| !changed.contains(name));
            script
                .closure_variables
                .retain(|name, _| !changed.contains(name));
            let mut pending: Vec<usize> = (0..values.len()).collect();
            while let Some(i) = pending.pop() {
                let (name, value) = &values[i];
                if script.data.contains(name) && !holds_no_closure(value, &script) {
                    script.data.remove(name);
                    pending.extend(readers.get(name).into_iter().flatten());
                }
            }
            if (script.data.len(), script.closure_variables.len()) == before {
                return script;
            }
        }
    }

    /// The first change in `body` (the script's statements, or one function) of a variable
    /// captured before it, or of one of `captured`, the variables a closure's body shares from
    /// the start; or a call with `!`.
    fn changed_in(&self, body: &AST, captured: &[&str]) -> Option<(String, Position)> {
        let mut captures: HashMap<(String, Declaration), Vec<Capture>> = HashMap::new();
        // The loops around each declaration (a `for` counts as around its own variables).
        let mut declared_in: HashMap<*const Stmt, Vec<*const Stmt>> = HashMap::new();
        // A `for` loop's variables are one cell for all its rounds (Rhai writes each item
        // into the same slot), unlike a `let` in its body, which is new each round.
        let mut for_loops: HashSet<*const Stmt> = HashSet::new();
        // The body's own statements, with the name each `let` declares: the block no node
        // of the walk stands for.
        let mut top: Vec<(*const Stmt, Option<String>)> = Vec::new();
        body.walk(&mut |path: &[ASTNode]| {
            if let [ASTNode::Stmt(s)] = path {
                let declares = match s {
                    Stmt::Var(var, ..) => Some(var.0.name.to_string()),
                    _ => None,
                };
                top.push((*s as *const Stmt, declares));
            }
            match path.last() {
                Some(ASTNode::Stmt(Stmt::Share(vars))) => {
                    for (ident, _) in vars.iter() {
                        let name = ident.name.to_string();
                        let declaration = declaration(path, &name, &top);
                        captures
                            .entry((name, declaration))
                            .or_default()
                            .push(Capture {
                                at: ident.pos,
                                loops: loops(path),
                            });
                    }
                }
                Some(ASTNode::Stmt(s @ (Stmt::Var(..) | Stmt::For(..) | Stmt::TryCatch(..)))) => {
                    declared_in.insert(*s as *const Stmt, loops(path));
                    if matches!(s, Stmt::For(..)) {
                        for_loops.insert(*s as *const Stmt);
                    }
                }
                _ => {}
            }
            true
        });
        let mut found = None;
        body.walk(&mut |path: &[ASTNode]| {
            if let Some((name, at)) = parent_scope_call(path) {
                found = Some((
                    format!(
                        "{name}!(…) runs {name} on this script's own variables, free to change any of them where the checks cannot follow — a closure could come to hold itself, a cycle never freed; pass {name} what it needs as parameters: {name}(…)"
                    ),
                    at,
                ));
                return false;
            }
            for Change {
                name,
                at,
                written,
                how,
            } in self.changes(path)
            {
                let name = name.as_str();
                let declaration = declaration(path, name, &top);
                let inside_closure = declaration.is_none() && captured.contains(&name);
                let earlier = captures.get(&(name.to_owned(), declaration));
                if !inside_closure && earlier.is_none() {
                    continue;
                }
                let earlier = earlier.map_or(&[][..], Vec::as_slice);
                let statement = simple_statement(path);
                let outlives = |round: &*const Stmt| match declaration {
                    None => true,
                    Some(d) if d == *round => for_loops.contains(&d),
                    Some(d) => !declared_in.get(&d).is_some_and(|l| l.contains(round)),
                };
                let how = how.as_deref();
                let (message, at) = if inside_closure {
                    // Collecting into a list (`bad.push(x.sku)`) is written with filter and map;
                    // adding up, with reduce.
                    let instead = if how.is_some_and(|how| how.contains("puts a value into")) {
                        "(let bad = filter(items, |x| x.qty > 4).map(|x| x.sku);)"
                    } else {
                        "(let total = reduce(items, |sum, i| sum + i, 0);)"
                    };
                    (
                        format!(
                            "{name} is changed inside a closure that captured it{}: a closure shares what it captures, so {name} could come to hold a closure that holds {name} — a cycle never freed, kept in memory after every request; have the closure give the value instead {instead}",
                            how.map(|how| format!(" ({how})")).unwrap_or_default()
                        ),
                        at,
                    )
                } else if let Some(read) = captured_in(written, name) {
                    (holds_itself(name), read)
                } else if let Some(c) = earlier.iter().find(|c| before(c.at, at)) {
                    (after_capture(name, how, "after the closure at", c.at), at)
                } else if let Some(c) = statement
                    .and_then(|s| captured_in(ASTNode::Stmt(s), name))
                {
                    (after_capture(name, how, "in the same statement as the closure at", c), at)
                } else if let Some(c) = earlier.iter().find(|c| {
                    c.loops
                        .iter()
                        .any(|round| outlives(round) && path_holds(path, *round))
                }) {
                    (after_capture(name, how, "in a loop where the closure at", c.at), at)
                } else {
                    continue;
                };
                found = Some((message, at));
                return false;
            }
            true
        });
        found
    }

    /// The variables the node at the end of `path` changes. Writing a value that can hold
    /// no closure (`limit = 3`, `total += i.price * i.qty`, `m.push("text")`) is no change
    /// here: it cannot put a closure where it would hold itself.
    fn changes<'p>(&self, path: &'p [ASTNode<'p>]) -> Vec<Change<'p>> {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Assignment(assign)))
                if !assignment_holds_no_closure(assign, self) =>
            {
                head_variable(&assign.1.lhs)
                    .map(|(name, at)| Change {
                        name: name.to_owned(),
                        at,
                        written: ASTNode::Expr(&assign.1.rhs),
                        how: None,
                    })
                    .into_iter()
                    .collect()
            }
            // `call(f, a, …)` hands `a` itself to `f`, which may change it.
            Some(
                node
                @ (ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _))),
            ) if call.name == "call" => given_to_call(call.args.iter().skip(1), *node),
            // `push(v, f)`: an engine function called with a variable first changes that
            // variable in place, as `v.push(f)` does (a function of the script's gets a copy).
            Some(
                node @ (ASTNode::Expr(Expr::FnCall(call, at))
                | ASTNode::Stmt(Stmt::FnCall(call, at))),
            ) if !call.is_operator_call() && !self.own.contains(call.name.as_str()) => {
                let (Some(Expr::Variable(var, ..)), Some(rest)) =
                    (call.args.first(), call.args.get(1..))
                else {
                    return Vec::new();
                };
                let object = var.1.as_str();
                self.native_changes(object, call.name.as_str(), rest, true)
                    .map(|how| Change {
                        name: object.to_owned(),
                        at: *at,
                        written: *node,
                        how: Some(how),
                    })
                    .into_iter()
                    .collect()
            }
            Some(ASTNode::Expr(e @ (Expr::Dot(chain, ..) | Expr::Index(chain, ..)))) => {
                // Only at the head of a chain: `a.b.push(x)` changes `a`.
                if continues_chain(path) {
                    return Vec::new();
                }
                let Expr::Variable(var, ..) = &chain.lhs else {
                    return self.changes_through(e, &chain.lhs);
                };
                let object = var.1.as_str();
                let mut changed = Vec::new();
                for (call, at) in methods_of(e) {
                    if call.name == "call" {
                        changed.extend(given_to_call(call.args.iter(), ASTNode::Expr(e)));
                    }
                    if let Some(how) = self.changes_its_object(object, call) {
                        changed.push(Change {
                            name: object.to_owned(),
                            at,
                            written: ASTNode::Expr(e),
                            how: Some(how),
                        });
                    }
                }
                changed
            }
            _ => Vec::new(),
        }
    }

    /// The changes of a chain `e` whose head is no variable: its value may still be a
    /// variable's own cell (a closure ending in a `switch`, as `when` and `require` are
    /// optimised: `(|| switch amount { … _ => payload }).call().call(|v| this.k = v, …)`, a
    /// ninth review), so a method that may change its object changes every variable the head
    /// reads.
    fn changes_through<'p>(&self, e: &'p Expr, head: &Expr) -> Vec<Change<'p>> {
        // A closure at the head is called by the chain: what it gives counts.
        let mut read = Vec::new();
        variables_read(head, &mut read);
        let mut changed = Vec::new();
        for (call, at) in methods_of(e) {
            if call.name == "call" {
                changed.extend(given_to_call(call.args.iter(), ASTNode::Expr(e)));
            }
            for (name, _) in &read {
                if let Some(how) = self.changes_its_object(name, call) {
                    changed.push(Change {
                        name: name.clone(),
                        at,
                        written: ASTNode::Expr(e),
                        how: Some(how),
                    });
                }
            }
        }
        changed
    }

    /// Why a method call on `object` may write into it, if it may.
    fn changes_its_object(&self, object: &str, call: &FnCallExpr) -> Option<String> {
        let name = call.name.as_str();
        let calls = format!("{object}.{name}(…)");
        // `f.call(…)` of a closure variable calls it, with no `this`.
        if name == "call" && self.closure_variables.contains_key(object) {
            return None;
        }
        // The script's own function, or a closure a map holds, gets it as `this` (a map's
        // closure even under a native function's name).
        let how = if name == "call" {
            // Not a variable given one closure: it may hold a map, whose `call` calls a
            // closure with the map as `this`.
            format!(
                "{object} may not hold a closure, and then {calls} calls one with {object} as this"
            )
        } else if self.own.contains(name) {
            format!("{calls} runs this script's fn {name} with {object} as this, free to change it")
        } else if !self.known.contains_key(name) {
            format!("{name} is no function the engine has, so {calls} can only call a closure a map holds, with {object} as this")
        } else if let Some(how) = self.native_changes(object, name, &call.args, false) {
            how
        } else if let Some((at, kind)) = self.properties.computed_for(name) {
            let (line, column) = (at.line().unwrap_or(0), at.position().unwrap_or(0));
            let what = match kind {
                AnyKey::Computed => format!("the map key computed at {line}:{column} may be {name}"),
                AnyKey::This => format!("this = … at {line}:{column} may set the value under any map key, {name} among them"),
                AnyKey::Map => format!("map(…) at {line}:{column} gives its closure's values under any map key, {name} among them"),
            };
            format!("{what}, with a value that may be a closure, which {calls} would call with {object} as this; write values made of constants and the request's values only there")
        } else if self.properties.may_hold(name) {
            format!("a map in this script may hold a closure under the key {name}, which {calls} would call with {object} as this; rename the key, or give it no closure")
        } else if self.pointers {
            format!("the script makes a pointer to a native function (Fn(\"…\")), through which a closure may be put under any key, so {calls} may call one with {object} as this; call the function by name instead")
        } else {
            return None;
        };
        Some(how)
    }

    /// Why the engine's function `name`, called on `object` (as a method, or as a function
    /// with `object` first) with `args` besides, may write into it, if it may: it stores a
    /// value that may hold a closure, or calls a closure that may change `this`.
    fn native_changes(
        &self,
        object: &str,
        name: &str,
        args: &[Expr],
        function: bool,
    ) -> Option<String> {
        let calls = if function {
            format!("{name}({object}, …)")
        } else {
            format!("{object}.{name}(…)")
        };
        if STORES.contains(&name) && !args.iter().all(|arg| holds_no_closure(arg, self)) {
            return Some(format!("{calls} puts a value into {object}"));
        }
        if GIVE_THIS.contains(&name) && args.iter().any(|arg| self.may_change_this(arg)) {
            let instead = if name == "index_of" {
                "; to look a value up, contains(…) or in calls nothing"
            } else {
                ""
            };
            return Some(format!("{calls} calls what it is given with {object} or its items as this, and it is given what may be a closure that changes this{instead}"));
        }
        None
    }

    /// Whether a method's argument may be a closure that changes `this`: a closure (written
    /// there, or a variable given one) that uses `this`, or anything that is neither a closure
    /// nor a constant nor a request variable.
    fn may_change_this(&self, arg: &Expr) -> bool {
        let closure = match arg {
            Expr::Variable(var, ..) => self.closure_variables.get(var.1.as_str()).cloned(),
            _ => closure_literal(arg).map(|(name, _)| name),
        };
        if let Some(name) = closure {
            return self.use_this.contains(&name);
        }
        !holds_no_closure(arg, self)
    }
}

/// Every value a variable is declared with (a `let`'s or `const`'s value, a `for` loop's list
/// for its variable; its counter is a number), and the names declared otherwise: parameters
/// (but what a closure captures, which is the outer variable) and `catch` variables, which
/// may be given anything.
fn declared_values(
    ast: &AST,
    externals: &HashMap<String, usize>,
) -> (Vec<(String, Expr)>, HashSet<String>) {
    let mut values = Vec::new();
    let mut other = HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                values.push((var.0.name.to_string(), var.1.clone()));
            }
            Some(ASTNode::Stmt(Stmt::For(f, _))) => {
                values.push((f.0.name.to_string(), f.2.expr.clone()));
            }
            Some(ASTNode::Stmt(Stmt::TryCatch(flow, _))) => {
                if let Expr::Variable(var, ..) = &flow.expr {
                    other.insert(var.1.to_string());
                }
            }
            _ => {}
        }
        true
    });
    for f in ast.iter_functions() {
        let shared = externals.get(f.name).copied().unwrap_or(0);
        other.extend(f.params.into_iter().skip(shared).map(str::to_owned));
    }
    (values, other)
}

/// The variables among `args` (given to `call`), each with where, as changed by `e`.
fn given_to_call<'p>(args: impl Iterator<Item = &'p Expr>, call: ASTNode<'p>) -> Vec<Change<'p>> {
    let mut given = Vec::new();
    for arg in args {
        values_of(arg, &mut given);
    }
    given
        .into_iter()
        .map(|(name, at)| Change {
            how: Some(format!(
                "given to call(…), which hands {name} itself, not a copy, to the function it calls"
            )),
            name,
            at,
            written: call,
        })
        .collect()
}

/// The variables whose own value (their cell, not a copy) `e` may give: any variable it reads,
/// also inside a closure called in it. Rhai copies most values on the way, but not all: a
/// variable, either side of `??`, the variable a property or item belongs to, and (as `when`
/// and `require` are optimised) a `switch` arm, or a closure ending in one, hand out the cell
/// itself (the eighth and ninth reviews wrote a closure into `payload` through `call(f, switch
/// amount { … _ => payload }, …)` and `call(f, call(|| switch …), …)`), so every variable read
/// counts. A closure that is `e` itself is given as a closure, not as what it would give.
fn values_of(e: &Expr, out: &mut Vec<(String, Position)>) {
    if closure_literal(e).is_none() {
        variables_read(e, out);
    }
}

/// Every variable `e` reads, also inside the closures written in it.
fn variables_read(e: &Expr, out: &mut Vec<(String, Position)>) {
    e.walk(&mut Vec::new(), &mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Variable(var, _, at))) = path.last() {
            out.push((var.1.to_string(), *at));
        }
        true
    });
}

/// The name and position of a call with `!` at the end of `path`.
fn parent_scope_call<'p>(path: &'p [ASTNode<'p>]) -> Option<(&'p str, Position)> {
    match path.last()? {
        ASTNode::Expr(Expr::FnCall(call, at)) | ASTNode::Stmt(Stmt::FnCall(call, at))
            if call.capture_parent_scope =>
        {
            Some((call.name.as_str(), *at))
        }
        _ => None,
    }
}

/// The variable an assignment's target is part of, with where: `m` for `m.a[0] = …`.
fn head_variable(mut target: &Expr) -> Option<(&str, Position)> {
    while let Expr::Dot(chain, ..) | Expr::Index(chain, ..) = target {
        target = &chain.lhs;
    }
    match target {
        Expr::Variable(var, _, at) => Some((var.1.as_str(), *at)),
        _ => None,
    }
}

/// The loops around the node at the end of `path`.
fn loops(path: &[ASTNode]) -> Vec<*const Stmt> {
    path.iter()
        .filter_map(|node| match node {
            ASTNode::Stmt(s @ (Stmt::While(..) | Stmt::Do(..) | Stmt::For(..))) => {
                Some(*s as *const Stmt)
            }
            _ => None,
        })
        .collect()
}

/// Whether `stmt` is on `path`.
fn path_holds(path: &[ASTNode], stmt: *const Stmt) -> bool {
    path.iter()
        .any(|node| matches!(node, ASTNode::Stmt(s) if std::ptr::eq(*s, stmt)))
}

/// The outermost statement on `path` that is no block, branch or loop: the one whose parts
/// Rhai runs in an order of its own (an assignment's value before its target's index).
fn simple_statement<'p>(path: &'p [ASTNode<'p>]) -> Option<&'p Stmt> {
    path.iter().find_map(|node| match node {
        ASTNode::Stmt(
            Stmt::Block(..)
            | Stmt::If(..)
            | Stmt::Switch(..)
            | Stmt::While(..)
            | Stmt::Do(..)
            | Stmt::For(..)
            | Stmt::TryCatch(..),
        ) => None,
        ASTNode::Stmt(s) => Some(*s),
        _ => None,
    })
}

/// The declaration of the `name` seen at the end of `path`: the nearest `let` or `const`
/// before it in a block around it, or a `for` or `catch` around it that names it.
fn declaration(path: &[ASTNode], name: &str, top: &[(*const Stmt, Option<String>)]) -> Declaration {
    for pair in path.windows(2).rev() {
        let ASTNode::Stmt(child) = pair[1] else {
            continue;
        };
        let lists: [&[Stmt]; 2] = match pair[0] {
            ASTNode::Stmt(Stmt::Block(block)) => [block.statements(), &[]],
            ASTNode::Expr(Expr::Stmt(block)) => [block.statements(), &[]],
            ASTNode::Stmt(s @ Stmt::For(f, _)) => {
                if f.0.name == name || f.1.as_ref().is_some_and(|counter| counter.name == name) {
                    return Some(s);
                }
                [f.2.body.statements(), &[]]
            }
            ASTNode::Stmt(s @ Stmt::TryCatch(flow, _)) => {
                let in_catch = flow
                    .branch
                    .statements()
                    .iter()
                    .any(|c| std::ptr::eq(c, child));
                if in_catch && matches!(&flow.expr, Expr::Variable(var, ..) if var.1 == name) {
                    return Some(s);
                }
                [flow.body.statements(), flow.branch.statements()]
            }
            ASTNode::Stmt(Stmt::If(flow, _) | Stmt::While(flow, _) | Stmt::Do(flow, ..)) => {
                [flow.body.statements(), flow.branch.statements()]
            }
            _ => continue,
        };
        for list in lists {
            if let Some(at) = list.iter().position(|s| std::ptr::eq(s, child)) {
                let declared = list[..at]
                    .iter()
                    .rev()
                    .find(|s| matches!(s, Stmt::Var(var, ..) if var.0.name == name));
                if let Some(declared) = declared {
                    return Some(declared);
                }
            }
        }
    }
    // The body's own statements: a `let` before the one the path starts from.
    let ASTNode::Stmt(first) = path.first()? else {
        return None;
    };
    let at = top.iter().position(|(s, _)| std::ptr::eq(*s, *first))?;
    top[..at]
        .iter()
        .rev()
        .find(|(_, declares)| declares.as_deref() == Some(name))
        .map(|(s, _)| *s)
}

fn holds_itself(name: &str) -> String {
    format!(
        "the closure given to {name} captures {name}: a closure shares what it captures, so {name} would hold itself — never freed, kept in memory after every request — and a call through it would stall, then fail with data race detected; for a function that calls itself write fn name(…) {{ … }}, which may call itself"
    )
}

fn after_capture(name: &str, how: Option<&str>, when: &str, capture: Position) -> String {
    let (line, column) = (capture.line().unwrap_or(0), capture.position().unwrap_or(0));
    let how = how.map(|how| format!(" ({how})")).unwrap_or_default();
    format!(
        "{name} is changed here{how} {when} {line}:{column} captured it: a closure shares what it captures, so {name} could come to hold that closure, which holds {name} — a cycle never freed, kept in memory after every request; give {name} its last value before the closure is made, or let the closure capture a copy that is not changed (let {name}_now = {name};)"
    )
}

/// Where a closure written in `node` captures `name`, if one does.
fn captured_in(node: ASTNode, name: &str) -> Option<Position> {
    let mut found = None;
    let mut on_node = |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Share(vars))) = path.last() {
            found = vars
                .iter()
                .find(|(ident, _)| ident.name == name)
                .map(|(ident, _)| ident.pos);
        }
        found.is_none()
    };
    match node {
        ASTNode::Expr(e) => e.walk(&mut Vec::new(), &mut on_node),
        ASTNode::Stmt(s) => s.walk(&mut Vec::new(), &mut on_node),
        _ => true,
    };
    found
}

/// Whether `a` comes before `b` in the text.
fn before(a: Position, b: Position) -> bool {
    let key = |p: Position| (p.line().unwrap_or(0), p.position().unwrap_or(0));
    key(a) < key(b)
}

#[cfg(test)]
mod tests {
    use crate::script::tests::{assert_refused, run_unchecked};
    use crate::script::{ScriptEngine, ScriptVerdict};

    fn holds_itself(v: &str) -> String {
        super::holds_itself(v)
    }

    const FOR_EACH: &str = "a.for_each(…) calls what it is given with a or its items as this, and it is given what may be a closure that changes this";
    const CALL: &str =
        "given to call(…), which hands a itself, not a copy, to the function it calls";

    /// [`after`] for a change made by a call, with why it counts as one.
    fn after_how(v: &str, how: &str, line: u16, column: u16) -> String {
        super::after_capture(
            v,
            Some(how),
            "after the closure at",
            rhai::Position::new(line, column),
        )
    }

    fn after(v: &str, line: usize, column: usize) -> String {
        format!("{v} is changed here after the closure at {line}:{column} captured it: a closure shares what it captures, so {v} could come to hold that closure, which holds {v} — a cycle never freed, kept in memory after every request; give {v} its last value before the closure is made, or let the closure capture a copy that is not changed (let {v}_now = {v};)")
    }

    /// Every way found to make a closure hold itself is a load error. Run without the check,
    /// those that run kept about 5 KB per run in memory for good (500 KB over 100 runs, against
    /// 8 KB for the same closure not stored: measured with a 300-element array in the cycle);
    /// some (`push`, `mixin` of a closure into what it captures) fail with data race detected.
    #[test]
    fn a_closure_that_could_hold_itself_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, message, line, column) in [
            // Given the closure itself: at the closure's read of the variable.
            ("let f = 0;\nf = || [f, 1];\ntrue", holds_itself("f"), 2, 9),
            (
                "let f = 0;\nf = |n| if n > 3 { n } else { f.call(n + 1) };\nf.call(0) > 0",
                holds_itself("f"),
                2,
                31,
            ),
            (
                "let m = #{};\nm.check = || m.len();\ntrue",
                holds_itself("m"),
                2,
                14,
            ),
            (
                "let m = #{};\nm[\"f\"] = || m;\ntrue",
                holds_itself("m"),
                2,
                13,
            ),
            (
                "let m = #{};\nm = #{f: || m};\ntrue",
                holds_itself("m"),
                2,
                13,
            ),
            ("let a = 0;\na = [|| a];\ntrue", holds_itself("a"), 2, 9),
            (
                "let a = 0;\na = if true { || a } else { 0 };\ntrue",
                holds_itself("a"),
                2,
                18,
            ),
            (
                "fn wrap(f) { [f] }\nlet a = 0;\na = wrap(|| a);\ntrue",
                holds_itself("a"),
                3,
                13,
            ),
            // Given, later, a closure that holds it.
            (
                "let a = 0; let b = 0;\na = || b;\nb = || a;\ntrue",
                after("b", 2, 8),
                3,
                1,
            ),
            (
                "let m = #{}; let n = #{};\nm.f = || n;\nn.g = || m;\ntrue",
                after("n", 2, 10),
                3,
                1,
            ),
            (
                "let g = |x| x; let f = 0;\nlet h = || f;\nf = || h.call();\ntrue",
                after("f", 2, 12),
                3,
                1,
            ),
            (
                "let a = 0;\nlet f = || a;\n{ a = f; }\ntrue",
                after("a", 2, 12),
                3,
                3,
            ),
            (
                "let a = [];\nlet f = || a;\na.push([f]);\ntrue",
                after_how("a", "a.push(…) puts a value into a", 2, 12),
                3,
                3,
            ),
            (
                "let a = [];\nlet f = || a;\na += [f];\ntrue",
                after("a", 2, 12),
                3,
                1,
            ),
            (
                "let m = #{};\nlet f = || m;\nm.mixin(#{f: f});\ntrue",
                after_how("m", "m.mixin(…) puts a value into m", 2, 12),
                3,
                3,
            ),
            // Through `this`: a closure that sets it, the script's own function, a map's.
            (
                "let a = [1];\nlet f = || a;\nlet g = [f];\na.for_each(|| this = g);\ntrue",
                after_how("a", FOR_EACH, 2, 12),
                4,
                3,
            ),
            (
                "fn keep(v) { this.push(v) }\nlet a = [];\nlet f = || a;\na.keep([f]);\ntrue",
                after_how("a", "a.keep(…) runs this script's fn keep with a as this, free to change it", 3, 12),
                4,
                3,
            ),
            (
                "let m = #{};\nm.keep = |v| { this.v = v };\nlet f = || m;\nm.keep([f]);\ntrue",
                after_how("m", "keep is no function the engine has, so m.keep(…) can only call a closure a map holds, with m as this", 3, 12),
                4,
                3,
            ),
        ] {
            assert_refused(&engine, src, &message, line, column);
        }
        // Given to `call`, which hands the variable itself to the closure; through a map's
        // closure under a native function's name; a block around a closure (not itself one).
        for (src, message, line, column) in [
            (
                "let a = [1];\nlet f = || a;\ncall(|x, v| { x += [v]; }, a, f);\ntrue",
                after_how("a", CALL, 2, 12),
                3,
                28,
            ),
            (
                "let m = #{n: 1};\nm.get = |k, v| { this.v = v; true };\nlet f = || m;\nm.get(\"x\", [f]);\ntrue",
                after_how("m", "a map in this script may hold a closure under the key get, which m.get(…) would call with m as this; rename the key, or give it no closure", 3, 12),
                4,
                3,
            ),
            (
                "let a = [1];\nlet f = || a;\nlet g = [f];\na.for_each({ let z = 0; || this = g });\ntrue",
                after_how("a", FOR_EACH, 2, 12),
                4,
                3,
            ),
            // Rhai works out the value before the target's index.
            (
                "let a = #{d: 1}; let b = 0;\na[{ b = || a; \"x\" }] = || b;\ntrue",
                "a is changed here in the same statement as the closure at 2:12 captured it: a closure shares what it captures, so a could come to hold that closure, which holds a — a cycle never freed, kept in memory after every request; give a its last value before the closure is made, or let the closure capture a copy that is not changed (let a_now = a;)".to_owned(),
                2,
                1,
            ),
            // `??` gives the variable itself, as a plain variable does.
            (
                "let a = [1];\nlet f = || a;\ncall(|x, v| { x += [v]; }, a ?? 0, f);\ntrue",
                after_how("a", CALL, 2, 12),
                3,
                28,
            ),
            // A native function called through a pointer may put a closure in any map.
            (
                "let m = #{n: 1};\ncall(Fn(\"set\"), m, \"contains\", |v| { this.v = v; true });\nlet f = || m;\nm.contains([f]);\ntrue",
                after_how("m", "the script makes a pointer to a native function (Fn(\"…\")), through which a closure may be put under any key, so m.contains(…) may call one with m as this; call the function by name instead", 3, 12),
                4,
                3,
            ),
            // A request variable's name, or a closure variable's, given something else.
            (
                "let a = [[1]];\nlet h = || a;\nlet g = [h];\nlet payload = || this = [g];\na.for_each(payload);\ntrue",
                after_how("a", FOR_EACH, 2, 12),
                5,
                3,
            ),
            (
                "let over = |x| x > 3;\nlet a = [[1]];\nlet h = || a;\nlet g = [h];\nfor over in [|| this = [g]] { a.for_each(over); }\ntrue",
                after_how("a", FOR_EACH, 3, 12),
                5,
                33,
            ),
            (
                "let f = || 0;\nfor f in [#{b: 1}] {\n  let c = || f;\n  let d = [c];\n  f.call(|| { this.v = d; });\n}\ntrue",
                after_how("f", "f may not hold a closure, and then f.call(…) calls one with f as this", 3, 14),
                5,
                5,
            ),
            // A call with `!` may change any of the script's variables.
            (
                "fn keep(v) { if false { let payload = 0; } payload.v = v; true }\nlet f = || payload;\nkeep!([f]);\ntrue",
                "keep!(…) runs keep on this script's own variables, free to change any of them where the checks cannot follow — a closure could come to hold itself, a cycle never freed; pass keep what it needs as parameters: keep(…)".to_owned(),
                3,
                1,
            ),
        ] {
            assert_refused(&engine, src, &message, line, column);
        }
        // A map's closure under a key computed from a property or an item: any key.
        for key in ["key.name", "keys[0]"] {
            let src = format!("let n = #{{}};\nlet key = #{{name: \"contains\"}};\nlet keys = [\"contains\"];\nn[{key}] = |v| {{ this.v = v; true }};\nlet f = || n.len();\nn.contains([f]);\ntrue");
            assert_refused(
                &engine,
                &src,
                &after_how("n", &format!("the map key computed at 4:{} may be contains, with a value that may be a closure, which n.contains(…) would call with n as this; write values made of constants and the request's values only there", 5 + key.len()), 5, 12),
                6,
                3,
            );
        }
        // Values that may hold a closure, given by an operator or a method that stores them.
        for (src, how) in [
            ("let a = [];\nlet f = || a;\na += f;\ntrue", None),
            (
                "let a = [];\nlet f = || a;\na.push(f);\ntrue",
                Some("a.push(…) puts a value into a"),
            ),
            ("let a = [];\nlet f = || a;\na = a + [f];\ntrue", None),
            ("let a = #{all: 1};\nlet f = || a;\na.all = f;\ntrue", None),
        ] {
            let message = match how {
                Some(how) => after_how("a", how, 2, 12),
                None => after("a", 2, 12),
            };
            assert_refused(
                &engine,
                src,
                &message,
                3,
                1 + 2 * usize::from(how.is_some()),
            );
        }
        // A variable counts as holding no closure only while everything written into it
        // holds none: here `row` is given a closure once, so `seen[k] = row` may store one,
        // and so may `total += extra` once `extra` is a list that holds one.
        assert_refused(
            &engine,
            "let seen = #{};\nlet row = #{n: 1};\nlet f = || seen.len();\nrow = #{g: f};\nseen[order_id] = row;\nseen.all(1);\ntrue",
            &after("seen", 3, 12),
            5,
            1,
        );
        assert_refused(
            &engine,
            "let total = [];\nlet extra = [1];\nlet f = || total;\nextra = [f];\ntotal += extra;\ntrue",
            &after("total", 3, 12),
            5,
            1,
        );
        // Nor can `curry` written in the script hand it over.
        let e = engine
            .compile_script("let a = [1];\nlet k = curry(|x, v| { x += [v]; }, a);\ntrue")
            .unwrap_err();
        assert!(
            e.message.starts_with("curry is not available in rules"),
            "{e:?}"
        );
        // In a loop, a change before the closure in the text comes after it the next round.
        assert_refused(
            &engine,
            "let a = 0;\nfor i in 0..3 {\n  a = i;\n  let f = || a;\n}\ntrue",
            "a is changed here in a loop where the closure at 4:14 captured it: a closure shares what it captures, so a could come to hold that closure, which holds a — a cycle never freed, kept in memory after every request; give a its last value before the closure is made, or let the closure capture a copy that is not changed (let a_now = a;)",
            3,
            3,
        );
        // A closure changing what it captured, whatever it writes.
        assert_refused(
            &engine,
            "let total = 0;\n[1, 2].for_each(|x| total += x);\ntotal == 3",
            "total is changed inside a closure that captured it: a closure shares what it captures, so total could come to hold a closure that holds total — a cycle never freed, kept in memory after every request; have the closure give the value instead (let total = reduce(items, |sum, i| sum + i, 0);)",
            2,
            21,
        );
        // Collecting into a captured list is written with filter and map.
        assert_refused(
            &engine,
            "let bad = [];\n[#{qty: 5, sku: \"a\"}].filter(|x| { if x.qty > 4 { bad.push(x.sku); } true });\nbad.len() == 1",
            "bad is changed inside a closure that captured it (bad.push(…) puts a value into bad): a closure shares what it captures, so bad could come to hold a closure that holds bad — a cycle never freed, kept in memory after every request; have the closure give the value instead (let bad = filter(items, |x| x.qty > 4).map(|x| x.sku);)",
            2,
            55,
        );
        // Run without the check, the recursive one fails on every request.
        let ran = run_unchecked(
            &engine,
            "let f = 0;\nf = |n| if n > 3 { n } else { f.call(n + 1) };\nf.call(0) > 0",
        )
        .unwrap_err();
        assert!(ran.contains("data race detected"), "{ran}");
    }

    /// The cycles the third to ninth adversarial reviews built past the check, each
    /// refused: an engine function changing its first argument (`push(v, f)`), a script's `fn
    /// set` hiding `Fn("set")`, a change inside an index (`w[v.push(f)]`), a closure variable
    /// given another closure through `this`, closures put under any key by `map`, by `this = …`
    /// in `filter` or in a function called on a property, a closure given back by `reduce`, a
    /// closure kept in a request variable, a variable handed out by `break`, a `for` loop's
    /// variable changed before a closure of a later round captures it, a `switch` arm given to
    /// `call`.
    /// Run without the check, each kept its closure's list in memory for good (11 → 425 MB
    /// over 3,000 requests with 9,000 elements in it).
    #[test]
    fn the_third_reviews_cycles_are_load_errors() {
        let engine = ScriptEngine::new();
        for (src, name, line, column) in [
            ("let v = [];\nlet a = 0;\nlet f = || a;\npush(v, f);\na = v;\ntrue", "a", 5, 1),
            ("let v = #{};\nlet a = 0;\nlet f = || a;\nmixin(v, #{k: f});\nlet w = [0];\nfor_each(w, || this = [f]);\nlet z = [];\ninsert(z, 0, f);\na = [v, w, z];\ntrue", "a", 9, 1),
            ("fn set(x) { x }\nlet m = #{n: 1};\ncall(Fn(\"set\"), m, \"contains\", |v| { this.v = v; true });\nlet f = || m;\nm.contains([f]);\ntrue", "m", 5, 3),
            ("let v = [];\nlet a = 0;\nlet f = || a;\nlet w = [0];\ntry { w[v.push(f)] } catch { }\na = v;\ntrue", "a", 6, 1),
            ("fn become(v) { this = v; }\nlet a = [0];\nlet f = || a;\nlet g = [f];\nlet k = || { this = g; };\nlet h = |x| 0;\nh.become(k);\na.for_each(h);\ntrue", "a", 8, 3),
            ("fn become(v) { this = v; }\nlet f = || 0;\nf.become(#{});\nlet c = || f;\nlet g = [c];\nf.call(|| { this.v = g; });\ntrue", "f", 6, 3),
            ("let d = #{contains: 0};\nlet m = d.map(|k| |v| { this.v = v; true });\nlet f = || m;\nm.contains([f]);\ntrue", "m", 4, 3),
            ("let d = #{contains: 0};\nd.filter(|k| { this = |v| { this.v = v; true }; true });\nlet f = || d;\nd.contains([f]);\ntrue", "d", 4, 3),
            ("fn put(v) { this = v; }\nlet d = #{contains: 0};\nd.contains.put(|v| { this.v = v; true });\nlet f = || d;\nd.contains([f]);\ntrue", "d", 5, 3),
            ("let m = payload.custom_data.map(|k| |v| { this.v = v; true });\nlet f = || m;\nm.contains([f]);\ntrue", "m", 3, 3),
            // A fourth: `reduce` gives its starting value back, here a closure.
            ("let a = [];\nlet g = [1].reduce(|acc, x| acc, || a);\na = [g];\ntrue", "a", 3, 1),
            ("let a = 0;\nlet h = || a;\nlet g = [1].reduce_rev(|acc, x| acc, h);\na = #{g: g};\ntrue", "a", 4, 1),
            ("let a = 0;\nlet g = reduce([1], |acc, x| acc, || a);\na = [g];\ntrue", "a", 3, 1),
            // A ninth: so may a closure ending in one, given on or called on.
            ("let a = #{};\ncall(|x, v| { x.k = v }, call(|| switch amount { 0 => #{}, _ => a }), || a);\ntrue", "holds amount", 2, 41),
            ("let a = #{};\n(|| switch amount { 0 => #{}, _ => a }).call().call(|v| { this.k = v }, || a);\ntrue", "holds amount", 2, 12),
            // An eighth: a `switch` arm given to `call` may hand out the variable itself.
            ("let a = #{};\ncall(|x, v| { x.k = v }, switch amount { 0 => #{}, _ => a }, || a);\ntrue", "holds a", 2, 65),
            // A seventh: a `for` loop's variable is one cell for all its rounds.
            ("let h = 0;\nfor x in [1, 2] {\n  x = h;\n  h = || x;\n}\ntrue", "x", 3, 3),
            ("let h = 0;\nfor x in [#{}, #{}] {\n  x.k = h;\n  h = #{f: || x};\n}\ntrue", "x", 3, 3),
            // A sixth: a loop's `break a` gives `a` itself.
            ("let a = [];\nlet g = || loop { break a; };\ng.call().push(g);\ntrue", "break", 2, 19),
            ("let a = #{};\nlet g = || a;\ncall(|x| x.k = g, loop { break a; });\ntrue", "break", 3, 26),
            // A fifth: a closure written into a request variable, read-only as it is, and
            // read back out of it.
            ("let a = 0;\nlet g = || a;\npayload.call(|| { this.k = g; });\na = payload.k;\ntrue", "a", 4, 1),
            ("let a = 0;\nlet g = || a;\npayload.custom_data.items.some(|| { this.k = g; false });\na = payload.custom_data.items[0].k;\ntrue", "a", 4, 1),
            ("fn put(v) { this.k = v; }\nlet a = 0;\nlet g = || a;\npayload.put(g);\na = payload.k;\ntrue", "a", 5, 1),
        ] {
            let e = engine.compile_script(src).unwrap_err();
            let expected = match name.split_once(' ') {
                _ if name == "break" => "break with a value read from a variable".to_owned(),
                Some(("holds", name)) => format!("the closure given to {name} captures {name}"),
                _ => format!("{name} is changed here"),
            };
            assert!(
                e.message.starts_with(&expected),
                "{src}: {}",
                e.message
            );
            assert_eq!((e.line, e.column), (line, column), "{src}: {}", e.message);
        }
    }

    /// In `when` and `require` too, whose optimization lets a `switch` arm hand out the
    /// request variable itself (an eighth review: 28 → 169 MB in 1,000 requests, debug build).
    #[test]
    fn expressions_cannot_give_a_request_variable_a_closure_either() {
        let engine = ScriptEngine::new();
        let e = engine
            .compile_expression(
                "type_of(call(|x, v| { x.k = v }, switch amount { 0 => #{}, _ => payload }, || payload)) == \"()\"",
                &[],
            )
            .unwrap_err();
        assert!(
            e.message
                .starts_with("a switch arm in a when or require that gives a variable's value"),
            "{}",
            e.message
        );
    }

    /// A `switch` arm that gives a variable's value is refused in `when` and `require` (a
    /// tenth review reached the cell through a closure given to `call` and through `reduce`);
    /// arms of constants are fine there, and in scripts, which Rhai does not optimise, any arm.
    #[test]
    fn a_switch_arm_giving_a_variable_is_refused_in_expressions() {
        let engine = ScriptEngine::new();
        for src in [
            "type_of(call(|g| g.call().call(|v| { this.k = v }, || payload), || switch amount { 0 => #{}, _ => payload })) == \"()\"",
            "type_of([|| switch amount { 0 => #{}, _ => payload }].reduce(|acc, g| g.call().call(|v| { this.k = v }, || payload), 0)) != \"x\"",
            "switch api { \"v1\" => amount, _ => 5 } > 3",
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message.starts_with("a switch arm in a when or require that gives a variable's value"),
                "{src}: {}",
                e.message
            );
        }
        engine
            .compile_expression(
                "amount <= switch api { \"v1\" => 1000000, _ => 3000000 }",
                &[],
            )
            .unwrap();
        engine
            .compile_expression(
                "switch api { \"v1\" => amount * 2, _ => amount + 1 } > 3",
                &[],
            )
            .unwrap();
        crate::script::tests::scripts_load(
            &engine,
            &["let cap = 5;\nlet limit = switch api { \"v1\" => cap, _ => 7 };\nlimit > 3"],
        );
    }

    /// Changes before any capture, reads after one, closures that leave `this` alone, and
    /// variables no closure captures are all fine.
    #[test]
    fn changes_no_closure_can_be_caught_in_load() {
        let engine = ScriptEngine::new();
        for fine in [
            // A chain, each closure holding the one before: freed when the script ends.
            "let f = 0;\nfor i in 0..10 { let g = f; f = || g; }\ntrue",
            "let limit = 5;\nif amount > 1000 { limit = 7; }\nlet f = |x| x > limit;\nf.call(8)",
            // A trial: an `if` or `switch` of numbers is a number too.
            "let limit = 1000000;\nlet over = |a| a > limit;\nlimit = if amount > 5 { 5000000 } else { 1000000 };\n!over.call(amount)",
            "let limit = 1000000;\nlet over = |a| a > limit;\nlimit = switch store_id { \"a\" => 5000000, _ => { 1000000 } };\n!over.call(amount)",
            "let m = #{};\nlet limit = 5;\nm.check = |x| x > limit;\nm.check(6)",
            "fn down(n) { if n > 0 { down(n - 1) } else { true } }\ndown(5)",
            "let items = [1, 2, 3];\nlet n = 2;\nlet big = items.filter(|x| x > n);\nitems.len() == 3 && items.contains(n) && big.len() == 1",
            "let items = [1, 2, 3];\nlet f = |x| items.len() + x;\nlet n = items.filter(|x| x > 1).len();\nf.call(n) == 5",
            "let total = reduce([1, 2], |sum, x| sum + x, 0);\ntotal == 3",
            "let seen = [];\nfor x in [1, 2] { seen.push(x); }\n[3].filter(|x| x > seen.len()).len() == 1",
            // A `let` in a loop's round is a new variable each round; one in an inner block
            // is another variable.
            "for tier in [\"gold\", \"silver\"] {\n  let limit = 5000;\n  if tier == \"gold\" { limit = 10000; }\n  if [1].some(|x| x > limit) { return false; }\n}\ntrue",
            "let n = 1;\nlet big = [1, 2, 3].filter(|x| x > n);\nfor item in [1, 2] { let n = 0; n += item; }\nbig.len() == 2",
            "let n = 1;\nlet big = [1, 2, 3].filter(|x| x > n);\nlet n = 0;\nn += 1;\nbig.len() == 2",
            // Calls that cannot change their object: a request variable or a closure that
            // leaves `this` alone given to a method, a closure variable called.
            "let items = [\"a\"];\nlet f = || items;\nitems.index_of(order_id) < 0",
            "let items = [1, 5];\nlet count = || items.len();\nlet over = |x| x > 3;\nitems.filter(over).len() == 1 && count.call() == 2",
            "let over = |x| x > 3;\nlet check = |v| over.call(v);\nover.call(5) && check.call(6)",
            // Values that can hold no closure, written after a capture: a limit given a new
            // number, a budget counted down in a loop, a total kept by a closure, a message
            // pushed, a count under a computed key; and keys named like functions holding
            // none, a pointer to the script's own function.
            "let items = [#{qty: 11}];\nlet limit = 10;\nlet over = items.some(|x| x.qty > limit);\nlimit = 3;\nover && items.some(|x| x.qty > limit)",
            "let left = 100;\nfor x in [30, 40] {\n  if [x].some(|p| p > left) { return false; }\n  left -= x;\n}\nleft == 30",
            "let total = 0;\n[#{p: 2, q: 3}].for_each(|| total += this.p * this.q);\ntotal == 6",
            "let errors = [];\nlet add = || errors.push(`over ${amount}`);\nadd.call();\nerrors.len() == 1",
            "let seen = #{};\nfor sku in [\"a\", \"a\"] { seen[sku] = (seen[sku] ?? 0) + 1; }\nlet banned = [\"x\"];\nlet hits = [\"a\"].filter(|s| s in banned);\nhits.len() == 0 && banned.len() == 1 && seen.a == 2",
            "let caps = #{ all: 10 };\nlet items = [#{qty: 1}];\nlet count = || items.len();\nitems.all(|x| x.qty <= caps.all) && count.call() == 1",
            // Values made of the request's: a total per item kept under a computed key, a
            // sum of an item's fields, an order id looked up in a captured list.
            "let items = payload.custom_data?.items ?? [#{sku: \"a\", qty: 2}, #{sku: \"a\", qty: 1}];\nlet qty = #{};\nfor it in items { qty[it.sku] = (qty[it.sku] ?? 0) + it.qty; }\nlet banned = [\"x\"];\nlet hits = items.filter(|x| x.sku in banned);\nhits.len() == 0 && banned.len() == 1 && qty.keys().len() == 1 && qty.a == 3",
            "let items = [#{price: 2}, #{price: 3}];\nlet total = 0;\nlet over = || total > 100;\nfor it in items { total += it.price; }\n!over.call() && total == 5",
            "let ids = [order_id];\nlet known = || ids.len();\nlet id = order_id;\nids.index_of(id) == 0 && known.call() == 1",
            // What the engine's functions give of such values: a count, upper-case text, a
            // list of skus mapped out of the request's items.
            "let items = [#{qty: 5}];\nlet limit = 5;\nlet over = items.some(|x| x.qty > limit);\nlimit = items.len();\n!over && limit == 1",
            "let skus = [];\nlet banned = |s| s in skus;\nskus = [#{sku: \"a\"}].map(|x| x.sku);\nbanned.call(\"a\")",
            "let msg = \"\";\nlet add = |s| msg.len() + s.len();\nmsg = `${order_id}`.to_upper();\nadd.call(\"x\") > 1",
            // A loop left with a new value, or with none.
            "let found = 0;\nfor x in [1, 2] { if x == 2 { found = x; break; } }\nlet n = loop { break found + 3; };\nfound == 2 && n == 5",
            "fn is_ticket(x) { x == \"t\" }\nlet vips = [\"m\"];\nlet big = [1].filter(|x| \"m\" in vips);\nlet t = [\"t\", \"u\"].filter(Fn(\"is_ticket\"));\nt.len() == 1 && vips.contains(\"m\")",
        ] {
            engine
                .compile_script(fine)
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
            assert_eq!(run_unchecked(&engine, fine), Ok(ScriptVerdict::Pass), "{fine}");
        }
    }

    /// A variable given a closure through a chain of others still holds it however long the
    /// chain, and one given a number through such a chain holds none (the chain is followed
    /// value to value, not one walk of the script per link).
    #[test]
    fn a_long_chain_of_variables_carries_what_its_start_holds() {
        let engine = ScriptEngine::new();
        let chain = |start: &str| {
            let links: String = (1..=300)
                .map(|i| format!("let x{i} = x{};\n", i - 1))
                .collect();
            format!("let a = [];\nlet f = || a.len();\nlet x0 = {start};\n{links}a.push(x300);\nf.call() == 1")
        };
        let refused = engine.compile_script(&chain("f")).unwrap_err();
        assert_eq!((refused.line, refused.column), (304, 3));
        assert!(
            refused.message.starts_with("a is changed here"),
            "{}",
            refused.message
        );
        let fine = chain("1");
        engine
            .compile_script(&fine)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(run_unchecked(&engine, &fine), Ok(ScriptVerdict::Pass));
    }
}
