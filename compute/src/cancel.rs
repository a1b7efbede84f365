//! Telling a running job to stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use crate::Error;

/// Tells a running job to stop: set when its caller stops waiting, or past its deadline.
///
/// Jobs check [`is_cancelled`](Self::is_cancelled) at a granularity that
/// suits them (the fibonacci recursion does every ~0.1 ms).
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl CancelToken {
    /// A token that fires only when [`cancel`](Self::cancel) is called.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that also fires at `deadline`.
    #[must_use]
    pub fn with_deadline(deadline: Instant) -> Self {
        Self { deadline: Some(deadline), ..Self::default() }
    }

    /// Fires the token.
    pub fn cancel(&self) {
        self.flag.store(true, Relaxed);
    }

    /// Whether the job should stop.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Relaxed) || self.expired()
    }

    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Why the token fired.
    pub(crate) fn reason(&self) -> Error {
        if self.expired() { Error::DeadlineExceeded } else { Error::Cancelled }
    }
}
