//! The blocking sleeps of `/wait`, on threads of their own. On the blocking
//! pool that storage uses, enough of them would queue every file read and
//! write behind them; here they are bounded, and the one past the bound is
//! refused at once rather than queued.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// At most `max` threads, each sleeping for one request.
#[derive(Debug)]
pub(crate) struct Sleepers {
    /// Only its blocking pool is used; nothing drives it, nothing needs to.
    runtime: Option<Runtime>,
    permits: Arc<Semaphore>,
    max: usize,
    /// `bench_waits_sleeping`.
    sleeping: prometheus::IntGauge,
}

/// Every thread is asleep for another request.
#[derive(Debug)]
pub(crate) struct Busy(pub(crate) usize);

impl Sleepers {
    pub(crate) fn new(max: usize, sleeping: prometheus::IntGauge) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(max)
            .thread_name("wait")
            .thread_keep_alive(Duration::from_secs(60))
            .build()?;
        Ok(Self { runtime: Some(runtime), permits: Arc::new(Semaphore::new(max)), max, sleeping })
    }

    /// Sleeps on a thread of the pool, or refuses when all `max` are asleep.
    pub(crate) async fn sleep(&self, duration: Duration) -> Result<(), Busy> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().map_err(|_| Busy(self.max))?;
        let runtime = self.runtime.as_ref().expect("taken only on drop");
        let sleeping = self.sleeping.clone();
        sleeping.inc();
        // A dropped request leaves its thread asleep: the permit goes with the thread.
        let _ = runtime
            .spawn_blocking(move || {
                std::thread::sleep(duration);
                sleeping.dec();
                drop(permit);
            })
            .await;
        Ok(())
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        // A runtime may not be dropped from async code, where the last clone of the state goes.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sleep_past_the_bound_is_refused_not_queued() {
        let sleepers =
            Arc::new(Sleepers::new(2, prometheus::IntGauge::new("s", "s").unwrap()).unwrap());
        let long = |s: Arc<Sleepers>| async move { s.sleep(Duration::from_millis(300)).await };
        let (a, b) = (tokio::spawn(long(sleepers.clone())), tokio::spawn(long(sleepers.clone())));
        tokio::task::yield_now().await;
        // Both permits are taken once the spawned tasks have run their first poll.
        while sleepers.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(sleepers.sleep(Duration::ZERO).await, Err(Busy(2))));
        assert!(a.await.unwrap().is_ok() && b.await.unwrap().is_ok());
        assert!(sleepers.sleep(Duration::ZERO).await.is_ok(), "permits come back");
    }
}
