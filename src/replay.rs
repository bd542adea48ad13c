//! Replaying the decision log: each logged request decided again by the rules as they are now,
//! with the upstream answers and health states its record holds instead of the network, to show
//! which decisions an edit would change before it goes live.
//!
//! The record is the whole input: the request as received, its arrival time (`now` and every
//! sale window), and per rule the upstream's status and body or the health it read. A rule the
//! record says nothing about (new, or not reached then) meets no upstream at all, which is an
//! error decided by `on_error`, and the replay says so.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::decision::{Decision, Outcome, MAX_TRACED_BODY};
use crate::engine::{evaluate, fetch_call, Context, Original};
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::rules::{Check, Health, Rules, Ruleset, UNKNOWN_RULESET_REASON};
use crate::script::ScriptEngine;
use crate::upstream::canned::{Canned, CannedAnswer, CannedError};

/// One decision-log line, as far as a replay reads it.
#[derive(Debug, Deserialize)]
pub struct Record {
    /// The arrival: the evaluation time the rules saw.
    #[serde(deserialize_with = "rfc3339")]
    pub time: DateTime<FixedOffset>,
    pub decision_id: String,
    pub ruleset: String,
    #[serde(default)]
    pub order_id: Option<String>,
    pub decision: String,
    pub status: u16,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    trace: Vec<Traced>,
    /// The body as received; absent on the guards' answers, which come before any rule.
    #[serde(default)]
    request: Option<Box<RawValue>>,
    /// A repeated delivery was answered from its first delivery, not by the rules.
    #[serde(default)]
    repeat_of: Option<String>,
    repeat_refused: Option<String>,
}

fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)
}

#[derive(Debug, Deserialize)]
struct Traced {
    rule: String,
    outcome: String,
    #[serde(default)]
    upstream: Option<Answered>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Answered {
    status: u16,
    body: Value,
    /// Why the answer's body was cut short then; replayed as cut, so a `require` is again not
    /// evaluated on it.
    #[serde(default)]
    incomplete: Option<String>,
}

/// Reads one line of the decision log (its line break included or not).
pub fn read(line: &[u8]) -> Result<Record, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not a decision-log record: not UTF-8 at byte {} (a line cut inside a character?)",
            e.valid_up_to() + 1
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        // serde_json's "at line 1 column C": the line is the file's, given by the caller.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        format!(
            "not a decision-log record: {message} (column {})",
            e.column()
        )
    })
}

impl Record {
    /// Whether rules decided it: not a guard's answer, a repeated delivery (answered as its
    /// first, or refused as no copy of it or as one whose first has no answer yet) or an
    /// ignored message, which have nothing to replay.
    pub fn decided_by_rules(&self) -> bool {
        self.request.is_some()
            && self.repeat_of.is_none()
            && self.repeat_refused.is_none()
            && self.decision != "ignored"
    }
}

/// A record decided again.
pub struct Replayed {
    pub record: Record,
    pub decision: Decision,
    /// Where the record could not stand in for the upstreams (a rule it says nothing about, an
    /// answer body it kept only in part).
    pub notes: Vec<String>,
}

impl Replayed {
    /// Whether the answer would differ: decision, status, deciding rule or reason.
    pub fn changed(&self) -> bool {
        let r = &self.record;
        let d = &self.decision;
        r.decision != d.decision.as_str()
            || r.status != d.status
            || r.rule.as_deref() != d.rule.as_deref()
            || r.reason != d.reason
    }

    /// The record's answer and the new one, the notes, and the new per-rule trace.
    pub fn explain(&self) -> String {
        use std::fmt::Write;
        let r = &self.record;
        let mut out = format!(
            "{} ({}, order {}, {})\n",
            r.decision_id,
            r.ruleset,
            r.order_id.as_deref().map_or_else(|| "-".into(), shown_id),
            r.time.to_rfc3339()
        );
        let _ = writeln!(
            out,
            "  logged: {}",
            answer(
                &r.decision,
                r.status,
                r.rule.as_deref(),
                r.reason.as_deref()
            )
        );
        let d = &self.decision;
        let _ = writeln!(
            out,
            "  now:    {}",
            answer(
                d.decision.as_str(),
                d.status,
                d.rule.as_deref(),
                d.reason.as_deref()
            )
        );
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        for t in &d.trace {
            let _ = write!(out, "  - {}: {}", t.rule, t.outcome.as_str());
            if let Some(e) = &t.error {
                let _ = write!(out, " ({e})");
            }
            out.push('\n');
        }
        out
    }
}

fn answer(decision: &str, status: u16, rule: Option<&str>, reason: Option<&str>) -> String {
    let mut out = format!("{decision} {status}");
    if let Some(rule) = rule {
        out.push_str(" by ");
        out.push_str(rule);
    }
    if let Some(reason) = reason {
        out.push_str(&format!(": {reason:?}"));
    }
    out
}

/// Decides `record` again with `rules`, its upstreams answered from the record.
pub async fn replay(rules: &Rules, scripts: &ScriptEngine, record: Record) -> Replayed {
    let mut notes = Vec::new();
    let decision = decide(rules, scripts, &record, &mut notes).await;
    Replayed {
        record,
        decision,
        notes,
    }
}

async fn decide(
    rules: &Rules,
    scripts: &ScriptEngine,
    record: &Record,
    notes: &mut Vec<String>,
) -> Decision {
    let body = record
        .request
        .as_ref()
        .map(|raw| raw.get().as_bytes().to_vec())
        .unwrap_or_default();
    let Some(ruleset) = rules.get(&record.ruleset) else {
        notes.push(format!(
            "ruleset {} is no longer loaded: its confirm URL would be a 404",
            record.ruleset
        ));
        return Decision::reject(404, UNKNOWN_RULESET_REASON.into(), None);
    };
    // The log keeps a form body as an object of its decoded strings, so every record reads
    // as JSON.
    let req = match payload::parse_logged(&body) {
        Ok(Parsed::Confirm(req)) => req,
        Ok(Parsed::Ignored { .. }) => return Decision::ignored(),
        Err(e) => return Decision::reject(e.status(), e.to_string(), None),
    };
    let original = Original::new(
        body,
        Some(&http::HeaderValue::from_static("application/json")),
    );
    let ctx = Context {
        scripts,
        upstreams: Arc::new(stand_ins(record, ruleset, &req, notes)),
        now: record.time,
        started: tokio::time::Instant::now(),
        original: &original,
        decision_id: None,
    };
    let decision = evaluate(ruleset, &req, &ctx).await;
    note_new_errors(record, &decision, notes);
    decision
}

/// The upstreams as the record saw them: each rule's answer (or failure) for the call the
/// rule makes now, and the health each `healthy` rule read.
fn stand_ins(
    record: &Record,
    ruleset: &Ruleset,
    req: &ConfirmRequest,
    notes: &mut Vec<String>,
) -> Canned {
    // Per call. Two rules may make the same GET (an enforced fetch and a shadow trial of it),
    // which goes out once per rule as the request arrives: an answer that arrived beats a
    // failure, which may be the shadow rule's cut-off rather than the upstream's. A POST, PUT
    // or forward goes out only when its rule is reached, each call answered on its own (the
    // same reservation POSTed by two rules got 200, then 409): the rules' answers in turn.
    let mut answers: BTreeMap<(String, String), CannedAnswer> = BTreeMap::new();
    let mut in_turn: Vec<(String, String, CannedAnswer)> = Vec::new();
    let mut canned = Canned::new();
    for rule in &ruleset.rules {
        let logged = record.trace.iter().find(|t| t.rule == *rule.name);
        let (upstream, key) = match &rule.check {
            Check::Healthy(up) => {
                let health = match logged.map(|t| t.outcome.as_str()) {
                    Some("pass" | "shadow_approve") => Health::Up,
                    Some("reject" | "shadow_reject") => Health::Down,
                    _ => continue,
                };
                canned = canned.health(&up.name, health);
                continue;
            }
            Check::Fetch(f) => match fetch_call(f, req, None) {
                Ok(call) => (
                    &f.upstream,
                    format!("{} {}", call.method, call.path_and_query),
                ),
                // The engine meets the same error when it reaches the rule.
                Err(_) => continue,
            },
            Check::Forward(fw) => (&fw.upstream, format!("POST {}", fw.path)),
            _ => continue,
        };
        let Some(logged) = logged else { continue };
        let answer = match (&logged.upstream, logged.error.as_deref()) {
            (Some(a), _) => {
                if is_cut(&a.body) {
                    notes.push(format!(
                        "rule {}: the log kept only the first {} KiB of the upstream's answer",
                        rule.name,
                        MAX_TRACED_BODY / 1024
                    ));
                }
                CannedAnswer::status(a.status)
                    .parsed_body(a.body.clone())
                    .cut_short(a.incomplete.clone())
            }
            // Reached then, but the call failed: it fails again, the same way.
            (None, Some(error)) => failed_as(error),
            // Not called then (its `when` was false, or it was off).
            (None, None) => continue,
        };
        if !key.starts_with("GET ") {
            in_turn.push((upstream.name.clone(), key, answer));
            continue;
        }
        let slot = (upstream.name.clone(), key);
        let arrived = answer.outcome.is_ok();
        match answers.get(&slot) {
            Some(kept) if kept.outcome.is_ok() || !arrived => {}
            _ => {
                answers.insert(slot, answer);
            }
        }
    }
    for ((upstream, key), answer) in answers {
        canned = canned.answer(&upstream, &key, answer);
    }
    let mut first = std::collections::BTreeSet::new();
    for (upstream, key, answer) in in_turn {
        canned = if first.insert((upstream.clone(), key.clone())) {
            canned.answer(&upstream, &key, answer)
        } else {
            canned.answer_again(&upstream, &key, answer)
        };
    }
    canned
}

/// Notes a rule that errs now where the record could not stand in: one it says nothing about,
/// or one that did not err then (it read what the log does not keep).
fn note_new_errors(record: &Record, decision: &Decision, notes: &mut Vec<String>) {
    for t in &decision.trace {
        if t.outcome != Outcome::Error {
            continue;
        }
        let then = record.trace.iter().find(|l| *l.rule == *t.rule);
        let error = t.error.as_deref().unwrap_or("");
        let noted = notes
            .iter()
            .any(|n| n.starts_with(&format!("rule {}:", t.rule)));
        if error.contains("no canned answer") || then.is_none() {
            notes.push(format!(
                "rule {}: the record has no upstream answer or health for it (a new or renamed rule, or not reached then); it counted as an error",
                t.rule
            ));
        } else if then.is_some_and(|l| l.outcome != "error") && !noted {
            notes.push(format!(
                "rule {}: an error in the replay that was none in the log ({error}); the log keeps an upstream answer's status and body, not its headers",
                t.rule
            ));
        }
    }
}

/// A call that failed then, failing again the same way: still waiting when the deadline (or a
/// shadow rule's cut-off) ended it, timed out, or refused (DNS failures included) — each a
/// failure of the call, which its rule's or the ruleset's `on_error` decides as it did then.
fn failed_as(logged: &str) -> CannedAnswer {
    if logged.contains("deadline of") || logged.contains("cut off") {
        CannedAnswer::hang()
    } else if logged.contains("timed out") {
        CannedAnswer::error(CannedError::Timeout)
    } else if logged.contains("DNS") {
        CannedAnswer::error(CannedError::Dns)
    } else {
        CannedAnswer::error(CannedError::Refused)
    }
}

/// A body the log cut at [`MAX_TRACED_BODY`]: kept as the start of its text, marked `…`.
fn is_cut(body: &Value) -> bool {
    matches!(body, Value::String(s) if s.len() > MAX_TRACED_BODY && s.ends_with('…'))
}

/// An order id as replay's report shows it: a caller chose it (see [`crate::logfmt::on_one_line`]).
fn shown_id(id: &str) -> String {
    crate::logfmt::on_one_line(id, 100)
}

#[cfg(test)]
mod tests;
