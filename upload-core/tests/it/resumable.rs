//! Resumable uploads: appends at offsets, checksums, interruptions,
//! restarts, expiry and concatenation.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use sha1::Digest as _;
use upload_core::{
    Append, Checksum, ChecksumAlgorithm, Error, FileName, NewUpload, ObjectId, Retention, Storage,
    WRITE_CHUNK,
};

use crate::common::*;

on_both_backends!(
    appends_in_any_pieces_complete_to_the_same_object,
    a_wrong_offset_changes_nothing,
    an_append_limited_to_another_owner_changes_nothing,
    a_bad_checksum_discards_the_append,
    a_cut_body_keeps_what_arrived_unless_checksummed,
    a_dropped_append_saves_what_arrived,
    appends_dropped_at_any_moment_store_exactly_what_they_saved,
    length_may_be_declared_later_but_never_changed,
    limits_hold_across_appends,
    one_append_at_a_time,
    replicas_taking_turns_append_from_each_others_state,
    expired_uploads_are_refused_then_swept,
    partials_concatenate_in_order,
    an_aborted_upload_leaves_nothing,
);

/// Appends dropped at many different moments, mostly while waiting on the
/// store or the hasher, as the HTTP server drops a handler whose client went
/// away: each saves what it took, and the bytes stored are always exactly
/// those the saved offset and hash describe.
async fn appends_dropped_at_any_moment_store_exactly_what_they_saved(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = Bytes::from(bytes(3 * PART + 12_345, 9));
    let id = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap().id;
    let mut offset = 0;
    for round in 0..24u64 {
        let storage = t.storage.clone();
        let rest = data.slice(offset..);
        let with = if round % 2 == 0 { sized(rest.len()) } else { Append::default() };
        let append = tokio::spawn(async move {
            let chunks = (0..rest.len()).step_by(100_000).map(move |at| {
                Ok::<_, std::io::Error>(rest.slice(at..(at + 100_000).min(rest.len())))
            });
            storage.append(&id, offset as u64, stream::iter(chunks), with).await
        });
        tokio::time::sleep(Duration::from_micros(2_000 + round * 1_300)).await;
        append.abort();
        let _ = append.await;
        t.storage.settle().await;
        offset = t.storage.upload_status(&id).await.unwrap().offset as usize;
    }
    // On S3, a lease dropped mid-way is deleted in the background: one
    // may be live for a moment yet.
    for attempt in 0.. {
        let rest = chunked(&data[offset..], &[]);
        match t.storage.append(&id, offset as u64, rest, Append::default()).await {
            Err(Error::Locked(_)) if attempt < 100 => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            done => {
                assert_eq!(done.unwrap().offset, data.len() as u64);
                break;
            }
        }
    }
    let info = t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&data));
    assert!(read(&t.storage, &id, None).await == data, "the stored bytes differ from those sent");
}

fn new(length: Option<u64>) -> NewUpload {
    NewUpload {
        length,
        filename: Some(FileName::sanitize("movie.mkv").unwrap()),
        content_type: Some("video/x-matroska".into()),
        ..NewUpload::default()
    }
}

/// An append whose body's length is known, as an HTTP `Content-Length`
/// tells it (on S3, its parts are streamed while their bytes arrive).
fn sized(len: usize) -> Append {
    Append { body_length: Some(len as u64), ..Append::default() }
}

async fn append(
    storage: &Storage,
    id: &ObjectId,
    offset: u64,
    data: &[u8],
) -> upload_core::Result<u64> {
    let body = chunked(data, &[data.len() / 3, 7]);
    let status = storage.append(id, offset, body, sized(data.len())).await?;
    Ok(status.offset)
}

async fn appends_in_any_pieces_complete_to_the_same_object(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = bytes(3 * PART + 12_345, 1);
    for cuts in [vec![data.len()], vec![1, 63, 64, 65, PART, 2 * PART + 1], vec![PART, 2 * PART]] {
        let status = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap();
        let mut from = 0;
        for &cut in cuts.iter().chain([&data.len()]) {
            let offset =
                append(&t.storage, &status.id, from as u64, &data[from..cut]).await.unwrap();
            assert_eq!(offset, cut as u64);
            assert_eq!(t.storage.upload_status(&status.id).await.unwrap().offset, offset);
            from = cut;
        }
        assert!(t.storage.upload_status(&status.id).await.unwrap().is_finished());
        let info = t.storage.complete_upload(&status.id).await.unwrap();
        assert_eq!(info.id, status.id, "the upload's id is the object's");
        assert_eq!(info.sha256, sha256_hex(&data));
        assert_eq!(
            (info.filename.as_deref(), info.content_type.as_str()),
            (Some("movie.mkv"), "video/x-matroska")
        );
        assert_eq!(t.storage.head(&info.id).await.unwrap(), info);
        assert_eq!(read(&t.storage, &info.id, None).await, data);
        assert!(matches!(t.storage.upload_status(&info.id).await, Err(Error::NotFound(_))));
    }
    assert_eq!(t.leftovers().await, Vec::<String>::new());
    assert_eq!(t.upload_keys().await, Vec::<String>::new());
}

async fn a_wrong_offset_changes_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    let id = t.storage.create_upload(new(Some(10))).await.unwrap().id;
    append(&t.storage, &id, 0, b"hello").await.unwrap();
    for wrong in [0, 4, 6, 100] {
        let err = append(&t.storage, &id, wrong, b"xx").await.unwrap_err();
        assert!(matches!(err, Error::OffsetMismatch { offset: 5 }), "{wrong}: {err:?}");
    }
    append(&t.storage, &id, 5, b"world").await.unwrap();
    let err = t.storage.append(&id, 10, chunked(b"!", &[]), Append::default()).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 10 }), "{err:?}");
    let info = t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(read(&t.storage, &info.id, None).await, b"helloworld");
}

fn checksum(algorithm: ChecksumAlgorithm, data: &[u8]) -> Checksum {
    let digest = match algorithm {
        ChecksumAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
        ChecksumAlgorithm::Md5 => md5::Md5::digest(data).to_vec(),
        _ => sha2::Sha256::digest(data).to_vec(),
    };
    Checksum { algorithm, digest }
}

async fn an_append_limited_to_another_owner_changes_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    let owned = |owner: &str| Retention { owner: Some(owner.into()), lifetime: None };
    let upload = NewUpload { retention: owned("alice"), ..new(Some(4)) };
    let id = t.storage.create_upload(upload).await.unwrap().id;
    let unowned = t.storage.create_upload(new(Some(4))).await.unwrap().id;
    let by = |owner: &str| Append { owner: Some(owner.into()), ..Default::default() };
    for (id, owner) in [(id, "bob"), (unowned, "alice")] {
        let err = t.storage.append(&id, 0, chunked(b"ab", &[]), by(owner)).await.unwrap_err();
        assert!(matches!(err, Error::NotOwner(_)), "{owner}: {err:?}");
        assert_eq!(t.storage.upload_status(&id).await.unwrap().offset, 0);
    }
    let status = t.storage.append(&id, 0, chunked(b"ab", &[]), by("alice")).await.unwrap();
    assert_eq!(status.offset, 2);
    let status = t.storage.append(&id, 2, chunked(b"cd", &[]), Append::default()).await.unwrap();
    assert_eq!(status.offset, 4, "no owner given: any upload");
}

async fn a_bad_checksum_discards_the_append(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = bytes(2 * PART, 2);
    let id = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap().id;
    let (first, second) = data.split_at(PART + 3);
    for algorithm in ChecksumAlgorithm::ALL {
        let wrong = checksum(algorithm, b"other bytes");
        let with = Append { checksum: Some(wrong), ..Default::default() };
        let err = t.storage.append(&id, 0, chunked(first, &[1000]), with).await.unwrap_err();
        assert!(
            matches!(err, Error::AppendChecksumMismatch { algorithm: a } if a == algorithm.name()),
            "{err:?}"
        );
        assert_eq!(t.storage.upload_status(&id).await.unwrap().offset, 0);
    }
    let right =
        Append { checksum: Some(checksum(ChecksumAlgorithm::Md5, first)), ..Default::default() };
    t.storage.append(&id, 0, chunked(first, &[]), right).await.unwrap();
    let right =
        Append { checksum: Some(checksum(ChecksumAlgorithm::Sha1, second)), ..Default::default() };
    t.storage.append(&id, first.len() as u64, chunked(second, &[5]), right).await.unwrap();
    let info = t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&data));
    assert_eq!(read(&t.storage, &id, None).await, data);
}

/// `data`, then a failure, as a client that goes away mid-body.
fn cut_after(data: &[u8]) -> impl futures_util::Stream<Item = Chunk> + use<> {
    let gone = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away");
    stream::iter([Ok(Bytes::copy_from_slice(data)), Err(gone)])
}

async fn a_cut_body_keeps_what_arrived_unless_checksummed(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = bytes(PART + 777, 3);
    let id = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap().id;
    // The whole length declared: on S3, a part was under way when the body stopped.
    let checksum = Some(checksum(ChecksumAlgorithm::Sha256, &data));
    let with = Append { checksum, ..sized(data.len()) };
    let err = t.storage.append(&id, 0, cut_after(&data[..1000]), with).await.unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err:?}");
    assert_eq!(t.storage.upload_status(&id).await.unwrap().offset, 0, "checksummed: nothing kept");
    let err =
        t.storage.append(&id, 0, cut_after(&data[..1000]), sized(data.len())).await.unwrap_err();
    assert!(matches!(err, Error::Body(_)), "{err:?}");
    assert_eq!(t.storage.upload_status(&id).await.unwrap().offset, 1000);

    // A restart (the store opened again) goes on from there.
    let t = t.reopen().await;
    let storage = &t.storage;
    let status = storage.upload_status(&id).await.unwrap();
    assert_eq!((status.offset, status.length), (1000, Some(data.len() as u64)));
    append(storage, &id, 1000, &data[1000..]).await.unwrap();
    let info = storage.complete_upload(&id).await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&data));
    assert_eq!(read(storage, &id, None).await, data);
}

/// The append's future dropped mid-body (the HTTP server drops a handler
/// whose client went away): what arrived is saved in the background.
async fn a_dropped_append_saves_what_arrived(backend: Backend) {
    let t = TestStore::open(backend).await;
    let data = bytes(3 * WRITE_CHUNK, 8);
    let id = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap().id;
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
    let (started, _) = tokio::sync::oneshot::channel();
    let storage = t.storage.clone();
    let body = body_from(rx, started);
    let with = sized(data.len());
    let append = tokio::spawn(async move { storage.append(&id, 0, body, with).await });
    let cuts = [0, WRITE_CHUNK + 5, WRITE_CHUNK + 1005, WRITE_CHUNK + 1010];
    for piece in cuts.windows(2) {
        tx.send(Ok(Bytes::copy_from_slice(&data[piece[0]..piece[1]]))).await.unwrap();
    }
    // The third chunk was sent once the second was taken, which the
    // append does only once the first is pushed: the first is in.
    append.abort();
    assert!(append.await.unwrap_err().is_cancelled());
    t.storage.settle().await;
    let offset = t.storage.upload_status(&id).await.unwrap().offset;
    assert!(cuts[1..].contains(&(offset as usize)), "{offset}");
    let rest = &data[offset as usize..];
    t.storage.append(&id, offset, chunked(rest, &[]), Append::default()).await.unwrap();
    let info = t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&data));
}

async fn length_may_be_declared_later_but_never_changed(backend: Backend) {
    let t = TestStore::open(backend).await;
    let id = t.storage.create_upload(new(None)).await.unwrap().id;
    append(&t.storage, &id, 0, b"abc").await.unwrap();
    let err = t.storage.complete_upload(&id).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUpload(_)), "unknown length: {err:?}");
    let declare = |length| Append { length: Some(length), ..Default::default() };
    let err = t.storage.append(&id, 3, chunked(b"", &[]), declare(2)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUpload(_)), "shorter than stored: {err:?}");
    t.storage.append(&id, 3, chunked(b"de", &[]), declare(6)).await.unwrap();
    let err = t.storage.append(&id, 5, chunked(b"f", &[]), declare(7)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUpload(_)), "changed: {err:?}");
    let status = t.storage.append(&id, 5, chunked(b"f", &[]), declare(6)).await.unwrap();
    assert!(status.is_finished());
    t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(read(&t.storage, &id, None).await, b"abcdef");
}

async fn limits_hold_across_appends(backend: Backend) {
    let t = TestStore::open(backend).await;
    let big = NewUpload { max_size: Some(10), ..new(Some(11)) };
    assert!(matches!(t.storage.create_upload(big).await, Err(Error::TooLarge { limit: 10 })));
    let id =
        t.storage.create_upload(NewUpload { max_size: Some(10), ..new(None) }).await.unwrap().id;
    append(&t.storage, &id, 0, b"12345678").await.unwrap();
    let err = append(&t.storage, &id, 8, b"901").await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 10 }), "{err:?}");
    assert_eq!(t.storage.upload_status(&id).await.unwrap().offset, 8);
}

async fn one_append_at_a_time(backend: Backend) {
    let t = TestStore::open(backend).await;
    let id = t.storage.create_upload(new(Some(4))).await.unwrap().id;
    // An append waiting for its body holds the upload.
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(1);
    let (started, reading) = tokio::sync::oneshot::channel();
    let body = body_from(rx, started);
    let storage = t.storage.clone();
    let first = tokio::spawn(async move { storage.append(&id, 0, body, Append::default()).await });
    reading.await.unwrap();
    tx.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
    let err = append(&t.storage, &id, 0, b"xy").await.unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err:?}");
    tx.send(Ok(Bytes::from_static(b"cd"))).await.unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap().unwrap().offset, 4);
    let err = append(&t.storage, &id, 0, b"xy").await.unwrap_err();
    assert!(matches!(err, Error::OffsetMismatch { offset: 4 }), "{err:?}");
    t.storage.complete_upload(&id).await.unwrap();
    assert_eq!(read(&t.storage, &id, None).await, b"abcd");
}

/// Each replica remembers the state it saved last: a turn of another one
/// in between must not make it append from its own older state.
async fn replicas_taking_turns_append_from_each_others_state(backend: Backend) {
    let t = TestStore::open(backend).await;
    let replica = match backend {
        Backend::S3 => t.replica().await,
        Backend::Local => t.storage.clone(),
    };
    let data = bytes(3 * PART + 5, 11);
    let id = t.storage.create_upload(new(Some(data.len() as u64))).await.unwrap().id;
    let cuts = [0, PART + 1, 2 * PART, 2 * PART + 7, data.len()];
    for (turn, piece) in cuts.windows(2).enumerate() {
        let me = if turn % 2 == 0 { &t.storage } else { &replica };
        let (from, to) = (piece[0] as u64, piece[1] as u64);
        if turn > 1 {
            // At the offset where its own last append left the upload.
            let err = append(me, &id, cuts[turn - 1] as u64, b"x").await.unwrap_err();
            assert!(matches!(err, Error::OffsetMismatch { offset } if offset == from), "{err:?}");
        }
        assert_eq!(append(me, &id, from, &data[piece[0]..piece[1]]).await.unwrap(), to);
    }
    let info = replica.complete_upload(&id).await.unwrap();
    assert_eq!(info.sha256, sha256_hex(&data));
    assert_eq!(read(&t.storage, &id, None).await, data);
}

/// The chunks sent on `rx`; tells `started` when it is first read.
fn body_from(
    mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    started: tokio::sync::oneshot::Sender<()>,
) -> impl futures_util::Stream<Item = Chunk> {
    let mut started = Some(started);
    stream::poll_fn(move |cx| {
        if let Some(started) = started.take() {
            let _ = started.send(());
        }
        rx.poll_recv(cx)
    })
}

async fn expired_uploads_are_refused_then_swept(backend: Backend) {
    let t = TestStore::open(backend).await;
    let short = NewUpload { expire_after: Duration::ZERO, ..new(Some(4)) };
    let gone = t.storage.create_upload(short).await.unwrap().id;
    // One with a part and a tail stored (on S3: a multipart upload and an object).
    let brief = NewUpload { expire_after: Duration::from_secs(2), ..new(Some(3 * PART as u64)) };
    let abandoned = t.storage.create_upload(brief).await.unwrap().id;
    let status =
        t.storage.append(&abandoned, 0, chunked(&bytes(PART + 1, 9), &[]), Append::default());
    let expires_at = status.await.unwrap().expires_at;
    let alive = t.storage.create_upload(new(Some(4))).await.unwrap().id;
    append(&t.storage, &alive, 0, b"ab").await.unwrap();
    assert!(matches!(t.storage.upload_status(&gone).await, Err(Error::Expired(_))));
    assert!(matches!(append(&t.storage, &gone, 0, b"ab").await, Err(Error::Expired(_))));
    // Expiry is a matter of time: wait for it.
    let left = expires_at - time::OffsetDateTime::now_utc();
    tokio::time::sleep(left.try_into().unwrap_or_default()).await;
    assert_eq!(t.storage.sweep_expired().await.unwrap(), 2);
    for id in [gone, abandoned] {
        assert!(matches!(t.storage.upload_status(&id).await, Err(Error::NotFound(_))));
    }
    assert_eq!(t.storage.upload_status(&alive).await.unwrap().offset, 2);
    assert_eq!(t.storage.sweep_expired().await.unwrap(), 0);
    assert_eq!(t.storage.expired_uploads_removed(), 2);
    // No multipart upload, staging object or temporary file is left; only the live upload.
    assert_eq!(t.leftovers().await, Vec::<String>::new());
    let kept = t.upload_keys().await;
    assert!(!kept.is_empty() && kept.iter().all(|k| k.contains(&alive.to_string())), "{kept:?}");
}

async fn partials_concatenate_in_order(backend: Backend) {
    let t = TestStore::open(backend).await;
    let pieces = [bytes(PART + 5, 4), bytes(77, 5), bytes(2 * PART, 6)];
    let mut ids = Vec::new();
    for piece in &pieces {
        let partial = NewUpload { partial: true, ..new(Some(piece.len() as u64)) };
        let id = t.storage.create_upload(partial).await.unwrap().id;
        append(&t.storage, &id, 0, piece).await.unwrap();
        assert!(matches!(t.storage.complete_upload(&id).await, Err(Error::InvalidUpload(_))));
        ids.push(id);
    }
    let unfinished =
        t.storage.create_upload(NewUpload { partial: true, ..new(Some(9)) }).await.unwrap();
    let err = t
        .storage
        .concatenate(&[ids[0], unfinished.id], None, None, None, &Retention::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUpload(_)), "{err:?}");
    let err = t
        .storage
        .concatenate(&ids, None, None, Some(100), &Retention::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100 }), "{err:?}");

    let whole: Vec<u8> = pieces.concat();
    let name = Some(FileName::sanitize("all.bin").unwrap());
    let info = t.storage.concatenate(&ids, name, None, None, &Retention::default()).await.unwrap();
    assert_eq!(
        (info.size, info.sha256.as_str()),
        (whole.len() as u64, sha256_hex(&whole).as_str())
    );
    assert_eq!(read(&t.storage, &info.id, None).await, whole);
    // The partials may be used again, in another order.
    let again = t
        .storage
        .concatenate(&[ids[1], ids[0]], None, None, None, &Retention::default())
        .await
        .unwrap();
    assert_eq!(read(&t.storage, &again.id, None).await, [&pieces[1][..], &pieces[0]].concat());
}

async fn an_aborted_upload_leaves_nothing(backend: Backend) {
    let t = TestStore::open(backend).await;
    let id = t.storage.create_upload(new(Some(PART as u64 * 2))).await.unwrap().id;
    append(&t.storage, &id, 0, &bytes(PART + 1, 7)).await.unwrap();
    t.storage.abort_upload(&id).await.unwrap();
    assert!(matches!(t.storage.upload_status(&id).await, Err(Error::NotFound(_))));
    assert!(matches!(t.storage.abort_upload(&id).await, Err(Error::NotFound(_))));
    assert!(matches!(append(&t.storage, &id, 0, b"x").await, Err(Error::NotFound(_))));
    t.assert_empty().await;
    assert_eq!(t.upload_keys().await, Vec::<String>::new());
}
