//! Resumable uploads on local disk. `uploads/<id>/data` holds the bytes,
//! `uploads/<id>/state` where the upload stands (`state.rs`: a crash leaves
//! the old state or the new, never a mix). Bytes past the saved offset are
//! a failed append's, and are cut off by the next one.
//!
//! The root's lock makes this process the only writer, so an in-memory set
//! of the uploads being worked on is enough to keep two requests from
//! appending to one upload at once.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use super::index::Index;
use super::layout::{
    DATA, META, STATE, TempGuard, create_data_file, not_found, remove_object_dir, sync_dir,
};
use super::state;
use super::write::{Job, LocalSink};
use crate::offload::blocking;
use crate::staged::{UploadStatus, UploadStore};
use crate::{Error, FileInfo, ObjectId, Result};

/// The uploads in progress under one root.
#[derive(Debug)]
pub(crate) struct LocalUploads {
    pub(super) uploads: PathBuf,
    pub(super) tmp: PathBuf,
    pub(super) objects: PathBuf,
    pub(super) index: Arc<Index>,
    pub(super) fsync: bool,
    pub(super) direct: bool,
    pub(super) busy: Arc<Busy>,
}

/// Uploads some request is working on, and the states this process saved
/// last. The root's lock makes it the only writer, so what it saved is what
/// the files hold: an append, which reads its upload's state twice (the
/// access check, then its claim), finds it here rather than on disk.
#[derive(Debug, Default)]
pub(super) struct Busy(Mutex<Known>);

#[derive(Debug, Default)]
struct Known {
    claimed: HashSet<ObjectId>,
    /// Filled by creates and saves only: a state read from disk may be
    /// older than one saved meanwhile.
    saved: HashMap<ObjectId, UploadStatus>,
}

/// States kept in memory at most; past that they are forgotten all at once
/// (and read from disk until saved again).
const SAVED_MAX: usize = 1024;

impl Busy {
    fn lock(&self) -> MutexGuard<'_, Known> {
        // Single inserts and removes: a poisoned set is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn saved(&self, status: &UploadStatus) {
        let mut known = self.lock();
        if known.saved.len() >= SAVED_MAX {
            known.saved.clear();
        }
        known.saved.insert(status.id, status.clone());
    }

    fn forget(&self, id: &ObjectId) {
        self.lock().saved.remove(id);
    }
}

/// The right to change one upload, until dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    busy: Arc<Busy>,
    id: ObjectId,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy.lock().claimed.remove(&self.id);
    }
}

impl LocalUploads {
    fn dir(&self, id: &ObjectId) -> PathBuf {
        self.uploads.join(id.to_string())
    }
}

impl UploadStore for LocalUploads {
    type Claim = Claim;
    type Sink = LocalSink;

    /// In memory: the root's lock makes this process the only one.
    async fn claim(&self, id: &ObjectId) -> Result<Claim> {
        if !self.busy.lock().claimed.insert(*id) {
            return Err(Error::Locked(id.to_string()));
        }
        Ok(Claim { busy: Arc::clone(&self.busy), id: *id })
    }

    async fn claimed_status(&self, claim: &Claim) -> Result<UploadStatus> {
        self.status(&claim.id).await
    }

    async fn release(&self, claim: Claim) {
        drop(claim);
    }

    /// Builds the upload in `tmp/` and renames it into `uploads/`: an
    /// upload directory always has its state.
    async fn create(&self, status: &UploadStatus) -> Result<()> {
        let (staging, target) = (self.tmp.join(status.id.to_string()), self.dir(&status.id));
        let (fsync, uploads) = (self.fsync, self.uploads.clone());
        let saved = status.clone();
        blocking(move || {
            fs::create_dir(&staging)?;
            let mut guard = TempGuard { path: staging, armed: true };
            let data = create_data_file(&guard.path)?;
            if fsync {
                data.sync_all()?;
            }
            state::create(&guard.path, &saved, fsync)?;
            fs::rename(&guard.path, &target)?;
            guard.armed = false;
            if fsync {
                sync_dir(&uploads)?;
            }
            Ok(())
        })
        .await?;
        self.busy.saved(status);
        Ok(())
    }

    async fn status(&self, id: &ObjectId) -> Result<UploadStatus> {
        if let Some(status) = self.busy.lock().saved.get(id) {
            return Ok(status.clone());
        }
        let (dir, id) = (self.dir(id), *id);
        blocking(move || state::read(&dir, &id)).await
    }

    /// Cuts off what a failed append left past the saved offset.
    async fn resume(
        &self,
        _claim: &Claim,
        status: &UploadStatus,
        _body_length: Option<u64>,
    ) -> Result<LocalSink> {
        let (dir, id, offset) = (self.dir(&status.id), status.id, status.offset);
        let (fsync, direct) = (self.fsync, self.direct);
        let job = blocking(move || {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join(DATA))
                .map_err(|e| not_found(e, &id))?;
            // Only when needed: a truncate, even to the same length, updates
            // the inode, and may wait for the journal's commit of the last save.
            if file.metadata()?.len() != offset {
                file.set_len(offset)?;
            }
            file.seek(SeekFrom::Start(offset))?;
            let guard = TempGuard { path: dir, armed: false };
            Ok(Job { file, offset, fsync, direct, staging: None, guard })
        })
        .await?;
        Ok(LocalSink::new(job, self.objects.clone(), Arc::clone(&self.index)))
    }

    async fn save(&self, _claim: &Claim, status: &UploadStatus, sink: LocalSink) -> Result<()> {
        let (dir, saved, fsync) = (self.dir(&status.id), status.clone(), self.fsync);
        let result = blocking(move || {
            drop(sink); // closes the data file, off the executor
            state::save(&dir, &saved, fsync)
        })
        .await;
        match &result {
            Ok(()) => self.busy.saved(status),
            // The file holds the old state or the new: read it again.
            Err(_) => self.busy.forget(&status.id),
        }
        result
    }

    /// The data file already holds the bytes in order.
    async fn seal(&self, _claim: &Claim, _status: &UploadStatus) -> Result<()> {
        Ok(())
    }

    /// Commits as a put commits: `Job::commit` renames the directory into `objects/`.
    async fn commit(&self, claim: Claim, info: &FileInfo) -> Result<()> {
        self.busy.forget(&info.id);
        let meta = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
        let (dir, id, size) = (self.dir(&info.id), info.id, info.size);
        let (objects, index, fsync) = (self.objects.clone(), Arc::clone(&self.index), self.fsync);
        blocking(move || {
            let _claim = claim;
            let file = OpenOptions::new().write(true).open(dir.join(DATA))?;
            file.set_len(size)?;
            if fsync {
                file.sync_all()?;
            }
            // Left by a commit that crashed before its rename.
            let _ = fs::remove_file(dir.join(META));
            let guard = TempGuard { path: dir, armed: false };
            let job = Job { file, offset: 0, fsync, direct: false, staging: None, guard };
            let target = objects.join(id.to_string());
            job.commit(&meta, &target, &objects)?;
            index.insert(id);
            // Nobody reads the state of a committed object: only tidiness is at stake.
            let _ = fs::remove_file(target.join(STATE));
            Ok(())
        })
        .await
    }

    /// Gone at once (renamed into `tmp/`), its space freed just after.
    async fn remove(&self, claim: Claim) -> Result<()> {
        self.busy.forget(&claim.id);
        let (dir, id) = (self.dir(&claim.id), claim.id);
        let trash = self.tmp.join(format!("{id}.aborted-{}", ObjectId::new()));
        let (uploads, fsync) = (self.uploads.clone(), self.fsync);
        blocking(move || {
            let _claim = claim;
            fs::rename(&dir, &trash).map_err(|e| not_found(e, &id))?;
            if fsync {
                sync_dir(&uploads)?;
            }
            remove_object_dir(&trash)?;
            Ok(())
        })
        .await
    }

    /// Hashes on from the first partial's saved midstate: the kernel copies
    /// its bytes, and only the later partials are read.
    async fn concatenate(&self, parts: Vec<UploadStatus>, mut info: FileInfo) -> Result<FileInfo> {
        let staging = self.tmp.join(info.id.to_string());
        let dirs: Vec<PathBuf> = parts.iter().map(|p| self.dir(&p.id)).collect();
        let (objects, index, fsync) = (self.objects.clone(), Arc::clone(&self.index), self.fsync);
        blocking(move || {
            fs::create_dir(&staging)?;
            let guard = TempGuard { path: staging, armed: true };
            let mut file = create_data_file(&guard.path)?;
            let mut sha256 = parts[0].sha256.clone();
            for (i, (part, dir)) in parts.iter().zip(&dirs).enumerate() {
                let source = File::open(dir.join(DATA)).map_err(|e| not_found(e, &part.id))?;
                let mut source = source.take(part.offset);
                let copied = if i == 0 {
                    // Already hashed: the kernel copies it (copy_file_range).
                    io::copy(&mut source, &mut file)?
                } else {
                    copy_hashing(&mut source, &mut file, &mut sha256)?
                };
                if copied != part.offset {
                    return Err(Error::Io(io::Error::other(format!(
                        "partial upload {} has {copied} bytes, not {}",
                        part.id, part.offset
                    ))));
                }
            }
            if fsync {
                file.sync_data()?;
            }
            info.sha256 = hex::encode(sha256.finalize());
            let meta = serde_json::to_vec_pretty(&info).map_err(io::Error::other)?;
            let job = Job { file, offset: info.size, fsync, direct: false, staging: None, guard };
            job.commit(&meta, &objects.join(info.id.to_string()), &objects)?;
            index.insert(info.id);
            Ok(info)
        })
        .await
    }

    async fn expired(&self, now: OffsetDateTime) -> Result<Vec<ObjectId>> {
        let uploads = self.uploads.clone();
        blocking(move || {
            let mut expired = Vec::new();
            for entry in fs::read_dir(&uploads)? {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                match state::read(&entry.path(), &id) {
                    Ok(status) if status.is_expired(now) => expired.push(id),
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(e) => log::warn!("cannot tell whether upload {id} expired: {e}"),
                }
            }
            Ok(expired)
        })
        .await
    }
}

/// Copies `from` into `to`, hashing what passes; returns the bytes copied.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut File,
    sha256: &mut crate::sha256::Sha256State,
) -> io::Result<u64> {
    let mut buf = vec![0u8; crate::backend::WRITE_CHUNK];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha256.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}
