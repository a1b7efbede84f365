//! N requests to one URL in the three client styles of the original benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::conn::{Target, Until, connection};
use crate::report::{Recorder, RequestReport, failure_kind};
use crate::{Error, progress};

/// How the requests are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GetMode {
    /// One after another from one blocking client (the original `sync_get_all`).
    Serial,
    /// A pool of blocking clients, one OS thread each (the original `thread_pool`).
    Threads,
    /// One runtime with a bound on requests in flight, each on its own
    /// persistent connection (the original `async_main`).
    Async,
}

impl GetMode {
    fn label(self) -> &'static str {
        match self {
            Self::Serial => "sync_get_all",
            Self::Threads => "thread_pool",
            Self::Async => "async_main",
        }
    }
}

/// Sends `n` GET requests to `url`. `concurrency` is the thread count for
/// [`GetMode::Threads`] (default `min(n, 100)`) and the in-flight bound for
/// [`GetMode::Async`] (default `n`).
///
/// # Errors
/// [`Error::Client`] if no client can be built; failed requests are counted, not errors.
pub fn get(
    url: &str,
    n: u64,
    mode: GetMode,
    concurrency: Option<usize>,
) -> Result<RequestReport, Error> {
    let bar = progress(n, url);
    let start = Instant::now();
    let rec = match mode {
        GetMode::Serial => {
            blocking_worker(&crate::blocking_client()?, url, &AtomicU64::new(n), &bar)
        }
        GetMode::Threads => {
            let threads = concurrency.unwrap_or(n.min(100) as usize).max(1);
            let remaining = AtomicU64::new(n);
            // One client (a handle on one connection pool) for every thread: building one
            // loads the TLS roots, which for 100 threads took longer than their requests.
            let client = crate::blocking_client()?;
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| s.spawn(|| blocking_worker(&client, url, &remaining, &bar)))
                    .collect();
                let mut all = Recorder::default();
                for worker in workers {
                    all.merge(
                        &worker
                            .join()
                            .map_err(|_| Error::Client("a client thread panicked".into()))?,
                    );
                }
                Ok::<_, Error>(all)
            })?
        }
        GetMode::Async => {
            // `limit` persistent connections on one runtime share the `n` requests.
            let limit = concurrency.unwrap_or(n as usize).clamp(1, n.max(1) as usize);
            let target = Target::parse(url)?;
            let until = Until::Requests(Arc::new(AtomicU64::new(n)));
            crate::runtime()?.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..limit {
                    tasks.spawn(connection(Arc::clone(&target), until.clone(), bar.clone()));
                }
                let mut rec = Recorder::default();
                while let Some(one) = tasks.join_next().await {
                    rec.merge(&one.map_err(|e| Error::Client(e.to_string()))?);
                }
                Ok::<_, Error>(rec)
            })?
        }
    };
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(RequestReport::new(url, mode.label(), &rec, elapsed))
}

/// Blocking requests taken off `remaining` until none are left.
fn blocking_worker(
    client: &reqwest::blocking::Client,
    url: &str,
    remaining: &AtomicU64,
    bar: &indicatif::ProgressBar,
) -> Recorder {
    let mut rec = Recorder::default();
    while remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1)).is_ok()
    {
        let start = Instant::now();
        let outcome = client
            .get(url)
            .send()
            .and_then(|r| {
                let status = r.status().as_u16();
                r.bytes().map(|_| status)
            })
            .map_err(|e| failure_kind(&e));
        rec.record(start.elapsed(), outcome);
        bar.inc(1);
    }
    rec
}

/// One GET, body read to the end (so the connection is reused).
pub(crate) async fn send(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    let response = client.get(url).send().await.map_err(|e| failure_kind(&e))?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| failure_kind(&e))?;
    Ok(status)
}
