//! Where a resumable upload stands, in `uploads/<id>/state`: two slots,
//! saved to in turn. Each holds a sequence number, the state as JSON and a
//! checksum of both, so a save is one write into blocks the file already
//! has and one flush (no new file, no rename, no directory sync: the old
//! `state.json`'s three journal commits per append, BENCHMARKS.md), and a
//! save cut short by a crash leaves the other slot, the last complete one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::layout::{META_MAX, STATE, STATE_JSON, not_found, read_json, sync_dir};
use crate::staged::UploadStatus;
use crate::{Error, ObjectId, Result};

/// Sequence number (8 bytes), length of the JSON (8), the first 16 bytes of
/// the SHA-256 of the sequence number, length and JSON.
const HEADER: usize = 32;
/// A slot's place in the file: room for the largest state, as for metadata.
const SLOT: u64 = HEADER as u64 + META_MAX;

/// Writes the first state of a new upload into `dir` (not yet in place:
/// the caller renames `dir` into `uploads/`, so it is made durable here).
pub(super) fn create(dir: &Path, status: &UploadStatus, fsync: bool) -> Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(dir.join(STATE))?;
    write_slot(&file, 0, 1, status)?;
    if fsync {
        file.sync_data()?;
        sync_dir(dir)?;
    }
    Ok(())
}

/// Saves `status` over the older of the two slots: the newer, the state
/// saved last, stays whole whatever happens to this write.
pub(super) fn save(dir: &Path, status: &UploadStatus, fsync: bool) -> Result<()> {
    let file = match OpenOptions::new().read(true).write(true).open(dir.join(STATE)) {
        Ok(file) => file,
        // An upload begun before the slots: its first save makes the file.
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.join(STATE_JSON).exists() => {
            create(dir, status, fsync)?;
            let _ = fs::remove_file(dir.join(STATE_JSON));
            return Ok(());
        }
        Err(e) => return Err(not_found(e, &status.id)),
    };
    let (index, seq) = newest(&file)?.map_or((0, 1), |(index, seq, _)| (1 - index, seq + 1));
    write_slot(&file, index, seq, status)?;
    if fsync {
        file.sync_data()?;
    }
    Ok(())
}

/// The state saved last.
pub(super) fn read(dir: &Path, id: &ObjectId) -> Result<UploadStatus> {
    let status: UploadStatus = match File::open(dir.join(STATE)) {
        Ok(file) => match newest(&file)? {
            Some((_, _, json)) => {
                serde_json::from_slice(&json).map_err(|e| damaged(id, format!("{STATE}: {e}")))?
            }
            None => return Err(damaged(id, "neither of its slots holds a whole state".into())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Saved by a version before the slots.
            let file = File::open(dir.join(STATE_JSON)).map_err(|e| not_found(e, id))?;
            read_json(file, STATE_JSON, id)?
        }
        Err(e) => return Err(e.into()),
    };
    if status.id != *id {
        return Err(damaged(id, format!("{STATE} describes another upload, {}", status.id)));
    }
    if status.sha256.len() != status.offset {
        return Err(damaged(id, format!("{STATE}: its SHA-256 state is not at its offset")));
    }
    Ok(status)
}

fn damaged(id: &ObjectId, reason: String) -> Error {
    Error::Damaged { id: id.to_string(), reason }
}

fn write_slot(file: &File, index: u64, seq: u64, status: &UploadStatus) -> Result<()> {
    let json = serde_json::to_vec(status).map_err(io::Error::other)?;
    if json.len() as u64 > META_MAX {
        return Err(Error::InvalidUpload(format!(
            "the upload's state would take {} bytes, more than {META_MAX}",
            json.len()
        )));
    }
    let mut slot = Vec::with_capacity(HEADER + json.len());
    slot.extend_from_slice(&seq.to_le_bytes());
    slot.extend_from_slice(&(json.len() as u64).to_le_bytes());
    slot.extend_from_slice(&checksum(seq, &json));
    slot.extend_from_slice(&json);
    file.write_all_at(&slot, index * SLOT)?;
    Ok(())
}

fn checksum(seq: u64, json: &[u8]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(seq.to_le_bytes())
        .chain_update((json.len() as u64).to_le_bytes())
        .chain_update(json)
        .finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The whole slot with the highest sequence number: its index, number and JSON.
fn newest(file: &File) -> io::Result<Option<(u64, u64, Vec<u8>)>> {
    let mut best: Option<(u64, u64, Vec<u8>)> = None;
    for index in 0..2 {
        if let Some((seq, json)) = read_slot(file, index)?
            && best.as_ref().is_none_or(|&(_, best_seq, _)| seq > best_seq)
        {
            best = Some((index, seq, json));
        }
    }
    Ok(best)
}

/// A slot's sequence number and JSON, if it holds a whole save.
fn read_slot(file: &File, index: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    let mut header = [0u8; HEADER];
    if !read_exact_or_eof(file, &mut header, index * SLOT)? {
        return Ok(None);
    }
    let seq = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let len = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if seq == 0 || len > META_MAX {
        return Ok(None);
    }
    let mut json = vec![0; len as usize];
    if !read_exact_or_eof(file, &mut json, index * SLOT + HEADER as u64)? {
        return Ok(None);
    }
    Ok((checksum(seq, &json) == header[16..]).then_some((seq, json)))
}

/// Fills `buf` from `offset`; false if the file ends first.
fn read_exact_or_eof(file: &File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    match file.read_exact_at(buf, offset) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256::Sha256State;

    fn status(id: ObjectId, offset: u64) -> UploadStatus {
        let mut sha256 = Sha256State::default();
        sha256.update(&vec![1u8; offset as usize]);
        let now = time::OffsetDateTime::now_utc();
        UploadStatus {
            id,
            offset,
            length: Some(1 << 20),
            max_size: None,
            filename: Some("a.bin".into()),
            content_type: "application/octet-stream".into(),
            partial: false,
            created_at: now,
            expires_at: now,
            expire_after: std::time::Duration::from_secs(60),
            retention: crate::Retention::default(),
            sha256,
        }
    }

    #[test]
    fn each_save_goes_to_the_other_slot_and_the_newest_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let id = ObjectId::new();
        create(dir.path(), &status(id, 0), true).unwrap();
        for offset in [10, 20, 30] {
            save(dir.path(), &status(id, offset), true).unwrap();
            assert_eq!(read(dir.path(), &id).unwrap().offset, offset);
        }
        let file = File::open(dir.path().join(STATE)).unwrap();
        let seqs: Vec<u64> = (0..2).map(|i| read_slot(&file, i).unwrap().unwrap().0).collect();
        assert_eq!(seqs, [3, 4], "four saves, in turn");
    }

    /// A save torn anywhere (as a crash leaves it) costs only that save.
    #[test]
    fn a_torn_save_leaves_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let id = ObjectId::new();
        create(dir.path(), &status(id, 0), false).unwrap();
        save(dir.path(), &status(id, 64), false).unwrap();
        let path = dir.path().join(STATE);
        let whole = fs::read(&path).unwrap();
        // The next save would go to slot 0: cut it short, or flip a byte in it.
        save(dir.path(), &status(id, 128), false).unwrap();
        let torn = fs::read(&path).unwrap();
        let end = HEADER + u64::from_le_bytes(torn[8..16].try_into().unwrap()) as usize;
        for cut in [1, 8, 16, HEADER, HEADER + 1, end - 1] {
            let mut bytes = torn.clone();
            bytes[cut..end].copy_from_slice(&whole[cut..end]);
            fs::write(&path, &bytes).unwrap();
            assert_eq!(read(dir.path(), &id).unwrap().offset, 64, "cut at {cut}");
        }
        let mut flipped = torn.clone();
        flipped[end - 2] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert_eq!(read(dir.path(), &id).unwrap().offset, 64);
        // And the next save keeps that one: it overwrites the damaged slot.
        save(dir.path(), &status(id, 96), false).unwrap();
        assert_eq!(read(dir.path(), &id).unwrap().offset, 96);
        fs::write(&path, vec![0u8; 2 * SLOT as usize]).unwrap();
        assert!(matches!(read(dir.path(), &id), Err(Error::Damaged { .. })));
    }

    #[test]
    fn a_state_json_of_an_earlier_version_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let id = ObjectId::new();
        fs::write(dir.path().join(STATE_JSON), serde_json::to_vec(&status(id, 5)).unwrap())
            .unwrap();
        assert_eq!(read(dir.path(), &id).unwrap().offset, 5);
        save(dir.path(), &status(id, 9), true).unwrap();
        assert!(!dir.path().join(STATE_JSON).exists());
        assert_eq!(read(dir.path(), &id).unwrap().offset, 9);
        assert!(matches!(read(dir.path(), &ObjectId::new()), Err(Error::Damaged { .. })));
    }
}
