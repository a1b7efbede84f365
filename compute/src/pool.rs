use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::cancel::CancelToken;
use crate::{Error, fib_parallel};

/// Configures a [`ComputePool`].
#[derive(Clone, Debug)]
pub struct Builder {
    threads: usize,
    thread_name: String,
    max_jobs: usize,
    priority: Priority,
}

/// How the pool's threads compete with the rest of the process for the CPU (Linux only;
/// elsewhere the threads run at the process's priority).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// `SCHED_IDLE`: the threads run only on CPU time that no other thread
    /// wants, and give it back as soon as one does. Jobs never slow request
    /// handling; under sustained load they wait (bound them with a timeout).
    Idle,
    /// A niceness in -20..=19 (0 leaves the threads at the process's own);
    /// going below the process's own needs privileges.
    Nice(i32),
}

impl Default for Builder {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Self { threads, thread_name: "compute".into(), max_jobs: 64, priority: Priority::Idle }
    }
}

impl Builder {
    /// Worker threads (default: every core).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Thread name prefix; threads are named `{prefix}-{index}` (default `compute`).
    #[must_use]
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Jobs admitted at once, queued plus running (default 64); past it, submit
    /// fails at once with [`Error::Busy`].
    #[must_use]
    pub fn max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// Scheduling priority of the worker threads (default [`Priority::Idle`]:
    /// when other threads and jobs both want the CPU, the others win).
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Starts the threads.
    ///
    /// # Errors
    /// [`Error::Config`] for zero threads or jobs, a niceness outside -20..=19,
    /// or when the threads cannot be started.
    pub fn build(self) -> Result<ComputePool, Error> {
        if self.threads == 0 || self.max_jobs == 0 {
            return Err(Error::Config("threads and max_jobs must be at least 1".into()));
        }
        if let Priority::Nice(nice) = self.priority
            && !(-20..=19).contains(&nice)
        {
            return Err(Error::Config(format!("nice must be within -20..=19, not {nice}")));
        }
        let (name, priority) = (self.thread_name, self.priority);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(move |_| set_thread_priority(priority))
            // Jobs catch their own panics; this only keeps rayon from aborting on one that escapes.
            .panic_handler(|_| log::error!("a compute job panicked outside its guard"))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(ComputePool {
            pool: Arc::new(pool),
            shared: Arc::new(Shared { max_jobs: self.max_jobs, ..Shared::default() }),
            threads: self.threads,
        })
    }
}

/// Counters of a pool, for a metrics endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Jobs running now.
    pub running: u64,
    /// Jobs admitted and waiting for a thread.
    pub queued: u64,
    /// Jobs that ran to the end (successfully or with their own error).
    pub completed: u64,
    /// Submissions refused because the pool was full.
    pub rejected: u64,
    /// Jobs stopped, or skipped, because their caller stopped waiting.
    pub cancelled: u64,
    /// Jobs stopped, or skipped, because their deadline passed.
    pub timed_out: u64,
    /// Jobs that panicked.
    pub panicked: u64,
}

#[derive(Debug, Default)]
struct Shared {
    max_jobs: usize,
    admitted: AtomicUsize,
    running: AtomicU64,
    queued: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
}

/// A bounded pool of CPU threads whose jobs async code awaits without
/// blocking its executor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ComputePool {
    pool: Arc<rayon::ThreadPool>,
    shared: Arc<Shared>,
    threads: usize,
}

impl ComputePool {
    /// A builder with the defaults: every core, 64 jobs, [`Priority::Idle`].
    #[must_use]
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Worker threads.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Jobs admitted at once.
    #[must_use]
    pub fn max_jobs(&self) -> usize {
        self.shared.max_jobs
    }

    /// Runs `job` on the pool and returns its result to the awaiting task.
    ///
    /// If this future is dropped before the job ends, the job's token fires
    /// (and a job still queued never starts).
    ///
    /// # Errors
    /// [`Error::Busy`] at once when `max_jobs` jobs are admitted;
    /// [`Error::Panicked`] if the job panicked.
    pub async fn submit<T, F>(&self, job: F) -> Result<T, Error>
    where
        F: FnOnce(&CancelToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run(CancelToken::new(), job).await
    }

    /// [`submit`](Self::submit) with a deadline `timeout` from now: the job's
    /// token fires then, and the result is [`Error::DeadlineExceeded`].
    ///
    /// The deadline is cooperative: the caller hears back when the job next
    /// checks its token.
    ///
    /// # Errors
    /// As [`submit`](Self::submit), and [`Error::DeadlineExceeded`].
    pub async fn submit_with_timeout<T, F>(&self, timeout: Duration, job: F) -> Result<T, Error>
    where
        F: FnOnce(&CancelToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run(CancelToken::with_deadline(Instant::now() + timeout), job).await
    }

    /// [`fib_parallel(n)`](crate::fib_parallel) on the pool, with an optional timeout.
    ///
    /// # Errors
    /// As [`submit_with_timeout`](Self::submit_with_timeout), and [`Error::Overflow`].
    pub async fn fib(&self, n: u32, timeout: Option<Duration>) -> Result<u64, Error> {
        let job = move |cancel: &CancelToken| fib_parallel(n, cancel);
        match timeout {
            Some(timeout) => self.submit_with_timeout(timeout, job).await?,
            None => self.submit(job).await?,
        }
    }

    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            running: s.running.load(Relaxed),
            queued: s.queued.load(Relaxed),
            completed: s.completed.load(Relaxed),
            rejected: s.rejected.load(Relaxed),
            cancelled: s.cancelled.load(Relaxed),
            timed_out: s.timed_out.load(Relaxed),
            panicked: s.panicked.load(Relaxed),
        }
    }

    async fn run<T, F>(&self, token: CancelToken, job: F) -> Result<T, Error>
    where
        F: FnOnce(&CancelToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        let shared = &self.shared;
        let max = shared.max_jobs;
        if shared.admitted.fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1)).is_err() {
            shared.rejected.fetch_add(1, Relaxed);
            return Err(Error::Busy { max_jobs: max });
        }
        shared.queued.fetch_add(1, Relaxed);
        let admission = Admission(Arc::clone(shared));
        let (tx, rx) = oneshot::channel();
        let cancel_on_drop = CancelOnDrop(token.clone());
        self.pool.spawn(move || {
            let shared = &admission.0;
            shared.queued.fetch_sub(1, Relaxed);
            let result = if token.is_cancelled() {
                Err(token.reason())
            } else {
                shared.running.fetch_add(1, Relaxed);
                let result = catch_unwind(AssertUnwindSafe(|| job(&token)));
                shared.running.fetch_sub(1, Relaxed);
                match result {
                    Ok(_) if token.is_cancelled() => Err(token.reason()),
                    Ok(value) => Ok(value),
                    Err(panic) => Err(Error::Panicked(panic_message(&*panic))),
                }
            };
            let counter = match &result {
                Ok(_) => &shared.completed,
                Err(Error::DeadlineExceeded) => &shared.timed_out,
                Err(Error::Panicked(_)) => &shared.panicked,
                Err(_) => &shared.cancelled,
            };
            counter.fetch_add(1, Relaxed);
            // Released before the caller hears back, so it may submit again at once.
            drop(admission);
            let _ = tx.send(result);
        });
        let result = rx.await.unwrap_or(Err(Error::Cancelled));
        // Firing the token of a job that has ended is harmless.
        drop(cancel_on_drop);
        result
    }
}

/// One admitted job; returns its place when dropped.
struct Admission(Arc<Shared>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Relaxed);
    }
}

/// Fires the token if the awaiting future is dropped before the job ends.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into())
}

#[cfg(target_os = "linux")]
fn set_thread_priority(priority: Priority) {
    // SAFETY: gettid, setpriority and sched_setscheduler take plain integers
    // and a pointer to a live sched_param.
    let rc = unsafe {
        let tid = libc::gettid();
        match priority {
            Priority::Nice(0) => return,
            Priority::Nice(nice) => libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice),
            Priority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(tid, libc::SCHED_IDLE, &raw const param)
            }
        }
    };
    if rc != 0 {
        log::warn!(
            "could not set compute thread priority to {priority:?}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_thread_priority(_: Priority) {}
