//! The local-disk backend's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Write the data of bodies with direct I/O (`O_DIRECT`), where the file
    /// system takes it (else through the page cache, as a body shorter than
    /// one write batch, [`WRITE_CHUNK`](crate::WRITE_CHUNK), always is).
    /// Direct writes skip the kernel's copy into the page cache, the largest
    /// CPU cost of storing a body; its data
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
