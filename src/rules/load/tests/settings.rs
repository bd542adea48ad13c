//! Valid files, shape errors, settings, durations and windows.

use super::*;

// ---------------------------------------------------------------------------------------------
// Valid files

#[test]
fn valid_file_with_every_local_check_loads() {
    let dir = default_file(
        r#"# A ruleset using every check that needs nothing outside the file.
settings:
  deadline: 2500ms
  on_error: approve
  error_reason: "잠시 후 다시 시도해 주세요"
  reject_status: 422

rules:
  - name: amount-range
    amount: { min: 1000, max: 3000000 }
    reason: "결제 가능 금액은 1,000원 이상 3,000,000원 이하입니다 (요청: {amount}원)"

  - name: fractional-minimum
    amount: { min: 10.5 }
    reason: too small

  - name: marathon-window
    when: 'order_id.starts_with("marathon-")'
    window: { from: "2026-12-01T10:00:00+09:00", until: "2026-12-03T18:00:00+09:00" }
    reason: "접수 기간이 아닙니다"

  - name: no-blocked-orders
    require: '!order_id.starts_with("blocked-") && fetched.len() == 0 && now > 0'
    on_error: reject
    reason: "주문 {order_id} ({tx_id}, {store_id}) {{불가}}"

  - name: qa-orders
    when: 'order_id.starts_with("qa-")'
    action: approve

  - name: lower-limit-trial
    amount: { max: 1000000 }
    mode: shadow
    reason: "…"

  - name: parked
    require: |
      amount > 0
        && api == "v2-2024-04-25"
    mode: off
    reason: parked
"#,
    );
    let rules = dir.ok();
    assert_eq!(rules.warnings, Vec::<String>::new());
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(rules.version, dir.version());
    let set = rules.get("default").unwrap();
    assert_eq!(set.name, "default");
    assert_eq!(set.file, dir.path().join(DEFAULT));
    assert!(set.upstreams.is_empty());

    assert_eq!(set.settings.deadline, Duration::from_millis(2500));
    assert_eq!(set.settings.on_error, OnError::Approve);
    assert_eq!(
        set.settings.error_reason,
        Template::literal("잠시 후 다시 시도해 주세요")
    );
    assert_eq!(set.settings.reject_status, 422);

    let summary: Vec<_> = set
        .rules
        .iter()
        .map(|r| (&*r.name, r.check.kind(), r.mode, r.on_error))
        .collect();
    assert_eq!(
        summary,
        [
            ("amount-range", "amount", Mode::Enforce, None),
            ("fractional-minimum", "amount", Mode::Enforce, None),
            ("marathon-window", "window", Mode::Enforce, None),
            (
                "no-blocked-orders",
                "require",
                Mode::Enforce,
                Some(OnError::Reject)
            ),
            ("qa-orders", "approve", Mode::Enforce, None),
            ("lower-limit-trial", "amount", Mode::Shadow, None),
            ("parked", "require", Mode::Off, None),
        ]
    );

    let r = &set.rules;
    assert!(matches!(
        r[0].check,
        Check::Amount { min: Some(lo), max: Some(hi) }
            if lo == Decimal::from(1000) && hi == Decimal::from(3_000_000)
    ));
    assert!(matches!(
        r[1].check,
        Check::Amount { min: Some(lo), max: None } if lo == Decimal::new(105, 1)
    ));
    assert!(matches!(
        r[2].check,
        Check::Window { from: Some(f), until: Some(u) }
            if f == time("2026-12-01T10:00:00+09:00") && u == time("2026-12-03T18:00:00+09:00")
    ));
    assert!(matches!(
        r[5].check,
        Check::Amount { min: None, max: Some(hi) } if hi == Decimal::from(1_000_000)
    ));
    match &r[6].check {
        Check::Require(e) => assert_eq!(e.src, "amount > 0\n  && api == \"v2-2024-04-25\"\n"),
        other => panic!("expected a require check, got {other:?}"),
    }

    assert_eq!(
        r[2].when.as_ref().map(|w| w.src.as_str()),
        Some(r#"order_id.starts_with("marathon-")"#)
    );
    assert!(r[0].when.is_none());
    assert!(r[4].when.is_some());

    assert_eq!(
        r[0].reason,
        reason("결제 가능 금액은 1,000원 이상 3,000,000원 이하입니다 (요청: {amount}원)")
    );
    assert!(r[0].reason.has_placeholders());
    assert_eq!(
        r[3].reason,
        reason("주문 {order_id} ({tx_id}, {store_id}) {{불가}}")
    );
    assert_eq!(r[5].reason, Template::literal("…"));
    assert!(!r[5].reason.has_placeholders());
    // An approve rule never refuses, so it needs no reason of its own.
    assert_eq!(r[4].reason, Template::literal(DEFAULT_REASON));
}

#[test]
fn settings_have_documented_defaults() {
    let dir =
        default_file("rules:\n  - name: limit\n    amount: { max: 100 }\n    reason: too much\n");
    let rules = dir.ok();
    let settings = &rules.get("default").unwrap().settings;
    assert_eq!(settings.deadline, Duration::from_secs(4));
    assert_eq!(settings.deadline, DEFAULT_DEADLINE);
    assert_eq!(settings.on_error, OnError::Reject);
    assert_eq!(settings.reject_status, 409);
    assert_eq!(
        settings.error_reason,
        Template::literal("일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.")
    );
    assert_eq!(
        settings.error_reason,
        Template::literal(DEFAULT_ERROR_REASON)
    );
    let rule = &rules.get("default").unwrap().rules[0];
    assert_eq!((rule.mode, rule.on_error), (Mode::Enforce, None));
}

// ---------------------------------------------------------------------------------------------
// Shape: unknown keys and wrong types (each file here has one; see `shape` for many)

#[test]
fn unknown_keys_are_errors_at_the_key() {
    let cases = [
        (
            "setings: {}\n",
            (1, 1),
            r#"unknown field "setings", expected one of "settings", "upstreams", "rules"; did you mean "settings"?"#,
        ),
        (
            &format!("settings:\n  deadline: 4s\n  deadlin: 4s\n{ONE_RULE}"),
            (3, 3),
            r#"settings: unknown field "deadlin", expected one of "deadline", "on_error", "error_reason", "reject_status"; did you mean "deadline"?"#,
        ),
        (
            "rules:\n  - name: a\n    amout: { min: 1 }\n    reason: x\n",
            (3, 5),
            r#"rules[0] (rule "a"): unknown field "amout", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script"; did you mean "amount"?"#,
        ),
        (
            "rules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n  - name: b\n    amount: { mx: 1 }\n    reason: x\n",
            (6, 15),
            r#"rules[1].amount (rule "b"): unknown field "mx", expected "min" or "max"; did you mean "max"?"#,
        ),
    ];
    for (yaml, (line, col), message) in cases {
        let dir = default_file(yaml);
        assert_eq!(
            dir.errors(),
            [dir.at(DEFAULT, line, col, message)],
            "{yaml}"
        );
    }
}

#[test]
fn wrong_types_are_errors_at_the_value() {
    let cases = [
        (
            "rules:\n  - name: a\n    amount: { min: \"abc\" }\n    reason: x\n",
            (3, 20),
            r#"rules[0].amount.min (rule "a"): invalid type: string "abc", expected a number"#,
        ),
        (
            &format!("settings:\n  reject_status: x\n{ONE_RULE}"),
            (2, 18),
            r#"settings.reject_status: invalid type: string "x", expected an HTTP status code (a number such as 409)"#,
        ),
        (
            "rules: { amount-range: { min: 1 } }\n",
            (1, 8),
            r#"rules: invalid type: map, expected a list of rules, each starting with "- " (- name: …)"#,
        ),
        (
            &format!("settings:\n  on_error: maybe\n{ONE_RULE}"),
            (2, 13),
            r#"settings.on_error: invalid value "maybe", expected "reject" or "approve""#,
        ),
        (
            "rules:\n  - name: a\n    mode: shdow\n    require: 'true'\n    reason: x\n",
            (3, 11),
            r#"rules[0].mode (rule "a"): invalid value "shdow", expected one of "enforce", "shadow", "off"; did you mean "shadow"?"#,
        ),
        (
            "rules:\n  - name: a\n    when: 'true'\n    action: deny\n",
            (4, 13),
            r#"rules[0].action (rule "a"): invalid value "deny", expected "approve""#,
        ),
        // A trial: `GTE` was pointed to `get`, where the set has `GET` too.
        (
            "upstreams:\n  shop: { url: \"http://x.invalid\" }\nrules:\n  - name: a\n    fetch: { upstream: shop, method: GTE, path: /x }\n    reason: x\n",
            (5, 38),
            r#"rules[0].fetch.method (rule "a"): invalid value "GTE", expected one of "GET", "get", "POST", "post", "PUT", "put"; did you mean "GET"?"#,
        ),
        // Empty: no suggestion (the empty name's quotes had it suggest "").
        (
            "rules:\n  - name: a\n    mode: ''\n    require: 'true'\n    reason: x\n",
            (3, 11),
            r#"rules[0].mode (rule "a"): invalid value "", expected one of "enforce", "shadow", "off""#,
        ),
    ];
    for (yaml, (line, col), message) in cases {
        let dir = default_file(yaml);
        assert_eq!(
            dir.errors(),
            [dir.at(DEFAULT, line, col, message)],
            "{yaml}"
        );
    }
}

/// `error_reason` is a template like every reason: request placeholders, `{{` for a brace, and
/// a placeholder it cannot fill (no check's response is known when it is used) is an error.
#[test]
fn error_reason_is_a_template_of_the_request() {
    let dir = default_file(&format!(
        "settings:\n  error_reason: \"주문 {{order_id}} 처리 중 오류 {{{{잠시 후}}}}\"\n{ONE_RULE}"
    ));
    let rules = dir.ok();
    let req =
        crate::payload::parse(None, br#"{"imp_uid":"i","merchant_uid":"o-7","amount":5}"#).unwrap();
    let crate::payload::Parsed::Confirm(req) = req else {
        panic!()
    };
    let reason = &rules.get("default").unwrap().settings.error_reason;
    assert_eq!(reason.render(&req, None), "주문 o-7 처리 중 오류 {잠시 후}");

    // Each error points at the placeholder it is about (its text starts at column 18).
    for (text, message) in [
        ("오류 {nope}", "error_reason: unknown placeholder"),
        (
            "오류 {response.body.x}",
            "error_reason: placeholder {response.body.x} reads a fetch's answer, which only a fetch rule's reason has",
        ),
        ("오류 {", "error_reason: unclosed \"{\""),
    ] {
        let dir = default_file(&format!(
            "settings:\n  error_reason: \"{text}\"\n{ONE_RULE}"
        ));
        let errors = dir.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(&dir.at(DEFAULT, 2, 21, message)),
            "{text}: {errors:?}"
        );
    }
    // `${order_id}` would show the buyer a `$`; before `{amount}` it may be a dollar price.
    let dir = default_file(&format!(
        "settings:\n  error_reason: \"주문 ${{order_id}} 오류\"\n{ONE_RULE}"
    ));
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            2,
            21,
            r#"error_reason: "${order_id}" would show the buyer a "$" before the value; placeholders are written without it: {order_id}"#
        )]
    );
    default_file(&format!(
        "settings:\n  error_reason: \"${{amount}} 결제 오류\"\n{ONE_RULE}"
    ))
    .ok();
    // Full-width braces from a Korean input method are no placeholder: an error at them; around
    // words that are no placeholder they are text like any.
    let dir = default_file(&format!(
        "settings:\n  error_reason: \"주문 ｛order_id｝ 오류\"\n{ONE_RULE}"
    ));
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            2,
            21,
            "error_reason: \"｛order_id｝\" has full-width braces, which are no placeholder (the buyer would read them as typed): type the ASCII ones, {order_id}"
        )]
    );
    default_file(&format!(
        "settings:\n  error_reason: \"｛공지｝ 결제 오류\"\n{ONE_RULE}"
    ))
    .ok();
    // Each pair is looked at, not only the first.
    let dir = default_file(&format!(
        "settings:\n  error_reason: \"｛공지｝ ｛order_id｝ 오류\"\n{ONE_RULE}"
    ));
    assert_eq!(dir.errors().len(), 1, "{:?}", dir.errors());
    // A trial's reason damaged by an encoding conversion loaded, for buyers to read "��"; a
    // rule's reason as the error_reason, at the first mark.
    let dir = default_file(
        "rules:\n  - name: window\n    amount: { max: 10 }\n    reason: \"접수 기간이 \u{FFFD}\u{FFFD}니다\"\n",
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            4,
            21,
            "rule \"window\": reason: holds U+FFFD (\u{FFFD}), the mark of text that was not in the encoding it was read as (EUC-KR read as UTF-8): the buyer would read the marks; retype the text"
        )]
    );
}

#[test]
fn bad_settings_values() {
    let dir = default_file(&format!(
        "settings:\n  error_reason: \"  \"\n  reject_status: 200\n{ONE_RULE}"
    ));
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 17, "error_reason must not be empty (it is what the buyer sees when a check cannot complete; spaces, controls and invisible characters show nothing)"),
            dir.at(
                DEFAULT,
                3,
                18,
                "reject_status 200 is not a refusal, expected a 4xx or 5xx status"
            ),
        ]
    );
}

#[test]
fn bad_amount_bounds() {
    let dir = default_file(
        r#"rules:
  - name: negative
    amount: { min: -5 }
    reason: x
  - name: reversed
    amount: { min: 500, max: 100 }
    reason: x
  - name: empty
    amount: {}
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                3,
                20,
                r#"rule "negative": amount.min: expected a number of 0 or more, found -5"#
            ),
            dir.at(
                DEFAULT,
                6,
                20,
                r#"rule "reversed": amount.min 500 is above amount.max 100"#
            ),
            dir.at(
                DEFAULT,
                9,
                13,
                r#"rule "empty": amount needs min, max or both"#
            ),
        ]
    );
}

/// Both bounds are inclusive, so equal bounds are one exact amount: a rule that lets only
/// that amount through, not an empty range.
#[test]
fn equal_amount_bounds_are_one_exact_amount() {
    let dir = default_file(
        r#"rules:
  - name: exact
    amount: { min: 1000, max: 1000.0 }
    reason: x
"#,
    );
    let rules = dir.ok();
    assert!(matches!(
        rules.get("default").unwrap().rules[0].check,
        Check::Amount { min: Some(lo), max: Some(hi) }
            if lo == Decimal::from(1000) && hi == Decimal::from(1000)
    ));
}

// ---------------------------------------------------------------------------------------------
// Durations

#[test]
fn parse_duration_accepts_the_documented_forms() {
    for (text, want) in [
        ("500ms", Duration::from_millis(500)),
        ("1.5s", Duration::from_millis(1500)),
        ("4s", Duration::from_secs(4)),
        ("1m", Duration::from_secs(60)),
        ("1h", Duration::from_secs(3600)),
        ("0.5ms", Duration::from_micros(500)),
        (" 2s ", Duration::from_secs(2)),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text:?}");
    }
}

#[test]
fn parse_duration_rejects_other_forms() {
    let expected = |s: &str| {
        format!("invalid duration \"{s}\", expected a number and a unit like 500ms, 1.5s, 4s or 1m")
    };
    for text in [
        "4 sec", "-s", "--1s", "-", "s", "", "1.5.2s", "4S", "4d", "1e3ms",
    ] {
        assert_eq!(parse_duration(text), Err(expected(text)), "{text:?}");
    }
    // Dashes by the hundred thousand: refused at once, no recursion per dash (a review's
    // overflowed the stack of a reload).
    let dashes = format!("{}1s", "-".repeat(100_000));
    assert_eq!(parse_duration(&dashes), Err(expected(&dashes)));
    // A number and a unit that still make no duration: what is wrong with each.
    let wide = "is a full-width character, which YAML and the proxy read as another letter than the one it looks like";
    for (text, error) in [
        ("-1s", r#"duration "-1s" must be greater than zero"#.to_owned()),
        ("-0.5ms", r#"duration "-0.5ms" must be greater than zero"#.to_owned()),
        ("-0s", r#"duration "-0s" must be greater than zero"#.to_owned()),
        ("３s", format!("{}: \"３\" {wide}; type 3s", expected("３s"))),
        // A review's: the unit typed full-width too.
        ("１．５ｓ", format!("{}: \"１\" {wide}; type 1.5s", expected("１．５ｓ"))),
        (
            "３ 초",
            format!(
                "{}: \"３\" {wide}; typed in ASCII it reads \"3 초\", which is no duration either: {}; write 3s",
                expected("３ 초"),
                expected("3 초")
            ),
        ),
    ] {
        assert_eq!(parse_duration(text), Err(error), "{text:?}");
    }
    // A number alone: the units it may have meant that make a duration.
    for (text, write) in [
        ("4", "4s or 4ms"),
        ("1.5", "1.5s or 1.5ms"),
        ("100000", "100000ms"),
    ] {
        assert_eq!(
            parse_duration(text),
            Err(format!(
                "{}; a number alone has no unit: write {write}",
                expected(text)
            )),
            "{text:?}"
        );
    }
    assert_eq!(parse_duration("0"), Err(expected("0")));
    for text in ["25h", "99999999999999s", "1441m"] {
        assert_eq!(
            parse_duration(text),
            Err(format!("duration \"{text}\" is too long (at most 24h)")),
            "{text:?}"
        );
    }
    // Korean units: what to write instead.
    for (text, write) in [
        ("3초", "3s"),
        ("1.5 초", "1.5s"),
        ("500밀리초", "500ms"),
        ("2분", "2m"),
    ] {
        assert_eq!(
            parse_duration(text),
            Err(format!("{}; write {write}", expected(text))),
            "{text:?}"
        );
    }
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    for text in ["0s", "0ms", "0.0000001s"] {
        assert_eq!(
            parse_duration(text),
            Err(format!("duration \"{text}\" must be greater than zero")),
            "{text:?}"
        );
    }
}

#[test]
fn bad_durations_are_errors_at_the_value() {
    let dir = default_file(
        r#"settings:
  deadline: 4 sec
upstreams:
  a:
    url: http://a.test
    timeout: 0s
  b:
    url: http://b.test
    health: { path: /health, interval: -1s }
rules:
  - name: limit
    amount: { max: 100 }
    reason: too much
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                2,
                13,
                r#"invalid duration "4 sec", expected a number and a unit like 500ms, 1.5s, 4s or 1m"#
            ),
            dir.at(DEFAULT, 6, 14, r#"duration "0s" must be greater than zero"#),
            dir.at(
                DEFAULT,
                9,
                40,
                r#"duration "-1s" must be greater than zero"#
            ),
        ]
    );
}

#[test]
fn deadline_over_five_seconds_loads_with_a_warning() {
    let dir = RulesDir::new();
    dir.write(
        "shop.yaml",
        &format!("settings:\n  deadline: 6s\n{ONE_RULE}"),
    )
    .write(
        "edge.yaml",
        &format!("settings:\n  deadline: 5s\n{ONE_RULE}"),
    );
    let rules = dir.ok();
    assert_eq!(
        rules.get("shop").unwrap().settings.deadline,
        Duration::from_secs(6)
    );
    assert_eq!(
        rules.get("edge").unwrap().settings.deadline,
        Duration::from_secs(5)
    );
    assert_eq!(
        rules.warnings,
        [dir.at(
            "shop.yaml",
            2,
            13,
            "settings.deadline 6s is over 5s: PortOne may stop waiting first and count the payment as refused"
        )]
    );
}

/// `3ms` for `3s` loads, and ends every upstream call in on_error: warned about.
#[test]
fn a_very_short_deadline_loads_with_a_warning() {
    let dir = default_file(&format!("settings:\n  deadline: 3ms\n{ONE_RULE}"));
    dir.write(
        "edge.yaml",
        &format!("settings:\n  deadline: 100ms\n{ONE_RULE}"),
    );
    assert_eq!(
        dir.ok().warnings,
        [dir.at(
            DEFAULT,
            2,
            13,
            "settings.deadline 3ms is very short: an upstream call or a busy moment ends in on_error (PortOne waits 5-10 s; was a unit of seconds meant?)"
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Windows

#[test]
fn bad_window_timestamps() {
    let dir = default_file(
        r#"rules:
  - name: bad-from
    window: { from: "2026-12-01 10:00", until: "2026-12-03T18:00:00+09:00" }
    reason: x
  - name: bad-until
    window:
      until: 2026-12-03T18:00:00
    reason: x
  - name: empty
    window: {}
    reason: x
  - name: both-bad
    window: { from: "2026-12-31T23:59:60Z", until: "2026-02-30T10:00:00+09:00" }
    reason: x
"#,
    );
    let expected = "expected RFC 3339 like 2026-12-01T10:00:00+09:00";
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                3,
                21,
                &format!(
                    r#"rule "bad-from": window.from: invalid timestamp "2026-12-01 10:00", {expected}; it has no seconds and no UTC offset: add both, :00 and +09:00 for Korean time (2026-12-01T10:00:00+09:00)"#
                )
            ),
            dir.at(
                DEFAULT,
                7,
                14,
                &format!(
                    r#"rule "bad-until": window.until: invalid timestamp "2026-12-03T18:00:00", {expected}; it has no UTC offset: add one, +09:00 for Korean time (2026-12-03T18:00:00+09:00)"#
                )
            ),
            dir.at(
                DEFAULT,
                10,
                13,
                r#"rule "empty": window needs from, until or both"#
            ),
            // Both of one window's errors, not only the first.
            dir.at(
                DEFAULT,
                13,
                21,
                &format!(
                    r#"rule "both-bad": window.from: invalid timestamp "2026-12-31T23:59:60Z", {expected}; it has second 60 (a leap second), which the clocks here do not count: write :59, or :00 of the next minute"#
                )
            ),
            dir.at(
                DEFAULT,
                13,
                52,
                &format!(
                    r#"rule "both-bad": window.until: invalid timestamp "2026-02-30T10:00:00+09:00", {expected}; a part of it is out of range: months 01-12, a day the month has, hours 00-23, minutes and seconds 00-59, an offset from -23:59 to +23:59 (+09:00 for Korean time)"#
                )
            ),
        ]
    );
}

/// A date alone is the start of that day: right for `from`, a day short for `until`, which is
/// exclusive, so its hint gives the next day's start.
#[test]
fn a_date_alone_as_until_is_put_right_as_the_next_days_start() {
    let dir = default_file(
        "rules:\n  - name: sale\n    window: { from: \"2026-12-20\", until: \"2026-12-31\" }\n    reason: x\n",
    );
    let errors = dir.errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].ends_with("window.from: invalid timestamp \"2026-12-20\", expected RFC 3339 like 2026-12-01T10:00:00+09:00; a date alone: add the time and the offset (2026-12-20T00:00:00+09:00)"),
        "{errors:#?}"
    );
    assert!(
        errors[1].ends_with("window.until: invalid timestamp \"2026-12-31\", expected RFC 3339 like 2026-12-01T10:00:00+09:00; a date alone: add the time and the offset; until is exclusive, so to include all of 2026-12-31 write the next day's start (2027-01-01T00:00:00+09:00)"),
        "{errors:#?}"
    );
}

/// The near misses of RFC 3339 an operator writes are named; a time that is nothing like one
/// gets no guess.
#[test]
fn a_near_miss_of_rfc_3339_says_what_is_missing() {
    use crate::rules::time_slip;
    // The time put right is the operator's own, never an example date they might copy.
    for (written, slip) in [
        (
            "2027-03-15T10:00:00",
            "it has no UTC offset: add one, +09:00 for Korean time (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15 10:00:00.5",
            "it has no UTC offset: add one, +09:00 for Korean time (2027-03-15T10:00:00.5+09:00)",
        ),
        (
            "2027-03-15T10:00:00+0900",
            "write the offset with a colon: +09:00, not +0900 (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15",
            "a date alone: add the time and the offset (2027-03-15T00:00:00+09:00)",
        ),
        (
            "2027-03-15T10:00+09:00",
            "the seconds are required: 10:00:00, not 10:00 (2027-03-15T10:00:00+09:00)",
        ),
        // Review: chrono reads these too, and cutting six bytes off the text for the offset
        // split the U+3000 an IME types (a panic) and misplaced the others.
        (
            "2027-03-15T10:00\u{3000}+0900",
            "the seconds are required: 10:00:00, not 10:00 (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15T10:00 +09:00",
            "the seconds are required: 10:00:00, not 10:00 (2027-03-15T10:00:00+09:00)",
        ),
        // A trial's: a space for the `T`, as chrono takes it where the seconds are written.
        (
            "2027-03-15 10:00+09:00",
            "the seconds are required: 10:00:00, not 10:00 (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15T10:00-0330",
            "the seconds are required: 10:00:00, not 10:00 (2027-03-15T10:00:00-03:30)",
        ),
        (
            "2027-03-15T10:00",
            "it has no seconds and no UTC offset: add both, :00 and +09:00 for Korean time (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15T10:00:00 KST",
            "write the offset as RFC 3339 does, +09:00 for KST (2027-03-15T10:00:00+09:00)",
        ),
        (
            "2027-03-15 10:00:00UTC",
            "write the offset as RFC 3339 does, Z for UTC (2027-03-15T10:00:00Z)",
        ),
        (
            "2027-03-15 10:00:00 Asia/Seoul",
            "a time zone is written as its offset, not its name (\"Asia/Seoul\"): +09:00 for Korean time (2027-03-15T10:00:00+09:00)",
        ),
        (
            "1764558000",
            "a Unix time in seconds: write it as a date and time (2025-12-01T12:00:00+09:00)",
        ),
        (
            "1764558000500",
            "a Unix time in milliseconds: write it as a date and time (2025-12-01T12:00:00.500+09:00)",
        ),
    ] {
        assert_eq!(time_slip(written).as_deref(), Some(slip), "{written}");
        let fixed = &slip[slip.rfind('(').unwrap() + 1..slip.len() - 1];
        assert!(
            chrono::DateTime::parse_from_rfc3339(fixed).is_ok(),
            "{written}: the fix {fixed} is RFC 3339"
        );
    }
    for other in [
        "tomorrow",
        "",
        "2026-13-40T10:00:00",
        "１２월",
        "+0900",
        "20271231",
    ] {
        assert_eq!(time_slip(other), None, "{other}");
    }
}

#[test]
fn window_from_must_be_before_until() {
    let dir = default_file(
        r#"rules:
  - name: reversed
    window: { from: "2026-12-03T18:00:00+09:00", until: "2026-12-01T10:00:00+09:00" }
    reason: x
  - name: same-instant
    window:
      from: "2026-12-03T18:00:00+09:00"
      until: "2026-12-03T09:00:00Z"
    reason: x
  - name: open-ended
    window: { from: "2026-12-03T18:00:00+09:00" }
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                3,
                21,
                r#"rule "reversed": window.from must be before window.until"#
            ),
            dir.at(
                DEFAULT,
                7,
                13,
                r#"rule "same-instant": window.from must be before window.until (in Korean time, from is 2026-12-03T18:00:00+09:00 and until 2026-12-03T18:00:00+09:00)"#
            ),
        ]
    );
}

/// An upstream timeout at or above the deadline never fires first: a hanging call is ended by
/// the deadline, and the ruleset's on_error decides where the operator may expect the rule's.
/// (An upstream only probed for health, or only called by a `mode: off` rule, is not bound by
/// the deadline.)
#[test]
fn an_upstream_timeout_not_below_the_deadline_is_warned_about() {
    let dir = default_file(
        "settings: { deadline: 1s }\nupstreams:\n  shop: { url: \"http://shop.invalid\" }\n  fast: { url: \"http://shop.invalid\", timeout: 500ms }\n  probed: { url: \"http://shop.invalid\", health: { path: /health } }\n  slow:\n    url: \"http://shop.invalid\"\n    timeout: 1s\n  parked: { url: \"http://shop.invalid\", timeout: 5s }\nrules:\n  - name: up\n    healthy: probed\n    reason: x\n  - name: quick\n    fetch: { upstream: fast, path: /q }\n    reason: x\n  - name: stock\n    fetch: { upstream: shop, path: /stock }\n    on_error: approve\n    reason: x\n  - name: slow\n    forward: { upstream: slow, path: /confirm }\n  - name: parked\n    mode: off\n    fetch: { upstream: parked, path: /p }\n    reason: x\n",
    );
    let rules = dir.ok();
    // At the upstream when its timeout is the default; at its timeout when written.
    assert_eq!(
        rules.warnings,
        [
            dir.at(
                DEFAULT,
                3,
                9,
                "upstream \"shop\": its timeout 2s is not below the deadline 1s, so a call that hangs is ended by the deadline first and the ruleset's on_error decides, not the rule's; set a timeout below the deadline"
            ),
            dir.at(
                DEFAULT,
                8,
                14,
                "upstream \"slow\": its timeout 1s is not below the deadline 1s, so a call that hangs is ended by the deadline first and the ruleset's on_error decides, not the rule's; set a timeout below the deadline"
            ),
        ]
    );
}

/// Audit: a file's warnings came in the order the checks ran (the upstream's timeout, found
/// once the rules were read, last); they read top to bottom, as its errors do.
#[test]
fn a_files_warnings_are_in_file_order() {
    let dir = default_file(
        "settings: { deadline: 2s }\nupstreams:\n  shop: { url: \"http://shop.invalid\", timeout: 5s }\nrules:\n  - name: a\n    fetch: { upstream: shop, path: /s }\n    require: 'response.body.left >= 1'\n    reason: \"{response.body.lef} 남음\"\n  - name: b\n    amount: { max: 10 }\n",
    );
    let places: Vec<String> = dir
        .ok()
        .warnings
        .iter()
        .map(|w| w.split(": ").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        places,
        [(3, 48), (8, 13), (9, 5)].map(|(line, col)| dir
            .at(DEFAULT, line, col, "")
            .trim_end_matches(": ")
            .to_owned())
    );
}

/// A timeout under 10 ms is most likely a slip of the unit: no call over a network answers
/// that fast, so every call would end in on_error.
#[test]
fn a_very_short_upstream_timeout_is_warned_about() {
    let dir = default_file(
        "upstreams:\n  shop: { url: \"http://shop.invalid\", timeout: 0.5ms }\n  fine: { url: \"http://shop.invalid\", timeout: 10ms }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: /stock }\n    reason: x\n  - name: other\n    fetch: { upstream: fine, path: /stock }\n    reason: x\n",
    );
    assert_eq!(
        dir.ok().warnings,
        [dir.at(
            DEFAULT,
            2,
            48,
            "upstream \"shop\": its timeout 500µs is very short: a call that takes longer, as most calls over a network do, ends in on_error (was a unit of seconds meant?)"
        )]
    );
}

/// A fetch rule's reason naming an answer field close to one its require reads, but not it,
/// is most likely a typo: the buyer would read the reason with nothing in its place.
#[test]
fn a_reason_field_misspelt_against_the_require_is_warned_about() {
    let dir = default_file(
        "upstreams: { shop: { url: \"http://shop.invalid\", timeout: 1s } }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: /stock }\n    require: 'response.body.available > 0 && response.body.status == \"ok\"'\n    reason: \"재고 {response.body.availble}개, {response.body.note}\"\n",
    );
    assert_eq!(
        dir.ok().warnings,
        [dir.at(
            DEFAULT,
            6,
            13,
            "rule \"stock\": reason: {response.body.availble} names a field the require never reads, and the require reads response.body.available: one of the two is misspelt (a field the answer lacks renders empty in a reason, and is () in a require)"
        )]
    );
}

/// More headers than a server takes are refused at load, for an upstream and for a fetch:
/// tens of thousands made the HTTP library's header map panic.
#[test]
fn more_headers_than_a_server_takes_are_refused() {
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("x-h{i}: \"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let dir = default_file(&format!(
        "upstreams:\n  shop:\n    url: \"http://shop.invalid\"\n    timeout: 1s\n    headers: {{ {} }}\n  ok:\n    url: \"http://shop.invalid\"\n    timeout: 1s\n    headers: {{ {} }}\nrules:\n  - name: stock\n    fetch:\n      upstream: ok\n      path: /stock\n      headers: {{ {} }}\n    reason: x\n",
        many(93),
        many(92),
        many(30_000)
    ));
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 5, 14, "upstream \"shop\": 93 headers, more than the 92 a call may carry beside the proxy's own 8 (Host, Accept, Content-Type, …): servers take at most 100; send fewer"),
            dir.at(DEFAULT, 15, 16, "rule \"stock\": fetch.headers: 30000 headers, more than the 92 a call may carry beside the proxy's own 8 (Host, Accept, Content-Type, …): servers take at most 100; send fewer"),
        ]
    );
}

/// An audit: an upstream's 100 headers and a fetch's 100 others each loaded, and 200 went out
/// with the proxy's own, which the merchant refused (431). What is counted is what is sent:
/// the upstream's and the fetch's together, a name in both once.
#[test]
fn an_upstreams_and_a_fetchs_headers_are_counted_together() {
    let named = |from: usize, to: usize| {
        (from..to)
            .map(|i| format!("x-h{i}: \"v\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let file = |fetch: &str| {
        format!(
            "upstreams:\n  shop:\n    url: \"http://shop.invalid\"\n    timeout: 1s\n    headers: {{ {} }}\nrules:\n  - name: stock\n    fetch:\n      upstream: shop\n      path: /stock\n      headers: {{ {fetch} }}\n    reason: x\n",
            named(0, 60)
        )
    };
    // The upstream's 60 and the fetch's 42, ten of which the upstream has too: 92 sent, the
    // most there may be.
    default_file(&file(&named(50, 92))).ok();
    let dir = default_file(&file(&named(50, 93)));
    assert_eq!(
        dir.errors(),
        [dir.at(DEFAULT, 11, 16, "rule \"stock\": fetch.headers: with upstream \"shop\"'s 60, the call would send 93 headers, more than the 92 a call may carry beside the proxy's own 8 (Host, Accept, Content-Type, …): servers take at most 100; send fewer")]
    );
}
