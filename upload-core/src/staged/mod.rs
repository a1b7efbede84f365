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

mod ops;
mod store;

pub(crate) use store::UploadStore;

use crate::sha256::Sha256State;
use crate::storage::on_backend;
use crate::{BoxError, Checksum, Error, FileInfo, FileName, ObjectId, Result, Retention, Storage};

/// How long an unfinished upload lives after its last append, unless told otherwise.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// What a resumable upload is created with.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// Its size, if known now; else it is declared by a later append.
    pub length: Option<u64>,
    /// The client's file name, kept as metadata only.
    pub filename: Option<FileName>,
    /// The media type, normalised as [`PutOptions::content_type`](crate::PutOptions::content_type) is.
    pub content_type: Option<String>,
    /// The most bytes the upload may reach.
    pub max_size: Option<u64>,
    /// It expires this long after its creation or its last append.
    pub expire_after: Duration,
    /// A part of a later [concatenation](Storage::concatenate): it never becomes an object itself.
    pub partial: bool,
    /// The owner and lifetime of the object it becomes.
    pub retention: Retention,
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
            retention: Retention::default(),
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
    /// The owner and lifetime of the object it becomes.
    #[serde(default)]
    pub retention: Retention,
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
    pub(crate) fn advance(&mut self, size: u64, sha256: Sha256State) {
        self.offset += size;
        self.sha256 = sha256;
        self.expires_at = OffsetDateTime::now_utc() + self.expire_after;
    }

    pub(crate) fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }

    /// The object this upload becomes, committed now.
    pub(crate) fn file_info(&self) -> FileInfo {
        self.retention.file_info(
            self.id,
            self.filename.clone(),
            self.offset,
            hex::encode(self.sha256.finalize()),
            self.content_type.clone(),
        )
    }
}

/// What an append may carry besides its bytes.
#[derive(Clone, Debug, Default)]
pub struct Append {
    /// The bytes must hash to this, or they are discarded.
    pub checksum: Option<Checksum>,
    /// Declares the upload's length, if it was not known at creation.
    pub length: Option<u64>,
    /// Only an upload this owner's ([`Retention::owner`]) is appended to;
    /// any other is refused with [`Error::NotOwner`] before a byte is read.
    /// `None`: any upload. Checked with the upload claimed, so a caller's
    /// access check costs no read of its own.
    pub owner: Option<String>,
    /// The body's length, if known (an HTTP `Content-Length`): on S3, each
    /// whole part it completes is then sent while its bytes arrive, not
    /// after its last. A body that ends sooner keeps what arrived, as any
    /// interrupted append does.
    pub body_length: Option<u64>,
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
    /// [`Error::TooLarge`] if `length` is past `max_size`,
    /// [`Error::Io`], [`Error::StorageFull`], [`Error::Unavailable`].
    pub async fn create_upload(&self, new: NewUpload) -> Result<UploadStatus> {
        let content_type = crate::media_type::normalize(new.content_type.as_deref());
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
            retention: new.retention,
            sha256: Sha256State::default(),
        };
        on_backend!(self, uploads => uploads.create(&status).await)?;
        Ok(status)
    }

    /// Where the upload stands.
    ///
    /// # Errors
    /// [`Error::NotFound`] for no such upload (never created, removed, or
    /// completed: the object then exists under the same id),
    /// [`Error::Expired`], [`Error::Io`].
    pub async fn upload_status(&self, id: &ObjectId) -> Result<UploadStatus> {
        on_backend!(self, uploads => ops::status(&**uploads, id).await)
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
        on_backend!(self, uploads => ops::append(self, uploads, id, offset, body, append).await)
    }

    /// Makes a finished upload an object, visible atomically with its
    /// [`FileInfo`] (SHA-256 from the saved midstate: no byte is read again).
    ///
    /// # Errors
    /// [`Error::InvalidUpload`] unless every byte has arrived, or for a
    /// partial upload; [`Error::Locked`], [`Error::NotFound`], [`Error::Expired`], [`Error::Io`].
    pub async fn complete_upload(&self, id: &ObjectId) -> Result<FileInfo> {
        let info = on_backend!(self, uploads => ops::complete(self, &**uploads, id).await)?;
        self.usage.added(&info);
        Ok(info)
    }

    /// Removes an unfinished upload and everything stored of it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Locked`], [`Error::Io`].
    pub async fn abort_upload(&self, id: &ObjectId) -> Result<()> {
        on_backend!(self, uploads => ops::abort(&**uploads, id).await)
    }

    /// Stores the concatenation of finished partial uploads, in order, as a
    /// new object. The partials stay (they may be concatenated again) until
    /// they expire. On local disk the first partial's SHA-256 midstate is
    /// taken up and its bytes copied by the kernel, so only the later
    /// partials are read, once, to hash them; on S3 every partial is read
    /// once, through the same path as a put (a partial's parts cannot be read
    /// before its multipart upload completes, which happens when its last
    /// byte arrives).
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
        retention: &Retention,
    ) -> Result<FileInfo> {
        let content_type = crate::media_type::normalize(content_type.as_deref());
        let filename = filename.map(|n| n.as_str().to_owned());
        let info = retention.file_info(ObjectId::new(), filename, 0, String::new(), content_type);
        let info = on_backend!(self, uploads => ops::concatenate(self, &**uploads, partials, info, max_size).await)?;
        self.usage.added(&info);
        Ok(info)
    }

    /// Removes the uploads that expired, but for those a request is working
    /// on; returns how many. Nothing else ever removes an unfinished upload
    /// but [`abort_upload`](Self::abort_upload).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Unavailable`].
    pub async fn sweep_expired(&self) -> Result<usize> {
        let removed = on_backend!(self, uploads => ops::sweep_expired(&**uploads).await)?;
        self.expired_removed.fetch_add(removed as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(removed)
    }

    /// How many expired uploads [`sweep_expired`](Self::sweep_expired) removed in this process.
    pub fn expired_uploads_removed(&self) -> u64 {
        self.expired_removed.load(std::sync::atomic::Ordering::Relaxed)
    }
}
