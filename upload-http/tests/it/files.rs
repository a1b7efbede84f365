use std::time::Duration;

use reqwest::blocking::multipart::{Form, Part};
use reqwest::header;
use serde_json::Value;

use crate::common::*;

fn part(data: Vec<u8>, name: &str) -> Part {
    Part::bytes(data).file_name(name.to_owned()).mime_str("application/pdf").unwrap()
}

#[test]
fn multipart_round_trip_with_every_download_header() {
    let server = Server::start();
    let (a, b) = (bytes(3 * 1024 * 1024 + 17, 1), bytes(10, 2));
    let form = Form::new()
        .text("comment", "plain fields are ignored")
        .part("file", part(a.clone(), "report.pdf"))
        .part("other_name", part(b.clone(), "résumé \"v2\".pdf"));
    let response = client().post(server.url("/files")).multipart(form).send().unwrap();
    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("x-process-time"));
    let body: Value = response.json().unwrap();
    let files = body["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["sha256"], sha256_hex(&a));
    assert_eq!(files[0]["size"], a.len());
    assert_eq!(files[0]["filename"], "report.pdf");
    assert_eq!(files[0]["content_type"], "application/pdf");
    assert!(files[0]["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(files[1]["filename"], "résumé \"v2\".pdf");
    let id = files[0]["id"].as_str().unwrap();

    let got = client().get(server.url(&format!("/files/{id}"))).send().unwrap();
    assert_eq!(got.status(), 200);
    let h = got.headers().clone();
    assert_eq!(h[header::CONTENT_LENGTH], a.len().to_string().as_str());
    assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(h[header::ETAG], format!("\"{}\"", sha256_hex(&a)).as_str());
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    // PDF is on the default inline list; nothing downloaded may run as a page of ours.
    assert!(h[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("inline"));
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox");
    assert_eq!(got.bytes().unwrap().as_ref(), &a[..]);

    let id_b = files[1]["id"].as_str().unwrap();
    let got = client().get(server.url(&format!("/files/{id_b}"))).send().unwrap();
    let cd = got.headers()[header::CONTENT_DISPOSITION].to_str().unwrap().to_owned();
    assert!(cd.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22.pdf"), "{cd}");
    assert!(cd.contains("filename=\"r_sum_ _v2_.pdf\""), "{cd}");

    let head = client().head(server.url(&format!("/files/{id}"))).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()[header::CONTENT_LENGTH], a.len().to_string().as_str());
    assert!(head.bytes().unwrap().is_empty());
}

#[test]
fn ranges_etags_and_deletes() {
    let server = Server::start();
    let data = bytes(1000, 3);
    let form = Form::new().part("file", part(data.clone(), "d.bin"));
    let body: Value =
        client().post(server.url("/files")).multipart(form).send().unwrap().json().unwrap();
    let id = body["files"][0]["id"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/files/{id}"));

    let r = client().get(&url).header(header::RANGE, "bytes=10-19").send().unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 10-19/1000");
    assert_eq!(r.bytes().unwrap().as_ref(), &data[10..20]);
    let r = client().get(&url).header(header::RANGE, "bytes=-5").send().unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), &data[995..]);
    let r = client().get(&url).header(header::RANGE, "bytes=1000-").send().unwrap();
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");
    assert_eq!(error_code(r), (416, "range_not_satisfiable".into()));
    // A start past 2^64 is still past the end.
    let r = client().get(&url).header(header::RANGE, "bytes=99999999999999999999-").send().unwrap();
    assert_eq!(error_code(r), (416, "range_not_satisfiable".into()));
    let r = client().get(&url).header(header::RANGE, "bytes=0-1,5-6").send().unwrap();
    assert_eq!(
        (r.status().as_u16(), r.bytes().unwrap().len()),
        (200, 1000),
        "multi-range: whole file"
    );

    let etag = format!("\"{}\"", sha256_hex(&data));
    let r = client().get(&url).header(header::IF_NONE_MATCH, &etag).send().unwrap();
    assert_eq!(r.status(), 304);
    // RFC 9110 13.2.2: If-None-Match is evaluated before Range.
    let r = client()
        .get(&url)
        .header(header::IF_NONE_MATCH, &etag)
        .header(header::RANGE, "bytes=5000-")
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = client().get(&url).header(header::IF_NONE_MATCH, "\"other\"").send().unwrap();
    assert_eq!(r.status(), 200);

    assert_eq!(client().delete(&url).send().unwrap().status(), 204);
    assert_eq!(error_code(client().get(&url).send().unwrap()), (404, "not_found".into()));
    assert_eq!(error_code(client().delete(&url).send().unwrap()), (404, "not_found".into()));
    let r = client().get(server.url("/files/not-an-id")).send().unwrap();
    assert_eq!(error_code(r), (400, "invalid_id".into()));
    server.assert_nothing_stored();
}

#[test]
fn listing_pages_through_everything_in_order() {
    let server = Server::start();
    let mut ids = Vec::new();
    for i in 0..7u8 {
        let r =
            client().put(server.url(&format!("/files/f{i}.txt"))).body(vec![i; 10]).send().unwrap();
        assert_eq!(r.status(), 201);
        let info: Value = r.json().unwrap();
        ids.push(info["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut url = server.url("/files?limit=3");
    loop {
        let page: Value = client().get(&url).send().unwrap().json().unwrap();
        seen.extend(
            page["files"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => url = server.url(&format!("/files?limit=3&after={next}")),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    for bad in ["limit=0", "limit=1001", "limit=x", "after=zzz"] {
        let (status, _) =
            error_code(client().get(server.url(&format!("/files?{bad}"))).send().unwrap());
        assert_eq!(status, 400, "{bad}");
    }
}

#[test]
fn raw_put_verifies_content_digest_before_anything_is_visible() {
    use base64::Engine;
    let server = Server::start();
    let data = bytes(200_000, 4);
    let digest = base64::engine::general_purpose::STANDARD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    let r = client()
        .put(server.url("/files/data.bin"))
        .header(header::CONTENT_TYPE, "application/x-data")
        .header("content-digest", format!("sha-512=:AAAA:, sha-256=:{digest}:"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let info: Value = r.json().unwrap();
    assert_eq!(location, format!("/files/{}", info["id"].as_str().unwrap()));
    assert_eq!(
        (info["filename"].as_str(), info["content_type"].as_str()),
        (Some("data.bin"), Some("application/x-data"))
    );
    assert_eq!(
        client().get(server.url(&location)).send().unwrap().bytes().unwrap().as_ref(),
        &data[..]
    );

    let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let r = client()
        .put(server.url("/files/x"))
        .header("content-digest", format!("sha-256=:{wrong}:"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(error_code(r), (400, "digest_mismatch".into()));
    let r = client()
        .put(server.url("/files/x"))
        .header("content-digest", "sha-256=:not base64:")
        .body(data)
        .send()
        .unwrap();
    assert_eq!(error_code(r), (400, "invalid_digest".into()));
    assert_eq!(server.entries("objects").len(), 1);
    assert!(server.entries("tmp").is_empty());
}

#[test]
fn raw_put_needs_a_length_or_chunks() {
    let server = Server::start();
    let response = raw_exchange(
        &server.addr(),
        b"PUT /files/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 411"), "{response}");
    assert!(response.contains("\"length_required\""), "{response}");
    let chunked = b"PUT /files/c.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let response = raw_exchange(&server.addr(), chunked);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains(&sha256_hex(b"hello world")), "{response}");
}

#[test]
fn the_original_complaint_four_20mb_files_posted_to_root_in_parallel_threads() {
    let server = Server::start();
    let files: Vec<Vec<u8>> = (0..4).map(|i| bytes(20_000_000, 10 + i)).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let url = server.url("/");
                s.spawn(move || {
                    let form = Form::new()
                        .part("file", Part::bytes(data.clone()).file_name(format!("file{i}.bin")));
                    let r = client().post(url).multipart(form).send().unwrap();
                    assert_eq!(r.status(), 201);
                    r.json::<Value>().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (data, result) in files.iter().zip(&results) {
        assert_eq!(result["files"][0]["sha256"], sha256_hex(data));
    }
    assert_eq!(server.entries("objects").len(), 4);
}

#[test]
fn hostile_filenames_end_up_as_harmless_metadata() {
    let server = Server::start();
    for name in ["../../etc/passwd", "a/b", "C:\\x", "..\\..\\boot.ini"] {
        let form = Form::new().part("file", Part::bytes(b"x".to_vec()).file_name(name.to_owned()));
        let r = client().post(server.url("/files")).multipart(form).send().unwrap();
        assert_eq!(r.status(), 201, "{name}");
        let body: Value = r.json().unwrap();
        let stored = body["files"][0]["filename"].as_str().unwrap();
        assert!(!stored.contains(['/', '\\']), "{stored}");
    }
    let r = client().put(server.url("/files/..%2F..%2Fetc%2Fpasswd")).body("x").send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().unwrap()["filename"], "passwd");
    let r = client().put(server.url("/files/%00%01")).body("x").send().unwrap();
    assert_eq!(error_code(r), (400, "invalid_filename".into()));
    assert_eq!(server.entries("objects").len(), 5);
    assert!(!server.dir.path().join("etc").exists() && !server.dir.path().join("passwd").exists());
}

#[test]
fn the_health_probe_reports_the_status_it_gets() {
    let server = Server::start();
    let port: u16 = server.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut target = settings(server.dir.path().join("unused"), |_| {}).server;
    // A wildcard listen address is probed on loopback.
    (target.host, target.port) = ("0.0.0.0".into(), port);
    let probe = |path| upload_http::probe(&target, path, Duration::from_secs(5));
    assert_eq!(probe("/readyz").unwrap(), 200);
    assert_eq!(probe("/no-such-path").unwrap(), 404);
    drop(server);
    assert!(probe("/readyz").is_err(), "nothing listens any more");
}
