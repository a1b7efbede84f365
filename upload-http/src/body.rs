//! The request body as the handlers read it: bytes counted against the
//! request limit as they arrive (whatever Content-Length said, chunked or
//! not), and a client that goes quiet for `read_timeout` is cut off.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

/// The error inside the `io::Error` of a read timeout, carrying the timeout.
#[derive(Debug, thiserror::Error)]
#[error("no data received for {0:?}")]
struct ReadTimeout(Duration);

/// The timeout recorded in a read-timeout error.
pub(crate) fn timeout_of(e: &io::Error) -> Duration {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ReadTimeout>())
        .map_or(Duration::ZERO, |t| t.0)
}

/// A limited, timed request body.
pub(crate) struct Body<S> {
    inner: S,
    received: u64,
    limit: u64,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    counter: prometheus::IntCounter,
    done: bool,
}

impl<S> Body<S> {
    pub(crate) fn new(
        inner: S,
        limit: u64,
        timeout: Duration,
        counter: prometheus::IntCounter,
    ) -> Self {
        let deadline = Box::pin(tokio::time::sleep(timeout));
        Self { inner, received: 0, limit, timeout, deadline, counter, done: false }
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
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                this.counter.inc_by(chunk.len() as u64);
                if this.received > this.limit {
                    this.done = true;
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                this.deadline.as_mut().reset(Instant::now() + this.timeout);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    let e = io::Error::new(io::ErrorKind::TimedOut, ReadTimeout(this.timeout));
                    Poll::Ready(Some(Err(PayloadError::Io(e))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
