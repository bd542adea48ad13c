//! A merchant upstream with a controlled delay, for the load benchmark:
//! `GET /stock/{id}` answers `{"available":3}` after `--delay-ms` (default 2),
//! `GET /slow/{ms}` after that many milliseconds, `GET /health` at once.
//!
//! `cargo run --release --example bench_upstream -- --listen 127.0.0.1:18100 --delay-ms 2`

use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn stock(State(delay): State<Duration>) -> Json<Value> {
    tokio::time::sleep(delay).await;
    Json(json!({"available": 3}))
}

async fn slow(Path(ms): Path<u64>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"ok": true}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:18100".into());
    let delay_ms: u64 = arg("--delay-ms").and_then(|d| d.parse().ok()).unwrap_or(2);
    let app = Router::new()
        .route("/stock/{id}", get(stock))
        .route("/slow/{ms}", get(slow))
        .route("/health", get(|| async { "ok" }))
        .with_state(Duration::from_millis(delay_ms));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("bench upstream listening on {listen} (stock delay {delay_ms} ms)");
    axum::serve(listener, app).await
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
