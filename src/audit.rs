//! The decision log: one JSON line per answered confirm request, written by a dedicated thread
//! off the request path, flushed at least every 200 ms, drained on shutdown, reopened on SIGUSR1
//! (for logrotate's `copytruncate`-free rotation: rename, then signal).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::decision::{Decision, Verdict};
use crate::metrics::Metrics;

/// Bytes waiting to be written; far more than any burst produces between two writes.
const MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;
/// A full batch wakes the writer early.
const BATCH: usize = 512;
/// The writer wakes at least this often, so the file is never more than this behind.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One line of the decision log. Holds what is needed to replay the decision later.
#[derive(Debug, Serialize)]
pub struct Record {
    /// When the request arrived (RFC 3339, milliseconds, UTC), formatted by the writer thread.
    #[serde(serialize_with = "rfc3339_millis")]
    pub time: chrono::DateTime<chrono::Utc>,
    pub decision_id: String,
    pub ruleset: String,
    pub rules_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
    /// Exactly as sent (`50000`, `10.5`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<serde_json::Number>,
    #[serde(flatten)]
    pub decision: Decision,
    pub latency_ms: f64,
    /// The normalised request's original body, for replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
}

fn rfc3339_millis<S: serde::Serializer>(
    t: &chrono::DateTime<chrono::Utc>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
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

/// Records and requests waiting for the writer thread.
#[derive(Default)]
struct Pending {
    /// Whole JSON lines, ready to write.
    bytes: Vec<u8>,
    lines: usize,
    reopen: bool,
    drained: Vec<mpsc::Sender<()>>,
}

/// The queue between request handlers and the writer. Handlers only push under a short lock;
/// the writer wakes on its own every [`FLUSH_EVERY`] (or when a batch is full), so a busy
/// server does not pay a thread wake-up per request.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// Handle to the writer thread. Cloning is cheap.
#[derive(Clone)]
pub struct DecisionLog {
    queue: Arc<Queue>,
    metrics: Metrics,
    sampling: Sampling,
    approvals: Arc<AtomicU64>,
}

impl DecisionLog {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, sampling: Sampling, metrics: Metrics) -> std::io::Result<DecisionLog> {
        let file = open(path)?;
        let queue = Arc::new(Queue::default());
        let path = path.to_owned();
        let writer_queue = queue.clone();
        let writer_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || write_loop(&path, file, &writer_queue, &writer_metrics))?;
        Ok(DecisionLog {
            queue,
            metrics,
            sampling,
            approvals: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Queues a record without waiting. A record that cannot be queued is counted and warned
    /// about, never dropped silently.
    pub fn write(&self, record: Record) {
        if record.decision.decision == Verdict::Approve && self.sampling.every > 1 {
            let n = self.approvals.fetch_add(1, Ordering::Relaxed);
            if n % self.sampling.every != 0 {
                return;
            }
        }
        // Serialised here, on the thread that built the record: the writer then only copies
        // bytes, and no allocation crosses threads (glibc makes cross-thread frees contend).
        // A whole line is appended under the lock, so lines are never torn.
        let mut line = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut line, &record).is_err() {
            self.dropped("a decision-log record could not be serialised");
            return;
        }
        line.push(b'\n');
        drop(record);
        let Ok(mut pending) = self.queue.pending.lock() else {
            self.dropped("the decision-log queue is poisoned");
            return;
        };
        if pending.bytes.len() + line.len() > MAX_PENDING_BYTES {
            drop(pending);
            self.dropped("decision log is behind; a record was not written");
            return;
        }
        pending.bytes.extend_from_slice(&line);
        pending.lines += 1;
        if pending.lines == BATCH {
            self.queue.wake.notify_one();
        }
    }

    fn dropped(&self, why: &str) {
        self.metrics.decision_log_dropped();
        tracing::warn!("{why}");
    }

    /// Closes and reopens the file (after an external rename for rotation).
    pub fn reopen(&self) {
        if let Ok(mut pending) = self.queue.pending.lock() {
            pending.reopen = true;
            self.queue.wake.notify_one();
        }
    }

    /// Writes everything queued so far and flushes; returns when the file is complete.
    pub async fn shutdown(&self) {
        let (ack, done) = mpsc::channel();
        if let Ok(mut pending) = self.queue.pending.lock() {
            pending.drained.push(ack);
            self.queue.wake.notify_one();
        }
        let _ =
            tokio::task::spawn_blocking(move || done.recv_timeout(Duration::from_secs(30))).await;
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(path: &Path, file: File, queue: &Queue, metrics: &Metrics) {
    let mut out = file;
    // Two buffers trade places with the queue, so steady state allocates nothing.
    let mut batch = Vec::with_capacity(256 * 1024);
    loop {
        let (lines, reopen, drained) = {
            let Ok(pending) = queue.pending.lock() else {
                return;
            };
            let Ok((mut pending, _)) = queue.wake.wait_timeout_while(pending, FLUSH_EVERY, |p| {
                p.lines < BATCH && !p.reopen && p.drained.is_empty()
            }) else {
                return;
            };
            std::mem::swap(&mut batch, &mut pending.bytes);
            (
                std::mem::take(&mut pending.lines),
                std::mem::take(&mut pending.reopen),
                std::mem::take(&mut pending.drained),
            )
        };
        if !batch.is_empty() {
            if let Err(e) = out.write_all(&batch) {
                for _ in 0..lines {
                    metrics.decision_log_dropped();
                }
                tracing::warn!(path = %path.display(), lines, "could not write decision-log records: {e}");
            }
            batch.clear();
        }
        if reopen {
            match open(path) {
                Ok(f) => out = f,
                Err(e) => {
                    tracing::error!(path = %path.display(), "cannot reopen decision log: {e}")
                }
            }
        }
        for ack in drained {
            let _ = ack.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, decision: Decision) -> Record {
        Record {
            time: chrono::Utc::now(),
            decision_id: id.into(),
            ruleset: "default".into(),
            rules_version: "abc".into(),
            api: Some("v1"),
            order_id: Some("o".into()),
            tx_id: Some("t".into()),
            amount: Some(serde_json::Number::from(50000)),
            decision,
            latency_ms: 0.1,
            request: None,
        }
    }

    #[tokio::test]
    async fn writes_every_record_and_samples_approvals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let log = DecisionLog::open(&path, Sampling { every: 3 }, Metrics::new()).unwrap();
        for i in 0..6 {
            log.write(record(&format!("a{i}"), Decision::approve(None)));
            log.write(record(
                &format!("r{i}"),
                Decision::reject(409, "x".into(), Some("rule".into())),
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
