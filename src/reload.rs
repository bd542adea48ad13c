//! Hot reload: the [`RuleStore`] (an `ArcSwap<Rules>`), and one reload loop fed by every
//! trigger (file watcher, SIGHUP, `POST /admin/reload`). Load and validate off the request
//! path, then swap everything at once, or keep the running rules and record why.
//!
//! Here: the store and how a reload loads, checks and swaps; `watcher` owns the reload loop
//! and the watcher that feed it.

mod watcher;

pub use watcher::{
    spawn_reload_loop, watch, Activity, ReloadRequest, Reloader, RulesWatcher, Trouble,
    WatchStatus, DEBOUNCE,
};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::metrics::Metrics;
use crate::rules::{self, LoadOptions, Rules};
use crate::script::ScriptEngine;
use crate::upstream::{self, HealthObserver};

/// The longest a reload waits for files being written, however often they are written to.
const WRITERS_MAX: Duration = Duration::from_secs(30);
/// The longest a reload waits for the first probes of new upstreams.
const FIRST_PROBE_WAIT: Duration = Duration::from_secs(2);
/// Loads of a directory that changed while it was read are retried this often.
const LOAD_ATTEMPTS: usize = 5;

/// The errors of a refused reload written to the log one by one; the rest are counted.
const MAX_LOGGED_ERRORS: usize = 10;
/// How long after reading the files a reload waits for events of writes made meanwhile.
const EVENT_LAG: Duration = Duration::from_millis(20);

/// Reads `${VAR}` values for upstreams.
pub type EnvReader = Arc<dyn crate::rules::Environment + Send>;

/// Extra validation a new generation must pass before it goes live (rule tests).
pub type Gate = Arc<dyn Fn(&Path, &Rules) -> Result<Vec<String>, Vec<String>> + Send + Sync>;

/// Why a reload ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Watch,
    Signal,
    Admin,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
        })
    }
}

/// Whether the health of every upstream of `rules` with a probe is known.
fn all_health_known(rules: &Rules) -> bool {
    !rules.upstreams().any(|u| u.awaiting_first_probe())
}

/// Whether a ruleset file (`*.yaml` directly in `dir`, hidden ones aside, as the loader
/// reads them) is empty (0 bytes).
fn empty_rule_file(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.ends_with(".yaml")
            && !name.starts_with('.')
            && std::fs::metadata(e.path()).is_ok_and(|m| m.is_file() && m.len() == 0)
    })
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Applied {
        version: String,
    },
    /// Nothing under the rules directory changed.
    Unchanged {
        version: String,
    },
    Rejected {
        errors: Vec<String>,
    },
}

/// The last failed reload, shown by `/admin/rules` until a reload succeeds.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    pub at: SystemTime,
    pub errors: Vec<String>,
    /// The version of the files that failed (when it could be read): the watcher reporting the
    /// same files again is the same failure, not a new one to log and count.
    pub version: Option<String>,
}

/// The live rules and how they got there.
pub struct RuleStore {
    current: ArcSwap<Rules>,
    last_error: Mutex<Option<ReloadFailure>>,
    dir: PathBuf,
    engine: Arc<ScriptEngine>,
    env: EnvReader,
    gate: Option<Gate>,
    metrics: Metrics,
    /// The scripts the rule files referenced at the last load or reload attempt (also a failed
    /// one, so creating a missing script reloads), relative to the rules directory: the watcher
    /// reloads for them whatever their name (`script: scripts/check.txt`).
    scripts: Mutex<Vec<PathBuf>>,
    activity: Arc<Activity>,
    /// [`WRITERS_MAX`]; shorter in tests.
    writers_max: Duration,
    /// When the last reload gave up waiting for a writer: the next one (a `POST
    /// /admin/reload` queued behind it) does not wait all over again for the same holder.
    gave_up: Mutex<Option<tokio::time::Instant>>,
    /// How the rules directory's watch is doing; `None` while nothing watches it.
    watch: Mutex<Option<WatchStatus>>,
    /// Set once every probed upstream of the running generation has had its first answer
    /// (see [`RuleStore::health_settled`]).
    settled: Arc<std::sync::atomic::AtomicBool>,
}

impl RuleStore {
    /// Loads the rules directory for the first time; invalid rules are fatal here.
    pub fn open(
        dir: PathBuf,
        scripts: Arc<ScriptEngine>,
        env: EnvReader,
        gate: Option<Gate>,
        metrics: Metrics,
    ) -> Result<RuleStore, Vec<String>> {
        let rules = load(&dir, &scripts, &env, gate.as_ref(), None)?;
        // Settled from the start when nothing is probed.
        let settled = Arc::new(std::sync::atomic::AtomicBool::new(all_health_known(&rules)));
        Ok(RuleStore {
            current: ArcSwap::from_pointee(rules),
            last_error: Mutex::new(None),
            scripts: Mutex::new(rules::referenced_scripts(&dir)),
            dir,
            engine: scripts,
            env,
            gate,
            metrics,
            activity: Arc::default(),
            writers_max: WRITERS_MAX,
            gave_up: Mutex::new(None),
            watch: Mutex::new(None),
            settled,
        })
    }

    /// Whether the health of every probed upstream has been known at some point since start:
    /// from then on the proxy is ready (`/readyz`) whatever a reload adds — a new upstream whose
    /// probe has not answered yet must not take a serving proxy out of its load balancer
    /// (every replica loads the same rules, so all would go at once) — whether or not anyone
    /// asked `/readyz` in between.
    pub fn health_settled(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.settled.load(Relaxed) {
            return true;
        }
        let known = all_health_known(&self.current());
        if known {
            self.settled.store(true, Relaxed);
        }
        known
    }

    /// The scripts the rules reference, as of the last read of the rules directory.
    fn scripts(&self) -> Vec<PathBuf> {
        self.scripts.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether `path`, as the watcher reports it, is a script the rules reference, or a
    /// directory one is in (`lib.d` of `lib.d/v.rhai`, swapped by a rename or a symlink).
    fn references(&self, path: &Path) -> bool {
        self.scripts.lock().is_ok_and(|scripts| {
            scripts.iter().any(|s| {
                Path::new(s)
                    .ancestors()
                    .any(|a| !a.as_os_str().is_empty() && path.ends_with(a))
            })
        })
    }

    /// The rules a new request evaluates against; it keeps them until it is answered.
    pub fn current(&self) -> Arc<Rules> {
        self.current.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn last_error(&self) -> Option<ReloadFailure> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// How the rules directory's watch is doing (`None`: not watched at all).
    pub fn watch_status(&self) -> Option<WatchStatus> {
        self.watch.lock().ok().and_then(|w| w.clone())
    }

    fn update_watch(&self, change: impl FnOnce(&mut WatchStatus)) {
        if let Ok(mut status) = self.watch.lock() {
            change(status.get_or_insert_with(WatchStatus::default));
        }
    }

    /// Starts the background tasks of the running generation (health probes).
    pub fn start(self: &Arc<Self>) {
        self.metrics.register(&self.current());
        upstream::start_probes(&self.current(), self.health_observer());
    }

    fn health_observer(self: &Arc<Self>) -> HealthObserver {
        let metrics = self.metrics.clone();
        let store = Arc::downgrade(self);
        Arc::new(move |up, failure, _health| {
            metrics.health(up, failure.is_none());
            if let Some(store) = store.upgrade() {
                store.health_settled();
            }
        })
    }

    /// Loads, validates and swaps. Parsing and compiling run on a blocking thread.
    pub async fn reload(self: &Arc<Self>, trigger: Trigger) -> ReloadOutcome {
        let (loaded, read_version) = self.load_when_quiet().await;
        match loaded {
            Ok(Ok(Some(rules))) => self.apply(rules, trigger).await,
            Ok(Ok(None)) => self.unchanged(trigger),
            Ok(Err(errors)) => self.reject(trigger, errors, read_version),
            Err(join) => self.reject(trigger, vec![format!("reload task failed: {join}")], None),
        }
    }

    /// The rules directory as read while nothing under it changed (see
    /// [`Self::load_if_changed`]), and the version read.
    async fn load_when_quiet(
        self: &Arc<Self>,
    ) -> (
        Result<Result<Option<Rules>, Vec<String>>, tokio::task::JoinError>,
        Option<String>,
    ) {
        let mut read_version = None;
        // One bound for the whole reload, not for each read: a writer that keeps a file open
        // and writes to it now and then would otherwise be waited for again at every read.
        // Not again in full right after a reload gave up on a writer: an operator's reload
        // queued behind that one answers in about `writers_max` in all, not twice that.
        let now = tokio::time::Instant::now();
        let just_gave_up = self
            .gave_up
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|at| now.duration_since(at) < self.writers_max);
        let writers_until = if just_gave_up {
            now
        } else {
            now + self.writers_max
        };
        for attempt in 1..=LOAD_ATTEMPTS {
            let waited = self.wait_for_writers(writers_until).await;
            if let Ok(mut g) = self.gave_up.lock() {
                *g = waited.is_err().then(tokio::time::Instant::now);
            }
            if let Err((path, holder)) = waited {
                // Never read as it is: a file cut short parses, with fewer rules (however long
                // its writer pauses: one pausing 13 s between two pieces is still writing).
                // Its close is an event that reloads.
                let by = holder.map(|h| format!(" by {h}")).unwrap_or_default();
                let still = format!(
                    "{}: still being written after {:?} (open for writing{by}, not closed); the running rules stay, and closing it reloads",
                    path.display(),
                    self.writers_max
                );
                // No version: it is no failure of the files read, so the files' own error,
                // once they are quiet, is not taken for this one repeated.
                return (Ok(Err(vec![still])), None);
            }
            let before = self.activity.event();
            let loaded = self.load_if_changed().await.map(|(version, result)| {
                read_version = version;
                result
            });
            // inotify's events reach us through notify's thread a moment after the write: a
            // write made while (or just before) the files were read may not be counted yet.
            tokio::time::sleep(EVENT_LAG).await;
            // An empty rule file that did not load is most likely one an editor saving in
            // place has just truncated, its events not seen yet: read again once it is quiet
            // (one that stays empty fails on the last attempt, as it should).
            let truncated = matches!(loaded, Ok(Err(_))) && {
                let dir = self.dir.clone();
                tokio::task::spawn_blocking(move || empty_rule_file(&dir))
                    .await
                    .unwrap_or(false)
            };
            let quiet = self.activity.event() == before && self.activity.writing().is_none();
            if quiet && (!truncated || attempt == LOAD_ATTEMPTS) {
                return (loaded, read_version);
            }
            // Something changed while the files were read: what was read may be half old,
            // half new. Read again once the directory is quiet.
            if attempt < LOAD_ATTEMPTS {
                if !quiet {
                    tracing::info!("rules changed while they were read; reading them again");
                } else {
                    tracing::info!("a rule file is empty (an editor may be saving it); reading the rules again");
                }
                tokio::time::sleep(DEBOUNCE).await;
            }
        }
        let kept_changing = format!(
            "{}: the rules directory kept changing while it was read ({LOAD_ATTEMPTS} attempts); the running rules stay, and the next change reloads",
            self.dir.display()
        );
        (Ok(Err(vec![kept_changing])), None)
    }

    /// Swaps in a new, valid generation: its probes started (and their first answers awaited)
    /// before, the last reload error cleared after.
    async fn apply(self: &Arc<Self>, rules: Rules, trigger: Trigger) -> ReloadOutcome {
        let old = self.current();
        carry_health(&old, &rules);
        let version = rules.version.clone();
        let removed: Vec<String> = old
            .rulesets
            .keys()
            .filter(|name| !rules.rulesets.contains_key(*name))
            .cloned()
            .collect();
        for w in &rules.warnings {
            tracing::warn!("{w}");
        }
        self.metrics.register(&rules);
        upstream::start_probes(&rules, self.health_observer());
        first_probes(&rules).await;
        self.current.store(Arc::new(rules));
        // A request still deciding on the old rules reads the health its probes left, which
        // the new probes go on from.
        old.stop_tasks();
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
        tracing::info!(%trigger, version = %version, previous = %old.version, "rules reloaded");
        // A deleted (or renamed) file takes its confirm URL with it: every payment sent there
        // is refused from now on, which the operator must not learn from buyers.
        for gone in removed {
            let path = crate::rules::confirm_path(&gone);
            tracing::warn!(ruleset = %gone, "ruleset removed: POST {path} now answers 404 to every payment");
        }
        self.metrics.reload("applied");
        ReloadOutcome::Applied { version }
    }

    /// The files are the running version's.
    fn unchanged(&self, trigger: Trigger) -> ReloadOutcome {
        let version = self.current().version.clone();
        let cleared = self.last_error.lock().ok().and_then(|mut e| e.take());
        if cleared.is_some() {
            // The files are back to what is running: the operator undid a broken edit and
            // must see that the error they were shown is over.
            tracing::info!(%trigger, version = %version, "rules unchanged: the files are back to the running version; the last reload error is cleared");
        } else if trigger == Trigger::Watch {
            tracing::debug!(version = %version, "rules unchanged");
        } else {
            tracing::info!(%trigger, version = %version, "rules unchanged");
        }
        self.metrics.reload("unchanged");
        ReloadOutcome::Unchanged { version }
    }

    /// The rules directory, loaded on a blocking thread; `None` when its version is the
    /// running one. Also the version read (`None` when the files could not be read).
    async fn load_if_changed(
        self: &Arc<Self>,
    ) -> Result<(Option<String>, Result<Option<Rules>, Vec<String>>), tokio::task::JoinError> {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Read before the lock: the watcher's thread asks it on every event.
            let referenced = rules::referenced_scripts(&store.dir);
            if let Ok(mut scripts) = store.scripts.lock() {
                *scripts = referenced;
            }
            let version = rules::rules_version(&store.dir).ok();
            let running = store.current();
            if version.as_ref() == Some(&running.version) {
                return (version, Ok(None));
            }
            let loaded = load(
                &store.dir,
                &store.engine,
                &store.env,
                store.gate.as_ref(),
                Some(&running),
            );
            (version, loaded.map(Some))
        })
        .await
    }

    /// Returns once no rule file is being written (see [`Activity`]), or at `until`
    /// ([`WRITERS_MAX`] after the reload began) with the file a writer keeps open, and the
    /// process holding it where `/proc` shows it: a reload (and an operator's `POST
    /// /admin/reload` waiting for it) must not wait for ever.
    async fn wait_for_writers(
        self: &Arc<Self>,
        until: tokio::time::Instant,
    ) -> Result<(), (PathBuf, Option<String>)> {
        let mut said = false;
        loop {
            let Some((path, holder)) = self.writer().await else {
                return Ok(());
            };
            if tokio::time::Instant::now() >= until {
                return Err((path, holder));
            }
            if !said {
                tracing::info!(path = %path.display(), holder = holder.as_deref().unwrap_or("-"), "waiting for a rules file to be closed before reloading");
                said = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A rules file being written, and the process holding it open where `/proc` shows it.
    async fn writer(self: &Arc<Self>) -> Option<(PathBuf, Option<String>)> {
        if let Some(path) = self.activity.writing() {
            return Some((path, None));
        }
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Files rules are read from: not a directory's name, as the watch's events are
            // judged by; and the files links lead to outside the directory, which no event of
            // its watch tells of.
            let concerns = |p: &Path| rules::is_rule_source(p) || store.references(p);
            let linked = watcher::linked_targets(&store.dir, &store.scripts());
            watcher::open_for_writing(&store.dir, &linked, &concerns)
                .map(|(path, holder)| (path, Some(holder)))
        })
        .await
        .ok()
        .flatten()
    }

    /// Whether the last reload was refused for a file held open for writing that is closed
    /// now: then it is forgotten, for the reload that follows to go on as usual. (The close of
    /// one in the rules directory is an event of its watch; of one a link leads to outside it,
    /// only this tells.)
    async fn writer_gone(self: &Arc<Self>) -> bool {
        let held = self.gave_up.lock().is_ok_and(|g| g.is_some());
        if !held || self.writer().await.is_some() {
            return false;
        }
        if let Ok(mut g) = self.gave_up.lock() {
            *g = None;
        }
        true
    }

    fn reject(
        &self,
        trigger: Trigger,
        errors: Vec<String>,
        version: Option<String>,
    ) -> ReloadOutcome {
        let Ok(mut last) = self.last_error.lock() else {
            return ReloadOutcome::Rejected { errors };
        };
        // One save can reach the watcher as several events (a slow writer, a rename after a
        // write); the same files failing again is the failure already logged and counted,
        // whatever its text (failing rule tests under `--test-on-reload` report their timings,
        // which differ from run to run). A directory that cannot be read at all has no
        // version: its errors tell it apart.
        let repeated = trigger == Trigger::Watch
            && last.as_ref().is_some_and(|l| match (&l.version, &version) {
                (Some(before), Some(now)) => before == now,
                (None, None) => l.errors == errors,
                _ => false,
            });
        if repeated {
            tracing::debug!("rules still not reloadable; the same files as the last failure");
            return ReloadOutcome::Rejected { errors };
        }
        // Each error is one line, up to a screenful: a widened limit can fail a hundred rule
        // tests at once, and the log must stay readable; `/admin/rules` has them all.
        for e in errors.iter().take(MAX_LOGGED_ERRORS) {
            // In its own field, as a start-up failure's: one message for alerts to match.
            tracing::error!(%trigger, error = %log_line(e), "rules not reloaded");
        }
        if errors.len() > MAX_LOGGED_ERRORS {
            tracing::error!(
                %trigger,
                "rules not reloaded: {} more errors; GET /admin/rules shows every one",
                errors.len() - MAX_LOGGED_ERRORS
            );
        }
        tracing::warn!(version = %self.current().version, "keeping the running rules");
        *last = Some(ReloadFailure {
            at: SystemTime::now(),
            errors: errors.clone(),
            version,
        });
        drop(last);
        self.metrics.reload("rejected");
        ReloadOutcome::Rejected { errors }
    }
}

fn load(
    dir: &Path,
    scripts: &ScriptEngine,
    env: &EnvReader,
    gate: Option<&Gate>,
    running: Option<&Rules>,
) -> Result<Rules, Vec<String>> {
    let mut rules = rules::load_dir(
        dir,
        &LoadOptions {
            engine: scripts,
            env: env.as_ref(),
            previous: running,
        },
    )
    .map_err(|e| e.lines())?;
    match gate {
        Some(gate) => {
            let warnings = gate(dir, &rules)?;
            rules.warnings.extend(warnings);
        }
        // The test files are part of the directory a reload validates (SPEC §5), as `check`
        // validates them: one that does not read holds the rules back as a broken rule file
        // would. Without the gate their cases are not run.
        None => {
            crate::ruletest::load_suites(dir, &rules)
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        }
    }
    Ok(rules)
}

/// Upstreams new to these rules (or with a new URL or health path) have no health state yet,
/// and a `healthy` rule reading it would be an error (refusing payments under the default
/// `on_error`) until the first probe answers: their probes have just started, so wait for
/// those first answers, as long as a probe may take (the upstream's timeout) but at most
/// [`FIRST_PROBE_WAIT`], before the swap. A health endpoint that hangs must not hold the
/// reload (and every reload after it) for long.
async fn first_probes(rules: &Rules) {
    let unknown: Vec<_> = rules
        .upstreams()
        .filter(|up| up.health.is_some() && up.state.get() == crate::rules::Health::Unknown)
        .collect();
    let Some(longest) = unknown.iter().map(|up| up.timeout).max() else {
        return;
    };
    let wait = (longest + Duration::from_millis(100)).min(FIRST_PROBE_WAIT);
    let states: Vec<_> = unknown.iter().map(|up| &*up.state).collect();
    crate::rules::HealthState::all_known(&states, wait).await;
}

/// An upstream that is the same in the new rules keeps its known health, so a reload does not
/// turn every `healthy` rule into an error until the next probe, and its probe goes on
/// counting and at its pace (see [`crate::rules::HealthState`]).
fn carry_health(old: &Rules, new: &Rules) {
    for (name, ruleset) in &new.rulesets {
        let Some(old_set) = old.get(name) else {
            continue;
        };
        for (up_name, up) in &ruleset.upstreams {
            if let Some(prev) = old_set.upstreams.get(up_name) {
                if crate::upstream::same_probe_request(prev, up) {
                    up.state.carry(&prev.state);
                }
            }
        }
    }
}

/// An error as one log line: a failing rule test's report (`--test-on-reload`) runs over
/// several lines — the case, what it expected, the trace — which a log shows as one line of
/// `\n`s; its first two say which case and why, and `/admin/rules` has the rest.
fn log_line(error: &str) -> std::borrow::Cow<'_, str> {
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    match (lines.next(), lines.next(), lines.next()) {
        (Some(first), Some(second), more) => {
            let rest = if more.is_some() {
                " (GET /admin/rules shows the whole report)"
            } else {
                ""
            };
            format!("{first} {second}{rest}").into()
        }
        _ => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_over_several_lines_is_logged_as_its_first_two() {
        let report = "FAIL rules/tests/t.yaml:6:11: too big\n  expected decision approve, got reject\n  actual: reject (status 409)\n  trace:\n";
        assert_eq!(
            log_line(report),
            "FAIL rules/tests/t.yaml:6:11: too big expected decision approve, got reject (GET /admin/rules shows the whole report)"
        );
        let one = "rules/default.yaml:3:5: unknown field";
        assert_eq!(log_line(one), one);
    }

    pub(super) fn store_with(dir: &Path, metrics: Metrics) -> Arc<RuleStore> {
        Arc::new(
            RuleStore::open(
                dir.to_owned(),
                Arc::new(ScriptEngine::new()),
                Arc::new(|_: &str| Err(std::env::VarError::NotPresent)),
                None,
                metrics,
            )
            .unwrap(),
        )
    }

    pub(super) fn store(dir: &Path) -> Arc<RuleStore> {
        store_with(dir, Metrics::new())
    }

    /// A store whose reloads wait for writers `writers_max` in all.
    pub(super) fn store_waiting(dir: &Path, writers_max: Duration) -> Arc<RuleStore> {
        let mut store = Arc::into_inner(store(dir)).unwrap();
        store.writers_max = writers_max;
        Arc::new(store)
    }

    /// A rules directory (the second) with `default.yaml` and a `shop.yaml` linked to one in
    /// another directory (the first), as a release area outside it would be.
    pub(super) fn linked_from_outside() -> (tempfile::TempDir, tempfile::TempDir) {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("shop.yaml");
        std::fs::write(&target, GOOD).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("shop.yaml")).unwrap();
        (outside, dir)
    }

    /// A process holding `path` open for writing without writing to it, as a writer pausing
    /// between two pieces (or a shell's `exec 3>>`) does; kill it to close the file.
    pub(super) fn held_for_writing(path: &Path) -> std::process::Child {
        let open = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        std::process::Command::new("sleep")
            .arg("30")
            .stdout(open)
            .spawn()
            .unwrap()
    }

    /// Whether `done` holds within `within`, looked at every 20 ms.
    pub(super) async fn within(within: Duration, done: impl Fn() -> bool) -> bool {
        let until = tokio::time::Instant::now() + within;
        while !done() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        done()
    }

    pub(super) const GOOD: &str = "rules:\n  - name: a\n    amount: { max: 100 }\n    reason: x\n";

    /// A test file that does not read is part of an invalid directory (SPEC §5), with or
    /// without `--test-on-reload`: it stops the start, and a reload that brings one keeps the
    /// running rules, the test file's error shown.
    #[tokio::test]
    async fn a_broken_rule_test_file_holds_the_rules_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        let test_file = dir.path().join("tests/default.yaml");
        std::fs::write(&test_file, "cases: [oops").unwrap();
        let open = || {
            RuleStore::open(
                dir.path().to_owned(),
                Arc::new(ScriptEngine::new()),
                Arc::new(|_: &str| Err(std::env::VarError::NotPresent)),
                None,
                Metrics::new(),
            )
        };
        let errors = open().err().expect("a broken test file stops the start");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&format!("{}:1:", test_file.display()))),
            "{errors:?}"
        );
        std::fs::write(&test_file, "ruleset: default\ncases: []\n").unwrap();
        let store = Arc::new(open().unwrap());
        let v1 = store.current().version.clone();
        std::fs::write(&test_file, "cases: [oops").unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD.replace("100", "200")).unwrap();
        match store.reload(Trigger::Admin).await {
            ReloadOutcome::Rejected { errors } => assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{}:1:", test_file.display()))),
                "{errors:?}"
            ),
            other => panic!("expected the reload refused, got {other:?}"),
        }
        assert_eq!(store.current().version, v1);
    }

    /// A writer that keeps a rule file open and writes to it now and then holds a reload
    /// back for `writers_max` in all, not again at each read of the directory; then the
    /// reload is refused (a file cut short parses, with fewer rules: it is never read as it
    /// is), and once the file is closed a reload applies it.
    #[tokio::test]
    async fn a_writer_that_never_closes_holds_a_reload_back_once_then_refuses_it() {
        use notify::event::{AccessKind, AccessMode, DataChange, EventKind, ModifyKind};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("default.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let store = store_waiting(dir.path(), Duration::from_millis(800));
        let v1 = store.current().version.clone();
        std::fs::write(&file, GOOD.replace("100", "200")).unwrap();
        // What the watcher sees of a writer that writes every 300 ms and never closes.
        let event = |kind| notify::Event::new(kind).add_path(file.clone());
        let write = event(EventKind::Modify(ModifyKind::Data(DataChange::Content)));
        let activity = store.activity.clone();
        let writer = tokio::spawn(async move {
            for _ in 0..30 {
                activity.seen(&write);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let started = std::time::Instant::now();
        let outcome = store.reload(Trigger::Admin).await;
        let took = started.elapsed();
        writer.abort();
        let ReloadOutcome::Rejected { errors } = outcome else {
            panic!("expected the reload refused, got {outcome:?} after {took:?}")
        };
        assert!(
            errors[0].ends_with("still being written after 800ms (open for writing, not closed); the running rules stay, and closing it reloads"),
            "{errors:?}"
        );
        assert_eq!(store.current().version, v1, "the running rules stay");
        // Waiting again at each of the five reads took over 5 s.
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(took >= Duration::from_millis(800), "{took:?}");
        store
            .activity
            .seen(&event(EventKind::Access(AccessKind::Close(
                AccessMode::Write,
            ))));
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Applied { .. }
        ));
    }

    /// Audit: a rules directory removed and made again (or a release moved into place) was
    /// written before anything watched it, so the watch knew no writer, and a file still being
    /// written there — its first rule alone, a valid file — went live. A file another process
    /// holds open for writing is waited for as one the watch saw written.
    #[tokio::test]
    async fn a_file_written_in_a_directory_swapped_in_is_waited_for() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("rules");
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("default.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let store = store_waiting(&dir, Duration::from_millis(500));
        let v1 = store.current().version.clone();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        let whole = "rules:\n  - name: a\n    amount: { max: 500 }\n    reason: x\n  - name: b\n    require: 'false'\n    reason: closed\n";
        let cut = whole.find("  - name: b").unwrap();
        std::fs::write(&file, &whole[..cut]).unwrap();
        // The writer, pausing before the second rule.
        let mut writer = held_for_writing(&file);
        let outcome = store.reload(Trigger::Watch).await;
        writer.kill().unwrap();
        writer.wait().unwrap();
        let ReloadOutcome::Rejected { errors } = outcome else {
            panic!("a half-written file loaded: {outcome:?}");
        };
        assert!(errors[0].contains("still being written"), "{errors:?}");
        assert_eq!(store.current().version, v1, "the running rules stay");
        std::fs::write(&file, whole).unwrap();
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Applied { .. }
        ));
        assert_eq!(store.current().get("default").unwrap().rules.len(), 2);
    }

    /// A rule file another process holds open for writing — here or, through a link, outside
    /// the rules directory — holds a reload back however long the writer pauses (a writer
    /// pausing between two pieces is still writing: its half must not go live), then the
    /// reload is refused naming the process; a reload right after it (an operator's, queued
    /// behind it) is refused at once rather than waiting all over again; once the file is
    /// closed, a reload applies.
    #[tokio::test]
    async fn a_file_held_open_for_writing_holds_reloads_naming_its_holder() {
        let (outside, dir) = linked_from_outside();
        let target = outside.path().join("shop.yaml");
        for held in [dir.path().join("default.yaml"), target.clone()] {
            // The second reload's bound (a second, for a busy machine's /proc scan) well
            // under the wait it must not repeat.
            let store = store_waiting(dir.path(), Duration::from_secs(2));
            std::fs::write(dir.path().join("other.yaml"), GOOD).unwrap();
            let mut holder = held_for_writing(&held);
            let outcome = store.reload(Trigger::Watch).await;
            let ReloadOutcome::Rejected { errors } = outcome else {
                panic!("{held:?}: a reload went on with a file held open for writing: {outcome:?}");
            };
            let by = format!(
                "(open for writing by process {} (sleep), not closed)",
                holder.id()
            );
            assert!(errors[0].contains(&by), "{errors:?}");
            let started = std::time::Instant::now();
            let again = store.reload(Trigger::Admin).await;
            assert!(matches!(again, ReloadOutcome::Rejected { .. }), "{again:?}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            holder.kill().unwrap();
            holder.wait().unwrap();
            let applied = store.reload(Trigger::Watch).await;
            assert!(
                matches!(applied, ReloadOutcome::Applied { .. }),
                "{applied:?}"
            );
            std::fs::remove_file(dir.path().join("other.yaml")).unwrap();
        }
    }

    #[tokio::test]
    async fn reload_applies_then_keeps_old_rules_on_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let store = store(dir.path());
        let v1 = store.current().version.clone();
        assert!(matches!(
            store.reload(Trigger::Admin).await,
            ReloadOutcome::Unchanged { .. }
        ));

        std::fs::write(dir.path().join("default.yaml"), GOOD.replace("100", "200")).unwrap();
        let ReloadOutcome::Applied { version: v2 } = store.reload(Trigger::Admin).await else {
            panic!()
        };
        assert_ne!(v1, v2);

        std::fs::write(dir.path().join("default.yaml"), "rules: [oops").unwrap();
        let ReloadOutcome::Rejected { errors } = store.reload(Trigger::Admin).await else {
            panic!()
        };
        assert!(errors[0].contains("default.yaml:1:"), "{errors:?}");
        assert_eq!(store.current().version, v2, "old rules stay");
        assert!(store.last_error().is_some());

        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        assert!(matches!(
            store.reload(Trigger::Admin).await,
            ReloadOutcome::Applied { .. }
        ));
        assert!(
            store.last_error().is_none(),
            "a good reload clears the error"
        );
    }

    /// One broken save the watcher reports twice is one failure; an operator asking again (or
    /// a different error) is a new one.
    #[tokio::test]
    async fn the_watcher_reporting_the_same_broken_files_again_is_one_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        let metrics = Metrics::new();
        let store = store_with(dir.path(), metrics.clone());
        let rejected = |n: u64| {
            let text = metrics.render();
            assert!(
                text.contains(&format!(
                    "confirm_proxy_reloads_total{{result=\"rejected\"}} {n}\n"
                )),
                "{text}"
            );
        };
        std::fs::write(dir.path().join("default.yaml"), "rules: [oops").unwrap();
        for _ in 0..2 {
            assert!(matches!(
                store.reload(Trigger::Watch).await,
                ReloadOutcome::Rejected { .. }
            ));
        }
        rejected(1);
        let first = store.last_error().unwrap().at;
        assert!(matches!(
            store.reload(Trigger::Admin).await,
            ReloadOutcome::Rejected { .. }
        ));
        rejected(2);
        std::fs::write(dir.path().join("default.yaml"), "rules: [oops, again").unwrap();
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Rejected { .. }
        ));
        rejected(3);
        assert!(store.last_error().unwrap().at >= first);
        // A directory moved away, which the watcher reports twice (an event of its own, then
        // the path's check), is one failure too, though it has no version.
        let away = dir.path().with_extension("away");
        std::fs::rename(dir.path(), &away).unwrap();
        for _ in 0..2 {
            assert!(matches!(
                store.reload(Trigger::Watch).await,
                ReloadOutcome::Rejected { .. }
            ));
        }
        rejected(4);
        std::fs::rename(&away, dir.path()).unwrap();
        // The same files failing with other words (a failing rule test's timings) are the
        // same failure.
        let files = Some("0123456789ab".to_owned());
        store.reject(
            Trigger::Watch,
            vec!["FAIL t: took 1.2 ms".into()],
            files.clone(),
        );
        store.reject(Trigger::Watch, vec!["FAIL t: took 1.5 ms".into()], files);
        rejected(5);

        // Back to the running files: unchanged, and the error is over.
        std::fs::write(dir.path().join("default.yaml"), GOOD).unwrap();
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Unchanged { .. }
        ));
        assert!(store.last_error().is_none());
    }

    /// A reload refused because the directory kept changing while it was read is no failure
    /// of the files read: once they are quiet, their own error is reported (logged, counted,
    /// in `/admin/rules`), not taken for the same failure repeated.
    #[tokio::test]
    async fn the_files_error_after_a_directory_that_kept_changing_is_reported() {
        use notify::event::{EventKind, ModifyKind, RenameMode};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("default.yaml");
        std::fs::write(&file, GOOD).unwrap();
        let store = Arc::new(store(dir.path()));
        std::fs::write(&file, "rules: [oops").unwrap();
        // A save every 10 ms, by rename: never written to and left open, always changing.
        let saved = notify::Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::To)))
            .add_path(file.clone());
        let activity = store.activity.clone();
        let saving = tokio::spawn(async move {
            for _ in 0..1000 {
                activity.seen(&saved);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let ReloadOutcome::Rejected { errors } = store.reload(Trigger::Watch).await else {
            panic!("read while it kept changing");
        };
        saving.abort();
        assert!(errors[0].contains("kept changing"), "{errors:?}");
        assert!(matches!(
            store.reload(Trigger::Watch).await,
            ReloadOutcome::Rejected { .. }
        ));
        let last = store.last_error().unwrap();
        assert!(
            last.errors[0].contains("default.yaml:1:"),
            "{:?}",
            last.errors
        );
    }
}
