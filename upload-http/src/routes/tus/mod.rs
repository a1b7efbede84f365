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
use upload_core::{Append, FileName, NewUpload, ObjectId, UploadStatus};

use super::retention::{EXPIRES_AFTER, retention};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, BodyError};
use crate::state::AppState;

mod headers;
mod owned;

use headers::{Concat, EXTENSIONS, VERSION};
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

/// `POST /uploads/`: creates an upload (or a final one from partials), and
/// takes its first bytes if the body carries them.
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

/// `HEAD /uploads/{id}`: where the upload stands.
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
    match owned_upload(state, caller, &id).await {
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
    match owned_upload(state, caller, &id).await {
        Err(ApiError::NotFound(_)) => return completed(state, req, caller, &id, offset).await,
        other => other?,
    };
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
    let append = Append { checksum: headers::checksum(headers)?, length };
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
pub(crate) async fn overridden(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let method = req
        .headers()
        .get("x-http-method-override")
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
    match method {
        Some(Method::PATCH) => patch(state, req, caller, id, payload).await,
        Some(Method::DELETE) => delete(state, req, caller, id).await,
        Some(Method::HEAD) => head(state, req, caller, id).await,
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
