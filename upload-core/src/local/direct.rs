//! Direct I/O (`O_DIRECT`) for large bodies: aligned buffers, switching an
//! open file over, probing whether a file system takes it, and writeback hints.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::ObjectId;

/// Direct I/O needs buffers, offsets and lengths aligned to the device's
/// logical block: 4 KiB covers 512-byte and 4 KiB sectors alike.
pub(super) const DIO_ALIGN: usize = 4096;

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; DIO_ALIGN]);

/// A block-aligned buffer, as direct I/O needs: bytes received are copied
/// in (one buffer per upload, refilled for each write) and written out whole.
pub(super) struct AlignedBuf {
    blocks: Box<[Block]>,
    /// Bytes filled.
    pub(super) len: usize,
}

/// Buffers of finished uploads, for the next ones: a fresh 2 MiB buffer
/// costs its page faults, and unmapping it when dropped, about 0.1 ms per
/// request (BENCHMARKS.md, resumable uploads). A few are kept, no more.
static SPARE: Mutex<Vec<Box<[Block]>>> = Mutex::new(Vec::new());
const SPARE_MAX: usize = 4;

impl AlignedBuf {
    /// A buffer of at least `capacity` bytes, a spare one if there is one
    /// (its bytes are whatever was in it: only the filled ones are written).
    pub(super) fn new(capacity: usize) -> Self {
        let blocks = capacity.div_ceil(DIO_ALIGN);
        let spare = {
            let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
            spare.iter().position(|b| b.len() == blocks).map(|i| spare.swap_remove(i))
        };
        let blocks = spare.unwrap_or_else(|| vec![Block([0; DIO_ALIGN]); blocks].into());
        Self { blocks, len: 0 }
    }

    pub(super) fn bytes(&mut self) -> &mut [u8] {
        let len = self.blocks.len() * DIO_ALIGN;
        // SAFETY: `Block` is `repr(C)` around a byte array, so the blocks are
        // `len` initialised, contiguous bytes, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Copies as much of `data` as fits; returns the rest.
    pub(super) fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let len = self.len;
        let room = &mut self.bytes()[len..];
        let n = room.len().min(data.len());
        room[..n].copy_from_slice(&data[..n]);
        self.len += n;
        &data[n..]
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == self.blocks.len() * DIO_ALIGN
    }

    pub(super) fn filled(&mut self) -> &[u8] {
        let len = self.len;
        &self.bytes()[..len]
    }

    /// The filled bytes, zero-padded to a whole block.
    pub(super) fn padded(&mut self) -> &[u8] {
        let (len, padded) = (self.len, self.len.next_multiple_of(DIO_ALIGN));
        let bytes = self.bytes();
        bytes[len..padded].fill(0);
        &bytes[..padded]
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    pub(super) fn consume(&mut self, n: usize) {
        let len = self.len;
        self.bytes().copy_within(n..len, 0);
        self.len = len - n;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let blocks = std::mem::take(&mut self.blocks);
        let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_MAX {
            spare.push(blocks);
        }
    }
}

/// Turns on direct I/O (`O_DIRECT`) for an open file.
#[cfg(target_os = "linux")]
pub(super) fn set_direct(file: &File) -> io::Result<()> {
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
pub(super) fn set_direct(_: &File) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether files under `dir` can be written with direct I/O (tmpfs before
/// Linux 6.6 and some FUSE file systems refuse it, when it is turned on or
/// at the first write).
pub(super) fn direct_io_works(dir: &Path) -> bool {
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
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
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
pub(super) fn start_writeback(_: &File, _: u64, _: u64) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
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
}
