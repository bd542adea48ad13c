//! Unit tests of the rule loader. Every failing load is checked against the exact list of
//! `FILE:LINE:COL: message` lines an operator would see, in order.

use std::collections::HashMap;

use chrono::DateTime;
use rust_decimal::Decimal;
use tempfile::TempDir;

use super::*;
use crate::rules::template::Scope;
use crate::rules::{
    Check, HttpMethod, Mode, OnError, Template, DEFAULT_DEADLINE, DEFAULT_ERROR_REASON,
    DEFAULT_REASON,
};

const DEFAULT: &str = "default.yaml";

/// A scratch rules directory.
struct RulesDir {
    tmp: TempDir,
}

impl RulesDir {
    fn new() -> Self {
        RulesDir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `rel` (creating its directories).
    fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        self
    }

    /// The line an error in `rel` at `line:col` prints as.
    fn at(&self, rel: &str, line: usize, col: usize, message: &str) -> String {
        format!(
            "{}:{line}:{col}: {message}",
            self.path().join(rel).display()
        )
    }

    /// The line an error without a position prints as.
    fn whole(&self, rel: &str, message: &str) -> String {
        format!("{}: {message}", self.path().join(rel).display())
    }

    /// Loads with `vars` as the whole environment.
    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Rules, LoadErrors> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());
        load_dir(
            self.path(),
            &LoadOptions {
                engine: &ScriptEngine::new(),
                env: &env,
            },
        )
    }

    fn ok_with(&self, vars: &[(&str, &str)]) -> Rules {
        self.load_with(vars)
            .unwrap_or_else(|e| panic!("expected the rules to load, got:\n{e}"))
    }

    fn ok(&self) -> Rules {
        self.ok_with(&[])
    }

    fn errors_with(&self, vars: &[(&str, &str)]) -> Vec<String> {
        match self.load_with(vars) {
            Ok(rules) => panic!("expected load errors, got {rules:?}"),
            Err(e) => e.lines(),
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors_with(&[])
    }

    fn version(&self) -> String {
        rules_version(self.path()).unwrap()
    }
}

/// A directory holding only `default.yaml` with `yaml`.
fn default_file(yaml: &str) -> RulesDir {
    let dir = RulesDir::new();
    dir.write(DEFAULT, yaml);
    dir
}

fn reason(src: &str) -> Template {
    Template::parse(src, Scope::Request).unwrap()
}

fn time(rfc3339: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

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
    require: '!order_id.starts_with("blocked-") && fetched["x"] == () && now > 0'
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
        && api == "v2"
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
    assert_eq!(set.settings.error_reason, "잠시 후 다시 시도해 주세요");
    assert_eq!(set.settings.reject_status, 422);

    let summary: Vec<_> = set
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.check.kind(), r.mode, r.on_error))
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
        Check::Require(e) => assert_eq!(e.src, "amount > 0\n  && api == \"v2\"\n"),
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
        "일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요."
    );
    assert_eq!(settings.error_reason, DEFAULT_ERROR_REASON);
    let rule = &rules.get("default").unwrap().rules[0];
    assert_eq!((rule.mode, rule.on_error), (Mode::Enforce, None));
}

#[test]
fn empty_and_comment_only_files_are_empty_rulesets() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, "")
        .write("comments.yaml", "# nothing yet\n\n   # still nothing\n")
        .write("marker.yaml", "---\n# an empty document\n")
        .write("empty-rules.yaml", "rules:\n  # - name: later\n");
    let rules = dir.ok();
    assert_eq!(
        rules.rulesets.keys().collect::<Vec<_>>(),
        ["comments", "default", "empty-rules", "marker"]
    );
    for set in rules.rulesets.values() {
        assert!(set.rules.is_empty(), "{}", set.name);
        assert!(set.upstreams.is_empty(), "{}", set.name);
        assert_eq!(set.settings.deadline, DEFAULT_DEADLINE, "{}", set.name);
        assert_eq!(set.settings.reject_status, 409, "{}", set.name);
    }
    assert_eq!(rules.rule_count(), 0);
    assert_eq!(rules.warnings, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Shape: unknown keys and wrong types (serde, one error per file)

#[test]
fn unknown_keys_are_errors_at_the_key() {
    let cases = [
        (
            "setings: {}\n",
            (1, 1),
            r#"unknown field "setings", expected one of "settings", "upstreams", "rules""#,
        ),
        (
            "settings:\n  deadline: 4s\n  deadlin: 4s\n",
            (3, 3),
            r#"settings: unknown field "deadlin", expected one of "deadline", "on_error", "error_reason", "reject_status""#,
        ),
        (
            "rules:\n  - name: a\n    amout: { min: 1 }\n    reason: x\n",
            (3, 5),
            r#"rules[0]: unknown field "amout", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#,
        ),
        (
            "rules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n  - name: b\n    amount: { mx: 1 }\n    reason: x\n",
            (6, 15),
            r#"rules[1].amount: unknown field "mx", expected "min" or "max""#,
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
            r#"rules[0].amount.min: invalid type: string "abc", expected a JSON number"#,
        ),
        (
            "settings:\n  reject_status: x\n",
            (2, 18),
            r#"settings.reject_status: invalid type: string "x", expected u16"#,
        ),
        (
            "rules: { amount-range: { min: 1 } }\n",
            (1, 8),
            "rules: invalid type: map, expected a sequence",
        ),
        (
            "settings:\n  on_error: maybe\n",
            (2, 13),
            r#"settings.on_error: unknown variant "maybe", expected "reject" or "approve""#,
        ),
        (
            "rules:\n  - name: a\n    mode: shdow\n    require: 'true'\n    reason: x\n",
            (3, 11),
            r#"rules[0].mode: unknown variant "shdow", expected one of "enforce", "shadow", "off""#,
        ),
        (
            "rules:\n  - name: a\n    when: 'true'\n    action: deny\n",
            (4, 13),
            r#"rules[0].action: unknown variant "deny", expected "approve""#,
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
fn bad_settings_values() {
    let dir = default_file("settings:\n  error_reason: \"  \"\n  reject_status: 200\nrules: []\n");
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 2, 17, "error_reason must not be empty"),
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
                13,
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
    for text in ["4 sec", "-1s", "4", "s", "", "1.5.2s", "4S", "4d", "1e3ms"] {
        assert_eq!(parse_duration(text), Err(expected(text)), "{text:?}");
    }
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
                r#"invalid duration "-1s", expected a number and a unit like 500ms, 1.5s, 4s or 1m"#
            ),
        ]
    );
}

#[test]
fn deadline_over_five_seconds_loads_with_a_warning() {
    let dir = RulesDir::new();
    dir.write("shop.yaml", "settings:\n  deadline: 6s\n")
        .write("edge.yaml", "settings:\n  deadline: 5s\n");
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
        [
            format!(
                "{}: settings.deadline 6s is over 5s: PortOne may stop waiting first and count the payment as refused",
                dir.path().join("shop.yaml").display()
            ),
            format!(
                "{}: no default.yaml, so POST /confirm answers 404",
                dir.path().display()
            ),
        ]
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
                    r#"rule "bad-from": window.from: invalid timestamp "2026-12-01 10:00", {expected}"#
                )
            ),
            dir.at(
                DEFAULT,
                7,
                14,
                &format!(
                    r#"rule "bad-until": window.until: invalid timestamp "2026-12-03T18:00:00", {expected}"#
                )
            ),
            dir.at(
                DEFAULT,
                10,
                13,
                r#"rule "empty": window needs from, until or both"#
            ),
        ]
    );
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
                13,
                r#"rule "reversed": window.from must be before window.until"#
            ),
            dir.at(
                DEFAULT,
                7,
                7,
                r#"rule "same-instant": window.from must be before window.until"#
            ),
        ]
    );
}

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
            dir.at(
                DEFAULT,
                14,
                5,
                r#"rule "no-reason": missing reason (the text the buyer sees when this rule refuses)"#
            ),
            dir.at(DEFAULT, 16, 11, "rule name must not be empty"),
        ]
    );
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
                r#"rule "double": when: invalid expression: unexpected '='"#
            ),
            // Past the end of the expression: Rhai wanted more.
            dir.at(
                DEFAULT,
                10,
                31,
                r#"rule "plain": require: invalid expression: script is incomplete"#
            ),
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
                r#"rule "checked": require: invalid expression: undefined variable: order_idd"#
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
                r#"rule "typo": require: invalid expression: undefined variable: order_idd"#
            ),
            dir.at(
                DEFAULT,
                9,
                14,
                r#"rule "response-outside-fetch": require: invalid expression: undefined variable: response"#
            ),
            dir.at(
                DEFAULT,
                12,
                12,
                r#"rule "response-in-when": when: invalid expression: undefined variable: response"#
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
                13,
                &format!(
                    r#"rule "typo": reason: unknown placeholder {{orderid}}, expected one of {request_vars}"#
                )
            ),
            dir.at(
                DEFAULT,
                10,
                13,
                &format!(
                    r#"rule "not-fetch": reason: placeholder {{response.body.left}} is only available in fetch rules; expected one of {request_vars}"#
                )
            ),
            dir.at(
                DEFAULT,
                13,
                13,
                &format!(
                    r#"rule "fetch-typo": reason: unknown placeholder {{respons.body.left}}, expected one of {request_vars}, {{response.body.<field>}}"#
                )
            ),
            dir.at(
                DEFAULT,
                16,
                13,
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
                r#"upstream "shop": url is not an http:// or https:// URL"#
            ),
            dir.at(
                DEFAULT,
                9,
                13,
                r#"rule "a": amount.min 10 is above amount.max 1"#
            ),
            dir.at(
                DEFAULT,
                12,
                23,
                r#"rule "b": require: invalid expression: script is incomplete"#
            ),
            dir.at(
                DEFAULT,
                13,
                13,
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

#[test]
fn errors_of_every_file_are_reported_together() {
    let dir = RulesDir::new();
    dir.write(
        "a.yaml",
        "rules:\n  - name: x\n    amount: { min: 1 }\n",
    )
    .write("b.yaml", "rules:\n  - name: y\n    bogus: 1\n")
    .write(
        "c.yaml",
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n  - name: z\n    require: 'amount > 1'\n",
    )
    .write("scripts/vip.rhai", "let x = );\n")
    .write(DEFAULT, "rules: []\n");
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "a.yaml",
                2,
                5,
                r#"rule "x": missing reason (the text the buyer sees when this rule refuses)"#
            ),
            dir.at(
                "b.yaml",
                3,
                5,
                r#"rules[0]: unknown field "bogus", expected one of "name", "when", "mode", "action", "reason", "on_error", "amount", "window", "require", "healthy", "fetch", "forward", "script""#
            ),
            dir.at(
                "scripts/vip.rhai",
                1,
                9,
                r#"unexpected ')' (script of rule "vip")"#
            ),
            dir.at(
                "c.yaml",
                4,
                5,
                r#"rule "z": missing reason (the text the buyer sees when this rule refuses)"#
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Upstreams

#[test]
fn upstreams_substitute_variables_and_resolve_references() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: "${SHOP_API_URL}/"
    timeout: 1500ms
    headers: { Authorization: "Bearer ${SHOP_API_TOKEN}", X-Client: confirm-proxy }
    health: { path: /health, interval: 10s, unhealthy_after: 3 }
  legacy:
    url: http://legacy.test:8080
rules:
  - name: shop-up
    healthy: shop
    reason: 상점 점검 중입니다
  - name: stock
    fetch:
      upstream: shop
      method: GET
      path: "/api/stock/{order_id}"
      query: { tx: "{tx_id}" }
      headers: { X-Order: "{order_id}" }
    require: 'response.status == 200 && response.body.available >= 1'
    reason: "재고 {response.body.available}개"
  - name: reserve
    fetch: { upstream: shop, method: POST, path: /api/reserve, body: { order: "{order_id}", qty: 1 } }
    reason: 예약 실패
  - name: existing-confirm
    forward: { upstream: legacy, path: /payments/confirm }
"#,
    );
    let rules = dir.ok_with(&[
        ("SHOP_API_URL", "https://shop.internal:8443/v1"),
        ("SHOP_API_TOKEN", "s3cr3t"),
    ]);
    let set = rules.get("default").unwrap();
    assert_eq!(set.upstreams.keys().collect::<Vec<_>>(), ["legacy", "shop"]);

    let shop = &set.upstreams["shop"];
    assert_eq!(shop.name, "shop");
    assert_eq!(shop.url, "https://shop.internal:8443/v1");
    assert_eq!(shop.timeout, Duration::from_millis(1500));
    let auth = &shop.headers["authorization"];
    assert_eq!(auth, "Bearer s3cr3t");
    assert!(auth.is_sensitive());
    let client = &shop.headers["x-client"];
    assert_eq!(client, "confirm-proxy");
    assert!(!client.is_sensitive());
    let health = shop.health.as_ref().unwrap();
    assert_eq!(health.path, "/health");
    assert_eq!(health.interval, Duration::from_secs(10));
    assert_eq!((health.unhealthy_after, health.healthy_after), (3, 1));
    // The secret never shows in debug output.
    assert!(!format!("{shop:?}").contains("s3cr3t"));

    let legacy = &set.upstreams["legacy"];
    assert_eq!(legacy.url, "http://legacy.test:8080");
    assert_eq!(legacy.timeout, DEFAULT_UPSTREAM_TIMEOUT);
    assert!(legacy.headers.is_empty());
    assert!(legacy.health.is_none());

    let r = &set.rules;
    match &r[0].check {
        Check::Healthy(up) => assert!(Arc::ptr_eq(up, shop)),
        other => panic!("expected healthy, got {other:?}"),
    }
    match &r[1].check {
        Check::Fetch(f) => {
            assert!(Arc::ptr_eq(&f.upstream, shop));
            assert_eq!(f.method, HttpMethod::GET);
            assert_eq!(f.path, reason("/api/stock/{order_id}"));
            assert_eq!(f.query, [("tx".to_owned(), reason("{tx_id}"))]);
            assert_eq!(f.headers.len(), 1);
            assert_eq!(f.headers[0].0, "x-order");
            assert!(f.body.is_none());
            assert_eq!(
                f.require.as_ref().map(|e| e.src.as_str()),
                Some("response.status == 200 && response.body.available >= 1")
            );
        }
        other => panic!("expected fetch, got {other:?}"),
    }
    match &r[2].check {
        Check::Fetch(f) => {
            assert_eq!(f.method, HttpMethod::POST);
            assert!(f.body.is_some());
            assert!(f.require.is_none());
        }
        other => panic!("expected fetch, got {other:?}"),
    }
    match &r[3].check {
        Check::Forward(f) => {
            assert!(Arc::ptr_eq(&f.upstream, legacy));
            assert_eq!(f.path, "/payments/confirm");
        }
        other => panic!("expected forward, got {other:?}"),
    }
    // A forward needs no reason: the merchant's endpoint gives its own.
    assert_eq!(r[3].reason, Template::literal(DEFAULT_REASON));
}

#[test]
fn unset_variables_are_errors_naming_them() {
    let dir = default_file(
        r#"upstreams:
  api:
    url: "${API_URL}"
  shop:
    url: "https://${SHOP_HOST}/v1"
    headers: { Authorization: "Bearer ${SHOP_API_TOKEN}" }
  typo:
    url: http://typo.test
    headers:
      X-Key: "${TYPO_KEY"
rules:
  - name: via-api
    forward: { upstream: api, path: /confirm }
"#,
    );
    assert_eq!(
        dir.errors_with(&[("SHOP_HOST", "shop.test")]),
        [
            dir.at(
                DEFAULT,
                3,
                10,
                r#"upstream "api": url: environment variable API_URL is not set"#
            ),
            dir.at(
                DEFAULT,
                6,
                31,
                r#"upstream "shop": header "Authorization": environment variable SHOP_API_TOKEN is not set"#
            ),
            dir.at(
                DEFAULT,
                10,
                14,
                r#"upstream "typo": header "X-Key": unclosed "${" (expected ${VARIABLE})"#
            ),
            // No "unknown upstream" for `api`: it is defined, and its own error says what is wrong.
        ]
    );
    // Set, everything loads; the variables' values are not part of the rules version.
    let vars = [
        ("API_URL", "http://api.test"),
        ("SHOP_HOST", "shop.test"),
        ("SHOP_API_TOKEN", "t"),
    ];
    dir.write(
        DEFAULT,
        &fs::read_to_string(dir.path().join(DEFAULT))
            .unwrap()
            .replace("${TYPO_KEY\"", "${TYPO_KEY}\""),
    );
    let rules = dir.ok_with(&[vars[0], vars[1], vars[2], ("TYPO_KEY", "k1")]);
    let other = dir.ok_with(&[vars[0], vars[1], vars[2], ("TYPO_KEY", "k2")]);
    assert_eq!(rules.version, other.version);
    let set = rules.get("default").unwrap();
    assert_eq!(set.upstreams["shop"].url, "https://shop.test/v1");
    assert!(set.upstreams["shop"].headers["authorization"].is_sensitive());
    assert!(set.upstreams["typo"].headers["x-key"].is_sensitive());
}

#[test]
fn unknown_upstream_references() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
    health: { path: /health }
rules:
  - name: up
    healthy: shp
    reason: x
  - name: stock
    fetch: { upstream: shp, path: /stock }
    reason: x
  - name: confirm
    forward: { upstream: shp, path: /confirm }
"#,
    );
    dir.write(
        "bare.yaml",
        "rules:\n  - name: up\n    healthy: shop\n    reason: x\n",
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "bare.yaml",
                3,
                14,
                r#"rule "up": unknown upstream "shop", no upstreams are defined in this file"#
            ),
            dir.at(
                DEFAULT,
                7,
                14,
                r#"rule "up": unknown upstream "shp", expected one of shop"#
            ),
            dir.at(
                DEFAULT,
                10,
                24,
                r#"rule "stock": unknown upstream "shp", expected one of shop"#
            ),
            dir.at(
                DEFAULT,
                13,
                26,
                r#"rule "confirm": unknown upstream "shp", expected one of shop"#
            ),
        ]
    );
}

#[test]
fn healthy_needs_an_upstream_with_a_health_probe() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: shop-up
    healthy: shop
    reason: x
"#,
    );
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            6,
            14,
            r#"rule "shop-up": upstream "shop" has no health probe; add health: { path: /health } to it"#
        )]
    );
}

#[test]
fn bad_fetch_and_forward_fields() {
    let dir = default_file(
        r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: get-with-body
    fetch: { upstream: shop, path: /stock, body: { id: "{order_id}" } }
    reason: x
  - name: relative-path
    fetch: { upstream: shop, method: POST, path: "stock/{oder_id}" }
    reason: x
  - name: relative-forward
    forward: { upstream: shop, path: confirm }
"#,
    );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                DEFAULT,
                6,
                50,
                r#"rule "get-with-body": a GET fetch has no body; use method: POST or PUT"#
            ),
            dir.at(
                DEFAULT,
                9,
                50,
                r#"rule "relative-path": fetch.path: unknown placeholder {oder_id}, expected one of {order_id}, {tx_id}, {amount}, {store_id}"#
            ),
            dir.at(
                DEFAULT,
                9,
                50,
                r#"rule "relative-path": fetch.path must start with "/""#
            ),
            dir.at(
                DEFAULT,
                12,
                38,
                r#"rule "relative-forward": forward.path must start with "/""#
            ),
        ]
    );
}

#[test]
fn bad_upstream_urls() {
    let dir = default_file(
        r#"upstreams:
  ftp:
    url: ftp://shop.test
  words:
    url: "not a url"
  no-host:
    url: "http://"
  from-env:
    url: "${SHOP_URL}"
"#,
    );
    // The value may come from a secret, so the message never repeats it.
    let message =
        |name: &str| format!(r#"upstream "{name}": url is not an http:// or https:// URL"#);
    assert_eq!(
        dir.errors_with(&[("SHOP_URL", "shop.test/secret-path")]),
        [
            dir.at(DEFAULT, 9, 10, &message("from-env")),
            dir.at(DEFAULT, 3, 10, &message("ftp")),
            dir.at(DEFAULT, 7, 10, &message("no-host")),
            dir.at(DEFAULT, 5, 10, &message("words")),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Scripts

#[test]
fn scripts_load_relative_to_the_rules_directory() {
    let dir = default_file(
        r#"rules:
  - name: vip
    script: scripts/vip.rhai
  - name: dotted
    script: ./scripts/vip.rhai
    reason: 안 됩니다
"#,
    );
    dir.write(
        "scripts/vip.rhai",
        "if order_id.starts_with(\"vip-\") { return true; }\namount <= 100000\n",
    );
    let rules = dir.ok();
    let r = &rules.get("default").unwrap().rules;
    assert!(matches!(&r[0].check, Check::Script { path, .. } if path == "scripts/vip.rhai"));
    assert!(matches!(&r[1].check, Check::Script { path, .. } if path == "./scripts/vip.rhai"));
    assert_eq!(r[0].reason, Template::literal(DEFAULT_REASON));
    assert_eq!(r[1].reason, reason("안 됩니다"));
}

#[test]
fn script_errors_are_reported_against_the_script() {
    let dir = default_file(
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n  - name: typo\n    script: scripts/typo.rhai\n",
    );
    dir.write("scripts/vip.rhai", "let x = 1;\nlet y = 2;\nlet z = );\n")
        .write(
            "scripts/typo.rhai",
            "// a typo on line 3\n\nif order_idd == \"x\" { false }\n",
        );
    assert_eq!(
        dir.errors(),
        [
            dir.at(
                "scripts/vip.rhai",
                3,
                9,
                r#"unexpected ')' (script of rule "vip")"#
            ),
            dir.at(
                "scripts/typo.rhai",
                3,
                4,
                r#"undefined variable: order_idd (script of rule "typo")"#
            ),
        ]
    );
}

#[test]
fn script_paths_must_stay_inside_the_rules_directory() {
    let dir = default_file(
        r#"rules:
  - name: up
    script: ../outside.rhai
  - name: absolute
    script: /etc/passwd
  - name: sneaky
    script: scripts/../../outside.rhai
  - name: empty
    script: ""
"#,
    );
    let message = |rule: &str, path: &str| {
        format!(
            r#"rule "{rule}": script path "{path}" must be relative to the rules directory, without "..""#
        )
    };
    assert_eq!(
        dir.errors(),
        [
            dir.at(DEFAULT, 3, 13, &message("up", "../outside.rhai")),
            dir.at(DEFAULT, 5, 13, &message("absolute", "/etc/passwd")),
            dir.at(
                DEFAULT,
                7,
                13,
                &message("sneaky", "scripts/../../outside.rhai")
            ),
            dir.at(DEFAULT, 9, 13, &message("empty", "")),
        ]
    );
}

#[test]
fn missing_script_file() {
    let dir = default_file("rules:\n  - name: vip\n    script: scripts/missing.rhai\n");
    let io_error = fs::read_to_string(dir.path().join("scripts/missing.rhai")).unwrap_err();
    assert_eq!(
        dir.errors(),
        [dir.at(
            DEFAULT,
            3,
            13,
            &format!(r#"rule "vip": cannot read script "scripts/missing.rhai": {io_error}"#)
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Ruleset files

#[test]
fn only_yaml_files_directly_in_the_directory_are_rulesets() {
    let dir = RulesDir::new();
    let broken = "rules: [ this is not a ruleset\n";
    dir.write(DEFAULT, "")
        .write("shop_v2.yaml", "")
        .write("a-b.yaml", "")
        .write("notes.yml", broken)
        .write("README.md", broken)
        .write("scripts/vip.rhai", "true\n")
        .write("scripts/vip.yaml", broken)
        .write("tests/default.yaml", broken)
        .write("sub/inner.yaml", broken)
        .write("dir.yaml/inner.txt", broken)
        .write("default.yaml~", broken);
    let rules = dir.ok();
    assert_eq!(
        rules.rulesets.keys().collect::<Vec<_>>(),
        ["a-b", "default", "shop_v2"]
    );
}

#[test]
fn hidden_files_are_ignored() {
    let dir = RulesDir::new();
    let broken = "rules: [ this is not a ruleset\n";
    dir.write(DEFAULT, "")
        .write(".draft.yaml", broken)
        .write(".yaml", broken)
        .write(".#default.yaml", broken);
    let rules = dir.ok();
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
}

#[test]
fn bad_ruleset_names_are_errors() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, "")
        .write("bad name.yaml", "")
        .write("ruleset.v2.yaml", "")
        .write("규칙.yaml", "");
    let message = r#"ruleset names may only hold letters, digits, "-" and "_""#;
    assert_eq!(
        dir.errors(),
        [
            dir.whole("bad name.yaml", message),
            dir.whole("ruleset.v2.yaml", message),
            dir.whole("규칙.yaml", message),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Rules version

#[test]
fn rules_version_tracks_every_file_but_hidden_ones() {
    let dir = RulesDir::new();
    dir.write(DEFAULT, "rules: []\n")
        .write("scripts/vip.rhai", "true\n")
        .write("tests/default.yaml", "cases: []\n");
    let first = dir.version();
    assert_eq!(first.len(), 12);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()), "{first}");
    assert_eq!(dir.version(), first, "stable across calls");
    assert_eq!(dir.ok().version, first);

    dir.write(".notes", "hidden")
        .write("scripts/.vip.rhai.swp", "editor state")
        .write("default.yaml~", "backup");
    assert_eq!(dir.version(), first, "hidden and backup files do not count");

    let mut seen = vec![first];
    for (file, content) in [
        (DEFAULT, "rules: []\n# edited\n"),
        ("scripts/vip.rhai", "false\n"),
        ("tests/default.yaml", "cases: [] # edited\n"),
        ("tests/more.yaml", "cases: []\n"),
    ] {
        dir.write(file, content);
        let v = dir.version();
        assert!(!seen.contains(&v), "{file}: version {v} did not change");
        seen.push(v);
    }
    // Files the loader never reads (a decision log kept next to the rules, notes) do not count.
    dir.write("notes.txt", "anything")
        .write("decisions.jsonl", "{}\n");
    assert_eq!(dir.version(), seen[4]);
    // Back to old content, back to the old version: it is a content hash, not a counter.
    fs::remove_file(dir.path().join("tests/more.yaml")).unwrap();
    assert_eq!(dir.version(), seen[3]);
}

#[cfg(unix)]
#[test]
fn rules_version_follows_a_kubernetes_configmap_layout() {
    use std::os::unix::fs::symlink;

    // What a ConfigMap volume looks like: timestamped data dirs, `..data` pointing at the
    // current one, and the visible names as symlinks through `..data`.
    let dir = RulesDir::new();
    let v1 = "rules:\n  - name: limit\n    amount: { max: 100 }\n    reason: x\n";
    dir.write("..2026_01_01_00_00_00.1/default.yaml", v1);
    symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
    symlink("..data/default.yaml", dir.path().join(DEFAULT)).unwrap();

    let rules = dir.ok();
    assert_eq!(rules.rulesets.keys().collect::<Vec<_>>(), ["default"]);
    assert_eq!(rules.rule_count(), 1);
    let first = dir.version();
    assert_eq!(rules.version, first);

    // The same files in a plain directory have the same version: only visible names count.
    let plain = RulesDir::new();
    plain.write(DEFAULT, v1);
    assert_eq!(plain.version(), first);

    // An update: a new data dir, `..data` swapped atomically, the old dir removed.
    let v2 = format!("{v1}  - name: more\n    amount: {{ min: 1 }}\n    reason: y\n");
    dir.write("..2026_01_02_00_00_00.2/default.yaml", &v2);
    symlink("..2026_01_02_00_00_00.2", dir.path().join("..data_tmp")).unwrap();
    fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    fs::remove_dir_all(dir.path().join("..2026_01_01_00_00_00.1")).unwrap();

    let second = dir.version();
    assert_ne!(second, first);
    assert_eq!(dir.version(), second);
    let rules = dir.ok();
    assert_eq!(rules.version, second);
    assert_eq!(rules.rule_count(), 2);
}
