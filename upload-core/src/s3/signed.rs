//! The requests object_store does not make (a copy that replaces the
//! metadata, a bucket probe, multipart-upload listing and abort), signed
//! with SigV4 by object_store's own signer and the same credentials.

use std::fmt;

use object_store::Attribute;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use object_store::path::Path;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::metadata::attributes;
use crate::{Error, FileInfo, Result};

/// An unfinished multipart upload, as `ListMultipartUploads` shows it.
pub(super) struct PendingUpload {
    pub(super) key: String,
    pub(super) upload_id: String,
    pub(super) initiated: OffsetDateTime,
}

/// A store error, as every S3 failure reaches callers: retry later.
pub(super) fn unavailable(e: impl fmt::Display) -> Error {
    Error::Unavailable(format!("object store: {e}"))
}

/// Signed requests to one bucket.
pub(super) struct Signed {
    pub(super) http: reqwest::Client,
    pub(super) credential: AwsCredential,
    pub(super) region: String,
    pub(super) bucket_url: String,
    pub(super) bucket: String,
    /// For [`upload_part`](Self::upload_part), whose requests last as long as
    /// their client's body: no overall timeout.
    pub(super) streaming: reqwest::Client,
    /// How long a request's answer may take.
    pub(super) request_timeout: std::time::Duration,
}

impl Signed {
    /// A SigV4-signed request to `key` (with its query, if any) in the
    /// bucket, on `client`. With `sign_payload`, its body is signed as
    /// empty; without, as `UNSIGNED-PAYLOAD`, for a body streamed later.
    fn request(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        key: &str,
        headers: http::HeaderMap,
        sign_payload: bool,
    ) -> Result<reqwest::RequestBuilder> {
        let url = format!("{}/{key}", self.bucket_url);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        *request.headers_mut() = headers;
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .with_sign_payload(sign_payload)
            .try_authorize(&mut request, None)
            .map_err(unavailable)?;
        let (parts, _) = request.into_parts();
        Ok(client.request(parts.method, url).headers(parts.headers))
    }

    /// Sends a SigV4-signed request with an empty body to `key` (with its
    /// query, if any) in the bucket.
    pub(super) async fn send(
        &self,
        method: http::Method,
        key: &str,
        headers: http::HeaderMap,
    ) -> Result<reqwest::Response> {
        let request = self.request(&self.http, method, key, headers, true)?;
        request.send().await.map_err(unavailable)
    }

    /// `UploadPart` of `size` bytes streamed from `body` (unsigned, as every
    /// payload is here); returns the part's ETag.
    pub(super) async fn upload_part<S>(
        &self,
        key: &str,
        upload_id: &str,
        part_number: usize,
        size: usize,
        body: S,
    ) -> Result<String>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        let query = format!("?partNumber={part_number}&uploadId={}", utf8_query(upload_id));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, size.into());
        let request = self.request(
            &self.streaming,
            http::Method::PUT,
            &format!("{key}{query}"),
            headers,
            false,
        )?;
        let response =
            request.body(reqwest::Body::wrap_stream(body)).send().await.map_err(unavailable)?;
        let status = response.status();
        let etag = response.headers().get(http::header::ETAG).cloned();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "part {part_number} of {key}: {status} {body}"
            )));
        }
        let etag = etag.and_then(|etag| etag.to_str().ok().map(str::to_owned));
        etag.ok_or_else(|| Error::Unavailable(format!("part {part_number} of {key}: no ETag")))
    }

    /// Server-side copy that replaces the metadata, which object_store's `copy` keeps.
    pub(super) async fn copy_with_metadata(
        &self,
        from: &Path,
        to: &Path,
        info: &FileInfo,
    ) -> Result<()> {
        let mut headers = http::HeaderMap::new();
        let mut insert = |name: &str, value: &str| {
            let value = http::HeaderValue::from_str(value)
                .map_err(|e| Error::Unavailable(format!("metadata header {name}: {e}")))?;
            headers.insert(http::HeaderName::from_bytes(name.as_bytes()).expect("static"), value);
            Ok::<_, Error>(())
        };
        insert("x-amz-copy-source", &format!("/{}/{from}", self.bucket))?;
        insert("x-amz-metadata-directive", "REPLACE")?;
        for (attribute, value) in &attributes(info) {
            match attribute {
                Attribute::ContentType => insert("content-type", value)?,
                Attribute::Metadata(key) => insert(&format!("x-amz-meta-{key}"), value)?,
                _ => {}
            }
        }
        let response = self.send(http::Method::PUT, to.as_ref(), headers).await?;
        let status = response.status();
        // CopyObject can fail after sending 200: the error is then in the body.
        let body = response.text().await.map_err(unavailable)?;
        if !status.is_success() || body.contains("<Error>") {
            return Err(Error::Unavailable(format!("copying {from} to {to}: {status} {body}")));
        }
        Ok(())
    }

    /// The unfinished multipart uploads under `prefix` (one page, up to 1000).
    pub(super) async fn multipart_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let query = format!("?uploads&prefix={}", utf8_query(prefix));
        let response = self.send(http::Method::GET, &query, http::HeaderMap::new()).await?;
        let status = response.status();
        let body = response.text().await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(Error::Unavailable(format!("listing multipart uploads: {status} {body}")));
        }
        let listing: MultipartUploads = quick_xml::de::from_str(&body)
            .map_err(|e| Error::Unavailable(format!("listing multipart uploads: {e}")))?;
        listing
            .uploads
            .into_iter()
            .map(|upload| {
                let initiated =
                    OffsetDateTime::parse(&upload.initiated, &Rfc3339).map_err(|e| {
                        Error::Unavailable(format!("upload initiated {:?}: {e}", upload.initiated))
                    })?;
                Ok(PendingUpload { key: upload.key, upload_id: upload.upload_id, initiated })
            })
            .collect()
    }

    /// Aborts a multipart upload; `false` if another process was first.
    pub(super) async fn abort_multipart(&self, upload: &PendingUpload) -> Result<bool> {
        let key = format!("{}?uploadId={}", upload.key, utf8_query(&upload.upload_id));
        let status = self.send(http::Method::DELETE, &key, http::HeaderMap::new()).await?.status();
        match status {
            s if s.is_success() => Ok(true),
            http::StatusCode::NOT_FOUND => Ok(false),
            s => Err(Error::Unavailable(format!("aborting {key}: {s}"))),
        }
    }
}

/// `ListMultipartUploads`, the part of it the service reads.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MultipartUploads {
    #[serde(default, rename = "Upload")]
    uploads: Vec<MultipartUploadEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MultipartUploadEntry {
    key: String,
    upload_id: String,
    initiated: String,
}

/// `text` escaped for a query value (RFC 3986 unreserved characters kept).
fn utf8_query(text: &str) -> String {
    const ESCAPES: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(text, ESCAPES).to_string()
}
