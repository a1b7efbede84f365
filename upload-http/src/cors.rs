//! Cross-origin requests: which pages of other origins may call the API
//! (`server.cors_origins`), with the methods and headers the files API and
//! tus need, and the response headers their scripts may read.

use actix_cors::Cors;

/// Request headers a page may send.
const ALLOWED_HEADERS: [&str; 14] = [
    "authorization",
    "content-type",
    "content-digest",
    "range",
    "if-none-match",
    "tus-resumable",
    "upload-length",
    "upload-offset",
    "upload-metadata",
    "upload-defer-length",
    "upload-concat",
    "upload-checksum",
    "x-http-method-override",
    "x-requested-with",
];

/// Response headers a page's script may read.
const EXPOSED_HEADERS: [&str; 16] = [
    "location",
    "etag",
    "content-range",
    "content-disposition",
    "retry-after",
    "x-process-time",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "upload-metadata",
    "upload-concat",
];

/// The CORS middleware for `origins`, or `None` when there are none
/// (then no CORS header is ever sent, and browsers keep other origins out).
pub(crate) fn cors(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(24 * 3600);
    for origin in origins {
        cors = if origin == "*" { cors.allow_any_origin() } else { cors.allowed_origin(origin) };
    }
    Some(cors)
}
