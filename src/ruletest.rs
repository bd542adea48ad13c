//! Rule tests (`rules/tests/*.yaml`): cases with a fixed clock, canned upstream answers and
//! health states, run through the same engine `serve` uses, with no network at all.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use crate::decision::{Decision, Outcome, Verdict};
use crate::engine::{evaluate, Context, Original};
use crate::payload::{self, Parsed};
use crate::rules::yaml::{self, Seg};
use crate::rules::{LoadError, Rules};
use crate::script::ScriptEngine;
use crate::upstream::canned::{Canned, CannedAnswer, CannedHealth};

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
    if errors.is_empty() {
        Ok(Suite {
            file: file.to_owned(),
            ruleset: raw.ruleset,
            cases,
        })
    } else {
        Err(errors)
    }
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
