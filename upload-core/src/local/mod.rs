//! The local-disk backend.
//!
//! Layout under the root:
//! - `objects/<id>/data` and `objects/<id>/meta.json`: committed objects;
//! - `tmp/<id>/...`: one-shot uploads in progress, and objects being deleted;
//! - `uploads/<id>/...`: resumable uploads (see `uploads.rs`), kept across restarts until they expire;
//! - `expiry/`, `counters/`: expiry markers and use counters (see `marks.rs`);
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

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

mod config;
mod direct;
mod index;
mod layout;
mod marks;
mod state;
mod uploads;
mod write;

pub use config::LocalConfig;
use direct::direct_io_works;
use index::Index;
use marks::{COUNTERS, EXPIRY, Marks};
use uploads::LocalUploads;

use layout::{
    DATA, LOCK, OBJECTS, TMP, TempGuard, UPLOADS, create_data_file, not_found, read_meta,
    remove_object_dir, sweep, sync_dir,
};
use write::{Job, LocalSink};

use crate::backend::Object;
use crate::offload::blocking;
use crate::{ByteRange, Error, FileInfo, ObjectId, Page, Result};

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
    /// Resumable uploads.
    uploads: Arc<LocalUploads>,
    /// Expiry markers and use counters.
    marks: Marks,
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
            fs::create_dir_all(root.join(UPLOADS))?;
            fs::create_dir_all(root.join(EXPIRY))?;
            fs::create_dir_all(root.join(COUNTERS))?;
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
            let uploads = Arc::new(LocalUploads {
                uploads: root.join(UPLOADS),
                tmp: tmp.clone(),
                objects: objects.clone(),
                index: Arc::clone(&index),
                fsync: config.fsync,
                direct,
                busy: Arc::default(),
            });
            let marks = Marks {
                expiry: root.join(EXPIRY),
                counters: root.join(COUNTERS),
                fsync: config.fsync,
                counting: Arc::default(),
            };
            Ok(Self {
                objects,
                tmp,
                index,
                fsync: config.fsync,
                direct,
                uploads,
                marks,
                _lock: lock,
            })
        })
        .await
    }

    pub(crate) fn uploads(&self) -> &Arc<LocalUploads> {
        &self.uploads
    }

    pub(crate) fn marks(&self) -> &Marks {
        &self.marks
    }

    pub(crate) async fn begin(&self, id: ObjectId) -> Result<LocalSink> {
        let dir = self.tmp.join(id.to_string());
        let (fsync, direct) = (self.fsync, self.direct);
        let job = blocking(move || {
            fs::create_dir(&dir)?;
            let guard = TempGuard { path: dir, armed: true };
            let file = create_data_file(&guard.path)?;
            Ok(Job { file, offset: 0, fsync, direct, staging: None, guard })
        })
        .await?;
        Ok(LocalSink::new(job, self.objects.clone(), Arc::clone(&self.index)))
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
