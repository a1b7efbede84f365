use upload_core::{Error, FileName, PutOptions};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn hostile_names_are_stored_as_metadata_only() {
    let (dir, storage) = store().await;
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
    // Only server ids name anything on disk; nothing escaped the root.
    let objects = entries(dir.path(), "objects");
    assert_eq!(objects.len(), 6);
    assert!(objects.iter().all(|n| n.parse::<upload_core::ObjectId>().is_ok()), "{objects:?}");
    let mut root = entries(dir.path(), "");
    root.retain(|n| n != ".lock");
    assert_eq!(root, ["objects", "tmp"]);
    assert!(!dir.path().parent().unwrap().join("passwd").exists());

    assert!(matches!(FileName::sanitize_bytes(b"../"), Err(Error::InvalidName(_))));
}
