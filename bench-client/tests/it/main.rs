//! bench-client against real servers on free ports: this workspace's
//! upload-http, and a misbehaving actix-web server made here.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use bench_client::{Error, GetMode, Opts, UploadMode, UploadOptions, get, load, upload};
use clap::Parser;
use upload_core::{LocalConfig, StorageConfig};

/// A server in its own thread and actix system, stopped on drop.
struct Running {
    url: String,
    handle: ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(self.handle.stop(false));
    }
}

fn spawn<F, Fut>(make: F) -> (String, ServerHandle)
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<actix_web::dev::Server>> + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = make(listener).await.unwrap();
            tx.send(server.handle()).unwrap();
            server.await
        })
    });
    (url, rx.recv().unwrap())
}

/// This workspace's service, with its storage in a TempDir.
fn service() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = upload_http::RawSettings::load(None, []).unwrap();
    raw.storage.backend = StorageConfig::Local(LocalConfig {
        fsync: false,
        ..LocalConfig::new(dir.path().join("data"))
    });
    raw.server.workers = 2;
    let settings = raw.validate().unwrap();
    let (url, handle) = spawn(move |listener| async move {
        let state = upload_http::AppState::new(settings).await.unwrap();
        upload_http::server(state, listener)
    });
    Running { url, handle, _dir: Some(dir) }
}

/// Answers 500 on /broken, and claims a wrong SHA-256 for every upload on /files.
fn misbehaving() -> Running {
    let (url, handle) = spawn(|listener| async move {
        Ok(HttpServer::new(|| {
            App::new()
                .route(
                    "/broken",
                    web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
                )
                .route(
                    "/files",
                    web::post().to(|body: web::Bytes| async move {
                        let _ = body; // read it all, as a real server would
                        HttpResponse::Created()
                            .json(serde_json::json!({"files": [{"sha256": "00".repeat(32)}]}))
                    }),
                )
                .app_data(web::PayloadConfig::new(64 << 20))
        })
        .workers(1)
        .listen(listener)?
        .run())
    });
    Running { url, handle, _dir: None }
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[test]
fn every_client_style_counts_every_request() {
    let server = service();
    let url = format!("{}/asyncwait?duration=0", server.url);
    for (mode, label) in [
        (GetMode::Serial, "sync_get_all"),
        (GetMode::Threads, "thread_pool"),
        (GetMode::Async, "async_main"),
    ] {
        let report = get(&url, 40, mode, Some(8)).unwrap();
        assert_eq!((report.requests, report.ok), (40, 40), "{mode:?}");
        assert!(report.errors.is_empty(), "{mode:?}: {:?}", report.errors);
        assert_eq!(report.mode, label);
        assert!(report.rps > 0.0 && report.latency.max_ms >= report.latency.p50_ms);
        let line = report.render();
        assert!(line.contains(&format!(" reqs / sec | 40 reqs | {url} | {label}")), "{line}");
    }
}

#[test]
fn failures_are_counted_by_status_and_reported() {
    let bad = misbehaving();
    let url = format!("{}/broken", bad.url);
    let report = get(&url, 10, GetMode::Async, None).unwrap();
    assert_eq!((report.ok, report.errors.get("500")), (0, Some(&10)));
    let opts = Opts::parse_from(["bench-client", "get", url.as_str(), "-n", "5"]);
    assert!(matches!(bench_client::run(opts), Err(Error::AllFailed(_))));

    let nowhere = closed_port();
    let report = get(&nowhere, 5, GetMode::Threads, Some(2)).unwrap();
    assert_eq!(report.errors.get("connect"), Some(&5));
    let opts =
        Opts::parse_from(["bench-client", "get", nowhere.as_str(), "-n", "3", "--mode", "serial"]);
    assert!(matches!(bench_client::run(opts), Err(Error::Unreachable(_))));
}

#[test]
fn uploads_are_verified_against_the_servers_sha256() {
    let server = service();
    let tus = Some(512 * 1024);
    for (mode, raw, tus_chunk, path) in [
        (UploadMode::Parallel, false, None, "/files"),
        (UploadMode::Serial, true, None, "/files"),
        // 1.5 MB in PATCHes of 512 KiB: three full ones and a short last one.
        (UploadMode::Parallel, false, tus, "/uploads/"),
    ] {
        let opts = UploadOptions {
            url: format!("{}{path}", server.url),
            files: 3,
            size: 1_500_000,
            mode,
            field: "file".into(),
            raw,
            tus_chunk,
            seed: 7,
        };
        let report = upload(&opts).unwrap();
        assert_eq!((report.ok, report.verified, report.mismatched), (3, 3, 0), "{report:?}");
        assert_eq!(report.file_ms.len(), 3);
    }
    let bad = misbehaving();
    let opts = UploadOptions {
        url: format!("{}/files", bad.url),
        files: 2,
        size: 100_000,
        mode: UploadMode::Parallel,
        field: "file".into(),
        raw: false,
        tus_chunk: None,
        seed: 7,
    };
    let report = upload(&opts).unwrap();
    assert_eq!(
        (report.ok, report.verified, report.mismatched),
        (2, 0, 2),
        "a wrong SHA-256 is flagged"
    );
}

#[test]
fn open_loop_latency_is_measured_from_the_intended_send_time() {
    let server = service();
    let url = format!("{}/asyncwait?duration=0.05", server.url);
    let report = load(&url, Duration::from_secs(1), 64, Some(40.0)).unwrap();
    assert!((35..=45).contains(&report.requests), "{} requests at 40/s for 1 s", report.requests);
    assert_eq!(report.ok, report.requests);
    let p50 = report.latency.p50_ms;
    assert!((45.0..=200.0).contains(&p50), "p50 {p50} ms for a 50 ms endpoint");

    let closed = load(&url, Duration::from_millis(500), 4, None).unwrap();
    assert!(closed.ok >= 4 && closed.errors.is_empty(), "{closed:?}");
}

#[test]
fn the_cli_writes_json_and_the_suite_runs_end_to_end() {
    let server = service();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("get.json");
    let url = format!("{}/asyncwait?duration=0", server.url);
    let args =
        ["bench-client", "get", url.as_str(), "-n", "12", "--mode", "threads", "-c", "3", "--json"];
    let opts = Opts::parse_from(args.iter().copied().chain([json.to_str().unwrap()]));
    bench_client::run(opts).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!((written["ok"].as_u64(), written["mode"].as_str()), (Some(12), Some("thread_pool")));

    let json = dir.path().join("suite.json");
    let base = server.url.as_str();
    let args = [
        "bench-client",
        "suite",
        base,
        "--sizes",
        "4",
        "--load-duration",
        "500ms",
        "--upload-size",
        "256KiB",
        "--json",
    ];
    let opts = Opts::parse_from(args.iter().copied().chain([json.to_str().unwrap()]));
    let bench_client::Output::Suite(report) = bench_client::run(opts).unwrap() else {
        panic!("not a suite report")
    };
    assert_eq!(report.requests.len(), 6, "2 paths x 1 size x 3 styles");
    assert!(report.requests.iter().all(|r| r.ok == 4), "{:?}", report.requests);
    assert_eq!(report.fib30.ok, 20);
    assert!(report.asyncwait_alone.ok > 0 && report.asyncwait_with_fib42.ok > 0);
    assert!(report.fib_load_ratio > 0.0);
    assert!(report.uploads.iter().all(|u| u.verified == 4), "{:?}", report.uploads);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(written["uploads"][0]["mb_per_s"].as_f64().unwrap() > 0.0);
}

fn chaos_options(url: &str, phases: &[(&str, String)]) -> bench_client::ChaosOptions {
    bench_client::ChaosOptions {
        base_url: url.to_owned(),
        phases: phases
            .iter()
            .map(|(name, command)| ((*name).to_owned(), command.clone()))
            .collect(),
        phase_length: Duration::from_millis(600),
        workers: 3,
        size: 200_000,
        tus_chunk: 64 * 1024,
    }
}

#[test]
fn a_chaos_run_runs_each_phase_command_and_verifies_every_acknowledged_upload() {
    let server = service();
    let phases = [("calm", "true".to_owned()), ("broken command", "exit 3".to_owned())];
    let report = bench_client::chaos(&chaos_options(&server.url, &phases)).unwrap();
    let names: Vec<_> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["steady", "calm", "broken command"]);
    let ran: Vec<_> = report.phases.iter().map(|p| p.command.as_ref().map(|c| c.1)).collect();
    assert_eq!(ran, [None, Some(true), Some(false)]);
    for phase in &report.phases {
        assert!(phase.acknowledged > 0 && phase.failed.is_empty(), "{phase:?}");
    }
    // Multipart, raw and tus in turn: at least one of each in the whole run.
    assert!(report.phases.iter().map(|p| p.acknowledged).sum::<u64>() >= 3);
    assert_eq!((report.lost, report.corrupt), (0, 0));
}

#[test]
fn a_chaos_run_reports_acknowledged_uploads_that_disappear() {
    let server = service();
    let objects = server._dir.as_ref().unwrap().path().join("data/objects");
    // Every stored file removed behind the service's back: what was acknowledged is lost.
    let wipe = format!("rm -rf '{}'/*", objects.display());
    let report = bench_client::chaos(&chaos_options(&server.url, &[("wipe", wipe)])).unwrap();
    assert!(report.lost > 0, "{report:?}");
    assert!(report.render().contains(&format!("lost: {}", report.lost)));
}
