//! The OpenAPI document: what `/openapi.json` serves is the committed copy,
//! it is well formed, and (in `auth.rs`) every route is in it.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

/// The document the service serves.
pub fn document(server: &Server) -> Value {
    client().get(server.url("/openapi.json")).send().unwrap().json().unwrap()
}

/// Whether `method path` (a concrete path, query ignored) matches an operation of `doc`.
pub fn documents(doc: &Value, method: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    doc["paths"].as_object().unwrap().iter().any(|(template, item)| {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        let matches = t.len() == p.len()
            && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()));
        matches && item.get(method.to_ascii_lowercase()).is_some()
    })
}

#[test]
fn the_served_document_is_the_committed_one() {
    let server = Server::start();
    let served = client().get(server.url("/openapi.json")).send().unwrap();
    assert_eq!(served.headers()["content-type"], "application/json");
    let served = served.text().unwrap();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &served).unwrap();
    }
    let committed = std::fs::read_to_string(Path::new(COMMITTED)).unwrap_or_default();
    assert!(
        served == committed,
        "the API changed: review the difference, then accept it with \
         `UPDATE_OPENAPI=1 cargo nextest run -p upload-http openapi`"
    );
}

#[test]
fn the_document_is_openapi_3_1_with_an_error_body_for_every_error() {
    let server = Server::start();
    let doc = document(&server);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    let mut ids = BTreeSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            // Every template variable is declared as a path parameter.
            for var in path.split('{').skip(1).map(|r| r.split('}').next().unwrap()) {
                let declared = op["parameters"].as_array().into_iter().flatten().any(|p| {
                    p["name"] == var && p["in"] == "path" && p["required"] == Value::Bool(true)
                });
                assert!(declared, "{method} {path}: {{{var}}} is not a required path parameter");
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                let headers = response["headers"].as_object();
                assert!(
                    headers.is_some_and(|h| h.contains_key("X-Process-Time")),
                    "{method} {path} {status}: X-Process-Time"
                );
                let code: u16 = status.parse().unwrap();
                if code >= 400 {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Error", "{method} {path} {status}");
                    assert!(
                        response["description"].as_str().unwrap().contains('`'),
                        "{method} {path} {status} names no error code"
                    );
                }
            }
            assert!(op["responses"]["500"].is_object(), "{method} {path}: no 500");
        }
    }
    assert!(operations >= 25, "{operations} operations");
    let codes = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"];
    assert_eq!(codes["type"], "string");
}

#[test]
fn a_service_without_resumable_uploads_documents_none() {
    let server = Server::with(|raw| raw.uploads.resumable = false);
    let doc = document(&server);
    assert!(!documents(&doc, "POST", "/uploads/") && !documents(&doc, "PATCH", "/uploads/x"));
    assert!(documents(&doc, "PUT", "/files/a.txt"));
    let (status, code) = error_code(client().post(server.url("/uploads/")).send().unwrap());
    assert_eq!((status, code.as_str()), (404, "no_route"));
}

#[test]
fn the_document_route_is_counted_and_refuses_other_methods_and_ignores_queries() {
    let server = Server::start();
    let plain = client().get(server.url("/openapi.json")).send().unwrap().text().unwrap();
    let queried = client().get(server.url("/openapi.json?x=%FF&&=&openapi=2.0")).send().unwrap();
    assert_eq!(queried.text().unwrap(), plain);
    for method in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let response = client().request(method.clone(), server.url("/openapi.json")).send();
        assert_eq!(error_code(response.unwrap()), (405, "method_not_allowed".into()), "{method}");
    }
    let (status, _) = error_code(client().get(server.url("/openapi.json/x")).send().unwrap());
    assert_eq!(status, 404);
    let series = "http_requests_total{method=\"GET\",route=\"/openapi.json\",status=\"200\"}";
    assert_eq!(server.metric(series), 2.0);
}
