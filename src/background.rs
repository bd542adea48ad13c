//! Work kept off the runtime's workers, which must stay free to answer before the deadline:
//! large upstream answers read ([`run`]) and freed ([`free`]) on threads of their own, of
//! lower priority than the workers (on Linux).

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

use crate::script::THREAD_STACK;

/// How much those threads' nice value is above the process's (at most 19): 10 gives them a
/// weight of 110 against a worker's 1,024, so the scheduler gives a worker whose timer fires
/// the CPU ahead of them, and they have what the workers leave. At the same priority, in a
/// burst of 100 large answers (1 MB, 10,000 keys each) on one CPU, the worker had a third of
/// it beside a thread converting answers and the one freeing them, and answered up to 100 ms
/// past a 1 s deadline.
#[cfg(target_os = "linux")]
const NICE: i32 = 10;

/// Leave to start work on a thread of its own: one per CPU, which bounds the threads and the
/// answers being read at once (a few MB each). Its own, not Rhai's turns: a script waiting for
/// a turn held by low-priority work would wait as long as everything else had the CPU.
fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cpus))
    })
}

/// Runs `work` on a thread of its own, of low priority, once one of its `permits` is free,
/// and holds it until the work ends — also when the caller stops waiting (its deadline
/// passed, its evaluation was stopped): such work cannot be stopped, and with its permit let
/// go another request's would start beside it, and so on with each request that gave up
/// (three at once on one CPU, in a burst of large answers). What the work made is then freed
/// on its thread before the permit goes. An error only if no thread could be started.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    run_with(permits(), work).await
}

/// [`run`] with leave from `permits`.
async fn run_with<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let permit = Arc::clone(permits).acquire_owned().await.ok();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("confirm-proxy-work".into())
        // What it makes may be freed here: as deep as on a runtime thread.
        .stack_size(THREAD_STACK)
        .spawn(move || {
            lower_priority();
            let _permit = permit;
            // A result no longer waited for is freed here, at this thread's priority.
            let _ = tx.send(work());
        })
        .map_err(|e| format!("no thread to read it on: {e}"))?;
    rx.await
        .map_err(|_| "the thread reading it failed".to_owned())
}

/// Raises the calling thread's nice value by [`NICE`]: lowers its priority below the
/// process's. Linux gives each thread its own nice value; elsewhere it would be the whole
/// process's, so it is left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let lowered = getpriority_process(None)
            .and_then(|nice| setpriority_process(None, (nice + NICE).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "could not lower the priority of a thread that reads or frees large upstream answers; it runs at the workers' priority");
        }
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
    match freeing_thread().try_send(Box::new(value)) {
        Ok(()) => {}
        // On CPUs kept busy for long the low-priority thread can fall behind for good: with
        // the queue full, the answer is freed here, slower for this request, but what waits
        // stays bounded. (Or the thread could not be started.)
        Err(std::sync::mpsc::TrySendError::Full(returned))
        | Err(std::sync::mpsc::TrySendError::Disconnected(returned)) => drop(returned),
    }
}

/// How many answers may wait for the freeing thread; each holds at most a few MB.
const FREE_QUEUE: usize = 64;

/// `value`, freed as [`free`] frees it when `large`, wherever it is dropped: an evaluation
/// stopped at its deadline drops what it holds on a worker.
pub struct FreeLater<T: Default + Send + 'static> {
    pub value: T,
    large: bool,
}

impl<T: Default + Send + 'static> FreeLater<T> {
    pub fn new(value: T, large: bool) -> Self {
        FreeLater { value, large }
    }
}

impl<T: Default + Send + 'static> Drop for FreeLater<T> {
    fn drop(&mut self) {
        if self.large {
            free(std::mem::take(&mut self.value));
        }
    }
}

type Garbage = Box<dyn Send>;

/// The thread that frees what [`free`] is given, started on first use.
fn freeing_thread() -> &'static std::sync::mpsc::SyncSender<Garbage> {
    static SENDER: std::sync::OnceLock<std::sync::mpsc::SyncSender<Garbage>> =
        std::sync::OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Garbage>(FREE_QUEUE);
        let started = std::thread::Builder::new()
            .name("confirm-proxy-free".into())
            .spawn(move || {
                lower_priority();
                for garbage in rx {
                    drop(garbage);
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the thread that frees large answers; they are freed where they are dropped");
        }
        tx
    })
}

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

    /// The work runs on a thread of its own, its nice value raised by [`NICE`], and keeps its
    /// permit until it ends, also when its caller stopped waiting.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_at_low_priority_and_keeps_its_permit_after_its_caller_is_gone() {
        use rustix::process::getpriority_process;
        let here = getpriority_process(None).unwrap();
        let (name, nice) = run(|| {
            (
                std::thread::current().name().map(str::to_owned),
                getpriority_process(None).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            (name.as_deref(), nice),
            (Some("confirm-proxy-work"), (here + NICE).min(19))
        );

        let permits = Arc::new(Semaphore::new(1));
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let waiting = permits.clone();
        let caller = tokio::spawn(async move {
            run_with(&waiting, move || {
                let _ = started.send(());
                held.recv_timeout(Duration::from_secs(10))
            })
            .await
        });
        running.recv_timeout(Duration::from_secs(10)).unwrap();
        caller.abort();
        let _ = caller.await;
        assert!(
            permits.try_acquire().is_err(),
            "the permit was let go while its work still ran"
        );
        release.send(()).unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), permits.acquire()).await;
        assert!(back.is_ok(), "the permit came back once the work ended");
    }
}
