//! Bytes stored, in all and per owner: what quotas are checked against.
//!
//! Kept up to date by this process's own commits and deletes, and counted
//! again from the store by [`Storage::recount`] (when a local store opens,
//! and now and then by [`Storage::maintain`] on a shared one, where other
//! replicas store and delete too).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::{FileInfo, Result, Storage};

/// Bytes stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredBytes {
    /// By everyone.
    pub total: u64,
    /// By the owner asked about.
    pub owner: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Usage {
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    owners: HashMap<String, u64>,
}

impl Counts {
    fn add(&mut self, info: &FileInfo) {
        self.total += info.size;
        if let Some(owner) = &info.owner {
            *self.owners.entry(owner.clone()).or_default() += info.size;
        }
    }
}

impl Usage {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn added(&self, info: &FileInfo) {
        self.counts().add(info);
    }

    pub(crate) fn removed(&self, info: &FileInfo) {
        let mut counts = self.counts();
        counts.total = counts.total.saturating_sub(info.size);
        if let Some(owner) = &info.owner
            && let Some(bytes) = counts.owners.get_mut(owner)
        {
            *bytes = bytes.saturating_sub(info.size);
        }
    }
}

impl Storage {
    /// Bytes stored in all, and by `owner` ([`FileInfo::owner`]).
    pub fn stored_bytes(&self, owner: Option<&str>) -> StoredBytes {
        let counts = self.usage.counts();
        let by_owner = owner.and_then(|o| counts.owners.get(o)).copied().unwrap_or_default();
        StoredBytes { total: counts.total, owner: by_owner }
    }

    /// Counts the bytes stored again, from every object's metadata (a read of
    /// each: one `HEAD` per object on S3). Expired objects count until swept.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io), [`Error::Unavailable`](crate::Error::Unavailable).
    pub async fn recount(&self) -> Result<StoredBytes> {
        let mut counts = Counts::default();
        let mut after = None;
        loop {
            let (page, _) = match &*self.backend {
                crate::storage::Backend::Local(store) => store.list(after, 1000).await,
                crate::storage::Backend::S3(store) => store.list(after, 1000).await,
            }?;
            page.files.iter().for_each(|info| counts.add(info));
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        let total = StoredBytes { total: counts.total, owner: 0 };
        *self.usage.counts() = counts;
        Ok(total)
    }
}
