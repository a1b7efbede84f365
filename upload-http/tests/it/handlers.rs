//! Handler tests in-process with actix's test helpers: the same `app` as `main`.

use actix_multipart::test::create_form_data_payload_and_headers;
use actix_web::{test, web::Bytes};
use serde_json::Value;
use upload_http::AppState;

async fn app(
    dir: &std::path::Path,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    let settings = crate::common::settings(dir.join("data"), |_| {});
    let state = AppState::new(settings).await.unwrap();
    test::init_service(upload_http::app(state)).await
}

#[actix_web::test]
async fn multipart_upload_then_download() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    let (body, headers) = create_form_data_payload_and_headers(
        "file",
        Some("hello.txt".to_owned()),
        Some(mime::TEXT_PLAIN_UTF_8),
        Bytes::from_static(b"hello, world"),
    );
    let mut req = test::TestRequest::post().uri("/files");
    for (name, value) in &headers {
        req = req.insert_header((name.clone(), value.clone()));
    }
    let res = test::call_service(&app, req.set_payload(body).to_request()).await;
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("x-process-time"));
    let created: Value = test::read_body_json(res).await;
    let file = &created["files"][0];
    assert_eq!(file["content_type"], "text/plain; charset=utf-8");
    let id = file["id"].as_str().unwrap();

    let res = test::call_service(
        &app,
        test::TestRequest::get().uri(&format!("/files/{id}")).to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(test::read_body(res).await, "hello, world");
}

#[actix_web::test]
async fn every_error_is_json_with_a_code_and_a_process_time() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    for (method, uri, status, code) in [
        ("GET", "/nope", 404, "no_route"),
        ("PATCH", "/files", 405, "method_not_allowed"),
        ("GET", "/fib/x", 400, "invalid_n"),
        ("GET", "/wait?duration=abc", 400, "invalid_duration"),
        ("GET", "/files/0190c0de-0000-7000-8000-000000000000", 404, "not_found"),
    ] {
        let req =
            test::TestRequest::default().method(method.parse().unwrap()).uri(uri).to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), status, "{method} {uri}");
        assert!(res.headers().contains_key("x-process-time"), "{method} {uri}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], code, "{method} {uri}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.contains(dir.path().to_str().unwrap()))
        );
    }
}

#[actix_web::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    for (uri, status) in [("/healthz", 200), ("/readyz", 200)] {
        let res = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{uri}");
    }
    let res = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "http_request_duration_seconds_bucket",
        "upload_bytes_received_total",
        "uploads_in_flight",
        "compute_jobs{state=\"running\"}",
        "compute_jobs_total{outcome=\"rejected\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // Readiness follows the storage: a root that vanished is not ready.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let res = test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(res.status(), 503);
}
