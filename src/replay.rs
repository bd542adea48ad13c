//! Replaying the decision log: each logged request decided again by the rules as they are now,
//! with the upstream answers and health states its record holds instead of the network, to show
//! which decisions an edit would change before it goes live.
//!
//! The record is the whole input: the request as received, its arrival time (`now` and every
//! sale window), and per rule the call it made, the upstream's status and body or the health
//! it read. Each rule gets its own logged answer, and only for the call it made then. A rule
//! the record has no answer for (new, renamed, not reached then, or its call edited) meets no
//! upstream, which is an error decided by `on_error`, and the replay says so; only a GET, which
//! changes nothing at the merchant, may take the answer another rule got to the same GET (and a
//! POST or `forward` the answer of a rule no longer in the rules that made the very same call:
//! the same rule renamed).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::decision::{CallMade, Decision, Outcome, Verdict, MAX_TRACED_BODY};
use crate::engine::{
    answer_by, ended_without_answer, evaluate, fetch_call, on_error, Context, Original,
};
use crate::payload::{self, ConfirmRequest, Parsed};
use crate::rules::{Check, Health, Mode, Rule, Rules, Ruleset, UNKNOWN_RULESET_REASON};
use crate::script::ScriptEngine;
use crate::upstream::canned::{Canned, CannedAnswer, CannedError};
use crate::upstream::Incomplete;

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
    /// A value the proxy never writes is a line edited or damaged, not a decision that changed.
    pub decision: Verdict,
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
    /// A guard's refusal that names the request all the same (a refused signature's).
    #[serde(default)]
    guard: Option<String>,
    #[serde(default)]
    latency_ms: Option<f64>,
    /// GET fetches started early that no rule read: their status (or failure) is on record,
    /// not their body.
    #[serde(default)]
    unused_fetches: Vec<Unused>,
}

fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "\"{text}\": {e}, expected RFC 3339 as the proxy writes it (2026-12-05T06:47:44.123456Z)"
        ))
    })
}

/// A GET fetch started when the request arrived that no rule read (see
/// [`crate::decision::UnusedFetch`]).
#[derive(Debug, Deserialize)]
struct Unused {
    rule: String,
    call: CallMade,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Traced {
    rule: String,
    outcome: String,
    /// Absent in logs written before calls were traced: the rule's call now stands in.
    #[serde(default)]
    call: Option<CallMade>,
    /// A `healthy` rule's probe; absent in logs written before probes were traced.
    #[serde(default)]
    probe: Option<CallMade>,
    #[serde(default)]
    upstream: Option<Answered>,
    #[serde(default)]
    error: Option<String>,
    /// Absent in logs written before it was: the error's text tells some such rules.
    #[serde(default)]
    deadline: bool,
}

/// The call `rule` makes for `req` now, as the trace names it; `None` for a rule that calls no
/// upstream, or whose call cannot be made (the engine meets the same error when it reaches the
/// rule).
fn call_of(rule: &Rule, req: &ConfirmRequest) -> Option<CallMade> {
    match &rule.check {
        Check::Fetch(f) => fetch_call(f, req, None).ok().map(|call| {
            CallMade::new(
                &f.upstream,
                call.method.clone(),
                call.path_and_query.clone(),
                Some(&call),
            )
        }),
        Check::Forward(fw) => Some(CallMade::new(
            &fw.upstream,
            http::Method::POST,
            fw.path.clone(),
            None,
        )),
        _ => None,
    }
}

/// `"GET /stock/o-1"`, as canned answers are keyed.
fn key(call: &CallMade) -> String {
    format!("{} {}", call.method, call.path)
}

#[derive(Debug, Deserialize)]
struct Answered {
    status: u16,
    body: Value,
    /// Why the answer's body was cut short then; replayed as cut, so a `require` is again not
    /// evaluated on it.
    #[serde(default)]
    incomplete: Option<String>,
    /// The log kept only the start of the body (absent in logs written before it said so).
    #[serde(default)]
    cut: bool,
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
    let mut json = serde_json::Deserializer::from_str(text);
    let record: Result<Record, _> = serde_path_to_error::deserialize(&mut json);
    let record = record
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|record| json.end().map(|()| record).map_err(|e| (".".into(), e)))
        .map_err(|(field, e)| {
            // `[]` or `"text"` is JSON, but serde's "invalid length 0, expected struct Record
            // with 12 elements" would say nothing an operator can use.
            if e.is_data() && !text.trim_start().starts_with('{') {
                return "not a decision-log record: expected a JSON object".to_owned();
            }
            // serde_json's "at line 1 column C": the line is the file's, given by the caller.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            // The field the error is in (`status: invalid type: …`), where there is one.
            let field = if field == "." || !e.is_data() {
                String::new()
            } else {
                format!("{field}: ")
            };
            format!(
                "not a decision-log record: {field}{message} (column {})",
                e.column()
            )
        })?;
    // What the proxy never writes: a line edited or damaged, which must not pass for a guard's
    // answer, with nothing to replay.
    let ruled = !record.trace.is_empty() || record.rule.is_some();
    if ruled && record.request.is_none() && record.repeat_of.is_none() {
        return Err("not a decision-log record: it has a rule or a trace but no request (a line edited or cut?): rules decide only requests, which the proxy logs with them".to_owned());
    }
    Ok(record)
}

impl Record {
    /// Whether the deadline had passed before the first rule ran (the body arrived just before
    /// it): no rule is in the trace, and the ruleset's `on_error` answered — a refusal that no
    /// rule made, or an approval that took the deadline (a ruleset whose rules are all off
    /// approves at once). A refusal is told from the record alone, not by the rules' `on_error`
    /// now, which an edit may have changed; an approval by its latency against the deadline now.
    pub fn deadline_came_first(&self, rules: &Rules) -> bool {
        if !self.trace.is_empty() || self.rule.is_some() || !self.decided_by_rules() {
            return false;
        }
        match self.decision {
            Verdict::Reject => true,
            Verdict::Approve => rules.get(&self.ruleset).is_some_and(|ruleset| {
                let start = tokio::time::Instant::now();
                let due = answer_by(&ruleset.settings, start) - start;
                self.latency_ms
                    .is_some_and(|ms| ms >= due.as_secs_f64() * 1000.0)
            }),
            Verdict::Ignored => false,
        }
    }

    /// Whether the server answered by `on_error` at the deadline with the rules unfinished, or
    /// finished only after the answer was due: the trace ends with the `(evaluation)` entry.
    /// Replayed, the rules would run with time to spare: it is the deadline's again.
    pub fn overran(&self) -> bool {
        self.trace
            .last()
            .is_some_and(|t| t.rule == crate::engine::EVALUATION)
            && !self.ended_without_answer()
    }

    /// Whether the evaluation ended without an answer (it panicked: a bug) and the payment was
    /// refused whatever `on_error` said: not the deadline's doing.
    pub fn ended_without_answer(&self) -> bool {
        self.trace.last().is_some_and(|t| {
            t.rule == crate::engine::EVALUATION
                && t.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(crate::engine::ENDED_WITHOUT_ANSWER))
        })
    }

    /// The rule the deadline ended without a call to wait for, if any (`"deadline": true`):
    /// reached after the answer was due (`not run: …`, `not sent: …`) or too close to it for
    /// its call to be sent, or its Rhai (a script, a `require` on an answer that came) stopped
    /// as the time ran out. Its ruleset's `on_error` decided then; replayed with time to spare,
    /// the rule would run instead. Its name, and whether it was enforced (the deadline may
    /// catch a shadow rule still running, and the ruleset's `on_error` then decides without
    /// naming it). A call the deadline caught unanswered is waited for again instead (see
    /// `Logged::answer_for`), so that edits before it show.
    pub fn stopped_by_deadline(&self) -> Option<(&str, bool)> {
        self.trace
            .iter()
            .find(|t| {
                let enforced = t.outcome == "error";
                if t.deadline {
                    // An enforced rule's call the deadline caught unanswered is waited for
                    // again instead. (A shadow rule is flagged only when the deadline caught it
                    // still running: its cut-off would end a replayed wait first.)
                    !(enforced && t.call.is_some() && t.upstream.is_none())
                } else {
                    // Logs written before `deadline` was; a shadow rule's failure decided
                    // nothing there, and the rules went on.
                    enforced
                        && t.error.as_deref().is_some_and(|e| {
                            e.starts_with(crate::engine::NOT_RUN)
                                || e.starts_with(crate::engine::NOT_SENT)
                        })
                }
            })
            .map(|t| (&*t.rule, t.outcome == "error"))
    }

    /// Whether rules decided it: not a guard's answer, a repeated delivery (answered as its
    /// first, or refused as no copy of it or as one whose first has no answer yet) or an
    /// ignored message, which have nothing to replay.
    pub fn decided_by_rules(&self) -> bool {
        self.request.is_some()
            && self.repeat_of.is_none()
            && self.repeat_refused.is_none()
            && self.guard.is_none()
            && self.decision != Verdict::Ignored
    }
}

/// A record decided again.
pub struct Replayed {
    pub record: Record,
    pub decision: Decision,
    /// Where the record could not stand in for the upstreams (a rule it says nothing about, an
    /// answer body it kept only in part).
    pub notes: Vec<String>,
    /// Whether the replay reached a rule whose call (or health) the record has no answer for:
    /// that rule's error, for `on_error`, stands in for what the upstream would have said, so
    /// the decision is no prediction (a new or changed call, a rule not reached then).
    pub unanswered: bool,
    /// Whether a rule it reached read an answer's headers, which the log does not keep: what it
    /// read there is not what it read then, so a change is no prediction either.
    pub headers_read: bool,
    /// Whether a rule it reached got an answer the log keeps only in part (the start of its
    /// body, or its status alone): what a rule read there may not be what it read then, so a
    /// change is no prediction either.
    pub partial_read: bool,
    /// Whether a call the deadline caught unanswered then was waited for again (and the
    /// deadline decided again): an edited deadline or timeout changes nothing there.
    pub waited_again: bool,
}

impl Replayed {
    /// Whether the answer differs only in the rule named as deciding it (a rule renamed).
    pub fn only_the_rule_changed(&self) -> bool {
        let (r, d) = (&self.record, &self.decision);
        r.decision == d.decision
            && r.status == d.status
            && r.reason == d.reason
            && r.rule.is_some()
            && d.rule.is_some()
            && r.rule.as_deref() != d.rule.as_deref()
    }

    /// Whether the answer would differ: decision, status, deciding rule or reason.
    pub fn changed(&self) -> bool {
        let r = &self.record;
        let d = &self.decision;
        r.decision != d.decision
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
            // Fixed width, to the microsecond, as the log writes it.
            r.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        let _ = writeln!(
            out,
            "  logged: {}",
            answer(
                r.decision.as_str(),
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
        // Notes and errors may quote what a caller sent (a script's error naming the order
        // id): shown as the report's other outside text is, so that they cannot forge lines.
        for note in &self.notes {
            let _ = writeln!(out, "  note: {}", crate::logfmt::on_one_line(note, 2_000));
        }
        for t in &d.trace {
            let _ = write!(out, "  - {}: {}", t.rule, t.outcome.as_str());
            if let Some(e) = &t.error {
                let _ = write!(out, " ({})", crate::logfmt::on_one_line(e, 2_000));
            }
            out.push('\n');
        }
        out
    }
}

/// What one rule did over the replayed records: how often its check ran (`when` held), and
/// how often it refused, approved at once or failed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tried {
    pub checked: usize,
    pub refused: usize,
    pub approved: usize,
    pub failed: usize,
}

impl Tried {
    /// Counts one traced outcome. A rule enforced then, or a shadow failure logged before
    /// `shadow_error` existed (`error`), counts by what it did.
    fn add(&mut self, outcome: &str) {
        match outcome {
            "skipped" => return,
            "reject" | "shadow_reject" => self.refused += 1,
            "approve" | "shadow_approve" => self.approved += 1,
            "error" | "shadow_error" => self.failed += 1,
            _ => {}
        }
        self.checked += 1;
    }

    fn show(&self, refused: &str, approved: &str, any_approved: bool) -> String {
        let mut out = format!("{} checked, {} {refused}", self.checked, self.refused);
        if any_approved {
            out.push_str(&format!(", {} {approved}", self.approved));
        }
        out.push_str(&format!(", {} failed", self.failed));
        out
    }
}

/// The shadow rules of the rules replayed with, over a replay: what each would do now, beside
/// what the rule of that name did in the log. Shadow rules decide nothing, so a replay's
/// changes never show them; this is how a trial rule is tried on real traffic at once.
#[derive(Default)]
pub struct ShadowTally {
    /// By ruleset, then by the rule's place in its file.
    rules: BTreeMap<(String, usize), ShadowCounts>,
}

struct ShadowCounts {
    rule: Arc<str>,
    now: Tried,
    /// `None` while no record traced a rule of this name.
    then: Option<Tried>,
}

impl ShadowTally {
    /// Counts the shadow rules of `ruleset` (the one `replayed` was decided by) in one record.
    pub fn add(&mut self, ruleset: &Ruleset, replayed: &Replayed) {
        let shadow = ruleset
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.mode == Mode::Shadow);
        for (i, rule) in shadow {
            let counts = self
                .rules
                .entry((ruleset.name.clone(), i))
                .or_insert_with(|| ShadowCounts {
                    rule: rule.name.clone(),
                    now: Tried::default(),
                    then: None,
                });
            let name = &*rule.name;
            if let Some(t) = replayed.decision.trace.iter().find(|t| &*t.rule == name) {
                counts.now.add(t.outcome.as_str());
            }
            if let Some(t) = replayed.record.trace.iter().find(|t| t.rule == name) {
                counts
                    .then
                    .get_or_insert_with(Tried::default)
                    .add(&t.outcome);
            }
        }
    }

    /// A block of one line per shadow rule, or nothing when the replayed rulesets have none.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        if self.rules.is_empty() {
            return out;
        }
        out.push_str("shadow rules (they decide nothing; what each did over the replayed records, and what the rule of that name did then):\n");
        for ((ruleset, _), c) in &self.rules {
            let any_approved = c.now.approved > 0 || c.then.is_some_and(|t| t.approved > 0);
            let then = c.then.map_or_else(
                || "in no record (new, or never reached then)".to_owned(),
                |t| format!("then {}", t.show("refused", "approved", any_approved)),
            );
            let _ = writeln!(
                out,
                "  {ruleset}/{}: now {}; {then}",
                c.rule,
                c.now.show("would refuse", "would approve", any_approved)
            );
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
    let (decision, unanswered) = decide(rules, scripts, &record, &mut notes).await;
    let headers_read = notes.iter().any(|n| n.ends_with(HEADERS_NOT_KEPT));
    let waited_again = notes.iter().any(|n| n.ends_with(WAITED_AGAIN));
    let partial_read = notes
        .iter()
        .any(|n| n.contains(BODY_CUT) || n.contains(BODY_NOT_KEPT));
    Replayed {
        record,
        decision,
        notes,
        unanswered,
        headers_read,
        partial_read,
        waited_again,
    }
}

async fn decide(
    rules: &Rules,
    scripts: &ScriptEngine,
    record: &Record,
    notes: &mut Vec<String>,
) -> (Decision, bool) {
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
        return (
            Decision::reject(404, UNKNOWN_RULESET_REASON.into(), None),
            false,
        );
    };
    // The log keeps a form body as an object of its decoded strings, so every record reads
    // as JSON.
    let req = match payload::parse_logged(&body) {
        Ok(Parsed::Confirm(req)) => req,
        Ok(Parsed::Ignored { .. }) => return (Decision::ignored(), false),
        Err(e) => return (Decision::reject(e.status(), e.to_string(), None), false),
    };
    let original = Original::new(
        body,
        Some(&http::HeaderValue::from_static("application/json")),
    );
    // A bug's refusal is not replayed: the rules would run into it again, or, if it is fixed,
    // decide what the record cannot show.
    if record.ended_without_answer() {
        notes.push("the evaluation ended without an answer (a bug in the proxy), so the payment was refused whatever on_error said; it is refused again, not replayed".to_owned());
        return (
            ended_without_answer(&ruleset.settings, &req, std::time::Duration::ZERO),
            false,
        );
    }
    // Replayed, the rules would run with time to spare: it is the deadline's again, decided by
    // the ruleset's `on_error` as it is now (an edited `on_error` or `error_reason` shows).
    if record.deadline_came_first(rules) {
        notes.push("the deadline had passed before the first rule ran (the body came just before it), so the ruleset's on_error decided; it decides again as it is now".to_owned());
        return (on_error(&ruleset.settings, &req, None), false);
    }
    if record.overran() {
        notes.push("the rules had not finished by the deadline, so the ruleset's on_error decided; it decides again as it is now".to_owned());
        return (on_error(&ruleset.settings, &req, None), false);
    }
    if let Some((rule, enforced)) = record.stopped_by_deadline() {
        notes.push(format!("the deadline ended rule {rule} (reached too close to it, or still running when the answer was due), so the ruleset's on_error decided; it decides again as it is now"));
        // Named as `serve` names it: the enforced rule the deadline stopped.
        let named = enforced.then(|| Arc::from(rule));
        return (on_error(&ruleset.settings, &req, named), false);
    }
    let (canned, plans) = stand_ins(record, ruleset, &req);
    let ctx = Context {
        scripts,
        upstreams: Arc::new(canned),
        now: record.time,
        started: tokio::time::Instant::now(),
        original: &original,
        decision_id: None,
        sent: None,
    };
    let decision = evaluate(ruleset, &req, &ctx).await;
    note_headers_read(ruleset, &decision, notes);
    let guessed = note_new_errors(record, &decision, &plans, notes);
    let unanswered = on_errors_guess(ruleset, &decision, &guessed);
    (decision, unanswered)
}

/// Notes for rules whose answer is not their own logged one (another rule's, or none) or only
/// the start of it, by rule: given only when the replay reaches the rule.
type Plans = BTreeMap<String, Plan>;

struct Plan {
    note: String,
    /// Whether an answer (or health state) stands in: another rule's, or the start of its own.
    answered: bool,
}

/// The upstreams as the record saw them: each rule's own answer (or failure) to the call it
/// made then, and the health each `healthy` rule read.
fn stand_ins(record: &Record, ruleset: &Ruleset, req: &ConfirmRequest) -> (Canned, Plans) {
    let logged = Logged::read(record, ruleset, req);
    let mut canned = Canned::new().by_rule();
    let mut plans = Plans::new();
    for rule in &ruleset.rules {
        let traced = record.trace.iter().find(|t| t.rule == *rule.name);
        if let Check::Healthy(up) = &rule.check {
            let (health, plan) = logged_health(record, rule, up, traced);
            if let Some(health) = health {
                canned = canned.health(&up.name, health);
            }
            if let Some(note) = plan {
                let answered = health.is_some();
                plans.insert(rule.name.to_string(), Plan { note, answered });
            }
            continue;
        }
        let Some(now) = call_of(rule, req) else {
            continue;
        };
        let (answer, plan) = logged.answer_for(rule, traced, &now);
        if let Some(note) = plan {
            let answered = answer.is_some();
            plans.insert(rule.name.to_string(), Plan { note, answered });
        }
        if let Some(answer) = answer {
            canned = canned.answer_rule(&rule.name, &now.upstream, &key(&now), answer);
        }
    }
    (canned, plans)
}

/// The health state a `healthy` rule reads in the replay, and the note should it be another
/// rule's or none: the state the record's entry of the same name read, when it read the same
/// probe (upstream, path, URL and headers); else the state another rule of the record read of
/// that probe. A record written before probes were traced stands the entry of the same name in,
/// whatever it checked.
fn logged_health(
    record: &Record,
    rule: &Rule,
    up: &crate::rules::Upstream,
    traced: Option<&Traced>,
) -> (Option<Health>, Option<String>) {
    let name = &rule.name;
    let state = |t: &Traced| match t.outcome.as_str() {
        "pass" | "shadow_approve" => Some(Health::Up),
        "reject" | "shadow_reject" => Some(Health::Down),
        _ => None,
    };
    let Some(now) = CallMade::probe(up) else {
        return (None, None);
    };
    let why = match traced {
        Some(t) => match (&t.probe, &t.call) {
            (Some(then), _) if then.same_call(&now) => return (state(t), None),
            // Alike in words, the probe's headers or base URL changed.
            (Some(then), _) if then.to_string() == now.to_string() => format!(
                "its health check changed ({now}, with other headers or another base URL of its upstream)"
            ),
            (Some(then), _) => format!("its health check changed (then {then}, now {now})"),
            (None, Some(call)) => format!("it read no health then (it made {call})"),
            // Its `when` skipped it, or failed: it read none (a rule that read health has its
            // probe in the record, whatever came of it).
            (None, None) if t.outcome == "skipped" || t.outcome.ends_with("error") => {
                "it read no health then (its when skipped it, or failed)".to_owned()
            }
            // Logged before probes were traced.
            (None, None) => return (state(t), None),
        },
        None => "not in the record".to_owned(),
    };
    let other = record.trace.iter().find_map(|t| {
        let read = t.probe.as_ref().is_some_and(|p| p.same_call(&now));
        Some((t, state(t).filter(|_| read && t.rule != **name)?))
    });
    match other {
        Some((t, health)) => (
            Some(health),
            Some(format!(
                "rule {name}: {why}; it got the health rule {} read of the same probe ({now})",
                t.rule
            )),
        ),
        None => (
            None,
            Some(format!(
                "rule {name}: {why}, and no rule of the record read the health of {now}: the record has no health state for it; it counted as an error"
            )),
        ),
    }
}

/// What the record holds for the rules: per logged rule the call it made and what came of it.
struct Logged<'r> {
    calls: Vec<LoggedCall<'r>>,
    unused: &'r [Unused],
}

struct LoggedCall<'r> {
    rule: &'r str,
    /// As logged, or (in older logs) as the rule of that name makes it now.
    call: Option<CallMade>,
    answer: Option<CannedAnswer>,
    /// A shadow rule cut off at the shadow cut-off: its failure says nothing of the upstream.
    cut_off: bool,
    /// No rule of that name is in the rules now (renamed, or removed).
    gone: bool,
}

impl<'r> Logged<'r> {
    fn read(record: &'r Record, ruleset: &Ruleset, req: &ConfirmRequest) -> Logged<'r> {
        let calls = record
            .trace
            .iter()
            .map(|t| {
                let call = t.call.clone().or_else(|| {
                    let rule = ruleset.rules.iter().find(|r| *r.name == *t.rule)?;
                    call_of(rule, req)
                });
                LoggedCall {
                    rule: &t.rule,
                    call,
                    answer: logged_answer(t),
                    cut_off: cut_off_as_shadow(t),
                    gone: !ruleset.rules.iter().any(|r| *r.name == *t.rule),
                }
            })
            .collect();
        Logged {
            calls,
            unused: &record.unused_fetches,
        }
    }

    /// The answer `rule` gets to `now`, and the note to give should the replay reach it.
    fn answer_for(
        &self,
        rule: &Rule,
        traced: Option<&Traced>,
        now: &CallMade,
    ) -> (Option<CannedAnswer>, Option<String>) {
        let name = &rule.name;
        let Some(traced) = traced else {
            return self.stand_in(rule, now, "not in the record");
        };
        if cut_off_as_shadow(traced) && rule.mode != Mode::Shadow {
            return match self.stand_in(rule, now, "cut off as a shadow rule then") {
                (None, _) => (None, Some(format!(
                    "rule {name}: cut off as a shadow rule then, so the record has no answer for it; it counted as an error"
                ))),
                got => got,
            };
        }
        if let Some(then) = traced.call.as_ref().filter(|then| !then.same_call(now)) {
            let plan = if then.to_string() == now.to_string() {
                format!(
                    "rule {name}: its call changed ({now}, with other headers, another body or another base URL of its upstream): the record has no answer for it"
                )
            } else {
                format!(
                    "rule {name}: its call changed (then {then}, now {now}): the record has no answer for it"
                )
            };
            return (None, Some(plan));
        }
        // A shadow rule cut off after its answer came (its `require` stopped) left nothing in
        // `fetched`: replayed as cut off again, not as passing on the answer (the paused clock
        // would give its `require` all the time it needs).
        if rule.mode == Mode::Shadow
            && traced.upstream.is_some()
            && traced
                .error
                .as_deref()
                .is_some_and(|e| e.contains(crate::engine::SHADOW_CUT_OFF))
        {
            let plan = format!(
                "rule {name}: cut off as a shadow rule then, after its answer came; cut off again, waiting for it"
            );
            return (Some(CannedAnswer::hang()), Some(plan));
        }
        match logged_answer(traced) {
            // Said only if the replay reaches the rule, where the cut can matter.
            Some(answer) => {
                let cut = traced.upstream.as_ref().is_some_and(is_cut).then(|| {
                    format!(
                        "rule {name}: {BODY_CUT} {} KiB of the upstream's answer",
                        MAX_TRACED_BODY / 1024
                    )
                });
                // An edited `deadline` or `timeout` would change nothing here without a word.
                let waited = (answer.hang && !cut_off_as_shadow(traced))
                    .then(|| format!("rule {name}: {WAITED_AGAIN}"));
                (Some(answer), cut.or(waited))
            }
            // Not called then (its `when` was false, or it was off).
            None => self.stand_in(rule, now, "made no call then"),
        }
    }

    /// For a rule with no answer of its own (`why`): the answer another rule got to the same
    /// GET, else what came of the same GET started early then ([`Logged::early`]), or none.
    fn stand_in(
        &self,
        rule: &Rule,
        now: &CallMade,
        why: &str,
    ) -> (Option<CannedAnswer>, Option<String>) {
        let name = &*rule.name;
        if now.method != http::Method::GET {
            // The very call (its digest too: the same body) made by a rule that is not in the
            // rules now: the same rule renamed, most likely, and that call the one made then.
            let renamed = self.calls.iter().find(|c| {
                c.gone
                    && !c.cut_off
                    && c.answer.is_some()
                    && c.call.as_ref().is_some_and(|c| {
                        !c.sent.is_empty() && c.sent == now.sent && c.same_call(now)
                    })
            });
            if let Some(then) = renamed {
                let plan = format!(
                    "rule {name}: {why}; rule {} of the record, not in the rules now, made the very same {now} (a rename?): what came of it stands in",
                    then.rule
                );
                let plan = match &then.answer {
                    Some(answer) => waited_if_hanging(plan, answer),
                    None => plan,
                };
                return (then.answer.clone(), Some(plan));
            }
            let plan = format!(
                "rule {name}: {why}, and its {} may change something at the merchant, so no other rule's answer stands in for it; it counted as an error",
                now
            );
            return (None, Some(plan));
        }
        let same = |c: &&LoggedCall| {
            c.rule != name && c.call.as_ref().is_some_and(|c| c.same_call(now)) && !c.cut_off
        };
        // An answer that arrived says more than a failure of the same GET.
        let other = self
            .calls
            .iter()
            .filter(same)
            .filter_map(|c| Some((c.rule, c.answer.as_ref()?)))
            .min_by_key(|(_, answer)| answer.outcome.is_err());
        match other {
            Some((other, answer)) => {
                let what = if answer.outcome.is_ok() {
                    "the answer"
                } else {
                    "the failure"
                };
                let plan =
                    format!("rule {name}: {why}; it got {what} rule {other} got to the same GET");
                (Some(answer.clone()), Some(waited_if_hanging(plan, answer)))
            }
            None => self.early(rule, now, why),
        }
    }

    /// For a GET no rule of the record read an answer to: the same GET started when the
    /// request arrived then, whose status or failure the record keeps, not its body. The
    /// status alone decides a fetch without `require` (SPEC §9); one with `require` reads the
    /// answer, which the record does not have.
    fn early(
        &self,
        rule: &Rule,
        now: &CallMade,
        why: &str,
    ) -> (Option<CannedAnswer>, Option<String>) {
        let name = &*rule.name;
        // An answer says more than a failure, and a failure more than a call cut off.
        let early = (self.unused.iter())
            .filter(|u| u.call.same_call(now))
            .min_by_key(|u| (u.status.is_none(), u.error.is_none()));
        let Some(early) = early else {
            return (None, Some(format!(
                "rule {name}: {why}, and no rule of the record made its {now}: the record has no upstream answer for it; it counted as an error"
            )));
        };
        let whose = if early.rule == name {
            "its own GET started early then".to_owned()
        } else {
            format!("the same GET started early then for rule {}", early.rule)
        };
        match (early.status, &early.error) {
            (Some(status), _) if matches!(&rule.check, Check::Fetch(f) if f.require.is_some()) => {
                (None, Some(format!(
                    "rule {name}: {why}; the record has only the status ({status}) of {whose}, not its body (no rule read it), and its require reads the answer; it counted as an error"
                )))
            }
            // No body on record: `()`, as a live answer's cut body is, not the `""` of an
            // answer that had none (a trial's script read `""` and failed on it).
            (Some(status), _) => (Some(CannedAnswer { body: serde_json::Value::Null, ..CannedAnswer::status(status) }), Some(format!(
                "rule {name}: {why}; it got the status ({status}) of {whose}, which decides a fetch without require ({BODY_NOT_KEPT}: no rule read it, and a later rule reading it through fetched sees none)"
            ))),
            (None, Some(error)) => (
                Some(failed_as(error)),
                Some(format!("rule {name}: {why}; it got the failure of {whose}")),
            ),
            (None, None) => (None, Some(format!(
                "rule {name}: {why}, and {whose} was still under way when the evaluation ended: the record has no upstream answer for it; it counted as an error"
            ))),
        }
    }
}

/// What a logged rule's call came to: its answer, or its failure to fail again the same way;
/// `None` when it made no call.
fn logged_answer(t: &Traced) -> Option<CannedAnswer> {
    match (&t.upstream, t.error.as_deref()) {
        (Some(a), _) => Some(
            CannedAnswer::status(a.status)
                .parsed_body(a.body.clone())
                .cut_short(a.incomplete.as_deref().map(Incomplete::from_logged)),
        ),
        // Still waiting when the answer fell due, or failing after it (a timeout landing just
        // then): waiting again, the deadline comes again, and with it the ruleset's
        // `on_error`, while the rules before it run as they are now.
        (None, Some(_)) if t.deadline && t.call.is_some() => Some(CannedAnswer::hang()),
        // Called then, but the call failed: it fails again, the same way.
        (None, Some(error)) if t.call.is_some() || is_call_failure(error) => Some(failed_as(error)),
        _ => None,
    }
}

/// How the trace says a call with side effects was not sent, reached too late.
const NOT_SENT: &str = "not sent";

/// Whether a logged error is an upstream call's failure (rather than a `when` or script
/// error), for records written before calls were traced.
fn is_call_failure(error: &str) -> bool {
    !error.starts_with(NOT_SENT)
        && (error.starts_with("fetch from ")
            || error.starts_with("forward to ")
            || error.contains("deadline of")
            || error.contains(crate::engine::SHADOW_CUT_OFF))
}

fn cut_off_as_shadow(t: &Traced) -> bool {
    t.upstream.is_none()
        && t.error
            .as_deref()
            .is_some_and(|e| e.starts_with(crate::engine::SHADOW_CUT_OFF))
}

/// `plan`, with [`WAITED_AGAIN`] after it when the answer standing in is a call the deadline
/// caught unanswered then (counted as such, as a rule's own).
fn waited_if_hanging(plan: String, answer: &CannedAnswer) -> String {
    if answer.hang && answer.logged_failure.is_none() {
        format!("{plan}; {WAITED_AGAIN}")
    } else {
        plan
    }
}

/// The note of a rule whose call the deadline caught unanswered then, waited for again.
const WAITED_AGAIN: &str = "its call was still unanswered when the deadline came then; it waits again, and the ruleset's on_error decides as it is now (how long the upstream would have taken is not in the log: try an edited deadline or timeout with eval)";

/// In the note of a rule whose logged answer the log cut.
const BODY_CUT: &str = "the log kept only the first";

/// In the note of a rule given the status of a GET started early then, whose body no rule read.
const BODY_NOT_KEPT: &str = "its body is not on record";

/// The end of the note of [`note_headers_read`].
const HEADERS_NOT_KEPT: &str = "reads response headers, which the log does not keep";

/// Notes a rule whose `when`, `require` or script reads `headers` once a replayed answer is in: the log
/// keeps an answer's status and body, not its headers, so what it reads there is not what it
/// read then.
fn note_headers_read(ruleset: &Ruleset, decision: &Decision, notes: &mut Vec<String>) {
    let mut answered = false;
    for t in &decision.trace {
        answered |= t.upstream.is_some();
        if t.outcome == Outcome::Skipped {
            continue;
        }
        let Some(rule) = ruleset.rules.iter().find(|r| r.name == t.rule) else {
            continue;
        };
        // A fetch's own answer, or an earlier one's through `fetched`.
        let require = match &rule.check {
            Check::Fetch(f) => f.require.as_ref(),
            Check::Require(e) => Some(e),
            _ => None,
        };
        let script_reads_headers = match &rule.check {
            Check::Script { ast, .. } => crate::script::names_field(ast, "headers"),
            _ => false,
        };
        let reads_headers = script_reads_headers
            || [rule.when.as_ref(), require]
                .into_iter()
                .flatten()
                .any(|e| e.src.contains("headers"));
        if answered && reads_headers {
            notes.push(format!("rule {} {HEADERS_NOT_KEPT}", t.rule));
        }
    }
}

/// Notes a rule that errs now where the record could not stand in: one it has no answer for
/// (said as [`stand_ins`] planned, or as having none), or one that did not err then (it read
/// what the log does not keep). Returns the enforced rules that erred for want of an answer
/// (a shadow rule's error decides nothing).
fn note_new_errors<'d>(
    record: &Record,
    decision: &'d Decision,
    plans: &Plans,
    notes: &mut Vec<String>,
) -> Vec<&'d str> {
    let mut guessed: Vec<&str> = Vec::new();
    for t in &decision.trace {
        let planned = plans.get(&*t.rule);
        let called = t.call.is_some() || t.probe.is_some();
        if let Some(plan) = planned.filter(|_| called || t.outcome.is_error()) {
            notes.push(plan.note.clone());
            if !plan.answered && t.outcome == Outcome::Error {
                guessed.push(&t.rule);
            }
            continue;
        }
        if !t.outcome.is_error() {
            continue;
        }
        let then = record.trace.iter().find(|l| *l.rule == *t.rule);
        let error = t.error.as_deref().unwrap_or("");
        // Only a rule that calls or reads health lacks an answer: another one's error is its
        // own (an expression failing on this request), which the note must name.
        let missing = error.contains("no answer on file") || (then.is_none() && called);
        if missing && t.outcome == Outcome::Error {
            guessed.push(&t.rule);
        }
        let noted = notes.iter().any(|n| {
            n.strip_prefix("rule ")
                .and_then(|n| n.strip_prefix(&*t.rule))
                .is_some_and(|rest| rest.starts_with([':', ' ']))
        });
        if noted {
            continue;
        }
        if missing {
            notes.push(format!(
                "rule {}: the record has no upstream answer or health for it (a new or renamed rule, or not reached then); it counted as an error",
                t.rule
            ));
        } else if then.is_none() {
            notes.push(format!(
                "rule {}: an error in the replay, where the log has the rule not reached ({error})",
                t.rule
            ));
        } else if then.is_some_and(|l| !matches!(&*l.outcome, "error" | "shadow_error")) {
            notes.push(format!(
                "rule {}: an error in the replay that was none in the log ({error})",
                t.rule
            ));
        }
    }
    guessed
}

/// Whether `decision` is `on_error`'s for a rule in `guessed` rather than a prediction: that
/// rule's own refusal, an approval its `on_error: approve` let through, or a refusal by a rule
/// reading what earlier rules fetched (the answer the record does not have).
fn on_errors_guess(ruleset: &Ruleset, decision: &Decision, guessed: &[&str]) -> bool {
    if guessed.is_empty() {
        return false;
    }
    if decision.decision == Verdict::Approve {
        return true;
    }
    let Some(name) = decision.rule.as_deref() else {
        return false;
    };
    let reads_fetched = |rule: &Rule| {
        let mentions = |e: &crate::rules::Expr| e.mentions_fetched;
        rule.when.as_ref().is_some_and(mentions)
            || match &rule.check {
                Check::Require(e) => mentions(e),
                Check::Fetch(f) => f.require.as_ref().is_some_and(mentions),
                // A script may read `fetched` by any name.
                Check::Script { .. } => true,
                _ => false,
            }
    };
    guessed.contains(&name)
        || ruleset
            .rules
            .iter()
            .find(|r| *r.name == *name)
            .is_some_and(reads_fetched)
}

/// A call that failed then, failing again the same way: still waiting when the deadline (or a
/// shadow rule's cut-off) ended it, timed out, or refused (DNS failures included) — each a
/// failure of the call, which its rule's or the ruleset's `on_error` decides as it did then.
fn failed_as(logged: &str) -> CannedAnswer {
    if logged.contains("deadline of") || logged.contains("cut off") {
        CannedAnswer::hang()
    } else if logged.contains("timed out") {
        // Failing after the timeout as the rules set it now, in the words of the log (`timed
        // out after 1s`, not the edited `3s`, which was never tried).
        CannedAnswer::error(CannedError::Timeout).as_logged(logged_failure(logged))
    } else {
        let kind = if logged.contains("DNS") {
            CannedError::Dns
        } else {
            CannedError::Refused
        };
        // Said as it was, not with the host of the upstream as the rules name it now.
        CannedAnswer::error(kind).as_logged(logged_failure(logged))
    }
}

/// A failed call's error as the log has it, without what the rule's check says again before
/// it (`fetch from shop: `).
fn logged_failure(logged: &str) -> &str {
    ["fetch from ", "forward to "]
        .iter()
        .find_map(|prefix| logged.strip_prefix(prefix)?.split_once(": "))
        .map_or(logged, |(_, failure)| failure)
}

/// An answer whose body the log cut at [`MAX_TRACED_BODY`], kept as the start of its text
/// marked `…`: said by `cut`, or, in a log written before that, by a text longer than the
/// limit (no answer kept whole is; one cut where its JSON spelling reached the limit may be
/// shorter, and goes unnoticed in such a log).
fn is_cut(answer: &Answered) -> bool {
    answer.cut
        || matches!(&answer.body, Value::String(s) if s.len() > MAX_TRACED_BODY && s.ends_with('…'))
}

/// An order id as replay's report shows it: a caller chose it (see [`crate::logfmt::on_one_line`]).
fn shown_id(id: &str) -> String {
    crate::logfmt::on_one_line(id, 100)
}

#[cfg(test)]
mod tests;
