//! Test fixtures of the decision log: records, a log file that fails on demand (disk full, a
//! cut or a reopen refused, a hung disk), and reading back what the file and the log got.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::sink::{LogFile, Opener};
use super::{open, Record};
use crate::decision::Decision;
use crate::metrics::Metrics;
use crate::payload::Amount;

pub(super) fn record<'a>(id: &'a str, decision: &'a Decision) -> Record<'a> {
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
        repeat_of: None,
        repeat_refused: None,
        guard: None,
        webhook_id: None,
        source: None,
    }
}

/// What the test file does wrong, changed while the writer runs.
#[derive(Default)]
pub(super) struct Faults {
    /// Bytes that may still be written; past them an append writes what fits and fails
    /// with "no space left on device" (`None`: no limit).
    pub(super) room: Option<usize>,
    /// The room reserving sees, when not `room` (a file system whose reservation does not
    /// hold: the write fails where the reservation said there was room).
    pub(super) reserve_room: Option<usize>,
    /// Reserving room does nothing (a file system without `fallocate`): a write past `room`
    /// leaves part of a line, which is cut back off.
    pub(super) no_reserve: bool,
    /// Cuts made so far.
    pub(super) cuts: usize,
    /// Cutting the file back fails.
    pub(super) cut_fails: bool,
    /// Opening the path again fails.
    pub(super) open_fails: bool,
    /// Appends block until a message comes (or the sender is dropped).
    pub(super) stuck: Option<std::sync::mpsc::Receiver<()>>,
}

pub(super) type Shared = Arc<Mutex<Faults>>;

/// A real file that fails as told.
pub(super) struct Faulty {
    file: File,
    faults: Shared,
}

impl LogFile for Faulty {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn deleted(&self) -> bool {
        self.file.deleted()
    }

    fn ends_mid_line(&self, path: &std::path::Path) -> bool {
        self.file.ends_mid_line(path)
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

    fn reserve(&mut self, _: u64, len: u64) -> io::Result<()> {
        let faults = self.faults.lock().unwrap();
        match faults.reserve_room.or(faults.room) {
            Some(room) if !faults.no_reserve && (room as u64) < len => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device",
            )),
            _ => Ok(()),
        }
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        let mut faults = self.faults.lock().unwrap();
        faults.cuts += 1;
        if faults.cut_fails {
            return Err(io::Error::other("cut refused"));
        }
        self.file.set_len(len)
    }
}

pub(super) fn faulty(path: &Path, faults: &Shared) -> (Faulty, Opener<Faulty>) {
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

/// The decision ids in the file; panics on a line that is not a whole record.
pub(super) fn ids_in(path: &Path) -> Vec<String> {
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

pub(super) fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("d{i}")).collect()
}

pub(super) fn dropped(metrics: &Metrics) -> u64 {
    let text = metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix("confirm_proxy_decision_log_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped counter in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Collects log lines.
#[derive(Clone, Default)]
pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

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
    pub(super) fn on_this_thread(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Log lines emitted on this thread while `f` runs.
pub(super) fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let out = {
        let _guard = captured.on_this_thread();
        f()
    };
    (out, captured.text())
}
