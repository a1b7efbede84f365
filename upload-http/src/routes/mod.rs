//! The request handlers, one module per area; [`crate::app`] maps paths to them.

pub(crate) mod bench;
pub(crate) mod files;
pub(crate) mod links;
pub(crate) mod ops;
mod retention;
pub(crate) mod tus;
pub(crate) mod ui;

use actix_web::{HttpRequest, HttpResponse};

use crate::error::ApiError;

/// Any path without a route.
pub(crate) async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(req.path().chars().take(200).collect()))
}

/// A known path with a method it does not take.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}
