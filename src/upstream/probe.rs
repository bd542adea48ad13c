//! Background health probes: one task per upstream with a `health` block, owned by the
//! generation of rules that started it.

use std::sync::Arc;

use super::{send, HttpCall};
use crate::rules::{Health, Rules, Upstream};

/// Called after every probe (metrics count it): the upstream, why this probe failed (`None`
/// when it succeeded), and the state after it (the two differ while `unhealthy_after` /
/// `healthy_after` are still counting). The state itself lives in [`Upstream::state`], where
/// readiness, `healthy` rules and the `/metrics` health gauge read it.
pub type HealthObserver = Arc<dyn Fn(&Upstream, Option<&str>, Health) + Send + Sync>;

/// Starts one probe per upstream with a `health` block; the tasks belong to this generation of
/// rules and stop when it is dropped.
pub fn start_probes(rules: &Rules, observer: HealthObserver) {
    start_probes_of(rules, rules.upstreams(), observer);
}

/// Starts the probes of `upstreams` only (of `rules`, which owns the tasks): `eval` asks about
/// one ruleset, and must not probe every other ruleset's merchant, nor wait for them.
pub fn start_probes_of<'a>(
    rules: &Rules,
    upstreams: impl Iterator<Item = &'a Arc<Upstream>>,
    observer: HealthObserver,
) {
    for up in upstreams {
        if up.health.is_some() {
            let task = tokio::spawn(probe(up.clone(), observer.clone()));
            rules.own_task(task.abort_handle());
        }
    }
}

async fn probe(up: Arc<Upstream>, observer: HealthObserver) {
    let Some(spec) = up.health.clone() else {
        return;
    };
    // An upstream the replaced rules probed already goes on at its pace: a reload neither
    // probes every upstream at once nor resets their counts.
    let first = match up.state.last_probe() {
        Some(last) => last + spec.interval,
        None => tokio::time::Instant::now(),
    };
    let mut ticker = tokio::time::interval_at(first, spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sent = ticker.tick().await;
        let call = HttpCall {
            rule: None,
            method: http::Method::GET,
            path_and_query: spec.path.clone(),
            headers: http::HeaderMap::new(),
            body: None,
            body_by: None,
        };
        // Why a probe failed, for the operator reading the log when the shop goes down.
        let failure = match send(&up, call).await {
            // An answer whose body stops coming (the upstream closes early, or is still
            // sending at its timeout) is no health: the service is stuck or going down.
            Ok(r) if (200..300).contains(&r.status) => match &r.incomplete {
                Some(why) if r.stopped_coming() => Some(format!(
                    "{} answered {}, but its body was {why}",
                    spec.path, r.status
                )),
                _ => None,
            },
            Ok(r) => Some(format!("{} answered {}", spec.path, r.status)),
            Err(e) => Some(format!("{}: {e}", spec.path)),
        };
        let ok = failure.is_none();
        let in_a_row = up.state.count(ok, sent);
        let before = up.state.get();
        // The first result settles an unknown state at once so readiness comes quickly;
        // after that the thresholds keep one blip from flapping decisions.
        let after = match before {
            Health::Unknown => {
                if ok {
                    Health::Up
                } else {
                    Health::Down
                }
            }
            Health::Up if !ok && in_a_row >= spec.unhealthy_after => Health::Down,
            Health::Down if ok && in_a_row >= spec.healthy_after => Health::Up,
            same => same,
        };
        if after != before {
            up.state.set(after);
            match (after, &failure) {
                (Health::Down, Some(cause)) => tracing::warn!(
                    ruleset = %up.ruleset,
                    upstream = %up.name,
                    from = %before,
                    failed_probes = in_a_row,
                    "upstream unhealthy: {cause}"
                ),
                _ => tracing::info!(
                    ruleset = %up.ruleset,
                    upstream = %up.name,
                    from = %before,
                    "upstream healthy"
                ),
            }
        }
        observer(&up, failure.as_deref(), after);
    }
}
