//! "Decisions are always as if rules ran one after another" (SPEC §4, README Concurrency), held
//! to a differential property test: random rulesets of amount checks, GET and POST fetches,
//! forwards, health checks and guarded approvals — in shadow or off mode, with their own
//! `on_error` — run through the real server against a mock merchant whose every path answers as
//! the case says (200, 409 with a reason, 500, text, after 0–40 ms, or a refused connection), and
//! against a model here that walks the rules one after another as the README describes. The
//! answer, the deciding rule, the trace and shadow outcomes of the decision log, and the calls
//! with side effects at the merchant (POST fetches and forwards: made exactly when the model
//! reaches their rule, in rule order) must agree; a GET fetch after such a call must not start
//! before that call is done (README Concurrency). GET fetches may be made for rules never
//! reached, so which of them were made is not compared.
//!
//! The seed is fixed (`SEQUENTIAL_SEED` overrides it); a failure prints the seed, the shrunk
//! case as its rule file and the merchant's answers, and what differed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Value};

use crate::support::*;

/// Cases per run: each starts its own server and merchant.
const CASES: u32 = 64;
/// The default seed (spread into the 32 bytes ChaCha takes).
const SEED: u64 = 20_261_206;
/// Far above every delay here, so that the deadline never decides.
const DEADLINE: &str = "3s";
const ERROR_REASON: &str = "오류 {order_id}";
/// Where nothing listens on loopback: the connection is refused.
const CLOSED: &str = "http://127.0.0.1:1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Enforce,
    Shadow,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnError {
    Approve,
    Reject,
}

impl OnError {
    fn yaml(self) -> &'static str {
        match self {
            OnError::Approve => "approve",
            OnError::Reject => "reject",
        }
    }
}

/// A `when` guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    Vip,
    NotVip,
    Big,
}

impl Guard {
    fn yaml(self) -> &'static str {
        match self {
            Guard::Vip => r#"order_id.starts_with("vip")"#,
            Guard::NotVip => r#"!order_id.starts_with("vip")"#,
            Guard::Big => "amount >= 10000",
        }
    }

    fn holds(self, req: &Req, k: usize) -> bool {
        match self {
            Guard::Vip => req.order_id(k).starts_with("vip"),
            Guard::NotVip => !req.order_id(k).starts_with("vip"),
            Guard::Big => req.amount >= 10_000,
        }
    }
}

/// What a fetch's `require` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Require {
    /// No `require`: 2xx passes, 1xx–4xx refuse, 5xx is an error.
    None,
    /// `response.status == 200`.
    Status,
    /// `response.status == 200 && response.body.available >= 1`.
    Body,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Amount {
        min: Option<i64>,
        max: Option<i64>,
    },
    Fetch {
        post: bool,
        require: Require,
        /// The reason shows the answer's `reason` field (`{response.body.reason}`).
        template: bool,
        /// Its upstream is a closed port.
        refused: bool,
    },
    Forward {
        refused: bool,
    },
    Healthy {
        up: bool,
    },
    /// `require: 'fetched["rJ"]?.status == 200'`, rJ an earlier fetch rule that is not off
    /// (`pick` chooses among them; with none, a `require` that always passes).
    Reads {
        pick: usize,
    },
    Approve,
}

#[derive(Clone, Copy, Debug)]
struct RuleSpec {
    kind: Kind,
    when: Option<Guard>,
    mode: Mode,
    on_error: Option<OnError>,
}

impl RuleSpec {
    /// A call that may change something at the merchant (SPEC §4: started only once every
    /// earlier rule has passed).
    fn side_effect(&self) -> bool {
        matches!(
            self.kind,
            Kind::Fetch { post: true, .. } | Kind::Forward { .. }
        )
    }

    /// A call with side effects that reaches the mock (not the closed port).
    fn side_effect_at_mock(&self) -> bool {
        matches!(
            self.kind,
            Kind::Fetch {
                post: true,
                refused: false,
                ..
            } | Kind::Forward { refused: false }
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplyKind {
    /// 200 `{"available":3}`.
    Ok,
    /// 200 `{"available":0}`.
    Empty,
    /// 409 `{"reason":…}`.
    Conflict,
    /// 409 `{"errorMessage":…}`.
    ConflictMsg,
    /// 500, plain text.
    Server,
    /// 200, plain text (not JSON).
    Text,
}

#[derive(Clone, Copy, Debug)]
struct Reply {
    kind: ReplyKind,
    delay_ms: u64,
}

/// One confirm request of a case; its index `k` is in its order id.
#[derive(Clone, Copy, Debug)]
struct Req {
    vip: bool,
    amount: i64,
}

impl Req {
    fn order_id(&self, k: usize) -> String {
        format!("{}-{k}", if self.vip { "vip" } else { "ord" })
    }
}

#[derive(Clone, Debug)]
struct Case {
    /// Each rule with the merchant's answer to its call for request 0, 1, 2.
    rules: Vec<(RuleSpec, [Reply; 3])>,
    requests: Vec<Req>,
    on_error: OnError,
    reject_status: u16,
}

fn reply() -> impl Strategy<Value = Reply> {
    // Mostly passing answers, so that evaluation often goes deep into the rules.
    let kind = prop_oneof![
        5 => Just(ReplyKind::Ok),
        1 => Just(ReplyKind::Conflict),
        1 => Just(ReplyKind::Server),
        1 => Just(ReplyKind::Empty),
        1 => Just(ReplyKind::ConflictMsg),
        1 => Just(ReplyKind::Text),
    ];
    let delay = prop_oneof![2 => Just(0u64), 3 => 1u64..=40];
    (kind, delay).prop_map(|(kind, delay_ms)| Reply { kind, delay_ms })
}

fn kind() -> impl Strategy<Value = Kind> {
    let bound = |a, b| proptest::option::of(prop_oneof![Just(a), Just(b)]);
    let require = prop_oneof![
        Just(Require::None),
        Just(Require::Status),
        Just(Require::Body)
    ];
    let refused = || proptest::bool::weighted(0.15);
    prop_oneof![
        3 => (bound(1_000, 10_000), bound(10_000, 100_000)).prop_map(|(min, max)| Kind::Amount {
            min: if min.is_none() && max.is_none() { Some(1_000) } else { min },
            max,
        }),
        4 => (any::<bool>(), require, any::<bool>(), refused()).prop_map(
            |(post, require, template, refused)| Kind::Fetch { post, require, template, refused }
        ),
        2 => refused().prop_map(|refused| Kind::Forward { refused }),
        1 => any::<bool>().prop_map(|up| Kind::Healthy { up }),
        2 => (0usize..6).prop_map(|pick| Kind::Reads { pick }),
        1 => Just(Kind::Approve),
    ]
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    let guard = proptest::option::weighted(
        0.3,
        prop_oneof![Just(Guard::Vip), Just(Guard::NotVip), Just(Guard::Big)],
    );
    let mode = prop_oneof![6 => Just(Mode::Enforce), 3 => Just(Mode::Shadow), 1 => Just(Mode::Off)];
    let on_error = proptest::option::of(prop_oneof![Just(OnError::Reject), Just(OnError::Approve)]);
    (kind(), guard, mode, on_error).prop_map(|(kind, when, mode, on_error)| RuleSpec {
        kind,
        // `action: approve` goes with a `when` (SPEC §9).
        when: match kind {
            Kind::Approve => when.or(Some(Guard::Vip)),
            _ => when,
        },
        mode,
        on_error,
    })
}

fn case() -> impl Strategy<Value = Case> {
    let req = (
        any::<bool>(),
        prop_oneof![1 => Just(500i64), 3 => Just(5_000), 3 => Just(50_000), 1 => Just(500_000)],
    )
        .prop_map(|(vip, amount)| Req { vip, amount });
    (
        proptest::collection::vec((rule(), proptest::array::uniform3(reply())), 1..=6),
        proptest::collection::vec(req, 1..=3),
        prop_oneof![Just(OnError::Reject), Just(OnError::Approve)],
        prop_oneof![Just(409u16), Just(422)],
    )
        .prop_map(|(rules, requests, on_error, reject_status)| Case {
            rules,
            requests,
            on_error,
            reject_status,
        })
}

impl Case {
    /// The earlier fetch rule whose answer rule `i` reads (`Kind::Reads`).
    fn read_target(&self, i: usize) -> Option<usize> {
        let Kind::Reads { pick } = self.rules[i].0.kind else {
            return None;
        };
        let candidates: Vec<usize> = (0..i)
            .filter(|&j| {
                let (rule, _) = &self.rules[j];
                rule.mode != Mode::Off && matches!(rule.kind, Kind::Fetch { .. })
            })
            .collect();
        (!candidates.is_empty()).then(|| candidates[pick % candidates.len()])
    }

    fn uses_health(&self) -> bool {
        self.rules
            .iter()
            .any(|(r, _)| matches!(r.kind, Kind::Healthy { .. }))
    }

    /// The rule file, its upstreams at `shop` (the mock) and the closed port.
    fn yaml(&self, shop: &str) -> String {
        let mut y = format!(
            "settings: {{ deadline: {DEADLINE}, on_error: {}, reject_status: {}, error_reason: \"{ERROR_REASON}\" }}\n",
            self.on_error.yaml(),
            self.reject_status
        );
        y += &format!("upstreams:\n  shop: {{ url: \"{shop}\", timeout: 2s }}\n");
        y += &format!("  dead: {{ url: \"{CLOSED}\", timeout: 2s }}\n");
        if self.uses_health() {
            for state in ["up", "down"] {
                y += &format!("  {state}: {{ url: \"{shop}\", timeout: 2s, health: {{ path: /health/{state}, interval: 5s }} }}\n");
            }
        }
        y += "rules:\n";
        for (i, (rule, _)) in self.rules.iter().enumerate() {
            y += &format!("  - name: r{i}\n");
            match rule.mode {
                Mode::Enforce => {}
                Mode::Shadow => y += "    mode: shadow\n",
                Mode::Off => y += "    mode: off\n",
            }
            if let Some(g) = rule.when {
                y += &format!("    when: '{}'\n", g.yaml());
            }
            if let Some(e) = rule.on_error {
                y += &format!("    on_error: {}\n", e.yaml());
            }
            let plain_reason = format!("    reason: \"r{i} 거절 {{order_id}}\"\n");
            match rule.kind {
                Kind::Amount { min, max } => {
                    let bounds: Vec<String> = [("min", min), ("max", max)]
                        .iter()
                        .filter_map(|(k, v)| v.map(|v| format!("{k}: {v}")))
                        .collect();
                    y += &format!("    amount: {{ {} }}\n", bounds.join(", "));
                    y += &plain_reason;
                }
                Kind::Fetch {
                    post,
                    require,
                    template,
                    refused,
                } => {
                    y += &format!(
                        "    fetch: {{ upstream: {}, method: {}, path: \"/r{i}/{{order_id}}\" }}\n",
                        if refused { "dead" } else { "shop" },
                        if post { "POST" } else { "GET" }
                    );
                    match require {
                        Require::None => {}
                        Require::Status => y += "    require: 'response.status == 200'\n",
                        Require::Body => {
                            y += "    require: 'response.status == 200 && response.body.available >= 1'\n"
                        }
                    }
                    if template {
                        y += &format!("    reason: \"r{i} 거절 [{{response.body.reason}}]\"\n");
                    } else {
                        y += &plain_reason;
                    }
                }
                Kind::Forward { refused } => {
                    y += &format!(
                        "    forward: {{ upstream: {}, path: /r{i}/fwd }}\n",
                        if refused { "dead" } else { "shop" }
                    );
                    y += &plain_reason;
                }
                Kind::Healthy { up } => {
                    y += &format!("    healthy: {}\n", if up { "up" } else { "down" });
                    y += &plain_reason;
                }
                Kind::Reads { .. } => {
                    match self.read_target(i) {
                        Some(j) => {
                            y += &format!("    require: 'fetched[\"r{j}\"]?.status == 200'\n")
                        }
                        None => y += "    require: 'order_id != \"\"'\n",
                    }
                    y += &plain_reason;
                }
                Kind::Approve => y += "    action: approve\n",
            }
        }
        y
    }

    /// The merchant's answers, one line per rule, for a failure report.
    fn replies_table(&self) -> String {
        let mut t = String::new();
        for (i, (_, replies)) in self.rules.iter().enumerate() {
            let row: Vec<String> = replies[..self.requests.len()]
                .iter()
                .map(|r| format!("{:?}+{}ms", r.kind, r.delay_ms))
                .collect();
            t += &format!("  r{i}: {}\n", row.join(", "));
        }
        t
    }
}

// ---------------------------------------------------------------------------------------------
// The model: the README's semantics, one rule after another.

/// What one rule's check concluded.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Pass,
    Refuse(String),
    Error,
    Approve,
}

/// What the model expects of one request.
#[derive(Debug, PartialEq)]
struct Expected {
    status: u16,
    decision: &'static str,
    reason: Option<String>,
    rule: Option<String>,
    /// Rule and outcome of each rule evaluated, in order.
    trace: Vec<(String, &'static str)>,
    /// Rule, outcome and reason of each shadow rule that would have decided.
    shadow: Vec<(String, &'static str, Option<String>)>,
    /// The rules whose side-effect call reaches the merchant, in order.
    side_effects: Vec<usize>,
    /// The index of the rule that decided (the number of rules when none did).
    decided_at: usize,
}

fn merchant_reason(i: usize, oid: &str) -> String {
    format!("가맹점 r{i} 거절 {oid}")
}

fn merchant_message(i: usize) -> String {
    format!("가맹점 r{i} 메시지")
}

/// The status each fetch rule's answer had, by rule index: `fetched["rJ"]?.status` (`None`:
/// not reached, skipped, or its call failed).
type Fetched = Vec<Option<u16>>;

impl ReplyKind {
    fn status(self) -> u16 {
        match self {
            ReplyKind::Ok | ReplyKind::Empty | ReplyKind::Text => 200,
            ReplyKind::Conflict | ReplyKind::ConflictMsg => 409,
            ReplyKind::Server => 500,
        }
    }
}

/// The check of rule `i` for request `k`, its upstream answering `reply`, the earlier fetches'
/// answers `fetched` (README: Upstreams, SPEC §9).
fn check(case: &Case, i: usize, k: usize, fetched: &Fetched) -> Step {
    let (rule, replies) = &case.rules[i];
    let (req, reply) = (&case.requests[k], replies[k]);
    use ReplyKind::*;
    let oid = req.order_id(k);
    let plain = || format!("r{i} 거절 {oid}");
    match rule.kind {
        Kind::Amount { min, max } => {
            if min.is_none_or(|m| req.amount >= m) && max.is_none_or(|m| req.amount <= m) {
                Step::Pass
            } else {
                Step::Refuse(plain())
            }
        }
        Kind::Approve => Step::Approve,
        Kind::Reads { .. } => match case.read_target(i) {
            Some(j) if fetched[j] != Some(200) => Step::Refuse(plain()),
            _ => Step::Pass,
        },
        Kind::Healthy { up: true } => Step::Pass,
        Kind::Healthy { up: false } => Step::Refuse(plain()),
        // Transport failures are errors, whatever the rule.
        Kind::Fetch { refused: true, .. } | Kind::Forward { refused: true } => Step::Error,
        Kind::Fetch {
            require, template, ..
        } => {
            // `{response.body.reason}`: a missing field renders empty.
            let reason = if template {
                let field = if reply.kind == Conflict {
                    merchant_reason(i, &oid)
                } else {
                    String::new()
                };
                format!("r{i} 거절 [{field}]")
            } else {
                plain()
            };
            let ok200 = matches!(reply.kind, Ok | Empty | Text);
            match require {
                Require::None => match reply.kind {
                    Ok | Empty | Text => Step::Pass,
                    Conflict | ConflictMsg => Step::Refuse(reason),
                    Server => Step::Error,
                },
                Require::Status if ok200 => Step::Pass,
                Require::Status => Step::Refuse(reason),
                Require::Body => match reply.kind {
                    Ok => Step::Pass,
                    // A text body has no fields: the expression fails (an error, `on_error`).
                    Text => Step::Error,
                    Empty | Conflict | ConflictMsg | Server => Step::Refuse(reason),
                },
            }
        }
        Kind::Forward { refused: false } => match reply.kind {
            Ok | Empty | Text => Step::Pass,
            Conflict => Step::Refuse(merchant_reason(i, &oid)),
            ConflictMsg => Step::Refuse(merchant_message(i)),
            Server => Step::Refuse(plain()),
        },
    }
}

/// Request `k` of `case`, decided by walking its rules in file order.
fn model(case: &Case, k: usize) -> Expected {
    let req = &case.requests[k];
    let oid = req.order_id(k);
    // Every rule passed, until one decides otherwise.
    let mut want = Expected {
        status: 200,
        decision: "approve",
        reason: None,
        rule: None,
        trace: Vec::new(),
        shadow: Vec::new(),
        side_effects: Vec::new(),
        decided_at: case.rules.len(),
    };
    let mut fetched: Fetched = vec![None; case.rules.len()];
    for (i, (rule, replies)) in case.rules.iter().enumerate() {
        let name = format!("r{i}");
        if rule.mode == Mode::Off {
            continue;
        }
        if rule.when.is_some_and(|g| !g.holds(req, k)) {
            want.trace.push((name, "skipped"));
            continue;
        }
        if rule.side_effect_at_mock() {
            want.side_effects.push(i);
        }
        let step = check(case, i, k, &fetched);
        // An answer came (whatever its status, whatever `require` made of it): later rules
        // see it.
        if let Kind::Fetch { refused: false, .. } = rule.kind {
            fetched[i] = Some(replies[k].kind.status());
        }
        if rule.mode == Mode::Shadow {
            // Traced, and listed when it would have decided; never deciding.
            let (traced, would) = match step {
                Step::Pass => ("pass", None),
                Step::Refuse(r) => ("shadow_reject", Some(("reject", Some(r)))),
                Step::Approve => ("shadow_approve", Some(("approve", None))),
                Step::Error => ("shadow_error", Some(("error", None))),
            };
            want.trace.push((name.clone(), traced));
            if let Some((outcome, reason)) = would {
                want.shadow.push((name, outcome, reason));
            }
            continue;
        }
        let (traced, decided) = match step {
            Step::Pass => ("pass", None),
            Step::Approve => ("approve", Some(None)),
            Step::Refuse(r) => ("reject", Some(Some(r))),
            // The rule's own `on_error`, else the ruleset's: approve goes on as if it passed.
            Step::Error => match rule.on_error.unwrap_or(case.on_error) {
                OnError::Approve => ("error", None),
                OnError::Reject => (
                    "error",
                    Some(Some(ERROR_REASON.replace("{order_id}", &oid))),
                ),
            },
        };
        want.trace.push((name.clone(), traced));
        if let Some(refusal) = decided {
            if let Some(reason) = refusal {
                want.status = case.reject_status;
                want.decision = "reject";
                want.reason = Some(reason);
            }
            want.rule = Some(name);
            want.decided_at = i;
            return want;
        }
    }
    want
}

// ---------------------------------------------------------------------------------------------
// The merchant.

/// One request the mock merchant handled: `done` once its answer is ready.
#[derive(Clone, Debug)]
struct Event {
    done: bool,
    method: String,
    rule: usize,
    request: usize,
}

/// The request index in an order id (`vip-2` → 2).
fn request_index(order_id: &str) -> Option<usize> {
    order_id.rsplit('-').next()?.parse().ok()
}

/// The merchant: `/r{i}/{order_id}` (fetches) and `/r{i}/fwd` (forwards, the order id in the
/// body) answer as the case says for rule `i` and that request; `/health/up` and
/// `/health/down` are the probes'. Every call is logged in `events` as it starts and ends.
async fn merchant(case: &Case, events: Arc<Mutex<Vec<Event>>>) -> MockUpstream {
    let replies: Arc<Vec<[Reply; 3]>> = Arc::new(case.rules.iter().map(|(_, r)| *r).collect());
    let router = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (replies, events) = (replies.clone(), events.clone());
        async move {
            let (parts, body) = req.into_parts();
            let path = parts.uri.path().to_owned();
            match path.as_str() {
                "/health/up" => return StatusCode::OK.into_response(),
                "/health/down" => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
                _ => {}
            }
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let mut segments = path.trim_start_matches('/').split('/');
            let rule = segments
                .next()
                .and_then(|s| s.strip_prefix('r'))
                .and_then(|s| s.parse::<usize>().ok());
            let order_id = match segments.next() {
                Some("fwd") => serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|b| b["merchant_uid"].as_str().map(str::to_owned)),
                other => other.map(str::to_owned),
            };
            let request = order_id.as_deref().and_then(request_index);
            let (Some(rule), Some(request), Some(oid)) = (rule, request, order_id) else {
                return (StatusCode::NOT_FOUND, "no such path").into_response();
            };
            let Some(reply) = replies.get(rule).and_then(|r| r.get(request)).copied() else {
                return (StatusCode::NOT_FOUND, "no such rule").into_response();
            };
            let event = |done| Event {
                done,
                method: parts.method.to_string(),
                rule,
                request,
            };
            events.lock().unwrap().push(event(false));
            tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
            let answer = match reply.kind {
                ReplyKind::Ok => axum::Json(json!({"available": 3})).into_response(),
                ReplyKind::Empty => axum::Json(json!({"available": 0})).into_response(),
                ReplyKind::Conflict => (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"reason": merchant_reason(rule, &oid)})),
                )
                    .into_response(),
                ReplyKind::ConflictMsg => (
                    StatusCode::CONFLICT,
                    axum::Json(json!({"errorMessage": merchant_message(rule)})),
                )
                    .into_response(),
                ReplyKind::Server => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
                }
                ReplyKind::Text => "plain text, not json".into_response(),
            };
            events.lock().unwrap().push(event(true));
            answer
        }
    });
    MockUpstream::start(router).await
}

// ---------------------------------------------------------------------------------------------
// One case through the real server.

/// What differed between the server and the model, or `Ok`.
async fn run_case(case: &Case) -> Result<(), String> {
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let shop = merchant(case, events.clone()).await;
    let rules = Rules::with("default.yaml", &case.yaml(&shop.url()));
    let (server, log) = logged(&rules).await;
    if case.uses_health() {
        // A `healthy` rule before its probe's first result is an error: wait for both.
        let ready = eventually(PATIENCE, || async {
            get(&server.admin_url("/readyz")).await.status == 200
        })
        .await;
        if !ready {
            server.stop().await;
            return Err("/readyz never answered 200".into());
        }
    }
    // The requests of a case all at once: each is decided on its own, its calls told apart
    // by its order id.
    let url = server.url("/confirm");
    let sent: Vec<_> = case
        .requests
        .iter()
        .enumerate()
        .map(|(k, req)| {
            let (url, body) = (url.clone(), v1(&req.order_id(k), req.amount));
            tokio::spawn(async move {
                let answer = post(&url, Some("application/json"), body);
                within(PATIENCE, "a confirm answer", answer).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for answer in sent {
        answers.push(answer.await.unwrap());
    }
    server.stop().await;

    let calls = shop.calls();
    let events = events.lock().unwrap().clone();
    let mut problems = Vec::new();
    for (k, answer) in answers.iter().enumerate() {
        let want = model(case, k);
        let oid = case.requests[k].order_id(k);
        let record = record(&log, &answer.decision_id());
        let mut differs = |what: &str, got: String, want: String| {
            if got != want {
                problems.push(format!(
                    "request {k} ({oid}): {what}: server {got}, model {want}"
                ));
            }
        };
        differs("status", answer.status.to_string(), want.status.to_string());
        differs(
            "decision",
            answer.decision().to_owned(),
            want.decision.to_owned(),
        );
        differs(
            "reason",
            format!("{:?}", answer.body["reason"].as_str()),
            format!("{:?}", want.reason.as_deref()),
        );
        if want.reason.is_some() {
            differs(
                "errorMessage",
                format!("{:?}", answer.body["errorMessage"].as_str()),
                format!("{:?}", want.reason.as_deref()),
            );
        }
        differs(
            "deciding rule",
            format!("{:?}", record["rule"].as_str()),
            format!("{:?}", want.rule.as_deref()),
        );
        let trace: Vec<(String, String)> = record["trace"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|e| {
                        let s = |f: &str| e[f].as_str().unwrap_or("?").to_owned();
                        (s("rule"), s("outcome"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want_trace: Vec<(String, String)> = want
            .trace
            .iter()
            .map(|(r, o)| (r.clone(), (*o).to_owned()))
            .collect();
        differs("trace", format!("{trace:?}"), format!("{want_trace:?}"));
        let shadow: Vec<(String, String, Option<String>)> = record["shadow"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|e| {
                        (
                            e["rule"].as_str().unwrap_or("?").to_owned(),
                            e["outcome"].as_str().unwrap_or("?").to_owned(),
                            e["reason"].as_str().map(str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let want_shadow: Vec<(String, String, Option<String>)> = want
            .shadow
            .iter()
            .map(|(r, o, why)| (r.clone(), (*o).to_owned(), why.clone()))
            .collect();
        differs(
            "shadow outcomes",
            format!("{shadow:?}"),
            format!("{want_shadow:?}"),
        );

        // Side effects: every POST fetch and forward of this request, in the order the
        // merchant received them, exactly those of the rules the model reached.
        let sent: Vec<String> = calls
            .iter()
            .filter(|c| c.method != "GET")
            .filter(|c| {
                let fwd = c.path.ends_with("/fwd");
                let order = if fwd {
                    serde_json::from_slice::<Value>(&c.body)
                        .ok()
                        .and_then(|b| b["merchant_uid"].as_str().map(str::to_owned))
                } else {
                    c.path.rsplit('/').next().map(str::to_owned)
                };
                order.as_deref() == Some(oid.as_str())
            })
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        let want_sent: Vec<String> = want
            .side_effects
            .iter()
            .map(|&i| match case.rules[i].0.kind {
                Kind::Forward { .. } => format!("POST /r{i}/fwd"),
                _ => format!("POST /r{i}/{oid}"),
            })
            .collect();
        differs(
            "calls with side effects",
            format!("{sent:?}"),
            format!("{want_sent:?}"),
        );

        // A GET fetch after a call with side effects starts once that call is done, and
        // only if evaluation got past it (README Concurrency).
        let mine: Vec<&Event> = events.iter().filter(|e| e.request == k).collect();
        for (at, get) in mine.iter().enumerate() {
            if get.done || get.method != "GET" {
                continue;
            }
            let j = get.rule;
            for (i, (rule, _)) in case.rules.iter().enumerate().take(j) {
                if rule.mode == Mode::Off || !rule.side_effect() {
                    continue;
                }
                if i >= want.decided_at {
                    problems.push(format!(
                        "request {k} ({oid}): GET of r{j} was sent, but evaluation (model) stopped at r{} before the call of r{i} ahead of it",
                        want.decided_at
                    ));
                }
                let started = mine.iter().any(|e| e.rule == i && e.method != "GET");
                let done_before = mine[..at]
                    .iter()
                    .any(|e| e.rule == i && e.done && e.method != "GET");
                if started && !done_before {
                    problems.push(format!(
                        "request {k} ({oid}): GET of r{j} started before the call of r{i} (side effects) was done"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn report(case: &Case, problems: &str) -> String {
    let requests: Vec<String> = case
        .requests
        .iter()
        .enumerate()
        .map(|(k, r)| format!("{} amount {}", r.order_id(k), r.amount))
        .collect();
    format!(
        "{problems}\n--- rules (shop = the mock) ---\n{}--- merchant answers per rule (request 0, 1, …) ---\n{}--- requests ---\n  {}\n",
        case.yaml("http://SHOP"),
        case.replies_table(),
        requests.join("\n  ")
    )
}

#[test]
fn decisions_and_side_effects_are_as_if_rules_ran_one_after_another() {
    let seed = std::env::var("SEQUENTIAL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(SEED);
    let mut seed_bytes = [0u8; 32];
    for (i, chunk) in seed_bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        // Each shrinking step starts a server: bounded, so a failure reports in seconds.
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let result = runner.run(&case(), |case| {
        rt.block_on(run_case(&case))
            .map_err(|problems| TestCaseError::fail(report(&case, &problems)))
    });
    if let Err(e) = result {
        panic!("seed {seed} (SEQUENTIAL_SEED={seed} reproduces it): {e}");
    }
}
