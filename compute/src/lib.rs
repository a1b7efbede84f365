//! CPU-bound work off the async executor: a bounded rayon pool that async
//! code awaits, and naive fibonacci as its benchmark workload.
//!
//! ```
//! use compute::{ComputePool, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let pool = ComputePool::builder().threads(2).max_jobs(16).build()?;
//!
//! // The executor thread only awaits: other tasks keep running meanwhile.
//! let value = pool.fib(30, None).await?;
//! assert_eq!(value, 1_346_269);
//!
//! // Any closure works; it gets a token to check if it runs long.
//! let sum = pool.submit(|_cancel| (1..=100u64).sum::<u64>()).await?;
//! assert_eq!(sum, 5050);
//!
//! // Past max_jobs, submissions fail at once with Error::Busy instead of queueing.
//! assert_eq!(pool.stats().completed, 2);
//! # Ok(())
//! # }
//! ```
//!
//! Jobs whose caller stops waiting (the future is dropped, as when an HTTP
//! client disconnects) or whose deadline passes are told to stop through
//! their [`CancelToken`]. A panicking job is an error for its caller only.
//! By default the pool's threads run under `SCHED_IDLE` ([`Priority::Idle`]):
//! jobs use only CPU time that the rest of the process leaves idle.
//! Works with any executor: the pool needs no Tokio runtime.

mod cancel;
mod error;
mod fib;
mod pool;

pub use cancel::CancelToken;
pub use error::Error;
pub use fib::{FIB_MAX_N, fib, fib_parallel};
pub use pool::{Builder, ComputePool, Priority, Stats};
