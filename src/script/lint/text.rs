//! Strings whose values are known at load compared with literals that can never compare as
//! meant: `api == "v2"` and `seoul_weekday(now) == "Sat"` are always false, and
//! `seoul_time(now) >= "9:00"` is false at 10:30 ("10:30" < "9:00" as text).

use std::collections::HashSet;

use rhai::{ASTNode, Expr, Position, Stmt, AST};

use super::{declared_names, declared_once, listed_strings, COMPARISONS};
use crate::payload::Api;

/// The values `api` takes.
const APIS: [&str; 3] = [
    Api::V1.as_str(),
    Api::V2_2024_01_01.as_str(),
    Api::V2_2024_04_25.as_str(),
];
/// What `seoul_weekday` returns.
const WEEKDAYS: [&str; 7] = super::super::helpers::WEEKDAYS;

/// What `seoul_date` gives: `2026-12-01`.
const DATE: Shape = Shape {
    pattern: "YYYY-MM-DD",
    separator: '-',
    widths: &[4, 2, 2],
    example: "2026-12-01",
    what: "date",
};
/// What `seoul_time` gives: `09:05`.
const TIME: Shape = Shape {
    pattern: "HH:MM",
    separator: ':',
    widths: &[2, 2],
    example: "09:00",
    what: "time",
};

/// What a string compared with literals can be, where that is known at load.
enum Text {
    /// One of a closed set: `api`, `seoul_weekday(…)`.
    OneOf(&'static [&'static str]),
    /// Numbers of fixed width: `seoul_date(…)`, `seoul_time(…)`. Text compares character by
    /// character, so only a literal of the same shape compares as the date or time would:
    /// `seoul_time(now) >= "9:00"` is false at 10:30, as "10:30" < "9:00".
    Shaped(Shape),
}

/// Numbers of fixed widths between separators.
struct Shape {
    pattern: &'static str,
    separator: char,
    widths: &'static [usize],
    example: &'static str,
    what: &'static str,
}

impl Shape {
    /// Whether `s` compares as the date or time would: it has the whole shape, or, for an
    /// order (`<`, `>=` …), its first parts: `seoul_date(now) >= "2026-12"` is December on.
    fn fits(&self, s: &str, ordered: bool) -> bool {
        let parts: Vec<&str> = s.split(self.separator).collect();
        let count =
            parts.len() == self.widths.len() || (ordered && parts.len() < self.widths.len());
        count
            && parts
                .iter()
                .zip(self.widths)
                .all(|(p, w)| p.len() == *w && p.bytes().all(|b| b.is_ascii_digit()))
    }

    /// `s` written in the shape, when only leading zeros are missing: "9:00" → "09:00",
    /// "2026-1-5" → "2026-01-05" (and "2026/1/5").
    fn mend(&self, s: &str, ordered: bool) -> Option<String> {
        let numbers: Vec<&str> = s
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .collect();
        let count = numbers.len() == self.widths.len()
            || (ordered && !numbers.is_empty() && numbers.len() < self.widths.len());
        if !count {
            return None;
        }
        let mended: Option<Vec<String>> = numbers
            .iter()
            .zip(self.widths)
            .map(|(n, &w)| match n.len() {
                l if l == w => Some((*n).to_owned()),
                // Only a missing leading zero: a year is not padded.
                1 if w == 2 => Some(format!("0{n}")),
                _ => None,
            })
            .collect();
        let mended = mended?.join(&self.separator.to_string());
        self.fits(&mended, ordered).then_some(mended)
    }
}

/// Each comparison of a string whose values are known at load with a literal that can
/// never compare as meant: `api` or `seoul_weekday(…)` with a value it never has (`api ==
/// "v2"`, `seoul_weekday(now) == "Sat"`: always false; a `switch` case too), `seoul_time(…)`/`seoul_date(…)` with a
/// literal of another shape (`seoul_time(now) >= "9:00"`).
pub(in crate::script) fn impossible_text_comparison(ast: &AST) -> Vec<(String, Position)> {
    let declared = declared_names(ast);
    let own: HashSet<&str> = ast.iter_functions().map(|f| f.name).collect();
    let copies = copies(ast, declared.contains("api"));
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => call,
            Some(ASTNode::Stmt(Stmt::Switch(switch, _))) => {
                let subject = &switch.0;
                let called = match subject {
                    Expr::Variable(v, ..) => copies.get(v.1.as_str()).copied(),
                    _ => helper(subject),
                };
                let (what, values) = match (subject, called) {
                    (Expr::Variable(v, ..), _) if v.1 == "api" && !declared.contains("api") => {
                        ("api", &APIS[..])
                    }
                    (_, Some("api")) => ("api", &APIS[..]),
                    (_, Some(name)) if own.contains(name) => return true,
                    (_, Some("seoul_weekday")) => ("seoul_weekday(…)", &WEEKDAYS[..]),
                    _ => return true,
                };
                let named = match subject {
                    Expr::Variable(v, ..) if called.is_some() => format!("{} (from {what})", v.1),
                    _ => what.to_owned(),
                };
                found.extend(impossible_case(&named, what, values, &switch.1));
                return true;
            }
            _ => return true,
        };
        // The subject and the strings it is compared with: `x == "a"`, `x < "a"`, `x in ["a",
        // "b"]` (Rhai's `contains` on the list), `one_of(x, ["a", "b"])`.
        let (subject, candidates, ordered) = match (call.name.as_str(), &call.args[..]) {
            (op, [e, Expr::StringConstant(s, at)] | [Expr::StringConstant(s, at), e])
                if COMPARISONS.contains(&op) =>
            {
                (e, vec![(s.to_string(), *at)], !matches!(op, "==" | "!="))
            }
            ("contains", [list, e]) | ("one_of", [e, list]) => (e, listed_strings(list), false),
            _ => return true,
        };
        let called = match subject {
            Expr::Variable(v, ..) => copies.get(v.1.as_str()).copied(),
            _ => helper(subject),
        };
        let (what, text) = match (subject, called) {
            (Expr::Variable(v, ..), _) if v.1 == "api" && !declared.contains("api") => {
                ("api", Text::OneOf(&APIS))
            }
            (_, Some("api")) => ("api", Text::OneOf(&APIS)),
            (_, Some(name)) if own.contains(name) => return true,
            (_, Some("seoul_weekday")) => ("seoul_weekday(…)", Text::OneOf(&WEEKDAYS)),
            (_, Some("seoul_time")) => ("seoul_time(…)", Text::Shaped(TIME)),
            (_, Some("seoul_date")) => ("seoul_date(…)", Text::Shaped(DATE)),
            _ => return true,
        };
        // A copy is named as written, with where its value came from.
        let what = match subject {
            Expr::Variable(v, ..) if called.is_some() => format!("{} (from {what})", v.1),
            _ => what.to_owned(),
        };
        let message = match text {
            // The order of such names means nothing; equality is what can be told.
            Text::OneOf(_) if ordered => return true,
            Text::OneOf(values) => candidates
                .into_iter()
                .find(|(s, _)| !values.contains(&s.as_str()))
                .map(|(s, at)| {
                    let listed: Vec<String> = values.iter().map(|a| format!("\"{a}\"")).collect();
                    (
                        format!("{what} is never \"{s}\": it is one of {}", listed.join(", ")),
                        at,
                    )
                }),
            Text::Shaped(shape) => candidates
                .into_iter()
                .find(|(s, _)| !shape.fits(s, ordered))
                .map(|(s, at)| {
                    let write = shape.mend(&s, ordered).map_or_else(
                        || format!("it as \"{}\", such as \"{}\"", shape.pattern, shape.example),
                        |mended| format!("\"{mended}\""),
                    );
                    (
                        format!(
                            "{what} gives \"{}\" text, compared character by character, so \"{s}\" does not compare as a {}; write {write}",
                            shape.pattern, shape.what
                        ),
                        at,
                    )
                }),
        };
        found.extend(message);
        true
    });
    found
}

/// The first case of a `switch` on `api` or `seoul_weekday(…)` (`source`; `what` is the
/// subject as written, a copy named with its source) that is none of its `values`, at the value the case gives: Rhai keeps a case's value only as its
/// hash, so `values` are hashed the same way (by compiling a `switch` on them) and compared.
fn impossible_case(
    what: &str,
    source: &str,
    values: &[&str],
    cases: &rhai::SwitchCasesCollection,
) -> Option<(String, Position)> {
    let arms: Vec<String> = values.iter().map(|a| format!("\"{a}\" => 0")).collect();
    let src = format!("switch x {{ {} }}", arms.join(", "));
    let mut known = HashSet::new();
    if let Ok(ast) = rhai::Engine::new_raw().compile(src) {
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Stmt(Stmt::Switch(switch, _))) = path.last() {
                known.extend(switch.1.cases.keys().copied());
            }
            true
        });
    }
    // Unsure (the probe found no case): do not report.
    if known.len() != values.len() {
        return None;
    }
    let at = cases
        .cases
        .iter()
        .filter(|(hash, _)| !known.contains(hash))
        .flat_map(|(_, list)| list.blocks.iter())
        .filter_map(|&i| cases.expressions.get(i))
        .map(|arm| arm.rhs.position())
        .filter(|at| !at.is_none())
        .min_by_key(|at| (at.line(), at.position()))?;
    let listed: Vec<String> = values.iter().map(|a| format!("\"{a}\"")).collect();
    Some((
        format!(
            "this case of the switch on {what} is never taken: its value (before =>) is none that {source} gives, {}; write one of those",
            listed.join(", ")
        ),
        at,
    ))
}

/// Variables that hold what a text helper gave (`let t = seoul_time(now);`, the usual start of
/// a script), by name, with the helper (see [`declared_once`]); and copies of `api` (`let a =
/// api;`, `const a = api;`), as `"api"`, unless the script declares an `api` of its own.
fn copies(ast: &AST, own_api: bool) -> std::collections::HashMap<String, &'static str> {
    const HELPERS: [&str; 3] = ["seoul_time", "seoul_date", "seoul_weekday"];
    declared_once(ast, |value| match value {
        Expr::Variable(v, ..) if v.1 == "api" && !own_api => Some("api"),
        _ => helper(value).and_then(|h| HELPERS.into_iter().find(|k| *k == h)),
    })
}

/// The helper `e` calls on one value: `seoul_time` in `seoul_time(now)` or `now.seoul_time()`.
fn helper(e: &Expr) -> Option<&str> {
    match e {
        Expr::FnCall(call, _) if call.args.len() == 1 => Some(call.name.as_str()),
        Expr::Dot(chain, ..) => match (&chain.lhs, &chain.rhs) {
            (Expr::Variable(..), Expr::MethodCall(call, _)) if call.args.is_empty() => {
                Some(call.name.as_str())
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::script::ScriptEngine;

    /// The usual shape of a script: the time copied into a variable first. A copy declared
    /// once and never assigned again is checked like the call; any other is left alone.
    #[test]
    fn a_copy_of_the_time_is_checked_like_the_call() {
        let engine = ScriptEngine::new();
        let e = engine
            .compile_script("let t = seoul_time(now);\nif t < \"9:30\" { return \"x\"; }\ntrue")
            .unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.line, e.column),
            (
                r#"t (from seoul_time(…)) gives "HH:MM" text, compared character by character, so "9:30" does not compare as a time; write "09:30""#,
                2,
                8
            )
        );
        let e = engine
            .compile_script("let day = now.seoul_weekday();\nday != \"Sat\"")
            .unwrap_err();
        assert!(
            e.message
                .starts_with("day (from seoul_weekday(…)) is never \"Sat\""),
            "{e:?}"
        );
        crate::script::tests::scripts_load(
            &engine,
            &[
                "let t = seoul_time(now);\nt >= \"09:30\"",
                // Assigned again, declared twice, or a parameter: not known here.
                "let t = seoul_time(now);\nt = \"x\";\nt < \"9:30\"",
                "let t = seoul_time(now);\nlet t = \"9\";\nt < \"9:30\"",
                "fn late(t) { t < \"9:30\" }\nlet t = seoul_time(now);\nlate(t)",
            ],
        );
    }

    /// A copy of `api` declared once and never assigned again is checked like `api`; one
    /// assigned again, or of a script's own `api`, is left alone.
    #[test]
    fn a_copy_of_api_is_checked_like_api() {
        let engine = ScriptEngine::new();
        let never = |what: &str, s: &str| {
            format!(r#"{what} is never "{s}": it is one of "v1", "v2-2024-01-01", "v2-2024-04-25""#)
        };
        for (src, message, line, column) in [
            (
                "let a = api;\nif a == \"v2\" { return \"x\"; }\ntrue",
                never("a (from api)", "v2"),
                2,
                9,
            ),
            (
                "const a = api;\n!(a in [\"v2\"])",
                never("a (from api)", "v2"),
                2,
                9,
            ),
            (
                "let version = api;\none_of(version, [\"v1\", \"V1\"])",
                never("version (from api)", "V1"),
                2,
                24,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, message.as_str(), line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                "let a = api;\na == \"v1\" || a != \"v2-2024-04-25\"",
                "const a = api;\na in [\"v2-2024-01-01\", \"v2-2024-04-25\"]",
                // Assigned again, declared twice, a parameter, or a script's own api.
                "let a = api;\na = \"v2\";\na == \"v2\"",
                "let a = api;\nlet a = \"v2\";\na == \"v2\"",
                "fn v(a) { a == \"v2\" }\nlet a = api;\nv(a)",
                "let api = \"v2\";\nlet a = api;\na == \"v2\"",
            ],
        );
    }

    /// A `switch` on `api` or `seoul_weekday(…)` (or a copy) with a case it never matches:
    /// Rhai keeps only the cases' hashes, so the error is at the value the case gives.
    #[test]
    fn a_switch_case_api_or_the_weekday_never_has_is_a_load_error() {
        let engine = ScriptEngine::new();
        let never = |what: &str| {
            format!(
                r#"this case of the switch on {what} is never taken: its value (before =>) is none that api gives, "v1", "v2-2024-01-01", "v2-2024-04-25"; write one of those"#
            )
        };
        for (src, what, line, column) in [
            (
                "switch api {\n  \"v1\" => true,\n  \"v2\" => \"V2 결제는 아직 받지 않습니다\",\n  _ => true\n}",
                "api",
                3,
                11,
            ),
            (
                "let a = api;\nlet ok = switch a { \"v2-2024-04-25\" => true, \"V1\" | \"v1\" => false, _ => true };\nok",
                "a (from api)",
                2,
                61,
            ),
        ] {
            crate::script::tests::assert_refused(&engine, src, never(what).as_str(), line, column);
        }
        crate::script::tests::scripts_load(
            &engine,
            &[
                "switch api {\n  \"v1\" => true,\n  \"v2-2024-01-01\" | \"v2-2024-04-25\" => false,\n  _ => true\n}",
                "let a = api;\nswitch a { \"v1\" if amount > 0 => true, _ => false }",
                // Not api: left alone.
                "let api = \"v2\";\nswitch api { \"v2\" => true, _ => false }",
                "let a = api;\na = \"v2\";\nswitch a { \"v2\" => true, _ => false }",
            ],
        );
        crate::script::tests::expressions_load(
            &engine,
            &[
                r#"switch api { "v1" => true, "v2-2024-04-25" => amount > 0, _ => false }"#,
                r#"switch seoul_weekday(now) { "sat" | "sun" => false, _ => true }"#,
            ],
        );
        // seoul_weekday(…) the same way, and a copy of it.
        for (src, what) in [
            (r#"switch seoul_weekday(now) { "Sat" => false, _ => true }"#, "seoul_weekday(…)"),
            (
                "let day = now.seoul_weekday();\nswitch day { \"sat\" => false, \"Sun\" => false, _ => true }",
                "day (from seoul_weekday(…))",
            ),
        ] {
            let e = engine.compile_script(src).unwrap_err();
            assert_eq!(
                e.message,
                format!(r#"this case of the switch on {what} is never taken: its value (before =>) is none that seoul_weekday(…) gives, "mon", "tue", "wed", "thu", "fri", "sat", "sun"; write one of those"#),
                "{src}"
            );
        }
    }

    /// `seoul_time(…)` and `seoul_date(…)` give two-digit hours, months and days; text of
    /// another shape compares wrongly (`"10:30" < "9:00"`) or never equals them.
    #[test]
    fn a_time_of_another_shape_is_a_load_error_at_the_literal() {
        let engine = ScriptEngine::new();
        let time = |s: &str, write: &str| {
            format!(
                r#"seoul_time(…) gives "HH:MM" text, compared character by character, so "{s}" does not compare as a time; write {write}"#
            )
        };
        let date = |s: &str, write: &str| {
            format!(
                r#"seoul_date(…) gives "YYYY-MM-DD" text, compared character by character, so "{s}" does not compare as a date; write {write}"#
            )
        };
        for (src, message, column) in [
            (
                r#"seoul_time(now) >= "9:00""#,
                time("9:00", r#""09:00""#),
                20,
            ),
            (
                r#""9:30" <= seoul_time(now)"#,
                time("9:30", r#""09:30""#),
                1,
            ),
            (r#"now.seoul_time() < "9""#, time("9", r#""09""#), 20),
            (
                r#"seoul_time(now) == "10""#,
                time("10", r#"it as "HH:MM", such as "09:00""#),
                20,
            ),
            (
                r#"seoul_time(now) >= "10:00:00""#,
                time("10:00:00", r#"it as "HH:MM", such as "09:00""#),
                20,
            ),
            (
                r#"seoul_time(now) in ["09:00", "9:30"]"#,
                time("9:30", r#""09:30""#),
                20,
            ),
            (
                r#"seoul_date(now) == "2026-1-5""#,
                date("2026-1-5", r#""2026-01-05""#),
                20,
            ),
            (
                r#"seoul_date(now) < "2026/12/01""#,
                date("2026/12/01", r#""2026-12-01""#),
                19,
            ),
            (
                r#"one_of(seoul_date(now), ["26-12-01"])"#,
                date("26-12-01", r#"it as "YYYY-MM-DD", such as "2026-12-01""#),
                25,
            ),
        ] {
            let e = engine.compile_expression(src, &[]).unwrap_err();
            assert_eq!(
                (e.message.as_str(), e.column),
                (message.as_str(), column),
                "{src}"
            );
        }
        crate::script::tests::expressions_load(
            &engine,
            &[
                r#"seoul_time(now) >= "09:00" && seoul_time(now) < "22:30""#,
                r#"seoul_date(now) >= "2026-12-01" && seoul_date(now) != "2026-12-25""#,
                // The first parts order as the date or time would: December on, before 10 o'clock.
                r#"seoul_date(now) >= "2026-12" && seoul_time(now) < "10""#,
                r#"one_of(seoul_time(now), ["09:00", "12:30"])"#,
                r#"seoul_date(now).starts_with("2026-12")"#,
            ],
        );
        // A script's own `seoul_time` is its own; its own `api` leaves `seoul_weekday` checked.
        engine
            .compile_script("fn seoul_time(t) { \"9:00\" }\nseoul_time(now) >= \"9:00\"")
            .expect("a script's own function");
        assert!(engine
            .compile_script("let api = 1;\nseoul_weekday(now) == \"Sat\"")
            .is_err());
    }
}
