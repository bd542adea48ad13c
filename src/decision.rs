//! What the engine decided and why ([`Decision`], its per-rule [`RuleTrace`]), and how a
//! decision becomes PortOne's answer.

use std::sync::Arc;

use serde::Serialize;

/// The outcome PortOne sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    // Discriminants in the order of `ALL`: they index per-verdict metric handles.
    Approve = 0,
    Reject = 1,
    /// A V2 message of another type: acknowledged with 200, approves nothing.
    Ignored,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Approve, Verdict::Reject, Verdict::Ignored];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
            Verdict::Ignored => "ignored",
        }
    }
}

/// What one rule did, as recorded in traces, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    // Discriminants in the order of `ALL`: they index per-outcome metric handles.
    Pass = 0,
    Reject,
    /// The check could not complete; `on_error` decided what followed.
    Error,
    /// `when` was false.
    Skipped,
    Approve,
    /// A shadow rule that would have refused.
    ShadowReject,
    /// A shadow `action: approve` rule whose `when` held: it would have approved at once.
    ShadowApprove,
    /// A shadow rule whose check could not complete: it decided nothing now, and its
    /// `on_error` would decide once enforced (apart from `error`, which decides payments now).
    ShadowError,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Pass,
        Outcome::Reject,
        Outcome::Error,
        Outcome::Skipped,
        Outcome::Approve,
        Outcome::ShadowReject,
        Outcome::ShadowApprove,
        Outcome::ShadowError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Reject => "reject",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Approve => "approve",
            Outcome::ShadowReject => "shadow_reject",
            Outcome::ShadowApprove => "shadow_approve",
            Outcome::ShadowError => "shadow_error",
        }
    }

    /// The check could not complete, whether its rule is enforced or on trial.
    pub fn is_error(self) -> bool {
        matches!(self, Outcome::Error | Outcome::ShadowError)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleTrace {
    pub rule: Arc<str>,
    pub outcome: Outcome,
    /// Wall time spent on this rule, in milliseconds.
    pub ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The call this rule made (fetch, forward), so that a replay can tell an edited call
    /// from the one the logged answer belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<CallMade>,
    /// For a `healthy` rule, the health probe whose state it read (its `GET`), so that a replay
    /// can tell a rule that now reads another upstream's health, or another probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<CallMade>,
    /// For a `healthy` rule that found its upstream down, why the latest failed probe failed
    /// (`/health answered 503`): the shop's side of the refusal, for the operator reading it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_failure: Option<String>,
    /// The upstream answer this rule read (fetch, forward), kept for replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamAnswer>,
    /// The cause when the outcome is `error` (internal; never shown to the buyer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The deadline, not the rule, ended this check: stopped as its time ran out, or failing
    /// once the answer was due (an upstream timeout landing just after it). The ruleset's
    /// `on_error` decided, and a replay, which has time to spare, decides so again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deadline: bool,
    /// The error was the rule's own: its expression or script failed (not an upstream, not
    /// the deadline or the shadow cut-off). Rule tests fail a case on it unless it expects it.
    #[serde(skip)]
    pub faulted: bool,
}

/// One upstream call as a trace records it (and as replay reads it back): which upstream,
/// and what was sent to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CallMade {
    /// The upstream's name in the rule file.
    pub upstream: String,
    #[serde(serialize_with = "method_name", deserialize_with = "method_named")]
    pub method: http::Method,
    /// The path and query sent, after the upstream's base URL. Read as it is sent: records
    /// written before the path was named so (`/재고/…` where `/%EC%9E%AC…` was sent) name
    /// the same call.
    #[serde(deserialize_with = "path_as_sent")]
    pub path: String,
    /// A digest of the rest of what was sent (see [`crate::upstream::fingerprint`]); empty in
    /// a record written before it was.
    #[serde(default)]
    pub sent: String,
}

fn path_as_sent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let path = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    Ok(crate::upstream::as_sent(&path).into_owned())
}

impl CallMade {
    /// The call to `upstream` with `method` and `path`; `content`, a fetch's call, adds its
    /// headers and body to the digest (a forward's are the request's own).
    pub fn new(
        upstream: &crate::rules::Upstream,
        method: http::Method,
        path: String,
        content: Option<&crate::upstream::HttpCall>,
    ) -> CallMade {
        CallMade {
            upstream: upstream.name.clone(),
            method,
            path,
            sent: match content {
                Some(call) => crate::upstream::fingerprint(upstream, Some(call)),
                None => upstream.digest.clone(),
            },
        }
    }

    /// The health probe of `upstream` as a `healthy` rule's trace names it; `None` for one
    /// without a probe.
    pub fn probe(upstream: &crate::rules::Upstream) -> Option<CallMade> {
        let spec = upstream.health.as_ref()?;
        Some(CallMade::new(
            upstream,
            http::Method::GET,
            spec.path.clone(),
            None,
        ))
    }

    /// Whether `other` is the same call: upstream, method and path, and the digest where both
    /// have one made the same way (a log written by an earlier version may hold digests made
    /// otherwise, which would differ for every call).
    pub fn same_call(&self, other: &CallMade) -> bool {
        let scheme = |sent: &str| sent.split_once(':').map(|(scheme, _)| scheme.to_owned());
        self.upstream == other.upstream
            && self.method == other.method
            && self.path == other.path
            && (scheme(&self.sent) != scheme(&other.sent)
                || self.sent.is_empty()
                || self.sent == other.sent)
    }
}

impl std::fmt::Display for CallMade {
    /// `GET /api/stock/o-1 from shop`, as replay's notes name a call.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} from {}", self.method, self.path, self.upstream)
    }
}

fn method_name<S: serde::Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn method_named<'de, D: serde::Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
    let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    http::Method::from_bytes(name.as_bytes()).map_err(serde::de::Error::custom)
}

/// Bodies larger than this are kept as a truncated string in traces and the decision log.
pub const MAX_TRACED_BODY: usize = 4096;

/// An upstream's answer as recorded in a trace: enough to replay the decision later.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamAnswer {
    pub status: u16,
    pub body: serde_json::Value,
    /// Why the body is only its start (see [`UpstreamResponse`](crate::upstream::UpstreamResponse)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// The trace keeps only the start of the body ([`MAX_TRACED_BODY`]), marked `…`: said
    /// outright, since a text ending in `…` may be the answer's own.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

impl From<&crate::upstream::UpstreamResponse> for UpstreamAnswer {
    fn from(r: &crate::upstream::UpstreamResponse) -> Self {
        // At a character boundary, once the record's JSON spelling of the text (a control
        // character takes six bytes: `\u0000`) would pass the limit.
        let cut = |text: &str| {
            let mut spelt = 0;
            let at = text
                .char_indices()
                .find(|&(_, c)| {
                    spelt += match c {
                        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
                        c if c < ' ' => 6,
                        c => c.len_utf8(),
                    };
                    spelt > MAX_TRACED_BODY
                })
                .map_or(text.len(), |(at, _)| at);
            serde_json::Value::String(format!("{}…", &text[..at]))
        };
        let (body, was_cut) = match &r.body {
            // A text answer keeps its own start (what a `starts_with` on it reads when the
            // record is replayed), not the start of its JSON spelling.
            serde_json::Value::String(text) if spelt_longer_than(text, MAX_TRACED_BODY) => {
                (cut(text), true)
            }
            serde_json::Value::String(_) => (r.body.clone(), false),
            json if !longer_than(json, MAX_TRACED_BODY) => (r.body.clone(), false),
            json => (cut(&json_start(json, MAX_TRACED_BODY + 4)), true),
        };
        UpstreamAnswer {
            status: r.status,
            body,
            incomplete: r.incomplete.as_ref().map(ToString::to_string),
            cut: was_cut,
        }
    }
}

/// Whether `text` spelt as a JSON string (without its quotes) takes more than `max` bytes.
fn spelt_longer_than(text: &str, max: usize) -> bool {
    text.len() > max
        || text.len()
            + text
                .bytes()
                .map(|b| match b {
                    b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 8 | 12 => 1,
                    b if b < b' ' => 5,
                    _ => 0,
                })
                .sum::<usize>()
            > max
}

/// The first `max` bytes or so of `json` as text, without writing out the rest (an answer
/// may be a megabyte).
fn json_start(json: &serde_json::Value, max: usize) -> String {
    struct Upto(Vec<u8>, usize);
    impl std::io::Write for Upto {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let room = self.1 - self.0.len();
            self.0.extend_from_slice(&buf[..buf.len().min(room)]);
            if buf.len() > room {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Upto(Vec::with_capacity(max), max);
    let _ = serde_json::to_writer(&mut out, json);
    // Cut anywhere, perhaps inside a character: the caller cuts again at a boundary.
    match String::from_utf8(out.0) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    }
}

/// Whether `json` as text is longer than `max` bytes, found without writing it out (every
/// answer a fetch reads is traced, and most are small).
fn longer_than(json: &serde_json::Value, max: usize) -> bool {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            // Past `max` the writing stops with an error: the answer is known.
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or(std::io::ErrorKind::WriteZero)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Count(max), json).is_err()
}

/// What a shadow rule would have done had it been enforced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowOutcome {
    pub rule: Arc<str>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A decision with everything needed to explain it. A refusal is data, never an `Err`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: Verdict,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The rule that decided: `None` when every rule passed, before rules ran, and when the
    /// deadline's `on_error` decided between rules, at a shadow rule or for the evaluation as
    /// a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<ShadowOutcome>,
    pub trace: Vec<RuleTrace>,
    /// GET fetches started when the request arrived whose answers decided nothing (see
    /// [`UnusedFetch`]), so that every GET fetch the merchant saw is on record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unused_fetches: Vec<UnusedFetch>,
}

/// A GET fetch started early (SPEC §4: GET fetches start when the request arrives) whose rule
/// never read it: the evaluation ended before that rule, its `when` was false, or its guard
/// failed. Its answer decided nothing, but the merchant's API saw the call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnusedFetch {
    pub rule: Arc<str>,
    pub call: CallMade,
    /// The answer's status, if it was in when the evaluation ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the call failed, if it had by then. Neither a status nor an error: it was
    /// cancelled then, under way (a call that had not begun is stopped unsent, and not
    /// recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Decision {
    pub fn approve(rule: Option<Arc<str>>) -> Decision {
        Decision {
            decision: Verdict::Approve,
            status: 200,
            reason: None,
            rule,
            shadow: Vec::new(),
            trace: Vec::new(),
            unused_fetches: Vec::new(),
        }
    }

    pub fn reject(status: u16, reason: String, rule: Option<Arc<str>>) -> Decision {
        Decision {
            decision: Verdict::Reject,
            status,
            reason: Some(reason),
            rule,
            shadow: Vec::new(),
            trace: Vec::new(),
            unused_fetches: Vec::new(),
        }
    }

    pub fn ignored() -> Decision {
        Decision {
            decision: Verdict::Ignored,
            ..Decision::approve(None)
        }
    }

    /// The JSON body of the answer (SPEC §3): the reason under both `reason` (V1) and
    /// `errorMessage` (V2) so each caller finds its own.
    pub fn body(&self) -> bytes::Bytes {
        #[derive(Serialize)]
        struct Refusal<'a> {
            decision: &'static str,
            reason: &'a str,
            #[serde(rename = "errorMessage")]
            error_message: &'a str,
        }
        match self.decision {
            Verdict::Approve => bytes::Bytes::from_static(br#"{"decision":"approve"}"#),
            Verdict::Ignored => bytes::Bytes::from_static(br#"{"decision":"ignored"}"#),
            Verdict::Reject => {
                let reason = self
                    .reason
                    .as_deref()
                    .unwrap_or(crate::rules::DEFAULT_REASON);
                let body = Refusal {
                    decision: "reject",
                    reason,
                    error_message: reason,
                };
                // Serialising a struct of strings cannot fail; an empty body would still be
                // a refusal by status.
                serde_json::to_vec(&body).unwrap_or_default().into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests are compared when both calls have one made the same way: a log written before
    /// digests took `${VAR}`s by name (no scheme) holds ones that differ for every call.
    #[test]
    fn calls_are_told_apart_by_digests_of_one_scheme_only() {
        let call = |sent: &str| CallMade {
            upstream: "shop".into(),
            method: http::Method::GET,
            path: "/stock/o-1".into(),
            sent: sent.into(),
        };
        let now = call("v2:c21352a9b31b623b");
        assert!(now.same_call(&call("v2:c21352a9b31b623b")));
        assert!(!now.same_call(&call("v2:0000000000000000")));
        for older in ["", "c21352a9b31b623b", "5f0e1d2c3b4a5968"] {
            assert!(now.same_call(&call(older)), "{older:?}");
            assert!(call(older).same_call(&now), "{older:?}");
        }
        assert!(!call("5f0e1d2c3b4a5968").same_call(&call("c21352a9b31b623b")));
    }

    /// Metric handles are indexed by discriminant: each variant sits at its own place in `ALL`.
    /// (A new variant breaks the matches below: add it to `ALL` too.)
    #[test]
    fn all_lists_every_variant_at_its_discriminant() {
        for (i, v) in Verdict::ALL.into_iter().enumerate() {
            assert_eq!(v as usize, i);
            match v {
                Verdict::Approve | Verdict::Reject | Verdict::Ignored => {}
            }
        }
        for (i, o) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(o as usize, i);
            match o {
                Outcome::Pass
                | Outcome::Reject
                | Outcome::Error
                | Outcome::Skipped
                | Outcome::Approve
                | Outcome::ShadowReject
                | Outcome::ShadowApprove
                | Outcome::ShadowError => {}
            }
        }
    }

    #[test]
    fn answer_bodies() {
        assert_eq!(
            Decision::approve(None).body(),
            &br#"{"decision":"approve"}"#[..]
        );
        assert_eq!(
            Decision::ignored().body(),
            &br#"{"decision":"ignored"}"#[..]
        );
        let body: serde_json::Value =
            serde_json::from_slice(&Decision::reject(409, "재고 없음".into(), None).body())
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"decision":"reject","reason":"재고 없음","errorMessage":"재고 없음"})
        );
    }

    fn traced(body: serde_json::Value) -> UpstreamAnswer {
        UpstreamAnswer::from(&crate::upstream::UpstreamResponse {
            status: 200,
            headers: Vec::new(),
            body,
            incomplete: None,
            not_json: None,
            large: false,
        })
    }

    /// A trace keeps the upstream's answer for replay, as it was, up to MAX_TRACED_BODY bytes
    /// of JSON; a larger one is kept as the start of its text, cut at a character boundary,
    /// so one broken upstream cannot blow up every decision-log line.
    #[test]
    fn traced_upstream_bodies_are_kept_whole_or_cut() {
        let small = serde_json::json!({"available": 3, "sku": "A-1"});
        assert_eq!(traced(small.clone()).body, small);
        // JSON of exactly MAX_TRACED_BODY bytes is kept; one byte more is cut.
        let pad = MAX_TRACED_BODY - r#"{"a":""}"#.len();
        let exact = serde_json::json!({ "a": "x".repeat(pad) });
        assert_eq!(exact.to_string().len(), MAX_TRACED_BODY);
        assert_eq!(traced(exact.clone()).body, exact);
        let over = serde_json::json!({ "a": "x".repeat(pad + 1) });
        let kept = traced(over);
        assert!(kept.body.is_string() && kept.cut);
        assert!(!traced(small).cut && !traced(exact).cut);

        // A text answer at the limit: the value itself.
        let at_limit = serde_json::Value::String("x".repeat(MAX_TRACED_BODY));
        assert_eq!(traced(at_limit.clone()).body, at_limit);
        // Over it, the start of the text itself (not of its JSON spelling, `"\"xx…`): a
        // replayed `starts_with` reads what the rule read.
        let html = serde_json::Value::String(format!("<html>\"{}", "x".repeat(MAX_TRACED_BODY)));
        let serde_json::Value::String(kept) = traced(html).body else {
            panic!("a large text is kept as a cut string")
        };
        assert!(
            kept.starts_with("<html>\"xxx") && kept.ends_with("x…"),
            "{kept}"
        );
        // Its spelling in the record, the quote escaped, is the limit's size.
        let spelt = |s: &str| serde_json::to_string(s).unwrap().len() - 2;
        assert_eq!(spelt(kept.strip_suffix('…').unwrap()), MAX_TRACED_BODY);
        // Control characters, six bytes each in the record, count as such: a body of NULs
        // (a compressed answer, not decoded) stays within the limit too.
        let nuls = serde_json::Value::String("\0".repeat(MAX_TRACED_BODY));
        let serde_json::Value::String(kept) = traced(nuls).body else {
            panic!("a large text is kept as a cut string")
        };
        let kept = kept.strip_suffix('…').unwrap();
        assert_eq!(kept.len(), MAX_TRACED_BODY / 6);
        assert!(spelt(kept) <= MAX_TRACED_BODY);
        let short = serde_json::Value::String("\0".repeat(MAX_TRACED_BODY / 6));
        assert_eq!(traced(short.clone()).body, short);

        // Over it, with three-byte characters so that byte MAX_TRACED_BODY falls inside one.
        let large = serde_json::json!({ "memo": "가".repeat(MAX_TRACED_BODY) });
        let text = large.to_string();
        let serde_json::Value::String(cut) = traced(large).body else {
            panic!("a large body is kept as a cut string")
        };
        let kept = cut.strip_suffix('…').expect("marked as cut");
        // Spelt in the record (its quotes escaped), within a character of the limit.
        let spelt = serde_json::to_string(kept).unwrap().len() - 2;
        assert!(spelt <= MAX_TRACED_BODY, "{spelt}");
        assert!(spelt > MAX_TRACED_BODY - 3, "{spelt}");
        assert!(text.starts_with(kept));
    }
}
