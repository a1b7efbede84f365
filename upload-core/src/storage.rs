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

/// The most objects one listing request reads, whatever it keeps.
pub const LIST_SCAN: usize = 1000;

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
    /// Expired objects this process removed.
    pub(crate) expired_files: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes stored, per owner.
    pub(crate) usage: Arc<crate::usage::Usage>,
}

/// Runs `$body` with `$part` bound to the part of that name (`uploads`,
/// `marks`) of whichever backend `$storage` has: the parts of the two
/// backends offer the same methods but are different types.
macro_rules! on_backend {
    ($storage:expr, $part:ident => $body:expr) => {
        match &*$storage.backend {
            $crate::storage::Backend::Local(store) => {
                let $part = store.$part();
                $body
            }
            $crate::storage::Backend::S3(store) => {
                let $part = store.$part();
                $body
            }
        }
    };
}
pub(crate) use on_backend;

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
        let storage = Self {
            backend: Arc::new(backend),
            background: Arc::default(),
            damaged: Arc::default(),
            expired_removed: Arc::default(),
            expired_files: Arc::default(),
            usage: Arc::default(),
        };
        if matches!(*storage.backend, Backend::Local(_)) {
            // The root is this process's: one count now, kept up to date after.
            storage.recount().await?;
        }
        Ok(storage)
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
    /// [`Error::Io`]. In every case, and when
    /// the returned future is dropped early, nothing is stored and no
    /// temporary file remains.
    pub async fn put<S, E>(&self, body: S, opts: PutOptions) -> Result<FileInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let content_type = crate::media_type::normalize(opts.content_type.as_deref());
        let id = ObjectId::new();
        match &*self.backend {
            Backend::Local(store) => {
                drive(self, store.begin(id).await?, body, opts, id, content_type).await
            }
            Backend::S3(store) => drive(self, store.begin(id), body, opts, id, content_type).await,
        }
    }

    /// Opens an object for streaming, whole or the given range. An expired
    /// object is [`Error::NotFound`] from the moment it expires.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::RangeNotSatisfiable`], [`Error::Damaged`], [`Error::Io`].
    pub async fn get(&self, id: &ObjectId, range: Option<ByteRange>) -> Result<Object> {
        let result = match &*self.backend {
            Backend::Local(store) => store.get(id, range).await,
            Backend::S3(store) => store.get(id, range).await,
        };
        let object = result.inspect_err(|e| self.damaged.note(e))?;
        live(object.info.is_expired(OffsetDateTime::now_utc()), id)?;
        Ok(object)
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
        let info = result.inspect_err(|e| self.damaged.note(e))?;
        live(info.is_expired(OffsetDateTime::now_utc()), id)?;
        Ok(info)
    }

    /// Deletes an object, damaged or not; it disappears at once, its space
    /// is freed just after.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Io`].
    pub async fn delete(&self, id: &ObjectId) -> Result<()> {
        // What it held, for the usage counts (not for a damaged one, whose size is unknown).
        let info = match &*self.backend {
            Backend::Local(store) => {
                let info = store.head(id).await.ok();
                store.delete(id).await?;
                info
            }
            Backend::S3(store) => {
                // S3 deletes are idempotent: this one read also says whether it was there.
                let info = match store.head(id).await {
                    Ok(info) => Some(info),
                    Err(Error::Damaged { .. }) => None,
                    Err(e) => return Err(e),
                };
                store.remove(id).await?;
                info
            }
        };
        if let Some(info) = info {
            self.usage.removed(&info);
        }
        self.damaged.forget(id);
        Ok(())
    }

    /// Up to `limit` objects with ids after `after`, in id (creation) order.
    /// Damaged and expired objects are left out (damaged ones are logged
    /// once, see [`Error::Damaged`]). Like [`list_owned_by`](Self::list_owned_by),
    /// a page may hold fewer than `limit` objects while `next` is set.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub async fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Page> {
        self.list_where(after, limit, |_| true).await
    }

    /// Like [`list`](Self::list), only the objects whose [`FileInfo::owner`] is `owner`.
    ///
    /// A request reads at most [`LIST_SCAN`] objects (or `limit`, if more),
    /// so a page may hold fewer than `limit` objects, none even, while
    /// `next` is set: the listing ends when `next` is `None`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub async fn list_owned_by(
        &self,
        owner: &str,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<Page> {
        self.list_where(after, limit, |info| info.owner.as_deref() == Some(owner)).await
    }

    async fn list_where(
        &self,
        mut after: Option<ObjectId>,
        limit: usize,
        wanted: impl Fn(&FileInfo) -> bool,
    ) -> Result<Page> {
        let limit = limit.max(1);
        let now = OffsetDateTime::now_utc();
        let (mut files, mut scanned) = (Vec::new(), 0);
        // A page of exactly `limit` first (each object read costs a HEAD on S3); once
        // some are filtered out, bigger ones, so a sparse owner costs few round trips.
        let mut page_size = limit;
        loop {
            let (page, damaged) = match &*self.backend {
                Backend::Local(store) => store.list(after, page_size).await,
                Backend::S3(store) => store.list(after, page_size).await,
            }?;
            damaged.iter().for_each(|e| self.damaged.note(e));
            scanned += page_size;
            page_size = limit.clamp(100, LIST_SCAN);
            for info in page.files {
                if files.len() == limit {
                    // Full before this page ended: the next page starts after the last one kept.
                    let next = files.last().map(|info: &FileInfo| info.id);
                    return Ok(Page { files, next });
                }
                if wanted(&info) && !info.is_expired(now) {
                    files.push(info);
                }
            }
            after = page.next;
            if after.is_none() || files.len() == limit || scanned >= LIST_SCAN.max(limit) {
                return Ok(Page { files, next: after });
            }
        }
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
    /// every `uploads_every` and expired objects (see
    /// [`sweep_expired_files`](Self::sweep_expired_files)) every `files_every`, and on a
    /// shared store sweeps (see [`sweep`](Self::sweep)) every [`SWEEP_EVERY`] what is
    /// older than [`LEFTOVER_AGE`], logging what it removed or could not, until
    /// the future is dropped: what a long-running service spawns once. A shared store's
    /// usage ([`stored_bytes`](Self::stored_bytes)) is counted again at the same pace.
    pub async fn maintain(self, uploads_every: Duration, files_every: Duration) {
        let shared = matches!(*self.backend, Backend::S3(_));
        let tasks = [(SWEEP_EVERY, 0), (uploads_every, 1), (files_every, 2)];
        let mut last_run: [Option<std::time::Instant>; 3] = [None; 3];
        loop {
            for (every, task) in tasks {
                if last_run[task].is_some_and(|at| at.elapsed() < every) {
                    continue;
                }
                last_run[task] = Some(std::time::Instant::now());
                let (what, result) = match task {
                    0 if !shared => continue,
                    0 => {
                        // Other replicas store and delete too: count again, from the store.
                        if let Err(e) = self.recount().await {
                            log::warn!("could not count the bytes stored: {e}");
                        }
                        ("leftovers of interrupted uploads", self.sweep(LEFTOVER_AGE).await)
                    }
                    1 => ("expired resumable uploads", self.sweep_expired().await),
                    _ => ("expired files", self.sweep_expired_files().await),
                };
                match result {
                    Ok(0) => {}
                    Ok(n) => log::info!("removed {n} {what}"),
                    Err(e) => log::warn!("could not remove {what}: {e}"),
                }
            }
            tokio::time::sleep(uploads_every.min(files_every).min(SWEEP_EVERY)).await;
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

/// An expired object is gone for its readers, swept or not.
fn live(expired: bool, id: &ObjectId) -> Result<()> {
    if expired { Err(Error::NotFound(id.to_string())) } else { Ok(()) }
}

/// The backend-independent part of a put: coalescing, size limit, checksum.
async fn drive<K, S, E>(
    storage: &Storage,
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
    let filename = opts.filename.map(|name| name.as_str().to_owned());
    let info = opts.retention.file_info(id, filename, size, hex::encode(digest), content_type);
    if let Err(e) = storage.mark_expiry(&info).await {
        sink.abort().await;
        return Err(e);
    }
    sink.commit(&info).await?;
    storage.usage.added(&info);
    Ok(info)
}
