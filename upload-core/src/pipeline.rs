//! The backend-independent path of every byte stored: a body's chunks are
//! gathered into batches, counted against a limit, hashed on one blocking
//! thread and written by the backend's sink on another.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::backend::{Batch, Sink, WRITE_CHUNK};
use crate::checksum::ChunkHasher;
use crate::offload::Worker;
use crate::sha256::Sha256State;
use crate::{BoxError, Error, Result};

/// Chunks at least this big join a batch as they are (no copy); smaller ones
/// are copied together first, so a batch has at most `WRITE_CHUNK / SMALL_CHUNK` pieces.
const SMALL_CHUNK: usize = 16 * 1024;
const MAX_PIECES: usize = 128;

/// What the hashing thread keeps: the whole upload's SHA-256, carried over
/// from earlier appends, and the checksum of this body alone, if asked for.
pub(crate) struct Hashes {
    pub(crate) sha256: Sha256State,
    pub(crate) chunk: Option<ChunkHasher>,
}

impl Hashes {
    /// Hashes for a body that starts an upload and carries no checksum.
    pub(crate) fn fresh() -> Self {
        Self { sha256: Sha256State::default(), chunk: None }
    }
}

/// The bytes of a body that reached the sink (written and made durable by
/// its `finish`), and their hashes.
pub(crate) struct Received {
    pub(crate) size: u64,
    pub(crate) hashes: Hashes,
}

/// How a body that did not arrive whole ended.
pub(crate) enum Cut {
    /// Nothing usable was kept: the sink must be aborted or rolled back.
    Failed(Error),
    /// The body failed (`Error::Body`), after what was received was made durable.
    Partial(Box<Received>, Error),
}

impl From<Error> for Cut {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

impl Cut {
    /// The error, dropping what was received.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Self::Failed(e) | Self::Partial(_, e) => e,
        }
    }
}

/// Feeds `body` to `sink` after `start` bytes already stored, failing past
/// `limit` bytes in all; returns once everything received is durable.
///
/// When the body itself fails and `keep_partial` is set, what arrived
/// before is still written and made durable ([`Cut::Partial`]): a resumable
/// upload then goes on from there.
pub(crate) async fn receive<K, S, E>(
    sink: &mut K,
    body: S,
    hashes: Hashes,
    start: u64,
    limit: Option<u64>,
    keep_partial: bool,
) -> std::result::Result<Received, Cut>
where
    K: Sink,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    // Hashing runs beside the backend's write, each on its own blocking thread:
    // in series, SHA-256 would halve the rate of a fast disk (BENCHMARKS.md).
    let hasher = Worker::new(hashes, 2);
    let emit = async |sink: &mut K, batch: Batch| -> Result<()> {
        let hashed = Arc::clone(&batch);
        hasher
            .submit(move |h: &mut Hashes| {
                for piece in hashed.iter() {
                    h.sha256.update(piece);
                    if let Some(chunk) = &mut h.chunk {
                        chunk.update(piece);
                    }
                }
                Ok(())
            })
            .await?;
        sink.write(batch).await
    };
    let mut body = pin!(body);
    let mut batcher = Batcher::default();
    let mut size: u64 = 0;
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) if keep_partial => {
                failure = Some(Error::Body(e.into()));
                break;
            }
            Err(e) => return Err(Error::Body(e.into()).into()),
        };
        size += chunk.len() as u64;
        if let Some(limit) = limit.filter(|&limit| start + size > limit) {
            return Err(Error::TooLarge { limit }.into());
        }
        if let Some(batch) = batcher.push(chunk) {
            emit(sink, batch).await?;
        }
    }
    if let Some(batch) = batcher.finish() {
        emit(sink, batch).await?;
    }
    sink.finish().await?;
    let received = Received { size, hashes: hasher.finish().await? };
    match failure {
        Some(e) => Err(Cut::Partial(Box::new(received), e)),
        None => Ok(received),
    }
}

/// Groups a body's chunks into batches of about [`WRITE_CHUNK`] bytes. Big
/// chunks are kept as they are: copying every byte once more costs a
/// noticeable share of a core at disk speed.
#[derive(Default)]
struct Batcher {
    pieces: Vec<Bytes>,
    len: usize,
    small: BytesMut,
}

impl Batcher {
    /// Adds a chunk; returns a batch when one is full.
    fn push(&mut self, chunk: Bytes) -> Option<Batch> {
        self.len += chunk.len();
        if chunk.len() < SMALL_CHUNK {
            self.small.extend_from_slice(&chunk);
            if self.small.len() >= SMALL_CHUNK {
                self.pieces.push(self.small.split().freeze());
            }
        } else {
            self.flush_small();
            self.pieces.push(chunk);
        }
        (self.len >= WRITE_CHUNK || self.pieces.len() >= MAX_PIECES).then(|| self.take())
    }

    /// The last, partial batch, if any bytes are left.
    fn finish(mut self) -> Option<Batch> {
        self.flush_small();
        (!self.pieces.is_empty()).then(|| self.take())
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
    }

    fn take(&mut self) -> Batch {
        self.flush_small();
        self.len = 0;
        std::mem::take(&mut self.pieces).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_order_and_bound_size_and_pieces() {
        let mut batcher = Batcher::default();
        let mut out = Vec::new();
        let mut input = Vec::new();
        for (i, len) in
            [1, 100, 20_000, 5, 70_000, 3, WRITE_CHUNK + 1, 9].iter().cycle().take(400).enumerate()
        {
            let chunk = Bytes::from(vec![i as u8; *len]);
            input.extend_from_slice(&chunk);
            if let Some(batch) = batcher.push(chunk) {
                assert!(batch.len() <= MAX_PIECES);
                let bytes: usize = batch.iter().map(Bytes::len).sum();
                assert!((WRITE_CHUNK..2 * WRITE_CHUNK).contains(&bytes), "{bytes}");
                out.push(batch);
            }
        }
        out.extend(batcher.finish());
        let joined: Vec<u8> =
            out.iter().flat_map(|b| b.iter()).flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, input);
        let many_tiny = (0..MAX_PIECES * SMALL_CHUNK).try_fold(Batcher::default(), |mut b, _| {
            b.push(Bytes::from_static(b"x")).map_or(Ok(b), Err)
        });
        assert!(many_tiny.is_err(), "tiny chunks are copied together, then batched");
    }
}
