//! Streaming, constant-memory file storage that never shows a half-written object.
//!
//! `upload-core` stores byte streams (an HTTP request body, a multipart
//! field, anything that yields `Bytes`) as objects with server-generated,
//! time-sortable ids. It hashes while streaming, enforces size limits and
//! expected checksums, and commits each object atomically with its metadata.
//! It depends on no web framework.
//!
//! ```
//! use bytes::Bytes;
//! use futures_util::stream;
//! use upload_core::{FileName, LocalConfig, PutOptions, Storage, StorageConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let storage = Storage::open(&StorageConfig::Local(LocalConfig::new(dir.path()))).await?;
//!
//! // Any stream of byte chunks: here two chunks that could come off a socket.
//! let body = stream::iter([Ok::<_, std::io::Error>(Bytes::from("hello, ")), Ok(Bytes::from("world"))]);
//! let opts = PutOptions {
//!     filename: Some(FileName::sanitize("../../etc/greeting.txt")?),
//!     max_size: Some(1 << 20),
//!     ..PutOptions::default()
//! };
//! let info = storage.put(body, opts).await?;
//! assert_eq!(info.size, 12);
//! assert_eq!(info.filename.as_deref(), Some("greeting.txt")); // metadata only, never a path
//!
//! let object = storage.get(&info.id, None).await?;
//! assert_eq!(object.info, info);
//! # Ok(())
//! # }
//! ```
//!
//! The same API stores objects in an S3-compatible bucket instead
//! (`StorageConfig::S3(S3Config::new("uploads"))`, credentials and endpoint
//! from the standard `AWS_*` variables): bodies stream into multipart uploads
//! with a bounded number of parts in flight, and the metadata travels with
//! each object, so several processes can share one bucket.
//!
//! Uploads can also be resumable: [`Storage::create_upload`], then any number
//! of [`Storage::append`]s at the upload's offset (each one durable before it
//! returns, with an optional checksum), then [`Storage::complete_upload`],
//! which commits it exactly as `put` commits an object. The upload's state,
//! SHA-256 midstate included, is kept beside its bytes, so a restarted
//! process takes it up where it stood.
//!
//! Every way of storing takes a [`Retention`]: an owner, kept in the
//! [`FileInfo`] (listings can be limited to one, [`Storage::list_owned_by`],
//! and [`Storage::stored_bytes`] counts each owner's bytes), and a lifetime,
//! after which the object is gone for readers at once and removed by
//! [`Storage::sweep_expired_files`]. [`Storage::count_use`] counts uses of
//! anything (a download link) across every process that shares the store.
//!
//! All operations need a Tokio runtime: file I/O runs on its blocking pool,
//! never on the caller's executor thread.

mod backend;
mod background;
mod checksum;
mod damaged;
mod error;
mod expiry;
mod group;
mod id;
mod info;
mod local;
mod media_type;
mod name;
mod offload;
mod pipeline;
mod s3;
mod sha256;
mod staged;
mod storage;
pub mod units;
mod usage;

pub use backend::{Object, ObjectBody, WRITE_CHUNK};
pub use checksum::{Checksum, ChecksumAlgorithm};
pub use error::{BoxError, Error, Result};
pub use expiry::EXPIRY_BATCH;
pub use group::PutGroup;
pub use id::ObjectId;
pub(crate) use info::parse_sha256_hex;
pub use info::{ByteRange, FileInfo, Page, PutOptions, Retention};
pub use local::LocalConfig;
pub(crate) use media_type::DEFAULT_CONTENT_TYPE;
pub use name::FileName;
pub use s3::S3Config;
pub use staged::{Append, DEFAULT_EXPIRY, NewUpload, UploadStatus};
pub use storage::{LEFTOVER_AGE, LIST_SCAN, SWEEP_EVERY, Storage, StorageConfig};
pub use usage::StoredBytes;
