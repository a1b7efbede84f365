//! The tus 1.0 protocol at `/uploads/`, case by case from its
//! specification (core, creation, creation-with-upload,
//! creation-defer-length, termination, checksum, expiration,
//! concatenation), against the real server.

use std::io::Write;
use std::net::TcpStream;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::HeaderMap;

use crate::common::*;

pub fn tus(request: RequestBuilder) -> Response {
    request.header("Tus-Resumable", "1.0.0").send().unwrap()
}

pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// Creates an upload of `length` bytes named `name`; returns its URL.
pub fn create(server: &Server, length: u64, name: &str) -> String {
    let metadata =
        format!("filename {},filetype {}", STANDARD.encode(name), STANDARD.encode("text/plain"));
    let response = tus(client()
        .post(server.url("/uploads/"))
        .header("Upload-Length", length)
        .header("Upload-Metadata", metadata));
    assert_eq!(response.status(), 201);
    assert_eq!(header(response.headers(), "tus-resumable"), Some("1.0.0"));
    assert!(header(response.headers(), "upload-expires").is_some_and(|e| e.ends_with(" GMT")));
    server.url(header(response.headers(), "location").unwrap())
}

pub fn patch(url: &str, offset: u64, data: &[u8]) -> Response {
    tus(client()
        .patch(url)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset)
        .body(data.to_vec()))
}

pub fn offset(url: &str) -> Option<u64> {
    let response = tus(client().head(url));
    header(response.headers(), "upload-offset").map(|o| o.parse().unwrap())
}

pub fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

#[test]
fn options_advertises_version_extensions_size_and_checksums() {
    let server = Server::with(|s| s.limits.max_file_size = upload_http::Size::Text("5MiB".into()));
    let response =
        client().request(reqwest::Method::OPTIONS, server.url("/uploads/")).send().unwrap();
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(header(h, "tus-version"), Some("1.0.0"));
    assert_eq!(header(h, "tus-max-size"), Some("5242880"));
    assert_eq!(header(h, "tus-checksum-algorithm"), Some("sha1,sha256,md5"));
    let extensions: Vec<&str> = header(h, "tus-extension").unwrap().split(',').collect();
    for extension in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "checksum",
        "expiration",
        "concatenation",
    ] {
        assert!(extensions.contains(&extension), "{extension}");
    }
}

#[test]
fn another_version_or_none_is_412_with_tus_version() {
    let server = Server::start();
    for version in [None, Some("0.2.2"), Some("2.0.0")] {
        let mut request = client().post(server.url("/uploads/")).header("Upload-Length", 5);
        if let Some(version) = version {
            request = request.header("Tus-Resumable", version);
        }
        let response = request.send().unwrap();
        assert_eq!(header(response.headers(), "tus-version"), Some("1.0.0"));
        assert_eq!(error_code(response), (412, "unsupported_version".into()), "{version:?}");
    }
    server.assert_nothing_stored();
}

#[test]
fn an_upload_in_pieces_becomes_a_file_under_the_same_id() {
    let server = Server::start();
    let data = bytes(3_000_000, 1);
    let url = create(&server, data.len() as u64, "notes.txt");
    let head = tus(client().head(&url));
    assert_eq!(head.status(), 200);
    let h = head.headers();
    assert_eq!(
        (header(h, "upload-offset"), header(h, "cache-control")),
        (Some("0"), Some("no-store"))
    );
    assert_eq!(header(h, "upload-length"), Some("3000000"));
    assert!(header(h, "upload-metadata").unwrap().contains(&STANDARD.encode("notes.txt")));
    for (from, to) in [(0, 1), (1, 1_000_000), (1_000_000, 3_000_000)] {
        let response = patch(&url, from, &data[from as usize..to]);
        assert_eq!(response.status(), 204);
        assert_eq!(header(response.headers(), "upload-offset"), Some(to.to_string().as_str()));
        assert_eq!(offset(&url), Some(to as u64));
    }
    let id = id_of(&url);
    let list: serde_json::Value =
        client().get(server.url("/files")).send().unwrap().json().unwrap();
    let file = &list["files"][0];
    assert_eq!(file["id"], id);
    assert_eq!(file["sha256"], sha256_hex(&data));
    assert_eq!(
        (file["filename"].as_str(), file["content_type"].as_str()),
        (Some("notes.txt"), Some("text/plain"))
    );
    let download =
        client().get(server.url(&format!("/files/{id}"))).send().unwrap().bytes().unwrap();
    assert!(download == data);
    // Complete: HEAD reports the whole length; a retried last PATCH with no bytes is fine, more bytes are not.
    let head = tus(client().head(&url));
    assert_eq!(header(head.headers(), "upload-offset"), Some("3000000"));
    assert_eq!(header(head.headers(), "upload-length"), Some("3000000"));
    assert_eq!(patch(&url, 3_000_000, b"").status(), 204);
    assert_eq!(error_code(patch(&url, 0, b"again")), (403, "upload_complete".into()));
    assert_eq!(server.entries("uploads"), Vec::<String>::new());
}

#[test]
fn a_wrong_offset_content_type_or_length_changes_nothing() {
    let server = Server::start();
    let url = create(&server, 10, "a");
    assert_eq!(patch(&url, 0, b"hello").status(), 204);
    let response = patch(&url, 3, b"xx");
    assert_eq!(header(response.headers(), "upload-offset"), Some("5"));
    assert_eq!(error_code(response), (409, "offset_mismatch".into()));
    let wrong_type = tus(client().patch(&url).header("Upload-Offset", 5).body("world"));
    assert_eq!(error_code(wrong_type).0, 415);
    let no_offset = tus(client()
        .patch(&url)
        .header("Content-Type", "application/offset+octet-stream")
        .body("world"));
    assert_eq!(error_code(no_offset).0, 400);
    for bad in ["-1", "five", "99999999999999999999999"] {
        let response = tus(client()
            .patch(&url)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", bad)
            .body("world"));
        assert_eq!(error_code(response).0, 400, "{bad}");
    }
    assert_eq!(error_code(patch(&url, 5, b"world and more")), (413, "too_large".into()));
    assert_eq!(offset(&url), Some(5));
    assert_eq!(patch(&url, 5, b"world").status(), 204);
}

#[test]
fn deferred_length_is_declared_by_a_later_patch() {
    let server = Server::start();
    let response = tus(client().post(server.url("/uploads")).header("Upload-Defer-Length", "1"));
    assert_eq!(response.status(), 201);
    let url = server.url(header(response.headers(), "location").unwrap());
    assert_eq!(header(tus(client().head(&url)).headers(), "upload-defer-length"), Some("1"));
    assert_eq!(patch(&url, 0, b"abc").status(), 204);
    let last = tus(client()
        .patch(&url)
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 3)
        .header("Upload-Length", 6)
        .body("def"));
    assert_eq!(last.status(), 204);
    let body = client().get(server.url(&format!("/files/{}", id_of(&url)))).send().unwrap();
    assert_eq!(body.bytes().unwrap(), "abcdef");
    let bad = tus(client().post(server.url("/uploads/")).header("Upload-Defer-Length", "2"));
    assert_eq!(error_code(bad).0, 400);
    let neither = tus(client().post(server.url("/uploads/")));
    assert_eq!(error_code(neither).0, 400);
}

#[test]
fn creation_with_upload_takes_the_first_bytes() {
    let server = Server::start();
    let response = tus(client()
        .post(server.url("/uploads/"))
        .header("Upload-Length", 6)
        .header("Content-Type", "application/offset+octet-stream")
        .body("abc"));
    assert_eq!(response.status(), 201);
    assert_eq!(header(response.headers(), "upload-offset"), Some("3"));
    let url = server.url(header(response.headers(), "location").unwrap());
    assert_eq!(patch(&url, 3, b"def").status(), 204);
    let unlabelled =
        tus(client().post(server.url("/uploads/")).header("Upload-Length", 6).body("abc"));
    assert_eq!(error_code(unlabelled).0, 415);
}

#[test]
fn method_override_turns_a_post_into_patch_head_or_delete() {
    let server = Server::start();
    let url = create(&server, 4, "o");
    let post = |method: &str| {
        tus(client()
            .post(&url)
            .header("X-HTTP-Method-Override", method)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", 0)
            .body("ab"))
    };
    assert_eq!(post("PATCH").status(), 204);
    assert_eq!(header(post("HEAD").headers(), "upload-offset"), Some("2"));
    assert_eq!(post("DELETE").status(), 204);
    assert_eq!(error_code(post("GET")).0, 405);
    let bare = tus(client().post(&url).body("ab"));
    assert_eq!(error_code(bare), (400, "invalid_header".into()));
}

#[test]
fn hostile_ids_headers_and_metadata_are_refused_cleanly() {
    let server = Server::start();
    for path in ["/uploads/..%2F..%2Fetc", "/uploads/not-an-id", "/uploads/%00"] {
        let response = tus(client().head(server.url(path)));
        assert_eq!(response.status(), 404, "{path}");
    }
    for metadata in ["filename !!!notbase64", "a YQ==,a YQ==", &"k ".repeat(5000)] {
        let response = tus(client()
            .post(server.url("/uploads/"))
            .header("Upload-Length", 1)
            .header("Upload-Metadata", metadata));
        assert_eq!(error_code(response), (400, "invalid_metadata".into()), "{metadata}");
    }
    for concat in ["final;", "final;/etc/passwd", "everything"] {
        let response = tus(client().post(server.url("/uploads/")).header("Upload-Concat", concat));
        assert_eq!(error_code(response), (400, "invalid_concat".into()), "{concat}");
    }
    // A hostile file name in metadata is kept as a clean name only.
    let url = create(&server, 1, "../../etc/passwd");
    assert_eq!(patch(&url, 0, b"x").status(), 204);
    let list: serde_json::Value =
        client().get(server.url("/files")).send().unwrap().json().unwrap();
    assert_eq!(list["files"][0]["filename"], "passwd");
}

/// A client that goes away mid-PATCH: what arrived is kept, and the upload
/// resumes from there.
#[test]
fn an_interrupted_patch_keeps_what_arrived() {
    let server = Server::start();
    let data = bytes(4_000_000, 5);
    let url = create(&server, data.len() as u64, "cut.bin");
    let path = url.trim_start_matches(&server.url(""));
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&data[..1_500_000]).unwrap();
    stream.flush().unwrap();
    eventually(|| server.metric("upload_bytes_received_total") >= 1_500_000.0);
    drop(stream);
    eventually(|| offset(&url) == Some(1_500_000));
    assert_eq!(patch(&url, 1_500_000, &data[1_500_000..]).status(), 204);
    let body = client().get(server.url(&format!("/files/{}", id_of(&url)))).send().unwrap();
    assert_eq!(body.headers()["etag"], format!("\"{}\"", sha256_hex(&data)).as_str());
}

/// The real binary restarted mid-upload on the same root: the upload
/// resumes from the last acknowledged offset.
#[test]
fn a_restarted_server_resumes_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let env = [("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())];
    let data = bytes(2_000_000, 6);
    let service = Service::spawn(&env);
    let response = tus(client().post(service.url("/uploads/")).header("Upload-Length", data.len()));
    let location = header(response.headers(), "location").unwrap().to_owned();
    assert_eq!(patch(&service.url(&location), 0, &data[..1_234_567]).status(), 204);
    let (status, _) = service.terminate();
    assert!(status.success());
    let service = Service::spawn(&env);
    let url = service.url(&location);
    assert_eq!(offset(&url), Some(1_234_567));
    assert_eq!(patch(&url, 1_234_567, &data[1_234_567..]).status(), 204);
    assert!(service.download(id_of(&url)) == data);
}

#[test]
fn a_head_commits_an_upload_whose_commit_a_crash_cut_short() {
    // The state a kill between the last append and its commit leaves: every byte in, no file.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let config = upload_core::StorageConfig::Local(upload_core::LocalConfig::new(root.clone()));
    let data = bytes(70_000, 3);
    let id = actix_web::rt::System::new().block_on(async {
        let storage = upload_core::Storage::open(&config).await.unwrap();
        let new = upload_core::NewUpload { length: Some(70_000), ..Default::default() };
        let status = storage.create_upload(new).await.unwrap();
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(data.clone().into())]);
        let appended = storage.append(&status.id, 0, body, Default::default()).await.unwrap();
        assert!(appended.is_finished());
        status.id.to_string()
    });
    let service = Service::spawn(&[("UPLOAD__STORAGE__ROOT", root.to_str().unwrap())]);
    assert_eq!(service.status(&format!("/files/{id}")), 404, "committed before anyone asked");
    let head = tus(client().head(service.url(&format!("/uploads/{id}"))));
    assert_eq!(head.status(), 200);
    assert_eq!(header(head.headers(), "upload-offset"), Some("70000"));
    assert_eq!(sha256_hex(&service.download(&id)), sha256_hex(&data));
}
