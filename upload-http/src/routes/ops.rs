//! Operations: liveness, readiness, metrics, and what `GET /` says.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The body of `/healthz` (`ok`) and `/readyz` (`ready`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok` or `ready`.
    pub(crate) status: &'static str,
}

/// The body of `GET /`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ServiceInfo {
    /// Always `fastupload`.
    pub(crate) service: &'static str,
}

/// `GET /` for API clients (`routes::ui::root` decides): which service this is.
pub(crate) async fn service_info() -> HttpResponse {
    HttpResponse::Ok().json(ServiceInfo { service: "fastupload" })
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up.", body = Health)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /readyz`: storage accepts writes.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Storage accepts writes.", body = Health),
    (status = 503, description = "`unavailable`: storage cannot be reached.", body = ErrorBody),
    (status = 507, description = "`storage_full`.", body = ErrorBody),
))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.storage.check_ready().await {
        Ok(()) => Ok(HttpResponse::Ok().json(Health { status: "ready" })),
        Err(upload_core::Error::StorageFull) => Err(ApiError::StorageFull),
        Err(e) => {
            log::warn!("not ready: {e}");
            Err(ApiError::Unavailable)
        }
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("token" = ["admin"])),
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub(crate) async fn metrics(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require_metrics()?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(state.metrics.render()))
}
