//! Rule tests (`rules/tests/*.yaml`): cases with a fixed clock, canned upstream answers and
//! health states, run through the same engine `serve` uses, with no network at all.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use crate::decision::{Decision, Outcome, Verdict};
use crate::engine::{self, evaluate, Context, Original};
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::rules::yaml::{self, Location, Seg};
use crate::rules::{Check, LoadError, Mode, Rules, Ruleset};
use crate::script::ScriptEngine;
use crate::upstream::canned::{self, Canned, CannedAnswer, CannedHealth};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    ruleset: String,
    now: Option<String>,
    #[serde(default)]
    cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    /// A mapping is sent as JSON; a string is sent as it is (a form body, say).
    request: serde_json::Value,
    now: Option<String>,
    #[serde(default)]
    upstreams: BTreeMap<String, BTreeMap<String, CannedAnswer>>,
    #[serde(default)]
    health: BTreeMap<String, CannedHealth>,
    expect: Expect,
}

/// What a case expects; only the keys given are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: Verdict,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub reason_contains: Option<String>,
    pub status: Option<u16>,
    /// Names of the shadow rules that would have refused (all of them, in order).
    pub shadow: Option<Vec<String>>,
}

/// One test file, validated against the loaded rules.
#[derive(Debug)]
pub struct Suite {
    pub file: PathBuf,
    pub ruleset: String,
    /// Loadable but probably not what was meant (a canned answer no rule asks for, say);
    /// `test` and `check` print them, neither fails on them.
    pub warnings: Vec<LoadError>,
    cases: Vec<Case>,
}

#[derive(Debug)]
struct Case {
    name: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    now: Option<DateTime<FixedOffset>>,
    upstreams: BTreeMap<String, BTreeMap<String, CannedAnswer>>,
    health: BTreeMap<String, CannedHealth>,
    expect: Expect,
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    pub expect: Expect,
    pub decision: Decision,
    /// Empty when the case passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The block printed for a failing case: expected, actual, and the per-rule trace.
    pub fn explain(&self) -> String {
        let d = &self.decision;
        let mut out = format!("FAIL {}: {}\n", self.file.display(), self.name);
        for m in &self.mismatches {
            let _ = writeln!(out, "  {m}");
        }
        let _ = writeln!(
            out,
            "  actual: {} (status {}){}{}",
            d.decision.as_str(),
            d.status,
            d.rule
                .as_ref()
                .map(|r| format!(", rule {r}"))
                .unwrap_or_default(),
            d.reason
                .as_ref()
                .map(|r| format!(", reason {r:?}"))
                .unwrap_or_default(),
        );
        let _ = writeln!(out, "  trace:");
        for t in &d.trace {
            let _ = write!(
                out,
                "    {:<24} {:<13} {:>8.3} ms",
                t.rule,
                t.outcome.as_str(),
                t.ms
            );
            if let Some(e) = &t.error {
                let _ = write!(out, "  error: {e}");
            } else if let Some(r) = &t.reason {
                let _ = write!(out, "  reason: {r}");
            }
            out.push('\n');
        }
        out
    }
}

/// Reads every `tests/*.yaml` under the rules directory. Errors are `FILE:LINE:COL: message`.
///
/// Beyond the shape, every name a case uses must exist in its ruleset: canned upstreams and
/// health states name upstreams it defines (health only ones with a probe), canned calls are
/// `METHOD /path` with a method rules can call with, `expect.rule` and `expect.shadow` name its
/// rules, and case names are unique in a file. A canned answer that no rule would ask for with
/// the case's request is a warning ([`Suite::warnings`]).
pub fn load_suites(rules_dir: &Path, rules: &Rules) -> Result<Vec<Suite>, Vec<LoadError>> {
    let dir = rules_dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.is_file())
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(vec![LoadError {
                file: dir,
                location: None,
                message: format!("cannot read: {e}"),
            }])
        }
    };
    files.sort();
    let mut suites = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_suite(&file, rules) {
            Ok(s) => suites.push(s),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors)
    }
}

fn load_suite(file: &Path, rules: &Rules) -> Result<Suite, Vec<LoadError>> {
    let error = |location, message: String| LoadError {
        file: file.to_owned(),
        location,
        message,
    };
    let src =
        crate::rules::read_text(file).map_err(|e| vec![e.into_load_error(file.to_owned(), "")])?;
    let raw: RawSuite = yaml::from_str(&src).map_err(|e| vec![error(e.location, e.message)])?;
    let at = |path: &[Seg<'_>]| Some(yaml::locate(&src, path));
    let mut errors = Vec::new();
    // A repeated key would have a case test another answer (or request) than the one its
    // author is looking at.
    match yaml::check_document(&src) {
        Ok(duplicates) => {
            errors.extend(duplicates.into_iter().map(|e| error(e.location, e.message)))
        }
        Err(e) => errors.push(error(e.location, e.message)),
    }
    if rules.get(&raw.ruleset).is_none() {
        let known: Vec<&str> = rules.rulesets.keys().map(String::as_str).collect();
        errors.push(error(
            at(&[Seg::Key("ruleset")]),
            format!(
                "unknown ruleset \"{}\", expected one of {}",
                raw.ruleset,
                known.join(", ")
            ),
        ));
    }
    let parse_now = |s: &str, path: &[Seg<'_>], errors: &mut Vec<LoadError>| {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t),
            Err(_) => {
                errors.push(error(
                    at(path),
                    format!(
                        "invalid time \"{s}\", expected RFC 3339 like 2026-12-01T12:00:00+09:00"
                    ),
                ));
                None
            }
        }
    };
    let suite_now = raw
        .now
        .as_deref()
        .and_then(|s| parse_now(s, &[Seg::Key("now")], &mut errors));
    let ruleset = rules.get(&raw.ruleset).map(|r| &**r);
    let mut warnings = Vec::new();
    let mut first_named: HashMap<&str, usize> = HashMap::new();
    for (i, c) in raw.cases.iter().enumerate() {
        if let Some(&first) = first_named.get(c.name.as_str()) {
            let first_at = yaml::locate(
                &src,
                &[Seg::Key("cases"), Seg::Index(first), Seg::Key("name")],
            );
            errors.push(error(
                at(&[Seg::Key("cases"), Seg::Index(i), Seg::Key("name")]),
                format!(
                    "duplicate case name \"{}\" (also at line {}): case names are unique in a file",
                    c.name, first_at.line
                ),
            ));
        } else {
            first_named.insert(&c.name, i);
        }
    }
    let mut cases = Vec::new();
    for (i, c) in raw.cases.into_iter().enumerate() {
        let now = match c.now.as_deref() {
            Some(s) => parse_now(
                s,
                &[Seg::Key("cases"), Seg::Index(i), Seg::Key("now")],
                &mut errors,
            ),
            None => suite_now,
        };
        let (body, content_type) = match &c.request {
            serde_json::Value::String(s) => (s.clone().into_bytes(), None),
            v @ serde_json::Value::Object(_) => {
                (v.to_string().into_bytes(), Some("application/json"))
            }
            _ => {
                errors.push(error(
                    at(&[Seg::Key("cases"), Seg::Index(i), Seg::Key("request")]),
                    "request must be a mapping (sent as JSON) or a string (sent as it is)".into(),
                ));
                continue;
            }
        };
        if c.expect.reason.is_some() && c.expect.reason_contains.is_some() {
            errors.push(error(
                at(&[Seg::Key("cases"), Seg::Index(i), Seg::Key("expect")]),
                "give reason or reason_contains, not both".into(),
            ));
        }
        let names = CaseNames {
            src: &src,
            case: i,
            ruleset,
        };
        for (path, message) in names.errors(&c) {
            errors.push(error(Some(path), message));
        }
        if let Some(ruleset) = ruleset {
            let req = match payload::parse(content_type, &body) {
                Ok(Parsed::Confirm(req)) => Some(req),
                _ => None,
            };
            for (path, message) in names.unused(ruleset, &c, req.as_ref()) {
                warnings.push(error(Some(path), message));
            }
        }
        cases.push(Case {
            name: c.name,
            body,
            content_type,
            now,
            upstreams: c.upstreams,
            health: c.health,
            expect: c.expect,
        });
    }
    // In the order they are written, whichever check found them.
    let place = |e: &LoadError| e.location.map(|l| (l.line, l.column));
    errors.sort_by_key(place);
    warnings.sort_by_key(place);
    if errors.is_empty() {
        Ok(Suite {
            file: file.to_owned(),
            ruleset: raw.ruleset,
            warnings,
            cases,
        })
    } else {
        Err(errors)
    }
}

/// Checks the names one case uses against its ruleset (`None` when the file names no ruleset
/// that exists, which is reported on its own).
struct CaseNames<'a> {
    src: &'a str,
    case: usize,
    ruleset: Option<&'a Ruleset>,
}

impl CaseNames<'_> {
    /// Where the value at `path` (below this case) is.
    fn value(&self, path: &[Seg<'_>]) -> Location {
        let mut full = vec![Seg::Key("cases"), Seg::Index(self.case)];
        full.extend_from_slice(path);
        yaml::locate(self.src, &full)
    }

    /// Where the mapping key at `path` (below this case) is; its value's place if it has none.
    fn key(&self, path: &[Seg<'_>]) -> Location {
        let mut full = vec![Seg::Key("cases"), Seg::Index(self.case)];
        full.extend_from_slice(path);
        yaml::locate_key(self.src, &full).unwrap_or_else(|| yaml::locate(self.src, &full))
    }

    /// Every name the case uses that does not exist, with where it is written.
    fn errors(&self, c: &RawCase) -> Vec<(Location, String)> {
        let mut out = Vec::new();
        for (up, answers) in &c.upstreams {
            if let Some(ruleset) = self.ruleset {
                if !ruleset.upstreams.contains_key(up) {
                    out.push((
                        self.key(&[Seg::Key("upstreams"), Seg::Key(up)]),
                        format!("unknown upstream \"{up}\", {}", upstreams_expected(ruleset)),
                    ));
                }
            }
            // In file order, so that a repeated call is reported where it is repeated.
            let mut keys: Vec<(Location, &str)> = answers
                .keys()
                .map(|key| {
                    let at = self.key(&[Seg::Key("upstreams"), Seg::Key(up), Seg::Key(key)]);
                    (at, key.as_str())
                })
                .collect();
            keys.sort_by_key(|(at, _)| (at.line, at.column));
            let mut seen: HashMap<String, &str> = HashMap::new();
            for (at, key) in keys {
                match canned::check_key(key) {
                    Err(e) => out.push((at, e)),
                    Ok(normal) => {
                        if let Some(first) = seen.insert(normal, key) {
                            out.push((
                                at,
                                format!("canned call \"{key}\" is the same call as \"{first}\""),
                            ));
                        }
                    }
                }
            }
        }
        if let Some(ruleset) = self.ruleset {
            for up in c.health.keys() {
                let at = self.key(&[Seg::Key("health"), Seg::Key(up)]);
                match ruleset.upstreams.get(up) {
                    None => out.push((
                        at,
                        format!("unknown upstream \"{up}\", {}", upstreams_expected(ruleset)),
                    )),
                    Some(u) if u.health.is_none() => out.push((
                        at,
                        format!(
                            "upstream \"{up}\" has no health probe, so no rule reads its health"
                        ),
                    )),
                    Some(_) => {}
                }
            }
            let rule_exists = |name: &str| ruleset.rules.iter().any(|r| &*r.name == name);
            if let Some(rule) = &c.expect.rule {
                if !rule_exists(rule) {
                    out.push((
                        self.value(&[Seg::Key("expect"), Seg::Key("rule")]),
                        format!("unknown rule \"{rule}\", {}", rules_expected(ruleset)),
                    ));
                }
            }
            for (j, rule) in c.expect.shadow.iter().flatten().enumerate() {
                if !rule_exists(rule) {
                    out.push((
                        self.value(&[Seg::Key("expect"), Seg::Key("shadow"), Seg::Index(j)]),
                        format!("unknown rule \"{rule}\", {}", rules_expected(ruleset)),
                    ));
                }
            }
        }
        out
    }

    /// Canned answers and health states of known upstreams that no rule would read for this
    /// case's request. Without a request (the case's is not a confirm request, so no rule runs
    /// at all), only whether any rule could read a health state.
    fn unused(
        &self,
        ruleset: &Ruleset,
        c: &RawCase,
        req: Option<&ConfirmRequest>,
    ) -> Vec<(Location, String)> {
        let mut out = Vec::new();
        for up in c.health.keys() {
            let probed = ruleset
                .upstreams
                .get(up)
                .is_some_and(|u| u.health.is_some());
            let read = ruleset.rules.iter().any(|r| {
                r.mode != Mode::Off && matches!(&r.check, Check::Healthy(u) if u.name == *up)
            });
            if probed && !read {
                out.push((
                    self.key(&[Seg::Key("health"), Seg::Key(up)]),
                    format!(
                        "no rule of ruleset \"{}\" reads the health of \"{up}\" (no healthy: {up} rule)",
                        ruleset.name
                    ),
                ));
            }
        }
        let Some(req) = req else {
            return out;
        };
        let calls = calls(ruleset, req);
        for (up, answers) in &c.upstreams {
            let Some(upstream) = ruleset.upstreams.get(up) else {
                continue;
            };
            let to_up: Vec<&str> = calls
                .iter()
                .filter(|(name, _)| name == up)
                .map(|(_, key)| key.as_str())
                .collect();
            for key in answers.keys() {
                let Ok(normal) = canned::check_key(key) else {
                    continue;
                };
                if to_up.contains(&normal.as_str()) {
                    continue;
                }
                let mut message = if to_up.is_empty() {
                    format!(
                        "canned answer \"{key}\" is never used: no rule of ruleset \"{}\" calls upstream \"{up}\"",
                        ruleset.name
                    )
                } else {
                    let made: Vec<String> = to_up.iter().map(|key| format!("\"{key}\"")).collect();
                    format!(
                        "canned answer \"{key}\" is never used: for this request the rules of ruleset \"{}\" call \"{up}\" with {}",
                        ruleset.name,
                        made.join(", ")
                    )
                };
                if let Some(h) = &upstream.health {
                    if normal == format!("GET {}", h.path) {
                        message.push_str(&format!(
                            " (rule tests make no health probes: set health: {{ {up}: up }} instead)"
                        ));
                    }
                }
                out.push((
                    self.key(&[Seg::Key("upstreams"), Seg::Key(up), Seg::Key(key)]),
                    message,
                ));
            }
        }
        out
    }
}

fn upstreams_expected(ruleset: &Ruleset) -> String {
    if ruleset.upstreams.is_empty() {
        format!("ruleset \"{}\" defines no upstreams", ruleset.name)
    } else {
        let known: Vec<&str> = ruleset.upstreams.keys().map(String::as_str).collect();
        format!("expected one of {}", known.join(", "))
    }
}

fn rules_expected(ruleset: &Ruleset) -> String {
    let known: Vec<&str> = ruleset.rules.iter().map(|r| &*r.name).collect();
    format!(
        "ruleset \"{}\" has rules {}",
        ruleset.name,
        known.join(", ")
    )
}

/// The canned keys (`"METHOD /path?query"`, upstream name first) of every call the ruleset's
/// `fetch` and `forward` rules (but those with `mode: off`) would make for `req`, built by the
/// engine's own code, so a key matches exactly when the engine would ask for it.
fn calls(ruleset: &Ruleset, req: &ConfirmRequest) -> Vec<(String, String)> {
    ruleset
        .rules
        .iter()
        .filter(|r| r.mode != Mode::Off)
        .filter_map(|rule| match &rule.check {
            Check::Fetch(f) => {
                let call = engine::fetch_call(f, req).ok()?;
                let key = format!("{} {}", call.method, call.path_and_query);
                Some((f.upstream.name.clone(), key))
            }
            Check::Forward(fw) => Some((fw.upstream.name.clone(), format!("POST {}", fw.path))),
            _ => None,
        })
        .collect()
}

/// Runs every case whose name contains `filter`.
pub async fn run(
    rules: &Rules,
    suites: &[Suite],
    scripts: &ScriptEngine,
    filter: Option<&str>,
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for suite in suites {
        let Some(ruleset) = rules.get(&suite.ruleset) else {
            continue;
        };
        for case in suite
            .cases
            .iter()
            .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        {
            let decision = decide(ruleset, case, scripts).await;
            let mismatches = compare(&case.expect, &decision);
            results.push(CaseResult {
                file: suite.file.clone(),
                name: case.name.clone(),
                expect: case.expect.clone(),
                decision,
                mismatches,
            });
        }
    }
    results
}

async fn decide(ruleset: &crate::rules::Ruleset, case: &Case, scripts: &ScriptEngine) -> Decision {
    let req = match payload::parse(case.content_type, &case.body) {
        Ok(Parsed::Confirm(req)) => req,
        Ok(Parsed::Ignored { .. }) => return Decision::ignored(),
        Err(e) => return Decision::reject(e.status(), e.to_string(), None),
    };
    let mut canned = Canned::new();
    for (up, answers) in &case.upstreams {
        for (key, answer) in answers {
            canned = canned.answer(up, key, answer.clone());
        }
    }
    for (up, h) in &case.health {
        canned = canned.health(up, (*h).into());
    }
    let original = Original {
        body: case.body.clone().into(),
        content_type: case.content_type.map(http::HeaderValue::from_static),
        webhook_headers: Vec::new(),
    };
    let ctx = Context {
        scripts,
        upstreams: Arc::new(canned),
        now: case
            .now
            .unwrap_or_else(|| chrono::Utc::now().fixed_offset()),
        started: tokio::time::Instant::now(),
        original: &original,
    };
    evaluate(ruleset, &req, &ctx).await
}

fn compare(expect: &Expect, d: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    if expect.decision != d.decision {
        out.push(format!(
            "expected decision {}, got {}",
            expect.decision.as_str(),
            d.decision.as_str()
        ));
    }
    if let Some(rule) = &expect.rule {
        if d.rule.as_deref() != Some(rule) {
            out.push(format!(
                "expected rule {rule}, got {}",
                d.rule.as_deref().unwrap_or("(none)")
            ));
        }
    }
    if let Some(reason) = &expect.reason {
        if d.reason.as_deref() != Some(reason) {
            out.push(format!(
                "expected reason {reason:?}, got {:?}",
                d.reason.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(part) = &expect.reason_contains {
        if !d.reason.as_deref().unwrap_or("").contains(part.as_str()) {
            out.push(format!(
                "expected reason containing {part:?}, got {:?}",
                d.reason.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(status) = expect.status {
        if d.status != status {
            out.push(format!("expected status {status}, got {}", d.status));
        }
    }
    if let Some(shadow) = &expect.shadow {
        let got: Vec<&str> = d
            .trace
            .iter()
            .filter(|t| t.outcome == Outcome::ShadowReject)
            .map(|t| &*t.rule)
            .collect();
        if got != shadow.iter().map(String::as_str).collect::<Vec<_>>() {
            out.push(format!("expected shadow refusals {shadow:?}, got {got:?}"));
        }
    }
    out
}

/// Runs every suite of a freshly loaded generation; failing cases come back as messages.
/// Used by `serve --test-on-reload` so a change that breaks its own tests never goes live.
pub fn gate(rules_dir: &Path, rules: &Rules, scripts: &ScriptEngine) -> Result<(), Vec<String>> {
    let suites = load_suites(rules_dir, rules)
        .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| vec![format!("cannot run rule tests: {e}")])?;
    let results = runtime.block_on(run(rules, &suites, scripts, None));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(CaseResult::explain)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"upstreams:
  shop:
    url: "http://127.0.0.1:9"
    health: { path: /health }
  pay: { url: "http://127.0.0.1:9" }
rules:
  - name: shop-up
    healthy: shop
    reason: down
  - name: stock
    fetch: { upstream: shop, path: "/api/stock/{order_id}", query: { n: "{amount} left" } }
    reason: sold out
  - name: trial
    amount: { max: 100 }
    mode: shadow
    reason: over
  - name: existing
    forward: { upstream: shop, path: /payments/confirm }
"#;

    /// Loads `RULES` as `default` and `test` as `tests/t.yaml`: the suite's warnings, or its
    /// errors, each as `tests/t.yaml:LINE:COL: message`.
    fn load(test: &str) -> Result<Vec<String>, Vec<String>> {
        load_with(RULES, test)
    }

    /// [`load`] with other rules.
    fn load_with(rules: &str, test: &str) -> Result<Vec<String>, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), rules).unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("tests/t.yaml"), test).unwrap();
        let engine = ScriptEngine::new();
        let env = |_: &str| None;
        let opts = crate::rules::LoadOptions {
            engine: &engine,
            env: &env,
        };
        let rules = crate::rules::load_dir(dir.path(), &opts).unwrap();
        let prefix = format!("{}/", dir.path().display());
        let lines = |e: Vec<LoadError>| -> Vec<String> {
            e.iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        };
        load_suites(dir.path(), &rules)
            .map(|suites| suites.into_iter().flat_map(|s| s.warnings).collect())
            .map(lines)
            .map_err(lines)
    }

    fn errors(test: &str) -> Vec<String> {
        load(test).expect_err("the test file should be refused")
    }

    fn warnings(test: &str) -> Vec<String> {
        load(test).expect("the test file should load")
    }

    const CASE: &str = "ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50 }\n";

    #[test]
    fn canned_answers_for_an_upstream_the_ruleset_does_not_define_are_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      nope:\n        \"GET /x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:6:7: unknown upstream \"nope\", expected one of pay, shop"]
        );
    }

    #[test]
    fn canned_calls_need_a_known_method_and_a_path() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GETT /x\": {{ status: 200 }}\n        nospace: {{ status: 200 }}\n        \"GET x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:7:9: invalid canned call \"GETT /x\": unknown method \"GETT\", expected GET, POST or PUT",
                "tests/t.yaml:8:9: invalid canned call \"nospace\", expected a method and a path like \"GET /api/stock/order-1\"",
                "tests/t.yaml:9:9: invalid canned call \"GET x\", expected a method and a path like \"GET /api/stock/order-1\"",
            ]
        );
    }

    #[test]
    fn health_of_an_upstream_without_a_probe_or_not_defined_is_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    health: {{ shop: up, nope: up, pay: down }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                "tests/t.yaml:5:25: unknown upstream \"nope\", expected one of pay, shop",
                "tests/t.yaml:5:35: upstream \"pay\" has no health probe, so no rule reads its health",
            ]
        );
    }

    #[test]
    fn expected_rules_must_be_rules_of_the_ruleset() {
        assert_eq!(
            errors(&format!(
                "{CASE}    expect: {{ decision: reject, rule: nosuchrule, shadow: [trial, trail] }}\n"
            )),
            [
                "tests/t.yaml:5:39: unknown rule \"nosuchrule\", ruleset \"default\" has rules shop-up, stock, trial, existing",
                "tests/t.yaml:5:67: unknown rule \"trail\", ruleset \"default\" has rules shop-up, stock, trial, existing",
            ]
        );
    }

    #[test]
    fn case_names_are_unique_in_a_file() {
        assert_eq!(
            errors(&format!(
                "{CASE}    expect: {{ decision: reject }}\n  - name: b\n    request: {{ imp_uid: i, merchant_uid: o-2, amount: 50 }}\n    expect: {{ decision: reject }}\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: o-3, amount: 50 }}\n    expect: {{ decision: reject }}\n"
            )),
            ["tests/t.yaml:9:11: duplicate case name \"a\" (also at line 3): case names are unique in a file"]
        );
    }

    #[test]
    fn a_repeated_key_or_call_is_an_error() {
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /x\": {{ status: 200 }}\n        \"GET /x\": {{ status: 500 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:8:9: cases[0].upstreams.shop: duplicate key \"GET /x\" (first at line 7): a key may appear only once in a mapping"]
        );
        assert_eq!(
            errors("ruleset: default\ncases:\n  - name: a\n    request: { imp_uid: i, merchant_uid: o-1, amount: 50, amount: 5000 }\n    expect: { decision: approve }\n"),
            ["tests/t.yaml:4:59: cases[0].request: duplicate key \"amount\" (first at line 4): a key may appear only once in a mapping"]
        );
        assert_eq!(
            errors(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /api/stock/o-1?n=50+left\": {{ status: 200 }}\n        \"get  /api/stock/o-1?n=50+left\": {{ status: 500 }}\n    expect: {{ decision: approve }}\n"
            )),
            ["tests/t.yaml:8:9: canned call \"get  /api/stock/o-1?n=50+left\" is the same call as \"GET /api/stock/o-1?n=50+left\""]
        );
    }

    #[test]
    fn the_ruleset_must_exist() {
        assert_eq!(
            errors("ruleset: shop\ncases: []\n"),
            ["tests/t.yaml:1:10: unknown ruleset \"shop\", expected one of default"]
        );
    }

    #[test]
    fn canned_answers_the_rules_do_ask_for_load_without_warnings() {
        // As the rule renders it: the order id percent-encoded in the path, the query value
        // form-encoded. (The method's case does not matter.)
        for key in [
            "GET /api/stock/o%201?n=50+left",
            "get /api/stock/o%201?n=50+left",
        ] {
            assert_eq!(
                warnings(&format!(
                    "ruleset: default\ncases:\n  - name: a\n    request: {{ imp_uid: i, merchant_uid: o 1, amount: 50 }}\n    health: {{ shop: up }}\n    upstreams:\n      shop:\n        \"{key}\": {{ status: 200 }}\n        \"POST /payments/confirm\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
                )),
                Vec::<String>::new(),
                "{key}"
            );
        }
    }

    #[test]
    fn canned_answers_no_rule_asks_for_are_warnings() {
        let calls = "for this request the rules of ruleset \"default\" call \"shop\" with \"GET /api/stock/o-1?n=50+left\", \"POST /payments/confirm\"";
        assert_eq!(
            warnings(&format!(
                "{CASE}    upstreams:\n      shop:\n        \"GET /api/stock/o-2?n=50+left\": {{ status: 200 }}\n        \"GET /api/stock/o-1\": {{ status: 200 }}\n        \"PUT /payments/confirm\": {{ status: 200 }}\n        \"GET /health\": {{ status: 200 }}\n      pay:\n        \"POST /x\": {{ status: 200 }}\n    expect: {{ decision: approve }}\n"
            )),
            [
                format!("tests/t.yaml:7:9: canned answer \"GET /api/stock/o-2?n=50+left\" is never used: {calls}"),
                format!("tests/t.yaml:8:9: canned answer \"GET /api/stock/o-1\" is never used: {calls}"),
                format!("tests/t.yaml:9:9: canned answer \"PUT /payments/confirm\" is never used: {calls}"),
                format!("tests/t.yaml:10:9: canned answer \"GET /health\" is never used: {calls} (rule tests make no health probes: set health: {{ shop: up }} instead)"),
                "tests/t.yaml:12:9: canned answer \"POST /x\" is never used: no rule of ruleset \"default\" calls upstream \"pay\"".to_owned(),
            ]
        );
    }

    #[test]
    fn a_health_state_no_rule_reads_is_a_warning() {
        let rules = "upstreams:\n  shop: { url: \"http://127.0.0.1:9\", health: { path: /health } }\nrules:\n  - name: parked\n    healthy: shop\n    mode: off\n    reason: x\n  - name: limit\n    amount: { max: 100 }\n    reason: y\n";
        let test =
            format!("{CASE}    health: {{ shop: up }}\n    expect: {{ decision: approve }}\n");
        assert_eq!(
            load_with(rules, &test).expect("the test file should load"),
            ["tests/t.yaml:5:15: no rule of ruleset \"default\" reads the health of \"shop\" (no healthy: shop rule)"]
        );
    }
}
