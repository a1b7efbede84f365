//! The page's HTTP side: what `GET /` answers to API clients and to
//! browsers, the page's files and their headers, and hostile paths.
//! (What the page does is in `browser/`, in a real Chromium.)

use std::collections::BTreeSet;

use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};

use crate::common::*;

fn get(server: &Server, path: &str, accept: Option<&str>) -> reqwest::blocking::Response {
    let mut request = client().get(server.url(path));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    request.send().unwrap()
}

fn assert_strict(headers: &HeaderMap) {
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[test]
fn api_clients_keep_the_json_and_browsers_get_the_page() {
    let server =
        Server::with(|raw| raw.limits.max_file_size = upload_http::Size::Text("3MiB".into()));
    for accept in [None, Some("*/*"), Some("application/json"), Some("text/html;q=0, */*")] {
        let response = get(&server, "/", accept);
        assert_eq!(response.status(), 200, "{accept:?}");
        assert_eq!(response.headers()[header::VARY], "Accept");
        assert_eq!(response.json::<Value>().unwrap(), json!({ "service": "fastupload" }));
    }
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (path, accept) in [("/", Some(browser)), ("/ui/", None), ("/ui", None)] {
        let response = get(&server, path, accept);
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_strict(response.headers());
        let html = response.text().unwrap();
        assert!(html.contains(&format!("data-max-file-size=\"{}\"", 3 << 20)), "{html}");
        assert!(!html.contains("{{"), "every setting filled in");
    }
    // The original client code posts to / and still stores its file.
    let form = reqwest::blocking::multipart::Form::new()
        .part("file", reqwest::blocking::multipart::Part::bytes(b"x".to_vec()).file_name("x"));
    assert_eq!(client().post(server.url("/")).multipart(form).send().unwrap().status(), 201);
}

/// Every file the page names (in `index.html` and in the modules' imports) is
/// served with its type, a validator, and the policy; a matching
/// `If-None-Match` gets a bodiless 304.
#[test]
fn every_file_the_page_loads_is_served_and_revalidates() {
    let server = Server::start();
    let mut wanted = BTreeSet::from(["/ui/".to_owned()]);
    let mut seen = BTreeSet::new();
    while let Some(path) = wanted.pop_first() {
        let response = get(&server, &path, None);
        assert_eq!(response.status(), 200, "{path}");
        assert_strict(response.headers());
        let etag = response.headers()[header::ETAG].clone();
        let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let text = response.text().unwrap();
        // The page's own references: "/ui/x" in the HTML, './x.js' in the modules.
        let mut refs: Vec<String> = text
            .split(['"', '\''])
            .filter(|s| (s.starts_with("/ui/") && s.len() > 4) || s.starts_with("./"))
            .map(|s| format!("/ui/{}", s.trim_start_matches("/ui/").trim_start_matches("./")))
            .collect();
        refs.retain(|r| !seen.contains(r));
        wanted.extend(refs);
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "text/html; charset=utf-8",
        };
        assert_eq!(kind, expected, "{path}");
        let again =
            client().get(server.url(&path)).header(header::IF_NONE_MATCH, etag).send().unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().unwrap().is_empty());
        seen.insert(path);
    }
    assert!(seen.len() >= 8, "{seen:?}");
    assert!(
        server.metric("http_requests_total{method=\"GET\",route=\"/ui/{file}\",status=\"200\"}")
            >= 7.0
    );
}

#[test]
fn hostile_paths_and_headers_get_json_errors_and_never_a_file_from_disk() {
    let server = Server::start();
    let long = format!("/ui/{}", "a".repeat(5000));
    for path in [
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/..%2fCargo.toml",
        "/ui/%2e%2e%2fsrc%2flib.rs",
        "/ui/app.js%00",
        "/ui/APP.JS",
        "/ui/app.js/",
        "/ui/index.html/../../Cargo.toml",
        "/ui/.",
        long.as_str(),
    ] {
        // Sent as written: an HTTP client library would remove the dots first.
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(&server.addr(), request.as_bytes());
        assert!(response.starts_with("HTTP/1.1 404"), "{path}: {response}");
        assert!(response.contains(r#""code":"no_route""#), "{path}: {response}");
    }
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        for path in ["/ui/", "/ui/app.js"] {
            let response = client().request(method.clone(), server.url(path)).body("x").send();
            assert_eq!(error_code(response.unwrap()), (405, "method_not_allowed".into()), "{path}");
        }
    }
    // Headers a browser never sends: the answer stays a plain one.
    for (name, value) in [
        (header::ACCEPT, &b"text/html;q=\xff"[..]),
        (header::ACCEPT, &b";;;,,,text/html;q=nan"[..]),
        (header::IF_NONE_MATCH, &b"\"\xff\", *garbage"[..]),
    ] {
        let value = reqwest::header::HeaderValue::from_bytes(value).unwrap();
        let response =
            client().get(server.url("/ui/app.js")).header(name.clone(), value.clone()).send();
        assert_eq!(response.unwrap().status(), 200, "{name}: {value:?}");
        let root = client().get(server.url("/")).header(name.clone(), value).send().unwrap();
        assert_eq!(root.status(), 200);
    }
}
