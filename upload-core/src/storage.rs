use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::pin::{Pin, pin};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::local::LocalStore;
use crate::{BoxError, ByteRange, Error, FileInfo, ObjectId, Page, PutOptions, Result};

/// Bytes are handed to the backend in writes of this size: small network
/// chunks (often 8-64 KiB) are coalesced, so the disk sees few large writes.
pub const WRITE_CHUNK: usize = 1 << 20;

/// Which backend stores the objects, as read from settings
/// (`type = "local"`, `root = "./data"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageConfig {
    /// Files on a local file system.
    Local(LocalConfig),
}

/// Settings of the local-disk backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The directory that holds everything; created if missing.
    pub root: PathBuf,
    /// Make every object durable (fsync of data, metadata and directories)
    /// before reporting it stored. Turning it off trades crash safety for speed.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
}

fn default_fsync() -> bool {
    true
}

impl LocalConfig {
    /// Durable local storage under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            fsync: true,
        }
    }
}

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
        f.debug_struct("Object")
            .field("info", &self.info)
            .field("range", &self.range)
            .finish()
    }
}

/// The store: cheap to clone, shared by every request.
///
/// Must be used from within a Tokio runtime (file I/O runs on its blocking pool).
#[derive(Clone, Debug)]
pub struct Storage {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Local(LocalStore),
}

/// Where one upload's bytes go. The put pipeline feeds it coalesced chunks in
/// order; dropping it before `commit` must leave nothing behind.
pub(crate) trait Sink {
    /// Hashes and stores the next chunk. Returns as soon as the chunk is
    /// handed off, so the caller keeps receiving while it is written.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    /// Waits for every write, makes the bytes durable (not yet visible) and
    /// returns their SHA-256.
    async fn finish(&mut self) -> Result<[u8; 32]>;
    /// Makes the object visible together with its metadata.
    async fn commit(self, info: &FileInfo) -> Result<()>;
    /// Discards everything written, returning once nothing is left.
    async fn abort(self);
}

impl Storage {
    /// Opens (creating if needed) the store described by `config`.
    ///
    /// The local backend takes an exclusive lock on its root and removes the
    /// temporary files a crash may have left.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if another process holds the root, [`Error::Io`]
    /// if it cannot be created.
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        let backend = match config {
            StorageConfig::Local(local) => Backend::Local(LocalStore::open(local.clone()).await?),
        };
        Ok(Self {
            backend: Arc::new(backend),
        })
    }

    /// Streams `body` into a new object and returns what was stored.
    ///
    /// Chunks are coalesced into [`WRITE_CHUNK`] writes and hashed as they
    /// arrive; at most two such buffers are held per upload, whatever its
    /// size. The object becomes visible only once all of it is durable and
    /// checked. The stream need not be `Send` (multipart fields are not).
    ///
    /// # Errors
    /// [`Error::TooLarge`] past `opts.max_size`, [`Error::ChecksumMismatch`],
    /// [`Error::Body`] when `body` yields an error, [`Error::StorageFull`],
    /// [`Error::InvalidContentType`], [`Error::Io`]. In every case, and when
    /// the returned future is dropped early, nothing is stored and no
    /// temporary file remains.
    pub async fn put<S, E>(&self, body: S, opts: PutOptions) -> Result<FileInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let content_type = opts.content_type()?;
        let id = ObjectId::new();
        match &*self.backend {
            Backend::Local(store) => {
                drive(store.begin(id).await?, body, opts, id, content_type).await
            }
        }
    }

    /// Opens an object for streaming, whole or the given range.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::RangeNotSatisfiable`], [`Error::Io`].
    pub async fn get(&self, id: &ObjectId, range: Option<ByteRange>) -> Result<Object> {
        match &*self.backend {
            Backend::Local(store) => store.get(id, range).await,
        }
    }

    /// An object's metadata.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Io`].
    pub async fn head(&self, id: &ObjectId) -> Result<FileInfo> {
        match &*self.backend {
            Backend::Local(store) => store.head(id).await,
        }
    }

    /// Deletes an object; it disappears at once, its space is freed just after.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Io`].
    pub async fn delete(&self, id: &ObjectId) -> Result<()> {
        match &*self.backend {
            Backend::Local(store) => store.delete(id).await,
        }
    }

    /// Up to `limit` objects with ids after `after`, in id (creation) order.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub async fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Page> {
        match &*self.backend {
            Backend::Local(store) => store.list(after, limit).await,
        }
    }

    /// Checks that the store accepts writes right now.
    ///
    /// # Errors
    /// The error a write would meet: [`Error::StorageFull`], [`Error::Io`], ...
    pub async fn check_ready(&self) -> Result<()> {
        match &*self.backend {
            Backend::Local(store) => store.check_ready().await,
        }
    }
}

/// The backend-independent part of a put: coalescing, size limit, checksum.
async fn drive<K, S, E>(
    mut sink: K,
    body: S,
    opts: PutOptions,
    id: ObjectId,
    content_type: String,
) -> Result<FileInfo>
where
    K: Sink,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let (size, digest) = match receive(&mut sink, body, &opts).await {
        Ok(received) => received,
        Err(e) => {
            // Waits for the write in flight, so that on return nothing is left.
            sink.abort().await;
            return Err(e);
        }
    };
    let info = FileInfo {
        id,
        filename: opts.filename.map(|name| name.as_str().to_owned()),
        size,
        sha256: hex::encode(digest),
        content_type,
        created_at: OffsetDateTime::now_utc(),
    };
    sink.commit(&info).await?;
    Ok(info)
}

/// Feeds `body` to `sink`; returns the size and SHA-256 once all of it is durable and checked.
async fn receive<K, S, E>(sink: &mut K, body: S, opts: &PutOptions) -> Result<(u64, [u8; 32])>
where
    K: Sink,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let mut body = pin!(body);
    let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
    let mut size: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Body(e.into()))?;
        size += chunk.len() as u64;
        if let Some(limit) = opts.max_size.filter(|&limit| size > limit) {
            return Err(Error::TooLarge { limit });
        }
        if buf.is_empty() && chunk.len() >= WRITE_CHUNK {
            sink.write(chunk).await?;
            continue;
        }
        buf.extend_from_slice(&chunk);
        if buf.len() >= WRITE_CHUNK {
            sink.write(buf.split().freeze()).await?;
            buf.reserve(WRITE_CHUNK);
        }
    }
    if !buf.is_empty() {
        sink.write(buf.freeze()).await?;
    }
    let digest = sink.finish().await?;
    if let Some(expected) = opts.expected_sha256.filter(|expected| *expected != digest) {
        return Err(Error::ChecksumMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(digest),
        });
    }
    Ok((size, digest))
}
