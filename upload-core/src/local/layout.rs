//! The root's layout (`objects/`, `tmp/`, `data`, `meta.json`) and the file
//! system steps on it that the store and its uploads share.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::{Error, FileInfo, ObjectId, Result};

pub(super) const OBJECTS: &str = "objects";
pub(super) const TMP: &str = "tmp";
pub(super) const UPLOADS: &str = "uploads";
pub(super) const LOCK: &str = ".lock";
pub(super) const DATA: &str = "data";
pub(super) const META: &str = "meta.json";
/// Where a resumable upload stands (see `state.rs`).
pub(super) const STATE: &str = "state";
/// Where it stood in versions before `STATE`, read until its next save.
pub(super) const STATE_JSON: &str = "state.json";
/// Left by those versions' saves, when cut short.
const STATE_JSON_NEXT: &str = "state.json.next";
/// Metadata is small; a bigger file is corrupt, and is not read whole.
pub(super) const META_MAX: u64 = 64 * 1024;

/// The data file of an upload in `dir`; readable too, as going direct
/// re-reads the last partial block.
pub(super) fn create_data_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create_new(true).open(dir.join(DATA))
}

/// Removes a directory tree when dropped, unless disarmed.
pub(super) struct TempGuard {
    pub(super) path: PathBuf,
    pub(super) armed: bool,
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
pub(super) fn remove_object_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            for name in [DATA, META, STATE, STATE_JSON, STATE_JSON_NEXT] {
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

pub(super) fn not_found(e: io::Error, id: &ObjectId) -> Error {
    if e.kind() == io::ErrorKind::NotFound { Error::NotFound(id.to_string()) } else { e.into() }
}

pub(super) fn read_meta(dir: &Path, id: &ObjectId) -> Result<FileInfo> {
    let damaged = |reason: String| Error::Damaged { id: id.to_string(), reason };
    let file = match File::open(dir.join(META)) {
        // A committed object always has its metadata: the directory alone is damage.
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.exists() => {
            return Err(damaged(format!("{META} is missing")));
        }
        other => other.map_err(|e| not_found(e, id))?,
    };
    let info: FileInfo = read_json(file, META, id)?;
    if info.id != *id {
        return Err(damaged(format!("{META} describes another object, {}", info.id)));
    }
    Ok(info)
}

/// The JSON in `file` (named `name`, of object or upload `id`): more than
/// [`META_MAX`] bytes, or what does not parse, is damage.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    file: File,
    name: &str,
    id: &ObjectId,
) -> Result<T> {
    let damaged = |reason: String| Error::Damaged { id: id.to_string(), reason };
    let mut buf = Vec::new();
    file.take(META_MAX + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > META_MAX {
        return Err(damaged(format!("{name} is larger than {META_MAX} bytes")));
    }
    serde_json::from_slice(&buf).map_err(|e| damaged(format!("{name}: {e}")))
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes everything in `dir`; returns how many entries there were.
pub(super) fn sweep(dir: &Path) -> io::Result<usize> {
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
