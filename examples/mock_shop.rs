//! A stand-in for a merchant's own services, for the walk-through in examples/README.md:
//! a stock API, a health endpoint that can be switched off, and an existing confirm handler.
//!
//! ```sh
//! cargo run --example mock_shop                      # listens on 127.0.0.1:9090
//! cargo run --example mock_shop -- --listen 127.0.0.1:9191
//! ```
//!
//! With `SHOP_API_TOKEN` set, the stock API wants `Authorization: Bearer <token>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone)]
struct Shop {
    healthy: Arc<AtomicBool>,
    token: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = listen_addr().parse()?;
    let shop = Shop {
        healthy: Arc::new(AtomicBool::new(true)),
        token: std::env::var("SHOP_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/admin/health/down", post(health_down))
        .route("/admin/health/up", post(health_up))
        .route("/api/stock/{order_id}", get(stock))
        .route("/payments/confirm", post(existing_confirm))
        .layer(middleware::from_fn(log_request))
        .with_state(shop);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("mock shop listening on http://{listen}");
    axum::serve(listener, app).await?;
    Ok(())
}

fn listen_addr() -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            if let Some(addr) = args.next() {
                return addr;
            }
        }
    }
    std::env::var("MOCK_SHOP_LISTEN").unwrap_or_else(|_| "127.0.0.1:9090".into())
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
    "health is now 503\n"
}

async fn health_up(State(shop): State<Shop>) -> &'static str {
    shop.healthy.store(true, Ordering::SeqCst);
    "health is now 200\n"
}

/// Orders starting `soldout-` have nothing left; everything else has 5.
async fn stock(
    State(shop): State<Shop>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    if let Some(token) = &shop.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "bad token"})),
            )
                .into_response();
        }
    }
    let available = if order_id.starts_with("soldout-") {
        0
    } else {
        5
    };
    Json(json!({"order_id": order_id, "available": available})).into_response()
}

/// The confirm handler the merchant had before the proxy: it refuses `blocked-` orders.
async fn existing_confirm(Json(body): Json<Value>) -> Response {
    let order_id = body
        .get("merchant_uid")
        .or_else(|| body.get("payment_id"))
        .or_else(|| body.pointer("/data/paymentId"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if order_id.starts_with("blocked-") {
        return (
            StatusCode::CONFLICT,
            Json(json!({"reason": "차단된 주문입니다 (기존 확인 서버)"})),
        )
            .into_response();
    }
    Json(json!({"ok": true})).into_response()
}
