//! Checks of a compiled expression or script for slips that Rhai accepts at compile time and
//! that would change decisions, and this file's own: a script that can give no result (empty,
//! or ending with a statement that gives none), and a catch block whose value would be a result
//! (Rhai makes it `()`).
//!
//! Rhai looks functions up only when a call runs, so `order_id.startsWith("legacy-")` (a
//! JavaScript habit) compiles, and then fails every request: with `on_error: reject`, every
//! payment is refused. A comparison between a number and a string (`amount > "1000000"`) is an
//! error at run time here (see `numbers`: Rhai's own answer, `false`, never held), so it too
//! would send every payment to `on_error`. Such slips can only be told apart from meaningful
//! code where the types are known when the rules load — a literal, a request variable,
//! arithmetic, a variable declared once with one of them — and are a load error there.
//!
//! Beside this file: [`names`] (functions and answer fields that exist nowhere; the properties
//! the script's maps set), [`kinds`] (what kind of value an expression gives, and which calls
//! change their object in place), [`results`] (what an expression or script gives), [`mismatch`] (a use
//! that does not fit its value's kind: a number method on text, text compared with a number, a
//! property no map has), [`text`] (text comparisons that can never hold), [`dropped`] (a value
//! computed and thrown away), [`race`] (a closure reading the object it changes), [`cycles`] (a
//! variable changed after a closure captured it, which could make the closure hold itself) and
//! [`source_text`] (what the parser reports at a misleading place). Numbers compared with
//! strings and `now` compared with seconds are here.

use std::collections::{HashMap, HashSet};

use rhai::{ASTNode, Expr, Position, Stmt, AST, INT};

mod cycles;
mod dropped;
mod keys;
mod kinds;
mod mismatch;
mod names;
mod placeholders;
mod race;
mod results;
mod sizes;
mod source_text;
mod text;
mod values;
pub(super) use cycles::{captured_variable_changed, switch_arm_reads_variable};
pub(super) use dropped::dropped_value;
pub(super) use keys::missing_key;
pub(super) use mismatch::{number_method_on_text, text_compared_with_number, unknown_property};
use names::{answer_rest, listed_strings, JAVASCRIPT};
pub(crate) use names::{fetched_names, names_field, unguarded_payload_reads};
pub(super) use names::{
    map_properties, method_on_range, unknown_function, unknown_response_field, Functions,
    Properties,
};
pub(super) use placeholders::placeholder_in_text;
pub(super) use race::closure_reads_its_own_object;
pub(super) use results::{
    in_place_kept, in_place_on_request, in_place_result, in_place_used, not_a_condition,
    not_a_result, quoted_bool_result,
};
pub(super) use sizes::{literal_too_large, number_too_large};
pub(super) use source_text::{
    line_comment_start, outer_variable_in_fn, unclosed_brace, unclosed_comment,
};
pub(super) use text::impossible_text_comparison;

/// Comparison operators, as Rhai names the functions behind them.
const COMPARISONS: [&str; 6] = ["==", "!=", "<", "<=", ">", ">="];
/// Arithmetic, whose result is a number whenever a number is involved.
const ARITHMETIC: [&str; 5] = ["+", "-", "*", "/", "%"];
/// Request variables that are always numbers.
const NUMBERS: [&str; 2] = ["amount", "now"];

/// How many characters into `src` a position is (Rhai counts lines and columns from 1, in
/// characters).
pub(super) fn char_offset(src: &str, at: Position) -> Option<usize> {
    let (line, column) = (at.line()?, at.position()?);
    let mut offset = 0;
    for (n, text) in src.split('\n').enumerate() {
        if n + 1 == line {
            return (column <= text.chars().count() + 1).then_some(offset + column - 1);
        }
        offset += text.chars().count() + 1;
    }
    None
}

/// Each of the script's functions (closures too) with an AST holding it alone, for a walk of
/// its body on its own. Linear in the number of functions (a filtered clone of the whole AST
/// per function made a script of 4,000 functions take seconds to load).
pub(super) fn each_function(
    ast: &AST,
) -> impl Iterator<Item = (&rhai::Shared<rhai::ScriptFuncDef>, AST)> {
    ast.iter_fn_def().map(|f| {
        let mut module = rhai::Module::new();
        module.set_script_fn(f.clone());
        (f, AST::new([], module))
    })
}

/// Each request variable a script's own `fn` reads without having it as a parameter or a
/// `let` of its own: a Rhai function sees only its parameters, so it fails every request that
/// calls it (`variable not found: amount`). Closures are left out: they capture what they use.
pub(super) fn request_variable_in_fn(ast: &AST) -> Vec<(String, Position)> {
    let mut found = Vec::new();
    for (f, one) in each_function(ast) {
        if f.name.starts_with("anon$") {
            continue;
        }
        // Its parameters, `let`s and loop variables.
        let own = declared_names(&one);
        let mut reported = HashSet::new();
        one.walk(&mut |path: &[ASTNode]| {
            let Some(ASTNode::Expr(Expr::Variable(var, _, at))) = path.last() else {
                return true;
            };
            let name = var.1.as_str();
            let request = super::REQUEST_VARS.contains(&name) || name == "response";
            // Once per function and name: one parameter fixes them all.
            if request && !own.contains(name) && reported.insert(name.to_owned()) {
                found.push((
                    format!(
                        "fn {}: {name} is not visible here, as a Rhai function sees only its parameters; pass it in: fn {}({name}) … called as {}({name})",
                        f.name, f.name, f.name
                    ),
                    *at,
                ));
            }
            true
        });
    }
    found
}

/// Each comparison of a string literal with a number in `ast`: its message and position.
pub(super) fn number_compared_with_string(ast: &AST) -> Vec<(String, Position)> {
    let numbers = request_numbers(ast);
    let is_number = |e: &Expr| is_number(e, &numbers);
    // A number looked for in a list may come through a variable (`let h = seoul_hour(now);
    // h in ["12", "13"]`); comparisons through one are `mismatch`'s.
    let names = kinds::Names::of(ast);
    let looked_for_number = |e: &Expr| names.kind(e) == Some(kinds::Kind::Number);
    // Lists declared once with strings in them (`const OK = ["50000"]; amount in OK`).
    let lists = declared_once(ast, |value| {
        let strings = listed_strings(value);
        (!strings.is_empty()).then_some(strings)
    });
    let listed = |list: &Expr| match list {
        Expr::Variable(v, ..) => lists
            .get(v.1.as_str())
            .and_then(|strings| strings.first().cloned()),
        list => listed_strings(list).into_iter().next(),
    };
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        // A call at the top of an expression or script is a statement.
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        let hit = match (call.name.as_str(), &call.args[..]) {
            (name, [Expr::StringConstant(s, at), other] | [other, Expr::StringConstant(s, at)])
                if COMPARISONS.contains(&name) && is_number(other) =>
            {
                Some((s.to_string(), *at))
            }
            // `amount in ["50000"]` (Rhai's `contains` on the list), `one_of(amount, ["50000"])`.
            ("contains", [list, other]) | ("one_of", [other, list]) if looked_for_number(other) => {
                listed(list)
            }
            _ => None,
        };
        match hit {
            Some((s, at)) => {
                found.push((quoted_number(&s), at));
                true
            }
            None => true,
        }
    });
    found
}

/// What a comparison of text with a number is: never what was meant (an error at run time, on
/// every request).
const NEVER: &str = "a number compared with a string is never equal, smaller or larger";

/// The error for the quoted number `s` compared with a number; for a date and time written
/// as text (`now < "2026-12-10T10:00:00+09:00"`), what gives its number.
fn quoted_number(s: &str) -> String {
    if super::helpers::seoul_at(s).is_some() && s.trim().len() >= 10 {
        return format!("\"{s}\" is a date and time written as text, and {NEVER}: write seoul_at(\"{s}\"), its Unix time in milliseconds, as now is");
    }
    format!("\"{s}\" is a string, and {NEVER}: write the number without quotes")
}

/// Each use of a time in another unit where `now`'s Unix milliseconds belong: a comparison of
/// `now` with an integer literal that is plainly Unix time in seconds (10^9 to 10^11: 2001 to
/// 5138 in seconds, 1970 to 1973 in milliseconds), microseconds (10^15 to 10^17) or
/// nanoseconds (from 10^18), which holds or fails on every request alike; and a `seoul_*`
/// helper given seconds (such a literal, or `now / 1000`), which reads them as early 1970.
/// Also text `seoul_at` cannot read: its argument written in the call, or, in a script that
/// hands `seoul_at` a value from elsewhere (a map of sale windows), any text in it written as
/// a date (`2026-12-01 24:00`).
pub(super) fn time_in_other_units(ast: &AST) -> Vec<(String, Position)> {
    if declared_names(ast).contains("now") {
        return Vec::new();
    }
    let mut found = Vec::new();
    // Texts written as dates that `seoul_at` cannot read, and whether it is ever given
    // anything but text written in its call.
    let mut unreadable_dates = Vec::new();
    let mut seoul_at_reads_values = false;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::StringConstant(text, at))) => {
                if looks_like_a_date(text) && super::helpers::seoul_at(text).is_none() {
                    unreadable_dates.push((text.clone(), *at));
                }
                return true;
            }
            Some(ASTNode::Expr(Expr::FnCall(call, _)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            _ => return true,
        };
        let name = call.name.as_str();
        let is_now = |e: &Expr| matches!(e, Expr::Variable(v, ..) if v.1 == "now");
        if name == "seoul_at" {
            // Written in the script: read when the rules load, not on the first request.
            match &call.args[..] {
                [Expr::StringConstant(text, at)] => {
                    if super::helpers::seoul_at(text).is_none() {
                        found.push((super::helpers::seoul_at_error(text), *at));
                    }
                }
                _ => seoul_at_reads_values = true,
            }
            return true;
        }
        if name.starts_with("seoul_") {
            match &call.args[..] {
                // Only seconds: a larger unit is past the year 9999 for a helper, an error
                // decision rather than a wrong date.
                [Expr::IntegerConstant(n, at)] => {
                    if let Some((unit @ "seconds", ms, date, time)) = other_unit(*n) {
                        found.push((
                            format!("{name} takes Unix time in milliseconds, as now is; {n} is {unit} ({date} {time} in Seoul, which {name} would read as {}): write {ms}", as_millis(*n)),
                            *at,
                        ));
                    }
                }
                [Expr::FnCall(div, _)]
                    if div.name == "/"
                        && matches!(&div.args[..], [a, Expr::IntegerConstant(1000, _)] if is_now(a)) =>
                {
                    found.push((
                        format!("{name} takes Unix time in milliseconds, as now is; now / 1000 is seconds, which it would read as early 1970: write {name}(now)"),
                        div.args[0].position(),
                    ));
                }
                _ => {}
            }
            return true;
        }
        if !COMPARISONS.contains(&name) {
            return true;
        }
        let (n, at) = match &call.args[..] {
            [v, Expr::IntegerConstant(n, at)] | [Expr::IntegerConstant(n, at), v] if is_now(v) => {
                (*n, *at)
            }
            _ => return true,
        };
        if let Some((unit, ms, date, time)) = other_unit(n) {
            found.push((
                format!(
                    "now is Unix time in milliseconds, and {n} is {unit} ({date} {time} in Seoul; read as milliseconds it is {}): write {ms}, or compare the Seoul date and time: seoul_date(now) with \"{date}\", seoul_time(now) with \"{time}\"",
                    as_millis(n)
                ),
                at,
            ));
        }
        true
    });
    if seoul_at_reads_values {
        for (text, at) in unreadable_dates {
            if !found.iter().any(|(_, seen)| *seen == at) {
                let why = super::helpers::seoul_at_error(&text);
                found.push((
                    format!("{why} (this script gives seoul_at its dates from values)"),
                    at,
                ));
            }
        }
    }
    found
}

/// Where what follows the dot of one of the variables `names` is (`Math.max(a, b)`: the
/// `max`), for checks on the source compiled with them taken as declared.
pub(super) fn members_of(ast: &AST, names: &[String]) -> Vec<rhai::Position> {
    let mut found = Vec::new();
    if names.is_empty() {
        return found;
    }
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Dot(x, ..))) = path.last() {
            if matches!(&x.lhs, Expr::Variable(v, ..) if names.iter().any(|n| *n == v.1)) {
                // Rhai nests the rest of a chain on the right: `Math.max(a, b).foo(1)` is
                // `Math` . (`max(a, b)` . `foo(1)`).
                let mut rest = &x.rhs;
                while let Expr::Dot(y, ..) | Expr::Index(y, ..) = rest {
                    found.push(y.lhs.position());
                    rest = &y.rhs;
                }
                found.push(rest.position());
            }
        }
        true
    });
    found
}

/// Whether `text` is written as a date and nothing else, as `seoul_at` takes one: four digits,
/// `-`, one or two, `-`, one or two, then nothing, or a space or `T` and a clock time (digits,
/// `:`, `.`, an offset). Not `2026-12-01-promo`, a code, nor `2026-12-01 10:00부터 접수`, a
/// message that names a date.
fn looks_like_a_date(text: &str) -> bool {
    let mut parts = text.splitn(3, '-');
    let (Some(year), Some(month), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let after = &rest[day_len..];
    digits(year, 4..=4)
        && digits(month, 1..=2)
        && (1..=2).contains(&day_len)
        && (after.is_empty()
            || (after.starts_with([' ', 'T', 't'])
                && after[1..]
                    .chars()
                    .all(|c| c.is_ascii_digit() || ":.+-Zz ".contains(c))))
}

/// `n` read as Unix time in seconds, microseconds or nanoseconds, when it is plainly one of
/// them: the unit, `n` in milliseconds, and its date and time in Seoul.
fn other_unit(n: INT) -> Option<(&'static str, INT, String, String)> {
    let (unit, ms) = match n {
        1_000_000_000..100_000_000_000 => ("seconds", n.checked_mul(1000)?),
        1_000_000_000_000_000..100_000_000_000_000_000 => ("microseconds", n / 1000),
        1_000_000_000_000_000_000.. => ("nanoseconds", n / 1_000_000),
        _ => return None,
    };
    let t = super::helpers::seoul(ms)?;
    Some((
        unit,
        ms,
        t.format("%Y-%m-%d").to_string(),
        t.format("%H:%M").to_string(),
    ))
}

/// What a time in another unit is, read as milliseconds.
fn as_millis(n: INT) -> &'static str {
    if n < 100_000_000_000 {
        "early 1970, long past"
    } else {
        "far in the future"
    }
}

/// The request's number variables (`amount`, `now`), and the answers whose `status` is a
/// number (`response`, `fetched`), that the script does not declare names of its own for
/// (`let now = seoul_time(now)`, a parameter, a loop variable): only those are what they are
/// wherever they appear.
fn request_numbers(ast: &AST) -> Vec<&'static str> {
    let declared = declared_names(ast);
    NUMBERS
        .into_iter()
        .chain(["response", "fetched"])
        .filter(|n| !declared.contains(*n))
        .collect()
}

/// Variables declared once (`let`/`const`) and never assigned again (`+=` too), with what
/// `value` makes of the value they are declared with; those it makes nothing of are left out,
/// and so are names that are also parameters or loop variables. Such a variable holds that
/// value wherever it is read: `let t = seoul_time(now);`, `let limit = 1000000;`.
fn declared_once<T>(ast: &AST, value: impl Fn(&Expr) -> Option<T>) -> HashMap<String, T> {
    declared_with(ast, value, None)
}

/// [`declared_once`], and also variables assigned again with `=` where every value they are
/// given makes the same `T` as the one they were declared with (`let limit = 1000000; if vip
/// { limit = 5000000; }`: a number wherever it is read). Compound assignments (`+=`) leave a
/// variable out.
fn declared_alike<T: PartialEq>(
    ast: &AST,
    value: impl Fn(&Expr) -> Option<T>,
) -> HashMap<String, T> {
    declared_with(ast, value, Some(&|a: &T, b: &T| a == b))
}

/// Whether a value assigned again keeps a variable what it was declared with.
type Same<'a, T> = &'a dyn Fn(&T, &T) -> bool;

/// `same`, when given, tells whether a value assigned again keeps the variable what it was.
fn declared_with<T>(
    ast: &AST,
    value: impl Fn(&Expr) -> Option<T>,
    same: Option<Same<T>>,
) -> HashMap<String, T> {
    let mut lets: HashMap<String, (usize, Option<T>)> = HashMap::new();
    let mut assigned: Vec<(String, Option<T>)> = Vec::new();
    let mut other: HashSet<String> = ast
        .iter_functions()
        .flat_map(|f| f.params.into_iter().map(str::to_owned))
        .collect();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                let name = var.0.name.as_str();
                // A request variable declared in a block is that block's: outside it the name
                // is the request's (`if … { let now = seoul_time(now); … } now >= …`). So is
                // one declared in a function, below.
                if path.len() > 1 && super::REQUEST_VARS.contains(&name) {
                    other.insert(name.to_owned());
                }
                let entry = lets.entry(name.to_owned()).or_insert((0, None));
                entry.0 += 1;
                entry.1 = value(&var.1);
            }
            Some(ASTNode::Stmt(stmt @ Stmt::For(..))) => {
                other.extend(loop_names(stmt));
            }
            // `catch (err)` gives `err` the error, whatever an earlier `let err` held.
            Some(ASTNode::Stmt(Stmt::TryCatch(flow, _))) => {
                if let Expr::Variable(v, ..) = &flow.expr {
                    other.insert(v.1.to_string());
                }
            }
            Some(ASTNode::Stmt(Stmt::Assignment(assign))) => {
                if let Expr::Variable(v, ..) = &assign.1.lhs {
                    if same.is_some() && !assign.0.is_op_assignment() {
                        assigned.push((v.1.to_string(), value(&assign.1.rhs)));
                    } else {
                        other.insert(v.1.to_string());
                    }
                }
            }
            _ => {}
        }
        true
    });
    for (name, given) in assigned {
        let declared = lets.get(&name).and_then(|(_, v)| v.as_ref());
        let kept = match (given.as_ref(), declared, same) {
            (Some(given), Some(declared), Some(same)) => same(given, declared),
            _ => false,
        };
        if !kept {
            other.insert(name);
        }
    }
    // A function's own statements walk with paths as short as the script's.
    for (_, one) in each_function(ast) {
        one.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Var(var, ..))) = path.last() {
                let name = var.0.name.as_str();
                if super::REQUEST_VARS.contains(&name) {
                    other.insert(name.to_owned());
                }
            }
            true
        });
    }
    lets.into_iter()
        .filter(|(name, (count, _))| *count == 1 && !other.contains(name))
        .filter_map(|(name, (_, value))| Some((name, value?)))
        .collect()
}

/// The names a `for` loop declares (its variable, and its counter if it has one); none for any
/// other statement.
fn loop_names(stmt: &Stmt) -> impl Iterator<Item = String> + '_ {
    let names = match stmt {
        Stmt::For(f, _) => Some((&f.0, f.1.as_ref())),
        _ => None,
    };
    names
        .into_iter()
        .flat_map(|(var, counter)| std::iter::once(var).chain(counter))
        .map(|ident| ident.name.to_string())
}

/// Every name `ast` declares: `let`/`const`, function parameters, loop variables.
fn declared_names(ast: &AST) -> HashSet<String> {
    let mut declared: HashSet<String> = own_params(ast).into_iter().collect();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, ..))) => {
                declared.insert(var.0.name.to_string());
            }
            Some(ASTNode::Stmt(stmt @ Stmt::For(..))) => {
                declared.extend(loop_names(stmt));
            }
            _ => {}
        }
        true
    });
    declared
}

/// The parameters of the script's functions and closures that are their own. A closure's
/// function takes what it captures as parameters before its own (`|d| now >= seoul_at(d)` is
/// `anon$…(now, d)`): those are the same variables, not new ones.
pub(super) fn own_params(ast: &AST) -> Vec<String> {
    let mut captured = HashSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Share(vars))) = path.last() {
            captured.extend(vars.iter().map(|(ident, _)| ident.name.to_string()));
        }
        true
    });
    let mut own = Vec::new();
    for f in ast.iter_functions() {
        let closure = f.name.starts_with("anon$");
        own.extend(
            (f.params.into_iter())
                .filter(|p| !(closure && captured.contains(*p)))
                .map(str::to_owned),
        );
    }
    own
}

/// Whether `e` is a number whatever the request: a number literal, one of `numbers`, an
/// answer's `status` (`response.status`, `fetched["stock"].status`), or arithmetic on numbers
/// only (`"…" + amount` is a string).
fn is_number(e: &Expr, numbers: &[&str]) -> bool {
    match e {
        Expr::IntegerConstant(..) | Expr::FloatConstant(..) => true,
        Expr::DynamicConstant(value, _) => value.is_int() || value.is_float() || value.is_decimal(),
        Expr::Variable(var, ..) => {
            NUMBERS.contains(&var.1.as_str()) && numbers.contains(&var.1.as_str())
        }
        Expr::Dot(..) | Expr::Index(..) => matches!(
            answer_rest(e, numbers),
            Some(Expr::Property(p, _)) if p.2 == "status"
        ),
        Expr::FnCall(call, _) => {
            // The helpers that give numbers.
            matches!(call.name.as_str(), "seoul_hour" | "seoul_minute")
                || (ARITHMETIC.contains(&call.name.as_str())
                    && call.args.iter().all(|a| is_number(a, numbers)))
        }
        _ => false,
    }
}

/// Why a script file would pass every payment whatever it checks: it is empty (blank lines and
/// comments only: a save that emptied it must not approve everything), or nothing in it can
/// give a value other than `()` — its last statement gives none (`let ok = amount <= 1000000;`,
/// an assignment, a `for` loop, an `if` whose branches give none) and it never returns, throws
/// or calls `fail`.
pub(super) fn no_result(ast: &AST) -> Option<(String, Position)> {
    const FIX: &str = "end it with the value to return (true, false or a reason), e.g. let ok = amount <= 1000000; ok";
    let Some(last) = ast.statements().last() else {
        return Some((
            "the script is empty (nothing but blank lines or comments): it would pass every payment; write its check, or remove the rule".into(),
            Position::new(1, 1),
        ));
    };
    if let Some((at, function)) = catch_ending_with_a_value(ast) {
        let effect = match function {
            None => "so the payment would pass when the try fails".to_owned(),
            // A closure's name is made up: to the reader it is a closure.
            Some(name) if name.starts_with("anon$") => {
                "so the closure would give () when the try fails".to_owned()
            }
            Some(name) => format!("so fn {name} would give () when the try fails"),
        };
        return Some((
            format!("the value at the end of a catch block is dropped (Rhai makes a catch block give ()), {effect}: return it, e.g. catch (e) {{ return \"재고를 확인하지 못했습니다\"; }}"),
            at,
        ));
    }
    // With `return`s before it too: a `let` that ends the script is read by no one, and the
    // script gives `()` there (`… let ok = amount <= 80000;` passes every payment that gets
    // that far).
    if let Stmt::Var(var, ..) = last {
        if returns_or_throws(ast) {
            let name = &var.0.name;
            return Some((
                format!("the script ends with `let`/`const` {name}, which nothing reads: a script that gets there gives (), which passes the payment; end it with the value to give, e.g. let {name} = …; {name}"),
                last.position(),
            ));
        }
    }
    // A script that ends with `()` written out passes on purpose, as one ending with `true`
    // does (SPEC §4's way to pass); inside an `if` it is only a branch that checks nothing.
    let passes_on_purpose = matches!(last, Stmt::Expr(e) if matches!(**e, Expr::Unit(..)));
    if passes_on_purpose || gives_value(last) || returns_or_throws(ast) {
        return None;
    }
    let what = match last {
        Stmt::Var(var, ..) => format!("`let`/`const` {}", var.0.name),
        Stmt::Assignment(..) => "an assignment".into(),
        Stmt::For(..) | Stmt::While(..) | Stmt::Do(..) => "a loop".into(),
        Stmt::If(..) => "an `if` whose branches end without a value".into(),
        Stmt::TryCatch(..) => "a try/catch whose blocks end without a value".into(),
        _ => "a statement".into(),
    };
    let at = match last {
        Stmt::Assignment(a) => a.1.lhs.position(),
        _ => last.position(),
    };
    Some((
        format!("the script ends with {what}, which gives no value, and it never returns, throws or calls fail, so it would pass every payment: {FIX}"),
        at,
    ))
}

/// The position of the value ending a `catch` block whose value would be a result: of the
/// script, or of one of its functions (a try/catch that ends it, directly or as the end of an
/// `if` branch or block that does). Rhai makes a catch block give `()`, so that value is never
/// anyone's result. A try/catch elsewhere gives nothing to anyone, whatever its blocks end with.
fn catch_ending_with_a_value(ast: &AST) -> Option<(Position, Option<String>)> {
    fn at_end(stmt: &Stmt) -> Option<Position> {
        let last = |b: &rhai::StmtBlock| b.statements().last().and_then(at_end);
        match stmt {
            Stmt::TryCatch(blocks, _) => blocks
                .branch
                .statements()
                .last()
                .filter(|s| drops_value(s))
                .map(Stmt::position)
                .or_else(|| last(&blocks.body)),
            Stmt::If(f, _) => last(&f.body).or_else(|| last(&f.branch)),
            Stmt::Block(b) => last(b),
            _ => None,
        }
    }
    let script = ast.statements().last().and_then(at_end);
    script.map(|at| (at, None)).or_else(|| {
        each_function(ast).find_map(|(f, one)| {
            // A function's own statements are the top of the walk of an AST holding it
            // alone; what counts is the last one's.
            let mut found = None;
            one.walk(&mut |path: &[ASTNode]| {
                if let [ASTNode::Stmt(stmt)] = path {
                    found = at_end(stmt);
                }
                true
            });
            found.map(|at| (at, Some(f.name.to_string())))
        })
    })
}

/// Whether `stmt`, ending a script or block, can give a value other than `()`.
fn gives_value(stmt: &Stmt) -> bool {
    let block = |b: &rhai::StmtBlock| b.statements().last().is_some_and(gives_value);
    match stmt {
        Stmt::Expr(e) => match &**e {
            Expr::Unit(..) => false,
            Expr::FnCall(call, _) => call_gives_value(call),
            _ => true,
        },
        Stmt::FnCall(call, _) => call_gives_value(call),
        Stmt::Switch(..) => true,
        Stmt::If(f, _) => block(&f.body) || block(&f.branch),
        // A catch block gives `()` (see `no_result`).
        Stmt::TryCatch(f, _) => block(&f.body),
        Stmt::Block(b) => block(b),
        Stmt::Return(e, ..) => e.is_some(),
        // `loop { … }` ends only by `break` (with a value, perhaps) or by an error.
        Stmt::While(f, _) => matches!(f.expr, Expr::Unit(..)),
        _ => false,
    }
}

/// Whether `stmt`, ending a catch block, ends it with a value Rhai drops: not by `return` or
/// `throw`, nor by `fail(…)` (which never returns), nor by an `if` each of whose ways out
/// ends so or gives `()` (`if amount > 1000 { return false; }`).
fn drops_value(stmt: &Stmt) -> bool {
    let block = |b: &rhai::StmtBlock| b.statements().last().is_some_and(drops_value);
    let call = |call: &rhai::FnCallExpr| call_gives_value(call) && call.name != "fail";
    match stmt {
        Stmt::Return(..) => false,
        Stmt::Expr(e) => match &**e {
            Expr::Unit(..) => false,
            Expr::FnCall(c, _) => call(c),
            Expr::Stmt(b) => block(b),
            _ => true,
        },
        Stmt::FnCall(c, _) => call(c),
        Stmt::If(f, _) => block(&f.body) || block(&f.branch),
        Stmt::Block(b) => block(b),
        _ => gives_value(stmt),
    }
}

/// Whether a call can give a value other than `()`: `print` and `debug` never do.
fn call_gives_value(call: &rhai::FnCallExpr) -> bool {
    !matches!(call.name.as_str(), "print" | "debug")
}

/// Whether the script's own statements (not its functions and closures) hold a `return` with
/// a value, a `throw` or a call of `fail`.
fn returns_or_throws(ast: &AST) -> bool {
    let mut found = false;
    let mut path = Vec::new();
    for stmt in ast.statements() {
        stmt.walk(&mut path, &mut |nodes: &[ASTNode]| {
            found |= match nodes.last() {
                Some(ASTNode::Stmt(Stmt::Return(value, flags, _))) => {
                    value.is_some() || flags.contains(rhai::ASTFlags::BREAK)
                }
                Some(ASTNode::Stmt(Stmt::FnCall(call, _)))
                | Some(ASTNode::Expr(Expr::FnCall(call, _))) => call.name == "fail",
                _ => false,
            };
            !found
        });
        if found {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::script::ScriptEngine;

    /// A call of a function the engine does not have fails every request that reaches it;
    /// it is a load error at the call, with a hint for JavaScript's names and near misses.
    #[test]
    fn an_unknown_function_is_a_load_error_at_the_call() {
        let engine = ScriptEngine::new();
        for (src, message, column) in [
            (
                r#"!order_id.startsWith("legacy-")"#,
                "function not found: startsWith; did you mean starts_with?",
                11,
            ),
            (
                r#"order_id.begins_with("x")"#,
                "function not found: begins_with",
                10,
            ),
            (
                r#"formatAmount(amount) != "x""#,
                "function not found: formatAmount; did you mean format_amount?",
                1,
            ),
            (
                r#"payload.items.exists(|i| i.qty > 1)"#,
                "function not found: exists; did you mean some?",
                15,
            ),
            (
                r#"order_id.lower() == "x""#,
                "function not found: lower; did you mean to_lower?",
                10,
            ),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!((e.message.as_str(), e.column), (message, column), "{src}");
        }
        // The engine's functions, Rhai's keywords, closures and a script's own functions.
        crate::script::tests::expressions_load(
            &engine,
            &[
                r#"order_id.starts_with("qa-") && type_of(amount) == "i64""#,
                r#"[1, 2].filter(|x| x > 1).len() == 1 && format_amount(amount) != "x""#,
                r#"is_def_var("order_id") && Fn("to_upper").call(order_id) != "x""#,
            ],
        );
        let script =
            "fn limit() { 1000000 }\nif amount > limit() { return \"한도 초과\"; }\ntrue\n";
        engine
            .compile_script(script)
            .expect("a script's own function");
    }

    /// A script's own `fn` called with a number of arguments none of its definitions takes
    /// fails on every request that reaches the call: a load error there. Overloads by arity,
    /// a method call with `this` bound and a helper's name
    /// reused with the helper's own arity load, and run.
    #[test]
    fn a_scripts_own_function_given_the_wrong_number_of_arguments_is_a_load_error() {
        let engine = ScriptEngine::new();
        let script =
            "fn category_of(id, race) { race }\nlet c = category_of(order_id);\nc != \"x\"\n";
        let e = engine.compile_script(script).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line, e.column),
            ("category_of(…) is given 1 argument, but this script defines fn category_of(id, race): Rhai would find no function to call, on every request", 2, 9)
        );
        let e = engine
            .compile_script("fn f(a) { a }\nfn f(a, b) { a + b }\nf(1, 2, 3) > 0\n")
            .unwrap_err();
        assert_eq!(
            e.message,
            "f(…) is given 3 arguments, but this script defines fn f(a) and fn f(a, b): Rhai would find no function to call, on every request"
        );
        let e = engine
            .compile_script("fn plus(x, y) { x + y }\namount.plus(1) > 0\n")
            .unwrap_err();
        assert_eq!(
            e.message,
            "x.plus(…) is given 1 argument (x itself is `this` in the function, not an argument), but this script defines fn plus(x, y): Rhai would find no function to call, on every request"
        );
        for script in [
            "fn f(a) { a }\nfn f(a, b) { a + b }\nf(1) + f(1, 2) == 4\n",
            "fn twice() { this * 2 }\namount.twice() == 100000\n",
            "fn format_amount(x, unit) { `${x}${unit}` }\nformat_amount(amount) + format_amount(amount, \"원\") == \"50,00050000원\"\n",
        ] {
            assert_eq!(
                crate::script::tests::run_script(script),
                Ok(crate::script::ScriptVerdict::Pass),
                "{script}"
            );
        }
    }

    /// Every slip a check finds is reported, not only its first: an operator fixes them all
    /// in one edit. A request variable read in a `fn` is reported once per function and name.
    #[test]
    fn every_finding_of_a_check_is_reported_together() {
        let engine = ScriptEngine::new();
        let found = |e: crate::script::CompileError| -> Vec<(usize, usize, String)> {
            e.into_all()
                .map(|e| (e.line, e.column, e.message))
                .collect()
        };
        let script = "fn limit() { amount + amount > 5 }\nfn cap() { amount > 1 }\nlet a = order_id.startsWith(\"vip-\");\nlet b = lenght(order_id);\nif amount > \"1000\" { return \"x\"; }\nif amount > \"2000\" { return \"y\"; }\na && b\n";
        let got = found(engine.compile_script(script).unwrap_err());
        let places: Vec<(usize, usize)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            places,
            [(1, 14), (2, 12), (3, 18), (4, 9), (5, 13), (6, 13)],
            "{got:#?}"
        );
        assert!(got[0].2.starts_with("fn limit: amount"), "{got:#?}");
        assert!(got[1].2.starts_with("fn cap: amount"), "{got:#?}");
        assert!(got[2].2.contains("startsWith"), "{got:#?}");
        assert!(got[3].2.contains("lenght"), "{got:#?}");
        assert!(got[4].2.contains("\"1000\""), "{got:#?}");
        assert!(got[5].2.contains("\"2000\""), "{got:#?}");
        let expression = r#"order_id.startsWith("a") || store_id.endsWith("b")"#;
        let got = found(engine.compile_expression(expression, &[]).unwrap_err());
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].2.contains("startsWith") && got[1].2.contains("endsWith"));
    }

    /// The lints walk each function on its own: a script of many functions is walked once per
    /// function (not the whole script per function), and a slip in its last one is still
    /// found, at its place.
    #[test]
    fn each_function_is_linted_on_its_own_in_a_script_of_many() {
        let mut src: String = (0..2000)
            .map(|i| format!("fn f{i}(x) {{ f{}(x) }}\n", i + 1))
            .collect();
        src.push_str("fn f2000(x) { x > amount }\nf0(1)\n");
        let e = ScriptEngine::new().compile_script(&src).unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line, e.column),
            ("fn f2000: amount is not visible here, as a Rhai function sees only its parameters; pass it in: fn f2000(amount) … called as f2000(amount)", 2001, 19)
        );
    }

    /// Slips Rhai accepts at compile time and that fail (or never hold) on every request: a
    /// helper called with the wrong number of arguments, a request variable inside a script's
    /// own `fn`, a quoted status, a field no answer has, an `api` that does not exist.
    #[test]
    fn slips_that_fail_every_request_are_load_errors() {
        let engine = ScriptEngine::new();
        for (src, message, line, column) in [
            ("seoul_hour() == 1", "seoul_hour(…) takes 1 argument, not 0", 1, 1),
            (r#"format_amount(amount, 2) == "x""#, "format_amount(…) takes 1 argument, not 2", 1, 1),
            ("order_id.starts_with()", "x.starts_with(…) takes 1 argument, not 0", 1, 10),
            ("is_blank(order_id, 1)", "is_blank(…) takes 1 argument, not 2", 1, 1),
            ("fn too_big() { amount > 1000000 }\n!too_big()", "fn too_big: amount is not visible here, as a Rhai function sees only its parameters; pass it in: fn too_big(amount) … called as too_big(amount)", 1, 16),
            (r#"response.status == "200""#, r#""200" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 20),
            (r#"fetched["stock"].status != "200""#, r#""200" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 28),
            (r#"fetched.stock.status == "200""#, r#""200" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 25),
            ("response.statuss == 200", "an upstream's answer has status, headers and body, not statuss; did you mean status?", 1, 10),
            (r#"fetched["stock"].bodyy.left > 0"#, "an upstream's answer has status, headers and body, not bodyy; did you mean body?", 1, 18),
            // A trial: through a copy of the answer it was let through.
            ("let r = fetched[\"stock\"];\nr.bodyy.left > 0", "an upstream's answer has status, headers and body, not bodyy; did you mean body?", 2, 3),
            (r#"response.headers["Content-Type"] == "application/json""#, r#"header names in an answer's headers are lower case, so "Content-Type" is never there: write "content-type""#, 1, 18),
            (r#"fetched["stock"].headers["X-Left"] == "1""#, r#"header names in an answer's headers are lower case, so "X-Left" is never there: write "x-left""#, 1, 26),
            (r#"response.headers["Content Type"] == "x""#, r#"header names in an answer's headers are lower case, so "Content Type" is never there: write "content-type""#, 1, 18),
            (r#"api == "v2""#, r#"api is never "v2": it is one of "v1", "v2-2024-01-01", "v2-2024-04-25""#, 1, 8),
            (r#""Sat" != seoul_weekday(now)"#, r#"seoul_weekday(…) is never "Sat": it is one of "mon", "tue", "wed", "thu", "fri", "sat", "sun""#, 1, 1),
            (r#"seoul_weekday(now) in ["sat", "Sun"]"#, r#"seoul_weekday(…) is never "Sun": it is one of "mon", "tue", "wed", "thu", "fri", "sat", "sun""#, 1, 23),
            (r#"one_of(seoul_weekday(now), ["Sat"])"#, r#"seoul_weekday(…) is never "Sat": it is one of "mon", "tue", "wed", "thu", "fri", "sat", "sun""#, 1, 28),
            (r#"one_of(amount, [1000, "50000"])"#, r#""50000" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 16),
            (r#"amount in ["50000"]"#, r#""50000" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 11),
            (r#"seoul_hour(now) >= "10""#, r#""10" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 1, 20),
            // Review: through a variable, a list of quoted numbers was let through.
            ("let h = seoul_hour(now);\nif h in [\"12\", \"13\"] { return \"점심시간\"; }\ntrue", r#""12" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 2, 10),
            ("let a = amount;\none_of(a, [\"50000\"])", r#""50000" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#, 2, 12),
            (r#"api in ["v1", "v2"]"#, r#"api is never "v2": it is one of "v1", "v2-2024-01-01", "v2-2024-04-25""#, 1, 8),
        ] {
            // Expressions as a fetch's `require` (with `response`); the `fn` and `let` cases
            // are scripts.
            let e = if src.starts_with("fn ") || src.starts_with("let ") {
                engine.compile_script(src)
            } else {
                engine.compile_expression(src, &["response"])
            }
            .unwrap_err();
            assert_eq!((e.message.as_str(), e.line, e.column), (message, line, column), "{src}");
        }
        for fine in [
            r#"response.body.status == "ok" && fetched["stock"].body.left > 0 && fetched.stock.status == 200"#,
            "fn big(amount) { amount > 1000000 }\n!big(amount) && [1].filter(|x| x < amount).len() == 1",
            "fn limit() { let amount = 5; amount }\namount > limit()",
            "fn any_big(list) { for amount in list { if amount > 5 { return true; } } false }\nany_big([amount])",
            "let response = #{ code: 1 }; response.code == 1",
            "let r = fetched[\"stock\"];\nr.body.left > 0 && r.status == 200",
            r#"api == "v1" || api != "v2-2024-04-25" || seoul_weekday(now) == "sat""#,
            r#"api in ["v1", "v2-2024-04-25"] && one_of(seoul_weekday(now), ["sat", "sun"]) && seoul_hour(now) >= 10"#,
            r#"order_id.sub_string(1) != "" && order_id.sub_string(1, 2) != """#,
            // Review: the `now` of the block (or of a function) was taken for the request's
            // after it.
            "if api == \"v1\" { let now = seoul_time(now); if now < \"09:00\" { return \"영업 전\"; } }\nif now >= seoul_at(\"2026-12-31 00:00\") { return \"판매 종료\"; }\ntrue",
            "fn open(t) { let now = seoul_time(t); now >= \"09:00\" }\nif !open(now) { return \"영업 전\"; }\nif now >= seoul_at(\"2026-12-31 00:00\") { return \"판매 종료\"; }\ntrue",
        ] {
            let compiled = if fine.contains('\n') || fine.starts_with("let ") {
                engine.compile_script(fine)
            } else {
                engine.compile_expression(fine, &["response"])
            };
            compiled.unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
    }

    /// Text compared with a number through a variable whose kind is known at load: the
    /// comparison is `false` on every request, so the rule never applies.
    #[test]
    fn text_compared_with_a_number_through_a_variable_is_a_load_error() {
        let engine = ScriptEngine::new();
        let quoted = |s: &str| {
            format!("\"{s}\" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes")
        };
        for (src, message, line, column) in [
            (
                "const LIMIT = \"1000000\";\nif amount > LIMIT { return \"한도 초과\"; }\ntrue",
                "this compares LIMIT, the string \"1000000\" (line 1), with a number, and a number compared with a string is never equal, smaller or larger: declare LIMIT without quotes".to_owned(),
                2,
                13,
            ),
            (
                "let h = seoul_hour(now);\nif h >= \"10\" { return \"영업시간 전\"; }\ntrue",
                quoted("10"),
                2,
                9,
            ),
            ("let a = amount;\na > \"1000\"", quoted("1000"), 2, 5),
            ("const OK = [\"50000\", \"99000\"];\n!(amount in OK)", quoted("50000"), 1, 13),
            ("let OK = [50000, \"99000\"];\n!one_of(amount, OK)", quoted("99000"), 1, 18),
            (
                "let t = seoul_time(now);\nt != 930",
                "this is text, and a number compared with a string is never equal, smaller or larger: compare it with text, or read a number from it with parse_int(…)".to_owned(),
                2,
                1,
            ),
            // `store_id` is text, or `()` without one: never a number.
            (
                "store_id == 1234",
                "this is text, and a number compared with a string is never equal, smaller or larger: compare it with text, or read a number from it with parse_int(…)".to_owned(),
                1,
                1,
            ),
            // A list of numbers never holds an id, which is text.
            (
                "!(order_id in [20261210001, 20261210002])",
                "this list holds only numbers, and order_id is text, which a number never equals: write the items in quotes ([\"1001\", \"1002\"])".to_owned(),
                1,
                15,
            ),
            (
                "one_of(store_id, [1001, 1002])",
                "this list holds only numbers, and store_id is text, which a number never equals: write the items in quotes ([\"1001\", \"1002\"])".to_owned(),
                1,
                18,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, &message, line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                // Assigned again, a parameter, or text on both sides: not known, or fine.
                "let limit = \"1000000\";\nlimit = 1000000;\namount > limit",
                "fn over(a, limit) { a > limit }\nlet limit = \"1\";\n!over(amount, 5)",
                "let limit = \"1000000\";\norder_id != limit && (\"한도 \" + limit) != \"\"",
                "let h = seoul_hour(now);\nh >= 10 && seoul_time(now) >= \"09:30\"",
                "const STORES = [\"s1\", \"s2\"];\nlet OK = [50000];\n(amount in OK) || one_of(order_id, STORES)",
                "store_id == \"1234\" || one_of(order_id, [\"1001\", 1002]) || payload.n in [1, 2]",
                "let store_id = 5;\nstore_id == 5",
                // A `catch` variable named like an earlier string holds the error there.
                "let err = \"회원 번호 오류\";\nlet n = 0;\ntry { n = parse_int(\"x\"); }\ncatch (err) { return \"읽을 수 없습니다: \" + err.message; }\nif n < 5 { return err; }\ntrue",
            ],
        );
    }

    /// A script that gives no value passes every payment, whatever it checks: an emptied one,
    /// one ending with `let` or an assignment, a `try`/`catch` whose value Rhai drops.
    #[test]
    fn a_script_without_a_result_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, starts, line, column) in [
            ("", "the script is empty", 1, 1),
            ("// limit\n\n", "the script is empty", 1, 1),
            (
                "let ok = amount <= 1000000;\n",
                "the script ends with `let`/`const` ok",
                1,
                1,
            ),
            (
                "let ok = true;\nok = amount <= 1000000;",
                "the script ends with an assignment",
                2,
                1,
            ),
            (
                "for s in [\"a\"] {\n  if order_id == s { \"차단\" }\n}",
                "the script ends with a loop",
                1,
                1,
            ),
            (
                "let ok = true;\nif amount > 1000000 { ok = false; }",
                "the script ends with an `if`",
                2,
                1,
            ),
            (
                "{ let ok = amount < 5; }",
                "the script ends with a statement",
                1,
                1,
            ),
            (
                "try { let ok = amount < 5; } catch (e) { }",
                "the script ends with a try/catch",
                1,
                1,
            ),
            (
                "if amount > 0 {\n  try { fail(\"x\") } catch (e) { \"재고 확인 실패\" }\n}",
                "the value at the end of a catch block is dropped",
                2,
                33,
            ),
            // Not at the end: thrown away like any value nobody takes.
            (
                "try { fail(\"x\") } catch (e) { if amount > 1000 { return false; } else { \"c\" } }\ntrue",
                "this value at the end of an if block is thrown away",
                1,
                73,
            ),
            (
                "try { fail(\"x\") } catch (e) { \"재고 확인 실패\" }\ntrue",
                "this value at the end of a catch block is thrown away: the try/catch is not the last statement",
                1,
                31,
            ),
            (
                "let ok = amount <= 1000;\nprint(`ok=${ok}`);",
                "the script ends with a statement",
                2,
                1,
            ),
            (
                "try {\n  fail(\"x\")\n} catch (e) {\n  \"재고 확인 실패\"\n}",
                "the value at the end of a catch block is dropped",
                4,
                3,
            ),
            // Returns before it do not make a `let` at the end read.
            (
                "if amount > 100000 { return \"too much\"; }\nlet ok = !(api == \"v1\" && amount != 80000);",
                "the script ends with `let`/`const` ok, which nothing reads: a script that gets there gives (), which passes the payment; end it with the value to give, e.g. let ok = …; ok",
                2,
                1,
            ),
            // The text "true" refuses with the reason "true".
            (
                "if amount > 100000 { return false; }\n\"true\"",
                "\"true\" is a string, and a script that gives a string refuses the payment with it as the reason: write true without quotes",
                2,
                1,
            ),
            (
                "let r = \"false\";\nif amount > 100000 { return r; }\ntrue",
                "\"false\" is a string, and a script that gives a string refuses the payment with it as the reason: write false without quotes",
                2,
                29,
            ),
            (
                "if amount > 100000 { return \" False\"; }\ntrue",
                "\" False\" is a string, and a script that gives a string refuses the payment with it as the reason: write false without quotes",
                1,
                29,
            ),
        ] {
            let e = engine.compile_script(src).unwrap_err();
            assert!(e.message.starts_with(starts), "{src}: {}", e.message);
            assert_eq!((e.line, e.column), (line, column), "{src}");
        }
        // Ending a function, the catch's dropped value is that function's result.
        let e = engine
            .compile_script("fn check() {\n  try { fail(\"x\") } catch (e) { \"c\" }\n}\ncheck()")
            .unwrap_err();
        assert!(
            e.message
                .contains(", so fn check would give () when the try fails: return it"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (2, 33));
        crate::script::tests::scripts_load(
            &engine,
            &[
                "amount <= 1000000;",
                "let ok = amount <= 1000000; ok",
                "if amount > 1000000 { \"한도 초과\" }",
                "for x in [1] { if x == amount { return \"x\"; } }",
                "try { fail(\"x\") } catch (e) { return \"c\"; }",
                // A try/catch that is not the last statement gives its value to no one: a call
                // ending its catch block is done for what it does.
                "let r = [];\ntry { let y = 1 / 0; } catch (e) { r.push(\"a\"); }\nr.len() == 0",
                "let r = [];\ntry { let y = 1 / 0; } catch (e) { r.push(\"a\") }\ntrue",
                // A catch block ending in fail(…), or an if that returns or throws, drops nothing.
                "let n = 0;\ntry { n = parse_int(payload.stock); } catch (e) { fail(\"stock field unreadable: \" + e) }\nn > 0",
                "try { fail(\"x\") } catch (e) { if amount > 1000 { return false; } }\ntrue",
                "try { fail(\"x\") } catch (e) { if amount > 1000 { return \"재고 확인 실패\"; } else { return true; } }\ntrue",
                "try { fail(\"x\") } catch (e) { if amount > 1000 { throw e; } }\ntrue",
                "try { return amount <= 1000; } catch (e) { return \"c\"; }",
                "try { return amount > 5; } catch (e) { }",
                "try { let ok = payload.stock > 0; ok } catch (e) { return \"x\"; }",
                // A text changed in place before it is given.
                "let r = \"false\";\nr.replace(\"false\", \"한도 초과\");\nif amount > 5 { return r; }\ntrue",
                "let r = \"false\";\nif amount > 100 { r.clear(); r.append(\"한도 초과\"); return r; }\ntrue",
                // An early return refuses; what follows may end in a statement (not a `let`,
                // which nothing would read).
                "if amount > 1000000 { return \"한도 초과\"; }\nprint(\"checked\");",
                "let n = 0;\nif amount > 5 { throw \"x\" }\nn += 1;",
                "if amount > 5 { fail(\"stock API down\") }",
                "switch amount { 0 => \"zero\", _ => true }",
                // `()` written out is passing on purpose, as `true` is.
                "()",
                "if amount > 100000 { return \"한도 초과\"; }\n()",
            ],
        );
        // A `()` that is only an `if`'s branch checks nothing.
        let e = engine.compile_script("if amount > 5 { () }").unwrap_err();
        assert!(
            e.message.starts_with("the script ends with an `if`"),
            "{}",
            e.message
        );
    }

    /// Rhai reports a missing `}` where the script ends; the error names the `{` left open.
    #[test]
    fn a_missing_closing_brace_is_named_where_it_opens() {
        let engine = ScriptEngine::new();
        let src = "// { in a comment\nlet limit = \"{\";\nif amount > 1000000 {\n    return \"초과 }\";\n\nlet x = 1;\ntrue\n";
        let e = engine.compile_script(src).unwrap_err();
        assert!(
            e.message.starts_with(
                "the { at line 3, column 21 is never closed (Rhai, at the end of the script: "
            ),
            "{}",
            e.message
        );
        assert_eq!(super::unclosed_brace("if a { b } /* { */ `x{`"), None);
    }

    /// An unclosed `/*` is found where it opens, past strings, characters, line comments and
    /// nested comments; a closed one is not.
    #[test]
    fn an_unclosed_block_comment_is_found_where_it_opens() {
        let engine = crate::script::ScriptEngine::new();
        let message = "this /* is never closed: Rhai would take everything after it as a comment and leave it out; end the comment with */ (comments nest: each /* needs its own */)";
        for (src, line, column) in [
            ("if amount > 1000000 { return \"한도 초과\"; }\n/* promo\nif amount > 5 { return \"x\"; }\ntrue", 2, 1),
            ("/*", 1, 1),
            ("let s = \"/* not a comment */\";\n/* a /* nested */ comment\ntrue", 2, 1),
            ("// a /* in a line comment\nlet x = 1; /* open", 2, 12),
            ("let c = '*'; let s = `a\\`; /*", 1, 28),
            // After a backtick string with code in it, strings and braces included.
            ("let s = `a ${ `b` + #{x: 1}.x } c`; /*", 1, 37),
        ] {
            crate::script::tests::assert_refused(&engine, src, message, line, column);
        }
        let e = engine
            .compile_expression("amount > 5 /* never closed", &[])
            .unwrap_err();
        assert_eq!((e.message.as_str(), e.line, e.column), (message, 1, 12));
        for fine in [
            "/* a */ true",
            "/* a /* nested */ still a comment */ true",
            "let s = \"/*\"; s.len() > 0",
            "let s = `/*`; s.len() > 0",
            // A string inside a backtick string's code.
            "let x = 1;\nlet s = `a ${ `/*` + x } b`;\ns.len() > 0",
            "let s = `a ${ if true { `/*` } else { \"*/\" } } b`; s.len() > 0",
            "// /*\ntrue",
            "let a = 6 / 2 * 3; a > 0",
        ] {
            assert_eq!(super::unclosed_comment(fine), None, "{fine}");
            engine
                .compile_script(fine)
                .unwrap_or_else(|e| panic!("{fine}: {e:?}"));
        }
        assert_eq!(
            super::unclosed_brace("let m = \"a \\\nb\";\nif x {\n"),
            Some((3, 6))
        );
        assert_eq!(
            super::unclosed_brace("let s = `\\`;\nif x {\n"),
            Some((2, 6))
        );
        assert_eq!(
            super::unclosed_brace("fn f() {\n  if x {\n  }\n"),
            Some((1, 8))
        );
    }

    /// A `when` or `require` that gives no true or false fails every request it meets.
    #[test]
    fn an_expression_that_is_no_condition_is_a_load_error() {
        let engine = ScriptEngine::new();
        for (src, kind) in [
            ("order_id", "a string"),
            ("amount", "a number"),
            (r#""false""#, "a string"),
            ("1", "a number"),
            ("payload", "a map"),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message
                    .starts_with(&format!("this gives {kind}, not true or false")),
                "{src}: {e:?}"
            );
        }
        crate::script::tests::expressions_load(
            &engine,
            &["true", "false", "amount > 1", "order_id.contains(\"x\")"],
        );
        // A script may end in a string: a reason.
        engine
            .compile_script("order_id")
            .expect("a script ending in a string");
    }

    /// A script's own `now` or `amount` (a `let`, a parameter, a loop variable) may be anything;
    /// a map's function property may be called as a method.
    #[test]
    fn names_the_script_declares_are_its_own() {
        let engine = ScriptEngine::new();
        for script in [
            "let now = seoul_time(now);\nnow >= \"10:00\" && now < \"22:00\"\n",
            "let amount = amount.to_string();\namount != \"1000\"\n",
            "fn label(amount) { if amount == \"\" { \"-\" } else { amount } }\nlabel(\"a\") != \"-\"\n",
            "for now in [\"10:00\", \"11:00\"] { if now == \"10:00\" { return true; } }\nfalse\n",
            "[\"10:00\"].filter(|now| now == \"10:00\").len() == 1\n",
            "let obj = #{ limit: 100, over: |x| x > this.limit };\nobj.over(200)\n",
        ] {
            engine
                .compile_script(script)
                .unwrap_or_else(|e| panic!("{script}: {e:?}"));
        }
    }

    /// `obj.name(…)` calls the function a map holds under `name`, whichever way the key got
    /// there: a literal, an assignment (`m.k = …`, `m["k"] = …`), `set`, a key computed at run
    /// time. None of those is an unknown function.
    #[test]
    fn a_function_assigned_to_a_map_property_may_be_called_as_a_method() {
        use crate::script::tests::run_script;
        use crate::script::ScriptVerdict;
        let engine = ScriptEngine::new();
        // The request's amount is 50,000.
        for (script, verdict) in [
            (
                "let rules = #{};\nrules.vip = |a| a <= 5000000;\nrules.vip(amount)\n",
                ScriptVerdict::Pass,
            ),
            (
                "let rules = #{};\nrules.vip = |a| a <= 5000;\nrules.vip(amount)\n",
                ScriptVerdict::Refuse(None),
            ),
            ("let o = #{};\no.f = |x| x > 1;\no.f(2)\n", ScriptVerdict::Pass),
            (
                "fn over(x) { x > 1 }\nlet o = #{};\no[\"f\"] = Fn(\"over\");\no.f(2)\n",
                ScriptVerdict::Pass,
            ),
            (
                "fn check(r, a) { r.vip(a) }\nlet rules = #{};\nrules.vip = |a| a <= 5000;\ncheck(rules, amount)\n",
                ScriptVerdict::Refuse(None),
            ),
            (
                "let o = #{ tiers: #{} };\no.tiers.vip = |a| a > 1;\no.tiers.vip(amount)\n",
                ScriptVerdict::Pass,
            ),
            (
                "let o = #{};\no.set(\"vip\", |a| a > 1);\no.vip(amount)\n",
                ScriptVerdict::Pass,
            ),
            (
                "let o = #{};\nlet k = \"vip\";\no[k] = |a| a > 1;\no.vip(amount)\n",
                ScriptVerdict::Pass,
            ),
        ] {
            engine
                .compile_script(script)
                .unwrap_or_else(|e| panic!("{script}: {e:?}"));
            assert_eq!(run_script(script), Ok(verdict), "{script}");
        }
        // A name no map holds is still checked, and so, where a key is computed at run time,
        // is a method of a value that is no map.
        for (script, message, line, column) in [
            (
                "let rules = #{};\nrules.vip = |a| a <= 5000000;\nrules.vvip(amount)\n",
                "function not found: vvip",
                3,
                7,
            ),
            (
                "let o = #{};\nlet k = \"vip\";\no[k] = |a| a > 1;\norder_id.startsWith(\"x\")\n",
                "function not found: startsWith; did you mean starts_with?",
                4,
                10,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, script, message, line, column);
        }
    }

    /// `now` is Unix time in milliseconds; a literal in seconds compared with it is long past,
    /// so the comparison is the same on every request.
    #[test]
    fn now_compared_with_seconds_is_a_load_error_at_the_literal() {
        let engine = ScriptEngine::new();
        let message = "now is Unix time in milliseconds, and 1796000000 is seconds (2026-11-30 09:53 in Seoul; read as milliseconds it is early 1970, long past): write 1796000000000, or compare the Seoul date and time: seoul_date(now) with \"2026-11-30\", seoul_time(now) with \"09:53\"";
        for (src, column) in [
            ("now >= 1796000000", 8),
            ("1796000000 > now", 1),
            ("order_id != \"x\" && now < 1796000000", 26),
            ("now == 1796000000", 8),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!((e.message.as_str(), e.column), (message, column), "{src}");
        }
        let e = engine
            .compile_script("if now <= 1000000000 { return \"x\"; }\ntrue")
            .unwrap_err();
        assert!(
            e.message.contains("write 1000000000000, or compare"),
            "{e:?}"
        );
        assert_eq!((e.line, e.column), (1, 11));
        crate::script::tests::expressions_load(
            &engine,
            &[
                "now >= 1796000000000",
                "now - 1796000000000 < 86400000",
                "amount < 1796000000",
                "now > 999999999 && now != 100000000000",
                "seoul_hour(now) >= 9",
            ],
        );
        // Microseconds and nanoseconds, which no request's now reaches.
        for (src, unit) in [
            ("now >= 1796000000000000", "microseconds"),
            ("now < 1796000000000000000", "nanoseconds"),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message.contains(&format!("is {unit} (2026-11-30 09:53 in Seoul; read as milliseconds it is far in the future): write 1796000000000")),
                "{src}: {e:?}"
            );
        }
        // Seconds given to a Seoul helper, which reads them as early 1970.
        for (src, message) in [
            ("seoul_date(now / 1000) == \"2026-12-01\"", "seoul_date takes Unix time in milliseconds, as now is; now / 1000 is seconds, which it would read as early 1970: write seoul_date(now)"),
            ("seoul_hour(1796000000) > 3", "seoul_hour takes Unix time in milliseconds, as now is; 1796000000 is seconds (2026-11-30 09:53 in Seoul, which seoul_hour would read as early 1970, long past): write 1796000000000"),
        ] {
            crate::script::tests::assert_refused(&engine, src, message, 1, 12);
        }
        crate::script::tests::expressions_load(
            &engine,
            &[
                "seoul_hour(now) > 3 && now / 1000 > 5",
                "seoul_date(1796000000000) == \"2026-11-30\"",
                "seoul_hour(now + 3600000) > 3",
            ],
        );
        // A script's own `now`.
        crate::script::tests::scripts_load(&engine, &["let now = now / 1000;\nnow >= 1796000000"]);
    }

    /// `now` compared with a date and time written as text is pointed to `seoul_at`.
    #[test]
    fn now_compared_with_a_date_in_text_is_pointed_to_seoul_at() {
        let engine = ScriptEngine::new();
        crate::script::tests::assert_refused(
            &engine,
            r#"now < "2026-12-10T10:00:00+09:00""#,
            r#""2026-12-10T10:00:00+09:00" is a date and time written as text, and a number compared with a string is never equal, smaller or larger: write seoul_at("2026-12-10T10:00:00+09:00"), its Unix time in milliseconds, as now is"#,
            1,
            7,
        );
    }

    /// A time written for `seoul_at` is read when the rules load: one it cannot read is an
    /// error at the text, not an `on_error` decision on every request; a number is no text.
    #[test]
    fn seoul_at_text_is_read_at_load() {
        let engine = ScriptEngine::new();
        crate::script::tests::assert_refused(
            &engine,
            r#"now >= seoul_at("2026-12-07 9시")"#,
            r#"seoul_at: "2026-12-07 9시" is no date and time: write it as "2026-12-07 09:00" (Korean time, 24-hour clock)"#,
            1,
            17,
        );
        crate::script::tests::assert_refused(
            &engine,
            "now >= seoul_at(1796000000000)",
            "seoul_at(…) takes a date and time in Korea as text (such as \"2026-12-07 10:00\") as its first argument, not a number, so this call would fail on every request",
            1,
            17,
        );
        crate::script::tests::expressions_load(
            &engine,
            &[
                r#"now >= seoul_at("2026-12-07 10:00") && now < seoul_at("2026-12-07T18:00:00+09:00")"#,
                r#"now >= seoul_at(payload.opens ?? "2026-12-07")"#,
            ],
        );
    }

    /// Trial: the marathon example keeps its windows in a map and hands `seoul_at` the
    /// entries: a date in it that `seoul_at` cannot read loaded, and every request of that
    /// category was refused by on_error. Texts written as dates are read at load in a script
    /// that gives `seoul_at` values; codes that only begin like a date are not.
    #[test]
    fn dates_handed_to_seoul_at_from_a_map_are_read_at_load() {
        let engine = ScriptEngine::new();
        let windows = "let w = #{ full: [\"2026-12-01 10:00\", \"2026-12-01 24:00\"] };\nnow >= seoul_at(w.full[0]) && now < seoul_at(w.full[1])";
        crate::script::tests::assert_refused(
            &engine,
            windows,
            r#"seoul_at: "2026-12-01 24:00" is no date and time: the end of a day is the next day's 00:00, "2026-12-02 00:00" (this script gives seoul_at its dates from values)"#,
            1,
            39,
        );
        crate::script::tests::scripts_load(
            &engine,
            &[
                // Every date readable.
                "let w = [\"2026-12-01 10:00\", \"2026-12-02\"];\nnow >= seoul_at(w[0]) && now < seoul_at(w[1])",
                // A message naming a date, beside seoul_at given a value.
                "let w = \"2026-12-01 10:00\";\nif now < seoul_at(w) { return \"2026-12-01 10:00부터 접수합니다\"; }\ntrue",
                // Codes, not dates, beside seoul_at given a value.
                "let coupon = \"2026-12-01-promo\";\nlet w = \"2026-12-01 10:00\";\norder_id != coupon && now >= seoul_at(w)",
                // An unreadable date where seoul_at never reads values: its text is no time.
                "let label = \"2026-13-01 sale\";\norder_id != label && now >= seoul_at(\"2026-12-01\")",
            ],
        );
        // Verification: handed over by a closure, it loaded.
        crate::script::tests::assert_refused(
            &engine,
            "[\"2026-12-01 10:00\", \"2026-12-01 24:00\"].all(|d| now >= seoul_at(d))",
            r#"seoul_at: "2026-12-01 24:00" is no date and time: the end of a day is the next day's 00:00, "2026-12-02 00:00" (this script gives seoul_at its dates from values)"#,
            1,
            22,
        );
        crate::script::tests::assert_refused(
            &engine,
            r#"now < seoul_at("2026-12-31T24:00")"#,
            r#"seoul_at: "2026-12-31T24:00" is no date and time: the end of a day is the next day's 00:00, "2027-01-01 00:00""#,
            1,
            16,
        );
    }

    /// Each slip is an error at its string; comparisons whose types are not known at load, and
    /// strings compared with strings, are left alone.
    #[test]
    fn a_string_compared_with_a_number_is_a_load_error_at_the_string() {
        let engine = ScriptEngine::new();
        for (src, column) in [
            (r#"amount > "1000000""#, 10),
            (r#""1000000" <= amount"#, 1),
            (r#"order_id.starts_with("vip-") && amount * 2 != "0""#, 47),
            (r#"now >= "1764550800000""#, 8),
            (r#"amount == "5000""#, 11),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert!(
                e.message
                    .contains("is a string, and a number compared with a string"),
                "{src}: {e:?}"
            );
            assert_eq!((e.line, e.column), (1, column), "{src}");
        }
        let script = "let limit = 1000000;\nif amount > \"1000000\" { return false; }\ntrue\n";
        let e = engine.compile_script(script).unwrap_err();
        assert_eq!((e.line, e.column), (2, 13), "{e:?}");
        crate::script::tests::expressions_load(
            &engine,
            &[
                r#"order_id == "1000000""#,
                r#"payload.level == "gold""#,
                r#""x" + amount != "x0""#,
                r#"amount > 1000000"#,
                r#"fetched["stock"].body.available >= 1"#,
            ],
        );
    }
}
