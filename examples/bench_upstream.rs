//! A merchant upstream with a controlled delay, for the load benchmark (`scripts/bench.sh`):
//!
//! - `GET /stock/{id}` answers `{"available":3}` after `--delay-ms` (default 2), or after
//!   `?delay_ms=N` when the request gives one;
//! - `GET /slow/{ms}` answers `{"ok":true}` after that many milliseconds;
//! - `GET /health` answers at once.
//!
//! `cargo run --release --example bench_upstream -- --listen 127.0.0.1:18100 --delay-ms 2`

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Delay {
    delay_ms: Option<u64>,
}

async fn stock(
    State(default): State<Duration>,
    Path(_id): Path<String>,
    Query(q): Query<Delay>,
) -> Json<Value> {
    // tokio's timer rounds up to whole milliseconds, which would make "2 ms" anything from 2 to
    // 3 ms depending on when the request arrives, and the proxy's added latency unreadable. A
    // thread's sleep is exact to about 0.1 ms.
    let delay = q.delay_ms.map_or(default, Duration::from_millis);
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    Json(json!({"available": 3}))
}

async fn slow(Path(ms): Path<u64>) -> Json<Value> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"ok": true}))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:18100".into());
    let delay_ms: u64 = match arg("--delay-ms") {
        Some(d) => d.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("--delay-ms {d}: expected a number of milliseconds"),
            )
        })?,
        None => 2,
    };
    let app = Router::new()
        .route("/stock/{id}", get(stock))
        .route("/slow/{ms}", get(slow))
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
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
