//! Each PortOne format end to end, each answer shape, named rulesets and the request guards.

use crate::support::*;

const RULES: &str = r#"
rules:
  - name: qa
    when: 'order_id.starts_with("qa-")'
    action: approve
  - name: amount-range
    amount: { min: 1000, max: 100000 }
    reason: "결제 가능 금액이 아닙니다 ({amount}원)"
"#;

const MARATHON: &str = "settings: { reject_status: 403 }\nrules:\n  - name: closed\n    require: 'false'\n    reason: \"접수가 마감되었습니다\"\n";

/// `default` ([`RULES`]) and `marathon` ([`MARATHON`]: refuses everything with 403).
fn two_rulesets() -> Rules {
    let rules = Rules::with("default.yaml", RULES);
    rules.write("marathon.yaml", MARATHON);
    rules
}

async fn server() -> (Rules, Server) {
    let rules = two_rulesets();
    let server = Server::start(rules.path()).await;
    (rules, server)
}

fn assert_answer_headers(a: &Answer) {
    assert_eq!(a.headers["content-type"], "application/json; charset=utf-8");
    let id = a.decision_id();
    assert!(uuid_like(&id), "X-Confirm-Decision-Id {id:?}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn every_portone_format_is_approved_end_to_end() {
    let (_rules, server) = server().await;
    let url = server.url("/confirm");
    for (file, ct) in [
        ("v1.json", Some("application/json")),
        ("v1.form", Some("application/x-www-form-urlencoded")),
        ("v1.form", None),
        (
            "v2-2024-01-01.json",
            Some("application/json; charset=utf-8"),
        ),
        ("v2-2024-04-25.json", Some("application/json")),
        ("v2-2024-04-25.json", None),
    ] {
        let a = post(&url, ct, testdata(file)).await;
        assert_eq!(
            (a.status, a.decision()),
            (200, "approve"),
            "{file} {ct:?}: {:?}",
            a.body
        );
        assert_eq!(a.body, serde_json::json!({"decision": "approve"}));
        assert_answer_headers(&a);
    }
    server.stop().await;
}

#[tokio::test]
async fn refusal_carries_reason_under_both_names() {
    let (_rules, server) = server().await;
    let a = post(
        &server.url("/confirm"),
        Some("application/json"),
        testdata("v1-fractional.json"),
    )
    .await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.body,
        serde_json::json!({"decision": "reject", "reason": "결제 가능 금액이 아닙니다 (10.5원)", "errorMessage": "결제 가능 금액이 아닙니다 (10.5원)"})
    );
    assert_answer_headers(&a);
    let a = server.confirm_json("/confirm", &v1("qa-1", 5)).await;
    assert_eq!(
        a.status, 200,
        "the QA rule approves before the amount check"
    );
    server.stop().await;
}

#[tokio::test]
async fn other_v2_types_are_acknowledged_and_ignored() {
    let rules = two_rulesets();
    let (server, log) = logged(&rules).await;
    let a = post(
        &server.url("/confirm"),
        Some("application/json"),
        testdata("v2-2024-04-25-other-type.json"),
    )
    .await;
    assert_eq!(
        (a.status, a.body.clone()),
        (200, serde_json::json!({"decision": "ignored"}))
    );
    assert_answer_headers(&a);
    server.stop().await;
    // Its record names its format, as SPEC §7 has every line do.
    assert_eq!(record(&log, &a.decision_id())["api"], "v2-2024-04-25");
}

#[tokio::test]
async fn named_rulesets_and_unknown_ones() {
    let (_rules, server) = server().await;
    let a = server
        .confirm_json("/confirm/marathon", &v1("m-1", 5000))
        .await;
    assert_eq!((a.status, a.reason()), (403, "접수가 마감되었습니다"));
    let a = server.confirm_json("/confirm/nope", &v1("m-1", 5000)).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.decision(), "reject");
    assert!(!a.reason().is_empty());
    assert_eq!(a.body["reason"], a.body["errorMessage"]);
    assert_answer_headers(&a);
    // A name that looks like a path is only ever looked up, never opened.
    let a = server
        .confirm_json("/confirm/..%2Fdefault", &v1("m-1", 5000))
        .await;
    assert_eq!(a.status, 404);
    // A percent-encoded name is the same path (RFC 3986): `%6D` is `m`, `%2D` is `-`; a
    // confirm URL registered with a trailing slash names the same ruleset too, and `/confirm/`
    // is `/confirm`.
    let a = server.confirm_json("/confirm/", &v1("m-1", 5000)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    for path in ["/confirm/%6Darathon", "/confirm/marathon/"] {
        let a = server.confirm_json(path, &v1("m-1", 5000)).await;
        assert_eq!(
            (a.status, a.reason()),
            (403, "접수가 마감되었습니다"),
            "{path}"
        );
    }
    let text = server.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"confirm_proxy_requests_total{ruleset="unknown",decision="reject"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        !text.contains("nope"),
        "caller-chosen names never become labels"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let (_rules, server) = server().await;
    let url = server.url("/confirm");
    let cases: &[(&str, Option<&str>, u16, &str)] = &[
        (
            r#"{"imp_uid":"i","amount":1000}"#,
            Some("application/json"),
            400,
            "merchant_uid",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":-1}"#,
            Some("application/json"),
            400,
            "amount",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":"many"}"#,
            Some("application/json"),
            400,
            "amount",
        ),
        (
            r#"{"payment_id":"p","tx_id":"","total_amount":1}"#,
            Some("application/json"),
            400,
            "tx_id",
        ),
        ("{not json", Some("application/json"), 400, "JSON"),
        (
            r#"{"imp_uid":"i","merchant_uid":"m","amount":1000}"#,
            Some("text/plain"),
            415,
            "Content-Type",
        ),
    ];
    for (body, ct, status, mentions) in cases {
        let a = post(&url, *ct, body.to_string()).await;
        assert_eq!(a.status, *status, "{body}: {:?}", a.body);
        assert!(
            a.reason().contains(mentions),
            "{body}: reason {:?} should mention {mentions}",
            a.reason()
        );
        assert_eq!(a.body["errorMessage"], a.body["reason"]);
        assert_answer_headers(&a);
    }
    let big = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":1000,"pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let a = post(&url, Some("application/json"), big).await;
    assert_eq!(a.status, 413);
    assert_answer_headers(&a);
    let a = post(
        &url,
        Some("application/json"),
        b"\xff\xfe\x00garbage".to_vec(),
    )
    .await;
    assert_eq!(a.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn other_methods_get_405_and_health_is_open() {
    let (_rules, server) = server().await;
    let a = get(&server.url("/confirm")).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.decision(), "reject");
    assert_eq!(get(&server.url("/healthz")).await.status, 200);
    assert_eq!(get(&server.admin_url("/healthz")).await.status, 200);
    assert_eq!(get(&server.admin_url("/readyz")).await.status, 200);
    // Admin endpoints are never on the public listener.
    for path in ["/metrics", "/admin/rules", "/readyz"] {
        assert_eq!(get(&server.url(path)).await.status, 404, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn admin_rules_shows_rulesets_and_version() {
    let (_rules, server) = server().await;
    let a = get(&server.admin_url("/admin/rules")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["version"].as_str().unwrap().len(), 12);
    let names: Vec<&str> = a.body["rulesets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "marathon"]);
    assert_eq!(
        a.body["rulesets"][0]["settings"],
        serde_json::json!({"deadline_ms": 4000, "on_error": "reject", "reject_status": 409,
            "error_reason": "일시적인 오류로 결제를 진행할 수 없습니다. 잠시 후 다시 시도해 주세요."})
    );
    // Each rule with its `when` (null without one), check, what the check holds (a trial
    // could not tell the live limits from the kind alone) and mode.
    assert_eq!(
        a.body["rulesets"][0]["rules"],
        serde_json::json!([
            {"name": "qa", "when": "order_id.starts_with(\"qa-\")", "check": "approve", "detail": null, "mode": "enforce"},
            {"name": "amount-range", "when": null, "check": "amount", "detail": {"min": "1000", "max": "100000"}, "mode": "enforce"},
        ])
    );
    assert_eq!(
        a.body["rulesets"][1]["rules"][0]["detail"],
        serde_json::json!({"require": "false"})
    );
    assert!(a.body["last_error"].is_null());
    server.stop().await;
}

#[tokio::test]
async fn every_answer_has_its_decision_log_line_and_metric() {
    let rules = Rules::with("default.yaml", RULES);
    let (server, log) = logged(&rules).await;
    let url = server.url("/confirm");
    let answers = [
        (
            "approve",
            post(&url, Some("application/json"), testdata("v1.json")).await,
        ),
        (
            "ignored",
            post(
                &url,
                Some("application/json"),
                testdata("v2-2024-04-25-other-type.json"),
            )
            .await,
        ),
        (
            "unknown ruleset",
            server.confirm_json("/confirm/nope", &v1("o", 5000)).await,
        ),
        (
            "too large",
            post(&url, Some("application/json"), vec![b' '; 70 * 1024]).await,
        ),
        (
            "content type",
            post(&url, Some("text/plain"), testdata("v1.json")).await,
        ),
        (
            "payload",
            post(&url, Some("application/json"), b"{}".to_vec()).await,
        ),
        ("method", get(&url).await),
        ("method, named", get(&server.url("/confirm/nope")).await),
        (
            "empty name",
            server.confirm_json("/confirm//", &v1("o", 5000)).await,
        ),
        (
            "nested path",
            server
                .confirm_json("/confirm/default/x", &v1("o", 5000))
                .await,
        ),
        (
            "bad escape",
            server.confirm_json("/confirm/%ff", &v1("o", 5000)).await,
        ),
        (
            "encoded nested path",
            server
                .confirm_json("/confirm/default%2Fx", &v1("o", 5000))
                .await,
        ),
        // A POST to a path not served is a confirm URL mistyped where it was registered.
        (
            "base URL joined with a slash",
            server.confirm_json("//confirm", &v1("o", 5000)).await,
        ),
        (
            "capitalised",
            server.confirm_json("/Confirm", &v1("o", 5000)).await,
        ),
        (
            "behind a proxy that keeps its prefix",
            server.confirm_json("/api/confirm", &v1("o", 5000)).await,
        ),
    ];
    // A POST to a path with no `confirm` in it is a scanner's, no payment: the bare 404 of any
    // web server, neither counted nor recorded.
    let scanner = server.confirm_json("/wp-login.php", &v1("o", 5000)).await;
    assert_eq!(scanner.status, 404);
    assert!(scanner.headers.get("x-confirm-decision-id").is_none());
    assert_eq!(scanner.body, serde_json::json!(""));
    let metrics = get(&server.admin_url("/metrics")).await;
    server.stop().await;
    let statuses: Vec<u16> = answers.iter().map(|(_, a)| a.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 404, 413, 415, 400, 405, 404, 404, 404, 404, 404, 404, 404, 404]
    );
    for (what, a) in &answers {
        assert_answer_headers(a);
        let r = record(&log, &a.decision_id());
        assert_eq!(r["status"], a.status, "{what}");
        assert_eq!(r["decision"], a.decision(), "{what}");
    }
    // The 405 of a known ruleset is counted under its name; another method to an unknown
    // one is its 404 (the ruleset is looked up first), counted as `unknown`.
    let text = metrics.body.as_str().unwrap();
    assert_eq!(
        metric(
            text,
            r#"confirm_proxy_requests_total{ruleset="default",decision="reject"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(
            text,
            r#"confirm_proxy_requests_total{ruleset="unknown",decision="reject"}"#
        ),
        Some(9.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_content_type_that_is_not_text_or_is_repeated_is_415() {
    let (_rules, server) = server().await;
    let a = post(&server.url("/confirm"), None, testdata("v1.json")).await;
    assert_eq!(a.status, 200, "no Content-Type is read as JSON");
    // Bytes that are not text are not shown; text beyond ASCII is named, as a
    // Content-Encoding is.
    for (content_type, shown) in [
        (&b"text/pl\xe9in"[..], "(텍스트가 아님)"),
        ("text/한글".as_bytes(), "text/한글"),
    ] {
        let a = send(
            client()
                .post(server.url("/confirm"))
                .header(
                    "content-type",
                    reqwest::header::HeaderValue::from_bytes(content_type).unwrap(),
                )
                .body(testdata("v1.json")),
        )
        .await;
        assert_eq!(a.status, 415);
        assert_eq!(
            a.reason(),
            format!("지원하지 않는 Content-Type입니다: {shown} (application/json 또는 application/x-www-form-urlencoded만 받습니다)")
        );
    }
    // Two of them, in either order: which one counts is up to each parser, so neither does.
    for (first, second) in [
        ("application/json", "text/plain"),
        ("text/plain", "application/json"),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append("content-type", first.parse().unwrap());
        headers.append("content-type", second.parse().unwrap());
        let resp = client()
            .post(server.url("/confirm"))
            .headers(headers)
            .body(testdata("v1.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 415, "{first}, {second}");
    }
    server.stop().await;
}

/// A body is read as it came: a compressed one would only be a broken JSON text, so any coding
/// but `identity` is named in a 415 (RFC 9110, 8.4) instead.
#[tokio::test]
async fn a_compressed_body_is_415() {
    let (_rules, server) = server().await;
    let send = |coding: &'static str| {
        client()
            .post(server.url("/confirm"))
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(testdata("v1.json"))
            .send()
    };
    assert_eq!(send("identity").await.unwrap().status(), 200);
    let resp = send("gzip").await.unwrap();
    assert_eq!(resp.status(), 415);
    assert!(resp.headers().contains_key("x-confirm-decision-id"));
    let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["errorMessage"],
        "지원하지 않는 Content-Encoding입니다: gzip (압축하지 않은 본문만 받습니다)"
    );
    server.stop().await;
}

/// A transfer coding besides `chunked` (`gzip, chunked`) is not undone by the HTTP layer: the
/// body would be read as its coded bytes, so it is a 415 too; plain `chunked` is fine.
/// `chunked` twice, in one header or two, is a 400 and the connection is closed after it
/// (the request itself does not ask for that): a proxy in front may have framed it otherwise.
#[tokio::test]
async fn a_transfer_coding_besides_chunked_is_415() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_rules, server) = server().await;
    let body = testdata("v1.json");
    for (coding, status) in [
        ("chunked\r\nconnection: close", "200"),
        ("gzip, chunked\r\nconnection: close", "415"),
        ("chunked, chunked", "400"),
        ("chunked\r\ntransfer-encoding: chunked", "400"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(server.url("").trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!(
            "POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: {coding}\r\n\r\n{:x}\r\n",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        conn.write_all(b"\r\n0\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        within(
            PATIENCE,
            "the answer and the close",
            conn.read_to_end(&mut answer),
        )
        .await
        .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{coding}: {answer}"
        );
        if status == "415" {
            assert!(
                answer.contains("지원하지 않는 Transfer-Encoding입니다: gzip, chunked"),
                "{answer}"
            );
        }
        if status == "400" {
            assert!(
                answer.contains("Transfer-Encoding에 chunked가 두 번 이상 있습니다"),
                "{answer}"
            );
            assert!(answer.contains("connection: close"), "{answer}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_deadline_is_refused_in_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rules = Rules::with(
        "default.yaml",
        "settings: { deadline: 500ms }\nrules:\n  - name: any\n    amount: { min: 1 }\n    reason: r\n",
    );
    let server = Server::start(rules.path()).await;
    let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    // Headers announce 80 bytes; only the first few ever come.
    stream
        .write_all(b"POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n{\"imp_uid\"")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("x-confirm-decision-id"), "{text}");
    // The rest of the body would be read as the next request: the connection ends, and the
    // answer says so.
    assert!(text.contains("connection: close"), "{text}");
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    server.stop().await;
}

/// A raw connection to the public listener of a proxy whose idle timeout is `idle`.
async fn server_with_idle_timeout(idle: std::time::Duration) -> (Server, Rules) {
    let rules = Rules::with(
        "default.yaml",
        "settings: { deadline: 500ms }\nrules:\n  - name: any\n    amount: { min: 1 }\n    reason: r\n",
    );
    let mut config = confirm_proxy::server::Config::new(rules.path().to_owned());
    config.idle_timeout = idle;
    (Server::start_with(config).await, rules)
}

/// Reads until the peer closes; how long that took. Panics after 5 s.
async fn closed_after(stream: &mut tokio::net::TcpStream) -> (Vec<u8>, std::time::Duration) {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut seen),
    )
    .await
    .expect("the proxy closes the connection")
    .unwrap();
    (seen, started.elapsed())
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_cut_off_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let idle = std::time::Duration::from_millis(300);
    let (server, _rules) = server_with_idle_timeout(idle).await;
    let mut slow = tokio::net::TcpStream::connect(server.public).await.unwrap();
    slow.write_all(b"POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-")
        .await
        .unwrap();
    let (_, took) = closed_after(&mut slow).await;
    assert!(
        took >= idle - std::time::Duration::from_millis(50),
        "closed after {took:?}"
    );
    // Other clients are served meanwhile and afterwards.
    let a = server.confirm_json("/confirm", &v1("order-1", 1000)).await;
    assert_eq!(a.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_and_one_in_use_is_not() {
    use tokio::io::AsyncWriteExt;
    let idle = std::time::Duration::from_millis(600);
    let (server, _rules) = server_with_idle_timeout(idle).await;
    let request = raw_post(&v1("order-1", 1000));
    let mut conn = tokio::net::TcpStream::connect(server.public).await.unwrap();
    // Six requests 150 ms apart: each one well inside the timeout, together longer than it.
    for i in 0..6 {
        if i > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        conn.write_all(request.as_bytes()).await.unwrap();
        let text = read_once(&mut conn).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    // Left idle from the last answer on: closed at the timeout, not at once. Half of it as
    // the bound, as this side may take a while to see the answer the timer starts from.
    let (rest, took) = closed_after(&mut conn).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(took >= idle / 2, "closed after {took:?}");
    server.stop().await;
}

/// A client that sends requests and never reads the answers fills the socket's buffers; the
/// connection is closed once a write has waited the idle timeout, instead of being held for
/// ever. Without that, reading later would still bring every answer.
#[tokio::test]
async fn a_connection_whose_answers_are_not_read_is_closed_at_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    const SENT: usize = 3000;
    // Each refusal carries this reason twice: about 6 KB an answer, 18 MB in all, far more
    // than loopback's socket buffers hold.
    let reason = "x".repeat(3000);
    let rules = Rules::with(
        "default.yaml",
        &format!("rules:\n  - name: all\n    amount: {{ max: 1 }}\n    reason: {reason}\n"),
    );
    let mut config = confirm_proxy::server::Config::new(rules.path().to_owned());
    config.idle_timeout = std::time::Duration::from_millis(500);
    let server = Server::start_with(config).await;
    let request = raw_post(&v1("order-1", 1000));
    let conn = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let (mut reader, mut writer) = conn.into_split();
    let requests = request.repeat(SENT);
    // The proxy stops reading requests once it cannot write answers, so this write may never
    // finish; it is not waited for.
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(requests.as_bytes()).await;
        writer
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    // The proxy closes with requests unread, so the end may come as a reset, which can also
    // discard answers not yet read: only "not all of them" is certain.
    let mut seen = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut seen),
    )
    .await
    .expect("the proxy closes the connection")
    .ok();
    sender.abort();
    let answers = memchr::memmem::find_iter(&seen, b"HTTP/1.1 ").count();
    assert!(
        answers < SENT,
        "all {SENT} answers came: the stalled connection was kept"
    );
    // Other clients are served meanwhile and afterwards.
    let a = server.confirm_json("/confirm", &v1("order-1", 1)).await;
    assert_eq!(a.status, 200);
    server.stop().await;
}

/// The same close is logged: the requests on it were decided (and recorded), their answers
/// never taken.
#[tokio::test]
async fn a_connection_closed_with_answers_unread_is_logged() {
    use tokio::io::AsyncWriteExt;
    let reason = "x".repeat(3000);
    let rules = Rules::with(
        "default.yaml",
        &format!("rules:\n  - name: all\n    amount: {{ max: 1 }}\n    reason: {reason}\n"),
    );
    let proc = Process::serve(rules.path(), &["--idle-timeout", "1s"]).await;
    let conn = tokio::net::TcpStream::connect(proc.public).await.unwrap();
    let (_reader, mut writer) = conn.into_split();
    let requests = raw_post(&v1("order-1", 1000)).repeat(3000);
    let sender = tokio::spawn(async move {
        let _ = writer.write_all(requests.as_bytes()).await;
        writer
    });
    let line = proc.log_line_of("read none of its answers").await;
    sender.abort();
    assert!(
        line.contains("INFO") && line.contains("may not have been delivered"),
        "{line}"
    );
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_keep_alive_connections() {
    use tokio::io::AsyncWriteExt;
    let (server, _rules) = server_with_idle_timeout(std::time::Duration::from_secs(60)).await;
    let mut conn = tokio::net::TcpStream::connect(server.public).await.unwrap();
    conn.write_all(raw_post(&v1("order-1", 1000)).as_bytes())
        .await
        .unwrap();
    let answer = read_once(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(5), server.stop())
        .await
        .expect("stopped without waiting a minute for the idle connection");
    let (rest, _) = closed_after(&mut conn).await;
    assert!(rest.is_empty());
}

#[tokio::test]
async fn a_body_announced_over_64_kib_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A 10 s deadline: a 413 that waited for the body would come far too late for the test.
    let rules = Rules::with(
        "default.yaml",
        "settings: { deadline: 10s }\nrules:\n  - name: any\n    amount: { min: 1 }\n    reason: r\n",
    );
    let server = Server::start(rules.path()).await;
    for expect in ["", "expect: 100-continue\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
        stream
            .write_all(format!("POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n{expect}\r\n{{\"imp").as_bytes())
            .await
            .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 413"), "{expect}: {text}");
        assert!(text.contains("x-confirm-decision-id"), "{text}");
        assert!(text.contains("connection: close"), "{text}");
    }
    server.stop().await;
}

/// A V1 body of exactly `len` bytes (padded with an extra field), approved by [`RULES`].
fn v1_of_length(len: usize) -> String {
    let head = r#"{"imp_uid":"i","merchant_uid":"m","amount":1000,"pad":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
}

/// Sends `body` chunked (no Content-Length, so only the read itself can find it too large);
/// the answer's status line.
async fn post_chunked(server: &Server, chunks: &[&[u8]]) -> String {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let mut request = b"POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for chunk in chunks {
        request.extend_from_slice(chunk);
    }
    stream.write_all(&request).await.unwrap();
    let (answer, _) = closed_after(&mut stream).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

/// Security review: a request framed both by Content-Length and by chunked Transfer-Encoding is
/// read by the chunks, and its connection is closed after the answer (RFC 9112 §6.3), so a
/// front proxy that framed it by the length cannot slip a second request in behind it.
#[tokio::test]
async fn a_request_framed_two_ways_is_read_by_its_chunks_and_its_connection_closed() {
    use tokio::io::AsyncWriteExt;
    let (_rules, server) = server().await;
    let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    let mut request = b"POST /confirm HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunk(&v1("order-1", 1000)));
    request.extend_from_slice(b"0\r\n\r\n");
    request.extend_from_slice(raw_post(&v1("order-2", 1000)).as_bytes());
    stream.write_all(&request).await.unwrap();
    let (answer, _) = closed_after(&mut stream).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
    server.stop().await;
}

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

/// 64 KiB is the largest body read (413 is for a body *over* it), announced with a
/// Content-Length or not; one byte more is a 413 either way, also when only the read finds
/// it; a body the HTTP layer cannot read for another reason is a 400, not a 413.
#[tokio::test]
async fn the_body_limit_is_exact_whether_announced_or_chunked() {
    let (_rules, server) = server().await;
    let url = server.url("/confirm");
    let limit = confirm_proxy::payload::MAX_BODY;

    let a = post(&url, Some("application/json"), v1_of_length(limit)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let a = post(&url, Some("application/json"), v1_of_length(limit + 1)).await;
    assert_eq!(a.status, 413, "{:?}", a.body);

    for (len, status) in [(limit, "200"), (limit + 1, "413")] {
        let body = v1_of_length(len);
        let (first, rest) = body.split_at(len / 2);
        let line = post_chunked(&server, &[&chunk(first), &chunk(rest), b"0\r\n\r\n"]).await;
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "{len}: {line}"
        );
    }
    // A chunk size that is not hexadecimal: broken framing inside the body.
    let line = post_chunked(&server, &[b"zz\r\n{}\r\n0\r\n\r\n"]).await;
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
    server.stop().await;
}

#[tokio::test]
async fn a_request_head_over_16_kib_is_refused_and_a_body_near_64_kib_still_passes() {
    let (_rules, server) = server().await;
    let url = format!("http://{}/confirm", server.public);
    // The body goes through the same 16 KiB read buffer, in pieces.
    let near_limit = format!(
        r#"{{"imp_uid":"i","merchant_uid":"m","amount":50000,"pad":"{}"}}"#,
        "x".repeat(63 * 1024)
    );
    let a = post(&url, Some("application/json"), near_limit).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    // Security review: a head of hundreds of KiB was buffered whole for every connection.
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-padding", "y".repeat(17 * 1024))
        .body(v1("order-1", 1000))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 431);
    let a = server.confirm_json("/confirm", &v1("order-1", 1000)).await;
    assert_eq!(a.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_client_that_never_finishes_its_request() {
    use tokio::io::AsyncWriteExt;
    // Deadline 500 ms: shutdown waits that long plus 1 s at most, not the 60 s.
    let (server, _rules) = server_with_idle_timeout(std::time::Duration::from_secs(60)).await;
    let mut slow = tokio::net::TcpStream::connect(server.public).await.unwrap();
    slow.write_all(b"POST /confirm HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Let the proxy read what was sent.
    let a = server.confirm_json("/confirm", &v1("order-1", 1000)).await;
    assert_eq!(a.status, 200);
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(20), server.stop())
        .await
        .expect("stopped without waiting for the idle timeout");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// The audited ambiguity: a body naming a field twice was read last-wins, while a merchant that
/// a `forward` sends it to may take the first. It is refused with 400 naming the field, JSON
/// and form alike, and logged like every other answer.
#[tokio::test]
async fn a_body_naming_a_field_twice_is_refused_with_400() {
    let rules = Rules::with("default.yaml", RULES);
    let (server, log) = logged(&rules).await;
    let url = server.url("/confirm");
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            r#"{"imp_uid":"i","merchant_uid":"legacy-1","merchant_uid":"o","amount":5000}"#,
            Some("application/json"),
            "merchant_uid",
        ),
        (
            r#"{"imp_uid":"i","merchant_uid":"legacy-1","merchant\u005fuid":"o","amount":5000}"#,
            Some("application/json"),
            "merchant_uid",
        ),
        (
            r#"{"type":"Transaction.Confirm","data":{"paymentId":"p","transactionId":"t","totalAmount":1000,"totalAmount":1}}"#,
            None,
            "data.totalAmount",
        ),
        (
            "merchant_uid=legacy-1&merchant_uid=o&imp_uid=i&amount=5000",
            Some("application/x-www-form-urlencoded"),
            "merchant_uid",
        ),
        (
            "merchant_uid=o&imp_uid=i&amount=5000&amount=500",
            None,
            "amount",
        ),
    ];
    let mut answers = Vec::new();
    for (body, ct, field) in cases {
        let a = post(&url, *ct, body.to_string()).await;
        assert_eq!(
            (a.status, a.decision()),
            (400, "reject"),
            "{body}: {:?}",
            a.body
        );
        assert!(
            a.reason().contains(field) && a.reason().contains("중복"),
            "{body}: reason {:?} should name {field}",
            a.reason()
        );
        assert_eq!(a.body["errorMessage"], a.body["reason"]);
        assert_answer_headers(&a);
        answers.push(a);
    }
    // Without the repeat the same request is approved.
    let a = server
        .confirm_json(
            "/confirm",
            r#"{"imp_uid":"i","merchant_uid":"o","amount":5000}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    server.stop().await;
    for a in &answers {
        let r = record(&log, &a.decision_id());
        assert_eq!(r["status"], 400);
        assert_eq!(r["reason"], a.reason());
    }
}

#[tokio::test]
async fn a_caller_that_hangs_up_mid_forward_still_gets_its_decision_recorded() {
    let (shop, rules) = slow_merchant(std::time::Duration::from_secs(1)).await;
    let (server, log) = logged(&rules).await;
    hang_up_mid_forward(&server.url("/confirm"), &shop, "gone-1").await;
    // The merchant has seen the forward: the decision is made and recorded all the same.
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            !records_of(&log, "gone-1").is_empty()
        })
        .await,
        "no decision-log line for a request whose caller hung up"
    );
    let metrics = get(&server.admin_url("/metrics")).await;
    server.stop().await;
    let records = records_of(&log, "gone-1");
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["decision"], "approve", "{r}");
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["trace"][0]["rule"], "existing-confirm", "{r}");
    assert_eq!(r["trace"][0]["outcome"], "pass", "{r}");
    let text = metrics.body.as_str().unwrap();
    assert_eq!(
        metric(
            text,
            r#"confirm_proxy_requests_total{ruleset="default",decision="approve"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_waits_for_an_evaluation_whose_caller_hung_up() {
    let (shop, rules) = slow_merchant(std::time::Duration::from_secs(1)).await;
    let (server, log) = logged(&rules).await;
    hang_up_mid_forward(&server.url("/confirm"), &shop, "gone-2").await;
    // No connection is left open, yet the evaluation is still waiting for the merchant.
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown did not finish within the grace period");
    let stopping = started.elapsed();
    let records = records_of(&log, "gone-2");
    assert_eq!(
        records.len(),
        1,
        "stopped after {stopping:?} without the decision: {records:?}"
    );
    assert_eq!(records[0]["decision"], "approve", "{}", records[0]);
    assert_eq!(records[0]["trace"][0]["outcome"], "pass", "{}", records[0]);
}

/// A connection still sending its request head at the end of the grace period is closed,
/// not left open: a request whose head came in after the decision log was drained would be
/// answered, and its record lost without a count.
#[tokio::test]
async fn a_connection_still_sending_its_head_is_closed_at_the_end_of_the_grace_period() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rules = Rules::with(
        "default.yaml",
        "settings: { deadline: 200ms }\nrules:\n  - { name: limit, amount: { max: 10000 }, reason: x }\n",
    );
    let (server, log) = logged(&rules).await;
    let mut conn = tokio::net::TcpStream::connect(server.public).await.unwrap();
    conn.write_all(b"POST /confirm HTTP/1.1\r\nHost: proxy\r\n")
        .await
        .unwrap();
    // The grace period is the longest deadline and a second.
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown did not finish within the grace period");
    // The rest of the head and a body now: nobody answers, the connection is closed.
    let body = v1("too-late", 5);
    let rest = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(rest.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the connection was left open after the shutdown");
    assert!(
        read.is_err() || answer.is_empty(),
        "answered after the shutdown: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(records_of(&log, "too-late").is_empty());
}

#[tokio::test]
async fn shutdown_grace_covers_a_request_on_an_older_rules_generation() {
    // Start-up rules with a short deadline; then a generation with a long one takes a request
    // that waits 2.5 s for the merchant; then the short one is back, and the proxy is stopped.
    const SHORT: &str = "settings: { deadline: 500ms }\nrules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: x\n";
    let (shop, slow_rules) = slow_merchant(std::time::Duration::from_millis(2500)).await;
    let slow = std::fs::read_to_string(slow_rules.path().join("default.yaml")).unwrap();
    let rules = Rules::with("default.yaml", SHORT);
    let (server, log) = logged(&rules).await;
    let reload = |yaml: String| {
        rules.write("default.yaml", &yaml);
        let url = server.admin_url("/admin/reload");
        async move {
            let a = post(&url, None, "").await;
            assert_eq!(
                (a.status, &a.body["applied"]),
                (200, &true.into()),
                "{:?}",
                a.body
            );
        }
    };
    reload(slow).await;
    let url = server.url("/confirm");
    let in_flight =
        tokio::spawn(async move { post(&url, Some("application/json"), v1("old-gen", 5)).await });
    assert!(
        eventually(std::time::Duration::from_secs(3), || async {
            shop.calls_to(MERCHANT_CONFIRM) == 1
        })
        .await
    );
    reload(SHORT.to_owned()).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown did not finish");
    // Stopped only once the request was answered and recorded: the current rules' grace
    // (500 ms + 1 s) would have cut it off.
    let records = records_of(&log, "old-gen");
    assert_eq!(records.len(), 1, "{records:?}");
    let answer = in_flight.await.unwrap();
    assert_eq!((answer.status, answer.decision()), (200, "approve"));
    assert_eq!(records[0]["decision_id"], answer.decision_id());
}

/// A record names the ruleset that answered, and `unknown` for a name that is not loaded (as
/// metrics do: that name is the caller's), whichever guard answered.
#[tokio::test]
async fn each_record_names_the_ruleset_that_answered_or_unknown() {
    let rules = two_rulesets();
    let (server, log) = logged(&rules).await;
    let answers = [
        (
            "default",
            server.confirm_json("/confirm", &v1("o-1", 5000)).await,
        ),
        (
            "marathon",
            server
                .confirm_json("/confirm/marathon", &v1("o-2", 5000))
                .await,
        ),
        ("marathon", get(&server.url("/confirm/marathon")).await),
        (
            "unknown",
            server.confirm_json("/confirm/nope", &v1("o-3", 5000)).await,
        ),
    ];
    server.stop().await;
    let statuses: Vec<u16> = answers.iter().map(|(_, a)| a.status).collect();
    assert_eq!(statuses, [200, 403, 405, 404]);
    for (ruleset, a) in &answers {
        let r = record(&log, &a.decision_id());
        assert_eq!(r["ruleset"], *ruleset, "{r}");
    }
}

/// `latency_ms` is the time the proxy took, in milliseconds: a merchant that answers a forward
/// after 1.1 s makes it at least 1100, and never more than the caller waited.
#[tokio::test]
async fn the_recorded_latency_is_the_time_taken_in_milliseconds() {
    let (_shop, rules) = slow_merchant(std::time::Duration::from_millis(1100)).await;
    let (server, log) = logged(&rules).await;
    let sent = std::time::Instant::now();
    let a = server.confirm_json("/confirm", &v1("slow-1", 5000)).await;
    let waited_ms = sent.elapsed().as_secs_f64() * 1000.0;
    server.stop().await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let r = record(&log, &a.decision_id());
    let latency_ms = r["latency_ms"].as_f64().unwrap();
    assert!(
        (1100.0..=waited_ms).contains(&latency_ms),
        "latency_ms {latency_ms}, the caller waited {waited_ms} ms"
    );
}

/// Rules evaluate at the request's arrival (`now`), the time the decision log records: a record
/// replayed with `eval --now TIME` falls on the same side of every sale window, however long the
/// body took to arrive.
#[tokio::test]
async fn rules_see_the_arrival_time_the_decision_log_records() {
    use tokio::io::AsyncWriteExt;
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: clock\n    script: now.rhai\n",
    );
    rules.write("now.rhai", "now.to_string()");
    let (server, log) = logged(&rules).await;
    let body = v1("o-1", 5000);
    let request = raw_request(
        "POST /confirm",
        "content-type: application/json\r\nconnection: close\r\n",
        &body,
    );
    // The head and half the body, then the rest a moment later.
    let (first, rest) = request.split_at(request.len() - body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let (answer, _) = closed_after(&mut stream).await;
    server.stop().await;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-confirm-decision-id: "))
        .unwrap();
    let reason = serde_json::from_str::<serde_json::Value>(body).unwrap()["reason"].clone();
    let r = record(&log, id);
    let time = chrono::DateTime::parse_from_rfc3339(r["time"].as_str().unwrap()).unwrap();
    assert_eq!(reason, time.timestamp_millis().to_string(), "{r}");
}

/// A 404 or 405 (of the confirm endpoints, or of a path or method not served at all) leaves
/// the request's body unread, and hyper ends a connection with a body left on it: such an
/// answer says `Connection: close`, so that a client pooling connections does not send its
/// next request into it. Without a body the connection stays open.
#[tokio::test]
async fn refusals_that_leave_a_body_unread_say_the_connection_closes() {
    use tokio::io::AsyncWriteExt;
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - name: any\n    amount: { min: 1 }\n    reason: r\n",
    );
    let server = Server::start(rules.path()).await;
    let body = "x".repeat(30_000);
    let with_body = |head: &str| raw_request(head, "", &body);
    for (request, status, closes) in [
        (with_body("POST /nope"), 404, true),
        (with_body("POST /healthz"), 405, true),
        (
            "GET /nope HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            404,
            false,
        ),
        (with_body("POST /confirm/nope"), 404, true),
        (with_body("PUT /confirm"), 405, true),
        (raw_request("POST /confirm/nope", "", ""), 404, false),
        (
            "GET /confirm HTTP/1.1\r\nhost: x\r\n\r\n".to_owned(),
            405,
            false,
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.public).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let text = read_once(&mut stream).await.to_ascii_lowercase();
        assert!(text.starts_with(&format!("http/1.1 {status}")), "{text}");
        assert_eq!(
            text.contains("connection: close"),
            closes,
            "{request:.40}: {text}"
        );
        if !closes {
            // The same connection answers the next request.
            let again = raw_post(&v1("o-1", 5000));
            stream.write_all(again.as_bytes()).await.unwrap();
            let answer = read_once(&mut stream).await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }
    server.stop().await;
}
