//! What a backend offers for resumable uploads: the core the operations of
//! `ops.rs` are built on, the same for every backend (as tusd's data stores).

use std::future::Future;

use time::OffsetDateTime;

use super::UploadStatus;
use crate::backend::Sink;
use crate::{FileInfo, ObjectId, Result};

/// A backend's resumable uploads.
pub(crate) trait UploadStore: Send + Sync + 'static {
    /// The right to change one upload (append, complete, remove), held by
    /// one request at a time, across every process that shares the store.
    type Claim: Send + 'static;
    /// Where an append's bytes go.
    type Sink: Sink + Send + 'static;

    /// Claims the upload, or fails at once with `Error::Locked` (`Error::NotFound` if there is none).
    fn claim(&self, id: &ObjectId) -> impl Future<Output = Result<Self::Claim>> + Send;

    /// The saved state of the claimed upload (read as the claim was taken, where that is cheaper).
    fn claimed_status(
        &self,
        claim: &Self::Claim,
    ) -> impl Future<Output = Result<UploadStatus>> + Send;

    /// Gives the claim back, before it would lapse by itself.
    fn release(&self, claim: Self::Claim) -> impl Future<Output = ()> + Send;

    /// Stores a new upload's state.
    fn create(&self, status: &UploadStatus) -> impl Future<Output = Result<()>> + Send;

    /// The saved state.
    fn status(&self, id: &ObjectId) -> impl Future<Output = Result<UploadStatus>> + Send;

    /// A sink that appends at `status.offset` a body of `body_length` bytes
    /// if known; dropped or aborted, it leaves the upload as it was saved.
    fn resume(
        &self,
        claim: &Self::Claim,
        status: &UploadStatus,
        body_length: Option<u64>,
    ) -> impl Future<Output = Result<Self::Sink>> + Send;

    /// Saves `status`, whose new bytes `sink` made durable (`finish`ed).
    fn save(
        &self,
        claim: &Self::Claim,
        status: &UploadStatus,
        sink: Self::Sink,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Called once a partial upload has all its bytes, before it is
    /// concatenated: a backend may make them readable as one object then.
    fn seal(
        &self,
        claim: &Self::Claim,
        status: &UploadStatus,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Makes the finished upload the object `info` describes, visible at
    /// once with its metadata, and removes the upload (the claim with it).
    fn commit(
        &self,
        claim: Self::Claim,
        info: &FileInfo,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes the upload and everything stored of it (the claim with it).
    fn remove(&self, claim: Self::Claim) -> impl Future<Output = Result<()>> + Send;

    /// Stores the sealed partials' bytes, in order, as the object `info`
    /// describes (its `sha256` is filled in here).
    fn concatenate(
        &self,
        parts: Vec<UploadStatus>,
        info: FileInfo,
    ) -> impl Future<Output = Result<FileInfo>> + Send;

    /// The uploads whose saved state says they expired by `now`.
    fn expired(&self, now: OffsetDateTime) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
}
