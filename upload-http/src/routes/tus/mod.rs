//! Resumable uploads over the tus 1.0 protocol, at `/uploads/`: core,
//! creation (with upload, deferred length), termination, checksum,
//! expiration and concatenation. The protocol lives here; the uploads
//! themselves are upload-core's staged uploads, so the id in an upload's
//! URL is the id of the file it becomes: `/uploads/<id>` completes into
//! `/files/<id>`.

use std::time::SystemTime;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HttpDate};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, web};
use futures_util::StreamExt;
use upload_core::{Append, ObjectId, UploadStatus};

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, BodyError, ErrorBody};
use crate::openapi::Binary;
use crate::state::AppState;

mod create;
mod headers;
mod owned;

pub(crate) use create::{__path_create, create};
use headers::{EXTENSIONS, VERSION};
use owned::{owned_file, owned_upload};

/// Every tus response, the errors too, names the protocol version.
fn tus(result: Result<HttpResponse, ApiError>) -> HttpResponse {
    let mut response = result.unwrap_or_else(|e| {
        let mut response = e.error_response();
        if let ApiError::UnsupportedTusVersion(_) = e {
            response.headers_mut().insert(
                header::HeaderName::from_static("tus-version"),
                header::HeaderValue::from_static(VERSION),
            );
        }
        response
    });
    response.headers_mut().insert(
        header::HeaderName::from_static("tus-resumable"),
        header::HeaderValue::from_static(VERSION),
    );
    response
}

/// `OPTIONS /uploads/`: what the server supports (no version needed).
#[utoipa::path(options, path = "/uploads/", operation_id = "tus_options", tag = "uploads", responses(
    (status = 204, description = "What the server supports.", headers(
        ("Tus-Version" = String), ("Tus-Extension" = String), ("Tus-Max-Size" = u64),
        ("Tus-Checksum-Algorithm" = String), ("Tus-Resumable" = String))),
))]
pub(crate) async fn options(state: web::Data<AppState>) -> HttpResponse {
    let algorithms: Vec<&str> =
        upload_core::ChecksumAlgorithm::ALL.iter().map(|a| a.name()).collect();
    tus(Ok(HttpResponse::NoContent()
        .insert_header(("Tus-Version", VERSION))
        .insert_header(("Tus-Extension", EXTENSIONS))
        .insert_header(("Tus-Max-Size", state.settings.limits.max_file_size))
        .insert_header(("Tus-Checksum-Algorithm", algorithms.join(",")))
        .finish()))
}

/// `HEAD /uploads/{id}`: where the upload stands.
#[utoipa::path(head, path = "/uploads/{id}", operation_id = "tus_head", tag = "uploads", security((), ("token" = ["write"])),
    params(("id" = String, Path, description = "The upload's id (its Location)."), TusVersion),
    responses(
        (status = 200, description = "Where the upload stands; a completed upload reports its file.",
            headers(("Upload-Offset" = u64), ("Upload-Length" = Option<u64>),
                ("Upload-Defer-Length" = Option<String>), ("Upload-Concat" = Option<String>),
                ("Upload-Metadata" = String), ("Upload-Expires" = Option<String>),
                ("Tus-Resumable" = String))),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 410, description = "`expired`.", body = ErrorBody),
        (status = 412, description = "`unsupported_version`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> HttpResponse {
    tus(head_upload(&state, &req, &caller, &id).await)
}

async fn head_upload(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    headers::check_version(req.headers())?;
    let id = parse_id(id)?;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    let mut upload = owned_upload(state, caller, &id).await;
    if let Ok(status) = &upload
        && status.is_finished()
        && !status.partial
    {
        // Every byte is in, the commit is not: a crash came between the last append and its
        // commit. Commit now, or a client told the whole length would stop, and its file
        // would never appear.
        match state.storage.complete_upload(&id).await {
            Ok(_) | Err(upload_core::Error::NotFound(_)) => {
                upload = Err(ApiError::NotFound(String::new()))
            }
            Err(e) => return Err(state.storage_error(e)),
        }
    }
    match upload {
        Ok(status) => {
            response.insert_header(("Upload-Offset", status.offset));
            match status.length {
                Some(length) => response.insert_header(("Upload-Length", length)),
                None => response.insert_header(("Upload-Defer-Length", "1")),
            };
            if status.partial {
                response.insert_header(("Upload-Concat", "partial"));
            }
            let metadata =
                headers::format_metadata(status.filename.as_deref(), &status.content_type);
            response.insert_header(("Upload-Metadata", metadata));
            Ok(expires(&mut response, &status).finish())
        }
        // Completed: the file it became.
        Err(ApiError::NotFound(_)) => {
            let info = owned_file(state, caller, &id).await?;
            let metadata = headers::format_metadata(info.filename.as_deref(), &info.content_type);
            Ok(response
                .insert_header(("Upload-Offset", info.size))
                .insert_header(("Upload-Length", info.size))
                .insert_header(("Upload-Metadata", metadata))
                .finish())
        }
        Err(e) => Err(e),
    }
}

/// `PATCH /uploads/{id}`: appends the body at `Upload-Offset`.
#[utoipa::path(patch, path = "/uploads/{id}", operation_id = "tus_patch", tag = "uploads", security((), ("token" = ["write"])),
    params(("id" = String, Path, description = "The upload's id (its Location)."), TusVersion,
        ("Upload-Offset" = u64, Header, description = "Where these bytes go: the upload's offset."),
        ("Upload-Length" = Option<u64>, Header, description = "For an upload of deferred length."),
        ("Upload-Checksum" = Option<String>, Header,
            description = "`<algorithm> <base64 digest>` of this request's bytes.")),
    request_body(content = Binary, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Appended; the upload completes with its last byte.",
            headers(("Upload-Offset" = u64), ("Upload-Expires" = Option<String>),
                ("Tus-Resumable" = String))),
        (status = 400, description = "`invalid_header`, `incomplete_body`.", body = ErrorBody),
        (status = 403, description = "`upload_complete`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 408, description = "`request_timeout`, `body_too_slow`.", body = ErrorBody),
        (status = 409, description = "`offset_mismatch`.", body = ErrorBody,
            headers(("Upload-Offset" = u64, description = "The upload's offset."))),
        (status = 410, description = "`expired`.", body = ErrorBody),
        (status = 412, description = "`unsupported_version`.", body = ErrorBody),
        (status = 413, description = "`too_large`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`.", body = ErrorBody),
        (status = 423, description = "`locked`: another request is appending.", body = ErrorBody),
        (status = 460, description = "`checksum_mismatch`: nothing of the request was kept.",
            body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
        (status = 507, description = "`storage_full`, `quota_exceeded`.", body = ErrorBody),
    ))]
pub(crate) async fn patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    tus(patch_upload(&state, &req, &caller, &id, payload).await)
}

async fn patch_upload(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let headers = req.headers();
    headers::check_version(headers)?;
    caller.require(Scope::Write)?;
    let id = parse_id(id)?;
    if !headers::has_upload_bytes(headers) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "a PATCH body must have Content-Type: {}",
            headers::OFFSET_OCTET_STREAM
        )));
    }
    let offset = headers::number(headers, "upload-offset")?
        .ok_or_else(|| ApiError::bad_request("invalid_header", "Upload-Offset is required"))?;
    // The append checks the owner itself, under its claim.
    let status = match append(state, req, caller, &id, offset, payload).await {
        Err(ApiError::NotFound(_)) => return completed(state, req, caller, &id, offset).await,
        other => other?,
    };
    let mut response = HttpResponse::NoContent();
    response.insert_header(("Upload-Offset", status.offset));
    Ok(expires(&mut response, &status).finish())
}

/// A `PATCH` to an upload that has become a file (a final one included,
/// which tus says must get 403): fine at its end with no bytes (a client
/// retrying its last request), else 403.
async fn completed(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &ObjectId,
    offset: u64,
) -> Result<HttpResponse, ApiError> {
    let info = owned_file(state, caller, id).await?;
    if offset != info.size || declared_length(req.headers()).is_none_or(|len| len > 0) {
        return Err(ApiError::UploadComplete(id.to_string()));
    }
    Ok(HttpResponse::NoContent().insert_header(("Upload-Offset", info.size)).finish())
}

/// Appends the request body; completes the upload if that was its last byte.
async fn append(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &ObjectId,
    offset: u64,
    payload: web::Payload,
) -> Result<UploadStatus, ApiError> {
    let headers = req.headers();
    let length = headers::number(headers, "upload-length")?;
    if length.is_some_and(|l| l > state.settings.limits.max_file_size) {
        return Err(ApiError::TooLarge {
            limit: state.settings.limits.max_file_size,
            what: "Upload-Length",
        });
    }
    let append = Append {
        checksum: headers::checksum(headers)?,
        length,
        owner: caller.upload_owner()?,
        body_length: headers::number(headers, "content-length")?,
    };
    let _in_flight = state.metrics.upload_in_flight();
    let body = state.body(payload, caller).map(|chunk| chunk.map_err(BodyError::from_payload));
    let status =
        state.storage.append(id, offset, body, append).await.map_err(|e| state.storage_error(e))?;
    if status.is_finished() && !status.partial {
        state.storage.complete_upload(id).await.map_err(|e| state.storage_error(e))?;
    }
    Ok(status)
}

/// `DELETE /uploads/{id}`: removes the upload, or the file it became.
#[utoipa::path(delete, path = "/uploads/{id}", operation_id = "tus_delete", tag = "uploads", security((), ("token" = ["write"])),
    params(("id" = String, Path, description = "The upload's id (its Location)."), TusVersion),
    responses(
        (status = 204, description = "Removed.", headers(("Tus-Resumable" = String))),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 410, description = "`expired`.", body = ErrorBody),
        (status = 412, description = "`unsupported_version`.", body = ErrorBody),
        (status = 423, description = "`locked`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
) -> HttpResponse {
    tus(delete_upload(&state, &req, &caller, &id).await)
}

async fn delete_upload(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    headers::check_version(req.headers())?;
    caller.require(Scope::Write)?;
    let id = parse_id(id)?;
    let result = match owned_upload(state, caller, &id).await {
        Ok(_) => state.storage.abort_upload(&id).await,
        // It became a file: removing that is a delete, with its rule.
        Err(ApiError::NotFound(_)) => {
            caller.require(Scope::Delete)?;
            owned_file(state, caller, &id).await?;
            state.storage.delete(&id).await
        }
        Err(e) => return Err(e),
    };
    result.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /uploads/{id}` with `X-HTTP-Method-Override`, for clients that can
/// only send GET and POST.
#[utoipa::path(post, path = "/uploads/{id}", operation_id = "tus_method_override", tag = "uploads", security((), ("token" = ["write"])),
    params(("id" = String, Path, description = "The upload's id (its Location)."),
        ("X-HTTP-Method-Override" = String, Header, description = "`PATCH`, `DELETE` or `HEAD`: \
            the request is then that method's, and answered as it documents.")),
    responses(
        (status = 400, description = "`invalid_header`: no X-HTTP-Method-Override.", body = ErrorBody),
        (status = 405, description = "`method_not_allowed`: another method.", body = ErrorBody),
    ))]
pub(crate) async fn overridden(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let Some(method) = req.headers().get("x-http-method-override") else {
        let why = "a POST to an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD";
        return tus(Err(ApiError::bad_request("invalid_header", why)));
    };
    match Method::from_bytes(method.as_bytes()) {
        Ok(Method::PATCH) => patch(state, req, caller, id, payload).await,
        Ok(Method::DELETE) => delete(state, req, caller, id).await,
        Ok(Method::HEAD) => head(state, req, caller, id).await,
        _ => tus(Err(ApiError::MethodNotAllowed("POST".into()))),
    }
}

/// Adds `Upload-Expires` (RFC 9110 date) for an unfinished upload.
fn expires<'a>(
    response: &'a mut HttpResponseBuilder,
    status: &UploadStatus,
) -> &'a mut HttpResponseBuilder {
    if !status.is_finished() || status.partial {
        let at = HttpDate::from(SystemTime::from(status.expires_at));
        response.insert_header(("Upload-Expires", at.to_string()));
    }
    response
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok())
}

fn parse_id(text: &str) -> Result<ObjectId, ApiError> {
    text.parse().map_err(|_| ApiError::NotFound(text.chars().take(64).collect()))
}

/// The header every tus request but `OPTIONS` carries.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // described, read by `headers::check_version`
struct TusVersion {
    /// `1.0.0`.
    #[param(rename = "Tus-Resumable", example = "1.0.0")]
    tus_resumable: String,
}
