//! Running the stateful steps of an upload (hashing, writing) on Tokio's
//! blocking pool, off the executor threads.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinError;

use crate::{Error, Result};

type Work<T> = Box<dyn FnOnce(&mut T) -> io::Result<()> + Send>;

/// A value worked on by jobs that run in order, one at a time, on the
/// blocking pool, with at most `depth` jobs queued or running.
///
/// Submitting returns as soon as the job is queued, so the caller keeps
/// receiving while earlier chunks are hashed or written, and two workers
/// (hash, write) proceed independently. No thread is held while the queue is
/// empty: a slow client costs no thread. Whoever runs last owns the value: a
/// worker dropped mid-job drops its value after that job, never during it.
pub(crate) struct Worker<T> {
    shared: Arc<Shared<T>>,
    depth: u32,
}

struct Shared<T> {
    inner: Mutex<Inner<T>>,
    room: Semaphore,
}

struct Inner<T> {
    /// `None` while a job runs, and for good once one failed (the value was
    /// dropped then, cleaning up after itself).
    value: Option<T>,
    queue: VecDeque<Work<T>>,
    draining: bool,
    failed: bool,
    /// The first failure, until a caller is told about it.
    error: Option<io::Error>,
}

impl<T: Send + 'static> Worker<T> {
    pub(crate) fn new(value: T, depth: u32) -> Self {
        let inner = Inner {
            value: Some(value),
            queue: VecDeque::new(),
            draining: false,
            failed: false,
            error: None,
        };
        let shared =
            Arc::new(Shared { inner: Mutex::new(inner), room: Semaphore::new(depth as usize) });
        Self { shared, depth }
    }

    /// Queues `work`, waiting while `depth` jobs are already queued or running.
    ///
    /// # Errors
    /// The error of an earlier job, which stops the worker.
    pub(crate) async fn submit<F>(&self, work: F) -> Result<()>
    where
        F: FnOnce(&mut T) -> io::Result<()> + Send + 'static,
    {
        let room = self.reserve().await?;
        self.submit_reserved(room, work)
    }

    /// Waits for room for one more job, which [`submit_reserved`](Self::submit_reserved)
    /// then queues at once. Dropped unused, the room is given back.
    pub(crate) async fn reserve(&self) -> Result<SemaphorePermit<'_>> {
        Ok(self.shared.room.acquire().await.map_err(io::Error::other)?)
    }

    /// Queues `work` in the room reserved, without waiting.
    ///
    /// # Errors
    /// The error of an earlier job, which stops the worker.
    pub(crate) fn submit_reserved<F>(&self, room: SemaphorePermit<'_>, work: F) -> Result<()>
    where
        F: FnOnce(&mut T) -> io::Result<()> + Send + 'static,
    {
        room.forget();
        let mut inner = self.shared.lock();
        if inner.failed {
            drop(inner);
            self.shared.room.add_permits(1);
            return Err(self.failure());
        }
        inner.queue.push_back(Box::new(work));
        if !inner.draining {
            inner.draining = true;
            let shared = Arc::clone(&self.shared);
            tokio::task::spawn_blocking(move || shared.drain());
        }
        Ok(())
    }

    /// The value, once every job is done.
    ///
    /// # Errors
    /// The first failed job's error.
    pub(crate) async fn finish(self) -> Result<T> {
        // Every permit back means nothing is queued or running.
        let all = self.shared.room.acquire_many(self.depth).await.map_err(io::Error::other)?;
        drop(all);
        let value = self.shared.lock().value.take();
        value.ok_or_else(|| self.failure())
    }

    fn failure(&self) -> Error {
        let error = self.shared.lock().error.take();
        error.map_or_else(|| Error::Io(io::Error::other("an earlier write failed")), Error::from)
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // Jobs run outside the lock, so a poisoned lock still holds consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs queued jobs until the queue is empty (on a blocking-pool thread).
    fn drain(&self) {
        loop {
            let (work, mut value) = {
                let mut inner = self.lock();
                let Some(work) = inner.queue.pop_front() else {
                    inner.draining = false;
                    return;
                };
                (work, inner.value.take())
            };
            let result = match value.as_mut() {
                Some(value) => catch_unwind(AssertUnwindSafe(|| work(value)))
                    .unwrap_or_else(|_| Err(io::Error::other("storage worker panicked"))),
                None => Ok(()), // an earlier job failed: skip
            };
            match result {
                Ok(()) => self.lock().value = value,
                Err(e) => {
                    drop(value);
                    let mut inner = self.lock();
                    inner.failed = true;
                    inner.error.get_or_insert(e);
                }
            }
            self.room.add_permits(1);
        }
    }
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(join_error)?
}

fn join_error(e: JoinError) -> Error {
    Error::Io(io::Error::other(if e.is_panic() {
        "storage worker panicked"
    } else {
        "storage worker cancelled"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn runs_jobs_in_order_and_returns_the_value() {
        let worker = Worker::new(Vec::new(), 2);
        for i in 0..100 {
            worker
                .submit(move |v: &mut Vec<i32>| {
                    v.push(i);
                    Ok(())
                })
                .await
                .unwrap();
        }
        assert_eq!(worker.finish().await.unwrap(), (0..100).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_failed_job_stops_the_worker_and_drops_the_value() {
        let dropped = Arc::new(());
        let worker = Worker::new(Arc::clone(&dropped), 1);
        worker.submit(|_| Err(io::Error::from_raw_os_error(libc::ENOSPC))).await.unwrap();
        // Depth 1: this waits for the failed job, and is the first to hear of it.
        let second = worker.submit(|_| panic!("must be skipped")).await;
        assert!(matches!(second, Err(Error::StorageFull)), "{second:?}");
        assert!(worker.finish().await.is_err());
        assert_eq!(Arc::strong_count(&dropped), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_job_is_an_error_not_a_hang() {
        let worker = Worker::new(0u8, 2);
        worker.submit(|_| panic!("boom")).await.unwrap();
        let err = worker.finish().await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }
}
