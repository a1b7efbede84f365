use std::io;
use std::task::Poll;

use futures_util::{StreamExt, stream};
use upload_core::{Error, PutOptions, Storage, WRITE_CHUNK};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_fails_half_way_leaves_nothing() {
    let (dir, storage) = store().await;
    let data = bytes(3 * WRITE_CHUNK + 10, 5);
    let broken = stream::iter([Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer gone"))]);
    let body = chunked(&data, &[65_536; 40]).chain(broken);
    let err = storage.put(body, PutOptions::default()).await.unwrap_err();
    assert!(matches!(&err, Error::Body(e) if e.to_string() == "peer gone"), "{err:?}");
    assert_empty(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_over_limit_stream_stops_at_the_limit_and_leaves_nothing() {
    let (dir, storage) = store().await;
    let limit = 2 * WRITE_CHUNK as u64 + 1;
    let opts = || PutOptions { max_size: Some(limit), ..Default::default() };

    // The stream would go on forever: the limit must stop reading it.
    let block = bytes::Bytes::from(bytes(65_536, 1));
    let endless = stream::repeat(block).map(Ok::<_, io::Error>);
    let err = storage.put(endless, opts()).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: l } if l == limit), "{err:?}");
    assert_empty(dir.path());

    let exact = bytes(limit as usize, 2);
    let info = storage.put(chunked(&exact, &[1000]), opts()).await.unwrap();
    assert_eq!(info.size, limit);
}

#[test]
fn a_put_dropped_half_way_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let mut reached_tx = Some(reached_tx);
        // 3 MiB arrive, then the client stalls: the stream never yields again.
        let stall = stream::poll_fn(move |_| {
            if let Some(tx) = reached_tx.take() {
                let _ = tx.send(());
            }
            Poll::<Option<Chunk>>::Pending
        });
        let data = bytes(3 * WRITE_CHUNK, 8);
        let put = storage.put(chunked(&data, &[65_536; 48]).chain(stall), PutOptions::default());
        let mut put = std::pin::pin!(put);
        tokio::select! {
            result = &mut put => panic!("the put finished: {result:?}"),
            _ = reached_rx => {}
        }
        assert_eq!(entries(dir.path(), "tmp").len(), 1, "the upload is in progress");
    });
    // Dropping the runtime waits for the blocking write the dropped put left in flight.
    drop(rt);
    assert_empty(dir.path());
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
async fn a_root_is_owned_by_one_process_at_a_time() {
    let (dir, _storage) = store().await;
    let err = Storage::open(&config(dir.path(), true)).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_writes_a_probe_and_leaves_nothing() {
    let (dir, storage) = store().await;
    storage.check_ready().await.unwrap();
    assert_empty(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_content_types_are_refused_before_anything_is_written() {
    let (dir, storage) = store().await;
    let opts =
        PutOptions { content_type: Some("text/plain\r\nX-Evil: 1".into()), ..Default::default() };
    let err = storage.put(chunked(b"x", &[]), opts).await.unwrap_err();
    assert!(matches!(err, Error::InvalidContentType(_)), "{err:?}");
    assert_empty(dir.path());
}
