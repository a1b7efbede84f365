//! Objects stored together that stand or fall together (the files of one
//! multipart request), and the background deletions that take back a group
//! whose owner vanished.

use bytes::Bytes;
use futures_util::Stream;

use crate::{BoxError, FileInfo, PutOptions, Result, Storage};

/// Objects put one after another that must all stay, or none.
///
/// [`keep`](Self::keep) ends the group with every object stored. Anything
/// else ends it with none: [`discard`](Self::discard), or dropping it,
/// whatever drops it (an error, a cancelled request, a runtime shutting
/// down), which deletes its objects on a thread of their own;
/// [`Storage::settle`] waits for those deletions.
///
/// ```
/// # use bytes::Bytes;
/// # use futures_util::stream;
/// # use upload_core::{LocalConfig, PutGroup, PutOptions, Storage, StorageConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let storage = Storage::open(&StorageConfig::Local(LocalConfig::new(dir.path()))).await?;
/// let body = || stream::iter([Ok::<_, std::io::Error>(Bytes::from("part"))]);
/// let mut group = PutGroup::new(&storage);
/// group.put(body(), PutOptions::default()).await?;
/// group.put(body(), PutOptions::default()).await?;
/// drop(group); // a later part failed: neither is kept
/// storage.settle().await;
/// assert!(storage.list(None, 10).await?.files.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PutGroup {
    storage: Storage,
    stored: Vec<FileInfo>,
}

impl PutGroup {
    /// An empty group on `storage`.
    #[must_use]
    pub fn new(storage: &Storage) -> Self {
        let storage = storage.clone();
        Self { storage, stored: Vec::new() }
    }

    /// Stores one more object, as [`Storage::put`] does.
    ///
    /// # Errors
    /// As [`Storage::put`]; the objects stored before stay in the group.
    pub async fn put<S, E>(&mut self, body: S, opts: PutOptions) -> Result<&FileInfo>
    where
        S: Stream<Item = std::result::Result<Bytes, E>>,
        E: Into<BoxError>,
    {
        let info = self.storage.put(body, opts).await?;
        self.stored.push(info);
        Ok(self.stored.last().expect("just pushed"))
    }

    /// How many objects the group holds.
    pub fn len(&self) -> usize {
        self.stored.len()
    }

    /// Whether the group holds no object.
    pub fn is_empty(&self) -> bool {
        self.stored.is_empty()
    }

    /// Ends the group, keeping every object.
    pub fn keep(mut self) -> Vec<FileInfo> {
        std::mem::take(&mut self.stored)
    }

    /// Ends the group, deleting every object before it returns.
    pub async fn discard(mut self) {
        for info in std::mem::take(&mut self.stored) {
            if let Err(e) = self.storage.delete(&info.id).await {
                log::warn!("could not take back {} of a failed group: {e}", info.id);
            }
        }
    }
}

impl Drop for PutGroup {
    fn drop(&mut self) {
        if !self.stored.is_empty() {
            let ids = self.stored.drain(..).map(|info| info.id).collect();
            self.storage.delete_in_background(ids);
        }
    }
}
