//! Quotas: per token and for the whole store, on the bytes received.

use reqwest::blocking::Body;
use serde_json::Value;

use crate::auth::{as_caller, with_tokens};
use crate::common::*;

const KIB: usize = 1024;

/// A raw upload with no Content-Length (chunked): only the bytes received can tell.
fn put_chunked(server: &Server, caller: &str, len: usize) -> reqwest::blocking::Response {
    let body = Body::new(std::io::Cursor::new(bytes(len, 7)));
    as_caller(client().put(server.url("/files/q.bin")), Some(caller)).body(body).send().unwrap()
}

fn listed(server: &Server, caller: &str) -> usize {
    let page: Value =
        as_caller(client().get(server.url("/files")), Some(caller)).send().unwrap().json().unwrap();
    page["files"].as_array().unwrap().len()
}

#[test]
fn a_token_over_its_quota_mid_stream_gets_507_and_nothing_is_kept() {
    let server = Server::with(|raw| {
        with_tokens(raw);
        raw.limits.max_total_size_per_token = Some(upload_http::Size::Text("1MiB".into()));
    });
    assert_eq!(put_chunked(&server, "writer", 600 * KIB).status(), 201);
    let (status, code) = error_code(put_chunked(&server, "writer", 600 * KIB));
    assert_eq!((status, code.as_str()), (507, "quota_exceeded"));
    assert_eq!(listed(&server, "writer"), 1);
    assert_eq!(server.entries("objects").len(), 1);
    eventually(|| server.entries("tmp").is_empty());
    // Another token has its own quota; a delete gives room back.
    assert_eq!(put_chunked(&server, "other", 600 * KIB).status(), 201);
    let first: Value = as_caller(client().get(server.url("/files")), Some("writer"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = first["files"][0]["id"].as_str().unwrap();
    let deleted = as_caller(client().delete(server.url(&format!("/files/{id}"))), Some("writer"));
    assert_eq!(deleted.send().unwrap().status(), 204);
    assert_eq!(put_chunked(&server, "writer", 600 * KIB).status(), 201);
    // A tus upload that declares more than is left is refused before any byte.
    let created = as_caller(client().post(server.url("/uploads/")), Some("writer"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", (600 * KIB).to_string())
        .send()
        .unwrap();
    assert_eq!(error_code(created), (507, "quota_exceeded".into()));
}

#[test]
fn the_store_quota_counts_everyone() {
    let server = Server::with(|raw| {
        with_tokens(raw);
        raw.limits.max_total_size = Some(upload_http::Size::Text("1MiB".into()));
    });
    assert_eq!(put_chunked(&server, "writer", 600 * KIB).status(), 201);
    let (status, code) = error_code(put_chunked(&server, "other", 600 * KIB));
    assert_eq!((status, code.as_str()), (507, "quota_exceeded"));
    assert_eq!(listed(&server, "admin"), 1);
    assert_eq!(put_chunked(&server, "other", 300 * KIB).status(), 201);
}
