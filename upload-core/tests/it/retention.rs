//! Owners, lifetimes and use counts: recorded with every way of storing, an
//! expired object gone at once and swept after, counts that stop at their max.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use upload_core::{Append, Error, NewUpload, ObjectId, PutOptions, Retention, Storage};

use crate::common::*;

on_both_backends!(
    an_expired_file_is_gone_at_once_and_swept_later,
    owners_are_recorded_by_every_way_of_storing_and_filter_listings,
    use_counts_stop_at_their_max_even_when_raced,
    stored_bytes_follow_commits_and_deletes_and_are_counted_again_on_open,
);

fn retention(owner: &str, lifetime: Option<Duration>) -> Retention {
    Retention { owner: Some(owner.into()), lifetime }
}

async fn put(storage: &Storage, retention: Retention) -> ObjectId {
    let opts = PutOptions { retention, ..Default::default() };
    storage.put(chunked(b"bytes", &[]), opts).await.unwrap().id
}

async fn an_expired_file_is_gone_at_once_and_swept_later(backend: Backend) {
    let t = TestStore::open(backend).await;
    let brief = put(&t.storage, retention("a", Some(Duration::from_secs(1)))).await;
    let kept = put(&t.storage, retention("a", None)).await;
    let info = t.storage.head(&brief).await.unwrap();
    let lived = info.expires_at.unwrap() - info.created_at;
    assert_eq!(lived, time::Duration::seconds(1));
    assert_eq!(t.storage.sweep_expired_files().await.unwrap(), 0, "not yet expired");
    // Its lifetime is a second: wait (bounded) for the clock to pass it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.storage.head(&brief).await.is_ok() {
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(t.storage.get(&brief, None).await, Err(Error::NotFound(_))));
    let listed: Vec<_> =
        t.storage.list(None, 10).await.unwrap().files.iter().map(|f| f.id).collect();
    assert_eq!(listed, [kept], "listings leave it out before any sweep");
    assert_eq!(t.stored().await.len(), 2, "still stored until swept");
    assert_eq!(t.storage.sweep_expired_files().await.unwrap(), 1);
    assert_eq!(t.stored().await, [kept.to_string()]);
    assert_eq!(t.storage.expired_files_removed(), 1);
    assert_eq!(t.storage.sweep_expired_files().await.unwrap(), 0, "its marker went with it");
}

async fn owners_are_recorded_by_every_way_of_storing_and_filter_listings(backend: Backend) {
    let t = TestStore::open(backend).await;
    let day = Some(Duration::from_secs(86_400));
    let first = put(&t.storage, retention("a", day)).await;
    let other = put(&t.storage, retention("b", None)).await;
    let upload =
        NewUpload { length: Some(3), retention: retention("a", day), ..Default::default() };
    let upload = t.storage.create_upload(upload).await.unwrap();
    t.storage.append(&upload.id, 0, chunked(b"abc", &[]), Append::default()).await.unwrap();
    let resumed = t.storage.complete_upload(&upload.id).await.unwrap();
    assert_eq!(resumed.owner.as_deref(), Some("a"));
    assert!(resumed.expires_at.is_some());
    let partial = NewUpload { length: Some(1), partial: true, ..Default::default() };
    let partial = t.storage.create_upload(partial).await.unwrap();
    t.storage.append(&partial.id, 0, chunked(b"z", &[]), Append::default()).await.unwrap();
    let joined =
        t.storage.concatenate(&[partial.id], None, None, None, &retention("b", day)).await.unwrap();
    assert_eq!(joined.owner.as_deref(), Some("b"));
    // The owner survives the store: read back, not echoed.
    let t = t.reopen().await;
    assert_eq!(t.storage.head(&other).await.unwrap().owner.as_deref(), Some("b"));
    let ids = |page: upload_core::Page| page.files.iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(ids(t.storage.list_owned_by("a", None, 10).await.unwrap()), [first, resumed.id]);
    assert_eq!(ids(t.storage.list_owned_by("b", None, 10).await.unwrap()), [other, joined.id]);
    // Paged: one at a time, the cursor skipping the other owner's files.
    let page = t.storage.list_owned_by("a", None, 1).await.unwrap();
    assert_eq!(ids(page.clone()), [first]);
    let next = t.storage.list_owned_by("a", page.next, 1).await.unwrap();
    assert_eq!(ids(next.clone()), [resumed.id]);
    let last = t.storage.list_owned_by("a", next.next, 1).await.unwrap();
    assert!(last.files.is_empty() && last.next.is_none(), "{last:?}");
    assert!(t.storage.list_owned_by("c", None, 10).await.unwrap().files.is_empty());
}

async fn use_counts_stop_at_their_max_even_when_raced(backend: Backend) {
    let t = TestStore::open(backend).await;
    // On S3, two replicas race for the same count.
    let replica = match backend {
        Backend::S3 => t.replica().await,
        Backend::Local => t.storage.clone(),
    };
    let key = ObjectId::new();
    let counts = (0..8).map(|i| {
        let storage = if i % 2 == 0 { t.storage.clone() } else { replica.clone() };
        async move { storage.count_use(key, 3).await }
    });
    let results = join_all(counts).await;
    let mut taken: Vec<u64> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    taken.sort_unstable();
    // A racer may give up (Locked) rather than wait its turn: never take more than the max.
    assert!(taken.len() <= 3 && taken.iter().zip(1..).all(|(a, b)| *a == b), "{results:?}");
    for result in &results {
        assert!(matches!(result, Ok(_) | Err(Error::UsedUp(_) | Error::Locked(_))), "{result:?}");
    }
    while t.storage.count_use(key, 3).await.is_ok() {}
    assert!(matches!(t.storage.count_use(key, 3).await, Err(Error::UsedUp(_))));
    assert!(matches!(replica.count_use(key, 3).await, Err(Error::UsedUp(_))));
    assert_eq!(t.storage.count_use(ObjectId::new(), 1).await.unwrap(), 1, "counts are per key");
}

async fn stored_bytes_follow_commits_and_deletes_and_are_counted_again_on_open(backend: Backend) {
    let t = TestStore::open(backend).await;
    let a = put(&t.storage, retention("a", None)).await; // 5 bytes each
    put(&t.storage, retention("a", None)).await;
    put(&t.storage, retention("b", None)).await;
    let upload =
        NewUpload { length: Some(3), retention: retention("b", None), ..Default::default() };
    let upload = t.storage.create_upload(upload).await.unwrap();
    t.storage.append(&upload.id, 0, chunked(b"abc", &[]), Append::default()).await.unwrap();
    t.storage.complete_upload(&upload.id).await.unwrap();
    let stored = |owner| t.storage.stored_bytes(Some(owner));
    assert_eq!((stored("a").total, stored("a").owner, stored("b").owner), (18, 10, 8));
    t.storage.delete(&a).await.unwrap();
    assert_eq!((stored("a").total, stored("a").owner), (13, 5));
    // Counted from the store, as a restarted process (or, on S3, another replica) sees it.
    let t = t.reopen().await;
    t.storage.recount().await.unwrap();
    let stored = |owner| t.storage.stored_bytes(Some(owner));
    assert_eq!((stored("a").total, stored("a").owner, stored("b").owner), (13, 5, 8));
}
