//! The requests object_store does not make (a copy that replaces the
//! metadata, a bucket probe, multipart-upload listing and abort), signed
//! with SigV4 by object_store's own signer and the same credentials.

use std::fmt;

use object_store::Attribute;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use object_store::path::Path;

use super::metadata::attributes;
use crate::{Error, FileInfo, Result};

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
}

impl Signed {
    /// Sends a SigV4-signed request with an empty body to `key` (with its
    /// query, if any) in the bucket.
    pub(super) async fn send(
        &self,
        method: http::Method,
        key: &str,
        headers: http::HeaderMap,
    ) -> Result<reqwest::Response> {
        let url = format!("{}/{key}", self.bucket_url);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .body(HttpRequestBody::empty())
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        *request.headers_mut() = headers;
        AwsAuthorizer::new(&self.credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(unavailable)?;
        let (parts, _) = request.into_parts();
        self.http
            .request(parts.method, url)
            .headers(parts.headers)
            .send()
            .await
            .map_err(unavailable)
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
}
