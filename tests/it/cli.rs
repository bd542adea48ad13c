//! `check` and `eval` as an operator runs them.

use std::process::Output;

use crate::support::*;

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = std::process::Command::new(binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(body) = stdin {
        input.write_all(body).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn shipped_rules() -> String {
    format!("{}/rules", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn check_accepts_the_shipped_rules() {
    let out = run(&["check", "--rules", &shipped_rules()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 1 rulesets, 4 rules"));
}

#[test]
fn check_prints_every_error_with_its_location() {
    let rules = Rules::with("default.yaml", "settings:\n  deadline: 4 sec\nrules:\n  - name: a\n    require: 'order_idd == 1'\n    reason: x\n");
    rules.write("other.yaml", "rules:\n  - name: b\n    amount: { mx: 1 }\n");
    let out = run(&["check", "--rules", rules.path().to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dir = rules.path().display();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "{dir}/default.yaml:2:13: invalid duration \"4 sec\""
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{dir}/default.yaml:5:15: rule \"a\": require: invalid expression:"
        )),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{dir}/other.yaml:3:15: rules[0].amount: unknown field \"mx\""
        )),
        "{stderr}"
    );
}

#[test]
fn eval_prints_the_decision_and_trace() {
    let body = testdata("v1.json");
    let out = run(&["eval", "--rules", &shipped_rules(), "-"], Some(&body));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["decision"], "approve");
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

    let out = run(
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
    let out = run(&["eval", "--rules", "/nonexistent", "-"], Some(&body));
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["eval", "--now", "yesterday", "-"], Some(&body));
    assert_eq!(out.status.code(), Some(2));
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
