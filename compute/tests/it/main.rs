//! compute's integration tests: a real pool, real threads.

use std::sync::mpsc;
use std::time::Duration;

use compute::{ComputePool, Error, Priority, Stats};

fn pool(threads: usize, max_jobs: usize) -> ComputePool {
    ComputePool::builder().threads(threads).max_jobs(max_jobs).build().unwrap()
}

/// A job that holds its thread until `release` sends (or is dropped).
fn held(release: mpsc::Receiver<()>) -> impl FnOnce(&compute::CancelToken) -> u32 + Send {
    move |_| {
        let _ = release.recv();
        7
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_callers_executor_keeps_running_during_a_long_job() {
    let pool = pool(2, 4);
    let long = pool.fib(40, None);
    let ticks = async {
        let mut interval = tokio::time::interval(Duration::from_millis(2));
        for _ in 0..25 {
            interval.tick().await;
        }
    };
    // One executor thread: if the job ran on it, fib(40) (~0.5 s or more) would finish first.
    tokio::select! {
        biased;
        result = long => panic!("fib(40) finished before 25 ticks of 2 ms: {result:?}"),
        () = ticks => {}
    }
    assert_eq!(pool.fib(40, None).await.unwrap(), 165_580_141);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pool_says_busy_at_once_and_admits_again_later() {
    let pool = pool(1, 2);
    let (release1, rx1) = mpsc::channel();
    let (release2, rx2) = mpsc::channel();
    // One at a time, so the order on the single thread is known: `first`
    // runs, `second` waits behind it.
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.submit(held(rx1)).await }
    });
    while pool.stats().running < 1 {
        tokio::task::yield_now().await;
    }
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.submit(held(rx2)).await }
    });
    while pool.stats().queued < 1 {
        tokio::task::yield_now().await;
    }
    let third = pool.submit(|_| 3).await;
    assert!(matches!(third, Err(Error::Busy { max_jobs: 2 })), "{third:?}");
    assert_eq!(pool.stats().rejected, 1);

    release1.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 7);
    let third = tokio::spawn({
        let pool = pool.clone();
        async move { pool.submit(|_| 3).await }
    });
    release2.send(()).unwrap();
    assert_eq!(second.await.unwrap().unwrap(), 7);
    assert_eq!(third.await.unwrap().unwrap(), 3);
    let stats = pool.stats();
    assert_eq!((stats.completed, stats.rejected, stats.running, stats.queued), (3, 1, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_awaiting_future_frees_the_pool() {
    let pool = pool(1, 4);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    // fib(47) takes tens of seconds on one thread unless it is stopped.
    let long = pool.submit(move |cancel| {
        let _ = started_tx.send(());
        compute::fib_parallel(47, cancel)
    });
    tokio::select! {
        result = long => panic!("finished: {result:?}"),
        _ = started_rx => {}
    }
    // `long` was dropped on leaving select!: the one thread must free up soon.
    let next = tokio::time::timeout(Duration::from_secs(10), pool.submit(|_| "next")).await;
    assert_eq!(next.expect("the cancelled job kept the only thread").unwrap(), "next");
    let stats = pool.stats();
    assert_eq!(
        stats,
        Stats { cancelled: 1, completed: 1, ..Stats::default() },
        "cancelled job counted, nothing left running"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_stops_the_job_with_its_own_error() {
    let pool = pool(2, 4);
    let result = pool.fib(47, Some(Duration::from_millis(50))).await;
    assert!(matches!(result, Err(Error::DeadlineExceeded)), "{result:?}");
    assert_eq!(pool.stats().timed_out, 1);
    assert_eq!(pool.fib(20, Some(Duration::from_secs(60))).await.unwrap(), 10_946);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_job_is_an_error_for_its_caller_only() {
    let pool = pool(1, 4);
    let result = pool.submit(|_| -> u32 { panic!("boom") }).await;
    assert!(matches!(&result, Err(Error::Panicked(msg)) if msg == "boom"), "{result:?}");
    assert_eq!(pool.fib(25, None).await.unwrap(), 121_393);
    let stats = pool.stats();
    assert_eq!((stats.panicked, stats.completed), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn overflow_is_an_error_not_a_wrong_number() {
    let pool = pool(1, 4);
    assert!(matches!(pool.fib(93, None).await, Err(Error::Overflow { n: 93, max: 92 })));
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_run_at_the_configured_priority() {
    /// (scheduling policy, niceness) of the calling thread.
    fn own_priority() -> (i32, i32) {
        // SAFETY: plain integer syscalls. getpriority may return -1 legitimately; errno is not needed here.
        unsafe {
            let tid = libc::gettid();
            (
                libc::sched_getscheduler(tid),
                libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t),
            )
        }
    }
    let (policy, nice) = own_priority();
    assert_eq!(policy, libc::SCHED_OTHER);
    let on = |priority| async move {
        let pool = ComputePool::builder().threads(1).priority(priority).build().unwrap();
        pool.submit(|_| own_priority()).await.unwrap()
    };
    let default = ComputePool::builder().threads(1).build().unwrap();
    assert_eq!(default.submit(|_| own_priority()).await.unwrap().0, libc::SCHED_IDLE);
    assert_eq!(on(Priority::Nice(10)).await, (libc::SCHED_OTHER, nice.max(10)));
    assert_eq!(on(Priority::Nice(0)).await, (libc::SCHED_OTHER, nice));
}

#[test]
fn bad_settings_are_refused() {
    assert!(matches!(ComputePool::builder().threads(0).build(), Err(Error::Config(_))));
    assert!(matches!(ComputePool::builder().max_jobs(0).build(), Err(Error::Config(_))));
    assert!(matches!(
        ComputePool::builder().priority(Priority::Nice(20)).build(),
        Err(Error::Config(_))
    ));
}
