/// What can go wrong with a compute job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool already holds its maximum number of jobs; retry later.
    #[error("compute pool is busy ({max_jobs} jobs admitted)")]
    Busy {
        /// The pool's limit.
        max_jobs: usize,
    },
    /// The job's deadline passed before it finished; it was stopped.
    #[error("compute deadline exceeded")]
    DeadlineExceeded,
    /// The caller stopped waiting; the job was stopped.
    #[error("compute job cancelled")]
    Cancelled,
    /// The job panicked; the pool is unaffected.
    #[error("compute job panicked: {0}")]
    Panicked(String),
    /// The result does not fit in a `u64`.
    #[error("fib({n}) does not fit in 64 bits (n must be at most {max})")]
    Overflow {
        /// The requested n.
        n: u32,
        /// The largest n that fits.
        max: u32,
    },
    /// The pool's settings are invalid.
    #[error("invalid compute pool settings: {0}")]
    Config(String),
}
