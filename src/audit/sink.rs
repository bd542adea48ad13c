//! The writer thread's end of the decision log: appends batches of whole lines to the file,
//! keeps and retries the records of a write that failed, and reopens the file on SIGUSR1.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Ledger;
use crate::spool::Sink;

/// How long records whose write failed are kept and retried before they are dropped.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// Records that join a failed batch while it is retried are kept up to this many bytes (a
/// first failed batch larger than this is kept only in part, see `hold`); further ones are
/// dropped at once.
const RETRY_BYTES: usize = 16 * 1024 * 1024;
/// A reopen that keeps failing is retried before every batch, and warned about this often.
const REOPEN_WARN_EVERY: Duration = Duration::from_secs(10);

/// What the writer appends to: the log file, or in tests a file that fails on demand.
pub(super) trait LogFile: Send + 'static {
    /// The length, where the next append lands.
    fn len(&self) -> io::Result<u64>;
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reserves disk space for `len` bytes from `at` without changing the file's length, so
    /// that an append there cannot fail for want of room part-way through a line. An error is
    /// a lack of room; where the file system cannot reserve, this is a no-op.
    fn reserve(&mut self, at: u64, len: u64) -> io::Result<()>;
    /// Cuts the file back to `len` bytes.
    fn cut(&mut self, len: u64) -> io::Result<()>;
    /// Whether the file was deleted while open: what is written to it then is lost with it.
    fn deleted(&self) -> bool;
    /// Whether the file, opened at `path`, ends in part of a line.
    fn ends_mid_line(&self, path: &Path) -> bool;
}

impl LogFile for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn deleted(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.metadata().is_ok_and(|m| m.nlink() == 0)
    }

    fn ends_mid_line(&self, path: &Path) -> bool {
        super::ends_mid_line(path, self)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    #[cfg(target_os = "linux")]
    fn reserve(&mut self, at: u64, len: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        use rustix::io::Errno;
        match fallocate(&*self, FallocateFlags::KEEP_SIZE, at, len) {
            Err(e @ (Errno::NOSPC | Errno::DQUOT | Errno::FBIG)) => Err(e.into()),
            // Done, or not supported here (EOPNOTSUPP) or refused otherwise: the write finds
            // out.
            _ => Ok(()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn reserve(&mut self, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// The longest run of whole lines at the start of `bytes` for which `file` reserves room from
/// `at` (its length): all of `bytes`, or as many lines as fit — found by halving, a few calls
/// however many lines — with the error that kept the rest out.
fn reserve_whole_lines<F: LogFile>(
    file: &mut F,
    at: u64,
    bytes: &[u8],
) -> (usize, Option<io::Error>) {
    let Err(full) = file.reserve(at, bytes.len() as u64) else {
        return (bytes.len(), None);
    };
    let ends: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    // Invariant: the first `fit` lines have room, the first `over` do not.
    let (mut fit, mut over) = (0, ends.len());
    while over - fit > 1 {
        let mid = fit + (over - fit) / 2;
        if file.reserve(at, ends[mid - 1] as u64).is_ok() {
            fit = mid;
        } else {
            over = mid;
        }
    }
    (fit.checked_sub(1).map_or(0, |last| ends[last]), Some(full))
}

/// Opens the decision log's path again (SIGUSR1).
pub(super) type Opener<F> = Box<dyn FnMut() -> io::Result<F> + Send>;

/// How long and how much the writer retries; shorter in tests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) retry_for: Duration,
    pub(super) retry_bytes: usize,
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
pub(super) struct FileSink<F> {
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
    /// The file ends in part of a line (a failed cut left it, or a process killed mid-write
    /// before this one opened the file): the next write first ends it with a line break, kept
    /// and retried as records are, so that it does not swallow the next record.
    torn: bool,
    /// A reopen that failed, retried before each write until it succeeds.
    reopen: Option<ReopenRetry>,
}

struct ReopenRetry {
    attempts: u64,
    warned: Instant,
}

impl<F: LogFile> FileSink<F> {
    pub(super) fn new(
        path: &Path,
        file: F,
        open: Opener<F>,
        ledger: Arc<Ledger>,
        limits: Limits,
    ) -> Self {
        FileSink {
            torn: file.ends_mid_line(path),
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
            reopen: None,
        }
    }

    /// Records written to a deleted file would be lost without a word (and without a count):
    /// the path is opened again, a new file.
    /// Marks the file for a reopen when it was deleted while open (the reopen is then tried by
    /// [`Self::retry`]).
    fn reopen_if_deleted(&mut self) {
        if self.reopen.is_none() && self.file.deleted() {
            tracing::warn!(
                path = %self.path.display(),
                "the decision log file was deleted while open; opening a new one at its path"
            );
            self.mark_reopen();
        }
    }

    fn mark_reopen(&mut self) {
        self.reopen.get_or_insert_with(|| ReopenRetry {
            attempts: 0,
            warned: Instant::now(),
        });
    }

    /// Before a batch (or at a tick while records are held): the reopen a deleted file or a
    /// SIGUSR1 asked for, tried once, then the held records.
    fn retry(&mut self) {
        self.reopen_if_deleted();
        self.try_reopen();
        if !self.retry_held() {
            self.give_up_if_due();
        }
    }

    /// Appends `bytes` (whole lines). A write that fails part-way keeps the lines it wrote
    /// whole and cuts the rest back off, so that a nearly full disk still takes what fits: the
    /// error comes with how many bytes of `bytes` (whole lines) are in the file.
    fn append_whole(&mut self, bytes: &[u8]) -> Result<(), (usize, io::Error)> {
        // What goes to a deleted file is lost with it: while its path cannot be opened again
        // (its directory removed), records are held like those of a failed write, and written
        // once the path is back, or dropped and counted.
        if self.reopen.is_some() && self.file.deleted() {
            return Err((
                0,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the file was deleted and its path cannot be opened again",
                ),
            ));
        }
        if self.torn {
            self.file.append(b"\n").map_err(|e| (0, e))?;
            self.torn = false;
        }
        let before = self.file.len().map_err(|e| (0, e))?;
        // Room first: on a full disk the file then never holds part of a line, not even for
        // the moment before it is cut off again (a log shipper tailing it would see the file
        // shrink and read it again from the start, at every retry).
        let (room, full) = reserve_whole_lines(&mut self.file, before, bytes);
        if room > 0 {
            self.append_from(before, &bytes[..room])?;
        }
        match full {
            Some(full) => Err((room, full)),
            None => Ok(()),
        }
    }

    /// Appends `bytes` (whole lines) at `before`, the file's length. A write that fails
    /// part-way anyway (a file system that cannot reserve room, a file-size limit, an I/O
    /// error) keeps the lines it wrote whole and cuts the rest back off.
    fn append_from(&mut self, before: u64, bytes: &[u8]) -> Result<(), (usize, io::Error)> {
        let Err(e) = self.file.append(bytes) else {
            return Ok(());
        };
        let Ok(len) = self.file.len() else {
            // How much went in cannot be told: cut back to where the batch began, so that it
            // is held and retried whole; should that fail too, whatever did go in stands on a
            // line of its own before the retry.
            if self.file.cut(before).is_err() {
                self.torn = true;
            }
            return Err((0, e));
        };
        let written = usize::try_from(len.saturating_sub(before)).map_or(0, |n| n.min(bytes.len()));
        let kept = bytes[..written]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if written == kept {
            return Err((kept, e));
        }
        if let Err(cut) = self.file.cut(before + kept as u64) {
            self.torn = true;
            tracing::error!(
                path = %self.path.display(),
                "a failed decision-log write left part of a record in the file, which could not \
                 be cut off ({cut}); it will stand on a line of its own"
            );
        }
        Err((kept, e))
    }

    /// Counts the records of `bytes[..kept]` (written whole before a failure) as written.
    fn written_before_failure(&mut self, bytes: &[u8], kept: usize) -> usize {
        let lines = bytes[..kept].iter().filter(|&&b| b == b'\n').count();
        self.ledger.written(lines);
        lines
    }

    /// Keeps records whose write failed (or that came while earlier ones are kept) for a retry,
    /// in order, as many whole ones as the byte limit holds; drops the rest. The first batch
    /// held is bounded too: one the writer took after being stuck can be as large as the whole
    /// queue, which with the queue filling again behind it would be held twice over.
    fn hold(&mut self, bytes: &[u8], lines: usize) {
        let room = self.limits.retry_bytes.saturating_sub(self.held.len());
        let (kept, kept_lines) = if bytes.len() <= room {
            (bytes.len(), lines)
        } else {
            let cut = bytes[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            (cut, bytes[..cut].iter().filter(|&&b| b == b'\n').count())
        };
        if kept_lines < lines {
            self.ledger.dropped(lines - kept_lines);
            self.overflowed += lines - kept_lines;
        }
        if kept_lines == 0 {
            return;
        }
        self.held.extend_from_slice(&bytes[..kept]);
        self.held_lines += kept_lines;
        self.held_since.get_or_insert_with(Instant::now);
    }

    /// Tries the held records again; true when nothing is held any more.
    fn retry_held(&mut self) -> bool {
        if self.held_lines == 0 {
            return true;
        }
        let mut held = std::mem::take(&mut self.held);
        let result = self.append_whole(&held);
        if let Err((kept, _)) = &result {
            self.held_lines -= self.written_before_failure(&held, *kept);
            held.drain(..*kept);
        }
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
            Err((_, e)) => {
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
                // A line break to end a fragment belongs to the old file, not the start of a
                // new one, unless that one ends in part of a line too.
                self.torn = file.ends_mid_line(&self.path);
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
                    let meanwhile = if self.file.deleted() {
                        format!(
                            "records are held meanwhile, and dropped (and counted) after {:.1}s",
                            self.limits.retry_for.as_secs_f64()
                        )
                    } else {
                        "records go on to the file open so far".to_owned()
                    };
                    tracing::warn!(
                        path = %self.path.display(),
                        attempts = retry.attempts,
                        "cannot reopen the decision log: {e}; {meanwhile}; the reopen is retried \
                         before each write"
                    );
                }
            }
        }
    }
}

impl<F: LogFile> Sink for FileSink<F> {
    fn write(&mut self, bytes: &[u8], lines: usize) {
        self.retry();
        if self.held_lines > 0 {
            // Still failing: queue behind the held records, in order.
            self.hold(bytes, lines);
        } else if let Err((kept, e)) = self.append_whole(bytes) {
            let lines = lines - self.written_before_failure(bytes, kept);
            tracing::warn!(
                path = %self.path.display(),
                lines,
                "could not write decision-log records: {e}; the file holds only whole lines, \
                 and these records are retried for up to {:.1}s",
                self.limits.retry_for.as_secs_f64()
            );
            self.last_error = Some(e);
            self.hold(&bytes[kept..], lines);
        } else {
            self.ledger.written(lines);
        }
    }

    fn tick(&mut self) {
        if self.held_lines > 0 {
            // Held records retried into a deleted file (an operator clearing a full disk with
            // `rm`) would be lost and counted as written: `retry` reopens it first.
            self.retry();
        }
    }

    fn holds_lines(&self) -> bool {
        self.held_lines > 0
    }

    fn reopen(&mut self) {
        self.mark_reopen();
        self.try_reopen();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::line;
    use crate::audit::testing::*;
    use crate::decision::Decision;
    use crate::metrics::Metrics;

    fn sink(path: &Path, faults: &Shared, limits: Limits) -> (FileSink<Faulty>, Arc<Ledger>) {
        let ledger = Arc::new(Ledger::new(Metrics::new()));
        let (file, reopen) = faulty(path, faults);
        (
            FileSink::new(path, file, reopen, ledger.clone(), limits),
            ledger,
        )
    }

    /// A sink on a new log in a directory of its own (kept while the first is), with the
    /// default limits, and the log's path and faults.
    fn fresh() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Shared,
        FileSink<Faulty>,
        Arc<Ledger>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (sink, ledger) = sink(&path, &faults, Limits::default());
        (dir, path, faults, sink, ledger)
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

    fn settled(ledger: &Ledger) -> u64 {
        ledger.settled.lock().unwrap().count
    }

    /// Where room can be reserved, a full disk never gets part of a line, not even for a
    /// moment (a shipper tailing the file would see it shrink at every retry and read it all
    /// again); where it cannot, the part written is cut back off.
    #[test]
    fn a_failed_write_leaves_whole_lines_and_is_retried_until_the_disk_has_room() {
        for no_reserve in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("d.jsonl");
            let faults = Shared::default();
            faults.lock().unwrap().no_reserve = no_reserve;
            let (mut sink, ledger) = sink(&path, &faults, Limits::default());
            let (_, log) = logged(|| {
                sink.write(&batch(0, 3), 3);
                // The disk fills part-way through the next batch.
                faults.lock().unwrap().room = Some(100);
                sink.write(&batch(3, 3), 3);
                assert_eq!(ids_in(&path), ids(0..3), "no fragment stays");
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
            let cuts = faults.lock().unwrap().cuts;
            if no_reserve {
                assert!(cuts > 0, "the fragment was cut back off");
            } else {
                assert_eq!(cuts, 0, "nothing but whole lines was ever written");
            }
            assert!(
                log.contains("WARN") && log.contains("could not write decision-log records"),
                "{log}"
            );
            assert!(log.contains("No space left on device"), "{log}");
            assert!(log.contains("5 held records written"), "{log}");
        }
    }

    /// A write that fails part-way where room was reserved for it (a reservation that does
    /// not hold, an I/O error) is cut back to whole lines too, and nothing is written twice.
    #[test]
    fn a_reserved_write_that_fails_part_way_is_cut_back_too() {
        let (_dir, path, faults, mut sink, ledger) = fresh();
        let lines = batch(0, 3);
        let first = lines.iter().position(|&b| b == b'\n').unwrap() + 1;
        {
            let mut f = faults.lock().unwrap();
            // Room reserved for two of the three, and a write that fails inside the second.
            f.reserve_room = Some(lines.len() - 10);
            f.room = Some(first + 50);
        }
        let (_, log) = logged(|| {
            sink.write(&lines, 3);
            assert_eq!(ids_in(&path), ids(0..1), "the fragment is cut back off");
            *faults.lock().unwrap() = Faults::default();
            sink.tick();
        });
        assert_eq!(ids_in(&path), ids(0..3), "each once: {log}");
        assert_eq!(settled(&ledger), 3);
        assert_eq!(dropped(&ledger.metrics), 0);
    }

    /// The real file: room is reserved without changing its length (a no-op on a file
    /// system that cannot reserve), and what is reserved takes the write.
    #[test]
    fn reserving_room_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut file = super::super::open(&path).unwrap();
        file.append(b"{}\n").unwrap();
        assert_eq!(reserve_whole_lines(&mut file, 3, b"{\"a\":1}\n{}\n").0, 11);
        assert_eq!(file.len().unwrap(), 3);
        file.append(b"{\"a\":1}\n{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n{\"a\":1}\n{}\n");
    }

    /// On a disk with room for part of a batch, the reservation finds the whole lines that fit.
    #[test]
    fn the_lines_that_fit_are_found_by_halving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let (mut file, _) = faulty(&path, &faults);
        let lines = batch(0, 7);
        let ends: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i] == b'\n')
            .map(|i| i + 1)
            .collect();
        for room in [
            0,
            1,
            ends[0] - 1,
            ends[0],
            ends[0] + 1,
            ends[3],
            ends[6] - 1,
        ] {
            faults.lock().unwrap().room = Some(room);
            let (fit, full) = reserve_whole_lines(&mut file, 0, &lines);
            let expected = ends
                .iter()
                .rev()
                .find(|&&end| end <= room)
                .copied()
                .unwrap_or(0);
            assert_eq!(fit, expected, "room {room}");
            assert!(full.is_some());
        }
        faults.lock().unwrap().room = Some(ends[6]);
        let (fit, full) = reserve_whole_lines(&mut file, 0, &lines);
        assert_eq!(fit, lines.len());
        assert!(full.is_none());
    }

    /// A log deleted with its directory cannot be opened again at its path: records are not
    /// written into the deleted file (lost there without a count) but held, then written once
    /// the directory is back — or dropped and counted when it does not come back in time.
    #[test]
    fn records_for_a_deleted_log_whose_directory_is_gone_are_held_or_counted() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let path = logs.join("d.jsonl");
        std::fs::create_dir(&logs).unwrap();
        let limits = Limits {
            retry_for: Duration::from_millis(200),
            retry_bytes: RETRY_BYTES,
        };
        let (mut sink, ledger) = sink(&path, &Shared::default(), limits);
        let (_, log) = logged(|| {
            sink.write(&batch(0, 1), 1);
            std::fs::remove_dir_all(&logs).unwrap();
            sink.write(&batch(1, 2), 2);
            assert!(sink.holds_lines());
            std::fs::create_dir(&logs).unwrap();
            sink.tick();
            assert!(!sink.holds_lines());
            sink.write(&batch(3, 1), 1);
        });
        assert_eq!(ids_in(&path), ids(1..4));
        assert_eq!(dropped(&ledger.metrics), 0);
        assert!(log.contains("records are held meanwhile"), "{log}");
        // Gone for longer than records are held.
        let (_, log) = logged(|| {
            std::fs::remove_dir_all(&logs).unwrap();
            sink.write(&batch(4, 2), 2);
            std::thread::sleep(Duration::from_millis(250));
            sink.tick();
            assert!(!sink.holds_lines());
        });
        assert_eq!(dropped(&ledger.metrics), 2);
        assert_eq!(settled(&ledger), 6);
        assert!(log.contains("decision-log records dropped: 2"), "{log}");
    }

    /// Records held on a full disk, then the file deleted to make room (`rm` of the logs) with
    /// no request after: the retry opens a new file at the path rather than writing them into
    /// the deleted one, where they were lost and counted as written.
    #[test]
    fn held_records_go_to_a_new_file_when_the_full_one_was_deleted() {
        let (_dir, path, faults, mut sink, ledger) = fresh();
        let (_, log) = logged(|| {
            sink.write(&batch(0, 1), 1);
            faults.lock().unwrap().room = Some(0);
            sink.write(&batch(1, 3), 3);
            assert!(sink.holds_lines());
            std::fs::remove_file(&path).unwrap();
            faults.lock().unwrap().room = None;
            sink.tick();
            assert!(!sink.holds_lines());
        });
        assert_eq!(ids_in(&path), ids(1..4), "{log}");
        assert_eq!(settled(&ledger), 4);
        assert_eq!(dropped(&ledger.metrics), 0);
        assert!(log.contains("was deleted while open"), "{log}");
    }

    /// A disk with room for part of what is held takes the whole records that fit; the rest
    /// waits, in order, for the next retry.
    #[test]
    fn held_records_are_written_as_far_as_there_is_room() {
        let (_dir, path, faults, mut sink, ledger) = fresh();
        let two = batch(0, 2).len();
        faults.lock().unwrap().room = Some(0);
        sink.write(&batch(0, 4), 4);
        assert!(ids_in(&path).is_empty());
        // Room for two records and part of a third.
        faults.lock().unwrap().room = Some(two + 10);
        sink.tick();
        assert_eq!(ids_in(&path), ["d0", "d1"]);
        assert!(sink.holds_lines());
        faults.lock().unwrap().room = None;
        sink.write(&batch(4, 1), 1);
        assert!(!sink.holds_lines());
        assert_eq!(ids_in(&path), ["d0", "d1", "d2", "d3", "d4"]);
        assert_eq!(settled(&ledger), 5);
        assert_eq!(dropped(&ledger.metrics), 0);
    }

    #[test]
    fn records_that_cannot_be_written_in_time_are_dropped_counted_and_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        // A second to give up in: the writes before the wait must all come within it, which
        // 50 ms did not promise on a busy machine.
        let limits = Limits {
            retry_for: Duration::from_secs(1),
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
            std::thread::sleep(Duration::from_millis(1100));
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
        // The records of the failing batch that fit in the 300 bytes left are written (d2).
        assert_eq!(written[..3], ["d0", "d1", "d2"]);
        assert_eq!(dropped(&ledger.metrics), 13);
        // The rest of the held batch and those that joined it, then those past the byte limit.
        assert!(
            log.contains("decision-log records dropped: 9 could not be written within"),
            "{log}"
        );
        assert!(
            log.contains("decision-log records dropped: 4 came while"),
            "{log}"
        );
    }

    /// The first batch held is bounded too (a batch taken after the writer was stuck can be
    /// the whole queue): the whole records that fit are kept, in order, the rest counted.
    #[test]
    fn a_first_failed_batch_larger_than_the_limit_is_held_only_in_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let faults = Shared::default();
        let one = batch(0, 1).len();
        let limits = Limits {
            retry_for: Duration::from_secs(60),
            retry_bytes: 3 * one + one / 2,
        };
        let (mut sink, ledger) = sink(&path, &faults, limits);
        let (_, log) = logged(|| {
            faults.lock().unwrap().room = Some(0);
            sink.write(&batch(0, 10), 10);
            assert_eq!(dropped(&ledger.metrics), 7, "three fit");
            faults.lock().unwrap().room = None;
            sink.tick();
        });
        assert_eq!(ids_in(&path), ids(0..3));
        assert_eq!(settled(&ledger), 10);
        assert!(log.contains("decision-log records dropped: 7"), "{log}");
    }

    #[test]
    fn a_fragment_that_cannot_be_cut_stands_on_its_own_line() {
        let (_dir, path, faults, mut sink, ledger) = fresh();
        let (_, log) = logged(|| {
            sink.write(&batch(0, 1), 1);
            {
                let mut f = faults.lock().unwrap();
                f.room = Some(40);
                f.no_reserve = true;
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

    /// A file that ends in part of a line when opened on a full disk: its line break waits
    /// with the records, written first once there is room, so no record is glued to the
    /// fragment (one was, unreadable to replay and uncounted, when the break was tried once at
    /// open).
    #[test]
    fn the_line_break_after_a_fragment_waits_for_room_with_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let fragment = r#"{"time":"2026-12-03T10:00:00.000Z","decision_id":"01a2"#;
        std::fs::write(&path, fragment).unwrap();
        let faults = Shared::default();
        faults.lock().unwrap().room = Some(0);
        let (mut sink, ledger) = sink(&path, &faults, Limits::default());
        sink.write(&batch(0, 2), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fragment);
        faults.lock().unwrap().room = None;
        sink.tick();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], fragment);
        for (l, id) in lines[1..].iter().zip(ids(0..2)) {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["decision_id"], id.as_str());
        }
        assert_eq!(settled(&ledger), 2);
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
}
