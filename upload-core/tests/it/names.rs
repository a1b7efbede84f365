use upload_core::{Error, FileName, PutOptions};

use crate::common::*;

on_both_backends!(hostile_names_are_stored_as_metadata_only);

async fn hostile_names_are_stored_as_metadata_only(backend: Backend) {
    let t = TestStore::open(backend).await;
    let storage = &t.storage;
    let long = "A".repeat(10_000);
    let cases: [(&[u8], &str); 6] = [
        (b"../../etc/passwd", "passwd"),
        (b"a/b", "b"),
        (b"C:\\x", "x"),
        (b"nul\0byte.txt", "nulbyte.txt"),
        (b"bad\xff\xfeutf8.bin", "bad\u{FFFD}\u{FFFD}utf8.bin"),
        (long.as_bytes(), &long[..FileName::MAX_BYTES]),
    ];
    for (raw, expected) in cases {
        let name = FileName::sanitize_bytes(raw).unwrap();
        let opts = PutOptions { filename: Some(name), ..Default::default() };
        let info = storage.put(chunked(b"data", &[]), opts).await.unwrap();
        assert_eq!(info.filename.as_deref(), Some(expected));
        assert_eq!(storage.head(&info.id).await.unwrap().filename.as_deref(), Some(expected));
    }
    // Only server ids name anything stored; nothing escaped the root.
    let objects = t.stored().await;
    assert_eq!(objects.len(), 6);
    assert!(objects.iter().all(|n| n.parse::<upload_core::ObjectId>().is_ok()), "{objects:?}");
    if backend == Backend::Local {
        let mut root = entries(t.dir.path(), "");
        root.retain(|n| n != ".lock");
        assert_eq!(root, ["counters", "expiry", "objects", "tmp", "uploads"]);
        assert!(!t.dir.path().parent().unwrap().join("passwd").exists());
    }

    assert!(matches!(FileName::sanitize_bytes(b"../"), Err(Error::InvalidName(_))));
}
