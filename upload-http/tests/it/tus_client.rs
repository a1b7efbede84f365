//! A real tus client, tuspy (the tus project's Python client), against the
//! real binary: an upload cut mid-PATCH and resumed by a fresh client
//! process, and 1 GiB in 5 MiB checksummed chunks.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::common::{Service, client, eventually, write_file};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/tus_upload.py");

/// Whether tuspy can be imported; the test is skipped (said once) if not,
/// and fails with `FASTUPLOAD_REQUIRE_CLIENTS=1`, as `scripts/test.sh` sets.
pub fn tuspy_installed() -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    let found = Command::new("python3")
        .args(["-c", "import tusclient"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("FASTUPLOAD_REQUIRE_CLIENTS").is_none_or(|v| v != "1"),
            "FASTUPLOAD_REQUIRE_CLIENTS=1 but tuspy is not installed (pip install tuspy)"
        );
        SAID.call_once(|| {
            eprintln!(
                "upload-http: tuspy tests skipped: run scripts/test.sh, or pip install tuspy"
            );
        });
    }
    found
}

/// Starts the client; returns it and its stdout, whose first line (the
/// upload URL) has been read.
fn start_client(base: &str, file: &Path, args: &[&str]) -> (Child, String, BufReader<ChildStdout>) {
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .arg(base)
        .arg(file)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if line.starts_with("resuming") {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    (child, line.trim().to_owned(), out)
}

/// Waits for the client to finish the upload.
fn finish_client(mut child: Child, mut out: BufReader<ChildStdout>) {
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "client failed: {rest}");
    assert!(rest.trim_end().ends_with("done"), "{rest}");
}

/// The stored file's SHA-256, from its ETag, and of the bytes downloaded.
fn stored_sha256(service: &Service, upload_url: &str) -> (String, String) {
    let id = upload_url.rsplit('/').next().unwrap();
    let mut response = client().get(service.url(&format!("/files/{id}"))).send().unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().trim_matches('"').to_owned();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = response.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    (etag, hex::encode(hasher.finalize()))
}

fn service(root: &Path) -> Service {
    Service::spawn(&[
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__STORAGE__FSYNC", "false"),
        ("UPLOAD__LIMITS__MAX_FILE_SIZE", "2GiB"),
    ])
}

#[test]
fn tuspy_resumes_an_upload_cut_mid_patch_in_a_fresh_process() {
    if !tuspy_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    cut_and_resume(&service(&dir.path().join("data")), dir.path());
}

/// tuspy sends a 96 MiB file in one PATCH and is killed a third of the way
/// in; a fresh tuspy process with the same URL store finishes the upload.
/// (`pub`: the S3 tests run it on a replica over a Garage cluster.)
pub fn cut_and_resume(service: &Service, dir: &Path) {
    let file = dir.join("video.bin");
    let sha256 = write_file(&file, 96 << 20, 1);
    let store = dir.join("urls.json");
    let base = service.url("");
    let store_arg = ["--store", store.to_str().unwrap()];

    let (mut first, url, _) = start_client(&base, &file, &store_arg);
    let before = service.metric("upload_bytes_received_total");
    eventually(|| service.metric("upload_bytes_received_total") >= before + (32 << 20) as f64);
    first.kill().unwrap();
    first.wait().unwrap();
    // The server keeps what arrived before the connection was cut.
    let head = || {
        let response = client().head(&url).header("Tus-Resumable", "1.0.0").send().unwrap();
        let offset = response.headers().get("upload-offset")?;
        offset.to_str().ok()?.parse::<u64>().ok()
    };
    eventually(|| head().is_some_and(|offset| offset >= 32 << 20));

    let (second, resumed, out) = start_client(&base, &file, &store_arg);
    assert_eq!(resumed, url, "the fresh client finds its upload by the file's fingerprint");
    finish_client(second, out);
    assert_eq!(stored_sha256(service, &url), (sha256.clone(), sha256));
}

#[test]
fn tuspy_uploads_1_gib_in_5_mib_checksummed_chunks() {
    if !tuspy_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let service = service(&dir.path().join("data"));
    let file = dir.path().join("big.bin");
    let sha256 = write_file(&file, 1 << 30, 2);
    let (child, url, out) =
        start_client(&service.url(""), &file, &["--chunk-size", "5242880", "--checksum"]);
    finish_client(child, out);
    assert_eq!(stored_sha256(&service, &url), (sha256.clone(), sha256));
}
