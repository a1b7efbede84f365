//! The S3-compatible backend: bodies stream into multipart uploads with a
//! bounded number of parts in flight; metadata travels as S3 user metadata,
//! so any number of stateless replicas can share one bucket.
//!
//! Layout under the configured prefix: `objects/<id>` holds the visible
//! objects; `incoming/<id>` is where a multipart upload is assembled. S3 fixes
//! an object's metadata when its upload starts, before the SHA-256 is known,
//! so a completed upload is copied (server-side, `REPLACE`-ing the metadata)
//! to `objects/<id>` and the staging copy deleted. A body smaller than one
//! part is sent as a single `PUT` straight to `objects/<id>`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::client::HttpRequestBody;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult,
    MultipartUpload, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;

use crate::backend::{Batch, Object, Sink};
use crate::{ByteRange, Error, FileInfo, ObjectId, Page, Result};

/// S3 refuses parts below 5 MiB (except the last).
const MIN_PART_SIZE: u64 = 5 << 20;
/// How long [`S3Store::check_ready`] waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// Objects read concurrently to fill a listing page with their metadata.
const LIST_HEADS: usize = 16;

/// Settings of the S3-compatible backend (`type = "s3"`).
///
/// `endpoint`, `region`, `access_key_id` and `secret_access_key` fall back to
/// the standard `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` variables (and `AWS_SESSION_TOKEN`) when unset.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Base URL of the store, e.g. `http://127.0.0.1:3900`; AWS when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region requests are signed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The bucket; it must exist.
    pub bucket: String,
    /// Access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Address buckets as `endpoint/bucket` (true) or `bucket.endpoint`.
    #[serde(default = "default_path_style")]
    pub path_style: bool,
    /// Bytes per multipart part (at least 5 MiB); smaller bodies are one `PUT`.
    #[serde(default = "default_part_size")]
    pub part_size: bytesize::ByteSize,
    /// Parts of one upload in flight at once. An upload holds at most
    /// `concurrency` parts (those in flight and the one being filled), plus
    /// the ~1 MiB batch being received: within `part_size * (concurrency + 1)`.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Key prefix of everything this service stores, e.g. `"team-a/"`.
    #[serde(default)]
    pub prefix: String,
    /// Time allowed to open a connection to the store.
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Time allowed for one request, and for its retries together.
    #[serde(default = "default_request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// Retries (with exponential backoff) of a request that failed in a way
    /// that makes retrying safe (connection errors, 5xx, throttling).
    #[serde(default = "default_max_retries")]
    pub max_retries: usize,
}

fn default_path_style() -> bool {
    true
}
fn default_part_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(8)
}
fn default_concurrency() -> usize {
    4
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_max_retries() -> usize {
    3
}

impl S3Config {
    /// Defaults for everything but the bucket.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            region: None,
            bucket: bucket.into(),
            access_key_id: None,
            secret_access_key: None,
            path_style: default_path_style(),
            part_size: default_part_size(),
            concurrency: default_concurrency(),
            prefix: String::new(),
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
            max_retries: default_max_retries(),
        }
    }
}

// The secret stays out of logs.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("path_style", &self.path_style)
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// Durations as `"30s"`, `"1m 30s"` or a number of seconds.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Duration::try_from_secs_f64(s).map_err(D::Error::custom),
            Raw::Text(t) => humantime::parse_duration(&t).map_err(D::Error::custom),
        }
    }
}

/// The S3 backend: an object_store client plus what it lacks (a copy that
/// replaces metadata, and a bucket probe), signed with the same credentials.
pub(crate) struct S3Store {
    store: AmazonS3,
    http: reqwest::Client,
    credential: AwsCredential,
    region: String,
    bucket_url: String,
    bucket: String,
    prefix: String,
    part_size: usize,
    concurrency: usize,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("bucket_url", &self.bucket_url).finish_non_exhaustive()
    }
}

impl S3Store {
    /// Builds the client; it does not contact the store, so a service can
    /// start while the store is down.
    pub(crate) fn open(config: &S3Config, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let invalid = |what: String| Error::InvalidConfig(format!("storage (s3): {what}"));
        let pick = |value: &Option<String>, var: &str| {
            value.clone().or_else(|| env(var)).filter(|v| !v.is_empty())
        };
        let region = pick(&config.region, "AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let key_id = pick(&config.access_key_id, "AWS_ACCESS_KEY_ID")
            .ok_or_else(|| invalid("access_key_id (or AWS_ACCESS_KEY_ID) is not set".into()))?;
        let secret = pick(&config.secret_access_key, "AWS_SECRET_ACCESS_KEY").ok_or_else(|| {
            invalid("secret_access_key (or AWS_SECRET_ACCESS_KEY) is not set".into())
        })?;
        let token = env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty());
        let endpoint = pick(&config.endpoint, "AWS_ENDPOINT_URL");
        let bucket = &config.bucket;
        if bucket.is_empty()
            || !bucket.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(invalid(format!("bucket {bucket:?} is not a valid bucket name")));
        }
        let prefix = normalize_prefix(&config.prefix).ok_or_else(|| {
            invalid(format!(
                "prefix {:?} may hold only ASCII letters, digits and -._/",
                config.prefix
            ))
        })?;
        let part_size = config.part_size.as_u64();
        if !(MIN_PART_SIZE..=1 << 30).contains(&part_size) {
            return Err(invalid(format!(
                "part_size {} is not within 5 MiB..=1 GiB",
                config.part_size
            )));
        }
        if config.concurrency == 0 {
            return Err(invalid("concurrency must be at least 1".into()));
        }
        let bucket_url = match (&endpoint, config.path_style) {
            (Some(ep), true) => format!("{}/{bucket}", ep.trim_end_matches('/')),
            (Some(ep), false) => match ep.split_once("://") {
                Some((scheme, host)) => {
                    format!("{scheme}://{bucket}.{}", host.trim_end_matches('/'))
                }
                None => return Err(invalid(format!("endpoint {ep:?} is not a URL"))),
            },
            (None, true) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
            (None, false) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };

        let options = ClientOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            .with_allow_http(true);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_access_key_id(&key_id)
            .with_secret_access_key(&secret)
            .with_virtual_hosted_style_request(!config.path_style)
            // We hash every byte already; signing the payload would hash it twice.
            .with_unsigned_payload(true)
            .with_allow_http(true)
            .with_client_options(options)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: config.max_retries,
                retry_timeout: config.request_timeout,
            });
        if let Some(ep) = &endpoint {
            builder = builder.with_endpoint(ep);
        }
        if let Some(token) = &token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            store,
            http,
            credential: AwsCredential { key_id, secret_key: secret, token },
            region,
            bucket_url,
            bucket: bucket.clone(),
            prefix,
            part_size: part_size as usize,
            concurrency: config.concurrency,
        })
    }

    fn object_path(&self, id: &ObjectId) -> Path {
        Path::from(format!("{}objects/{id}", self.prefix))
    }

    fn staging_path(&self, id: &ObjectId) -> Path {
        Path::from(format!("{}incoming/{id}", self.prefix))
    }

    pub(crate) fn begin(&self, id: ObjectId) -> S3Sink<'_> {
        S3Sink {
            store: self,
            id,
            pending: Vec::new(),
            pending_len: 0,
            upload: None,
            parts: JoinSet::new(),
        }
    }

    pub(crate) async fn get(&self, id: &ObjectId, range: Option<ByteRange>) -> Result<Object> {
        let mut options = GetOptions::default();
        if let Some(range) = range {
            // The range is resolved against the size first, so that an
            // unsatisfiable one gets the same error as from the local backend.
            let info = self.head(id).await?;
            options.range = Some(GetRange::Bounded(range.resolve(info.size)?));
        }
        let result = self.fetch(id, options).await?;
        let info = file_info(*id, &result)?;
        let range = result.range.clone();
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(Object { info, range, body })
    }

    pub(crate) async fn head(&self, id: &ObjectId) -> Result<FileInfo> {
        let result = self.fetch(id, GetOptions { head: true, ..GetOptions::default() }).await?;
        file_info(*id, &result)
    }

    async fn fetch(&self, id: &ObjectId, options: GetOptions) -> Result<GetResult> {
        self.store.get_opts(&self.object_path(id), options).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound(id.to_string()),
            e => unavailable(e),
        })
    }

    pub(crate) async fn delete(&self, id: &ObjectId) -> Result<()> {
        // S3 deletes are idempotent; the caller wants to know the object was there.
        match self.head(id).await {
            Ok(_) | Err(Error::Damaged { .. }) => {}
            Err(e) => return Err(e),
        }
        self.store.delete(&self.object_path(id)).await.map_err(unavailable)
    }

    /// A page, and the damaged objects left out of it.
    pub(crate) async fn list(
        &self,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<(Page, Vec<Error>)> {
        let limit = limit.max(1);
        let prefix = Path::from(format!("{}objects", self.prefix));
        let keys = match after {
            Some(after) => self.store.list_with_offset(Some(&prefix), &self.object_path(&after)),
            None => self.store.list(Some(&prefix)),
        };
        // One extra key tells whether there is a next page.
        let mut ids: Vec<ObjectId> = keys
            .map_err(unavailable)
            .try_filter_map(async |meta| {
                Ok(meta.location.filename().and_then(|n| n.parse::<ObjectId>().ok()))
            })
            .take(limit.saturating_add(1))
            .try_collect()
            .await?;
        let next = (ids.len() > limit).then(|| {
            ids.truncate(limit);
            ids[limit - 1]
        });
        let heads: Vec<Option<Result<FileInfo>>> = stream::iter(&ids)
            .map(async |id| match self.head(id).await {
                // Deleted since it was listed.
                Err(Error::NotFound(_)) => Ok(None),
                Err(e @ Error::Damaged { .. }) => Ok(Some(Err(e))),
                other => other.map(|info| Some(Ok(info))),
            })
            .buffered(LIST_HEADS)
            .try_collect()
            .await?;
        let (files, damaged): (Vec<_>, Vec<_>) =
            heads.into_iter().flatten().partition(Result::is_ok);
        let files = files.into_iter().filter_map(Result::ok).collect();
        Ok((Page { files, next }, damaged.into_iter().filter_map(Result::err).collect()))
    }

    /// Asks the store whether the bucket exists and the credentials may use it.
    pub(crate) async fn check_ready(&self) -> Result<()> {
        // A readiness probe must answer quickly, even when the store does not.
        let probe = self.signed(http::Method::HEAD, "", http::HeaderMap::new());
        let response = tokio::time::timeout(READY_TIMEOUT, probe).await.map_err(|_| {
            Error::Unavailable(format!(
                "bucket {}: no answer within {READY_TIMEOUT:?}",
                self.bucket
            ))
        })??;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(Error::Unavailable(format!("bucket {}: HEAD returned {s}", self.bucket))),
        }
    }

    /// Removes what a crashed process left under `incoming/` (staging copies
    /// and unfinished multipart uploads, which the store would keep and bill)
    /// once older than `older_than`; returns how many. One page of uploads
    /// (up to 1000) per call.
    pub(crate) async fn sweep(&self, older_than: Duration) -> Result<usize> {
        let cutoff = OffsetDateTime::now_utc() - older_than;
        let cutoff_ms = (cutoff.unix_timestamp_nanos() / 1_000_000) as i64;
        let staging = Path::from(format!("{}incoming", self.prefix));
        let stale: Vec<Path> = self
            .store
            .list(Some(&staging))
            .map_err(unavailable)
            .try_filter_map(async |meta| {
                let stale = meta.last_modified.timestamp_millis() < cutoff_ms;
                Ok(stale.then_some(meta.location))
            })
            .try_collect()
            .await?;
        for path in &stale {
            self.store.delete(path).await.map_err(unavailable)?;
        }

        let query = format!("?uploads&prefix={}incoming/", self.prefix);
        let response = self.signed(http::Method::GET, &query, http::HeaderMap::new()).await?;
        let status = response.status();
        let body = response.text().await.map_err(unavailable)?;
        if !status.is_success() {
            return Err(Error::Unavailable(format!("listing multipart uploads: {status} {body}")));
        }
        let listing: MultipartUploads = quick_xml::de::from_str(&body)
            .map_err(|e| Error::Unavailable(format!("listing multipart uploads: {e}")))?;
        let mut aborted = 0;
        for upload in listing.uploads {
            let initiated = OffsetDateTime::parse(&upload.initiated, &Rfc3339).map_err(|e| {
                Error::Unavailable(format!("upload initiated {:?}: {e}", upload.initiated))
            })?;
            if initiated >= cutoff {
                continue;
            }
            let id = percent_encoding::utf8_percent_encode(&upload.upload_id, QUERY_ESCAPES);
            let key = format!("{}?uploadId={id}", upload.key);
            let status =
                self.signed(http::Method::DELETE, &key, http::HeaderMap::new()).await?.status();
            match status {
                s if s.is_success() => aborted += 1,
                // Another replica's sweep was first.
                http::StatusCode::NOT_FOUND => {}
                s => return Err(Error::Unavailable(format!("aborting {key}: {s}"))),
            }
        }
        Ok(stale.len() + aborted)
    }

    /// Server-side copy that replaces the metadata, which object_store's `copy` keeps.
    async fn copy_with_metadata(&self, from: &Path, to: &Path, info: &FileInfo) -> Result<()> {
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
        let response = self.signed(http::Method::PUT, to.as_ref(), headers).await?;
        let status = response.status();
        // CopyObject can fail after sending 200: the error is then in the body.
        let body = response.text().await.map_err(unavailable)?;
        if !status.is_success() || body.contains("<Error>") {
            return Err(Error::Unavailable(format!("copying {from} to {to}: {status} {body}")));
        }
        Ok(())
    }

    /// Sends a SigV4-signed request with an empty body to `key` (with its
    /// query, if any) in the bucket.
    async fn signed(
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
}

/// `""` or `a/b/` from what a person writes; `None` if it has unsafe characters.
fn normalize_prefix(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let safe = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
    (safe && !trimmed.split('/').any(|s| s.is_empty() || s == "." || s == ".."))
        .then(|| format!("{trimmed}/"))
}

/// `ListMultipartUploads`, the part of it the sweep reads.
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

/// Characters left as they are in a query value (RFC 3986 unreserved).
const QUERY_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

fn unavailable(e: impl fmt::Display) -> Error {
    Error::Unavailable(format!("object store: {e}"))
}

/// Metadata keys (`x-amz-meta-*`).
const META_SHA256: &str = "sha256";
const META_CREATED: &str = "created-at";
const META_FILENAME: &str = "filename";

/// Header values must be visible ASCII: the file name is percent-encoded.
const FILENAME_ESCAPES: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b' ');

fn attributes(info: &FileInfo) -> Attributes {
    let created = info.created_at.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::ContentType, info.content_type.clone().into());
    attrs.insert(Attribute::Metadata(META_SHA256.into()), info.sha256.clone().into());
    attrs.insert(Attribute::Metadata(META_CREATED.into()), created.into());
    if let Some(name) = &info.filename {
        let encoded = percent_encoding::utf8_percent_encode(name, FILENAME_ESCAPES).to_string();
        attrs.insert(Attribute::Metadata(META_FILENAME.into()), encoded.into());
    }
    attrs
}

fn file_info(id: ObjectId, result: &GetResult) -> Result<FileInfo> {
    let attrs = &result.attributes;
    let meta = |key: &'static str| attrs.get(&Attribute::Metadata(key.into())).map(|v| &**v);
    let foreign = |what: &str| Error::Damaged {
        id: id.to_string(),
        reason: format!("no valid {what} metadata; it was not stored by this service"),
    };
    let sha256 = meta(META_SHA256)
        .filter(|s| crate::parse_sha256_hex(s).is_some())
        .ok_or_else(|| foreign(META_SHA256))?;
    let created_at = meta(META_CREATED)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or_else(|| foreign(META_CREATED))?;
    let filename = match meta(META_FILENAME) {
        Some(encoded) => Some(
            percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .map_err(|_| foreign(META_FILENAME))?
                .into_owned(),
        ),
        None => None,
    };
    Ok(FileInfo {
        id,
        filename,
        size: result.meta.size,
        sha256: sha256.to_owned(),
        content_type: attrs
            .get(&Attribute::ContentType)
            .map_or(crate::DEFAULT_CONTENT_TYPE, |v| &**v)
            .to_owned(),
        created_at,
    })
}

/// One upload in progress. Parts are sent by tasks of their own, so they go
/// on while the caller waits for more of the body.
pub(crate) struct S3Sink<'a> {
    store: &'a S3Store,
    id: ObjectId,
    /// The part being filled.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Started with the first full part.
    upload: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
}

impl fmt::Debug for S3Sink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Sink").field("id", &self.id).finish_non_exhaustive()
    }
}

impl S3Sink<'_> {
    /// Sends the pending bytes as the next part, first waiting (backpressure)
    /// while `concurrency` parts are in flight.
    async fn send_part(&mut self) -> Result<()> {
        if self.upload.is_none() {
            let path = self.store.staging_path(&self.id);
            let upload = self
                .store
                .store
                .put_multipart_opts(&path, PutMultipartOptions::default())
                .await
                .map_err(unavailable)?;
            self.upload = Some(upload);
        }
        while self.parts.len() >= self.store.concurrency {
            self.join_one().await?;
        }
        let payload = self.take_part();
        let part = self.upload.as_mut().expect("started above").put_part(payload);
        self.parts.spawn(part);
        Ok(())
    }

    /// The next part: exactly `part_size` bytes (or what is left), cut
    /// from the pending chunks without copying.
    fn take_part(&mut self) -> PutPayload {
        let mut want = self.store.part_size.min(self.pending_len);
        self.pending_len -= want;
        let mut part = Vec::new();
        let mut rest = std::mem::take(&mut self.pending).into_iter();
        for mut piece in rest.by_ref() {
            if piece.len() > want {
                part.push(piece.split_to(want));
                self.pending.push(piece);
                break;
            }
            want -= piece.len();
            part.push(piece);
        }
        self.pending.extend(rest);
        part.into_iter().collect()
    }

    async fn join_one(&mut self) -> Result<()> {
        match self.parts.join_next().await {
            Some(Ok(result)) => result.map_err(unavailable),
            Some(Err(join)) => Err(unavailable(join)),
            None => Ok(()),
        }
    }

    async fn abort_upload(&mut self) {
        self.parts.shutdown().await;
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            log::warn!("could not abort the multipart upload of {}: {e}", self.id);
        }
    }
}

impl Sink for S3Sink<'_> {
    async fn write(&mut self, batch: Batch) -> Result<()> {
        self.pending_len += batch.iter().map(Bytes::len).sum::<usize>();
        self.pending.extend(batch.iter().cloned());
        // Strictly more than a part: a body of exactly one part is one PUT.
        while self.pending_len > self.store.part_size {
            self.send_part().await?;
        }
        // The next part fills only beside a free slot: with it, at most
        // `concurrency` parts are held at any time.
        while self.parts.len() >= self.store.concurrency {
            self.join_one().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        if self.upload.is_some() {
            while self.pending_len > 0 {
                self.send_part().await?;
            }
            while !self.parts.is_empty() {
                self.join_one().await?;
            }
        }
        Ok(())
    }

    async fn commit(mut self, info: &FileInfo) -> Result<()> {
        let target = self.store.object_path(&self.id);
        let Some(upload) = self.upload.as_mut() else {
            // Small enough for one PUT, which sets the metadata directly.
            let payload: PutPayload = std::mem::take(&mut self.pending).into_iter().collect();
            let opts = object_store::PutOptions::from(attributes(info));
            self.store.store.put_opts(&target, payload, opts).await.map_err(unavailable)?;
            return Ok(());
        };
        if let Err(e) = upload.complete().await {
            self.abort_upload().await;
            return Err(unavailable(e));
        }
        self.upload = None;
        let staging = self.store.staging_path(&self.id);
        let copied = self.store.copy_with_metadata(&staging, &target, info).await;
        if let Err(e) = self.store.store.delete(&staging).await {
            log::warn!("could not delete the staging object {staging}: {e}");
        }
        copied
    }

    async fn abort(mut self) {
        self.abort_upload().await;
    }
}

impl Drop for S3Sink<'_> {
    // A dropped put (client gone, server shutting down) must not leave parts
    // the store keeps and bills: abort the upload in the background.
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            self.parts.abort_all();
            let id = self.id;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        log::warn!("could not abort the multipart upload of {id}: {e}");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized_or_refused() {
        assert_eq!(normalize_prefix("").as_deref(), Some(""));
        assert_eq!(normalize_prefix("/").as_deref(), Some(""));
        assert_eq!(normalize_prefix("team-a").as_deref(), Some("team-a/"));
        assert_eq!(normalize_prefix("/a/b.c/").as_deref(), Some("a/b.c/"));
        for bad in ["a//b", "a/../b", "a b", "é", "a?b"] {
            assert_eq!(normalize_prefix(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn settings_fall_back_to_aws_variables_and_are_checked() {
        let env = |var: &str| match var {
            "AWS_ACCESS_KEY_ID" => Some("GK1".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3cret".to_owned()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:3900".to_owned()),
            "AWS_REGION" => Some("garage".to_owned()),
            _ => None,
        };
        let store = S3Store::open(&S3Config::new("uploads"), env).unwrap();
        assert_eq!(store.bucket_url, "http://127.0.0.1:3900/uploads");
        assert_eq!(store.region, "garage");
        assert_eq!(store.credential.key_id, "GK1");
        let hosted = S3Config { path_style: false, ..S3Config::new("b") };
        assert_eq!(S3Store::open(&hosted, env).unwrap().bucket_url, "http://b.127.0.0.1:3900");

        let no_env = |_: &str| None;
        let err = S3Store::open(&S3Config::new("uploads"), no_env).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let small = S3Config { part_size: bytesize::ByteSize::mib(1), ..S3Config::new("b") };
        assert!(S3Store::open(&small, env).unwrap_err().to_string().contains("part_size"));
        let zero = S3Config { concurrency: 0, ..S3Config::new("b") };
        assert!(S3Store::open(&zero, env).is_err());
        assert!(S3Store::open(&S3Config::new("a/b"), env).is_err());
    }

    #[test]
    fn settings_read_sizes_and_durations_as_people_write_them() {
        let config: S3Config = serde_json::from_str(
            r#"{"bucket": "b", "part_size": "16MiB", "request_timeout": "1m 30s", "connect_timeout": 2}"#,
        )
        .unwrap();
        assert_eq!(config.part_size.as_u64(), 16 << 20);
        assert_eq!(config.request_timeout, Duration::from_secs(90));
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert!(config.path_style);
        assert_eq!(config.concurrency, 4);
        let debug =
            format!("{:?}", S3Config { secret_access_key: Some("s3cret".into()), ..config });
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
