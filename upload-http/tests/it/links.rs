//! Download links and file lifetimes over HTTP.

use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;

use crate::auth::{LINK_KEY, as_caller, with_tokens};
use crate::common::*;

fn put(server: &Server, lifetime: Option<&str>) -> reqwest::blocking::Response {
    let mut request = as_caller(client().put(server.url("/files/f.txt")), Some("writer"));
    if let Some(lifetime) = lifetime {
        request = request.header("Expires-After", lifetime);
    }
    request.body("0123456789").send().unwrap()
}

fn link(server: &Server, id: &str, body: &str) -> Value {
    let response =
        as_caller(client().post(server.url(&format!("/files/{id}/links"))), Some("writer"))
            .body(body.to_owned())
            .send()
            .unwrap();
    assert_eq!(response.status(), 201);
    response.json().unwrap()
}

#[test]
fn links_download_without_a_token_until_used_up_and_refuse_tampering() {
    let server = Server::with(with_tokens);
    let id = put(&server, None).json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let created = link(&server, &id, r#"{"max_downloads": 2, "expires_in": "10m"}"#);
    let path = created["path"].as_str().unwrap().to_owned();
    assert!(created["url"].as_str().unwrap().ends_with(&path));
    let get = |path: &str| client().get(server.url(path)).send().unwrap();
    let first = get(&path);
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].clone();
    assert_eq!(first.bytes().unwrap().as_ref(), b"0123456789");
    // Resuming a download, or asking whether it changed, does not count.
    let resumed = client().get(server.url(&path)).header("Range", "bytes=5-").send().unwrap();
    assert_eq!((resumed.status().as_u16(), resumed.text().unwrap()), (206, "56789".into()));
    let unchanged = client().get(server.url(&path)).header("If-None-Match", etag).send().unwrap();
    assert_eq!(unchanged.status(), 304);
    assert_eq!(get(&path).status(), 200);
    assert_eq!(error_code(get(&path)), (403, "link_used_up".into()));
    // Tampered: another limit, another file, a changed signature, no signature.
    let unlimited = link(&server, &id, "");
    let path = unlimited["path"].as_str().unwrap();
    let other = put(&server, None).json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let sig_at = path.find("sig=").unwrap() + 4;
    let flipped = if &path[sig_at..=sig_at] == "A" { "B" } else { "A" };
    for tampered in [
        format!("{path}&max=5"),
        path.replace(&id, &other),
        format!("{}{flipped}{}", &path[..sig_at], &path[sig_at + 1..]),
        path[..sig_at - 5].to_owned(),
    ] {
        assert_eq!(error_code(get(&tampered)), (403, "invalid_link".into()), "{tampered}");
    }
    assert_eq!(get(path).status(), 200);
}

#[test]
fn links_expire_and_survive_a_key_rotation_until_their_key_is_dropped() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let start = |keys: &[&str]| {
        let (data, keys) = (data.clone(), keys.iter().map(|k| (*k).to_owned()).collect());
        Server::with(move |raw| {
            with_tokens(raw);
            raw.storage.backend =
                upload_core::StorageConfig::Local(upload_core::LocalConfig::new(data));
            raw.auth.link_key = keys;
        })
    };
    let new_key = "rotated-link-key-abcdefabcdefabcdefabcdef";
    let server = start(&[LINK_KEY]);
    let id = put(&server, None).json::<Value>().unwrap()["id"].as_str().unwrap().to_owned();
    let old = link(&server, &id, "")["path"].as_str().unwrap().to_owned();
    let brief = link(&server, &id, r#"{"expires_in": 1}"#)["path"].as_str().unwrap().to_owned();
    drop(server);
    let server = start(&[new_key, LINK_KEY]);
    let status =
        |server: &Server, path: &str| client().get(server.url(path)).send().unwrap().status();
    assert_eq!(status(&server, &old), 200, "verified by the old key, still listed");
    let new = link(&server, &id, "")["path"].as_str().unwrap().to_owned();
    eventually(|| status(&server, &brief) == 403);
    let expired = client().get(server.url(&brief)).send().unwrap();
    assert!(expired.text().unwrap().contains("expired"));
    drop(server);
    let server = start(&[new_key]);
    assert_eq!(status(&server, &old), 403, "its key is gone");
    assert_eq!(status(&server, &new), 200);
    let huge = format!("{{\"max_downloads\": 1{}}}", " ".repeat(10_000));
    let response =
        as_caller(client().post(server.url(&format!("/files/{id}/links"))), Some("admin"))
            .body(huge)
            .send()
            .unwrap();
    assert_eq!(error_code(response), (413, "too_large".into()));
    for bad in [
        r#"{"expires_in": "30d"}"#,
        r#"{"max_downloads": 0}"#,
        r#"{"max_downloads": 9223372036854775808}"#,
        r#"{"nope": 1}"#,
        "[1",
    ] {
        let response =
            as_caller(client().post(server.url(&format!("/files/{id}/links"))), Some("admin"))
                .body(bad)
                .send()
                .unwrap();
        assert_eq!(error_code(response), (400, "invalid_link_request".into()), "{bad}");
    }
}

#[test]
fn lifetimes_come_from_a_header_a_form_field_or_tus_metadata_within_the_limit() {
    let server = Server::with(|raw| {
        with_tokens(raw);
        raw.limits.max_lifetime = Some(upload_http::Span::Text("2h".into()));
        raw.storage.default_lifetime = Some(upload_http::Span::Text("1h".into()));
    });
    let lived = |info: &Value| {
        let at = |k: &str| {
            time::OffsetDateTime::parse(
                info[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        (at("expires_at") - at("created_at")).whole_seconds()
    };
    assert_eq!(lived(&put(&server, None).json().unwrap()), 3600, "the default");
    assert_eq!(lived(&put(&server, Some("90m")).json().unwrap()), 5400);
    assert_eq!(error_code(put(&server, Some("3h"))), (400, "invalid_lifetime".into()));
    assert_eq!(error_code(put(&server, Some("soon"))), (400, "invalid_lifetime".into()));
    let form = Form::new()
        .text("expires_after", "30m")
        .part("file", Part::bytes(b"abc".to_vec()).file_name("a.txt"));
    let response = as_caller(client().post(server.url("/files")), Some("writer"))
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(lived(&response.json::<Value>().unwrap()["files"][0]), 1800);
    // tus: `expires_after` in Upload-Metadata (base64 of "10m").
    let created = as_caller(client().post(server.url("/uploads/")), Some("writer"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "2")
        .header("Upload-Metadata", "expires_after MTBt")
        .header("Content-Type", "application/offset+octet-stream")
        .body("hi")
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let listed: Value = as_caller(client().get(server.url("/files")), Some("writer"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let info = listed["files"].as_array().unwrap().iter().find(|f| f["id"] == id.as_str()).unwrap();
    assert_eq!(lived(info), 600);
    assert_eq!(server.metric("files_expired_total"), 0.0);
}
