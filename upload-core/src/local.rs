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
//!
//! The same lock makes an in-memory index of the committed ids authoritative:
//! it is read from `objects/` once, when the store opens, and kept up to date
//! by commits and deletes, so a page of a listing costs its own entries, not
//! a scan of the whole directory (~30 bytes of memory per object).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::backend::{Batch, Object, Sink};
use crate::offload::{Worker, blocking};
use crate::{ByteRange, Error, FileInfo, ObjectId, Page, Result};

/// Settings of the local-disk backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// The directory that holds everything; created if missing (default `./data`).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Make every object durable (fsync of data, metadata and directories)
    /// before reporting it stored. Turning it off trades crash safety for speed.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// Write the data of bodies past 64 MiB with direct I/O (`O_DIRECT`),
    /// where the file system takes it (else through the page cache, as
    /// smaller bodies always are). Direct writes skip the kernel's copy into
    /// the page cache, the largest CPU cost of storing a large body; its data
    /// then reaches the device before the upload returns, so turn this off
    /// where the device is much slower than memory and `fsync` is off.
    #[serde(default = "default_direct_io")]
    pub direct_io: bool,
}

fn default_root() -> PathBuf {
    PathBuf::from("./data")
}

fn default_fsync() -> bool {
    true
}

fn default_direct_io() -> bool {
    true
}

impl LocalConfig {
    /// Durable local storage under `root`, with direct I/O where it is available.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), fsync: true, direct_io: true }
    }
}

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
    /// The ids in `objects/`.
    index: Arc<Index>,
    fsync: bool,
    /// Data files are written with `O_DIRECT` (asked for, and the file system takes it).
    direct: bool,
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
            let index = Arc::new(Index::read(&objects)?);
            let swept = sweep(&tmp)?;
            if swept > 0 {
                log::warn!("removed {swept} unfinished upload(s) left in {}", tmp.display());
            }
            if config.fsync {
                sync_dir(&root)?;
            }
            let direct = config.direct_io && direct_io_works(&tmp);
            if config.direct_io && !direct {
                log::info!(
                    "{} does not take direct I/O: writing through the page cache",
                    root.display()
                );
            }
            Ok(Self { objects, tmp, index, fsync: config.fsync, direct, _lock: lock })
        })
        .await
    }

    pub(crate) async fn begin(&self, id: ObjectId) -> Result<LocalSink> {
        let dir = self.tmp.join(id.to_string());
        let (fsync, direct) = (self.fsync, self.direct);
        let job = blocking(move || {
            fs::create_dir(&dir)?;
            let guard = TempGuard { path: dir, armed: true };
            let file = create_data_file(&guard.path)?;
            let direct_from = direct.then_some(DIRECT_FROM);
            Ok(Job { file, offset: 0, fsync, direct_from, staging: None, guard })
        })
        .await?;
        Ok(LocalSink {
            job: Some(Worker::new(job, 2)),
            finished: None,
            objects: self.objects.clone(),
            index: Arc::clone(&self.index),
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
        let (id, objects, index) = (*id, self.objects.clone(), Arc::clone(&self.index));
        // A unique name: a delete that failed half-way must not block the next one.
        let trash = self.tmp.join(format!("{id}.deleted-{}", ObjectId::new()));
        let fsync = self.fsync;
        blocking(move || {
            fs::rename(objects.join(id.to_string()), &trash).map_err(|e| not_found(e, &id))?;
            index.remove(&id);
            if fsync {
                sync_dir(&objects)?;
            }
            remove_object_dir(&trash)?;
            Ok(())
        })
        .await
    }

    /// A page, and the damaged objects left out of it.
    pub(crate) async fn list(
        &self,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<(Page, Vec<Error>)> {
        let objects = self.objects.clone();
        let limit = limit.max(1);
        let (ids, more) = self.index.page(after, limit);
        blocking(move || {
            let mut files = Vec::with_capacity(ids.len());
            let mut damaged = Vec::new();
            for id in &ids {
                match read_meta(&objects.join(id.to_string()), id) {
                    Ok(info) => files.push(info),
                    Err(Error::NotFound(_)) => {} // deleted while we listed
                    Err(e @ Error::Damaged { .. }) => damaged.push(e),
                    Err(e) => return Err(e),
                }
            }
            let next = if more { ids.last().copied() } else { None };
            Ok((Page { files, next }, damaged))
        })
        .await
    }

    /// A real write, made durable (so that delayed allocation meets a full
    /// device now), and room for at least a batch or two, counted as an
    /// unprivileged user may use it: a root process could write into the
    /// blocks reserved for root, and would report ready on a full disk.
    pub(crate) async fn check_ready(&self) -> Result<()> {
        let probe = self.tmp.join(format!("{}.ready", ObjectId::new()));
        blocking(move || {
            let written = File::create_new(&probe).and_then(|mut file| {
                file.write_all(&[0; 4096])?;
                file.sync_data()
            });
            let removed = fs::remove_file(&probe);
            written?;
            removed?;
            if available_bytes(probe.parent().expect("in tmp/"))? < READY_MIN_FREE {
                return Err(Error::StorageFull);
            }
            Ok(())
        })
        .await
    }
}

/// The free space `/readyz` asks for: what two upload batches need.
const READY_MIN_FREE: u64 = 2 * crate::backend::WRITE_CHUNK as u64;

/// Bytes free for unprivileged users on the file system of `dir`.
#[allow(clippy::useless_conversion, reason = "the fields are 32 bits wide on some targets")]
fn available_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// One upload's file and temp directory. It travels into each blocking write
/// (see [`Worker`]), so a dropped upload is cleaned up exactly once, after
/// its last write.
struct Job {
    file: File,
    /// Bytes written to `file` so far.
    offset: u64,
    fsync: bool,
    /// The size past which the file is written with direct I/O, if it may be.
    direct_from: Option<u64>,
    /// Once direct: the aligned buffer bytes gather in until a full one is written.
    staging: Option<AlignedBuf>,
    guard: TempGuard,
}

impl Job {
    fn write(&mut self, batch: &[Bytes]) -> io::Result<()> {
        if self.staging.is_none() {
            if self.direct_from.is_none_or(|from| self.offset < from) {
                return self.write_buffered(batch);
            }
            self.go_direct()?;
        }
        let Some(staging) = &mut self.staging else { unreachable!("just set") };
        for piece in batch {
            let mut rest = &piece[..];
            while !rest.is_empty() {
                rest = staging.fill(rest);
                if staging.is_full() {
                    self.file.write_all_at(staging.filled(), self.offset)?;
                    self.offset += staging.len as u64;
                    staging.clear();
                }
            }
        }
        Ok(())
    }

    /// Writes what is left and makes the file durable if asked to.
    fn finish(&mut self) -> io::Result<()> {
        if let Some(staging) = &mut self.staging
            && !staging.filled().is_empty()
        {
            // Direct writes are whole blocks: pad the last one, then cut the file to size.
            let size = self.offset + staging.len as u64;
            self.file.write_all_at(staging.padded(), self.offset)?;
            self.file.set_len(size)?;
            self.offset = size;
            staging.clear();
        }
        if self.fsync { self.file.sync_data() } else { Ok(()) }
    }

    /// Switches the file to direct I/O. Writes must start on a block
    /// boundary: the last partial block, still in the page cache, is read
    /// back into the staging buffer and written again from there.
    fn go_direct(&mut self) -> io::Result<()> {
        let mut staging = AlignedBuf::new(DIRECT_BUFFER);
        let start = self.offset - self.offset % DIO_ALIGN as u64;
        let head = (self.offset - start) as usize;
        self.file.read_exact_at(&mut staging.bytes()[..head], start)?;
        staging.len = head;
        set_direct(&self.file)?;
        self.offset = start;
        self.staging = Some(staging);
        Ok(())
    }

    fn write_buffered(&mut self, batch: &[Bytes]) -> io::Result<()> {
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
    index: Arc<Index>,
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
        worker.submit(Job::finish).await?;
        self.finished = Some(worker.finish().await?);
        Ok(())
    }

    async fn commit(self, info: &FileInfo) -> Result<()> {
        let job = self.finished.ok_or_else(out_of_order)?;
        let meta = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
        let target = self.objects.join(info.id.to_string());
        let (objects, index, id) = (self.objects, self.index, info.id);
        blocking(move || {
            job.commit(&meta, &target, &objects)?;
            index.insert(id);
            Ok(())
        })
        .await
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

/// The committed ids, in order.
#[derive(Debug)]
struct Index(Mutex<BTreeSet<ObjectId>>);

impl Index {
    /// Every id in `objects`; other names there are not objects of ours.
    fn read(objects: &Path) -> io::Result<Self> {
        let mut ids = BTreeSet::new();
        for entry in fs::read_dir(objects)? {
            if let Some(id) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.insert(id);
            }
        }
        Ok(Self(Mutex::new(ids)))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<ObjectId>> {
        // Every update is a single insert or remove: a poisoned set is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, id: ObjectId) {
        self.lock().insert(id);
    }

    fn remove(&self, id: &ObjectId) {
        self.lock().remove(id);
    }

    /// Up to `limit` ids after `after`, and whether more follow.
    fn page(&self, after: Option<ObjectId>, limit: usize) -> (Vec<ObjectId>, bool) {
        let ids = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<ObjectId> =
            ids.range((from, Bound::Unbounded)).take(limit + 1).copied().collect();
        let more = page.len() > limit;
        page.truncate(limit);
        (page, more)
    }
}

/// The data file of an upload in `dir`; readable too, as going direct
/// re-reads the last partial block.
fn create_data_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).open(dir.join(DATA))
}

/// Removes a directory tree when dropped, unless disarmed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = remove_object_dir(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("could not remove unfinished upload {}: {e}", self.path.display());
        }
    }
}

/// Removes an object's directory (an upload's or a deleted object's).
/// `remove_dir_all` opens the directory to list it; when that fails (EMFILE:
/// the very failure that often ends an upload), its known files are
/// unlinked by name, which needs no descriptor.
fn remove_object_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            for name in [DATA, META] {
                match fs::remove_file(dir.join(name)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::remove_dir(dir)
        }
        other => other,
    }
}

fn not_found(e: io::Error, id: &ObjectId) -> Error {
    if e.kind() == io::ErrorKind::NotFound { Error::NotFound(id.to_string()) } else { e.into() }
}

fn read_meta(dir: &Path, id: &ObjectId) -> Result<FileInfo> {
    let damaged = |reason: String| Error::Damaged { id: id.to_string(), reason };
    let file = match File::open(dir.join(META)) {
        // A committed object always has its metadata: the directory alone is damage.
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            return Err(damaged(format!("{META} is missing")));
        }
        other => other.map_err(|e| not_found(e, id))?,
    };
    let mut buf = Vec::new();
    file.take(META_MAX + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > META_MAX {
        return Err(damaged(format!("{META} is larger than {META_MAX} bytes")));
    }
    let info: FileInfo =
        serde_json::from_slice(&buf).map_err(|e| damaged(format!("{META}: {e}")))?;
    if info.id != *id {
        return Err(damaged(format!("{META} describes another object, {}", info.id)));
    }
    Ok(info)
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

/// Bodies are written through the page cache up to this size, which suits
/// small files best (the kernel writes them back in parallel), and with direct
/// I/O beyond it, which spares large ones the page-cache copy: on this
/// project's benchmark machine, 0.5-0.65x of a plain write + fsync for 2 GiB
/// through the page cache, 1.0-1.2x direct (`cargo bench -p upload-core`).
const DIRECT_FROM: u64 = 64 << 20;
/// Bytes gathered per direct write.
const DIRECT_BUFFER: usize = 4 << 20;

/// Direct I/O needs buffers, offsets and lengths aligned to the device's
/// logical block: 4 KiB covers 512-byte and 4 KiB sectors alike.
const DIO_ALIGN: usize = 4096;

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; DIO_ALIGN]);

/// A block-aligned buffer, as direct I/O needs: bytes received are copied
/// in (one buffer per upload, refilled for each write) and written out whole.
struct AlignedBuf {
    blocks: Box<[Block]>,
    len: usize,
}

impl AlignedBuf {
    fn new(capacity: usize) -> Self {
        Self { blocks: vec![Block([0; DIO_ALIGN]); capacity.div_ceil(DIO_ALIGN)].into(), len: 0 }
    }

    fn bytes(&mut self) -> &mut [u8] {
        let len = self.blocks.len() * DIO_ALIGN;
        // SAFETY: `Block` is `repr(C)` around a byte array, so the blocks are
        // `len` initialised, contiguous bytes, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Copies as much of `data` as fits; returns the rest.
    fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let len = self.len;
        let room = &mut self.bytes()[len..];
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.len += n;
        &data[n..]
    }

    fn is_full(&self) -> bool {
        self.len == self.blocks.len() * DIO_ALIGN
    }

    fn filled(&mut self) -> &[u8] {
        let len = self.len;
        &self.bytes()[..len]
    }

    /// The filled bytes, zero-padded to a whole block.
    fn padded(&mut self) -> &[u8] {
        let (len, padded) = (self.len, self.len.next_multiple_of(DIO_ALIGN));
        let bytes = self.bytes();
        bytes[len..padded].fill(0);
        &bytes[..padded]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Turns on direct I/O (`O_DIRECT`) for an open file.
#[cfg(target_os = "linux")]
fn set_direct(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` keeps open, reading then setting its status flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_: &File) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether files under `dir` can be written with direct I/O (tmpfs before
/// Linux 6.6 and some FUSE file systems refuse it, when it is turned on or
/// at the first write).
fn direct_io_works(dir: &Path) -> bool {
    let probe = dir.join(format!("{}.direct", ObjectId::new()));
    let mut block = AlignedBuf::new(DIO_ALIGN);
    let works = File::create_new(&probe)
        .and_then(|file| set_direct(&file).and_then(|()| file.write_all_at(block.bytes(), 0)))
        .is_ok();
    let _ = fs::remove_file(&probe);
    works
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// A job as `begin` makes it, switching to direct I/O past `from` bytes.
    fn job(dir: &Path, from: u64) -> Job {
        let guard = TempGuard { path: dir.join("upload"), armed: true };
        fs::create_dir(&guard.path).unwrap();
        let file = create_data_file(&guard.path).unwrap();
        Job { file, offset: 0, fsync: true, direct_from: Some(from), staging: None, guard }
    }

    #[cfg(target_os = "linux")]
    fn is_direct(file: &File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: reads the status flags of a descriptor `file` keeps open.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) & libc::O_DIRECT != 0 }
    }

    #[test]
    fn aligned_buffer_fills_to_capacity_and_pads_with_zeros() {
        let mut buf = AlignedBuf::new(2 * DIO_ALIGN);
        assert_eq!(buf.bytes().as_ptr() as usize % DIO_ALIGN, 0);
        let data = pattern(3 * DIO_ALIGN, 1);
        let rest = buf.fill(&data);
        assert!(buf.is_full());
        assert_eq!(rest, &data[2 * DIO_ALIGN..]);
        buf.clear();
        buf.bytes().fill(0xff);
        assert_eq!(buf.fill(&data[..10]), &[] as &[u8]);
        let padded = buf.padded();
        assert_eq!(padded.len(), DIO_ALIGN);
        assert_eq!(&padded[..10], &data[..10]);
        assert!(padded[10..].iter().all(|&b| b == 0));
    }

    /// Batches of odd sizes, so the switch to direct I/O happens mid-block
    /// and the file ends mid-block: the bytes on disk are exactly those sent.
    #[test]
    fn switching_to_direct_io_mid_block_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        if !direct_io_works(dir.path()) {
            eprintln!("skipped: {} does not take direct I/O", dir.path().display());
            return;
        }
        for (from, sizes) in [
            (5_000, &[4_999, 3, DIRECT_BUFFER + 17, 1, 12_345][..]),
            (0, &[DIRECT_BUFFER, DIRECT_BUFFER][..]),
            (1, &[1, 2 * DIRECT_BUFFER + 1][..]),
        ] {
            let mut job = job(dir.path(), from);
            let mut sent = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let piece = pattern(size, i as u8);
                sent.extend_from_slice(&piece);
                // Two pieces per batch: the staging copy crosses piece boundaries.
                let (a, b) = piece.split_at(size / 2);
                job.write(&[Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]).unwrap();
            }
            assert!(job.staging.is_some(), "past {from} bytes the job writes directly");
            #[cfg(target_os = "linux")]
            assert!(is_direct(&job.file));
            job.finish().unwrap();
            assert_eq!(job.offset, sent.len() as u64);
            let stored = fs::read(job.guard.path.join(DATA)).unwrap();
            assert_eq!(stored.len(), sent.len(), "from {from}");
            assert!(stored == sent, "from {from}: contents differ");
        }
    }

    #[test]
    fn below_the_threshold_writes_stay_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let mut job = job(dir.path(), 1 << 20);
        job.write(&[Bytes::from(pattern(1000, 7))]).unwrap();
        job.finish().unwrap();
        assert!(job.staging.is_none());
        #[cfg(target_os = "linux")]
        assert!(!is_direct(&job.file));
        assert_eq!(fs::read(job.guard.path.join(DATA)).unwrap(), pattern(1000, 7));
    }
}
