//! Rule tests (`rules/tests/*.yaml`): cases with a fixed clock, canned upstream answers and
//! health states, run through the same engine `serve` uses, with no network at all.

mod load;
mod names;

use crate::text;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use crate::decision::{Decision, Outcome, RuleTrace, Verdict};
use crate::engine::{evaluate, Context, Original};
use crate::payload::ConfirmRequest;
use crate::payload::{self, Parsed};
use crate::rules::{Check, LoadError, Mode, Rule, Rules};
use crate::script::ScriptEngine;
use crate::upstream::canned::{Canned, CannedAnswer, CannedHealth, RawAnswer};
pub use load::{load_suites, shape_errors};

#[derive(Debug)]
struct RawSuite {
    ruleset: String,
    now: Option<String>,
    cases: Vec<RawCase>,
}

/// Reads a test file with the cases whose indices are in the set left out (read as anything):
/// after a case's shape error the file is read again without it, so that the shape errors of
/// every case are reported in one run, not one per run.
struct SuiteWithout<'a>(&'a std::collections::HashSet<usize>);

const SUITE_KEYS: &[&str] = &["ruleset", "now", "cases"];

impl<'de> serde::de::DeserializeSeed<'de> for SuiteWithout<'_> {
    type Value = RawSuite;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<RawSuite, D::Error> {
        d.deserialize_struct("RawSuite", SUITE_KEYS, self)
    }
}

impl<'de> serde::de::Visitor<'de> for SuiteWithout<'_> {
    type Value = RawSuite;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a rule test file: a mapping with ruleset, cases (and now)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawSuite, A::Error> {
        use serde::de::Error;
        let (mut ruleset, mut now, mut cases) = (None, None, Vec::new());
        while let Some(key) = map.next_key_seed(SuiteKey)? {
            match key {
                "ruleset" => ruleset = Some(map.next_value()?),
                "now" => now = map.next_value()?,
                _ => cases = map.next_value_seed(CasesWithout(self.0))?,
            }
        }
        Ok(RawSuite {
            ruleset: ruleset.ok_or_else(|| A::Error::missing_field("ruleset"))?,
            now,
            cases,
        })
    }
}

/// A key of a test file, refused while it is read if unknown: the error is then placed at the
/// key, not at the start of the file.
struct SuiteKey;

impl<'de> serde::de::DeserializeSeed<'de> for SuiteKey {
    type Value = &'static str;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SuiteKey {
    type Value = &'static str;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key of a rule test file (ruleset, now, cases)")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<&'static str, E> {
        SUITE_KEYS
            .iter()
            .find(|k| **k == key)
            .copied()
            .ok_or_else(|| E::unknown_field(key, SUITE_KEYS))
    }
}

struct CasesWithout<'a>(&'a std::collections::HashSet<usize>);

impl<'de> serde::de::DeserializeSeed<'de> for CasesWithout<'_> {
    type Value = Vec<RawCase>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<RawCase>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CasesWithout<'_> {
    type Value = Vec<RawCase>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of cases, each starting with \"- name: …\"")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<RawCase>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<RawCase>, A::Error> {
        let mut cases = Vec::new();
        for i in 0.. {
            if self.0.contains(&i) {
                if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                    break;
                }
            } else {
                match seq.next_element::<RawCase>()? {
                    Some(case) => cases.push(case),
                    None => break,
                }
            }
        }
        Ok(cases)
    }
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a case: a mapping with name, request and expect (and now, upstreams, health)"
)]
struct RawCase {
    name: String,
    /// A mapping is sent as JSON; a string is sent as it is (a form body, say). Anything else
    /// is a shape error, reported with the other cases' in the first round.
    #[serde(deserialize_with = "request_body")]
    request: serde_json::Value,
    now: Option<String>,
    /// Converted to answers by the loader, which locates what is wrong in one.
    #[serde(default)]
    upstreams: BTreeMap<String, BTreeMap<String, RawAnswer>>,
    #[serde(default)]
    health: BTreeMap<String, CannedHealth>,
    expect: Expect,
}

/// A case's `request`: a mapping or a string, refused as anything else (nothing at all
/// included: the case would run nothing) while the value is read, so that the error is placed
/// at it.
fn request_body<'de, D: serde::Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
    struct Request;
    impl<'de> serde::de::Visitor<'de> for Request {
        type Value = serde_json::Value;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping (sent as JSON) or a string (sent as it is)")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<serde_json::Value, E> {
            Ok(serde_json::Value::String(s.to_owned()))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<serde_json::Value, E> {
            Err(E::custom(
                "no value; write the request: a mapping (sent as JSON) or a string (sent as it is)",
            ))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            map: A,
        ) -> Result<serde_json::Value, A::Error> {
            serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(Request)
}

/// What a case expects; only the keys given are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "what the case expects: a mapping with decision (and rule, reason, reason_contains, status, shadow, errors)"
)]
pub struct Expect {
    #[serde(deserialize_with = "crate::rules::model::choice")]
    pub decision: Verdict,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub reason_contains: Option<String>,
    pub status: Option<u16>,
    /// Names of the shadow rules that would have refused (all of them, in order).
    pub shadow: Option<Vec<String>>,
    /// Names of the rules whose checks failed (all of them, in order): a case testing
    /// `on_error` says which failure it means.
    pub errors: Option<Vec<String>>,
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
    /// The file's text, to find a failing case's line in (only then: finding a node reads
    /// the whole document).
    src: Arc<str>,
}

impl Suite {
    /// How many cases the file holds.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}

#[derive(Debug)]
struct Case {
    /// Its place in `cases:`.
    index: usize,
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
    /// Where the case's `name:` value is, for a failing case (0:0 for one that passed).
    pub at: crate::rules::yaml::Location,
    pub name: String,
    pub expect: Expect,
    pub decision: Decision,
    /// The case's clock (its own `now:` or its file's); `None`: the machine's.
    pub now: Option<DateTime<FixedOffset>>,
    /// Empty when the case passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }

    /// The line `test --verbose` prints for a case that passed: its file, name and what was
    /// decided, by which rule (the name on one line, as in [`CaseResult::explain`]).
    pub fn summary(&self) -> String {
        let d = &self.decision;
        let by = d
            .rule
            .as_deref()
            .map(|rule| format!(" by {rule}"))
            .unwrap_or_default();
        format!(
            "ok   {}: {} -> {}{by}",
            self.file.display(),
            crate::logfmt::on_one_line(&self.name, 200),
            d.decision.as_str(),
        )
    }

    /// The block printed for a failing case: expected, actual, and the per-rule trace.
    pub fn explain(&self) -> String {
        let d = &self.decision;
        // A name on one line: the report's lines are read one by one (the reload's log line
        // takes its first two).
        let mut out = format!(
            "FAIL {}:{}:{}: {}\n",
            self.file.display(),
            self.at.line,
            self.at.column,
            crate::logfmt::on_one_line(&self.name, 200)
        );
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
        // A window or a script that reads the time decides by it: a `now` written in UTC
        // (`…Z`) is nine hours from what the case's name may say.
        let _ = match self.now {
            Some(now) => {
                let seoul = now.with_timezone(&crate::rules::SEOUL);
                writeln!(
                    out,
                    "  now:    {} ({} in Korea)",
                    now.to_rfc3339(),
                    seoul.format("%Y-%m-%d %H:%M:%S")
                )
            }
            None => writeln!(
                out,
                "  now:    the machine's clock (neither the case nor its file sets now:)"
            ),
        };
        if d.trace.is_empty() && d.status != 200 {
            let _ = writeln!(
                out,
                "  trace: none: no rule ran, the request itself was refused ({})",
                d.status
            );
            return out;
        }
        let _ = writeln!(out, "  trace:");
        for t in &d.trace {
            // Padded by the columns a terminal gives the name: a Hangul syllable takes two.
            let pad = 24usize.saturating_sub(unicode_width::UnicodeWidthStr::width(&*t.rule));
            let _ = write!(
                out,
                "    {}{:pad$} {:<14} {:>8.3} ms",
                t.rule,
                "",
                t.outcome.as_str(),
                t.ms
            );
            if let Some(e) = &t.error {
                let _ = write!(out, "  error: {e}");
            } else if let Some(r) = &t.reason {
                let _ = write!(out, "  reason: {r}");
            }
            out.push('\n');
            // What the rule sent and read: a refusal over `{"remaining": "7"}` (text, not a
            // number) is plain only with the answer in view.
            if let Some(call) = &t.call {
                let _ = write!(out, "      {call}");
                if let Some(a) = &t.upstream {
                    let body = crate::logfmt::on_one_line(&a.body.to_string(), 300);
                    let _ = write!(out, ": answered {} {body}", a.status);
                }
                out.push('\n');
            }
        }
        out
    }
}

/// Runs every case whose name contains `filter` (both compared composed, see
/// [`crate::text::nfc`]).
pub async fn run(
    rules: &Rules,
    suites: &[Suite],
    scripts: &ScriptEngine,
    filter: Option<&str>,
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let filter = filter.map(text::nfc);
    for suite in suites {
        let Some(ruleset) = rules.get(&suite.ruleset) else {
            continue;
        };
        for case in suite.cases.iter().filter(|c| {
            filter
                .as_deref()
                .is_none_or(|f| text::nfc(&c.name).contains(f))
        }) {
            let (decision, guarded, unset) = decide(ruleset, case, scripts).await;
            let mut mismatches = compare(&case.expect, &decision);
            mismatches.extend(unset);
            // A typo in the request (`merchant_id`) would make a case expecting a refusal test
            // the payload check instead of the rules, and pass. A case testing that refusal
            // says so by its status — and by its reason too where the rules' own refusals have
            // that status (`reject_status: 400`): the status alone would pass either way.
            let expected = match case.expect.status {
                None => false,
                Some(s) if s == decision.status && s == ruleset.settings.reject_status => {
                    let said =
                        |r: &Option<String>| r.as_deref().is_some_and(|r| !r.trim().is_empty());
                    said(&case.expect.reason) || said(&case.expect.reason_contains)
                }
                // Another status than the refusal's fails the case on its own.
                Some(_) => true,
            };
            if guarded && !expected {
                let to_test = if case.expect.status.is_some() {
                    format!(
                        "the rules refuse with {0} too (reject_status: {0}), so expect its reason as well",
                        decision.status
                    )
                } else {
                    format!("expect status: {}", decision.status)
                };
                mismatches.push(format!(
                    "the request was refused before any rule ran ({}: {}); fix the case's request, or {to_test} to test that",
                    decision.status,
                    decision.reason.as_deref().unwrap_or(""),
                ));
            }
            let at = if mismatches.is_empty() {
                crate::rules::yaml::Location::default()
            } else {
                let name = [
                    crate::rules::yaml::Seg::Key("cases"),
                    crate::rules::yaml::Seg::Index(case.index),
                    crate::rules::yaml::Seg::Key("name"),
                ];
                crate::rules::yaml::locate_written(&suite.src, &name)
            };
            results.push(CaseResult {
                file: suite.file.clone(),
                at,
                name: case.name.clone(),
                expect: case.expect.clone(),
                decision,
                now: case.now,
                mismatches,
            });
        }
    }
    results
}

/// The rules evaluated in `d` (enforced or shadow) that failed meeting nothing the case set —
/// a call they made that it has no canned answer for, or the health of an upstream it gives
/// none — as mismatches: such a rule is decided by `on_error`, so a case expecting its refusal
/// would pass without the rule's check having run (a canned path with another order id in it,
/// say); a shadow rule's would test nothing. A case testing `on_error` sets the failure it
/// means (`error: refused`, `health: { shop: unknown }`).
fn unset_for(
    ruleset: &crate::rules::Ruleset,
    case: &Case,
    canned: &Canned,
    req: &ConfirmRequest,
    d: &Decision,
) -> Vec<String> {
    // Only a call or probe it made: a rule whose `when` failed made none.
    let failed = |rule: &Rule| {
        rule.mode != Mode::Off
            && d.trace.iter().any(|t| {
                t.rule == rule.name
                    && t.outcome.is_error()
                    && (t.call.is_some() || t.probe.is_some())
            })
    };
    ruleset
        .rules
        .iter()
        .filter(|rule| failed(rule))
        .filter_map(|rule| {
            if let Check::Healthy(up) = &rule.check {
                if !case.health.contains_key(&up.name) {
                    return Some(format!(
                        "rule {} reads the health of {}, which the case does not set; add health: {{ {}: up }} (down, or unknown to test on_error)",
                        rule.name, up.name, up.name
                    ));
                }
            }
            let (upstream, key) = names::canned_call(rule, req)?;
            (!canned.has_answer(upstream, &key)).then(|| {
                format!(
                    "rule {} calls {upstream} with \"{key}\", which the case has no canned answer for; add it to the case's upstreams (error: refused, dns or timeout to test on_error)",
                    rule.name
                )
            })
        })
        .collect()
}

/// The case's decision, whether its request was answered before any rule ran (refused as a
/// payload, or an ignored V2 type), and what its rules met unset ([`unset_for`]).
async fn decide(
    ruleset: &crate::rules::Ruleset,
    case: &Case,
    scripts: &ScriptEngine,
) -> (Decision, bool, Vec<String>) {
    let req = match payload::parse(case.content_type, &case.body) {
        Ok(Parsed::Confirm(req)) => req,
        Ok(Parsed::Ignored { .. }) => return (Decision::ignored(), false, Vec::new()),
        Err(e) => {
            let refused = Decision::reject(e.status(), e.to_string(), None);
            return (refused, true, Vec::new());
        }
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
    let original = Original::new(
        case.body.clone(),
        case.content_type
            .map(http::HeaderValue::from_static)
            .as_ref(),
    );
    let canned = Arc::new(canned);
    let ctx = Context {
        scripts,
        upstreams: canned.clone(),
        now: case
            .now
            .unwrap_or_else(|| chrono::Utc::now().fixed_offset()),
        started: tokio::time::Instant::now(),
        original: &original,
        decision_id: None,
        sent: None,
    };
    let decision = evaluate(ruleset, &req, &ctx).await;
    let unset = unset_for(ruleset, case, &canned, &req, &decision);
    (decision, false, unset)
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
            // What the expected rule did, when it ran: a trial's misspelt script key let the
            // request through it, and the hint about a later rule's health read as the fix.
            let did = d
                .trace
                .iter()
                .find(|t| *t.rule == **rule)
                .and_then(|t| match t.outcome {
                    Outcome::Pass => Some(format!(
                        "; {rule} ran and let this request through (its check passed), {}",
                        if d.rule.is_some() {
                            "so a later rule decided"
                        } else {
                            "and no rule refused"
                        }
                    )),
                    Outcome::Skipped => Some(format!(
                        "; {rule} was skipped, its when false for this request"
                    )),
                    Outcome::Error => Some(format!(
                        "; {rule} failed and its on_error let the request go on ({})",
                        t.error.as_deref().unwrap_or("no cause recorded")
                    )),
                    _ => None,
                })
                .or_else(|| {
                    // Not in the trace: an earlier rule decided before evaluation got to it.
                    d.rule
                        .as_deref()
                        .map(|got| format!("; {rule} was not reached: {got} decided first"))
                });
            out.push(format!(
                "expected rule {rule}, got {}{}",
                d.rule.as_deref().unwrap_or("(none)"),
                did.unwrap_or_default()
            ));
        }
    }
    // An approval has no reason at all, which an empty one would hide.
    let got_reason = || {
        d.reason
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), |r| format!("{r:?}"))
    };
    if let Some(reason) = &expect.reason {
        if d.reason.as_deref() != Some(reason) {
            out.push(format!("expected reason {reason:?}, got {}", got_reason()));
        }
    }
    if let Some(part) = &expect.reason_contains {
        if !d.reason.as_deref().unwrap_or("").contains(part.as_str()) {
            out.push(format!(
                "expected reason containing {part:?}, got {}",
                got_reason()
            ));
        }
    }
    if let Some(status) = expect.status {
        if d.status != status {
            out.push(format!("expected status {status}, got {}", d.status));
        }
    }
    let failed = |t: &&RuleTrace| t.outcome.is_error() && &*t.rule != crate::engine::EVALUATION;
    let error_of = |t: &RuleTrace| t.error.clone().unwrap_or_else(|| "an error".to_owned());
    if let Some(errors) = &expect.errors {
        let got: Vec<&str> = d.trace.iter().filter(failed).map(|t| &*t.rule).collect();
        if got != errors.iter().map(String::as_str).collect::<Vec<_>>() {
            out.push(format!("expected errors {errors:?}, got {got:?}"));
        }
    } else {
        // A rule whose own expression or script failed (a script reading a field the request
        // lacks, a `require` ordering an answer's text against a number) ends in `on_error`'s
        // answer, which a case expecting the rule's refusal, or an approval, would take for
        // the rule's check. What the case set to fail (a canned failure, status or body that
        // is no JSON, a health state, a delay past the deadline) is the case's to test; a
        // shadow rule's failure is reported below when `shadow` is given.
        for t in d.trace.iter().filter(|t| {
            t.faulted && !(t.outcome == Outcome::ShadowError && expect.shadow.is_some())
        }) {
            // A shadow rule's failure decides nothing (yet).
            let (rule, decided) = match t.outcome {
                Outcome::ShadowError => ("shadow rule", ""),
                _ => ("rule", ", and on_error decided"),
            };
            out.push(format!(
                "{rule} {} failed{decided}: {}; fix the rule or the case's request, or list the rule under expect.errors to test that",
                t.rule,
                error_of(t)
            ));
        }
    }
    if let Some(shadow) = &expect.shadow {
        // What would have decided had the shadow rules been enforced: a refusal, or an
        // approval of a shadow `action: approve`.
        let got: Vec<&str> = d
            .trace
            .iter()
            .filter(|t| matches!(t.outcome, Outcome::ShadowReject | Outcome::ShadowApprove))
            .map(|t| &*t.rule)
            .collect();
        if got != shadow.iter().map(String::as_str).collect::<Vec<_>>() {
            out.push(format!(
                "expected shadow decisions {shadow:?}, got {got:?} (listed in rule order)"
            ));
        }
        // A trial rule that fails decides nothing now, and everything by on_error once
        // enforced: a case about shadow outcomes says so.
        for t in d
            .trace
            .iter()
            .filter(|t| t.outcome == Outcome::ShadowError && expect.errors.is_none())
        {
            out.push(format!(
                "shadow rule {} failed: {}; fix the rule or the case's request, or list the rule under expect.errors to test that",
                t.rule,
                error_of(t)
            ));
        }
    }
    out
}

/// Runs every suite of a freshly loaded generation; failing cases come back as messages.
/// Used by `serve --test-on-reload` so a change that breaks its own tests never goes live.
/// `Ok` holds warnings: a ruleset no suite tests, which the gate lets through unchecked.
pub fn gate(
    rules_dir: &Path,
    rules: &Rules,
    scripts: &ScriptEngine,
) -> Result<Vec<String>, Vec<String>> {
    let suites = load_suites(rules_dir, rules)
        .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    // On a paused clock, as `confirm-proxy test` runs them: canned delays and timeouts pass at
    // once, so a suite with a few `error: timeout` cases holds up no reload or start-up.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| vec![format!("cannot run rule tests: {e}")])?;
    // No case logs (its evaluation has no decision id, and `serve` gives the gate a silent
    // script engine): the checks a case expects to fail must not read as failures of live
    // requests and page whoever watches the logs. The outcome is the gate's own report.
    let results = runtime.block_on(run(rules, &suites, scripts, None));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed())
        .map(CaseResult::explain)
        .collect();
    if !failed.is_empty() {
        return Err(failed);
    }
    // A new ruleset file (a copy of another for a second sale) goes live with no test run:
    // said on every reload, so that the operator who relies on the gate learns it.
    let tested: std::collections::HashSet<&str> =
        suites.iter().map(|s| s.ruleset.as_str()).collect();
    Ok(rules
        .rulesets
        .values()
        .filter(|set| !tested.contains(set.name.as_str()))
        .map(|set| {
            format!(
                "{}: ruleset \"{}\" has no rule tests (no file under tests/ names it): --test-on-reload lets every edit of it go live untested",
                set.file.display(),
                set.name
            )
        })
        .collect())
}

/// A rules directory for tests: `rules` as `default.yaml` and `test` as `tests/t.yaml`, its
/// rules loaded (they must load) and its suites read.
#[cfg(test)]
fn loaded(
    rules: &str,
    test: &str,
) -> (
    tempfile::TempDir,
    Rules,
    Result<Vec<Suite>, Vec<crate::rules::LoadError>>,
) {
    let (dir, rules) = crate::rules::load_files(&[("default.yaml", rules), ("tests/t.yaml", test)]);
    let suites = load_suites(dir.path(), &rules);
    (dir, rules, suites)
}

#[cfg(test)]
mod as_written;
#[cfg(test)]
mod failures;
#[cfg(test)]
mod gate;
#[cfg(test)]
mod mutations;
#[cfg(test)]
mod uncanned;

#[cfg(test)]
mod tests {
    use super::*;

    /// What a failing case says it got: an approval's missing reason is "(none)", not "".
    #[test]
    fn a_missing_reason_is_said_to_be_none() {
        let expect = Expect {
            decision: Verdict::Reject,
            rule: None,
            reason: Some("한도 초과".into()),
            reason_contains: Some("한도".into()),
            status: None,
            shadow: None,
            errors: None,
        };
        assert_eq!(
            compare(&expect, &Decision::approve(None)),
            [
                "expected decision reject, got approve",
                r#"expected reason "한도 초과", got (none)"#,
                r#"expected reason containing "한도", got (none)"#,
            ]
        );
        let refused = Decision::reject(409, "재고 없음".into(), None);
        assert_eq!(
            compare(&expect, &refused),
            [
                r#"expected reason "한도 초과", got "재고 없음""#,
                r#"expected reason containing "한도", got "재고 없음""#,
            ]
        );
    }
}
