//! Audited defects of load error reports: positions inside every scalar style, more than one
//! document, duplicate keys, ruleset file names, every shape error of a file at once, and
//! messages in the rule file's own terms.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Positions inside scalars

#[test]
fn expression_errors_map_back_through_every_scalar_style() {
    let dir = default_file(
        r#"rules:
  - name: folded
    require: >
      amount > 0 &&
      order_idd == 1
    reason: x
  - name: plain
    require: amount > 0 &&
      order_idd == 1
    reason: x
  - name: escaped
    require: "order_id == \"x\" && order_idd == 1"
    reason: x
  - name: single
    require: 'order_id.contains(''x'') && amount > "5" &&
      order_idd == 1'
    reason: x
  - name: joined
    require: "order_id == \"x\" && \
      order_idd == 1"
    reason: x
  - name: tagged
    require: !!str amount > 0 && order_idd == 1
    reason: x
  - name: more-indented
    require: >-
      amount > 0
        && order_id == "x"
      && order_idd == 1
    reason: x
  - name: literal
    require: |
      amount > 0

      && order_idd == 1
    reason: x
  - name: unicode
    require: "order_id == \"\u00e9\" && order_idd == 1"
    reason: x
"#,
    );
    let undefined = |rule: &str| {
        format!(
            r#"rule "{rule}": require: invalid expression: undefined variable: order_idd; did you mean order_id?"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            // Line 5 is `      order_idd == 1`, folded into the line before it.
            dir.at(DEFAULT, 5, 7, &undefined("folded")),
            dir.at(DEFAULT, 9, 7, &undefined("plain")),
            // `\"` is two characters in the file, one in the expression.
            dir.at(DEFAULT, 12, 36, &undefined("escaped")),
            // Past the undefined variable, the checks find more (once they did not).
            // Past two `''`, each one character of the expression.
            dir.at(DEFAULT, 15, 52, r#"rule "single": require: invalid expression: "5" is a string, and a number compared with a string is never equal, smaller or larger: write the number without quotes"#),
            dir.at(DEFAULT, 16, 7, &undefined("single")),
            // A backslash at the end of a line joins it with the next.
            dir.at(DEFAULT, 20, 7, &undefined("joined")),
            dir.at(DEFAULT, 23, 34, &undefined("tagged")),
            // More-indented lines of a folded scalar keep their line breaks.
            dir.at(DEFAULT, 29, 10, &undefined("more-indented")),
            dir.at(DEFAULT, 35, 10, &undefined("literal")),
            // `\u00e9` is six characters in the file.
            dir.at(DEFAULT, 38, 41, &undefined("unicode")),
        ]
    );
}

/// Audit: an unknown key inside a mapping written as an alias was placed at the anchor's key
/// for every use of it; each use is reported at its alias (the anchor's own use, there).
#[test]
fn an_unknown_key_met_through_an_alias_is_placed_at_the_alias() {
    let dir = default_file(
        "rules:\n  - name: b\n    window: &w { form: \"2026-12-01T00:00:00+09:00\" }\n    reason: x\n  - name: c\n    window: *w\n    reason: y\n",
    );
    let message = |i: usize, rule: &str| {
        format!(
            r#"rules[{i}].window (rule "{rule}"): unknown field "form", expected "from" or "until"; did you mean "from"?"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 18, &message(0, "b")),
            dir.at(DEFAULT, 6, 13, &message(1, "c")),
        ]
    );
    // An unknown key named as the key holding it, and an error of a value inside it, alike.
    let dir = default_file(
        "rules:\n  - name: b\n    window: &w { window: x }\n    reason: x\n  - name: c\n    window: *w\n    reason: y\n  - name: d\n    window: &v { from: 5 }\n    reason: x\n  - name: e\n    window: *v\n    reason: y\n",
    );
    let unknown = |i: usize, rule: &str| {
        format!(
            r#"rules[{i}].window (rule "{rule}"): unknown field "window", expected "from" or "until""#
        )
    };
    let not_a_time = |rule: &str| {
        format!(
            r#"rule "{rule}": window.from: invalid timestamp "5", expected RFC 3339 like 2026-12-01T10:00:00+09:00"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 18, &unknown(0, "b")),
            dir.at(DEFAULT, 6, 13, &unknown(1, "c")),
            dir.at(DEFAULT, 9, 24, &not_a_time("d")),
            dir.at(DEFAULT, 12, 13, &not_a_time("e")),
        ]
    );
    // A placeholder or an expression used through an alias: at the alias too.
    let dir = default_file(
        "rules:\n  - name: a\n    require: &ex 'amout > 1'\n    reason: &rs \"r {oder_id}\"\n  - name: b\n    require: *ex\n    reason: *rs\n",
    );
    let places: Vec<String> = (dir.errors().iter())
        .map(|e| e.split(": ").next().unwrap_or_default().to_owned())
        .collect();
    let at = |line: usize, col: usize| {
        dir.at(DEFAULT, line, col, "")
            .trim_end_matches(": ")
            .to_owned()
    };
    assert_eq!(places, [at(3, 19), at(4, 20), at(6, 14), at(7, 13)]);
}

#[test]
fn an_incomplete_expression_is_reported_after_its_last_character() {
    let dir = default_file(
        r#"rules:
  - name: folded
    require: >
      amount > 0 &&
      amount <

    reason: x
  - name: kept
    require: |+
      amount >

    reason: x
"#,
    );
    let incomplete = |rule: &str| {
        format!(
            r#"rule "{rule}": require: invalid expression: script is incomplete: a value is missing after its last operator (&&, ||, ==, +), or a bracket or a quote is not closed"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 5, 15, &incomplete("folded")),
            dir.at(DEFAULT, 10, 15, &incomplete("kept")),
        ]
    );
}

#[test]
fn forward_path_braces_are_located_in_every_scalar_style() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: escaped
    forward: { upstream: shop, path: "/a\/b/{order_id}" }
  - name: quoted
    forward: { upstream: shop, path: '/it''s/{tx_id}' }
"#,
    );
    let message = |rule: &str| format!(r#"rule "{rule}": {FORWARD_PATH_IS_FIXED}"#);
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 6, 45, &message("escaped")),
            dir.at(DEFAULT, 8, 46, &message("quoted")),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. One document per file

/// The error for a second document, after `rules/default.yaml:LINE:COL: `.
const SECOND_DOCUMENT: &str = r#"a second YAML document: a file holds exactly one (a "---" line after the content starts another, and nothing may follow a "..." line)"#;

#[test]
fn a_second_document_is_an_error_where_it_starts() {
    let cases: &[(&str, String, (usize, usize))] = &[
        (
            "another document",
            format!("{ONE_RULE}---\nrules: []\n"),
            (5, 1),
        ),
        ("an empty one", format!("{ONE_RULE}---\n"), (5, 1)),
        (
            "one with a comment on its marker line",
            format!("{ONE_RULE}\n--- # more\nrules: []\n"),
            (6, 1),
        ),
        (
            "two explicit ones",
            format!("---\n{ONE_RULE}---\n{ONE_RULE}"),
            (6, 1),
        ),
        (
            "an empty first one",
            format!("--- # nothing yet\n---\n{ONE_RULE}"),
            (2, 1),
        ),
        (
            "content after the end marker",
            format!("{ONE_RULE}...\n# trailer\nfoo: 1\n"),
            (7, 1),
        ),
        (
            "a document after the end marker",
            format!("{ONE_RULE}...\n---\nrules: []\n"),
            (6, 1),
        ),
    ];
    for (what, yaml, (line, col)) in cases {
        let dir = default_file(yaml);
        assert_eq!(
            dir.errors(),
            [dir.at(DEFAULT, *line, *col, SECOND_DOCUMENT)],
            "{what}: {yaml:?}"
        );
    }
    // One document, with its markers or with comments after its end, loads.
    for yaml in [
        format!("---\n{ONE_RULE}"),
        format!("%YAML 1.1\n---\n{ONE_RULE}...\n"),
        format!("{ONE_RULE}...\n# the end\n\n"),
    ] {
        assert_eq!(default_file(&yaml).ok().rule_count(), 1, "{yaml:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Duplicate keys

#[test]
fn duplicate_keys_are_errors_at_the_repeated_key() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
    headers: { X-Key: a, X-Key: b }
  shop:
    url: http://other.test
rules:
  - name: a
    amount: { max: 1 }
    reason: x
    amount: { max: 2 }
  - name: b
    require: 'order_idd == 1'
    reason: x
rules: []
"#,
    );
    let repeated = |path: &str, key: &str, first: usize| {
        format!(
            r#"{path}duplicate key "{key}" (first at line {first}): a key may appear only once in a mapping"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                4,
                26,
                &repeated("upstreams.shop.headers: ", "X-Key", 4)
            ),
            dir.at(DEFAULT, 5, 3, &repeated("upstreams: ", "shop", 2)),
            dir.at(DEFAULT, 11, 5, &repeated("rules[0]: ", "amount", 9)),
            // The other errors of the file come with them.
            dir.at(
                DEFAULT,
                13,
                15,
                r#"rule "b": require: invalid expression: undefined variable: order_idd; did you mean order_id?"#
            ),
            dir.at(DEFAULT, 15, 1, &repeated("", "rules", 7)),
        ]
    );
    // A rule's "- " left out (a trial's): its name is a second one in the rule above.
    let dir = default_file(
        "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n\n    name: b\n    require: 'amount > 1'\n",
    );
    assert_eq!(
        dir.errors()[0],
        dir.at(
            DEFAULT,
            6,
            5,
            &format!(
                "{}; if a new rule starts here, put \"- \" on its first line (its name, or a when written above it), in line with the other rules' dashes",
                // Named as YAML reads it, by its last name.
                repeated("rules[0] (rule \"b\"): ", "name", 2)
            )
        )
    );
    // Inside a nested mapping, a fetch body, or a sequence item.
    let dir = default_file(
        r#"upstreams:
  shop: { url: http://shop.test }
rules:
  - name: reserve
    fetch:
      upstream: shop
      method: POST
      path: /reserve
      body: { order: "{order_id}", items: [{ id: 1, id: 2 }] }
    window: { from: "2026-12-01T10:00:00+09:00", from: "2026-12-02T10:00:00+09:00" }
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                9,
                53,
                &repeated(
                    r#"rules[0].fetch.body.items[0] (rule "reserve"): "#,
                    "id",
                    9
                )
            ),
            dir.at(
                DEFAULT,
                10,
                50,
                &repeated(r#"rules[0].window (rule "reserve"): "#, "from", 10)
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Ruleset file names

/// `상점.yaml` saved in EUC-KR: not UTF-8, so no ruleset name, and not passed over in silence.
#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_named_too() {
    use std::os::unix::ffi::OsStrExt;
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE);
    let name = std::ffi::OsStr::from_bytes(b"\xbb\xf3\xc1\xa1.yaml");
    std::fs::write(dir.path().join(name), ONE_RULE).unwrap();
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with(&format!(
            ".yaml:1:1: {BAD_RULESET_NAME}; this name is not even UTF-8 text"
        )),
        "{errors:?}"
    );
    // A rule test so named is run (by `test` and the reload gate): it counts in the version,
    // so that adding or editing it reloads.
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE).write("tests/a.yaml", "");
    let before = dir.version();
    std::fs::write(dir.path().join("tests").join(name), "ruleset: default\n").unwrap();
    assert_ne!(dir.version(), before);
}

#[test]
fn bad_ruleset_names_do_not_hide_other_errors() {
    let dir = RulesDir::new();
    dir.write("a b.yaml", ONE_RULE)
        .write("b.c.yaml", ONE_RULE)
        .write(
            DEFAULT,
            "rules:\n  - name: a\n    amount: { mx: 1 }\n    reason: x\n",
        );
    assert_eq!(
        dir.errors(),
        [
            dir.at("a b.yaml", 1, 1, BAD_RULESET_NAME),
            dir.at("b.c.yaml", 1, 1, BAD_RULESET_NAME),
            dir.at(
                DEFAULT,
                3,
                15,
                r#"rules[0].amount (rule "a"): unknown field "mx", expected "min" or "max"; did you mean "max"?"#
            ),
        ]
    );
}

#[test]
fn yaml_files_not_named_dot_yaml_are_warned_about() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, ONE_RULE)
        .write("shop.yml", ONE_RULE)
        .write("Outlet.YAML", ONE_RULE)
        .write("notes.Yml", "# drafts\n")
        .write("a b.yml", ONE_RULE)
        // Not warned about: hidden files, and files in subdirectories.
        .write(".draft.yml", ONE_RULE)
        .write("tests/more.yml", "cases: []\n")
        .write("scripts/x.yml", "");
    let first = dir.ok();
    let warning = |file: &str, rename: &str| {
        format!(
            r#"{}: not a ruleset and not read: only files ending in ".yaml" (lower case) are rulesets{rename}"#,
            dir.path().join(file).display()
        )
    };
    assert_eq!(
        first.warnings,
        [
            warning("Outlet.YAML", " (rename it to Outlet.yaml to load it)"),
            warning("a b.yml", ""),
            warning("notes.Yml", " (rename it to notes.yaml to load it)"),
            warning("shop.yml", " (rename it to shop.yaml to load it)"),
        ]
    );
    assert_eq!(first.rulesets.keys().collect::<Vec<_>>(), ["default"]);
    // Adding or removing one changes the version, so a reload shows (or clears) the warning.
    assert!(is_rule_source(Path::new("rules/shop.yml")));
    assert!(is_rule_source(Path::new("rules/shop.YAML")));
    assert!(!is_rule_source(Path::new("rules/notes.txt")));
    fs::remove_file(dir.path().join("shop.yml")).unwrap();
    let second = dir.ok();
    assert_ne!(second.version, first.version);
    assert_eq!(second.warnings.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// 5. Every shape error of a file

#[test]
fn every_shape_error_of_a_file_is_reported_in_one_load() {
    // The audit's file: one error in the settings, one in each rule.
    let dir = default_file(
        r#"settings:
  deadlin: 4s
rules:
  - name: a
    amount: { mx: 1 }
    reason: x
  - name: b
    foo: 1
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                2,
                3,
                r#"settings: unknown field "deadlin", expected one of "deadline", "on_error", "error_reason", "reject_status"; did you mean "deadline"?"#
            ),
            dir.at(
                DEFAULT,
                5,
                15,
                r#"rules[0].amount (rule "a"): unknown field "mx", expected "min" or "max"; did you mean "max"?"#
            ),
            dir.at(
                DEFAULT,
                8,
                5,
                r#"rules[1] (rule "b"): unknown field "foo", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#
            ),
        ]
    );
}

/// A key that is a list (`? [a, b]`) has no name to leave out on the next reading: it is
/// reported once, for its rule, and the next rule is still read.
#[test]
fn a_key_that_is_not_a_name_is_reported_once() {
    let dir = default_file(
        r#"rules:
  - name: a
    amount: { min: 100 }
    reason: x
    ? [a, b]
    : 1
  - name: b
    foo: 1
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                5,
                7,
                r#"rules[0] (rule "a"): invalid type: sequence, expected a key name"#
            ),
            dir.at(
                DEFAULT,
                8,
                5,
                r#"rules[1] (rule "b"): unknown field "foo", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#
            ),
        ]
    );
}

/// A duplicate key (which a plain YAML value refuses) does not cost the other errors of the
/// file their rule names, nor its own.
#[test]
fn rule_names_survive_a_duplicate_key() {
    let dir = default_file(
        r#"settings:
  deadline: 2s
  deadline: 3s
rules:
  - name: b
    amount: { mx: 1 }
    reason: x
  - name: d
    require: 'true'
    reason: x
    reason: y
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 3, r#"settings: duplicate key "deadline" (first at line 2): a key may appear only once in a mapping"#),
            dir.at(DEFAULT, 6, 15, r#"rules[0].amount (rule "b"): unknown field "mx", expected "min" or "max"; did you mean "max"?"#),
            dir.at(DEFAULT, 11, 5, r#"rules[1] (rule "d"): duplicate key "reason" (first at line 10): a key may appear only once in a mapping"#),
        ]
    );
}

#[test]
fn shape_errors_of_every_part_and_key_come_with_the_other_errors() {
    let rule_keys = r#"expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#;
    let dir = default_file(
        r#"setings: {}
settings:
  deadline: 4 sec
  on_error: maybe
  reject_status: 200
upstreams:
  shop:
    url: http://shop.test
    timout: 1s
  stock:
    url: http://stock.test
    health: { path: /health, interval: soon }
rules:
  - name: a
    amout: { min: 1 }
    mode: shdow
    reason: x
  - reason: no name
    amount: { max: 1 }
    bogus: true
  - name: c
    require: 'order_idd == 1'
    reason: x
  - name: d
    healthy: shop
    reason: x
  - name: e
    fetch: { upstream: nowhere, path: /x }
    reason: x
  - just text
  - name: g
    amount: { min: [1], mx: 2 }
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                1,
                1,
                r#"unknown field "setings", expected one of "settings", "upstreams", "rules"; did you mean "settings"?"#
            ),
            dir.at(
                DEFAULT,
                4,
                13,
                r#"settings.on_error: invalid value "maybe", expected "reject" or "approve""#
            ),
            dir.at(
                DEFAULT,
                9,
                5,
                r#"upstreams.shop: unknown field "timout", expected one of "url", "timeout", "headers", "health", "max_connections"; did you mean "timeout"?"#
            ),
            dir.at(
                DEFAULT,
                12,
                40,
                r#"invalid duration "soon", expected a number and a unit like 500ms, 1.5s, 4s or 1m"#
            ),
            dir.at(
                DEFAULT,
                15,
                5,
                &format!(r#"rules[0] (rule "a"): unknown field "amout", {rule_keys}; did you mean "amount"?"#)
            ),
            dir.at(
                DEFAULT,
                16,
                11,
                r#"rules[0].mode (rule "a"): invalid value "shdow", expected one of "enforce", "shadow", "off"; did you mean "shadow"?"#
            ),
            // A missing key is reported at the rule, after its other errors were left out.
            dir.at(DEFAULT, 18, 5, r#"rules[1]: missing field "name""#),
            dir.at(
                DEFAULT,
                20,
                5,
                &format!(r#"rules[1]: unknown field "bogus", {rule_keys}"#)
            ),
            dir.at(
                DEFAULT,
                22,
                15,
                r#"rule "c": require: invalid expression: undefined variable: order_idd; did you mean order_id?"#
            ),
            // `shop` itself is broken (reported above): no second error for it. `nowhere` is
            // unknown; the broken upstreams are still named as the ones there are.
            dir.at(
                DEFAULT,
                28,
                24,
                r#"rule "e": unknown upstream "nowhere", expected one of shop, stock"#
            ),
            dir.at(
                DEFAULT,
                30,
                5,
                r#"rules[5]: invalid type: string "just text", expected a rule: a mapping with name, a check and reason"#
            ),
            // Within one key, the first error only.
            dir.at(
                DEFAULT,
                32,
                20,
                r#"rules[6].amount.min (rule "g"): invalid type: sequence, expected a number"#
            ),
        ]
    );
}

#[test]
fn a_syntax_error_is_the_only_error_of_its_file() {
    let dir = default_file(
        "settings:\n  deadlin: 4s\nrules:\n  - name: a\n    amount: { max: 1000\n    reason: x\n",
    );
    dir.write(
        "other.yaml",
        "rules:\n  - name: b\n    amount: { mx: 1 }\n    reason: x\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                6,
                11,
                r#"did not find expected ',' or '}' (while parsing a flow mapping that starts at line 5 column 13): a flow mapping { ... } needs a "," between entries and a closing "}""#
            ),
            dir.at(
                "other.yaml",
                3,
                15,
                r#"rules[0].amount (rule "b"): unknown field "mx", expected "min" or "max"; did you mean "max"?"#
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Messages

#[test]
fn messages_say_what_the_yaml_should_hold() {
    let cases: &[(&str, &str, (usize, usize), &str)] = &[
        // A choice written as a list or a mapping: the choices, not serde_yaml's YAML tags.
        (
            "on_error as a list",
            "settings:\n  on_error: [reject]\nrules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n",
            (2, 13),
            r#"settings.on_error: invalid type: sequence, expected "reject" or "approve""#,
        ),
        (
            "mode as a mapping",
            "rules:\n  - name: a\n    mode: { shadow: true }\n    amount: { max: 1 }\n    reason: x\n",
            (3, 11),
            r#"rules[0].mode (rule "a"): invalid type: map, expected one of "enforce", "shadow", "off""#,
        ),
        (
            "action as a list",
            "rules:\n  - name: a\n    when: 'amount > 1'\n    action: [approve]\n",
            (4, 13),
            r#"rules[0].action (rule "a"): invalid type: sequence, expected "approve""#,
        ),
        (
            "a method as a list",
            "upstreams:\n  u: { url: \"http://u.test\" }\nrules:\n  - name: a\n    fetch: { upstream: u, path: /x, method: [GET] }\n    reason: x\n",
            (5, 45),
            r#"rules[0].fetch.method (rule "a"): invalid type: sequence, expected one of "GET", "get", "POST", "post", "PUT", "put""#,
        ),
        (
            "a key of settings at the start of its line",
            "settings:\ndeadline: 3s\nrules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n",
            (2, 1),
            r#"unknown field "deadline", expected one of "settings", "upstreams", "rules"; "deadline" belongs under settings: indent it two spaces more than settings:"#,
        ),
        (
            "a key of a rule at the start of its line",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\nwhen: 'amount > 5'\n",
            (5, 1),
            r#"unknown field "when", expected one of "settings", "upstreams", "rules"; "when" is a key of a rule: indent it under its rule in rules:, lined up with the rule's name"#,
        ),
        (
            "an alias of a mapping used as a mode: placed at the alias, not the anchor",
            "rules:\n  - name: a\n    amount: &lim { max: 5 }\n    reason: x\n  - name: b\n    amount: { max: 9 }\n    mode: *lim\n    reason: x\n",
            (7, 11),
            r#"rules[1].mode (rule "b"): invalid type: map, expected one of "enforce", "shadow", "off""#,
        ),
        (
            "an && line of a block expression slipped left",
            "rules:\n  - name: a\n    require: >-\n      amount > 5\n    && amount < 9\n    reason: x\n",
            (5, 6),
            "did not find expected alphabetic or numeric character (while scanning an anchor that starts at line 5 column 5): this line is indented less than the lines of the block (| or >) started on line 3, so the block ended above it: indent it like the block's other lines",
        ),
        (
            "an || line of a block expression slipped left",
            "rules:\n  - name: a\n    require: >-\n      amount > 5\n    || amount < 9\n    reason: x\n",
            (5, 6),
            "did not find expected comment or line break (while scanning a block scalar that starts at line 5 column 5): this line is indented less than the lines of the block (| or >) started on line 3, so the block ended above it: indent it like the block's other lines",
        ),
        (
            "an alias of no anchor",
            "rules:\n  - name: a\n    amount: *missing\n    reason: x\n",
            (3, 13),
            "unknown anchor: *missing refers to no &missing defined above it: an alias repeats a value marked with &missing earlier in the file; mark one, or write the value out",
        ),
        (
            "an amount bound without a value: no second error that amount needs one",
            "rules:\n  - name: a\n    amount: { min: ~ }\n    reason: x\n",
            (3, 15),
            r#"rules[0].amount.min (rule "a"): no value; write one, or delete the key"#,
        ),
        // Audit: a check left without a value also had its rule reported as having none, and
        // an empty expression was said to miss a value after an operator.
        (
            "a require without a value: no second error that the rule has no check",
            "rules:\n  - name: a\n    require:\n    reason: x\n",
            (3, 5),
            r#"rules[0].require (rule "a"): no value; write one, or delete the key"#,
        ),
        (
            "a rule's dash without a space after it",
            "rules:\n  -name: a\n    amount: { max: 1 }\n    reason: x\n",
            (3, 11),
            r#"mapping values are not allowed in this context: line 2 needs a space after its "-", e.g. - name: a (without it, YAML reads "-name" as a key, not as a list item)"#,
        ),
        // Audit: after a first item written right, the hint was about indentation.
        (
            "a later rule's dash without a space after it",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n  -name: b\n    amount: { max: 1 }\n    reason: y\n",
            (5, 3),
            r#"did not find expected '-' indicator (while parsing a block collection that starts at line 2 column 3): this line needs a space after its "-", e.g. - name: a (without it, YAML reads "-name" as a key, not as a list item)"#,
        ),
        // Audit: the second check in the loader's order was pointed at, not the second written.
        (
            "two checks, the one written second pointed at",
            "rules:\n  - name: a\n    require: 'amount > 1'\n    amount: { max: 5 }\n    reason: x\n",
            (4, 13),
            r#"rule "a": a rule has exactly one check, found require and amount"#,
        ),
        (
            "an empty require",
            "rules:\n  - name: a\n    require: '  '\n    reason: x\n",
            (3, 14),
            r#"rule "a": require is empty; write a condition, e.g. require: 'amount >= 1000'"#,
        ),
        (
            "a reason starting with \"!\", unquoted: YAML would drop the word as a tag",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: !Sold out\n",
            (4, 13),
            r#"rules[0].reason (rule "a"): "!Sold" is read as a YAML tag, which means nothing here and is dropped from what it tags; a text that starts with "!" goes in quotes ("!…")"#,
        ),
        (
            "on_error as a yes/no",
            "rules:\n  - name: a\n    on_error: true\n    amount: { max: 1 }\n    reason: x\n",
            (3, 15),
            r#"rules[0].on_error (rule "a"): invalid type: boolean "true", expected "reject" or "approve""#,
        ),
        (
            "a flow mapping without its }",
            "rules:\n  - name: a\n    amount: { max: 1000 reason: x\n",
            (3, 31),
            r#"did not find expected ',' or '}' (while parsing a flow mapping that starts at line 3 column 13): a flow mapping { ... } needs a "," between entries and a closing "}""#,
        ),
        (
            "a tab in the indentation",
            "rules:\n\t- name: a\n",
            (2, 1),
            "found character that cannot start any token (while scanning for the next token): a tab; YAML indents with spaces only, so replace the tab with spaces",
        ),
        (
            "a Korean reason with a colon, unquoted",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: 주의: 한도 초과\n",
            (4, 15),
            r#"mapping values are not allowed in this context: a value holding ": " (a colon and a space) must be quoted, e.g. reason: "주의: 한도 초과""#,
        ),
        (
            "the settings: line deleted above its indented keys",
            "  deadline: 3s\n  on_error: reject\n\nrules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n",
            (4, 1),
            "this key starts at column 1, but the file's first key is indented (column 3): top-level keys start at column 1, so the key the first lines belong under (settings: in a rule file, say) is probably missing above them",
        ),
        (
            "a byte-order mark after a comment: two files joined",
            "# header\n\u{feff}settings:\n  deadline: 3s\nrules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n",
            (2, 1),
            "a byte-order mark (U+FEFF, invisible) in the middle of the file, as when two files are joined: delete it",
        ),
        (
            "aliases that expand to billions of values",
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\na1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\na2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\na3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\na4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\na5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\na6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\na7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\na8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]\na9: &a9 [*a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8, *a8]\nrules: *a9\n",
            (2, 5),
            "the file's aliases (*name) repeat its anchors (&name) to more than 101162 values in all (two per character of the file, and 100000): write the values out instead of repeating large anchors",
        ),
        (
            "a byte-order mark before a key in the middle of the file",
            "settings:\n  deadline: 3s\n\u{feff}rules:\n  - name: a\n    amount: { max: 100 }\n    reason: x\n",
            (3, 1),
            "a byte-order mark (U+FEFF, invisible) in the middle of the file, as when two files are joined: delete it",
        ),
        (
            "a byte-order mark before an indented rule",
            "rules:\n  - name: a\n    amount: { max: 100 }\n    reason: x\n\u{feff}  - name: b\n    amount: { max: 5 }\n    reason: y\n",
            (5, 1),
            "a byte-order mark (U+FEFF, invisible) in the middle of the file, as when two files are joined: delete it",
        ),
        (
            "a key indented past the key above it, which has its value",
            "settings:\n  deadline: 3s\n    on_error: approve\nrules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n",
            (3, 13),
            "mapping values are not allowed in this context: this line is indented more than line 2 above it, whose key has a value already: keys of one mapping line up, so start this one at column 3 (or, if it belongs under a key, end that key's line with its colon)",
        ),
        (
            "a key indented past a rule's first key",
            "rules:\n  - name: a\n      amount: { min: 1 }\n    reason: x\n",
            (3, 13),
            "mapping values are not allowed in this context: this line is indented more than line 2 above it, whose key has a value already: keys of one mapping line up, so start this one at column 5 (or, if it belongs under a key, end that key's line with its colon)",
        ),
        // A trial's: the out-dented key is the line above, which the line after it is in
        // line with (the advice was to out-dent that one too).
        (
            "a settings key out-dented between two that are not",
            "settings:\n  deadline: 3s\non_error: reject\n  reject_status: 409\nrules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n",
            (4, 16),
            "mapping values are not allowed in this context: line 3 is indented less than the lines before and after it: if it belongs with them, start it at column 3, as they do",
        ),
        (
            "a rule's key at column 1 between two rules",
            "rules:\n  - name: a\n    amount: { min: 1 }\nreason: \"결제 가능 금액\"\n\n  - name: b\n    amount: { max: 5 }\n    reason: x\n",
            (6, 3),
            "did not find expected key (while parsing a block mapping): line 4 is indented less than the lines before and after it: if it belongs with the line before it, start it at column 5, as that one's key does",
        ),
        // A review's: further up, a parent key is less indented than the lines around it
        // too; it is never told to move (nor one of the file's own keys).
        (
            "a rule key one space short after a settings block",
            "settings:\n  deadline: 3s\nrules:\n  - name: a\n    amount: { max: 1 }\n   reason: x\n",
            (6, 4),
            "did not find expected '-' indicator (while parsing a block collection that starts at line 4 column 3): check this line's indentation against the lines above it (spaces only)",
        ),
        // A review's: an unquoted value, so YAML stops at the next rule's `- name:` line, whose
        // keys start after its dash.
        (
            "an unquoted rule key at column 1 between rules",
            "rules:\n  - name: a\n    amount: { max: 1 }\nreason: 결제 불가\n  - name: b\n    amount: { max: 1 }\n    reason: x\n",
            (5, 9),
            "mapping values are not allowed in this context: line 4 is indented less than the lines before and after it: if it belongs with them, start it at column 5, as they do",
        ),
        // A trial's: the line before is a folded reason's text, whose column is no key's.
        (
            "a when at column 1 after a folded reason",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: >-\n      접수 기간이 아닙니다. 문의: 고객센터\nwhen: 'order_id.starts_with(\"m-\")'\n\n  - name: b\n    amount: { max: 1 }\n    reason: x\n",
            (8, 3),
            "did not find expected key (while parsing a block mapping): check this line's indentation against the lines above it (spaces only)",
        ),
        (
            "rules: [] followed by rules",
            "settings:\n  deadline: 3s\nrules: []\n  - name: a\n    amount: { max: 1 }\n    reason: x\n",
            (4, 3),
            "did not find expected key (while parsing a block mapping): check this line's indentation against the lines above it (spaces only)",
        ),
        (
            "a value on rules: with keys below it",
            "settings:\n  deadline: 3s\nrules: x\n  name: a\n",
            (4, 7),
            "mapping values are not allowed in this context: this line is indented more than line 3 above it, whose key has a value already: keys of one mapping line up, so start this one at column 1 (or, if it belongs under a key, end that key's line with its colon)",
        ),
        (
            "a reason in typographic quotes holding a colon",
            "rules:\n  - name: a\n    amount: { min: 1 }\n    reason: “접수 기간이: 아닙니다”\n",
            (4, 20),
            "mapping values are not allowed in this context: the value starts with “, a typographic quote, which YAML reads as text, not as a quote: type straight quotes (\") at both ends",
        ),
        (
            "a value starting with @",
            "rules:\n  - name: a\n    reason: @home\n",
            (3, 13),
            r#"found character that cannot start any token (while scanning for the next token): a value starting with @ or a backquote must be quoted, e.g. "@home""#,
        ),
        (
            "a key indented one space too little",
            "rules:\n  - name: a\n    amount: { max: 1 }\n   reason: x\n",
            (4, 4),
            "did not find expected '-' indicator (while parsing a block collection that starts at line 2 column 3): check this line's indentation against the lines above it (spaces only)",
        ),
        (
            "a quote inside a double-quoted reason",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: \"더 이상 \"지원\"하지 않습니다\"\n",
            (4, 20),
            r#"did not find expected key (while parsing a block mapping that starts at line 2 column 5): this line has a quote that ends its value early or is never closed: inside "…" write \" for a quote, inside '…' write ''"#,
        ),
        (
            "a broken quote below a quoted value written over two lines",
            "rules:\n  - name: a\n    require: 'amount > 1000\n      && amount < 5000000'\n    reason: x\n  - name: b\n    require: 'order_id.starts_with('qa-')'\n    reason: x\n",
            (7, 37),
            r#"did not find expected key (while parsing a block mapping that starts at line 6 column 5): this line has a quote that ends its value early or is never closed: inside "…" write \" for a quote, inside '…' write ''"#,
        ),
        (
            "a reason whose quote is never closed",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: \"더 이상 지원하지 않습니다\n  - name: b\n    amount: { max: 2 }\n    reason: x\n",
            (4, 13),
            r#"found unexpected end of stream before the end of the file (while scanning a quoted scalar that starts here)"#,
        ),
        (
            "an apostrophe inside a single-quoted reason",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: 'VIP's only'\n",
            (4, 18),
            r#"did not find expected key (while parsing a block mapping that starts at line 2 column 5): this line has a quote that ends its value early or is never closed: inside "…" write \" for a quote, inside '…' write ''"#,
        ),
        (
            "no space after a key's colon",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason:\"한도 초과\"\n  - name: b\n    amount: { max: 2 }\n    reason: x\n",
            (4, 5),
            r#"could not find expected ':' (while scanning a simple key): this line needs a space after the colon of its key, e.g. reason: "…""#,
        ),
        (
            "a line of a multi-line expression slipped left of its block",
            "rules:\n  - name: a\n    require: >-\n      amount > 5 &&\n    order_id != \"x\"\n    reason: x\n",
            (5, 5),
            "could not find expected ':' (while scanning a simple key): this line is indented less than the lines of the block (| or >) started on line 3, so the block ended above it: indent it like the block's other lines",
        ),
        (
            "a line of a multi-line expression slipped to the margin",
            "rules:\n  - name: a\n    require: |\n      amount > 5 &&\norder_id != \"x\"\n    reason: x\n",
            (5, 1),
            "could not find expected ':' (while scanning a simple key): this line is indented less than the lines of the block (| or >) started on line 3, so the block ended above it: indent it like the block's other lines",
        ),
        (
            "a line of a multi-line expression that starts with a key's name slipped left",
            "rules:\n  - name: a\n    require: >-\n      order_id.starts_with(\"m-\") &&\n    amount == 50000\n    reason: x\n",
            (5, 5),
            "could not find expected ':' (while scanning a simple key): this line is indented less than the lines of the block (| or >) started on line 3, so the block ended above it: indent it like the block's other lines",
        ),
        (
            "a key without its colon after a block",
            "rules:\n  - name: a\n    require: >-\n      amount > 5 &&\n      order_id != \"x\"\n    reason \"재고\"\n",
            (6, 5),
            "could not find expected ':' (while scanning a simple key): reason is a key: write a colon and a space after it (reason: …)",
        ),
        (
            "a full-width colon",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason：\"한도 초과\"\n  - name: b\n    amount: { max: 2 }\n    reason: x\n",
            (4, 5),
            r#"could not find expected ':' (while scanning a simple key): this line has a full-width "：", which YAML does not read as a colon: type ":" and a space"#,
        ),
        (
            "no space after the colon of a rule's name",
            "rules:\n  - name:a\n    amount: { max: 1 }\n    reason: x\n",
            (3, 11),
            r#"mapping values are not allowed in this context: line 2 needs a space after the colon of its key, e.g. name: a (without it, YAML reads the key and value as one text, which this line cannot continue)"#,
        ),
        (
            "a full-width colon before a flow mapping",
            "rules:\n  - name: a\n    amount： { max: 5 }\n    reason: x\n",
            (3, 5),
            r#"rules[0] (rule "a"): unknown field "amount： { max", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script"; "：" is a full-width colon, which YAML does not read as one: type ":" and a space"#,
        ),
        (
            "a full-width colon after a rule's dash",
            "rules:\n  - name：a\n    amount: { max: 1 }\n    reason: x\n",
            (3, 11),
            r#"mapping values are not allowed in this context: line 2 has a full-width "：", which YAML does not read as a colon: type ":" and a space"#,
        ),
        (
            "a full-width colon in settings",
            &format!("settings:\n  deadline： 4s\n{ONE_RULE}"),
            (2, 3),
            r#"settings: invalid type: string "deadline： 4s", expected a mapping of settings (deadline, on_error, error_reason, reject_status); "：" is a full-width colon, which YAML does not read as one: type ":" and a space"#,
        ),
        // Blanks pasted from a web page or typed by a Korean input method, which YAML does
        // not read as spaces and an editor shows as nothing else: named, with their column.
        (
            "a full-width space after a key's colon",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason:\u{3000}\"한도 초과\"\n",
            (4, 5),
            "could not find expected ':' (while scanning a simple key): this line has U+3000 (a full-width space) at column 12, which YAML does not read as a space or as part of a key: type an ordinary space",
        ),
        (
            "a key indented with full-width spaces",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    \u{3000}reason: x\n",
            (4, 5),
            "rules[0] (rule \"a\"): unknown field \"\u{3000}reason\", expected one of \"name\", \"when\", \"mode\", \"action\", \"reason\", \"on_error\", \"amount\", \"window\", \"require\", \"healthy\", \"fetch\", \"forward\", \"script\"; did you mean \"reason\"?; this line has U+3000 (a full-width space) at column 5, which YAML does not read as a space or as part of a key: type an ordinary space",
        ),
        (
            "a no-break space before a flow mapping",
            "rules:\n  - name: a\n    amount:\u{A0}{ max: 5 }\n    reason: x\n",
            (3, 5),
            "rules[0] (rule \"a\"): unknown field \"amount:\u{A0}{ max\", expected one of \"name\", \"when\", \"mode\", \"action\", \"reason\", \"on_error\", \"amount\", \"window\", \"require\", \"healthy\", \"fetch\", \"forward\", \"script\"; did you mean \"amount\"?; this line has U+00A0 (a no-break space) at column 12, which YAML does not read as a space or as part of a key: type an ordinary space",
        ),
        // In a value a no-break space is text: no hint about it, the right one instead.
        (
            "a quote in a value, a no-break space in the value above",
            "rules:\n  - name: 한도\u{A0}초과\n    reason: \"주문 \"특가\" 거절\"\n    amount: { max: 1 }\n",
            (3, 18),
            "did not find expected key (while parsing a block mapping that starts at line 2 column 5): this line has a quote that ends its value early or is never closed: inside \"…\" write \\\" for a quote, inside '…' write ''",
        ),
        (
            "an unknown placeholder in a value holding a no-break space",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: 주문 {oder_id}\u{A0}거절\n",
            (4, 16),
            "rule \"a\": reason: unknown placeholder {oder_id} (did you mean {order_id}?), expected one of {order_id}, {tx_id}, {amount}, {store_id}",
        ),
        (
            "a full-width space after a rule's dash",
            "rules:\n  - name:\u{3000}a\n    amount: { max: 1 }\n    reason: x\n",
            (3, 11),
            "mapping values are not allowed in this context: line 2 has U+3000 (a full-width space) at column 10, which YAML does not read as a space or as part of a key: type an ordinary space",
        ),
        (
            "an unquoted negated expression",
            "rules:\n  - name: a\n    require: !order_id.starts_with(\"x\")\n    reason: x\n",
            (3, 36),
            r#"did not find expected whitespace or line break (while scanning a tag that starts at line 3 column 14): a value starting with ! must be quoted, e.g. require: '!order_id.starts_with("x")'"#,
        ),
        // Audit: the quote left open above ran on to the opening quote of a `'!…'`, leaving its
        // `!` outside quotes, and the hint said to quote the value that was quoted.
        (
            "a quote never closed above a quoted negated expression",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: '한도 초과\n  - name: b\n    require: '!order_id.starts_with(\"x\")'\n    reason: x\n",
            (6, 37),
            r#"did not find expected whitespace or line break (while scanning a tag that starts at line 6 column 15): line 4 has a quote that ends its value early or is never closed: inside "…" write \" for a quote, inside '…' write ''"#,
        ),
        (
            "a reason starting with a placeholder, unquoted",
            "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: {order_id} 주문은 한도를 넘었습니다\n",
            (4, 24),
            r#"did not find expected key (while parsing a block mapping that starts at line 2 column 5): this line: a value starting with { is read as a mapping; quote it, e.g. reason: "{order_id} 주문은 …""#,
        ),
        (
            "a flow sequence cut off",
            "rules: [oops\n",
            (1, 8),
            r#"did not find expected ',' or ']' before the end of the file (while parsing a flow sequence that starts here): a flow sequence [ ... ] needs a "," between items and a closing "]""#,
        ),
        (
            "a flow mapping left open at the end of its line, at the end of the file",
            "rules:\n  - name: a\n    reason: x\n    amount: {\n",
            (4, 13),
            r#"did not find expected node content before the end of the file (while parsing a flow mapping that starts here): a flow mapping { ... } needs a "," between entries and a closing "}""#,
        ),
        (
            "a flow mapping left open at the end of its line, with a rule after it",
            "rules:\n  - name: a\n    reason: x\n    amount: {\n  - name: b\n    reason: y\n    amount: { min: 1 }\n",
            (5, 3),
            r#"did not find expected node content (while parsing a flow mapping that starts at line 4 column 13): a flow mapping { ... } needs a "," between entries and a closing "}""#,
        ),
        (
            "a flow sequence left open at the end of its line",
            "rules: [\n",
            (1, 8),
            r#"did not find expected node content before the end of the file (while parsing a flow sequence that starts here): a flow sequence [ ... ] needs a "," between items and a closing "]""#,
        ),
        (
            "a sequence at the top",
            "- rules: []\n",
            (1, 1),
            "invalid type: sequence, expected a mapping with the keys settings, upstreams and rules",
        ),
        (
            "a number as the file",
            "42\n",
            (1, 1),
            "invalid type: integer `42`, expected a mapping with the keys settings, upstreams and rules",
        ),
        (
            "a number that is text",
            "rules:\n  - name: a\n    amount: { max: lots }\n    reason: x\n",
            (3, 20),
            r#"rules[0].amount.max (rule "a"): invalid type: string "lots", expected a number"#,
        ),
        (
            "a check that is not a mapping",
            "rules:\n  - name: a\n    amount: 5\n    reason: x\n",
            (3, 13),
            r#"rules[0].amount (rule "a"): invalid type: integer `5`, expected a mapping with min, max or both"#,
        ),
        (
            "settings that are not a mapping",
            &format!("settings: fast\n{ONE_RULE}"),
            (1, 11),
            r#"settings: invalid type: string "fast", expected a mapping of settings (deadline, on_error, error_reason, reject_status)"#,
        ),
        (
            "a health probe that is not a mapping",
            "upstreams:\n  shop:\n    url: http://shop.test\n    health: /health\nrules:\n  - name: a\n    forward: { upstream: shop, path: /c }\n",
            (4, 13),
            r#"upstreams.shop.health: invalid type: string "/health", expected a mapping with path (and interval, unhealthy_after, healthy_after)"#,
        ),
    ];
    for (what, yaml, (line, col), message) in cases {
        let dir = default_file(yaml);
        // Backquotes of serde's messages read as double quotes.
        let message = message.replace('`', "\"");
        assert_eq!(
            dir.errors(),
            [dir.at(DEFAULT, *line, *col, &message)],
            "{what}: {yaml:?}"
        );
    }
}

/// `{ max: 1,000 }` reads as `max: 1` and a key `000`: both errors say how to write the number.
#[test]
fn a_thousands_separator_is_named() {
    let dir = default_file("rules:\n  - name: a\n    amount: { max: 1,000 }\n    reason: x\n");
    let hint = "write numbers without thousands separators (1000, not 1,000): inside { … } a comma ends an entry";
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                3,
                22,
                &format!(r#"rules[0].amount.000 (rule "a"): no value; {hint}"#)
            ),
            dir.at(
                DEFAULT,
                3,
                22,
                &format!(
                    r#"rules[0].amount (rule "a"): unknown field "000", expected "min" or "max"; {hint}"#
                )
            ),
        ]
    );
}

#[test]
fn empty_reasons_are_rejected_like_an_empty_error_reason() {
    let dir = default_file(
        r#"rules:
  - name: empty
    amount: { max: 1 }
    reason: ""
  - name: blank
    require: 'amount < 5'
    reason: "  "
  - name: block
    window: { until: "2026-12-03T18:00:00+09:00" }
    reason: |
  - name: script
    script: scripts/vip.rhai
    reason: ''
  - name: invisible
    amount: { max: 1 }
    reason: "\u200f\u202e\u200b\u3164"
"#,
    );
    dir.write("scripts/vip.rhai", "true\n");
    let message = |rule: &str| {
        format!(
            r#"rule "{rule}": reason must not be empty (it is the text the buyer sees when this rule refuses; spaces, controls and invisible characters show nothing)"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 4, 13, &message("empty")),
            dir.at(DEFAULT, 7, 13, &message("blank")),
            dir.at(DEFAULT, 10, 13, &message("block")),
            dir.at(DEFAULT, 13, 13, &message("script")),
            dir.at(DEFAULT, 16, 13, &message("invisible")),
        ]
    );
}

#[test]
fn health_probe_intervals_have_a_minimum() {
    let probed = |interval: &str| {
        format!(
            "upstreams:\n  shop:\n    url: http://shop.test\n    health: {{ path: /health, interval: {interval} }}\nrules:\n  - name: up\n    healthy: shop\n    reason: x\n"
        )
    };
    for interval in ["1ms", "49ms", "0.01s"] {
        let dir = default_file(&probed(interval));
        let shown = format!("{:?}", parse_duration(interval).unwrap());
        assert_eq!(
            dir.errors(),
            [dir.at(
                DEFAULT,
                4,
                40,
                &format!(r#"upstream "shop": health interval {shown} is too short, expected at least 50ms (every interval sends a probe to the upstream)"#)
            )],
            "{interval}"
        );
    }
    for (interval, want) in [("50ms", 50), ("100ms", 100), ("5s", 5000)] {
        let rules = default_file(&probed(interval)).ok();
        let shop = &rules.get("default").unwrap().upstreams["shop"];
        assert_eq!(
            shop.health.as_ref().unwrap().interval,
            Duration::from_millis(want)
        );
    }
}

/// A threshold of 0 makes no sense either way (`unhealthy_after: 0` would mark the upstream
/// down after a probe that succeeded): each one of them is an error on its own.
#[test]
fn health_probe_thresholds_are_at_least_one() {
    let at = |column: usize, key: &str| {
        format!(
            "{DEFAULT}:4:{column}: upstream \"shop\": health.{key} must be at least 1 (probes in a row that decide the state)"
        )
    };
    for (thresholds, errors) in [
        ("unhealthy_after: 0", vec![at(47, "unhealthy_after")]),
        ("healthy_after: 0", vec![at(45, "healthy_after")]),
        (
            "unhealthy_after: 0, healthy_after: 0",
            vec![at(47, "unhealthy_after"), at(65, "healthy_after")],
        ),
    ] {
        let dir = default_file(&format!(
            "upstreams:\n  shop:\n    url: http://shop.test\n    health: {{ path: /health, {thresholds} }}\nrules:\n  - name: up\n    healthy: shop\n    reason: x\n"
        ));
        let prefix = format!("{}/", dir.path().display());
        let got: Vec<String> = dir
            .errors()
            .iter()
            .map(|e| e.replace(&prefix, ""))
            .collect();
        assert_eq!(got, errors, "{thresholds}");
    }
}

/// A limit on an upstream's connections is from 1 (0 would refuse every call) to 10,000; a
/// limit kept by a reload keeps its slots, which calls of the running rules hold.
#[test]
fn max_connections_is_a_positive_limit_kept_across_reloads() {
    let yaml = |n: &str| {
        format!(
            "upstreams:\n  shop:\n    url: http://shop.test\n    max_connections: {n}\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /stock }}\n    reason: x\n"
        )
    };
    for n in ["0", "10001"] {
        let dir = default_file(&yaml(n));
        assert_eq!(
            dir.errors(),
            [dir.at(DEFAULT, 4, 22, &format!("upstream \"shop\": max_connections {n}, expected 1 to 10000 (the calls to it in flight at once; leave it out for no limit)"))],
            "{n}"
        );
    }
    let dir = default_file(&yaml("-1"));
    assert!(dir.errors()[0].contains(":4:22: "), "{:?}", dir.errors());
    let first = default_file(&yaml("8")).ok();
    let slots = |rules: &Rules| {
        rules.get("default").unwrap().upstreams["shop"]
            .slots
            .clone()
            .unwrap()
    };
    assert_eq!(slots(&first).max, 8);
    let reload = |n: &str| {
        let dir = default_file(&yaml(n));
        dir.load_after(&first).unwrap()
    };
    assert!(Arc::ptr_eq(&slots(&first).free, &slots(&reload("8")).free));
    assert!(!Arc::ptr_eq(&slots(&first).free, &slots(&reload("4")).free));
    assert_eq!(slots(&reload("4")).max, 4);
}

/// What a fetch sends is the operator's to name: a `\` in a path (read as `/`, so an id after
/// it could leave the path), a placeholder in `Host` (a request field choosing the host the
/// call goes to), header text with a space at an end (dropped by readers) are load errors,
/// each at its place; text beyond ASCII is the operator's to send.
#[test]
fn a_fetch_sends_nothing_a_request_field_or_a_reader_could_turn_into_another_call() {
    let dir = default_file(
        "upstreams:\n  shop: { url: http://shop.test }\nrules:\n  - name: hold\n    fetch:\n      upstream: shop\n      path: \"/hold\\\\{order_id}\"\n      headers: { Host: \"{store_id}.shop\", X-Note: \"주문 {order_id}\", X-Trail: \"a \", X-Fine: \"o-{order_id}\" }\n    reason: x\n",
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    for (i, (at, said)) in [
        (":7:13: ", r#"fetch.path must not hold "\""#),
        (":8:24: ", r#""Host" must not hold a placeholder"#),
        (":8:77: ", r#""X-Trail" starts or ends with a space or tab"#),
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            errors[i].contains(at) && errors[i].contains(said),
            "{at}{said}: {errors:#?}"
        );
    }
    // Review: a line break written in the value loaded, and every call then failed, blamed on
    // a request field.
    let dir = default_file(
        "upstreams:\n  shop: { url: http://shop.test }\nrules:\n  - name: hold\n    fetch: { upstream: shop, path: /hold, headers: { X-Note: \"a\\nb {order_id}\" } }\n    reason: x\n",
    );
    let errors = dir.errors();
    assert!(
        errors.len() == 1
            && errors[0].contains(":5:62: ")
            && errors[0].contains(r#""X-Note" holds a control character"#),
        "{errors:#?}"
    );
}

/// A bad limit or too many headers do not hide the upstream's other problems: an operator
/// fixes them all in one go.
#[test]
fn every_problem_of_an_upstream_is_reported_together() {
    let dir = default_file(
        "upstreams:\n  shop:\n    url: http://shop.test\n    max_connections: 0\n    headers: { \"bad header\": x }\n    health: { path: /health, interval: 1ms }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: /stock }\n    reason: x\n",
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for said in [
        "max_connections 0",
        "invalid header name",
        "health interval 1ms",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(said)),
            "{said}: {errors:?}"
        );
    }
    let many: String = (0..101).map(|i| format!("x-h{i}: v, ")).collect();
    let dir = default_file(&format!(
        "upstreams:\n  shop:\n    url: http://shop.test\n    headers: {{ {many} }}\n    health: {{ path: /health, interval: 1ms }}\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /stock }}\n    reason: x\n"
    ));
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("101 headers"), "{errors:?}");
    assert!(errors[1].contains("health interval 1ms"), "{errors:?}");
}

#[test]
fn upstream_urls_are_bases_without_query_or_fragment() {
    let dir = default_file(
        r#"upstreams:
  query:
    url: "http://h/base/?q=1"
  fragment:
    url: "http://h/base#frag"
  both:
    url: "http://h/base/?q=1#frag"
  empty-query:
    url: "https://h:8443/?"
  from-env:
    url: "${SHOP_URL}"
rules:
  - name: a
    forward: { upstream: query, path: /c }
"#,
    );
    let message = |name: &str| {
        format!(
            r##"upstream "{name}": url must not have a query string ("?") or fragment ("#"): it is a base (scheme, host, port and an optional path prefix) that rule paths are appended to; put query parameters in a fetch's query"##
        )
    };
    // The value (maybe from a secret) is not shown.
    assert_eq!(
        dir.errors_with(&[("SHOP_URL", "http://shop.test/api?token=secret")]),
        [
            dir.at(DEFAULT, 3, 10, &message("query")),
            dir.at(DEFAULT, 5, 10, &message("fragment")),
            dir.at(DEFAULT, 7, 10, &message("both")),
            dir.at(DEFAULT, 9, 10, &message("empty-query")),
            dir.at(DEFAULT, 11, 10, &message("from-env")),
        ]
    );
    // A scheme, a host, a port and a path prefix are what a base has.
    let dir = default_file(
        "upstreams:\n  shop:\n    url: \"https://shop.test:8443/api/v1/\"\nrules:\n  - name: a\n    forward: { upstream: shop, path: /confirm }\n",
    );
    let rules = dir.ok();
    assert_eq!(
        rules.get("default").unwrap().upstreams["shop"].url,
        "https://shop.test:8443/api/v1"
    );
}

/// URL parsers drop a space or line break at the ends of a url, so such a url loaded and then
/// failed every call ("invalid port number"): a load error, naming the variable's value as the
/// likely cause without showing it.
#[test]
fn upstream_urls_with_spaces_or_line_breaks_are_errors() {
    let dir = default_file(
        r#"upstreams:
  from-env:
    url: "${SHOP_URL}"
  written:
    url: "http://shop.test /api"
rules:
  - name: a
    forward: { upstream: from-env, path: /c }
"#,
    );
    for value in [
        "http://127.0.0.1:9090 ",
        "http://127.0.0.1:9090\n",
        "\thttp://h",
    ] {
        assert_eq!(
            dir.errors_with(&[("SHOP_URL", value)]),
            [
                dir.at(DEFAULT, 3, 10, r#"upstream "from-env": url has a space, line break or other control character, which no URL has (the value of environment variable SHOP_URL has a space at an end, a line break or another control character, as a value read from a file often does)"#),
                dir.at(DEFAULT, 5, 10, r#"upstream "written": url has a space, line break or other control character, which no URL has"#),
            ],
            "{value:?}"
        );
    }
}

/// A `.` or `..` segment written in a path is resolved by the URL parser, so the call would go
/// elsewhere (a `forward` of `/../admin` after `http://shop/pre` POSTed to `/admin`): a load
/// error for fetch, forward and health paths alike, as `#` is. A health path has no request
/// to fill placeholders from.
#[test]
fn dot_segments_fragments_and_health_placeholders_in_paths_are_errors() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: "http://shop.test/pre"
    health: { path: "/h/{order_id}/%2E%2e#x" }
rules:
  - name: up
    forward: { upstream: shop, path: /../admin }
  - name: stock
    fetch: { upstream: shop, path: "/s/./{order_id}?a=.." }
    reason: r
  - name: ok
    fetch: { upstream: shop, path: "/s/{order_id}/...x/.well-known" }
    reason: r
  - name: back
    fetch: { upstream: shop, path: '/..\admin/{order_id}' }
    reason: r
"#,
    );
    let dots = |subject: &str, dots: &str| {
        format!(
            r#"{subject} must not have the segment "{dots}": URL parsers resolve it, so the call would go to another path than the one written (outside the upstream url's path too)"#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 4, 21, r##"upstream "shop": health path must not hold "#": a fragment is never sent, so what follows it (and the query) would be dropped; write a literal # as %23"##),
            dir.at(DEFAULT, 4, 21, &dots(r#"upstream "shop": health path"#, "%2E%2e")),
            dir.at(DEFAULT, 4, 21, r#"upstream "shop": health path is sent as written, for no request: placeholders such as {order_id} are not filled in"#),
            dir.at(DEFAULT, 7, 38, &dots(r#"rule "up": forward.path"#, "..")),
            dir.at(DEFAULT, 9, 36, &dots(r#"rule "stock": fetch.path"#, ".")),
            dir.at(DEFAULT, 15, 36, r#"rule "back": fetch.path must not hold "\": URL parsers read it as "/", so the call would go to another path than the one written; write a literal \ as %5C"#),
            dir.at(DEFAULT, 15, 36, &dots(r#"rule "back": fetch.path"#, "..")),
        ]
    );
}

/// An upstream's headers go with every call and probe, for no request in particular: a
/// request placeholder there would be sent as `{order_id}`, so it is a load error pointing to
/// a fetch's headers. Other braces are text.
#[test]
fn request_placeholders_in_upstream_headers_are_errors() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: "http://shop.test"
    headers: { X-Order: "{order_id}", X-Last: "{response.body.id}", X-Json: '{"a":1}' }
rules:
  - name: a
    forward: { upstream: shop, path: /c }
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 4, 25, r#"upstream "shop": header "X-Order": {order_id} is not filled in here: an upstream's headers are sent as written, with every call and health probe; a header filled in from the request goes in a fetch's headers"#),
            dir.at(DEFAULT, 4, 47, r#"upstream "shop": header "X-Last": {response.body.…} is not filled in here: an upstream's headers are sent as written, with every call and health probe; a header filled in from the request goes in a fetch's headers"#),
        ]
    );
}

/// A file is read again at most 200 times to find its next error; when that runs out, the
/// list says so after the last error found, rather than passing for all there is.
#[test]
fn a_file_with_more_errors_than_are_read_says_so() {
    let rules: String = (0..250)
        .map(|i| format!("  - name: r{i}\n    amount: {{ max: 5 }}\n    reasn: x\n"))
        .collect();
    let dir = default_file(&format!("rules:\n{rules}"));
    let errors = dir.errors();
    assert_eq!(errors.len(), 201);
    assert_eq!(
        errors[200],
        dir.at(
            DEFAULT,
            601,
            5,
            "stopped reading this file after 200 errors; fix those and check again for the rest"
        )
    );
}

/// A key of `settings` written in a rule says where it belongs, not only that a rule has no
/// such key.
#[test]
fn a_settings_key_in_a_rule_says_it_belongs_to_settings() {
    let dir = RulesDir::new();
    dir.write(
        DEFAULT,
        "rules:\n  - name: up\n    amount: { max: 5 }\n    error_reason: \"주문 서버 점검 중\"\n    reason: x\n",
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&dir.at(DEFAULT, 4, 5, r#"rules[0] (rule "up"): unknown field "error_reason", expected one of"#))
            && errors[0].ends_with(r#"; "error_reason" is a key of settings, for every rule of the file: a rule has its own reason and on_error, but not error_reason"#),
        "{errors:?}"
    );
}

/// Flow collections nested deeper than any rule file needs are refused before YAML reads
/// them: libyaml takes time growing with the square of the depth (minutes for 1 MiB of `[`),
/// and every reload would wait behind it.
#[test]
fn flow_collections_nested_too_deep_are_refused_before_yaml_reads_them() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, &format!("rules: {}", "[".repeat(200_000)));
    let started = std::time::Instant::now();
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            1,
            108,
            "more than 100 [ and { open at once here: no rule or test file nests that deep, and YAML would take minutes to read it; close them"
        )]
    );
    // 200,000 levels would take libyaml hours; the count takes microseconds.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// Only the first 50 errors, and the first 50 warnings, of a file are located (each reads the
/// file again); the rest are counted in one line, so that a generated file with the same slip
/// in thousands of rules is reported in moments.
#[test]
fn only_the_first_fifty_errors_and_warnings_of_a_file_are_located() {
    let rule = |i: usize, check: &str| {
        format!("  - name: r{i}\n    {check}\n    reason: \"{{store_id}}\"\n")
    };
    let warned: String = (0..60).map(|i| rule(i, "amount: { max: 5 }")).collect();
    let dir = RulesDir::new();
    dir.write(DEFAULT, &format!("rules:\n{warned}"));
    let rules = dir.ok();
    let warnings = &rules.warnings;
    assert_eq!(warnings.len(), 51, "{warnings:?}");
    assert!(
        warnings[49].starts_with(&dir.at(DEFAULT, 151, 13, "rule \"r49\": reason has no words")),
        "{}",
        warnings[49]
    );
    assert_eq!(
        warnings[50],
        dir.whole(
            DEFAULT,
            "and 10 more warnings, not shown: only the first 50 warnings of a file are located"
        )
    );
    let broken: String = (0..3000).map(|i| rule(i, "require: 'amount >'")).collect();
    dir.write(DEFAULT, &format!("rules:\n{broken}"));
    let errors = dir.errors();
    assert_eq!(errors.len(), 51);
    assert!(
        errors[0].starts_with(&dir.at(DEFAULT, 3, 23, "rule \"r0\": require: invalid expression")),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[50],
        dir.whole(DEFAULT, "and 2950 more errors, not shown: only the first 50 errors of a file are located; fix these and check again")
    );
}

/// A script's load-time checks report every slip they find, the first 50 listed and the
/// rest counted, as a rule file's errors are.
#[test]
fn a_script_lists_its_first_fifty_errors_and_counts_the_rest() {
    let dir = RulesDir::new();
    dir.write(
        DEFAULT,
        "rules:\n  - name: s\n    script: s.rhai\n    reason: 한도 초과\n",
    );
    let slips: String = (0..60)
        .map(|i| format!("let a{i} = lenght(order_id);\n"))
        .collect();
    dir.write("s.rhai", &format!("{slips}true\n"));
    let errors = dir.errors();
    assert_eq!(errors.len(), 51, "{errors:?}");
    let of_rule = " (script of rule \"s\" in default.yaml)";
    for (i, e) in errors[..50].iter().enumerate() {
        let message = format!("function not found: lenght; did you mean len?{of_rule}");
        let column = 9 + i.to_string().len();
        assert_eq!(*e, dir.at("s.rhai", i + 1, column, &message));
    }
    assert_eq!(
        errors[50],
        dir.whole("s.rhai", &format!("and 10 more errors in this script, not shown: only the first 50 are listed; fix these and check again{of_rule}"))
    );
}

/// Keys without a value are located for the first 50 only (each reads the file again); the
/// rest are counted in a line after them.
#[test]
fn only_the_first_fifty_keys_without_a_value_are_located() {
    let rules: String = (0..60)
        .map(|i| format!("  - name: r{i}\n    amount: {{ max: 5 }}\n    mode:\n    reason: x\n"))
        .collect();
    let dir = RulesDir::new();
    dir.write(DEFAULT, &format!("rules:\n{rules}"));
    let errors = dir.errors();
    assert_eq!(errors.len(), 51, "{errors:?}");
    assert_eq!(
        errors[0],
        dir.at(
            DEFAULT,
            4,
            5,
            "rules[0].mode (rule \"r0\"): no value; write one, or delete the key"
        )
    );
    assert_eq!(
        errors[50],
        dir.whole(DEFAULT, "and 10 more keys without a value, not shown")
    );
}

/// A value of a megabyte is quoted cut short, and a message that quotes one unquoted (Rhai's
/// "function not found: …") is cut as a whole: an error stays a line an operator can read.
#[test]
fn long_values_are_cut_short_in_errors() {
    let long = "s".repeat(100_000);
    let dir = default_file(&format!(
        "settings:\n  deadline: 3{long}\nrules:\n  - name: a\n    amount: {{ max: 5 }}\n    reason: x\n"
    ));
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            2,
            13,
            &format!(
                "invalid duration \"3{}…\", expected a number and a unit like 500ms, 1.5s, 4s or 1m",
                &long[..199]
            )
        )]
    );

    let dir = default_file("rules:\n  - { name: s, script: scripts/s.rhai }\n");
    dir.write(
        "scripts/s.rhai",
        &format!("starts_wit{}(\"x\")\n", "h".repeat(100_000)),
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let prefix = dir.at("scripts/s.rhai", 1, 1, "");
    let message = errors[0].strip_prefix(&prefix).unwrap();
    assert!(
        message.starts_with("function not found: starts_withh"),
        "{message}"
    );
    assert_eq!(message.chars().count(), 2_001);
    assert!(message.ends_with('…'));
}

/// A number no float holds is kept as text by YAML: the error says why.
#[test]
fn a_number_beyond_every_float_says_so() {
    let dir = default_file("rules:\n  - name: a\n    amount: { min: 1e400 }\n    reason: x\n");
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            20,
            r#"rules[0].amount.min (rule "a"): invalid type: string "1e400", expected a number; 1e400 is larger than any number can hold (about 1.8e308): write the limit you mean"#
        )]
    );
}

/// A `//` comment in a folded value takes the lines after it with it: YAML joins them into one
/// line, the comment's. A trial's `require: >-` with `amount <= 1000000  // 기본 한도` then
/// `|| vip` loaded and refused every VIP. A comment on the last line, or in a `|` value (its
/// line breaks kept), or `/* … */`, is fine.
#[test]
fn a_line_comment_that_swallows_later_lines_is_an_error() {
    let dir = default_file(
        "rules:\n  - name: cap\n    require: >-\n      amount <= 1000000  // 기본 한도\n      || payload.custom_data?.tier == \"vip\"\n    reason: x\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(DEFAULT, 3, 14, r#"rule "cap": require: the // comment on line 4 runs to the end of the expression, taking the lines after it with it (YAML folds a value's lines into one); write it as /* … */, or start the value with | to keep its line breaks"#)]
    );
    for fine in [
        "    require: >-\n      amount <= 1000000\n      || payload.custom_data?.tier == \"vip\"  // VIP\n",
        "    require: |\n      amount <= 1000000  // 기본 한도\n      || payload.custom_data?.tier == \"vip\"\n",
        "    require: >-\n      amount <= 1000000  /* 기본 한도 */\n      || payload.custom_data?.tier == \"vip\"\n",
        "    require: >-\n      order_id != \"http://x\"\n      && amount <= 1000000\n",
    ] {
        let dir = default_file(&format!("rules:\n  - name: cap\n{fine}    reason: x\n"));
        dir.ok();
    }
}

/// A fetch rule that does not read (a misspelt method, a key it has no use for) is reported
/// once: a later rule reading its answer gets no second error saying there is no such fetch
/// rule (a trial's operator was sent to edit the correct rule). A name no rule has still is.
#[test]
fn a_rule_reading_a_broken_fetch_rules_answer_gets_no_second_error() {
    let dir = RulesDir::new();
    dir.write(
        DEFAULT,
        r#"upstreams:
  shop: { url: "http://127.0.0.1:1" }
rules:
  - name: stock
    fetch: { upstream: shop, path: /stock, method: GT }
    reason: 품절
  - name: vip
    require: 'fetched["stock"].body.tier != "blocked" && fetched["stok"] != ()'
    reason: 차단
"#,
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains(r#"rules[0].fetch.method (rule "stock"): invalid value "GT""#),
        "{errors:#?}"
    );
    assert!(
        errors[1].ends_with(r#"fetched["stok"]: no fetch rule "stok" before this rule"#),
        "{errors:#?}"
    );
}
