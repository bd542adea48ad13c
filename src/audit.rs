//! The decision log: one JSON line per answered confirm request, serialised on the request's
//! thread and written by a [`Spool`] off the request path (at least every 50 ms), drained on
//! shutdown, reopened on SIGUSR1 (rotation: rename the file, then signal).
//!
//! The file only ever holds whole lines: a write that fails part-way (disk full, file too
//! large) is cut back off, and its records are kept and retried for a while before they are
//! dropped. Every record is counted once: written, or dropped
//! (`confirm_proxy_decision_log_dropped_total`, with a warning).

mod line;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::decision::{Decision, Verdict};
use crate::metrics::Metrics;
use crate::payload::Amount;
use crate::spool::{Sink, Spool};

/// Bytes waiting to be written; far more than any burst produces between two writes.
const MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;
/// How long records whose write failed are kept and retried before they are dropped.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// Records that join a failed batch while it is retried are kept up to this many bytes (the
/// failed batch itself is always kept whole); further ones are dropped at once.
const RETRY_BYTES: usize = 16 * 1024 * 1024;
/// How long shutdown waits for the writer; what it has not written by then is counted as lost.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A reopen that keeps failing is retried before every batch, and warned about this often.
const REOPEN_WARN_EVERY: Duration = Duration::from_secs(10);

/// One line of the decision log. Holds what is needed to replay the decision later.
///
/// It borrows everything: it is written out at once on the request's thread, so nothing is
/// copied to build it. Fields that are `None` are left out of the line; the decision's own
/// fields (`decision`, `status`, `reason`, `rule`, `shadow`, `trace`) sit at the top level.
#[derive(Debug)]
pub struct Record<'a> {
    /// When the request arrived (RFC 3339, milliseconds, UTC).
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
}

/// Which approvals to log; refusals are always logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Log one approval in `every` (1 = all).
    pub every: u64,
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
                format!("expected \"all\" or \"sample=N\" with N >= 1, found \"{s}\"")
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
    approvals: Arc<AtomicU64>,
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
            approvals: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues a record without waiting. A record that cannot be queued is counted and warned
    /// about, never dropped silently.
    pub fn write(&self, record: &Record<'_>) {
        if record.decision.decision == Verdict::Approve && self.sampling.every > 1 {
            let n = self.approvals.fetch_add(1, Ordering::Relaxed);
            if n % self.sampling.every != 0 {
                return;
            }
        }
        thread_local! {
            // Serialised here, into a buffer this thread keeps: the spool then only copies bytes.
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            if line::write(record, line).is_err() {
                self.dropped("a decision-log record could not be serialised");
                return;
            }
            if self.spool.push(line, 1) {
                self.ledger.queued.fetch_add(1, Ordering::Relaxed);
            } else {
                self.dropped("decision log is behind; a record was not written");
            }
        });
    }

    fn dropped(&self, why: &str) {
        self.ledger.metrics.decision_log_dropped();
        tracing::warn!("{why}");
    }

    /// Closes and reopens the file (after an external rename for rotation).
    pub fn reopen(&self) {
        self.spool.reopen();
    }

    /// Writes everything queued so far and flushes; returns when the file is complete, or
    /// after 30 s with a stuck writer: what it has not written by then is counted as dropped
    /// and reported.
    pub async fn shutdown(&self) {
        self.shutdown_within(DRAIN_TIMEOUT).await;
    }

    async fn shutdown_within(&self, limit: Duration) {
        let done = self.spool.drain();
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

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
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
            for _ in 0..lines {
                self.metrics.decision_log_dropped();
            }
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
        for _ in 0..lost {
            self.metrics.decision_log_dropped();
        }
        lost
    }
}

/// What the writer appends to: the log file, or in tests a file that fails on demand.
trait LogFile: Send + 'static {
    /// The length, where the next append lands.
    fn len(&self) -> io::Result<u64>;
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file back to `len` bytes.
    fn cut(&mut self, len: u64) -> io::Result<()>;
}

impl LogFile for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Opens the decision log's path again (SIGUSR1).
type Opener<F> = Box<dyn FnMut() -> io::Result<F> + Send>;

/// How long and how much the writer retries; shorter in tests.
#[derive(Debug, Clone, Copy)]
struct Limits {
    retry_for: Duration,
    retry_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            retry_for: RETRY_FOR,
            retry_bytes: RETRY_BYTES,
        }
    }
}

/// The writer thread's end: appends batches of whole lines, keeps and retries a batch whose
/// write failed, retries a reopen that failed.
struct FileSink<F> {
    file: F,
    open: Opener<F>,
    path: PathBuf,
    ledger: Arc<Ledger>,
    limits: Limits,
    /// Records whose write failed, in order, retried before anything newer.
    held: Vec<u8>,
    held_lines: usize,
    /// When the first held record failed.
    held_since: Option<Instant>,
    /// Records dropped because `held` was full, reported when the held records are settled.
    overflowed: usize,
    last_error: Option<io::Error>,
    /// A failed cut may have left a fragment at the end of the file: the next write first ends
    /// it with a line break, so that it at least does not swallow the next record.
    torn: bool,
    /// A reopen that failed, retried before each write until it succeeds.
    reopen: Option<ReopenRetry>,
}

struct ReopenRetry {
    attempts: u64,
    warned: Instant,
}

impl<F: LogFile> FileSink<F> {
    fn new(path: &Path, file: F, open: Opener<F>, ledger: Arc<Ledger>, limits: Limits) -> Self {
        FileSink {
            file,
            open,
            path: path.to_owned(),
            ledger,
            limits,
            held: Vec::new(),
            held_lines: 0,
            held_since: None,
            overflowed: 0,
            last_error: None,
            torn: false,
            reopen: None,
        }
    }

    /// Appends `bytes` whole or not at all: a write that fails part-way is cut back off.
    fn append_whole(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.torn {
            self.file.append(b"\n")?;
            self.torn = false;
        }
        let before = self.file.len()?;
        let Err(e) = self.file.append(bytes) else {
            return Ok(());
        };
        if let Err(cut) = self.file.cut(before) {
            self.torn = true;
            tracing::error!(
                path = %self.path.display(),
                "a failed decision-log write left part of a record in the file, which could not \
                 be cut off ({cut}); it will stand on a line of its own"
            );
        }
        Err(e)
    }

    /// Keeps records whose write failed (or that came while earlier ones are kept) for a retry;
    /// past the byte limit, drops them.
    fn hold(&mut self, bytes: &[u8], lines: usize) {
        if self.held_lines > 0 && self.held.len() + bytes.len() > self.limits.retry_bytes {
            self.ledger.dropped(lines);
            self.overflowed += lines;
            return;
        }
        self.held.extend_from_slice(bytes);
        self.held_lines += lines;
        self.held_since.get_or_insert_with(Instant::now);
    }

    /// Tries the held records again; true when nothing is held any more.
    fn retry_held(&mut self) -> bool {
        if self.held_lines == 0 {
            return true;
        }
        let held = std::mem::take(&mut self.held);
        let result = self.append_whole(&held);
        self.held = held;
        match result {
            Ok(()) => {
                let late = self.held_lines;
                self.ledger.written(late);
                let waited = self.held_since.map_or(Duration::ZERO, |t| t.elapsed());
                tracing::info!(
                    path = %self.path.display(),
                    "decision log writable again: {late} held records written {:.1}s late",
                    waited.as_secs_f64()
                );
                self.release_held();
                true
            }
            Err(e) => {
                self.last_error = Some(e);
                false
            }
        }
    }

    /// Drops the held records once they have been retried for long enough.
    fn give_up_if_due(&mut self) {
        let Some(since) = self.held_since else {
            return;
        };
        if since.elapsed() < self.limits.retry_for {
            return;
        }
        let lines = self.held_lines;
        self.ledger.dropped(lines);
        let error = self
            .last_error
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        tracing::warn!(
            path = %self.path.display(),
            dropped = lines,
            "decision-log records dropped: {lines} could not be written within {:.1}s: {error}",
            self.limits.retry_for.as_secs_f64()
        );
        self.release_held();
    }

    fn release_held(&mut self) {
        if self.overflowed > 0 {
            tracing::warn!(
                path = %self.path.display(),
                dropped = self.overflowed,
                "decision-log records dropped: {} came while {} bytes of records were waiting \
                 to be written",
                self.overflowed,
                self.held.len()
            );
        }
        self.held = Vec::new();
        self.held_lines = 0;
        self.held_since = None;
        self.overflowed = 0;
        self.last_error = None;
    }

    fn try_reopen(&mut self) {
        let Some(retry) = &mut self.reopen else {
            return;
        };
        retry.attempts += 1;
        match (self.open)() {
            Ok(file) => {
                // A line break to end a fragment belongs to the old file, not the start of a new one.
                self.torn = self.torn && file.len().is_ok_and(|len| len > 0);
                self.file = file;
                if retry.attempts > 1 {
                    tracing::info!(
                        path = %self.path.display(),
                        "decision log reopened after {} attempts",
                        retry.attempts
                    );
                }
                self.reopen = None;
            }
            Err(e) => {
                if retry.attempts == 1 || retry.warned.elapsed() >= REOPEN_WARN_EVERY {
                    retry.warned = Instant::now();
                    tracing::warn!(
                        path = %self.path.display(),
                        attempts = retry.attempts,
                        "cannot reopen the decision log: {e}; records go on to the file open \
                         so far, and the reopen is retried before each write"
                    );
                }
            }
        }
    }
}

impl<F: LogFile> Sink for FileSink<F> {
    fn write(&mut self, bytes: &[u8], lines: usize) {
        self.try_reopen();
        if !self.retry_held() {
            self.give_up_if_due();
        }
        if self.held_lines > 0 {
            // Still failing: queue behind the held records, in order.
            self.hold(bytes, lines);
        } else if let Err(e) = self.append_whole(bytes) {
            tracing::warn!(
                path = %self.path.display(),
                lines,
                "could not write decision-log records: {e}; the file holds only whole lines, \
                 and these records are retried for up to {:.1}s",
                self.limits.retry_for.as_secs_f64()
            );
            self.last_error = Some(e);
            self.hold(bytes, lines);
        } else {
            self.ledger.written(lines);
        }
    }

    fn tick(&mut self) {
        if self.held_lines > 0 {
            self.try_reopen();
            if !self.retry_held() {
                self.give_up_if_due();
            }
        }
    }

    fn holds_lines(&self) -> bool {
        self.held_lines > 0
    }

    fn reopen(&mut self) {
        self.reopen.get_or_insert_with(|| ReopenRetry {
            attempts: 0,
            warned: Instant::now(),
        });
        self.try_reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(id: &'a str, decision: &'a Decision) -> Record<'a> {
        static AMOUNT: std::sync::LazyLock<Amount> =
            std::sync::LazyLock::new(|| "50000".parse().unwrap());
        Record {
            time: chrono::Utc::now(),
            decision_id: id,
            ruleset: "default",
            rules_version: "abc",
            api: Some("v1"),
            order_id: Some("o"),
            tx_id: Some("t"),
            amount: Some(&AMOUNT),
            decision,
            latency_ms: 0.1,
            request: None,
        }
    }

    #[test]
    fn time_is_rfc3339_with_milliseconds() {
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
        assert_eq!(v["time"], "2026-01-05T09:07:03.042Z");
        assert_eq!(
            v["time"],
            t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().as_str()
        );
    }

    #[tokio::test]
    async fn writes_every_record_and_samples_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let log = DecisionLog::open(&path, Sampling { every: 3 }, Metrics::new()).unwrap();
        for i in 0..6 {
            let (a, r) = (format!("a{i}"), format!("r{i}"));
            log.write(&record(&a, &Decision::approve(None)));
            log.write(&record(
                &r,
                &Decision::reject(409, "x".into(), Some("rule".into())),
            ));
        }
        log.shutdown().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["decision_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            ids.iter().filter(|i| i.starts_with('r')).count(),
            6,
            "every refusal"
        );
        assert_eq!(
            ids.iter().filter(|i| i.starts_with('a')).count(),
            2,
            "one approval in three"
        );
    }

    #[test]
    fn sampling_parses() {
        assert_eq!("sample=10".parse::<Sampling>(), Ok(Sampling { every: 10 }));
        assert_eq!("all".parse::<Sampling>(), Ok(Sampling { every: 1 }));
        assert!("sample=0".parse::<Sampling>().is_err());
    }

    /// What the test file does wrong, changed while the writer runs.
    #[derive(Default)]
    struct Faults {
        /// Bytes that may still be written; past them an append writes what fits and fails
        /// with "no space left on device" (`None`: no limit).
        room: Option<usize>,
        /// Cutting the file back fails.
        cut_fails: bool,
        /// Opening the path again fails.
        open_fails: bool,
        /// Appends block until a message comes (or the sender is dropped).
        stuck: Option<std::sync::mpsc::Receiver<()>>,
    }

    type Shared = Arc<Mutex<Faults>>;

    /// A real file that fails as told.
    struct Faulty {
        file: File,
        faults: Shared,
    }

    impl LogFile for Faulty {
        fn len(&self) -> io::Result<u64> {
            self.file.len()
        }

        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let mut faults = self.faults.lock().unwrap();
            if let Some(stuck) = &faults.stuck {
                let _ = stuck.recv();
            }
            match &mut faults.room {
                Some(room) if *room < bytes.len() => {
                    self.file.write_all(&bytes[..*room])?;
                    *room = 0;
                    Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        "No space left on device",
                    ))
                }
                Some(room) => {
                    *room -= bytes.len();
                    self.file.write_all(bytes)
                }
                None => self.file.write_all(bytes),
            }
        }

        fn cut(&mut self, len: u64) -> io::Result<()> {
            if self.faults.lock().unwrap().cut_fails {
                return Err(io::Error::other("cut refused"));
            }
            self.file.set_len(len)
        }
    }

    fn faulty(path: &Path, faults: &Shared) -> (Faulty, Opener<Faulty>) {
        let file = Faulty {
            file: open(path).unwrap(),
            faults: faults.clone(),
        };
        let (path, faults) = (path.to_owned(), faults.clone());
        let reopen: Opener<Faulty> = Box::new(move || {
            if faults.lock().unwrap().open_fails {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "Permission denied",
                ));
            }
            Ok(Faulty {
                file: open(&path)?,
                faults: faults.clone(),
            })
        });
        (file, reopen)
    }

    fn sink(path: &Path, faults: &Shared, limits: Limits) -> (FileSink<Faulty>, Arc<Ledger>) {
        let ledger = Arc::new(Ledger::new(Metrics::new()));
        let (file, reopen) = faulty(path, faults);
        (
            FileSink::new(path, file, reopen, ledger.clone(), limits),
            ledger,
        )
    }

    /// `n` records `{from}`..`{from + n}` as the spool hands them over.
    fn batch(from: usize, n: usize) -> Vec<u8> {
        let d = Decision::approve(None);
        let mut out = Vec::new();
        for i in from..from + n {
            line::write(&record(&format!("d{i}"), &d), &mut out).unwrap();
        }
        out
    }

    /// The decision ids in the file; panics on a line that is not a whole record.
    fn ids_in(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "ends mid-line");
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a whole record ({e}): {l:?}"));
                v["decision_id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("d{i}")).collect()
    }

    fn dropped(metrics: &Metrics) -> u64 {
        let text = metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix("confirm_proxy_decision_log_dropped_total "))
            .unwrap_or_else(|| panic!("no dropped counter in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    fn settled(ledger: &Ledger) -> u64 {
        ledger.settled.lock().unwrap().count
    }

    /// Collects log lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        /// Captures what this thread logs until the guard is dropped.
        fn on_this_thread(&self) -> tracing::subscriber::DefaultGuard {
            let writer = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_default(subscriber)
        }

        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Log lines emitted on this thread while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let captured = Captured::default();
        let out = {
            let _guard = captured.on_this_thread();
            f()
        };
        (out, captured.text())
    }

    #[test]
    fn a_failed_write_is_cut_back_and_retried_until_the_disk_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (mut sink, ledger) = sink(&path, &faults, Limits::default());
        let (_, log) = logged(|| {
            sink.write(&batch(0, 3), 3);
            // The disk fills part-way through the next batch.
            faults.lock().unwrap().room = Some(100);
            sink.write(&batch(3, 3), 3);
            assert_eq!(ids_in(&path), ids(0..3), "the fragment is cut back off");
            assert!(sink.holds_lines());
            sink.tick();
            sink.write(&batch(6, 2), 2);
            assert_eq!(ids_in(&path), ids(0..3));
            // Room again: the held records go first, in order.
            faults.lock().unwrap().room = None;
            sink.tick();
            assert!(!sink.holds_lines());
            sink.write(&batch(8, 1), 1);
        });
        assert_eq!(ids_in(&path), ids(0..9));
        assert_eq!(settled(&ledger), 9);
        assert_eq!(dropped(&ledger.metrics), 0);
        assert!(
            log.contains("WARN") && log.contains("could not write decision-log records"),
            "{log}"
        );
        assert!(log.contains("No space left on device"), "{log}");
        assert!(log.contains("5 held records written"), "{log}");
    }

    #[test]
    fn records_that_cannot_be_written_in_time_are_dropped_counted_and_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let limits = Limits {
            retry_for: Duration::from_millis(50),
            retry_bytes: 2000,
        };
        let (mut sink, ledger) = sink(&path, &faults, limits);
        let (_, log) = logged(|| {
            sink.write(&batch(0, 2), 2);
            faults.lock().unwrap().room = Some(300);
            sink.write(&batch(2, 4), 4);
            // Joins the held batch while it fits in 2000 bytes; then dropped at once.
            for i in 0..10 {
                sink.write(&batch(6 + i, 1), 1);
            }
            assert!(dropped(&ledger.metrics) > 0, "past the byte limit");
            std::thread::sleep(Duration::from_millis(60));
            sink.tick();
            assert!(!sink.holds_lines(), "given up after retry_for");
            faults.lock().unwrap().room = None;
            sink.write(&batch(16, 2), 2);
        });
        let written = ids_in(&path);
        assert_eq!(written.first().map(String::as_str), Some("d0"));
        assert_eq!(written.last().map(String::as_str), Some("d17"));
        assert_eq!(
            written.len() as u64 + dropped(&ledger.metrics),
            18,
            "every record written or counted as dropped: {written:?}"
        );
        assert_eq!(settled(&ledger), 18);
        assert_eq!(dropped(&ledger.metrics), 14);
        // The held batch and those that joined it, then those past the byte limit.
        assert!(
            log.contains("decision-log records dropped: 9 could not be written within"),
            "{log}"
        );
        assert!(
            log.contains("decision-log records dropped: 5 came while"),
            "{log}"
        );
    }

    #[test]
    fn a_fragment_that_cannot_be_cut_stands_on_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (mut sink, ledger) = sink(&path, &faults, Limits::default());
        let (_, log) = logged(|| {
            sink.write(&batch(0, 1), 1);
            {
                let mut f = faults.lock().unwrap();
                f.room = Some(40);
                f.cut_fails = true;
            }
            sink.write(&batch(1, 2), 2);
            *faults.lock().unwrap() = Faults::default();
            sink.tick();
            sink.write(&batch(3, 1), 1);
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err());
        for (l, id) in [lines[0], lines[2], lines[3], lines[4]]
            .iter()
            .zip(ids(0..4))
        {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["decision_id"], id.as_str());
        }
        assert_eq!(settled(&ledger), 4);
        assert!(log.contains("could not be cut off"), "{log}");
    }

    #[test]
    fn a_failed_reopen_is_warned_about_and_retried_before_each_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let rotated = dir.path().join("d.jsonl.1");
        let faults = Shared::default();
        let (mut sink, ledger) = sink(&path, &faults, Limits::default());
        let (_, log) = logged(|| {
            sink.write(&batch(0, 1), 1);
            std::fs::rename(&path, &rotated).unwrap();
            faults.lock().unwrap().open_fails = true;
            sink.reopen();
            sink.write(&batch(1, 1), 1);
            sink.write(&batch(2, 1), 1);
            assert!(!path.exists());
            faults.lock().unwrap().open_fails = false;
            sink.write(&batch(3, 1), 1);
        });
        assert_eq!(
            ids_in(&rotated),
            ids(0..3),
            "kept writing to the rotated file"
        );
        assert_eq!(ids_in(&path), ids(3..4), "reopened");
        assert_eq!(settled(&ledger), 4);
        assert!(
            log.contains("WARN") && log.contains("cannot reopen the decision log"),
            "{log}"
        );
        assert_eq!(
            log.matches("cannot reopen").count(),
            1,
            "warned once, not per attempt: {log}"
        );
        assert!(log.contains("reopened after 4 attempts"), "{log}");
    }

    #[tokio::test]
    async fn through_the_writer_thread_a_full_disk_leaves_whole_lines_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (file, reopen) = faulty(&path, &faults);
        let metrics = Metrics::new();
        let limits = Limits {
            retry_for: Duration::from_millis(200),
            retry_bytes: 4096,
        };
        let log = DecisionLog::start(
            &path,
            file,
            reopen,
            Sampling { every: 1 },
            metrics.clone(),
            limits,
        )
        .unwrap();
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

    #[tokio::test]
    async fn shutdown_counts_and_reports_what_a_stuck_writer_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (file, reopen) = faulty(&path, &faults);
        let metrics = Metrics::new();
        let log = DecisionLog::start(
            &path,
            file,
            reopen,
            Sampling { every: 1 },
            metrics.clone(),
            Limits::default(),
        )
        .unwrap();
        let d = Decision::approve(None);
        log.write(&record("d0", &d));
        log.shutdown_within(Duration::from_secs(5)).await;
        // The disk hangs: the writer blocks in its next write.
        let (release, stuck) = std::sync::mpsc::channel();
        faults.lock().unwrap().stuck = Some(stuck);
        for i in 1..8 {
            log.write(&record(&format!("d{i}"), &d));
        }
        // A current-thread runtime: what shutdown logs, it logs on this thread.
        let captured = Captured::default();
        let guard = captured.on_this_thread();
        log.shutdown_within(Duration::from_millis(300)).await;
        drop(guard);
        let text = captured.text();
        assert_eq!(dropped(&metrics), 7);
        assert!(text.contains("ERROR"), "{text}");
        assert!(text.contains("7 records were not written"), "{text}");
        // Should the write still finish, nothing is counted twice.
        drop(release);
        log.shutdown_within(Duration::from_secs(5)).await;
        assert_eq!(dropped(&metrics), 7);
    }
}
