//! Maps and lists made into text (`${m}`, `m.to_string()`, `print(m)`, `"x" + m`,
//! `m.to_json()`) within the string size limit.
//!
//! Rhai limits a map's entries and each string's length, but a map filled by index can hold the
//! same 64 KiB string under thousands of keys, and Rhai's own renderings build the whole text in
//! one native call, which the time budget cannot stop, before its size is checked: 1,000 such
//! entries took 15 s and a gigabyte. These replace them (registered functions shadow the
//! standard library's) and refuse at once a value whose text could not fit, then render it as
//! Rhai would. Not reached: a map interpolated (`${m}`) or added to text (`"x" + m`), which
//! Rhai resolves to its own rendering (a list there reaches these).

use std::fmt::Write;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use super::MAX_STRING_SIZE;

/// Takes `n` bytes from `budget`; true once it has run out.
fn spend(budget: &mut usize, n: usize) -> bool {
    match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            false
        }
        None => true,
    }
}

/// Whether every rendering of `value` would pass `budget` bytes: each string and key counts
/// its length, every other value and entry at least one byte. Stops as soon as it passes, so
/// it reads at most `budget` values, however large the value.
fn too_large(value: &Dynamic, budget: &mut usize) -> bool {
    if let Ok(s) = value.as_immutable_string_ref() {
        return spend(budget, s.len().max(1));
    }
    if let Ok(map) = value.as_map_ref() {
        return map_too_large(&map, budget);
    }
    if let Ok(items) = value.as_array_ref() {
        return items_too_large(&items, budget);
    }
    spend(budget, 1)
}

fn map_too_large(map: &Map, budget: &mut usize) -> bool {
    map.iter()
        .any(|(k, v)| spend(budget, k.len() + 1) || too_large(v, budget))
}

fn items_too_large(items: &[Dynamic], budget: &mut usize) -> bool {
    items
        .iter()
        .any(|v| spend(budget, 1) || too_large(v, budget))
}

/// The error of a text over the limit, as Rhai gives it for a string grown too long.
fn fits(too_large: impl FnOnce(&mut usize) -> bool) -> Result<(), Box<EvalAltResult>> {
    if too_large(&mut MAX_STRING_SIZE.clone()) {
        return Err(Box::new(EvalAltResult::ErrorDataTooLarge(
            "Length of string".into(),
            Position::NONE,
        )));
    }
    Ok(())
}

/// `value` as `to_debug` makes it (a map's or list's own items through this module again).
fn debug(ctx: &NativeCallContext, value: &mut Dynamic) -> String {
    match ctx.call_native_fn_raw("to_debug", true, &mut [value]) {
        Ok(text) if text.is_string() => text.into_string().unwrap_or_default(),
        _ => format!("{value:?}"),
    }
}

/// What a map or list too large to show is rendered as: a text just over the string limit,
/// saying so. Not an error, which Rhai answers in an interpolation by rendering the value whole
/// all the same (it falls back to its `Display`): a text over the limit is refused by the size
/// check made of what a function returns (`too large`, an error decision), at the cost of
/// 64 KiB.
fn too_large_text() -> String {
    const SAY: &str = "(a map or list too large to show: its text would pass the 64 KiB limit) ";
    SAY.repeat(MAX_STRING_SIZE / SAY.len() + 1)
}

/// Rhai's rendering of a map: `#{"a": 1, "b": "x"}`.
fn map_text(ctx: NativeCallContext, map: &mut Map) -> String {
    if fits(|budget| map_too_large(map, budget)).is_err() {
        return too_large_text();
    }
    let mut out = String::from("#{");
    for (i, (k, v)) in map.iter_mut().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{k:?}: {}", debug(&ctx, v));
    }
    out.push('}');
    out
}

/// Rhai's rendering of a list: `[1, "x"]`.
fn array_text(ctx: NativeCallContext, items: &mut Array) -> String {
    if fits(|budget| items_too_large(items, budget)).is_err() {
        return too_large_text();
    }
    let mut out = String::from("[");
    for (i, v) in items.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&debug(&ctx, v));
    }
    out.push(']');
    out
}

pub(super) fn register(engine: &mut Engine) {
    for name in ["print", "to_string", "debug", "to_debug"] {
        engine.register_fn(name, map_text);
        engine.register_fn(name, array_text);
    }
    engine.register_fn(
        "to_json",
        |map: &mut Map| -> Result<String, Box<EvalAltResult>> {
            fits(|budget| map_too_large(map, budget))?;
            Ok(rhai::format_map_as_json(map))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::super::tests::{at, request, FULL};
    use super::super::{RequestScope, ScriptEngine};

    const V1: &str = r#"{"imp_uid":"imp_1","merchant_uid":"order-1","amount":1000}"#;

    /// What fits is rendered exactly as Rhai's own functions render it.
    #[test]
    fn small_values_read_as_rhai_renders_them() {
        let ours = ScriptEngine::new();
        let plain = rhai::Engine::new();
        let value = r#"#{a: 1, b: "x\u0001y", c: [1, 2.5, (), true, #{d: "한"}], e: #{}}"#;
        for render in [
            "`${v}`",
            "v.to_string()",
            "v.to_debug()",
            "\"x\" + v",
            "v.c.to_string()",
            "`${v.c}`",
            "v.c.to_debug()",
            "v.to_json()",
        ] {
            let src = format!("let v = {value}; {render}");
            assert_eq!(
                ours.engine.eval::<String>(&src).unwrap(),
                plain.eval::<String>(&src).unwrap(),
                "{render}"
            );
        }
    }

    /// A map holding one 64 KiB string under a thousand keys (as a script fills one by index):
    /// rendered by Rhai's own functions it took 15 s and a gigabyte (release build) before its
    /// size was checked, and the time limit, checked only after, named itself. Every way of
    /// making it text that reaches these is refused at once as too large. (The map is made
    /// here, not by the script, so that making it spends none of the script's 50 ms.)
    #[test]
    fn a_map_too_large_to_show_is_refused_before_it_is_rendered() {
        let engine = ScriptEngine::new();
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let s: rhai::ImmutableString = "\x01".repeat(64 * 1024).into();
        let map: rhai::Map = (0..1000)
            .map(|i| (format!("k{i}").into(), rhai::Dynamic::from(s.clone())))
            .collect();
        let _ = scope.set_fetched("big", rhai::Dynamic::from_map(map));
        // (`${m}` and `"x" + m` of a map reach Rhai's own rendering, not these: see the
        // module's note.)
        for render in [
            "m.to_string()",
            "m.to_debug()",
            "m.to_json()",
            "print(m)",
            "[m, m].to_string()",
            "`${[m]}`",
        ] {
            let src = format!("let m = fetched[\"big\"]; let t = {render}; true");
            let ast = engine.compile_script(&src).unwrap();
            let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
            assert!(
                err.message.contains("too large"),
                "{render}: {}",
                err.message
            );
        }
        // Thrown, it is an error whose text is read only so far.
        let ast = engine
            .compile_script("let m = fetched[\"big\"]; throw m;")
            .unwrap();
        let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
        assert!(
            err.message.starts_with("runtime error: #{\"k0\": \"\\u{1}"),
            "{}",
            &err.message[..100]
        );
        // Read up to 8 KiB (where it is shown, cut to 2,000 characters), not 400 MB.
        assert!(err.message.len() < 9 * 1024, "{}", err.message.len());
    }
}
