//! Small marks beside the objects: expiry markers (`expiry/<when>.<id>`,
//! empty objects a sweep finds by listing, in name order) and use counters
//! (`counters/<id>/count`, changed only under a lease, see `lease.rs`).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::lease::Lease;
use super::signed::unavailable;
use crate::{Error, ObjectId, Result};

/// Tries at a busy counter before giving up with `Error::Locked`.
const COUNT_TRIES: u32 = 8;

#[derive(Debug)]
pub(crate) struct Marks {
    pub(super) store: AmazonS3,
    pub(super) prefix: String,
}

impl Marks {
    fn marker(&self, name: &str) -> Path {
        Path::from(format!("{}expiry/{name}", self.prefix))
    }

    pub(crate) async fn put_marker(&self, name: String) -> Result<()> {
        self.store.put(&self.marker(&name), PutPayload::new()).await.map_err(unavailable)?;
        Ok(())
    }

    /// Up to `limit` marker names, in name order, that sort at or before `until`.
    pub(crate) async fn markers_until(&self, until: String, limit: usize) -> Result<Vec<String>> {
        let dir = Path::from(format!("{}expiry", self.prefix));
        self.store
            .list(Some(&dir))
            .map_err(unavailable)
            .try_filter_map(async |meta| Ok(meta.location.filename().map(str::to_owned)))
            .try_take_while(|name| std::future::ready(Ok(*name <= until)))
            .take(limit)
            .try_collect()
            .await
    }

    pub(crate) async fn remove_marker(&self, name: String) -> Result<()> {
        self.store.delete(&self.marker(&name)).await.map_err(unavailable)
    }

    /// Counts one use of `key`; fails with `Error::UsedUp` once `max` were
    /// counted. Replicas count under a lease, so two never read the same
    /// count: racing ones wait their turn (`Error::Locked` after a few tries).
    pub(crate) async fn count_use(&self, key: ObjectId, max: u64) -> Result<u64> {
        let dir = format!("{}counters/{key}/", self.prefix);
        let mut wait = Duration::from_millis(10);
        for _ in 1..COUNT_TRIES {
            match Lease::acquire(&self.store, &key, &dir, "lease/").await {
                Ok(lease) => {
                    let counted = self.count_held(&dir, key, max).await;
                    lease.release().await;
                    return counted;
                }
                Err(Error::Locked(_)) => {
                    // Both of two racing requests may step back: wait unevenly.
                    let jitter =
                        Duration::from_millis(RandomState::new().build_hasher().finish() % 20);
                    tokio::time::sleep(wait + jitter).await;
                    wait *= 2;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Locked(key.to_string()))
    }

    async fn count_held(&self, dir: &str, key: ObjectId, max: u64) -> Result<u64> {
        let path = Path::from(format!("{dir}count"));
        let used: u64 = match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(unavailable)?;
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(u64::MAX)
            }
            Err(object_store::Error::NotFound { .. }) => 0,
            Err(e) => return Err(unavailable(e)),
        };
        if used >= max {
            return Err(Error::UsedUp(key.to_string()));
        }
        self.store.put(&path, (used + 1).to_string().into()).await.map_err(unavailable)?;
        Ok(used + 1)
    }
}
