//! The tus request headers, parsed into what storage takes, and the
//! `Upload-Metadata` the service writes back.

use actix_web::http::header::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use upload_core::{Checksum, ChecksumAlgorithm, ObjectId};

use crate::error::ApiError;

/// The one version of the protocol served.
pub(super) const VERSION: &str = "1.0.0";
/// Every extension served.
pub(super) const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";
/// The content type of every body that carries upload bytes.
pub(super) const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Metadata is echoed in `HEAD` responses: a bound keeps those small.
const MAX_METADATA: usize = 4096;

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(|v| Some(v.trim())).map_err(|_| {
            ApiError::bad_request("invalid_header", format!("{name} is not visible ASCII"))
        }),
    }
}

/// A non-negative decimal number of bytes, as `Upload-Offset` and `Upload-Length` are.
pub(super) fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(value) = text(headers, name)? else { return Ok(None) };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("{name} must be a non-negative integer"),
        ));
    }
    value.parse().map(Some).map_err(|_| {
        ApiError::bad_request("invalid_header", format!("{name} is past the largest size"))
    })
}

/// Refuses a request of another protocol version (412 with `Tus-Version`).
pub(super) fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match text(headers, "tus-resumable")? {
        Some(VERSION) => Ok(()),
        Some(other) => Err(ApiError::UnsupportedTusVersion(other.chars().take(32).collect())),
        None => Err(ApiError::UnsupportedTusVersion("none".into())),
    }
}

/// Whether the body carries upload bytes (`Content-Type: application/offset+octet-stream`).
pub(super) fn has_upload_bytes(headers: &HeaderMap) -> bool {
    headers
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).
pub(super) fn metadata(headers: &HeaderMap) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let Some(value) = text(headers, "upload-metadata")? else { return Ok(Vec::new()) };
    let invalid = |why: String| ApiError::bad_request("invalid_metadata", why);
    if value.len() > MAX_METADATA {
        return Err(invalid(format!("Upload-Metadata is longer than {MAX_METADATA} bytes")));
    }
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, encoded) = pair.split_once(' ').unwrap_or((pair, ""));
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(invalid(format!("Upload-Metadata repeats the key {key:?}")));
        }
        let value = STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid(format!("Upload-Metadata: the value of {key:?} is not base64")))?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

/// The `Upload-Metadata` the service shows for an upload: what it kept.
pub(super) fn format_metadata(filename: Option<&str>, content_type: &str) -> String {
    let mut pairs = vec![format!("filetype {}", STANDARD.encode(content_type))];
    if let Some(name) = filename {
        pairs.insert(0, format!("filename {}", STANDARD.encode(name)));
    }
    pairs.join(",")
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
pub(super) fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(value) = text(headers, "upload-checksum")? else { return Ok(None) };
    let invalid = || {
        ApiError::bad_request(
            "invalid_checksum",
            "Upload-Checksum must be an algorithm and a base64 digest, e.g. `sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=`",
        )
    };
    let (name, digest) = value.split_once(' ').ok_or_else(invalid)?;
    let algorithm = ChecksumAlgorithm::from_name(name).ok_or_else(|| {
        ApiError::bad_request(
            "unsupported_checksum_algorithm",
            format!("checksum algorithm {:?} is not one of sha1, sha256, md5", truncate(name)),
        )
    })?;
    let digest = STANDARD.decode(digest.trim()).map_err(|_| invalid())?;
    if digest.len() != algorithm.digest_len() {
        return Err(invalid());
    }
    Ok(Some(Checksum { algorithm, digest }))
}

/// What `Upload-Concat` asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Concat {
    Partial,
    /// The partial uploads, in order.
    Final(Vec<ObjectId>),
}

/// `Upload-Concat: partial` or `final;<url> <url> ...`, the URLs absolute or paths.
pub(super) fn concat(headers: &HeaderMap) -> Result<Option<Concat>, ApiError> {
    let Some(value) = text(headers, "upload-concat")? else { return Ok(None) };
    let invalid = |why: String| ApiError::bad_request("invalid_concat", why);
    if value == "partial" {
        return Ok(Some(Concat::Partial));
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err(invalid("Upload-Concat must be `partial` or `final;<upload URLs>`".into()));
    };
    let ids = urls
        .split_ascii_whitespace()
        .map(|url| {
            let path = url.split(['?', '#']).next().unwrap_or_default();
            let id = path.rsplit_once("/uploads/").map(|(_, id)| id.trim_end_matches('/'));
            id.and_then(|id| id.parse().ok())
                .ok_or_else(|| invalid(format!("{:?} is not an upload URL", truncate(url))))
        })
        .collect::<Result<Vec<ObjectId>, _>>()?;
    if ids.is_empty() {
        return Err(invalid("Upload-Concat: final needs at least one upload URL".into()));
    }
    Ok(Some(Concat::Final(ids)))
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(64).map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn metadata_pairs_decode_and_bad_ones_are_refused() {
        let h = headers(&[(
            "upload-metadata",
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
        )]);
        let pairs = metadata(&h).unwrap();
        assert_eq!(pairs[0], ("filename".into(), b"world_domination_plan.pdf".to_vec()));
        assert_eq!(pairs[1], ("is_confidential".into(), Vec::new()));
        for bad in ["a !!!", "a YQ==,a YQ==", &"k ".repeat(3000)] {
            assert!(metadata(&headers(&[("upload-metadata", bad)])).is_err(), "{bad}");
        }
        assert_eq!(
            format_metadata(Some("a.txt"), "text/plain"),
            "filename YS50eHQ=,filetype dGV4dC9wbGFpbg=="
        );
    }

    #[test]
    fn numbers_checksums_and_concat() {
        assert_eq!(
            number(&headers(&[("upload-offset", "42")]), "upload-offset").unwrap(),
            Some(42)
        );
        for bad in ["-1", "", "1e3", "99999999999999999999"] {
            assert!(number(&headers(&[("upload-offset", bad)]), "upload-offset").is_err(), "{bad}");
        }
        let sha1 = checksum(&headers(&[("upload-checksum", "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")]))
            .unwrap()
            .unwrap();
        assert_eq!((sha1.algorithm, sha1.digest.len()), (ChecksumAlgorithm::Sha1, 20));
        assert!(
            checksum(&headers(&[("upload-checksum", "crc32 AAAA")]))
                .is_err_and(|e| e.to_string().contains("crc32"))
        );
        assert!(checksum(&headers(&[("upload-checksum", "md5 AAAA")])).is_err(), "short digest");

        let (a, b) = (ObjectId::new(), ObjectId::new());
        let value = format!("final;/uploads/{a} http://example.org/uploads/{b}");
        assert_eq!(
            concat(&headers(&[("upload-concat", &value)])).unwrap(),
            Some(Concat::Final(vec![a, b]))
        );
        assert_eq!(
            concat(&headers(&[("upload-concat", "partial")])).unwrap(),
            Some(Concat::Partial)
        );
        for bad in ["final;", "final;/files/x", "whole", "final;/uploads/../etc"] {
            assert!(concat(&headers(&[("upload-concat", bad)])).is_err(), "{bad}");
        }
    }
}
