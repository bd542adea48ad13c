//! A line spool: request threads append whole lines to one shared buffer under a short lock;
//! a writer thread takes the buffer and writes it out in one call, at least every
//! [`FLUSH_EVERY`]. The decision log and the stderr log both go through one, so neither costs
//! a request a system call, a thread wake-up or an allocation freed on another thread.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

/// The writer wakes at least this often, so the output is never more than this behind.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A batch of this many lines wakes the writer early.
const BATCH: usize = 512;
/// What each of the two buffers starts with; enough for a busy interval.
const BUFFER: usize = 256 * 1024;
/// A buffer that grew past this during a stall is shrunk back to [`BUFFER`] once a batch
/// written from it is small again, so one stall does not keep its memory for good.
const SHRINK_ABOVE: usize = 4 * 1024 * 1024;

/// Where a spool's bytes end up. Runs on the writer thread only.
pub trait Sink: Send + 'static {
    /// Writes `lines` whole lines. An error is the sink's to report: the spool has no one to
    /// hand it to.
    fn write(&mut self, bytes: &[u8], lines: usize);
    /// Called whenever the writer wakes with nothing new to write (at least every
    /// [`FLUSH_EVERY`]): a sink holding lines back after a failed write retries them here.
    fn tick(&mut self) {}
    /// Whether the sink still holds lines it has neither written nor given up on. A drain is
    /// acknowledged only once this is false, so a sink that holds lines must write or drop
    /// them within a bounded time.
    fn holds_lines(&self) -> bool {
        false
    }
    /// Closes and reopens the destination (log rotation).
    fn reopen(&mut self) {}
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    reopen: bool,
    drained: Vec<mpsc::Sender<()>>,
    /// Set by [`Spool::close`]: what is pushed after it would wait behind the last drain and
    /// never be written, so it is refused.
    closed: bool,
    /// The writer has written everything and stopped (after [`Spool::close`]): a drain asked
    /// for later has nothing to wait for.
    stopped: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Bytes that may wait; past this, pushes are refused (and counted by the caller).
    limit: usize,
    refused: AtomicU64,
}

/// Handle to a spool and its writer thread. Cloning is cheap.
#[derive(Clone)]
pub struct Spool(Arc<Shared>);

impl Spool {
    /// Starts the writer thread `name` in front of `sink`.
    pub fn start(name: &str, limit: usize, sink: impl Sink) -> io::Result<Spool> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            limit,
            refused: AtomicU64::new(0),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || write_loop(&writer, sink))?;
        Ok(Spool(shared))
    }

    /// Appends `lines` whole lines (each ending in `\n`), all or nothing, so lines are never
    /// torn. Returns false when the spool is full or broken; the caller decides how to count it.
    pub fn push(&self, bytes: &[u8], lines: usize) -> bool {
        let Ok(mut pending) = self.0.pending.lock() else {
            return self.refuse();
        };
        if pending.closed || pending.bytes.len() + bytes.len() > self.0.limit {
            drop(pending);
            return self.refuse();
        }
        pending.bytes.extend_from_slice(bytes);
        let before = pending.lines;
        pending.lines += lines;
        if before < BATCH && pending.lines >= BATCH {
            self.0.wake.notify_one();
        }
        true
    }

    fn refuse(&self) -> bool {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// How many pushes were refused so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    /// Asks the writer to reopen its sink after the lines already pushed.
    pub fn reopen(&self) {
        if let Ok(mut pending) = self.0.pending.lock() {
            pending.reopen = true;
            self.0.wake.notify_one();
        }
    }

    /// Everything pushed so far is written (or given up on by the sink) when the returned
    /// receiver gets its message.
    pub fn drain(&self) -> mpsc::Receiver<()> {
        self.drain_closing(false)
    }

    /// [`Self::drain`], refusing every push from now on (in the same step, so no line slips in
    /// behind the drain): for a shutdown.
    pub fn close(&self) -> mpsc::Receiver<()> {
        self.drain_closing(true)
    }

    /// Whether [`Self::close`] was called: a refused push was refused for that.
    pub fn is_closed(&self) -> bool {
        self.0.pending.lock().is_ok_and(|pending| pending.closed)
    }

    fn drain_closing(&self, close: bool) -> mpsc::Receiver<()> {
        let (ack, done) = mpsc::channel();
        if let Ok(mut pending) = self.0.pending.lock() {
            pending.closed |= close;
            if pending.stopped {
                let _ = ack.send(());
            } else {
                pending.drained.push(ack);
                self.0.wake.notify_one();
            }
        }
        done
    }
}

fn write_loop(shared: &Shared, mut sink: impl Sink) {
    // Two buffers trade places with the queue, so steady state allocates nothing.
    let mut batch = Vec::with_capacity(BUFFER);
    // Drains asked for, acknowledged once the sink holds nothing back.
    let mut waiting: Vec<mpsc::Sender<()>> = Vec::new();
    loop {
        let (lines, reopen, drained, closed) = {
            let Ok(pending) = shared.pending.lock() else {
                return;
            };
            let Ok((mut pending, _)) = shared.wake.wait_timeout_while(pending, FLUSH_EVERY, |p| {
                p.lines < BATCH && !p.reopen && p.drained.is_empty()
            }) else {
                return;
            };
            std::mem::swap(&mut batch, &mut pending.bytes);
            (
                std::mem::take(&mut pending.lines),
                std::mem::take(&mut pending.reopen),
                std::mem::take(&mut pending.drained),
                pending.closed,
            )
        };
        waiting.extend(drained);
        let written = batch.len();
        if written > 0 {
            sink.write(&batch, lines);
            batch.clear();
        } else {
            sink.tick();
        }
        // Both buffers pass through here in turn, so both give back what a stall made them take.
        shrink(&mut batch, written);
        if reopen {
            sink.reopen();
        }
        if !sink.holds_lines() {
            for ack in waiting.drain(..) {
                let _ = ack.send(());
            }
            // Closed, everything written: nothing more can come, and the thread would
            // otherwise wake every FLUSH_EVERY for good, holding the sink (the decision log's
            // file) open. A drain asked for since is acknowledged by its caller.
            if closed {
                let Ok(mut pending) = shared.pending.lock() else {
                    return;
                };
                if pending.drained.is_empty() {
                    pending.stopped = true;
                    return;
                }
            }
        }
    }
}

/// Gives a written-out buffer's memory back when it is far larger than the batch just
/// written from it needed: after a stall, not under a steady load that needs it.
fn shrink(buffer: &mut Vec<u8>, written: usize) {
    if buffer.capacity() > SHRINK_ABOVE && written <= SHRINK_ABOVE / 2 {
        buffer.clear();
        buffer.shrink_to(BUFFER);
    }
}

/// Log lines through a spool: tracing's fmt layer formats a whole event, then makes one
/// `write_all` of it, which becomes one push. A line the spool refuses is counted
/// ([`Spool::refused`]) and dropped: logs must not hold up payments.
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Spool {
    type Writer = SpoolWriter<'a>;

    fn make_writer(&'a self) -> SpoolWriter<'a> {
        SpoolWriter(self)
    }
}

pub struct SpoolWriter<'a>(&'a Spool);

impl io::Write for SpoolWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push(buf, 1);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Standard error as a spool's sink. Lines a failed write lost (a full disk under a redirect,
/// a log reader gone) are counted in the shared count, as a whole batch: stderr itself is
/// where they would have been reported.
#[derive(Clone, Default)]
pub struct Stderr(pub Arc<AtomicU64>);

impl Sink for Stderr {
    fn write(&mut self, bytes: &[u8], lines: usize) {
        use io::Write;
        if io::stderr().lock().write_all(bytes).is_err() {
            self.0.fetch_add(lines as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what it is given; `Arc` so the test can look after the writer has it.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<(Vec<u8>, usize, usize)>>);

    impl Sink for Collect {
        fn write(&mut self, bytes: &[u8], lines: usize) {
            let mut c = self.0.lock().unwrap();
            c.0.extend_from_slice(bytes);
            c.1 += lines;
        }
        fn reopen(&mut self) {
            self.0.lock().unwrap().2 += 1;
        }
    }

    #[test]
    fn writes_whole_lines_in_order_and_drains() {
        let sink = Collect::default();
        let spool = Spool::start("test-spool", 1 << 20, sink.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        assert!(spool.push(format!("{t} {i}\n").as_bytes(), 1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        spool.reopen();
        spool.drain().recv_timeout(Duration::from_secs(10)).unwrap();
        let (bytes, lines, reopened) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(lines, 4000);
        assert_eq!(reopened, 1);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(th, _)| *th == t.to_string())
                .map(|(_, i)| i.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn refuses_past_the_limit_and_counts() {
        // A sink that blocks until released, so nothing leaves the spool meanwhile.
        struct Blocked(mpsc::Receiver<()>);
        impl Sink for Blocked {
            fn write(&mut self, _: &[u8], _: usize) {
                let _ = self.0.recv_timeout(Duration::from_secs(10));
            }
        }
        let (release, rx) = mpsc::channel();
        let spool = Spool::start("test-spool", 10, Blocked(rx)).unwrap();
        assert!(spool.push(b"12345678\n", 1));
        assert!(!spool.push(b"abc\n", 1), "over the 10-byte limit");
        assert_eq!(spool.refused(), 1);
        release.send(()).unwrap();
        spool.drain().recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(spool.push(b"abc\n", 1), "room again once written");
    }

    #[test]
    fn drain_waits_for_lines_the_sink_holds_back() {
        // Holds what it is given and writes it on its third tick while holding, as a sink
        // retrying a failed write does.
        #[derive(Clone, Default)]
        struct Holding(Arc<Mutex<(Vec<u8>, usize, usize)>>);
        impl Sink for Holding {
            fn write(&mut self, bytes: &[u8], _: usize) {
                self.0.lock().unwrap().0.extend_from_slice(bytes);
            }
            fn tick(&mut self) {
                let mut h = self.0.lock().unwrap();
                if h.0.is_empty() {
                    return;
                }
                h.2 += 1;
                if h.2 == 3 {
                    let held = std::mem::take(&mut h.0);
                    h.1 += held.len();
                }
            }
            fn holds_lines(&self) -> bool {
                !self.0.lock().unwrap().0.is_empty()
            }
        }
        let sink = Holding::default();
        let spool = Spool::start("test-spool", 1 << 20, sink.clone()).unwrap();
        assert!(spool.push(b"line\n", 1));
        spool.drain().recv_timeout(Duration::from_secs(10)).unwrap();
        let (held, written, ticks) = sink.0.lock().unwrap().clone();
        assert!(held.is_empty(), "acknowledged only once nothing is held");
        assert_eq!(written, 5);
        assert_eq!(ticks, 3, "ticked while holding");
    }

    #[test]
    fn buffers_shrink_back_after_a_stall() {
        struct Blocked(mpsc::Receiver<()>);
        impl Sink for Blocked {
            fn write(&mut self, _: &[u8], _: usize) {
                let _ = self.0.recv_timeout(Duration::from_secs(10));
            }
        }
        let (release, rx) = mpsc::channel();
        let spool = Spool::start("test-spool", 64 << 20, Blocked(rx)).unwrap();
        // A stall: the writer blocks on one batch while 16 MiB pile up behind it.
        assert!(spool.push(b"first\n", 1));
        std::thread::sleep(FLUSH_EVERY * 3);
        let line = [b'x'; 1023];
        for _ in 0..16 * 1024 {
            assert!(spool.push(&line, 0));
            assert!(spool.push(b"\n", 1));
        }
        let capacity = || spool.0.pending.lock().unwrap().bytes.capacity();
        assert!(capacity() >= 16 << 20);
        for _ in 0..20 {
            release.send(()).unwrap();
        }
        // The stall's batch is written; then small batches, through both buffers in turn.
        for _ in 0..3 {
            assert!(spool.push(b"small\n", 1));
            spool.drain().recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(capacity() <= SHRINK_ABOVE, "{}", capacity());
        assert!(spool.push(b"small\n", 1));
        spool.drain().recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            capacity() <= SHRINK_ABOVE,
            "the other buffer too: {}",
            capacity()
        );
    }

    /// Review: the writer thread woke every 50 ms for good after a close, holding its sink
    /// (the decision log's file) open. It stops once closed and written, and a drain asked
    /// for afterwards is answered at once.
    #[test]
    fn the_writer_stops_once_closed_and_written() {
        struct Held(Arc<std::sync::atomic::AtomicBool>);
        impl Sink for Held {
            fn write(&mut self, _: &[u8], _: usize) {}
        }
        impl Drop for Held {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spool = Spool::start("test-spool", 1 << 20, Held(dropped.clone())).unwrap();
        assert!(spool.push(b"a\n", 1));
        spool.close().recv_timeout(Duration::from_secs(10)).unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < until,
                "the writer kept its sink"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!spool.push(b"b\n", 1));
        spool
            .drain()
            .recv_timeout(Duration::from_millis(100))
            .unwrap();
        spool
            .close()
            .recv_timeout(Duration::from_millis(100))
            .unwrap();
    }
}
