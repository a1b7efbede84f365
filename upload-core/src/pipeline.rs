//! The backend-independent path of every byte stored: a body's chunks are
//! gathered into batches, counted against a limit, hashed on one blocking
//! thread and written by the backend's sink on another.

use std::pin::pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::backend::{Batch, MIN_BATCH, Sink, WRITE_CHUNK};
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

/// A body on its way into a sink: its chunks are counted against the
/// limit, gathered into batches, and each batch is handed to the sink and
/// to the hashing thread.
///
/// Never half-handed: a batch goes to the hasher as the sink takes it, with
/// no wait between the two (room on the hashing thread is reserved first,
/// and a sink takes a batch only as its `write` returns). So if the future
/// that pushes is dropped at any point, what [`finish`](Self::finish) reports
/// (the bytes hashed, and their hash) is exactly what the sink holds, and a
/// resumable upload can save that and go on from there, whatever stopped its body.
pub(crate) struct Intake<K> {
    sink: K,
    /// Taken by `finish`.
    hasher: Option<Worker<Hashes>>,
    batcher: Batcher,
    /// Bytes already stored before this body, and the most there may be in all.
    start: u64,
    limit: Option<u64>,
    received: u64,
    hashed: u64,
}

impl<K: Sink> Intake<K> {
    pub(crate) fn new(sink: K, hashes: Hashes, start: u64, limit: Option<u64>) -> Self {
        Self {
            sink,
            // Hashing runs beside the backend's write, each on its own blocking thread:
            // in series, SHA-256 would halve the rate of a fast disk (BENCHMARKS.md).
            hasher: Some(Worker::new(hashes, 2)),
            batcher: Batcher::default(),
            start,
            limit,
            received: 0,
            hashed: 0,
        }
    }

    /// Takes the next chunk of the body.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past the limit; the sink's or hasher's failure.
    pub(crate) async fn push(&mut self, chunk: Bytes) -> Result<()> {
        self.received += chunk.len() as u64;
        if let Some(limit) = self.limit.filter(|&limit| self.start + self.received > limit) {
            return Err(Error::TooLarge { limit });
        }
        match self.batcher.push(chunk) {
            Some(batch) => self.emit(batch).await,
            None => Ok(()),
        }
    }

    async fn emit(&mut self, batch: Batch) -> Result<()> {
        let len: u64 = batch.iter().map(|piece| piece.len() as u64).sum();
        let hasher = self.hasher.as_ref().ok_or_else(finished)?;
        let room = hasher.reserve().await?;
        self.sink.write(Arc::clone(&batch)).await?;
        hasher.submit_reserved(room, move |h: &mut Hashes| {
            for piece in batch.iter() {
                h.sha256.update(piece);
                if let Some(chunk) = &mut h.chunk {
                    chunk.update(piece);
                }
            }
            Ok(())
        })?;
        self.hashed += len;
        Ok(())
    }

    /// Writes what is left and waits until it is durable; returns the bytes
    /// hashed, all of which the sink holds.
    ///
    /// # Errors
    /// The sink's or hasher's failure.
    pub(crate) async fn finish(&mut self) -> Result<Received> {
        if let Some(batch) = self.batcher.finish() {
            self.emit(batch).await?;
        }
        self.sink.finish().await?;
        let hashes = self.hasher.take().ok_or_else(finished)?.finish().await?;
        Ok(Received { size: self.hashed, hashes })
    }

    /// The sink, once finished.
    pub(crate) fn into_sink(self) -> K {
        self.sink
    }

    /// Discards everything written, returning once nothing is left.
    pub(crate) async fn abort(self) {
        self.sink.abort().await;
    }
}

/// Feeds all of `body` to `sink` as a new object; returns once it is durable.
/// On an error the sink is aborted.
pub(crate) async fn receive<K, S, E>(sink: K, body: S, limit: Option<u64>) -> Result<(K, Received)>
where
    K: Sink,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let mut intake = Intake::new(sink, Hashes::fresh(), 0, limit);
    let mut body = pin!(body);
    while let Some(chunk) = body.next().await {
        let pushed = match chunk {
            Ok(chunk) => intake.push(chunk).await,
            Err(e) => Err(Error::Body(e.into())),
        };
        if let Err(e) = pushed {
            // Waits for the write in flight, so that on return nothing is left.
            intake.abort().await;
            return Err(e);
        }
    }
    match intake.finish().await {
        Ok(received) => Ok((intake.into_sink(), received)),
        Err(e) => {
            intake.abort().await;
            Err(e)
        }
    }
}

fn finished() -> Error {
    Error::Io(std::io::Error::other("upload intake used after it finished"))
}

/// Groups a body's chunks into batches of about [`WRITE_CHUNK`] bytes, the
/// first of [`MIN_BATCH`]; only a body's last batch is shorter. Big chunks
/// are kept as they are: copying every byte once more costs a noticeable
/// share of a core at disk speed.
#[derive(Default)]
struct Batcher {
    /// Whether the first batch has been taken.
    started: bool,
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
        let size = if self.started { WRITE_CHUNK } else { MIN_BATCH };
        (self.len >= size || self.pieces.len() >= MAX_PIECES).then(|| self.take())
    }

    /// The last, partial batch, if any bytes are left.
    fn finish(&mut self) -> Option<Batch> {
        self.flush_small();
        (!self.pieces.is_empty()).then(|| self.take())
    }

    fn flush_small(&mut self) {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
    }

    fn take(&mut self) -> Batch {
        self.started = true;
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
                // The first sooner, so the disk starts sooner.
                let least = if out.is_empty() { MIN_BATCH } else { WRITE_CHUNK };
                assert!((least..least + WRITE_CHUNK).contains(&bytes), "{bytes}");
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
