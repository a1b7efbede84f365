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
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, GetResult, ObjectStore, ObjectStoreExt,
    RetryConfig,
};
use time::OffsetDateTime;

mod append;
mod config;
mod lease;
mod marks;
mod metadata;
mod record;
mod saved;
mod signed;
mod sink;
mod streamed;
mod uploads;

pub use config::S3Config;
use config::normalize_prefix;
use marks::Marks;
use metadata::file_info;
use signed::{Signed, unavailable};
pub(crate) use sink::S3Sink;
use uploads::S3Uploads;

use crate::backend::Object;
use crate::{ByteRange, Error, FileInfo, ObjectId, Page, Result};

/// S3 refuses parts below 5 MiB (except the last).
const MIN_PART_SIZE: u64 = 5 << 20;
/// How long [`S3Store::check_ready`] waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(3);
/// Objects read concurrently to fill a listing page with their metadata.
const LIST_HEADS: usize = 16;

/// The S3 backend: an object_store client plus what it lacks (a copy that
/// replaces metadata, and a bucket probe), signed with the same credentials.
pub(crate) struct S3Store {
    store: AmazonS3,
    signed: Arc<Signed>,
    /// Resumable uploads.
    uploads: Arc<S3Uploads>,
    /// Expiry markers and use counters.
    marks: Marks,
    prefix: String,
    part_size: usize,
    concurrency: usize,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket_url", &self.signed.bucket_url)
            .finish_non_exhaustive()
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
        let credential = AwsCredential { key_id, secret_key: secret, token };
        let streaming = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let signed = Arc::new(Signed {
            http,
            credential,
            region,
            bucket_url,
            bucket: bucket.clone(),
            streaming,
            request_timeout: config.request_timeout,
        });
        let uploads = Arc::new(S3Uploads {
            store: store.clone(),
            signed: Arc::clone(&signed),
            prefix: prefix.clone(),
            part_size: part_size as usize,
            concurrency: config.concurrency,
            saved: Default::default(),
        });
        let marks = Marks { store: store.clone(), prefix: prefix.clone() };
        Ok(Self {
            store,
            signed,
            uploads,
            marks,
            prefix,
            part_size: part_size as usize,
            concurrency: config.concurrency,
        })
    }

    fn object_path(&self, id: &ObjectId) -> Path {
        Path::from(format!("{}objects/{id}", self.prefix))
    }

    pub(crate) fn begin(&self, id: ObjectId) -> S3Sink<'_> {
        S3Sink::new(&self.store, &self.signed, id, &self.prefix, self.part_size, self.concurrency)
    }

    pub(crate) fn uploads(&self) -> &Arc<S3Uploads> {
        &self.uploads
    }

    pub(crate) fn marks(&self) -> &Marks {
        &self.marks
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

    /// Deletes the object without asking whether it was there (S3 deletes
    /// are idempotent; [`crate::Storage::delete`] asks first).
    pub(crate) async fn remove(&self, id: &ObjectId) -> Result<()> {
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
        let probe = self.signed.send(http::Method::HEAD, "", http::HeaderMap::new());
        let response = tokio::time::timeout(READY_TIMEOUT, probe).await.map_err(|_| {
            Error::Unavailable(format!(
                "bucket {}: no answer within {READY_TIMEOUT:?}",
                self.signed.bucket
            ))
        })??;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => {
                Err(Error::Unavailable(format!("bucket {}: HEAD returned {s}", self.signed.bucket)))
            }
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

        let mut aborted = 0;
        for upload in self.signed.multipart_uploads(&format!("{}incoming/", self.prefix)).await? {
            // Another replica's sweep may be first.
            if upload.initiated < cutoff && self.signed.abort_multipart(&upload).await? {
                aborted += 1;
            }
        }
        Ok(stale.len() + aborted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(store.signed.bucket_url, "http://127.0.0.1:3900/uploads");
        assert_eq!(store.signed.region, "garage");
        assert_eq!(store.signed.credential.key_id, "GK1");
        let hosted = S3Config { path_style: false, ..S3Config::new("b") };
        assert_eq!(
            S3Store::open(&hosted, env).unwrap().signed.bucket_url,
            "http://b.127.0.0.1:3900"
        );

        let no_env = |_: &str| None;
        let err = S3Store::open(&S3Config::new("uploads"), no_env).unwrap_err();
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let small = S3Config { part_size: bytesize::ByteSize::mib(1), ..S3Config::new("b") };
        assert!(S3Store::open(&small, env).unwrap_err().to_string().contains("part_size"));
        let zero = S3Config { concurrency: 0, ..S3Config::new("b") };
        assert!(S3Store::open(&zero, env).is_err());
        assert!(S3Store::open(&S3Config::new("a/b"), env).is_err());
    }
}
