//! The tus extensions beyond creation, case by case from the
//! specification: checksum, termination, expiration, concatenation and
//! the size limits.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::common::*;
use crate::tus::{create, header, id_of, offset, patch, tus};

#[test]
fn a_checksum_mismatch_is_460_and_the_chunk_is_discarded() {
    let server = Server::start();
    let url = create(&server, 8, "c");
    let send = |offset: u64, data: &[u8], checksum: String| {
        tus(client()
            .patch(&url)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset)
            .header("Upload-Checksum", checksum)
            .body(data.to_vec()))
    };
    let sha256 = |data: &[u8]| format!("sha256 {}", STANDARD.encode(Sha256::digest(data)));
    assert_eq!(error_code(send(0, b"abcd", sha256(b"abce"))), (460, "checksum_mismatch".into()));
    assert_eq!(offset(&url), Some(0));
    let crc = send(0, b"abcd", "crc32 AAAAAA==".into());
    assert_eq!(error_code(crc), (400, "unsupported_checksum_algorithm".into()));
    assert_eq!(send(0, b"abcd", sha256(b"abcd")).status(), 204);
    let md5 = format!("md5 {}", STANDARD.encode(md5_digest(b"efgh")));
    assert_eq!(send(4, b"efgh", md5).status(), 204);
    assert_eq!(offset(&url), Some(8));
}

fn md5_digest(data: &[u8]) -> Vec<u8> {
    // Known vector: the test does not need an MD5 crate of its own.
    assert_eq!(data, b"efgh");
    hex::decode("1f7690ebdd9b4caf8fab49ca1757bf27").unwrap()
}

#[test]
fn termination_removes_the_upload() {
    let server = Server::start();
    let url = create(&server, 10, "t");
    assert_eq!(patch(&url, 0, b"12345").status(), 204);
    assert_eq!(tus(client().delete(&url)).status(), 204);
    let head = tus(client().head(&url));
    assert_eq!(head.status(), 404);
    assert!(head.headers().get("upload-offset").is_none());
    assert_eq!(error_code(patch(&url, 5, b"67890")).0, 404);
    assert_eq!(error_code(tus(client().delete(&url))).0, 404);
    assert_eq!(server.entries("uploads"), Vec::<String>::new());
    server.assert_nothing_stored();
}

/// The real binary, whose maintenance loop sweeps expired uploads.
#[test]
fn expired_uploads_are_swept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let service = Service::spawn(&[
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__UPLOADS__EXPIRE_AFTER", "1ms"),
        ("UPLOAD__UPLOADS__SWEEP_INTERVAL", "50ms"),
    ]);
    let response = tus(client().post(service.url("/uploads/")).header("Upload-Length", 5));
    let url = service.url(header(response.headers(), "location").unwrap());
    eventually(|| service.metric("uploads_expired_total") >= 1.0);
    assert_eq!(std::fs::read_dir(root.join("uploads")).unwrap().count(), 0);
    assert_eq!(tus(client().head(&url)).status(), 404);
    assert_eq!(error_code(patch(&url, 0, b"abcde")).0, 404);
}

#[test]
fn an_expired_upload_not_yet_swept_is_410() {
    let server = Server::with(|s| {
        s.uploads.expire_after = upload_http::Span::Text("1ms".into());
        s.uploads.sweep_interval = upload_http::Span::Text("1h".into());
    });
    let response = tus(client().post(server.url("/uploads/")).header("Upload-Length", 5));
    let url = server.url(header(response.headers(), "location").unwrap());
    eventually(|| tus(client().head(&url)).status() == 410);
    assert_eq!(error_code(patch(&url, 0, b"abcde")), (410, "expired".into()));
}

#[test]
fn three_partials_concatenate_into_one_file() {
    let server = Server::start();
    let pieces = [bytes(1_500_000, 2), bytes(10, 3), bytes(700_000, 4)];
    let mut urls = Vec::new();
    for piece in &pieces {
        let response = tus(client()
            .post(server.url("/uploads/"))
            .header("Upload-Length", piece.len())
            .header("Upload-Concat", "partial"));
        let url = server.url(header(response.headers(), "location").unwrap());
        assert_eq!(patch(&url, 0, piece).status(), 204);
        assert_eq!(header(tus(client().head(&url)).headers(), "upload-concat"), Some("partial"));
        urls.push(url);
    }
    let final_of = |urls: &[String], length: Option<u64>| {
        let mut request = client()
            .post(server.url("/uploads/"))
            .header("Upload-Concat", format!("final;{}", urls.join(" ")))
            .header("Upload-Metadata", format!("filename {}", STANDARD.encode("joined.bin")));
        if let Some(length) = length {
            request = request.header("Upload-Length", length);
        }
        tus(request)
    };
    assert_eq!(error_code(final_of(&urls, Some(5))).0, 400);
    let response = final_of(&urls, None);
    assert_eq!(response.status(), 201);
    let url = server.url(header(response.headers(), "location").unwrap());
    let whole = pieces.concat();
    let head = tus(client().head(&url));
    assert_eq!(header(head.headers(), "upload-offset"), header(head.headers(), "upload-length"));
    assert_eq!(header(head.headers(), "upload-length"), Some(whole.len().to_string().as_str()));
    assert_eq!(error_code(patch(&url, 0, b"more")), (403, "upload_complete".into()));
    let body = client().get(server.url(&format!("/files/{}", id_of(&url)))).send().unwrap();
    assert_eq!(body.headers()["etag"], format!("\"{}\"", sha256_hex(&whole)).as_str());
    assert!(body.bytes().unwrap() == whole);
    // Partials are not files, and an unknown or unfinished partial is refused.
    let unknown = server.url(&format!("/uploads/{}", upload_core::ObjectId::new()));
    assert_eq!(error_code(final_of(&[urls[0].clone(), unknown], None)).0, 404);
    let open = tus(client()
        .post(server.url("/uploads/"))
        .header("Upload-Length", 9)
        .header("Upload-Concat", "partial"));
    let open = server.url(header(open.headers(), "location").unwrap());
    assert_eq!(
        error_code(final_of(&[urls[0].clone(), open], None)),
        (400, "invalid_upload".into())
    );
    assert_eq!(server.entries("objects").len(), 1);
}

#[test]
fn over_the_maximum_size_is_413() {
    let server = Server::with(|s| s.limits.max_file_size = upload_http::Size::Text("1KiB".into()));
    let response = tus(client().post(server.url("/uploads/")).header("Upload-Length", 1025));
    assert_eq!(error_code(response), (413, "too_large".into()));
    let deferred = tus(client().post(server.url("/uploads/")).header("Upload-Defer-Length", "1"));
    let url = server.url(header(deferred.headers(), "location").unwrap());
    assert_eq!(error_code(patch(&url, 0, &[0; 1025])).0, 413);
    assert_eq!(offset(&url), Some(0));
}

/// A page of another origin (the settings list it) may send the tus
/// headers and read the ones it needs; other origins get no grant.
#[test]
fn cors_preflight_allows_the_tus_headers_for_listed_origins() {
    let origin = "https://app.example";
    let server = Server::with(|s| s.server.cors_origins = vec![origin.into()]);
    let preflight = |server: &Server, origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, server.url("/uploads/"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PATCH")
            .header("Access-Control-Request-Headers", "tus-resumable,upload-offset,upload-checksum")
            .send()
            .unwrap()
    };
    let response = preflight(&server, origin);
    assert!(response.status().is_success(), "{}", response.status());
    let h = response.headers();
    assert_eq!(header(h, "access-control-allow-origin"), Some(origin));
    assert!(header(h, "access-control-allow-methods").unwrap().contains("PATCH"));
    let allowed = header(h, "access-control-allow-headers").unwrap().to_ascii_lowercase();
    for name in ["tus-resumable", "upload-offset", "upload-checksum"] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    let created = tus(client()
        .post(server.url("/uploads/"))
        .header("Origin", origin)
        .header("Upload-Length", 3));
    assert_eq!(created.status(), 201);
    let exposed = header(created.headers(), "access-control-expose-headers").unwrap().to_owned();
    for name in ["location", "upload-offset", "upload-expires", "tus-resumable"] {
        assert!(exposed.to_ascii_lowercase().contains(name), "{name} in {exposed}");
    }
    let stranger = preflight(&server, "https://evil.example");
    assert!(stranger.headers().get("access-control-allow-origin").is_none());
    let closed = Server::start();
    assert!(preflight(&closed, origin).headers().get("access-control-allow-origin").is_none());
}
