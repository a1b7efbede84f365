//! Access control: every route under every kind of caller, in one table;
//! ownership of listings; what stays open; the start-up refusal.

use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;
use upload_http::{RawSettings, RawToken, TokenDigest};

use crate::common::*;

pub const LINK_KEY: &str = "test-link-key-0123456789abcdef-0123456789";

/// The callers of the table: a token per kind (their names are the tokens' names).
pub const CALLERS: [(&str, &[&str]); 4] = [
    ("reader", &["read"]),
    ("writer", &["write", "delete"]),
    ("other", &["write", "delete"]),
    ("admin", &["admin"]),
];

/// A token's secret in these tests: its name, prefixed.
pub fn token(name: &str) -> String {
    format!("fu_test_{name}")
}

/// Tokens for every caller of [`CALLERS`], and a link key.
pub fn with_tokens(raw: &mut RawSettings) {
    raw.auth.tokens = CALLERS
        .iter()
        .map(|(name, scopes)| RawToken::Table {
            name: (*name).into(),
            scopes: scopes.iter().map(|s| (*s).into()).collect(),
            sha256: TokenDigest::of(&token(name)).to_hex(),
        })
        .collect();
    raw.auth.link_key = vec![LINK_KEY.into()];
}

/// Adds the caller's `Authorization` (none for `None`, garbage for `"bad"`).
pub fn as_caller(request: RequestBuilder, caller: Option<&str>) -> RequestBuilder {
    match caller {
        None => request,
        Some("bad") => request.bearer_auth("fu_not_a_token"),
        Some(name) => request.bearer_auth(token(name)),
    }
}

fn upload(server: &Server, caller: &str, name: &str) -> String {
    let response = as_caller(client().put(server.url(&format!("/files/{name}"))), Some(caller))
        .body("some bytes")
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "{caller} uploads");
    let info: Value = response.json().unwrap();
    assert_eq!(info["owner"], caller);
    info["id"].as_str().unwrap().to_owned()
}

fn tus_create(server: &Server, caller: &str) -> String {
    let response = as_caller(client().post(server.url("/uploads/")), Some(caller))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "4")
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[test]
fn every_route_under_every_kind_of_caller() {
    let server = Server::with(with_tokens);
    let file = upload(&server, "writer", "mine.txt");
    let tus_upload = tus_create(&server, "writer");
    let form = || Form::new().part("file", Part::bytes(b"abc".to_vec()).file_name("a.txt"));
    // Expected status for: none, bad, reader, writer (the owner), other, admin.
    type Make<'a> = Box<dyn Fn() -> (Method, String) + 'a>;
    let fixed = |method: Method, path: String| -> Make<'_> {
        Box::new(move || (method.clone(), path.clone()))
    };
    // Routes that remove something get a fresh target for each caller.
    let fresh_file = || -> Make<'_> {
        Box::new(|| (Method::DELETE, format!("/files/{}", upload(&server, "writer", "d.txt"))))
    };
    let fresh_upload =
        || -> Make<'_> { Box::new(|| (Method::DELETE, tus_create(&server, "writer"))) };
    let table: Vec<(&str, Make, [u16; 6])> = vec![
        ("multipart upload", fixed(Method::POST, "/files".into()), [401, 401, 403, 201, 201, 201]),
        ("raw upload", fixed(Method::PUT, "/files/r.txt".into()), [401, 401, 403, 201, 201, 201]),
        ("list", fixed(Method::GET, "/files".into()), [401, 401, 200, 200, 200, 200]),
        ("download", fixed(Method::GET, format!("/files/{file}")), [401, 401, 200, 200, 403, 200]),
        ("head", fixed(Method::HEAD, format!("/files/{file}")), [401, 401, 200, 200, 403, 200]),
        (
            "link",
            fixed(Method::POST, format!("/files/{file}/links")),
            [401, 401, 403, 201, 403, 201],
        ),
        ("delete", fresh_file(), [401, 401, 403, 204, 403, 204]),
        ("tus create", fixed(Method::POST, "/uploads/".into()), [401, 401, 403, 201, 201, 201]),
        ("tus head", fixed(Method::HEAD, tus_upload.clone()), [401, 401, 403, 200, 403, 200]),
        ("tus patch", fixed(Method::PATCH, tus_upload.clone()), [401, 401, 403, 204, 403, 204]),
        ("tus delete", fresh_upload(), [401, 401, 403, 204, 403, 204]),
        ("tus options", fixed(Method::OPTIONS, "/uploads/".into()), [204; 6]),
        ("metrics", fixed(Method::GET, "/metrics".into()), [401, 401, 403, 403, 403, 200]),
        ("asyncwait", fixed(Method::GET, "/asyncwait?duration=0".into()), [200; 6]),
        ("fib", fixed(Method::GET, "/fib/5".into()), [200; 6]),
        ("healthz", fixed(Method::GET, "/healthz".into()), [200; 6]),
        ("readyz", fixed(Method::GET, "/readyz".into()), [200; 6]),
        ("service", fixed(Method::GET, "/".into()), [200; 6]),
        ("page", fixed(Method::GET, "/ui/".into()), [200; 6]),
        ("page file", fixed(Method::GET, "/ui/app.js".into()), [200; 6]),
        ("api description", fixed(Method::GET, "/openapi.json".into()), [200; 6]),
    ];
    let doc = crate::openapi::document(&server);
    let callers = [None, Some("bad"), Some("reader"), Some("writer"), Some("other"), Some("admin")];
    for (route, make, expected) in &table {
        for (caller, expected) in callers.iter().zip(expected) {
            let (method, path) = make();
            assert!(crate::openapi::documents(&doc, method.as_str(), &path), "{method} {path}");
            let mut request =
                as_caller(client().request(method.clone(), server.url(&path)), *caller);
            request = match *route {
                "multipart upload" => request.multipart(form()),
                "raw upload" => request.body("raw"),
                route if route.starts_with("tus") => request
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", "4")
                    .header("Upload-Offset", "0")
                    .header("Content-Type", "application/offset+octet-stream")
                    .body(""),
                _ => request,
            };
            let response = request.send().unwrap();
            let status = response.status().as_u16();
            assert_eq!(status, *expected, "{route} ({method} {path}) as {caller:?}");
            if status == 401 {
                let challenge = response.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.starts_with("Bearer"), "{challenge}");
                assert_eq!(challenge.contains("invalid_token"), *caller == Some("bad"));
            }
            if status >= 400 && method != Method::HEAD {
                let body: Value = response.json().unwrap();
                assert!(body["error"]["code"].is_string(), "{route}: {body}");
            }
        }
    }
}

#[test]
fn writers_list_their_own_files_and_admins_all() {
    let server = Server::with(with_tokens);
    let mine = upload(&server, "writer", "mine.txt");
    let theirs = upload(&server, "other", "theirs.txt");
    let listed = |caller: &str| -> Vec<String> {
        let page: Value = as_caller(client().get(server.url("/files")), Some(caller))
            .send()
            .unwrap()
            .json()
            .unwrap();
        page["files"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().into()).collect()
    };
    assert_eq!(listed("writer"), std::slice::from_ref(&mine));
    assert_eq!(listed("other"), std::slice::from_ref(&theirs));
    assert_eq!(listed("reader"), Vec::<String>::new());
    assert_eq!(listed("admin"), [mine, theirs]);
}

#[test]
fn public_read_and_open_metrics_open_what_they_say_and_nothing_else() {
    let server = Server::with(|raw| {
        with_tokens(raw);
        raw.auth.public_read = true;
        raw.auth.open_metrics = true;
    });
    let id = upload(&server, "writer", "public.txt");
    let get = |path: &str| client().get(server.url(path)).send().unwrap().status().as_u16();
    assert_eq!(get(&format!("/files/{id}")), 200);
    assert_eq!(get("/metrics"), 200);
    assert_eq!(get("/files"), 401);
    let delete = client().delete(server.url(&format!("/files/{id}"))).send().unwrap();
    assert_eq!(delete.status(), 401);
}

#[test]
fn closed_bench_endpoints_need_a_token() {
    let server = Server::with(|raw| {
        with_tokens(raw);
        raw.auth.open_bench = false;
    });
    for path in ["/asyncwait?duration=0", "/wait?duration=0", "/fib/3"] {
        let anonymous = client().get(server.url(path)).send().unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let reader = as_caller(client().get(server.url(path)), Some("reader")).send().unwrap();
        assert_eq!(reader.status(), 200, "{path}");
    }
}

#[test]
fn a_public_address_without_tokens_is_refused_with_one_line_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upload-http"))
        .env("UPLOAD__STORAGE__ROOT", &root)
        .env("UPLOAD__SERVER__HOST", "0.0.0.0")
        .env("UPLOAD__SERVER__PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("auth.tokens") && errors[0].contains("auth.mode = \"open\""));
    assert!(!root.exists(), "nothing is opened before the settings are valid");
    // The explicit opt-out starts, and says what it means.
    let open = Service::spawn(&[
        ("UPLOAD__STORAGE__ROOT", root.to_str().unwrap()),
        ("UPLOAD__SERVER__HOST", "0.0.0.0"),
        ("UPLOAD__AUTH__MODE", "open"),
    ]);
    let (_, log) = open.terminate();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("auth.mode = \"open\"")), "{log}");
}
