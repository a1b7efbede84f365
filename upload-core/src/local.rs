//! The local-disk backend.
//!
//! Layout under the root:
//! - `objects/<id>/data` and `objects/<id>/meta.json`: committed objects;
//! - `tmp/<id>/...`: uploads in progress, and objects being deleted;
//! - `.lock`: held (flock) by the process that owns the root.
//!
//! An upload is built in `tmp/<id>/` and committed by renaming that directory
//! into `objects/`, so data and metadata become visible together or not at
//! all. Whatever is in `tmp/` when the store opens is a crash's leftover: the
//! lock guarantees no other process is writing there.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::offload::{Worker, blocking};
use crate::storage::{Batch, Object, Sink};
use crate::{ByteRange, Error, FileInfo, LocalConfig, ObjectId, Page, Result};

const OBJECTS: &str = "objects";
const TMP: &str = "tmp";
const LOCK: &str = ".lock";
const DATA: &str = "data";
const META: &str = "meta.json";
/// Metadata is small; a bigger file is corrupt, and is not read whole.
const META_MAX: u64 = 64 * 1024;
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
pub(crate) struct LocalStore {
    objects: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    /// Held for the store's lifetime: the flock is what makes sweeping `tmp/` safe.
    _lock: File,
}

impl LocalStore {
    pub(crate) async fn open(config: LocalConfig) -> Result<Self> {
        blocking(move || {
            let root = config.root;
            let (objects, tmp) = (root.join(OBJECTS), root.join(TMP));
            fs::create_dir_all(&objects)?;
            fs::create_dir_all(&tmp)?;
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(root.join(LOCK))?;
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Unavailable(format!(
                        "storage root {} is in use by another process",
                        root.display()
                    )));
                }
                Err(TryLockError::Error(e)) => return Err(e.into()),
            }
            let swept = sweep(&tmp)?;
            if swept > 0 {
                log::warn!("removed {swept} unfinished upload(s) left in {}", tmp.display());
            }
            if config.fsync {
                sync_dir(&root)?;
            }
            Ok(Self { objects, tmp, fsync: config.fsync, _lock: lock })
        })
        .await
    }

    pub(crate) async fn begin(&self, id: ObjectId) -> Result<LocalSink> {
        let dir = self.tmp.join(id.to_string());
        let fsync = self.fsync;
        let job = blocking(move || {
            fs::create_dir(&dir)?;
            let guard = TempGuard { path: dir, armed: true };
            let file = File::create_new(guard.path.join(DATA))?;
            Ok(Job { file, offset: 0, fsync, guard })
        })
        .await?;
        Ok(LocalSink {
            job: Some(Worker::new(job, 2)),
            finished: None,
            objects: self.objects.clone(),
        })
    }

    pub(crate) async fn get(&self, id: &ObjectId, range: Option<ByteRange>) -> Result<Object> {
        let (id, dir) = (*id, self.objects.join(id.to_string()));
        let (info, range, file) = blocking(move || {
            let info = read_meta(&dir, &id)?;
            let range = match range {
                Some(range) => range.resolve(info.size)?,
                None => 0..info.size,
            };
            let mut file = File::open(dir.join(DATA)).map_err(|e| not_found(e, &id))?;
            file.seek(SeekFrom::Start(range.start))?;
            Ok((info, range, file))
        })
        .await?;
        let reader = tokio::fs::File::from_std(file).take(range.end - range.start);
        let body = ReaderStream::with_capacity(reader, READ_CHUNK).boxed();
        Ok(Object { info, range, body })
    }

    pub(crate) async fn head(&self, id: &ObjectId) -> Result<FileInfo> {
        let (id, dir) = (*id, self.objects.join(id.to_string()));
        blocking(move || read_meta(&dir, &id)).await
    }

    pub(crate) async fn delete(&self, id: &ObjectId) -> Result<()> {
        let (id, objects) = (*id, self.objects.clone());
        // A unique name: a delete that failed half-way must not block the next one.
        let trash = self.tmp.join(format!("{id}.deleted-{}", ObjectId::new()));
        let fsync = self.fsync;
        blocking(move || {
            fs::rename(objects.join(id.to_string()), &trash).map_err(|e| not_found(e, &id))?;
            if fsync {
                sync_dir(&objects)?;
            }
            fs::remove_dir_all(&trash)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn list(&self, after: Option<ObjectId>, limit: usize) -> Result<Page> {
        let objects = self.objects.clone();
        let limit = limit.max(1);
        blocking(move || {
            let mut ids = Vec::new();
            for entry in fs::read_dir(&objects)? {
                let name = entry?.file_name();
                let Some(id) = name.to_str().and_then(|n| n.parse::<ObjectId>().ok()) else {
                    continue;
                };
                if after.is_none_or(|after| id > after) {
                    ids.push(id);
                }
            }
            let more = ids.len() > limit;
            if more {
                ids.select_nth_unstable(limit);
                ids.truncate(limit);
            }
            ids.sort_unstable();
            let mut files = Vec::with_capacity(ids.len());
            for id in &ids {
                match read_meta(&objects.join(id.to_string()), id) {
                    Ok(info) => files.push(info),
                    Err(Error::NotFound(_)) => {} // deleted while we listed
                    Err(e) => return Err(e),
                }
            }
            Ok(Page { files, next: if more { ids.last().copied() } else { None } })
        })
        .await
    }

    pub(crate) async fn check_ready(&self) -> Result<()> {
        let probe = self.tmp.join(format!("{}.ready", ObjectId::new()));
        let fsync = self.fsync;
        blocking(move || {
            let written = File::create_new(&probe).and_then(|mut file| {
                file.write_all(b"ok")?;
                if fsync { file.sync_data() } else { Ok(()) }
            });
            let removed = fs::remove_file(&probe);
            written?;
            Ok(removed?)
        })
        .await
    }
}

/// One upload's file and temp directory. It travels into each blocking write
/// (see [`Worker`]), so a dropped upload is cleaned up exactly once, after
/// its last write.
struct Job {
    file: File,
    offset: u64,
    fsync: bool,
    guard: TempGuard,
}

impl Job {
    fn write(&mut self, batch: &[Bytes]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|piece| IoSlice::new(piece)).collect();
        let mut rest = &mut slices[..];
        let mut len = 0;
        while !rest.is_empty() {
            let n = self.file.write_vectored(rest)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut rest, n);
            len += n as u64;
        }
        // Even without fsync: writeback started per batch keeps the dirty page
        // cache small, and large writes into a big dirty cache copy far slower.
        start_writeback(&self.file, self.offset, len);
        self.offset += len;
        Ok(())
    }

    fn commit(self, meta: &[u8], target: &Path, objects: &Path) -> Result<()> {
        let Job { file, fsync, mut guard, .. } = self;
        drop(file);
        let mut meta_file = File::create_new(guard.path.join(META))?;
        meta_file.write_all(meta)?;
        if fsync {
            meta_file.sync_data()?;
            sync_dir(&guard.path)?;
        }
        fs::rename(&guard.path, target)?;
        guard.armed = false;
        if fsync && let Err(e) = sync_dir(objects) {
            // Not durable: take it back rather than report a failure for a visible object.
            let _ = fs::remove_dir_all(target);
            return Err(e.into());
        }
        Ok(())
    }
}

pub(crate) struct LocalSink {
    /// Taken by `finish`, which hands the file back for the commit.
    job: Option<Worker<Job>>,
    finished: Option<Job>,
    objects: PathBuf,
}

fn out_of_order() -> Error {
    Error::Io(io::Error::other("upload sink used out of order"))
}

impl Sink for LocalSink {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        let worker = self.job.as_ref().ok_or_else(out_of_order)?;
        worker.submit(move |job| job.write(&batch)).await
    }

    async fn finish(&mut self) -> Result<()> {
        // A failed job has already dropped the file and its temp directory.
        let worker = self.job.take().ok_or_else(out_of_order)?;
        worker.submit(|job| if job.fsync { job.file.sync_data() } else { Ok(()) }).await?;
        self.finished = Some(worker.finish().await?);
        Ok(())
    }

    async fn commit(self, info: &FileInfo) -> Result<()> {
        let job = self.finished.ok_or_else(out_of_order)?;
        let meta = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
        let target = self.objects.join(info.id.to_string());
        let objects = self.objects;
        blocking(move || job.commit(&meta, &target, &objects)).await
    }

    async fn abort(self) {
        let job = match (self.job, self.finished) {
            (Some(worker), _) => worker.finish().await.ok(),
            (None, finished) => finished,
        };
        // The guard removes the temp directory: file system work, off the executor.
        let _ = tokio::task::spawn_blocking(move || drop(job)).await;
    }
}

/// Removes a directory tree when dropped, unless disarmed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not remove unfinished upload {}: {e}", self.path.display());
        }
    }
}

fn not_found(e: io::Error, id: &ObjectId) -> Error {
    if e.kind() == io::ErrorKind::NotFound { Error::NotFound(id.to_string()) } else { e.into() }
}

fn read_meta(dir: &Path, id: &ObjectId) -> Result<FileInfo> {
    let file = File::open(dir.join(META)).map_err(|e| not_found(e, id))?;
    let mut buf = Vec::new();
    file.take(META_MAX).read_to_end(&mut buf)?;
    serde_json::from_slice(&buf)
        .map_err(|e| Error::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes everything in `dir`; returns how many entries there were.
fn sweep(dir: &Path) -> io::Result<usize> {
    let mut count = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
        count += 1;
    }
    Ok(count)
}

/// Starts writeback of a range just written, so the final fsync finds little
/// left to flush: disk writes overlap with receiving the rest of the body.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a descriptor `file` keeps open; no memory is shared.
    // It is only a hint: the fsync before commit is what makes the data durable.
    let _ = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}
