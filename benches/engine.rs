//! Engine microbenchmarks: payload parsing, evaluating the shipped default ruleset and a
//! 20-rule ruleset full of Rhai, and the whole HTTP handler without sockets. Also counts heap
//! allocations per evaluation. Run: `cargo bench --bench engine`.

// A bench that cannot set itself up should stop loudly, like a failed test.
#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use confirm_proxy::engine::{evaluate, Context, Original};
use confirm_proxy::payload::{self, ConfirmRequest, Parsed};
use confirm_proxy::rules::{load_dir, LoadOptions, Rules};
use confirm_proxy::script::ScriptEngine;
use confirm_proxy::server::{public_router, App, Config};
use confirm_proxy::upstream::canned::Canned;
use criterion::{criterion_group, criterion_main, Criterion};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::ServiceExt;

/// Counts allocations so a bench can report how many one evaluation makes.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/portone")
            .join(name),
    )
    .unwrap()
}

fn request(body: &[u8]) -> ConfirmRequest {
    match payload::parse(Some("application/json"), body).unwrap() {
        Parsed::Confirm(r) => r,
        Parsed::Ignored { .. } => unreachable!(),
    }
}

fn load(dir: &Path, scripts: &ScriptEngine) -> Rules {
    load_dir(
        dir,
        &LoadOptions {
            engine: scripts,
            env: &|_| None,
        },
    )
    .unwrap()
}

/// Twenty rules of the kind operators write: guards, string tests, arithmetic, payload fields,
/// and two scripts. Every rule passes, so every rule is evaluated.
fn twenty_rules(dir: &Path) {
    let mut yaml = String::from("rules:\n");
    for i in 0..6 {
        yaml += &format!(
            "  - name: prefix-{i}\n    require: '!order_id.starts_with(\"blocked-{i}-\") && !tx_id.ends_with(\"-x{i}\")'\n    reason: r\n"
        );
    }
    for i in 0..4 {
        yaml += &format!(
            "  - name: guarded-{i}\n    when: 'api == \"v1\" && amount > {i}'\n    require: 'amount * 2 - {i} < 10000000 && amount % 7 != {}'\n    reason: r\n",
            i + 100
        );
    }
    for i in 0..4 {
        yaml += &format!(
            "  - name: payload-{i}\n    require: 'payload.merchant_uid.len() > {i} && payload.imp_uid != \"imp_{i}\"'\n    reason: r\n"
        );
    }
    for i in 0..4 {
        yaml += &format!(
            "  - name: time-{i}\n    require: 'seoul_hour(now) >= 0 && one_of(order_id, [\"a{i}\", \"b{i}\"]) == false'\n    reason: r\n"
        );
    }
    yaml += "  - name: script-limit\n    script: limit.rhai\n    reason: r\n";
    yaml += "  - name: script-category\n    script: category.rhai\n    reason: r\n";
    std::fs::write(dir.join("default.yaml"), yaml).unwrap();
    std::fs::write(
        dir.join("limit.rhai"),
        "let limit = 1000000;\nif order_id.starts_with(\"vip-\") { limit = 5000000; }\namount <= limit",
    )
    .unwrap();
    std::fs::write(
        dir.join("category.rhai"),
        "let parts = order_id.split(\"-\");\nlet known = [\"order\", \"marathon\", \"ticket\"];\nknown.contains(parts[0])",
    )
    .unwrap();
}

fn allocations_per_call(label: &str, mut f: impl FnMut()) {
    const N: u64 = 1000;
    f();
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        f();
    }
    let stats = region.change();
    let per = (stats.allocations + stats.reallocations) as f64 / N as f64;
    println!("{label}: {per:.1} allocations per call");
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scripts = ScriptEngine::new();
    let v1 = testdata("v1.json");
    let v2 = testdata("v2-2024-04-25.json");

    c.bench_function("payload/parse v1", |b| {
        b.iter(|| payload::parse(Some("application/json"), &v1))
    });
    c.bench_function("payload/parse v2-2024-04-25", |b| {
        b.iter(|| payload::parse(Some("application/json"), &v2))
    });

    let shipped = load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
        &scripts,
    );
    let dir = tempfile::tempdir().unwrap();
    twenty_rules(dir.path());
    let twenty = load(dir.path(), &scripts);
    let req = request(&v1);
    let original = Original::default();
    let upstreams: Arc<Canned> = Arc::new(Canned::new());
    for (name, rules) in [("shipped default", &shipped), ("20 Rhai rules", &twenty)] {
        let ruleset = rules.get("default").unwrap().clone();
        let mut eval = || {
            let ctx = Context {
                scripts: &scripts,
                upstreams: upstreams.clone(),
                now: chrono::Utc::now().fixed_offset(),
                started: tokio::time::Instant::now(),
                original: &original,
            };
            let d = rt.block_on(evaluate(&ruleset, &req, &ctx));
            assert_eq!(
                d.decision,
                confirm_proxy::decision::Verdict::Approve,
                "{d:?}"
            );
        };
        allocations_per_call(&format!("evaluate {name}"), &mut eval);
        c.bench_function(&format!("evaluate/{name}"), |b| b.iter(&mut eval));
    }

    // The whole handler: guards, parse, evaluate, answer, metrics, log line — no sockets.
    let app = rt.block_on(async {
        let mut config = Config::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
        config.watch = false;
        App::start(config).await.unwrap()
    });
    let router = public_router(app.state());
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut handle = || {
        let req = Request::post("/confirm")
            .header("content-type", "application/json")
            .extension(ConnectInfo(peer))
            .body(Body::from(v1.clone()))
            .unwrap();
        let resp = rt.block_on(router.clone().oneshot(req)).unwrap();
        assert_eq!(resp.status(), 200);
    };
    allocations_per_call("handler shipped default", &mut handle);
    c.bench_function("handler/shipped default (no sockets)", |b| {
        b.iter(&mut handle)
    });
}

criterion_group!(engine, benches);
criterion_main!(engine);
