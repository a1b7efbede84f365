//! The files API: multipart and raw uploads, listing, download (`download.rs`), delete.

use std::pin::pin;

use actix_web::http::Method;
use actix_web::http::header::{self, ContentDisposition, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use upload_core::{FileInfo, FileName, ObjectId, Page, PutGroup, PutOptions};

mod download;

pub(crate) use download::{__path_download, download};

use super::retention::{EXPIRES_AFTER, retention};
use crate::auth::{Caller, Listing, Scope};
use crate::error::{ApiError, BodyError, ErrorBody};
use crate::multipart::{self, Multipart};
use crate::openapi::{Binary, MultipartUpload};
use crate::settings::Limits;
use crate::state::AppState;

/// The multipart field that asks for a lifetime for the files after it.
const EXPIRES_AFTER_FIELD: &str = "expires_after";

/// The body of a multipart upload's 201: every file stored, in part order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Stored {
    pub(crate) files: Vec<FileInfo>,
}

/// `POST /files` and `POST /`: every part with a filename is streamed to storage.
///
/// All or nothing: if any part fails, none of the request's files is kept.
#[utoipa::path(post, path = "/files", tag = "files", security((), ("token" = ["write"])),
    params(("Expires-After" = Option<String>, Header,
        description = "A lifetime for the files: `1h`, `30m`, `7d` or seconds.")),
    request_body(content = inline(MultipartUpload), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Every file stored, in part order.", body = Stored),
        (status = 400, description = "`invalid_multipart`, `no_file`, `incomplete_body`, \
            `invalid_lifetime`.", body = ErrorBody),
        (status = 408, description = "`request_timeout`, `body_too_slow`.", body = ErrorBody),
        (status = 413, description = "`too_large`, `too_many_files`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: not multipart/form-data.", body = ErrorBody),
        (status = 503, description = "`unavailable`: storage cannot be reached.", body = ErrorBody),
        (status = 507, description = "`storage_full`, `quota_exceeded`.", body = ErrorBody),
    ))]
pub(crate) async fn upload_multipart(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Write)?;
    let limits = &state.settings.limits;
    let requested = req.headers().get(EXPIRES_AFTER).map(|v| v.as_bytes());
    let mut retention = retention(&caller, requested, &state.settings)?;
    check_declared_length(req.headers(), limits.max_request_size, "the request body")?;
    let is_multipart =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType("expected a multipart/form-data body".into()));
    }
    let boundary =
        multipart::boundary(req.headers()).map_err(|e| ApiError::from_body(e, limits))?;
    let mut parts = Multipart::new(state.body(payload, &caller), &boundary);
    // All or nothing, whatever ends the request: dropped with this future
    // (client gone, shutdown), the group takes its files back.
    let mut stored = PutGroup::new(&state.storage);
    let result = async {
        let body_error = |e| ApiError::from_body(e, limits);
        while let Some(part) = parts.next_part().await.map_err(body_error)? {
            let Some(filename) = part_filename(&part.disposition) else {
                if part.disposition.get_name() == Some(EXPIRES_AFTER_FIELD) {
                    let value = small_field(parts.body(), limits).await?;
                    retention =
                        super::retention::retention(&caller, Some(&value), &state.settings)?;
                }
                continue; // a plain form field
            };
            if filename.is_empty() {
                continue; // what browsers send for a file input left empty
            }
            if stored.len() == limits.max_files_per_request {
                return Err(ApiError::TooManyFiles(limits.max_files_per_request));
            }
            let opts = PutOptions {
                filename: FileName::sanitize(&filename).ok(),
                content_type: part.content_type,
                max_size: Some(limits.max_file_size),
                expected_sha256: None,
                retention: retention.clone(),
            };
            let _in_flight = state.metrics.upload_in_flight();
            stored.put(parts.body(), opts).await.map_err(|e| state.storage_error(e))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Gone before the answer: a client told the request failed will send it again.
        stored.discard().await;
        return Err(e);
    }
    if stored.is_empty() {
        return Err(ApiError::bad_request("no_file", "the request has no part with a filename"));
    }
    Ok(HttpResponse::Created().json(Stored { files: stored.keep() }))
}

/// A plain form field's value, up to 64 bytes.
async fn small_field(
    field: impl Stream<Item = Result<Bytes, BodyError>>,
    limits: &Limits,
) -> Result<Vec<u8>, ApiError> {
    let mut value = Vec::new();
    let mut field = pin!(field.map_err(|e| ApiError::from_body(e, limits)));
    while let Some(chunk) = field.try_next().await? {
        value.extend_from_slice(&chunk);
        if value.len() > 64 {
            return Err(ApiError::bad_request(
                "invalid_lifetime",
                "the expires_after field is too long",
            ));
        }
    }
    Ok(value)
}

/// `PUT /files/{filename}`: the raw body is the file.
#[utoipa::path(put, path = "/files/{name}", tag = "files", security((), ("token" = ["write"])),
    params(
        ("name" = String, Path, description = "The file's name, kept as metadata."),
        ("Content-Digest" = Option<String>, Header, description = "RFC 9530 \
            `sha-256=:<base64>:`: nothing is stored unless the body hashes to it."),
        ("Expires-After" = Option<String>, Header,
            description = "A lifetime for the file: `1h`, `30m`, `7d` or seconds."),
    ),
    request_body(content = Binary, content_type = "application/octet-stream",
        description = "The file; stored with the request's Content-Type."),
    responses(
        (status = 201, description = "Stored.", body = FileInfo, headers(
            ("Location" = String, description = "`/files/<id>`"))),
        (status = 400, description = "`invalid_filename`, `invalid_digest`, `digest_mismatch`, \
            `invalid_lifetime`, `incomplete_body`.", body = ErrorBody),
        (status = 408, description = "`request_timeout`, `body_too_slow`.", body = ErrorBody),
        (status = 411, description = "`length_required`.", body = ErrorBody),
        (status = 413, description = "`too_large`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
        (status = 507, description = "`storage_full`, `quota_exceeded`.", body = ErrorBody),
    ))]
pub(crate) async fn upload_raw(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    filename: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Write)?;
    let limits = &state.settings.limits;
    let filename = FileName::sanitize(&filename).map_err(|e| state.storage_error(e))?;
    let headers = req.headers();
    if !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(ApiError::LengthRequired);
    }
    check_declared_length(req.headers(), limits.max_file_size, "the file")?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let requested = headers.get(EXPIRES_AFTER).map(|v| v.as_bytes());
    let opts = PutOptions {
        filename: Some(filename),
        content_type: content_type.map(str::to_owned),
        max_size: Some(limits.max_file_size),
        expected_sha256: content_digest(&req)?,
        retention: retention(&caller, requested, &state.settings)?,
    };
    let _in_flight = state.metrics.upload_in_flight();
    let body = state.body(payload, &caller).map(|chunk| chunk.map_err(BodyError::from_payload));
    let info = state.storage.put(body, opts).await.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/files/{}", info.id)))
        .json(info))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Files per page, 1 to 1000; 100 if absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next` of the previous page; empty or absent: the first page.
    #[param(value_type = Option<String>,
        pattern = "^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$")]
    after: Option<String>,
}

/// `GET /files?limit=&after=`: the caller's files (every file for an
/// admin, or with no tokens configured), in creation order.
#[utoipa::path(get, path = "/files", tag = "files", security((), ("token" = ["write"])),
    params(ListQuery),
    responses(
        (status = 200, description = "One page.", body = Page),
        (status = 400, description = "`invalid_limit`, `invalid_id`, `invalid_query`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let listing = caller.listing()?;
    const MAX_LIMIT: usize = 1000;
    let limit = match query.limit.as_deref() {
        None => 100,
        Some(text) => {
            text.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?
        }
    };
    let after = match query.after.as_deref() {
        None | Some("") => None,
        Some(text) => Some(parse_id(text)?),
    };
    let page = match listing {
        Listing::All => state.storage.list(after, limit).await,
        Listing::OwnedBy(owner) => state.storage.list_owned_by(&owner, after, limit).await,
    }
    .map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::Ok().json(page))
}

/// `DELETE /files/{id}`
#[utoipa::path(delete, path = "/files/{name}", operation_id = "delete_file", tag = "files", security((), ("token" = ["delete"])),
    params(("name" = ObjectId, Path, description = "The file's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "`invalid_id`.", body = ErrorBody),
        (status = 404, description = "`not_found`.", body = ErrorBody),
        (status = 503, description = "`unavailable`.", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Scope first: a caller who may not delete learns nothing of which ids exist.
    caller.require(Scope::Delete)?;
    let id = parse_id(&id)?;
    match state.storage.head(&id).await {
        Ok(info) => caller.require_owner(None, info.owner.as_deref())?,
        // Its owner cannot be read: only an admin may remove it.
        Err(upload_core::Error::Damaged { .. }) => caller.require_owner(None, None)?,
        Err(e) => return Err(state.storage_error(e)),
    }
    state.storage.delete(&id).await.map_err(|e| state.storage_error(e))?;
    Ok(HttpResponse::NoContent().finish())
}

pub(crate) fn parse_id(text: &str) -> Result<ObjectId, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{:?} is not a file id", truncate(text)))
    })
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(64).map_or(text, |(i, _)| &text[..i])
}

/// The 413 an upload route answers before reading anything when the
/// client announces too much; also asked before `100 Continue` is sent,
/// which happens before routing: a new upload route must be added here.
pub(crate) fn check_upload_length(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<(), ApiError> {
    match (method, path) {
        (&Method::PUT, path) if path.starts_with("/files/") => {
            check_declared_length(headers, limits.max_file_size, "the file")
        }
        (&Method::POST, "/files" | "/") => {
            check_declared_length(headers, limits.max_request_size, "the request body")
        }
        (&Method::PATCH, path) if path.starts_with("/uploads/") => {
            check_declared_length(headers, limits.max_file_size, "the upload")
        }
        (&Method::POST, path) if path.starts_with("/uploads") => {
            check_declared_length(headers, limits.max_file_size, "the upload")
        }
        _ => Ok(()),
    }
}

/// A 413 before reading anything, when the client announces too much.
fn check_declared_length(
    headers: &HeaderMap,
    limit: u64,
    what: &'static str,
) -> Result<(), ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(ApiError::TooLarge { limit, what }),
        _ => Ok(()),
    }
}

/// The part's file name: `filename*` (RFC 6266/5987) if given, else `filename`.
fn part_filename(cd: &ContentDisposition) -> Option<String> {
    if let Some(ext) = cd.get_filename_ext() {
        return Some(String::from_utf8_lossy(&ext.value).into_owned());
    }
    cd.get_filename().map(str::to_owned)
}

/// The SHA-256 of `Content-Digest` (RFC 9530), if the client sent one.
fn content_digest(req: &HttpRequest) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(value) = req.headers().get("content-digest") else { return Ok(None) };
    let invalid = || {
        ApiError::bad_request(
            "invalid_digest",
            "Content-Digest must look like sha-256=:<base64 of 32 bytes>:",
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    for member in value.split(',') {
        let Some((algorithm, digest)) = member.trim().split_once('=') else {
            return Err(invalid());
        };
        if !algorithm.trim().eq_ignore_ascii_case("sha-256") {
            continue; // other algorithms may be ignored
        }
        let b64 = digest
            .trim()
            .strip_prefix(':')
            .and_then(|d| d.strip_suffix(':'))
            .ok_or_else(invalid)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| invalid())?;
        return <[u8; 32]>::try_from(bytes).map(Some).map_err(|_| invalid());
    }
    Ok(None)
}
