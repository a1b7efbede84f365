//! Sustained load: closed-loop at C connections, or open-loop at a fixed
//! rate with latency measured from each request's intended send time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use indicatif::ProgressBar;

use crate::Error;
use crate::conn::{Target, Until, connection};
use crate::get::send;
use crate::report::{Recorder, RequestReport};

/// Loads `url` for `duration`: `connections` clients in a closed loop, or,
/// with `rate`, requests sent at `rate` per second whatever the server's
/// pace (at most `connections` in flight). In open loop each latency runs
/// from the intended send time, so a stalled server shows up in the
/// percentiles instead of hiding in fewer samples (coordinated omission, as
/// wrk2 corrects it).
///
/// # Errors
/// [`Error::Client`] if no client can be built.
pub fn load(
    url: &str,
    duration: Duration,
    connections: usize,
    rate: Option<f64>,
) -> Result<RequestReport, Error> {
    let connections = connections.max(1);
    let start = std::time::Instant::now();
    let (rec, mode) = match rate {
        None => (
            closed_loop(url, duration, connections)?,
            format!("closed loop, {connections} connections"),
        ),
        Some(rate) => (
            open_loop(url, duration, connections, rate)?,
            format!("open loop, {rate} req/s, up to {connections} in flight"),
        ),
    };
    Ok(RequestReport::new(url, &mode, &rec, start.elapsed()))
}

/// Sends at `rate` per second from the intended send times, with at most
/// `connections` in flight; each latency runs from the intended time.
fn open_loop(
    url: &str,
    duration: Duration,
    connections: usize,
    rate: f64,
) -> Result<Recorder, Error> {
    crate::runtime()?.block_on(async {
        let client = crate::async_client()?;
        let rec = Arc::new(Mutex::new(Recorder::default()));
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
        let permits = Arc::new(Semaphore::new(connections));
        let mut tasks = tokio::task::JoinSet::new();
        let start = Instant::now();
        let mut intended = start;
        while intended < start + duration {
            tokio::time::sleep_until(intended).await;
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .map_err(|e| Error::Client(e.to_string()))?;
            let (client, url, rec) = (client.clone(), url.to_owned(), Arc::clone(&rec));
            let scheduled = intended;
            tasks.spawn(async move {
                let outcome = send(&client, &url).await;
                drop(permit);
                lock(&rec).record(scheduled.elapsed(), outcome);
            });
            intended += period;
            // Reap finished tasks as we go, so memory stays bounded on long runs.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        let rec = std::mem::take(&mut *lock(&rec));
        Ok(rec)
    })
}

/// Closed loop as wrk runs it: one thread per core, each with its own
/// single-threaded runtime driving its share of the connections.
fn closed_loop(url: &str, duration: Duration, connections: usize) -> Result<Recorder, Error> {
    let target = Target::parse(url)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(connections);
    let until = Until::Deadline(std::time::Instant::now() + duration);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                // Spread the connections: the first `connections % threads` threads take one more.
                let mine = connections / threads + usize::from(t < connections % threads);
                let (target, until) = (Arc::clone(&target), until.clone());
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Client(e.to_string()))?;
                    let loops = (0..mine).map(|_| {
                        connection(Arc::clone(&target), until.clone(), ProgressBar::hidden())
                    });
                    let mut rec = Recorder::default();
                    for one in rt.block_on(futures_util::future::join_all(loops)) {
                        rec.merge(&one);
                    }
                    Ok::<_, Error>(rec)
                })
            })
            .collect();
        let mut all = Recorder::default();
        for worker in workers {
            all.merge(&worker.join().map_err(|_| Error::Client("a load thread panicked".into()))??);
        }
        Ok(all)
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
