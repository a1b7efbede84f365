//! Objects whose stored metadata cannot be read (edited, truncated, written
//! by something else): each is told once in the log, counted, left out of
//! listings, and answers [`Error::Damaged`] alone, so one bad object never
//! takes down the store.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Error, ObjectId};

#[derive(Debug, Default)]
pub(crate) struct DamagedSet(Mutex<HashSet<String>>);

impl DamagedSet {
    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the object of a [`Error::Damaged`], logging it the first time.
    pub(crate) fn note(&self, error: &Error) {
        if let Error::Damaged { id, reason } = error
            && self.lock().insert(id.clone())
        {
            log::error!(
                "object {id} is damaged ({reason}): it is left out of listings and cannot be \
                 read; delete it (DELETE /files/{id}) or restore its metadata"
            );
        }
    }

    pub(crate) fn forget(&self, id: &ObjectId) {
        self.lock().remove(&id.to_string());
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}
