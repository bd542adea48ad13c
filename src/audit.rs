//! The decision log: one JSON line per answered confirm request, serialised on the request's
//! thread and written by a [`Spool`] off the request path (at least every 50 ms), drained on
//! shutdown, reopened on SIGUSR1 (rotation: rename the file, then signal).
//!
//! The file only ever holds whole lines: a write that fails part-way (disk full, file too
//! large) is cut back off, and its records are kept and retried for a while before they are
//! dropped. Every record is counted once: written, or dropped
//! (`confirm_proxy_decision_log_dropped_total`, with a warning).
//!
//! Here: the record, sampling and the handle the request path writes through, and the count
//! of every record; `sink` is the writer thread's end, the file.

mod line;
mod sink;
#[cfg(test)]
mod testing;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::decision::{Decision, Verdict};
use crate::metrics::Metrics;
use crate::payload::Amount;
use crate::spool::Spool;
use sink::{FileSink, Limits, LogFile, Opener};

/// Bytes waiting to be written; far more than any burst produces between two writes.
const MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;
/// How long shutdown waits for the writer; what it has not written by then is counted as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Records that cannot be queued are warned about at most this often, with how many: one
/// warning per record flooded the log with 61,770 identical lines while a writer was stuck.
const DROP_WARN_EVERY: Duration = Duration::from_secs(5);

/// One line of the decision log. Holds what is needed to replay the decision later.
///
/// It borrows everything: it is written out at once on the request's thread, so nothing is
/// copied to build it. Fields that are `None` are left out of the line; the decision's own
/// fields (`decision`, `status`, `reason`, `rule`, `shadow`, `trace`) sit at the top level.
#[derive(Debug)]
pub struct Record<'a> {
    /// When the request arrived (RFC 3339, microseconds, UTC).
    pub time: chrono::DateTime<chrono::Utc>,
    pub decision_id: &'a str,
    pub ruleset: &'a str,
    pub rules_version: &'a str,
    pub api: Option<&'static str>,
    pub order_id: Option<&'a str>,
    pub tx_id: Option<&'a str>,
    /// Written exactly as sent (`50000`, `10.5`).
    pub amount: Option<&'a Amount>,
    pub decision: &'a Decision,
    pub latency_ms: f64,
    /// The normalised request's original body, for replay.
    pub request: Option<&'a crate::payload::Payload>,
    /// For a repeated delivery of a signed message: the decision id of its first delivery,
    /// whose answer it was given again.
    pub repeat_of: Option<&'a str>,
    /// For a delivery of a signed message id seen before that was refused without running
    /// rules: why (`other_body`, `other_ruleset`, `unanswered`). `replay` leaves it out.
    pub repeat_refused: Option<&'a str>,
    /// The guard that refused a request this record names all the same (`signature`): no
    /// rule decided it, and `replay` leaves it out.
    pub guard: Option<&'a str>,
    /// The `webhook-id` of a signed request whose signature was verified.
    pub webhook_id: Option<&'a str>,
    /// On a 403 of `--allow-from`: the client address refused (the right-most
    /// `X-Forwarded-For` entry behind a trusted load balancer), when it was one.
    pub source: Option<std::net::IpAddr>,
}

/// Which approvals to log; refusals are always logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Log one approval in `every` (1 = all).
    pub every: u64,
}

impl Sampling {
    /// Whether an approval's record is kept: by its decision id's hash, not by a count, so
    /// that every ruleset keeps its share whatever the order requests come in (a count kept
    /// all of one ruleset and none of another when their requests alternated); a repeated
    /// delivery by its first delivery's id, so that it is kept with the line its `repeat_of`
    /// names.
    fn keeps(&self, record: &Record<'_>) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        if self.every <= 1 {
            return true;
        }
        let id = record.repeat_of.unwrap_or(record.decision_id);
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(id);
        hash.is_multiple_of(self.every)
    }
}

impl std::str::FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(Sampling { every: 1 });
        }
        let n = s
            .strip_prefix("sample=")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!(
                    "expected \"all\" or \"sample=N\" with N a whole number from 1 to {}, found \"{s}\"",
                    u64::MAX
                )
            })?;
        Ok(Sampling { every: n })
    }
}

/// Handle to the decision log. Cloning is cheap.
#[derive(Clone)]
pub struct DecisionLog {
    spool: Spool,
    ledger: Arc<Ledger>,
    sampling: Sampling,
    unqueued: Arc<Mutex<Unqueued>>,
}

/// Records that could not be queued since the last warning about them.
#[derive(Default)]
struct Unqueued {
    warned: Option<std::time::Instant>,
    since: u64,
}

impl DecisionLog {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, sampling: Sampling, metrics: Metrics) -> io::Result<DecisionLog> {
        let file = open(path)?;
        let reopen = path.to_owned();
        DecisionLog::start(
            path,
            file,
            Box::new(move || open(&reopen)),
            sampling,
            metrics,
            Limits::default(),
        )
    }

    /// Starts the writer thread in front of `file`; `open` opens the path again on SIGUSR1.
    fn start<F: LogFile>(
        path: &Path,
        file: F,
        open: Opener<F>,
        sampling: Sampling,
        metrics: Metrics,
        limits: Limits,
    ) -> io::Result<DecisionLog> {
        let ledger = Arc::new(Ledger::new(metrics));
        let sink = FileSink::new(path, file, open, ledger.clone(), limits);
        Ok(DecisionLog {
            spool: Spool::start("decision-log", MAX_PENDING_BYTES, sink)?,
            ledger,
            sampling,
            unqueued: Arc::default(),
        })
    }

    /// Queues a record without waiting. A record that cannot be queued is counted and warned
    /// about, never dropped silently.
    pub fn write(&self, record: &Record<'_>) {
        if record.decision.decision == Verdict::Approve && !self.sampling.keeps(record) {
            return;
        }
        thread_local! {
            // Serialised here, into a buffer this thread keeps: the spool then only copies bytes.
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            if line::write(record, line).is_err() {
                self.dropped(record, "a decision-log record could not be serialised");
                return;
            }
            if self.spool.push(line, 1) {
                self.ledger.queued.fetch_add(1, Ordering::Relaxed);
            } else if self.spool.is_closed() {
                // Behind the shutdown's drain, it would never be written.
                self.dropped(
                    record,
                    "the decision log was already closed for the shutdown",
                );
            } else {
                self.dropped(
                    record,
                    "the decision log is behind (its writer has not kept up)",
                );
            }
        });
    }

    /// Counts a record that could not be queued, and warns: at once for the first, then at
    /// most every [`DROP_WARN_EVERY`] with how many since, naming the last one's decision.
    fn dropped(&self, record: &Record<'_>, why: &str) {
        self.ledger.metrics.decision_log_dropped(1);
        let mut unqueued = self.unqueued.lock().unwrap_or_else(PoisonError::into_inner);
        unqueued.since += 1;
        if unqueued
            .warned
            .is_some_and(|at| at.elapsed() < DROP_WARN_EVERY)
        {
            return;
        }
        unqueued.warned = Some(std::time::Instant::now());
        let n = std::mem::take(&mut unqueued.since);
        drop(unqueued);
        tracing::warn!(
            decision_id = %record.decision_id,
            dropped = n,
            "{why}: {n} record(s) not written since the last such warning, this one's among them \
             (counted in confirm_proxy_decision_log_dropped_total)"
        );
    }

    /// Records queued and not yet written (nor given up on): a writer stuck on its file
    /// shows here long before any record is dropped.
    pub fn backlog(&self) -> u64 {
        let settled = self
            .ledger
            .settled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .count;
        self.ledger
            .queued
            .load(Ordering::Relaxed)
            .saturating_sub(settled)
    }

    /// Closes and reopens the file (after an external rename for rotation).
    pub fn reopen(&self) {
        self.spool.reopen();
    }

    /// Writes everything queued so far and flushes; returns when the file is complete, or
    /// after 30 s with a stuck writer: what it has not written by then is counted as dropped
    /// and reported. Records that come after it are counted as dropped too.
    pub async fn shutdown(&self) {
        self.settle(self.spool.close(), DRAIN_TIMEOUT).await;
        // For an operator checking a stop against the answers given: every record since start
        // (a record dropped on the way was warned about, and counted in the metric).
        tracing::info!(
            records = self.ledger.queued.load(Ordering::Relaxed),
            "decision log closed"
        );
    }

    /// Writes everything queued so far, waiting at most `limit` (see [`Self::shutdown`]).
    #[cfg(test)]
    async fn drain_within(&self, limit: Duration) {
        self.settle(self.spool.drain(), limit).await;
    }

    /// Waits at most `limit` for `done`, the writer's word that what was queued before it is
    /// written; counts and reports what is not by then.
    async fn settle(&self, done: std::sync::mpsc::Receiver<()>, limit: Duration) {
        // Records dropped since the last warning about them (a burst that ended within its
        // 5 s) are said now, not left to the metric alone.
        let unsaid = std::mem::take(
            &mut self
                .unqueued
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .since,
        );
        if unsaid > 0 {
            tracing::warn!(
                dropped = unsaid,
                "{unsaid} more decision-log record(s) could not be queued since the last warning \
                 about it (counted in confirm_proxy_decision_log_dropped_total)"
            );
        }
        let waited = tokio::task::spawn_blocking(move || done.recv_timeout(limit)).await;
        if matches!(waited, Ok(Ok(()))) {
            return;
        }
        let lost = self.ledger.abandon();
        if lost > 0 {
            tracing::error!(
                lost,
                "the decision-log writer did not finish within {}s: {lost} records were not \
                 written (counted in confirm_proxy_decision_log_dropped_total)",
                limit.as_secs_f64()
            );
        }
    }
}

/// Whether the decision log at `path` can be opened (it is created if missing), without
/// starting its writer: for a start-up that fails anyway, to report every reason at once.
pub fn can_open(path: &Path) -> io::Result<()> {
    open(path).map(drop)
}

/// Opens the log for appending. A file that ends in part of a line (a process killed
/// mid-write left it) gets a line break before the first record, written by the sink, which
/// keeps and retries it like a record on a full disk: a record appended to the fragment would
/// be cut with it, unreadable, its decision id lost.
fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Records hold order ids, request bodies and upstream answers: not for every local user
    // (a file that exists keeps its mode).
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    if ends_mid_line(path, &file) {
        tracing::warn!(
            path = %path.display(),
            "the decision log ends in part of a line (left by a process killed mid-write?); new records start on the next line"
        );
    }
    Ok(file)
}

/// Whether the regular file `file`, opened at `path`, ends in part of a line. Read through
/// a second, read-only handle: the log's own is append-only, and a FIFO (which a reader
/// elsewhere empties) is never read here.
fn ends_mid_line(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() == 0 {
        return false;
    }
    let mut last = [0u8; 1];
    File::open(path)
        .and_then(|reader| reader.read_at(&mut last, meta.len() - 1))
        .is_ok_and(|n| n == 1 && last[0] != b'\n')
}

/// Counts each queued record once, as written or as dropped, so that a shutdown that gives
/// up on the writer knows how many it leaves behind.
struct Ledger {
    metrics: Metrics,
    /// Records handed to the spool.
    queued: AtomicU64,
    settled: Mutex<Settled>,
}

#[derive(Default)]
struct Settled {
    /// Records written or dropped by the writer.
    count: u64,
    /// Shutdown has counted everything not settled yet as dropped; the writer counts no more.
    abandoned: bool,
}

impl Ledger {
    fn new(metrics: Metrics) -> Ledger {
        Ledger {
            metrics,
            queued: AtomicU64::new(0),
            settled: Mutex::new(Settled::default()),
        }
    }

    fn written(&self, lines: usize) {
        self.settle(lines, false);
    }

    fn dropped(&self, lines: usize) {
        self.settle(lines, true);
    }

    fn settle(&self, lines: usize, dropped: bool) {
        let mut settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
        if settled.abandoned {
            return;
        }
        settled.count += lines as u64;
        if dropped {
            self.metrics.decision_log_dropped(lines as u64);
        }
    }

    /// Counts every record queued but not yet written or dropped as dropped; returns how many.
    fn abandon(&self) -> u64 {
        let mut settled = self.settled.lock().unwrap_or_else(PoisonError::into_inner);
        if settled.abandoned {
            return 0;
        }
        settled.abandoned = true;
        let lost = self
            .queued
            .load(Ordering::Relaxed)
            .saturating_sub(settled.count);
        self.metrics.decision_log_dropped(lost);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testing::*;

    #[test]
    fn time_is_rfc3339_with_microseconds() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 1, 5, 9, 7, 3)
            .unwrap()
            .checked_add_signed(chrono::TimeDelta::milliseconds(42))
            .unwrap();
        let d = Decision::approve(None);
        let r = Record {
            time: t,
            ..record("x", &d)
        };
        let mut out = Vec::new();
        line::write(&r, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-01-05T09:07:03.042000Z");
        assert_eq!(
            v["time"],
            t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().as_str()
        );
    }

    /// Security trial: the log was created readable by every local user.
    #[test]
    fn a_new_log_is_not_for_other_users_and_an_old_one_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("new.jsonl");
        can_open(&new).unwrap();
        assert_eq!(mode(&new) & 0o137, 0, "{:o}", mode(&new));
        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, "").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        can_open(&old).unwrap();
        assert_eq!(mode(&old), 0o644);
    }

    #[tokio::test]
    async fn writes_every_record_and_samples_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let log = DecisionLog::open(&path, Sampling { every: 3 }, Metrics::new()).unwrap();
        let approve = Decision::approve(None);
        let reject = Decision::reject(409, "x".into(), Some("rule".into()));
        // Two rulesets whose requests alternate, and a repeat of each approval: a count kept
        // every approval of one ruleset and none of the other, and repeats apart from their
        // first deliveries.
        let ids: Vec<String> = (0..3000).map(|i| format!("01a2-{i:05}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let ruleset = if i % 2 == 0 { "default" } else { "presale" };
            log.write(&Record {
                ruleset,
                ..record(id, &approve)
            });
            let repeat = format!("{id}-again");
            log.write(&Record {
                ruleset,
                repeat_of: Some(id),
                ..record(&repeat, &approve)
            });
        }
        for i in 0..30 {
            log.write(&record(&format!("r{i}"), &reject));
        }
        log.shutdown().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let count = |f: &dyn Fn(&serde_json::Value) -> bool| lines.iter().filter(|v| f(v)).count();
        assert_eq!(count(&|v| v["decision"] == "reject"), 30, "every refusal");
        let first =
            |v: &serde_json::Value| v["decision"] == "approve" && v.get("repeat_of").is_none();
        // One approval in three of each ruleset (1500 each: 500 expected, a hash's spread).
        for ruleset in ["default", "presale"] {
            let kept = count(&|v| first(v) && v["ruleset"] == ruleset);
            assert!(
                (400..=600).contains(&kept),
                "{ruleset}: {kept} of 1500 kept"
            );
        }
        // A repeat is kept exactly when its first delivery is.
        let firsts: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|v| first(v))
            .map(|v| v["decision_id"].as_str().unwrap())
            .collect();
        let repeats: std::collections::HashSet<&str> = lines
            .iter()
            .filter_map(|v| v.get("repeat_of").and_then(|r| r.as_str()))
            .collect();
        assert_eq!(firsts, repeats);
    }

    /// A decision log of every record through its writer thread onto a file that fails as
    /// `faults` say, with its own metrics.
    fn faulty_log(path: &Path, faults: &Shared, limits: Limits) -> (DecisionLog, Metrics) {
        let (file, reopen) = faulty(path, faults);
        let metrics = Metrics::new();
        let log = DecisionLog::start(
            path,
            file,
            reopen,
            Sampling { every: 1 },
            metrics.clone(),
            limits,
        )
        .unwrap();
        (log, metrics)
    }

    #[test]
    fn sampling_parses() {
        assert_eq!("sample=10".parse::<Sampling>(), Ok(Sampling { every: 10 }));
        assert_eq!("all".parse::<Sampling>(), Ok(Sampling { every: 1 }));
        assert!("sample=0".parse::<Sampling>().is_err());
    }

    #[tokio::test]
    async fn through_the_writer_thread_a_full_disk_leaves_whole_lines_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let limits = Limits {
            retry_for: Duration::from_millis(200),
            retry_bytes: 4096,
        };
        let (log, metrics) = faulty_log(&path, &faults, limits);
        let d = Decision::reject(409, "x".into(), Some("rule".into()));
        let mut n = 0;
        for round in 0..3 {
            // Room for a few records and a half, then none until the retries give up.
            faults.lock().unwrap().room = Some(1000 + round * 77);
            for _ in 0..40 {
                log.write(&record(&format!("d{n}"), &d));
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        faults.lock().unwrap().room = None;
        for _ in 0..20 {
            log.write(&record(&format!("d{n}"), &d));
            n += 1;
        }
        log.shutdown().await;
        let written = ids_in(&path);
        let lost = dropped(&metrics);
        assert!(lost > 0);
        assert_eq!(written.len() as u64 + lost, n as u64, "{written:?}");
        assert_eq!(&written[written.len() - 20..], &ids(n - 20..n)[..]);
    }

    /// A decision log whose writer has written record `d0` and now hangs in its next write
    /// until `release` is dropped (or sent to).
    struct Stuck {
        /// Holds the log's directory for as long as the test runs.
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        log: DecisionLog,
        metrics: Metrics,
        release: std::sync::mpsc::Sender<()>,
    }

    async fn stuck_writer() -> Stuck {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (log, metrics) = faulty_log(&path, &faults, Limits::default());
        log.write(&record("d0", &Decision::approve(None)));
        log.drain_within(Duration::from_secs(5)).await;
        let (release, stuck) = std::sync::mpsc::channel();
        faults.lock().unwrap().stuck = Some(stuck);
        Stuck {
            _dir: dir,
            path,
            log,
            metrics,
            release,
        }
    }

    /// A disk that stalls for a moment must not cost records: the queue in front of the writer
    /// holds megabytes, far more than a burst of requests writes while the disk hangs.
    #[tokio::test]
    async fn a_stalled_disk_loses_nothing_of_a_burst_of_megabytes() {
        let stuck = stuck_writer().await;
        let d = Decision::approve(None);
        // About 4 MiB: 1000 records of a 4 KiB id each.
        let pad = "x".repeat(4096);
        let n = 1000;
        for i in 1..=n {
            stuck.log.write(&record(&format!("d{i}{pad}"), &d));
        }
        drop(stuck.release);
        stuck.log.drain_within(Duration::from_secs(20)).await;
        assert_eq!(dropped(&stuck.metrics), 0);
        assert_eq!(ids_in(&stuck.path).len(), n + 1);
    }

    /// Past the queue's limit a record is dropped, and counted and warned about on the request's
    /// thread: the operator must learn that the log has a hole in it.
    #[tokio::test]
    async fn records_a_full_queue_cannot_take_are_counted_and_warned_about() {
        let stuck = stuck_writer().await;
        let d = Decision::approve(None);
        let pad = "x".repeat(256 * 1024);
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        let mut n = 1;
        // The queue holds 128 MiB: with the writer stuck, records past it cannot be queued.
        while dropped(&stuck.metrics) == 0 {
            assert!(n < 1000, "nothing dropped after {n} records of 256 KiB");
            stuck.log.write(&record(&format!("d{n}{pad}"), &d));
            n += 1;
        }
        // The records waiting show in the backlog; more that cannot be queued are counted,
        // and warned about once in a while, not once each.
        assert_eq!(stuck.log.backlog(), n as u64 - 2);
        for i in 0..20 {
            stuck.log.write(&record(&format!("e{i}{pad}"), &d));
        }
        drop(guard);
        // (Not shown when wrong: each record holds 256 KiB.)
        let text = captured.text();
        assert_eq!(text.matches("WARN").count(), 1);
        assert!(text.contains("decision log is behind"));
        assert!(text.contains(&format!("decision_id=d{}x", n - 1)));
        // Shutdown says how many came after that warning.
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        drop(stuck.release);
        stuck.log.drain_within(Duration::from_secs(30)).await;
        drop(guard);
        assert!(
            captured
                .text()
                .contains("20 more decision-log record(s) could not be queued"),
            "{}",
            captured.text().len()
        );
        assert_eq!(dropped(&stuck.metrics), 21);
        assert_eq!(ids_in(&stuck.path).len() + 1, n);
        assert_eq!(stuck.log.backlog(), 0);
    }

    /// Rotation: once the file is renamed and the log reopened, records go to a new file at
    /// the path.
    #[tokio::test]
    async fn reopen_moves_the_records_after_it_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let rotated = dir.path().join("d.jsonl.1");
        let log = DecisionLog::open(&path, Sampling { every: 1 }, Metrics::new()).unwrap();
        let d = Decision::approve(None);
        log.write(&record("d0", &d));
        log.drain_within(Duration::from_secs(5)).await;
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        // The reopen happens after the records already queued; a record queued at the same
        // moment may still land in the renamed file, so the test waits for the writer.
        log.drain_within(Duration::from_secs(5)).await;
        log.write(&record("d1", &d));
        log.shutdown().await;
        assert_eq!(ids_in(&rotated), ids(0..1));
        assert_eq!(ids_in(&path), ids(1..2));
    }

    /// A file that ends in part of a line (a process killed mid-write left it) gets a line
    /// break before the first record, at the start and at a reopen onto such a file: the
    /// record stands whole on its own line instead of being glued to the fragment.
    #[tokio::test]
    async fn records_after_a_cut_line_start_on_a_line_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let fragment = r#"{"time":"2026-12-03T10:00:00.000Z","decision_id":"01a2"#;
        std::fs::write(&path, fragment).unwrap();
        let log = DecisionLog::open(&path, Sampling { every: 1 }, Metrics::new()).unwrap();
        let d = Decision::approve(None);
        log.write(&record("d0", &d));
        log.drain_within(Duration::from_secs(5)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines()
                .nth(1)
                .map(|l| l.contains(r#""decision_id":"d0""#)),
            Some(true),
            "{text}"
        );
        // Rotated by copy and cut: the file at the path now ends in another fragment.
        std::fs::write(&path, fragment).unwrap();
        log.reopen();
        log.drain_within(Duration::from_secs(5)).await;
        log.write(&record("d1", &d));
        log.shutdown().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], fragment);
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["decision_id"], "d1");
    }

    /// A decision log deleted while open (by hand, or a rotation that deletes without
    /// signalling) would swallow every record after it: the path is opened again, and the
    /// records go to the new file there.
    #[tokio::test]
    async fn a_deleted_log_file_is_opened_again_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let log = DecisionLog::open(&path, Sampling { every: 1 }, Metrics::new()).unwrap();
        let d = Decision::approve(None);
        log.write(&record("d0", &d));
        log.drain_within(Duration::from_secs(5)).await;
        std::fs::remove_file(&path).unwrap();
        log.write(&record("d1", &d));
        log.shutdown().await;
        assert_eq!(ids_in(&path), ids(1..2));
    }

    /// A record that comes once the shutdown has begun would queue behind the drain and never
    /// be written: it is counted as dropped, and warned about.
    #[tokio::test(flavor = "current_thread")]
    async fn a_record_after_the_shutdown_is_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let metrics = Metrics::new();
        let log = DecisionLog::open(&path, Sampling { every: 1 }, metrics.clone()).unwrap();
        let d = Decision::approve(None);
        log.write(&record("d0", &d));
        log.shutdown().await;
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        log.write(&record("d1", &d));
        drop(guard);
        assert_eq!(ids_in(&path), ids(0..1));
        assert_eq!(dropped(&metrics), 1);
        let text = captured.text();
        assert!(text.contains("already closed for the shutdown"), "{text}");
        assert!(text.contains("decision_id=d1"), "{text}");
    }

    #[tokio::test]
    async fn shutdown_counts_and_reports_what_a_stuck_writer_leaves() {
        let stuck = stuck_writer().await;
        let d = Decision::approve(None);
        for i in 1..8 {
            stuck.log.write(&record(&format!("d{i}"), &d));
        }
        // A current-thread runtime: what shutdown logs, it logs on this thread.
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        stuck.log.drain_within(Duration::from_millis(300)).await;
        drop(guard);
        let text = captured.text();
        assert_eq!(dropped(&stuck.metrics), 7);
        assert!(text.contains("ERROR"), "{text}");
        assert!(text.contains("7 records were not written"), "{text}");
        // A second shutdown while the writer is still stuck has nothing more to count, and
        // no error to report about it.
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        stuck.log.drain_within(Duration::from_millis(100)).await;
        drop(guard);
        assert_eq!(captured.text(), "");
        assert_eq!(dropped(&stuck.metrics), 7);
        // Should the write still finish, nothing is counted twice.
        drop(stuck.release);
        stuck.log.drain_within(Duration::from_secs(5)).await;
        assert_eq!(dropped(&stuck.metrics), 7);
    }
}
