use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backend::{Object, ObjectSink};
use crate::background::Background;
use crate::damaged::DamagedSet;
use crate::local::{LocalConfig, LocalStore};
use crate::pipeline::receive;
use crate::s3::{S3Config, S3Store};
use crate::{BoxError, ByteRange, Error, FileInfo, ObjectId, Page, PutOptions, Result};

/// Which backend stores the objects, as read from settings
/// (`type = "local"`, `root = "./data"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageConfig {
    /// Files on a local file system.
    Local(LocalConfig),
    /// Objects in an S3-compatible store.
    S3(S3Config),
}

/// How often [`Storage::maintain`] sweeps a shared store.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// The age past which no live upload can have left a leftover behind.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 3600);

/// The store: cheap to clone, shared by every request.
///
/// Must be used from within a Tokio runtime (file I/O runs on its blocking pool).
#[derive(Clone, Debug)]
pub struct Storage {
    pub(crate) backend: Arc<Backend>,
    background: Arc<Background>,
    damaged: Arc<DamagedSet>,
    /// Expired resumable uploads this process removed.
    pub(crate) expired_removed: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
pub(crate) enum Backend {
    Local(LocalStore),
    S3(S3Store),
}

impl Storage {
    /// Opens (creating if needed) the store described by `config`.
    ///
    /// The local backend takes an exclusive lock on its root, removes the
    /// temporary files a crash may have left, and reads the ids it holds into
    /// memory, where listings find them.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if another process holds the root, [`Error::Io`]
    /// if it cannot be created.
    pub async fn open(config: &StorageConfig) -> Result<Self> {
        let backend = match config {
            StorageConfig::Local(local) => Backend::Local(LocalStore::open(local.clone()).await?),
            StorageConfig::S3(s3) => Backend::S3(S3Store::open(s3, |var| std::env::var(var).ok())?),
        };
        Ok(Self {
            backend: Arc::new(backend),
            background: Arc::default(),
            damaged: Arc::default(),
            expired_removed: Arc::default(),
        })
    }

    /// Waits for the deletions of dropped [`PutGroup`](crate::PutGroup)s: call it before the
    /// process exits, so that none is lost.
    pub async fn settle(&self) {
        self.background.settle().await;
    }

    /// Runs `work` to its end on a thread with a runtime of its own: the
    /// caller's may be shutting down, which is why it is not waiting for it.
    /// [`settle`](Self::settle) waits for it.
    /// `work` makes the future there, so that it need not be `Send`.
    pub(crate) fn in_background<W, F>(&self, name: &'static str, work: W)
    where
        W: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()>,
    {
        self.background.spawn(name, move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(work()),
                Err(e) => log::error!("cannot start a runtime for {name}: {e}"),
            }
        });
    }

    /// Deletes `ids` in the background (see [`in_background`](Self::in_background)).
    pub(crate) fn delete_in_background(&self, ids: Vec<ObjectId>) {
        let storage = self.clone();
        self.in_background("rollback", move || async move {
            for id in &ids {
                match storage.delete(id).await {
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => log::warn!("could not take back {id} of a dropped group: {e}"),
                }
            }
        });
    }

    /// Streams `body` into a new object and returns what was stored.
    ///
    /// Chunks are grouped into batches of about [`WRITE_CHUNK`](crate::WRITE_CHUNK) bytes, which
    /// are hashed and written on blocking threads while the next ones are
    /// received; at most three batches are held per upload, whatever its
    /// size (on local disk, a body past 64 MiB also holds a 4 MiB buffer for
    /// direct I/O). The object becomes visible only once all of it is durable and
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
            Backend::S3(store) => drive(store.begin(id), body, opts, id, content_type).await,
        }
    }

    /// Opens an object for streaming, whole or the given range.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::RangeNotSatisfiable`], [`Error::Damaged`], [`Error::Io`].
    pub async fn get(&self, id: &ObjectId, range: Option<ByteRange>) -> Result<Object> {
        let result = match &*self.backend {
            Backend::Local(store) => store.get(id, range).await,
            Backend::S3(store) => store.get(id, range).await,
        };
        result.inspect_err(|e| self.damaged.note(e))
    }

    /// An object's metadata.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Damaged`], [`Error::Io`].
    pub async fn head(&self, id: &ObjectId) -> Result<FileInfo> {
        let result = match &*self.backend {
            Backend::Local(store) => store.head(id).await,
            Backend::S3(store) => store.head(id).await,
        };
        result.inspect_err(|e| self.damaged.note(e))
    }

    /// Deletes an object, damaged or not; it disappears at once, its space
    /// is freed just after.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Io`].
    pub async fn delete(&self, id: &ObjectId) -> Result<()> {
        match &*self.backend {
            Backend::Local(store) => store.delete(id).await,
            Backend::S3(store) => store.delete(id).await,
        }?;
        self.damaged.forget(id);
        Ok(())
    }

    /// Up to `limit` objects with ids after `after`, in id (creation) order.
    /// Damaged objects are left out (and logged once, see [`Error::Damaged`]).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub async fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Page> {
        let (page, damaged) = match &*self.backend {
            Backend::Local(store) => store.list(after, limit).await,
            Backend::S3(store) => store.list(after, limit).await,
        }?;
        damaged.iter().for_each(|e| self.damaged.note(e));
        Ok(page)
    }

    /// How many damaged objects this process has met (see [`Error::Damaged`]).
    pub fn damaged_objects(&self) -> usize {
        self.damaged.count()
    }

    /// Removes what crashed processes left in a shared store, once older
    /// than `older_than`; returns how many leftovers it removed. For S3:
    /// staging objects and unfinished multipart uploads (run it now and then,
    /// with an age no live upload reaches, as other replicas may be
    /// uploading). The local backend does this when it opens, as it owns its
    /// root: there this returns 0.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if the store cannot be reached.
    pub async fn sweep(&self, older_than: Duration) -> Result<usize> {
        match &*self.backend {
            Backend::Local(_) => Ok(0),
            Backend::S3(store) => store.sweep(older_than).await,
        }
    }

    /// Removes expired resumable uploads (see [`sweep_expired`](Self::sweep_expired))
    /// every `uploads_every`, and on a shared store sweeps (see [`sweep`](Self::sweep))
    /// every [`SWEEP_EVERY`] what is older than [`LEFTOVER_AGE`], logging what it
    /// removed or could not, until the future is dropped: what a long-running
    /// service spawns once.
    pub async fn maintain(self, uploads_every: Duration) {
        let shared = matches!(*self.backend, Backend::S3(_));
        let mut leftovers_swept: Option<std::time::Instant> = None;
        loop {
            if shared && leftovers_swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                leftovers_swept = Some(std::time::Instant::now());
                match self.sweep(LEFTOVER_AGE).await {
                    Ok(0) => {}
                    Ok(n) => log::info!("removed {n} leftovers of interrupted uploads"),
                    Err(e) => log::warn!("could not sweep leftovers of interrupted uploads: {e}"),
                }
            }
            match self.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => log::info!("removed {n} expired resumable upload(s)"),
                Err(e) => log::warn!("could not remove expired resumable uploads: {e}"),
            }
            tokio::time::sleep(uploads_every.min(SWEEP_EVERY)).await;
        }
    }

    /// Checks that the store accepts writes right now.
    ///
    /// # Errors
    /// The error a write would meet: [`Error::StorageFull`], [`Error::Io`], ...
    pub async fn check_ready(&self) -> Result<()> {
        match &*self.backend {
            Backend::Local(store) => store.check_ready().await,
            Backend::S3(store) => store.check_ready().await,
        }
    }
}

/// The backend-independent part of a put: coalescing, size limit, checksum.
async fn drive<K, S, E>(
    sink: K,
    body: S,
    opts: PutOptions,
    id: ObjectId,
    content_type: String,
) -> Result<FileInfo>
where
    K: ObjectSink,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let (sink, received) = receive(sink, body, opts.max_size).await?;
    let (size, digest) = (received.size, received.hashes.sha256.finalize());
    if let Some(expected) = opts.expected_sha256.filter(|expected| *expected != digest) {
        sink.abort().await;
        return Err(Error::ChecksumMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(digest),
        });
    }
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
