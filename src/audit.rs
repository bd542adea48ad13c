//! The decision log: one JSON line per answered confirm request, serialised on the request's
//! thread and written by a [`Spool`] off the request path (at least every 50 ms), drained on
//! shutdown, reopened on SIGUSR1 (rotation: rename the file, then signal).

mod line;

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::decision::{Decision, Verdict};
use crate::metrics::Metrics;
use crate::payload::Amount;
use crate::spool::{Sink, Spool};

/// Bytes waiting to be written; far more than any burst produces between two writes.
const MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;

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
    metrics: Metrics,
    sampling: Sampling,
    approvals: Arc<AtomicU64>,
}

impl DecisionLog {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, sampling: Sampling, metrics: Metrics) -> std::io::Result<DecisionLog> {
        let sink = FileSink {
            file: open(path)?,
            path: path.to_owned(),
            metrics: metrics.clone(),
        };
        Ok(DecisionLog {
            spool: Spool::start("decision-log", MAX_PENDING_BYTES, sink)?,
            metrics,
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
            if !self.spool.push(line, 1) {
                self.dropped("decision log is behind; a record was not written");
            }
        });
    }

    fn dropped(&self, why: &str) {
        self.metrics.decision_log_dropped();
        tracing::warn!("{why}");
    }

    /// Closes and reopens the file (after an external rename for rotation).
    pub fn reopen(&self) {
        self.spool.reopen();
    }

    /// Writes everything queued so far and flushes; returns when the file is complete.
    pub async fn shutdown(&self) {
        let done = self.spool.drain();
        let _ =
            tokio::task::spawn_blocking(move || done.recv_timeout(Duration::from_secs(30))).await;
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct FileSink {
    file: File,
    path: PathBuf,
    metrics: Metrics,
}

impl Sink for FileSink {
    fn write(&mut self, bytes: &[u8], lines: usize) {
        if let Err(e) = self.file.write_all(bytes) {
            for _ in 0..lines {
                self.metrics.decision_log_dropped();
            }
            tracing::warn!(path = %self.path.display(), lines, "could not write decision-log records: {e}");
        }
    }

    fn reopen(&mut self) {
        match open(&self.path) {
            Ok(f) => self.file = f,
            Err(e) => {
                tracing::error!(path = %self.path.display(), "cannot reopen decision log: {e}")
            }
        }
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
}
