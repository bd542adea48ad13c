//! A stand-in for a merchant's own services, for the walk-through in examples/README.md:
//! a stock API, a health endpoint that can be switched off, and the confirm handler the
//! merchant had before the proxy.
//!
//! ```sh
//! SHOP_API_TOKEN=dev-token cargo run --example mock_shop     # listens on 127.0.0.1:9090
//! cargo run --example mock_shop -- --listen 127.0.0.1:9191   # or MOCK_SHOP_LISTEN=127.0.0.1:9191
//! ```
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /health` | 200 `{"status":"ok"}`, or 503 after `POST /admin/health/down` (back with `/admin/health/up`) |
//! | `GET /api/stock/{order_id}` | `{"order_id":…,"available":N}`: 0 for `soldout-…`, 1 for `last-…`, else 5 |
//! | `POST /payments/confirm` | the existing confirm handler: 409 for `blocked-…` orders, else 200 |
//! | `POST /api/reservations` | takes one of `MOCK_SHOP_TICKETS` (default 3) tickets for `{"order": …}`: 200 `{"reserved":…,"left":N}`, the same order again 200 without taking another, 409 `{"reason":…}` once none is left |
//!
//! With `SHOP_API_TOKEN` set, the stock and reservation APIs want `Authorization: Bearer
//! <token>` (401 otherwise).
//! Every request is printed as `METHOD /path -> STATUS`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Stock by order id prefix; orders matching none have [`DEFAULT_STOCK`].
const STOCK: &[(&str, u32)] = &[("soldout-", 0), ("last-", 1)];
const DEFAULT_STOCK: u32 = 5;

/// Tickets the reservation API starts with, unless `MOCK_SHOP_TICKETS` says otherwise.
const DEFAULT_TICKETS: u32 = 3;

#[derive(Clone)]
struct Shop {
    healthy: Arc<AtomicBool>,
    token: Option<String>,
    /// Tickets left, and the orders holding one: taken under one lock, so two requests for
    /// the last ticket never both get it.
    tickets: Arc<Mutex<(u32, HashSet<String>)>>,
}

#[tokio::main]
async fn main() {
    const USAGE: &str = "usage: mock_shop [--listen ADDR]   (or MOCK_SHOP_LISTEN=ADDR; default 127.0.0.1:9090; SHOP_API_TOKEN sets the bearer token the stock and reservation APIs want; MOCK_SHOP_TICKETS the tickets the reservation API has, default 3)";
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let listen = match listen_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("mock_shop: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let tickets = match std::env::var("MOCK_SHOP_TICKETS") {
        Err(_) => DEFAULT_TICKETS,
        Ok(n) => n.parse().unwrap_or_else(|_| {
            eprintln!("mock_shop: MOCK_SHOP_TICKETS={n:?} is not a count\n{USAGE}");
            std::process::exit(2);
        }),
    };
    let shop = Shop {
        healthy: Arc::new(AtomicBool::new(true)),
        token: std::env::var("SHOP_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        tickets: Arc::new(Mutex::new((tickets, HashSet::new()))),
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/admin/health/down", post(health_down))
        .route("/admin/health/up", post(health_up))
        .route("/api/stock/{order_id}", get(stock))
        .route("/payments/confirm", post(existing_confirm))
        .route("/api/reservations", post(reserve))
        .layer(middleware::from_fn(log_request))
        .with_state(shop.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| {
            eprintln!("mock_shop: cannot listen on {listen}: {e}");
            std::process::exit(1);
        });
    let auth = if shop.token.is_some() {
        "the stock API wants the SHOP_API_TOKEN bearer token"
    } else {
        "SHOP_API_TOKEN not set, the stock API takes any caller"
    };
    println!("mock shop listening on http://{listen} ({auth}; {tickets} tickets to reserve)");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("mock_shop: {e}");
        std::process::exit(1);
    }
}

/// `--listen ADDR`, else `MOCK_SHOP_LISTEN`, else 127.0.0.1:9090.
fn listen_addr() -> Result<SocketAddr, String> {
    let mut addr = std::env::var("MOCK_SHOP_LISTEN").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().ok_or("--listen needs an address")?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    addr.parse()
        .map_err(|_| format!("invalid listen address {addr:?}, expected IP:PORT"))
}

/// One line per request, so the reader sees what the proxy calls.
async fn log_request(req: Request, next: Next) -> Response {
    let line = format!("{} {}", req.method(), req.uri());
    let resp = next.run(req).await;
    println!("{line} -> {}", resp.status().as_u16());
    resp
}

async fn health(State(shop): State<Shop>) -> impl IntoResponse {
    if shop.healthy.load(Ordering::SeqCst) {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "maintenance"})),
        )
    }
}

async fn health_down(State(shop): State<Shop>) -> &'static str {
    shop.healthy.store(false, Ordering::SeqCst);
    "GET /health now answers 503\n"
}

async fn health_up(State(shop): State<Shop>) -> &'static str {
    shop.healthy.store(true, Ordering::SeqCst);
    "GET /health now answers 200\n"
}

async fn stock(
    State(shop): State<Shop>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if let Some(refused) = unauthorized(&shop, &headers) {
        return refused;
    }
    let available = STOCK
        .iter()
        .find(|(prefix, _)| order_id.starts_with(prefix))
        .map_or(DEFAULT_STOCK, |&(_, n)| n);
    Json(json!({"order_id": order_id, "available": available})).into_response()
}

/// The 401 of a caller without the bearer token, when one is set.
fn unauthorized(shop: &Shop, headers: &HeaderMap) -> Option<Response> {
    let token = shop.token.as_ref()?;
    let expected = format!("Bearer {token}");
    (headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())).then(
        || {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "missing or wrong bearer token"})),
            )
                .into_response()
        },
    )
}

/// Takes a ticket for `{"order": …}` in the same step as it answers: the pattern for the last
/// unit (README, "The last unit"). An order that already holds one keeps it (a retried call
/// takes no second ticket).
async fn reserve(State(shop): State<Shop>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unauthorized(&shop, &headers) {
        return refused;
    }
    let order = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("order").and_then(Value::as_str).map(str::to_owned));
    let Some(order) = order else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"reason": "주문 번호가 없습니다 (예약 서버)"})),
        )
            .into_response();
    };
    let mut tickets = match shop.tickets.lock() {
        Ok(tickets) => tickets,
        Err(poisoned) => poisoned.into_inner(),
    };
    let (left, holders) = &mut *tickets;
    if holders.contains(&order) {
        return Json(json!({"reserved": order, "left": *left})).into_response();
    }
    if *left == 0 {
        return (
            StatusCode::CONFLICT,
            Json(json!({"reason": "매진되었습니다 (남은 좌석이 없습니다)"})),
        )
            .into_response();
    }
    *left -= 1;
    holders.insert(order.clone());
    Json(json!({"reserved": order, "left": *left})).into_response()
}

/// The confirm handler the merchant had before the proxy: it refuses `blocked-` orders.
/// Takes PortOne's bodies as the proxy forwards them: V1 (JSON or form), V2 (both formats).
async fn existing_confirm(body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body)
        .or_else(|_| serde_urlencoded::from_bytes(&body))
        .unwrap_or(Value::Null);
    let order_id = body
        .get("merchant_uid")
        .or_else(|| body.get("payment_id"))
        .or_else(|| body.pointer("/data/paymentId"))
        .and_then(Value::as_str);
    match order_id {
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"reason": "주문 번호가 없습니다 (기존 확인 서버)"})),
        )
            .into_response(),
        Some(id) if id.starts_with("blocked-") => (
            StatusCode::CONFLICT,
            Json(json!({"reason": "차단된 주문입니다 (기존 확인 서버)"})),
        )
            .into_response(),
        Some(_) => Json(json!({"ok": true})).into_response(),
    }
}
