use std::io::Write;
use std::net::TcpStream;

use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

use crate::common::*;

fn small_limits(raw: &mut upload_http::RawSettings) {
    raw.limits.max_file_size = upload_http::Size::Text("1MiB".into());
    raw.limits.max_request_size = upload_http::Size::Text("3MiB".into());
    raw.limits.max_files_per_request = 2;
}

#[test]
fn too_large_files_get_a_413_naming_the_limit_and_nothing_is_stored() {
    let server = Server::with(small_limits);
    // Multipart: the file passes the limit while it streams (Content-Length is within the request limit).
    let form = Form::new().part("file", Part::bytes(bytes(2 << 20, 1)).file_name("big.bin"));
    let r = client().post(server.url("/files")).multipart(form).send().unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1048576 bytes (1.0 MiB)"),
        "{body}"
    );
    // Raw PUT announcing too much: refused before reading.
    let r = client().put(server.url("/files/big")).body(bytes(2 << 20, 2)).send().unwrap();
    assert_eq!(error_code(r), (413, "too_large".into()));
    server.assert_nothing_stored();
}

#[test]
fn limits_hold_on_the_bytes_received_even_when_chunked() {
    let server = Server::with(small_limits);
    // curl-like chunked upload over a real socket: 2 MiB in 64 KiB chunks; the client reads a 413, not a reset.
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"PUT /files/c.bin HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = bytes(64 * 1024, 3);
    for _ in 0..32 {
        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break; // the server answered and stopped reading
        }
    }
    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"too_large\""), "{response}");
    server.assert_nothing_stored();
}

#[test]
fn the_request_limit_covers_every_part_and_the_file_count_is_bounded() {
    let server = Server::with(small_limits);
    // Three 900 KiB files: each within the file limit, together past the request limit (3 MiB) or count (2).
    let form = (0..3).fold(Form::new(), |form, i| {
        form.part("file", Part::bytes(bytes(900 * 1024, i)).file_name(format!("f{i}")))
    });
    let r = client().post(server.url("/files")).multipart(form).send().unwrap();
    let (status, code) = error_code(r);
    assert_eq!(status, 413);
    assert!(code == "too_many_files" || code == "too_large", "{code}");
    // The two files stored before the failure were rolled back: all or nothing.
    server.assert_nothing_stored();

    let form = (0..3).fold(Form::new(), |form, i| {
        form.part("file", Part::bytes(vec![i; 10]).file_name(format!("f{i}")))
    });
    let r = client().post(server.url("/files")).multipart(form).send().unwrap();
    assert_eq!(error_code(r), (413, "too_many_files".into()));
    server.assert_nothing_stored();
}

#[test]
fn malformed_multipart_is_a_400_and_stores_nothing() {
    let server = Server::start();
    let cases: [(&str, &[u8]); 4] = [
        ("multipart/form-data", b"--x\r\n"),                   // no boundary
        ("multipart/form-data; boundary=abc", b"garbage"),      // boundary never found
        (
            "multipart/form-data; boundary=abc",                // truncated mid-file
            b"--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhalf a fi",
        ),
        (
            "multipart/form-data; boundary=abc",                // headers without end
            b"--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Other: 1",
        ),
    ];
    for (content_type, body) in cases {
        let r = client()
            .post(server.url("/files"))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .unwrap();
        let (status, code) = error_code(r);
        assert_eq!(status, 400, "{content_type} {:?}: {code}", String::from_utf8_lossy(body));
    }
    // Part headers past 64 KiB: a 400 naming that limit, not the request limit.
    for (what, headers) in [
        ("a 100 KB filename", format!("filename=\"{}\"\r\n", "n".repeat(100_000))),
        ("10 000 header lines", "filename=\"a\"\r\nX-A: b\r\n".repeat(10_000)),
    ] {
        let body = format!(
            "--abc\r\nContent-Disposition: form-data; name=\"file\"; {headers}\r\ndata\r\n--abc--\r\n"
        );
        let r = client()
            .post(server.url("/files"))
            .header("content-type", "multipart/form-data; boundary=abc")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{what}");
        let body: Value = r.json().unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("exceed the limit of 65536 bytes"), "{what}: {body}");
    }
    let r = client()
        .post(server.url("/files"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(error_code(r), (415, "unsupported_media_type".into()));
    let form = Form::new().text("only", "fields");
    assert_eq!(
        error_code(client().post(server.url("/files")).multipart(form).send().unwrap()),
        (400, "no_file".into())
    );
    server.assert_nothing_stored();
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let server = Server::start();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(b"PUT /files/gone.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        .unwrap();
    stream.write_all(&bytes(3_000_000, 5)).unwrap();
    eventually(|| server.metric("uploads_in_flight") == 1.0);
    drop(stream);
    server.assert_nothing_stored();
}

#[test]
fn slow_clients_are_cut_off_by_the_read_timeout() {
    let server =
        Server::with(|raw| raw.server.read_timeout = upload_http::Span::Text("300ms".into()));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(
            b"PUT /files/slow.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nonly this",
        )
        .unwrap();
    // ... and nothing more: the server must give up on its own.
    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("\"request_timeout\""), "{response}");
    server.assert_nothing_stored();
}

#[test]
fn graceful_shutdown_lets_an_upload_in_flight_finish() {
    let server = Server::start();
    let data = bytes(2_000_000, 6);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .write_all(
            format!(
                "PUT /files/late.bin HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        )
        .unwrap();
    stream.write_all(&data[..1_000_000]).unwrap();
    eventually(|| server.metric("uploads_in_flight") == 1.0);
    let stop = std::thread::spawn({
        let stop = server.stop_gracefully();
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(stop)
        }
    });
    stream.write_all(&data[1_000_000..]).unwrap();
    let response = read_response(&mut stream);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains(&sha256_hex(&data)), "{response}");
    stop.join().unwrap();
    assert_eq!(server.entries("objects").len(), 1);
}
