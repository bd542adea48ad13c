//! Background health probes: one task per distinct probe (an upstream with a `health` block,
//! or several that would send the very same probe), owned by the generation of rules that
//! started it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    for members in same_probes(upstreams) {
        let task = tokio::spawn(probe(members, observer.clone()));
        rules.own_task(task.abort_handle());
    }
}

/// What makes two upstreams' probes the same: the request sent (url, headers, path), how long
/// it may take, and how often and how strictly it is counted.
#[derive(PartialEq, Eq, Hash)]
struct ProbeKey<'a> {
    url: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    timeout: Duration,
    interval: Duration,
    unhealthy_after: u32,
    healthy_after: u32,
}

/// The probed upstreams, grouped so that upstreams whose probes would be the same share one:
/// an operator with a ruleset per store, each naming the same `shop` with the same health
/// check, gets one probe of the shop rather than one per file, and every ruleset sees the
/// same health at the same moment.
fn same_probes<'a>(upstreams: impl Iterator<Item = &'a Arc<Upstream>>) -> Vec<Vec<Arc<Upstream>>> {
    let mut groups: Vec<Vec<Arc<Upstream>>> = Vec::new();
    let mut index: HashMap<ProbeKey<'a>, usize> = HashMap::new();
    for up in upstreams {
        let Some(spec) = &up.health else {
            continue;
        };
        let key = ProbeKey {
            url: &up.url,
            path: &spec.path,
            headers: sorted_headers(up),
            timeout: up.timeout,
            interval: spec.interval,
            unhealthy_after: spec.unhealthy_after,
            healthy_after: spec.healthy_after,
        };
        let at = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[at].push(up.clone());
    }
    groups
}

fn sorted_headers(up: &Upstream) -> Vec<(&str, &[u8])> {
    let mut headers: Vec<_> = (up.headers.iter())
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    headers.sort_unstable();
    headers
}

/// Whether `a` and `b` send the same probe (url, path, headers, timeout), so that what one
/// found holds for the other: a reload that fixes a probe's token must not carry the `down`
/// its 401s made, nor one that breaks it carry the `up`.
pub fn same_probe_request(a: &Upstream, b: &Upstream) -> bool {
    match (&a.health, &b.health) {
        (Some(x), Some(y)) => {
            a.url == b.url
                && x.path == y.path
                && a.timeout == b.timeout
                && sorted_headers(a) == sorted_headers(b)
        }
        _ => false,
    }
}

/// Probes on behalf of `members` (one or more upstreams with the same probe): the one probed
/// most recently goes on at its pace, and every member takes its state after each probe.
async fn probe(members: Vec<Arc<Upstream>>, observer: HealthObserver) {
    let Some(up) = members.iter().max_by_key(|m| m.state.last_probe()).cloned() else {
        return;
    };
    let Some(spec) = up.health.clone() else {
        return;
    };
    let others: Vec<_> = members
        .iter()
        .filter(|m| !Arc::ptr_eq(m, &up))
        .cloned()
        .collect();
    // The latest results go on counting under this probe's thresholds (a reload may have
    // changed them, or `up` was probed on its own until now, more or less strictly), and a
    // ruleset added beside one already probed knows the shop's health at once.
    let (was, now) = up.state.settle(&spec);
    let streak = up.state.streak();
    for member in &members {
        let before = if Arc::ptr_eq(member, &up) {
            was
        } else {
            let before = member.state.get();
            member.state.carry(&up.state);
            before
        };
        if before != now && before != Health::Unknown {
            let cause = (now == Health::Down)
                .then(|| format!("the latest {} probes failed", streak.unsigned_abs()));
            log_change(member, before, now, cause.as_deref(), streak.unsigned_abs());
        }
    }
    // An upstream the replaced rules probed already goes on at its pace: a reload neither
    // probes every upstream at once nor resets their counts.
    let first = match up.state.last_probe() {
        Some(last) => last + spec.interval,
        None => tokio::time::Instant::now(),
    };
    let mut ticker = tokio::time::interval_at(first, spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Counts one result, settles the state and tells every member.
    let record = |failure: Option<&str>, sent| {
        let in_a_row = up.state.count(failure, sent);
        let (before, after) = up.state.settle(&spec);
        for member in &others {
            member.state.carry(&up.state);
        }
        for member in &members {
            if after != before {
                log_change(member, before, after, failure, in_a_row);
            }
            observer(member, failure, after);
        }
    };
    loop {
        let sent = ticker.tick().await;
        // The tick says when the probe was due, which for the first one after a reload is the
        // replaced rules' time; the clock says how long probes have gone unanswered.
        let now = tokio::time::Instant::now();
        // Probes the replaced rules sent and a reload stopped before they were answered, none
        // answered for longer than the timeout: a failure, as that probe would have been.
        if let Some(since) = up
            .state
            .unanswered_since()
            .filter(|&since| now.duration_since(since) >= up.timeout)
        {
            let failure = format!(
                "{}: no answer within {:?} (the probes were stopped by reloads of the rules before their timeout)",
                spec.path, up.timeout
            );
            record(Some(&failure), since);
        }
        up.state.sending(now);
        let call = HttpCall {
            rule: None,
            method: http::Method::GET,
            path_and_query: spec.path.clone(),
            headers: http::HeaderMap::new(),
            body: None,
            body_by: None,
            slot: Default::default(),
            end: None,
        };
        // Why a probe failed, for the operator reading the log when the shop goes down.
        let failure = match send(&up, call, || ()).await {
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
        record(failure.as_deref(), sent);
    }
}

fn log_change(up: &Upstream, before: Health, after: Health, failure: Option<&str>, in_a_row: u32) {
    match (after, failure) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::HealthSpec;

    fn probed(
        ruleset: &str,
        headers: &[(&'static str, &'static str)],
        timeout_ms: u64,
    ) -> Arc<Upstream> {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, http::HeaderValue::from_static(value));
        }
        Arc::new(Upstream {
            ruleset: ruleset.into(),
            headers: map,
            health: Some(HealthSpec {
                path: "/health".into(),
                interval: Duration::from_secs(5),
                unhealthy_after: 2,
                healthy_after: 1,
            }),
            ..Upstream::for_tests("http://shop.invalid", Duration::from_millis(timeout_ms))
        })
    }

    #[test]
    fn only_upstreams_sending_the_same_probe_share_it() {
        let ups = [
            probed("a", &[("x-key", "1"), ("x-store", "s")], 500),
            // The same headers written in another order: the same probe.
            probed("b", &[("x-store", "s"), ("x-key", "1")], 500),
            probed("c", &[("x-key", "2"), ("x-store", "s")], 500),
            probed("d", &[("x-key", "1"), ("x-store", "s")], 900),
        ];
        let groups: Vec<Vec<String>> = same_probes(ups.iter())
            .iter()
            .map(|g| g.iter().map(|up| up.ruleset.to_string()).collect())
            .collect();
        assert_eq!(groups, [vec!["a", "b"], vec!["c"], vec!["d"]]);
        // What a reload carries the health of (review: a fixed token carried its 401s' down).
        assert!(same_probe_request(&ups[0], &ups[1]));
        assert!(!same_probe_request(&ups[0], &ups[2]));
        assert!(!same_probe_request(&ups[0], &ups[3]));
    }

    #[test]
    fn results_counted_under_other_thresholds_settle_under_the_new_ones() {
        let spec = |unhealthy_after, healthy_after| HealthSpec {
            path: "/health".into(),
            interval: Duration::from_secs(5),
            unhealthy_after,
            healthy_after,
        };
        let at = tokio::time::Instant::now();
        // Up, with two failures in a row that `unhealthy_after: 5` did not count as down yet.
        let state = crate::rules::HealthState::default();
        state.set(Health::Up);
        state.count(Some("refused"), at);
        state.count(Some("refused"), at);
        assert_eq!(state.settle(&spec(5, 1)), (Health::Up, Health::Up));
        assert_eq!(state.settle(&spec(2, 1)), (Health::Up, Health::Down));
        // Down, with three successes that `healthy_after: 4` did not count as up yet.
        let state = crate::rules::HealthState::default();
        state.set(Health::Down);
        for _ in 0..3 {
            state.count(None, at);
        }
        assert_eq!(state.settle(&spec(2, 4)), (Health::Down, Health::Down));
        assert_eq!(state.settle(&spec(2, 3)), (Health::Down, Health::Up));
        // Not probed yet: nothing to settle; the first result settles it at once, whatever
        // the thresholds.
        let state = crate::rules::HealthState::default();
        assert_eq!(
            state.settle(&spec(3, 3)),
            (Health::Unknown, Health::Unknown)
        );
        state.count(Some("refused"), at);
        assert_eq!(state.settle(&spec(3, 3)), (Health::Unknown, Health::Down));
        let state = crate::rules::HealthState::default();
        state.count(None, at);
        assert_eq!(state.settle(&spec(3, 3)), (Health::Unknown, Health::Up));
        // Then one result against the state is not enough under `unhealthy_after: 3`.
        state.count(Some("refused"), at);
        assert_eq!(state.settle(&spec(3, 3)), (Health::Up, Health::Up));
    }

    /// The latest failure's cause stays through later successes (a shop still counted down
    /// while `healthy_after` counts) and goes with the state to the next generation of rules.
    #[test]
    fn the_latest_failure_is_kept_and_carried() {
        let at = tokio::time::Instant::now();
        let state = crate::rules::HealthState::default();
        assert_eq!(state.last_failure(), None);
        state.count(Some("/health answered 500"), at);
        state.count(Some("/health answered 503"), at);
        state.count(None, at);
        assert_eq!(
            state.last_failure().as_deref(),
            Some("/health answered 503")
        );
        let next = crate::rules::HealthState::default();
        next.carry(&state);
        assert_eq!(next.last_failure().as_deref(), Some("/health answered 503"));
    }

    /// Waiting for a known state ends as soon as one is set, and at once for a state already
    /// known.
    #[tokio::test(start_paused = true)]
    async fn known_waits_for_the_first_result() {
        let state = std::sync::Arc::new(crate::rules::HealthState::default());
        let waiting = tokio::spawn({
            let state = state.clone();
            async move { state.known().await }
        });
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        state.set(Health::Down);
        assert_eq!(waiting.await.unwrap(), Health::Down);
        assert_eq!(state.known().await, Health::Down);
    }
}
