//! The whole original benchmark in one run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::Error;
use crate::get::{GetMode, get};
use crate::load::load;
use crate::report::RequestReport;
use crate::upload::{UploadMode, UploadOptions, UploadReport, upload};

/// Where the benchmark's endpoints are on the target server.
#[derive(Clone, Debug, clap::Args)]
pub struct SuiteOptions {
    /// The server's base URL, e.g. http://127.0.0.1:8000
    pub base_url: String,
    /// Path of the blocking-sleep endpoint.
    #[arg(long, default_value = "/wait")]
    pub wait_path: String,
    /// Path of the timer endpoint.
    #[arg(long, default_value = "/asyncwait")]
    pub asyncwait_path: String,
    /// Path prefix of the fibonacci endpoint (`{fib_path}/{n}`).
    #[arg(long, default_value = "/fib")]
    pub fib_path: String,
    /// Multipart upload endpoint.
    #[arg(long, default_value = "/files")]
    pub upload_path: String,
    /// Multipart field name of the uploads.
    #[arg(long, default_value = "file")]
    pub field: String,
    /// Request counts of the /wait and /asyncwait table.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 1000])]
    pub sizes: Vec<u64>,
    /// How long each /asyncwait throughput run lasts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub load_duration: Duration,
    /// Bytes per uploaded file.
    #[arg(long, default_value = "20MiB", value_parser = crate::parse_size)]
    pub upload_size: u64,
}

/// Every figure of a suite run.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    /// /wait and /asyncwait in every client style and size.
    pub requests: Vec<RequestReport>,
    /// 20 fib(30) requests, one after another.
    pub fib30: RequestReport,
    /// /asyncwait?duration=0 at 64 connections, nothing else running.
    pub asyncwait_alone: RequestReport,
    /// The same, with fib(42) requested back-to-back alongside.
    pub asyncwait_with_fib42: RequestReport,
    /// `asyncwait_with_fib42.rps / asyncwait_alone.rps`.
    pub fib_load_ratio: f64,
    /// 4 files, in parallel then serially.
    pub uploads: Vec<UploadReport>,
}

impl SuiteReport {
    /// One readable table.
    pub fn render(&self) -> String {
        let mut out = String::from("== requests (original client styles)\n");
        for r in &self.requests {
            out += &r.render();
        }
        out += "== fib(30) latency\n";
        out += &self.fib30.render();
        out += "== /asyncwait throughput with and without fib(42) running alongside\n";
        out += &self.asyncwait_alone.render();
        out += &self.asyncwait_with_fib42.render();
        out += &format!("  with fib(42) / without: {:.2}x\n", self.fib_load_ratio);
        out += "== uploads\n";
        for u in &self.uploads {
            out += &u.render();
        }
        out
    }
}

/// Runs the whole benchmark against `opts.base_url`.
///
/// # Errors
/// [`Error::Client`] if no client can be built.
pub fn suite(opts: &SuiteOptions) -> Result<SuiteReport, Error> {
    let url = |path: &str| format!("{}{path}", opts.base_url.trim_end_matches('/'));
    let mut requests = Vec::new();
    for path in [&opts.wait_path, &opts.asyncwait_path] {
        for &n in &opts.sizes {
            for mode in [GetMode::Serial, GetMode::Threads, GetMode::Async] {
                let report = get(&url(path), n, mode, None)?;
                eprint!("{}", report.render());
                requests.push(report);
            }
        }
    }
    let fib30 = get(&url(&format!("{}/30", opts.fib_path)), 20, GetMode::Serial, None)?;
    let asyncwait = url(&format!("{}?duration=0", opts.asyncwait_path));
    let asyncwait_alone = load(&asyncwait, opts.load_duration, 64, None)?;

    // fib(42) back-to-back on a thread of its own, for as long as the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let fib42 = url(&format!("{}/42", opts.fib_path));
    let loader = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let client = crate::blocking_client();
            while let Ok(client) = &client {
                if stop.load(Ordering::Relaxed)
                    || client.get(&fib42).send().and_then(|r| r.bytes()).is_err()
                {
                    break;
                }
            }
        }
    });
    let asyncwait_with_fib42 = load(&asyncwait, opts.load_duration, 64, None);
    stop.store(true, Ordering::Relaxed);
    let _ = loader.join();
    let asyncwait_with_fib42 = asyncwait_with_fib42?;
    let fib_load_ratio = if asyncwait_alone.rps > 0.0 {
        asyncwait_with_fib42.rps / asyncwait_alone.rps
    } else {
        0.0
    };

    let mut uploads = Vec::new();
    for mode in [UploadMode::Parallel, UploadMode::Serial] {
        uploads.push(upload(&UploadOptions {
            url: url(&opts.upload_path),
            files: 4,
            size: opts.upload_size,
            mode,
            field: opts.field.clone(),
            raw: false,
            tus_chunk: None,
            seed: 1,
        })?);
    }
    Ok(SuiteReport {
        requests,
        fib30,
        asyncwait_alone,
        asyncwait_with_fib42,
        fib_load_ratio,
        uploads,
    })
}
