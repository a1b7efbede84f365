//! Small marks beside the objects: expiry markers (`expiry/<when>.<id>`,
//! empty files a sweep finds by name) and use counters (`counters/<id>`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::layout::sync_dir;
use crate::offload::blocking;
use crate::{Error, ObjectId, Result};

pub(super) const EXPIRY: &str = "expiry";
pub(super) const COUNTERS: &str = "counters";

#[derive(Debug)]
pub(crate) struct Marks {
    pub(super) expiry: PathBuf,
    pub(super) counters: PathBuf,
    pub(super) fsync: bool,
    pub(super) counting: Arc<Mutex<()>>,
}

impl Marks {
    pub(crate) async fn put_marker(&self, name: String) -> Result<()> {
        let (dir, fsync) = (self.expiry.clone(), self.fsync);
        blocking(move || {
            File::create(dir.join(name))?;
            if fsync {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
    }

    /// Up to `limit` marker names, in name order, that sort at or before `until`.
    pub(crate) async fn markers_until(&self, until: String, limit: usize) -> Result<Vec<String>> {
        let dir = self.expiry.clone();
        blocking(move || {
            let mut names = Vec::new();
            for entry in fs::read_dir(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name <= until {
                    names.push(name);
                }
            }
            names.sort_unstable();
            names.truncate(limit);
            Ok(names)
        })
        .await
    }

    pub(crate) async fn remove_marker(&self, name: String) -> Result<()> {
        let dir = self.expiry.clone();
        blocking(move || match fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        })
        .await
    }

    /// Counts one use of `key`; fails with `Error::UsedUp` once `max` were counted.
    pub(crate) async fn count_use(&self, key: ObjectId, max: u64) -> Result<u64> {
        let (dir, fsync, counting) =
            (self.counters.clone(), self.fsync, Arc::clone(&self.counting));
        blocking(move || {
            // The root's lock makes this process the only writer: one count at a time here.
            let _one_at_a_time = counting.lock().unwrap_or_else(PoisonError::into_inner);
            let path = dir.join(key.to_string());
            let used: u64 = match fs::read_to_string(&path) {
                Ok(text) => text.trim().parse().unwrap_or(u64::MAX),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e.into()),
            };
            if used >= max {
                return Err(Error::UsedUp(key.to_string()));
            }
            let next = dir.join(format!("{key}.next"));
            let mut file = File::create(&next)?;
            write!(file, "{}", used + 1)?;
            if fsync {
                file.sync_data()?;
            }
            fs::rename(&next, &path)?;
            if fsync {
                sync_dir(&dir)?;
            }
            Ok(used + 1)
        })
        .await
    }
}
