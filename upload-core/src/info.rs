use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Error, FileName, ObjectId};

/// What was stored: returned by [`Storage::put`](crate::Storage::put) and
/// kept beside the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileInfo {
    /// Server-generated id.
    pub id: ObjectId,
    /// The client's file name, cleaned; `None` when the client gave none.
    pub filename: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Media type, `application/octet-stream` when the client gave none.
    pub content_type: String,
    /// When the object became visible.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who stored it, as the caller named them ([`Retention::owner`]).
    #[serde(default)]
    pub owner: Option<String>,
    /// When it stops being served and is removed; `None`: never.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl FileInfo {
    /// Whether the object has expired at `now`: it is then gone for every
    /// reader, whether or not a sweep has removed it yet.
    #[must_use]
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Who stores an object and for how long: what every way of storing one
/// (put, resumable upload, concatenation) records in its [`FileInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// A name for whoever stores it (an API token's name, a user id), kept
    /// as [`FileInfo::owner`].
    pub owner: Option<String>,
    /// The object expires this long after it is committed.
    #[serde(default, with = "crate::units::duration_option")]
    pub lifetime: Option<Duration>,
}

impl Retention {
    /// The [`FileInfo`] of an object committed now.
    pub(crate) fn file_info(
        &self,
        id: ObjectId,
        filename: Option<String>,
        size: u64,
        sha256: String,
        content_type: String,
    ) -> FileInfo {
        let created_at = OffsetDateTime::now_utc();
        FileInfo {
            id,
            filename,
            size,
            sha256,
            content_type,
            created_at,
            owner: self.owner.clone(),
            expires_at: self.lifetime.map(|lifetime| created_at + lifetime),
        }
    }
}

/// What the caller knows about an upload before its bytes arrive.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// The client's file name, kept as metadata only.
    pub filename: Option<FileName>,
    /// The media type, as the client sent it: stored normalised, or as
    /// `application/octet-stream` if it is not a media type.
    pub content_type: Option<String>,
    /// Stop and fail with [`Error::TooLarge`] past this many bytes.
    pub max_size: Option<u64>,
    /// Fail with [`Error::ChecksumMismatch`], storing nothing, unless the bytes hash to this.
    pub expected_sha256: Option<[u8; 32]>,
    /// Its owner and lifetime.
    pub retention: Retention,
}

/// A byte range as HTTP `Range` requests express it; resolved against the
/// object's size when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// Bytes `first..=last` (`last` is clamped to the end of the object).
    Inclusive {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive.
        last: u64,
    },
    /// From this offset to the end.
    From(u64),
    /// The last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range this selects in an object of `size` bytes.
    ///
    /// # Errors
    /// [`Error::RangeNotSatisfiable`] when it selects no byte of the object.
    pub fn resolve(self, size: u64) -> Result<Range<u64>, Error> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            Self::Inclusive { first, last } if first < size && first <= last => {
                Ok(first..last.min(size - 1) + 1)
            }
            Self::From(first) if first < size => Ok(first..size),
            Self::Suffix(n) if n > 0 && size > 0 => Ok(size - n.min(size)..size),
            _ => Err(unsatisfiable),
        }
    }
}

/// One page of a listing in id (creation) order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    /// At most the requested number of objects, in id order.
    pub files: Vec<FileInfo>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<ObjectId>,
}

/// Parses a SHA-256 digest written as 64 hex digits; `None` if it is not one.
#[must_use]
pub(crate) fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        use ByteRange::*;
        assert_eq!(Inclusive { first: 0, last: 0 }.resolve(10).unwrap(), 0..1);
        assert_eq!(Inclusive { first: 2, last: 100 }.resolve(10).unwrap(), 2..10);
        assert_eq!(From(9).resolve(10).unwrap(), 9..10);
        assert_eq!(Suffix(3).resolve(10).unwrap(), 7..10);
        assert_eq!(Suffix(30).resolve(10).unwrap(), 0..10);
        for bad in [
            Inclusive { first: 10, last: 12 },
            Inclusive { first: 5, last: 4 },
            From(10),
            Suffix(0),
        ] {
            assert!(
                matches!(bad.resolve(10), Err(Error::RangeNotSatisfiable { size: 10 })),
                "{bad:?}"
            );
        }
        assert!(Suffix(1).resolve(0).is_err());
    }

    #[test]
    fn sha256_hex_parses_exactly_64_digits() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_sha256_hex(&hex), Some([0xab; 32]));
        assert_eq!(parse_sha256_hex(&hex[..62]), None);
        assert_eq!(parse_sha256_hex(&"zz".repeat(32)), None);
    }
}
