//! Upstream checks against mock services on loopback: fetch, healthy, forward, their failure
//! modes, the deadline, and concurrency.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing;
use axum::{Json, Router};
use confirm_proxy::server::Config;
use serde_json::json;

use crate::support::*;

/// A shop with stock, health, slow and broken endpoints, and an existing confirm handler.
async fn shop() -> MockUpstream {
    MockUpstream::start(
        Router::new()
            .route(
                "/stock/{id}",
                routing::get(
                    |axum::extract::Path(id): axum::extract::Path<String>| async move {
                        let available = if id.starts_with("soldout") { 0 } else { 3 };
                        Json(json!({"available": available, "id": id}))
                    },
                ),
            )
            .route(
                "/slow300",
                routing::get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Json(json!({"ok": true}))
                }),
            )
            .route(
                "/hang",
                routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "never"
                }),
            )
            .route(
                "/503",
                routing::get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
            )
            .route(
                "/404",
                routing::get(|| async { (StatusCode::NOT_FOUND, Json(json!({"error": "no"}))) }),
            )
            .route("/text", routing::get(|| async { "plain text, not json" }))
            .route(
                "/confirm-ok",
                routing::post(|| async { Json(json!({"ok": true})) }),
            )
            .route(
                "/confirm-reason",
                routing::post(|| async {
                    (
                        StatusCode::CONFLICT,
                        Json(json!({"reason": "기존 서버가 거절했습니다"})),
                    )
                }),
            )
            .route(
                "/confirm-errormessage",
                routing::post(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"errorMessage": "V2 방식 거절"})),
                    )
                }),
            )
            .route(
                "/confirm-bare",
                routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            ),
    )
    .await
}

fn rules_with(shop_url: &str, settings: &str, rules: &str) -> Rules {
    Rules::with(
        "default.yaml",
        &format!("settings: {{ {settings} }}\nupstreams:\n  shop: {{ url: \"{shop_url}\", timeout: 500ms }}\nrules:\n{rules}"),
    )
}

#[tokio::test]
async fn stock_fetch_decides_with_the_answer() {
    let shop = shop().await;
    let rules = rules_with(
        &shop.url(),
        "",
        "  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    require: 'response.status == 200 && response.body.available >= 1'\n    reason: \"재고 없음 (남은 수량 {response.body.available})\"\n  - name: uses-fetched\n    require: 'fetched[\"stock\"].body.available == 3'\n    reason: \"fetched 불일치\"\n",
    );
    let server = Server::start(rules.path()).await;
    assert_eq!(
        server
            .confirm_json("/confirm", &v1("order-1", 5000))
            .await
            .status,
        200
    );
    let a = server
        .confirm_json("/confirm", &v1("soldout-1", 5000))
        .await;
    assert_eq!((a.status, a.reason()), (409, "재고 없음 (남은 수량 0)"));
    // Placeholders in paths are URL-encoded.
    server.confirm_json("/confirm", &v1("a b/c", 5000)).await;
    assert!(
        shop.calls().iter().any(|c| c.path == "/stock/a%20b%2Fc"),
        "{:?}",
        shop.calls()
    );
    server.stop().await;
}

#[tokio::test]
async fn failure_modes_follow_on_error_and_are_traced_with_their_cause() {
    let shop = shop().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let rules = Rules::with(
        "default.yaml",
        &format!(
            r#"settings: {{ error_reason: "잠시 후 다시 시도해 주세요" }}
upstreams:
  shop: {{ url: "{shop}", timeout: 300ms }}
  closed: {{ url: "http://{closed}" }}
  nowhere: {{ url: "http://does-not-exist.invalid" }}
rules:
  - name: refused
    when: 'order_id == "refused"'
    fetch: {{ upstream: closed, path: /x }}
    reason: r
  - name: dns
    when: 'order_id == "dns"'
    fetch: {{ upstream: nowhere, path: /x }}
    reason: r
  - name: timeout
    when: 'order_id == "timeout"'
    fetch: {{ upstream: shop, path: /hang }}
    reason: r
  - name: status-503
    when: 'order_id == "503"'
    fetch: {{ upstream: shop, path: /503 }}
    reason: r
  - name: status-404
    when: 'order_id == "404"'
    fetch: {{ upstream: shop, path: /404 }}
    reason: "없는 상품"
  - name: not-json
    when: 'order_id == "text"'
    fetch: {{ upstream: shop, path: /text }}
    require: 'response.body.available > 0'
    reason: r
  - name: bad-expression
    when: 'order_id == "expr"'
    fetch: {{ upstream: shop, path: "/stock/{{order_id}}" }}
    require: 'response.body.available / 0 > 1'
    reason: r
  - name: tolerated
    when: 'order_id == "tolerated"'
    on_error: approve
    fetch: {{ upstream: shop, path: /503 }}
    reason: r
"#,
            shop = shop.url()
        ),
    );
    let (server, log) = logged(&rules).await;
    let mut ids = Vec::new();
    for (order, status, cause) in [
        ("refused", 409, "connection refused"),
        ("dns", 409, "DNS lookup failed"),
        ("timeout", 409, "timed out after 300ms"),
        ("503", 409, "answered 503"),
        ("text", 409, "require on the answer"),
        ("expr", 409, "require on the answer"),
    ] {
        let a = server.confirm_json("/confirm", &v1(order, 5000)).await;
        assert_eq!(
            (a.status, a.reason()),
            (status, "잠시 후 다시 시도해 주세요"),
            "{order}: {:?}",
            a.body
        );
        ids.push((order, a.decision_id(), cause));
    }
    let a = server.confirm_json("/confirm", &v1("404", 5000)).await;
    assert_eq!(
        a.reason(),
        "없는 상품",
        "4xx without require refuses with the rule's reason"
    );
    let a = server
        .confirm_json("/confirm", &v1("tolerated", 5000))
        .await;
    assert_eq!(
        a.status, 200,
        "the rule's on_error: approve overrides the ruleset's reject"
    );
    let tolerated = a.decision_id();
    server.stop().await;

    for (order, id, cause) in ids {
        let r = record(&log, &id);
        let last = r["trace"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["outcome"], "error", "{order}: {r}");
        assert!(
            last["error"].as_str().unwrap().contains(cause),
            "{order}: {last}"
        );
        assert!(
            !r["reason"].as_str().unwrap().contains(cause),
            "internal causes never reach the buyer"
        );
    }
    let r = record(&log, &tolerated);
    assert_eq!(
        r["trace"].as_array().unwrap().last().unwrap()["outcome"],
        "error"
    );
}

#[tokio::test]
async fn the_deadline_holds_when_an_upstream_hangs() {
    let shop = shop().await;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "settings: {{ deadline: 1s, error_reason: \"시간 초과\" }}\nupstreams:\n  shop: {{ url: \"{}\", timeout: 1h }}\nrules:\n  - name: hang\n    fetch: {{ upstream: shop, path: /hang }}\n    reason: r\n",
            shop.url()
        ),
    );
    let server = Server::start(rules.path()).await;
    let started = Instant::now();
    let a = server.confirm_json("/confirm", &v1("o", 5000)).await;
    let took = started.elapsed();
    assert_eq!((a.status, a.reason()), (409, "시간 초과"));
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    // The call cut off by the deadline still shows in the metrics.
    let metrics = get(&server.admin_url("/metrics")).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            r#"confirm_proxy_upstream_calls_total{upstream="shop",outcome="cancelled"} 1"#
        ),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn independent_get_fetches_run_concurrently() {
    let shop = shop().await;
    let rules = rules_with(
        &shop.url(),
        "",
        "  - name: a\n    fetch: { upstream: shop, path: /slow300 }\n    reason: r\n  - name: b\n    fetch: { upstream: shop, path: /slow300 }\n    reason: r\n",
    );
    let server = Server::start(rules.path()).await;
    server.confirm_json("/confirm", &v1("warm-up", 5000)).await;
    let started = Instant::now();
    let a = server.confirm_json("/confirm", &v1("o", 5000)).await;
    let took = started.elapsed();
    assert_eq!(a.status, 200);
    // Sequential would be 600 ms; the exact ratio is the benchmark's business.
    assert!(
        took < Duration::from_millis(550),
        "two 300 ms fetches took {took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn forward_is_not_called_when_an_earlier_rule_refuses() {
    let shop = shop().await;
    let rules = rules_with(
        &shop.url(),
        "",
        "  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n  - name: existing\n    forward: { upstream: shop, path: /confirm-ok }\n  - name: post-fetch\n    fetch: { upstream: shop, method: POST, path: /confirm-ok, body: { order: \"{order_id}\" } }\n    reason: r\n",
    );
    let server = Server::start(rules.path()).await;
    assert_eq!(
        server
            .confirm_json("/confirm", &v1("o", 50_000))
            .await
            .reason(),
        "한도 초과"
    );
    assert_eq!(
        shop.calls_to("/confirm-ok"),
        0,
        "no side effects at the merchant after a refusal"
    );
    assert_eq!(
        server
            .confirm_json("/confirm", &v1("o", 5_000))
            .await
            .status,
        200
    );
    let calls = shop.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].body, br#"{"order":"o"}"#);
    server.stop().await;
}

#[tokio::test]
async fn forward_passes_body_and_signature_headers_unchanged() {
    let shop = shop().await;
    let rules = rules_with(
        &shop.url(),
        "",
        "  - name: existing\n    forward: { upstream: shop, path: /confirm-ok }\n",
    );
    let server = Server::start(rules.path()).await;
    let body = testdata("v2-2024-04-25.json");
    let resp = client()
        .post(server.url("/confirm"))
        .header("content-type", "application/json; charset=utf-8")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", "1714039200")
        .header("webhook-signature", "v1,abc= v1,def=")
        .header("x-other", "not forwarded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let call = &shop.calls()[0];
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.body, body,
        "the original bytes, not a re-serialisation"
    );
    assert_eq!(
        call.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(call.headers["webhook-id"], "msg_1");
    assert_eq!(call.headers["webhook-timestamp"], "1714039200");
    assert_eq!(call.headers["webhook-signature"], "v1,abc= v1,def=");
    assert!(call.headers.get("x-other").is_none());
    server.stop().await;
}

#[tokio::test]
async fn forward_refusals_carry_the_merchants_reason() {
    let shop = shop().await;
    let rules = Rules::new();
    for (path, want) in [
        ("/confirm-reason", "기존 서버가 거절했습니다"),
        ("/confirm-errormessage", "V2 방식 거절"),
        ("/confirm-bare", "기존 확인 실패"),
    ] {
        rules.write(
            "default.yaml",
            &format!("upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - name: existing\n    forward: {{ upstream: shop, path: {path} }}\n    reason: \"기존 확인 실패\"\n", shop.url()),
        );
        let server = Server::start(rules.path()).await;
        let a = server.confirm_json("/confirm", &v1("o", 5000)).await;
        assert_eq!((a.status, a.reason()), (409, want), "{path}");
        server.stop().await;
    }
}

#[tokio::test]
async fn health_flapping_changes_decisions_and_readiness() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let shop = MockUpstream::start(Router::new().route(
        "/health",
        routing::get(move || {
            let ok = flag.load(Ordering::SeqCst);
            async move {
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    ))
    .await;
    let rules = Rules::with(
        "default.yaml",
        &format!(
            "upstreams:\n  shop: {{ url: \"{}\", timeout: 200ms, health: {{ path: /health, interval: 100ms, unhealthy_after: 2, healthy_after: 1 }} }}\nrules:\n  - name: shop-up\n    healthy: shop\n    reason: \"상점 점검 중입니다\"\n",
            shop.url()
        ),
    );
    let server = Server::start(rules.path()).await;
    let ready = eventually(Duration::from_secs(3), || async {
        get(&server.admin_url("/readyz")).await.status == 200
    })
    .await;
    assert!(ready, "/readyz turns 200 once the probe has answered");
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5000)).await.status,
        200
    );

    up.store(false, Ordering::SeqCst);
    let refused = eventually(Duration::from_secs(3), || async {
        server
            .confirm_json("/confirm", &v1("o", 5000))
            .await
            .reason()
            == "상점 점검 중입니다"
    })
    .await;
    assert!(refused, "an unhealthy shop refuses");
    assert_eq!(
        get(&server.admin_url("/readyz")).await.status,
        200,
        "unhealthy is a rule's business, not readiness"
    );

    up.store(true, Ordering::SeqCst);
    let back = eventually(Duration::from_secs(3), || async {
        server.confirm_json("/confirm", &v1("o", 5000)).await.status == 200
    })
    .await;
    assert!(back, "a recovered shop approves again");
    let metrics = get(&server.admin_url("/metrics"))
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        metrics.contains(r#"confirm_proxy_upstream_healthy{upstream="shop"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn readyz_waits_for_the_first_probe() {
    let shop = MockUpstream::start(Router::new().route(
        "/health",
        routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "ok"
        }),
    ))
    .await;
    let rules = Rules::with(
        "default.yaml",
        &format!("upstreams:\n  shop: {{ url: \"{}\", health: {{ path: /health }} }}\nrules:\n  - name: up\n    healthy: shop\n    reason: x\n", shop.url()),
    );
    let server = Server::start(rules.path()).await;
    let a = get(&server.admin_url("/readyz")).await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    let metrics = get(&server.admin_url("/metrics")).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(r#"confirm_proxy_upstream_healthy{upstream="shop"} -1"#),
        "unknown health shows as -1 before the first probe result: {text}"
    );
    // Before the first probe result the state is unknown: an error, decided by on_error.
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5000)).await.status,
        409
    );
    assert!(
        eventually(Duration::from_secs(3), || async {
            get(&server.admin_url("/readyz")).await.status == 200
        })
        .await
    );
    server.stop().await;
}

#[tokio::test]
async fn env_variables_fill_urls_and_headers() {
    let shop = shop().await;
    let yaml = "upstreams:\n  shop:\n    url: \"${SHOP_URL}\"\n    headers: { Authorization: \"Bearer ${SHOP_TOKEN}\" }\nrules:\n  - name: stock\n    fetch: { upstream: shop, path: \"/stock/{order_id}\" }\n    reason: r\n";
    let rules = Rules::with("default.yaml", yaml);
    let url = shop.url();
    let mut config = Config::new(rules.path().to_owned());
    config.env = Arc::new(move |name| match name {
        "SHOP_URL" => Some(url.clone()),
        "SHOP_TOKEN" => Some("s3cret-token".into()),
        _ => None,
    });
    let server = Server::start_with(config).await;
    assert_eq!(
        server.confirm_json("/confirm", &v1("o", 5000)).await.status,
        200
    );
    assert_eq!(
        shop.calls()[0].headers["authorization"],
        "Bearer s3cret-token"
    );
    let rules_view = get(&server.admin_url("/admin/rules"))
        .await
        .body
        .to_string();
    assert!(
        !rules_view.contains("s3cret-token") && !rules_view.contains(&shop.url()),
        "{rules_view}"
    );
    server.stop().await;

    let mut config = Config::new(rules.path().to_owned());
    config.env = Arc::new(|name| (name == "SHOP_URL").then(|| "http://127.0.0.1:1".to_owned()));
    let errors = confirm_proxy::server::App::start(config)
        .await
        .err()
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("default.yaml:4:31: upstream \"shop\": header \"Authorization\": environment variable SHOP_TOKEN is not set"),
        "{errors:?}"
    );
}

#[tokio::test]
async fn probes_stop_when_their_rules_are_replaced() {
    let shop =
        MockUpstream::start(Router::new().route("/health", routing::get(|| async { "ok" }))).await;
    let probed = |interval: &str| {
        format!(
            "upstreams:\n  shop: {{ url: \"{}\", health: {{ path: /health, interval: {interval} }} }}\nrules:\n  - name: up\n    healthy: shop\n    reason: x\n",
            shop.url()
        )
    };
    let rules = Rules::with("default.yaml", &probed("50ms"));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    assert!(
        eventually(Duration::from_secs(3), || async {
            shop.calls_to("/health") >= 3
        })
        .await
    );

    // The new generation has no probe: the old one must stop with its rules.
    rules.write(
        "default.yaml",
        "rules:\n  - name: a\n    require: 'true'\n    reason: x\n",
    );
    assert_eq!(
        post(&server.admin_url("/admin/reload"), None, "")
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after_reload = shop.calls_to("/health");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        shop.calls_to("/health"),
        after_reload,
        "the replaced generation's probe still runs"
    );

    // And a generation with a probe gets exactly one.
    rules.write("default.yaml", &probed("100ms"));
    assert_eq!(
        post(&server.admin_url("/admin/reload"), None, "")
            .await
            .status,
        200
    );
    let before = shop.calls_to("/health");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let calls = shop.calls_to("/health") - before;
    // One probe makes about 10 calls in ~1 s; two would make about 20. The band is wide because
    // a loaded machine delays ticks.
    assert!(
        (4..=15).contains(&calls),
        "one probe every 100 ms, got {calls} calls in ~1 s"
    );
    server.stop().await;
}
