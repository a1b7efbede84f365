//! The S3 backend's settings, as people write them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    #[serde(default = "default_connect_timeout", with = "crate::units::duration")]
    pub connect_timeout: Duration,
    /// Time allowed for one request, and for its retries together.
    #[serde(default = "default_request_timeout", with = "crate::units::duration")]
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

/// `""` or `a/b/` from what a person writes; `None` if it has unsafe characters.
pub(super) fn normalize_prefix(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Some(String::new());
    }
    let safe = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
    (safe && !trimmed.split('/').any(|s| s.is_empty() || s == "." || s == ".."))
        .then(|| format!("{trimmed}/"))
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
