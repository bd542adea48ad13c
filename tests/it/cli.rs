//! `check`, `test` and `eval` as an operator runs them.

use std::process::Output;

use crate::support::*;

/// `check` on a rules directory.
fn check(rules: &Rules) -> Output {
    run_cli(&["check", "--rules", rules.path().to_str().unwrap()], None)
}

/// `check --strict` on `rules`.
fn check_strict(rules: &Rules) -> Output {
    run_cli(
        &[
            "check",
            "--strict",
            "--rules",
            rules.path().to_str().unwrap(),
        ],
        None,
    )
}

/// `check` on `rules`, which must pass with `summary` on stdout; its output, for the warnings.
fn check_ok(rules: &Rules, summary: &str) -> Output {
    let out = check(rules);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().next(), Some(summary), "{stdout}");
    out
}

/// `check` on `rules`, which must fail: its error lines, each beginning as in `starts`
/// (paths relative to the rules directory).
fn check_fails_with(rules: &Rules, starts: &[&str]) {
    let out = check(rules);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}/", rules.path().display());
    let lines: Vec<String> = stderr.lines().map(|l| l.replace(&prefix, "")).collect();
    assert_eq!(lines.len(), starts.len(), "{stderr}");
    for (line, start) in lines.iter().zip(starts) {
        assert!(
            line.starts_with(start),
            "{line}\ndoes not start with\n{start}"
        );
    }
}

fn shipped_rules() -> String {
    format!("{}/rules", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_the_shipped_rules() {
    let out = run_cli(&["check", "--rules", &shipped_rules()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: 1 rulesets, 4 rules\nserves: POST /confirm (default.yaml)\n\
         tests: 17 cases in 1 file read, not run (confirm-proxy test runs them)\n"
    );
}

/// The confirm URLs to register are listed; no `default.yaml` is said there, not warned
/// about, so `--strict` passes rules whose confirm URLs all name their ruleset.
#[test]
fn check_lists_the_confirm_urls_and_passes_strict_without_a_default() {
    let rules = Rules::with(
        "concert.yaml",
        "rules:\n  - { name: a, amount: { max: 10 }, reason: x }\n",
    );
    rules.write(
        "marathon.yaml",
        "rules:\n  - { name: b, amount: { max: 10 }, reason: x }\n",
    );
    let out = check_strict(&rules);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: 2 rulesets, 2 rules\nserves: POST /confirm/concert (concert.yaml), POST /confirm/marathon (marathon.yaml), POST /confirm answers 404 (no default.yaml)\n"
    );
}

#[test]
fn check_prints_every_error_with_its_location() {
    let rules = Rules::with("default.yaml", "settings:\n  deadline: 4 sec\nrules:\n  - name: a\n    require: 'order_idd == 1'\n    reason: x\n");
    rules.write("other.yaml", "rules:\n  - name: b\n    amount: { mx: 1 }\n");
    check_fails_with(
        &rules,
        &[
            "default.yaml:2:13: invalid duration \"4 sec\"",
            "default.yaml:5:15: rule \"a\": require: invalid expression:",
            "other.yaml:3:15: rules[0].amount (rule \"b\"): unknown field \"mx\"",
        ],
    );
}

#[test]
fn eval_prints_the_decision_and_trace() {
    let body = testdata("v1.json");
    let out = run_cli(&["eval", "--rules", &shipped_rules(), "-"], Some(&body));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["decision"], "approve");
    // The clock's time, to run it again with --now.
    let now = v["now"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(now).is_ok(), "{now}");
    assert_eq!(
        v["request"],
        serde_json::json!({"api": "v1", "order_id": "order-20261201-0001",
            "tx_id": "imp_123412341234", "amount": 50000, "store_id": null})
    );
    let outcomes: Vec<(&str, &str)> = v["decision"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["rule"].as_str().unwrap(), t["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("qa-orders", "skipped"),
            ("amount-range", "pass"),
            ("no-legacy-orders", "pass"),
            ("lower-limit-trial", "pass")
        ]
    );

    let out = run_cli(
        &[
            "eval",
            "--rules",
            &shipped_rules(),
            "--ruleset",
            "nope",
            "-",
        ],
        Some(&body),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: unknown ruleset \"nope\", expected one of default: name it with --ruleset\n"
    );
    // Over 64 KiB: what `serve` would answer, 413.
    let mut big = body.clone();
    big.resize(64 * 1024 + 1, b' ');
    let out = run_cli(&["eval", "--rules", &shipped_rules(), "-"], Some(&big));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["status"], 413, "{v}");
    let out = run_cli(&["eval", "--rules", "/nonexistent", "-"], Some(&body));
    assert_eq!(out.status.code(), Some(1));
    let out = run_cli(&["eval", "--now", "yesterday", "-"], Some(&body));
    assert_eq!(out.status.code(), Some(2));
    // --now's time as given, offset and all.
    let at = "2026-12-01T12:00:00.250+09:00";
    let out = run_cli(
        &["eval", "--rules", &shipped_rules(), "--now", at, "-"],
        Some(&body),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["now"], at);
}

/// `--content-type` decides a body as `serve` did with that header: the same form is a 400
/// as JSON and an approval as a form (and without the option, read as JSON, then a form).
/// A decision-log record given to eval (the next step after replay names one) is no request
/// body: said, with the command that evaluates its request at its time.
#[test]
fn eval_given_a_decision_log_record_says_what_to_give_it() {
    let record = r#"{"time":"2026-12-07T07:41:56.719410Z","decision_id":"d-1","ruleset":"default","tx_id":"imp_1","decision":"approve","status":200,"trace":[],"request":{"imp_uid":"imp_1","merchant_uid":"o-1","amount":5000}}"#;
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(record).unwrap())
            .unwrap();
    for given in [record.to_owned(), format!("{record}\n{record}\n"), pretty] {
        let out = run_cli(
            &["eval", "--rules", &shipped_rules(), "-"],
            Some(given.as_bytes()),
        );
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("this is a decision-log record, not a request body")
                && err.contains(&format!("jq -c .request RECORD | confirm-proxy eval --rules {} --ruleset default --dry-run --now 2026-12-07T07:41:56.719410Z -", shipped_rules())),
            "{err}"
        );
    }
}

/// A trial: `eval` said nothing of what `check` warns about, which may be why a decision
/// surprises; of the ruleset evaluated, not of the others.
#[test]
fn eval_prints_the_rules_warnings() {
    let shadow_only =
        "settings: { deadline: 1s }\nrules:\n  - { name: trial, amount: { max: 5 }, reason: x, mode: shadow }\n";
    let rules = Rules::with("default.yaml", shadow_only);
    rules.write("other.yaml", shadow_only);
    let out = run_cli(
        &["eval", "--rules", rules.path().to_str().unwrap(), "-"],
        Some(v1("o-1", 5000).as_bytes()),
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: ") && err.contains("default.yaml: no rule is enforced"),
        "{err}"
    );
    assert!(!err.contains("other.yaml"), "{err}");
}

#[test]
fn eval_reads_the_body_as_its_content_type_says() {
    let form = b"imp_uid=imp_1&merchant_uid=order-1&amount=50000".to_vec();
    let rules = shipped_rules();
    let decide = |content_type: &[&str]| {
        let mut args = vec!["eval", "--rules", &rules];
        args.extend_from_slice(content_type);
        args.push("-");
        let out = run_cli(&args, Some(&form));
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["decision"].clone()
    };
    let as_json = decide(&["--content-type", "application/json; charset=utf-8"]);
    assert_eq!(as_json["status"], 400, "{as_json}");
    assert!(
        as_json["reason"]
            .as_str()
            .unwrap()
            .contains("Content-Type이 application/json입니다"),
        "{as_json}"
    );
    let as_form = decide(&["--content-type", "application/x-www-form-urlencoded"]);
    assert_eq!(as_form["decision"], "approve", "{as_form}");
    assert_eq!(decide(&[])["decision"], "approve");
    assert_eq!(decide(&["--content-type", "text/plain"])["status"], 415);
    let out = run_cli(
        &["eval", "--rules", &rules, "--content-type", "\u{7f}", "-"],
        Some(&form),
    );
    assert_eq!(out.status.code(), Some(2));
}

/// A `healthy` rule reads eval's one probe, and stderr says what the probe found: why it failed
/// when it did. Only the ruleset evaluated is probed (audit: every ruleset's upstreams were,
/// and eval waited for all of them).
#[tokio::test]
async fn eval_says_what_the_health_probe_found() {
    use axum::routing::get;
    let shop =
        MockUpstream::start(axum::Router::new().route("/health", get(|| async { "ok" }))).await;
    // Port 1 on loopback: nothing listens, so the probe's connection is refused.
    let down = "http://127.0.0.1:1";
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "upstreams:\n  shop: {{ url: \"{}\", health: {{ path: /health }} }}\n  orders: {{ url: \"{down}\", health: {{ path: /health }} }}\nrules:\n  - {{ name: shop-up, healthy: shop, reason: 점검 중 }}\n  - {{ name: orders-up, healthy: orders, reason: 주문 서버 점검 중 }}\n",
            shop.url()
        ),
    );
    rules.write(
        "other.yaml",
        &format!(
            "upstreams:\n  same-shop: {{ url: \"{}\", health: {{ path: /health }} }}\nrules:\n  - {{ name: up, healthy: same-shop, reason: 점검 중 }}\n",
            shop.url()
        ),
    );
    let out = eval_o1(&rules, &[]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["decision"]["rule"], &v["decision"]["reason"]),
        (
            &serde_json::json!("orders-up"),
            &serde_json::json!("주문 서버 점검 중")
        )
    );
    assert_eq!(shop.calls_to("/health"), 1, "probed for another ruleset");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("note: health"))
        .collect();
    assert_eq!(notes.len(), 2, "{stderr}");
    let refused = format!(
        "note: health probe of upstream \"orders\": down (/health: connection refused by {})",
        down.trim_start_matches("http://")
    );
    assert_eq!(notes[0], refused, "{stderr}");
    assert_eq!(
        notes[1], "note: health probe of upstream \"shop\": up",
        "{stderr}"
    );
    // The refusing rule's trace says what the probe met; the passing one has nothing to say.
    let trace = &v["decision"]["trace"];
    assert_eq!(trace[0]["probe_failure"], serde_json::Value::Null, "{v}");
    assert_eq!(
        trace[1]["probe_failure"],
        refused
            .trim_start_matches("note: health probe of upstream \"orders\": down (")
            .trim_end_matches(')'),
        "{v}"
    );
}

/// `eval` calls upstreams for real: a `forward` (which may confirm at the merchant) is said on
/// stderr, and `--dry-run` holds it back, the rule counting as an error.
#[tokio::test]
async fn eval_names_calls_with_side_effects_and_dry_run_holds_them_back() {
    use axum::routing::{get, post};
    let shop = MockUpstream::start(
        axum::Router::new()
            .route("/stock/{id}", get(|| async { "{\"available\": 1}" }))
            .route("/confirm", post(|| async { "ok" })),
    )
    .await;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "upstreams: {{ shop: {{ url: \"{}\" }} }}\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: \"/stock/{{order_id}}\" }}\n    reason: r\n  - name: existing\n    forward: {{ upstream: shop, path: /confirm }}\n",
            shop.url()
        ),
    );
    let out = eval_o1(&rules, &[]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["decision"], "approve");
    assert_eq!(shop.calls_to("/confirm"), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let body = v1("o-1", 5);
    assert!(
        stderr.contains(&format!(
            "note: sent POST /confirm to upstream shop with body {body} for real"
        )),
        "{stderr}"
    );

    let out = eval_o1(&rules, &["--dry-run"]).await;
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["decision"], "reject");
    assert_eq!(v["decision"]["trace"][0]["outcome"], "pass", "GET is sent");
    assert_eq!(v["decision"]["trace"][1]["outcome"], "error");
    assert_eq!(shop.calls_to("/confirm"), 1, "not sent again");
    assert_eq!(shop.calls_to("/stock/"), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "note: held back POST /confirm to upstream shop with body {body} (--dry-run)"
        )),
        "{stderr}"
    );
    // A trial read the JSON as a refusal of an order that passes for real.
    assert!(
        stderr.contains("note: rule \"existing\" refused only because --dry-run held its call back: no rule before it refused, so sent for real, the decision turns on what upstream shop answers\n"),
        "{stderr}"
    );
    // Trial: a POST fetch's body template could be checked only in the merchant's log.
    let reserve = Rules::with(
        "default.yaml",
        &format!(
            "upstreams: {{ shop: {{ url: \"{}\" }} }}\nrules:\n  - name: reserve\n    fetch: {{ upstream: shop, method: POST, path: /reserve, body: {{ order: \"{{order_id}}\", amount: \"{{amount}}\" }} }}\n    reason: r\n",
            shop.url()
        ),
    );
    let out = eval_o1(&reserve, &["--dry-run"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"note: held back POST /reserve to upstream shop with body {"amount":"5","order":"o-1"} (--dry-run)"#
        ),
        "{stderr}"
    );
    // A refusal by another rule is no held-back call's doing.
    let early = Rules::with(
        "default.yaml",
        &format!(
            "upstreams: {{ shop: {{ url: \"{}\" }} }}\nrules:\n  - name: cap\n    amount: {{ max: 1 }}\n  - name: existing\n    forward: {{ upstream: shop, path: /confirm }}\n",
            shop.url()
        ),
    );
    let out = eval_o1(&early, &["--dry-run"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("refused only because"), "{stderr}");

    // An upstream that refuses the connection received nothing: said so, not "sent for real".
    // Port 1 on loopback: nothing listens there.
    let url = "http://127.0.0.1:1";
    let rules = Rules::with(
        "default.yaml",
        &format!("upstreams: {{ shop: {{ url: \"{url}\" }} }}\nrules:\n  - name: existing\n    forward: {{ upstream: shop, path: /confirm }}\n"),
    );
    let out = eval_o1(&rules, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "note: tried POST /confirm to upstream shop with body {}, not sent: connection refused",
            v1("o-1", 5)
        )),
        "{stderr}"
    );
}

/// A trial ran `eval` outside the project: the default `rules` was looked for there, and the
/// error did not say where, nor how to name the directory.
#[test]
fn a_rules_directory_not_found_says_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary())
        .arg("check")
        .current_dir(dir.path())
        .env_remove("CONFIRM_PROXY_RULES")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let cwd = dir.path().canonicalize().unwrap();
    assert!(
        stderr.contains(&format!(
            "(looked for in {}, where the command runs; give its path with --rules DIR)",
            cwd.join("rules").display()
        )),
        "{stderr}"
    );
}

#[test]
fn flags_are_read_from_the_environment() {
    let out = std::process::Command::new(binary())
        .args(["check"])
        .env("CONFIRM_PROXY_RULES", "/nonexistent-rules-dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-rules-dir"));
}

/// A value clap refuses stops the command before it runs, where a misspelt variable was
/// warned about: it is named first, as it may be what the operator meant to set.
#[test]
fn a_misspelt_variable_is_named_when_a_value_is_refused() {
    for format in ["json", "pretty"] {
        let out = serve_without_rules(format)
            .env("CONFIRM_PROXY_IDLE_TIMEOUT", "soon")
            .env("CONFIRM_PROXY_ALLOW_FORM", "10.0.0.0/8")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        // (Quotes escaped in JSON.)
        let warned = stderr
            .find("CONFIRM_PROXY_ALLOW_FORM is read by no flag of confirm-proxy; did you mean ")
            .expect(&stderr);
        assert!(stderr.contains("CONFIRM_PROXY_ALLOW_FROM"), "{stderr}");
        assert!(warned < stderr.find("soon").expect(&stderr), "{stderr}");
        // clap names the flag; the value came from a variable (a trial's env file).
        assert!(stderr.contains("CONFIRM_PROXY_IDLE_TIMEOUT"), "{stderr}");
    }
    let out = serve_without_rules("pretty")
        .args(["--idle-timeout", "soon"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("environment variable"), "{stderr}");
}

/// `serve` on a rules directory that is not there, logging in `format`: it refuses to start,
/// after reading its flags and setting up its logs.
fn serve_without_rules(format: &str) -> std::process::Command {
    let mut serve = std::process::Command::new(binary());
    serve.args([
        "serve",
        "--rules",
        "/nonexistent-rules-dir",
        "--log-format",
        format,
    ]);
    serve
}

/// Trial: a flag value that is no UTF-8 panicked in the code that looks for `--log-format`,
/// printing the value (a secret) with the backtrace; any command went that way.
#[test]
fn a_flag_that_is_no_utf8_is_refused_without_its_value() {
    use std::os::unix::ffi::OsStrExt;
    let secret = std::ffi::OsStr::from_bytes(b"whsec_\xffSECRETvalue");
    for format in ["json", "pretty"] {
        let out = serve_without_rules(format)
            .arg("--webhook-secret")
            .arg(secret)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("invalid UTF-8"), "{stderr}");
        assert!(
            !stderr.contains("SECRET") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    let out = std::process::Command::new(binary())
        .args(["test", "--rules", "/nonexistent-rules-dir"])
        .arg(std::ffi::OsStr::from_bytes(b"case\xff"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Trial: `RUST_LOG=` (what docker-compose passes for an unset `${RUST_LOG}`) turned every
/// line off, the reasons not to start included; blank is the default, as unset is.
#[test]
fn a_blank_rust_log_logs_as_an_unset_one() {
    for format in ["json", "pretty"] {
        let out = serve_without_rules(format)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("RUST_LOG", if format == "json" { " " } else { "," })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("not starting") && stderr.contains("protections"),
            "{stderr}"
        );
    }
}

#[test]
fn test_runs_the_shipped_rule_tests() {
    let out = run_cli(&["test", "--rules", &shipped_rules()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
    // --verbose lists the cases that passed too, what each decided and by which rule.
    let out = run_cli(
        &[
            "test",
            "--rules",
            &shipped_rules(),
            "-v",
            "amount at the minimum",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "ok   {}/tests/default.yaml: amount at the minimum is approved -> approve\n1 passed, 0 failed\n",
            shipped_rules()
        )
    );
    let scripted = format!("{}/examples/scripted-rules", env!("CARGO_MANIFEST_DIR"));
    let out = run_cli(&["test", "--rules", &scripted], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

const LIMIT_RULES: &str =
    "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n";

/// Trace columns line up under Hangul rule names (two columns a syllable), and a FILTER typed
/// on a Mac (Hangul decomposed, NFD) finds the case written composed.
#[test]
fn test_reports_line_up_and_filters_match_hangul_however_typed() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - { name: 소액-확인, amount: { min: 1 }, reason: r }\n  - { name: limit, amount: { max: 10000 }, reason: \"한도 초과\" }\n",
    );
    rules.write(
        "tests/limit.yaml",
        "ruleset: default\ncases:\n  - name: 한도 초과 주문\n    request: { imp_uid: i, merchant_uid: m, amount: 50000 }\n    expect: { decision: approve }\n",
    );
    let dir = rules.path().to_str().unwrap();
    let decomposed: String =
        unicode_normalization::UnicodeNormalization::nfd("한도 초과").collect();
    assert_ne!(decomposed, "한도 초과");
    let out = run_cli(&["test", "--rules", dir, &decomposed], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.trim_end().ends_with("0 passed, 1 failed"),
        "{stdout}"
    );
    let columns: Vec<usize> = stdout
        .lines()
        .skip_while(|l| *l != "  trace:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| {
            let outcome = l.find(" pass").or_else(|| l.find(" reject")).unwrap();
            unicode_width::UnicodeWidthStr::width(&l[..outcome])
        })
        .collect();
    assert_eq!(columns.len(), 2, "{stdout}");
    assert_eq!(columns[0], columns[1], "{stdout}");
}

#[test]
fn test_reports_failing_cases_with_their_trace() {
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    rules.write(
        "tests/limit.yaml",
        "ruleset: default\ncases:\n  - name: small passes\n    request: { imp_uid: i, merchant_uid: m, amount: 5 }\n    expect: { decision: approve }\n  - name: wrong expectation\n    request: { imp_uid: i, merchant_uid: m, amount: 50000 }\n    expect: { decision: approve }\n  - name: other\n    request: { imp_uid: i, merchant_uid: m, amount: 50000 }\n    expect: { decision: reject, reason: \"한도 초과\" }\n",
    );
    let dir = rules.path().to_str().unwrap();
    let out = run_cli(&["test", "--rules", dir], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Where the case is: the place of its name.
    assert!(
        stdout.contains("tests/limit.yaml:6:11: wrong expectation\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected decision approve, got reject"),
        "{stdout}"
    );
    assert!(
        stdout.contains("actual: reject (status 409), rule limit, reason \"한도 초과\""),
        "{stdout}"
    );
    // The clock it ran on (no `now:` here: the machine's).
    assert!(
        stdout.contains(
            "\n  now:    the machine's clock (neither the case nor its file sets now:)\n"
        ),
        "{stdout}"
    );
    // The failing case's trace: the `limit` rule's one step, refusing with its reason.
    let trace: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "  trace:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert_eq!(trace.len(), 1, "{stdout}");
    let step: Vec<&str> = trace[0].split_whitespace().collect();
    assert_eq!(step.get(..2), Some(&["limit", "reject"][..]), "{stdout}");
    assert!(trace[0].ends_with("  reason: 한도 초과"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("2 passed, 1 failed"),
        "{stdout}"
    );

    let out = run_cli(&["test", "--rules", dir, "small"], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 passed, 0 failed",
        "FILTER is a substring of case names"
    );

    // A name written as an alias is placed at the alias, not at its anchor.
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    rules.write(
        "tests/alias.yaml",
        "ruleset: &n default\ncases:\n  - name: *n\n    request: { imp_uid: i, merchant_uid: m, amount: 50000 }\n    expect: { decision: approve }\n",
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tests/alias.yaml:3:11: default\n"),
        "{stdout}"
    );
}

#[test]
fn test_refuses_an_invalid_test_file_with_exit_2() {
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    rules.write("tests/bad.yaml", "ruleset: nope\ncases: []\n");
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tests/bad.yaml:1:10: unknown ruleset \"nope\", expected one of default"),
        "{stderr}"
    );
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1), "check validates test files too");
    // As `serve` would refuse the directory, so do the commands that show what it would do.
    let dir = rules.path().to_str().unwrap();
    let body = v1("o", 5000);
    for (args, code) in [
        (["eval", "--rules", dir, "-"], 1),
        (["replay", "--rules", dir, "-"], 2),
    ] {
        let out = run_cli(&args, Some(body.as_bytes()));
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("tests/bad.yaml:1:10: unknown ruleset"),
            "{stderr}"
        );
        assert!(
            stderr.contains("note: the rules load, but their tests under tests/ do not"),
            "{stderr}"
        );
    }

    // Not UTF-8: located at the first bad byte like any other error.
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    std::fs::create_dir_all(rules.path().join("tests")).unwrap();
    std::fs::write(
        rules.path().join("tests/latin1.yaml"),
        b"ruleset: default
cases:
  - name: caf\xe9\n",
    )
    .unwrap();
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tests/latin1.yaml:3:14: not valid UTF-8 (byte 0xE9)"),
        "{stderr}"
    );

    // No tests at all pass (SPEC §9), said on stderr: a CI step on a copy of the rules
    // without their tests checks nothing.
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0 passed, 0 failed"
    );
    let tests = rules.path().join("tests");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warning: {} does not exist: nothing was tested\n",
            tests.display()
        )
    );
    std::fs::create_dir(&tests).unwrap();
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "warning: {} holds no *.yaml test file: nothing was tested\n",
            tests.display()
        )
    );
}

#[test]
fn script_errors_point_into_the_script_file() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: vip\n    script: scripts/vip.rhai\n",
    );
    rules.write(
        "scripts/vip.rhai",
        "let limit = 10;\n\nif amount > limit {\n    return \"x\" +;\n}\n",
    );
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}/scripts/vip.rhai:4:", rules.path().display());
    assert!(stderr.starts_with(&want), "{stderr}");
    assert!(
        stderr.contains("(script of rule \"vip\" in default.yaml)"),
        "{stderr}"
    );
}

/// Trying a script with `eval`, its `print` and `debug` output is on stderr (and not in the
/// JSON on stdout).
#[test]
fn eval_shows_a_scripts_print_and_debug_on_stderr() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - { name: vip, script: scripts/vip.rhai, reason: r }\n",
    );
    rules.write(
        "scripts/vip.rhai",
        "print(`amount is ${amount}`);\ndebug(order_id);\namount < 1000\n",
    );
    let body = r#"{"imp_uid":"i","merchant_uid":"m-1","amount":5000}"#;
    let dir = rules.path().display().to_string();
    let out = run_cli(&["eval", "--rules", &dir, "-"], Some(body.as_bytes()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("amount is 5000"), "{stderr}");
    assert!(stderr.contains(r#""m-1""#), "{stderr}");
    let stdout: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stdout["decision"]["decision"], "reject");
}

/// The README's rule-file examples are what operators copy: each must load as written.
#[test]
fn readme_rule_examples_load() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let blocks: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(yaml, _)| yaml))
        .filter(|yaml| yaml.contains("\nrules:\n"))
        .collect();
    assert!(blocks.len() >= 2, "the reference and the upstream example");
    for yaml in blocks {
        let rules = Rules::with("default.yaml", yaml);
        let out = std::process::Command::new(binary())
            .args(["check", "--rules", rules.path().to_str().unwrap()])
            .env("SHOP_API_URL", "http://127.0.0.1:9")
            .env("SHOP_API_TOKEN", "t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{yaml}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn serve_refuses_an_empty_admin_token() {
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    let mut child = std::process::Command::new(binary())
        .args(["serve", "--rules", rules.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--admin-token", ""])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with an empty --admin-token");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("--admin-token: empty"), "{stderr}");
}

/// A rule file that does not load still leaves the test files' own shape checked: a broken
/// test file is not found only once the rules are fixed (by `check`, and by `test`).
#[test]
fn check_reports_test_file_shape_errors_beside_rule_errors() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: a\n    amount: { max: 5 }\n    reasn: x\n",
    );
    rules.write(
        "tests/t.yaml",
        "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o, amount: 5 }\n    expct: { decision: approve }\n",
    );
    check_fails_with(
        &rules,
        &[
            "default.yaml:4:5: rules[0] (rule \"a\"): unknown field \"reasn\"",
            "tests/t.yaml:5:5: cases[0]: unknown field \"expct\"",
        ],
    );
    let dir = rules.path().to_str().unwrap();
    let out = run_cli(&["test", "--rules", dir], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/tests/t.yaml:5:5: cases[0]: unknown field \"expct\""),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no case ran: the rules do not load\n"
    );
}

/// Audit (fail-open): a rule file emptied by a full disk or a non-atomic save must not load,
/// or every payment would be approved. `check` fails at `FILE:LINE:COL`.
#[test]
fn check_refuses_a_ruleset_without_rules() {
    let no_rules = "no rules: a ruleset needs at least one rule (an empty ruleset would approve every payment; to approve everything on purpose, write a rule with when: 'true' and action: approve)";
    for (yaml, at) in [
        ("", "1:1"),
        ("# all rules removed\n", "1:1"),
        ("settings:\n  deadline: 3s\n", "1:1"),
        ("settings:\n  deadline: 3s\nrules:\n", "3:1"),
        ("settings:\n  deadline: 3s\nrules: null\n", "3:1"),
        ("settings:\n  deadline: 3s\nrules: []\n", "3:1"),
    ] {
        let rules = Rules::with("default.yaml", yaml);
        let out = check(&rules);
        assert_eq!(out.status.code(), Some(1), "{yaml:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim_end(),
            format!("{}/default.yaml:{at}: {no_rules}", rules.path().display()),
            "{yaml:?}"
        );
        assert!(out.stdout.is_empty(), "{yaml:?}");
    }
    // What the message suggests loads.
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: approve-all\n    when: 'true'\n    action: approve\n",
    );
    let out = check_ok(&rules, "ok: 1 rulesets, 1 rules");
    assert!(out.stderr.is_empty());
}

#[test]
fn check_warns_when_no_rule_is_enforced() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: trial\n    amount: { max: 100 }\n    mode: shadow\n    reason: x\n  - name: parked\n    require: 'false'\n    mode: off\n    reason: y\n",
    );
    let out = check_ok(&rules, "ok: 1 rulesets, 2 rules");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "warning: {}/default.yaml: no rule is enforced (every rule has mode: shadow or off), so this ruleset approves every payment",
            rules.path().display()
        )
    );
}

/// `--strict` (or `CONFIRM_PROXY_STRICT=true`) makes warnings fail the check, for CI.
#[test]
fn check_strict_fails_on_warnings() {
    let rules = Rules::with(
        "default.yaml",
        "settings: { deadline: 6s }\nrules:\n  - { name: a, amount: { max: 100 }, reason: x }\n",
    );
    check_ok(&rules, "ok: 1 rulesets, 1 rules");
    let out = check_strict(&rules);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ") && stderr.contains("6s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 warning(s), and --strict makes warnings fail the check"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Without warnings, strict passes.
    let clean = Rules::with(
        "default.yaml",
        "rules:\n  - { name: a, amount: { max: 100 }, reason: x }\n",
    );
    let out = check_strict(&clean);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn check_refuses_placeholders_in_forward_paths() {
    let rules = Rules::with(
        "default.yaml",
        "upstreams:\n  shop: { url: \"http://127.0.0.1:9\" }\nrules:\n  - name: existing\n    forward: { upstream: shop, path: \"/fwd/{order_id}\" }\n",
    );
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "{}/default.yaml:5:44: rule \"existing\": forward.path is a fixed path: placeholders like {{order_id}} are not filled in there (forward sends the original request unchanged, so the merchant's handler reads the order from the body); remove the braces, or use fetch, whose path is a template",
            rules.path().display()
        )
    );
}

/// Audit (fail-open): a reload of an emptied rule file is refused and the rules in use stay.
#[tokio::test]
async fn reload_of_an_emptied_rule_file_keeps_the_old_rules() {
    let limit = "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n";
    let rules = Rules::with("default.yaml", limit);
    let mut config = confirm_proxy::server::Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let url = server.admin_url("/admin/reload");
    for (emptied, at) in [("", "1:1"), ("settings:\n  deadline: 3s\nrules:\n", "3:1")] {
        rules.write("default.yaml", emptied);
        let a = post(&url, None, "").await;
        assert_eq!(a.status, 422, "{emptied:?}: {:?}", a.body);
        assert_eq!(a.body["applied"], false);
        let error = a.body["errors"][0].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!(
                "default.yaml:{at}: no rules: a ruleset needs at least one rule"
            )),
            "{:?}",
            a.body
        );
        let refused = server.confirm_json("/confirm", &v1("o-1", 50_000)).await;
        assert_eq!((refused.status, refused.reason()), (409, "한도 초과"));
    }
    server.stop().await;
}

/// Audit: a typo in a rule test file made its case test something else and still pass. Every
/// name a case uses must exist in its ruleset; `test` exits 2 and `check` 1, each error at
/// `FILE:LINE:COL`.
#[test]
fn test_refuses_test_files_naming_what_the_ruleset_does_not_have() {
    let rules = Rules::with(
        "default.yaml",
        "upstreams:\n  shop: { url: \"http://127.0.0.1:9\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/api/stock/{order_id}\" }\n    reason: x\n",
    );
    rules.write(
        "tests/typos.yaml",
        "ruleset: default\ncases:\n  - name: in stock\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n    upstreams:\n      nope: { \"GET /api/stock/o-1\": { status: 200 } }\n      shop:\n        \"GETT /api/stock/o-1\": { status: 200 }\n        nospace: { status: 200 }\n    health: { nope: up, shop: up }\n    expect: { decision: reject, rule: nosuchrule }\n  - name: in stock\n    request: { imp_uid: i, merchant_uid: o-2, amount: 50 }\n    expect: { decision: reject }\n",
    );
    let file = format!("{}/tests/typos.yaml", rules.path().display());
    let expected = [
        format!("{file}:6:7: unknown upstream \"nope\", expected one of shop"),
        format!("{file}:8:9: invalid canned call \"GETT /api/stock/o-1\": unknown method \"GETT\", expected GET, POST or PUT"),
        format!("{file}:9:9: invalid canned call \"nospace\", expected a method and a path like \"GET /api/stock/order-1\""),
        format!("{file}:10:15: unknown upstream \"nope\", expected one of shop"),
        format!("{file}:10:25: upstream \"shop\" has no health probe, so no rule reads its health: leave it out of the case's health, or give the upstream a probe in the rule file (health: {{ path: /health }}) for a healthy: shop rule"),
        format!("{file}:11:39: unknown rule \"nosuchrule\", ruleset \"default\" has rules stock"),
        format!("{file}:12:11: duplicate case name \"in stock\" (also at line 3): case names are unique in a file"),
    ];
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
    assert!(out.stdout.is_empty(), "no case runs");
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
}

/// A canned answer no rule asks for with the case's request (a copied case whose order id was
/// not changed in the path, say) is a warning from `test` and `check`, which both carry on;
/// the case itself fails, as its rule ran without its answer (on_error refused, as the case
/// expected, for the wrong reason).
#[test]
fn test_warns_about_canned_answers_no_rule_asks_for() {
    let rules = Rules::with(
        "default.yaml",
        "upstreams:\n  shop: { url: \"http://127.0.0.1:9\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/api/stock/{order_id}\" }\n    reason: x\n",
    );
    rules.write(
        "tests/copied.yaml",
        "ruleset: default\ncases:\n  - name: stock API down fails closed\n    request: { imp_uid: i, merchant_uid: o-2, amount: 50 }\n    upstreams:\n      shop:\n        \"GET /api/stock/o-1\": { error: refused }\n    expect: { decision: reject, rule: stock }\n",
    );
    let warning = format!(
        "warning: {}/tests/copied.yaml:7:9: canned answer \"GET /api/stock/o-1\" is never used: for this request the rules of ruleset \"default\" call \"shop\" with \"GET /api/stock/o-2\"",
        rules.path().display()
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), warning);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rule stock calls shop with \"GET /api/stock/o-2\", which the case has no canned answer for")
            && stdout.ends_with("0 passed, 1 failed\n"),
        "{stdout}"
    );
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), warning);
}

/// The shipped rule tests and the README's rule test example (against examples/shop-rules)
/// load without a warning and pass.
#[test]
fn shipped_and_readme_rule_tests_load_cleanly() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(yaml, _)| yaml))
        .find(|yaml| yaml.contains("\ncases:\n") && yaml.contains("upstreams:"))
        .expect("the README has a rule test example with canned upstreams");
    let shop = Rules::with(
        "default.yaml",
        &std::fs::read_to_string(format!("{root}/examples/shop-rules/default.yaml")).unwrap(),
    );
    shop.write("tests/readme.yaml", example);
    let shop = shop.path().to_str().unwrap().to_owned();
    for dir in [
        format!("{root}/rules"),
        format!("{root}/examples/scripted-rules"),
        format!("{root}/examples/shop-rules"),
        shop,
    ] {
        for command in ["test", "check"] {
            let out = std::process::Command::new(binary())
                .args([command, "--rules", &dir])
                .env("SHOP_API_URL", "http://127.0.0.1:9")
                .env("SHOP_API_TOKEN", "t")
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{command} {dir}: {:?}\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Audit (load errors): one `check` shows every shape error of a file, each at its place, and
/// errors inside folded expressions on the line they are on.
#[test]
fn check_prints_every_shape_error_of_a_file() {
    let rules = Rules::with(
        "default.yaml",
        "settings:\n  deadlin: 4s\nrules:\n  - name: a\n    amount: { mx: 1 }\n    reason: x\n  - name: b\n    foo: 1\n    reason: x\n  - name: c\n    require: >\n      amount > 0 &&\n      order_idd == 1\n    reason: x\n",
    );
    rules.write("b.c.yaml", "rules: []\n");
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1));
    let dir = rules.path().display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().collect::<Vec<_>>(),
        [
            format!("{dir}/b.c.yaml:1:1: not a ruleset name: the name before \".yaml\" may only hold letters (a-z, A-Z), digits, \"-\" and \"_\" (it is the ruleset's name in /confirm/{{ruleset}})"),
            format!("{dir}/default.yaml:2:3: settings: unknown field \"deadlin\", expected one of \"deadline\", \"on_error\", \"error_reason\", \"reject_status\"; did you mean \"deadline\"?"),
            format!("{dir}/default.yaml:5:15: rules[0].amount (rule \"a\"): unknown field \"mx\", expected \"min\" or \"max\"; did you mean \"max\"?"),
            format!("{dir}/default.yaml:8:5: rules[1] (rule \"b\"): unknown field \"foo\", expected one of \"name\", \"when\", \"mode\", \"action\", \"reason\", \"on_error\", \"amount\", \"window\", \"require\", \"healthy\", \"fetch\", \"forward\", \"script\""),
            format!("{dir}/default.yaml:13:7: rule \"c\": require: invalid expression: undefined variable: order_idd; did you mean order_id?"),
        ]
    );
    // A second document is located where it starts, never at line 0.
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n---\nrules: []\n",
    );
    let out = check(&rules);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!(
            "{}/default.yaml:5:1: a second YAML document: a file holds exactly one (a \"---\" line after the content starts another, and nothing may follow a \"...\" line)",
            rules.path().display()
        )
    );
}

/// Audit (load errors): a `.yml` or `.YAML` file in the rules directory is not read; `check`
/// says so instead of ignoring it silently.
#[test]
fn check_warns_about_yaml_files_that_are_not_rulesets() {
    let one_rule = "rules:\n  - name: a\n    amount: { max: 1 }\n    reason: x\n";
    let rules = Rules::with("default.yaml", one_rule);
    rules.write("shop.yml", one_rule);
    rules.write("Outlet.YAML", one_rule);
    let out = check_ok(&rules, "ok: 1 rulesets, 1 rules");
    let dir = rules.path().display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().collect::<Vec<_>>(),
        [
            format!("warning: {dir}/Outlet.YAML: not a ruleset and not read: only files ending in \".yaml\" (lower case) are rulesets (rename it to Outlet.yaml to load it)"),
            format!("warning: {dir}/shop.yml: not a ruleset and not read: only files ending in \".yaml\" (lower case) are rulesets (rename it to shop.yaml to load it)"),
        ]
    );
}

/// Piped into `head` or `grep -q`, a command's reader may be gone before it prints: that is
/// no failure of the command (it used to panic with exit status 101).
#[test]
fn a_closed_stdout_is_no_panic() {
    use std::io::Write;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(binary())
        .args(["eval", "--rules", &shipped_rules(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&testdata("v1.json"))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The same for stderr, where `check`, `eval`, `test` and `replay` say what went wrong: with no
/// reader there, the exit status still reports it (it used to be a panic, exit status 101).
#[test]
fn a_closed_stderr_is_no_panic() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: broken\n    amount: { min: x }\n",
    );
    let dir = rules.path().display().to_string();
    let missing = format!("{dir}/no-such.jsonl");
    for (args, code) in [
        (vec!["check", "--rules", &dir], 1),
        (vec!["test", "--rules", &dir], 1),
        (
            vec!["eval", "--rules", &shipped_rules(), "{\"imp_uid\": 1"],
            2,
        ),
        (vec!["replay", "--rules", &shipped_rules(), &missing], 2),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(binary())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}

/// A FILTER that matches no case runs nothing, which is no tests at all (SPEC §9: `0 passed,
/// 0 failed`, exit 0); as it may be a typo, stderr says so.
#[test]
fn a_test_filter_that_matches_nothing_is_said() {
    let out = run_cli(&["test", "--rules", &shipped_rules(), "no such case"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0 passed, 0 failed\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: no case name contains \"no such case\" (")
            && stderr.trim_end().ends_with("nothing was tested"),
        "{stderr}"
    );
}

/// A case whose request is refused before any rule (400) says so instead of an empty trace.
#[test]
fn a_failing_case_refused_before_any_rule_says_no_rule_ran() {
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    rules.write(
        "tests/t.yaml",
        "ruleset: default\ncases:\n  - name: broken body\n    request: \"{\"\n    expect: { decision: approve }\n",
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  trace: none: no rule ran, the request itself was refused (400)\n"),
        "{stdout}"
    );
}

/// A typo in a case's request (`merchant_id`) gets a 400 before any rule runs: a case that
/// expects a refusal must not pass on that, unless it says it tests the 400.
#[test]
fn a_case_refused_as_a_payload_fails_unless_it_expects_the_status() {
    let rules = Rules::with("default.yaml", LIMIT_RULES);
    let case = |expect: &str| {
        format!("ruleset: default\ncases:\n  - name: typo\n    request: {{ imp_uid: i, merchant_id: legacy-1, amount: 500 }}\n    expect: {expect}\n")
    };
    rules.write("tests/t.yaml", &case("{ decision: reject }"));
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  the request was refused before any rule ran (400: 필수 필드 merchant_uid가 없습니다); fix the case's request, or expect status: 400 to test that\n"),
        "{stdout}"
    );
    rules.write("tests/t.yaml", &case("{ decision: reject, status: 400 }"));
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Expecting the rules' status (409), the case fails on the status, with no advice about
    // the reason.
    rules.write("tests/t.yaml", &case("{ decision: reject, status: 409 }"));
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("reject_status"), "{stdout}");
    // Audit: where the rules refuse with 400 too, the status told nothing apart, and the typo
    // passed; the reason does.
    rules.write("tests/t.yaml", &case("{ decision: reject, status: 400 }"));
    rules.write(
        "default.yaml",
        &format!("settings: {{ reject_status: 400 }}\n{LIMIT_RULES}"),
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fix the case's request, or the rules refuse with 400 too (reject_status: 400), so expect its reason as well to test that\n"),
        "{stdout}"
    );
    rules.write(
        "tests/t.yaml",
        &case("{ decision: reject, status: 400, reason_contains: merchant_uid }"),
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `shadow:` lists the shadow rules that would have decided (refused, or approved at once);
/// a shadow rule that fails makes such a case fail, since enforced it would decide by
/// on_error.
#[test]
fn shadow_expectations_see_approvals_and_errors() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - { name: vip-trial, when: 'order_id.starts_with(\"vip-\")', action: approve, mode: shadow }\n  - { name: broken-trial, when: 'order_id == \"b\"', require: 'fail(\"boom\")', mode: shadow, reason: x }\n  - { name: limit, amount: { max: 1000 }, reason: too much }\n",
    );
    rules.write(
        "tests/t.yaml",
        "ruleset: default\ncases:\n  - name: vip\n    request: { imp_uid: i, merchant_uid: vip-1, amount: 500 }\n    expect: { decision: approve, shadow: [vip-trial] }\n  - name: broken\n    request: { imp_uid: i, merchant_uid: b, amount: 500 }\n    expect: { decision: approve, shadow: [] }\n",
    );
    let out = run_cli(&["test", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL ") && stdout.contains(": broken\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  shadow rule broken-trial failed: "),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
}

/// `eval` shows the amount as the body wrote it, as the decision log does.
#[test]
fn eval_shows_the_amount_as_written() {
    for (amount, shown) in [
        ("1e3", "1e3"),
        ("3E+2", "3E+2"),
        ("10.50", "10.50"),
        ("\"0100\"", "100"),
    ] {
        let body = format!(r#"{{"imp_uid":"i","merchant_uid":"m","amount":{amount}}}"#);
        let out = run_cli(
            &["eval", "--rules", &shipped_rules(), "-"],
            Some(body.as_bytes()),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("\"amount\": {shown},"))
                || stdout.contains(&format!("\"amount\": {shown}\n")),
            "{amount}: {stdout}"
        );
    }
}

/// A caller's id holding a terminal's escape (U+009B) or a text-direction control reaches the
/// operator's terminal escaped, as in the decision log, and still reads back as the same JSON.
#[test]
fn eval_escapes_what_a_terminal_would_obey() {
    let body = "{\"imp_uid\":\"i\",\"merchant_uid\":\"x\u{9b}31m\u{202e}y\",\"amount\":500}";
    let out = run_cli(
        &["eval", "--rules", &shipped_rules(), "-"],
        Some(body.as_bytes()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(['\u{9b}', '\u{202e}']), "{stdout:?}");
    assert!(stdout.contains(r#""x\u009b31m\u202ey""#), "{stdout}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["request"]["order_id"], "x\u{9b}31m\u{202e}y");
}
