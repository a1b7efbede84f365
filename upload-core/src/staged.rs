//! Resumable (staged) uploads: created, appended to at a given offset any
//! number of times, by any process that shares the store, then completed
//! into an object exactly as [`Storage::put`] commits one.
//!
//! The upload's state (offset, length, metadata, expiry and the SHA-256
//! midstate after its last byte) is durable and kept by the backend beside
//! its bytes, so completing an upload never reads its bytes again. The
//! upload's id is the id of the object it becomes.

use std::time::Duration;

use std::pin::pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::checksum::ChunkHasher;
use crate::local::{Claim, LocalSink};
use crate::pipeline::{Hashes, Intake};
use crate::sha256::Sha256State;
use crate::storage::Backend;
use crate::{BoxError, Checksum, Error, FileInfo, FileName, ObjectId, Result, Storage};

/// How long an unfinished upload lives after its last append, unless told otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// What a resumable upload is created with.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// Its size, if known now; else it is declared by a later append.
    pub length: Option<u64>,
    /// The client's file name, kept as metadata only.
    pub filename: Option<FileName>,
    /// The media type to store (checked as [`PutOptions`](crate::PutOptions) checks it).
    pub content_type: Option<String>,
    /// The most bytes the upload may reach.
    pub max_size: Option<u64>,
    /// It expires this long after its creation or its last append.
    pub expire_after: Duration,
    /// A part of a later [concatenation](Storage::concatenate): it never becomes an object itself.
    pub partial: bool,
}

impl Default for NewUpload {
    fn default() -> Self {
        Self {
            length: None,
            filename: None,
            content_type: None,
            max_size: None,
            expire_after: DEFAULT_EXPIRY,
            partial: false,
        }
    }
}

/// Where a resumable upload stands; also what the backend stores of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// The upload's id, and the id of the object it becomes.
    pub id: ObjectId,
    /// Bytes stored so far: where the next append starts.
    pub offset: u64,
    /// The final size, once known.
    pub length: Option<u64>,
    /// The most bytes it may reach.
    pub max_size: Option<u64>,
    /// The client's file name, cleaned.
    pub filename: Option<String>,
    /// Media type.
    pub content_type: String,
    /// Whether it is a part of a concatenation.
    pub partial: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it expires unless appended to.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "crate::units::duration")]
    pub(crate) expire_after: Duration,
    /// SHA-256 of the first `offset` bytes, in progress.
    pub(crate) sha256: Sha256State,
}

impl UploadStatus {
    /// Whether every byte has arrived (`offset` has reached a known `length`).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Counts `size` more bytes, whose SHA-256 runs on to `sha256`, and
    /// extends the expiry.
    fn advance(&mut self, size: u64, sha256: Sha256State) {
        self.offset += size;
        self.sha256 = sha256;
        self.expires_at = OffsetDateTime::now_utc() + self.expire_after;
    }

    pub(crate) fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }

    /// The object this upload becomes, committed now.
    fn file_info(&self) -> FileInfo {
        FileInfo {
            id: self.id,
            filename: self.filename.clone(),
            size: self.offset,
            sha256: hex::encode(self.sha256.finalize()),
            content_type: self.content_type.clone(),
            created_at: OffsetDateTime::now_utc(),
        }
    }
}

/// What an append may carry besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct Append {
    /// The bytes must hash to this, or they are discarded.
    pub checksum: Option<Checksum>,
    /// Declares the upload's length, if it was not known at creation.
    pub length: Option<u64>,
}

/// An append in progress. Dropped before its end with `keep` set, it saves
/// what arrived in the background.
struct Progress {
    intake: Option<Intake<LocalSink>>,
    status: Option<(UploadStatus, Claim)>,
    storage: Storage,
    keep: bool,
}

impl Progress {
    fn intake(&mut self) -> &mut Intake<LocalSink> {
        self.intake.as_mut().expect("taken only when the append ends")
    }

    fn take(&mut self) -> (Intake<LocalSink>, (UploadStatus, Claim)) {
        let intake = self.intake.take().expect("taken once");
        (intake, self.status.take().expect("taken once"))
    }

    async fn abort(mut self) {
        let (intake, _) = self.take();
        intake.abort().await;
    }

    /// Makes what arrived durable and saves the upload's new offset, in the
    /// background: the caller's future may be dropped as soon as its client
    /// is gone, and the save must not stop half-way.
    async fn save(mut self) -> Result<()> {
        let (done, saved) = tokio::sync::oneshot::channel();
        self.save_in_background(done);
        saved.await.unwrap_or_else(|_| Err(Error::Io(std::io::Error::other("save was lost"))))
    }

    fn save_in_background(&mut self, done: tokio::sync::oneshot::Sender<Result<()>>) {
        let (Some(intake), Some((status, claim))) = (self.intake.take(), self.status.take()) else {
            return;
        };
        let (storage, id) = (self.storage.clone(), status.id);
        self.storage.in_background("save", async move {
            let saved = save(&storage, intake, status, claim).await;
            if let Err(e) = &saved {
                log::warn!("could not save what arrived of upload {id}: {e}");
            }
            let _ = done.send(saved);
        });
    }
}

async fn save(
    storage: &Storage,
    mut intake: Intake<LocalSink>,
    mut status: UploadStatus,
    claim: Claim,
) -> Result<()> {
    let received = intake.finish().await?;
    drop(intake);
    if received.size > 0 {
        status.advance(received.size, received.hashes.sha256);
        storage.local_uploads()?.save(&claim, &status).await?;
    }
    Ok(())
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Without `keep` the sink drops its unsaved bytes; the saved state is untouched.
        if self.keep {
            self.save_in_background(tokio::sync::oneshot::channel().0);
        }
    }
}

impl Storage {
    /// Creates a resumable upload at offset 0.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use futures_util::stream;
    /// # use upload_core::{Append, LocalConfig, NewUpload, Storage, StorageConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let config = StorageConfig::Local(LocalConfig::new(dir.path()));
    /// let body = |text: &'static str| stream::iter([Ok::<_, std::io::Error>(Bytes::from(text))]);
    /// let storage = Storage::open(&config).await?;
    /// let upload = storage.create_upload(NewUpload { length: Some(12), ..Default::default() }).await?;
    /// storage.append(&upload.id, 0, body("hello, "), Append::default()).await?;
    ///
    /// // Later, in this process or another one that opens the same root:
    /// drop(storage);
    /// let storage = Storage::open(&config).await?;
    /// let offset = storage.upload_status(&upload.id).await?.offset;
    /// assert_eq!(offset, 7);
    /// storage.append(&upload.id, offset, body("world"), Append::default()).await?;
    /// let info = storage.complete_upload(&upload.id).await?;
    /// assert_eq!((info.id, info.size), (upload.id, 12));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] if `length` is past `max_size`, [`Error::InvalidContentType`],
    /// [`Error::Io`], [`Error::StorageFull`], [`Error::Unavailable`].
    pub async fn create_upload(&self, new: NewUpload) -> Result<UploadStatus> {
        let content_type = crate::PutOptions {
            content_type: new.content_type.clone(),
            ..crate::PutOptions::default()
        }
        .content_type()?;
        if let (Some(length), Some(limit)) = (new.length, new.max_size)
            && length > limit
        {
            return Err(Error::TooLarge { limit });
        }
        let now = OffsetDateTime::now_utc();
        let status = UploadStatus {
            id: ObjectId::new(),
            offset: 0,
            length: new.length,
            max_size: new.max_size,
            filename: new.filename.map(|n| n.as_str().to_owned()),
            content_type,
            partial: new.partial,
            created_at: now,
            expires_at: now + new.expire_after,
            expire_after: new.expire_after,
            sha256: Sha256State::default(),
        };
        match &*self.backend {
            Backend::Local(store) => store.uploads().create(&status).await?,
            Backend::S3(_) => return Err(Error::Unsupported("resumable uploads")),
        }
        Ok(status)
    }

    /// Where the upload stands.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such upload (never created, removed, or
    /// completed: the object then exists under the same id),
    /// [`Error::Expired`], [`Error::Io`].
    pub async fn upload_status(&self, id: &ObjectId) -> Result<UploadStatus> {
        let status = match &*self.backend {
            Backend::Local(store) => store.uploads().status(id).await?,
            Backend::S3(_) => return Err(Error::Unsupported("resumable uploads")),
        };
        if status.is_expired(OffsetDateTime::now_utc()) {
            return Err(Error::Expired(id.to_string()));
        }
        Ok(status)
    }

    /// Appends `body` at `offset`, which must be where the upload stands.
    ///
    /// The new offset is durable when this returns. If `body` fails midway
    /// (the client went away) and the append has no checksum, the bytes
    /// received before are kept and the error returned: the upload goes on
    /// from there. A finished upload is not completed here: call
    /// [`complete_upload`](Self::complete_upload).
    ///
    /// # Errors
    /// [`Error::OffsetMismatch`] with the current offset, [`Error::Locked`]
    /// while another request works on the upload, [`Error::AppendChecksumMismatch`]
    /// (the bytes are discarded), [`Error::TooLarge`] past the length or
    /// `max_size`, [`Error::InvalidUpload`] for a length that cannot be
    /// declared, [`Error::Body`], [`Error::NotFound`], [`Error::Expired`], [`Error::StorageFull`].
    /// On every error but [`Error::Body`] the offset has not moved.
    pub async fn append<S, E>(
        &self,
        id: &ObjectId,
        offset: u64,
        body: S,
        append: Append,
    ) -> Result<UploadStatus>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let store = self.local_uploads()?;
        let claim = store.claim(id)?;
        let mut status = self.upload_status(id).await?;
        if offset != status.offset {
            return Err(Error::OffsetMismatch { offset: status.offset });
        }
        if let Some(length) = append.length {
            match status.length {
                Some(known) if known != length => {
                    return Err(Error::InvalidUpload(format!(
                        "the upload's length is {known} and cannot change"
                    )));
                }
                _ if length < status.offset => {
                    return Err(Error::InvalidUpload(format!(
                        "a length of {length} is less than the {} bytes already stored",
                        status.offset
                    )));
                }
                _ => {}
            }
            if let Some(limit) = status.max_size.filter(|&limit| length > limit) {
                return Err(Error::TooLarge { limit });
            }
            status.length = Some(length);
        }
        let limit = match (status.length, status.max_size) {
            (Some(length), Some(max)) => Some(length.min(max)),
            (length, max) => length.or(max),
        };
        let hashes = Hashes {
            sha256: status.sha256.clone(),
            chunk: append.checksum.as_ref().map(|c| ChunkHasher::new(c.algorithm)),
        };
        let sink = store.resume(&claim, &status).await?;
        let intake = Intake::new(sink, hashes, status.offset, limit);
        // Without a checksum, whatever stops the body (an error, or this
        // future dropped with the client's connection), what arrived is kept.
        let mut progress = Progress {
            intake: Some(intake),
            status: Some((status, claim)),
            storage: self.clone(),
            keep: append.checksum.is_none(),
        };
        let mut body = pin!(body);
        while let Some(chunk) = body.next().await {
            let pushed = match chunk {
                Ok(chunk) => progress.intake().push(chunk).await,
                Err(e) if progress.keep => {
                    progress.save().await?;
                    return Err(Error::Body(e.into()));
                }
                Err(e) => Err(Error::Body(e.into())),
            };
            if let Err(e) = pushed {
                progress.abort().await;
                return Err(e);
            }
        }
        let received = progress.intake().finish().await;
        let (intake, (mut status, claim)) = progress.take();
        drop(intake);
        let received = received?;
        if let (Some(expected), Some(hasher)) = (&append.checksum, received.hashes.chunk)
            && hasher.finalize() != expected.digest
        {
            return Err(Error::AppendChecksumMismatch { algorithm: expected.algorithm.name() });
        }
        status.advance(received.size, received.hashes.sha256);
        store.save(&claim, &status).await?;
        Ok(status)
    }

    /// Makes a finished upload an object, visible atomically with its
    /// [`FileInfo`] (SHA-256 from the saved midstate: no byte is read again).
    ///
    /// # Errors
    /// [`Error::InvalidUpload`] unless every byte has arrived, or for a
    /// partial upload; [`Error::Locked`], [`Error::NotFound`], [`Error::Expired`], [`Error::Io`].
    pub async fn complete_upload(&self, id: &ObjectId) -> Result<FileInfo> {
        let store = self.local_uploads()?;
        let claim = store.claim(id)?;
        let status = self.upload_status(id).await?;
        if status.partial {
            return Err(Error::InvalidUpload(
                "a partial upload becomes a file only through a concatenation".into(),
            ));
        }
        if !status.is_finished() {
            return Err(Error::InvalidUpload(format!(
                "the upload has {} of {} bytes",
                status.offset,
                status.length.map_or_else(|| "an unknown number of".into(), |l| l.to_string())
            )));
        }
        let info = status.file_info();
        store.commit(claim, &info).await?;
        Ok(info)
    }

    /// Removes an unfinished upload and everything stored of it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Locked`], [`Error::Io`].
    pub async fn abort_upload(&self, id: &ObjectId) -> Result<()> {
        let store = self.local_uploads()?;
        let claim = store.claim(id)?;
        store.remove(claim).await
    }

    /// Stores the concatenation of finished partial uploads, in order, as a
    /// new object. The partials stay (they may be concatenated again) until
    /// they expire. The first partial's SHA-256 midstate is taken up, so only
    /// the later partials are read, once, to hash them.
    ///
    /// # Errors
    /// [`Error::InvalidUpload`] if a partial is not partial or not finished,
    /// [`Error::TooLarge`] past `max_size`, [`Error::NotFound`], [`Error::Expired`], [`Error::Io`].
    pub async fn concatenate(
        &self,
        partials: &[ObjectId],
        filename: Option<FileName>,
        content_type: Option<String>,
        max_size: Option<u64>,
    ) -> Result<FileInfo> {
        let store = self.local_uploads()?;
        let content_type =
            crate::PutOptions { content_type, ..crate::PutOptions::default() }.content_type()?;
        if partials.is_empty() {
            return Err(Error::InvalidUpload("a concatenation needs at least one partial".into()));
        }
        let mut parts = Vec::with_capacity(partials.len());
        for id in partials {
            let status = self.upload_status(id).await?;
            if !status.partial || !status.is_finished() {
                return Err(Error::InvalidUpload(format!(
                    "upload {id} is not a finished partial upload"
                )));
            }
            parts.push(status);
        }
        let size: u64 = parts.iter().map(|p| p.offset).sum();
        if let Some(limit) = max_size.filter(|&limit| size > limit) {
            return Err(Error::TooLarge { limit });
        }
        let info = FileInfo {
            id: ObjectId::new(),
            filename: filename.map(|n| n.as_str().to_owned()),
            size,
            sha256: String::new(),
            content_type,
            created_at: OffsetDateTime::now_utc(),
        };
        store.concatenate(parts, info).await
    }

    /// The local store's uploads; the S3 backend's are not built yet.
    fn local_uploads(&self) -> Result<&crate::local::LocalUploads> {
        match &*self.backend {
            Backend::Local(store) => Ok(store.uploads()),
            Backend::S3(_) => Err(Error::Unsupported("resumable uploads")),
        }
    }

    /// Removes the uploads that expired, but for those a request is working
    /// on; returns how many. Nothing else ever removes an unfinished upload
    /// but [`abort_upload`](Self::abort_upload).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Unavailable`].
    pub async fn sweep_expired(&self) -> Result<usize> {
        let removed = match &*self.backend {
            Backend::Local(store) => {
                store.uploads().sweep_expired(OffsetDateTime::now_utc()).await?
            }
            Backend::S3(_) => 0,
        };
        self.expired_removed.fetch_add(removed as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(removed)
    }

    /// How many expired uploads [`sweep_expired`](Self::sweep_expired) removed in this process.
    pub fn expired_uploads_removed(&self) -> u64 {
        self.expired_removed.load(std::sync::atomic::Ordering::Relaxed)
    }
}
