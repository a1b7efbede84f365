//! `POST /uploads/`: tus creation, with upload, deferred length and concatenation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use upload_core::{FileName, NewUpload};

use super::headers::{self, Concat};
use super::owned::owned_upload;
use super::{append, declared_length, expires, tus};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, BodyError, ErrorBody};
use crate::openapi::Binary;
use crate::routes::retention::{EXPIRES_AFTER, retention};
use crate::state::AppState;

/// `POST /uploads/`: creates an upload (or a final one from partials), and
/// takes its first bytes if the body carries them.
#[utoipa::path(post, path = "/uploads/", operation_id = "tus_create", tag = "uploads", security((), ("token" = ["write"])),
    params(super::TusVersion,
        ("Upload-Length" = Option<u64>, Header, description = "The upload's size in bytes."),
        ("Upload-Defer-Length" = Option<String>, Header, description = "`1`: the size comes later."),
        ("Upload-Metadata" = Option<String>, Header, description = "`key base64,...`: \
            `filename`, `filetype` and `expires_after` are kept."),
        ("Upload-Concat" = Option<String>, Header,
            description = "`partial`, or `final;<upload URLs>` to concatenate partial uploads."),
        ("Expires-After" = Option<String>, Header, description = "A lifetime for the file."),
    ),
    request_body(content = Option<Binary>, content_type = "application/offset+octet-stream",
        description = "Optional: the upload's first bytes."),
    responses(
        (status = 201, description = "Created.", headers(("Location" = String),
            ("Upload-Offset" = Option<u64>), ("Upload-Expires" = Option<String>),
            ("Tus-Resumable" = String))),
        (status = 400, description = "`invalid_header`, `invalid_lifetime`, `invalid_upload`, \
            `incomplete_body`.", body = ErrorBody),
        (status = 404, description = "`not_found`: a partial upload named in `Upload-Concat`.",
            body = ErrorBody),
        (status = 408, description = "`request_timeout`, `body_too_slow`.", body = ErrorBody),
        (status = 412, description = "`unsupported_version`.", body = ErrorBody),
        (status = 413, description = "`too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 423, description = "`locked`.", body = ErrorBody),
        (status = 460, description = "`checksum_mismatch`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
        (status = 507, description = "`storage_full`, `quota_exceeded`.", body = ErrorBody),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> HttpResponse {
    tus(create_upload(&state, &req, &caller, payload).await)
}

async fn create_upload(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    headers::check_version(headers)?;
    caller.require(Scope::Write)?;
    let limits = &state.settings.limits;
    let length = headers::number(headers, "upload-length")?;
    let deferred = match headers.get("upload-defer-length").map(|v| v.as_bytes()) {
        None => false,
        Some(b"1") => true,
        Some(_) => {
            return Err(ApiError::bad_request("invalid_header", "Upload-Defer-Length must be 1"));
        }
    };
    let metadata = headers::metadata(headers)?;
    let meta = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let filename =
        meta("filename").and_then(|v| FileName::sanitize(&String::from_utf8_lossy(v)).ok());
    let content_type = meta("filetype").map(|v| String::from_utf8_lossy(v).into_owned());
    let requested = meta("expires_after").map(Vec::as_slice);
    let requested = requested.or_else(|| headers.get(EXPIRES_AFTER).map(|v| v.as_bytes()));
    let retention = retention(caller, requested, &state.settings)?;
    let partial = match headers::concat(headers)? {
        Some(Concat::Final(partials)) => {
            if length.is_some() || deferred {
                return Err(ApiError::bad_request(
                    "invalid_header",
                    "a final upload takes its length from its partial uploads: send no Upload-Length",
                ));
            }
            for partial in &partials {
                owned_upload(state, caller, partial).await?;
            }
            let info = state
                .storage
                .concatenate(
                    &partials,
                    filename,
                    content_type,
                    Some(limits.max_file_size),
                    &retention,
                )
                .await
                .map_err(|e| state.storage_error(e))?;
            return Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/uploads/{}", info.id)))
                .insert_header(("Upload-Offset", info.size))
                .finish());
        }
        Some(Concat::Partial) => true,
        None => false,
    };
    match (length, deferred) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "invalid_header",
                "send Upload-Length or Upload-Defer-Length, not both",
            ));
        }
        (None, false) => {
            return Err(ApiError::bad_request(
                "invalid_header",
                "Upload-Length (or Upload-Defer-Length: 1) is required",
            ));
        }
        _ => {}
    }
    if length.is_some_and(|l| l > limits.max_file_size) {
        return Err(ApiError::TooLarge { limit: limits.max_file_size, what: "Upload-Length" });
    }
    // A declared length that cannot fit is refused now, not once its bytes have arrived.
    if let (Some(length), Some(charge)) = (length, state.charge(caller)) {
        charge.fits(length).map_err(|c| ApiError::from_body(BodyError::Cutoff(c), limits))?;
    }
    let new = NewUpload {
        length,
        filename,
        content_type,
        max_size: Some(limits.max_file_size),
        expire_after: state.settings.uploads.expire_after,
        partial,
        retention,
    };
    let mut status = state.storage.create_upload(new).await.map_err(|e| state.storage_error(e))?;
    let location = format!("/uploads/{}", status.id);
    if headers::has_upload_bytes(headers) {
        status = append(state, req, caller, &status.id, 0, payload).await?;
    } else if declared_length(headers).is_some_and(|len| len > 0) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "upload bytes need Content-Type: {}",
            headers::OFFSET_OCTET_STREAM
        )));
    }
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, location));
    if status.offset > 0 || headers::has_upload_bytes(headers) {
        response.insert_header(("Upload-Offset", status.offset));
    }
    Ok(expires(&mut response, &status).finish())
}
