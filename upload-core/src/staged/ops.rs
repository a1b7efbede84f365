//! The operations on resumable uploads, written once over [`UploadStore`]:
//! the checks, the append pipeline and what an interrupted append keeps.

use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use time::OffsetDateTime;

use super::store::UploadStore;
use super::{Append, UploadStatus};
use crate::checksum::ChunkHasher;
use crate::pipeline::{Hashes, Intake};
use crate::{BoxError, Error, FileInfo, ObjectId, Result, Storage};

/// The saved state, unless expired.
pub(super) async fn status<U: UploadStore>(uploads: &U, id: &ObjectId) -> Result<UploadStatus> {
    unexpired(uploads.status(id).await?)
}

fn unexpired(status: UploadStatus) -> Result<UploadStatus> {
    if status.is_expired(OffsetDateTime::now_utc()) {
        return Err(Error::Expired(status.id.to_string()));
    }
    Ok(status)
}

/// See [`Storage::append`].
pub(super) async fn append<U, S, E>(
    storage: &Storage,
    uploads: &Arc<U>,
    id: &ObjectId,
    offset: u64,
    body: S,
    append: Append,
) -> Result<UploadStatus>
where
    U: UploadStore,
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<BoxError>,
{
    let claim = uploads.claim(id).await?;
    // A claim is given back at once on every error: a client that retries
    // right after a 409 must not meet its own last request's lease.
    let prepared = async {
        let mut status = unexpired(uploads.claimed_status(&claim).await?)?;
        if let Some(owner) = &append.owner
            && status.retention.owner.as_ref() != Some(owner)
        {
            return Err(Error::NotOwner(status.id.to_string()));
        }
        if offset != status.offset {
            return Err(Error::OffsetMismatch { offset: status.offset });
        }
        if let Some(length) = append.length {
            declare_length(&mut status, length)?;
        }
        let sink = uploads.resume(&claim, &status, append.body_length).await?;
        Ok((status, sink))
    };
    let (status, sink) = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) => {
            uploads.release(claim).await;
            return Err(e);
        }
    };
    let limit = match (status.length, status.max_size) {
        (Some(length), Some(max)) => Some(length.min(max)),
        (length, max) => length.or(max),
    };
    let hashes = Hashes {
        sha256: status.sha256.clone(),
        chunk: append.checksum.as_ref().map(|c| ChunkHasher::new(c.algorithm)),
    };
    // Without a checksum, whatever stops the body (an error, or this
    // future dropped with the client's connection), what arrived is kept.
    let mut progress = Progress {
        intake: Some(Intake::new(sink, hashes, status.offset, limit)),
        status: Some((status, claim)),
        uploads: Arc::clone(uploads),
        storage: storage.clone(),
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
    let received = match received {
        Ok(received) => received,
        Err(e) => {
            intake.abort().await;
            uploads.release(claim).await;
            return Err(e);
        }
    };
    if let (Some(expected), Some(hasher)) = (&append.checksum, received.hashes.chunk)
        && hasher.finalize() != expected.digest
    {
        intake.abort().await;
        uploads.release(claim).await;
        return Err(Error::AppendChecksumMismatch { algorithm: expected.algorithm.name() });
    }
    status.advance(received.size, received.hashes.sha256);
    let saved = uploads.save(&claim, &status, intake.into_sink()).await;
    let sealed = match saved {
        Ok(()) if status.partial && status.is_finished() => uploads.seal(&claim, &status).await,
        other => other,
    };
    uploads.release(claim).await;
    sealed.map(|()| status)
}

fn declare_length(status: &mut UploadStatus, length: u64) -> Result<()> {
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
    Ok(())
}

/// An append in progress. Dropped before its end with `keep` set, it saves
/// what arrived in the background.
struct Progress<U: UploadStore> {
    intake: Option<Intake<U::Sink>>,
    status: Option<(UploadStatus, U::Claim)>,
    uploads: Arc<U>,
    /// Where background work runs.
    storage: Storage,
    keep: bool,
}

impl<U: UploadStore> Progress<U> {
    fn intake(&mut self) -> &mut Intake<U::Sink> {
        self.intake.as_mut().expect("taken only when the append ends")
    }

    fn take(&mut self) -> (Intake<U::Sink>, (UploadStatus, U::Claim)) {
        let intake = self.intake.take().expect("taken once");
        (intake, self.status.take().expect("taken once"))
    }

    async fn abort(mut self) {
        let (intake, (_, claim)) = self.take();
        intake.abort().await;
        self.uploads.release(claim).await;
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
        let uploads = Arc::clone(&self.uploads);
        self.storage.in_background("save", move || async move {
            let id = status.id;
            let saved = save(&*uploads, intake, status, claim).await;
            if let Err(e) = &saved {
                log::warn!("could not save what arrived of upload {id}: {e}");
            }
            let _ = done.send(saved);
        });
    }
}

async fn save<U: UploadStore>(
    uploads: &U,
    mut intake: Intake<U::Sink>,
    mut status: UploadStatus,
    claim: U::Claim,
) -> Result<()> {
    let received = match intake.finish().await {
        Ok(received) => received,
        Err(e) => {
            intake.abort().await;
            return Err(e);
        }
    };
    if received.size == 0 {
        intake.abort().await;
        uploads.release(claim).await;
        return Ok(());
    }
    status.advance(received.size, received.hashes.sha256);
    let saved = uploads.save(&claim, &status, intake.into_sink()).await;
    uploads.release(claim).await;
    saved
}

impl<U: UploadStore> Drop for Progress<U> {
    fn drop(&mut self) {
        // Without `keep` the sink drops its unsaved bytes; the saved state is untouched.
        if self.keep {
            self.save_in_background(tokio::sync::oneshot::channel().0);
        }
    }
}

/// See [`Storage::complete_upload`].
pub(super) async fn complete<U: UploadStore>(
    storage: &Storage,
    uploads: &U,
    id: &ObjectId,
) -> Result<FileInfo> {
    let claim = uploads.claim(id).await?;
    let finished = async {
        let status = unexpired(uploads.claimed_status(&claim).await?)?;
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
        storage.mark_expiry(&info).await?;
        Ok(info)
    };
    let info = match finished.await {
        Ok(info) => info,
        Err(e) => {
            uploads.release(claim).await;
            return Err(e);
        }
    };
    uploads.commit(claim, &info).await?;
    Ok(info)
}

/// See [`Storage::abort_upload`].
pub(super) async fn abort<U: UploadStore>(uploads: &U, id: &ObjectId) -> Result<()> {
    let claim = uploads.claim(id).await?;
    uploads.remove(claim).await
}

/// See [`Storage::concatenate`].
pub(super) async fn concatenate<U: UploadStore>(
    storage: &Storage,
    uploads: &U,
    partials: &[ObjectId],
    mut info: FileInfo,
    max_size: Option<u64>,
) -> Result<FileInfo> {
    if partials.is_empty() {
        return Err(Error::InvalidUpload("a concatenation needs at least one partial".into()));
    }
    let mut parts = Vec::with_capacity(partials.len());
    for id in partials {
        let status = status(uploads, id).await?;
        if !status.partial || !status.is_finished() {
            return Err(Error::InvalidUpload(format!(
                "upload {id} is not a finished partial upload"
            )));
        }
        parts.push(status);
    }
    info.size = parts.iter().map(|p| p.offset).sum();
    if let Some(limit) = max_size.filter(|&limit| info.size > limit) {
        return Err(Error::TooLarge { limit });
    }
    storage.mark_expiry(&info).await?;
    uploads.concatenate(parts, info).await
}

/// See [`Storage::sweep_expired`].
pub(super) async fn sweep_expired<U: UploadStore>(uploads: &U) -> Result<usize> {
    let mut removed = 0;
    for id in uploads.expired(OffsetDateTime::now_utc()).await? {
        // One being appended to is alive: its append extends it.
        let Ok(claim) = uploads.claim(&id).await else { continue };
        // Its last append may have extended it since it was listed.
        match uploads.claimed_status(&claim).await {
            Ok(status) if status.is_expired(OffsetDateTime::now_utc()) => {}
            _ => {
                uploads.release(claim).await;
                continue;
            }
        }
        match uploads.remove(claim).await {
            Ok(()) => removed += 1,
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}
