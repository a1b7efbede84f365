//! One upload into S3: one `PUT` when the body fits a part, else a
//! multipart upload with a bounded number of parts in flight, copied with
//! its metadata once complete.

use std::fmt;

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutPayload};
use tokio::task::JoinSet;

use super::metadata::attributes;
use super::signed::{Signed, unavailable};
use crate::backend::{Batch, ObjectSink, Sink};
use crate::{FileInfo, ObjectId, Result};

/// One upload in progress. Parts are sent by tasks of their own, so they go
/// on while the caller waits for more of the body.
pub(crate) struct S3Sink<'a> {
    pub(super) store: &'a AmazonS3,
    pub(super) signed: &'a Signed,
    pub(super) id: ObjectId,
    /// Where a multipart upload is assembled, and where the object ends up.
    pub(super) staging: Path,
    pub(super) target: Path,
    pub(super) part_size: usize,
    pub(super) concurrency: usize,
    /// The part being filled.
    pub(super) pending: Vec<Bytes>,
    pub(super) pending_len: usize,
    /// Started with the first full part.
    pub(super) upload: Option<Box<dyn MultipartUpload>>,
    pub(super) parts: JoinSet<object_store::Result<()>>,
}

impl fmt::Debug for S3Sink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<'a> S3Sink<'a> {
    /// A put of object `id` under `prefix`.
    pub(super) fn new(
        store: &'a AmazonS3,
        signed: &'a Signed,
        id: ObjectId,
        prefix: &str,
        part_size: usize,
        concurrency: usize,
    ) -> Self {
        Self {
            store,
            signed,
            id,
            staging: Path::from(format!("{prefix}incoming/{id}")),
            target: Path::from(format!("{prefix}objects/{id}")),
            part_size,
            concurrency,
            pending: Vec::new(),
            pending_len: 0,
            upload: None,
            parts: JoinSet::new(),
        }
    }
}

impl S3Sink<'_> {
    /// Starts the multipart upload, unless it has been.
    async fn start(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let upload = self
                .store
                .put_multipart_opts(&self.staging, PutMultipartOptions::default())
                .await
                .map_err(unavailable)?;
            self.upload = Some(upload);
        }
        Ok(())
    }

    /// Sends the pending bytes as the next part (a task).
    fn send_part(&mut self) {
        let payload = self.take_part();
        let upload = self.upload.as_mut().expect("started before the bytes were taken");
        self.parts.spawn(upload.put_part(payload));
    }

    /// The next part: exactly `part_size` bytes (or what is left).
    fn take_part(&mut self) -> PutPayload {
        cut_part(&mut self.pending, &mut self.pending_len, self.part_size)
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.parts.join_next().await {
            Some(Ok(result)) => result.map_err(unavailable),
            Some(Err(join)) => Err(unavailable(join)),
            None => Ok(()),
        }
    }

    async fn abort_upload(&mut self) {
        self.parts.shutdown().await;
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            log::warn!("could not abort the multipart upload of {}: {e}", self.id);
        }
    }
}

/// The first `size` bytes of `pending` (or all of them), cut from its
/// chunks without copying.
pub(super) fn cut_part(
    pending: &mut Vec<Bytes>,
    pending_len: &mut usize,
    size: usize,
) -> PutPayload {
    let mut want = size.min(*pending_len);
    *pending_len -= want;
    let mut part = Vec::new();
    let mut rest = std::mem::take(pending).into_iter();
    for mut piece in rest.by_ref() {
        if piece.len() > want {
            part.push(piece.split_to(want));
            pending.push(piece);
            break;
        }
        want -= piece.len();
        part.push(piece);
    }
    pending.extend(rest);
    part.into_iter().collect()
}

impl Sink for S3Sink<'_> {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        let len: usize = batch.iter().map(Bytes::len).sum();
        // Strictly more than a part: a body of exactly one part is one PUT.
        let parts = (self.pending_len + len).saturating_sub(1) / self.part_size;
        if parts > 0 {
            self.start().await?;
        }
        // Room first (backpressure), then the batch is taken with nothing left
        // to wait for: at most `concurrency` parts are held at any time, the
        // one filling included.
        while !self.parts.is_empty() && self.parts.len() + parts >= self.concurrency {
            self.join_one().await?;
        }
        self.pending_len += len;
        self.pending.extend(batch.iter().cloned());
        while self.pending_len > self.part_size {
            self.send_part();
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        if self.upload.is_some() {
            while self.pending_len > 0 {
                while self.parts.len() >= self.concurrency {
                    self.join_one().await?;
                }
                self.send_part();
            }
            while !self.parts.is_empty() {
                self.join_one().await?;
            }
        }
        Ok(())
    }

    async fn abort(mut self) {
        self.abort_upload().await;
    }
}

impl ObjectSink for S3Sink<'_> {
    async fn commit(mut self, info: &FileInfo) -> Result<()> {
        let target = self.target.clone();
        let Some(upload) = self.upload.as_mut() else {
            // Small enough for one PUT, which sets the metadata directly.
            let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
            let opts = object_store::PutOptions::from(attributes(info));
            self.store.put_opts(&target, payload, opts).await.map_err(unavailable)?;
            return Ok(());
        };
        if let Err(e) = upload.complete().await {
            self.abort_upload().await;
            return Err(unavailable(e));
        }
        self.upload = None;
        let staging = &self.staging;
        let copied = self.signed.copy_with_metadata(staging, &target, info).await;
        if let Err(e) = self.store.delete(staging).await {
            log::warn!("could not delete the staging object {staging}: {e}");
        }
        copied
    }
}

impl Drop for S3Sink<'_> {
    // A dropped put (client gone, server shutting down) must not leave parts
    // the store keeps and bills: abort the upload in the background.
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            self.parts.abort_all();
            let id = self.id;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        log::warn!("could not abort the multipart upload of {id}: {e}");
                    }
                });
            }
        }
    }
}
