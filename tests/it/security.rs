//! Signed requests, source allow-lists, the admin token, metrics read back, the decision log
//! under SIGTERM, and secrets kept out of every output.

use std::time::{Duration, SystemTime};

use confirm_proxy::server::Config;
use confirm_proxy::webhook::{sign, WebhookSecret};
use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3MtaW50ZXJvcC1rZXkhISE=";
const RULES: &str =
    "rules:\n  - name: limit\n    amount: { max: 100000 }\n    reason: \"한도 초과\"\n";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Posts `body` signed as a new message: PortOne gives every message an id of its own.
async fn signed_post(url: &str, secret: &str, body: &[u8], timestamp: i64) -> Answer {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    signed_delivery(url, secret, &format!("msg_test_{n}"), body, timestamp).await
}

/// Posts `body` signed as message `id`: every delivery of one message carries the same id.
async fn signed_delivery(url: &str, secret: &str, id: &str, body: &[u8], timestamp: i64) -> Answer {
    signed_delivery_as(url, secret, id, body, timestamp, "application/json").await
}

/// [`signed_delivery`] with another `Content-Type`, which the signature does not cover.
async fn signed_delivery_as(
    url: &str,
    secret: &str,
    id: &str,
    body: &[u8],
    timestamp: i64,
    content_type: &str,
) -> Answer {
    let key = WebhookSecret::parse(secret).unwrap();
    let signature = sign(&key, id, timestamp, body);
    send(
        client()
            .post(url)
            .header("content-type", content_type)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec()),
    )
    .await
}

fn with_secrets(rules: &Rules, secrets: &[&str]) -> Config {
    let mut config = Config::new(rules.path().to_owned());
    config.webhook_secrets = secrets
        .iter()
        .map(|s| WebhookSecret::parse(s).unwrap())
        .collect();
    config
}

#[tokio::test]
async fn signed_v2_requests_pass_and_everything_else_gets_401() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let url = server.url("/confirm");
    let body = testdata("v2-2024-04-25.json");
    assert_eq!(signed_post(&url, SECRET, &body, now()).await.status, 200);

    let a = signed_post(&url, NEW_SECRET, &body, now()).await;
    assert_eq!((a.status, a.reason()), (401, "서명이 올바르지 않습니다"));
    assert_eq!(
        signed_post(&url, SECRET, &body, now() - 600).await.status,
        401,
        "outside ±5 min"
    );
    // Unsigned V1 (PortOne V1 does not sign) and unsigned ignored V2 types are refused too.
    let a = post(&url, Some("application/json"), testdata("v1.json")).await;
    assert_eq!(a.status, 401);
    assert!(a.reason().contains("webhook-"), "{:?}", a.body);
    assert_eq!(
        post(
            &url,
            Some("application/json"),
            testdata("v2-2024-04-25-other-type.json")
        )
        .await
        .status,
        401
    );
    assert_eq!(
        get(&server.url("/healthz")).await.status,
        200,
        "/healthz stays open for load balancers"
    );
    server.stop().await;
}

/// Both secrets verify during a rotation, and the metrics say which one did: the old one's
/// count stops growing once PortOne signs with the new one alone.
#[tokio::test]
async fn two_secrets_allow_rotation() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start_with(with_secrets(&rules, &[SECRET, NEW_SECRET])).await;
    // Each secret's series is there from the start, at 0: a rate over it reads 0, not nothing.
    let text = server.metrics().await;
    for secret in ["1", "2"] {
        let series = format!("confirm_proxy_signatures_verified_total{{secret=\"{secret}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{text}");
    }
    let body = testdata("v2-2024-01-01.json");
    for secret in [SECRET, NEW_SECRET, NEW_SECRET] {
        assert_eq!(
            signed_post(&server.url("/confirm"), secret, &body, now())
                .await
                .status,
            200
        );
    }
    let text = server.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"confirm_proxy_signatures_verified_total{secret="1"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"confirm_proxy_signatures_verified_total{secret="2"}"#
        ),
        Some(2.0),
        "{text}"
    );
    server.stop().await;
}

/// A V2 confirm message for `order_id` of `amount`.
fn v2(order_id: &str, amount: i64) -> Vec<u8> {
    serde_json::json!({
        "type": "Transaction.Confirm",
        "timestamp": "2026-12-02T10:00:00.000Z",
        "data": {"paymentId": order_id, "storeId": "store-1", "transactionId": format!("tx-{order_id}"), "totalAmount": amount}
    })
    .to_string()
    .into_bytes()
}

/// Rules that refuse amounts over 100,000, then forward to `shop`'s confirm handler (a
/// [`merchant`]).
fn forwarding(shop: &MockUpstream, settings: &str) -> String {
    format!(
        "settings: {{ {settings} }}\nupstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - name: limit\n    amount: {{ max: 100000 }}\n    reason: \"한도 초과\"\n  - name: existing\n    forward: {{ upstream: shop, path: {MERCHANT_CONFIRM} }}\n",
        shop.url()
    )
}

/// Standard Webhooks keeps a message's id for every delivery of it. A second delivery gets
/// the first one's answer, approval or refusal, under a decision id of its own, and the rules
/// (here a `forward` to the merchant) do not run again.
#[tokio::test]
async fn a_repeated_message_is_answered_as_its_first_delivery_without_running_the_rules_again() {
    let shop = merchant(Duration::ZERO).await;
    let rules = Rules::with("default.yaml", &forwarding(&shop, "deadline: 2s"));
    let log = rules.path().join("decisions.jsonl");
    let mut config = with_secrets(&rules, &[SECRET]);
    config.decision_log = Some(log.clone());
    let server = Server::start_with(config).await;
    let url = server.url("/confirm");
    let (ts, approved, refused) = (now(), v2("order-1", 5000), v2("order-2", 500_000));

    let first = signed_delivery(&url, SECRET, "msg_a", &approved, ts).await;
    let again = signed_delivery(&url, SECRET, "msg_a", &approved, ts).await;
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(first.body, again.body);
    assert_eq!(
        shop.calls_to(MERCHANT_CONFIRM),
        1,
        "the merchant is asked once"
    );
    assert_ne!(first.decision_id(), again.decision_id());

    let no = signed_delivery(&url, SECRET, "msg_b", &refused, ts).await;
    let no_again = signed_delivery(&url, SECRET, "msg_b", &refused, ts).await;
    assert_eq!((no.status, no.reason()), (409, "한도 초과"));
    assert_eq!((no_again.status, &no_again.body), (409, &no.body));
    // A new message is evaluated, even with the body of an earlier one.
    let other = signed_delivery(&url, SECRET, "msg_c", &approved, ts).await;
    assert_eq!(other.status, 200);
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 2);

    let text = server.metrics().await;
    assert!(
        text.contains("# TYPE confirm_proxy_delivery_ids gauge\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP confirm_proxy_delivery_ids "),
        "{text}"
    );
    let value = |series: &str| metric(&text, series);
    assert_eq!(
        value(r#"confirm_proxy_repeated_deliveries_total{answer="answered"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(r#"confirm_proxy_requests_total{ruleset="default",decision="approve"}"#),
        Some(3.0)
    );
    assert_eq!(
        value("confirm_proxy_delivery_ids_forgotten_total"),
        Some(0.0)
    );
    assert_eq!(
        value("confirm_proxy_delivery_ids"),
        Some(3.0),
        "msg_a, msg_b, msg_c"
    );
    server.stop().await;

    let r = record(&log, &again.decision_id());
    assert_eq!(r["repeat_of"], first.decision_id().as_str(), "{r}");
    assert_eq!(
        (&r["decision"], &r["status"]),
        (&Value::from("approve"), &Value::from(200))
    );
    assert_eq!(r["trace"], serde_json::json!([]), "no rule ran: {r}");
    assert_eq!(
        r["order_id"], "order-1",
        "the request, for an operator's search: {r}"
    );
    let r = record(&log, &no_again.decision_id());
    assert_eq!(r["repeat_of"], no.decision_id().as_str(), "{r}");
    assert_eq!(
        (&r["reason"], &r["rule"]),
        (&Value::from("한도 초과"), &Value::from("limit"))
    );
    assert!(record(&log, &first.decision_id())
        .get("repeat_of")
        .is_none());
}

/// Sends message `id` in a task of its own and returns once `shop` has it: the delivery is then
/// claimed, and waits on the merchant's answer.
async fn waiting_at_the_merchant(
    shop: &MockUpstream,
    url: &str,
    id: &str,
    body: &[u8],
    ts: i64,
) -> tokio::task::JoinHandle<Answer> {
    let (url, id, body) = (url.to_owned(), id.to_owned(), body.to_vec());
    let delivery = tokio::spawn(async move { signed_delivery(&url, SECRET, &id, &body, ts).await });
    let asked = eventually(Duration::from_secs(5), || async {
        shop.calls_to(MERCHANT_CONFIRM) == 1
    })
    .await;
    assert!(asked, "the first delivery reaches the merchant");
    delivery
}

/// A repeat that arrives while its first delivery waits on the merchant waits for that answer
/// instead of calling the merchant alongside it.
#[tokio::test]
async fn a_repeat_arriving_during_its_first_delivery_waits_for_that_answer() {
    let shop = merchant(Duration::from_millis(300)).await;
    let rules = Rules::with("default.yaml", &forwarding(&shop, "deadline: 2s"));
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (url, body, ts) = (server.url("/confirm"), v2("order-1", 5000), now());
    let first = waiting_at_the_merchant(&shop, &url, "msg_a", &body, ts).await;
    let again = signed_delivery(&url, SECRET, "msg_a", &body, ts).await;
    let first = first.await.unwrap();
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 1);
    server.stop().await;
}

/// The signature does not cover the path: a message PortOne sent to one confirm URL, sent again
/// to another ruleset, is a replay and refused.
#[tokio::test]
async fn a_message_repeated_to_another_ruleset_is_refused() {
    let rules = Rules::with("default.yaml", RULES);
    rules.write("marathon.yaml", RULES);
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (body, ts) = (v2("order-1", 5000), now());
    let first = signed_delivery(&server.url("/confirm"), SECRET, "msg_a", &body, ts).await;
    assert_eq!(first.status, 200);
    let elsewhere =
        signed_delivery(&server.url("/confirm/marathon"), SECRET, "msg_a", &body, ts).await;
    assert_eq!(
        (elsewhere.status, elsewhere.reason()),
        (401, "다른 결제 확인 경로로 이미 받은 요청입니다")
    );
    server.stop().await;
}

/// A signed message sent ahead with a `Content-Type` it cannot be read as (the signature does
/// not cover headers) gets its 415 or 400, and is not remembered: PortOne's own delivery of it
/// is evaluated.
#[tokio::test]
async fn a_message_first_sent_with_a_wrong_content_type_is_evaluated_when_it_comes_right() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (url, body, ts) = (server.url("/confirm"), v2("order-1", 5000), now());
    let ahead = signed_delivery_as(&url, SECRET, "msg_a", &body, ts, "text/plain").await;
    assert_eq!(ahead.status, 415, "{:?}", ahead.body);
    let as_form = signed_delivery_as(
        &url,
        SECRET,
        "msg_a",
        &body,
        ts,
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(as_form.status, 400, "{:?}", as_form.body);
    let real = signed_delivery(&url, SECRET, "msg_a", &body, ts).await;
    assert_eq!(real.status, 200, "{:?}", real.body);
    // From then on, a repeat is answered as that delivery was; a copy with another type is
    // evaluated on its own.
    let repeat = signed_delivery(&url, SECRET, "msg_a", &body, ts).await;
    assert_eq!(repeat.status, 200, "{:?}", repeat.body);
    let other = signed_delivery_as(&url, SECRET, "msg_a", &body, ts, "text/plain").await;
    assert_eq!(other.status, 415, "{:?}", other.body);
    server.stop().await;
}

/// The signature does not cover the `Content-Type`, which decides how the body reads: a V2
/// body whose `paymentId` holds `&amount=1&` would read, as a form, as a V1 payment of 1. A
/// copy sent ahead that way is refused as JSON labelled as a form, and does not make PortOne's
/// own delivery of the message (JSON, 5,000,000) a repeat of its answer: that one is
/// evaluated, and refused.
#[tokio::test]
async fn a_copy_sent_ahead_as_a_form_does_not_answer_for_the_json_delivery() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - { name: cap, amount: { max: 1000 }, reason: \"한도 초과\" }\n",
    );
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (url, ts) = (server.url("/confirm"), now());
    let body = br#"{"type":"Transaction.Confirm","timestamp":"2026-12-02T10:00:00.000Z","data":{"paymentId":"o-1&imp_uid=i&merchant_uid=o-1&amount=1&","storeId":"store-1","transactionId":"tx-1","totalAmount":5000000}}"#;
    let form = "application/x-www-form-urlencoded";
    let ahead = signed_delivery_as(&url, SECRET, "msg_f", body, ts, form).await;
    assert_eq!(
        ahead.status, 400,
        "read as a V1 form of 1: {:?}",
        ahead.body
    );
    let real = signed_delivery(&url, SECRET, "msg_f", body, ts).await;
    assert_eq!(
        (real.status, real.reason()),
        (409, "한도 초과"),
        "{:?}",
        real.body
    );
    let again = signed_delivery(&url, SECRET, "msg_f", body, ts).await;
    assert_eq!(again.status, 409);
    let again = signed_delivery_as(&url, SECRET, "msg_f", body, ts, form).await;
    assert_eq!(again.status, 400);
    server.stop().await;
}

/// A copy without a `Content-Type` reads as the JSON it is: a repeat of the JSON delivery,
/// answered as it was, not a message of its own that calls the merchant again.
#[tokio::test]
async fn a_copy_without_a_content_type_is_a_repeat_of_the_json_delivery() {
    let shop = merchant(Duration::ZERO).await;
    let rules = Rules::with("default.yaml", &forwarding(&shop, ""));
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (url, body, ts) = (server.url("/confirm"), v2("order-1", 5000), now());
    let first = signed_delivery(&url, SECRET, "msg_n", &body, ts).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let bare = signed_delivery_as(&url, SECRET, "msg_n", &body, ts, "").await;
    assert_eq!(bare.status, 200, "{:?}", bare.body);
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 1);
    server.stop().await;
}

/// A `forward` passes the `Content-Type` on as it came, and a merchant's handler may read a
/// body labelled with another charset otherwise than the proxy (which reads UTF-8): a copy so
/// labelled, sent ahead, is a message of its own, and PortOne's own delivery is evaluated
/// (the merchant called again), not answered as that copy was. Security trial: the copy's
/// approval was given to PortOne's delivery.
#[tokio::test]
async fn a_copy_labelled_with_another_charset_does_not_answer_for_the_delivery() {
    let shop = merchant(Duration::ZERO).await;
    let rules = Rules::with("default.yaml", &forwarding(&shop, ""));
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let (url, body, ts) = (server.url("/confirm"), v2("order-1", 5000), now());
    let latin = "application/json; charset=iso-8859-1";
    let ahead = signed_delivery_as(&url, SECRET, "msg_c", &body, ts, latin).await;
    assert_eq!(ahead.status, 200, "{:?}", ahead.body);
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 1);
    let utf8 = "application/json; charset=utf-8";
    let real = signed_delivery_as(&url, SECRET, "msg_c", &body, ts, utf8).await;
    assert_eq!(real.status, 200, "{:?}", real.body);
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 2, "evaluated on its own");
    // Without a charset, or with UTF-8 named otherwise, it is a repeat of the delivery.
    for same in ["application/json", "Application/JSON; Charset=\"UTF-8\""] {
        let repeat = signed_delivery_as(&url, SECRET, "msg_c", &body, ts, same).await;
        assert_eq!(repeat.status, 200, "{same}: {:?}", repeat.body);
    }
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 2);
    server.stop().await;
}

/// Every delivery of a message carries its body unchanged: another body under a remembered id
/// was never checked, and gets neither the first delivery's approval nor an evaluation. Both
/// records name the webhook id, and the refusal's names its request, so that an operator can
/// put the two side by side.
#[tokio::test]
async fn a_message_repeated_with_another_body_is_refused() {
    let rules = Rules::with("default.yaml", RULES);
    let log = rules.path().join("decisions.jsonl");
    let mut config = with_secrets(&rules, &[SECRET]);
    config.decision_log = Some(log.clone());
    let server = Server::start_with(config).await;
    let (url, ts) = (server.url("/confirm"), now());
    let first = signed_delivery(&url, SECRET, "msg_a", &v2("order-1", 5000), ts).await;
    assert_eq!(first.status, 200);
    let altered = signed_delivery(&url, SECRET, "msg_a", &v2("order-2", 5000), ts).await;
    assert_eq!(
        (altered.status, altered.reason()),
        (
            401,
            "이미 받은 요청과 같은 id로 다른 내용의 요청이 왔습니다"
        )
    );
    assert_repeats(&server, "other_body", 1).await;
    server.stop().await;
    let first = record(&log, &first.decision_id());
    let altered = record(&log, &altered.decision_id());
    assert_eq!(first["webhook_id"], "msg_a", "{first}");
    assert_eq!(altered["webhook_id"], "msg_a", "{altered}");
    assert_eq!(
        (&first["order_id"], &altered["order_id"]),
        (&Value::from("order-1"), &Value::from("order-2"))
    );
    // The refusal says why, and `replay` leaves it out: no rule decided it.
    assert_eq!(altered["repeat_refused"], "other_body", "{altered}");
    let (code, stdout, _) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with("1 replayed: 0 changed, 1 unchanged; 1 not decided by rules"),
        "{stdout}"
    );
}

/// The log line of such a refusal names the message id, so the two deliveries can be found.
#[tokio::test]
async fn a_refused_repeat_is_logged_with_its_message_id() {
    let rules = Rules::with("default.yaml", RULES);
    let proc = Process::serve_env(
        rules.path(),
        &[],
        &[("CONFIRM_PROXY_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let (url, ts) = (proc.url("/confirm"), now());
    assert_eq!(
        signed_delivery(&url, SECRET, "msg_log", &v2("order-1", 5000), ts)
            .await
            .status,
        200
    );
    let altered = signed_delivery(&url, SECRET, "msg_log", &v2("order-2", 5000), ts).await;
    assert_eq!(altered.status, 401);
    let id = altered.decision_id();
    let logged = eventually(Duration::from_secs(3), || async {
        proc.log_text().lines().any(|l| {
            l.contains("webhook message already received with another body")
                && l.contains(&format!("decision_id={id}"))
                && l.contains("webhook_id=msg_log")
        })
    })
    .await;
    assert!(logged, "{}", proc.log_text());
    // The first delivery's decision line names it too.
    assert!(
        proc.log_text().lines().any(|l| l.contains(" decision ")
            && l.contains("order_id=order-1")
            && l.contains("webhook_id=msg_log")),
        "{}",
        proc.log_text()
    );
}

/// A trial could not list the buyers a wrong secret refused, nor tell a sender's clock adrift:
/// a refused signature's line says the id, source, order and timestamp age it claims, and its
/// record the same (but the age).
#[tokio::test]
async fn a_refused_signature_is_logged_with_what_the_request_claims() {
    let rules = Rules::with("default.yaml", RULES);
    let log = rules.path().join("decisions.jsonl");
    let proc = Process::serve_env(
        rules.path(),
        &["--decision-log", log.to_str().unwrap()],
        &[("CONFIRM_PROXY_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let url = proc.url("/confirm");
    let wrong = signed_delivery(&url, NEW_SECRET, "msg_wrong", &v2("order-7", 5000), now()).await;
    assert_eq!(wrong.status, 401);
    let stale = signed_delivery(&url, SECRET, "msg_stale", &v2("order-8", 5000), now() - 400).await;
    assert_eq!(stale.status, 401);
    let line = |id: String, also: &'static str| {
        let proc = &proc;
        async move {
            eventually(Duration::from_secs(3), || async {
                proc.log_text().lines().any(|l| {
                    l.contains("webhook signature refused")
                        && l.contains(&format!("decision_id={id}"))
                        && l.contains("source=127.0.0.1")
                        && l.contains(also)
                })
            })
            .await
        }
    };
    assert!(
        line(wrong.decision_id(), "webhook_id=msg_wrong").await,
        "{}",
        proc.log_text()
    );
    assert!(
        line(stale.decision_id(), "order_id=order-8").await,
        "{}",
        proc.log_text()
    );
    let age = proc
        .log_text()
        .lines()
        .find(|l| l.contains("webhook_id=msg_stale"))
        .and_then(|l| l.split("timestamp_age_s=").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap();
    assert!((399..=402).contains(&age), "{age}");
    proc.signal("TERM");
    let logged = eventually(Duration::from_secs(5), || async {
        records_so_far(&log).len() == 2
    })
    .await;
    assert!(logged);
    let r = record(&log, &wrong.decision_id());
    assert_eq!(
        (&r["status"], &r["webhook_id"], &r["source"], &r["order_id"]),
        (
            &json!(401),
            &json!("msg_wrong"),
            &json!("127.0.0.1"),
            &json!("order-7")
        ),
        "{r}"
    );
    // No rule decided them: `replay` passes them over (a review saw them "changed" to 409).
    assert_eq!(r["guard"], "signature", "{r}");
    // Anyone may send them: the record keeps the ids claimed, not the body (a review: 64 KiB
    // records at will).
    assert!(r.get("request").is_none(), "{r}");
    let (code, out, err) = replay(&rules, &log, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 not decided by rules"), "{out}{err}");
}

/// A repeat is never approved unless its first delivery was: when the first is still waiting
/// on the merchant at the repeat's own deadline (shortened here by a reload in between), the
/// repeat is refused, and the first delivery still gets its own answer.
#[tokio::test]
async fn a_repeat_whose_first_delivery_is_unanswered_by_its_deadline_is_refused() {
    let shop = merchant(Duration::from_millis(1500)).await;
    let rules = Rules::with("default.yaml", &forwarding(&shop, "deadline: 2s"));
    let mut config = with_secrets(&rules, &[SECRET]);
    config.watch = false;
    let server = Server::start_with(config).await;
    let (url, body, ts) = (server.url("/confirm"), v2("order-1", 5000), now());
    let first = waiting_at_the_merchant(&shop, &url, "msg_a", &body, ts).await;
    rules.write(
        "default.yaml",
        &forwarding(&shop, "deadline: 200ms, reject_status: 503"),
    );
    let reload = client()
        .post(server.admin_url("/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    let started = std::time::Instant::now();
    let again = signed_delivery(&url, SECRET, "msg_a", &body, ts).await;
    let waited = started.elapsed();
    assert_eq!(
        (again.status, again.reason()),
        (
            503,
            "같은 결제 확인 요청을 처리하고 있습니다. 잠시 후 다시 시도해 주세요."
        )
    );
    // Well before the first delivery's answer (1.5 s), with room for a busy machine.
    assert!(
        waited < Duration::from_millis(1200),
        "answered by its 200 ms deadline: {waited:?}"
    );
    assert_eq!(
        first.await.unwrap().status,
        200,
        "the first delivery is answered on its own rules"
    );
    assert_eq!(shop.calls_to(MERCHANT_CONFIRM), 1);
    assert_repeats(&server, "unanswered", 1).await;
    server.stop().await;
}

#[tokio::test]
async fn allow_from_refuses_other_sources() {
    let rules = Rules::with("default.yaml", RULES);
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["127.0.0.0/8".parse().unwrap()];
    let server = Server::start_with(config).await;
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5)).await.status,
        200
    );
    server.stop().await;

    let log = rules.path().join("decisions.jsonl");
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    config.decision_log = Some(log.clone());
    let server = Server::start_with(config).await;
    let a = server.confirm_json("/confirm", &v1("o", 5)).await;
    assert_eq!((a.status, a.decision()), (403, "reject"));
    assert_eq!(get(&server.url("/healthz")).await.status, 200);
    // Counted under the ruleset it was sent to: the name is a loaded one, not the caller's choice.
    let text = server.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"confirm_proxy_requests_total{ruleset="default",decision="reject"}"#
        ),
        Some(1.0),
        "{text}"
    );
    server.stop().await;
    // The record names the address refused: the sender to add, or to block further up.
    let r = record(&log, &a.decision_id());
    assert_eq!(
        (&r["status"], &r["source"]),
        (&json!(403), &json!("127.0.0.1"))
    );
}

/// A source `--allow-from` refuses can hold no connection for long: its 403 closes the
/// connection, and a connection of its that sends nothing is closed after 5 s instead of the
/// idle timeout, which allowed sources keep. (Both from loopback: the allowed one from
/// 127.0.0.2, which Linux lets a client bind.)
#[tokio::test]
async fn a_refused_source_holds_no_connection_for_long() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rules = Rules::with("default.yaml", RULES);
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["127.0.0.2/32".parse().unwrap()];
    config.idle_timeout = Duration::from_secs(60);
    let server = Server::start_with(config).await;
    let connect_from = |ip: &str| {
        let (ip, to) = (ip.parse().unwrap(), server.public);
        async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
            socket.connect(to).await.unwrap()
        }
    };

    let request = raw_post(&v1("o", 5));
    let mut refused = connect_from("127.0.0.1").await;
    refused.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), refused.read_to_end(&mut answer))
        .await
        .expect("closed after the answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 403"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");

    let mut allowed = connect_from("127.0.0.2").await;
    let mut silent = connect_from("127.0.0.1").await;
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut rest))
        .await
        .expect("closed long before the 60 s idle timeout")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4), "closed after {took:?}");
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), allowed.read(&mut byte))
            .await
            .is_err(),
        "the allowed source's connection stays open"
    );
    allowed.write_all(request.as_bytes()).await.unwrap();
    let answer = read_once(&mut allowed).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn allow_from_ipv6() {
    let rules = Rules::with("default.yaml", RULES);
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["::1/128".parse().unwrap()];
    let server = Server::start_on(config, "[::1]:0").await;
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5)).await.status,
        200
    );
    server.stop().await;

    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["2001:db8::/32".parse().unwrap()];
    let server = Server::start_on(config, "[::1]:0").await;
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5)).await.status,
        403
    );
    server.stop().await;
}

/// The binary's own flags, as operators set them in the environment: bare addresses (as PortOne
/// publishes them) are single-host networks, a switch takes `1` as well as `true`, and the
/// start-up log says which protections are on.
#[tokio::test]
async fn allow_from_takes_bare_addresses_from_the_environment() {
    let rules = Rules::with("default.yaml", RULES);
    let proc = Process::serve_env(
        rules.path(),
        &[],
        &[
            ("CONFIRM_PROXY_ALLOW_FROM", "127.0.0.1, 2001:db8::7"),
            ("CONFIRM_PROXY_TRUST_FORWARDED_FOR", "1"),
        ],
    )
    .await;
    let send = |xff: Option<&'static str>| {
        let url = proc.url("/confirm");
        async move {
            let mut req = client()
                .post(url)
                .header("content-type", "application/json")
                .body(v1("o", 5));
            if let Some(xff) = xff {
                req = req.header("x-forwarded-for", xff);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(send(Some("127.0.0.1")).await, 200);
    assert_eq!(
        send(None).await,
        403,
        "no header: the peer is the load balancer"
    );
    assert_eq!(send(Some("2001:db8::7")).await, 200);
    assert_eq!(send(Some("[2001:db8::7]")).await, 200, "bracketed, no port");
    assert_eq!(send(Some("[2001:db8::7]:443")).await, 200);
    assert_eq!(send(Some("127.0.0.2")).await, 403, "/32, not /8");
    let log = proc.log_text();
    assert!(
        log.contains("allow_from=127.0.0.1/32,2001:db8::7/128 trust_forwarded_for=true"),
        "{log}"
    );
    // The rest of what the go-live checklist asks about is on the same line.
    let line = log.lines().find(|l| l.contains("protections")).unwrap();
    for part in [
        "decision_log_approvals=all",
        "idle_timeout=75s",
        "admin_listen=127.0.0.1:",
    ] {
        assert!(line.contains(part), "{part}: {line}");
    }
}

/// Audit: `--trust-forwarded-for` read the header from any connection, so a client reaching
/// the listener around the load balancer could name itself an allowed source. With
/// `--forwarded-by`, only the balancers' header is read; any other peer is judged by its own
/// address (and a refused one keeps no connection).
#[tokio::test]
async fn forwarded_by_reads_the_header_of_the_named_balancers_only() {
    let rules = Rules::with("default.yaml", RULES);
    let start = |allow: &str, balancers: &str| {
        let mut config = Config::new(rules.path().to_owned());
        config.allow_from = allow.split(',').map(|n| n.parse().unwrap()).collect();
        config.trust_forwarded_for = true;
        config.forwarded_by = vec![balancers.parse().unwrap()];
        Server::start_with(config)
    };
    let send = |server: &Server, xff: &'static str| {
        client()
            .post(server.url("/confirm"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", xff)
            .body(v1("o", 5))
            .send()
    };
    // The test's own 127.0.0.1 is not a balancer here: its header names no one.
    let server = start("203.0.113.0/24", "10.0.0.0/8").await;
    let a = send(&server, "203.0.113.7").await.unwrap();
    assert_eq!(a.status().as_u16(), 403, "a header from no balancer");
    assert_eq!(
        a.headers()["connection"],
        "close",
        "the peer itself is refused"
    );
    server.stop().await;
    let server = start("127.0.0.0/8,203.0.113.0/24", "10.0.0.0/8").await;
    let a = send(&server, "198.51.100.9").await.unwrap();
    assert_eq!(
        a.status().as_u16(),
        200,
        "judged by its own, allowed address"
    );
    server.stop().await;
    // A balancer named: its header is read, as with --trust-forwarded-for alone.
    let server = start("203.0.113.0/24", "127.0.0.1/32").await;
    assert_eq!(send(&server, "203.0.113.7").await.unwrap().status(), 200);
    assert_eq!(send(&server, "198.51.100.9").await.unwrap().status(), 403);
    server.stop().await;
}

#[tokio::test]
async fn forwarded_for_trusts_only_the_right_most_entry() {
    let rules = Rules::with("default.yaml", RULES);
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["203.0.113.0/24".parse().unwrap()];
    config.trust_forwarded_for = true;
    let server = Server::start_with(config).await;
    let send = |xff: &'static str| {
        let url = server.url("/confirm");
        async move {
            client()
                .post(url)
                .header("content-type", "application/json")
                .header("x-forwarded-for", xff)
                .body(v1("o", 5))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("10.9.9.9, 203.0.113.7").await, 200);
    assert_eq!(
        send("203.0.113.7, 10.9.9.9").await,
        403,
        "a client-written entry proves nothing"
    );
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5)).await.status,
        403,
        "no header"
    );
    assert_eq!(send("10.9.9.9, 203.0.113.7:443").await, 200, "with a port");
    // Bytes that are not text in the client's entries change nothing; in the right-most one
    // they make it no address.
    for (xff, want) in [
        (&b"caf\xc3\xa9, 203.0.113.7"[..], 200),
        (b"\xff, 203.0.113.7", 200),
        (b"10.9.9.9, 203.0.113.7\xc2\xa0", 403),
        (b"10.9.9.9,\t203.0.113.7 ", 200),
    ] {
        let status = client()
            .post(server.url("/confirm"))
            .header("content-type", "application/json")
            .header(
                "x-forwarded-for",
                http::HeaderValue::from_bytes(xff).unwrap(),
            )
            .body(v1("o", 5))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, want, "{xff:?}");
    }
    server.stop().await;

    // The load balancer itself is allowed; an entry that is not an address must not fall
    // back to its (the peer's) address.
    let mut config = Config::new(rules.path().to_owned());
    config.allow_from = vec!["127.0.0.0/8".parse().unwrap()];
    config.trust_forwarded_for = true;
    let server = Server::start_with(config).await;
    for xff in [
        "unknown",
        "1.1.1.1:443",
        "[2001:db8::1]:443",
        "",
        "127.0.0.1, nonsense",
    ] {
        let a = client()
            .post(server.url("/confirm"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", xff)
            .body(v1("o", 5))
            .send()
            .await
            .unwrap();
        assert_eq!(a.status().as_u16(), 403, "x-forwarded-for: {xff:?}");
    }
    // Nor does a request without the header: it did not come through the load balancer (or
    // the balancer adds none), and the peer is the balancer's address, not the client's.
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5)).await.status,
        403,
        "no header"
    );
    // The source guard comes before the method check too.
    let a = client()
        .get(server.url("/confirm"))
        .header("x-forwarded-for", "1.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status().as_u16(), 403);
    server.stop().await;
}

/// DNS rebinding: a web page whose own name has been pointed at 127.0.0.1 reaches the loopback
/// admin listener, but its browser sends that name as `Host`.
#[tokio::test]
async fn admin_listener_on_loopback_answers_only_requests_addressed_to_loopback() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start(rules.path()).await;
    let port = server.admin.port();
    let at = |path: &str, host: &str| {
        client()
            .get(server.admin_url(path))
            .header("host", host.to_owned())
    };
    for path in [
        "/metrics",
        "/readyz",
        "/healthz",
        "/admin/rules",
        "/nowhere",
    ] {
        for host in [
            "rebound.example",
            "rebound.example:9901",
            "localhost.rebound.example",
        ] {
            let refused = send(at(path, host)).await;
            assert_eq!(refused.status, 403, "{path} {host}");
            let error = refused.body["error"].as_str().unwrap_or_default();
            assert!(error.contains("DNS rebinding"), "{path} {host}: {error}");
        }
        let local = [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        for host in local {
            let status = send(at(path, &host)).await.status;
            let expected = if path == "/nowhere" { 404 } else { 200 };
            assert_eq!(status, expected, "{path} {host}");
        }
    }
    let reload = client()
        .post(server.admin_url("/admin/reload"))
        .header("host", "rebound.example");
    assert_eq!(send(reload).await.status, 403);
    // Two `Host` headers, a local one first: no browser sends that, and readers differ on
    // which counts.
    for hosts in [
        "host: localhost\r\nhost: rebound.example\r\n",
        "host: localhost\r\nhost: localhost\r\n",
    ] {
        use tokio::io::AsyncWriteExt;
        let mut conn = tokio::net::TcpStream::connect(server.admin).await.unwrap();
        let request = format!("GET /metrics HTTP/1.1\r\n{hosts}\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let answer = read_once(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{hosts}: {answer}");
    }
    // A request target in absolute form names the host that counts: it must be loopback too.
    for (target, host, status) in [
        ("http://rebound.example/metrics", "localhost", "403"),
        ("http://localhost/metrics", "rebound.example", "403"),
        ("http://127.0.0.1/metrics", "localhost", "200"),
    ] {
        use tokio::io::AsyncWriteExt;
        let mut conn = tokio::net::TcpStream::connect(server.admin).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nhost: {host}\r\n\r\n");
        conn.write_all(request.as_bytes()).await.unwrap();
        let answer = read_once(&mut conn).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{target} {host}: {answer}"
        );
    }
    // The public listener answers whatever name PortOne calls it by.
    let public = client()
        .get(server.url("/healthz"))
        .header("host", "confirm.shop.example");
    assert_eq!(send(public).await.status, 200);
    server.stop().await;
}

/// Audit: a page open in a browser could POST to `http://127.0.0.1:9901/admin/reload` (a form
/// needs no permission to be sent, only to read its answer), addressed to loopback like any
/// local tool. Browsers say so (`Origin`, `Sec-Fetch-Site`); tools send neither.
#[tokio::test]
async fn admin_requests_sent_by_web_pages_are_refused() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start(rules.path()).await;
    let reload = || client().post(server.admin_url("/admin/reload"));
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        // The listener serves no page: one of "its origin" came through DNS rebinding.
        ("sec-fetch-site", "same-origin"),
    ] {
        let refused = send(reload().header(name, value)).await;
        assert_eq!(refused.status, 403, "{name}: {value}");
        let error = refused.body["error"].as_str().unwrap_or_default();
        assert!(error.contains("web pages"), "{error}");
        let metrics = send(
            client()
                .get(server.admin_url("/metrics"))
                .header(name, value),
        )
        .await;
        assert_eq!(metrics.status, 403, "{name}: {value}");
    }
    // Typed in the address bar: answered.
    let typed = client()
        .get(server.admin_url("/admin/rules"))
        .header("sec-fetch-site", "none");
    assert_eq!(send(typed).await.status, 200);
    assert_eq!(send(reload()).await.status, 200, "a tool's request");
    server.stop().await;
}

/// Each refused admin request leaves a warning saying why, so that an operator looking at a
/// 403 or 401 knows which it was; the token given is not in it.
#[tokio::test]
async fn refused_admin_requests_are_logged_without_the_token_given() {
    let rules = Rules::with("default.yaml", RULES);
    let proc = Process::serve_env(
        rules.path(),
        &[],
        &[("CONFIRM_PROXY_ADMIN_TOKEN", "s3cret-admin-t0ken")],
    )
    .await;
    let rebound = client()
        .get(proc.admin_url("/metrics"))
        .header("host", "rebound.example");
    assert_eq!(send(rebound).await.status, 403);
    let line = proc.log_line_of("host=rebound.example").await;
    assert!(line.contains("WARN") && line.contains("/metrics"), "{line}");
    assert!(line.contains("not addressed to localhost"), "{line}");

    let wrong = client()
        .post(proc.admin_url("/admin/reload"))
        .bearer_auth("s3cret-admin-t0keM");
    assert_eq!(send(wrong).await.status, 401);
    let line = proc.log_line_of("wrong admin token").await;
    assert!(
        line.contains("WARN") && line.contains("/admin/reload"),
        "{line}"
    );
    let log = proc.log_text();
    assert!(!log.contains("t0keM") && !log.contains("t0ken"), "{log}");
}

#[tokio::test]
async fn admin_token_guards_admin_endpoints() {
    let rules = Rules::with("default.yaml", RULES);
    let mut config = Config::new(rules.path().to_owned());
    config.admin_token = Some("t0ken".into());
    let server = Server::start_with(config).await;
    assert_eq!(get(&server.admin_url("/admin/rules")).await.status, 401);
    assert_eq!(
        post(&server.admin_url("/admin/reload"), None, "")
            .await
            .status,
        401
    );
    let ok = client()
        .get(server.admin_url("/admin/rules"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = client()
        .get(server.admin_url("/admin/rules"))
        .bearer_auth("t0kem")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The scheme is case-insensitive; the token is not.
    for (authorization, status) in [
        ("bearer t0ken", 200),
        ("BEARER t0ken", 200),
        ("Bearer T0KEN", 401),
        ("Basic t0ken", 401),
        ("t0ken", 401),
    ] {
        let a = client()
            .get(server.admin_url("/admin/rules"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), status, "{authorization}");
    }
    // Given twice, neither line counts, whichever comes first.
    for lines in [
        ["Bearer t0ken", "Bearer wrong"],
        ["Bearer wrong", "Bearer t0ken"],
    ] {
        let a = client()
            .get(server.admin_url("/admin/rules"))
            .header("authorization", lines[0])
            .header("authorization", lines[1])
            .send()
            .await
            .unwrap();
        assert_eq!(a.status(), 401, "{lines:?}");
    }
    server.stop().await;
}

/// Every loaded ruleset's request series and each rule's `error` series exist at 0 from start
/// and from the reload that adds them, so `increase(…)` alerts see their first event.
#[tokio::test]
async fn series_of_loaded_rulesets_exist_at_zero() {
    let rules = Rules::with(
        "default.yaml",
        "rules:\n  - { name: limit, amount: { max: 10 }, reason: x }\n",
    );
    let server = Server::start(rules.path()).await;
    let text = server.metrics().await;
    for series in [
        r#"confirm_proxy_requests_total{ruleset="default",decision="reject"}"#,
        r#"confirm_proxy_requests_total{ruleset="default",decision="approve"}"#,
        r#"confirm_proxy_rule_outcomes_total{ruleset="default",rule="limit",outcome="error"}"#,
    ] {
        assert_eq!(metric(&text, series), Some(0.0), "{series}\n{text}");
    }
    rules.write(
        "shop.yaml",
        "rules:\n  - { name: cap, amount: { max: 10 }, reason: x }\n  - { name: trial, mode: shadow, require: \"order_id.parse_int() > 0\", reason: x }\n",
    );
    let reload = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    let text = server.metrics().await;
    let trial =
        r#"confirm_proxy_rule_outcomes_total{ruleset="shop",rule="trial",outcome="shadow_error"}"#;
    for series in [
        r#"confirm_proxy_requests_total{ruleset="shop",decision="reject"}"#,
        r#"confirm_proxy_rule_outcomes_total{ruleset="shop",rule="cap",outcome="error"}"#,
        // A shadow rule's failure decides nothing: it is not the `error` alerts page on.
        trial,
    ] {
        assert_eq!(metric(&text, series), Some(0.0), "{series}\n{text}");
    }
    let trial_error =
        r#"confirm_proxy_rule_outcomes_total{ruleset="shop",rule="trial",outcome="error"}"#;
    assert_eq!(metric(&text, trial_error), None, "{text}");
    // An order id that is no number fails the trial's check, and the payment is approved.
    let answer = server.confirm_json("/confirm/shop", &v1("o-1", 5)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let text = server.metrics().await;
    assert_eq!(metric(&text, trial), Some(1.0), "{text}");
    assert_eq!(metric(&text, trial_error), None, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_exactly_what_was_sent() {
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start(rules.path()).await;
    for _ in 0..3 {
        server.confirm_json("/confirm", &v1("o", 5)).await;
    }
    for _ in 0..2 {
        server.confirm_json("/confirm", &v1("o", 500_000)).await;
    }
    server.confirm_json("/confirm/nope", &v1("o", 5)).await;
    post(
        &server.url("/confirm"),
        Some("application/json"),
        testdata("v2-2024-04-25-other-type.json"),
    )
    .await;
    let text = server.metrics().await;
    let value = |series: &str| metric(&text, series);
    assert_eq!(
        value(r#"confirm_proxy_requests_total{ruleset="default",decision="approve"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"confirm_proxy_requests_total{ruleset="default",decision="reject"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(r#"confirm_proxy_requests_total{ruleset="default",decision="ignored"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"confirm_proxy_requests_total{ruleset="unknown",decision="reject"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"confirm_proxy_rule_outcomes_total{ruleset="default",rule="limit",outcome="pass"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"confirm_proxy_rule_outcomes_total{ruleset="default",rule="limit",outcome="reject"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(r#"confirm_proxy_request_duration_seconds_count{ruleset="default"}"#),
        Some(6.0)
    );
    assert_eq!(value("confirm_proxy_decision_log_dropped_total"), Some(0.0));
    // The one refusal before the rules: the unknown ruleset's; every other guard at 0.
    for (guard, _) in confirm_proxy::metrics::GUARDS {
        let expected = if guard == "ruleset" { 1.0 } else { 0.0 };
        assert_eq!(
            value(&format!(
                r#"confirm_proxy_guard_refusals_total{{guard="{guard}"}}"#
            )),
            Some(expected),
            "{guard}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn decision_log_survives_sigterm_during_a_burst() {
    let rules = Rules::with("default.yaml", RULES);
    let log = rules.path().join("decisions.jsonl");
    let mut proc = Process::serve(rules.path(), &["--decision-log", log.to_str().unwrap()]).await;
    let url = proc.url("/confirm");
    // A bounded burst: 8 workers × 100 requests, SIGTERM part-way through.
    let answers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (url, answers) = (url.clone(), answers.clone());
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut answered = Vec::new();
            for i in 0..100 {
                let amount = if (w + i) % 3 == 0 { 500_000 } else { 5 };
                let Ok(resp) = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(v1(&format!("o-{w}-{i}"), amount))
                    .send()
                    .await
                else {
                    break;
                };
                if let Some(id) = resp.headers().get("x-confirm-decision-id") {
                    answered.push(id.to_str().unwrap().to_owned());
                    answers.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
            answered
        }));
    }
    // Once the burst is under way, however slowly the machine runs it: some answers are in,
    // most are still to come.
    let under_way = eventually(Duration::from_secs(10), || async {
        answers.load(std::sync::atomic::Ordering::SeqCst) >= 20
    })
    .await;
    assert!(
        under_way,
        "the burst did not get going:\n{}",
        proc.log_text()
    );
    proc.signal("TERM");
    let mut answered = Vec::new();
    for w in workers {
        answered.extend(w.await.unwrap());
    }
    let status = proc.exited().await;
    assert!(status.success(), "{}", proc.log_text());
    assert!(!answered.is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    let logged: std::collections::HashSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}"))
                ["decision_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered decisions missing from the log",
        missing.len(),
        answered.len()
    );
    // A trial could not tell from the log what the stop finished: it says so, in numbers
    // that agree with the log file.
    let said = proc.log_text();
    let number = |key: &str| {
        said.split(&format!("{key}="))
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {key} in:\n{said}"))
    };
    assert_eq!(number("records"), text.lines().count(), "{said}");
    assert_eq!(
        number("answered_since_start"),
        text.lines().count(),
        "{said}"
    );
    assert!(said.contains("in-flight requests finished"), "{said}");
    eprintln!(
        "{} answered before SIGTERM, all {} logged",
        answered.len(),
        logged.len()
    );
}

#[tokio::test]
async fn secrets_never_appear_in_logs_decision_log_or_admin_rules() {
    // `/echo` answers like a merchant API rejecting a credential: with the credential in its
    // body and a header.
    let echo = |headers: http::HeaderMap| async move {
        let auth = headers[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        (
            http::StatusCode::UNAUTHORIZED,
            [("x-seen", auth.clone())],
            axum::Json(serde_json::json!({ "error": format!("invalid credentials: {auth}") })),
        )
    };
    let shop = MockUpstream::start(
        axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "fine" }))
            .route("/echo", axum::routing::get(echo)),
    )
    .await;
    let upstreams = "upstreams:\n  shop:\n    url: \"${SHOP_URL}\"\n    headers: { Authorization: \"Bearer ${SHOP_TOKEN}\" }\n";
    let rules = Rules::with(
        "default.yaml",
        &format!("{upstreams}rules:\n  - name: ok\n    fetch: {{ upstream: shop, path: /ok }}\n    reason: r\n"),
    );
    rules.write(
        "echo.yaml",
        &format!("{upstreams}rules:\n  - name: echo\n    fetch: {{ upstream: shop, path: /echo }}\n    require: response.status == 200\n    reason: \"{{response.body.error}}\"\n"),
    );
    // Credentials in the url: the HTTP client sends them as `Authorization: Basic …`.
    rules.write(
        "basic.yaml",
        "upstreams:\n  shop: { url: \"${BASIC_URL}\" }\nrules:\n  - name: echo\n    fetch: { upstream: shop, path: /echo }\n    require: response.status == 200\n    reason: \"{response.body.error}\"\n",
    );
    let log = rules.path().join("decisions.jsonl");
    let token = "upstream-t0ken-4f9a";
    let admin_token = "admin-t0ken-77b1";
    let shop_url = shop.url();
    let password = "basic-pa55-c3d1";
    let basic_url = shop_url.replace("http://", &format!("http://merchant:{password}@"));
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("merchant:{password}"))
    };
    let proc = Process::serve_env(
        rules.path(),
        &[
            "--decision-log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[
            ("SHOP_URL", shop_url.as_str()),
            ("SHOP_TOKEN", token),
            ("BASIC_URL", basic_url.as_str()),
            ("CONFIRM_PROXY_WEBHOOK_SECRET", SECRET),
            ("CONFIRM_PROXY_ADMIN_TOKEN", admin_token),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let body = testdata("v2-2024-04-25.json");
    assert_eq!(
        signed_post(&proc.url("/confirm"), SECRET, &body, now())
            .await
            .status,
        200
    );
    assert_eq!(
        post(
            &proc.url("/confirm"),
            Some("application/json"),
            body.clone()
        )
        .await
        .status,
        401
    );
    // The credential an upstream echoes is masked before the reason is filled in.
    let echoed = signed_post(&proc.url("/confirm/echo"), SECRET, &body, now()).await;
    assert_eq!(
        (echoed.status, echoed.reason()),
        (409, "invalid credentials: Bearer ***"),
        "{}",
        echoed.body
    );
    let echoed = signed_post(&proc.url("/confirm/basic"), SECRET, &body, now()).await;
    assert_eq!(
        (echoed.status, echoed.reason()),
        (409, "invalid credentials: Basic ***"),
        "{}",
        echoed.body
    );
    let view = client()
        .get(proc.admin_url("/admin/rules"))
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(view.contains("\"version\""));
    proc.signal("TERM");
    let mut proc = proc;
    proc.exited().await;
    let secret_key = SECRET.trim_start_matches("whsec_");
    for (what, text) in [
        ("log", proc.log_text()),
        ("decision log", std::fs::read_to_string(&log).unwrap()),
        ("/admin/rules", view),
    ] {
        for secret in [token, admin_token, secret_key, password, &basic] {
            assert!(
                !text.contains(secret),
                "{secret} appears in the {what}:\n{text}"
            );
        }
    }
}

/// A `${VAR}` in an upstream's URL path (some merchant APIs carry a token there) stays out of the
/// log at debug level too, where a GET whose connection closed under it is logged before it is
/// sent again: reqwest's error text names the whole URL.
#[tokio::test]
async fn a_secret_in_an_upstream_url_path_stays_out_of_debug_logs() {
    // Reads a request and hangs up without an answer, as an upstream closing a pooled
    // connection at that moment does.
    let (url, _) = raw_upstream("", std::time::Duration::ZERO).await;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "upstreams:\n  shop:\n    url: \"{url}/hooks/${{HOOK_TOKEN}}\"\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /stock }}\n    reason: r\n"
        ),
    );
    let token = "hook-t0ken-5e2c";
    let proc = Process::serve_env(
        rules.path(),
        &["--log-format", "json"],
        &[("HOOK_TOKEN", token), ("RUST_LOG", "debug")],
    )
    .await;
    // A GET is sent again only when the connection closed within a short time of sending, which
    // a loaded machine can miss once; a few tries (bounded) make sure the path is taken.
    for _ in 0..5 {
        let answer = proc.confirm_json("/confirm", &v1("order-1", 5000)).await;
        assert_eq!(answer.status, 409, "{}", answer.body);
        let resent = eventually(Duration::from_millis(500), || async {
            proc.log_text().contains("sending it again")
        })
        .await;
        if resent {
            break;
        }
    }
    proc.signal("TERM");
    let mut proc = proc;
    proc.exited().await;
    let log = proc.log_text();
    // The path this is about was taken.
    assert!(log.contains("sending it again"), "{log}");
    assert!(!log.contains(token), "{token} appears in the log:\n{log}");
}

/// A `${VAR}` in an upstream's host stays out of the errors that name the host, although the
/// URL parser writes it in lower case (`LocalHost` as `localhost`).
#[tokio::test]
async fn a_secret_in_an_upstream_host_stays_out_of_its_errors() {
    // Nothing listens on port 1 (a port freed by the test could be taken by another one).
    let port = 1;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "upstreams:\n  shop:\n    url: \"http://${{SHOP_HOST}}:{port}\"\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /stock }}\n    reason: r\n"
        ),
    );
    let proc = Process::serve_env(
        rules.path(),
        &["--log-format", "json"],
        &[("SHOP_HOST", "LocalHost")],
    )
    .await;
    let answer = proc.confirm_json("/confirm", &v1("order-1", 5000)).await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    proc.signal("TERM");
    let mut proc = proc;
    proc.exited().await;
    let log = proc.log_text();
    assert!(
        log.contains(&format!("connection refused by ***:{port}")),
        "{log}"
    );
    assert!(!log.to_ascii_lowercase().contains("localhost"), "{log}");
}

/// The official Standard Webhooks Python library, installed once into the target directory if it
/// is missing.
fn python_standardwebhooks() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-standardwebhooks");
    let importable = |dir: &std::path::Path| {
        std::process::Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .env("PYTHONPATH", dir)
            // Not installed yet is the expected answer the first time, not a failure to show.
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable(&dir) {
        let status = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .env("PIP_ROOT_USER_ACTION", "ignore")
            .arg(&dir)
            .arg("standardwebhooks==1.1.0")
            .status()
            .expect("python3 is needed for the interoperability test");
        assert!(
            status.success(),
            "pip could not install standardwebhooks from PyPI"
        );
    }
    assert!(importable(&dir));
    dir
}

fn python(pythonpath: &std::path::Path, script: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .output()
        .unwrap()
}

#[tokio::test]
async fn interoperates_with_the_official_standard_webhooks_library() {
    let lib = python_standardwebhooks();
    let body = String::from_utf8(testdata("v2-2024-04-25.json")).unwrap();
    let ts = now();

    // Signed by the official library, accepted by the proxy.
    let sign = "import sys, datetime\nfrom standardwebhooks.webhooks import Webhook\n\
                w = Webhook(sys.argv[1])\n\
                print(w.sign(sys.argv[2], datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc), sys.argv[4]))";
    let out = python(&lib, sign, &[SECRET, "msg_py_1", &ts.to_string(), &body]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signature = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let rules = Rules::with("default.yaml", RULES);
    let server = Server::start_with(with_secrets(&rules, &[SECRET])).await;
    let resp = client()
        .post(server.url("/confirm"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_py_1")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", &signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "signature from the official library: {signature}"
    );
    server.stop().await;

    // Signed by the proxy's code, verified by the official library.
    let ours = sign_with(SECRET, "msg_rs_1", ts, body.as_bytes());
    let verify = "import sys\nfrom standardwebhooks.webhooks import Webhook\n\
                  Webhook(sys.argv[1]).verify(sys.argv[5].encode(), {'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]})\n\
                  print('verified')";
    let out = python(
        &lib,
        verify,
        &[SECRET, "msg_rs_1", &ts.to_string(), &ours, &body],
    );
    assert!(
        out.status.success(),
        "the official library refused our signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "verified");
}

fn sign_with(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    sign(&WebhookSecret::parse(secret).unwrap(), id, ts, body)
}

/// `/metrics` counts `n` repeated deliveries answered `answer`.
async fn assert_repeats(server: &Server, answer: &str, n: u64) {
    let text = server.metrics().await;
    let series = format!(r#"confirm_proxy_repeated_deliveries_total{{answer="{answer}"}}"#);
    assert_eq!(metric(&text, &series), Some(n as f64), "{text}");
}
