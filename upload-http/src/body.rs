//! The request body as the handlers read it: bytes counted against the
//! request limit as they arrive (whatever Content-Length said, chunked or
//! not), a client that goes quiet for `read_timeout` is cut off, and so is
//! one that trickles below `min_rate` over a window of `read_timeout`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::quota::Charge;

/// Why a request body was cut off. Carried inside an `io::Error`, as
/// actix's `PayloadError` has no room for reasons of our own.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Cutoff {
    #[error("no data received for {0:?}")]
    Silent(Duration),
    #[error("the body arrived at {rate} bytes/s, below the minimum of {min} bytes/s")]
    TooSlow { rate: u64, min: u64 },
    #[error("the request body exceeds its limit")]
    TooLarge,
    #[error("{whose} would exceed the quota of {limit} bytes")]
    Quota { limit: u64, whose: &'static str },
}

impl Cutoff {
    fn into_payload_error(self) -> PayloadError {
        let kind = match self {
            Self::TooLarge | Self::Quota { .. } => io::ErrorKind::InvalidData,
            Self::Silent(_) | Self::TooSlow { .. } => io::ErrorKind::TimedOut,
        };
        PayloadError::Io(io::Error::new(kind, self))
    }

    /// The cut-off inside an I/O error, if [`Body`] made it.
    pub(crate) fn of_io(e: &io::Error) -> Option<&Self> {
        e.get_ref()?.downcast_ref()
    }
}

/// How a body is bounded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    /// Most bytes the body may have.
    pub(crate) max_bytes: u64,
    /// The longest silence, and the window over which `min_rate` is measured.
    pub(crate) timeout: Duration,
    /// Bytes per second below which a client is cut off (0: no minimum).
    pub(crate) min_rate: u64,
}

/// A limited, timed request body.
pub(crate) struct Body<S> {
    inner: S,
    limits: BodyLimits,
    received: u64,
    deadline: Pin<Box<Sleep>>,
    /// Time spent waiting for the client in the current window, and the
    /// bytes it sent in it: time the server spent elsewhere (writing to a
    /// slow store) is not the client's fault, so it is not counted.
    waited: Duration,
    window_bytes: u64,
    waiting_since: Option<Instant>,
    counter: prometheus::IntCounter,
    /// The quota reservation, when quotas are set.
    charge: Option<Charge>,
    done: bool,
}

impl<S> Body<S> {
    pub(crate) fn new(
        inner: S,
        limits: BodyLimits,
        counter: prometheus::IntCounter,
        charge: Option<Charge>,
    ) -> Self {
        let deadline = Box::pin(tokio::time::sleep(limits.timeout));
        Self {
            inner,
            limits,
            received: 0,
            deadline,
            waited: Duration::ZERO,
            window_bytes: 0,
            waiting_since: None,
            counter,
            charge,
            done: false,
        }
    }

    /// Accounts for a chunk that arrived now; the cut-off if the client is too slow.
    fn arrived(&mut self, len: u64) -> Option<Cutoff> {
        let now = Instant::now();
        self.received += len;
        self.counter.inc_by(len);
        if self.received > self.limits.max_bytes {
            return Some(Cutoff::TooLarge);
        }
        if let Some(Err(cutoff)) = self.charge.as_mut().map(|charge| charge.take(len)) {
            return Some(cutoff);
        }
        if let Some(since) = self.waiting_since.take() {
            self.waited += now - since;
        }
        self.window_bytes += len;
        if self.waited >= self.limits.timeout {
            let rate = (self.window_bytes as f64 / self.waited.as_secs_f64()) as u64;
            if rate < self.limits.min_rate {
                return Some(Cutoff::TooSlow { rate, min: self.limits.min_rate });
            }
            (self.waited, self.window_bytes) = (Duration::ZERO, 0);
        }
        self.deadline.as_mut().reset(now + self.limits.timeout);
        None
    }
}

impl<S> Stream for Body<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.arrived(chunk.len() as u64) {
                None => Poll::Ready(Some(Ok(chunk))),
                Some(cutoff) => {
                    this.done = true;
                    Poll::Ready(Some(Err(cutoff.into_payload_error())))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                this.waiting_since.get_or_insert_with(Instant::now);
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.done = true;
                        let cutoff = Cutoff::Silent(this.limits.timeout);
                        Poll::Ready(Some(Err(cutoff.into_payload_error())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;

    fn body(
        chunks: Vec<(u64, usize)>,
        limits: BodyLimits,
    ) -> Body<impl Stream<Item = Result<Bytes, PayloadError>> + Unpin> {
        // Each chunk arrives `delay` ms after the previous one.
        let inner = stream::iter(chunks).then(|(delay, len)| async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            Ok(Bytes::from(vec![0u8; len]))
        });
        let counter = prometheus::IntCounter::new("t", "t").unwrap();
        Body::new(Box::pin(inner), limits, counter, None)
    }

    async fn outcome(
        mut body: Body<impl Stream<Item = Result<Bytes, PayloadError>> + Unpin>,
    ) -> String {
        let mut total = 0;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => total += c.len(),
                Err(PayloadError::Io(e)) => {
                    return Cutoff::of_io(&e).map_or_else(|| e.to_string(), ToString::to_string);
                }
                Err(e) => return e.to_string(),
            }
        }
        format!("{total} bytes")
    }

    const LIMITS: BodyLimits =
        BodyLimits { max_bytes: 1 << 20, timeout: Duration::from_secs(30), min_rate: 1024 };

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_rate_is_cut_off_after_one_window() {
        // One byte every 3 s: never silent for 30 s, but 0.33 bytes/s.
        let start = Instant::now();
        let text = outcome(body(vec![(3000, 1); 100], LIMITS)).await;
        assert!(text.contains("below the minimum of 1024 bytes/s"), "{text}");
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_client_and_a_paused_server_are_not_cut_off() {
        // 2 KiB/s for 100 s.
        assert_eq!(outcome(body(vec![(1000, 2048); 100], LIMITS)).await, "204800 bytes");
        // Chunks that were ready while the server was busy: no time waited, no cut-off.
        let mut b = body(vec![(0, 1); 10], LIMITS);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert!(b.next().await.unwrap().is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silence_and_size_are_cut_off() {
        let text = outcome(body(vec![(0, 10), (31_000, 10)], LIMITS)).await;
        assert_eq!(text, "no data received for 30s");
        let text = outcome(body(vec![(0, 1 << 20), (0, 1)], LIMITS)).await;
        assert_eq!(text, "the request body exceeds its limit");
        let no_minimum = BodyLimits { min_rate: 0, ..LIMITS };
        assert_eq!(outcome(body(vec![(3000, 1); 20], no_minimum)).await, "20 bytes");
    }
}
