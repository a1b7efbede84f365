//! What a resumable upload's `state` object holds: its status and where
//! its bytes are.

use serde::{Deserialize, Serialize};

use crate::staged::UploadStatus;

/// What `state` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) status: UploadStatus,
    /// The multipart upload of `data`, once a part was sent.
    #[serde(default)]
    pub(super) multipart: Option<String>,
    #[serde(default)]
    pub(super) parts: Vec<Part>,
    /// The bytes past the last part.
    #[serde(default)]
    pub(super) tail: Option<Tail>,
    /// A finished partial upload whose bytes are the object `data`.
    #[serde(default)]
    pub(super) sealed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Part {
    /// object_store's part index (the S3 part number less one).
    pub(super) index: usize,
    pub(super) etag: String,
    pub(super) size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Tail {
    pub(super) key: String,
    pub(super) size: u64,
}
