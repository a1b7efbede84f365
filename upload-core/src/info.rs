use std::ops::Range;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Error, FileName, ObjectId};

/// What was stored: returned by [`Storage::put`](crate::Storage::put) and
/// kept beside the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The media type stored when the client gives none.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// What the caller knows about an upload before its bytes arrive.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// The client's file name, kept as metadata only.
    pub filename: Option<FileName>,
    /// The media type to store (checked to be safe to echo in a header).
    pub content_type: Option<String>,
    /// Stop and fail with [`Error::TooLarge`] past this many bytes.
    pub max_size: Option<u64>,
    /// Fail with [`Error::ChecksumMismatch`], storing nothing, unless the bytes hash to this.
    pub expected_sha256: Option<[u8; 32]>,
}

impl PutOptions {
    pub(crate) fn content_type(&self) -> Result<String, Error> {
        let Some(ct) = self.content_type.as_deref() else {
            return Ok(DEFAULT_CONTENT_TYPE.to_owned());
        };
        if ct.len() > 255 {
            return Err(Error::InvalidContentType("longer than 255 bytes"));
        }
        if !ct.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
            return Err(Error::InvalidContentType("only visible ASCII characters are allowed"));
        }
        if !ct.contains('/') {
            return Err(Error::InvalidContentType("expected type/subtype"));
        }
        Ok(ct.to_owned())
    }
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
    fn content_types_that_could_break_a_header_are_refused() {
        let opts = |ct: &str| PutOptions { content_type: Some(ct.into()), ..Default::default() };
        assert_eq!(PutOptions::default().content_type().unwrap(), DEFAULT_CONTENT_TYPE);
        assert_eq!(
            opts("text/plain; charset=utf-8").content_type().unwrap(),
            "text/plain; charset=utf-8"
        );
        for bad in ["text/plain\r\nX-Evil: 1", "plain", "é/x", &"a/".repeat(200)] {
            assert!(
                matches!(opts(bad).content_type(), Err(Error::InvalidContentType(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sha256_hex_parses_exactly_64_digits() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_sha256_hex(&hex), Some([0xab; 32]));
        assert_eq!(parse_sha256_hex(&hex[..62]), None);
        assert_eq!(parse_sha256_hex(&"zz".repeat(32)), None);
    }
}
