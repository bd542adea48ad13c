//! Whether the names a case uses exist in its ruleset, and which of its canned answers and
//! health states no rule would read; the engine's own code says which calls the rules make.

use std::collections::HashMap;

use super::RawCase;
use crate::engine;
use crate::payload::ConfirmRequest;
use crate::rules::yaml::{self, Location, Seg};
use crate::rules::{Check, Mode, Rule, Ruleset};
use crate::upstream::canned;

/// Checks the names one case uses against its ruleset (`None` when the file names no ruleset
/// that exists, which is reported on its own).
pub(super) struct CaseNames<'a> {
    pub(super) src: &'a str,
    pub(super) case: usize,
    /// The case's own text, from the start of its line, and that line's number, when the file
    /// lists its cases so that they can be told apart: a case's names are then found reading
    /// only it (reading the whole file for each, a file of 1,000 cases took minutes).
    pub(super) text: Option<(&'a str, usize)>,
    pub(super) ruleset: Option<&'a Ruleset>,
}

impl CaseNames<'_> {
    /// Where the value at `path` (below this case) is.
    fn value(&self, path: &[Seg<'_>]) -> Location {
        self.find(path, yaml::locate)
    }

    /// Where the mapping key at `path` (below this case) is; its value's place if it has none.
    fn key(&self, path: &[Seg<'_>]) -> Location {
        self.find(path, |src, full| {
            yaml::locate_key(src, full).unwrap_or_else(|| yaml::locate(src, full))
        })
    }

    /// `locate` for `path` below this case, in the case's own text when it is known.
    fn find(&self, path: &[Seg<'_>], locate: impl Fn(&str, &[Seg<'_>]) -> Location) -> Location {
        let (src, mut full, first_line) = match self.text {
            Some((text, line)) => (text, vec![Seg::Index(0)], line),
            None => (self.src, vec![Seg::Key("cases"), Seg::Index(self.case)], 1),
        };
        full.extend_from_slice(path);
        let at = locate(src, &full);
        Location {
            line: at.line + first_line - 1,
            column: at.column,
        }
    }

    /// Every name the case uses that does not exist, with where it is written.
    pub(super) fn errors(&self, c: &RawCase) -> Vec<(Location, String)> {
        let mut out = Vec::new();
        for (up, answers) in &c.upstreams {
            if let Some(ruleset) = self.ruleset {
                if !ruleset.upstreams.contains_key(up) {
                    out.push((
                        self.key(&[Seg::Key("upstreams"), Seg::Key(up)]),
                        format!(
                            "unknown upstream \"{up}\", {}",
                            upstreams_expected(ruleset, up)
                        ),
                    ));
                }
            }
            // Locating a key reads the whole file: only a case with a problem pays for it (one
            // locate per key of every case made a 480-case file take 12 s to load).
            let normals: Vec<Result<String, String>> =
                answers.keys().map(|key| canned::check_key(key)).collect();
            let distinct: std::collections::HashSet<&String> =
                normals.iter().filter_map(|n| n.as_ref().ok()).collect();
            if normals.iter().all(Result::is_ok) && distinct.len() == normals.len() {
                continue;
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
                let at = || self.key(&[Seg::Key("health"), Seg::Key(up)]);
                match ruleset.upstreams.get(up) {
                    None => out.push((
                        at(),
                        format!("unknown upstream \"{up}\", {}", upstreams_expected(ruleset, up)),
                    )),
                    Some(u) if u.health.is_none() => out.push((
                        at(),
                        format!(
                            "upstream \"{up}\" has no health probe, so no rule reads its health: leave it out of the case's health, or give the upstream a probe in the rule file (health: {{ path: /health }}) for a healthy: {up} rule"
                        ),
                    )),
                    Some(_) => {}
                }
            }
            let mode = |name: &str| {
                ruleset
                    .rules
                    .iter()
                    .find(|r| &*r.name == name)
                    .map(|r| r.mode)
            };
            if let Some(rule) = &c.expect.rule {
                let at = || self.value(&[Seg::Key("expect"), Seg::Key("rule")]);
                match mode(rule) {
                    None => out.push((
                        at(),
                        format!("unknown rule \"{rule}\", {}", rules_expected(ruleset, rule)),
                    )),
                    // It never decides: the case could never pass.
                    Some(Mode::Shadow) => out.push((
                        at(),
                        format!("rule \"{rule}\" is not enforced, so it never decides; name it under expect.shadow, or an enforced rule here"),
                    )),
                    Some(Mode::Off) => out.push((at(), never_runs(rule, "an enforced rule"))),
                    Some(Mode::Enforce) => {
                        // Only an `action: approve` rule decides an approval (or any rule whose
                        // check the deadline cut off, with on_error: approve): the case could
                        // never pass.
                        let approves = ruleset.rules.iter().any(|r| {
                            &*r.name == rule && matches!(r.check, crate::rules::Check::Approve)
                        });
                        if c.expect.decision == crate::decision::Verdict::Approve
                            && !approves
                            && ruleset.settings.on_error == crate::rules::OnError::Reject
                        {
                            out.push((
                                at(),
                                format!("rule \"{rule}\" never decides an approval (only an action: approve rule does), so this case could never pass; when every rule passes, the approval names no rule: leave expect.rule out"),
                            ));
                        }
                    }
                }
            }
            // The rules of `shadow` and `errors`: rules of the ruleset that run, each named
            // once (each rule has one outcome in a case: a list naming one twice could never
            // match), and for `shadow` shadow rules.
            for (key, list) in [("shadow", &c.expect.shadow), ("errors", &c.expect.errors)] {
                for (j, rule) in list.iter().flatten().enumerate() {
                    let at = || self.value(&[Seg::Key("expect"), Seg::Key(key), Seg::Index(j)]);
                    match mode(rule) {
                        None => out.push((
                            at(),
                            format!("unknown rule \"{rule}\", {}", rules_expected(ruleset, rule)),
                        )),
                        // Only shadow rules have shadow outcomes: the case could never pass.
                        Some(Mode::Enforce) if key == "shadow" => out.push((
                            at(),
                            format!("rule \"{rule}\" is enforced, so it has no shadow outcome; expect.shadow names shadow rules (mode: shadow) that would refuse, and expect.rule the enforced rule that decides"),
                        )),
                        Some(Mode::Off) => {
                            let instead = if key == "shadow" { "a shadow rule" } else { "a rule" };
                            out.push((at(), never_runs(rule, instead)));
                        }
                        Some(_) => {}
                    }
                    if list.iter().flatten().take(j).any(|r| r == rule) {
                        out.push((
                            at(),
                            format!("rule \"{rule}\" is named twice in expect.{key}; each rule has one outcome in a case"),
                        ));
                    }
                }
            }
        }
        if c.name.trim().is_empty() {
            out.push((
                self.value(&[Seg::Key("name")]),
                "a case needs a name (it is how failures and FILTER name it)".to_owned(),
            ));
        }
        if c.expect.reason_contains.as_deref() == Some("") {
            out.push((
                self.value(&[Seg::Key("expect"), Seg::Key("reason_contains")]),
                "reason_contains is empty, which every reason contains; give the text to look for"
                    .to_owned(),
            ));
        }
        // Approvals and ignored messages are answered 200, without a reason.
        let answered_200 = c.expect.decision != crate::decision::Verdict::Reject;
        let decision = c.expect.decision.as_str();
        if let Some(status) = c.expect.status {
            let at = || self.value(&[Seg::Key("expect"), Seg::Key("status")]);
            if status != 200 && !(400..=599).contains(&status) {
                out.push((
                    at(),
                    format!(
                        "status {status} is never answered: expected 200 or a refusal's 4xx or 5xx"
                    ),
                ));
            } else if answered_200 != (status == 200) {
                // A case that could never pass would fail every run, and under
                // `--test-on-reload` refuse every reload.
                let why = if answered_200 {
                    format!("decision: {decision} is answered 200, never {status}; a {status} is decision: reject")
                } else {
                    "a refusal is never answered 200 (a refusal's status is a 4xx or 5xx); a 200 is decision: approve".to_owned()
                };
                out.push((at(), why));
            }
        }
        if answered_200 {
            for key in ["reason", "reason_contains"] {
                let set = match key {
                    "reason" => c.expect.reason.is_some(),
                    _ => c.expect.reason_contains.is_some(),
                };
                if set {
                    out.push((
                        self.value(&[Seg::Key("expect"), Seg::Key(key)]),
                        format!("decision: {decision} has no reason, so expect.{key} can never match; it is for decision: reject"),
                    ));
                }
            }
        }
        out
    }

    /// Canned answers and health states of known upstreams that no rule would read for this
    /// case's request. Without a request (the case's is not a confirm request, so no rule runs
    /// at all), only whether any rule could read a health state.
    pub(super) fn unused(
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
            // Rules that call the upstream, but whose simple `when` skips this request.
            let skipping: Vec<String> = ruleset
                .rules
                .iter()
                .filter(|r| r.called().is_some_and(|u| u.name == *up))
                .filter(|r| r.skips_up_front(req))
                .map(|r| format!("\"{}\"", r.name))
                .collect();
            for key in answers.keys() {
                let Ok(normal) = canned::check_key(key) else {
                    continue;
                };
                if to_up.contains(&normal.as_str()) {
                    out.extend(self.fields_missing(ruleset, req, up, key, &normal, &answers[key]));
                    continue;
                }
                let mut message = if to_up.is_empty() && skipping.is_empty() {
                    format!(
                        "canned answer \"{key}\" is never used: no rule of ruleset \"{}\" calls upstream \"{up}\"",
                        ruleset.name
                    )
                } else if to_up.is_empty() {
                    let whose = match &skipping[..] {
                        [one] => format!("the when of rule {one} skips it"),
                        more => format!("the whens of rules {} skip it", more.join(", ")),
                    };
                    format!(
                        "canned answer \"{key}\" is never used: for this request no rule of ruleset \"{}\" calls upstream \"{up}\" ({whose})",
                        ruleset.name,
                    )
                } else {
                    let made: Vec<String> = to_up.iter().map(|key| format!("\"{key}\"")).collect();
                    format!(
                        "canned answer \"{key}\" is never used: for this request the rules of ruleset \"{}\" call \"{up}\" with {}",
                        ruleset.name,
                        made.join(", ")
                    )
                };
                // `GET /s/주문-1` for the `/s/%EC%A3%BC…-1` a placeholder is sent as.
                let decoded = |k: &str| {
                    percent_encoding::percent_decode_str(k)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                if let Some(sent) = to_up.iter().find(|m| decoded(m) == decoded(&normal)) {
                    message.push_str(&format!(
                        " (the call is named as it is sent, percent-encoded: write \"{sent}\")"
                    ));
                }
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

    /// A field a `require` reads that the canned answer `key` it gets lacks, where the body has
    /// one close to it (`availble` read, `available` given): one side is misspelt, and the
    /// case tests `()` rather than the answer it was written with. (A field left out on
    /// purpose, to test an answer without it, has no near miss and is not warned about.)
    fn fields_missing(
        &self,
        ruleset: &Ruleset,
        req: &ConfirmRequest,
        up: &str,
        key: &str,
        normal: &str,
        answer: &canned::RawAnswer,
    ) -> Vec<(Location, String)> {
        let Some(serde_json::Value::Object(body)) = answer.body() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for rule in &ruleset.rules {
            let Check::Fetch(f) = &rule.check else {
                continue;
            };
            let Some(require) = f.require.as_ref() else {
                continue;
            };
            if rule.mode == Mode::Off
                || canned_call(rule, req).is_none_or(|(u, k)| u != up || k != normal)
            {
                continue;
            }
            let read = crate::rules::fields_read(&require.src);
            for &field in &read {
                // Read with a default (`?? false`) wherever it is read, it may be left out on
                // purpose.
                let defaulted = require
                    .src
                    .split(&format!("response.body.{field}"))
                    .skip(1)
                    .all(|rest| {
                        let rest = rest.trim_start_matches(')').trim_start();
                        rest.starts_with("??") || rest.starts_with("?.")
                    });
                if body.contains_key(field) || defaulted {
                    continue;
                }
                // A near miss that the require reads too is a field of its own (`sold` and
                // `sold_out`), not the misspelling.
                let others = body
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !read.contains(k));
                let Some(near) = crate::suggest::closest(field, others) else {
                    continue;
                };
                out.push((
                    self.key(&[
                        Seg::Key("upstreams"),
                        Seg::Key(up),
                        Seg::Key(key),
                        Seg::Key("body"),
                    ]),
                    format!(
                        "rule \"{}\" reads response.body.{field}, and this canned answer has no such field but has \"{near}\": one of the two is misspelt, and the case tests () instead of the answer",
                        rule.name
                    ),
                ));
            }
        }
        out
    }
}

/// What upstreams there are, for a case naming `up`, which is none of them.
fn upstreams_expected(ruleset: &Ruleset, up: &str) -> String {
    if ruleset.upstreams.is_empty() {
        format!("ruleset \"{}\" defines no upstreams", ruleset.name)
    } else {
        let known: Vec<&str> = ruleset.upstreams.keys().map(String::as_str).collect();
        format!(
            "expected one of {}{}",
            known.join(", "),
            crate::suggest::hint(up, known.iter().copied())
        )
    }
}

/// What rules there are, for a case naming `rule`, which is none of them.
fn rules_expected(ruleset: &Ruleset, rule: &str) -> String {
    let known: Vec<&str> = ruleset.rules.iter().map(|r| &*r.name).collect();
    format!(
        "ruleset \"{}\" has rules {}{}",
        ruleset.name,
        known.join(", "),
        crate::suggest::hint(rule, known.iter().copied())
    )
}

/// The canned keys (`"METHOD /path?query"`, upstream name first) of every call the ruleset's
/// `fetch` and `forward` rules (but those with `mode: off`) would make for `req`.
fn calls(ruleset: &Ruleset, req: &ConfirmRequest) -> Vec<(String, String)> {
    // A rule whose `when` of the simple shapes skips the request makes no call for it.
    ruleset
        .rules
        .iter()
        .filter(|rule| !rule.skips_up_front(req))
        .filter_map(|rule| canned_call(rule, req))
        .map(|(upstream, key)| (upstream.to_owned(), key))
        .collect()
}

/// The upstream `rule` calls and the call's canned key (`"METHOD /path?query"`) for `req`,
/// built by the engine's own code, so a key matches exactly when the engine would ask for it;
/// `None` for a rule that calls nothing (or has `mode: off`).
pub(super) fn canned_call<'r>(rule: &'r Rule, req: &ConfirmRequest) -> Option<(&'r str, String)> {
    let upstream = rule.called()?;
    let key = match &rule.check {
        Check::Fetch(f) => {
            let call = engine::fetch_call(f, req, None).ok()?;
            format!("{} {}", call.method, call.path_and_query)
        }
        Check::Forward(fw) => format!("POST {}", fw.path),
        _ => return None,
    };
    Some((&upstream.name, key))
}

/// The error for a `mode: off` rule named in an expectation, saying what to name instead.
fn never_runs(rule: &str, instead: &str) -> String {
    format!("rule \"{rule}\" has mode: off, so it never runs; name {instead} here")
}
