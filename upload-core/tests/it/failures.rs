use std::io;
use std::task::Poll;

use futures_util::{StreamExt, stream};
use upload_core::{Error, PutOptions, Storage};

use crate::common::*;

on_both_backends!(
    a_stream_that_fails_half_way_leaves_nothing,
    an_over_limit_stream_stops_at_the_limit_and_leaves_nothing,
    a_put_dropped_half_way_leaves_nothing,
    readiness_leaves_nothing,
    content_types_are_stored_normalised,
);

async fn a_stream_that_fails_half_way_leaves_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    // Past two S3 parts, so that parts are in flight when the body fails.
    let data = bytes(2 * PART + 10, 5);
    let broken = stream::iter([Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"))]);
    let body = chunked(&data, &[65_536; 200]).chain(broken);
    let err = t.storage.put(body, PutOptions::default()).await.unwrap_err();
    assert!(matches!(&err, Error::Body(e) if e.to_string() == "peer gone"), "{err:?}");
    t.assert_empty().await;
}

async fn an_over_limit_stream_stops_at_the_limit_and_leaves_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    let limit = PART as u64 + 1;
    let opts = || PutOptions { max_size: Some(limit), ..Default::default() };

    // The stream would go on forever: the limit must stop reading it.
    let block = bytes::Bytes::from(bytes(65_536, 1));
    let endless = stream::repeat(block).map(Ok::<_, io::Error>);
    let err = t.storage.put(endless, opts()).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: l } if l == limit), "{err:?}");
    t.assert_empty().await;

    let exact = bytes(limit as usize, 2);
    let info = t.storage.put(chunked(&exact, &[1000]), opts()).await.unwrap();
    assert_eq!(info.size, limit);
}

/// A put whose future is dropped while its body stalls (the client went
/// quiet, the server is shutting down) leaves nothing behind.
async fn a_put_dropped_half_way_leaves_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let mut reached_tx = Some(reached_tx);
        // 2 S3 parts arrive, then the client stalls: the stream never yields again.
        let stall = stream::poll_fn(move |_| {
            if let Some(tx) = reached_tx.take() {
                let _ = tx.send(());
            }
            Poll::<Option<Chunk>>::Pending
        });
        let data = bytes(2 * PART, 8);
        let put = t.storage.put(chunked(&data, &[65_536; 160]).chain(stall), PutOptions::default());
        let mut put = std::pin::pin!(put);
        tokio::select! {
            result = &mut put => panic!("the put finished: {result:?}"),
            _ = reached_rx => {}
        }
        // Wait until the upload shows in the store, so that there is something to clean up.
        while t.leftovers().await.is_empty() {
            tokio::select! {
                result = &mut put => panic!("the put finished: {result:?}"),
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
    }
    t.assert_empty().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_leftovers_are_swept_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let kept = {
        let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
        storage.put(chunked(b"kept", &[]), PutOptions::default()).await.unwrap()
    };
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(tmp.join("0190c0de-0000-7000-8000-000000000000")).unwrap();
    std::fs::write(tmp.join("0190c0de-0000-7000-8000-000000000000/data"), b"half").unwrap();
    std::fs::write(tmp.join("stray"), b"x").unwrap();

    let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
    assert_eq!(entries(dir.path(), "tmp"), Vec::<String>::new());
    assert_eq!(read(&storage, &kept.id, None).await, b"kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_crash_leftovers_are_swept_once_old_enough() {
    if !crate::common::s3_configured() {
        return;
    }
    let t = TestStore::open(Backend::S3).await;
    let kept = t.storage.put(chunked(b"kept", &[]), PutOptions::default()).await.unwrap();
    t.leave_crash_leftovers().await;
    assert_eq!(t.leftovers().await.len(), 2);
    // Younger than the age given: they may be another replica's live upload.
    assert_eq!(t.storage.sweep(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(t.leftovers().await.len(), 2);

    assert_eq!(t.storage.sweep(std::time::Duration::ZERO).await.unwrap(), 2);
    assert_eq!(t.leftovers().await, Vec::<String>::new());
    assert_eq!(read(&t.storage, &kept.id, None).await, b"kept");
    assert_eq!(t.stored().await, vec![kept.id.to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_is_owned_by_one_process_at_a_time() {
    let (dir, _storage) = store().await;
    let err = Storage::open(&config(dir.path(), true)).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

async fn readiness_leaves_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    t.storage.check_ready().await.unwrap();
    t.assert_empty().await;
}

async fn content_types_are_stored_normalised(backend: Backend) {
    let t = TestStore::open(backend).await;
    for (sent, stored) in [
        ("text/plain\r\nX-Evil: 1", "application/octet-stream"),
        ("Text/HTML; charset=UTF-7", "text/html"),
        ("image/PNG", "image/png"),
    ] {
        let opts = PutOptions { content_type: Some(sent.into()), ..Default::default() };
        let info = t.storage.put(chunked(b"x", &[]), opts).await.unwrap();
        assert_eq!(info.content_type, stored);
        assert_eq!(t.storage.head(&info.id).await.unwrap().content_type, stored, "{sent:?}");
    }
}
