//! One upload's writes: batches into its data file (direct, unless the
//! body is one short batch), made durable, committed by a rename.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::direct::{AlignedBuf, DIO_ALIGN, set_direct, start_writeback};
use super::index::Index;
use super::layout::{META, TempGuard, sync_dir};
use crate::backend::{Batch, MIN_BATCH, ObjectSink, Sink, WRITE_CHUNK};
use crate::offload::{Worker, blocking};
use crate::{Error, FileInfo, Result};

/// Holds a whole batch (they are under `2 * WRITE_CHUNK`) after the partial
/// block left by the one before, so each batch is one write.
const STAGING: usize = 2 * WRITE_CHUNK + DIO_ALIGN;

/// One upload's file and temp directory. It travels into each blocking write
/// (see [`Worker`]), so a dropped upload is cleaned up exactly once, after
/// its last write.
pub(super) struct Job {
    pub(super) file: File,
    /// Bytes written to `file` so far.
    pub(super) offset: u64,
    pub(super) fsync: bool,
    /// Whether the file may be written with direct I/O.
    pub(super) direct: bool,
    /// Once direct: the aligned buffer each batch is copied into, and written
    /// from, whole blocks at once; the partial block left over stays for the next.
    pub(super) staging: Option<AlignedBuf>,
    pub(super) guard: TempGuard,
}

impl Job {
    fn write(&mut self, batch: &[Bytes]) -> io::Result<()> {
        if self.staging.is_none() {
            // Only the last batch of a body is under MIN_BATCH, so a first one
            // that short is the whole body: the page cache suits it (nothing
            // to align, the kernel writes it back). Longer bodies go direct
            // from their first byte, sparing the page-cache copy, the largest
            // cost of a write here (BENCHMARKS.md, "Upload CPU work").
            let len: usize = batch.iter().map(Bytes::len).sum();
            if !self.direct || len < MIN_BATCH {
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
        let whole = staging.len / DIO_ALIGN * DIO_ALIGN;
        if whole > 0 {
            self.file.write_all_at(&staging.filled()[..whole], self.offset)?;
            self.offset += whole as u64;
            staging.consume(whole);
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
        let mut staging = AlignedBuf::new(STAGING);
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

    pub(super) fn commit(self, meta: &[u8], target: &Path, objects: &Path) -> Result<()> {
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

impl LocalSink {
    /// A sink writing through `job` (on a worker of its own), committed into `objects`.
    pub(super) fn new(job: Job, objects: PathBuf, index: Arc<Index>) -> Self {
        Self { job: Some(Worker::new(job, 2)), finished: None, objects, index }
    }
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

    async fn abort(self) {
        let job = match (self.job, self.finished) {
            (Some(worker), _) => worker.finish().await.ok(),
            (None, finished) => finished,
        };
        // The guard removes the temp directory: file system work, off the executor.
        let _ = tokio::task::spawn_blocking(move || drop(job)).await;
    }
}

impl ObjectSink for LocalSink {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::direct::direct_io_works;
    use crate::local::layout::{DATA, create_data_file};

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// A job as `begin` makes it, with direct I/O allowed.
    fn job(dir: &Path) -> Job {
        let guard = TempGuard { path: dir.join("upload"), armed: true };
        fs::create_dir(&guard.path).unwrap();
        let file = create_data_file(&guard.path).unwrap();
        Job { file, offset: 0, fsync: true, direct: true, staging: None, guard }
    }

    #[cfg(target_os = "linux")]
    fn is_direct(file: &File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: reads the status flags of a descriptor `file` keeps open.
        unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) & libc::O_DIRECT != 0 }
    }

    /// Batches of odd sizes: short first ones stay buffered, so the switch to
    /// direct I/O happens mid-block, and the file ends mid-block: the bytes on
    /// disk are exactly those sent.
    #[test]
    fn switching_to_direct_io_mid_block_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        if !direct_io_works(dir.path()) {
            eprintln!("skipped: {} does not take direct I/O", dir.path().display());
            return;
        }
        let cases = [
            &[4_999, 3, STAGING + 17, 1, 12_345][..],
            &[STAGING, STAGING][..],
            &[1, 2 * STAGING + 1][..],
            &[WRITE_CHUNK, 5][..],
        ];
        for sizes in cases {
            let mut job = job(dir.path());
            let mut sent = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let piece = pattern(size, i as u8);
                sent.extend_from_slice(&piece);
                // Two pieces per batch: the staging copy crosses piece boundaries.
                let (a, b) = piece.split_at(size / 2);
                job.write(&[Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]).unwrap();
            }
            assert!(job.staging.is_some(), "{sizes:?}: a full batch goes direct");
            #[cfg(target_os = "linux")]
            assert!(is_direct(&job.file));
            job.finish().unwrap();
            assert_eq!(job.offset, sent.len() as u64);
            let stored = fs::read(job.guard.path.join(DATA)).unwrap();
            assert_eq!(stored.len(), sent.len(), "{sizes:?}");
            assert!(stored == sent, "{sizes:?}: contents differ");
        }
    }

    #[test]
    fn a_body_of_one_short_batch_stays_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let mut job = job(dir.path());
        job.write(&[Bytes::from(pattern(1000, 7))]).unwrap();
        job.finish().unwrap();
        assert!(job.staging.is_none());
        #[cfg(target_os = "linux")]
        assert!(!is_direct(&job.file));
        assert_eq!(fs::read(job.guard.path.join(DATA)).unwrap(), pattern(1000, 7));
    }
}
