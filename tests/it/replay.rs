//! `replay`: a decision log decided again by edited rules, upstream answers from the log.

use crate::support::*;

fn rules_yaml(shop: &str, require: &str, extra: &str) -> String {
    format!(
        r#"upstreams:
  shop: {{ url: "{shop}", timeout: 1s }}
rules:
  - name: amount-range
    amount: {{ max: 100000 }}
    reason: "한도 초과"
{extra}  - name: stock
    fetch: {{ upstream: shop, method: GET, path: "/stock/{{order_id}}" }}
    require: '{require}'
    reason: "재고가 모두 소진되었습니다"
"#
    )
}

/// Yesterday's traffic against today's edit: what the log recorded comes back unchanged with
/// the same rules, an edit shows exactly the decisions it changes, and the shop is never
/// called (its answers come from the log).
#[tokio::test]
async fn replay_shows_the_decisions_an_edit_changes_without_calling_upstreams() {
    let shop = MockUpstream::start(axum::Router::new().route(
        "/stock/{id}",
        axum::routing::get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                let available = match id.as_str() {
                    "plenty" => 3,
                    "last-one" => 1,
                    _ => 0,
                };
                axum::Json(serde_json::json!({ "available": available }))
            },
        ),
    ))
    .await;
    let at_least = |n: u32| format!("response.body.available >= {n}");
    let rules = Rules::with("default.yaml", &rules_yaml(&shop.url(), &at_least(1), ""));
    let (server, log) = logged(&rules).await;
    let mut ids = std::collections::HashMap::new();
    for (order, amount) in [
        ("plenty", 5_000),
        ("last-one", 5_000),
        ("sold-out", 5_000),
        ("too-much", 500_000),
    ] {
        let a = server.confirm_json("/confirm", &v1(order, amount)).await;
        ids.insert(order, a.decision_id());
    }
    let bad = post(&server.url("/confirm"), Some("application/json"), "{").await;
    assert_eq!(bad.status, 400);
    server.stop().await;
    let calls = shop.calls().len();
    // The log names the call each fetch made, and its time has microseconds.
    let plenty = record(&log, &ids["plenty"]);
    let mut call = plenty["trace"][1]["call"].clone();
    assert!(
        call["sent"]
            .take()
            .as_str()
            .is_some_and(|s| s.len() == 19 && s.starts_with("v2:")),
        "{plenty}"
    );
    assert_eq!(
        call,
        serde_json::json!({"upstream": "shop", "method": "GET", "path": "/stock/plenty", "sent": null}),
        "{plenty}"
    );
    let time = plenty["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-12-04T18:45:25.000000Z".len(), "{time}");

    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "4 replayed: 0 changed, 4 unchanged; 1 not decided by rules (guards' answers, repeats, ignored messages)"
    );

    // The last one in stock is refused once two are required.
    rules.write("default.yaml", &rules_yaml(&shop.url(), &at_least(2), ""));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&ids["last-one"]), "{out}");
    assert!(out.contains("  logged: approve 200\n"), "{out}");
    assert!(
        out.contains("  now:    reject 409 by stock: \"재고가 모두 소진되었습니다\"\n"),
        "{out}"
    );
    assert!(!out.contains(&ids["plenty"]), "{out}");
    assert!(out.ends_with("4 replayed: 1 changed (0 now approved, 1 now refused, 0 with another reason, status or deciding rule), 3 unchanged; 1 not decided by rules (guards' answers, repeats, ignored messages)\n"), "{out}");

    // A rule the log knows nothing about meets no upstream: an error, decided by on_error, and
    // said in a note.
    let vip = "  - name: vip\n    fetch: { upstream: shop, method: GET, path: \"/vip/{order_id}\" }\n    reason: \"VIP 전용\"\n";
    rules.write("default.yaml", &rules_yaml(&shop.url(), &at_least(1), vip));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("note: rule vip: not in the record, and no rule of the record made its GET /vip/plenty from shop: the record has no upstream answer for it; it counted as an error\n"),
        "{out}"
    );
    assert!(out.contains("3 changed (0 now approved, "), "{out}");
    // Those are on_error's guesses, not the upstream's answers: the closing count says so.
    assert!(out.contains("; 3 of them reached a call or health state the record has no answer for, and on_error decided it, not the upstream), 1 unchanged"), "{out}");

    // A require reading response headers reads none in the log: its changes are no
    // prediction, and the closing count says so.
    let headers = r#"response.headers["content-type"].starts_with("application/json")"#;
    rules.write("default.yaml", &rules_yaml(&shop.url(), headers, ""));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("3 changed (0 now approved, 2 now refused, 1 with another reason, status or deciding rule; 3 of them reached a rule that reads response headers, which the log does not keep, so they are no prediction), 1 unchanged"), "{out}");

    // A trial rule decides nothing, so it changes no decision; the block before the closing
    // count says what it would have done (the order over the limit never reached it).
    let trial = "  - { name: small, mode: shadow, amount: { max: 4000 }, reason: \"소액 전용\" }\n";
    rules.write(
        "default.yaml",
        &rules_yaml(&shop.url(), &at_least(1), trial),
    );
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "shadow rules (they decide nothing; what each did over the replayed records, and what the rule of that name did then):\n  \
         default/small: now 3 checked, 3 would refuse, 0 failed; in no record (new, or never reached then)\n\n\
         4 replayed: 0 changed, 4 unchanged; 1 not decided by rules (guards' answers, repeats, ignored messages)\n"
    );

    // A ruleset neither in the log nor in the rules is a mistyped name.
    let (code, out, err) = replay(&rules, &log, &["--ruleset", "marathon"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with(&format!(
            "error: unknown ruleset \"marathon\": no record of it in {}, and the rules load default\n",
            log.display()
        )),
        "{err}"
    );

    // Records of other rulesets are left out.
    rules.write(
        "marathon.yaml",
        "rules:\n  - { name: limit, amount: { max: 10 }, reason: x }\n",
    );
    let (code, out, err) = replay(&rules, &log, &["--ruleset", "marathon"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("0 replayed"), "{out}");
    // Audit: said only when none was left; "0 changed" then read as the whole log's.
    assert!(
        out.trim_end().ends_with("; 5 records of other rulesets left out (only ruleset \"marathon\" was asked for, by --ruleset or CONFIRM_PROXY_RULESET)"),
        "{out}"
    );
    assert!(
        err.starts_with("note: no record of ruleset \"marathon\""),
        "{err}"
    );
    assert_eq!(shop.calls().len(), calls, "replay called the shop");
}

#[test]
fn replay_reports_unreadable_lines_and_a_missing_log() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n",
    );
    let log = rules.path().join("decisions.jsonl");
    // A line cut inside a character is no UTF-8: unreadable, like any torn line.
    std::fs::write(&log, b"not json\n\n{\"time\":\"\xea\xb0\n").unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    // Not one record: not a decision log, and "nothing changed" would be no answer.
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.starts_with(&format!("{}:1: not a decision-log record", log.display())),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "error: no line of {} is a decision-log record\n",
            log.display()
        )),
        "{err}"
    );
    assert!(out.contains("2 unreadable lines"), "{out}");
    // With a record among them, the unreadable lines are counted and the replay stands.
    let guard = r#"{"time":"2026-11-25T07:51:02.114Z","decision_id":"d-2","ruleset":"unknown","decision":"reject","status":404,"reason":"x","trace":[],"latency_ms":0.1}"#;
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(format!("{guard}\n").as_bytes());
    std::fs::write(&log, text).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 not decided by rules"), "{out}");
    let (code, _, err) = replay(&rules, &rules.path().join("missing.jsonl"), &[]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: cannot read"), "{err}");
}

/// A form body is logged as a JSON object of its decoded strings; read back, it is decided as
/// it was, even when its JSON spelling is longer than the 64 KiB the request met (a form's
/// `%01` is `\u0001` in JSON).
#[tokio::test]
async fn a_form_request_replays_as_it_was_decided() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n",
    );
    let (server, log) = logged(&rules).await;
    let form = "application/x-www-form-urlencoded";
    let memo = "%01".repeat(20_000);
    for amount in [1_000, 50_000] {
        let body = format!("imp_uid=imp_1&merchant_uid=order-1&amount={amount}&memo={memo}");
        assert!(body.len() < 64 * 1024);
        let answer = post(&server.url("/confirm"), Some(form), body).await;
        assert_eq!(answer.status, if amount == 1_000 { 200 } else { 409 });
    }
    server.stop().await;
    let longest = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::len)
        .max();
    assert!(longest > Some(64 * 1024), "{longest:?}");
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("2 replayed: 0 changed, 2 unchanged"),
        "{out}"
    );
}

/// Input that is no decision log is said to be so plainly: a compressed log (one line
/// saying how to read it, exit 2), JSON that is no object, a line too long to be a record
/// (skipped, not held in memory), and an empty log (nothing to replay, exit 0).
#[test]
fn replay_says_plainly_what_is_no_decision_log() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n",
    );
    let log = rules.path().join("decisions.jsonl.gz");
    std::fs::write(
        &log,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\n\xfe\xfe\n",
    )
    .unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 2, "{out}{err}");
    let name = log.display();
    assert_eq!(
        err,
        format!("error: {name}: gzip-compressed; decompress it first: zcat {name} | confirm-proxy replay -\n")
    );
    // The other compressors logrotate can use, each with its tool.
    for (magic, format, tool) in [
        (&b"\xfd7zXZ\x00\x00\x04"[..], "xz", "xzcat"),
        (b"BZh91AY&SY", "bzip2", "bzcat"),
        (b"\x28\xb5\x2f\xfd\x24\x00", "zstd", "zstdcat"),
    ] {
        std::fs::write(&log, magic).unwrap();
        let (code, out, err) = replay(&rules, &log, &[]);
        assert_eq!(code, 2, "{out}{err}");
        assert_eq!(
            err,
            format!("error: {name}: {format}-compressed; decompress it first: {tool} {name} | confirm-proxy replay -\n")
        );
    }

    let guard = r#"{"time":"2026-11-25T07:51:02.114Z","decision_id":"d-2","ruleset":"unknown","decision":"reject","status":404,"reason":"x","trace":[],"latency_ms":0.1}"#;
    let log = rules.path().join("decisions.jsonl");
    std::fs::write(&log, format!("[]\n{guard}\n")).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "{}:1: not a decision-log record: expected a JSON object\n",
            log.display()
        )
    );

    // A byte-order mark before the first record (an editor saved the log) is no part of it.
    std::fs::write(&log, format!("\u{feff}{guard}\n")).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.contains("1 not decided by rules"), "{out}");

    let mut long = vec![b'x'; 64 * 1024 * 1024 + 1];
    long.push(b'\n');
    long.extend_from_slice(format!("{guard}\n").as_bytes());
    std::fs::write(&log, long).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "{}:1: not a decision-log record: a line over 64 MiB, skipped\n",
            log.display()
        )
    );
    assert!(out.contains("1 not decided by rules"), "{out}");
    assert!(out.trim_end().ends_with("; 1 unreadable line"), "{out}");

    // The deadline passed before the first rule: decided by on_error again, not the rules.
    let late = r#"{"time":"2026-12-04T18:45:25.000000Z","decision_id":"d-3","ruleset":"default","rules_version":"abc","api":"v1","order_id":"order-1","tx_id":"imp_1","amount":50000,"decision":"reject","status":409,"reason":"일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요.","trace":[],"latency_ms":4990.2,"request":{"imp_uid":"imp_1","merchant_uid":"order-1","amount":50000}}"#;
    std::fs::write(&log, format!("{late}\n")).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "1 replayed (1 with the deadline passed before the first rule, decided by on_error): 0 changed, 1 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)\n"
    );
    // As builds since 0.2.1 log such a request: the checks that needed no waiting ran, and the
    // first rule that would have waited was stopped; counted as such (it went uncounted).
    let stopped = late.replace(
        r#""trace":[]"#,
        r#""rule":"stock","trace":[{"rule":"cap","outcome":"pass","ms":0.001},{"rule":"stock","outcome":"error","ms":0.001,"error":"not run: reached after the answer was due (deadline of 5s)","deadline":true}]"#,
    );
    std::fs::write(&log, format!("{stopped}\n")).unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("1 replayed (1 with a rule the deadline stopped, decided by on_error): "),
        "{out}"
    );

    std::fs::write(&log, "").unwrap();
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.starts_with("note: ")
            && err.trim_end().ends_with(
                "has no lines: nothing was replayed (give the decision log as FILE, or pipe it in)"
            ),
        "{err}"
    );
    assert_eq!(
        out,
        "0 replayed: 0 changed, 0 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)\n"
    );
}

/// A fetch the deadline caught unanswered is waited for again, and the deadline decides again:
/// an edited deadline changes nothing there, which the closing count says rather than a bare
/// "0 changed".
#[tokio::test]
async fn a_call_unanswered_at_the_deadline_is_counted_as_waited_for_again() {
    let (url, _) = raw_upstream("", std::time::Duration::from_secs(3)).await;
    let yaml = |deadline: &str| {
        format!("settings: {{ deadline: {deadline} }}\nupstreams:\n  shop: {{ url: \"{url}\", timeout: 2s }}\nrules:\n  - {{ name: stock, fetch: {{ upstream: shop, path: /stock }}, reason: x }}\n")
    };
    let rules = Rules::with("default.yaml", &yaml("500ms"));
    let (server, log) = logged(&rules).await;
    let a = server.confirm_json("/confirm", &v1("slow-1", 5000)).await;
    assert_eq!(a.status, 409);
    server.stop().await;
    rules.write("default.yaml", &yaml("3s"));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "1 replayed (1 with a call unanswered at the deadline, waited for again: an edited deadline or timeout is not replayed, decided by on_error): 0 changed, 1 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)"
    );
}

/// A `forward` rule renamed: the record's call under the old name is the very same one (its
/// digest too), so what came of it stands in, and the closing count says the change is only
/// the deciding rule's name — not every record "now refused" for want of an answer.
#[tokio::test]
async fn a_renamed_forward_takes_the_answer_of_the_call_it_made_then() {
    let shop = MockUpstream::start(axum::Router::new().route(
        "/confirm",
        axum::routing::post(|body: String| async move {
            if body.contains("no-") {
                (
                    axum::http::StatusCode::CONFLICT,
                    axum::Json(serde_json::json!({ "reason": "품절" })),
                )
            } else {
                (
                    axum::http::StatusCode::OK,
                    axum::Json(serde_json::json!({})),
                )
            }
        }),
    ))
    .await;
    let yaml = |name: &str| {
        format!(
            "upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - {{ name: {name}, forward: {{ upstream: shop, path: /confirm }}, reason: x }}\n",
            shop.url()
        )
    };
    let rules = Rules::with("default.yaml", &yaml("existing"));
    let (server, log) = logged(&rules).await;
    for order in ["ok-1", "no-1"] {
        server.confirm_json("/confirm", &v1(order, 5000)).await;
    }
    server.stop().await;
    rules.write("default.yaml", &yaml("legacy"));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("  now:    reject 409 by legacy: \"품절\"\n"),
        "{out}"
    );
    assert!(out.contains("note: rule legacy: not in the record; rule existing of the record, not in the rules now, made the very same POST /confirm from shop (a rename?): what came of it stands in\n"), "{out}");
    assert!(out.ends_with("2 replayed: 1 changed (0 now approved, 0 now refused, 1 with another reason, status or deciding rule; 1 of them differs only in the deciding rule's name (a rule renamed?)), 1 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)\n"), "{out}");
}

/// Two rules that both exist and refuse with the ruleset's `error_reason` give the same answer:
/// a change of which one decides is no rename (a trial's summary said "a rule renamed?").
#[tokio::test]
async fn another_rule_refusing_with_error_reason_is_no_rename() {
    let yaml = |opt: &str, strict: &str| {
        format!(
            "settings: {{ error_reason: \"잠시 후 다시\" }}\nupstreams:\n  shop: {{ url: \"http://127.0.0.1:1\" }}\nrules:\n  - {{ name: opt, fetch: {{ upstream: shop, path: /a }}, on_error: {opt}, reason: x }}\n  - {{ name: strict, fetch: {{ upstream: shop, path: /b }}, on_error: {strict}, reason: y }}\n"
        )
    };
    let rules = Rules::with("default.yaml", &yaml("approve", "reject"));
    let (server, log) = logged(&rules).await;
    server.confirm_json("/confirm", &v1("o-1", 5000)).await;
    server.stop().await;
    rules.write("default.yaml", &yaml("reject", "approve"));
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("  now:    reject 409 by opt: \"잠시 후 다시\"\n"),
        "{out}"
    );
    assert!(out.ends_with("1 replayed: 1 changed (0 now approved, 0 now refused, 1 with another reason, status or deciding rule), 0 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)\n"), "{out}");
}

/// An answer the log keeps only the start of (over 4 KiB) is read as that part, which a
/// `require` cannot read: the same rules then refuse, and the count says such a change is no
/// prediction (a trial's count gave it as a real one).
#[tokio::test]
async fn a_change_on_an_answer_kept_in_part_is_counted_as_no_prediction() {
    let shop = MockUpstream::start(axum::Router::new().route(
        "/stock",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({ "available": 5, "pad": "x".repeat(5000) }))
        }),
    ))
    .await;
    let yaml = format!(
        "upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - {{ name: stock, fetch: {{ upstream: shop, path: /stock }}, require: 'response.body.available > 0', reason: 품절 }}\n",
        shop.url()
    );
    let rules = Rules::with("default.yaml", &yaml);
    let (server, log) = logged(&rules).await;
    let a = server.confirm_json("/confirm", &v1("o-1", 5000)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    server.stop().await;
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "note: rule stock: the log kept only the first 4 KiB of the upstream's answer\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("1 replayed: 1 changed (0 now approved, 1 now refused, 0 with another reason, status or deciding rule; 1 of them reached an answer the log keeps only in part (the start of its body, or its status alone), so they are no prediction), 0 unchanged; 0 not decided by rules (guards' answers, repeats, ignored messages)\n"), "{out}");
}
