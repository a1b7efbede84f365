//! The committed ids, kept in memory: the root's lock makes them
//! authoritative, so a listing page costs its own entries only.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ObjectId;

/// The committed ids, in order.
#[derive(Debug)]
pub(super) struct Index(Mutex<BTreeSet<ObjectId>>);

impl Index {
    /// Every id in `objects`; other names there are not objects of ours.
    pub(super) fn read(objects: &Path) -> io::Result<Self> {
        let mut ids = BTreeSet::new();
        for entry in fs::read_dir(objects)? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.insert(id);
            }
        }
        Ok(Self(Mutex::new(ids)))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<ObjectId>> {
        // Every update is a single insert or remove: a poisoned set is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert(&self, id: ObjectId) {
        self.lock().insert(id);
    }

    pub(super) fn remove(&self, id: &ObjectId) {
        self.lock().remove(id);
    }

    /// Up to `limit` ids after `after`, and whether more follow.
    pub(super) fn page(&self, after: Option<ObjectId>, limit: usize) -> (Vec<ObjectId>, bool) {
        let ids = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<ObjectId> =
            ids.range((from, Bound::Unbounded)).take(limit + 1).copied().collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}
