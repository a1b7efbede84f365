//! What one anonymous client could do to every other user: each test here
//! is a defect found under hostile load, against real sockets.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn client_chosen_methods_fold_into_one_metrics_label() {
    let server = Server::start();
    let client = client();
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        assert_eq!(client.request(method, server.url("/x")).send().unwrap().status(), 404);
    }
    let text = metrics_at(&server.url);
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("http_requests_total")).collect();
    assert_eq!(
        series,
        ["http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 300"],
        "{text}"
    );
}

/// A two-file multipart request: the first part whole, the second begun,
/// and a Content-Length that promises more than is sent.
fn cut_off_multipart(path: &str) -> Vec<u8> {
    let parts = "--cut\r\nContent-Disposition: form-data; name=\"file\"; filename=\"one.txt\"\r\n\r\n\
                 the first file, complete\r\n\
                 --cut\r\nContent-Disposition: form-data; name=\"file\"; filename=\"two.txt\"\r\n\r\n\
                 the second file, cut o";
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=cut\r\n\
         Content-Length: 100000\r\n\r\n{parts}"
    )
    .into_bytes()
}

#[test]
fn a_multipart_request_cut_off_by_its_client_stores_nothing() {
    let server = Server::start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(&cut_off_multipart("/files")).unwrap();
    // The first file is committed once the second part begins...
    eventually(|| server.entries("objects").len() == 1);
    drop(stream);
    // ... and rolled back once the client is gone.
    eventually(|| server.entries("objects").is_empty());
    server.assert_nothing_stored();
}

#[test]
fn a_multipart_request_cut_off_by_the_shutdown_timeout_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let env = [
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__SERVER__SHUTDOWN_TIMEOUT", "1s"),
    ];
    let service = Service::spawn(&env);
    let mut stream = TcpStream::connect(service.addr()).unwrap();
    stream.write_all(&cut_off_multipart("/")).unwrap();
    let listed = |service: &Service| {
        let page: Value = client().get(service.url("/files")).send().unwrap().json().unwrap();
        page["files"].as_array().unwrap().len()
    };
    eventually(|| listed(&service) == 1);
    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    drop(stream);
    let service = Service::spawn(&env);
    assert_eq!(listed(&service), 0, "{log}");
    assert_eq!(std::fs::read_dir(root.join("objects")).unwrap().count(), 0);
    drop(service);
}

/// Sends `GET /wait?duration=secs` on a connection of its own, not read yet.
fn sleeper(addr: &str, secs: u32) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "GET /wait?duration={secs} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    stream
}

#[test]
fn storage_never_waits_behind_sleeping_waits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let service = Service::spawn(&[
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__STORAGE__FSYNC", "false"),
    ]);
    // More than actix gives each worker's blocking pool (512 / workers).
    let mut sleepers: Vec<TcpStream> = (0..600).map(|_| sleeper(service.addr(), 8)).collect();
    eventually(|| service.metric("bench_waits_sleeping") == 600.0);
    let stored = service.put("one-byte", vec![1]).unwrap();
    assert_eq!(stored["size"], 1);
    // The upload finished while every sleep was still going on.
    for stream in &sleepers {
        stream.set_nonblocking(true).unwrap();
        let peeked = stream.peek(&mut [0; 1]).map_err(|e| e.kind());
        assert_eq!(peeked, Err(ErrorKind::WouldBlock), "a /wait answered before the PUT did");
        stream.set_nonblocking(false).unwrap();
    }
    for stream in &mut sleepers {
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let response = read_response(stream);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

#[test]
fn the_wait_past_the_bound_gets_a_503_with_retry_after() {
    let server = Server::with(|raw| raw.bench.max_waits = 2);
    let _sleepers = [sleeper(&server.addr(), 3), sleeper(&server.addr(), 3)];
    eventually(|| server.metric("bench_waits_sleeping") == 2.0);
    let r = client().get(server.url("/wait?duration=0")).send().unwrap();
    assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
    assert_eq!(error_code(r), (503, "wait_busy".into()));
    let r = client().get(server.url("/asyncwait?duration=0")).send().unwrap();
    assert_eq!(r.status(), 200, "timers are not bounded by the sleeps");
}

#[test]
fn a_trickled_body_is_cut_off_below_the_minimum_rate_and_leaves_nothing() {
    let server = Server::with(|raw| raw.server.read_timeout = upload_http::Span::Text("1s".into()));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
        .write_all(b"PUT /files/trickle.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    // 100 bytes/s, never silent for as long as the read timeout: the
    // pacing is the point, not a synchronisation.
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..300 {
            if writer.write_all(&[b'x'; 10]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"body_too_slow\""), "{response}");
    assert!(response.contains("below the minimum of 1024 bytes/s"), "{response}");
    drop(stream);
    trickle.join().unwrap();
    server.assert_nothing_stored();
}

#[test]
fn a_damaged_object_is_skipped_counted_logged_once_and_deletable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let service = Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())]);
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let damaged = id(service.put("a.txt", b"a".to_vec()).unwrap());
    let intact = id(service.put("b.txt", b"b".to_vec()).unwrap());
    std::fs::write(root.join("objects").join(&damaged).join("meta.json"), "{not json").unwrap();

    for _ in 0..3 {
        let r = client().get(service.url("/files")).send().unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().unwrap();
        let ids: Vec<&str> =
            page["files"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [intact.as_str()]);
        let r = client().get(service.url(&format!("/files/{damaged}"))).send().unwrap();
        assert_eq!(error_code(r), (500, "damaged_file".into()));
    }
    assert_eq!(service.metric("storage_damaged_objects"), 1.0);
    assert_eq!(service.download(&intact), b"b");

    let r = client().delete(service.url(&format!("/files/{damaged}"))).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(service.status(&format!("/files/{damaged}")), 404);
    assert_eq!(service.metric("storage_damaged_objects"), 0.0);
    assert!(!root.join("objects").join(&damaged).exists());
    let (_, log) = service.terminate();
    let told = log.lines().filter(|l| l.contains("ERROR") && l.contains(&damaged));
    assert_eq!(told.count(), 1, "{log}");
}

/// Reads what the server sends until it closes, bounded by the read timeout.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn expect_continue_over_the_limit_is_refused_before_the_body() {
    let server =
        Server::with(|raw| raw.limits.max_file_size = upload_http::Size::Text("1MiB".into()));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
        .write_all(
            b"PUT /files/big HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let response = read_to_close(&mut stream);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"too_large\""), "{response}");
    assert!(!response.contains("100 Continue"), "{response}");

    // Within the limit, the client is told to go on.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
        .write_all(
            b"PUT /files/small HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut continue_line = [0; 25];
    stream.read_exact(&mut continue_line).unwrap();
    assert_eq!(&continue_line, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let response = read_to_close(&mut stream);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

#[test]
fn readiness_fails_on_a_disk_too_full_for_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::tmpfs(dir.path().to_owned(), "4m") else {
        eprintln!("skipped: mounting a small tmpfs needs root (CAP_SYS_ADMIN)");
        return;
    };
    let root = disk.path().join("data");
    let service = Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())]);
    assert_eq!(service.status("/readyz"), 200);
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let full = (0..1000).any(|_| file.write_all(&[0; 64 * 1024]).is_err());
    assert!(full, "4 MiB filled up");
    let r = client().get(service.url("/readyz")).send().unwrap();
    assert_eq!(error_code(r), (507, "storage_full".into()));
    drop(file);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(service.status("/readyz"), 200);
    drop(service);
}

#[test]
fn client_media_types_are_stored_normalised_and_never_run_in_a_browser() {
    let server = Server::start();
    for (sent, stored) in [
        ("text/html\" onload=\"x", "application/octet-stream"),
        ("text/html; charset=utf-7", "text/html"),
        ("TEXT/Plain; Charset=UTF-8", "text/plain; charset=utf-8"),
        ("image/svg+xml", "image/svg+xml"),
    ] {
        let response = client()
            .put(server.url("/files/page.html"))
            .header("Content-Type", sent)
            .body("<script>alert(1)</script>")
            .send()
            .unwrap();
        let info: serde_json::Value = response.json().unwrap();
        assert_eq!(info["content_type"], stored, "{sent}");
        let got = client().get(server.url(&format!("/files/{}", info["id"].as_str().unwrap())));
        let got = got.send().unwrap();
        let header = |name: &str| got.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), stored);
        assert!(header("content-disposition").starts_with("attachment;"), "{sent}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("content-security-policy"), "sandbox");
    }
}
