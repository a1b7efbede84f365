use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use upload_core::{ByteRange, LocalConfig, ObjectId, Storage, StorageConfig};

pub type Chunk = Result<Bytes, std::io::Error>;

pub fn config(dir: &Path, fsync: bool) -> StorageConfig {
    StorageConfig::Local(LocalConfig { root: dir.to_path_buf(), fsync })
}

/// A durable store in a fresh TempDir.
pub async fn store() -> (TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
    (dir, storage)
}

/// `data` cut at the given chunk sizes (the last chunk takes the rest).
pub fn chunked(data: &[u8], sizes: &[usize]) -> impl Stream<Item = Chunk> + use<> {
    let mut chunks = Vec::new();
    let mut rest = Bytes::copy_from_slice(data);
    for &size in sizes {
        let at = size.min(rest.len());
        chunks.push(Ok(rest.split_to(at)));
    }
    chunks.push(Ok(rest));
    stream::iter(chunks)
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub async fn read(storage: &Storage, id: &ObjectId, range: Option<ByteRange>) -> Vec<u8> {
    let object = storage.get(id, range).await.unwrap();
    let mut out = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Names of the entries in `root/sub`.
pub fn entries(root: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that nothing is stored and no temporary file remains.
pub fn assert_empty(root: &Path) {
    assert_eq!(entries(root, "objects"), Vec::<String>::new(), "objects");
    assert_eq!(entries(root, "tmp"), Vec::<String>::new(), "temporary files");
}
