use bytes::Bytes;
use futures_util::{StreamExt, stream};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use upload_core::{ByteRange, Error, PutOptions, Storage, WRITE_CHUNK};

use crate::common::*;

on_both_backends!(
    round_trips_small_and_odd_sizes,
    ranges_read_exact_slices,
    metadata_is_kept,
    checksum_is_verified_before_anything_is_visible,
    a_hundred_concurrent_puts_all_land,
);

async fn round_trips_small_and_odd_sizes(backend: Backend) {
    let t = TestStore::open(backend).await;
    let mut ids = Vec::new();
    for (len, sizes) in [
        (0, vec![]),
        (1, vec![]),
        (1, vec![0, 0, 1]),
        (WRITE_CHUNK - 1, vec![7, 65_536]),
        (WRITE_CHUNK, vec![WRITE_CHUNK]),
        (3 * WRITE_CHUNK + 7, vec![1, WRITE_CHUNK + 3, 2 * WRITE_CHUNK]),
        // S3: exactly one part, then several parts in flight with a short last one.
        (PART, vec![PART - 1]),
        (3 * PART + 7, vec![7, 1_000_003, 65_536, 3 * WRITE_CHUNK]),
    ] {
        let data = bytes(len, len as u64);
        let info = t.storage.put(chunked(&data, &sizes), PutOptions::default()).await.unwrap();
        assert_eq!(info.size, len as u64);
        assert_eq!(info.sha256, sha256_hex(&data));
        assert_eq!(info.content_type, "application/octet-stream");
        assert_eq!(t.storage.head(&info.id).await.unwrap(), info);
        assert_eq!(read(&t.storage, &info.id, None).await, data, "len {len}");
        ids.push(info.id.to_string());
    }
    assert_eq!(t.stored().await, ids);
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}

async fn ranges_read_exact_slices(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = bytes(PART + 2 * WRITE_CHUNK + 100, 3);
    let info = t.storage.put(chunked(&data, &[]), PutOptions::default()).await.unwrap();
    let n = data.len() as u64;
    for (range, expected) in [
        (ByteRange::Inclusive { first: 0, last: 0 }, &data[..1]),
        (ByteRange::Inclusive { first: 10, last: n + 50 }, &data[10..]),
        (ByteRange::From(n - 1), &data[data.len() - 1..]),
        (ByteRange::Suffix(WRITE_CHUNK as u64 + 1), &data[data.len() - WRITE_CHUNK - 1..]),
    ] {
        let object = t.storage.get(&info.id, Some(range)).await.unwrap();
        assert_eq!(object.info, info);
        assert_eq!(object.range.end - object.range.start, expected.len() as u64);
        assert_eq!(read(&t.storage, &info.id, Some(range)).await, expected, "{range:?}");
    }
    let err = t.storage.get(&info.id, Some(ByteRange::From(n))).await.unwrap_err();
    assert!(matches!(err, Error::RangeNotSatisfiable { size } if size == n), "{err:?}");
}

async fn metadata_is_kept(backend: Backend) {
    let t = TestStore::open(backend).await;
    let before = time::OffsetDateTime::now_utc();
    // Small (one request) and multipart uploads carry their metadata alike.
    for len in [4, PART + 1] {
        let opts = PutOptions {
            filename: Some(upload_core::FileName::sanitize("rapport été.pdf").unwrap()),
            content_type: Some("application/pdf".into()),
            ..Default::default()
        };
        let info = t.storage.put(chunked(&bytes(len, 1), &[]), opts).await.unwrap();
        assert_eq!(info.filename.as_deref(), Some("rapport été.pdf"));
        assert_eq!(info.content_type, "application/pdf");
        assert!(info.created_at >= before && info.created_at <= time::OffsetDateTime::now_utc());
        assert_eq!(t.storage.head(&info.id).await.unwrap(), info);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["id"], info.id.to_string());
        assert!(json["created_at"].as_str().unwrap().ends_with('Z'), "{json}");
    }
}

async fn checksum_is_verified_before_anything_is_visible(backend: Backend) {
    let t = TestStore::open(backend).await;
    // One batch, and (on S3) a multipart upload that must be aborted.
    for len in [WRITE_CHUNK + 1, 2 * PART + 1] {
        let data = bytes(len, 9);
        let good: [u8; 32] = Sha256::digest(&data).into();
        let mut bad = good;
        bad[0] ^= 1;

        let opts = |sha| PutOptions { expected_sha256: Some(sha), ..Default::default() };
        let err = t.storage.put(chunked(&data, &[1000]), opts(bad)).await.unwrap_err();
        match err {
            Error::ChecksumMismatch { expected, actual } => {
                assert_eq!(expected, hex::encode(bad));
                assert_eq!(actual, hex::encode(good));
            }
            other => panic!("{other:?}"),
        }
        t.assert_empty().await;

        let info = t.storage.put(chunked(&data, &[1000]), opts(good)).await.unwrap();
        assert_eq!(info.sha256, hex::encode(good));
        t.storage.delete(&info.id).await.unwrap();
    }
}

async fn a_hundred_concurrent_puts_all_land(backend: Backend) {
    let t = TestStore::open(backend).await;
    let puts = (0..100u64).map(|i| {
        let storage = t.storage.clone();
        tokio::spawn(async move {
            let data = bytes(1000 + i as usize * 997, i);
            let info = storage.put(chunked(&data, &[333, 4096]), PutOptions::default()).await;
            (data, info.unwrap())
        })
    });
    let results = futures_util::future::join_all(puts).await;
    let mut ids = std::collections::HashSet::new();
    for result in results {
        let (data, info) = result.unwrap();
        assert!(ids.insert(info.id));
        assert_eq!(info.sha256, sha256_hex(&data));
        assert_eq!(read(&t.storage, &info.id, None).await, data);
    }
    assert_eq!(t.stored().await.len(), 100);
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn past_four_gibibytes() {
    // Generated, never held in memory: the same 1 MiB block repeated, then 3 bytes.
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&config(dir.path(), false)).await.unwrap();
    let block = Bytes::from(bytes(WRITE_CHUNK, 42));
    let blocks = 4096;
    let tail = Bytes::from_static(b"end");
    let body = stream::repeat(block.clone())
        .take(blocks)
        .chain(stream::once(async { tail.clone() }))
        .map(Ok::<_, std::io::Error>);
    let mut expected = Sha256::new();
    for _ in 0..blocks {
        expected.update(&block);
    }
    expected.update(&tail);

    let info = storage.put(body, PutOptions::default()).await.unwrap();
    assert_eq!(info.size, (4u64 << 30) + 3);
    assert_eq!(info.sha256, hex::encode(expected.finalize()));
    assert_eq!(
        read(&storage, &info.id, Some(ByteRange::Suffix(5))).await,
        [block[WRITE_CHUNK - 2], block[WRITE_CHUNK - 1], b'e', b'n', b'd']
    );
    storage.delete(&info.id).await.unwrap();
    assert_dir_empty(dir.path());
}

fn chunking() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    (0usize..3 * WRITE_CHUNK, any::<u64>()).prop_flat_map(|(len, seed)| {
        let sizes = prop::collection::vec(
            prop_oneof![0usize..64, 1usize..70_000, WRITE_CHUNK - 5..WRITE_CHUNK + 5],
            0..12,
        );
        (Just(bytes(len, seed)), sizes)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any chunking of the same bytes stores the same object, with the digest of a one-shot hash.
    #[test]
    fn any_chunking_stores_the_same_bytes((data, sizes) in chunking()) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let storage = Storage::open(&config(dir.path(), false)).await.unwrap();
            let info = storage.put(chunked(&data, &sizes), PutOptions::default()).await.unwrap();
            prop_assert_eq!(info.size, data.len() as u64);
            prop_assert_eq!(&info.sha256, &hex::encode(Sha256::digest(&data)));
            prop_assert_eq!(read(&storage, &info.id, None).await, data.clone());
            Ok(())
        })?;
    }
}
