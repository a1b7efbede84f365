use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use upload_core::{ByteRange, LocalConfig, ObjectId, S3Config, Storage, StorageConfig};

pub type Chunk = Result<Bytes, std::io::Error>;

pub fn config(dir: &Path, fsync: bool) -> StorageConfig {
    StorageConfig::Local(LocalConfig { fsync, ..LocalConfig::new(dir) })
}

/// A durable store in a fresh TempDir.
pub async fn store() -> (TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&config(dir.path(), true)).await.unwrap();
    (dir, storage)
}

/// `data` cut at the given chunk sizes (the last chunk takes the rest).
pub fn chunked(data: &[u8], sizes: &[usize]) -> impl Stream<Item = Chunk> + use<> {
    let mut chunks = Vec::new();
    let mut rest = Bytes::copy_from_slice(data);
    for &size in sizes {
        let at = size.min(rest.len());
        chunks.push(Ok(rest.split_to(at)));
    }
    chunks.push(Ok(rest));
    stream::iter(chunks)
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub async fn read(storage: &Storage, id: &ObjectId, range: Option<ByteRange>) -> Vec<u8> {
    let object = storage.get(id, range).await.unwrap();
    let mut out = Vec::new();
    let mut body = object.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// Names of the entries in `root/sub`.
pub fn entries(root: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(sub))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that nothing is stored and no temporary file remains.
pub fn assert_dir_empty(root: &Path) {
    assert_eq!(entries(root, "objects"), Vec::<String>::new(), "objects");
    assert_eq!(entries(root, "tmp"), Vec::<String>::new(), "temporary files");
}

/// Where a [`TestStore`] keeps its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A TempDir.
    Local,
    /// A fresh prefix in the bucket of the Garage that `scripts/test.sh` starts
    /// (`AWS_*` variables and `S3_BUCKET`, as `garage-dev.sh` prints them).
    S3,
}

/// The S3 part size the tests use: the smallest S3 allows, so that a few MiB
/// already make a multipart upload.
pub const PART: usize = 5 << 20;

/// A store of either backend, with what the tests need to look behind it.
pub struct TestStore {
    pub storage: Storage,
    pub dir: TempDir,
    pub backend: Backend,
    prefix: String,
    config: StorageConfig,
}

impl TestStore {
    pub async fn open(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("test-{}/", ObjectId::new());
        let config = match backend {
            Backend::Local => config(dir.path(), true),
            Backend::S3 => StorageConfig::S3(S3Config {
                endpoint: Some(s3_env("AWS_ENDPOINT_URL")),
                region: Some(s3_env("AWS_REGION")),
                access_key_id: Some(s3_env("AWS_ACCESS_KEY_ID")),
                secret_access_key: Some(s3_env("AWS_SECRET_ACCESS_KEY")),
                part_size: bytesize::ByteSize::b(PART as u64),
                concurrency: 2,
                prefix: prefix.clone(),
                ..S3Config::new(s3_env("S3_BUCKET"))
            }),
        };
        let storage = Storage::open(&config).await.unwrap();
        Self { storage, dir, backend, prefix, config }
    }

    /// The same store closed and opened again, as a restarted process opens it.
    pub async fn reopen(self) -> Self {
        let Self { storage, dir, backend, prefix, config } = self;
        drop(storage);
        let storage = Storage::open(&config).await.unwrap();
        Self { storage, dir, backend, prefix, config }
    }

    /// Another handle on the same store, as a second replica opens it (S3:
    /// the local backend's root is one process's).
    pub async fn replica(&self) -> Storage {
        assert_eq!(self.backend, Backend::S3);
        Storage::open(&self.config).await.unwrap()
    }

    /// Ids of the visible objects, as the backend itself shows them.
    pub async fn stored(&self) -> Vec<String> {
        match self.backend {
            Backend::Local => entries(self.dir.path(), "objects"),
            Backend::S3 => s3_keys(&format!("{}objects/", self.prefix)).await,
        }
    }

    /// Temporary files, staging objects and unfinished multipart uploads.
    pub async fn leftovers(&self) -> Vec<String> {
        match self.backend {
            Backend::Local => entries(self.dir.path(), "tmp"),
            Backend::S3 => {
                let mut found = s3_keys(&format!("{}incoming/", self.prefix)).await;
                let uploads = s3_request(&format!("uploads&prefix={}", self.prefix)).await;
                found.extend(
                    xml_values(&uploads, "Key").iter().map(|k| format!("multipart upload {k}")),
                );
                found
            }
        }
    }

    /// What is kept of resumable uploads: directories under `uploads/`, or keys.
    pub async fn upload_keys(&self) -> Vec<String> {
        match self.backend {
            Backend::Local => entries(self.dir.path(), "uploads"),
            Backend::S3 => s3_keys(&format!("{}uploads/", self.prefix)).await,
        }
    }

    /// S3: what a crash leaves under `incoming/`: a staging object (between
    /// completion and copy) and a multipart upload never completed.
    pub async fn leave_crash_leftovers(&self) {
        assert_eq!(self.backend, Backend::S3);
        let staging = format!("{}incoming/{}", self.prefix, ObjectId::new());
        s3_call(http::Method::PUT, &staging).await;
        let upload = format!("{}incoming/{}?uploads", self.prefix, ObjectId::new());
        s3_call(http::Method::POST, &upload).await;
    }

    /// Asserts that no object is visible and nothing is left behind. Aborts
    /// of dropped S3 uploads run in the background: wait (bounded) for them.
    pub async fn assert_empty(&self) {
        assert_eq!(self.stored().await, Vec::<String>::new(), "objects");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers().await;
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs each named `async fn(Backend)` test once per backend, as `name::local` and `name::s3`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn local() {
                super::$name(crate::common::Backend::Local).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn s3() {
                if crate::common::s3_configured() {
                    super::$name(crate::common::Backend::S3).await
                }
            }
        }
    )*};
}
pub(crate) use on_both_backends;

/// The variables that name the test store.
const S3_VARS: [&str; 5] =
    ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET"];

/// The test store's settings: the environment (`scripts/test.sh` exports
/// them), else the env file `scripts/garage-dev.sh start` leaves in
/// `target/garage-dev/env`, if its node answers.
fn s3_settings() -> Option<&'static HashMap<&'static str, String>> {
    static SETTINGS: OnceLock<Option<HashMap<&'static str, String>>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let from_env: HashMap<_, _> =
                S3_VARS.iter().filter_map(|&v| Some((v, std::env::var(v).ok()?))).collect();
            if from_env.len() == S3_VARS.len() {
                return Some(from_env);
            }
            let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/garage-dev/env");
            let text = std::fs::read_to_string(file).ok()?;
            let from_file: HashMap<_, _> = text
                .lines()
                .filter_map(|line| {
                    let (key, value) = line.strip_prefix("export ")?.split_once('=')?;
                    let var = S3_VARS.iter().find(|&&v| v == key)?;
                    Some((*var, value.trim_matches('\'').to_owned()))
                })
                .collect();
            let endpoint = from_file.get("AWS_ENDPOINT_URL")?;
            let addr = endpoint.strip_prefix("http://")?.trim_end_matches('/');
            let answers = std::net::TcpStream::connect(addr).is_ok();
            (from_file.len() == S3_VARS.len() && answers).then_some(from_file)
        })
        .as_ref()
}

/// Whether the S3 tests can run. Without a store they are skipped, said
/// once on stderr; with `FASTUPLOAD_REQUIRE_S3=1` (as `scripts/test.sh`
/// sets) a missing store fails them instead.
pub fn s3_configured() -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    if s3_settings().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("FASTUPLOAD_REQUIRE_S3").is_none_or(|v| v != "1"),
        "FASTUPLOAD_REQUIRE_S3=1 but no S3 store is configured ({S3_VARS:?})"
    );
    // Not through eprintln!, which the test harness captures: one line for the whole run.
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "upload-core: S3 tests skipped (no store): run scripts/test.sh, or \
             scripts/garage-dev.sh start, or set {}",
            S3_VARS.join(", ")
        );
    });
    false
}

fn s3_env(var: &str) -> String {
    s3_settings().and_then(|s| s.get(var).cloned()).unwrap_or_else(|| panic!("{var} is not set"))
}

/// Keys under `prefix` in the test bucket, without the prefix.
async fn s3_keys(prefix: &str) -> Vec<String> {
    let body = s3_request(&format!("list-type=2&prefix={prefix}")).await;
    xml_values(&body, "Key")
        .iter()
        .map(|k| k.strip_prefix(prefix).unwrap_or(k).to_owned())
        .collect()
}

/// A signed `GET` on the test bucket with this query; the response body.
async fn s3_request(query: &str) -> String {
    s3_call(http::Method::GET, &format!("?{query}")).await
}

/// A signed request with an empty body to `key` (and query) in the test bucket; the response body.
async fn s3_call(method: http::Method, key: &str) -> String {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    let url = format!("{}/{}/{key}", s3_env("AWS_ENDPOINT_URL"), s3_env("S3_BUCKET"));
    let credential = AwsCredential {
        key_id: s3_env("AWS_ACCESS_KEY_ID"),
        secret_key: s3_env("AWS_SECRET_ACCESS_KEY"),
        token: None,
    };
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(&url)
        .body(object_store::client::HttpRequestBody::empty())
        .unwrap();
    AwsAuthorizer::new(&credential, "s3", &s3_env("AWS_REGION"))
        .try_authorize(&mut request, None)
        .unwrap();
    let response = reqwest::Client::new()
        .request(method, &url)
        .headers(request.headers().clone())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.text().await.unwrap()
}

/// The text of every `<tag>` element (the S3 listings used here hold plain text).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split(close.as_str()).next())
        .map(str::to_owned)
        .collect()
}
