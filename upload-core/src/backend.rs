//! What the storage facade and its backends exchange: batches of body
//! bytes in, objects out, and the sink an upload writes to.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::{FileInfo, Result};

/// Bytes are handed to the backend in batches of about this size, so the
/// disk sees few large writes whatever the size of the network's chunks.
pub const WRITE_CHUNK: usize = 1 << 20;
/// The first batch of a body is handed over at this size: the disk starts
/// sooner after a request's first bytes, which counts for a resumable
/// upload's many requests. Only a body's last batch is shorter.
pub(crate) const MIN_BATCH: usize = 256 * 1024;
/// A run of consecutive chunks of the body, written with one vectored write.
pub(crate) type Batch = Arc<[Bytes]>;

/// A streaming body of an object being read.
pub type ObjectBody = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// An object opened for reading.
pub struct Object {
    /// Its metadata.
    pub info: FileInfo,
    /// The byte range `body` yields (the whole object unless a range was asked for).
    pub range: Range<u64>,
    /// The bytes of `range`, streamed.
    pub body: ObjectBody,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object").field("info", &self.info).field("range", &self.range).finish()
    }
}

/// Where one upload's bytes go. The intake (`pipeline.rs`) feeds it
/// coalesced chunks in order; dropping it before its bytes are committed or
/// saved must leave nothing behind.
pub(crate) trait Sink {
    /// Stores the next batch. Returns as soon as it is queued, so the caller
    /// keeps receiving while it is written. Takes the batch only as it
    /// returns `Ok`: dropped while it waits, it has taken none of it.
    async fn write(&mut self, batch: Batch) -> Result<()>;
    /// Waits for every write and makes the bytes durable (not yet visible).
    async fn finish(&mut self) -> Result<()>;
    /// Discards everything written, returning once nothing is left.
    async fn abort(self);
}

/// A sink whose bytes become one object.
pub(crate) trait ObjectSink: Sink {
    /// Makes the object visible together with its metadata.
    async fn commit(self, info: &FileInfo) -> Result<()>;
}
