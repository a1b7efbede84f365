//! The endpoints of the original benchmark (`/wait`, `/asyncwait`, `/fib`) and operations.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

#[derive(Deserialize)]
pub(crate) struct WaitQuery {
    duration: Option<String>,
}

const MAX_WAIT: f64 = 60.0;

fn wait_duration(query: &WaitQuery) -> Result<(f64, Duration), ApiError> {
    let secs = match query.duration.as_deref() {
        None => 0.05,
        Some(text) => {
            text.trim().parse::<f64>().ok().filter(|s| (0.0..=MAX_WAIT).contains(s)).ok_or_else(
                || {
                    ApiError::bad_request(
                        "invalid_duration",
                        format!("duration must be a number of seconds from 0 to {MAX_WAIT}"),
                    )
                },
            )?
        }
    };
    Ok((secs, Duration::from_secs_f64(secs)))
}

/// `GET /wait?duration=`: a blocking sleep, run on the blocking pool.
pub(crate) async fn wait(query: web::Query<WaitQuery>) -> Result<HttpResponse, ApiError> {
    let (secs, duration) = wait_duration(&query)?;
    web::block(move || std::thread::sleep(duration))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "duration": secs })))
}

/// `GET /asyncwait?duration=`: a timer.
pub(crate) async fn asyncwait(query: web::Query<WaitQuery>) -> Result<HttpResponse, ApiError> {
    let (secs, duration) = wait_duration(&query)?;
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
    Ok(HttpResponse::Ok().json(json!({ "duration": secs })))
}

/// `GET /fib/{n}`: on the compute pool. A client that goes away drops this
/// future (`h1_allow_half_closed(false)` in [`crate::server`]), which cancels the job.
pub(crate) async fn fib(
    state: web::Data<AppState>,
    n: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let max_n = state.settings.compute.max_n;
    let n = n.parse::<u32>().ok().filter(|&n| n <= max_n).ok_or_else(|| {
        ApiError::bad_request("invalid_n", format!("n must be an integer from 0 to {max_n}"))
    })?;
    let value = state
        .pool
        .fib(n, Some(state.settings.compute.timeout))
        .await
        .map_err(ApiError::from_compute)?;
    Ok(HttpResponse::Ok().json(json!({ "n": n, "fib": value })))
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: storage accepts writes.
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.storage.check_ready().await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Err(upload_core::Error::StorageFull) => Err(ApiError::StorageFull),
        Err(e) => {
            log::warn!("not ready: {e}");
            Err(ApiError::Unavailable)
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(state.metrics.render())
}

/// Any path without a route.
pub(crate) async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(req.path().chars().take(200).collect()))
}

/// A known path with a method it does not take.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}
