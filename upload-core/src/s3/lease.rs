//! Leases that keep two requests, on one replica or two, from changing one
//! upload at once (see `uploads.rs` for why listings, not conditional writes).

use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use time::OffsetDateTime;

use super::record::Record;
use super::signed::unavailable;
use crate::{Error, ObjectId, Result};

/// A lease not renewed for this long is free.
const LEASE_TTL: Duration = Duration::from_secs(15);

/// A lease on one upload, renewed until released or dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(super) id: ObjectId,
    /// The upload's state, read once the lease was held.
    pub(super) record: Option<Record>,
    /// The objects beside the leases, as listed once the lease was written.
    pub(super) seen: Vec<ObjectMeta>,
    store: AmazonS3,
    key: Path,
    /// Started once the lease is written.
    renewal: Option<tokio::task::JoinHandle<()>>,
    /// Not yet released: dropping deletes it.
    held: bool,
}

impl Drop for Lease {
    // Also when dropped while being written (its request's client gone):
    // else the next request would find it live until it lapses.
    fn drop(&mut self) {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
        // Best effort: an unreleased lease lapses by itself.
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (store, key) = (self.store.clone(), self.key.clone());
            runtime.spawn(async move { store.delete(&key).await });
        }
    }
}

impl Lease {
    /// Writes a lease in `dir` + `locks` and keeps it if it is the only live
    /// one there; else takes it back and fails with `Error::Locked`. The
    /// listing covers all of `dir`: what else it holds is kept in `seen`.
    pub(super) async fn acquire(
        store: &AmazonS3,
        id: &ObjectId,
        dir: &str,
        locks: &str,
    ) -> Result<Self> {
        let locks = format!("{dir}{locks}");
        let key = Path::from(format!("{locks}{}", ObjectId::new()));
        let mut lease = Self {
            id: *id,
            record: None,
            seen: Vec::new(),
            store: store.clone(),
            key: key.clone(),
            renewal: None,
            held: true,
        };
        store.put(&key, PutPayload::new()).await.map_err(unavailable)?;
        lease.renewal = Some({
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_TTL / 3).await;
                    if let Err(e) = store.put(&key, PutPayload::new()).await {
                        log::warn!("could not renew the lease {key}: {e}");
                    }
                }
            })
        });
        let live_after = OffsetDateTime::now_utc() - LEASE_TTL;
        let live_after_ms = (live_after.unix_timestamp_nanos() / 1_000_000) as i64;
        let listed: Vec<ObjectMeta> =
            store.list(Some(&Path::from(dir))).try_collect().await.map_err(unavailable)?;
        let (leases, seen): (Vec<_>, _) =
            listed.into_iter().partition(|meta| meta.location.as_ref().starts_with(&locks));
        let others = leases.iter().any(|meta| {
            meta.last_modified.timestamp_millis() > live_after_ms && meta.location != key
        });
        if others {
            lease.release().await;
            return Err(Error::Locked(id.to_string()));
        }
        lease.seen = seen;
        Ok(lease)
    }

    /// Gives the lease back now.
    pub(super) async fn release(mut self) {
        self.held = false;
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        if let Err(e) = self.store.delete(&self.key).await {
            log::warn!("could not release the lease {}: {e}", self.key);
        }
    }
}
