//! The admin listener: liveness, readiness, metrics, the rules view and the reload endpoint.
//! Never served on the public listener.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{healthz, AppState};
use crate::reload::{ReloadOutcome, Trigger};
use crate::rules::Check;

/// The admin routes. `on_loopback`: the listener is on a loopback address, so only requests
/// addressed to loopback (`localhost`, an IP address) are answered: see `addressed_to_loopback`.
pub fn admin_router(state: AppState, on_loopback: bool) -> Router {
    let admin = Router::new()
        .route("/admin/rules", get(admin_rules))
        .route("/admin/reload", post(admin_reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorized));
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(admin)
        .fallback(super::confirm::plain(StatusCode::NOT_FOUND))
        .with_state(state);
    let router = router.layer(middleware::from_fn(not_from_a_web_page));
    if on_loopback {
        router.layer(middleware::from_fn(addressed_to_loopback))
    } else {
        router
    }
}

/// A page open in a browser on an operator's machine may send requests to the admin listener
/// (a form's POST to `http://127.0.0.1:9901/admin/reload` needs no permission; only reading the
/// answer does), and the `Host` check cannot tell them apart: it names the listener as any
/// local tool does. Browsers say where such a request comes from, and tools (curl, Prometheus,
/// probes) send neither header: a request with an `Origin`, or whose `Sec-Fetch-Site` is not
/// `none` (typed in the address bar), is refused. Not even `same-origin`: the listener serves
/// no page of its own, so a page "of its origin" is one that reached it through DNS rebinding
/// (on a listener off loopback, where `Host` is not checked).
async fn not_from_a_web_page(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let from_a_page = headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() != b"none");
    if !from_a_page {
        return next.run(request).await;
    }
    let shown = |name: &str| {
        headers.get(name).map_or_else(String::new, |v| {
            crate::text::cut(&String::from_utf8_lossy(v.as_bytes()), 200).into_owned()
        })
    };
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        origin = %shown("origin"),
        sec_fetch_site = %shown("sec-fetch-site"),
        "admin request refused: sent by a web page (Origin or Sec-Fetch-Site)"
    );
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({
            "error": "the admin listener does not answer requests sent by web pages (the request has an Origin header, or a Sec-Fetch-Site other than none): use curl or another tool"
        })),
    )
        .into_response()
}

/// A listener on loopback can only be reached from this host, but a web page open on this host
/// can reach it too, by pointing a name of its own at 127.0.0.1 (DNS rebinding): the browser
/// then sends that name as `Host`, and the page could read the metrics and the rules. Callers
/// that really are local address the listener as `localhost` or by its IP address.
async fn addressed_to_loopback(request: Request, next: Next) -> Response {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let local = match (hosts.next(), hosts.next()) {
        // HTTP/1.0 without `Host`: not a browser, which always sends it.
        (None, _) => true,
        (Some(value), None) => value.to_str().is_ok_and(loopback_host),
        // Two are no request a browser sends, and which one a reader takes differs (RFC 9112
        // §3.2 says 400): not known to be addressed to loopback.
        (Some(_), Some(_)) => false,
    };
    // A request target in absolute form (`GET http://evil.example/metrics`) names the host
    // that counts (RFC 9112 §3.2.2): it must be loopback too. (Held to both, not to the target
    // alone: neither is a request a browser sends a server.)
    let target = request.uri().authority().map(|a| a.as_str());
    let local = local && target.is_none_or(loopback_host);
    if local {
        return next.run(request).await;
    }
    // An operator seeing 403s here wants to know which name was used: a browser tab pointed at
    // it, or a tool configured with a host name instead of `localhost`.
    let mut shown: Vec<String> = request
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(|v| crate::text::cut(&String::from_utf8_lossy(v.as_bytes()), 200).into_owned())
        .collect();
    if let Some(target) = target.filter(|t| !loopback_host(t)) {
        shown.push(format!("request target {}", crate::text::cut(target, 200)));
    }
    let why = if request.headers().get_all(header::HOST).iter().count() > 1 {
        "admin request refused: Host given more than once"
    } else if target.is_some_and(|t| !loopback_host(t)) {
        "admin request refused: not addressed to localhost or an IP address (the request target)"
    } else {
        "admin request refused: not addressed to localhost or an IP address (Host)"
    };
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        host = %shown.join(" | "),
        "{why}"
    );
    (
        StatusCode::FORBIDDEN,
        axum::Json(json!({
            "error": "the admin listener is on loopback and answers only requests addressed to localhost or an IP address (the Host header), so that a web page cannot reach it through DNS rebinding"
        })),
    )
        .into_response()
}

/// `Host` (with or without a port) names loopback by itself: `localhost`, or an IP address,
/// which a browser connects to as written.
fn loopback_host(host: &str) -> bool {
    // Nothing but digits after the name's `:`, if it has one.
    let port = |rest: &str| rest.is_empty() || rest.bytes().all(|b| b.is_ascii_digit());
    if let Some(bracketed) = host.strip_prefix('[') {
        // `[::1]:9901`: an IPv6 address, the only form with brackets.
        return bracketed.split_once(']').is_some_and(|(ip, rest)| {
            ip.parse::<std::net::Ipv6Addr>().is_ok()
                && (rest.is_empty() || rest.strip_prefix(':').is_some_and(port))
        });
    }
    let (name, rest) = host.rsplit_once(':').unwrap_or((host, ""));
    let name = name.strip_suffix('.').unwrap_or(name);
    port(rest)
        && (name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok())
}

/// The token of `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// With `--admin-token`, `/admin/*` needs `Authorization: Bearer <token>`.
async fn authorized(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.0.admin_token {
        // Given twice, neither line is read: which one decides would be up to the reader (a
        // proxy in front may read the other), as for a webhook header given twice.
        let mut lines = request.headers().get_all(header::AUTHORIZATION).iter();
        let given = match (lines.next(), lines.next()) {
            (Some(v), None) => v.to_str().ok().and_then(bearer_token).unwrap_or(""),
            _ => "",
        };
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            // The token given is never logged: it may be a near miss of the real one.
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                "admin request refused: missing or wrong admin token"
            );
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "missing or wrong admin token"})),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn readyz(State(state): State<AppState>) -> Response {
    let rules = state.0.store.current();
    // Named `ruleset/upstream`: rulesets may each have an upstream of the same name.
    let waiting: Vec<String> = rules
        .upstreams()
        .filter(|u| u.awaiting_first_probe())
        .map(|u| format!("{}/{}", u.ruleset, u.name))
        .collect();
    if waiting.is_empty() {
        axum::Json(json!({"ready": true, "version": rules.version})).into_response()
    } else if state.0.store.health_settled() {
        // Ready before: a `healthy` rule on a new upstream errors (on_error) until its first
        // probe answers, which is that rule's business, not a reason to stop all traffic.
        axum::Json(json!({"ready": true, "version": rules.version, "waiting_for_health": waiting}))
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "waiting_for_health": waiting})),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    // The upstream gauges (health, connections) are read from the generation in force at
    // this scrape.
    let rules = state.0.store.current();
    let now = chrono::Utc::now().timestamp();
    state.0.metrics.delivery_ids(state.0.deliveries.len_at(now));
    if let Some(watch) = state.0.store.watch_status() {
        state.0.metrics.rules_watched(watch.ok());
    }
    if let Some(log) = &state.0.decision_log {
        state.0.metrics.decision_log_backlog(log.backlog());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.0.metrics.render_with(&rules),
    )
        .into_response()
}

async fn admin_rules(State(state): State<AppState>) -> Response {
    let store = &state.0.store;
    let rules = store.current();
    let loaded_at: DateTime<Utc> = rules.loaded_at.into();
    let rulesets: Vec<_> = rules
        .rulesets
        .values()
        .map(|r| {
            json!({
                "name": r.name,
                "file": r.file.display().to_string(),
                "settings": {
                    "deadline_ms": r.settings.deadline.as_millis() as u64,
                    "on_error": r.settings.on_error,
                    "reject_status": r.settings.reject_status,
                    // What every buyer whose check could not complete reads: worth a look
                    // after an edit (a trial's).
                    "error_reason": r.settings.error_reason.to_string(),
                },
                // With its `when`: a rule held to an order prefix is not held to every order.
                "rules": r.rules.iter().map(|rule| json!({
                    "name": rule.name,
                    "when": rule.when.as_ref().map(|w| &w.src),
                    "check": rule.check.kind(),
                    "detail": check_detail(&rule.check),
                    "mode": rule.mode,
                })).collect::<Vec<_>>(),
                // Names and health only: URLs and headers may carry secrets from ${VAR}. A
                // down upstream says why, as a refusal's trace does (a trial had only "down").
                "upstreams": r.upstreams.values().map(|u| {
                    let health = u.health.as_ref().map(|_| u.state.get());
                    let mut shown = json!({"name": u.name, "health": health});
                    if health == Some(crate::rules::Health::Down) {
                        shown["probe_failure"] = json!(u.state.last_failure().as_deref());
                    }
                    shown
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let last_error = store.last_error().map(|e| {
        let at: DateTime<Utc> = e.at.into();
        json!({"at": at.to_rfc3339_opts(SecondsFormat::Secs, true), "errors": e.errors})
    });
    // Edits not picked up would otherwise look like edits that did not load.
    let watch = store.watch_status().map(|w| {
        json!({
            // Every edit picked up (the `confirm_proxy_rules_watched` gauge): not while the
            // path cannot be looked at either, when a directory swapped in is not noticed.
            "watching": w.ok(),
            "troubles": w.troubles().map(|t| {
                let since: DateTime<Utc> = t.since.into();
                json!({"since": since.to_rfc3339_opts(SecondsFormat::Secs, true), "message": t.message})
            }).collect::<Vec<_>>(),
        })
    });
    axum::Json(json!({
        "version": rules.version,
        "loaded_at": loaded_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "dir": store.dir().display().to_string(),
        "watch": watch,
        "rulesets": rulesets,
        "warnings": rules.warnings,
        "last_error": last_error,
    }))
    .into_response()
}

/// What a rule's check holds, for an operator confirming what is live after an edit: the
/// bounds of an `amount` or a `window` (as written: amounts exact, times with their offset), an
/// expression's text, the upstream a call goes to and a fetch's path. Never a header or an upstream's URL, which
/// may hold `${VAR}` secrets.
fn check_detail(check: &Check) -> serde_json::Value {
    let time = |t: &Option<DateTime<chrono::FixedOffset>>| t.map(|t| t.to_rfc3339());
    match check {
        Check::Approve => serde_json::Value::Null,
        Check::Amount { min, max } => {
            json!({"min": min.map(|d| d.to_string()), "max": max.map(|d| d.to_string())})
        }
        Check::Window { from, until } => json!({"from": time(from), "until": time(until)}),
        Check::Require(e) => json!({"require": e.src}),
        Check::Healthy(up) => json!({"upstream": up.name}),
        Check::Fetch(f) => json!({
            "upstream": f.upstream.name,
            "method": format!("{:?}", f.method),
            "path": f.path.to_string(),
            "require": f.require.as_ref().map(|e| &e.src),
        }),
        Check::Forward(f) => json!({"upstream": f.upstream.name, "path": f.path}),
        Check::Script { path, .. } => json!({"script": path}),
    }
}

async fn admin_reload(State(state): State<AppState>) -> Response {
    // A reload may wait for a rule file's writer (up to 30 s): at shutdown the caller is told
    // at once rather than cut off at the end of the grace period.
    let mut stopping = state.0.stopping.subscribe();
    let before = state.0.store.current().version.clone();
    let outcome = tokio::select! {
        outcome = state.0.reloader.reload(Trigger::Admin) => outcome,
        _ = stopping.wait_for(Option::is_some) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"applied": false, "errors": ["shutting down: the rules were not reloaded"], "version": state.0.store.current().version})),
            )
                .into_response();
        }
    };
    match outcome {
        Some(ReloadOutcome::Applied { version }) => {
            axum::Json(json!({"applied": true, "version": version})).into_response()
        }
        // Unchanged since the last load, which may have come after this request (the watcher
        // applying the same save while this reload waited for its writer): for the caller the
        // rules changed.
        Some(ReloadOutcome::Unchanged { version }) if version != before => {
            axum::Json(json!({"applied": true, "version": version})).into_response()
        }
        Some(ReloadOutcome::Unchanged { version }) => {
            axum::Json(json!({"applied": true, "unchanged": true, "version": version})).into_response()
        }
        Some(ReloadOutcome::Rejected { errors }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"applied": false, "errors": errors, "version": state.0.store.current().version})),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"applied": false, "errors": ["the reload loop has stopped"]})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::loopback_host;

    #[test]
    fn only_loopback_names_and_ip_addresses_are_local() {
        for host in [
            "localhost",
            "localhost:9901",
            "LocalHost.:9901",
            "127.0.0.1",
            "127.0.0.1:9901",
            "10.0.0.7:9901",
            "[::1]",
            "[::1]:9901",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:9901",
            "localhost.evil.example",
            "127.0.0.1.evil.example:9901",
            "app.localhost",
            "[::1",
            "[evil.example]:9901",
            "[::1]evil",
            "[::1]:evil",
            "localhost:evil",
            "my-host:9901",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }
}
