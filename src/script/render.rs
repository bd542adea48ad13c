//! Maps and lists made into text (`${m}`, `m.to_string()`, `print(m)`, `"x" + m`,
//! `m.to_json()`) within the string size limit.
//!
//! Rhai limits a map's entries and each string's length, but a map filled by index can hold the
//! same 64 KiB string under thousands of keys, and Rhai's own renderings build the whole text in
//! one native call, which the time budget cannot stop, before its size is checked: 1,000 such
//! entries took 15 s and a gigabyte. These replace them (registered functions shadow the
//! standard library's) and render as Rhai would what fits. What could not fit stops the
//! evaluation ([`Limit::TooLarge`], an error decision) and is given as a short placeholder in
//! the meantime, never as an error: Rhai answers an error of a rendering function inside `${m}`
//! or `"x" + m` by rendering the value with its own `Display`, whole, which is the cost avoided.
//! For the same reason the value is taken by value: Rhai checks the size of a `&mut` argument
//! after the call and, finding it too large, falls back the same way; taken, the argument left
//! behind is `()` (a method call is given a copy, so the script's variable is untouched).

use std::fmt::Write;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext};

use super::budget::{self, Limit};
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
/// its length, a blob its bytes in two hex digits each (with a space every eight and its
/// brackets), every other value and entry at least one byte. Stops as soon as it passes, so
/// it reads at most `budget` values, however large the value.
fn too_large(value: &Dynamic, budget: &mut usize) -> bool {
    if let Ok(s) = value.as_immutable_string_ref() {
        return spend(budget, s.len().max(1));
    }
    if let Ok(blob) = value.as_blob_ref() {
        return spend(budget, blob.len() * 2 + blob.len() / 8 + 2);
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

/// Whether a value's text could not fit the string limit (`too_large` tells, given the
/// limit); if so, the evaluation is stopped.
fn refused(ctx: &NativeCallContext, too_large: impl FnOnce(&mut usize) -> bool) -> bool {
    let mut budget = MAX_STRING_SIZE;
    let refused = too_large(&mut budget);
    if refused {
        budget::stop(Limit::TooLarge(ctx.call_position()));
    }
    refused
}

/// What a refused value reads as until the evaluation stops at its next operation.
const PLACEHOLDER: &str = "(a map or list too large to show)";

/// The error of an evaluation stopped by a refused rendering.
pub(super) fn too_large_message() -> String {
    format!(
        "a map or list too large to make into text: its text would pass the {} KiB string limit; make the fields needed into text, not the whole value",
        MAX_STRING_SIZE / 1024
    )
}

/// `value` as `to_debug` makes it (a map's or list's own items through this module again).
fn debug(ctx: &NativeCallContext, value: &mut Dynamic) -> String {
    match ctx.call_native_fn_raw("to_debug", true, &mut [value]) {
        Ok(text) if text.is_string() => text.into_string().unwrap_or_default(),
        _ => format!("{value:?}"),
    }
}

/// Rhai's rendering of a map: `#{"a": 1, "b": "x"}`.
fn map_text(ctx: NativeCallContext, mut map: Map) -> String {
    if refused(&ctx, |budget| map_too_large(&map, budget)) {
        return PLACEHOLDER.into();
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
fn array_text(ctx: NativeCallContext, mut items: Array) -> String {
    if refused(&ctx, |budget| items_too_large(&items, budget)) {
        return PLACEHOLDER.into();
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
    engine.register_fn("to_json", |ctx: NativeCallContext, map: Map| -> String {
        if refused(&ctx, |budget| map_too_large(&map, budget)) {
            return PLACEHOLDER.into();
        }
        rhai::format_map_as_json(&map)
    });
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
    /// making it text is refused at once as too large, interpolation and `+` too (where an
    /// error of these functions, or the map's own size checked after a call that borrows it,
    /// made Rhai render it its own way: 7.4 s and 1.1 GB). (The map is made here, not by the
    /// script, so that making it spends none of the script's 50 ms.)
    #[test]
    fn a_map_too_large_to_show_is_refused_before_it_is_rendered() {
        let engine = ScriptEngine::new();
        let mut scope = RequestScope::new(&request(V1), at("2026-12-01T12:30:00+09:00"), true);
        let s: rhai::ImmutableString = "\x01".repeat(64 * 1024).into();
        let map: rhai::Map = (0..1000)
            .map(|i| (format!("k{i}").into(), rhai::Dynamic::from(s.clone())))
            .collect();
        let _ = scope.set_fetched("big", rhai::Dynamic::from_map(map));
        for render in [
            "`${m}`",
            "\"x\" + m",
            "m + \"x\"",
            "`a${m}b` + 1",
            "{ let t = \"x\"; t += m; t }",
            "fetched.big.to_string()",
            "`${fetched.big}`",
            "m.to_string()",
            "m.to_debug()",
            "m.to_json()",
            "print(m)",
            "[m, m].to_string()",
            "`${[m]}`",
        ] {
            // Neither using the placeholder nor catching the stop gets past it.
            for src in [
                format!("let m = fetched[\"big\"]; let t = {render}; true"),
                format!("let m = fetched[\"big\"]; let t = {render}; t"),
                format!("let m = fetched[\"big\"]; try {{ let t = {render}; }} catch {{}} true"),
            ] {
                let ast = engine.compile_script(&src).unwrap();
                let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
                // A list made of the map is refused by Rhai's own check as it is made.
                let expected = if render.contains("[m") {
                    "length of string too large"
                } else {
                    "a map or list too large to make into text"
                };
                // The place is the rendering's, not the operation's after it (`true`).
                let (line, column) = err.position.unwrap_or_default();
                assert!(line == 1 && column > 24, "{src}: {:?}", err.position);
                assert!(err.message.starts_with(expected), "{src}: {}", err.message);
            }
        }
        // Blobs, which only a script makes, show each byte as two digits (an audit's).
        let blobs = "let m = #{}; let b = blob(10000); for i in 0..10 { m[`k${i}`] = b; }";
        for render in ["m.to_string()", "`${m}`", "m.to_debug()", "\"x\" + m"] {
            let ast = engine.compile_script(&format!("{blobs} {render}")).unwrap();
            let err = engine.eval_script(&scope, &ast, FULL).unwrap_err();
            assert!(
                err.message
                    .starts_with("a map or list too large to make into text"),
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
