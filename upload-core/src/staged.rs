//! Resumable (staged) uploads: created, appended to at a given offset any
//! number of times, by any process that shares the store, then completed
//! into an object exactly as [`Storage::put`] commits one.
//!
//! The upload's state (offset, length, metadata, expiry and the SHA-256
//! midstate after its last byte) is durable and kept by the backend beside
//! its bytes, so completing an upload never reads its bytes again. The
//! upload's id is the id of the object it becomes.

use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::backend::Sink;
use crate::checksum::ChunkHasher;
use crate::pipeline::{Cut, Hashes, receive};
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

impl Storage {
    /// Creates a resumable upload at offset 0.
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
        let mut sink = store.resume(&claim, &status).await?;
        let keep_partial = append.checksum.is_none();
        let (received, failure) =
            match receive(&mut sink, body, hashes, status.offset, limit, keep_partial).await {
                Ok(received) => (received, None),
                Err(Cut::Partial(received, e)) => (*received, Some(e)),
                Err(Cut::Failed(e)) => {
                    sink.abort().await;
                    return Err(e);
                }
            };
        drop(sink);
        if let (Some(expected), Some(hasher)) = (&append.checksum, received.hashes.chunk)
            && hasher.finalize() != expected.digest
        {
            return Err(Error::AppendChecksumMismatch { algorithm: expected.algorithm.name() });
        }
        status.offset += received.size;
        status.sha256 = received.hashes.sha256;
        status.expires_at = OffsetDateTime::now_utc() + status.expire_after;
        store.save(&claim, &status).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(status),
        }
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

    /// Removes the uploads that expired; returns how many.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Unavailable`].
    pub async fn sweep_expired(&self) -> Result<usize> {
        match &*self.backend {
            Backend::Local(store) => store.uploads().sweep_expired(OffsetDateTime::now_utc()).await,
            Backend::S3(_) => Ok(0),
        }
    }
}
