//! The service over real Garage clusters (`scripts/garage-cluster.sh`), as
//! separate processes of the real binary: scale-out and faults.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

use reqwest::blocking::multipart;

use crate::common::{PutResult, Service, bytes, client, error_code, eventually, sha256_hex};

const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/garage-cluster.sh");
/// Fixed credentials, so that a service can be configured before its cluster exists.
const KEY_ID: &str = "GK0123456789abcdef01234567";
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A 3-node Garage cluster of the test's own (replication factor 3), on
/// ports from `base_port`; stopped and deleted on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    base_port: u16,
}

impl Cluster {
    /// A cluster on ports free now, or `None` (the test is skipped) if no
    /// garage binary is installed; see [`garage_installed`].
    pub fn new() -> Option<Self> {
        garage_installed()
            .then(|| Self { dir: tempfile::tempdir().unwrap(), base_port: free_ports() })
    }

    fn script(&self, args: &[&str]) {
        let status = Command::new("bash")
            .arg(CLUSTER_SCRIPT)
            .args(args)
            .arg(self.dir.path())
            .env("GARAGE_BASE_PORT", self.base_port.to_string())
            .env("GARAGE_ACCESS_KEY_ID", KEY_ID)
            .env("GARAGE_SECRET_ACCESS_KEY", SECRET)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "garage-cluster.sh {args:?}: {status}");
    }

    /// Starts every node that is not running (the first time: layout, key, bucket).
    pub fn start(&self) {
        self.script(&["start"]);
    }

    fn stop(&self) {
        self.script(&["stop"]);
    }

    fn kill_node(&self, n: u8) {
        self.script(&["kill-node", &n.to_string()]);
    }

    fn start_node(&self, n: u8) {
        self.script(&["start-node", &n.to_string()]);
    }

    /// Settings of a service on this cluster (S3 API of node 1).
    pub fn service_env(&self) -> Vec<(String, String)> {
        [
            ("UPLOAD__STORAGE__TYPE", "s3".to_owned()),
            ("UPLOAD__STORAGE__BUCKET", "uploads".to_owned()),
            ("UPLOAD__STORAGE__REQUEST_TIMEOUT", "5s".to_owned()),
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.base_port)),
            ("AWS_REGION", "garage".to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(CLUSTER_SCRIPT)
            .args(["purge"])
            .arg(self.dir.path())
            .env("GARAGE_BASE_PORT", self.base_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether `garage` is on PATH or in cargo's bin directory. If not, the
/// cluster tests are skipped, said once on stderr (garage-cluster.sh would
/// otherwise spend 12-20 minutes building it); with `FASTUPLOAD_REQUIRE_S3=1`
/// (as `scripts/test.sh` sets) that is a failure instead.
fn garage_installed() -> bool {
    use std::io::Write;
    static SAID: std::sync::Once = std::sync::Once::new();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin/garage"));
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("garage").is_file()));
    if on_path || cargo_bin.is_some_and(|bin| bin.is_file()) {
        return true;
    }
    assert!(
        std::env::var_os("FASTUPLOAD_REQUIRE_S3").is_none_or(|v| v != "1"),
        "FASTUPLOAD_REQUIRE_S3=1 but garage is not installed"
    );
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "upload-http: Garage cluster tests skipped (no garage binary): run scripts/test.sh, \
             or cargo install garage --version 2.5.0 --locked"
        );
    });
    false
}

/// A base port whose cluster ports (node n: base + 10(n-1) + 0, 1, 3) are
/// all free now; the port counter keeps two tests of one run apart.
fn free_ports() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let seed = std::process::id() as usize * 97 + now.subsec_micros() as usize;
    loop {
        let offset = (seed + NEXT.fetch_add(1, Ordering::Relaxed)) * 30 % 30_000;
        let base = 20_000 + offset as u16;
        let free = (0..3u16)
            .flat_map(|n| [0, 1, 3].map(|p| base + 10 * n + p))
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
}

pub fn wait_ready(service: &Service) {
    eventually(|| service.status("/readyz") == 200);
}

#[test]
fn two_replicas_share_one_cluster() {
    let Some(cluster) = Cluster::new() else { return };
    cluster.start();
    let a = Service::spawn(&cluster.service_env());
    let b = Service::spawn(&cluster.service_env());
    wait_ready(&a);
    wait_ready(&b);

    // Through A: a multipart request with a small file and a multipart-sized
    // one, then a raw upload.
    let small = bytes(1000, 1);
    let large = bytes(12 << 20, 2);
    let form = multipart::Form::new()
        .part("file", multipart::Part::bytes(small.clone()).file_name("small.txt"))
        .part("file", multipart::Part::bytes(large.clone()).file_name("large.bin"));
    let response = client().post(a.url("/files")).multipart(form).send().unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: serde_json::Value = response.json().unwrap();
    let raw = bytes(20 << 20, 3);
    let third = a.put("raw.iso", raw.clone()).unwrap();
    let stored: Vec<(String, &Vec<u8>)> = uploaded["files"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&third])
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .zip([&small, &large, &raw])
        .collect();

    // Through B: the listing, in upload order, with their metadata; the bytes; a range.
    let listed: serde_json::Value =
        client().get(b.url("/files?limit=10")).send().unwrap().json().unwrap();
    let files = listed["files"].as_array().unwrap();
    let ids: Vec<&str> = files.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, stored.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>());
    for (file, (id, data)) in files.iter().zip(&stored) {
        assert_eq!(file["sha256"], sha256_hex(data));
        assert_eq!(file["size"], data.len());
        assert_eq!(&b.download(id), *data);
    }
    assert_eq!(files[1]["filename"], "large.bin");
    let (large_id, _) = &stored[1];
    let ranged = client()
        .get(b.url(&format!("/files/{large_id}")))
        .header("Range", "bytes=8388600-8388700")
        .send()
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().unwrap(), large[8_388_600..=8_388_700]);

    // Delete through B; A sees it gone.
    let (gone, _) = &stored[0];
    assert_eq!(client().delete(b.url(&format!("/files/{gone}"))).send().unwrap().status(), 204);
    assert_eq!(a.status(&format!("/files/{gone}")), 404);
    let listed: serde_json::Value = client().get(a.url("/files")).send().unwrap().json().unwrap();
    assert_eq!(listed["files"].as_array().unwrap().len(), 2);
}

#[test]
fn node_loss_and_full_outage() {
    let Some(cluster) = Cluster::new() else { return };
    // The service starts with its store down, and says so.
    let mut service = Service::spawn(&cluster.service_env());
    service.assert_running();
    assert_eq!(service.status("/readyz"), 503);
    cluster.start();
    wait_ready(&service);

    // A batch of uploads, four at a time; node 2 is killed after the first few.
    const UPLOADS: usize = 16;
    let done = AtomicUsize::new(0);
    let killed_after = AtomicUsize::new(usize::MAX);
    let results: Vec<(Vec<u8>, bool, PutResult)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (service, done, killed_after) = (&service, &done, &killed_after);
                scope.spawn(move || {
                    (0..UPLOADS / 4)
                        .map(|i| {
                            let data = bytes((6 << 20) + i * 1000, (w * 10 + i) as u8);
                            let started_after_kill =
                                killed_after.load(Ordering::SeqCst) != usize::MAX;
                            let result = service.put(&format!("f{w}-{i}"), data.clone());
                            done.fetch_add(1, Ordering::SeqCst);
                            (data, started_after_kill, result)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        eventually(|| done.load(Ordering::SeqCst) >= 4);
        cluster.kill_node(2);
        killed_after.store(done.load(Ordering::SeqCst), Ordering::SeqCst);
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    let mut stored = Vec::new();
    for (data, after_kill, result) in &results {
        match result {
            Ok(info) => {
                assert_eq!(info["sha256"], sha256_hex(data), "a stored file has the right digest");
                stored.push((info["id"].as_str().unwrap().to_owned(), data, after_kill));
            }
            Err((status, code)) => {
                assert!((500..600).contains(status), "a failure is a clear 5xx: {status} {code}");
            }
        }
    }
    eprintln!("node loss: {} of {UPLOADS} uploads stored, the rest failed with 5xx", stored.len());
    // With two of three nodes up, the cluster keeps its write quorum.
    assert!(stored.iter().any(|(_, _, after_kill)| **after_kill), "no upload after the kill");
    // Every object reported stored is readable, with and without the lost node.
    for (id, data, _) in &stored {
        assert_eq!(&service.download(id), *data);
    }
    cluster.start_node(2);
    for (id, data, _) in &stored {
        assert_eq!(&service.download(id), *data);
    }

    // The whole cluster stops: 503 within the request timeout (5 s, plus
    // retries' backoff), and the process stays up.
    cluster.stop();
    for (method, path) in [("PUT", "/files/during-outage"), ("GET", "/files"), ("GET", "/readyz")] {
        let started = Instant::now();
        let response = match method {
            "PUT" => client().put(service.url(path)).body(bytes(1 << 20, 9)).send(),
            _ => client().get(service.url(path)).send(),
        }
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(12), "{method} {path} took too long");
        assert_eq!(response.headers()["retry-after"], "1");
        assert_eq!(error_code(response), (503, "unavailable".to_owned()), "{method} {path}");
    }
    service.assert_running();

    // And it recovers when the cluster is back.
    cluster.start();
    wait_ready(&service);
    let data = bytes(7 << 20, 42);
    let info = service.put("after-outage", data.clone()).unwrap();
    assert_eq!(service.download(info["id"].as_str().unwrap()), data);
}
