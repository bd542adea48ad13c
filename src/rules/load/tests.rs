//! Unit tests of the rule loader. Every failing load is checked against the exact list of
//! `FILE:LINE:COL: message` lines an operator would see, in order.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use chrono::DateTime;
use rust_decimal::Decimal;
use tempfile::TempDir;

use super::source::BAD_RULESET_NAME;
use super::*;
use crate::rules::template::Scope;
use crate::rules::{
    Check, HttpMethod, Mode, OnError, Template, DEFAULT_DEADLINE, DEFAULT_ERROR_REASON,
    DEFAULT_REASON, DEFAULT_UPSTREAM_TIMEOUT,
};

const DEFAULT: &str = "default.yaml";

/// A scratch rules directory.
struct RulesDir {
    tmp: TempDir,
}

/// A test's whole environment, names listed as the process's are.
struct Vars<'a>(HashMap<&'a str, &'a str>);

impl crate::rules::Environment for Vars<'_> {
    fn var(&self, name: &str) -> Result<String, std::env::VarError> {
        self.0
            .get(name)
            .map(|v| (*v).to_owned())
            .ok_or(std::env::VarError::NotPresent)
    }

    fn names(&self) -> Vec<String> {
        self.0.keys().map(|k| (*k).to_owned()).collect()
    }
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
    /// A report about the file `rel` as a whole, at no position in it.
    fn whole(&self, rel: &str, message: &str) -> String {
        format!("{}: {message}", self.path().join(rel).display())
    }

    fn at(&self, rel: &str, line: usize, col: usize, message: &str) -> String {
        format!(
            "{}:{line}:{col}: {message}",
            self.path().join(rel).display()
        )
    }

    /// Loads with `vars` as the whole environment.
    fn load_with(&self, vars: &[(&str, &str)]) -> Result<Rules, LoadErrors> {
        load_dir(
            self.path(),
            &LoadOptions {
                engine: &ScriptEngine::new(),
                env: &Vars(vars.iter().copied().collect()),
                previous: None,
            },
        )
    }

    /// Loads as a reload after `previous` does.
    fn load_after(&self, previous: &Rules) -> Result<Rules, LoadErrors> {
        load_dir(
            self.path(),
            &LoadOptions {
                engine: &ScriptEngine::new(),
                env: &Vars(Default::default()),
                previous: Some(previous),
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

/// The smallest valid ruleset: one rule (a ruleset without rules does not load).
const ONE_RULE: &str = "rules:\n  - name: limit\n    amount: { max: 100 }\n    reason: too much\n";

fn reason(src: &str) -> Template {
    Template::parse(src, Scope::Request).unwrap()
}

fn time(rfc3339: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

mod files;
mod mutations;
mod reports;
mod rules;
mod settings;

/// Audited defects: unset variables reported together, invalid UTF-8 located, scripts of any
/// name in the rules version.
mod audit {
    use super::*;

    /// A header value with a line break from its variable (read from a file) names the
    /// variable, never its value.
    #[test]
    fn a_header_variable_ending_in_a_line_break_is_named() {
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"http://127.0.0.1:1\"\n    headers: { X-Shop: \"${SHOP}\", Authorization: \"Bearer ${TOKEN}\" }\nrules:\n  - name: via-shop\n    forward: { upstream: shop, path: /confirm }\n",
        );
        let errors = dir.errors_with(&[("SHOP", "a"), ("TOKEN", "s3cret\n")]);
        assert_eq!(
            errors,
            [dir.at(
                DEFAULT,
                4,
                50,
                r#"upstream "shop": header "Authorization" has characters not allowed in a header value: the value of environment variable TOKEN has a space at an end, a line break or another control character, as a value read from a file often does"#
            )]
        );
    }

    /// An unset variable whose name is a slip of one that is set names that one; one with
    /// nothing like it set says the environment is read at start.
    #[test]
    fn an_unset_variable_names_a_set_one_it_is_a_slip_of() {
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"${SHOP_API_URI}\"\n    headers: { Authorization: \"Bearer ${TOKEN}\" }\nrules:\n  - name: via-shop\n    forward: { upstream: shop, path: /confirm }\n",
        );
        let errors = dir
            .load_with(&[("SHOP_API_URL", "http://127.0.0.1:1"), ("HOME", "/root")])
            .unwrap_err()
            .lines();
        assert_eq!(
            errors,
            [
                dir.at(DEFAULT, 3, 10, "upstream \"shop\": url: environment variable SHOP_API_URI is not set; did you mean ${SHOP_API_URL}, which is set?"),
                dir.at(DEFAULT, 4, 31, "upstream \"shop\": header \"Authorization\": environment variable TOKEN is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them)"),
            ]
        );
    }

    /// A trial: a file added with a new variable held back an urgent change to another
    /// ruleset, and its error spoke of `check` and stand-in values; in a reload it says that
    /// the running proxy cannot see it, and what to do meanwhile.
    #[test]
    fn an_unset_variable_in_a_reload_says_the_running_proxy_cannot_see_it() {
        let dir = default_file("rules:\n  - name: cap\n    amount: { max: 100 }\n");
        let running = dir.ok();
        dir.write(
            "flash.yaml",
            "upstreams:\n  inv:\n    url: \"${INV_API_URL}\"\nrules:\n  - name: reserve\n    forward: { upstream: inv, path: /r }\n",
        );
        let errors = dir.load_after(&running).unwrap_err().lines();
        assert_eq!(
            errors,
            [dir.at("flash.yaml", 3, 10, "upstream \"inv\": url: environment variable INV_API_URL is not set in the environment the running proxy started with, the only one it reads: a variable set since needs a restart with it set, and until then no change to the rules loads (to load the others, undo the edit that added it, or move a new file out of the rules directory); the running rules stay")]
        );
    }

    /// A value that is not UTF-8 is named as such, not as unset: the operator would look
    /// for a variable that is there.
    #[cfg(unix)]
    #[test]
    fn a_variable_whose_value_is_not_utf8_is_told_apart_from_an_unset_one() {
        use std::os::unix::ffi::OsStringExt;
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"http://127.0.0.1:1\"\n    headers: { Authorization: \"Bearer ${TOKEN}\" }\nrules:\n  - name: via-shop\n    forward: { upstream: shop, path: /confirm }\n",
        );
        let env = |name: &str| match name {
            "TOKEN" => Err(std::env::VarError::NotUnicode(
                std::ffi::OsString::from_vec(b"\xff\xfe-token".to_vec()),
            )),
            _ => Err(std::env::VarError::NotPresent),
        };
        let options = LoadOptions {
            engine: &ScriptEngine::new(),
            env: &env,
            previous: None,
        };
        let errors = load_dir(dir.path(), &options).unwrap_err().lines();
        assert_eq!(
            errors,
            [dir.at(
                DEFAULT,
                4,
                31,
                r#"upstream "shop": header "Authorization": environment variable TOKEN is set, but its value is not UTF-8 text (a secret in another encoding, or binary data: set it as UTF-8, or as hex or base64 if the service takes that)"#
            )]
        );
    }

    #[test]
    fn every_unset_variable_is_reported_in_one_load() {
        let dir = default_file(
            r#"upstreams:
  shop:
    url: "${SHOP_API_URL}"
    timeout: 1 sec
    headers: { Authorization: "Bearer ${SHOP_API_TOKEN}", X-Ids: "${CLIENT_ID}:${CLIENT_KEY}" }
  two:
    url: "${SCHEME}://${HOST}/v1"
rules:
  - name: via-shop
    forward: { upstream: shop, path: /confirm }
"#,
        );
        let unset_in_header = |var: &str| {
            format!("environment variable {var} is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them)")
        };
        let unset = |var: &str| {
            unset_in_header(var).replace(
                "for them)",
                "for them: for a url, one that keeps it a URL, such as http://shop.invalid)",
            )
        };
        assert_eq!(
            dir.errors(),
            [
                dir.at(
                    DEFAULT,
                    3,
                    10,
                    &format!(r#"upstream "shop": url: {}"#, unset("SHOP_API_URL"))
                ),
                dir.at(
                    DEFAULT,
                    4,
                    14,
                    r#"invalid duration "1 sec", expected a number and a unit like 500ms, 1.5s, 4s or 1m"#
                ),
                dir.at(
                    DEFAULT,
                    5,
                    31,
                    &format!(
                        r#"upstream "shop": header "Authorization": {}"#,
                        unset_in_header("SHOP_API_TOKEN")
                    )
                ),
                dir.at(
                    DEFAULT,
                    5,
                    66,
                    &format!(r#"upstream "shop": header "X-Ids": {}"#, unset_in_header("CLIENT_ID"))
                ),
                dir.at(
                    DEFAULT,
                    5,
                    66,
                    &format!(r#"upstream "shop": header "X-Ids": {}"#, unset_in_header("CLIENT_KEY"))
                ),
                dir.at(
                    DEFAULT,
                    7,
                    10,
                    &format!(r#"upstream "two": url: {}"#, unset("SCHEME"))
                ),
                dir.at(
                    DEFAULT,
                    7,
                    10,
                    &format!(r#"upstream "two": url: {}"#, unset("HOST"))
                ),
            ]
        );
        // The README's example file: both of its variables at once.
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"${SHOP_API_URL}\"\n    headers: { Authorization: \"Bearer ${SHOP_API_TOKEN}\" }\nrules:\n  - name: existing-confirm\n    forward: { upstream: shop, path: /payments/confirm }\n",
        );
        assert_eq!(
            dir.errors(),
            [
                dir.at(
                    DEFAULT,
                    3,
                    10,
                    r#"upstream "shop": url: environment variable SHOP_API_URL is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them: for a url, one that keeps it a URL, such as http://shop.invalid)"#
                ),
                dir.at(
                    DEFAULT,
                    4,
                    31,
                    r#"upstream "shop": header "Authorization": environment variable SHOP_API_TOKEN is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them)"#
                ),
            ]
        );
        assert_eq!(
            dir.errors_with(&[("SHOP_API_URL", "http://shop.test")]),
            [dir.at(
                DEFAULT,
                4,
                31,
                r#"upstream "shop": header "Authorization": environment variable SHOP_API_TOKEN is not set (the proxy reads its environment only when it starts: a variable set later needs a restart; check, test and replay make no calls, so a stand-in value does for them)"#
            )]
        );
        // Names are case-sensitive: a lowercase one names the variable that is set.
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"${shop_api_url}\"\nrules:\n  - name: existing-confirm\n    forward: { upstream: shop, path: /payments/confirm }\n",
        );
        assert_eq!(
            dir.errors_with(&[("SHOP_API_URL", "http://shop.test")]),
            [dir.at(
                DEFAULT,
                3,
                10,
                r#"upstream "shop": url: environment variable shop_api_url is not set; did you mean ${SHOP_API_URL}?"#
            )]
        );
        // And the other way round, for a variable that was exported in lowercase.
        let dir = default_file(
            "upstreams:\n  shop:\n    url: \"${SHOP_API_URL}\"\nrules:\n  - name: existing-confirm\n    forward: { upstream: shop, path: /payments/confirm }\n",
        );
        assert_eq!(
            dir.errors_with(&[("shop_api_url", "http://shop.test")]),
            [dir.at(
                DEFAULT,
                3,
                10,
                r#"upstream "shop": url: environment variable SHOP_API_URL is not set; did you mean ${shop_api_url}?"#
            )]
        );
    }

    /// A control character quoted in a message (Rhai's `unexpected '\0'`) is shown escaped;
    /// line breaks and tabs stay layout.
    #[test]
    fn a_message_quoting_a_control_character_shows_it_escaped() {
        let e = LoadError {
            file: PathBuf::from("a.rhai"),
            location: Some(Location { line: 2, column: 3 }),
            message: "unexpected '\0' and \u{1b}[31m\n\tnext".into(),
        };
        assert_eq!(
            e.to_string(),
            "a.rhai:2:3: unexpected '\\u{0}' and \\u{1b}[31m\n\tnext"
        );
    }

    /// YAML 1.2 has no merge keys: `<<: *a` is a field named `<<`, refused, and said why.
    #[test]
    fn a_merge_key_is_refused_with_why() {
        let dir = default_file(
            "rules:\n  - &a\n    name: a\n    amount: { min: 1 }\n    reason: x\n  - <<: *a\n    name: b\n",
        );
        let errors = dir.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(":6:5: rules[1] (rule \"b\"): unknown field \"<<\"")
                && errors[0].ends_with("\"<<\" (a YAML merge key) is not supported: it is read as a field named \"<<\", not as the fields of its alias; write the fields out"),
            "{errors:?}"
        );
    }

    /// Read from YAML, `{ "$serde_json::private::Number": "5" }` in a fetch body would be sent
    /// as `5`: a key serde_json takes for an instruction is refused at the key.
    #[test]
    fn a_key_serde_json_reserves_is_refused_in_a_fetch_body() {
        let dir = default_file(
            "upstreams:\n  shop: { url: \"http://127.0.0.1:9\" }\nrules:\n  - name: hold\n    fetch:\n      upstream: shop\n      method: POST\n      path: /hold\n      body: { order: \"{order_id}\", n: { \"$serde_json::private::Number\": \"5\" } }\n    reason: x\n",
        );
        let errors = dir.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].ends_with(":9:41: rules[0].fetch.body.n.$serde_json::private::Number (rule \"hold\"): a key starting with \"$serde_json::private::\" is read by the JSON reader here as an instruction, not as data (the body sent would not be the one written); rename the key"),
            "{errors:?}"
        );
    }

    /// A fetch's body is free-form JSON, where no type refuses a merge key: `<<: *common`
    /// was sent as a field named `<<`. Nor may the body itself be left without a value (its
    /// lines commented out), which sent a POST with no body; and a placeholder with an empty
    /// field name always read empty.
    #[test]
    fn a_fetch_body_is_sent_as_written_or_refused() {
        let fetch = |body: &str, reason: &str| {
            default_file(&format!(
                "upstreams:\n  shop: {{ url: \"http://127.0.0.1:9\" }}\nrules:\n  - name: hold\n    fetch:\n      upstream: shop\n      method: POST\n      path: /hold\n      body:{body}\n    reason: \"{reason}\"\n"
            ))
            .errors()
        };
        let errors = fetch(" { <<: { shop: gangnam }, qty: 2 }", "x");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(":9:15: rules[0].fetch.body.<< (rule \"hold\"): \"<<\" (a YAML merge key) is not supported"),
            "{errors:?}"
        );
        let errors = fetch("\n      #  order: \"{order_id}\"", "x");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains(":9:7: rules[0].fetch.body (rule \"hold\"): no value"),
            "{errors:?}"
        );
        let errors = fetch(" { n: .inf, l: [1, .nan] }", "x");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains(":9:18: rules[0].fetch.body.n (rule \"hold\"): infinity and NaN are no JSON numbers"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains(":9:31: rules[0].fetch.body.l[1] (rule \"hold\")"),
            "{errors:?}"
        );
        for placeholder in [
            "{response.body..left}",
            "{response.body.left.}",
            "{response.body.}",
        ] {
            let errors = fetch(" { n: 1 }", &format!("남은 수량 {placeholder}개"));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].contains("has an empty field name (two dots together"),
                "{errors:?}"
            );
        }
    }

    /// libyaml names a control character by its byte offset, with no position: it is found
    /// and named instead.
    #[test]
    fn a_control_character_is_located_and_named() {
        for (c, line, column) in [('\u{1b}', 4, 15), ('\u{7f}', 4, 15), ('\u{9b}', 4, 15)] {
            let dir = default_file(&format!(
                "rules:\n  - name: a\n    amount: {{ min: 1 }}\n    reason: \"x{c}y 한\"\n"
            ));
            let code = c as u32;
            assert_eq!(
                dir.errors(),
                [dir.at(DEFAULT, line, column, &format!("a control character (U+{code:04X}) is not allowed in YAML, even in quotes; delete it (an editor may show it as ^[ or a box), or inside double quotes write it as an escape (\\u{code:04X})"))]
            );
        }
    }

    #[test]
    fn invalid_utf8_is_located_at_the_first_bad_byte() {
        let dir = RulesDir::new();
        let write = |rel: &str, bytes: &[u8]| {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        };
        // Columns count characters, as every other location does: "한도" is 2 columns, 6 bytes.
        write(
            "bin.yaml",
            b"rules:\n  - name: limit\n    reason: \"\xED\x95\x9C\xEB\x8F\x84\xFF\"\n",
        );
        // A file cut inside a character.
        write("cut.yaml", b"rules: []\n# \xED\x95");
        write(
            DEFAULT,
            b"rules:\n  - name: s\n    script: scripts/bin.rhai\n",
        );
        // Lines that end in a lone CR count as lines, as everywhere.
        write("scripts/bin.rhai", b"// a\rlet x = 1;\n\"\xC3\xA9\xC3(\"\n");
        assert_eq!(
            dir.errors(),
            [
                dir.at(
                    "bin.yaml",
                    3,
                    16,
                    "not valid UTF-8 (byte 0xFF); save the file as UTF-8"
                ),
                dir.at(
                    "cut.yaml",
                    2,
                    3,
                    "not valid UTF-8 (the file ends inside a character); save the file as UTF-8"
                ),
                dir.at(
                    "scripts/bin.rhai",
                    3,
                    3,
                    r#"not valid UTF-8 (byte 0xC3); save the file as UTF-8 (script of rule "s" in default.yaml)"#
                ),
            ]
        );
        // On the first line, at its first byte.
        write("bin.yaml", b"\xFEoops");
        write("cut.yaml", ONE_RULE.as_bytes());
        write("scripts/bin.rhai", b"true");
        assert_eq!(
            dir.errors(),
            [dir.at(
                "bin.yaml",
                1,
                1,
                "not valid UTF-8 (byte 0xFE); save the file as UTF-8"
            )]
        );
    }

    #[test]
    fn rules_version_covers_scripts_of_any_name() {
        let dir = default_file(
            "rules:\n  - name: a\n    script: scripts/chk.txt\n  - name: b\n    script: ./lib/b.js\n",
        );
        dir.write("scripts/chk.txt", "true\n")
            .write("lib/b.js", "true\n");
        assert_eq!(
            referenced_scripts(dir.path()),
            [PathBuf::from("lib/b.js"), PathBuf::from("scripts/chk.txt")]
        );
        let first = dir.version();
        assert_eq!(dir.ok().version, first);

        dir.write("scripts/chk.txt", "false\n");
        let second = dir.version();
        assert_ne!(
            second, first,
            "an edit of scripts/chk.txt changes the version"
        );
        assert_eq!(dir.ok().version, second);
        dir.write("lib/b.js", "false\n");
        let third = dir.version();
        assert_ne!(third, second, "an edit of ./lib/b.js changes the version");

        // Files no rule reads, next to the scripts, do not count.
        dir.write("scripts/notes.txt", "anything")
            .write("lib/decisions.jsonl", "{}\n");
        assert_eq!(dir.version(), third);

        // A referenced script that is missing still has a version (the load reports the error),
        // and creating it changes the version.
        fs::remove_file(dir.path().join("scripts/chk.txt")).unwrap();
        let missing = dir.version();
        assert_ne!(missing, third);
        dir.write("scripts/chk.txt", "");
        assert_ne!(dir.version(), missing);
    }

    #[test]
    fn referenced_scripts_are_read_leniently_and_only_from_rulesets() {
        let dir = default_file(
            r#"rules:
  - name: a
    script: scripts/a.txt
    unknown_key: makes the file invalid, the reference still counts
  - name: escapes
    script: ../outside.txt
  - name: absolute
    script: /etc/passwd
  - name: empty
    script: ""
  - name: none
    amount: { max: 1 }
"#,
        );
        dir.write("broken.yaml", "rules: [ oops")
            .write(
                ".hidden.yaml",
                "rules:\n  - name: h\n    script: hidden.txt\n",
            )
            .write(
                "tests/default.yaml",
                "rules:\n  - name: t\n    script: test.txt\n",
            );
        assert_eq!(
            referenced_scripts(dir.path()),
            [PathBuf::from("scripts/a.txt")]
        );
    }
}

/// Audited defects: a ruleset without rules loaded and approved every payment (fail-open);
/// `forward.path` placeholders were sent to the merchant as written.
mod fail_open {
    use super::*;

    /// The error, verbatim, as an operator reads it.
    const NO_RULES_MESSAGE: &str = "no rules: a ruleset needs at least one rule (an empty ruleset would approve every payment; to approve everything on purpose, write a rule with when: 'true' and action: approve)";

    #[test]
    fn a_ruleset_without_rules_is_an_error_at_the_rules_key_or_the_start() {
        assert_eq!(NO_RULES, NO_RULES_MESSAGE);
        let cases: &[(&str, &str, (usize, usize))] = &[
            // What a full disk or a non-atomic save leaves behind.
            ("0 bytes", "", (1, 1)),
            ("blank lines", "\n\n   \n", (1, 1)),
            ("a BOM", "\u{feff}", (1, 1)),
            (
                "comments only",
                "# nothing yet\n\n   # still nothing\n",
                (1, 1),
            ),
            ("an empty document", "---\n# an empty document\n", (1, 1)),
            ("an explicit null document", "~\n", (1, 1)),
            ("a null document", "# cleared\nnull\n", (1, 1)),
            ("settings only", "settings:\n  deadline: 4s\n", (1, 1)),
            ("an empty settings key", "settings:\n", (1, 1)),
            (
                "settings and upstreams",
                "settings:\n  on_error: reject\nupstreams:\n  shop:\n    url: http://shop.test\n",
                (1, 1),
            ),
            // `rules` given, nothing under it: reported at the key.
            ("a bare rules key", "rules:\n", (1, 1)),
            (
                "a file cut right after the rules key",
                "settings:\n  deadline: 4s\nrules:",
                (3, 1),
            ),
            (
                "rules commented out",
                "settings:\n  on_error: approve\nrules:\n  # - name: later\n  #   amount: { max: 1 }\n",
                (3, 1),
            ),
            ("rules: null", "settings: {}\nrules: null\n", (2, 1)),
            ("rules: ~", "# header\n\nrules: ~\n", (3, 1)),
            // An explicit empty list is no different: it approves everything too.
            ("rules: []", "settings:\n  deadline: 2s\nrules: []\n", (3, 1)),
            ("a flow mapping", "{ settings: {}, rules: [] }\n", (1, 17)),
        ];
        for (what, yaml, (line, col)) in cases {
            let dir = default_file(yaml);
            assert_eq!(
                dir.errors(),
                [dir.at(DEFAULT, *line, *col, NO_RULES_MESSAGE)],
                "{what}: {yaml:?}"
            );
        }
    }

    /// A key left without a value would read as absent: a cleared `mode:` enforcing a trial
    /// rule, a cleared `min:` letting any amount through. Each is an error at its key; a null
    /// inside a fetch `body` is JSON's null and stays.
    #[test]
    fn a_key_without_a_value_is_an_error_at_the_key() {
        let yaml = "settings:\n  on_error:\nrules:\n  - name: trial\n    amount:\n      min:\n      max: 1000000\n    mode:\n    reason: x\n  - name: range\n    amount: { min: ~, max: 5 }\n    reason: y\n";
        let dir = default_file(yaml);
        let no_value = |path: &str| format!("{path}: no value; write one, or delete the key");
        assert_eq!(
            dir.errors(),
            [
                dir.at(DEFAULT, 2, 3, &no_value("settings.on_error")),
                dir.at(
                    DEFAULT,
                    6,
                    7,
                    &no_value(r#"rules[0].amount.min (rule "trial")"#)
                ),
                dir.at(DEFAULT, 8, 5, &no_value(r#"rules[0].mode (rule "trial")"#)),
                dir.at(
                    DEFAULT,
                    11,
                    15,
                    &no_value(r#"rules[1].amount.min (rule "range")"#)
                ),
            ]
        );
        let body = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: hold\n    fetch: { upstream: shop, method: POST, path: /hold, body: { note: ~, order: \"{order_id}\" } }\n    reason: x\n";
        default_file(body)
            .load_with(&[])
            .expect("a null in a fetch body is JSON");
        // An empty section is no section.
        let empty = format!("settings:\n{ONE_RULE}");
        default_file(&empty)
            .load_with(&[])
            .expect("settings: left empty");
    }

    /// `{amount}` written without quotes is YAML's mapping `{amount: null}`: in a fetch body it
    /// would be sent as `"amount": {"amount": null}`, elsewhere it is no text. Each is an error
    /// naming the quotes; a body's own nulls, also under a key named like a placeholder
    /// (`amount: null`, `tx_id: ~`, written with their colon), stay.
    #[test]
    fn an_unquoted_placeholder_is_an_error_naming_the_quotes() {
        let yaml = "upstreams:\n  shop: { url: \"http://shop.invalid\" }\nrules:\n  - name: hold\n    fetch:\n      upstream: shop\n      method: POST\n      path: /hold\n      headers: { X-Order: {order_id} }\n      body:\n        order: \"{order_id}\"\n        amount: {amount}\n        items: [ {tx_id}, { sku: ~ }, { tx_id: ~ } ]\n        store_id: ~\n        payment: { amount: null, currency: KRW }\n    reason: {order_id}\n";
        let dir = default_file(yaml);
        let quote = |path: &str, name: &str| {
            format!("{path} (rule \"hold\"): {{{name}}} without quotes is YAML's mapping {{{name}: no value}}, not text; write it in quotes, \"{{{name}}}\"")
        };
        let errors = dir.errors();
        for want in [
            dir.at(
                DEFAULT,
                9,
                28,
                &quote("rules[0].fetch.headers.X-Order", "order_id"),
            ),
            dir.at(
                DEFAULT,
                12,
                18,
                &quote("rules[0].fetch.body.amount", "amount"),
            ),
            dir.at(
                DEFAULT,
                13,
                19,
                &quote("rules[0].fetch.body.items[0]", "tx_id"),
            ),
            dir.at(DEFAULT, 16, 14, &quote("rules[0].reason", "order_id")),
        ] {
            assert!(errors.contains(&want), "{want}\nnot in {errors:#?}");
        }
        assert!(
            !errors.iter().any(|e| e.contains("sku")
                || e.contains("store_id")
                || e.contains("payment")
                || e.contains("items[2]")
                || e.contains("invalid type")),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_ruleset_without_rules_fails_the_whole_load() {
        // One empty file among valid ones: nothing loads (so a reload keeps the rules in use),
        // and the other errors of the file are reported with it, in file order.
        let dir = RulesDir::new();
        dir.write(DEFAULT, ONE_RULE)
            .write("shop.yaml", "")
            .write(
                "trial.yaml",
                "settings:\n  deadline: 4 sec\n  reject_status: 200\nrules: []\n",
            )
            .write("tests/default.yaml", "cases: []\n");
        assert_eq!(
            dir.errors(),
            [
                dir.at("shop.yaml", 1, 1, NO_RULES_MESSAGE),
                dir.at(
                    "trial.yaml",
                    2,
                    13,
                    r#"invalid duration "4 sec", expected a number and a unit like 500ms, 1.5s, 4s or 1m"#
                ),
                dir.at(
                    "trial.yaml",
                    3,
                    18,
                    "reject_status 200 is not a refusal, expected a 4xx or 5xx status"
                ),
                dir.at("trial.yaml", 4, 1, NO_RULES_MESSAGE),
            ]
        );
        // Rules that fail to compile are errors of their own, not "no rules".
        let dir =
            default_file("rules:\n  - name: a\n    amount: { max: 1, most: 2 }\n    reason: r\n");
        assert_eq!(
            dir.errors(),
            [dir.at(
                DEFAULT,
                3,
                23,
                r#"rules[0].amount (rule "a"): unknown field "most", expected "min" or "max""#
            )]
        );
    }

    #[test]
    fn approving_everything_on_purpose_is_one_rule() {
        // What the error message suggests: it loads, with no warning.
        let dir =
            default_file("rules:\n  - name: approve-all\n    when: 'true'\n    action: approve\n");
        let rules = dir.ok();
        assert_eq!(rules.rule_count(), 1);
        assert_eq!(rules.warnings, Vec::<String>::new());
        let rule = &rules.get("default").unwrap().rules[0];
        assert_eq!(rule.check.kind(), "approve");
        assert_eq!(rule.mode, Mode::Enforce);
    }

    #[test]
    fn a_ruleset_enforcing_no_rule_loads_with_a_warning() {
        let dir = RulesDir::new();
        dir.write(
            DEFAULT,
            "rules:\n  - name: trial\n    amount: { max: 100 }\n    mode: shadow\n    reason: x\n",
        )
        .write(
            "parked.yaml",
            "rules:\n  - name: a\n    amount: { max: 100 }\n    mode: off\n    reason: x\n",
        )
        .write(
            "mixed.yaml",
            "rules:\n  - name: a\n    amount: { max: 100 }\n    mode: off\n    reason: x\n  - name: b\n    require: 'amount < 5'\n    mode: shadow\n    reason: y\n",
        )
        // One enforced rule is enough, whatever its kind.
        .write(
            "enforced.yaml",
            "rules:\n  - name: a\n    amount: { max: 100 }\n    mode: shadow\n    reason: x\n  - name: b\n    amount: { max: 200 }\n    reason: y\n",
        )
        .write(
            "approve.yaml",
            "rules:\n  - name: a\n    amount: { max: 100 }\n    mode: off\n    reason: x\n  - name: qa\n    when: 'order_id.starts_with(\"qa-\")'\n    action: approve\n",
        );
        let rules = dir.ok();
        assert_eq!(rules.rule_count(), 8);
        let warning = |file: &str| {
            format!(
                "{}: no rule is enforced (every rule has mode: shadow or off), so this ruleset approves every payment",
                dir.path().join(file).display()
            )
        };
        assert_eq!(
            warning(DEFAULT),
            format!("{}: {NOTHING_ENFORCED}", dir.path().join(DEFAULT).display())
        );
        // Its only enforced rule approves: it approves every payment too.
        let refuses_nothing = format!(
            "{}: {NOTHING_REFUSES}",
            dir.path().join("approve.yaml").display()
        );
        assert_eq!(
            rules.warnings,
            [
                refuses_nothing,
                warning(DEFAULT),
                warning("mixed.yaml"),
                warning("parked.yaml")
            ]
        );
    }

    /// Rules that load and never act — a constant guard or requirement, rules behind an
    /// approval of everything, a window over for every payment — are warned about where they
    /// are written; the same rules written to act, or parked with `mode: off`, are not.
    #[test]
    fn rules_that_can_never_act_are_warned_about() {
        let dir = default_file(
            r#"rules:
  - name: never
    when: 'false'
    amount: { max: 100 }
    reason: x
  - name: always
    require: ' (true) '
    reason: x
  - name: year-slip
    window: { from: "2020-12-01T10:00:00+09:00", until: "2020-12-03T18:00:00+09:00" }
    reason: x
  - name: event-over
    when: 'order_id.starts_with("m-")'
    window: { until: "2020-12-03T18:00:00+09:00" }
    reason: x
  - name: parked
    when: 'false'
    require: 'true'
    mode: off
    reason: x
  - name: closed
    require: 'false'
    reason: x
  - name: approve-all
    when: 'true'
    action: approve
  - name: hidden
    amount: { max: 5 }
    reason: x
  - name: also-parked
    amount: { max: 5 }
    mode: off
    reason: x
"#,
        );
        let rules = dir.ok();
        let path = dir.path().join(DEFAULT);
        let at = |line: usize, col: usize, text: &str| {
            format!("{}:{line}:{col}: {text}", path.display())
        };
        assert_eq!(
            rules.warnings,
            [
                at(
                    3,
                    11,
                    r#"rule "never": when is always false, so this rule never applies; to keep a rule in the file without evaluating it, use mode: off"#
                ),
                at(
                    7,
                    14,
                    r#"rule "always": require is always true, so this rule never refuses"#
                ),
                at(
                    10,
                    13,
                    r#"rule "year-slip": the window ended at 2020-12-03T18:00:00+09:00, so this rule refuses every payment from now on; is the date right?"#
                ),
                at(
                    25,
                    11,
                    r#"rule "approve-all": when is always true, so this rule approves every payment and the rule after it is never evaluated"#
                ),
            ]
        );
        // Approving everything on purpose is one rule, alone: no warning (see above).
        let alone = default_file("rules:\n  - name: approve-all\n    when: ' true'\n    action: approve\n  - name: later\n    amount: { max: 5 }\n    mode: off\n    reason: x\n");
        assert_eq!(alone.ok().warnings, Vec::<String>::new());
    }

    /// A window bound in UTC (or any offset but Korea's) loads, with a warning that shows it
    /// in Korean time and the bound to write if the clock time was meant in Korea; bounds
    /// written with +09:00 say nothing.
    #[test]
    fn a_window_bound_in_another_offset_is_shown_in_korean_time() {
        let dir = default_file(
            r#"rules:
  - name: sale
    window: { from: "2027-12-01T10:00:00Z", until: "2027-12-03T18:00:00+09:00" }
    reason: x
  - name: evening
    window: { until: "2027-12-03T23:30:15-05:00" }
    reason: x
  - name: parked
    window: { until: "2027-12-03T23:30:00Z" }
    mode: off
    reason: x
"#,
        );
        let rules = dir.ok();
        let path = dir.path().join(DEFAULT);
        assert_eq!(
            rules.warnings,
            [
                format!("{}:3:21: rule \"sale\": window.from is 2027-12-01T19:00:00+09:00 in Korean time; if 10:00 in Korea was meant, write 2027-12-01T10:00:00+09:00", path.display()),
                format!("{}:6:22: rule \"evening\": window.until is 2027-12-04T13:30:15+09:00 in Korean time; if 23:30:15 in Korea was meant, write 2027-12-03T23:30:15+09:00", path.display()),
            ]
        );
    }

    /// A forward before checks that may still refuse has the merchant confirm orders whose
    /// payments are then refused; after them (or followed only by approvals, shadow rules and
    /// rules turned off), nothing to say.
    #[test]
    fn a_forward_before_refusing_checks_is_a_warning() {
        let rules = |order: &str| {
            let fw = "  - { name: existing, forward: { upstream: shop, path: /confirm } }\n";
            let limit = "  - { name: limit, amount: { max: 5 }, reason: x }\n";
            let trial = "  - { name: trial, amount: { max: 3 }, reason: y, mode: shadow }\n";
            let body = match order {
                "forward first" => format!("{fw}{limit}{trial}"),
                _ => format!("{limit}{fw}{trial}"),
            };
            format!("upstreams: {{ shop: {{ url: \"http://shop.test\" }} }}\nrules:\n{body}")
        };
        let dir = default_file(&rules("forward first"));
        let path = dir.path().join(DEFAULT);
        assert_eq!(
            dir.ok().warnings,
            [format!("{}:3:32: rule \"existing\" forwards to the merchant's confirm handler before rule \"limit\", which may still refuse: the merchant would confirm an order whose payment is then refused; put the forward after the checks", path.display())]
        );
        assert_eq!(
            default_file(&rules("forward last")).ok().warnings,
            Vec::<String>::new()
        );
        // One confirm handler per API version: the forwards are one step.
        let per_api = "upstreams: { shop: { url: \"http://shop.test\" } }\nrules:\n  - { name: v1, when: 'api == \"v1\"', forward: { upstream: shop, path: /v1/confirm } }\n  - { name: v2, when: 'api != \"v1\"', forward: { upstream: shop, path: /v2/confirm } }\n";
        assert_eq!(default_file(per_api).ok().warnings, Vec::<String>::new());
        // Two forwards for every request: the second may refuse after the first confirmed.
        let both = "upstreams: { shop: { url: \"http://shop.test\" } }\nrules:\n  - { name: orders, forward: { upstream: shop, path: /confirm } }\n  - { name: inventory, forward: { upstream: shop, path: /reserve } }\n";
        assert_eq!(default_file(both).ok().warnings.len(), 1);
    }

    #[test]
    fn forward_paths_are_fixed() {
        let dir = default_file(
            r#"upstreams:
  shop:
    url: http://shop.test
rules:
  - name: quoted
    forward: { upstream: shop, path: "/fwd/{order_id}" }
  - name: plain
    forward:
      upstream: shop
      path: /fwd/a/{tx_id}
  - name: escaped
    forward: { upstream: shop, path: '/fwd/{{literal}}' }
  - name: closing
    forward: { upstream: shop, path: "/fwd}" }
  - name: relative
    forward: { upstream: shop, path: "fwd/{amount}" }
"#,
        );
        let message = |rule: &str| {
            format!(
                r#"rule "{rule}": forward.path is a fixed path: placeholders like {{order_id}} are not filled in there (forward sends the original request unchanged, so the merchant's handler reads the order from the body); remove the braces, or use fetch, whose path is a template"#
            )
        };
        assert_eq!(
            dir.errors(),
            [
                // At the brace, inside the scalar.
                dir.at(DEFAULT, 6, 44, &message("quoted")),
                dir.at(DEFAULT, 10, 20, &message("plain")),
                dir.at(DEFAULT, 12, 44, &message("escaped")),
                dir.at(DEFAULT, 14, 43, &message("closing")),
                dir.at(
                    DEFAULT,
                    16,
                    38,
                    r#"rule "relative": forward.path must start with "/""#
                ),
                dir.at(DEFAULT, 16, 43, &message("relative")),
            ]
        );
        assert_eq!(
            message("x"),
            format!(r#"rule "x": {FORWARD_PATH_IS_FIXED}"#)
        );

        // A fixed path (a query string included) is sent as written.
        let dir = default_file(
            "upstreams:\n  shop:\n    url: http://shop.test/base\nrules:\n  - name: existing\n    forward: { upstream: shop, path: \"/payments/confirm?source=proxy\" }\n",
        );
        let rules = dir.ok();
        match &rules.get("default").unwrap().rules[0].check {
            Check::Forward(f) => assert_eq!(f.path, "/payments/confirm?source=proxy"),
            other => panic!("expected forward, got {other:?}"),
        }
    }

    #[test]
    fn fetch_paths_are_still_templates() {
        // The fix for forward leaves fetch alone: placeholders there are filled in.
        let dir = default_file(
            "upstreams:\n  shop:\n    url: http://shop.test\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/api/stock/{order_id}\" }\n    reason: x\n",
        );
        let rules = dir.ok();
        match &rules.get("default").unwrap().rules[0].check {
            Check::Fetch(f) => {
                assert_eq!(f.path, reason("/api/stock/{order_id}"));
                assert!(f.path.has_placeholders());
            }
            other => panic!("expected fetch, got {other:?}"),
        }
    }
}
