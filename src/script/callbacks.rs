//! Rhai's list and map methods that call a closure back (`some`, `all`, `filter`, `sort` …),
//! made as strict as a `require`.
//!
//! Rhai's own read whatever a predicate gives but `true` as false, so a field one item lacks
//! (`()`) or a flag sent as text (`"Y"`) quietly counts as "no": `!items.some(|it| it.blocked)`
//! would pass an order whose items all lack `blocked`. Its `sort` and `dedup` drop the
//! closure's errors and go on in an order of their own, and `sort` panics (caught) when the
//! closure is no total order. Registered functions shadow the standard library's, so these
//! replace them: a predicate that gives anything but true or false, and a comparator that fails
//! or gives anything but a number or true/false, is an error, which `on_error` decides.

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, FuncRegistration, Map, NativeCallContext, INT,
};

type Failure = Box<EvalAltResult>;

/// What `f` gives for one list item (bound to `this`, or passed as its first parameter, with the
/// item's index as an optional second one, as Rhai's methods do), read as true or false.
fn holds(
    ctx: &NativeCallContext,
    f: &FnPtr,
    method: &str,
    item: &mut Dynamic,
    index: usize,
) -> Result<bool, Failure> {
    let at = Dynamic::from(INT::try_from(index).unwrap_or(INT::MAX));
    let given = f.call_raw_with_extra_args(method, ctx, Some(item), [], [at], Some(0))?;
    truth(method, given, || format!("item {index}"))
}

/// What `f` gives for one map entry (the key, and the value bound to `this` or passed as the
/// second parameter, as Rhai's map methods do), read as true or false.
fn holds_for_entry(
    ctx: &NativeCallContext,
    f: &FnPtr,
    method: &str,
    key: &str,
    value: &mut Dynamic,
) -> Result<bool, Failure> {
    let given = f.call_raw_with_extra_args(method, ctx, Some(value), [key.into()], [], Some(1))?;
    truth(method, given, || format!("the key {key:?}"))
}

fn truth(method: &str, given: Dynamic, which: impl FnOnce() -> String) -> Result<bool, Failure> {
    given.as_bool().map_err(|kind| {
        format!(
            "the function given to {method} gave {} for {}, not true or false: it must give a condition, such as |it| it.qty > 0",
            super::helpers::a_value_of_kind(kind),
            which()
        )
        .into()
    })
}

/// Registers the strict methods on `engine`.
pub(super) fn register(engine: &mut Engine) {
    // Pure: they only read the list, so they work on a constant one too, as Rhai's do.
    let reading = |name: &str| FuncRegistration::new(name).with_purity(true);
    let changing = |name: &str| FuncRegistration::new(name).with_purity(false);

    reading("some").register_into_engine(
        engine,
        |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<bool, Failure> {
            for (i, item) in list.iter_mut().enumerate() {
                if holds(&ctx, &f, "some", item, i)? {
                    return Ok(true);
                }
            }
            Ok(false)
        },
    );
    reading("all").register_into_engine(
        engine,
        |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<bool, Failure> {
            for (i, item) in list.iter_mut().enumerate() {
                if !holds(&ctx, &f, "all", item, i)? {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    );
    reading("filter").register_into_engine(
        engine,
        |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<Array, Failure> {
            let mut kept = Array::new();
            for (i, item) in list.iter_mut().enumerate() {
                if holds(&ctx, &f, "filter", item, i)? {
                    kept.push(item.clone());
                }
            }
            Ok(kept)
        },
    );
    reading("filter").register_into_engine(
        engine,
        |ctx: NativeCallContext, map: &mut Map, f: FnPtr| -> Result<Map, Failure> {
            let mut kept = Map::new();
            for (key, value) in map.iter_mut() {
                if holds_for_entry(&ctx, &f, "filter", key.as_str(), value)? {
                    kept.insert(key.clone(), value.clone());
                }
            }
            Ok(kept)
        },
    );
    for method in ["find", "index_of"] {
        reading(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, list: &mut Array, f: FnPtr| {
                first(&ctx, list, &f, method, 0)
            },
        );
        reading(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, list: &mut Array, f: FnPtr, start: INT| {
                first(&ctx, list, &f, method, start)
            },
        );
    }
    for (method, keep_holding) in [("retain", true), ("drain", false)] {
        changing(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<Array, Failure> {
                let mut verdicts = Vec::with_capacity(list.len());
                for (i, item) in list.iter_mut().enumerate() {
                    verdicts.push(holds(&ctx, &f, method, item, i)?);
                }
                // Decided in full before anything moves: an error leaves the list as it was.
                let mut taken = Array::new();
                for (item, holds) in std::mem::take(list).into_iter().zip(verdicts) {
                    if holds == keep_holding {
                        list.push(item);
                    } else {
                        taken.push(item);
                    }
                }
                Ok(taken)
            },
        );
        changing(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, map: &mut Map, f: FnPtr| -> Result<Map, Failure> {
                let mut verdicts = Vec::with_capacity(map.len());
                for (key, value) in map.iter_mut() {
                    verdicts.push(holds_for_entry(&ctx, &f, method, key.as_str(), value)?);
                }
                let mut taken = Map::new();
                for ((key, value), holds) in std::mem::take(map).into_iter().zip(verdicts) {
                    if holds == keep_holding {
                        map.insert(key, value);
                    } else {
                        taken.insert(key, value);
                    }
                }
                Ok(taken)
            },
        );
    }
    changing("dedup").register_into_engine(
        engine,
        |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<(), Failure> {
            let mut failure = None;
            // An error leaves the list as it was, as the other methods do.
            let original = list.clone();
            list.dedup_by(|later, earlier| {
                if failure.is_some() {
                    return false;
                }
                let given = f.call_raw(&ctx, None, [earlier.clone(), later.clone()]);
                match given.and_then(|g| truth("dedup", g, || "two items".to_owned())) {
                    Ok(same) => same,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            });
            match failure {
                Some(e) => {
                    *list = original;
                    Err(e)
                }
                None => Ok(()),
            }
        },
    );
    for method in ["sort", "sort_by"] {
        changing(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<(), Failure> {
                let sorted = merge_sort(std::mem::take(list), &mut |a, b| {
                    order(&ctx, &f, method, a, b)
                });
                match sorted {
                    Ok(sorted) => {
                        *list = sorted;
                        Ok(())
                    }
                    Err((unsorted, e)) => {
                        *list = unsorted;
                        Err(e)
                    }
                }
            },
        );
    }
    // The sorted copy: Rhai's calls its own lax sort, not the method above.
    for method in ["order", "order_by"] {
        reading(method).register_into_engine(
            engine,
            move |ctx: NativeCallContext, list: &mut Array, f: FnPtr| -> Result<Array, Failure> {
                merge_sort(list.clone(), &mut |a, b| order(&ctx, &f, method, a, b))
                    .map_err(|(_, e)| e)
            },
        );
    }
}

/// The first item from `start` (from the end when negative, as Rhai counts) for which `f`
/// holds: the item (`find`, `()` if none) or its index (`index_of`, -1 if none).
fn first(
    ctx: &NativeCallContext,
    list: &mut Array,
    f: &FnPtr,
    method: &str,
    start: INT,
) -> Result<Dynamic, Failure> {
    let from = if start < 0 {
        list.len()
            .saturating_sub(usize::try_from(start.unsigned_abs()).unwrap_or(usize::MAX))
    } else {
        usize::try_from(start).unwrap_or(usize::MAX)
    };
    for (i, item) in list.iter_mut().enumerate().skip(from) {
        if holds(ctx, f, method, item, i)? {
            return Ok(if method == "find" {
                item.clone()
            } else {
                Dynamic::from(INT::try_from(i).unwrap_or(INT::MAX))
            });
        }
    }
    Ok(if method == "find" {
        Dynamic::UNIT
    } else {
        Dynamic::from(-1 as INT)
    })
}

/// How `a` and `b` compare by `f`: a number (below, at or above 0) or true/false (true: `a`
/// first), as Rhai's `sort` reads them.
fn order(
    ctx: &NativeCallContext,
    f: &FnPtr,
    method: &str,
    a: &Dynamic,
    b: &Dynamic,
) -> Result<std::cmp::Ordering, Failure> {
    let given = f.call_raw(ctx, None, [a.clone(), b.clone()])?;
    if let Ok(n) = given.as_int() {
        return Ok(n.cmp(&0));
    }
    // A difference of fractional values (`|a, b| a.price - b.price`) is a number too; NaN is
    // no order.
    if let Ok(x) = given.as_float() {
        return x.partial_cmp(&0.0).ok_or_else(|| {
            format!("the function given to {method} gave NaN for two items, which orders against nothing: give a number or true or false").into()
        });
    }
    if let Some(d) = given.read_lock::<rust_decimal::Decimal>() {
        return Ok(d.cmp(&rust_decimal::Decimal::ZERO));
    }
    match given.as_bool() {
        Ok(true) => Ok(std::cmp::Ordering::Less),
        Ok(false) => Ok(std::cmp::Ordering::Greater),
        Err(kind) => Err(format!(
            "the function given to {method} gave {} for two items, not a number (below 0: the first goes first) or true or false",
            super::helpers::a_value_of_kind(kind)
        )
        .into()),
    }
}

/// A stable merge sort by a comparator that may fail: the first failure stops it and gives the
/// items back in their order, where Rust's `sort_by` would panic on a comparator that is no
/// total order. At most [`MAX_ARRAY_SIZE`](super::MAX_ARRAY_SIZE) items, each comparison within
/// the evaluation's operation and time budget.
fn merge_sort(
    items: Array,
    compare: &mut impl FnMut(&Dynamic, &Dynamic) -> Result<std::cmp::Ordering, Failure>,
) -> Result<Array, (Array, Failure)> {
    let mut failure = None;
    let original = items.clone();
    let sorted = sort_run(items, &mut |a, b| {
        if failure.is_some() {
            return std::cmp::Ordering::Equal;
        }
        compare(a, b).unwrap_or_else(|e| {
            failure = Some(e);
            std::cmp::Ordering::Equal
        })
    });
    match failure {
        None => Ok(sorted),
        Some(e) => Err((original, e)),
    }
}

fn sort_run(
    mut items: Array,
    compare: &mut impl FnMut(&Dynamic, &Dynamic) -> std::cmp::Ordering,
) -> Array {
    if items.len() <= 1 {
        return items;
    }
    let right = items.split_off(items.len() / 2);
    let left = sort_run(items, compare);
    let right = sort_run(right, compare);
    let mut merged = Array::with_capacity(left.len() + right.len());
    let mut right = right.into_iter().peekable();
    for l in left {
        while let Some(r) = right.peek() {
            // Stable: an item of the right half goes first only if strictly smaller.
            if compare(r, &l) == std::cmp::Ordering::Less {
                merged.extend(right.next());
            } else {
                break;
            }
        }
        merged.push(l);
    }
    merged.extend(right);
    merged
}

#[cfg(test)]
mod tests {
    use crate::script::tests::run_unchecked;
    use crate::script::{ScriptEngine, ScriptVerdict};

    /// What `src` (a script ending in a text) gives on the sandboxed engine, or its error.
    fn text_of(engine: &ScriptEngine, src: &str) -> Result<String, String> {
        match run_unchecked(engine, src)? {
            ScriptVerdict::Refuse(Some(text)) => Ok(text),
            other => panic!("{src}: gave {other:?}, not a text"),
        }
    }

    /// Where every closure gives what it should, the strict methods give what Rhai's own give:
    /// the same items in the same order, `this` and the index bound alike, constants readable.
    #[test]
    fn well_typed_callbacks_give_what_rhais_own_methods_give() {
        let ours = ScriptEngine::new();
        let rhai = rhai::Engine::new();
        let lists = [
            "let x = [3, 1, 4, 1, 5, 9, 2, 6];",
            "let x = [];",
            "let x = [7];",
            "const x = [\"b\", \"a\", \"c\", \"a\"];",
        ];
        let calls = [
            "x.some(|v| v == 1)",
            "x.some(|v, i| i > 2)",
            "x.all(|v| v != 0)",
            "x.all(|| this != 9)",
            "x.filter(|v| v != 1)",
            "x.filter(|v, i| i % 2 == 0)",
            "x.find(|v| v != 3)",
            "x.find(|v| v == 1, 2)",
            "x.find(|v| v == 1, -3)",
            "x.find(|v| v == 1, 99)",
            "x.index_of(|v| v == 1)",
            "x.index_of(|v| v == 1, 2)",
            "x.index_of(|v| v == 1, -99)",
            "x.index_of(|| this == \"zz\")",
        ];
        let changes = [
            "let y = x; let d = y.retain(|v| v != 1); `${y} ${d}`",
            "let y = x; let d = y.retain(|v, i| i < 3); `${y} ${d}`",
            "let y = x; let d = y.drain(|v| v == 1); `${y} ${d}`",
            "let y = x; y.dedup(|a, b| a == b); `${y}`",
            "let y = x; y.sort(|a, b| if a < b { -1 } else if a > b { 1 } else { 0 }); `${y}`",
            "let y = x; y.sort_by(|a, b| a > b); `${y}`",
            "let y = x; y.sort(|a, b| 0); `${y}`",
            "`${x.order(|a, b| if a < b { -1 } else if a > b { 1 } else { 0 })} ${x}`",
            "`${x.order_by(|a, b| a > b)}`",
        ];
        for list in lists {
            let numbers = !list.contains('"');
            for call in calls {
                let call = if numbers {
                    call.to_owned()
                } else {
                    call.replace("== 1", "== \"a\"")
                        .replace("!= 1", "!= \"a\"")
                        .replace("!= 3", "!= \"b\"")
                        .replace("v != 0", "v != \"\"")
                        .replace("!= 9", "!= \"zz\"")
                };
                // Prefixed: a script giving the text "true" is an error of its own.
                let src = format!("{list} `=${{{call}}}`");
                let theirs = rhai.eval::<String>(&src).map_err(|e| e.to_string());
                assert_eq!(text_of(&ours, &src), theirs, "{src}");
            }
            if list.starts_with("const") {
                continue;
            }
            for change in changes {
                let src = format!("{list} {change}");
                let theirs = rhai.eval::<String>(&src).map_err(|e| e.to_string());
                assert_eq!(text_of(&ours, &src), theirs, "{src}");
            }
        }
        for src in [
            "let m = #{a: 1, b: 2, c: 3}; `${m.filter(|k, v| v > 1)} ${m.filter(|k| this < 3)}`",
            "let m = #{a: 1, b: 2, c: 3}; let d = m.retain(|k, v| k != \"b\"); `${m} ${d}`",
            "let m = #{a: 1, b: 2, c: 3}; let d = m.drain(|k| this == 3); `${m} ${d}`",
        ] {
            let theirs = rhai.eval::<String>(src).map_err(|e| e.to_string());
            assert_eq!(text_of(&ours, src), theirs, "{src}");
        }
    }

    /// A predicate that gives anything but true or false (a missing field's `()`, a flag sent as
    /// text) is an error naming the method and the item, where Rhai read it as false and
    /// `!items.some(|it| it.blocked)` passed.
    #[test]
    fn a_predicate_that_gives_no_true_or_false_is_an_error() {
        let engine = ScriptEngine::new();
        let items = r#"let items = [#{sku: "a"}, #{sku: "b", blocked: "Y"}];"#;
        for (call, says) in [
            ("!items.some(|it| it.blocked)", "the function given to some gave () (what a missing field reads as) for item 0, not true or false"),
            ("items.all(|it, i| if i == 0 { true } else { it.blocked })", "the function given to all gave a text for item 1"),
            ("items.filter(|it| it.qty).len() == 0", "the function given to filter gave ()"),
            ("items.find(|it| 1) == ()", "the function given to find gave a number for item 0"),
            ("items.index_of(|it| it.blocked, 1) < 0", "the function given to index_of gave a text for item 1"),
            ("items.retain(|it| it.blocked).len() == 0", "the function given to retain gave ()"),
            ("items.drain(|it| ()).len() == 0", "the function given to drain gave ()"),
            ("#{a: 1}.filter(|k, v| v) == #{}", "the function given to filter gave a number for the key \"a\""),
            ("items.dedup(|a, b| a.sku) == ()", "the function given to dedup gave a text for two items"),
        ] {
            let src = format!("{items} if {call} {{ true }} else {{ false }}");
            let e = run_unchecked(&engine, &src).unwrap_err();
            assert!(e.contains(says), "{src}\n{e}");
        }
    }

    /// A comparator's error stops the sort with that error, and one that gives no number or
    /// true/false is an error, where Rhai sorted on by kind of value; a comparator that is no
    /// total order sorts somehow, never panics.
    #[test]
    fn a_comparators_failure_is_an_error_not_an_order() {
        let engine = ScriptEngine::new();
        for (src, says) in [
            ("let x = [#{p: 2}, #{p: \"1\"}]; x.sort(|a, b| a.p - b.p); true", "function not found: - (text, integer)"),
            ("let x = [#{p: 2}, #{}]; x.sort(|a, b| a.p); true", "the function given to sort gave () (what a missing field reads as) for two items, not a number"),
            ("let x = [1, 2]; x.sort_by(|a, b| \"x\"); true", "the function given to sort_by gave a text"),
            ("let x = [#{p: 2}, #{}]; x.order(|a, b| a.p).len() == 2", "the function given to order gave () (what a missing field reads as)"),
        ] {
            let e = run_unchecked(&engine, src).unwrap_err();
            assert!(e.contains(says), "{src}\n{e}");
        }
        // Few items: a debug build on a busy machine must stay within the 50 ms time limit.
        // A fractional difference orders as its sign does; a failed dedup leaves the list whole.
        for src in [
            "let x = [#{p: 2.5}, #{p: 1.5}]; x.sort(|a, b| a.p - b.p); x[0].p == 1.5",
            "let x = [2.5.to_decimal(), 1.5.to_decimal()]; x.sort(|a, b| a - b); x[0] == 1.5",
            "let x = [1, 2, 2, 3]; try { x.dedup(|a, b| \"x\"); } catch {} x.len() == 4",
        ] {
            assert!(
                matches!(run_unchecked(&engine, src), Ok(ScriptVerdict::Pass)),
                "{src}"
            );
        }
        let src = "let x = []; for i in 0..40 { x.push((i * 7919) % 211); } x.sort(|a, b| if (a + b) % 3 == 0 { 1 } else { -1 }); x.len() == 40";
        assert!(
            matches!(run_unchecked(&engine, src), Ok(ScriptVerdict::Pass)),
            "{src}"
        );
    }
}
