//! Resumable uploads in the bucket, shared by every replica: nothing is
//! kept in a process between two requests.
//!
//! Under `uploads/<id>/`:
//! - `state`: the upload's state and where its bytes are (JSON);
//! - `data`: its multipart upload. Appends are cut into parts of exactly
//!   `part_size` bytes (stores that want equal parts take them), sent as
//!   they fill, and listed in `state` with their ETags;
//! - `tail/<n>`: the bytes past the last whole part (less than a part),
//!   kept durably as an object until later appends fill a part;
//! - `lock/<n>`: leases. Garage 2.5 ignores `If-Match`/`If-None-Match` on
//!   `PUT`, so the state cannot be compare-and-swapped: a request that
//!   would change an upload writes a lease, lists the leases, and goes on
//!   only if its own is the only live one (two at once both see each other
//!   and both back off with `Locked`). A lease lapses `LEASE_TTL` after it
//!   was last renewed, so one held by a killed replica frees the upload.
//!
//! A replica keeps the states it saved last, by their ETags: the lease's
//! listing shows the state's ETag, and when it is the one this replica
//! saved, the claim needs no `GET` of the state (an ETag names the content).
//!
//! A completed upload becomes `objects/<id>` as a one-shot put does: the
//! multipart upload completes under `uploads/<id>/data` and is copied
//! server-side with its metadata (S3 fixes metadata when an upload starts,
//! before the SHA-256 is known). On Garage the copy shares the blocks; on
//! AWS it is a copy inside the store (no byte passes through the service).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::append::AppendSink;
use super::lease::Lease;
use super::metadata::attributes;
use super::record::{Record, Tail};
use super::saved::{Saved, unquoted};
use super::signed::{Signed, unavailable};
use super::sink::S3Sink;
use crate::backend::{ObjectSink, Sink};
use crate::pipeline::receive;
use crate::staged::{UploadStatus, UploadStore};
use crate::{Error, FileInfo, ObjectId, Result};

/// The state read when `lease` was taken.
fn claimed(lease: &Lease) -> Result<&Record> {
    let missing = || Error::Io(std::io::Error::other("a lease taken without its state"));
    lease.record.as_ref().ok_or_else(missing)
}

/// The state is small; a bigger object is not ours.
const STATE_MAX: usize = 1 << 20;

/// The bucket's resumable uploads.
pub(crate) struct S3Uploads {
    pub(super) store: AmazonS3,
    pub(super) signed: Arc<Signed>,
    pub(super) prefix: String,
    pub(super) part_size: usize,
    pub(super) concurrency: usize,
    pub(super) saved: Saved,
}

impl std::fmt::Debug for S3Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Uploads").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl S3Uploads {
    fn path(&self, id: &ObjectId, name: &str) -> Path {
        Path::from(format!("{}uploads/{id}/{name}", self.prefix))
    }

    fn dir(&self, id: &ObjectId) -> String {
        format!("{}uploads/{id}/", self.prefix)
    }

    async fn read(&self, id: &ObjectId) -> Result<Record> {
        let result = self.store.get(&self.path(id, "state")).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound(id.to_string()),
            e => unavailable(e),
        })?;
        let bytes = result.bytes().await.map_err(unavailable)?;
        let damaged = |reason: String| Error::Damaged { id: id.to_string(), reason };
        if bytes.len() > STATE_MAX {
            return Err(damaged(format!("its state is larger than {STATE_MAX} bytes")));
        }
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|e| damaged(format!("state: {e}")))?;
        if record.status.id != *id || record.status.sha256.len() != record.status.offset {
            return Err(damaged("its state does not describe it".into()));
        }
        Ok(record)
    }

    async fn write(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        let id = record.status.id;
        let put = self.store.put(&self.path(&id, "state"), json.into()).await;
        // A failed PUT may still have replaced the state: forget it.
        let etag = put.as_ref().ok().and_then(|put| put.e_tag.as_deref().map(unquoted));
        self.saved.put(id, etag, record);
        put.map_err(unavailable)?;
        Ok(())
    }

    /// The state, from memory if the listing shows the one this replica saved.
    async fn claimed_record(&self, lease: &Lease) -> Result<Record> {
        let state = self.path(&lease.id, "state");
        let listed = lease.seen.iter().find(|meta| meta.location == state);
        let etag = listed.and_then(|meta| meta.e_tag.as_deref().map(unquoted));
        match etag.and_then(|etag| self.saved.get(&lease.id, &etag)) {
            Some(record) => Ok(record),
            None => self.read(&lease.id).await,
        }
    }

    /// The tail's bytes, in memory (less than a part).
    async fn tail_bytes(&self, tail: Option<&Tail>) -> Result<Vec<Bytes>> {
        let Some(tail) = tail else { return Ok(Vec::new()) };
        let result = self.store.get(&Path::from(tail.key.as_str())).await.map_err(unavailable)?;
        let bytes = result.bytes().await.map_err(unavailable)?;
        if bytes.len() as u64 != tail.size {
            return Err(Error::Unavailable(format!("{} is not {} bytes", tail.key, tail.size)));
        }
        Ok(vec![bytes])
    }

    /// Sends `payload` as the last part and completes the multipart upload
    /// of `data`; without one, `data` is a single `PUT`.
    async fn complete_data(&self, record: &Record, payload: PutPayload) -> Result<()> {
        let data = self.path(&record.status.id, "data");
        let Some(multipart) = &record.multipart else {
            self.store.put(&data, payload).await.map_err(unavailable)?;
            return Ok(());
        };
        let mut parts: Vec<PartId> =
            record.parts.iter().map(|p| PartId { content_id: p.etag.clone() }).collect();
        if payload.content_length() > 0 {
            let index = record.parts.len();
            let part = self.store.put_part(&data, multipart, index, payload).await;
            parts.push(part.map_err(unavailable)?);
        }
        self.store.complete_multipart(&data, multipart, parts).await.map_err(unavailable)?;
        Ok(())
    }

    /// Deletes everything under `uploads/<id>/` and aborts its multipart uploads.
    async fn remove_all(&self, id: &ObjectId) -> Result<()> {
        self.saved.forget(id);
        let dir = self.dir(id);
        for upload in self.signed.multipart_uploads(&dir).await? {
            self.signed.abort_multipart(&upload).await?;
        }
        let keys: Vec<Path> = self
            .store
            .list(Some(&Path::from(dir.as_str())))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(unavailable)?;
        // The state first: from then on the upload is gone, whatever is left.
        let state = self.path(id, "state");
        if keys.contains(&state) {
            self.store.delete(&state).await.map_err(unavailable)?;
        }
        for key in keys.iter().filter(|k| **k != state) {
            self.store.delete(key).await.map_err(unavailable)?;
        }
        Ok(())
    }
}

impl UploadStore for S3Uploads {
    type Claim = Lease;
    type Sink = AppendSink;

    async fn claim(&self, id: &ObjectId) -> Result<Lease> {
        let mut lease = Lease::acquire(&self.store, id, &self.dir(id), "lock/").await?;
        match self.claimed_record(&lease).await {
            Ok(record) => {
                lease.record = Some(record);
                Ok(lease)
            }
            Err(e) => {
                lease.release().await;
                Err(e)
            }
        }
    }

    async fn claimed_status(&self, lease: &Lease) -> Result<UploadStatus> {
        Ok(claimed(lease)?.status.clone())
    }

    async fn release(&self, lease: Lease) {
        lease.release().await;
    }

    async fn create(&self, status: &UploadStatus) -> Result<()> {
        let record = Record {
            status: status.clone(),
            multipart: None,
            parts: vec![],
            tail: None,
            sealed: false,
        };
        self.write(&record).await
    }

    async fn status(&self, id: &ObjectId) -> Result<UploadStatus> {
        Ok(self.read(id).await?.status)
    }

    async fn resume(
        &self,
        lease: &Lease,
        status: &UploadStatus,
        body_length: Option<u64>,
    ) -> Result<AppendSink> {
        let record = claimed(lease)?.clone();
        let pending = self.tail_bytes(record.tail.as_ref()).await?;
        let pending_len = pending.iter().map(Bytes::len).sum();
        Ok(AppendSink {
            store: self.store.clone(),
            signed: Arc::clone(&self.signed),
            data: self.path(&status.id, "data"),
            tail_dir: self.dir(&status.id) + "tail/",
            next_index: record.parts.len(),
            record,
            part_size: self.part_size,
            concurrency: self.concurrency,
            pending,
            pending_len,
            to_come: body_length,
            streamed: None,
            cut: None,
            in_flight: JoinSet::new(),
            new_parts: Vec::new(),
            new_tail: None,
        })
    }

    async fn save(&self, _lease: &Lease, status: &UploadStatus, sink: AppendSink) -> Result<()> {
        let old_tail = sink.record.tail.clone();
        let mut record = sink.record.clone();
        record.status = status.clone();
        record.parts.extend(sink.new_parts.iter().cloned());
        record.parts.sort_by_key(|p| p.index);
        record.tail = sink.new_tail.clone();
        self.write(&record).await?;
        if let Some(old) = old_tail
            && let Err(e) = self.store.delete(&Path::from(old.key.as_str())).await
        {
            log::warn!("could not delete the old tail {}: {e}", old.key);
        }
        Ok(())
    }

    async fn seal(&self, _lease: &Lease, status: &UploadStatus) -> Result<()> {
        let mut record = self.read(&status.id).await?;
        if record.sealed {
            return Ok(());
        }
        let tail = self.tail_bytes(record.tail.as_ref()).await?;
        self.complete_data(&record, tail.into_iter().collect()).await?;
        let old_tail = record.tail.take();
        (record.multipart, record.parts, record.sealed) = (None, Vec::new(), true);
        self.write(&record).await?;
        if let Some(old) = old_tail {
            let _ = self.store.delete(&Path::from(old.key.as_str())).await;
        }
        Ok(())
    }

    async fn commit(&self, lease: Lease, info: &FileInfo) -> Result<()> {
        let record = claimed(&lease)?.clone();
        let target = Path::from(format!("{}objects/{}", self.prefix, info.id));
        let data = self.path(&info.id, "data");
        if record.multipart.is_none() && !record.sealed {
            // Less than a part in all: one PUT, which sets the metadata directly.
            let tail: PutPayload =
                self.tail_bytes(record.tail.as_ref()).await?.into_iter().collect();
            let opts = object_store::PutOptions::from(attributes(info));
            self.store.put_opts(&target, tail, opts).await.map_err(unavailable)?;
        } else {
            if !record.sealed {
                let tail = self.tail_bytes(record.tail.as_ref()).await?;
                self.complete_data(&record, tail.into_iter().collect()).await?;
            }
            self.signed.copy_with_metadata(&data, &target, info).await?;
        }
        self.remove_all(&info.id).await?;
        drop(lease);
        Ok(())
    }

    async fn remove(&self, lease: Lease) -> Result<()> {
        self.remove_all(&lease.id).await?;
        drop(lease);
        Ok(())
    }

    /// Reads the sealed partials once, one after another, into a new object
    /// through the put path, which hashes them all.
    async fn concatenate(&self, parts: Vec<UploadStatus>, mut info: FileInfo) -> Result<FileInfo> {
        let mut streams = Vec::new();
        for part in &parts {
            let path = self.path(&part.id, "data");
            let result = self.store.get(&path).await.map_err(unavailable)?;
            streams.push(result.into_stream());
        }
        let body = futures_util::stream::iter(streams).flatten();
        let sink = S3Sink::new(
            &self.store,
            &self.signed,
            info.id,
            &self.prefix,
            self.part_size,
            self.concurrency,
        );
        let (sink, received) = receive(sink, body, None).await?;
        if received.size != info.size {
            sink.abort().await;
            return Err(Error::Unavailable(format!(
                "the partials hold {} bytes, not {}",
                received.size, info.size
            )));
        }
        info.sha256 = hex::encode(received.hashes.sha256.finalize());
        sink.commit(&info).await?;
        Ok(info)
    }

    async fn expired(&self, now: OffsetDateTime) -> Result<Vec<ObjectId>> {
        let dir = Path::from(format!("{}uploads", self.prefix));
        let ids: Vec<ObjectId> = self
            .store
            .list(Some(&dir))
            .try_filter_map(async |meta| {
                let mut parts = meta.location.parts();
                let is_state = parts.next_back().is_some_and(|p| p.as_ref() == "state");
                Ok(parts
                    .next_back()
                    .and_then(|p| p.as_ref().parse::<ObjectId>().ok())
                    .filter(|_| is_state))
            })
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut expired = Vec::new();
        for id in ids {
            match self.read(&id).await {
                Ok(record) if record.status.is_expired(now) => expired.push(id),
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => log::warn!("cannot tell whether upload {id} expired: {e}"),
            }
        }
        Ok(expired)
    }
}
