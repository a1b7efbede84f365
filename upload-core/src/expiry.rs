//! Objects that expire, and things used a limited number of times.
//!
//! An object stored with a lifetime gets a marker named by when it expires
//! (`<unix seconds, 12 digits>.<id>`), written before the object becomes
//! visible, so a sweep reads only the markers that are due, in order, on
//! either backend. Readers never wait for the sweep: an expired object is
//! [`Error::NotFound`] from its expiry on ([`Storage::get`], [`Storage::head`],
//! listings).

use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use crate::storage::{Backend, on_backend};
use crate::{Error, FileInfo, ObjectId, Result, Storage};

/// The most markers one sweep handles; the rest wait for the next one.
pub const EXPIRY_BATCH: usize = 1000;

fn marker_name(at: OffsetDateTime, id: &ObjectId) -> String {
    format!("{:012}.{id}", at.unix_timestamp().max(0))
}

/// Sorts after every marker due at `now` (`.` sorts before the digits of an id).
fn due_until(now: OffsetDateTime) -> String {
    format!("{:012}/", now.unix_timestamp().max(0))
}

impl Storage {
    /// Notes when the object `info` describes expires, if it does: called
    /// before it is committed, so no expiring object is ever unmarked.
    pub(crate) async fn mark_expiry(&self, info: &FileInfo) -> Result<()> {
        let Some(at) = info.expires_at else { return Ok(()) };
        let name = marker_name(at, &info.id);
        on_backend!(self, marks => marks.put_marker(name).await)
    }

    /// Removes up to [`EXPIRY_BATCH`] objects that have expired; returns how
    /// many. Safe to run on several replicas of one store at once.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Unavailable`].
    pub async fn sweep_expired_files(&self) -> Result<usize> {
        let now = OffsetDateTime::now_utc();
        let due =
            on_backend!(self, marks => marks.markers_until(due_until(now), EXPIRY_BATCH).await)?;
        let mut removed = 0;
        for name in due {
            let id = name.split_once('.').and_then(|(_, id)| id.parse::<ObjectId>().ok());
            if let Some(id) = id {
                let info = match &*self.backend {
                    Backend::Local(store) => store.head(&id).await,
                    Backend::S3(store) => store.head(&id).await,
                };
                match info {
                    // Marked a moment before its commit set the exact expiry.
                    Ok(info) if !info.is_expired(now) => continue,
                    Ok(_) | Err(Error::Damaged { .. }) => match self.delete(&id).await {
                        Ok(()) => removed += 1,
                        Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    },
                    // Deleted, or never committed.
                    Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            on_backend!(self, marks => marks.remove_marker(name).await)?;
        }
        self.expired_files.fetch_add(removed as u64, Ordering::Relaxed);
        Ok(removed)
    }

    /// How many expired objects [`sweep_expired_files`](Self::sweep_expired_files)
    /// removed in this process.
    pub fn expired_files_removed(&self) -> u64 {
        self.expired_files.load(Ordering::Relaxed)
    }

    /// Counts one use of `key` (a download link, say) and returns how many
    /// there have been, this one included, across every process that shares
    /// the store. Counts are durable; on S3 they are taken under a lease, so
    /// racing replicas never both take the last use.
    ///
    /// # Errors
    /// [`Error::UsedUp`] once `max` uses were counted; [`Error::Locked`] if
    /// other requests kept the count busy; [`Error::Io`], [`Error::Unavailable`].
    pub async fn count_use(&self, key: ObjectId, max: u64) -> Result<u64> {
        on_backend!(self, marks => marks.count_use(key, max).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_sort_by_expiry_and_due_ones_sort_first() {
        let id: ObjectId = ObjectId::new();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let name = marker_name(at, &id);
        assert!(name.starts_with("001700000000."));
        assert!(name <= due_until(at));
        assert!(name > due_until(at - time::Duration::seconds(1)));
        assert!(marker_name(at + time::Duration::seconds(1), &id) > due_until(at));
    }
}
