//! Work kept off the runtime's workers, which must stay free to answer before the deadline:
//! large upstream answers read ([`run`]) and freed ([`free`]) on threads of their own, of
//! lower priority than the workers.

use crate::script::{Slot, THREAD_STACK};

/// The nice value of those threads: a weight of 110 against a worker's 1,024, so a worker
/// whose timer fires takes the CPU from them at once, and they have what the workers leave.
/// At the same priority, in a burst of 100 large answers (1 MB, 10,000 keys each) on one CPU,
/// the worker had a third of it beside a thread converting answers and the one freeing them,
/// and answered up to 100 ms past a 1 s deadline.
const NICE: i32 = 10;

/// Runs `work` on a thread of its own, of low priority, `turn` held until it ends — also
/// when the caller stops waiting for it (its deadline passed, its evaluation was stopped):
/// such work cannot be stopped, and with its turn let go another request's would start
/// beside it, and so on with each request that gave up (three at once on one CPU, in a
/// burst of large answers). An error only if no thread could be started.
pub async fn run<T: Send + 'static>(
    turn: Slot,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("confirm-proxy-work".into())
        // What it makes may be freed here (the caller gone): as deep as on a runtime thread.
        .stack_size(THREAD_STACK)
        .spawn(move || {
            lower_priority();
            let _turn = turn;
            // The caller gone, what the work made is freed here, at this thread's priority.
            let _ = tx.send(work());
        })
        .map_err(|e| format!("no thread to read it on: {e}"))?;
    rx.await
        .map_err(|_| "the thread reading it failed".to_owned())
}

/// Lowers the calling thread's priority to [`NICE`]. Linux gives each thread its own nice
/// value; elsewhere it would be the whole process's, so it is left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::debug!(error = %e, "could not lower a background thread's priority");
    }
}

/// Frees `value` on the one thread kept for it (inline outside a runtime). A large upstream
/// answer is tens of thousands of allocations; freed on an async worker, it holds up that
/// worker's deadline timers, and with a few such answers at once, answers went out past their
/// deadline. Freed on a blocking thread each, sixty requests' answers at once kept as many
/// threads busy, and the workers' share of two CPUs fell so low that their timers fired 15 ms
/// late: one thread (`freeing_thread`), of low priority, frees them one by one.
pub fn free<T: Send + 'static>(value: T) {
    if tokio::runtime::Handle::try_current().is_err() {
        return drop(value);
    }
    if let Err(returned) = freeing_thread().send(Box::new(value)) {
        // The thread could not be started: freed here, as outside a runtime.
        drop(returned.0);
    }
}

type Garbage = Box<dyn Send>;

/// The thread that frees what [`free`] is given, started on first use.
fn freeing_thread() -> &'static std::sync::mpsc::Sender<Garbage> {
    static SENDER: std::sync::OnceLock<std::sync::mpsc::Sender<Garbage>> =
        std::sync::OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        // Trims run at the priority of the runtime's threads (this one's, which the new thread
        // inherits): a trim holds each heap while it walks it, and at a low priority it would
        // hold a worker that allocates from that heap for as long as others had the CPU.
        let (trim, trims) = std::sync::mpsc::sync_channel::<()>(1);
        let started = std::thread::Builder::new()
            .name("confirm-proxy-trim".into())
            .spawn(move || {
                for () in trims {
                    trim_heap();
                }
            })
            .and_then(|_| {
                std::thread::Builder::new()
                    .name("confirm-proxy-free".into())
                    .spawn(move || {
                        lower_priority();
                        free_until_closed(&rx, || {
                            // Full: a trim is waiting to run, which covers this one too.
                            let _ = trim.try_send(());
                        });
                    })
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the threads that free large answers; they are freed where they are dropped");
        }
        tx
    })
}

/// How long the freeing thread waits for more before it hands what it freed back to the
/// system: long enough that a burst is over, short enough that memory comes back soon after.
const TRIM_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How often it does so at most while large answers keep coming (a probe of a large page
/// every 100 ms never leaves it idle). Not more often: a trim holds each thread's heap while
/// it walks it, 3–50 ms after a burst, and a thread that allocates meanwhile waits.
const TRIM_WHILE_BUSY: std::time::Duration = std::time::Duration::from_secs(10);

/// Frees what arrives until every sender is gone (for the static one: never), and hands what
/// was freed back to the system after a second without more, or every ten seconds while it
/// keeps coming. The allocator keeps freed memory for reuse in the arena of the thread that
/// allocated it, and the next burst is served from other arenas: three bursts of 100 large
/// answers at once (1 MB, 10,000 keys each) left 340, 580 and 710 MB resident, and 650 MB
/// after an idle minute; a trim brought that to 48 MB.
fn free_until_closed(rx: &std::sync::mpsc::Receiver<Garbage>, trim: impl Fn()) {
    use std::sync::mpsc::RecvTimeoutError;
    let mut freed = false;
    let mut trimmed = std::time::Instant::now();
    loop {
        match rx.recv_timeout(TRIM_AFTER_IDLE) {
            Ok(garbage) => {
                drop(garbage);
                freed = true;
                if trimmed.elapsed() < TRIM_WHILE_BUSY {
                    continue;
                }
            }
            Err(RecvTimeoutError::Timeout) if freed => {}
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        }
        trim();
        freed = false;
        trimmed = std::time::Instant::now();
    }
}

/// Returns the heap's free pages to the system (glibc's `malloc_trim`, which walks every
/// arena); other C libraries have no such call and do without.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's malloc_trim has no safe binding")]
fn trim_heap() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim takes no pointers and is thread-safe: it locks each arena in turn.
    let released = unsafe { libc::malloc_trim(0) } == 1;
    tracing::debug!(released, took = ?started.elapsed(), "freed memory handed back to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Records the name of the thread it is dropped on.
    struct DropsOn(std::sync::mpsc::Sender<Option<String>>);

    impl Drop for DropsOn {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_owned));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_values_are_freed_on_the_thread_kept_for_it_not_on_a_worker() {
        let (tx, rx) = std::sync::mpsc::channel();
        free(DropsOn(tx.clone()));
        let freed_on = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(freed_on.as_deref(), Some("confirm-proxy-free"));

        // Outside a runtime (eval, rule tests before theirs starts) it is freed where it is.
        let here = std::thread::spawn(move || {
            free(DropsOn(tx));
            rx.recv_timeout(Duration::from_secs(10)).unwrap()
        });
        assert_eq!(here.join().unwrap(), None, "a std thread without a name");
    }

    /// The work runs on a thread of its own at the lower priority, and keeps its turn until
    /// it ends, also when its caller stopped waiting.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_at_low_priority_and_keeps_its_turn_after_its_caller_is_gone() {
        let (name, nice) = run(None, || {
            (
                std::thread::current().name().map(str::to_owned),
                rustix::process::getpriority_process(None).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!((name.as_deref(), nice), (Some("confirm-proxy-work"), NICE));

        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        let turn = turns.clone().try_acquire_owned().ok();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let caller = tokio::spawn(run(turn, move || {
            held.recv_timeout(Duration::from_secs(10))
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        caller.abort();
        let _ = caller.await;
        assert!(
            turns.try_acquire().is_err(),
            "the turn was let go while its work still ran"
        );
        release.send(()).unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), turns.acquire()).await;
        assert!(back.is_ok(), "the turn came back once the work ended");
    }
}
