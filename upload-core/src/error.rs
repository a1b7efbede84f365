use std::io;

/// The error type of a failed input stream, as callers hand it to [`Storage::put`](crate::Storage::put).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in this crate.
///
/// Each variant is a kind a caller can map to a response without looking at
/// the message: an HTTP layer turns `NotFound` into 404, `TooLarge` into 413,
/// `StorageFull` into 507, `Unavailable` into 503, and so on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object has this id (never stored, or deleted).
    #[error("no object with id {0}")]
    NotFound(String),
    /// The body went past the size limit; nothing was stored.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// The body's SHA-256 differs from the one the caller expected; nothing was stored.
    #[error("SHA-256 mismatch: expected {expected}, received {actual}")]
    ChecksumMismatch {
        /// The digest the caller announced, hex.
        expected: String,
        /// The digest of the bytes received, hex.
        actual: String,
    },
    /// The text is not an object id this crate produced.
    #[error("invalid object id {0:?}")]
    InvalidId(String),
    /// A file name has nothing usable left once path parts and control characters are removed.
    #[error("invalid file name: {0}")]
    InvalidName(&'static str),
    /// Something that may be used a limited number of times (a download
    /// link) has been used that many times.
    #[error("{0} has been used as many times as it may be")]
    UsedUp(String),
    /// The requested byte range lies outside the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// The object's size, in bytes.
        size: u64,
    },
    /// The object's stored metadata cannot be read; only deleting it works.
    #[error("object {id} is damaged: {reason}")]
    Damaged {
        /// The object's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An append did not start where the upload stands; nothing was stored.
    #[error("the upload is at offset {offset}, not where this append starts")]
    OffsetMismatch {
        /// The upload's current offset: where the next append must start.
        offset: u64,
    },
    /// Another append, completion or removal of this upload is in progress.
    #[error("upload {0} is busy with another request; retry later")]
    Locked(String),
    /// The upload belongs to another owner than the one the request was
    /// limited to ([`Append::owner`](crate::Append::owner)); nothing changed.
    #[error("upload {0} belongs to another owner")]
    NotOwner(String),
    /// The upload expired before it was completed; it is or will be removed.
    #[error("upload {0} has expired")]
    Expired(String),
    /// An append's bytes do not match the checksum sent with them; the offset did not move.
    #[error("the appended bytes do not match their {algorithm} checksum; they were discarded")]
    AppendChecksumMismatch {
        /// The algorithm's name (`sha1`, `sha256`, `md5`).
        algorithm: &'static str,
    },
    /// The request does not fit the upload's state (length already set,
    /// upload not finished, not a partial upload, ...); nothing changed.
    #[error("{0}")]
    InvalidUpload(String),
    /// The device or quota is full (ENOSPC, EDQUOT); nothing was stored.
    #[error("storage is full")]
    StorageFull,
    /// The store cannot be used right now (locked by another process, unreachable).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The caller's input stream failed (client went away, malformed body); nothing was stored.
    #[error("upload body failed: {0}")]
    Body(#[source] BoxError),
    /// The store's settings are unusable (missing credentials, bad prefix, ...).
    #[error("invalid storage settings: {0}")]
    InvalidConfig(String),
    /// Any other I/O error from the store.
    #[error("storage I/O error: {0}")]
    Io(#[source] io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::StorageFull,
            // Out of descriptors: an overload that passes, not a fault of the store.
            _ if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                Error::Unavailable(format!("too many open files: {e}"))
            }
            _ => Error::Io(e),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_are_storage_full() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let e = Error::from(io::Error::from_raw_os_error(code));
            assert!(matches!(e, Error::StorageFull), "{code}: {e:?}");
        }
        let e = Error::from(io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, Error::Io(_)));
        let e = Error::from(io::Error::from_raw_os_error(libc::EMFILE));
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    }
}
