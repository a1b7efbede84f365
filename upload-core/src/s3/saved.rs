//! The upload states this replica saved last, with their ETags: a claim
//! whose listing shows the same ETag takes the state from here instead of
//! reading it again (an ETag names the content, so it cannot be stale).

use std::collections::HashMap;
use std::sync::Mutex;

use super::record::Record;
use crate::ObjectId;

/// At most this many saved states are kept in memory; past it, all are
/// forgotten (and read again from the bucket when next claimed).
const SAVED_MAX: usize = 1024;

/// The states this replica saved last, by upload, with their ETags.
#[derive(Default)]
pub(crate) struct Saved(Mutex<HashMap<ObjectId, (String, Record)>>);

impl Saved {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, (String, Record)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state saved with `etag`, if this replica saved it.
    pub(super) fn get(&self, id: &ObjectId, etag: &str) -> Option<Record> {
        let map = self.map();
        map.get(id).filter(|(saved, _)| saved == etag).map(|(_, record)| record.clone())
    }

    pub(super) fn put(&self, id: ObjectId, etag: Option<String>, record: &Record) {
        let mut map = self.map();
        match etag {
            Some(etag) => {
                if map.len() >= SAVED_MAX {
                    map.clear();
                }
                map.insert(id, (etag, record.clone()));
            }
            None => drop(map.remove(&id)),
        }
    }

    pub(super) fn forget(&self, id: &ObjectId) {
        self.map().remove(id);
    }
}

/// ETags are quoted in some responses and not in others.
pub(super) fn unquoted(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}
