//! Quotas: `limits.max_total_size` for the whole store and
//! `limits.max_total_size_per_token` for each token's files, checked on the
//! bytes of a request as they arrive, like `limits.max_file_size`: the bytes
//! stored (upload-core's counts) plus those of the uploads in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::body::Cutoff;
use crate::settings::Limits;

/// The bytes of uploads in flight, reserved against the quotas.
#[derive(Debug, Default)]
pub(crate) struct Reserved {
    counts: Mutex<(u64, HashMap<String, u64>)>,
}

/// One request's reservation: grows with its body, given back when dropped
/// (by then a committed upload is counted as stored).
#[derive(Debug)]
pub(crate) struct Charge {
    reserved: Arc<Reserved>,
    storage: upload_core::Storage,
    limits: Limits,
    owner: Option<String>,
    taken: u64,
}

impl Charge {
    pub(crate) fn new(
        reserved: Arc<Reserved>,
        storage: upload_core::Storage,
        limits: Limits,
        owner: Option<String>,
    ) -> Self {
        Self { reserved, storage, limits, owner, taken: 0 }
    }

    /// Reserves `n` more bytes, or says which quota they would exceed.
    pub(crate) fn take(&mut self, n: u64) -> Result<(), Cutoff> {
        let stored = self.storage.stored_bytes(self.owner.as_deref());
        let mut counts = self.reserved.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, owners) = &mut *counts;
        if let Some(limit) = self.limits.max_total_size
            && stored.total + *total + n > limit
        {
            return Err(Cutoff::Quota { limit, whose: "the store" });
        }
        if let (Some(limit), Some(owner)) = (self.limits.max_total_size_per_token, &self.owner) {
            let in_flight = owners.get(owner).copied().unwrap_or_default();
            if stored.owner + in_flight + n > limit {
                return Err(Cutoff::Quota { limit, whose: "this token's files" });
            }
            *owners.entry(owner.clone()).or_default() += n;
        }
        *total += n;
        self.taken += n;
        Ok(())
    }

    /// Whether `n` bytes would fit now, reserving nothing (a tus upload's declared length).
    pub(crate) fn fits(mut self, n: u64) -> Result<(), Cutoff> {
        self.take(n)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut counts = self.reserved.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, owners) = &mut *counts;
        *total -= self.taken;
        if let Some(owner) = &self.owner
            && let Some(bytes) = owners.get_mut(owner)
        {
            *bytes = bytes.saturating_sub(self.taken);
            if *bytes == 0 {
                owners.remove(owner);
            }
        }
    }
}
