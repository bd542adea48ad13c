//! The ceiling for any HTTP service on this machine: a bare axum server answering 200 with the
//! proxy's approve body to every request (any method, any path). `scripts/bench.sh` measures
//! the proxy against it. Like the proxy it runs on tokio's multi-threaded runtime (one worker per
//! core) and axum's HTTP/1 server, so the difference is the work the proxy does per request.
//!
//! `cargo run --release --example bench_baseline -- --listen 127.0.0.1:18000`

use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;

async fn approve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        r#"{"decision":"approve"}"#,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:18000".into());
    let app = Router::new().fallback(approve);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("baseline listening on {listen}");
    axum::serve(listener, app).await
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
