//! Rule structure, expressions, reason templates, and many errors at once.

use super::*;

// ---------------------------------------------------------------------------------------------
// Rule structure

#[test]
fn duplicate_rule_names_name_the_first_use() {
    let dir = default_file(
        r#"rules:
  - name: limit
    amount: { max: 100 }
    reason: x
  - name: other
    amount: { max: 100 }
    reason: x
  - name: limit
    amount: { min: 1 }
    reason: y
  - name: limit
    amount: { min: 2 }
    reason: z
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                8,
                11,
                r#"duplicate rule name "limit" (first used at line 2)"#
            ),
            dir.at(
                DEFAULT,
                11,
                11,
                r#"duplicate rule name "limit" (first used at line 2)"#
            ),
        ]
    );
}

/// A name written as an alias is placed at the alias, not at its anchor lines above.
#[test]
fn a_duplicate_rule_name_written_as_an_alias_is_placed_at_the_alias() {
    let dir = default_file(
        r#"rules:
  - name: &n limit
    amount: { max: 100 }
    reason: x
  - name: *n
    amount: { min: 1 }
    reason: y
"#,
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            5,
            11,
            r#"duplicate rule name "limit" (first used at line 2)"#
        )]
    );
}

#[test]
fn a_rule_has_exactly_one_check_or_a_guarded_approve() {
    let dir = default_file(
        r#"rules:
  - name: two-checks
    amount: { max: 100 }
    window: { until: "2026-12-03T18:00:00+09:00" }
    reason: x
  - name: no-check
    reason: x
  - name: approve-all
    action: approve
  - name: approve-and-check
    when: 'amount > 1'
    action: approve
    require: 'amount < 5'
  - name: no-reason
    amount: { min: 1 }
  - name: ""
    amount: { min: 1 }
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                4,
                13,
                r#"rule "two-checks": a rule has exactly one check, found amount and window"#
            ),
            dir.at(
                DEFAULT,
                6,
                5,
                r#"rule "no-check": no check, expected one of amount, window, require, healthy, fetch, forward, script (or action: approve with when)"#
            ),
            dir.at(
                DEFAULT,
                9,
                13,
                r#"rule "approve-all": action: approve needs a when guard (otherwise it approves everything)"#
            ),
            dir.at(
                DEFAULT,
                13,
                14,
                r#"rule "approve-and-check": action: approve cannot be combined with a check (require)"#
            ),
            dir.at(DEFAULT, 16, 11, "rule name must not be empty"),
        ]
    );
}

/// A rule's name goes into log lines, metric labels and traces: a line break, a tab, NUL or
/// a direction control in it is an error; Korean and spaces are names like any.
#[test]
fn rule_names_hold_no_control_or_invisible_characters() {
    for (name, code) in [
        (r#""줄\n바꿈""#, "000A"),
        (r#""탭\t""#, "0009"),
        (r#""널\0""#, "0000"),
        (r#""a\u202Eb""#, "202E"),
        (r#""a\u2028b""#, "2028"),
    ] {
        let dir = default_file(&format!(
            "rules:\n  - name: {name}\n    amount: {{ max: 1 }}\n    reason: x\n"
        ));
        let errors = dir.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(":2:11: rule name ")
                && errors[0].contains(&format!(
                    " holds U+{code}, a control or invisible character"
                )),
            "{errors:?}"
        );
    }
    // Visible, however written: combining marks, an emoji's variation selector, a no-break
    // or full-width space.
    for name in [
        "재고 확인 2",
        "cafe\u{301} limit",
        "✔\u{FE0F} 한도",
        "a\u{A0}b",
        "한도\u{3000}초과",
    ] {
        let dir = default_file(&format!(
            "rules:\n  - name: \"{name}\"\n    amount: {{ max: 1 }}\n    reason: x\n"
        ));
        dir.ok();
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[test]
fn expression_errors_point_into_a_quoted_scalar() {
    let dir = default_file(
        r#"rules:
  - name: single
    require: 'amount >= 1000 )'
    reason: x
  - name: double
    when: "amount >> = 1000"
    require: 'true'
    reason: x
  - name: plain
    require: amount >= 1000 &&
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            // `)` is the 16th character of the expression, after the quote at column 14.
            dir.at(
                DEFAULT,
                3,
                30,
                r#"rule "single": require: invalid expression: unexpected ')'"#
            ),
            dir.at(
                DEFAULT,
                6,
                22,
                r#"rule "double": when: invalid expression: unexpected '=': = gives a variable a value; compare with == (order_id == "x")"#
            ),
            // Past the end of the expression: Rhai wanted more.
            dir.at(
                DEFAULT,
                10,
                31,
                r#"rule "plain": require: invalid expression: script is incomplete: a value is missing after its last operator (&&, ||, ==, +), or a bracket or a quote is not closed"#
            ),
        ]
    );
}

/// Keys indented one level off say where they belong: `upstreams:` under `settings:`, an
/// upstream's `health:` at the level of the upstreams' names, a `$VAR` url without braces.
#[test]
fn keys_at_the_wrong_level_say_where_they_belong() {
    let top = r#""upstreams" is a key of the top of the file, not of the one it is indented under: start it at the beginning of its line"#;
    let dir = default_file(
        "settings:\n  deadline: 3s\n  upstreams:\n    shop:\n      url: http://shop.test\nrules:\n  - { name: a, amount: { min: 1 }, reason: x }\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            3,
            &format!(r#"settings: unknown field "upstreams", expected one of "deadline", "on_error", "error_reason", "reject_status"; {top}"#)
        )]
    );
    let dir = default_file(
        "upstreams:\n  shop:\n    url: http://shop.test\n  health: { path: /health }\nrules:\n  - { name: a, amount: { min: 1 }, reason: x }\n",
    );
    let errors = dir.errors();
    assert!(
        errors[0].ends_with(r#"upstreams.health: missing field "url"; "health" is read as the name of an upstream: indent it under the upstream it belongs to"#),
        "{errors:#?}"
    );
    let dir = default_file(
        "upstreams:\n  shop:\n    url: http://shop.test\n  rules:\n    - { name: a, amount: { min: 1 }, reason: x }\n",
    );
    let errors = dir.errors();
    assert!(
        errors.iter().any(|e| e.ends_with(r#"; "rules" is a key of the top of the file, not of the one it is indented under: start it at the beginning of its line"#)),
        "{errors:#?}"
    );
    let dir = default_file(
        "upstreams:\n  shop:\n    url: \"$SHOP_API_URL\"\nrules:\n  - { name: a, amount: { min: 1 }, reason: x }\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            10,
            r#"upstream "shop": url is not an http:// or https:// URL; an environment variable is read only as ${SHOP_API_URL}, not $SHOP_API_URL"#
        )]
    );
}

/// An unquoted expression holding ` #` (a Rhai map literal) is cut there by YAML, which reads
/// the rest as a comment: the error says so.
#[test]
fn an_expression_cut_by_a_yaml_comment_says_to_quote_it() {
    let dir = default_file(
        "rules:\n  - name: banned\n    require: payload.tier != #{ t: 1 }\n    reason: x\n  - name: quoted\n    require: 'payload.tier != #{ t: 1 }'\n    reason: x\n  - name: commented\n    require: order_idd == \"x\"  # a real comment\n    reason: x\n",
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // An error of the expression itself, with a real comment after it: no hint.
    assert!(
        errors[1].ends_with("undefined variable: order_idd; did you mean order_id?"),
        "{}",
        errors[1]
    );
    assert!(
        errors[0].starts_with(&dir.at(DEFAULT, 3, 29, r#"rule "banned": require: invalid expression: "#))
            && errors[0].ends_with(r#" (YAML reads an unquoted value only up to " #", the rest of the line being a comment: put the expression in quotes)"#),
        "{}",
        errors[0]
    );
}

/// `reason: 좌석 #1 매진` shows the buyer `좌석`: a warning says so; a comment written as one
/// (`# 설명`) and a quoted reason are left alone.
#[test]
fn a_reason_cut_by_a_yaml_comment_is_a_warning() {
    let dir = default_file(concat!(
        "settings:\n",
        "  error_reason: 잠시 후 #다시 시도해 주세요\n",
        "rules:\n",
        "  - name: seat\n",
        "    amount: { max: 10 }\n",
        "    reason: 좌석 #1 매진\n",
        "  - name: noted\n",
        "    amount: { max: 20 }\n",
        "    reason: 매진되었습니다  # 구매자에게 보이는 문구\n",
        "  - name: quoted\n",
        "    amount: { max: 30 }\n",
        "    reason: \"좌석 #2 매진\"\n",
    ));
    let cut = |what: &str, rest: &str| {
        format!(
            r#"{what} ends before " #{rest}": YAML reads an unquoted value only up to " #", the rest of the line being a comment; put the whole text in quotes"#
        )
    };
    assert_eq!(
        dir.ok().warnings,
        [
            dir.at(DEFAULT, 2, 17, &cut("error_reason", "다시 시도해 주세요")),
            dir.at(DEFAULT, 6, 13, &cut(r#"rule "seat": reason"#, "1 매진")),
        ]
    );
}

/// A reason of placeholders alone may render blank: a warning says what the buyer would read.
#[test]
fn a_reason_of_placeholders_alone_is_a_warning() {
    let dir = default_file(concat!(
        "settings:\n",
        "  error_reason: \"{store_id}\"\n",
        "upstreams: { shop: { url: \"http://shop.test\" } }\n",
        "rules:\n",
        "  - name: store\n",
        "    fetch: { upstream: shop, path: /a }\n",
        "    reason: \"{store_id} {response.body.x}\"\n",
        "  - name: worded\n",
        "    amount: { max: 20 }\n",
        "    reason: \"{store_id} 매장\"\n",
        "  - name: order\n",
        "    amount: { max: 30 }\n",
        "    reason: \"{order_id}\"\n",
    ));
    let blank = |what: &str| {
        format!(
            r#"{what} has no words of its own, only placeholders that may be empty: then the buyer reads "결제를 진행할 수 없습니다."; add words"#
        )
    };
    assert_eq!(
        dir.ok().warnings,
        [
            dir.at(DEFAULT, 2, 17, &blank("error_reason")),
            dir.at(DEFAULT, 7, 13, &blank(r#"rule "store": reason"#)),
        ]
    );
}

/// A fallback on a placeholder every request fills is dead text, most likely on the wrong
/// field: a warning, not for `{store_id|…}`, which V1 requests lack.
#[test]
fn a_fallback_that_never_shows_is_a_warning() {
    let dir = default_file(
        "settings:\n  error_reason: \"{amount|0}원 결제 실패\"\nrules:\n  - name: a\n    amount: { max: 1 }\n    reason: \"{order_id|없음} 주문, {store_id|온라인} 매장\"\n",
    );
    let dead = |what: &str, name: &str| {
        format!("{what}: {{{name}|…}}'s fallback never shows: every request that reaches the rules has its {name} (one without is refused as a payload); write {{{name}}}")
    };
    assert_eq!(
        dir.ok().warnings,
        [
            dir.at(DEFAULT, 2, 17, &dead("error_reason", "amount")),
            dir.at(DEFAULT, 6, 13, &dead(r#"rule "a": reason"#, "order_id")),
        ]
    );
}

#[test]
fn expression_errors_point_into_a_block_scalar() {
    let dir = default_file(
        r#"rules:
  - name: guarded
    when: |
      amount > 0 &&
        order_id == )
    require: 'true'
    reason: x
  - name: checked
    require: |-
      amount > 0
        && order_idd == "x"
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            // Line 5 is `        order_id == )`: the `)` is in column 21.
            dir.at(
                DEFAULT,
                5,
                21,
                r#"rule "guarded": when: invalid expression: unexpected ')'"#
            ),
            // Line 11 is `        && order_idd == "x"`: the name starts in column 12.
            dir.at(
                DEFAULT,
                11,
                12,
                r#"rule "checked": require: invalid expression: undefined variable: order_idd; did you mean order_id?"#
            ),
        ]
    );
}

#[test]
fn expressions_use_strict_variables() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: typo
    require: 'amount >= 1000 && order_idd == "x"'
    reason: x
  - name: response-outside-fetch
    require: response.status == 200
    reason: x
  - name: response-in-when
    when: 'response.status == 200'
    fetch: { upstream: shop, path: /stock }
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                6,
                33,
                r#"rule "typo": require: invalid expression: undefined variable: order_idd; did you mean order_id?"#
            ),
            dir.at(
                DEFAULT,
                9,
                14,
                r#"rule "response-outside-fetch": require: invalid expression: undefined variable: response: response is the answer of a fetch rule's own call, seen only in that rule's require; elsewhere read the answer of a fetch rule before this one as fetched["rule-name"] (fetched["stock"].status, fetched["stock"].body)"#
            ),
            dir.at(
                DEFAULT,
                12,
                12,
                r#"rule "response-in-when": when: invalid expression: undefined variable: response: response is the answer of a fetch rule's own call, seen only in that rule's require; elsewhere read the answer of a fetch rule before this one as fetched["rule-name"] (fetched["stock"].status, fetched["stock"].body)"#
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Reason templates

#[test]
fn reason_placeholders_are_checked() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: typo
    amount: { max: 10 }
    reason: "요청 {amount}원, 주문 {orderid}"
  - name: not-fetch
    amount: { max: 10 }
    reason: "남은 수량 {response.body.left}"
  - name: fetch-typo
    fetch: { upstream: shop, path: "/stock/{order_id}" }
    reason: "{respons.body.left}"
  - name: unclosed
    amount: { max: 10 }
    reason: "{amount"
  - name: fetch-ok
    fetch: { upstream: shop, path: "/stock/{order_id}" }
    reason: "남은 수량 {response.body.left}개 ({order_id})"
"#,
    );
    let request_vars = "{order_id}, {tx_id}, {amount}, {store_id}";
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                7,
                31,
                &format!(
                    r#"rule "typo": reason: unknown placeholder {{orderid}} (did you mean {{order_id}}?), expected one of {request_vars}"#
                )
            ),
            dir.at(
                DEFAULT,
                10,
                20,
                &format!(
                    r#"rule "not-fetch": reason: placeholder {{response.body.left}} reads a fetch's answer, which only a fetch rule's reason has; expected one of {request_vars}"#
                )
            ),
            dir.at(
                DEFAULT,
                13,
                14,
                &format!(
                    r#"rule "fetch-typo": reason: unknown placeholder {{respons.body.left}}, expected one of {request_vars}, {{response.body.<field>}}"#
                )
            ),
            dir.at(
                DEFAULT,
                16,
                14,
                r#"rule "unclosed": reason: unclosed "{" (write "{{" for a literal brace)"#
            ),
        ]
    );
}

#[test]
fn response_body_placeholder_loads_in_fetch_rules() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: stock
    fetch: { upstream: shop, path: "/stock/{order_id}" }
    reason: "남은 수량 {response.body.stock.left}개"
"#,
    );
    let rules = dir.ok();
    let rule = &rules.get("default").unwrap().rules[0];
    assert_eq!(
        rule.reason,
        Template::parse(
            "남은 수량 {response.body.stock.left}개",
            Scope::WithResponse
        )
        .unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// Many errors at once

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let dir = default_file(
        r#"settings:
  deadline: 0s
  reject_status: 200
upstreams:
  shop:
    url: ftp://shop.test
rules:
  - name: a
    amount: { min: 10, max: 1 }
    reason: x
  - name: b
    require: 'amount >'
    reason: "{nope}"
  - name: a
    healthy: shop
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 13, r#"duration "0s" must be greater than zero"#),
            dir.at(
                DEFAULT,
                3,
                18,
                "reject_status 200 is not a refusal, expected a 4xx or 5xx status"
            ),
            dir.at(
                DEFAULT,
                6,
                10,
                r#"upstream "shop": url is not an http:// or https:// URL; its scheme "ftp" is neither http nor https"#
            ),
            dir.at(
                DEFAULT,
                9,
                20,
                r#"rule "a": amount.min 10 is above amount.max 1"#
            ),
            dir.at(
                DEFAULT,
                12,
                23,
                r#"rule "b": require: invalid expression: script is incomplete: a value is missing after its last operator (&&, ||, ==, +), or a bracket or a quote is not closed"#
            ),
            dir.at(
                DEFAULT,
                13,
                14,
                r#"rule "b": reason: unknown placeholder {nope}, expected one of {order_id}, {tx_id}, {amount}, {store_id}"#
            ),
            dir.at(
                DEFAULT,
                14,
                11,
                r#"duplicate rule name "a" (first used at line 8)"#
            ),
            // `shop` exists but is broken: its own error above is enough.
        ]
    );
}

/// serde_yaml reads an integer beyond 64 bits as a 128-bit one; the document checks must take
/// it like any number, so the bound gets its own message and the file's other errors still come.
#[test]
fn an_integer_beyond_64_bits_is_an_amount_error_not_the_end_of_the_file() {
    let dir = default_file(
        r#"rules:
  - name: a
    amount: { min: 100000000000000000000000000000000 }
    reason: x
  - name: b
    amount: { max: 5, bogus: 1 }
    reason: y
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                3,
                20,
                r#"rule "a": amount.min: more digits than an amount can have (at most 28 after the point, and below 79,228,162,514,264,337,593,543,950,335), found 100000000000000000000000000000000"#
            ),
            dir.at(
                DEFAULT,
                6,
                23,
                r#"rules[1].amount (rule "b"): unknown field "bogus", expected "min" or "max""#
            ),
        ]
    );
}

/// SPEC §4 asks for no reason: a rule without one loads and refuses with the default reason,
/// with a warning, since its buyers are told nothing of why.
#[test]
fn a_refusing_rule_without_a_reason_loads_with_a_warning() {
    let dir = default_file(
        "rules:\n  - name: limit\n    amount: { max: 100 }\n  - name: vip\n    script: scripts/vip.rhai\n  - name: qa\n    when: 'order_id == \"qa\"'\n    action: approve\n",
    );
    dir.write("scripts/vip.rhai", "amount < 50");
    let rules = dir.ok();
    assert_eq!(
        rules.get("default").unwrap().rules[0].reason,
        Template::literal(DEFAULT_REASON)
    );
    // Only the rule whose refusals have no text of their own: a script can give its reason,
    // an approval refuses no one.
    assert_eq!(
        rules.warnings,
        [dir.at(
            DEFAULT,
            2,
            5,
            "rule \"limit\": no reason: a buyer this rule refuses reads \"결제를 진행할 수 없습니다.\"; write one that says why (reason: \"…\")"
        )]
    );
}

#[test]
fn errors_of_every_file_are_reported_together() {
    let dir = RulesDir::new();
    dir.write(
        "a.yaml",
        "rules:\n  - name: x\n    amount: { min: 1, most: 2 }\n    reason: r\n",
    )
    .write("b.yaml", "rules:\n  - name: y\n    bogus: 1\n")
    .write(
        "c.yaml",
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n  - name: z\n    require: 'amount > '\n    reason: r\n",
    )
    .write("scripts/vip.rhai", "let x = );\n")
    .write(DEFAULT, ONE_RULE);
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "a.yaml",
                3,
                23,
                r#"rules[0].amount (rule "x"): unknown field "most", expected "min" or "max""#
            ),
            dir.at(
                "b.yaml",
                3,
                5,
                r#"rules[0] (rule "y"): unknown field "bogus", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#
            ),
            dir.at(
                "scripts/vip.rhai",
                1,
                9,
                r#"unexpected ')' (script of rule "vip" in c.yaml)"#
            ),
            dir.at(
                "c.yaml",
                5,
                24,
                r#"rule "z": require: invalid expression: script is incomplete: a value is missing after its last operator (&&, ||, ==, +), or a bracket or a quote is not closed"#
            ),
        ]
    );
}

#[test]
fn payload_is_built_only_for_rulesets_that_read_it() {
    assert!(mentions_payload("payload.custom_data.tier == \"vip\""));
    assert!(mentions_payload("let p = payload;\np.x"));
    assert!(!mentions_payload(
        "order_id == \"payloads\" || \"no_payload\" == tx_id"
    ));
    let dir = RulesDir::new();
    dir.write(
        DEFAULT,
        "rules:\n  - name: a\n    require: 'amount > 1'\n    reason: x\n",
    )
    .write(
        "vip.yaml",
        "rules:\n  - name: a\n    require: 'payload.tier == \"vip\"'\n    reason: x\n",
    )
    // Read only in a script: the ruleset's own file never names it.
    .write(
        "scripted.yaml",
        "rules:\n  - name: a\n    script: tier.rhai\n",
    )
    .write("tier.rhai", "payload.tier == \"vip\"\n");
    let rules = dir.ok();
    assert!(!rules.get("default").unwrap().uses_payload);
    assert!(rules.get("vip").unwrap().uses_payload);
    assert!(rules.get("scripted").unwrap().uses_payload);
}

/// An approve rule never refuses, so a reason on it is never shown: probably meant elsewhere.
#[test]
fn a_reason_on_an_approve_rule_is_warned_about() {
    let dir = default_file(
        "rules:\n  - name: qa\n    when: 'order_id.starts_with(\"qa-\")'\n    action: approve\n    reason: QA 주문입니다\n  - name: limit\n    amount: { max: 100 }\n    reason: x\n",
    );
    let rules = dir.ok();
    assert_eq!(
        rules.warnings,
        [dir.at(
            DEFAULT,
            5,
            13,
            "rule \"qa\": reason is never shown: an action: approve rule does not refuse"
        )]
    );
}

/// `{min}` and `{max}` in an amount rule's reason are its bounds, written in at load (a trial's
/// reason named a limit the rule no longer had); elsewhere they are errors.
#[test]
fn an_amount_rules_reason_shows_its_own_bounds() {
    let dir = default_file(
        "rules:\n  - name: cap\n    amount: { min: 1000, max: 660000 }\n    reason: \"한도 {max:,}원, 최소 {min}원 (요청 {amount:,}원)\"\n",
    );
    let rules = dir.ok();
    assert_eq!(
        rules.get("default").unwrap().rules[0].reason.to_string(),
        "한도 660,000원, 최소 1000원 (요청 {amount:,}원)"
    );
    // A reason of a bound alone is never blank: no warning (a review's `check --strict` failed).
    let dir = default_file(
        "rules:\n  - name: cap\n    amount: { min: 1000, max: 2000000 }\n    reason: \"{max:,}\"\n",
    );
    let rules = dir.ok();
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);
    let dir = default_file(
        "settings: { error_reason: \"오류 {min}\" }\nrules:\n  - name: cap\n    amount: { min: 1000 }\n    reason: \"한도 {max}원\"\n  - name: id\n    require: 'order_id != \"\"'\n    reason: \"한도 {min}원\"\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 1, 27, "error_reason: placeholder {min} is an amount rule's bound, which only that rule's reason shows"),
            dir.at(DEFAULT, 5, 13, "rule \"cap\": reason: placeholder {max} reads the rule's amount max, which it does not set"),
            dir.at(DEFAULT, 8, 13, "rule \"id\": reason: placeholder {min} is an amount rule's bound, and this rule has no amount check"),
        ]
    );
}

/// `{from}` and `{until}` in a window rule's reason are its bounds, written in Korean time at
/// load (a trial's reason named the sale hours from before an edit of the window); elsewhere,
/// one the window does not set, or with `:,`, they are errors.
#[test]
fn a_window_rules_reason_shows_its_own_bounds_in_korean_time() {
    let dir = default_file(
        "rules:\n  - name: sale\n    window: { from: \"2026-12-20T20:00:00+09:00\", until: \"2026-12-20T23:59:30+09:00\" }\n    reason: \"선예매 기간({from}~{until})이 아닙니다\"\n",
    );
    let rules = dir.ok();
    assert_eq!(
        rules.get("default").unwrap().rules[0].reason.to_string(),
        "선예매 기간(2026-12-20 20:00~2026-12-20 23:59:30)이 아닙니다"
    );
    assert!(rules.warnings.is_empty(), "{:?}", rules.warnings);
    // Another offset is shown in Korean time; a bound between seconds to the millisecond (a
    // buyer must not read a start already past); one not set, by its fallback.
    let dir = default_file(
        "rules:\n  - name: sale\n    window: { from: \"2026-12-20T11:00:30Z\" }\n    reason: \"{from}부터, {until|마감 없음}\"\n  - name: late\n    window: { from: \"2026-12-20T20:00:00.5+09:00\" }\n    reason: \"{from}부터\"\n",
    );
    let rules = dir.ok();
    let reasons: Vec<String> = rules
        .get("default")
        .unwrap()
        .rules
        .iter()
        .map(|r| r.reason.to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "2026-12-20 20:00:30부터, 마감 없음",
            "2026-12-20 20:00:00.500부터"
        ]
    );
    let dir = default_file(
        "settings: { error_reason: \"오류 {until}\" }\nrules:\n  - name: sale\n    window: { from: \"2026-12-20T20:00:00+09:00\" }\n    reason: \"{from:,}부터, {until}까지\"\n  - name: cap\n    amount: { max: 5 }\n    reason: \"{from} 이후\"\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 1, 27, "error_reason: placeholder {until} is a window rule's bound, which only that rule's reason shows"),
            dir.at(DEFAULT, 5, 14, "rule \"sale\": reason: placeholder {from:,}: thousands separators are for numbers a buyer reads, not for a time; write {from} (separators go on {amount:,}, {max:,} or an answer's number in a reason)"),
            dir.at(DEFAULT, 8, 13, "rule \"cap\": reason: placeholder {from} is a window rule's bound, and this rule has no window check"),
        ]
    );
    let dir = default_file(
        "rules:\n  - name: sale\n    window: { from: \"2026-12-20T20:00:00+09:00\" }\n    reason: \"{until}까지\"\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(DEFAULT, 4, 13, "rule \"sale\": reason: placeholder {until} reads the rule's window until, which it does not set")]
    );
}

/// What an earlier rule's `require` must start with to guard a payload field for the rules
/// after it: `"K" in payload`, alone or joined by `&&`; anything that lets a payment without
/// K pass guards nothing.
#[test]
fn a_require_guards_the_fields_it_starts_by_requiring() {
    let fields = |src: &str| super::super::fields_required(src);
    assert_eq!(fields(r#""custom_data" in payload"#), ["custom_data"]);
    assert_eq!(
        fields(r#" "a" in payload && 'b' in payload && amount > 1 && "c" in payload"#),
        ["a", "b"]
    );
    for none in [
        r#"!("a" in payload) || payload.a.ok"#,
        r#""a" in payload || amount > 1"#,
        r#""a" in payload && amount > 1 || order_id == "x""#,
        r#"amount > 1 && "a" in payload"#,
        r#"a in payload"#,
        r#""a" in payload_copy"#,
    ] {
        assert!(fields(none).is_empty(), "{none}");
    }
}
