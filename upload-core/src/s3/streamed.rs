//! A part sent while its bytes arrive. When an append's length says that a
//! whole part is coming, its `UploadPart` request starts with the part's
//! first byte, not its last: receiving and sending overlap, which is what a
//! client sending one part per `PATCH` waits for otherwise.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{self, JoinSet};

use super::record::Part;
use super::signed::Signed;
use crate::{Error, Result};

/// A part whose request is under way, fed as the append's bytes come.
pub(super) struct StreamedPart {
    feed: mpsc::UnboundedSender<std::io::Result<Bytes>>,
    /// Bytes still to come before the part is whole.
    missing: usize,
    /// What was fed, kept until the part is whole: if the body stops first,
    /// these bytes are saved as the tail instead.
    fed: Vec<Bytes>,
    /// Sent once the part is whole: from then on, its response is awaited
    /// for at most the store's request timeout.
    whole: Option<oneshot::Sender<()>>,
    task: task::Id,
}

impl StreamedPart {
    /// Starts the request for part `index` (of exactly `size` bytes) of the
    /// multipart upload `upload_id` of `data`, as a task in `in_flight`.
    pub(super) fn start(
        signed: &Arc<Signed>,
        in_flight: &mut JoinSet<Result<Part>>,
        data: &Path,
        upload_id: &str,
        index: usize,
        size: usize,
    ) -> Self {
        let (feed, body) = mpsc::unbounded_channel();
        let (whole, fed_whole) = oneshot::channel();
        let body = futures_util::stream::unfold(body, |mut body| async move {
            body.recv().await.map(|piece| (piece, body))
        });
        let (signed, key, upload_id) = (Arc::clone(signed), data.to_string(), upload_id.to_owned());
        let task = in_flight.spawn(async move {
            let request = signed.upload_part(&key, &upload_id, index + 1, size, body);
            // The request lasts as long as the client takes to send the part;
            // only the store's answer after the last byte is timed.
            let deadline = async {
                let _ = fed_whole.await;
                tokio::time::sleep(signed.request_timeout).await;
            };
            let etag = tokio::select! {
                etag = request => etag?,
                () = deadline => return Err(Error::Unavailable(format!(
                    "part {} of {key}: no answer within {:?}", index + 1, signed.request_timeout
                ))),
            };
            Ok(Part { index, etag, size: size as u64 })
        });
        Self { feed, missing: size, fed: Vec::new(), whole: Some(whole), task: task.id() }
    }

    /// Bytes still to come before the part is whole.
    pub(super) fn missing(&self) -> usize {
        self.missing
    }

    /// Sends `piece` (at most [`missing`](Self::missing) bytes) on its way.
    pub(super) fn feed(&mut self, piece: Bytes) {
        debug_assert!(piece.len() <= self.missing);
        self.missing -= piece.len();
        self.fed.push(piece.clone());
        // A closed channel means the request failed: its task reports why.
        let _ = self.feed.send(Ok(piece));
        if self.missing == 0 {
            self.fed.clear();
            if let Some(whole) = self.whole.take() {
                let _ = whole.send(());
            }
        }
    }

    /// Stops the request of a part that will not be whole (its task then
    /// fails, and the store keeps nothing of it); returns the task's id and
    /// the bytes fed.
    pub(super) fn cut(self) -> (task::Id, Vec<Bytes>) {
        let cut = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the append ended first");
        let _ = self.feed.send(Err(cut));
        (self.task, self.fed)
    }
}
