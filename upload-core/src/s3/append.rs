//! One append's way into the bucket: the saved tail first, then the body,
//! cut into parts of exactly `part_size`; what is left becomes the new tail.

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::task::JoinSet;

use super::record::{Part, Record, Tail};
use super::signed::unavailable;
use super::sink::cut_part;
use crate::backend::{Batch, Sink};
use crate::{ObjectId, Result};

/// One append's bytes on their way into the bucket: the saved tail first,
/// then the body; every full part is sent as it fills, at most
/// `concurrency` at once, and what is left becomes the new tail.
pub(crate) struct AppendSink {
    pub(super) store: AmazonS3,
    pub(super) data: Path,
    pub(super) tail_dir: String,
    /// The state as saved before this append.
    pub(super) record: Record,
    pub(super) next_index: usize,
    pub(super) part_size: usize,
    pub(super) concurrency: usize,
    pub(super) pending: Vec<Bytes>,
    pub(super) pending_len: usize,
    pub(super) in_flight: JoinSet<Result<Part>>,
    pub(super) new_parts: Vec<Part>,
    pub(super) new_tail: Option<Tail>,
}

impl AppendSink {
    /// Sends the next `part_size` bytes as a part of their own (a task).
    fn send_part(&mut self) {
        let payload = cut_part(&mut self.pending, &mut self.pending_len, self.part_size);
        let (store, data, index) = (self.store.clone(), self.data.clone(), self.next_index);
        let multipart = self.record.multipart.clone().expect("created before the bytes were taken");
        self.next_index += 1;
        self.in_flight.spawn(async move {
            let size = payload.content_length() as u64;
            let part = store.put_part(&data, &multipart, index, payload).await;
            Ok(Part { index, etag: part.map_err(unavailable)?.content_id, size })
        });
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.in_flight.join_next().await {
            Some(Ok(part)) => self.new_parts.push(part?),
            Some(Err(join)) => return Err(unavailable(join)),
            None => {}
        }
        Ok(())
    }
}

impl Sink for AppendSink {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        let len: usize = batch.iter().map(Bytes::len).sum();
        let parts = (self.pending_len + len) / self.part_size;
        if parts > 0 && self.record.multipart.is_none() {
            let id = self.store.create_multipart(&self.data).await.map_err(unavailable)?;
            self.record.multipart = Some(id);
        }
        // Room first, then the batch is taken with nothing left to wait for:
        // a write dropped while waiting has taken nothing (the intake relies
        // on it), and at most `concurrency` parts are held at any time, the
        // one filling included, as in a one-shot put.
        while !self.in_flight.is_empty() && self.in_flight.len() + parts >= self.concurrency {
            self.join_one().await?;
        }
        self.pending_len += len;
        self.pending.extend(batch.iter().cloned());
        while self.pending_len >= self.part_size {
            self.send_part();
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        if self.pending_len > 0 {
            let key = format!("{}{}", self.tail_dir, ObjectId::new());
            let size = self.pending_len as u64;
            let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
            self.store.put(&Path::from(key.as_str()), payload).await.map_err(unavailable)?;
            self.pending_len = 0;
            self.new_tail = Some(Tail { key, size });
        }
        Ok(())
    }

    /// Unsaved parts are overwritten by the next append's, or aborted with the upload.
    async fn abort(mut self) {
        self.in_flight.shutdown().await;
        if let Some(tail) = self.new_tail.take()
            && let Err(e) = self.store.delete(&Path::from(tail.key.as_str())).await
        {
            log::warn!("could not delete the unsaved tail {}: {e}", tail.key);
        }
    }
}
