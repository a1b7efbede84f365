//! One append's way into the bucket: the saved tail first, then the body,
//! cut into parts of exactly `part_size`; what is left becomes the new tail.

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::task::{self, JoinSet};

use super::record::{Part, Record, Tail};
use super::signed::{Signed, unavailable};
use super::sink::cut_part;
use super::streamed::StreamedPart;
use crate::backend::{Batch, Sink};
use crate::{ObjectId, Result};

/// One append's bytes on their way into the bucket: the saved tail first,
/// then the body. When the body's length is known, each part it completes
/// is streamed as its bytes arrive; else every full part is sent as it
/// fills. At most `concurrency` parts at once; what is left becomes the
/// new tail.
pub(crate) struct AppendSink {
    pub(super) store: AmazonS3,
    pub(super) signed: Arc<Signed>,
    pub(super) data: Path,
    pub(super) tail_dir: String,
    /// The state as saved before this append.
    pub(super) record: Record,
    pub(super) next_index: usize,
    pub(super) part_size: usize,
    pub(super) concurrency: usize,
    pub(super) pending: Vec<Bytes>,
    pub(super) pending_len: usize,
    /// Bytes of the body not yet taken, if its length is known.
    pub(super) to_come: Option<u64>,
    /// The part being streamed, until it is whole.
    pub(super) streamed: Option<StreamedPart>,
    /// A streamed part stopped before it was whole: its task's failure is expected.
    pub(super) cut: Option<task::Id>,
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

    /// Whether the pending bytes and the rest of the body make a whole part.
    fn streamable(&self) -> bool {
        let part = self.part_size as u64;
        self.to_come.is_some_and(|rest| self.pending_len as u64 + rest >= part)
    }

    /// Starts streaming the next part, the pending bytes first.
    fn start_streamed(&mut self) {
        let multipart =
            self.record.multipart.as_deref().expect("created before the bytes were taken");
        let mut part = StreamedPart::start(
            &self.signed,
            &mut self.in_flight,
            &self.data,
            multipart,
            self.next_index,
            self.part_size,
        );
        self.next_index += 1;
        for piece in std::mem::take(&mut self.pending) {
            part.feed(piece);
        }
        self.pending_len = 0;
        self.streamed = Some(part);
    }

    /// Takes `bytes`: into the streamed part, a new one, or the pending bytes.
    fn take(&mut self, mut bytes: Bytes) {
        while !bytes.is_empty() {
            if self.streamed.is_none() && self.streamable() {
                self.start_streamed();
            }
            let taken = match &mut self.streamed {
                Some(part) => {
                    let piece = bytes.split_to(part.missing().min(bytes.len()));
                    let taken = piece.len();
                    part.feed(piece);
                    if part.missing() == 0 {
                        self.streamed = None;
                    }
                    taken
                }
                None => {
                    let taken = bytes.len();
                    self.pending_len += taken;
                    self.pending.push(std::mem::take(&mut bytes));
                    while self.pending_len >= self.part_size {
                        self.send_part();
                    }
                    taken
                }
            };
            self.to_come = self.to_come.map(|rest| rest.saturating_sub(taken as u64));
        }
    }

    async fn join_one(&mut self) -> Result<()> {
        let Some(joined) = self.in_flight.join_next_with_id().await else { return Ok(()) };
        let (id, part) = match joined {
            Ok((id, part)) => (id, part),
            Err(join) => (join.id(), Err(unavailable(join))),
        };
        if self.cut != Some(id) {
            self.new_parts.push(part?);
        }
        Ok(())
    }
}

impl Sink for AppendSink {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        let len: usize = batch.iter().map(Bytes::len).sum();
        let open = self.streamed.as_ref().map(StreamedPart::missing);
        let parts = parts_started(self.part_size, self.pending_len, open, self.to_come, len);
        if parts > 0 && self.record.multipart.is_none() {
            let id = self.store.create_multipart(&self.data).await.map_err(unavailable)?;
            self.record.multipart = Some(id);
        }
        // Room first, then the batch is taken with nothing left to wait for:
        // a write dropped while waiting has taken nothing (the intake relies
        // on it), and at most `concurrency` parts are held at any time, the
        // one filling included, as in a one-shot put. A streamed part is
        // among those in flight; it cannot end before it is fed, so only the
        // others are waited for.
        let open = usize::from(open.is_some());
        let filling = usize::from(self.to_come.is_none());
        while self.in_flight.len() > open
            && self.in_flight.len() + parts + filling > self.concurrency
        {
            self.join_one().await?;
        }
        for piece in batch.iter() {
            self.take(piece.clone());
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        // The body ended before its length said: what went to the streamed
        // part is kept in the tail instead, and its part number is reused.
        if let Some(part) = self.streamed.take() {
            let (task, fed) = part.cut();
            self.cut = Some(task);
            self.next_index -= 1;
            self.pending_len = fed.iter().map(Bytes::len).sum();
            self.pending = fed;
        }
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

/// How many parts taking `len` more bytes starts (streamed) or sends
/// (buffered): each needs room. `open`: the bytes the part being streamed
/// still misses; `to_come`: the body's bytes not yet taken, if known.
fn parts_started(
    part: usize,
    pending: usize,
    open: Option<usize>,
    to_come: Option<u64>,
    len: usize,
) -> usize {
    let Some(mut rest) = to_come else { return (pending + len) / part };
    let (part, mut pending, mut left) = (part as u64, pending as u64, len as u64);
    let open = open.map_or(0, |missing| missing as u64).min(left);
    (left, rest) = (left - open, rest.saturating_sub(open));
    let mut started = 0;
    while left > 0 && pending + rest >= part {
        let taken = (part - pending).min(left);
        (left, rest, pending, started) = (left - taken, rest.saturating_sub(taken), 0, started + 1);
    }
    started + ((pending + left) / part) as usize
}

#[cfg(test)]
mod tests {
    use super::parts_started;

    #[test]
    fn parts_start_with_their_first_byte_when_the_length_is_known() {
        // Unknown length: a part is sent once full.
        assert_eq!(parts_started(10, 4, None, None, 5), 0);
        assert_eq!(parts_started(10, 4, None, None, 26), 3);
        // Known: the first byte of a whole part starts it, the tail first.
        assert_eq!(parts_started(10, 0, None, Some(10), 1), 1);
        assert_eq!(parts_started(10, 4, None, Some(6), 1), 1);
        assert_eq!(parts_started(10, 0, None, Some(25), 25), 2, "the last 5 become the tail");
        assert_eq!(parts_started(10, 0, None, Some(9), 9), 0, "less than a part: the tail");
        // The open part is fed first; the next starts with the byte after it.
        assert_eq!(parts_started(10, 0, Some(3), Some(13), 3), 0);
        assert_eq!(parts_started(10, 0, Some(3), Some(13), 4), 1);
        assert_eq!(parts_started(10, 0, Some(3), Some(12), 12), 0, "9 left: the tail");
        // A body longer than it said: its extra bytes are buffered.
        assert_eq!(parts_started(10, 0, None, Some(0), 20), 2);
    }
}
