//! Settings: built-in defaults, then an optional TOML file, then
//! `UPLOAD__SECTION__KEY` environment variables; parsed into [`RawSettings`]
//! (what a person writes: `"1GiB"`, `"30s"`), then validated into [`Settings`].

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use upload_core::StorageConfig;

mod auth;
mod values;

pub use auth::{AuthSettings, RawAuth, RawToken, TokenEntry};
pub use values::{Nice, SettingsError, Size, Span};
use values::{
    at_least_one, media_types, optional, origins, positive, priority, size, size_or_zero, span,
};

/// What `server.inline_types` is unless set: images a browser shows, and PDF
/// (not SVG, which may carry script).
const DEFAULT_INLINE_TYPES: [&str; 6] =
    ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "application/pdf"];

/// Settings as read, before validation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// `[server]`
    pub server: RawServer,
    /// `[storage]`: `type = "local"` (`root`, `fsync`, `direct_io`) or `type = "s3"` (`bucket`, ...),
    /// and how long files live.
    pub storage: RawStorage,
    /// `[limits]`
    pub limits: RawLimits,
    /// `[compute]`
    pub compute: RawCompute,
    /// `[bench]`
    pub bench: RawBench,
    /// `[uploads]`: resumable (tus) uploads.
    pub uploads: RawUploads,
    /// `[auth]`: tokens and what stays open.
    pub auth: RawAuth,
}

/// `[storage]` as read: the backend, and the files' lifetimes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RawStorage {
    /// The backend's keys, `type` first.
    #[serde(flatten)]
    pub backend: StorageConfig,
    /// `storage.default_lifetime`: how long a file lives unless its upload says; none by default.
    #[serde(default)]
    pub default_lifetime: Option<Span>,
    /// `storage.sweep_interval`: how often expired files are removed.
    pub sweep_interval: Span,
}

/// `[uploads]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUploads {
    /// `uploads.resumable`: serve tus at `/uploads/` (off: one-shot uploads only).
    pub resumable: bool,
    /// `uploads.expire_after`: an unfinished upload expires this long after its last append.
    pub expire_after: Span,
    /// `uploads.sweep_interval`: how often expired uploads are removed.
    pub sweep_interval: Span,
}

/// `[server]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// `server.host`: the address to bind.
    pub host: String,
    /// `server.port`: 0 picks a free one.
    pub port: u16,
    /// `server.workers`: HTTP worker threads.
    pub workers: usize,
    /// `server.shutdown_timeout`: how long in-flight requests may finish after SIGTERM.
    pub shutdown_timeout: Span,
    /// `server.read_timeout`: the longest silence mid-body.
    pub read_timeout: Span,
    /// `server.min_body_rate`: bytes per second, measured over each read timeout; 0: none.
    pub min_body_rate: Size,
    /// `server.max_connections`: open connections in all.
    pub max_connections: usize,
    /// `server.cors_origins`: origins whose pages may call the API (`*`: any); none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// `server.inline_types`: media types a browser may show in the page
    /// rather than save; every other download is an attachment.
    #[serde(default)]
    pub inline_types: Vec<String>,
}

/// `[limits]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `limits.max_file_size`: per file.
    pub max_file_size: Size,
    /// `limits.max_request_size`: per request body.
    pub max_request_size: Size,
    /// `limits.max_files_per_request`: files of one multipart request.
    pub max_files_per_request: usize,
    /// `limits.max_lifetime`: the longest lifetime an upload may ask for; none by default.
    #[serde(default)]
    pub max_lifetime: Option<Span>,
    /// `limits.max_total_size`: bytes stored in all; none by default.
    #[serde(default)]
    pub max_total_size: Option<Size>,
    /// `limits.max_total_size_per_token`: bytes each token's files may take; none by default.
    #[serde(default)]
    pub max_total_size_per_token: Option<Size>,
}

/// `[compute]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompute {
    /// `compute.threads`: the pool's threads.
    pub threads: usize,
    /// `compute.max_jobs`: jobs running or queued before new ones are refused.
    pub max_jobs: usize,
    /// `compute.max_n`: the largest n of `/fib/{n}`.
    pub max_n: u32,
    /// `compute.timeout`: a job running longer is stopped.
    pub timeout: Span,
    /// `compute.nice`: `idle` or a niceness.
    pub nice: Nice,
}

/// `[bench]` as read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBench {
    /// `bench.max_waits`: `/wait` sleeps at once.
    pub max_waits: usize,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where and how to serve.
    pub server: ServerSettings,
    /// The storage backend.
    pub storage: StorageConfig,
    /// Request limits.
    pub limits: Limits,
    /// The compute pool.
    pub compute: ComputeSettings,
    /// The benchmark endpoints.
    pub bench: BenchSettings,
    /// Resumable uploads.
    pub uploads: UploadSettings,
    /// Lifetimes of stored files.
    pub files: FileSettings,
    /// Tokens and what stays open.
    pub auth: AuthSettings,
}

/// Validated lifetimes of stored files (`storage.default_lifetime`, `storage.sweep_interval`).
#[derive(Clone, Copy, Debug)]
pub struct FileSettings {
    /// A file whose upload names no lifetime lives this long; `None`: for ever.
    pub default_lifetime: Option<Duration>,
    /// Expired files are removed this often.
    pub sweep_interval: Duration,
}

/// Validated `[uploads]`.
#[derive(Clone, Copy, Debug)]
pub struct UploadSettings {
    /// Whether `/uploads/` serves tus.
    pub resumable: bool,
    /// An unfinished upload expires this long after its creation or last append.
    pub expire_after: Duration,
    /// Expired uploads are removed this often.
    pub sweep_interval: Duration,
}

/// Validated `[server]`.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0: any free port).
    pub port: u16,
    /// HTTP worker threads.
    pub workers: usize,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// A client that sends nothing for this long (headers or body) is cut off.
    pub read_timeout: Duration,
    /// A body arriving below this many bytes per second, over a window of
    /// `read_timeout`, is cut off (0: no minimum).
    pub min_body_rate: u64,
    /// Connections served at once, over all workers; more wait to be accepted.
    pub max_connections: usize,
    /// Origins allowed to call the API from a browser (`*`: any); empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Media types downloaded `inline`; all others are attachments.
    pub inline_types: Vec<String>,
}

/// Validated `[limits]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest stored file, in bytes.
    pub max_file_size: u64,
    /// Largest request body, in bytes (multipart overhead included).
    pub max_request_size: u64,
    /// Most files in one multipart request.
    pub max_files_per_request: usize,
    /// The longest lifetime an upload may ask for; `None`: any.
    pub max_lifetime: Option<Duration>,
    /// Bytes stored in all, at most.
    pub max_total_size: Option<u64>,
    /// Bytes each token's files may take, at most.
    pub max_total_size_per_token: Option<u64>,
}

/// Validated `[compute]`.
#[derive(Clone, Copy, Debug)]
pub struct ComputeSettings {
    /// Pool threads.
    pub threads: usize,
    /// Jobs admitted at once (queued + running).
    pub max_jobs: usize,
    /// Largest n accepted by `/fib/{n}`.
    pub max_n: u32,
    /// Deadline of one job.
    pub timeout: Duration,
    /// Scheduling priority of the pool threads.
    pub priority: compute::Priority,
}

/// Validated `[bench]`.
#[derive(Clone, Copy, Debug)]
pub struct BenchSettings {
    /// Blocking sleeps of `/wait` at once, on threads of their own; more get 503.
    pub max_waits: usize,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl RawSettings {
    /// Defaults, then `file` (if any), then `UPLOAD__SECTION__KEY` variables from `env`.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or a value of the wrong type.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let cores = cores() as i64;
        let mut builder = config::Config::builder();
        for (key, value) in [
            ("server.host", config::Value::from("127.0.0.1")),
            ("server.port", 8000.into()),
            ("server.workers", cores.into()),
            ("server.shutdown_timeout", "30s".into()),
            ("server.read_timeout", "30s".into()),
            ("server.min_body_rate", "1KiB".into()),
            ("server.max_connections", 10_000.into()),
            ("storage.type", "local".into()),
            ("limits.max_file_size", "1GiB".into()),
            ("limits.max_request_size", "2GiB".into()),
            ("limits.max_files_per_request", 100.into()),
            ("compute.threads", cores.into()),
            ("compute.max_jobs", (4 * cores).into()),
            ("compute.max_n", 46.into()),
            ("compute.timeout", "30s".into()),
            ("compute.nice", "idle".into()),
            ("uploads.resumable", true.into()),
            ("uploads.expire_after", "24h".into()),
            ("uploads.sweep_interval", "1m".into()),
            ("storage.sweep_interval", "1m".into()),
            ("server.inline_types", DEFAULT_INLINE_TYPES.to_vec().into()),
            ("auth.mode", "tokens".into()),
            ("auth.public_read", false.into()),
            ("auth.open_metrics", false.into()),
            ("auth.open_bench", true.into()),
            ("auth.max_link_lifetime", "7d".into()),
            ("bench.max_waits", 1024.into()),
        ] {
            builder = builder.set_default(key, value).map_err(|e| SettingsError(e.to_string()))?;
        }
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        let env: config::Map<String, String> = env.into_iter().collect();
        let source = config::Environment::with_prefix("UPLOAD")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.cors_origins")
            .with_list_parse_key("server.inline_types")
            .with_list_parse_key("auth.tokens")
            .with_list_parse_key("auth.link_key")
            // `UPLOAD__X=` means "not set", so an override can unset a key.
            .ignore_empty(true)
            .source(Some(env));
        let config =
            builder.add_source(source).build().map_err(|e| SettingsError(e.to_string()))?;
        config.try_deserialize().map_err(|e| SettingsError(e.to_string()))
    }

    /// Checks every value and converts sizes and durations.
    ///
    /// # Errors
    /// The first invalid value, named by its key.
    pub fn validate(&self) -> Result<Settings, SettingsError> {
        let (s, l, c) = (&self.server, &self.limits, &self.compute);
        let limits = Limits {
            max_file_size: size("limits.max_file_size", &l.max_file_size)?,
            max_request_size: size("limits.max_request_size", &l.max_request_size)?,
            max_files_per_request: at_least_one(
                "limits.max_files_per_request",
                l.max_files_per_request,
            )?,
            max_lifetime: optional(positive, "limits.max_lifetime", &l.max_lifetime)?,
            max_total_size: optional(size, "limits.max_total_size", &l.max_total_size)?,
            max_total_size_per_token: optional(
                size,
                "limits.max_total_size_per_token",
                &l.max_total_size_per_token,
            )?,
        };
        if c.max_n > compute::FIB_MAX_N {
            return Err(SettingsError(format!(
                "compute.max_n: {} is above {}, whose result is the largest that fits in 64 bits",
                c.max_n,
                compute::FIB_MAX_N
            )));
        }
        let default_lifetime =
            optional(positive, "storage.default_lifetime", &self.storage.default_lifetime)?;
        if let (Some(default), Some(max)) = (default_lifetime, limits.max_lifetime)
            && default > max
        {
            return Err(SettingsError(
                "storage.default_lifetime: longer than limits.max_lifetime".into(),
            ));
        }
        if s.host.is_empty() {
            return Err(SettingsError("server.host: must not be empty".into()));
        }
        Ok(Settings {
            server: ServerSettings {
                host: s.host.clone(),
                port: s.port,
                workers: at_least_one("server.workers", s.workers)?,
                shutdown_timeout: span("server.shutdown_timeout", &s.shutdown_timeout)?,
                read_timeout: positive("server.read_timeout", &s.read_timeout)?,
                min_body_rate: size_or_zero("server.min_body_rate", &s.min_body_rate)?,
                max_connections: at_least_one("server.max_connections", s.max_connections)?,
                cors_origins: origins("server.cors_origins", &s.cors_origins)?,
                inline_types: media_types("server.inline_types", &s.inline_types)?,
            },
            storage: self.storage.backend.clone(),
            limits,
            compute: ComputeSettings {
                threads: at_least_one("compute.threads", c.threads)?,
                max_jobs: at_least_one("compute.max_jobs", c.max_jobs)?,
                max_n: c.max_n,
                timeout: positive("compute.timeout", &c.timeout)?,
                priority: priority(&c.nice)?,
            },
            bench: BenchSettings {
                max_waits: at_least_one("bench.max_waits", self.bench.max_waits)?,
            },
            uploads: UploadSettings {
                resumable: self.uploads.resumable,
                expire_after: positive("uploads.expire_after", &self.uploads.expire_after)?,
                sweep_interval: positive("uploads.sweep_interval", &self.uploads.sweep_interval)?,
            },
            files: FileSettings {
                default_lifetime,
                sweep_interval: positive("storage.sweep_interval", &self.storage.sweep_interval)?,
            },
            auth: self.auth.validate(&s.host)?,
        })
    }

    /// The settings as TOML, as `--print-config` shows them.
    ///
    /// # Errors
    /// Only if a value cannot be represented in TOML.
    pub fn to_toml(&self) -> Result<String, SettingsError> {
        let mut shown = self.clone();
        for key in &mut shown.auth.link_key {
            *key = "<redacted>".into();
        }
        if let StorageConfig::S3(s3) = &mut shown.storage.backend
            && s3.secret_access_key.is_some()
        {
            s3.secret_access_key = Some("<redacted>".into());
        }
        toml::to_string_pretty(&shown).map_err(|e| SettingsError(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
