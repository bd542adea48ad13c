//! Hot reload through the real watcher: edits, invalid edits, rename-style saves, Kubernetes
//! ConfigMap symlink swaps, and the admin endpoint.

use std::time::Duration;

use confirm_proxy::server::Config;

use crate::support::*;

fn limit(max: u32) -> String {
    format!("rules:\n  - name: limit\n    amount: {{ max: {max} }}\n    reason: \"한도 {max}원 초과\"\n")
}

/// The reason of the answer to order `o-1` for `amount` (empty for an approval).
async fn reason_for(server: &Server, amount: i64) -> String {
    server
        .confirm_json("/confirm", &v1("o-1", amount))
        .await
        .reason()
        .to_owned()
}

/// How many reloads `server` has made, whatever their result.
async fn reloads(server: &Server) -> f64 {
    let text = server.metrics().await;
    ["applied", "unchanged", "rejected"]
        .iter()
        .map(|result| {
            let series = format!(r#"confirm_proxy_reloads_total{{result="{result}"}}"#);
            metric(&text, &series).unwrap_or_else(|| panic!("no {series}:\n{text}"))
        })
        .sum()
}

async fn reason_becomes(server: &Server, want: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        reason_for(server, 50_000).await == want
    })
    .await
}

#[tokio::test]
async fn edit_applies_and_invalid_edit_keeps_old_rules() {
    let rules = Rules::with("default.yaml", &limit(10_000));
    let server = Server::start(rules.path()).await;
    assert_eq!(reason_for(&server, 50_000).await, "한도 10000원 초과");

    let saved = std::time::Instant::now();
    rules.write("default.yaml", &limit(20_000));
    assert!(
        reason_becomes(&server, "한도 20000원 초과").await,
        "edit not applied"
    );
    eprintln!("save → new decision: {:?}", saved.elapsed());

    rules.write(
        "default.yaml",
        "rules:\n  - name: limit\n    amount: { mx: 1 }\n    reason: x\n",
    );
    let shown = eventually(Duration::from_secs(5), || async {
        !get(&server.admin_url("/admin/rules")).await.body["last_error"].is_null()
    })
    .await;
    assert!(shown, "the reload error is shown by /admin/rules");
    let status = get(&server.admin_url("/admin/rules")).await.body;
    let error = status["last_error"]["errors"][0].as_str().unwrap();
    assert!(
        error.ends_with(
            "default.yaml:3:15: rules[0].amount (rule \"limit\"): unknown field \"mx\", expected \"min\" or \"max\"; did you mean \"max\"?"
        ),
        "{error}"
    );
    assert_eq!(
        reason_for(&server, 50_000).await,
        "한도 20000원 초과",
        "old rules stay"
    );
    let metrics = server.metrics().await;
    assert!(
        metric(
            &metrics,
            r#"confirm_proxy_reloads_total{result="rejected"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    // Unlike the counter's increase, this stays 0 for as long as the files are broken.
    let successful = "confirm_proxy_rules_last_reload_successful";
    assert_eq!(metric(&metrics, successful), Some(0.0), "{metrics}");

    rules.write("default.yaml", &limit(30_000));
    assert!(reason_becomes(&server, "한도 30000원 초과").await);
    assert!(
        get(&server.admin_url("/admin/rules")).await.body["last_error"].is_null(),
        "a good reload clears the error"
    );
    assert_eq!(metric(&server.metrics().await, successful), Some(1.0));
    server.stop().await;
}

#[tokio::test]
async fn rename_style_save_is_seen() {
    let rules = Rules::with("default.yaml", &limit(10_000));
    let server = Server::start(rules.path()).await;
    // What vim and many editors do: write a new file, then rename it over the old one.
    rules.write(".default.yaml.swp", &limit(40_000));
    std::fs::rename(
        rules.path().join(".default.yaml.swp"),
        rules.path().join("default.yaml"),
    )
    .unwrap();
    assert!(reason_becomes(&server, "한도 40000원 초과").await);
    server.stop().await;
}

#[tokio::test]
async fn configmap_symlink_swap_is_seen() {
    // Kubernetes mounts a ConfigMap as ..data -> ..<timestamp>/ with files linking through it,
    // and updates it by atomically renaming a new ..data symlink over the old one.
    let rules = Rules::new();
    let root = rules.path();
    rules.write("..2026_11_25_01/default.yaml", &limit(10_000));
    std::os::unix::fs::symlink("..2026_11_25_01", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/default.yaml", root.join("default.yaml")).unwrap();
    let server = Server::start(root).await;
    assert_eq!(reason_for(&server, 50_000).await, "한도 10000원 초과");

    rules.write("..2026_11_25_02/default.yaml", &limit(45_000));
    std::os::unix::fs::symlink("..2026_11_25_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_11_25_01")).unwrap();
    assert!(reason_becomes(&server, "한도 45000원 초과").await);
    server.stop().await;
}

/// A rule file linked to a file outside the rules directory (a release area): no event of the
/// directory's watch tells of an edit there, and none of the target appearing after its link
/// was flipped to it too early. Both go live all the same; meanwhile the link to a missing
/// target is refused and the running rules stay (every payment got 404 when it was taken for
/// a removed ruleset).
#[tokio::test]
async fn a_rule_file_linked_from_outside_goes_live_when_its_target_changes() {
    let releases = Rules::new();
    releases.write("r1/default.yaml", &limit(10_000));
    let rules = Rules::new();
    let link = rules.path().join("default.yaml");
    std::os::unix::fs::symlink(releases.path().join("r1/default.yaml"), &link).unwrap();
    let server = Server::start(rules.path()).await;
    assert_eq!(reason_for(&server, 50_000).await, "한도 10000원 초과");

    releases.write("r1/default.yaml", &limit(20_000));
    assert!(
        reason_becomes(&server, "한도 20000원 초과").await,
        "an edit of the target outside did not go live"
    );

    // Flipped to a release not unpacked yet: refused, the running rules stay.
    let tmp = rules.path().join(".default.yaml.new");
    std::os::unix::fs::symlink(releases.path().join("r2/default.yaml"), &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    let refused = eventually(Duration::from_secs(5), || async {
        let shown = get(&server.admin_url("/admin/rules")).await;
        shown.body.to_string().contains("which does not exist")
    })
    .await;
    assert!(refused, "the missing target was not reported");
    assert_eq!(reason_for(&server, 50_000).await, "한도 20000원 초과");
    releases.write("r2/default.yaml", &limit(30_000));
    assert!(
        reason_becomes(&server, "한도 30000원 초과").await,
        "the target appearing did not go live"
    );
    server.stop().await;
}

/// A deploy that points the rules path at a new release (a `current` symlink flipped, or a
/// directory swapped in with `mv`): the new directory is watched, so the swap and every edit
/// after it go live (inotify watches the directory, not the path).
#[tokio::test]
async fn a_replaced_rules_directory_is_watched_in_its_place() {
    let root = Rules::new();
    let base = root.path();
    root.write("rel1/default.yaml", &limit(10_000));
    root.write("rel2/default.yaml", &limit(20_000));
    std::os::unix::fs::symlink("rel1", base.join("current")).unwrap();
    let server = Server::start(&base.join("current")).await;
    assert!(reason_becomes(&server, "한도 10000원 초과").await);

    // Flip the symlink atomically to the second release, then edit there.
    std::os::unix::fs::symlink("rel2", base.join("current.tmp")).unwrap();
    std::fs::rename(base.join("current.tmp"), base.join("current")).unwrap();
    assert!(reason_becomes(&server, "한도 20000원 초과").await);
    root.write("rel2/default.yaml", &limit(30_000));
    assert!(reason_becomes(&server, "한도 30000원 초과").await);
    // The old release no longer counts: an edit there sets off no reload at all. A reload would
    // read rel2 and find it unchanged, so only the count of reloads can tell. That count moves
    // for a save in the release watched, even one that changes nothing...
    let before = reloads(&server).await;
    root.write("rel2/default.yaml", &limit(30_000));
    let counted = eventually(Duration::from_secs(5), || async {
        reloads(&server).await > before
    })
    .await;
    assert!(counted, "a save in the watched release was not seen");
    // ...and stays put for one in the old release. An admin reload, answered once every reload
    // asked for before it is done and counted, leaves none of those to come.
    let settled = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(settled.body["unchanged"], true, "{:?}", settled.body);
    let before = reloads(&server).await;
    root.write("rel1/default.yaml", &limit(11_000));
    // A watch event reloads after 300 ms of quiet: four times that is ample for a watch to show.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        reloads(&server).await,
        before,
        "an edit of the old release set off a reload"
    );
    assert_eq!(reason_for(&server, 50_000).await, "한도 30000원 초과");
    // Pointed at a release that is not there: the running rules stay, and the failed reload
    // is shown (and counted) like any other.
    std::os::unix::fs::symlink("rel9", base.join("current.tmp")).unwrap();
    std::fs::rename(base.join("current.tmp"), base.join("current")).unwrap();
    let shown = eventually(Duration::from_secs(5), || async {
        get(&server.admin_url("/admin/rules")).await.body["last_error"].is_object()
    })
    .await;
    assert!(
        shown,
        "{:?}",
        get(&server.admin_url("/admin/rules")).await.body
    );
    assert!(reason_becomes(&server, "한도 30000원 초과").await);
    server.stop().await;

    // A directory swapped in by renames.
    let root = Rules::new();
    let base = root.path();
    root.write("rules/default.yaml", &limit(10_000));
    root.write("next/default.yaml", &limit(40_000));
    let server = Server::start(&base.join("rules")).await;
    std::fs::rename(base.join("rules"), base.join("old")).unwrap();
    std::fs::rename(base.join("next"), base.join("rules")).unwrap();
    assert!(reason_becomes(&server, "한도 40000원 초과").await);
    root.write("rules/default.yaml", &limit(41_000));
    assert!(reason_becomes(&server, "한도 41000원 초과").await);
    // Removed and created again at once, which on some file systems gives the new directory
    // the old one's inode number: it is told apart all the same, and edits in it go live.
    std::fs::remove_dir_all(base.join("rules")).unwrap();
    root.write("rules/default.yaml", &limit(42_000));
    assert!(reason_becomes(&server, "한도 42000원 초과").await);
    // Time for the check of which directory the path names (every second) to move the watch to
    // the new directory: 42000 may have come before that, by the reload the old watch set off
    // when its directory was removed, and an edit made before the move would go live by the
    // reload the move makes, whether or not the new directory is watched. Nothing the proxy
    // shows tells that the move is done, so this is a wait, not a condition.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    root.write("rules/default.yaml", &limit(43_000));
    assert!(reason_becomes(&server, "한도 43000원 초과").await);
    // Audit: a directory gone was still shown as watched. It is not, until one is there again.
    let watching =
        || async { get(&server.admin_url("/admin/rules")).await.body["watch"]["watching"].clone() };
    std::fs::remove_dir_all(base.join("rules")).unwrap();
    let unwatched = eventually(Duration::from_secs(5), || async {
        watching().await == serde_json::json!(false)
    })
    .await;
    assert!(
        unwatched,
        "{:?}",
        get(&server.admin_url("/admin/rules")).await.body
    );
    root.write("rules/default.yaml", &limit(44_000));
    assert!(reason_becomes(&server, "한도 44000원 초과").await);
    let watched = eventually(Duration::from_secs(5), || async {
        watching().await == serde_json::json!(true)
    })
    .await;
    assert!(watched);
    server.stop().await;
}

#[tokio::test]
async fn admin_reload_is_synchronous() {
    let rules = Rules::with("default.yaml", &limit(10_000));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let url = server.admin_url("/admin/reload");

    rules.write("default.yaml", &limit(60_000));
    let a = post(&url, None, "").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["applied"], true);
    let version = a.body["version"].as_str().unwrap().to_owned();
    assert_eq!(reason_for(&server, 70_000).await, "한도 60000원 초과");
    assert_eq!(
        get(&server.admin_url("/admin/rules")).await.body["version"],
        version.as_str()
    );

    rules.write("default.yaml", "rules: [");
    let a = post(&url, None, "").await;
    assert_eq!(a.status, 422);
    assert_eq!(a.body["applied"], false);
    assert!(
        a.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("default.yaml:1:8: did not find expected node content"),
        "{:?}",
        a.body
    );
    assert_eq!(reason_for(&server, 70_000).await, "한도 60000원 초과");
    server.stop().await;
}

/// A reload that finds a rule file empty — an editor saving in place has just truncated it —
/// reads again once it is quiet rather than refusing the save; one left empty is refused.
#[tokio::test]
async fn a_reload_meeting_a_file_just_truncated_waits_for_its_content() {
    let rules = Rules::with("default.yaml", &limit(10_000));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let url = server.admin_url("/admin/reload");

    rules.write("default.yaml", "");
    let writer = {
        let path = rules.path().join("default.yaml");
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(path, limit(60_000)).unwrap();
        })
    };
    let a = post(&url, None, "").await;
    writer.await.unwrap();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["applied"], true);
    assert_eq!(reason_for(&server, 70_000).await, "한도 60000원 초과");

    rules.write("default.yaml", "");
    let a = post(&url, None, "").await;
    assert_eq!(a.status, 422, "{:?}", a.body);
    server.stop().await;
}

#[tokio::test]
async fn in_flight_requests_finish_on_their_rules() {
    // The request starts on version 1 and waits on a slow upstream while the rules change;
    // it still answers with version 1's reason.
    let shop = MockUpstream::start(axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            axum::Json(serde_json::json!({"ok": false}))
        }),
    ))
    .await;
    let yaml = |version: u32| {
        format!(
            "upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - name: slow\n    fetch: {{ upstream: shop, path: /slow }}\n    require: 'response.body.ok'\n    reason: \"버전 {version}\"\n",
            shop.url()
        )
    };
    let rules = Rules::with("default.yaml", &yaml(1));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let url = server.url("/confirm");
    let in_flight =
        tokio::spawn(async move { post(&url, Some("application/json"), v1("o-1", 5)).await });
    assert!(
        eventually(Duration::from_secs(2), || async {
            shop.calls_to("/slow") == 1
        })
        .await
    );
    rules.write("default.yaml", &yaml(2));
    let reload = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(reload.body["applied"], true);
    assert_eq!(in_flight.await.unwrap().reason(), "버전 1");
    assert_eq!(reason_for(&server, 5).await, "버전 2");
    server.stop().await;
}

#[tokio::test]
async fn saving_only_a_script_reloads() {
    let rules = Rules::with("default.yaml", "rules:\n  - name: s\n    script: s.rhai\n");
    rules.write("s.rhai", "\"첫 번째\"");
    let server = Server::start(rules.path()).await;
    assert_eq!(reason_for(&server, 50_000).await, "첫 번째");
    rules.write("s.rhai", "\"두 번째\"");
    assert!(reason_becomes(&server, "두 번째").await);
    server.stop().await;
}

#[tokio::test]
async fn test_on_reload_refuses_rules_that_break_their_tests() {
    let rules = Rules::with("default.yaml", &limit(10_000));
    rules.write(
        "tests/limit.yaml",
        "ruleset: default\ncases:\n  - name: 20000 is too much\n    request: { imp_uid: i, merchant_uid: m, amount: 20000 }\n    expect: { decision: reject, rule: limit }\n",
    );
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let scripts = std::sync::Arc::new(confirm_proxy::script::ScriptEngine::new());
    config.gate = Some(std::sync::Arc::new(move |dir, r| {
        confirm_proxy::ruletest::gate(dir, r, &scripts)
    }));
    let server = Server::start_with(config).await;

    rules.write("default.yaml", &limit(30_000));
    let a = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(a.status, 422, "{:?}", a.body);
    assert!(
        a.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("20000 is too much"),
        "{:?}",
        a.body
    );
    let shown = get(&server.admin_url("/admin/rules")).await.body;
    assert!(
        shown["last_error"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("expected decision reject, got approve"),
        "{shown}"
    );
    assert_eq!(
        server
            .confirm_json("/confirm", &v1("o", 20_000))
            .await
            .reason(),
        "한도 10000원 초과",
        "the running rules stay"
    );

    rules.write("default.yaml", &limit(15_000));
    assert_eq!(
        post(&server.admin_url("/admin/reload"), None, "")
            .await
            .status,
        200
    );
    server.stop().await;
}

/// A ruleset whose one rule runs `scripts/chk.txt`: a script need not be named `.rhai`.
const TXT_SCRIPT_RULES: &str = "rules:\n  - name: chk\n    script: scripts/chk.txt\n";

#[tokio::test]
async fn saving_a_script_of_any_name_reloads() {
    let rules = Rules::with("default.yaml", TXT_SCRIPT_RULES);
    rules.write("scripts/chk.txt", "\"첫 번째\"");
    let server = Server::start(rules.path()).await;
    assert_eq!(reason_for(&server, 50_000).await, "첫 번째");
    let version = get(&server.admin_url("/admin/rules")).await.body["version"].clone();

    rules.write("scripts/chk.txt", "\"두 번째\"");
    assert!(
        reason_becomes(&server, "두 번째").await,
        "the watcher did not reload for scripts/chk.txt"
    );
    assert_ne!(
        get(&server.admin_url("/admin/rules")).await.body["version"],
        version,
        "the rules version covers the script"
    );
    // Files no rule reads (notes next to the scripts) do not count.
    let version = get(&server.admin_url("/admin/rules")).await.body["version"].clone();
    rules.write("scripts/notes.txt", "not a script");
    let unchanged = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(unchanged.body["unchanged"], true, "{:?}", unchanged.body);
    assert_eq!(unchanged.body["version"], version);

    // A rule that names a script not written yet: the reload fails; writing the script, with
    // its name no rule file had before, reloads by itself.
    rules.write(
        "default.yaml",
        "rules:\n  - name: chk\n    script: scripts/later.js\n",
    );
    let shown = eventually(Duration::from_secs(5), || async {
        !get(&server.admin_url("/admin/rules")).await.body["last_error"].is_null()
    })
    .await;
    assert!(shown, "the missing script is reported");
    rules.write("scripts/later.js", "\"세 번째\"");
    assert!(
        reason_becomes(&server, "세 번째").await,
        "the watcher did not reload for the new script"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_reload_applies_an_edited_script_of_any_name() {
    let rules = Rules::with("default.yaml", TXT_SCRIPT_RULES);
    rules.write("scripts/chk.txt", "\"첫 번째\"");
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let url = server.admin_url("/admin/reload");

    rules.write("scripts/chk.txt", "\"두 번째\"");
    let a = post(&url, None, "").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["applied"], true);
    assert!(a.body["unchanged"].is_null(), "{:?}", a.body);
    assert_eq!(reason_for(&server, 50_000).await, "두 번째");
    // Nothing changed since: now it is unchanged.
    let again = post(&url, None, "").await;
    assert_eq!(again.body["unchanged"], true, "{:?}", again.body);
    assert_eq!(again.body["version"], a.body["version"]);
    server.stop().await;
}

/// Audit: a reload that moved an upstream to a new URL went live with its health unknown, so
/// `healthy` rules refused payments (on_error) until the first probe answered.
#[tokio::test]
async fn a_moved_upstream_is_probed_before_the_new_rules_go_live() {
    let health = || axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let (old, new) = (
        MockUpstream::start(health()).await,
        MockUpstream::start(health()).await,
    );
    let yaml = |url: &str| {
        // A long interval: only the first probe of each generation can settle the state.
        format!("upstreams:\n  shop: {{ url: \"{url}\", health: {{ path: /health, interval: 1m }} }}\nrules:\n  - name: up\n    healthy: shop\n    reason: 점검 중\n")
    };
    let rules = Rules::with("default.yaml", &yaml(&old.url()));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .confirm_json("/confirm", &v1("o-1", 1000))
                .await
                .status
                == 200
        })
        .await
    );
    rules.write("default.yaml", &yaml(&new.url()));
    let reload = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    assert_eq!(new.calls_to("/health"), 1, "probed before the swap");
    let a = server.confirm_json("/confirm", &v1("o-2", 1000)).await;
    assert_eq!((a.status, a.decision()), (200, "approve"), "{:?}", a.body);
    server.stop().await;
}

/// Audit: every reload built new HTTP clients, so the first fetch after it opened a connection
/// (a handshake on a payment's time) and the old ones were left to close. An upstream the new
/// rules still have keeps its connections.
#[tokio::test]
async fn a_reload_keeps_the_connections_to_an_upstream_it_still_has() {
    let shop = MockUpstream::answering("/stock", r#"{"left":3}"#.to_owned()).await;
    let yaml = |reason: &str| {
        format!("upstreams:\n  shop: {{ url: \"{}\" }}\nrules:\n  - name: stock\n    fetch: {{ upstream: shop, path: /stock }}\n    require: response.body.left > 0\n    reason: {reason}\n", shop.url())
    };
    let rules = Rules::with("default.yaml", &yaml("품절"));
    let mut config = Config::new(rules.path().to_owned());
    config.watch = false;
    let server = Server::start_with(config).await;
    let first = server.confirm_json("/confirm", &v1("o-1", 1000)).await;
    assert_eq!(first.decision(), "approve", "{:?}", first.body);
    rules.write("default.yaml", &yaml("재고 없음"));
    let reload = post(&server.admin_url("/admin/reload"), None, "").await;
    assert_eq!(reload.status, 200, "{:?}", reload.body);
    assert!(
        reload.body.to_string().contains("applied"),
        "{:?}",
        reload.body
    );
    let second = server.confirm_json("/confirm", &v1("o-2", 1000)).await;
    assert_eq!(second.decision(), "approve", "{:?}", second.body);
    let calls = shop.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(
        calls[0].peer, calls[1].peer,
        "a new connection after the reload"
    );
    server.stop().await;
}
