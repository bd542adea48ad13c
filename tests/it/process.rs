//! The real binary: signals, graceful shutdown, start-up with invalid rules.

use std::time::Duration;

use crate::support::*;

const LIMIT: &str =
    "rules:\n  - name: limit\n    amount: { max: 10000 }\n    reason: \"한도 초과\"\n";

#[tokio::test]
async fn sighup_reloads() {
    let rules = Rules::with("default.yaml", LIMIT);
    // Watching is on too, but SIGHUP must work on its own: the edit and the signal both go
    // through the one reload loop.
    let proc = Process::serve(rules.path(), &[]).await;
    let url = proc.url("/confirm");
    assert_eq!(
        post(&url, Some("application/json"), v1("o", 50_000))
            .await
            .status,
        409
    );
    rules.write("default.yaml", &LIMIT.replace("10000", "100000"));
    proc.signal("HUP");
    let applied = eventually(Duration::from_secs(5), || async {
        post(&url, Some("application/json"), v1("o", 50_000))
            .await
            .status
            == 200
    })
    .await;
    assert!(applied, "{}", proc.log_text());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let shop = MockUpstream::start(axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            "ok"
        }),
    ))
    .await;
    let rules = Rules::with(
        "default.yaml",
        &format!("upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - name: slow\n    fetch: {{ upstream: shop, path: /slow }}\n    reason: x\n", shop.url()),
    );
    let log = rules.path().join("decisions.jsonl");
    let mut proc = Process::serve(rules.path(), &["--decision-log", log.to_str().unwrap()]).await;
    let url = proc.url("/confirm");
    let in_flight =
        tokio::spawn(async move { post(&url, Some("application/json"), v1("o-1", 5)).await });
    assert!(
        eventually(Duration::from_secs(2), || async {
            shop.calls_to("/slow") == 1
        })
        .await
    );
    proc.signal("TERM");
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "the in-flight request is answered");
    let status = tokio::time::timeout(Duration::from_secs(5), proc.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit {status:?}\n{}", proc.log_text());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&answer.decision_id()),
        "the decision log is flushed on SIGTERM"
    );
    // New connections are refused once it has stopped.
    assert!(client().post(proc.url("/confirm")).send().await.is_err());
}

#[tokio::test]
async fn invalid_rules_at_start_up_exit_non_zero_with_the_location() {
    let rules = Rules::with("default.yaml", "rules:\n  - name: a\n    amount: { min: 1 }\n    reason: x\n  - name: a\n    require: 'true'\n    reason: y\n");
    let out = tokio::process::Command::new(binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--rules",
        ])
        .arg(rules.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = rules.path().join("default.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:5:11: duplicate rule name \"a\" (first used at line 2)",
            file.display()
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigusr1_reopens_the_decision_log_for_rotation() {
    let rules = Rules::with("default.yaml", LIMIT);
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("decisions.jsonl");
    let mut proc = Process::serve(rules.path(), &["--decision-log", log.to_str().unwrap()]).await;
    let url = proc.url("/confirm");
    let mut before = Vec::new();
    for i in 0..5 {
        before.push(
            post(&url, Some("application/json"), v1(&format!("a-{i}"), 5))
                .await
                .decision_id(),
        );
    }
    // What logrotate does: rename, then signal. Records still queued go to the renamed file.
    let rotated = logs.path().join("decisions.jsonl.1");
    assert!(
        eventually(Duration::from_secs(3), || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .count()
                == 5
        })
        .await
    );
    std::fs::rename(&log, &rotated).unwrap();
    proc.signal("USR1");
    assert!(
        eventually(Duration::from_secs(3), || async { log.exists() }).await,
        "reopened"
    );
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(
            post(
                &url,
                Some("application/json"),
                v1(&format!("b-{i}"), 50_000),
            )
            .await
            .decision_id(),
        );
    }
    proc.signal("TERM");
    proc.child.wait().await.unwrap();
    let ids = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["decision_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(ids(&rotated), before);
    assert_eq!(ids(&log), after);
}
