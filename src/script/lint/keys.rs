//! Properties read from a map the script writes out in full and never changes: a key none of
//! its literals has (`c.maxx` for `c.max`) reads `()` on every request, which no number or
//! text is less than, greater than or equal to, so a limit written that way never refuses.

use std::collections::{BTreeSet, HashMap, HashSet};

use rhai::{ASTNode, Expr, Position, Stmt, AST};

use super::declared_once;
use super::race::continues_chain;

/// Methods that read a map without changing it (nor, called on one of its items, that item's
/// keys). Any other method called along a variable's chain may change it (`set`, `remove`,
/// `mixin`, a script's own function through `this`), and so may any function given it first
/// (`mixin(m, …)`, `set(m, …)`: Rhai passes a variable there by reference); such a variable is
/// left unchecked, and so are all when the script defines a function of one of these names.
const READS: [&str; 9] = [
    "len",
    "is_empty",
    "contains",
    "keys",
    "values",
    "get",
    "to_json",
    "filter",
    "to_string",
];

/// What a script may find absent on purpose: a key looked for (`"min" in m`, `m.contains(…)`)
/// or read for a fallback (`m.min ?? 0`), compared with `()`, or tested by these.
const ABSENCE_TESTS: [&str; 2] = ["is_blank", "type_of"];

/// The request's variables (SPEC §4) and the answers': a `let` of the same name declares
/// another variable only from there on (or in its block), which this check cannot tell.
const REQUEST: [&str; 9] = [
    "order_id", "tx_id", "amount", "store_id", "api", "payload", "now", "fetched", "response",
];

/// The keys a variable's map may hold, and where it is written.
struct Shape {
    keys: BTreeSet<String>,
    /// The variable holds an item of the map written at this line (`let c = cats[cat];`).
    item_of: Option<(String, Position)>,
}

/// Each property the script reads, with `.name` or `["name"]`, from a variable declared once
/// with a map literal (or with an item of a literal whose items are all maps:
/// `let c = cats[cat];`) and never changed, where no such literal has the key.
pub(in crate::script) fn missing_key(ast: &AST) -> Vec<(String, Position)> {
    let (mut changed, looked_for) = changed_variables(ast);
    changed.extend(REQUEST.iter().map(|n| n.to_string()));
    let literals = declared_once(ast, map_literal);
    let literals: HashMap<String, _> = literals
        .into_iter()
        .filter(|(name, _)| !changed.contains(name))
        .collect();
    let mut shapes: HashMap<String, Shape> = HashMap::new();
    // A map whose keys are looked for still says what its items hold (`if !(cat in cats) {…}
    // let c = cats[cat];`).
    for (name, (keys, _, _)) in literals.iter().filter(|(n, _)| !looked_for.contains(*n)) {
        shapes.insert(
            name.clone(),
            Shape {
                keys: keys.clone(),
                item_of: None,
            },
        );
    }
    let items = declared_once(ast, |e| match e {
        Expr::Index(chain, ..) => match (&chain.lhs, &chain.rhs) {
            (Expr::Variable(v, ..), key) if !matches!(key, Expr::Dot(..) | Expr::Index(..)) => {
                let (_, items, at) = literals.get(v.1.as_str())?;
                Some(Shape {
                    keys: items.clone()?,
                    item_of: Some((v.1.to_string(), *at)),
                })
            }
            _ => None,
        },
        _ => None,
    });
    shapes.extend(
        items
            .into_iter()
            .filter(|(name, _)| !changed.contains(name) && !looked_for.contains(name)),
    );

    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Dot(chain, ..) | Expr::Index(chain, ..))) = path.last() else {
            return true;
        };
        // `cat` in `cats[cat].max` is the index, not a map the chain reads from.
        if continues_chain(path) {
            return true;
        }
        let Expr::Variable(v, ..) = &chain.lhs else {
            return true;
        };
        let Some(shape) = shapes.get(v.1.as_str()) else {
            return true;
        };
        // The first step after the variable: `c.maxx…`, `c["maxx"]…`.
        let first = match &chain.rhs {
            Expr::Dot(next, ..) | Expr::Index(next, ..) => &next.lhs,
            step => step,
        };
        if read_for_absence(path) {
            return true;
        }
        let (key, at) = match (path.last(), first) {
            (Some(ASTNode::Expr(Expr::Dot(..))), Expr::Property(prop, at)) => {
                (prop.2.as_str(), *at)
            }
            (Some(ASTNode::Expr(Expr::Index(..))), Expr::StringConstant(s, at)) => (s.as_str(), *at),
            _ => return true,
        };
        if shape.keys.contains(key) {
            return true;
        }
        let name = &v.1;
        let keys: Vec<&str> = shape.keys.iter().map(String::as_str).collect();
        let listed = if keys.is_empty() { "none".to_owned() } else { keys.join(", ") };
        let written = match &shape.item_of {
            None => format!(
                "no key {key} in the map {name} (written at line {}, never changed; its keys: {})",
                literals[name.as_str()].2.line().unwrap_or(0),
                listed
            ),
            Some((map, at)) => format!(
                "no key {key} in the maps written in {map} (line {}, never changed; their keys: {}), one of which {name} holds",
                at.line().unwrap_or(0),
                listed
            ),
        };
        // `LIMITS.VIP` for `vip`: a case slip is as far from the key as any three letters.
        let near = (keys.iter().copied())
            .find(|k| k.eq_ignore_ascii_case(key))
            .or_else(|| crate::suggest::closest(key, keys.iter().copied()));
        let hint = near
            .map(|near| format!("; did you mean {name}.{near}?"))
            .unwrap_or_default();
        found.push((
            format!("{written}: {name}.{key} is () on every request, which no number or text is less than, greater than or equal to{hint}"),
            at,
        ));
        true
    });
    found
}

/// A map literal's keys; if each of its values is a map literal too, the keys any of them has;
/// and where it is written. Rhai folds a literal of constants into one value when it
/// optimises (as it does `when` and `require`).
type Literal = (BTreeSet<String>, Option<BTreeSet<String>>, Position);

fn map_literal(e: &Expr) -> Option<Literal> {
    match e {
        Expr::Map(map, at) => {
            let keys = map.0.iter().map(|(k, _)| k.name.to_string()).collect();
            let items = map
                .0
                .iter()
                .map(|(_, value)| map_literal(value).map(|(k, ..)| k));
            Some((keys, item_keys(items), *at))
        }
        Expr::DynamicConstant(value, at) => {
            let map = value.read_lock::<rhai::Map>()?;
            let keys = map.keys().map(|k| k.to_string()).collect();
            let items = map.values().map(|item| {
                let inner = item.read_lock::<rhai::Map>()?;
                Some(inner.keys().map(|k| k.to_string()).collect())
            });
            Some((keys, item_keys(items), *at))
        }
        _ => None,
    }
}

/// The keys any of a map's items has, when there are items and each is a map (`Some` of its
/// keys); `None` otherwise.
fn item_keys(items: impl Iterator<Item = Option<BTreeSet<String>>>) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    let mut any = false;
    for keys in items {
        all.extend(keys?);
        any = true;
    }
    any.then_some(all)
}

/// Whether the read at the end of `path` is one a script makes to find a key absent: the left
/// of `??`, a side of `==`/`!=` with `()`, or what [`ABSENCE_TESTS`] are given.
fn read_for_absence(path: &[ASTNode]) -> bool {
    let [.., ASTNode::Expr(parent), ASTNode::Expr(read)] = path else {
        return false;
    };
    match parent {
        Expr::Coalesce(parts, _) => parts.last().is_some_and(|last| !std::ptr::eq(last, *read)),
        Expr::FnCall(call, _) => {
            ABSENCE_TESTS.contains(&call.name.as_str())
                || (["==", "!="].contains(&call.name.as_str())
                    && call.args.iter().any(|a| matches!(a, Expr::Unit(..))))
        }
        _ => false,
    }
}

/// The variables something may change the keys of, or of one of whose items: an assignment to
/// them or along their chain (`c.x = 1`, `cats[k].x = 1`, `c += #{…}`), a method other than
/// [`READS`] called along their chain, a function given them first (see [`READS`]); and,
/// apart, those whose keys are looked for (`"min" in m`: the script expects some may be
/// absent).
fn changed_variables(ast: &AST) -> (HashSet<String>, HashSet<String>) {
    let mut changed = HashSet::new();
    let mut looked_for = HashSet::new();
    // A script's own `contains` (a method through `this`) may change what it is called on.
    let own_reads = ast.iter_functions().any(|f| READS.contains(&f.name));
    let reads = |name: &str| !own_reads && READS.contains(&name);
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)))
                if !call.is_operator_call() || call.name == "contains" =>
            {
                // Only a variable itself goes by reference: `format_amount(c.price)` gets a copy.
                let variable = match call.args.first() {
                    Some(Expr::Variable(v, ..)) => Some(v.1.to_string()),
                    _ => None,
                };
                match variable {
                    Some(name) if call.name == "contains" => {
                        looked_for.insert(name);
                    }
                    Some(name) if !reads(&call.name) => {
                        changed.insert(name);
                    }
                    _ => {}
                }
            }
            Some(ASTNode::Stmt(Stmt::Assignment(assign))) => {
                if let Some(name) = head(&assign.1.lhs) {
                    changed.insert(name);
                }
            }
            Some(ASTNode::Expr(e @ (Expr::Dot(chain, ..) | Expr::Index(chain, ..))))
                if !continues_chain(path) =>
            {
                if let Some(name) = head(e) {
                    if calls_other_than(&chain.rhs, &reads) {
                        changed.insert(name.clone());
                    }
                    // `m.contains("min")`: only of the map itself, not of an item.
                    if matches!(&chain.rhs, Expr::MethodCall(call, _) if call.name == "contains") {
                        looked_for.insert(name);
                    }
                }
            }
            _ => {}
        }
        true
    });
    (changed, looked_for)
}

/// The variable a chain starts from.
fn head(e: &Expr) -> Option<String> {
    match e {
        Expr::Variable(v, ..) => Some(v.1.to_string()),
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => head(&chain.lhs),
        _ => None,
    }
}

/// Whether a method `reads` does not name is called along the rest of a chain.
fn calls_other_than(rest: &Expr, reads: &dyn Fn(&str) -> bool) -> bool {
    match rest {
        Expr::MethodCall(call, _) => !reads(&call.name),
        Expr::Dot(next, ..) | Expr::Index(next, ..) => {
            calls_other_than(&next.lhs, reads) || calls_other_than(&next.rhs, reads)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::script::tests::{assert_refused, scripts_load};
    use crate::script::ScriptEngine;

    /// A trial: `qty > c.maxx` for `c.max` went live without a word and let a 3-seat order
    /// through a 2-seat limit.
    #[test]
    fn a_key_no_literal_of_an_unchanged_map_has_is_a_load_error() {
        let engine = ScriptEngine::new();
        let seats = "let cats = #{\n    vip: #{ max: 2, price: 220000 },\n    r: #{ max: 4, price: 165000 },\n};\nlet c = cats[order_id];\nif c == () { return \"등급 없음\"; }\n";
        let item = |key: &str, near: &str| {
            format!("no key {key} in the maps written in cats (line 1, never changed; their keys: max, price), one of which c holds: c.{key} is () on every request, which no number or text is less than, greater than or equal to{near}")
        };
        for (src, message, line, column) in [
            (
                format!("{seats}amount <= c.maxx * c.price"),
                item("maxx", "; did you mean c.max?"),
                7,
                13,
            ),
            (
                format!("{seats}amount <= c[\"limit\"]"),
                item("limit", ""),
                7,
                13,
            ),
            (
                format!("{seats}`${{c.prise}}원` != \"\""),
                item("prise", "; did you mean c.price?"),
                7,
                6,
            ),
            // Keys of the map looked for: its items still say what they hold.
            (
                "let cats = #{vip: #{max: 2}};\nlet cat = order_id;\nif !(cat in cats) { return \"등급 없음\"; }\nlet c = cats[cat];\namount <= c.maxx".to_owned(),
                "no key maxx in the maps written in cats (line 1, never changed; their keys: max), one of which c holds: c.maxx is () on every request, which no number or text is less than, greater than or equal to; did you mean c.max?".to_owned(),
                5,
                13,
            ),
            // A property given to a function is a copy: the map is still known.
            (
                "let c = #{max: 2};\nformat_amount(c.max) != \"\" && amount <= c.maxx".to_owned(),
                "no key maxx in the map c (written at line 1, never changed; its keys: max): c.maxx is () on every request, which no number or text is less than, greater than or equal to; did you mean c.max?".to_owned(),
                2,
                43,
            ),
            (
                "let m = #{};\nm.limit > 5".to_owned(),
                "no key limit in the map m (written at line 1, never changed; its keys: none): m.limit is () on every request, which no number or text is less than, greater than or equal to".to_owned(),
                2,
                3,
            ),
            (
                "const LIMITS = #{ vip: 500000, normal: 100000 };\namount <= LIMITS.VIP".to_owned(),
                "no key VIP in the map LIMITS (written at line 1, never changed; its keys: normal, vip): LIMITS.VIP is () on every request, which no number or text is less than, greater than or equal to; did you mean LIMITS.vip?".to_owned(),
                2,
                18,
            ),
        ] {
            assert_refused(&engine, &src, &message, line, column);
        }
        scripts_load(
            &engine,
            &[
                &format!("{seats}amount <= c.max * c.price && cats.vip.max > 0 && c.len() > 0"),
                // Changed after it is written, or an item of it is: any key may be there.
                &format!("{seats}c.extra = 1;\nc.extra > 0"),
                &format!("{seats}cats[order_id].extra = 1;\nlet d = cats[order_id];\nd.extra > 0"),
                &format!("{seats}c.set(\"extra\", 1);\nc.extra > 0"),
                &format!("{seats}c += #{{extra: 1}};\nc.extra > 0"),
                &format!("{seats}cats[order_id].mixin(#{{extra: 1}});\nlet d = cats[order_id];\nd.extra > 0"),
                // Declared twice, or items that are not all maps: not known.
                "let m = #{a: 1};\nlet m = payload;\nm.b == ()",
                "let cats = #{vip: #{max: 2}, other: 3};\nlet c = cats[order_id];\nc.limit == ()",
                // A map from outside the script: any key may be there.
                "let p = payload;\np.anything == ()",
                // A review: changed by a function given it first, which Rhai passes by reference.
                "let m = #{a: 1};\nmixin(m, #{b: 2});\nm.b == 2",
                "let m = #{a: #{x: 1}};\nmixin(m, #{b: 2});\nm.b == 2",
                "let m = #{a: 1};\nset(m, \"b\", 2);\nm.b == 2",
                "let m = #{a: 1};\nfill_with(m, #{b: 2});\nm.b == 2",
                &format!("{seats}set(c, \"extra\", 3);\nc.extra == 3"),
                "let cats = #{vip: #{max: 2}};\nmixin(cats, #{vip: #{max: 2, extra: 7}});\nlet c = cats[order_id];\nc.extra == 7",
                // Absent on purpose: a fallback, a test for (), a key looked for.
                "let tiers = #{vip: #{max: 10000}, r: #{max: 4000}};\nlet t = tiers[order_id];\namount >= (t.min ?? 1000) && amount <= t.max",
                "let cfg = #{max: 1000000};\namount >= (cfg.min ?? 0) && amount <= cfg.max",
                "let cfg = #{max: 1};\nif \"min\" in cfg { return amount >= cfg.min; }\ntrue",
                "let cfg = #{max: 1};\nif cfg.contains(\"min\") { return amount >= cfg.min; }\ntrue",
                "let cfg = #{max: 1};\ncfg.min == () && !is_blank(cfg.note) && type_of(cfg.x) == \"()\"",
                // A request variable's name declared again, in a block or later.
                "let ok = payload.imp_uid == \"imp_1\";\nlet payload = #{x: 1};\nok && payload.x == 1",
                "let ok = { let payload = #{merchant_uid: \"x\"}; payload.merchant_uid == \"x\" };\nok && payload.imp_uid == \"imp_1\"",
                // A script's own function named as a read may change `this`.
                "fn contains(k) { this[k] = 9; true }\nlet m = #{a: 1};\nm.contains(\"b\");\nm.b == 9",
                // The index of a chain is no map the chain reads from.
                "let k = #{a: \"vip\"};\nlet cats = #{vip: #{max: 2}};\ncats[k.a].max > 0",
            ],
        );
    }
}
